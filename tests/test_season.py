"""The parts of issue 5 together, over a season: a corrected spreadsheet arriving while the
Navigator has withheld a notification, while approval mode holds the first one, and after
retention has purged the incident.

Each story takes in real .xlsx files through the service's intake, with real GnuPG keys, in
the small area of two schools tests/test_amendments.py sets up (its `area` fixture)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mail_world import SendingDay
from pgp_keys import KeyFactory
from test_amendments import (
    ARRIVAL,
    CORRECTED,
    ELM,
    FIRST_ROWS,
    NINE,
    Area,
    area,
    first_reference,
    row,
    send_all,
    sheet,
)

from gateway import outbox
from gateway.at_rest import StorageKey
from gateway.cli import cli
from gateway.config import ApprovalSection, LoadedConfig
from gateway.digest import build_digest
from gateway.keyring import open_keyring
from gateway.model import ExceptionKind
from gateway.retention import purge
from gateway.revision_store import Planned

RETENTION_DAYS = 90

__all__ = ["area"]  # the shared fixture, imported for pytest

# The police correct the time of incident CC-1: an amendment to each of its schools.
CORRECTED_TIME = sheet(
    row("CC-1", "Ava Ashdown", time="23:40"),
    row("CC-1", "Cara Ashdown", time="23:40"),
    row("CC-2", "Dan Birch"),
)


def test_a_corrected_sheet_sends_nothing_about_a_notification_the_navigator_withheld(
    area: Area,
) -> None:
    area.take(sheet(*FIRST_ROWS))
    withheld = first_reference("CC-1", ELM)
    assert area.command(f"WITHHOLD {withheld} the family has moved away", now=ARRIVAL).done

    area.take(CORRECTED_TIME, at=CORRECTED)

    # Elm was never told about CC-1: an amendment would tell it what the Navigator withheld.
    sealed = area.conn.execute(
        "SELECT m.reference FROM message m JOIN notification n ON n.reference = m.reference"
        " WHERE n.urn = ? AND n.incident_ref = 'CC-1' AND m.state != 'cancelled'",
        (ELM,),
    ).fetchall()
    assert sealed == []
    follow_ups = [n for n in area.notifications() if n["follows"] == withheld]
    assert [n["state"] for n in follow_ups] == ["withheld"]


def test_an_amendment_approved_before_its_first_notification_waits_for_it(area: Area) -> None:
    settings = area.config.config.model_copy(update={"approval": ApprovalSection(required=True)})
    area.config = LoadedConfig(None, settings)
    first_batch = area.take(sheet(*FIRST_ROWS)).recorded.intake_id
    corrected = area.take(CORRECTED_TIME, at=CORRECTED).recorded.intake_id
    first = first_reference("CC-1", ELM)

    # The amendment is held too, in the batch that brought it, and the digest says so.
    waiting = {
        w.reference: w.intake_id
        for w in build_digest(area.conn, now=CORRECTED, since=None).awaiting_approval
    }
    assert waiting[first] == first_batch and waiting[f"{first}-2"] == corrected
    approved = area.command(f"APPROVE B{corrected}")
    assert approved.done
    assert f"{first}-2 waits for {first}, not approved yet" in approved.detail

    # Approving the correction is not approving what it corrects: the school would be sent
    # an amendment of a notification it never had.
    due = {m.reference for m in outbox.due_messages(area.conn, NINE + timedelta(minutes=1))}
    assert f"{first}-2" not in due and first not in due

    assert area.command(f"APPROVE B{first_batch}").done
    due_now = outbox.due_messages(area.conn, NINE + timedelta(minutes=1))
    references = [m.reference for m in due_now]
    assert references.index(first) < references.index(f"{first}-2")


def test_withholding_a_notification_withholds_the_amendment_planned_after_it(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))  # sealed, waiting for 09:00
    area.take(CORRECTED_TIME, at=CORRECTED)  # its amendment, waiting for 09:00 too
    first = first_reference("CC-1", ELM)

    result = area.command(f"WITHHOLD {first} the family has moved away", now=CORRECTED)

    assert result.done, result.line
    assert f"{first}-2" in result.detail
    due = {m.reference for m in outbox.due_messages(area.conn, NINE)}
    assert first not in due and f"{first}-2" not in due
    states = {n["reference"]: n["state"] for n in area.notifications()}
    assert states[first] == states[f"{first}-2"] == "withheld"


def test_a_sheet_naming_an_incident_after_its_purge_is_not_sent_as_a_silent_amendment(
    area: Area,
) -> None:
    area.take(sheet(*FIRST_ROWS))
    send_all(area, at=NINE)
    later = ARRIVAL + timedelta(days=RETENTION_DAYS + 10)
    report = purge(area.conn, days=RETENTION_DAYS, now=later, actor="test")
    assert set(report.incidents) == {"CC-1", "CC-2"}

    # The police's late correction of the time of CC-1, months on.
    taken = area.take(CORRECTED_TIME, at=later, file_name="Encompass CC-1 corrected.xlsx")

    # What the school was told is gone: compared with the blanks, everything would read as
    # changed, and each school would be sent it as an amendment without anyone deciding.
    assert taken.planned == {Planned.PURGED: 3}
    assert (
        area.conn.execute("SELECT COUNT(*) FROM message WHERE state = 'sealed'").fetchone()[0] == 0
    )
    first = first_reference("CC-1", ELM)
    digest = build_digest(area.conn, now=later, since=None)
    listed = {item.reference: item.kind for item in digest.notification_exceptions}
    assert listed[f"{first}-2"] is ExceptionKind.TOLD_PURGED

    # The Navigator decides: RESEND sends the file's details as a follow-up of the first.
    result = area.command(f"RESEND {first}-2", now=later)
    assert result.done, result.line
    text = area.opened(f"{first}-2", names=["Ava Ashdown"])
    assert f"follows notification {first}" in text and "23:40" in text


@pytest.mark.parametrize("verb", ["RESEND {}", "RESEND {} DEPUTY", "WITHDRAW {}"])
def test_resending_or_withdrawing_a_purged_notification_is_refused_not_sent_blank(
    area: Area, verb: str
) -> None:
    area.take(sheet(*FIRST_ROWS))
    send_all(area, at=NINE)
    later = ARRIVAL + timedelta(days=RETENTION_DAYS + 10)
    purge(area.conn, days=RETENTION_DAYS, now=later, actor="test")
    before = area.messages()

    result = area.command(verb.format(first_reference("CC-1", ELM)), now=later)

    assert not result.done
    assert "purged" in result.detail
    assert area.messages() == before


def test_a_notification_sealed_for_a_dsl_the_directory_then_replaced_is_not_sent_to_them(
    sending_day: SendingDay, key_factory: KeyFactory
) -> None:
    day = sending_day
    day.run("process", str(day.sample.workbook))  # 07:00: sealed for each school's DSL
    rows = day.contacts()
    urn = min(day.notified)
    (old,) = [r for r in rows if int(r["URN"]) == urn and r["Role"] == "DSL"]
    leaver = old["Email"]
    new = key_factory.make("new.dsl@school.example.org")
    with open_keyring(day.home) as keyring:
        new.install_public(keyring)
    old["Email"], old["Fingerprint"] = new.email, new.fingerprint
    day.write_contacts(rows)
    day.run("directory", "import", "--no-progress", now="2026-03-02T08:00:00+00:00")

    day.run("dispatch", now="2026-03-02T09:00:00+00:00")

    # The DSL who left is not sent a child's details after the LA took them off the list;
    # the new DSL is, sealed to their own key.
    sent = day.received("notification")
    assert [r for r in sent if leaver in r.rcpt_tos] == []
    (to_new,) = [r for r in sent if new.email in r.rcpt_tos]
    assert b"Content-Type: multipart/encrypted" in to_new.data


def test_a_notification_whose_school_lost_every_contact_before_nine_is_an_exception_not_sent(
    sending_day: SendingDay, key_factory: KeyFactory
) -> None:
    day = sending_day
    day.run("process", str(day.sample.workbook))
    urn = min(day.notified)
    rows = day.contacts()
    gone = {r["Email"] for r in rows if int(r["URN"]) == urn}
    day.write_contacts([r for r in rows if int(r["URN"]) != urn])
    day.run("directory", "import", "--no-progress", now="2026-03-02T08:00:00+00:00")

    day.run("dispatch", now="2026-03-02T09:00:00+00:00")

    assert [r for r in day.received("notification") if gone & set(r.rcpt_tos)] == []
    with day.state() as conn:
        states = {
            row["state"]
            for row in conn.execute("SELECT state FROM notification WHERE urn = ?", (urn,))
        }
    assert states == {"exception"}  # in the Navigator's digest, never silently dropped


def test_purge_and_audit_find_on_an_empty_database_and_with_the_wrong_storage_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEASON_STORAGE_KEY", StorageKey.generate().text())
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[state]\ndatabase = "{tmp_path / "state.sqlite3"}"\n'
        'storage_key = { env = "SEASON_STORAGE_KEY" }\n',
        encoding="utf-8",
    )

    def run(*args: str) -> Result:
        argv = ["--config", str(config), "--now", "2026-06-01T12:00:00+00:00", *args]
        return CliRunner().invoke(cli, argv)

    find = ("audit", "find", "--name", "Ava Ashdown", "--dob", "2016-05-04")
    for args in (("purge", "--dry-run"), ("purge",), find, ("audit", "verify")):
        assert run(*args).exit_code == 0, run(*args).output
    assert "0 shared, 0 decisions recorded" in run(*find).output

    # Another key does not open it: every command says so, and none goes on with it.
    monkeypatch.setenv("SEASON_STORAGE_KEY", StorageKey.generate().text())
    for args in (("purge",), find, ("audit", "verify")):
        refused = run(*args)
        assert refused.exit_code != 0
        assert "does not open the state database" in refused.output
        assert "Traceback" not in refused.output

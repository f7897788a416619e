"""Resent and corrected police spreadsheets (DESIGN.md invariant 5): only what is new or
changed is sent, marked as what it is; what has gone is the Navigator's to decide.

Each test takes in real .xlsx files (openpyxl) through the intake the service uses
(`plan_bytes` and `take_in`), against a small directory in the state database, and seals
with real GnuPG keys; the notifications are decrypted as each DSL would."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from invariants import assert_sealed
from openpyxl import Workbook
from pgp_keys import KeyFactory, PgpKey
from police_workbooks import RULES_DIR, xlsx

from gateway import notification_store, outbox
from gateway.amendments import (
    Sheet,
    child_identity,
    follow_up,
    revises,
    sheet_name,
    what_was_told,
)
from gateway.cli import cli
from gateway.commands import parse_command
from gateway.config import (
    Config,
    DispatchSection,
    GnupgSection,
    LoadedConfig,
    NavigatorSection,
    StateSection,
)
from gateway.digest import build_digest
from gateway.digest_render import render_digest
from gateway.keyring import Keyring
from gateway.model import ExceptionKind, Notification
from gateway.notification_store import NotificationState
from gateway.notifications import plan_notifications, reference_code
from gateway.operations import TakenIn, plan_bytes, take_in
from gateway.render import NavigatorContact
from gateway.resolutions import CommandResult, execute
from gateway.return_sheet import return_rows
from gateway.revision_store import Planned, WithdrawalRefused, gone_children, plan_withdrawal
from gateway.ruleset import load_rules
from gateway.store import open_state, transaction

ARRIVAL = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday morning, before 09:00
CORRECTED = ARRIVAL + timedelta(hours=1)  # the police's corrected resend, the same morning
NEXT_DAY = ARRIVAL + timedelta(days=1)
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATE_MORNING = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)  # a correction after the 09:00 send
FILE = "Encompass daily.xlsx"

ELM, OAK = 110001, 110002
HEADER = [
    "Incident Ref",
    "Date",
    "Time",
    "Risk",
    "Circumstances",
    "Child Name",
    "DOB",
    "Relationship",
]
PUPILS = {
    # name: (date of birth, school)
    "Ava Ashdown": (date(2016, 5, 4), ELM),
    "Ben Ashdown": (date(2018, 7, 1), ELM),
    "Cara Ashdown": (date(2014, 2, 2), OAK),
    "Dan Birch": (date(2015, 9, 9), OAK),
    "Eve Cole": (date(2017, 1, 12), ELM),
}
ALL_NAMES = list(PUPILS)


def row(ref: str, child: str, *, time: str = "22:15", relationship: str = "Mother") -> list[str]:
    dob = PUPILS[child][0]
    return [
        ref,
        "01/03/2026",
        time,
        "Medium",
        "Verbal argument overheard by neighbours",
        child,
        dob.strftime("%d/%m/%Y"),
        relationship,
    ]


def sheet(*rows: Sequence[str], saved_by: str = "MASH desk") -> bytes:
    def properties(book: Workbook) -> None:
        book.properties.creator = saved_by

    return xlsx(("Incidents", [HEADER, *rows]), tweak=properties)


# The first file of the day: one incident with a child at each school, one with one.
FIRST_ROWS = (row("CC-1", "Ava Ashdown"), row("CC-1", "Cara Ashdown"), row("CC-2", "Dan Birch"))


@dataclass
class Area:
    """A state database with two schools, their DSLs' real keys, and the gateway's keyring."""

    conn: sqlite3.Connection
    config: LoadedConfig
    dsl_keys: dict[int, PgpKey]
    navigator: PgpKey
    recipient_home: Callable[[PgpKey], Keyring]

    def take(self, data: bytes, *, at: datetime = ARRIVAL, file_name: str = FILE) -> TakenIn:
        rules = load_rules(RULES_DIR)
        intake, plan = plan_bytes(
            data, file_name, conn=self.conn, config=self.config, rules=rules, arrival=at
        )
        return take_in(self.conn, intake, plan, config=self.config, rules=rules, actor="test")

    def notifications(self) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT reference, urn, kind, follows, state FROM notification ORDER BY rowid"
        ).fetchall()

    def messages(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM message").fetchone()[0])

    def opened(self, reference: str, *, names: Sequence[str]) -> str:
        """The notification's one sealed message, decrypted by its school's DSL: asserts it
        is sealed, names `names` and no other child; returns its text part."""
        (message,) = self.conn.execute(
            "SELECT body, recipient FROM message WHERE reference = ?", (reference,)
        ).fetchall()
        urn = self.conn.execute(
            "SELECT urn FROM notification WHERE reference = ?", (reference,)
        ).fetchone()[0]
        inner = assert_sealed(
            bytes(message["body"]),
            recipient_home_or_keyring=self.recipient_home(self.dsl_keys[urn]),
            navigator_fingerprint=self.navigator.fingerprint,
            reference=reference,
            must_contain=names,
            must_not_contain=[name for name in ALL_NAMES if name not in names],
            dates_of_birth=[dob for dob, _ in PUPILS.values()],
        )
        text = inner.get_body(("plain",))
        assert isinstance(text, EmailMessage)
        return str(text.get_content())

    def command(self, line: str, *, now: datetime = CORRECTED) -> CommandResult:
        """The Navigator's command, as by signed mail or `resolve`."""
        command = parse_command(line)
        return execute(self.conn, command, config=self.config, now=now, actor="test", signer=None)

    def audit(self, event: str) -> list[dict[str, object]]:
        rows = self.conn.execute("SELECT data FROM audit WHERE event = ?", (event,)).fetchall()
        return [json.loads(r["data"]) for r in rows]


@pytest.fixture
def area(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
) -> Area:
    database = tmp_path / "state.sqlite3"
    conn = open_state(database)
    dsl_keys = {}
    for urn, name in ((ELM, "Elm Primary"), (OAK, "Oak Primary")):
        conn.execute(
            "INSERT INTO establishment (urn, name, la_code, la_name, type_name, phase_name,"
            " status_name, is_open, postcode, telephone, statutory_low_age, statutory_high_age)"
            " VALUES (?, ?, 873, 'Cambridgeshire', 'Community school', 'Primary', 'Open', 1,"
            " 'CB1 1AA', '01223 000000', 4, 11)",
            (urn, name),
        )
        key = key_factory.make(f"dsl@{name.split()[0].lower()}.example.org")
        key.install_public(gateway_keyring)
        dsl_keys[urn] = key
        conn.execute(
            "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
            " VALUES (?, 'dsl', 'Dana Lead', ?, '', ?)",
            (urn, key.email, key.fingerprint),
        )
    for index, (name, (dob, urn)) in enumerate(PUPILS.items()):
        forename, surname = name.split()
        conn.execute(
            "INSERT INTO pupil (upn, legal_forename, legal_surname, preferred_forename,"
            " preferred_surname, middle_names, dob, postcode, urn)"
            " VALUES (?, ?, ?, '', '', '', ?, 'CB1 1AA', ?)",
            (f"UPN{index}", forename, surname, dob.isoformat(), urn),
        )
    settings = Config(
        state=StateSection(database=database),
        gnupg=GnupgSection(home=gateway_keyring.home),
        navigator=NavigatorSection(
            email=navigator_key.email, fingerprint=navigator_key.fingerprint
        ),
        dispatch=DispatchSection(),
    )
    return Area(conn, LoadedConfig(None, settings), dsl_keys, navigator_key, recipient_home)


def first_reference(incident_ref: str, urn: int) -> str:
    return reference_code(incident_ref, urn)


def test_the_first_file_notifies_each_school_of_its_own_children(area: Area) -> None:
    taken = area.take(sheet(*FIRST_ROWS))

    assert taken.planned == {Planned.FIRST: 3}
    assert area.opened(first_reference("CC-1", ELM), names=["Ava Ashdown"])
    assert area.opened(first_reference("CC-1", OAK), names=["Cara Ashdown"])


def test_process_says_what_a_corrected_resend_planned_and_what_is_gone(
    area: Area, tmp_path: Path
) -> None:
    settings = area.config.config
    assert settings.navigator.fingerprint is not None
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[state]\ndatabase = "{settings.state.database}"\n'
        f'[gnupg]\nhome = "{settings.gnupg.home}"\n'
        f'[navigator]\nemail = "{settings.navigator.email}"\n'
        f'fingerprint = "{settings.navigator.fingerprint}"\n',
        encoding="utf-8",
    )
    first, corrected = tmp_path / FILE, tmp_path / "Encompass daily (corrected).xlsx"
    first.write_bytes(sheet(*FIRST_ROWS))
    corrected.write_bytes(sheet(row("CC-1", "Ava Ashdown", time="23:40"), row("CC-2", "Dan Birch")))

    def process(path: Path, now: datetime) -> str:
        argv = ["--config", str(config), "--now", now.isoformat(), "process", str(path)]
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 0, result.output
        return result.output

    assert "notifications: 3 planned\n" in process(first, ARRIVAL)
    said = process(corrected, CORRECTED)

    assert "notifications: 0 planned, 1 amended, 1 unchanged since an earlier file\n" in said
    assert "gone from the spreadsheet this one corrects: 1 of its children" in said


def test_an_identical_resend_records_and_sends_nothing(area: Area) -> None:
    data = sheet(*FIRST_ROWS)
    area.take(data)
    before = (area.notifications(), area.messages())

    again = area.take(data, at=CORRECTED)

    assert not again.recorded.new
    assert (area.notifications(), area.messages()) == before


def test_a_resend_with_the_same_rows_sends_nothing_new(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    before = (area.notifications(), area.messages())

    # Saved again by the police: other bytes, the same content.
    resaved = sheet(*FIRST_ROWS, saved_by="another officer")
    again = area.take(resaved, at=CORRECTED, file_name="Encompass daily (2).xlsx")

    assert again.recorded.new
    assert again.planned == {Planned.UNCHANGED: 3}
    assert again.gone == 0
    assert (area.notifications(), area.messages()) == before


def test_a_new_child_of_a_notified_incident_gets_one_notification_naming_only_them(
    area: Area,
) -> None:
    area.take(sheet(*FIRST_ROWS))
    before = {n["reference"] for n in area.notifications()}

    taken = area.take(sheet(*FIRST_ROWS, row("CC-1", "Ben Ashdown")), at=CORRECTED)

    assert taken.planned == {Planned.ADDED: 1, Planned.UNCHANGED: 2}
    (added,) = [n for n in area.notifications() if n["reference"] not in before]
    first = first_reference("CC-1", ELM)
    assert (added["reference"], added["urn"], added["kind"], added["follows"]) == (
        f"{first}-2",
        ELM,
        "notification",
        first,
    )
    text = area.opened(added["reference"], names=["Ben Ashdown"])  # not Ava, not Cara
    assert f"follows notification {first}" in text


def test_a_new_incident_in_a_later_file_is_notified(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))

    taken = area.take(sheet(*FIRST_ROWS, row("CC-3", "Eve Cole")), at=CORRECTED)

    assert taken.planned == {Planned.FIRST: 1, Planned.UNCHANGED: 3}
    assert area.opened(first_reference("CC-3", ELM), names=["Eve Cole"])


def test_a_changed_time_is_an_amendment_that_references_the_first(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    corrected = sheet(
        row("CC-1", "Ava Ashdown", time="23:40"),
        row("CC-1", "Cara Ashdown", time="23:40"),
        row("CC-2", "Dan Birch"),
    )

    taken = area.take(corrected, at=CORRECTED)

    assert taken.planned == {Planned.AMENDMENT: 2, Planned.UNCHANGED: 1}
    first = first_reference("CC-1", ELM)
    amended = conn_row(area, f"{first}-2")
    assert (amended["kind"], amended["follows"]) == ("amendment", first)
    (sealed,) = area.conn.execute(
        "SELECT body FROM message WHERE reference = ?", (f"{first}-2",)
    ).fetchall()
    assert b"(amended)" in bytes(sealed["body"])  # the subject says so, and nothing else
    text = area.opened(f"{first}-2", names=["Ava Ashdown"])
    assert f"amends notification {first}" in text
    assert "- Date and time of the incident" in text
    assert "Sunday 1 March 2026, 23:40" in text


def test_a_changed_detail_at_one_school_does_not_touch_the_other(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    corrected = sheet(
        row("CC-1", "Ava Ashdown"),
        row("CC-1", "Cara Ashdown", relationship="Stepfather"),
        row("CC-2", "Dan Birch"),
    )

    taken = area.take(corrected, at=CORRECTED)

    assert taken.planned == {Planned.AMENDMENT: 1, Planned.UNCHANGED: 2}
    follow_ups = [n for n in area.notifications() if n["follows"] is not None]
    assert [(n["urn"], n["kind"]) for n in follow_ups] == [(OAK, "amendment")]
    text = area.opened(follow_ups[0]["reference"], names=["Cara Ashdown"])
    assert "Cara Ashdown: relationship of the parties to the child" in text
    assert "Stepfather" in text


def test_a_removed_child_is_reported_to_the_navigator_not_sent_anything(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    before = (area.notifications(), area.messages())

    taken = area.take(
        sheet(row("CC-1", "Ava Ashdown"), row("CC-2", "Dan Birch")),
        at=CORRECTED,
        file_name="Encompass daily CORRECTED.xlsx",
    )

    assert taken.gone == 1
    assert (area.notifications(), area.messages()) == before
    (gone,) = gone_children(area.conn)
    assert (gone.child, gone.incident_ref, gone.urn, gone.incident_gone) == (
        "Cara Ashdown",
        "CC-1",
        OAK,
        False,
    )
    assert gone.reference == first_reference("CC-1", OAK)
    (entry,) = area.audit("child.gone")
    assert "Cara" not in json.dumps(entry)
    digest = build_digest(area.conn, now=CORRECTED, since=None)
    assert digest.gone == (gone,) and not digest.is_empty
    text = render_digest(digest, navigator=NavigatorContact("Nav", "nav@example.org"))
    plain = text.get_body(("plain",))
    assert isinstance(plain, EmailMessage)
    content = str(plain.get_content())
    assert "Cara Ashdown" in content
    assert f"WITHDRAW {gone.reference}" in content


def test_a_withdrawal_notice_is_sealed_to_the_school_on_request(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    send_all(area, at=NINE)
    area.take(sheet(row("CC-1", "Ava Ashdown"), row("CC-2", "Dan Birch")), at=LATE_MORNING)
    first = first_reference("CC-1", OAK)

    result = area.command(f"WITHDRAW {first}", now=LATE_MORNING)

    assert result.done and result.send_now, result.line
    (notice,) = [n for n in area.notifications() if n["kind"] == "withdrawal"]
    assert notice["state"] == "sealed"

    assert (notice["reference"], notice["follows"]) == (f"{first}-2", first)
    assert result.line == (
        f"DONE WITHDRAW {first}: withdrawal notice {first}-2 (1 child) sealed, to be sent at once"
    )
    text = area.opened(notice["reference"], names=["Cara Ashdown"])
    assert f"notification {first}, sent earlier, is withdrawn" in text
    assert "Verbal argument" not in text  # no incident detail, nothing new about the child
    (gone,) = gone_children(area.conn)
    assert gone.withdrawal == notice["reference"]
    digest = build_digest(area.conn, now=CORRECTED, since=None)
    assert digest.gone == ()  # settled: no longer the Navigator's to decide
    again = area.command(f"WITHDRAW {first}", now=LATE_MORNING)
    assert not again.done and "already been withdrawn" in again.detail


def test_a_withdrawal_never_goes_before_the_notification_it_withdraws(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))  # Cara's notification waits for 09:00
    area.take(sheet(row("CC-1", "Ava Ashdown"), row("CC-2", "Dan Birch")), at=CORRECTED)
    first = first_reference("CC-1", OAK)

    result = area.command(f"WITHDRAW {first}")

    assert result.done and not result.send_now, result.line
    assert "to be sent Monday 2 March 2026, 09:00, after what it withdraws" in result.detail
    dues = dict(
        area.conn.execute(
            "SELECT reference, due FROM message WHERE reference IN (?, ?)", (first, f"{first}-2")
        ).fetchall()
    )
    assert dues[first] == dues[f"{first}-2"]  # the same 09:00: sent in sealing order


def test_a_note_on_a_gone_child_settles_it_without_a_withdrawal(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    area.take(sheet(row("CC-1", "Ava Ashdown"), row("CC-2", "Dan Birch")), at=CORRECTED)
    first = first_reference("CC-1", OAK)

    assert area.command(f"NOTE {first} police confirm Cara was there; typing slip").done

    (gone,) = gone_children(area.conn)
    assert gone.settled and gone.withdrawal is None
    assert build_digest(area.conn, now=CORRECTED, since=None).gone == ()
    assert [n for n in area.notifications() if n["kind"] == "withdrawal"] == []


def test_a_child_now_routed_to_another_school_is_reported_for_the_first(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    # The pupil roll refreshed between the files: Cara has moved to Elm.
    area.conn.execute("UPDATE pupil SET urn = ? WHERE legal_forename = 'Cara'", (ELM,))

    taken = area.take(sheet(*FIRST_ROWS, saved_by="desk, again"), at=CORRECTED)

    assert taken.planned == {Planned.ADDED: 1, Planned.UNCHANGED: 1}
    elm = first_reference("CC-1", ELM)
    assert area.opened(f"{elm}-2", names=["Cara Ashdown"])
    (gone,) = gone_children(area.conn)
    assert (gone.child, gone.moved, gone.reference) == (
        "Cara Ashdown",
        True,
        first_reference("CC-1", OAK),
    )
    digest = render_digest(
        build_digest(area.conn, now=CORRECTED, since=None),
        navigator=NavigatorContact("Nav", "nav@example.org"),
    )
    plain = digest.get_body(("plain",))
    assert isinstance(plain, EmailMessage)
    assert "now at another school" in str(plain.get_content())


def test_a_child_named_again_by_a_further_correction_is_settled(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    area.take(sheet(row("CC-1", "Ava Ashdown"), row("CC-2", "Dan Birch")), at=CORRECTED)

    taken = area.take(sheet(*FIRST_ROWS, saved_by="desk, again"), at=LATE_MORNING)

    assert taken.planned == {Planned.UNCHANGED: 3}  # Oak was told of Cara already
    (gone,) = gone_children(area.conn)
    assert gone.named_again and gone.settled
    assert build_digest(area.conn, now=LATE_MORNING, since=None).gone == ()


def test_a_whole_incident_gone_is_reported_child_by_child(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))

    taken = area.take(sheet(row("CC-1", "Ava Ashdown"), row("CC-1", "Cara Ashdown")), at=CORRECTED)

    assert taken.gone == 1
    (gone,) = gone_children(area.conn)
    assert (gone.child, gone.incident_ref, gone.incident_gone) == ("Dan Birch", "CC-2", True)


def test_a_child_added_with_a_corrected_detail_is_one_amendment_naming_both(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    corrected = sheet(
        row("CC-1", "Ava Ashdown", relationship="Father"),
        row("CC-1", "Ben Ashdown", relationship="Father"),
        row("CC-1", "Cara Ashdown"),
        row("CC-2", "Dan Birch"),
    )

    taken = area.take(corrected, at=CORRECTED)

    assert taken.planned == {Planned.AMENDMENT: 1, Planned.UNCHANGED: 2}
    text = area.opened(f"{first_reference('CC-1', ELM)}-2", names=["Ava Ashdown", "Ben Ashdown"])
    assert "- Ava Ashdown: relationship of the parties to the child" in text
    assert "- Ben Ashdown: named for the first time" in text


def test_nothing_is_withdrawn_from_a_school_never_sent_anything(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))
    reference = first_reference("CC-2", OAK)
    with transaction(area.conn):  # as sealing records a school nobody can receive at
        notification_store.mark(
            area.conn,
            reference,
            NotificationState.EXCEPTION,
            at=ARRIVAL,
            actor="test",
            kind=ExceptionKind.NO_KEY,
        )

    result = area.command(f"WITHDRAW {reference}")
    assert not result.done and "nothing to withdraw" in result.detail


def test_withdrawing_what_is_no_notification_is_refused(area: Area) -> None:
    with pytest.raises(WithdrawalRefused, match="no notification has this reference"):
        plan_withdrawal(area.conn, "OE-00000-00000", now=CORRECTED, actor="test")
    assert area.audit("withdrawal.planned") == []


def test_the_next_days_file_makes_nothing_disappear(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))

    # The next day's sheet, under the same name, with one of yesterday's incidents again.
    taken = area.take(
        sheet(row("CC-2", "Dan Birch"), row("CC-3", "Eve Cole")), at=NEXT_DAY, file_name=FILE
    )

    assert taken.gone == 0
    assert gone_children(area.conn) == []
    assert taken.planned == {Planned.FIRST: 1, Planned.UNCHANGED: 1}


def test_a_second_batch_the_same_day_makes_nothing_disappear(area: Area) -> None:
    area.take(sheet(*FIRST_ROWS))

    taken = area.take(sheet(row("CC-3", "Eve Cole")), at=CORRECTED)

    assert taken.gone == 0
    assert taken.planned == {Planned.FIRST: 1}


def test_a_corrected_spelling_is_another_child_and_the_old_name_is_reported_gone(
    area: Area,
) -> None:
    area.take(sheet(*FIRST_ROWS))
    respelt = row("CC-1", "Ava Ashdown")
    respelt[5] = "Eva Ashdown"  # the same date of birth: a twin would look just like this

    taken = area.take(
        sheet(respelt, row("CC-1", "Cara Ashdown"), row("CC-2", "Dan Birch")), at=CORRECTED
    )

    assert taken.gone == 1
    (gone,) = gone_children(area.conn)
    assert (gone.child, gone.reference) == ("Ava Ashdown", first_reference("CC-1", ELM))
    # "Eva" is on no roll: an exception for the Navigator, never merged into Ava's record.
    assert taken.planned == {Planned.UNCHANGED: 2}


def send_all(area: Area, *, at: datetime) -> None:
    for message in area.conn.execute("SELECT id FROM message WHERE state = 'sealed'").fetchall():
        outbox.mark_sending(area.conn, message["id"], at=at, actor="test")
        outbox.mark_sent(area.conn, message["id"], sent_at=at, actor="test")


def test_the_return_sheet_of_a_corrected_resend_gives_each_child_the_notification_that_named_them(
    area: Area,
) -> None:
    area.take(sheet(*FIRST_ROWS))
    send_all(area, at=NINE)
    taken = area.take(sheet(*FIRST_ROWS, row("CC-1", "Ben Ashdown")), at=CORRECTED)
    resend = taken.recorded.intake_id

    assert return_rows(area.conn, resend) is None  # Ben's notification has not gone yet
    send_all(area, at=NINE + timedelta(minutes=30))
    rows = return_rows(area.conn, resend)

    assert rows is not None
    sent = {r.source.row: (r.outcome, r.sent_at) for r in rows}
    assert sent == {
        2: ("Notified", NINE),  # Ava: the first notification
        3: ("Notified", NINE),  # Cara
        4: ("Notified", NINE),  # Dan
        5: ("Notified", NINE + timedelta(minutes=30)),  # Ben: the follow-up naming him
    }


def conn_row(area: Area, reference: str) -> sqlite3.Row:
    found = area.conn.execute(
        "SELECT * FROM notification WHERE reference = ?", (reference,)
    ).fetchone()
    assert found is not None
    return found


# --------------------------------------------------------------------------------------
# The rules on their own (gateway/amendments.py)


@pytest.mark.parametrize(
    "resent",
    [
        "Encompass daily (2).xlsx",
        "encompass_daily v3.xlsx",
        "Copy of Encompass daily - CORRECTED.xlsx",
        "Encompass Daily amended.XLSX",
    ],
)
def test_a_resend_under_a_marked_name_is_the_same_sheet(resent: str) -> None:
    assert sheet_name(resent) == sheet_name(FILE) == "encompass daily"


def test_a_dated_name_for_another_day_is_another_sheet() -> None:
    assert sheet_name("Encompass 01-03-2026.xlsx") != sheet_name("Encompass 02-03-2026.xlsx")


def seen(file_name: str, at: datetime, *refs: str) -> Sheet:
    return Sheet(file_name, at, frozenset(refs))


def test_a_revision_is_the_same_day_the_same_sheet_and_shares_an_incident() -> None:
    earlier = seen(FILE, ARRIVAL, "CC-1", "CC-2")
    assert revises(seen(FILE, CORRECTED, "CC-1"), earlier)
    assert not revises(seen(FILE, NEXT_DAY, "CC-1"), earlier)  # the next day's sheet
    assert not revises(seen(FILE, CORRECTED, "CC-3"), earlier)  # a second batch
    assert not revises(seen("Other.xlsx", CORRECTED, "CC-1"), earlier)
    assert not revises(earlier, seen(FILE, CORRECTED, "CC-1"))  # never backwards


def test_the_london_day_decides_not_the_utc_one() -> None:
    # 23:30 and 00:30 on a summer night: the same UTC day, two London days.
    late = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)
    after_midnight = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    assert not revises(seen(FILE, after_midnight, "CC-1"), seen(FILE, late, "CC-1"))


def test_under_the_minimal_template_a_changed_circumstance_is_no_amendment(area: Area) -> None:
    (candidate,) = plan_notifications_of(area, [row("CC-2", "Dan Birch")])
    told = what_was_told([candidate])
    recircumstanced = replace(
        candidate, incident=replace(candidate.incident, circumstances="Another account")
    )

    assert follow_up(recircumstanced, told, template="minimal") is None
    amended = follow_up(recircumstanced, told, template="full")
    assert amended is not None and amended.changes == ("Brief circumstances",)


def test_a_name_written_differently_is_the_same_child() -> None:
    assert child_identity("Zoë O'Neill-Smith", date(2016, 1, 2)) == child_identity(
        "ZOE ONEILL SMITH", date(2016, 1, 2)
    )
    assert child_identity("Ava Ashdown", date(2016, 5, 4)) != child_identity(
        "Eva Ashdown", date(2016, 5, 4)
    )


def plan_notifications_of(area: Area, rows: Sequence[Sequence[str]]) -> list[Notification]:
    rules = load_rules(RULES_DIR)
    intake, plan = plan_bytes(
        sheet(*rows), FILE, conn=area.conn, config=area.config, rules=rules, arrival=ARRIVAL
    )
    return plan_notifications(intake.incidents, plan.decisions)

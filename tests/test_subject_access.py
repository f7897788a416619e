"""`audit find`: what was shared about exactly one child — not a sibling at another school,
not a namesake born another day — with whom and when, exported for a subject access request
or a case review, with the adults' details redacted when asked."""

import json
from datetime import date
from pathlib import Path

from click.testing import CliRunner
from mail_world import World
from openpyxl import load_workbook
from pgp_keys import PgpKey
from recorded_day import REPLIED_INCIDENT, RecordedDay, day  # noqa: F401  (the fixture)
from test_manager_alert import CLOSED, manager, plan, sealer  # noqa: F401  (the fixture)
from test_manager_alert import NOW as CLOSED_AT

from gateway.cli import cli
from gateway.config import ManagerSection
from gateway.intake_store import record_plan
from gateway.keyring import Keyring
from gateway.manager_alert import queue_manager_alerts
from gateway.store import open_state
from gateway.subject_access import REDACTED, SubjectAccess, find_subject

NOW = "2026-03-03T10:00:00+00:00"
# The sample day: Chidi and Andrei Caldton are siblings in one incident at two schools;
# Grace Caldton is in another incident; each was notified to their own school.
CHIDI = ("Chidi Caldton", date(2021, 5, 15))
ANDREI = ("Andrei Caldton", date(2022, 10, 25))
GRACE = ("Grace Caldton", date(2012, 11, 12))


def _find(place: World, name: str, dob: date) -> SubjectAccess:
    with place.state() as conn:
        return find_subject(conn, name=name, dob=dob)


def _references(place: World, name: str, dob: date) -> set[str]:
    """The notifications that named the child, read from their content."""
    with place.state() as conn:
        rows = conn.execute("SELECT reference, unseal(content) AS content FROM notification")
        return {
            row["reference"]
            for row in rows
            for child in json.loads(row["content"])["children"]
            if f"{child['forename']} {child['surname']}" == name and child["dob"] == dob.isoformat()
        }


def test_audit_find_lists_exactly_the_notifications_about_that_child(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    found = _find(world, *CHIDI)
    assert {item.reference for item in found.shared} == _references(world, *CHIDI)
    assert len(found.shared) == 1
    assert [decision.outcome for decision in found.recorded] == ["notify"]


def test_a_sibling_at_another_school_and_a_relative_in_another_incident_are_not_listed(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    chidi = {item.reference for item in _find(world, *CHIDI).shared}
    others = _references(world, *ANDREI) | _references(world, *GRACE)
    assert others and not chidi & others


def test_a_namesake_born_on_another_day_is_not_listed(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    found = _find(world, CHIDI[0], date(2021, 5, 16))
    assert found.shared == () and found.recorded == ()


def test_the_name_is_matched_however_its_case_accents_and_order_are_written(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    written = _find(world, "Tomáš Brampden", date(2013, 1, 14))
    assert written.shared
    assert _find(world, "BRAMPDEN, tomas", date(2013, 1, 14)).shared == written.shared


def test_the_listing_says_with_whom_and_when_it_was_sealed_sent_read_and_replied(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    child = next(c for c in day.children if c.incident_ref == REPLIED_INCIDENT)
    (shared,) = _find(world, child.name, child.dob).shared
    with world.state() as conn:
        messages = conn.execute(
            "SELECT recipient, fingerprint, sealed_at, sent_at FROM message"
            " WHERE reference = ? ORDER BY id",
            (day.replied_reference,),
        ).fetchall()
    assert shared.reference == day.replied_reference
    assert [(d.recipient, d.fingerprint) for d in shared.deliveries] == [
        (m["recipient"], m["fingerprint"]) for m in messages
    ]
    first = shared.deliveries[0]
    assert first.sealed_at is not None and first.sealed_at.isoformat() == messages[0]["sealed_at"]
    assert first.sent_at is not None and first.sent_at.isoformat() == messages[0]["sent_at"]
    assert first.read_at is not None and first.replied_at is not None

    listed = world.run("audit", "find", "--name", child.name, "--dob", str(child.dob), now=NOW)
    assert day.replied_reference in listed.output
    assert messages[0]["recipient"] in listed.output
    assert messages[0]["fingerprint"] in listed.output


def test_the_export_has_a_row_per_message_that_carried_the_child(
    world: World,
    day: RecordedDay,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "sar.xlsx"
    name, dob = CHIDI
    world.run("audit", "find", "--name", name, "--dob", str(dob), "--export", str(out), now=NOW)
    (reference,) = _references(world, *CHIDI)
    with world.state() as conn:
        recipients = [
            row[0]
            for row in conn.execute(
                "SELECT recipient FROM message WHERE reference = ? ORDER BY id", (reference,)
            )
        ]
    book = load_workbook(out)
    shared = list(book["Shared"].iter_rows(values_only=True))
    header, rows = shared[0], shared[1:]
    column = {title: index for index, title in enumerate(header)}
    assert [row[column["Notification"]] for row in rows] == [reference] * len(recipients)
    assert [row[column["Recipient"]] for row in rows] == recipients
    assert {row[column["Child (as recorded)"]] for row in rows} == {name}
    assert len(list(book["Recorded"].iter_rows(min_row=2))) == 1


def test_redaction_removes_the_adults_details_and_keeps_what_was_shared_when(
    world: World,
    day: RecordedDay,  # noqa: F811
    tmp_path: Path,
) -> None:
    name, dob = CHIDI
    plain, redacted = tmp_path / "plain.xlsx", tmp_path / "redacted.xlsx"
    base = ["audit", "find", "--name", name, "--dob", str(dob), "--export"]
    world.run(*base, str(plain), now=NOW)
    world.run(*base, str(redacted), "--redact-third-parties", now=NOW)
    (reference,) = _references(world, *CHIDI)
    with world.state() as conn:
        content = json.loads(
            conn.execute(
                "SELECT unseal(content) FROM notification WHERE reference = ?", (reference,)
            ).fetchone()[0]
        )
        recipients = [r[0] for r in conn.execute("SELECT recipient FROM message")]
    incident, (child,) = content["incident"], content["children"]
    adults = [
        text
        for text in (
            incident["circumstances"],
            incident["location"],
            incident["other_info"],
            child["relationship"],
        )
        if text
    ]
    assert adults
    plain_cells, redacted_cells = _cells(plain), _cells(redacted)
    assert all(text in plain_cells for text in adults)
    everything = "\n".join(redacted_cells)  # absent from every cell, whole or in part
    assert not [text for text in adults if text in everything]
    assert not [address for address in recipients if address in everything]
    assert REDACTED in redacted_cells
    assert {name, reference, content["school_name"]} <= redacted_cells


def test_a_search_is_audited_by_counts_never_by_the_name(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    name, dob = CHIDI
    world.run("audit", "find", "--name", name, "--dob", str(dob), now=NOW)
    with world.state() as conn:
        (entry,) = conn.execute(
            "SELECT data FROM audit WHERE event = 'subject_access.found'"
        ).fetchall()
    assert json.loads(entry["data"]) == {
        "shared": 1,
        "recorded": 1,
        "exported": False,
        "redacted": False,
    }
    assert "Caldton" not in entry["data"]


def test_after_the_retention_period_nothing_is_found_about_a_purged_child(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("purge", now="2027-03-03T03:00:00+00:00")
    found = _find(world, *CHIDI)
    assert found.shared == () and found.recorded == ()


def test_redaction_without_an_export_and_a_date_not_written_as_iso_are_refused(
    world: World,
) -> None:
    base = ["--config", str(world.config), "audit", "find", "--name", CHIDI[0]]
    unexported = CliRunner().invoke(cli, [*base, "--dob", "2021-05-15", "--redact-third-parties"])
    assert unexported.exit_code == 2 and "--export" in unexported.output
    day_first = CliRunner().invoke(cli, [*base, "--dob", "15/05/2021"])
    assert day_first.exit_code == 2 and "15/05/2021" in day_first.output


def _cells(path: Path) -> set[str]:
    book = load_workbook(path)
    return {
        str(value)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    }


def test_the_managers_alert_about_a_closed_school_is_listed_as_shared_with_the_manager(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    manager: PgpKey,  # noqa: F811
) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    record_plan(conn, plan(CLOSED), incidents=1, actor="test")
    queue_manager_alerts(
        conn,
        plan(CLOSED),
        manager=ManagerSection(email=manager.email, fingerprint=manager.fingerprint),
        sealer=sealer(gateway_keyring, navigator_key),
        now=CLOSED_AT,
        actor="test",
    )
    assert CLOSED.child.dob is not None
    found = find_subject(conn, name=CLOSED.child.display_name, dob=CLOSED.child.dob)
    (alert,) = found.shared
    assert alert.to_manager and alert.incident_ref == CLOSED.incident_ref
    assert [(d.role, d.recipient, d.fingerprint) for d in alert.deliveries] == [
        ("manager", manager.email, manager.fingerprint)
    ]
    assert [(r.outcome, r.urn) for r in found.recorded] == [("withhold", CLOSED.urn)]
    assert "to the Education Safeguarding Manager" in found.render()

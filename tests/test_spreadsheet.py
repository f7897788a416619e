"""Reading the police's daily workbook: a golden corpus of messy spreadsheets made by code."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from police_workbooks import (
    FILE,
    HEADERS,
    LONG_HEADER,
    RULES_DIR,
    long_sheet,
    read,
    xlsx,
)

from gateway.clock import LONDON
from gateway.errors import RulesError
from gateway.model import (
    CellProblem,
    ChildRecord,
    CrimeStatus,
    Incident,
    Risk,
    SourceRow,
    SpreadsheetIntake,
)
from gateway.spreadsheet import ChildField, IncidentField, load_header_map

# --------------------------------------------------------------------------------------
# The golden file: a day's spreadsheet with most of what the police send


def _golden_tweaks(workbook: Workbook) -> None:
    sheet = workbook["Daily DA Report"]
    sheet.merge_cells("A1:K1")
    for column in "ABCDEF":  # the incident's cells merged down its two child rows
        sheet.merge_cells(f"{column}5:{column}6")
    sheet.column_dimensions["K"].hidden = True


# fmt: off
DAILY_ROWS: list[list[object]] = [
    ["Operation Encompass - daily notifications"],
    ["Cambridgeshire MASH"],
    [],
    ["Incident Ref", "Incident Date", "Time", "DASH Risk", "Crime / Non Crime",
     "Brief Circumstances", "Child's Name", "Child's D.O.B.",
     "Relationship of parties to child", "School", "Child Postcode"],
    ["CC-25-0101", "01/03/2025", "23:15", "High", "Crime", "Argument between adults",
     "SMITH, Jane", date(2015, 2, 1), "Mother and stepfather", "Riverside Primary", "cb1 2ab"],
    [None, None, None, None, None, None,
     "JOSH SMITH", "1.2.18", "Mother and stepfather", "Riverside Pri", ""],
    ["CC-25-0102", date(2025, 3, 2), "2.30pm", 15, "Non Crime", "Noise reported",
     "Amy O'NEILL", 42036, "Parents"],
    [],
    ["CC-25-0103", "02-Mar-2025", "0930", "DARA: standard risk", "NC", "",
     "Leo Grant", "31/02/2015", "Father and partner"],
    ["CC-25-0104", "2 March 2025", "1430", "Med", "Crime", "", "Mia Evans", "12/25/2015"],
    ["CC-25-0105", "2nd March 2025", None, "Std", "Crime", "", "Kai Patel", "=DATE(2015,2,1)"],
]
WEEKEND_ROWS: list[list[object]] = [
    ["Weekend incidents"],
    ["Ref", "Date/Time", "Risk Level", "Crime or non crime", "Relationship",
     "Child 1 Name", "Child 1 DOB", "Child 2 Name", "Child 2 DOB", "Child 2 School"],
    ["CC-25-0201", "01/03/2025 at 14:30", "DARA - High", "Crime", "Parents",
     "Ava Brown", "1st February 2016", "BROWN Noah", "01-02-2014", "Hillside Academy"],
    ["CC-25-0202", datetime(2025, 3, 2, 9, 5), 9, "Non-crime", "Mother and partner",
     "ELLA JONES", "1 Feb 2019"],
]
# fmt: on

GOLDEN = xlsx(
    ("Daily DA Report", DAILY_ROWS),
    ("Weekend", WEEKEND_ROWS),
    ("Notes", [[], ["Sent by the DA desk; call if anything is unclear"]]),
    ("Empty", []),
    tweak=_golden_tweaks,
)


def _source(row: int, sheet: str = "Daily DA Report", group: int | None = None) -> SourceRow:
    return SourceRow(FILE, sheet, row, group)


def _problem(sheet: str, row: int, column: str, value: str, message: str) -> CellProblem:
    return CellProblem(FILE, sheet, row, column, value, message)


def test_golden_daily_spreadsheet_reads_exactly() -> None:
    daily, weekend = "Daily DA Report", "Weekend"
    expected = SpreadsheetIntake(
        file=FILE,
        sha256=hashlib.sha256(GOLDEN).hexdigest(),
        incidents=(
            Incident(
                ref="CC-25-0101",
                occurred_at=datetime(2025, 3, 1, 23, 15, tzinfo=LONDON),
                risk=Risk.HIGH,
                crime_status=CrimeStatus.CRIME,
                circumstances="Argument between adults",
                children=(
                    ChildRecord(
                        "Jane",
                        "Smith",
                        date(2015, 2, 1),
                        _source(5),
                        relationship="Mother and stepfather",
                        school_text="Riverside Primary",
                        postcode="CB1 2AB",
                    ),
                    ChildRecord(
                        "Josh",
                        "Smith",
                        date(2018, 2, 1),
                        _source(6),
                        relationship="Mother and stepfather",
                        school_text="Riverside Pri",
                    ),
                ),
            ),
            Incident(
                ref="CC-25-0102",
                occurred_at=datetime(2025, 3, 2, 14, 30, tzinfo=LONDON),
                risk=Risk.HIGH,
                crime_status=CrimeStatus.NON_CRIME,
                circumstances="Noise reported",
                children=(
                    ChildRecord(
                        "Amy", "O'Neill", date(2015, 2, 1), _source(7), relationship="Parents"
                    ),
                ),
            ),
            Incident(
                ref="CC-25-0103",
                occurred_at=datetime(2025, 3, 2, 9, 30, tzinfo=LONDON),
                risk=Risk.STANDARD,
                crime_status=CrimeStatus.NON_CRIME,
                children=(
                    ChildRecord(
                        "Leo",
                        "Grant",
                        None,
                        _source(9),
                        relationship="Father and partner",
                        problems=(
                            _problem(
                                daily,
                                9,
                                "Child's D.O.B.",
                                "31/02/2015",
                                "'31/02/2015' is not a date",
                            ),
                        ),
                    ),
                ),
            ),
            Incident(
                ref="CC-25-0104",
                occurred_at=datetime(2025, 3, 2, 14, 30, tzinfo=LONDON),
                risk=Risk.MEDIUM,
                crime_status=CrimeStatus.CRIME,
                children=(
                    ChildRecord(
                        "Mia",
                        "Evans",
                        None,
                        _source(10),
                        problems=(
                            _problem(
                                daily,
                                10,
                                "Child's D.O.B.",
                                "12/25/2015",
                                "'12/25/2015' is not a date: dates must be day/month/year and "
                                "this looks month-first",
                            ),
                        ),
                    ),
                ),
            ),
            Incident(
                ref="CC-25-0105",
                occurred_at=datetime(2025, 3, 2, 0, 0, tzinfo=LONDON),
                time_known=False,
                risk=Risk.STANDARD,
                crime_status=CrimeStatus.CRIME,
                children=(
                    ChildRecord(
                        "Kai",
                        "Patel",
                        None,
                        _source(11),
                        problems=(
                            _problem(
                                daily,
                                11,
                                "Child's D.O.B.",
                                "=DATE(2015,2,1)",
                                "is a formula; formulas are never worked out",
                            ),
                        ),
                    ),
                ),
            ),
            Incident(
                ref="CC-25-0201",
                occurred_at=datetime(2025, 3, 1, 14, 30, tzinfo=LONDON),
                risk=Risk.HIGH,
                crime_status=CrimeStatus.CRIME,
                children=(
                    ChildRecord(
                        "Ava",
                        "Brown",
                        date(2016, 2, 1),
                        _source(3, weekend, 1),
                        relationship="Parents",
                    ),
                    ChildRecord(
                        "Noah",
                        "Brown",
                        date(2014, 2, 1),
                        _source(3, weekend, 2),
                        relationship="Parents",
                        school_text="Hillside Academy",
                    ),
                ),
            ),
            Incident(
                ref="CC-25-0202",
                occurred_at=datetime(2025, 3, 2, 9, 5, tzinfo=LONDON),
                risk=Risk.STANDARD,
                crime_status=CrimeStatus.NON_CRIME,
                children=(
                    ChildRecord(
                        "Ella",
                        "Jones",
                        date(2019, 2, 1),
                        _source(4, weekend, 1),
                        relationship="Mother and partner",
                    ),
                ),
            ),
        ),
        problems=(
            _problem(
                "Notes",
                2,
                "",
                "Sent by the DA desk; call if anything is unclear",
                "no header row found in the first 30 rows (one with an incident reference "
                "column and a child name or date of birth column), so nothing on this sheet "
                "was read (1 rows with content)",
            ),
        ),
    )
    assert read(GOLDEN) == expected


# --------------------------------------------------------------------------------------
# The header map


def test_header_map_ties_police_wording_to_fields() -> None:
    assert HEADERS.field_of("Child's D.O.B.") == (ChildField.DOB, None)
    assert HEADERS.field_of("  INCIDENT   REF ") == (IncidentField.REF, None)
    assert HEADERS.field_of("Date/Time") == (IncidentField.DATETIME, None)
    assert HEADERS.field_of("Victim name") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Child 1 Name", (ChildField.NAME, 1)),
        ("Child 2", (ChildField.NAME, 2)),
        ("Child 3 D.O.B.", (ChildField.DOB, 3)),
        ("Young Person 2 School", (ChildField.SCHOOL, 2)),
        ("Child Name 4", (ChildField.NAME, 4)),
        ("DOB 12", (ChildField.DOB, 12)),
    ],
)
def test_child_group_headers_carry_their_group_number(
    header: str, expected: tuple[ChildField, int]
) -> None:
    assert HEADERS.field_of(header) == expected


def _write_rules(tmp_path: Path, text: str) -> Path:
    (tmp_path / "police_headers.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_alias_naming_two_fields_is_a_rules_error(tmp_path: Path) -> None:
    rules = _write_rules(
        tmp_path,
        'group_prefixes = ["child"]\n'
        '[incident]\nref = ["ref"]\ndate = ["date"]\n'
        '[child]\nname = ["name"]\ndob = ["Date"]\n'
        "[child_group_suffixes]\n",
    )
    with pytest.raises(
        RulesError, match=r"child\.dob: alias 'Date' already names the field 'date'"
    ):
        load_header_map(rules)


def test_unknown_field_in_header_rules_is_a_rules_error(tmp_path: Path) -> None:
    rules = _write_rules(
        tmp_path,
        'group_prefixes = ["child"]\n'
        '[incident]\nref = ["ref"]\nweather = ["weather"]\n'
        '[child]\nname = ["name"]\n[child_group_suffixes]\n',
    )
    with pytest.raises(RulesError, match=r"police_headers\.toml: incident\.weather"):
        load_header_map(rules)


def test_shipped_header_rules_load() -> None:
    assert load_header_map(RULES_DIR) == HEADERS


# --------------------------------------------------------------------------------------
# Finding the header row and the layout


def test_header_below_title_and_blank_rows_is_found() -> None:
    rows = [
        ["Operation Encompass"],
        [],
        ["Ref: daily report", "Child: see below"],
        LONG_HEADER,
        ["R1", "01/03/2025", "", "", "", "Jo Bloggs"],
    ]
    intake = read(xlsx(("Sheet1", rows)))
    assert [(c.display_name, c.source.row) for c in intake.incidents[0].children] == [
        ("Jo Bloggs", 5)
    ]
    assert intake.problems == ()


def test_one_row_per_child_rows_of_one_ref_make_one_incident() -> None:
    intake = read(
        long_sheet(
            ["R1", "01/03/2025", "20:00", "High", "Crime", "Jo Bloggs", "01/02/2015"],
            ["R1", "01/03/2025", "20:00", "High", "Crime", "Sam Bloggs", "01/02/2017"],
        )
    )
    assert len(intake.incidents) == 1
    assert [c.forename for c in intake.incidents[0].children] == ["Jo", "Sam"]
    assert intake.incidents[0].problems == ()


def test_one_row_per_incident_with_child_groups_gives_each_child_its_group() -> None:
    header = ["Incident No", "Date", "Child 1 Name", "Child 1 DOB", "Child 2 Name", "Child 2 DOB"]
    row = ["R1", "01/03/2025", "Jo Bloggs", "01/02/2015", "Sam Bloggs", "01/02/2017"]
    incident = read(xlsx(("Sheet1", [header, row]))).incidents[0]
    assert [(c.forename, c.source.group) for c in incident.children] == [("Jo", 1), ("Sam", 2)]


def test_empty_child_groups_are_not_children() -> None:
    header = ["Ref", "Date", "Relationship", "Child 1 Name", "Child 2 Name", "Child 3 Name"]
    row = ["R1", "01/03/2025", "Parents", "Jo Bloggs", None, None]
    incident = read(xlsx(("Sheet1", [header, row]))).incidents[0]
    assert [c.display_name for c in incident.children] == ["Jo Bloggs"]
    assert incident.children[0].relationship == "Parents"


def test_every_worksheet_is_read() -> None:
    data = xlsx(
        ("Monday", [LONG_HEADER, ["R1", "01/03/2025", "", "", "", "Jo Bloggs"]]),
        ("Tuesday", [LONG_HEADER, ["R2", "02/03/2025", "", "", "", "Sam Bloggs"]]),
    )
    assert [incident.ref for incident in read(data).incidents] == ["R1", "R2"]


def test_sheet_with_content_but_no_header_is_an_intake_problem() -> None:
    data = xlsx(
        ("Incidents", [LONG_HEADER, ["R1", "01/03/2025", "", "", "", "Jo Bloggs"]]),
        ("Extra", [["Name", "Date of birth"], ["Sam Bloggs", "01/02/2017"]]),
    )
    (problem,) = read(data).problems
    assert (problem.sheet, problem.row, problem.value) == ("Extra", 1, "Name")
    assert "no header row found" in problem.message


def test_empty_sheet_is_ignored() -> None:
    data = xlsx(
        ("Incidents", [LONG_HEADER, ["R1", "01/03/2025", "", "", "", "Jo Bloggs"]]),
        ("Sheet2", []),
    )
    assert read(data).problems == ()


def test_hidden_columns_are_read() -> None:
    def hide(workbook: Workbook) -> None:
        sheet = workbook["Sheet1"]
        for column in "ABCDEFG":
            sheet.column_dimensions[column].hidden = True

    data = xlsx(
        ("Sheet1", [LONG_HEADER, ["R1", "01/03/2025", "", "", "", "Jo Bloggs", "01/02/2015"]]),
        tweak=hide,
    )
    assert read(data).incidents[0].children[0].dob == date(2015, 2, 1)


def test_merged_incident_cells_belong_to_every_row_they_cover() -> None:
    def merge(workbook: Workbook) -> None:
        for column in "ABCDE":
            workbook["Sheet1"].merge_cells(f"{column}2:{column}4")

    rows = [
        ["R1", "01/03/2025", "21:00", "Medium", "Crime", "Jo Bloggs", "01/02/2015"],
        [None, None, None, None, None, "Sam Bloggs", "01/02/2017"],
        [None, None, None, None, None, "Alex Bloggs", "01/02/2019"],
    ]
    (incident,) = read(xlsx(("Sheet1", [LONG_HEADER, *rows]), tweak=merge)).incidents
    assert incident.risk is Risk.MEDIUM
    assert [c.source.row for c in incident.children] == [2, 3, 4]
    assert incident.problems == ()


def test_merged_range_reaching_past_the_last_row_adds_no_rows() -> None:
    def merge(workbook: Workbook) -> None:
        workbook["Sheet1"].merge_cells("A2:A2000")

    data = xlsx(
        ("Sheet1", [LONG_HEADER, ["R1", "01/03/2025", "", "", "", "Jo Bloggs"]]), tweak=merge
    )
    intake = read(data)
    assert [c.display_name for i in intake.incidents for c in i.children] == ["Jo Bloggs"]
    assert intake.problems == ()


def test_completely_blank_rows_are_skipped() -> None:
    intake = read(
        long_sheet(
            ["R1", "01/03/2025", "", "", "", "Jo Bloggs"],
            [],
            [None, "   ", None],
            ["R2", "01/03/2025", "", "", "", "Sam Bloggs"],
        )
    )
    assert [incident.ref for incident in intake.incidents] == ["R1", "R2"]
    assert intake.problems == ()


def test_header_row_repeated_further_down_is_not_a_child() -> None:
    intake = read(
        long_sheet(
            ["R1", "01/03/2025", "", "", "", "Jo Bloggs"],
            LONG_HEADER,
            ["R2", "01/03/2025", "", "", "", "Sam Bloggs"],
        )
    )
    assert [incident.ref for incident in intake.incidents] == ["R1", "R2"]
    assert intake.problems == ()


def test_column_with_an_unknown_header_and_values_is_an_intake_problem() -> None:
    data = xlsx(
        (
            "Sheet1",
            [
                [*LONG_HEADER, "Child No 3 Name"],
                ["R1", "", "", "", "", "Jo Bloggs", "", "Al Bloggs"],
            ],
        )
    )
    (problem,) = read(data).problems
    assert (problem.row, problem.column) == (1, "Child No 3 Name")
    assert "not read" in problem.message


def test_column_with_an_ignored_header_is_not_a_problem() -> None:
    data = xlsx(
        (
            "Sheet1",
            [[*LONG_HEADER, "Officer in case"], ["R1", "", "", "", "", "Jo Bloggs", "", "PC 123"]],
        )
    )
    assert read(data).problems == ()


# --------------------------------------------------------------------------------------
# Rows that cannot stand as they are


def test_row_without_incident_ref_is_an_incident_of_its_own_with_a_problem() -> None:
    intake = read(
        long_sheet(
            [None, "01/03/2025", "", "", "", "Jo Bloggs", "01/02/2015"],
            [None, "01/03/2025", "", "", "", "Sam Bloggs", "01/02/2017"],
        )
    )
    assert [(i.ref, len(i.children)) for i in intake.incidents] == [("", 1), ("", 1)]
    problem = intake.incidents[0].problems[0]
    assert (problem.row, problem.column) == (2, "Incident Ref")
    assert "no incident reference" in problem.message


def test_row_with_incident_details_but_no_child_is_an_intake_problem() -> None:
    intake = read(long_sheet(["R1", "01/03/2025", "20:00", "High", "Crime"]))
    assert intake.incidents == ()
    (problem,) = intake.problems
    assert (problem.row, problem.column, problem.value) == (2, "Incident Ref", "R1")
    assert "no child" in problem.message


def test_child_with_a_dob_but_no_name_is_kept_with_a_problem() -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", "", "", None, "01/02/2015"])).incidents
    (child,) = incident.children
    assert child.dob == date(2015, 2, 1)
    assert [(p.column, p.message) for p in child.problems] == [
        ("Child Name", "the child has no name")
    ]


def test_missing_dob_is_not_a_problem() -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", "", "", "Jo Bloggs"])).incidents
    assert incident.children[0].dob is None
    assert incident.children[0].problems == ()


def test_dob_in_the_future_is_a_problem() -> None:
    (incident,) = read(
        long_sheet(["R1", "01/03/2025", "", "", "", "Jo Bloggs", "01/02/2026"])
    ).incidents
    (problem,) = incident.children[0].problems
    assert problem.message == "date of birth is in the future"
    assert incident.children[0].dob is None


def test_unreadable_dob_problem_names_file_sheet_row_column_and_value() -> None:
    intake = read(
        long_sheet(
            ["R1", "01/03/2025", "", "", "", "Jo Bloggs", "31/02/2015"],
            ["R2", "01/03/2025", "", "", "", "Sam Bloggs", "01/02/2017"],
        )
    )
    (problem,) = intake.incidents[0].children[0].problems
    assert str(problem) == (
        "daily.xlsx, sheet 'Incidents', row 2, column 'DOB': value '31/02/2015': "
        "'31/02/2015' is not a date"
    )
    assert intake.incidents[1].children[0].dob == date(2017, 2, 1)


def test_conflicting_dates_for_one_ref_are_an_incident_problem() -> None:
    (incident,) = read(
        long_sheet(
            ["R1", "01/03/2025", "20:00", "", "", "Jo Bloggs"],
            ["R1", "02/03/2025", "20:00", "", "", "Sam Bloggs"],
        )
    ).incidents
    (problem,) = incident.problems
    assert (problem.row, problem.column, problem.value) == (3, "Date", "02/03/2025 20:00")
    assert problem.message == "differs from row 2 of incident R1 ('01/03/2025 20:00')"
    assert len(incident.children) == 2


def test_one_ref_on_two_sheets_is_one_incident_and_a_conflict_names_the_sheet() -> None:
    data = xlsx(
        ("Monday", [LONG_HEADER, ["R1", "01/03/2025", "", "High", "", "Jo Bloggs"]]),
        ("Tuesday", [LONG_HEADER, ["R1", "01/03/2025", "", "Medium", "", "Sam Bloggs"]]),
    )
    (incident,) = read(data).incidents
    assert [c.source.sheet for c in incident.children] == ["Monday", "Tuesday"]
    (problem,) = incident.problems
    assert (problem.sheet, problem.value) == ("Tuesday", "Medium")
    assert problem.message == "differs from sheet 'Monday' row 2 of incident R1 ('High')"


def test_incident_value_given_on_one_row_only_is_not_a_conflict() -> None:
    (incident,) = read(
        long_sheet(
            ["R1", "01/03/2025", "20:00", "High", "Crime", "Jo Bloggs"],
            ["R1", None, None, None, None, "Sam Bloggs"],
        )
    ).incidents
    assert incident.problems == ()
    assert incident.risk is Risk.HIGH


def test_unreadable_risk_is_an_incident_problem() -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", "Low", "", "Jo Bloggs"])).incidents
    assert incident.risk is None
    (problem,) = incident.problems
    assert (problem.column, problem.value) == ("Risk", "Low")
    assert incident.children[0].problems == ()


def test_two_columns_of_one_field_that_disagree_are_a_problem() -> None:
    header = [*LONG_HEADER, "Date of Birth"]
    row = ["R1", "01/03/2025", "", "", "", "Jo Bloggs", "01/02/2015", "01/02/2016"]
    (incident,) = read(xlsx(("Sheet1", [header, row]))).incidents
    (problem,) = incident.children[0].problems
    assert problem.column == "Date of Birth"
    assert problem.message == "differs from column 'DOB' of the same row"


# --------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize(
    "dob",
    [
        date(2015, 2, 1),
        datetime(2015, 2, 1),
        42036,
        "01/02/2015",
        "1/2/2015",
        "1.2.15",
        "01-02-2015",
        "01-Feb-2015",
        "1 Feb 2015",
        "1 February 2015",
        "1st February 2015",
        "2015-02-01",
    ],
)
def test_every_date_form_reads_as_the_same_dob(dob: object) -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", "", "", "Jo Bloggs", dob])).incidents
    assert incident.children[0].dob == date(2015, 2, 1)
    assert incident.children[0].problems == ()


def test_date_and_time_in_two_columns_make_one_instant() -> None:
    (incident,) = read(long_sheet(["R1", "01/07/2025", "23:30", "", "", "Jo Bloggs"])).incidents
    assert incident.occurred_at == datetime(2025, 7, 1, 23, 30, tzinfo=LONDON)


def test_date_and_time_in_one_column_make_one_instant() -> None:
    header = ["Ref", "Date and time of incident", "Child Name"]
    data = xlsx(("Sheet1", [header, ["R1", "01-Feb-2025 2.30pm", "Jo Bloggs"]]))
    (incident,) = read(data).incidents
    assert incident.occurred_at == datetime(2025, 2, 1, 14, 30, tzinfo=LONDON)


def test_excel_datetime_and_time_cells_are_read() -> None:
    (incident,) = read(
        long_sheet(["R1", datetime(2025, 2, 1), datetime(1899, 12, 30, 14, 30), "", "", "Jo B"])
    ).incidents
    assert incident.occurred_at == datetime(2025, 2, 1, 14, 30, tzinfo=LONDON)


def test_incident_date_without_time_is_that_day_with_the_time_unknown() -> None:
    (incident,) = read(long_sheet(["R1", "01/02/2025", None, "", "", "Jo Bloggs"])).incidents
    assert incident.occurred_at == datetime(2025, 2, 1, 0, 0, tzinfo=LONDON)
    assert not incident.time_known
    assert incident.problems == ()


def test_incident_date_with_time_has_the_time_known() -> None:
    (incident,) = read(long_sheet(["R1", "01/02/2025", "14:30", "", "", "Jo Bloggs"])).incidents
    assert incident.time_known


def test_time_column_that_disagrees_with_the_time_in_the_date_column_is_a_problem() -> None:
    (incident,) = read(long_sheet(["R1", "01/02/2025 14:30", "15:30", "", "", "Jo B"])).incidents
    (problem,) = incident.problems
    assert (problem.column, problem.value) == ("Time", "15:30")


def test_date_column_that_disagrees_with_the_date_time_column_is_a_problem() -> None:
    header = ["Ref", "Date/Time", "Date", "Child Name"]
    data = xlsx(("Sheet1", [header, ["R1", "01/02/2025 14:30", "02/02/2025", "Jo Bloggs"]]))
    (incident,) = read(data).incidents
    assert incident.occurred_at == datetime(2025, 2, 1, 14, 30, tzinfo=LONDON)
    (problem,) = incident.problems
    assert (problem.column, problem.value) == ("Date", "02/02/2025")
    assert problem.message == "differs from 'Date/Time' ('01/02/2025 14:30')"


def test_unreadable_time_is_an_incident_problem() -> None:
    (incident,) = read(long_sheet(["R1", "01/02/2025", "25:00", "", "", "Jo Bloggs"])).incidents
    (problem,) = incident.problems
    assert (problem.column, problem.value) == ("Time", "25:00")


@pytest.mark.parametrize(
    ("risk", "expected"),
    [
        ("Standard", Risk.STANDARD),
        ("MEDIUM RISK", Risk.MEDIUM),
        ("H", Risk.HIGH),
        (7, Risk.STANDARD),
        (11, Risk.MEDIUM),
        ("16", Risk.HIGH),
        ("DARA - High", Risk.HIGH),
    ],
)
def test_risk_in_dash_words_scores_and_dara_wording(risk: object, expected: Risk) -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", risk, "", "Jo Bloggs"])).incidents
    assert incident.risk is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("JANE SMITH", ("Jane", "Smith")),
        ("SMITH, Jane", ("Jane", "Smith")),
        ("  Jane    Smith ", ("Jane", "Smith")),
        ("Jane Anne SMITH-JONES", ("Jane Anne", "Smith-Jones")),
    ],
)
def test_child_names_are_split_into_forename_and_surname(
    name: str, expected: tuple[str, str]
) -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", "", "", name])).incidents
    child = incident.children[0]
    assert (child.forename, child.surname) == expected


def test_forename_and_surname_columns_are_read_directly() -> None:
    header = ["Ref", "Forename", "Surname", "DOB"]
    data = xlsx(("Sheet1", [header, ["R1", "JANE", "O'NEILL", "01/02/2015"]]))
    child = read(data).incidents[0].children[0]
    assert (child.forename, child.surname) == ("Jane", "O'Neill")


def test_forename_without_surname_is_a_problem_on_the_surname_column() -> None:
    header = ["Ref", "Forename", "Surname", "DOB"]
    data = xlsx(("Sheet1", [header, ["R1", "Jane", None, "01/02/2015"]]))
    (problem,) = read(data).incidents[0].children[0].problems
    assert (problem.column, problem.value, problem.message) == ("Surname", "", "no surname given")


def test_single_word_name_is_kept_with_a_problem() -> None:
    (incident,) = read(long_sheet(["R1", "01/03/2025", "", "", "", "Jane"])).incidents
    child = incident.children[0]
    assert (child.forename, child.surname) == ("Jane", "")
    assert "single name" in child.problems[0].message


def test_formula_in_a_text_cell_is_kept_as_its_text_with_a_problem() -> None:
    header = ["Ref", "Circumstances", "Child Name"]
    data = xlsx(("Sheet1", [header, ["R1", '="Argument "&"at home"', "Jo Bloggs"]]))
    (incident,) = read(data).incidents
    assert incident.circumstances == '="Argument "&"at home"'
    assert "formula" in incident.problems[0].message


def test_numeric_incident_ref_reads_as_text() -> None:
    header = ["Ref", "Child Name"]
    data = xlsx(("Sheet1", [header, [123456, "Jo Bloggs"], [123456.0, "Sam Bloggs"]]))
    (incident,) = read(data).incidents
    assert incident.ref == "123456"
    assert len(incident.children) == 2


def test_intake_records_the_files_sha256() -> None:
    data = long_sheet(["R1", "01/03/2025", "", "", "", "Jo Bloggs"])
    assert read(data).sha256 == hashlib.sha256(data).hexdigest()


def test_today_settles_two_digit_years() -> None:
    # TODAY is 3 March 2025: 4 March 2025 has not happened yet, so '25 there is 1925.
    (incident,) = read(
        long_sheet(["R1", "01/03/25", "", "", "", "Jo Bloggs", "04/03/25"])
    ).incidents
    assert incident.occurred_at == datetime(2025, 3, 1, tzinfo=LONDON)
    assert incident.children[0].dob == date(1925, 3, 4)

"""Directory import: GIAS, the LA contacts list and the pupil roll into the state database."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from gateway.clock import LONDON
from gateway.directory import (
    ImportSummary,
    RollColumns,
    SqliteDirectory,
    import_directory,
    load_roll_profiles,
)
from gateway.errors import DirectoryImportError, RulesError, StateError
from gateway.model import ContactRole
from gateway.store import open_state
from gateway.upn import upn_check_letter

RULES = Path(__file__).resolve().parent.parent / "rules"
NOW = datetime(2026, 1, 5, 7, 30, tzinfo=LONDON)

GIAS_HEADER = [
    "URN",
    "LA (code)",
    "LA (name)",
    "EstablishmentNumber",  # real extracts carry ~130 columns; the rest are ignored
    "EstablishmentName",
    "TypeOfEstablishment (name)",
    "EstablishmentStatus (name)",
    "PhaseOfEducation (name)",
    "StatutoryLowAge",
    "StatutoryHighAge",
    "OpenDate",
    "CloseDate",
    "Street",
    "Postcode",
    "TelephoneNum",
]
ACCENTED = "St Mary's Church of England Primary School, Écoles"
FINGERPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"


def upn(body: str) -> str:
    return upn_check_letter(body) + body


def school(urn: int, name: str = "", **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "URN": urn,
        "LA (code)": 873,
        "LA (name)": "Cambridgeshire",
        "EstablishmentNumber": 2001,
        "EstablishmentName": name or f"School {urn}",
        "TypeOfEstablishment (name)": "Community school",
        "EstablishmentStatus (name)": "Open",
        "PhaseOfEducation (name)": "Primary",
        "StatutoryLowAge": 4,
        "StatutoryHighAge": 11,
        "OpenDate": "",
        "CloseDate": "",
        "Street": "High Street",
        "Postcode": "CB1 1AA",
        "TelephoneNum": "01223000000",
    }
    row.update(fields)
    return row


def contact(urn: int, role: str = "DSL", **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "URN": urn,
        "Role": role,
        "Name": f"Lead {urn}",
        "Email": f"dsl{urn}@school.example",
        "Phone": "01223 111111",
        "Fingerprint": FINGERPRINT,
    }
    row.update(fields)
    return row


def pupil(serial: int, urn: int = 110001, **fields: object) -> dict[str, object]:
    """A roll row keyed by RollColumns field name."""
    row: dict[str, object] = {
        "upn": upn(f"873200125{serial:03d}"),
        "legal_forename": f"Child{serial}",
        "legal_surname": "Smith",
        "preferred_forename": "",
        "preferred_surname": "",
        "middle_names": "",
        "dob": "01/02/2015",
        "postcode": "CB1 2AB",
        "urn": urn,
        "entry_date": "",
        "leaving_date": "",
    }
    row.update(fields)
    return row


def write_csv(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Mapping[str, object]],
    encoding: str = "utf-8-sig",
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if row.get(h) is None else row.get(h, "") for h in header])
    return path


def write_gias(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    return write_csv(path, GIAS_HEADER, rows, encoding="cp1252")


CONTACT_HEADER = ["URN", "Role", "Name", "Email", "Phone", "Fingerprint"]


def write_contacts(
    path: Path, rows: Sequence[Mapping[str, object]], header: Sequence[str] = CONTACT_HEADER
) -> Path:
    return write_csv(path, header, rows)


def roll_header(columns: RollColumns) -> list[str]:
    return [h for h in columns.model_dump().values() if h]


def by_header(columns: RollColumns, row: Mapping[str, object]) -> dict[str, object]:
    names = columns.model_dump()
    return {names[field]: value for field, value in row.items() if names.get(field)}


def write_roll_csv(path: Path, columns: RollColumns, rows: Sequence[Mapping[str, object]]) -> Path:
    return write_csv(path, roll_header(columns), [by_header(columns, r) for r in rows])


def write_roll_xlsx(path: Path, columns: RollColumns, rows: Sequence[Mapping[str, object]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    header = roll_header(columns)
    sheet.append(header)
    for row in rows:
        named = by_header(columns, row)
        sheet.append([named.get(h) for h in header])
    workbook.save(path)
    return path


@pytest.fixture
def profiles() -> dict[str, RollColumns]:
    return load_roll_profiles(RULES)


@pytest.fixture
def capita(profiles: dict[str, RollColumns]) -> RollColumns:
    return profiles["capita_one"]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state" / "gateway.db")
    yield connection
    connection.close()


class Files:
    """A directory's three files in tmp_path, with sensible defaults to vary one at a time."""

    def __init__(self, tmp_path: Path, columns: RollColumns) -> None:
        self.dir = tmp_path
        self.columns = columns
        self.gias = write_gias(
            tmp_path / "edubasealldata.csv",
            [school(110001, ACCENTED), school(110002), school(110003, "Old School")],
        )
        self.contacts = write_contacts(tmp_path / "contacts.csv", [contact(110001)])
        self.roll = write_roll_csv(tmp_path / "roll.csv", columns, [pupil(1), pupil(2)])

    def run(self, conn: sqlite3.Connection, **overrides: object) -> ImportSummary:
        arguments: dict[str, object] = {
            "gias": self.gias,
            "contacts": self.contacts,
            "roll": self.roll,
            "roll_columns": self.columns,
            "imported_at": NOW,
            "actor": "test",
        }
        arguments.update(overrides)
        return import_directory(conn, **arguments)  # type: ignore[arg-type]


@pytest.fixture
def files(tmp_path: Path, capita: RollColumns) -> Files:
    return Files(tmp_path, capita)


# --------------------------------------------------------------------------------------
# GIAS


def test_gias_extract_is_read_as_windows_1252(files: Files, conn: sqlite3.Connection) -> None:
    assert ACCENTED.encode("cp1252") in files.gias.read_bytes()
    files.run(conn)
    establishment = SqliteDirectory(conn).establishment(110001)
    assert establishment is not None
    assert establishment.name == ACCENTED


def test_establishment_fields_and_day_first_dates_are_stored(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_gias(
        files.gias,
        [school(110001, OpenDate="01-09-2012", StatutoryLowAge=2, TelephoneNum="01223 456789")],
    )
    files.run(conn)
    establishment = SqliteDirectory(conn).establishment(110001)
    assert establishment is not None
    assert establishment.open_date == date(2012, 9, 1)
    assert establishment.close_date is None
    assert (establishment.la_code, establishment.la_name) == (873, "Cambridgeshire")
    assert establishment.statutory_low_age == 2
    assert establishment.telephone == "01223 456789"
    assert establishment.phase_name == "Primary"


def test_closed_establishment_is_kept_and_marked_closed(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_gias(
        files.gias,
        [
            school(110001),
            school(110003, "Old School", **{"EstablishmentStatus (name)": "Closed"}),
        ],
    )
    summary = files.run(conn)
    closed = SqliteDirectory(conn).establishment(110003)
    assert closed is not None
    assert not closed.is_open
    assert closed.status_name == "Closed"
    assert (summary.establishments, summary.open_establishments) == (2, 1)
    assert summary.closed_establishments == 1


@pytest.mark.parametrize(
    ("status", "is_open"),
    [
        ("Open", True),
        ("Open, but proposed to close", True),
        ("Proposed to open", False),  # no pupils yet: a roll naming it is wrong or early
        ("Closed", False),
    ],
)
def test_establishment_status_decides_whether_it_is_open(
    files: Files, conn: sqlite3.Connection, status: str, is_open: bool
) -> None:
    write_gias(files.gias, [school(110001, **{"EstablishmentStatus (name)": status})])
    files.run(conn)
    establishment = SqliteDirectory(conn).establishment(110001)
    assert establishment is not None
    assert establishment.is_open is is_open


def test_unknown_establishment_status_is_taken_as_not_open_with_a_warning(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_gias(files.gias, [school(110001, **{"EstablishmentStatus (name)": "Mothballed"})])
    summary = files.run(conn)
    establishment = SqliteDirectory(conn).establishment(110001)
    assert establishment is not None
    assert not establishment.is_open
    assert any("'Mothballed'" in w and "not open" in w for w in summary.warnings)


def test_gias_row_with_non_numeric_urn_is_skipped_with_file_line_field_and_value(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_gias(files.gias, [school(110001), school(110002, URN="11OOO2"), school(110003)])
    summary = files.run(conn)
    assert summary.establishments == 2
    assert summary.skipped_rows == 1
    assert "edubasealldata.csv, line 3: URN '11OOO2': not a whole number; row skipped" in (
        summary.warnings
    )


def test_gias_row_with_bad_date_is_skipped_with_a_warning(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_gias(files.gias, [school(110001), school(110002, OpenDate="31-02-2012")])
    summary = files.run(conn)
    assert SqliteDirectory(conn).establishment(110002) is None
    (warning,) = [w for w in summary.warnings if "OpenDate" in w]
    assert warning.startswith("edubasealldata.csv, line 3: OpenDate '31-02-2012': not a date")


def test_gias_duplicate_urn_keeps_the_first_row(files: Files, conn: sqlite3.Connection) -> None:
    write_gias(files.gias, [school(110001, "First"), school(110001, "Second")])
    summary = files.run(conn)
    establishment = SqliteDirectory(conn).establishment(110001)
    assert establishment is not None
    assert establishment.name == "First"
    assert any("line 3: URN '110001': already given at" in w for w in summary.warnings)


def test_gias_missing_required_column_names_the_file_and_column(
    files: Files, conn: sqlite3.Connection
) -> None:
    header = [h for h in GIAS_HEADER if h != "LA (code)"]
    write_csv(files.gias, header, [school(110001)], encoding="cp1252")
    with pytest.raises(DirectoryImportError, match=r"edubasealldata\.csv.*'LA \(code\)'"):
        files.run(conn)


# --------------------------------------------------------------------------------------
# Contacts


def test_contact_fingerprint_is_stored_upper_case_without_spaces(
    files: Files, conn: sqlite3.Connection
) -> None:
    spaced = "0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567"
    write_contacts(files.contacts, [contact(110001, Fingerprint=spaced)])
    summary = files.run(conn)
    (stored,) = SqliteDirectory(conn).contacts(110001)
    assert stored.fingerprint == FINGERPRINT
    assert summary.contacts_without_key == 0
    assert summary.warning_count == 0


@pytest.mark.parametrize("key_id", ["89ABCDEF", "0x0123456789ABCDEF", "89AB CDEF 0123 4567"])
def test_short_key_id_is_refused_and_contact_kept_without_a_key(
    files: Files, conn: sqlite3.Connection, key_id: str
) -> None:
    write_contacts(files.contacts, [contact(110001, Fingerprint=key_id)])
    summary = files.run(conn)
    (stored,) = SqliteDirectory(conn).contacts(110001)
    assert stored.fingerprint == ""
    assert summary.contacts == 1
    assert summary.contacts_without_key == 1
    (warning,) = summary.warnings
    assert warning.startswith("contacts.csv, line 2: Fingerprint")
    assert "key id, not a full fingerprint" in warning
    assert "WITHOUT a key" in warning


def test_malformed_fingerprint_is_refused_and_contact_kept_without_a_key(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_contacts(files.contacts, [contact(110001, Fingerprint=FINGERPRINT[:-1] + "G")])
    summary = files.run(conn)
    (stored,) = SqliteDirectory(conn).contacts(110001)
    assert stored.fingerprint == ""
    assert any("not a 40-hex-digit" in w for w in summary.warnings)


def test_contact_without_a_fingerprint_is_kept_and_counted(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_contacts(files.contacts, [contact(110001, Fingerprint="")])
    summary = files.run(conn)
    assert summary.contacts_without_key == 1
    assert summary.warning_count == 0


@pytest.mark.parametrize(
    ("written", "role"),
    [
        ("DSL", ContactRole.DSL),
        ("  designated   safeguarding lead ", ContactRole.DSL),
        ("Deputy DSL", ContactRole.DEPUTY_DSL),
        ("deputy designated safeguarding lead", ContactRole.DEPUTY_DSL),
        ("DA lead", ContactRole.DA_LEAD),
        ("Domestic Abuse Lead", ContactRole.DA_LEAD),
    ],
)
def test_contact_roles_are_read_case_and_space_insensitively(
    files: Files, conn: sqlite3.Connection, written: str, role: ContactRole
) -> None:
    write_contacts(files.contacts, [contact(110001, written)])
    files.run(conn)
    (stored,) = SqliteDirectory(conn).contacts(110001)
    assert stored.role is role


def test_contact_with_unknown_role_or_bad_email_is_skipped(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_contacts(
        files.contacts,
        [
            contact(110001, "Headteacher"),
            contact(110001, Email="Jane Smith"),
            contact(110001, Email="dsl@school.example", Name="Jane Smith"),
        ],
    )
    summary = files.run(conn)
    assert [c.name for c in SqliteDirectory(conn).contacts(110001)] == ["Jane Smith"]
    assert summary.skipped_rows == 2
    assert any("line 2: Role 'Headteacher': not a role" in w for w in summary.warnings)
    assert any("line 3: Email 'Jane Smith': not an email address" in w for w in summary.warnings)


def test_contact_for_urn_not_in_gias_is_kept_with_a_warning(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_contacts(files.contacts, [contact(110001), contact(999999)])
    summary = files.run(conn)
    assert len(SqliteDirectory(conn).contacts(999999)) == 1
    assert "contacts.csv, line 3: URN '999999': not in the GIAS extract; contact kept" in (
        summary.warnings
    )


def test_contact_confirmed_date_in_either_form(files: Files, conn: sqlite3.Connection) -> None:
    header = [*CONTACT_HEADER, "Confirmed"]
    write_contacts(
        files.contacts,
        [
            contact(110001, Confirmed="03-09-2025"),
            contact(110002, Confirmed="2025-09-04"),
            contact(110003, Confirmed="soon"),
        ],
        header,
    )
    summary = files.run(conn)
    directory = SqliteDirectory(conn)
    assert directory.contacts(110001)[0].confirmed == date(2025, 9, 3)
    assert directory.contacts(110002)[0].confirmed == date(2025, 9, 4)
    assert directory.contacts(110003)[0].confirmed is None
    assert any("Confirmed 'soon'" in w and "kept unconfirmed" in w for w in summary.warnings)


def test_contacts_list_without_a_required_column_is_refused(
    files: Files, conn: sqlite3.Connection
) -> None:
    header = [h for h in CONTACT_HEADER if h not in ("Email", "Fingerprint")]
    write_contacts(files.contacts, [contact(110001)], header)
    with pytest.raises(DirectoryImportError, match=r"contacts\.csv.*'Email', 'Fingerprint'"):
        files.run(conn)


# --------------------------------------------------------------------------------------
# Pupil roll


@pytest.mark.parametrize("profile", ["capita_one", "sims_export"])
@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_roll_is_read_through_each_profile_from_csv_and_xlsx(
    files: Files,
    conn: sqlite3.Connection,
    profiles: dict[str, RollColumns],
    profile: str,
    kind: str,
) -> None:
    columns = profiles[profile]
    rows = [
        pupil(
            1,
            preferred_forename="Bella",
            middle_names="Rose Anne",
            entry_date="01/09/2019",
            leaving_date="",
        ),
        pupil(2, dob="2015-02-01"),
    ]
    writer = write_roll_csv if kind == "csv" else write_roll_xlsx
    roll = writer(files.dir / f"roll.{kind}", columns, rows)
    summary = files.run(conn, roll=roll, roll_columns=columns)
    assert summary.pupils == 2
    first, second = SqliteDirectory(conn).pupils_born_on(date(2015, 2, 1))
    assert first.upn == rows[0]["upn"]
    assert (first.legal_forename, first.legal_surname) == ("Child1", "Smith")
    assert first.preferred_forename == "Bella"
    assert first.middle_names == "Rose Anne"
    assert first.postcode == "CB1 2AB"
    assert first.urn == 110001
    assert first.entry_date == date(2019, 9, 1)
    assert first.leaving_date is None
    assert second.legal_forename == "Child2"


def test_xlsx_roll_reads_excel_dates_and_numbers(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    rows = [
        pupil(1, dob=date(2016, 3, 4), urn=110001, leaving_date=datetime(2025, 7, 18)),
        pupil(2, dob=42433.0, urn=110001.0),  # an unformatted date cell: serial 42433
    ]
    roll = write_roll_xlsx(files.dir / "roll.xlsx", capita, rows)
    summary = files.run(conn, roll=roll)
    assert summary.warning_count == 0
    (first, second) = SqliteDirectory(conn).pupils_born_on(date(2016, 3, 4))
    assert first.leaving_date == date(2025, 7, 18)
    assert second.urn == 110001


def test_xlsx_roll_finds_the_header_below_blank_rows(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    header = roll_header(capita)
    sheet.append([])
    sheet.append(header)
    sheet.append([by_header(capita, pupil(1)).get(h) for h in header])
    sheet.append([by_header(capita, pupil(2, dob="")).get(h) for h in header])
    workbook.save(files.dir / "roll.xlsx")
    summary = files.run(conn, roll=files.dir / "roll.xlsx")
    assert summary.pupils == 1
    assert summary.warnings[0].startswith("roll.xlsx, row 4: Date of Birth (empty)")


@pytest.mark.parametrize("written", ["01/02/2015", "1/2/2015", "01-02-2015", "2015-02-01"])
def test_roll_dates_are_day_first_or_iso(
    files: Files, conn: sqlite3.Connection, capita: RollColumns, written: str
) -> None:
    write_roll_csv(files.roll, capita, [pupil(1, dob=written)])
    files.run(conn)
    assert len(SqliteDirectory(conn).pupils_born_on(date(2015, 2, 1))) == 1


def test_pupil_with_invalid_upn_is_imported_and_reported(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    good = upn("873200125001")
    wrong = ("B" if good[0] != "B" else "C") + good[1:]
    write_roll_csv(files.roll, capita, [pupil(1, upn=wrong), pupil(2, upn=""), pupil(3)])
    summary = files.run(conn)
    assert summary.pupils == 3
    assert summary.invalid_upns == 2
    assert summary.skipped_rows == 0
    upns = {p.upn for p in SqliteDirectory(conn).pupils_born_on(date(2015, 2, 1))}
    assert wrong in upns
    (warning,) = [w for w in summary.warnings if "line 2" in w]
    assert warning.startswith(f"roll.csv, line 2: UPN {wrong!r}")
    assert f"expected {good[0]!r}" in warning
    assert "pupil imported" in warning
    assert any("line 3: UPN (empty): no UPN" in w for w in summary.warnings)


def test_lower_case_upn_is_stored_upper_case(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    write_roll_csv(files.roll, capita, [pupil(1, upn=f" {upn('87320012500A').lower()} ")])
    summary = files.run(conn)
    assert summary.invalid_upns == 0
    (stored,) = SqliteDirectory(conn).pupils_born_on(date(2015, 2, 1))
    assert stored.upn == upn("87320012500A")


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        ({"dob": ""}, "Date of Birth"),
        ({"dob": "2015/02/30"}, "Date of Birth"),
        ({"urn": ""}, "School URN"),
        ({"urn": "Parkside"}, "School URN"),
        ({"legal_forename": " "}, "Legal Forename"),
        ({"legal_surname": ""}, "Legal Surname"),
        ({"leaving_date": "July"}, "Leaving Date"),
    ],
)
def test_roll_row_without_dob_urn_or_legal_names_is_skipped(
    files: Files,
    conn: sqlite3.Connection,
    capita: RollColumns,
    fields: dict[str, object],
    column: str,
) -> None:
    write_roll_csv(files.roll, capita, [pupil(1), pupil(2, **fields)])
    summary = files.run(conn)
    assert summary.pupils == 1
    assert summary.skipped_rows == 1
    (warning,) = summary.warnings
    assert warning.startswith(f"roll.csv, line 3: {column}")
    assert warning.endswith("row skipped")


def test_pupils_at_a_closed_or_unknown_school_are_kept_with_one_warning_per_school(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    write_gias(
        files.gias,
        [school(110001), school(110003, **{"EstablishmentStatus (name)": "Closed"})],
    )
    rows = [pupil(1, urn=110003), pupil(2, urn=110003), pupil(3, urn=123456), pupil(4)]
    write_roll_csv(files.roll, capita, rows)
    summary = files.run(conn)
    assert summary.pupils == 4
    assert summary.warnings == (
        "roll.csv, line 2: URN '110003': not open in the GIAS extract; 2 pupil(s) there kept",
        "roll.csv, line 4: URN '123456': not in the GIAS extract; 1 pupil(s) there kept",
    )


def test_roll_missing_a_required_column_is_refused_naming_it(
    files: Files, conn: sqlite3.Connection, profiles: dict[str, RollColumns]
) -> None:
    # A SIMS export read with the Capita ONE profile: "Date of Birth" and "School URN" absent.
    write_roll_csv(files.roll, profiles["sims_export"], [pupil(1)])
    with pytest.raises(DirectoryImportError, match=r"roll\.csv.*'Date of Birth', 'School URN'"):
        files.run(conn)


def test_roll_optional_columns_may_be_absent(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    slim = capita.model_copy(update={"postcode": "Home Postcode", "middle_names": None})
    write_roll_csv(files.roll, capita, [pupil(1)])
    files.run(conn, roll_columns=slim)
    (stored,) = SqliteDirectory(conn).pupils_born_on(date(2015, 2, 1))
    assert stored.postcode == ""


def test_roll_of_another_file_type_is_refused(files: Files, conn: sqlite3.Connection) -> None:
    roll = files.dir / "roll.xls"
    roll.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(DirectoryImportError, match=r"roll\.xls: a pupil roll must be"):
        files.run(conn, roll=roll)


def test_warnings_are_capped_but_all_counted(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    write_roll_csv(files.roll, capita, [pupil(1, upn=f"X{n}") for n in range(1200)])
    summary = files.run(conn)
    assert summary.invalid_upns == 1200
    assert summary.warning_count == 1200
    assert len(summary.warnings) == 1000
    assert summary.render().endswith("... and 1180 more")


# --------------------------------------------------------------------------------------
# The import as a whole


def test_failed_import_leaves_the_previous_directory_whole(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    files.run(conn)
    write_gias(files.gias, [school(220001)])
    write_contacts(files.contacts, [contact(220001)])
    broken = files.dir / "broken.csv"
    write_csv(broken, [h for h in roll_header(capita) if h != "Legal Surname"], [])
    with pytest.raises(DirectoryImportError, match="'Legal Surname'"):
        files.run(conn, roll=broken)
    _assert_first_import_whole(conn)


def test_import_failing_late_in_the_roll_leaves_the_previous_directory_whole(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    files.run(conn)
    write_gias(files.gias, [school(220001)])
    write_contacts(files.contacts, [contact(220001)])
    write_roll_csv(files.roll, capita, [pupil(n, urn=220001) for n in range(1, 500)])
    with files.roll.open("ab") as handle:
        handle.write(b"\xff\xfe not UTF-8\r\n")  # the last line: everything before is stored
    with pytest.raises(DirectoryImportError, match=r"roll\.csv: line 501: not utf-8 text"):
        files.run(conn)
    assert not conn.in_transaction
    _assert_first_import_whole(conn)


def _assert_first_import_whole(conn: sqlite3.Connection) -> None:
    directory = SqliteDirectory(conn)
    assert [e.urn for e in directory.establishments()] == [110001, 110002, 110003]
    assert directory.establishment(220001) is None
    assert len(directory.contacts(110001)) == 1
    assert directory.contacts(220001) == []
    assert [p.legal_forename for p in directory.pupils_born_on(date(2015, 2, 1))] == [
        "Child1",
        "Child2",
    ]
    assert conn.execute("SELECT COUNT(*) FROM directory_import").fetchone()[0] == 1


def test_second_import_replaces_the_first(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    files.run(conn)
    write_gias(files.gias, [school(220001)])
    write_contacts(files.contacts, [contact(220001)])
    write_roll_csv(files.roll, capita, [pupil(7, urn=220001)])
    files.run(conn)
    directory = SqliteDirectory(conn)
    assert [e.urn for e in directory.establishments()] == [220001]
    assert directory.contacts(110001) == []
    assert [p.urn for p in directory.pupils_born_on(date(2015, 2, 1))] == [220001]


def test_roll_with_no_usable_pupil_is_refused(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    files.run(conn)
    write_roll_csv(files.roll, capita, [pupil(1, dob="not a date")])
    with pytest.raises(DirectoryImportError, match=r"roll\.csv: no pupil could be read"):
        files.run(conn)
    assert len(SqliteDirectory(conn).pupils_born_on(date(2015, 2, 1))) == 2


def test_import_is_recorded_with_its_time_in_utc(files: Files, conn: sqlite3.Connection) -> None:
    files.run(conn, imported_at=datetime(2026, 6, 1, 8, 0, tzinfo=LONDON))
    row = conn.execute("SELECT * FROM directory_import").fetchone()
    assert row["imported_at"] == "2026-06-01T07:00:00+00:00"
    assert (row["establishments"], row["contacts"], row["pupils"], row["warnings"]) == (
        3,
        1,
        2,
        0,
    )
    assert "roll.csv" in row["source"]


def test_summary_renders_counts_for_the_administrator(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    write_contacts(files.contacts, [contact(110001), contact(110002, Fingerprint="")])
    write_roll_csv(files.roll, capita, [pupil(1), pupil(2, upn="bad"), pupil(3, dob="")])
    text = files.run(conn).render()
    assert "establishments: 3 (3 open, 0 closed or not yet open)" in text
    assert "contacts: 2 (1 without a key" in text
    assert "pupils: 2 (1 with an invalid UPN, imported)" in text
    assert "rows skipped: 1" in text
    assert "warnings: 2" in text
    assert "roll.csv, line 3: UPN 'BAD'" in text


def test_progress_bar_goes_to_stderr_only_when_asked(
    files: Files, conn: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    files.run(conn)
    assert capsys.readouterr().err == ""
    files.run(conn, progress=True)
    captured = capsys.readouterr()
    assert "roll.csv" in captured.err
    assert captured.out == ""


def test_naive_import_time_is_refused(files: Files, conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        files.run(conn, imported_at=datetime(2026, 1, 5, 7, 30))


# --------------------------------------------------------------------------------------
# Reading the directory


def test_pupils_born_on_finds_only_that_day(
    files: Files, conn: sqlite3.Connection, capita: RollColumns
) -> None:
    write_roll_csv(
        files.roll,
        capita,
        [pupil(1, dob="01/02/2015"), pupil(2, dob="02/02/2015"), pupil(3, dob="01/02/2016")],
    )
    files.run(conn)
    directory = SqliteDirectory(conn)
    assert [p.legal_forename for p in directory.pupils_born_on(date(2015, 2, 1))] == ["Child1"]
    assert directory.pupils_born_on(date(2015, 2, 3)) == []


def test_lookup_by_date_of_birth_uses_the_index(conn: sqlite3.Connection) -> None:
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM pupil WHERE dob = ?", ("2015-02-01",)
    ).fetchall()
    assert any("USING INDEX pupil_dob" in row["detail"] for row in plan)


def test_establishments_lists_every_one_with_closed_ones(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_gias(
        files.gias,
        [school(110002), school(110001, **{"EstablishmentStatus (name)": "Closed"})],
    )
    files.run(conn)
    establishments = SqliteDirectory(conn).establishments()
    assert [(e.urn, e.is_open) for e in establishments] == [(110001, False), (110002, True)]
    assert SqliteDirectory(conn).establishment(999999) is None


def test_contacts_are_listed_in_file_order(files: Files, conn: sqlite3.Connection) -> None:
    write_contacts(
        files.contacts,
        [contact(110001, "DA Lead", Name="B"), contact(110001, "DSL", Name="A", Email="a@x.org")],
    )
    files.run(conn)
    stored = SqliteDirectory(conn).contacts(110001)
    assert [(c.role, c.name) for c in stored] == [
        (ContactRole.DA_LEAD, "B"),
        (ContactRole.DSL, "A"),
    ]
    assert stored[0].email == "dsl110001@school.example"
    assert stored[0].phone == "01223 111111"


def test_roll_profile_with_unknown_key_is_a_rules_error(tmp_path: Path) -> None:
    (tmp_path / "pupil_roll.toml").write_text(
        '[profiles.odd]\nupn = "UPN"\nlegal_forename = "F"\nlegal_surname = "S"\n'
        'dob = "D"\nurn = "U"\nhouse = "H"\n'
    )
    with pytest.raises(RulesError, match=r"profiles\.odd\.house: unknown key"):
        load_roll_profiles(tmp_path)


# --------------------------------------------------------------------------------------
# Encodings and a busy database


def test_gias_with_a_byte_undefined_in_windows_1252_is_refused_naming_the_line(
    files: Files, conn: sqlite3.Connection
) -> None:
    with files.gias.open("ab") as handle:
        handle.write(b"110009,873,Cambridgeshire,2001,Bad \x81 School\r\n")
    with pytest.raises(DirectoryImportError, match=r"edubasealldata\.csv: line 5: not cp1252"):
        files.run(conn)


def test_gias_resaved_as_utf8_with_a_bom_is_read_as_utf8(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_csv(files.gias, GIAS_HEADER, [school(110001, ACCENTED)], encoding="utf-8-sig")
    files.run(conn)
    establishment = SqliteDirectory(conn).establishment(110001)
    assert establishment is not None
    assert establishment.name == ACCENTED


def test_contacts_list_saved_in_windows_1252_is_refused_with_advice(
    files: Files, conn: sqlite3.Connection
) -> None:
    write_csv(files.contacts, CONTACT_HEADER, [contact(110001, Name="Zoë Brown")], "cp1252")
    with pytest.raises(DirectoryImportError, match=r"contacts\.csv: line 2: .*as CSV UTF-8"):
        files.run(conn)


def test_import_while_another_writer_holds_the_database_changes_nothing(
    files: Files, conn: sqlite3.Connection, tmp_path: Path
) -> None:
    files.run(conn)
    other = open_state(tmp_path / "state" / "gateway.db")
    other.execute("BEGIN IMMEDIATE")
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(StateError, match="cannot start the directory import"):
            files.run(conn)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert conn.execute("SELECT COUNT(*) FROM directory_import").fetchone()[0] == 1

"""Reading the police's daily workbook into incidents and children.

The adapter between openpyxl and the domain. `check_xlsx` judges the raw bytes first; then
every worksheet is read: its header row found below any title rows, its headers tied to the
gateway's fields by rules/police_headers.toml, each cell read by gateway.cell_values.

Nothing is silently lost. A cell that cannot be read is a CellProblem (file, sheet, Excel
row, the police's header, the value) on the child or the incident it belongs to, and the
rest of the file is still read; a row without an incident reference is an incident of its
own with ref ""; a sheet or a column that cannot be read is a problem of the intake.

Both layouts: one row per child with the incident's cells repeated (or merged down the
rows), grouped into one Incident per reference; and one row per incident with "Child 1 ...",
"Child 2 ..." column groups. Formula cells are kept as their text ("=...") and never
evaluated. An incident whose date is known but not its time has `occurred_at` at 00:00
Europe/London and `time_known` False, so nothing later shows a midnight the police never wrote.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import TypeVar

from openpyxl import load_workbook
from openpyxl.styles.numbers import is_datetime
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.worksheet import Worksheet

from gateway.cell_values import (
    parse_crime_status,
    parse_incident_datetime,
    parse_risk,
    parse_time,
    parse_uk_date,
    split_person_name,
    tidy_name,
)
from gateway.clock import LONDON
from gateway.errors import RulesError, SpreadsheetRefused
from gateway.model import (
    CellProblem,
    ChildRecord,
    CrimeStatus,
    Incident,
    Risk,
    SourceRow,
    SpreadsheetIntake,
)
from gateway.validation import Strict, load_toml_model
from gateway.xlsx_guard import XlsxLimits, check_xlsx

HEADER_FILE = "police_headers.toml"
# The header row is looked for among this many rows that have anything in them.
HEADER_SCAN_ROWS = 30

_T = TypeVar("_T")


class IncidentField(StrEnum):
    REF = "ref"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    RISK = "risk"
    CRIME_STATUS = "crime_status"
    CIRCUMSTANCES = "circumstances"
    LOCATION = "location"
    POSTCODE = "postcode"
    OTHER_INFO = "other_info"


class ChildField(StrEnum):
    NAME = "name"
    FORENAME = "forename"
    SURNAME = "surname"
    DOB = "dob"
    INVOLVEMENT = "involvement"
    RELATIONSHIP = "relationship"
    SCHOOL = "school"
    POSTCODE = "postcode"
    VOICE = "voice"


# The fields that say who a child is; the others describe a child already named.
_IDENTITY = (ChildField.NAME, ChildField.FORENAME, ChildField.SURNAME, ChildField.DOB)


class _HeaderRules(Strict):
    group_prefixes: list[str]
    ignored: tuple[str, ...] = ()
    incident: dict[IncidentField, list[str]]
    child: dict[ChildField, list[str]]
    child_group_suffixes: dict[ChildField, list[str]]


def header_key(text: str) -> str:
    """A header as compared with the aliases: letters and digits only, case folded."""
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass(frozen=True)
class HeaderMap:
    """The police's headers, normalised by `header_key`, and the field each one names."""

    incident: Mapping[str, IncidentField]
    child: Mapping[str, ChildField]
    group_suffixes: Mapping[str, ChildField]
    group_prefixes: tuple[str, ...]
    ignored: frozenset[str]

    def field_of(self, header: str) -> tuple[IncidentField | ChildField, int | None] | None:
        """The field a header names and, for a "Child N ..." column, the N."""
        key = header_key(header)
        if key in self.incident:
            return self.incident[key], None
        if key in self.child:
            return self.child[key], None
        for prefix in self.group_prefixes:
            if match := re.fullmatch(rf"{re.escape(prefix)}(\d+)(.*)", key):
                rest = match[2]
                child_field = self.group_suffixes.get(rest) or self.child.get(rest)
                if child_field is not None:
                    return child_field, int(match[1])
        if (match := re.fullmatch(r"(.*\D)(\d+)", key)) and match[1] in self.child:
            return self.child[match[1]], int(match[2])
        return None

    def is_ignored(self, header: str) -> bool:
        return header_key(header) in self.ignored


def load_header_map(rules_dir: Path) -> HeaderMap:
    """The header map from rules/police_headers.toml; RulesError names a bad or shared alias."""
    path = rules_dir / HEADER_FILE
    rules = load_toml_model(path, _HeaderRules, RulesError)
    plain: dict[str, IncidentField | ChildField] = {}
    for section, aliases in (("incident", rules.incident), ("child", rules.child)):
        _add_aliases(plain, section, aliases, path)
    suffixes: dict[str, IncidentField | ChildField] = {}
    _add_aliases(suffixes, "child_group_suffixes", rules.child_group_suffixes, path)
    return HeaderMap(
        incident={key: f for key, f in plain.items() if isinstance(f, IncidentField)},
        child={key: f for key, f in plain.items() if isinstance(f, ChildField)},
        group_suffixes={key: f for key, f in suffixes.items() if isinstance(f, ChildField)},
        # Longest first, so "child" is tried before "ch".
        group_prefixes=tuple(
            sorted({header_key(p) for p in rules.group_prefixes}, key=len, reverse=True)
        ),
        ignored=frozenset(header_key(header) for header in rules.ignored),
    )


def _add_aliases(
    into: dict[str, IncidentField | ChildField],
    section: str,
    aliases: Mapping[IncidentField, list[str]] | Mapping[ChildField, list[str]],
    path: Path,
) -> None:
    for name, words in aliases.items():
        for alias in words:
            key = header_key(alias)
            known = into.setdefault(key, name)
            if known is not name:
                raise RulesError(
                    f"{path}: {section}.{name}: alias {alias!r} already names the field "
                    f"{known.value!r}; an alias may name one field only"
                )


# --------------------------------------------------------------------------------------
# Reading a workbook


def read_police_workbook(
    data: bytes, file_name: str, headers: HeaderMap, *, limits: XlsxLimits, today: date
) -> SpreadsheetIntake:
    """Every incident and child in the workbook, with every problem found on the way.

    Raises SpreadsheetRefused when the file is refused whole (hostile, oversized, not an
    .xlsx, or one openpyxl cannot open). `today` settles two-digit years and catches dates
    of birth in the future.
    """
    check_xlsx(data, file_name, limits)
    try:
        with warnings.catch_warnings():
            # openpyxl warns about Excel features it drops (data validation extensions,
            # slicers); they do not change a cell value.
            warnings.simplefilter("ignore")
            workbook = load_workbook(
                BytesIO(data), read_only=False, data_only=False, keep_links=False, keep_vba=False
            )
    except Exception as exc:
        # openpyxl and defusedxml raise whatever their parsers meet (KeyError, TypeError,
        # ParseError, EntitiesForbidden...); to the Navigator it is all "cannot be opened".
        raise SpreadsheetRefused(
            f"{file_name}: refused: it cannot be opened as a workbook ({type(exc).__name__}: {exc})"
        ) from exc
    sheets = [sheet for sheet in workbook.worksheets if isinstance(sheet, Worksheet)]
    if not sheets:
        # Excel cannot save a workbook without a worksheet: this one is damaged.
        raise SpreadsheetRefused(f"{file_name}: refused: it has no worksheets")
    reader = _WorkbookReader(file_name, headers, today)
    for sheet in sheets:
        reader.read_sheet(sheet)
    return reader.intake(hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class _Column:
    index: int
    header: str
    field: IncidentField | ChildField
    group: int | None


@dataclass(frozen=True)
class _Layout:
    """A sheet's header row, read."""

    sheet: str
    header_row: int
    columns: tuple[_Column, ...]

    @property
    def grouped(self) -> bool:
        return any(column.group is not None for column in self.columns)

    def header_of(self, wanted: Iterable[IncidentField | ChildField], group: int | None) -> str:
        """The police's header for the first column of one of the `wanted` fields."""
        for wanted_field in wanted:
            for column in self.columns:
                if column.field is wanted_field and column.group == group:
                    return column.header
        return ""


@dataclass(frozen=True)
class _Cell:
    """A non-empty cell of a mapped column."""

    sheet: str
    row: int
    column: _Column
    value: object

    @property
    def text(self) -> str:
        return _as_text(self.value)

    @property
    def is_formula(self) -> bool:
        return isinstance(self.value, str) and self.value.startswith("=")


@dataclass(frozen=True)
class _Reading:
    """One incident value as read from one row, kept to compare with the other rows."""

    value: datetime | date | Risk | CrimeStatus | str  # a date alone: the time is unknown
    cell: _Cell  # where it was read (the date's cell when date and time are two columns)
    shown: str  # the value as the police wrote it


@dataclass
class _IncidentParts:
    """An incident being put together from its rows."""

    ref: str
    readings: dict[str, _Reading] = field(default_factory=dict)
    problems: list[CellProblem] = field(default_factory=list)
    children: list[ChildRecord] = field(default_factory=list)


class _WorkbookReader:
    def __init__(self, file_name: str, headers: HeaderMap, today: date) -> None:
        self.file = file_name
        self.headers = headers
        self.today = today
        # Keyed by ref; a row without one is keyed by (sheet, row) and stands alone.
        self.incidents: dict[str | tuple[str, int], _IncidentParts] = {}
        self.problems: list[CellProblem] = []

    def intake(self, sha256: str) -> SpreadsheetIntake:
        return SpreadsheetIntake(
            file=self.file,
            sha256=sha256,
            incidents=tuple(_incident(parts) for parts in self.incidents.values()),
            problems=tuple(self.problems),
        )

    def problem(self, cell: _Cell, message: str, value: str | None = None) -> CellProblem:
        shown = cell.text if value is None else value
        return CellProblem(self.file, cell.sheet, cell.row, cell.column.header, shown, message)

    # ---------------------------------------------------------------------------------
    # Sheets

    def read_sheet(self, sheet: Worksheet) -> None:
        grid = _grid(sheet)
        if not grid:
            return
        layout = self.find_header(sheet.title, grid)
        if layout is None:
            first = min(grid)
            self.problems.append(
                CellProblem(
                    self.file,
                    sheet.title,
                    first,
                    "",
                    _as_text(grid[first][min(grid[first])]),
                    f"no header row found in the first {HEADER_SCAN_ROWS} rows (one with an "
                    "incident reference column and a child name or date of birth column), "
                    f"so nothing on this sheet was read ({len(grid)} rows with content)",
                )
            )
            return
        data_rows = [row for row in sorted(grid) if row > layout.header_row]
        self.report_unread_columns(layout, grid, data_rows)
        for row in data_rows:
            cells = [
                _Cell(layout.sheet, row, column, grid[row][column.index])
                for column in layout.columns
                if column.index in grid[row]
            ]
            if cells and not _repeats_header(cells):
                self.read_row(layout, row, cells)

    def find_header(self, sheet: str, grid: Mapping[int, Mapping[int, object]]) -> _Layout | None:
        best: _Layout | None = None
        best_score = 0
        for row in sorted(grid)[:HEADER_SCAN_ROWS]:
            columns = []
            for index, value in sorted(grid[row].items()):
                header = _as_text(value)
                mapped = self.headers.field_of(header)
                if mapped is not None:
                    columns.append(_Column(index, header, mapped[0], mapped[1]))
            fields = {(column.field, column.group) for column in columns}
            has_ref = any(f is IncidentField.REF for f, _ in fields)
            has_child = any(f in _IDENTITY for f, _ in fields)
            if has_ref and has_child and len(fields) > best_score:
                best, best_score = _Layout(sheet, row, tuple(columns)), len(fields)
        return best

    def report_unread_columns(
        self, layout: _Layout, grid: Mapping[int, Mapping[int, object]], data_rows: list[int]
    ) -> None:
        mapped = {column.index for column in layout.columns}
        with_values = sorted({index for row in data_rows for index in grid[row]} - mapped)
        for index in with_values:
            header = _as_text(grid[layout.header_row].get(index))
            if header and self.headers.is_ignored(header):
                continue
            self.problems.append(
                CellProblem(
                    self.file,
                    layout.sheet,
                    layout.header_row,
                    header or f"column {get_column_letter(index)}",
                    "",
                    "this column's header is not in rules/police_headers.toml, so its values "
                    "were not read",
                )
            )

    # ---------------------------------------------------------------------------------
    # Rows

    def read_row(self, layout: _Layout, row: int, cells: list[_Cell]) -> None:
        incident_cells = [cell for cell in cells if isinstance(cell.column.field, IncidentField)]
        by_group: dict[int | None, list[_Cell]] = {}
        for cell in cells:
            if isinstance(cell.column.field, ChildField):
                by_group.setdefault(cell.column.group, []).append(cell)
        # In the Child N layout, plain child columns ("Relationship") belong to every child.
        shared = by_group.get(None, []) if layout.grouped else []
        children = []
        for group, own in sorted(by_group.items(), key=lambda item: item[0] or 0):
            if layout.grouped and group is None:
                own = [cell for cell in own if cell.column.field in _IDENTITY]
                if not own:
                    continue
            defaults = [] if group is None else shared
            children.append(self.read_child(layout, row, group, own, defaults))
        ref_header = layout.header_of([IncidentField.REF], None)
        if not children:
            ref_cell = next(
                (c for c in incident_cells if c.column.field is IncidentField.REF), None
            )
            self.problems.append(
                CellProblem(
                    self.file,
                    layout.sheet,
                    row,
                    ref_header,
                    ref_cell.text if ref_cell else "",
                    "this row has incident details but no child (no name or date of birth)",
                )
            )
            return
        values = _Values(incident_cells, self.problem)
        ref_cell = values.one(IncidentField.REF)
        ref = ref_cell.text if ref_cell else ""
        parts = self.incidents.setdefault(ref or (layout.sheet, row), _IncidentParts(ref))
        parts.children.extend(children)
        if not ref:
            parts.problems.append(
                CellProblem(
                    self.file,
                    layout.sheet,
                    row,
                    ref_header,
                    "",
                    "no incident reference: the children of this row are not linked to an incident",
                )
            )
        for name, reading in self.read_incident_values(values).items():
            first = parts.readings.setdefault(name, reading)
            if first is not reading and not _same_value(first.value, reading.value):
                values.problems.append(
                    self.problem(
                        reading.cell,
                        f"differs from {_place(first.cell, reading.cell)} of incident {ref} "
                        f"({first.shown!r})",
                        value=reading.shown,
                    )
                )
        parts.problems.extend(values.problems)

    def read_incident_values(self, values: _Values) -> dict[str, _Reading]:
        readings: dict[str, _Reading] = {}
        if occurred := self.read_occurred(values):
            readings["occurred_at"] = occurred
        if (cell := values.one(IncidentField.RISK)) and (risk := values.parse(cell, parse_risk)):
            readings["risk"] = _Reading(risk, cell, cell.text)
        cell = values.one(IncidentField.CRIME_STATUS)
        if cell and (status := values.parse(cell, parse_crime_status)):
            readings["crime_status"] = _Reading(status, cell, cell.text)
        for text_field in (
            IncidentField.CIRCUMSTANCES,
            IncidentField.LOCATION,
            IncidentField.POSTCODE,
            IncidentField.OTHER_INFO,
        ):
            if cell := values.one(text_field):
                text = _postcode(cell.text) if text_field is IncidentField.POSTCODE else cell.text
                readings[text_field.value] = _Reading(text, cell, cell.text)
        return readings

    def read_occurred(self, values: _Values) -> _Reading | None:
        """When the incident happened, from a date-and-time column, or date and time ones."""
        stamp_cell = values.one(IncidentField.DATETIME)
        date_cell = values.one(IncidentField.DATE)
        time_cell = values.one(IncidentField.TIME)
        stamp = values.parse(stamp_cell, self.parse_moment)
        day = values.parse(date_cell, self.parse_moment)
        at = values.parse(time_cell, parse_time)
        if stamp_cell and date_cell and stamp and day and not _same_moment(stamp, day):
            values.problems.append(
                values.problem(
                    date_cell, f"differs from {stamp_cell.column.header!r} ({stamp_cell.text!r})"
                )
            )
        moment, source = (stamp, stamp_cell) if stamp is not None else (day, date_cell)
        if moment is None or source is None:
            return None
        if at is None or time_cell is None:
            if isinstance(moment, datetime):
                return _Reading(moment, source, source.text)
            return _Reading(moment, source, source.text)
        if isinstance(moment, datetime) and moment.time() != at:
            values.problems.append(
                values.problem(
                    time_cell,
                    f"differs from the time in {source.column.header!r} ({source.text!r})",
                )
            )
        return _Reading(_at_london(_day_of(moment), at), source, f"{source.text} {time_cell.text}")

    def parse_moment(self, value: object) -> datetime | date:
        return parse_incident_datetime(value, today=self.today)

    def read_child(
        self, layout: _Layout, row: int, group: int | None, own: list[_Cell], shared: list[_Cell]
    ) -> ChildRecord:
        values = _Values(own, self.problem)
        forename, surname = self.read_name(layout, row, group, values)
        dob: date | None = None
        if dob_cell := values.one(ChildField.DOB):
            dob = values.parse(dob_cell, lambda value: parse_uk_date(value, today=self.today))
            if dob is not None and dob > self.today:
                values.problems.append(values.problem(dob_cell, "date of birth is in the future"))
                dob = None
        fallback = _Values(shared, self.problem)

        def text(child_field: ChildField) -> str:
            cell = values.one(child_field) or fallback.one(child_field)
            return cell.text if cell else ""

        return ChildRecord(
            forename=forename,
            surname=surname,
            dob=dob,
            source=SourceRow(self.file, layout.sheet, row, group),
            involvement=text(ChildField.INVOLVEMENT),
            relationship=text(ChildField.RELATIONSHIP),
            school_text=text(ChildField.SCHOOL),
            postcode=_postcode(text(ChildField.POSTCODE)),
            voice_of_child=text(ChildField.VOICE),
            problems=tuple(values.problems),
        )

    def read_name(
        self, layout: _Layout, row: int, group: int | None, values: _Values
    ) -> tuple[str, str]:
        forename_cell = values.one(ChildField.FORENAME)
        surname_cell = values.one(ChildField.SURNAME)
        if forename_cell or surname_cell:
            for cell, part in (
                (forename_cell, ChildField.FORENAME),
                (surname_cell, ChildField.SURNAME),
            ):
                if cell is None:
                    header = layout.header_of([part], group) or part.value
                    values.problems.append(
                        CellProblem(self.file, layout.sheet, row, header, "", f"no {part} given")
                    )
            return (
                tidy_name(forename_cell.text) if forename_cell else "",
                tidy_name(surname_cell.text) if surname_cell else "",
            )
        if name_cell := values.one(ChildField.NAME):
            try:
                return split_person_name(name_cell.text)
            except ValueError as exc:
                values.problems.append(values.problem(name_cell, str(exc)))
                return name_cell.text, ""
        # Known only by a date of birth, say: kept, with nothing to match a school by name.
        header = layout.header_of((ChildField.NAME, ChildField.FORENAME), group) or "child name"
        values.problems.append(
            CellProblem(self.file, layout.sheet, row, header, "", "the child has no name")
        )
        return "", ""


def _incident(parts: _IncidentParts) -> Incident:
    def value(name: str) -> object:
        reading = parts.readings.get(name)
        return reading.value if reading else None

    occurred, risk, crime = value("occurred_at"), value("risk"), value("crime_status")
    if isinstance(occurred, date) and not isinstance(occurred, datetime):
        occurred = _at_london(occurred, time(0, 0))
        time_known = False
    else:
        time_known = True
    return Incident(
        ref=parts.ref,
        occurred_at=occurred if isinstance(occurred, datetime) else None,
        time_known=time_known,
        risk=risk if isinstance(risk, Risk) else None,
        crime_status=crime if isinstance(crime, CrimeStatus) else None,
        children=tuple(parts.children),
        circumstances=str(value("circumstances") or ""),
        location=str(value("location") or ""),
        postcode=str(value("postcode") or ""),
        other_info=str(value("other_info") or ""),
        problems=tuple(parts.problems),
    )


class _Values:
    """The cells of one row (or child group) by field, and the problems met reading them."""

    def __init__(
        self, cells: Iterable[_Cell], problem: Callable[[_Cell, str], CellProblem]
    ) -> None:
        self.cells = list(cells)
        self.problem = problem
        self.problems: list[CellProblem] = []
        self._checked: set[IncidentField | ChildField] = set()

    def one(self, wanted: IncidentField | ChildField) -> _Cell | None:
        """The field's cell. A formula, or two columns of the field that disagree, is a
        problem (reported once, however often the field is asked for)."""
        matching = [cell for cell in self.cells if cell.column.field is wanted]
        if not matching:
            return None
        first = matching[0]
        if wanted not in self._checked:
            self._checked.add(wanted)
            if first.is_formula:
                self.problems.append(
                    self.problem(first, "is a formula; formulas are never worked out")
                )
            for other in matching[1:]:
                if _squash(other.text) != _squash(first.text):
                    message = f"differs from column {first.column.header!r} of the same row"
                    self.problems.append(self.problem(other, message))
        return first

    def parse(self, cell: _Cell | None, parse: Callable[[object], _T]) -> _T | None:
        """The cell's value parsed, or None with the reason recorded as a problem."""
        if cell is None or cell.is_formula:
            return None
        try:
            return parse(cell.value)
        except ValueError as exc:
            self.problems.append(self.problem(cell, str(exc)))
            return None


# --------------------------------------------------------------------------------------
# Cells


def _grid(sheet: Worksheet) -> dict[int, dict[int, object]]:
    """The sheet's non-empty values as {row: {column: value}}, merged ranges filled down.

    Walks the cells the file holds rather than iter_rows(): a sheet that claims a
    dimension of A1:XFD1048576 would otherwise make openpyxl create every cell in it.
    """
    grid: dict[int, dict[int, object]] = {}
    for (row, column), cell in sheet._cells.items():
        value = _cell_value(cell.value, cell.number_format)
        if value is not None:
            grid.setdefault(row, {})[column] = value
    if not grid:
        return grid
    last_row = max(grid)
    for merged in sheet.merged_cells.ranges:
        top = grid.get(merged.min_row, {}).get(merged.min_col)
        if top is None:
            continue
        # Down the first column only: filling across would put one field's value under
        # the neighbouring fields' headers.
        for row in range(merged.min_row + 1, min(merged.max_row, last_row) + 1):
            grid.setdefault(row, {})[merged.min_col] = top
    return grid


def _cell_value(value: object, number_format: str) -> object:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, ArrayFormula):
        return str(value.text or "=")
    if (
        isinstance(value, datetime)
        and value.time() == time(0, 0)
        and is_datetime(number_format) == "date"
    ):
        # A cell shown as a date holds a date: its time is unknown, not midnight.
        return value.date()
    return value


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M") if value.time() else value.strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value).strip()


def _squash(text: str) -> str:
    return " ".join(text.split())


def _postcode(text: str) -> str:
    return _squash(text).upper()


def _place(earlier: _Cell, later: _Cell) -> str:
    if earlier.sheet == later.sheet:
        return f"row {earlier.row}"
    return f"sheet {earlier.sheet!r} row {earlier.row}"


def _repeats_header(cells: list[_Cell]) -> bool:
    # A second table on the same sheet starts with the header row again: not a child.
    return all(header_key(cell.text) == header_key(cell.column.header) for cell in cells)


def _day_of(moment: datetime | date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _at_london(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=LONDON)


def _same_moment(first: datetime | date, second: datetime | date) -> bool:
    if isinstance(first, datetime) and isinstance(second, datetime):
        return first == second
    return _day_of(first) == _day_of(second)


def _same_value(first: object, second: object) -> bool:
    if isinstance(first, str) and isinstance(second, str):
        return _squash(first) == _squash(second)
    if isinstance(first, date) and isinstance(second, date):
        return _same_moment(first, second)
    return first == second

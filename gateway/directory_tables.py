"""CSV files and worksheets as tables of cells, and reading a cell with a row-level warning.

The directory readers (gateway.directory_files) are built on these: a file is opened and its
header checked before any row is read; a cell that cannot be read raises BadField, which
the reader turns into a warning naming the file, line, field and value, skipping that row.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from gateway.errors import DirectoryImportError

RecordT = TypeVar("RecordT")
Cells = Sequence[object]

# A national roll can carry tens of thousands of warnings; the count is always exact, but
# only the first ones are worth keeping to show an administrator.
MAX_KEPT_WARNINGS = 1000


class ImportLog:
    """The warnings of one import: every one counted, the first MAX_KEPT_WARNINGS kept."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.count = 0
        self.skipped_rows = 0
        self.invalid_upns = 0

    def warn(self, where: str, field: str, value: object, message: str) -> None:
        self.count += 1
        if len(self.kept) < MAX_KEPT_WARNINGS:
            self.kept.append(f"{where}: {field} {_shown(value)}: {message}")

    def skip(self, where: str, field: str, value: object, message: str) -> None:
        self.skipped_rows += 1
        self.warn(where, field, value, f"{message}; row skipped")


class Records(Generic[RecordT]):
    """The records of one open file, read once by iterating; close it (or use `with`).

    `where` names the row of the record last yielded ("roll.csv, line 12"), for checks that
    span files (a contact's URN against GIAS) made by the caller.
    """

    def __init__(self, table: Table, parse: Callable[[str, Cells], RecordT | None]) -> None:
        self._table = table
        self._parse = parse
        self.where = table.name

    def __enter__(self) -> Records[RecordT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._table.close()

    def __iter__(self) -> Iterator[RecordT]:
        table, parse = self._table, self._parse
        prefix = f"{table.name}, {table.unit} "
        for number, cells in table.rows:
            if not any(cells):
                continue
            self.where = where = prefix + str(number)
            record = parse(where, cells)
            if record is not None:
                yield record

    @property
    def name(self) -> str:
        return self._table.name

    def size_hint(self) -> int | None:
        """About how many data rows the file has (for a progress bar), or None if unknown."""
        return self._table.size_hint()


# --------------------------------------------------------------------------------------
# Files as tables of cells


class Table:
    """An open CSV file or worksheet: its header and an iterator of (number, cells)."""

    def __init__(
        self,
        path: Path,
        unit: str,
        header_number: int,
        header: Cells,
        rows: Iterator[tuple[int, Cells]],
        close: Callable[[], None],
        size_hint: Callable[[], int | None],
    ) -> None:
        self.path = path
        self.name = path.name
        self.unit = unit
        self.header_number = header_number
        self.header = [_header_key(cell) for cell in header]
        self.rows = rows
        self.close = close
        self.size_hint = size_hint
        self._width = len(self.header)

    def columns(self, wanted: Mapping[str, str], required: Sequence[str]) -> dict[str, int]:
        """The index of each wanted column by field; a missing required one closes the file
        and raises DirectoryImportError naming every missing column."""
        index: dict[str, int] = {}
        for position, key in enumerate(self.header):
            index.setdefault(key, position)
        found = {
            field: index[_header_key(name)]
            for field, name in wanted.items()
            if _header_key(name) in index
        }
        missing = [wanted[field] for field in required if field not in found]
        if missing:
            self.close()
            names = ", ".join(repr(name) for name in missing)
            plural = "s" if len(missing) > 1 else ""
            raise DirectoryImportError(
                f"{self.path}: required column{plural} {names} missing from the header "
                f"({self.unit} {self.header_number})"
            )
        return found

    def padded(self, cells: Cells) -> Cells:
        # A short row (trailing empty cells dropped by the exporter) reads as empty cells.
        if len(cells) >= self._width:
            return cells
        return [*cells, *([None] * (self._width - len(cells)))]


def open_csv(path: Path, encoding: str) -> Table:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DirectoryImportError(f"{path}: cannot be read: {exc.strerror}") from exc

    def lines() -> Iterator[str]:
        # Decoded line by line, not by the buffered text layer, so that a bad byte is
        # reported on its own line rather than somewhere in the 8 KiB block around it.
        # A BOM can only start the file; the plain codec is much faster for the other lines.
        rest = "utf-8" if encoding == "utf-8-sig" else encoding
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode(encoding if number == 1 else rest)
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1]
                advice = "CSV UTF-8" if encoding.startswith("utf") else "the GIAS download"
                raise DirectoryImportError(
                    f"{path}: line {number}: not {encoding.removesuffix('-sig')} text "
                    f"(byte {bad!r}); export the file again as {advice}"
                ) from None

    reader = csv.reader(lines())
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise DirectoryImportError(f"{path}: the file is empty; expected a header line") from None
    except csv.Error as exc:
        handle.close()
        raise DirectoryImportError(f"{path}: line 1: not readable as CSV: {exc}") from exc
    except DirectoryImportError:
        handle.close()
        raise

    def rows() -> Iterator[tuple[int, Cells]]:
        try:
            for cells in reader:
                yield reader.line_num, cells
        except csv.Error as exc:
            raise DirectoryImportError(
                f"{path}: line {reader.line_num + 1}: not readable as CSV: {exc}"
            ) from exc

    def size_hint() -> int | None:
        return max(_count_lines(path) - 1, 0)

    return Table(path, "line", 1, header, rows(), handle.close, size_hint)


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


def open_xlsx(path: Path) -> Table:
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except OSError as exc:
        raise DirectoryImportError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError) as exc:
        raise DirectoryImportError(f"{path}: not a readable .xlsx workbook: {exc}") from exc
    try:
        sheet = workbook.worksheets[0]
        numbered = enumerate(sheet.iter_rows(values_only=True), start=1)
        # The header is the first row with anything in it; the data rows follow from there.
        found = next((row for row in numbered if any(_header_key(c) for c in row[1])), None)
        if found is None:
            raise DirectoryImportError(
                f"{path}: the first worksheet is empty; expected a header row"
            )
    except BaseException:
        workbook.close()
        raise
    header_row, header = found

    def size_hint() -> int | None:
        return None if sheet.max_row is None else max(sheet.max_row - header_row, 0)

    return Table(path, "row", header_row, header, numbered, workbook.close, size_hint)


# --------------------------------------------------------------------------------------
# Cell values


class BadField(Exception):
    """A cell that cannot be read; the row it is in is skipped with a warning."""

    def __init__(self, field: str, value: object, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message


def cell_text(value: object) -> str:
    if type(value) is str:  # every CSV cell: the fast path for a roll of millions of rows
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        # A number typed into Excel (a URN, a phone number) comes back as a float.
        return str(int(value))
    return str(value).strip()


def cell_required_text(value: object, field: str) -> str:
    text = cell_text(value)
    if not text:
        raise BadField(field, value, "a value is required")
    return text


def cell_int(value: object, field: str) -> int | None:
    text = cell_text(value)
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadField(field, value, "not a whole number")
    return int(text)


def cell_required_int(value: object, field: str) -> int:
    number = cell_int(value, field)
    if number is None:
        raise BadField(field, value, "a value is required")
    return number


def cell_date(value: object, field: str) -> date | None:
    """A date from a cell: an Excel date, or text dd/mm/yyyy, dd-mm-yyyy or yyyy-mm-dd."""
    if type(value) is str:
        text = value.strip()
    elif isinstance(value, datetime):
        return value.date()
    elif isinstance(value, date):
        return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _excel_serial(value, field)
    else:
        text = cell_text(value)
    if not text:
        return None
    parsed = _text_date(text)
    if parsed is None:
        raise BadField(field, value, "not a date (expected dd/mm/yyyy, dd-mm-yyyy or yyyy-mm-dd)")
    return parsed


def cell_required_date(value: object, field: str) -> date:
    day = cell_date(value, field)
    if day is None:
        raise BadField(field, value, "a value is required")
    return day


_DAY_FIRST = re.compile(r"(\d{1,2})([/-])(\d{1,2})\2(\d{4})(?: 00:00(?::00)?)?")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00)?)?")


# A roll of two million pupils has only a few thousand distinct birth dates.
@lru_cache(maxsize=1 << 16)
def _text_date(text: str) -> date | None:
    try:
        if match := _DAY_FIRST.fullmatch(text):
            return date(int(match[4]), int(match[3]), int(match[1]))
        if match := _ISO_DATE.fullmatch(text):
            return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:  # 31/02/2015
        return None
    return None


_EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 counting Excel's phantom 29 Feb 1900


def _excel_serial(value: float, field: str) -> date:
    # Only a cell the exporter left unformatted reaches here; serial 61 is 1900-03-01, and
    # anything earlier (or fractional) is not a date an education system would hold.
    if not float(value).is_integer() or not 61 <= value <= 2958465:
        raise BadField(field, value, "a number, not a date")
    return _EXCEL_EPOCH + timedelta(days=int(value))


def _header_key(value: object) -> str:
    return " ".join(cell_text(value).split()).casefold()


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else cell_text(value)
    return repr(text) if text else "(empty)"

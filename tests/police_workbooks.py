"""Police workbooks made by code for the intake tests: real .xlsx files built with openpyxl,
and the zip surgery that turns a good one into a hostile one. All names are invented."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from io import BytesIO
from pathlib import Path

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from gateway.model import SpreadsheetIntake
from gateway.spreadsheet import HeaderMap, load_header_map, read_police_workbook
from gateway.xlsx_guard import XlsxLimits

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
HEADERS: HeaderMap = load_header_map(RULES_DIR)
TODAY = date(2025, 3, 3)
FILE = "daily.xlsx"

Rows = Sequence[Sequence[object]]

# The one-row-per-child layout at its plainest.
LONG_HEADER = ["Incident Ref", "Date", "Time", "Risk", "Crime/Non-crime", "Child Name", "DOB"]


def xlsx(*sheets: tuple[str, Rows], tweak: Callable[[Workbook], None] | None = None) -> bytes:
    """A workbook with one sheet per (title, rows), saved to bytes; `tweak` may style it."""
    workbook = Workbook()
    first: Worksheet | None = workbook.active  # type: ignore[assignment]
    assert first is not None
    for index, (title, rows) in enumerate(sheets):
        sheet = first if index == 0 else workbook.create_sheet()
        sheet.title = title
        for row in rows:
            sheet.append(list(row))
    if tweak is not None:
        tweak(workbook)
    out = BytesIO()
    workbook.save(out)
    return out.getvalue()


def long_sheet(*rows: Sequence[object]) -> bytes:
    """A one-sheet workbook with LONG_HEADER in row 1 and `rows` below it."""
    return xlsx(("Incidents", [LONG_HEADER, *rows]))


def read(
    data: bytes, *, file_name: str = FILE, limits: XlsxLimits | None = None
) -> SpreadsheetIntake:
    return read_police_workbook(
        data, file_name, HEADERS, limits=limits or XlsxLimits(), today=TODAY
    )


def rewrite_parts(
    data: bytes,
    replace: Mapping[str, bytes] | None = None,
    *,
    add: Mapping[str, bytes] | None = None,
) -> bytes:
    """The same .xlsx with some parts' contents replaced and some parts added."""
    replace = replace or {}
    out = BytesIO()
    with (
        zipfile.ZipFile(BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            target.writestr(entry.filename, replace.get(entry.filename, source.read(entry)))
        for name, content in (add or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def part(data: bytes, name: str) -> bytes:
    with zipfile.ZipFile(BytesIO(data)) as archive:
        return archive.read(name)

"""The Navigator's record: every child decision, what became of it, in one spreadsheet.

One row per child, in the order the police sent them, joined with the school's notification
(by incident and URN) and each message sealed for it. The Navigator's own record names the
child; the audit log never does, which is why this reads the state tables, not the log.

Everything in it came from outside (police text, school names, mail server replies), so a
text cell that a spreadsheet program would read as a formula is neutralised (OWASP's CSV
injection advice, applied to .xlsx): no cell of the file is a formula.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from gateway.clock import LONDON
from gateway.model import role_label
from gateway.revision_store import first_naming

CellValue = str | int | datetime | date | None

# Characters that make Excel, LibreOffice or a later CSV save read a cell as a formula.
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


_DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
_DATE_FORMAT = "dd/mm/yyyy"
_MAX_WIDTH = 60


@dataclass(frozen=True)
class Column:
    header: str
    wrap: bool = False


@dataclass(frozen=True)
class Sheet:
    """One worksheet of an export: its title, columns, and a row of cells per line."""

    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[CellValue, ...]]


_COLUMNS = (
    Column("Incident number"),
    Column("Incident date"),
    Column("Child"),
    Column("Date of birth"),
    Column("School"),
    Column("URN"),
    Column("Outcome"),
    Column("Due"),
    Column("Notification"),
    Column("DSL/DA Lead notified", wrap=True),
    Column("Sealed at"),
    Column("Sent at"),
    Column("Delivery"),
    Column("Exception"),
    Column("Reason", wrap=True),
)


@dataclass(frozen=True)
class _Message:
    role: str
    recipient: str
    state: str
    sealed_at: datetime
    sent_at: datetime | None
    last_error: str


def export_navigator_record(conn: sqlite3.Connection, out: Path) -> int:
    """Write the Navigator's record to `out` (.xlsx); return the number of children in it.

    The file appears whole or not at all: it is written beside `out` and renamed over it.
    """
    own_transaction = not conn.in_transaction
    if own_transaction:
        # One snapshot, so a dispatch running meanwhile cannot give a row half its messages.
        conn.execute("BEGIN")
    try:
        rows = list(_rows(conn))
    finally:
        if own_transaction:
            conn.execute("ROLLBACK")
    write_workbook(out, [Sheet("Notifications", _COLUMNS, rows)])
    return len(rows)


def _rows(conn: sqlite3.Connection) -> list[tuple[CellValue, ...]]:
    messages = _messages(conn)
    notifications = conn.execute(
        "SELECT reference, incident_ref, urn, state, exception_kind, reason, unseal(content)"
        " FROM notification"
    ).fetchall()
    by_reference = {n[0]: n for n in notifications}
    rows: list[tuple[CellValue, ...]] = []
    for decision in conn.execute(
        "SELECT incident_ref, outcome, exception_kind, urn, due, unseal(reason), unseal(record)"
        " FROM decision ORDER BY id"
    ):
        incident_ref, outcome, exception_kind, urn, due, reason, raw = decision
        record: dict[str, Any] = json.loads(raw)
        # The notification that named this child: the first about the incident to the
        # school, or the follow-up of a corrected resend that added the child.
        named_in = (
            first_naming(
                conn,
                incident_ref,
                urn,
                record.get("child") or "",
                date.fromisoformat(record["dob"]) if record.get("dob") else None,
            )
            if urn is not None
            else None
        )
        notification = by_reference.get(named_in) if named_in else None
        sent: list[_Message] = []
        reference, delivery = "", ""
        if notification is not None:
            reference, delivery = notification[0], notification[3]
            sent = messages.get(reference, [])
            if notification[3] == "exception":
                outcome = "exception"
            exception_kind = notification[4] or exception_kind
            reason = notification[5] or reason
        sent_times = [m.sent_at for m in sent if m.sent_at is not None]
        rows.append(
            (
                incident_ref,
                _incident_time(record),
                record.get("child") or "",
                date.fromisoformat(record["dob"]) if record.get("dob") else None,
                record.get("school") or "",
                urn,
                outcome,
                _local(due),
                reference,
                "\n".join(_contact_line(m) for m in sent),
                min((m.sealed_at for m in sent), default=None),
                min(sent_times, default=None),
                _delivery(sent) or delivery,
                exception_kind or "",
                reason,
            )
        )
    return rows


def _messages(conn: sqlite3.Connection) -> dict[str, list[_Message]]:
    found: dict[str, list[_Message]] = defaultdict(list)
    for row in conn.execute(
        "SELECT reference, contact_role, recipient, state, sealed_at, sent_at, last_error"
        " FROM message ORDER BY id"
    ):
        reference, role, recipient, state, sealed_at, sent_at, last_error = row
        sealed = _local(sealed_at)
        assert sealed is not None  # the column is NOT NULL
        found[reference].append(
            _Message(role, recipient, state, sealed, _local(sent_at), last_error)
        )
    return found


def _contact_line(message: _Message) -> str:
    line = f"{role_label(message.role)}: {message.recipient}"
    if message.state != "sent":
        detail = f"{message.state}: {message.last_error}" if message.last_error else message.state
        line += f" ({detail})"
    return line


def _delivery(messages: list[_Message]) -> str:
    # The messages say more than the notification: "sent" only when every one has left.
    counts = Counter(message.state for message in messages)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))


def _incident_time(record: dict[str, Any]) -> datetime | date | None:
    if not record.get("incident_at"):
        return None
    local = datetime.fromisoformat(record["incident_at"]).astimezone(LONDON)
    # A date the police gave without a time is shown as a date, not as midnight.
    return local.replace(tzinfo=None) if record.get("incident_time_known", True) else local.date()


def _local(stored: str | None) -> datetime | None:
    # Excel has no time zones: the Navigator reads London wall-clock time, GMT or BST.
    if not stored:
        return None
    return datetime.fromisoformat(stored).astimezone(LONDON).replace(tzinfo=None)


def write_workbook(out: Path, sheets: list[Sheet]) -> None:
    """Write `sheets` to `out` (.xlsx), no cell a formula; the file appears whole or not at
    all (written beside `out` and renamed over it)."""
    book = Workbook()
    first = book.active
    assert first is not None  # a new Workbook always has one sheet
    book.remove(first)
    for sheet in sheets:
        _fill(book.create_sheet(sheet.title), sheet)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        book.save(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _fill(sheet: Worksheet, content: Sheet) -> None:
    columns = content.columns
    sheet.append([column.header for column in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = [len(column.header) for column in columns]
    for number, values in enumerate(content.rows, start=2):
        for index, (column, value) in enumerate(zip(columns, values, strict=True), start=1):
            cell = sheet.cell(row=number, column=index)
            if isinstance(value, str):
                cell.value = neutralise(value)
                cell.data_type = "s"
                if column.wrap:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
            else:
                cell.value = value
                if isinstance(value, datetime):
                    cell.number_format = _DATETIME_FORMAT
                elif isinstance(value, date):
                    cell.number_format = _DATE_FORMAT
            widths[index - 1] = max(widths[index - 1], _width(value))
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 2, _MAX_WIDTH)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions


def neutralise(text: str) -> str:
    """`text` safe for a spreadsheet cell: never a formula, no character XML forbids."""
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    # The apostrophe stays visible: a reader sees exactly what arrived, and the text stays
    # inert if the sheet is later saved as CSV, where a hidden quote prefix would be lost.
    return f"'{text}" if text.startswith(_FORMULA_LEADS) else text


def _width(value: CellValue) -> int:
    if isinstance(value, datetime):
        return 16
    if isinstance(value, date):
        return 10
    if value is None:
        return 0
    return max((len(line) for line in str(value).splitlines()), default=0)

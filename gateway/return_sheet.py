"""The police return sheet: the police's own spreadsheet sent back with each child's outcome.

The protocol asks the police to keep a record of which school was told about each child,
whom it told and when. Once every notification of a spreadsheet that came by mail has gone
(or become an exception for the Navigator), the gateway adds those columns to the police's
own workbook and sends it back to the sender, sealed to the police key that signed the mail,
once. A spreadsheet processed by hand (`encompass-gateway process`) has no sender to return
it to and gets none.

Every value written is the gateway's or came from outside (school names, addresses, the
police's own text in reasons), so each text cell is neutralised: the sheet never gains a
formula. The police's own cells are left as they were.
"""

from __future__ import annotations

import json
import re
import sqlite3
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from io import BytesIO
from pathlib import PurePath

from openpyxl import load_workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from gateway import audit
from gateway.audit_export import neutralise
from gateway.clock import LONDON
from gateway.config import PoliceSection
from gateway.keyring import normalise_fingerprint
from gateway.model import Outcome, SourceRow, role_label
from gateway.notification_store import NotificationState
from gateway.outbox import MessageKind
from gateway.own_mail import queue_sealed
from gateway.revision_store import first_naming
from gateway.sealing import Sealer
from gateway.spreadsheet import HEADER_SCAN_ROWS, HeaderMap, IncidentField
from gateway.store import transaction

OUTCOMES_SHEET = "Encompass outcomes"
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
_DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
# The columns added beside the police's own, in this order (prefixed "Child N " per group).
_ADDED = ("School", "URN", "DSL/DA Lead notified", "Time sent", "Outcome")
_OUTCOME_COLUMNS = (
    "Sheet",
    "Row",
    "Incident ref",
    "Child group",
    *_ADDED,
    "Reason",
)


@dataclass(frozen=True)
class ReturnRow:
    """One child's outcome, and where the child was in the police's workbook."""

    source: SourceRow
    incident_ref: str
    school: str
    urn: int | None
    notified: str  # who was sent the notification, one "Role: address" per line
    sent_at: datetime | None  # aware; None when nothing was sent
    outcome: str
    reason: str


@dataclass(frozen=True)
class MailSource:
    """A spreadsheet as it came by mail: its bytes and the sender who proved it."""

    workbook: bytes
    sender: str  # the allow-listed police address it came from
    signer: str | None  # the pinned police key that signed it; None when DKIM vouched alone


# --------------------------------------------------------------------------------------
# The workbook


def build_return_sheet(workbook: bytes, rows: Sequence[ReturnRow], *, headers: HeaderMap) -> bytes:
    """The police's workbook with each child's outcome added beside its row (or its Child N
    columns), and every outcome again on a sheet of its own.

    `headers` finds each sheet's header row as the intake did; a sheet where none is found
    gets no columns, and its children are still on the outcomes sheet.
    """
    with warnings.catch_warnings():
        # As at intake: openpyxl warns about Excel features it drops, not about cell values.
        warnings.simplefilter("ignore")
        book = load_workbook(
            BytesIO(workbook), read_only=False, data_only=False, keep_links=False, keep_vba=False
        )
    by_sheet: dict[str, list[ReturnRow]] = defaultdict(list)
    for row in rows:
        by_sheet[row.source.sheet].append(row)
    for title, sheet_rows in by_sheet.items():
        sheet = book[title] if title in book.sheetnames else None
        if isinstance(sheet, Worksheet):
            _add_columns(sheet, sheet_rows, headers)
    outcomes = book.create_sheet(OUTCOMES_SHEET)
    outcomes.append(list(_OUTCOME_COLUMNS))
    for cell in outcomes[1]:
        cell.font = Font(bold=True)
    for number, row in enumerate(rows, start=2):
        values = (
            row.source.sheet,
            row.source.row,
            row.incident_ref,
            row.source.group,
            *_values(row),
            row.reason,
        )
        for index, value in enumerate(values, start=1):
            _put(outcomes.cell(row=number, column=index), value)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def _add_columns(sheet: Worksheet, rows: list[ReturnRow], headers: HeaderMap) -> None:
    header_row = _header_row(sheet, headers, before=min(row.source.row for row in rows))
    if header_row is None:
        return
    first = sheet.max_column + 1
    groups = sorted({row.source.group for row in rows}, key=lambda group: group or 0)
    start = {group: first + index * len(_ADDED) for index, group in enumerate(groups)}
    for group, column in start.items():
        prefix = "" if group is None else f"Child {group} "
        for offset, name in enumerate(_ADDED):
            cell = sheet.cell(row=header_row, column=column + offset)
            _put(cell, prefix + name)
            cell.font = Font(bold=True)
    for row in rows:
        for offset, value in enumerate(_values(row)):
            _put(sheet.cell(row=row.source.row, column=start[row.source.group] + offset), value)


def _header_row(sheet: Worksheet, headers: HeaderMap, *, before: int) -> int | None:
    """The row the intake read as this sheet's header: the one above the children with an
    incident reference column and the most columns the header rules know."""
    best, best_score, scanned = None, 0, 0
    for cells in sheet.iter_rows(min_row=1, max_row=before - 1):
        texts = [str(cell.value).strip() for cell in cells if cell.value is not None]
        if not texts:
            continue
        scanned += 1
        if scanned > HEADER_SCAN_ROWS:
            break
        fields = {mapped for text in texts if (mapped := headers.field_of(text)) is not None}
        has_ref = any(field is IncidentField.REF for field, _ in fields)
        if has_ref and len(fields) > best_score:
            best, best_score = cells[0].row, len(fields)
    return best


def _values(row: ReturnRow) -> tuple[str | int | datetime | None, ...]:
    sent = row.sent_at.astimezone(LONDON).replace(tzinfo=None) if row.sent_at else None
    return (row.school, row.urn, row.notified, sent, row.outcome)


def _put(cell: Cell | MergedCell, value: str | int | datetime | None) -> None:
    # Only cells right of everything the police wrote, or on the new sheet: never merged.
    assert isinstance(cell, Cell)
    if isinstance(value, str):
        cell.value = neutralise(value)
        cell.data_type = "s"  # never "f", whatever openpyxl would guess
    else:
        cell.value = value
        if isinstance(value, datetime):
            # Excel has no time zones: London wall-clock time, GMT or BST.
            cell.number_format = _DATETIME_FORMAT


# --------------------------------------------------------------------------------------
# The state: what came by mail, and what became of each child


def record_source(conn: sqlite3.Connection, intake_id: int, source: MailSource) -> None:
    """Keep a mailed spreadsheet's bytes and sender with its intake (in the caller's
    transaction, so an intake from mail is never recorded without them)."""
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO intake_source (intake_id, workbook, sender, signer)"
            " VALUES (?, seal(?), ?, ?)",
            (intake_id, source.workbook, source.sender, source.signer),
        )


def has_pending_returns(conn: sqlite3.Connection) -> bool:
    """Whether a mailed spreadsheet still awaits its return sheet."""
    found = conn.execute("SELECT 1 FROM intake_source WHERE returned_at IS NULL LIMIT 1")
    return found.fetchone() is not None


def return_rows(conn: sqlite3.Connection, intake_id: int) -> list[ReturnRow] | None:
    """Each child of the intake with its outcome, in the police's order; None while a
    notification of one of them is still on its way (planned, sealed, sending or retrying)."""
    rows: list[ReturnRow] = []
    for decision in conn.execute(
        "SELECT incident_ref, outcome, urn, unseal(reason) AS reason, unseal(record) AS record"
        " FROM decision"
        " WHERE intake_id = ? ORDER BY id",
        (intake_id,),
    ).fetchall():
        record = json.loads(decision["record"])
        source = SourceRow(**record["source_row"])
        outcome, reason = Outcome(decision["outcome"]), decision["reason"]
        notified, sent_at = "", None
        if outcome is Outcome.NOTIFY:
            # The notification that told the school about this child: the first about the
            # incident, or the follow-up of a corrected resend that added the child.
            reference = first_naming(
                conn,
                decision["incident_ref"],
                decision["urn"],
                record.get("child") or "",
                date.fromisoformat(record["dob"]) if record.get("dob") else None,
            )
            notification = conn.execute(
                "SELECT reference, state, reason FROM notification WHERE reference = ?",
                (reference,),
            ).fetchone()
            if notification is None or notification["state"] not in (
                NotificationState.SENT,
                NotificationState.EXCEPTION,
            ):
                return None
            sent = conn.execute(
                "SELECT contact_role, recipient, sent_at FROM message"
                " WHERE reference = ? AND state = 'sent' ORDER BY id",
                (notification["reference"],),
            ).fetchall()
            notified = "\n".join(f"{role_label(m['contact_role'])}: {m['recipient']}" for m in sent)
            sent_at = min((datetime.fromisoformat(m["sent_at"]) for m in sent), default=None)
            if notification["state"] == NotificationState.EXCEPTION:
                reason = notification["reason"] or reason
        rows.append(
            ReturnRow(
                source=source,
                incident_ref=decision["incident_ref"],
                school=record.get("school") or "",
                urn=decision["urn"],
                notified=notified,
                sent_at=sent_at,
                outcome=_outcome_text(outcome, sent=sent_at is not None, notified=notified),
                reason=reason,
            )
        )
    return rows


def _outcome_text(outcome: Outcome, *, sent: bool, notified: str) -> str:
    if outcome is Outcome.NOTIFY:
        if sent and notified:
            return "Notified"
        return "Not sent: with the Education Navigator"
    return {
        Outcome.TELEPHONE: "Telephone call to the school's DSL",
        Outcome.WITHHOLD: "Not sent",
        Outcome.EXCEPTION: "With the Education Navigator",
    }[outcome]


# --------------------------------------------------------------------------------------
# Sending it back


@dataclass(frozen=True)
class ReturnReport:
    queued: tuple[int, ...] = ()  # intakes whose return sheet was queued now
    not_sent: tuple[int, ...] = ()  # intakes whose sender's key could not be used
    waiting: tuple[int, ...] = ()  # intakes with a notification still on its way


def queue_return_sheets(
    conn: sqlite3.Connection,
    *,
    police: PoliceSection | None,
    sealer: Sealer,
    headers: HeaderMap,
    now: datetime,
    actor: str,
) -> ReturnReport:
    """Queue, due now, the return sheet of every mailed intake whose children are all settled
    and which has not had one, sealed to the pinned police key that signed the mail.

    Each intake is settled once: queued, or — when the mail was not signed by a pinned
    police key that can receive at `now` — recorded as not sent (audit
    `return_sheet.not_sent`, for the Navigator) and not tried again.
    """
    queued: list[int] = []
    not_sent: list[int] = []
    waiting: list[int] = []
    pending = conn.execute(
        "SELECT s.intake_id, unseal(s.workbook) AS workbook, s.sender, s.signer, i.file_name"
        " FROM intake_source s JOIN intake i ON i.id = s.intake_id"
        " WHERE s.returned_at IS NULL ORDER BY s.intake_id"
    ).fetchall()
    for source in pending:
        intake_id = source["intake_id"]
        rows = return_rows(conn, intake_id)
        if rows is None:
            waiting.append(intake_id)
            continue
        refusal = _key_refusal(source["signer"], source["sender"], police, sealer, now)
        with transaction(conn):
            if refusal is not None:
                conn.execute(
                    "UPDATE intake_source SET returned_at = ? WHERE intake_id = ?",
                    (now.isoformat(), intake_id),
                )
                audit.append(
                    conn,
                    "return_sheet.not_sent",
                    actor=actor,
                    at=now,
                    intake=intake_id,
                    fingerprint=source["signer"],
                    reason=refusal,
                )
                not_sent.append(intake_id)
                continue
            sheet = build_return_sheet(source["workbook"], rows, headers=headers)
            row = queue_sealed(
                conn,
                _inner(sheet, source["file_name"], rows),
                kind=MessageKind.RETURN_SHEET,
                key=f"return-sheet/{intake_id}",
                to=("", source["sender"]),
                role="police",
                fingerprint=normalise_fingerprint(source["signer"]),
                sealer=sealer,
                now=now,
                actor=actor,
            )
            # The sealed message now holds the police's rows: the plain copy is not kept.
            conn.execute(
                "UPDATE intake_source SET returned_at = ?, return_message = ?, workbook = x''"
                " WHERE intake_id = ?",
                (now.isoformat(), row, intake_id),
            )
            audit.append(
                conn,
                "return_sheet.queued",
                actor=actor,
                at=now,
                intake=intake_id,
                message=row,
                fingerprint=normalise_fingerprint(source["signer"]),
                child_count=len(rows),
            )
            queued.append(intake_id)
    return ReturnReport(tuple(queued), tuple(not_sent), tuple(waiting))


def _key_refusal(
    signer: str | None,
    sender: str,
    police: PoliceSection | None,
    sealer: Sealer,
    now: datetime,
) -> str | None:
    """Why the return sheet cannot be sealed to the police (references only), or None."""
    if signer is None:
        return "the mail was not signed with a police key (DKIM vouched for it alone)"
    pinned = {normalise_fingerprint(f) for f in (police.fingerprints if police else ())}
    if normalise_fingerprint(signer) not in pinned:
        return "the key that signed the mail is no longer pinned in police.fingerprints"
    check = sealer.keyring.check(signer, email=sender, at=now)
    if not check.ok:
        return f"the police key cannot receive: {check.status.value}"
    return None


def _inner(sheet: bytes, file_name: str, rows: Sequence[ReturnRow]) -> EmailMessage:
    stem = re.sub(r"[^A-Za-z0-9 ._-]", "_", PurePath(file_name).stem).strip(" ._") or "police"
    notified = sum(1 for row in rows if row.sent_at is not None)
    message = EmailMessage()
    message["Subject"] = "Operation Encompass: the outcome for each child"
    message.set_content(
        "\n".join(
            [
                f"Attached is your spreadsheet {stem}.xlsx with each child's outcome added:"
                " the school, who was notified and when.",
                f"{len(rows)} children: {notified} notified to their school; the others are"
                " explained in the Outcome and Reason columns.",
                "",
                "-- Encompass Gateway",
            ]
        )
        + "\n"
    )
    message.add_attachment(
        sheet, maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1], filename=f"{stem} - outcomes.xlsx"
    )
    del message["MIME-Version"]  # an inner entity: the outer message has its own
    return message

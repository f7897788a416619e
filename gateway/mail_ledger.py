"""The processed-message ledger: every inbound message recorded once, before it is moved.

A message is known by two keys. Its place, (mailbox, UIDVALIDITY, UID), is what IMAP gives
and what catching up after a reconnect walks; it changes when the server renumbers the
folder (a new UIDVALIDITY, RFC 3501 §2.3.1.1) or when someone puts the message back with a
new UID. Its content, the SHA-256 of its Message-ID plus the SHA-256 of the message without
its trace fields, survives both: a message met again under a new place is recognised and
never handled twice (DESIGN.md invariant 5).

Each record says what became of the message (its disposition) and whether it has been
moved or flagged yet. The move happens only after the record is committed, so a crash in
between leaves `moved = 0` and the next pass finishes the move without handling it again.

Per mailbox the ledger keeps the folder's UIDVALIDITY and `last_uid`: every UID up to it is
recorded (or was gone when fetched), so a pass asks the server only for UIDs above it.

Audit entries hold references only — mailbox name, UIDVALIDITY, UID, the Message-ID's hash,
disposition and reference — never an address or a subject.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gateway import audit
from gateway.config import ImapSection
from gateway.store import transaction

# Fields a mail system adds on each delivery (RFC 5321 §4.4 trace fields, and the delivery
# agent's own): the same message delivered again differs only in these.
_TRACE_FIELDS = frozenset({b"return-path", b"received", b"delivered-to", b"x-original-to"})
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


@dataclass(frozen=True)
class LedgerKey:
    """Where a message is: the mailbox's name in the configuration ("mash", "navigator"),
    the folder's UIDVALIDITY and the message's UID in it."""

    mailbox: str
    uidvalidity: int
    uid: int


class DispositionKind(StrEnum):
    """What became of an inbound message; values are stored and audited."""

    INTAKE = "intake"  # a police spreadsheet taken in: the intake is recorded
    QUARANTINED = "quarantined"  # refused (authentication, no attachment, unreadable)
    TRACKED = "tracked"  # a receipt, reply, bounce or automatic reply recorded
    IGNORED = "ignored"  # nothing to do (our own mail come back, a delivery notice)
    COMMAND = "command"  # the Navigator's signed commands, acted on and answered


class Action(StrEnum):
    MOVE = "move"
    FLAG = "flag"


@dataclass(frozen=True)
class Disposition:
    """What a handler decided about one message.

    `reference` names what it matched (an intake id, a notification reference). The message
    is then moved — to the quarantine folder when QUARANTINED, else to the processed folder —
    or, when `flag` is given, left where it is with that flag. `reason` is for the Navigator
    (why it was quarantined); it is stored but never audited, so it must name no person.
    """

    kind: DispositionKind
    reference: str | None = None
    flag: str | None = None
    reason: str = ""

    def action(self, account: ImapSection) -> tuple[Action, str]:
        """The move or flag this disposition asks for, with the folder or flag it names."""
        if self.flag is not None:
            return Action.FLAG, self.flag
        if self.kind is DispositionKind.QUARANTINED:
            return Action.MOVE, account.quarantine_folder
        return Action.MOVE, account.processed_folder


@dataclass(frozen=True)
class ContentKey:
    """What identifies a message whatever its place: see `content_key`."""

    message_id_sha256: str
    sha256: str
    size: int


@dataclass(frozen=True)
class MailboxState:
    mailbox: str
    folder: str
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class InboundRecord:
    id: int
    key: LedgerKey
    content: ContentKey
    kind: DispositionKind
    reference: str | None
    reason: str
    duplicate_of: int | None
    action: Action
    target: str  # the folder moved to, or the flag set
    moved: bool  # the move or flag has been done


def content_key(raw: bytes) -> ContentKey:
    """The SHA-256 of the Message-ID (of nothing when there is none) and of the message
    without its trace fields, which each delivery adds and which say nothing about the
    message itself."""
    header, separator, body = _split(raw)
    kept: list[bytes] = []
    message_id = b""
    for field in _fields(header):
        name = _name(field)
        if name in _TRACE_FIELDS:
            continue
        if name == b"message-id" and not message_id:
            message_id = b" ".join(field.split(b":", 1)[1].split())
        kept.append(field)
    content = b"".join(kept) + separator + body
    return ContentKey(
        message_id_sha256=hashlib.sha256(message_id).hexdigest(),
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(raw),
    )


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Header (with its last line end), the empty line, and the body.

    The header ends at the first empty line (RFC 5322 §2.1); both CRLF and bare LF are met
    in stored mail. A message with no empty line is all header.
    """
    ends = [(at, sep) for sep in (b"\r\n\r\n", b"\n\n") if (at := raw.find(sep)) != -1]
    if not ends:
        return raw, b"", b""
    at, sep = min(ends)
    half = len(sep) // 2
    return raw[: at + half], raw[at + half : at + len(sep)], raw[at + len(sep) :]


def _fields(header: bytes) -> list[bytes]:
    """Header fields, each with its folded continuation lines (RFC 5322 §2.2.3)."""
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    found = _FIELD_NAME.match(field)
    return found[1].lower() if found else b""


# --------------------------------------------------------------------------------------
# Per-mailbox state


def mailbox_state(conn: sqlite3.Connection, mailbox: str) -> MailboxState | None:
    row = conn.execute(
        "SELECT mailbox, folder, uidvalidity, last_uid FROM mailbox_state WHERE mailbox = ?",
        (mailbox,),
    ).fetchone()
    return None if row is None else MailboxState(*row)


def begin_pass(
    conn: sqlite3.Connection,
    mailbox: str,
    folder: str,
    uidvalidity: int,
    *,
    now: datetime,
    actor: str,
) -> tuple[MailboxState, bool]:
    """The state to catch up from, and whether the folder must be read again from its start.

    A new UIDVALIDITY (the server renumbered the folder, or it was recreated) or another
    folder makes every UID seen so far meaningless: the pass starts again from UID 0, and
    the content keys stop anything already handled from being handled again.
    """
    with transaction(conn):
        known = mailbox_state(conn, mailbox)
        if known is not None and (known.folder, known.uidvalidity) == (folder, uidvalidity):
            return known, False
        fresh = MailboxState(mailbox, folder, uidvalidity, 0)
        conn.execute(
            "INSERT INTO mailbox_state (mailbox, folder, uidvalidity, last_uid, updated_at)"
            " VALUES (?, ?, ?, 0, ?) ON CONFLICT (mailbox) DO UPDATE SET folder = excluded.folder,"
            " uidvalidity = excluded.uidvalidity, last_uid = 0, updated_at = excluded.updated_at",
            (mailbox, folder, uidvalidity, _stamp(now)),
        )
        if known is None:
            audit.append(
                conn,
                "mail.mailbox_first_seen",
                actor=actor,
                at=now,
                mailbox=mailbox,
                uidvalidity=uidvalidity,
            )
        else:
            audit.append(
                conn,
                "mail.mailbox_renumbered",
                actor=actor,
                at=now,
                mailbox=mailbox,
                uidvalidity=uidvalidity,
                previous_uidvalidity=known.uidvalidity,
                folder_changed=known.folder != folder,
            )
        return fresh, known is not None


def advance(conn: sqlite3.Connection, key: LedgerKey, *, now: datetime) -> None:
    """Every UID up to `key.uid` is now recorded (or gone): the next pass starts above it."""
    with transaction(conn):
        conn.execute(
            "UPDATE mailbox_state SET last_uid = ?, updated_at = ?"
            " WHERE mailbox = ? AND uidvalidity = ? AND last_uid < ?",
            (key.uid, _stamp(now), key.mailbox, key.uidvalidity, key.uid),
        )


# --------------------------------------------------------------------------------------
# Records


_SELECT = (
    "SELECT id, mailbox, uidvalidity, uid, message_id_sha256, sha256, size, disposition,"
    " reference, reason, duplicate_of, action, target, moved FROM inbound_message"
)


def find(conn: sqlite3.Connection, key: LedgerKey) -> InboundRecord | None:
    """The record of the message at `key`, if it was recorded."""
    row = conn.execute(
        f"{_SELECT} WHERE mailbox = ? AND uidvalidity = ? AND uid = ?",
        (key.mailbox, key.uidvalidity, key.uid),
    ).fetchone()
    return None if row is None else _record(row)


def find_same(conn: sqlite3.Connection, mailbox: str, content: ContentKey) -> InboundRecord | None:
    """The first record of the same message (same Message-ID and content) in `mailbox`."""
    row = conn.execute(
        f"{_SELECT} WHERE mailbox = ? AND message_id_sha256 = ? AND sha256 = ? ORDER BY id LIMIT 1",
        (mailbox, content.message_id_sha256, content.sha256),
    ).fetchone()
    return None if row is None else _record(row)


def record(
    conn: sqlite3.Connection,
    key: LedgerKey,
    content: ContentKey,
    disposition: Disposition,
    account: ImapSection,
    *,
    now: datetime,
    actor: str,
) -> InboundRecord:
    """Record what a handler decided about the message at `key`, not yet moved.

    Joins the caller's transaction, so the handler's own writes and this record commit
    together or not at all.
    """
    action, target = disposition.action(account)
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO inbound_message (mailbox, uidvalidity, uid, message_id_sha256, sha256,"
            " size, recorded_at, disposition, reference, reason, action, target)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *(key.mailbox, key.uidvalidity, key.uid),
                *(content.message_id_sha256, content.sha256, content.size),
                _stamp(now),
                disposition.kind.value,
                disposition.reference,
                disposition.reason,
                action.value,
                target,
            ),
        )
        audit.append(
            conn,
            "mail.recorded",
            actor=actor,
            at=now,
            **_refs(key, content),
            disposition=disposition.kind.value,
            reference=disposition.reference,
        )
    return _created(conn, cursor.lastrowid)


def record_duplicate(
    conn: sqlite3.Connection,
    key: LedgerKey,
    content: ContentKey,
    original: InboundRecord,
    *,
    now: datetime,
    actor: str,
) -> InboundRecord:
    """Record the message at `key` as the same message as `original`, handled then: it goes
    where the original went, and nothing is handled again."""
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO inbound_message (mailbox, uidvalidity, uid, message_id_sha256, sha256,"
            " size, recorded_at, disposition, reference, reason, duplicate_of, action, target)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *(key.mailbox, key.uidvalidity, key.uid),
                *(content.message_id_sha256, content.sha256, content.size),
                _stamp(now),
                original.kind.value,
                original.reference,
                original.reason,
                original.id,
                original.action.value,
                original.target,
            ),
        )
        audit.append(
            conn,
            "mail.duplicate",
            actor=actor,
            at=now,
            **_refs(key, content),
            original_uidvalidity=original.key.uidvalidity,
            original_uid=original.key.uid,
        )
    return _created(conn, cursor.lastrowid)


def pending(conn: sqlite3.Connection, mailbox: str, uidvalidity: int) -> list[InboundRecord]:
    """Records of `mailbox` under this UIDVALIDITY not yet moved or flagged, oldest first."""
    rows = conn.execute(
        f"{_SELECT} WHERE mailbox = ? AND uidvalidity = ? AND moved = 0 ORDER BY uid",
        (mailbox, uidvalidity),
    )
    return [_record(row) for row in rows]


def mark_moved(
    conn: sqlite3.Connection, inbound: InboundRecord, *, now: datetime, actor: str
) -> None:
    """The move or flag of `inbound` is done (call after the server confirmed it)."""
    with transaction(conn):
        changed = conn.execute(
            "UPDATE inbound_message SET moved = 1, moved_at = ? WHERE id = ? AND moved = 0",
            (_stamp(now), inbound.id),
        ).rowcount
        if changed:
            audit.append(
                conn,
                "mail.moved" if inbound.action is Action.MOVE else "mail.flagged",
                actor=actor,
                at=now,
                mailbox=inbound.key.mailbox,
                uidvalidity=inbound.key.uidvalidity,
                uid=inbound.key.uid,
                target=inbound.target,
            )


def note_failure(
    conn: sqlite3.Connection, key: LedgerKey, error: str, *, now: datetime, actor: str
) -> int:
    """Count a failed attempt to handle the message at `key`; the attempts so far.

    `error` is the exception's class name: its message may quote the message's content.
    """
    with transaction(conn):
        conn.execute(
            "INSERT INTO inbound_failure (mailbox, uidvalidity, uid, attempts, last_error,"
            " last_at) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (mailbox, uidvalidity, uid)"
            " DO UPDATE SET attempts = attempts + 1, last_error = excluded.last_error,"
            " last_at = excluded.last_at",
            (key.mailbox, key.uidvalidity, key.uid, error, _stamp(now)),
        )
        attempts: int = conn.execute(
            "SELECT attempts FROM inbound_failure WHERE mailbox = ? AND uidvalidity = ?"
            " AND uid = ?",
            (key.mailbox, key.uidvalidity, key.uid),
        ).fetchone()[0]
        audit.append(
            conn,
            "mail.handling_failed",
            actor=actor,
            at=now,
            mailbox=key.mailbox,
            uidvalidity=key.uidvalidity,
            uid=key.uid,
            error=error,
            attempts=attempts,
        )
    return attempts


def _refs(key: LedgerKey, content: ContentKey) -> dict[str, audit.AuditValue]:
    return {
        "mailbox": key.mailbox,
        "uidvalidity": key.uidvalidity,
        "uid": key.uid,
        "message_id_sha256": content.message_id_sha256,
        "sha256": content.sha256,
    }


def _created(conn: sqlite3.Connection, row_id: int | None) -> InboundRecord:
    assert row_id is not None
    return _record(conn.execute(f"{_SELECT} WHERE id = ?", (row_id,)).fetchone())


def _record(row: sqlite3.Row) -> InboundRecord:
    return InboundRecord(
        id=row["id"],
        key=LedgerKey(row["mailbox"], row["uidvalidity"], row["uid"]),
        content=ContentKey(row["message_id_sha256"], row["sha256"], row["size"]),
        kind=DispositionKind(row["disposition"]),
        reference=row["reference"],
        reason=row["reason"],
        duplicate_of=row["duplicate_of"],
        action=Action(row["action"]),
        target=row["target"],
        moved=bool(row["moved"]),
    )


def _stamp(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("the mail ledger needs a timezone-aware instant")
    return now.astimezone(UTC).isoformat()

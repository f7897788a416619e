"""The outbox: sealed messages stored before anything is sent, and the state each one is in.

    sealed ──> sending ──> sent
      ^          │
      │          ├──> failed (a temporary failure; due again at next_attempt) ──> sending …
      │          └──> exception (refused for good, or out of time: a person must look)
      │
    sent ──> exception (bounced: a permanent delivery report came back, `mark_bounced`)

Every transition is its own committed transaction together with its audit entry, so after a
crash the table says exactly how far each message got. A message left in `sending` was
possibly accepted by the server before the crash; it is sent again (with the same
Message-ID) rather than risk losing it — the one window in which a school can receive a
notification twice, and then recognisably the same one.

The notification a message belongs to follows its messages: `sending` while any is under
way, `failed` while one waits for a retry, `sent` once all are sent, `exception` (kind
send_failed) as soon as one becomes an exception.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gateway import audit, notification_store
from gateway.errors import StateError
from gateway.model import ExceptionKind
from gateway.notification_store import NotificationState
from gateway.store import transaction


class MessageState(StrEnum):
    SEALED = "sealed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # temporarily: retried at next_attempt
    EXCEPTION = "exception"
    CANCELLED = "cancelled"  # withheld by the Navigator before it was sent: never sent


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    kind: MessageKind
    reference: str
    contact_role: str
    recipient: str
    fingerprint: str
    message_id: str
    return_path: str
    due: datetime
    state: MessageState
    attempts: int
    next_attempt: datetime | None
    last_error: str
    sealed_at: datetime
    sent_at: datetime | None
    body: bytes


class MessageKind(StrEnum):
    """What a message is. A notification's messages drive their notification's state; the
    gateway's own mail (to the Navigator, the manager, the police) only has its own."""

    NOTIFICATION = "notification"
    ALERT = "alert"  # to the Navigator or the manager: needs a person now
    DIGEST = "digest"  # the Navigator's exceptions digest and chase list
    RECEIPT = "receipt"  # to the police sender: counts only, signed
    FORWARD = "forward"  # a school's reply or unmatched mail, forwarded to the Navigator
    REPLY = "reply"  # to a sender whose mail could not be taken in
    RETURN_SHEET = "return_sheet"  # to the police sender: their spreadsheet with outcomes
    KEY_NOTICE = "key_notice"  # to a school contact: their key is expiring; signed, no child data
    WELCOME = "welcome"  # to a DSL whose school joins the scheme: signed, no child data
    COMMAND_ANSWER = "command_answer"  # to the Navigator: what their signed commands did


# --------------------------------------------------------------------------------------
# Identifiers that let a reply, a read receipt or a bounce find its message


def message_id_for(reference: str, recipient: str, domain: str, *, copy: int = 0) -> str:
    """The Message-ID of the message for `recipient` in notification `reference`.

    Deterministic, so a message sent twice (the crash window) carries the same id both times
    and the school's mail system can tell it is the same. The recipient is hashed: the id
    travels in the clear and must not carry an address. `copy` numbers a deliberate resend
    to the same recipient (RESEND): a new message, so a new id, as RFC 5322 section 3.6.4
    asks of a message sent again on purpose.
    """
    # Addresses are compared case-insensitively in practice; a contacts list re-imported
    # with different capitals must not change the id.
    material = f"{reference}\n{recipient.strip().lower()}" + (f"\n{copy}" if copy else "")
    digest = hashlib.sha256(material.encode()).hexdigest()
    return f"<{_atext(reference)}.{digest[:24]}@{domain}>"


def return_path_for(message_id: str, local_part: str, domain: str) -> str:
    """The envelope sender (RFC 5321 MAIL FROM) of one message: `local+token@domain`.

    A bounce comes back to this address, and the token names the message without guessing
    from the bounce's text (a VERP-style address, as Mailman uses).
    """
    return return_path_for_token(_token(message_id), local_part, domain)


def return_path_for_token(token: str, local_part: str, domain: str) -> str:
    """The return path carrying `token` (what a bounce's token points back to)."""
    return f"{local_part}+{token}@{domain}"


def token_from_return_path(address: str, local_part: str, domain: str) -> str | None:
    """The token of a return path made by `return_path_for`; None if it is not one of ours."""
    match = re.fullmatch(
        rf"<?{re.escape(local_part)}\+([0-9a-f]{{24}})@{re.escape(domain)}>?",
        address.strip(),
        re.IGNORECASE,
    )
    return match.group(1).lower() if match else None


def _token(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:24]


def _atext(text: str) -> str:
    # RFC 5322 §3.2.3: the id's left part must be dot-atom text; the reference normally is.
    return re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", "-", text).strip(".") or "message"


# --------------------------------------------------------------------------------------
# Storing and finding messages


def store_sealed(
    conn: sqlite3.Connection,
    *,
    reference: str,
    contact_role: str,
    recipient: str,
    fingerprint: str,
    message_id: str,
    return_path: str,
    due: datetime,
    body: bytes,
    sealed_at: datetime,
    actor: str,
    kind: MessageKind = MessageKind.NOTIFICATION,
) -> int:
    """Store one sealed message, due at `due`; returns its row id.

    Idempotent on the Message-ID, which `message_id_for` derives from the reference and the
    recipient (and the copy): sealing the same notification again after a crash keeps the
    first message (its bytes are what may already have gone) and returns its id.
    Joins the caller's transaction when there is one (so a notification and its messages
    are stored together); otherwise commits on its own.
    """
    with transaction(conn):
        existing = conn.execute(
            "SELECT id FROM message WHERE message_id = ?", (message_id,)
        ).fetchone()
        if existing is not None:
            return int(existing["id"])
        cursor = conn.execute(
            "INSERT INTO message (kind, reference, contact_role, recipient, fingerprint,"
            " message_id, return_path, due, state, sealed_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kind.value,
                reference,
                contact_role,
                recipient,
                fingerprint,
                message_id,
                return_path,
                _utc(due),
                MessageState.SEALED.value,
                _utc(sealed_at),
                body,
            ),
        )
        row = cursor.lastrowid
        assert row is not None
        audit.append(
            conn,
            "message.sealed",
            actor=actor,
            at=sealed_at,
            kind=kind.value,
            reference=reference,
            message_id=message_id,
            contact_role=contact_role,
            fingerprint=fingerprint,
            due=_utc(due),
        )
    return row


# A message whose notification waits for the Navigator's APPROVE (gateway/approval.py) is
# held: neither sent nor counted as due, however late it is. So is a follow-up (amendment,
# child added, withdrawal) while the first notification it follows still waits: approved
# first, it would reach a school that was never sent what it refers to.
HELD = (
    "EXISTS (SELECT 1 FROM approval a WHERE a.approved_at IS NULL AND (a.reference ="
    " message.reference OR a.reference IN (SELECT f.follows FROM notification f"
    " JOIN notification w ON w.reference = f.follows"
    " WHERE f.reference = message.reference AND w.state IN ('planned', 'sealed'))))"
)


def due_messages(conn: sqlite3.Connection, now: datetime) -> list[OutboxMessage]:
    """Every message to send at `now`, oldest due first.

    That is: sealed and due; failed with its next attempt reached; and any left in
    `sending` by a run that died (the server may or may not have it: send it again).
    Messages held for approval are not due.
    """
    stamp = _utc(now)
    rows = conn.execute(
        "SELECT * FROM message WHERE due <= ? AND (state IN (?, ?) OR (state = ?"
        f" AND next_attempt <= ?)) AND NOT {HELD} ORDER BY due, id",
        (
            stamp,
            MessageState.SEALED.value,
            MessageState.SENDING.value,
            MessageState.FAILED.value,
            stamp,
        ),
    ).fetchall()
    return [_message(row) for row in rows]


def get_message(conn: sqlite3.Connection, row: int) -> OutboxMessage:
    found = conn.execute("SELECT * FROM message WHERE id = ?", (row,)).fetchone()
    if found is None:
        raise StateError(f"outbox message {row} does not exist")
    return _message(found)


def find_by_return_path(conn: sqlite3.Connection, address: str) -> OutboxMessage | None:
    """The message a bounce addressed to `address` is about; None if no message has it."""
    found = conn.execute(
        "SELECT * FROM message WHERE lower(return_path) = lower(?)", (address.strip("<> "),)
    ).fetchone()
    return _message(found) if found is not None else None


# --------------------------------------------------------------------------------------
# Transitions: each one committed with its audit entry before the caller acts on it


def mark_sending(conn: sqlite3.Connection, row: int, *, at: datetime, actor: str) -> OutboxMessage:
    """About to hand the message to the server: counts the attempt.

    `attempts` counts every try to deliver, including those that found no server: the
    caller passes the number of the attempt that ended to `schedule_retry` and
    `mark_exception`, so the backoff grows while the server is down too.
    """
    with transaction(conn, alone=True):
        message = _expect(conn, row, MessageState.SEALED, MessageState.SENDING, MessageState.FAILED)
        conn.execute(
            "UPDATE message SET state = ?, attempts = attempts + 1, next_attempt = NULL"
            " WHERE id = ?",
            (MessageState.SENDING.value, row),
        )
        _audit(conn, "message.sending", message, attempt=message.attempts + 1, at=at, actor=actor)
        _follow(conn, message, at=at, actor=actor)
    return get_message(conn, row)


def mark_sent(
    conn: sqlite3.Connection, row: int, *, sent_at: datetime, actor: str
) -> OutboxMessage:
    """The server accepted the message."""
    with transaction(conn, alone=True):
        message = _expect(conn, row, MessageState.SENDING)
        conn.execute(
            "UPDATE message SET state = ?, sent_at = ?, last_error = '' WHERE id = ?",
            (MessageState.SENT.value, _utc(sent_at), row),
        )
        _audit(conn, "message.sent", message, attempt=message.attempts, at=sent_at, actor=actor)
        _follow(conn, message, at=sent_at, actor=actor)
    return get_message(conn, row)


def schedule_retry(
    conn: sqlite3.Connection,
    row: int,
    *,
    attempt: int,
    error: str,
    smtp_code: int | None,
    next_attempt: datetime,
    at: datetime,
    actor: str,
) -> OutboxMessage:
    """Attempt number `attempt` failed for now: the message is due again at `next_attempt`."""
    with transaction(conn, alone=True):
        message = _expect(conn, row, MessageState.SEALED, MessageState.SENDING, MessageState.FAILED)
        conn.execute(
            "UPDATE message SET state = ?, attempts = ?, next_attempt = ?, last_error = ?"
            " WHERE id = ?",
            (MessageState.FAILED.value, attempt, _utc(next_attempt), error, row),
        )
        _audit(
            conn,
            "message.retry",
            message,
            attempt=attempt,
            at=at,
            actor=actor,
            smtp_code=smtp_code,
            next_attempt=_utc(next_attempt),
        )
        _follow(conn, message, at=at, actor=actor)
    return get_message(conn, row)


def mark_exception(
    conn: sqlite3.Connection,
    row: int,
    *,
    attempt: int,
    kind: ExceptionKind,
    error: str,
    smtp_code: int | None,
    at: datetime,
    actor: str,
) -> OutboxMessage:
    """Attempt number `attempt` ended the message's chances without a person: it and its
    notification become exceptions."""
    with transaction(conn, alone=True):
        message = _expect(conn, row, MessageState.SEALED, MessageState.SENDING, MessageState.FAILED)
        conn.execute(
            "UPDATE message SET state = ?, attempts = ?, next_attempt = NULL, last_error = ?"
            " WHERE id = ?",
            (MessageState.EXCEPTION.value, attempt, error, row),
        )
        _audit(
            conn,
            "message.exception",
            message,
            attempt=attempt,
            at=at,
            actor=actor,
            smtp_code=smtp_code,
            exception_kind=kind.value,
        )
        _follow(conn, message, at=at, actor=actor, kind=kind, reason=error)
    return get_message(conn, row)


def mark_bounced(
    conn: sqlite3.Connection,
    row: int,
    *,
    status: str | None,
    error: str,
    at: datetime,
    actor: str,
) -> OutboxMessage:
    """A message the server accepted came back undeliverable for good (a permanent delivery
    report, RFC 3464): it and its notification become exceptions (send_failed).

    Joins the caller's transaction: the report that says so is recorded (tracking event,
    mail ledger) in the same commit. A message still `sending` is accepted too — the server
    took it and the run died before recording that — so its bounce is not lost.
    """
    with transaction(conn):
        message = _expect(conn, row, MessageState.SENT, MessageState.SENDING)
        conn.execute(
            "UPDATE message SET state = ?, next_attempt = NULL, last_error = ? WHERE id = ?",
            (MessageState.EXCEPTION.value, error, row),
        )
        _audit(
            conn,
            "message.bounced",
            message,
            attempt=message.attempts,
            at=at,
            actor=actor,
            status=status,
            exception_kind=ExceptionKind.SEND_FAILED.value,
        )
        _follow(conn, message, at=at, actor=actor, kind=ExceptionKind.SEND_FAILED, reason=error)
    return get_message(conn, row)


def _expect(conn: sqlite3.Connection, row: int, *states: MessageState) -> OutboxMessage:
    message = get_message(conn, row)
    if message.state not in states:
        raise StateError(
            f"outbox message {message.message_id} of {message.reference} is {message.state}, "
            f"expected {' or '.join(states)}: another process may be dispatching"
        )
    return message


def _audit(
    conn: sqlite3.Connection,
    event: str,
    message: OutboxMessage,
    *,
    attempt: int,
    at: datetime,
    actor: str,
    **extra: audit.AuditValue,
) -> None:
    # References only: the recipient's address and the SMTP reply text (which often quotes
    # it) stay in the message table, out of the log that outlives them.
    audit.append(
        conn,
        event,
        actor=actor,
        at=at,
        reference=message.reference,
        message_id=message.message_id,
        contact_role=message.contact_role,
        attempt=attempt,
        **extra,
    )


# --------------------------------------------------------------------------------------
# The notification follows its messages


def _follow(
    conn: sqlite3.Connection,
    message: OutboxMessage,
    *,
    at: datetime,
    actor: str,
    kind: ExceptionKind | None = None,
    reason: str = "",
) -> None:
    if message.kind is not MessageKind.NOTIFICATION:
        return  # the gateway's own mail has no notification to follow
    reference = message.reference
    current = conn.execute(
        "SELECT state FROM notification WHERE reference = ?", (reference,)
    ).fetchone()
    if current is None:
        raise StateError(f"outbox messages refer to notification {reference}, which does not exist")
    if current["state"] == NotificationState.EXCEPTION:
        return  # an exception stays until a person resolves it
    if kind is not None:
        notification_store.mark(
            conn,
            reference,
            NotificationState.EXCEPTION,
            at=at,
            actor=actor,
            kind=kind,
            reason=reason,
        )
        return
    # The notification only leaves `exception` when a person resolves it; from then on its
    # other messages decide, not the one that failed.
    states = {
        MessageState(row["state"])
        for row in conn.execute("SELECT state FROM message WHERE reference = ?", (reference,))
    } - {MessageState.EXCEPTION}
    if states == {MessageState.SENT}:
        state = NotificationState.SENT
    elif MessageState.FAILED in states:
        state = NotificationState.FAILED
    else:
        state = NotificationState.SENDING
    if state != current["state"]:
        notification_store.mark(conn, reference, state, at=at, actor=actor)


# --------------------------------------------------------------------------------------


def _utc(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError(f"a naive datetime cannot be stored as an instant: {instant}")
    return instant.astimezone(UTC).isoformat()


def _message(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        kind=MessageKind(row["kind"]),
        reference=row["reference"],
        contact_role=row["contact_role"],
        recipient=row["recipient"],
        fingerprint=row["fingerprint"],
        message_id=row["message_id"],
        return_path=row["return_path"],
        due=datetime.fromisoformat(row["due"]),
        state=MessageState(row["state"]),
        attempts=row["attempts"],
        next_attempt=_instant(row["next_attempt"]),
        last_error=row["last_error"],
        sealed_at=datetime.fromisoformat(row["sealed_at"]),
        sent_at=_instant(row["sent_at"]),
        body=bytes(row["body"]),
    )


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None

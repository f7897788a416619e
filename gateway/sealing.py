"""Sealing: every planned notification becomes one encrypted, signed message per recipient
in the outbox — or an exception, when nobody at the school can receive one safely.

Fail closed at every step: recipients are chosen only among contacts whose pinned key is
usable at the sealing instant; the content is rendered once and sealed separately for each
recipient's pinned fingerprint; the messages and the notification's new state commit
together, so a crash leaves the notification planned and the next run seals it again.
A sealing error of the gateway's own (the Navigator's key, GnuPG itself) is raised, not
turned into an exception of the school's: the notification stays planned for the next run.

Outcomes are committed in groups of `COMMIT_EVERY` notifications, not one by one, because
each commit waits for the disk (synchronous=FULL). The price: a crash loses the sealing of
the group under way — still planned, nothing of it stored, so nothing of it sent — and the
next run seals it again (`outbox.store_sealed` would keep a first message, were there one).
A sealing error commits what was sealed before it, as one-by-one commits would have.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr
from functools import partial

from gateway import audit, notification_store, outbox
from gateway.config import DispatchSection, NavigatorSection
from gateway.errors import ConfigError
from gateway.keyring import Keyring
from gateway.model import Contact, Directory, ExceptionKind, Notification
from gateway.notification_store import NotificationState
from gateway.pgpmime import OuterHeaders, seal
from gateway.recipients import KeyVerdict, RecipientChoice, choose_recipients
from gateway.render import NavigatorContact, notification_entity, subject_for
from gateway.store import transaction


@dataclass(frozen=True)
class Sealer:
    """What sealing needs: the keyring, the Navigator (sender and signer) and the settings."""

    keyring: Keyring
    navigator: NavigatorSection
    passphrase: str | None
    dispatch: DispatchSection
    template: str  # "full" or "minimal", from rules/routing.toml

    def __post_init__(self) -> None:
        if self.navigator.fingerprint is None:
            raise ConfigError(
                "navigator.fingerprint is not set: every notification is signed by the "
                "Navigator's key, so nothing can be sealed without it"
            )

    @property
    def signer(self) -> str:
        assert self.navigator.fingerprint is not None  # checked in __post_init__
        return self.navigator.fingerprint


@dataclass(frozen=True)
class Excepted:
    reference: str
    kind: ExceptionKind
    reason: str


@dataclass(frozen=True)
class SealReport:
    sealed: tuple[str, ...]  # references
    exceptions: tuple[Excepted, ...]


COMMIT_EVERY = 50  # notifications per transaction; a crash re-seals at most this many


def seal_planned(
    conn: sqlite3.Connection,
    *,
    directory: Directory,
    sealer: Sealer,
    now: datetime,
    actor: str,
    commit_every: int = COMMIT_EVERY,
) -> SealReport:
    """Seal every planned notification (those of this intake, and any a crash left behind),
    committing the outcomes `commit_every` notifications at a time."""
    sealed: list[str] = []
    exceptions: list[Excepted] = []
    writes: list[Callable[[], None]] = []  # outcomes not yet committed, in order
    try:
        for notification in notification_store.planned(conn):
            choice = choose_recipients(
                directory.contacts(notification.urn),
                lambda contact: key_verdict(sealer.keyring, contact, now),
            )
            if choice.exception is not None:
                writes.append(partial(_record_exception, conn, notification, choice, now, actor))
                exceptions.append(Excepted(notification.reference, choice.exception, choice.reason))
            else:
                messages = _seal_for_recipients(notification, choice, sealer=sealer, now=now)
                writes.append(
                    partial(_record_sealed, conn, notification, choice, messages, now, actor)
                )
                sealed.append(notification.reference)
            if len(writes) >= commit_every:
                _commit(conn, writes)
    except Exception:
        # What was sealed before the failure is kept; the rest stays planned.
        _commit(conn, writes)
        raise
    _commit(conn, writes)
    return SealReport(tuple(sealed), tuple(exceptions))


def _commit(conn: sqlite3.Connection, writes: list[Callable[[], None]]) -> None:
    pending = list(writes)
    writes.clear()  # never tried twice: a failed commit is raised, not repeated
    if pending:
        with transaction(conn):
            for write in pending:
                write()


def key_verdict(keyring: Keyring, contact: Contact, at: datetime) -> KeyVerdict:
    """The contact's pinned key checked at `at`, as `choose_recipients` takes it."""
    check = keyring.check(contact.fingerprint, email=contact.email, at=at)
    return KeyVerdict(check.exception_kind, check.reason)


@dataclass(frozen=True)
class _Sealed:
    contact: Contact
    message_id: str
    return_path: str
    body: bytes


def _seal_for_recipients(
    notification: Notification,
    choice: RecipientChoice,
    *,
    sealer: Sealer,
    now: datetime,
    copy: int = 0,
) -> list[_Sealed]:
    navigator = sealer.navigator
    # Written out once, sealed for each recipient.
    inner = notification_entity(
        notification,
        navigator=NavigatorContact(navigator.name, navigator.email, navigator.phone),
        template=sealer.template,
    )
    settings = sealer.dispatch
    messages = []
    for contact in choice.recipients:
        message_id = outbox.message_id_for(
            notification.reference, contact.email, settings.domain, copy=copy
        )
        body = seal(
            sealer.keyring,
            inner,
            recipient=contact.fingerprint,
            signer=sealer.signer,
            passphrase=sealer.passphrase,
            headers=OuterHeaders(
                from_addr=formataddr((navigator.name, navigator.email)),
                to_addr=contact.email,
                subject=subject_for(notification.reference, kind=notification.kind),
                date=now,
                message_id=message_id,
                disposition_notification_to=navigator.email,
            ),
        )
        return_path = outbox.return_path_for(
            message_id, settings.bounce_local_part, settings.domain
        )
        messages.append(_Sealed(contact, message_id, return_path, body))
    return messages


def _record_sealed(
    conn: sqlite3.Connection,
    notification: Notification,
    choice: RecipientChoice,
    messages: list[_Sealed],
    now: datetime,
    actor: str,
) -> None:
    _store(conn, notification, messages, due=notification.due, now=now, actor=actor)
    _record_passed_over(conn, notification, choice, now=now, actor=actor)
    notification_store.mark(
        conn, notification.reference, NotificationState.SEALED, at=now, actor=actor
    )


def seal_for_more(
    conn: sqlite3.Connection,
    notification: Notification,
    choice: RecipientChoice,
    *,
    sealer: Sealer,
    now: datetime,
    actor: str,
    copy: int = 0,
    due: datetime | None = None,
) -> tuple[int, ...]:
    """Seal an already sealed notification for `choice`'s recipients too, due `due` (by
    default `now`: a resend to a school's stand-ins); returns the new messages' row ids.
    A `copy` above 0 seals a new message for recipients sent it before (RESEND: new
    Message-IDs, see `outbox.message_id_for`).

    The notification's state is left to its messages (gateway/outbox.py): an exception stays
    one until a person resolves it, a sent one is sending again until these have left.
    """
    messages = _seal_for_recipients(notification, choice, sealer=sealer, now=now, copy=copy)
    with transaction(conn):
        rows = _store(conn, notification, messages, due=due or now, now=now, actor=actor)
        _record_passed_over(conn, notification, choice, now=now, actor=actor)
    return rows


def _store(
    conn: sqlite3.Connection,
    notification: Notification,
    messages: list[_Sealed],
    *,
    due: datetime,
    now: datetime,
    actor: str,
) -> tuple[int, ...]:
    return tuple(
        outbox.store_sealed(
            conn,
            reference=notification.reference,
            contact_role=message.contact.role.value,
            recipient=message.contact.email,
            fingerprint=message.contact.fingerprint,
            message_id=message.message_id,
            return_path=message.return_path,
            due=due,
            body=message.body,
            sealed_at=now,
            actor=actor,
        )
        for message in messages
    )


def _record_exception(
    conn: sqlite3.Connection,
    notification: Notification,
    choice: RecipientChoice,
    now: datetime,
    actor: str,
) -> None:
    assert choice.exception is not None
    _record_passed_over(conn, notification, choice, now=now, actor=actor)
    notification_store.mark(
        conn,
        notification.reference,
        NotificationState.EXCEPTION,
        at=now,
        actor=actor,
        kind=choice.exception,
        reason=choice.reason,
    )


def _record_passed_over(
    conn: sqlite3.Connection,
    notification: Notification,
    choice: RecipientChoice,
    *,
    now: datetime,
    actor: str,
) -> None:
    # A DA Lead whose key has expired while the DSL's works still needs a person to chase
    # the key: the audit (and so the digest) says who was passed over and why.
    for unusable in choice.unusable:
        audit.append(
            conn,
            "contact.passed_over",
            actor=actor,
            at=now,
            reference=notification.reference,
            urn=notification.urn,
            contact_role=unusable.contact.role.value,
            exception_kind=unusable.kind.value,
        )


# --------------------------------------------------------------------------------------
# Before sending: the recipients a notification was sealed for must still be the school's


_WAITING = (outbox.MessageState.SEALED.value, outbox.MessageState.FAILED.value)
_LIVE = (
    outbox.MessageState.SEALED.value,
    outbox.MessageState.SENDING.value,
    outbox.MessageState.SENT.value,
    outbox.MessageState.FAILED.value,
)


def reseal_for_current_contacts(
    conn: sqlite3.Connection, *, directory: Directory, sealer: Sealer, now: datetime, actor: str
) -> tuple[str, ...]:
    """Cancel every notification message not yet sent whose recipient is no longer one of
    its school's contacts with that pinned key, and seal the notification for the school's
    current contacts instead, due when it was; the references so changed.

    A notification is sealed when the spreadsheet arrives and sent at 09:00: a directory
    refresh or a re-pinned key in between (a DSL who left, replaced on the LA's list) must
    not send a child's details to someone the LA no longer lists for that school. When no
    current contact can take it, the notification becomes an exception for the Navigator.
    """
    stale: dict[str, list[sqlite3.Row]] = {}
    for row in conn.execute(
        "SELECT m.id, m.reference, m.recipient, m.fingerprint, m.due, m.message_id, n.urn"
        " FROM message m JOIN notification n ON n.reference = m.reference"
        f" WHERE m.kind = ? AND m.state IN ({', '.join('?' for _ in _WAITING)})"
        " ORDER BY m.id",
        (outbox.MessageKind.NOTIFICATION.value, *_WAITING),
    ).fetchall():
        if not any(
            contact.email.casefold() == row["recipient"].casefold()
            and contact.fingerprint == row["fingerprint"]
            for contact in directory.contacts(row["urn"])
        ):
            stale.setdefault(row["reference"], []).append(row)
    for reference, rows in stale.items():
        _reseal(conn, reference, rows, directory=directory, sealer=sealer, now=now, actor=actor)
    return tuple(stale)


def _reseal(
    conn: sqlite3.Connection,
    reference: str,
    rows: list[sqlite3.Row],
    *,
    directory: Directory,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> None:
    stored = notification_store.get(conn, reference)
    assert stored is not None  # the message's notification row exists (joined above)
    notification = stored.notification
    with transaction(conn):
        for row in rows:
            conn.execute(
                "UPDATE message SET state = ?, next_attempt = NULL WHERE id = ?",
                (outbox.MessageState.CANCELLED.value, row["id"]),
            )
            audit.append(
                conn,
                "message.cancelled",
                actor=actor,
                at=now,
                reference=reference,
                message_id=row["message_id"],
                cause="no_longer_a_contact",
            )
        live = {
            recipient.casefold()
            for (recipient,) in conn.execute(
                f"SELECT recipient FROM message WHERE reference = ? AND kind = ?"
                f" AND state IN ({', '.join('?' for _ in _LIVE)})",
                (reference, outbox.MessageKind.NOTIFICATION.value, *_LIVE),
            )
        }
        choice = choose_recipients(
            directory.contacts(notification.urn),
            lambda contact: key_verdict(sealer.keyring, contact, now),
        )
        if choice.exception is not None:
            if not live:
                _record_exception(conn, notification, choice, now, actor)
            return
        fresh = tuple(c for c in choice.recipients if c.email.casefold() not in live)
        if fresh:
            # A contact sent a cancelled message before (taken off the list, then put
            # back) needs a new Message-ID: count what they were already sealed.
            (copies,) = conn.execute(
                "SELECT COUNT(*) FROM message WHERE reference = ? AND recipient IN"
                f" ({', '.join('?' for _ in fresh)})",
                (reference, *(c.email for c in fresh)),
            ).fetchone()
            seal_for_more(
                conn,
                notification,
                RecipientChoice(fresh, choice.unusable),
                sealer=sealer,
                now=now,
                actor=actor,
                copy=copies,
                due=min(datetime.fromisoformat(row["due"]) for row in rows),
            )

"""A notification resent to the school's stand-ins when it did not reach a recipient: their
mail bounced for good, or an out-of-office reply says nobody will read it soon.

The stand-ins are the school's deputy DSLs and DA Leads not yet sent this notification, and
only those whose pinned key is usable now (the same rule as sealing: fail closed, and
`recipients.choose_recipients` decides among them). Each is a new message of the same
notification — same reference, a new Message-ID because the recipient is new — due at once.
Nobody at another school is ever a stand-in: the contacts are the notification's own school's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from gateway import audit
from gateway.errors import StateError
from gateway.model import ContactRole, Directory, Notification
from gateway.notification_store import notification_from_json
from gateway.outbox import OutboxMessage
from gateway.recipients import choose_recipients
from gateway.sealing import Sealer, key_verdict, seal_for_more
from gateway.store import transaction

STAND_INS = frozenset({ContactRole.DEPUTY_DSL, ContactRole.DA_LEAD})


@dataclass(frozen=True)
class Resent:
    """What became of one resend: the roles it went to, or why it went to nobody."""

    notification: Notification
    roles: tuple[str, ...]  # contact roles of the new messages; empty: nobody could be sent it
    rows: tuple[int, ...]  # the new outbox messages
    reason: str = ""  # why nobody could be sent it (may name addresses: for the Navigator only)


def resend_to_stand_ins(
    conn: sqlite3.Connection,
    message: OutboxMessage,
    *,
    cause: str,
    directory: Directory,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> Resent:
    """Seal `message`'s notification for the school's stand-ins not yet included, due `now`.

    `cause` names what prompted it ("bounce_permanent", "out_of_office") for the audit.
    Joins the caller's transaction, so the resend commits with what prompted it.
    """
    notification = _notification(conn, message.reference)
    included = {
        row["recipient"].strip().lower()
        for row in conn.execute(
            "SELECT recipient FROM message WHERE reference = ?", (message.reference,)
        )
    }
    candidates = [
        contact
        for contact in directory.contacts(notification.urn)
        if contact.role in STAND_INS and contact.email.strip().lower() not in included
    ]
    choice = choose_recipients(
        candidates, lambda contact: key_verdict(sealer.keyring, contact, now)
    )
    refs: dict[str, audit.AuditValue] = {
        "reference": message.reference,
        "urn": notification.urn,
        "cause": cause,
    }
    if choice.exception is not None:
        reason = (
            choice.reason
            if candidates
            else "the school lists no deputy DSL or DA Lead who has not been sent it already"
        )
        with transaction(conn):
            audit.append(
                conn,
                "notification.not_resent",
                actor=actor,
                at=now,
                exception_kind=choice.exception.value,
                **refs,
            )
        return Resent(notification, (), (), reason)
    rows = seal_for_more(conn, notification, choice, sealer=sealer, now=now, actor=actor)
    roles = tuple(contact.role.value for contact in choice.recipients)
    with transaction(conn):
        audit.append(
            conn,
            "notification.resent",
            actor=actor,
            at=now,
            instead_of=message.message_id,
            contact_roles=",".join(roles),
            **refs,
        )
    return Resent(notification, roles, rows)


def _notification(conn: sqlite3.Connection, reference: str) -> Notification:
    row = conn.execute(
        "SELECT unseal(content) AS content FROM notification WHERE reference = ?", (reference,)
    ).fetchone()
    if row is None:
        raise StateError(f"outbox messages refer to notification {reference}, which does not exist")
    return notification_from_json(json.loads(row["content"]))

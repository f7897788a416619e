"""Approval mode ([approval] required = true): the notifications planned from a spreadsheet
wait for the Navigator's APPROVE before any of their messages may leave.

A waiting notification is sealed as usual, but dispatch passes over its messages
(`outbox.HELD`) until it is approved. Nothing is silently held: the digest lists what waits and
by when it must be approved, and at `escalate_at` everything due that day and still waiting is
escalated to the Education Safeguarding Manager (to the Navigator when no manager is
configured) in a sealed alert, on record. Approved after that, it goes at once: its 09:00 due
time has passed, so the next dispatch sends it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from gateway import audit
from gateway.clock import LONDON
from gateway.commands import Item, ItemKind
from gateway.config import ManagerSection
from gateway.notification_store import NotificationState
from gateway.outbox import MessageKind
from gateway.own_mail import alert_message, queue_sealed, queue_to_navigator
from gateway.render import uk_datetime
from gateway.sealing import Sealer
from gateway.store import transaction

# Waiting for approval, and still able to go once approved (a withheld one or an exception
# is no longer waiting for APPROVE: the Navigator has it, or the digest lists it).
_WAITING = (
    "a.approved_at IS NULL AND n.state IN ("
    f"'{NotificationState.PLANNED}', '{NotificationState.SEALED}')"
)


@dataclass(frozen=True)
class Waiting:
    """A notification waiting for APPROVE."""

    reference: str
    intake_id: int  # the batch: APPROVE B<intake_id>
    incident_ref: str
    urn: int
    school: str
    due: datetime
    waiting_since: datetime
    escalated_at: datetime | None


def hold_intake_for_approval(
    conn: sqlite3.Connection, intake_id: int, *, at: datetime, actor: str
) -> int:
    """Make every notification just planned from intake `intake_id` wait for APPROVE,
    inside the caller's transaction (the one that plans them: none is planned without being
    held). Returns how many."""
    references = [
        row[0]
        for row in conn.execute(
            "SELECT reference FROM notification WHERE intake_id = ? AND state = ?"
            " AND reference NOT IN (SELECT reference FROM approval)",
            (intake_id, NotificationState.PLANNED),
        )
    ]
    for reference in references:
        conn.execute(
            "INSERT INTO approval (reference, intake_id, waiting_since) VALUES (?, ?, ?)",
            (reference, intake_id, _utc(at)),
        )
        audit.append(
            conn, "approval.waiting", actor=actor, at=at, reference=reference, intake=intake_id
        )
    return len(references)


def waiting(conn: sqlite3.Connection) -> list[Waiting]:
    """Every notification waiting for APPROVE, soonest due first."""
    rows = conn.execute(
        "SELECT a.reference, a.intake_id, a.waiting_since, a.escalated_at, n.incident_ref,"
        " n.urn, n.due, coalesce(e.name, '') AS school FROM approval a"
        " JOIN notification n ON n.reference = a.reference"
        " LEFT JOIN establishment e ON e.urn = n.urn"
        f" WHERE {_WAITING} ORDER BY n.due, a.intake_id, a.reference"
    ).fetchall()
    return [
        Waiting(
            reference=row["reference"],
            intake_id=row["intake_id"],
            incident_ref=row["incident_ref"],
            urn=row["urn"],
            school=row["school"],
            due=datetime.fromisoformat(row["due"]),
            waiting_since=datetime.fromisoformat(row["waiting_since"]),
            escalated_at=datetime.fromisoformat(row["escalated_at"])
            if row["escalated_at"]
            else None,
        )
        for row in rows
    ]


def approve(
    conn: sqlite3.Connection, item: Item, *, now: datetime, actor: str, signer: str | None
) -> tuple[str, ...]:
    """Approve what `item` names (a batch, one notification, or ALL) that is waiting, inside
    the caller's transaction; returns the references approved (none: nothing was waiting)."""
    args: tuple[int | str, ...]
    if item.kind is ItemKind.BATCH:
        where, args = " AND a.intake_id = ?", (item.number,)
    elif item.kind is ItemKind.NOTIFICATION:
        where, args = " AND a.reference = ?", (item.code,)
    elif item.kind is ItemKind.ALL:
        where, args = "", ()
    else:
        raise ValueError(f"{item.code} cannot be approved")
    references = tuple(
        row[0]
        for row in conn.execute(
            "SELECT a.reference FROM approval a JOIN notification n ON n.reference = a.reference"
            f" WHERE {_WAITING}{where} ORDER BY a.reference",
            args,
        )
    )
    with transaction(conn):
        for reference in references:
            conn.execute(
                "UPDATE approval SET approved_at = ?, approved_by = ?, signer = ?"
                " WHERE reference = ?",
                (_utc(now), actor, signer, reference),
            )
            audit.append(
                conn, "approval.approved", actor=actor, at=now, reference=reference, signer=signer
            )
    return references


def escalate(
    conn: sqlite3.Connection,
    *,
    manager: ManagerSection | None,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> tuple[str, ...]:
    """Escalate every notification due by the end of `now`'s London day that is still waiting
    and not escalated before: one sealed alert to the manager (to the Navigator without one),
    recorded with it. Returns the references escalated."""
    day_ends = datetime.combine(now.astimezone(LONDON).date() + timedelta(days=1), time(0), LONDON)
    due = [item for item in waiting(conn) if item.escalated_at is None and item.due < day_ends]
    if not due:
        return ()
    lines = [
        f"At {uk_datetime(now)} these notifications were still waiting for the Education",
        "Navigator's approval. They are held, not sent, until approved; once approved they",
        "are sent at once.",
        "",
    ]
    for item in due:
        lines.append(
            f"- {item.reference} to {item.school or 'a school'} (URN {item.urn}), police incident"
            f" {item.incident_ref}, due {uk_datetime(item.due)}; spreadsheet B{item.intake_id}"
        )
    lines += [
        "",
        "To let them go, reply to the digest signed with the Navigator's key: APPROVE B<n>,",
        "APPROVE <reference> or APPROVE ALL (or run: encompass-gateway resolve APPROVE ALL).",
    ]
    inner = alert_message("Notifications not approved: held, not sent", lines)
    key = f"approval/{now.isoformat()}"
    with transaction(conn):
        if manager is not None:
            queue_sealed(
                conn,
                inner,
                kind=MessageKind.ALERT,
                key=key,
                to=(manager.name, manager.email),
                role="manager",
                fingerprint=manager.fingerprint,
                sealer=sealer,
                now=now,
                actor=actor,
            )
        else:
            queue_to_navigator(
                conn, inner, kind=MessageKind.ALERT, key=key, sealer=sealer, now=now, actor=actor
            )
        for item in due:
            conn.execute(
                "UPDATE approval SET escalated_at = ? WHERE reference = ?",
                (_utc(now), item.reference),
            )
        audit.append(
            conn,
            "approval.escalated",
            actor=actor,
            at=now,
            to="manager" if manager is not None else "navigator",
            references=",".join(item.reference for item in due),
        )
    return tuple(item.reference for item in due)


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()

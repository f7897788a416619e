"""Resent and corrected spreadsheets in the state database: each notification a later file
would make is planned against what the school was already told (first, child added,
amendment, or nothing); what has gone from a revised file is kept for the Navigator; and a
withdrawal notice is planned when the Navigator asks for one. The rules are in
gateway/amendments.py; this module reads and writes the state, every change with its audit
entry (references only) in the caller's transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from gateway import audit, notification_store
from gateway.amendments import (
    SeenChild,
    Sheet,
    child_identity,
    follow_up,
    gone_from,
    identity_of,
    revises,
    what_was_told,
)
from gateway.clock import LONDON
from gateway.errors import GatewayError
from gateway.model import ExceptionKind, Notification, NotificationKind, Outcome
from gateway.notification_store import NotificationState
from gateway.store import transaction


class WithdrawalRefused(GatewayError):
    """A withdrawal notice was asked for a reference that is no notification, or about
    which there is nothing left to withdraw (already withdrawn, or it never left), or whose
    details were purged under the retention policy."""


class Planned(StrEnum):
    """What planning one (incident, school) of a file did."""

    FIRST = "first"  # the school's first notification about the incident
    ADDED = "added"  # a follow-up naming children not named before
    AMENDMENT = "amendment"  # a follow-up correcting details the school was given
    UNCHANGED = "unchanged"  # the school already has all of it: nothing planned
    # A follow-up about an incident whose every notification to the school the Navigator
    # withheld: recorded withheld too, never sent (it would tell what they withheld).
    WITHHELD = "withheld"
    # A follow-up about an incident whose earlier notifications to the school were purged
    # under the retention policy: an exception for the Navigator, not sent on its own.
    PURGED = "purged"


def plan_notification(
    conn: sqlite3.Connection,
    candidate: Notification,
    *,
    intake_id: int,
    template: str,
    at: datetime,
    actor: str,
) -> Planned:
    """Plan `candidate` (a file's notification about one incident to one school, as
    gateway/notifications.py makes it) against what the school was already told. A follow-up
    about an incident the Navigator withheld from the school is recorded withheld."""
    with transaction(conn):
        stored = notification_store.chain(conn, candidate.incident.ref, candidate.urn)
        if not stored:
            notification_store.save_planned(
                conn, candidate, intake_id=intake_id, at=at, actor=actor
            )
            return Planned.FIRST
        told = what_was_told([s.notification for s in stored])
        if _purged(conn, candidate.incident.ref, candidate.urn):
            # Compared with the blanks the purge left, everything would read as changed: the
            # file's notification waits for the Navigator as a follow-up naming its children.
            held = replace(candidate, reference=told.next_reference, follows=told.first)
            notification_store.save_planned(conn, held, intake_id=intake_id, at=at, actor=actor)
            notification_store.mark(
                conn,
                held.reference,
                NotificationState.EXCEPTION,
                at=at,
                actor=actor,
                kind=ExceptionKind.TOLD_PURGED,
                reason=f"what {told.first} told the school is purged under the retention policy",
            )
            return Planned.PURGED
        follow = follow_up(candidate, told, template=template)
        if follow is None:
            audit.append(
                conn,
                "notification.unchanged",
                actor=actor,
                at=at,
                reference=told.first,
                intake=intake_id,
                incident_ref=candidate.incident.ref,
                urn=candidate.urn,
            )
            return Planned.UNCHANGED
        notification_store.save_planned(conn, follow, intake_id=intake_id, at=at, actor=actor)
        if all(s.state == NotificationState.WITHHELD for s in stored):
            notification_store.mark(
                conn,
                follow.reference,
                NotificationState.WITHHELD,
                at=at,
                actor=actor,
                reason=f"follows {told.first}, which the Navigator withheld",
            )
            return Planned.WITHHELD
        return Planned.AMENDMENT if follow.kind is NotificationKind.AMENDMENT else Planned.ADDED


def _purged(conn: sqlite3.Connection, incident_ref: str, urn: int) -> bool:
    # gateway/retention.py marks a notification's redacted content "purged".
    row = conn.execute(
        "SELECT 1 FROM notification WHERE incident_ref = ? AND urn = ?"
        " AND json_extract(unseal(content), '$.purged') = 1",
        (incident_ref, urn),
    ).fetchone()
    return row is not None


def first_naming(
    conn: sqlite3.Connection, incident_ref: str, urn: int, name: str, dob: date | None
) -> str | None:
    """The reference of the first notification about this incident to this school that named
    this child (a child added by a corrected resend is named by a follow-up, not the first);
    the first notification when none names the child as given, None when there is none."""
    identity = child_identity(name, dob)
    stored = notification_store.chain(conn, incident_ref, urn)
    for notification in (s.notification for s in stored):
        if notification.kind is not NotificationKind.WITHDRAWAL and any(
            identity_of(child) == identity for child in notification.children
        ):
            return notification.reference
    return stored[0].notification.reference if stored else None


# --------------------------------------------------------------------------------------
# What has gone from a revised file


def record_gone(conn: sqlite3.Connection, intake_id: int, *, at: datetime, actor: str) -> int:
    """If intake `intake_id` revises an earlier one (gateway/amendments.py `revises`), record
    each child of the earlier one it no longer has, for the Navigator; returns how many."""
    with transaction(conn):
        later = _sheet(conn, intake_id)
        revised = _revised_intake(conn, intake_id, later)
        if revised is None:
            return 0
        gone = gone_from(_seen(conn, revised), _seen(conn, intake_id))
        for child in gone:
            decision = conn.execute(
                "SELECT outcome, urn FROM decision WHERE id = ?", (child.decision_id,)
            ).fetchone()
            reference = None
            if decision["outcome"] == "notify" and decision["urn"] is not None:
                first = conn.execute(
                    "SELECT reference FROM notification WHERE incident_ref = ? AND urn = ?"
                    " AND follows IS NULL",
                    (child.incident_ref, decision["urn"]),
                ).fetchone()
                reference = first["reference"] if first else None
            cursor = conn.execute(
                "INSERT OR IGNORE INTO disappearance (intake_id, revised_intake_id,"
                " decision_id, incident_ref, incident_gone, moved, urn, reference, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    intake_id,
                    revised,
                    child.decision_id,
                    child.incident_ref,
                    int(child.incident_gone),
                    int(child.moved),
                    decision["urn"],
                    reference,
                    at.astimezone(UTC).isoformat(),
                ),
            )
            audit.append(
                conn,
                "child.gone",
                actor=actor,
                at=at,
                intake=intake_id,
                revised_intake=revised,
                decision=child.decision_id,
                item=cursor.lastrowid,
                incident_ref=child.incident_ref,
                incident_gone=child.incident_gone,
                moved=child.moved,
                urn=decision["urn"],
                reference=reference,
            )
    return len(gone)


def _sheet(conn: sqlite3.Connection, intake_id: int) -> Sheet:
    intake = conn.execute(
        "SELECT file_name, received_at FROM intake WHERE id = ?", (intake_id,)
    ).fetchone()
    refs = conn.execute(
        "SELECT DISTINCT incident_ref FROM decision WHERE intake_id = ? AND incident_ref != ''",
        (intake_id,),
    ).fetchall()
    return Sheet(
        intake["file_name"],
        datetime.fromisoformat(intake["received_at"]),
        frozenset(row[0] for row in refs),
    )


def _revised_intake(conn: sqlite3.Connection, intake_id: int, later: Sheet) -> int | None:
    # Only intakes of the same London day can be revised by this one; the latest that is.
    day = later.received_at.astimezone(LONDON).replace(hour=0, minute=0, second=0, microsecond=0)
    for row in conn.execute(
        "SELECT id FROM intake WHERE id != ? AND received_at >= ? AND received_at <= ?"
        " ORDER BY received_at DESC, id DESC",
        (intake_id, day.astimezone(UTC).isoformat(), later.received_at.isoformat()),
    ).fetchall():
        if revises(later, _sheet(conn, row["id"])):
            return int(row["id"])
    return None


def _seen(conn: sqlite3.Connection, intake_id: int) -> list[SeenChild]:
    return [
        SeenChild(
            row["id"],
            row["incident_ref"],
            _identity(json.loads(row["record"])),
            row["urn"] if row["outcome"] == Outcome.NOTIFY.value else None,
        )
        for row in conn.execute(
            "SELECT id, incident_ref, outcome, urn, unseal(record) AS record FROM decision"
            " WHERE intake_id = ? ORDER BY id",
            (intake_id,),
        )
    ]


def _identity(record: dict[str, Any]) -> str:
    dob = record.get("dob")
    return child_identity(record.get("child") or "", date.fromisoformat(dob) if dob else None)


@dataclass(frozen=True)
class GoneChild:
    """A child (or a whole incident) of a spreadsheet missing from its corrected resend.

    `reference` is the first notification about the incident to the child's school when the
    child was notified (the item code to withdraw it); `withdrawal` is the reference of the
    withdrawal notice planned about it, if any. `decision_id` is the child's decision in the
    earlier file (item code C<decision_id>). `answered_at` is when the Navigator last gave a
    command about its item since (a NOTE saying why nothing is to be withdrawn, say).
    """

    id: int
    recorded_at: datetime
    file_name: str  # the corrected resend
    revised_file_name: str
    incident_ref: str
    incident_gone: bool
    moved: bool  # still in the file, to be notified to another school
    decision_id: int
    child: str
    dob: date | None
    outcome: str
    urn: int | None
    school: str
    reference: str | None
    withdrawal: str | None
    answered_at: datetime | None = None

    @property
    def item(self) -> str:
        """The code the Navigator answers it by: the notification, or the child's decision."""
        return self.reference or f"C{self.decision_id}"

    named_again: bool = False  # a later spreadsheet names the child again, at that school

    @property
    def settled(self) -> bool:
        """Withdrawn, answered by the Navigator, or named again by the police: no longer
        the Navigator's to decide."""
        return self.withdrawal is not None or self.answered_at is not None or self.named_again


def gone_children(conn: sqlite3.Connection) -> list[GoneChild]:
    """Every child recorded as gone from a revised spreadsheet, oldest first."""
    found = []
    for row in conn.execute(
        "SELECT g.id, g.intake_id, g.recorded_at, g.incident_ref, g.incident_gone, g.moved,"
        " g.decision_id, g.urn,"
        " g.reference, g.withdrawal, d.outcome, unseal(d.record) AS record,"
        " later.file_name AS file_name, earlier.file_name AS revised_file_name"
        " FROM disappearance g"
        " JOIN decision d ON d.id = g.decision_id"
        " JOIN intake later ON later.id = g.intake_id"
        " JOIN intake earlier ON earlier.id = g.revised_intake_id"
        " ORDER BY g.recorded_at, g.id"
    ):
        record: dict[str, Any] = json.loads(row["record"])
        recorded_at = datetime.fromisoformat(row["recorded_at"])
        # The resolution's time is written with its own offset: compared as instants.
        answers = [
            answer
            for (at,) in conn.execute(
                "SELECT at FROM resolution WHERE reference = ? OR decision_id = ?",
                (row["reference"], row["decision_id"]),
            )
            if (answer := datetime.fromisoformat(at)) >= recorded_at
        ]
        found.append(
            GoneChild(
                id=row["id"],
                recorded_at=recorded_at,
                file_name=row["file_name"],
                revised_file_name=row["revised_file_name"],
                incident_ref=row["incident_ref"],
                incident_gone=bool(row["incident_gone"]),
                moved=bool(row["moved"]),
                decision_id=row["decision_id"],
                child=record.get("child") or "",
                dob=date.fromisoformat(record["dob"]) if record.get("dob") else None,
                outcome=row["outcome"],
                urn=row["urn"],
                school=record.get("school") or "",
                reference=row["reference"],
                withdrawal=row["withdrawal"],
                answered_at=max(answers, default=None),
                named_again=_named_again(conn, row, record),
            )
        )
    return found


def _named_again(conn: sqlite3.Connection, gone: sqlite3.Row, record: dict[str, Any]) -> bool:
    # A later spreadsheet (a further correction, the next day's) that names the child in the
    # incident again — at the school it was notified to, for one the correction had moved —
    # takes back the correction: nothing is left to withdraw.
    identity = _identity(record)
    for later in conn.execute(
        "SELECT outcome, urn, unseal(record) AS record FROM decision"
        " WHERE incident_ref = ? AND intake_id > ?",
        (gone["incident_ref"], gone["intake_id"]),
    ):
        if _identity(json.loads(later["record"])) != identity:
            continue
        if not gone["moved"] or (
            later["outcome"] == Outcome.NOTIFY.value and later["urn"] == gone["urn"]
        ):
            return True
    return False


# --------------------------------------------------------------------------------------
# Withdrawal notices


_ON_ITS_WAY = (
    NotificationState.PLANNED,
    NotificationState.SEALED,
    NotificationState.SENDING,
    NotificationState.FAILED,
)


def plan_withdrawal(
    conn: sqlite3.Connection, reference: str, *, now: datetime, actor: str
) -> Notification:
    """Plan a withdrawal notice to the school of notification `reference` (the first about
    an incident, or one of its follow-ups), to be sealed and sent like any notification, due
    `now` — or, when a notification it withdraws is still waiting to be sent, with it, never
    before it; returns it.

    It withdraws the children of that incident at that school whom a corrected spreadsheet
    no longer has (the open items of `gone_children`); when there are none — the Navigator
    withdrawing a notification for a reason of their own, such as the wrong school — every
    child the notifications still stand for. It names only children the school was already
    told about, and carries no incident details. Raises WithdrawalRefused when `reference` is
    no notification, none of it has left or is on its way (withdraw nothing never sent),
    everything it said is already withdrawn, or its details were purged.
    """
    with transaction(conn):
        row = conn.execute(
            "SELECT incident_ref, urn, follows, kind FROM notification WHERE reference = ?",
            (reference,),
        ).fetchone()
        if row is None:
            raise WithdrawalRefused(f"{reference}: no notification has this reference")
        if row["kind"] == NotificationKind.WITHDRAWAL.value:
            raise WithdrawalRefused(
                f"{reference} is itself a withdrawal notice: give the notification it withdrew"
            )
        first = row["follows"] or reference
        if _purged(conn, row["incident_ref"], row["urn"]):
            # Only the skeleton is left (gateway/retention.py): the notice would name nobody.
            raise WithdrawalRefused(
                f"{reference}: its details were purged under the retention policy, so no"
                " withdrawal notice can say what it withdraws; write to the school by hand"
            )
        stored = notification_store.chain(conn, row["incident_ref"], row["urn"])
        never_sent = (NotificationState.EXCEPTION, NotificationState.WITHHELD)
        if all(s.state in never_sent for s in stored):
            raise WithdrawalRefused(
                f"{reference}: no notification about this incident was sealed for the school"
                " (each is an exception or withheld): there is nothing to withdraw"
            )
        told = what_was_told([s.notification for s in stored])
        if not told.children:
            raise WithdrawalRefused(
                f"{reference}: everything it said has already been withdrawn"
                f" ({stored[-1].notification.reference})"
            )
        open_items = conn.execute(
            "SELECT g.id, g.intake_id, unseal(d.record) AS record FROM disappearance g"
            " JOIN decision d ON d.id = g.decision_id"
            " WHERE g.reference = ? AND g.withdrawal IS NULL ORDER BY g.id",
            (first,),
        ).fetchall()
        gone = {_identity(json.loads(item["record"])) for item in open_items}
        withdrawn = [child for key, child in told.children.items() if key in gone]
        if not withdrawn:
            withdrawn = list(told.children.values())
        intake_id = (
            open_items[-1]["intake_id"]
            if open_items
            else conn.execute(
                "SELECT intake_id FROM notification WHERE reference = ?", (first,)
            ).fetchone()[0]
        )
        # Never before what it withdraws: a notification still waiting for 09:00 goes first
        # (dispatch sends in order of due time, then of sealing).
        waiting = [s.notification.due for s in stored if s.state in _ON_ITS_WAY]
        notice = Notification(
            reference=told.next_reference,
            incident=told.incident,
            urn=row["urn"],
            school_name=stored[0].notification.school_name,
            children=tuple(withdrawn),
            due=max([now, *waiting]),
            kind=NotificationKind.WITHDRAWAL,
            follows=first,
        )
        notification_store.save_planned(conn, notice, intake_id=intake_id, at=now, actor=actor)
        items = [
            item["id"]
            for item in open_items
            if _identity(json.loads(item["record"])) in {identity_of(c) for c in withdrawn}
        ]
        audit.append(
            conn,
            "withdrawal.planned",
            actor=actor,
            at=now,
            reference=notice.reference,
            follows=first,
            urn=row["urn"],
            child_count=len(withdrawn),
        )
        for item in items:
            conn.execute(
                "UPDATE disappearance SET withdrawal = ? WHERE id = ?", (notice.reference, item)
            )
            audit.append(
                conn,
                "child.gone.withdrawn",
                actor=actor,
                at=now,
                item=item,
                reference=notice.reference,
            )
    return notice

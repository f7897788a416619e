"""Notifications in the state database: planned once per (incident, school) — then a
follow-up for each later change (gateway/amendments.py) — and sealed or turned into an
exception.

A notification is stored, with the content it will carry, before anything is sealed or
sent, so a crash between planning and sealing resumes from the database and never loses it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from gateway import audit
from gateway.model import (
    ChildRecord,
    CrimeStatus,
    ExceptionKind,
    Incident,
    Notification,
    NotificationKind,
    Risk,
    SourceRow,
)
from gateway.store import transaction


class NotificationState:
    """planned → sealed → sending → sent (failed: retrying), or exception for a person;
    withheld by a person at any point before a message left."""

    PLANNED = "planned"
    SEALED = "sealed"
    SENDING = "sending"
    FAILED = "failed"  # a message is waiting to be retried
    SENT = "sent"  # every message has left
    EXCEPTION = "exception"
    WITHHELD = "withheld"  # the Navigator withheld it before it was sent (WITHHOLD)


@dataclass(frozen=True)
class StoredNotification:
    notification: Notification
    state: str


def save_planned(
    conn: sqlite3.Connection,
    notification: Notification,
    *,
    intake_id: int,
    at: datetime,
    actor: str,
) -> bool:
    """Record a planned notification (a first one or a follow-up); False when one with its
    reference, or a first one about this incident for this school, is already recorded:
    nothing is planned or sent twice."""
    with transaction(conn):
        cursor = conn.execute(
            "INSERT OR IGNORE INTO notification (reference, intake_id, incident_ref, urn, due,"
            " state, reason, content, created_at, kind, follows)"
            " VALUES (?, ?, ?, ?, ?, ?, '', seal(?), ?, ?, ?)",
            (
                notification.reference,
                intake_id,
                notification.incident.ref,
                notification.urn,
                _utc(notification.due),
                NotificationState.PLANNED,
                json.dumps(notification_json(notification), sort_keys=True),
                _utc(at),
                notification.kind.value,
                notification.follows,
            ),
        )
        new = cursor.rowcount == 1
        audit.append(
            conn,
            "notification.planned" if new else "notification.already_planned",
            actor=actor,
            at=at,
            reference=notification.reference,
            intake=intake_id,
            incident_ref=notification.incident.ref,
            urn=notification.urn,
            due=_utc(notification.due),
            child_count=len(notification.children),
            kind=notification.kind.value,
            follows=notification.follows,
        )
    return new


def chain(conn: sqlite3.Connection, incident_ref: str, urn: int) -> list[StoredNotification]:
    """Every notification about this incident to this school, the first one first, then its
    follow-ups in the order they were planned."""
    rows = conn.execute(
        "SELECT unseal(content) AS content, state FROM notification"
        " WHERE incident_ref = ? AND urn = ?"
        " ORDER BY follows IS NOT NULL, rowid",
        (incident_ref, urn),
    ).fetchall()
    return [
        StoredNotification(notification_from_json(json.loads(row["content"])), row["state"])
        for row in rows
    ]


def get(conn: sqlite3.Connection, reference: str) -> StoredNotification | None:
    """The notification with this reference, or None."""
    row = conn.execute(
        "SELECT unseal(content) AS content, state FROM notification WHERE reference = ?",
        (reference,),
    ).fetchone()
    if row is None:
        return None
    return StoredNotification(notification_from_json(json.loads(row["content"])), row["state"])


def planned(conn: sqlite3.Connection) -> list[Notification]:
    """Every notification planned but not yet sealed or excepted, oldest due first."""
    rows = conn.execute(
        "SELECT unseal(content) AS content FROM notification WHERE state = ?"
        " ORDER BY due, reference",
        (NotificationState.PLANNED,),
    ).fetchall()
    return [notification_from_json(json.loads(row["content"])) for row in rows]


def mark(
    conn: sqlite3.Connection,
    reference: str,
    state: str,
    *,
    at: datetime,
    actor: str,
    kind: ExceptionKind | None = None,
    reason: str = "",
) -> None:
    """Move a notification to `state`, inside the caller's transaction, with its audit entry."""
    conn.execute(
        "UPDATE notification SET state = ?, exception_kind = ?, reason = ? WHERE reference = ?",
        (state, kind.value if kind else None, reason, reference),
    )
    audit.append(
        conn,
        f"notification.{state}",
        actor=actor,
        at=at,
        reference=reference,
        exception_kind=kind.value if kind else None,
    )


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


# --------------------------------------------------------------------------------------
# The notification's content as JSON (personal data: kept only as long as retention allows)


def notification_json(notification: Notification) -> dict[str, Any]:
    return {
        "reference": notification.reference,
        "kind": notification.kind.value,
        "follows": notification.follows,
        "changes": list(notification.changes),
        "urn": notification.urn,
        "school_name": notification.school_name,
        "due": notification.due.isoformat(),
        "incident": incident_json(notification.incident),
        "children": [child_json(child) for child in notification.children],
    }


def notification_from_json(data: dict[str, Any]) -> Notification:
    return Notification(
        reference=data["reference"],
        incident=incident_from_json(data["incident"]),
        urn=data["urn"],
        school_name=data["school_name"],
        children=tuple(child_from_json(child) for child in data["children"]),
        due=datetime.fromisoformat(data["due"]),
        # Stored before follow-ups existed: a first notification.
        kind=NotificationKind(data.get("kind", NotificationKind.NOTIFICATION.value)),
        follows=data.get("follows"),
        changes=tuple(data.get("changes", ())),
    )


def incident_json(incident: Incident) -> dict[str, Any]:
    # The incident's children are not repeated here: only this school's travel with it.
    return {
        "ref": incident.ref,
        "occurred_at": incident.occurred_at.isoformat() if incident.occurred_at else None,
        "time_known": incident.time_known,
        "risk": incident.risk.value if incident.risk else None,
        "crime_status": incident.crime_status.value if incident.crime_status else None,
        "circumstances": incident.circumstances,
        "location": incident.location,
        "postcode": incident.postcode,
        "other_info": incident.other_info,
    }


def incident_from_json(data: dict[str, Any]) -> Incident:
    return Incident(
        ref=data["ref"],
        occurred_at=datetime.fromisoformat(data["occurred_at"]) if data["occurred_at"] else None,
        time_known=data["time_known"],
        risk=Risk(data["risk"]) if data["risk"] else None,
        crime_status=CrimeStatus(data["crime_status"]) if data["crime_status"] else None,
        children=(),
        circumstances=data["circumstances"],
        location=data["location"],
        postcode=data["postcode"],
        other_info=data["other_info"],
    )


def child_json(child: ChildRecord) -> dict[str, Any]:
    return {
        "forename": child.forename,
        "surname": child.surname,
        "dob": child.dob.isoformat() if child.dob else None,
        "involvement": child.involvement,
        "relationship": child.relationship,
        "school_text": child.school_text,
        "postcode": child.postcode,
        "voice_of_child": child.voice_of_child,
        "source": [child.source.file, child.source.sheet, child.source.row, child.source.group],
    }


def child_from_json(data: dict[str, Any]) -> ChildRecord:
    file, sheet, row, group = data["source"]
    return ChildRecord(
        forename=data["forename"],
        surname=data["surname"],
        dob=date.fromisoformat(data["dob"]) if data["dob"] else None,
        source=SourceRow(file, sheet, row, group),
        involvement=data["involvement"],
        relationship=data["relationship"],
        school_text=data["school_text"],
        postcode=data["postcode"],
        voice_of_child=data["voice_of_child"],
    )

"""Recording an intake and its decisions in the state database, exactly once per file."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import audit
from gateway.plan import Plan, child_key, decision_json
from gateway.store import transaction


@dataclass(frozen=True)
class Recorded:
    intake_id: int
    new: bool  # False: the same bytes were recorded before, nothing new was written
    received_at: datetime


def record_plan(conn: sqlite3.Connection, plan: Plan, *, incidents: int, actor: str) -> Recorded:
    """Record the intake and every decision in one transaction.

    The file's SHA-256 is the idempotency key: processing the same bytes again (a resend, a
    retry after a crash) records nothing new and returns the first recording.
    """
    with transaction(conn):
        existing = conn.execute(
            "SELECT id, received_at FROM intake WHERE sha256 = ?", (plan.sha256,)
        ).fetchone()
        if existing is not None:
            return Recorded(existing["id"], False, datetime.fromisoformat(existing["received_at"]))
        received_at = plan.arrival.astimezone(UTC)
        cursor = conn.execute(
            "INSERT INTO intake (sha256, file_name, received_at, incidents, children, problems)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                plan.sha256,
                plan.file,
                received_at.isoformat(),
                incidents,
                len(plan.decisions),
                sum(1 for d in plan.decisions if d.child.problems),
            ),
        )
        intake_id = cursor.lastrowid
        assert intake_id is not None
        conn.executemany(
            "INSERT INTO decision (intake_id, incident_ref, child_key, outcome, exception_kind,"
            " urn, due, manager_alert, reason, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, seal(?), seal(?))",
            [
                (
                    intake_id,
                    d.incident_ref,
                    child_key(d),
                    d.outcome.value,
                    d.exception_kind.value if d.exception_kind else None,
                    d.urn,
                    d.due.astimezone(UTC).isoformat() if d.due else None,
                    int(d.manager_alert),
                    d.reason,
                    json.dumps(decision_json(d), sort_keys=True),
                )
                for d in plan.decisions
            ],
        )
        audit.append(
            conn,
            "intake.recorded",
            actor=actor,
            at=plan.arrival,
            intake=intake_id,
            sha256=plan.sha256,
            child_count=len(plan.decisions),
        )
        for decision in plan.decisions:
            audit.append(
                conn,
                f"decision.{decision.outcome.value}",
                actor=actor,
                at=plan.arrival,
                intake=intake_id,
                incident_ref=decision.incident_ref,
                row=child_key(decision),
                urn=decision.urn,
                exception_kind=decision.exception_kind.value if decision.exception_kind else None,
                due=decision.due.astimezone(UTC).isoformat() if decision.due else None,
                manager_alert=decision.manager_alert,
            )
    return Recorded(intake_id, True, received_at)

"""What the police said about an exception child, kept so the Navigator can ROUTE it later.

A notification carries the incident (time, circumstances, risk…) and the child's own row; the
decision record keeps only what the digest shows. When the Navigator resolves an exception by
naming the school, the notification is written from this, exactly as intake would have
written it. Only exceptions with a police reference are kept (a row that could not be tied to
an incident cannot become a notification); it is personal data, sealed at rest with the
storage key (gateway/at_rest.py) like a notification's content.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from gateway.model import ChildRecord, Incident, Outcome
from gateway.notification_store import (
    child_from_json,
    child_json,
    incident_from_json,
    incident_json,
)
from gateway.plan import Plan, child_key


@dataclass(frozen=True)
class ExceptionDetail:
    incident: Incident  # without its children list (only this child may be named)
    child: ChildRecord


def record_exception_details(
    conn: sqlite3.Connection, intake_id: int, incidents: tuple[Incident, ...], plan: Plan
) -> int:
    """Keep the incident and row of each exception of `plan` (recorded as intake `intake_id`),
    inside the caller's transaction; returns how many were kept."""
    ids = {
        row["child_key"]: row["id"]
        for row in conn.execute(
            "SELECT id, child_key FROM decision WHERE intake_id = ?", (intake_id,)
        )
    }
    kept = 0
    for decision in plan.decisions:
        if decision.outcome is not Outcome.EXCEPTION or not decision.incident_ref:
            continue
        incident = next(
            (
                incident
                for incident in incidents
                if incident.ref == decision.incident_ref and decision.child in incident.children
            ),
            None,
        )
        if incident is None:
            continue
        content = {"incident": incident_json(incident), "child": child_json(decision.child)}
        conn.execute(
            "INSERT INTO exception_detail (decision_id, content) VALUES (?, seal(?))",
            (ids[child_key(decision)], json.dumps(content, sort_keys=True)),
        )
        kept += 1
    return kept


def exception_detail(conn: sqlite3.Connection, decision_id: int) -> ExceptionDetail | None:
    """The kept incident and row of the exception `decision_id`; None when none was kept."""
    row = conn.execute(
        "SELECT unseal(content) AS content FROM exception_detail WHERE decision_id = ?",
        (decision_id,),
    ).fetchone()
    if row is None:
        return None
    content = json.loads(row["content"])
    return ExceptionDetail(
        incident_from_json(content["incident"]), child_from_json(content["child"])
    )

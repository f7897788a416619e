"""The manager's alert: a High-risk incident (or one whose risk was not given) for a school
that is closed reaches the Education Safeguarding Manager at once, whatever the time of day,
because no DSL will see it until the school reopens (DESIGN.md section 2).

One alert per incident, naming what the manager needs — the police reference, when, the risk,
and each affected child with their school and why it is closed — sealed to the manager's
pinned key like a notification, queued in the outbox and sent at once.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import datetime
from email.message import EmailMessage

from gateway.clock import LONDON
from gateway.config import ManagerSection
from gateway.model import Decision
from gateway.outbox import MessageKind
from gateway.own_mail import alert_message, queue_sealed
from gateway.plan import Plan
from gateway.sealing import Sealer


def queue_manager_alerts(
    conn: sqlite3.Connection,
    plan: Plan,
    *,
    manager: ManagerSection,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> list[int]:
    """Queue one alert per incident of `plan` with a manager alert; returns the rows.
    Idempotent: the same incident's alert is stored once (its reference is derived from it)."""
    by_incident: dict[str, list[Decision]] = defaultdict(list)
    for decision in plan.decisions:
        if decision.manager_alert:
            by_incident[decision.incident_ref].append(decision)
    rows = []
    for incident_ref, decisions in by_incident.items():
        rows.append(
            queue_sealed(
                conn,
                _alert(incident_ref, decisions),
                kind=MessageKind.ALERT,
                key=f"manager/{incident_ref}",
                to=(manager.name, manager.email),
                role="manager",
                fingerprint=manager.fingerprint,
                sealer=sealer,
                now=now,
                actor=actor,
            )
        )
    return rows


def _alert(incident_ref: str, decisions: list[Decision]) -> EmailMessage:
    first = decisions[0]
    when = (
        first.incident_at.astimezone(LONDON).strftime(
            "%A %d %B %Y, %H:%M" if first.incident_time_known else "%A %d %B %Y (time not given)"
        )
        if first.incident_at
        else "not given"
    )
    lines = [
        f"Police reference: {incident_ref}",
        f"Incident: {when}",
        "",
        "The school of each child below is closed, so no Designated Safeguarding Lead will see",
        "a notification before it reopens. Please decide what support is needed now.",
        "",
    ]
    for decision in decisions:
        dob = decision.child.dob.strftime("%d/%m/%Y") if decision.child.dob else "not given"
        lines.append(f"- {decision.child.display_name} (born {dob}): {decision.school_name}")
        lines.append(f"  {decision.reason}")
    return alert_message("High-risk incident while the school is closed", lines)

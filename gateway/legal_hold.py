"""Legal hold: an incident kept whole through retention (gateway/retention.py) — for a case
review, a child safeguarding practice review or proceedings — until the hold is released.

A hold names the police incident reference; its reason (the Navigator's words, which may name
someone) is kept with it, sealed with the storage key, and never written to the audit, which
records only who placed or released a hold on which incident, and when. A released hold stays
on record; retention empties its reason once the incident is purged.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import audit
from gateway.errors import GatewayError
from gateway.store import transaction


class HoldError(GatewayError):
    """A legal hold cannot be placed or released: the incident is unknown, already held, or
    not held."""


@dataclass(frozen=True)
class Hold:
    incident_ref: str
    reason: str
    placed_at: datetime
    placed_by: str


def place_hold(
    conn: sqlite3.Connection, incident_ref: str, *, reason: str, now: datetime, actor: str
) -> Hold:
    """Put `incident_ref` on legal hold: retention keeps all of it until it is released.

    The reason (a case review, proceedings) is kept with the hold, not in the audit: it is
    a person's words and may name someone.
    """
    if not reason.strip():
        raise HoldError("a legal hold needs a reason (--reason): what it is kept for")
    with transaction(conn):
        _require_incident(conn, incident_ref)
        current = active_hold(conn, incident_ref)
        if current is not None:
            raise HoldError(
                f"incident {incident_ref} is already on legal hold, placed"
                f" {current.placed_at:%d/%m/%Y %H:%M} UTC by {current.placed_by}"
            )
        conn.execute(
            "INSERT INTO legal_hold (incident_ref, reason, placed_at, placed_by)"
            " VALUES (?, seal(?), ?, ?)",
            (incident_ref, reason.strip(), _utc(now), actor),
        )
        audit.append(conn, "hold.placed", actor=actor, at=now, incident_ref=incident_ref)
    return Hold(incident_ref, reason.strip(), now.astimezone(UTC), actor)


def release_hold(conn: sqlite3.Connection, incident_ref: str, *, now: datetime, actor: str) -> Hold:
    """Release the legal hold on `incident_ref`: the next purge treats it like any other."""
    with transaction(conn):
        current = active_hold(conn, incident_ref)
        if current is None:
            raise HoldError(f"incident {incident_ref} is not on legal hold")
        conn.execute(
            "UPDATE legal_hold SET released_at = ?, released_by = ?"
            " WHERE incident_ref = ? AND released_at IS NULL",
            (_utc(now), actor, incident_ref),
        )
        audit.append(conn, "hold.released", actor=actor, at=now, incident_ref=incident_ref)
    return current


def active_hold(conn: sqlite3.Connection, incident_ref: str) -> Hold | None:
    row = conn.execute(
        "SELECT incident_ref, unseal(reason), placed_at, placed_by FROM legal_hold"
        " WHERE incident_ref = ? AND released_at IS NULL",
        (incident_ref,),
    ).fetchone()
    return None if row is None else _hold(row)


def active_holds(conn: sqlite3.Connection) -> list[Hold]:
    rows = conn.execute(
        "SELECT incident_ref, unseal(reason), placed_at, placed_by FROM legal_hold"
        " WHERE released_at IS NULL ORDER BY placed_at, incident_ref"
    )
    return [_hold(row) for row in rows]


def _hold(row: sqlite3.Row) -> Hold:
    return Hold(row[0], row[1], datetime.fromisoformat(row[2]), row[3])


def _require_incident(conn: sqlite3.Connection, incident_ref: str) -> None:
    found = conn.execute(
        "SELECT 1 FROM decision WHERE incident_ref = ? LIMIT 1", (incident_ref,)
    ).fetchone()
    if found is None:
        raise HoldError(
            f"no incident {incident_ref!r} is recorded: give the police incident reference"
            " exactly as in the Navigator's record (`audit export`)"
        )


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()

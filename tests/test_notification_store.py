import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.clock import LONDON
from gateway.model import (
    ChildRecord,
    CrimeStatus,
    ExceptionKind,
    Incident,
    Notification,
    Risk,
    SourceRow,
)
from gateway.notification_store import (
    NotificationState,
    mark,
    notification_from_json,
    notification_json,
    planned,
    save_planned,
)
from gateway.store import open_state

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
CHILD = ChildRecord(
    "Ava",
    "Example",
    date(2016, 5, 4),
    SourceRow("police.xlsx", "Daily", 5),
    involvement="Present",
    relationship="Mother and partner",
    voice_of_child="Said she was scared",
)
SIBLING = replace(CHILD, forename="Ben", source=SourceRow("police.xlsx", "Daily", 6))
INCIDENT = Incident(
    "CC-1",
    datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
    Risk.HIGH,
    CrimeStatus.CRIME,
    (CHILD, SIBLING),
    circumstances="Verbal argument",
    location="Home address",
)


def notification(urn: int = 100001) -> Notification:
    return Notification(
        "OE-TEST0001",
        replace(INCIDENT, children=()),
        urn,
        "Example Primary School",
        (CHILD,),
        datetime(2026, 3, 2, 9, 0, tzinfo=LONDON),
    )


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = open_state(tmp_path / "state.sqlite3")
    conn.execute(
        "INSERT INTO intake (id, sha256, file_name, received_at, incidents, children, problems)"
        " VALUES (1, 'abc', 'police.xlsx', ?, 1, 2, 0)",
        (NOW.isoformat(),),
    )
    return conn


def test_a_notification_never_carries_the_incidents_other_children() -> None:
    with pytest.raises(ValueError, match="without the incident's children"):
        Notification("OE-X", INCIDENT, 1, "School", (CHILD,), NOW)


def test_content_round_trips_through_json() -> None:
    assert notification_from_json(notification_json(notification())) == notification()


def test_the_stored_content_holds_only_this_schools_children() -> None:
    stored = str(notification_json(notification()))
    assert "Ava" in stored and "Ben" not in stored


def test_planned_once_per_incident_and_school(conn: sqlite3.Connection) -> None:
    assert save_planned(conn, notification(), intake_id=1, at=NOW, actor="test")
    assert not save_planned(conn, notification(), intake_id=1, at=NOW, actor="test")
    assert planned(conn) == [notification()]
    events = [row[0] for row in conn.execute("SELECT event FROM audit ORDER BY seq")]
    assert events == ["notification.planned", "notification.already_planned"]


def test_a_sealed_or_excepted_notification_is_no_longer_planned(conn: sqlite3.Connection) -> None:
    save_planned(conn, notification(), intake_id=1, at=NOW, actor="test")
    conn.execute("BEGIN IMMEDIATE")
    mark(
        conn,
        "OE-TEST0001",
        NotificationState.EXCEPTION,
        at=NOW,
        actor="test",
        kind=ExceptionKind.NO_KEY,
        reason="no key",
    )
    conn.execute("COMMIT")
    assert planned(conn) == []
    row = conn.execute("SELECT state, exception_kind FROM notification").fetchone()
    assert tuple(row) == ("exception", "no_key")
    last = conn.execute("SELECT event FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    assert last[0] == "notification.exception"

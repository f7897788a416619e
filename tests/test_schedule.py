import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.schedule import next_dispatch
from gateway.store import open_state

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = open_state(tmp_path / "state.sqlite3")
    return conn


def add(
    conn: sqlite3.Connection, state: str, due: datetime, next_attempt: datetime | None = None
) -> None:
    number = conn.execute("SELECT COUNT(*) FROM message").fetchone()[0]
    conn.execute(
        "INSERT INTO message (kind, reference, contact_role, recipient, fingerprint, message_id,"
        " return_path, due, state, next_attempt, sealed_at, body)"
        " VALUES ('notification', 'OE-1', 'dsl', ?, 'F', ?, 'r', ?, ?, ?, ?, x'00')",
        (
            f"r{number}@example.org",
            f"<m{number}@example.org>",
            due.isoformat(),
            state,
            next_attempt.isoformat() if next_attempt else None,
            NINE.isoformat(),
        ),
    )


def test_nothing_waiting_means_no_dispatch(conn: sqlite3.Connection) -> None:
    add(conn, "sent", NINE)
    add(conn, "exception", NINE)
    assert next_dispatch(conn) is None


def test_the_earliest_sealed_message_sets_the_time(conn: sqlite3.Connection) -> None:
    add(conn, "sealed", NINE + timedelta(days=1))
    add(conn, "sealed", NINE)
    assert next_dispatch(conn) == NINE


def test_a_failed_message_waits_for_its_next_attempt(conn: sqlite3.Connection) -> None:
    add(conn, "failed", NINE, next_attempt=NINE + timedelta(minutes=4))
    assert next_dispatch(conn) == NINE + timedelta(minutes=4)


def test_a_message_left_sending_by_a_crash_is_due_again(conn: sqlite3.Connection) -> None:
    add(conn, "sending", NINE)
    add(conn, "sealed", NINE + timedelta(hours=1))
    assert next_dispatch(conn) == NINE

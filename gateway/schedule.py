"""When the next dispatch must run, read from the database — the source of truth.

The service keeps no schedule of its own that could be lost: after a start, an intake or
a dispatch it asks `next_dispatch` and (re)sets one timer. A restart at 08:59 therefore
still sends at 09:00, and a restart at 09:20 finds the 09:00 messages already due and
sends them at once.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from gateway.outbox import HELD, MessageState


def next_dispatch(conn: sqlite3.Connection) -> datetime | None:
    """The earliest instant at which some message can be sent; None when nothing waits.

    Sealed messages wait for their due time; one left `sending` by a crash is sendable at
    its due time too (it is past); a temporarily failed one waits for its next attempt.
    The instant may be in the past: then dispatch is overdue and should run now. Messages
    held for approval are left out: they wait for APPROVE, not for a time.
    """
    row = conn.execute(
        "SELECT MIN(CASE WHEN state = ? THEN MAX(due, next_attempt) ELSE due END)"
        f" FROM message WHERE state IN (?, ?, ?) AND NOT {HELD}",
        (
            MessageState.FAILED.value,
            MessageState.FAILED.value,
            MessageState.SEALED.value,
            MessageState.SENDING.value,
        ),
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row[0] else None

"""The audit log: appends stay references-only, and `verify` names the first tampered entry.

The tampering tests act as an attacker with write access to the database file would: drop
the append-only triggers, then change rows directly.
"""

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from gateway import audit
from gateway.audit import GENESIS, BreakKind
from gateway.clock import LONDON
from gateway.store import open_state

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EVENTS = (
    ("intake.recorded", {"intake": 1, "sha256": "ab" * 32, "child_count": 3}),
    ("decision.notify", {"intake": 1, "incident_ref": "CC-0001", "urn": 110001}),
    ("decision.exception", {"intake": 1, "incident_ref": "CC-0001", "exception_kind": "no_dob"}),
    ("notification.sealed", {"notification": "EG-0001", "urn": 110001}),
    ("message.sent", {"notification": "EG-0001", "message": 1}),
    ("message.sent", {"notification": "EG-0001", "message": 2}),
)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.sqlite3")
    yield connection
    connection.close()


@pytest.fixture
def chain(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.execute("BEGIN IMMEDIATE")
    for offset, (event, data) in enumerate(EVENTS):
        audit.append(conn, event, actor="test", at=START + timedelta(seconds=offset), **data)
    conn.execute("COMMIT")
    return conn


def tamper(conn: sqlite3.Connection, sql: str, *params: object) -> None:
    conn.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_append_only_delete")
    conn.execute(sql, params)


def test_an_untouched_chain_verifies_and_gives_its_anchor(chain: sqlite3.Connection) -> None:
    report = audit.verify(chain)
    assert report.ok, report
    assert report.checked == len(EVENTS)
    last = list(audit.entries(chain))[-1]
    assert report.anchor == (len(EVENTS), last.hash)
    assert audit.format_anchor(report.anchor) in str(report)


def test_an_empty_log_verifies_from_genesis(conn: sqlite3.Connection) -> None:
    report = audit.verify(conn, expect=(0, GENESIS))
    assert report.ok
    assert report.anchor == (0, GENESIS)


def test_each_entry_holds_the_hash_of_the_one_before(chain: sqlite3.Connection) -> None:
    stored = list(audit.entries(chain))
    assert stored[0].prev_hash == GENESIS
    for before, after in pairwise(stored):
        assert after.prev_hash == before.hash


def test_entries_since_a_number_are_the_later_ones_in_order(chain: sqlite3.Connection) -> None:
    later = list(audit.entries(chain, since_seq=4))
    assert [entry.seq for entry in later] == [5, 6]
    assert later[0].event == "message.sent"
    assert later[0].data == {"notification": "EG-0001", "message": 1}


def test_times_are_stored_in_utc(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    entry = audit.append(
        conn, "intake.recorded", actor="test", at=datetime(2026, 7, 1, 10, 0, tzinfo=LONDON)
    )
    conn.execute("COMMIT")
    assert entry.at == "2026-07-01T09:00:00+00:00"


def test_an_edited_entry_is_named_as_changed(chain: sqlite3.Connection) -> None:
    tamper(
        chain, "UPDATE audit SET data = ? WHERE seq = 4", '{"notification":"EG-0001","urn":110002}'
    )
    report = audit.verify(chain)
    assert report.problem is not None
    assert report.problem.seq == 4
    assert report.problem.kind is BreakKind.EDITED
    assert report.problem.message == (
        "entry 4 (notification.sealed at 2026-03-02T09:00:03+00:00): "
        "its content was changed after it was written"
    )
    assert report.anchor == (3, list(audit.entries(chain))[2].hash)


def test_an_edited_time_is_caught(chain: sqlite3.Connection) -> None:
    tamper(chain, "UPDATE audit SET at = '2026-03-02T08:59:00+00:00' WHERE seq = 5")
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, BreakKind.EDITED)


def test_an_entry_whose_data_is_no_longer_json_is_caught(chain: sqlite3.Connection) -> None:
    tamper(chain, "UPDATE audit SET data = 'gone' WHERE seq = 2")
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, BreakKind.EDITED)


def test_a_deleted_entry_is_named_as_missing(chain: sqlite3.Connection) -> None:
    tamper(chain, "DELETE FROM audit WHERE seq = 3")
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, BreakKind.MISSING)
    assert report.problem.message.startswith("entry 3 is missing: the log goes from entry 2")
    assert "entries were deleted" in report.problem.message


def test_a_deleted_first_entry_is_caught(chain: sqlite3.Connection) -> None:
    tamper(chain, "DELETE FROM audit WHERE seq = 1")
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (1, BreakKind.MISSING)


def test_a_deleted_entry_with_the_rest_renumbered_is_caught(chain: sqlite3.Connection) -> None:
    tamper(chain, "DELETE FROM audit WHERE seq = 3")
    for seq in range(4, len(EVENTS) + 1):
        chain.execute("UPDATE audit SET seq = ? WHERE seq = ?", (seq - 1, seq))
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, BreakKind.MOVED)
    assert "this is the entry written as number 4" in report.problem.message


def test_two_swapped_entries_are_named_as_reordered(chain: sqlite3.Connection) -> None:
    columns = "at, actor, event, data, prev_hash, hash"
    fifth = chain.execute(f"SELECT {columns} FROM audit WHERE seq = 5").fetchone()
    sixth = chain.execute(f"SELECT {columns} FROM audit WHERE seq = 6").fetchone()
    assignments = ", ".join(f"{column} = ?" for column in columns.split(", "))
    tamper(chain, f"UPDATE audit SET {assignments} WHERE seq = 5", *sixth)
    chain.execute(f"UPDATE audit SET {assignments} WHERE seq = 6", (*fifth,))
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, BreakKind.MOVED)
    assert report.problem.message == (
        "entry 5 (message.sent at 2026-03-02T09:00:05+00:00): this is the entry written as "
        "number 6; entries were reordered or renumbered"
    )


def test_a_rewritten_entry_with_a_fresh_hash_breaks_the_next_link(
    chain: sqlite3.Connection,
) -> None:
    # The attacker recomputes entry 2's hash after editing it, but not the entries after it.
    entry = list(audit.entries(chain))[1]
    forged = {**entry.data, "urn": 110002}
    digest = audit.entry_hash(2, entry.at, entry.actor, entry.event, forged, entry.prev_hash)
    tamper(
        chain,
        "UPDATE audit SET data = ?, hash = ? WHERE seq = 2",
        audit.canonical(forged),
        digest,
    )
    report = audit.verify(chain)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, BreakKind.RELINKED)
    assert "entry 2 was replaced" in report.problem.message


def test_a_cut_tail_passes_alone_but_fails_against_the_noted_anchor(
    chain: sqlite3.Connection,
) -> None:
    noted = audit.verify(chain).anchor
    tamper(chain, "DELETE FROM audit WHERE seq > 4")
    assert audit.verify(chain).ok
    report = audit.verify(chain, expect=noted)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, BreakKind.TRUNCATED)
    assert "the log ends at entry 4, but entry 6 was noted earlier" in report.problem.message
    assert "entries 5 to 6 are cut from the end" in report.problem.message


def test_a_cut_tail_regrown_by_new_appends_fails_against_the_anchor(
    chain: sqlite3.Connection,
) -> None:
    noted = audit.verify(chain).anchor
    tamper(chain, "DELETE FROM audit WHERE seq > 4")
    chain.execute("BEGIN IMMEDIATE")
    for event, data in EVENTS[4:]:
        audit.append(chain, event, actor="intruder", at=START, **data)
    chain.execute("COMMIT")
    assert audit.verify(chain).ok
    report = audit.verify(chain, expect=noted)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (6, BreakKind.ANCHOR_MISMATCH)


def test_a_log_that_grew_after_the_anchor_still_verifies(chain: sqlite3.Connection) -> None:
    noted = audit.verify(chain).anchor
    chain.execute("BEGIN IMMEDIATE")
    audit.append(chain, "message.sent", actor="test", at=START, notification="EG-0002")
    chain.execute("COMMIT")
    assert audit.verify(chain, expect=noted).ok


def test_an_anchor_reads_back_from_its_printed_form() -> None:
    anchor = (57, "3f" * 32)
    assert audit.parse_anchor(audit.format_anchor(anchor)) == anchor
    with pytest.raises(ValueError, match="not an audit anchor"):
        audit.parse_anchor("57")


def test_append_refuses_personal_data(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(ValueError, match="references, not personal data"):
        audit.append(
            conn, "decision.notify", actor="test", at=START, incident_ref="CC-1", dob="2015-01-01"
        )
    conn.execute("ROLLBACK")
    assert list(audit.entries(conn)) == []


def test_append_refuses_to_run_outside_a_transaction(conn: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit.append(conn, "intake.recorded", actor="test", at=START, intake=1)
    assert list(audit.entries(conn)) == []


def test_append_refuses_a_time_without_a_zone(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(ValueError, match="timezone-aware"):
        audit.append(conn, "intake.recorded", actor="test", at=datetime(2026, 3, 2, 9, 0), intake=1)
    conn.execute("ROLLBACK")


def test_an_entry_rolls_back_with_the_change_it_records(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    audit.append(conn, "intake.recorded", actor="test", at=START, intake=1)
    conn.execute("ROLLBACK")
    assert list(audit.entries(conn)) == []


def test_the_database_refuses_to_update_an_entry(chain: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        chain.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 1")


def test_the_database_refuses_to_delete_an_entry(chain: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        chain.execute("DELETE FROM audit WHERE seq = 1")
    assert audit.verify(chain).checked == len(EVENTS)

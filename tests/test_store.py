import sqlite3
from pathlib import Path

import pytest

from gateway.at_rest import is_sealed, key_file_beside, load_or_create, register
from gateway.errors import StateError
from gateway.store import MIGRATIONS, _statements, open_state, transaction


def at_version(path: Path, version: int) -> sqlite3.Connection:
    """A database built by the first `version` migrations, as an older gateway left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    register(conn, load_or_create(key_file_beside(path)))
    for script in MIGRATIONS[:version]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn


def test_a_new_database_is_at_the_latest_version(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_messages_of_an_older_database_survive_the_upgrade_as_notifications(
    tmp_path: Path,
) -> None:
    old = at_version(tmp_path / "state.sqlite3", 3)
    old.execute(
        "INSERT INTO intake (id, sha256, file_name, received_at, incidents, children, problems)"
        " VALUES (1, 'a', 'p.xlsx', 't', 1, 1, 0)"
    )
    old.execute(
        "INSERT INTO notification (reference, intake_id, incident_ref, urn, due, state, reason,"
        " content, created_at) VALUES ('OE-1', 1, 'CC-1', 100001, 'd', 'sealed', '', '{}', 't')"
    )
    old.execute(
        "INSERT INTO message (reference, contact_role, recipient, fingerprint, message_id,"
        " return_path, due, state, sealed_at, body)"
        " VALUES ('OE-1', 'dsl', 'dsl@x.example.org', 'F', '<m@x>', 'r', 'd', 'sealed', 't', x'01')"
    )
    old.close()
    conn = open_state(tmp_path / "state.sqlite3")
    row = conn.execute("SELECT kind, reference, recipient, body FROM message").fetchone()
    assert tuple(row) == ("notification", "OE-1", "dsl@x.example.org", b"\x01")


def test_personal_data_an_older_database_kept_in_the_clear_is_sealed_by_the_upgrade(
    tmp_path: Path,
) -> None:
    old = at_version(tmp_path / "state.sqlite3", 6)
    old.execute(
        "INSERT INTO intake (id, sha256, file_name, received_at, incidents, children, problems)"
        " VALUES (1, 'a', 'p.xlsx', 't', 1, 1, 0)"
    )
    old.execute(
        "INSERT INTO decision (intake_id, incident_ref, child_key, outcome, urn, manager_alert,"
        " reason, record) VALUES (1, 'CC-1', 'S!2', 'notify', 100001, 0, 'Ava Stone matched',"
        ' \'{"child": "Ava Stone"}\')'
    )
    old.execute(
        "INSERT INTO notification (reference, intake_id, incident_ref, urn, due, state, reason,"
        " content, created_at) VALUES ('OE-1', 1, 'CC-1', 100001, 'd', 'sealed', '',"
        " '{\"child\": \"Ava Stone\"}', 't')"
    )
    old.execute("INSERT INTO intake_source (intake_id, workbook, sender) VALUES (1, x'504b', 's')")
    old.close()
    conn = open_state(tmp_path / "state.sqlite3")
    raw = conn.execute(
        "SELECT d.reason, d.record, n.content, s.workbook FROM decision d, notification n,"
        " intake_source s"
    ).fetchone()
    assert all(is_sealed(value) for value in raw)
    opened = conn.execute(
        "SELECT unseal(d.reason), unseal(d.record), unseal(n.content), unseal(s.workbook)"
        " FROM decision d, notification n, intake_source s"
    ).fetchone()
    assert tuple(opened) == (
        "Ava Stone matched",
        '{"child": "Ava Stone"}',
        '{"child": "Ava Stone"}',
        b"PK",
    )


def test_messages_referred_to_by_tracking_events_survive_the_rebuild_for_resends(
    tmp_path: Path,
) -> None:
    old = at_version(tmp_path / "state.sqlite3", 11)
    old.execute(
        "INSERT INTO message (id, kind, reference, contact_role, recipient, fingerprint,"
        " message_id, return_path, due, state, sealed_at, body) VALUES (7, 'alert', 'GW-1',"
        " 'navigator', 'n@x.example.org', 'F', '<m@x>', 'r', 'd', 'sent', 't', x'01')"
    )
    old.execute(
        "INSERT INTO tracking_event (kind, message_row, at, mailbox, uidvalidity, uid, summary)"
        " VALUES ('read_receipt', 7, 't', 'navigator', 1, 1, '')"
    )
    old.close()
    conn = open_state(tmp_path / "state.sqlite3")
    assert conn.execute("SELECT message_row FROM tracking_event").fetchone()[0] == 7
    # The same recipient may now be sent the same reference again, under a new Message-ID.
    conn.execute(
        "INSERT INTO message (kind, reference, contact_role, recipient, fingerprint,"
        " message_id, return_path, due, state, sealed_at, body) VALUES ('alert', 'GW-1',"
        " 'navigator', 'n@x.example.org', 'F', '<m2@x>', 'r', 'd', 'sealed', 't', x'01')"
    )
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    newer = at_version(tmp_path / "state.sqlite3", len(MIGRATIONS))
    newer.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    newer.close()
    with pytest.raises(StateError, match="newer than this gateway understands"):
        open_state(tmp_path / "state.sqlite3")


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO mailbox_state VALUES ('mash', 'INBOX', 1, 1, 't')")
        raise RuntimeError("crash")
    assert conn.execute("SELECT COUNT(*) FROM mailbox_state").fetchone()[0] == 0


def test_a_step_that_must_commit_alone_refuses_to_join(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    with transaction(conn), pytest.raises(StateError), transaction(conn, alone=True):
        pass

"""The SQLite state database: one file, WAL, the source of truth for everything durable.

The schema is versioned by `PRAGMA user_version`; `open_state` creates or upgrades it.
Modules that own a part of the state (the directory, intake) read and write their tables
through the connection this returns; nothing else opens the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.at_rest import StorageKey, StorageKeyError, key_file_beside, load_or_create, register
from gateway.errors import StateError

if TYPE_CHECKING:
    from gateway.config import LoadedConfig

# Each entry upgrades the schema from version i to i+1. Never edit an entry once released:
# add a new one, so existing databases upgrade in place.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE establishment (
        urn INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        la_code INTEGER NOT NULL,
        la_name TEXT NOT NULL,
        type_name TEXT NOT NULL,
        phase_name TEXT NOT NULL,
        status_name TEXT NOT NULL,
        is_open INTEGER NOT NULL,
        postcode TEXT NOT NULL,
        telephone TEXT NOT NULL,
        statutory_low_age INTEGER,
        statutory_high_age INTEGER,
        open_date TEXT,
        close_date TEXT
    );
    CREATE TABLE contact (
        id INTEGER PRIMARY KEY,
        urn INTEGER NOT NULL,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        phone TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        confirmed TEXT
    );
    CREATE INDEX contact_urn ON contact (urn);
    CREATE TABLE pupil (
        upn TEXT NOT NULL,
        legal_forename TEXT NOT NULL,
        legal_surname TEXT NOT NULL,
        preferred_forename TEXT NOT NULL,
        preferred_surname TEXT NOT NULL,
        middle_names TEXT NOT NULL,
        dob TEXT NOT NULL,
        postcode TEXT NOT NULL,
        urn INTEGER NOT NULL,
        entry_date TEXT,
        leaving_date TEXT
    );
    CREATE INDEX pupil_dob ON pupil (dob);
    CREATE TABLE directory_import (
        id INTEGER PRIMARY KEY,
        imported_at TEXT NOT NULL,
        source TEXT NOT NULL,
        establishments INTEGER NOT NULL,
        contacts INTEGER NOT NULL,
        pupils INTEGER NOT NULL,
        warnings INTEGER NOT NULL
    );
    CREATE TABLE intake (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        file_name TEXT NOT NULL,
        received_at TEXT NOT NULL,
        incidents INTEGER NOT NULL,
        children INTEGER NOT NULL,
        problems INTEGER NOT NULL
    );
    CREATE TABLE decision (
        id INTEGER PRIMARY KEY,
        intake_id INTEGER NOT NULL REFERENCES intake (id),
        incident_ref TEXT NOT NULL,
        child_key TEXT NOT NULL,
        outcome TEXT NOT NULL,
        exception_kind TEXT,
        urn INTEGER,
        due TEXT,
        manager_alert INTEGER NOT NULL,
        reason TEXT NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (intake_id, child_key)
    );
    """,
    """
    CREATE TABLE notification (
        reference TEXT PRIMARY KEY,
        intake_id INTEGER NOT NULL REFERENCES intake (id),
        incident_ref TEXT NOT NULL,
        urn INTEGER NOT NULL,
        due TEXT NOT NULL,
        state TEXT NOT NULL,
        exception_kind TEXT,
        reason TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (incident_ref, urn)
    );
    CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        reference TEXT NOT NULL REFERENCES notification (reference),
        contact_role TEXT NOT NULL,
        recipient TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        return_path TEXT NOT NULL,
        due TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        sealed_at TEXT NOT NULL,
        sent_at TEXT,
        body BLOB NOT NULL,
        UNIQUE (reference, recipient)
    );
    CREATE INDEX message_state_due ON message (state, due);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        event TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    """
    CREATE TABLE mailbox_state (
        mailbox TEXT PRIMARY KEY,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE inbound_message (
        id INTEGER PRIMARY KEY,
        mailbox TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        message_id_sha256 TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        recorded_at TEXT NOT NULL,
        disposition TEXT NOT NULL,
        reference TEXT,
        reason TEXT NOT NULL,
        duplicate_of INTEGER REFERENCES inbound_message (id),
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        moved INTEGER NOT NULL DEFAULT 0,
        moved_at TEXT,
        UNIQUE (mailbox, uidvalidity, uid)
    );
    CREATE INDEX inbound_message_content ON inbound_message (mailbox, message_id_sha256, sha256);
    CREATE INDEX inbound_message_pending ON inbound_message (mailbox, uidvalidity)
        WHERE moved = 0;
    CREATE TABLE inbound_failure (
        mailbox TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        last_at TEXT NOT NULL,
        PRIMARY KEY (mailbox, uidvalidity, uid)
    );
    """,
    # The gateway's own mail (alerts, digests, receipts, forwards) goes through the same
    # durable outbox as notifications: each message now says which it is, and only a
    # notification's messages refer to a notification row.
    """
    CREATE TABLE message_v4 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        reference TEXT NOT NULL,
        contact_role TEXT NOT NULL,
        recipient TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        return_path TEXT NOT NULL,
        due TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        sealed_at TEXT NOT NULL,
        sent_at TEXT,
        body BLOB NOT NULL,
        UNIQUE (reference, recipient)
    );
    INSERT INTO message_v4 (id, kind, reference, contact_role, recipient, fingerprint,
        message_id, return_path, due, state, attempts, next_attempt, last_error, sealed_at,
        sent_at, body)
    SELECT id, 'notification', reference, contact_role, recipient, fingerprint, message_id,
        return_path, due, state, attempts, next_attempt, last_error, sealed_at, sent_at, body
    FROM message;
    DROP TABLE message;
    ALTER TABLE message_v4 RENAME TO message;
    CREATE INDEX message_state_due ON message (state, due);
    """,
    """
    CREATE TABLE tracking_event (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        message_row INTEGER REFERENCES message (id),
        reference TEXT,
        status TEXT,
        final_recipient TEXT,
        at TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        summary TEXT NOT NULL
    );
    CREATE INDEX tracking_event_reference ON tracking_event (reference);
    CREATE INDEX tracking_event_message ON tracking_event (message_row);
    """,
    # A spreadsheet that came by mail keeps its bytes (until its return sheet is queued) and
    # its authenticated sender, so the police can be sent it back with each child's outcome.
    """
    CREATE TABLE intake_source (
        intake_id INTEGER PRIMARY KEY REFERENCES intake (id),
        workbook BLOB NOT NULL,
        sender TEXT NOT NULL,
        signer TEXT,
        returned_at TEXT,  -- when its return sheet was queued, or found impossible (audit says)
        return_message INTEGER REFERENCES message (id)
    );
    """,
    # Personal data at rest is sealed with the storage key (gateway/at_rest.py): what earlier
    # versions stored in the clear is sealed in place.
    """
    CREATE TABLE storage_key_check (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        sealed BLOB NOT NULL
    );
    UPDATE decision SET record = seal(record), reason = seal(reason);
    UPDATE notification SET content = seal(content);
    UPDATE intake_source SET workbook = seal(workbook) WHERE length(workbook) > 0;
    """,
    # The key check's memory (gateway/key_lifecycle.py): each stage a contact's key reached
    # (a warn_days threshold, "expired", "revoked") once, so a restart or the next morning
    # repeats nothing; keyed by when the key stops working ('' for a revoked key), so a
    # renewed key starts again. `listed_at`: when a digest told the Navigator.
    """
    CREATE TABLE key_warning (
        id INTEGER PRIMARY KEY,
        urn INTEGER NOT NULL,
        contact_role TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        usable_until TEXT NOT NULL,
        stage TEXT NOT NULL,
        crossed_at TEXT NOT NULL,
        notice INTEGER REFERENCES message (id),
        listed_at TEXT,
        UNIQUE (urn, contact_role, fingerprint, usable_until, stage)
    );
    CREATE INDEX key_warning_unlisted ON key_warning (listed_at);
    """,
    # A resent or corrected spreadsheet (gateway/amendments.py): a school may be sent several
    # notifications about one incident — the first, then a child added, an amendment or a
    # withdrawal, each numbered after the first (OE-XXXXX-XXXXX-2…). The first stays unique
    # per (incident, school); each follow-up says its kind and the first it follows. A child
    # or incident gone from a revision of a spreadsheet is kept for the Navigator, with the
    # withdrawal notice sent about it, if any.
    """
    CREATE TABLE notification_v9 (
        reference TEXT PRIMARY KEY,
        intake_id INTEGER NOT NULL REFERENCES intake (id),
        incident_ref TEXT NOT NULL,
        urn INTEGER NOT NULL,
        due TEXT NOT NULL,
        state TEXT NOT NULL,
        exception_kind TEXT,
        reason TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'notification',
        follows TEXT REFERENCES notification_v9 (reference)
    );
    INSERT INTO notification_v9 (reference, intake_id, incident_ref, urn, due, state,
        exception_kind, reason, content, created_at)
    SELECT reference, intake_id, incident_ref, urn, due, state, exception_kind, reason,
        content, created_at
    FROM notification;
    DROP TABLE notification;
    ALTER TABLE notification_v9 RENAME TO notification;
    CREATE UNIQUE INDEX notification_first ON notification (incident_ref, urn)
        WHERE follows IS NULL;
    CREATE INDEX notification_follows ON notification (follows);
    CREATE TABLE disappearance (
        id INTEGER PRIMARY KEY,
        intake_id INTEGER NOT NULL REFERENCES intake (id),
        revised_intake_id INTEGER NOT NULL REFERENCES intake (id),
        decision_id INTEGER NOT NULL REFERENCES decision (id),
        incident_ref TEXT NOT NULL,
        incident_gone INTEGER NOT NULL,
        urn INTEGER,
        reference TEXT REFERENCES notification (reference),
        withdrawal TEXT REFERENCES notification (reference),
        recorded_at TEXT NOT NULL,
        UNIQUE (intake_id, decision_id)
    );
    CREATE INDEX disappearance_reference ON disappearance (reference);
    """,
    # A contact's fingerprint confirmed by telephone (`keys import --fingerprint`): kept over
    # a contacts list that still carries the fingerprint it replaced (gateway/directory.py).
    """
    CREATE TABLE contact_pin (
        id INTEGER PRIMARY KEY,
        urn INTEGER NOT NULL,
        role TEXT NOT NULL,
        email TEXT NOT NULL,
        replaced TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        confirmed TEXT NOT NULL,
        at TEXT NOT NULL
    );
    """,
    # Joining the scheme (gateway/onboarding.py): every DSL (URN and address) the gateway
    # knows, so each is sent the welcome once. "known": in the directory before onboarding
    # existed, or found by the first import of an empty directory (schools already in the
    # scheme); "pending": found new by an import, welcome not queued yet (a crash, or no
    # Navigator key to sign it); "welcomed": queued as `message`. And the directory files'
    # hash with each import, so a scheduled refresh of unchanged files is skipped.
    """
    CREATE TABLE welcome (
        id INTEGER PRIMARY KEY,
        urn INTEGER NOT NULL,
        email TEXT NOT NULL,
        state TEXT NOT NULL,
        found_at TEXT,
        message INTEGER REFERENCES message (id),
        UNIQUE (urn, email)
    );
    INSERT INTO welcome (urn, email, state)
        SELECT DISTINCT urn, lower(email), 'known' FROM contact
        WHERE role = 'dsl' AND email != '';
    ALTER TABLE directory_import ADD COLUMN sha256 TEXT;
    """,
    # The Navigator's commands (gateway/resolutions.py): what a person decided about an item,
    # with the free text they wrote; an exception child's incident and record kept so ROUTE
    # can notify a school later; approval mode's waiting notifications. A notification may
    # now be sent again to the same recipient (RESEND): a new message with a new Message-ID,
    # so (reference, recipient) is no longer unique, the Message-ID still is.
    """
    CREATE TABLE resolution (
        id INTEGER PRIMARY KEY,
        item TEXT NOT NULL,
        verb TEXT NOT NULL,
        decision_id INTEGER REFERENCES decision (id),
        reference TEXT,
        intake_id INTEGER REFERENCES intake (id),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        signer TEXT,
        text TEXT NOT NULL
    );
    CREATE INDEX resolution_decision ON resolution (decision_id);
    CREATE INDEX resolution_reference ON resolution (reference);
    CREATE TABLE exception_detail (
        decision_id INTEGER PRIMARY KEY REFERENCES decision (id),
        content TEXT NOT NULL
    );
    CREATE TABLE approval (
        reference TEXT PRIMARY KEY REFERENCES notification (reference),
        intake_id INTEGER NOT NULL REFERENCES intake (id),
        waiting_since TEXT NOT NULL,
        approved_at TEXT,
        approved_by TEXT,
        signer TEXT,
        escalated_at TEXT
    );
    CREATE INDEX approval_waiting ON approval (intake_id) WHERE approved_at IS NULL;
    CREATE TABLE message_v8 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        reference TEXT NOT NULL,
        contact_role TEXT NOT NULL,
        recipient TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        return_path TEXT NOT NULL,
        due TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        sealed_at TEXT NOT NULL,
        sent_at TEXT,
        body BLOB NOT NULL
    );
    INSERT INTO message_v8 SELECT id, kind, reference, contact_role, recipient, fingerprint,
        message_id, return_path, due, state, attempts, next_attempt, last_error, sealed_at,
        sent_at, body FROM message;
    DROP TABLE message;
    ALTER TABLE message_v8 RENAME TO message;
    CREATE INDEX message_state_due ON message (state, due);
    CREATE INDEX message_reference ON message (reference, recipient);
    """,
    # Every mail taken as signed commands (gateway/command_mail.py), acted on or refused. A
    # valid signature is kept by a digest of it and what it covers, so a copy of the same
    # signed mail, however its outer headers were changed, is never acted on twice.
    """
    CREATE TABLE command_mail (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        message_id_sha256 TEXT NOT NULL,
        signature_sha256 TEXT,  -- of a valid signature by a pinned key, and its content
        signer TEXT,  -- the pinned command signer's fingerprint, when the signature passed
        outcome TEXT NOT NULL,  -- 'accepted' or 'rejected'
        reason TEXT NOT NULL,  -- a code: 'acted_on', 'unsigned', 'unpinned_key'…
        answer INTEGER REFERENCES message (id)
    );
    CREATE UNIQUE INDEX command_mail_signature ON command_mail (signature_sha256)
        WHERE outcome = 'accepted';
    """,
    # A legal hold keeps an incident whole through retention (gateway/retention.py); a
    # released hold stays on record. The reason is the Navigator's words, never audited.
    """
    CREATE TABLE legal_hold (
        id INTEGER PRIMARY KEY,
        incident_ref TEXT NOT NULL,
        reason TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        released_at TEXT,
        released_by TEXT
    );
    CREATE UNIQUE INDEX legal_hold_active ON legal_hold (incident_ref) WHERE released_at IS NULL;
    """,
    # SMTP mail the intake failed on, counted by content (gateway/smtp_intake.py): the third
    # failure of the same message quarantines it instead of answering 451 again.
    """
    CREATE TABLE smtp_failure (
        sha256 TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        last_at TEXT NOT NULL
    );
    """,
    # A child whom a corrected spreadsheet routes to another school than the one notified is
    # reported too (gateway/amendments.py `gone_from`): the first school was told of a child
    # who, it now seems, is not theirs.
    """
    ALTER TABLE disappearance ADD COLUMN moved INTEGER NOT NULL DEFAULT 0;
    """,
)


@contextmanager
def transaction(conn: sqlite3.Connection, *, alone: bool = False) -> Iterator[None]:
    """One write transaction: committed when the block ends, rolled back if it raises.

    Inside a transaction already open, the block joins it (a notification and its messages
    commit together) — unless `alone`, for a step that must be durable before the caller
    acts on the outside world (marking a message `sending` before handing it to SMTP).
    """
    if conn.in_transaction:
        if alone:
            raise StateError("this step must commit on its own, not inside another transaction")
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def storage_key(config: LoadedConfig) -> StorageKey:
    """The key the configuration names, else the one generated beside the database."""
    ref = config.config.state.storage_key
    if ref is None:
        return load_or_create(key_file_beside(config.database))
    return StorageKey.from_text(ref.resolve(), source="state.storage_key")


def open_config_state(config: LoadedConfig) -> sqlite3.Connection:
    """The state database the configuration names, with its storage key."""
    config.database.parent.mkdir(parents=True, exist_ok=True)
    return open_state(config.database, storage_key=storage_key(config))


def open_state(path: Path, *, storage_key: StorageKey | None = None) -> sqlite3.Connection:
    """Open (creating or upgrading) the state database at `path`.

    Personal data in it is sealed with `storage_key`; without one, with the key generated
    beside the database on first use (fine for a demo or a test, not for a deployment: the
    database and its key would travel together — `check` says so).
    """
    if storage_key is None and str(path) == ":memory:":
        storage_key = StorageKey.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"cannot open the state database {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    key = storage_key or load_or_create(key_file_beside(path))
    register(conn, key)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    _migrate(conn, path)
    conn.execute("PRAGMA foreign_keys=ON")
    _check_key(conn, key, path)
    return conn


_KEY_CHECK = "the Encompass Gateway storage key"


def _check_key(conn: sqlite3.Connection, key: StorageKey, path: Path) -> None:
    # Refuse the wrong key at once, with a message saying so, rather than at the first row
    # some later query cannot open.
    row = conn.execute("SELECT sealed FROM storage_key_check").fetchone()
    if row is None:
        with transaction(conn):
            conn.execute(
                "INSERT OR IGNORE INTO storage_key_check (id, sealed) VALUES (1, ?)",
                (key.seal(_KEY_CHECK),),
            )
        return
    try:
        key.unseal(row[0])
    except StorageKeyError as exc:
        raise StorageKeyError(
            f"the storage key given does not open the state database {path}: its personal"
            " data was sealed with another key (check [state] storage_key)"
        ) from exc


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StateError(
            f"the state database {path} is schema version {version}, newer than this gateway "
            f"understands ({len(MIGRATIONS)}); upgrade the gateway"
        )
    for number in range(version, len(MIGRATIONS)):
        # One transaction per step: a failed upgrade leaves the database at the last good version.
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(MIGRATIONS[number]):
            conn.execute(statement)
        # Foreign keys are enforced only after the upgrade, so a step may rebuild a table
        # others refer to (SQLite's way of changing a constraint: copy, drop, rename); what
        # the rebuilt table must still satisfy is checked before the step commits.
        broken = conn.execute("PRAGMA foreign_key_check").fetchone()
        if broken is not None:
            conn.execute("ROLLBACK")
            raise StateError(
                f"upgrading the state database {path} to version {number + 1} would break a"
                f" reference from table {broken[0]} to {broken[2]}; it stays at version {number}"
            )
        conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    # Split on ";" only where SQLite agrees a statement is complete (triggers hold several).
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements

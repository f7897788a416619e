"""The processed-message ledger on a real state database: the two keys of a message, the
per-mailbox catch-up point, and the audit entries each write leaves (references only)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import audit, mail_ledger
from gateway.config import ImapSection, SecretRef
from gateway.mail_ledger import Action, Disposition, DispositionKind, LedgerKey, content_key
from gateway.store import open_state, transaction

NOW = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
ACCOUNT = ImapSection(
    host="imap.example.org", username="mash", password=SecretRef(env="UNUSED_IN_THESE_TESTS")
)
SENDER = "da-desk@police.example.org"
SUBJECT = "Operation Encompass 02/03"

MESSAGE = (
    f"Return-Path: <{SENDER}>\r\n"
    "Received: from mx.police.example.org by mx.mash.example.org;\r\n"
    "\tMon, 2 Mar 2026 06:58:01 +0000\r\n"
    f"From: {SENDER}\r\n"
    f"Subject: {SUBJECT}\r\n"
    "Message-ID: <20260302.1@police.example.org>\r\n"
    "\r\n"
    "The spreadsheet is attached.\r\n"
).encode()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.sqlite3")
    yield connection
    connection.close()


def key(uid: int, uidvalidity: int = 7) -> LedgerKey:
    return LedgerKey("mash", uidvalidity, uid)


def events(conn: sqlite3.Connection) -> list[str]:
    return [entry.event for entry in audit.entries(conn)]


# --------------------------------------------------------------------------------------
# The content key


def test_a_redelivery_with_new_trace_fields_is_the_same_message() -> None:
    redelivered = (
        b"Delivered-To: mash@mash.example.org\r\n"
        b"Received: from relay.example.org by mx.mash.example.org; Tue, 3 Mar 2026\r\n"
        + MESSAGE.replace(b"06:58:01", b"09:12:44").replace(
            b"Return-Path: <da-desk", b"Return-Path: <bounce-desk"
        )
    )
    assert content_key(redelivered).sha256 == content_key(MESSAGE).sha256
    assert content_key(redelivered).message_id_sha256 == content_key(MESSAGE).message_id_sha256


def test_another_body_under_the_same_message_id_is_another_message() -> None:
    forged = MESSAGE.replace(b"is attached", b"is attached twice")
    assert content_key(forged).message_id_sha256 == content_key(MESSAGE).message_id_sha256
    assert content_key(forged).sha256 != content_key(MESSAGE).sha256


def test_a_changed_header_that_is_not_a_trace_field_is_another_message() -> None:
    assert content_key(MESSAGE.replace(b"02/03", b"03/03")).sha256 != content_key(MESSAGE).sha256


def test_the_message_id_is_read_unfolded_and_whatever_its_case() -> None:
    folded = MESSAGE.replace(
        b"Message-ID: <20260302.1@police.example.org>",
        b"message-id:\r\n <20260302.1@police.example.org>",
    )
    assert content_key(folded).message_id_sha256 == content_key(MESSAGE).message_id_sha256


def test_messages_without_a_message_id_or_a_body_still_have_a_key() -> None:
    assert (
        content_key(b"Subject: x\n\nbody\n").sha256 != content_key(b"Subject: y\n\nbody\n").sha256
    )
    assert content_key(b"Subject: only a header").size == len(b"Subject: only a header")
    assert content_key(b"").sha256 == content_key(b"").sha256


def test_a_body_line_looking_like_a_trace_field_is_content() -> None:
    one = MESSAGE + b"Received: this is body text, not a trace field\r\n"
    assert content_key(one).sha256 != content_key(MESSAGE).sha256


# --------------------------------------------------------------------------------------
# Per-mailbox state


def test_the_first_pass_starts_from_the_beginning_and_is_audited(
    conn: sqlite3.Connection,
) -> None:
    state, renumbered = mail_ledger.begin_pass(conn, "mash", "INBOX", 7, now=NOW, actor="t")
    assert (state.uidvalidity, state.last_uid, renumbered) == (7, 0, False)
    assert events(conn) == ["mail.mailbox_first_seen"]


def test_the_catch_up_point_only_moves_forward(conn: sqlite3.Connection) -> None:
    mail_ledger.begin_pass(conn, "mash", "INBOX", 7, now=NOW, actor="t")
    mail_ledger.advance(conn, key(5), now=NOW)
    mail_ledger.advance(conn, key(3), now=NOW)
    state, renumbered = mail_ledger.begin_pass(conn, "mash", "INBOX", 7, now=NOW, actor="t")
    assert (state.last_uid, renumbered) == (5, False)


def test_a_new_uidvalidity_starts_again_from_the_beginning(conn: sqlite3.Connection) -> None:
    mail_ledger.begin_pass(conn, "mash", "INBOX", 7, now=NOW, actor="t")
    mail_ledger.advance(conn, key(5), now=NOW)
    state, renumbered = mail_ledger.begin_pass(conn, "mash", "INBOX", 8, now=NOW, actor="t")
    assert (state.uidvalidity, state.last_uid, renumbered) == (8, 0, True)
    entry = list(audit.entries(conn))[-1]
    assert entry.event == "mail.mailbox_renumbered"
    assert entry.data["previous_uidvalidity"] == 7


def test_another_folder_starts_again_from_the_beginning(conn: sqlite3.Connection) -> None:
    mail_ledger.begin_pass(conn, "mash", "INBOX", 7, now=NOW, actor="t")
    mail_ledger.advance(conn, key(5), now=NOW)
    state, renumbered = mail_ledger.begin_pass(conn, "mash", "Police", 7, now=NOW, actor="t")
    assert (state.folder, state.last_uid, renumbered) == ("Police", 0, True)


def test_an_old_numbering_cannot_move_the_catch_up_point(conn: sqlite3.Connection) -> None:
    mail_ledger.begin_pass(conn, "mash", "INBOX", 8, now=NOW, actor="t")
    mail_ledger.advance(conn, key(9, uidvalidity=7), now=NOW)
    state = mail_ledger.mailbox_state(conn, "mash")
    assert state is not None and state.last_uid == 0


# --------------------------------------------------------------------------------------
# Records


def test_a_record_is_found_by_its_place_and_by_its_content(conn: sqlite3.Connection) -> None:
    content = content_key(MESSAGE)
    recorded = mail_ledger.record(
        conn,
        key(3),
        content,
        Disposition(DispositionKind.INTAKE, reference="17"),
        ACCOUNT,
        now=NOW,
        actor="t",
    )
    assert mail_ledger.find(conn, key(3)) == recorded
    assert mail_ledger.find(conn, key(3, uidvalidity=8)) is None
    assert mail_ledger.find_same(conn, "mash", content) == recorded
    assert mail_ledger.find_same(conn, "navigator", content) is None
    assert (recorded.action, recorded.target, recorded.moved) == (
        Action.MOVE,
        "Processed",
        False,
    )


def test_quarantined_mail_is_moved_to_the_quarantine_folder(conn: sqlite3.Connection) -> None:
    recorded = mail_ledger.record(
        conn,
        key(1),
        content_key(MESSAGE),
        Disposition(DispositionKind.QUARANTINED, reason="no valid signature"),
        ACCOUNT,
        now=NOW,
        actor="t",
    )
    assert (recorded.action, recorded.target, recorded.reason) == (
        Action.MOVE,
        "Quarantine",
        "no valid signature",
    )


def test_a_flag_disposition_leaves_the_message_in_place(conn: sqlite3.Connection) -> None:
    recorded = mail_ledger.record(
        conn,
        key(1),
        content_key(MESSAGE),
        Disposition(DispositionKind.TRACKED, reference="EG-1", flag="\\Flagged"),
        ACCOUNT,
        now=NOW,
        actor="t",
    )
    assert (recorded.action, recorded.target) == (Action.FLAG, "\\Flagged")


def test_the_same_place_cannot_be_recorded_twice(conn: sqlite3.Connection) -> None:
    mail_ledger.record(
        conn,
        key(1),
        content_key(MESSAGE),
        Disposition(DispositionKind.IGNORED),
        ACCOUNT,
        now=NOW,
        actor="t",
    )
    with pytest.raises(sqlite3.IntegrityError):
        mail_ledger.record(
            conn,
            key(1),
            content_key(b"other"),
            Disposition(DispositionKind.IGNORED),
            ACCOUNT,
            now=NOW,
            actor="t",
        )


def test_a_duplicate_goes_where_the_first_copy_went(conn: sqlite3.Connection) -> None:
    content = content_key(MESSAGE)
    first = mail_ledger.record(
        conn,
        key(1),
        content,
        Disposition(DispositionKind.QUARANTINED),
        ACCOUNT,
        now=NOW,
        actor="t",
    )
    again = mail_ledger.record_duplicate(conn, key(4), content, first, now=NOW, actor="t")
    assert (again.kind, again.target, again.duplicate_of) == (
        DispositionKind.QUARANTINED,
        "Quarantine",
        first.id,
    )
    assert mail_ledger.find_same(conn, "mash", content) == first


def test_pending_moves_are_listed_until_marked_done(conn: sqlite3.Connection) -> None:
    records = [
        mail_ledger.record(
            conn,
            key(uid),
            content_key(MESSAGE + str(uid).encode()),
            Disposition(DispositionKind.INTAKE),
            ACCOUNT,
            now=NOW,
            actor="t",
        )
        for uid in (1, 2)
    ]
    assert [r.key.uid for r in mail_ledger.pending(conn, "mash", 7)] == [1, 2]
    mail_ledger.mark_moved(conn, records[0], now=NOW, actor="t")
    mail_ledger.mark_moved(conn, records[0], now=NOW, actor="t")  # once is recorded once
    assert [r.key.uid for r in mail_ledger.pending(conn, "mash", 7)] == [2]
    assert mail_ledger.pending(conn, "mash", 8) == []
    assert events(conn).count("mail.moved") == 1


def test_a_record_commits_or_rolls_back_with_the_callers_transaction(
    conn: sqlite3.Connection,
) -> None:
    with pytest.raises(RuntimeError), transaction(conn):
        mail_ledger.record(
            conn,
            key(1),
            content_key(MESSAGE),
            Disposition(DispositionKind.INTAKE),
            ACCOUNT,
            now=NOW,
            actor="t",
        )
        raise RuntimeError("the handler's intake failed after the record was written")
    assert mail_ledger.find(conn, key(1)) is None
    assert events(conn) == []


def test_failures_are_counted_per_message(conn: sqlite3.Connection) -> None:
    assert mail_ledger.note_failure(conn, key(1), "SpreadsheetRefused", now=NOW, actor="t") == 1
    assert mail_ledger.note_failure(conn, key(1), "KeyError", now=NOW, actor="t") == 2
    assert mail_ledger.note_failure(conn, key(2), "KeyError", now=NOW, actor="t") == 1


def test_the_audit_holds_references_never_addresses_or_subjects(
    conn: sqlite3.Connection,
) -> None:
    content = content_key(MESSAGE)
    mail_ledger.begin_pass(conn, "mash", "INBOX", 7, now=NOW, actor="t")
    first = mail_ledger.record(
        conn,
        key(1),
        content,
        Disposition(DispositionKind.QUARANTINED, reason=f"sender {SENDER} is not allowed"),
        ACCOUNT,
        now=NOW,
        actor="t",
    )
    mail_ledger.mark_moved(conn, first, now=NOW, actor="t")
    mail_ledger.record_duplicate(conn, key(2), content, first, now=NOW, actor="t")
    mail_ledger.note_failure(conn, key(3), "KeyError", now=NOW, actor="t")
    logged = conn.execute("SELECT group_concat(data, ' ') FROM audit").fetchone()[0]
    for personal in (SENDER, "police.example.org", SUBJECT, "20260302.1"):
        assert personal not in logged
    assert events(conn) == [
        "mail.mailbox_first_seen",
        "mail.recorded",
        "mail.moved",
        "mail.duplicate",
        "mail.handling_failed",
    ]
    assert audit.verify(conn).ok


def test_a_naive_instant_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mail_ledger.advance(conn, key(1), now=datetime(2026, 3, 2, 7, 30))

"""The outbox's states, what is due when, and the identifiers that find a message again."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from gateway import audit, outbox
from gateway.errors import StateError
from gateway.model import ExceptionKind
from gateway.outbox import MessageState

if TYPE_CHECKING:
    from conftest import SealedOutbox

DOMAIN = "mash.example.org"


def test_a_message_id_is_the_same_on_every_run() -> None:
    first = outbox.message_id_for("OE-7K3MQ-9TXAB", "dsl@school.example.org", DOMAIN)
    assert first == outbox.message_id_for("OE-7K3MQ-9TXAB", "dsl@school.example.org", DOMAIN)
    assert first.startswith("<OE-7K3MQ-9TXAB.") and first.endswith("@mash.example.org>")


def test_a_message_id_carries_no_address() -> None:
    message_id = outbox.message_id_for(
        "OE-7K3MQ-9TXAB", "amelia.hartley@school.example.org", DOMAIN
    )
    assert "amelia" not in message_id and "school" not in message_id


def test_each_recipient_of_a_notification_has_its_own_message_id() -> None:
    dsl = outbox.message_id_for("OE-7K3MQ-9TXAB", "dsl@school.example.org", DOMAIN)
    da_lead = outbox.message_id_for("OE-7K3MQ-9TXAB", "da.lead@school.example.org", DOMAIN)
    other = outbox.message_id_for("OE-11111-22222", "dsl@school.example.org", DOMAIN)
    assert len({dsl, da_lead, other}) == 3


def test_a_contacts_list_reimported_in_capitals_keeps_the_message_id() -> None:
    assert outbox.message_id_for("OE-1", "DSL@School.Example.org", DOMAIN) == (
        outbox.message_id_for("OE-1", "dsl@school.example.org", DOMAIN)
    )


def test_a_return_path_leads_back_to_its_message(sealed_outbox: SealedOutbox) -> None:
    dsl, da_lead = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    assert dsl.return_path != da_lead.return_path
    assert dsl.return_path.startswith("bounces+") and dsl.return_path.endswith("@" + DOMAIN)
    # A bounce (RFC 3464) arrives addressed to the return path, maybe with other capitals.
    found = outbox.find_by_return_path(sealed_outbox.conn, f"<{da_lead.return_path.upper()}>")
    assert found is not None and found.id == da_lead.id
    token = outbox.token_from_return_path(da_lead.return_path.upper(), "bounces", DOMAIN)
    assert token is not None and da_lead.return_path == f"bounces+{token}@{DOMAIN}"


def test_an_address_that_is_not_a_return_path_has_no_token() -> None:
    assert outbox.token_from_return_path("navigator@mash.example.org", "bounces", DOMAIN) is None
    assert (
        outbox.token_from_return_path(f"bounces+{'a' * 24}@other.example", "bounces", DOMAIN)
        is None
    )


def test_storing_a_message_again_keeps_the_first(sealed_outbox: SealedOutbox) -> None:
    (message,) = sealed_outbox.add()
    again = outbox.store_sealed(
        sealed_outbox.conn,
        reference=message.reference,
        contact_role=message.contact_role,
        recipient=message.recipient,
        fingerprint=message.fingerprint,
        message_id=message.message_id,
        return_path=message.return_path,
        due=message.due,
        body=b"sealed a second time after a crash",
        sealed_at=message.sealed_at + timedelta(hours=1),
        actor="test",
    )
    assert again == message.id
    assert outbox.get_message(sealed_outbox.conn, message.id).body == message.body
    assert sealed_outbox.conn.execute("SELECT count(*) FROM message").fetchone()[0] == 1


def test_nothing_is_due_before_nine(sealed_outbox: SealedOutbox) -> None:
    sealed_outbox.add()
    nine = sealed_outbox.due
    assert outbox.due_messages(sealed_outbox.conn, nine - timedelta(seconds=1)) == []
    assert len(outbox.due_messages(sealed_outbox.conn, nine)) == 1


def test_a_failed_message_waits_for_its_next_attempt(sealed_outbox: SealedOutbox) -> None:
    conn, nine = sealed_outbox.conn, sealed_outbox.due
    (message,) = sealed_outbox.add()
    outbox.mark_sending(conn, message.id, at=nine, actor="test")
    outbox.schedule_retry(
        conn,
        message.id,
        attempt=1,
        error="450 busy",
        smtp_code=450,
        next_attempt=nine + timedelta(minutes=1),
        at=nine,
        actor="test",
    )
    assert outbox.due_messages(conn, nine + timedelta(seconds=59)) == []
    (due,) = outbox.due_messages(conn, nine + timedelta(minutes=1))
    assert (due.state, due.attempts, due.last_error) == (MessageState.FAILED, 1, "450 busy")


def test_a_message_left_sending_by_a_crash_is_due_again(sealed_outbox: SealedOutbox) -> None:
    conn, nine = sealed_outbox.conn, sealed_outbox.due
    (message,) = sealed_outbox.add()
    outbox.mark_sending(conn, message.id, at=nine, actor="test")
    (due,) = outbox.due_messages(conn, nine + timedelta(minutes=5))
    assert (due.id, due.state) == (message.id, MessageState.SENDING)


def test_the_notification_is_sent_when_all_its_messages_are(sealed_outbox: SealedOutbox) -> None:
    conn, nine = sealed_outbox.conn, sealed_outbox.due
    dsl, da_lead = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    for message in (dsl, da_lead):
        outbox.mark_sending(conn, message.id, at=nine, actor="test")
    outbox.mark_sent(conn, dsl.id, sent_at=nine, actor="test")
    assert notification_state(sealed_outbox, dsl.reference) == ("sending", None)
    sent = outbox.mark_sent(conn, da_lead.id, sent_at=nine, actor="test")
    assert sent.sent_at == nine
    assert notification_state(sealed_outbox, dsl.reference) == ("sent", None)


def test_a_message_waiting_for_a_retry_shows_on_its_notification(
    sealed_outbox: SealedOutbox,
) -> None:
    conn, nine = sealed_outbox.conn, sealed_outbox.due
    (message,) = sealed_outbox.add()
    outbox.mark_sending(conn, message.id, at=nine, actor="test")
    outbox.schedule_retry(
        conn,
        message.id,
        attempt=1,
        error="450 busy",
        smtp_code=450,
        next_attempt=nine + timedelta(minutes=1),
        at=nine,
        actor="test",
    )
    assert notification_state(sealed_outbox, message.reference) == ("failed", None)


def test_one_message_refused_makes_its_notification_an_exception(
    sealed_outbox: SealedOutbox,
) -> None:
    conn, nine = sealed_outbox.conn, sealed_outbox.due
    dsl, da_lead = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    outbox.mark_sending(conn, dsl.id, at=nine, actor="test")
    outbox.mark_exception(
        conn,
        dsl.id,
        attempt=1,
        kind=ExceptionKind.SEND_FAILED,
        error="550 5.1.1 no such user",
        smtp_code=550,
        at=nine,
        actor="test",
    )
    # The DA Lead is still told; the notification stays an exception for the Navigator.
    outbox.mark_sending(conn, da_lead.id, at=nine, actor="test")
    outbox.mark_sent(conn, da_lead.id, sent_at=nine, actor="test")
    assert notification_state(sealed_outbox, dsl.reference) == ("exception", "send_failed")
    reason = conn.execute(
        "SELECT reason FROM notification WHERE reference = ?", (dsl.reference,)
    ).fetchone()[0]
    assert reason == "550 5.1.1 no such user"


def test_every_step_is_in_the_audit_log_with_references_not_addresses(
    sealed_outbox: SealedOutbox,
) -> None:
    conn, nine = sealed_outbox.conn, sealed_outbox.due
    (message,) = sealed_outbox.add()
    outbox.mark_sending(conn, message.id, at=nine, actor="dispatch")
    outbox.schedule_retry(
        conn,
        message.id,
        attempt=1,
        error=f"450 4.2.1 <{message.recipient}> busy",
        smtp_code=450,
        next_attempt=nine + timedelta(minutes=1),
        at=nine,
        actor="dispatch",
    )
    outbox.mark_sending(conn, message.id, at=nine + timedelta(minutes=1), actor="dispatch")
    outbox.mark_sent(conn, message.id, sent_at=nine + timedelta(minutes=1), actor="dispatch")
    entries = [e for e in audit.entries(conn) if e.event.startswith("message.")]
    assert [(e.event, e.data.get("attempt")) for e in entries] == [
        ("message.sealed", None),
        ("message.sending", 1),
        ("message.retry", 1),
        ("message.sending", 2),
        ("message.sent", 2),
    ]
    assert all(e.data["message_id"] == message.message_id for e in entries)
    assert entries[2].data["smtp_code"] == 450
    logged = json.dumps([dict(e.data) for e in audit.entries(conn)])
    assert message.recipient not in logged and "busy" not in logged
    assert audit.verify(conn).ok


def test_a_transition_from_an_unexpected_state_is_refused(sealed_outbox: SealedOutbox) -> None:
    (message,) = sealed_outbox.add()
    with pytest.raises(StateError, match="is sealed, expected sending"):
        outbox.mark_sent(sealed_outbox.conn, message.id, sent_at=sealed_outbox.due, actor="test")


def test_a_transition_commits_on_its_own(sealed_outbox: SealedOutbox) -> None:
    (message,) = sealed_outbox.add()
    sealed_outbox.conn.execute("BEGIN")
    with pytest.raises(StateError, match="commit on its own"):
        outbox.mark_sending(sealed_outbox.conn, message.id, at=sealed_outbox.due, actor="test")
    sealed_outbox.conn.execute("ROLLBACK")


def notification_state(sealed_outbox: SealedOutbox, reference: str) -> tuple[str, str | None]:
    row = sealed_outbox.conn.execute(
        "SELECT state, exception_kind FROM notification WHERE reference = ?", (reference,)
    ).fetchone()
    return row["state"], row["exception_kind"]

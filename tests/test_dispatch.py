"""Dispatch at 09:00 against a real SMTP sink: sent once, retried in time, or an exception."""

from __future__ import annotations

import email
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING

import pytest
from smtp_sink import SmtpSink

from gateway.config import SmtpSection
from gateway.dispatch import DispatchReport, Transport, dispatch_due
from gateway.errors import StateError
from gateway.outbox import MessageState, due_messages, get_message
from gateway.smtp_transport import SmtpTransport
from gateway.store import open_state

if TYPE_CHECKING:
    from conftest import SealedOutbox

NAVIGATOR = "navigator@mash.example.org"


def connector(section: SmtpSection, opened: list[int] | None = None) -> Callable[[], Transport]:
    def connect() -> Transport:
        if opened is not None:
            opened.append(1)
        return SmtpTransport.open(section)

    return connect


def dispatch(sealed_outbox: SealedOutbox, sink: SmtpSink, now: datetime) -> DispatchReport:
    return dispatch_due(
        sealed_outbox.conn,
        now=now,
        connect=connector(sink.smtp_section()),
        settings=sealed_outbox.settings,
        actor="dispatch",
    )


def states(sealed_outbox: SealedOutbox) -> list[str]:
    rows = sealed_outbox.conn.execute("SELECT state FROM message ORDER BY id").fetchall()
    return [row["state"] for row in rows]


def notification_states(sealed_outbox: SealedOutbox) -> dict[str, tuple[str, str | None]]:
    rows = sealed_outbox.conn.execute("SELECT reference, state, exception_kind FROM notification")
    return {row["reference"]: (row["state"], row["exception_kind"]) for row in rows}


def test_due_messages_leave_sealed_at_nine_over_one_connection(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    first = sealed_outbox.add("CC-1001", recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    second = sealed_outbox.add("CC-1002", urn=100002)
    report = dispatch(sealed_outbox, smtp_sink, sealed_outbox.due)

    assert [(d.reference, d.message_id) for d in report.sent] == [
        (m.reference, m.message_id) for m in (*first, *second)
    ]
    assert report.retrying == () and report.exceptions == ()
    assert smtp_sink.connections == 1
    assert smtp_sink.message_ids() == [m.message_id for m in (*first, *second)]
    for received in smtp_sink.received:
        sealed_outbox.check(received)
    assert states(sealed_outbox) == ["sent", "sent", "sent"]
    assert set(notification_states(sealed_outbox).values()) == {("sent", None)}


def test_the_read_receipt_request_passes_through_untouched(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    (message,) = sealed_outbox.add()
    dispatch(sealed_outbox, smtp_sink, sealed_outbox.due)
    (received,) = smtp_sink.received
    assert received.data == message.body
    headers = email.message_from_bytes(received.data)
    assert headers["Disposition-Notification-To"] == NAVIGATOR
    assert headers["Message-ID"] == message.message_id


def test_nothing_due_opens_no_connection(sealed_outbox: SealedOutbox, smtp_sink: SmtpSink) -> None:
    sealed_outbox.add()
    opened: list[int] = []
    report = dispatch_due(
        sealed_outbox.conn,
        now=sealed_outbox.due - timedelta(minutes=1),
        connect=connector(smtp_sink.smtp_section(), opened),
        settings=sealed_outbox.settings,
        actor="dispatch",
    )
    assert report == DispatchReport()
    assert opened == [] and smtp_sink.connections == 0
    assert states(sealed_outbox) == ["sealed"]


def test_a_4xx_is_retried_and_then_sent_with_the_same_message_id(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    (message,) = sealed_outbox.add()
    nine = sealed_outbox.due
    smtp_sink.fail("DATA", "451 4.3.0 Temporary local problem")

    report = dispatch(sealed_outbox, smtp_sink, nine)
    (retrying,) = report.retrying
    assert retrying.next_attempt == nine + timedelta(seconds=60)
    assert "451 4.3.0 Temporary local problem" in retrying.reason
    assert states(sealed_outbox) == ["failed"]
    assert notification_states(sealed_outbox)[message.reference] == ("failed", None)

    assert dispatch(sealed_outbox, smtp_sink, nine + timedelta(seconds=59)) == DispatchReport()
    report = dispatch(sealed_outbox, smtp_sink, nine + timedelta(seconds=60))
    assert [(d.message_id, d.attempt) for d in report.sent] == [(message.message_id, 2)]
    (received,) = smtp_sink.received
    sealed_outbox.check(received)
    assert smtp_sink.message_ids() == [message.message_id]
    assert notification_states(sealed_outbox)[message.reference] == ("sent", None)


def test_a_5xx_makes_an_exception_naming_the_code_and_text(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    dsl, da_lead = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    smtp_sink.fail("RCPT", "550 5.1.1 User unknown", recipient=dsl.recipient)
    report = dispatch(sealed_outbox, smtp_sink, sealed_outbox.due)

    (exception,) = report.exceptions
    assert exception.message_id == dsl.message_id
    assert "refused the message to the dsl" in exception.reason
    assert "550 5.1.1 User unknown" in exception.reason
    assert [d.message_id for d in report.sent] == [da_lead.message_id]
    assert notification_states(sealed_outbox)[dsl.reference] == ("exception", "send_failed")
    assert "550 5.1.1 User unknown" in get_message(sealed_outbox.conn, dsl.id).last_error
    # Refused for good: it is not tried again.
    assert due_messages(sealed_outbox.conn, sealed_outbox.due + timedelta(hours=1)) == []
    for received in smtp_sink.received:
        sealed_outbox.check(received)


def test_server_down_at_nine_retries_then_sends_when_it_returns(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    messages = [
        *sealed_outbox.add("CC-1001", recipients=(sealed_outbox.dsl, sealed_outbox.da_lead)),
        *sealed_outbox.add("CC-1002", urn=100002),
    ]
    nine = sealed_outbox.due
    smtp_sink.stop()

    report = dispatch(sealed_outbox, smtp_sink, nine)
    assert report.sent == () and report.exceptions == ()
    assert [d.message_id for d in report.retrying] == [m.message_id for m in messages]
    assert {d.next_attempt for d in report.retrying} == {nine + timedelta(seconds=60)}
    assert all("Connection refused" in d.reason for d in report.retrying)
    assert states(sealed_outbox) == ["failed", "failed", "failed"]

    smtp_sink.start()
    report = dispatch(sealed_outbox, smtp_sink, nine + timedelta(seconds=60))
    assert len(report.sent) == 3
    assert smtp_sink.message_ids() == [m.message_id for m in messages]
    for received in smtp_sink.received:
        sealed_outbox.check(received)


def run_until_settled(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> tuple[list[datetime], DispatchReport]:
    """Dispatch at each next attempt while the server stays down; the attempt times and the
    last report."""
    now = sealed_outbox.due
    attempts = []
    while True:
        attempts.append(now)
        report = dispatch(sealed_outbox, smtp_sink, now)
        if not report.retrying:
            return attempts, report
        (retrying,) = report.retrying
        assert retrying.next_attempt is not None
        now = retrying.next_attempt


def test_pauses_between_retries_double_up_to_the_cap(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    sealed_outbox.add()
    smtp_sink.stop()
    attempts, _ = run_until_settled(sealed_outbox, smtp_sink)
    pauses = [int((b - a).total_seconds()) for a, b in pairwise(attempts)]
    assert pauses[:6] == [60, 120, 240, 480, 900, 900]


def test_a_message_not_delivered_within_the_window_becomes_an_exception(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    (message,) = sealed_outbox.add()
    smtp_sink.stop()
    attempts, report = run_until_settled(sealed_outbox, smtp_sink)

    window_end = sealed_outbox.due + timedelta(minutes=120)
    assert attempts[-1] == window_end  # the last try is on the deadline, not past it
    (exception,) = report.exceptions
    assert exception.message_id == message.message_id
    assert exception.attempt == len(attempts)
    assert "not delivered within 120 minutes of its due time 2026-03-02 09:00" in exception.reason
    assert "Connection refused" in exception.reason
    assert notification_states(sealed_outbox)[message.reference] == ("exception", "send_failed")
    assert due_messages(sealed_outbox.conn, window_end + timedelta(days=1)) == []


def test_a_line_lost_mid_batch_leaves_the_rest_for_the_next_attempt(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    first, second = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    nine = sealed_outbox.due
    smtp_sink.hang_up_during_data()

    report = dispatch(sealed_outbox, smtp_sink, nine)
    assert [d.message_id for d in report.retrying] == [first.message_id, second.message_id]
    assert "not tried" in report.retrying[1].reason
    assert get_message(sealed_outbox.conn, second.id).attempts == 1

    report = dispatch(sealed_outbox, smtp_sink, nine + timedelta(seconds=60))
    assert len(report.sent) == 2
    # The server kept the first copy before the line went: the one duplicate, recognisable
    # by its Message-ID.
    assert smtp_sink.message_ids() == [first.message_id, first.message_id, second.message_id]
    for received in smtp_sink.received:
        sealed_outbox.check(received)


def test_a_server_without_starttls_gets_nothing(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    sealed_outbox.add()
    section = smtp_sink.smtp_section(tls="starttls")
    report = dispatch_due(
        sealed_outbox.conn,
        now=sealed_outbox.due,
        connect=connector(section),
        settings=sealed_outbox.settings,
        actor="dispatch",
    )
    (retrying,) = report.retrying
    assert "does not offer STARTTLS" in retrying.reason
    assert smtp_sink.received == []


class BrokenTransport:
    """A transport with a fault nobody foresaw."""

    def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        raise UnicodeEncodeError("ascii", recipient, 0, 1, "not ASCII")

    def close(self) -> None:
        pass


def test_an_unforeseen_error_is_shunted_to_an_exception(sealed_outbox: SealedOutbox) -> None:
    sealed_outbox.add()
    report = dispatch_due(
        sealed_outbox.conn,
        now=sealed_outbox.due,
        connect=BrokenTransport,
        settings=sealed_outbox.settings,
        actor="dispatch",
    )
    (exception,) = report.exceptions
    assert "may or may not have been delivered: UnicodeEncodeError" in exception.reason
    assert states(sealed_outbox) == [MessageState.EXCEPTION]


def test_a_second_dispatch_at_the_same_time_is_refused(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    sealed_outbox.add()
    other = open_state(sealed_outbox.database)

    def connect_while_another_starts() -> Transport:
        # Otherwise each would take the other's in-flight message for a crash's leftover.
        with pytest.raises(StateError, match="another dispatch is running"):
            dispatch_due(
                other,
                now=sealed_outbox.due,
                connect=connector(smtp_sink.smtp_section()),
                settings=sealed_outbox.settings,
                actor="dispatch",
            )
        return SmtpTransport.open(smtp_sink.smtp_section())

    report = dispatch_due(
        sealed_outbox.conn,
        now=sealed_outbox.due,
        connect=connect_while_another_starts,
        settings=sealed_outbox.settings,
        actor="dispatch",
    )
    other.close()
    assert len(report.sent) == 1
    assert len(smtp_sink.received) == 1

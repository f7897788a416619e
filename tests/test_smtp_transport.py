"""SMTP submission against a real aiosmtpd server: TLS, login, replies and dropped lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from smtp_sink import Certificate, SmtpSink

from gateway.errors import ConfigError
from gateway.outbox import OutboxMessage
from gateway.smtp_transport import (
    InsecureConnection,
    LoginRefused,
    PermanentFailure,
    SmtpTransport,
    TemporaryFailure,
)

if TYPE_CHECKING:
    from conftest import SealedOutbox


@pytest.fixture
def message(sealed_outbox: SealedOutbox) -> OutboxMessage:
    (message,) = sealed_outbox.add()
    return message


def send(transport: SmtpTransport, message: OutboxMessage) -> None:
    transport.send(message.return_path, message.recipient, message.body)


def test_a_message_is_handed_over_byte_for_byte(
    smtp_sink: SmtpSink, sealed_outbox: SealedOutbox, message: OutboxMessage
) -> None:
    with SmtpTransport.open(smtp_sink.smtp_section()) as transport:
        send(transport, message)
    (received,) = smtp_sink.received
    assert received.data == message.body
    sealed_outbox.check(received)


def test_a_batch_goes_over_one_connection(smtp_sink: SmtpSink, sealed_outbox: SealedOutbox) -> None:
    messages = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    with SmtpTransport.open(smtp_sink.smtp_section()) as transport:
        for message in messages:
            send(transport, message)
    assert smtp_sink.connections == 1
    assert [r.connection for r in smtp_sink.received] == [1, 1]
    for received in smtp_sink.received:
        sealed_outbox.check(received)


def test_a_4xx_reply_is_a_temporary_failure_with_its_code_and_text(
    smtp_sink: SmtpSink, message: OutboxMessage
) -> None:
    smtp_sink.fail("RCPT", "450 4.2.1 Mailbox busy, try later")
    with (
        SmtpTransport.open(smtp_sink.smtp_section()) as transport,
        pytest.raises(TemporaryFailure) as failure,
    ):
        send(transport, message)
    assert (failure.value.code, failure.value.text) == (450, "4.2.1 Mailbox busy, try later")
    assert "RCPT TO with 450 4.2.1 Mailbox busy" in str(failure.value)
    assert not failure.value.connection_lost
    assert smtp_sink.received == []


def test_a_5xx_reply_is_a_permanent_failure_naming_code_and_text(
    smtp_sink: SmtpSink, message: OutboxMessage
) -> None:
    smtp_sink.fail("DATA", "554 5.7.1 Message refused by policy", recipient=message.recipient)
    with (
        SmtpTransport.open(smtp_sink.smtp_section()) as transport,
        pytest.raises(PermanentFailure) as failure,
    ):
        send(transport, message)
    assert failure.value.code == 554
    assert "DATA with 554 5.7.1 Message refused by policy" in str(failure.value)


def test_after_a_refusal_the_next_message_goes_on_the_same_connection(
    smtp_sink: SmtpSink, sealed_outbox: SealedOutbox
) -> None:
    dsl, da_lead = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    smtp_sink.fail("RCPT", "550 5.1.1 No such user", recipient=dsl.recipient)
    with SmtpTransport.open(smtp_sink.smtp_section()) as transport:
        with pytest.raises(PermanentFailure):
            send(transport, dsl)
        send(transport, da_lead)
    (received,) = smtp_sink.received
    assert received.rcpt_tos == (da_lead.recipient,)
    assert smtp_sink.connections == 1
    sealed_outbox.check(received)


def test_a_refused_connection_is_a_temporary_failure(smtp_sink: SmtpSink) -> None:
    smtp_sink.stop()
    with pytest.raises(TemporaryFailure, match="Connection refused") as failure:
        SmtpTransport.open(smtp_sink.smtp_section())
    assert failure.value.connection_lost


def test_a_connection_closed_between_messages_is_reopened(
    smtp_sink: SmtpSink, sealed_outbox: SealedOutbox
) -> None:
    messages = sealed_outbox.add(recipients=(sealed_outbox.dsl, sealed_outbox.da_lead))
    smtp_sink.hang_up_after_next()
    with SmtpTransport.open(smtp_sink.smtp_section()) as transport:
        for message in messages:
            send(transport, message)
    assert [r.connection for r in smtp_sink.received] == [1, 2]


def test_a_421_reply_is_tried_once_more_on_a_new_connection(
    smtp_sink: SmtpSink, sealed_outbox: SealedOutbox, message: OutboxMessage
) -> None:
    smtp_sink.fail("MAIL", "421 4.3.2 Service shutting down")
    with SmtpTransport.open(smtp_sink.smtp_section()) as transport:
        send(transport, message)
    (received,) = smtp_sink.received
    assert received.connection == 2
    sealed_outbox.check(received)


def test_a_connection_that_keeps_dropping_is_given_up_after_one_reconnect(
    smtp_sink: SmtpSink, message: OutboxMessage
) -> None:
    smtp_sink.fail("MAIL", "421 4.3.2 Service shutting down", times=2)
    with (
        SmtpTransport.open(smtp_sink.smtp_section()) as transport,
        pytest.raises(TemporaryFailure, match="dropped again") as failure,
    ):
        send(transport, message)
    assert failure.value.connection_lost
    assert smtp_sink.connections == 2
    assert smtp_sink.received == []


def test_a_line_lost_while_the_server_takes_the_message_is_not_resent(
    smtp_sink: SmtpSink, message: OutboxMessage
) -> None:
    smtp_sink.hang_up_during_data()
    with (
        SmtpTransport.open(smtp_sink.smtp_section()) as transport,
        pytest.raises(TemporaryFailure, match="while it took the message") as failure,
    ):
        send(transport, message)
    assert failure.value.connection_lost
    assert len(smtp_sink.received) == 1  # the server has it; the client cannot know


def test_starttls_with_a_verified_certificate(
    sink_certificate: Certificate, sealed_outbox: SealedOutbox, message: OutboxMessage
) -> None:
    with (
        SmtpSink(tls="starttls", certificate=sink_certificate) as sink,
        SmtpTransport.open(sink.smtp_section()) as transport,
    ):
        send(transport, message)
    (received,) = sink.received
    assert received.tls
    sealed_outbox.check(received)


def test_a_server_without_starttls_is_refused_and_nothing_is_sent(
    smtp_sink: SmtpSink, sink_certificate: Certificate
) -> None:
    section = smtp_sink.smtp_section(tls="starttls", ca_file=sink_certificate.cert)
    with pytest.raises(InsecureConnection, match="does not offer STARTTLS"):
        SmtpTransport.open(section)
    assert smtp_sink.received == []


def test_a_certificate_that_does_not_verify_is_refused(sink_certificate: Certificate) -> None:
    with SmtpSink(tls="starttls", certificate=sink_certificate) as sink:
        # The system's trust store does not know the sink's self-signed certificate.
        with pytest.raises(InsecureConnection, match="certificate"):
            SmtpTransport.open(sink.smtp_section(ca_file=None))
        assert sink.received == []


def test_implicit_tls(
    sink_certificate: Certificate, sealed_outbox: SealedOutbox, message: OutboxMessage
) -> None:
    with (
        SmtpSink(tls="implicit", certificate=sink_certificate) as sink,
        SmtpTransport.open(sink.smtp_section()) as transport,
    ):
        send(transport, message)
    (received,) = sink.received
    assert received.tls
    sealed_outbox.check(received)


def test_login_with_the_configured_username_and_password(
    sink_certificate: Certificate, sealed_outbox: SealedOutbox, message: OutboxMessage
) -> None:
    with SmtpSink(
        tls="starttls", certificate=sink_certificate, login=("navigator", "s3cret")
    ) as sink:
        with SmtpTransport.open(sink.smtp_section(), password="s3cret") as transport:
            send(transport, message)
        assert sink.logins == ["navigator"]
        sealed_outbox.check(sink.received[0])


def test_a_wrong_password_is_a_refused_login(sink_certificate: Certificate) -> None:
    with (
        SmtpSink(
            tls="starttls", certificate=sink_certificate, login=("navigator", "s3cret")
        ) as sink,
        pytest.raises(LoginRefused, match="535") as failure,
    ):
        SmtpTransport.open(sink.smtp_section(), password="wrong")
    assert failure.value.code == 535


def test_a_login_is_never_sent_in_plaintext(smtp_sink: SmtpSink) -> None:
    with pytest.raises(ConfigError, match="a login needs TLS"):
        SmtpTransport.open(smtp_sink.smtp_section(username="navigator"), password="s3cret")
    assert smtp_sink.connections == 0

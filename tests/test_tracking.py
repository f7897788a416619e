"""What the gateway does about what comes back to the Navigator's mailbox: a notification
that bounced or met an out-of-office reply is resent to the school's deputy DSL, the
Navigator is alerted when a person must act, and replies reach the Navigator decrypted and
sealed again. Real GnuPG, a real state database; the mail as servers and clients write it
(tests/mail_corpus.py)."""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from conftest import CHILD, DISPATCH, SIBLING_ELSEWHERE, SealedOutbox
from invariants import assert_sealed
from mail_corpus import (
    DEPUTY,
    DSL,
    MESSAGE_ID,
    NAVIGATOR,
    REFERENCE,
    SUBJECT,
    crlf,
    exchange_automatic_reply,
    outlook_flattened,
    own_digest,
    postfix_dsn,
    sieve_vacation,
)
from mail_world import World
from pgp_keys import KeyFactory, PgpKey
from smtp_sink import SmtpSink

from gateway import outbox
from gateway.clock import FixedClock
from gateway.config import Config, LoadedConfig, NavigatorSection
from gateway.keyring import Keyring, open_keyring
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey
from gateway.model import ContactRole
from gateway.outbox import MessageState, OutboxMessage
from gateway.pgpmime import OuterHeaders, open_sealed, seal
from gateway.render import subject_for
from gateway.tracking import NEEDS_A_PERSON, OWN_MAIL, TrackingHandler

INCIDENT = "CC/20260301/0412"  # the corpus's reference is this incident at this school
URN = 110231
SENT_AT = datetime(2026, 3, 2, 9, 0, 2, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
REPLY_TEXT = "We will speak to the child this morning. Thank you."


@dataclass
class Mailbox:
    """The Navigator's mailbox as the tracking handler meets it, over a sealed outbox."""

    outbox: SealedOutbox
    handler: TrackingHandler
    sent: OutboxMessage  # the notification to the DSL, sent at 09:00
    uid: int = 0

    def arrives(self, raw: bytes) -> Disposition:
        self.uid += 1
        return self.handler(raw, LedgerKey("navigator", 7, self.uid))

    def messages(self, where: str = "1", *args: object) -> list[OutboxMessage]:
        rows = self.outbox.conn.execute(f"SELECT id FROM message WHERE {where} ORDER BY id", args)
        return [outbox.get_message(self.outbox.conn, row["id"]) for row in rows]

    def to_navigator(self) -> list[EmailMessage]:
        """The gateway's own mail queued to the Navigator, opened with the Navigator's key."""
        return [
            open_sealed(self.outbox.keyring, message.body).inner
            for message in self.messages("recipient = ?", NAVIGATOR)
        ]

    def list_contact(self, role: ContactRole, address: str, fingerprint: str) -> None:
        self.outbox.conn.execute(
            "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
            " VALUES (?, ?, 'Contact', ?, '01234 567890', ?)",
            (URN, role.value, address, fingerprint),
        )


@pytest.fixture
def mailbox(sealed_outbox: SealedOutbox, navigator_key: PgpKey) -> Mailbox:
    """The corpus's notification sealed to the school's DSL and sent; the DSL is listed."""
    (message,) = sealed_outbox.add(INCIDENT, recipients=[("dsl", DSL)], urn=URN)
    assert message.message_id == MESSAGE_ID
    conn = sealed_outbox.conn
    outbox.mark_sending(conn, message.id, at=SENT_AT, actor="test")
    sent = outbox.mark_sent(conn, message.id, sent_at=SENT_AT, actor="test")
    config = LoadedConfig(
        None,
        Config(
            navigator=NavigatorSection(email=NAVIGATOR, fingerprint=navigator_key.fingerprint),
            dispatch=DISPATCH,
        ),
    )
    handler = TrackingHandler(
        conn, config, sealed_outbox.keyring, FixedClock(NOW), "test:navigator", "full"
    )
    box = Mailbox(sealed_outbox, handler, sent)
    box.list_contact(ContactRole.DSL, DSL, message.fingerprint)
    return box


@pytest.fixture
def deputy(mailbox: Mailbox) -> PgpKey:
    """The school's deputy DSL, listed with a key pinned and in the gateway's keyring."""
    key = mailbox.outbox.key_factory.make(DEPUTY)
    key.install_public(mailbox.outbox.keyring)
    mailbox.list_contact(ContactRole.DEPUTY_DSL, DEPUTY, key.fingerprint)
    return key


def _permanent_bounce() -> bytes:
    return postfix_dsn(
        "failed",
        "5.1.1",
        "550 5.1.1 <dsl@fenland-primary.example.org>: Recipient address rejected",
        subject="Undelivered Mail Returned to Sender",
    )


def _assert_sent_to_deputy(mailbox: Mailbox, deputy: PgpKey) -> OutboxMessage:
    (resent,) = mailbox.messages("recipient = ?", DEPUTY)
    assert resent.reference == REFERENCE
    assert resent.kind is outbox.MessageKind.NOTIFICATION
    assert resent.contact_role == "deputy_dsl"
    assert resent.message_id == outbox.message_id_for(REFERENCE, DEPUTY, DISPATCH.domain)
    assert resent.message_id != mailbox.sent.message_id
    assert (resent.state, resent.due) == (MessageState.SEALED, NOW)
    assert resent.fingerprint == deputy.fingerprint
    assert_sealed(
        resent.body,
        recipient_home_or_keyring=mailbox.outbox.recipient_home(deputy),
        navigator_fingerprint=mailbox.outbox.navigator.fingerprint,
        reference=REFERENCE,
        must_contain=[CHILD.display_name],
        must_not_contain=[SIBLING_ELSEWHERE.display_name],
        dates_of_birth=[d for d in (CHILD.dob, SIBLING_ELSEWHERE.dob) if d is not None],
    )
    return resent


# --------------------------------------------------------------------------------------
# Permanent bounces


def test_a_permanent_bounce_makes_the_message_and_its_notification_exceptions(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    disposition = mailbox.arrives(_permanent_bounce())
    bounced = outbox.get_message(mailbox.outbox.conn, mailbox.sent.id)
    assert bounced.state is MessageState.EXCEPTION
    assert "5.1.1" in bounced.last_error
    notification = mailbox.outbox.conn.execute(
        "SELECT state, exception_kind, reason FROM notification WHERE reference = ?",
        (REFERENCE,),
    ).fetchone()
    assert (notification["state"], notification["exception_kind"]) == ("exception", "send_failed")
    assert "5.1.1" in notification["reason"]
    assert disposition.flag == NEEDS_A_PERSON
    events = [row["event"] for row in mailbox.outbox.conn.execute("SELECT event FROM audit")]
    assert "message.bounced" in events


def test_a_permanent_bounce_resends_the_notification_to_the_deputy_dsl(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    mailbox.arrives(_permanent_bounce())
    _assert_sent_to_deputy(mailbox, deputy)


def test_a_permanent_bounce_alerts_the_navigator_with_the_status_and_the_deputy(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    mailbox.arrives(_permanent_bounce())
    (alert,) = mailbox.to_navigator()
    text = alert.get_content()
    assert REFERENCE in text and "5.1.1" in text
    assert "sent now to the school's Deputy DSL" in text


def test_a_bounce_with_no_deputy_holding_a_usable_key_alerts_that_nobody_was_sent_it(
    mailbox: Mailbox,
) -> None:
    mailbox.list_contact(ContactRole.DEPUTY_DSL, DEPUTY, "")  # listed, no key pinned
    mailbox.arrives(_permanent_bounce())
    assert mailbox.messages("recipient = ?", DEPUTY) == []
    (alert,) = mailbox.to_navigator()
    text = " ".join(alert.get_content().split())
    assert "Nobody else at the school could be sent it" in text
    assert "no pinned key" in text


def test_the_same_bounce_twice_resends_and_alerts_once(mailbox: Mailbox, deputy: PgpKey) -> None:
    mailbox.arrives(_permanent_bounce())
    mailbox.arrives(_permanent_bounce())
    assert len(mailbox.messages("recipient = ?", DEPUTY)) == 1
    assert len(mailbox.to_navigator()) == 1


def test_a_delayed_bounce_is_noted_and_nothing_is_resent(mailbox: Mailbox, deputy: PgpKey) -> None:
    delayed = postfix_dsn(
        "delayed",
        "4.4.1",
        "connect to mx.fenland-primary.example.org[198.51.100.25]:25: Connection timed out",
        subject="Delayed Mail (still being retried)",
    )
    disposition = mailbox.arrives(delayed)
    assert disposition.flag is None
    assert [m.id for m in mailbox.messages()] == [mailbox.sent.id]
    assert outbox.get_message(mailbox.outbox.conn, mailbox.sent.id).state is MessageState.SENT
    kinds = [row[0] for row in mailbox.outbox.conn.execute("SELECT kind FROM tracking_event")]
    assert kinds == ["bounce_delayed"]


# --------------------------------------------------------------------------------------
# Out-of-office replies


def test_an_out_of_office_reply_resends_the_notification_to_the_deputy_dsl(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    disposition = mailbox.arrives(sieve_vacation())
    _assert_sent_to_deputy(mailbox, deputy)
    assert outbox.get_message(mailbox.outbox.conn, mailbox.sent.id).state is MessageState.SENT
    assert mailbox.to_navigator() == []  # the flagged reply is the note
    assert disposition.flag == NEEDS_A_PERSON


def test_an_out_of_office_reply_with_nobody_else_to_send_it_to_alerts_the_navigator(
    mailbox: Mailbox,
) -> None:
    mailbox.arrives(sieve_vacation())
    assert [m.id for m in mailbox.messages("kind = 'notification'")] == [mailbox.sent.id]
    (alert,) = mailbox.to_navigator()
    text = " ".join(alert.get_content().split())
    assert "out-of-office" in text and REFERENCE in text
    assert "Nobody else at the school could be sent it" in text


def test_a_repeated_out_of_office_reply_does_not_alert_after_the_deputy_was_sent_it(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    mailbox.arrives(sieve_vacation())
    mailbox.arrives(sieve_vacation())
    assert len(mailbox.messages("recipient = ?", DEPUTY)) == 1
    assert mailbox.to_navigator() == []


# --------------------------------------------------------------------------------------
# Replies


def _encrypted_reply(dsl: PgpKey, navigator: PgpKey, home: Keyring) -> bytes:
    """The DSL's reply, encrypted by their own client to the Navigator and signed."""
    inner = EmailMessage()
    inner["Subject"] = f"Re: {SUBJECT}"
    inner.set_content(REPLY_TEXT + "\n")
    return seal(
        home,
        inner,
        recipient=navigator.fingerprint,
        signer=dsl.fingerprint,
        passphrase=dsl.passphrase,
        headers=OuterHeaders(
            from_addr=DSL,
            to_addr=NAVIGATOR,
            subject=f"RE: {SUBJECT}",
            date=datetime(2026, 3, 2, 10, 45, tzinfo=UTC),
            message_id="<reply.1@fenland-primary.example.org>",
            extra=(("In-Reply-To", MESSAGE_ID),),
        ),
    )


@pytest.mark.parametrize(
    "form", [lambda sealed: sealed, outlook_flattened], ids=["pgp_mime", "outlook_mangled"]
)
def test_an_encrypted_reply_is_forwarded_decrypted_to_the_navigator_sealed(
    mailbox: Mailbox,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
    form: Callable[[bytes], bytes],
) -> None:
    dsl = mailbox.outbox.key_factory.make(DSL)
    reply = form(_encrypted_reply(dsl, navigator_key, recipient_home(dsl)))
    disposition = mailbox.arrives(reply)
    assert disposition.flag == NEEDS_A_PERSON  # the original stays, flagged
    (forward,) = mailbox.messages("kind = 'forward'")
    assert forward.recipient == NAVIGATOR
    inner = assert_sealed(
        forward.body,
        recipient_home_or_keyring=mailbox.outbox.keyring,
        navigator_fingerprint=navigator_key.fingerprint,
        reference=forward.reference,
        must_contain=[REPLY_TEXT, REFERENCE, "Example Primary", f"URN {URN}"],
        must_not_contain=[],
    )
    body = inner.get_body(("plain",))
    assert body is not None
    text = " ".join(body.get_content().split())
    assert f"valid signature by key {dsl.fingerprint}" in text
    assert REPLY_TEXT in text
    outer = BytesParser(policy=email.policy.default).parsebytes(forward.body)
    assert outer["Auto-Submitted"] == "auto-generated"


def test_a_plain_reply_is_forwarded_to_the_navigator_sealed(mailbox: Mailbox) -> None:
    reply = crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: Re: {SUBJECT}
        In-Reply-To: {MESSAGE_ID}
        Message-ID: <plain.1@fenland-primary.example.org>
        Date: Mon, 2 Mar 2026 09:40:00 +0000

        {REPLY_TEXT}
        """)
    mailbox.arrives(reply)
    (forward,) = mailbox.to_navigator()
    text = " ".join(forward.get_content().split())
    assert REPLY_TEXT in text and REFERENCE in text and "not encrypted" in text


def test_a_reply_the_navigators_key_cannot_open_is_still_passed_on(
    mailbox: Mailbox, recipient_home: Callable[[PgpKey], Keyring]
) -> None:
    dsl = mailbox.outbox.key_factory.make(DSL)
    stranger = mailbox.outbox.key_factory.make("someone@elsewhere.example.org")
    home = recipient_home(dsl)
    stranger.install_public(home)
    reply = _encrypted_reply(dsl, stranger, home)  # encrypted to the wrong key
    mailbox.arrives(reply)
    (forward,) = mailbox.to_navigator()
    assert "could not be opened with the Navigator's key" in forward.get_content()


# --------------------------------------------------------------------------------------
# Never answered


def test_the_gateways_own_mail_is_never_answered_and_stays_for_the_navigator(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    disposition = mailbox.arrives(own_digest())
    assert (disposition.kind, disposition.flag) == (DispositionKind.IGNORED, OWN_MAIL)
    assert [m.id for m in mailbox.messages()] == [mailbox.sent.id]


def test_unmatched_mail_is_flagged_for_the_navigator_and_not_forwarded(mailbox: Mailbox) -> None:
    stray = crlf(f"""
        From: parent@example.net
        To: {NAVIGATOR}
        Subject: A question
        Message-ID: <stray.1@example.net>
        Date: Mon, 2 Mar 2026 09:40:00 +0000

        Hello.
        """)
    disposition = mailbox.arrives(stray)
    assert disposition.flag == NEEDS_A_PERSON
    assert [m.id for m in mailbox.messages()] == [mailbox.sent.id]


# --------------------------------------------------------------------------------------
# End to end: the sample day sent at 09:00, then what comes back polled from a real Dovecot


AT_NINE = "2026-03-02T09:00:00+00:00"
LATER = "2026-03-02T09:30:00+00:00"
LATER_STILL = "2026-03-02T09:40:00+00:00"


@dataclass(frozen=True)
class Sent:
    """A notification the sample day sent to a school's DSL, whose deputy has not had it."""

    reference: str
    message_id: str
    return_path: str
    dsl: str
    deputy: str


def _sent_day(world: World) -> Sent:
    world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
    world.run("poll")
    world.run("dispatch", now=AT_NINE)
    with world.state() as conn:
        row = conn.execute(
            "SELECT m.reference, m.message_id, m.return_path, m.recipient, c.email AS deputy"
            " FROM message m JOIN notification n ON n.reference = m.reference"
            " JOIN contact c ON c.urn = n.urn AND c.role = 'deputy_dsl' AND c.fingerprint != ''"
            " WHERE m.kind = 'notification' AND m.contact_role = 'dsl' AND m.state = 'sent'"
            " AND NOT EXISTS (SELECT 1 FROM message o WHERE o.reference = m.reference"
            " AND lower(o.recipient) = lower(c.email)) ORDER BY m.id LIMIT 1"
        ).fetchone()
    assert row is not None, "the sample day has no school with a deputy DSL"
    return Sent(row[0], row[1], row[2], row[3], row[4])


def _dsn(sent: Sent) -> bytes:
    """A Postfix-style RFC 3464 report, returned to the message's own return path."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {sent.return_path}
        From: MAILER-DAEMON@mail.mash.example.org (Mail Delivery System)
        To: {sent.return_path}
        Subject: Undelivered Mail Returned to Sender
        Date: Mon, 2 Mar 2026 09:00:04 +0000
        Auto-Submitted: auto-replied
        Message-Id: <bounce.1@mail.mash.example.org>
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="b"

        --b
        Content-Type: text/plain

        Your message could not be delivered.

        --b
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mail.mash.example.org

        Final-Recipient: rfc822; {sent.dsl}
        Action: failed
        Status: 5.1.1
        Diagnostic-Code: smtp; 550 5.1.1 Recipient address rejected

        --b
        Content-Type: text/rfc822-headers

        From: {NAVIGATOR}
        To: {sent.dsl}
        Subject: {subject_for(sent.reference)}
        Message-ID: {sent.message_id}

        --b--
        """)


def _assert_deputy_was_sent_it(
    world: World, sent: Sent, sink: SmtpSink, deputy_home: Keyring, navigator: PgpKey
) -> None:
    world.run("dispatch", now=LATER_STILL)
    (received,) = [r for r in sink.received if r.rcpt_tos == (sent.deputy,)]
    assert_sealed(
        received.data,
        recipient_home_or_keyring=deputy_home,
        navigator_fingerprint=navigator.fingerprint,
        reference=sent.reference,
        must_contain=[],
        must_not_contain=[],
    )


def test_end_to_end_a_permanent_bounce_reaches_the_deputy_and_alerts_the_navigator(
    world: World,
    smtp_sink: SmtpSink,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    sent = _sent_day(world)
    world.dovecot.deliver(world.navigator, _dsn(sent))
    world.run("poll", now=LATER)
    with world.state() as conn:
        state = conn.execute(
            "SELECT state FROM message WHERE message_id = ?", (sent.message_id,)
        ).fetchone()
    assert state[0] == "exception"
    deputy_home = recipient_home(key_factory.make(sent.deputy))
    _assert_deputy_was_sent_it(world, sent, smtp_sink, deputy_home, navigator_key)
    (alert,) = [r for r in smtp_sink.received if r.rcpt_tos == (NAVIGATOR,)]
    with open_keyring(world.gnupg_home) as keyring:
        text = " ".join(open_sealed(keyring, alert.data).inner.get_content().split())
    assert sent.reference in text and "5.1.1" in text and "Deputy DSL" in text
    (returned,) = world.dovecot.messages(world.navigator).values()
    assert NEEDS_A_PERSON in returned.flags


def test_end_to_end_an_out_of_office_reply_reaches_the_deputy(
    world: World,
    smtp_sink: SmtpSink,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    sent = _sent_day(world)
    away = crlf(f"""
        From: {sent.dsl}
        To: {NAVIGATOR}
        Subject: Automatic reply: {subject_for(sent.reference)}
        In-Reply-To: {sent.message_id}
        Date: Mon, 2 Mar 2026 09:00:15 +0000
        Message-ID: <away.1@school.example.org>
        X-Auto-Response-Suppress: All
        Auto-Submitted: auto-generated

        I am out of the office until 9 March.
        """)
    world.dovecot.deliver(world.navigator, away)
    world.run("poll", now=LATER)
    deputy_home = recipient_home(key_factory.make(sent.deputy))
    _assert_deputy_was_sent_it(world, sent, smtp_sink, deputy_home, navigator_key)
    assert [r for r in smtp_sink.received if r.rcpt_tos == (NAVIGATOR,)] == []


def test_end_to_end_an_encrypted_reply_is_forwarded_to_the_navigator_decrypted(
    world: World,
    smtp_sink: SmtpSink,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    sent = _sent_day(world)
    dsl = key_factory.make(sent.dsl)
    home = recipient_home(dsl)
    (notification,) = [r for r in smtp_sink.received if r.rcpt_tos == (sent.dsl,)]
    assert open_sealed(home, notification.data).signature_valid  # the DSL has read it
    inner = EmailMessage()
    inner.set_content(REPLY_TEXT + "\n")
    reply = seal(
        home,
        inner,
        recipient=navigator_key.fingerprint,
        signer=dsl.fingerprint,
        passphrase=dsl.passphrase,
        headers=OuterHeaders(
            from_addr=sent.dsl,
            to_addr=NAVIGATOR,
            subject=f"Re: {subject_for(sent.reference)}",
            date=datetime(2026, 3, 2, 9, 25, tzinfo=UTC),
            message_id="<reply.e2e@school.example.org>",
            extra=(("In-Reply-To", sent.message_id),),
        ),
    )
    world.dovecot.deliver(world.navigator, reply)
    world.run("poll", now=LATER)
    world.run("dispatch", now=LATER_STILL)
    (forward,) = [r for r in smtp_sink.received if r.rcpt_tos == (NAVIGATOR,)]
    opened = assert_sealed(
        forward.data,
        recipient_home_or_keyring=world.gnupg_home,
        navigator_fingerprint=navigator_key.fingerprint,
        reference="GW-",
        must_contain=[REPLY_TEXT, sent.reference],
        must_not_contain=[],
    )
    assert opened["Subject"] == f"A reply about {sent.reference}"
    (original,) = world.dovecot.messages(world.navigator).values()
    assert NEEDS_A_PERSON in original.flags


def test_an_exchange_automatic_reply_known_by_its_subject_and_sender_reaches_the_deputy(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    mailbox.arrives(exchange_automatic_reply())  # no In-Reply-To: the subject and the From
    _assert_sent_to_deputy(mailbox, deputy)


def test_an_automatic_reply_is_never_answered_to_its_sender(
    mailbox: Mailbox, deputy: PgpKey
) -> None:
    mailbox.arrives(sieve_vacation())
    assert [m.id for m in mailbox.messages("recipient = ?", DSL)] == [mailbox.sent.id]
    assert {m.recipient for m in mailbox.messages()} == {DSL, DEPUTY}

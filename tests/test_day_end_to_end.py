"""The whole day through real servers: a police mail lands in the MASH inbox (Dovecot), is
taken in; at 09:00 the notifications leave by SMTP and are delivered into the DSLs' own
Dovecot mailboxes; a DSL's mail program reads one there, decrypts it, and sends a read receipt
and an encrypted reply to the Navigator's mailbox; both are recorded and the reply reaches the
Navigator decrypted and sealed again."""

from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from dovecot import MailUser
from invariants import assert_sealed
from pgp_keys import KeyFactory, PgpKey
from test_poll import World, _read_receipt, world  # noqa: F401  (the fixture)

from gateway.keyring import Keyring
from gateway.pgpmime import OuterHeaders, open_sealed, seal

AT_NINE = "2026-03-02T09:00:00+00:00"
RECEIPTS = "2026-03-02T09:20:00+00:00"
FORWARDED = "2026-03-02T09:21:00+00:00"
REPLY_TEXT = "Thank you. Recorded on the chronology; her class teacher will check in today."


def test_the_day_from_the_police_mail_to_the_dsls_reply(
    world: World,  # noqa: F811
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
    world.run("poll")
    world.run("dispatch", now=AT_NINE)
    with world.state() as conn:
        to_schools = {
            row["recipient"]
            for row in conn.execute("SELECT recipient FROM message WHERE kind = 'notification'")
        }
    notifications = [r for r in world.sink.received if r.rcpt_tos[0] in to_schools]
    assert notifications

    # The schools' mail servers deliver each message into its recipient's mailbox.
    mailboxes: dict[str, MailUser] = {}
    for received in notifications:
        (address,) = received.rcpt_tos
        user = mailboxes.setdefault(address, world.dovecot.new_user("dsl"))
        world.dovecot.deliver(user, received.data)

    # One DSL's mail program: fetch, decrypt with their own key, check it is the Navigator's.
    address, user = next(iter(mailboxes.items()))
    with world.dovecot.client(user) as client:
        client.select_folder("INBOX")
        uid = client.search()[0]
        raw = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    dsl = key_factory.make(address)
    opened = open_sealed(recipient_home(dsl), raw)
    assert opened.signature_valid and opened.signer_fingerprint == navigator_key.fingerprint
    message_id = _header(raw, b"Message-ID")
    reference = _header(raw, b"Subject").split()[-1]

    # It answers: a read receipt, then a reply encrypted to the Navigator and signed.
    world.dovecot.deliver(world.navigator, _read_receipt(message_id))
    reply = EmailMessage()
    reply.set_content(REPLY_TEXT + "\n")
    world.dovecot.deliver(
        world.navigator,
        seal(
            recipient_home(dsl),
            reply,
            recipient=navigator_key.fingerprint,
            signer=dsl.fingerprint,
            passphrase=None,
            headers=OuterHeaders(
                from_addr=address,
                to_addr=navigator_key.email,
                subject=f"Re: Secure notification {reference}",
                date=datetime(2026, 3, 2, 9, 15, tzinfo=UTC),
                message_id="<reply.day@school.example.org>",
                extra=(("In-Reply-To", message_id),),
            ),
        ),
    )
    polled = world.run("poll", now=RECEIPTS)
    assert "navigator: 2 handled" in polled.output
    with world.state() as conn:
        events = {
            row["kind"]: row["reference"]
            for row in conn.execute("SELECT kind, reference FROM tracking_event")
        }
    assert events == {"read_receipt": reference, "reply": reference}

    world.run("dispatch", now=FORWARDED)
    (forward,) = [r for r in world.sink.received if r.rcpt_tos == (navigator_key.email,)]
    assert_sealed(
        forward.data,
        recipient_home_or_keyring=world.gnupg_home,
        navigator_fingerprint=navigator_key.fingerprint,
        reference="GW-",
        must_contain=[REPLY_TEXT, reference],
        must_not_contain=[],
    )


def _header(raw: bytes, name: bytes) -> str:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii")
    raise AssertionError(f"no {name!r} header")

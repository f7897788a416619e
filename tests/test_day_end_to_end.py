"""The whole day through real servers: a police mail lands in the MASH inbox (Dovecot) and is
picked up by IDLE; at 09:00 the notifications leave by SMTP and are delivered into the DSLs' own
Dovecot mailboxes; a DSL's mail program reads one there, decrypts it, and sends a read receipt
and an encrypted reply to the Navigator's mailbox; both are recorded and the reply reaches the
Navigator decrypted and sealed again."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from dovecot import MailUser
from invariants import assert_sealed
from mail_world import World, read_receipt
from pgp_keys import KeyFactory, PgpKey

from gateway.clock import FixedClock
from gateway.config import load_config
from gateway.imap_client import connect
from gateway.keyring import Keyring, open_keyring
from gateway.mail_intake import PoliceMailHandler
from gateway.mailbox_watch import watch_mailbox
from gateway.pgpmime import OuterHeaders, open_sealed, seal
from gateway.ruleset import load_rules
from gateway.store import open_state

INTAKE_AT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday morning, before 09:00
AT_NINE = "2026-03-02T09:00:00+00:00"
RECEIPTS = "2026-03-02T09:20:00+00:00"
FORWARDED = "2026-03-02T09:21:00+00:00"
REPLY_TEXT = "Thank you. Recorded on the chronology; her class teacher will check in today."


def test_the_day_from_the_police_mail_to_the_dsls_reply(
    world: World,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    _picked_up_by_idle(world, world.police_mail(world.workbook.read_bytes()))
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
    world.dovecot.deliver(world.navigator, read_receipt(message_id))
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


def _picked_up_by_idle(day: World, police_mail: bytes) -> None:
    """The MASH inbox watched as the service watches it (a pass, then IDLE), the police mail
    delivered while it waits, and the watcher stopped once the intake is recorded."""
    config = load_config(day.config)
    assert config.config.mailboxes is not None and config.config.mailboxes.mash is not None
    account = config.config.mailboxes.mash
    stop = threading.Event()

    def watch() -> None:  # its own connection, as each of the service's watchers has
        conn = open_state(config.database)
        try:
            with open_keyring(config.config.gnupg.home) as keyring:
                clock = FixedClock(INTAKE_AT)
                rules = load_rules(config.rules_dir)
                watch_mailbox(
                    conn,
                    connect,
                    account,
                    mailbox="mash",
                    handle=PoliceMailHandler(conn, config, rules, keyring, clock, "test"),
                    clock=clock,
                    actor="test",
                    stop=stop,
                )
        finally:
            conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        day.dovecot.deliver(day.mash, police_mail)
        deadline = time.monotonic() + 30
        with day.state() as conn:
            while not conn.execute("SELECT COUNT(*) FROM intake").fetchone()[0]:
                assert time.monotonic() < deadline, "the watcher did not take the mail in"
                time.sleep(0.05)
    finally:
        stop.set()
        watcher.join()


def _header(raw: bytes, name: bytes) -> str:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii")
    raise AssertionError(f"no {name!r} header")

"""Signed commands by mail, through the real mail path: the Navigator's mail lands in the
Navigator's mailbox (Dovecot on loopback), `encompass-gateway poll` takes it, the commands
act only when the mail is signed by a pinned command-signer key (real GnuPG keys), and the
answer leaves by SMTP (the aiosmtpd sink), encrypted to the signer, to be opened here with
the Navigator's own GnuPG home. The morning's state is tests/navigator_world.py's."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import NAVIGATOR_EMAIL, until
from dovecot import Dovecot, MailUser
from invariants import assert_sealed
from mail_corpus import outlook_flattened
from navigator_world import (
    AFTER_NINE,
    AVA,
    BEFORE_NINE,
    ELM_DSL,
    FINN,
    FINN_NOTIFICATION,
    NINE,
    OAK,
    OAK_DSL,
    World,
    make_world,
)
from pgp_keys import KeyFactory, PgpKey
from police_mail_corpus import content, mail, signed
from smtp_sink import Received, SmtpSink

from gateway.cli import cli
from gateway.clock import SystemClock
from gateway.command_mail import unflowed
from gateway.health import check
from gateway.keyring import Keyring
from gateway.notifications import reference_code
from gateway.pgpmime import OpeningError, OuterHeaders, open_sealed, seal
from gateway.ruleset import load_rules
from gateway.service import Service

SUBJECT = "Re: Gateway digest GW-0123456789"
LOOP = b"\r\nX-Encompass-Loop: mash.example.org\r\n"


@dataclass
class Desk:
    """The Navigator at their desk: their own GnuPG home (their command-signer key, the
    gateway's Navigator public key), writing to the Navigator's mailbox the gateway polls."""

    world: World
    dovecot: Dovecot
    mailbox: MailUser
    me: PgpKey  # the Navigator's own command-signer key
    spare: PgpKey  # a second pinned command signer (another Navigator's)
    expired: PgpKey  # pinned, and expired since it signed
    navigator: PgpKey  # the gateway's Navigator key: signs what the gateway sends
    home: Callable[[PgpKey], Keyring]  # a person's own GnuPG home holding that key
    _sent_before: int = 0
    _count: int = field(default=0)

    def commands(
        self, text: str, *, key: PgpKey | None = None, at: datetime | None = None, **headers: str
    ) -> bytes:
        """A mail From the Navigator with `text`, PGP/MIME signed by `key` (theirs by default)."""
        key = key or self.me
        entity = signed(content(text=text), keyring=self.home(key), signer=key.fingerprint, at=at)
        return self.mail(entity, **headers)

    def unsigned(self, text: str) -> bytes:
        return self.mail(content(text=text))

    def encrypted_commands(self, text: str) -> bytes:
        """Signed and encrypted to the gateway's Navigator key in one operation (RFC 3156 §6.2)."""
        self._count += 1
        return seal(
            self.home(self.me),
            content(text=text),
            recipient=self.navigator.fingerprint,
            signer=self.me.fingerprint,
            passphrase=None,
            headers=OuterHeaders(
                from_addr=NAVIGATOR_EMAIL,
                to_addr=NAVIGATOR_EMAIL,
                subject=SUBJECT,
                date=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
                message_id=f"<command{self._count}@mash.example.org>",
            ),
        )

    def mail(self, body: EmailMessage | bytes, **headers: str) -> bytes:
        self._count += 1
        return mail(
            body,
            from_=headers.pop("from_", NAVIGATOR_EMAIL),
            to=NAVIGATOR_EMAIL,
            subject=SUBJECT,
            message_id=headers.pop("message_id", f"<command{self._count}@mash.example.org>"),
            headers=list(headers.items()),
        )

    def send(self, raw: bytes, *, now: datetime = BEFORE_NINE) -> Result:
        """Deliver `raw` to the Navigator's mailbox and run `encompass-gateway poll`."""
        self.dovecot.deliver(self.mailbox, raw)
        result = CliRunner().invoke(
            cli, ["--config", str(self.world.config.source), "--now", now.isoformat(), "poll"]
        )
        assert result.exit_code == 0, result.output
        return result

    def answers(self, now: datetime = BEFORE_NINE) -> list[Received]:
        """Dispatch, and what reached the Navigator's address since the last look."""
        self.world.dispatch(now)
        new = self.world.sink.received[self._sent_before :]
        self._sent_before = len(self.world.sink.received)
        return [r for r in new if r.rcpt_tos == (NAVIGATOR_EMAIL,)]

    def answer(self, now: datetime = BEFORE_NINE, *, reader: PgpKey | None = None) -> str:
        """The one answer sent, opened in `reader`'s home (the Navigator's own by default):
        the gateway's own automatic mail, signed by the gateway's Navigator key."""
        (received,) = self.answers(now)
        outer = received.data.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nAuto-Submitted: auto-replied\r\n" in outer
        assert LOOP in outer
        assert b"Disposition-Notification-To" not in outer
        opened = open_sealed(self.home(reader or self.me), received.data)
        assert opened.signature_valid
        assert opened.signer_fingerprint == self.navigator.fingerprint
        return " ".join(opened.inner.get_content().split())

    def audited(self, prefix: str) -> list[tuple[str, dict[str, object]]]:
        return [
            (row["event"], json.loads(row["data"]))
            for row in self.world.conn.execute(
                "SELECT event, data FROM audit WHERE event LIKE ? ORDER BY seq", (f"{prefix}%",)
            )
        ]

    def acted_on_nothing(self) -> bool:
        conn = self.world.conn
        resolutions = conn.execute("SELECT COUNT(*) FROM resolution").fetchone()[0]
        return resolutions == 0 and self.audited("command.") == []


@pytest.fixture
def desk_factory(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
    dovecot: Dovecot,
    recipient_home: Callable[[PgpKey], Keyring],
) -> Iterator[Callable[..., Desk]]:
    worlds: list[World] = []
    homes: dict[str, Keyring] = {}

    def home(key: PgpKey) -> Keyring:
        if key.fingerprint not in homes:
            homes[key.fingerprint] = recipient_home(key)
        return homes[key.fingerprint]

    def make(
        *, approval: bool = False, signers: tuple[str, ...] = ("me", "spare", "expired")
    ) -> Desk:
        me = key_factory.make(NAVIGATOR_EMAIL, name="Education Navigator (own key)", serial=1)
        spare = key_factory.make("deputy.navigator@mash.example.org")
        expired = key_factory.make(
            NAVIGATOR_EMAIL, name="Old key", made_on=date(2020, 1, 1), expires=date(2021, 1, 1)
        )
        keys = {"me": me, "spare": spare, "expired": expired, "gateway": navigator_key}
        mailbox = dovecot.new_user("navigator")
        folder = tmp_path / f"world{len(worlds)}"
        folder.mkdir()
        world = make_world(
            folder,
            key_factory=key_factory,
            navigator_key=navigator_key,
            gnupg_home=gnupg_home,
            sink=smtp_sink,
            approval=approval,
            command_signers=[keys[name] for name in signers],
            mailbox=dovecot.imap_section(mailbox),
        )
        worlds.append(world)
        return Desk(world, dovecot, mailbox, me, spare, expired, navigator_key, home)

    yield make
    for world in worlds:
        world.conn.close()


@pytest.fixture
def desk(desk_factory: Callable[..., Desk]) -> Desk:
    return desk_factory()


# --------------------------------------------------------------------------------------
# Acted on and answered


def test_a_signed_command_is_acted_on_and_answered_encrypted_to_its_signer(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    desk.send(desk.commands(f"NOTE C{ava} the school says she moved in January"))
    text = desk.answer()
    assert f"Line 1: DONE NOTE C{ava}" in text
    (signer,) = desk.world.conn.execute("SELECT signer FROM resolution").fetchone()
    assert signer == desk.me.fingerprint
    ((event, data),) = desk.audited("command_mail.")
    assert event == "command_mail.accepted"
    assert (data["signer"], data["reason"], data["commands"]) == (
        desk.me.fingerprint,
        "acted_on",
        1,
    )
    assert len(str(data["message_id_sha256"])) == 64
    assert [e for e, d in desk.audited("command.")] == ["command.note"]
    assert desk.dovecot.messages(desk.mailbox) == {}
    assert len(desk.dovecot.messages(desk.mailbox, "Processed")) == 1


def test_the_answer_is_encrypted_to_the_signer_alone(desk: Desk) -> None:
    desk.send(desk.commands(f"NOTE B{desk.world.intake_id} a clean file"))
    (received,) = desk.answers()
    # Neither the gateway's own key nor another pinned signer can open it.
    for other in (desk.world.keyring, desk.home(desk.spare)):
        with pytest.raises(OpeningError):
            open_sealed(other, received.data)
    outer = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nIn-Reply-To: <command1@mash.example.org>\r\n" in outer
    assert b"a clean file" not in received.data


def test_route_by_signed_mail_after_nine_is_sealed_and_sent_at_once(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    desk.send(desk.commands(f"ROUTE C{ava} {OAK}"), now=AFTER_NINE)
    desk.world.dispatch(AFTER_NINE)
    oak = reference_code("CC-1001", OAK)
    (notification,) = [r for r in desk.world.sink.received if r.rcpt_tos == (OAK_DSL,)]
    assert_sealed(
        notification.data,
        recipient_home_or_keyring=desk.home(desk.world.keys[OAK_DSL]),
        navigator_fingerprint=desk.navigator.fingerprint,
        reference=oak,
        must_contain=[AVA.display_name],
        must_not_contain=[FINN.display_name],
        dates_of_birth=[AVA.dob] if AVA.dob else [],
    )
    text = desk.answer(AFTER_NINE)
    assert f"Line 1: DONE ROUTE C{ava} {OAK}" in text and oak in text
    (route,) = desk.audited("command.route")
    assert route[1]["signer"] == desk.me.fingerprint


def test_called_withhold_and_note_by_signed_mail_are_carried_out_line_by_line(
    desk: Desk,
) -> None:
    cal = desk.world.decision_id("CC-1002")
    desk.send(
        desk.commands(
            f"CALLED C{cal} spoke to the DSL at 08:10\n"
            f"WITHHOLD {FINN_NOTIFICATION} family moved out of the area\n"
            f"NOTE B{desk.world.intake_id} checked with the desk\n"
        )
    )
    text = desk.answer()
    assert f"Line 1: DONE CALLED C{cal}" in text
    assert f"Line 2: DONE WITHHOLD {FINN_NOTIFICATION}" in text
    assert f"Line 3: DONE NOTE B{desk.world.intake_id}" in text
    assert [event for event, _ in desk.audited("command.")] == [
        "command.called",
        "command.withhold",
        "command.note",
    ]
    assert desk.world.dispatch(NINE) == 0  # Finn's notification was withheld


def test_resend_by_signed_mail_sends_the_notification_again(desk: Desk) -> None:
    desk.world.dispatch(NINE)
    before = [r for r in desk.world.sink.received if r.rcpt_tos == (ELM_DSL,)]
    desk.send(desk.commands(f"RESEND {FINN_NOTIFICATION}"), now=AFTER_NINE)
    assert f"Line 1: DONE RESEND {FINN_NOTIFICATION}" in desk.answer(AFTER_NINE)
    after = [r for r in desk.world.sink.received if r.rcpt_tos == (ELM_DSL,)]
    assert len(after) == len(before) + 1


def test_withdraw_by_signed_mail_sends_the_school_a_withdrawal_notice(desk: Desk) -> None:
    desk.world.dispatch(NINE)
    desk.send(desk.commands(f"WITHDRAW {FINN_NOTIFICATION}"), now=AFTER_NINE)
    text = desk.answer(AFTER_NINE)
    assert f"Line 1: DONE WITHDRAW {FINN_NOTIFICATION}" in text
    assert f"withdrawal notice {FINN_NOTIFICATION}-2" in text
    (notice,) = [
        r
        for r in desk.world.sink.received
        if r.rcpt_tos == (ELM_DSL,) and f"{FINN_NOTIFICATION}-2".encode() in r.data
    ]
    assert_sealed(
        notice.data,
        recipient_home_or_keyring=desk.home(desk.world.keys[ELM_DSL]),
        navigator_fingerprint=desk.navigator.fingerprint,
        reference=f"{FINN_NOTIFICATION}-2",
        must_contain=[FINN.display_name],
        must_not_contain=[AVA.display_name],
    )


def test_approve_by_signed_mail_lets_the_waiting_notifications_go(
    desk_factory: Callable[..., Desk],
) -> None:
    desk = desk_factory(approval=True)
    assert desk.world.dispatch(NINE) == 0  # waiting for approval
    desk.send(desk.commands(f"APPROVE B{desk.world.intake_id}"), now=NINE)
    assert f"Line 1: DONE APPROVE B{desk.world.intake_id}" in desk.answer(NINE)
    assert [r.rcpt_tos for r in desk.world.sink.received if r.rcpt_tos == (ELM_DSL,)] == [
        (ELM_DSL,)
    ]


def test_a_long_line_wrapped_by_the_mail_program_is_read_whole(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    entity = EmailMessage()
    entity.set_content(
        f"NOTE C{ava} the school confirms that she left at the end of \r\n"
        "the autumn term\r\n"
        "-- \r\n"
        "Education Navigator\r\n",
        params={"format": "flowed"},
    )
    del entity["MIME-Version"]
    raw = desk.mail(signed(entity, keyring=desk.home(desk.me), signer=desk.me.fingerprint))
    desk.send(raw)
    assert f"Line 1: DONE NOTE C{ava}" in desk.answer()
    (text,) = desk.world.conn.execute("SELECT unseal(text) FROM resolution").fetchone()
    assert text == "the school confirms that she left at the end of the autumn term"


@pytest.mark.parametrize(
    ("flowed", "delsp", "plain"),
    [
        ("NOTE C1 one \ntwo\nNOTE C2 x", False, "NOTE C1 one two\nNOTE C2 x"),
        ("NOTE C1 one \ntwo", True, "NOTE C1 onetwo"),
        ("> quoted \nNOTE C2 x", False, ">quoted \nNOTE C2 x"),  # no joining across depths
        ("NOTE C1 x\n-- \nsignature", False, "NOTE C1 x\n-- \nsignature"),
        (" From here\n", False, "From here"),  # space-stuffed
    ],
)
def test_flowed_text_is_unwrapped_as_rfc_3676_says(flowed: str, delsp: bool, plain: str) -> None:
    assert unflowed(flowed, delsp=delsp) == plain


def test_a_refused_command_is_answered_with_the_reason(desk: Desk) -> None:
    finn = desk.world.decision_id("CC-1005")
    desk.send(desk.commands(f"CALLED C{finn} spoke to them"))
    text = desk.answer()
    assert f"Line 1: REFUSED CALLED C{finn}" in text and "is not a telephone task" in text


def test_an_encrypted_and_signed_command_is_accepted(desk: Desk) -> None:
    desk.send(desk.encrypted_commands(f"NOTE B{desk.world.intake_id} a clean file"))
    assert f"Line 1: DONE NOTE B{desk.world.intake_id}" in desk.answer()
    ((event, data),) = desk.audited("command_mail.")
    assert (event, data["signer"]) == ("command_mail.accepted", desk.me.fingerprint)


def test_an_encrypted_command_flattened_by_exchange_is_accepted(desk: Desk) -> None:
    sealed = desk.encrypted_commands(f"NOTE B{desk.world.intake_id} a clean file")
    desk.send(outlook_flattened(sealed, sender=NAVIGATOR_EMAIL))
    assert f"Line 1: DONE NOTE B{desk.world.intake_id}" in desk.answer()


def test_the_gateways_own_navigator_key_may_be_a_command_signer(
    desk_factory: Callable[..., Desk],
) -> None:
    desk = desk_factory(signers=("gateway",))
    desk.send(desk.commands(f"NOTE B{desk.world.intake_id} a clean file", key=desk.navigator))
    assert "DONE NOTE" in desk.answer(reader=desk.navigator)


def test_the_service_acts_on_a_signed_route_and_sends_it_and_the_answer_at_once(
    desk: Desk,
) -> None:
    # `encompass-gateway run`: the Navigator's mailbox watched by IDLE, dispatch rescheduled
    # after the pass; the real clock is long past Monday's 09:00, so both go at once.
    service = Service(desk.world.config, SystemClock())
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        ava = desk.world.decision_id("CC-1001")
        desk.dovecot.deliver(desk.mailbox, desk.commands(f"ROUTE C{ava} {OAK}"))
        sink = desk.world.sink
        until(
            lambda: {(OAK_DSL,), (NAVIGATOR_EMAIL,)} <= {r.rcpt_tos for r in sink.received},
            "the routed notification and the answer",
        )
    finally:
        service.stop.set()
        thread.join()
    (answer,) = [r for r in desk.world.sink.received if r.rcpt_tos == (NAVIGATOR_EMAIL,)]
    text = open_sealed(desk.home(desk.me), answer.data).inner.get_content()
    assert f"DONE ROUTE C{ava} {OAK}" in text


# --------------------------------------------------------------------------------------
# Refused: nothing acted on, answered with the reason, to the pinned signers only


def _refused(
    desk: Desk, code: str, *, reader: PgpKey | None = None, now: datetime = BEFORE_NINE
) -> str:
    assert desk.acted_on_nothing()
    ((event, data),) = desk.audited("command_mail.")
    assert (event, data["reason"]) == ("command_mail.rejected", code)
    assert len(desk.dovecot.messages(desk.mailbox, "Quarantine")) == 1
    text = desk.answer(now, reader=reader)
    assert "Nothing was done" in text
    return text


def test_an_unsigned_command_is_rejected_and_nothing_acted_on(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    desk.send(desk.unsigned(f"ROUTE C{ava} {OAK}"))
    text = _refused(desk, "unsigned")
    assert "the mail has no OpenPGP signature" in text
    ((_, data),) = desk.audited("command_mail.")
    assert data["signer"] is None


def test_a_rejection_is_encrypted_to_every_pinned_signer_that_can_receive(desk: Desk) -> None:
    desk.send(desk.unsigned(f"NOTE B{desk.world.intake_id} x"))
    (received,) = desk.answers()
    for reader in (desk.me, desk.spare):  # the expired pinned key cannot receive
        assert (
            "Nothing was done" in open_sealed(desk.home(reader), received.data).inner.get_content()
        )
    with pytest.raises(OpeningError):
        open_sealed(desk.world.keyring, received.data)


def test_a_command_signed_by_an_unpinned_key_is_rejected(
    desk: Desk, key_factory: KeyFactory
) -> None:
    stranger = key_factory.make("someone@elsewhere.example")
    ava = desk.world.decision_id("CC-1001")
    desk.send(desk.commands(f"ROUTE C{ava} {OAK}", key=stranger))
    text = _refused(desk, "unknown_key")
    assert "not in the gateway's keyring (not a pinned command signer key)" in text


def test_a_forged_from_with_a_valid_signature_of_another_key_is_rejected(desk: Desk) -> None:
    # A school's DSL, whose key the gateway holds, writes as if from the Navigator.
    school = desk.world.keys[ELM_DSL]
    ava = desk.world.decision_id("CC-1001")
    desk.send(desk.commands(f"ROUTE C{ava} {OAK}", key=school))
    text = _refused(desk, "unpinned_key")
    assert f"signed by key {school.fingerprint}, which is not a pinned command signer key" in text


def test_a_command_signed_by_an_expired_key_is_rejected(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    raw = desk.commands(
        f"ROUTE C{ava} {OAK}", key=desk.expired, at=datetime(2020, 6, 1, tzinfo=UTC)
    )
    desk.send(raw)
    assert "which has expired" in _refused(desk, "expired_key")


def test_a_command_signed_days_ago_is_rejected_as_stale(desk: Desk) -> None:
    # Signed now; taken in four days later (held back somewhere, or replayed from a copy the
    # gateway never saw): the situation it was written for has moved on.
    ava = desk.world.decision_id("CC-1001")
    later = datetime.now(UTC) + timedelta(days=4)
    desk.send(desk.commands(f"ROUTE C{ava} {OAK}"), now=later)
    assert "commands are acted on only when signed within the last 72 hours" in _refused(
        desk, "stale_signature", now=later
    )


def test_a_command_signed_by_a_key_revoked_since_is_rejected(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    raw = desk.commands(f"ROUTE C{ava} {OAK}", key=desk.spare)
    desk.spare.revoke_in(desk.world.keyring)
    desk.send(raw)
    assert "which has been revoked" in _refused(desk, "revoked_key")


def test_a_command_altered_after_signing_is_rejected(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    raw = desk.commands(f"ROUTE C{ava} {OAK}")
    altered = raw.replace(f"C{ava} {OAK}".encode(), f"C{ava} {OAK + 1}".encode())
    assert altered != raw
    desk.send(altered)
    assert "altered after signing" in _refused(desk, "bad_signature")


def test_a_malformed_line_among_good_ones_rejects_the_whole_mail(desk: Desk) -> None:
    ava = desk.world.decision_id("CC-1001")
    cal = desk.world.decision_id("CC-1002")
    desk.send(
        desk.commands(
            f"NOTE C{ava} checked\nROUET C{ava} {OAK}\n"
            f"CALLED C{cal} spoke to the DSL\nROUTE C{ava}\n"
        )
    )
    text = _refused(desk, "malformed_command")
    assert "2 of the 4 command lines cannot be understood" in text
    assert "line 2: 'ROUET' is not a command" in text
    assert "line 4: no URN is not a URN" in text


def test_inline_signed_text_is_not_taken_for_a_signature(desk: Desk) -> None:
    clearsigned = desk.home(desk.me).gpg.sign(
        f"NOTE B{desk.world.intake_id} x\n", keyid=desk.me.fingerprint, clearsign=True
    )
    desk.send(desk.unsigned(str(clearsigned)))
    assert "signed inline (clearsigned text)" in _refused(desk, "inline_pgp")


def test_a_copy_of_a_signed_mail_under_other_headers_is_not_acted_on_twice(desk: Desk) -> None:
    raw = desk.commands(f"NOTE B{desk.world.intake_id} a clean file")
    desk.send(raw)
    desk.answer()
    replayed = raw.replace(b"<command1@mash.example.org>", b"<replayed@mash.example.org>")
    desk.send(replayed)
    text = desk.answer()
    assert "this signed mail was acted on before" in text
    assert desk.world.conn.execute("SELECT COUNT(*) FROM resolution").fetchone()[0] == 1
    assert [e for e, _ in desk.audited("command_mail.")] == [
        "command_mail.accepted",
        "command_mail.rejected",
    ]


def test_the_same_mail_delivered_twice_is_acted_on_and_answered_once(desk: Desk) -> None:
    raw = desk.commands(f"NOTE B{desk.world.intake_id} a clean file")
    desk.send(raw)
    again = desk.send(raw)
    assert "1 seen before" in again.output
    assert len(desk.answers()) == 1
    assert desk.world.conn.execute("SELECT COUNT(*) FROM resolution").fetchone()[0] == 1


def test_check_reports_a_pinned_command_signer_that_cannot_sign(desk: Desk) -> None:
    keyring = desk.world.keyring
    assert str(keyring.gpg.delete_keys(desk.spare.fingerprint)) == "ok"
    keyring.refresh()
    findings = check(
        desk.world.conn,
        config=desk.world.config,
        calendar=load_rules(desk.world.config.rules_dir).calendar,
        keyring=keyring,
        now=BEFORE_NINE,
    )
    pinned = "([navigator] command_signers)"
    assert [f.render() for f in findings if "command signer" in f.text] == [
        f"PROBLEM: command signer {desk.spare.fingerprint} {pinned} is not in the GnuPG home:"
        " commands it signs are refused",
        f"PROBLEM: command signer {desk.expired.fingerprint} {pinned} has expired:"
        " commands it signs are refused",
    ]


# --------------------------------------------------------------------------------------
# Not command mail


def test_automatic_mail_from_the_navigators_address_is_never_answered(desk: Desk) -> None:
    raw = desk.commands(f"NOTE B{desk.world.intake_id} x", **{"Auto-Submitted": "auto-replied"})
    desk.send(raw)
    assert desk.acted_on_nothing()
    assert desk.audited("command_mail.") == []
    assert desk.answers() == []


def test_mail_from_anyone_else_is_not_taken_as_commands(desk: Desk) -> None:
    raw = desk.commands(f"NOTE B{desk.world.intake_id} x", from_="dsl@elm.example.org")
    desk.send(raw)
    assert desk.acted_on_nothing()
    assert desk.audited("command_mail.") == []

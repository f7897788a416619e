"""Encrypted replies from schools: the forms Outlook and inline-PGP clients leave them in are
put back into RFC 3156 shape, and the Navigator's key opens them (real GnuPG)."""

from __future__ import annotations

import base64
import email.policy
import quopri
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from mail_corpus import (
    BOUNCE_LOCAL_PART,
    CASES,
    DOMAIN,
    DSL,
    MESSAGE_ID,
    NAVIGATOR,
    REFERENCE,
    SUBJECT,
    armored,
    crlf,
)
from pgp_keys import KeyFactory, PgpKey

from gateway.inbound import Kind, classify
from gateway.keyring import Keyring
from gateway.pgpmime import OpeningError, OuterHeaders, encrypted_part, open_sealed, seal
from gateway.replies import Encryption, reference_codes, repair_outlook_pgp_mime

REPLY_TEXT = "We will speak to the child this morning. Thank you.\n"


@pytest.fixture
def dsl_key(key_factory: KeyFactory, gateway_keyring: Keyring) -> PgpKey:
    """The DSL's key, its public half in the gateway's keyring (to check the signature)."""
    key = key_factory.make(DSL)
    key.install_public(gateway_keyring)
    return key


@pytest.fixture
def sealed_reply(
    dsl_key: PgpKey, navigator_key: PgpKey, recipient_home: Callable[[PgpKey], Keyring]
) -> bytes:
    """A reply the DSL's own client encrypted to the Navigator and signed, RFC 3156."""
    inner = EmailMessage()
    inner["Subject"] = f"Re: {SUBJECT}"
    inner.set_content(REPLY_TEXT)
    return seal(
        recipient_home(dsl_key),
        inner,
        recipient=navigator_key.fingerprint,
        signer=dsl_key.fingerprint,
        passphrase=dsl_key.passphrase,
        headers=OuterHeaders(
            from_addr=DSL,
            to_addr=NAVIGATOR,
            subject=f"RE: {SUBJECT}",
            date=datetime(2026, 3, 2, 10, 45, tzinfo=UTC),
            message_id="<AM0PR01MB53459A8B@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>",
            disposition_notification_to=DSL,
            extra=(("In-Reply-To", MESSAGE_ID),),
        ),
    )


def outlook_flattened(sealed: bytes) -> bytes:
    """What Exchange makes of an RFC 3156 message: multipart/mixed, an empty body, the two
    parts as base64 attachments, and the armor's lines re-wrapped with trailing blanks."""
    armor = encrypted_part(sealed).decode("ascii")
    rewrapped = "\r\n".join(line + "  " for line in armor.splitlines()) + "\r\n"
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: RE: {SUBJECT}
        Thread-Topic: {SUBJECT}
        Date: Mon, 2 Mar 2026 10:45:00 +0000
        Message-ID: <AM0PR01MB53459A8B@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        Content-Type: multipart/mixed; boundary="_003_mangled_"
        MIME-Version: 1.0

        --_003_mangled_
        Content-Type: text/plain; charset="us-ascii"

        --_003_mangled_
        Content-Type: application/pgp-encrypted; name="PGPMIME version identification"
        Content-Description: PGP/MIME version identification
        Content-Disposition: attachment; filename="PGPMIME version identification"
        Content-Transfer-Encoding: base64

        {base64.b64encode(b"Version: 1").decode()}

        --_003_mangled_
        Content-Type: application/octet-stream; name="encrypted.asc"
        Content-Disposition: attachment; filename="encrypted.asc"
        Content-Transfer-Encoding: base64

        {base64.encodebytes(rewrapped.encode()).decode().replace(chr(10), chr(10) + " " * 8)}
        --_003_mangled_--
        """)


def inline_in_html(sealed: bytes) -> bytes:
    """The armored message pasted into an Outlook HTML body, one paragraph a line."""
    armor = encrypted_part(sealed).decode("ascii")
    paragraphs = "".join(
        f"<p class=MsoPlainText>{line or '<o:p>&nbsp;</o:p>'}<o:p></o:p></p>\n"
        for line in armor.splitlines()
    )
    body = quopri.encodestring(f"<html><body>{paragraphs}</body></html>".encode()).decode()
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: RE: {SUBJECT}
        Date: Mon, 2 Mar 2026 10:50:00 +0000
        MIME-Version: 1.0
        Content-Type: text/html; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable

        {body.replace(chr(10), chr(10) + " " * 8)}
        """)


def _classified(raw: bytes) -> tuple[Kind, Encryption]:
    result = classify(raw, own_domain=DOMAIN, bounce_local_part=BOUNCE_LOCAL_PART)
    return result.kind, result.encryption


def _assert_opens(raw: bytes, keyring: Keyring, dsl_key: PgpKey) -> None:
    opened = open_sealed(keyring, repair_outlook_pgp_mime(raw))
    assert opened.signature_valid
    assert opened.signer_fingerprint == dsl_key.fingerprint
    assert opened.inner.get_content().replace("\r\n", "\n") == REPLY_TEXT


def test_an_outlook_flattened_reply_is_repaired_and_opens_with_the_navigator_key(
    sealed_reply: bytes, gateway_keyring: Keyring, dsl_key: PgpKey
) -> None:
    mangled = outlook_flattened(sealed_reply)
    with pytest.raises(OpeningError):
        open_sealed(gateway_keyring, mangled)
    assert _classified(mangled) == (Kind.REPLY, Encryption.OUTLOOK_MANGLED)
    _assert_opens(mangled, gateway_keyring, dsl_key)


def test_an_armored_reply_pasted_into_html_is_repaired_and_opens(
    sealed_reply: bytes, gateway_keyring: Keyring, dsl_key: PgpKey
) -> None:
    pasted = inline_in_html(sealed_reply)
    assert _classified(pasted) == (Kind.REPLY, Encryption.ARMORED)
    _assert_opens(pasted, gateway_keyring, dsl_key)


def test_a_well_formed_pgp_mime_reply_is_left_as_it_is(
    sealed_reply: bytes, gateway_keyring: Keyring, dsl_key: PgpKey
) -> None:
    assert repair_outlook_pgp_mime(sealed_reply) == sealed_reply
    _assert_opens(sealed_reply, gateway_keyring, dsl_key)


def test_the_repair_keeps_the_outer_headers_and_replaces_the_mime_ones(
    sealed_reply: bytes,
) -> None:
    repaired = BytesParser(policy=email.policy.default).parsebytes(
        repair_outlook_pgp_mime(outlook_flattened(sealed_reply))
    )
    assert repaired["Subject"] == f"RE: {SUBJECT}"
    assert repaired["From"] == DSL
    assert repaired["Thread-Topic"] == SUBJECT
    assert repaired.get_all("MIME-Version") == ["1.0"]
    assert len(repaired.get_all("Content-Type") or []) == 1
    assert repaired.get_content_type() == "multipart/encrypted"


@pytest.mark.parametrize(
    ("name", "seed"),
    [("outlook_mangled_reply", "outlook reply"), ("inline_armored_reply", "inline reply")],
)
def test_the_repaired_armor_is_the_sent_one_with_its_lines_made_canonical(
    name: str, seed: str
) -> None:
    (case,) = [case for case in CASES if case.name == name]
    repaired = encrypted_part(repair_outlook_pgp_mime(case.raw))
    assert repaired.replace(b"\r\n", b"\n") == armored(seed).encode("ascii")


def test_a_message_without_an_armored_block_cannot_be_repaired() -> None:
    plain = crlf(f"""
        From: {DSL}
        Subject: RE: {SUBJECT}
        Content-Type: text/plain

        No encryption here.
        """)
    with pytest.raises(OpeningError, match="no single armored PGP MESSAGE"):
        repair_outlook_pgp_mime(plain)


def test_two_armored_blocks_are_not_guessed_between() -> None:
    two = crlf(f"""
        From: {DSL}
        Subject: RE: {REFERENCE}
        Content-Type: multipart/mixed; boundary="b"

        --b
        Content-Type: text/plain

        {armored("first").replace(chr(10), chr(10) + " " * 8)}
        --b
        Content-Type: text/plain

        {armored("second").replace(chr(10), chr(10) + " " * 8)}
        --b--
        """)
    with pytest.raises(OpeningError, match="holds 2"):
        repair_outlook_pgp_mime(two)


def test_armor_damaged_beyond_whitespace_is_refused() -> None:
    lines = armored("damaged").split("\n")
    lines[3] = "*" + lines[3][1:]  # a data line: Outlook never writes such a character
    damaged = "\n".join(lines)
    raw = crlf(f"""
        From: {DSL}
        Subject: RE: {SUBJECT}
        Content-Type: text/plain

        {damaged.replace(chr(10), chr(10) + " " * 8)}
        """)
    with pytest.raises(OpeningError, match="damaged"):
        repair_outlook_pgp_mime(raw)


def test_armor_cut_short_is_refused() -> None:
    cut = armored("cut").rsplit("\n", 3)[0]
    raw = crlf(f"""
        From: {DSL}
        Subject: RE: {SUBJECT}
        Content-Type: text/plain

        {cut.replace(chr(10), chr(10) + " " * 8)}
        """)
    with pytest.raises(OpeningError, match="cut short"):
        repair_outlook_pgp_mime(raw)


def test_a_reply_to_a_follow_up_is_tied_to_the_follow_up_not_the_first() -> None:
    subject = "RE: Secure notification oe-7k3mq-9txab-2 (amended); see OE-7K3MQ-9TXAB"

    assert reference_codes(subject) == ("OE-7K3MQ-9TXAB-2", "OE-7K3MQ-9TXAB")
    assert reference_codes("Fwd: OE-7K3MQ-9TXAB-12.") == ("OE-7K3MQ-9TXAB-12",)

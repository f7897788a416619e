from __future__ import annotations

import email.policy
import string
from collections.abc import Callable
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from invariants import assert_sealed
from pgp_keys import KeyFactory, PgpKey

from gateway.keyring import Keyring, open_keyring
from gateway.pgpmime import (
    PROTOCOL,
    OpeningError,
    OuterHeaders,
    SealingError,
    encrypted_part,
    open_sealed,
    outer_header_block,
    seal,
)

DSL = "dsl@fenland-primary.example.org"
OTHER_DSL = "dsl@march-academy.example.org"
REFERENCE = "OE-7K3MQ-9TXAB"
CHILD = "Amelia Hartley"
SIBLING_ELSEWHERE = "Noah Hartley"
DOB = date(2016, 3, 14)


def notification(children: str = CHILD) -> EmailMessage:
    """An inner message shaped like the renderer's: multipart/alternative, text and HTML."""
    message = EmailMessage()
    message["Subject"] = f"Police attended an incident: {children}"
    message.set_content(f"Children: {children}, born 14 March 2016.\nPresent: yes\n")
    message.add_alternative(f"<p>Children: <b>{children}</b>, born 14 March 2016.</p>", "html")
    return message


def outer_headers(**changes: object) -> OuterHeaders:
    values: dict[str, object] = {
        "from_addr": "Education Navigator <navigator@mash.example.org>",
        "to_addr": DSL,
        "subject": f"Operation Encompass notification {REFERENCE}",
        "date": datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
        "message_id": f"<{REFERENCE}.dsl@mash.example.org>",
        "disposition_notification_to": "navigator@mash.example.org",
    }
    values.update(changes)
    return OuterHeaders(**values)  # type: ignore[arg-type]


@pytest.fixture
def dsl_key(key_factory: KeyFactory, gateway_keyring: Keyring) -> PgpKey:
    key = key_factory.make(DSL)
    key.install_public(gateway_keyring)
    return key


def sealed(keyring: Keyring, navigator: PgpKey, recipient: PgpKey, **changes: object) -> bytes:
    return seal(
        keyring,
        notification(),
        recipient=recipient.fingerprint,
        signer=navigator.fingerprint,
        passphrase=navigator.passphrase,
        headers=outer_headers(**changes),
    )


def test_a_sealed_notification_passes_the_shared_invariant_check(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    raw = sealed(gateway_keyring, navigator_key, dsl_key)
    inner = assert_sealed(
        raw,
        recipient_home_or_keyring=recipient_home(dsl_key),
        navigator_fingerprint=navigator_key.fingerprint,
        reference=REFERENCE,
        must_contain=[CHILD],
        must_not_contain=[SIBLING_ELSEWHERE],
        dates_of_birth=[DOB],
    )
    assert inner.get_content_type() == "multipart/alternative"


def test_the_recipient_opens_it_and_sees_the_navigator_signature(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    opened = open_sealed(recipient_home(dsl_key), sealed(gateway_keyring, navigator_key, dsl_key))
    assert opened.signature_valid
    assert opened.signer_fingerprint == navigator_key.fingerprint
    body = opened.inner.get_body(("plain",))
    assert body is not None and CHILD in body.get_content()
    assert opened.inner["Subject"] == f"Police attended an incident: {CHILD}"


def test_another_school_cannot_decrypt_it(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    other = key_factory.make(OTHER_DSL)
    other.install_public(gateway_keyring)
    raw = sealed(gateway_keyring, navigator_key, dsl_key)
    with pytest.raises(OpeningError, match="cannot be decrypted"):
        open_sealed(recipient_home(other), raw)


def test_nothing_of_the_notification_is_readable_in_the_sealed_bytes(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    raw = sealed(gateway_keyring, navigator_key, dsl_key)
    for plaintext in (CHILD, "Hartley", "14 March 2016", "Present", "Police attended"):
        assert plaintext.encode() not in raw
    assert b"multipart/alternative" not in raw and b"text/html" not in raw


def test_the_outer_message_has_exactly_the_given_headers(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    raw = sealed(
        gateway_keyring, navigator_key, dsl_key, extra=(("Auto-Submitted", "auto-generated"),)
    )
    outer = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert [name for name, _ in outer.items()] == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Disposition-Notification-To",
        "Auto-Submitted",
        "MIME-Version",
        "Content-Type",
    ]
    assert outer["Date"] == "Mon, 01 Dec 2025 09:00:00 +0000"
    assert outer["Message-ID"] == f"<{REFERENCE}.dsl@mash.example.org>"
    assert outer.get_param("protocol") == PROTOCOL


def test_a_non_ascii_sender_name_is_encoded_and_the_message_stays_7_bit(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    sender = "Équipe Navigator Cambridgeshire <navigator@mash.example.org>"
    raw = sealed(gateway_keyring, navigator_key, dsl_key, from_addr=sender)
    assert raw.isascii()
    outer = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert outer["From"] == sender


def test_the_message_has_crlf_line_ends_and_short_lines(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    raw = sealed(gateway_keyring, navigator_key, dsl_key)
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_a_wrong_passphrase_refuses_to_seal(
    gnupg_home: Callable[[], Path], key_factory: KeyFactory
) -> None:
    navigator = key_factory.make("navigator@mash.example.org", passphrase="correct horse")
    dsl = key_factory.make(DSL)
    with open_keyring(gnupg_home()) as keyring:
        navigator.install_secret(keyring)
        dsl.install_public(keyring)
        with pytest.raises(SealingError, match="passphrase is wrong"):
            seal(
                keyring,
                notification(),
                recipient=dsl.fingerprint,
                signer=navigator.fingerprint,
                passphrase="battery staple",
                headers=outer_headers(),
            )


def test_a_protected_navigator_key_without_its_passphrase_refuses_to_seal(
    gnupg_home: Callable[[], Path], key_factory: KeyFactory
) -> None:
    navigator = key_factory.make("navigator@mash.example.org", passphrase="correct horse")
    dsl = key_factory.make(DSL)
    with open_keyring(gnupg_home()) as keyring:
        navigator.install_secret(keyring)
        dsl.install_public(keyring)
        with pytest.raises(SealingError, match="needs a passphrase"):
            seal(
                keyring,
                notification(),
                recipient=dsl.fingerprint,
                signer=navigator.fingerprint,
                passphrase=None,
                headers=outer_headers(),
            )


def test_a_protected_navigator_key_seals_with_its_passphrase(
    gnupg_home: Callable[[], Path],
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    navigator = key_factory.make("navigator@mash.example.org", passphrase="correct horse")
    dsl = key_factory.make(DSL)
    with open_keyring(gnupg_home()) as keyring:
        navigator.install_secret(keyring)
        dsl.install_public(keyring)
        raw = sealed(keyring, navigator, dsl)
    reader = recipient_home(dsl)
    navigator.install_public(reader)
    assert_sealed(
        raw,
        recipient_home_or_keyring=reader,
        navigator_fingerprint=navigator.fingerprint,
        reference=REFERENCE,
        must_contain=[CHILD],
        must_not_contain=[],
    )


def test_without_the_navigator_secret_key_nothing_is_sealed(
    gnupg_home: Callable[[], Path], navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    dsl = key_factory.make(DSL)
    with open_keyring(gnupg_home()) as keyring:
        navigator_key.install_public(keyring)
        dsl.install_public(keyring)
        with pytest.raises(SealingError, match="secret key is not usable"):
            sealed(keyring, navigator_key, dsl)


def test_a_signer_not_in_the_keyring_is_refused(
    gateway_keyring: Keyring, dsl_key: PgpKey, key_factory: KeyFactory
) -> None:
    stranger = key_factory.make("someone@elsewhere.example.org")
    with pytest.raises(SealingError, match=f"signing .* key {stranger.fingerprint} is not in"):
        sealed(gateway_keyring, stranger, dsl_key)


def test_a_recipient_not_in_the_keyring_is_refused(
    gateway_keyring: Keyring, navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    absent = key_factory.make(DSL)
    with pytest.raises(SealingError, match=f"recipient key {absent.fingerprint} is not in"):
        sealed(gateway_keyring, navigator_key, absent)


def test_a_recipient_named_by_a_subkey_fingerprint_is_refused(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    info = gateway_keyring.key(dsl_key.fingerprint)
    assert info is not None
    with pytest.raises(SealingError, match="primary-key fingerprint"):
        seal(
            gateway_keyring,
            notification(),
            recipient=info.subkeys[0].fingerprint,
            signer=navigator_key.fingerprint,
            passphrase=None,
            headers=outer_headers(),
        )


def test_gnupg_refuses_a_revoked_recipient_key(
    gateway_keyring: Keyring, navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    revoked = key_factory.make(DSL, revoked=True)
    revoked.install_public(gateway_keyring)
    with pytest.raises(SealingError, match="recipient key is not usable"):
        sealed(gateway_keyring, navigator_key, revoked)


@pytest.mark.parametrize(
    "extra",
    [
        (("Content-Type", "text/plain"),),
        (("Subject", "a second subject"),),
        (("X-Note", "ok\r\nBcc: someone@elsewhere.example.org"),),
        (("Bad Name", "x"),),
    ],
)
def test_extra_headers_cannot_change_the_structure_or_inject_lines(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    extra: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(SealingError):
        sealed(gateway_keyring, navigator_key, dsl_key, extra=extra)


def test_a_subject_with_a_line_break_is_refused(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    with pytest.raises(SealingError, match="Subject contains a line break"):
        sealed(gateway_keyring, navigator_key, dsl_key, subject=f"{REFERENCE}\r\nBcc: x@y.org")


def test_an_entity_given_as_bytes_is_sealed_as_they_are(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    inner = notification().as_bytes(policy=email.policy.SMTP)
    raw = seal(
        gateway_keyring,
        inner,
        recipient=dsl_key.fingerprint,
        signer=navigator_key.fingerprint,
        passphrase=None,
        headers=outer_headers(),
    )
    reader = recipient_home(dsl_key)
    decrypted = reader.gpg.decrypt(encrypted_part(raw), always_trust=True)
    assert decrypted.ok
    assert decrypted.data == inner
    assert open_sealed(reader, raw).signature_valid


def test_an_entity_given_as_bytes_without_crlf_line_ends_is_refused(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    with pytest.raises(SealingError, match="CRLF"):
        seal(
            gateway_keyring,
            notification().as_bytes(),
            recipient=dsl_key.fingerprint,
            signer=navigator_key.fingerprint,
            passphrase=None,
            headers=outer_headers(),
        )


def test_an_empty_passphrase_takes_no_line_of_the_entity(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    # GnuPG reads the passphrase as the first line of its input: an empty one is still a
    # line, or the entity's first header would be taken for it.
    inner = notification().as_bytes(policy=email.policy.SMTP)
    raw = seal(
        gateway_keyring,
        inner,
        recipient=dsl_key.fingerprint,
        signer=navigator_key.fingerprint,
        passphrase="",
        headers=outer_headers(),
    )
    decrypted = recipient_home(dsl_key).gpg.decrypt(encrypted_part(raw), always_trust=True)
    assert decrypted.data == inner


def test_a_passphrase_with_a_line_break_is_refused(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey
) -> None:
    with pytest.raises(SealingError, match="passphrase contains a line break"):
        seal(
            gateway_keyring,
            notification(),
            recipient=dsl_key.fingerprint,
            signer=navigator_key.fingerprint,
            passphrase="correct\nhorse",
            headers=outer_headers(),
        )


# The outer header lines are written directly where the email package would write them
# unchanged; these strategies aim at both sides of that line.
_PRINTABLE = string.printable[:95] + "\u00e9\u20ac\x00\t\x7f\u2028"
_ATEXT = st.text(
    string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=8
)
_DOT_ATOM = st.lists(_ATEXT, min_size=1, max_size=3).map(".".join)
_ADDR_SPEC = st.builds("{}@{}".format, _DOT_ATOM, _DOT_ATOM)
_LINE = st.text(_PRINTABLE.replace("\r", "").replace("\n", ""), max_size=70)
_DISPLAY_NAME = st.one_of(
    st.lists(_ATEXT, min_size=1, max_size=3).map(" ".join),
    _LINE.map(lambda text: '"' + text[:20].replace('"', "").replace("\\", "") + '"'),
    st.sampled_from(["\u00c9quipe Navigator", "J. Smith", "Navigator (MASH)"]),
)
_ADDRESS = st.one_of(_ADDR_SPEC, st.builds("{} <{}>".format, _DISPLAY_NAME, _ADDR_SPEC), _LINE)
_MESSAGE_ID = st.one_of(st.builds("<{}@{}>".format, _DOT_ATOM, _DOT_ATOM), _LINE)
_EXTRA = st.tuples(
    st.sampled_from(["Auto-Submitted", "X-Note", "Reply-To", "Sender", "Precedence"]), _LINE
)


@settings(max_examples=500, deadline=None)
@given(
    from_addr=_ADDRESS,
    to_addr=_ADDRESS,
    subject=_LINE,
    date=st.datetimes(timezones=st.timezones()),
    message_id=_MESSAGE_ID,
    notify=_ADDRESS,
    extra=st.lists(_EXTRA, max_size=2).map(tuple),
)
def test_outer_header_lines_are_what_the_email_packages_smtp_policy_writes(
    from_addr: str,
    to_addr: str,
    subject: str,
    date: datetime,
    message_id: str,
    notify: str,
    extra: tuple[tuple[str, str], ...],
) -> None:
    headers = OuterHeaders(from_addr, to_addr, subject, date, message_id, notify, extra)
    smtp = email.policy.SMTP
    fields = [
        ("From", from_addr),
        ("To", to_addr),
        ("Subject", subject),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id),
        ("Disposition-Notification-To", notify),
        *extra,
    ]
    try:
        expected = b"".join(smtp.fold_binary(n, smtp.header_factory(n, v)) for n, v in fields)
    except Exception as refused:  # what the email package refuses, sealing refuses alike
        with pytest.raises(type(refused)):
            outer_header_block(headers)
        return
    assert outer_header_block(headers) == expected + b"MIME-Version: 1.0\r\n"


# --------------------------------------------------------------------------------------
# Opening: strict RFC 3156 structure


def rebuilt(raw: bytes, change: Callable[[bytes], bytes]) -> bytes:
    return change(raw)


@pytest.fixture
def sealed_raw(gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey) -> bytes:
    return sealed(gateway_keyring, navigator_key, dsl_key)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            lambda raw: raw.replace(b"multipart/encrypted;", b"multipart/mixed;", 1),
            "not PGP/MIME",
        ),
        (
            lambda raw: raw.replace(b'protocol="application/pgp-encrypted"', b'protocol="x"', 1),
            "protocol 'x'",
        ),
        (
            lambda raw: raw.replace(b"\r\nVersion: 1\r\n", b"\r\nVersion: 2\r\n", 1),
            "Version: 1",
        ),
        (
            lambda raw: raw.replace(b"application/octet-stream", b"text/plain", 1),
            "must be application/octet-stream",
        ),
        (
            lambda raw: raw.replace(b"-----END PGP MESSAGE-----", b"", 1),
            "one armored PGP MESSAGE block",
        ),
    ],
)
def test_anything_but_rfc3156_structure_is_refused(
    sealed_raw: bytes, change: Callable[[bytes], bytes], complaint: str
) -> None:
    with pytest.raises(OpeningError, match=complaint):
        encrypted_part(change(sealed_raw))


def test_a_third_part_is_refused(sealed_raw: bytes) -> None:
    outer = BytesParser(policy=email.policy.default).parsebytes(sealed_raw)
    extra = EmailMessage()
    extra.set_content("an extra part")
    outer.attach(extra)
    with pytest.raises(OpeningError, match="exactly 2 parts, not 3"):
        encrypted_part(outer.as_bytes())


def test_without_the_navigator_public_key_the_signature_is_not_valid(
    sealed_raw: bytes, dsl_key: PgpKey, gnupg_home: Callable[[], Path]
) -> None:
    with open_keyring(gnupg_home()) as reader:
        dsl_key.install_secret(reader)
        opened = open_sealed(reader, sealed_raw)
    assert not opened.signature_valid
    assert opened.signer_fingerprint is None

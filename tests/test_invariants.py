"""The shared invariant check catches each way a message could be unfit to leave."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from email.message import EmailMessage

import pytest
from invariants import assert_sealed
from pgp_keys import KeyFactory, PgpKey
from test_pgpmime import CHILD, DSL, REFERENCE, SIBLING_ELSEWHERE, notification, outer_headers

from gateway.keyring import Keyring
from gateway.pgpmime import seal

ARMOR = re.compile(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", re.DOTALL)


@pytest.fixture
def dsl_key(key_factory: KeyFactory, gateway_keyring: Keyring) -> PgpKey:
    key = key_factory.make(DSL)
    key.install_public(gateway_keyring)
    return key


@pytest.fixture
def check(
    navigator_key: PgpKey, dsl_key: PgpKey, recipient_home: Callable[[PgpKey], Keyring]
) -> Callable[..., EmailMessage]:
    """assert_sealed as a notification naming CHILD, but not SIBLING_ELSEWHERE, must pass it."""
    reader = recipient_home(dsl_key)

    def run(raw: bytes, **changes: object) -> EmailMessage:
        arguments: dict[str, object] = {
            "recipient_home_or_keyring": reader,
            "navigator_fingerprint": navigator_key.fingerprint,
            "reference": REFERENCE,
            "must_contain": [CHILD],
            "must_not_contain": [SIBLING_ELSEWHERE],
            "dates_of_birth": [date(2016, 3, 14)],
        }
        arguments.update(changes)
        return assert_sealed(raw, **arguments)  # type: ignore[arg-type]

    return run


def make(
    keyring: Keyring,
    navigator: PgpKey,
    recipient: PgpKey,
    inner: EmailMessage | None = None,
    **header_changes: object,
) -> bytes:
    return seal(
        keyring,
        inner or notification(),
        recipient=recipient.fingerprint,
        signer=navigator.fingerprint,
        passphrase=None,
        headers=outer_headers(**header_changes),
    )


def with_armor(raw: bytes, armored: bytes) -> bytes:
    """The same envelope around other OpenPGP data (as a faulty sealer might produce)."""
    return ARMOR.sub(lambda _: armored.strip().replace(b"\n", b"\r\n"), raw)


def test_a_good_message_passes(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    check(make(gateway_keyring, navigator_key, dsl_key))


def test_a_child_name_in_the_subject_fails(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    raw = make(gateway_keyring, navigator_key, dsl_key, subject=f"{REFERENCE} {CHILD}")
    with pytest.raises(AssertionError, match="child data outside the encryption"):
        check(raw)


def test_a_date_in_an_outer_header_fails(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    raw = make(gateway_keyring, navigator_key, dsl_key, extra=(("X-Note", "born 14/03/2016"),))
    with pytest.raises(AssertionError, match="a date outside the encryption"):
        check(raw)


def test_a_subject_without_the_reference_fails(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    raw = make(gateway_keyring, navigator_key, dsl_key, subject="Operation Encompass")
    with pytest.raises(AssertionError, match="does not carry"):
        check(raw)


def test_a_sibling_at_another_school_named_inside_fails(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    inner = notification(f"{CHILD} and {SIBLING_ELSEWHERE}")
    with pytest.raises(AssertionError, match="names other schools' children"):
        check(make(gateway_keyring, navigator_key, dsl_key, inner))


def test_a_child_of_this_school_missing_inside_fails(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    with pytest.raises(AssertionError, match="does not name"):
        check(make(gateway_keyring, navigator_key, dsl_key), must_contain=[CHILD, "Isla Moss"])


def test_a_message_also_encrypted_to_another_key_fails(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    key_factory: KeyFactory,
    check: Callable[..., object],
) -> None:
    other = key_factory.make("dsl@march-academy.example.org")
    other.install_public(gateway_keyring)
    armored = gateway_keyring.gpg.encrypt(
        bytes(notification()),
        [dsl_key.fingerprint, other.fingerprint],
        sign=True,
        always_trust=True,
        extra_args=["--local-user", navigator_key.fingerprint],
    ).data
    raw = with_armor(make(gateway_keyring, navigator_key, dsl_key), armored)
    with pytest.raises(AssertionError, match="more than the one recipient"):
        check(raw)


def test_an_unsigned_message_fails(
    gateway_keyring: Keyring, navigator_key: PgpKey, dsl_key: PgpKey, check: Callable[..., object]
) -> None:
    armored = gateway_keyring.gpg.encrypt(
        bytes(notification()), dsl_key.fingerprint, always_trust=True
    ).data
    raw = with_armor(make(gateway_keyring, navigator_key, dsl_key), armored)
    with pytest.raises(AssertionError, match="no good signature"):
        check(raw)


def test_a_message_signed_by_another_key_fails(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    dsl_key: PgpKey,
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
    check: Callable[..., object],
) -> None:
    impostor = key_factory.make("navigator@elsewhere.example.org")
    impostor.install_secret(gateway_keyring)
    raw = make(gateway_keyring, impostor, dsl_key)
    reader = recipient_home(dsl_key)
    impostor.install_public(reader)
    with pytest.raises(AssertionError, match="not the Navigator's key"):
        check(raw, recipient_home_or_keyring=reader)


def test_a_message_for_another_recipient_fails(
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    key_factory: KeyFactory,
    check: Callable[..., object],
) -> None:
    other = key_factory.make("dsl@march-academy.example.org")
    other.install_public(gateway_keyring)
    with pytest.raises(AssertionError, match="cannot decrypt"):
        check(make(gateway_keyring, navigator_key, other))


def test_a_plain_multipart_message_fails(check: Callable[..., object]) -> None:
    message = notification()
    message.replace_header("Subject", REFERENCE)
    with pytest.raises(AssertionError, match="multipart/alternative"):
        check(bytes(message))

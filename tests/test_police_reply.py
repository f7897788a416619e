"""What goes back to the police sender: a signed receipt (counts only) once an intake is
recorded, and a signed reply when nothing could be taken from their mail.

The signature is checked by the gateway's own reading of police mail
(gateway/sender_auth.py), with the Navigator standing in as the allow-listed sender: the
same RFC 3156 §5 structure, verified by GnuPG over the exact bytes of the first part.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from pgp_keys import PgpKey

from gateway.config import PoliceSection
from gateway.keyring import Keyring
from gateway.pgpmime import OuterHeaders, SealingError, sign
from gateway.sender_auth import authenticate

NAVIGATOR_FROM = "Education Navigator <navigator@mash.example.org>"
POLICE = "da-desk@police.example.org"


def headers(**changes: object) -> OuterHeaders:
    values: dict[str, object] = {
        "from_addr": NAVIGATOR_FROM,
        "to_addr": POLICE,
        "subject": "Receipt GW-0123456789",
        "date": datetime(2026, 3, 2, 7, 12, tzinfo=UTC),
        "message_id": "<GW-0123456789.abc@mash.example.org>",
        "extra": (("Auto-Submitted", "auto-replied"),),
    }
    values.update(changes)
    return OuterHeaders(**values)  # type: ignore[arg-type]


def text(body: str) -> EmailMessage:
    message = EmailMessage()
    message.set_content(body, cte="quoted-printable")
    del message["MIME-Version"]
    return message


def as_police_mail_from_navigator(navigator: PgpKey) -> PoliceSection:
    return PoliceSection(senders=(navigator.email,), fingerprints=(navigator.fingerprint,))


def test_a_signed_only_message_verifies_as_pgp_mime_signed_by_the_navigator(
    gateway_keyring: Keyring, navigator_key: PgpKey
) -> None:
    inner = text("Files received: 1\nChildren: 3\nÉcole: non-ASCII travels quoted-printable\n")
    raw = sign(
        gateway_keyring, inner, signer=navigator_key.fingerprint, passphrase=None, headers=headers()
    )
    verdict = authenticate(
        raw,
        police=as_police_mail_from_navigator(navigator_key),
        keyring=gateway_keyring,
        passphrase=None,
    )
    assert verdict.ok, verdict.reason
    assert verdict.signer == navigator_key.fingerprint
    assert verdict.payload is not None
    assert "Children: 3" in verdict.payload.get_content()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"micalg=pgp-sha256" in head and b"Auto-Submitted: auto-replied" in head
    assert b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n")


def test_a_signed_message_altered_by_one_byte_does_not_verify(
    gateway_keyring: Keyring, navigator_key: PgpKey
) -> None:
    raw = sign(
        gateway_keyring,
        text("Children: 3\n"),
        signer=navigator_key.fingerprint,
        passphrase=None,
        headers=headers(),
    )
    altered = raw.replace(b"Children: 3", b"Children: 4")
    verdict = authenticate(
        altered,
        police=as_police_mail_from_navigator(navigator_key),
        keyring=gateway_keyring,
        passphrase=None,
    )
    assert not verdict.ok
    assert "altered after signing" in verdict.reason


def test_an_eight_bit_entity_is_not_signed(gateway_keyring: Keyring, navigator_key: PgpKey) -> None:
    inner = EmailMessage()
    inner.set_content("École\n", cte="8bit")
    with pytest.raises(SealingError, match="7-bit"):
        sign(
            gateway_keyring,
            inner,
            signer=navigator_key.fingerprint,
            passphrase=None,
            headers=headers(),
        )

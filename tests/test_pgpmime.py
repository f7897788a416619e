from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from pgp_keys import KeyFactory, PgpKey

from gateway.keyring import Keyring
from gateway.pgpmime import OuterHeaders, open_sealed, seal


def inner_message(text: str) -> EmailMessage:
    message = EmailMessage()
    message.set_content(text)
    message.add_alternative(f"<p>{text}</p>", subtype="html")
    return message


def headers(reference: str = "EG-2025-0001") -> OuterHeaders:
    return OuterHeaders(
        from_addr="Education Navigator <navigator@mash.example.org>",
        to_addr="dsl@school.example.org",
        subject=f"Operation Encompass notification {reference}",
        date=datetime(2025, 12, 1, 9, 0, tzinfo=UTC),
        message_id=f"<{reference}@mash.example.org>",
        disposition_notification_to="navigator@mash.example.org",
    )


def test_sealed_message_opens_for_its_recipient(
    gateway_keyring: Keyring,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    dsl = key_factory.make("dsl@school.example.org")
    dsl.install_public(gateway_keyring)
    raw = seal(
        gateway_keyring,
        inner_message("Amelia Hartley"),
        recipient=dsl.fingerprint,
        signer=navigator_key.fingerprint,
        passphrase=None,
        headers=headers(),
    )
    opened = open_sealed(recipient_home(dsl), raw)
    assert opened.signature_valid
    assert opened.signer_fingerprint == navigator_key.fingerprint
    assert "Amelia Hartley" in opened.inner.get_body(("plain",)).get_content()

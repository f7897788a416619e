"""What goes back to the police sender: a signed receipt (counts only) once an intake is
recorded, and a signed reply when nothing could be taken from their mail.

The signature is checked by the gateway's own reading of police mail
(gateway/sender_auth.py), with the Navigator standing in as the allow-listed sender: the
same RFC 3156 §5 structure, verified by GnuPG over the exact bytes of the first part.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from pgp_keys import KeyFactory, PgpKey

from gateway import outbox
from gateway.config import DispatchSection, NavigatorSection, PoliceSection
from gateway.errors import ConfigError
from gateway.keyring import Keyring
from gateway.outbox import MessageKind
from gateway.pgpmime import OuterHeaders, SealingError, open_sealed, sign
from gateway.police_reply import (
    IntakeCounts,
    not_to_answer,
    queue_to_police,
    receipt_message,
)
from gateway.sealing import Sealer
from gateway.sender_auth import authenticate
from gateway.store import open_state

NAVIGATOR_FROM = "Education Navigator <navigator@mash.example.org>"
POLICE = "da-desk@police.example.org"
AT = datetime(2026, 3, 2, 7, 12, tzinfo=UTC)


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


# --------------------------------------------------------------------------------------
# Queueing an answer to the police sender


@pytest.fixture
def sealer(gateway_keyring: Keyring, navigator_key: PgpKey) -> Sealer:
    return Sealer(
        keyring=gateway_keyring,
        navigator=NavigatorSection(
            name="Education Navigator",
            email=navigator_key.email,
            fingerprint=navigator_key.fingerprint,
        ),
        passphrase=None,
        dispatch=DispatchSection(domain="mash.example.org"),
        template="full",
    )


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.sqlite3")
    yield connection
    connection.close()


def receipt() -> EmailMessage:
    return receipt_message(
        "GW-0123456789",
        [IntakeCounts(7, True, AT, 2, 3, 2, 0, 0, 1)],
        files=1,
        refused=0,
        at=AT,
    )


def queue(
    conn: sqlite3.Connection,
    sealer: Sealer,
    police: PoliceSection,
    *,
    signer: str | None,
    sender: str = POLICE,
) -> bytes:
    row = queue_to_police(
        conn,
        receipt(),
        kind=MessageKind.RECEIPT,
        key="receipt/mash/1/1",
        sender=sender,
        in_reply_to="<daily.20260302@police.example.org>",
        police=police,
        signer=signer,
        sealer=sealer,
        now=AT,
        actor="test",
    )
    return outbox.get_message(conn, row).body


def test_a_receipt_to_a_desk_authenticated_by_dkim_is_signed_only(
    conn: sqlite3.Connection, sealer: Sealer, navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    desks = [key_factory.make(POLICE), key_factory.make("second-desk@police.example.org")]
    for desk in desks:
        desk.install_public(sealer.keyring)
    sealer.keyring.refresh()
    police = PoliceSection(senders=(POLICE,), fingerprints=tuple(d.fingerprint for d in desks))
    raw = queue(conn, sealer, police, signer=None)  # two keys pinned, none signed: which?
    assert b"multipart/signed" in raw.split(b"\r\n\r\n", 1)[0]
    verdict = authenticate(
        raw,
        police=as_police_mail_from_navigator(navigator_key),
        keyring=sealer.keyring,
        passphrase=None,
    )
    assert verdict.ok, verdict.reason
    assert verdict.payload is not None and "Children: 3" in verdict.payload.get_content()


def test_a_receipt_is_encrypted_to_the_one_pinned_police_key(
    conn: sqlite3.Connection,
    sealer: Sealer,
    navigator_key: PgpKey,
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    desk = key_factory.make(POLICE)
    desk.install_public(sealer.keyring)
    sealer.keyring.refresh()
    police = PoliceSection(senders=(POLICE,), fingerprints=(desk.fingerprint,))
    raw = queue(conn, sealer, police, signer=None)
    opened = open_sealed(recipient_home(desk), raw)
    assert opened.signature_valid and opened.signer_fingerprint == navigator_key.fingerprint
    assert "Children: 3" in opened.inner.get_content()


def test_a_police_key_that_cannot_encrypt_gets_the_receipt_signed_only(
    conn: sqlite3.Connection, sealer: Sealer, key_factory: KeyFactory
) -> None:
    desk = key_factory.make(POLICE, sign_only=True)
    desk.install_public(sealer.keyring)
    sealer.keyring.refresh()
    police = PoliceSection(senders=(POLICE,), fingerprints=(desk.fingerprint,))
    raw = queue(conn, sealer, police, signer=desk.fingerprint)
    assert b"multipart/signed" in raw.split(b"\r\n\r\n", 1)[0]


def test_an_address_off_the_allow_list_is_never_answered(
    conn: sqlite3.Connection, sealer: Sealer
) -> None:
    police = PoliceSection(senders=(POLICE,), authentication="dkim", trusted_authserv_id="mx")
    with pytest.raises(ConfigError, match="allow-list"):
        queue(conn, sealer, police, signer=None, sender="evil@attacker.example")
    assert conn.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("header", "answered"),
    [
        ("Auto-Submitted: no", True),
        ("Auto-Submitted: No (a person sent it)", True),
        ("Auto-Submitted: auto-generated", False),
        ("Auto-Submitted: auto-replied", False),
        ("Auto-Submitted: auto-notified; owner-email=x@y.example", False),
        ("X-Encompass-Loop: mash.example.org", False),
        ("X-Other: 1", True),
    ],
)
def test_automatic_mail_and_our_own_are_never_answered(header: str, answered: bool) -> None:
    raw = f"From: {POLICE}\r\n{header}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    assert (not_to_answer(raw) is None) is answered


def test_a_receipt_counts_and_names_no_one() -> None:
    text = receipt().get_content()
    assert "Intake 7" in text and "Incidents: 2" in text and "Children: 3" in text
    assert "Exceptions for the Education Navigator: 1" in text

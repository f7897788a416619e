"""Police mail built by code for the sender-authentication and attachment tests.

Every mail is assembled as bytes, the way it would sit in the MASH mailbox: the receiving
servers' trace headers on top (Authentication-Results, Received), then the sender's own
headers, then the content. PGP/MIME signed mail is written out by hand around the exact
bytes GnuPG signed (RFC 3156 §5), so a test can alter a single byte after signing. All
names and addresses are invented.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from pgp_keys import PgpKey
from police_workbooks import long_sheet

from gateway.config import PoliceSection
from gateway.keyring import Keyring, open_keyring
from gateway.pgpmime import OuterHeaders, seal

POLICE = "da-desk@police.example.org"
POLICE_DOMAIN = "police.example.org"
COLLEAGUE = "j.officer@police.example.org"
STRANGER = "evil@attacker.example"
MASH = "mash@mash.example.org"
TRUSTED = "mx.mash.example.org"
SIGNED_BOUNDARY = "police-signed.b0undary"
BODY_TEXT = "Today's Operation Encompass incidents are attached."

Header = tuple[str, str]


def workbook() -> bytes:
    """A real, small police .xlsx."""
    return long_sheet(
        ["CC-2001", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "2016-05-04"]
    )


def content(*files: tuple[str, bytes], text: str = BODY_TEXT) -> EmailMessage:
    """The police desk's message: a text part and each (file name, bytes) as an attachment
    (non-ASCII names come out RFC 2231-encoded, as Thunderbird and Outlook write them)."""
    message = EmailMessage()
    message.set_content(text)
    for name, data in files:
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    del message["MIME-Version"]  # an entity's header; the whole mail gets its own
    return message


def entity_bytes(entity: EmailMessage) -> bytes:
    return entity.as_bytes(policy=email.policy.SMTP)


def authentication_results(
    *,
    authserv_id: str = TRUSTED,
    dkim: str = "pass",
    signing_domain: str = POLICE_DOMAIN,
    dmarc: str = "pass",
    header_from: str = POLICE_DOMAIN,
) -> str:
    """An Authentication-Results value as rspamd / OpenDKIM write it: folded, commented,
    several results, a quoted header.b."""
    return (
        f"{authserv_id};\r\n"
        f"\tdkim={dkim} (2048-bit key; unprotected) header.d={signing_domain}\r\n"
        f'\theader.i=@{signing_domain} header.s=sel2026 header.b="Zm9v/ba+";\r\n'
        f"\tdmarc={dmarc} (p=REJECT sp=REJECT dis=NONE) header.from={header_from};\r\n"
        f"\tspf=pass (mx.mash.example.org: domain of {POLICE} designates 192.0.2.10 "
        f"as permitted sender) smtp.mailfrom={POLICE}"
    )


def received_by_mash(results: str | None = None) -> list[Header]:
    """The trace headers the MASH server prepends: its Authentication-Results above the
    Received line of its own hop."""
    trace: list[Header] = []
    if results is not None:
        trace.append(("Authentication-Results", results))
    trace.append(
        (
            "Received",
            "from mail.police.example.org (mail.police.example.org [192.0.2.10])\r\n"
            f"\tby {TRUSTED} (Postfix) with ESMTPS id 4QXc1Z; Mon, 2 Mar 2026 07:12:01 +0000",
        )
    )
    return trace


def sent_by_police(forged: Sequence[Header] = ()) -> list[Header]:
    """The trace of the police's own server, below the MASH server's; `forged` headers sit
    on top of it, where a sender could have written them."""
    return [
        *forged,
        (
            "Received",
            "from desk-pc.police.example.org (desk-pc [10.1.2.3])\r\n"
            "\tby mail.police.example.org with ESMTPSA; Mon, 2 Mar 2026 07:11:58 +0000",
        ),
    ]


def mail(
    body: EmailMessage | bytes,
    *,
    from_: str | None = POLICE,
    to: str = MASH,
    subject: str = "Daily Encompass return",
    message_id: str = "<daily.20260302@police.example.org>",
    trace: Sequence[Header] = (),
    headers: Sequence[Header] = (),
) -> bytes:
    """A whole mail: `trace` on top, then From (raw, as given; None leaves it out), To,
    Subject, Date, Message-ID, `headers`, and the entity `body` (its own headers first)."""
    own: list[Header] = [
        *trace,
        *([("From", from_)] if from_ is not None else []),
        ("To", to),
        ("Subject", subject),
        ("Date", "Mon, 2 Mar 2026 07:11:57 +0000"),
        ("Message-ID", message_id),
        *headers,
        ("MIME-Version", "1.0"),
    ]
    block = "".join(f"{name}: {value}\r\n" for name, value in own).encode("utf-8")
    return block + (entity_bytes(body) if isinstance(body, EmailMessage) else body)


def signed(
    entity: EmailMessage, *, keyring: Keyring, signer: str, at: datetime | None = None
) -> bytes:
    """`entity` as an RFC 3156 multipart/signed entity, with a detached signature by the key
    (or subkey, with a trailing '!') `signer` over the entity's exact CRLF bytes; made as if
    at `at` (GnuPG's faked system time) when given, as by a key that has expired since."""
    data = entity_bytes(entity)
    faked = ["--faked-system-time", f"{at.astimezone(UTC):%Y%m%dT%H%M%S}"] if at else []
    signature = keyring.gpg.sign(
        data, keyid=signer, detach=True, binary=False, extra_args=faked or None
    )
    armored = bytes(signature.data)
    assert armored.startswith(b"-----BEGIN PGP SIGNATURE-----"), signature.stderr
    armored = armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return (
        (
            "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
            f' protocol="application/pgp-signature"; boundary="{SIGNED_BOUNDARY}"\r\n'
            "\r\n"
            "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
            f"--{SIGNED_BOUNDARY}\r\n"
        ).encode("ascii")
        + data  # ends with CRLF; the CRLF below belongs to the delimiter (RFC 2046 §5.1.1)
        + (
            f"\r\n--{SIGNED_BOUNDARY}\r\n"
            'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
            "Content-Description: OpenPGP digital signature\r\n"
            'Content-Disposition: attachment; filename="signature.asc"\r\n'
            "\r\n"
        ).encode("ascii")
        + armored
        + f"\r\n--{SIGNED_BOUNDARY}--\r\n".encode("ascii")
    )


def signed_and_encrypted(
    entity: EmailMessage, *, keyring: Keyring, signer: str, recipient: str
) -> bytes:
    """A whole mail from POLICE, `entity` signed and encrypted in one operation (RFC 3156
    §6.2) through the gateway's own sealing, which makes exactly that form."""
    return seal(
        keyring,
        entity,
        recipient=recipient,
        signer=signer,
        passphrase=None,
        headers=OuterHeaders(
            from_addr=POLICE,
            to_addr=MASH,
            subject="Daily Encompass return",
            date=datetime(2026, 3, 2, 7, 11, 57, tzinfo=UTC),
            message_id="<daily.20260302@police.example.org>",
            disposition_notification_to=POLICE,
        ),
    )


def with_trace(raw: bytes, trace: Sequence[Header]) -> bytes:
    """`raw` with `trace` headers prepended, as the receiving servers add them."""
    return "".join(f"{name}: {value}\r\n" for name, value in trace).encode("utf-8") + raw


def encrypted_file(
    data: bytes, *, keyring: Keyring, recipient: str, signer: str | None = None
) -> bytes:
    """`data` as a binary OpenPGP message (a .gpg file) to `recipient`, signed by `signer`."""
    result = keyring.gpg.encrypt(data, recipient, sign=signer, always_trust=True, armor=False)
    assert result.ok, result.stderr
    return bytes(result.data)


def police_keyring(home: Path, police: PgpKey, mash: PgpKey) -> Keyring:
    """The police desk's own GnuPG: its secret key, and the MASH key to encrypt to."""
    keyring = open_keyring(home)
    police.install_secret(keyring)
    mash.install_public(keyring)
    return keyring


def add_signing_subkey(keyring: Keyring, key: PgpKey) -> tuple[str, bytes]:
    """Give `key` (secret half in `keyring`) a signing subkey; its fingerprint and the
    updated public key to import into the gateway."""
    added = keyring.gpg.add_subkey(key.fingerprint, "", "ed25519", "sign", "0")
    assert added.fingerprint, added.stderr
    return added.fingerprint, keyring.gpg.export_keys(key.fingerprint, armor=True).encode()


def settings(mode: str = "pgp", **changes: object) -> PoliceSection:
    """A police section allowing POLICE, trusting TRUSTED's results, in `mode`; the tests
    add the pinned fingerprints and the MASH key's."""
    values: dict[str, object] = {
        "senders": (POLICE,),
        "authentication": mode,
        "trusted_authserv_id": TRUSTED,
    }
    values.update(changes)
    return PoliceSection.model_validate(values)

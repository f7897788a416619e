"""The gateway's own mail: alerts and digests to the Navigator and the manager, sealed to
their keys, queued in the same durable outbox as notifications and sent at once.

Like a notification it is signed by the Navigator's key and encrypted to its one recipient's
pinned key, and outside the encryption it carries only a reference code. Unlike one it is
automatic mail: `Auto-Submitted: auto-generated` (RFC 3834) and the loop header, so that
nothing answers it and the gateway never answers it back (gateway/inbound.py: OWN_LOOP),
and it asks for no read receipt.

Mail to a school contact that carries no personal data (a request for a renewed key, the
welcome pack of a school joining the scheme) is signed only (`queue_signed`): it must reach
a contact whose key is expiring, gone, or not sent yet.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr

from gateway import outbox
from gateway.errors import ConfigError
from gateway.outbox import MessageKind
from gateway.pgpmime import OuterHeaders, seal, sign
from gateway.sealing import Sealer

LOOP_HEADER = "X-Encompass-Loop"
_PREFIX = {
    MessageKind.ALERT: "Gateway alert",
    MessageKind.DIGEST: "Gateway digest",
    MessageKind.FORWARD: "Gateway forward",
    MessageKind.RETURN_SHEET: "Return sheet",
    MessageKind.KEY_NOTICE: "Key renewal",
    MessageKind.WELCOME: "Operation Encompass welcome pack",
    MessageKind.COMMAND_ANSWER: "Commands answered",
}


def own_reference(kind: MessageKind, key: str) -> str:
    """A reference for one of the gateway's own messages: "GW-" and 10 hex digits of a hash
    of what it is about (the same alert is never queued twice)."""
    digest = hashlib.sha256(f"encompass-gateway/{kind.value}/{key}".encode()).hexdigest()
    return f"GW-{digest[:10].upper()}"


def alert_message(title: str, lines: list[str]) -> EmailMessage:
    """A short plain-text alert (inside the encryption: it may name what the Navigator needs)."""
    message = EmailMessage()
    message["Subject"] = title
    message.set_content("\n".join([title, "", *lines, "", "-- Encompass Gateway"]) + "\n")
    del message["MIME-Version"]  # an inner entity: the outer message has its own
    return message


def queue_to_navigator(
    conn: sqlite3.Connection,
    inner: EmailMessage,
    *,
    kind: MessageKind,
    key: str,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> int:
    """Seal `inner` to the Navigator's own key and queue it, due now; returns the row id.
    `key` names what it is about, so queueing the same thing again stores nothing new."""
    navigator = sealer.navigator
    return queue_sealed(
        conn,
        inner,
        kind=kind,
        key=key,
        to=(navigator.name, navigator.email),
        role="navigator",
        fingerprint=sealer.signer,
        sealer=sealer,
        now=now,
        actor=actor,
    )


def queue_sealed(
    conn: sqlite3.Connection,
    inner: EmailMessage,
    *,
    kind: MessageKind,
    key: str,
    to: tuple[str, str],
    role: str,
    fingerprint: str | None,
    sealer: Sealer,
    now: datetime,
    actor: str,
    also_to: Sequence[str] = (),
    in_reply_to: str | None = None,
) -> int:
    """Seal `inner` to `fingerprint` (the recipient's pinned key) and queue it, due now.

    `also_to` are more keys of the same reader it is encrypted to (the outbox row names the
    first). `in_reply_to` (a Message-ID) makes it an automatic answer to that mail (RFC 3834
    `auto-replied`, In-Reply-To and References) rather than mail of its own.
    """
    if fingerprint is None:
        raise ConfigError(
            f"no key is configured for {to[1]}: the gateway's own mail is encrypted like a "
            "notification, so it cannot be sent"
        )
    reference = own_reference(kind, key)
    headers = _own_headers(kind, reference, to, sealer, now, in_reply_to=in_reply_to)
    body = seal(
        sealer.keyring,
        inner,
        recipient=fingerprint,
        signer=sealer.signer,
        passphrase=sealer.passphrase,
        headers=headers,
        also_to=also_to,
    )
    return _store(conn, kind, reference, to, role, fingerprint, headers, body, sealer, now, actor)


def queue_signed(
    conn: sqlite3.Connection,
    inner: EmailMessage,
    *,
    kind: MessageKind,
    key: str,
    to: tuple[str, str],
    role: str,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> int:
    """Sign `inner` with the Navigator's key, without encrypting it, and queue it, due now;
    returns the row id. Only for mail that holds no personal data: the caller's template is
    what guarantees that. The outbox row's fingerprint is the signing key's (nothing is
    encrypted to anyone)."""
    reference = own_reference(kind, key)
    headers = _own_headers(kind, reference, to, sealer, now)
    body = sign(
        sealer.keyring, inner, signer=sealer.signer, passphrase=sealer.passphrase, headers=headers
    )
    return _store(conn, kind, reference, to, role, sealer.signer, headers, body, sealer, now, actor)


def _own_headers(
    kind: MessageKind,
    reference: str,
    to: tuple[str, str],
    sealer: Sealer,
    now: datetime,
    *,
    in_reply_to: str | None = None,
) -> OuterHeaders:
    domain = sealer.dispatch.domain
    threading = (("In-Reply-To", in_reply_to), ("References", in_reply_to)) if in_reply_to else ()
    return OuterHeaders(
        from_addr=formataddr((sealer.navigator.name, sealer.navigator.email)),
        to_addr=formataddr(to),
        subject=f"{_PREFIX.get(kind, 'Gateway mail')} {reference}",
        date=now,
        message_id=outbox.message_id_for(reference, to[1], domain),
        extra=(
            ("Auto-Submitted", "auto-generated" if in_reply_to is None else "auto-replied"),
            (LOOP_HEADER, domain),
            *threading,
        ),
    )


def _store(
    conn: sqlite3.Connection,
    kind: MessageKind,
    reference: str,
    to: tuple[str, str],
    role: str,
    fingerprint: str,
    headers: OuterHeaders,
    body: bytes,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> int:
    settings = sealer.dispatch
    return outbox.store_sealed(
        conn,
        kind=kind,
        reference=reference,
        contact_role=role,
        recipient=to[1],
        fingerprint=fingerprint,
        message_id=headers.message_id,
        return_path=outbox.return_path_for(
            headers.message_id, settings.bounce_local_part, settings.domain
        ),
        due=now,
        body=body,
        sealed_at=now,
        actor=actor,
    )

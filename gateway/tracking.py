"""The Navigator's mailbox: what came back about each notification, recorded and acted on.

Every inbound message is classified (gateway/inbound.py) and tied to the outbox message it
is about — by our Message-ID (a read receipt, a reply), by the per-message return path (a
bounce), or by the reference code in the subject — and recorded as a tracking event, so the
chase list knows what was read and what bounced. A missing receipt is never evidence that a
notification was not read: only events are recorded, never their absence.

What it sets going, in the same transaction as the event (and the mail ledger's record):

- a permanent bounce of a notification: the message and its notification become exceptions,
  the notification is resent to the school's stand-ins (gateway/resend.py), and the
  Navigator is alerted — which reference, the status, and who was sent it instead;
- an out-of-office reply to a notification: the same resend; the Navigator is alerted only
  when nobody else could be sent it (otherwise the flagged reply is the note);
- a reply: opened with the Navigator's key when encrypted (Outlook's mangling repaired) and
  forwarded to the Navigator, sealed, saying which reference and school it is about.

Mail from the Navigator's own address that is not automatic is the Navigator's signed
commands (gateway/command_mail.py), once command-signer keys are pinned: verified, acted on
or refused, and answered to the Navigator, never recorded as a tracking event.

Nothing here ever writes to the sender of an inbound message: resends go to the school's
listed contacts, alerts and forwards to the Navigator. Automatic mail (RFC 3834) and our own
(the loop header) therefore never get an answer.

What needs a person stays in the mailbox, flagged: replies, unmatched mail, permanent
bounces and out-of-office replies. The gateway's own mail (alerts, digests, forwards: the
Navigator's mailbox is where they arrive) stays where it is too. The rest is moved to the
processed folder.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr

from gateway import audit, outbox
from gateway.clock import Clock
from gateway.command_mail import is_command_mail, take_command_mail
from gateway.config import DispatchSection, LoadedConfig
from gateway.directory import SqliteDirectory
from gateway.inbound import Classified, Kind, classify
from gateway.keyring import Keyring
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey
from gateway.model import role_label
from gateway.operations import make_sealer
from gateway.outbox import MessageKind, MessageState, OutboxMessage, return_path_for_token
from gateway.own_mail import alert_message, queue_to_navigator
from gateway.pgpmime import OpeningError, open_sealed
from gateway.replies import Encryption, body_text, header_text, parse, repair_outlook_pgp_mime
from gateway.resend import Resent, resend_to_stand_ins
from gateway.sealing import Sealer
from gateway.store import transaction

# IMAP keyword set on what the Navigator must look at (RFC 3501 §2.3.2: an atom).
NEEDS_A_PERSON = "$EncompassNeedsAPerson"
# IMAP keyword set on the gateway's own mail come back, left in place for the Navigator.
OWN_MAIL = "$EncompassOwnMail"
_FOR_A_PERSON = frozenset({Kind.REPLY, Kind.UNMATCHED, Kind.BOUNCE_PERMANENT, Kind.OUT_OF_OFFICE})
# A message the server took (`sending`: taken, and the run died before recording it).
_LEFT = frozenset({MessageState.SENT, MessageState.SENDING})


@dataclass(frozen=True)
class TrackingHandler:
    """Records one message of the Navigator's mailbox, and acts on it.

    `template` is the notification template (rules/routing.toml) a resend is rendered with.
    """

    conn: sqlite3.Connection
    config: LoadedConfig
    keyring: Keyring
    clock: Clock
    actor: str
    template: str

    @property
    def dispatch(self) -> DispatchSection:
        return self.config.config.dispatch

    def __call__(self, raw: bytes, key: LedgerKey) -> Disposition:
        found = classify(
            raw, own_domain=self.dispatch.domain, bounce_local_part=self.dispatch.bounce_local_part
        )
        if is_command_mail(raw, found, self.config.config.navigator):
            return take_command_mail(
                self.conn,
                raw,
                key,
                config=self.config,
                sealer=self._sealer(),
                now=self.clock.now(),
                actor=self.actor,
            )
        row, reference = self._about(found, _sender(raw))
        now = self.clock.now()
        with transaction(self.conn):
            # The same report twice (a server's copy, an autoresponder repeating itself) is
            # recorded, but acted on once.
            repeated = row is not None and self._seen(found.kind, row)
            self.conn.execute(
                "INSERT INTO tracking_event (kind, message_row, reference, status,"
                " final_recipient, at, mailbox, uidvalidity, uid, summary)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    found.kind.value,
                    row,
                    reference,
                    found.status,
                    found.final_recipient,
                    now.astimezone(UTC).isoformat(),
                    key.mailbox,
                    key.uidvalidity,
                    key.uid,
                    found.summary,
                ),
            )
            audit.append(
                self.conn,
                f"tracking.{found.kind.value}",
                actor=self.actor,
                at=now,
                reference=reference,
                message_row=row,
                status=found.status,
                mailbox=key.mailbox,
                uid=key.uid,
            )
            message = outbox.get_message(self.conn, row) if row is not None else None
            if found.kind is Kind.REPLY:
                self._forward(raw, found, reference, message, key, now=now)
            elif message is not None and not repeated:
                self._act(found, message, now=now)
        if found.kind is Kind.OWN_LOOP:
            return Disposition(DispositionKind.IGNORED, reference=reference, flag=OWN_MAIL)
        if found.kind is Kind.DELIVERED:
            return Disposition(DispositionKind.IGNORED, reference=reference)
        if found.kind in _FOR_A_PERSON:
            return Disposition(
                DispositionKind.TRACKED,
                reference=reference,
                flag=NEEDS_A_PERSON,
                reason=found.summary,
            )
        return Disposition(DispositionKind.TRACKED, reference=reference)

    def _seen(self, kind: Kind, row: int) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM tracking_event WHERE kind = ? AND message_row = ?",
                (kind.value, row),
            ).fetchone()
            is not None
        )

    def _sealer(self) -> Sealer:
        # Made when needed: a configuration without the Navigator's key still records events.
        return make_sealer(self.config, self.keyring, template=self.template)

    # ----------------------------------------------------------------------------------
    # Bounces and out-of-office replies: the notification resent to the school's stand-ins

    def _act(self, found: Classified, message: OutboxMessage, *, now: datetime) -> None:
        if message.kind is not MessageKind.NOTIFICATION or message.state not in _LEFT:
            return  # only a notification that left has a school waiting for it
        if found.kind is Kind.BOUNCE_PERMANENT:
            status = found.status or "no status given"
            outbox.mark_bounced(
                self.conn,
                message.id,
                status=found.status,
                error=f"the {role_label(message.contact_role)}'s mail server returned it for good"
                f" ({status})",
                at=now,
                actor=self.actor,
            )
            resent = self._resend(message, found.kind, now=now)
            self._alert_bounce(message, status, resent, now=now)
        elif found.kind is Kind.OUT_OF_OFFICE:
            resent = self._resend(message, found.kind, now=now)
            if not resent.roles:
                self._alert_away(message, resent, now=now)

    def _resend(self, message: OutboxMessage, cause: Kind, *, now: datetime) -> Resent:
        return resend_to_stand_ins(
            self.conn,
            message,
            cause=cause.value,
            directory=SqliteDirectory(self.conn),
            sealer=self._sealer(),
            now=now,
            actor=self.actor,
        )

    def _alert_bounce(
        self, message: OutboxMessage, status: str, resent: Resent, *, now: datetime
    ) -> None:
        lines = [
            f"The notification {message.reference} to {_school(resent)} could not be delivered"
            f" to the school's {role_label(message.contact_role)} ({message.recipient}): their mail"
            f" server returned it for good, status {status}.",
            "",
            _resent_line(resent),
            "",
            "The notification is an exception until you resolve it. The returned mail is"
            " flagged in the Navigator's mailbox.",
        ]
        self._queue_alert(
            f"A notification bounced: {message.reference}",
            lines,
            key=f"bounce/{message.message_id}",
            now=now,
        )

    def _alert_away(self, message: OutboxMessage, resent: Resent, *, now: datetime) -> None:
        lines = [
            f"The school's {role_label(message.contact_role)} ({message.recipient}) at"
            f" {_school(resent)} sent an automatic out-of-office reply to the notification"
            f" {message.reference}.",
            "",
            _resent_line(resent),
        ]
        self._queue_alert(
            f"Out of office, and nobody else to send it to: {message.reference}",
            lines,
            key=f"out_of_office/{message.message_id}",
            now=now,
        )

    def _queue_alert(self, title: str, lines: list[str], *, key: str, now: datetime) -> None:
        queue_to_navigator(
            self.conn,
            alert_message(title, lines),
            kind=MessageKind.ALERT,
            key=key,
            sealer=self._sealer(),
            now=now,
            actor=self.actor,
        )

    # ----------------------------------------------------------------------------------
    # Replies: opened with the Navigator's key and forwarded to the Navigator, sealed

    def _forward(
        self,
        raw: bytes,
        found: Classified,
        reference: str | None,
        message: OutboxMessage | None,
        key: LedgerKey,
        *,
        now: datetime,
    ) -> None:
        sealer = self._sealer()
        outer = parse(raw)
        about = self._about_line(reference, message)
        lines = [
            about,
            f"From: {header_text(outer, 'From')}",
            f"Date: {header_text(outer, 'Date')}",
            f"Subject: {header_text(outer, 'Subject')}",
        ]
        reply: EmailMessage | None = None
        if found.encryption is Encryption.NONE:
            lines += ["It was not encrypted.", "", "-" * 20, body_text(outer)]
        else:
            try:
                opened = open_sealed(
                    self.keyring, repair_outlook_pgp_mime(raw), passphrase=sealer.passphrase
                )
            except OpeningError as error:
                lines += [
                    f"It is encrypted ({found.encryption.value}) but could not be opened with the"
                    f" Navigator's key: {error}",
                    "The original is flagged in the Navigator's mailbox.",
                ]
            else:
                reply = opened.inner
                signature = (
                    f"signed, valid signature by key {opened.signer_fingerprint}"
                    if opened.signature_valid
                    else "no valid signature"
                )
                lines += [
                    f"It was encrypted ({found.encryption.value}): {signature}.",
                    "",
                    "-" * 20,
                    body_text(reply),
                ]
        title = f"A reply about {reference}" if reference else "A reply"
        inner = alert_message(title, lines)
        if reply is not None:
            # The whole decrypted reply goes along, so no attachment of it is lost.
            inner.add_attachment(reply, disposition="attachment", filename="reply.eml")
            del inner["MIME-Version"]
        queue_to_navigator(
            self.conn,
            inner,
            kind=MessageKind.FORWARD,
            key=f"forward/{key.mailbox}/{key.uidvalidity}/{key.uid}",
            sealer=sealer,
            now=now,
            actor=self.actor,
        )

    def _about_line(self, reference: str | None, message: OutboxMessage | None) -> str:
        if reference is None:
            return "It names no single notification of the gateway's."
        found = self.conn.execute(
            "SELECT urn, json_extract(unseal(content), '$.school_name') AS school FROM notification"
            " WHERE reference = ?",
            (reference,),
        ).fetchone()
        school = f"{found['school']} (URN {found['urn']})" if found else "no school on record"
        to = f", sent to the school's {role_label(message.contact_role)}" if message else ""
        return f"It is about {reference}: {school}{to}."

    def _about(self, found: Classified, sender: str) -> tuple[int | None, str | None]:
        """The outbox message (row id) and reference the classified message is about.

        Exchange's out-of-office replies and Outlook's mangled replies keep only the subject:
        the reference code and the sender's address then name the message, when the sender
        is the one the notification went to.
        """
        for message_id in found.message_ids:
            hit = self.conn.execute(
                "SELECT id, reference FROM message WHERE message_id = ?", (message_id,)
            ).fetchone()
            if hit is not None:
                return hit["id"], hit["reference"]
        if found.token is not None:
            address = return_path_for_token(
                found.token, self.dispatch.bounce_local_part, self.dispatch.domain
            )
            hit = self.conn.execute(
                "SELECT id, reference FROM message WHERE lower(return_path) = ?",
                (address.lower(),),
            ).fetchone()
            if hit is not None:
                return hit["id"], hit["reference"]
        if found.reference is not None and sender:
            hit = self.conn.execute(
                "SELECT id, reference FROM message WHERE reference = ? AND lower(recipient) = ?",
                (found.reference, sender.lower()),
            ).fetchone()
            if hit is not None:
                return hit["id"], hit["reference"]
        return None, found.reference


def _sender(raw: bytes) -> str:
    """The address in the From header ("" when there is none to read)."""
    return parseaddr(header_text(parse(raw), "From"))[1].strip()


def _school(resent: Resent) -> str:
    return f"{resent.notification.school_name} (URN {resent.notification.urn})"


def _resent_line(resent: Resent) -> str:
    if resent.roles:
        return (
            "It has been sent now to the school's "
            + " and ".join(role_label(role) for role in resent.roles)
            + " instead."
        )
    return f"Nobody else at the school could be sent it: {resent.reason}. Telephone the school."

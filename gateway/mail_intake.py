"""The MASH inbox: a police mail in, its spreadsheets taken in — or the mail quarantined.

The handler a mailbox pass calls for each new message (gateway/mailbox_watch.py). Invariant
3 first: a mail is read only once its sender is allow-listed **and** it authenticates
(gateway/sender_auth.py); a spoofed From never gets a single row processed. Then every
spreadsheet attachment goes through the same intake as `encompass-gateway process`, each in
its own transaction, so a resent mail or a retried pass records nothing twice (the file's
SHA-256 is the intake's key).

Then the sender hears back (gateway/police_reply.py): a receipt, counts only, once the
intake is recorded; a reply saying what was refused when nothing could be taken. Both are
queued in the pass's transaction, so they exist if and only if what they report does; and
neither is ever sent for a mail that did not authenticate.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from gateway import audit
from gateway.clock import Clock
from gateway.config import LoadedConfig, PoliceSection
from gateway.errors import ConfigError, SpreadsheetRefused
from gateway.keyring import Keyring
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey
from gateway.operations import intake_limits, make_sealer, plan_bytes, take_in
from gateway.outbox import MessageKind
from gateway.own_mail import alert_message, own_reference, queue_to_navigator
from gateway.pgpmime import SealingError
from gateway.police_mail import RefusedFile, attachments
from gateway.police_reply import (
    IntakeCounts,
    intake_counts,
    not_to_answer,
    original_message_id,
    queue_to_police,
    receipt_message,
    refusal_message,
)
from gateway.return_sheet import MailSource
from gateway.ruleset import Rules
from gateway.sender_auth import SenderVerdict, authenticate
from gateway.store import transaction


@dataclass(frozen=True)
class PoliceMailHandler:
    """Takes in one police mail (the arrival instant is read from `clock` per message)."""

    conn: sqlite3.Connection
    config: LoadedConfig
    rules: Rules
    keyring: Keyring
    clock: Clock
    actor: str

    @property
    def police(self) -> PoliceSection:
        police = self.config.config.police
        if police is None:
            raise ConfigError(
                "the [police] section is not configured: without the allow-list and the "
                "pinned keys no police mail can be authenticated, so none is read"
            )
        return police

    def __call__(self, raw: bytes, key: LedgerKey) -> Disposition:
        now = self.clock.now()
        police = self.police
        passphrase = police.mash_passphrase.resolve() if police.mash_passphrase else None
        verdict = authenticate(raw, police=police, keyring=self.keyring, passphrase=passphrase)
        if not verdict.ok or verdict.payload is None or verdict.method is None:
            self._audit("police_mail.refused", key, now=now, method=None)
            self._alert(
                "A mail in the MASH inbox was quarantined: it did not authenticate",
                key,
                verdict.reason,
                now=now,
            )
            return Disposition(DispositionKind.QUARANTINED, reason=verdict.reason)
        scan = attachments(
            verdict.payload,
            method=verdict.method,
            keyring=self.keyring,
            passphrase=passphrase,
            police=police,
            max_bytes=intake_limits(self.config).max_file_bytes,
        )
        counts: list[IntakeCounts] = []
        refused = list(scan.refused)
        for sheet in scan.spreadsheets:
            try:
                intake, plan = plan_bytes(
                    sheet.data,
                    sheet.filename,
                    conn=self.conn,
                    config=self.config,
                    rules=self.rules,
                    arrival=now,
                )
            except SpreadsheetRefused as refusal:
                said = str(refusal).removeprefix(f"{sheet.filename}: ")
                refused.append(RefusedFile(sheet.filename, said))
                continue
            taken = take_in(
                self.conn,
                intake,
                plan,
                config=self.config,
                rules=self.rules,
                actor=self.actor,
                # Kept so the police get their sheet back with the outcomes, once all is sent.
                source=MailSource(sheet.data, verdict.sender, verdict.signer)
                if verdict.sender
                else None,
            )
            recorded = taken.recorded
            counts.append(intake_counts(self.conn, recorded.intake_id, new=recorded.new))
        reasons = "; ".join(f"{f.filename}: {f.reason}" for f in refused)
        if not counts:
            self._audit("police_mail.nothing_taken", key, now=now, method=verdict.method)
            reason = reasons or scan.summary
            self._alert(
                "A police mail was quarantined: it had no spreadsheet the gateway could read",
                key,
                reason,
                now=now,
            )
            self._answer(
                raw,
                verdict,
                MessageKind.REPLY,
                key,
                lambda reference: refusal_message(reference, refused),
                now=now,
            )
            return Disposition(DispositionKind.QUARANTINED, reason=reason)
        self._audit("police_mail.taken_in", key, now=now, method=verdict.method)
        if refused:
            # The rest of the mail was taken in: without this, a second spreadsheet refused
            # beside a good one would go unnoticed (its incidents never notified).
            self._alert(
                "Part of a police mail was not taken in",
                key,
                reasons,
                now=now,
                where="The files above were refused; the other spreadsheets of the mail were"
                " taken in, and it is in the Processed folder.",
            )
        self._answer(
            raw,
            verdict,
            MessageKind.RECEIPT,
            key,
            lambda reference: receipt_message(
                reference,
                counts,
                files=len(scan.spreadsheets) + len(scan.refused),
                refused=len(refused),
                at=now,
            ),
            now=now,
        )
        return Disposition(
            DispositionKind.INTAKE,
            reference=",".join(str(c.intake_id) for c in counts),
            reason=reasons,
        )

    def _answer(
        self,
        raw: bytes,
        verdict: SenderVerdict,
        kind: MessageKind,
        key: LedgerKey,
        inner: Callable[[str], EmailMessage],
        *,
        now: datetime,
    ) -> None:
        """Queue the receipt or reply to the police sender, unless the mail must not be
        answered. A receipt that cannot be made is on record but never stops the intake."""
        police = self.police
        if not verdict.ok or verdict.sender is None:
            return  # invariant 3: an unauthenticated mail is never answered
        why_not = not_to_answer(raw)
        if why_not is not None:
            self._audit(f"police_mail.{kind.value}_not_sent", key, now=now, reason=why_not)
            return
        about = f"{kind.value}/{key.mailbox}/{key.uidvalidity}/{key.uid}"
        try:
            sealer = make_sealer(self.config, self.keyring, template=self.rules.routing.template)
            queue_to_police(
                self.conn,
                inner(own_reference(kind, about)),
                kind=kind,
                key=about,
                sender=verdict.sender,
                in_reply_to=original_message_id(raw),
                police=police,
                signer=verdict.signer,
                sealer=sealer,
                now=now,
                actor=self.actor,
            )
        except (ConfigError, SealingError) as exc:
            self._audit(f"police_mail.{kind.value}_failed", key, now=now, reason=str(exc))

    def _alert(
        self,
        title: str,
        key: LedgerKey,
        reason: str,
        *,
        now: datetime,
        where: str | None = None,
    ) -> None:
        # Inside the pass's transaction: the alert is queued if and only if what it reports
        # is recorded. The service sends it at once; with `poll`, the next `dispatch` does.
        quarantined = where is None
        inner = alert_message(
            title,
            [
                reason,
                "",
                f"It is in the {key.mailbox} mailbox's quarantine folder (UID {key.uid} before"
                " it was moved). Nothing from it has been processed."
                if where is None
                else where,
            ],
        )
        about = "quarantine" if quarantined else "partly-refused"
        queue_to_navigator(
            self.conn,
            inner,
            kind=MessageKind.ALERT,
            key=f"{about}/{key.mailbox}/{key.uidvalidity}/{key.uid}",
            sealer=make_sealer(self.config, self.keyring, template=self.rules.routing.template),
            now=now,
            actor=self.actor,
        )

    def _audit(
        self,
        event: str,
        key: LedgerKey,
        *,
        now: datetime,
        method: str | None = None,
        reason: str | None = None,
    ) -> None:
        # Its own small transaction: the refusal is on record even if the pass fails later.
        refs: dict[str, str | None] = {"method": method} if reason is None else {"reason": reason}
        with transaction(self.conn):
            audit.append(
                self.conn,
                event,
                actor=self.actor,
                at=now,
                mailbox=key.mailbox,
                uidvalidity=key.uidvalidity,
                uid=key.uid,
                **refs,
            )

"""The MASH inbox: a police mail in, its spreadsheets taken in — or the mail quarantined.

The handler a mailbox pass calls for each new message (gateway/mailbox_watch.py). Invariant
3 first: a mail is read only once its sender is allow-listed **and** it authenticates
(gateway/sender_auth.py); a spoofed From never gets a single row processed. Then every
spreadsheet attachment goes through the same intake as `encompass-gateway process`, each in
its own transaction, so a resent mail or a retried pass records nothing twice (the file's
SHA-256 is the intake's key).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from gateway import audit
from gateway.clock import Clock
from gateway.config import LoadedConfig, PoliceSection
from gateway.errors import ConfigError, SpreadsheetRefused
from gateway.keyring import Keyring
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey
from gateway.operations import intake_limits, make_sealer, plan_bytes, take_in
from gateway.outbox import MessageKind
from gateway.own_mail import alert_message, queue_to_navigator
from gateway.police_mail import attachments
from gateway.ruleset import Rules
from gateway.sender_auth import authenticate
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
        intakes: list[int] = []
        refused = [f"{f.filename}: {f.reason}" for f in scan.refused]
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
                refused.append(str(refusal))
                continue
            taken = take_in(
                self.conn, intake, plan, config=self.config, rules=self.rules, actor=self.actor
            )
            intakes.append(taken.recorded.intake_id)
        if not intakes:
            self._audit("police_mail.nothing_taken", key, now=now, method=verdict.method)
            reason = "; ".join(refused) or scan.summary
            self._alert(
                "A police mail was quarantined: it had no spreadsheet the gateway could read",
                key,
                reason,
                now=now,
            )
            return Disposition(DispositionKind.QUARANTINED, reason=reason)
        self._audit("police_mail.taken_in", key, now=now, method=verdict.method)
        return Disposition(
            DispositionKind.INTAKE,
            reference=",".join(str(i) for i in intakes),
            reason="; ".join(refused),
        )

    def _alert(self, title: str, key: LedgerKey, reason: str, *, now: datetime) -> None:
        # Inside the pass's transaction: the alert is queued if and only if the quarantine is
        # recorded. The service sends it at once; with `poll`, the next `dispatch` does.
        inner = alert_message(
            title,
            [
                reason,
                "",
                f"It is in the {key.mailbox} mailbox's quarantine folder (UID {key.uid} before"
                " it was moved). Nothing from it has been processed.",
            ],
        )
        queue_to_navigator(
            self.conn,
            inner,
            kind=MessageKind.ALERT,
            key=f"quarantine/{key.mailbox}/{key.uidvalidity}/{key.uid}",
            sealer=make_sealer(self.config, self.keyring, template=self.rules.routing.template),
            now=now,
            actor=self.actor,
        )

    def _audit(self, event: str, key: LedgerKey, *, now: datetime, method: str | None) -> None:
        # Its own small transaction: the refusal is on record even if the pass fails later.
        with transaction(self.conn):
            audit.append(
                self.conn,
                event,
                actor=self.actor,
                at=now,
                mailbox=key.mailbox,
                uidvalidity=key.uidvalidity,
                uid=key.uid,
                method=method,
            )

"""The Navigator's mailbox: what came back about each notification, recorded.

Every inbound message is classified (gateway/inbound.py) and tied to the outbox message it
is about — by our Message-ID (a read receipt, a reply), by the per-message return path (a
bounce), or by the reference code in the subject — and recorded as a tracking event, so the
chase list knows what was read and what bounced. A missing receipt is never evidence that a
notification was not read: only events are recorded, never their absence.

What needs a person stays in the mailbox, flagged: replies, unmatched mail, permanent
bounces and out-of-office replies. The rest is moved to the processed folder.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC

from gateway import audit
from gateway.clock import Clock
from gateway.config import DispatchSection
from gateway.inbound import Classified, Kind, classify
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey
from gateway.outbox import return_path_for_token
from gateway.store import transaction

# IMAP keyword set on what the Navigator must look at (RFC 3501 §2.3.2: an atom).
NEEDS_A_PERSON = "$EncompassNeedsAPerson"
_FOR_A_PERSON = frozenset({Kind.REPLY, Kind.UNMATCHED, Kind.BOUNCE_PERMANENT, Kind.OUT_OF_OFFICE})
_IGNORED = frozenset({Kind.OWN_LOOP, Kind.DELIVERED})


@dataclass(frozen=True)
class TrackingHandler:
    """Records one message of the Navigator's mailbox."""

    conn: sqlite3.Connection
    dispatch: DispatchSection
    clock: Clock
    actor: str

    def __call__(self, raw: bytes, key: LedgerKey) -> Disposition:
        found = classify(
            raw, own_domain=self.dispatch.domain, bounce_local_part=self.dispatch.bounce_local_part
        )
        row, reference = self._about(found)
        now = self.clock.now()
        with transaction(self.conn):
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
        if found.kind in _IGNORED:
            return Disposition(DispositionKind.IGNORED, reference=reference)
        if found.kind in _FOR_A_PERSON:
            return Disposition(
                DispositionKind.TRACKED,
                reference=reference,
                flag=NEEDS_A_PERSON,
                reason=found.summary,
            )
        return Disposition(DispositionKind.TRACKED, reference=reference)

    def _about(self, found: Classified) -> tuple[int | None, str | None]:
        """The outbox message (row id) and reference the classified message is about."""
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
        return None, found.reference

"""Reading a mailbox: one pass (`poll_mailbox`, for `encompass-gateway poll` and cron), and the
service's endless watch (`watch_mailbox`: a pass, then IDLE until mail comes, reconnecting
with backoff whenever the server fails).

What a message means is the handler's business: the pass fetches each new message, hands it
over, and records the handler's disposition in the ledger (gateway/mail_ledger.py). For
every message, in this order (DESIGN.md invariant 5, "durable before visible"):

1. fetch with BODY.PEEK[], so the message stays unread for the people who share the mailbox;
2. in one transaction: check the ledger (by place, then by content), call the handler, record
   its disposition; a handler that raises leaves nothing behind and is tried again on the
   next pass — up to `max_attempts` times, then the message is quarantined for a person to
   see, so one poisonous message cannot stop the mailbox for good;
3. commit; only then move or flag the message, and mark it moved.

A crash after 3's commit leaves the record with `moved = 0`; the next pass finishes the move
without calling the handler again. A message met again under a new UID or UIDVALIDITY, with
the same Message-ID and content, goes where the first one went and is not handled again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway import mail_ledger
from gateway.clock import Clock
from gateway.config import ImapSection
from gateway.faults import checkpoint
from gateway.imap_client import MailboxClient, MailboxError, MessageGone
from gateway.mail_ledger import Action, Disposition, DispositionKind, InboundRecord, LedgerKey
from gateway.store import transaction

Handler = Callable[[bytes, LedgerKey], Disposition]
ClientFactory = Callable[[ImapSection], MailboxClient]


@dataclass(frozen=True)
class PollReport:
    """What one pass over a mailbox did; UIDs are under `uidvalidity`."""

    mailbox: str
    uidvalidity: int
    renumbered: bool = False  # a new UIDVALIDITY (or folder): the folder was read from its start
    handled: tuple[int, ...] = ()  # handed to the handler and recorded
    duplicates: tuple[int, ...] = ()  # the same message as one handled before: not handled again
    moved: tuple[int, ...] = ()  # moved or flagged in this pass (earlier passes' included)
    failed: tuple[int, ...] = ()  # the handler raised: nothing recorded, tried again next pass
    shunted: tuple[int, ...] = ()  # failed `max_attempts` times: quarantined for a person
    gone: tuple[int, ...] = ()  # removed by someone else between listing and fetching
    highest_uid: int = 0  # the highest UID this pass listed (or caught up to)


@dataclass
class _Pass:
    conn: sqlite3.Connection
    client: MailboxClient
    account: ImapSection
    mailbox: str
    handle: Handler
    now: datetime
    actor: str
    max_attempts: int
    uidvalidity: int = 0
    handled: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    shunted: list[int] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)

    def run(self) -> PollReport:
        self.uidvalidity = self.client.select(self.account.inbox)
        state, renumbered = mail_ledger.begin_pass(
            self.conn,
            self.mailbox,
            self.account.inbox,
            self.uidvalidity,
            now=self.now,
            actor=self.actor,
        )
        # Moves a crash (or a lost connection) left undone: the records are committed.
        for inbound in mail_ledger.pending(self.conn, self.mailbox, self.uidvalidity):
            self.finish(inbound)
        caught_up = True
        highest = state.last_uid
        for uid in self.client.uids_since(state.last_uid):
            highest = uid
            key = LedgerKey(self.mailbox, self.uidvalidity, uid)
            settled = self.take(key)
            # last_uid moves only over an unbroken run of settled UIDs: a message whose
            # handler failed is listed again next pass (its later neighbours, recorded, are
            # then skipped by their key without being fetched).
            caught_up = caught_up and settled
            if caught_up:
                mail_ledger.advance(self.conn, key, now=self.now)
        return PollReport(
            mailbox=self.mailbox,
            uidvalidity=self.uidvalidity,
            renumbered=renumbered,
            handled=tuple(self.handled),
            duplicates=tuple(self.duplicates),
            moved=tuple(self.moved),
            failed=tuple(self.failed),
            shunted=tuple(self.shunted),
            gone=tuple(self.gone),
            highest_uid=highest,
        )

    def take(self, key: LedgerKey) -> bool:
        """Handle, record and move one message; False when it must be tried again."""
        known = mail_ledger.find(self.conn, key)
        if known is not None:
            if not known.moved:
                self.finish(known)
            return True
        try:
            raw = self.client.fetch(key.uid)
        except MessageGone:
            self.gone.append(key.uid)
            return True
        content = mail_ledger.content_key(raw)
        try:
            with transaction(self.conn):
                # Checked again inside the write transaction: a second process reading the
                # same mailbox (a `poll` while the service runs) cannot record it twice.
                if mail_ledger.find(self.conn, key) is not None:
                    return True
                original = mail_ledger.find_same(self.conn, self.mailbox, content)
                if original is not None:
                    inbound = mail_ledger.record_duplicate(
                        self.conn, key, content, original, now=self.now, actor=self.actor
                    )
                else:
                    inbound = mail_ledger.record(
                        self.conn,
                        key,
                        content,
                        self.handle(raw, key),
                        self.account,
                        now=self.now,
                        actor=self.actor,
                    )
        except Exception as exc:
            # Any failure of the handler, whatever it is: the service keeps running
            # (DESIGN.md invariant 6) and nothing about this message was written.
            return self.give_up_or_retry(key, content, exc)
        (self.handled if original is None else self.duplicates).append(key.uid)
        checkpoint("mail.after_record_committed")
        self.finish(inbound)
        if original is not None and not original.moved:
            # The first copy sat in an older numbering when its move was cut short; this
            # copy is that message, now in its place.
            mail_ledger.mark_moved(self.conn, original, now=self.now, actor=self.actor)
        return True

    def give_up_or_retry(
        self, key: LedgerKey, content: mail_ledger.ContentKey, exc: Exception
    ) -> bool:
        attempts = mail_ledger.note_failure(
            self.conn, key, type(exc).__name__, now=self.now, actor=self.actor
        )
        if attempts < self.max_attempts:
            self.failed.append(key.uid)
            return False
        shunt = Disposition(
            DispositionKind.QUARANTINED,
            reason=f"not handled after {attempts} attempts ({type(exc).__name__})",
        )
        inbound = mail_ledger.record(
            self.conn, key, content, shunt, self.account, now=self.now, actor=self.actor
        )
        self.shunted.append(key.uid)
        self.finish(inbound)
        return True

    def finish(self, inbound: InboundRecord) -> None:
        if inbound.action is Action.MOVE:
            self.client.move(inbound.key.uid, inbound.target)
        else:
            self.client.flag(inbound.key.uid, inbound.target)
        mail_ledger.mark_moved(self.conn, inbound, now=self.now, actor=self.actor)
        self.moved.append(inbound.key.uid)


def poll_connected(
    conn: sqlite3.Connection,
    client: MailboxClient,
    account: ImapSection,
    *,
    mailbox: str,
    handle: Handler,
    now: datetime,
    actor: str,
    max_attempts: int = 3,
) -> PollReport:
    """One pass over `account`'s inbox on an open connection (see the module's docstring).
    Raises MailboxError when the server fails; what was committed stays committed."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    return _Pass(conn, client, account, mailbox, handle, now, actor, max_attempts).run()


def poll_mailbox(
    conn: sqlite3.Connection,
    client_factory: ClientFactory,
    account: ImapSection,
    *,
    mailbox: str,
    handle: Handler,
    now: datetime,
    actor: str,
    max_attempts: int = 3,
) -> PollReport:
    """Connect, make sure the processed and quarantine folders exist, and make one pass.

    `mailbox` is the account's name in the configuration ("mash", "navigator"): the ledger's
    key; `client_factory` opens the connection (`gateway.imap_client.connect` reads the
    configured password). Raises MailboxError when the server fails, SecretError when the
    password cannot be read.
    """
    with client_factory(account) as client:
        client.ensure_folders([account.processed_folder, account.quarantine_folder])
        return poll_connected(
            conn,
            client,
            account,
            mailbox=mailbox,
            handle=handle,
            now=now,
            actor=actor,
            max_attempts=max_attempts,
        )


def watch_mailbox(
    conn: sqlite3.Connection,
    client_factory: ClientFactory,
    account: ImapSection,
    *,
    mailbox: str,
    handle: Handler,
    clock: Clock,
    actor: str,
    stop: threading.Event,
    pass_every_seconds: float = 300,
    first_backoff_seconds: float = 1,
    max_backoff_seconds: float = 60,
    max_attempts: int = 3,
    on_pass: Callable[[PollReport], None] | None = None,
    on_error: Callable[[MailboxError, float], None] | None = None,
) -> None:
    """Read `account` until `stop` is set: a pass, then IDLE until mail arrives or
    `pass_every_seconds` pass (a pass then runs anyway: a safety net under IDLE, and the
    retry of messages whose handler failed).

    Any MailboxError closes the connection; the next attempt comes after a pause that
    doubles from `first_backoff_seconds` to `max_backoff_seconds` (a minute by default, so
    mail is taken within a minute of the server's return), and a reconnect catches up by UID
    from the ledger. `on_pass` sees every pass's report, `on_error` every failure with
    the pause before the next attempt (for logs and alerts). Other errors (the database, an
    unreadable password) propagate: retrying cannot mend them.
    """
    backoff = first_backoff_seconds
    while not stop.is_set():
        try:
            with client_factory(account) as client:
                client.ensure_folders([account.processed_folder, account.quarantine_folder])
                while not stop.is_set():
                    report = poll_connected(
                        conn,
                        client,
                        account,
                        mailbox=mailbox,
                        handle=handle,
                        now=clock.now(),
                        actor=actor,
                        max_attempts=max_attempts,
                    )
                    backoff = first_backoff_seconds
                    if on_pass is not None:
                        on_pass(report)
                    # Mail that came during the pass was announced in the replies to its
                    # commands, not to the IDLE that follows: look before waiting.
                    if client.uids_since(report.highest_uid):
                        continue
                    client.wait_for_mail(pass_every_seconds, stop=stop)
        except MailboxError as exc:
            if on_error is not None:
                on_error(exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff_seconds)

"""Dispatch: send every message due, record each step durably, retry what may yet succeed.

Per message: mark it `sending` (committed), hand it to the server, mark it `sent`
(committed). A crash before the server accepts leaves it `sending` and the next run sends
it; a crash after the server accepts but before `sent` is committed makes the next run send
it again — the one window for a duplicate, and the duplicate carries the same Message-ID.
(A connection lost while the server is taking the message is the same window seen from the
network: the server may have it, so it is retried, never assumed delivered.)

Failures, after Mailman's outgoing runner: a temporary failure (4xx, no connection) is
retried with doubling pauses until `retry_window_minutes` after the message was due, then
becomes an exception; a permanent failure (5xx) becomes an exception at once. An exception
is never dropped: its notification turns `exception` (send_failed) for the Navigator.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from gateway import outbox
from gateway.clock import LONDON
from gateway.config import DispatchSection
from gateway.errors import StateError
from gateway.faults import checkpoint
from gateway.model import ExceptionKind
from gateway.outbox import OutboxMessage
from gateway.smtp_transport import PermanentFailure, SmtpFailure, TemporaryFailure


class Transport(Protocol):
    """A connection to the mail server (gateway.smtp_transport.SmtpTransport, or a test's)."""

    def send(self, envelope_from: str, recipient: str, message: bytes) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dispatched:
    """What happened to one message in this run."""

    reference: str
    message_id: str
    attempt: int
    reason: str = ""  # why it is retrying or an exception
    next_attempt: datetime | None = None  # when a retrying message is due again


@dataclass(frozen=True)
class DispatchReport:
    sent: tuple[Dispatched, ...] = ()
    retrying: tuple[Dispatched, ...] = ()
    exceptions: tuple[Dispatched, ...] = ()


def dispatch_due(
    conn: sqlite3.Connection,
    *,
    now: datetime,
    connect: Callable[[], Transport],
    settings: DispatchSection,
    actor: str,
) -> DispatchReport:
    """Send every message due at `now` over one connection, opened only if something is due.

    `connect` opens the connection; it raises TemporaryFailure when it cannot (then every
    due message is scheduled for a retry). Raises StateError when another dispatch is
    running on the same database.
    """
    if now.tzinfo is None:
        raise ValueError("dispatch needs a timezone-aware instant")
    with one_dispatcher(conn):
        batch = _Batch(conn, now=now, connect=connect, settings=settings, actor=actor)
        batch.run(outbox.due_messages(conn, now))
    return DispatchReport(tuple(batch.sent), tuple(batch.retrying), tuple(batch.exceptions))


@dataclass
class _Batch:
    conn: sqlite3.Connection
    now: datetime
    connect: Callable[[], Transport]
    settings: DispatchSection
    actor: str
    transport: Transport | None = None
    sent: list[Dispatched] = field(default_factory=list)
    retrying: list[Dispatched] = field(default_factory=list)
    exceptions: list[Dispatched] = field(default_factory=list)

    def run(self, due: Sequence[OutboxMessage]) -> None:
        try:
            for position, message in enumerate(due):
                lost = self._deliver(message)
                if lost is not None:
                    # No connection: the rest wait for the next attempt, untried, nothing lost.
                    for rest in due[position + 1 :]:
                        self._temporary(rest, lost, tried=False)
                    return
        finally:
            if self.transport is not None:
                self.transport.close()

    def _deliver(self, message: OutboxMessage) -> TemporaryFailure | None:
        """Send one message; returns the failure when the connection is gone for good."""
        if self.transport is None:
            try:
                self.transport = self.connect()
            except TemporaryFailure as failure:
                self._temporary(message, failure, tried=False)
                return failure
        outbox.mark_sending(self.conn, message.id, at=self.now, actor=self.actor)
        checkpoint("dispatch.after_sending_marked")
        try:
            self.transport.send(message.return_path, message.recipient, message.body)
        except PermanentFailure as failure:
            self._exception(
                message,
                f"the mail server refused the message to the {message.contact_role}: {failure}",
                failure,
            )
            return None
        except TemporaryFailure as failure:
            self._temporary(message, failure, tried=True)
            if failure.connection_lost:
                self._drop_transport()
                return failure
            return None
        except Exception as error:
            # Shunted, as Mailman's runner does: a failure nobody foresaw becomes an exception
            # a person sees, rather than a crash that would retry the same message forever.
            # Whether the server took it is unknown, so the reason says so.
            self._drop_transport()
            self._exception(
                message,
                f"unexpected error while sending to the {message.contact_role}, so it may or "
                f"may not have been delivered: {type(error).__name__}: {error}",
                None,
            )
            return None
        checkpoint("dispatch.after_accept")
        outbox.mark_sent(self.conn, message.id, sent_at=self.now, actor=self.actor)
        checkpoint("dispatch.after_sent_committed")
        self.sent.append(Dispatched(message.reference, message.message_id, message.attempts + 1))
        return None

    def _temporary(self, message: OutboxMessage, failure: TemporaryFailure, *, tried: bool) -> None:
        attempt = message.attempts + 1
        deadline = message.due + timedelta(minutes=self.settings.retry_window_minutes)
        error = str(failure) if tried else f"not tried, no connection: {failure}"
        if self.now >= deadline:
            self._exception(
                message,
                f"not delivered within {self.settings.retry_window_minutes:g} minutes of its due "
                f"time {message.due.astimezone(LONDON):%Y-%m-%d %H:%M}; last error: {error}",
                failure,
            )
            return
        # Doubling pauses (capped) spare a struggling server; the last try lands on the
        # deadline rather than past it, so the window is honoured exactly.
        pause = min(
            self.settings.first_retry_seconds * 2 ** min(attempt - 1, 32),
            self.settings.max_retry_seconds,
        )
        next_attempt = min(self.now + timedelta(seconds=pause), deadline)
        outbox.schedule_retry(
            self.conn,
            message.id,
            attempt=attempt,
            error=error,
            smtp_code=failure.code,
            next_attempt=next_attempt,
            at=self.now,
            actor=self.actor,
        )
        self.retrying.append(
            Dispatched(message.reference, message.message_id, attempt, error, next_attempt)
        )

    def _exception(self, message: OutboxMessage, reason: str, failure: SmtpFailure | None) -> None:
        outbox.mark_exception(
            self.conn,
            message.id,
            attempt=message.attempts + 1,
            kind=ExceptionKind.SEND_FAILED,
            error=reason,
            smtp_code=failure.code if failure is not None else None,
            at=self.now,
            actor=self.actor,
        )
        self.exceptions.append(
            Dispatched(message.reference, message.message_id, message.attempts + 1, reason)
        )

    def _drop_transport(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()


@contextmanager
def one_dispatcher(conn: sqlite3.Connection) -> Iterator[None]:
    """Hold the dispatcher's lock for the block; StateError if a dispatch holds it (also
    taken to withhold messages, so none is withheld while it is being handed over)."""
    # Two dispatchers at once (the service's 09:00 run and a manual `dispatch`) would each
    # see the other's in-flight messages as left over by a crash and send them again. An
    # flock is released by the kernel when its holder dies, so a crash never leaves it held.
    database = conn.execute("PRAGMA database_list").fetchone()["file"]
    if not database:  # an in-memory database: no other process can reach it
        yield
        return
    lock_path = Path(f"{database}.dispatch-lock")
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"another dispatch is running on {database} (it holds {lock_path}); "
                "wait for it to finish"
            ) from None
        yield

"""Inbound SMTP: police mail routed straight to the gateway, taken in like the MASH inbox's.

Two halves with a seam between them (the aiosmtpd way: the server calls `handle_DATA` and
never knows what the application does with the mail):

- `SmtpListener` speaks SMTP. STARTTLS is required before MAIL (aiosmtpd answers 530
  otherwise), only the configured MASH addresses are accepted at RCPT (550 for any other),
  a message over the size limit is refused with 552 (RFC 1870) before it is taken, and the
  listener puts its own Received and Authentication-Results lines on top. It hands the bytes
  to a `deliver` callable in a worker thread and answers 250 only once that returns, so the
  sender's server keeps its copy until ours is durable (DESIGN.md invariant 5). Whatever
  `deliver` raises is a 451: the sender's server tries again later, and the ledger makes the
  retry harmless. Nothing is ever answered with a bounce of ours, so a spoofed sender gets
  no mail from the gateway.
- `take` is the intake: the message kept in the spool, then in one transaction the ledger
  (same content seen before → recorded as a duplicate, nothing handled again) and the police
  mail handler (gateway/mail_intake.py: the sender checks, then the spreadsheets), then the
  file put in the spool's processed/ or quarantine/ folder. A quarantined mail is answered
  250: it was received, recorded and is kept for a person to see; refusing it would only
  teach a forger what the gateway checks, or bounce to an innocent address.
  A message the handler fails on is answered 451 and counted by its content; the third
  time the same message fails it is quarantined for the Navigator and answered 250, as the
  IMAP watcher shunts a poison message — else the police's server would retry for days
  and then bounce it to the police, and the Navigator would never hear of it.

The ledger keys SMTP mail under mailbox "smtp" with a fixed UIDVALIDITY and UIDs counted
by the database; the Message-ID and content hash find the same mail sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import sqlite3
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway import audit, mail_ledger
from gateway.at_rest import StorageKey, is_sealed
from gateway.clock import Clock
from gateway.config import ImapSection, InboundSmtpSection, LoadedConfig
from gateway.errors import StateError
from gateway.keyring import open_keyring
from gateway.mail_intake import PoliceMailHandler
from gateway.mail_ledger import (
    ContentKey,
    Disposition,
    DispositionKind,
    InboundRecord,
    LedgerKey,
)
from gateway.mailbox_watch import Handler
from gateway.ruleset import load_rules
from gateway.store import open_config_state, storage_key, transaction

log = logging.getLogger("gateway.smtp_intake")

MAILBOX = "smtp"  # the ledger's name for mail received by the listener
UIDVALIDITY = 1  # SMTP has no folder to renumber: one numbering for good

# Replies as named data (RFC 5321 §4.2, enhanced codes RFC 3463).
ACCEPTED = "250 2.0.0 Message accepted"
NOT_HERE = "550 5.1.1 No such mailbox here"
TRY_LATER = "451 4.3.0 Message not taken in; try again later"
_UNSAFE = re.compile(r"[^!-~]")
SEALED_SUFFIX = ".eml.sealed"

# mail_ledger.record takes the folder names from an IMAP account; the spool's folders stand
# in for them (it reads processed_folder and quarantine_folder, nothing else).
_SPOOL_FOLDERS = ImapSection.model_construct(
    processed_folder="processed", quarantine_folder="quarantine"
)


@dataclass(frozen=True)
class Spool:
    """Where mail received by SMTP is kept, as files (the mailbox folders' counterpart).

    A message is written to incoming/ (named by its content hash) and synced before its
    record is written; after the record commits it is renamed into processed/ or quarantine/
    as `<uid>.eml.sealed`. A crash between the two leaves the record unmoved and the file in
    incoming/: `recover` finishes the rename. The police's mail may carry a spreadsheet
    signed but not encrypted, so every file is sealed with the storage key, like personal
    data in the state database (`read_kept`; `encompass-gateway spool show FILE`).
    """

    root: Path
    key: StorageKey

    def keep(self, raw: bytes, content: ContentKey) -> None:
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        partial = incoming / f"{content.sha256}.part"
        with partial.open("wb") as handle:
            handle.write(self.key.seal(raw) or b"")
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self._incoming(content))
        _sync_directory(incoming)

    def file(self, inbound: InboundRecord) -> Path:
        """Put the message of `inbound` in its folder; its path there."""
        folder = self.root / inbound.target
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{inbound.key.uid}{SEALED_SUFFIX}"
        self._incoming(inbound.content).replace(path)
        _sync_directory(folder)
        return path

    def _incoming(self, content: ContentKey) -> Path:
        return self.root / "incoming" / f"{content.sha256}{SEALED_SUFFIX}"


def read_kept(path: Path, key: StorageKey) -> bytes:
    """A message the spool kept in `path`, as it was received."""
    try:
        sealed = path.read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from exc
    if not is_sealed(sealed):
        raise StateError(f"{path} is not a message kept by the SMTP intake")
    raw = key.unseal(sealed)
    assert isinstance(raw, bytes)
    return raw


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def take(
    raw: bytes,
    *,
    conn: sqlite3.Connection,
    handle: Handler,
    spool: Spool,
    now: datetime,
    actor: str,
    max_attempts: int = 3,
) -> InboundRecord:
    """Keep, record and file one message received by SMTP; its ledger record (committed).

    Raises whatever the handler or the database raises; nothing is recorded then, and the
    file left in incoming/ is written over when the sender tries again — until the same
    message has failed `max_attempts` times: it is then quarantined (see the module's
    docstring).
    """
    content = mail_ledger.content_key(raw)
    spool.keep(raw, content)
    try:
        inbound = _record(conn, raw, content, handle, now=now, actor=actor)
    except sqlite3.OperationalError:
        raise  # the database busy or locked: nothing to count, the sender tries again
    except Exception as exc:
        attempts = _note_failure(conn, content, type(exc).__name__, now=now, actor=actor)
        if attempts < max_attempts:
            raise
        shunt = Disposition(
            DispositionKind.QUARANTINED,
            reason=f"not handled after {attempts} attempts ({type(exc).__name__})",
        )
        inbound = _record(conn, raw, content, lambda _raw, _key: shunt, now=now, actor=actor)
    spool.file(inbound)
    mail_ledger.mark_moved(conn, inbound, now=now, actor=actor)
    return inbound


def _record(
    conn: sqlite3.Connection,
    raw: bytes,
    content: ContentKey,
    handle: Handler,
    *,
    now: datetime,
    actor: str,
) -> InboundRecord:
    with transaction(conn):
        # Inside the write transaction: the next UID and the duplicate check cannot race
        # a second writer (a `poll` or `process` running beside the service).
        uid: int = conn.execute(
            "SELECT COALESCE(MAX(uid), 0) + 1 FROM inbound_message"
            " WHERE mailbox = ? AND uidvalidity = ?",
            (MAILBOX, UIDVALIDITY),
        ).fetchone()[0]
        key = LedgerKey(MAILBOX, UIDVALIDITY, uid)
        original = mail_ledger.find_same(conn, MAILBOX, content)
        if original is not None:
            inbound = mail_ledger.record_duplicate(
                conn, key, content, original, now=now, actor=actor
            )
        else:
            inbound = mail_ledger.record(
                conn, key, content, handle(raw, key), _SPOOL_FOLDERS, now=now, actor=actor
            )
    return inbound


def _note_failure(
    conn: sqlite3.Connection, content: ContentKey, error: str, *, now: datetime, actor: str
) -> int:
    # Counted by content, not by UID: each retry by the sender's server is a new delivery
    # that would get a new UID. `error` is the exception's class name only (its message may
    # quote the mail).
    with transaction(conn):
        conn.execute(
            "INSERT INTO smtp_failure (sha256, attempts, last_error, last_at)"
            " VALUES (?, 1, ?, ?) ON CONFLICT (sha256) DO UPDATE SET attempts = attempts + 1,"
            " last_error = excluded.last_error, last_at = excluded.last_at",
            (content.sha256, error, now.astimezone(UTC).isoformat()),
        )
        attempts: int = conn.execute(
            "SELECT attempts FROM smtp_failure WHERE sha256 = ?", (content.sha256,)
        ).fetchone()[0]
        audit.append(
            conn,
            "mail.handling_failed",
            actor=actor,
            at=now,
            mailbox=MAILBOX,
            sha256=content.sha256,
            error=error,
            attempts=attempts,
        )
    return attempts


def recover(conn: sqlite3.Connection, spool: Spool, *, now: datetime, actor: str) -> int:
    """File the messages whose record committed but whose file was not yet moved (a crash
    between the two); how many."""
    done = 0
    for inbound in mail_ledger.pending(conn, MAILBOX, UIDVALIDITY):
        spool.file(inbound)
        mail_ledger.mark_moved(conn, inbound, now=now, actor=actor)
        done += 1
    return done


@dataclass(frozen=True)
class SmtpIntake:
    """`deliver` for the service: each message taken in on its own connection to the state
    database (the listener's worker thread is not the one that built this)."""

    config: LoadedConfig
    section: InboundSmtpSection
    clock: Clock
    actor: str = "service:smtp"

    def __call__(self, raw: bytes) -> InboundRecord:
        conn = open_config_state(self.config)
        try:
            with open_keyring(self.config.config.gnupg.home) as keyring:
                handler = PoliceMailHandler(
                    conn,
                    self.config,
                    load_rules(self.config.rules_dir),
                    keyring,
                    self.clock,
                    self.actor,
                )
                return take(
                    raw,
                    conn=conn,
                    handle=handler,
                    spool=Spool(self.section.spool, storage_key(self.config)),
                    now=self.clock.now(),
                    actor=self.actor,
                )
        finally:
            conn.close()

    def recover(self) -> int:
        conn = open_config_state(self.config)
        try:
            spool = Spool(self.section.spool, storage_key(self.config))
            return recover(conn, spool, now=self.clock.now(), actor=self.actor)
        finally:
            conn.close()


class SmtpListener:
    """The SMTP server (aiosmtpd on its own thread), handing each message to `deliver`.

    `deliver(raw)` runs in a single worker thread, one message at a time, and must return
    only once the message is durable; anything it raises is answered 451.
    """

    def __init__(
        self,
        section: InboundSmtpSection,
        *,
        deliver: Callable[[bytes], object],
        clock: Clock,
    ) -> None:
        self.section = section
        self._hostname = section.hostname or socket.getfqdn()
        self._handler = _Handler(
            recipients=frozenset(section.recipients),
            hostname=self._hostname,
            deliver=deliver,
            clock=clock,
        )
        self._controller: Controller | None = None

    def start(self) -> None:
        section = self.section
        tls: dict[str, Any] = {}
        if section.tls == "starttls":
            assert section.cert_file is not None and section.key_file is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(section.cert_file, section.key_file)
            tls = {"tls_context": context, "require_starttls": True}
        controller = Controller(
            self._handler,
            hostname=section.host,
            port=section.port,
            server_hostname=self._hostname,
            data_size_limit=int(section.max_message_mb * 1024 * 1024),
            timeout=section.timeout_seconds,
            **tls,
        )
        controller.start()
        self._controller = controller
        log.info("SMTP intake listening on %s port %d", section.host, section.port)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._handler.worker.shutdown(wait=True)


class _Handler:
    """aiosmtpd's hooks: the recipient check, and the hand-over of each message."""

    def __init__(
        self,
        *,
        recipients: frozenset[str],
        hostname: str,
        deliver: Callable[[bytes], object],
        clock: Clock,
    ) -> None:
        self.recipients = recipients
        self.hostname = hostname
        self.deliver = deliver
        self.clock = clock
        # One at a time: the intake writes to SQLite and runs GnuPG; a second sender waits
        # for its 250 rather than contending for the database lock.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtp-intake")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() not in self.recipients:
            return NOT_HERE
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = self._trace(
            session,
            encrypted=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
        )
        raw += envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.worker, self.deliver, raw)
        except Exception as exc:
            # The class name only: the message may quote the mail's content.
            log.error("SMTP intake: a message was not taken in (%s)", type(exc).__name__)
            return TRY_LATER
        return ACCEPTED

    def _trace(self, session: Session, *, encrypted: bool) -> bytes:
        """Our Received line (RFC 5321 §4.4) and an Authentication-Results saying we checked
        nothing (RFC 8601 §2.2): on top, it hides any the sender wrote from the DKIM check."""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        # The client's HELO name is the sender's to choose: anything but visible ASCII (a
        # bare CR, a line break) could start a header line of its own below ours.
        helo = _UNSAFE.sub("?", session.host_name or "") or "unknown"
        protocol = "ESMTPS" if encrypted else "ESMTP"
        stamp = format_datetime(self.clock.now())
        return (
            f"Authentication-Results: {self.hostname}; none\r\n"
            f"Received: from {helo} ([{peer}])\r\n"
            f"\tby {self.hostname} (Encompass Gateway) with {protocol}; {stamp}\r\n"
        ).encode("ascii", "replace")

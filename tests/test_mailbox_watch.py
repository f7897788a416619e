"""Reading a mailbox against a real Dovecot: each message recorded before it is moved, handled
once whatever happens to its UID, and the watcher's IDLE, reconnection and backoff."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dovecot import Dovecot, MailUser
from smtp_sink import free_port

from gateway import audit, mail_ledger
from gateway.clock import FixedClock
from gateway.config import ImapSection
from gateway.faults import CRASH_AT_VARIABLE
from gateway.imap_client import MailboxClient, MailboxError, connect
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey
from gateway.mailbox_watch import PollReport, poll_mailbox, watch_mailbox
from gateway.store import open_state

NOW = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def police_mail(number: int, *, body: str = "spreadsheet attached") -> bytes:
    return (
        f"From: da-desk@police.example.org\r\n"
        f"To: mash@mash.example.org\r\n"
        f"Subject: Operation Encompass {number}\r\n"
        f"Message-ID: <{number}.encompass@police.example.org>\r\n"
        f"\r\n"
        f"{body} {number}\r\n"
    ).encode()


@dataclass
class Handler:
    """A handler that writes in the pass's transaction, as the intake does, and can fail."""

    conn: sqlite3.Connection
    disposition: Disposition = field(
        default_factory=lambda: Disposition(DispositionKind.INTAKE, reference="intake-1")
    )
    fail_times: int = 0
    calls: list[bytes] = field(default_factory=list)
    handled_at: list[float] = field(default_factory=list)

    def __call__(self, raw: bytes, key: LedgerKey) -> Disposition:
        self.calls.append(raw)
        self.handled_at.append(time.monotonic())
        audit.append(self.conn, "test.intake", actor="test", at=NOW, uid=key.uid)
        if self.fail_times:
            self.fail_times -= 1
            raise KeyError("the handler's own bug")
        return self.disposition


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.sqlite3")
    yield connection
    connection.close()


@pytest.fixture
def mash(dovecot: Dovecot) -> MailUser:
    return dovecot.new_user("mash")


def one_pass(
    conn: sqlite3.Connection, account: ImapSection, handler: Handler, **kwargs: int
) -> PollReport:
    return poll_mailbox(
        conn, connect, account, mailbox="mash", handle=handler, now=NOW, actor="test", **kwargs
    )


def raw_in(server: Dovecot, user: MailUser, folder: str = "INBOX") -> list[bytes]:
    return [stored.raw for stored in server.messages(user, folder).values()]


def audit_events(conn: sqlite3.Connection, event: str) -> int:
    return sum(entry.event == event for entry in audit.entries(conn))


# --------------------------------------------------------------------------------------
# One pass


def test_new_mail_is_handled_recorded_and_then_moved_unread(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(conn)
    report = one_pass(conn, dovecot.imap_section(mash), handler)
    assert handler.calls == [police_mail(1)]
    assert (report.handled, report.moved) == ((1,), (1,))
    assert raw_in(dovecot, mash) == []
    [processed] = dovecot.messages(mash, "Processed").values()
    assert processed.raw == police_mail(1)
    assert "\\Seen" not in processed.flags
    recorded = mail_ledger.find(conn, LedgerKey("mash", report.uidvalidity, 1))
    assert recorded is not None and recorded.moved and recorded.reference == "intake-1"


def test_quarantined_mail_goes_to_the_quarantine_folder(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(conn, disposition=Disposition(DispositionKind.QUARANTINED, reason="unsigned"))
    one_pass(conn, dovecot.imap_section(mash), handler)
    assert raw_in(dovecot, mash, "Quarantine") == [police_mail(1)]
    assert raw_in(dovecot, mash, "Processed") == []


def test_a_flag_disposition_leaves_the_message_flagged_where_it_was(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(
        conn, disposition=Disposition(DispositionKind.TRACKED, flag="$EncompassTracked")
    )
    one_pass(conn, dovecot.imap_section(mash), handler)
    one_pass(conn, dovecot.imap_section(mash), handler)
    assert len(handler.calls) == 1
    [stored] = dovecot.messages(mash).values()
    assert "$EncompassTracked" in stored.flags


def test_when_the_handler_fails_nothing_is_moved_or_recorded_and_the_next_pass_handles_it(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    dovecot.deliver(mash, police_mail(2))
    handler = Handler(conn, fail_times=1)
    account = dovecot.imap_section(mash)

    first = one_pass(conn, account, handler)
    assert (first.failed, first.handled, first.moved) == ((1,), (2,), (2,))
    assert raw_in(dovecot, mash) == [police_mail(1)]
    assert mail_ledger.find(conn, LedgerKey("mash", first.uidvalidity, 1)) is None
    assert audit_events(conn, "test.intake") == 1  # the failed handler's write rolled back

    second = one_pass(conn, account, handler)
    assert (second.handled, second.moved) == ((1,), (1,))
    assert handler.calls == [police_mail(1), police_mail(2), police_mail(1)]
    assert raw_in(dovecot, mash) == []
    assert sorted(raw_in(dovecot, mash, "Processed")) == [police_mail(1), police_mail(2)]
    assert one_pass(conn, account, handler).handled == ()


def test_a_message_that_fails_every_time_is_quarantined_for_a_person(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(conn, fail_times=99)
    account = dovecot.imap_section(mash)
    reports = [one_pass(conn, account, handler, max_attempts=3) for _ in range(3)]
    assert [r.failed for r in reports] == [(1,), (1,), ()]
    assert reports[2].shunted == (1,)
    assert raw_in(dovecot, mash, "Quarantine") == [police_mail(1)]
    recorded = mail_ledger.find(conn, LedgerKey("mash", reports[0].uidvalidity, 1))
    assert recorded is not None
    assert recorded.kind is DispositionKind.QUARANTINED
    assert recorded.reason == "not handled after 3 attempts (KeyError)"
    assert one_pass(conn, account, handler).handled == ()


def test_the_same_message_delivered_twice_is_handled_once(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(conn)
    report = one_pass(conn, dovecot.imap_section(mash), handler)
    assert len(handler.calls) == 1
    assert (report.handled, report.duplicates) == ((1,), (2,))
    # Both copies go where the first went; nothing is deleted.
    assert raw_in(dovecot, mash, "Processed") == [police_mail(1), police_mail(1)]


def test_a_message_put_back_in_the_inbox_is_not_handled_again(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(conn)
    account = dovecot.imap_section(mash)
    one_pass(conn, account, handler)
    with dovecot.client(mash) as someone:
        someone.select_folder("Processed")
        someone.move(someone.search("ALL"), "INBOX")
    report = one_pass(conn, account, handler)
    assert len(handler.calls) == 1
    assert report.duplicates == (2,)
    assert raw_in(dovecot, mash) == []


def test_another_message_under_a_reused_message_id_is_handled(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    # A spoofer reusing a genuine Message-ID must not get the genuine mail skipped.
    dovecot.deliver(mash, police_mail(1, body="forged"))
    dovecot.deliver(mash, police_mail(1))
    handler = Handler(conn)
    one_pass(conn, dovecot.imap_section(mash), handler)
    assert handler.calls == [police_mail(1, body="forged"), police_mail(1)]


def test_a_new_uidvalidity_reads_the_folder_again_without_handling_anything_twice(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    account = dovecot.imap_section(mash, inbox="Intake")
    dovecot.deliver(mash, police_mail(1), folder="Intake")
    handler = Handler(conn, disposition=Disposition(DispositionKind.INTAKE, flag="\\Flagged"))
    first = one_pass(conn, account, handler)
    # The folder is recreated (a restore, a server migration): new UIDVALIDITY, the old
    # message back under a UID already used, and one new message.
    with dovecot.client(mash) as admin:
        admin.delete_folder("Intake")
    dovecot.deliver(mash, police_mail(1), folder="Intake")
    dovecot.deliver(mash, police_mail(2), folder="Intake")
    second = one_pass(conn, account, handler)
    assert second.uidvalidity != first.uidvalidity
    assert second.renumbered
    assert (second.duplicates, second.handled) == ((1,), (2,))
    assert handler.calls == [police_mail(1), police_mail(2)]
    assert all("\\Flagged" in s.flags for s in dovecot.messages(mash, "Intake").values())


def test_after_a_reconnect_only_mail_above_the_last_uid_is_fetched(
    dovecot: Dovecot, mash: MailUser, conn: sqlite3.Connection
) -> None:
    account = dovecot.imap_section(mash)
    handler = Handler(conn, disposition=Disposition(DispositionKind.TRACKED, flag="\\Flagged"))
    dovecot.deliver(mash, police_mail(1))
    one_pass(conn, account, handler)
    dovecot.deliver(mash, police_mail(2))
    dovecot.deliver(mash, police_mail(3))
    report = one_pass(conn, account, handler)  # a new connection, as after a reconnect
    assert report.handled == (2, 3)
    assert handler.calls == [police_mail(1), police_mail(2), police_mail(3)]


CRASHING_PASS = """
import sys
from datetime import datetime
from pathlib import Path

from gateway.config import ImapSection
from gateway.imap_client import connect
from gateway.mail_ledger import Disposition, DispositionKind
from gateway.mailbox_watch import poll_mailbox
from gateway.store import open_state

database, account = sys.argv[1:]
poll_mailbox(
    open_state(Path(database)),
    connect,
    ImapSection.model_validate_json(account),
    mailbox="mash",
    handle=lambda raw, key: Disposition(DispositionKind.INTAKE, reference="in-child"),
    now=datetime.fromisoformat("2026-03-02T07:30:00+00:00"),
    actor="test",
)
"""


def test_a_crash_between_the_commit_and_the_move_finishes_the_move_without_handling_again(
    dovecot: Dovecot, mash: MailUser, tmp_path: Path
) -> None:
    database = tmp_path / "state.sqlite3"
    account = dovecot.imap_section(mash)
    dovecot.deliver(mash, police_mail(1))
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_PASS, str(database), account.model_dump_json()],
        env={**os.environ, CRASH_AT_VARIABLE: "mail.after_record_committed"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert child.returncode == -9, child.stderr
    conn = open_state(database)
    [left] = mail_ledger.pending(conn, "mash", mail_ledger_uidvalidity(conn))
    assert (left.key.uid, left.reference) == (1, "in-child")
    assert raw_in(dovecot, mash) == [police_mail(1)]  # recorded, not yet moved

    handler = Handler(conn)
    report = one_pass(conn, account, handler)
    assert handler.calls == []
    assert report.moved == (1,)
    assert raw_in(dovecot, mash, "Processed") == [police_mail(1)]
    assert mail_ledger.pending(conn, "mash", report.uidvalidity) == []
    conn.close()


def mail_ledger_uidvalidity(conn: sqlite3.Connection) -> int:
    state = mail_ledger.mailbox_state(conn, "mash")
    assert state is not None
    return state.uidvalidity


# --------------------------------------------------------------------------------------
# The watcher


@dataclass
class Watcher:
    """watch_mailbox in its own thread with its own database connection, as in the service;
    its passes and errors observable from the test."""

    database: Path
    account: ImapSection
    first_backoff: float = 0.2
    stop: threading.Event = field(default_factory=threading.Event)
    passes: list[PollReport] = field(default_factory=list)
    errors: list[tuple[MailboxError, float]] = field(default_factory=list)
    recorded_at: list[float] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    idling: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self, account: ImapSection) -> MailboxClient:
        # The real client, telling the test when the watcher settles into IDLE.
        client = connect(account)
        wait = client.wait_for_mail

        def observed(max_seconds: float, *, stop: threading.Event | None = None) -> bool:
            self.idling.set()
            return wait(max_seconds, stop=stop)

        client.wait_for_mail = observed  # type: ignore[method-assign]
        return client

    def _run(self) -> None:
        conn = open_state(self.database)
        try:
            watch_mailbox(
                conn,
                self._connect,
                self.account,
                mailbox="mash",
                handle=Handler(conn),
                clock=FixedClock(NOW),
                actor="test",
                stop=self.stop,
                first_backoff_seconds=self.first_backoff,
                max_backoff_seconds=2,
                on_pass=self._passed,
                on_error=self._failed,
            )
        finally:
            conn.close()

    def _passed(self, report: PollReport) -> None:
        with self.changed:
            if report.handled:
                self.recorded_at.append(time.monotonic())
            self.passes.append(report)
            self.changed.notify_all()

    def _failed(self, error: MailboxError, pause: float) -> None:
        with self.changed:
            self.errors.append((error, pause))
            self.changed.notify_all()

    def wait_for(self, what: str, count: int, seconds: float) -> None:
        with self.changed:
            reached = self.changed.wait_for(lambda: len(getattr(self, what)) >= count, seconds)
        assert reached, f"{what}: {getattr(self, what)!r} after {seconds} s"

    def handled(self) -> list[int]:
        with self.changed:
            return [uid for report in self.passes for uid in report.handled]

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the watcher did not stop when asked"


def test_the_watcher_handles_mail_soon_after_it_lands(
    dovecot: Dovecot, mash: MailUser, tmp_path: Path
) -> None:
    latencies = []
    with Watcher(tmp_path / "state.sqlite3", dovecot.imap_section(mash)) as watcher:
        watcher.wait_for("passes", 1, 10)
        for number in (1, 2, 3):
            dovecot.deliver(mash, police_mail(number))
            delivered = time.monotonic()
            watcher.wait_for("recorded_at", number, 10)
            latencies.append(watcher.recorded_at[-1] - delivered)
    print(
        "\nMASH mail delivered -> intake recorded and moved (IDLE): "
        + ", ".join(f"{latency:.3f} s" for latency in latencies)
    )
    assert watcher.handled() == [1, 2, 3]
    assert raw_in(dovecot, mash) == []


def test_the_watcher_reconnects_after_a_server_restart_and_takes_mail_that_came_meanwhile(
    tmp_path: Path,
) -> None:
    with Dovecot() as server:
        user = server.new_user("mash")
        server.deliver(user, police_mail(1))
        with Watcher(tmp_path / "state.sqlite3", server.imap_section(user)) as watcher:
            watcher.wait_for("recorded_at", 1, 10)
            assert watcher.idling.wait(10)
            server.stop()  # the watcher is in IDLE: it gets BYE and starts backing off
            server.deliver_to_maildir(user, police_mail(2))  # the MTA delivers meanwhile
            server.start()
            restarted = time.monotonic()
            watcher.wait_for("recorded_at", 2, 60)
            took = watcher.recorded_at[-1] - restarted
        print(f"\nIMAP server back -> mail that came meanwhile recorded: {took:.3f} s")
        assert watcher.handled() == [1, 2]
        assert watcher.errors, "the restart was not noticed"
        assert raw_in(server, user, "Processed") == [police_mail(1), police_mail(2)]


def test_the_watcher_backs_off_doubling_while_the_server_is_unreachable(
    dovecot: Dovecot, mash: MailUser, tmp_path: Path
) -> None:
    nowhere = dovecot.imap_section(mash, port=free_port())
    with Watcher(tmp_path / "state.sqlite3", nowhere, first_backoff=0.05) as watcher:
        watcher.wait_for("errors", 4, 30)
    pauses = [pause for _error, pause in watcher.errors[:4]]
    assert pauses == [0.05, 0.1, 0.2, 0.4]
    assert watcher.passes == []


def test_the_watcher_stops_when_asked_while_waiting_for_mail(
    dovecot: Dovecot, mash: MailUser, tmp_path: Path
) -> None:
    with Watcher(tmp_path / "state.sqlite3", dovecot.imap_section(mash)) as watcher:
        watcher.wait_for("passes", 1, 10)
    assert not watcher.thread.is_alive()

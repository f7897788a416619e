"""`encompass-gateway run`: the service — the mailboxes watched, dispatch on time.

A scheduler around the same one-shot operations as the CLI. The database is the source of
truth: one APScheduler job, "dispatch", is (re)set to `schedule.next_dispatch` after the
start, after every mailbox pass and after every dispatch, so a restart at 08:59 still sends
at 09:00 and a restart at 09:20 sends what was due at once. Daily jobs at the configured
times: the Navigator's digest and chase list, and the directory refresh from the configured
files (gateway/directory_refresh.py) when they are configured. Each mailbox is watched by its
own thread (IDLE, reconnecting with backoff), each thread with its own SQLite connection.
Daily jobs at fixed London times: the key check (`schedule.key_check_at`), the digest and
the chase list; each reads the database, so a missed run loses nothing but its hour.

One instance per database: an exclusive lock on a file beside it; a second instance stops
at once with a clear message. SIGTERM or SIGINT stops the watchers and the scheduler cleanly.
With `[inbound_smtp]` configured, an SMTP listener (gateway/smtp_intake.py) takes police mail
in beside the MASH inbox, started and stopped with the rest.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from gateway import audit
from gateway.clock import LONDON, Clock
from gateway.config import ImapSection, LoadedConfig
from gateway.directory_refresh import refresh_configured, refresh_directory
from gateway.errors import StateError
from gateway.imap_client import MailboxError, connect
from gateway.keyring import open_keyring
from gateway.mail_intake import PoliceMailHandler
from gateway.mailbox_watch import Handler, PollReport, watch_mailbox
from gateway.operations import (
    check_keys_now,
    dispatch_now,
    escalate_if_late,
    escalate_now,
    queue_chase_list,
    queue_digest,
)
from gateway.retention import purge_due
from gateway.ruleset import load_rules
from gateway.schedule import next_dispatch
from gateway.smtp_intake import SmtpIntake, SmtpListener
from gateway.store import open_config_state, transaction
from gateway.tracking import TrackingHandler

log = logging.getLogger("gateway.service")

DISPATCH_JOB = "dispatch"
KEY_CHECK_JOB = "key-check"
REFRESH_JOB = "directory_refresh"
ESCALATE_JOB = "approval-escalate"
PURGE_JOB = "purge"  # daily, at retention.purge_at: personal data past the retention period
# A dispatch that could not run on time (the machine slept, the process was busy) still
# runs when it can within this window; later than that, the next start finds it overdue.
MISFIRE_GRACE_SECONDS = 6 * 3600


@contextmanager
def instance_lock(database: Path) -> Iterator[None]:
    """Hold the one-service-per-database lock for the block; refuse if another holds it."""
    path = database.with_name(database.name + ".service-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StateError(
                f"another `encompass-gateway run` (pid {holder}) is already serving {database}; "
                "only one instance may run per database"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Service:
    config: LoadedConfig
    clock: Clock
    stop: threading.Event = field(default_factory=threading.Event)
    on_dispatch: Callable[[], None] | None = None  # for tests: called after each dispatch
    _scheduler: BackgroundScheduler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        """Serve until `stop` is set."""
        with instance_lock(self.config.database):
            scheduler = BackgroundScheduler(
                timezone=LONDON,
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": MISFIRE_GRACE_SECONDS,
                },
            )
            scheduler.add_listener(self._missed, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
            # The daily jobs are added before the start, so the scheduler is never seen
            # running with only some of them.
            for job, (action, at) in self._timetable().items():
                hour, minute = at.split(":")
                scheduler.add_job(
                    action,
                    "cron",
                    hour=int(hour),
                    minute=int(minute),
                    id=job,
                    replace_existing=True,
                )
            scheduler.start()
            with self._lock:
                self._scheduler = scheduler
            watchers = [
                threading.Thread(target=self._watch, args=(name, account), name=f"watch-{name}")
                for name, account in self._accounts().items()
            ]
            listener = self._smtp_listener()
            try:
                self.reschedule()
                if listener is not None:
                    listener.start()
                for watcher in watchers:
                    watcher.start()
                self.stop.wait()
            finally:
                self.stop.set()
                if listener is not None:
                    listener.stop()
                for watcher in watchers:
                    if watcher.is_alive():
                        watcher.join()
                # Forget the scheduler first, under the lock: a job finishing during shutdown
                # then finds none to reschedule on, instead of waiting on a scheduler that is
                # itself waiting for that job (a deadlock).
                with self._lock:
                    self._scheduler = None
                scheduler.shutdown(wait=True)

    def _timetable(self) -> dict[str, tuple[Callable[[], None], str]]:
        """The daily jobs: id -> (what runs, Europe/London "HH:MM")."""
        timetable = self.config.config.schedule
        jobs: dict[str, tuple[Callable[[], None], str]] = {
            "digest": (partial(self._navigator_mail, "digest"), timetable.digest_at),
            "chase": (partial(self._navigator_mail, "chase"), timetable.chase_at),
            KEY_CHECK_JOB: (self._key_check, timetable.key_check_at),
            PURGE_JOB: (self._purge, self.config.config.retention.purge_at),
        }
        if refresh_configured(self.config):
            jobs[REFRESH_JOB] = (self._refresh_directory, timetable.directory_refresh_at)
        approval = self.config.config.approval
        if approval.required:
            jobs[ESCALATE_JOB] = (self._escalate, approval.escalate_at)
        return jobs

    def next_run(self, job: str) -> datetime | None:
        """When the scheduled job `job` runs next; None when it is not scheduled, or the
        service is not running."""
        with self._lock:
            scheduled = self._scheduler.get_job(job) if self._scheduler is not None else None
        return None if scheduled is None else scheduled.next_run_time

    def reschedule(self) -> None:
        """Set the dispatch job to the next instant a message can leave (now, if overdue)."""
        conn = open_config_state(self.config)
        try:
            when = next_dispatch(conn)
        finally:
            conn.close()
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None:
                return  # not started, or shutting down
            if when is None:
                if scheduler.get_job(DISPATCH_JOB) is not None:
                    scheduler.remove_job(DISPATCH_JOB)
                return
            run_at = max(when, self.clock.now())
            scheduler.add_job(
                self._dispatch, "date", run_date=run_at, id=DISPATCH_JOB, replace_existing=True
            )
            log.info("dispatch scheduled at %s", run_at.isoformat())

    def _dispatch(self) -> None:
        conn = open_config_state(self.config)
        try:
            _, report = dispatch_now(
                conn, config=self.config, now=self.clock.now(), actor="service:dispatch"
            )
            log.info(
                "dispatch: %d sent, %d to retry, %d exceptions",
                len(report.sent),
                len(report.retrying),
                len(report.exceptions),
            )
        finally:
            conn.close()
        self.reschedule()
        if self.on_dispatch is not None:
            self.on_dispatch()

    def _navigator_mail(self, job: str, *, only_new: bool = False) -> None:
        conn = open_config_state(self.config)
        try:
            now = self.clock.now()
            if job == "chase":
                queued = queue_chase_list(conn, config=self.config, now=now, actor="service")
            else:
                queued = queue_digest(
                    conn, config=self.config, now=now, actor="service", only_new=only_new
                )
        finally:
            conn.close()
        if queued:
            self.reschedule()

    def _escalate(self, *, if_late: bool = False) -> None:
        # Approval mode: what is due today and still not approved goes to the manager now,
        # rather than being held past 09:00 without anyone knowing (gateway/approval.py);
        # after an intake, only once the day's escalation time has passed.
        escalation = escalate_if_late if if_late else escalate_now
        conn = open_config_state(self.config)
        try:
            escalated = escalation(
                conn, config=self.config, now=self.clock.now(), actor="service:approval"
            )
        finally:
            conn.close()
        if escalated:
            log.info("approval: %d notifications not approved, escalated", len(escalated))
            self.reschedule()

    def _key_check(self) -> None:
        conn = open_config_state(self.config)
        try:
            report = check_keys_now(
                conn, config=self.config, now=self.clock.now(), actor="service:key-check"
            )
            log.info(
                "key check: %d contacts' keys, %d new warnings",
                report.checked,
                len(report.warnings),
            )
        finally:
            conn.close()
        if report.warnings:
            self.reschedule()  # the notices to the contacts are due now

    def _refresh_directory(self) -> None:
        conn = open_config_state(self.config)
        try:
            refresh_directory(
                conn, config=self.config, now=self.clock.now(), actor="service:directory-refresh"
            )
        finally:
            conn.close()
        self.reschedule()  # welcome packs or an alert may now be waiting to go

    def _purge(self) -> None:
        conn = open_config_state(self.config)
        try:
            report = purge_due(
                conn, config=self.config, now=self.clock.now(), actor="service:purge"
            )
        finally:
            conn.close()
        # Counts only: the report's references are in the audit, not the log.
        log.info(
            "purge: %d incidents and %d spreadsheets purged, %d held, %d waiting",
            len(report.incidents),
            len(report.intakes),
            len(report.held),
            len(report.waiting),
        )

    def _missed(self, event: JobExecutionEvent) -> None:
        # A missed or failed job is on record for the Navigator, and the schedule is rebuilt
        # from the database, so the work is not lost with it.
        conn = open_config_state(self.config)
        try:
            with transaction(conn):
                audit.append(
                    conn,
                    "schedule.missed" if event.code == EVENT_JOB_MISSED else "schedule.failed",
                    actor="service",
                    at=self.clock.now(),
                    job=event.job_id,
                    error=type(event.exception).__name__ if event.exception else None,
                )
        finally:
            conn.close()
        self.reschedule()

    def _accounts(self) -> dict[str, ImapSection]:
        mailboxes = self.config.config.mailboxes
        return mailboxes.accounts() if mailboxes is not None else {}

    def _watch(self, name: str, account: ImapSection) -> None:
        conn = open_config_state(self.config)
        try:
            with open_keyring(self.config.config.gnupg.home) as keyring:
                handle: Handler
                rules = load_rules(self.config.rules_dir)
                if name == "mash":
                    handle = PoliceMailHandler(
                        conn, self.config, rules, keyring, self.clock, f"service:{name}"
                    )
                else:
                    handle = TrackingHandler(
                        conn,
                        self.config,
                        keyring,
                        self.clock,
                        f"service:{name}",
                        rules.routing.template,
                    )
                watch_mailbox(
                    conn,
                    connect,
                    account,
                    mailbox=name,
                    handle=handle,
                    clock=self.clock,
                    actor=f"service:{name}",
                    stop=self.stop,
                    on_pass=self._after_pass,
                    on_error=lambda error, pause: _log_mailbox_error(name, error, pause),
                )
        except Exception:
            # A watcher that cannot go on (the database, a configuration error) stops the
            # service rather than leaving a mailbox silently unread.
            log.exception("the %s mailbox watcher stopped; stopping the service", name)
            self.stop.set()
            raise
        finally:
            conn.close()

    def _after_pass(self, report: PollReport) -> None:
        if not report.handled:
            return
        # New exceptions after today's digest went out reach the Navigator in another one.
        if report.mailbox == "mash":
            self._after_intake()
        self.reschedule()

    def _smtp_listener(self) -> SmtpListener | None:
        """The inbound SMTP listener, when configured, with the spool put straight first."""
        section = self.config.config.inbound_smtp
        if section is None:
            return None
        intake = SmtpIntake(self.config, section, self.clock)
        intake.recover()

        def deliver(raw: bytes) -> None:
            if intake(raw).duplicate_of is None:
                # As after a pass over the MASH inbox that handled a message.
                self._after_intake()
                self.reschedule()

        return SmtpListener(section, deliver=deliver, clock=self.clock)

    def _after_intake(self) -> None:
        # New exceptions after today's digest went out reach the Navigator in another one;
        # in approval mode, what arrives after the escalation time is escalated at once.
        if self._past_todays_digest():
            self._navigator_mail("digest", only_new=True)
        self._escalate(if_late=True)

    def _past_todays_digest(self) -> bool:
        hour, minute = (int(part) for part in self.config.config.schedule.digest_at.split(":"))
        local = self.clock.now().astimezone(LONDON)
        return (local.hour, local.minute) >= (hour, minute)


def _log_mailbox_error(name: str, error: MailboxError, pause: float) -> None:
    log.warning("%s mailbox: %s; trying again in %.0f s", name, error, pause)

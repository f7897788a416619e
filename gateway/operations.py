"""The one-shot operations behind the CLI, wiring adapters (files, state) to the domain."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway import audit
from gateway.approval import escalate, hold_intake_for_approval
from gateway.clock import LONDON
from gateway.config import LoadedConfig
from gateway.digest import build_chase_list, build_digest
from gateway.digest_render import render_chase_list, render_digest
from gateway.directory import SqliteDirectory
from gateway.dispatch import DispatchReport, dispatch_due
from gateway.errors import SpreadsheetRefused, StateError
from gateway.exception_detail import record_exception_details
from gateway.intake_store import Recorded, record_plan
from gateway.key_lifecycle import (
    STALE_LISTED,
    KeyCheckReport,
    check_keys,
    mark_listed,
    stale_contacts,
    stale_contacts_due,
    unlisted_warnings,
)
from gateway.keyring import Keyring, open_keyring
from gateway.manager_alert import queue_manager_alerts
from gateway.model import SpreadsheetIntake
from gateway.notifications import plan_notifications
from gateway.outbox import MessageKind
from gateway.own_mail import queue_to_navigator
from gateway.plan import Plan, build_plan
from gateway.render import NavigatorContact
from gateway.return_sheet import (
    MailSource,
    ReturnReport,
    has_pending_returns,
    queue_return_sheets,
    record_source,
)
from gateway.revision_store import Planned, plan_notification, record_gone
from gateway.ruleset import Rules, load_rules
from gateway.sealing import Sealer, SealReport, reseal_for_current_contacts, seal_planned
from gateway.smtp_transport import SmtpTransport
from gateway.spreadsheet import read_police_workbook
from gateway.store import transaction
from gateway.xlsx_guard import XlsxLimits

MB = 1024 * 1024


def intake_limits(config: LoadedConfig) -> XlsxLimits:
    intake = config.config.intake
    return XlsxLimits(
        max_file_bytes=int(intake.max_file_mb * MB),
        max_entries=intake.max_zip_entries,
        max_uncompressed_bytes=int(intake.max_uncompressed_mb * MB),
        max_ratio=intake.max_compression_ratio,
    )


def read_spreadsheet_file(path: Path, limits: XlsxLimits) -> bytes:
    """The file's bytes, refusing an oversized file before reading it into memory."""
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise SpreadsheetRefused(
                f"{path.name}: {size / MB:.1f} MB is over the {limits.max_file_bytes / MB:.0f} MB"
                " limit for a police spreadsheet (intake.max_file_mb)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise SpreadsheetRefused(f"{path}: cannot be read: {exc.strerror}") from exc


def plan_file(
    path: Path, *, conn: sqlite3.Connection, config: LoadedConfig, rules: Rules, arrival: datetime
) -> tuple[SpreadsheetIntake, Plan]:
    """Read a police spreadsheet file and decide every child's outcome, recording nothing."""
    data = read_spreadsheet_file(path, intake_limits(config))
    return plan_bytes(data, path.name, conn=conn, config=config, rules=rules, arrival=arrival)


def plan_bytes(
    data: bytes,
    file_name: str,
    *,
    conn: sqlite3.Connection,
    config: LoadedConfig,
    rules: Rules,
    arrival: datetime,
) -> tuple[SpreadsheetIntake, Plan]:
    """Decide every child's outcome for a police spreadsheet's bytes (a file or an
    attachment), recording nothing."""
    limits = intake_limits(config)
    intake = read_police_workbook(
        data,
        file_name,
        rules.headers,
        limits=limits,
        today=arrival.astimezone(LONDON).date(),
    )
    directory = SqliteDirectory(conn)
    if not directory.establishments():
        raise StateError(
            f"the directory in {config.database} is empty: run `encompass-gateway directory"
            " import` before processing a spreadsheet"
        )
    return intake, build_plan(intake, directory=directory, rules=rules, arrival=arrival)


# --------------------------------------------------------------------------------------
# After intake: plan, seal, dispatch


@dataclass(frozen=True)
class TakenIn:
    """What recording a spreadsheet did: the intake, its notifications, and their sealing.

    `planned` counts each (incident, school) by what was planned for it (a first
    notification, a child added, an amendment, or nothing as the school already has it all);
    `gone` counts the children of the file it revises that it no longer has.
    """

    recorded: Recorded
    planned: Mapping[Planned, int] = field(default_factory=dict)
    gone: int = 0
    sealing: SealReport | None = None  # None: not sealed now (see `take_in`)


def take_in(
    conn: sqlite3.Connection,
    intake: SpreadsheetIntake,
    plan: Plan,
    *,
    config: LoadedConfig,
    rules: Rules,
    actor: str,
    source: MailSource | None = None,
) -> TakenIn:
    """Record the intake, every decision and the planned notifications, then seal them.

    `source` is the mail the spreadsheet came in (its bytes and authenticated sender): kept
    with the intake so the police are sent the return sheet once every child is settled. A
    file processed by hand has none and gets no return sheet.

    Recording and planning commit together: a crash between the two would otherwise leave an
    intake recorded (so never processed again) whose notifications were never planned — a
    notification silently not sent. Sealing follows in its own transactions; a crash there
    leaves notifications planned, and the next `process` or `dispatch` seals them.
    Sealing is skipped when navigator.fingerprint is not configured.

    A file that is not byte for byte one taken in before may still name incidents a school
    was told about (a corrected resend): each is planned against what the school was told
    (gateway/amendments.py), so only what is new or changed is sent, and what has gone from
    the file it revises is recorded for the Navigator.
    """
    template = rules.routing.template
    with transaction(conn):
        recorded = record_plan(conn, plan, incidents=len(intake.incidents), actor=actor)
        if not recorded.new:
            return TakenIn(recorded)
        planned = Counter(
            plan_notification(
                conn,
                notification,
                intake_id=recorded.intake_id,
                template=template,
                at=plan.arrival,
                actor=actor,
            )
            for notification in plan_notifications(intake.incidents, plan.decisions)
        )
        gone = record_gone(conn, recorded.intake_id, at=plan.arrival, actor=actor)
        if config.config.approval.required:
            hold_intake_for_approval(conn, recorded.intake_id, at=plan.arrival, actor=actor)
        # Kept with the intake, so an exception the Navigator resolves with ROUTE is notified
        # as intake would have notified it.
        record_exception_details(conn, recorded.intake_id, intake.incidents, plan)
        if source is not None:
            record_source(conn, recorded.intake_id, source)
        # In the same transaction: an intake is never recorded without its manager alerts.
        _alert_manager(conn, plan, config=config, template=template, actor=actor)
    if config.config.navigator.fingerprint is None:
        return TakenIn(recorded, planned, gone)
    sealing = seal_now(conn, config=config, template=template, now=plan.arrival, actor=actor)
    return TakenIn(recorded, planned, gone, sealing)


def _alert_manager(
    conn: sqlite3.Connection, plan: Plan, *, config: LoadedConfig, template: str, actor: str
) -> None:
    if not any(decision.manager_alert for decision in plan.decisions):
        return
    settings = config.config
    if settings.manager is None or settings.navigator.fingerprint is None:
        # Listed for the Navigator (the decisions carry the alert) and on record here.
        audit.append(
            conn, "manager_alert.not_configured", actor=actor, at=plan.arrival, sha256=plan.sha256
        )
        return
    with open_keyring(settings.gnupg.home) as keyring:
        queue_manager_alerts(
            conn,
            plan,
            manager=settings.manager,
            sealer=make_sealer(config, keyring, template=template),
            now=plan.arrival,
            actor=actor,
        )


def make_sealer(config: LoadedConfig, keyring: Keyring, *, template: str) -> Sealer:
    """The Navigator as signer, from the configuration (ConfigError without a fingerprint)."""
    settings = config.config
    passphrase = settings.navigator.passphrase
    return Sealer(
        keyring=keyring,
        navigator=settings.navigator,
        passphrase=passphrase.resolve() if passphrase else None,
        dispatch=settings.dispatch,
        template=template,
    )


def seal_now(
    conn: sqlite3.Connection, *, config: LoadedConfig, template: str, now: datetime, actor: str
) -> SealReport:
    """Seal every planned notification (after an intake, or left by an interrupted run), and
    seal again for the school's current contacts what was sealed for a contact the
    directory no longer lists (gateway/sealing.py `reseal_for_current_contacts`)."""
    with open_keyring(config.config.gnupg.home) as keyring:
        sealer = make_sealer(config, keyring, template=template)
        directory = SqliteDirectory(conn)
        report = seal_planned(conn, directory=directory, sealer=sealer, now=now, actor=actor)
        reseal_for_current_contacts(conn, directory=directory, sealer=sealer, now=now, actor=actor)
        return report


def dispatch_now(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> tuple[SealReport, DispatchReport]:
    """Seal anything still planned, then send every message due at `now`; then queue the
    police's return sheet of each mailed spreadsheet now settled, and send those too."""
    rules = load_rules(config.rules_dir)
    template = rules.routing.template
    sealing = seal_now(conn, config=config, template=template, now=now, actor=actor)
    smtp = config.config.smtp

    def connect() -> SmtpTransport:
        return SmtpTransport.open(smtp, password=smtp.password.resolve() if smtp.password else None)

    settings = config.config.dispatch
    report = dispatch_due(conn, now=now, connect=connect, settings=settings, actor=actor)
    if return_sheets_now(conn, config=config, rules=rules, now=now, actor=actor).queued:
        # The notifications that settled them have just gone: the police need not wait for
        # the next pass.
        more = dispatch_due(conn, now=now, connect=connect, settings=settings, actor=actor)
        report = DispatchReport(
            report.sent + more.sent,
            report.retrying + more.retrying,
            report.exceptions + more.exceptions,
        )
    return sealing, report


def return_sheets_now(
    conn: sqlite3.Connection, *, config: LoadedConfig, rules: Rules, now: datetime, actor: str
) -> ReturnReport:
    """Queue the return sheet of every mailed spreadsheet whose children are all settled."""
    settings = config.config
    if settings.navigator.fingerprint is None or not has_pending_returns(conn):
        return ReturnReport()
    with open_keyring(settings.gnupg.home) as keyring:
        return queue_return_sheets(
            conn,
            police=settings.police,
            sealer=make_sealer(config, keyring, template=rules.routing.template),
            headers=rules.headers,
            now=now,
            actor=actor,
        )


# --------------------------------------------------------------------------------------
# The Navigator's digest and chase list


def last_digest(conn: sqlite3.Connection) -> datetime | None:
    """When the last digest was queued (the next one lists only what arrived after it)."""
    row = conn.execute(
        "SELECT at FROM audit WHERE event = 'digest.queued' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row else None


def queue_digest(
    conn: sqlite3.Connection,
    *,
    config: LoadedConfig,
    now: datetime,
    actor: str,
    only_new: bool = False,
) -> bool:
    """Queue the exceptions digest to the Navigator; with `only_new`, only when something
    arrived since the last one (and listing just that). Returns whether one was queued."""
    settings = config.config
    template = load_rules(config.rules_dir).routing.template
    navigator = NavigatorContact(
        settings.navigator.name, settings.navigator.email, settings.navigator.phone
    )
    # Key warnings are listed once each, in the first digest after the key check recorded
    # them; contacts to confirm in the first full digest of each month: told, not nagged.
    warnings = unlisted_warnings(conn)
    stale = (
        ()
        if only_new or not stale_contacts_due(conn, now=now)
        else stale_contacts(
            SqliteDirectory(conn),
            months=settings.keys.confirm_contacts_months,
            today=now.astimezone(LONDON).date(),
        )
    )
    with open_keyring(settings.gnupg.home) as keyring:
        previous = last_digest(conn)
        found = build_digest(
            conn,
            now=now,
            since=previous if only_new else None,
            told_since=previous,
            key_warnings=warnings,
            stale_contacts=stale,
            approve_by=settings.approval.escalate_at,
        )
        if only_new and found.is_empty:
            return False
        with transaction(conn):
            queue_to_navigator(
                conn,
                render_digest(found, navigator=navigator),
                kind=MessageKind.DIGEST,
                key=f"digest/{now.isoformat()}",
                sealer=make_sealer(config, keyring, template=template),
                now=now,
                actor=actor,
            )
            mark_listed(conn, warnings, at=now, actor=actor)
            if stale:
                audit.append(conn, STALE_LISTED, actor=actor, at=now, contacts=len(stale))
            audit.append(conn, "digest.queued", actor=actor, at=now, only_new=only_new)
    return True


def check_keys_now(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> KeyCheckReport:
    """The key check (gateway/key_lifecycle.py): record each contact key's newly reached
    warning stage and queue its signed notice to the contact (sent by the next dispatch)."""
    settings = config.config
    template = load_rules(config.rules_dir).routing.template
    with open_keyring(settings.gnupg.home) as keyring:
        return check_keys(
            conn,
            keyring=keyring,
            sealer=make_sealer(config, keyring, template=template),
            settings=settings.keys,
            now=now,
            actor=actor,
        )


def queue_chase_list(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> bool:
    """Queue the chase list to the Navigator when a sent notification has no receipt or reply
    recorded yet. Returns whether one was queued."""
    settings = config.config
    chase = build_chase_list(conn, now=now)
    if chase.is_empty:
        return False
    navigator = NavigatorContact(
        settings.navigator.name, settings.navigator.email, settings.navigator.phone
    )
    template = load_rules(config.rules_dir).routing.template
    with open_keyring(settings.gnupg.home) as keyring, transaction(conn):
        queue_to_navigator(
            conn,
            render_chase_list(chase, navigator=navigator),
            kind=MessageKind.DIGEST,
            key=f"chase/{now.isoformat()}",
            sealer=make_sealer(config, keyring, template=template),
            now=now,
            actor=actor,
        )
        audit.append(conn, "chase_list.queued", actor=actor, at=now, items=len(chase.items))
    return True


# --------------------------------------------------------------------------------------
# Approval mode


def escalate_if_late(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> tuple[str, ...]:
    """After an intake, in approval mode: once today's approval.escalate_at has passed, what
    has just arrived due today is escalated at once, rather than waiting unseen for the next
    morning's escalation. Returns the references escalated."""
    approval = config.config.approval
    hour, minute = (int(part) for part in approval.escalate_at.split(":"))
    local = now.astimezone(LONDON)
    if not approval.required or (local.hour, local.minute) < (hour, minute):
        return ()
    return escalate_now(conn, config=config, now=now, actor=actor)


def escalate_now(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> tuple[str, ...]:
    """Escalate what is due today and still waiting for approval (gateway/approval.py);
    returns the references escalated."""
    settings = config.config
    template = load_rules(config.rules_dir).routing.template
    with open_keyring(settings.gnupg.home) as keyring:
        return escalate(
            conn,
            manager=settings.manager,
            sealer=make_sealer(config, keyring, template=template),
            now=now,
            actor=actor,
        )

"""The `encompass-gateway` command line: thin wrappers over the operations.

Each command parses its options, builds what the operation needs (config, clock, state,
rules) and prints the result. Errors of the gateway's own hierarchy end the command with
their message and exit status 2; nothing here decides anything about a child.
"""

from __future__ import annotations

import functools
import json
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway import audit
from gateway.audit_export import export_navigator_record
from gateway.clock import Clock, FixedClock, SystemClock, parse_instant
from gateway.commands import parse_command
from gateway.config import LoadedConfig, load_config
from gateway.demo import run_demo
from gateway.demo_summary import render_summary
from gateway.directory import SqliteDirectory
from gateway.directory_refresh import configured_files, import_and_welcome
from gateway.errors import ConfigError, GatewayError, StateError
from gateway.health import Finding, check
from gateway.imap_client import connect
from gateway.key_import import ContactRef, import_keys
from gateway.key_reports import contact_key_report
from gateway.keyring import KeyStatus, open_keyring
from gateway.legal_hold import active_holds, place_hold, release_hold
from gateway.logs import configure_logging
from gateway.mail_intake import PoliceMailHandler
from gateway.mailbox_watch import Handler, poll_mailbox
from gateway.onboarding import WelcomeReport, welcome_school
from gateway.operations import (
    check_keys_now,
    dispatch_now,
    plan_file,
    queue_chase_list,
    queue_digest,
    take_in,
)
from gateway.plan import decision_json, render_table
from gateway.resolutions import execute
from gateway.retention import purge_due
from gateway.revision_store import Planned
from gateway.ruleset import load_rules
from gateway.sealing import SealReport
from gateway.service import Service
from gateway.smtp_intake import read_kept
from gateway.store import open_config_state, storage_key, transaction
from gateway.subject_access import export_subject_access, find_subject
from gateway.tracking import TrackingHandler
from gateway.welcome import load_onboarding_rules, placeholder_addresses

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Context:
    config: LoadedConfig
    clock: Clock


def _reports_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GatewayError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Clock:
    if value is None:
        return SystemClock()
    try:
        return FixedClock(parse_instant(value))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 instant (e.g. 2026-03-02T08:30:00+00:00)"
        ) from None


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file (default: $ENCOMPASS_CONFIG, else embedded defaults).",
)
@click.option(
    "--now",
    "clock",
    callback=_instant,
    metavar="ISO-8601",
    help="Run as if it were this instant (a time without offset is Europe/London).",
)
@click.pass_context
@_reports_errors
def cli(ctx: click.Context, config_path: Path | None, clock: Clock) -> None:
    """Encompass Gateway: police domestic-abuse notifications to the right school."""
    ctx.obj = Context(load_config(config_path), clock)


@cli.group()
def directory() -> None:
    """The directory of schools, contacts and pupils."""


@directory.command("import")
@click.option("--gias", type=click.Path(path_type=Path, dir_okay=False), help="GIAS extract (CSV).")
@click.option("--contacts", type=click.Path(path_type=Path, dir_okay=False), help="Contacts CSV.")
@click.option(
    "--roll", type=click.Path(path_type=Path, dir_okay=False), help="Pupil roll (.csv/.xlsx)."
)
@click.option("--roll-profile", help="Column profile of rules/pupil_roll.toml.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
@click.pass_obj
@_reports_errors
def directory_import(
    obj: Context,
    gias: Path | None,
    contacts: Path | None,
    roll: Path | None,
    roll_profile: str | None,
    progress: bool | None,
) -> None:
    """Replace the directory with the GIAS extract, contacts list and pupil roll.

    The import is atomic: if any file cannot be imported, the previous directory stays whole.
    A DSL new to the gateway (a school's first, or a new one) is sent the welcome pack, as by
    `onboard`; an import into an empty directory welcomes nobody.
    """

    files = configured_files(
        obj.config, gias=gias, contacts=contacts, roll=roll, roll_profile=roll_profile
    )
    imported = import_and_welcome(
        _state(obj),
        files,
        config=obj.config,
        now=obj.clock.now(),
        actor="cli:directory-import",
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    click.echo(imported.summary.render())
    _say_welcomes(imported.welcomes)


def _say_welcomes(report: WelcomeReport) -> None:
    for welcomed in report.queued:
        click.echo(f"welcome pack {welcomed.reference} queued to the new DSL of URN {welcomed.urn}")
    for line in report.waiting:
        click.echo(line)
    if report.queued:
        click.echo("`encompass-gateway dispatch` (or the service) sends them")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the plan; record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
@_reports_errors
def process(obj: Context, file: Path, dry_run: bool, as_json: bool) -> None:
    """Take in a police spreadsheet as if it had arrived now, and show what happens to each child.

    Exit status 0 when the file was processed (exceptions included); 2 when it could not be read.
    """
    conn = _state(obj)
    arrival = obj.clock.now()
    rules = load_rules(obj.config.rules_dir)
    intake, plan = plan_file(file, conn=conn, config=obj.config, rules=rules, arrival=arrival)
    if as_json:
        click.echo(json.dumps([decision_json(d) for d in plan.decisions], indent=2))
    else:
        click.echo(render_table(plan))
    if dry_run:
        return
    say = functools.partial(click.echo, err=as_json)  # keep stdout pure JSON with --json
    taken = take_in(conn, intake, plan, config=obj.config, rules=rules, actor="cli:process")
    recorded = taken.recorded
    if not recorded.new:
        say(
            f"already processed as intake {recorded.intake_id} at "
            f"{recorded.received_at.isoformat()}: nothing new recorded"
        )
        return
    say(f"recorded intake {recorded.intake_id}: {len(plan.decisions)} decisions")
    say(
        f"notifications: {taken.planned.get(Planned.FIRST, 0)} planned"
        + "".join(
            f", {count} {label}"
            for label, count in (
                ("further (a child added)", taken.planned.get(Planned.ADDED, 0)),
                ("amended", taken.planned.get(Planned.AMENDMENT, 0)),
                ("unchanged since an earlier file", taken.planned.get(Planned.UNCHANGED, 0)),
                (
                    "withheld, as the Navigator withheld what they follow",
                    taken.planned.get(Planned.WITHHELD, 0),
                ),
                (
                    "for the Navigator, as what the school was told before is purged",
                    taken.planned.get(Planned.PURGED, 0),
                ),
            )
            if count
        )
    )
    if taken.gone:
        say(
            f"gone from the spreadsheet this one corrects: {taken.gone} of its children,"
            " listed for the Navigator in the digest"
        )
    if taken.sealing is None:
        say("not sealed yet: navigator.fingerprint is not configured; `dispatch` seals them")
    else:
        _say_sealing(taken.sealing, say)


def _say_sealing(report: SealReport, say: Callable[[str], None]) -> None:
    say(f"sealed: {len(report.sealed)} notifications")
    for excepted in report.exceptions:
        say(f"exception {excepted.kind.value}: {excepted.reference}: {excepted.reason}")


@cli.command()
@click.pass_obj
@_reports_errors
def dispatch(obj: Context) -> None:
    """Seal anything still planned, then send every message due now over SMTP submission."""
    conn = _state(obj)
    sealing, report = dispatch_now(
        conn, config=obj.config, now=obj.clock.now(), actor="cli:dispatch"
    )
    _say_sealing(sealing, click.echo)
    for sent in report.sent:
        click.echo(f"sent {sent.reference} {sent.message_id}")
    for retry in report.retrying:
        when = retry.next_attempt.isoformat() if retry.next_attempt else "later"
        click.echo(f"retrying {retry.reference} at {when}: {retry.reason}")
    for failed in report.exceptions:
        click.echo(f"exception {failed.reference}: {failed.reason}")
    click.echo(
        f"dispatch: {len(report.sent)} sent, {len(report.retrying)} to retry, "
        f"{len(report.exceptions)} exceptions"
    )


@cli.command()
@click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False),
    help="Put the demo's files here, a new or empty folder (default: a new temporary folder, "
    "kept for inspection).",
)
@click.pass_obj
@_reports_errors
def demo(obj: Context, workspace: Path | None) -> None:
    """The whole day end to end on embedded defaults, with nothing to configure.

    Generates a directory, a police spreadsheet and demo keys; takes the spreadsheet in at
    07:30 on a simulated Monday, dispatches at 08:59 and 09:00 to an SMTP server on
    127.0.0.1 standing in for the schools; decrypts what the schools received, exports the
    Navigator's record and verifies the audit log. Synthetic data only; nothing leaves the
    machine and nothing is left running. Exit status 1 when one of the demo's checks failed.
    """
    if isinstance(obj.clock, FixedClock):
        raise click.UsageError(
            "the demo keeps its own simulated clock (Monday 2 March 2026, 07:00 to 09:05); "
            "leave out --now"
        )
    started = time.monotonic()
    run = run_demo(workspace or Path(tempfile.mkdtemp(prefix="encompass-demo-")))
    click.echo(render_summary(run))
    click.echo(
        f"\nThe demo took {time.monotonic() - started:.1f} s; its SMTP server and every "
        "gpg-agent it started have been stopped."
    )
    if not run.ok:
        click.echo("error: a check of the demo failed (see above)", err=True)
        sys.exit(1)


@cli.command()
@click.option("--chase", is_flag=True, help="The chase list instead of the exceptions digest.")
@click.option("--new-only", is_flag=True, help="Only what arrived since the last digest.")
@click.pass_obj
@_reports_errors
def digest(obj: Context, chase: bool, new_only: bool) -> None:
    """Send the Navigator the exceptions digest (or the chase list), encrypted, now."""
    conn = _state(obj)
    now = obj.clock.now()
    if chase:
        queued = queue_chase_list(conn, config=obj.config, now=now, actor="cli:digest")
    else:
        queued = queue_digest(
            conn, config=obj.config, now=now, actor="cli:digest", only_new=new_only
        )
    if not queued:
        click.echo("nothing to send: nothing new needs the Navigator")
        return
    _, report = dispatch_now(conn, config=obj.config, now=now, actor="cli:digest")
    click.echo(f"queued; dispatch: {len(report.sent)} sent, {len(report.retrying)} to retry")


@cli.command()
@click.argument("urn", type=int)
@click.pass_obj
@_reports_errors
def onboard(obj: Context, urn: int) -> None:
    """Send the DSL of school URN the welcome pack to the scheme, signed, now.

    What Operation Encompass is and what notifications look like, how to send and confirm
    an OpenPGP key, the letter to parents and carers and the safeguarding policy paragraph.
    No child's data. Run by hand it is sent again, on purpose, even if it went before.
    Refused for a school not in the directory, not open, outside the area, or without a DSL
    email address.
    """
    conn = _state(obj)
    now = obj.clock.now()
    for welcomed in welcome_school(conn, urn, config=obj.config, now=now, actor="cli:onboard"):
        click.echo(f"welcome pack {welcomed.reference} queued to {welcomed.email}")
    _, report = dispatch_now(conn, config=obj.config, now=now, actor="cli:onboard")
    click.echo(f"dispatch: {len(report.sent)} sent, {len(report.retrying)} to retry")


@cli.command()
@click.argument("verb")
@click.argument("item")
@click.argument("args", nargs=-1)
@click.pass_obj
@_reports_errors
def resolve(obj: Context, verb: str, item: str, args: tuple[str, ...]) -> None:
    """The Navigator's decision on an item of the digest, as by signed mail:

    \b
    ROUTE C123 110123          notify that school about an exception child
    WITHHOLD C123|OE-… REASON  send nothing (a notification only while not sent)
    CALLED C123 NOTE           a telephone task done
    RESEND OE-… [DEPUTY]       again, or to the school's stand-ins
    NOTE C123|OE-…|B4 TEXT     a note on the record
    APPROVE B4|OE-…|ALL        approval mode: let waiting notifications go
    WITHDRAW OE-…              a withdrawal notice to the school (sealed, sent at once)

    Prints what was done; exit status 1 when the command was refused (nothing changed),
    2 when it could not be understood. What is due at once is dispatched now.
    """
    command = parse_command(" ".join((verb, item, *args)))
    conn = _state(obj)
    now = obj.clock.now()
    result = execute(conn, command, config=obj.config, now=now, actor="cli", signer=None)
    click.echo(result.line)
    if not result.done:
        sys.exit(1)
    if result.send_now:
        try:
            _, report = dispatch_now(conn, config=obj.config, now=now, actor="cli:resolve")
        except StateError as busy:
            # Done and on record: the running dispatch, or the next one, sends it.
            click.echo(f"not dispatched now: {busy}")
            return
        click.echo(f"dispatch: {len(report.sent)} sent, {len(report.retrying)} to retry")


@cli.command()
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (for a collector).")
@click.pass_obj
@_reports_errors
def run(obj: Context, log_json: bool) -> None:
    """The service: watch the mailboxes and dispatch every notification when it is due.

    Stops cleanly on SIGTERM or SIGINT. One instance per state database.
    """
    if isinstance(obj.clock, FixedClock):
        # The service's timers run on the real clock; a frozen one would make every due
        # time look past or never come.
        raise click.UsageError("run serves in real time: leave out --now")
    configure_logging(json_lines=log_json)
    service = Service(obj.config, obj.clock)

    def stop(_signum: int, _frame: object) -> None:
        service.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.run()


@cli.command()
@click.pass_obj
@_reports_errors
def poll(obj: Context) -> None:
    """One pass over the mailboxes: police spreadsheets from the MASH inbox, then read
    receipts, replies and bounces from the Navigator's mailbox (for cron, and tests)."""
    mailboxes = obj.config.config.mailboxes
    if mailboxes is None or not mailboxes.accounts():
        raise ConfigError(
            f"{obj.config.source or 'the configuration'}: no [mailboxes.mash] or "
            "[mailboxes.navigator] is configured, so there is nothing to poll"
        )
    conn = _state(obj)
    # One instant for the whole pass, so `--now` puts every message at the same moment.
    now = obj.clock.now()
    clock = FixedClock(now)
    settings = obj.config.config
    with open_keyring(settings.gnupg.home) as keyring:
        for name, account in mailboxes.accounts().items():
            handle: Handler
            rules = load_rules(obj.config.rules_dir)
            if name == "mash":
                handle = PoliceMailHandler(conn, obj.config, rules, keyring, clock, "poll:mash")
            else:
                handle = TrackingHandler(
                    conn, obj.config, keyring, clock, f"poll:{name}", rules.routing.template
                )
            report = poll_mailbox(
                conn, connect, account, mailbox=name, handle=handle, now=now, actor=f"poll:{name}"
            )
            click.echo(
                f"{name}: {len(report.handled)} handled, {len(report.duplicates)} seen before,"
                f" {len(report.failed)} failed (tried again next pass),"
                f" {len(report.shunted)} quarantined after repeated failures"
            )


@cli.command("check")
@click.pass_obj
@_reports_errors
def check_command(obj: Context) -> None:
    """Check configuration, directory, keys and calendars; exit 1 if anything is a problem."""
    conn = _state(obj)
    rules = load_rules(obj.config.rules_dir)  # a malformed rules file stops here, named
    onboarding = load_onboarding_rules(
        obj.config.rules_dir, area_la_codes=rules.routing.area_la_codes
    )
    with open_keyring(obj.config.config.gnupg.home) as keyring:
        findings = check(
            conn, config=obj.config, calendar=rules.calendar, keyring=keyring, now=obj.clock.now()
        )
    findings += [
        Finding(False, line) for line in placeholder_addresses(onboarding, obj.config.rules_dir)
    ]
    for finding in findings:
        click.echo(finding.render())
    problems = sum(1 for finding in findings if finding.problem)
    click.echo(f"check: {problems} problems, {len(findings) - problems} warnings")
    if problems:
        sys.exit(1)


@cli.group()
def keys() -> None:
    """The OpenPGP public keys of the schools' contacts, pinned by fingerprint."""


@keys.command("import")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--contact",
    metavar="URN:ROLE",
    help="The contact this key is for (e.g. 110001:DSL; URN:ROLE:EMAIL when the school has "
    "two in that role): PATH must hold that one key.",
)
@click.option(
    "--fingerprint",
    metavar="FINGERPRINT",
    help="The fingerprint read back to the contact by telephone: the key must have it, and "
    "it becomes the contact's pinned key, confirmed today. Needs --contact.",
)
@click.pass_obj
@_reports_errors
def keys_import(obj: Context, path: Path, contact: str | None, fingerprint: str | None) -> None:
    """Import the public key file PATH (or every key file in the folder PATH) and say which
    contacts each one serves.

    Each key must be the one pinned for its contacts (or, with --fingerprint, the one
    confirmed by telephone), carry the contact's address in a user ID, and be able to
    encrypt now: not expired, not revoked. Otherwise nothing is imported and the reason is
    given (exit status 2).
    """
    if fingerprint is not None and contact is None:
        raise click.UsageError("--fingerprint is for one contact: give --contact URN:ROLE too")
    try:
        ref = ContactRef.parse(contact) if contact is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--contact") from None
    conn = _state(obj)
    with open_keyring(obj.config.config.gnupg.home) as keyring:
        done = import_keys(
            conn,
            keyring,
            path,
            config=obj.config.config,
            at=obj.clock.now(),
            actor="cli:keys-import",
            contact=ref,
            fingerprint=fingerprint,
        )
    for line in done.lines:
        click.echo(line.render())
    if done.confirmed is not None:
        c = done.confirmed
        click.echo(
            f"URN {c.urn} {c.role.value} {c.email}: now pinned to {c.fingerprint}, confirmed "
            f"{c.confirmed.isoformat() if c.confirmed else ''}; update the contacts list too"
        )
    click.echo(f"{len(done.imported)} keys imported from {path}")


@keys.command("list")
@click.pass_obj
@_reports_errors
def keys_list(obj: Context) -> None:
    """Every contact's key status now; keys that stop working within the first of
    keys.warn_days (30 days by default) are marked."""
    conn = _state(obj)
    days = obj.config.config.keys.warn_days[0]
    with open_keyring(obj.config.config.gnupg.home) as keyring:
        lines = contact_key_report(
            keyring, SqliteDirectory(conn).all_contacts(), at=obj.clock.now(), warn_days=days
        )
    for line in lines:
        click.echo(line.render())
    usable = sum(1 for line in lines if line.status is KeyStatus.OK)
    soon = sum(1 for line in lines if line.expiring_soon)
    click.echo(
        f"{len(lines)} contacts: {usable} with a usable key, {soon} expiring within {days} days"
    )


@keys.command("check")
@click.pass_obj
@_reports_errors
def keys_check(obj: Context) -> None:
    """The daily key check, now: each contact's key newly within a keys.warn_days threshold,
    expired or revoked is recorded for the next digest, and the contact is sent a signed
    request for a renewed key. Each stage is reported once."""
    conn = _state(obj)
    now = obj.clock.now()
    report = check_keys_now(conn, config=obj.config, now=now, actor="cli:keys-check")
    for warning in report.warnings:
        click.echo(
            f"URN {warning.urn} {warning.contact_role} {warning.fingerprint}: "
            f"{warning.described}; renewal notice queued"
        )
    if report.warnings:
        _, sent = dispatch_now(conn, config=obj.config, now=now, actor="cli:keys-check")
        click.echo(f"dispatch: {len(sent.sent)} sent, {len(sent.retrying)} to retry")
    click.echo(f"key check: {report.checked} contacts' keys, {len(report.warnings)} new warnings")


@cli.group()
def spool() -> None:
    """Mail the SMTP intake kept (sealed with the storage key)."""


@spool.command("show")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
@_reports_errors
def spool_show(obj: Context, file: Path) -> None:
    """Write the message kept in FILE (e.g. quarantine/3.eml.sealed) to standard output."""
    raw = read_kept(file, storage_key(obj.config))
    click.echo(raw, nl=False)


@cli.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log and the Navigator's record."""


@audit_group.command("verify")
@click.option(
    "--expect",
    metavar="SEQ:HASH",
    help="An anchor noted from an earlier verify: also detect a cut of the log's tail.",
)
@click.pass_obj
@_reports_errors
def audit_verify(obj: Context, expect: str | None) -> None:
    """Recompute the hash chain; exit 1 naming the first bad entry."""

    try:
        anchor = audit.parse_anchor(expect) if expect else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--expect") from None
    report = audit.verify(_state(obj), expect=anchor)
    click.echo(str(report))
    if not report.ok:
        sys.exit(1)


@audit_group.command("export")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
@_reports_errors
def audit_export(obj: Context, out: Path) -> None:
    """Write the Navigator's record spreadsheet (.xlsx): every child, school, DSL, sent, outcome."""

    conn = _state(obj)
    rows = export_navigator_record(conn, out)
    # The record names children: who wrote a copy, and when, belongs in the audit.
    with transaction(conn):
        audit.append(
            conn, "audit.exported", actor="cli:audit-export", at=obj.clock.now(), rows=rows
        )
    click.echo(f"wrote {rows} rows to {out}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what would be purged; change nothing.")
@click.pass_obj
@_reports_errors
def purge(obj: Context, dry_run: bool) -> None:
    """Purge personal data older than [retention] days (the service does it daily).

    Incidents on legal hold, and anything still waiting to be sent or needing a person, are
    kept; the audit log is kept whole and records the purge. The database is then compacted,
    so no copy of the purged data stays in its free pages.
    """

    report = purge_due(
        _state(obj),
        config=obj.config,
        now=obj.clock.now(),
        actor="cli:purge",
        dry_run=dry_run,
        always_compact=not dry_run,
    )
    click.echo(report.render())


@cli.command()
@click.argument("incident_ref", required=False)
@click.option("--reason", help="Why it is kept (a case review, proceedings): required to place.")
@click.option("--release", is_flag=True, help="Release the hold: retention applies again.")
@click.pass_obj
@_reports_errors
def hold(obj: Context, incident_ref: str | None, reason: str | None, release: bool) -> None:
    """Put an incident on legal hold (kept whole by retention), or --release it.

    Without INCIDENT_REF, list the incidents on hold.
    """

    conn = _state(obj)
    if incident_ref is None:
        if release or reason:
            raise click.UsageError("give the INCIDENT_REF to hold or release")
        holds = active_holds(conn)
        for current in holds:
            click.echo(
                f"{current.incident_ref}  since {current.placed_at:%d/%m/%Y %H:%M} UTC"
                f"  by {current.placed_by}: {current.reason}"
            )
        click.echo(f"{len(holds)} incidents on legal hold")
        return
    now = obj.clock.now()
    if release:
        if reason:
            raise click.UsageError("--reason is for placing a hold, not releasing one")
        release_hold(conn, incident_ref, now=now, actor="cli:hold")
        click.echo(f"released the legal hold on {incident_ref}")
        return
    if reason is None:
        raise click.UsageError("--reason is required: say what the incident is kept for")
    place_hold(conn, incident_ref, reason=reason, now=now, actor="cli:hold")
    click.echo(f"{incident_ref} is on legal hold: retention keeps it until it is released")


@audit_group.command("find")
@click.option("--name", required=True, help="The child's name, as the police wrote it.")
@click.option(
    "--dob", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Date of birth, YYYY-MM-DD."
)
@click.option(
    "--export",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write it to this .xlsx file (a subject access request, a case review).",
)
@click.option(
    "--redact-third-parties",
    is_flag=True,
    help="In the export, leave out the adults' details and the staff's addresses.",
)
@click.pass_obj
@_reports_errors
def audit_find(
    obj: Context, name: str, dob: datetime, out: Path | None, redact_third_parties: bool
) -> None:
    """List what was shared about one child, with whom and when: exactly that child
    (normalised name and the same date of birth; not siblings, not namesakes)."""

    if redact_third_parties and out is None:
        raise click.UsageError("--redact-third-parties applies to --export")
    if not name.strip():
        raise click.BadParameter("give the child's name", param_hint="--name")
    conn = _state(obj)
    found = find_subject(conn, name=name, dob=dob.date())
    click.echo(found.render())
    rows = 0
    if out is not None:
        rows = export_subject_access(found, out, redact_third_parties=redact_third_parties)
        click.echo(f"wrote {rows} rows to {out}")
    # A search by name reads a child's data: who did it, and when, belongs in the audit
    # (what was found is counted, never named).
    with transaction(conn):
        audit.append(
            conn,
            "subject_access.found",
            actor="cli:audit-find",
            at=obj.clock.now(),
            shared=len(found.shared),
            recorded=len(found.recorded),
            exported=out is not None,
            redacted=redact_third_parties,
        )


def _state(obj: Context) -> sqlite3.Connection:

    database = obj.config.database
    if not database.parent.exists() and obj.config.source is None:
        raise StateError(
            f"no configuration given and {database.parent} does not exist; "
            "pass --config or set ENCOMPASS_CONFIG"
        )
    return open_config_state(obj.config)


def main() -> None:
    cli(prog_name="encompass-gateway")

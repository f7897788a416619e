"""The demo: the gateway's whole day on a simulated clock, with nothing to configure.

In a workspace of its own it generates a directory and a messy police spreadsheet, makes
OpenPGP keys for the Navigator, the Education Safeguarding Manager and the contacts of the
schools the spreadsheet concerns (one school deliberately left without any key), starts an
SMTP server on loopback standing in for the schools' mail servers, and then runs the day
through the same operations the command line uses:

    07:00  directory import and key import, as the LA's administrator does them
    07:30  the police spreadsheet arrives: decisions recorded, notifications sealed
    08:59  dispatch: nothing is due yet
    09:00  dispatch: every sealed message is sent
    09:05  the Navigator's record is exported and the audit log verified

Every message the server received is then opened with its recipient's own key, as the
school would, and its signature checked. Everything is synthetic; the server and every
gpg-agent the demo started are stopped before it returns, whatever happens.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway import audit
from gateway.audit_export import export_navigator_record
from gateway.clock import LONDON
from gateway.config import LoadedConfig, load_config
from gateway.demo_keys import (
    DemoHomes,
    DemoKey,
    DemoKeys,
    make_demo_keys,
    make_homes,
    pin_fingerprints,
)
from gateway.demo_mail import MailWorld, ReadCopy, read_received
from gateway.directory import ImportSummary, SqliteDirectory
from gateway.directory_refresh import configured_files, import_and_welcome
from gateway.dispatch import DispatchReport
from gateway.errors import GatewayError
from gateway.key_import import import_keys
from gateway.key_reports import ImportLine
from gateway.keyring import open_keyring
from gateway.model import Contact, Establishment, ExceptionKind, Outcome
from gateway.notification_store import notification_from_json
from gateway.operations import dispatch_now, plan_file, take_in
from gateway.plan import Plan
from gateway.ruleset import Rules, load_rules
from gateway.sealing import SealReport
from gateway.store import open_config_state, open_state, transaction
from gateway.synthetic import SamplePaths, write_sample

# A Monday morning in term: the weekend's incidents are due at 09:00 today.
SETUP_AT = datetime(2026, 3, 2, 7, 0, tzinfo=LONDON)
DEMO_MORNING = datetime(2026, 3, 2, 7, 30, tzinfo=LONDON)
BEFORE_NINE = datetime(2026, 3, 2, 8, 59, tzinfo=LONDON)
AT_NINE = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)
RECORD_AT = datetime(2026, 3, 2, 9, 5, tzinfo=LONDON)

NAVIGATOR = ("Education Navigator (demo)", "navigator@mash.example.org", "01632 960100")
MANAGER = ("Education Safeguarding Manager (demo)", "safeguarding.manager@la.example.org")
MAIL_DOMAIN = "mash.example.org"


class DemoError(GatewayError):
    """The demo cannot run where it was asked to: its workspace already holds files."""


@dataclass(frozen=True)
class DemoCast:
    """Who has keys: everyone but the contacts of one school, left without on purpose."""

    keys: DemoKeys
    keyed_schools: tuple[Establishment, ...]
    keyless: Establishment


@dataclass(frozen=True)
class SentMessage:
    reference: str
    urn: int
    school: str  # "name (URN)"
    role: str
    address: str
    sent_at: datetime
    message_id: str


@dataclass(frozen=True)
class NotificationException:
    reference: str
    urn: int
    school: str  # "name (URN)"
    kind: ExceptionKind
    reason: str


@dataclass(frozen=True)
class DemoRun:
    workspace: Path
    config: Path
    sample: SamplePaths
    homes: DemoHomes
    cast: DemoCast
    directory: ImportSummary
    imported: tuple[ImportLine, ...]
    plan: Plan
    sealing: SealReport  # at intake
    waiting_before_nine: int  # sealed messages not yet due at 08:59
    early: DispatchReport  # 08:59
    at_nine: DispatchReport
    sent: tuple[SentMessage, ...]
    exceptions: tuple[NotificationException, ...]
    read: tuple[ReadCopy, ...]
    audit: audit.VerifyReport
    record: Path
    record_rows: int

    @property
    def ok(self) -> bool:
        """Whether every check the demo makes held: each message sent was received, opened
        and signed by the Navigator; the school without a key got nothing and its
        notification became a no_key exception; the audit log is intact."""
        keyless = self.cast.keyless.urn
        return (
            self.audit.ok
            and len(self.read) == len(self.sent)
            and all(copy.signed_by_navigator for copy in self.read)
            and all(message.urn != keyless for message in self.sent)
            and any(e.urn == keyless and e.kind is ExceptionKind.NO_KEY for e in self.exceptions)
        )


def run_demo(workspace: Path) -> DemoRun:
    """Run the demo's day in `workspace` (created if need be; it must be empty)."""
    if workspace.exists() and any(workspace.iterdir()):
        raise DemoError(f"the demo workspace {workspace} is not empty; give a new or empty folder")
    sample = write_sample(workspace, reported_on=DEMO_MORNING.date())
    homes = make_homes(workspace)
    try:
        with MailWorld(workspace / "mail") as world:
            return _day(workspace, sample, homes, world)
    finally:
        homes.stop_agents()


def _day(workspace: Path, sample: SamplePaths, homes: DemoHomes, world: MailWorld) -> DemoRun:
    rules = load_rules(load_config(sample.config).rules_dir)
    cast = _make_keys(workspace, sample, homes, rules)
    navigator = cast.keys.navigator
    _write_config(sample.config, homes, world, navigator, cast.keys.manager)
    config = load_config(sample.config)
    conn = open_config_state(config)
    try:
        directory = _import_directory(conn, config, SETUP_AT)
        imported = _import_keys(conn, config, workspace / "keys")
        actor = "demo:process"
        intake, plan = plan_file(
            sample.workbook, conn=conn, config=config, rules=rules, arrival=DEMO_MORNING
        )
        taken = take_in(conn, intake, plan, config=config, rules=rules, actor=actor)
        assert taken.sealing is not None  # the demo's config names the Navigator's key
        _, early = dispatch_now(conn, config=config, now=BEFORE_NINE, actor="demo:dispatch")
        waiting = conn.execute("SELECT COUNT(*) FROM message WHERE state = 'sealed'").fetchone()
        _, at_nine = dispatch_now(conn, config=config, now=AT_NINE, actor="demo:dispatch")
        sent = _sent(conn)
        exceptions = _notification_exceptions(conn)
        read = read_received(
            world.delivered,
            home=homes.schools,
            navigator=navigator.fingerprint,
            folder=workspace / "decrypted",
        )
        record = workspace / "navigator-record.xlsx"
        rows = export_navigator_record(conn, record)
        # The record names children: who wrote a copy, and when, belongs in the audit.
        with transaction(conn):
            audit.append(conn, "audit.exported", actor="demo:audit-export", at=RECORD_AT, rows=rows)
        verified = audit.verify(conn)
    finally:
        conn.close()
    return DemoRun(
        workspace=workspace, config=sample.config, sample=sample, homes=homes, cast=cast,
        directory=directory, imported=imported, plan=plan, sealing=taken.sealing,
        waiting_before_nine=int(waiting[0]), early=early, at_nine=at_nine, sent=sent,
        exceptions=exceptions, read=tuple(read), audit=verified, record=record,
        record_rows=rows,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Before the day: the directory, and keys for the schools the spreadsheet concerns


def _make_keys(workspace: Path, sample: SamplePaths, homes: DemoHomes, rules: Rules) -> DemoCast:
    schools, contacts = _schools_to_notify(sample, rules)
    # The lowest URN: a fixed choice, so every run leaves the same school without a key.
    keyless = min(schools, key=lambda school: school.urn)
    keyed = tuple(school for school in schools if school is not keyless)
    keys = make_demo_keys(
        homes,
        navigator=NAVIGATOR[:2],
        manager=MANAGER,
        contacts=[contact for school in keyed for contact in contacts[school.urn]],
        folder=workspace / "keys",
        navigator_public=workspace / "navigator.asc",
    )
    # The generator pinned random fingerprints; the LA's list pins each contact's real key.
    pin_fingerprints(sample.directory.contacts, keys.contacts)
    return DemoCast(keys, keyed, keyless)


def _schools_to_notify(
    sample: SamplePaths, rules: Rules
) -> tuple[list[Establishment], dict[int, list[Contact]]]:
    """The schools this morning's spreadsheet notifies, and their contacts: what
    `process --dry-run` would show, worked out in a scratch database."""
    config = load_config(sample.config)
    scratch = open_state(Path(":memory:"))
    try:
        _import_directory(scratch, config, SETUP_AT)
        _, plan = plan_file(
            sample.workbook, conn=scratch, config=config, rules=rules, arrival=DEMO_MORNING
        )
        directory = SqliteDirectory(scratch)
        urns = sorted({d.urn for d in plan.decisions if d.outcome is Outcome.NOTIFY and d.urn})
        schools = [school for urn in urns if (school := directory.establishment(urn))]
        return schools, {urn: list(directory.contacts(urn)) for urn in urns}
    finally:
        scratch.close()


def _write_config(
    path: Path, homes: DemoHomes, world: MailWorld, navigator: DemoKey, manager: DemoKey
) -> None:
    name, address, phone = NAVIGATOR
    with path.open("a", encoding="utf-8") as config:
        config.write(
            f"""
[navigator]
name = {json.dumps(name)}
email = {json.dumps(address)}
phone = {json.dumps(phone)}
fingerprint = "{navigator.fingerprint}"

# Pinned here, the manager's key is one `keys import` accepts from the key folder.
[manager]
name = {json.dumps(MANAGER[0])}
email = {json.dumps(MANAGER[1])}
fingerprint = "{manager.fingerprint}"

[gnupg]
home = {json.dumps(str(homes.gateway))}

# The demo's in-process server: plaintext is allowed only on loopback.
[smtp]
host = "{world.host}"
port = {world.port}
tls = "none"

[dispatch]
domain = "{MAIL_DOMAIN}"
"""
        )


def _import_directory(
    conn: sqlite3.Connection, config: LoadedConfig, at: datetime
) -> ImportSummary:
    """What `encompass-gateway directory import` does with the configured files."""
    return import_and_welcome(
        conn, configured_files(config), config=config, now=at, actor="demo"
    ).summary


def _import_keys(
    conn: sqlite3.Connection, config: LoadedConfig, folder: Path
) -> tuple[ImportLine, ...]:
    """What `encompass-gateway keys import` does: check, import, report, and audit each key."""
    with open_keyring(config.config.gnupg.home) as keyring:
        done = import_keys(
            conn, keyring, folder, config=config.config, at=SETUP_AT, actor="demo:keys-import"
        )
    return done.lines


# --------------------------------------------------------------------------------------
# After 09:00: what left, what did not, and what the schools read


def _sent(conn: sqlite3.Connection) -> tuple[SentMessage, ...]:
    schools = _schools_by_reference(conn)
    rows = conn.execute(
        "SELECT reference, contact_role, recipient, sent_at, message_id FROM message"
        " WHERE state = 'sent' ORDER BY id"
    )
    return tuple(
        SentMessage(
            reference=row["reference"],
            urn=schools[row["reference"]][0],
            school=schools[row["reference"]][1],
            role=row["contact_role"],
            address=row["recipient"],
            sent_at=datetime.fromisoformat(row["sent_at"]),
            message_id=row["message_id"],
        )
        for row in rows
    )


def _notification_exceptions(conn: sqlite3.Connection) -> tuple[NotificationException, ...]:
    schools = _schools_by_reference(conn)
    rows = conn.execute(
        "SELECT reference, exception_kind, reason FROM notification WHERE state = 'exception'"
        " ORDER BY due, reference"
    )
    return tuple(
        NotificationException(
            row["reference"],
            *schools[row["reference"]],
            ExceptionKind(row["exception_kind"]),
            row["reason"],
        )
        for row in rows
    )


def _schools_by_reference(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Each notification's school: its URN, and "name (URN)" to show."""
    schools = {}
    for row in conn.execute("SELECT unseal(content) AS content FROM notification"):
        notification = notification_from_json(json.loads(row["content"]))
        shown = f"{notification.school_name} ({notification.urn})"
        schools[notification.reference] = (notification.urn, shown)
    return schools

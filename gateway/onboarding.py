"""Joining the scheme: the welcome pack (gateway/welcome.py) sent to a school's DSL, by hand
(`encompass-gateway onboard URN`) or when a directory import finds a DSL it did not know.

The `welcome` table holds every DSL (URN and address) the gateway knows, so that each is
welcomed once: a DSL of the new directory with no row is new. New DSLs are noted as
"pending" inside the import's own transaction (`note_new_dsls`), and their welcomes are
queued after it commits (`send_pending_welcomes`): a crash in between leaves them pending,
and the next import or refresh sends them — durable before visible, and never lost. An import
into an empty directory notes its DSLs as "known" instead: those schools were in the scheme
before the gateway, and the first load is not a county's worth of schools joining it.

A pending DSL whose school cannot be welcomed (closed, outside the area, or no Navigator
key to sign with) stays pending and is tried again after every import; it is listed in
the import's report. `onboard` by hand sends the pack again on purpose, every time it is
run, to every DSL of the school: the school asked, or the Navigator wants it resent.

The pack is signed by the Navigator's key and not encrypted (it holds no child's data, and
the DSL may have no key yet); like the gateway's other mail it goes through the durable
outbox and is sent by dispatch.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import audit
from gateway.config import LoadedConfig
from gateway.directory import SqliteDirectory
from gateway.errors import GatewayError
from gateway.keyring import open_keyring
from gateway.model import Contact, ContactRole, Establishment
from gateway.operations import make_sealer
from gateway.outbox import MessageKind
from gateway.own_mail import own_reference, queue_signed
from gateway.render import NavigatorContact
from gateway.ruleset import load_rules
from gateway.sealing import Sealer
from gateway.store import transaction
from gateway.welcome import (
    LocalAuthority,
    NavigatorKey,
    OnboardingRules,
    load_onboarding_rules,
    render_welcome,
)


class OnboardingRefused(GatewayError):
    """A school cannot be sent the welcome pack: it is not in the directory, not open, outside
    the area, or has no DSL with an email address. Nothing is queued."""


@dataclass(frozen=True)
class Welcomed:
    """One welcome pack queued."""

    urn: int
    email: str
    reference: str  # GW-…, in the subject
    message: int  # its outbox row


@dataclass(frozen=True)
class WelcomeReport:
    """What `send_pending_welcomes` did: the packs queued, and why others wait (one line
    each, naming the school)."""

    queued: tuple[Welcomed, ...] = ()
    waiting: tuple[str, ...] = ()


class _Onboarding:
    """What sending a pack needs, gathered once: the directory, the rules and the signer."""

    def __init__(self, conn: sqlite3.Connection, config: LoadedConfig) -> None:
        self.directory = SqliteDirectory(conn)
        self.area = load_rules(config.rules_dir).routing.area_la_codes
        self.rules: OnboardingRules = load_onboarding_rules(
            config.rules_dir, area_la_codes=self.area
        )
        navigator = config.config.navigator
        self.navigator = NavigatorContact(navigator.name, navigator.email, navigator.phone)
        self.reminder_days = config.config.keys.warn_days

    def school(self, urn: int) -> tuple[Establishment, LocalAuthority]:
        """The school `urn` and its LA's entry, or OnboardingRefused saying why not."""
        school = self.directory.establishment(urn)
        if school is None:
            raise OnboardingRefused(
                f"URN {urn} is not in the directory: check the URN, or import a newer GIAS "
                "extract (`encompass-gateway directory import`)"
            )
        named = f"{school.name} (URN {urn})"
        if not school.is_open:
            raise OnboardingRefused(
                f"{named} is not open ({school.status_name} in the GIAS extract): a school "
                "that is closed or not yet open is not welcomed to the scheme"
            )
        authority = self.rules.local_authorities.get(school.la_code)
        if school.la_code not in self.area or authority is None:
            area = ", ".join(str(code) for code in self.area)
            raise OnboardingRefused(
                f"{named} is in {school.la_name or 'another LA'} (LA {school.la_code}), "
                f"outside this area (LA {area}, rules/routing.toml area_la_codes): its "
                "notifications come from that area's own scheme"
            )
        return school, authority

    def dsls(self, school: Establishment) -> list[Contact]:
        """The school's DSLs with an email address, or OnboardingRefused."""
        found = [
            c
            for c in self.directory.contacts(school.urn)
            if c.role is ContactRole.DSL and c.email.strip()
        ]
        if not found:
            raise OnboardingRefused(
                f"{school.name} (URN {school.urn}) has no DSL with an email address in the "
                "contacts list: add one and import the directory again"
            )
        return found

    def queue(
        self,
        conn: sqlite3.Connection,
        school: Establishment,
        authority: LocalAuthority,
        dsl: Contact,
        *,
        key: str,
        sealer: Sealer,
        now: datetime,
        actor: str,
        trigger: str,
    ) -> Welcomed:
        """Queue the pack to `dsl` and record them as welcomed, in one transaction."""
        email = dsl.email.strip().lower()
        inner = render_welcome(
            school,
            dsl,
            authority=authority,
            navigator=self.navigator,
            navigator_key=NavigatorKey(sealer.signer, sealer.keyring.public_key(sealer.signer)),
            reminder_days=self.reminder_days,
        )
        with transaction(conn):
            row = queue_signed(
                conn,
                inner,
                kind=MessageKind.WELCOME,
                key=key,
                to=(dsl.name, dsl.email.strip()),
                role=ContactRole.DSL.value,
                sealer=sealer,
                now=now,
                actor=actor,
            )
            conn.execute(
                "INSERT INTO welcome (urn, email, state, found_at, message)"
                " VALUES (?, ?, 'welcomed', ?, ?)"
                " ON CONFLICT (urn, email) DO UPDATE SET state = 'welcomed', message = ?",
                (school.urn, email, _utc(now), row, row),
            )
            reference = own_reference(MessageKind.WELCOME, key)
            audit.append(
                conn,
                "onboarding.welcome_queued",
                actor=actor,
                at=now,
                urn=school.urn,
                reference=reference,
                message=row,
                trigger=trigger,
            )
        return Welcomed(school.urn, email, reference, row)


def welcome_school(
    conn: sqlite3.Connection, urn: int, *, config: LoadedConfig, now: datetime, actor: str
) -> tuple[Welcomed, ...]:
    """Queue the welcome pack to every DSL of school `urn`, due now — again if it was sent
    before: by hand it is sent on purpose. OnboardingRefused naming why it cannot be."""
    onboarding = _Onboarding(conn, config)
    school, authority = onboarding.school(urn)
    dsls = onboarding.dsls(school)
    with open_keyring(config.config.gnupg.home) as keyring:
        sealer = make_sealer(
            config, keyring, template=load_rules(config.rules_dir).routing.template
        )
        return tuple(
            onboarding.queue(
                conn,
                school,
                authority,
                dsl,
                # The instant makes each run by hand a new message (and reference).
                key=f"welcome/{urn}/{dsl.email.strip().lower()}/{now.isoformat()}",
                sealer=sealer,
                now=now,
                actor=actor,
                trigger="onboard",
            )
            for dsl in dsls
        )


def note_new_dsls(conn: sqlite3.Connection, *, initial: bool, now: datetime, actor: str) -> int:
    """Record every DSL of the directory just stored that has no row yet; call it inside the
    import's transaction. `initial` (the directory was empty before) notes them as known,
    else as pending a welcome. Returns how many are now pending from this import."""
    state = "known" if initial else "pending"
    cursor = conn.execute(
        "INSERT INTO welcome (urn, email, state, found_at)"
        " SELECT DISTINCT urn, lower(trim(email)), ?, ? FROM contact"
        " WHERE role = ? AND trim(email) != ''"
        " ON CONFLICT (urn, email) DO NOTHING",
        (state, _utc(now), ContactRole.DSL.value),
    )
    found = max(cursor.rowcount, 0)
    if found:
        audit.append(conn, "onboarding.dsls_found", actor=actor, at=now, state=state, count=found)
    return 0 if initial else found


def send_pending_welcomes(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> WelcomeReport:
    """Queue the welcome of every pending DSL whose school can be welcomed and who is still
    its DSL in the directory; the others wait, each with the reason."""
    pending = conn.execute(
        "SELECT urn, email FROM welcome WHERE state = 'pending' ORDER BY urn, email"
    ).fetchall()
    if not pending:
        return WelcomeReport()
    if config.config.navigator.fingerprint is None:
        return WelcomeReport(
            waiting=(
                f"{len(pending)} new DSL(s) wait for their welcome pack: navigator.fingerprint "
                "is not configured, and the pack is signed by the Navigator's key",
            )
        )
    onboarding = _Onboarding(conn, config)
    queued: list[Welcomed] = []
    waiting: list[str] = []
    with open_keyring(config.config.gnupg.home) as keyring:
        sealer = make_sealer(
            config, keyring, template=load_rules(config.rules_dir).routing.template
        )
        for row in pending:
            urn, email = int(row["urn"]), str(row["email"])
            dsl = next(
                (
                    c
                    for c in onboarding.directory.contacts(urn)
                    if c.role is ContactRole.DSL and c.email.strip().lower() == email
                ),
                None,
            )
            if dsl is None:
                continue  # no longer the DSL: welcomed if they come back
            try:
                school, authority = onboarding.school(urn)
            except OnboardingRefused as refused:
                waiting.append(f"new DSL not welcomed yet: {refused}")
                continue
            queued.append(
                onboarding.queue(
                    conn,
                    school,
                    authority,
                    dsl,
                    key=f"welcome/{urn}/{email}",
                    sealer=sealer,
                    now=now,
                    actor=actor,
                    trigger="directory",
                )
            )
    return WelcomeReport(tuple(queued), tuple(waiting))


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()

"""The scheduled key check (Schleuder's `check_keys`) and the contacts due for review.

Every contact's pinned key is looked at once a day (`schedule.key_check_at`, or `keys check`).
When the time left before it stops working first falls within one of `keys.warn_days` (30,
7 and 1 days by default), or when it has expired or been revoked, that is recorded in
`key_warning`, the contact is sent a signed notice asking for a renewed key (no child data:
it must reach a contact whose key is going, so it cannot be encrypted to that key), and the
next digest lists it for the Navigator. Each stage is reported once: the table, not the
process, remembers what was said, so a restart or the next morning repeats nothing. A stage
is recorded against the instant the key stops working; a renewed key (a new expiry) has a
new instant, so its thresholds are armed again.

A check that was not run for a while reports only the most urgent stage crossed (one notice
saying "1 day", not three at once); the stages passed over are not reported later.

Contacts whose `Confirmed` date is older than `keys.confirm_contacts_months` are flagged by
`check` every time and by the digest once a calendar month (the first full digest of it).
"""

from __future__ import annotations

import sqlite3
from calendar import monthrange
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from gateway import audit
from gateway.clock import LONDON
from gateway.config import KeysSection
from gateway.directory import SqliteDirectory
from gateway.keyring import Keyring, KeyStatus, spaced_fingerprint
from gateway.model import Contact, ContactRole
from gateway.outbox import MessageKind
from gateway.own_mail import queue_signed
from gateway.render import (
    TEMPLATES_DIR,
    NavigatorContact,
    alternative_entity,
    clean_line,
    read_entity,
    template_environment,
    uk_date,
)
from gateway.sealing import Sealer
from gateway.store import transaction

EXPIRED = "expired"
REVOKED = "revoked"
STALE_LISTED = "contacts.stale_listed"  # the audit event of a digest that listed them


@dataclass(frozen=True)
class KeyWarning:
    """A stage a contact's pinned key reached, as recorded: `stage` is a number of days
    ("30", "7", "1"), "expired" or "revoked"; `usable_until` is when the key stops (stopped)
    working, None for a revoked key."""

    id: int
    urn: int
    contact_role: str  # a ContactRole value
    fingerprint: str
    usable_until: datetime | None
    stage: str
    crossed_at: datetime
    notice: int | None  # the outbox row of the notice to the contact

    @property
    def days(self) -> int | None:
        return int(self.stage) if self.stage.isdigit() else None

    @property
    def described(self) -> str:
        """In words: "within 30 days", "within 1 day", "expired" or "revoked"."""
        days = self.days
        if days is None:
            return self.stage
        return f"within {days} day{'' if days == 1 else 's'}"


@dataclass(frozen=True)
class KeyCheckReport:
    checked: int  # contacts with a pinned key
    warnings: tuple[KeyWarning, ...]  # newly recorded by this check


@dataclass(frozen=True)
class StaleContact:
    """A contact not confirmed since `confirmed` (None: never)."""

    urn: int
    school: str
    contact_role: str
    name: str
    confirmed: date | None


def stage_at(
    status: KeyStatus, usable_until: datetime | None, at: datetime, warn_days: Sequence[int]
) -> str | None:
    """The stage a key is at, at `at`: its status and the time left, against `warn_days`.

    None when there is nothing to report: usable beyond every threshold, never expiring, or
    unusable for a reason that is not the key's lifetime (missing, not the pinned one, no
    encryption subkey) — those are `check`'s problems and each notification's exception.
    """
    if status is KeyStatus.REVOKED:
        return REVOKED
    if status is KeyStatus.EXPIRED:
        return EXPIRED
    if status is not KeyStatus.OK or usable_until is None:
        return None
    left = usable_until - at
    crossed = [days for days in warn_days if left <= timedelta(days=days)]
    return str(min(crossed)) if crossed else None


def urgency(stage: str) -> int:
    """How urgent a stage is: smaller is more urgent."""
    # Smaller is more urgent: revoked, expired, then fewer days left.
    return {REVOKED: -2, EXPIRED: -1}.get(stage) or int(stage)


def check_keys(
    conn: sqlite3.Connection,
    *,
    keyring: Keyring,
    sealer: Sealer,
    settings: KeysSection,
    now: datetime,
    actor: str,
    templates_dir: Path = TEMPLATES_DIR,
) -> KeyCheckReport:
    """Record each contact key's newly reached stage and queue its notice to the contact.

    Each warning, its notice and its audit entry commit together: a crash leaves either all
    three or none, and the next check makes them. The notices are due at once (dispatch
    sends them).
    """
    directory = SqliteDirectory(conn)
    contacts = [c for c in directory.all_contacts() if c.fingerprint]
    found = []
    for contact in contacts:
        check = keyring.check(contact.fingerprint, email=contact.email, at=now)
        stage = stage_at(check.status, check.expires, now, settings.warn_days)
        if stage is None:
            continue
        until = None if stage == REVOKED else check.expires
        if _reported(conn, contact, check.fingerprint, until, stage):
            continue
        with transaction(conn):
            notice = queue_signed(
                conn,
                render_notice(
                    contact,
                    school=_school(directory, contact.urn),
                    fingerprint=check.fingerprint,
                    stage=stage,
                    usable_until=until,
                    navigator=NavigatorContact(
                        sealer.navigator.name, sealer.navigator.email, sealer.navigator.phone
                    ),
                    templates_dir=templates_dir,
                ),
                kind=MessageKind.KEY_NOTICE,
                key=f"{contact.urn}/{contact.role.value}/{check.fingerprint}/{_stored(until)}/{stage}",
                to=(contact.name, contact.email),
                role=contact.role.value,
                sealer=sealer,
                now=now,
                actor=actor,
            )
            row = conn.execute(
                "INSERT INTO key_warning (urn, contact_role, fingerprint, usable_until, stage,"
                " crossed_at, notice) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    contact.urn,
                    contact.role.value,
                    check.fingerprint,
                    _stored(until),
                    stage,
                    _stored(now),
                    notice,
                ),
            ).lastrowid
            assert row is not None
            audit.append(
                conn,
                "key.warning",
                actor=actor,
                at=now,
                urn=contact.urn,
                contact_role=contact.role.value,
                fingerprint=check.fingerprint,
                stage=stage,
                usable_until=_stored(until),
                message_row=notice,
            )
        found.append(
            KeyWarning(
                row, contact.urn, contact.role.value, check.fingerprint, until, stage, now, notice
            )
        )
    return KeyCheckReport(len(contacts), tuple(found))


def _reported(
    conn: sqlite3.Connection,
    contact: Contact,
    fingerprint: str,
    until: datetime | None,
    stage: str,
) -> bool:
    # Reported already: this stage or a more urgent one, for this key as it now stands (a
    # revocation is for good, whatever the expiry).
    rows = conn.execute(
        "SELECT stage FROM key_warning WHERE urn = ? AND contact_role = ? AND fingerprint = ?"
        " AND (usable_until = ? OR stage = ?)",
        (contact.urn, contact.role.value, fingerprint, _stored(until), REVOKED),
    )
    return any(urgency(row["stage"]) <= urgency(stage) for row in rows)


def unlisted_warnings(conn: sqlite3.Connection) -> tuple[KeyWarning, ...]:
    """Warnings no digest has listed yet, oldest first."""
    return tuple(
        KeyWarning(
            id=row["id"],
            urn=row["urn"],
            contact_role=row["contact_role"],
            fingerprint=row["fingerprint"],
            usable_until=datetime.fromisoformat(row["usable_until"])
            if row["usable_until"]
            else None,
            stage=row["stage"],
            crossed_at=datetime.fromisoformat(row["crossed_at"]),
            notice=row["notice"],
        )
        for row in conn.execute(
            "SELECT id, urn, contact_role, fingerprint, usable_until, stage, crossed_at, notice"
            " FROM key_warning WHERE listed_at IS NULL ORDER BY crossed_at, id"
        )
    )


def mark_listed(
    conn: sqlite3.Connection, warnings: Sequence[KeyWarning], *, at: datetime, actor: str
) -> None:
    """Record that a digest queued at `at` listed `warnings` (call in its transaction)."""
    with transaction(conn):
        for warning in warnings:
            conn.execute(
                "UPDATE key_warning SET listed_at = ? WHERE id = ?", (_stored(at), warning.id)
            )
        if warnings:
            audit.append(
                conn,
                "key.warnings_listed",
                actor=actor,
                at=at,
                rows=",".join(str(w.id) for w in warnings),
            )


# --------------------------------------------------------------------------------------
# Contacts due for review


def stale_contacts(
    directory: SqliteDirectory, *, months: int, today: date
) -> tuple[StaleContact, ...]:
    """Contacts whose `Confirmed` date is more than `months` months before `today`, or who
    were never confirmed; longest unconfirmed first."""
    limit = months_before(today, months)
    found = [
        StaleContact(c.urn, _school(directory, c.urn), c.role.value, c.name, c.confirmed)
        for c in directory.all_contacts()
        if c.confirmed is None or c.confirmed < limit
    ]
    return tuple(sorted(found, key=lambda s: (s.confirmed or date.min, s.urn)))


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` months earlier (the month's last day if shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def stale_contacts_due(conn: sqlite3.Connection, *, now: datetime) -> bool:
    """Whether no digest has listed the contacts due for review this calendar month (UK)."""
    row = conn.execute(
        "SELECT at FROM audit WHERE event = ? ORDER BY seq DESC LIMIT 1", (STALE_LISTED,)
    ).fetchone()
    if row is None:
        return True
    last = datetime.fromisoformat(row["at"]).astimezone(LONDON)
    local = now.astimezone(LONDON)
    return (last.year, last.month) != (local.year, local.month)


# --------------------------------------------------------------------------------------
# The notice to the contact


NOTICE_SUBJECT = "Your OpenPGP key for Operation Encompass notifications"
# The school's own words for its roles (the digest abbreviates them for the Navigator).
_ROLE_NAMES = {
    ContactRole.DSL: "Designated Safeguarding Lead",
    ContactRole.DEPUTY_DSL: "Deputy Designated Safeguarding Lead",
    ContactRole.DA_LEAD: "Domestic Abuse Lead",
}


def render_notice(
    contact: Contact,
    *,
    school: str,
    fingerprint: str,
    stage: str,
    usable_until: datetime | None,
    navigator: NavigatorContact,
    templates_dir: Path = TEMPLATES_DIR,
) -> EmailMessage:
    """The notice asking `contact` for a renewed key (templates/key_notice/renewal.txt and
    .html): the school, the role, the key and when it stops working, how to send a renewed
    one and whom to ask. It is signed, not encrypted, so it holds nothing else: no child,
    no incident, no reference of a notification."""
    context = {
        "subject": NOTICE_SUBJECT,
        "name": clean_line(contact.name),
        "school": clean_line(school) or f"URN {contact.urn}",
        "urn": contact.urn,
        "role": _ROLE_NAMES[contact.role],
        "fingerprint": spaced_fingerprint(fingerprint),
        "stage": stage,
        "days": int(stage) if stage.isdigit() else None,
        "until": uk_date(usable_until.astimezone(LONDON).date()) if usable_until else None,
        "navigator": {
            "name": clean_line(navigator.name),
            "email": clean_line(navigator.email),
            "phone": clean_line(navigator.phone),
        },
    }
    environment = template_environment(templates_dir)
    text = environment.get_template("key_notice/renewal.txt").render(context)
    html = environment.get_template("key_notice/renewal.html").render(context)
    return read_entity(alternative_entity(NOTICE_SUBJECT, text, html))


def _school(directory: SqliteDirectory, urn: int) -> str:
    establishment = directory.establishment(urn)
    return establishment.name if establishment is not None else ""


def _stored(instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone(UTC).isoformat()

"""`encompass-gateway check`: what an administrator should mend before 09:00.

Each finding is a line for a person, marked as a problem (something will fail or be withheld)
or a warning (something will, soon). Loading the configuration and the rules already refuses
what is malformed; this looks at what is well-formed but not ready.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.approval import waiting
from gateway.at_rest import key_file_beside
from gateway.calendar import SchoolCalendar
from gateway.clock import LONDON
from gateway.config import LoadedConfig
from gateway.directory import SqliteDirectory
from gateway.key_lifecycle import stale_contacts
from gateway.key_reports import contact_key_report
from gateway.keyring import Keyring, KeyStatus

# Term dates must be loaded well ahead: a date beyond them is treated as a school day.
CALENDAR_WARNING = timedelta(days=60)


@dataclass(frozen=True)
class Finding:
    problem: bool  # False: a warning
    text: str

    def render(self) -> str:
        return f"{'PROBLEM' if self.problem else 'warning'}: {self.text}"


def check(
    conn: sqlite3.Connection,
    *,
    config: LoadedConfig,
    calendar: SchoolCalendar,
    keyring: Keyring,
    now: datetime,
) -> list[Finding]:
    findings: list[Finding] = []
    directory = SqliteDirectory(conn)
    if not directory.establishments():
        findings.append(Finding(True, "the directory is empty: run `directory import`"))
    navigator = config.config.navigator.fingerprint
    if navigator is None:
        findings.append(Finding(True, "navigator.fingerprint is not set: nothing can be sealed"))
    elif navigator not in _secret_fingerprints(keyring):
        findings.append(
            Finding(True, f"the Navigator's secret key {navigator} is not in the GnuPG home")
        )
    keys = config.config.keys
    findings += _command_signers(config, keyring, now, warn_days=keys.warn_days[0])
    contacts = directory.all_contacts()
    for line in contact_key_report(keyring, contacts, at=now, warn_days=keys.warn_days[0]):
        where = f"URN {line.contact.urn} {line.contact.role.value} {line.contact.email}"
        if line.status is not KeyStatus.OK:
            findings.append(Finding(True, f"{where}: {line.reason}"))
        elif line.expiring_soon and line.expires is not None:
            findings.append(
                Finding(False, f"{where}: key usable only until {line.expires.date().isoformat()}")
            )
    if config.config.state.storage_key is None:
        findings.append(
            Finding(
                False,
                f"personal data at rest is sealed with {key_file_beside(config.database)},"
                " generated beside the database: a copy of the state folder carries both;"
                " set [state] storage_key to a secret kept elsewhere",
            )
        )
    findings += _approval(conn, config)
    today = now.astimezone(LONDON).date()
    for stale in stale_contacts(directory, months=keys.confirm_contacts_months, today=today):
        confirmed = stale.confirmed
        when = f"last confirmed {confirmed.isoformat()}" if confirmed else "never confirmed"
        findings.append(
            Finding(
                False,
                f"URN {stale.urn} {stale.contact_role} {stale.name}: {when}, more than "
                f"{keys.confirm_contacts_months} months ago (keys.confirm_contacts_months): "
                "check they are still in post, then update the contacts list's Confirmed date",
            )
        )
    horizon = now.date() + CALENDAR_WARNING
    for cover in calendar.coverage():
        if cover.last < horizon:
            findings.append(
                Finding(
                    cover.last < now.date(),
                    f"{cover.source}: term dates end on {cover.last.isoformat()}; "
                    "later dates are treated as school days",
                )
            )
    return findings


def _approval(conn: sqlite3.Connection, config: LoadedConfig) -> list[Finding]:
    settings = config.config
    held = len(waiting(conn))
    if not settings.approval.required:
        # Approval mode switched off with notifications still waiting: nothing escalates
        # them any more, and they are never sent unless someone approves them.
        if held:
            return [
                Finding(
                    True,
                    f"{held} notifications wait for APPROVE but approval mode is off: approve"
                    " them (`resolve APPROVE ALL`) or withhold them, or they are never sent",
                )
            ]
        return []
    if settings.manager is None:
        return [
            Finding(
                False,
                "approval mode is on but no [manager] is configured: what is not approved by"
                " approval.escalate_at is escalated to the Navigator, the one who has not"
                " approved it",
            )
        ]
    return []


def _command_signers(
    config: LoadedConfig, keyring: Keyring, now: datetime, *, warn_days: int
) -> list[Finding]:
    """Each pinned command-signer key: in the keyring and valid, or the Navigator's signed
    commands are refused; able to receive, or their answers go to the Navigator's key."""
    findings = []
    for fingerprint in config.config.navigator.command_signers:
        where = f"command signer {fingerprint} ([navigator] command_signers)"
        key = keyring.key(fingerprint)
        status = key.status(now) if key is not None else None
        if key is None or status in (KeyStatus.EXPIRED, KeyStatus.REVOKED):
            what = (
                "is not in the GnuPG home"
                if key is None
                else ("has expired" if status is KeyStatus.EXPIRED else "has been revoked")
            )
            findings.append(Finding(True, f"{where} {what}: commands it signs are refused"))
        elif status is not KeyStatus.OK:
            findings.append(
                Finding(
                    False,
                    f"{where} cannot be encrypted to: the answers to its commands are "
                    "encrypted to the Navigator's key instead",
                )
            )
        elif (until := key.usable_until(now)) is not None and until - now <= timedelta(
            days=warn_days
        ):
            findings.append(
                Finding(False, f"{where}: usable only until {until.date().isoformat()}")
            )
    return findings


def _secret_fingerprints(keyring: Keyring) -> set[str]:
    return {key["fingerprint"] for key in keyring.gpg.list_keys(secret=True)}

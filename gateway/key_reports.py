"""What `keys import` and `keys list` report: each key against the contacts it serves, and
each contact against its pinned key, so the administrator sees every gap before 09:00."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.keyring import ImportedKey, Keyring, KeyStatus, contacts_served
from gateway.model import Contact


@dataclass(frozen=True)
class ImportLine:
    imported: ImportedKey
    serves: tuple[Contact, ...]

    def render(self) -> str:
        key = self.imported
        expires = key.expires.date().isoformat() if key.expires else "never"
        serves = (
            ", ".join(f"URN {c.urn} {c.role.value} {c.email}" for c in self.serves)
            or "no contact (its fingerprint is not pinned in the contacts list)"
        )
        return (
            f"{key.fingerprint} ({key.outcome}) {'; '.join(key.user_ids)}\n"
            f"    expires: {expires}; serves: {serves}"
        )


@dataclass(frozen=True)
class ContactKeyLine:
    contact: Contact
    status: KeyStatus | None  # None: no fingerprint pinned
    reason: str
    expires: datetime | None
    expiring_soon: bool

    def render(self) -> str:
        c = self.contact
        mark = "  EXPIRES SOON" if self.expiring_soon else ""
        state = self.status.value if self.status else "no pinned key"
        until = f", usable until {self.expires.date().isoformat()}" if self.expires else ""
        return f"URN {c.urn} {c.role.value} {c.email}: {state}{until}{mark}\n    {self.reason}"


def import_report(imported: Sequence[ImportedKey], contacts: Sequence[Contact]) -> list[ImportLine]:
    return [ImportLine(key, tuple(contacts_served(key.key, contacts))) for key in imported]


def contact_key_report(
    keyring: Keyring, contacts: Sequence[Contact], *, at: datetime, warn_days: int
) -> list[ContactKeyLine]:
    """Each contact's pinned key at `at`; `expiring_soon` when it stops working within
    `warn_days` days (the first of `keys.warn_days`)."""
    horizon = at + timedelta(days=warn_days)
    lines = []
    for contact in contacts:
        if not contact.fingerprint:
            lines.append(
                ContactKeyLine(
                    contact,
                    None,
                    "the contacts list pins no fingerprint: nothing is sent",
                    None,
                    False,
                )
            )
            continue
        check = keyring.check(contact.fingerprint, email=contact.email, at=at)
        soon = check.ok and check.expires is not None and check.expires <= horizon
        lines.append(ContactKeyLine(contact, check.status, check.reason, check.expires, soon))
    return lines

"""`keys import`: a public key goes into the gateway's keyring only when it is the key of the
contact it is for, and can do the job.

A key is for the contacts whose pinned fingerprint it is — or, with `--contact`, for the one
contact named, with the fingerprint pinned for them or the one the Navigator confirmed with
them by telephone and typed in (`--fingerprint`). It is imported only when, for each of
them, one of its user IDs carries the contact's address, it can be used now (not expired,
not revoked, with a valid encryption subkey) and its fingerprint is the one pinned or typed.
A key pinned in the configuration instead (the Navigator's, the manager's, the police's, the
MASH key) must be neither expired nor revoked. Anything else is refused with its reason and
nothing from the file or folder is imported, as for a secret key.

A fingerprint confirmed by telephone re-pins the contact and dates the confirmation
(gateway/directory.py `confirm_pin`), so the key check's thresholds and the notifications
use the new key at once.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway import audit
from gateway.clock import LONDON
from gateway.config import Config
from gateway.directory import SqliteDirectory, confirm_pin
from gateway.directory_files import contact_role
from gateway.key_reports import ImportLine, import_report
from gateway.keyring import (
    ImportedKey,
    KeyImportRefused,
    KeyInfo,
    Keyring,
    KeyStatus,
    contacts_served,
    normalise_fingerprint,
)
from gateway.model import Contact, ContactRole
from gateway.store import transaction

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")


@dataclass(frozen=True)
class ContactRef:
    """A contact named on the command line: `URN:ROLE`, or `URN:ROLE:EMAIL` when the school
    has two contacts in that role."""

    urn: int
    role: ContactRole
    email: str | None = None

    @classmethod
    def parse(cls, text: str) -> ContactRef:
        """Raises ValueError saying what is wrong."""
        parts = text.split(":", 2)
        if len(parts) < 2 or not parts[0].strip().isdigit():
            raise ValueError(f"{text!r} is not URN:ROLE (e.g. 110001:DSL)")
        role = contact_role(parts[1])
        if role is None:
            raise ValueError(f"{parts[1]!r} is not a role: DSL, Deputy DSL or DA Lead")
        email = parts[2].strip() if len(parts) == 3 else None
        return cls(int(parts[0]), role, email or None)

    def __str__(self) -> str:
        shown = f"URN {self.urn} {self.role.value}"
        return f"{shown} {self.email}" if self.email else shown


@dataclass(frozen=True)
class KeyImport:
    """What an import did: the keys imported, whom each serves, and the contact re-pinned or
    confirmed (with `--fingerprint`), if any."""

    imported: tuple[ImportedKey, ...]
    lines: tuple[ImportLine, ...]
    confirmed: Contact | None


def import_keys(
    conn: sqlite3.Connection,
    keyring: Keyring,
    path: Path,
    *,
    config: Config,
    at: datetime,
    actor: str,
    contact: ContactRef | None = None,
    fingerprint: str | None = None,
) -> KeyImport:
    """Check and import the key file (or folder of key files) `path`; see the module's
    docstring. Raises KeyImportRefused, naming every problem, and imports nothing when any
    key fails its checks; ValueError when `fingerprint` is given without `contact`."""
    if fingerprint is not None and contact is None:
        raise ValueError("a fingerprint confirmed by telephone is for one contact: name it")
    found = keyring.read_key_files(path)
    directory = SqliteDirectory(conn)
    contacts = directory.all_contacts()
    problems: list[str] = []
    target: Contact | None = None
    if contact is not None:
        target = _the_contact(contact, contacts)
        keys = [key for held in found.values() for key in held]
        if len(keys) != 1:
            raise KeyImportRefused(
                f"nothing was imported: a key for {contact} must come alone, and {path} "
                f"holds {len(keys)} keys"
            )
        expected = _expected(target, fingerprint)
        problems += [f"{keys[0].fingerprint}: {p}" for p in _refusals(keys[0], [target], at)]
        if keys[0].fingerprint != expected:
            how = "confirmed by telephone" if fingerprint is not None else "pinned"
            problems.append(
                f"{keys[0].fingerprint}: this is not the fingerprint {how} for {contact} "
                f"({expected}); nothing is imported under another fingerprint"
            )
    else:
        configured = _configured(config)
        for file, held in found.items():
            for key in held:
                serves = contacts_served(key, contacts)
                if key.fingerprint in configured:
                    reasons = _unusable(key, at, encrypt=False)
                elif serves:
                    reasons = _refusals(key, serves, at)
                else:
                    reasons = [
                        "its fingerprint is pinned for no contact in the contacts list: confirm "
                        "it with the contact by telephone, then import it with --contact "
                        "URN:ROLE --fingerprint FINGERPRINT"
                    ]
                problems += [f"{file.name}: {key.fingerprint}: {reason}" for reason in reasons]
    if problems:
        raise KeyImportRefused(
            f"nothing was imported from {path}:\n" + "\n".join(f"  {p}" for p in problems)
        )
    imported = keyring.import_files(found)
    with_pin = target is not None and fingerprint is not None
    with transaction(conn):
        for done in imported:
            audit.append(
                conn,
                "key.imported",
                actor=actor,
                at=at,
                fingerprint=done.fingerprint,
                outcome=done.outcome,
            )
        if with_pin:
            assert target is not None and fingerprint is not None
            target = confirm_pin(
                conn,
                target,
                normalise_fingerprint(fingerprint),
                confirmed=at.astimezone(LONDON).date(),
                at=at,
                actor=actor,
            )
    contacts = directory.all_contacts()
    return KeyImport(
        tuple(imported), tuple(import_report(imported, contacts)), target if with_pin else None
    )


def _the_contact(ref: ContactRef, contacts: Sequence[Contact]) -> Contact:
    matching = [
        c
        for c in contacts
        if c.urn == ref.urn
        and c.role is ref.role
        and (ref.email is None or c.email.casefold() == ref.email.casefold())
    ]
    if not matching:
        raise KeyImportRefused(f"nothing was imported: the contacts list has no {ref}")
    if len(matching) > 1:
        raise KeyImportRefused(
            f"nothing was imported: the contacts list has {len(matching)} contacts for {ref}; "
            f"name one by address: {ref.urn}:{ref.role.value}:EMAIL"
        )
    return matching[0]


def _expected(contact: Contact, typed: str | None) -> str:
    if typed is None:
        if not contact.fingerprint:
            raise KeyImportRefused(
                f"nothing was imported: no fingerprint is pinned for URN {contact.urn} "
                f"{contact.role.value}; confirm the key's fingerprint with them by telephone "
                "and give it with --fingerprint"
            )
        return contact.fingerprint
    fingerprint = normalise_fingerprint(typed)
    if not _FINGERPRINT.match(fingerprint):
        raise KeyImportRefused(
            f"nothing was imported: the fingerprint {typed!r} is not 40 hexadecimal digits; "
            "read the whole fingerprint back to the contact (gpg --fingerprint shows it)"
        )
    return fingerprint


def _refusals(key: KeyInfo, contacts: Sequence[Contact], at: datetime) -> list[str]:
    """Why `key` cannot be the key of `contacts` at `at` (empty: it can)."""
    reasons = []
    for contact in contacts:
        if contact.email.casefold() not in key.emails:
            user_ids = "; ".join(key.user_ids) or "none"
            reasons.append(
                f"no user ID of it is {contact.email}, the address of URN {contact.urn} "
                f"{contact.role.value} (its user IDs: {user_ids})"
            )
    return reasons + _unusable(key, at, encrypt=True)


def _unusable(key: KeyInfo, at: datetime, *, encrypt: bool) -> list[str]:
    status = key.status(at)
    if status is KeyStatus.REVOKED:
        return ["it has been revoked by its owner: ask for their new key"]
    if status is KeyStatus.EXPIRED and key.expires is not None:
        return [
            f"it expired on {key.expires.astimezone(LONDON).date().isoformat()}: ask for it "
            "with its expiry extended, or for a new key"
        ]
    if encrypt and status is KeyStatus.NO_ENCRYPTION_KEY:
        return [
            "it has no valid encryption subkey, so nothing could be encrypted to it: ask for "
            "a key that can encrypt"
        ]
    return []


def _configured(config: Config) -> frozenset[str]:
    """The fingerprints the configuration pins (keys that serve no contact)."""
    found = {config.navigator.fingerprint}
    if config.manager is not None:
        found.add(config.manager.fingerprint)
    if config.police is not None:
        found |= {*config.police.fingerprints, config.police.mash_fingerprint}
    return frozenset(f for f in found if f is not None)

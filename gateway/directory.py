"""The directory in the state database: replacing it with a new GIAS extract, contacts list
and pupil roll, and reading it back as the Directory that matching and routing use.

An import replaces the previous directory whole, in one transaction: if anything fails (a
file without a required column, an unreadable line, a full disk) the old directory stays
exactly as it was, and readers see either all of the old one or all of the new one. The
files are streamed row by row, so a national roll of millions of pupils needs no more
memory than a county's.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from gateway import audit
from gateway.directory_files import (
    RollColumns,
    load_roll_profiles,
    open_contacts,
    open_gias,
    open_roll,
)
from gateway.directory_tables import ImportLog, Records
from gateway.errors import DirectoryImportError, StateError
from gateway.model import Contact, ContactRole, Establishment, Pupil

__all__ = [
    "ImportSummary",
    "RollColumns",
    "SqliteDirectory",
    "files_sha256",
    "import_directory",
    "last_import_sha256",
    "load_roll_profiles",
]

RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class ImportSummary:
    """What one directory import stored, and what it warned about.

    `closed_establishments` counts every establishment not open (closed, proposed to open,
    or an unknown status). `warnings` holds the first ones only; `warning_count` all of them.
    """

    establishments: int
    open_establishments: int
    closed_establishments: int
    contacts: int
    contacts_without_key: int
    pupils: int
    invalid_upns: int
    skipped_rows: int
    warning_count: int
    warnings: tuple[str, ...]

    def render(self, max_warnings: int = 20) -> str:
        """The summary for the administrator: counts, then the first `max_warnings` warnings."""
        lines = [
            f"establishments: {self.establishments} ({self.open_establishments} open, "
            f"{self.closed_establishments} closed or not yet open)",
            f"contacts: {self.contacts} ({self.contacts_without_key} without a key: nothing "
            "is sent to them)",
            f"pupils: {self.pupils} ({self.invalid_upns} with an invalid UPN, imported)",
            f"rows skipped: {self.skipped_rows}",
            f"warnings: {self.warning_count}",
        ]
        shown = self.warnings[:max_warnings]
        lines.extend(f"  {warning}" for warning in shown)
        if self.warning_count > len(shown):
            lines.append(f"  ... and {self.warning_count - len(shown)} more")
        return "\n".join(lines)


def import_directory(
    conn: sqlite3.Connection,
    *,
    gias: Path,
    contacts: Path,
    roll: Path,
    roll_columns: RollColumns,
    imported_at: datetime,
    actor: str,
    progress: bool = False,
    on_stored: Callable[[sqlite3.Connection], object] | None = None,
) -> ImportSummary:
    """Replace the directory with these three files, atomically, and record the import with
    the files' hash (`files_sha256`) and its audit entry.

    Raises DirectoryImportError when a file cannot be read, lacks a required column, or has
    no usable row (an empty GIAS extract or roll would silently unroute every child), and
    StateError when the database fails; in both cases the previous directory stays whole.
    `progress` shows a progress bar per file on stderr. `on_stored` is called once the new
    directory is stored, inside the same transaction, to record what the import changed
    with it (the DSLs it brings: gateway/onboarding.py); if it raises, nothing is kept.
    """
    if imported_at.tzinfo is None:
        raise ValueError("imported_at must be timezone-aware")
    # Hashed before reading: if a file is replaced during the import, the hash recorded is
    # the older content's, and the next refresh imports again rather than skipping.
    sha256 = files_sha256(gias, contacts, roll)
    log = ImportLog()
    with ExitStack() as files:
        # Every header is checked before the database is touched.
        gias_records = files.enter_context(open_gias(gias, log))
        contact_records = files.enter_context(open_contacts(contacts, log))
        roll_records = files.enter_context(open_roll(roll, roll_columns, log))
        _begin(conn)
        try:
            counts = _Counts()
            _store_establishments(conn, _with_progress(gias_records, progress), counts)
            if not counts.open_by_urn:
                raise DirectoryImportError(f"{gias}: no establishment could be read")
            _store_contacts(
                conn, contact_records, _with_progress(contact_records, progress), counts, log
            )
            _keep_confirmed_pins(conn, log)
            _store_pupils(conn, roll_records, _with_progress(roll_records, progress), counts, log)
            if not counts.pupils:
                raise DirectoryImportError(f"{roll}: no pupil could be read")
            cursor = conn.execute(
                "INSERT INTO directory_import (imported_at, source, establishments, contacts, "
                "pupils, warnings, sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    imported_at.astimezone(UTC).isoformat(),
                    f"gias={gias}; contacts={contacts}; roll={roll}",
                    len(counts.open_by_urn),
                    counts.contacts,
                    counts.pupils,
                    log.count,
                    sha256,
                ),
            )
            audit.append(
                conn,
                "directory.imported",
                actor=actor,
                at=imported_at,
                directory_import=cursor.lastrowid,
                sha256=sha256,
                establishments=len(counts.open_by_urn),
                contacts=counts.contacts,
                pupils=counts.pupils,
                warnings=log.count,
            )
            if on_stored is not None:
                on_stored(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            # SQLite may already have rolled back by itself (a full disk, an I/O error).
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StateError(f"directory import failed, old directory kept: {exc}") from exc
            raise
    opened = sum(counts.open_by_urn.values())
    return ImportSummary(
        establishments=len(counts.open_by_urn),
        open_establishments=opened,
        closed_establishments=len(counts.open_by_urn) - opened,
        contacts=counts.contacts,
        contacts_without_key=counts.contacts_without_key,
        pupils=counts.pupils,
        invalid_upns=log.invalid_upns,
        skipped_rows=log.skipped_rows,
        warning_count=log.count,
        warnings=tuple(log.kept),
    )


def files_sha256(gias: Path, contacts: Path, roll: Path) -> str:
    """One SHA-256 over the three files' contents (each hashed whole, in this order): equal
    only when none of them changed. DirectoryImportError when one cannot be read."""
    combined = hashlib.sha256()
    for label, path in (("gias", gias), ("contacts", contacts), ("roll", roll)):
        try:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise DirectoryImportError(f"{path}: cannot be read: {exc.strerror}") from exc
        combined.update(f"{label}:{digest}\n".encode("ascii"))
    return combined.hexdigest()


def last_import_sha256(conn: sqlite3.Connection) -> str | None:
    """The files' hash recorded by the latest import (None: none yet, or none recorded)."""
    row = conn.execute("SELECT sha256 FROM directory_import ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row["sha256"]


class _Counts:
    def __init__(self) -> None:
        self.open_by_urn: dict[int, bool] = {}
        self.contacts = 0
        self.contacts_without_key = 0
        self.pupils = 0


def _begin(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StateError(f"cannot start the directory import: {exc}") from exc


def _with_progress(records: Records[RecordT], progress: bool) -> Iterable[RecordT]:
    if not progress:
        return records
    return _with_bar(records)


def _with_bar(records: Records[RecordT]) -> Iterator[RecordT]:
    with tqdm(
        records,
        total=records.size_hint(),
        desc=records.name,
        unit=" rows",
        file=sys.stderr,
    ) as bar:
        yield from bar


def _store_establishments(
    conn: sqlite3.Connection, establishments: Iterable[Establishment], counts: _Counts
) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for e in establishments:
            counts.open_by_urn[e.urn] = e.is_open
            yield (
                e.urn,
                e.name,
                e.la_code,
                e.la_name,
                e.type_name,
                e.phase_name,
                e.status_name,
                e.is_open,
                e.postcode,
                e.telephone,
                e.statutory_low_age,
                e.statutory_high_age,
                _iso(e.open_date),
                _iso(e.close_date),
            )

    conn.execute("DELETE FROM establishment")
    conn.executemany(
        f"INSERT INTO establishment ({', '.join(_ESTABLISHMENT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_ESTABLISHMENT_COLUMNS))})",
        rows(),
    )


def _store_contacts(
    conn: sqlite3.Connection,
    records: Records[Contact],
    contacts: Iterable[Contact],
    counts: _Counts,
    log: ImportLog,
) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for c in contacts:
            if c.urn not in counts.open_by_urn:
                log.warn(records.where, "URN", c.urn, "not in the GIAS extract; contact kept")
            counts.contacts += 1
            counts.contacts_without_key += not c.fingerprint
            yield (c.urn, c.role.value, c.name, c.email, c.phone, c.fingerprint, _iso(c.confirmed))

    conn.execute("DELETE FROM contact")
    conn.executemany(
        f"INSERT INTO contact ({', '.join(_CONTACT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_CONTACT_COLUMNS))})",
        rows(),
    )


def confirm_pin(
    conn: sqlite3.Connection,
    contact: Contact,
    fingerprint: str,
    *,
    confirmed: date,
    at: datetime,
    actor: str,
) -> Contact:
    """Pin `fingerprint` for `contact`, confirmed with them (by telephone) on `confirmed`;
    returns the contact as now pinned. Call inside a transaction.

    The pin is recorded too: the LA's contacts list may still carry the old fingerprint at
    the next directory import, which then keeps this one (and says so) rather than going
    back to a key the contact has replaced.
    """
    conn.execute(
        "UPDATE contact SET fingerprint = ?, confirmed = ?"
        " WHERE urn = ? AND role = ? AND lower(email) = lower(?)",
        (fingerprint, confirmed.isoformat(), contact.urn, contact.role.value, contact.email),
    )
    conn.execute(
        "INSERT INTO contact_pin (urn, role, email, replaced, fingerprint, confirmed, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            contact.urn,
            contact.role.value,
            contact.email.casefold(),
            contact.fingerprint,
            fingerprint,
            confirmed.isoformat(),
            at.astimezone(UTC).isoformat(),
        ),
    )
    audit.append(
        conn,
        "contact.pin_confirmed",
        actor=actor,
        at=at,
        urn=contact.urn,
        contact_role=contact.role.value,
        fingerprint=fingerprint,
        replaced=contact.fingerprint,
    )
    return Contact(
        contact.urn,
        contact.role,
        contact.name,
        contact.email,
        contact.phone,
        fingerprint,
        confirmed,
    )


def _keep_confirmed_pins(conn: sqlite3.Connection, log: ImportLog) -> None:
    # The latest pin confirmed for each contact wins over the contacts list only while the
    # list still has the fingerprint it replaced: a list updated since (to that key, or to
    # another one the LA has confirmed) is the LA's word.
    pins = conn.execute(
        "SELECT urn, role, email, replaced, fingerprint, confirmed FROM contact_pin"
        " WHERE id IN (SELECT max(id) FROM contact_pin GROUP BY urn, role, email)"
    ).fetchall()
    for pin in pins:
        kept = conn.execute(
            "UPDATE contact SET fingerprint = ?,"
            " confirmed = max(coalesce(confirmed, ''), ?)"
            " WHERE urn = ? AND role = ? AND lower(email) = ? AND fingerprint = ?",
            (
                pin["fingerprint"],
                pin["confirmed"],
                pin["urn"],
                pin["role"],
                pin["email"],
                pin["replaced"],
            ),
        ).rowcount
        if kept:
            log.warn(
                f"contacts list, URN {pin['urn']} {pin['role']}",
                "Fingerprint",
                pin["replaced"] or "(none)",
                f"kept {pin['fingerprint']} instead, confirmed by telephone on "
                f"{pin['confirmed']} (keys import --fingerprint); update the contacts list",
            )


def _store_pupils(
    conn: sqlite3.Connection,
    records: Records[Pupil],
    pupils: Iterable[Pupil],
    counts: _Counts,
    log: ImportLog,
) -> None:
    # One warning per establishment the roll names wrongly, not one per pupil: a stale roll
    # can put hundreds of pupils at a school that has closed.
    odd_pupils: dict[int, int] = {}
    odd_first_row: dict[int, str] = {}

    def rows() -> Iterator[tuple[object, ...]]:
        open_by_urn = counts.open_by_urn
        for p in pupils:
            if not open_by_urn.get(p.urn, False):
                odd_pupils[p.urn] = odd_pupils.get(p.urn, 0) + 1
                odd_first_row.setdefault(p.urn, records.where)
            yield (
                p.upn,
                p.legal_forename,
                p.legal_surname,
                p.preferred_forename,
                p.preferred_surname,
                p.middle_names,
                p.dob.isoformat(),
                p.postcode,
                p.urn,
                _iso(p.entry_date),
                _iso(p.leaving_date),
            )
            counts.pupils += 1

    conn.execute("DELETE FROM pupil")
    # Filling the table and then building its indexes in one sort is several times faster
    # than updating a date-of-birth index for each of millions of rows in random order. The
    # index definitions come from the schema, so this follows any migration; inside the
    # transaction, readers keep seeing the old table and indexes until COMMIT.
    indexes = [
        (row["name"], row["sql"])
        for row in conn.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'pupil' AND sql IS NOT NULL"
        )
    ]
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.executemany(
        f"INSERT INTO pupil ({', '.join(_PUPIL_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_PUPIL_COLUMNS))})",
        rows(),
    )
    for _, sql in indexes:
        conn.execute(sql)
    for urn, number in sorted(odd_pupils.items()):
        if urn in counts.open_by_urn:
            problem = "not open in the GIAS extract"
        else:
            problem = "not in the GIAS extract"
        log.warn(odd_first_row[urn], "URN", urn, f"{problem}; {number} pupil(s) there kept")


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


_ESTABLISHMENT_COLUMNS = (
    "urn",
    "name",
    "la_code",
    "la_name",
    "type_name",
    "phase_name",
    "status_name",
    "is_open",
    "postcode",
    "telephone",
    "statutory_low_age",
    "statutory_high_age",
    "open_date",
    "close_date",
)
_CONTACT_COLUMNS = ("urn", "role", "name", "email", "phone", "fingerprint", "confirmed")
_PUPIL_COLUMNS = (
    "upn",
    "legal_forename",
    "legal_surname",
    "preferred_forename",
    "preferred_surname",
    "middle_names",
    "dob",
    "postcode",
    "urn",
    "entry_date",
    "leaving_date",
)


class SqliteDirectory:
    """The imported directory, as matching and routing read it (gateway.model.Directory).

    Establishments are read once per instance and cached: make a new instance after an
    import to see it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._by_urn: dict[int, Establishment] | None = None

    def pupils_born_on(self, dob: date) -> Sequence[Pupil]:
        rows = self._conn.execute(
            f"SELECT {', '.join(_PUPIL_COLUMNS)} FROM pupil WHERE dob = ? ORDER BY rowid",
            (dob.isoformat(),),
        )
        return [
            Pupil(
                upn=row["upn"],
                legal_forename=row["legal_forename"],
                legal_surname=row["legal_surname"],
                preferred_forename=row["preferred_forename"],
                preferred_surname=row["preferred_surname"],
                middle_names=row["middle_names"],
                dob=date.fromisoformat(row["dob"]),
                postcode=row["postcode"],
                urn=row["urn"],
                entry_date=_date(row["entry_date"]),
                leaving_date=_date(row["leaving_date"]),
            )
            for row in rows
        ]

    def establishment(self, urn: int) -> Establishment | None:
        return self._establishments().get(urn)

    def establishments(self) -> Sequence[Establishment]:
        return tuple(self._establishments().values())

    def contacts(self, urn: int) -> Sequence[Contact]:
        return self._contacts("WHERE urn = ?", (urn,))

    def all_contacts(self) -> Sequence[Contact]:
        """Every contact of every school, by URN (for `keys list` and key checks)."""
        return self._contacts("", ())

    def _contacts(self, where: str, args: tuple[object, ...]) -> list[Contact]:
        rows = self._conn.execute(
            f"SELECT {', '.join(_CONTACT_COLUMNS)} FROM contact {where} ORDER BY urn, id", args
        )
        return [
            Contact(
                urn=row["urn"],
                role=ContactRole(row["role"]),
                name=row["name"],
                email=row["email"],
                phone=row["phone"],
                fingerprint=row["fingerprint"],
                confirmed=_date(row["confirmed"]),
            )
            for row in rows
        ]

    def _establishments(self) -> dict[int, Establishment]:
        if self._by_urn is None:
            rows = self._conn.execute(
                f"SELECT {', '.join(_ESTABLISHMENT_COLUMNS)} FROM establishment ORDER BY urn"
            )
            self._by_urn = {
                row["urn"]: Establishment(
                    urn=row["urn"],
                    name=row["name"],
                    la_code=row["la_code"],
                    la_name=row["la_name"],
                    type_name=row["type_name"],
                    phase_name=row["phase_name"],
                    status_name=row["status_name"],
                    is_open=bool(row["is_open"]),
                    postcode=row["postcode"],
                    telephone=row["telephone"],
                    statutory_low_age=row["statutory_low_age"],
                    statutory_high_age=row["statutory_high_age"],
                    open_date=_date(row["open_date"]),
                    close_date=_date(row["close_date"]),
                )
                for row in rows
            }
        return self._by_urn


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)

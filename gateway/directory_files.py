"""Reading the three directory files into domain records, one row at a time.

- The GIAS establishment extract: CSV in Windows-1252 (UTF-8 when it starts with a BOM, as
  after a re-save in Excel), real GIAS column names, dates dd-mm-yyyy. Closed establishments
  are kept with is_open=False so a stale pupil roll is caught rather than routed. "Proposed
  to open" also counts as not open: such a school has no pupils yet, so a roll naming it is
  wrong or early, and the child becomes an exception rather than a notification.
- The LA contacts list: CSV in UTF-8 (optional BOM), see `CONTACT_COLUMNS`.
- The pupil roll: CSV (UTF-8, optional BOM) or .xlsx, columns named by a profile of
  rules/pupil_roll.toml.

A file that cannot be read, or lacks a required column, raises DirectoryImportError before
any row is read. A bad row is a warning naming the file, line, field and value, and the
row is skipped. Two kinds of bad value keep their row, because dropping it would lose more
than it protects: a pupil whose UPN fails its check letter (the UPN is not used to route),
and a contact whose fingerprint is not a full one (kept without a key, so nothing is ever
encrypted to it until the LA gives the full fingerprint: fail closed).

Nothing here touches the database; gateway.directory stores what these readers yield.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.directory_tables import (
    BadField,
    Cells,
    ImportLog,
    Records,
    cell_date,
    cell_int,
    cell_required_date,
    cell_required_int,
    cell_required_text,
    cell_text,
    open_csv,
    open_xlsx,
)
from gateway.errors import DirectoryImportError, RulesError
from gateway.model import Contact, ContactRole, Establishment, Pupil
from gateway.upn import upn_problem
from gateway.validation import Strict, load_toml_model

# --------------------------------------------------------------------------------------
# GIAS


GIAS_COLUMNS = {
    "urn": "URN",
    "la_code": "LA (code)",
    "la_name": "LA (name)",
    "name": "EstablishmentName",
    "type_name": "TypeOfEstablishment (name)",
    "status_name": "EstablishmentStatus (name)",
    "phase_name": "PhaseOfEducation (name)",
    "statutory_low_age": "StatutoryLowAge",
    "statutory_high_age": "StatutoryHighAge",
    "open_date": "OpenDate",
    "close_date": "CloseDate",
    "postcode": "Postcode",
    "telephone": "TelephoneNum",
}

_OPEN_STATUSES = {"open": True, "open, but proposed to close": True}
_NOT_OPEN_STATUSES = {"closed": False, "proposed to open": False}


def open_gias(path: Path, log: ImportLog) -> Records[Establishment]:
    """Open a GIAS establishment extract, checking its columns; iterate for establishments."""
    table = open_csv(path, _gias_encoding(path))
    col = table.columns(GIAS_COLUMNS, tuple(GIAS_COLUMNS))
    first_line: dict[int, str] = {}

    def parse(where: str, cells: Cells) -> Establishment | None:
        cells = table.padded(cells)
        try:
            urn = cell_required_int(cells[col["urn"]], GIAS_COLUMNS["urn"])
            la_code = cell_required_int(cells[col["la_code"]], GIAS_COLUMNS["la_code"])
            name = cell_required_text(cells[col["name"]], GIAS_COLUMNS["name"])
            status = cell_required_text(cells[col["status_name"]], GIAS_COLUMNS["status_name"])
            low_age = cell_int(cells[col["statutory_low_age"]], GIAS_COLUMNS["statutory_low_age"])
            high_age = cell_int(
                cells[col["statutory_high_age"]], GIAS_COLUMNS["statutory_high_age"]
            )
            open_date = cell_date(cells[col["open_date"]], GIAS_COLUMNS["open_date"])
            close_date = cell_date(cells[col["close_date"]], GIAS_COLUMNS["close_date"])
        except BadField as bad:
            log.skip(where, bad.field, bad.value, bad.message)
            return None
        if urn in first_line:
            log.skip(where, "URN", urn, f"already given at {first_line[urn]}")
            return None
        first_line[urn] = where
        is_open = _establishment_is_open(status)
        if is_open is None:
            log.warn(
                where, GIAS_COLUMNS["status_name"], status, "unknown status; taken as not open"
            )
        return Establishment(
            urn=urn,
            name=name,
            la_code=la_code,
            la_name=cell_text(cells[col["la_name"]]),
            type_name=cell_text(cells[col["type_name"]]),
            phase_name=cell_text(cells[col["phase_name"]]),
            status_name=status,
            is_open=bool(is_open),
            postcode=cell_text(cells[col["postcode"]]),
            telephone=cell_text(cells[col["telephone"]]),
            statutory_low_age=low_age,
            statutory_high_age=high_age,
            open_date=open_date,
            close_date=close_date,
        )

    return Records(table, parse)


def _establishment_is_open(status: str) -> bool | None:
    key = " ".join(status.split()).casefold()
    return _OPEN_STATUSES.get(key, _NOT_OPEN_STATUSES.get(key))


def _gias_encoding(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            start = handle.read(3)
    except OSError as exc:
        raise DirectoryImportError(f"{path}: cannot be read: {exc.strerror}") from exc
    return "utf-8-sig" if start == b"\xef\xbb\xbf" else "cp1252"


# --------------------------------------------------------------------------------------
# Contacts

CONTACT_COLUMNS = {
    "urn": "URN",
    "role": "Role",
    "name": "Name",
    "email": "Email",
    "phone": "Phone",
    "fingerprint": "Fingerprint",
    "confirmed": "Confirmed",
}
_CONTACT_REQUIRED = ("urn", "role", "name", "email", "phone", "fingerprint")

_ROLES = {
    "dsl": ContactRole.DSL,
    "designated safeguarding lead": ContactRole.DSL,
    "deputy dsl": ContactRole.DEPUTY_DSL,
    "deputy designated safeguarding lead": ContactRole.DEPUTY_DSL,
    "da lead": ContactRole.DA_LEAD,
    "domestic abuse lead": ContactRole.DA_LEAD,
}
_ROLE_NAMES = "DSL, Deputy DSL, DA Lead"

# Simple on purpose: catches a name, a phone number or two addresses in the email cell;
# deliverability is the mail server's to judge.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_SHORT_KEY_ID = re.compile(r"[0-9A-F]{8}|[0-9A-F]{16}")
_NO_KEY = (
    "contact kept WITHOUT a key: nothing will be sent to it until the full 40-digit "
    "fingerprint is given"
)


def open_contacts(path: Path, log: ImportLog) -> Records[Contact]:
    """Open the LA contacts list, checking its columns; iterate for contacts."""
    table = open_csv(path, "utf-8-sig")
    col = table.columns(CONTACT_COLUMNS, _CONTACT_REQUIRED)
    seen: dict[tuple[int, ContactRole, str], str] = {}

    def parse(where: str, cells: Cells) -> Contact | None:
        cells = table.padded(cells)
        try:
            urn = cell_required_int(cells[col["urn"]], CONTACT_COLUMNS["urn"])
            role = _role(cell_text(cells[col["role"]]))
            name = cell_required_text(cells[col["name"]], CONTACT_COLUMNS["name"])
            email = _email(cell_text(cells[col["email"]]))
        except BadField as bad:
            log.skip(where, bad.field, bad.value, bad.message)
            return None
        key = (urn, role, email.casefold())
        if key in seen:
            log.skip(where, "Email", email, f"same URN, role and email as {seen[key]}")
            return None
        seen[key] = where
        confirmed = None
        if "confirmed" in col:
            raw = cells[col["confirmed"]]
            try:
                confirmed = cell_date(raw, CONTACT_COLUMNS["confirmed"])
            except BadField as bad:
                log.warn(where, bad.field, bad.value, f"{bad.message}; contact kept unconfirmed")
        return Contact(
            urn=urn,
            role=role,
            name=name,
            email=email,
            phone=cell_text(cells[col["phone"]]),
            fingerprint=_fingerprint(cell_text(cells[col["fingerprint"]]), where, log),
            confirmed=confirmed,
        )

    return Records(table, parse)


def contact_role(text: str) -> ContactRole | None:
    """The role named by `text` ("DSL", "Deputy DSL", "DA Lead", spelled out, any case or
    spacing, with _ or -), or None."""
    return _ROLES.get(" ".join(text.replace("_", " ").replace("-", " ").split()).casefold())


def _role(text: str) -> ContactRole:
    role = contact_role(text)
    if role is None:
        raise BadField(CONTACT_COLUMNS["role"], text, f"not a role; expected {_ROLE_NAMES}")
    return role


def _email(text: str) -> str:
    if not _EMAIL.fullmatch(text):
        raise BadField(CONTACT_COLUMNS["email"], text, "not an email address")
    return text


def _fingerprint(text: str, where: str, log: ImportLog) -> str:
    """The fingerprint as 40 upper-case hex digits, or "" (no key) with a warning."""
    compact = "".join(text.split()).upper().removeprefix("0X")
    if not compact or _FINGERPRINT.fullmatch(compact):
        return compact
    if _SHORT_KEY_ID.fullmatch(compact):
        # A short or long key id is not a pin: ids can be made to collide with another key.
        problem = "a key id, not a full fingerprint"
    else:
        problem = "not a 40-hex-digit OpenPGP v4 fingerprint"
    log.warn(where, CONTACT_COLUMNS["fingerprint"], text, f"{problem}; {_NO_KEY}")
    return ""


# --------------------------------------------------------------------------------------
# Pupil roll


class RollColumns(Strict):
    """The column headers of one education system's pupil-roll export (rules/pupil_roll.toml).

    Headers match case- and spacing-insensitively. A missing column named by a required field
    stops the import; a missing optional column leaves that field empty for every pupil.
    """

    upn: str
    legal_forename: str
    legal_surname: str
    dob: str
    urn: str
    preferred_forename: str | None = None
    preferred_surname: str | None = None
    middle_names: str | None = None
    postcode: str | None = None
    entry_date: str | None = None
    leaving_date: str | None = None


_ROLL_REQUIRED = ("upn", "legal_forename", "legal_surname", "dob", "urn")


class _RollProfiles(Strict):
    profiles: dict[str, RollColumns]


def load_roll_profiles(rules_dir: Path) -> dict[str, RollColumns]:
    """The pupil-roll column profiles of `rules_dir`/pupil_roll.toml, by profile name."""
    path = rules_dir / "pupil_roll.toml"
    return dict(load_toml_model(path, _RollProfiles, RulesError).profiles)


def open_roll(path: Path, columns: RollColumns, log: ImportLog) -> Records[Pupil]:
    """Open a pupil roll (.csv or .xlsx), checking its columns; iterate for pupils.

    A pupil whose UPN fails validation is still yielded, with a warning counted in
    `log.invalid_upns`: matching never routes by UPN, and dropping the pupil would turn a
    typo in the roll into a child found at no school.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = open_csv(path, "utf-8-sig")
    elif suffix == ".xlsx":
        table = open_xlsx(path)
    else:
        raise DirectoryImportError(f"{path}: a pupil roll must be a .csv or .xlsx file")
    wanted = {field: header for field, header in columns.model_dump().items() if header}
    col = table.columns(wanted, _ROLL_REQUIRED)
    i_upn, i_forename, i_surname = col["upn"], col["legal_forename"], col["legal_surname"]
    i_dob, i_urn = col["dob"], col["urn"]
    i_entry, i_leaving = col.get("entry_date"), col.get("leaving_date")
    i_preferred_forename = col.get("preferred_forename")
    i_preferred_surname = col.get("preferred_surname")
    i_middle, i_postcode = col.get("middle_names"), col.get("postcode")

    def optional(cells: Cells, index: int | None) -> str:
        return "" if index is None else cell_text(cells[index])

    def parse(where: str, cells: Cells) -> Pupil | None:
        cells = table.padded(cells)
        try:
            forename = cell_required_text(cells[i_forename], columns.legal_forename)
            surname = cell_required_text(cells[i_surname], columns.legal_surname)
            dob = cell_required_date(cells[i_dob], columns.dob)
            urn = cell_required_int(cells[i_urn], columns.urn)
            entry = None if i_entry is None else cell_date(cells[i_entry], str(columns.entry_date))
            leaving = (
                None
                if i_leaving is None
                else cell_date(cells[i_leaving], str(columns.leaving_date))
            )
        except BadField as bad:
            log.skip(where, bad.field, bad.value, bad.message)
            return None
        upn = cell_text(cells[i_upn]).upper()
        problem = upn_problem(upn) if upn else "no UPN"
        if problem is not None:
            log.invalid_upns += 1
            log.warn(where, columns.upn, upn, f"{problem}; pupil imported")
        return Pupil(
            upn=upn,
            legal_forename=forename,
            legal_surname=surname,
            dob=dob,
            urn=urn,
            preferred_forename=optional(cells, i_preferred_forename),
            preferred_surname=optional(cells, i_preferred_surname),
            middle_names=optional(cells, i_middle),
            postcode=optional(cells, i_postcode),
            entry_date=entry,
            leaving_date=leaving,
        )

    return Records(table, parse)

"""The domain records: incidents and children from the police, schools, contacts and pupils
from the directory, and the routing decision for each child.

Plain frozen dataclasses. Nothing here knows about files, SQLite, IMAP, SMTP or GnuPG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

# --------------------------------------------------------------------------------------
# From the police spreadsheet


class Risk(StrEnum):
    STANDARD = "Standard"
    MEDIUM = "Medium"
    HIGH = "High"


class CrimeStatus(StrEnum):
    CRIME = "Crime"
    NON_CRIME = "Non-crime"


@dataclass(frozen=True)
class CellProblem:
    """One thing wrong with one cell (or a missing required value) of a police spreadsheet.

    `row` is the 1-based worksheet row number as Excel shows it; `column` is the header text
    as the police wrote it (or the canonical field name when the column is absent).
    """

    file: str
    sheet: str
    row: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        shown = f" value {self.value!r}" if self.value else ""
        return (
            f"{self.file}, sheet {self.sheet!r}, row {self.row}, column {self.column!r}:"
            f"{shown}: {self.message}"
        )


@dataclass(frozen=True)
class SourceRow:
    """Where a child came from: the file, sheet, row and (in the wide layout) child group."""

    file: str
    sheet: str
    row: int
    group: int | None = None  # the N of "Child N" columns in the one-row-per-incident layout


@dataclass(frozen=True)
class ChildRecord:
    """A child as the police reported them. Any value may be missing or wrong: `problems`
    lists what could not be read, and a child with problems becomes an exception."""

    forename: str
    surname: str
    dob: date | None
    source: SourceRow
    involvement: str = ""  # present / witnessed / involved, as written
    relationship: str = ""  # relationship of the parties to the child
    school_text: str = ""  # the school as known to the police, free text
    postcode: str = ""
    voice_of_child: str = ""
    problems: tuple[CellProblem, ...] = ()

    @property
    def display_name(self) -> str:
        return f"{self.forename} {self.surname}".strip()


@dataclass(frozen=True)
class Incident:
    """One police-attended domestic abuse incident and the children present.

    `occurred_at` is timezone-aware (Europe/London) when known; when the police gave the
    date alone it is 00:00 that day and `time_known` is False. `problems` holds what was
    wrong with the incident's own cells (they make every child of the incident an exception).
    """

    ref: str
    occurred_at: datetime | None
    risk: Risk | None
    crime_status: CrimeStatus | None
    children: tuple[ChildRecord, ...]
    circumstances: str = ""
    location: str = ""
    postcode: str = ""
    other_info: str = ""
    problems: tuple[CellProblem, ...] = ()
    time_known: bool = True


@dataclass(frozen=True)
class SpreadsheetIntake:
    """Everything read from one police workbook: the incidents, and the problems that could
    not be attached to any child (a row with nothing usable still appears here)."""

    file: str
    sha256: str
    incidents: tuple[Incident, ...]
    problems: tuple[CellProblem, ...] = ()


# --------------------------------------------------------------------------------------
# From the directory (GIAS, the LA contacts list, the pupil roll)


@dataclass(frozen=True)
class Establishment:
    """A GIAS establishment. Closed ones are kept so a stale pupil roll is caught, not routed."""

    urn: int
    name: str
    la_code: int
    la_name: str
    type_name: str
    phase_name: str
    status_name: str
    is_open: bool
    postcode: str = ""
    telephone: str = ""
    statutory_low_age: int | None = None
    statutory_high_age: int | None = None
    open_date: date | None = None
    close_date: date | None = None


class ContactRole(StrEnum):
    DSL = "dsl"
    DEPUTY_DSL = "deputy_dsl"
    DA_LEAD = "da_lead"


# The words for whom a message went to, as the Navigator, a school or an auditor reads them:
# a school's contacts, and the others the gateway writes to. One table for every output.
_ROLE_LABELS: dict[str, str] = {
    ContactRole.DSL: "DSL",
    ContactRole.DEPUTY_DSL: "Deputy DSL",
    ContactRole.DA_LEAD: "DA Lead",
    "manager": "Education Safeguarding Manager",
}


def role_label(role: str) -> str:
    """How a recipient's role (a ContactRole value, or "manager"…) is written for people."""
    return _ROLE_LABELS.get(role, role)


@dataclass(frozen=True)
class Contact:
    urn: int
    role: ContactRole
    name: str
    email: str
    phone: str = ""
    fingerprint: str = ""  # pinned OpenPGP fingerprint, 40 upper-case hex digits, or ""
    confirmed: date | None = None


@dataclass(frozen=True)
class Pupil:
    upn: str
    legal_forename: str
    legal_surname: str
    dob: date
    urn: int
    preferred_forename: str = ""
    preferred_surname: str = ""
    middle_names: str = ""
    postcode: str = ""
    entry_date: date | None = None
    leaving_date: date | None = None

    def on_roll(self, day: date) -> bool:
        """Whether the pupil was on this school's roll on `day` (a leaver no longer counts)."""
        if self.entry_date is not None and self.entry_date > day:
            return False
        return self.leaving_date is None or self.leaving_date >= day


class Directory(Protocol):
    """What matching and routing need from the directory; the state database provides it."""

    def pupils_born_on(self, dob: date) -> Sequence[Pupil]: ...

    def establishment(self, urn: int) -> Establishment | None: ...

    def establishments(self) -> Sequence[Establishment]: ...

    def contacts(self, urn: int) -> Sequence[Contact]: ...


# --------------------------------------------------------------------------------------
# Matching and routing


@dataclass(frozen=True)
class Candidate:
    """A pupil-roll entry that might be the police's child, with why it scored as it did."""

    urn: int
    school_name: str
    upn: str
    score: float  # 0..100
    agreed: tuple[
        str, ...
    ] = ()  # fields that agreed: "dob", "forename", "surname", "postcode", "school"
    note: str = ""


class MatchStatus(StrEnum):
    MATCHED = "matched"  # exactly one candidate, clearly best, police school (if any) agrees
    NO_CANDIDATE = "no_candidate"
    AMBIGUOUS = "ambiguous"  # near-tie, twins, same name and DOB at two schools
    CONFLICT = "conflict"  # the roll and the police's school disagree


@dataclass(frozen=True)
class MatchResult:
    status: MatchStatus
    urn: int | None
    candidates: tuple[Candidate, ...]
    reason: str
    police_school_urn: int | None = None  # the school the police named, when it resolved


class Outcome(StrEnum):
    NOTIFY = "notify"
    TELEPHONE = "telephone"
    WITHHOLD = "withhold"
    EXCEPTION = "exception"


class ExceptionKind(StrEnum):
    """Why a child needs the Navigator. Values are stable: they appear in JSON and the audit."""

    INVALID_ROW = "invalid_row"  # a cell of the child's row or incident could not be read
    NO_DOB = "no_dob"
    ADULT = "adult"  # 18 or over on the incident date
    NO_MATCH = "no_match"  # of school age, found at no school
    AMBIGUOUS = "ambiguous"
    SCHOOL_CONFLICT = "school_conflict"
    CLOSED_ESTABLISHMENT = "closed_establishment"
    UNKNOWN_ESTABLISHMENT = "unknown_establishment"  # the roll names a URN GIAS does not have
    # Sealing and delivery: a notification that could not safely leave (fail closed).
    NO_CONTACT = "no_contact"  # the school has no DSL, deputy DSL or DA Lead on the list
    NO_KEY = "no_key"  # no contact has a pinned fingerprint whose key is in the keyring
    KEY_EXPIRED = "key_expired"
    KEY_REVOKED = "key_revoked"
    KEY_MISMATCH = "key_mismatch"  # the keyring's key for the contact is not the pinned one
    SEND_FAILED = "send_failed"  # refused by the mail server (5xx) or retries exhausted
    # A later file names an incident whose earlier notifications to the school were purged
    # under the retention policy: what changed cannot be known, so a person decides.
    TOLD_PURGED = "told_purged"


@dataclass(frozen=True)
class Decision:
    """The one outcome for one child. `due` is set for notify (aware, the instant to send)."""

    incident_ref: str
    child: ChildRecord
    outcome: Outcome
    reason: str
    urn: int | None = None
    school_name: str = ""
    due: datetime | None = None
    exception_kind: ExceptionKind | None = None
    candidates: tuple[Candidate, ...] = ()
    manager_alert: bool = False  # High risk while the school is closed: tell the manager now
    telephone: str = ""  # the setting's number, for a telephone task
    incident_at: datetime | None = None  # when the incident happened (for the record)
    incident_time_known: bool = True


# --------------------------------------------------------------------------------------
# Notifications


class NotificationKind(StrEnum):
    """What a notification is to the school. Values are stable: they are stored and audited."""

    NOTIFICATION = "notification"  # the first about an incident, or one naming a child added
    AMENDMENT = "amendment"  # the police corrected details the school was already given
    WITHDRAWAL = "withdrawal"  # the police took back what an earlier notification said


@dataclass(frozen=True)
class Notification:
    """One school's notification about one incident, naming only that school's children.

    `reference` is the only identifier that appears outside the encryption (subject, headers,
    logs); everything else travels sealed. A follow-up about the same incident and school (a
    child added by a revised spreadsheet, an amendment, a withdrawal) names in `follows` the
    reference of the first notification, its own reference being that one's plus "-2", "-3"…;
    an amendment says in `changes` what the police corrected, in words for the DSL.
    """

    reference: str
    incident: Incident
    urn: int
    school_name: str
    children: tuple[ChildRecord, ...]
    due: datetime
    kind: NotificationKind = NotificationKind.NOTIFICATION
    follows: str | None = None
    changes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is not NotificationKind.NOTIFICATION and not self.follows:
            raise ValueError(
                f"{self.kind.value} {self.reference} must name the notification it follows"
            )
        if self.follows is not None and not self.reference.startswith(f"{self.follows}-"):
            raise ValueError(
                f"follow-up {self.reference} must be numbered after {self.follows}"
                f" ({self.follows}-2, -3…)"
            )
        # Data minimisation by construction: the incident travels without its own list of
        # children, so nothing downstream can name a sibling who attends another school.
        if self.incident.children:
            raise ValueError(
                "a Notification carries its incident without the incident's children "
                "(use dataclasses.replace(incident, children=())); only `children` is shared"
            )

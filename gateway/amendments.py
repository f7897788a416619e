"""Resent and corrected police spreadsheets: what a later file adds to, changes in or takes
away from what a school was already told (DESIGN.md section 5, invariant 5).

Pure functions over the domain records; the state side is gateway/revision_store.py.

**A child across files** is its incident reference plus its identity: the name as
gateway/names.py compares names (capitals, accents, apostrophes, hyphens and spacing never
distinguish two children, and a full-name column is the same as forename plus surname) and
the date of birth. Any other difference — a corrected spelling ("Ava" to "Eva"), a nickname
("Alfie" for "Alfred"), a corrected date of birth — makes a different child: the one named
now is notified as a child added, and the one named before is reported to the Navigator as
gone. We never merge on a guess: twins share a surname, a date of birth and a school, and a
"spelling correction" from one twin to the other would tell the school the wrong child was
present. The price of the rule is one extra notification and one item for the Navigator
when the police correct a name; the Navigator decides whether to withdraw the old one.

**A later file against what the school was told**, for every (incident, school) it names:
- nothing told yet: the first notification, as for any file;
- the same children with the same details: nothing;
- children not named before and nothing else changed: a follow-up notification naming only
  those children;
- a detail the school was given changed (the incident's date and time, location, risk,
  crime status, circumstances or other safeguarding information; a child's involvement,
  relationship of the parties or voice): an amendment naming the school's children with
  the corrected details and saying what changed. Under the `minimal` template only what it
  shows counts (the date and time, each child's involvement).
Follow-ups are numbered after the first notification: OE-XXXXX-XXXXX-2, -3…

**Which earlier file a later one revises** (for what has gone from it): the police resend
the day's sheet corrected, the same day, under the same or a similar name; the next day's
sheet is a new set of incidents, often under the same name. So a later file revises the
latest earlier file that (1) arrived the same day (Europe/London), (2) has the same name
once copy, version and correction marks are taken out ("Encompass 01-03 (2) v3
CORRECTED.xlsx" is "Encompass 01-03.xlsx"), and (3) shares at least one incident reference.
A next-day file fails (1); a second batch the same day fails (3). Only then is a child or
incident of the earlier file that is missing from the later one reported as gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import PurePath

from gateway.clock import LONDON
from gateway.model import ChildRecord, Incident, Notification, NotificationKind
from gateway.names import name_form

MINIMAL_TEMPLATE = "minimal"  # rules/routing.toml `template`: shows less, so less can change


def child_identity(name: str, dob: date | None) -> str:
    """A child's identity across files: the compared form of the name and the date of birth."""
    return f"{name_form(name).compact}|{dob.isoformat() if dob else ''}"


def identity_of(child: ChildRecord) -> str:
    return child_identity(child.display_name, child.dob)


# --------------------------------------------------------------------------------------
# What a school was told, and what a later file adds or changes


@dataclass(frozen=True)
class Told:
    """What the notifications about one incident to one school have said so far."""

    first: str  # the first notification's reference
    incident: Incident  # as the latest of them gave it
    children: Mapping[str, ChildRecord]  # by identity, withdrawn children left out
    count: int  # notifications so far: the next is `first`-(count + 1)

    @property
    def next_reference(self) -> str:
        return f"{self.first}-{self.count + 1}"


def what_was_told(chain: Sequence[Notification]) -> Told:
    """Fold a chain (the first notification, then its follow-ups in order) into what the
    school has been told. Raises ValueError for an empty chain."""
    if not chain:
        raise ValueError("no notification: nothing was told")
    first = chain[0]
    incident = first.incident
    children: dict[str, ChildRecord] = {}
    for notification in chain:
        if notification.kind is NotificationKind.WITHDRAWAL:
            for child in notification.children:
                children.pop(identity_of(child), None)
            continue
        incident = notification.incident
        children.update((identity_of(child), child) for child in notification.children)
    return Told(first.reference, incident, children, len(chain))


def follow_up(candidate: Notification, told: Told, *, template: str) -> Notification | None:
    """The follow-up `candidate` (this file's notification about an incident to a school)
    needs after what the school was `told`: an amendment, a notification naming only the
    children added, or None when the school already has all of it."""
    changes = list(_incident_changes(told.incident, candidate.incident, template))
    added: list[ChildRecord] = []
    for child in candidate.children:
        before = told.children.get(identity_of(child))
        if before is None:
            added.append(child)
        else:
            changes.extend(_child_changes(before, child, template))
    if changes:
        changes.extend(f"{_name(child)}: named for the first time" for child in added)
        return replace(
            candidate,
            reference=told.next_reference,
            kind=NotificationKind.AMENDMENT,
            follows=told.first,
            changes=tuple(changes),
        )
    if added:
        return replace(
            candidate,
            reference=told.next_reference,
            follows=told.first,
            children=tuple(added),
        )
    return None


def _text(value: str) -> str:
    # A re-typed cell with other spacing or line breaks is not a correction.
    return " ".join(value.split())


def _when(incident: Incident) -> object:
    return (incident.occurred_at, incident.time_known if incident.occurred_at else None)


_INCIDENT_FIELDS: tuple[tuple[str, Callable[[Incident], object], bool], ...] = (
    ("Date and time of the incident", _when, True),
    ("Location", lambda i: _text(i.location), False),
    ("Risk level", lambda i: i.risk, False),
    ("Crime or non-crime", lambda i: i.crime_status, False),
    ("Brief circumstances", lambda i: _text(i.circumstances), False),
    ("Other relevant safeguarding information", lambda i: _text(i.other_info), False),
)
_CHILD_FIELDS: tuple[tuple[str, Callable[[ChildRecord], object], bool], ...] = (
    ("present, witnessed or involved", lambda c: _text(c.involvement), True),
    ("relationship of the parties to the child", lambda c: _text(c.relationship), False),
    ("voice of the child", lambda c: _text(c.voice_of_child), False),
)


def _incident_changes(before: Incident, after: Incident, template: str) -> Iterable[str]:
    for label, value, minimal in _INCIDENT_FIELDS:
        if (minimal or template != MINIMAL_TEMPLATE) and value(before) != value(after):
            yield label


def _child_changes(before: ChildRecord, after: ChildRecord, template: str) -> Iterable[str]:
    for label, value, minimal in _CHILD_FIELDS:
        if (minimal or template != MINIMAL_TEMPLATE) and value(before) != value(after):
            yield f"{_name(after)}: {label}"


def _name(child: ChildRecord) -> str:
    return " ".join(child.display_name.split())


# --------------------------------------------------------------------------------------
# Which earlier file a later one revises, and what has gone from it


@dataclass(frozen=True)
class Sheet:
    """A spreadsheet as taken in: its file name, when it arrived, its incidents."""

    file_name: str
    received_at: datetime  # aware
    incident_refs: frozenset[str]


# Marks a sender or a mail program adds to a file's name when it sends it again: "(2)",
# "- Copy", "v3", "version 2", "corrected", "amended"…
_COPY_MARKS = re.compile(
    r"\(\s*\d+\s*\)"
    r"|\bcopy(?:\s+of)?\b"
    r"|\b(?:v|ver|version|rev)\s*\d+\b"
    r"|\b(?:amended|amendment|amendments|corrected|correction|corrections|revised|revision"
    r"|updated|update|final|resend|resent|re\s*sent|new)\b",
    re.IGNORECASE,
)


def sheet_name(file_name: str) -> str:
    """The file's name as revisions share it: "Encompass 01-03 (2) v3 CORRECTED.xlsx" and
    "encompass_01-03.xlsx" are both "encompass 01 03"."""
    stem = PurePath(file_name.replace("\\", "/")).stem
    return name_form(_COPY_MARKS.sub(" ", stem.replace("_", " "))).text


def revises(later: Sheet, earlier: Sheet) -> bool:
    """Whether `later` is a corrected resend of `earlier` (see the module's docstring)."""
    return (
        earlier.received_at <= later.received_at
        and earlier.received_at.astimezone(LONDON).date()
        == later.received_at.astimezone(LONDON).date()
        and sheet_name(earlier.file_name) == sheet_name(later.file_name)
        and bool(earlier.incident_refs & later.incident_refs)
    )


@dataclass(frozen=True)
class SeenChild:
    """A child of a recorded spreadsheet: its decision's row id, incident and identity, and
    the school it was to be notified to (None when it was not to be notified)."""

    decision_id: int
    incident_ref: str
    identity: str
    urn: int | None = None


@dataclass(frozen=True)
class Gone:
    """A child of the earlier file missing from its revision (`incident_gone`: the whole
    incident is missing), or (`moved`) to be notified to another school by it."""

    decision_id: int
    incident_ref: str
    incident_gone: bool
    moved: bool = False


def gone_from(earlier: Sequence[SeenChild], later: Sequence[SeenChild]) -> list[Gone]:
    """The children of `earlier` that `later`, its revision, no longer has — or no longer
    has at the school they were notified to: the first school was told about a child the
    corrected file says is another school's, which the Navigator must know of."""
    schools: dict[tuple[str, str], set[int | None]] = {}
    for child in later:
        schools.setdefault((child.incident_ref, child.identity), set()).add(child.urn)
    incidents = {child.incident_ref for child in later}
    gone = []
    for child in earlier:
        # A row the police's file had no incident reference for cannot be followed across
        # files: it was an exception for the Navigator in the earlier file already.
        if not child.incident_ref:
            continue
        now_at = schools.get((child.incident_ref, child.identity))
        if now_at is None:
            gone.append(
                Gone(child.decision_id, child.incident_ref, child.incident_ref not in incidents)
            )
        elif child.urn is not None and child.urn not in now_at and None not in now_at:
            # Not when the child is now an exception (or withheld, or a telephone task):
            # the Navigator has the child before them already.
            gone.append(Gone(child.decision_id, child.incident_ref, False, moved=True))
    return gone

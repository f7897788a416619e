"""Synthetic police spreadsheets: Operation Encompass workbooks drawn from a sample directory,
written the way officers write them, with the truth about every child for measuring the
matcher."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Generic, Literal, TypeVar

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from gateway.model import Establishment, Pupil
from gateway.synthetic.directory import HOME_LAS, Household, SampleDirectory
from gateway.synthetic.words import FORENAMES, NICKNAMES, ascii_fold, uk_date

# fmt: off
_CIRCUMSTANCES = (
    "Verbal argument between {parties} escalated; police called by a neighbour.",
    "Argument between {parties} over contact arrangements; one party left before police arrived.",
    "Report of shouting and a door being damaged at the home address.",
    "Dispute between {parties} after drinking; no injuries reported.",
    "Ex-partner attended the address in breach of bail conditions.",
    "Argument over finances; items thrown, no injuries.",
    "Third-party call reporting a disturbance; {parties} both present on arrival.",
    "Controlling behaviour disclosed by the victim; phone taken from her during the incident.",
)
_RELATIONSHIPS = ("Mother and partner", "Mother and father", "Mother and ex-partner",
                  "Father and partner", "Parents", "Mother and stepfather",
                  "Grandmother and uncle", "Mother and her brother")
_INVOLVEMENT = ("Present", "Present", "Witnessed", "Involved", "Present - asleep upstairs")
_VOICES = ("Said they were frightened by the shouting", "Did not want to speak to officers",
           "Told officers this happens a lot", "Was crying but settled with grandmother",
           "Said they went to their room and put headphones on")
_LOCATIONS = ("Home address", "Family home", "Street outside home address",
              "Grandparent's address")
_OTHER_INFO = ("Previous incidents at this address", "Children's social care aware",
               "Bail conditions in place", "Victim referred to IDVA service")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
# fmt: on


class ChildKind(StrEnum):
    """What a child in a generated police spreadsheet really is."""

    PUPIL = "pupil"  # on the roll of the school it attends
    TWIN = "twin"  # one of twins with similar names at the same school
    NAMESAKE = "namesake"  # same name and date of birth as a pupil at another school
    MOVED = "moved"  # the police name the new school; the roll still has the old one
    LEAVER = "leaver"  # left the only school the roll knows, before the incident
    NOT_ON_ROLL = "not_on_roll"  # a baby or toddler at no setting
    ADULT = "adult"  # 18 or over on the incident date
    OUT_OF_AREA = "out_of_area"  # on the roll of a school outside the home LAs


@dataclass(frozen=True)
class ExpectedChild:
    """The truth about one child of a generated police spreadsheet.

    `expected_urn` is the school the child really attends (None: none known); `routable`
    is whether the gateway should notify or telephone that school: an open school in a home
    LA, a child under 18. Any notify or telephone to another URN is a wrong route.
    """

    incident_ref: str
    sheet: str
    row: int
    group: int | None
    written_name: str
    dob: date
    kind: ChildKind
    expected_urn: int | None
    routable: bool
    upn: str = ""


T = TypeVar("T")
_Cell = str | int | date | time | None  # what a police cell holds (datetime is a date)

_SHEET = "Encompass"
_HEADER_ROW = 3  # a title row and a blank row above the header, as the police send it
_MAX_CHILDREN = 3
_PER_CHILD_HEADERS = (
    "Occurrence Number", "Date/Time of Incident", "DASH Risk", "Crime / Non-Crime",
    "Brief Circumstances", "Location", "Home Postcode", "Child Name", "Child DOB",
    "Present/Witnessed/Involved", "Relationship to Child", "School Attended",
    "Voice of the Child", "Other Relevant Information",
)  # fmt: skip
_PER_INCIDENT_HEADERS = (
    "Occurrence Number", "Incident Date", "Incident Time", "DASH Risk", "Crime / Non-Crime",
    "Brief Circumstances", "Location", "Home Postcode", "Other Relevant Information",
)  # fmt: skip
_GROUP_HEADERS = ("Name", "DOB", "Present", "Relationship", "School", "Voice")
_RISK_SCORES = {"Standard": (1, 9), "Medium": (10, 13), "High": (14, 20)}
# Abbreviations officers use for school names, and what they stand for.
_SCHOOL_SHORTHAND = (
    ("Church of England", ("CofE", "C of E", "CE")),
    ("Primary School", ("Primary", "Pri", "Prim Sch", "Primary Sch")),
    ("Community College", ("CC", "Community Coll")),
    ("Village College", ("VC", "Village Coll")),
    ("Catholic", ("RC",)),
    ("Infant School", ("Infants",)),
    ("Junior School", ("Juniors",)),
    ("Nursery School", ("Nursery",)),
    ("High School", ("High",)),
    ("Sixth Form College", ("6th Form College", "Sixth Form")),
    ("Academy", ("Acad",)),
)


@dataclass(frozen=True)
class _Child:
    """A child as drawn for a police spreadsheet, before the police write it down."""

    forename: str
    surname: str
    dob: date
    kind: ChildKind
    expected_urn: int | None
    routable: bool
    preferred_forename: str = ""
    preferred_surname: str = ""
    middle_names: str = ""
    police_school: int | None = None  # the URN whose name the police write; None: blank
    upn: str = ""


@dataclass(frozen=True)
class _Incident:
    ref: str
    occurred: datetime
    risk: str
    crime: str
    circumstances: str
    location: str
    postcode: str
    relationship: str
    other_info: str
    children: tuple[_Child, ...]


def generate_police_workbook(
    path: Path,
    sample: SampleDirectory,
    *,
    incidents: int = 12,
    layout: Literal["per_child", "per_incident"] = "per_child",
    seed: int = 1,
    reported_on: date,
    noise: bool = True,
) -> list[ExpectedChild]:
    """Write a police .xlsx of `incidents` incidents on the days before `reported_on`, with
    1-3 children each drawn from `sample`, and return the truth about every child in sheet
    order. With `noise` the children are written as officers write them (nicknames, typos,
    SURNAME-first, capitals, dates in several forms, DASH scores, abbreviated schools).

    From 10 incidents on, the hard cases are included: an adult, an out-of-area pupil,
    twins, a pupil with a namesake at another school, a recent leaver and a pupil who moved.
    """
    if layout not in ("per_child", "per_incident"):
        raise ValueError(f"layout must be 'per_child' or 'per_incident', not {layout!r}")
    if incidents < 1:
        raise ValueError("incidents must be at least 1")
    rng = random.Random(f"police-{seed}")
    drawn = _IncidentDrawer(rng, sample, reported_on).draw(incidents)
    sheet = _PoliceSheet(rng, {e.urn: e for e in sample.establishments}, noise)
    return sheet.write(path, drawn, layout, reported_on)


class _IncidentDrawer:
    """Draws incidents and their children from a sample directory."""

    def __init__(self, rng: random.Random, sample: SampleDirectory, reported_on: date) -> None:
        self.rng = rng
        self.sample = sample
        self.reported_on = reported_on
        self.schools = {e.urn: e for e in sample.establishments}
        home: list[Household] = []
        away: list[Household] = []
        for household in sample.households:
            at_home = any(self._home(pupil.urn) for pupil in household.pupils)
            (home if at_home else away).append(household)
        self.home = _Cycle(rng, home)
        self.away = _Cycle(rng, away)
        self.leavers = _Cycle(
            rng, [p for h in sample.households for p in h.pupils if p.leaving_date is not None]
        )
        self.twins = _Cycle(rng, list(sample.twins))
        self.namesakes = _Cycle(rng, list(sample.namesakes))

    def _home(self, urn: int) -> bool:
        school = self.schools.get(urn)
        return school is not None and school.is_open and school.la_code in HOME_LAS

    def draw(self, count: int) -> list[_Incident]:
        rng = self.rng
        specials: list[ChildKind] = []
        if count >= 10:
            hard = (ChildKind.ADULT, ChildKind.OUT_OF_AREA, ChildKind.TWIN, ChildKind.NAMESAKE,
                    ChildKind.LEAVER, ChildKind.MOVED)  # fmt: skip
            specials = [kind for kind in hard for _ in range(max(1, count // 200))]
        places = rng.sample(range(count), min(count, len(specials)))
        plan = dict(zip(places, specials, strict=False))
        serial = rng.randint(1000, 60000)
        incidents = []
        for index in range(count):
            occurred = self._when()
            children, postcode = self._children(plan.get(index), occurred.date())
            relationship = rng.choice(_RELATIONSHIPS)
            incidents.append(
                _Incident(
                    ref=f"CC-{occurred:%d%m%Y}-{serial + index:05d}",
                    occurred=occurred,
                    risk=rng.choices(("Standard", "Medium", "High"), (60, 28, 12))[0],
                    crime="Crime" if rng.random() < 0.45 else "Non-Crime",
                    circumstances=rng.choice(_CIRCUMSTANCES).format(parties=relationship.lower()),
                    location=rng.choice(_LOCATIONS),
                    postcode=postcode,
                    relationship=relationship,
                    other_info=rng.choice(_OTHER_INFO) if rng.random() < 0.25 else "",
                    children=children,
                )
            )
        return incidents

    def _when(self) -> datetime:
        rng = self.rng
        if self.reported_on.weekday() == 0:
            back = rng.randint(1, 3)  # Monday's sheet covers Friday to Sunday
        else:
            back = 2 if rng.random() < 0.15 else 1
        # Most incidents are reported in the evening and at night.
        hour = rng.choices(range(24), (5, 4, 3, 2, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 5, 6, 7,
                                       8, 8, 7, 6))[0]  # fmt: skip
        day = self.reported_on - timedelta(days=back)
        return datetime.combine(day, time(hour, rng.randrange(60)))

    def _children(self, special: ChildKind | None, on: date) -> tuple[tuple[_Child, ...], str]:
        rng = self.rng
        if special is ChildKind.TWIN and (twins := self.twins.next_where(_any)) is not None:
            children = [self._pupil(p, on, ChildKind.TWIN) for p in twins.pupils]
            return tuple(children), twins.postcode
        if special is ChildKind.NAMESAKE and (pair := self.namesakes.next_where(_any)) is not None:
            one = rng.choice(pair)
            child = self._pupil(one.pupils[0], on, ChildKind.NAMESAKE, school_odds=0.5)
            return (child, *self._babies(one.surname, on, 1)), one.postcode
        if special is ChildKind.LEAVER and (
            leaver := self.leavers.next_where(lambda p: not p.on_roll(on))
        ):
            return (self._leaver(leaver),), leaver.postcode

        def attending(household: Household) -> list[Pupil]:
            return [p for p in household.pupils if p.on_roll(on) and p.leaving_date is None]

        household: Household | None = None
        if special is ChildKind.OUT_OF_AREA:
            household = self.away.next_where(lambda h: bool(attending(h)))
        household = household or self.home.next_where(lambda h: bool(attending(h)))
        if household is None:
            raise ValueError("the sample directory has no pupil at a school in the area")
        pupils = attending(household)
        if len(pupils) > _MAX_CHILDREN or rng.random() < 0.3:
            pupils = rng.sample(pupils, rng.randint(1, min(len(pupils), _MAX_CHILDREN)))
        children = [self._pupil(p, on) for p in pupils]
        if special is ChildKind.MOVED:
            children[0] = self._moved(children[0], pupils[0])
        if special is ChildKind.ADULT:
            children = [*children[: _MAX_CHILDREN - 1], self._adult(household.surname, on)]
        room = _MAX_CHILDREN - len(children)
        babies = self._babies(household.surname, on, room) if rng.random() < 0.35 else ()
        return (*children, *babies), household.postcode

    def _pupil(
        self, pupil: Pupil, on: date, kind: ChildKind = ChildKind.PUPIL, *, school_odds: float = 0.6
    ) -> _Child:
        adult = _age(pupil.dob, on) >= 18
        if adult:
            kind = ChildKind.ADULT  # an 18-year-old still on a sixth form's roll
        elif not self._home(pupil.urn) and kind is ChildKind.PUPIL:
            kind = ChildKind.OUT_OF_AREA
        return _Child(
            forename=pupil.legal_forename,
            surname=pupil.legal_surname,
            dob=pupil.dob,
            kind=kind,
            expected_urn=pupil.urn,
            routable=self._home(pupil.urn) and not adult,
            preferred_forename=pupil.preferred_forename,
            preferred_surname=pupil.preferred_surname,
            middle_names=pupil.middle_names,
            police_school=pupil.urn if self.rng.random() < school_odds else None,
            upn=pupil.upn,
        )

    def _leaver(self, pupil: Pupil) -> _Child:
        # Left before the incident; the new school, if any, is not on the roll yet.
        return _Child(
            forename=pupil.legal_forename,
            surname=pupil.legal_surname,
            dob=pupil.dob,
            kind=ChildKind.LEAVER,
            expected_urn=None,
            routable=False,
            preferred_forename=pupil.preferred_forename,
            preferred_surname=pupil.preferred_surname,
            upn=pupil.upn,
        )

    def _moved(self, child: _Child, pupil: Pupil) -> _Child:
        old = self.schools[pupil.urn]
        others = [
            e.urn
            for e in self.sample.establishments
            if e.is_open
            and e.la_code in HOME_LAS
            and e.urn != old.urn
            and (e.phase_name, e.statutory_low_age, e.statutory_high_age)
            == (old.phase_name, old.statutory_low_age, old.statutory_high_age)
        ]
        if not others:
            return child
        new = self.rng.choice(others)
        # The police know the new school; the roll still has the old one: never route there.
        return _Child(
            forename=child.forename,
            surname=child.surname,
            dob=child.dob,
            kind=ChildKind.MOVED,
            expected_urn=new,
            routable=False,
            preferred_forename=child.preferred_forename,
            preferred_surname=child.preferred_surname,
            police_school=new,
            upn=child.upn,
        )

    def _adult(self, surname: str, on: date) -> _Child:
        # Born before the oldest cohort on the roll, and 18 on the incident date.
        year0 = on.year if on.month >= 9 else on.year - 1
        dob = date(year0 - 18, 8, 31) - timedelta(days=self.rng.randrange(150))
        return _Child(
            forename=self.rng.choice(FORENAMES),
            surname=surname,
            dob=dob,
            kind=ChildKind.ADULT,
            expected_urn=None,
            routable=False,
        )

    def _babies(self, surname: str, on: date, room: int) -> tuple[_Child, ...]:
        if room < 1:
            return ()
        # Under two: younger than anyone on a nursery roll, so never a roll pupil's namesake.
        dob = on - timedelta(days=self.rng.randint(40, 700))
        baby = _Child(
            forename=self.rng.choice(FORENAMES),
            surname=surname,
            dob=dob,
            kind=ChildKind.NOT_ON_ROLL,
            expected_urn=None,
            routable=False,
        )
        return (baby,)


class _Cycle(Generic[T]):
    """Hands out items in a shuffled order, starting again when all have been handed out."""

    def __init__(self, rng: random.Random, items: list[T]) -> None:
        self._rng = rng
        self._items = items
        self._order: list[T] = []

    def next_where(self, wanted: Callable[[T], bool]) -> T | None:
        """The next item that is `wanted`; None when no item is (after one full round)."""
        for _ in range(len(self._items)):
            if not self._order:
                self._order = list(self._items)
                self._rng.shuffle(self._order)
            item = self._order.pop()
            if wanted(item):
                return item
        return None


def _any(_: object) -> bool:
    return True


def _age(dob: date, on: date) -> int:
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


class _PoliceSheet:
    """Writes incidents as the police do, with or without the noise of real spreadsheets."""

    def __init__(self, rng: random.Random, schools: dict[int, Establishment], noise: bool) -> None:
        self.rng = rng
        self.schools = schools
        self.noise = noise

    def write(
        self, path: Path, incidents: Sequence[_Incident], layout: str, reported_on: date
    ) -> list[ExpectedChild]:
        workbook = Workbook()
        sheet = workbook.active
        assert isinstance(sheet, Worksheet)
        sheet.title = _SHEET
        headers: list[str]
        if layout == "per_child":
            headers = list(_PER_CHILD_HEADERS)
        else:
            headers = list(_PER_INCIDENT_HEADERS)
            for n in range(1, _MAX_CHILDREN + 1):
                headers.extend(f"Child {n} {suffix}" for suffix in _GROUP_HEADERS)
        sheet.cell(1, 1, f"Operation Encompass - incidents reported {uk_date(reported_on)}")
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=6)
        for column, header in enumerate(headers, start=1):
            sheet.cell(_HEADER_ROW, column, header)
        expected: list[ExpectedChild] = []
        row = _HEADER_ROW
        for incident in incidents:
            if layout == "per_child":
                # The incident's cells are copied onto each of its children's rows.
                cells = self._incident_cells(incident, together=True)
                for child in incident.children:
                    row += 1
                    name, child_cells = self._child_cells(child, incident)
                    values = [*cells[:7], *child_cells, cells[7]]
                    self._put(sheet, row, values)
                    expected.append(self._expected(incident, child, row, None, name))
            else:
                row += 1
                values = self._incident_cells(incident, together=False)
                for group, child in enumerate(incident.children, start=1):
                    name, child_cells = self._child_cells(child, incident)
                    values.extend(child_cells)
                    expected.append(self._expected(incident, child, row, group, name))
                self._put(sheet, row, values)
        workbook.save(path)
        return expected

    @staticmethod
    def _put(sheet: Worksheet, row: int, values: Sequence[_Cell]) -> None:
        for column, value in enumerate(values, start=1):
            if value == "" or value is None:
                continue
            cell = sheet.cell(row, column, value)
            if isinstance(value, datetime):
                cell.number_format = "dd/mm/yyyy hh:mm"
            elif isinstance(value, date):
                cell.number_format = "dd/mm/yyyy"
            elif isinstance(value, time):
                cell.number_format = "hh:mm"

    @staticmethod
    def _expected(
        incident: _Incident, child: _Child, row: int, group: int | None, name: str
    ) -> ExpectedChild:
        return ExpectedChild(
            incident_ref=incident.ref,
            sheet=_SHEET,
            row=row,
            group=group,
            written_name=name,
            dob=child.dob,
            kind=child.kind,
            expected_urn=child.expected_urn,
            routable=child.routable,
            upn=child.upn,
        )

    def _incident_cells(self, incident: _Incident, *, together: bool) -> list[_Cell]:
        rng = self.rng
        occurred = incident.occurred
        when: list[_Cell]
        if together:
            text = self.noise and rng.random() < 0.25
            when = [f"{uk_date(occurred)} {occurred:%H:%M}" if text else occurred]
        else:
            clock = f"{occurred:%H:%M}" if self.noise and rng.random() < 0.3 else occurred.time()
            when = [self._date(occurred.date()), clock]
        risk: _Cell = incident.risk
        if self.noise and rng.random() < 0.35:
            risk = rng.randint(*_RISK_SCORES[incident.risk])
        crime = incident.crime
        if self.noise and crime == "Non-Crime":
            crime = rng.choice(("Non-Crime", "Non Crime", "non-crime"))
        return [
            incident.ref,
            *when,
            risk,
            crime,
            incident.circumstances,
            incident.location,
            incident.postcode,
            incident.other_info,
        ]

    def _child_cells(self, child: _Child, incident: _Incident) -> tuple[str, list[_Cell]]:
        """The child's name as written, and its cells: name, DOB, present, relationship,
        school, voice (the order of the Child N groups)."""
        rng = self.rng
        name = self._name(child)
        school = ""
        if child.police_school is not None:
            school = self._school(self.schools[child.police_school].name)
        voice = rng.choice(_VOICES) if _age(child.dob, incident.occurred.date()) >= 5 else ""
        if rng.random() < 0.6:
            voice = ""
        return name, [
            name,
            self._date(child.dob),
            rng.choice(_INVOLVEMENT),
            incident.relationship,
            school,
            voice,
        ]

    def _date(self, value: date) -> _Cell:
        if not self.noise or self.rng.random() < 0.5:
            return value
        forms = (
            uk_date(value),
            f"{value.day}.{value.month}.{value:%y}",
            f"{value.day:02d}-{_MONTHS[value.month - 1][:3]}-{value.year}",
            f"{value.day} {_MONTHS[value.month - 1]} {value.year}",
        )
        return self.rng.choice(forms)

    def _name(self, child: _Child) -> str:
        forename, surname = child.forename, child.surname
        if not self.noise:
            return f"{forename} {surname}"
        rng = self.rng
        if child.preferred_forename not in ("", forename) and rng.random() < 0.6:
            forename = child.preferred_forename
        elif forename in NICKNAMES and rng.random() < 0.15:
            forename = rng.choice(NICKNAMES[forename])
        if child.preferred_surname not in ("", surname) and rng.random() < 0.5:
            surname = child.preferred_surname
        elif "-" in surname:
            roll = rng.random()
            if roll < 0.25:
                surname = rng.choice(surname.split("-"))  # officers often record one half
            elif roll < 0.4:
                surname = surname.replace("-", " ")
        if "'" in surname and rng.random() < 0.4:
            surname = surname.replace("'", rng.choice(("", " ")))
        if rng.random() < 0.5:
            forename, surname = ascii_fold(forename), ascii_fold(surname)
        if rng.random() < 0.05:
            if rng.random() < 0.5:
                forename = _typo(rng, forename)
            else:
                surname = _typo(rng, surname)
        if child.middle_names and rng.random() < 0.05:
            forename = f"{forename} {child.middle_names.split()[0]}"
        style = rng.random()
        if style < 0.15:
            return f"{surname.upper()}, {forename}"
        if style < 0.25:
            return f"{forename} {surname}".upper()
        if style < 0.3:
            return f" {forename}  {surname} "
        return f"{forename} {surname}"

    def _school(self, name: str) -> str:
        if not self.noise:
            return name
        rng = self.rng
        if "," in name and rng.random() < 0.4:
            name = name.split(",")[0]
        for long, short in _SCHOOL_SHORTHAND:
            if long in name and rng.random() < 0.5:
                name = name.replace(long, rng.choice(short))
        if rng.random() < 0.6:
            name = ascii_fold(name)
        if rng.random() < 0.15:
            name = name.lower()
        return name


def _typo(rng: random.Random, word: str) -> str:
    """One slip of the keyboard inside `word` (never its first letter)."""
    if len(word) < 5:
        return word
    at = rng.randrange(1, len(word) - 2)
    slip = rng.randrange(3)
    if slip == 0:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    if slip == 1:
        return word[:at] + word[at + 1 :]
    return word[:at] + word[at] + word[at:]

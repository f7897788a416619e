"""A synthetic directory: a GIAS extract, an LA contacts list and a pupil roll.

The roll is written as it is generated, one household at a time, so a national-sized
directory (millions of pupils) needs little memory: the returned `SampleDirectory` keeps
every household of a small roll but only a sample of a large one, which is all that
police spreadsheets are drawn from.
"""

from __future__ import annotations

import csv
import random
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from operator import attrgetter
from pathlib import Path
from typing import Literal

from openpyxl import Workbook

from gateway.config import REPOSITORY_RULES
from gateway.directory_files import load_roll_profiles
from gateway.errors import RulesError
from gateway.model import Establishment, Pupil
from gateway.synthetic.words import (
    ADULT_FORENAMES,
    FORENAMES,
    NICKNAMES,
    PLACE_ENDS,
    PLACE_PREFIXES,
    PLACE_STARTS,
    SAINTS,
    STREETS,
    SURNAMES,
    TWIN_NAMES,
    ascii_fold,
    uk_date,
)
from gateway.upn import CHECK_ALPHABET, upn_check_letter

DEFAULT_AS_OF = date(2026, 3, 2)

# The area the gateway serves by default; every other LA is out of area.
HOME_LAS: dict[int, str] = {873: "Cambridgeshire", 874: "Peterborough"}
_NEIGHBOUR_LAS: dict[int, str] = {
    822: "Bedford",
    881: "Essex",
    935: "Suffolk",
    926: "Norfolk",
    919: "Hertfordshire",
    925: "Lincolnshire",
    940: "North Northamptonshire",
}
_FAR_LAS: dict[int, str] = {
    202: "Camden",
    204: "Hackney",
    208: "Lambeth",
    210: "Southwark",
    211: "Tower Hamlets",
    330: "Birmingham",
    331: "Coventry",
    336: "Wolverhampton",
    341: "Liverpool",
    352: "Manchester",
    373: "Sheffield",
    380: "Bradford",
    383: "Leeds",
    391: "Newcastle upon Tyne",
    801: "Bristol, City of",
    823: "Central Bedfordshire",
    825: "Buckinghamshire",
    826: "Milton Keynes",
    850: "Hampshire",
    855: "Leicestershire",
    857: "Rutland",
    886: "Kent",
    891: "Nottinghamshire",
    931: "Oxfordshire",
    936: "Surrey",
    941: "West Northamptonshire",
}
# Postcode areas and districts where each LA's families live (outward codes).
_POSTCODE_AREAS: dict[int, tuple[tuple[str, tuple[int, ...]], ...]] = {
    873: (("CB", (*range(1, 12), *range(21, 26))), ("PE", (*range(13, 20), *range(26, 30)))),
    874: (("PE", tuple(range(1, 9))),),
    822: (("MK", tuple(range(40, 46))),),
    881: (("CM", tuple(range(1, 24))), ("CO", tuple(range(1, 16))), ("SS", tuple(range(1, 17)))),
    935: (("IP", tuple(range(1, 33))),),
    926: (("NR", tuple(range(1, 35))),),
    919: (("SG", tuple(range(1, 19))), ("AL", tuple(range(1, 11)))),
    925: (("LN", tuple(range(1, 13))),),
    940: (("NN", tuple(range(8, 18))),),
}
_OTHER_AREAS = ("B", "M", "LS", "S", "BD", "NE", "L", "BS", "CV", "WV", "OX", "GU", "SO", "ME")
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # inward codes never use C, I, K, M, O or V

_LA_MAINTAINED = "Local authority maintained schools"


@dataclass(frozen=True)
class _Kind:
    """One kind of establishment: its GIAS phase and type, ages, size and how it is named."""

    phase: str
    type_name: str
    group: str
    low: int
    high: int
    share: float  # of establishments
    size: int  # typical number of pupils
    names: tuple[str, ...]
    number_base: int  # the DfE establishment-number range this kind is numbered from

    @property
    def academy(self) -> bool:
        return self.group == "Academies"

    @property
    def years(self) -> range:
        # National Curriculum years (reception 0, nursery -1 and -2) for the statutory ages.
        last = -1 if self.phase == "Nursery" else min(self.high - 5, 13)
        return range(max(self.low - 4, -2), last + 1)


# fmt: off
_KINDS: dict[str, _Kind] = {
    "nursery": _Kind(
        "Nursery", "Local authority nursery school", _LA_MAINTAINED, 2, 5, 0.04, 60,
        ("{place} Nursery School", "{place} Early Years Centre"), 1000),
    "primary": _Kind(
        "Primary", "Community school", _LA_MAINTAINED, 4, 11, 0.22, 250,
        ("{place} Primary School", "{place} Community Primary School"), 2000),
    "primary_nursery": _Kind(
        "Primary", "Community school", _LA_MAINTAINED, 3, 11, 0.05, 280,
        ("{place} Primary School",), 2600),
    "infant": _Kind(
        "Primary", "Community school", _LA_MAINTAINED, 4, 7, 0.03, 150,
        ("{place} Infant School",), 2800),
    "junior": _Kind(
        "Primary", "Community school", _LA_MAINTAINED, 7, 11, 0.03, 200,
        ("{place} Junior School",), 2900),
    "primary_academy": _Kind(
        "Primary", "Academy converter", "Academies", 4, 11, 0.2, 280,
        ("{place} Primary Academy", "{place} Primary School", "{place} Church of England Academy"),
        2400),
    "primary_va": _Kind(
        "Primary", "Voluntary aided school", _LA_MAINTAINED, 4, 11, 0.08, 200,
        ("{saint} Church of England Primary School, {place}",
         "{saint} Catholic Primary School, {place}"), 3300),
    "primary_foundation": _Kind(
        "Primary", "Foundation school", _LA_MAINTAINED, 4, 11, 0.05, 230,
        ("{place} Primary School",), 5200),
    "secondary_academy": _Kind(
        "Secondary", "Academy converter", "Academies", 11, 18, 0.1, 1100,
        ("{place} Village College", "{place} Academy", "{place} Community College"), 4000),
    "secondary": _Kind(
        "Secondary", "Community school", _LA_MAINTAINED, 11, 16, 0.025, 900,
        ("{place} High School", "{place} Community College"), 4100),
    "secondary_va": _Kind(
        "Secondary", "Voluntary aided school", _LA_MAINTAINED, 11, 18, 0.015, 1000,
        ("{saint} Catholic High School, {place}",), 4600),
    "secondary_foundation": _Kind(
        "Secondary", "Foundation school", _LA_MAINTAINED, 11, 16, 0.015, 950,
        ("{place} School",), 5400),
    "further_education": _Kind(
        "16 plus", "Further education", "Colleges", 16, 19, 0.012, 1800,
        ("{place} College", "{place} Regional College"), 8000),
    "sixth_form": _Kind(
        "16 plus", "Academy converter", "Academies", 16, 19, 0.01, 1200,
        ("{place} Sixth Form College",), 4800),
    "all_through": _Kind(
        "All-through", "Academy converter", "Academies", 4, 18, 0.01, 1400,
        ("{place} All-through School", "{place} School"), 4900),
    "pru": _Kind(
        "Not applicable", "Pupil referral unit", _LA_MAINTAINED, 11, 16, 0.02, 40,
        ("{place} Pupil Referral Unit", "The {place} Centre"), 1100),
}
# fmt: on
_KIND_NAMES = tuple(_KINDS)
_KIND_WEIGHTS = tuple(accumulate(kind.share for kind in _KINDS.values()))

# The first establishments of every directory, so that even a small sample has each case the
# gateway must handle: nurseries in both home LAs, every phase, out-of-area schools, the
# accented name that only Windows-1252 can carry, and a closed predecessor of an academy.
_GUARANTEED: tuple[tuple[int, str], ...] = (
    (873, "nursery"), (874, "nursery"), (873, "primary"), (873, "primary_academy"),
    (873, "primary_va"), (873, "secondary_academy"), (873, "further_education"), (873, "pru"),
    (874, "primary"), (874, "primary_academy"), (874, "secondary_academy"), (874, "sixth_form"),
    (873, "all_through"), (873, "primary_nursery"), (935, "primary"), (881, "secondary_academy"),
    (822, "primary_academy"),
)  # fmt: skip
# Each guaranteed academy converter comes with its closed predecessor.
_MINIMUM_ESTABLISHMENTS = len(_GUARANTEED) + sum(k == "primary_academy" for _, k in _GUARANTEED)
_ACCENTED_SAINT = "St Thérèse of Lisieux"


@dataclass(frozen=True)
class Household:
    """Children of one home on the roll: they share a surname and a postcode."""

    surname: str
    postcode: str
    pupils: tuple[Pupil, ...]


@dataclass(frozen=True)
class SampleDirectory:
    """The files of a generated directory and what callers need to draw incidents from it.

    `households` holds every household of a small roll (`complete`), else a sample of them
    (in area and out of area separately); `twins` and `namesakes` (one child each, same name
    and date of birth, at two schools) are the deliberately hard cases, always kept whole.
    """

    gias: Path
    contacts: Path
    pupil_roll: Path
    roll_profile: str
    as_of: date
    establishments: tuple[Establishment, ...]
    pupil_count: int
    households: tuple[Household, ...]
    twins: tuple[Household, ...]
    namesakes: tuple[tuple[Household, Household], ...]
    complete: bool

    @property
    def pupils(self) -> tuple[Pupil, ...]:
        """The pupils kept in memory: all of them when `complete`."""
        everyone = [*self.households, *self.twins]
        for pair in self.namesakes:
            everyone.extend(pair)
        return tuple(pupil for household in everyone for pupil in household.pupils)


# --------------------------------------------------------------------------------------
# Establishments


@dataclass(frozen=True)
class _School:
    establishment: Establishment
    number: int  # DfE establishment number within the LA
    kind: _Kind
    place: str
    street: str
    ukprn: int
    capacity: int  # the size of roll it draws; 0 for a closed establishment
    reason_closed: str  # GIAS "ReasonEstablishmentClosed", "" while open


def generate_directory(
    out_dir: Path,
    *,
    establishments: int = 40,
    pupils: int = 3000,
    seed: int = 1,
    roll_format: Literal["csv", "xlsx"] = "csv",
    roll_profile: str = "capita_one",
    as_of: date = DEFAULT_AS_OF,
    rules_dir: Path = REPOSITORY_RULES,
) -> SampleDirectory:
    """Write gias.csv, contacts.csv and pupil-roll.csv (or .xlsx) under `out_dir`.

    Ages, entry and leaving dates are as on `as_of`. The roll's column names are those of
    `roll_profile` in `rules_dir`/pupil_roll.toml (RulesError if there is no such profile).
    Raises ValueError for sizes the files cannot hold (fewer establishments than the
    guaranteed cases, an .xlsx roll longer than a sheet).
    """
    if establishments < _MINIMUM_ESTABLISHMENTS:
        raise ValueError(f"establishments must be at least {_MINIMUM_ESTABLISHMENTS}")
    if pupils < 1:
        raise ValueError("pupils must be at least 1")
    if roll_format not in ("csv", "xlsx"):
        raise ValueError(f"roll_format must be 'csv' or 'xlsx', not {roll_format!r}")
    if roll_format == "xlsx" and pupils >= 1_048_576:
        raise ValueError("an .xlsx sheet holds at most 1,048,575 pupils under its header")
    profiles = load_roll_profiles(rules_dir)
    if roll_profile not in profiles:
        raise RulesError(f"{rules_dir / 'pupil_roll.toml'}: no pupil-roll profile {roll_profile!r}")
    columns = {
        field: column for field, column in profiles[roll_profile].model_dump().items() if column
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    schools = _make_schools(rng, establishments, as_of)
    gias = out_dir / "gias.csv"
    contacts = out_dir / "contacts.csv"
    _write_gias(gias, schools)
    _write_contacts(contacts, schools, rng, as_of)
    roll = out_dir / f"pupil-roll.{roll_format}"
    writer = _CsvRoll(roll, columns) if roll_format == "csv" else _XlsxRoll(roll, columns)
    with writer:
        generated = _RollGenerator(rng, schools, as_of).generate(pupils, writer.write)
    return SampleDirectory(
        gias=gias,
        contacts=contacts,
        pupil_roll=roll,
        roll_profile=roll_profile,
        as_of=as_of,
        establishments=tuple(school.establishment for school in schools),
        pupil_count=pupils,
        households=generated.households,
        twins=generated.twins,
        namesakes=generated.namesakes,
        complete=generated.complete,
    )


def _make_schools(rng: random.Random, count: int, as_of: date) -> list[_School]:
    national = count > 1000
    # A county directory is the home LAs and a few neighbours' schools that county children
    # attend; a national one is every LA, the home LAs a small part of it.
    home_share = max(400 / count, 0.015) if national else 0.93
    others = tuple({**_NEIGHBOUR_LAS, **_FAR_LAS} if national else _NEIGHBOUR_LAS)
    maker = _SchoolMaker(rng, as_of)
    schools: list[_School] = []
    index = 0
    while len(schools) < count:
        if index < len(_GUARANTEED):
            la, kind_name = _GUARANTEED[index]
        else:
            la = rng.choice(tuple(HOME_LAS) if rng.random() < home_share else others)
            kind_name = _KIND_NAMES[bisect(_KIND_WEIGHTS, rng.random() * _KIND_WEIGHTS[-1])]
        kind = _KINDS[kind_name]
        if kind_name == "primary_academy" and (index < len(_GUARANTEED) or rng.random() < 0.12):
            # A converter's LA predecessor stays in GIAS, closed, under the same name: the
            # police's "Fenbridge Primary" then names two URNs, only one of them open.
            schools.extend(maker.converted_academy(kind, la))
        else:
            closed = index >= len(_GUARANTEED) and rng.random() < 0.02
            schools.append(maker.school(kind, la, closed=closed))
        index += 1
    del schools[count:]
    schools.sort(key=lambda school: school.establishment.urn)
    return schools


class _SchoolMaker:
    """Makes establishments whose URNs, numbers and (mostly) place names are not used before."""

    def __init__(self, rng: random.Random, as_of: date) -> None:
        self.rng = rng
        self.as_of = as_of
        self.urns = _Unique(rng)
        self.places = _Unique(rng)
        self.numbers: dict[tuple[int, int], int] = {}

    def school(self, kind: _Kind, la: int, *, closed: bool = False) -> _School:
        rng = self.rng
        place = self.places.place()
        pattern, saint = rng.choice(kind.names), rng.choice(SAINTS)
        if kind is _KINDS["primary_va"] and la == 873 and self.places.claim(_ACCENTED_SAINT):
            pattern, saint = "{saint} Catholic Primary School, {place}", _ACCENTED_SAINT
        opened: date | None = None  # most long-standing LA schools have no opening date
        if kind.academy:
            opened = date(rng.randint(2011, self.as_of.year - 1), rng.randint(1, 12), 1)
        elif rng.random() < 0.4:
            opened = date(rng.randint(1950, 2005), 9, 1)
        closed_on = self.as_of - timedelta(days=rng.randint(60, 2000)) if closed else None
        name = pattern.format(place=place, saint=saint)
        return self._make(kind, la, name, place, opened, closed_on, "Closure" if closed else "")

    def converted_academy(self, kind: _Kind, la: int) -> tuple[_School, _School]:
        """An academy and the LA school it replaced, closed the day before, of the same name."""
        place = self.places.place()
        name = f"{place} Primary School"
        converted = date(self.rng.randint(2012, self.as_of.year - 1), self.rng.choice((4, 9)), 1)
        academy = self._make(kind, la, name, place, converted, None, "")
        predecessor = self._make(
            _KINDS["primary"], la, name, place, None, converted - timedelta(days=1),
            "Academy Converter",
        )  # fmt: skip
        return academy, predecessor

    def _make(
        self,
        kind: _Kind,
        la: int,
        name: str,
        place: str,
        opened: date | None,
        closed_on: date | None,
        reason_closed: str,
    ) -> _School:
        rng = self.rng
        if kind.academy:
            urn = self.urns.int_between(136000, 149999)
        else:
            urn = self.urns.int_between(100000, 135999)
        series = (la, kind.number_base)
        self.numbers[series] = self.numbers.get(series, 0) + 1
        phone_range = "01632960" if rng.random() < 0.6 else "03069990"
        establishment = Establishment(
            urn=urn,
            name=name,
            la_code=la,
            la_name=HOME_LAS.get(la) or _NEIGHBOUR_LAS.get(la) or _FAR_LAS[la],
            type_name=kind.type_name,
            phase_name=kind.phase,
            status_name="Open" if closed_on is None else "Closed",
            is_open=closed_on is None,
            postcode=_postcode(rng, la),
            telephone=f"{phone_range}{rng.randint(0, 999):03d}",
            statutory_low_age=kind.low,
            statutory_high_age=kind.high,
            open_date=opened,
            close_date=closed_on,
        )
        return _School(
            establishment=establishment,
            number=kind.number_base + self.numbers[series] - 1,
            kind=kind,
            place=place,
            street=rng.choice(STREETS),
            ukprn=rng.randint(10_000_000, 10_099_999),
            capacity=0 if closed_on else max(10, round(kind.size * rng.uniform(0.5, 1.5))),
            reason_closed=reason_closed,
        )


class _Unique:
    """Draws values not drawn before (URNs, place names)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[object] = set()

    def claim(self, value: object) -> bool:
        """Whether `value` was not drawn before; it counts as drawn from now on."""
        if value in self._seen:
            return False
        self._seen.add(value)
        return True

    def int_between(self, low: int, high: int) -> int:
        while True:
            value = self._rng.randint(low, high)
            if self.claim(value):
                return value

    def place(self) -> str:
        # Real GIAS repeats names too; after a few tries a repeat is accepted.
        rng = self._rng
        for _ in range(30):
            name = rng.choice(PLACE_PREFIXES) + rng.choice(PLACE_STARTS) + rng.choice(PLACE_ENDS)
            if self.claim(name):
                break
        return name


def _postcode(rng: random.Random, la: int) -> str:
    areas = _POSTCODE_AREAS.get(la)
    if areas is None:
        area, district = _OTHER_AREAS[la % len(_OTHER_AREAS)], rng.randint(1, 20)
    else:
        area, districts = rng.choice(areas)
        district = rng.choice(districts)
    letters = _INWARD_LETTERS
    return f"{area}{district} {rng.randint(0, 9)}{rng.choice(letters)}{rng.choice(letters)}"


def _gias_date(value: date | None) -> str:
    return f"{value.day:02d}-{value.month:02d}-{value.year}" if value else ""


_GIAS_COLUMNS = (
    "URN", "LA (code)", "LA (name)", "EstablishmentNumber", "EstablishmentName",
    "TypeOfEstablishment (name)", "EstablishmentTypeGroup (name)", "EstablishmentStatus (name)",
    "ReasonEstablishmentOpened (name)", "OpenDate", "ReasonEstablishmentClosed (name)",
    "CloseDate", "PhaseOfEducation (name)", "StatutoryLowAge", "StatutoryHighAge",
    "Gender (name)", "ReligiousCharacter (name)", "SchoolCapacity", "NumberOfPupils", "Street",
    "Locality", "Town", "County (name)", "Postcode", "TelephoneNum", "UKPRN",
)  # fmt: skip


def _write_gias(path: Path, schools: Sequence[_School]) -> None:
    # GIAS downloads are Windows-1252 with CRLF line ends; a name that does not fit the code
    # page is a bug here, so encoding errors are not ignored.
    with path.open("w", encoding="cp1252", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_GIAS_COLUMNS)
        for school in schools:
            est = school.establishment
            opened = "Academy Converter" if school.kind.academy else "Not applicable"
            closed_reason = school.reason_closed or "Not applicable"
            religious = (
                "Roman Catholic"
                if "Catholic" in est.name
                else "Church of England"
                if "Church of England" in est.name
                else "Does not apply"
            )
            county = est.la_name if est.la_code in HOME_LAS else ""
            writer.writerow(
                (
                    est.urn, est.la_code, est.la_name, school.number, est.name, est.type_name,
                    school.kind.group, est.status_name, opened, _gias_date(est.open_date),
                    closed_reason, _gias_date(est.close_date), est.phase_name,
                    est.statutory_low_age, est.statutory_high_age, "Mixed", religious,
                    round(school.capacity * 1.1) or "", school.capacity or "", school.street,
                    "", school.place, county, est.postcode, est.telephone, school.ukprn,
                )
            )  # fmt: skip


def _write_contacts(
    path: Path, schools: Sequence[_School], rng: random.Random, as_of: date
) -> None:
    rows: list[list[str]] = []
    for school in schools:
        est = school.establishment
        if not est.is_open:
            continue
        domain = f"{_slug(est.name)}.{rng.choice(('example.org', 'example.com', 'example.net'))}"
        roles = ["DSL"]
        if rng.random() < 0.8:
            roles.append("Deputy DSL")
        if rng.random() < 0.3:
            roles.append("DA Lead")
        for role in roles:
            forename, surname = rng.choice(ADULT_FORENAMES), rng.choice(SURNAMES)
            local = _slug(f"{forename}.{surname}", keep=".")
            confirmed = as_of - timedelta(days=rng.randint(1, 400))
            rows.append(
                [
                    str(est.urn),
                    role,
                    f"{forename} {surname}",
                    f"{local}@{domain}",
                    f"07700 900{rng.randint(0, 999):03d}",
                    f"{rng.getrandbits(160):040X}",
                    _gias_date(confirmed),
                ]
            )
    # A deliberate few have no pinned key yet: the gateway must not send to them.
    for row in rng.sample(rows, max(2, len(rows) // 40)):
        row[5] = ""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("URN", "Role", "Name", "Email", "Phone", "Fingerprint", "Confirmed"))
        writer.writerows(rows)


def _slug(text: str, *, keep: str = "") -> str:
    folded = ascii_fold(text).lower()
    out = "".join(c if c.isalnum() or c in keep else "-" for c in folded if c != "'")
    return "-".join(part for part in out.split("-") if part)[:40].strip("-.")


# --------------------------------------------------------------------------------------
# The pupil roll

# How many children of a household are on the roll, and how likely each count is.
_CHILDREN_PER_HOUSEHOLD = (1, 2, 3, 4)
_CHILDREN_WEIGHTS = tuple(accumulate((0.45, 0.35, 0.14, 0.06)))
_KEEP_IN_AREA = 20_000  # households kept for drawing incidents from a large roll
_KEEP_OUT_OF_AREA = 2_000


@dataclass(frozen=True)
class _Generated:
    households: tuple[Household, ...]
    twins: tuple[Household, ...]
    namesakes: tuple[tuple[Household, Household], ...]
    complete: bool


class _RollGenerator:
    """Makes the roll household by household, handing each pupil to a writer as it goes."""

    def __init__(self, rng: random.Random, schools: Sequence[_School], as_of: date) -> None:
        self.rng = rng
        self.as_of = as_of
        self.national = len(schools) > 1000
        self.year0 = as_of.year if as_of.month >= 9 else as_of.year - 1  # academic year start
        self.schools = [school for school in schools if school.capacity]
        by_place: dict[tuple[int, int], list[_School]] = {}
        for school in self.schools:
            for year in school.kind.years:
                by_place.setdefault((school.establishment.la_code, year), []).append(school)
        self.by_la_year = {
            key: (members, list(accumulate(s.capacity / len(s.kind.years) for s in members)))
            for key, members in by_place.items()
        }
        self.la_years: dict[int, list[int]] = {}
        for la, year in self.by_la_year:
            self.la_years.setdefault(la, []).append(year)
        self.keys = list(self.by_la_year)
        self.key_weights = list(accumulate(self.by_la_year[k][1][-1] for k in self.keys))
        self.home_keys = [k for k in self.keys if k[0] in HOME_LAS and k[1] >= 0]
        self.home_weights = list(accumulate(self.by_la_year[k][1][-1] for k in self.home_keys))
        self.la_by_urn = {s.establishment.urn: s.establishment.la_code for s in self.schools}
        self.upn_serials: dict[int, int] = {}
        self.school_index = {id(school): n for n, school in enumerate(self.schools)}
        # Year group N was born from 1 September to 31 August, 5 + N years before year0.
        self.cohorts = {
            year: (
                date(self.year0 - 5 - year, 9, 1).toordinal(),
                (date(self.year0 - 4 - year, 9, 1) - date(self.year0 - 5 - year, 9, 1)).days,
            )
            for year in range(-2, 14)
        }

    # -- drawing (random() and indexing: several times quicker than choice() for millions)
    def _pick(self, items: Sequence[str]) -> str:
        return items[int(self.rng.random() * len(items))]

    def _below(self, n: int) -> int:
        return int(self.rng.random() * n)

    def _surname(self) -> str:
        # The listed surnames cover every kind of spelling; surnames made from place names
        # (Ashford, Thornley) spread a national roll the way real surnames do, so that two
        # pupils sharing a birthday and a surname stay as rare as they really are.
        if self.rng.random() < 0.5:
            return self._pick(SURNAMES)
        return self._pick(PLACE_STARTS) + self._pick(PLACE_ENDS)

    def _weighted(self, cumulative: Sequence[float]) -> int:
        return bisect(cumulative, self.rng.random() * cumulative[-1])

    def _school_for(self, la: int, year: int, prefer: _School | None = None) -> _School:
        members, weights = self.by_la_year[(la, year)]
        if (
            prefer is not None
            and prefer.establishment.la_code == la
            and year in prefer.kind.years
            and self.rng.random() < 0.7
        ):
            return prefer  # siblings often share a school
        return members[self._weighted(weights)]

    def _dob(self, year: int) -> date:
        start, length = self.cohorts[year]
        return date.fromordinal(start + self._below(length))

    def _upn(self, school: _School, entry: date) -> str:
        est = school.establishment
        yy = entry.year % 100
        index = self.school_index[id(school)]
        while True:
            key = index * 100 + yy
            serial = self.upn_serials.get(key, 0)
            if serial < 1000:
                break
            yy = (yy + 1) % 100  # a school this big uses the next year's series
        self.upn_serials[key] = serial + 1
        body = f"{est.la_code:03d}{school.number:04d}{yy:02d}{serial:03d}"
        letter = upn_check_letter(body)
        if self.rng.random() < 0.005:
            # A deliberately invalid UPN: the import must report it and keep the pupil.
            letter = CHECK_ALPHABET[(CHECK_ALPHABET.index(letter) + 7) % len(CHECK_ALPHABET)]
        return letter + body

    def _pupil(
        self,
        school: _School,
        year: int,
        surname: str,
        postcode: str,
        *,
        forename: str = "",
        dob: date | None = None,
        plain: bool = False,
    ) -> Pupil:
        rng = self.rng
        pick = self._pick
        forename = forename or pick(FORENAMES)
        dob = dob or self._dob(year)
        middle = ""
        roll = rng.random()
        if roll < 0.08:
            middle = f"{pick(FORENAMES)} {pick(FORENAMES)}"
        elif roll < 0.5:
            middle = pick(FORENAMES)
        preferred_forename, preferred_surname = forename, surname
        if not plain:
            roll = rng.random()
            if roll < 0.04:
                preferred_forename = preferred_surname = ""  # the system left them blank
            elif roll < 0.1 and forename in NICKNAMES:
                preferred_forename = pick(NICKNAMES[forename])
            elif roll < 0.12 and middle:
                preferred_forename = middle.split()[0]  # known by a middle name
            roll = rng.random()
            if roll < 0.03 and "-" in surname:
                preferred_surname = pick(surname.split("-"))
            elif roll < 0.04:
                preferred_surname = self._surname()  # a step-parent's surname
        first = school.kind.years[0]
        if year > first and rng.random() < 0.08:
            # Joined in a later year than the school's first: a transfer, at any time of year.
            joined = rng.randint(first + 1, year)
            entry = date(self.year0 - (year - joined), 9, 2) + timedelta(days=rng.randrange(300))
        else:
            entry = date(self.year0 - (year - first), 9, 1) + timedelta(days=self._below(7))
        if entry >= self.as_of:
            entry = self.as_of - timedelta(days=rng.randint(1, 30))
        leaving = None
        if not plain and rng.random() < 0.02:
            left = self.as_of - timedelta(days=rng.randint(1, 90))
            if left > entry:
                leaving = left
        return Pupil(
            upn=self._upn(school, entry),
            legal_forename=forename,
            legal_surname=surname,
            dob=dob,
            urn=school.establishment.urn,
            preferred_forename=preferred_forename,
            preferred_surname=preferred_surname,
            middle_names=middle,
            postcode=postcode,
            entry_date=entry,
            leaving_date=leaving,
        )

    def _postcode_for(self, la: int) -> str:
        if self.national:
            return _postcode(self.rng, la)
        # A county roll lists county children, wherever their school is.
        return _postcode(self.rng, self.rng.choice((873, 873, 873, 874)))

    def _household(self, room: int) -> Household:
        rng = self.rng
        la, year = self.keys[self._weighted(self.key_weights)]
        size = min(room, _CHILDREN_PER_HOUSEHOLD[self._weighted(_CHILDREN_WEIGHTS)])
        surname = self._surname()
        postcode = self._postcode_for(la)
        school = self._school_for(la, year)
        children = [self._pupil(school, year, surname, postcode)]
        if size >= 2 and rng.random() < 0.015:
            children.append(self._twin_of(children[0], school, year))
        nearby = [y for y in self.la_years[la] if y != year and abs(y - year) <= 6]
        while len(children) < size and nearby:
            sibling_year = rng.choice(nearby)
            nearby.remove(sibling_year)
            sibling_school = self._school_for(la, sibling_year, prefer=school)
            children.append(self._pupil(sibling_school, sibling_year, surname, postcode))
        return Household(surname, postcode, tuple(children))

    def _twin_of(self, first: Pupil, school: _School, year: int) -> Pupil:
        pair = self.rng.choice(TWIN_NAMES)
        forename = pair[1] if first.legal_forename == pair[0] else pair[0]
        return self._pupil(
            school, year, first.legal_surname, first.postcode, forename=forename, dob=first.dob
        )

    def _twins(self) -> Household:
        la, year = self.home_keys[self._weighted(self.home_weights)]
        surname = self._surname()
        postcode = self._postcode_for(la)
        school = self._school_for(la, year)
        names = self.rng.choice(TWIN_NAMES)
        first = self._pupil(school, year, surname, postcode, forename=names[0], plain=True)
        second = self._pupil(
            school, year, surname, postcode, forename=names[1], dob=first.dob, plain=True
        )
        return Household(surname, postcode, (first, second))

    def _namesakes(self) -> tuple[Household, Household] | None:
        la, year = self.home_keys[self._weighted(self.home_weights)]
        members = self.by_la_year[(la, year)][0]
        if len(members) < 2:
            return None
        one, other = self.rng.sample(members, 2)
        forename, surname = self.rng.choice(FORENAMES[:30]), self.rng.choice(SURNAMES[:20])
        dob = self._dob(year)
        households = []
        for school in (one, other):
            postcode = self._postcode_for(la)
            pupil = self._pupil(
                school, year, surname, postcode, forename=forename, dob=dob, plain=True
            )
            households.append(Household(surname, postcode, (pupil,)))
        return households[0], households[1]

    def generate(self, total: int, write: Callable[[Pupil], None]) -> _Generated:
        rng = self.rng
        special_twins = min(200, max(3, total // 1500)) if self.home_keys else 0
        special_namesakes = min(100, max(2, total // 3000)) if self.home_keys else 0
        specials = ["twins"] * special_twins + ["namesakes"] * special_namesakes
        rng.shuffle(specials)
        gap = max(2, round(total / 1.8) // (len(specials) + 1))
        kept_in: list[Household] = []
        kept_out: list[Household] = []
        seen_in = seen_out = 0
        twins: list[Household] = []
        namesakes: list[tuple[Household, Household]] = []
        written = 0
        index = 0
        while written < total:
            index += 1
            room = total - written
            special = specials[-1] if specials and index % gap == 0 and room >= 2 else ""
            if special:
                specials.pop()
            if special == "twins":
                household = self._twins()
                twins.append(household)
                made: Sequence[Household] = (household,)
            elif special == "namesakes" and (pair := self._namesakes()) is not None:
                namesakes.append(pair)
                made = pair
            else:
                household = self._household(room)
                made = ()
                in_area = self.la_by_urn[household.pupils[0].urn] in HOME_LAS
                # Reservoir sampling keeps a uniform sample of each stratum in bounded memory.
                if in_area:
                    seen_in += 1
                    _reservoir(rng, kept_in, household, seen_in, _KEEP_IN_AREA)
                else:
                    seen_out += 1
                    _reservoir(rng, kept_out, household, seen_out, _KEEP_OUT_OF_AREA)
                for pupil in household.pupils:
                    write(pupil)
                written += len(household.pupils)
            for household in made:
                for pupil in household.pupils:
                    write(pupil)
                written += len(household.pupils)
        complete = seen_in <= _KEEP_IN_AREA and seen_out <= _KEEP_OUT_OF_AREA
        return _Generated(tuple(kept_in + kept_out), tuple(twins), tuple(namesakes), complete)


def _reservoir(
    rng: random.Random, kept: list[Household], item: Household, seen: int, limit: int
) -> None:
    if len(kept) < limit:
        kept.append(item)
    else:
        slot = rng.randrange(seen)
        if slot < limit:
            kept[slot] = item


class _CsvRoll:
    """The roll as a UTF-8 CSV export, dates dd/mm/yyyy as the LA's systems write them."""

    def __init__(self, path: Path, columns: dict[str, str]) -> None:
        self.path = path
        self.columns = columns
        self._values = attrgetter(*columns)

    def __enter__(self) -> _CsvRoll:
        self._handle = self.path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(self.columns.values())
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def write(self, pupil: Pupil) -> None:
        self._writer.writerow(
            [
                uk_date(v) if isinstance(v, date) else "" if v is None else v
                for v in self._values(pupil)
            ]
        )


class _XlsxRoll:
    """The roll as an .xlsx export, dates as real Excel dates."""

    def __init__(self, path: Path, columns: dict[str, str]) -> None:
        self.path = path
        self.columns = columns
        self._values = attrgetter(*columns)

    def __enter__(self) -> _XlsxRoll:
        self._workbook = Workbook(write_only=True)
        self._sheet = self._workbook.create_sheet("Pupils")
        self._sheet.append(list(self.columns.values()))
        return self

    def __exit__(self, *exc: object) -> None:
        self._workbook.save(self.path)

    def write(self, pupil: Pupil) -> None:
        self._sheet.append(list(self._values(pupil)))

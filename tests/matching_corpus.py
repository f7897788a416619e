"""A synthetic pupil roll and police children derived from it with realistic noise.

Used by tests/test_matching_corpus.py (zero children routed to a wrong school, and a floor
on the auto-route rate) and reusable by a benchmark: `make_corpus()` returns the directory,
the cases and what is true of each case; `summarise()` counts the outcomes.

Every name and date here is made up by code; the seeded generator makes the corpus the
same on every run.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from gateway.model import (
    ChildRecord,
    Contact,
    Establishment,
    MatchResult,
    MatchStatus,
    Pupil,
    SourceRow,
)


class InMemoryDirectory:
    """The Directory protocol over lists, for tests and benchmarks of matching."""

    def __init__(
        self,
        establishments: Iterable[Establishment],
        pupils: Iterable[Pupil],
        contacts: Iterable[Contact] = (),
    ) -> None:
        self._establishments = {e.urn: e for e in establishments}
        self._by_dob: dict[date, list[Pupil]] = defaultdict(list)
        for pupil in pupils:
            self._by_dob[pupil.dob].append(pupil)
        self._contacts: dict[int, list[Contact]] = defaultdict(list)
        for contact in contacts:
            self._contacts[contact.urn].append(contact)

    def pupils_born_on(self, dob: date) -> Sequence[Pupil]:
        return tuple(self._by_dob.get(dob, ()))

    def establishment(self, urn: int) -> Establishment | None:
        return self._establishments.get(urn)

    def establishments(self) -> Sequence[Establishment]:
        return tuple(self._establishments.values())

    def contacts(self, urn: int) -> Sequence[Contact]:
        return tuple(self._contacts.get(urn, ()))


def establishment(urn: int, name: str, *, is_open: bool = True) -> Establishment:
    return Establishment(
        urn=urn,
        name=name,
        la_code=873,
        la_name="Cambridgeshire",
        type_name="Academy converter",
        phase_name="Primary",
        status_name="Open" if is_open else "Closed",
        is_open=is_open,
    )


# --------------------------------------------------------------------------------------
# The corpus

INCIDENT_DAY = date(2026, 3, 10)

# (full GIAS name, an abbreviation as the police write it)
SCHOOLS: tuple[tuple[str, str], ...] = (
    ("Parkside Primary School", "Parkside Prim"),
    ("Parkside Community College", "Parkside Comm Coll"),
    ("St Mary's Church of England Primary School", "St Marys CE Prim"),
    ("St Mary's Catholic Primary School", "St Marys RC Primary"),
    ("Ely College", "Ely Coll"),
    ("Ely St John's Community Primary School", "Ely St Johns"),
    ("Ely Junior School", "Ely Juniors"),
    ("Ely Infant School", "Ely Infants"),
    ("Nene Park Academy", "Nene Park Acad"),
    ("Nene Valley Primary School", "Nene Valley Pri"),
    ("Oakfield Primary School", "Oakfield Primary"),
    ("Meadowbrook Infant School", "Meadowbrook Inf"),
    ("Meadowbrook Junior School", "Meadowbrook Jnr"),
    ("Thomas Clarkson Academy", "Thomas Clarkson Acad"),
    ("Cromwell Community College", "Cromwell Comm College"),
    ("Witchford Village College", "Witchford VC"),
    ("Soham Village College", "Soham Village Coll"),
    ("St Neots Priory Park Infant School", "Priory Park Infants"),
    ("Longsands Academy", "Longsands Acad"),
    ("Hinchingbrooke School", "Hinchingbrooke"),
    ("Sawtry Village Academy", "Sawtry Village Acad"),
    ("The Ashbeach Primary School", "Ashbeach Primary"),
    ("Alderman Payne Primary School", "Alderman Payne Prim"),
    ("Bewick Bridge Community Primary School", "Bewick Bridge CP"),
    ("Fulbridge Academy", "Fulbridge Acad"),
    ("Gladstone Primary Academy", "Gladstone Prim Acad"),
    ("Hampton Vale Primary School", "Hampton Vale Pri"),
    ("Jack Hunt School", "Jack Hunt Sch"),
    ("Ken Stimpson Community School", "Ken Stimpson"),
    ("Lime Academy Parnwell", "Lime Acad Parnwell"),
    ("Middleton Primary School", "Middleton Prim"),
    ("Newark Hill Academy", "Newark Hill Acad"),
    ("Orton Wistow Primary School", "Orton Wistow Prim"),
    ("Queen Katharine Academy", "Queen Katharine Acad"),
    ("Ravensthorpe Primary School", "Ravensthorpe Pri"),
    ("Stanground Academy", "Stanground Acad"),
    ("Thorpe Primary School", "Thorpe Prim"),
    ("William Law CofE Primary School", "William Law CE Primary"),
    ("Winyates Primary School", "Winyates Prim"),
    ("Welland Academy", "Welland Acad"),
)
# Police texts that fit the pupil's school and another one equally well.
SHARED_SCHOOL_TEXTS = {
    "Parkside Primary School": "Parkside",
    "Parkside Community College": "Parkside",
    "St Mary's Church of England Primary School": "St Marys",
    "St Mary's Catholic Primary School": "St Mary's Primary",
}

FORENAMES = (
    "Oliver", "Olivia", "Amelia", "George", "Isla", "Noah", "Ava", "Arthur", "Mia", "Muhammad",
    "Ivy", "Leo", "Freya", "Henry", "Lily", "Oscar", "Florence", "Archibald", "Alfred",
    "Alexander", "Alexandra", "Charlotte", "Charles", "William", "Thomas", "James", "Elizabeth",
    "Katherine", "Samuel", "Samantha", "Zachary", "Jacob", "Michael", "Nicholas", "Eleanor",
    "Madison", "Isabella", "Poppy", "Evie", "Sophia", "Grace", "Theodore", "Lucas", "Jack",
    "Ethan", "Aisha", "Priya", "Zoë", "Chloé", "Renée", "Joshua", "Harriet", "Reuben", "Imogen",
    "Kwame", "Ayesha", "Tomasz", "Wiktoria", "Callum", "Niamh", "Rhys", "Seren", "Dylan",
)  # fmt: skip
SURNAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Clarke", "Jackson", "Wood", "Harris", "Edwards", "Turner", "Martin", "Cooper", "Hill",
    "Ward", "Hughes", "Moore", "King", "Harrison", "Lewis", "Baker", "Allen", "Morris", "Khan",
    "Scott", "Watson", "Parker", "Bennett", "Young", "Phillips", "Richardson", "Mitchell",
    "Bailey", "Carter", "Cook", "Singh", "Shaw", "Bell", "Collins", "Morgan", "Kelly", "Begum",
    "Dixon", "Mason", "Hussain", "O'Neill", "O'Brien", "D'Souza", "Smith-Jones",
    "Taylor-Brown", "Müller", "Nowak", "Kowalczyk", "Nguyen", "Okafor", "Mensah", "Fitzgerald",
)  # fmt: skip
# Children who are on no roll get surnames no pupil of the base roll has.
ABSENT_SURNAMES = (
    "Fairweather", "Pemberton", "Quigley", "Ravenscroft", "Thistlewood", "Underhill",
    "Vasquez", "Whitlock", "Yardley", "Zielinski", "Abernethy", "Blackwood", "Castellano",
    "Drinkwater", "Esterhazy", "Gallagher", "Hollingsworth", "Iverson", "Jablonski", "Lockhart",
)  # fmt: skip
PREFERRED = {"Alfred": "Alfie", "Archibald": "Archie", "Theodore": "Theo", "Zachary": "Zak",
             "Samuel": "Sam", "William": "Will", "Elizabeth": "Libby", "Katherine": "Katie",
             "Oliver": "Ollie", "Michael": "Mikey"}  # fmt: skip
NICKNAMES = {"Alexander": "Alex", "Charles": "Charlie", "William": "Bill", "Thomas": "Tom",
             "James": "Jim", "Nicholas": "Nick", "Henry": "Harry", "Jacob": "Jake",
             "Eleanor": "Ellie", "Samantha": "Sam", "Zachary": "Zac", "Madison": "Maddie",
             "Muhammad": "Mohammed", "Katherine": "Kate", "Elizabeth": "Beth"}  # fmt: skip
# Twins a slip of the pen or a nickname could confuse: (named on the roll, the twin, as the
# police write the child).
CONFUSABLE_TWINS = (
    ("Jack", "Jake", "Jack"), ("Oliver", "Olivia", "Oliver"), ("Amelia", "Emilia", "Amelia"),
    ("Henry", "Harry", "Harry"), ("Callum", "Calum", "Callum"), ("Samuel", "Samantha", "Sam"),
    ("Alexander", "Alexandra", "Alex"), ("Charlotte", "Charles", "Charlie"),
    ("Oliver", "Olivia", "Ollie"),
)  # fmt: skip
DISTINCT_TWINS = (("George", "Poppy"), ("Noah", "Isla"), ("Arthur", "Grace"), ("Leo", "Freya"),
                  ("Isla", "Ella"), ("Samuel", "Samantha"))  # fmt: skip
# Surnames written differently by the police: (on the roll, as the police write it).
SURNAME_VARIANTS = (
    ("Smith-Jones", "Smith Jones"), ("Smith-Jones", "SmithJones"), ("Smith-Jones", "Smith"),
    ("Taylor-Brown", "Taylor Brown"), ("Taylor-Brown", "Brown"), ("O'Neill", "ONeill"),
    ("O'Neill", "O Neill"), ("O'Brien", "OBrien"), ("D'Souza", "D Souza"), ("Müller", "Muller"),
    ("Kowalczyk", "Kowalczyk"), ("Nowak", "Nowak"), ("Łukasiewicz", "Lukasiewicz"),
)  # fmt: skip

# Kinds whose police details are near enough the roll for a careful matcher to route most.
CLEAN_KINDS = frozenset(
    {"exact", "typo", "nickname", "preferred", "swapped", "surname_variant", "diacritic",
     "middle_name", "twins_distinct", "moved_school", "not_yet_moved", "school_shared_text"}
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    child: ChildRecord
    on: date
    kind: str


@dataclass(frozen=True)
class Expected:
    """What is true of a case: the school the child attends on the day (None: no school on
    the roll), and the status the matcher must give when the case calls for one. AMBIGUOUS
    always satisfies it too: a random pupil of a similar name born the same day makes any
    case a near-tie, and a near-tie is decided before the police's school is looked at."""

    urn: int | None
    status: MatchStatus | None = None
    clean: bool = False


@dataclass
class _Roll:
    rng: random.Random
    pupils: list[Pupil] = field(default_factory=list)
    upns: int = 0

    def add(self, forename: str, surname: str, dob: date, urn: int, **extra: object) -> Pupil:
        self.upns += 1
        pupil = Pupil(
            upn=f"A{self.upns:012d}",
            legal_forename=forename,
            legal_surname=surname,
            dob=dob,
            urn=urn,
            postcode=f"CB{self.rng.randint(1, 25)} {self.rng.randint(1, 9)}"
            f"{self.rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{self.rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
            **{"entry_date": date(2024, 9, 4), **extra},
        )
        self.pupils.append(pupil)
        return pupil


def make_corpus(
    seed: int = 2026, pupils: int = 3000, days: int = 400
) -> tuple[InMemoryDirectory, list[Case], list[Expected]]:
    """A roll of `pupils` pupils across the schools above, born on `days` different days
    (so a dozen share each birthday), and one police child per case with its noise."""
    rng = random.Random(seed)
    establishments = [establishment(110_000 + i, name) for i, (name, _) in enumerate(SCHOOLS)]
    urns = [e.urn for e in establishments]
    abbreviations = {110_000 + i: short for i, (_, short) in enumerate(SCHOOLS)}
    names = {e.urn: e.name for e in establishments}
    birthdays = sorted({date(2012, 9, 1) + timedelta(rng.randrange(8 * 365)) for _ in range(days)})
    roll = _Roll(rng)
    for _ in range(pupils):
        roll.add(
            rng.choice(FORENAMES), rng.choice(SURNAMES), rng.choice(birthdays), rng.choice(urns)
        )
    base = list(roll.pupils)
    cases: list[Case] = []
    expected: list[Expected] = []

    def police(pupil: Pupil, forename: str, surname: str, kind: str, school: str = "") -> None:
        text = school if school else _school_text(rng, pupil.urn, names, abbreviations)
        child = _child(rng, forename, surname, pupil.dob, text, pupil.postcode, len(cases))
        cases.append(Case(child, INCIDENT_DAY, kind))
        expected.append(Expected(pupil.urn, clean=kind in CLEAN_KINDS))

    def expect(case: Case, outcome: Expected) -> None:
        cases.append(case)
        expected.append(outcome)

    for pupil in rng.sample(base, 400):
        police(pupil, pupil.legal_forename, pupil.legal_surname, "exact")
    for pupil in rng.sample(base, 250):
        if rng.random() < 0.5:
            police(pupil, _typo(rng, pupil.legal_forename), pupil.legal_surname, "typo")
        else:
            police(pupil, pupil.legal_forename, _typo(rng, pupil.legal_surname), "typo")
    for pupil in rng.sample(base, 150):
        police(pupil, pupil.legal_surname, pupil.legal_forename, "swapped")
    for pupil in rng.sample(base, 120):
        short = NICKNAMES.get(pupil.legal_forename)
        if short:
            police(pupil, short, pupil.legal_surname, "nickname")
    for dob in rng.sample(birthdays, 60):
        legal = rng.choice(sorted(PREFERRED))
        pupil = roll.add(legal, rng.choice(SURNAMES), dob, rng.choice(urns),
                         preferred_forename=PREFERRED[legal])  # fmt: skip
        police(pupil, PREFERRED[legal], pupil.legal_surname, "preferred")
    for dob in rng.sample(birthdays, 40):
        pupil = roll.add("Callum", rng.choice(SURNAMES), dob, rng.choice(urns),
                         middle_names=rng.choice(("Rhys James", "Dylan")))  # fmt: skip
        police(pupil, pupil.middle_names.split()[0], pupil.legal_surname, "middle_name")
    for dob in rng.sample(birthdays, 80):
        roll_surname, written = rng.choice(SURNAME_VARIANTS)
        forename = rng.choice(FORENAMES)
        pupil = roll.add(forename, roll_surname, dob, rng.choice(urns))
        if written == roll_surname:
            police(pupil, _ascii(forename), roll_surname, "diacritic")
        else:
            police(pupil, forename, written, "surname_variant")
    for dob in rng.sample(birthdays, 40):
        first, second, written = rng.choice(CONFUSABLE_TWINS)
        surname, urn = rng.choice(SURNAMES), rng.choice(urns)
        twin = roll.add(first, surname, dob, urn)
        roll.add(second, surname, dob, urn if rng.random() < 0.7 else rng.choice(urns))
        police(twin, written, surname, "twins_confusable")
        expected[-1] = Expected(twin.urn, MatchStatus.AMBIGUOUS)
    for dob in rng.sample(birthdays, 30):
        # The twin at a school whose roll the LA does not hold: only the other is found.
        on_roll, absent, _ = rng.choice(CONFUSABLE_TWINS[:3])
        surname = rng.choice(ABSENT_SURNAMES[:8])
        roll.add(on_roll, surname, dob, rng.choice(urns))
        child = _child(rng, absent, surname, dob, "", "", len(cases))
        expect(Case(child, INCIDENT_DAY, "twin_not_on_roll"), Expected(None))
    for dob in rng.sample(birthdays, 30):
        first, second = rng.choice(DISTINCT_TWINS)
        surname, urn = rng.choice(SURNAMES), rng.choice(urns)
        twin = roll.add(first, surname, dob, urn)
        roll.add(second, surname, dob, urn)
        police(twin, first, surname, "twins_distinct")
    for dob in rng.sample(birthdays, 30):
        forename, surname = rng.choice(FORENAMES), rng.choice(SURNAMES)
        first_urn, second_urn = rng.sample(urns, 2)
        pupil = roll.add(forename, surname, dob, first_urn)
        roll.add(forename, surname, dob, second_urn)
        police(pupil, forename, surname, "same_name_two_schools", school="N/K")
        expected[-1] = Expected(first_urn, MatchStatus.AMBIGUOUS)
    for dob in rng.sample(birthdays, 60):
        forename, surname = rng.choice(FORENAMES), rng.choice(SURNAMES)
        old, new = rng.sample(urns, 2)
        left = INCIDENT_DAY - timedelta(days=rng.randint(3, 120))
        roll.add(forename, surname, dob, old, leaving_date=left)
        kind = rng.choice(("moved_school", "moved_school_stale", "moved_away"))
        if kind == "moved_away":
            child = _child(rng, forename, surname, dob, "", "", len(cases))
            expect(Case(child, INCIDENT_DAY, kind), Expected(None))
            continue
        upn = roll.pupils[-1].upn
        pupil = Pupil(upn, forename, surname, dob, new, entry_date=left + timedelta(days=1))
        roll.pupils.append(pupil)
        stale = kind == "moved_school_stale"
        police(pupil, forename, surname, kind, school=names[old] if stale else "N/K")
        if stale:
            expected[-1] = Expected(new, MatchStatus.CONFLICT)
    for dob in rng.sample(birthdays, 30):
        forename, surname = rng.choice(FORENAMES), rng.choice(SURNAMES)
        now, later = rng.sample(urns, 2)
        starts = INCIDENT_DAY + timedelta(days=rng.randint(1, 30))
        pupil = roll.add(forename, surname, dob, now, leaving_date=starts - timedelta(days=1))
        roll.pupils.append(Pupil(pupil.upn, forename, surname, dob, later, entry_date=starts))
        police(pupil, forename, surname, "not_yet_moved")
    for pupil in [p for p in base if names[p.urn] in SHARED_SCHOOL_TEXTS][:60]:
        text = SHARED_SCHOOL_TEXTS[names[pupil.urn]]
        police(pupil, pupil.legal_forename, pupil.legal_surname, "school_shared_text", text)
    # Pupils with no one of their surname born the same day, so nothing but the school
    # decides these cases.
    surnames_on = Counter((p.dob, p.legal_surname) for p in roll.pupils)
    lonely = [p for p in base if surnames_on[p.dob, p.legal_surname] == 1]
    for pupil in rng.sample(lonely, 60):
        wrong = rng.choice([u for u in urns if u != pupil.urn])
        police(pupil, pupil.legal_forename, pupil.legal_surname, "school_wrong", names[wrong])
        expected[-1] = Expected(pupil.urn, MatchStatus.CONFLICT)
    for _ in range(150):
        child = _child(
            rng,
            rng.choice(FORENAMES),
            rng.choice(ABSENT_SURNAMES[8:]),
            rng.choice(birthdays),
            rng.choice(("", "N/K", names[rng.choice(urns)])),
            "",
            len(cases),
        )
        expect(Case(child, INCIDENT_DAY, "not_on_roll"), Expected(None))
    return InMemoryDirectory(establishments, roll.pupils), cases, expected


def _school_text(
    rng: random.Random, urn: int, names: dict[int, str], abbreviations: dict[int, str]
) -> str:
    roll = rng.random()
    if roll < 0.4:
        return ""
    if roll < 0.5:
        return rng.choice(("N/K", "not known", "unknown"))
    if roll < 0.75:
        return names[urn]
    if roll < 0.85:
        return _typo(rng, names[urn])
    return abbreviations[urn]


def _child(
    rng: random.Random,
    forename: str,
    surname: str,
    dob: date,
    school: str,
    postcode: str,
    row: int,
) -> ChildRecord:
    style = rng.random()
    if style < 0.3:
        forename, surname = forename.upper(), surname.upper()
    elif style < 0.4:
        forename, surname = f" {forename} ", f"{surname}  "
    return ChildRecord(
        forename=forename,
        surname=surname,
        dob=dob,
        source=SourceRow("corpus.xlsx", "Sheet1", row + 2),
        school_text=school,
        postcode=postcode if rng.random() < 0.5 else "",
    )


def _typo(rng: random.Random, name: str) -> str:
    """One slip of the keyboard: a letter dropped, doubled, swapped with the next, or wrong."""
    if len(name) < 4:
        return name
    at = rng.randrange(1, len(name) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return name[:at] + name[at + 1 :]
    if kind == 1:
        return name[:at] + name[at] + name[at:]
    if kind == 2:
        return name[:at] + name[at + 1] + name[at] + name[at + 2 :]
    return name[:at] + rng.choice("aeioust") + name[at + 1 :]


def _ascii(text: str) -> str:
    return text.translate(str.maketrans("ëéüöłŁ", "eeuolL"))


# --------------------------------------------------------------------------------------
# Summary


@dataclass(frozen=True)
class Summary:
    cases: int
    matched: int
    wrong: tuple[tuple[Case, MatchResult], ...]  # routed to a school the child is not at
    unexpected: tuple[tuple[Case, MatchResult], ...]  # a required status not given
    clean: int
    clean_matched: int
    by_kind: dict[str, Counter[str]]

    @property
    def auto_route_rate(self) -> float:
        return self.matched / self.cases if self.cases else 0.0

    @property
    def clean_auto_route_rate(self) -> float:
        return self.clean_matched / self.clean if self.clean else 0.0


def summarise(
    cases: Sequence[Case], expected: Sequence[Expected], results: Sequence[MatchResult]
) -> Summary:
    wrong = []
    unexpected = []
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for case, truth, result in zip(cases, expected, results, strict=True):
        by_kind[case.kind][result.status.value] += 1
        if result.status is MatchStatus.MATCHED and result.urn != truth.urn:
            wrong.append((case, result))
        allowed = {truth.status, MatchStatus.AMBIGUOUS}
        if truth.status is not None and result.status not in allowed:
            unexpected.append((case, result))
    matched = sum(r.status is MatchStatus.MATCHED for r in results)
    clean = [r for r, t in zip(results, expected, strict=True) if t.clean]
    return Summary(
        cases=len(cases),
        matched=matched,
        wrong=tuple(wrong),
        unexpected=tuple(unexpected),
        clean=len(clean),
        clean_matched=sum(r.status is MatchStatus.MATCHED for r in clean),
        by_kind=dict(by_kind),
    )

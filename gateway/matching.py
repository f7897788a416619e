"""Matching a child from the police spreadsheet to one pupil on the roll, and so to a school.

Conservative by design: sending a child's details to the wrong school is a data breach,
while an exception costs the Navigator a minute. A child is MATCHED only when exactly one
pupil born that day, on roll that day, is clearly the best by forename AND surname, and the
school the police named (if any) agrees with the roll. Twins with similar names, the same
name at two schools, a disagreement with the police's school and weak names all go to the
Navigator, with the candidates ranked and the reason in words.

The police's school text never chooses a pupil; it can only confirm or veto the roll. So a
mis-resolved school text can cost an exception but never route a child anywhere new.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import accumulate, chain, compress
from operator import attrgetter, not_
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator
from rapidfuzz import fuzz, process

from gateway.errors import RulesError
from gateway.model import (
    Candidate,
    ChildRecord,
    Directory,
    MatchResult,
    MatchStatus,
    Pupil,
)
from gateway.names import NameForm, Nicknames, name_form
from gateway.schoolnames import SchoolNameIndex, SchoolResolution
from gateway.validation import Strict, load_toml_model

MATCHING_FILE = "matching.toml"

_Score = Annotated[float, Field(ge=0, le=100)]


def _particle(value: str) -> str:
    form = name_form(value)
    if len(form.tokens) != 1:
        raise ValueError(f"{value!r} must be a single word")
    return form.compact


class MatchPolicy(Strict):
    """rules/matching.toml: the thresholds of matching, each documented in that file."""

    min_forename: Annotated[float, Field(ge=50, le=100)]
    min_surname: Annotated[float, Field(ge=50, le=100)]
    min_score: Annotated[float, Field(ge=50, le=100)]
    min_margin: Annotated[float, Field(gt=0, le=50)]
    possible: Annotated[float, Field(ge=30, le=100)]
    nickname_score: _Score
    middle_name_score: _Score
    part_name_score: _Score
    swapped_penalty: _Score
    postcode_weight: _Score
    particles: tuple[Annotated[str, AfterValidator(_particle)], ...]
    max_candidates: Annotated[int, Field(ge=1, le=50)]

    @field_validator("possible")
    @classmethod
    def _possible_below_minimums(cls, value: float, info: ValidationInfo) -> float:
        lowest = min(info.data.get("min_forename", 100), info.data.get("min_surname", 100))
        if value > lowest:
            raise ValueError(f"must not be above min_forename or min_surname ({lowest})")
        return value

    @field_validator("postcode_weight")
    @classmethod
    def _postcode_never_decides(cls, value: float, info: ValidationInfo) -> float:
        margin = info.data.get("min_margin")
        if margin is not None and value >= margin:
            raise ValueError(
                f"must be less than min_margin ({margin}), or a postcode alone could tell "
                f"two pupils of the same name apart"
            )
        return value


def load_match_policy(rules_dir: Path) -> MatchPolicy:
    """Load and validate rules/matching.toml (raises RulesError naming the bad key)."""
    return load_toml_model(rules_dir / MATCHING_FILE, MatchPolicy, RulesError)


def match_child(
    child: ChildRecord,
    on: date,
    directory: Directory,
    schools: SchoolNameIndex,
    nicknames: Nicknames,
    policy: MatchPolicy,
) -> MatchResult:
    """Find `child` on the pupil roll as it stood on `on` (the incident date, or the day the
    spreadsheet arrived when the incident date is unknown).

    MATCHED: one pupil born that day is ahead by `min_margin` of every other possible pupil
    (on roll, or a different pupil who has left or not yet started), its forename and
    surname each reach their minimum, and the police's school, if given, is that pupil's
    school or a text that fits it among others ("Parkside" for two Parkside schools: no worse
    than no school, and the reason says so). CONFLICT: the police named another school, or
    a text that fits no school the roll could mean; the usual cause is a move the roll has
    not caught up with, so a person looks. AMBIGUOUS: a near-tie, or one possible pupil whose
    names are not close enough to be sure. NO_CANDIDATE: no date of birth, or nobody born
    that day with a name like the child's.
    """
    school = schools.resolve(child.school_text)
    police_urn = school.urn
    if child.dob is None:
        return MatchResult(
            MatchStatus.NO_CANDIDATE,
            None,
            (),
            "no date of birth: the pupil roll is searched by date of birth",
            police_urn,
        )
    name = _PoliceName(child, nicknames)
    if not name.forename and not name.surname:
        return MatchResult(
            MatchStatus.NO_CANDIDATE, None, (), "no name given for the child", police_urn
        )
    scorer = _Scorer(name, child.postcode, nicknames, policy)
    scored = _unique(
        scorer.score(p) for p in _plausible(directory.pupils_born_on(child.dob), name, policy)
    )
    return _Decider(child, child.dob, on, scored, school, directory, policy).decide()


# --------------------------------------------------------------------------------------
# Scoring one pupil


class _PoliceName:
    """The police's forename and surname prepared once for all the day's pupils."""

    def __init__(self, child: ChildRecord, nicknames: Nicknames) -> None:
        self.forename = name_form(child.forename)
        self.surname = name_form(child.surname)
        forms: set[str] = set()
        for form in (self.forename, self.surname):
            if form:
                forms.add(form.compact)
                for token in form.tokens:
                    forms.update(nicknames.forms(token))
                forms.update(nicknames.forms(form.compact))
        self.forms = tuple(sorted(forms))


def _plausible(pupils: Sequence[Pupil], name: _PoliceName, policy: MatchPolicy) -> list[Pupil]:
    """The pupils with any name part like any of the police's, in a few C-speed passes.

    Scoring a pupil field by field in Python is too slow for the ~300 pupils born on any
    day in a national roll. Every score below is built from a rapidfuzz ratio of one of
    these words (or their run-together form) to a police word or nickname, never higher
    than that ratio, so a pupil dropped here could not have reached `possible` in any name.
    """
    # attrgetter, map, chain and the cached _words keep these loops in C.
    fields = list(map(_NAME_FIELDS, pupils))
    distinct = list(set(chain.from_iterable(fields)))
    word_lists = list(map(_words, distinct))
    words = list(chain.from_iterable(word_lists))
    ends = list(accumulate(map(len, word_lists)))
    hot: set[str] = set()
    for query in name.forms:
        for _, _, position in process.extract(
            query,
            words,
            scorer=fuzz.ratio,
            processor=None,
            limit=None,
            score_cutoff=policy.possible,
        ):
            hot.add(distinct[bisect_right(ends, position)])
    if not hot:
        return []
    return list(compress(pupils, map(not_, map(hot.isdisjoint, fields))))


_NAME_FIELDS = attrgetter(
    "legal_forename", "legal_surname", "preferred_forename", "preferred_surname", "middle_names"
)


@lru_cache(maxsize=262_144)
def _words(field: str) -> tuple[str, ...]:
    """The words of a name field that scoring compares: each word, and all run together."""
    form = name_form(field)
    if len(form.tokens) <= 1:
        return form.tokens
    return (form.compact, *form.tokens)


@dataclass(frozen=True)
class _Scored:
    pupil: Pupil
    score: float
    forename: float
    surname: float
    postcode: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Part:
    score: float
    note: str = ""


class _Scorer:
    def __init__(
        self, name: _PoliceName, postcode: str, nicknames: Nicknames, policy: MatchPolicy
    ) -> None:
        self._name = name
        self._postcode = _postcode(postcode)
        self._nicknames = nicknames
        self._policy = policy
        self._particles = frozenset(policy.particles)

    def score(self, pupil: Pupil) -> _Scored:
        forenames = (
            (name_form(pupil.legal_forename), ""),
            (name_form(pupil.preferred_forename), "preferred forename"),
        )
        surnames = (
            (name_form(pupil.legal_surname), ""),
            (name_form(pupil.preferred_surname), "preferred surname"),
        )
        middle = name_form(pupil.middle_names).tokens
        police = self._name
        forename = self._forename(police.forename, forenames, middle)
        surname = self._surname(police.surname, surnames)
        total = (forename.score + surname.score) / 2
        notes = [forename.note, surname.note]
        # "SURNAME, Forename" split the wrong way round, or the columns swapped.
        swapped_forename = self._forename(police.surname, forenames, middle)
        swapped_surname = self._surname(police.forename, surnames)
        swapped_total = (
            swapped_forename.score + swapped_surname.score
        ) / 2 - self._policy.swapped_penalty
        if swapped_total > total:
            forename, surname, total = swapped_forename, swapped_surname, swapped_total
            notes = ["forename and surname swapped", forename.note, surname.note]
        postcode = bool(self._postcode) and self._postcode == _postcode(pupil.postcode)
        if postcode:
            total += self._policy.postcode_weight
        return _Scored(
            pupil,
            round(max(0.0, min(100.0, total)), 1),
            round(forename.score, 1),
            round(surname.score, 1),
            postcode,
            tuple(note for note in notes if note),
        )

    def _forename(
        self, police: NameForm, forenames: Iterable[tuple[NameForm, str]], middle: Sequence[str]
    ) -> _Part:
        best = _Part(0.0)
        if not police:
            return best
        for form, label in forenames:
            part = self._similar(police, form, label or "forename", nicknames=True)
            if part.score > best.score:
                best = part
        factor = self._policy.middle_name_score / 100
        for word in middle:
            like = fuzz.ratio(police.compact, word)
            if self._nicknames.equivalent(police.compact, word):
                like = max(like, self._policy.nickname_score)
            if like * factor > best.score:
                best = _Part(like * factor, f"middle name {word.title()}")
        return best

    def _surname(self, police: NameForm, surnames: Iterable[tuple[NameForm, str]]) -> _Part:
        best = _Part(0.0)
        if not police:
            return best
        for form, label in surnames:
            part = self._similar(police, form, label or "surname", nicknames=False)
            if part.score > best.score:
                best = part
        return best

    def _similar(self, police: NameForm, roll: NameForm, label: str, *, nicknames: bool) -> _Part:
        """How alike two name fields are, and what made them alike when it was not spelling."""
        if not roll:
            return _Part(0.0)
        exact_note = f"{label} {roll.text.title()}" if label.startswith("preferred") else ""
        if police.compact == roll.compact:
            return _Part(100.0, exact_note)
        best = _Part(fuzz.ratio(police.compact, roll.compact), exact_note)
        whole = len(police.tokens) == 1 and len(roll.tokens) == 1
        if nicknames:
            for ours in police.tokens:
                for theirs in roll.tokens:
                    if ours != theirs and self._nicknames.equivalent(ours, theirs):
                        score = self._policy.nickname_score
                        if not whole:
                            score = score * self._policy.part_name_score / 100
                        if score > best.score:
                            best = _Part(score, f"{label} {theirs.title()} (nickname)")
        if not whole:
            factor = self._policy.part_name_score / 100
            for ours in self._parts(police):
                for theirs in self._parts(roll):
                    score = fuzz.ratio(ours, theirs) * factor
                    if score > best.score:
                        best = _Part(score, f"part of {label} {roll.text.title()}")
        return best

    def _parts(self, form: NameForm) -> list[str]:
        # One letter, or "de" / "van", agreeing says nothing about the rest of the name.
        return [t for t in form.tokens if len(t) >= 3 and t not in self._particles]


def _postcode(text: str) -> str:
    return "".join(char for char in text.upper() if char.isalnum())


def _unique(scored: Iterable[_Scored]) -> list[_Scored]:
    """One entry per pupil per school: the roll can repeat a row (re-admission, a bad export)."""
    best: dict[tuple[str, int], _Scored] = {}
    single: list[_Scored] = []
    for entry in scored:
        if not entry.pupil.upn:
            single.append(entry)
            continue
        key = (entry.pupil.upn, entry.pupil.urn)
        kept = best.get(key)
        if kept is None or _rank(entry) < _rank(kept):
            best[key] = entry
    return sorted([*best.values(), *single], key=_rank)


def _rank(entry: _Scored) -> tuple[float, int, str]:
    return (-entry.score, entry.pupil.urn, entry.pupil.upn)


# --------------------------------------------------------------------------------------
# Deciding


class _Decider:
    def __init__(
        self,
        child: ChildRecord,
        dob: date,
        on: date,
        scored: list[_Scored],
        school: SchoolResolution,
        directory: Directory,
        policy: MatchPolicy,
    ) -> None:
        self._child = child
        self._dob = dob
        self._on = on
        self._school = school
        self._directory = directory
        self._policy = policy
        self._on_roll = [s for s in scored if s.pupil.on_roll(on)]
        self._off_roll = [s for s in scored if not s.pupil.on_roll(on) and self._possible(s)]
        self._school_names: dict[int, str] = {}

    def decide(self) -> MatchResult:
        possibles = [s for s in self._on_roll if self._possible(s)]
        who = f"{self._child.display_name} born {_day(self._dob)}"
        if not possibles:
            return self._result(MatchStatus.NO_CANDIDATE, None, self._no_candidate())
        best = possibles[0]
        close = [s for s in possibles[1:] if best.score - s.score < self._policy.min_margin]
        if close:
            return self._result(MatchStatus.AMBIGUOUS, None, self._near_tie(who, [best, *close]))
        # A different pupil of as close a name who has left (or not yet started) may be the
        # child, moved out of the area; the roll cannot say which. The same UPN is the same
        # child, who moved school: no doubt then.
        shadows = [
            s
            for s in self._off_roll
            if (not s.pupil.upn or s.pupil.upn != best.pupil.upn)
            and best.score - s.score < self._policy.min_margin
        ]
        if shadows:
            reason = (
                f"{who} could be {self._describe(best)} (score {best.score:g}) or a different "
                f"pupil not on roll that day, {self._not_on_roll(shadows[0])} (score "
                f"{shadows[0].score:g}); too close to choose"
            )
            return self._result(MatchStatus.AMBIGUOUS, None, reason)
        if not self._strong(best):
            reason = (
                f"the only possible pupil for {who} is {self._describe(best)}, but the names "
                f"differ too much to be sure (forename {best.forename:g}, surname "
                f"{best.surname:g}, score {best.score:g})"
            )
            return self._result(MatchStatus.AMBIGUOUS, None, reason)
        return self._check_school(who, best, possibles[1:])

    def _check_school(self, who: str, best: _Scored, others: list[_Scored]) -> MatchResult:
        school = self._school
        pupil = best.pupil
        found = f"{who} is {self._describe(best)}: {self._agreement(best)}"
        if others:
            found += f"; next possible pupil scores {others[0].score:g}"
        if not school.given:
            return self._result(
                MatchStatus.MATCHED, pupil.urn, f"{found}; the police gave no school"
            )
        if school.urn == pupil.urn:
            return self._result(
                MatchStatus.MATCHED, pupil.urn, f"{found}; the police named the same school"
            )
        roll_school = self._school_name(pupil.urn)
        on_roll = f"{who} is {self._describe(best)} on the pupil roll"
        if school.urn is not None:
            reason = f"{on_roll}, but the police named {self._school_name(school.urn)}"
            return self._result(MatchStatus.CONFLICT, None, reason)
        if school.fits(pupil.urn):
            # The police's text fits the roll's school and others equally well: it agrees with
            # the roll as far as it goes, so it is no worse than no school given. Routed, with
            # the doubt shown to the Navigator.
            others_count = len(school.fitting) - 1
            reason = (
                f"{found}; the police wrote {school.text!r}, which fits {roll_school} and "
                f"{others_count} other school{'s' if others_count != 1 else ''} as well"
            )
            return self._result(MatchStatus.MATCHED, pupil.urn, reason)
        # The police named something that is not the roll's school and that we cannot find:
        # most often a move of school the roll has not caught up with, so a person checks.
        reason = (
            f"{on_roll}, but the police wrote {school.text!r} as the school, which does not "
            f"fit {roll_school} ({school.reason})"
        )
        return self._result(MatchStatus.CONFLICT, None, reason)

    def _no_candidate(self) -> str:
        reason = (
            f"no pupil born {_day(self._dob)} and on roll on {_day(self._on)} has a name like "
            f"{self._child.display_name}"
        )
        one_sided = [s for s in self._on_roll if self._one_sided(s)]
        if one_sided:
            closest = one_sided[0]
            which = "forename" if closest.forename >= self._policy.possible else "surname"
            reason += f"; closest: {self._describe(closest)}, {which} only"
        return reason

    def _near_tie(self, who: str, tied: list[_Scored]) -> str:
        upns = {s.pupil.upn for s in tied}
        schools = [self._school_name(s.pupil.urn) for s in tied]
        if len(upns) == 1 and tied[0].pupil.upn:
            return (
                f"{who} is on roll at {_count(len(tied))} schools (UPN {tied[0].pupil.upn}): "
                f"{_join(schools)}"
            )
        names = {_roll_name(s.pupil).casefold() for s in tied}
        if len(names) == 1:
            same_school = len(set(schools)) == 1
            where = f"both at {schools[0]}" if same_school and len(tied) == 2 else _join(schools)
            return (
                f"{_count(len(tied))} pupils named {_roll_name(tied[0].pupil)} born "
                f"{_day(self._dob)}: {where}"
            )
        listed = ", ".join(f"{self._describe(s)} (score {s.score:g})" for s in tied)
        return f"{_count(len(tied))} pupils could be {who}, too close to choose between: {listed}"

    def _result(self, status: MatchStatus, urn: int | None, reason: str) -> MatchResult:
        if self._off_roll:
            reason += "; not counted: " + "; ".join(self._not_on_roll(s) for s in self._off_roll)
        return MatchResult(status, urn, self._candidates(), reason, self._school.urn)

    def _candidates(self) -> tuple[Candidate, ...]:
        listed = [s for s in self._on_roll if self._possible(s) or self._one_sided(s)]
        return tuple(self._candidate(s) for s in listed[: self._policy.max_candidates])

    def _candidate(self, entry: _Scored) -> Candidate:
        policy = self._policy
        agreed = ["dob"]
        if entry.forename >= policy.min_forename:
            agreed.append("forename")
        if entry.surname >= policy.min_surname:
            agreed.append("surname")
        if entry.postcode:
            agreed.append("postcode")
        notes = list(entry.notes)
        if self._school.urn is not None and self._school.urn == entry.pupil.urn:
            agreed.append("school")
        elif self._school.given:
            fits = self._school.fits(entry.pupil.urn)
            notes.append("fits the police's school" if fits else "not the police's school")
        if self._one_sided(entry):
            notes.append("forename only" if entry.forename >= policy.possible else "surname only")
        return Candidate(
            urn=entry.pupil.urn,
            school_name=self._school_name(entry.pupil.urn),
            upn=entry.pupil.upn,
            score=entry.score,
            agreed=tuple(agreed),
            note="; ".join([f"on the roll as {_roll_name(entry.pupil)}", *notes]),
        )

    def _possible(self, entry: _Scored) -> bool:
        floor = self._policy.possible
        return entry.forename >= floor and entry.surname >= floor

    def _one_sided(self, entry: _Scored) -> bool:
        floor = self._policy.possible
        return (entry.forename >= floor) != (entry.surname >= floor)

    def _strong(self, entry: _Scored) -> bool:
        policy = self._policy
        return (
            entry.forename >= policy.min_forename
            and entry.surname >= policy.min_surname
            and entry.score >= policy.min_score
        )

    def _agreement(self, entry: _Scored) -> str:
        agreed = ["date of birth"]
        agreed += ["forename"] if entry.forename >= self._policy.min_forename else []
        agreed += ["surname"] if entry.surname >= self._policy.min_surname else []
        agreed += ["postcode"] if entry.postcode else []
        text = f"{_join(agreed)} agree (score {entry.score:g})"
        return f"{text}, {', '.join(entry.notes)}" if entry.notes else text

    def _describe(self, entry: _Scored) -> str:
        return f"{_roll_name(entry.pupil)} at {self._school_name(entry.pupil.urn)}"

    def _not_on_roll(self, entry: _Scored) -> str:
        pupil = entry.pupil
        if pupil.entry_date is not None and pupil.entry_date > self._on:
            when = f"starts there on {_day(pupil.entry_date)}"
        else:
            assert pupil.leaving_date is not None  # not on roll and not yet started: left
            when = f"left on {_day(pupil.leaving_date)}"
        return f"{self._describe(entry)} {when}"

    def _school_name(self, urn: int) -> str:
        name = self._school_names.get(urn)
        if name is None:
            establishment = self._directory.establishment(urn)
            name = establishment.name if establishment else f"URN {urn} (not in GIAS)"
            self._school_names[urn] = name
        return name


def _roll_name(pupil: Pupil) -> str:
    legal = f"{pupil.legal_forename} {pupil.legal_surname}".strip()
    forename = pupil.preferred_forename or pupil.legal_forename
    known = f"{forename} {pupil.preferred_surname or pupil.legal_surname}".strip()
    return legal if known == legal else f"{legal} (known as {known})"


def _day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def _count(number: int) -> str:
    return {2: "two", 3: "three", 4: "four", 5: "five"}.get(number, str(number))


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"

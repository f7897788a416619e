"""The protocol's rules: one outcome for each child, from the match, the school and the calendar.

`decide` is a pure function. Its order is the order of the protocol's questions, so the
first rule that applies gives the outcome and nothing is decided twice:

1. the police's row could not be read          -> exception invalid_row
2. no date of birth                             -> exception no_dob
3. 18 or over on the incident date              -> exception adult
4. found on no roll: under compulsory school age -> withhold ("no known setting");
   of school age or 16-17                       -> exception no_match
5. more than one possible pupil / the roll and the police disagree
                                                -> exception ambiguous / school_conflict
6. the matched school: not in GIAS / closed     -> exception unknown/closed_establishment;
   outside the area                             -> withhold; early years in a telephone
   LA -> telephone; otherwise the school calendar: open -> notify (due); closed ->
   withhold or defer per `closed_school`, with a manager alert for High risk either way.

The settings come from rules/routing.toml (see it for each key); the defaults here are the
2019 Cambridgeshire and Peterborough protocol.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from gateway.calendar import Due, SchoolCalendar
from gateway.clock import LONDON
from gateway.errors import RulesError
from gateway.model import (
    ChildRecord,
    Decision,
    Establishment,
    ExceptionKind,
    Incident,
    MatchResult,
    MatchStatus,
    Outcome,
    Risk,
)
from gateway.validation import Strict, load_toml_model


class EarlyYears(Strict):
    """What makes a GIAS establishment an early-years setting (any one criterion suffices)."""

    phases: tuple[str, ...] = ("Nursery",)  # GIAS "PhaseOfEducation (name)"
    types: tuple[str, ...] = ("Local authority nursery school",)  # "TypeOfEstablishment (name)"
    max_statutory_high_age: int | None = Field(default=5, ge=0)  # "StatutoryHighAge" <= this

    def includes(self, establishment: Establishment) -> bool:
        phases = {phase.casefold() for phase in self.phases}
        types = {kind.casefold() for kind in self.types}
        high_age = establishment.statutory_high_age
        return (
            establishment.phase_name.casefold() in phases
            or establishment.type_name.casefold() in types
            or (
                self.max_statutory_high_age is not None
                and high_age is not None
                and high_age <= self.max_statutory_high_age
            )
        )


class RoutingPolicy(Strict):
    """rules/routing.toml: what the protocol leaves to the area. Defaults: the 2019 protocol."""

    closed_school: Literal["withhold", "defer"] = "withhold"
    area_la_codes: tuple[int, ...] = Field(default=(873, 874), min_length=1)
    telephone_early_years_la_codes: tuple[int, ...] = (873,)
    early_years: EarlyYears = EarlyYears()
    adult_age: int = Field(default=18, ge=1)
    compulsory_school_age: int = Field(default=5, ge=0)
    template: Literal["full", "minimal"] = "full"

    @field_validator("telephone_early_years_la_codes")
    @classmethod
    def _telephone_las_in_area(
        cls, codes: tuple[int, ...], info: ValidationInfo
    ) -> tuple[int, ...]:
        outside = sorted(set(codes) - set(info.data.get("area_la_codes", codes)))
        if outside:
            raise ValueError(f"{outside} not in area_la_codes, so never reached")
        return codes

    @field_validator("compulsory_school_age")
    @classmethod
    def _below_adult_age(cls, age: int, info: ValidationInfo) -> int:
        if age >= info.data.get("adult_age", age + 1):
            raise ValueError("must be below adult_age")
        return age


def load_routing_policy(rules_dir: Path) -> RoutingPolicy:
    """rules_dir/routing.toml; RulesError naming the file, key and allowed values."""
    return load_toml_model(rules_dir / "routing.toml", RoutingPolicy, RulesError)


def age_on(dob: date, day: date) -> int:
    """Age in whole years on `day`; someone born on 29 February has a birthday on 1 March."""
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


def decide(
    incident: Incident,
    child: ChildRecord,
    match: MatchResult,
    establishment: Establishment | None,
    *,
    calendar: SchoolCalendar,
    policy: RoutingPolicy,
    arrival: datetime,
) -> Decision:
    """The one outcome for `child` of `incident`, for a report that arrived at `arrival`."""
    if arrival.utcoffset() is None:
        raise ValueError("decide needs a timezone-aware arrival instant")
    # Every outcome starts from this, so the match's candidates always travel with the child.
    base = Decision(
        incident.ref,
        child,
        Outcome.EXCEPTION,
        "",
        candidates=match.candidates,
        incident_at=incident.occurred_at,
        incident_time_known=incident.time_known,
    )

    def exception(kind: ExceptionKind, reason: str) -> Decision:
        # `base` is looked up when called: once the school is known, exceptions name it.
        return replace(base, reason=reason, exception_kind=kind)

    problems = (*incident.problems, *child.problems)
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        return exception(ExceptionKind.INVALID_ROW, f"The police's row could not be read: {listed}")
    if child.dob is None:
        return exception(
            ExceptionKind.NO_DOB,
            "No date of birth was given, so the child cannot be matched to a school safely.",
        )
    day = _incident_day(incident, arrival)
    age = age_on(child.dob, day)
    if age < 0:
        return exception(
            ExceptionKind.INVALID_ROW,
            f"The date of birth {child.dob:%d/%m/%Y} is after the incident date {day:%d/%m/%Y}.",
        )
    if age >= policy.adult_age:
        return exception(
            ExceptionKind.ADULT,
            f"Aged {age} on the incident date ({day:%d/%m/%Y}): an adult, not a child."
            " Check the date of birth with the police.",
        )

    if match.status is MatchStatus.NO_CANDIDATE:
        if age < policy.compulsory_school_age:
            return replace(
                base,
                outcome=Outcome.WITHHOLD,
                reason=f"No known setting: {_aged(age)}, under school age, and on no school or"
                " nursery roll.",
            )
        return exception(
            ExceptionKind.NO_MATCH,
            f"{_aged(age).capitalize()}, of school age, and found on no school roll."
            f" Matching: {match.reason}",
        )
    if match.status is MatchStatus.AMBIGUOUS:
        return exception(
            ExceptionKind.AMBIGUOUS,
            f"More than one pupil could be this child. Matching: {match.reason}",
        )
    if match.status is MatchStatus.CONFLICT:
        return exception(
            ExceptionKind.SCHOOL_CONFLICT,
            f"The pupil roll and the police name different schools. Matching: {match.reason}",
        )

    if match.urn is None or establishment is None or establishment.urn != match.urn:
        if establishment is None:
            reason = (
                f"The pupil roll places the child at URN {match.urn}, which is not in the GIAS"
                " establishment list: find the child's current school."
            )
        else:
            # A school record that is not the matched one is never used: that is how a
            # child's details would reach the wrong school.
            reason = (
                f"The school record given (URN {establishment.urn}) is not the matched school"
                f" (URN {match.urn}); nothing is sent until the Navigator checks."
            )
        return replace(
            exception(ExceptionKind.UNKNOWN_ESTABLISHMENT, reason),
            urn=match.urn,
            school_name=_candidate_school(match),
        )
    base = replace(base, urn=establishment.urn, school_name=establishment.name)
    school = f"{establishment.name} (URN {establishment.urn})"
    if not establishment.is_open:
        since = f" since {establishment.close_date:%d/%m/%Y}" if establishment.close_date else ""
        return exception(
            ExceptionKind.CLOSED_ESTABLISHMENT,
            f"The pupil roll places the child at {school}, which GIAS lists as"
            f" {establishment.status_name or 'closed'}{since}: find the child's current school.",
        )
    if establishment.la_code not in policy.area_la_codes:
        area = ", ".join(str(code) for code in policy.area_la_codes)
        return replace(
            base,
            outcome=Outcome.WITHHOLD,
            reason=f"Out of area: {school} is in {establishment.la_name or 'another LA'}"
            f" (LA {establishment.la_code}), outside this area (LA {area}); not notified under"
            " the protocol. The Navigator may pass it to that area's police.",
        )

    due = calendar.due_for(arrival, urn=establishment.urn, la_code=establishment.la_code)
    if (
        establishment.la_code in policy.telephone_early_years_la_codes
        and policy.early_years.includes(establishment)
    ):
        number = (
            f"on {establishment.telephone}"
            if establishment.telephone
            else "(GIAS has no number for it: find the setting's number)"
        )
        base = replace(base, outcome=Outcome.TELEPHONE, telephone=establishment.telephone)
        action = f"{school} is an early-years setting: telephone its DSL {number}"
    else:
        base = replace(base, outcome=Outcome.NOTIFY)
        action = f"Notify {school}"
    return _by_calendar(base, action, due, arrival, incident.risk, policy)


def _by_calendar(
    base: Decision,
    action: str,
    due: Due,
    arrival: datetime,
    risk: Risk | None,
    policy: RoutingPolicy,
) -> Decision:
    """Notify or telephone (`base.outcome`) when the school is open; otherwise per policy."""
    unknown_dates = (
        " The school's term dates are not known that far ahead, so it was treated as open."
        if due.assumed_open
        else ""
    )
    if due.at is not None:
        when = (
            "at once: the report arrived during the school day"
            if due.at == arrival
            else f"by {_moment(due.at)}"
        )
        return replace(base, reason=f"{action} {when}.{unknown_dates}", due=due.at)

    assert due.reopens is not None  # a closed Due always says when the school reopens
    # A risk the police did not give could be High: while the school is closed nobody else
    # will see the incident, so the manager is told rather than the gap being guessed away.
    alert = risk is Risk.HIGH or risk is None
    alerted = (
        f" {'High risk' if risk else 'Risk not given'}: the Education Safeguarding Manager is"
        " alerted now."
        if alert
        else ""
    )
    closed = f"{base.school_name} is closed ({due.closed_for}) until {_moment(due.reopens)}"
    if policy.closed_school == "withhold":
        return replace(
            base,
            outcome=Outcome.WITHHOLD,
            telephone="",
            reason=f"{closed}: not sent, as the protocol withholds notifications while a school"
            f" is closed.{alerted}{unknown_dates}",
            manager_alert=alert,
        )
    return replace(
        base,
        reason=f"{closed}: deferred to the first day back. {action} by {_moment(due.reopens)}."
        f"{alerted}{unknown_dates}",
        due=due.reopens,
        manager_alert=alert,
    )


def _incident_day(incident: Incident, arrival: datetime) -> date:
    # Ages are judged on the incident's own London date; when the police gave no date, the
    # arrival's is the nearest one known.
    when = incident.occurred_at if incident.occurred_at is not None else arrival
    if when.utcoffset() is None:
        return when.date()
    return when.astimezone(LONDON).date()


def _candidate_school(match: MatchResult) -> str:
    return next((c.school_name for c in match.candidates if c.urn == match.urn), "")


def _aged(age: int) -> str:
    return "aged under 1" if age == 0 else f"aged {age}"


def _moment(instant: datetime) -> str:
    local = instant.astimezone(LONDON)
    return f"{local:%H:%M} on {local:%A} {local.day} {local:%B %Y}"

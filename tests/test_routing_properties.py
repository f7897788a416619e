"""Properties of the rules over generated children, matches, schools and arrival times."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from term_dates import write_rules

from gateway.calendar import SchoolCalendar, load_calendar
from gateway.clock import LONDON
from gateway.model import (
    Candidate,
    CellProblem,
    ChildRecord,
    Decision,
    Establishment,
    ExceptionKind,
    Incident,
    MatchResult,
    MatchStatus,
    Outcome,
    Risk,
    SourceRow,
)
from gateway.routing import RoutingPolicy, age_on, decide

REPO_RULES = Path(__file__).resolve().parents[1] / "rules"
ACADEMY_URN = 137001  # has its own term dates (the shipped example) in both calendars
URNS = [110001, 110002, ACADEMY_URN]
NINE = time(9, 0)
T = TypeVar("T")


@pytest.fixture(scope="module", params=["test-dates", "shipped-dates"])
def calendar(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SchoolCalendar:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "test-dates":
        rules = write_rules(root)
    else:
        rules = root / "rules"
        shutil.copytree(REPO_RULES, rules)
    example = REPO_RULES / "calendars" / "schools" / "example-academy.toml.example"
    shutil.copy(example, rules / "calendars" / "schools" / f"{ACADEMY_URN}.toml")
    return load_calendar(rules)


instants = st.datetimes(
    min_value=datetime(2025, 6, 1),
    max_value=datetime(2029, 12, 31),
    timezones=st.sampled_from([UTC, LONDON]),
    allow_imaginary=False,
)
problem = st.builds(
    CellProblem,
    file=st.just("day.xlsx"),
    sheet=st.just("Incidents"),
    row=st.integers(2, 500),
    column=st.sampled_from(["DOB", "Risk", "Incident Date"]),
    value=st.text(max_size=10),
    message=st.just("not readable"),
)
establishments = st.builds(
    Establishment,
    urn=st.sampled_from(URNS),
    name=st.sampled_from(["Histon Fen Primary School", "Chesterton Nursery School"]),
    la_code=st.sampled_from([873, 874, 926]),
    la_name=st.sampled_from(["Cambridgeshire", "Peterborough", "Norfolk", ""]),
    type_name=st.sampled_from(
        ["Community school", "Academy converter", "Local authority nursery school"]
    ),
    phase_name=st.sampled_from(["Primary", "Secondary", "Nursery", "Not applicable"]),
    status_name=st.sampled_from(["Open", "Closed"]),
    is_open=st.integers(0, 7).map(bool),  # closed one time in eight
    telephone=st.sampled_from(["", "01223 100001"]),
    statutory_high_age=st.none() | st.integers(3, 19),
)
candidates = st.lists(
    st.builds(
        Candidate,
        urn=st.sampled_from(URNS),
        school_name=st.just("Histon Fen Primary School"),
        upn=st.just("A123456789012"),
        score=st.floats(0, 100),
    ),
    max_size=3,
).map(tuple)


def rarely(strategy: st.SearchStrategy[T], otherwise: T) -> st.SearchStrategy[T]:
    """`strategy` one time in eight, else `otherwise`: keeps most cases on the main road."""
    return st.integers(0, 7).flatmap(lambda roll: strategy if roll == 0 else st.just(otherwise))


@dataclass(frozen=True)
class Case:
    incident: Incident
    child: ChildRecord
    match: MatchResult
    school: Establishment | None
    arrival: datetime


@st.composite
def cases(draw: st.DrawFn) -> Case:
    # Mostly children of the ages police report (unborn to 19), mostly clean rows, mostly a
    # match consistent with the school record: the rare branches still come up, and the
    # path to a school is exercised hard enough to show any way round the rules.
    arrival = draw(instants)
    occurred_at = draw(rarely(st.none(), arrival - timedelta(hours=draw(st.integers(0, 72)))))
    age_days = draw(st.integers(-1, 19)) * 365 + draw(st.integers(0, 364))
    kid = ChildRecord(
        "Sam",
        "Example",
        draw(rarely(st.none(), arrival.date() - timedelta(days=age_days))),
        SourceRow("day.xlsx", "Incidents", 2),
        problems=draw(rarely(st.tuples(problem), ())),
    )
    incident = Incident(
        "REF-1",
        occurred_at,
        draw(st.none() | st.sampled_from(Risk)),
        None,
        (kid,),
        problems=draw(rarely(st.tuples(problem), ())),
    )
    school = draw(rarely(st.none(), draw(establishments)))
    status = draw(rarely(st.sampled_from(MatchStatus), MatchStatus.MATCHED))
    urn = draw(rarely(st.none() | st.sampled_from(URNS), school.urn if school else None))
    match = MatchResult(status, urn, draw(candidates), "as scored")
    return Case(incident, kid, match, school, arrival)


policies = st.builds(RoutingPolicy, closed_school=st.sampled_from(["withhold", "defer"]))


def is_nine_on_a_school_day(
    calendar: SchoolCalendar, instant: datetime, school: Establishment
) -> bool:
    local = instant.astimezone(LONDON)
    return local.time() == NINE and calendar.is_school_day(
        local.date(), urn=school.urn, la_code=school.la_code
    )


@settings(max_examples=600, deadline=None)
@given(case=cases(), policy=policies)
def test_every_child_gets_exactly_one_outcome_with_its_required_fields(
    calendar: SchoolCalendar, case: Case, policy: RoutingPolicy
) -> None:
    school, match, arrival, risk = case.school, case.match, case.arrival, case.incident.risk
    decision = decide(
        case.incident, case.child, match, school, calendar=calendar, policy=policy, arrival=arrival
    )

    assert isinstance(decision, Decision) and decision.outcome in Outcome
    assert decision.reason.strip() and decision.candidates == match.candidates
    if decision.outcome is Outcome.EXCEPTION:
        assert decision.exception_kind in ExceptionKind
    else:
        assert decision.exception_kind is None
    if decision.outcome in (Outcome.NOTIFY, Outcome.TELEPHONE):
        # The one road to a school: matched, that very establishment, open, in the area.
        assert school is not None and match.status is MatchStatus.MATCHED
        assert decision.urn == match.urn == school.urn
        assert school.is_open and school.la_code in policy.area_la_codes
        assert not case.child.problems and not case.incident.problems
        incident_day = (case.incident.occurred_at or arrival).astimezone(LONDON).date()
        assert case.child.dob is not None
        assert 0 <= age_on(case.child.dob, incident_day) < policy.adult_age
        assert decision.due is not None and decision.due.utcoffset() is not None
        assert decision.due >= arrival
        assert decision.due == arrival or is_nine_on_a_school_day(calendar, decision.due, school)
    else:
        assert decision.due is None
    if decision.outcome is Outcome.TELEPHONE:
        assert school is not None and decision.telephone == school.telephone
        assert decision.telephone or "GIAS has no number" in decision.reason
    else:
        assert decision.telephone == ""
    if decision.manager_alert:
        assert risk in (Risk.HIGH, None) and "closed" in decision.reason
        assert decision.outcome in (Outcome.WITHHOLD, Outcome.NOTIFY, Outcome.TELEPHONE)


@settings(max_examples=400, deadline=None)
@given(arrival=instants, urn=st.sampled_from(URNS), la_code=st.sampled_from([873, 874, 926]))
def test_a_due_time_is_nine_on_a_school_day_or_the_arrival_and_never_before_it(
    calendar: SchoolCalendar, arrival: datetime, urn: int, la_code: int
) -> None:
    due = calendar.due_for(arrival, urn=urn, la_code=la_code)
    local = arrival.astimezone(LONDON)
    arrival_day = local.date()
    if due.closed:
        assert due.reopens is not None and due.reopens > arrival and due.closed_for
        reopens = due.reopens.astimezone(LONDON)
        assert reopens.time() == NINE
        assert calendar.is_school_day(reopens.date(), urn=urn, la_code=la_code)
        return
    assert due.at is not None and due.at >= arrival
    at = due.at.astimezone(LONDON)
    if due.at == arrival:
        assert local.time() >= NINE
    else:
        assert at.time() == NINE
    assert calendar.is_school_day(at.date(), urn=urn, la_code=la_code)
    # And it is the first: no school day was passed over on the way.
    day = arrival_day + timedelta(days=0 if local.time() < NINE else 1)
    while day < at.date():
        assert not calendar.is_school_day(day, urn=urn, la_code=la_code), day
        day += timedelta(days=1)

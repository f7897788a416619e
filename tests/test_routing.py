"""The protocol's rules: one outcome for each child."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
from term_dates import write_rules

from gateway.calendar import SchoolCalendar, load_calendar
from gateway.clock import LONDON
from gateway.errors import RulesError
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
from gateway.routing import RoutingPolicy, age_on, decide, load_routing_policy

REPO_RULES = Path(__file__).resolve().parents[1] / "rules"
PRIMARY = Establishment(
    urn=110001,
    name="Histon Fen Primary School",
    la_code=873,
    la_name="Cambridgeshire",
    type_name="Community school",
    phase_name="Primary",
    status_name="Open",
    is_open=True,
    telephone="01223 100001",
    statutory_low_age=4,
    statutory_high_age=11,
)
NURSERY = replace(
    PRIMARY,
    urn=110002,
    name="Chesterton Nursery School",
    type_name="Local authority nursery school",
    phase_name="Nursery",
    telephone="01223 100002",
    statutory_low_age=2,
    statutory_high_age=5,
)
SATURDAY_MORNING = datetime(2025, 11, 15, 7, 30, tzinfo=LONDON)
FRIDAY_NIGHT = datetime(2025, 11, 14, 22, 15, tzinfo=LONDON)


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def child(dob: date | None = date(2016, 3, 4), **changes: object) -> ChildRecord:
    record = ChildRecord("Ava", "Example", dob, SourceRow("day.xlsx", "Incidents", 5))
    return replace(record, **changes)  # type: ignore[arg-type]


def incident(
    kid: ChildRecord,
    *,
    occurred_at: datetime | None = FRIDAY_NIGHT,
    risk: Risk | None = Risk.STANDARD,
) -> Incident:
    return Incident("CC-20251114-0042", occurred_at, risk, None, (kid,))


def matched(school: Establishment) -> MatchResult:
    candidate = Candidate(school.urn, school.name, "A123456789012", 97.0, ("dob", "surname"))
    return MatchResult(MatchStatus.MATCHED, school.urn, (candidate,), "one clear candidate")


NOBODY = MatchResult(MatchStatus.NO_CANDIDATE, None, (), "no pupil born on that date")


@pytest.fixture
def calendar(tmp_path: Path) -> SchoolCalendar:
    return load_calendar(write_rules(tmp_path))


def route(
    calendar: SchoolCalendar,
    *,
    kid: ChildRecord | None = None,
    school: Establishment | None = PRIMARY,
    match: MatchResult | None = None,
    arrival: datetime = SATURDAY_MORNING,
    policy: RoutingPolicy | None = None,
    risk: Risk | None = Risk.STANDARD,
    occurred_at: datetime | None = FRIDAY_NIGHT,
) -> Decision:
    kid = kid or child()
    if match is None:
        assert school is not None
        match = matched(school)
    return decide(
        incident(kid, occurred_at=occurred_at, risk=risk),
        kid,
        match,
        school,
        calendar=calendar,
        policy=policy or RoutingPolicy(),
        arrival=arrival,
    )


# ---- when a notification is due --------------------------------------------------------


def test_friday_incident_goes_on_monday(calendar: SchoolCalendar) -> None:
    decision = route(calendar)
    assert decision.outcome is Outcome.NOTIFY
    assert (decision.urn, decision.school_name) == (PRIMARY.urn, PRIMARY.name)
    assert decision.due == london("2025-11-17 09:00")
    assert "09:00 on Monday 17 November 2025" in decision.reason


def test_bank_holiday_monday_goes_on_tuesday(calendar: SchoolCalendar) -> None:
    decision = route(calendar, arrival=london("2026-05-02 08:00"))
    assert (decision.outcome, decision.due) == (Outcome.NOTIFY, london("2026-05-05 09:00"))


def test_arrival_1015_on_school_day_due_at_once(calendar: SchoolCalendar) -> None:
    arrival = london("2025-11-12 10:15")
    decision = route(calendar, arrival=arrival)
    assert (decision.outcome, decision.due) == (Outcome.NOTIFY, arrival)
    assert "at once" in decision.reason


def test_october_clock_change_due_0900_greenwich_time(calendar: SchoolCalendar) -> None:
    decision = route(calendar, arrival=london("2025-10-25 11:00"))  # Saturday, summer time
    assert decision.due is not None
    assert decision.due.utcoffset() is not None and decision.due.isoformat() == (
        "2025-10-27T09:00:00+00:00"
    )


def test_march_clock_change_due_0900_summer_time(calendar: SchoolCalendar) -> None:
    decision = route(calendar, arrival=london("2026-03-28 11:00"))  # Saturday, winter time
    assert decision.due is not None and decision.due.isoformat() == "2026-03-30T09:00:00+01:00"


def test_inset_day_delays_the_notification_and_withholds_nothing(
    calendar: SchoolCalendar,
) -> None:
    decision = route(calendar, arrival=london("2026-03-07 08:00"))  # INSET on Monday 9 March
    assert (decision.outcome, decision.due) == (Outcome.NOTIFY, london("2026-03-10 09:00"))


def test_beyond_the_term_dates_the_school_is_treated_as_open_and_the_reason_says_so(
    calendar: SchoolCalendar,
) -> None:
    decision = route(calendar, arrival=london("2026-09-05 12:00"))
    assert (decision.outcome, decision.due) == (Outcome.NOTIFY, london("2026-09-07 09:00"))
    assert "term dates are not known" in decision.reason


# ---- school closed -----------------------------------------------------------------------

HALF_TERM_SATURDAY = london("2026-02-14 08:00")  # half term 16-20 February


def test_half_term_is_withheld(calendar: SchoolCalendar) -> None:
    decision = route(calendar, arrival=HALF_TERM_SATURDAY)
    assert decision.outcome is Outcome.WITHHOLD
    assert (decision.urn, decision.due, decision.manager_alert) == (PRIMARY.urn, None, False)
    assert "closed (February half term 2026) until 09:00 on Monday 23 February" in decision.reason


def test_high_risk_in_half_term_alerts_manager(calendar: SchoolCalendar) -> None:
    decision = route(calendar, arrival=HALF_TERM_SATURDAY, risk=Risk.HIGH)
    assert (decision.outcome, decision.manager_alert) == (Outcome.WITHHOLD, True)
    assert "Education Safeguarding Manager" in decision.reason


def test_unknown_risk_in_half_term_alerts_manager(calendar: SchoolCalendar) -> None:
    decision = route(calendar, arrival=HALF_TERM_SATURDAY, risk=None)
    assert (decision.outcome, decision.manager_alert) == (Outcome.WITHHOLD, True)
    assert "Risk not given" in decision.reason


def test_defer_policy_sends_on_first_day_back(calendar: SchoolCalendar) -> None:
    decision = route(
        calendar, arrival=HALF_TERM_SATURDAY, policy=RoutingPolicy(closed_school="defer")
    )
    assert (decision.outcome, decision.due) == (Outcome.NOTIFY, london("2026-02-23 09:00"))
    assert "deferred" in decision.reason and not decision.manager_alert


def test_high_risk_deferred_still_alerts_manager(calendar: SchoolCalendar) -> None:
    policy = RoutingPolicy(closed_school="defer")
    decision = route(calendar, arrival=HALF_TERM_SATURDAY, policy=policy, risk=Risk.HIGH)
    assert (decision.outcome, decision.manager_alert) == (Outcome.NOTIFY, True)


def test_high_risk_while_the_school_is_open_is_a_notification_without_alert(
    calendar: SchoolCalendar,
) -> None:
    decision = route(calendar, risk=Risk.HIGH)
    assert (decision.outcome, decision.manager_alert) == (Outcome.NOTIFY, False)


# ---- early years ----------------------------------------------------------------------------


def test_early_years_in_873_is_a_telephone_task(calendar: SchoolCalendar) -> None:
    decision = route(calendar, kid=child(date(2022, 6, 1)), school=NURSERY)
    assert decision.outcome is Outcome.TELEPHONE
    assert (decision.urn, decision.telephone) == (NURSERY.urn, "01223 100002")
    assert decision.due == london("2025-11-17 09:00")
    assert "telephone its DSL on 01223 100002" in decision.reason


def test_early_years_in_874_is_notified(calendar: SchoolCalendar) -> None:
    peterborough = replace(NURSERY, la_code=874, la_name="Peterborough")
    decision = route(calendar, kid=child(date(2022, 6, 1)), school=peterborough)
    assert (decision.outcome, decision.telephone) == (Outcome.NOTIFY, "")


@pytest.mark.parametrize(
    "setting",
    [
        replace(NURSERY, phase_name="Not applicable"),  # by type
        replace(NURSERY, type_name="Academy converter"),  # by phase
        replace(PRIMARY, phase_name="Not applicable", statutory_high_age=4),  # by age range
    ],
    ids=["type", "phase", "age-range"],
)
def test_early_years_is_recognised_by_type_phase_or_age_range(
    calendar: SchoolCalendar, setting: Establishment
) -> None:
    assert route(calendar, school=setting).outcome is Outcome.TELEPHONE


def test_a_primary_school_with_a_nursery_class_is_emailed(calendar: SchoolCalendar) -> None:
    with_nursery = replace(PRIMARY, statutory_low_age=2)
    assert route(calendar, kid=child(date(2022, 6, 1)), school=with_nursery).outcome is (
        Outcome.NOTIFY
    )


def test_early_years_setting_without_a_number_says_to_find_it(calendar: SchoolCalendar) -> None:
    decision = route(calendar, school=replace(NURSERY, telephone=""))
    assert (decision.outcome, decision.telephone) == (Outcome.TELEPHONE, "")
    assert "GIAS has no number" in decision.reason


def test_early_years_in_half_term_is_withheld_with_no_call(calendar: SchoolCalendar) -> None:
    decision = route(calendar, school=NURSERY, arrival=HALF_TERM_SATURDAY)
    assert (decision.outcome, decision.telephone) == (Outcome.WITHHOLD, "")


def test_early_years_deferred_is_a_call_on_the_first_day_back(calendar: SchoolCalendar) -> None:
    policy = RoutingPolicy(closed_school="defer")
    decision = route(calendar, school=NURSERY, arrival=HALF_TERM_SATURDAY, policy=policy)
    assert (decision.outcome, decision.due) == (Outcome.TELEPHONE, london("2026-02-23 09:00"))
    assert decision.telephone == NURSERY.telephone


# ---- the school -----------------------------------------------------------------------------


def test_out_of_area_is_withheld(calendar: SchoolCalendar) -> None:
    norfolk = replace(PRIMARY, urn=120001, name="Downham Primary", la_code=926, la_name="Norfolk")
    decision = route(calendar, school=norfolk)
    assert (decision.outcome, decision.urn, decision.due) == (Outcome.WITHHOLD, 120001, None)
    assert "Out of area" in decision.reason and "Norfolk (LA 926)" in decision.reason


def test_closed_establishment_is_an_exception(calendar: SchoolCalendar) -> None:
    closed = replace(PRIMARY, is_open=False, status_name="Closed", close_date=date(2024, 8, 31))
    decision = route(calendar, school=closed)
    assert decision.exception_kind is ExceptionKind.CLOSED_ESTABLISHMENT
    assert (decision.outcome, decision.urn, decision.due) == (Outcome.EXCEPTION, PRIMARY.urn, None)
    assert "Closed since 31/08/2024" in decision.reason


def test_school_missing_from_gias_is_an_exception(calendar: SchoolCalendar) -> None:
    decision = route(calendar, school=None, match=matched(PRIMARY))
    assert decision.exception_kind is ExceptionKind.UNKNOWN_ESTABLISHMENT
    assert (decision.urn, decision.school_name) == (PRIMARY.urn, PRIMARY.name)


def test_an_establishment_other_than_the_matched_school_is_never_used(
    calendar: SchoolCalendar,
) -> None:
    decision = route(calendar, school=NURSERY, match=matched(PRIMARY))
    assert (decision.outcome, decision.exception_kind) == (
        Outcome.EXCEPTION,
        ExceptionKind.UNKNOWN_ESTABLISHMENT,
    )
    assert decision.urn == PRIMARY.urn and decision.due is None
    assert "is not the matched school" in decision.reason


# ---- the child ------------------------------------------------------------------------------


def test_eighteen_year_old_is_an_exception(calendar: SchoolCalendar) -> None:
    eighteen_that_day = child(date(2007, 11, 14))
    decision = route(calendar, kid=eighteen_that_day)
    assert (decision.outcome, decision.exception_kind) == (Outcome.EXCEPTION, ExceptionKind.ADULT)
    assert "Aged 18" in decision.reason


def test_seventeen_year_old_is_not_an_exception(calendar: SchoolCalendar) -> None:
    eighteen_the_next_day = child(date(2007, 11, 15))
    assert route(calendar, kid=eighteen_the_next_day).outcome is Outcome.NOTIFY


def test_age_is_judged_on_the_incident_date_not_the_arrival(calendar: SchoolCalendar) -> None:
    eighteen_on_arrival_day = child(date(2007, 11, 15))
    decision = route(calendar, kid=eighteen_on_arrival_day, arrival=london("2025-11-15 07:00"))
    assert decision.outcome is Outcome.NOTIFY


def test_without_an_incident_date_age_is_judged_on_arrival(calendar: SchoolCalendar) -> None:
    eighteen_on_arrival_day = child(date(2007, 11, 15))
    decision = route(calendar, kid=eighteen_on_arrival_day, occurred_at=None)
    assert decision.exception_kind is ExceptionKind.ADULT


def test_toddler_found_nowhere_is_withheld_no_known_setting(calendar: SchoolCalendar) -> None:
    decision = route(calendar, kid=child(date(2023, 5, 1)), match=NOBODY)
    assert (decision.outcome, decision.urn, decision.exception_kind) == (
        Outcome.WITHHOLD,
        None,
        None,
    )
    assert decision.reason.startswith("No known setting")


def test_baby_found_nowhere_is_withheld_no_known_setting(calendar: SchoolCalendar) -> None:
    decision = route(calendar, kid=child(date(2025, 9, 30)), match=NOBODY)
    assert decision.outcome is Outcome.WITHHOLD and "aged under 1" in decision.reason


@pytest.mark.parametrize("dob", [date(2015, 2, 1), date(2020, 11, 14), date(2008, 6, 1)])
def test_school_age_child_found_nowhere_is_an_exception(
    calendar: SchoolCalendar, dob: date
) -> None:
    decision = route(calendar, kid=child(dob), match=NOBODY)
    assert (decision.outcome, decision.exception_kind) == (
        Outcome.EXCEPTION,
        ExceptionKind.NO_MATCH,
    )
    assert "no pupil born on that date" in decision.reason


def test_no_dob_is_an_exception(calendar: SchoolCalendar) -> None:
    decision = route(calendar, kid=child(None), match=NOBODY)
    assert decision.exception_kind is ExceptionKind.NO_DOB


def test_a_dob_after_the_incident_is_an_exception(calendar: SchoolCalendar) -> None:
    decision = route(calendar, kid=child(date(2026, 1, 1)), match=NOBODY)
    assert decision.exception_kind is ExceptionKind.INVALID_ROW
    assert "after the incident date" in decision.reason


def test_row_with_problems_is_an_exception_listing_them(calendar: SchoolCalendar) -> None:
    problem = CellProblem("day.xlsx", "Incidents", 5, "DOB", "31/02/2015", "not a date")
    decision = route(calendar, kid=child(None, problems=(problem,)))
    assert decision.exception_kind is ExceptionKind.INVALID_ROW
    assert "row 5, column 'DOB': value '31/02/2015': not a date" in decision.reason


def test_incident_problems_make_each_child_an_exception(calendar: SchoolCalendar) -> None:
    problem = CellProblem("day.xlsx", "Incidents", 5, "Risk", "purple", "not a DASH risk")
    kid = child()
    broken = replace(incident(kid), problems=(problem,))
    decision = decide(
        broken,
        kid,
        matched(PRIMARY),
        PRIMARY,
        calendar=calendar,
        policy=RoutingPolicy(),
        arrival=SATURDAY_MORNING,
    )
    assert decision.exception_kind is ExceptionKind.INVALID_ROW
    assert "not a DASH risk" in decision.reason


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (MatchStatus.AMBIGUOUS, ExceptionKind.AMBIGUOUS),
        (MatchStatus.CONFLICT, ExceptionKind.SCHOOL_CONFLICT),
    ],
)
def test_uncertain_match_is_an_exception_with_its_candidates(
    calendar: SchoolCalendar, status: MatchStatus, kind: ExceptionKind
) -> None:
    twins = (
        Candidate(110001, "Histon Fen Primary School", "A123456789012", 91.0),
        Candidate(110001, "Histon Fen Primary School", "B123456789012", 90.0),
    )
    match = MatchResult(status, None, twins, "two pupils score within 5 points")
    decision = route(calendar, match=match)
    assert (decision.outcome, decision.exception_kind, decision.candidates) == (
        Outcome.EXCEPTION,
        kind,
        twins,
    )
    assert decision.due is None and "two pupils score within 5 points" in decision.reason


def test_age_on_counts_whole_years_and_leap_day_birthdays() -> None:
    assert age_on(date(2010, 2, 28), date(2028, 2, 28)) == 18
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


def test_naive_arrival_is_refused(calendar: SchoolCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        route(calendar, arrival=datetime(2025, 11, 15, 7, 30))


# ---- rules/routing.toml ----------------------------------------------------------------------


def test_shipped_routing_rules_are_the_2019_protocol() -> None:
    policy = load_routing_policy(REPO_RULES)
    assert policy == RoutingPolicy()
    assert (policy.closed_school, policy.area_la_codes) == ("withhold", (873, 874))
    assert policy.telephone_early_years_la_codes == (873,)


def write_routing(tmp_path: Path, text: str) -> Path:
    (tmp_path / "routing.toml").write_text(text)
    return tmp_path


def test_unknown_closed_school_value_names_file_key_and_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as raised:
        load_routing_policy(write_routing(tmp_path, 'closed_school = "drop"\n'))
    message = str(raised.value)
    assert "routing.toml: closed_school:" in message and "'withhold' or 'defer'" in message


def test_unknown_key_in_routing_rules_names_it_and_the_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"routing\.toml: adult_ages: unknown key.*adult_age"):
        load_routing_policy(write_routing(tmp_path, "adult_ages = 18\n"))


def test_unknown_early_years_key_is_named_with_its_table(tmp_path: Path) -> None:
    text = '[early_years]\nphase = ["Nursery"]\n'
    with pytest.raises(
        RulesError, match=r"early_years\.phase: unknown key; allowed here: .*phases"
    ):
        load_routing_policy(write_routing(tmp_path, text))


def test_telephone_la_outside_the_area_is_refused(tmp_path: Path) -> None:
    text = "area_la_codes = [874]\ntelephone_early_years_la_codes = [873]\n"
    with pytest.raises(RulesError, match=r"telephone_early_years_la_codes: .*not in area_la_codes"):
        load_routing_policy(write_routing(tmp_path, text))


def test_school_age_at_or_above_adult_age_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"compulsory_school_age: .*below adult_age"):
        load_routing_policy(write_routing(tmp_path, "compulsory_school_age = 18\n"))


def test_missing_routing_rules_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"routing\.toml: file not found"):
        load_routing_policy(tmp_path)

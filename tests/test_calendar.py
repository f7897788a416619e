"""The due-time rule and the term calendars it stands on."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from term_dates import ics, write_rules

from gateway.calendar import Due, SchoolCalendar, load_calendar
from gateway.clock import LONDON
from gateway.errors import CalendarError

REPO_RULES = Path(__file__).resolve().parents[1] / "rules"
COUNTY = 873
SCHOOL = 110001  # a maintained school following the LA's dates


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


@pytest.fixture
def calendar(tmp_path: Path) -> SchoolCalendar:
    return load_calendar(write_rules(tmp_path))


def due(calendar: SchoolCalendar, arrival: datetime, urn: int = SCHOOL) -> Due:
    return calendar.due_for(arrival, urn=urn, la_code=COUNTY)


# ---- the due-time rule --------------------------------------------------------------


def test_friday_incident_reported_on_saturday_goes_on_monday(calendar: SchoolCalendar) -> None:
    saturday_morning = london("2025-11-15 07:30")
    assert due(calendar, saturday_morning) == Due(closed=False, at=london("2025-11-17 09:00"))


@pytest.mark.parametrize("arrival", ["2025-11-15 00:10", "2025-11-15 11:00", "2025-11-16 23:59"])
def test_weekend_arrival_goes_on_monday(calendar: SchoolCalendar, arrival: str) -> None:
    assert due(calendar, london(arrival)).at == london("2025-11-17 09:00")


@pytest.mark.parametrize("arrival", ["2025-11-14 09:40", "2025-11-14 19:30"])
def test_friday_arrival_after_0900_is_due_at_once(calendar: SchoolCalendar, arrival: str) -> None:
    assert due(calendar, london(arrival)).at == london(arrival)


def test_bank_holiday_monday_goes_on_tuesday(calendar: SchoolCalendar) -> None:
    assert due(calendar, london("2026-05-02 08:00")).at == london("2026-05-05 09:00")


def test_arrival_1015_on_school_day_due_at_once(calendar: SchoolCalendar) -> None:
    arrival = london("2025-11-12 10:15")
    assert due(calendar, arrival) == Due(closed=False, at=arrival)


def test_arrival_before_0900_on_school_day_due_at_0900_that_day(calendar: SchoolCalendar) -> None:
    assert due(calendar, london("2025-11-12 07:05")).at == london("2025-11-12 09:00")


def test_arrival_at_0900_exactly_is_due_at_once(calendar: SchoolCalendar) -> None:
    assert due(calendar, london("2025-11-12 09:00")).at == london("2025-11-12 09:00")


def test_half_term_school_is_closed_until_first_day_back(calendar: SchoolCalendar) -> None:
    assert due(calendar, london("2026-02-14 08:00")) == Due(
        closed=True, reopens=london("2026-02-23 09:00"), closed_for="February half term 2026"
    )


def test_arrival_during_half_term_is_closed(calendar: SchoolCalendar) -> None:
    result = due(calendar, london("2026-02-18 11:00"))
    assert result.closed and result.reopens == london("2026-02-23 09:00")


def test_holidays_between_terms_are_closed(calendar: SchoolCalendar) -> None:
    result = due(calendar, london("2025-12-23 10:00"))
    assert result == Due(
        closed=True, reopens=london("2026-01-05 09:00"), closed_for="school holidays"
    )


def test_inset_day_is_not_a_school_day_and_sends_on_the_next(calendar: SchoolCalendar) -> None:
    assert not calendar.is_school_day(date(2026, 3, 9), urn=SCHOOL, la_code=COUNTY)
    # An INSET day delays the notification; it does not close the school (nothing withheld).
    assert due(calendar, london("2026-03-07 08:00")) == Due(
        closed=False, at=london("2026-03-10 09:00")
    )


def test_first_day_back_skips_an_inset_day(calendar: SchoolCalendar) -> None:
    result = due(calendar, london("2026-04-04 12:00"))  # Easter holidays, INSET on 20 April
    assert result.closed and result.reopens == london("2026-04-21 09:00")


def test_last_day_of_term_after_0900_is_due_at_once(calendar: SchoolCalendar) -> None:
    arrival = london("2025-12-19 15:00")
    assert due(calendar, arrival).at == arrival


# ---- clock changes ------------------------------------------------------------------


def test_october_clock_change_monday_0900_is_0900_utc(calendar: SchoolCalendar) -> None:
    saturday_summer_time = datetime(2025, 10, 25, 11, 0, tzinfo=UTC)  # 12:00 BST
    result = due(calendar, saturday_summer_time)
    assert result.at == datetime(2025, 10, 27, 9, 0, tzinfo=UTC)
    assert result.at is not None and result.at.astimezone(LONDON).hour == 9


def test_march_clock_change_monday_0900_is_0800_utc(calendar: SchoolCalendar) -> None:
    saturday_winter_time = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # 12:00 GMT
    result = due(calendar, saturday_winter_time)
    assert result.at == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_the_night_of_the_october_change_counts_by_london_date(calendar: SchoolCalendar) -> None:
    # 00:30 UTC on Sunday 26 October is 01:30 BST, before the clocks go back at 02:00 BST.
    assert due(calendar, datetime(2025, 10, 26, 0, 30, tzinfo=UTC)).at == london("2025-10-27 09:00")


def test_late_evening_utc_in_summer_is_the_next_london_day(calendar: SchoolCalendar) -> None:
    # 23:30 UTC on Wednesday 10 June is 00:30 BST on Thursday: not "during the school day".
    result = due(calendar, datetime(2026, 6, 10, 23, 30, tzinfo=UTC))
    assert result.at == london("2026-06-11 09:00")


# ---- days the calendars do not know --------------------------------------------------


def test_dates_beyond_the_term_calendar_are_treated_as_open_and_say_so(
    calendar: SchoolCalendar,
) -> None:
    result = due(calendar, london("2026-09-05 12:00"))  # a Saturday after covers_to
    assert result == Due(closed=False, at=london("2026-09-07 09:00"), assumed_open=True)


def test_a_school_whose_la_has_no_calendar_is_treated_as_open(calendar: SchoolCalendar) -> None:
    result = calendar.due_for(london("2025-10-22 12:00"), urn=SCHOOL, la_code=926)
    assert result == Due(closed=False, at=london("2025-10-22 12:00"), assumed_open=True)


def test_coverage_says_where_each_calendar_runs_out(tmp_path: Path) -> None:
    calendar = load_calendar(write_rules(tmp_path, {"137001.toml": ACADEMY}))
    assert [(c.la_code, c.urn, c.first, c.last) for c in calendar.coverage()] == [
        (873, None, date(2025, 9, 1), date(2026, 8, 31)),
        (874, None, date(2025, 9, 1), date(2026, 8, 31)),
        (None, 137001, date(2025, 10, 1), date(2025, 12, 31)),
    ]


def test_naive_arrival_is_refused(calendar: SchoolCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.due_for(datetime(2025, 11, 12, 10, 15), urn=SCHOOL, la_code=COUNTY)


# ---- bank holidays --------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [date(2025, 12, 25), date(2026, 4, 3), date(2026, 4, 6), date(2026, 12, 28)],
    ids=["christmas", "good-friday", "easter-monday", "boxing-day-observed"],
)
def test_england_bank_holidays_are_not_working_days(calendar: SchoolCalendar, day: date) -> None:
    assert not calendar.is_working_day(day)


def test_weekdays_are_working_days_and_weekends_are_not(calendar: SchoolCalendar) -> None:
    assert calendar.is_working_day(date(2026, 12, 29))
    assert not calendar.is_working_day(date(2026, 1, 3))


# ---- per-school overrides -------------------------------------------------------------

# An academy that took its October break a week after the LA (27-31 Oct 2025).
ACADEMY = """\
urn = 137001
name = "Fen Edge Academy term dates"
covers_from = 2025-10-01
covers_to = 2025-12-31
inset_days = [2025-11-03]

[[terms]]
name = "Autumn term 2025"
start = 2025-10-01
end = 2025-12-19

[[holidays]]
name = "October break"
start = 2025-10-27
end = 2025-10-31
"""


def test_academy_term_dates_replace_the_la_dates(tmp_path: Path) -> None:
    calendar = load_calendar(write_rules(tmp_path, {"137001.toml": ACADEMY}))
    la_half_term = date(2025, 10, 22)
    assert calendar.is_school_day(la_half_term, urn=137001, la_code=COUNTY)
    assert not calendar.is_school_day(la_half_term, urn=SCHOOL, la_code=COUNTY)
    result = calendar.due_for(london("2025-10-25 10:00"), urn=137001, la_code=COUNTY)
    # Closed for its own break; back after its own INSET day on Monday 3 November.
    assert result == Due(
        closed=True, reopens=london("2025-11-04 09:00"), closed_for="October break"
    )


def test_outside_its_own_dates_an_academy_follows_the_la(tmp_path: Path) -> None:
    calendar = load_calendar(write_rules(tmp_path, {"137001.toml": ACADEMY}))
    assert not calendar.is_school_day(date(2026, 2, 17), urn=137001, la_code=COUNTY)
    assert calendar.is_school_day(date(2026, 2, 24), urn=137001, la_code=COUNTY)


ACADEMY_ICS = ics(
    # Monday 27 to Wednesday 29 October: DTEND, Thursday, is exclusive.
    "DTSTART;VALUE=DATE:20251027\nDTEND;VALUE=DATE:20251030\nSUMMARY:October Break",
    "DTSTART;VALUE=DATE:20251103\nSUMMARY:INSET day - school closed to pupils",
    "DTSTART:20251112T120000Z\nDTEND:20251112T150000Z\nSUMMARY:School closed this afternoon",
    "DTSTART;VALUE=DATE:20251117\nSUMMARY:Book fair",
    "DTSTART;VALUE=DATE:20251124\nDURATION:P2D\nSUMMARY:Closure\nCATEGORIES:Polling",
    "DTSTART;VALUE=DATE:20251201\nSUMMARY:Teacher day\nCATEGORIES:Staff,INSET",
    "DTSTART;VALUE=DATE:20251208\nSUMMARY:Holiday\nSTATUS:CANCELLED",
    "DTSTART;VALUE=DATE:20251222\nDTEND;VALUE=DATE:20260105\nSUMMARY:Christmas holidays",
)


@pytest.fixture
def ics_calendar(tmp_path: Path) -> SchoolCalendar:
    return load_calendar(write_rules(tmp_path, {"137002.ics": ACADEMY_ICS}))


def test_ics_holiday_dtend_is_exclusive(ics_calendar: SchoolCalendar) -> None:
    school_days = [
        day
        for day in (date(2025, 10, d) for d in range(27, 32))
        if ics_calendar.is_school_day(day, urn=137002, la_code=COUNTY)
    ]
    assert school_days == [date(2025, 10, 30), date(2025, 10, 31)]
    result = ics_calendar.due_for(london("2025-10-25 10:00"), urn=137002, la_code=COUNTY)
    assert result == Due(
        closed=True, reopens=london("2025-10-30 09:00"), closed_for="October Break"
    )


def test_ics_inset_day_that_says_closed_to_pupils_is_an_inset_day(
    ics_calendar: SchoolCalendar,
) -> None:
    result = ics_calendar.due_for(london("2025-11-01 10:00"), urn=137002, la_code=COUNTY)
    assert result == Due(closed=False, at=london("2025-11-04 09:00"))


def test_ics_inset_day_delays_rather_than_closes(ics_calendar: SchoolCalendar) -> None:
    result = ics_calendar.due_for(london("2025-11-30 10:00"), urn=137002, la_code=COUNTY)
    assert result == Due(closed=False, at=london("2025-12-02 09:00"))  # INSET by CATEGORIES


def test_ics_duration_and_categories_count(ics_calendar: SchoolCalendar) -> None:
    result = ics_calendar.due_for(london("2025-11-23 10:00"), urn=137002, la_code=COUNTY)
    assert result == Due(closed=True, reopens=london("2025-11-26 09:00"), closed_for="Closure")


def test_ics_timed_uncounted_and_cancelled_events_do_not_close(
    ics_calendar: SchoolCalendar,
) -> None:
    for day in (date(2025, 11, 12), date(2025, 11, 17), date(2025, 12, 8)):
        assert ics_calendar.is_school_day(day, urn=137002, la_code=COUNTY), day


def test_ics_school_is_on_its_own_dates_within_its_cover(ics_calendar: SchoolCalendar) -> None:
    # The LA's October half term (20-24 Oct) is before the file's first event: LA dates.
    assert not ics_calendar.is_school_day(date(2025, 10, 22), urn=137002, la_code=COUNTY)
    # The LA's INSET day on 9 March is after the file's last event: LA dates again.
    assert not ics_calendar.is_school_day(date(2026, 3, 9), urn=137002, la_code=COUNTY)
    assert ics_calendar.is_school_day(date(2025, 12, 19), urn=137002, la_code=COUNTY)


def test_shipped_example_overrides_agree_and_load(tmp_path: Path) -> None:
    schools = REPO_RULES / "calendars" / "schools"
    rules = write_rules(tmp_path)
    shutil.copy(schools / "example-academy.toml.example", rules / "calendars/schools/137001.toml")
    shutil.copy(schools / "example-academy.ics.example", rules / "calendars/schools/137002.ics")
    calendar = load_calendar(rules)
    days = [date(2026, 9, 7) + timedelta(days=offset) for offset in range(330)]
    toml_days = [calendar.is_school_day(day, urn=137001, la_code=COUNTY) for day in days]
    ics_days = [calendar.is_school_day(day, urn=137002, la_code=COUNTY) for day in days]
    assert toml_days == ics_days
    assert not calendar.is_school_day(date(2026, 10, 27), urn=137001, la_code=COUNTY)


# ---- the shipped LA calendars ----------------------------------------------------------


def test_shipped_la_calendars_cover_three_academic_years() -> None:
    calendar = load_calendar(REPO_RULES)
    covered = {c.la_code: (c.first, c.last) for c in calendar.coverage() if c.la_code}
    assert covered == {
        873: (date(2025, 9, 1), date(2028, 8, 31)),
        874: (date(2025, 9, 1), date(2028, 8, 31)),
    }


@pytest.mark.parametrize("la_code", [873, 874])
def test_shipped_calendars_close_for_each_half_term(la_code: int) -> None:
    calendar = load_calendar(REPO_RULES)
    for year in (2025, 2026, 2027):
        # Wednesday of the last full week of October is half term in every year shipped.
        wednesday = max(
            date(year, 10, d) for d in range(19, 32) if date(year, 10, d).weekday() == 2
        )
        assert not calendar.is_school_day(wednesday, urn=SCHOOL, la_code=la_code), wednesday
        assert calendar.is_school_day(date(year, 11, 10), urn=SCHOOL, la_code=la_code)


# ---- malformed calendars -----------------------------------------------------------------


def test_unknown_key_in_a_term_calendar_names_file_and_key(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    path = rules / "calendars" / "cambridgeshire-873.toml"
    path.write_text(path.read_text().replace("inset_days", "inset_dayz"))
    with pytest.raises(CalendarError) as raised:
        load_calendar(rules)
    message = str(raised.value)
    assert str(path) in message and "inset_dayz: unknown key" in message
    assert "inset_days" in message  # the keys that are allowed


def test_a_term_date_that_is_not_a_date_names_the_key(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    path = rules / "calendars" / "peterborough-874.toml"
    path.write_text(path.read_text().replace("end = 2025-12-19", 'end = "19 December"'))
    with pytest.raises(CalendarError, match=r"peterborough-874\.toml: terms\.0\.end"):
        load_calendar(rules)


def test_a_term_calendar_missing_a_half_term_is_refused(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    path = rules / "calendars" / "cambridgeshire-873.toml"
    text = path.read_text().replace('name = "October half term 2025"', 'name = "x"')
    path.write_text(
        text.replace("start = 2025-10-20\nend = 2025-10-24", "start = 2025-12-22\nend = 2025-12-22")
    )
    with pytest.raises(CalendarError, match="a holiday is missing"):
        load_calendar(rules)


def test_an_inset_day_in_the_holidays_is_refused(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    path = rules / "calendars" / "cambridgeshire-873.toml"
    path.write_text(path.read_text().replace("2026-03-09", "2026-02-17"))
    with pytest.raises(CalendarError, match=r"inset_days\.1: 2026-02-17 is not in term"):
        load_calendar(rules)


def test_two_files_for_one_la_are_refused(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    shutil.copy(rules / "calendars/cambridgeshire-873.toml", rules / "calendars/copy.toml")
    with pytest.raises(CalendarError, match="la_code: 873 is already"):
        load_calendar(rules)


def test_school_file_not_named_by_urn_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"fen-edge\.toml: a school calendar is named by"):
        load_calendar(write_rules(tmp_path, {"fen-edge.toml": ACADEMY}))


def test_school_toml_urn_must_match_its_file_name(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"137009\.toml: urn: 137001 does not match"):
        load_calendar(write_rules(tmp_path, {"137009.toml": ACADEMY}))


def test_a_school_with_both_toml_and_ics_is_refused(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"137001.toml": ACADEMY, "137001.ics": ACADEMY_ICS}
    with pytest.raises(CalendarError, match="already has a calendar"):
        load_calendar(write_rules(tmp_path, files))


def test_ics_that_is_not_icalendar_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"137002\.ics: not a valid iCalendar file"):
        load_calendar(write_rules(tmp_path, {"137002.ics": b"URN,Holiday\n137002,half term\n"}))


def test_ics_with_a_bad_date_names_the_file_and_event(tmp_path: Path) -> None:
    broken = ics("DTSTART;VALUE=DATE:2025102\nSUMMARY:Half term")
    with pytest.raises(CalendarError, match=r"137002\.ics: VEVENT 'event-0@tests': DTSTART"):
        load_calendar(write_rules(tmp_path, {"137002.ics": broken}))


def test_ics_event_ending_before_it_starts_is_refused(tmp_path: Path) -> None:
    broken = ics("DTSTART;VALUE=DATE:20251031\nDTEND;VALUE=DATE:20251027\nSUMMARY:Half term")
    with pytest.raises(CalendarError, match="ends before it starts"):
        load_calendar(write_rules(tmp_path, {"137002.ics": broken}))


def test_ics_repeating_holiday_is_refused(tmp_path: Path) -> None:
    weekly = ics("DTSTART;VALUE=DATE:20251027\nRRULE:FREQ=WEEKLY;COUNT=2\nSUMMARY:Closed")
    with pytest.raises(CalendarError, match="repeating events"):
        load_calendar(write_rules(tmp_path, {"137002.ics": weekly}))


def test_ics_of_inset_days_alone_is_refused(tmp_path: Path) -> None:
    # Between September and July the school would look open every day, summer and all.
    inset_only = ics(
        "DTSTART;VALUE=DATE:20250901\nSUMMARY:INSET", "DTSTART;VALUE=DATE:20260720\nSUMMARY:INSET"
    )
    with pytest.raises(CalendarError, match="a holiday is missing"):
        load_calendar(write_rules(tmp_path, {"137002.ics": inset_only}))


def test_ics_with_nothing_to_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="no all-day holiday"):
        load_calendar(
            write_rules(
                tmp_path, {"137002.ics": ics("DTSTART;VALUE=DATE:20251117\nSUMMARY:Book fair")}
            )
        )


def test_missing_calendars_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="folder of term calendars not found"):
        load_calendar(tmp_path)

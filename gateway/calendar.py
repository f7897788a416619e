"""School calendars and the protocol's due-time rule.

Three sources, read once at start-up by `load_calendar(rules_dir)`:

* **England bank holidays** from the `holidays` library (country GB, subdivision ENG), which
  is maintained upstream, so one-off bank holidays arrive with a library upgrade.
* **LA term dates**, one TOML file per local authority in `rules/calendars/*.toml`: the
  terms, the named holidays (half terms, and optionally the holidays between terms, for
  their names), and the LA-wide INSET days. See `rules/calendars/cambridgeshire-873.toml`.
* **Per-school overrides** in `rules/calendars/schools/<URN>.toml` (same shape as an LA
  file, with `urn` instead of `la_code`) or `<URN>.ics` (iCalendar). Academies set their own
  terms: where a school's file covers a date it replaces the LA's calendar for that school;
  outside its cover the LA's calendar applies. `rules/calendars/schools/README.md` documents
  both formats.

How a weekday within a calendar's cover is classed:

* in a named holiday, or in no term → **closed** (half term, holidays, a closure);
* an INSET day → **pupil-free**: not a school day, but the school is not "closed" in the
  protocol's sense, so a notification waits for the next school day rather than being
  withheld (the issue's rule is "09:00 on the school's first school day"; a single training
  day must not turn a Friday-night incident into one the school never hears about);
* otherwise → a **school day**.

Dates outside every calendar that covers the school are treated as school days (open): the
conservative choice, as it means a notification is sent rather than silently held back.
`Due.assumed_open` says when this happened, and `SchoolCalendar.coverage()` lets the
`check` command warn before term dates run out.

iCalendar import (`<URN>.ics`). Only all-day VEVENTs count (DTSTART with VALUE=DATE); timed
events (parents' evenings, an early finish at 13:00) never close a school. An event counts
when its SUMMARY or CATEGORIES contain one of these words, case-insensitively:

* INSET words ("INSET", "training day", "staff day", "PD day", "professional development")
  → each of its days is a pupil-free day;
* closure words ("holiday", "half term", "half-term", "closed", "closure", "break",
  "vacation") → each of its days is closed, named by the event's SUMMARY.

An event that says both (e.g. "INSET day - school closed to pupils") is an INSET day.
DTEND is exclusive (RFC 5545 3.6.1): DTSTART 2025-10-27, DTEND 2025-11-01 is Monday to
Friday. Without DTEND, a DURATION of whole days is used, and without either the event is
the one day of DTSTART. CANCELLED events are ignored; other events are ignored too. A
counted event with RRULE or RDATE is an error (it would need expanding; list each holiday).
The file's cover runs from its first counted day to its last; within it, a weekday not in
a counted event is a school day, so the file must list every holiday, summer included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType

import holidays
import icalendar
from pydantic import Field

from gateway.clock import LONDON
from gateway.errors import CalendarError
from gateway.validation import Strict, load_toml_model

SEND_TIME = time(9, 0)  # the protocol's "before 09:00": notifications are due at 09:00 local

# No English school runs this long without a half term or holiday; a longer stretch of
# school days in a calendar file means a holiday was left out (for an .ics file holding
# only INSET days, all of them), which would make the gateway notify during a holiday.
LONGEST_STRETCH = timedelta(weeks=13)

_INSET_WORDS = re.compile(
    r"\binset\b|training day|staff day|\bpd day\b|professional development", re.IGNORECASE
)
_CLOSURE_WORDS = re.compile(
    r"holiday|half[- ]?term|\bclosed\b|\bclosure\b|\bbreak\b|vacation", re.IGNORECASE
)


class DayKind(StrEnum):
    WEEKEND = "weekend"
    BANK_HOLIDAY = "bank holiday"
    SCHOOL_DAY = "school day"
    PUPIL_FREE = "pupil-free day"  # INSET: staff in, pupils not; not a closure
    CLOSED = "closed"  # half term, holidays, out of term, a declared closure
    UNKNOWN = "unknown"  # a working day outside every calendar: treated as a school day


@dataclass(frozen=True)
class Due:
    """When a notification for a school is due, from the arrival of the police's report.

    Open: `at` is the instant to send (09:00 London on a school day, or the arrival itself
    when it came during a school day). Closed: `reopens` is 09:00 on the first school day
    back and `closed_for` names the holiday. `assumed_open` says a date fell outside every
    known term calendar and was treated as a school day.
    """

    closed: bool
    at: datetime | None = None
    reopens: datetime | None = None
    closed_for: str = ""
    assumed_open: bool = False

    def __post_init__(self) -> None:
        if self.closed != (self.at is None) or self.closed != (self.reopens is not None):
            raise ValueError("Due is either open with `at` or closed with `reopens`")


@dataclass(frozen=True)
class Coverage:
    """The dates one calendar file covers; `check` warns when the last one draws near."""

    source: str
    name: str
    first: date
    last: date
    la_code: int | None = None
    urn: int | None = None


@dataclass(frozen=True)
class TermCalendar:
    """One file's calendar: the weekdays it closes or makes pupil-free, within its cover."""

    source: str
    name: str
    first: date
    last: date
    closed: Mapping[date, str]  # weekday -> the holiday's name
    pupil_free: frozenset[date]

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def classify(self, day: date) -> tuple[DayKind, str]:
        if day in self.closed:
            return DayKind.CLOSED, self.closed[day]
        if day in self.pupil_free:
            return DayKind.PUPIL_FREE, "INSET day"
        return DayKind.SCHOOL_DAY, ""


class SchoolCalendar:
    """Bank holidays, LA term calendars and per-school overrides; loaded once, then pure."""

    def __init__(
        self,
        la_calendars: Mapping[int, TermCalendar],
        school_calendars: Mapping[int, TermCalendar],
    ) -> None:
        self._la = dict(la_calendars)
        self._schools = dict(school_calendars)
        self._bank_holidays = england_bank_holidays()

    def coverage(self) -> tuple[Coverage, ...]:
        """Every calendar file's cover, LAs first, by LA code then URN."""
        las = (
            Coverage(c.source, c.name, c.first, c.last, la_code=code)
            for code, c in sorted(self._la.items())
        )
        schools = (
            Coverage(c.source, c.name, c.first, c.last, urn=urn)
            for urn, c in sorted(self._schools.items())
        )
        return (*las, *schools)

    def is_working_day(self, day: date) -> bool:
        """A weekday that is not an England bank holiday."""
        return day.weekday() < 5 and day not in self._bank_holidays

    def is_school_day(self, day: date, *, urn: int, la_code: int) -> bool:
        """A working day in term for this school, not INSET or a closure. A day outside
        every calendar covering the school counts as a school day (see the module notes)."""
        kind, _ = self.classify(day, urn=urn, la_code=la_code)
        return kind in (DayKind.SCHOOL_DAY, DayKind.UNKNOWN)

    def classify(self, day: date, *, urn: int, la_code: int) -> tuple[DayKind, str]:
        """What `day` is for this school, and the holiday's name when it is closed."""
        if day.weekday() >= 5:
            return DayKind.WEEKEND, ""
        if day in self._bank_holidays:
            return DayKind.BANK_HOLIDAY, str(self._bank_holidays[day])
        for calendar in (self._schools.get(urn), self._la.get(la_code)):
            if calendar is not None and calendar.covers(day):
                return calendar.classify(day)
        return DayKind.UNKNOWN, ""

    def due_for(self, arrival: datetime, *, urn: int, la_code: int) -> Due:
        """The protocol's due time for a report arriving at `arrival` (timezone-aware).

        09:00 Europe/London on the first working day on or after the arrival's local date,
        or at once when it arrived at or after 09:00 on a school day. INSET days are passed
        over to the next school day; if the working day reached is a holiday, the school is
        closed and `reopens` is 09:00 on its first school day back.
        """
        if arrival.utcoffset() is None:
            raise ValueError("due_for needs a timezone-aware arrival instant")
        local = arrival.astimezone(LONDON)
        day = local.date()
        while True:
            kind, name = self.classify(day, urn=urn, la_code=la_code)
            if kind is DayKind.CLOSED:
                back, assumed = self._first_school_day_after(day, urn=urn, la_code=la_code)
                return Due(
                    closed=True, reopens=at_send_time(back), closed_for=name, assumed_open=assumed
                )
            if kind in (DayKind.SCHOOL_DAY, DayKind.UNKNOWN):
                start = at_send_time(day)
                return Due(
                    closed=False,
                    at=local if local >= start else start,
                    assumed_open=kind is DayKind.UNKNOWN,
                )
            day += timedelta(days=1)

    def _first_school_day_after(self, day: date, *, urn: int, la_code: int) -> tuple[date, bool]:
        # Terminates: past the end of every calendar each working day is UNKNOWN (open).
        while True:
            day += timedelta(days=1)
            kind, _ = self.classify(day, urn=urn, la_code=la_code)
            if kind in (DayKind.SCHOOL_DAY, DayKind.UNKNOWN):
                return day, kind is DayKind.UNKNOWN


@cache
def england_bank_holidays() -> Mapping[date, str]:
    """England's bank holidays, 2000 to 2100, from the `holidays` library.

    Computed once into a plain read-only mapping: the library's own object fills in a year
    on first look-up, which is a write, and the calendar is read from several threads.
    """
    found = holidays.country_holidays("GB", subdiv="ENG", years=range(2000, 2101))
    return MappingProxyType({day: str(name) for day, name in found.items()})


def at_send_time(day: date) -> datetime:
    """09:00 Europe/London on `day`: 08:00 UTC in summer time, 09:00 UTC in winter."""
    return datetime.combine(day, SEND_TIME, tzinfo=LONDON)


# --------------------------------------------------------------------------------------
# Loading


class Period(Strict):
    name: str = Field(min_length=1)
    start: date
    end: date


class _CalendarFile(Strict):
    name: str = Field(min_length=1)
    covers_from: date
    covers_to: date
    terms: tuple[Period, ...] = Field(min_length=1)
    holidays: tuple[Period, ...] = ()
    inset_days: tuple[date, ...] = ()


class LaCalendarFile(_CalendarFile):
    """rules/calendars/<name>.toml: one local authority's term dates."""

    la_code: int


class SchoolCalendarFile(_CalendarFile):
    """rules/calendars/schools/<URN>.toml: one school's own term dates."""

    urn: int


def load_calendar(rules_dir: Path) -> SchoolCalendar:
    """Read rules_dir/calendars: every LA file, and every per-school override.

    Raises CalendarError naming the file and key of anything malformed or inconsistent.
    """
    folder = rules_dir / "calendars"
    if not folder.is_dir():
        raise CalendarError(f"{folder}: folder of term calendars not found")
    la_calendars: dict[int, TermCalendar] = {}
    for path in sorted(folder.glob("*.toml")):
        la_file = load_toml_model(path, LaCalendarFile, CalendarError)
        if la_file.la_code in la_calendars:
            other = la_calendars[la_file.la_code].source
            raise CalendarError(f"{path}: la_code: {la_file.la_code} is already the LA of {other}")
        la_calendars[la_file.la_code] = _from_toml(la_file, path)
    school_calendars: dict[int, TermCalendar] = {}
    for path in _school_files(folder / "schools"):
        urn = int(path.stem)
        if urn in school_calendars:
            other = school_calendars[urn].source
            raise CalendarError(f"{path}: school {urn} already has a calendar in {other}")
        school_calendars[urn] = load_school_file(path)
    return SchoolCalendar(la_calendars, school_calendars)


def _school_files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        # README.md and *.example files live here too; only .toml and .ics are calendars.
        if path.suffix.lower() not in (".toml", ".ics"):
            continue
        if not path.stem.isdigit():
            raise CalendarError(
                f"{path}: a school calendar is named by the school's URN, e.g. 137001.toml"
                " or 137001.ics"
            )
        yield path


def load_school_file(path: Path) -> TermCalendar:
    """One per-school override, <URN>.toml or <URN>.ics."""
    if path.suffix.lower() == ".ics":
        return _from_ics(path)
    school_file = load_toml_model(path, SchoolCalendarFile, CalendarError)
    if str(school_file.urn) != path.stem:
        raise CalendarError(
            f"{path}: urn: {school_file.urn} does not match the file name; name the file"
            f" {school_file.urn}.toml"
        )
    return _from_toml(school_file, path)


def _from_toml(model: _CalendarFile, path: Path) -> TermCalendar:
    if model.covers_from > model.covers_to:
        raise CalendarError(f"{path}: covers_to: {model.covers_to} is before covers_from")
    for key, periods in (("terms", model.terms), ("holidays", model.holidays)):
        for index, period in enumerate(periods):
            where = f"{path}: {key}.{index} ({period.name})"
            if period.start > period.end:
                raise CalendarError(f"{where}: end {period.end} is before start {period.start}")
            if period.start < model.covers_from or period.end > model.covers_to:
                raise CalendarError(
                    f"{where}: {period.start} to {period.end} is outside covers_from"
                    f" {model.covers_from} to covers_to {model.covers_to}"
                )
    terms = sorted(model.terms, key=lambda term: term.start)
    for before, after in pairwise(terms):
        if after.start <= before.end:
            raise CalendarError(f"{path}: terms: {after.name!r} overlaps {before.name!r}")
    closed: dict[date, str] = {}
    for day in _weekdays(model.covers_from, model.covers_to):
        if not any(term.start <= day <= term.end for term in terms):
            closed[day] = "school holidays"
    for holiday in model.holidays:
        for day in _weekdays(holiday.start, holiday.end):
            closed[day] = holiday.name
    for index, day in enumerate(model.inset_days):
        where = f"{path}: inset_days.{index}: {day}"
        if day.weekday() >= 5:
            raise CalendarError(f"{where} is a {day:%A}; INSET days are weekdays")
        if not model.covers_from <= day <= model.covers_to or day in closed:
            raise CalendarError(f"{where} is not in term ({closed.get(day, 'not covered')})")
    calendar = TermCalendar(
        str(path),
        model.name,
        model.covers_from,
        model.covers_to,
        closed,
        frozenset(model.inset_days),
    )
    _check_no_missing_holiday(calendar)
    return calendar


def _from_ics(path: Path) -> TermCalendar:
    try:
        parsed = icalendar.Calendar.from_ical(path.read_bytes())
    except OSError as exc:
        raise CalendarError(f"{path}: cannot be read: {exc.strerror}") from exc
    except ValueError as exc:
        raise CalendarError(f"{path}: not a valid iCalendar file: {exc}") from exc
    if parsed.name != "VCALENDAR":
        raise CalendarError(f"{path}: not a valid iCalendar file: no VCALENDAR")
    closed: dict[date, str] = {}
    pupil_free: set[date] = set()
    for event in parsed.walk("VEVENT"):
        counted_event = _counted_days(event, path)
        if counted_event is None:
            continue
        label, days = counted_event
        for day in days:
            if label is None:
                pupil_free.add(day)
            else:
                closed[day] = label
    counted = sorted({*closed, *pupil_free})
    if not counted:
        raise CalendarError(
            f"{path}: no all-day holiday, half term, closure or INSET events; nothing to use"
        )
    for day in pupil_free:
        closed.pop(day, None)  # INSET wins where an INSET day sits inside a closure event
    name = str(parsed.get("X-WR-CALNAME") or f"school {path.stem}")
    calendar = TermCalendar(str(path), name, counted[0], counted[-1], closed, frozenset(pupil_free))
    _check_no_missing_holiday(calendar)
    return calendar


def _counted_days(event: icalendar.Component, path: Path) -> tuple[str | None, list[date]] | None:
    """(closure name, or None for INSET; its weekdays), or None when the event does not count."""
    summary = str(event.get("SUMMARY", "")).strip()
    uid = str(event.get("UID", "")) or summary or "(no UID)"
    where = f"{path}: VEVENT {uid!r}"
    if event.errors:
        problems = "; ".join(f"{key}: {message}" for key, message in event.errors)
        raise CalendarError(f"{where}: {problems}")
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    words = " ".join([summary, *_categories(event)])
    is_inset = bool(_INSET_WORDS.search(words))
    if not is_inset and not _CLOSURE_WORDS.search(words):
        return None
    start = _decoded(event, "DTSTART", where)
    if start is None:
        raise CalendarError(f"{where}: DTSTART is missing")
    if isinstance(start, datetime) or not isinstance(start, date):
        return None  # a timed event never closes a school for the day
    if "RRULE" in event or "RDATE" in event:
        raise CalendarError(
            f"{where}: repeating events (RRULE/RDATE) are not expanded; list each day instead"
        )
    end = _decoded(event, "DTEND", where)
    duration = _decoded(event, "DURATION", where)
    if isinstance(end, date) and not isinstance(end, datetime):
        last = end - timedelta(days=1)  # DTEND of an all-day event is exclusive
    elif end is None and isinstance(duration, timedelta) and duration.seconds == 0:
        last = start + duration - timedelta(days=1)
    elif end is None and duration is None:
        last = start
    else:
        raise CalendarError(f"{where}: DTEND/DURATION must be a date / whole days like DTSTART")
    if last < start:
        raise CalendarError(f"{where}: the event ends before it starts (DTSTART {start})")
    return (None if is_inset else summary or "closure"), list(_weekdays(start, last))


def _decoded(event: icalendar.Component, key: str, where: str) -> object:
    prop = event.get(key)
    if prop is None:
        return None
    value = getattr(prop, "dt", None)
    if value is None:
        raise CalendarError(f"{where}: {key} {prop!s} is not a date or duration")
    return value


def _categories(event: icalendar.Component) -> Iterator[str]:
    found = event.get("CATEGORIES")
    for prop in found if isinstance(found, list) else [found] if found is not None else []:
        yield from (str(category) for category in getattr(prop, "cats", []))


def _weekdays(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def _check_no_missing_holiday(calendar: TermCalendar) -> None:
    previous = calendar.first
    for day in [*sorted(calendar.closed), calendar.last]:
        if day - previous > LONGEST_STRETCH:
            raise CalendarError(
                f"{calendar.source}: no holiday or half term from {previous} to {day}, more than"
                f" {LONGEST_STRETCH.days // 7} weeks: a holiday is missing from the file"
            )
        previous = day

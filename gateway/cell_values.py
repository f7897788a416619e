"""Reading the values of single cells of the police spreadsheet: dates, times, names, risk.

Pure functions: a cell value in (whatever openpyxl gave: text, number, date, time), a typed
value out, or `ValueError` with a short message the Navigator can act on. They never guess:
a date that could be read two ways, a word that is not a known risk level, is an error, and
the child becomes an exception instead of being routed on a guess.

Dates are UK day-first, always. `12/25/2015` is an error, not a month-first date. A
two-digit year is read as 20yy unless that date would be after `today`, in which case it is
19yy: `1.2.15` is 2015, and a date of birth `1.2.98` is 1998.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta

from gateway.clock import LONDON
from gateway.model import CrimeStatus, Risk

# Excel's 1900 date system counts 1900-01-01 as day 1 and, copying Lotus 1-2-3, has a
# 29 February 1900 as day 60. From day 61 on, day N is 1899-12-30 + N.
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_FAKE_LEAP_DAY = 60
_EXCEL_LAST_SERIAL = (date(9999, 12, 31) - _EXCEL_EPOCH).days
_SECONDS_PER_DAY = 86_400

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}

_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_NUMERIC_DATE = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d+)")
_NUMERIC_NO_YEAR = re.compile(r"\d{1,2}[/.\-]\d{1,2}")
_NAMED_DATE = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?[\s\-/.]*([a-z]+)\.?[\s\-/.,]*(\d+)")
_NAMED_NO_YEAR = re.compile(r"\d{1,2}(?:st|nd|rd|th)?(?:\s+of)?[\s\-/.]*[a-z]+\.?")


def parse_uk_date(value: object, *, today: date) -> date:
    """A date from a cell: a date or datetime value, an Excel serial number, or day-first text.

    Text forms: 01/02/2015, 1/2/2015, 1.2.15, 01-02-2015, 01-Feb-2015, 1 Feb 2015,
    1 February 2015, 1st February 2015, and ISO 2015-02-01.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date")
    if isinstance(value, int | float):
        days, _ = _split_serial(value)
        return days
    if isinstance(value, str):
        return _parse_date_text(value, today)
    raise ValueError(f"{value!r} is not a date")


def parse_time(value: object) -> time:
    """A time of day from a cell: a time value, an Excel day fraction, or text.

    Text forms: 14:30, 14.30, 14:30:00, 1430, 0930hrs, 2.30pm, 2pm. Numbers from 100 to
    2359 are taken as a 24-hour clock typed without a separator (1430), as a day fraction is
    always below 1.
    """
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, timedelta) and timedelta(0) <= value < timedelta(days=1):
        return (datetime.min + value).time()
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return _time_from_number(value)
    if isinstance(value, str):
        return _parse_time_text(value)
    raise ValueError(f"{value!r} is not a time")


def parse_incident_datetime(value: object, *, today: date) -> datetime | date:
    """When an incident happened, from a single date-and-time cell.

    Returns an aware Europe/London datetime when the cell has a time, and a plain `date`
    when it has a date alone (the time is unknown, which is not the same as midnight).
    Text forms: any date `parse_uk_date` reads followed by any time `parse_time` reads,
    optionally joined by "at" or a comma ("01/02/2025 14:30", "01-Feb-2025 at 2.30pm"),
    the time first ("14:30 on 01/02/2025"), or ISO ("2025-02-01T14:30").
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=LONDON)
        return value.astimezone(LONDON)
    if isinstance(value, date):
        return value
    if isinstance(value, time):
        raise ValueError(f"{value.strftime('%H:%M')} is a time with no date")
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date and time")
    if isinstance(value, int | float):
        day, seconds = _split_serial(value)
        if seconds == 0:
            return day
        return datetime.combine(day, _time_from_seconds(seconds), tzinfo=LONDON)
    if isinstance(value, str):
        return _parse_datetime_text(value, today)
    raise ValueError(f"{value!r} is not a date and time")


def split_person_name(text: str) -> tuple[str, str]:
    """(forename, surname) from a full name as the police write it.

    "Forename Surname", "SURNAME, Forename", "Forename Middle SURNAME", "SURNAME Forename"
    (capitals mark the surname when the rest is not in capitals), all capitals, extra
    spaces. The forename keeps every given name ("Mary Anne"): ChildRecord has no middle
    name, and matching compares given names as a whole. With no capitals to go by, the
    surname is the last word, or starts at a particle ("van", "de", "al"...). Words in
    capitals are shown in name case: "O'NEILL" is "O'Neill", "SMITH-JONES" is "Smith-Jones".
    """
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ValueError("no name given")
    if "," in cleaned:
        surname_part, _, forename_part = (part.strip() for part in cleaned.partition(","))
        if "," in forename_part:
            raise ValueError(f"{cleaned!r} has more than one comma; expected 'SURNAME, Forename'")
        if not surname_part or not forename_part:
            raise ValueError(f"{cleaned!r} needs a name both before and after the comma")
        return _name_case(forename_part), _name_case(surname_part)
    words = cleaned.split(" ")
    if len(words) == 1:
        raise ValueError(f"{cleaned!r} is a single name; a forename and a surname are needed")
    forenames, surnames = _split_words(words)
    return _name_case(" ".join(forenames)), _name_case(" ".join(surnames))


def tidy_name(text: str) -> str:
    """A name from its own cell (forename or surname column): spaces tidied, name case."""
    return _name_case(" ".join(text.split()))


def parse_risk(value: object) -> Risk:
    """The DASH risk level: a word, a DASH score, or DARA wording, as Standard/Medium/High.

    Words: Standard/Std/S, Medium/Med/M, High/H, with or without "risk" ("High Risk").
    DASH scores 0-9 are Standard, 10-13 Medium, 14-27 High. DARA wording ("DARA - High",
    "DARA: standard risk") is read the same way.
    """
    if isinstance(value, bool):
        raise ValueError(_risk_error(str(value)))
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(_risk_error(str(value)))
        return _risk_from_score(int(value), str(value))
    if not isinstance(value, str):
        raise ValueError(_risk_error(str(value)))
    words = re.sub(r"[^a-z0-9]+", " ", value.casefold()).split()
    while words and words[0] in {"dash", "dara", "risk", "score", "level"}:
        words.pop(0)
    while words and words[-1] in {"risk", "score", "level"}:
        words.pop()
    key = " ".join(words)
    if key.isdigit():
        return _risk_from_score(int(key), value.strip())
    risk = _RISK_WORDS.get(key)
    if risk is None:
        raise ValueError(_risk_error(value.strip()))
    return risk


def parse_crime_status(value: object) -> CrimeStatus:
    """Crime or non-crime, in the police's usual spellings.

    "Crime", "Crimed", "C", "Crime incident"; "Non Crime", "Non-crime", "Noncrime", "NC",
    "Non-crime incident". Y/N is refused: in a "Crime/Non-crime" column it could mean
    either, and a wrong value would be shown to the school.
    """
    text = value.strip() if isinstance(value, str) else str(value)
    key = " ".join(re.sub(r"[^a-z]+", " ", text.casefold()).split())
    status = _CRIME_WORDS.get(key)
    if status is None:
        raise ValueError(
            f"{text!r} is not a crime status; expected Crime (or Crimed, C) "
            "or Non-crime (or Non Crime, NC)"
        )
    return status


# --------------------------------------------------------------------------------------
# Dates and times


def _split_serial(value: float) -> tuple[date, int]:
    """An Excel 1900-system serial as (date, seconds into the day)."""
    if not math.isfinite(value) or value < 1 or value >= _EXCEL_LAST_SERIAL + 1:
        raise ValueError(f"{value!r} is not a date (not an Excel date number)")
    whole = round(value * _SECONDS_PER_DAY)
    days, seconds = divmod(whole, _SECONDS_PER_DAY)
    if days == _EXCEL_FAKE_LEAP_DAY:
        raise ValueError(f"{value!r} is Excel's 29 February 1900, which is not a date")
    if days < _EXCEL_FAKE_LEAP_DAY:
        days += 1
    return _EXCEL_EPOCH + timedelta(days=days), seconds


def _parse_date_text(text: str, today: date) -> date:
    shown = " ".join(text.split())
    cleaned = shown.casefold()
    if not cleaned:
        raise ValueError("no date given")
    if match := _ISO_DATE.fullmatch(cleaned):
        year, month, day = (int(group) for group in match.groups())
        return _make_date(shown, year, month, day)
    if match := _NUMERIC_DATE.fullmatch(cleaned):
        day, month = int(match[1]), int(match[3])
        if month > 12 and day <= 12:
            raise ValueError(
                f"{shown!r} is not a date: dates must be day/month/year and this looks month-first"
            )
        return _make_date(shown, _full_year(match[4], shown, day, month, today), month, day)
    if match := _NAMED_DATE.fullmatch(cleaned):
        named = _MONTHS.get(match[2])
        if named is None:
            raise ValueError(f"{shown!r} is not a date: {match[2]!r} is not a month")
        day = int(match[1])
        return _make_date(shown, _full_year(match[3], shown, day, named, today), named, day)
    if _NUMERIC_NO_YEAR.fullmatch(cleaned) or _NAMED_NO_YEAR.fullmatch(cleaned):
        raise ValueError(f"{shown!r} has no year")
    raise ValueError(f"{shown!r} is not a date (expected day/month/year, e.g. 01/02/2015)")


def _full_year(digits: str, shown: str, day: int, month: int, today: date) -> int:
    if len(digits) == 4:
        return int(digits)
    if len(digits) != 2:
        raise ValueError(f"{shown!r} is not a date: the year must have 2 or 4 digits")
    year = 2000 + int(digits)
    try:
        in_future = date(year, month, day) > today
    except ValueError:
        # An impossible day is reported by _make_date with the century settled.
        in_future = year > today.year
    return year - 100 if in_future else year


def _make_date(shown: str, year: int, month: int, day: int) -> date:
    if year < 1900:
        raise ValueError(f"{shown!r} is not a date: the year {year} is before 1900")
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"{shown!r} is not a date") from None


_TIME_24H = re.compile(r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?(?:\s*(?:hrs|hours|h))?")
_TIME_DIGITS = re.compile(r"(\d{1,2})(\d{2})(?:\s*(?:hrs|hours|h))?")
_TIME_12H = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?(?:[:.](\d{2}))?\s*([ap])\.?m\.?")


def _parse_time_text(text: str) -> time:
    shown = " ".join(text.split())
    cleaned = shown.casefold()
    if not cleaned:
        raise ValueError("no time given")
    if match := _TIME_12H.fullmatch(cleaned):
        hour = int(match[1])
        if not 1 <= hour <= 12:
            raise ValueError(f"{shown!r} is not a time: am/pm hours run from 1 to 12")
        hour = hour % 12 + (12 if match[4] == "p" else 0)
        return _make_time(shown, hour, int(match[2] or 0), int(match[3] or 0))
    if match := _TIME_24H.fullmatch(cleaned) or _TIME_DIGITS.fullmatch(cleaned):
        seconds = match[3] if match.re is _TIME_24H else None
        return _make_time(shown, int(match[1]), int(match[2]), int(seconds or 0))
    raise ValueError(f"{shown!r} is not a time (expected e.g. 14:30, 1430 or 2.30pm)")


def _make_time(shown: str, hour: int, minute: int, second: int) -> time:
    try:
        return time(hour, minute, second)
    except ValueError:
        raise ValueError(f"{shown!r} is not a time") from None


def _time_from_number(value: float) -> time:
    if math.isfinite(value) and 0 <= value < 1:
        return _time_from_seconds(round(value * _SECONDS_PER_DAY))
    if float(value).is_integer() and 100 <= value <= 2359:
        number = int(value)
        return _make_time(str(number), number // 100, number % 100, 0)
    raise ValueError(f"{value!r} is not a time")


def _time_from_seconds(seconds: int) -> time:
    if not 0 <= seconds < _SECONDS_PER_DAY:
        raise ValueError(f"{seconds} seconds is not a time of day")
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60)


_JOINERS = {"at", "on", "@", "-"}


def _parse_datetime_text(text: str, today: date) -> datetime | date:
    shown = " ".join(text.split())
    if not shown:
        raise ValueError("no date given")
    try:
        return _parse_date_text(shown, today)
    except ValueError as whole_error:
        date_error = whole_error
    words = re.sub(r"^(\d{4}-\d{1,2}-\d{1,2})t", r"\1 ", shown.replace(",", " "), flags=re.I)
    tokens = words.split()
    readings: set[datetime] = set()
    for cut in range(1, len(tokens)):
        left, right = tokens[:cut], tokens[cut:]
        if left[-1].casefold() in _JOINERS:
            left = left[:-1]
        elif right[0].casefold() in _JOINERS:
            right = right[1:]
        if not left or not right:
            continue
        for date_words, time_words in ((left, right), (right, left)):
            try:
                at = _parse_time_text(" ".join(time_words))
            except ValueError:
                continue
            try:
                day = _parse_date_text(" ".join(date_words), today)
            except ValueError as error:
                # A readable time beside an unreadable date: the date's reason is the news.
                date_error = error
                continue
            readings.add(datetime.combine(day, at, tzinfo=LONDON))
    if len(readings) > 1:
        raise ValueError(f"{shown!r} can be read as more than one date and time")
    if readings:
        return readings.pop()
    raise date_error


# --------------------------------------------------------------------------------------
# Names

# Lower-case words that start a surname: "Anna van der Berg", "Omar al Hassan".
_PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "da", "di", "du", "la", "le"}
_PARTICLES |= {"al", "el", "bin", "binti", "ibn", "ter", "ten"}


def _is_capitals(word: str) -> bool:
    # One capital letter is an initial, not a surname in capitals.
    letters = [char for char in word if char.isalpha()]
    return len(letters) > 1 and word == word.upper()


def _split_words(words: list[str]) -> tuple[list[str], list[str]]:
    """(given names, surname words) of a name of two or more words."""
    capitals = [_is_capitals(word) for word in words]
    count = sum(capitals)
    if 0 < count < len(words):
        if all(capitals[-count:]):
            return words[:-count], words[-count:]
        if all(capitals[:count]):
            # The police's "SMITH John" order.
            return words[count:], words[:count]
    no_case_signal = count == len(words) or all(word == word.lower() for word in words)
    for index in range(1, len(words) - 1):
        word = words[index]
        if word.casefold() in _PARTICLES and (no_case_signal or word == word.lower()):
            return words[:index], words[index:]
    return words[:-1], words[-1:]


def _name_case(text: str) -> str:
    if text != text.upper() and text != text.lower():
        return " ".join(
            _name_case_word(word) if _is_capitals(word) else word for word in text.split(" ")
        )
    return " ".join(_name_case_word(word) for word in text.split(" "))


def _name_case_word(word: str) -> str:
    # Capitalise after each apostrophe and hyphen: O'Neill, Smith-Jones, D'Arcy.
    return re.sub(r"[^\W\d_]+", lambda match: match[0].capitalize(), word)


# --------------------------------------------------------------------------------------
# Risk and crime status

_RISK_WORDS = {
    "standard": Risk.STANDARD,
    "std": Risk.STANDARD,
    "s": Risk.STANDARD,
    "medium": Risk.MEDIUM,
    "med": Risk.MEDIUM,
    "m": Risk.MEDIUM,
    "high": Risk.HIGH,
    "h": Risk.HIGH,
}

_DASH_STANDARD_MAX = 9
_DASH_MEDIUM_MAX = 13
_DASH_MAX = 27  # the DASH checklist has 27 questions


def _risk_from_score(score: int, shown: str) -> Risk:
    if score < 0:
        raise ValueError(f"{shown!r} is not a DASH score (0 to 27)")
    if score <= _DASH_STANDARD_MAX:
        return Risk.STANDARD
    if score <= _DASH_MEDIUM_MAX:
        return Risk.MEDIUM
    if score <= _DASH_MAX:
        return Risk.HIGH
    raise ValueError(f"{shown!r} is not a DASH score (0 to 27)")


def _risk_error(shown: str) -> str:
    return (
        f"{shown!r} is not a risk level; expected Standard, Medium or High "
        "(or Std/Med/H, a DASH score 0-27, or DARA wording such as 'DARA - High')"
    )


_CRIME_WORDS = {
    "crime": CrimeStatus.CRIME,
    "crimed": CrimeStatus.CRIME,
    "c": CrimeStatus.CRIME,
    "crime incident": CrimeStatus.CRIME,
    "crime recorded": CrimeStatus.CRIME,
    "non crime": CrimeStatus.NON_CRIME,
    "noncrime": CrimeStatus.NON_CRIME,
    "nc": CrimeStatus.NON_CRIME,
    "non crime incident": CrimeStatus.NON_CRIME,
    "noncrime incident": CrimeStatus.NON_CRIME,
    "non crimed": CrimeStatus.NON_CRIME,
    "not crimed": CrimeStatus.NON_CRIME,
}

"""Reading single cells of the police spreadsheet: UK dates, times, names, risk, crime status."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from gateway.cell_values import (
    parse_crime_status,
    parse_incident_datetime,
    parse_risk,
    parse_time,
    parse_uk_date,
    split_person_name,
    tidy_name,
)
from gateway.clock import LONDON
from gateway.model import CrimeStatus, Risk

TODAY = date(2025, 3, 3)


# --------------------------------------------------------------------------------------
# Dates


@pytest.mark.parametrize(
    "text",
    [
        "01/02/2015",
        "1/2/2015",
        "1.2.15",
        "01.02.2015",
        "01-02-2015",
        "01-Feb-2015",
        "1-feb-15",
        "1 Feb 2015",
        "1 Feb. 2015",
        "1 February 2015",
        "1st February 2015",
        "1st of February, 2015",
        "  01/02/2015  ",
        "2015-02-01",
    ],
)
def test_text_dates_are_read_day_first(text: str) -> None:
    assert parse_uk_date(text, today=TODAY) == date(2015, 2, 1)


def test_excel_date_value_is_taken_as_is() -> None:
    assert parse_uk_date(datetime(2015, 2, 1, 0, 0), today=TODAY) == date(2015, 2, 1)
    assert parse_uk_date(date(2015, 2, 1), today=TODAY) == date(2015, 2, 1)


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (42036, date(2015, 2, 1)),
        (42036.0, date(2015, 2, 1)),
        (42036.6, date(2015, 2, 1)),  # a time of day in a date column does not move the date
        (1, date(1900, 1, 1)),
        (59, date(1900, 2, 28)),
        (61, date(1900, 3, 1)),  # after Excel's fictitious 29 February 1900
    ],
)
def test_excel_serial_numbers_use_the_1900_system(serial: float, expected: date) -> None:
    assert parse_uk_date(serial, today=TODAY) == expected


def test_excel_fictitious_29_february_1900_is_not_a_date() -> None:
    with pytest.raises(ValueError, match="29 February 1900"):
        parse_uk_date(60, today=TODAY)


@pytest.mark.parametrize("serial", [0, -5, 3_000_000, float("nan"), float("inf")])
def test_numbers_outside_excel_dates_are_errors(serial: float) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_uk_date(serial, today=TODAY)


def test_impossible_date_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^'31/02/2015' is not a date$"):
        parse_uk_date("31/02/2015", today=TODAY)


def test_month_first_date_is_an_error_not_a_swap() -> None:
    with pytest.raises(ValueError, match=r"day/month/year.*month-first"):
        parse_uk_date("12/25/2015", today=TODAY)


def test_ambiguous_looking_date_is_read_day_first() -> None:
    assert parse_uk_date("03/04/2015", today=TODAY) == date(2015, 4, 3)


@pytest.mark.parametrize("text", ["03/04", "3 April", "3rd Apr"])
def test_date_without_a_year_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match=f"^'{text}' has no year$"):
        parse_uk_date(text, today=TODAY)


def test_two_digit_year_in_the_past_is_this_century() -> None:
    assert parse_uk_date("28/02/25", today=TODAY) == date(2025, 2, 28)


def test_two_digit_year_that_would_be_in_the_future_is_last_century() -> None:
    assert parse_uk_date("04/03/25", today=TODAY) == date(1925, 3, 4)
    assert parse_uk_date("1.2.98", today=TODAY) == date(1998, 2, 1)


def test_impossible_date_with_two_digit_year_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_uk_date("30/02/99", today=TODAY)


@pytest.mark.parametrize(
    "text",
    ["01022015", "42036", "1 Fbr 2015", "01/02.2015", "Feb 1 2015", "01/02/215", "yesterday"],
)
def test_unreadable_date_text_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_uk_date(text, today=TODAY)


def test_year_before_1900_is_an_error() -> None:
    with pytest.raises(ValueError, match="before 1900"):
        parse_uk_date("01/02/0215", today=TODAY)


def test_blank_date_is_an_error() -> None:
    with pytest.raises(ValueError, match="no date given"):
        parse_uk_date("   ", today=TODAY)


@pytest.mark.parametrize("value", [True, time(14, 30), None])
def test_values_that_are_not_dates_are_errors(value: object) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_uk_date(value, today=TODAY)


# --------------------------------------------------------------------------------------
# Times


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("14:30", time(14, 30)),
        ("14.30", time(14, 30)),
        ("14:30:15", time(14, 30, 15)),
        ("1430", time(14, 30)),
        ("0930hrs", time(9, 30)),
        ("930", time(9, 30)),
        ("2.30pm", time(14, 30)),
        ("2:30 PM", time(14, 30)),
        ("2pm", time(14, 0)),
        ("11.15 a.m.", time(11, 15)),
        ("12am", time(0, 0)),
        ("12pm", time(12, 0)),
        (time(14, 30), time(14, 30)),
        (0.5, time(12, 0)),
        (0.0, time(0, 0)),
        (1430, time(14, 30)),
        (timedelta(hours=14, minutes=30), time(14, 30)),
        (datetime(1899, 12, 30, 14, 30), time(14, 30)),
    ],
)
def test_times_are_read_in_their_usual_forms(value: object, expected: time) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["14", "25:00", "14:61", "13pm", "0am", "noonish", 1.5, 2400])
def test_impossible_or_unclear_times_are_errors(value: object) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_time(value)


# --------------------------------------------------------------------------------------
# Incident date and time in one cell


@pytest.mark.parametrize(
    "text",
    [
        "01/02/2025 14:30",
        "01/02/2025 at 14:30",
        "01/02/2025, 14:30",
        "01-Feb-2025 2.30pm",
        "1 February 2025 1430hrs",
        "14:30 on 01/02/2025",
        "2025-02-01T14:30",
        "2025-02-01 14:30:00",
    ],
)
def test_date_and_time_in_one_cell_is_a_london_instant(text: str) -> None:
    assert parse_incident_datetime(text, today=TODAY) == datetime(2025, 2, 1, 14, 30, tzinfo=LONDON)


def test_excel_datetime_value_is_taken_as_london_time() -> None:
    got = parse_incident_datetime(datetime(2025, 7, 1, 23, 30), today=TODAY)
    assert got == datetime(2025, 7, 1, 23, 30, tzinfo=LONDON)
    assert isinstance(got, datetime)
    assert got.utcoffset() == timedelta(hours=1)  # summer time


def test_excel_serial_with_a_day_fraction_is_date_and_time() -> None:
    assert parse_incident_datetime(45689.6041666667, today=TODAY) == datetime(
        2025, 2, 1, 14, 30, tzinfo=LONDON
    )


def test_date_alone_in_a_datetime_cell_is_a_date_with_no_time() -> None:
    assert parse_incident_datetime("01/02/2025", today=TODAY) == date(2025, 2, 1)
    assert parse_incident_datetime(45689, today=TODAY) == date(2025, 2, 1)
    assert parse_incident_datetime(date(2025, 2, 1), today=TODAY) == date(2025, 2, 1)


def test_impossible_date_beside_a_time_names_the_date() -> None:
    with pytest.raises(ValueError, match=r"^'31/02/2025' is not a date$"):
        parse_incident_datetime("31/02/2025 14:30", today=TODAY)


def test_time_alone_in_a_datetime_cell_is_an_error() -> None:
    with pytest.raises(ValueError, match="no date"):
        parse_incident_datetime(time(14, 30), today=TODAY)


def test_month_first_date_with_time_is_an_error() -> None:
    with pytest.raises(ValueError, match="month-first"):
        parse_incident_datetime("12/25/2024 14:30", today=TODAY)


# --------------------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jane Smith", ("Jane", "Smith")),
        ("SMITH, Jane", ("Jane", "Smith")),
        ("Smith, Jane", ("Jane", "Smith")),
        ("JANE SMITH", ("Jane", "Smith")),
        ("Jane Anne SMITH", ("Jane Anne", "Smith")),
        ("SMITH Jane", ("Jane", "Smith")),
        ("  Jane    Smith  ", ("Jane", "Smith")),
        ("jane smith", ("Jane", "Smith")),
        ("Jane SMITH-JONES", ("Jane", "Smith-Jones")),
        ("SEAN O'NEILL", ("Sean", "O'Neill")),
        ("Kyle MCDONALD", ("Kyle", "Mcdonald")),
        ("Kyle McDonald", ("Kyle", "McDonald")),
        ("Jane J SMITH", ("Jane J", "Smith")),
        ("Anna van der Berg", ("Anna", "van der Berg")),
        ("ANNA VAN DER BERG", ("Anna", "Van Der Berg")),
        ("Zoë ÅSTRÖM", ("Zoë", "Åström")),
    ],
)
def test_person_names_split_into_forename_and_surname(text: str, expected: tuple[str, str]) -> None:
    assert split_person_name(text) == expected


def test_empty_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="no name"):
        split_person_name("   ")


def test_single_word_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="single name"):
        split_person_name("Jane")


@pytest.mark.parametrize("text", ["SMITH, Jane, Anne", ", Jane", "SMITH,"])
def test_badly_placed_commas_are_errors(text: str) -> None:
    with pytest.raises(ValueError, match="comma"):
        split_person_name(text)


def test_name_from_its_own_column_is_tidied() -> None:
    assert tidy_name("  O'NEILL ") == "O'Neill"
    assert tidy_name("de Souza") == "de Souza"


# --------------------------------------------------------------------------------------
# Risk


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Standard", Risk.STANDARD),
        ("Std", Risk.STANDARD),
        ("STANDARD RISK", Risk.STANDARD),
        ("Medium", Risk.MEDIUM),
        ("Med", Risk.MEDIUM),
        ("MEDIUM RISK", Risk.MEDIUM),
        ("High", Risk.HIGH),
        ("H", Risk.HIGH),
        ("High Risk", Risk.HIGH),
    ],
)
def test_dash_words_are_normalised(value: str, expected: Risk) -> None:
    assert parse_risk(value) == expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0, Risk.STANDARD),
        (9, Risk.STANDARD),
        (10, Risk.MEDIUM),
        (13, Risk.MEDIUM),
        (14, Risk.HIGH),
        (27, Risk.HIGH),
        (14.0, Risk.HIGH),
        ("12", Risk.MEDIUM),
        ("DASH score 15", Risk.HIGH),
    ],
)
def test_dash_scores_map_to_levels(score: object, expected: Risk) -> None:
    assert parse_risk(score) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DARA - High", Risk.HIGH),
        ("DARA: standard risk", Risk.STANDARD),
        ("Dara Medium", Risk.MEDIUM),
    ],
)
def test_dara_wording_is_normalised(text: str, expected: Risk) -> None:
    assert parse_risk(text) == expected


@pytest.mark.parametrize("value", [28, -1, 12.5, "99"])
def test_numbers_outside_dash_scores_are_errors(value: object) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_risk(value)


@pytest.mark.parametrize("text", ["low", "very high", "Red", "", True])
def test_unknown_risk_words_are_errors_naming_the_allowed_forms(text: object) -> None:
    with pytest.raises(ValueError, match="expected Standard, Medium or High"):
        parse_risk(text)


# --------------------------------------------------------------------------------------
# Crime status


@pytest.mark.parametrize("text", ["Crime", "CRIME", "Crimed", "C", "Crime incident"])
def test_crime_spellings_are_crime(text: str) -> None:
    assert parse_crime_status(text) == CrimeStatus.CRIME


@pytest.mark.parametrize(
    "text", ["Non Crime", "Non-crime", "NON-CRIME", "Noncrime", "NC", "Non-crime incident"]
)
def test_non_crime_spellings_are_non_crime(text: str) -> None:
    assert parse_crime_status(text) == CrimeStatus.NON_CRIME


@pytest.mark.parametrize("text", ["Y", "N", "Yes", "maybe", ""])
def test_yes_no_and_unknown_crime_status_are_errors(text: str) -> None:
    with pytest.raises(ValueError, match="not a crime status"):
        parse_crime_status(text)

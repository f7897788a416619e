"""The synthetic directory and police spreadsheets are what they claim to be: real GIAS,
contacts and roll formats, valid UPNs, both police layouts, the hard cases, no real data."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from gateway.config import REPOSITORY_RULES, load_config
from gateway.synthetic import (
    ChildKind,
    ExpectedChild,
    SampleDirectory,
    generate_directory,
    generate_police_workbook,
    write_sample,
)
from gateway.synthetic.words import TWIN_NAMES
from gateway.upn import upn_problem

REPORTED_ON = date(2026, 3, 2)  # a Monday: the sheet covers Friday to Sunday
RESERVED_DOMAINS = (".example.org", ".example.com", ".example.net")
GIAS_COLUMNS = (
    "URN", "LA (code)", "LA (name)", "EstablishmentNumber", "EstablishmentName",
    "TypeOfEstablishment (name)", "EstablishmentTypeGroup (name)", "EstablishmentStatus (name)",
    "PhaseOfEducation (name)", "StatutoryLowAge", "StatutoryHighAge", "OpenDate", "CloseDate",
    "Street", "Town", "Postcode", "TelephoneNum",
)  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleDirectory:
    return generate_directory(tmp_path_factory.mktemp("directory"), as_of=REPORTED_ON)


def read_csv(path: Path, encoding: str) -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle))


def roll_rows(sample: SampleDirectory) -> list[dict[str, str]]:
    return read_csv(sample.pupil_roll, "utf-8")


def capita_one() -> dict[str, str]:
    with (REPOSITORY_RULES / "pupil_roll.toml").open("rb") as handle:
        profiles: dict[str, dict[str, str]] = tomllib.load(handle)["profiles"]
    return profiles["capita_one"]


def age(dob: date, on: date) -> int:
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


def uk(text: str) -> date:
    return datetime.strptime(text, "%d/%m/%Y").date()


# --------------------------------------------------------------------------------------
# GIAS extract


def test_gias_extract_is_windows_1252_with_the_real_column_names(sample: SampleDirectory) -> None:
    raw = sample.gias.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the accented school name is one cp1252 byte, not UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("cp1252"), newline="")))
    assert set(GIAS_COLUMNS) <= set(rows[0])
    assert len(rows) == 40
    assert any("é" in row["EstablishmentName"] for row in rows)


def test_gias_dates_are_day_month_year_and_closed_schools_have_a_close_date(
    sample: SampleDirectory,
) -> None:
    rows = read_csv(sample.gias, "cp1252")
    for row in rows:
        for column in ("OpenDate", "CloseDate"):
            assert row[column] == "" or re.fullmatch(r"\d\d-\d\d-\d{4}", row[column])
        assert (row["EstablishmentStatus (name)"] == "Closed") == (row["CloseDate"] != "")
    assert any(row["EstablishmentStatus (name)"] == "Closed" for row in rows)


def test_gias_has_both_home_las_out_of_area_schools_and_every_phase(
    sample: SampleDirectory,
) -> None:
    rows = read_csv(sample.gias, "cp1252")
    las = Counter(row["LA (code)"] for row in rows)
    assert las["873"] > las["874"] > 0
    assert {"822", "881", "935"} <= set(las)
    phases = {row["PhaseOfEducation (name)"] for row in rows}
    assert {"Nursery", "Primary", "Secondary", "16 plus", "All-through"} <= phases
    types = {row["TypeOfEstablishment (name)"] for row in rows}
    assert {"Community school", "Academy converter", "Voluntary aided school",
            "Further education", "Pupil referral unit"} <= types  # fmt: skip


def test_gias_has_local_authority_nurseries_for_two_to_five_in_both_home_las(
    sample: SampleDirectory,
) -> None:
    nurseries = [
        row
        for row in read_csv(sample.gias, "cp1252")
        if row["TypeOfEstablishment (name)"] == "Local authority nursery school"
    ]
    assert {row["LA (code)"] for row in nurseries} >= {"873", "874"}
    for row in nurseries:
        assert row["PhaseOfEducation (name)"] == "Nursery"
        assert (row["StatutoryLowAge"], row["StatutoryHighAge"]) == ("2", "5")


def test_urns_are_six_digits_with_academies_from_136000(sample: SampleDirectory) -> None:
    for row in read_csv(sample.gias, "cp1252"):
        urn = int(row["URN"])
        assert 100000 <= urn <= 150000
        if row["EstablishmentTypeGroup (name)"] == "Academies":
            assert urn >= 136000


# --------------------------------------------------------------------------------------
# Contacts list


def test_every_open_school_has_one_dsl(sample: SampleDirectory) -> None:
    contacts = read_csv(sample.contacts, "utf-8")
    open_urns = {e.urn for e in sample.establishments if e.is_open}
    dsls = Counter(int(row["URN"]) for row in contacts if row["Role"] == "DSL")
    assert dsls == Counter(open_urns)
    roles = Counter(row["Role"] for row in contacts)
    assert set(roles) == {"DSL", "Deputy DSL", "DA Lead"}
    assert roles["Deputy DSL"] > roles["DA Lead"] > 0


def test_contact_fingerprints_are_forty_hex_digits_and_a_few_are_missing(
    sample: SampleDirectory,
) -> None:
    contacts = read_csv(sample.contacts, "utf-8")
    assert list(contacts[0]) == [
        "URN",
        "Role",
        "Name",
        "Email",
        "Phone",
        "Fingerprint",
        "Confirmed",
    ]
    fingerprints = [row["Fingerprint"] for row in contacts]
    assert all(f == "" or re.fullmatch(r"[0-9A-F]{40}", f) for f in fingerprints)
    assert 0 < fingerprints.count("") < len(fingerprints) / 10
    assert all(re.fullmatch(r"\d\d-\d\d-\d{4}", row["Confirmed"]) for row in contacts)


def test_no_email_address_or_phone_number_could_reach_anyone(sample: SampleDirectory) -> None:
    for row in read_csv(sample.contacts, "utf-8"):
        local, _, domain = row["Email"].partition("@")
        assert local and domain.endswith(RESERVED_DOMAINS), row["Email"]
        assert row["Phone"].startswith("07700 900")  # Ofcom's drama range
    for establishment in sample.establishments:
        assert establishment.telephone.startswith(("01632960", "03069990"))


# --------------------------------------------------------------------------------------
# Pupil roll


def test_roll_columns_are_the_capita_one_profile(sample: SampleDirectory) -> None:
    with sample.pupil_roll.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert sorted(header) == sorted(capita_one().values())
    assert len(roll_rows(sample)) == 3000


def test_every_upn_has_a_valid_check_letter_but_a_deliberate_few(
    sample: SampleDirectory,
) -> None:
    upns = [row["UPN"] for row in roll_rows(sample)]
    invalid = [upn for upn in upns if upn_problem(upn) is not None]
    assert 0 < len(invalid) <= len(upns) * 0.01
    assert all(len(upn) == 13 for upn in invalid)  # wrong check letter, not garbage
    assert len(set(upns)) == len(upns)


def test_pupils_are_of_an_age_their_school_takes(sample: SampleDirectory) -> None:
    schools = {e.urn: e for e in sample.establishments}
    for row in roll_rows(sample):
        school = schools[int(row["School URN"])]
        assert school.is_open
        assert school.statutory_low_age is not None and school.statutory_high_age is not None
        pupil_age = age(uk(row["Date of Birth"]), REPORTED_ON)
        assert school.statutory_low_age <= pupil_age <= school.statutory_high_age, row


def test_nursery_children_are_two_to_four(sample: SampleDirectory) -> None:
    nurseries = {e.urn for e in sample.establishments if e.phase_name == "Nursery"}
    ages = {
        age(uk(row["Date of Birth"]), REPORTED_ON)
        for row in roll_rows(sample)
        if int(row["School URN"]) in nurseries
    }
    assert ages and ages <= {2, 3, 4}


def test_entry_dates_are_past_and_a_few_pupils_left_recently(sample: SampleDirectory) -> None:
    rows = roll_rows(sample)
    leavers = 0
    for row in rows:
        entry = uk(row["Entry Date"])
        assert entry < REPORTED_ON
        if row["Leaving Date"]:
            leavers += 1
            left = uk(row["Leaving Date"])
            assert entry < left < REPORTED_ON
            assert (REPORTED_ON - left).days <= 90
    assert 0.005 * len(rows) < leavers < 0.04 * len(rows)


def test_some_pupils_go_by_other_names_and_have_middle_names(sample: SampleDirectory) -> None:
    rows = roll_rows(sample)
    other_forename = [r for r in rows if r["Preferred Forename"] not in ("", r["Legal Forename"])]
    other_surname = [r for r in rows if r["Preferred Surname"] not in ("", r["Legal Surname"])]
    assert len(other_forename) > 30
    assert len(other_surname) > 10
    assert sum(1 for r in rows if r["Middle Names"]) > len(rows) / 4
    names = " ".join(r["Legal Forename"] + " " + r["Legal Surname"] for r in rows)
    for hard in ("'", "-", "ë", "é", "Ł"):
        assert hard in names


def test_postcodes_are_in_cambridgeshire_and_peterborough_areas(sample: SampleDirectory) -> None:
    for row in roll_rows(sample):
        assert re.fullmatch(r"(CB|PE)\d{1,2} \d[A-Z]{2}", row["Postcode"]), row["Postcode"]


def test_twins_share_birthday_surname_and_school_with_similar_forenames(
    sample: SampleDirectory,
) -> None:
    assert sample.twins
    for household in sample.twins:
        first, second = household.pupils
        assert (first.dob, first.legal_surname, first.urn) == (
            second.dob,
            second.legal_surname,
            second.urn,
        )
        assert {first.legal_forename, second.legal_forename} in [set(p) for p in TWIN_NAMES]


def test_namesakes_share_name_and_birthday_at_two_schools(sample: SampleDirectory) -> None:
    assert sample.namesakes
    for one, other in sample.namesakes:
        a, b = one.pupils[0], other.pupils[0]
        assert (a.legal_forename, a.legal_surname, a.dob) == (
            b.legal_forename,
            b.legal_surname,
            b.dob,
        )
        assert a.urn != b.urn


def test_a_small_roll_is_kept_whole(sample: SampleDirectory) -> None:
    assert sample.complete
    assert len(sample.pupils) == 3000
    assert {p.upn for p in sample.pupils} == {row["UPN"] for row in roll_rows(sample)}


def test_a_large_roll_keeps_only_a_sample_in_memory(tmp_path: Path) -> None:
    large = generate_directory(tmp_path, establishments=60, pupils=60_000)
    assert not large.complete
    assert len(large.pupils) < 45_000
    with large.pupil_roll.open(encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 60_001


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    one = generate_directory(tmp_path / "one", seed=7)
    two = generate_directory(tmp_path / "two", seed=7)
    other = generate_directory(tmp_path / "other", seed=8)
    for name in ("gias", "contacts", "pupil_roll"):
        assert getattr(one, name).read_bytes() == getattr(two, name).read_bytes()
        assert getattr(one, name).read_bytes() != getattr(other, name).read_bytes()


def test_xlsx_roll_has_the_profile_header_and_real_dates(tmp_path: Path) -> None:
    sample = generate_directory(tmp_path, pupils=500, roll_format="xlsx")
    assert sample.pupil_roll.suffix == ".xlsx"
    workbook = openpyxl.load_workbook(sample.pupil_roll, read_only=True)
    sheet = workbook.active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    workbook.close()
    assert sorted(str(c) for c in rows[0]) == sorted(capita_one().values())
    assert len(rows) == 501
    dob = rows[1][list(rows[0]).index("Date of Birth")]
    assert isinstance(dob, datetime)


def test_an_unknown_roll_profile_is_refused_by_name(tmp_path: Path) -> None:
    from gateway.errors import RulesError

    with pytest.raises(RulesError, match="no_such_system"):
        generate_directory(tmp_path, roll_profile="no_such_system")


# --------------------------------------------------------------------------------------
# Police spreadsheets


def police_rows(path: Path) -> list[tuple[object, ...]]:
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def test_per_child_workbook_has_title_blank_row_then_police_headers(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "police.xlsx"
    expected = generate_police_workbook(path, sample, reported_on=REPORTED_ON)
    rows = police_rows(path)
    assert rows[0][0] and "Encompass" in str(rows[0][0])
    assert all(cell is None for cell in rows[1])
    header = rows[2]
    for wording in ("Occurrence Number", "Date/Time of Incident", "DASH Risk",
                    "Crime / Non-Crime", "Brief Circumstances", "Child Name", "Child DOB",
                    "Relationship to Child", "School Attended", "Voice of the Child"):  # fmt: skip
        assert wording in header
    assert len(rows) == 3 + len(expected)
    refs = header.index("Occurrence Number")
    assert [row[refs] for row in rows[3:]] == [child.incident_ref for child in expected]
    assert [child.row for child in expected] == list(range(4, 4 + len(expected)))
    assert len({child.incident_ref for child in expected}) == 12


def test_per_incident_workbook_has_child_n_column_groups(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "police.xlsx"
    expected = generate_police_workbook(
        path, sample, layout="per_incident", incidents=15, reported_on=REPORTED_ON
    )
    rows = police_rows(path)
    header = rows[2]
    for n in (1, 2, 3):
        assert {f"Child {n} Name", f"Child {n} DOB", f"Child {n} School"} <= set(header)
    assert len(rows) == 3 + 15
    for child in expected:
        assert child.group is not None
        row = rows[child.row - 1]
        assert row[header.index(f"Child {child.group} Name")] == child.written_name


def test_every_police_header_is_in_the_header_map(sample: SampleDirectory, tmp_path: Path) -> None:
    with (REPOSITORY_RULES / "police_headers.toml").open("rb") as handle:
        rules = tomllib.load(handle)
    aliases = {a for section in ("incident", "child") for names in rules[section].values()
               for a in names}  # fmt: skip
    suffixes = {a for names in rules["child_group_suffixes"].values() for a in names}

    def key(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())

    for layout in ("per_child", "per_incident"):
        path = tmp_path / f"{layout}.xlsx"
        generate_police_workbook(path, sample, layout=layout, reported_on=REPORTED_ON)
        for header in police_rows(path)[2]:
            text = key(str(header))
            group = re.fullmatch(r"child \d+ ?(.*)", text)
            assert text in aliases or (group and group[1] in suffixes), header


def test_incidents_happened_over_the_weekend_before_a_monday_sheet(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "police.xlsx"
    generate_police_workbook(path, sample, incidents=30, noise=False, reported_on=REPORTED_ON)
    rows = police_rows(path)
    when = rows[2].index("Date/Time of Incident")
    days = {row[when].date() for row in rows[3:] if isinstance(row[when], datetime)}
    assert days == {date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)}


def test_without_noise_children_are_written_plainly_as_on_the_roll(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "police.xlsx"
    expected = generate_police_workbook(path, sample, noise=False, reported_on=REPORTED_ON)
    pupils = {p.upn: p for p in sample.pupils}
    rows = police_rows(path)
    header = rows[2]
    for child in expected:
        row = rows[child.row - 1]
        assert row[header.index("Child DOB")] == datetime.combine(child.dob, datetime.min.time())
        assert row[header.index("DASH Risk")] in ("Standard", "Medium", "High")
        if child.kind is ChildKind.PUPIL:
            pupil = pupils[child.upn]
            assert child.written_name == f"{pupil.legal_forename} {pupil.legal_surname}"


def test_with_noise_names_dates_and_risks_are_written_in_many_ways(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "police.xlsx"
    expected = generate_police_workbook(path, sample, incidents=80, reported_on=REPORTED_ON)
    rows = police_rows(path)
    header = rows[2]
    names = [child.written_name for child in expected]
    assert any(re.fullmatch(r"[A-Z' -]+, \w.*", name) for name in names)  # SURNAME, Forename
    assert any(name.isupper() and "," not in name for name in names)
    dobs = [row[header.index("Child DOB")] for row in rows[3:]]
    assert any(isinstance(dob, datetime) for dob in dobs)
    texts = [dob for dob in dobs if isinstance(dob, str)]
    assert any(re.fullmatch(r"\d\d/\d\d/\d{4}", t) for t in texts)
    assert any(re.fullmatch(r"\d{1,2}\.\d{1,2}\.\d\d", t) for t in texts)
    assert any(re.fullmatch(r"\d\d-[A-Z][a-z]{2}-\d{4}", t) for t in texts)
    assert any(re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{4}", t) for t in texts)
    assert any(isinstance(r[header.index("DASH Risk")], int) for r in rows[3:])
    schools = {e.name for e in sample.establishments}
    written = {r[header.index("School Attended")] for r in rows[3:]} - {None}
    assert written - schools  # some abbreviated or misspelt


def test_hard_cases_are_included_from_ten_incidents(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    expected = generate_police_workbook(tmp_path / "p.xlsx", sample, reported_on=REPORTED_ON)
    kinds = Counter(child.kind for child in expected)
    for kind in ChildKind:
        assert kinds[kind] > 0, kind
    assert kinds[ChildKind.TWIN] == 2  # both twins are at the incident


def test_expected_schools_say_what_each_child_really_is(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    expected = generate_police_workbook(
        tmp_path / "p.xlsx", sample, incidents=60, reported_on=REPORTED_ON
    )
    schools = {e.urn: e for e in sample.establishments}
    pupils = {p.upn: p for p in sample.pupils}
    for child in expected:
        on = REPORTED_ON  # every incident is within three days before it
        if child.kind in (ChildKind.PUPIL, ChildKind.TWIN, ChildKind.NAMESAKE):
            assert child.expected_urn == pupils[child.upn].urn
            school = schools[child.expected_urn]
            assert child.routable == (school.is_open and school.la_code in (873, 874))
        elif child.kind is ChildKind.OUT_OF_AREA:
            assert child.expected_urn is not None
            assert schools[child.expected_urn].la_code not in (873, 874)
            assert not child.routable
        elif child.kind is ChildKind.MOVED:
            assert child.expected_urn != pupils[child.upn].urn
            assert not child.routable
        elif child.kind is ChildKind.ADULT:
            assert age(child.dob, on) >= 18
            assert not child.routable
        else:
            assert child.expected_urn is None and not child.routable
        if child.kind is ChildKind.NOT_ON_ROLL:
            assert age(child.dob, on) < 2


def test_a_child_who_moved_has_the_new_school_written_by_the_police(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "police.xlsx"
    expected = generate_police_workbook(path, sample, incidents=1000, reported_on=REPORTED_ON)
    rows = police_rows(path)
    school = rows[2].index("School Attended")
    moved = [child for child in expected if child.kind is ChildKind.MOVED]
    assert moved
    for child in moved:
        assert rows[child.row - 1][school], "without the new school nobody could know"


def test_the_deliberate_adult_is_eighteen_and_not_on_the_roll(
    sample: SampleDirectory, tmp_path: Path
) -> None:
    expected = generate_police_workbook(tmp_path / "p.xlsx", sample, reported_on=REPORTED_ON)
    adults = [c for c in expected if c.kind is ChildKind.ADULT and not c.upn]
    assert adults
    assert all(age(adult.dob, REPORTED_ON - timedelta(days=3)) == 18 for adult in adults)


def test_police_workbook_is_deterministic(sample: SampleDirectory, tmp_path: Path) -> None:
    def truth(seed: int) -> list[ExpectedChild]:
        return generate_police_workbook(
            tmp_path / f"{seed}.xlsx", sample, seed=seed, reported_on=REPORTED_ON
        )

    assert truth(3) == truth(3)
    assert truth(3) != truth(4)


# --------------------------------------------------------------------------------------
# The ready-made sample


def test_write_sample_makes_a_config_the_gateway_accepts(tmp_path: Path) -> None:
    made = write_sample(tmp_path, reported_on=REPORTED_ON)
    loaded = load_config(made.config)
    settings = loaded.config.directory
    assert settings.gias == made.directory.gias.resolve()
    assert settings.contacts == made.directory.contacts.resolve()
    assert settings.pupil_roll == made.directory.pupil_roll.resolve()
    assert settings.roll_profile == "capita_one"
    assert loaded.rules_dir == REPOSITORY_RULES
    assert loaded.database.is_relative_to(tmp_path.resolve())
    assert made.workbook.exists()
    assert len({child.incident_ref for child in made.expected}) == 12

from datetime import date
from pathlib import Path

import pytest
from matching_corpus import InMemoryDirectory, establishment

from gateway.errors import RulesError
from gateway.matching import load_match_policy, match_child
from gateway.model import ChildRecord, MatchResult, MatchStatus, Pupil, SourceRow
from gateway.names import load_nicknames
from gateway.schoolnames import SchoolNameIndex, load_school_aliases

RULES = Path(__file__).resolve().parents[1] / "rules"
DOB = date(2015, 2, 1)
INCIDENT = date(2026, 3, 10)

PARKSIDE = 110001
ELY_JUNIOR = 110002
PARKSIDE_COLLEGE = 110003
NENE_PARK = 110004
GIAS = (
    establishment(PARKSIDE, "Parkside Primary School"),
    establishment(ELY_JUNIOR, "Ely Junior School"),
    establishment(PARKSIDE_COLLEGE, "Parkside Community College"),
    establishment(NENE_PARK, "Nene Park Academy"),
)


def pupil(forename: str, surname: str, urn: int = PARKSIDE, **extra: object) -> Pupil:
    upn = str(extra.pop("upn", f"{forename}-{surname}-{urn}"))
    dob = extra.pop("dob", DOB)
    return Pupil(upn, forename, surname, dob, urn, **extra)


def child(forename: str, surname: str, **extra: object) -> ChildRecord:
    extra.setdefault("dob", DOB)
    return ChildRecord(forename, surname, source=SourceRow("police.xlsx", "Sheet1", 2), **extra)


def match(police: ChildRecord, *roll: Pupil, on: date = INCIDENT) -> MatchResult:
    return match_child(
        police,
        on,
        InMemoryDirectory(GIAS, roll),
        SchoolNameIndex(GIAS, load_school_aliases(RULES)),
        load_nicknames(RULES),
        load_match_policy(RULES),
    )


def assert_matched(result: MatchResult, urn: int = PARKSIDE) -> None:
    assert result.status is MatchStatus.MATCHED, result.reason
    assert result.urn == urn


# --------------------------------------------------------------------------------------
# Names


def test_exact_name_and_date_of_birth_is_matched() -> None:
    result = match(child("Jack", "Smith"), pupil("Jack", "Smith"), pupil("Amelia", "Brown"))
    assert_matched(result)
    assert result.candidates[0].agreed == ("dob", "forename", "surname")
    assert "Jack Smith at Parkside Primary School" in result.reason


def test_pupil_born_on_another_day_is_not_a_candidate() -> None:
    result = match(child("Jack", "Smith"), pupil("Jack", "Smith", dob=date(2015, 2, 2)))
    assert result.status is MatchStatus.NO_CANDIDATE
    assert result.candidates == ()


def test_child_without_date_of_birth_is_no_candidate() -> None:
    result = match(child("Jack", "Smith", dob=None), pupil("Jack", "Smith"))
    assert result.status is MatchStatus.NO_CANDIDATE
    assert "no date of birth" in result.reason


def test_capitals_and_spaces_do_not_matter() -> None:
    assert_matched(match(child("  JACK ", "SMITH  "), pupil("Jack", "Smith")))


def test_forename_and_surname_swapped_is_matched() -> None:
    result = match(child("Smith", "Jack"), pupil("Jack", "Smith"))
    assert_matched(result)
    assert "forename and surname swapped" in result.candidates[0].note


def test_pupils_with_each_others_names_swapped_are_ambiguous() -> None:
    roll = (pupil("Owen", "Thomas"), pupil("Thomas", "Owen", ELY_JUNIOR))
    assert match(child("Owen", "Thomas"), *roll).status is MatchStatus.AMBIGUOUS


def test_nickname_is_matched() -> None:
    result = match(child("Alfie", "Jones"), pupil("Alfred", "Jones"))
    assert_matched(result)
    assert "nickname" in result.candidates[0].note


def test_preferred_forename_is_matched() -> None:
    result = match(child("Sunny", "Patel"), pupil("Sanjay", "Patel", preferred_forename="Sunny"))
    assert_matched(result)
    assert "known as Sunny Patel" in result.reason


def test_preferred_surname_is_matched() -> None:
    roll = pupil("Mia", "Walker", preferred_surname="Green")
    assert_matched(match(child("Mia", "Green"), roll))


def test_middle_name_used_as_forename_is_matched() -> None:
    result = match(child("James", "Wood"), pupil("Oliver", "Wood", middle_names="James Arthur"))
    assert_matched(result)
    assert "middle name James" in result.candidates[0].note


@pytest.mark.parametrize("written", ["Smith Jones", "SmithJones", "SMITH-JONES", "Jones"])
def test_double_barrelled_surname_written_differently_is_matched(written: str) -> None:
    assert_matched(match(child("Ava", written), pupil("Ava", "Smith-Jones")))


@pytest.mark.parametrize(("forename", "surname"), [("Zoe", "ONeill"), ("ZOË", "O Neill")])
def test_apostrophe_and_accent_variants_are_matched(forename: str, surname: str) -> None:
    assert_matched(match(child(forename, surname), pupil("Zoë", "O'Neill")))


def test_small_typo_in_a_long_name_is_matched() -> None:
    assert_matched(match(child("Olivia", "Richardsen"), pupil("Olivia", "Richardson")))


def test_typo_in_a_short_name_goes_to_the_navigator() -> None:
    result = match(child("Jcak", "Smith"), pupil("Jack", "Smith"))
    assert result.status is MatchStatus.AMBIGUOUS
    assert "differ too much to be sure" in result.reason
    assert result.candidates[0].urn == PARKSIDE


def test_forename_only_match_never_routes() -> None:
    result = match(child("Jack", "Brown"), pupil("Jack", "Smith"))
    assert result.status is MatchStatus.NO_CANDIDATE
    assert "forename only" in result.candidates[0].note
    assert "forename only" in result.reason


def test_surname_only_match_never_routes() -> None:
    result = match(child("Poppy", "Smith"), pupil("Jack", "Smith"))
    assert result.status is MatchStatus.NO_CANDIDATE
    assert "surname only" in result.candidates[0].note


def test_surname_only_partly_alike_never_routes_however_exact_the_forename() -> None:
    result = match(child("Jack", "Smith"), pupil("Jack", "Smithers"))
    assert result.status is MatchStatus.AMBIGUOUS
    assert result.candidates[0].agreed == ("dob", "forename")


def test_forename_only_partly_alike_never_routes_however_exact_the_surname() -> None:
    result = match(child("Jack", "Smith"), pupil("Jackson", "Smith"))
    assert result.status is MatchStatus.AMBIGUOUS
    assert result.candidates[0].agreed == ("dob", "surname")


def test_no_pupil_with_a_similar_name_is_no_candidate() -> None:
    result = match(child("Poppy", "Fairweather"), pupil("Jack", "Smith"), pupil("Ava", "Brown"))
    assert result.status is MatchStatus.NO_CANDIDATE
    assert result.candidates == ()
    assert "has a name like Poppy Fairweather" in result.reason


# --------------------------------------------------------------------------------------
# Near-ties


def test_twins_jack_and_jake_are_ambiguous() -> None:
    result = match(child("Jack", "Smith"), pupil("Jack", "Smith"), pupil("Jake", "Smith"))
    assert result.status is MatchStatus.AMBIGUOUS
    assert result.urn is None
    assert "Jack Smith at Parkside Primary School" in result.reason
    assert "Jake Smith at Parkside Primary School" in result.reason


def test_twins_sharing_a_nickname_are_ambiguous() -> None:
    roll = (pupil("Alexander", "Khan"), pupil("Alexandra", "Khan"))
    assert match(child("Alex", "Khan"), *roll).status is MatchStatus.AMBIGUOUS


def test_twins_with_different_names_are_told_apart() -> None:
    result = match(child("George", "Smith"), pupil("George", "Smith"), pupil("Poppy", "Smith"))
    assert_matched(result)


def test_same_name_and_date_of_birth_at_two_schools_is_ambiguous() -> None:
    roll = (pupil("Jack", "Smith"), pupil("Jack", "Smith", ELY_JUNIOR))
    result = match(child("Jack", "Smith"), *roll)
    assert result.status is MatchStatus.AMBIGUOUS
    assert result.reason == (
        "two pupils named Jack Smith born 01/02/2015: Parkside Primary School and Ely Junior School"
    )
    assert {c.urn for c in result.candidates} == {PARKSIDE, ELY_JUNIOR}


def test_postcode_never_tells_two_pupils_of_the_same_name_apart() -> None:
    roll = (pupil("Jack", "Smith", postcode="CB6 1AA"), pupil("Jack", "Smith", ELY_JUNIOR))
    result = match(child("Jack", "Smith", postcode="cb61aa"), *roll)
    assert result.status is MatchStatus.AMBIGUOUS
    assert "postcode" in result.candidates[0].agreed


def test_exact_name_beats_a_nickname_only_by_a_near_tie() -> None:
    roll = (pupil("Harry", "Jones"), pupil("Henry", "Jones", ELY_JUNIOR))
    assert match(child("Harry", "Jones"), *roll).status is MatchStatus.AMBIGUOUS


def test_same_pupil_on_roll_at_two_schools_is_ambiguous() -> None:
    roll = (pupil("Jack", "Smith", upn="A1"), pupil("Jack", "Smith", ELY_JUNIOR, upn="A1"))
    result = match(child("Jack", "Smith"), *roll)
    assert result.status is MatchStatus.AMBIGUOUS
    assert "is on roll at two schools (UPN A1)" in result.reason


def test_repeated_roll_row_counts_once() -> None:
    roll = (pupil("Jack", "Smith", upn="A1"), pupil("Jack", "Smith", upn="A1"))
    result = match(child("Jack", "Smith"), *roll)
    assert_matched(result)
    assert len(result.candidates) == 1


def test_candidates_are_ranked_best_first() -> None:
    roll = (pupil("Jake", "Smith", ELY_JUNIOR), pupil("Jack", "Smith"), pupil("Jack", "Brown"))
    result = match(child("Jack", "Smith"), *roll)
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert result.candidates[0].urn == PARKSIDE
    assert result.candidates[0].score == 100


# --------------------------------------------------------------------------------------
# On roll on the day


def test_pupil_who_left_before_the_incident_does_not_count() -> None:
    result = match(child("Jack", "Smith"), pupil("Jack", "Smith", leaving_date=date(2025, 7, 22)))
    assert result.status is MatchStatus.NO_CANDIDATE
    assert "Jack Smith at Parkside Primary School left on 22/07/2025" in result.reason


def test_pupil_who_moved_school_is_matched_at_the_new_school() -> None:
    roll = (
        pupil("Jack", "Smith", upn="A1", leaving_date=date(2026, 2, 13)),
        pupil("Jack", "Smith", ELY_JUNIOR, upn="A1", entry_date=date(2026, 2, 23)),
    )
    result = match(child("Jack", "Smith"), *roll)
    assert_matched(result, ELY_JUNIOR)
    assert "not counted: Jack Smith at Parkside Primary School left on 13/02/2026" in result.reason


def test_a_different_pupil_who_left_with_as_close_a_name_makes_it_ambiguous() -> None:
    roll = (
        pupil("James", "Ward", upn="A1", leaving_date=date(2026, 1, 16)),
        pupil("Callum", "Ward", ELY_JUNIOR, upn="A2", middle_names="James"),
    )
    result = match(child("James", "Ward"), *roll)
    assert result.status is MatchStatus.AMBIGUOUS
    assert "a different pupil not on roll that day, James Ward at Parkside" in result.reason
    assert [c.urn for c in result.candidates] == [ELY_JUNIOR]


def test_pupil_starting_a_new_school_after_the_incident_counts_at_the_old_one() -> None:
    roll = (
        pupil("Jack", "Smith", upn="A1", leaving_date=date(2026, 3, 20)),
        pupil("Jack", "Smith", ELY_JUNIOR, upn="A1", entry_date=date(2026, 3, 23)),
    )
    result = match(child("Jack", "Smith"), *roll)
    assert_matched(result, PARKSIDE)
    assert "starts there on 23/03/2026" in result.reason


def test_pupil_leaving_on_the_incident_day_still_counts() -> None:
    assert_matched(match(child("Jack", "Smith"), pupil("Jack", "Smith", leaving_date=INCIDENT)))


# --------------------------------------------------------------------------------------
# The police's school


def test_police_school_agreeing_with_the_roll_is_matched() -> None:
    result = match(child("Jack", "Smith", school_text="Parkside Prim"), pupil("Jack", "Smith"))
    assert_matched(result)
    assert result.police_school_urn == PARKSIDE
    assert "school" in result.candidates[0].agreed
    assert "the police named the same school" in result.reason


def test_police_school_differing_from_the_roll_is_a_conflict() -> None:
    result = match(child("Jack", "Smith", school_text="Ely Juniors"), pupil("Jack", "Smith"))
    assert result.status is MatchStatus.CONFLICT
    assert result.urn is None
    assert result.police_school_urn == ELY_JUNIOR
    assert result.candidates[0].urn == PARKSIDE
    assert "not the police's school" in result.candidates[0].note
    assert result.reason == (
        "Jack Smith born 01/02/2015 is Jack Smith at Parkside Primary School on the pupil roll, "
        "but the police named Ely Junior School"
    )


def test_police_school_fitting_the_roll_school_and_another_is_matched_with_the_doubt() -> None:
    result = match(child("Jack", "Smith", school_text="Parkside"), pupil("Jack", "Smith"))
    assert_matched(result)
    assert result.police_school_urn is None
    assert "'Parkside', which fits Parkside Primary School and 1 other school" in result.reason


def test_police_school_that_cannot_be_found_is_a_conflict() -> None:
    result = match(child("Jack", "Smith", school_text="Hogwarts"), pupil("Jack", "Smith"))
    assert result.status is MatchStatus.CONFLICT
    assert "'Hogwarts'" in result.reason
    assert "matches no open school" in result.reason


def test_school_not_known_to_the_police_is_as_if_none_given() -> None:
    result = match(child("Jack", "Smith", school_text="N/K"), pupil("Jack", "Smith"))
    assert_matched(result)
    assert "the police gave no school" in result.reason


def test_police_school_never_chooses_between_two_pupils() -> None:
    roll = (pupil("Jack", "Smith"), pupil("Jack", "Smith", ELY_JUNIOR))
    result = match(child("Jack", "Smith", school_text="Parkside Primary School"), *roll)
    assert result.status is MatchStatus.AMBIGUOUS
    assert result.police_school_urn == PARKSIDE


def test_stale_police_school_after_a_move_is_a_conflict() -> None:
    roll = (
        pupil("Jack", "Smith", upn="A1", leaving_date=date(2026, 2, 13)),
        pupil("Jack", "Smith", ELY_JUNIOR, upn="A1", entry_date=date(2026, 2, 23)),
    )
    result = match(child("Jack", "Smith", school_text="Parkside Primary"), *roll)
    assert result.status is MatchStatus.CONFLICT
    assert result.candidates[0].urn == ELY_JUNIOR


def test_school_missing_from_gias_is_named_by_urn() -> None:
    result = match(child("Jack", "Smith"), pupil("Jack", "Smith", 999999))
    assert_matched(result, 999999)
    assert result.candidates[0].school_name == "URN 999999 (not in GIAS)"


# --------------------------------------------------------------------------------------
# The policy file


def test_shipped_policy_keeps_postcode_below_the_margin() -> None:
    policy = load_match_policy(RULES)
    assert policy.postcode_weight < policy.min_margin


def write_policy(tmp_path: Path, **changes: object) -> Path:
    lines = (RULES / "matching.toml").read_text(encoding="utf-8").splitlines()
    for key, value in changes.items():
        lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in lines]
    (tmp_path / "matching.toml").write_text("\n".join(lines), encoding="utf-8")
    return tmp_path


def test_postcode_weight_as_large_as_the_margin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="postcode_weight: value error, must be less than"):
        load_match_policy(write_policy(tmp_path, postcode_weight=20))


def test_possible_above_the_name_minimums_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="possible: value error, must not be above"):
        load_match_policy(write_policy(tmp_path, possible=90))


def test_score_outside_0_to_100_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="nickname_score: input should be less than or equal"):
        load_match_policy(write_policy(tmp_path, nickname_score=120))

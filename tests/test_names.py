from pathlib import Path

import pytest

from gateway.errors import RulesError
from gateway.names import Nicknames, load_nicknames, name_form, normalise_name

RULES = Path(__file__).resolve().parents[1] / "rules"


def write_nicknames(tmp_path: Path, body: str) -> Path:
    (tmp_path / "nicknames.toml").write_text(body, encoding="utf-8")
    return tmp_path


def test_apostrophe_forms_of_oneill_compare_equal() -> None:
    forms = {name_form(text).compact for text in ("O'Neill", "ONeill", "O Neill", "O\u2019NEILL")}
    assert forms == {"oneill"}


def test_hyphenated_surname_keeps_both_parts_as_words() -> None:
    hyphenated = name_form("Smith-Jones")
    assert hyphenated.tokens == ("smith", "jones")
    assert hyphenated.compact == name_form("Smith Jones").compact == name_form("SmithJones").compact


def test_accents_and_capitals_are_ignored() -> None:
    assert normalise_name("ZOË") == "zoe"
    assert normalise_name("Müller") == "muller"
    assert normalise_name("Łukasz Żółć") == "lukasz zolc"
    assert normalise_name("Søren Ærø") == "soren aero"


def test_extra_spaces_and_punctuation_are_dropped() -> None:
    assert normalise_name("  Mary   Jane. ") == "mary jane"
    assert not name_form("  ")


def test_shipped_table_pairs_a_nickname_with_its_full_name() -> None:
    nicknames = load_nicknames(RULES)
    assert nicknames.equivalent("alfie", "alfred")
    assert nicknames.equivalent("alfred", "alfie")
    assert nicknames.equivalent("jack", "john")
    assert nicknames.equivalent("zak", "zachary")


def test_two_short_forms_of_one_name_are_equivalent() -> None:
    assert load_nicknames(RULES).equivalent("bill", "liam")


def test_two_full_names_sharing_a_short_form_are_not_equivalent() -> None:
    nicknames = load_nicknames(RULES)
    assert nicknames.equivalent("alex", "alexander")
    assert nicknames.equivalent("alex", "alexandra")
    assert not nicknames.equivalent("alexander", "alexandra")
    assert not nicknames.equivalent("charles", "charlotte")


def test_a_name_not_in_the_table_is_only_itself() -> None:
    nicknames = Nicknames({"william": ["bill"]})
    assert nicknames.forms("zebedee") == frozenset({"zebedee"})
    assert not nicknames.equivalent("zebedee", "william")


def test_table_entries_are_normalised_when_loaded(tmp_path: Path) -> None:
    rules = write_nicknames(tmp_path, '[names]\n"Zoë" = ["ZOZO"]\n')
    assert load_nicknames(rules).equivalent("zoe", "zozo")


def test_two_word_nickname_is_refused(tmp_path: Path) -> None:
    rules = write_nicknames(tmp_path, '[names]\nmary = ["Mary Jane"]\n')
    with pytest.raises(RulesError, match=r"names\.mary\.0: .*must be a single name"):
        load_nicknames(rules)


def test_nickname_listed_twice_is_refused(tmp_path: Path) -> None:
    rules = write_nicknames(tmp_path, '[names]\nwilliam = ["bill", "will", "bill"]\n')
    with pytest.raises(RulesError, match=r"nicknames\.toml: names\.william.*listed twice"):
        load_nicknames(rules)


def test_name_listed_as_its_own_nickname_is_refused(tmp_path: Path) -> None:
    rules = write_nicknames(tmp_path, '[names]\nwilliam = ["bill", "William"]\n')
    with pytest.raises(RulesError, match=r"names\.william: lists itself"):
        load_nicknames(rules)


def test_unknown_key_in_nickname_file_is_refused(tmp_path: Path) -> None:
    rules = write_nicknames(tmp_path, 'nicknames = {william = ["bill"]}\n[names]\n')
    with pytest.raises(RulesError, match="nicknames: unknown key; allowed here: names"):
        load_nicknames(rules)


def test_missing_nickname_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"nicknames\.toml: file not found"):
        load_nicknames(tmp_path)

from pathlib import Path

import pytest
from matching_corpus import establishment

from gateway.errors import RulesError
from gateway.model import Establishment
from gateway.schoolnames import SchoolNameIndex, load_school_aliases

RULES = Path(__file__).resolve().parents[1] / "rules"

ST_MARYS_CE = 110001
ST_MARYS_RC = 110002
PARKSIDE_PRIMARY = 110003
PARKSIDE_COLLEGE = 110004
ELY_COLLEGE = 110005
NENE_PARK = 110006
QUEEN_KATHARINE = 110007
WILLIAM_LAW = 110008
ELY_JUNIOR = 110009

GIAS = (
    establishment(ST_MARYS_CE, "St Mary's Church of England Primary School"),
    establishment(ST_MARYS_RC, "St Mary's Catholic Primary School"),
    establishment(PARKSIDE_PRIMARY, "Parkside Primary School"),
    establishment(PARKSIDE_COLLEGE, "Parkside Community College"),
    establishment(ELY_COLLEGE, "Ely College"),
    establishment(NENE_PARK, "Nene Park Academy"),
    establishment(QUEEN_KATHARINE, "Queen Katharine Academy"),
    establishment(WILLIAM_LAW, "William Law CofE Primary School"),
    establishment(ELY_JUNIOR, "Ely Junior School"),
)


def index(*extra: Establishment, aliases: dict[str, int] | None = None) -> SchoolNameIndex:
    rules = load_school_aliases(RULES)
    if aliases is not None:
        rules = rules.model_copy(update={"aliases": aliases})
    return SchoolNameIndex([*GIAS, *extra], rules)


@pytest.mark.parametrize(
    ("text", "urn"),
    [
        ("St Marys CE Prim", ST_MARYS_CE),
        ("ST. MARY'S C OF E PRIMARY", ST_MARYS_CE),
        ("St Marys RC", ST_MARYS_RC),
        ("St Mary's Roman Catholic Primary", ST_MARYS_RC),
        ("Ely College", ELY_COLLEGE),
        ("Ely Coll", ELY_COLLEGE),
        ("Nene Park Acad", NENE_PARK),
        ("William Law C.E. Primary", WILLIAM_LAW),
        ("Ely Juniors", ELY_JUNIOR),
        ("Parkside Comm Coll", PARKSIDE_COLLEGE),
    ],
)
def test_abbreviated_school_resolves_to_its_establishment(text: str, urn: int) -> None:
    resolution = index().resolve(text)
    assert resolution.given
    assert resolution.urn == urn
    assert resolution.fitting == {urn}


def test_misspelt_school_resolves() -> None:
    assert index().resolve("Parksdie Primary").urn == PARKSIDE_PRIMARY


def test_school_words_run_together_resolve() -> None:
    assert index().resolve("QueenKatharine Academy").urn == QUEEN_KATHARINE


def test_text_fitting_two_schools_names_neither() -> None:
    resolution = index().resolve("Parkside")
    assert resolution.urn is None
    assert resolution.fitting == {PARKSIDE_PRIMARY, PARKSIDE_COLLEGE}
    assert {c.urn for c in resolution.candidates} >= {PARKSIDE_PRIMARY, PARKSIDE_COLLEGE}
    assert "could be any of 2 schools" in resolution.reason


def test_school_of_another_kind_with_the_same_place_name_does_not_fit() -> None:
    resolution = index().resolve("Parkside Academy")
    assert resolution.urn is None
    assert not resolution.fits(PARKSIDE_PRIMARY)
    assert not resolution.fits(PARKSIDE_COLLEGE)


def test_unknown_school_fits_nothing() -> None:
    resolution = index().resolve("Hogwarts School of Witchcraft")
    assert resolution.given
    assert resolution.urn is None
    assert resolution.fitting == frozenset()
    assert "matches no open school" in resolution.reason


@pytest.mark.parametrize("text", ["", "  ", "N/K", "n.k.", "NK", "Not Known", "unknown", "N/A"])
def test_not_known_counts_as_no_school_given(text: str) -> None:
    resolution = index().resolve(text)
    assert not resolution.given
    assert resolution.urn is None
    assert resolution.fitting == frozenset()


def test_closed_establishment_is_never_the_answer() -> None:
    predecessor = establishment(100001, "Ely College", is_open=False)
    resolution = index(predecessor).resolve("Ely College")
    assert resolution.urn == ELY_COLLEGE
    assert not resolution.fits(predecessor.urn)


def test_alias_names_its_school_for_certain() -> None:
    resolution = index(aliases={"The Comp": PARKSIDE_COLLEGE}).resolve("the comp")
    assert resolution.urn == PARKSIDE_COLLEGE
    assert "school_aliases.toml" in resolution.reason


def test_alias_to_a_urn_not_in_gias_is_refused() -> None:
    with pytest.raises(RulesError, match="URN 999999 is not in the GIAS establishment list"):
        index(aliases={"The Comp": 999999})


def test_shipped_alias_file_has_no_aliases() -> None:
    assert load_school_aliases(RULES).aliases == {}


def test_alias_file_with_unknown_key_is_refused(tmp_path: Path) -> None:
    text = (RULES / "school_aliases.toml").read_text(encoding="utf-8")
    (tmp_path / "school_aliases.toml").write_text("abbreviations = []\n" + text, encoding="utf-8")
    with pytest.raises(RulesError, match="abbreviations: unknown key; allowed here: aliases"):
        load_school_aliases(tmp_path)


def test_alias_to_a_negative_urn_is_refused(tmp_path: Path) -> None:
    text = (RULES / "school_aliases.toml").read_text(encoding="utf-8")
    (tmp_path / "school_aliases.toml").write_text(text + '"The Comp" = -4\n', encoding="utf-8")
    with pytest.raises(RulesError, match=r"aliases\.The Comp: input should be greater than 0"):
        load_school_aliases(tmp_path)

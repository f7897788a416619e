import pytest

from gateway.upn import CHECK_ALPHABET, upn_check_letter, upn_problem

# B801200005001 is python-stdnum's gb.upn example; P207000016049 is the body of the school
# census error 1510 worked example, whose published sum (267 -> "Q") is an arithmetic slip:
# the products it lists add up to 266, and 266 mod 23 = 13 is "P" in its own table.
KNOWN_GOOD = ["B801200005001", "P207000016049"]


@pytest.mark.parametrize("upn", KNOWN_GOOD)
def test_published_upns_are_valid(upn: str) -> None:
    assert upn_problem(upn) is None


def test_check_letter_is_weighted_sum_mod_23() -> None:
    # 2*2 + 7*4 + 1*9 + 6*10 + 4*12 + 9*13 = 266; 266 mod 23 = 13 -> "P" (I, O, S skipped)
    assert upn_check_letter("207000016049") == "P"


def test_temporary_upn_final_letter_counts_as_its_alphabet_position() -> None:
    # Body "80120000500" then "B": B is worth 1 at weight 13, like a final digit 1.
    assert upn_check_letter("80120000500B") == upn_check_letter("801200005001")
    temporary = upn_check_letter("80120000500B") + "80120000500B"
    assert upn_problem(temporary) is None


def test_temporary_upn_final_letter_after_skipped_letters_counts_from_the_alphabet() -> None:
    # T is position 16 in CHECK_ALPHABET (not 19 as in A-Z): 16*13 = 208 added to the body sum.
    body = "20700001604T"
    digits_sum = sum(int(ch) * w for w, ch in enumerate(body[:11], start=2))
    assert upn_check_letter(body) == CHECK_ALPHABET[(digits_sum + 16 * 13) % 23]


def test_wrong_check_letter_names_the_expected_one() -> None:
    problem = upn_problem("B207000016049")
    assert problem is not None
    assert "wrong check letter" in problem
    assert "expected 'P'" in problem


@pytest.mark.parametrize("upn", ["P20700001604", "P2070000160490", ""])
def test_wrong_length_is_reported(upn: str) -> None:
    problem = upn_problem(upn)
    assert problem is not None
    assert "not 13" in problem


@pytest.mark.parametrize(
    "upn",
    [
        "X80120000A001",  # letter in the middle
        "Q20700001604I",  # I is never a temporary-UPN letter
        "Q20700001604S",
        "Q2070000160 9",
        "Q\uff1207000016049",  # full-width digit: str.isdigit() would accept it
    ],
)
def test_bad_characters_are_reported(upn: str) -> None:
    problem = upn_problem(upn)
    assert problem is not None
    assert "bad characters" in problem


@pytest.mark.parametrize("upn", ["1207000016049", "I207000016049", "q207000016049"])
def test_first_character_must_be_a_check_letter(upn: str) -> None:
    problem = upn_problem(upn)
    assert problem is not None
    assert "check letter" in problem


def test_every_body_has_exactly_one_valid_check_letter() -> None:
    body = "873123424017"
    valid = [letter for letter in CHECK_ALPHABET if upn_problem(letter + body) is None]
    assert valid == [upn_check_letter(body)]


@pytest.mark.parametrize("body", ["20700001604", "2070000160I9", "20700001604O"])
def test_check_letter_refuses_a_malformed_body(body: str) -> None:
    with pytest.raises(ValueError):
        upn_check_letter(body)

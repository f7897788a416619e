"""The DfE Unique Pupil Number: its check letter and what is wrong with a bad one.

A UPN is 13 characters: a check letter, then the issuing LA (3 digits), the establishment
(4 digits), the last two digits of the academic year and a 3-digit serial. A temporary UPN
has a 2-digit serial followed by a letter. The check letter is the weighted sum of
characters 2-13 (weights 2..13) modulo 23, as a letter of CHECK_ALPHABET; in a temporary
UPN the final letter counts as its position in that same alphabet (DfE Common Basic Data
Set, "Unique Pupil Number", validations 1-6).
"""

from __future__ import annotations

from operator import mul

# I, O and S are never used: they are too easily read as 1, 0 and 5.
CHECK_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"
_WEIGHTS = range(2, 13)  # characters 2-12; character 13 (weight 13) may be a letter
_ZERO_WEIGHTED = ord("0") * sum(_WEIGHTS)


def upn_check_letter(body12: str) -> str:
    """The check letter for the 12 characters after it (11 digits and a digit or letter).

    Raises ValueError when `body12` is not 11 digits followed by a digit or an allowed letter.
    """
    if len(body12) != 12 or not _is_digits(body12[:11]):
        raise ValueError(f"UPN body {body12!r} is not 11 digits and a digit or letter")
    last = body12[11]
    if _is_digits(last):
        last_value = int(last)
    elif last in CHECK_ALPHABET:
        last_value = CHECK_ALPHABET.index(last)
    else:
        raise ValueError(f"UPN body {body12!r} ends in {last!r}, not a digit or allowed letter")
    # The digits' byte values less "0" times the weights: a roll of millions is checked here.
    total = sum(map(mul, body12[:11].encode("ascii"), _WEIGHTS)) - _ZERO_WEIGHTED
    total += last_value * 13
    return CHECK_ALPHABET[total % 23]


def upn_problem(upn: str) -> str | None:
    """None when `upn` is a valid UPN (permanent or temporary); otherwise why it is not."""
    if len(upn) != 13:
        return f"UPN {upn!r} has {len(upn)} characters, not 13"
    first, body = upn[0], upn[1:]
    if first not in CHECK_ALPHABET:
        return f"UPN {upn!r} does not start with a check letter (A-Z except I, O, S)"
    if not _is_digits(body[:11]) or not (_is_digits(body[11]) or body[11] in CHECK_ALPHABET):
        return (
            f"UPN {upn!r} has bad characters: characters 2-12 must be digits and character 13 "
            "a digit or a letter other than I, O, S"
        )
    expected = upn_check_letter(body)
    if first != expected:
        return f"UPN {upn!r} has the wrong check letter {first!r}; expected {expected!r}"
    return None


def _is_digits(text: str) -> bool:
    # str.isdigit alone accepts other scripts' digits and superscripts; a UPN is ASCII only.
    return text.isascii() and text.isdigit()

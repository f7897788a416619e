"""Personal names reduced to a form that can be compared, and the nickname table.

The police and the pupil roll write the same child's name differently: capitals, accents,
apostrophes (O'Neill, ONeill, O Neill), hyphens and double-barrelled surnames (Smith-Jones,
Smith Jones), and nicknames (Alfie for Alfred). This module removes the differences that
never distinguish two children; what remains is scored by gateway.matching.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from gateway.errors import RulesError
from gateway.validation import Strict, load_toml_model

NICKNAMES_FILE = "nicknames.toml"

# Apostrophes join (O'Neill is ONeill); every other non-letter separates words.
_APOSTROPHES = "'\u2019\u2018\u02bc\u0060\u00b4\u2032"
# Letters NFKD does not decompose into a base letter plus accent.
_UNDECOMPOSED = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "æ": "ae",
        "œ": "oe",
        "\u0131": "i",
        "ħ": "h",
    }
)


@dataclass(frozen=True, slots=True)
class NameForm:
    """A name as compared: its words, and the words run together.

    `compact` makes "O Neill", "O'Neill" and "ONeill" equal, and "Smith Jones" equal to
    "Smith-Jones"; `tokens` lets one part of a double-barrelled name be recognised.
    """

    tokens: tuple[str, ...]
    compact: str

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def __bool__(self) -> bool:
        return bool(self.compact)


def normalise_name(text: str) -> str:
    """Lower-case ASCII words, single spaces: "Zoë  O'Neill-Smith" → "zoe oneill smith"."""
    return name_form(text).text


@lru_cache(maxsize=262_144)
def name_form(text: str) -> NameForm:
    """The comparable form of one name field. Cached: the roll repeats the same names a lot."""
    folded = unicodedata.normalize("NFKD", text.casefold()).translate(_UNDECOMPOSED)
    chars = []
    for char in folded:
        if char in _APOSTROPHES or unicodedata.combining(char):
            continue
        chars.append(char if char.isascii() and char.isalnum() else " ")
    tokens = tuple("".join(chars).split())
    return NameForm(tokens, "".join(tokens))


# --------------------------------------------------------------------------------------
# Nicknames


def _one_name(value: str) -> str:
    form = name_form(value)
    if len(form.tokens) != 1:
        raise ValueError(f"{value!r} must be a single name (letters only, no spaces)")
    return form.compact


def _distinct_names(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


_Name = Annotated[str, AfterValidator(_one_name)]


class NicknameRules(Strict):
    """rules/nicknames.toml: each full name with the short forms that may stand for it."""

    names: dict[_Name, Annotated[list[_Name], AfterValidator(_distinct_names)]]


class Nicknames:
    """Which forenames may name the same child.

    Two names are equivalent when they are equal, when one is listed as a short form of the
    other, or when both are short forms of the same full name (Bill and Liam, both William).
    Two full names are never equivalent through a shared short form: Alex may be Alexander
    or Alexandra, but Alexander is not Alexandra.
    """

    def __init__(self, table: Mapping[str, Iterable[str]]) -> None:
        families: dict[str, set[str]] = {}
        for full, shorts in table.items():
            full_form = _one_name(full)
            group = {full_form, *(_one_name(short) for short in shorts)}
            for name in group:
                families.setdefault(name, {name}).update(group)
        self._families = {name: frozenset(family) for name, family in families.items()}

    def forms(self, name: str) -> frozenset[str]:
        """Every name equivalent to `name` (a normalised single name), itself included."""
        return self._families.get(name, frozenset((name,)))

    def equivalent(self, first: str, second: str) -> bool:
        return first == second or second in self._families.get(first, ())


def load_nicknames(rules_dir: Path) -> Nicknames:
    """Load and validate rules/nicknames.toml (raises RulesError naming the bad key)."""
    rules = load_toml_model(rules_dir / NICKNAMES_FILE, NicknameRules, RulesError)
    for full, shorts in rules.names.items():
        if full in shorts:
            raise RulesError(
                f"{rules_dir / NICKNAMES_FILE}: names.{full}: lists itself as a short form"
            )
    return Nicknames(rules.names)

"""The school the police named, found among the GIAS establishments.

The police write schools as free text, often abbreviated or misspelt ("St Marys CE Prim",
"Nene Park Acad"). Both their text and every GIAS name are reduced to the same words
(abbreviations expanded by rules/school_aliases.toml, accents and punctuation dropped) and
compared with rapidfuzz's token-set ratio, which forgives left-out words ("Parkside" for
"Parkside Primary School").

A text resolves to a school only when exactly one open establishment fits it; a text that
fits several (three "St Mary's CE Primary" in England) stays unresolved, with the schools it
fits, so matching can still check that it agrees with the pupil roll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field
from rapidfuzz import fuzz, process

from gateway.errors import RulesError
from gateway.model import Establishment
from gateway.names import name_form
from gateway.validation import Strict, load_toml_model

SCHOOL_ALIASES_FILE = "school_aliases.toml"

# A word in more establishment names than this ("primary", "school", "saint") does not pick
# candidates on its own; the rarer words of the text do. A text of only common words is
# compared with every establishment.
_COMMON_WORD_SHARE = 0.02
_MIN_COMMON_WORD_COUNT = 50
# A misspelt word of at least this length is replaced by the one GIAS word it is closest to.
_SPELLING_MIN_LENGTH = 5
_SPELLING_MIN_SCORE = 85.0
# Schools listed for the Navigator below the ones that fit the text.
_SHOWN_NEAR_MISSES = 3
_SHOWN_MIN_SCORE = 50.0


def _words(value: str) -> str:
    words = name_form(value).text
    if not words:
        raise ValueError(f"{value!r} has no letters or digits")
    return words


_Words = Annotated[str, AfterValidator(_words)]


class ResolveRules(Strict):
    min_score: float = Field(ge=50, le=100)
    min_margin: float = Field(gt=0, le=50)


class SchoolAliases(Strict):
    """rules/school_aliases.toml, validated."""

    resolve: ResolveRules
    no_school: tuple[_Words, ...]
    ignore: tuple[_Words, ...]
    expansions: dict[_Words, _Words]
    aliases: dict[_Words, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)


def load_school_aliases(rules_dir: Path) -> SchoolAliases:
    """Load and validate rules/school_aliases.toml (raises RulesError naming the bad key)."""
    return load_toml_model(rules_dir / SCHOOL_ALIASES_FILE, SchoolAliases, RulesError)


@dataclass(frozen=True)
class SchoolCandidate:
    urn: int
    name: str
    score: float  # 0..100, how well the police text fits this establishment's name


@dataclass(frozen=True)
class SchoolResolution:
    """What the police's school text was found to mean.

    `given` is False when the text was empty or said the school is not known ("N/K").
    `urn` is set only when exactly one open establishment fits; `fitting` holds every URN
    the text fits (one, several, or none); `candidates` the best of them for the Navigator.
    """

    text: str
    given: bool
    urn: int | None
    fitting: frozenset[int]
    candidates: tuple[SchoolCandidate, ...]
    reason: str

    def fits(self, urn: int) -> bool:
        return urn in self.fitting


class SchoolNameIndex:
    """The GIAS names prepared for look-up; build once per run, resolve many texts."""

    def __init__(self, establishments: Iterable[Establishment], aliases: SchoolAliases) -> None:
        self._min_score = aliases.resolve.min_score
        self._min_margin = aliases.resolve.min_margin
        self._ignore = frozenset(aliases.ignore)
        self._expansions = {
            tuple(key.split()): tuple(value.split()) for key, value in aliases.expansions.items()
        }
        self._longest = max((len(key) for key in self._expansions), default=0)
        self._no_school = frozenset(self._key(text) for text in aliases.no_school)
        self._names: dict[int, str] = {}
        self._urns: list[int] = []  # open establishments, the ones a text can resolve to
        self._keys: list[str] = []
        self._compacts: list[str] = []
        postings: dict[str, list[int]] = {}
        for establishment in establishments:
            self._names[establishment.urn] = establishment.name
            if not establishment.is_open:
                continue
            key = self._key(establishment.name)
            for word in set(key.split()):
                postings.setdefault(word, []).append(len(self._urns))
            self._urns.append(establishment.urn)
            self._keys.append(key)
            self._compacts.append(key.replace(" ", ""))
        common = max(_MIN_COMMON_WORD_COUNT, int(len(self._urns) * _COMMON_WORD_SHARE))
        self._postings = {word: tuple(found) for word, found in postings.items()}
        self._common = frozenset(w for w, found in postings.items() if len(found) > common)
        self._vocabulary = sorted(postings)
        self._aliases: dict[str, int] = {}
        for text, urn in aliases.aliases.items():
            if urn not in self._names:
                raise RulesError(
                    f"{SCHOOL_ALIASES_FILE}: aliases.{text!r}: URN {urn} is not in the GIAS "
                    f"establishment list; correct the URN or remove the alias"
                )
            self._aliases[self._key(text)] = urn
        self._cache: dict[str, SchoolResolution] = {}

    def resolve(self, text: str) -> SchoolResolution:
        """Which open establishment the police's `text` names, if exactly one fits."""
        found = self._cache.get(text)
        if found is None:
            found = self._resolve(text)
            self._cache[text] = found
        return found

    def _resolve(self, text: str) -> SchoolResolution:
        key = self._key(text)
        if not key or key in self._no_school:
            quoted = f" ({text.strip()!r})" if text.strip() else ""
            return SchoolResolution(text, False, None, frozenset(), (), f"no school given{quoted}")
        alias = self._aliases.get(key)
        if alias is not None:
            candidate = SchoolCandidate(alias, self._names[alias], 100.0)
            reason = (
                f"{text!r} is listed in {SCHOOL_ALIASES_FILE} as {candidate.name} (URN {alias})"
            )
            return SchoolResolution(text, True, alias, frozenset((alias,)), (candidate,), reason)
        key = self._correct_spelling(key)
        scored = self._score(key)
        top = scored[0][1] if scored else 0.0
        fitting = [
            (urn, score)
            for urn, score in scored
            if score >= self._min_score and top - score < self._min_margin
        ]
        shown = fitting[:5] + [
            (urn, score)
            for urn, score in scored[len(fitting) : len(fitting) + _SHOWN_NEAR_MISSES]
            if score >= _SHOWN_MIN_SCORE
        ]
        candidates = tuple(SchoolCandidate(u, self._names[u], round(s, 1)) for u, s in shown)
        urns = frozenset(urn for urn, _ in fitting)
        if len(fitting) == 1:
            urn = fitting[0][0]
            reason = f"{text!r} is {self._names[urn]} (URN {urn})"
            return SchoolResolution(text, True, urn, urns, candidates, reason)
        if fitting:
            names = ", ".join(c.name for c in candidates[: min(len(fitting), 5)])
            more = f" and {len(fitting) - 5} more" if len(fitting) > 5 else ""
            reason = f"{text!r} could be any of {len(fitting)} schools: {names}{more}"
        else:
            reason = f"{text!r} matches no open school in the GIAS list"
        return SchoolResolution(text, True, None, urns, candidates, reason)

    def _score(self, key: str) -> list[tuple[int, float]]:
        """Candidate establishments for `key`, best first, with their scores.

        The score is the better of the token-set ratio (words left out or reordered) and
        the ratio of the texts without spaces (words run together: "QueenKatharine").
        """
        rare = [w for w in key.split() if w in self._postings and w not in self._common]
        if rare:
            indexes = sorted({i for w in rare for i in self._postings[w]})
        else:
            indexes = list(range(len(self._keys)))
        best: dict[int, float] = {}
        passes = (
            (key, [self._keys[i] for i in indexes], fuzz.token_set_ratio),
            (key.replace(" ", ""), [self._compacts[i] for i in indexes], fuzz.ratio),
        )
        for query, choices, scorer in passes:
            for _, score, position in process.extract(
                query,
                choices,
                scorer=scorer,
                processor=None,
                limit=None,
                score_cutoff=_SHOWN_MIN_SCORE,
            ):
                urn = self._urns[indexes[position]]
                best[urn] = max(score, best.get(urn, 0.0))
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))

    def _correct_spelling(self, key: str) -> str:
        words = []
        for word in key.split():
            if len(word) >= _SPELLING_MIN_LENGTH and word not in self._postings:
                close = process.extract(
                    word,
                    self._vocabulary,
                    scorer=fuzz.ratio,
                    processor=None,
                    limit=2,
                    score_cutoff=_SPELLING_MIN_SCORE,
                )
                # Only an unambiguous correction: "parksdie" → "parkside", but a word as close
                # to two GIAS words is left as written.
                if len(close) == 1 or (len(close) == 2 and close[0][1] > close[1][1]):
                    word = close[0][0]
            words.append(word)
        return " ".join(words)

    def _key(self, text: str) -> str:
        """`text` as compared: normalised words, abbreviations expanded, filler dropped."""
        words = name_form(text).tokens
        expanded: list[str] = []
        position = 0
        while position < len(words):
            for length in range(min(self._longest, len(words) - position), 0, -1):
                replacement = self._expansions.get(words[position : position + length])
                if replacement is not None:
                    expanded.extend(replacement)
                    position += length
                    break
            else:
                expanded.append(words[position])
                position += 1
        return " ".join(word for word in expanded if word not in self._ignore)

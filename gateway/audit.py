"""The audit log: append-only and hash-chained, so any edit, deletion or reordering shows.

Each entry holds the SHA-256 of the one before it, over canonical JSON (sorted keys, no
spaces, UTF-8), and its own hash over its fields and that link. Entries carry references —
incident refs, URNs, notification references, intake ids — never names: the audit outlives
the personal data it describes (retention purges the data, not the log).

`append` writes inside the caller's transaction, so an entry commits or rolls back with the
state change it records. `verify` recomputes the chain from GENESIS and names the first
entry that was edited, deleted or moved. A chain alone cannot show that its newest entries
were cut off, so `verify` also reports an anchor (the last entry's number and hash) for the
auditor to note, and checks a noted anchor when given one.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gateway.errors import StateError

GENESIS = "0" * 64

# Keys an entry's data may never hold: a guard against a caller passing personal data.
_FORBIDDEN_KEYS = frozenset({"name", "forename", "surname", "dob", "child", "children"})

AuditValue = str | int | float | bool | None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str  # UTC ISO-8601
    actor: str
    event: str
    data: Mapping[str, AuditValue]
    prev_hash: str
    hash: str


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    seq: int, at: str, actor: str, event: str, data: Mapping[str, AuditValue], prev_hash: str
) -> str:
    body = {"seq": seq, "at": at, "actor": actor, "event": event, "data": data, "prev": prev_hash}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def append(
    conn: sqlite3.Connection,
    event: str,
    *,
    actor: str,
    at: datetime,
    **data: AuditValue,
) -> AuditEntry:
    """Append one entry; call inside the transaction that makes the change it records."""
    if at.tzinfo is None:
        # A naive time would be read as the machine's local zone: the chain would hold a
        # time off by an hour in summer, and nothing could show it later.
        raise ValueError("audit.append needs a timezone-aware instant")
    if not conn.in_transaction:
        raise RuntimeError("audit.append must run inside the transaction it records")
    leaked = _FORBIDDEN_KEYS.intersection(data)
    if leaked:
        raise ValueError(f"audit entries hold references, not personal data: {sorted(leaked)}")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    stamp = at.astimezone(UTC).isoformat()
    digest = entry_hash(seq, stamp, actor, event, data, prev_hash)
    conn.execute(
        "INSERT INTO audit (seq, at, actor, event, data, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seq, stamp, actor, event, canonical(data), prev_hash, digest),
    )
    return AuditEntry(seq, stamp, actor, event, data, prev_hash, digest)


def entries(conn: sqlite3.Connection, since_seq: int = 0) -> Iterator[AuditEntry]:
    """The entries after `since_seq`, oldest first, as stored (`verify` says if they are intact)."""
    for row in conn.execute(f"{_SELECT} WHERE seq > ? ORDER BY seq", (since_seq,)):
        data = _data(row[4])
        if data is None:
            raise StateError(
                f"audit entry {row[0]} holds data that is not a JSON object: the log was "
                "tampered with; run `encompass-gateway audit verify`"
            )
        yield AuditEntry(row[0], row[1], row[2], row[3], data, row[5], row[6])


# --------------------------------------------------------------------------------------
# Verification


class BreakKind(StrEnum):
    """What verification found wrong; values are stable (scripts may read them)."""

    EDITED = "edited"  # the entry's content no longer matches its own hash
    MOVED = "moved"  # an intact entry sits at another number than the one it was written as
    MISSING = "missing"  # a number in the sequence is absent: the entry was deleted
    RELINKED = "relinked"  # an intact entry was written after a different previous entry
    TRUNCATED = "truncated"  # the log ends before the anchor the auditor noted
    ANCHOR_MISMATCH = "anchor_mismatch"  # the anchor's entry is there with another hash


@dataclass(frozen=True)
class ChainBreak:
    """The first place the log differs from what was written. `seq` is the entry it names."""

    seq: int
    kind: BreakKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify`. `checked` entries, 1 to `last_seq`, were found intact;
    `last_hash` is the hash of entry `last_seq` (GENESIS when there is none)."""

    checked: int
    last_seq: int
    last_hash: str
    problem: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def anchor(self) -> tuple[int, str]:
        """What an auditor notes to detect a later cut of the tail: `verify(expect=anchor)`."""
        return (self.last_seq, self.last_hash)

    def __str__(self) -> str:
        if self.problem is not None:
            intact = f"entries 1 to {self.last_seq} are intact" if self.last_seq else ""
            return f"audit log BROKEN: {self.problem.message}\n{intact}".rstrip()
        return (
            f"audit log intact: {self.checked} entries verified\n"
            f"anchor (note it to detect a later cut of the log): {format_anchor(self.anchor)}"
        )


def format_anchor(anchor: tuple[int, str]) -> str:
    seq, digest = anchor
    return f"{seq}:{digest}"


_ANCHOR = re.compile(r"(\d+):([0-9a-f]{64})")


def parse_anchor(text: str) -> tuple[int, str]:
    """Read an anchor written by `format_anchor` (`SEQ:HASH`, the hash as 64 hex digits)."""
    found = _ANCHOR.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(
            f"{text!r} is not an audit anchor: expected the entry number, a colon and the "
            "64-hex-digit hash that `audit verify` printed, e.g. 57:3f2a…"
        )
    return int(found[1]), found[2]


def verify(conn: sqlite3.Connection, *, expect: tuple[int, str] | None = None) -> VerifyReport:
    """Recompute the chain from GENESIS and report the first entry that is not as written.

    `expect` is an anchor noted from an earlier verification: the entry it names must still
    be there with the same hash, which catches entries cut from the end of the log.
    """
    # One read transaction, so entries appended meanwhile cannot make a sound log look cut.
    own_transaction = not conn.in_transaction
    if own_transaction:
        conn.execute("BEGIN")
    try:
        return _verify(conn, expect)
    finally:
        if own_transaction:
            conn.execute("ROLLBACK")


_SELECT = "SELECT seq, at, actor, event, data, prev_hash, hash FROM audit"


def _verify(conn: sqlite3.Connection, expect: tuple[int, str] | None) -> VerifyReport:
    checked, last_seq, last_hash = 0, 0, GENESIS
    # Entry 0 is the chain's start: the anchor of an empty log is (0, GENESIS).
    anchored_hash = GENESIS if expect is not None and expect[0] == 0 else None
    # `seq` is the table's primary key, so rows cannot come back out of order: a reordering
    # shows as an intact entry at a number it was not written as (its hash covers `seq`).
    for row in conn.execute(f"{_SELECT} ORDER BY seq"):
        problem = _check(conn, row, last_seq, last_hash)
        if problem is not None:
            return VerifyReport(checked, last_seq, last_hash, problem)
        seq, stored = row[0], row[6]
        checked, last_seq, last_hash = checked + 1, seq, stored
        if expect is not None and seq == expect[0]:
            anchored_hash = stored
    problem = None if expect is None else _check_anchor(expect, anchored_hash, last_seq)
    return VerifyReport(checked, last_seq, last_hash, problem)


def _check(
    conn: sqlite3.Connection, row: sqlite3.Row, last_seq: int, last_hash: str
) -> ChainBreak | None:
    seq, at, actor, event, raw, prev_hash, stored = row
    named = f"entry {seq} ({event} at {at})"
    if seq < 1:
        return ChainBreak(
            seq, BreakKind.MOVED, f"{named}: entries are numbered from 1; the log was renumbered"
        )
    if seq != last_seq + 1:
        missing = _span(last_seq + 1, seq - 1)
        after = f"entry {last_seq}" if last_seq else "the start of the log"
        return ChainBreak(
            last_seq + 1,
            BreakKind.MISSING,
            f"{missing} missing: the log goes from {after} straight to {named}; "
            "entries were deleted",
        )
    data = _data(raw)
    if data is None or entry_hash(seq, at, actor, event, data, prev_hash) != stored:
        written_as = None if data is None else _written_as(conn, row, data)
        if written_as is not None:
            return ChainBreak(
                seq,
                BreakKind.MOVED,
                f"{named}: this is the entry written as number {written_as}; "
                "entries were reordered or renumbered",
            )
        return ChainBreak(
            seq, BreakKind.EDITED, f"{named}: its content was changed after it was written"
        )
    if prev_hash != last_hash:
        before = f"entry {last_seq}" if last_seq else "the start of the log"
        return ChainBreak(
            seq,
            BreakKind.RELINKED,
            f"{named}: it was written after a different {before} than the one now in the "
            f"log; {before} was replaced, or entries were deleted and the rest renumbered",
        )
    return None


def _written_as(
    conn: sqlite3.Connection, row: sqlite3.Row, data: Mapping[str, AuditValue]
) -> int | None:
    # An intact entry whose hash fails only because of its number was moved, not edited.
    # Only the first break is explained, so trying every number once costs one pass.
    seq, at, actor, event, _raw, prev_hash, stored = row
    highest: int = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    for candidate in range(1, highest + 2):
        if candidate != seq and entry_hash(candidate, at, actor, event, data, prev_hash) == stored:
            return candidate
    return None


def _check_anchor(
    expect: tuple[int, str], anchored_hash: str | None, last_seq: int
) -> ChainBreak | None:
    seq, digest = expect
    if anchored_hash is None:
        return ChainBreak(
            last_seq + 1,
            BreakKind.TRUNCATED,
            f"the log ends at entry {last_seq}, but entry {seq} was noted earlier "
            f"(hash {digest[:12]}…): {_span(last_seq + 1, seq)} cut from the end",
        )
    if anchored_hash != digest:
        return ChainBreak(
            seq,
            BreakKind.ANCHOR_MISMATCH,
            f"entry {seq} does not have the hash noted for it earlier ({digest[:12]}…, now "
            f"{anchored_hash[:12]}…): the log up to entry {seq} was rewritten",
        )
    return None


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first} to {last} are"


def _data(raw: object) -> dict[str, AuditValue] | None:
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

"""The audit log: append-only and hash-chained, so any edit, deletion or reordering shows.

Each entry holds the SHA-256 of the one before it, over canonical JSON (sorted keys, no
spaces, UTF-8), and its own hash over its fields and that link. Entries carry references —
incident refs, URNs, notification references, intake ids — never names: the audit outlives
the personal data it describes (retention purges the data, not the log).

`append` writes inside the caller's transaction, so an entry commits or rolls back with the
state change it records.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

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

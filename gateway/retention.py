"""Retention: personal data purged once the configured period has passed, the audit kept.

DESIGN.md invariant 9. An incident's personal data — each child's recorded decision (names,
date of birth, postcode, the matching notes that quote the pupil roll) and its reason, each
notification's content (circumstances, relationship, location, other information), the
sealed bodies of its messages, the gateway's own mail about it, what the Navigator wrote
about it (resolution texts) and the police's details kept for a ROUTE — is purged when:

- every spreadsheet that brought the incident was received before the cutoff (now minus
  `[retention] days`): a police correction starts the period again;
- the incident is not on legal hold (`hold`): a case review or proceedings keep it whole;
- nothing of it is still waiting to be sent (a notification planned, sealed, sending or
  retrying, or waiting for APPROVE; a message not yet sent), and nothing of it still needs a
  person: a child's exception or telephone task not yet resolved by ROUTE, WITHHOLD or
  CALLED, or a notification that became an exception and was neither resent nor withheld.
  These stay, and each purge says how many are kept and why, so the DPO sees them.

A spreadsheet's own bytes (kept for the police return sheet), its return sheet and, for mail
received by SMTP, the spooled message are shared by all the incidents in it: they go once
every incident of that spreadsheet has gone, and stay while any one is held or waiting.

The gateway's own mail that cannot be tied to one incident (digests, chase lists, receipts,
alerts about quarantined mail) is purged by its own age, unless it is tied to an incident
that is held or waiting. Quarantined SMTP mail goes by its own age too.

What stays is the skeleton: references, URNs, times, outcomes, recipients and fingerprints,
hashes, and the audit log, which holds references only (gateway/audit.py) and whose chain
is untouched. Purging is idempotent: each run scrubs what is due and not yet scrubbed (a reply
forwarded after its incident was purged goes at the next run), and records what it did in
the audit. SQLite keeps deleted text in free pages and in the write-ahead log, so a purge
that changed anything ends with VACUUM and a truncating checkpoint: no copy stays on disk.

The pupil roll (`pupil`) is the LA's current list, replaced whole by every directory import;
it is not incident data and retention does not touch it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway import audit
from gateway.commands import RESOLVING
from gateway.config import LoadedConfig
from gateway.errors import StateError
from gateway.legal_hold import active_holds
from gateway.outbox import MessageKind
from gateway.own_mail import own_reference
from gateway.smtp_intake import SEALED_SUFFIX
from gateway.store import transaction

# What a purged reason reads in the Navigator's record and the digest.
PURGED = "[personal data purged under the retention policy]"

# Messages no longer on their way: only these may lose their bodies.
_SETTLED_MESSAGES = ("sent", "exception", "cancelled")
# Notifications nobody has anything left to do about: sent, or withheld by the Navigator.
# An exception waits for a person (RESEND or WITHHOLD); the rest are still on their way.
_SETTLED_NOTIFICATIONS = ("sent", "withheld")
# A child's decision that still needs a person, as the digest lists it: an exception or a
# telephone task that no ROUTE, WITHHOLD or CALLED has resolved (gateway/resolutions.py).
_UNRESOLVED = (
    "d.outcome IN ('exception', 'telephone') AND NOT EXISTS (SELECT 1 FROM resolution r"
    f" WHERE r.decision_id = d.id AND r.verb IN ({', '.join(repr(v.value) for v in RESOLVING)}))"
)


# --------------------------------------------------------------------------------------
# Redaction: what of a stored record is skeleton, everything else blanked


_KEEP = True
_Spec = Mapping[str, Any]  # key -> _KEEP, a nested spec (an object), or [spec] (a list of them)

# A decision record (gateway/plan.py decision_json): where the child came from and what
# became of it, without who.
DECISION_SKELETON: _Spec = {
    key: _KEEP
    for key in (
        "incident_ref",
        "incident_at",
        "incident_time_known",
        "outcome",
        "urn",
        "school",
        "due",
        "exception_kind",
        "manager_alert",
        "telephone",
        "source_row",
    )
}
# A notification's content (gateway/notification_store.py notification_json).
NOTIFICATION_SKELETON: _Spec = {
    "reference": _KEEP,
    "kind": _KEEP,  # first, added, amendment, withdrawal (gateway/amendments.py)
    "follows": _KEEP,
    # not "changes": an amendment's list of what changed names each child it changed
    "urn": _KEEP,
    "school_name": _KEEP,
    "due": _KEEP,
    "incident": {
        key: _KEEP for key in ("ref", "occurred_at", "time_known", "risk", "crime_status")
    },
    "children": [{"source": _KEEP}],
}


def redact(value: Any, skeleton: _Spec) -> dict[str, Any]:
    """`value` (a JSON object) with every field outside `skeleton` blanked, marked purged.

    A whitelist, so a field added to a record later is blanked until someone says it is
    skeleton: text becomes "", a list [], an object {}; numbers and flags stay (they are
    counts and states, and readers expect their type). The keys stay, so every reader of the
    record still finds what it looks up.
    """
    redacted = _redact_object(value, skeleton)
    redacted["purged"] = True
    return redacted


def _redact_object(value: Mapping[str, Any], skeleton: _Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        spec = skeleton.get(key)
        if spec is _KEEP:
            out[key] = item
        elif isinstance(spec, Mapping) and isinstance(item, Mapping):
            out[key] = _redact_object(item, spec)
        elif isinstance(spec, list) and isinstance(item, list):
            out[key] = [
                _redact_object(element, spec[0]) if isinstance(element, Mapping) else None
                for element in item
            ]
        else:
            out[key] = _blank(item)
    return out


def _blank(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    return value  # a number, a flag or None: not personal on its own


# --------------------------------------------------------------------------------------
# The purge


@dataclass(frozen=True)
class PurgeReport:
    """What a purge did (or, with `dry_run`, would do).

    `incidents` and `intakes` are those scrubbed by this run; `held` and `waiting` are old
    enough but kept (on legal hold; still waiting to be sent or needing a person).
    `rows` counts the values scrubbed per table and column; `files` the spool files removed.
    """

    cutoff: datetime
    dry_run: bool
    incidents: tuple[str, ...] = ()
    intakes: tuple[int, ...] = ()
    held: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    rows: Mapping[str, int] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(sum(self.rows.values()) or self.files)

    def render(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        lines = [
            f"cutoff {self.cutoff.isoformat()}: {verb} {len(self.incidents)} incidents"
            f" and {len(self.intakes)} spreadsheets",
            f"kept: {len(self.held)} on legal hold, {len(self.waiting)} still waiting to be"
            " sent or needing a person",
        ]
        lines += [f"  {name}: {count}" for name, count in sorted(self.rows.items()) if count]
        if self.files:
            lines.append(f"  spool files: {len(self.files)}")
        return "\n".join(lines)


def cutoff_for(now: datetime, days: int) -> datetime:
    """The instant before which personal data is due for purging."""
    if now.tzinfo is None:
        raise ValueError("the purge needs a timezone-aware instant")
    return now.astimezone(UTC) - timedelta(days=days)


def purge(
    conn: sqlite3.Connection,
    *,
    days: int,
    now: datetime,
    actor: str,
    spool: Path | None = None,
    dry_run: bool = False,
    always_compact: bool = False,
) -> PurgeReport:
    """Purge the personal data older than `days` days at `now` (see the module's docstring).

    `spool` is the inbound SMTP spool, when the listener is configured. With `dry_run`
    nothing is changed: the report says what would be. The database is compacted when the
    purge changed something, or always with `always_compact` (a purge run by hand, which
    also finishes a compaction that an earlier run could not do).
    """
    cutoff = cutoff_for(now, days)
    with _write_or_rollback(conn, dry_run=dry_run):
        scrub = _Scrub(conn)
        due = _incidents_due(conn, cutoff)
        held = {hold.incident_ref for hold in active_holds(conn)}
        kept_held = sorted(ref for ref in due if ref in held)
        waiting = sorted(ref for ref in due if ref not in held and _waiting(conn, ref))
        purgeable = sorted(set(due) - held - set(waiting))
        purged = [ref for ref in purgeable if scrub.incident(ref)]
        spreadsheets = _intakes_due(conn, cutoff, set(purgeable))
        intakes = [intake_id for intake_id in spreadsheets if scrub.intake(intake_id)]
        scrub.own_mail_by_age(cutoff, _tied_references(conn, (*kept_held, *waiting)))
        files = _spool_files(conn, spool, cutoff, set(spreadsheets))
        report = PurgeReport(
            cutoff=cutoff,
            dry_run=dry_run,
            incidents=tuple(purged),
            intakes=tuple(intakes),
            held=tuple(kept_held),
            waiting=tuple(waiting),
            rows=dict(scrub.counts),
            files=tuple(files),
        )
        if not dry_run:
            audit.append(
                conn,
                "retention.purged",
                actor=actor,
                at=now,
                cutoff=cutoff.isoformat(),
                days=days,
                incidents=len(purged),
                incident_refs=",".join(purged),
                intakes=",".join(str(i) for i in intakes),
                held=len(kept_held),
                waiting=len(waiting),
                values=sum(scrub.counts.values()),
                files=len(files),
            )
    if dry_run:
        return report
    # Durable before visible: the database says what is gone before the files go. A crash
    # here leaves files the next run removes (the ledger still names them).
    for path in files:
        path.unlink(missing_ok=True)
    if report.changed or always_compact:
        _compact(conn)
    return report


def purge_due(
    conn: sqlite3.Connection,
    *,
    config: LoadedConfig,
    now: datetime,
    actor: str,
    dry_run: bool = False,
    always_compact: bool = False,
) -> PurgeReport:
    """Purge the personal data past the configured retention period (see `purge`)."""
    settings = config.config
    spool = settings.inbound_smtp.spool if settings.inbound_smtp is not None else None
    return purge(
        conn,
        days=settings.retention.days,
        now=now,
        actor=actor,
        spool=spool,
        dry_run=dry_run,
        always_compact=always_compact,
    )


@contextmanager
def _write_or_rollback(conn: sqlite3.Connection, *, dry_run: bool) -> Iterator[None]:
    if not dry_run:
        with transaction(conn):
            yield
        return
    # The same reads and writes as a purge, in a transaction that is always rolled back:
    # the counts are exactly what a purge would scrub.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


def _compact(conn: sqlite3.Connection) -> None:
    # Updated and deleted text lingers in SQLite's free pages and in the write-ahead log
    # until they are overwritten: VACUUM rebuilds the file from live rows only (its scratch
    # copy in memory, not in a temporary file), and the truncating checkpoint empties the log.
    try:
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("VACUUM")
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error as exc:
        busy, error = 1, str(exc)
    else:
        error = "another connection was reading"
    if busy:
        raise StateError(
            f"the purge is committed, but the database could not be compacted ({error}): "
            "copies of the purged data may remain in its free pages until it is; run "
            "`encompass-gateway purge` when the service is quiet"
        )


# --------------------------------------------------------------------------------------
# Which incidents and spreadsheets are due, and which are still in use


def _incidents_due(conn: sqlite3.Connection, cutoff: datetime) -> list[str]:
    # The latest spreadsheet that brought an incident counts: a correction renews it.
    rows = conn.execute(
        "SELECT d.incident_ref FROM decision d JOIN intake i ON i.id = d.intake_id"
        " WHERE d.incident_ref != '' GROUP BY d.incident_ref HAVING max(i.received_at) < ?",
        (_utc(cutoff),),
    )
    return [row[0] for row in rows]


def _waiting(conn: sqlite3.Connection, incident_ref: str) -> bool:
    """Whether something of the incident is still on its way or still needs a person."""
    decision = conn.execute(
        f"SELECT 1 FROM decision d WHERE d.incident_ref = ? AND {_UNRESOLVED} LIMIT 1",
        (incident_ref,),
    ).fetchone()
    if decision is not None:
        return True
    notification = conn.execute(
        "SELECT 1 FROM notification WHERE incident_ref = ?"
        f" AND state NOT IN ({_marks(_SETTLED_NOTIFICATIONS)}) LIMIT 1",
        (incident_ref, *_SETTLED_NOTIFICATIONS),
    ).fetchone()
    if notification is not None:
        return True
    references = _tied_references(conn, (incident_ref,))
    return bool(
        references
        and conn.execute(
            f"SELECT 1 FROM message WHERE reference IN ({_marks(references)})"
            f" AND state NOT IN ({_marks(_SETTLED_MESSAGES)}) LIMIT 1",
            (*references, *_SETTLED_MESSAGES),
        ).fetchone()
    )


def _intakes_due(conn: sqlite3.Connection, cutoff: datetime, gone: set[str]) -> list[int]:
    """Spreadsheets received before the cutoff whose every incident is purged now."""
    found = []
    for intake_id in _old_intakes(conn, cutoff):
        refs = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT incident_ref FROM decision WHERE intake_id = ?", (intake_id,)
            )
        }
        # A row that could not be tied to an incident ('') is an exception for a person
        # until it is resolved, like any other.
        if refs - {""} <= gone and not _orphans_waiting(conn, intake_id):
            pending = conn.execute(
                "SELECT 1 FROM intake_source WHERE intake_id = ? AND returned_at IS NULL",
                (intake_id,),
            ).fetchone()
            if pending is None:  # its return sheet is not still to go
                found.append(intake_id)
    return found


def _old_intakes(conn: sqlite3.Connection, cutoff: datetime) -> list[int]:
    rows = conn.execute("SELECT id FROM intake WHERE received_at < ? ORDER BY id", (_utc(cutoff),))
    return [row[0] for row in rows]


def _orphans_waiting(conn: sqlite3.Connection, intake_id: int) -> bool:
    found = conn.execute(
        f"SELECT 1 FROM decision d WHERE d.intake_id = ? AND d.incident_ref = '' AND {_UNRESOLVED}"
        " LIMIT 1",
        (intake_id,),
    ).fetchone()
    return found is not None


def _notification_references(conn: sqlite3.Connection, incident_ref: str) -> list[str]:
    rows = conn.execute(
        "SELECT reference FROM notification WHERE incident_ref = ? ORDER BY reference",
        (incident_ref,),
    )
    return [row[0] for row in rows]


def _tied_references(conn: sqlite3.Connection, incident_refs: Iterable[str]) -> list[str]:
    """The outbox references of everything sent about these incidents: their notifications
    and the gateway's own mail about them (the manager's alert; alerts about a bounce or an
    out-of-office reply; forwards of the schools' replies)."""
    found: list[str] = []
    for incident_ref in incident_refs:
        notifications = _notification_references(conn, incident_ref)
        found += notifications
        found.append(own_reference(MessageKind.ALERT, f"manager/{incident_ref}"))
        if not notifications:
            continue
        marks = _marks(notifications)
        for (message_id,) in conn.execute(
            f"SELECT message_id FROM message WHERE reference IN ({marks})", notifications
        ):
            # gateway/tracking.py names these alerts by the message they are about.
            found.append(own_reference(MessageKind.ALERT, f"bounce/{message_id}"))
            found.append(own_reference(MessageKind.ALERT, f"out_of_office/{message_id}"))
        for mailbox, uidvalidity, uid in conn.execute(
            "SELECT t.mailbox, t.uidvalidity, t.uid FROM tracking_event t"
            " LEFT JOIN message m ON m.id = t.message_row"
            f" WHERE t.kind = 'reply' AND coalesce(m.reference, t.reference) IN ({marks})",
            notifications,
        ):
            found.append(
                own_reference(MessageKind.FORWARD, f"forward/{mailbox}/{uidvalidity}/{uid}")
            )
    return found


# --------------------------------------------------------------------------------------
# Scrubbing


class _Scrub:
    """The writes of one purge, each counted only when it changes something."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.counts: dict[str, int] = {}

    def _count(self, name: str, changed: int) -> int:
        self.counts[name] = self.counts.get(name, 0) + changed
        return changed

    def incident(self, incident_ref: str) -> bool:
        """Scrub one incident; whether anything was left to scrub."""
        changed = self._decisions("incident_ref = ?", incident_ref)
        for row in self.conn.execute(
            "SELECT reference, unseal(content) AS content, reason FROM notification"
            " WHERE incident_ref = ?",
            (incident_ref,),
        ).fetchall():
            redacted = _redacted_json(row["content"], NOTIFICATION_SKELETON)
            if redacted is not None or row["reason"]:
                self.conn.execute(
                    "UPDATE notification SET content = coalesce(seal(?), content), reason = ''"
                    " WHERE reference = ?",
                    (redacted, row["reference"]),
                )
                changed += self._count("notification.content", 1)
        changed += self._bodies(_tied_references(self.conn, (incident_ref,)))
        changed += self._count(
            "resolution.text",
            # What the Navigator wrote about one of its notifications (NOTE OE-…, WITHHOLD).
            self.conn.execute(
                "UPDATE resolution SET text = '' WHERE length(text) > 0 AND reference IN"
                " (SELECT reference FROM notification WHERE incident_ref = ?)",
                (incident_ref,),
            ).rowcount,
        )
        changed += self._count(
            "legal_hold.reason",
            # Emptied, not sealed: an empty value is what a purge leaves (gateway/at_rest.py).
            self.conn.execute(
                "UPDATE legal_hold SET reason = '' WHERE incident_ref = ?"
                " AND released_at IS NOT NULL AND length(reason) > 0",
                (incident_ref,),
            ).rowcount,
        )
        return changed > 0

    def intake(self, intake_id: int) -> bool:
        """Scrub what a whole spreadsheet shares; whether anything was left to scrub."""
        changed = self._decisions("intake_id = ? AND incident_ref = ''", intake_id)
        changed += self._count(
            "intake_source.workbook",
            self.conn.execute(
                "UPDATE intake_source SET workbook = x'' WHERE intake_id = ?"
                " AND length(workbook) > 0",
                (intake_id,),
            ).rowcount,
        )
        returned = self.conn.execute(
            "SELECT m.reference FROM intake_source s JOIN message m ON m.id = s.return_message"
            " WHERE s.intake_id = ?",
            (intake_id,),
        ).fetchone()
        if returned is not None:
            changed += self._bodies([returned[0]])
        return changed > 0

    def own_mail_by_age(self, cutoff: datetime, protected: list[str]) -> None:
        """The gateway's own mail sealed before the cutoff and settled, except what is tied
        to an incident that is kept."""
        rows = self.conn.execute(
            "SELECT id, reference FROM message WHERE kind != ? AND sealed_at < ?"
            f" AND state IN ({_marks(_SETTLED_MESSAGES)}) AND length(body) > 0",
            (MessageKind.NOTIFICATION.value, _utc(cutoff), *_SETTLED_MESSAGES),
        ).fetchall()
        keep = set(protected)
        for row in rows:
            if row["reference"] not in keep:
                self.conn.execute("UPDATE message SET body = x'' WHERE id = ?", (row["id"],))
                self._count("message.body", 1)

    def _decisions(self, where: str, *args: object) -> int:
        changed = 0
        for row in self.conn.execute(
            f"SELECT id, unseal(record) AS record, unseal(reason) AS reason FROM decision"
            f" WHERE {where}",
            args,
        ).fetchall():
            redacted = _redacted_json(row["record"], DECISION_SKELETON)
            if redacted is not None or row["reason"] != PURGED:
                self.conn.execute(
                    "UPDATE decision SET record = coalesce(seal(?), record), reason = seal(?)"
                    " WHERE id = ?",
                    (redacted, PURGED, row["id"]),
                )
                changed += self._count("decision.record", 1)
            # What the Navigator wrote about the child (NOTE, WITHHOLD, CALLED) — emptied, as
            # a purge leaves a sealed value (gateway/at_rest.py) — and the police's details
            # kept for a ROUTE, which a resolved exception no longer needs.
            changed += self._count(
                "resolution.text",
                self.conn.execute(
                    "UPDATE resolution SET text = '' WHERE decision_id = ? AND length(text) > 0",
                    (row["id"],),
                ).rowcount,
            )
            changed += self._count(
                "exception_detail",
                self.conn.execute(
                    "DELETE FROM exception_detail WHERE decision_id = ?", (row["id"],)
                ).rowcount,
            )
        return changed

    def _bodies(self, references: list[str]) -> int:
        if not references:
            return 0
        return self._count(
            "message.body",
            self.conn.execute(
                f"UPDATE message SET body = x'' WHERE reference IN ({_marks(references)})"
                f" AND state IN ({_marks(_SETTLED_MESSAGES)}) AND length(body) > 0",
                (*references, *_SETTLED_MESSAGES),
            ).rowcount,
        )


def _redacted_json(stored: str, skeleton: _Spec) -> str | None:
    """The redacted form of a stored JSON record; None when it is already purged."""
    record = json.loads(stored)
    if record.get("purged"):
        return None
    return json.dumps(redact(record, skeleton), sort_keys=True)


# --------------------------------------------------------------------------------------
# The inbound SMTP spool


def _spool_files(
    conn: sqlite3.Connection, spool: Path | None, cutoff: datetime, purged_intakes: set[int]
) -> list[Path]:
    """Spooled mail to remove: police mail whose spreadsheets are all purged, any other
    (quarantined, refused) received before the cutoff, and what was left in incoming/ by a
    delivery that never committed (answered 451; the sender gave up or sent it again) and
    is older than the cutoff by its file's own time — nothing else records it."""
    if spool is None:
        return []
    incoming = spool / "incoming"
    found = sorted(
        path
        for path in (incoming.iterdir() if incoming.is_dir() else ())
        if path.is_file() and datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff
    )
    for row in conn.execute(
        "SELECT uid, disposition, reference, target, recorded_at FROM inbound_message"
        " WHERE mailbox = 'smtp' AND moved = 1"
    ):
        path = spool / row["target"] / f"{row['uid']}{SEALED_SUFFIX}"
        if not path.exists():
            continue
        # gateway/mail_intake.py records a taken-in mail's intakes as "1,2" (a duplicate
        # carries its original's).
        intakes = {int(part) for part in (row["reference"] or "").split(",") if part.isdigit()}
        if row["disposition"] == "intake" and intakes:
            if intakes <= purged_intakes:
                found.append(path)
        elif row["recorded_at"] < _utc(cutoff):
            found.append(path)
    return found


def _marks(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()

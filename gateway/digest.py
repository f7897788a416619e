"""The Navigator's exceptions digest and chase list as records, built from the state
database: what needs a person. gateway/digest_render.py turns them into the mail's text.

The digest lists everything the gateway did not do by itself (DESIGN.md section 2: no item
is dropped silently): children whose decision is an exception, telephone tasks, withheld
children, manager alerts, notifications that could not be sent and contacts passed over,
mail that came back or was quarantined, contacts' keys newly past a warning stage (each
stage once: gateway/key_lifecycle.py) and, once a month, contacts due to be confirmed; then
counts of what was planned, sealed and sent. The chase list names notifications sent with
no read receipt and no reply recorded yet. A missing receipt is never taken to mean unread:
many mail programs never send one, so the list says only what has not been recorded.

The seam: this module decides what is listed (SQL, the `since` and `told_since` windows,
one read snapshot so the counts agree with the lists) and holds it as frozen records;
rendering decides only how each record reads, so either side can change and be tested
alone (the words for tracking events are kept here beside the kinds they select: the chase
list's `heard` is held in words). Quarantine reasons and SMTP errors can quote an
address: addresses are taken out here, before a record holds the text, so no rendering can
show one.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from gateway.approval import Waiting, waiting
from gateway.commands import RESOLVING
from gateway.key_lifecycle import KeyWarning, StaleContact, urgency
from gateway.model import ContactRole, ExceptionKind, Outcome
from gateway.revision_store import GoneChild, gone_children

# What came back from a school's mail system that the Navigator should see; read receipts
# and replies are not here (replies are forwarded to the Navigator as they arrive). The
# words are how gateway/digest_render.py says each; the kinds are what build_digest lists.
RETURNED: dict[str, str] = {
    "bounce_permanent": "will not be delivered (permanent bounce)",
    "out_of_office": "automatic reply: nobody has acted on it yet",
    "deleted_unread": "deleted without being read",
}
# Evidence that a person at the school has the notification: only these take it off the
# chase list. Everything else heard about it is shown beside it.
_ACKNOWLEDGED = ("read_receipt", "reply")
_HEARD = {
    "deleted_unread": "deleted without being read",
    "out_of_office": "automatic reply received",
    "bounce_permanent": "bounced: will not be delivered",
    "bounce_delayed": "delivery delayed",
    "receipt_other": "a receipt that does not say it was read",
}

# An address in a mail server's error or a quarantine reason ("From x@y is allow-listed but
# ..."): the digest names the problem, not the person.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'@]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_ADDRESS_SHOWN = "[address]"

_CONTACT_ORDER = {ContactRole.DSL.value: 0, ContactRole.DEPUTY_DSL.value: 1}


# --------------------------------------------------------------------------------------
# What the digest holds


@dataclass(frozen=True)
class KeyWarningItem:
    """A contact's key newly past a warning stage, with the names the Navigator reads."""

    warning: KeyWarning
    school: str
    contact_name: str  # from the contacts list now; "" if the contact has left it since


@dataclass(frozen=True)
class CandidateSchool:
    """A pupil-roll entry that might be the child, as matching scored it."""

    urn: int
    school: str
    upn: str
    score: float
    agreed: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class ChildItem:
    """One child's recorded decision that a person must see, until `resolved` by ROUTE,
    WITHHOLD or CALLED (gateway/resolutions.py).

    `recorded_at` is when the spreadsheet was taken in; `source` says where in it the child
    is ("police.xlsx, sheet 'Daily', row 5"). `candidates` are best first.
    """

    decision_id: int  # the Navigator's commands name it C<decision_id>
    recorded_at: datetime
    source: str
    incident_ref: str
    child: str
    dob: date | None
    outcome: Outcome
    kind: ExceptionKind | None
    reason: str
    urn: int | None
    school: str
    due: datetime | None
    manager_alert: bool
    telephone: str  # the setting's number as routing recorded it (telephone tasks)
    candidates: tuple[CandidateSchool, ...]
    resolved: bool = False  # settled by the Navigator: counted, no longer listed


@dataclass(frozen=True)
class ContactPhone:
    role: str  # a ContactRole value
    name: str
    phone: str


@dataclass(frozen=True)
class TelephoneTask:
    """An early-years setting to telephone: `number` is the one routing recorded, else
    GIAS's; `contacts` are the setting's contacts with their own numbers."""

    item: ChildItem
    number: str
    contacts: tuple[ContactPhone, ...]


@dataclass(frozen=True)
class NotificationException:
    """A notification that could not safely leave (no key, refused…) and is still waiting
    for a person. `at` is when it became an exception."""

    reference: str
    incident_ref: str
    urn: int
    school: str
    children: tuple[str, ...]
    due: datetime
    kind: ExceptionKind | None
    reason: str
    at: datetime


@dataclass(frozen=True)
class PassedOver:
    """A school contact left out of a notification because their key could not be used
    (the notification went to the school's other contacts)."""

    urn: int
    school: str
    contact_role: str
    kind: ExceptionKind | None
    reference: str
    at: datetime


@dataclass(frozen=True)
class UndeliveredMail:
    """The gateway's own mail (an alert, a receipt, a digest…) that could not be sent."""

    kind: str  # a MessageKind value
    reference: str
    contact_role: str
    error: str
    at: datetime


@dataclass(frozen=True)
class ReturnedMail:
    """A bounce, automatic reply or "deleted unread" report about a notification."""

    kind: str  # a tracking_event kind
    reference: str
    school: str
    summary: str
    at: datetime


@dataclass(frozen=True)
class QuarantinedMail:
    recorded_at: datetime
    mailbox: str
    reason: str


@dataclass(frozen=True)
class Counts:
    """What the gateway did by itself, over the same period as the digest's items."""

    spreadsheets: int
    children: int
    to_notify: int
    to_telephone: int
    withheld: int
    exceptions: int
    notifications_planned: int
    notifications_waiting: int  # planned or sealed: due later
    notifications_in_progress: int  # being sent, or waiting for a retry
    notifications_sent: int
    notifications_not_sent: int  # exceptions
    messages_sent: int


@dataclass(frozen=True)
class Digest:
    now: datetime
    since: datetime | None
    child_exceptions: tuple[ChildItem, ...]
    notification_exceptions: tuple[NotificationException, ...]
    telephone_tasks: tuple[TelephoneTask, ...]
    withheld: tuple[ChildItem, ...]
    manager_alerts: tuple[ChildItem, ...]
    passed_over: tuple[PassedOver, ...]
    returned: tuple[ReturnedMail, ...]
    undelivered: tuple[UndeliveredMail, ...]
    quarantined: tuple[QuarantinedMail, ...]
    key_warnings: tuple[KeyWarningItem, ...]
    stale_contacts: tuple[StaleContact, ...]
    counts: Counts
    # Children gone from a corrected resend of a spreadsheet, not yet withdrawn.
    gone: tuple[GoneChild, ...] = ()
    # Approval mode: notifications waiting for APPROVE, and the time ("HH:MM", London) after
    # which what is due today and still waiting is escalated to the manager.
    awaiting_approval: tuple[Waiting, ...] = ()
    approve_by: str | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing in it needs a person (the counts alone are no reason to send it)."""
        return not (
            self.child_exceptions
            or self.awaiting_approval
            or self.gone
            or self.notification_exceptions
            or self.telephone_tasks
            or self.withheld
            or self.manager_alerts
            or self.passed_over
            or self.returned
            or self.undelivered
            or self.quarantined
            or self.key_warnings
            or self.stale_contacts
        )


@dataclass(frozen=True)
class ChaseItem:
    """A notification sent with no read receipt and no reply recorded yet.

    `sent_at` is when its first message left; `contacts` are those it was sent to; `heard`
    is anything else recorded about it (an automatic reply, a bounce), in words.
    """

    reference: str
    urn: int
    school: str
    school_telephone: str
    sent_at: datetime
    contacts: tuple[ContactPhone, ...]
    heard: tuple[str, ...]


@dataclass(frozen=True)
class ChaseList:
    now: datetime
    items: tuple[ChaseItem, ...]

    @property
    def is_empty(self) -> bool:
        return not self.items


# --------------------------------------------------------------------------------------
# Building them from the state database


def build_digest(
    conn: sqlite3.Connection,
    *,
    now: datetime,
    since: datetime | None,
    key_warnings: Sequence[KeyWarning] = (),
    stale_contacts: Sequence[StaleContact] = (),
    approve_by: str | None = None,
    told_since: datetime | None = None,
) -> Digest:
    """The digest as the database stands at `now`.

    What waits for a decision (exceptions, telephone tasks, notifications that could not
    leave or wait for APPROVE, children gone from a corrected sheet) is listed until the
    Navigator settles it. What needs no decision — children withheld, manager alerts,
    contacts passed over, mail returned, undelivered or quarantined — is listed once: only
    when recorded after `told_since` (the previous digest), so the morning digest does not
    grow by every such item ever recorded.

    `approve_by` is approval mode's escalation time (approval.escalate_at), said beside the
    notifications waiting for APPROVE.

    With `since`, only what was recorded after that instant (the digest sent again when new
    exceptions arrive after the morning one); key warnings and contacts to confirm are
    listed as given (the caller knows which are new). With None, everything still open.
    """
    _require_aware(now, "now")
    for name, instant in (("since", since), ("told_since", told_since)):
        if instant is not None:
            _require_aware(instant, name)
    told = max(since, told_since) if since and told_since else since or told_since
    with _snapshot(conn):
        recorded = [item for item in _child_items(conn) if _after(item.recorded_at, since)]
        # What the Navigator has settled (ROUTE, WITHHOLD, CALLED) is counted, not listed.
        decisions = [item for item in recorded if not item.resolved]
        untold = [item for item in decisions if _after(item.recorded_at, told)]
        telephone_tasks = tuple(
            _telephone_task(conn, item) for item in decisions if item.outcome is Outcome.TELEPHONE
        )
        return Digest(
            now=now,
            since=since,
            child_exceptions=tuple(d for d in decisions if d.outcome is Outcome.EXCEPTION),
            notification_exceptions=tuple(
                n for n in _notification_exceptions(conn) if _after(n.at, since)
            ),
            telephone_tasks=telephone_tasks,
            withheld=tuple(d for d in untold if d.outcome is Outcome.WITHHOLD),
            manager_alerts=tuple(d for d in untold if d.manager_alert),
            passed_over=tuple(p for p in _passed_over(conn) if _after(p.at, told)),
            returned=tuple(r for r in _returned(conn) if _after(r.at, told)),
            undelivered=tuple(u for u in _undelivered(conn) if _after(u.at, told)),
            quarantined=tuple(q for q in _quarantined(conn) if _after(q.recorded_at, told)),
            key_warnings=tuple(
                KeyWarningItem(w, _school_name(conn, w.urn), _contact_name(conn, w))
                for w in sorted(key_warnings, key=_most_urgent)
            ),
            stale_contacts=tuple(stale_contacts),
            counts=_counts(conn, recorded, since),
            gone=tuple(
                g for g in gone_children(conn) if not g.settled and _after(g.recorded_at, since)
            ),
            awaiting_approval=tuple(w for w in waiting(conn) if _after(w.waiting_since, since)),
            approve_by=approve_by,
        )


def build_chase_list(
    conn: sqlite3.Connection, *, now: datetime, sent_after: datetime | None = None
) -> ChaseList:
    """Notifications with a message sent by `now` (and after `sent_after`, when given) and no
    read receipt or reply recorded for any of their messages, oldest first."""
    _require_aware(now, "now")
    if sent_after is not None:
        _require_aware(sent_after, "sent_after")
    with _snapshot(conn):
        acknowledged = _references_with(conn, _ACKNOWLEDGED)
        heard = _heard(conn)
        sent: dict[str, list[sqlite3.Row]] = {}
        for row in conn.execute(
            "SELECT n.reference, n.urn, unseal(n.content) AS content, m.contact_role,"
            " m.recipient, m.sent_at"
            " FROM message m JOIN notification n ON n.reference = m.reference"
            " WHERE m.kind = 'notification' AND m.state = 'sent' AND m.sent_at IS NOT NULL"
            " ORDER BY m.sent_at, m.id"
        ):
            if row["reference"] not in acknowledged:
                sent.setdefault(row["reference"], []).append(row)
        items = []
        for reference, rows in sent.items():
            first = _instant(rows[0]["sent_at"])
            if first > now or not _after(first, sent_after):
                continue
            urn = rows[0]["urn"]
            items.append(
                ChaseItem(
                    reference=reference,
                    urn=urn,
                    school=json.loads(rows[0]["content"])["school_name"],
                    school_telephone=_school_telephone(conn, urn),
                    sent_at=first,
                    contacts=tuple(
                        _contact_phone(conn, urn, row["contact_role"], row["recipient"])
                        for row in rows
                    ),
                    heard=tuple(_HEARD[kind] for kind in heard.get(reference, ())),
                )
            )
    return ChaseList(now=now, items=tuple(items))


def _most_urgent(warning: KeyWarning) -> tuple[int, str, int]:
    return (
        urgency(warning.stage),
        warning.usable_until.isoformat() if warning.usable_until else "",
        warning.urn,
    )


def _contact_name(conn: sqlite3.Connection, warning: KeyWarning) -> str:
    row = conn.execute(
        "SELECT name FROM contact WHERE urn = ? AND role = ? AND fingerprint = ?",
        (warning.urn, warning.contact_role, warning.fingerprint),
    ).fetchone()
    return str(row["name"]) if row else ""


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    # One read transaction, so a dispatch running meanwhile cannot make the counts disagree
    # with the lists (as the audit export reads).
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        yield
    finally:
        if own:
            conn.execute("ROLLBACK")


def _child_items(conn: sqlite3.Connection) -> Iterator[ChildItem]:
    for row in conn.execute(
        "SELECT d.id, d.outcome, d.exception_kind, d.urn, d.due, d.manager_alert,"
        " unseal(d.reason) AS reason, d.incident_ref, unseal(d.record) AS record, i.received_at"
        ", EXISTS (SELECT 1 FROM resolution r WHERE r.decision_id = d.id"
        f" AND r.verb IN ({', '.join(repr(verb.value) for verb in RESOLVING)})) AS resolved"
        " FROM decision d JOIN intake i ON i.id = d.intake_id ORDER BY i.received_at, d.id"
    ):
        record: dict[str, Any] = json.loads(row["record"])
        source = record["source_row"]
        group = f", child {source['group']}" if source.get("group") is not None else ""
        candidates = sorted(record.get("candidates", ()), key=lambda c: -float(c["score"]))
        yield ChildItem(
            decision_id=row["id"],
            recorded_at=_instant(row["received_at"]),
            source=f"{source['file']}, sheet {source['sheet']!r}, row {source['row']}{group}",
            incident_ref=row["incident_ref"],
            child=record.get("child") or "",
            dob=date.fromisoformat(record["dob"]) if record.get("dob") else None,
            outcome=Outcome(row["outcome"]),
            kind=_kind(row["exception_kind"]),
            reason=row["reason"],
            urn=row["urn"],
            school=record.get("school") or "",
            due=_instant(row["due"]) if row["due"] else None,
            manager_alert=bool(row["manager_alert"]),
            resolved=bool(row["resolved"]),
            telephone=record.get("telephone") or "",
            candidates=tuple(
                CandidateSchool(
                    urn=c["urn"],
                    school=c["school"],
                    upn=c["upn"],
                    score=float(c["score"]),
                    agreed=tuple(c["agreed"]),
                    note=c["note"],
                )
                for c in candidates
            ),
        )


def _telephone_task(conn: sqlite3.Connection, item: ChildItem) -> TelephoneTask:
    # GIAS may have gained a number since routing found none (its reason then says so).
    if item.urn is None:
        return TelephoneTask(item=item, number=item.telephone, contacts=())
    number = item.telephone or _school_telephone(conn, item.urn)
    return TelephoneTask(item=item, number=number, contacts=_contacts(conn, item.urn))


def _notification_exceptions(conn: sqlite3.Connection) -> list[NotificationException]:
    became = _latest_audit(conn, "notification.exception", "reference")
    found = []
    for row in conn.execute(
        "SELECT reference, incident_ref, urn, due, exception_kind, reason,"
        " unseal(content) AS content, created_at FROM notification"
        " WHERE state = 'exception' ORDER BY due, reference"
    ):
        content: dict[str, Any] = json.loads(row["content"])
        children = tuple(
            f"{child['forename']} {child['surname']}".strip() for child in content["children"]
        )
        found.append(
            NotificationException(
                reference=row["reference"],
                incident_ref=row["incident_ref"],
                urn=row["urn"],
                school=content["school_name"],
                children=children,
                due=_instant(row["due"]),
                kind=_kind(row["exception_kind"]),
                reason=row["reason"],
                at=became.get(row["reference"]) or _instant(row["created_at"]),
            )
        )
    return found


def _passed_over(conn: sqlite3.Connection) -> list[PassedOver]:
    # Each contact once, as last passed over: the same expired key passes its contact over
    # for every notification to that school until it is replaced.
    latest: dict[tuple[int, str], PassedOver] = {}
    for row in conn.execute(
        "SELECT at, data FROM audit WHERE event = 'contact.passed_over' ORDER BY seq"
    ):
        data: dict[str, Any] = json.loads(row["data"])
        urn = int(data["urn"])
        latest[(urn, data["contact_role"])] = PassedOver(
            urn=urn,
            school=_school_name(conn, urn),
            contact_role=data["contact_role"],
            kind=_kind(data.get("exception_kind")),
            reference=data["reference"],
            at=_instant(row["at"]),
        )
    return sorted(latest.values(), key=lambda p: (p.at, p.urn))


def _returned(conn: sqlite3.Connection) -> list[ReturnedMail]:
    kinds = tuple(RETURNED)
    rows = conn.execute(
        "SELECT t.kind, coalesce(m.reference, t.reference) AS reference, t.summary, t.at,"
        " json_extract(unseal(n.content), '$.school_name') AS school FROM tracking_event t"
        " LEFT JOIN message m ON m.id = t.message_row"
        " LEFT JOIN notification n ON n.reference = coalesce(m.reference, t.reference)"
        f" WHERE t.kind IN ({', '.join('?' for _ in kinds)}) ORDER BY t.at, t.id",
        kinds,
    )
    return [
        ReturnedMail(
            kind=row["kind"],
            reference=row["reference"] or "",
            school=row["school"] or "",
            summary=_without_addresses(row["summary"]),
            at=_instant(row["at"]),
        )
        for row in rows
    ]


def _undelivered(conn: sqlite3.Connection) -> list[UndeliveredMail]:
    # A notification's failures reach the digest through its notification; the gateway's
    # own mail has no notification, and an alert to the manager that never left must not
    # go unnoticed.
    became = _latest_audit(conn, "message.exception", "message_id")
    return [
        UndeliveredMail(
            kind=row["kind"],
            reference=row["reference"],
            contact_role=row["contact_role"],
            error=_without_addresses(row["last_error"]),
            at=became.get(row["message_id"]) or _instant(row["sealed_at"]),
        )
        for row in conn.execute(
            "SELECT kind, reference, contact_role, last_error, message_id, sealed_at"
            " FROM message WHERE state = 'exception' AND kind != 'notification' ORDER BY id"
        )
    ]


def _quarantined(conn: sqlite3.Connection) -> list[QuarantinedMail]:
    return [
        QuarantinedMail(
            recorded_at=_instant(row["recorded_at"]),
            mailbox=row["mailbox"],
            reason=_without_addresses(row["reason"]),
        )
        for row in conn.execute(
            "SELECT recorded_at, mailbox, reason FROM inbound_message"
            " WHERE disposition = 'quarantined' ORDER BY recorded_at, id"
        )
    ]


def _counts(
    conn: sqlite3.Connection, decisions: Sequence[ChildItem], since: datetime | None
) -> Counts:
    spreadsheets = sum(
        1
        for row in conn.execute("SELECT received_at FROM intake")
        if _after(_instant(row["received_at"]), since)
    )
    states = [
        row["state"]
        for row in conn.execute("SELECT state, created_at FROM notification")
        if _after(_instant(row["created_at"]), since)
    ]
    sent = sum(
        1
        for row in conn.execute(
            "SELECT sent_at FROM message WHERE kind = 'notification' AND state = 'sent'"
            " AND sent_at IS NOT NULL"
        )
        if _after(_instant(row["sent_at"]), since)
    )

    def outcome(value: Outcome) -> int:
        return sum(1 for d in decisions if d.outcome is value)

    return Counts(
        spreadsheets=spreadsheets,
        children=len(decisions),
        to_notify=outcome(Outcome.NOTIFY),
        to_telephone=outcome(Outcome.TELEPHONE),
        withheld=outcome(Outcome.WITHHOLD),
        exceptions=outcome(Outcome.EXCEPTION),
        notifications_planned=len(states),
        notifications_waiting=sum(1 for s in states if s in ("planned", "sealed")),
        notifications_in_progress=sum(1 for s in states if s in ("sending", "failed")),
        notifications_sent=states.count("sent"),
        notifications_not_sent=states.count("exception"),
        messages_sent=sent,
    )


def _references_with(conn: sqlite3.Connection, kinds: Sequence[str]) -> set[str]:
    # An event names its message (by row) or, for a reply matched by the subject's code
    # alone, only the reference: either ties it to the notification.
    rows = conn.execute(
        "SELECT coalesce(m.reference, t.reference) FROM tracking_event t"
        " LEFT JOIN message m ON m.id = t.message_row"
        f" WHERE t.kind IN ({', '.join('?' for _ in kinds)})",
        tuple(kinds),
    )
    return {row[0] for row in rows if row[0] is not None}


def _heard(conn: sqlite3.Connection) -> dict[str, list[str]]:
    kinds = tuple(_HEARD)
    heard: dict[str, list[str]] = {}
    for row in conn.execute(
        "SELECT coalesce(m.reference, t.reference) AS reference, t.kind FROM tracking_event t"
        " LEFT JOIN message m ON m.id = t.message_row"
        f" WHERE t.kind IN ({', '.join('?' for _ in kinds)}) ORDER BY t.at, t.id",
        kinds,
    ):
        if row["reference"] is not None and row["kind"] not in heard.get(row["reference"], []):
            heard.setdefault(row["reference"], []).append(row["kind"])
    return heard


def _latest_audit(conn: sqlite3.Connection, event: str, key: str) -> dict[str, datetime]:
    return {
        row[0]: _instant(row[1])
        for row in conn.execute(
            "SELECT json_extract(data, ?), max(at) FROM audit WHERE event = ? GROUP BY 1",
            (f"$.{key}", event),
        )
        if row[0] is not None
    }


def _contacts(conn: sqlite3.Connection, urn: int) -> tuple[ContactPhone, ...]:
    rows = conn.execute("SELECT role, name, phone FROM contact WHERE urn = ? ORDER BY id", (urn,))
    found = [ContactPhone(row["role"], row["name"], row["phone"]) for row in rows]
    return tuple(sorted(found, key=lambda c: _CONTACT_ORDER.get(c.role, 2)))


def _contact_phone(conn: sqlite3.Connection, urn: int, role: str, recipient: str) -> ContactPhone:
    # The contact the message went to, by address; a contacts list re-imported since may
    # have changed the address, and then the role's current contact is the one to ring.
    row = conn.execute(
        "SELECT name, phone FROM contact WHERE urn = ? AND role = ?"
        " ORDER BY lower(email) = lower(?) DESC, id LIMIT 1",
        (urn, role, recipient),
    ).fetchone()
    return ContactPhone(role, row["name"], row["phone"]) if row else ContactPhone(role, "", "")


def _school_telephone(conn: sqlite3.Connection, urn: int) -> str:
    row = conn.execute("SELECT telephone FROM establishment WHERE urn = ?", (urn,)).fetchone()
    return str(row["telephone"]) if row else ""


def _school_name(conn: sqlite3.Connection, urn: int) -> str:
    row = conn.execute("SELECT name FROM establishment WHERE urn = ?", (urn,)).fetchone()
    return str(row["name"]) if row else ""


def _kind(value: str | None) -> ExceptionKind | None:
    return ExceptionKind(value) if value else None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _after(instant: datetime, since: datetime | None) -> bool:
    return since is None or instant > since


def _require_aware(instant: datetime, name: str) -> None:
    if instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware instant, not {instant}")


def _without_addresses(text: str) -> str:
    return _ADDRESS.sub(_ADDRESS_SHOWN, text)

"""Subject access and case reviews: what the gateway shared about one child, with whom, when.

`find_subject` reads the state database for one child, named and born as given: each
notification that named the child (its reference, the incident, the school), each message
that carried it (the recipient's role, address and pinned key; when it was sealed and sent;
when a read receipt or a reply was recorded), the Education Safeguarding Manager's alert when
the school was closed, and every decision recorded about the child, shared or not.

Exactly that child: the name is compared in its normalised form (gateway/names.py: case,
accents, punctuation and word order do not count) and the date of birth must be the same
date. A sibling is another name; a namesake is another date of birth; neither is listed.
The police's name is compared as they wrote it: a child they recorded under another name
(a middle name added, a nickname) is found under that name.

`export_subject_access` writes it as a spreadsheet for a subject access request (UK GDPR
Art. 15) or a case review. With `redact_third_parties` the adults' details go: the incident's
circumstances, the relationship of the parties, other information, the location and
postcode, the voice of the child (free text that may name them), the matching notes (which
name other pupils), and the school staff's addresses and key fingerprints (their role and
the school stay). What was shared, with which school, and when, stays.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from gateway.amendments import child_identity
from gateway.audit_export import CellValue, Column, Sheet, write_workbook
from gateway.clock import LONDON
from gateway.model import ChildRecord, Incident, NotificationKind, SourceRow, role_label
from gateway.names import name_form
from gateway.notification_store import notification_from_json
from gateway.outbox import MessageKind
from gateway.own_mail import own_reference

REDACTED = "[redacted: third parties]"
MANAGER_ALERT = "manager alert"


@dataclass(frozen=True)
class _Subject:
    """The child searched for."""

    name: str
    dob: date

    def is_(self, name: str, born: date | None) -> bool:
        """Whether a child recorded as `name`, born `born`, is this one: the gateway's own
        identity of a child across files (gateway/amendments.py: the compared form of the
        name, the date of birth), the name's words in any order ("TAYLOR, Archie")."""
        if child_identity(name, born) == child_identity(self.name, self.dob):
            return True
        return born == self.dob and _words(name) == _words(self.name)


def _words(name: str) -> list[str]:
    return sorted(name_form(name).tokens)


@dataclass(frozen=True)
class Delivery:
    """One sealed message that carried the child's details, and what was heard of it."""

    role: str
    recipient: str
    fingerprint: str
    state: str
    sealed_at: datetime | None  # None: never sealed (a row for a notification that was not)
    sent_at: datetime | None
    read_at: datetime | None
    replied_at: datetime | None


@dataclass(frozen=True)
class Shared:
    """A notification (or the manager's alert) that named the child.

    `child` is the child as the police recorded them in it; `incident` its details as sent.
    For the manager's alert `reference` is the alert's own and `incident` has no details
    beyond the reference and time.
    """

    reference: str
    incident_ref: str
    incident: Incident
    school: str
    urn: int | None
    child: ChildRecord
    # notification, amendment or withdrawal (gateway/amendments.py), or MANAGER_ALERT
    kind: str
    state: str  # the notification's (planned, sent, exception…); "alert" for the manager's
    deliveries: tuple[Delivery, ...]

    @property
    def to_manager(self) -> bool:
        return self.kind == MANAGER_ALERT


@dataclass(frozen=True)
class Recorded:
    """A decision the gateway recorded about the child, whether or not anything was sent."""

    incident_ref: str
    recorded_at: datetime
    outcome: str
    exception_kind: str | None
    school: str
    urn: int | None
    reason: str


@dataclass(frozen=True)
class SubjectAccess:
    name: str
    dob: date
    shared: tuple[Shared, ...] = ()
    recorded: tuple[Recorded, ...] = ()

    def render(self) -> str:
        """What was shared, for the terminal: one block per notification."""
        lines = [
            f"{self.name}, born {self.dob:%d/%m/%Y}: {len(self.shared)} shared,"
            f" {len(self.recorded)} decisions recorded"
        ]
        for item in self.shared:
            where = "the Education Safeguarding Manager" if item.to_manager else item.school
            urn = f" (URN {item.urn})" if item.urn and not item.to_manager else ""
            kind = "" if item.kind == NotificationKind.NOTIFICATION else f" ({item.kind})"
            lines.append(
                f"{item.reference}{kind}  incident {item.incident_ref}"
                f"  {_when(item.incident.occurred_at, item.incident.time_known)}  to {where}{urn}"
            )
            for d in item.deliveries:
                lines.append(
                    f"  {role_label(d.role)} {d.recipient} (key {d.fingerprint}):"
                    f" sealed {_stamp(d.sealed_at)}, sent {_stamp(d.sent_at)},"
                    f" read {_stamp(d.read_at)}, replied {_stamp(d.replied_at)}"
                )
        for decision in self.recorded:
            school = f" {decision.school} ({decision.urn})" if decision.urn else ""
            kind = f": {decision.exception_kind}" if decision.exception_kind else ""
            lines.append(
                f"recorded {_stamp(decision.recorded_at)}  incident {decision.incident_ref}"
                f"  {decision.outcome}{kind}{school}"
            )
        return "\n".join(lines)


def find_subject(conn: sqlite3.Connection, *, name: str, dob: date) -> SubjectAccess:
    """Everything recorded about the child named `name` and born on `dob` (see above)."""
    if not name_form(name):
        raise ValueError("a subject access search needs the child's name")
    subject = _Subject(name, dob)
    own_transaction = not conn.in_transaction
    if own_transaction:
        # One snapshot: a dispatch running meanwhile cannot give a notification half its sends.
        conn.execute("BEGIN")
    try:
        recorded = tuple(_recorded(conn, subject))
        shared = [*_notifications(conn, subject), *_manager_alerts(conn, subject)]
    finally:
        if own_transaction:
            conn.execute("ROLLBACK")
    shared.sort(key=lambda item: (_first_sealed(item), item.reference))
    return SubjectAccess(name=name, dob=dob, shared=tuple(shared), recorded=recorded)


def _notifications(conn: sqlite3.Connection, subject: _Subject) -> Iterator[Shared]:
    for row in conn.execute(
        "SELECT reference, incident_ref, urn, state, unseal(content) AS content FROM notification"
        " ORDER BY created_at"
    ).fetchall():
        notification = notification_from_json(json.loads(row["content"]))
        for child in notification.children:
            if subject.is_(child.display_name, child.dob):
                yield Shared(
                    reference=row["reference"],
                    incident_ref=row["incident_ref"],
                    incident=notification.incident,
                    school=notification.school_name,
                    urn=row["urn"],
                    child=child,
                    kind=notification.kind.value,
                    state=row["state"],
                    deliveries=_deliveries(conn, row["reference"]),
                )
                break


def _decision_rows(
    conn: sqlite3.Connection, subject: _Subject
) -> Iterator[tuple[sqlite3.Row, dict[str, Any]]]:
    for row in conn.execute(
        "SELECT d.incident_ref, d.outcome, d.exception_kind, d.urn, d.manager_alert,"
        " unseal(d.reason) AS reason, unseal(d.record) AS record, i.received_at"
        " FROM decision d JOIN intake i ON i.id = d.intake_id"
        " ORDER BY i.received_at, d.id"
    ).fetchall():
        record: dict[str, Any] = json.loads(row["record"])
        born = date.fromisoformat(record["dob"]) if record.get("dob") else None
        if subject.is_(record.get("child") or "", born):
            yield row, record


def _recorded(conn: sqlite3.Connection, subject: _Subject) -> Iterator[Recorded]:
    for row, record in _decision_rows(conn, subject):
        yield Recorded(
            incident_ref=row["incident_ref"],
            recorded_at=datetime.fromisoformat(row["received_at"]),
            outcome=row["outcome"],
            exception_kind=row["exception_kind"],
            school=record.get("school") or "",
            urn=row["urn"],
            reason=row["reason"],
        )


def _manager_alerts(conn: sqlite3.Connection, subject: _Subject) -> Iterator[Shared]:
    seen: set[str] = set()
    for row, record in _decision_rows(conn, subject):
        incident_ref = row["incident_ref"]
        if not row["manager_alert"] or incident_ref in seen:
            continue
        seen.add(incident_ref)
        # gateway/manager_alert.py names the alert by its incident.
        reference = own_reference(MessageKind.ALERT, f"manager/{incident_ref}")
        deliveries = _deliveries(conn, reference)
        if not deliveries:
            continue  # no manager configured then: the audit says so, nothing was shared
        incident_at = record.get("incident_at")
        yield Shared(
            reference=reference,
            incident_ref=incident_ref,
            incident=Incident(
                ref=incident_ref,
                occurred_at=datetime.fromisoformat(incident_at) if incident_at else None,
                time_known=bool(record.get("incident_time_known", True)),
                risk=None,
                crime_status=None,
                children=(),
            ),
            school=record.get("school") or "",
            urn=row["urn"],
            child=ChildRecord(record["child"], "", subject.dob, _source(record)),
            kind=MANAGER_ALERT,
            state="alert",
            deliveries=deliveries,
        )


def _source(record: dict[str, Any]) -> SourceRow:
    source = record["source_row"]
    return SourceRow(source["file"], source["sheet"], source["row"], source.get("group"))


def _deliveries(conn: sqlite3.Connection, reference: str) -> tuple[Delivery, ...]:
    # A reply matched by the subject's reference alone names the notification, not which
    # of its messages it answers: it counts for each.
    by_reference = _first_event(
        conn, "t.reference = ? AND t.message_row IS NULL AND t.kind = 'reply'", reference
    )
    found = []
    for message in conn.execute(
        "SELECT id, contact_role, recipient, fingerprint, state, sealed_at, sent_at FROM message"
        " WHERE reference = ? ORDER BY id",
        (reference,),
    ).fetchall():
        found.append(
            Delivery(
                role=message["contact_role"],
                recipient=message["recipient"],
                fingerprint=message["fingerprint"],
                state=message["state"],
                sealed_at=datetime.fromisoformat(message["sealed_at"]),
                sent_at=_instant(message["sent_at"]),
                read_at=_first_event(
                    conn, "t.message_row = ? AND t.kind = 'read_receipt'", message["id"]
                ),
                replied_at=_first_event(
                    conn, "t.message_row = ? AND t.kind = 'reply'", message["id"]
                )
                or by_reference,
            )
        )
    return tuple(found)


def _first_event(conn: sqlite3.Connection, where: str, value: object) -> datetime | None:
    row = conn.execute(f"SELECT min(t.at) FROM tracking_event t WHERE {where}", (value,))
    return _instant(row.fetchone()[0])


def _first_sealed(item: Shared) -> str:
    stamps = [d.sealed_at.isoformat() for d in item.deliveries if d.sealed_at is not None]
    return min(stamps, default="~")  # never sealed: after every one that was


# --------------------------------------------------------------------------------------
# The spreadsheet


_SHARED_COLUMNS = (
    Column("Notification"),
    Column("Kind"),
    Column("Incident number"),
    Column("Incident date"),
    Column("Child (as recorded)"),
    Column("Date of birth"),
    Column("Shared with"),
    Column("URN"),
    Column("Recipient role"),
    Column("Recipient"),
    Column("Key fingerprint"),
    Column("Sealed at"),
    Column("Sent at"),
    Column("Delivery"),
    Column("Read at"),
    Column("Replied at"),
    Column("Risk"),
    Column("Crime or non-crime"),
    Column("Present / witnessed"),
    Column("Circumstances", wrap=True),
    Column("Relationship of the parties", wrap=True),
    Column("Location", wrap=True),
    Column("Postcode"),
    Column("Other information", wrap=True),
    Column("Voice of the child", wrap=True),
)
_RECORDED_COLUMNS = (
    Column("Incident number"),
    Column("Recorded at"),
    Column("Outcome"),
    Column("Exception"),
    Column("School"),
    Column("URN"),
    Column("Reason", wrap=True),
)


def export_subject_access(
    found: SubjectAccess, out: Path, *, redact_third_parties: bool = False
) -> int:
    """Write `found` to `out` (.xlsx): a "Shared" sheet, a row per message that carried the
    child's details (a notification never sealed has one row, with its state), and a
    "Recorded" sheet, a row per decision. Returns the shared rows."""
    shared = [
        _shared_row(item, delivery, redact_third_parties)
        for item in found.shared
        for delivery in item.deliveries or (None,)
    ]
    recorded: list[tuple[CellValue, ...]] = [
        (
            decision.incident_ref,
            _local(decision.recorded_at),
            decision.outcome,
            decision.exception_kind or "",
            decision.school,
            decision.urn,
            REDACTED if redact_third_parties else decision.reason,
        )
        for decision in found.recorded
    ]
    write_workbook(
        out,
        [
            Sheet("Shared", _SHARED_COLUMNS, shared),
            Sheet("Recorded", _RECORDED_COLUMNS, recorded),
        ],
    )
    return len(shared)


def _shared_row(item: Shared, delivery: Delivery | None, redact: bool) -> tuple[CellValue, ...]:
    incident, child = item.incident, item.child

    def adults(value: str) -> str:
        return REDACTED if redact and value else value

    if delivery is None:
        delivery = Delivery("", "", "", item.state, None, None, None, None)
    recipient = delivery.recipient
    if redact and recipient:
        recipient = "@" + recipient.rpartition("@")[2]  # the organisation, not the person
    return (
        item.reference,
        item.kind,
        item.incident_ref,
        _incident_date(incident),
        child.display_name,
        child.dob,
        "Education Safeguarding Manager" if item.to_manager else item.school,
        item.urn,
        role_label(delivery.role),
        recipient,
        REDACTED if redact and delivery.fingerprint else delivery.fingerprint,
        _local(delivery.sealed_at),
        _local(delivery.sent_at),
        delivery.state,
        _local(delivery.read_at),
        _local(delivery.replied_at),
        incident.risk.value if incident.risk else "",
        incident.crime_status.value if incident.crime_status else "",
        child.involvement,
        adults(incident.circumstances),
        adults(child.relationship),
        adults(incident.location),
        adults(child.postcode or incident.postcode),
        adults(incident.other_info),
        adults(child.voice_of_child),
    )


def _incident_date(incident: Incident) -> datetime | date | None:
    if incident.occurred_at is None:
        return None
    local = incident.occurred_at.astimezone(LONDON)
    return local.replace(tzinfo=None) if incident.time_known else local.date()


def _local(instant: datetime | None) -> datetime | None:
    # Excel has no time zones: the reader sees London wall-clock time, GMT or BST.
    return instant.astimezone(LONDON).replace(tzinfo=None) if instant is not None else None


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _when(instant: datetime | None, time_known: bool) -> str:
    if instant is None:
        return "date not given"
    local = instant.astimezone(LONDON)
    return f"{local:%d/%m/%Y %H:%M}" if time_known else f"{local:%d/%m/%Y}"


def _stamp(instant: datetime | None) -> str:
    return f"{instant.astimezone(LONDON):%d/%m/%Y %H:%M}" if instant is not None else "-"

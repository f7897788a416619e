"""The Navigator's exceptions digest and chase list: built from a real state database (the
intake, decisions, notifications, outbox, tracking events and mail ledger as the gateway
records them), rendered as the inner entity sealed to the Navigator."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import jinja2
import pytest

from gateway import audit
from gateway.clock import LONDON
from gateway.digest import ChaseList, Digest, build_chase_list, build_digest
from gateway.digest_render import EXCEPTION_LABELS, render_chase_list, render_digest
from gateway.intake_store import record_plan
from gateway.key_lifecycle import KeyWarning
from gateway.model import (
    Candidate,
    ChildRecord,
    CrimeStatus,
    Decision,
    ExceptionKind,
    Incident,
    Notification,
    Outcome,
    Risk,
    SourceRow,
)
from gateway.notification_store import NotificationState, mark, save_planned
from gateway.notifications import reference_code
from gateway.plan import Plan
from gateway.render import TEMPLATES_DIR, NavigatorContact
from gateway.store import open_state, transaction

NAVIGATOR = NavigatorContact("Sam Navigator", "navigator@mash.example.org", "01223 555 010")

# Monday 2 March 2026 (GMT): the spreadsheet arrives at 06:10, the digest goes at 08:30,
# notifications at 09:00, the chase list at 14:00.
ARRIVAL = datetime(2026, 3, 2, 6, 10, tzinfo=LONDON)
DIGEST_AT = datetime(2026, 3, 2, 8, 30, tzinfo=LONDON)
DUE = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)
SENT = datetime(2026, 3, 2, 9, 0, 5, tzinfo=LONDON)
CHASE_AT = datetime(2026, 3, 2, 14, 0, tzinfo=LONDON)
LATER = datetime(2026, 3, 2, 11, 45, tzinfo=LONDON)  # a second spreadsheet, after the digest

ELM, OAK, ACORN, FARAWAY, BIRCH = 100001, 100002, 100003, 100004, 100005
SCHOOLS = {
    ELM: ("Elm Primary", 873, "01223 100001"),
    OAK: ("Oak Academy", 874, "01733 100002"),
    ACORN: ("Acorn Nursery", 873, "01480 100003"),
    FARAWAY: ("Faraway School", 926, "01603 100004"),
    BIRCH: ("Birch Junior", 873, "01223 100005"),
}
POLICE_TEXT = '<script>alert("x")</script> & <b>bold</b>'


def child(
    forename: str, surname: str, row: int, dob: date | None = date(2016, 5, 4)
) -> ChildRecord:
    return ChildRecord(forename, surname, dob, SourceRow("police.xlsx", "Daily", row))


AVA = child("Ava", "Example", 5)
CAL = child("Cal", "Example", 6, date(2022, 1, 9))
DEE = child("Dee", "Sample", 7)
EVE = child("Eve", "Sample", 8)
FINN = child("Finn", "Sample", 9)
ZED = child("<b>Zed</b>", "Hostile", 10)

DECISIONS = (
    Decision(
        "CC-1001",
        AVA,
        Outcome.EXCEPTION,
        "More than one pupil could be this child. Matching: a near tie",
        exception_kind=ExceptionKind.AMBIGUOUS,
        candidates=(
            Candidate(OAK, "Oak Academy", "A123456789012", 88.5, ("dob", "surname")),
            Candidate(ELM, "Elm Primary", "B123456789012", 91.0, ("dob", "forename"), "twin"),
        ),
    ),
    Decision(
        "CC-1002",
        CAL,
        Outcome.TELEPHONE,
        "Acorn Nursery (URN 100003) is an early-years setting: telephone its DSL",
        ACORN,
        "Acorn Nursery",
        DUE,
        telephone="",  # GIAS had no number when routing ran
    ),
    Decision(
        "CC-1003",
        DEE,
        Outcome.WITHHOLD,
        "Out of area: Faraway School (URN 100004) is in Norfolk (LA 926)",
        FARAWAY,
        "Faraway School",
    ),
    Decision(
        "CC-1004",
        EVE,
        Outcome.WITHHOLD,
        "Birch Junior is closed (half term): not sent. High risk: the Education Safeguarding"
        " Manager is alerted now.",
        BIRCH,
        "Birch Junior",
        manager_alert=True,
    ),
    Decision(
        "CC-1005", FINN, Outcome.NOTIFY, "Notify Elm Primary by 09:00", ELM, "Elm Primary", DUE
    ),
    Decision(
        "CC-1006",
        ZED,
        Outcome.EXCEPTION,
        f"The police's row could not be read: column 'School': value {POLICE_TEXT!r}",
        exception_kind=ExceptionKind.INVALID_ROW,
    ),
)


# --------------------------------------------------------------------------------------
# Building state as the gateway records it


def db(tmp_path: Path) -> sqlite3.Connection:
    conn = open_state(tmp_path / "state.db")
    for urn, (name, la, phone) in SCHOOLS.items():
        conn.execute(
            "INSERT INTO establishment (urn, name, la_code, la_name, type_name, phase_name,"
            " status_name, is_open, postcode, telephone) VALUES (?, ?, ?, '', '', '', 'Open', 1,"
            " '', ?)",
            (urn, name, la, phone),
        )
    contacts = [
        (ELM, "dsl", "Dana Lead", "dsl@elm.example.org", "07700 900001"),
        (ELM, "deputy_dsl", "Dev Deputy", "deputy@elm.example.org", "07700 900002"),
        (OAK, "dsl", "Olu Lead", "dsl@oak.example.org", "07700 900003"),
        (ACORN, "dsl", "Ash Lead", "dsl@acorn.example.org", "07700 900004"),
        (BIRCH, "da_lead", "Bea Lead", "da@birch.example.org", ""),
    ]
    conn.executemany(
        "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
        " VALUES (?, ?, ?, ?, ?, '')",
        contacts,
    )
    return conn


def take_in(
    conn: sqlite3.Connection, decisions: Sequence[Decision], *, arrival: datetime, sha: str
) -> int:
    plan = Plan("police.xlsx", sha, arrival, tuple(decisions))
    return record_plan(conn, plan, incidents=len(decisions), actor="test").intake_id


def notify(
    conn: sqlite3.Connection,
    intake_id: int,
    incident_ref: str,
    urn: int,
    children: Sequence[ChildRecord] = (FINN,),
    *,
    at: datetime = ARRIVAL,
) -> str:
    reference = reference_code(incident_ref, urn)
    incident = Incident(
        incident_ref,
        datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
        Risk.MEDIUM,
        CrimeStatus.CRIME,
        (),
        circumstances="Verbal argument",
    )
    notification = Notification(reference, incident, urn, SCHOOLS[urn][0], tuple(children), DUE)
    save_planned(conn, notification, intake_id=intake_id, at=at, actor="test")
    return reference


def send(
    conn: sqlite3.Connection,
    reference: str,
    urn: int,
    role: str = "dsl",
    *,
    sent_at: datetime | None = SENT,
    state: str = "sent",
) -> int:
    recipient = f"{role}@{SCHOOLS[urn][0].split()[0].lower()}.example.org"
    cursor = conn.execute(
        "INSERT INTO message (kind, reference, contact_role, recipient, fingerprint, message_id,"
        " return_path, due, state, sealed_at, sent_at, body) VALUES ('notification', ?, ?, ?,"
        " ?, ?, ?, ?, ?, ?, ?, x'00')",
        (
            reference,
            role,
            recipient,
            "A" * 40,
            f"<{reference}.{role}@gateway.example.org>",
            f"bounces+{reference}{role}@gateway.example.org",
            DUE.astimezone(UTC).isoformat(),
            state,
            ARRIVAL.astimezone(UTC).isoformat(),
            sent_at.astimezone(UTC).isoformat() if sent_at else None,
        ),
    )
    with transaction(conn):
        mark(conn, reference, NotificationState.SENT, at=sent_at or SENT, actor="test")
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def track(
    conn: sqlite3.Connection,
    kind: str,
    *,
    message_row: int | None = None,
    reference: str | None = None,
    at: datetime = CHASE_AT - timedelta(hours=1),
    summary: str = "",
) -> None:
    conn.execute(
        "INSERT INTO tracking_event (kind, message_row, reference, at, mailbox, uidvalidity,"
        " uid, summary) VALUES (?, ?, ?, ?, 'navigator', 1, 1, ?)",
        (kind, message_row, reference, at.astimezone(UTC).isoformat(), summary or kind),
    )


def quarantine(conn: sqlite3.Connection, reason: str, *, at: datetime, uid: int) -> None:
    conn.execute(
        "INSERT INTO inbound_message (mailbox, uidvalidity, uid, message_id_sha256, sha256, size,"
        " recorded_at, disposition, reason, action, target) VALUES ('mash', 7, ?, 'm', 's', 10,"
        " ?, 'quarantined', ?, 'move', 'Quarantine')",
        (uid, at.astimezone(UTC).isoformat(), reason),
    )


def except_notification(
    conn: sqlite3.Connection, reference: str, kind: ExceptionKind, reason: str, at: datetime
) -> None:
    with transaction(conn):
        mark(
            conn,
            reference,
            NotificationState.EXCEPTION,
            at=at,
            actor="test",
            kind=kind,
            reason=reason,
        )


def pass_over(conn: sqlite3.Connection, reference: str, urn: int, role: str, at: datetime) -> None:
    with transaction(conn):
        audit.append(
            conn,
            "contact.passed_over",
            actor="test",
            at=at,
            reference=reference,
            urn=urn,
            contact_role=role,
            exception_kind=ExceptionKind.KEY_EXPIRED.value,
        )


def morning(tmp_path: Path) -> sqlite3.Connection:
    """The morning's state: the decisions above taken in, Finn's notification planned."""
    conn = db(tmp_path)
    intake = take_in(conn, DECISIONS, arrival=ARRIVAL, sha="a" * 64)
    notify(conn, intake, "CC-1005", ELM)
    return conn


def digest_of(
    conn: sqlite3.Connection, since: datetime | None = None, **lists: Sequence[KeyWarning]
) -> Digest:
    return build_digest(conn, now=DIGEST_AT, since=since, **lists)


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = (part for part in message.iter_parts())
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return str(text.get_content()), str(html.get_content())


# --------------------------------------------------------------------------------------
# The digest's sections


def test_child_exceptions_list_the_kind_reason_and_candidates_best_first(tmp_path: Path) -> None:
    digest = digest_of(morning(tmp_path))
    ava, zed = digest.child_exceptions
    assert (ava.child, ava.incident_ref, ava.kind) == (
        "Ava Example",
        "CC-1001",
        ExceptionKind.AMBIGUOUS,
    )
    assert ava.dob == date(2016, 5, 4)
    assert [(c.school, c.score) for c in ava.candidates] == [
        ("Elm Primary", 91.0),
        ("Oak Academy", 88.5),
    ]
    assert ava.source == "police.xlsx, sheet 'Daily', row 5"
    assert zed.kind is ExceptionKind.INVALID_ROW

    text, html = parts(render_digest(digest, navigator=NAVIGATOR))
    assert "CHILDREN WHO NEED YOU (2)" in text
    assert "more than one pupil could be this child" in text
    assert text.index("Elm Primary (URN 100001): score 91.0") < text.index(
        "Oak Academy (URN 100002)"
    )
    assert "Children who need you (2)" in html


def test_telephone_task_falls_back_to_the_setting_number_from_gias(tmp_path: Path) -> None:
    (task,) = digest_of(morning(tmp_path)).telephone_tasks
    assert task.number == "01480 100003"  # routing had none; GIAS has one now
    assert [(c.role, c.name, c.phone) for c in task.contacts] == [
        ("dsl", "Ash Lead", "07700 900004")
    ]
    assert task.item.child == "Cal Example" and task.item.due == DUE


def test_telephone_task_uses_the_number_routing_recorded(tmp_path: Path) -> None:
    conn = db(tmp_path)
    recorded = replace(DECISIONS[1], telephone="01480 999999")
    take_in(conn, [recorded], arrival=ARRIVAL, sha="b" * 64)
    (task,) = digest_of(conn).telephone_tasks
    text, _ = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))
    assert task.number == "01480 999999"
    assert "Acorn Nursery (URN 100003): 01480 999999" in text
    assert "DSL: Ash Lead, 07700 900004" in text


def test_telephone_task_past_its_time_is_shown_overdue(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    late = build_digest(conn, now=DUE + timedelta(minutes=1), since=None)
    text, html = parts(render_digest(late, navigator=NAVIGATOR))
    assert "(OVERDUE)" in text and "overdue" in html
    on_time, _ = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))
    assert "OVERDUE" not in on_time


def test_withheld_children_are_listed_with_their_reasons(tmp_path: Path) -> None:
    digest = digest_of(morning(tmp_path))
    assert [(w.child, w.school) for w in digest.withheld] == [
        ("Dee Sample", "Faraway School"),
        ("Eve Sample", "Birch Junior"),
    ]
    text, _ = parts(render_digest(digest, navigator=NAVIGATOR))
    assert "WITHHELD, NOT SENT (2)" in text
    assert "Out of area: Faraway School (URN 100004) is in Norfolk (LA 926)" in text


def test_manager_alerts_raised_are_listed(tmp_path: Path) -> None:
    digest = digest_of(morning(tmp_path))
    assert [a.child for a in digest.manager_alerts] == ["Eve Sample"]
    text, _ = parts(render_digest(digest, navigator=NAVIGATOR))
    assert "MANAGER ALERTS RAISED (1)" in text


def test_the_next_morning_what_needs_no_decision_is_not_listed_again_but_exceptions_are(
    tmp_path: Path,
) -> None:
    conn = morning(tmp_path)
    quarantine(conn, "not signed by a pinned police key", at=ARRIVAL, uid=3)
    first = digest_of(conn)
    assert first.withheld and first.manager_alerts and first.quarantined
    next_morning = build_digest(
        conn, now=DIGEST_AT + timedelta(days=1), since=None, told_since=DIGEST_AT
    )
    assert (next_morning.withheld, next_morning.manager_alerts, next_morning.quarantined) == (
        (),
        (),
        (),
    )
    # An exception waits for the Navigator's decision: still there until settled.
    assert [c.child for c in next_morning.child_exceptions] == [
        c.child for c in first.child_exceptions
    ]
    assert next_morning.child_exceptions


def test_notification_exceptions_name_the_kind_reason_school_and_children(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    intake = conn.execute("SELECT id FROM intake").fetchone()[0]
    reference = notify(conn, intake, "CC-2001", OAK, (AVA,))
    became = datetime(2026, 3, 2, 6, 11, tzinfo=LONDON)
    except_notification(
        conn, reference, ExceptionKind.NO_KEY, "no contact has a usable pinned key", became
    )
    (found,) = digest_of(conn).notification_exceptions
    assert (found.reference, found.school, found.kind) == (
        reference,
        "Oak Academy",
        ExceptionKind.NO_KEY,
    )
    assert found.children == ("Ava Example",)
    assert found.at == became

    text, _ = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))
    assert "NOTIFICATIONS NOT SENT (1)" in text
    assert f"{reference} to Oak Academy (URN 100002)" in text
    assert "no usable key for any contact" in text


def test_a_contact_passed_over_appears_once_as_last_passed_over(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    first, second = ARRIVAL + timedelta(minutes=1), ARRIVAL + timedelta(minutes=2)
    pass_over(conn, "OE-AAAAA-AAAAA", ELM, "deputy_dsl", first)
    pass_over(conn, "OE-BBBBB-BBBBB", ELM, "deputy_dsl", second)
    (passed,) = digest_of(conn).passed_over
    assert (passed.school, passed.contact_role, passed.reference, passed.at) == (
        "Elm Primary",
        "deputy_dsl",
        "OE-BBBBB-BBBBB",
        second,
    )
    text, _ = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))
    assert "Elm Primary (URN 100001), Deputy DSL: the contact's key has expired" in text


def test_quarantined_mail_gives_when_and_why_but_no_address(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    quarantine(
        conn,
        "From spoof@police.example.org is allow-listed but DKIM did not pass",
        at=ARRIVAL,
        uid=3,
    )
    (found,) = digest_of(conn).quarantined
    assert found.reason == "From [address] is allow-listed but DKIM did not pass"
    assert found.mailbox == "mash"
    text, html = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))
    assert "spoof@" not in text and "spoof@" not in html
    assert "QUARANTINED MAIL (1)" in text


def test_gateway_mail_that_could_not_be_sent_is_listed_without_the_address(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    conn.execute(
        "INSERT INTO message (kind, reference, contact_role, recipient, fingerprint, message_id,"
        " return_path, due, state, last_error, sealed_at, body) VALUES ('alert', 'AL-1',"
        " 'manager', 'esm@la.example.org', ?, '<al-1@gw>', 'rp', ?, 'exception', ?, ?, x'00')",
        (
            "B" * 40,
            ARRIVAL.astimezone(UTC).isoformat(),
            "550 5.1.1 <esm@la.example.org>: no such user",
            ARRIVAL.astimezone(UTC).isoformat(),
        ),
    )
    (found,) = digest_of(conn).undelivered
    assert (found.kind, found.reference, found.error) == (
        "alert",
        "AL-1",
        "550 5.1.1 <[address]>: no such user",
    )


def test_mail_that_came_back_is_listed_with_its_notification(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    reference = reference_code("CC-1005", ELM)
    row = send(conn, reference, ELM)
    track(conn, "bounce_permanent", message_row=row, summary="permanent failure 5.1.1")
    track(conn, "read_receipt", message_row=row)
    (returned,) = digest_of(conn).returned
    assert (returned.kind, returned.reference, returned.school) == (
        "bounce_permanent",
        reference,
        "Elm Primary",
    )


def test_key_warnings_are_listed_most_urgent_first_with_the_contacts_name(
    tmp_path: Path,
) -> None:
    conn = morning(tmp_path)
    conn.execute("UPDATE contact SET fingerprint = ? WHERE urn = ?", ("D" * 40, ELM))
    later = KeyWarning(1, OAK, "dsl", "C" * 40, DUE + timedelta(days=20), "30", ARRIVAL, None)
    sooner = KeyWarning(2, ELM, "dsl", "D" * 40, DUE + timedelta(days=3), "7", ARRIVAL, None)
    gone = KeyWarning(3, BIRCH, "da_lead", "E" * 40, None, "revoked", ARRIVAL, None)
    digest = digest_of(conn, key_warnings=(later, sooner, gone))
    assert [item.warning for item in digest.key_warnings] == [gone, sooner, later]
    assert [item.contact_name for item in digest.key_warnings] == ["", "Dana Lead", ""]
    text, _ = parts(render_digest(digest, navigator=NAVIGATOR))
    assert "KEYS TO RENEW (3)" in text
    assert "Birch Junior (URN 100005), DA Lead: revoked\n" in text
    assert "Elm Primary (URN 100001), DSL (Dana Lead): within 7 days, stops working" in text
    assert "Thursday 5 March 2026, 09:00" in text


def test_counts_say_what_was_planned_sealed_and_sent(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    counts = digest_of(conn).counts
    assert (counts.spreadsheets, counts.children) == (1, 6)
    assert (counts.to_notify, counts.to_telephone, counts.withheld, counts.exceptions) == (
        1,
        1,
        2,
        2,
    )
    assert (counts.notifications_planned, counts.notifications_waiting) == (1, 1)
    assert (counts.notifications_sent, counts.messages_sent) == (0, 0)

    send(conn, reference_code("CC-1005", ELM), ELM)
    after = build_digest(conn, now=CHASE_AT, since=None).counts
    assert (after.notifications_waiting, after.notifications_sent, after.messages_sent) == (0, 1, 1)


# --------------------------------------------------------------------------------------
# What `since` leaves out, and the empty digest


def test_since_lists_only_what_was_recorded_after_it(tmp_path: Path) -> None:
    conn = morning(tmp_path)
    quarantine(conn, "no spreadsheet attached", at=ARRIVAL, uid=1)
    late_child = replace(
        DECISIONS[0], incident_ref="CC-3001", child=child("Gus", "Later", 4), candidates=()
    )
    take_in(conn, [late_child], arrival=LATER, sha="c" * 64)
    quarantine(conn, "signed by a key that is not pinned", at=LATER, uid=2)

    digest = build_digest(conn, now=LATER, since=DIGEST_AT)
    assert [c.child for c in digest.child_exceptions] == ["Gus Later"]
    assert [q.reason for q in digest.quarantined] == ["signed by a key that is not pinned"]
    assert not digest.telephone_tasks and not digest.withheld and not digest.manager_alerts
    assert (digest.counts.spreadsheets, digest.counts.children) == (1, 1)

    text, _ = parts(render_digest(digest, navigator=NAVIGATOR))
    assert "What has been recorded since Monday 2 March 2026, 08:30" in text


def test_since_leaves_out_a_notification_that_became_an_exception_before_it(
    tmp_path: Path,
) -> None:
    conn = morning(tmp_path)
    reference = reference_code("CC-1005", ELM)
    except_notification(conn, reference, ExceptionKind.KEY_EXPIRED, "expired", ARRIVAL)
    assert digest_of(conn, since=DIGEST_AT).notification_exceptions == ()
    assert len(digest_of(conn, since=None).notification_exceptions) == 1


def test_nothing_recorded_is_an_empty_digest(tmp_path: Path) -> None:
    digest = digest_of(db(tmp_path))
    assert digest.is_empty
    text, html = parts(render_digest(digest, navigator=NAVIGATOR))
    assert "Nothing needs you" in text and "Nothing needs you" in html
    assert "CHILDREN WHO NEED YOU" not in text


def test_a_day_where_every_child_was_notified_is_empty_but_counted(tmp_path: Path) -> None:
    conn = db(tmp_path)
    take_in(conn, [DECISIONS[4]], arrival=ARRIVAL, sha="d" * 64)
    digest = digest_of(conn)
    assert digest.is_empty
    assert digest.counts.to_notify == 1


def test_one_quarantined_mail_makes_the_digest_worth_sending(tmp_path: Path) -> None:
    conn = db(tmp_path)
    quarantine(conn, "no spreadsheet attached", at=ARRIVAL, uid=1)
    assert not digest_of(conn).is_empty


def test_the_digest_needs_timezone_aware_instants(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_digest(db(tmp_path), now=datetime(2026, 3, 2, 8, 30), since=None)


def test_every_exception_kind_has_words_for_the_navigator() -> None:
    assert set(EXCEPTION_LABELS) == set(ExceptionKind)


# --------------------------------------------------------------------------------------
# The chase list


def chase(tmp_path: Path) -> tuple[sqlite3.Connection, dict[str, str]]:
    """Four notifications sent at 09:00: one read, one replied to (by its reference alone),
    one deleted unread, one with nothing recorded; and one still sealed."""
    conn = morning(tmp_path)
    intake = conn.execute("SELECT id FROM intake").fetchone()[0]
    refs = {
        "read": reference_code("CC-1005", ELM),
        "replied": notify(conn, intake, "CC-4001", OAK),
        "deleted": notify(conn, intake, "CC-4002", BIRCH),
        "silent": notify(conn, intake, "CC-4003", ELM),
        "sealed": notify(conn, intake, "CC-4004", OAK),
    }
    read = send(conn, refs["read"], ELM)
    send(conn, refs["replied"], OAK)
    deleted = send(conn, refs["deleted"], BIRCH, "da_lead", sent_at=SENT + timedelta(minutes=1))
    send(conn, refs["silent"], ELM, sent_at=SENT - timedelta(minutes=5))
    send(conn, refs["silent"], ELM, "deputy_dsl", sent_at=SENT - timedelta(minutes=4))
    send(conn, refs["sealed"], OAK, sent_at=None, state="sealed")
    track(conn, "read_receipt", message_row=read)
    track(conn, "reply", reference=refs["replied"])
    track(conn, "deleted_unread", message_row=deleted)
    return conn, refs


def test_chase_list_names_sent_notifications_with_no_receipt_or_reply_oldest_first(
    tmp_path: Path,
) -> None:
    conn, refs = chase(tmp_path)
    found = build_chase_list(conn, now=CHASE_AT)
    assert [item.reference for item in found.items] == [refs["silent"], refs["deleted"]]
    silent, deleted = found.items
    assert silent.sent_at == SENT - timedelta(minutes=5)
    assert (silent.school, silent.school_telephone) == ("Elm Primary", "01223 100001")
    assert [(c.role, c.name, c.phone) for c in silent.contacts] == [
        ("dsl", "Dana Lead", "07700 900001"),
        ("deputy_dsl", "Dev Deputy", "07700 900002"),
    ]
    assert deleted.heard == ("deleted without being read",)
    assert silent.heard == ()


def test_chase_list_says_no_receipt_or_reply_recorded_never_unread(tmp_path: Path) -> None:
    conn, refs = chase(tmp_path)
    found = build_chase_list(conn, now=CHASE_AT)
    text, html = parts(render_chase_list(found, navigator=NAVIGATOR))
    assert "No receipt or reply recorded yet." in text
    assert "no receipt or reply recorded yet" in html
    assert "does not mean they are unread" in text
    assert refs["read"] not in text and refs["replied"] not in text
    assert "Birch Junior (URN 100005)" in text
    assert "DA Lead: Bea Lead, no number on the contacts list" in text
    assert "School telephone: 01223 100005" in text


def test_chase_list_leaves_out_what_was_sent_after_now_or_before_sent_after(
    tmp_path: Path,
) -> None:
    conn, refs = chase(tmp_path)
    early = build_chase_list(conn, now=SENT - timedelta(minutes=2))
    assert [item.reference for item in early.items] == [refs["silent"]]
    recent = build_chase_list(conn, now=CHASE_AT, sent_after=SENT - timedelta(minutes=2))
    assert [item.reference for item in recent.items] == [refs["deleted"]]


def test_nothing_to_chase_says_so(tmp_path: Path) -> None:
    found = build_chase_list(morning(tmp_path), now=CHASE_AT)
    assert found == ChaseList(CHASE_AT, ())
    assert found.is_empty
    text, _ = parts(render_chase_list(found, navigator=NAVIGATOR))
    assert "nobody to chase" in text


# --------------------------------------------------------------------------------------
# Rendering: the inner entity, escaped, strict


def test_digest_is_text_and_html_alternatives_with_the_subject_inside(tmp_path: Path) -> None:
    message = render_digest(digest_of(morning(tmp_path)), navigator=NAVIGATOR)
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_param("protected-headers") == "v1"
    assert message["Subject"] == "Exceptions digest, Monday 2 March 2026, 08:30"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_chase_list_has_its_own_subject_inside(tmp_path: Path) -> None:
    conn, _ = chase(tmp_path)
    message = render_chase_list(build_chase_list(conn, now=CHASE_AT), navigator=NAVIGATOR)
    assert message["Subject"] == "Chase list, Monday 2 March 2026, 14:00"
    assert message.get_content_type() == "multipart/alternative"


def test_police_text_is_escaped_in_the_html(tmp_path: Path) -> None:
    _, html = parts(render_digest(digest_of(morning(tmp_path)), navigator=NAVIGATOR))
    assert "<script>" not in html and "<b>Zed</b>" not in html
    assert "&lt;b&gt;Zed&lt;/b&gt; Hostile" in html
    assert "&lt;script&gt;" in html


def test_html_fetches_nothing_from_outside(tmp_path: Path) -> None:
    conn, _ = chase(tmp_path)
    digest_html = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))[1]
    chase_html = parts(
        render_chase_list(build_chase_list(conn, now=CHASE_AT), navigator=NAVIGATOR)
    )[1]
    for html in (digest_html, chase_html):
        lowered = html.lower()
        assert "://" not in lowered and "src=" not in lowered and "<link" not in lowered
        assert "<style" not in lowered and "url(" not in lowered


def test_control_and_bidi_characters_do_not_reach_the_digest(tmp_path: Path) -> None:
    conn = db(tmp_path)
    hidden = replace(DECISIONS[0], child=child("Ava\u202e", "Ex\x07ample", 5))
    take_in(conn, [hidden], arrival=ARRIVAL, sha="e" * 64)
    text, html = parts(render_digest(digest_of(conn), navigator=NAVIGATOR))
    assert "Ava Example" in text
    assert "\u202e" not in text + html and "\x07" not in text + html


@pytest.mark.parametrize(
    ("template", "render"),
    [
        (
            "digest/digest.txt",
            lambda conn, d: render_digest(digest_of(conn), navigator=NAVIGATOR, templates_dir=d),
        ),
        (
            "digest/chase.html",
            lambda conn, d: render_chase_list(
                build_chase_list(conn, now=CHASE_AT), navigator=NAVIGATOR, templates_dir=d
            ),
        ),
    ],
)
def test_a_template_using_a_value_not_given_is_an_error(
    tmp_path: Path, template: str, render: Callable[[sqlite3.Connection, Path], EmailMessage]
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    with (templates / template).open("a", encoding="utf-8") as file:
        file.write("{{ not_given }}\n")
    conn, _ = chase(tmp_path)
    with pytest.raises(jinja2.UndefinedError, match="not_given"):
        render(conn, templates)

"""The Navigator's exceptions digest and chase list rendered: the records gateway/digest.py
builds, turned into the inner MIME entity that sealing encrypts to the Navigator (text and
HTML from templates/digest/).

The seam: gateway/digest.py decides what is listed; this module decides only how it reads
(labels, times in words, Europe/London, the codes the Navigator's commands name) and never
touches the database, so what the Navigator is told about is decided in one place and can
be tested without templates.

Both go to the Navigator alone, encrypted: they name children where the Navigator has to act
on one, and nothing else personal (addresses were taken out when the records were built).
Every value that came from outside (the police's text, GIAS, the contacts list, mail
servers) is cleaned as the notification's text is, and the HTML is autoescaped.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from gateway.digest import (
    RETURNED,
    ChaseItem,
    ChaseList,
    ChildItem,
    ContactPhone,
    Digest,
    NotificationException,
    TelephoneTask,
)
from gateway.model import ExceptionKind, role_label
from gateway.render import (
    TEMPLATES_DIR,
    NavigatorContact,
    alternative_entity,
    clean_line,
    clean_lines,
    read_entity,
    template_environment,
    uk_date,
    uk_datetime,
)
from gateway.revision_store import GoneChild

# What each exception means to the Navigator, in a few words (the reason says the rest).
EXCEPTION_LABELS: dict[ExceptionKind, str] = {
    ExceptionKind.INVALID_ROW: "the police's row could not be read",
    ExceptionKind.NO_DOB: "no date of birth",
    ExceptionKind.ADULT: "18 or over: not a child",
    ExceptionKind.NO_MATCH: "found on no school roll",
    ExceptionKind.AMBIGUOUS: "more than one pupil could be this child",
    ExceptionKind.SCHOOL_CONFLICT: "the pupil roll and the police name different schools",
    ExceptionKind.CLOSED_ESTABLISHMENT: "the school on the roll is closed in GIAS",
    ExceptionKind.UNKNOWN_ESTABLISHMENT: "the school on the roll is not in GIAS",
    ExceptionKind.NO_CONTACT: "no DSL, deputy DSL or DA Lead on the contacts list",
    ExceptionKind.NO_KEY: "no usable key for any contact",
    ExceptionKind.KEY_EXPIRED: "the contact's key has expired",
    ExceptionKind.KEY_REVOKED: "the contact's key has been revoked",
    ExceptionKind.KEY_MISMATCH: "the key held is not the one pinned for the contact",
    ExceptionKind.SEND_FAILED: "the mail server refused it or it could not be delivered in time",
    ExceptionKind.TOLD_PURGED: (
        "a later spreadsheet names this incident, but what the school was told before is"
        " purged under the retention policy: RESEND sends this file's details, or WITHHOLD"
    ),
}


def digest_subject(digest: Digest) -> str:
    """The digest's subject inside the encryption (the outer one carries a reference only)."""
    return f"Exceptions digest, {uk_datetime(digest.now)}"


def chase_subject(chase: ChaseList) -> str:
    return f"Chase list, {uk_datetime(chase.now)}"


def render_digest(
    digest: Digest, *, navigator: NavigatorContact, templates_dir: Path = TEMPLATES_DIR
) -> EmailMessage:
    """The digest's inner entity: multipart/alternative of text and HTML (templates/digest/
    digest.txt and digest.html), the subject a protected header inside.

    Raises jinja2.UndefinedError when a template uses a value that is not given.
    """
    subject = digest_subject(digest)
    context = {"subject": subject, "navigator": _navigator(navigator), **_digest_context(digest)}
    return _rendered("digest/digest", subject, context, templates_dir)


def render_chase_list(
    chase: ChaseList, *, navigator: NavigatorContact, templates_dir: Path = TEMPLATES_DIR
) -> EmailMessage:
    """The chase list's inner entity, as `render_digest` makes the digest's (templates/
    digest/chase.txt and chase.html)."""
    subject = chase_subject(chase)
    context = {
        "subject": subject,
        "navigator": _navigator(navigator),
        "as_at": uk_datetime(chase.now),
        "items": [_chase_item(item) for item in chase.items],
    }
    return _rendered("digest/chase", subject, context, templates_dir)


def _rendered(
    name: str, subject: str, context: dict[str, Any], templates_dir: Path
) -> EmailMessage:
    environment = template_environment(templates_dir)
    text = environment.get_template(f"{name}.txt").render(context)
    html = environment.get_template(f"{name}.html").render(context)
    return read_entity(alternative_entity(subject, text, html))


def _navigator(navigator: NavigatorContact) -> dict[str, str]:
    return {"name": clean_line(navigator.name)}


def _digest_context(digest: Digest) -> dict[str, Any]:
    return {
        "as_at": uk_datetime(digest.now),
        "since": uk_datetime(digest.since) if digest.since is not None else None,
        "is_empty": digest.is_empty,
        "awaiting_approval": [
            {
                "reference": clean_line(w.reference),
                "batch": f"B{w.intake_id}",
                "school": _school(w.school, w.urn),
                "incident_ref": clean_line(w.incident_ref),
                "due": uk_datetime(w.due),
                "escalated": uk_datetime(w.escalated_at) if w.escalated_at else None,
            }
            for w in digest.awaiting_approval
        ],
        "approval_batches": sorted({f"B{w.intake_id}" for w in digest.awaiting_approval}),
        "approve_by": digest.approve_by,
        "child_exceptions": [_child(item) for item in digest.child_exceptions],
        "notification_exceptions": [
            _notification_exception(item) for item in digest.notification_exceptions
        ],
        "telephone_tasks": [_telephone(task, digest.now) for task in digest.telephone_tasks],
        "withheld": [_child(item) for item in digest.withheld],
        "manager_alerts": [_child(item) for item in digest.manager_alerts],
        "passed_over": [
            {
                "school": _school(p.school, p.urn),
                "role": _role(p.contact_role),
                "why": EXCEPTION_LABELS[p.kind] if p.kind else "its key could not be used",
                "reference": clean_line(p.reference),
                "at": uk_datetime(p.at),
            }
            for p in digest.passed_over
        ],
        "returned": [
            {
                "what": RETURNED[r.kind],
                "reference": clean_line(r.reference) or "no reference",
                "school": clean_line(r.school),
                "summary": clean_line(r.summary),
                "at": uk_datetime(r.at),
            }
            for r in digest.returned
        ],
        "undelivered": [
            {
                "kind": clean_line(u.kind),
                "reference": clean_line(u.reference),
                "role": _role(u.contact_role),
                "error": clean_line(u.error),
                "at": uk_datetime(u.at),
            }
            for u in digest.undelivered
        ],
        "quarantined": [
            {
                "at": uk_datetime(q.recorded_at),
                "mailbox": clean_line(q.mailbox),
                "reason": clean_line(q.reason),
            }
            for q in digest.quarantined
        ],
        "key_warnings": [
            {
                "school": _school(k.school, k.warning.urn),
                "role": _role(k.warning.contact_role),
                "name": clean_line(k.contact_name),
                "fingerprint": clean_line(k.warning.fingerprint),
                "stage": k.warning.described,
                "until": uk_datetime(k.warning.usable_until) if k.warning.usable_until else None,
            }
            for k in digest.key_warnings
        ],
        "stale_contacts": [
            {
                "school": _school(c.school, c.urn),
                "role": _role(c.contact_role),
                "name": clean_line(c.name),
                "confirmed": uk_date(c.confirmed) if c.confirmed is not None else None,
            }
            for c in digest.stale_contacts
        ],
        "counts": digest.counts,
        "gone": [_gone(item) for item in digest.gone],
    }


def _gone(item: GoneChild) -> dict[str, Any]:
    return {
        "child": clean_line(item.child) or "name not given",
        "dob": uk_date(item.dob) if item.dob is not None else "not given",
        "incident_ref": clean_line(item.incident_ref),
        "incident_gone": item.incident_gone,
        "moved": item.moved,
        "school": _school(item.school, item.urn) if item.urn is not None else "",
        "reference": clean_line(item.reference) if item.reference else None,
        "item": item.item,
        "file": clean_line(item.file_name),
        "revised_file": clean_line(item.revised_file_name),
        "at": uk_datetime(item.recorded_at),
    }


def _child(item: ChildItem) -> dict[str, Any]:
    return {
        "code": f"C{item.decision_id}",
        "child": clean_line(item.child) or "name not given",
        "dob": uk_date(item.dob) if item.dob is not None else "not given",
        "incident_ref": clean_line(item.incident_ref) or "not given",
        "what": EXCEPTION_LABELS[item.kind] if item.kind else None,
        "reason": clean_lines(item.reason),
        "school": _school(item.school, item.urn) if item.urn is not None else "",
        "due": uk_datetime(item.due) if item.due is not None else None,
        "source": clean_line(item.source),
        "received": uk_datetime(item.recorded_at),
        "candidates": [
            {
                "school": _school(c.school, c.urn),
                "upn": clean_line(c.upn),
                "score": f"{c.score:.1f}",
                "agreed": ", ".join(clean_line(field) for field in c.agreed) or "nothing",
                "note": clean_line(c.note),
            }
            for c in item.candidates
        ],
    }


def _telephone(task: TelephoneTask, now: datetime) -> dict[str, Any]:
    due = task.item.due
    return {
        **_child(task.item),
        "number": clean_line(task.number),
        "overdue": due is not None and due <= now,
        "contacts": [_contact(contact) for contact in task.contacts],
    }


def _notification_exception(item: NotificationException) -> dict[str, Any]:
    return {
        "reference": clean_line(item.reference),
        "incident_ref": clean_line(item.incident_ref),
        "school": _school(item.school, item.urn),
        "children": [clean_line(child) or "name not given" for child in item.children],
        "due": uk_datetime(item.due),
        "what": EXCEPTION_LABELS[item.kind] if item.kind else "not sent",
        "reason": clean_lines(item.reason),
        "at": uk_datetime(item.at),
    }


def _chase_item(item: ChaseItem) -> dict[str, Any]:
    return {
        "reference": clean_line(item.reference),
        "school": _school(item.school, item.urn),
        "school_telephone": clean_line(item.school_telephone),
        "sent_at": uk_datetime(item.sent_at),
        "contacts": [_contact(contact) for contact in item.contacts],
        "heard": list(item.heard),
    }


def _contact(contact: ContactPhone) -> dict[str, str]:
    return {
        "role": _role(contact.role),
        "name": clean_line(contact.name),
        "phone": clean_line(contact.phone),
    }


def _school(name: str, urn: int | None) -> str:
    shown = clean_line(name) or "school not named"
    return f"{shown} (URN {urn})" if urn is not None else shown


def _role(role: str) -> str:
    return clean_line(role_label(role))

"""Read receipts: RFC 8098 message disposition notifications, and the free-text receipts
some clients send instead.

Only what a receipt says is taken from it: "displayed" is read; "deleted" is deleted without
being read, and never counts as read; anything else (dispatched, processed, denied, failed)
is noted, never read. A missing receipt says nothing at all, so nothing here ever infers
"unread" from silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from gateway.replies import (
    body_text,
    header_text,
    header_values,
    leaves,
    our_message_ids,
    reference_codes,
    report_blocks,
    returned_headers,
)


class Disposition(StrEnum):
    DISPLAYED = "displayed"
    DELETED = "deleted"
    OTHER = "other"  # dispatched, processed, denied, failed, or a value we do not know


@dataclass(frozen=True)
class Receipt:
    disposition: Disposition
    disposition_type: str  # as the receipt words it: "displayed", "dispatched", …
    message_ids: tuple[str, ...]  # the gateway's Message-IDs the receipt is about
    references: tuple[str, ...]  # reference codes in its subject or the returned headers
    free_text: bool  # a "Read: …" message, not an RFC 8098 report


# Subject prefixes of the receipts Outlook, Exchange and webmail write as plain messages,
# in the languages of the clients seen in schools.
_READ_SUBJECT = re.compile(
    r"^\s*(read|read receipt|read-receipt|gelesen|lu|le[ií]do|letto|gelezen|l[äa]st)\s*:",
    re.IGNORECASE,
)
_NOT_READ_SUBJECT = re.compile(
    r"^\s*(not read|nicht gelesen|non lu|no le[ií]do|non letto|niet gelezen|ej l[äa]st)\s*:",
    re.IGNORECASE,
)
_READ_PHRASE = re.compile(r"\b(was|has\s+been|were|have\s+been)\s+(read|displayed)\b", re.I)
_DELETED_PHRASE = re.compile(r"\bdeleted\s+without\s+being\s+read\b", re.I)
# Both the subject and the body must say it: a person's reply titled "Read: …" must still
# reach the Navigator as a reply.
_FREE_TEXT_CHARS = 4000


def read_receipt(message: Message, *, own_domain: str) -> Receipt | None:
    """The receipt `message` is, or None when it is not one."""
    report = _report_part(message)
    if report is not None:
        return _rfc8098(message, report, own_domain)
    return _free_text(message, own_domain)


def _report_part(message: Message) -> Message | None:
    # Some clients send the report part with report-type missing or misspelt, so the part
    # decides, not the parameter.
    if not message.is_multipart():
        return None
    for part in leaves(message):
        if part.get_content_type() == "message/disposition-notification":
            return part
    return None


def _rfc8098(message: Message, report: Message, own_domain: str) -> Receipt:
    blocks = report_blocks(report)
    fields = blocks[0] if blocks else {}
    disposition_type = _disposition_type(fields.get("disposition", ""))
    returned = returned_headers(message)
    # Original-Message-ID is optional (RFC 8098 §3.2.5) and Outlook leaves it out at times;
    # the returned headers and the threading headers then say which message it was.
    message_ids = (
        our_message_ids([fields.get("original-message-id", "")], own_domain)
        or our_message_ids(header_values(returned, "Message-ID"), own_domain)
        or _threading_ids(message, own_domain)
    )
    references = reference_codes(
        header_text(message, "Subject") + "\n" + header_text(returned, "Subject")
    )
    return Receipt(
        disposition=_disposition(disposition_type),
        disposition_type=disposition_type or "missing",
        message_ids=message_ids,
        references=references,
        free_text=False,
    )


def _free_text(message: Message, own_domain: str) -> Receipt | None:
    if message.get_content_maintype() not in ("text", "multipart"):
        return None
    subject = header_text(message, "Subject")
    if _NOT_READ_SUBJECT.match(subject):
        phrase, disposition = _DELETED_PHRASE, Disposition.DELETED
    elif _READ_SUBJECT.match(subject):
        phrase, disposition = _READ_PHRASE, Disposition.DISPLAYED
    else:
        return None
    if not phrase.search(body_text(message, _FREE_TEXT_CHARS)):
        return None
    return Receipt(
        disposition=disposition,
        disposition_type=disposition.value,
        message_ids=_threading_ids(message, own_domain),
        references=reference_codes(subject),
        free_text=True,
    )


def _threading_ids(message: Message, own_domain: str) -> tuple[str, ...]:
    values = header_values(message, "In-Reply-To") + header_values(message, "References")
    return our_message_ids(values, own_domain)


def _disposition_type(value: str) -> str:
    # RFC 8098 §3.2.6: "action-mode/sending-mode; disposition-type", an older form appends
    # "/modifier"; a few clients write only the type.
    value = re.sub(r"\([^)]*\)", " ", value)  # comments
    kind = value.split(";", 1)[1] if ";" in value else value
    # A keyword, so it can go into the summary: nothing else the sender wrote does.
    return re.sub(r"[^a-z-]", "", kind.split("/", 1)[0].lower())[:30]


def _disposition(disposition_type: str) -> Disposition:
    if disposition_type == "displayed":
        return Disposition.DISPLAYED
    if disposition_type == "deleted":
        return Disposition.DELETED
    return Disposition.OTHER

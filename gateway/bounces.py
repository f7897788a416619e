"""Bounces: RFC 3464 delivery status notifications first, flufl.bounce's detectors second.

The gateway sends each message from its own return path (`outbox.return_path_for`), so a
bounce names its message by the address it is delivered to, not by anything guessed from
its text. The report itself says what happened: `Action: failed` (or a 5.x.x status) is a
permanent failure, `delayed` (or 4.x.x) a warning, `delivered`/`relayed` a success notice.
Non-standard bounces are left to flufl.bounce's detectors, one per dialect, which know the
Exim, qmail, old Exchange and webmail formats; a bounce neither can read goes to the
Navigator as it is.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr
from enum import StrEnum

from flufl.bounce import all_failures

from gateway.replies import (
    body_text,
    clean,
    header_text,
    header_values,
    leaves,
    our_message_ids,
    reference_codes,
    report_blocks,
    return_path_tokens,
    returned_headers,
)

# flufl.bounce logs every detector it tries at INFO, and the traceback of one that fails,
# which can quote the bounce (addresses) into the service's logs (DESIGN.md invariant 8).
# A detector's failure is reported by the classification instead.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


class Severity(StrEnum):
    FAILED = "failed"  # permanent: the message will not be delivered
    DELAYED = "delayed"  # temporary: the sending server is still trying
    DELIVERED = "delivered"  # a success notice (delivered, relayed, expanded)


@dataclass(frozen=True)
class Bounce:
    severity: Severity
    method: str  # "DSN" or "flufl.bounce heuristics"
    final_recipient: str | None
    status: str | None  # RFC 3463 enhanced status code, e.g. "5.1.1"
    diagnostic: str  # the remote server's words (may quote the address: not for logs)
    message_ids: tuple[str, ...]  # the gateway's Message-IDs of the returned original
    references: tuple[str, ...]  # reference codes in the subject or the returned original
    tokens: tuple[str, ...]  # return-path tokens in the returned original's Return-Path


_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SEVERITY_ORDER = (Severity.FAILED, Severity.DELAYED, Severity.DELIVERED)
_BOUNCE_SENDERS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "maildaemon", "postmaster", "mdaemon"}
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|delivery (status notification|failure|failed|has"
    r" failed|problem|delayed|notification)|failure notice|mail delivery failed|could not be"
    r" delivered|non-?delivery|nondeliverable|delayed mail|warning: could not send",
    re.IGNORECASE,
)
_BOUNCE_SENDER_NAME = re.compile(r"mail delivery (system|subsystem)", re.IGNORECASE)
# Lines quoting the original's Message-ID or Subject in a bounce's text. Only blanks and
# quote marks may lead: a class with newlines in it would rescan every blank line from each
# one before it (quadratic on hostile text).
_QUOTED_MESSAGE_ID = re.compile(r"(?im)^[ \t>]*message-id:[ \t]*(<[^<>\s]+>)")
_QUOTED_SUBJECT = re.compile(r"(?im)^[ \t>]*subject:[^\n]*")
_DIAGNOSTIC_CHARS = 500


def read_dsn(message: Message, *, own_domain: str, bounce_local_part: str) -> Bounce | None:
    """The RFC 3464 report `message` carries, or None when it has none with a usable
    per-recipient block."""
    report = next(
        (part for part in leaves(message) if part.get_content_type() == "message/delivery-status"),
        None,
    )
    if report is None:
        return None
    blocks = report_blocks(report)
    judged = [
        (severity, block) for block in blocks if (severity := _block_severity(block)) is not None
    ]
    if not judged:
        return None
    # One recipient per message is what the gateway sends; should a report cover several,
    # the worst outcome is the one to act on.
    severity = min((severity for severity, _ in judged), key=_SEVERITY_ORDER.index)
    block = next(block for judged_severity, block in judged if judged_severity is severity)
    status = _STATUS.search(block.get("status", ""))
    original = _original(message, own_domain=own_domain, bounce_local_part=bounce_local_part)
    # Gmail names the original in the per-message block as well.
    reported = our_message_ids([blocks[0].get("x-original-message-id", "")], own_domain)
    return Bounce(
        severity=severity,
        method="DSN",
        final_recipient=_recipient(
            block.get("final-recipient")
            or block.get("original-recipient")
            or block.get("x-actual-recipient")
        ),
        status=status.group(0) if status else None,
        diagnostic=_diagnostic(block.get("diagnostic-code", "")),
        message_ids=tuple(dict.fromkeys(original.message_ids + reported)),
        references=original.references,
        tokens=original.tokens,
    )


def looks_like_bounce(message: Message) -> bool:
    """Whether `message` presents itself as a delivery report: a mailer-daemon or
    postmaster sender, Exim's X-Failed-Recipients, or a bounce subject."""
    if header_values(message, "X-Failed-Recipients"):
        return True
    name, address = parseaddr(header_text(message, "From"))
    if address.rpartition("@")[0].lower() in _BOUNCE_SENDERS or _BOUNCE_SENDER_NAME.search(name):
        return True
    return bool(_BOUNCE_SUBJECT.search(header_text(message, "Subject")))


def null_return_path(message: Message) -> bool:
    """Whether `message` came from the null return path: bounces do (RFC 5321 §4.5.5), and so
    should automatic replies (RFC 3834 §4), so it does not tell the two apart."""
    first = header_values(message, "Return-Path")[:1]
    return bool(first) and first[0].replace(" ", "") == "<>"


def read_heuristic(message: Message, *, own_domain: str, bounce_local_part: str) -> Bounce | None:
    """What flufl.bounce's detectors find in a non-standard bounce, or None."""
    try:
        temporary, permanent = all_failures(message)
    # Heuristics over hostile text: whatever a third-party detector trips on means only
    # that it found nothing, and the message goes to the Navigator unread.
    except Exception:
        return None
    if not (temporary or permanent):
        return None
    severity = Severity.FAILED if permanent else Severity.DELAYED
    addresses = sorted(permanent or temporary)
    text = body_text(message)
    wanted = "5" if severity is Severity.FAILED else "4"
    status = next(
        (match.group(0) for match in _STATUS.finditer(text) if match.group(1) == wanted), None
    )
    original = _original(message, own_domain=own_domain, bounce_local_part=bounce_local_part)
    quoted_ids = our_message_ids(_QUOTED_MESSAGE_ID.findall(text), own_domain)
    quoted_refs = reference_codes("\n".join(_QUOTED_SUBJECT.findall(text)))
    return Bounce(
        severity=severity,
        method="flufl.bounce heuristics",
        final_recipient=_recipient(addresses[0].decode("ascii", errors="replace")),
        status=status,
        diagnostic="",
        message_ids=tuple(dict.fromkeys(original.message_ids + quoted_ids)),
        references=tuple(dict.fromkeys(original.references + quoted_refs)),
        tokens=original.tokens,
    )


def _block_severity(block: dict[str, str]) -> Severity | None:
    action = block.get("action", "").strip().lower()
    # opensmtpd writes the non-standard "error"; some MTAs add a comment after the action.
    if action.startswith(("failed", "error")):
        return Severity.FAILED
    if action.startswith("delayed"):
        return Severity.DELAYED
    if action.startswith(("delivered", "relayed", "expanded")):
        return Severity.DELIVERED
    status = _STATUS.search(block.get("status", ""))
    if status is None:
        return None
    return {"5": Severity.FAILED, "4": Severity.DELAYED, "2": Severity.DELIVERED}[status.group(1)]


def _recipient(value: str | None) -> str | None:
    # RFC 3464 §2.3.2: "address-type ; generic-address", e.g. "rfc822; dsl@school.example".
    if not value:
        return None
    address = value.split(";", 1)[1] if ";" in value else value
    address = clean(address.strip().strip("<>").strip())
    return address[:320] or None


def _diagnostic(value: str) -> str:
    # "diagnostic-type ; diagnostic", e.g. "smtp; 550 5.1.1 User unknown"
    text = value.split(";", 1)[1] if ";" in value else value
    return clean(text.strip())[:_DIAGNOSTIC_CHARS]


@dataclass(frozen=True)
class _Original:
    message_ids: tuple[str, ...]
    references: tuple[str, ...]
    tokens: tuple[str, ...]


def _original(message: Message, *, own_domain: str, bounce_local_part: str) -> _Original:
    """What the returned original and the bounce's subject say about which message failed."""
    returned = returned_headers(message)
    return _Original(
        message_ids=our_message_ids(header_values(returned, "Message-ID"), own_domain),
        references=reference_codes(
            header_text(message, "Subject") + "\n" + header_text(returned, "Subject")
        ),
        tokens=return_path_tokens(
            header_values(returned, "Return-Path"),
            own_domain=own_domain,
            bounce_local_part=bounce_local_part,
        ),
    )

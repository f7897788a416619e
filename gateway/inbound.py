"""Classifying the mail that arrives in the Navigator's mailbox: bytes in, a typed verdict out.

Pure: no database, no IMAP. The service looks up what the verdict names (our Message-IDs,
the return-path token, the reference code) and records it. The order of the checks is the
order of how sure each kind of evidence is:

1. our own automatic mail (the loop header): never answered, never tracked;
2. read receipts (RFC 8098 reports; then the free-text "Read: …" receipts);
3. bounces (RFC 3464 reports; then flufl.bounce's detectors for the non-standard ones);
4. automatic replies (RFC 3834 and the Exchange forms), told apart from a person's reply;
5. replies (In-Reply-To / References naming one of our Message-IDs; then the reference code
   in the subject);
6. everything else is UNMATCHED, and goes to the Navigator.

A verdict other than UNMATCHED and OWN_LOOP always names at least one of our messages: a
receipt, bounce or automatic reply about mail the gateway did not send (the Navigator's own)
is UNMATCHED. Malformed or hostile MIME never raises out of `classify` (DESIGN.md invariant
6): it is UNMATCHED with a summary saying so. Summaries carry kinds, codes and references,
never an address, a name or a subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from gateway.autoreply import auto_signals
from gateway.bounces import (
    Bounce,
    Severity,
    looks_like_bounce,
    null_return_path,
    read_dsn,
    read_heuristic,
)
from gateway.mdn import Disposition, Receipt, read_receipt
from gateway.replies import Encryption, Links, encryption_of, header_values, links_of, parse

# The start of the summary of a message that tripped the classification itself.
UNREADABLE = "the message could not be read"
# flufl.bounce's detectors read every line once per dialect: up to ten seconds a megabyte of
# short lines. A bounce returning one of our notifications is a few tens of kilobytes; they
# do not read a larger message, and a bounce left unread goes to the Navigator.
HEURISTICS_LIMIT = 128 * 1024


class Kind(StrEnum):
    READ_RECEIPT = "read_receipt"  # displayed: the notification was read
    DELETED_UNREAD = "deleted_unread"  # deleted without being read: never counts as read
    RECEIPT_OTHER = "receipt_other"  # dispatched, processed, denied, failed: noted, not read
    BOUNCE_PERMANENT = "bounce_permanent"  # will not be delivered
    BOUNCE_DELAYED = "bounce_delayed"  # still being retried by a server on the way
    DELIVERED = "delivered"  # a success notice (delivered, relayed): nothing to do
    OUT_OF_OFFICE = "out_of_office"  # an automatic reply: nobody has acted on it
    REPLY = "reply"  # a person's reply
    OWN_LOOP = "own_loop"  # the gateway's own automatic mail come back
    UNMATCHED = "unmatched"  # for the Navigator


@dataclass(frozen=True)
class Classified:
    """What an inbound message is, and which of the gateway's messages it is about.

    `message_ids` are our Message-IDs as the outbox stores them; `token` the return-path
    token (`outbox.find_by_return_path` finds the message from `return_path_for`'s address,
    `token_from_return_path` reads it back); `references` the reference codes found, distinct,
    in order. `final_recipient` and `diagnostic` come from a bounce and may hold an address:
    they are for the state database, not for logs. `summary` is for logs and the Navigator.
    """

    kind: Kind
    summary: str
    message_ids: tuple[str, ...] = ()
    token: str | None = None
    references: tuple[str, ...] = ()
    final_recipient: str | None = None
    status: str | None = None  # RFC 3463 enhanced status code of a bounce, e.g. "5.1.1"
    diagnostic: str = ""
    encryption: Encryption = Encryption.NONE  # of a REPLY or UNMATCHED message's body
    # Nothing may answer it automatically (RFC 3834 §2): automatic mail, receipts, bounces,
    # our own mail, and mail that could not be read.
    automatic: bool = False

    @property
    def reference(self) -> str | None:
        """The reference code when exactly one was found; None when none or several."""
        return self.references[0] if len(self.references) == 1 else None


def classify(
    raw: bytes, *, own_domain: str, bounce_local_part: str, loop_header: str = "X-Encompass-Loop"
) -> Classified:
    """Classify one inbound message (the whole RFC 5322 message, as fetched)."""
    try:
        return _classify(
            parse(raw),
            size=len(raw),
            own_domain=own_domain,
            bounce_local_part=bounce_local_part,
            loop_header=loop_header,
        )
    # The email package's parser recurses once per nesting level: a thousand nested
    # multiparts exhaust the stack, and only hostile mail is built like that.
    except RecursionError:
        return Classified(
            Kind.UNMATCHED,
            "MIME parts nested too deeply to read; passed on as it is",
            automatic=True,
        )
    # Whatever else arrives, the service must keep running (DESIGN.md invariant 6): a message
    # that trips the email package or a detector goes to the Navigator as it is. The corpus
    # and property tests check that no input they make ever gets here.
    except Exception as error:
        return Classified(
            Kind.UNMATCHED,
            f"{UNREADABLE} ({type(error).__name__}); passed on as it is",
            automatic=True,
        )


def _classify(
    message: Message, *, size: int, own_domain: str, bounce_local_part: str, loop_header: str
) -> Classified:
    if header_values(message, loop_header):
        return Classified(
            Kind.OWN_LOOP,
            f"the gateway's own automatic mail ({loop_header}): never answered",
            automatic=True,
        )
    links = links_of(message, own_domain=own_domain, bounce_local_part=bounce_local_part)
    signals = auto_signals(message)

    receipt = read_receipt(message, own_domain=own_domain)
    if receipt is not None:
        return _receipt(receipt, links)

    bounce = read_dsn(message, own_domain=own_domain, bounce_local_part=bounce_local_part)
    bounce_like = looks_like_bounce(message)
    if (
        bounce is None
        and size <= HEURISTICS_LIMIT
        and (bounce_like or links.tokens or null_return_path(message))
    ):
        bounce = read_heuristic(message, own_domain=own_domain, bounce_local_part=bounce_local_part)
    if bounce is not None:
        return _bounce(bounce, links)

    if signals.out_of_office is not None:
        return _auto_reply(signals.out_of_office, links)
    if bounce_like:
        return _unmatched(
            message,
            links,
            "looks like a delivery report that neither RFC 3464 nor the heuristics could read",
            automatic=True,
        )
    if signals.auto_replied:
        return _auto_reply("Auto-Submitted: auto-replied (RFC 3834)", links)
    if signals.automatic is not None and _linked(links):
        return _auto_reply(signals.automatic, links)

    encryption = encryption_of(message)
    if links.message_ids or links.references:
        how = "" if encryption is Encryption.NONE else f", encrypted ({encryption.value})"
        return Classified(
            Kind.REPLY,
            f"reply{how}: {_linkage(links.message_ids, _token(links.tokens), links.references)}",
            message_ids=links.message_ids,
            token=_token(links.tokens),
            references=links.references,
            encryption=encryption,
        )
    reason = (
        f"automatic mail ({signals.automatic}) naming none of the gateway's messages"
        if signals.automatic is not None
        else "names none of the gateway's messages by Message-ID or reference code"
    )
    return _unmatched(message, links, reason, automatic=signals.any, encryption=encryption)


def _receipt(receipt: Receipt, links: Links) -> Classified:
    token = _token(links.tokens)
    form = "free text" if receipt.free_text else "RFC 8098"
    if not (receipt.message_ids or receipt.references or token):
        return Classified(
            Kind.UNMATCHED,
            f"a receipt ({form}) for a message that is not the gateway's",
            automatic=True,
        )
    linkage = _linkage(receipt.message_ids, token, receipt.references)
    if receipt.disposition is Disposition.DISPLAYED:
        kind, what = Kind.READ_RECEIPT, f"read receipt ({form}, displayed)"
    elif receipt.disposition is Disposition.DELETED:
        kind, what = Kind.DELETED_UNREAD, f"deleted without being read ({form})"
    else:
        kind, what = (
            Kind.RECEIPT_OTHER,
            f"disposition '{receipt.disposition_type}' ({form}), not a read",
        )
    return Classified(
        kind,
        f"{what}: {linkage}",
        message_ids=receipt.message_ids,
        token=token,
        references=receipt.references,
        automatic=True,
    )


def _bounce(bounce: Bounce, links: Links) -> Classified:
    tokens = tuple(dict.fromkeys(links.tokens + bounce.tokens))
    token = _token(tokens)
    status = f" {bounce.status}" if bounce.status else ""
    if not (bounce.message_ids or bounce.references or token):
        return Classified(
            Kind.UNMATCHED,
            f"a delivery report ({bounce.method}) about a message that is not the gateway's",
            automatic=True,
        )
    kind, what = {
        Severity.FAILED: (Kind.BOUNCE_PERMANENT, "permanent delivery failure"),
        Severity.DELAYED: (Kind.BOUNCE_DELAYED, "delivery delayed, still being retried"),
        Severity.DELIVERED: (Kind.DELIVERED, "delivery notice"),
    }[bounce.severity]
    conflict = "; the return paths conflict" if len(tokens) > 1 else ""
    return Classified(
        kind,
        f"{what}{status} ({bounce.method}): "
        f"{_linkage(bounce.message_ids, token, bounce.references)}{conflict}",
        message_ids=bounce.message_ids,
        token=token,
        references=bounce.references,
        final_recipient=bounce.final_recipient,
        status=bounce.status,
        diagnostic=bounce.diagnostic,
        automatic=True,
    )


def _auto_reply(evidence: str, links: Links) -> Classified:
    token = _token(links.tokens)
    if not _linked(links):
        return Classified(
            Kind.UNMATCHED,
            f"an automatic reply ({evidence}) naming none of the gateway's messages",
            automatic=True,
        )
    return Classified(
        Kind.OUT_OF_OFFICE,
        f"automatic reply ({evidence}): {_linkage(links.message_ids, token, links.references)}",
        message_ids=links.message_ids,
        token=token,
        references=links.references,
        automatic=True,
    )


def _unmatched(
    message: Message,
    links: Links,
    reason: str,
    *,
    automatic: bool,
    encryption: Encryption = Encryption.NONE,
) -> Classified:
    defects = _defects(message)
    malformed = f"; malformed MIME ({', '.join(defects)})" if defects else ""
    token = _token(links.tokens)
    linkage = f"; {_linkage(links.message_ids, token, links.references)}" if _linked(links) else ""
    return Classified(
        Kind.UNMATCHED,
        f"{reason}{linkage}{malformed}",
        message_ids=links.message_ids,
        token=token,
        references=links.references,
        encryption=encryption,
        automatic=automatic,
    )


def _linked(links: Links) -> bool:
    return bool(links.message_ids or links.references or _token(links.tokens))


def _token(tokens: tuple[str, ...]) -> str | None:
    # Two different return paths on one message cannot both be right: name neither.
    return tokens[0] if len(tokens) == 1 else None


def _linkage(message_ids: tuple[str, ...], token: str | None, references: tuple[str, ...]) -> str:
    ways = [
        *(["Message-ID"] if message_ids else []),
        *(["return path"] if token else []),
        *([f"reference {' '.join(references)}"] if references else []),
    ]
    return "matched by " + ", ".join(ways)


def _defects(message: Message) -> list[str]:
    """The names of the parser's complaints about `message` and its parts, distinct."""
    found: dict[str, None] = {}
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack and len(found) < 10:
        part, depth = stack.pop()
        found.update((type(defect).__name__, None) for defect in part.defects)
        payload = part.get_payload()
        if isinstance(payload, list) and depth < 32:
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return sorted(found)

"""Out-of-office and other automatic replies, told apart from a person's reply.

Marks only automatic replies carry: the subject forms of Exchange and the common
responders ("Automatic reply: …", localised; Sieve's "Auto: …"), `X-Autoreply`, and
`Precedence: auto_reply`. RFC 3834's `Auto-Submitted: auto-replied` is carried by automatic
replies and by many bounces alike, so the classification asks about bounces first. Weaker
marks (`Auto-Submitted: auto-generated`, which Exchange puts on its out-of-office replies,
`X-Auto-Response-Suppress`, `Precedence: bulk`) say only that no person wrote the message:
about one of our notifications, such a message is taken as an automatic reply too, because
it tells us no person has acted on the notification. A wrong guess costs one more copy to
the deputy; the other mistake leaves a DSL away and nobody told.

No automatic message, whatever it is, is ever to be answered (RFC 3834 §2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from gateway.replies import header_text, header_values

# Exchange, Outlook, Gmail, Apple Mail and common responders, in the languages seen in
# schools' mail; matched at the start of the subject.
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:(?:automatic reply|auto[- ]?reply|auto[- ]?response|out of (?:the )?office"
    r"(?: reply| autoreply)?|ooo|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique"
    r"|absence|respuesta autom[aá]tica|risposta automatica|automatisch antwoord|autosvar"
    r"|odpowied[zź] automatyczna|automatick[aá] odpov[eě][dď]|automaattinen vastaus)"
    r"\s*[:(\[-]"
    # RFC 5230 §4.5: Sieve vacation's default subject is "Auto: " and the original's.
    r"|auto\s*:)",
    re.IGNORECASE,
)
_RESPONDER_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autoresponse")


@dataclass(frozen=True)
class AutoSignals:
    """The marks of automatic mail on a message; each names the header or subject form seen,
    never its content."""

    out_of_office: str | None  # a mark only automatic replies carry
    auto_replied: bool  # RFC 3834 auto-replied: automatic replies, and many bounces too
    automatic: str | None  # a mark that says only that no person wrote it

    @property
    def any(self) -> bool:
        return self.out_of_office is not None or self.auto_replied or self.automatic is not None


def auto_signals(message: Message) -> AutoSignals:
    """The marks of automatic mail on `message`'s own headers."""
    # RFC 3834 §5: a keyword, then optional parameters and comments.
    keyword = re.match(r"\s*([A-Za-z-]*)", header_text(message, "Auto-Submitted"))
    auto_submitted = keyword.group(1).lower() if keyword else ""
    precedence = header_text(message, "Precedence").strip().lower()
    return AutoSignals(
        out_of_office=_out_of_office(message, precedence),
        auto_replied=auto_submitted == "auto-replied",
        automatic=_automatic(message, auto_submitted, precedence),
    )


def _out_of_office(message: Message, precedence: str) -> str | None:
    for name in _RESPONDER_HEADERS:
        values = [value.strip().lower() for value in header_values(message, name)]
        if values and values[0] not in ("no", "false", "0"):
            return name
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    if _AUTO_REPLY_SUBJECT.match(header_text(message, "Subject")):
        return "an automatic-reply subject"
    return None


def _automatic(message: Message, auto_submitted: str, precedence: str) -> str | None:
    if auto_submitted not in ("", "no", "auto-replied"):
        # Only the keyword goes into the summary: it is chosen by the sender.
        return "Auto-Submitted: " + (re.sub(r"[^a-z-]", "", auto_submitted)[:30] or "?")
    if header_values(message, "X-Auto-Response-Suppress"):
        return "X-Auto-Response-Suppress"
    if precedence in ("bulk", "junk", "list"):
        return f"Precedence: {precedence}"
    return None

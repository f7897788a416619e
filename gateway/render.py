"""A notification as the DSL reads it: the text and HTML parts, from the jinja2 templates in
templates/notification/ (`full.txt`, `full.html`, `minimal.txt`, `minimal.html`).

What is rendered here is the INNER entity that the OpenPGP sealing encrypts; nothing of it
appears outside the encryption except the subject, which carries the reference code alone.

Every value the police wrote is untrusted text. It reaches the templates only after
`_clean` (control and bidirectional-override characters removed, line breaks normalised),
the HTML templates escape it (autoescaping is on for everything but `.txt`), and it is
never template source. The environment is sandboxed and loads only from its own folder, and
an undefined variable is an error, never an empty space in a notification.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gateway.clock import LONDON
from gateway.model import ChildRecord, Notification, NotificationKind

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
NOTIFICATION_TEMPLATES = ("full", "minimal")  # the values of rules/routing.toml `template`

_NOT_RECORDED = "not recorded"
_NOT_GIVEN = "not given"

# Line and paragraph separators that some systems write for a new line.
_LINE_BREAKS = re.compile(r"\r\n|[\r\x85\u2028\u2029]")
# Bidirectional embeddings, overrides, isolates and marks: in a name or a reference they
# can make the text shown differ from the text written (Trojan Source, CVE-2021-42574).
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# What `_clean` drops: those, and every control character (Unicode's Cc, a set its stability
# policy fixes for good: U+0000-U+001F and U+007F-U+009F) but the line feed.
_HIDDEN = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")

# Both parts are quoted-printable, where "=" is always followed by two hex digits or a line
# end: no encoded line can hold "=_", so a boundary holding it can never occur in a part
# (RFC 2045 §6.7) and needs no search of the content, unlike a random one.
_BOUNDARY = "=_encompass.alternative"
# set_content wraps quoted-printable at the policy's max_line_length, 78, not RFC 2045's 76;
# kept, so the entity stays what the email package writes.
_LINE_LENGTH = 78
_SMTP = email.policy.SMTP


@dataclass(frozen=True)
class NavigatorContact:
    """Who the DSL replies to and telephones: the Navigator of the configuration."""

    name: str
    email: str
    phone: str = ""


_SUBJECT_MARKS = {
    NotificationKind.NOTIFICATION: "",
    NotificationKind.AMENDMENT: " (amended)",
    NotificationKind.WITHDRAWAL: " (withdrawn)",
}


def subject_for(reference: str, *, kind: NotificationKind = NotificationKind.NOTIFICATION) -> str:
    """The subject of a notification: its reference code and nothing about the child, the
    school or the incident (the subject travels outside the encryption). Not even the scheme's
    name: "Operation Encompass" in a shared inbox would say a pupil's home had police called.
    An amendment or a withdrawal says so, so the DSL opens it beside the one it follows."""
    return f"Secure notification {reference}{_SUBJECT_MARKS[kind]}"


def render_notification(
    notification: Notification,
    *,
    navigator: NavigatorContact,
    template: str,
    templates_dir: Path = TEMPLATES_DIR,
) -> EmailMessage:
    """The notification's inner MIME entity, as `notification_entity` writes it, read back
    as a message: multipart/alternative of text/plain and text/html (UTF-8,
    quoted-printable), with the subject as a protected header inside.

    Raises as `notification_entity` does.
    """
    entity = notification_entity(
        notification,
        navigator=navigator,
        template=template,
        templates_dir=templates_dir,
    )
    return read_entity(entity)


def read_entity(entity: bytes) -> EmailMessage:
    """An inner entity as written for sealing (CRLF), read back as a message."""
    # Read with the line ends of a message at rest (LF), as a constructed one would have.
    message = BytesParser(policy=email.policy.default).parsebytes(entity.replace(b"\r\n", b"\n"))
    assert isinstance(message, EmailMessage)  # the default policy always makes one
    return message


def notification_entity(
    notification: Notification,
    *,
    navigator: NavigatorContact,
    template: str,
    templates_dir: Path = TEMPLATES_DIR,
) -> bytes:
    """The bytes of the notification's inner MIME entity, as sealing encrypts them: 7-bit,
    CRLF line ends, multipart/alternative of text/plain and text/html (UTF-8,
    quoted-printable), with the subject as a protected header inside.

    `template` is "full" or "minimal" (rules/routing.toml). An amendment says which
    notification it amends and what changed; a follow-up naming a child added says which
    notification it follows; a withdrawal (`withdrawal.txt`, `withdrawal.html`, whatever the
    template) names what it withdraws and no detail of the incident.
    Raises ValueError for another template name, and jinja2.UndefinedError when a template
    uses a value that is not given.
    """
    if template not in NOTIFICATION_TEMPLATES:
        raise ValueError(
            f"notification template {template!r} is not one of {', '.join(NOTIFICATION_TEMPLATES)}"
        )
    if notification.kind is NotificationKind.WITHDRAWAL:
        template = "withdrawal"
    environment = template_environment(templates_dir)
    subject = subject_for(notification.reference, kind=notification.kind)
    context = _context(notification, navigator, subject)
    text = environment.get_template(f"notification/{template}.txt").render(context)
    html = environment.get_template(f"notification/{template}.html").render(context)
    return alternative_entity(subject, text, html)


def alternative_entity(subject: str, text: str, html: str) -> bytes:
    """The inner entity of `text` and `html` as alternatives, `subject` a protected header
    inside: 7-bit, CRLF line ends, both parts UTF-8 quoted-printable."""
    # Written directly, byte for byte as EmailMessage's set_content and add_alternative
    # would write it with this boundary (the tests hold the two side by side): the email
    # package's header objects and generator cost more than the templates themselves.
    # Protected headers (draft-autocrypt-lamps-protected-headers): the inner subject is what
    # a PGP-aware client shows once decrypted; here it matches the outer one.
    delimiter = f"--{_BOUNDARY}\r\n"
    return b"".join(
        (
            _SMTP.fold_binary("Subject", _SMTP.header_factory("Subject", subject)),
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/alternative; protected-headers="v1";\r\n',
            f' boundary="{_BOUNDARY}"\r\n\r\n'.encode("ascii"),
            delimiter.encode("ascii"),
            b'Content-Type: text/plain; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            _quoted_printable(text),
            f"\r\n{delimiter}".encode("ascii"),
            b'Content-Type: text/html; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n",
            # add_alternative gives the part it makes a MIME-Version of its own.
            b"MIME-Version: 1.0\r\n\r\n",
            _quoted_printable(html),
            f"\r\n--{_BOUNDARY}--\r\n".encode("ascii"),
        )
    )


def _quoted_printable(text: str) -> bytes:
    # As set_content(cte="quoted-printable") encodes, that is email.quoprimime.body_encode at
    # _LINE_LENGTH, CRLF line ends: UTF-8, lines split as bytes split them, one final line
    # end. Its per-character translation table is the slow part of it, so the escaping is
    # done by str.replace and one pattern, and only a line that needs it goes through the
    # wrapping below (the tests hold the result to the email package's, byte for byte).
    lines = text.encode("utf-8").splitlines()
    body = (b"\n".join(lines) + b"\n").decode("latin-1")
    escaped = _QP_UNSAFE.sub(lambda found: _qp_escape(found[0]), body.replace("=", "=3D"))
    encoded: list[str] = []
    for line in escaped.split("\n"):  # the last, empty, item stands for the final line end
        if len(line) <= _LINE_LENGTH and not line.endswith((" ", "\t")):
            encoded.append(line)
        else:
            encoded.extend(_qp_wrapped(line))
    return "\r\n".join(encoded).encode("ascii")


# Every byte but tab, line feed and printable ASCII (an "=" is escaped before this is used).
_QP_UNSAFE = re.compile(r"[^\t\n -~]")


def _qp_wrapped(line: str) -> list[str]:
    # body_encode's loop for one escaped line: soft breaks ("=") so that no encoded line is
    # longer than _LINE_LENGTH, never inside an "=XX", and trailing white space escaped.
    pieces = []
    start = 0
    last_start = len(line) - 1 - _LINE_LENGTH
    while start <= last_start:
        stop = start + _LINE_LENGTH - 1
        if line[stop - 2] == "=":
            pieces.append(line[start : stop - 1])
            start = stop - 2
        elif line[stop - 1] == "=":
            pieces.append(line[start:stop])
            start = stop - 1
        else:
            pieces.append(line[start:stop] + "=")
            start = stop
    if line and line[-1] in " \t":
        room = start - last_start
        if room >= 3:
            tail = _qp_escape(line[-1])
        elif room == 2:
            tail = line[-1] + "=\r\n"
        else:
            tail = "=\r\n" + _qp_escape(line[-1])
        pieces.append(line[start:-1] + tail)
    else:
        pieces.append(line[start:])
    return pieces


def _qp_escape(char: str) -> str:
    return f"={ord(char):02X}"


@lru_cache(maxsize=4)
def template_environment(directory: Path = TEMPLATES_DIR) -> jinja2.Environment:
    """The sandboxed, strict jinja2 environment over `directory` (autoescaping on for all
    but `.txt` templates)."""
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=jinja2.select_autoescape(
            disabled_extensions=("txt",), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates are read once per process, not checked per message
    )


def uk_datetime(instant: datetime) -> str:
    """'Saturday 28 February 2026, 22:15' in Europe/London."""
    local = instant.astimezone(LONDON)
    return f"{uk_date(local.date(), weekday=True)}, {local:%H:%M}"


def uk_date(day: date, *, weekday: bool = False) -> str:
    """'28 February 2026', or 'Saturday 28 February 2026' with the weekday."""
    text = f"{day.day} {day:%B %Y}"
    return f"{day:%A} {text}" if weekday else text


def _context(
    notification: Notification, navigator: NavigatorContact, subject: str
) -> dict[str, Any]:
    incident = notification.incident
    follows = clean_line(notification.follows) if notification.follows is not None else None
    kind = notification.kind
    return {
        "subject": subject,
        "reference": notification.reference,
        "amendment_of": follows if kind is NotificationKind.AMENDMENT else None,
        "further_to": follows if kind is NotificationKind.NOTIFICATION else None,
        "withdraws": follows if kind is NotificationKind.WITHDRAWAL else None,
        "changes": [clean_line(change) for change in notification.changes],
        "school_name": clean_line(notification.school_name),
        "incident": {
            "ref": clean_line(incident.ref) or _NOT_RECORDED,
            "when": _when(incident.occurred_at, incident.time_known),
            "location": clean_line(incident.location) or _NOT_RECORDED,
            "risk": incident.risk.value if incident.risk is not None else _NOT_GIVEN,
            "crime_status": (
                incident.crime_status.value if incident.crime_status is not None else _NOT_GIVEN
            ),
            "circumstances": clean_lines(incident.circumstances),
            "other_info": clean_lines(incident.other_info),
        },
        "children": [_child(child) for child in notification.children],
        "navigator": {
            "name": clean_line(navigator.name),
            "email": clean_line(navigator.email),
            "phone": clean_line(navigator.phone),
        },
    }


def _child(child: ChildRecord) -> dict[str, Any]:
    return {
        "name": clean_line(child.display_name) or _NOT_RECORDED,
        "dob": uk_date(child.dob) if child.dob is not None else _NOT_RECORDED,
        "involvement": clean_line(child.involvement) or _NOT_RECORDED,
        "relationship": clean_line(child.relationship) or _NOT_RECORDED,
        "voice": clean_lines(child.voice_of_child),
    }


def _when(occurred_at: datetime | None, time_known: bool) -> str:
    if occurred_at is None:
        return "date and time not recorded"
    if not time_known:
        return f"{uk_date(occurred_at.astimezone(LONDON).date(), weekday=True)}, time not recorded"
    return uk_datetime(occurred_at)


def _clean(text: str) -> str:
    # Police text arrives with whatever Excel or the police system put in it: keep line
    # breaks (as \n) and printable text, drop the rest so nothing can hide in a notification.
    return _HIDDEN.sub("", _LINE_BREAKS.sub("\n", text).replace("\t", " "))


def clean_line(text: str) -> str:
    """Untrusted text for one line: cleaned, every run of spaces or breaks made one space."""
    return " ".join(_clean(text).split())


def clean_lines(text: str) -> list[str]:
    """Untrusted text of several lines: cleaned, each line's spaces tidied, at most one blank
    line between paragraphs, none at either end."""
    lines: list[str] = []
    for raw in _clean(text).split("\n"):
        line = " ".join(raw.split())
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines

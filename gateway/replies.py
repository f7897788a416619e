"""Replies: what ties an inbound message to one of the gateway's, and the PGP/MIME forms an
encrypted reply arrives in.

A message is ours to follow when it names one of our Message-IDs (they all end in
`@<own domain>>`, see `outbox.message_id_for`), a notification's reference code
(`OE-XXXXX-XXXXX`, Crockford base32), or arrives at a per-message return path
(`outbox.return_path_for`). Everything here reads hostile input: it never raises on malformed
MIME, and every string it returns is plain Unicode, safe to store.

Outlook (through Exchange) often flattens an RFC 3156 `multipart/encrypted` reply into
`multipart/mixed` with the two parts as attachments ("PGPMIME version identification" and
"encrypted.asc"), or a client sends the armored block inline. `repair_outlook_pgp_mime` puts
such a message back into the RFC 3156 shape that `pgpmime.open_sealed` accepts.
"""

from __future__ import annotations

import base64
import binascii
import html
import quopri
import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from email import message_from_bytes
from email.errors import CharsetError, HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from enum import StrEnum

from gateway.outbox import token_from_return_path
from gateway.pgpmime import (
    ARMOR_BEGIN,
    ARMOR_END,
    PROTOCOL,
    OpeningError,
    encrypted_body,
    encrypted_part,
)

# notifications.reference_code: "OE-" and two groups of five Crockford symbols (no I, L, O, U),
# and for a follow-up about the same incident and school (a child added, an amendment, a
# withdrawal: gateway/amendments.py) its number, "-2", "-3"…
_REFERENCE = re.compile(
    r"(?<![0-9A-Za-z])OE-([0-9A-HJKMNP-TV-Z]{5})-([0-9A-HJKMNP-TV-Z]{5})(-[1-9][0-9]{0,3})?"
    r"(?![0-9A-Za-z])",
    re.IGNORECASE,
)
# RFC 5322 msg-id, restricted to printable ASCII so nothing odd is ever returned.
_MESSAGE_ID = re.compile(r"<([!-;=?A-~]+)@([A-Za-z0-9.-]+)>")
# The headers an MTA or delivery agent writes the envelope recipient into.
_ENVELOPE_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "X-Rcpt-To",
    "To",
    "Cc",
)
# Enough for any reply's text to be judged; a hostile 50 MB body is not read further.
TEXT_LIMIT = 64 * 1024
# Parts nested deeper than this are not looked into: deep nesting is only ever hostile, and
# walking it would exhaust the stack.
_MAX_DEPTH = 32


class Encryption(StrEnum):
    """How an inbound message carries an OpenPGP-encrypted body."""

    NONE = "none"
    PGP_MIME = "pgp_mime"  # RFC 3156 multipart/encrypted: open_sealed takes it as it is
    OUTLOOK_MANGLED = "outlook_mangled"  # flattened into multipart/mixed attachments
    ARMORED = "armored"  # an armored PGP MESSAGE inline or attached, outside RFC 3156


@dataclass(frozen=True)
class Links:
    """What in a message's own headers points at one of the gateway's messages."""

    message_ids: tuple[str, ...]  # ours, from In-Reply-To and References
    references: tuple[str, ...]  # reference codes in the subject
    tokens: tuple[str, ...]  # return-path tokens among the envelope recipients


# --------------------------------------------------------------------------------------
# Reading a message safely


def parse(raw: bytes) -> Message:
    """The message as the email package's lenient compat32 parser sees it (the form
    flufl.bounce reads too); defects are recorded on the message, never raised."""
    return message_from_bytes(raw)


def header_values(message: Message, name: str) -> list[str]:
    """Every value of header `name`, RFC 2047-decoded where that works, else as it came."""
    return [_decoded(value) for value in message.get_all(name) or []]


def header_text(message: Message, name: str) -> str:
    """The first value of header `name` (decoded), or "" when there is none."""
    values = header_values(message, name)
    return values[0] if values else ""


def _decoded(value: object) -> str:
    text = str(value)
    # An undecodable encoded-word stays as it was sent.
    # A charset name that is not ASCII raises CharsetError, a MessageError like no other.
    with suppress(HeaderParseError, CharsetError, UnicodeError, LookupError, ValueError):
        text = str(make_header(decode_header(text)))
    return clean(" ".join(text.split()))


def clean(text: str) -> str:
    """`text` as valid Unicode: undecodable bytes (kept by the parser as lone surrogates)
    become U+FFFD, so whatever the caller stores or logs can be encoded."""
    return text.encode("utf-8", "replace").decode("utf-8", "replace").replace("\x00", "")


def leaves(message: Message, *, into_messages: bool = False) -> Iterator[Message]:
    """The leaf parts of `message`, depth first. Attached messages (message/*) are leaves
    unless `into_messages`: the original returned in a bounce is not the bounce's own text."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        # Only a multipart's payload is read here: a leaf's get_payload() decodes its text
        # with the declared charset, and a hostile charset name (a NUL in it) raises.
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list) and (
            into_messages or part.get_content_maintype() != "message"
        ):
            if depth < _MAX_DEPTH:
                children = [child for child in payload if isinstance(child, Message)]
                stack.extend((child, depth + 1) for child in reversed(children))
            continue
        yield part


def part_text(part: Message, limit: int | None = TEXT_LIMIT) -> str:
    """The decoded text of a leaf part (HTML reduced to its text), at most `limit` characters
    (None: all of it); "" for a part that holds other parts."""
    if part.is_multipart():
        return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    if limit is not None:
        payload = payload[: limit * 4]  # no charset takes more than 4 bytes a character
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except (LookupError, ValueError):  # an unknown charset name, or one with a NUL in it
        text = payload.decode("utf-8", errors="replace")
    if part.get_content_type() == "text/html":
        text = _html_text(text)
    return clean(text if limit is None else text[:limit])


def body_text(message: Message, limit: int = TEXT_LIMIT) -> str:
    """The message's own text (its text/* parts, not attachments, not attached messages)."""
    texts: list[str] = []
    size = 0
    for part in leaves(message):
        if part.get_content_maintype() != "text" or _is_attachment(part):
            continue
        text = part_text(part, limit - size)
        texts.append(text)
        size += len(text)
        if size >= limit:
            break
    return "\n".join(texts)


def _is_attachment(part: Message) -> bool:
    disposition = part.get("Content-Disposition", "")
    return str(disposition).strip().lower().startswith("attachment")


def _html_text(markup: str) -> str:
    markup = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)\s*>", "\n", markup)
    # [^<>], not [^>]: an unclosed "<" must not send the search to the end of the text
    # again from every "<" after it (quadratic on hostile markup).
    return html.unescape(re.sub(r"<[^<>]*>", " ", markup))


def returned_headers(message: Message) -> Message:
    """The headers of the original a report returns (RFC 6522's third part: the whole
    message/rfc822, or text/rfc822-headers); an empty message when it returns none."""
    for part in leaves(message):
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            return HeaderParser().parsestr(part_text(part), headersonly=True)
    return Message()


def report_blocks(part: Message) -> list[dict[str, str]]:
    """The header blocks of a report part (message/disposition-notification: one;
    message/delivery-status: per-message, then one per recipient), each as lower-cased
    field names to their first value, however the parser held them."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _blocks_of(part_text(part))
    nested = [block for block in payload if isinstance(block, Message)]
    blocks = [_fields(block.items()) for block in nested if block.keys()]
    if blocks:
        return blocks
    # A transfer-encoded report (which RFC 6522 forbids, yet it is sent) parses as one
    # headerless block holding the encoded text.
    encoded = "\n".join(str(block.get_payload()) for block in nested)
    return _blocks_of(_transfer_decoded(encoded, str(part.get("Content-Transfer-Encoding", ""))))


def _blocks_of(text: str) -> list[dict[str, str]]:
    parser = HeaderParser()
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        block = parser.parsestr(chunk.strip("\n") + "\n", headersonly=True)
        if block.keys():
            blocks.append(_fields(block.items()))
    return blocks


def _fields(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in items:
        fields.setdefault(name.strip().lower(), clean(" ".join(str(value).split())))
    return fields


def _transfer_decoded(text: str, encoding: str) -> str:
    encoding = encoding.strip().lower()
    data = text.encode("ascii", errors="replace")
    if encoding == "base64":
        try:
            data = base64.b64decode(data)
        except binascii.Error:
            return ""
    elif encoding == "quoted-printable":
        data = quopri.decodestring(data)
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------
# What ties a message to ours


def reference_codes(text: str) -> tuple[str, ...]:
    """The distinct notification reference codes in `text`, in order of appearance."""
    found = (f"OE-{a}-{b}{n}".upper() for a, b, n in _REFERENCE.findall(text))
    return tuple(dict.fromkeys(found))


def our_message_ids(values: Iterable[str], own_domain: str) -> tuple[str, ...]:
    """The distinct msg-ids in `values` that are the gateway's (their domain is
    `own_domain`), written as the outbox writes them, in order of appearance."""
    domain = own_domain.lower()
    found = (
        f"<{local}@{own_domain}>"
        for value in values
        for local, right in _MESSAGE_ID.findall(value)
        if right.lower() == domain
    )
    return tuple(dict.fromkeys(found))


def return_path_tokens(
    addresses: Iterable[str], *, own_domain: str, bounce_local_part: str
) -> tuple[str, ...]:
    """The distinct per-message return-path tokens among the header values `addresses`."""
    found = (
        token_from_return_path(address, bounce_local_part, own_domain)
        for _, address in getaddresses(list(addresses))
    )
    return tuple(dict.fromkeys(token for token in found if token is not None))


def links_of(message: Message, *, own_domain: str, bounce_local_part: str) -> Links:
    """What in `message`'s own headers ties it to one of the gateway's messages."""
    threading = header_values(message, "In-Reply-To") + header_values(message, "References")
    envelope = [value for name in _ENVELOPE_HEADERS for value in header_values(message, name)]
    return Links(
        message_ids=our_message_ids(threading, own_domain),
        references=reference_codes(header_text(message, "Subject")),
        tokens=return_path_tokens(
            envelope, own_domain=own_domain, bounce_local_part=bounce_local_part
        ),
    )


# --------------------------------------------------------------------------------------
# Encrypted replies


def encryption_of(message: Message) -> Encryption:
    """How `message` carries an encrypted body, if it does (nothing is decrypted here)."""
    if message.get_content_type() == "multipart/encrypted":
        protocol = str(message.get_param("protocol", "")).lower()
        return Encryption.PGP_MIME if protocol == PROTOCOL else Encryption.NONE
    if _flattened_armor(message) is not None:
        return Encryption.OUTLOOK_MANGLED
    if _armored_parts(message):
        return Encryption.ARMORED
    return Encryption.NONE


def repair_outlook_pgp_mime(raw: bytes) -> bytes:
    """`raw` put back into RFC 3156 `multipart/encrypted` form, for `pgpmime.open_sealed`.

    Takes the form Outlook/Exchange leaves (multipart/mixed with the version part and
    "encrypted.asc" as attachments, in any transfer encoding) and an armored PGP MESSAGE
    inline or attached; the armor's whitespace is made canonical again, since Outlook
    re-wraps and pads lines. The outer headers are kept, except the Content-* ones. An RFC
    3156 message is returned unchanged. Text outside the armor (an empty body, a disclaimer
    a mail server appended) is dropped: it was never encrypted nor signed.

    Raises `OpeningError` when there is no single armored PGP MESSAGE to repair around or
    the armor is damaged beyond whitespace.
    """
    message = parse(raw)
    if message.get_content_type() == "multipart/encrypted":
        return raw
    part = _flattened_armor(message)
    if part is None:
        found = _armored_parts(message)
        if len(found) != 1:
            raise OpeningError(
                "no single armored PGP MESSAGE to repair: the message holds "
                f"{len(found)} parts with one"
            )
        part = found[0]
    armored = _canonical_armor(part_text(part, limit=None))
    repaired = _outer_headers(raw) + _rfc3156_body(armored)
    encrypted_part(repaired)  # the shape open_sealed insists on, or OpeningError
    return repaired


def _flattened_armor(message: Message) -> Message | None:
    """The part holding the armored message in Exchange's flattened PGP/MIME: a
    multipart/mixed with the version-identification part ("Version: 1"), one part with an
    armored message, and otherwise only text parts (the emptied body, a disclaimer)."""
    if message.get_content_type() != "multipart/mixed":
        return None
    control = 0
    armored: list[Message] = []
    for part in leaves(message):
        text = part_text(part)
        if _is_version_part(part, text):
            control += 1
        elif ARMOR_BEGIN in text:
            armored.append(part)
        elif part.get_content_maintype() != "text":
            return None  # another attachment: not the shape Exchange makes
    return armored[0] if control == 1 and len(armored) == 1 else None


def _is_version_part(part: Message, text: str) -> bool:
    label = " ".join(
        str(value).lower()
        for value in (
            part.get_param("name"),
            part.get_filename(),
            part.get("Content-Description"),
        )
        if value is not None
    )
    named = part.get_content_type() == PROTOCOL or "pgpmime version" in label.replace("/", "")
    return named and text.strip() == "Version: 1"


def _armored_parts(message: Message) -> list[Message]:
    """The leaf parts holding an armored PGP MESSAGE, outside attached messages (a bounce
    returning our own sealed notification is not an encrypted reply)."""
    return [part for part in leaves(message) if ARMOR_BEGIN in part_text(part)]


_ARMOR_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ")
_RADIX64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_CHECKSUM = re.compile(r"=[A-Za-z0-9+/]{4}")


def _canonical_armor(text: str) -> str:
    """The one armored PGP MESSAGE in `text`, re-emitted with canonical lines (RFC 4880 §6.2)
    and its informative headers (Version, Comment) left out."""
    if text.count(ARMOR_BEGIN) != 1:
        raise OpeningError("the message must hold exactly one armored PGP MESSAGE block")
    start = text.index(ARMOR_BEGIN) + len(ARMOR_BEGIN)
    end = text.find(ARMOR_END, start)
    if end < 0:
        raise OpeningError("the armored PGP MESSAGE has no END line: it was cut short")
    # str.split() without arguments also splits at the no-break spaces HTML mail leaves.
    lines = text[start:end].replace("\r", "\n").split("\n")
    stripped = [line.strip() for line in lines]
    index = 0
    while index < len(stripped) and (not stripped[index] or _ARMOR_HEADER.match(stripped[index])):
        index += 1
    data: list[str] = []
    checksum = ""
    for line in stripped[index:]:
        if _CHECKSUM.fullmatch(line):
            checksum = line
        elif line:
            data.append("".join(line.split()))
    radix64 = "".join(data)
    if not radix64 or not _RADIX64.fullmatch(radix64) or len(radix64) % 4:
        raise OpeningError(
            "the armored PGP MESSAGE is damaged: its data is not radix-64 once whitespace is"
            " removed"
        )
    body = [radix64[i : i + 64] for i in range(0, len(radix64), 64)]
    return "\n".join([ARMOR_BEGIN, "", *body, *([checksum] if checksum else []), ARMOR_END])


_HEADER_LINE = re.compile(rb"^([!-9;-~]+):")


def _outer_headers(raw: bytes) -> bytes:
    """The header section of `raw` without MIME-Version and Content-*, CRLF line ends."""
    cut = [index for index in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if index >= 0]
    section = raw[: min(cut)] if cut else raw
    kept: list[bytes] = []
    keep = False
    for line in section.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        match = _HEADER_LINE.match(line)
        name = match.group(1).lower() if match else b""
        keep = bool(match) and name != b"mime-version" and not name.startswith(b"content-")
        if keep:
            kept.append(line)
    return b"".join(line + b"\r\n" for line in kept)


def _rfc3156_body(armored: str) -> bytes:
    return b"MIME-Version: 1.0\r\n" + encrypted_body(armored)

"""The one check every outbound message in every test must pass (DESIGN.md section 5,
invariants 1 and 2).

It is written independently of gateway.pgpmime, so a fault in the code under test cannot
hide itself: it parses the message with the standard library and decrypts it with the
recipient's own GnuPG home through python-gnupg, reading GnuPG's status lines directly.
"""

from __future__ import annotations

import email.policy
import html
import re
import tempfile
from collections.abc import Iterable
from datetime import date
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import gnupg  # type: ignore[import-untyped]

from gateway.keyring import Keyring

_ARMOR = re.compile(rb"-----BEGIN PGP MESSAGE-----\r?\n.*?-----END PGP MESSAGE-----", re.DOTALL)
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
# Anything that reads as a calendar date. The outer Date header is the one date allowed
# outside the encryption and is left out of this search.
_DATE_LIKE = re.compile(
    rf"\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b"
    rf"|\b\d{{4}}-\d{{2}}-\d{{2}}\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})[a-z]*\.?,?\s+\d{{4}}\b"
    rf"|\b(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]*>")


def assert_sealed(
    raw: bytes,
    *,
    recipient_home_or_keyring: Keyring | Path,
    navigator_fingerprint: str,
    reference: str,
    must_contain: Iterable[str],
    must_not_contain: Iterable[str],
    dates_of_birth: Iterable[date] = (),
) -> EmailMessage:
    """Assert that `raw` is a sealed notification fit to leave, and return its inner message.

    - RFC 3156 structure: `multipart/encrypted; protocol="application/pgp-encrypted"` with
      exactly a `Version: 1` control part and one `application/octet-stream` armored part;
    - decrypts in the recipient's home, encrypted to one key only, signed with a valid
      signature by the Navigator's key;
    - the decrypted text names every one of `must_contain` (this school's children) and none
      of `must_not_contain` (other schools' children);
    - outside the armored block (headers, preamble, control part) none of those names and
      nothing that reads as a date, bar the Date header; none of `dates_of_birth` anywhere
      outside the encryption;
    - the Subject carries `reference`.
    """
    inside = [name for name in must_contain if name]
    forbidden = [name for name in must_not_contain if name]
    outer = BytesParser(policy=email.policy.default).parsebytes(raw)
    armored = _assert_rfc3156(outer)
    _assert_nothing_outside(raw, outer, [*inside, *forbidden], list(dates_of_birth))
    subject = str(outer.get("Subject", ""))
    assert reference in subject, f"the Subject {subject!r} does not carry {reference!r}"
    plaintext = _decrypt_and_verify(armored, recipient_home_or_keyring, navigator_fingerprint)
    inner = BytesParser(policy=email.policy.default).parsebytes(plaintext)
    assert isinstance(inner, EmailMessage)
    text = _squeezed(_inner_text(inner))
    missing = [name for name in inside if _squeezed(name) not in text]
    assert not missing, f"the notification does not name {missing}"
    leaked = [name for name in forbidden if _squeezed(name) in text]
    assert not leaked, f"the notification names other schools' children: {leaked}"
    return inner


def _assert_rfc3156(outer: EmailMessage) -> bytes:
    assert outer.get_content_type() == "multipart/encrypted", outer.get_content_type()
    assert outer.get_param("protocol") == "application/pgp-encrypted", outer["Content-Type"]
    parts = list(outer.iter_parts())
    assert len(parts) == 2, f"multipart/encrypted has {len(parts)} parts, not 2"
    control, data = parts
    assert control.get_content_type() == "application/pgp-encrypted"
    assert not control.is_multipart() and not data.is_multipart()
    control_body = control.get_payload(decode=True)
    assert isinstance(control_body, bytes)
    assert control_body.strip() == b"Version: 1", control_body
    assert data.get_content_type() == "application/octet-stream", data.get_content_type()
    body = data.get_payload(decode=True)
    assert isinstance(body, bytes)
    blocks = _ARMOR.findall(body)
    assert len(blocks) == 1 and body.strip() == blocks[0].strip(), "not one armored block"
    return bytes(blocks[0])


def _assert_nothing_outside(
    raw: bytes, outer: EmailMessage, names: list[str], dates_of_birth: list[date]
) -> None:
    assert raw.isascii(), "the outer message must be 7-bit ASCII"
    blocks = _ARMOR.findall(raw)
    assert len(blocks) == 1, f"{len(blocks)} armored blocks in the raw message"
    outside = raw.replace(blocks[0], b"").decode("ascii")
    decoded_headers = "\n".join(f"{name}: {value}" for name, value in outer.items())
    # Header values decoded from RFC 2047 too: a name could hide in =?utf-8?b?...?=.
    visible = f"{outside}\n{decoded_headers}"
    folded = _squeezed(visible)
    shown = [name for name in names if _squeezed(name) in folded]
    assert not shown, f"child data outside the encryption: {shown}"
    without_date = "\n".join(
        line for line in visible.splitlines() if not line.lower().startswith("date:")
    )
    dates = _DATE_LIKE.findall(without_date)
    assert not dates, f"a date outside the encryption: {dates}"
    for dob in dates_of_birth:
        for form in _renderings(dob):
            assert form.casefold() not in folded, f"a date of birth outside: {form!r}"


def _renderings(day: date) -> list[str]:
    return [
        day.strftime("%d/%m/%Y"),
        f"{day.day}/{day.month}/{day.year}",
        day.isoformat(),
        f"{day.day} {day:%B %Y}",
        f"{day.day} {day:%b %Y}",
        f"{day:%d%m%Y}",
        f"{day:%Y%m%d}",
    ]


def _decrypt_and_verify(armored: bytes, home: Keyring | Path, navigator: str) -> bytes:
    gpg = home.gpg if isinstance(home, Keyring) else gnupg.GPG(gnupghome=str(home))
    result = gpg.decrypt(armored, always_trust=True)
    status = [
        line[9:].split() for line in result.stderr.splitlines() if line.startswith("[GNUPG:] ")
    ]
    keywords = [fields[0] for fields in status if fields]
    assert result.ok and "DECRYPTION_OKAY" in keywords, f"cannot decrypt: {result.status}"
    assert _integrity_protected(status), "the encrypted data is not integrity-protected"
    assert keywords.count("ENC_TO") == 1, "encrypted to more than the one recipient"
    assert "GOODSIG" in keywords, f"no good signature: {result.status}"
    assert not {"BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG"} & set(keywords), keywords
    signers = [fields[10] for fields in status if fields[0] == "VALIDSIG"]
    assert signers == [navigator], f"signed by {signers}, not the Navigator's key {navigator}"
    data: bytes = result.data
    return data


def _integrity_protected(status: list[list[str]]) -> bool:
    # DECRYPTION_INFO <mdc_method> <sym_algo> [<aead_algo>]: one of the two must be set.
    infos = [fields[1:] for fields in status if fields[0] == "DECRYPTION_INFO"]
    return bool(infos) and all(
        info[0] != "0" or (len(info) > 2 and info[2] != "0") for info in infos
    )


def _squeezed(text: str) -> str:
    # Templates wrap lines and HTML splits words across tags: compare on single spaces.
    return " ".join(text.split()).casefold()


def _inner_text(inner: EmailMessage) -> str:
    """Every leaf part decoded, with HTML also unescaped and stripped of tags."""
    texts = [f"{name}: {value}" for name, value in inner.items()]
    for part in inner.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        texts.append(text)
        if part.get_content_type() == "text/html":
            texts.append(html.unescape(_TAG.sub(" ", text)))
    return "\n".join(texts)


def assert_signed_only(
    raw: bytes,
    *,
    verifier: Keyring | Path,
    navigator_fingerprint: str,
    must_not_contain: Iterable[str],
    dates_of_birth: Iterable[date] = (),
) -> EmailMessage:
    """Assert that `raw` is mail fit to leave signed and NOT encrypted, and return the signed
    entity: so it must carry no child's data.

    - RFC 3156 §5 structure: `multipart/signed; protocol="application/pgp-signature";
      micalg=pgp-sha256` with exactly the signed part and one `application/pgp-signature`;
    - the detached signature verifies, in `verifier` (a home holding the Navigator's public
      key), over the exact bytes of the signed part as transmitted, made by the Navigator's
      key (its VALIDSIG primary fingerprint);
    - 7-bit throughout; none of `must_not_contain` (children's names) and no rendering of
      `dates_of_birth` in any header or any decoded part.
    """
    assert raw.isascii(), "signed mail must be 7-bit (RFC 3156 §5.1)"
    outer = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert outer.get_content_type() == "multipart/signed", outer.get_content_type()
    assert outer.get_param("protocol") == "application/pgp-signature"
    assert outer.get_param("micalg") == "pgp-sha256"
    parts = list(outer.iter_parts())
    assert len(parts) == 2, f"{len(parts)} parts in multipart/signed"
    assert parts[1].get_content_type() == "application/pgp-signature"
    signature = parts[1].get_payload(decode=True)
    assert isinstance(signature, bytes)
    signed = signed_part_bytes(raw, outer.get_boundary() or "")
    _verify_detached(signed, signature, verifier, navigator_fingerprint)
    text = _squeezed(_inner_text(outer))
    leaked = [name for name in must_not_contain if name and _squeezed(name) in text]
    assert not leaked, f"child data in signed-only mail: {leaked}"
    for dob in dates_of_birth:
        for form in _renderings(dob):
            assert form.casefold() not in text, f"a date of birth in signed-only mail: {form!r}"
    entity = BytesParser(policy=email.policy.default).parsebytes(signed)
    assert isinstance(entity, EmailMessage)
    return entity


def signed_part_bytes(raw: bytes, boundary: str) -> bytes:
    """The first body part of a multipart `raw` exactly as transmitted: from after the first
    delimiter line to the CRLF that belongs to the next delimiter (RFC 2046 §5.1.1)."""
    assert boundary, "multipart/signed without a boundary"
    body = raw.split(b"\r\n\r\n", 1)[1]
    delimiter = b"--" + boundary.encode("ascii")
    start = body.index(delimiter + b"\r\n") + len(delimiter) + 2
    end = body.index(b"\r\n" + delimiter, start)
    return body[start:end]


def _verify_detached(data: bytes, signature: bytes, home: Keyring | Path, navigator: str) -> None:
    gpg = home.gpg if isinstance(home, Keyring) else gnupg.GPG(gnupghome=str(home))
    with tempfile.TemporaryDirectory(prefix="eg-sig-") as scratch:
        signature_file = Path(scratch) / "signature.asc"
        signature_file.write_bytes(signature)
        result = gpg.verify_data(str(signature_file), data)
    status = [
        line[9:].split() for line in result.stderr.splitlines() if line.startswith("[GNUPG:] ")
    ]
    keywords = [fields[0] for fields in status if fields]
    assert "GOODSIG" in keywords, f"no good signature: {result.status}"
    assert not {"BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG"} & set(keywords), keywords
    signers = [fields[10] for fields in status if fields[0] == "VALIDSIG"]
    assert signers == [navigator], f"signed by {signers}, not the Navigator's key {navigator}"

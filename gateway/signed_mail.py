"""Is this mail signed by a pinned key? OpenPGP signatures on mail (RFC 3156), judged against
a set of pinned fingerprints: the police keys for their spreadsheets (gateway/sender_auth.py),
the Navigator's command-signer keys for signed commands (gateway/command_mail.py).

Two forms are accepted:

- `multipart/signed` with an `application/pgp-signature` part, verified over the exact bytes
  of the signed part as they arrived, in canonical CRLF form (§5: the signature covers those
  bytes, never a re-serialisation of them);
- `multipart/encrypted` to a key whose secret half the gateway holds, signed inside the
  encryption in one operation (§6.2). The separately nested form of §6.1 is not accepted,
  nor is inline PGP (clearsigned text): it signs the text but not the MIME structure around
  it, so what a mail program shows need not be what was signed.

Nothing here raises for anything a mail can contain: every outcome is a `SignatureCheck`,
whose `reason` is written for the Navigator and whose `problem` is a code for the audit log.
"""

from __future__ import annotations

import email.policy
import hashlib
import itertools
import re
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from enum import StrEnum
from pathlib import Path

from gateway.errors import GatewayError
from gateway.keyring import Keyring, normalise_fingerprint, status_lines
from gateway.pgpmime import OpeningError, open_sealed

SIGNATURE_PROTOCOL = "application/pgp-signature"
INLINE_SIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"

# The end of the header section: the first empty line (RFC 5322 §2.1).
_HEADER_END = re.compile(rb"\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


class SignatureProblem(StrEnum):
    """Why a signature did not pass, as a code for the audit log (values are stored)."""

    UNSIGNED = "unsigned"  # no OpenPGP signature at all
    INLINE = "inline_pgp"  # clearsigned text: not accepted, PGP/MIME is needed
    MALFORMED = "malformed_pgp_mime"  # the PGP/MIME structure cannot be trusted to be read
    UNDECRYPTABLE = "undecryptable"  # encrypted, and the gateway's keys cannot open it
    BAD_SIGNATURE = "bad_signature"  # the content was altered after signing
    EXPIRED_SIGNATURE = "expired_signature"
    SEVERAL_SIGNATURES = "several_signatures"
    UNKNOWN_KEY = "unknown_key"  # signed by a key the gateway's keyring does not hold
    UNPINNED_KEY = "unpinned_key"  # signed by a key the keyring holds, but not a pinned one
    EXPIRED_KEY = "expired_key"
    REVOKED_KEY = "revoked_key"
    UNCHECKABLE = "uncheckable"  # GnuPG could not check it (an error of its own)


@dataclass(frozen=True)
class PinnedKeys:
    """The keys a signature must be by, and how a reason names them: `role` ("police key")
    and the configuration `setting` that pins them ("[police] fingerprints")."""

    fingerprints: tuple[str, ...]
    role: str
    setting: str

    def pins(self, fingerprint: str) -> bool:
        wanted = normalise_fingerprint(fingerprint)
        return any(normalise_fingerprint(pinned) == wanted for pinned in self.fingerprints)


@dataclass(frozen=True)
class SignatureCheck:
    """GnuPG's verdict on one OpenPGP signature, judged against the pinned keys.

    `reason` is a clause for the Navigator ("its OpenPGP signature does not match…") when
    the check failed, and names the key when it passed; `problem` says why it failed.
    `signed_at` is the signature's own creation time (not a proof of when it was made, but
    what tells two signatures over the same text apart).
    """

    passed: bool
    reason: str
    signer: str | None = None  # primary fingerprint of a pinned signing key, when passed
    problem: SignatureProblem | None = None
    signed_at: datetime | None = None


@dataclass(frozen=True)
class SignedContent:
    """What a mail's OpenPGP signature vouches for.

    `content` is the signed part of a `multipart/signed` mail, the decrypted entity of an
    encrypted one, or the whole mail when it carries no signature (another means, such as
    DKIM, may still vouch for it); None when there is nothing that can be read. `signed` is
    the exact bytes the signature covers, when the check passed.
    """

    content: EmailMessage | None
    check: SignatureCheck
    signed: bytes | None = None

    @property
    def fingerprint(self) -> str | None:
        """A digest that is the same for every copy of this one signature over this one
        content (a replayed mail), and differs for a new signature, even over the same text.
        None when the check did not pass."""
        check = self.check
        if not check.passed or self.signed is None or check.signer is None:
            return None
        stamp = check.signed_at.isoformat() if check.signed_at else ""
        digest = hashlib.sha256(f"{check.signer}\n{stamp}\n".encode("ascii"))
        digest.update(self.signed)
        return digest.hexdigest()


class _Malformed(GatewayError):
    """The PGP/MIME structure of a signed mail cannot be read unambiguously (internal:
    `open_signed` turns it into a failed check)."""


def open_signed(
    raw: bytes,
    *,
    pinned: PinnedKeys,
    keyring: Keyring,
    passphrase: str | None,
    decrypting_key: str,
) -> SignedContent:
    """The content of the mail `raw` (as received, headers and all) and the check of its
    OpenPGP signature against `pinned`.

    `keyring` holds the pinned public keys and the secret key that encrypted mail is
    encrypted to, unlocked with `passphrase`; `decrypting_key` names that key in reasons
    ("the MASH key").
    """
    message = parse(raw)
    content_type = message.get_content_type()
    if content_type == "multipart/signed":
        return _open_signed(raw, message, pinned, keyring)
    if content_type == "multipart/encrypted":
        return _open_encrypted(raw, pinned, keyring, passphrase, decrypting_key)
    if INLINE_SIGNED in raw:
        return SignedContent(
            message,
            SignatureCheck(
                False,
                "the mail is signed inline (clearsigned text), which is not accepted: "
                "sign it as PGP/MIME",
                problem=SignatureProblem.INLINE,
            ),
        )
    return SignedContent(
        message,
        SignatureCheck(
            False, "the mail has no OpenPGP signature", problem=SignatureProblem.UNSIGNED
        ),
    )


def signature_check(stderr: str, pinned: PinnedKeys) -> SignatureCheck:
    """Judge the signature status lines of a GnuPG run (verify, or decrypt of a signed
    message): exactly one signature, good, by a key whose primary fingerprint is pinned.

    A signing subkey counts as its primary key (VALIDSIG's last field), so a key whose
    signing subkey was replaced stays pinned by its primary fingerprint.
    """
    lines = list(status_lines(stderr))
    keywords = {keyword for keyword, _ in lines}
    signatures = sum(1 for keyword, _ in lines if keyword == "NEWSIG")
    if signatures == 0 and not keywords & {"GOODSIG", "BADSIG", "ERRSIG", "VALIDSIG"}:
        return _failed("it carries no OpenPGP signature GnuPG can read", SignatureProblem.UNSIGNED)
    if signatures > 1:
        return _failed(
            f"it carries {signatures} OpenPGP signatures; one, by a pinned key, is needed",
            SignatureProblem.SEVERAL_SIGNATURES,
        )
    if "BADSIG" in keywords:
        return _failed(
            "its OpenPGP signature does not match the signed content: the mail was "
            "altered after signing",
            SignatureProblem.BAD_SIGNATURE,
        )
    if "EXPSIG" in keywords:
        return _failed("its OpenPGP signature has expired", SignatureProblem.EXPIRED_SIGNATURE)
    for keyword, args in lines:
        # ERRSIG <keyid> <algo> <hash> <class> <time> <rc> <fpr>; EXPKEYSIG <keyid> <uid>
        fields = [*args, "?", "?", "?", "?", "?", "?", "-"]
        if keyword == "ERRSIG":
            key = fields[6] if fields[6] not in ("-", "?") else fields[0]
            if "NO_PUBKEY" in keywords:
                return _failed(
                    f"it is signed by key {key}, which is not in the gateway's keyring "
                    f"(not a pinned {pinned.role})",
                    SignatureProblem.UNKNOWN_KEY,
                )
            return _failed(
                f"its OpenPGP signature by key {key} cannot be checked (error {fields[5]})",
                SignatureProblem.UNCHECKABLE,
            )
        if keyword in ("EXPKEYSIG", "REVKEYSIG"):
            expired = keyword == "EXPKEYSIG"
            return _failed(
                f"it is signed by key {fields[0]}, which has "
                f"{'expired' if expired else 'been revoked'}",
                SignatureProblem.EXPIRED_KEY if expired else SignatureProblem.REVOKED_KEY,
            )
    validsig = [args for keyword, args in lines if keyword == "VALIDSIG"]
    if "GOODSIG" not in keywords or len(validsig) != 1 or len(validsig[0]) < 10:
        return _failed("its OpenPGP signature is not valid", SignatureProblem.UNCHECKABLE)
    primary = normalise_fingerprint(validsig[0][9])
    if not pinned.pins(primary):
        return _failed(
            f"it is signed by key {primary}, which is not a pinned {pinned.role} "
            f"({pinned.setting})",
            SignatureProblem.UNPINNED_KEY,
        )
    # VALIDSIG <fpr> <sig_creation_date> <sig-timestamp> …: seconds since the epoch, or an
    # ISO 8601 basic time under --fixed-list-mode's older form.
    stamp = validsig[0][2]
    signed_at = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None
    return SignatureCheck(
        True, f"signed by the pinned {pinned.role} {primary}", primary, signed_at=signed_at
    )


def parse(raw: bytes) -> EmailMessage:
    """`raw` parsed with the email package's default (modern) policy."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)  # the default policy always makes one
    return parsed


def described_defect(defect: Exception) -> str:
    """A defect of the email package's parser, in words."""
    # Some of its defects carry no message, only their class name.
    return str(defect) or re.sub(r"(?<!^)(?=[A-Z])", " ", type(defect).__name__).lower()


def _failed(reason: str, problem: SignatureProblem) -> SignatureCheck:
    return SignatureCheck(False, reason, problem=problem)


def _open_signed(
    raw: bytes, message: EmailMessage, pinned: PinnedKeys, keyring: Keyring
) -> SignedContent:
    protocol = message.get_param("protocol")
    if not isinstance(protocol, str) or protocol.lower() != SIGNATURE_PROTOCOL:
        return SignedContent(
            message,
            _failed(
                f"the mail is multipart/signed with protocol {protocol!r}, not OpenPGP",
                SignatureProblem.UNSIGNED,
            ),
        )
    try:
        signed, signature = _signed_parts(raw, message)
    except _Malformed as malformed:
        # Another means (DKIM) can still vouch for such a mail, and then for the whole of it.
        return SignedContent(
            message,
            _failed(
                f"its PGP/MIME structure is malformed: {malformed}", SignatureProblem.MALFORMED
            ),
        )
    with tempfile.TemporaryDirectory(prefix="eg-sig-") as scratch:
        # python-gnupg takes a detached signature only as a file; it is not secret.
        signature_file = Path(scratch) / "signature.asc"
        signature_file.write_bytes(signature)
        result = keyring.gpg.verify_data(str(signature_file), signed)
    check = signature_check(result.stderr, pinned)
    return SignedContent(parse(signed), check, signed if check.passed else None)


def _open_encrypted(
    raw: bytes, pinned: PinnedKeys, keyring: Keyring, passphrase: str | None, decrypting_key: str
) -> SignedContent:
    try:
        opened = open_sealed(keyring, raw, passphrase=passphrase)
    except OpeningError as exc:
        return SignedContent(
            None,
            _failed(
                f"the mail is encrypted and cannot be opened with {decrypting_key}: {exc}",
                SignatureProblem.UNDECRYPTABLE,
            ),
        )
    check = signature_check(opened.status, pinned)
    if not check.passed:
        if check.problem is SignatureProblem.UNSIGNED:
            check = replace(
                check, reason="the encrypted mail has no OpenPGP signature inside the encryption"
            )
        return SignedContent(opened.inner, check)
    check = replace(
        check, reason=f"signed and encrypted by the pinned {pinned.role} {check.signer}"
    )
    return SignedContent(opened.inner, check, opened.plaintext)


def _signed_parts(raw: bytes, message: EmailMessage) -> tuple[bytes, bytes]:
    """The signed entity of an RFC 3156 `multipart/signed` mail, exactly as transmitted in
    canonical CRLF form, and the signature part's decoded content."""
    boundary = message.get_boundary()
    if not boundary or not boundary.isascii():
        raise _Malformed("the multipart/signed part has no usable boundary")
    if message.defects:
        raise _Malformed(f"the MIME structure has defects ({described_defect(message.defects[0])})")
    parts = list(message.iter_parts())
    header_end = _HEADER_END.search(raw)
    if header_end is None:
        raise _Malformed("the mail has no body")
    body = raw[header_end.end() :]
    if _BARE_CR.search(body):
        # The email package also ends lines at a lone CR, this reading does not: rather than
        # risk the two disagreeing on where the signed part ends, refuse what RFC 5322 forbids.
        raise _Malformed("the body holds a carriage return that does not end a line")
    chunks = _raw_parts(body, boundary)
    if len(chunks) != 2 or len(parts) != 2:
        raise _Malformed(f"multipart/signed must have exactly 2 parts, not {len(parts)}")
    if parts[1].get_content_type() != SIGNATURE_PROTOCOL:
        raise _Malformed(
            f"the second part is {parts[1].get_content_type()}, not {SIGNATURE_PROTOCOL}"
        )
    signature = parts[1].get_payload(decode=True)
    if not isinstance(signature, bytes) or not signature.strip():
        raise _Malformed("the signature part is empty")
    return _LINE_END.sub(b"\r\n", chunks[0]), signature


def _raw_parts(body: bytes, boundary: str) -> list[bytes]:
    """The body parts between the delimiter lines of `boundary` (RFC 2046 §5.1.1): the line
    break before each delimiter belongs to the delimiter, not to the part before it."""
    delimiter = re.compile(
        rb"(?:\A|(?<=\n))--" + re.escape(boundary.encode("ascii")) + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    )
    lines = list(delimiter.finditer(body))
    close = next((i for i, line in enumerate(lines) if line.group(1)), None)
    if close is None or close == 0:
        raise _Malformed("the multipart/signed body has no opening or no closing boundary")
    return [
        body[here.end() : after.start()].removesuffix(b"\n").removesuffix(b"\r")
        for here, after in itertools.pairwise(lines[: close + 1])
    ]

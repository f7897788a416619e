"""PGP/MIME (RFC 3156): seal a notification for one recipient, and open a sealed message.

`seal` signs and encrypts the whole inner MIME entity in one OpenPGP operation (RFC 3156
§6.2) to exactly one pinned fingerprint, and wraps it in `multipart/encrypted`. The outer
message is built from `OuterHeaders` alone: nothing of the inner message — its subject, its
parts, its headers — is copied outside the encryption.

Deciding whether a recipient's key may be used at the send time is the caller's job
(`Keyring.check`, once per contact and day); `seal` still refuses anything but a primary
fingerprint of a key in the keyring, and GnuPG refuses a key that is expired or revoked now.
"""

from __future__ import annotations

import email.policy
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime

from gateway.errors import GatewayError
from gateway.keyring import KeyInfo, Keyring, normalise_fingerprint, status_lines

PROTOCOL = "application/pgp-encrypted"
ARMOR_BEGIN = "-----BEGIN PGP MESSAGE-----"
ARMOR_END = "-----END PGP MESSAGE-----"
PREAMBLE = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
# '.' and '_' are outside the armor's alphabet (RFC 4880 §6.3), so no line of the
# encrypted part can ever contain this boundary (RFC 2046 §5.1.1).
_BOUNDARY = "encompass.pgpmime_boundary"
SIGNATURE = "application/pgp-signature"
SIGNATURE_BEGIN = "-----BEGIN PGP SIGNATURE-----"
SIGNATURE_END = "-----END PGP SIGNATURE-----"
SIGNED_PREAMBLE = "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)"
_SIGNED_BOUNDARY = "encompass.pgpmime_signed"

# Headers the outer message sets itself; an extra header may not replace them.
_OWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "disposition-notification-to",
        "mime-version",
    }
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'


class SealingError(GatewayError):
    """A message could not be sealed: the recipient or signer key is not in the keyring,
    the Navigator key's passphrase is missing or wrong, GnuPG failed or made no signature,
    or the outer headers are malformed. Nothing is produced; the message must not be sent."""


class OpeningError(GatewayError):
    """A message is not well-formed PGP/MIME (RFC 3156 §4) or cannot be decrypted with the
    keys of the home it was opened in."""


@dataclass(frozen=True)
class OuterHeaders:
    """The headers outside the encryption. They carry a reference code, never child data."""

    from_addr: str
    to_addr: str
    subject: str
    date: datetime
    message_id: str
    # A read receipt is asked for a notification; the gateway's own mail asks for none.
    disposition_notification_to: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Opened:
    """A sealed message opened: the inner MIME entity and who signed it."""

    inner: EmailMessage
    signer_fingerprint: str | None  # primary fingerprint of the signing key, when known
    signature_valid: bool
    # The decrypted bytes exactly, and GnuPG's status lines, for a caller that judges the
    # signature against its own pinned keys (gateway/signed_mail.py).
    plaintext: bytes = field(default=b"", repr=False)
    status: str = field(default="", repr=False)


def seal(
    keyring: Keyring,
    inner: EmailMessage | bytes,
    *,
    recipient: str,
    signer: str,
    passphrase: str | None,
    headers: OuterHeaders,
    also_to: Sequence[str] = (),
) -> bytes:
    """Sign with `signer` and encrypt to `recipient` (both full fingerprints) the MIME entity
    `inner`, and return the whole RFC 5322 message (CRLF line ends) ready for SMTP.

    `also_to` are further recipients' fingerprints, for one message that several keys of
    the same reader may open (the Navigator's command-signer keys); a notification is always
    sealed to one key.

    `inner` may be given already written out, CRLF line ends and all (as
    `render.notification_entity` writes it), so that a notification sealed for several
    recipients is written once.

    With a passphrase-protected signing key, gpg-agent keeps the passphrase for its cache
    lifetime (10 minutes by default): a wrong passphrase is refused whenever the cache is
    cold, as at every start, and each signature pays the key's S2K derivation again.
    """
    recipient_key = _primary_key(keyring, recipient, "recipient")
    others = [_primary_key(keyring, other, "recipient") for other in also_to]
    signer_key = _primary_key(keyring, signer, "signing (Navigator)")
    header_block = outer_header_block(headers)  # malformed headers fail before gpg runs
    body = inner.as_bytes(policy=email.policy.SMTP) if isinstance(inner, EmailMessage) else inner
    if body.count(b"\n") != body.count(b"\r\n"):
        raise SealingError("the inner entity, given as bytes, must have CRLF line ends throughout")
    run = _sign_and_encrypt(keyring, body, [recipient_key, *others], signer_key, passphrase)
    armored = _checked_output(run, recipient_key, signer_key)
    return _outer_bytes(header_block, armored)


@dataclass(frozen=True)
class _GpgRun:
    returncode: int
    output: bytes
    stderr: str  # GnuPG's messages and its status lines (--status-fd 2)


def _sign_and_encrypt(
    keyring: Keyring,
    body: bytes,
    recipients: Sequence[KeyInfo],
    signer: KeyInfo,
    passphrase: str | None,
) -> _GpgRun:
    # python-gnupg stays the library for every other GnuPG call, and builds this command
    # line too: exactly what its encrypt(sign=True, always_trust=True, armor=True) runs. Only
    # the process is run here, because python-gnupg starts three threads per call to feed and
    # drain the pipes; on a busy two-core machine starting them costs more than rendering the
    # notification, and this is the one call made per message. communicate() does the same
    # work in one poll loop. The outcome is judged by the same status lines as before.
    return _run_gpg(
        keyring,
        [
            "--encrypt",
            *(arg for key in recipients for arg in ("--recipient", key.fingerprint)),
            "--armor",
            "--sign",
            "--trust-model",
            "always",  # trust comes from the pinned fingerprint, not the web of trust
            "--local-user",
            signer.fingerprint,
        ],
        body,
        passphrase,
    )


def _run_gpg(keyring: Keyring, args: list[str], body: bytes, passphrase: str | None) -> _GpgRun:
    gpg = keyring.gpg
    data = body
    if passphrase is not None:
        if not gpg.is_valid_passphrase(passphrase):
            raise SealingError(
                "the Navigator key's passphrase contains a line break or NUL, so it cannot be "
                "handed to GnuPG"
            )
        # --passphrase-fd 0: the first line of the input is the passphrase, the rest the data;
        # an empty passphrase is a line too (python-gnupg sends none, and gpg then takes the
        # entity's first line for it).
        data = f"{passphrase}\n".encode(gpg.encoding) + body
    command = gpg.make_args(args, passphrase is not None)
    try:
        done = subprocess.run(command, input=data, capture_output=True, env=gpg.env, check=False)
    except OSError as exc:
        raise SealingError(f"GnuPG cannot be run: {exc}") from exc
    return _GpgRun(done.returncode, done.stdout, done.stderr.decode(gpg.encoding, "replace"))


def sign(
    keyring: Keyring,
    inner: EmailMessage,
    *,
    signer: str,
    passphrase: str | None,
    headers: OuterHeaders,
) -> bytes:
    """Sign `inner` with `signer` (the Navigator's full fingerprint) without encrypting it,
    and return the whole RFC 3156 §5 `multipart/signed` message (CRLF line ends).

    Only for mail that carries no personal data (a receipt to the police counts files and
    children; it names none). The detached signature covers the exact CRLF bytes of `inner`
    as written here, which must be 7-bit (§5.1: a server on the way may re-encode 8-bit
    text and so break the signature), so give text parts a quoted-printable or base64
    transfer encoding when they are not plain ASCII.
    """
    signer_key = _primary_key(keyring, signer, "signing (Navigator)")
    header_block = outer_header_block(headers)  # malformed headers fail before gpg runs
    body = inner.as_bytes(policy=email.policy.SMTP)
    if not body.isascii():
        raise SealingError(
            "the entity to sign is not 7-bit: give its text a quoted-printable or base64 "
            "transfer encoding (RFC 3156 §5.1)"
        )
    if f"--{_SIGNED_BOUNDARY}".encode("ascii") in body:
        raise SealingError("the entity to sign contains the multipart/signed boundary")
    run = _run_gpg(
        keyring,
        [
            "--detach-sign",
            "--armor",
            "--digest-algo",
            "SHA256",  # what micalg=pgp-sha256 announces (RFC 3156 §5)
            "--local-user",
            signer_key.fingerprint,
        ],
        body,
        passphrase,
    )
    signature = _checked_signature(run, signer_key)
    return header_block + _signed_body(body, signature)


def _checked_signature(run: _GpgRun, signer: KeyInfo) -> str:
    """The armored detached signature of `run`, once GnuPG says it made exactly one, by
    `signer`, over SHA-256; else the most specific SealingError."""
    what = f"signing by {signer.fingerprint} failed"
    _, signature = _signed_by(run, signer, what)
    # SIG_CREATED <type> <pk_algo> <hash_algo> <class> <timestamp> <fpr>; hash 8 is SHA-256.
    if signature[0] != "D" or signature[2] != "8":
        raise SealingError(f"{what}: GnuPG did not make a detached SHA-256 signature")
    armored = run.output.decode("ascii", errors="replace").strip()
    if not armored.startswith(SIGNATURE_BEGIN) or not armored.endswith(SIGNATURE_END):
        raise SealingError(f"{what}: GnuPG's output is not an armored OpenPGP signature")
    return armored


def _signed_body(signed: bytes, armored: str) -> bytes:
    """The RFC 3156 §5 entity (from its Content-Type on) around the exact bytes `signed`
    (which end with CRLF). The CRLF added before the next delimiter belongs to the delimiter
    (RFC 2046 §5.1.1), so the first part is `signed` to the byte, its last CRLF included."""
    delimiter = f"--{_SIGNED_BOUNDARY}"
    head = [
        f'Content-Type: multipart/signed; micalg=pgp-sha256; protocol="{SIGNATURE}";',
        f' boundary="{_SIGNED_BOUNDARY}"',
        "",
        SIGNED_PREAMBLE,
        delimiter,
        "",
    ]
    tail = [
        "",
        delimiter,
        f'Content-Type: {SIGNATURE}; name="signature.asc"',
        "Content-Description: OpenPGP digital signature",
        'Content-Disposition: attachment; filename="signature.asc"',
        "",
        *armored.splitlines(),
        f"{delimiter}--",
        "",
    ]
    return "\r\n".join(head).encode("ascii") + signed + "\r\n".join(tail).encode("ascii")


def open_sealed(keyring: Keyring, raw: bytes, *, passphrase: str | None = None) -> Opened:
    """Decrypt and verify an RFC 3156 message with the secret keys of `keyring`'s home."""
    armored = encrypted_part(raw)
    result = keyring.gpg.decrypt(armored, passphrase=passphrase, always_trust=True)
    lines = list(status_lines(result.stderr))
    keywords = {keyword for keyword, _ in lines}
    # gpg exits 2 also when only the signature could not be checked: judge by the status.
    if not result.ok or "DECRYPTION_OKAY" not in keywords:
        raise OpeningError(f"the message cannot be decrypted in {keyring.home}: {result.status}")
    if "DECRYPTION_FAILED" in keywords or not _integrity_protected(lines):
        raise OpeningError("the message is not integrity-protected; refusing its content")
    validsig = [args for keyword, args in lines if keyword == "VALIDSIG"]
    bad = keywords & {"BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"}
    valid = len(validsig) == 1 and "GOODSIG" in keywords and not bad
    signer = validsig[0][9] if len(validsig) == 1 and len(validsig[0]) >= 10 else None
    parsed = BytesParser(policy=email.policy.default).parsebytes(result.data)
    assert isinstance(parsed, EmailMessage)  # the default policy always makes one
    return Opened(parsed, signer, valid, bytes(result.data), result.stderr)


def encrypted_part(raw: bytes) -> bytes:
    """The armored OpenPGP message of an RFC 3156 `multipart/encrypted` message.

    Strict: exactly the control part (`Version: 1`) and one `application/octet-stream`
    part holding one armored PGP MESSAGE block; anything else raises `OpeningError`.
    """
    outer = BytesParser(policy=email.policy.default).parsebytes(raw)
    if outer.get_content_type() != "multipart/encrypted":
        raise OpeningError(f"not PGP/MIME: the message is {outer.get_content_type()}")
    protocol = outer.get_param("protocol")
    if not isinstance(protocol, str) or protocol.lower() != PROTOCOL:
        raise OpeningError(f"multipart/encrypted with protocol {protocol!r}, not {PROTOCOL!r}")
    parts = list(outer.iter_parts())
    if len(parts) != 2:
        raise OpeningError(f"multipart/encrypted must have exactly 2 parts, not {len(parts)}")
    control, data = parts
    if control.get_content_type() != PROTOCOL or _text_of(control).strip() != "Version: 1":
        raise OpeningError(f"the first part must be {PROTOCOL} holding 'Version: 1'")
    if data.get_content_type() != "application/octet-stream":
        raise OpeningError(
            f"the second part must be application/octet-stream, not {data.get_content_type()}"
        )
    armored = _text_of(data).strip()
    if (
        not armored.startswith(ARMOR_BEGIN)
        or not armored.endswith(ARMOR_END)
        or armored.count(ARMOR_BEGIN) != 1
    ):
        raise OpeningError("the second part must hold exactly one armored PGP MESSAGE block")
    return armored.encode("ascii")


def _integrity_protected(lines: list[tuple[str, list[str]]]) -> bool:
    # DECRYPTION_INFO <mdc_method> <sym_algo> [<aead_algo>]: without an MDC or AEAD the
    # ciphertext could have been altered unnoticed (EFAIL).
    infos = [args for keyword, args in lines if keyword == "DECRYPTION_INFO"]
    return bool(infos) and all(
        args[0] != "0" or (len(args) > 2 and args[2] != "0") for args in infos
    )


def _primary_key(keyring: Keyring, fingerprint: str, role: str) -> KeyInfo:
    key = keyring.key(fingerprint)
    if key is None:
        raise SealingError(
            f"the {role} key {normalise_fingerprint(fingerprint)} is not in the GnuPG home "
            f"{keyring.home} (give the full primary-key fingerprint)"
        )
    return key


def _checked_output(run: _GpgRun, recipient: KeyInfo, signer: KeyInfo) -> str:
    """The armored output of a sign-and-encrypt `run`, once its exit status is 0 and every
    status says the message was encrypted and signed by `signer`; else the most specific
    SealingError."""
    what = f"sealing to {recipient.fingerprint} signed by {signer.fingerprint} failed"
    keywords, _ = _signed_by(run, signer, what)
    if "END_ENCRYPTION" not in keywords:
        raise SealingError(f"{what}: GnuPG did not finish encrypting")
    armored = run.output.decode("ascii", errors="replace").strip()
    if not armored.startswith(ARMOR_BEGIN) or not armored.endswith(ARMOR_END):
        raise SealingError(f"{what}: GnuPG's output is not an armored OpenPGP message")
    return armored


def _signed_by(run: _GpgRun, signer: KeyInfo, what: str) -> tuple[set[str], list[str]]:
    """The status keywords of a signing `run` and its one SIG_CREATED line, once GnuPG exited
    0 and says it signed exactly once by `signer` (or a subkey); else the most specific
    SealingError: the passphrase, the signing key, the recipient key, the exit status."""
    lines = list(status_lines(run.stderr))
    keywords = {keyword for keyword, _ in lines}
    failures = [
        int(args[-1]) & 0xFFFF
        for keyword, args in lines
        if keyword == "FAILURE" and args and args[-1].isdigit()
    ]
    if "BAD_PASSPHRASE" in keywords or _GPG_ERR_BAD_PASSPHRASE in failures:
        raise SealingError(f"{what}: the Navigator key's passphrase is wrong")
    if "MISSING_PASSPHRASE" in keywords or (
        "NEED_PASSPHRASE" in keywords and "SIG_CREATED" not in keywords
    ):
        raise SealingError(f"{what}: the Navigator key needs a passphrase and none was given")
    for keyword, args in lines:
        if keyword == "INV_SGNR":
            raise SealingError(
                f"{what}: the Navigator's secret key is not usable in this GnuPG home "
                f"({_INVALID_KEY.get(args[0], 'reason ' + args[0])})"
            )
        if keyword == "INV_RECP":
            raise SealingError(
                f"{what}: the recipient key is not usable "
                f"({_INVALID_KEY.get(args[0], 'reason ' + args[0])})"
            )
    if run.returncode != 0:
        raise SealingError(f"{what}: GnuPG exited with status {run.returncode}: {_gpg_error(run)}")
    signing_keys = {signer.fingerprint, *(s.fingerprint for s in signer.subkeys)}
    signatures = [args for keyword, args in lines if keyword == "SIG_CREATED"]
    if len(signatures) != 1 or signatures[0][-1] not in signing_keys:
        raise SealingError(f"{what}: GnuPG reported no signature by the Navigator's key")
    return keywords, signatures[0]


def _gpg_error(run: _GpgRun) -> str:
    said = [line for line in run.stderr.splitlines() if line and not line.startswith("[GNUPG:]")]
    return said[-1] if said else "no message from GnuPG"


_GPG_ERR_BAD_PASSPHRASE = 11  # libgpg-error's code, in the low 16 bits of a FAILURE status

_INVALID_KEY = {
    "1": "not found",
    "3": "wrong key usage",
    "4": "key revoked",
    "5": "key expired",
    "9": "no secret key",
    "10": "key not trusted",
    "13": "key disabled",
}


def outer_header_block(headers: OuterHeaders) -> bytes:
    """The outer header lines, in order, each folded and RFC 2047-encoded as the email
    package's SMTP policy writes them, ending with MIME-Version (seal adds Content-Type).

    Raises SealingError for a line break in a value, a naive Date, or an extra header that
    is malformed or would replace one of the message's own.
    """
    if headers.date.tzinfo is None:
        raise SealingError("the outer Date header needs a timezone-aware instant")
    given: Sequence[tuple[str, str]] = (
        ("From", headers.from_addr),
        ("To", headers.to_addr),
        ("Subject", headers.subject),
        ("Date", format_datetime(headers.date)),
        ("Message-ID", headers.message_id),
        *(
            [("Disposition-Notification-To", headers.disposition_notification_to)]
            if headers.disposition_notification_to is not None
            else []
        ),
        *headers.extra,
    )
    for name, value in given:
        if "\r" in value or "\n" in value:
            raise SealingError(f"the outer header {name} contains a line break")
    for name, _ in headers.extra:
        lowered = name.lower()
        if (
            not _HEADER_NAME.match(name)
            or lowered in _OWN_HEADERS
            or lowered.startswith("content-")
        ):
            raise SealingError(f"{name!r} cannot be an extra outer header")
    return b"".join(_header_line(name, value) for name, value in given) + b"MIME-Version: 1.0\r\n"


_SMTP = email.policy.SMTP
_LINE_LENGTH = 78  # _SMTP.max_line_length: a longer line is folded
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_ADDR_SPEC = rf"{_DOT_ATOM}@{_DOT_ATOM}"
# Printable ASCII without encoded words (=?…?=), leading, trailing or doubled spaces.
_UNSTRUCTURED = re.compile(r"(?!.*=\?)(?!.*  )[!-~](?:[ -~]*[!-~])?")
# Values the email package writes out exactly as given, by how it parses each header: a bare
# address, or one after a display name of atoms or of one simple quoted string; a message id;
# a date as format_datetime writes it; unstructured text as above.
_AS_GIVEN = {
    "from": re.compile(
        rf'(?:(?:{_ATEXT}(?: {_ATEXT})*|"[ !#-\[\]-~]*") <{_ADDR_SPEC}>|{_ADDR_SPEC})'
    ),
    "message-id": re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>"),
    "date": re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} [1-9]\d{3} \d\d:\d\d:\d\d [+-]\d{4}"),
    "subject": _UNSTRUCTURED,
}
_AS_GIVEN["to"] = _AS_GIVEN["disposition-notification-to"] = _AS_GIVEN["from"]
_STRUCTURED = frozenset(HeaderRegistry().registry)  # the headers the email package parses


def _header_line(name: str, value: str) -> bytes:
    # The email package's header objects cost more per header than the rest of the envelope
    # together, so a value it would write unchanged is written directly; anything else — a
    # non-ASCII display name (RFC 2047), a line to fold, an unusual address — goes through
    # it. The tests hold the two side by side.
    lowered = name.lower()
    pattern = _AS_GIVEN.get(lowered, _UNSTRUCTURED if lowered not in _STRUCTURED else None)
    if (
        pattern is not None
        and len(name) + 2 + len(value) <= _LINE_LENGTH
        and pattern.fullmatch(value)
    ):
        return f"{name}: {value}\r\n".encode("ascii")
    return _SMTP.fold_binary(name, _SMTP.header_factory(name, value))


def _outer_bytes(header_block: bytes, armored: str) -> bytes:
    return header_block + encrypted_body(armored)


def encrypted_body(armored: str) -> bytes:
    """The RFC 3156 §4 entity around `armored` (from its Content-Type on), written out
    directly: the email package's generator would cost more than GnuPG itself for these two
    fixed parts. Also used to rebuild a reply whose mail program flattened it."""
    lines = armored.splitlines()
    delimiter = f"--{_BOUNDARY}"
    body = [
        f'Content-Type: multipart/encrypted; protocol="{PROTOCOL}";',
        f' boundary="{_BOUNDARY}"',
        "",
        PREAMBLE,
        delimiter,
        f"Content-Type: {PROTOCOL}",
        "Content-Description: PGP/MIME version identification",
        "",
        "Version: 1",
        "",
        delimiter,
        'Content-Type: application/octet-stream; name="encrypted.asc"',
        "Content-Description: OpenPGP encrypted message",
        'Content-Disposition: inline; filename="encrypted.asc"',
        "",
        *lines,  # 7-bit, 64-character lines: no transfer encoding needed
        "",
        f"{delimiter}--",
        "",
    ]
    return "\r\n".join(body).encode("ascii")


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise OpeningError(f"the {part.get_content_type()} part is not a leaf part")
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise OpeningError(f"the {part.get_content_type()} part is not ASCII") from exc

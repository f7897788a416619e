"""The spreadsheets in an authenticated police mail, and the files that were not taken.

Reads only the content `sender_auth.authenticate` vouched for (its verdict's payload), so an
attachment outside the signed part of a signed mail is never seen. Every leaf part with a
file name is judged; the message text and inline pictures without one are not files.

- `*.xlsx` is taken as it is (its content is checked later by `xlsx_guard`);
- `*.xlsx.gpg` / `*.xlsx.pgp` is an OpenPGP message to the MASH key and is decrypted with
  it. When the mail itself carries a pinned police signature, that signature already
  covers the file's bytes. When the mail was authenticated by DKIM alone, the file must
  also be signed by a pinned police key: the MASH key is public, so anyone can make such a
  file, and its signature makes the spreadsheet itself the police's, whatever the mail
  servers on the way did (a deployment without police keys pinned takes plain .xlsx only);
- anything else is refused with a reason: macro-enabled and old Excel formats, other
  types, forwarded messages (their content is not what was authenticated), damaged
  base64, files over the size limit (before and after decryption: OpenPGP compresses, so a
  small file can decrypt to gigabytes, and GnuPG is stopped at the limit).

File names are RFC 2231 / RFC 2047 decoded by the email package, compared
case-insensitively, and stripped of any folder part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from email import errors
from email.message import EmailMessage, Message

from gateway.config import PoliceSection
from gateway.keyring import Keyring, normalise_fingerprint, status_lines
from gateway.pgpmime import _integrity_protected
from gateway.sender_auth import AuthMethod, police_keys
from gateway.signed_mail import signature_check

SPREADSHEET = ".xlsx"
ENCRYPTED = (".xlsx.gpg", ".xlsx.pgp")
MIB = 1024 * 1024

_BASE64_DEFECTS = (
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64LengthDefect,
)
_SIGNATURE_KEYWORDS = frozenset({"ERRSIG", "BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"})
_NOT_A_FILE = ("text", "image")  # unnamed inline parts of these types are the mail itself


@dataclass(frozen=True)
class Spreadsheet:
    """A police spreadsheet taken from a mail: `data` is the .xlsx itself, decrypted when it
    came as .xlsx.gpg / .xlsx.pgp; `signer` is the pinned police key that signed it then."""

    filename: str
    data: bytes
    encrypted: bool = False
    signer: str | None = None


@dataclass(frozen=True)
class RefusedFile:
    filename: str
    reason: str


@dataclass(frozen=True)
class AttachmentScan:
    """Every file of a police mail: the spreadsheets taken and the files refused, in order."""

    spreadsheets: tuple[Spreadsheet, ...]
    refused: tuple[RefusedFile, ...]

    @property
    def summary(self) -> str:
        """One sentence for the reply to the police sender and the Navigator's alert."""
        refused = "; ".join(f"{f.filename}: {f.reason}" for f in self.refused)
        if self.spreadsheets:
            taken = ", ".join(s.filename for s in self.spreadsheets)
            return f"taken: {taken}" + (f"; not taken: {refused}" if refused else "")
        if not self.refused:
            return "the mail has no attached file: the spreadsheet was not attached"
        return f"no spreadsheet could be taken from the mail: {refused}"


def attachments(
    payload: EmailMessage,
    *,
    method: AuthMethod,
    keyring: Keyring,
    passphrase: str | None,
    police: PoliceSection,
    max_bytes: int,
) -> AttachmentScan:
    """The spreadsheets and refused files of `payload`, the content a `SenderVerdict`
    authenticated by `method`. Encrypted ones are decrypted in `keyring` with the MASH key
    (`passphrase` unlocks it); no file, before or after decryption, may exceed `max_bytes`."""
    taken: list[Spreadsheet] = []
    refused: list[RefusedFile] = []
    for part in _leaves(payload):
        filename = _filename(part)
        if filename is None:
            if part.get_content_maintype() == "message":
                refused.append(
                    RefusedFile(
                        f"(a forwarded {part.get_content_type()})",
                        "a forwarded message is not read: attach the spreadsheet itself",
                    )
                )
            elif part.get_content_maintype() not in _NOT_A_FILE:
                refused.append(
                    RefusedFile(
                        f"(an unnamed {part.get_content_type()} part)",
                        "an attachment without a file name is not read",
                    )
                )
            continue
        outcome = _judge(part, filename, method, keyring, passphrase, police, max_bytes)
        if isinstance(outcome, Spreadsheet):
            taken.append(outcome)
        else:
            refused.append(outcome)
    return AttachmentScan(tuple(taken), tuple(refused))


def _leaves(entity: Message) -> Iterator[Message]:
    # A message/rfc822 part is a leaf here: a forwarded mail is refused whole, not opened.
    if entity.get_content_maintype() == "multipart" and entity.is_multipart():
        for part in entity.get_payload():
            assert isinstance(part, Message)
            yield from _leaves(part)
    else:
        yield entity


def _filename(part: Message) -> str | None:
    name = part.get_filename()
    if not name:
        return None
    # Only the last path element: a name like "..\\..\\x.xlsx" must never reach a file system.
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "".join(c for c in base if c.isprintable()) or None


def _judge(
    part: Message,
    filename: str,
    method: AuthMethod,
    keyring: Keyring,
    passphrase: str | None,
    police: PoliceSection,
    max_bytes: int,
) -> Spreadsheet | RefusedFile:
    lowered = filename.casefold()
    encrypted = lowered.endswith(ENCRYPTED)
    if not encrypted and not lowered.endswith(SPREADSHEET):
        return RefusedFile(filename, _why_not(lowered))
    if part.get_content_maintype() == "multipart":
        return RefusedFile(filename, "the file is a multipart entity, not a file")
    data = part.get_payload(decode=True)
    if any(isinstance(defect, _BASE64_DEFECTS) for defect in part.defects):
        return RefusedFile(filename, "the attachment's base64 encoding is damaged")
    if not isinstance(data, bytes) or not data:
        return RefusedFile(filename, "the file is empty")
    if len(data) > max_bytes:
        return RefusedFile(
            filename, f"the file is {_size(len(data))}, over the {_size(max_bytes)} limit"
        )
    if not encrypted:
        return Spreadsheet(filename, data)
    return _decrypt(filename, data, method, keyring, passphrase, police, max_bytes)


def _why_not(lowered: str) -> str:
    if lowered.endswith((".xlsm", ".xlsm.gpg", ".xlsm.pgp", ".xltm", ".xlam")):
        return "a macro-enabled workbook is never opened: save it as .xlsx"
    if lowered.endswith((".xls", ".xls.gpg", ".xls.pgp")):
        return "the old Excel format (.xls) is not read: save it as .xlsx"
    return (
        "not a spreadsheet: only .xlsx files "
        "(or .xlsx.gpg / .xlsx.pgp encrypted to the MASH key) are taken"
    )


def _decrypt(
    filename: str,
    data: bytes,
    method: AuthMethod,
    keyring: Keyring,
    passphrase: str | None,
    police: PoliceSection,
    max_bytes: int,
) -> Spreadsheet | RefusedFile:
    if police.mash_fingerprint is None:
        return RefusedFile(
            filename, "no MASH key is configured to decrypt it ([police] mash_fingerprint)"
        )
    result = keyring.gpg.decrypt(
        data,
        passphrase=passphrase,
        always_trust=True,  # the signer is judged against the pinned fingerprints below
        extra_args=["--max-output", str(max_bytes)],
    )
    lines = list(status_lines(result.stderr))
    keywords = {keyword for keyword, _ in lines}
    if "DECRYPTION_OKAY" not in keywords or "DECRYPTION_FAILED" in keywords:
        detail = "no secret key for it" if "NO_SECKEY" in keywords else _gpg_said(result.stderr)
        return RefusedFile(filename, f"it cannot be decrypted with the MASH key ({detail})")
    if not _integrity_protected(lines):
        return RefusedFile(filename, "it is not integrity-protected, so it could have been altered")
    decrypted_by = [args[1] for keyword, args in lines if keyword == "DECRYPTION_KEY"]
    if decrypted_by and normalise_fingerprint(decrypted_by[0]) != police.mash_fingerprint:
        return RefusedFile(filename, f"it is encrypted to key {decrypted_by[0]}, not the MASH key")
    # gpg stops at --max-output with an error but no status line of its own; an error that
    # is not about the signature (judged below) is that, or worse.
    if len(result.data) > max_bytes or (
        result.returncode != 0 and not keywords & _SIGNATURE_KEYWORDS
    ):
        return RefusedFile(
            filename,
            f"decrypting it failed or went past the {_size(max_bytes)} limit "
            f"({_gpg_said(result.stderr)})",
        )
    signature = signature_check(result.stderr, police_keys(police))
    if "pgp" not in method and not signature.passed:
        return RefusedFile(
            filename,
            f"{signature.reason}; a mail authenticated by DKIM alone needs an encrypted "
            "spreadsheet signed by a pinned police key",
        )
    return Spreadsheet(filename, bytes(result.data), True, signature.signer)


def _gpg_said(stderr: str) -> str:
    said = [line for line in stderr.splitlines() if line.startswith("gpg: ")]
    return said[-1].removeprefix("gpg: ") if said else "GnuPG gave no reason"


def _size(count: int) -> str:
    return f"{count / MIB:.1f} MB" if count >= MIB / 10 else f"{count} bytes"

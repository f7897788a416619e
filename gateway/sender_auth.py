"""Is this mail really from the police? Sender authentication of inbound mail (DESIGN.md
section 5, invariant 3).

A mail is accepted only when its From address is on the police allow-list **and** the mail
proves it, by the means `[police] authentication` asks for:

- **pgp**: an RFC 3156 OpenPGP signature by one of the pinned police keys, either
  `multipart/signed` (verified over the exact bytes of the signed part as they arrived) or
  `multipart/encrypted` to the MASH key and signed inside the encryption in one operation
  (RFC 3156 §6.2; the separately nested form of §6.1 is refused, as is inline PGP) —
  the signature machinery, shared with signed commands, is gateway/signed_mail.py;
- **dkim**: DKIM pass for the From domain (or a parent domain of it) and DMARC pass for it,
  in the `Authentication-Results` header (RFC 8601) that the trusted MASH mail server added;
- **either** one of them, or **both**.

Nothing here raises for anything a mail can contain: every outcome is a `SenderVerdict`,
and a refused one carries no content at all, so a spoofed mail can never feed a single row
to intake. The verdict's reason is written for the Navigator.

Decisions worth knowing:

- From must be one header holding one plain address (no group, no quoted or encoded local
  part, no domain literal, no display name that looks like another address), parsed by
  `email.headerregistry` with every defect fatal. The local part is compared
  case-insensitively, like the domain: the police mail server treats it so.
- A `Sender` header naming someone other than From (Outlook's "sent on behalf of") is
  accepted only when that address is on the allow-list too: a desk member sending from the
  shared desk mailbox is normal, a stranger sending "on behalf of" the desk is not.
- Only the **topmost** `Authentication-Results` header is read, and it must carry the
  trusted authserv-id. Every server prepends its header, so the topmost is the one the MASH
  server added last; a header further down, whatever authserv-id it claims, may have been
  written by the sender (RFC 8601 §5, §7.2). The MASH server must therefore add a header to
  every mail and write its DKIM and DMARC results into that one header (rspamd does);
  where DKIM and DMARC are two headers (OpenDKIM beside OpenDMARC) the mail is refused with
  a reason naming the missing result. Microsoft 365 writes its header without an
  authserv-id, so it can never be trusted here: there, use PGP.
- A DKIM signature with a body length limit (`l=`) leaves the rest of the body unsigned, so
  an attacker could append an attachment to a genuine police mail: it does not count.
- Each means proves the mail's origin on its own: in "either" mode a bad OpenPGP signature
  does not undo a DKIM pass (Outlook is known to re-encode signed mail on the way out).
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address, AddressHeader, BaseHeader
from email.message import EmailMessage
from typing import Literal

from gateway.config import PoliceSection
from gateway.errors import GatewayError
from gateway.keyring import Keyring
from gateway.signed_mail import (
    PinnedKeys,
    SignatureCheck,
    described_defect,
    open_signed,
    parse,
)

AuthMethod = Literal["pgp", "dkim", "pgp+dkim"]

# RFC 5322 dot-atom local part and a host name of at least two LDH labels: anything else
# (quoted strings, encoded words, domain literals, trailing dots) is refused outright.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$")
_ADDRESS_LIKE = re.compile(r"[@<>]")


class AuthenticationResultsError(GatewayError):
    """An `Authentication-Results` header does not follow RFC 8601's grammar (raised by
    `parse_authentication_results`; `authenticate` turns it into a refusal)."""


class _Refused(GatewayError):
    """A check of this module failed; `authenticate` turns it into a refused verdict."""


@dataclass(frozen=True)
class SenderVerdict:
    """Whether a mail is from an allow-listed police sender that proved it.

    `payload` is the content that was authenticated: the signed part of a
    `multipart/signed` mail, the decrypted entity of a signed-and-encrypted one, else the
    whole mail. It is None whenever `ok` is False: nothing of a refused mail is read.
    `method` says which means passed ("pgp+dkim" when both were checked and passed);
    `signer` is the pinned police key's primary fingerprint when a signature passed.
    """

    ok: bool
    reason: str
    sender: str | None
    method: AuthMethod | None = None
    signer: str | None = None
    payload: EmailMessage | None = None


@dataclass(frozen=True)
class AuthResult:
    """One `method=result` statement of an Authentication-Results header, with its
    properties ("header.d", "header.from", "smtp.mailfrom"…, lower-cased names)."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.properties if key == name), None)


@dataclass(frozen=True)
class AuthenticationResults:
    authserv_id: str
    results: tuple[AuthResult, ...]


def authenticate(
    raw: bytes, *, police: PoliceSection, keyring: Keyring, passphrase: str | None
) -> SenderVerdict:
    """Judge the mail `raw` (as received, headers and all) against `police`.

    `keyring` holds the pinned police public keys and, for mail encrypted to the MASH key,
    its secret key, unlocked with `passphrase`.
    """
    message = parse(raw)
    try:
        sender = _sender(message, police.senders)
    except _Refused as refused:
        return SenderVerdict(False, str(refused), None)
    content, pgp = _open(raw, message, police, keyring, passphrase)
    dkim = (
        _dkim(message, sender, police.trusted_authserv_id)
        if police.trusted_authserv_id is not None
        else SignatureCheck(False, "no trusted_authserv_id is configured for DKIM")
    )
    mode = police.authentication
    required = {"pgp": [pgp], "dkim": [dkim], "both": [pgp, dkim], "either": [pgp, dkim]}[mode]
    failed = [check for check in required if not check.passed]
    if failed and not (mode == "either" and len(failed) == 1):
        reasons = [check.reason for check in failed]
        return SenderVerdict(False, f"From {sender} is allow-listed but {_joined(reasons)}", sender)
    if content is None:
        return SenderVerdict(False, f"From {sender} is allow-listed but {pgp.reason}", sender)
    method: AuthMethod = (
        "pgp+dkim" if pgp.passed and dkim.passed else "pgp" if pgp.passed else "dkim"
    )
    proofs = [check.reason for check in (pgp, dkim) if check.passed]
    return SenderVerdict(
        True,
        f"From {sender}: {' and '.join(proofs)}",
        sender,
        method,
        pgp.signer if pgp.passed else None,
        content,
    )


def allow_listed(address: str, senders: Iterable[str]) -> bool:
    """Whether `address` is one of `senders` (full addresses, or "@domain" for a whole
    domain, not its subdomains), case-insensitively."""
    wanted = address.casefold()
    domain = wanted.rpartition("@")[2]
    for entry in senders:
        allowed = entry.strip().casefold()
        if allowed == wanted or (allowed.startswith("@") and allowed[1:] == domain):
            return True
    return False


def parse_authentication_results(value: str) -> AuthenticationResults:
    """Parse the value of one Authentication-Results header (RFC 8601 §2.2): comments,
    quoted strings, folding, several results, "; none". Property values are read leniently
    (up to white space or ';'), as header.b values often hold an unquoted '/' or '='."""
    scanner = _Scanner(value)
    authserv_id = scanner.value("an authserv-id")
    if scanner.peek().isdigit():
        version = scanner.token("a version")
        if version != "1":
            raise AuthenticationResultsError(f"unknown Authentication-Results version {version}")
    results: list[AuthResult] = []
    if scanner.at_end():
        raise AuthenticationResultsError(f"{authserv_id}: no results and no 'none'")
    while not scanner.at_end():
        scanner.expect(";")
        method = scanner.token("a method").lower()
        if method == "none" and not results and scanner.at_end():
            break
        if scanner.take("/"):
            scanner.token("a method version")
        scanner.expect("=")
        result = scanner.token(f"the result of {method}").lower()
        properties: list[tuple[str, str]] = []
        while scanner.peek() not in ("", ";"):
            name = scanner.token("a property").lower()
            scanner.expect("=")
            if name == "reason":
                scanner.value("a reason")
                continue
            if "." not in name.strip("."):
                raise AuthenticationResultsError(f"{method}: {name!r} is not ptype.property")
            properties.append((name, scanner.property_value()))
        results.append(AuthResult(method, result, tuple(properties)))
    return AuthenticationResults(authserv_id, tuple(results))


# -- From and Sender ------------------------------------------------------------------


def _sender(message: EmailMessage, senders: Sequence[str]) -> str:
    """The From address, strictly parsed and on the allow-list, with Sender checked."""
    froms = _raw_headers(message, "From")
    if len(froms) != 1:
        raise _Refused(
            "the mail has no From header"
            if not froms
            else f"the mail has {len(froms)} From headers"
        )
    address = _strict_address(froms[0], "From")
    if not allow_listed(address, senders):
        raise _Refused(f"From {address} is not on the police allow-list ([police] senders)")
    others = _raw_headers(message, "Sender")
    if len(others) > 1:
        raise _Refused(
            f"From {address} is allow-listed but the mail has {len(others)} Sender headers"
        )
    if others:
        on_behalf = _strict_address(others[0], "Sender")
        if on_behalf.casefold() != address.casefold() and not allow_listed(on_behalf, senders):
            raise _Refused(
                f"From {address} is allow-listed but the mail was sent on its behalf by "
                f"{on_behalf} (Sender header), who is not"
            )
    return address


def _raw_headers(message: EmailMessage, name: str) -> list[str]:
    # The values as transmitted (unfolded), not decoded: a reason must show what was sent.
    wanted = name.lower()
    return [
        "".join(value.splitlines()) for key, value in message.raw_items() if key.lower() == wanted
    ]


def _strict_address(raw: str, name: str) -> str:
    # 8-bit header bytes arrive as surrogates; show them as the characters they probably are.
    shown = repr(raw.strip().encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    header = email.policy.default.header_factory(name, raw)
    if not isinstance(header, AddressHeader) or not isinstance(header, BaseHeader):
        raise _Refused(f"the {name} header {shown} cannot be read as an address")
    if header.defects:
        raise _Refused(
            f"the {name} header {shown} is malformed ({described_defect(header.defects[0])})"
        )
    groups = header.groups
    if len(groups) != 1 or groups[0].display_name is not None:
        raise _Refused(f"the {name} header {shown} must hold exactly one address")
    (group,) = groups
    if len(group.addresses) != 1:
        raise _Refused(f"the {name} header {shown} must hold exactly one address")
    (address,) = group.addresses
    assert isinstance(address, Address)
    if (
        not _LOCAL_PART.match(address.username)
        or "=?" in address.username  # an encoded word, which some clients show decoded
        or not _DOMAIN.match(address.domain)
    ):
        raise _Refused(f"the {name} header {shown} is not a plain mailbox address")
    shown_name = address.display_name
    if _ADDRESS_LIKE.search(shown_name) and shown_name.casefold() != address.addr_spec.casefold():
        # '"da-desk@police.example.org" <evil@x.example>' shows the police address to a
        # person reading the mail, whether spelled out or hidden in an encoded word. The
        # address as its own display name is what Exchange writes for a bare address.
        raise _Refused(f"the {name} header {shown} has a display name that looks like an address")
    return str(address.addr_spec)


# -- OpenPGP ----------------------------------------------------------------------------


def police_keys(police: PoliceSection) -> PinnedKeys:
    """The pinned police keys, as gateway/signed_mail.py judges signatures against them."""
    return PinnedKeys(police.fingerprints, "police key", "[police] fingerprints")


def _open(
    raw: bytes,
    message: EmailMessage,
    police: PoliceSection,
    keyring: Keyring,
    passphrase: str | None,
) -> tuple[EmailMessage | None, SignatureCheck]:
    """The content to hand on (None: there is none that can be read) and the OpenPGP check."""
    if message.get_content_type() == "multipart/encrypted" and police.mash_fingerprint is None:
        return None, SignatureCheck(
            False,
            "the mail is encrypted and no MASH key is configured to decrypt it "
            "([police] mash_fingerprint)",
        )
    opened = open_signed(
        raw,
        pinned=police_keys(police),
        keyring=keyring,
        passphrase=passphrase,
        decrypting_key="the MASH key",
    )
    return opened.content, opened.check


# -- DKIM and DMARC, as the trusted server saw them -------------------------------------


def _dkim(message: EmailMessage, sender: str, trusted: str) -> SignatureCheck:
    domain = sender.rpartition("@")[2].casefold()
    headers = [
        value for name, value in message.raw_items() if name.lower() == "authentication-results"
    ]
    if not headers:
        return SignatureCheck(False, f"the mail has no Authentication-Results from {trusted}")
    try:
        top = parse_authentication_results(str(headers[0]))
    except AuthenticationResultsError as exc:
        return SignatureCheck(False, f"its topmost Authentication-Results cannot be read: {exc}")
    if top.authserv_id.casefold() != trusted.casefold():
        return SignatureCheck(
            False,
            f"its topmost Authentication-Results is from {top.authserv_id}, not from {trusted} "
            "(headers further down, whoever they claim to be from, may be the sender's own)",
        )
    source = f"the Authentication-Results from {trusted}"
    dkim = [r for r in top.results if r.method == "dkim"]
    aligned = [r for r in dkim if r.result == "pass" and _aligned(_signing_domain(r), domain)]
    if not aligned:
        seen = ", ".join(f"dkim={r.result} header.d={_signing_domain(r) or None}" for r in dkim)
        return SignatureCheck(
            False, f"{source} show no DKIM pass for {domain} ({seen or 'no dkim result'})"
        )
    dmarc = [r for r in top.results if r.method == "dmarc"]
    for_domain = [r for r in dmarc if _header_from(r) == domain]
    if not for_domain or any(r.result != "pass" for r in for_domain):
        seen = ", ".join(f"dmarc={r.result} header.from={r.get('header.from')}" for r in dmarc)
        return SignatureCheck(
            False, f"{source} show no DMARC pass for {domain} ({seen or 'no dmarc result'})"
        )
    signing_domains = {_signing_domain(r) for r in aligned}
    for value in message.get_all("DKIM-Signature") or []:
        tags = _dkim_tags(str(value))
        if tags.get("d", "").casefold() in signing_domains and "l" in tags:
            return SignatureCheck(
                False,
                f"its DKIM signature by {tags['d']} covers only the first {tags['l']} bytes "
                "of the body (l=), so the rest could have been added by anyone",
            )
    return SignatureCheck(
        True, f"DKIM and DMARC pass for {domain} in the Authentication-Results from {trusted}"
    )


def _aligned(signing: str, author: str) -> bool:
    # The signing domain is the From domain or one of its parents (DMARC's relaxed
    # alignment), never a bare top-level domain.
    signing = signing.casefold().rstrip(".")
    return "." in signing and (author == signing or author.endswith("." + signing))


def _signing_domain(result: AuthResult) -> str:
    # Gmail reports only header.i; RFC 6376 §3.5 makes i= the d= domain or one of its
    # subdomains, so when i= aligns with From, the signing domain does too.
    given = result.get("header.d") or (result.get("header.i") or "").rpartition("@")[2]
    return given.casefold()


def _header_from(result: AuthResult) -> str:
    return (result.get("header.from") or "").rpartition("@")[2].casefold()


def _dkim_tags(value: str) -> dict[str, str]:
    # RFC 6376 §3.2 tag-list; folding white space inside values is irrelevant to d= and l=.
    tags: dict[str, str] = {}
    for item in value.split(";"):
        name, equals, content = item.partition("=")
        if equals:
            tags[name.strip().lower()] = "".join(content.split())
    return tags


def _joined(reasons: Sequence[str]) -> str:
    shared = "the mail has "
    if len(reasons) > 1 and all(reason.startswith(shared) for reason in reasons):
        return shared + " and ".join(reason.removeprefix(shared) for reason in reasons)
    return " and ".join(reasons)


class _Scanner:
    """A cursor over an RFC 8601 header value that skips comments and white space (CFWS)."""

    _TOKEN = re.compile(r'[^\s()<>@,;:\\"/\[\]?=]+')  # RFC 2045 token; '.' is allowed
    _LENIENT = re.compile(r'[^\s();"]+')

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _cfws(self) -> None:
        text = self.text
        while self.pos < len(text):
            if text[self.pos].isspace():
                self.pos += 1
            elif text[self.pos] == "(":
                depth = 0
                while self.pos < len(text):
                    char = text[self.pos]
                    self.pos += 2 if char == "\\" else 1
                    depth += {"(": 1, ")": -1}.get(char, 0)
                    if depth == 0:
                        break
                if depth:
                    raise AuthenticationResultsError("a comment is not closed")
            else:
                return

    def peek(self) -> str:
        self._cfws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.peek() == ""

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.take(char):
            found = self.peek() or "the end"
            raise AuthenticationResultsError(f"expected {char!r} at {found!r} ({self.pos})")

    def token(self, what: str) -> str:
        return self._match(self._TOKEN, what)

    def value(self, what: str) -> str:
        return self._quoted() if self.peek() == '"' else self.token(what)

    def property_value(self) -> str:
        return self._quoted() if self.peek() == '"' else self._match(self._LENIENT, "a value")

    def _match(self, pattern: re.Pattern[str], what: str) -> str:
        self._cfws()
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise AuthenticationResultsError(f"expected {what} at position {self.pos}")
        self.pos = found.end()
        return found.group()

    def _quoted(self) -> str:
        self.pos += 1  # the opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
                char = self.text[self.pos]
            out.append(char)
            self.pos += 1
        raise AuthenticationResultsError("a quoted string is not closed")

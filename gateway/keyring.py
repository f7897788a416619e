"""The gateway's GnuPG home: which keys it holds, and whether a pinned key may receive mail.

A contact's key is found only by the full fingerprint pinned in the contacts list, never by
email or user ID (Schleuder's rule): a key that merely carries the right address is an
attacker's cheapest trick. Whether a key is usable is decided at an injected instant, not
by GnuPG's view of the wall clock, so 09:00 tomorrow can be checked today.

GnuPG runs quiet and offline: `--batch`, no gpg.conf, no dirmngr, no key retrieval, no
`encrypt-to` from anywhere but the caller, and a loopback pinentry so nothing ever waits
for a person at a terminal.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import gnupg  # type: ignore[import-untyped]

from gateway.errors import GatewayError
from gateway.model import Contact, ExceptionKind

# gpg-agent listens on "<home>/S.gpg-agent.browser" (the longest of its sockets), and a
# Unix socket path holds at most 107 bytes plus its NUL: longer homes fail at the first
# signature with an obscure "socket name too long".
_SOCKET_LIMIT = 107
_LONGEST_SOCKET = "/S.gpg-agent.browser"
MAX_HOME_LENGTH = _SOCKET_LIMIT - len(_LONGEST_SOCKET)

KEY_FILE_SUFFIXES = (".asc", ".pub", ".gpg")

GPG_OPTIONS = (
    "--no-options",  # a gpg.conf in the home must not add recipients or keyservers
    "--disable-dirmngr",  # network is forbidden: no keyserver, no WKD, no CRL fetch
    "--no-auto-key-retrieve",
    "--no-auto-key-locate",
    "--no-encrypt-to",  # per-recipient encryption: nobody else may read a notification
    "--pinentry-mode",
    "loopback",  # a passphrase comes from the caller or not at all; no prompt ever
)

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
_EMAIL_IN_UID = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")


class KeyringError(GatewayError):
    """The gateway's GnuPG home cannot be used: its permissions are open to others, its path
    is too long for gpg-agent's socket, GnuPG is not installed, a key listing failed, or a key
    asked for (to export) is not in it."""


class KeyImportRefused(KeyringError):
    """A key file must not be imported: it holds a secret key or no key at all, or a key
    fails the checks for the contact it is for (gateway/key_import.py: its user ID is not
    the contact's address, it cannot encrypt, it has expired or been revoked, or it is not
    the pinned or confirmed fingerprint).

    Nothing is imported when any file or key is refused.
    """


class KeyStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"
    EXPIRED = "expired"
    REVOKED = "revoked"
    NO_ENCRYPTION_KEY = "no_encryption_key"

    @property
    def exception_kind(self) -> ExceptionKind | None:
        """The exception a notification gets when this is its only contact's key status."""
        return _EXCEPTION_KINDS[self]


_EXCEPTION_KINDS: dict[KeyStatus, ExceptionKind | None] = {
    KeyStatus.OK: None,
    KeyStatus.MISSING: ExceptionKind.NO_KEY,
    KeyStatus.MISMATCH: ExceptionKind.KEY_MISMATCH,
    KeyStatus.EXPIRED: ExceptionKind.KEY_EXPIRED,
    KeyStatus.REVOKED: ExceptionKind.KEY_REVOKED,
    KeyStatus.NO_ENCRYPTION_KEY: ExceptionKind.NO_KEY,
}


@dataclass(frozen=True)
class SubkeyInfo:
    fingerprint: str
    capabilities: str  # this subkey's own usages: e (encrypt), s (sign), a (authenticate)
    created: datetime
    expires: datetime | None
    revoked: bool

    def valid_at(self, at: datetime) -> bool:
        return not self.revoked and (self.expires is None or self.expires > at)


@dataclass(frozen=True)
class KeyInfo:
    """One OpenPGP key (certificate) in the keyring, as GnuPG lists it."""

    fingerprint: str
    user_ids: tuple[str, ...]
    created: datetime
    expires: datetime | None  # the primary key's expiry
    revoked: bool
    disabled: bool
    capabilities: str  # the primary key's own usages, lower case
    subkeys: tuple[SubkeyInfo, ...]

    @property
    def emails(self) -> frozenset[str]:
        """The addresses in the user IDs, case-folded (for telling MISSING from MISMATCH)."""
        found = set()
        for uid in self.user_ids:
            match = _EMAIL_IN_UID.search(uid)
            address = match.group(1) if match else uid.strip()
            if "@" in address:
                found.add(address.casefold())
        return frozenset(found)

    def encryption_keys(self, at: datetime) -> tuple[SubkeyInfo, ...]:
        """The unrevoked, unexpired encryption-capable (sub)keys at `at`."""
        own = SubkeyInfo(self.fingerprint, self.capabilities, self.created, self.expires, False)
        candidates = (own, *self.subkeys)
        return tuple(k for k in candidates if "e" in k.capabilities and k.valid_at(at))

    def status(self, at: datetime) -> KeyStatus:
        """OK, REVOKED, EXPIRED or NO_ENCRYPTION_KEY at the instant `at`."""
        _require_aware(at)
        if self.revoked:
            return KeyStatus.REVOKED
        if self.expires is not None and self.expires <= at:
            return KeyStatus.EXPIRED
        if self.disabled or not self.encryption_keys(at):
            return KeyStatus.NO_ENCRYPTION_KEY
        return KeyStatus.OK

    def usable_until(self, at: datetime) -> datetime | None:
        """When mail can no longer be encrypted to this key (None: no expiry), seen from `at`.

        The earlier of the primary key's expiry and the last expiry of its encryption keys:
        a key whose encryption subkey lapses in March is of no use in April, whatever the
        primary key says.
        """
        expiries = [k.expires for k in self.encryption_keys(at)]
        last = None if not expiries or None in expiries else max(e for e in expiries if e)
        ends = [e for e in (self.expires, last) if e is not None]
        return min(ends) if ends else None


@dataclass(frozen=True)
class KeyCheck:
    """Whether the key pinned for one contact can receive a notification at one instant.

    `fingerprint` is the pinned one; `user_ids` and `expires` describe the key found under it
    (empty and None when none was); `expires` is when encryption to it stops working.
    """

    status: KeyStatus
    fingerprint: str
    user_ids: tuple[str, ...]
    expires: datetime | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.status is KeyStatus.OK

    @property
    def exception_kind(self) -> ExceptionKind | None:
        return self.status.exception_kind


@dataclass(frozen=True)
class ImportedKey:
    """One key found in an imported file, as it now stands in the keyring."""

    source: Path
    key: KeyInfo
    outcome: str  # "new", "updated" or "unchanged"

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self.key.user_ids

    @property
    def expires(self) -> datetime | None:
        return self.key.expires


class Keyring:
    """A GnuPG home opened by `open_keyring`. Key listings are read once and cached until
    the keyring is changed through this object (or `refresh` is called), so checking every
    contact of a day's notifications costs one gpg call, not one per message."""

    def __init__(self, home: Path, gpg: gnupg.GPG) -> None:
        self.home = home
        self.gpg = gpg
        self._keys: dict[str, KeyInfo] | None = None

    def __enter__(self) -> Keyring:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop this home's gpg-agent, which would otherwise outlive the process."""
        stop_agent(self.home)

    def refresh(self) -> None:
        """Forget the cached key listing (after the home was changed from outside)."""
        self._keys = None

    def keys(self) -> list[KeyInfo]:
        """Every public key in the home, by fingerprint."""
        return [self._listing()[fpr] for fpr in sorted(self._listing())]

    def key(self, fingerprint: str) -> KeyInfo | None:
        """The key whose primary fingerprint is exactly `fingerprint` (spaces and case aside)."""
        return self._listing().get(normalise_fingerprint(fingerprint))

    def public_key(self, fingerprint: str) -> str:
        """The armored public key of `fingerprint` (e.g. the Navigator's, to hand to a school
        that will verify its signatures); KeyringError when the home does not hold it."""
        armored = str(self.gpg.export_keys(normalise_fingerprint(fingerprint)))
        if not armored.strip():
            raise KeyringError(f"the key {fingerprint} is not in the GnuPG home {self.home}")
        return armored

    def check(self, fingerprint: str, *, email: str, at: datetime) -> KeyCheck:
        """Whether the key pinned as `fingerprint` for the contact `email` can receive at `at`.

        The key is looked up by the full pinned fingerprint only; `email` serves solely to
        tell a missing key from one that was replaced by another (MISMATCH).
        """
        _require_aware(at)
        pin = normalise_fingerprint(fingerprint)
        key = self._listing().get(pin) if _FINGERPRINT.match(pin) else None
        if key is None:
            return self._not_found(fingerprint, pin, email)
        status = key.status(at)
        when = _shown(at)
        reasons = {
            KeyStatus.OK: f"key {pin} can receive at {when}",
            KeyStatus.REVOKED: f"key {pin} has been revoked by its owner",
            KeyStatus.EXPIRED: f"key {pin} expired on {_shown(key.expires)}",
            KeyStatus.NO_ENCRYPTION_KEY: (
                f"key {pin} is disabled in the gateway's keyring"
                if key.disabled
                else f"key {pin} has no valid encryption subkey at {when}"
            ),
        }
        expires = key.expires if status is KeyStatus.EXPIRED else key.usable_until(at)
        return KeyCheck(status, pin, key.user_ids, expires, reasons[status])

    def _not_found(self, given: str, pin: str, email: str) -> KeyCheck:
        if not pin:
            reason = "no fingerprint is pinned for this contact"
        elif not _FINGERPRINT.match(pin):
            reason = f"the pinned fingerprint {given!r} is not 40 hexadecimal digits"
        else:
            reason = f"no key with the pinned fingerprint {pin} is in the keyring"
        wanted = email.strip().casefold()
        others = sorted(k.fingerprint for k in self._listing().values() if wanted in k.emails)
        if not pin and others:
            # Without a pin there is nothing to mismatch: the school's key may well be one
            # of these, but only a fingerprint confirmed with the school makes it theirs.
            return KeyCheck(
                KeyStatus.MISSING,
                pin,
                (),
                None,
                f"{reason}; the keyring has {', '.join(others)} for {email}: confirm the "
                "fingerprint with the school and pin it in the contacts list",
            )
        if wanted and others:
            return KeyCheck(
                KeyStatus.MISMATCH,
                pin,
                (),
                None,
                f"{reason}; the keyring has {', '.join(others)} for {email}, "
                "which is not the pinned key: confirm the new fingerprint with the school",
            )
        return KeyCheck(
            KeyStatus.MISSING, pin, (), None, f"{reason}, nor any key for {email or '(none)'}"
        )

    def read_key_files(self, path: Path) -> dict[Path, tuple[KeyInfo, ...]]:
        """The public keys in the file `path`, or in every armored or binary key file (*.asc,
        *.pub, *.gpg) of the folder `path`, as GnuPG reads them — nothing is imported.

        If any file holds a secret key or no key at all, `KeyImportRefused` names each.
        """
        if path.is_dir():
            files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in KEY_FILE_SUFFIXES
            )
        elif path.is_file():
            files = [path]
        else:
            raise KeyringError(f"{path} is neither a key file nor a folder of key files")
        found: dict[Path, tuple[KeyInfo, ...]] = {}
        refused = []
        for file in files:
            data = file.read_bytes()
            problem = self._refusal(file, data)
            if problem is not None:
                refused.append(problem)
            else:
                found[file] = tuple(_key_info(raw) for raw in self.gpg.scan_keys_mem(data))
        if refused:
            raise KeyImportRefused(
                f"nothing was imported from {path}:\n" + "\n".join(f"  {p}" for p in refused)
            )
        return found

    def import_files(self, files: Iterable[Path]) -> list[ImportedKey]:
        """Import the public keys of `files` (read and checked with `read_key_files`)."""
        found: list[tuple[Path, str, str]] = []
        for path in files:
            found.extend(
                (path, fpr, outcome) for fpr, outcome in self._import(path, path.read_bytes())
            )
        self.refresh()
        listing = self._listing()
        return [ImportedKey(path, listing[fpr], outcome) for path, fpr, outcome in found]

    def _refusal(self, path: Path, data: bytes) -> str | None:
        scanned = self.gpg.scan_keys_mem(data)
        # The armor line is checked too, so a secret key GnuPG cannot parse is still refused.
        if b"PRIVATE KEY BLOCK" in data or any(entry["type"] == "sec" for entry in scanned):
            return f"{path}: holds a secret key; only public keys go into the gateway's keyring"
        if not any(entry["type"] == "pub" for entry in scanned):
            return f"{path}: holds no OpenPGP public key GnuPG can read"
        return None

    def _import(self, path: Path, data: bytes) -> Iterator[tuple[str, str]]:
        result = self.gpg.import_keys(data)
        seen = False
        for keyword, args in status_lines(result.stderr):
            if keyword == "IMPORT_OK":
                flags, fpr = int(args[0]), args[1]
                seen = True
                yield fpr, "new" if flags & 1 else ("updated" if flags else "unchanged")
            elif keyword == "IMPORT_PROBLEM":
                raise KeyringError(f"{path}: GnuPG could not import a key (problem {args[0]})")
        if not seen or result.returncode != 0:
            raise KeyringError(f"{path}: GnuPG imported nothing: {_last_error(result.stderr)}")

    def _listing(self) -> dict[str, KeyInfo]:
        if self._keys is None:
            raw = self.gpg.list_keys()
            if raw.returncode not in (0, None):
                raise KeyringError(f"cannot list the keys in {self.home}: {raw.stderr.strip()}")
            self._keys = {info.fingerprint: info for info in map(_key_info, raw)}
        return self._keys


def open_keyring(home: Path) -> Keyring:
    """Open (creating if need be, mode 0700) the GnuPG home at `home`."""
    home = home.expanduser().absolute()
    length = len(os.fsencode(home))
    if length > MAX_HOME_LENGTH:
        raise KeyringError(
            f"the GnuPG home {home} is {length} bytes long; gpg-agent's socket inside it must "
            f"fit in {_SOCKET_LIMIT} bytes, so the home may be at most {MAX_HOME_LENGTH}: "
            "set [gnupg] home to a shorter path (e.g. /var/lib/encompass/gnupg)"
        )
    if home.exists():
        if not home.is_dir():
            raise KeyringError(f"the GnuPG home {home} exists and is not a directory")
        mode = stat.S_IMODE(home.stat().st_mode)
        if mode & 0o077:
            raise KeyringError(
                f"the GnuPG home {home} has mode {mode:04o}: other users could read the "
                f"Navigator's secret key; run `chmod 700 {home}`"
            )
    else:
        home.mkdir(parents=True)
        home.chmod(0o700)  # mkdir's mode is filtered by the umask
    try:
        gpg = gnupg.GPG(gnupghome=str(home), options=list(GPG_OPTIONS))
    except OSError as exc:
        raise KeyringError(
            f"GnuPG cannot be run ({exc}); install it: apt-get install gnupg"
        ) from exc
    # python-gnupg decodes status lines as Latin-1 by default; user IDs are UTF-8.
    gpg.encoding = "utf-8"
    return Keyring(home, gpg)


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent (and any other GnuPG daemon) serving `home`."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is not None:
        subprocess.run(
            [gpgconf, "--homedir", str(home), "--kill", "all"],
            check=False,
            capture_output=True,
        )


def contacts_served(key: KeyInfo | str, contacts: Iterable[Contact]) -> list[Contact]:
    """The contacts whose pinned fingerprint is this key's."""
    fingerprint = normalise_fingerprint(key if isinstance(key, str) else key.fingerprint)
    return [c for c in contacts if normalise_fingerprint(c.fingerprint) == fingerprint]


def normalise_fingerprint(text: str) -> str:
    """Upper case, without the spaces GnuPG prints in groups of four."""
    return "".join(text.split()).upper()


def spaced_fingerprint(fingerprint: str) -> str:
    """'ABCD 1234 …': the fingerprint in groups of four, as a person reads it aloud or checks
    it by eye against what their mail program shows."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def status_lines(stderr: str) -> Iterator[tuple[str, list[str]]]:
    """The `[GNUPG:] KEYWORD args…` status lines of a gpg run (python-gnupg's stderr)."""
    for line in stderr.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[9:].split()
            yield keyword, args


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line and not line.startswith("[GNUPG:]")]
    return lines[-1] if lines else "no message from GnuPG"


def _key_info(raw: dict[str, Any]) -> KeyInfo:
    subkey_info: dict[str, dict[str, Any]] = raw.get("subkey_info", {})
    # A key file read without importing it (scan_keys_mem) names each subkey's fingerprint
    # only in "subkeys": [keyid, keygrip, fingerprint, …].
    scanned = {entry[0]: entry[2] for entry in raw.get("subkeys", []) if len(entry) > 2}
    subkeys = tuple(
        SubkeyInfo(
            fingerprint=info.get("fingerprint") or scanned.get(keyid, ""),
            capabilities=_own_capabilities(info["cap"]),
            created=_instant(info["date"]) or datetime.fromtimestamp(0, UTC),
            expires=_instant(info["expires"]),
            revoked=info["trust"] == "r",
        )
        for keyid, info in subkey_info.items()
    )
    return KeyInfo(
        fingerprint=raw["fingerprint"],
        user_ids=tuple(raw["uids"]),
        created=_instant(raw["date"]) or datetime.fromtimestamp(0, UTC),
        expires=_instant(raw["expires"]),
        revoked=raw["trust"] == "r",
        disabled="D" in raw["cap"],
        capabilities=_own_capabilities(raw["cap"]),
        subkeys=subkeys,
    )


def _own_capabilities(field: str) -> str:
    # Lower-case letters are the (sub)key's own usages; upper-case ones summarise the key.
    return "".join(c for c in field if c.islower())


def _instant(field: str) -> datetime | None:
    # --fixed-list-mode gives seconds since the epoch; empty means "never".
    return datetime.fromtimestamp(int(field), UTC) if field else None


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("key checks need a timezone-aware instant")


def _shown(at: datetime | None) -> str:
    return "never" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

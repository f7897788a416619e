"""Personal data at rest: sealed with the gateway's own storage key before it reaches SQLite.

The state database holds what the police sent about children (decision records, notification
content, the stored workbooks). A copy of the database file — a backup, a disk image, a file
left behind — must reveal none of it, so those values are stored as AES-256-GCM ciphertext
under a 256-bit storage key that lives outside the database (a secret file or environment
variable; see `[state] storage_key`). Each value gets a fresh random nonce; GCM's tag makes
a value edited in the file fail to open instead of yielding altered data.

The key is used through two SQL functions registered on every state connection, so the
modules that own a table keep writing plain SQL: `INSERT … VALUES (seal(?))` and
`SELECT unseal(content)`. A sealed value remembers whether it was text or bytes.
"""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import StateError

# Magic + format version, then one byte saying what the plaintext was.
_MAGIC = b"EGS1"
_TEXT = b"t"
_BYTES = b"b"
_NONCE_BYTES = 12
KEY_BYTES = 32


class StorageKeyError(StateError):
    """Raised when the storage key is missing, malformed, or does not open a sealed value
    (the wrong key for this database, or a value altered in the file)."""


@dataclass(frozen=True)
class StorageKey:
    """The 256-bit key personal data at rest is sealed with."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise StorageKeyError(
                f"the storage key must be {KEY_BYTES} bytes (base64, 44 characters);"
                f" this one is {len(self.secret)} bytes"
            )

    @classmethod
    def from_text(cls, text: str, *, source: str) -> StorageKey:
        """The key as written in a secret file or variable: base64 of 32 random bytes."""
        try:
            secret = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StorageKeyError(f"{source}: the storage key is not base64: {exc}") from exc
        try:
            return cls(secret)
        except StorageKeyError as exc:
            raise StorageKeyError(f"{source}: {exc}") from exc

    @classmethod
    def generate(cls) -> StorageKey:
        return cls(os.urandom(KEY_BYTES))

    def text(self) -> str:
        return base64.b64encode(self.secret).decode("ascii")

    def seal(self, value: str | bytes | None) -> bytes | None:
        if value is None:
            return None
        kind, plain = (_TEXT, value.encode("utf-8")) if isinstance(value, str) else (_BYTES, value)
        header = _MAGIC + kind
        nonce = os.urandom(_NONCE_BYTES)
        # The header is authenticated too: flipping "text" to "bytes" fails to open.
        return header + nonce + AESGCM(self.secret).encrypt(nonce, plain, header)

    def unseal(self, value: str | bytes | None) -> str | bytes | None:
        """The plaintext of a sealed value. NULL and an empty value (what a purge leaves)
        come back as they are; anything else that is not sealed is refused, so a writer that
        forgot `seal()` is caught at once rather than leaving data in the clear unnoticed."""
        if value is None or value in (b"", ""):
            return value
        if not isinstance(value, bytes) or not is_sealed(value):
            raise StorageKeyError("a value that should be sealed is stored in the clear")
        header, nonce = value[:5], value[5 : 5 + _NONCE_BYTES]
        try:
            plain = AESGCM(self.secret).decrypt(nonce, value[5 + _NONCE_BYTES :], header)
        except InvalidTag as exc:
            raise StorageKeyError(
                "a sealed value does not open with this storage key: the key is not this"
                " database's, or the value was altered"
            ) from exc
        return plain.decode("utf-8") if header[4:5] == _TEXT else plain


def is_sealed(value: object) -> bool:
    return isinstance(value, bytes) and value.startswith(_MAGIC) and len(value) > 5 + _NONCE_BYTES


def key_file_beside(database: Path) -> Path:
    """Where the generated key lives when the configuration names none."""
    return database.parent / "storage.key"


def load_or_create(path: Path) -> StorageKey:
    """The key in `path`, generating it (owner-only permissions) on first use."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            return StorageKey.from_text(path.read_text(encoding="ascii"), source=str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageKeyError(f"cannot read the storage key {path}: {exc}") from exc
    except OSError as exc:
        raise StorageKeyError(f"cannot create the storage key {path}: {exc}") from exc
    key = StorageKey.generate()
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key.text() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def register(conn: sqlite3.Connection, key: StorageKey) -> None:
    """Make `seal(x)` and `unseal(x)` available to SQL on this connection."""
    conn.create_function("seal", 1, key.seal, deterministic=False)
    conn.create_function("unseal", 1, key.unseal, deterministic=True)

"""The demo's mail world: an in-process SMTP server on loopback standing in for every
school's mail server, and the schools reading what it received.

It accepts whatever the gateway submits and files each message, byte for byte as it
arrived, as `NNN.eml` in one folder, with `index.csv` beside it naming each file's envelope
sender and recipients (the envelope is not in the message itself). It adds no headers of
its own: what is on disk is exactly what left the gateway.
"""

from __future__ import annotations

import csv
import email.policy
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.keyring import open_keyring
from gateway.pgpmime import open_sealed

HOST = "127.0.0.1"
INDEX = "index.csv"


@dataclass(frozen=True)
class Delivered:
    """One message the server accepted, and where it was filed."""

    file: Path
    mail_from: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class ReadCopy:
    """One received message as its recipient reads it: decrypted with their own key."""

    eml: Path
    recipient: str
    message_id: str
    text: Path  # the decrypted text part
    signed_by_navigator: bool  # a valid signature by the Navigator's key


class MailWorld:
    """An aiosmtpd server on 127.0.0.1 filing every accepted message under `folder`.

        with MailWorld(workspace / "mail") as world:
            ...  # submit to (world.host, world.port), plaintext (loopback only)
            world.delivered

    Stopped on leaving the `with` block, whatever happened inside it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = HOST
        self.port = _free_port()
        self._delivered: list[Delivered] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def delivered(self) -> list[Delivered]:
        with self._lock:
            return list(self._delivered)

    def start(self) -> MailWorld:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / INDEX).open("w", encoding="utf-8", newline="") as index:
            csv.writer(index).writerow(("file", "mail_from", "rcpt_to"))
        # A fixed server name: without one aiosmtpd asks DNS for this host's FQDN, which
        # can stall for seconds on a machine without a resolver.
        controller = Controller(
            _Handler(self._file),
            hostname=self.host,
            port=self.port,
            server_hostname="mx.example.org",
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and end the server's thread."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> MailWorld:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _file(self, mail_from: str, recipients: tuple[str, ...], data: bytes) -> None:
        with self._lock:
            path = self.folder / f"{len(self._delivered) + 1:03d}.eml"
            path.write_bytes(data)
            with (self.folder / INDEX).open("a", encoding="utf-8", newline="") as index:
                csv.writer(index).writerow((path.name, mail_from, " ".join(recipients)))
            self._delivered.append(Delivered(path, mail_from, recipients))


class _Handler:
    """aiosmtpd's DATA hook: file the message, then say 250 (so the gateway's `sent` is
    recorded only for a message that is really on disk)."""

    def __init__(self, file: Callable[[str, tuple[str, ...], bytes], None]) -> None:
        self.file = file

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content
        if data is None:
            return "554 5.6.0 no message data"
        self.file(envelope.mail_from or "", tuple(envelope.rcpt_tos), data)
        return "250 2.0.0 delivered to the school's mailbox"


def read_received(
    delivered: Sequence[Delivered], *, home: Path, navigator: str, folder: Path
) -> list[ReadCopy]:
    """Open every delivered message with the secret keys in `home` (the schools' world),
    check it is signed by the key `navigator`, and keep its text part as `folder`/NNN.txt.

    Raises gateway.pgpmime.OpeningError for a message that is not PGP/MIME or cannot be
    decrypted there: in the demo that would be the gateway's fault, and must show.
    """
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    with open_keyring(home) as keyring:
        for message in delivered:
            raw = message.file.read_bytes()
            opened = open_sealed(keyring, raw)
            body = opened.inner.get_body(preferencelist=("plain",))
            text = folder / message.file.with_suffix(".txt").name
            text.write_text(str(body.get_content()) if body else "", encoding="utf-8")
            headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
            copies.append(
                ReadCopy(
                    eml=message.file,
                    recipient=", ".join(message.recipients),
                    message_id=str(headers.get("Message-ID", "")),
                    text=text,
                    signed_by_navigator=opened.signature_valid
                    and opened.signer_fingerprint == navigator,
                )
            )
    return copies


def _free_port() -> int:
    # aiosmtpd needs the port before it listens (it connects to itself to start up), so one
    # is found by binding port 0 and letting it go; loopback-only, so a clash is unlikely.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port

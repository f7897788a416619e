"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, recording what it accepts and
misbehaving on request.

    with SmtpSink() as sink:                     # plaintext, any free port
        sink.fail("RCPT", "450 4.2.1 busy", times=2)
        sink.fail("DATA", "554 5.7.1 refused", recipient="dsl@school.example.org")
        ...                                      # send through sink.smtp_section()
        sink.received                            # [Received(mail_from, rcpt_tos, data, …)]
        sink.stop(); sink.start()                # down, then back on the SAME port

`SmtpSink(tls="starttls", certificate=make_certificate(dir))` requires STARTTLS before any
mail command; `tls="implicit"` speaks TLS from the first byte; `login=("user", "pw")`
requires AUTH (offered only under TLS, as a real submission server does);
`xoauth2=("user", "token")` requires AUTH and offers XOAUTH2, accepting that bearer token
for that user (set `sink.xoauth2` again to accept another), refusing any other the way
Microsoft 365 does: a 334 challenge with a JSON error, then 535.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from gateway.config import SmtpSection

HOST = "127.0.0.1"
Command = Literal["MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class Received:
    """One message the sink accepted (replied 250 to its DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int  # 1 for the sink's first connection, 2 for the next, …
    tls: bool


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, its own CA."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(directory: Path) -> Certificate:
    """Generate a certificate with the `openssl` command (Debian package openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate = Certificate(directory / "sink-cert.pem", directory / "sink-key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(certificate.key), "-out", str(certificate.cert),
            "-days", "2", "-subj", f"/CN={HOST}",
            "-addext", f"subjectAltName=IP:{HOST},DNS:localhost",
        ],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return certificate


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class _Fault:
    command: Command
    reply: str
    recipient: str | None
    remaining: int | None  # None: every time


@dataclass
class _Behaviour:
    faults: list[_Fault] = field(default_factory=list)
    hang_up_after: int = 0  # close the connection after accepting this many more messages
    hang_up_during_data: int = 0  # keep this many more messages, then close without a reply


class SmtpSink:
    def __init__(
        self,
        *,
        tls: Literal["none", "starttls", "implicit"] = "none",
        certificate: Certificate | None = None,
        login: tuple[str, str] | None = None,
        xoauth2: tuple[str, str] | None = None,
    ) -> None:
        if tls != "none" and certificate is None:
            raise ValueError(f"tls={tls!r} needs a certificate (make_certificate)")
        self.tls = tls
        self.certificate = certificate
        self.login = login
        self.xoauth2 = xoauth2
        self.bearer_tokens: list[str] = []  # every XOAUTH2 token presented, in order
        self.host = HOST
        self.port = free_port()
        self.received: list[Received] = []
        self.connections = 0  # connections that said EHLO or HELO
        self.logins: list[str] = []
        self._behaviour = _Behaviour()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SmtpSink:
        """Listen (again) on this sink's port."""
        assert self._controller is None, "the sink is already running"
        kwargs: dict[str, Any] = {}
        if self.tls == "implicit":
            assert self.certificate is not None
            kwargs["ssl_context"] = self.certificate.server_context()
        elif self.tls == "starttls":
            assert self.certificate is not None
            kwargs["tls_context"] = self.certificate.server_context()
            kwargs["require_starttls"] = True
        if self.login is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
        if self.xoauth2 is not None:
            kwargs["auth_required"] = True
        handler = _Handler(self) if self.xoauth2 is None else _XOAuth2Handler(self)
        controller = Controller(
            handler, hostname=self.host, port=self.port, server_hostname="sink", **kwargs
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until `start`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def smtp_section(self, **overrides: Any) -> SmtpSection:
        """The gateway's smtp settings for this sink (trusting its certificate)."""
        settings: dict[str, Any] = {"host": self.host, "port": self.port, "tls": self.tls}
        if self.certificate is not None:
            settings["ca_file"] = self.certificate.cert
        if self.login is not None:
            settings["username"] = self.login[0]
        elif self.xoauth2 is not None:
            settings["username"] = self.xoauth2[0]
        settings["timeout_seconds"] = 10
        settings.update(overrides)
        return SmtpSection(**settings)

    # -- misbehaviour ------------------------------------------------------------------

    def fail(
        self,
        command: Command,
        reply: str,
        *,
        times: int | None = 1,
        recipient: str | None = None,
    ) -> None:
        """Answer `command` with `reply` (e.g. "450 4.2.1 busy") the next `times` times
        (None: always), or only in transactions for `recipient`. A 421 reply also closes
        the connection, as RFC 5321 §3.8 says."""
        with self._lock:
            self._behaviour.faults.append(_Fault(command, reply, recipient, times))

    def hang_up_after_next(self, messages: int = 1) -> None:
        """Accept the next `messages` messages, then close the connection (an idle timeout
        or a per-connection message limit)."""
        with self._lock:
            self._behaviour.hang_up_after = messages

    def hang_up_during_data(self, messages: int = 1) -> None:
        """Keep the next `messages` messages but close the connection before replying:
        the client cannot know the server has them."""
        with self._lock:
            self._behaviour.hang_up_during_data = messages

    def message_ids(self) -> list[str]:
        """The Message-ID header of every received message, in order."""
        ids = []
        for message in self.received:
            for line in message.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    ids.append(line.split(b":", 1)[1].strip().decode("ascii"))
        return ids

    # -- called by the server thread ---------------------------------------------------

    def _fault(self, command: Command, recipients: list[str]) -> str | None:
        with self._lock:
            for fault in self._behaviour.faults:
                if fault.command != command or fault.remaining == 0:
                    continue
                if fault.recipient is not None and fault.recipient not in recipients:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault.reply
        return None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.login is not None
        user, password = self.login
        ok = isinstance(data, LoginPassword) and data == (user.encode(), password.encode())
        if ok:
            with self._lock:
                self.logins.append(user)
        # handled=False: aiosmtpd then answers a refusal with 535 itself.
        return AuthResult(success=ok, handled=ok)


class _Handler:
    """aiosmtpd's handler hooks (`handle_<COMMAND>`), delegating to the sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self._count(session)
        session.host_name = hostname
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        self._count(session)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.sink._fault("MAIL", [])
        if fault is not None:
            return _refuse(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.sink._fault("RCPT", [address])
        if fault is not None:
            return _refuse(server, fault)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sink = self.sink
        fault = sink._fault("DATA", envelope.rcpt_tos)
        if fault is not None:
            return _refuse(server, fault)
        content = envelope.original_content or b""
        transport = server.transport
        assert transport is not None
        with sink._lock:
            sink.received.append(
                Received(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=content,
                    connection=session.connection_number,  # type: ignore[attr-defined]
                    tls=transport.get_extra_info("ssl_object") is not None,
                )
            )
            behaviour = sink._behaviour
            if behaviour.hang_up_during_data:
                behaviour.hang_up_during_data -= 1
                silent = True
            else:
                silent = False
                if behaviour.hang_up_after:
                    behaviour.hang_up_after -= 1
                    # After the 250 below has been written.
                    server.loop.call_soon(transport.close)
        if silent:
            transport.abort()
            # The lost connection cancels this handler; the reply is never sent.
            await asyncio.Event().wait()
        return "250 OK queued"

    def _count(self, session: Session) -> None:
        # A second EHLO after STARTTLS is the same connection.
        if getattr(session, "connection_number", None) is None:
            with self.sink._lock:
                self.sink.connections += 1
                session.connection_number = self.sink.connections  # type: ignore[attr-defined]


class _XOAuth2Handler(_Handler):
    """The handler of a sink that offers SASL XOAUTH2 (aiosmtpd calls `auth_<MECHANISM>`)."""

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                response = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):  # aborted or undecodable: already answered
                return AuthResult(success=False, handled=True)
            response = answer
        # "user=<address>" ^A "auth=Bearer <token>" ^A ^A
        fields = response.decode("utf-8", "replace").split("\x01")
        user = fields[0].removeprefix("user=") if fields[0].startswith("user=") else None
        token = fields[1].removeprefix("auth=Bearer ") if len(fields) == 4 else None
        sink = self.sink
        with sink._lock:
            if token is not None:
                sink.bearer_tokens.append(token)
            accepted = sink.xoauth2 is not None and (user, token) == sink.xoauth2
            if accepted and user is not None:
                sink.logins.append(user)
        if accepted:
            return AuthResult(success=True, auth_data=user)
        # The error challenge (RFC 7628 §3.2.3); the client answers it with an empty line.
        error = {"status": "401", "schemes": "bearer", "scope": "https://outlook.office.com"}
        if not isinstance(await server.challenge_auth(json.dumps(error)), bytes):
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)


def _refuse(server: SMTP, reply: str) -> str:
    if reply.startswith("421"):
        transport = server.transport
        assert transport is not None
        server.loop.call_soon(transport.close)  # after the reply has been written
    return reply

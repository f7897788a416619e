"""SMTP submission: a thin adapter over smtplib that delivers one message and decides nothing.

It opens the connection the configuration asks for (implicit TLS, STARTTLS, or plaintext to a
loopback test server), logs in, hands each message to the server and translates every
outcome into one of two errors. Whether to retry, when, and when to give up is the
dispatcher's business (gateway/dispatch.py), as in Mailman's split between `mta/` and the
outgoing runner.
"""

from __future__ import annotations

import smtplib
import ssl
from types import TracebackType

from gateway.config import SmtpSection
from gateway.errors import ConfigError, GatewayError
from gateway.oauth import TokenSource, TokenUnavailable, token_source_for, xoauth2

# RFC 5321 §3.8 and §4.2.2: 421 means the server is closing the channel, whatever the command.
_CLOSING = 421


class SmtpFailure(GatewayError):
    """Base of the delivery failures below; `code` is the SMTP reply code (None: no reply)."""

    def __init__(self, message: str, *, code: int | None = None, text: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.text = text


class TemporaryFailure(SmtpFailure):
    """Raised when delivery may succeed later: a 4xx reply, or no usable connection.

    No usable connection covers: connection refused, reset or timed out; a 421 reply; a
    session that cannot be set up (greeting, EHLO, STARTTLS or login refused) — the server's
    problem or ours, never the message's, so the message waits for the next attempt.
    `connection_lost` is True when this transport can send nothing more in this batch.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        text: str = "",
        connection_lost: bool = False,
    ) -> None:
        super().__init__(message, code=code, text=text)
        self.connection_lost = connection_lost


class InsecureConnection(TemporaryFailure):
    """Raised when TLS cannot be established: the server does not offer STARTTLS, or its
    certificate does not verify. Nothing is sent. An attacker stripping STARTTLS looks exactly
    like this, so it is retried like a refused connection, never downgraded to plaintext.
    """


class LoginRefused(TemporaryFailure):
    """Raised when the server refuses the configured username and password (or OAuth2
    token), offers no AUTH (or no XOAUTH2), or no OAuth2 token can be obtained. The messages
    are not at fault; they wait while someone fixes the credentials."""


class PermanentFailure(SmtpFailure):
    """Raised when the server refuses this message for this recipient with a 5xx reply
    (RFC 5321 §4.2.1): sending it again would be refused again."""


class _Dropped(Exception):
    """The connection went away before the message was handed over: safe to reconnect."""


class SmtpTransport:
    """One SMTP submission session, reused for a batch of messages.

    Open it with `SmtpTransport.open(section, password=...)`; close it (or use `with`). With
    `smtp.oauth2` the login is XOAUTH2 with a token from `token_source` (by default the
    process's MSAL source for that section).
    """

    def __init__(
        self,
        section: SmtpSection,
        *,
        password: str | None = None,
        token_source: TokenSource | None = None,
    ) -> None:
        if section.oauth2 is not None and token_source is None:
            token_source = token_source_for(section.oauth2)
        if section.username is not None and password is None and token_source is None:
            raise ConfigError(
                f"smtp.username is {section.username!r} but no password was given; "
                "set smtp.password to an environment variable or a secret file, or smtp.oauth2"
            )
        if section.username is not None and section.tls == "none":
            # DESIGN.md §6: never a plaintext login, not even to a loopback server.
            raise ConfigError(
                'smtp.tls = "none" cannot be used with smtp.username: a login needs TLS'
            )
        self._section = section
        self._password = password
        self._token_source = token_source
        self._where = f"{section.host}:{section.port}"
        self._smtp: smtplib.SMTP | None = None

    @classmethod
    def open(
        cls,
        section: SmtpSection,
        *,
        password: str | None = None,
        token_source: TokenSource | None = None,
    ) -> SmtpTransport:
        """Connect, secure and log in now; raises TemporaryFailure when that cannot be done."""
        transport = cls(section, password=password, token_source=token_source)
        transport._connect()
        return transport

    def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        """Hand `message` to the server for `recipient`; return only once it is accepted.

        A connection found closed before the message was handed over (an idle timeout, a
        421) is reopened once. A connection lost while the server was taking the message
        is not: whether the server kept it is unknown, so the caller decides.
        Raises PermanentFailure (a 5xx reply) or TemporaryFailure (a 4xx reply, or no
        usable connection: then `connection_lost` is set).
        """
        if self._smtp is None:
            self._connect()
        try:
            self._transaction(envelope_from, recipient, message)
        except _Dropped:
            self._discard()
            self._connect()
            try:
                self._transaction(envelope_from, recipient, message)
            except _Dropped as again:
                self._discard()
                raise TemporaryFailure(
                    f"the connection to {self._where} dropped again after reconnecting: {again}",
                    connection_lost=True,
                ) from again

    def close(self) -> None:
        """Say QUIT and close; a connection that is already gone is simply forgotten."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------------

    def _connect(self) -> None:
        section = self._section
        context = ssl.create_default_context(
            cafile=str(section.ca_file) if section.ca_file is not None else None
        )
        smtp: smtplib.SMTP | None = None
        try:
            if section.tls == "implicit":
                smtp = smtplib.SMTP_SSL(
                    section.host, section.port, timeout=section.timeout_seconds, context=context
                )
            else:
                smtp = smtplib.SMTP(section.host, section.port, timeout=section.timeout_seconds)
            _ehlo(smtp)
            if section.tls == "starttls":
                self._starttls(smtp, context)
            if section.username is not None:
                self._login(smtp, section.username)
        except TemporaryFailure:
            _close_quietly(smtp)
            raise
        except ssl.SSLError as exc:
            _close_quietly(smtp)
            detail = getattr(exc, "verify_message", None) or _describe(exc)
            raise InsecureConnection(
                f"no trustworthy TLS with {self._where}: {detail}", connection_lost=True
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(smtp)
            text = _text(exc.smtp_error)
            raise LoginRefused(
                f"{self._where} refused the login for {section.username!r}: {exc.smtp_code} {text}",
                code=exc.smtp_code,
                text=text,
                connection_lost=True,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            _close_quietly(smtp)
            raise LoginRefused(
                f"{self._where} offers no login (AUTH) but smtp.username is set",
                connection_lost=True,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            _close_quietly(smtp)
            text = _text(exc.smtp_error)
            raise TemporaryFailure(
                f"{self._where} refused the session: {exc.smtp_code} {text}",
                code=exc.smtp_code,
                text=text,
                connection_lost=True,
            ) from exc
        except OSError as exc:  # smtplib.SMTPException is an OSError too
            _close_quietly(smtp)
            raise TemporaryFailure(
                f"cannot connect to {self._where}: {_describe(exc)}", connection_lost=True
            ) from exc
        self._smtp = smtp

    def _login(self, smtp: smtplib.SMTP, username: str) -> None:
        if self._token_source is None:
            assert self._password is not None
            smtp.login(username, self._password)
            return
        offered = (
            smtp.esmtp_features.get("auth", "").upper().split() if smtp.has_extn("auth") else []
        )
        if "XOAUTH2" not in offered:
            raise LoginRefused(
                f"{self._where} does not offer XOAUTH2 (it offers {' '.join(offered) or 'no AUTH'})"
                " but smtp.oauth2 is set",
                connection_lost=True,
            )
        try:
            token = self._token_source.token()
        except TokenUnavailable as exc:
            raise LoginRefused(
                f"no OAuth2 token for logging in to {self._where} as {username!r}: {exc}",
                connection_lost=True,
            ) from exc
        # A refused token draws a 334 challenge carrying the server's error (RFC 7628 §3.2.3);
        # the answer is an empty line, after which the server sends its final refusal, which
        # smtplib raises as SMTPAuthenticationError.
        smtp.auth("XOAUTH2", lambda challenge=None: "" if challenge else xoauth2(username, token))

    def _starttls(self, smtp: smtplib.SMTP, context: ssl.SSLContext) -> None:
        if not smtp.has_extn("starttls"):
            raise InsecureConnection(
                f"{self._where} does not offer STARTTLS; refusing to send without TLS",
                connection_lost=True,
            )
        try:
            smtp.starttls(context=context)
        except smtplib.SMTPResponseException as exc:
            text = _text(exc.smtp_error)
            raise InsecureConnection(
                f"{self._where} refused STARTTLS: {exc.smtp_code} {text}",
                code=exc.smtp_code,
                text=text,
                connection_lost=True,
            ) from exc
        # RFC 3207 §4.2: what the server said before TLS is forgotten; ask again.
        _ehlo(smtp)

    def _transaction(self, envelope_from: str, recipient: str, message: bytes) -> None:
        smtp = self._smtp
        assert smtp is not None
        try:
            code, reply = smtp.mail(envelope_from)
            self._check("MAIL FROM", code, reply, accepted=(250,))
            code, reply = smtp.rcpt(recipient)
            self._check("RCPT TO", code, reply, accepted=(250, 251))
        except OSError as exc:  # SMTPServerDisconnected, a reset or a timeout
            raise _Dropped(_describe(exc)) from exc
        try:
            code, reply = smtp.data(message)
        except smtplib.SMTPDataError as exc:
            # The server refused the DATA command itself, before taking any of the message.
            self._check("DATA", exc.smtp_code, exc.smtp_error, accepted=())
        except OSError as exc:
            # The server may have taken the message before the line went: never resend here.
            self._discard()
            raise TemporaryFailure(
                f"the connection to {self._where} was lost while it took the message: "
                f"{_describe(exc)}",
                connection_lost=True,
            ) from exc
        else:
            self._check("DATA", code, reply, accepted=(250,))

    def _check(
        self, stage: str, code: int, reply: bytes | str, *, accepted: tuple[int, ...]
    ) -> None:
        """Return if `code` is one of `accepted`; otherwise raise what the reply means."""
        if code in accepted:
            return
        text = _text(reply)
        if code == _CLOSING:
            # Refused, not taken: reconnecting and trying again cannot duplicate it.
            raise _Dropped(f"{stage} answered {code} {text}")
        message = f"{self._where} answered {stage} with {code} {text}"
        if 400 <= code < 600:
            self._reset()
            failure = PermanentFailure if code >= 500 else TemporaryFailure
            raise failure(message, code=code, text=text)
        # Not a reply RFC 5321 allows here: the session cannot be trusted any more.
        self._discard()
        raise TemporaryFailure(message, code=code, text=text, connection_lost=True)

    def _reset(self) -> None:
        # Clear the refused transaction so the next message starts clean (RFC 5321 §4.1.1.5).
        assert self._smtp is not None
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._discard()

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        _close_quietly(smtp)


def _ehlo(smtp: smtplib.SMTP) -> None:
    code, reply = smtp.ehlo()
    if code != 250:
        raise smtplib.SMTPHeloError(code, reply)


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

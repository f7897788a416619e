"""IMAP: a thin adapter over imapclient that reads one mailbox and decides nothing.

It opens the connection the configuration asks for (implicit TLS, STARTTLS, or plaintext to
a loopback test server), logs in, and offers the handful of operations the mailbox service
needs — select, list new UIDs, fetch without marking read, move, flag, wait with IDLE — and
translates every failure into one `MailboxError` subclass. What to do with a message, when
to reconnect and how long to back off belong to gateway/mailbox_watch.py, as Mailman keeps
`mta/` apart from its runners.

Every message operation is by UID (RFC 3501 §2.3.1.1): sequence numbers shift whenever
another client expunges, a UID never does while the folder's UIDVALIDITY stays the same.
"""

from __future__ import annotations

import imaplib
import select
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import (
    CapabilityError,
    LoginError,
)

from gateway.config import ImapSection
from gateway.errors import GatewayError
from gateway.oauth import TokenSource, TokenUnavailable, token_source_for

# How often a wait looks at its `stop` event: the longest a shutdown waits on an idle mailbox.
_CHECK_SECONDS = 1.0


class MailboxError(GatewayError):
    """Base of every failure talking to an IMAP mailbox. The connection is no longer to be
    trusted: the caller closes it and reconnects later; nothing about any message is lost,
    since nothing is moved before it is recorded."""


class MailboxUnavailable(MailboxError):
    """Raised when the server cannot be reached or the connection is lost: refused, reset,
    timed out (connect or read), or closed by the server (BYE, end of stream)."""


class MailboxInsecure(MailboxError):
    """Raised when TLS cannot be established: the server offers no STARTTLS, the handshake
    fails, or the certificate does not verify. No password is sent. An attacker stripping
    STARTTLS looks exactly like this, so it is never downgraded to a plaintext login."""


class MailboxLoginRefused(MailboxError):
    """Raised when the server refuses the configured username and password (or OAuth2
    token), or no OAuth2 token can be obtained for the login."""


class MailboxCommandFailed(MailboxError):
    """Raised when the server answers a command with NO or BAD: a folder that does not
    exist or cannot be created, a read-only mailbox, a capability it lacks."""


class MessageGone(MailboxError):
    """Raised by `fetch` when no message has that UID any more: another client moved or
    expunged it after it was listed. The connection itself is fine."""


class MailboxClient:
    """One logged-in IMAP session. Open it with `MailboxClient.open(account, password=...)`
    or `MailboxClient.open(account, token_source=...)` (XOAUTH2), or `connect(account)`, and
    close it (or use `with`)."""

    def __init__(self, imap: IMAPClient, account: ImapSection) -> None:
        self._imap = imap
        self._account = account
        self._where = f"IMAP server {account.host}:{account.port}"

    @classmethod
    def open(
        cls,
        account: ImapSection,
        *,
        password: str | None = None,
        token_source: TokenSource | None = None,
    ) -> MailboxClient:
        """Connect, secure and log in now, with `password` or else an XOAUTH2 token from
        `token_source`. Raises MailboxUnavailable, MailboxInsecure or MailboxLoginRefused."""
        if (password is None) == (token_source is None):
            raise ValueError("give exactly one of password and token_source")
        where = f"IMAP server {account.host}:{account.port}"
        context = (
            ssl.create_default_context(cafile=str(account.ca_file))
            if account.ca_file is not None
            else ssl.create_default_context()
        )
        timeout = SocketTimeout(connect=account.timeout_seconds, read=account.timeout_seconds)
        with _translated(where, "connecting"):
            imap = IMAPClient(
                account.host,
                account.port,
                ssl=account.tls == "implicit",
                ssl_context=context,
                timeout=timeout,
            )
        client = cls(imap, account)
        try:
            if account.tls == "starttls":
                client._starttls(context)
            # tls = "none" is accepted by the configuration only for a loopback host: the
            # password never crosses a network in the clear.
            with _translated(where, "logging in"):
                if password is not None:
                    imap.login(account.username, password)
                else:
                    assert token_source is not None
                    imap.oauth2_login(account.username, _token(token_source, where))
        except BaseException:
            client._discard()
            raise
        return client

    def _starttls(self, context: ssl.SSLContext) -> None:
        with _translated(self._where, "STARTTLS"):
            offered = self._imap.has_capability("STARTTLS")
            if not offered:
                raise MailboxInsecure(
                    f"{self._where} does not offer STARTTLS; the gateway will not log in "
                    'without TLS (set tls = "implicit" if the server speaks TLS on connect)'
                )
            self._imap.starttls(context)

    # ----------------------------------------------------------------------------------
    # Operations on the selected folder

    def select(self, folder: str) -> int:
        """Select `folder` read-write; its UIDVALIDITY (RFC 3501 §2.3.1.1)."""
        with _translated(self._where, f"selecting {folder!r}"):
            response = self._imap.select_folder(folder)
        uidvalidity = response.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            raise MailboxCommandFailed(f"{self._where} gave no UIDVALIDITY for {folder!r}")
        return uidvalidity

    def uids_since(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid` in the selected folder, lowest first."""
        with _translated(self._where, "searching for new mail"):
            # A server searches the folder as this session last saw it; the NOOP brings in
            # what arrived since (RFC 3501 §6.1.2), or the newest mail is missed.
            self._imap.noop()
            found = self._imap.search(["UID", f"{last_uid + 1}:*"])
        # "UID n:*" always matches the highest UID, even one below n (RFC 3501 §6.4.8).
        return sorted(uid for uid in found if uid > last_uid)

    def fetch(self, uid: int) -> bytes:
        """The whole message as it is stored, without setting \\Seen (BODY.PEEK[])."""
        with _translated(self._where, f"fetching UID {uid}"):
            fetched = self._imap.fetch([uid], ["BODY.PEEK[]"])
        raw = fetched.get(uid, {}).get(b"BODY[]")
        if not isinstance(raw, bytes):
            raise MessageGone(f"{self._where}: UID {uid} is no longer in the folder")
        return raw

    def move(self, uid: int, folder: str) -> None:
        """Move the message to `folder`. Without MOVE (RFC 6851): copy, flag \\Deleted and
        expunge that UID alone (UIDPLUS, RFC 4315), so the message is in one folder or the
        other at every instant. Without UIDPLUS either, the original stays behind flagged
        \\Deleted: a plain EXPUNGE would also remove what other clients marked deleted.
        A UID no longer in the folder is not an error: someone else moved it first."""
        with _translated(self._where, f"moving UID {uid} to {folder!r}"):
            if self._imap.has_capability("MOVE"):
                self._imap.move([uid], folder)
                return
            self._imap.copy([uid], folder)
            self._imap.add_flags([uid], [b"\\Deleted"], silent=True)
            if self._imap.has_capability("UIDPLUS"):
                self._imap.uid_expunge([uid])

    def flag(self, uid: int, flag: str) -> None:
        """Add `flag` (a system flag such as \\Flagged, or a keyword) to the message."""
        with _translated(self._where, f"flagging UID {uid}"):
            self._imap.add_flags([uid], [flag], silent=True)

    def ensure_folders(self, folders: Sequence[str]) -> None:
        """Create each folder that does not exist yet."""
        for folder in folders:
            with _translated(self._where, f"creating folder {folder!r}"):
                if self._imap.folder_exists(folder):
                    continue
                try:
                    self._imap.create_folder(folder)
                except imaplib.IMAP4.error:
                    # Another client may have created it meanwhile; only a folder that
                    # still does not exist is a failure.
                    if not self._imap.folder_exists(folder):
                        raise

    # ----------------------------------------------------------------------------------
    # Waiting

    def wait_for_mail(self, max_seconds: float, *, stop: threading.Event | None = None) -> bool:
        """Wait in IDLE (RFC 2177) on the selected folder until the server announces new
        mail (True), or `max_seconds` pass or `stop` is set (False).

        IDLE is ended and re-issued every `idle_renew_minutes`, with a NOOP between: servers
        may drop a client idle for 30 minutes, and the NOOP shows the connection is alive (a
        silently dead one fails it within `timeout_seconds`). The connection is ready for
        other commands when this returns.

        Mail delivered between the caller's last look and the start of IDLE may be reported
        with the "+ idling" line and wait for the next renewal; the watcher looks for new
        UIDs just before calling this to keep that window to a millisecond.
        """
        deadline = time.monotonic() + max_seconds
        renew = self._account.idle_renew_minutes * 60
        with _translated(self._where, "waiting for mail (IDLE)"):
            while True:
                idle_until = min(deadline, time.monotonic() + renew)
                self._imap.idle()
                arrived = False
                while not arrived and not _is_set(stop):
                    remaining = idle_until - time.monotonic()
                    if remaining <= 0:
                        break
                    arrived = _announces_mail(self._idle_check(min(_CHECK_SECONDS, remaining)))
                _text, responses = self._imap.idle_done()
                if arrived or _announces_mail(responses):
                    return True
                if _is_set(stop) or time.monotonic() >= deadline:
                    return False
                _text, responses = self._imap.noop()
                if _announces_mail(responses):
                    return True

    def _idle_check(self, timeout: float) -> list[tuple[object, ...]]:
        # imapclient's idle_check returns an empty list both on a timeout and when the
        # server has closed the connection (it swallows the end of stream), and a dead
        # connection would then look like a quiet mailbox for good. So wait for the socket
        # here: readable with nothing to read is the end of the stream.
        poller = select.poll()
        poller.register(self._imap.socket().fileno(), select.POLLIN)
        if not poller.poll(timeout * 1000):
            return []
        responses: list[tuple[object, ...]] = self._imap.idle_check(timeout=0)
        if not responses:
            raise MailboxUnavailable(f"{self._where} closed the connection during IDLE")
        if any(response[:1] == (b"BYE",) for response in responses):
            raise MailboxUnavailable(f"{self._where} ended the session during IDLE (BYE)")
        return responses

    # ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Log out; a connection already broken is just dropped."""
        try:
            self._imap.logout()
        except (imaplib.IMAP4.error, OSError):
            self._discard()

    def _discard(self) -> None:
        with suppress(imaplib.IMAP4.error, OSError):
            self._imap.shutdown()

    def __enter__(self) -> MailboxClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def connect(account: ImapSection) -> MailboxClient:
    """Open `account` with its configured password or OAuth2 app (the default client
    factory). Raises SecretError when the password cannot be read, else as
    `MailboxClient.open`."""
    if account.oauth2 is not None:
        return MailboxClient.open(account, token_source=token_source_for(account.oauth2))
    assert account.password is not None  # the configuration requires one of the two
    return MailboxClient.open(account, password=account.password.resolve())


def _token(source: TokenSource, where: str) -> str:
    try:
        return source.token()
    except TokenUnavailable as exc:
        raise MailboxLoginRefused(f"no OAuth2 token for logging in to {where}: {exc}") from exc


def _is_set(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _announces_mail(responses: Sequence[tuple[object, ...]]) -> bool:
    # "* n EXISTS" is the new size of the folder (RFC 3501 §7.3.1): something arrived, or
    # the count is being restated. A restatement costs one empty look, never a missed one.
    return any(
        len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT") for response in responses
    )


@contextmanager
def _translated(where: str, doing: str) -> Iterator[None]:
    """Turn imapclient's, imaplib's, ssl's and socket's exceptions into MailboxError."""
    try:
        yield
    except MailboxError:
        raise
    except LoginError as exc:
        raise MailboxLoginRefused(
            f"{where} refused the login: {_text(exc)}; "
            "check the username and password (or OAuth2 app)"
        ) from exc
    except CapabilityError as exc:
        raise MailboxCommandFailed(f"{where}: {doing}: {_text(exc)}") from exc
    except imaplib.IMAP4.readonly as exc:
        # A subclass of abort, but the connection is fine: the folder is read-only for us.
        raise MailboxCommandFailed(f"{where}: {doing}: the folder is read-only") from exc
    except imaplib.IMAP4.abort as exc:
        raise MailboxUnavailable(f"{where}: connection lost while {doing}: {_text(exc)}") from exc
    except imaplib.IMAP4.error as exc:
        raise MailboxCommandFailed(f"{where} refused {doing}: {_text(exc)}") from exc
    except ssl.SSLError as exc:
        # Before OSError: SSLError is one, and a failed handshake is not a network fault.
        raise MailboxInsecure(f"{where}: TLS failed while {doing}: {exc}") from exc
    except TimeoutError as exc:
        raise MailboxUnavailable(f"{where} did not answer while {doing} (timed out)") from exc
    except OSError as exc:
        raise MailboxUnavailable(f"{where}: {doing} failed: {exc}") from exc


def _text(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__

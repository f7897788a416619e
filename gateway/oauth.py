"""OAuth2 for Microsoft 365: app-only access tokens from MSAL, and the XOAUTH2 string that
carries one to an IMAP or SMTP server.

Microsoft 365 has turned basic authentication off for IMAP and SMTP; an unattended service
logs in with the client-credentials grant of an Entra ID app registration (permissions
`IMAP.AccessAsApp` and `SMTP.SendAsApp`, scope https://outlook.office365.com/.default) and
presents the token with SASL XOAUTH2. The configuration is `OAuth2Section` (defined in
gateway/config.py next to the sections that use it, re-exported here).

Tokens are kept until shortly before they expire, then MSAL is asked again; MSAL keeps its
own cache (in memory, or in `cache_file` so a restart does not ask Microsoft at once).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msal

from gateway.config import OFFICE365_SCOPE, OAuth2Section
from gateway.errors import GatewayError, SecretError

__all__ = [
    "OFFICE365_SCOPE",
    "ClientApplication",
    "MsalTokenSource",
    "OAuth2Section",
    "TokenSource",
    "TokenUnavailable",
    "token_source_for",
    "xoauth2",
]

log = logging.getLogger("gateway.oauth")

# A token is renewed this long before it expires: a login must never present a token that
# lapses on the way (Entra ID tokens live 60 to 90 minutes; MSAL itself renews at 5).
REFRESH_MARGIN_SECONDS = 300.0


class TokenUnavailable(GatewayError):
    """Raised when no access token can be obtained: Entra ID refused the app (a wrong or
    expired secret, an unknown tenant or client, a permission not granted) or could not be
    reached. The message names the tenant, the client and MSAL's error code, never the secret.
    `code` is MSAL's error (e.g. "invalid_client"), or "unreachable"."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class TokenSource(Protocol):
    """Where the access tokens for an XOAUTH2 login come from."""

    def token(self) -> str:
        """A bearer token valid for at least the next few minutes. Raises TokenUnavailable."""
        ...


class ClientApplication(Protocol):
    """The part of msal.ConfidentialClientApplication the gateway uses."""

    def acquire_token_for_client(self, scopes: list[str]) -> Mapping[str, Any]: ...


AppFactory = Callable[[OAuth2Section, msal.SerializableTokenCache], ClientApplication]


def xoauth2(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


class MsalTokenSource:
    """App-only tokens for one app registration, from MSAL's client-credentials flow.

    `app_factory` builds the MSAL application (by default a real
    msal.ConfidentialClientApplication, built at the first request for a token, since MSAL
    looks up the tenant's endpoints when it is built); `clock` gives seconds since the epoch.
    Safe to share between threads.
    """

    def __init__(
        self,
        section: OAuth2Section,
        *,
        app_factory: AppFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._section = section
        self._app_factory = app_factory or _msal_application
        self._clock = clock
        self._who = f"tenant {section.tenant_id}, client {section.client_id}"
        self._lock = threading.Lock()
        self._app: ClientApplication | None = None
        self._cache = msal.SerializableTokenCache()
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if (
                self._token is not None
                and self._clock() < self._expires_at - REFRESH_MARGIN_SECONDS
            ):
                return self._token
            asked_at = self._clock()
            result = self._acquire()
            token = result.get("access_token")
            if not isinstance(token, str) or not token:
                raise TokenUnavailable(
                    f"Microsoft Entra ID gave no access token for {self._who}: "
                    f"{_error_text(result)}",
                    code=str(result.get("error") or "no_token"),
                )
            self._save_cache()
            expires_in = result.get("expires_in")
            self._token = token
            self._expires_at = asked_at + (
                float(expires_in) if isinstance(expires_in, int | float) else 0.0
            )
            return token

    def _acquire(self) -> Mapping[str, Any]:
        try:
            if self._app is None:
                self._load_cache()
                self._app = self._app_factory(self._section, self._cache)
            return self._app.acquire_token_for_client(scopes=[self._section.scope])
        except SecretError as exc:
            raise TokenUnavailable(
                f"the credential of {self._who} cannot be read: {exc}", code="secret_unreadable"
            ) from exc
        except (ValueError, OSError) as exc:
            # requests' connection errors are OSErrors; MSAL raises ValueError for an
            # authority it cannot use. Neither message carries the credential.
            raise TokenUnavailable(
                f"cannot obtain a token for {self._who} from {self._section.authority_url}: "
                f"{type(exc).__name__}: {exc}",
                code="unreachable",
            ) from exc

    def _load_cache(self) -> None:
        path = self._section.cache_file
        if path is None:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            # Like a damaged cache below: it costs one token request, never the login.
            log.warning("the token cache %s for %s cannot be read: %s", path, self._who, exc)
            return
        try:
            self._cache.deserialize(text)
        except ValueError:
            # A damaged cache costs one token request, not the login; it is rewritten after.
            self._cache = msal.SerializableTokenCache()

    def _save_cache(self) -> None:
        path = self._section.cache_file
        if path is None or not self._cache.has_state_changed:
            return
        try:
            _write_private(path, self._cache.serialize())
        except OSError as exc:
            # The token in hand is good: mail is not held up for the cache, which only saves
            # a request after a restart. Said loudly, and tried again with the next token.
            log.warning("the token cache %s for %s cannot be written: %s", path, self._who, exc)
            return
        self._cache.has_state_changed = False


@functools.cache
def token_source_for(section: OAuth2Section) -> MsalTokenSource:
    """The process's one token source for `section`, so every connection shares its cache."""
    return MsalTokenSource(section)


def _msal_application(
    section: OAuth2Section, cache: msal.SerializableTokenCache
) -> ClientApplication:
    app: ClientApplication = msal.ConfidentialClientApplication(
        section.client_id,
        client_credential=_credential(section),
        authority=section.authority_url,
        token_cache=cache,
    )
    return app


def _credential(section: OAuth2Section) -> str | dict[str, str]:
    if section.client_secret is not None:
        return section.client_secret.resolve()
    assert section.certificate is not None
    credential = {"private_key_pfx_path": str(section.certificate)}
    if section.certificate_passphrase is not None:
        credential["passphrase"] = section.certificate_passphrase.resolve()
    return credential


def _error_text(result: Mapping[str, Any]) -> str:
    error = result.get("error") or "no error code"
    description = str(result.get("error_description") or "").strip().splitlines()
    return f"{error}: {description[0]}" if description else str(error)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only, replacing it in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp creates the file 0600 already; say so in case a umask or platform differs.
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

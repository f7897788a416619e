"""Microsoft 365 login: app-only OAuth2 tokens (MSAL) presented by SASL XOAUTH2.

MSAL never talks to Microsoft here: the token source is a fake, or the MSAL wrapper is given
a fake MSAL application. The SMTP transport and the aiosmtpd server checking the token are
real.
"""

from __future__ import annotations

import base64
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
from dovecot import Dovecot, MailUser
from smtp_sink import Certificate, SmtpSink, make_certificate

from gateway.config import SecretRef, load_config
from gateway.errors import ConfigError
from gateway.imap_client import MailboxClient, MailboxLoginRefused
from gateway.oauth import (
    MsalTokenSource,
    OAuth2Section,
    TokenUnavailable,
    token_source_for,
    xoauth2,
)
from gateway.smtp_transport import ConfigError as TransportConfigError
from gateway.smtp_transport import LoginRefused, SmtpTransport

MAILBOX = "navigator@mash.example.org"
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MESSAGE = b"From: navigator@mash.example.org\r\nSubject: test\r\n\r\nBody.\r\n"


def oauth2_section(**overrides: Any) -> OAuth2Section:
    settings: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": SecretRef(env="TEST_OAUTH_CLIENT_SECRET"),
    }
    settings.update(overrides)
    return OAuth2Section(**settings)


class IssuedTokens:
    """A token source that hands out the tokens it is given, one per request, and counts."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.requests = 0

    def token(self) -> str:
        self.requests += 1
        return self.tokens[min(self.requests, len(self.tokens)) - 1]


class FakeMsalApp:
    """Stands in for msal.ConfidentialClientApplication: answers acquire_token_for_client
    with the next prepared result, recording the scopes asked for, and stores a token in
    the cache it was built with as MSAL does."""

    def __init__(self, results: list[dict[str, Any]], cache: Any, section: OAuth2Section) -> None:
        self.results = results
        self.cache = cache
        self.section = section
        self.asked: list[list[str]] = []

    def acquire_token_for_client(self, scopes: list[str]) -> Mapping[str, Any]:
        self.asked.append(scopes)
        result = self.results.pop(0)
        if "access_token" in result:
            self.cache.add(
                {
                    "client_id": self.section.client_id,
                    "scope": scopes,
                    "token_endpoint": f"{self.section.authority_url}/oauth2/v2.0/token",
                    "response": {**result, "token_type": "Bearer"},
                    "params": {},
                    "data": {},
                }
            )
        return result


class FakeMsal:
    """An app factory for MsalTokenSource that builds FakeMsalApps and keeps the last."""

    def __init__(self, *results: dict[str, Any]) -> None:
        self.results = list(results)
        self.app: FakeMsalApp | None = None
        self.caches: list[Any] = []
        self.cached_when_built: list[str] = []  # the access tokens in the cache MSAL was given

    def __call__(self, section: OAuth2Section, cache: Any) -> FakeMsalApp:
        self.caches.append(cache)
        found = cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)
        self.cached_when_built = [entry["secret"] for entry in found]
        self.app = FakeMsalApp(self.results, cache, section)
        return self.app


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def oauth_sink(sink_certificate: Certificate) -> Any:
    with SmtpSink(
        tls="starttls", certificate=sink_certificate, xoauth2=(MAILBOX, "token-one")
    ) as sink:
        yield sink


# ---------------------------------------------------------------------------------------
# SMTP XOAUTH2 against a real server


def test_smtp_logs_in_with_the_token_and_sends_as_the_mailbox(oauth_sink: SmtpSink) -> None:
    section = oauth_sink.smtp_section(oauth2=oauth2_section())
    with SmtpTransport.open(section, token_source=IssuedTokens("token-one")) as transport:
        transport.send(MAILBOX, "dsl@school.example.org", MESSAGE)
    assert oauth_sink.logins == [MAILBOX]
    assert oauth_sink.bearer_tokens == ["token-one"]
    (received,) = oauth_sink.received
    assert received.data == MESSAGE
    assert received.tls


def test_a_refused_token_is_a_refused_login_and_the_token_is_not_repeated(
    oauth_sink: SmtpSink,
) -> None:
    section = oauth_sink.smtp_section(oauth2=oauth2_section())
    with pytest.raises(LoginRefused, match="535") as failure:
        SmtpTransport.open(section, token_source=IssuedTokens("token-stolen-and-revoked"))
    assert failure.value.code == 535
    assert failure.value.connection_lost
    # The 334 error challenge was answered with an empty line, not the token again.
    assert oauth_sink.bearer_tokens == ["token-stolen-and-revoked"]
    assert "token-stolen-and-revoked" not in str(failure.value)
    assert oauth_sink.received == []


def test_a_server_without_xoauth2_is_a_refused_login(sink_certificate: Certificate) -> None:
    with SmtpSink(tls="starttls", certificate=sink_certificate, login=(MAILBOX, "pw")) as sink:
        section = sink.smtp_section(oauth2=oauth2_section())
        tokens = IssuedTokens("token-one")
        with pytest.raises(LoginRefused, match="does not offer XOAUTH2"):
            SmtpTransport.open(section, token_source=tokens)
    assert tokens.requests == 0


def test_an_oauth2_login_is_never_sent_in_plaintext(smtp_sink: SmtpSink) -> None:
    section = smtp_sink.smtp_section(username=MAILBOX, oauth2=oauth2_section())
    with pytest.raises(TransportConfigError, match="a login needs TLS"):
        SmtpTransport.open(section, token_source=IssuedTokens("token-one"))
    assert smtp_sink.connections == 0


def test_password_login_still_works_beside_oauth2(sink_certificate: Certificate) -> None:
    with SmtpSink(tls="starttls", certificate=sink_certificate, login=(MAILBOX, "pw")) as sink:
        with SmtpTransport.open(sink.smtp_section(), password="pw") as transport:
            transport.send(MAILBOX, "dsl@school.example.org", MESSAGE)
        assert sink.logins == [MAILBOX]
        assert len(sink.received) == 1


def test_no_token_from_entra_id_is_a_refused_login_naming_tenant_client_and_code(
    oauth_sink: SmtpSink,
) -> None:
    refusal = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
        "error_codes": [7000215],
    }
    source = MsalTokenSource(oauth2_section(), app_factory=FakeMsal(refusal))
    section = oauth_sink.smtp_section(oauth2=oauth2_section())
    with pytest.raises(LoginRefused) as failure:
        SmtpTransport.open(section, token_source=source)
    text = str(failure.value)
    assert TENANT in text and CLIENT in text
    assert "invalid_client" in text and "AADSTS7000215" in text
    assert "Trace ID" not in text
    assert oauth_sink.bearer_tokens == []


def test_the_token_is_renewed_before_it_expires(oauth_sink: SmtpSink) -> None:
    clock = Clock()
    msal_app = FakeMsal(
        {"access_token": "token-one", "expires_in": 3600},
        {"access_token": "token-two", "expires_in": 3600},
    )
    source = MsalTokenSource(oauth2_section(), app_factory=msal_app, clock=clock)
    section = oauth_sink.smtp_section(oauth2=oauth2_section())

    SmtpTransport.open(section, token_source=source).close()
    clock.now += 3600 - 301  # still five minutes and a second to go: the same token
    SmtpTransport.open(section, token_source=source).close()
    clock.now += 2  # within five minutes of expiry: a new one
    oauth_sink.xoauth2 = (MAILBOX, "token-two")
    SmtpTransport.open(section, token_source=source).close()

    assert oauth_sink.bearer_tokens == ["token-one", "token-one", "token-two"]
    assert oauth_sink.logins == [MAILBOX] * 3
    assert msal_app.app is not None
    assert msal_app.app.asked == [["https://outlook.office365.com/.default"]] * 2
    assert len(msal_app.caches) == 1  # one MSAL application, its cache kept in memory


# ---------------------------------------------------------------------------------------
# IMAP XOAUTH2 against a real Dovecot that checks the bearer token itself
#
# Dovecot's oauth2 passdb validates a JWT locally (introspection_mode = local) with a key
# from a dict: here an HS256 key in a file, so no identity provider is needed. The token's
# `sub` is the user it logs in.

SIGNING_KEY = b"test-only-hs256-key-for-dovecot-0123456789"


class OAuth2Dovecot(Dovecot):
    """The test Dovecot with XOAUTH2 added, checking tokens signed with SIGNING_KEY."""

    def _write_config(self) -> None:
        super()._write_config()
        # local_validation_key_dict looks keys up as <azp>/<alg>/<kid>, base64-encoded.
        keys = self.root / "oauth2-keys"
        key_file = keys / "default" / "HS256" / "default"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(base64.b64encode(SIGNING_KEY).decode("ascii"), encoding="utf-8")
        settings = self.root / "oauth2.conf.ext"
        settings.write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={keys}/\n"
            "username_attribute = sub\n",
            encoding="utf-8",
        )
        config = self.root / "dovecot.conf"
        text = config.read_text(encoding="utf-8")
        text = text.replace(
            "auth_mechanisms = plain login", "auth_mechanisms = plain login xoauth2"
        )
        text += f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {settings}\n}}\n"
        config.write_text(text, encoding="utf-8")


def bearer_token(user: MailUser, *, key: bytes = SIGNING_KEY) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": user.name, "iat": now, "nbf": now, "exp": now + 600}, key, algorithm="HS256"
    )


@pytest.fixture(scope="module")
def oauth_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    certificate = make_certificate(tmp_path_factory.mktemp("imap-oauth-tls"))
    with OAuth2Dovecot(tls="required", certificate=certificate) as server:
        yield server


def oauth2_account(server: Dovecot, user: MailUser) -> Any:
    return server.imap_section(user, password=None, oauth2=oauth2_section())


def test_imap_logs_in_with_a_token_the_server_checks(oauth_dovecot: Dovecot) -> None:
    mash = oauth_dovecot.new_user("mash")
    account = oauth2_account(oauth_dovecot, mash)
    assert account.tls == "starttls"
    tokens = IssuedTokens(bearer_token(mash))
    with MailboxClient.open(account, token_source=tokens) as client:
        client.select("INBOX")
        uid = oauth_dovecot.deliver(mash, MESSAGE)
        assert client.uids_since(0) == [uid]
        assert client.fetch(uid) == MESSAGE
    assert tokens.requests == 1
    assert f"user=<{mash.name}>, method=XOAUTH2" in oauth_dovecot.log()


def test_imap_refuses_a_token_signed_by_someone_else(oauth_dovecot: Dovecot) -> None:
    mash = oauth_dovecot.new_user("mash")
    forged = bearer_token(mash, key=b"not-the-key-dovecot-trusts-0123456789")
    with pytest.raises(MailboxLoginRefused) as failure:
        MailboxClient.open(oauth2_account(oauth_dovecot, mash), token_source=IssuedTokens(forged))
    assert forged not in str(failure.value)


def test_imap_without_a_token_is_a_refused_login(oauth_dovecot: Dovecot) -> None:
    mash = oauth_dovecot.new_user("mash")
    refusal = {"error": "unauthorized_client", "error_description": "AADSTS700016: not found"}
    source = MsalTokenSource(oauth2_section(), app_factory=FakeMsal(refusal))
    with pytest.raises(MailboxLoginRefused, match="unauthorized_client") as failure:
        MailboxClient.open(oauth2_account(oauth_dovecot, mash), token_source=source)
    assert CLIENT in str(failure.value) and TENANT in str(failure.value)


# ---------------------------------------------------------------------------------------
# The MSAL wrapper


def test_the_xoauth2_string_is_user_and_bearer_token_separated_by_ctrl_a() -> None:
    assert xoauth2(MAILBOX, "abc") == f"user={MAILBOX}\x01auth=Bearer abc\x01\x01"


def test_the_configured_scope_is_asked_for() -> None:
    msal_app = FakeMsal({"access_token": "t", "expires_in": 3600})
    section = oauth2_section(scope="https://example.invalid/.default")
    assert MsalTokenSource(section, app_factory=msal_app).token() == "t"
    assert msal_app.app is not None
    assert msal_app.app.asked == [["https://example.invalid/.default"]]


def test_a_failed_request_is_not_remembered() -> None:
    msal_app = FakeMsal(
        {"error": "temporarily_unavailable", "error_description": "try again"},
        {"access_token": "token-one", "expires_in": 3600},
    )
    source = MsalTokenSource(oauth2_section(), app_factory=msal_app)
    with pytest.raises(TokenUnavailable) as failure:
        source.token()
    assert failure.value.code == "temporarily_unavailable"
    assert source.token() == "token-one"


def test_an_unreadable_client_secret_is_a_token_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real MSAL application factory: the secret is read before MSAL is built.
    monkeypatch.delenv("TEST_OAUTH_CLIENT_SECRET", raising=False)
    with pytest.raises(TokenUnavailable, match="TEST_OAUTH_CLIENT_SECRET") as failure:
        MsalTokenSource(oauth2_section()).token()
    assert failure.value.code == "secret_unreadable"
    assert CLIENT in str(failure.value)


def test_the_token_cache_file_is_private_and_read_after_a_restart(tmp_path: Path) -> None:
    cache_file = tmp_path / "state" / "msal-cache.json"
    section = oauth2_section(cache_file=cache_file)
    first = FakeMsal({"access_token": "token-one", "expires_in": 3600})
    assert MsalTokenSource(section, app_factory=first).token() == "token-one"
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600

    restarted = FakeMsal({"access_token": "token-two", "expires_in": 3600})
    MsalTokenSource(section, app_factory=restarted).token()
    assert restarted.cached_when_built == ["token-one"]
    assert first.cached_when_built == []


def test_a_damaged_token_cache_file_costs_one_request(tmp_path: Path) -> None:
    cache_file = tmp_path / "msal-cache.json"
    cache_file.write_text("{not json", encoding="utf-8")
    msal_app = FakeMsal({"access_token": "token-one", "expires_in": 3600})
    source = MsalTokenSource(oauth2_section(cache_file=cache_file), app_factory=msal_app)
    assert source.token() == "token-one"
    assert "token-one" in cache_file.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------
# Configuration


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


OAUTH2_TOML = f"""
[smtp.oauth2]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
client_secret = {{ file = "secrets/client-secret" }}
cache_file = "state/msal-cache.json"
"""


def test_smtp_with_oauth2_loads_with_paths_made_absolute(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f'[smtp]\nhost = "smtp.office365.com"\nusername = "{MAILBOX}"\n' + OAUTH2_TOML,
    )
    oauth2 = load_config(path).config.smtp.oauth2
    assert oauth2 is not None
    assert oauth2.client_secret == SecretRef(file=tmp_path / "secrets" / "client-secret")
    assert oauth2.cache_file == tmp_path / "state" / "msal-cache.json"
    assert oauth2.scope == "https://outlook.office365.com/.default"
    assert oauth2.authority_url == f"https://login.microsoftonline.com/{TENANT}"


def test_password_and_oauth2_together_are_refused_naming_both_keys(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f'[smtp]\nusername = "{MAILBOX}"\npassword = {{ env = "SMTP_PASSWORD" }}\n' + OAUTH2_TOML,
    )
    with pytest.raises(ConfigError, match=r"smtp: .*password and oauth2 are both set"):
        load_config(path)


def test_oauth2_without_a_username_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[smtp]\nhost = "smtp.office365.com"\n' + OAUTH2_TOML)
    with pytest.raises(ConfigError, match=r"smtp: .*oauth2 is set but username is not"):
        load_config(path)


def test_a_mailbox_needs_a_password_or_oauth2(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f'[mailboxes.mash]\nhost = "outlook.office365.com"\nusername = "{MAILBOX}"\n'
    )
    with pytest.raises(ConfigError, match=r"mailboxes.mash: .*give password or oauth2"):
        load_config(path)


def test_a_mailbox_may_log_in_with_oauth2(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f'[mailboxes.mash]\nhost = "outlook.office365.com"\nusername = "{MAILBOX}"\n'
        + OAUTH2_TOML.replace("[smtp.oauth2]", "[mailboxes.mash.oauth2]"),
    )
    mailboxes = load_config(path).config.mailboxes
    assert mailboxes is not None and mailboxes.mash is not None
    assert mailboxes.mash.password is None
    assert mailboxes.mash.oauth2 is not None
    assert mailboxes.mash.oauth2.client_id == CLIENT


def test_an_app_proves_itself_one_way_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of client_secret or certificate"):
        oauth2_section(certificate=tmp_path / "app.pfx")
    with pytest.raises(ValueError, match="exactly one of client_secret or certificate"):
        oauth2_section(client_secret=None)


def test_an_authority_must_be_https() -> None:
    with pytest.raises(ValueError, match="https://"):
        oauth2_section(authority="http://login.example.org/tenant")


def test_a_client_secret_written_inline_is_refused(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f'[smtp]\nusername = "{MAILBOX}"\n'
        + OAUTH2_TOML.replace('{ file = "secrets/client-secret" }', '"s3cret"'),
    )
    with pytest.raises(ConfigError, match=r"smtp\.oauth2\.client_secret: secrets are not allowed"):
        load_config(path)


def test_the_commented_example_in_config_example_toml_loads(tmp_path: Path) -> None:
    example = (Path(__file__).parent.parent / "config.example.toml").read_text(encoding="utf-8")
    lines = example[example.index("# [smtp.oauth2]") :].splitlines()
    block = []
    for line in lines:
        if not line.startswith("# "):
            break
        if not line.startswith(("# certificate", "# authority")):
            block.append(line.removeprefix("# "))
    path = write_config(tmp_path, f'[smtp]\nusername = "{MAILBOX}"\n' + "\n".join(block) + "\n")
    oauth2 = load_config(path).config.smtp.oauth2
    assert oauth2 is not None
    assert oauth2.client_secret == SecretRef(file=Path("/run/secrets/m365-client-secret"))
    assert oauth2.cache_file == tmp_path / "state" / "msal-token-cache.json"


def test_every_connection_for_one_app_shares_one_token_source() -> None:
    # Otherwise each connection would start with an empty cache and ask Entra ID again.
    assert token_source_for(oauth2_section()) is token_source_for(oauth2_section())
    assert token_source_for(oauth2_section()) is not token_source_for(
        oauth2_section(client_id="another-client")
    )


def test_an_unwritable_token_cache_file_does_not_stop_the_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("", encoding="utf-8")
    msal_app = FakeMsal({"access_token": "token-one", "expires_in": 3600})
    section = oauth2_section(cache_file=blocked / "msal-cache.json")
    assert MsalTokenSource(section, app_factory=msal_app).token() == "token-one"
    assert "cannot be written" in caplog.text and CLIENT in caplog.text


def test_an_unreadable_certificate_passphrase_is_a_token_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_OAUTH_PFX_PASSPHRASE", raising=False)
    section = oauth2_section(
        client_secret=None,
        certificate=tmp_path / "app.pfx",
        certificate_passphrase=SecretRef(env="TEST_OAUTH_PFX_PASSPHRASE"),
    )
    with pytest.raises(TokenUnavailable, match="TEST_OAUTH_PFX_PASSPHRASE") as failure:
        MsalTokenSource(section).token()
    assert failure.value.code == "secret_unreadable"

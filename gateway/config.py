"""The gateway's configuration: one TOML file, validated at start-up.

Found by `--config PATH`, else the `ENCOMPASS_CONFIG` environment variable, else embedded
defaults (the repository's rules/, a state database under ./state). Relative paths are
relative to the directory of the configuration file, so a deployment can be moved whole.

Secrets never live in the file: a key that looks like one (password, passphrase, secret,
token) is refused, and sections that need one name an environment variable or a secret
file instead (see `SecretRef`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from gateway.errors import ConfigError, SecretError
from gateway.validation import Strict, read_toml, validate

ENV_VAR = "ENCOMPASS_CONFIG"
REPOSITORY_RULES = Path(__file__).resolve().parent.parent / "rules"
_SECRET_WORDS = ("password", "passphrase", "secret", "token")


class SecretRef(Strict):
    """Where a secret comes from: an environment variable or a file (e.g. /run/secrets/x)."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' (a variable name) or 'file' (a path)")
        return self

    def resolve(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"the environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(
                f"the secret file {self.file} cannot be read: {exc.strerror}"
            ) from exc


class StateSection(Strict):
    database: Path = Path("state/gateway.sqlite3")
    # The key personal data at rest is sealed with: base64 of 32 random bytes
    # (`openssl rand -base64 32`), kept apart from the database and its backups. Unset, a
    # key is generated beside the database (storage.key) — for a demo, not a deployment.
    storage_key: SecretRef | None = None


class RulesSection(Strict):
    directory: Path = REPOSITORY_RULES


class DirectorySection(Strict):
    gias: Path | None = None
    contacts: Path | None = None
    pupil_roll: Path | None = None
    roll_profile: str = "capita_one"


class IntakeSection(Strict):
    max_file_mb: float = Field(default=10, gt=0, le=200)
    max_zip_entries: int = Field(default=1000, gt=0)
    max_uncompressed_mb: float = Field(default=200, gt=0)
    max_compression_ratio: float = Field(default=100, gt=1)


Fingerprint = Annotated[str, StringConstraints(pattern=r"^[0-9A-F]{40}$")]
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


Tenant = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")]
OFFICE365_SCOPE = "https://outlook.office365.com/.default"


class OAuth2Section(Strict):
    """App-only OAuth2 for Microsoft 365 (XOAUTH2): the client-credentials grant of an Entra ID
    app registration, tokens from MSAL (gateway/oauth.py). Used as `smtp.oauth2` or
    `mailboxes.<name>.oauth2` instead of a password; the username stays the mailbox's address.
    """

    tenant_id: Tenant  # the directory (tenant) ID, or its domain (contoso.onmicrosoft.com)
    client_id: str  # the application (client) ID of the app registration
    # How the app proves itself: a client secret, or a certificate (a .pfx/.p12 file holding
    # its private key) uploaded to the app registration — exactly one.
    client_secret: SecretRef | None = None
    certificate: Path | None = None
    certificate_passphrase: SecretRef | None = None
    scope: str = OFFICE365_SCOPE
    authority: str | None = None  # default https://login.microsoftonline.com/<tenant_id>
    # MSAL's token cache kept across restarts (written 0600); without it, in memory only.
    cache_file: Path | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> OAuth2Section:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        if self.certificate_passphrase is not None and self.certificate is None:
            raise ValueError("certificate_passphrase is set but certificate is not")
        if self.authority is not None and not self.authority.startswith("https://"):
            raise ValueError(f"authority must be an https:// address, not {self.authority!r}")
        return self

    @property
    def authority_url(self) -> str:
        return self.authority or f"https://login.microsoftonline.com/{self.tenant_id}"


def _one_login(username: str | None, password: object, oauth2: object, *, required: bool) -> None:
    if password is not None and oauth2 is not None:
        raise ValueError(
            "password and oauth2 are both set; give one: a password, or oauth2 for Microsoft 365"
        )
    if username is None and (password is not None or oauth2 is not None):
        raise ValueError(
            f"{'password' if password is not None else 'oauth2'} is set but username is not"
        )
    if required and username is not None and password is None and oauth2 is None:
        raise ValueError("username is set: give password or oauth2 as well")


class NavigatorSection(Strict):
    """The Education Navigator: the sender of every notification and signer of every message."""

    name: str = "Education Navigator"
    email: str = "navigator@mash.example.org"
    phone: str = ""
    # The Navigator's OpenPGP key (40 upper-case hex digits): signs every outgoing message.
    fingerprint: Fingerprint | None = None
    passphrase: SecretRef | None = None
    # The keys that may sign commands mailed to the gateway (gateway/command_mail.py): the
    # Navigator's own key(s), pinned by full fingerprint, in the gateway's keyring. Mail from
    # `email` is taken as commands only when at least one is pinned.
    command_signers: tuple[Fingerprint, ...] = ()
    # A signed command older than this (by its signature's time) is refused: a mail held
    # back somewhere, or an old one replayed that the gateway never saw, must not act days
    # later on a situation that has moved on. Long enough for a weekend's outage.
    command_max_age_hours: float = Field(default=72, gt=0, le=24 * 14)


class ManagerSection(Strict):
    """The Education Safeguarding Manager: told at once of a High-risk incident whose school is
    closed (DESIGN.md section 2), by mail encrypted to this pinned key."""

    name: str = "Education Safeguarding Manager"
    email: str
    fingerprint: Fingerprint


class GnupgSection(Strict):
    # The gateway's own GnuPG home (created 0700). Keep it short: gpg-agent's socket path
    # must fit in 108 bytes.
    home: Path = Path("state/gnupg")


class SmtpSection(Strict):
    """SMTP submission for outgoing mail: TLS required ("none" only for a loopback test server)."""

    host: str = "localhost"
    port: int = Field(default=587, gt=0, lt=65536)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: SecretRef | None = None
    oauth2: OAuth2Section | None = None  # instead of password: Microsoft 365 (XOAUTH2)
    ca_file: Path | None = None  # trust this CA instead of the system's (a private relay)
    timeout_seconds: float = Field(default=30, gt=0, le=600)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> SmtpSection:
        if self.tls == "none" and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(
                f'tls = "none" is allowed only for a loopback test server '
                f"({', '.join(_LOOPBACK_HOSTS)}), not {self.host!r}"
            )
        # The password may also be handed to the transport directly (SmtpTransport.open),
        # which refuses a username with neither.
        _one_login(self.username, self.password, self.oauth2, required=False)
        return self


class DispatchSection(Strict):
    # Temporary failures (4xx, connection refused) are retried with growing pauses until
    # this long after the message was due; then it becomes an exception for the Navigator.
    retry_window_minutes: float = Field(default=120, gt=0)
    first_retry_seconds: float = Field(default=60, gt=0)
    max_retry_seconds: float = Field(default=900, gt=0)
    # The domain of Message-IDs and of the per-message return path (bounces come back to
    # bounces+<token>@ this domain, so each one maps to its message without guessing).
    domain: str = "mash.example.org"
    bounce_local_part: str = "bounces"


class PoliceSection(Strict):
    """Who may send the police spreadsheet, and how their mail must prove it (invariant 3)."""

    # Allow-listed senders: full addresses, or "@domain" for any address of that domain.
    senders: tuple[str, ...] = ()
    # "pgp": a valid OpenPGP signature by a pinned police key; "dkim": DKIM pass for the
    # sender's domain with DMARC pass, in Authentication-Results added by trusted_authserv_id;
    # "either" or "both".
    authentication: Literal["pgp", "dkim", "either", "both"] = "pgp"
    fingerprints: tuple[Fingerprint, ...] = ()  # pinned police signing keys
    trusted_authserv_id: str | None = None  # the MASH mail server's authserv-id
    # The MASH key (secret key in the gateway's GnuPG home) that police mail may be
    # encrypted to; its passphrase, if any, from a file or the environment.
    mash_fingerprint: Fingerprint | None = None
    mash_passphrase: SecretRef | None = None

    @field_validator("senders")
    @classmethod
    def _addresses_or_domains(cls, senders: tuple[str, ...]) -> tuple[str, ...]:
        for sender in senders:
            _, at, domain = sender.rpartition("@")
            if not at or not domain or "." not in domain or " " in sender:
                raise ValueError(
                    f"{sender!r} is neither an address (desk@police.example.org) nor a domain "
                    "written as @police.example.org"
                )
        return tuple(sender.lower() for sender in senders)

    @model_validator(mode="after")
    def _can_authenticate(self) -> PoliceSection:
        pgp, dkim = bool(self.fingerprints), self.trusted_authserv_id is not None
        needs = {
            "pgp": ("the police keys' fingerprints (fingerprints)", pgp),
            "dkim": ("trusted_authserv_id, the MASH mail server's authserv-id", dkim),
            "both": ("fingerprints and trusted_authserv_id", pgp and dkim),
            "either": ("fingerprints or trusted_authserv_id", pgp or dkim),
        }
        what, present = needs[self.authentication]
        if not present:
            raise ValueError(f"authentication = {self.authentication!r} needs {what}")
        return self


class ImapSection(Strict):
    """One IMAP mailbox the gateway reads: TLS required ("none" only for a loopback test server).

    Login is by username and either password (from the environment or a secret file) or
    oauth2 (XOAUTH2 with an app-only token, for Microsoft 365): exactly one of the two.
    """

    host: str
    port: int = Field(default=993, gt=0, lt=65536)
    tls: Literal["implicit", "starttls", "none"] = "implicit"
    username: str
    password: SecretRef | None = None
    oauth2: OAuth2Section | None = None
    ca_file: Path | None = None  # trust this CA instead of the system's (a private server)
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    # IMAP servers may drop a client idle for 30 minutes (RFC 2177 §3): IDLE is re-issued,
    # with a NOOP between, well before that.
    idle_renew_minutes: float = Field(default=10, gt=0, le=25)
    inbox: str = "INBOX"  # where new mail arrives
    processed_folder: str = "Processed"  # recorded mail is moved here (created if missing)
    quarantine_folder: str = "Quarantine"  # refused mail is moved here (created if missing)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> ImapSection:
        if self.tls == "none" and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(
                f'tls = "none" is allowed only for a loopback test server '
                f"({', '.join(_LOOPBACK_HOSTS)}), not {self.host!r}"
            )
        folders = (self.inbox, self.processed_folder, self.quarantine_folder)
        if len(set(folders)) != len(folders):
            raise ValueError(
                "inbox, processed_folder and quarantine_folder must be three different folders"
            )
        _one_login(self.username, self.password, self.oauth2, required=True)
        return self


class Mailboxes(Strict):
    """The mailboxes the service watches; either may be absent (then it is not read)."""

    mash: ImapSection | None = None  # the MASH intake inbox: the police spreadsheets
    navigator: ImapSection | None = None  # read receipts, replies and bounces

    def accounts(self) -> dict[str, ImapSection]:
        """The configured mailboxes by name ("mash", "navigator")."""
        return {
            name: account
            for name in ("mash", "navigator")
            if (account := getattr(self, name)) is not None
        }


class InboundSmtpSection(Strict):
    """The optional SMTP listener for police mail routed straight to the gateway: the same
    intake and sender checks as the MASH inbox. STARTTLS is required before MAIL ("none" only
    on a loopback address, for tests); it accepts mail for `recipients` only."""

    host: str = "127.0.0.1"  # the address to listen on ("0.0.0.0" for every interface)
    port: int = Field(default=25, gt=0, lt=65536)
    # The name in the greeting and in the Received and Authentication-Results lines the
    # listener adds; by default the machine's fully qualified name.
    hostname: str | None = None
    tls: Literal["starttls", "none"] = "starttls"
    cert_file: Path | None = None  # PEM certificate chain (needed for STARTTLS)
    key_file: Path | None = None  # its PEM private key
    recipients: tuple[str, ...]  # the MASH address(es) mail is accepted for
    max_message_mb: float = Field(default=25, gt=0, le=200)
    # Every message accepted is kept here as a file, under processed/ or quarantine/ (the
    # mailbox folders' counterparts): nothing is deleted.
    spool: Path = Path("state/smtp-spool")
    timeout_seconds: float = Field(default=300, gt=0, le=3600)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, recipients: tuple[str, ...]) -> tuple[str, ...]:
        if not recipients:
            raise ValueError("name at least one address mail is accepted for")
        for address in recipients:
            local, at, domain = address.rpartition("@")
            if not at or not local or "." not in domain or " " in address:
                raise ValueError(f"{address!r} is not an address (mash@mash.example.org)")
        return tuple(address.lower() for address in recipients)

    @model_validator(mode="after")
    def _tls(self) -> InboundSmtpSection:
        if self.tls == "none" and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(
                f'tls = "none" is allowed only when listening on a loopback address '
                f"({', '.join(_LOOPBACK_HOSTS)}), not {self.host!r}"
            )
        if self.tls == "starttls" and (self.cert_file is None or self.key_file is None):
            raise ValueError('tls = "starttls" needs cert_file and key_file')
        return self


ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class ScheduleSection(Strict):
    """When the service sends the Navigator's mail, Europe/London wall-clock time (HH:MM)."""

    digest_at: ClockTime = "08:30"  # the exceptions digest, before the 09:00 notifications
    chase_at: ClockTime = "14:00"  # the chase list: sent, with no receipt or reply yet
    # The key check (gateway/key_lifecycle.py): before the digest, so the digest lists what
    # it found the same morning.
    key_check_at: ClockTime = "07:30"
    # The directory re-imported from the [directory] files (skipped when they are unchanged;
    # no job at all when they are not configured): before the police spreadsheet arrives.
    directory_refresh_at: ClockTime = "06:00"


class KeysSection(Strict):
    """The contacts' keys and the contacts themselves over time (gateway/key_lifecycle.py)."""

    # Days before a contact's key stops working at which the Navigator is told (in the digest)
    # and the contact asked for a renewed key: each one once, when first crossed.
    warn_days: tuple[int, ...] = (30, 7, 1)
    # A contact whose `Confirmed` date in the contacts list is older than this many months
    # (or who has none) is flagged: people move on, and their address and key with them.
    confirm_contacts_months: int = Field(default=12, ge=1, le=120)

    @field_validator("warn_days")
    @classmethod
    def _warn_days(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if not days:
            raise ValueError("give at least one number of days, e.g. [30, 7, 1]")
        for day in days:
            if not 1 <= day <= 366:
                raise ValueError(f"{day} is not a number of days from 1 to 366")
        if len(set(days)) != len(days):
            raise ValueError(f"{list(days)} names a number of days twice")
        return tuple(sorted(days, reverse=True))


class ApprovalSection(Strict):
    """Approval mode: planned notifications wait for the Navigator's APPROVE before they may
    be sent (gateway/approval.py). Off by default."""

    required: bool = False
    # Europe/London: what is due that day and still waiting is escalated to the manager
    # (the Navigator without one) at this time, so nothing is silently held past 09:00.
    escalate_at: ClockTime = "08:45"


class RetentionSection(Strict):
    """How long personal data is kept (gateway/retention.py), and when the daily purge runs.

    At least 90 days: the Navigator must still be able to answer a school, a police
    correction or a subject access request about last term's notifications. At most seven
    years: the gateway is a conduit, not the record — the school's chronology and the
    police's own systems are, and they keep theirs under their own policies.
    """

    days: int = Field(default=365, ge=90, le=2557)
    purge_at: ClockTime = "02:30"  # Europe/London: a quiet hour, well away from 09:00


class Config(Strict):
    state: StateSection = StateSection()
    rules: RulesSection = RulesSection()
    directory: DirectorySection = DirectorySection()
    intake: IntakeSection = IntakeSection()
    navigator: NavigatorSection = NavigatorSection()
    manager: ManagerSection | None = None
    gnupg: GnupgSection = GnupgSection()
    smtp: SmtpSection = SmtpSection()
    dispatch: DispatchSection = DispatchSection()
    police: PoliceSection | None = None  # needed only by mailbox intake
    schedule: ScheduleSection = ScheduleSection()
    keys: KeysSection = KeysSection()
    approval: ApprovalSection = ApprovalSection()
    retention: RetentionSection = RetentionSection()
    mailboxes: Mailboxes | None = None  # needed only by the mailbox service and poll
    inbound_smtp: InboundSmtpSection | None = None  # the optional SMTP listener (`run`)

    @model_validator(mode="after")
    def _approval_after_the_digest(self) -> Config:
        # The digest is where the Navigator learns what waits: escalating before it is sent
        # would go to the manager over the head of a Navigator who was never asked.
        approval, digest_at = self.approval, self.schedule.digest_at
        if approval.required and approval.escalate_at <= digest_at:
            raise ValueError(
                f"approval.escalate_at ({approval.escalate_at}) must be after schedule.digest_at"
                f" ({digest_at}): the digest tells the Navigator what waits for approval"
            )
        return self

    @model_validator(mode="after")
    def _smtp_intake_can_authenticate(self) -> Config:
        # Mail that comes straight to the listener has passed no server that checked its
        # DKIM: the listener writes its own "none" Authentication-Results on top (so a forged
        # one below is never believed), and only an OpenPGP signature can prove the sender.
        if self.inbound_smtp is None:
            return self
        if self.police is None:
            raise ValueError("[inbound_smtp] needs the [police] section: who may send, and how")
        if self.police.authentication in ("dkim", "both"):
            raise ValueError(
                f"[inbound_smtp] cannot be used with police authentication = "
                f'"{self.police.authentication}": mail received directly has no trusted '
                'Authentication-Results; use "pgp" or "either"'
            )
        return self


@dataclass(frozen=True)
class LoadedConfig:
    """The validated configuration with every path made absolute."""

    source: Path | None  # None: embedded defaults
    config: Config

    @property
    def database(self) -> Path:
        return self.config.state.database

    @property
    def rules_dir(self) -> Path:
        return self.config.rules.directory


def load_config(path: Path | None) -> LoadedConfig:
    """Load and validate the configuration named by `path`, `ENCOMPASS_CONFIG`, or defaults."""
    if path is None and os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    if path is None:
        return LoadedConfig(None, _absolute(Config(), Path.cwd()))
    data = read_toml(path, ConfigError)
    _refuse_inline_secrets(data, path, ())
    config = validate(data, Config, path, ConfigError)
    return LoadedConfig(path, _absolute(config, path.resolve().parent))


def _refuse_inline_secrets(data: object, path: Path, where: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        here = (*where, str(key))
        if isinstance(value, dict):
            _refuse_inline_secrets(value, path, here)
        elif any(word in str(key).lower() for word in _SECRET_WORDS):
            raise ConfigError(
                f"{path}: {'.'.join(here)}: secrets are not allowed in the configuration file; "
                f'write {{ env = "VARIABLE" }} or {{ file = "/path/to/secret" }} instead'
            )


def _absolute(config: Config, base: Path) -> Config:
    def fix(value: Path) -> Path:
        return (base / value.expanduser()).resolve()

    def secret(ref: SecretRef | None) -> SecretRef | None:
        if ref is None or ref.file is None:
            return ref
        return SecretRef(file=fix(ref.file))

    def oauth2(section: OAuth2Section | None) -> OAuth2Section | None:
        if section is None:
            return None
        return section.model_copy(
            update={
                "client_secret": secret(section.client_secret),
                "certificate": section.certificate and fix(section.certificate),
                "certificate_passphrase": secret(section.certificate_passphrase),
                "cache_file": section.cache_file and fix(section.cache_file),
            }
        )

    directory = config.directory
    return config.model_copy(
        update={
            # model_copy, not a new section: a field added later must not be dropped here.
            "state": config.state.model_copy(
                update={
                    "database": fix(config.state.database),
                    "storage_key": secret(config.state.storage_key),
                }
            ),
            "rules": config.rules.model_copy(update={"directory": fix(config.rules.directory)}),
            "gnupg": config.gnupg.model_copy(update={"home": fix(config.gnupg.home)}),
            "smtp": config.smtp.model_copy(
                update={
                    "ca_file": config.smtp.ca_file and fix(config.smtp.ca_file),
                    "password": secret(config.smtp.password),
                    "oauth2": oauth2(config.smtp.oauth2),
                }
            ),
            "navigator": config.navigator.model_copy(
                update={"passphrase": secret(config.navigator.passphrase)}
            ),
            "police": config.police
            and config.police.model_copy(
                update={"mash_passphrase": secret(config.police.mash_passphrase)}
            ),
            "mailboxes": config.mailboxes
            and Mailboxes(
                **{
                    name: account.model_copy(
                        update={
                            "ca_file": account.ca_file and fix(account.ca_file),
                            "password": secret(account.password),
                            "oauth2": oauth2(account.oauth2),
                        }
                    )
                    for name, account in config.mailboxes.accounts().items()
                }
            ),
            "inbound_smtp": config.inbound_smtp
            and config.inbound_smtp.model_copy(
                update={
                    name: fix(value)
                    for name in ("cert_file", "key_file", "spool")
                    if (value := getattr(config.inbound_smtp, name)) is not None
                }
            ),
            "directory": directory.model_copy(
                update={
                    name: fix(value)
                    for name in ("gias", "contacts", "pupil_roll")
                    if (value := getattr(directory, name)) is not None
                }
            ),
        }
    )

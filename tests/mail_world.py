"""The sample day set up against real servers, shared by the end-to-end tests: the sample
police spreadsheet, directory and configuration (gateway/synthetic), real keys pinned for
the notified schools' contacts, the MASH and Navigator mailboxes in a Dovecot on loopback
and an aiosmtpd sink for what the gateway sends. The `world` fixture (tests/conftest.py)
makes one; `site_config` writes the configuration block the end-to-end tests share."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from click.testing import CliRunner, Result
from dovecot import Dovecot, MailUser
from pgp_keys import KeyFactory, PgpKey
from police_mail_corpus import MASH, POLICE, Header, content, mail, police_keyring, signed
from sample_day import INTAKE, notified_urns, pin_real_keys
from smtp_sink import Received, SmtpSink

from gateway.cli import cli
from gateway.config import ImapSection
from gateway.keyring import Keyring, open_keyring
from gateway.store import open_state
from gateway.synthetic import SamplePaths, write_sample


def site_config(
    *,
    navigator: PgpKey,
    gnupg_home: Path,
    smtp_port: int,
    police_fingerprint: str,
    authentication: str = "pgp",
    trusted_authserv_id: str | None = None,
) -> str:
    """The configuration the end-to-end tests add to the sample's: the Navigator's key, the
    gateway's GnuPG home, SMTP to the sink, the police pinned by key."""
    trusted = f'trusted_authserv_id = "{trusted_authserv_id}"\n' if trusted_authserv_id else ""
    return f"""
[navigator]
email = "{navigator.email}"
fingerprint = "{navigator.fingerprint}"

[gnupg]
home = "{gnupg_home}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"

[police]
senders = ["{POLICE}"]
authentication = "{authentication}"
fingerprints = ["{police_fingerprint}"]
{trusted}"""


def imap_block(name: str, account: ImapSection) -> str:
    """The `[mailboxes.<name>]` block for `account` (as `Dovecot.imap_section` gives it)."""
    assert account.password is not None and account.password.file is not None
    return (
        f'\n[mailboxes.{name}]\nhost = "{account.host}"\nport = {account.port}\n'
        f'tls = "{account.tls}"\nusername = "{account.username}"\n'
        f'password = {{ file = "{account.password.file}" }}\n'
    )


@dataclass
class World:
    config: Path
    workbook: Path
    dovecot: Dovecot
    mash: MailUser
    navigator: MailUser
    gnupg_home: Path  # the gateway's own GnuPG home (the Navigator's secret key is in it)
    desk: Keyring  # the police desk's own GnuPG home (its secret key, the Navigator's public)
    police_fingerprint: str
    sink: SmtpSink

    def run(self, *args: str, now: str = INTAKE) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == 0, result.output
        return result

    def police_mail(self, workbook: bytes, *headers: Header) -> bytes:
        """A mail with `workbook` attached, signed by the police key."""
        return self.police_mail_with(("daily-return.xlsx", workbook), headers=headers)

    def police_mail_with(self, *files: tuple[str, bytes], headers: Sequence[Header] = ()) -> bytes:
        entity = signed(content(*files), keyring=self.desk, signer=self.police_fingerprint)
        return mail(entity, headers=headers)

    def police_mail_without_files(self, *headers: Header) -> bytes:
        return self.police_mail_with(headers=headers)

    def state(self) -> sqlite3.Connection:
        """The state database, opened as the gateway opens it (unseal() works)."""
        return open_state(self.config.parent / "state" / "gateway.sqlite3")


@dataclass(frozen=True)
class Sample:
    """The sample day written and its notified schools' contacts given real keys."""

    paths: SamplePaths
    keys: dict[str, PgpKey]  # by contact address
    notified: set[int]  # the URNs the sample spreadsheet notifies


def sample_with_keys(folder: Path, key_factory: KeyFactory) -> Sample:
    sample = write_sample(folder / "sample", reported_on=date(2026, 3, 2))
    notified = notified_urns(sample)
    keys = pin_real_keys(sample.directory.contacts, notified, key_factory, folder / "keys")
    return Sample(sample, keys, notified)


def make_world(
    tmp_path: Path,
    *,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
    dovecot: Dovecot,
) -> World:
    """The sample day's site: its directory imported, both mailboxes in `dovecot`, the
    gateway's keyring holding the Navigator's secret key, the police key and the schools'
    keys."""
    sample = sample_with_keys(tmp_path, key_factory)
    police = key_factory.make(POLICE, name="Police DA desk")
    mash_key = key_factory.make(MASH)
    home = gnupg_home()
    with open_keyring(home) as keyring:
        navigator_key.install_secret(keyring)
        for key in (police, *sample.keys.values()):
            key.install_public(keyring)
    desk = police_keyring(gnupg_home(), police, mash_key)
    navigator_key.install_public(desk)
    mash, navigator = dovecot.new_user("mash"), dovecot.new_user("navigator")
    config = sample.paths.config
    config.write_text(
        config.read_text(encoding="utf-8")
        + site_config(
            navigator=navigator_key,
            gnupg_home=home,
            smtp_port=smtp_sink.port,
            police_fingerprint=police.fingerprint,
        )
        + imap_block("mash", dovecot.imap_section(mash))
        + imap_block("navigator", dovecot.imap_section(navigator)),
        encoding="utf-8",
    )
    world = World(
        config,
        sample.paths.workbook,
        dovecot,
        mash,
        navigator,
        home,
        desk,
        police.fingerprint,
        smtp_sink,
    )
    world.run("directory", "import", "--no-progress")
    return world


def read_receipt(original_message_id: str) -> bytes:
    """An RFC 8098 read receipt, as Thunderbird sends one."""
    return (
        "From: dsl@school.example.org\r\nTo: navigator@mash.example.org\r\n"
        "Subject: Return Receipt (displayed) - Secure notification\r\n"
        "Message-ID: <mdn1@school.example.org>\r\nDate: Mon, 2 Mar 2026 09:10:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe message was displayed.\r\n"
        "--b1\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: school.example.org; Thunderbird\r\n"
        "Final-Recipient: rfc822;dsl@school.example.org\r\n"
        f"Original-Message-ID: {original_message_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        "--b1--\r\n"
    ).encode()


@dataclass
class SendingDay:
    """The sample day's site without mailboxes: the gateway can send (the Navigator's key,
    the notified schools' contacts' keys, SMTP to the sink), the directory imported."""

    sample: SamplePaths
    sink: SmtpSink
    home: Path  # the gateway's GnuPG home
    verifier: Path  # a DSL's home holding only the Navigator's public key
    notified: set[int]  # the URNs the sample spreadsheet notifies

    @property
    def config(self) -> Path:
        return self.sample.config

    def invoke(self, *args: str, now: str = INTAKE) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), "--now", now, *args])

    def run(self, *args: str, now: str = INTAKE) -> Result:
        result = self.invoke(*args, now=now)
        assert result.exit_code == 0, result.output
        return result

    def state(self) -> sqlite3.Connection:
        """The state database, opened as the gateway opens it (unseal() works)."""
        return open_state(self.config.parent / "state" / "gateway.sqlite3")

    def received(self, kind: str) -> list[Received]:
        """What the sink received of the outbox's messages of `kind`, byte for byte."""
        with self.state() as conn:
            bodies = {
                bytes(row["body"])
                for row in conn.execute("SELECT body FROM message WHERE kind = ?", (kind,))
            }
        return [received for received in self.sink.received if received.data in bodies]

    def contacts(self) -> list[dict[str, str]]:
        """The contacts list's rows."""
        with self.sample.directory.contacts.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def write_contacts(self, rows: list[dict[str, str]]) -> None:
        with self.sample.directory.contacts.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def make_sending_day(
    tmp_path: Path,
    *,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
) -> SendingDay:
    sample = sample_with_keys(tmp_path, key_factory)
    home, verifier = gnupg_home(), gnupg_home()
    with open_keyring(home) as keyring:
        navigator_key.install_secret(keyring)
        for key in sample.keys.values():
            key.install_public(keyring)
    with open_keyring(verifier) as keyring:
        navigator_key.install_public(keyring)
    config = sample.paths.config
    config.write_text(
        config.read_text(encoding="utf-8")
        + site_config(
            navigator=navigator_key,
            gnupg_home=home,
            smtp_port=smtp_sink.port,
            police_fingerprint=key_factory.make(POLICE, name="Police DA desk").fingerprint,
        ),
        encoding="utf-8",
    )
    day = SendingDay(sample.paths, smtp_sink, home, verifier, sample.notified)
    day.run("directory", "import", "--no-progress")
    return day

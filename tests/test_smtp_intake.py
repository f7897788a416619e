"""The inbound SMTP listener: police mail sent straight to the gateway over SMTP with
STARTTLS, taken in through the ledger and the same sender checks as the MASH inbox."""

import smtplib
import sqlite3
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pgp_keys import KeyFactory, PgpKey
from police_mail_corpus import (
    MASH,
    POLICE,
    STRANGER,
    TRUSTED,
    authentication_results,
    content,
    mail,
    police_keyring,
    signed,
)
from sample_day import INTAKE, notified_urns, pin_real_keys
from smtp_sink import HOST, Certificate, SmtpSink, free_port

from gateway.cli import cli
from gateway.clock import FixedClock
from gateway.config import load_config
from gateway.keyring import open_keyring
from gateway.smtp_intake import SmtpIntake, SmtpListener
from gateway.synthetic import write_sample


@dataclass
class Site:
    config: Path
    port: int
    certificate: Certificate
    spool: Path
    police_mail: Callable[[bytes], bytes]  # a workbook → a mail signed by the police key
    workbook: bytes

    def client(self, *, starttls: bool = True) -> smtplib.SMTP:
        client = smtplib.SMTP(HOST, self.port, timeout=30)
        client.ehlo("mail.police.example.org")
        if starttls:
            context = ssl.create_default_context(cafile=str(self.certificate.cert))
            client.starttls(context=context)
            client.ehlo("mail.police.example.org")
        return client

    def send(self, raw: bytes, *, to: str = MASH) -> tuple[int, bytes]:
        with self.client() as client:
            client.mail(POLICE)
            code, reply = client.rcpt(to)
            if code != 250:
                return code, reply
            return client.data(raw)

    def state(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.config.parent / "state" / "gateway.sqlite3")
        conn.row_factory = sqlite3.Row
        return conn

    def count(self, table: str) -> int:
        with self.state() as conn:
            number: int = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return number


@pytest.fixture
def site(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
    sink_certificate: Certificate,
    request: pytest.FixtureRequest,
) -> Iterator[Site]:
    # Parametrised indirectly with the police authentication mode; "pgp" by default.
    mode = getattr(request, "param", "pgp")
    sample = write_sample(tmp_path / "sample", reported_on=date(2026, 3, 2))
    keys = pin_real_keys(
        sample.directory.contacts, notified_urns(sample), key_factory, tmp_path / "keys"
    )
    police = key_factory.make(POLICE, name="Police DA desk")
    mash_key = key_factory.make(MASH)
    home = gnupg_home()
    with open_keyring(home) as keyring:
        navigator_key.install_secret(keyring)
        police.install_public(keyring)
        for key in keys.values():
            key.install_public(keyring)
    desk = police_keyring(gnupg_home(), police, mash_key)
    port = free_port()
    spool = tmp_path / "spool"
    sample.config.write_text(
        sample.config.read_text(encoding="utf-8")
        + f"""
[navigator]
email = "{navigator_key.email}"
fingerprint = "{navigator_key.fingerprint}"

[gnupg]
home = "{home}"

[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
tls = "none"

[police]
senders = ["{POLICE}"]
authentication = "{mode}"
fingerprints = ["{police.fingerprint}"]
trusted_authserv_id = "{TRUSTED}"

[inbound_smtp]
host = "{HOST}"
port = {port}
hostname = "gateway.mash.example.org"
cert_file = "{sink_certificate.cert}"
key_file = "{sink_certificate.key}"
recipients = ["{MASH}"]
max_message_mb = 1
spool = "{spool}"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    imported = runner.invoke(
        cli, ["--config", str(sample.config), "--now", INTAKE, "directory", "import"]
    )
    assert imported.exit_code == 0, imported.output

    def police_mail(workbook: bytes) -> bytes:
        return mail(
            signed(
                content(("daily-return.xlsx", workbook)), keyring=desk, signer=police.fingerprint
            )
        )

    loaded = load_config(sample.config)
    section = loaded.config.inbound_smtp
    assert section is not None
    clock = FixedClock(datetime.fromisoformat(INTAKE))
    listener = SmtpListener(section, deliver=SmtpIntake(loaded, section, clock), clock=clock)
    listener.start()
    try:
        yield Site(
            sample.config,
            port,
            sink_certificate,
            spool,
            police_mail,
            sample.workbook.read_bytes(),
        )
    finally:
        listener.stop()


def test_a_signed_police_mail_over_starttls_is_taken_in_before_the_250(site: Site) -> None:
    code, _ = site.send(site.police_mail(site.workbook))
    assert code == 250
    # The 250 came after the commit: the intake is already there to read.
    assert site.count("intake") == 1
    with site.state() as conn:
        record = conn.execute("SELECT * FROM inbound_message").fetchone()
    assert (record["mailbox"], record["disposition"], record["moved"]) == ("smtp", "intake", 1)
    kept = (site.spool / "processed" / f"{record['uid']}.eml").read_bytes()
    assert kept.startswith(b"Authentication-Results: gateway.mash.example.org; none\r\nReceived:")


def test_mail_before_starttls_is_refused(site: Site) -> None:
    with site.client(starttls=False) as client:
        code, reply = client.mail(POLICE)
    assert code == 530
    assert b"STARTTLS" in reply
    assert site.count("inbound_message") == 0


def test_a_message_over_the_size_limit_is_refused_with_552(site: Site) -> None:
    huge = mail(content(("daily-return.xlsx", b"x" * (2 * 1024 * 1024))))
    code, _ = site.send(huge)
    assert code == 552
    assert site.count("inbound_message") == 0


def test_a_spoofed_mail_is_accepted_but_quarantined_and_not_a_row_is_read(site: Site) -> None:
    unsigned = mail(content(("daily-return.xlsx", site.workbook)))
    code, _ = site.send(unsigned)
    assert code == 250
    assert site.count("intake") == 0
    assert site.count("decision") == 0
    with site.state() as conn:
        record = conn.execute("SELECT uid, disposition FROM inbound_message").fetchone()
    assert record["disposition"] == "quarantined"
    assert (site.spool / "quarantine" / f"{record['uid']}.eml").exists()
    with site.state() as conn:
        recipients = {row[0] for row in conn.execute("SELECT recipient FROM message")}
    assert POLICE not in recipients  # the Navigator is alerted; the "sender" hears nothing


@pytest.mark.parametrize("site", ["either"], indirect=True)
def test_a_forged_authentication_results_is_hidden_under_the_listeners_own(site: Site) -> None:
    # Unsigned, with the DKIM and DMARC pass the trusted server would write: only a server
    # before the gateway could have added it, and with direct SMTP there is none.
    forged = mail(
        content(("daily-return.xlsx", site.workbook)),
        trace=[("Authentication-Results", authentication_results())],
    )
    code, _ = site.send(forged)
    assert code == 250
    assert site.count("intake") == 0


def test_the_same_message_sent_twice_is_taken_in_once(site: Site) -> None:
    raw = site.police_mail(site.workbook)
    assert site.send(raw)[0] == 250
    assert site.send(raw)[0] == 250
    assert site.count("intake") == 1
    with site.state() as conn:
        rows = conn.execute("SELECT uid, duplicate_of FROM inbound_message ORDER BY uid").fetchall()
    assert [tuple(row) for row in rows] == [(1, None), (2, 1)]


def test_mail_for_another_recipient_is_refused_with_550(site: Site) -> None:
    code, _ = site.send(site.police_mail(site.workbook), to=STRANGER)
    assert code == 550
    assert site.count("inbound_message") == 0

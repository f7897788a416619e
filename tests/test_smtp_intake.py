"""The inbound SMTP listener: police mail sent straight to the gateway over SMTP with
STARTTLS, taken in through the ledger and the same sender checks as the MASH inbox."""

import json
import smtplib
import socket
import sqlite3
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from mail_world import sample_with_keys, site_config
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
from pydantic import ValidationError
from sample_day import INTAKE
from smtp_sink import HOST, Certificate, SmtpSink, free_port

from gateway.at_rest import StorageKey
from gateway.cli import cli
from gateway.clock import FixedClock, SystemClock
from gateway.config import InboundSmtpSection, load_config
from gateway.errors import ConfigError
from gateway.keyring import open_keyring
from gateway.mail_ledger import Disposition, DispositionKind, InboundRecord, LedgerKey
from gateway.service import Service
from gateway.smtp_intake import SmtpIntake, SmtpListener, Spool, read_kept, recover, take
from gateway.store import open_state


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
        conn = open_state(self.config.parent / "state" / "gateway.sqlite3")
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
) -> Site:
    # Parametrised indirectly with the police authentication mode; "pgp" by default.
    mode = getattr(request, "param", "pgp")
    sample = sample_with_keys(tmp_path, key_factory)
    police = key_factory.make(POLICE, name="Police DA desk")
    mash_key = key_factory.make(MASH)
    home = gnupg_home()
    with open_keyring(home) as keyring:
        navigator_key.install_secret(keyring)
        police.install_public(keyring)
        for key in sample.keys.values():
            key.install_public(keyring)
    desk = police_keyring(gnupg_home(), police, mash_key)
    port = free_port()
    spool = tmp_path / "spool"
    config = sample.paths.config
    config.write_text(
        config.read_text(encoding="utf-8")
        + site_config(
            navigator=navigator_key,
            gnupg_home=home,
            smtp_port=smtp_sink.port,
            police_fingerprint=police.fingerprint,
            authentication=mode,
            trusted_authserv_id=TRUSTED,
        )
        + f"""
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
    imported = runner.invoke(cli, ["--config", str(config), "--now", INTAKE, "directory", "import"])
    assert imported.exit_code == 0, imported.output

    def police_mail(workbook: bytes) -> bytes:
        return mail(
            signed(
                content(("daily-return.xlsx", workbook)), keyring=desk, signer=police.fingerprint
            )
        )

    return Site(
        config, port, sink_certificate, spool, police_mail, sample.paths.workbook.read_bytes()
    )


@pytest.fixture
def listening(site: Site) -> Iterator[Site]:
    """The site with its listener taking mail in (at the fixed instant of INTAKE)."""
    loaded = load_config(site.config)
    section = loaded.config.inbound_smtp
    assert section is not None
    clock = FixedClock(datetime.fromisoformat(INTAKE))
    listener = SmtpListener(section, deliver=SmtpIntake(loaded, section, clock), clock=clock)
    listener.start()
    try:
        yield site
    finally:
        listener.stop()


def test_a_signed_police_mail_over_starttls_is_taken_in_before_the_250(listening: Site) -> None:
    code, _ = listening.send(listening.police_mail(listening.workbook))
    assert code == 250
    # The 250 came after the commit: the intake is already there to read.
    assert listening.count("intake") == 1
    with listening.state() as conn:
        record = conn.execute("SELECT * FROM inbound_message").fetchone()
    assert (record["mailbox"], record["disposition"], record["moved"]) == ("smtp", "intake", 1)
    kept_file = listening.spool / "processed" / f"{record['uid']}.eml.sealed"
    # Kept sealed: the spreadsheet travelled signed, not encrypted.
    assert b"daily-return" not in kept_file.read_bytes()
    shown = CliRunner().invoke(
        cli, ["--config", str(listening.config), "spool", "show", str(kept_file)]
    )
    assert shown.exit_code == 0, shown.output
    kept = shown.stdout_bytes
    assert kept.startswith(b"Authentication-Results: gateway.mash.example.org; none\r\nReceived:")


def test_mail_before_starttls_is_refused(listening: Site) -> None:
    with listening.client(starttls=False) as client:
        code, reply = client.mail(POLICE)
    assert code == 530
    assert b"STARTTLS" in reply
    assert listening.count("inbound_message") == 0


def test_a_message_over_the_size_limit_is_refused_with_552(listening: Site) -> None:
    huge = mail(content(("daily-return.xlsx", b"x" * (2 * 1024 * 1024))))
    code, _ = listening.send(huge)
    assert code == 552
    assert listening.count("inbound_message") == 0


def test_a_spoofed_mail_is_accepted_but_quarantined_and_not_a_row_is_read(listening: Site) -> None:
    unsigned = mail(content(("daily-return.xlsx", listening.workbook)))
    code, _ = listening.send(unsigned)
    assert code == 250
    assert listening.count("intake") == 0
    assert listening.count("decision") == 0
    with listening.state() as conn:
        record = conn.execute("SELECT uid, disposition FROM inbound_message").fetchone()
    assert record["disposition"] == "quarantined"
    assert (listening.spool / "quarantine" / f"{record['uid']}.eml.sealed").exists()
    with listening.state() as conn:
        recipients = {row[0] for row in conn.execute("SELECT recipient FROM message")}
    assert POLICE not in recipients  # the Navigator is alerted; the "sender" hears nothing


@pytest.mark.parametrize("site", ["either"], indirect=True)
def test_a_forged_authentication_results_is_hidden_under_the_listeners_own(listening: Site) -> None:
    # Unsigned, with the DKIM and DMARC pass the trusted server would write: only a server
    # before the gateway could have added it, and with direct SMTP there is none.
    forged = mail(
        content(("daily-return.xlsx", listening.workbook)),
        trace=[("Authentication-Results", authentication_results())],
    )
    code, _ = listening.send(forged)
    assert code == 250
    assert listening.count("intake") == 0


def test_the_same_message_sent_twice_is_taken_in_once(listening: Site) -> None:
    raw = listening.police_mail(listening.workbook)
    assert listening.send(raw)[0] == 250
    assert listening.send(raw)[0] == 250
    assert listening.count("intake") == 1
    with listening.state() as conn:
        rows = conn.execute("SELECT uid, duplicate_of FROM inbound_message ORDER BY uid").fetchall()
    assert [tuple(row) for row in rows] == [(1, None), (2, 1)]


def test_mail_for_another_recipient_is_refused_with_550(listening: Site) -> None:
    code, _ = listening.send(listening.police_mail(listening.workbook), to=STRANGER)
    assert code == 550
    assert listening.count("inbound_message") == 0


def test_a_database_that_is_busy_is_answered_451_so_the_sender_tries_again(
    tmp_path: Path,
) -> None:
    def locked(raw: bytes) -> None:
        raise sqlite3.OperationalError("database is locked")

    section = InboundSmtpSection(
        host=HOST, port=free_port(), tls="none", recipients=(MASH,), spool=tmp_path
    )
    listener = SmtpListener(section, deliver=locked, clock=FixedClock(datetime.now(UTC)))
    listener.start()
    try:
        with smtplib.SMTP(HOST, section.port, timeout=30) as client:
            client.ehlo("mail.police.example.org")
            client.mail(POLICE)
            client.rcpt(MASH)
            code, _ = client.data(mail(content(("daily-return.xlsx", b"PK"))))
    finally:
        listener.stop()
    assert code == 451


def test_the_service_listens_when_configured_and_stops_listening_on_shutdown(site: Site) -> None:
    dispatched = threading.Event()
    service = Service(load_config(site.config), SystemClock(), on_dispatch=dispatched.set)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        until_listening(site.port)
        assert site.send(site.police_mail(site.workbook))[0] == 250
        assert site.count("intake") == 1
        # The intake's notifications were due long ago: the service sends them at once.
        assert dispatched.wait(WAIT)
    finally:
        service.stop.set()
        thread.join()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, site.port), timeout=5).close()


WAIT = 20  # seconds: a generous bound for something that takes well under one


def until_listening(port: int) -> None:
    for _ in range(WAIT * 20):
        try:
            socket.create_connection((HOST, port), timeout=5).close()
            return
        except ConnectionRefusedError:
            threading.Event().wait(0.05)
    raise AssertionError(f"nothing listened on port {port} within {WAIT} s")


def test_plaintext_is_refused_unless_listening_on_loopback() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        InboundSmtpSection(host="0.0.0.0", tls="none", recipients=(MASH,))


def test_starttls_needs_a_certificate_and_key() -> None:
    with pytest.raises(ValidationError, match="cert_file and key_file"):
        InboundSmtpSection(recipients=(MASH,))


def test_the_listener_is_refused_with_dkim_only_authentication(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[police]\nsenders = ["{POLICE}"]\nauthentication = "dkim"\n'
        f'trusted_authserv_id = "{TRUSTED}"\n\n'
        f'[inbound_smtp]\ntls = "none"\nrecipients = ["{MASH}"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="cannot be used with police authentication"):
        load_config(path)


def test_the_commented_example_in_config_example_toml_loads(tmp_path: Path) -> None:
    example = (Path(__file__).parent.parent / "config.example.toml").read_text(encoding="utf-8")
    block = example[example.index("# [inbound_smtp]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    path = tmp_path / "gateway.toml"
    path.write_text(
        example[: example.index("# [inbound_smtp]")] + uncommented + "\n", encoding="utf-8"
    )
    section = load_config(path).config.inbound_smtp
    assert section is not None
    assert (section.tls, section.recipients) == ("starttls", ("mash@mash.example.org",))


class _CrashBeforeFiling(Spool):
    """A spool whose rename into processed/ never happens: the process died just after the
    record committed."""

    def file(self, inbound: InboundRecord) -> Path:
        raise OSError("the process died here")


def test_a_crash_between_the_commit_and_the_filing_is_finished_on_start(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    key = StorageKey.generate()
    raw = mail(content(("daily-return.xlsx", b"PK")))
    now = datetime.fromisoformat(INTAKE)
    calls: list[LedgerKey] = []

    def handle(raw: bytes, key: LedgerKey) -> Disposition:
        calls.append(key)
        return Disposition(DispositionKind.QUARANTINED, reason="test")

    with pytest.raises(OSError):
        take(
            raw,
            conn=conn,
            handle=handle,
            spool=_CrashBeforeFiling(tmp_path, key),
            now=now,
            actor="t",
        )
    assert recover(conn, Spool(tmp_path, key), now=now, actor="t") == 1
    assert read_kept(tmp_path / "quarantine" / "1.eml.sealed", key) == raw
    assert recover(conn, Spool(tmp_path, key), now=now, actor="t") == 0
    assert len(calls) == 1
    conn.close()


def test_a_message_the_intake_fails_on_three_times_is_quarantined_not_refused_forever(
    tmp_path: Path,
) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    spool = Spool(tmp_path / "spool", StorageKey.generate())
    raw = mail(content(("daily-return.xlsx", b"PK")))
    now = datetime.fromisoformat(INTAKE)

    def broken(raw: bytes, key: LedgerKey) -> Disposition:
        raise ValueError("a handler bug this message trips")

    for _ in range(2):  # answered 451: the sender's server keeps it and tries again
        with pytest.raises(ValueError):
            take(raw, conn=conn, handle=broken, spool=spool, now=now, actor="t")
    assert conn.execute("SELECT COUNT(*) FROM inbound_message").fetchone()[0] == 0
    third = take(raw, conn=conn, handle=broken, spool=spool, now=now, actor="t")
    assert third.kind is DispositionKind.QUARANTINED
    assert "not handled after 3 attempts (ValueError)" in third.reason
    assert read_kept(spool.root / "quarantine" / f"{third.key.uid}.eml.sealed", spool.key) == raw
    failures = [
        json.loads(row[0])
        for row in conn.execute("SELECT data FROM audit WHERE event = 'mail.handling_failed'")
    ]
    assert [f["attempts"] for f in failures] == [1, 2, 3]
    conn.close()


def test_a_busy_database_is_never_counted_as_the_message_failing(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.sqlite3")
    spool = Spool(tmp_path / "spool", StorageKey.generate())

    def busy(raw: bytes, key: LedgerKey) -> Disposition:
        raise sqlite3.OperationalError("database is locked")

    raw = mail(content(("daily-return.xlsx", b"PK")))
    for _ in range(4):
        with pytest.raises(sqlite3.OperationalError):
            take(
                raw,
                conn=conn,
                handle=busy,
                spool=spool,
                now=datetime.fromisoformat(INTAKE),
                actor="t",
            )
    assert conn.execute("SELECT COUNT(*) FROM smtp_failure").fetchone()[0] == 0
    conn.close()


def test_a_helo_name_with_a_line_break_cannot_add_a_header_line(tmp_path: Path) -> None:
    taken: list[bytes] = []
    section = InboundSmtpSection(
        host=HOST,
        port=free_port(),
        hostname="gateway.test",
        tls="none",
        recipients=(MASH,),
        spool=tmp_path,
    )
    listener = SmtpListener(section, deliver=taken.append, clock=FixedClock(datetime.now(UTC)))
    listener.start()
    try:
        with (
            socket.create_connection((HOST, section.port), timeout=30) as raw,
            raw.makefile("rb") as replies,
        ):
            replies.readline()  # the greeting
            for command in (
                b"HELO evil\rAuthentication-Results: x; dkim=pass",
                b"MAIL FROM:<" + POLICE.encode() + b">",
                b"RCPT TO:<" + MASH.encode() + b">",
                b"DATA",
            ):
                raw.sendall(command + b"\r\n")
                replies.readline()
            raw.sendall(b"Subject: hello\r\n\r\nbody\r\n.\r\n")
            assert replies.readline().startswith(b"250")
    finally:
        listener.stop()
    (message,) = taken
    header = message.split(b"\r\n\r\n", 1)[0]
    # A mail reader splits lines at a bare CR too (str.splitlines does).
    lines = header.splitlines()
    assert [line for line in lines if line.startswith(b"Authentication-Results")] == [
        b"Authentication-Results: gateway.test; none"
    ]

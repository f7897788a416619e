"""The day through the command line: directory, keys, intake at 07:00, dispatch at 09:00 —
real GnuPG, a real SMTP sink, every message checked by the shared sealing invariant."""

import json
import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from invariants import assert_sealed
from pgp_keys import KeyFactory, PgpKey
from sample_day import INTAKE, notified_urns, pin_real_keys
from smtp_sink import SmtpSink

from gateway.cli import cli
from gateway.keyring import Keyring, open_keyring
from gateway.notification_store import notification_from_json
from gateway.pgpmime import open_sealed
from gateway.store import open_state
from gateway.synthetic import SamplePaths, write_sample

BEFORE_NINE = "2026-03-02T08:59:00+00:00"
AT_NINE = "2026-03-02T09:00:00+00:00"


class Day:
    def __init__(
        self, sample: SamplePaths, config: Path, keys: dict[str, PgpKey], home: Path
    ) -> None:
        self.sample, self.config, self.keys, self.home = sample, config, keys, home

    def run(self, *args: str, now: str = INTAKE) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == 0, result.output
        return result

    def state(self) -> sqlite3.Connection:
        conn = open_state(self.config.parent / "state" / "gateway.sqlite3")
        return conn


@pytest.fixture
def day(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
) -> Day:
    sample = write_sample(tmp_path / "sample", reported_on=date(2026, 3, 2))
    notified = notified_urns(sample)
    keys = pin_real_keys(sample.directory.contacts, notified, key_factory, tmp_path / "keys")
    home = gnupg_home()
    with open_keyring(home) as keyring:
        navigator_key.install_secret(keyring)
    config = sample.config
    config.write_text(
        config.read_text(encoding="utf-8")
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
""",
        encoding="utf-8",
    )
    return Day(sample, config, keys, home)


def test_the_day_from_intake_to_sealed_messages_at_nine(
    day: Day,
    smtp_sink: SmtpSink,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    day.run("directory", "import", "--no-progress")
    imported = day.run("keys", "import", str(day.config.parent.parent / "keys"))
    assert f"{len(day.keys)} keys imported" in imported.output
    assert "serves: URN" in imported.output
    listed = day.run("keys", "list")
    assert "with a usable key" in listed.output

    processed = day.run("process", str(day.sample.workbook))
    assert "sealed:" in processed.output
    early = day.run("dispatch", now=BEFORE_NINE)
    assert "dispatch: 0 sent" in early.output
    assert smtp_sink.received == []

    at_nine = day.run("dispatch", now=AT_NINE)
    with day.state() as conn:
        messages = conn.execute("SELECT * FROM message").fetchall()
        contents = {
            row["reference"]: notification_from_json(json.loads(row["content"]))
            for row in conn.execute(
                "SELECT reference, unseal(content) AS content FROM notification"
            )
        }
    assert messages and f"dispatch: {len(messages)} sent" in at_nine.output
    assert len(smtp_sink.received) == len(messages)
    for received in smtp_sink.received:
        (recipient,) = received.rcpt_tos
        row = next(
            m for m in messages if m["recipient"] == recipient and m["body"] == received.data
        )
        notification = contents[row["reference"]]
        others = [
            child.display_name
            for other in contents.values()
            if other.incident.ref == notification.incident.ref and other is not notification
            for child in other.children
        ]
        assert_sealed(
            received.data,
            recipient_home_or_keyring=recipient_home(day.keys[recipient]),
            navigator_fingerprint=navigator_key.fingerprint,
            reference=notification.reference,
            must_contain=[child.display_name for child in notification.children],
            must_not_contain=others,
            dates_of_birth=[c.dob for c in notification.children if c.dob],
        )
    assert "intact" in day.run("audit", "verify").output


def test_a_second_dispatch_sends_nothing_again(day: Day, smtp_sink: SmtpSink) -> None:
    day.run("directory", "import", "--no-progress")
    day.run("keys", "import", str(day.config.parent.parent / "keys"))
    day.run("process", str(day.sample.workbook))
    day.run("dispatch", now=AT_NINE)
    sent = len(smtp_sink.received)
    again = day.run("dispatch", now="2026-03-02T09:05:00+00:00")
    assert "dispatch: 0 sent" in again.output
    assert len(smtp_sink.received) == sent


def test_the_navigator_gets_the_digest_and_the_chase_list_encrypted(
    day: Day, smtp_sink: SmtpSink, navigator_key: PgpKey
) -> None:
    day.run("directory", "import", "--no-progress")
    day.run("keys", "import", str(day.config.parent.parent / "keys"))
    day.run("process", str(day.sample.workbook))
    digest = day.run("digest", now="2026-03-02T08:30:00+00:00")
    assert "1 sent" in digest.output
    (received,) = smtp_sink.received
    assert received.rcpt_tos == (navigator_key.email,)
    outer = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: Gateway digest GW-" in outer
    assert b"Auto-Submitted: auto-generated" in outer
    with open_keyring(day.home) as keyring:
        opened = open_sealed(keyring, received.data)
    assert opened.signature_valid
    text = opened.inner.get_body(preferencelist=("plain",))
    assert text is not None and "xception" in text.get_content()

    day.run("dispatch", now=AT_NINE)
    chase = day.run("digest", "--chase", now="2026-03-02T14:00:00+00:00")
    assert "1 sent" in chase.output


def _check(day: Day, now: str = INTAKE) -> Result:
    return CliRunner().invoke(cli, ["--config", str(day.config), "--now", now, "check"])


def test_check_names_every_contact_whose_key_cannot_be_used(day: Day) -> None:
    day.run("directory", "import", "--no-progress")
    day.run("keys", "import", str(day.config.parent.parent / "keys"))
    result = _check(day)
    assert result.exit_code == 1
    # The sample pins made-up fingerprints for the schools the spreadsheet does not notify.
    assert "PROBLEM: URN " in result.output
    assert "Navigator" not in result.output  # its secret key is in the gateway's home
    for email in day.keys:
        assert email not in result.output


def test_check_says_when_the_directory_is_empty(day: Day, tmp_path: Path) -> None:
    elsewhere = tmp_path / "fresh" / "gateway.toml"  # the same settings, a new database
    elsewhere.parent.mkdir()
    elsewhere.write_text(day.config.read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(elsewhere), "--now", INTAKE, "check"])
    assert result.exit_code == 1
    assert "PROBLEM: the directory is empty" in result.output


def test_check_warns_when_the_storage_key_lies_beside_the_database(day: Day) -> None:
    day.run("directory", "import", "--no-progress")
    assert "warning: personal data at rest is sealed with" in _check(day).output


def test_check_warns_before_the_term_dates_run_out(day: Day) -> None:
    day.run("directory", "import", "--no-progress")
    result = _check(day, now="2028-08-01T07:00:00+00:00")
    assert "term dates end on 2028-08-31" in result.output

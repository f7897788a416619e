"""`make demo`: the whole day on embedded defaults, run once through the command line.

Every message the demo's mail world received must pass the shared sealing invariant with
the schools' own keys; the school left without a key must get nothing; and nothing the demo
started (its SMTP server's thread, a gpg-agent) may outlive it.
"""

from __future__ import annotations

import csv
import email.policy
import json
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from invariants import assert_sealed
from openpyxl import load_workbook

from gateway import audit
from gateway.cli import cli
from gateway.config import load_config
from gateway.demo import DemoError, run_demo
from gateway.demo_keys import SCHOOLS_HOME
from gateway.keyring import stop_agent
from gateway.model import Notification
from gateway.notification_store import notification_from_json
from gateway.store import open_state

# Long enough that GnuPG homes inside it would not fit gpg-agent's socket path: the demo
# must put them somewhere short instead.
LONG_NAME = "a-demo-workspace-with-a-name-too-long-for-gpg-agent-socket-paths"


@dataclass(frozen=True)
class DemoDay:
    workspace: Path
    result: Result
    gateway_home: Path
    schools_home: Path
    threads_left: frozenset[threading.Thread]  # started by the demo and still alive after it
    agents_left: str  # `pgrep -af` of processes naming the demo's GnuPG homes, after it

    def state(self) -> sqlite3.Connection:
        conn = open_state(self.workspace / "state" / "gateway.sqlite3")
        return conn


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoDay]:
    workspace = tmp_path_factory.mktemp("demo") / LONG_NAME
    before = set(threading.enumerate())
    result = CliRunner().invoke(cli, ["demo", "--workspace", str(workspace)])
    threads_left = frozenset(t for t in threading.enumerate() if t not in before)
    config = workspace / "gateway.toml"
    gateway_home = load_config(config).config.gnupg.home if config.exists() else None
    try:
        if result.exit_code != 0 or gateway_home is None:
            pytest.fail(f"the demo failed (exit {result.exit_code}):\n{result.output}")
        homes = gateway_home.parent
        agents = subprocess.run(["pgrep", "-af", str(homes)], capture_output=True, text=True)
        yield DemoDay(
            workspace,
            result,
            gateway_home,
            homes / SCHOOLS_HOME,
            threads_left,
            agents.stdout.strip(),
        )
    finally:
        # Opening messages starts an agent in the schools' home: stop it, and remove the
        # homes the demo put in /tmp for this too-long workspace.
        if gateway_home is not None:
            stop_agent(gateway_home.parent / SCHOOLS_HOME)
            stop_agent(gateway_home)
            if not gateway_home.is_relative_to(workspace):
                shutil.rmtree(gateway_home.parent, ignore_errors=True)


def test_the_demo_runs_the_day_and_says_what_happened(demo_day: DemoDay) -> None:
    output = demo_day.result.output
    assert demo_day.result.exit_code == 0
    for step in ("07:30", "08:59", "09:00", "09:05"):
        assert f"Mon 02 Mar 2026 {step}" in output
    assert "Nothing is due before 09:00" in output
    assert "[exception: no_key]" in output
    assert "audit log intact" in output
    assert str(demo_day.workspace / "navigator-record.xlsx") in output


def test_gnupg_homes_are_kept_short_when_the_workspace_path_is_long(demo_day: DemoDay) -> None:
    assert not demo_day.gateway_home.is_relative_to(demo_day.workspace)
    assert len(str(demo_day.schools_home)) < len(str(demo_day.workspace))


def test_every_delivered_message_is_sealed_for_its_own_school_only(demo_day: DemoDay) -> None:
    with demo_day.state() as conn:
        messages = {row["message_id"]: row for row in conn.execute("SELECT * FROM message")}
        notifications = {
            row["reference"]: notification_from_json(json.loads(row["content"]))
            for row in conn.execute(
                "SELECT reference, unseal(content) AS content FROM notification"
            )
        }
        decided = [
            json.loads(row["record"])
            for row in conn.execute("SELECT unseal(record) AS record FROM decision")
        ]
    envelopes = _envelopes(demo_day.workspace / "mail")
    emls = sorted((demo_day.workspace / "mail").glob("*.eml"))
    sent = [m for m in messages.values() if m["state"] == "sent"]
    assert emls and len(emls) == len(sent) == len(envelopes)
    navigator = load_config(demo_day.workspace / "gateway.toml").config.navigator.fingerprint
    assert navigator is not None
    for eml in emls:
        raw = eml.read_bytes()
        headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
        message = messages[str(headers["Message-ID"])]
        assert envelopes[eml.name] == message["recipient"] == str(headers["To"])
        notification = notifications[message["reference"]]
        assert_sealed(
            raw,
            recipient_home_or_keyring=demo_day.schools_home,
            navigator_fingerprint=navigator,
            reference=notification.reference,
            must_contain=[child.display_name for child in notification.children],
            must_not_contain=_others_of_the_incident(notification, notifications, decided),
            dates_of_birth=[child.dob for child in notification.children if child.dob],
        )


def test_the_school_without_a_key_gets_nothing_and_is_a_no_key_exception(
    demo_day: DemoDay,
) -> None:
    with demo_day.state() as conn:
        excepted = conn.execute(
            "SELECT reference, urn, exception_kind FROM notification WHERE state = 'exception'"
        ).fetchall()
        (keyless,) = excepted
        addresses = {
            row["email"]
            for row in conn.execute("SELECT email FROM contact WHERE urn = ?", (keyless["urn"],))
        }
        others = conn.execute(
            "SELECT state FROM notification WHERE reference != ?", (keyless["reference"],)
        ).fetchall()
        its_messages = conn.execute(
            "SELECT COUNT(*) FROM message WHERE reference = ?", (keyless["reference"],)
        ).fetchone()[0]
    assert keyless["exception_kind"] == "no_key"
    assert its_messages == 0
    assert addresses and not addresses & set(_envelopes(demo_day.workspace / "mail").values())
    assert others and {row["state"] for row in others} == {"sent"}


def test_the_audit_log_verifies_after_the_day(demo_day: DemoDay) -> None:
    with demo_day.state() as conn:
        report = audit.verify(conn)
    assert report.ok, str(report)


def test_the_navigators_record_is_written(demo_day: DemoDay) -> None:
    workbook = load_workbook(demo_day.workspace / "navigator-record.xlsx", read_only=True)
    try:
        rows = list(workbook.active.iter_rows(values_only=True)) if workbook.active else []
    finally:
        workbook.close()
    assert len(rows) > 1  # a header and a row per child


def test_the_demo_leaves_nothing_running(demo_day: DemoDay) -> None:
    assert demo_day.threads_left == frozenset()
    assert demo_day.agents_left == ""


def test_a_workspace_that_already_holds_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DemoError, match="not empty"):
        run_demo(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_demo_keeps_its_own_clock(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--now", "2026-03-02T07:00:00+00:00", "demo", "--workspace", str(tmp_path / "w")]
    )
    assert result.exit_code == 2
    assert "leave out --now" in result.output
    assert not (tmp_path / "w").exists()


def _envelopes(mail: Path) -> dict[str, str]:
    """Each filed message's envelope recipient, from the mail world's index."""
    with (mail / "index.csv").open(encoding="utf-8", newline="") as handle:
        return {row["file"]: row["rcpt_to"] for row in csv.DictReader(handle)}


def _others_of_the_incident(
    notification: Notification,
    notifications: dict[str, Notification],
    decided: list[dict[str, object]],
) -> list[str]:
    """Every child of the same incident this school is not told about: those named to
    other schools, and those the plan sent nowhere (withheld, exceptions)."""
    incident = notification.incident.ref
    names = [
        child.display_name
        for other in notifications.values()
        if other.incident.ref == incident and other.reference != notification.reference
        for child in other.children
    ]
    names += [
        str(record["child"])
        for record in decided
        if record["incident_ref"] == incident and record["urn"] != notification.urn
    ]
    return names

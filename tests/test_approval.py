"""Approval mode: notifications wait for the Navigator's APPROVE; the digest says what waits
and by when; at escalate_at what is due today and still waiting goes to the manager, sealed,
never silently held; approved, it goes (at once, when 09:00 has passed). Real GnuPG, the
gateway's own intake, sealing and dispatch to an SMTP sink."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from navigator_world import (
    AFTER_NINE,
    BEFORE_NINE,
    ELM_DSL,
    FINN_NOTIFICATION,
    NINE,
    World,
    make_world,
)
from pgp_keys import KeyFactory, PgpKey
from smtp_sink import SmtpSink
from test_directory_refresh import serve_until_scheduled

from gateway.cli import cli
from gateway.clock import LONDON, SystemClock
from gateway.config import ApprovalSection, Config, LoadedConfig, StateSection
from gateway.digest import build_digest
from gateway.digest_render import render_digest
from gateway.errors import ConfigError
from gateway.health import check
from gateway.keyring import Keyring
from gateway.operations import escalate_if_late, escalate_now
from gateway.pgpmime import open_sealed
from gateway.render import NavigatorContact
from gateway.ruleset import load_rules
from gateway.service import ESCALATE_JOB, Service
from gateway.validation import validate

ESCALATE_AT = datetime(2026, 3, 2, 8, 45, tzinfo=LONDON)


@pytest.fixture
def manager(key_factory: KeyFactory) -> PgpKey:
    return key_factory.make("manager@la.example.org", name="Safeguarding Manager")


@pytest.fixture
def world(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
    manager: PgpKey,
) -> Iterator[World]:
    built = make_world(
        tmp_path,
        key_factory=key_factory,
        navigator_key=navigator_key,
        gnupg_home=gnupg_home,
        sink=smtp_sink,
        approval=True,
        manager=manager,
    )
    manager.install_public(built.keyring)
    yield built
    built.conn.close()


def sent_to(world: World) -> list[tuple[str, ...]]:
    return [received.rcpt_tos for received in world.sink.received]


def test_a_waiting_notification_is_sealed_but_not_sent_at_nine(world: World) -> None:
    assert (
        world.conn.execute(
            "SELECT state FROM notification WHERE reference = ?", (FINN_NOTIFICATION,)
        ).fetchone()[0]
        == "sealed"
    )
    assert world.dispatch(NINE) == 0
    assert world.sink.received == []


def test_the_digest_says_what_waits_and_by_when(world: World) -> None:
    digest = build_digest(world.conn, now=BEFORE_NINE, since=None, approve_by="08:45")
    assert [w.reference for w in digest.awaiting_approval] == [FINN_NOTIFICATION]
    inner = render_digest(digest, navigator=NavigatorContact("Sam Navigator", "n@x.org", ""))
    text = inner.get_body(preferencelist=("plain",))
    assert text is not None
    content = text.get_content()
    assert "WAITING FOR YOUR APPROVAL (1)" in content
    assert f"reply APPROVE B{world.intake_id} (a whole spreadsheet)" in content
    assert "Approve by 08:45 for them to go at 09:00" in content
    assert f"- {FINN_NOTIFICATION} (B{world.intake_id}) to Elm Primary" in content


def test_approved_before_nine_it_goes_at_nine(world: World, navigator_key: PgpKey) -> None:
    result = world.run(f"APPROVE B{world.intake_id}", signer=navigator_key.fingerprint)
    assert result.done and not result.send_now, result.line
    assert result.detail == "1 notifications approved, to be sent when due"
    assert world.dispatch(BEFORE_NINE) == 0
    assert world.dispatch(NINE) == 1
    assert sent_to(world) == [(ELM_DSL,)]
    approved = world.conn.execute("SELECT approved_by, signer FROM approval").fetchone()
    assert tuple(approved) == ("test", navigator_key.fingerprint)


def test_unapproved_at_the_deadline_it_is_escalated_to_the_manager_sealed(
    world: World,
    manager: PgpKey,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    assert escalate_now(world.conn, config=world.config, now=ESCALATE_AT, actor="test") == (
        FINN_NOTIFICATION,
    )
    world.dispatch(ESCALATE_AT)
    (alert,) = world.sink.received
    assert alert.rcpt_tos == (manager.email,)
    assert FINN_NOTIFICATION.encode() not in alert.data  # only inside the encryption
    opened = open_sealed(recipient_home(manager), alert.data)
    assert opened.signature_valid
    text = opened.inner.get_content()
    assert FINN_NOTIFICATION in text and "Elm Primary" in text and "held, not sent" in text
    # On record, once: the next check has nothing new to escalate, and the digest says so.
    (data,) = [
        json.loads(row[0])
        for row in world.conn.execute("SELECT data FROM audit WHERE event = 'approval.escalated'")
    ]
    assert data == {"to": "manager", "references": FINN_NOTIFICATION}
    assert escalate_now(world.conn, config=world.config, now=NINE, actor="test") == ()
    digest = build_digest(world.conn, now=NINE, since=None)
    assert digest.awaiting_approval[0].escalated_at == ESCALATE_AT.astimezone(UTC)
    assert world.dispatch(NINE) == 0  # still held: escalation is not approval


def test_approved_after_the_escalation_it_goes_at_once(world: World) -> None:
    escalate_now(world.conn, config=world.config, now=ESCALATE_AT, actor="test")
    world.dispatch(ESCALATE_AT)
    assert world.config.source is not None
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(world.config.source),
            "--now",
            AFTER_NINE.isoformat(),
            "resolve",
            "APPROVE",
            FINN_NOTIFICATION,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 notifications approved, to be sent at once" in result.output
    assert sent_to(world)[-1] == (ELM_DSL,)


def test_nothing_due_today_nothing_is_escalated(world: World) -> None:
    world.conn.execute("UPDATE notification SET due = '2026-03-03T09:00:00+00:00'")
    assert escalate_now(world.conn, config=world.config, now=ESCALATE_AT, actor="test") == ()


def test_a_withheld_notification_no_longer_waits(world: World) -> None:
    assert world.run(f"WITHHOLD {FINN_NOTIFICATION} the police asked us to wait").done
    assert escalate_now(world.conn, config=world.config, now=ESCALATE_AT, actor="test") == ()
    assert not world.run("APPROVE ALL").done


def test_without_a_manager_the_navigator_is_told(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
) -> None:
    world = make_world(
        tmp_path,
        key_factory=key_factory,
        navigator_key=navigator_key,
        gnupg_home=gnupg_home,
        sink=smtp_sink,
        approval=True,
    )
    assert escalate_now(world.conn, config=world.config, now=ESCALATE_AT, actor="test")
    world.dispatch(ESCALATE_AT)
    assert sent_to(world) == [(navigator_key.email,)]
    world.conn.close()


def test_with_approval_off_nothing_waits(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
) -> None:
    world = make_world(
        tmp_path,
        key_factory=key_factory,
        navigator_key=navigator_key,
        gnupg_home=gnupg_home,
        sink=smtp_sink,
    )
    assert world.conn.execute("SELECT count(*) FROM approval").fetchone()[0] == 0
    assert world.dispatch(NINE) == 1
    world.conn.close()


def test_escalation_must_come_after_the_digest() -> None:
    with pytest.raises(ConfigError, match=r"approval.escalate_at \(08:15\) must be after"):
        validate(
            {"approval": {"required": True, "escalate_at": "08:15"}},
            Config,
            Path("gateway.toml"),
            ConfigError,
        )


def test_the_service_escalates_at_the_configured_time_only_in_approval_mode(
    tmp_path: Path,
) -> None:
    def scheduled(required: bool) -> datetime | None:
        config = Config(
            state=StateSection(database=tmp_path / f"{required}.sqlite3"),
            approval=ApprovalSection(required=required, escalate_at="08:50"),
        )
        when, _ = serve_until_scheduled(
            Service(LoadedConfig(None, config), SystemClock()), ESCALATE_JOB
        )
        return when

    when = scheduled(True)
    assert when is not None
    assert (when.astimezone(LONDON).hour, when.astimezone(LONDON).minute) == (8, 50)
    assert scheduled(False) is None


def test_what_arrives_after_the_escalation_time_is_escalated_at_once(world: World) -> None:
    assert escalate_if_late(world.conn, config=world.config, now=BEFORE_NINE, actor="t") == ()
    assert escalate_if_late(world.conn, config=world.config, now=AFTER_NINE, actor="t") == (
        FINN_NOTIFICATION,
    )


def test_check_says_when_notifications_wait_but_approval_mode_is_off(world: World) -> None:
    off = LoadedConfig(
        world.config.source, world.config.config.model_copy(update={"approval": ApprovalSection()})
    )
    findings = check(
        world.conn,
        config=off,
        calendar=load_rules(off.rules_dir).calendar,
        keyring=world.keyring,
        now=NINE,
    )
    assert any(
        finding.problem
        and "1 notifications wait for APPROVE but approval mode is off" in finding.text
        for finding in findings
    )

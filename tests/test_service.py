"""The service: dispatch set from the database, one instance per database, clean shutdown."""

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import WAIT, SealedOutbox, until
from smtp_sink import SmtpSink

from gateway.clock import SystemClock
from gateway.config import (
    Config,
    GnupgSection,
    LoadedConfig,
    NavigatorSection,
    StateSection,
)
from gateway.errors import StateError
from gateway.service import Service, instance_lock


def service_for(outbox: SealedOutbox, sink: SmtpSink) -> Service:
    config = Config(
        state=StateSection(database=outbox.database),
        gnupg=GnupgSection(home=outbox.keyring.home),
        navigator=NavigatorSection(
            email=outbox.navigator.email, fingerprint=outbox.navigator.fingerprint
        ),
        smtp=sink.smtp_section(),
        dispatch=outbox.settings,
    )
    return Service(LoadedConfig(None, config), SystemClock())


def serve(service: Service) -> threading.Thread:
    thread = threading.Thread(target=service.run)
    thread.start()
    return thread


def test_after_a_restart_what_was_due_is_sent_at_once(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    (message,) = sealed_outbox.add()  # due at 09:00 on a morning long past
    service = service_for(sealed_outbox, smtp_sink)
    thread = serve(service)
    try:
        until(lambda: len(smtp_sink.received) == 1, "the overdue message")
    finally:
        service.stop.set()
        thread.join()
    sealed_outbox.check(smtp_sink.received[0])
    assert smtp_sink.message_ids() == [message.message_id]


def test_a_message_is_sent_when_it_becomes_due_and_not_before(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    sealed_outbox.add(due=due)
    service = service_for(sealed_outbox, smtp_sink)
    thread = serve(service)
    try:
        until(lambda: len(smtp_sink.received) == 1, "the message at its due time")
        sent_at = datetime.now(UTC)
    finally:
        service.stop.set()
        thread.join()
    assert sent_at >= due
    row = sealed_outbox.conn.execute("SELECT state, sent_at FROM message").fetchone()
    assert row["state"] == "sent"
    assert datetime.fromisoformat(row["sent_at"]) >= due


def test_a_second_instance_on_the_same_database_refuses_to_start(tmp_path: Path) -> None:
    database = tmp_path / "state.sqlite3"
    with instance_lock(database), pytest.raises(StateError, match="already serving"):
        Service(
            LoadedConfig(None, Config(state=StateSection(database=database))), SystemClock()
        ).run()


def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[state]\ndatabase = "state.sqlite3"\n', encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config), "run", "--log-json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lock = tmp_path / "state.sqlite3.service-lock"
    try:
        until(lambda: lock.exists() and lock.read_text().strip() == str(process.pid), "start")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_killed_before_the_due_time_and_restarted_it_still_sends_once(
    sealed_outbox: SealedOutbox, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=4)
    (message,) = sealed_outbox.add(due=due)
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[state]\ndatabase = "{sealed_outbox.database}"\n'
        f'[gnupg]\nhome = "{sealed_outbox.keyring.home}"\n'
        f'[navigator]\nemail = "{sealed_outbox.navigator.email}"\n'
        f'fingerprint = "{sealed_outbox.navigator.fingerprint}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\ntls = "none"\n',
        encoding="utf-8",
    )
    lock = sealed_outbox.database.with_name(sealed_outbox.database.name + ".service-lock")

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until(lambda: lock.exists() and lock.read_text().strip() == str(process.pid), "start")
        return process

    first = start()
    first.kill()  # SIGKILL, before the message is due: nothing may be lost
    first.wait()
    assert smtp_sink.received == []
    second = start()
    try:
        until(lambda: len(smtp_sink.received) == 1, "the message after the restart")
        threading.Event().wait(1)  # a second send, were there one, would come now
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=WAIT) == 0
    assert smtp_sink.message_ids() == [message.message_id]
    assert datetime.now(UTC) >= due


def test_the_service_refuses_a_frozen_clock(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[state]\ndatabase = "state.sqlite3"\n', encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(config),
            "--now",
            "2026-03-02T08:59:30",
            "run",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 2
    assert "leave out --now" in result.stderr

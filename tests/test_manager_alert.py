"""A High-risk incident while the school is closed: the manager is told at once, encrypted."""

import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pgp_keys import KeyFactory, PgpKey

from gateway.clock import LONDON
from gateway.config import DispatchSection, ManagerSection, NavigatorSection
from gateway.keyring import Keyring
from gateway.manager_alert import queue_manager_alerts
from gateway.model import ChildRecord, Decision, Outcome, SourceRow
from gateway.pgpmime import open_sealed
from gateway.plan import Plan
from gateway.sealing import Sealer
from gateway.store import open_state

NOW = datetime(2026, 2, 14, 23, 40, tzinfo=UTC)  # a Saturday night in half term
CHILD = ChildRecord("Ava", "Ashdown", date(2016, 5, 4), SourceRow("p.xlsx", "Daily", 5))
CLOSED = Decision(
    "CC-3001",
    CHILD,
    Outcome.WITHHOLD,
    "Elm Primary is closed (half term) until Monday 23 February 2026 09:00.",
    urn=110001,
    school_name="Elm Primary",
    manager_alert=True,
    incident_at=datetime(2026, 2, 14, 22, 5, tzinfo=LONDON),
)
OPEN = Decision("CC-3002", CHILD, Outcome.NOTIFY, "Notify Oak Academy.", urn=110002)


def plan(*decisions: Decision) -> Plan:
    return Plan("p.xlsx", "ab" * 32, NOW, decisions)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_state(tmp_path / "state.sqlite3")


@pytest.fixture
def manager(key_factory: KeyFactory, gateway_keyring: Keyring) -> PgpKey:
    key = key_factory.make("manager@la.example.org", name="Safeguarding Manager")
    key.install_public(gateway_keyring)
    return key


def sealer(keyring: Keyring, navigator: PgpKey) -> Sealer:
    section = NavigatorSection(email=navigator.email, fingerprint=navigator.fingerprint)
    return Sealer(keyring, section, None, DispatchSection(), "full")


def test_the_manager_is_sent_one_sealed_alert_per_incident_at_once(
    conn: sqlite3.Connection,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    manager: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    rows = queue_manager_alerts(
        conn,
        plan(CLOSED, OPEN),
        manager=ManagerSection(email=manager.email, fingerprint=manager.fingerprint),
        sealer=sealer(gateway_keyring, navigator_key),
        now=NOW,
        actor="test",
    )
    assert len(rows) == 1
    message = conn.execute("SELECT * FROM message").fetchone()
    assert (message["kind"], message["contact_role"], message["recipient"]) == (
        "alert",
        "manager",
        manager.email,
    )
    assert datetime.fromisoformat(message["due"]) == NOW
    raw = bytes(message["body"])
    assert b"Ashdown" not in raw and b"CC-3001" not in raw
    opened = open_sealed(recipient_home(manager), raw)
    text = opened.inner.get_content()
    assert opened.signature_valid
    assert "CC-3001" in text and "Ava Ashdown" in text and "half term" in text
    assert "CC-3002" not in text


def test_the_same_incident_is_alerted_once(
    conn: sqlite3.Connection, gateway_keyring: Keyring, navigator_key: PgpKey, manager: PgpKey
) -> None:
    for _ in range(2):
        queue_manager_alerts(
            conn,
            plan(CLOSED),
            manager=ManagerSection(email=manager.email, fingerprint=manager.fingerprint),
            sealer=sealer(gateway_keyring, navigator_key),
            now=NOW,
            actor="test",
        )
    assert conn.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 1

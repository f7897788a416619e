"""Shared fixtures: real GnuPG homes and keys (see tests/pgp_keys.py)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from dovecot import Dovecot
from hypothesis import settings
from invariants import assert_sealed
from mail_world import SendingDay, World, make_sending_day, make_world
from navigator_world import World as NavigatorWorld
from navigator_world import make_world as make_navigator_world
from pgp_keys import KeyFactory, PgpKey, new_gnupg_home, recipient_keyring, remove_gnupg_home
from police_mail_corpus import MASH, POLICE, police_keyring
from smtp_sink import Certificate, Received, SmtpSink, make_certificate

from gateway import notification_store, outbox
from gateway.clock import LONDON
from gateway.config import DispatchSection, NavigatorSection
from gateway.directory import SqliteDirectory
from gateway.keyring import Keyring, open_keyring
from gateway.model import (
    ChildRecord,
    ContactRole,
    CrimeStatus,
    Incident,
    Notification,
    Risk,
    SourceRow,
)
from gateway.notifications import reference_code
from gateway.outbox import OutboxMessage
from gateway.sealing import Sealer, seal_planned
from gateway.store import open_state, transaction

# CI runs every property test on the same examples (a failure there is reproducible, never
# a roll of the dice); a developer's runs keep exploring new ones.
settings.register_profile("ci", derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

NAVIGATOR_EMAIL = "navigator@mash.example.org"
WAIT = 20  # seconds: a generous bound for something that takes well under one


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition` (a service thread's work), failing after WAIT seconds."""
    deadline = datetime.now(UTC) + timedelta(seconds=WAIT)
    while not condition():
        assert datetime.now(UTC) < deadline, f"waited {WAIT} s for {what}"
        threading.Event().wait(0.05)


@pytest.fixture(scope="session")
def key_factory() -> Iterator[KeyFactory]:
    """Generates keys once per session; each key is plain armored data, installed afresh
    into the homes of each test that uses it."""
    home = new_gnupg_home("eg-keys-")
    yield KeyFactory(home)
    remove_gnupg_home(home)


@pytest.fixture(scope="session")
def navigator_key(key_factory: KeyFactory) -> PgpKey:
    return key_factory.make(NAVIGATOR_EMAIL, name="Education Navigator")


@pytest.fixture
def gnupg_home() -> Iterator[Callable[[], Path]]:
    """Makes new short GnuPG homes (mode 0700); their agents are stopped after the test."""
    homes: list[Path] = []

    def make() -> Path:
        homes.append(new_gnupg_home())
        return homes[-1]

    yield make
    for home in homes:
        remove_gnupg_home(home)


@pytest.fixture
def gateway_keyring(gnupg_home: Callable[[], Path], navigator_key: PgpKey) -> Keyring:
    """The gateway's keyring holding the Navigator's secret key (and no school's key yet)."""
    keyring = open_keyring(gnupg_home())
    navigator_key.install_secret(keyring)
    return keyring


@pytest.fixture
def recipient_home(
    gnupg_home: Callable[[], Path], navigator_key: PgpKey
) -> Callable[[PgpKey], Keyring]:
    """Makes a DSL's own GnuPG home holding `key`'s secret half and the Navigator's public key."""

    def make(key: PgpKey) -> Keyring:
        return recipient_keyring(gnupg_home(), key, navigator_key)

    return make


# ======================================================================================
# Outbox, dispatch and SMTP: a state database with sealed messages waiting, and SMTP sinks
# (tests/smtp_sink.py). Used by test_outbox, test_dispatch, test_dispatch_crash and
# test_smtp_transport.

DUE = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # Monday 09:00: when the messages are due
SEALED_AT = datetime(2026, 3, 1, 19, 30, tzinfo=UTC)
DISPATCH = DispatchSection(retry_window_minutes=120, first_retry_seconds=60, max_retry_seconds=900)
DSL = ("dsl", "dsl@school.example.org")
DA_LEAD = ("da_lead", "da.lead@school.example.org")
CHILD = ChildRecord(
    "Ava",
    "Example",
    date(2016, 5, 4),
    SourceRow("police.xlsx", "Daily", 5),
    involvement="Present",
    relationship="Mother and partner",
)
SIBLING_ELSEWHERE = ChildRecord("Ben", "Example", date(2012, 1, 9), SourceRow("p.xlsx", "D", 6))


@pytest.fixture(scope="session")
def sink_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plaintext SMTP sink on loopback, stopped after the test."""
    with SmtpSink() as sink:
        yield sink


@dataclass
class SealedOutbox:
    """A state database whose outbox holds real sealed messages, and the keys to open them."""

    conn: sqlite3.Connection
    database: Path
    keyring: Keyring
    navigator: PgpKey
    key_factory: KeyFactory
    recipient_home: Callable[[PgpKey], Keyring]
    settings: DispatchSection = DISPATCH
    due: datetime = DUE
    dsl: tuple[str, str] = DSL
    da_lead: tuple[str, str] = DA_LEAD
    _homes: dict[str, Keyring] = field(default_factory=dict)

    def add(
        self,
        incident_ref: str = "CC-1001",
        *,
        recipients: Sequence[tuple[str, str]] = (DSL,),
        due: datetime | None = None,
        urn: int = 100001,
    ) -> list[OutboxMessage]:
        """Plan a notification of CHILD to the school `urn` whose contacts are `recipients`
        (role, address), each with a key and listed in the state's directory (dispatch sends
        only to a contact still listed), and seal it through the gateway's own sealing, as
        intake does; returns its messages."""
        reference = reference_code(incident_ref, urn)
        incident = Incident(
            incident_ref,
            datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
            Risk.MEDIUM,
            CrimeStatus.CRIME,
            (),
            circumstances="Verbal argument overheard by neighbours",
            location="Home address",
        )
        notification = Notification(
            reference, incident, urn, "Example Primary", (CHILD,), due or self.due
        )
        notification_store.save_planned(
            self.conn, notification, intake_id=1, at=SEALED_AT, actor="test"
        )
        for role, address in recipients:
            key = self.key_factory.make(address)
            key.install_public(self.keyring)
            with transaction(self.conn):
                self.conn.execute(
                    "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
                    " VALUES (?, ?, 'Contact', ?, '', ?)",
                    (urn, ContactRole(role).value, address, key.fingerprint),
                )
        sealer = Sealer(
            keyring=self.keyring,
            navigator=NavigatorSection(
                email=self.navigator.email, fingerprint=self.navigator.fingerprint
            ),
            passphrase=None,
            dispatch=self.settings,
            template="full",
        )
        seal_planned(
            self.conn,
            directory=SqliteDirectory(self.conn),
            sealer=sealer,
            now=SEALED_AT,
            actor="test",
        )
        rows = self.conn.execute(
            "SELECT id FROM message WHERE reference = ? ORDER BY id", (reference,)
        ).fetchall()
        return [outbox.get_message(self.conn, row["id"]) for row in rows]

    def check(self, received: Received) -> EmailMessage:
        """Assert a received message is one of the outbox's, delivered byte for byte to its
        recipient from its own return path, and passes the shared sealing invariant."""
        (recipient,) = received.rcpt_tos
        row = self.conn.execute(
            "SELECT id FROM message WHERE recipient = ? AND body = ?", (recipient, received.data)
        ).fetchone()
        assert row is not None, f"the message to {recipient} is not the outbox's, byte for byte"
        message = outbox.get_message(self.conn, row["id"])
        assert received.mail_from == message.return_path
        if recipient not in self._homes:
            self._homes[recipient] = self.recipient_home(self.key_factory.make(recipient))
        return assert_sealed(
            received.data,
            recipient_home_or_keyring=self._homes[recipient],
            navigator_fingerprint=self.navigator.fingerprint,
            reference=message.reference,
            must_contain=[CHILD.display_name],
            must_not_contain=[SIBLING_ELSEWHERE.display_name],
            dates_of_birth=[d for d in (CHILD.dob, SIBLING_ELSEWHERE.dob) if d is not None],
        )


@pytest.fixture
def sealed_outbox(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
) -> Iterator[SealedOutbox]:
    database = tmp_path / "state.sqlite3"
    conn = open_state(database)
    conn.execute(
        "INSERT INTO intake (id, sha256, file_name, received_at, incidents, children, problems)"
        " VALUES (1, 'feed', 'police.xlsx', ?, 1, 1, 0)",
        (SEALED_AT.isoformat(),),
    )
    yield SealedOutbox(conn, database, gateway_keyring, navigator_key, key_factory, recipient_home)
    conn.close()


# --------------------------------------------------------------------------------------
# A real Dovecot IMAP server (tests/dovecot.py), shared by the tests of one session: each
# test makes its own accounts with `dovecot.new_user(...)`. A test that stops or restarts
# the server makes its own `Dovecot()` instead.


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot() as server:
        yield server


@pytest.fixture
def world(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
    dovecot: Dovecot,
) -> World:
    """The sample day's site against the shared Dovecot and an SMTP sink (tests/mail_world.py)."""
    return make_world(
        tmp_path,
        key_factory=key_factory,
        navigator_key=navigator_key,
        gnupg_home=gnupg_home,
        smtp_sink=smtp_sink,
        dovecot=dovecot,
    )


@pytest.fixture
def navigator_world(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
) -> Iterator[NavigatorWorld]:
    """The morning's state for the Navigator's commands (tests/navigator_world.py)."""
    built = make_navigator_world(
        tmp_path,
        key_factory=key_factory,
        navigator_key=navigator_key,
        gnupg_home=gnupg_home,
        sink=smtp_sink,
    )
    yield built
    built.conn.close()


@pytest.fixture
def sending_day(
    tmp_path: Path,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    smtp_sink: SmtpSink,
) -> SendingDay:
    """The sample day with real keys pinned, sending to the SMTP sink (tests/mail_world.py)."""
    return make_sending_day(
        tmp_path,
        key_factory=key_factory,
        navigator_key=navigator_key,
        gnupg_home=gnupg_home,
        smtp_sink=smtp_sink,
    )


@pytest.fixture(scope="session")
def dovecot_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A Dovecot that refuses plaintext logins: STARTTLS on `port`, implicit TLS on `tls_port`."""
    certificate = make_certificate(tmp_path_factory.mktemp("imap-tls"))
    with Dovecot(tls="required", certificate=certificate) as server:
        yield server


# --------------------------------------------------------------------------------------
# The police desk and the MASH inbox's keys (tests/police_mail_corpus.py builds their mail)


@pytest.fixture
def police_key(key_factory: KeyFactory) -> PgpKey:
    return key_factory.make(POLICE, name="Police DA desk")


@pytest.fixture
def mash_key(key_factory: KeyFactory) -> PgpKey:
    return key_factory.make(MASH, name="MASH inbox")


@pytest.fixture
def police(gnupg_home: Callable[[], Path], police_key: PgpKey, mash_key: PgpKey) -> Keyring:
    """The police desk's own GnuPG home."""
    return police_keyring(gnupg_home(), police_key, mash_key)


@pytest.fixture
def gateway(gateway_keyring: Keyring, police_key: PgpKey, mash_key: PgpKey) -> Keyring:
    """The gateway's keyring: the Navigator's and the MASH secret keys, the police key."""
    mash_key.install_secret(gateway_keyring)
    police_key.install_public(gateway_keyring)
    return gateway_keyring

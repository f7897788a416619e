"""Sealing planned notifications with real GnuPG: fail closed, per recipient, only this school."""

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from invariants import assert_sealed
from matching_corpus import InMemoryDirectory, establishment
from pgp_keys import KeyFactory, PgpKey

from gateway import audit, notification_store
from gateway.clock import LONDON
from gateway.config import DispatchSection, NavigatorSection
from gateway.errors import ConfigError
from gateway.keyring import Keyring
from gateway.model import (
    ChildRecord,
    Contact,
    ContactRole,
    CrimeStatus,
    ExceptionKind,
    Incident,
    Notification,
    Risk,
    SourceRow,
)
from gateway.pgpmime import SealingError
from gateway.sealing import Sealer, seal_planned
from gateway.store import open_state

# Sealing runs at an injected instant after EXPIRY: GnuPG only makes keys that expire in the
# real future, and the gateway judges expiry at its own clock.
NOW = datetime(2027, 3, 1, 7, 30, tzinfo=UTC)
EXPIRY = date(2027, 1, 31)
URN = 110001
DSL_EMAIL = "dsl@elm.example.org"
LEAD_EMAIL = "dalead@elm.example.org"
AVA = ChildRecord("Ava", "Ashdown", date(2016, 5, 4), SourceRow("p.xlsx", "Daily", 5))
BEN = replace(AVA, forename="Benedict", dob=date(2012, 9, 9), source=SourceRow("p.xlsx", "D", 6))
INCIDENT = Incident(
    "CC-2001",
    datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
    Risk.MEDIUM,
    CrimeStatus.CRIME,
    (),
    circumstances="Raised voices reported by a neighbour",
)
NOTIFICATION = Notification(
    "OE-SEAL0-TEST1", INCIDENT, URN, "Elm Primary", (AVA,), datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = open_state(tmp_path / "state.sqlite3")
    conn.execute(
        "INSERT INTO intake (id, sha256, file_name, received_at, incidents, children, problems)"
        " VALUES (1, 'abc', 'p.xlsx', ?, 1, 2, 0)",
        (NOW.isoformat(),),
    )
    notification_store.save_planned(conn, NOTIFICATION, intake_id=1, at=NOW, actor="test")
    return conn


@pytest.fixture
def sealer(gateway_keyring: Keyring, navigator_key: PgpKey) -> Sealer:
    return Sealer(
        keyring=gateway_keyring,
        navigator=NavigatorSection(
            email="navigator@mash.example.org", fingerprint=navigator_key.fingerprint
        ),
        passphrase=None,
        dispatch=DispatchSection(),
        template="full",
    )


def contact(role: ContactRole, email: str, key: PgpKey | None) -> Contact:
    return Contact(URN, role, "Contact", email, fingerprint=key.fingerprint if key else "")


def school(*contacts: Contact) -> InMemoryDirectory:
    return InMemoryDirectory([establishment(URN, "Elm Primary")], [], contacts)


def seal(conn: sqlite3.Connection, sealer: Sealer, directory: InMemoryDirectory) -> None:
    seal_planned(conn, directory=directory, sealer=sealer, now=NOW, actor="test")


def messages(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM message ORDER BY id").fetchall()


def notification_state(conn: sqlite3.Connection) -> tuple[str, str | None]:
    row = conn.execute("SELECT state, exception_kind FROM notification").fetchone()
    return row["state"], row["exception_kind"]


def test_each_recipient_gets_a_message_sealed_to_their_own_pinned_key(
    conn: sqlite3.Connection,
    sealer: Sealer,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    dsl, lead = key_factory.make(DSL_EMAIL), key_factory.make(LEAD_EMAIL)
    for key in (dsl, lead):
        key.install_public(sealer.keyring)
    seal(
        conn,
        sealer,
        school(
            contact(ContactRole.DSL, DSL_EMAIL, dsl), contact(ContactRole.DA_LEAD, LEAD_EMAIL, lead)
        ),
    )
    sealed = messages(conn)
    assert [(m["recipient"], m["fingerprint"]) for m in sealed] == [
        (DSL_EMAIL, dsl.fingerprint),
        (LEAD_EMAIL, lead.fingerprint),
    ]
    for message, key in zip(sealed, (dsl, lead), strict=True):
        assert_sealed(
            message["body"],
            recipient_home_or_keyring=recipient_home(key),
            navigator_fingerprint=navigator_key.fingerprint,
            reference=NOTIFICATION.reference,
            must_contain=["Ava", "Ashdown"],
            must_not_contain=["Benedict"],
            dates_of_birth=[AVA.dob] if AVA.dob else [],
        )
    assert notification_state(conn) == ("sealed", None)


def test_the_other_recipients_key_cannot_open_a_message(
    conn: sqlite3.Connection,
    sealer: Sealer,
    key_factory: KeyFactory,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    dsl, lead = key_factory.make(DSL_EMAIL), key_factory.make(LEAD_EMAIL)
    for key in (dsl, lead):
        key.install_public(sealer.keyring)
    seal(
        conn,
        sealer,
        school(
            contact(ContactRole.DSL, DSL_EMAIL, dsl), contact(ContactRole.DA_LEAD, LEAD_EMAIL, lead)
        ),
    )
    to_dsl = messages(conn)[0]["body"]
    result = recipient_home(lead).gpg.decrypt(to_dsl)
    assert not result.ok


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        ({"expires": EXPIRY}, ExceptionKind.KEY_EXPIRED),
        ({"revoked": True}, ExceptionKind.KEY_REVOKED),
        ({"sign_only": True}, ExceptionKind.NO_KEY),
    ],
)
def test_an_unusable_key_means_no_message_and_the_right_exception(
    conn: sqlite3.Connection,
    sealer: Sealer,
    key_factory: KeyFactory,
    options: dict[str, object],
    kind: ExceptionKind,
) -> None:
    key = key_factory.make(DSL_EMAIL, **options)  # type: ignore[arg-type]
    key.install_public(sealer.keyring)
    seal(conn, sealer, school(contact(ContactRole.DSL, DSL_EMAIL, key)))
    assert messages(conn) == []
    assert notification_state(conn) == ("exception", kind.value)


def test_a_pinned_key_missing_from_the_keyring_is_no_key(
    conn: sqlite3.Connection, sealer: Sealer, key_factory: KeyFactory
) -> None:
    never_imported = key_factory.make(DSL_EMAIL)
    seal(conn, sealer, school(contact(ContactRole.DSL, DSL_EMAIL, never_imported)))
    assert messages(conn) == []
    assert notification_state(conn) == ("exception", "no_key")


def test_a_key_for_the_email_with_another_fingerprint_is_a_mismatch(
    conn: sqlite3.Connection, sealer: Sealer, key_factory: KeyFactory
) -> None:
    pinned = key_factory.make(DSL_EMAIL)
    replacement = key_factory.make(DSL_EMAIL, serial=1)
    replacement.install_public(sealer.keyring)  # the school sent a new key, not yet pinned
    seal(conn, sealer, school(contact(ContactRole.DSL, DSL_EMAIL, pinned)))
    assert messages(conn) == []
    assert notification_state(conn) == ("exception", "key_mismatch")


def test_a_school_without_contacts_is_an_exception(
    conn: sqlite3.Connection, sealer: Sealer
) -> None:
    seal(conn, sealer, school())
    assert messages(conn) == []
    assert notification_state(conn) == ("exception", "no_contact")


def test_a_contact_passed_over_is_recorded_while_the_others_receive(
    conn: sqlite3.Connection, sealer: Sealer, key_factory: KeyFactory
) -> None:
    dsl = key_factory.make(DSL_EMAIL)
    expired_lead = key_factory.make(LEAD_EMAIL, expires=EXPIRY)
    for key in (dsl, expired_lead):
        key.install_public(sealer.keyring)
    seal(
        conn,
        sealer,
        school(
            contact(ContactRole.DSL, DSL_EMAIL, dsl),
            contact(ContactRole.DA_LEAD, LEAD_EMAIL, expired_lead),
        ),
    )
    assert [m["recipient"] for m in messages(conn)] == [DSL_EMAIL]
    passed = conn.execute("SELECT data FROM audit WHERE event = 'contact.passed_over'").fetchone()
    assert '"exception_kind":"key_expired"' in passed["data"]
    assert LEAD_EMAIL not in passed["data"]


def test_without_the_navigators_key_nothing_is_sealed_and_it_stays_planned(
    conn: sqlite3.Connection, sealer: Sealer, key_factory: KeyFactory
) -> None:
    dsl = key_factory.make(DSL_EMAIL)
    dsl.install_public(sealer.keyring)
    stranger = key_factory.make("someone@elsewhere.example.org")
    wrong_signer = replace(
        sealer, navigator=sealer.navigator.model_copy(update={"fingerprint": stranger.fingerprint})
    )
    with pytest.raises(SealingError):
        seal(conn, wrong_signer, school(contact(ContactRole.DSL, DSL_EMAIL, dsl)))
    assert messages(conn) == []
    assert notification_state(conn) == ("planned", None)


def test_sealing_needs_the_navigators_fingerprint(gateway_keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match=r"navigator.fingerprint is not set"):
        Sealer(gateway_keyring, NavigatorSection(), None, DispatchSection(), "full")


# --------------------------------------------------------------------------------------
# Committed in groups: a failure keeps what was sealed before it


@pytest.mark.parametrize("commit_every", [1, 2, 50])
def test_a_sealing_failure_keeps_what_was_sealed_before_it_and_the_next_run_seals_the_rest(
    conn: sqlite3.Connection,
    sealer: Sealer,
    key_factory: KeyFactory,
    commit_every: int,
) -> None:
    others = [replace(NOTIFICATION, reference=f"OE-SEAL{n}-TEST{n}", urn=URN + n) for n in (1, 2)]
    for other in others:
        notification_store.save_planned(conn, other, intake_id=1, at=NOW, actor="test")
    keys = {
        n.urn: key_factory.make(f"dsl@school{n.urn}.example.org") for n in (NOTIFICATION, *others)
    }
    for key in keys.values():
        key.install_public(sealer.keyring)
    directory = InMemoryDirectory(
        [establishment(urn, f"School {urn}") for urn in keys],
        [],
        [
            Contact(urn, ContactRole.DSL, "DSL", key.email, fingerprint=key.fingerprint)
            for urn, key in keys.items()
        ],
    )
    order = [n.reference for n in notification_store.planned(conn)]
    last = next(n for n in (NOTIFICATION, *others) if n.reference == order[-1])
    # The key vanishes from the GnuPG home after the keyring was listed: GnuPG refuses it.
    sealer.keyring.keys()
    sealer.keyring.gpg.delete_keys(keys[last.urn].fingerprint)

    with pytest.raises(SealingError, match="recipient key is not usable"):
        seal_planned(
            conn,
            directory=directory,
            sealer=sealer,
            now=NOW,
            actor="test",
            commit_every=commit_every,
        )

    states = dict(conn.execute("SELECT reference, state FROM notification").fetchall())
    assert states == {order[0]: "sealed", order[1]: "sealed", order[2]: "planned"}
    assert [m["reference"] for m in messages(conn)] == order[:2]

    keys[last.urn].install_public(sealer.keyring)
    report = seal_planned(conn, directory=directory, sealer=sealer, now=NOW, actor="test")

    assert report.sealed == (order[2],)
    assert [m["reference"] for m in messages(conn)] == order
    assert audit.verify(conn).ok

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from pgp_keys import KeyFactory, PgpKey

from gateway.clock import LONDON
from gateway.keyring import (
    MAX_HOME_LENGTH,
    ImportedKey,
    KeyImportRefused,
    Keyring,
    KeyringError,
    KeyStatus,
    contacts_served,
    open_keyring,
)
from gateway.model import Contact, ContactRole, ExceptionKind

DSL = "dsl@fenland-primary.example.org"
# Keys are made for real by GnuPG, which refuses an expiry in the past, so the dates are
# set from today; the checks themselves only ever see the instant they are given.
EXPIRY = date.today() + timedelta(days=400)
BEFORE_EXPIRY = datetime.combine(EXPIRY - timedelta(days=30), time(9), LONDON)
AFTER_EXPIRY = datetime.combine(EXPIRY + timedelta(days=30), time(9), LONDON)


def expiry_instant(day: date) -> datetime:
    """GnuPG makes a key given an expiry date expire at noon UTC that day."""
    return datetime.combine(day, time(12), UTC)


@pytest.fixture
def keyring(gnupg_home: Callable[[], Path]) -> Keyring:
    return open_keyring(gnupg_home())


def installed(keyring: Keyring, key: PgpKey) -> PgpKey:
    key.install_public(keyring)
    return key


def test_pinned_key_that_can_receive_is_ok(keyring: Keyring, key_factory: KeyFactory) -> None:
    key = installed(keyring, key_factory.make(DSL, expires=EXPIRY))
    check = keyring.check(key.fingerprint, email=DSL, at=BEFORE_EXPIRY)
    assert check.status is KeyStatus.OK
    assert check.ok and check.exception_kind is None
    assert check.fingerprint == key.fingerprint
    assert check.user_ids == (f"dsl <{DSL}>",)
    assert check.expires == expiry_instant(EXPIRY)


def test_no_key_and_none_for_the_address_is_missing(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    other = installed(keyring, key_factory.make("dsl@another-school.example.org"))
    pin = key_factory.make(DSL).fingerprint
    check = keyring.check(pin, email=DSL, at=BEFORE_EXPIRY)
    assert check.status is KeyStatus.MISSING
    assert check.exception_kind is ExceptionKind.NO_KEY
    assert pin in check.reason and other.fingerprint not in check.reason


def test_a_key_for_the_address_under_another_fingerprint_is_a_mismatch(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    replacement = installed(keyring, key_factory.make(DSL, serial=1))
    pinned = key_factory.make(DSL, serial=0)
    check = keyring.check(pinned.fingerprint, email=DSL.upper(), at=BEFORE_EXPIRY)
    assert check.status is KeyStatus.MISMATCH
    assert check.exception_kind is ExceptionKind.KEY_MISMATCH
    assert replacement.fingerprint in check.reason
    assert check.user_ids == ()


def test_a_contact_without_a_pin_never_gets_the_key_carrying_their_address(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    key = installed(keyring, key_factory.make(DSL))
    check = keyring.check("", email=DSL, at=BEFORE_EXPIRY)
    assert check.status is KeyStatus.MISSING
    assert "no fingerprint is pinned" in check.reason
    assert f"the keyring has {key.fingerprint} for {DSL}" in check.reason


def test_a_short_key_id_is_not_a_pin(keyring: Keyring, key_factory: KeyFactory) -> None:
    key = installed(keyring, key_factory.make(DSL))
    check = keyring.check(key.fingerprint[-16:], email="someone@else.example.org", at=AFTER_EXPIRY)
    assert check.status is KeyStatus.MISSING
    assert "not 40 hexadecimal digits" in check.reason


def test_a_subkey_fingerprint_is_not_a_pin(keyring: Keyring, key_factory: KeyFactory) -> None:
    key = installed(keyring, key_factory.make(DSL))
    info = keyring.key(key.fingerprint)
    assert info is not None
    subkey = info.subkeys[0].fingerprint
    assert keyring.check(subkey, email="x@y.example.org", at=BEFORE_EXPIRY).status is (
        KeyStatus.MISSING
    )


def test_the_pin_may_be_written_in_groups_and_lower_case(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    key = installed(keyring, key_factory.make(DSL))
    spaced = " ".join(key.fingerprint[i : i + 4] for i in range(0, 40, 4)).lower()
    assert keyring.check(spaced, email=DSL, at=BEFORE_EXPIRY).status is KeyStatus.OK


def test_a_key_is_expired_from_its_expiry_instant_at_the_injected_time(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    key = installed(keyring, key_factory.make(DSL, expires=EXPIRY))
    expiry = expiry_instant(EXPIRY)
    assert keyring.check(key.fingerprint, email=DSL, at=expiry - timedelta(seconds=1)).ok
    at_expiry = keyring.check(key.fingerprint, email=DSL, at=expiry)
    assert at_expiry.status is KeyStatus.EXPIRED
    assert at_expiry.exception_kind is ExceptionKind.KEY_EXPIRED
    assert at_expiry.expires == expiry
    assert EXPIRY.isoformat() in at_expiry.reason


def test_a_revoked_key_is_revoked_whatever_the_time(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    key = installed(keyring, key_factory.make(DSL, expires=EXPIRY, revoked=True))
    for at in (BEFORE_EXPIRY, AFTER_EXPIRY):
        check = keyring.check(key.fingerprint, email=DSL, at=at)
        assert check.status is KeyStatus.REVOKED
        assert check.exception_kind is ExceptionKind.KEY_REVOKED


def test_a_sign_only_key_has_no_encryption_key(keyring: Keyring, key_factory: KeyFactory) -> None:
    key = installed(keyring, key_factory.make(DSL, sign_only=True))
    check = keyring.check(key.fingerprint, email=DSL, at=BEFORE_EXPIRY)
    assert check.status is KeyStatus.NO_ENCRYPTION_KEY
    assert check.exception_kind is ExceptionKind.NO_KEY
    assert "no valid encryption subkey" in check.reason


def test_an_expired_encryption_subkey_leaves_no_encryption_key(
    keyring: Keyring, key_factory: KeyFactory
) -> None:
    subkey_expiry = EXPIRY - timedelta(days=100)
    key = installed(keyring, key_factory.make(DSL, subkey_expires=subkey_expiry))
    before = keyring.check(
        key.fingerprint, email=DSL, at=expiry_instant(subkey_expiry) - timedelta(1)
    )
    assert before.status is KeyStatus.OK
    assert before.expires is not None and before.expires.date() == subkey_expiry
    after = keyring.check(key.fingerprint, email=DSL, at=expiry_instant(subkey_expiry))
    assert after.status is KeyStatus.NO_ENCRYPTION_KEY


def test_each_status_names_the_exception_it_produces() -> None:
    assert {status: status.exception_kind for status in KeyStatus} == {
        KeyStatus.OK: None,
        KeyStatus.MISSING: ExceptionKind.NO_KEY,
        KeyStatus.MISMATCH: ExceptionKind.KEY_MISMATCH,
        KeyStatus.EXPIRED: ExceptionKind.KEY_EXPIRED,
        KeyStatus.REVOKED: ExceptionKind.KEY_REVOKED,
        KeyStatus.NO_ENCRYPTION_KEY: ExceptionKind.NO_KEY,
    }


def test_a_check_needs_a_timezone_aware_instant(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        keyring.check("0" * 40, email=DSL, at=datetime(2026, 1, 5, 9))


def test_contacts_served_by_a_key_are_those_pinning_it(key_factory: KeyFactory) -> None:
    key = key_factory.make(DSL)
    pinning = Contact(100001, ContactRole.DSL, "A. Lead", DSL, fingerprint=key.fingerprint)
    deputy = Contact(100001, ContactRole.DEPUTY_DSL, "B. Deputy", DSL, fingerprint="")
    elsewhere = Contact(
        100002, ContactRole.DA_LEAD, "C. Other", "c@x.example.org", fingerprint="F" * 40
    )
    assert contacts_served(key.fingerprint, [pinning, deputy, elsewhere]) == [pinning]


# --------------------------------------------------------------------------------------
# Importing a folder of keys


def write_key(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def import_folder(keyring: Keyring, folder: Path) -> list[ImportedKey]:
    return keyring.import_files(keyring.read_key_files(folder))


def test_importing_a_folder_reports_each_key(
    keyring: Keyring, key_factory: KeyFactory, tmp_path: Path
) -> None:
    first = key_factory.make(DSL, expires=EXPIRY)
    second = key_factory.make("dalead@fenland-primary.example.org")
    folder = tmp_path / "keys"
    write_key(folder, "fenland-dsl.asc", first.public)
    write_key(folder, "fenland-dalead.pub", second.public)
    write_key(folder, "README.md", b"public keys for import\n")

    imported = import_folder(keyring, folder)

    assert [(i.source.name, i.fingerprint, i.outcome) for i in imported] == [
        ("fenland-dalead.pub", second.fingerprint, "new"),
        ("fenland-dsl.asc", first.fingerprint, "new"),
    ]
    assert imported[1].user_ids == (f"dsl <{DSL}>",)
    assert imported[1].expires == expiry_instant(EXPIRY)
    assert imported[0].expires is None
    assert keyring.check(first.fingerprint, email=DSL, at=BEFORE_EXPIRY).ok


def test_importing_the_same_keys_again_changes_nothing(
    keyring: Keyring, key_factory: KeyFactory, tmp_path: Path
) -> None:
    write_key(tmp_path / "keys", "dsl.asc", key_factory.make(DSL).public)
    import_folder(keyring, tmp_path / "keys")
    assert [i.outcome for i in import_folder(keyring, tmp_path / "keys")] == ["unchanged"]


def test_an_imported_revoked_key_is_reported_revoked(
    keyring: Keyring, key_factory: KeyFactory, tmp_path: Path
) -> None:
    revoked = key_factory.make(DSL, expires=EXPIRY, revoked=True)
    write_key(tmp_path / "keys", "dsl.asc", revoked.public)
    [imported] = import_folder(keyring, tmp_path / "keys")
    assert imported.key.revoked
    assert imported.key.status(BEFORE_EXPIRY) is KeyStatus.REVOKED


def test_a_secret_key_in_the_folder_is_refused_and_nothing_is_imported(
    keyring: Keyring, key_factory: KeyFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "keys"
    write_key(folder, "a-public.asc", key_factory.make("dalead@x.example.org").public)
    write_key(folder, "b-secret.asc", key_factory.make(DSL).secret)
    with pytest.raises(KeyImportRefused) as refused:
        keyring.read_key_files(folder)
    assert "b-secret.asc: holds a secret key" in str(refused.value)
    assert "a-public.asc" not in str(refused.value)
    assert keyring.keys() == []


def test_a_binary_secret_key_is_refused_too(
    keyring: Keyring, key_factory: KeyFactory, gnupg_home: Callable[[], Path], tmp_path: Path
) -> None:
    key = key_factory.make(DSL)
    holder = open_keyring(gnupg_home())
    key.install_secret(holder)
    binary = holder.gpg.export_keys(
        key.fingerprint, secret=True, armor=False, expect_passphrase=False
    )
    write_key(tmp_path / "keys", "dsl.gpg", binary)
    with pytest.raises(KeyImportRefused, match=r"dsl\.gpg: holds a secret key"):
        keyring.read_key_files(tmp_path / "keys")
    assert keyring.keys() == []


def test_a_file_without_a_key_is_refused(keyring: Keyring, tmp_path: Path) -> None:
    write_key(tmp_path / "keys", "dsl.asc", b"Please find our key attached.\n")
    with pytest.raises(KeyImportRefused, match=r"dsl\.asc: holds no OpenPGP public key"):
        keyring.read_key_files(tmp_path / "keys")


# --------------------------------------------------------------------------------------
# The GnuPG home


def test_a_new_home_is_private_to_the_gateway(gnupg_home: Callable[[], Path]) -> None:
    home = gnupg_home() / "gnupg"
    with open_keyring(home):
        assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_home_others_can_read_is_refused(gnupg_home: Callable[[], Path]) -> None:
    home = gnupg_home()
    home.chmod(0o750)
    with pytest.raises(KeyringError, match=r"mode 0750.*chmod 700"):
        open_keyring(home)


def test_a_home_too_long_for_the_agent_socket_is_refused(tmp_path: Path) -> None:
    home = Path("/tmp") / ("g" * MAX_HOME_LENGTH)
    with pytest.raises(KeyringError) as refused:
        open_keyring(home)
    message = str(refused.value)
    assert f"is {len(os.fsencode(home))} bytes long" in message
    assert f"at most {MAX_HOME_LENGTH}" in message
    assert not home.exists()

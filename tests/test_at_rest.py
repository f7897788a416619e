"""Personal data at rest: sealed with the storage key, unreadable without it, and refused
when altered or when a writer forgot to seal it."""

import stat
from pathlib import Path

import pytest

from gateway.at_rest import StorageKey, StorageKeyError, is_sealed, key_file_beside
from gateway.config import load_config
from gateway.store import open_config_state, open_state


def test_text_and_bytes_come_back_as_they_went_in() -> None:
    key = StorageKey.generate()
    for value in ("Ava Stone, born 3 May 2016", b"PK\x03\x04 workbook bytes", None, "", b""):
        assert key.unseal(key.seal(value) if value else value) == value


def test_a_sealed_value_does_not_contain_its_plaintext() -> None:
    sealed = StorageKey.generate().seal("Ava Stone")
    assert is_sealed(sealed)
    assert b"Ava" not in sealed


def test_another_key_cannot_open_a_sealed_value() -> None:
    sealed = StorageKey.generate().seal("Ava Stone")
    with pytest.raises(StorageKeyError, match="not this database's"):
        StorageKey.generate().unseal(sealed)


def test_a_value_altered_in_the_file_is_refused() -> None:
    key = StorageKey.generate()
    sealed = bytearray(key.seal("Ava Stone") or b"")
    sealed[-1] ^= 1
    with pytest.raises(StorageKeyError, match="altered"):
        key.unseal(bytes(sealed))


def test_a_value_left_in_the_clear_is_refused_not_passed_through() -> None:
    with pytest.raises(StorageKeyError, match="in the clear"):
        StorageKey.generate().unseal('{"child": "Ava Stone"}')


def test_a_malformed_key_names_where_it_came_from() -> None:
    with pytest.raises(StorageKeyError, match=r"state\.storage_key: .*32 bytes"):
        StorageKey.from_text("c2hvcnQ=", source="state.storage_key")
    with pytest.raises(StorageKeyError, match="not base64"):
        StorageKey.from_text("not a key!", source="state.storage_key")


def test_without_a_configured_key_one_is_generated_beside_the_database_for_its_owner_only(
    tmp_path: Path,
) -> None:
    database = tmp_path / "state" / "gateway.sqlite3"
    open_state(database).close()
    key_file = key_file_beside(database)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_text()
    open_state(database).close()
    assert key_file.read_text() == first


def test_the_configured_key_seals_and_only_it_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = StorageKey.generate()
    monkeypatch.setenv("TEST_STORAGE_KEY", key.text())
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        '[state]\ndatabase = "state/gateway.sqlite3"\nstorage_key = { env = "TEST_STORAGE_KEY" }\n'
    )
    conn = open_config_state(load_config(config_file))
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.execute("INSERT INTO t VALUES (seal(?))", ("Ava Stone",))
    stored = conn.execute("SELECT v FROM t").fetchone()[0]
    assert key.unseal(stored) == "Ava Stone"
    assert not key_file_beside(tmp_path / "state" / "gateway.sqlite3").exists()
    conn.close()
    with pytest.raises(StorageKeyError, match="does not open the state database"):
        open_state(tmp_path / "state" / "gateway.sqlite3")  # a generated key, not the one

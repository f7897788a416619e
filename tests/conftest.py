"""Shared fixtures: real GnuPG homes and keys (see tests/pgp_keys.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pgp_keys import KeyFactory, PgpKey, new_gnupg_home, recipient_keyring, remove_gnupg_home

from gateway.keyring import Keyring, open_keyring

NAVIGATOR_EMAIL = "navigator@mash.example.org"


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

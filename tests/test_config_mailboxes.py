"""The [mailboxes.*] settings: TLS rules, folder names, paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


MASH = """
[mailboxes.mash]
host = "{host}"
tls = "{tls}"
username = "mash-intake"
password = {{ file = "secrets/imap" }}
"""


def test_the_example_configures_both_mailboxes() -> None:
    mailboxes = load_config(REPO / "config.example.toml").config.mailboxes
    assert mailboxes is not None
    assert sorted(mailboxes.accounts()) == ["mash", "navigator"]


def test_without_the_section_no_mailbox_is_read(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).config.mailboxes is None


def test_plaintext_imap_is_refused_for_a_remote_server(tmp_path: Path) -> None:
    path = write(tmp_path, MASH.format(host="imap.mash.example.org", tls="none"))
    with pytest.raises(ConfigError, match=r"mailboxes\.mash.*loopback test server"):
        load_config(path)


def test_plaintext_imap_is_allowed_for_a_loopback_test_server(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, MASH.format(host="127.0.0.1", tls="none")))
    assert loaded.config.mailboxes is not None
    assert loaded.config.mailboxes.accounts()["mash"].tls == "none"


def test_the_password_file_and_ca_file_are_relative_to_the_config_file(tmp_path: Path) -> None:
    text = MASH.format(host="imap.example.org", tls="implicit") + 'ca_file = "ca.pem"\n'
    mailboxes = load_config(write(tmp_path, text)).config.mailboxes
    assert mailboxes is not None and mailboxes.mash is not None
    assert mailboxes.mash.password.file == tmp_path / "secrets" / "imap"
    assert mailboxes.mash.ca_file == tmp_path / "ca.pem"


def test_an_inline_imap_password_is_refused(tmp_path: Path) -> None:
    text = '[mailboxes.mash]\nhost = "h"\nusername = "u"\npassword = "hunter2"\n'
    with pytest.raises(ConfigError, match=r"mailboxes\.mash\.password: secrets are not allowed"):
        load_config(write(tmp_path, text))


def test_processed_and_quarantine_must_be_different_folders(tmp_path: Path) -> None:
    text = MASH.format(host="imap.example.org", tls="implicit") + 'quarantine_folder = "INBOX"\n'
    with pytest.raises(ConfigError, match="three different folders"):
        load_config(write(tmp_path, text))


def test_idle_is_renewed_well_inside_the_servers_30_minutes(tmp_path: Path) -> None:
    text = MASH.format(host="imap.example.org", tls="implicit") + "idle_renew_minutes = 29\n"
    with pytest.raises(ConfigError, match="idle_renew_minutes"):
        load_config(write(tmp_path, text))

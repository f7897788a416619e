from pathlib import Path

import pytest

from gateway.config import REPOSITORY_RULES, SecretRef, load_config
from gateway.errors import ConfigError, SecretError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid(tmp_path: Path) -> None:
    loaded = load_config(REPO / "config.example.toml")
    assert loaded.config.directory.roll_profile == "capita_one"
    assert loaded.database == REPO / "state" / "gateway.sqlite3"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[directory]\ngias = "in/gias.csv"\n[state]\ndatabase = "s.db"\n')
    loaded = load_config(path)
    assert loaded.config.directory.gias == tmp_path / "in" / "gias.csv"
    assert loaded.database == tmp_path / "s.db"


def test_without_a_file_the_embedded_defaults_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCOMPASS_CONFIG", raising=False)
    loaded = load_config(None)
    assert loaded.source is None
    assert loaded.rules_dir == REPOSITORY_RULES


def test_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[directory]\nroll_profile = "sims_export"\n')
    monkeypatch.setenv("ENCOMPASS_CONFIG", str(path))
    assert load_config(None).config.directory.roll_profile == "sims_export"


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[directory]\ngais = 'x.csv'\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "directory.gais: unknown key" in message
    assert "contacts, gias, pupil_roll, roll_profile" in message


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtpp: unknown key; allowed here: approval, directory"):
        load_config(write(tmp_path, "[smtpp]\nhost = 'x'\n"))


def test_wrong_type_names_the_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"intake.max_file_mb: .*number.*'ten'"):
        load_config(write(tmp_path, "[intake]\nmax_file_mb = 'ten'\n"))


def test_out_of_range_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"intake.max_compression_ratio: .*greater than 1"):
        load_config(write(tmp_path, "[intake]\nmax_compression_ratio = 0.5\n"))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: file not found"):
        load_config(tmp_path / "nope.toml")


def test_malformed_toml_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gateway.toml: not valid TOML"):
        load_config(write(tmp_path, "[state\n"))


def test_inline_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"state.password: secrets are not allowed"):
        load_config(write(tmp_path, "[state]\npassword = 'hunter2'\n"))


def test_secret_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_SECRET", "s3cret")
    assert SecretRef(env="GW_TEST_SECRET").resolve() == "s3cret"


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n", encoding="utf-8")
    assert SecretRef(file=secret).resolve() == "from-file"


def test_missing_secret_names_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_UNSET_SECRET", raising=False)
    with pytest.raises(SecretError, match="GW_UNSET_SECRET is not set"):
        SecretRef(env="GW_UNSET_SECRET").resolve()


def test_secret_ref_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(env="A", file=tmp_path / "b")


def test_plaintext_smtp_is_refused_for_a_remote_host(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp: .*only for a loopback test server"):
        load_config(write(tmp_path, '[smtp]\nhost = "smtp.example.org"\ntls = "none"\n'))


def test_plaintext_smtp_is_allowed_on_loopback(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, '[smtp]\nhost = "127.0.0.1"\ntls = "none"\n'))
    assert loaded.config.smtp.tls == "none"


def test_unknown_tls_mode_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp.tls: .*'starttls', 'implicit' or 'none'"):
        load_config(write(tmp_path, '[smtp]\ntls = "ssl"\n'))


def test_navigator_fingerprint_must_be_forty_hex_digits(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"navigator.fingerprint"):
        load_config(write(tmp_path, '[navigator]\nfingerprint = "DEADBEEF"\n'))


def test_secret_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nusername = "nav"\npassword = { file = "smtp.secret" }\n')
    password = load_config(path).config.smtp.password
    assert password is not None and password.file == tmp_path / "smtp.secret"


def test_police_pgp_authentication_needs_pinned_keys(tmp_path: Path) -> None:
    text = '[police]\nsenders = ["@police.example.org"]\nauthentication = "pgp"\n'
    with pytest.raises(ConfigError, match=r"police: .*needs the police keys' fingerprints"):
        load_config(write(tmp_path, text))


def test_police_dkim_authentication_needs_the_trusted_authserv_id(tmp_path: Path) -> None:
    text = '[police]\nauthentication = "dkim"\n'
    with pytest.raises(ConfigError, match=r"police: .*needs trusted_authserv_id"):
        load_config(write(tmp_path, text))


def test_police_either_authentication_with_dkim_only_is_valid(tmp_path: Path) -> None:
    text = '[police]\nauthentication = "either"\ntrusted_authserv_id = "mx.mash.example.org"\n'
    police = load_config(write(tmp_path, text)).config.police
    assert police is not None and police.authentication == "either"


def test_a_police_sender_must_be_an_address_or_an_at_domain(tmp_path: Path) -> None:
    text = (
        '[police]\nsenders = ["police.example.org"]\nauthentication = "dkim"\n'
        'trusted_authserv_id = "mx.mash.example.org"\n'
    )
    with pytest.raises(ConfigError, match=r"police.senders: .*neither an address"):
        load_config(write(tmp_path, text))

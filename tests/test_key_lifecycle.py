"""Keys and contacts over time: the daily key check tells each contact once per stage (30, 7
and 1 days before their key stops working, then expired or revoked) in a signed notice with
no child data, and the Navigator once in the digest; a renewed key starts again; contacts
not confirmed for months are flagged. Real GnuPG keys with real expiry dates; the clock is
moved day by day."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from invariants import assert_signed_only
from pgp_keys import KeyFactory, PgpKey
from smtp_sink import SmtpSink

from gateway.cli import cli
from gateway.clock import LONDON
from gateway.config import (
    Config,
    GnupgSection,
    KeysSection,
    LoadedConfig,
    NavigatorSection,
    StateSection,
    load_config,
)
from gateway.directory import SqliteDirectory, import_directory, load_roll_profiles
from gateway.errors import ConfigError
from gateway.health import check
from gateway.intake_store import record_plan
from gateway.key_import import ContactRef, KeyImport, import_keys
from gateway.key_lifecycle import months_before, stale_contacts
from gateway.keyring import KeyImportRefused, Keyring
from gateway.model import ChildRecord, ContactRole, Decision, Outcome, SourceRow
from gateway.operations import check_keys_now, queue_digest
from gateway.pgpmime import open_sealed
from gateway.plan import Plan
from gateway.ruleset import load_rules
from gateway.store import open_state
from gateway.synthetic import write_sample

ELM, OAK = 100001, 100002
DSL_EMAIL = "dsl@lifecycle.elm.example.org"
NAVIGATOR_PHONE = "01223 555 010"
# A child of the school, on record the same day: no notice about the key may name them.
AVA = ChildRecord("Avalon", "Testchild", date(2016, 5, 4), SourceRow("police.xlsx", "Daily", 5))


@dataclass
class Site:
    conn: sqlite3.Connection
    database: Path
    config: LoadedConfig
    keyring: Keyring
    key: PgpKey

    @property
    def until(self) -> datetime:
        """When the pinned key stops working, as the gateway's keyring sees it now."""
        key = self.keyring.key(self.key.fingerprint)
        assert key is not None and key.expires is not None
        return key.expires

    def morning(self, days_before: int, *, until: datetime | None = None) -> None:
        """The key check at 07:30 and the digest at 08:30 of the day `days_before` days
        before the key stops working (an hour inside that day)."""
        at = (until or self.until) - timedelta(days=days_before) + timedelta(hours=1)
        check_keys_now(self.conn, config=self.config, now=at, actor="test")
        queue_digest(self.conn, config=self.config, now=at + timedelta(hours=1), actor="test")

    def notices(self) -> list[bytes]:
        rows = self.conn.execute("SELECT body FROM message WHERE kind = 'key_notice' ORDER BY id")
        return [row["body"] for row in rows]

    def digests_mentioning(self, text: str) -> int:
        rows = self.conn.execute("SELECT body FROM message WHERE kind = 'digest' ORDER BY id")
        return sum(text in digest_text(self.keyring, row["body"]) for row in rows)

    def stages(self) -> list[str]:
        return [r["stage"] for r in self.conn.execute("SELECT stage FROM key_warning ORDER BY id")]


def pin(conn: sqlite3.Connection, key: PgpKey, *, urn: int = ELM, confirmed: str | None) -> None:
    conn.execute(
        "INSERT INTO contact (urn, role, name, email, phone, fingerprint, confirmed)"
        " VALUES (?, 'dsl', 'Dana Lead', ?, '07700 900001', ?, ?)",
        (urn, key.email, key.fingerprint, confirmed),
    )


def site_for(tmp_path: Path, keyring: Keyring, navigator: PgpKey, key: PgpKey) -> Site:
    key.install_public(keyring)
    database = tmp_path / "state.sqlite3"
    conn = open_state(database)
    for urn, name in ((ELM, "Elm Primary"), (OAK, "Oak Academy")):
        conn.execute(
            "INSERT INTO establishment (urn, name, la_code, la_name, type_name, phase_name,"
            " status_name, is_open, postcode, telephone) VALUES (?, ?, 873, '', '', '',"
            " 'Open', 1, '', '')",
            (urn, name),
        )
    pin(conn, key, confirmed=date.today().isoformat())
    config = Config(
        state=StateSection(database=database),
        gnupg=GnupgSection(home=keyring.home),
        navigator=NavigatorSection(
            name="Sam Navigator",
            email=navigator.email,
            phone=NAVIGATOR_PHONE,
            fingerprint=navigator.fingerprint,
        ),
    )
    return Site(conn, database, LoadedConfig(None, config), keyring, key)


@pytest.fixture
def site(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, key_factory: KeyFactory
) -> Iterator[Site]:
    # GnuPG refuses to make a key that has already expired: the clock goes to it instead.
    key = key_factory.make(DSL_EMAIL, expires=date.today() + timedelta(days=400))
    made = site_for(tmp_path, gateway_keyring, navigator_key, key)
    yield made
    made.conn.close()


def digest_text(keyring: Keyring, raw: bytes) -> str:
    inner = open_sealed(keyring, raw).inner
    text = next(part for part in inner.walk() if part.get_content_type() == "text/plain")
    assert isinstance(text, EmailMessage)
    return str(text.get_content())


# --------------------------------------------------------------------------------------
# The daily key check


def test_each_threshold_is_reported_once_when_first_crossed(site: Site) -> None:
    for days_before in (31, 30, 29, 8, 7, 2, 1):
        site.morning(days_before)
    assert site.stages() == ["30", "7", "1"]
    assert len(site.notices()) == 3
    assert site.digests_mentioning(site.key.fingerprint) == 3


def test_the_digest_says_which_stage_and_when_the_key_stops(site: Site) -> None:
    site.morning(7)
    (raw,) = [r["body"] for r in site.conn.execute("SELECT body FROM message WHERE kind='digest'")]
    text = digest_text(site.keyring, raw)
    assert "KEYS TO RENEW (1)" in text
    assert "Elm Primary (URN 100001), DSL (Dana Lead): within 7 days, stops working" in text


def test_a_restart_does_not_repeat_a_warning(site: Site) -> None:
    at = site.until - timedelta(days=6)
    check_keys_now(site.conn, config=site.config, now=at, actor="test")
    site.conn.close()
    site.conn = open_state(site.database)  # the service restarted
    report = check_keys_now(site.conn, config=site.config, now=at, actor="test")
    assert report.warnings == ()
    assert len(site.notices()) == 1


def test_a_check_that_missed_days_reports_only_the_most_urgent_stage(site: Site) -> None:
    site.morning(5)
    site.morning(4)
    site.morning(1)
    assert site.stages() == ["7", "1"]
    assert len(site.notices()) == 2


def test_the_notice_is_signed_by_the_navigator_and_holds_no_child_data(
    site: Site,
    navigator_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    decision = Decision("CC-2001", AVA, Outcome.NOTIFY, "Notify", ELM, "Elm Primary")
    plan = Plan("police.xlsx", "f" * 64, site.until - timedelta(days=8), (decision,))
    record_plan(site.conn, plan, incidents=1, actor="test")
    site.morning(7)
    (raw,) = site.notices()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert f"To: Dana Lead <{DSL_EMAIL}>" in head
    assert "Subject: Key renewal GW-" in head
    assert "Auto-Submitted: auto-generated" in head
    notice = assert_signed_only(
        raw,
        verifier=recipient_home(site.key),
        navigator_fingerprint=navigator_key.fingerprint,
        must_not_contain=[AVA.display_name],
        dates_of_birth=[AVA.dob] if AVA.dob else [],
    )
    text, html = (str(part.get_content()) for part in notice.iter_parts())  # type: ignore[attr-defined]
    fingerprint = " ".join(site.key.fingerprint[i : i + 4] for i in range(0, 40, 4))
    stops = site.until.astimezone(LONDON).date()
    for expected in (
        "Elm Primary (URN 100001)",
        "Designated Safeguarding Lead",
        fingerprint,
        f"{stops.day} {stops:%B %Y}",
        "within 7 days",
        navigator_key.email,
        NAVIGATOR_PHONE,
        "Never send your secret (private) key",
    ):
        assert expected in text and expected in html, expected
    for child_data in ("Avalon", "Testchild", "04/05/2016", "4 May 2016", "CC-2001", "OE-"):
        assert child_data not in raw.decode("ascii"), child_data


def test_a_renewed_key_arms_the_thresholds_again(site: Site, key_factory: KeyFactory) -> None:
    first = site.until
    site.morning(30)
    site.morning(7)
    renewed = key_factory.renewed(site.key, first.date() + timedelta(days=365))
    renewed.install_public(site.keyring)
    assert site.until > first + timedelta(days=300)
    site.morning(6, until=first)  # the morning after: renewed, nothing to say
    site.morning(30)
    assert site.stages() == ["30", "7", "30"]
    assert len(site.notices()) == 3


def test_an_expired_key_is_reported_once(site: Site) -> None:
    until = site.until
    for days_after in (1, 2, 30):
        site.morning(-days_after, until=until)
    assert site.stages() == ["expired"]
    (raw,) = site.notices()
    assert b"expired on" in raw
    assert site.digests_mentioning("DSL (Dana Lead): expired, stopped working") == 1


def test_a_revoked_key_is_reported_once(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    key = key_factory.make("revoked@lifecycle.elm.example.org", revoked=True)
    revoked = site_for(tmp_path, gateway_keyring, navigator_key, key)
    now = datetime.now(LONDON)
    for day in range(3):
        at = now + timedelta(days=day)
        check_keys_now(revoked.conn, config=revoked.config, now=at, actor="test")
        queue_digest(revoked.conn, config=revoked.config, now=at, actor="test")
    assert revoked.stages() == ["revoked"]
    (raw,) = revoked.notices()
    assert b"has been revoked" in raw
    assert revoked.digests_mentioning("DSL (Dana Lead): revoked") == 1


def test_a_key_without_expiry_is_never_warned_about(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    key = key_factory.make("lasting@lifecycle.elm.example.org")
    lasting = site_for(tmp_path, gateway_keyring, navigator_key, key)
    report = check_keys_now(
        lasting.conn, config=lasting.config, now=datetime.now(LONDON), actor="test"
    )
    assert (report.checked, report.warnings) == (1, ())


def test_the_thresholds_are_the_configured_ones(site: Site) -> None:
    config = site.config.config.model_copy(update={"keys": KeysSection(warn_days=(14,))})
    site.config = LoadedConfig(None, config)
    for days_before in (15, 14, 7, 1):
        site.morning(days_before)
    assert site.stages() == ["14"]


def test_keys_check_on_the_command_line_sends_the_notice_once(
    site: Site, smtp_sink: SmtpSink, navigator_key: PgpKey, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[state]\ndatabase = "{site.database}"\n[gnupg]\nhome = "{site.keyring.home}"\n'
        f'[navigator]\nemail = "{navigator_key.email}"\n'
        f'fingerprint = "{navigator_key.fingerprint}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\ntls = "none"\n',
        encoding="utf-8",
    )
    at = (site.until - timedelta(days=6)).isoformat()
    args = ["--config", str(config), "--now", at, "keys", "check"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert f"URN 100001 dsl {site.key.fingerprint}: within 7 days" in first.output
    assert "dispatch: 1 sent" in first.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "key check: 1 contacts' keys, 0 new warnings" in again.output
    assert [r.rcpt_tos for r in smtp_sink.received] == [(DSL_EMAIL,)]


# --------------------------------------------------------------------------------------
# Contacts due for review


def test_a_contact_not_confirmed_for_the_configured_months_is_flagged_by_check(
    site: Site,
) -> None:
    pin(site.conn, site.key, urn=OAK, confirmed="2024-01-15")
    now = datetime(2025, 3, 1, 8, 0, tzinfo=LONDON)
    findings = check(
        site.conn,
        config=site.config,
        calendar=load_rules(site.config.rules_dir).calendar,
        keyring=site.keyring,
        now=now,
    )
    flagged = [f.text for f in findings if "keys.confirm_contacts_months" in f.text]
    assert flagged == [
        "URN 100002 dsl Dana Lead: last confirmed 2024-01-15, more than 12 months ago "
        "(keys.confirm_contacts_months): check they are still in post, then update the "
        "contacts list's Confirmed date"
    ]


def test_stale_contacts_are_listed_in_the_first_digest_of_each_month_only(site: Site) -> None:
    pin(site.conn, site.key, urn=OAK, confirmed=None)
    mornings = [
        datetime(2026, 3, 2, 8, 30, tzinfo=LONDON),
        datetime(2026, 3, 3, 8, 30, tzinfo=LONDON),
        datetime(2026, 3, 31, 8, 30, tzinfo=LONDON),
        datetime(2026, 4, 1, 8, 30, tzinfo=LONDON),
    ]
    for at in mornings:
        queue_digest(site.conn, config=site.config, now=at, actor="test")
    rows = site.conn.execute("SELECT body FROM message WHERE kind = 'digest' ORDER BY id")
    listed = ["CONTACTS TO CONFIRM (1)" in digest_text(site.keyring, r["body"]) for r in rows]
    assert listed == [True, False, False, True]
    text = digest_text(site.keyring, site.conn.execute("SELECT body FROM message").fetchone()[0])
    assert "Oak Academy (URN 100002), DSL (Dana Lead): never confirmed" in text


def test_contacts_confirmed_within_the_months_are_not_stale(site: Site) -> None:
    pin(site.conn, site.key, urn=OAK, confirmed="2025-03-01")
    directory = SqliteDirectory(site.conn)
    stale = stale_contacts(directory, months=12, today=date(2026, 3, 1))
    assert [(s.urn, s.confirmed) for s in stale] == []
    stale = stale_contacts(directory, months=12, today=date(2026, 3, 2))
    assert [(s.urn, s.confirmed) for s in stale] == [(OAK, date(2025, 3, 1))]


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 3, 31), 1, date(2026, 2, 28)),
        (date(2024, 2, 29), 12, date(2023, 2, 28)),
        (date(2026, 1, 15), 13, date(2024, 12, 15)),
    ],
)
def test_months_before_keeps_the_day_or_takes_the_months_last(
    day: date, months: int, expected: date
) -> None:
    assert months_before(day, months) == expected


# --------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[keys]\nwarn_days = []\n", "give at least one number of days"),
        ("[keys]\nwarn_days = [30, 0]\n", "0 is not a number of days from 1 to 366"),
        ("[keys]\nwarn_days = [7, 7]\n", "names a number of days twice"),
        ("[keys]\nconfirm_contacts_months = 0\n", "keys.confirm_contacts_months"),
        ('[schedule]\nkey_check_at = "7:30"\n', "schedule.key_check_at"),
    ],
)
def test_bad_key_settings_are_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_warn_days_are_kept_most_distant_first(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[keys]\nwarn_days = [1, 30, 7]\n", encoding="utf-8")
    assert load_config(path).config.keys.warn_days == (30, 7, 1)


# --------------------------------------------------------------------------------------
# keys import: only the contact's own key, usable, with the pinned or confirmed fingerprint


def key_file(tmp_path: Path, key: PgpKey, name: str = "key.asc") -> Path:
    path = tmp_path / "keys" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(key.public)
    return path


def import_for_dsl(site: Site, path: Path, fingerprint: str | None, at: datetime) -> KeyImport:
    return import_keys(
        site.conn,
        site.keyring,
        path,
        config=site.config.config,
        at=at,
        actor="test",
        contact=ContactRef(ELM, ContactRole.DSL),
        fingerprint=fingerprint,
    )


def pinned(site: Site) -> tuple[str, str | None]:
    row = site.conn.execute(
        "SELECT fingerprint, confirmed FROM contact WHERE urn = ? AND role = 'dsl'", (ELM,)
    ).fetchone()
    return row["fingerprint"], row["confirmed"]


def test_a_new_key_confirmed_by_telephone_is_imported_and_pinned(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    new = key_factory.make(DSL_EMAIL, serial=1)
    at = datetime(2026, 3, 2, 10, 15, tzinfo=LONDON)
    done = import_for_dsl(site, key_file(tmp_path, new), new.fingerprint.lower(), at)
    assert [key.fingerprint for key in done.imported] == [new.fingerprint]
    assert done.confirmed is not None and done.confirmed.fingerprint == new.fingerprint
    assert pinned(site) == (new.fingerprint, "2026-03-02")
    assert "serves: URN 100001 dsl" in done.lines[0].render()
    event = site.conn.execute(
        "SELECT data FROM audit WHERE event = 'contact.pin_confirmed'"
    ).fetchone()
    assert new.fingerprint in event["data"] and site.key.fingerprint in event["data"]


def test_a_renewed_key_with_the_pinned_fingerprint_is_imported_from_the_folder(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    renewed = key_factory.renewed(site.key, site.until.date() + timedelta(days=365))
    key_file(tmp_path, renewed)
    at = site.until - timedelta(days=3)
    before = pinned(site)
    (done,) = import_keys(
        site.conn, site.keyring, tmp_path / "keys", config=site.config.config, at=at, actor="t"
    ).imported
    assert (done.fingerprint, done.outcome) == (site.key.fingerprint, "updated")
    assert site.until > at + timedelta(days=300)
    assert pinned(site) == before  # nothing was confirmed by telephone


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda f: f.make("someone.else@elm.example.org"),
            f"no user ID of it is {DSL_EMAIL}, the address of URN 100001 dsl",
        ),
        (lambda f: f.make(DSL_EMAIL, sign_only=True), "it has no valid encryption subkey"),
        (lambda f: f.make(DSL_EMAIL, revoked=True, serial=2), "it has been revoked"),
    ],
    ids=["user ID", "cannot encrypt", "revoked"],
)
def test_a_key_that_is_not_fit_for_the_contact_is_refused_and_nothing_imported(
    site: Site,
    key_factory: KeyFactory,
    tmp_path: Path,
    make: Callable[[KeyFactory], PgpKey],
    reason: str,
) -> None:
    key = make(key_factory)
    before = pinned(site)
    with pytest.raises(KeyImportRefused, match=re.escape(reason)):
        import_for_dsl(site, key_file(tmp_path, key), key.fingerprint, datetime.now(LONDON))
    assert site.keyring.key(key.fingerprint) is None
    assert pinned(site) == before


def test_an_expired_key_is_refused(site: Site, key_factory: KeyFactory, tmp_path: Path) -> None:
    # GnuPG makes no key already expired: the clock goes past this one's expiry instead.
    key = key_factory.make(DSL_EMAIL, expires=date.today() + timedelta(days=30), serial=3)
    after = datetime.now(LONDON) + timedelta(days=40)
    with pytest.raises(KeyImportRefused, match="it expired on"):
        import_for_dsl(site, key_file(tmp_path, key), key.fingerprint, after)
    assert site.keyring.key(key.fingerprint) is None


def test_a_key_whose_fingerprint_is_not_the_one_confirmed_is_refused(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    sent = key_factory.make(DSL_EMAIL, serial=4)
    told = key_factory.make(DSL_EMAIL, serial=5)  # the key the contact read out
    with pytest.raises(KeyImportRefused, match="not the fingerprint confirmed by telephone"):
        import_for_dsl(site, key_file(tmp_path, sent), told.fingerprint, datetime.now(LONDON))
    assert site.keyring.key(sent.fingerprint) is None


def test_a_key_for_the_contact_but_not_the_pinned_one_is_refused(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    other = key_factory.make(DSL_EMAIL, serial=6)
    with pytest.raises(KeyImportRefused, match="not the fingerprint pinned for URN 100001 dsl"):
        import_for_dsl(site, key_file(tmp_path, other), None, datetime.now(LONDON))
    path = key_file(tmp_path, other)
    with pytest.raises(KeyImportRefused, match="pinned for no contact"):
        import_keys(
            site.conn,
            site.keyring,
            path.parent,
            config=site.config.config,
            at=datetime.now(LONDON),
            actor="test",
        )
    assert site.keyring.key(other.fingerprint) is None


def test_one_bad_key_in_a_folder_stops_the_whole_import(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    renewed = key_factory.renewed(site.key, site.until.date() + timedelta(days=365))
    key_file(tmp_path, renewed, "a-dsl.asc")
    key_file(tmp_path, key_factory.make("stranger@elm.example.org"), "b-stranger.asc")
    before = site.until
    with pytest.raises(KeyImportRefused, match=r"b-stranger\.asc"):
        import_keys(
            site.conn,
            site.keyring,
            tmp_path / "keys",
            config=site.config.config,
            at=datetime.now(LONDON),
            actor="test",
        )
    site.keyring.refresh()
    assert site.until == before


def test_a_pin_confirmed_by_telephone_survives_a_directory_import_of_the_old_list(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    new = key_factory.make(DSL_EMAIL, serial=1)
    at = datetime(2026, 3, 2, 10, 15, tzinfo=LONDON)
    import_for_dsl(site, key_file(tmp_path, new), new.fingerprint, at)
    sample = write_sample(tmp_path / "sample", reported_on=date(2026, 3, 2))
    settings = load_config(sample.config).config.directory
    assert settings.gias and settings.contacts and settings.pupil_roll
    with sample.directory.contacts.open("a", encoding="utf-8") as contacts:
        contacts.write(f"{ELM},DSL,Dana Lead,{DSL_EMAIL},,{site.key.fingerprint},\n")
    summary = import_directory(
        site.conn,
        gias=settings.gias,
        contacts=settings.contacts,
        roll=settings.pupil_roll,
        roll_columns=load_roll_profiles(site.config.rules_dir)["capita_one"],
        imported_at=at + timedelta(days=1),
        actor="test",
    )
    assert pinned(site) == (new.fingerprint, "2026-03-02")
    assert any("confirmed by telephone on 2026-03-02" in w for w in summary.warnings)


def test_keys_import_on_the_command_line_refuses_with_the_reason(
    site: Site, key_factory: KeyFactory, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[state]\ndatabase = "{site.database}"\n[gnupg]\nhome = "{site.keyring.home}"\n',
        encoding="utf-8",
    )
    stranger = key_factory.make("stranger@elm.example.org")
    args = ["--config", str(config), "keys", "import", str(key_file(tmp_path, stranger))]
    refused = CliRunner().invoke(
        cli, [*args, "--contact", "100001:DSL", "--fingerprint", stranger.fingerprint]
    )
    assert refused.exit_code == 2
    assert f"no user ID of it is {DSL_EMAIL}" in refused.output
    new = key_factory.make(DSL_EMAIL, serial=1)
    args[-1] = str(key_file(tmp_path, new, "new.asc"))
    done = CliRunner().invoke(
        cli, [*args, "--contact", "100001:DSL", "--fingerprint", new.fingerprint]
    )
    assert done.exit_code == 0, done.output
    assert f"now pinned to {new.fingerprint}" in done.output
    usage = CliRunner().invoke(cli, [*args, "--fingerprint", new.fingerprint])
    assert usage.exit_code == 2 and "give --contact URN:ROLE too" in usage.output

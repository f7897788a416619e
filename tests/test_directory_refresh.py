"""The directory refreshed on a schedule from the configured files: unchanged files skipped, a
broken file leaving the old directory in place with the Navigator alerted, and a DSL new to
the gateway sent the welcome pack once."""

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from invariants import assert_sealed, assert_signed_only
from mail_world import SendingDay
from pgp_keys import PgpKey

from gateway.clock import LONDON, SystemClock
from gateway.config import Config, LoadedConfig, StateSection, load_config
from gateway.directory_refresh import Refresh, RefreshOutcome, refresh_directory
from gateway.service import REFRESH_JOB, Service
from gateway.store import open_config_state

MONDAY_NIGHT = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
TUESDAY_SIX = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
WEDNESDAY_SIX = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
WAIT = 20  # seconds: a generous bound for something that takes well under one


def refresh(sending_day: SendingDay, now: datetime) -> Refresh:
    config = load_config(sending_day.config)
    conn = open_config_state(config)
    try:
        return refresh_directory(conn, config=config, now=now, actor="test")
    finally:
        conn.close()


def counts(sending_day: SendingDay) -> tuple[int, int, int]:
    with sending_day.state() as conn:
        return (
            conn.execute("SELECT COUNT(*) FROM establishment").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM directory_import").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM message WHERE kind = 'welcome'").fetchone()[0],
        )


def audited(sending_day: SendingDay, event: str) -> int:
    with sending_day.state() as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM audit WHERE event = ?", (event,)).fetchone()[0]
        )


def test_the_first_import_into_an_empty_directory_welcomes_nobody(sending_day: SendingDay) -> None:
    # The schools were in the scheme before the gateway: they are known, not joining.
    with sending_day.state() as conn:
        states = {row[0] for row in conn.execute("SELECT state FROM welcome")}
    assert states == {"known"}
    assert counts(sending_day)[2] == 0


def test_a_refresh_that_brings_a_new_dsl_sends_their_welcome_once(
    sending_day: SendingDay, navigator_key: PgpKey
) -> None:
    rows = sending_day.contacts()
    school = next(
        e
        for e in sending_day.sample.directory.establishments
        if e.is_open and e.la_code == 874 and e.urn not in sending_day.notified
    )
    (dsl,) = [r for r in rows if int(r["URN"]) == school.urn and r["Role"] == "DSL"]
    dsl["Email"] = "new.dsl@school.example.org"
    sending_day.write_contacts(rows)

    first = refresh(sending_day, TUESDAY_SIX)
    assert first.outcome is RefreshOutcome.IMPORTED
    assert [(w.urn, w.email) for w in first.welcomes.queued] == [
        (school.urn, "new.dsl@school.example.org")
    ]
    # Unchanged files are skipped; an import by hand of the same files welcomes nobody again.
    assert refresh(sending_day, WEDNESDAY_SIX).welcomes.queued == ()
    assert "welcome pack" not in sending_day.run("directory", "import", "--no-progress").output
    assert counts(sending_day)[2] == 1

    sending_day.run("dispatch", now=TUESDAY_SIX.isoformat())
    (welcome,) = sending_day.received("welcome")
    assert welcome.rcpt_tos == ("new.dsl@school.example.org",)
    assert_signed_only(
        welcome.data,
        verifier=sending_day.verifier,
        navigator_fingerprint=navigator_key.fingerprint,
        must_not_contain=[child.written_name for child in sending_day.sample.expected],
    )


def test_a_new_dsl_at_a_school_outside_the_area_is_not_welcomed(sending_day: SendingDay) -> None:
    rows = sending_day.contacts()
    outside = next(
        e
        for e in sending_day.sample.directory.establishments
        if e.is_open and e.la_code not in (873, 874)
    )
    (dsl,) = [r for r in rows if int(r["URN"]) == outside.urn and r["Role"] == "DSL"]
    dsl["Email"] = "new.dsl@elsewhere.example.org"
    sending_day.write_contacts(rows)
    output = sending_day.run("directory", "import", "--no-progress").output
    assert f"new DSL not welcomed yet: {outside.name} (URN {outside.urn}) is in" in output
    assert counts(sending_day)[2] == 0


def test_unchanged_files_are_skipped_and_the_skip_recorded(sending_day: SendingDay) -> None:
    before = counts(sending_day)
    assert refresh(sending_day, TUESDAY_SIX).outcome is RefreshOutcome.SKIPPED
    assert counts(sending_day) == before
    assert audited(sending_day, "directory.refresh_skipped") == 1


def test_a_broken_file_alerts_the_navigator_and_keeps_the_old_directory(
    sending_day: SendingDay, navigator_key: PgpKey
) -> None:
    establishments, imports, _ = counts(sending_day)
    gias = sending_day.sample.directory.gias
    gias.write_bytes(gias.read_bytes().replace(b"URN", b"Reference", 1))

    result = refresh(sending_day, TUESDAY_SIX)
    assert result.outcome is RefreshOutcome.FAILED and "URN" in result.error
    assert counts(sending_day)[:2] == (establishments, imports)
    assert audited(sending_day, "directory.refresh_failed") == 1

    sending_day.run("dispatch", now=TUESDAY_SIX.isoformat())
    (alert,) = sending_day.received("alert")
    assert alert.rcpt_tos == (navigator_key.email,)
    assert_sealed(
        alert.data,
        recipient_home_or_keyring=sending_day.home,
        navigator_fingerprint=navigator_key.fingerprint,
        reference="GW-",
        must_contain=["Directory refresh failed", "The previous directory stays in use", "URN"],
        must_not_contain=[],
    )


def test_a_missing_file_is_a_failed_refresh_too(sending_day: SendingDay) -> None:
    establishments, imports, _ = counts(sending_day)
    sending_day.sample.directory.pupil_roll.unlink()
    result = refresh(sending_day, TUESDAY_SIX)
    assert result.outcome is RefreshOutcome.FAILED and "cannot be read" in result.error
    assert counts(sending_day)[:2] == (establishments, imports)
    with sending_day.state() as conn:
        assert conn.execute("SELECT COUNT(*) FROM message WHERE kind = 'alert'").fetchone()[0] == 1


# --------------------------------------------------------------------------------------
# The service's job


def serve_until_scheduled(service: Service, job: str) -> tuple[datetime | None, datetime | None]:
    """Start the service, read when `job` and the digest run next, and stop it."""
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=WAIT)
        while service.next_run("digest") is None:
            assert datetime.now(UTC) < deadline, f"waited {WAIT} s for the service to start"
            threading.Event().wait(0.05)
        return service.next_run(job), service.next_run("digest")
    finally:
        service.stop.set()
        thread.join()


def test_the_refresh_job_is_scheduled_at_the_configured_time(sending_day: SendingDay) -> None:
    with sending_day.config.open("a", encoding="utf-8") as config:
        config.write('\n[schedule]\ndirectory_refresh_at = "05:45"\n')
    started = datetime.now(UTC)
    when, _ = serve_until_scheduled(
        Service(load_config(sending_day.config), SystemClock()), REFRESH_JOB
    )
    assert when is not None
    local = when.astimezone(LONDON)
    assert (local.hour, local.minute) == (5, 45)
    assert started < when <= started + timedelta(days=1)


def test_without_directory_files_there_is_no_refresh_job(tmp_path: Path) -> None:
    config = Config(state=StateSection(database=tmp_path / "state.sqlite3"))
    when, digest = serve_until_scheduled(
        Service(LoadedConfig(None, config), SystemClock()), REFRESH_JOB
    )
    assert when is None and digest is not None


def test_a_new_dsl_waits_while_the_pack_cannot_be_signed_and_goes_with_the_next_refresh(
    sending_day: SendingDay,
) -> None:
    rows = sending_day.contacts()
    school = next(
        e for e in sending_day.sample.directory.establishments if e.is_open and e.la_code == 873
    )
    (dsl,) = [r for r in rows if int(r["URN"]) == school.urn and r["Role"] == "DSL"]
    dsl["Email"] = "waiting.dsl@school.example.org"
    sending_day.write_contacts(rows)
    signed = sending_day.config.read_text(encoding="utf-8")
    navigator = load_config(sending_day.config).config.navigator.fingerprint
    assert navigator is not None
    sending_day.config.write_text(
        signed.replace(f'fingerprint = "{navigator}"\n', ""), encoding="utf-8"
    )
    output = sending_day.run("directory", "import", "--no-progress").output
    assert "1 new DSL(s) wait for their welcome pack: navigator.fingerprint is not configured" in (
        output
    )
    sending_day.config.write_text(signed, encoding="utf-8")

    later = refresh(sending_day, TUESDAY_SIX)  # the files have not changed since that import
    assert later.outcome is RefreshOutcome.SKIPPED
    assert [(w.urn, w.email) for w in later.welcomes.queued] == [
        (school.urn, "waiting.dsl@school.example.org")
    ]
    assert refresh(sending_day, WEDNESDAY_SIX).welcomes.queued == ()


def test_a_refresh_logs_the_new_dsls_still_waiting_without_naming_them(
    sending_day: SendingDay, caplog: pytest.LogCaptureFixture
) -> None:
    rows = sending_day.contacts()
    outside = next(
        e
        for e in sending_day.sample.directory.establishments
        if e.is_open and e.la_code not in (873, 874)
    )
    (dsl,) = [r for r in rows if int(r["URN"]) == outside.urn and r["Role"] == "DSL"]
    dsl["Email"] = "new.dsl@elsewhere.example.org"
    sending_day.write_contacts(rows)
    with caplog.at_level("WARNING", logger="gateway.directory_refresh"):
        refresh(sending_day, TUESDAY_SIX)
    assert f"new DSL not welcomed yet: {outside.name} (URN {outside.urn})" in caplog.text
    assert "new.dsl@" not in caplog.text and dsl["Name"] not in caplog.text

"""Importing the directory from the configured files, by hand (`directory import`) or on a
schedule (the service's "directory_refresh" job), and welcoming the DSLs it brings.

Both go through `import_and_welcome`: the import (gateway/directory.py, atomic: the old
directory stays whole when it fails), the new DSLs noted in the same transaction, then
their welcome packs queued (gateway/onboarding.py).

The scheduled refresh (`refresh_directory`) also:
- skips the import, and records that it did, when the three files are byte for byte those
  of the last import (their SHA-256, kept with each import);
- on a failure keeps the previous directory (the import is one transaction) and tells the
  Navigator by an encrypted alert, so a stale directory is never silently relied on.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial
from pathlib import Path

from gateway import audit
from gateway.config import LoadedConfig
from gateway.directory import (
    ImportSummary,
    RollColumns,
    SqliteDirectory,
    files_sha256,
    import_directory,
    last_import_sha256,
    load_roll_profiles,
)
from gateway.errors import ConfigError, GatewayError
from gateway.keyring import open_keyring
from gateway.onboarding import WelcomeReport, note_new_dsls, send_pending_welcomes
from gateway.operations import make_sealer
from gateway.outbox import MessageKind
from gateway.own_mail import alert_message, queue_to_navigator
from gateway.ruleset import load_rules
from gateway.store import transaction

log = logging.getLogger("gateway.directory_refresh")


@dataclass(frozen=True)
class DirectoryFiles:
    """The three files of a directory import and the pupil roll's column profile."""

    gias: Path
    contacts: Path
    roll: Path
    roll_columns: RollColumns

    @property
    def sha256(self) -> str:
        return files_sha256(self.gias, self.contacts, self.roll)


def configured_files(
    config: LoadedConfig,
    *,
    gias: Path | None = None,
    contacts: Path | None = None,
    roll: Path | None = None,
    roll_profile: str | None = None,
) -> DirectoryFiles:
    """The files given, else those of [directory]; ConfigError naming what is missing."""
    settings = config.config.directory
    where = config.source or "the configuration"

    def chosen(key: str, option: str, given: Path | None, configured: Path | None) -> Path:
        if given is not None:
            return given
        if configured is None:
            raise ConfigError(f"{where}: directory.{key} is not set; set it there or pass {option}")
        return configured

    profile_name = roll_profile or settings.roll_profile
    profiles = load_roll_profiles(config.rules_dir)
    if profile_name not in profiles:
        raise ConfigError(
            f"directory.roll_profile: {profile_name!r} is not a profile of "
            f"{config.rules_dir / 'pupil_roll.toml'}; allowed: {', '.join(sorted(profiles))}"
        )
    return DirectoryFiles(
        gias=chosen("gias", "--gias", gias, settings.gias),
        contacts=chosen("contacts", "--contacts", contacts, settings.contacts),
        roll=chosen("pupil_roll", "--roll", roll, settings.pupil_roll),
        roll_columns=profiles[profile_name],
    )


def refresh_configured(config: LoadedConfig) -> bool:
    """Whether the scheduled refresh runs: all three [directory] files are configured."""
    settings = config.config.directory
    return None not in (settings.gias, settings.contacts, settings.pupil_roll)


@dataclass(frozen=True)
class Imported:
    """What an import did: the directory's summary and the welcome packs it led to."""

    summary: ImportSummary
    welcomes: WelcomeReport


def import_and_welcome(
    conn: sqlite3.Connection,
    files: DirectoryFiles,
    *,
    config: LoadedConfig,
    now: datetime,
    actor: str,
    progress: bool = False,
) -> Imported:
    """Import `files` (atomically) noting the DSLs new to the gateway in the same
    transaction, then queue their welcome packs. Raises as `import_directory` does, and as
    `send_pending_welcomes` does after the import (the new DSLs then stay pending, and are
    welcomed after the next import or refresh)."""
    summary = _import(conn, files, now=now, actor=actor, progress=progress)
    return Imported(summary, send_pending_welcomes(conn, config=config, now=now, actor=actor))


def _import(
    conn: sqlite3.Connection,
    files: DirectoryFiles,
    *,
    now: datetime,
    actor: str,
    progress: bool = False,
) -> ImportSummary:
    # An import into an empty directory welcomes nobody (gateway/onboarding.py says why).
    initial = not SqliteDirectory(conn).establishments()
    return import_directory(
        conn,
        gias=files.gias,
        contacts=files.contacts,
        roll=files.roll,
        roll_columns=files.roll_columns,
        imported_at=now,
        actor=actor,
        progress=progress,
        on_stored=partial(note_new_dsls, initial=initial, now=now, actor=actor),
    )


class RefreshOutcome(StrEnum):
    IMPORTED = "imported"
    SKIPPED = "skipped"  # the files are those of the last import
    FAILED = "failed"  # the previous directory stays; the Navigator is alerted


@dataclass(frozen=True)
class Refresh:
    """What a scheduled refresh did."""

    outcome: RefreshOutcome
    summary: ImportSummary | None = None  # when imported
    welcomes: WelcomeReport = field(default_factory=WelcomeReport)
    error: str = ""  # when failed


def refresh_directory(
    conn: sqlite3.Connection, *, config: LoadedConfig, now: datetime, actor: str
) -> Refresh:
    """The scheduled refresh from the configured files (see the module's docstring); then
    the welcome packs of every DSL still pending, whether the files changed or not (one a
    crash or a missing key left waiting goes now).

    Raises ConfigError when the files are not configured, or when the Navigator cannot be
    alerted of a failure (no Navigator key; the failure is in the audit all the same); and
    as `send_pending_welcomes` does.
    """
    files = configured_files(config)
    try:
        sha256 = files.sha256
        if sha256 == last_import_sha256(conn):
            summary = None
            with transaction(conn):
                audit.append(conn, "directory.refresh_skipped", actor=actor, at=now, sha256=sha256)
        else:
            summary = _import(conn, files, now=now, actor=actor)
    except GatewayError as error:
        return _failed(conn, config=config, files=files, error=error, now=now, actor=actor)
    welcomes = send_pending_welcomes(conn, config=config, now=now, actor=actor)
    for line in welcomes.waiting:  # schools and URNs only: no person is named
        log.warning("%s", line)
    if summary is None:
        log.info("directory refresh skipped: the files are those of the last import")
        return Refresh(RefreshOutcome.SKIPPED, welcomes=welcomes)
    log.info(
        "directory refreshed: %d establishments, %d contacts, %d pupils; %d welcome packs",
        summary.establishments,
        summary.contacts,
        summary.pupils,
        len(welcomes.queued),
    )
    return Refresh(RefreshOutcome.IMPORTED, summary, welcomes)


def _failed(
    conn: sqlite3.Connection,
    *,
    config: LoadedConfig,
    files: DirectoryFiles,
    error: GatewayError,
    now: datetime,
    actor: str,
) -> Refresh:
    # The audit keeps the error's class only: a message about a bad row may quote the row.
    with transaction(conn):
        audit.append(
            conn, "directory.refresh_failed", actor=actor, at=now, error=type(error).__name__
        )
    # Its message goes to the Navigator sealed, not to the log: it may quote a file's line.
    log.error(
        "directory refresh failed (%s); the previous directory stays; the Navigator is alerted",
        type(error).__name__,
    )
    imported = conn.execute(
        "SELECT imported_at FROM directory_import ORDER BY id DESC LIMIT 1"
    ).fetchone()
    since = imported["imported_at"] if imported else "never: the directory is empty"
    lines = [
        f"The scheduled directory refresh at {now.isoformat()} failed:",
        "",
        f"  {error}",
        "",
        f"The previous directory stays in use (imported {since}). Routing goes on with it,",
        "so a school, contact or pupil changed since then is not known to the gateway.",
        "Correct the file and run `encompass-gateway directory import`, or wait for the",
        "next scheduled refresh.",
        "",
        "The files:",
        f"  GIAS extract: {files.gias}",
        f"  contacts list: {files.contacts}",
        f"  pupil roll: {files.roll}",
    ]
    with open_keyring(config.config.gnupg.home) as keyring, transaction(conn):
        queue_to_navigator(
            conn,
            alert_message("Directory refresh failed: the previous directory is kept", lines),
            kind=MessageKind.ALERT,
            key=f"directory-refresh/{now.isoformat()}",
            sealer=make_sealer(
                config, keyring, template=load_rules(config.rules_dir).routing.template
            ),
            now=now,
            actor=actor,
        )
    return Refresh(RefreshOutcome.FAILED, error=str(error))

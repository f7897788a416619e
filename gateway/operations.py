"""The one-shot operations behind the CLI, wiring adapters (files, state) to the domain."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from gateway.clock import LONDON
from gateway.config import LoadedConfig
from gateway.directory import SqliteDirectory
from gateway.errors import SpreadsheetRefused, StateError
from gateway.model import SpreadsheetIntake
from gateway.plan import Plan, build_plan
from gateway.ruleset import load_rules
from gateway.spreadsheet import read_police_workbook
from gateway.xlsx_guard import XlsxLimits

MB = 1024 * 1024


def intake_limits(config: LoadedConfig) -> XlsxLimits:
    intake = config.config.intake
    return XlsxLimits(
        max_file_bytes=int(intake.max_file_mb * MB),
        max_entries=intake.max_zip_entries,
        max_uncompressed_bytes=int(intake.max_uncompressed_mb * MB),
        max_ratio=intake.max_compression_ratio,
    )


def read_spreadsheet_file(path: Path, limits: XlsxLimits) -> bytes:
    """The file's bytes, refusing an oversized file before reading it into memory."""
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise SpreadsheetRefused(
                f"{path.name}: {size / MB:.1f} MB is over the {limits.max_file_bytes / MB:.0f} MB"
                " limit for a police spreadsheet (intake.max_file_mb)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise SpreadsheetRefused(f"{path}: cannot be read: {exc.strerror}") from exc


def plan_file(
    path: Path, *, conn: sqlite3.Connection, config: LoadedConfig, arrival: datetime
) -> tuple[SpreadsheetIntake, Plan]:
    """Read a police spreadsheet and decide every child's outcome, recording nothing."""
    rules = load_rules(config.rules_dir)
    limits = intake_limits(config)
    intake = read_police_workbook(
        read_spreadsheet_file(path, limits),
        path.name,
        rules.headers,
        limits=limits,
        today=arrival.astimezone(LONDON).date(),
    )
    directory = SqliteDirectory(conn)
    if not directory.establishments():
        raise StateError(
            f"the directory in {config.database} is empty: run `encompass-gateway directory"
            " import` before processing a spreadsheet"
        )
    return intake, build_plan(intake, directory=directory, rules=rules, arrival=arrival)

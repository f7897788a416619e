"""The demo: a generated directory and police spreadsheet, taken through the domain core.

Everything is synthetic and lives in a workspace of its own; nothing is sent anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.clock import LONDON
from gateway.config import load_config
from gateway.directory import ImportSummary, import_directory, load_roll_profiles
from gateway.operations import plan_file
from gateway.plan import Plan
from gateway.ruleset import load_rules
from gateway.store import open_state
from gateway.synthetic import SamplePaths, write_sample

# A Monday morning in term: the weekend's incidents are due at 09:00 today.
DEMO_MORNING = datetime(2026, 3, 2, 7, 30, tzinfo=LONDON)


@dataclass(frozen=True)
class DemoRun:
    sample: SamplePaths
    directory: ImportSummary
    plan: Plan


def run_demo(workspace: Path, *, now: datetime) -> DemoRun:
    sample = write_sample(workspace, reported_on=now.astimezone(LONDON).date())
    config = load_config(sample.config)
    conn = open_state(config.database)
    try:
        profiles = load_roll_profiles(config.rules_dir)
        settings = config.config.directory
        assert settings.gias and settings.contacts and settings.pupil_roll
        summary = import_directory(
            conn,
            gias=settings.gias,
            contacts=settings.contacts,
            roll=settings.pupil_roll,
            roll_columns=profiles[settings.roll_profile],
            imported_at=now,
        )
        rules = load_rules(config.rules_dir)
        _, plan = plan_file(sample.workbook, conn=conn, config=config, rules=rules, arrival=now)
    finally:
        conn.close()
    return DemoRun(sample, summary, plan)

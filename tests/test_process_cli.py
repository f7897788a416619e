"""`directory import` and `process` through the real command line, on generated sample data."""

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.at_rest import key_file_beside
from gateway.cli import cli
from gateway.synthetic import SamplePaths, write_sample

NOW = "2026-03-02T07:00:00+00:00"  # Monday before 09:00: weekend incidents are due today


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamplePaths]:
    paths = write_sample(tmp_path_factory.mktemp("sample"), reported_on=date(2026, 3, 2))
    result = run(paths, "directory", "import", "--no-progress")
    assert result.exit_code == 0, result.output
    yield paths


def run(sample: SamplePaths, *args: str, now: str = NOW) -> Result:
    return CliRunner().invoke(cli, ["--config", str(sample.config), "--now", now, *args])


def intakes(sample: SamplePaths) -> int:
    database = sample.config.parent / "state" / "gateway.sqlite3"
    with sqlite3.connect(database) as conn:
        count: int = conn.execute("SELECT count(*) FROM intake").fetchone()[0]
    return count


def test_directory_import_prints_a_summary(sample: SamplePaths) -> None:
    result = run(sample, "directory", "import", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "establishments: 40" in result.output
    assert "pupils: 3000" in result.output


def test_dry_run_prints_one_line_per_child_and_records_nothing(sample: SamplePaths) -> None:
    before = intakes(sample)
    result = run(sample, "process", str(sample.workbook), "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{len(sample.expected)} children:" in result.output
    for header in ("incident", "child", "outcome", "school", "due", "reason"):
        assert header in result.output.splitlines()[0]
    assert intakes(sample) == before


def test_json_plan_has_one_object_per_child_with_due_and_offset(sample: SamplePaths) -> None:
    result = run(sample, "process", str(sample.workbook), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert len(plan) == len(sample.expected)
    for entry in plan:
        assert entry["outcome"] in {"notify", "telephone", "withhold", "exception"}
        assert {"incident_ref", "child", "urn", "due", "reason", "candidates"} <= set(entry)
        if entry["outcome"] == "notify":
            due = datetime.fromisoformat(entry["due"])
            assert due.utcoffset() is not None
            assert entry["urn"] is not None


def test_no_child_routed_to_a_school_other_than_their_own(sample: SamplePaths) -> None:
    plan = json.loads(run(sample, "process", str(sample.workbook), "--dry-run", "--json").output)
    truth = {(e.sheet, e.row, e.group): e for e in sample.expected}
    routed = [e for e in plan if e["outcome"] in {"notify", "telephone"}]
    assert routed
    for entry in routed:
        source = entry["source_row"]
        expected = truth[(source["sheet"], source["row"], source["group"])]
        assert expected.routable
        assert entry["urn"] == expected.expected_urn, entry


def test_the_same_file_twice_records_nothing_new(sample: SamplePaths) -> None:
    first = run(sample, "process", str(sample.workbook))
    assert first.exit_code == 0, first.output
    count = intakes(sample)
    second = run(sample, "process", str(sample.workbook))
    assert second.exit_code == 0, second.output
    assert "nothing new recorded" in second.output
    assert intakes(sample) == count


def test_a_refused_file_exits_non_zero_naming_the_file(sample: SamplePaths, tmp_path: Path) -> None:
    renamed_csv = tmp_path / "incidents.xlsx"
    renamed_csv.write_text("Incident Ref,Child Name\nCC-1,Sam Smith\n", encoding="utf-8")
    result = run(sample, "process", str(renamed_csv), "--dry-run")
    assert result.exit_code == 2
    assert "incidents.xlsx" in result.output


def test_processing_without_a_directory_says_what_to_do(
    sample: SamplePaths, tmp_path: Path
) -> None:
    config = tmp_path / "empty.toml"
    config.write_text('[state]\ndatabase = "state.sqlite3"\n', encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["--config", str(config), "process", str(sample.workbook), "--dry-run"]
    )
    assert result.exit_code == 2
    assert "directory import" in result.output


def test_directory_import_without_a_file_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[state]\ndatabase = "state.sqlite3"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "directory", "import"])
    assert result.exit_code == 2
    assert "directory.gias is not set" in result.output


def test_now_must_be_an_iso_instant(sample: SamplePaths) -> None:
    result = run(sample, "process", str(sample.workbook), now="next tuesday")
    assert result.exit_code == 2
    assert "not an ISO-8601 instant" in result.output


def test_audit_verify_passes_after_processing_and_fails_after_tampering(
    sample: SamplePaths, tmp_path: Path
) -> None:
    assert run(sample, "process", str(sample.workbook)).exit_code == 0
    # Tamper with a copy, so the shared sample stays intact for the other tests.
    database = tmp_path / "copy.sqlite3"
    source = sqlite3.connect(sample.config.parent / "state" / "gateway.sqlite3")
    target = sqlite3.connect(database)
    source.backup(target)
    source.close()
    target.close()
    # The copy's personal data is sealed with the original's storage key: it travels with it.
    shutil.copy(key_file_beside(sample.config.parent / "state" / "gateway.sqlite3"), tmp_path)
    config = tmp_path / "copy.toml"
    config.write_text(f'[state]\ndatabase = "{database}"\n', encoding="utf-8")

    def verify() -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), "audit", "verify"])

    intact = verify()
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TRIGGER audit_append_only_update")
        conn.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 2")
    broken = verify()
    assert broken.exit_code == 1
    assert "entry 2" in broken.output


def test_audit_export_writes_the_navigator_record(sample: SamplePaths, tmp_path: Path) -> None:
    assert run(sample, "process", str(sample.workbook)).exit_code == 0
    out = tmp_path / "record.xlsx"
    result = run(sample, "audit", "export", str(out))
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert f"wrote {len(sample.expected)} rows" in result.output

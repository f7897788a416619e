"""A sample day's setup shared by end-to-end tests: which schools the sample spreadsheet
notifies, and real keys pinned for their contacts, as the LA would."""

import csv
import json
from pathlib import Path

from click.testing import CliRunner
from pgp_keys import KeyFactory, PgpKey

from gateway.cli import cli
from gateway.synthetic import SamplePaths

INTAKE = "2026-03-02T07:00:00+00:00"  # Monday morning, before 09:00 GMT


def notified_urns(sample: SamplePaths) -> set[int]:
    runner = CliRunner()
    base = ["--config", str(sample.config), "--now", INTAKE]
    assert runner.invoke(cli, [*base, "directory", "import", "--no-progress"]).exit_code == 0
    plan = json.loads(
        runner.invoke(cli, [*base, "process", str(sample.workbook), "--dry-run", "--json"]).output
    )
    return {entry["urn"] for entry in plan if entry["outcome"] == "notify"}


def pin_real_keys(
    contacts_csv: Path, urns: set[int], factory: KeyFactory, folder: Path
) -> dict[str, PgpKey]:
    """Give every contact of the notified schools a real key, as the LA would pin them."""
    with contacts_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    folder.mkdir()
    keys = {}
    for row in rows:
        if int(row["URN"]) in urns:
            key = factory.make(row["Email"])
            keys[row["Email"]] = key
            row["Fingerprint"] = key.fingerprint
            (folder / f"{key.fingerprint}.asc").write_bytes(key.public)
    with contacts_csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return keys

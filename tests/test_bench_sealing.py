"""The sealing benchmark at a tiny size: it runs end to end, prints every figure issue 3 asks
for, and leaves no GnuPG home behind. Timings are printed, never asserted."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
FIGURE = r"(\d+\.\d+) ms\s+(\d+\.\d+) s"


def bench_homes() -> set[Path]:
    """The benchmark's GnuPG homes in /tmp (its gpg-agents end with them)."""
    return {*Path("/tmp").glob("ebg-*"), *Path("/tmp").glob("ebs-*")}


def test_sealing_bench_prints_bare_gpg_ours_and_the_target_verdict(tmp_path: Path) -> None:
    homes_before = bench_homes()
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "sealing", "--notifications", "5"],
        cwd=REPOSITORY,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for step in (
        "bare gpg --sign --encrypt (a process each)",
        "our sealing (seal_planned)",
        "bare SMTP round trip (smtplib, 1 connection)",
        "our dispatch (dispatch_due, 1 connection)",
        "bare gpg + SMTP round trip",
        "our sealing + dispatch",
    ):
        assert re.search(re.escape(step) + r"\s+" + FIGURE, out), f"no figures for {step}:\n{out}"
    assert re.search(r"median \d+\.\d+ ms", out)
    assert re.search(r"\d+\.\d+x bare gpg", out)
    assert re.search(r"\d+\.\d+x bare, target <= 1\.5x (OK|MISSED)", out)
    assert "delivered 5/5 to the sink; 2 opened with the school's key" in out
    assert bench_homes() <= homes_before

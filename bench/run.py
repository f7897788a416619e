"""The benchmark run, in two sections (`--only` picks one):

- routing: generate each directory and police file, run each command in a child process of
  its own (so its peak memory is its own), score the plan, print the table;
- sealing: seal and dispatch planned notifications to a loopback SMTP sink, next to bare
  gpg and a bare SMTP round trip (bench/sealing.py)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal

from bench.sealing import FULL_SIZE, SealingBenchFailed, bench_sealing, render_sealing
from gateway.synthetic import generate_directory, generate_police_workbook, write_config
from gateway.synthetic.scoring import RoutingScore, score_plan

# A Monday morning in term, before 09:00: the weekend's incidents are due at 09:00 today.
NOW = "2026-03-02T07:00:00+00:00"
REPORTED_ON = date(2026, 3, 2)


@dataclass(frozen=True)
class Scale:
    name: str
    establishments: int
    pupils: int
    incidents: int
    layout: Literal["per_child", "per_incident"]
    import_target_s: float | None  # issue 2's targets; None where it sets none
    process_target_s: float
    process_target_mb: float | None


FULL = (
    Scale("county", 400, 130_000, 60, "per_child", 15, 2, None),
    Scale("national", 24_000, 2_000_000, 3_000, "per_incident", None, 60, 1024),
)
QUICK = (
    Scale("county", 60, 5_000, 20, "per_child", 15, 2, None),
    Scale("national", 1_200, 30_000, 200, "per_incident", None, 60, 1024),
)
SECTIONS = ("routing", "sealing")
QUICK_NOTIFICATIONS = 30


@dataclass(frozen=True)
class Measured:
    step: str
    wall_s: float
    peak_mb: float
    exit_status: int
    stdout: str
    stderr: str
    target_s: float | None = None
    target_mb: float | None = None
    score: RoutingScore | None = None

    @property
    def failed(self) -> bool:
        return self.exit_status != 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=SECTIONS, help="run one section (default: both)")
    parser.add_argument("--skip-national", action="store_true", help="routing: county only")
    parser.add_argument(
        "--notifications",
        type=int,
        help=f"sealing: how many (default {FULL_SIZE}, {QUICK_NOTIFICATIONS} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument(
        "--workdir", type=Path, help="generate here and keep the files (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.notifications is not None and args.notifications < 1:
        parser.error("--notifications must be at least 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run_sections(args, args.workdir.resolve())
    with tempfile.TemporaryDirectory(prefix="encompass-bench-") as workdir:
        return run_sections(args, Path(workdir))


def run_sections(args: argparse.Namespace, workdir: Path) -> int:
    """Run the sections `args` asks for; 1 when a step failed or routed a child wrongly."""
    status = 0
    if args.only in (None, "routing"):
        scales: Sequence[Scale] = QUICK if args.quick else FULL
        if args.skip_national:
            scales = scales[:1]
        results = run(scales, workdir, args.seed)
        print()
        print(render(results, quick=args.quick))
        broken = [
            r
            for r in results
            if r.failed or (r.score is not None and (r.score.wrong_routes or r.score.missing))
        ]
        status = 1 if broken else status
    if args.only in (None, "sealing"):
        count = args.notifications or (QUICK_NOTIFICATIONS if args.quick else FULL_SIZE)
        print()
        try:
            figures = bench_sealing(count, workdir / "sealing", seed=args.seed)
        except SealingBenchFailed as failure:
            print(f"sealing: FAILED: {failure}")
            return 1
        print()
        print(render_sealing(figures))
    return status


def run(scales: Sequence[Scale], workdir: Path, seed: int) -> list[Measured]:
    results: list[Measured] = []
    for scale in scales:
        results.extend(bench_scale(scale, workdir / scale.name, seed))
    return results


def bench_scale(scale: Scale, folder: Path, seed: int) -> list[Measured]:
    started = time.perf_counter()
    sample = generate_directory(
        folder,
        establishments=scale.establishments,
        pupils=scale.pupils,
        seed=seed,
        as_of=REPORTED_ON,
    )
    config = write_config(folder / "gateway.toml", sample)
    workbook = folder / f"police-{scale.incidents}-incidents.xlsx"
    expected = generate_police_workbook(
        workbook,
        sample,
        incidents=scale.incidents,
        layout=scale.layout,
        seed=seed,
        reported_on=REPORTED_ON,
    )
    print(
        f"{scale.name}: generated {scale.establishments:,} establishments, "
        f"{scale.pupils:,} pupils and {scale.incidents:,} incidents ({len(expected):,} children) "
        f"in {time.perf_counter() - started:.1f} s under {folder}",
        flush=True,
    )
    gateway = [sys.executable, "-m", "gateway", "--config", str(config)]
    imported = measure(
        f"directory import ({scale.name}, {scale.pupils:,} pupils)",
        [*gateway, "directory", "import"],
        target_s=scale.import_target_s,
    )
    report_progress(imported)
    if imported.failed:
        return [imported]
    processed = measure(
        f"process {scale.incidents:,} incidents ({scale.name})",
        [*gateway, "--now", NOW, "process", str(workbook), "--dry-run", "--json"],
        target_s=scale.process_target_s,
        target_mb=scale.process_target_mb,
    )
    if not processed.failed:
        score = score_plan(json.loads(processed.stdout), expected)
        processed = replace(processed, score=score)
    report_progress(processed)
    return [imported, processed]


def measure(
    step: str,
    command: Sequence[str],
    *,
    target_s: float | None = None,
    target_mb: float | None = None,
) -> Measured:
    """Run `command` as a child process; its wall time and its own peak resident memory."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        # wait4 gives this one child's rusage; RUSAGE_CHILDREN would be the maximum over
        # every child so far, hiding a small step behind a big one.
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return Measured(
        step=step,
        wall_s=wall,
        peak_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        exit_status=child.returncode,
        stdout=stdout,
        stderr=stderr,
        target_s=target_s,
        target_mb=target_mb,
    )


def report_progress(result: Measured) -> None:
    print(f"  {result.step}: {result.wall_s:.2f} s, {result.peak_mb:.0f} MB")
    if result.failed:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        print(f"  FAILED with exit status {result.exit_status}:", *tail, sep="\n    ")
    elif result.score is not None:
        print("  " + result.score.summary().replace("\n", "\n  "), flush=True)
    else:
        summary = result.stdout.strip().splitlines()
        shown = summary[:6] + ([f"... ({len(summary) - 6} more lines)"] if len(summary) > 6 else [])
        print(*shown, sep="\n    ", flush=True)


def render(results: Sequence[Measured], *, quick: bool) -> str:
    header = ("step", "wall", "target", "peak RSS", "target", "auto-route", "wrong routes")
    rows: list[tuple[str, ...]] = [header]
    for r in results:
        if r.failed:
            rows.append((r.step, f"FAILED (exit {r.exit_status})", "", "", "", "", ""))
            continue
        rate = wrong = "-"
        if r.score is not None:
            rate = f"{r.score.auto_route_rate:.1%} ({r.score.auto_routed}/{r.score.routable})"
            wrong = str(len(r.score.wrong_routes))
        rows.append(
            (
                r.step,
                f"{r.wall_s:.2f} s",
                _against(r.wall_s, r.target_s, "s"),
                f"{r.peak_mb:.0f} MB",
                _against(r.peak_mb, r.target_mb, "MB"),
                rate,
                wrong,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if quick:
        lines.append("(--quick: small sizes; the targets are for the full sizes)")
    return "\n".join(line.rstrip() for line in lines)


def _against(value: float, target: float | None, unit: str) -> str:
    if target is None:
        return "-"
    verdict = "ok" if value < target else "MISSED"
    return f"< {target:g} {unit} {verdict}"

"""One partition materialised under Dagster (in-process executor, ephemeral instance) against `trakt-nb run` for the
same day, each into a fresh folder, on the small replay world of `tests/test_run.py`; runs alternate (runner, Dagster,
runner, ...) so that both see the same machine load, and the ratio is of medians.

Run from the project root (needs the dagster extra, `make test-setup`):  .venv/bin/python -m bench.dagster [--repeat N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-07-10"
SMALL = {"TRAKT_NB_REPLAY_SEED": "5", "TRAKT_NB_REPLAY_MOVIES": "4", "TRAKT_NB_REPLAY_SHOWS": "3", "TRAKT_NB_REPLAY_USERS": "300",
         "TRAKT_NB_REPLAY_COMMENTS_PER_TITLE": "300", "TRAKT_NB_TITLES_TRENDING_TOP_N": "3"}
MATERIALISE = ("import dagster as dg; from trakt_nb.ops import dagster as t; "
               "r = dg.materialize([t.bronze_pages, t.model, *t.REPORT_DEFS, t.day_run, t.data_tests_check()], "
               f"partition_key='{DAY}', instance=dg.DagsterInstance.ephemeral()); raise SystemExit(0 if r.success else 1)")


def timed(kind: str) -> float:
    "Seconds of one `trakt-nb run` (kind 'runner') or one materialisation (kind 'dagster') into a fresh folder."
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-dagster-{kind}-"))
    env = {**os.environ, **SMALL, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp / "w.duckdb"), "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp / "reports"),
           "TRAKT_NB_STORAGE_STATE_DIR": str(tmp / "state")}
    cmd = ([str(Path(sys.executable).parent / "trakt-nb"), "run", "--date", DAY] if kind == "runner" else [sys.executable, "-c", MATERIALISE])
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if p.returncode: raise SystemExit(f"{kind} failed:\n{p.stderr[-2000:]}")
    return time.monotonic() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (the medians are compared)")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f} at start · day {DAY}, small world")
    runs = {"runner": [], "dagster": []}
    for _ in range(args.repeat):
        for kind in runs: runs[kind].append(timed(kind))
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items(): print(f"{k:<8} median {med[k]:6.1f} s   runs {', '.join(f'{x:.1f}' for x in v)}")
    print(f"ratio Dagster / trakt-nb run: {med['dagster'] / med['runner']:.2f}   (load {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()

"""A daily run's wall time split into notebook/kernel overhead and library work, at the default world and at 10x.

Each step is a papermill execution; papermill records every cell's execution time in the executed notebook
(`metadata.papermill.duration`). Library work = the sum of a step's cell times; overhead = the step's wall
time minus that (kernel start, papermill, nbconvert rendering is counted separately as `render`).

Run from the project root:  .venv/bin/python -m bench.run  [--only default|10x]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = "2026-11-28"
WORLDS = {"default": {}, "10x": {"TRAKT_NB_REPLAY_COMMENTS_PER_TITLE": "5000"}}


def measure(name: str, extra_env: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-run-{name}-"))
    env = {**os.environ, **extra_env, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp / "w.duckdb"), "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp / "reports"),
           "TRAKT_NB_REPLAY_RATE_LIMIT_CALLS": "1000000"}
    t0 = time.monotonic()
    p = subprocess.run([str(Path(sys.executable).parent / "trakt-nb"), "run", "--date", DAY], env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode: raise SystemExit(f"run failed for {name}:\n{p.stderr[-2000:]}")
    run = json.loads((tmp / "reports" / DAY / "run.json").read_text())
    steps = []
    for st in run["steps"]:
        nb_path = tmp / "reports" / DAY / f"{st['name']}.ipynb"
        if nb_path.exists():  # a papermill step: its library work is the sum of its cells' execution times
            nb = json.loads(nb_path.read_text())
            work = sum((c.get("metadata", {}).get("papermill", {}) or {}).get("duration") or 0 for c in nb["cells"])
        else:  # a step run in the runner's own process (the data tests): all library work, no kernel
            work = st["duration_s"]
        steps.append({"step": st["name"], "wall": st["duration_s"], "work": work, "overhead": st["duration_s"] - work})
    render = run["duration_s"] - sum(s["wall"] for s in steps)
    return {"world": name, "command_wall": wall, "run": run["duration_s"], "steps": steps, "render_and_index": render,
            "comments": _comments(tmp / "w.duckdb")}


def _comments(path: Path) -> int:
    import duckdb
    con = duckdb.connect(str(path), read_only=True)
    try: return con.execute("SELECT count(*) FROM silver.stg_trakt__comment_event").fetchone()[0]
    finally: con.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=list(WORLDS))
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f}")
    for name, env in WORLDS.items():
        if args.only and name != args.only: continue
        r = measure(name, env)
        work = sum(s["work"] for s in r["steps"]); over = sum(s["overhead"] for s in r["steps"]) + r["render_and_index"]
        print(f"\nworld {name}: {r['comments']:,} comments in silver; `trakt-nb run` {r['command_wall']:.1f} s (run {r['run']:.1f} s)")
        print(f"{'step':<16}{'wall s':>9}{'library s':>11}{'overhead s':>12}{'overhead %':>12}")
        for s in r["steps"]:
            print(f"{s['step']:<16}{s['wall']:>9.1f}{s['work']:>11.1f}{s['overhead']:>12.1f}{s['overhead'] / s['wall']:>12.0%}")
        print(f"{'render+index':<16}{r['render_and_index']:>9.1f}{0:>11.1f}{r['render_and_index']:>12.1f}")
        print(f"{'total':<16}{r['run']:>9.1f}{work:>11.1f}{over:>12.1f}{over / r['run']:>12.0%}   (target: overhead <= 20%)")


if __name__ == "__main__":
    main()

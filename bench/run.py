"""A daily run's wall time split into notebook/kernel overhead and library work, at the default world and at 10x.

Each step is a papermill execution; papermill records every cell's execution time in the executed notebook
(`metadata.papermill.duration`). Library work = the sum of a step's cell times; overhead = the step's wall
time minus that (kernel start, papermill, kernel end). Steps run in the runner's own process (the data tests)
are library work throughout. Rendering the pages, the health page and the index after the last step is
overhead (`render+index`: the run's wall time minus its steps').

With `--baseline REF` every world is also run, side by side in the same invocation, by the runner as it was
at git revision REF: a copy of the current tree (library, pipeline notebooks, schemas) in which only the
runner's own files (`RUNNER_FILES`) are taken from REF, put first on PYTHONPATH so that `trakt-nb` and every
kernel it starts import that copy. Runs alternate (baseline, current, baseline, current ...) so that both
see the same machine load.

Run from the project root:  .venv/bin/python -m bench.run  [--only default|10x] [--baseline REF] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-11-28"
WORLDS = {"default": {}, "10x": {"TRAKT_NB_REPLAY_COMMENTS_PER_TITLE": "5000"}}
RUNNER_FILES = ["trakt_nb/ops/run.py", "trakt_nb/ops/charts.py", "notebooks/pipeline/10_ingest.ipynb", "notebooks/pipeline/20_model.ipynb",
                "notebooks/pipeline/30_quadrants.ipynb", "notebooks/pipeline/31_half_life.ipynb"]


def baseline_tree(ref: str) -> Path:
    "A copy of the current library, pipeline notebooks and schemas with the runner's files as they were at `ref`."
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-baseline-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("trakt_nb", "notebooks/pipeline", "schemas"): shutil.copytree(ROOT / d, tmp / d, ignore=skip)
    for f in RUNNER_FILES:
        p = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{f}"], capture_output=True)
        if p.returncode == 0: (tmp / f).write_bytes(p.stdout)
        else: (tmp / f).unlink(missing_ok=True)
    return tmp


def measure(name: str, extra_env: dict, code: Path | None = None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-run-{name}-"))
    env = {**os.environ, **extra_env, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp / "w.duckdb"), "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp / "reports"),
           "TRAKT_NB_REPLAY_RATE_LIMIT_CALLS": "1000000"}
    if code: env["PYTHONPATH"] = os.pathsep.join([str(code)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    p = subprocess.run([str(Path(sys.executable).parent / "trakt-nb"), "run", "--date", DAY], env=env, capture_output=True, text=True, cwd=ROOT)
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
    out = {"world": name, "command_wall": wall, "run": run["duration_s"], "steps": steps, "render_and_index": render,
           "comments": _comments(tmp / "w.duckdb"), "load": load}
    out["work"] = sum(s["work"] for s in steps)
    out["overhead"] = sum(s["overhead"] for s in steps) + render
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _comments(path: Path) -> int:
    import duckdb
    con = duckdb.connect(str(path), read_only=True)
    try: return con.execute("SELECT count(*) FROM silver.stg_trakt__comment_event").fetchone()[0]
    finally: con.close()


def table(r: dict) -> str:
    lines = [f"{'step':<16}{'wall s':>9}{'library s':>11}{'overhead s':>12}{'overhead %':>12}"]
    for s in r["steps"]:
        lines.append(f"{s['step']:<16}{s['wall']:>9.1f}{s['work']:>11.1f}{s['overhead']:>12.1f}{s['overhead'] / s['wall']:>12.0%}")
    lines.append(f"{'render+index':<16}{r['render_and_index']:>9.1f}{0:>11.1f}{r['render_and_index']:>12.1f}")
    lines.append(f"{'total':<16}{r['run']:>9.1f}{r['work']:>11.1f}{r['overhead']:>12.1f}{r['overhead'] / r['run']:>12.0%}   (target: overhead <= 20%)")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=list(WORLDS))
    ap.add_argument("--baseline", metavar="REF", help="also run the runner as of this git revision, alternating with the current one")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each variant per world (the median run is shown)")
    args = ap.parse_args(argv)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"python {sys.version.split()[0]} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f} at start · HEAD {head}")
    base = baseline_tree(args.baseline) if args.baseline else None
    variants = ([(f"baseline {args.baseline}", base)] if base else []) + [("current", None)]
    try:
        for name, env in WORLDS.items():
            if args.only and name != args.only: continue
            runs = {v: [] for v, _ in variants}
            for _ in range(args.repeat):
                for v, code in variants: runs[v].append(measure(name, env, code))
            summary = []
            for v, _ in variants:
                rs = sorted(runs[v], key=lambda r: r["run"])
                r = rs[len(rs) // 2]
                all_runs = ", ".join(format(x["run"], ".1f") for x in runs[v])
                print(f"\nworld {name}, {v}: {r['comments']:,} comments in silver; `trakt-nb run` {r['command_wall']:.1f} s (run {r['run']:.1f} s)"
                      f"; load {r['load']:.2f} when it started" + (f"; median of {len(rs)} runs ({all_runs} s)" if len(rs) > 1 else ""))
                print(table(r))
                summary.append((v, r, rs))
            if len(summary) > 1:
                print(f"\nworld {name}, side by side (median runs)")
                print(f"{'variant':<22}{'run s':>8}{'library s':>11}{'overhead s':>12}{'overhead %':>12}")
                for v, r, rs in summary:
                    print(f"{v:<22}{r['run']:>8.1f}{r['work']:>11.1f}{r['overhead']:>12.1f}{r['overhead'] / r['run']:>12.0%}")
    finally:
        if base: shutil.rmtree(base, ignore_errors=True)
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()

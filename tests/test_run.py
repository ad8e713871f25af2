"""The daily run end to end: papermill steps, pages, index, latest, failures, backfills — and no secret anywhere."""
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trakt_nb.land.bronze import connect
from trakt_nb.config import UserError, load_settings
from trakt_nb.land.ingest import ingest
from trakt_nb.model.build import build_model
from trakt_nb.ops.run import StepFailed, backfill, run_day
from trakt_nb.ops.steps import STEPS

ROOT = Path(__file__).resolve().parents[1]
MARKER = "marker-secret-5c1e7a90"
DAY = dt.date(2026, 7, 10)
SMALL = {"TRAKT_NB_REPLAY_SEED": "5", "TRAKT_NB_REPLAY_MOVIES": "4", "TRAKT_NB_REPLAY_SHOWS": "3", "TRAKT_NB_REPLAY_USERS": "300",
         "TRAKT_NB_REPLAY_COMMENTS_PER_TITLE": "300", "TRAKT_NB_TITLES_TRENDING_TOP_N": "3"}


def small_settings(tmp: Path, monkeypatch, **env):
    "Settings of a small replay world in `tmp`, also exported so the notebooks' kernels see them."
    for k, v in {**SMALL, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp / "w.duckdb"), "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp / "reports"),
                 "TRAKT_NB_STORAGE_STATE_DIR": str(tmp / "state"),
                 "TRAKT_CLIENT_ID": MARKER, **env}.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def remote_refs(text: str) -> list[str]:
    "URLs a browser would fetch: src/href attributes and CSS url() pointing off the machine."
    return re.findall(r'(?:src|href)\s*=\s*["\'](?:https?:)?//[^"\']+', text) + re.findall(r'url\(\s*["\']?(?:https?:)?//', text)


def secret_hits(s, root: Path) -> list[str]:
    "Every file under `root` and every text column of the warehouse that contains the marker."
    hits = [str(p) for p in root.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]
    con = connect(s, read_only=True)
    try:
        cols = con.execute("""SELECT table_schema, table_name, column_name FROM information_schema.columns
                              WHERE data_type IN ('VARCHAR', 'JSON') AND table_schema NOT IN ('information_schema', 'pg_catalog')""").fetchall()
        for sch, tab, col in cols:
            n = con.execute(f'SELECT count(*) FROM "{sch}"."{tab}" WHERE CAST("{col}" AS VARCHAR) LIKE ?', [f"%{MARKER}%"]).fetchone()[0]
            if n: hits.append(f"{sch}.{tab}.{col}")
    finally:
        con.close()
    return hits


@pytest.mark.slow
def test_run_day_end_to_end(clean_run, tmp_path, monkeypatch):
    "One day's run (conftest's `clean_run`: `run_day` of DAY into a fresh warehouse, the marker key in the environment), then the same date again."
    s, root = clean_run, clean_run.storage.warehouse.parent
    out = s.storage.reports_dir / DAY.isoformat()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "succeeded" and [st["name"] for st in run["steps"]] == ["10_ingest", "20_model", "quality", "30_quadrants", "31_half_life"]
    assert run["completeness"]["min"] == 1.0 and run["completeness"]["titles"] == 6
    for step in STEPS:
        assert (out / f"{step}.ipynb").exists() and (out / f"{step}.html").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["run_date"] == DAY.isoformat()
    assert (out / "health.html").exists() and "health.html" in (s.storage.reports_dir / "index.html").read_text()
    prom = (s.storage.state_dir / "metrics" / "trakt_nb.prom").read_text()
    assert "trakt_nb_run_success 1.0" in prom
    assert list((s.storage.state_dir / "lineage").glob("*.ndjson"))
    assert run["fresh"] is False  # D is months past: its 09:00 Chicago deadline on D+1 has gone
    index = (s.storage.reports_dir / "index.html").read_text()
    assert f'{DAY.isoformat()}/30_quadrants.html' in index
    assert sorted(p.name for p in (s.storage.reports_dir / "latest").iterdir()) == sorted(p.name for p in out.iterdir())
    for html in s.storage.reports_dir.rglob("*.html"):
        assert remote_refs(html.read_text()) == [], html
    # the executed notebooks carry the parameters, never the key
    for nb in out.glob("*.ipynb"):
        params = json.loads(nb.read_text())["metadata"]["papermill"]["parameters"]
        assert MARKER not in json.dumps(params) and params["run_date"] == DAY.isoformat()
    assert secret_hits(s, root) == []
    # same date again, in a copy: ingest makes no call, gold is unchanged
    shutil.copytree(root, tmp_path / "again", symlinks=True)
    s = small_settings(tmp_path / "again", monkeypatch)
    con = connect(s, read_only=True); before = con.sql("SELECT * FROM gold.mart_title_quadrant ORDER BY ALL").df(); con.close()
    run_day(s, DAY, steps=("10_ingest", "20_model"), echo=lambda m: None)
    con = connect(s, read_only=True); after = con.sql("SELECT * FROM gold.mart_title_quadrant ORDER BY ALL").df(); con.close()
    assert before.equals(after)
    assert "already done" in (s.storage.reports_dir / DAY.isoformat() / "10_ingest.html").read_text()


def _model_step_doing(tmp_path, monkeypatch, code: str):
    "The runner's pipeline folder replaced by one holding a 20_model notebook whose one cell after the parameters is `code`."
    import nbformat
    import trakt_nb.ops.steps as steps
    pipe = tmp_path / "pipeline"; pipe.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('run_date = ""\nsettings_path = ""\nwarehouse = ""', metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(code)],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nbformat.write(nb, str(pipe / "20_model.ipynb"))
    monkeypatch.setattr(steps, "PIPELINE_DIR", pipe)


def test_failed_step_names_the_notebook_and_cell(tmp_path, monkeypatch):
    "A step that breaks stops the run with the notebook and cell named, and leaves the executed notebook to read."
    _model_step_doing(tmp_path, monkeypatch, "raise RuntimeError('the model broke')")
    s = small_settings(tmp_path, monkeypatch)
    with pytest.raises(StepFailed) as e:
        run_day(s, DAY, steps=("20_model",))
    msg = str(e.value)
    # cell 3 of the executed notebook it points to (papermill adds the injected-parameters cell)
    assert msg.startswith("step 20_model failed in cell 3 (RuntimeError: the model broke)") and "run the same command again" in msg
    run = json.loads((s.storage.reports_dir / DAY.isoformat() / "run.json").read_text())
    assert run["status"] == "failed" and [st["status"] for st in run["steps"]] == ["failed"]
    assert (s.storage.reports_dir / DAY.isoformat() / "20_model.ipynb").exists()
    assert not (s.storage.reports_dir / "latest").exists()  # a failed run is not "latest"
    assert kernel_children() == []


def test_unknown_title_is_bad_input_and_writes_nothing(tmp_path, monkeypatch):
    s = small_settings(tmp_path, monkeypatch, TRAKT_NB_TITLES_MOVIES="no-such-movie-4242")
    with pytest.raises(UserError, match="no-such-movie-4242"):
        run_day(s, DAY, steps=("10_ingest", "20_model"))
    assert not s.storage.reports_dir.exists() and not s.storage.warehouse.exists()
    assert not list(tmp_path.glob("**/*.lock"))


def test_cli_run_bad_input_exits_2_with_one_sentence(tmp_path):
    env = {**SMALL, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp_path / "w.duckdb"), "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp_path / "r"),
           "TRAKT_NB_TITLES_MOVIES": "no-such-movie-4242", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(Path(sys.executable).parent / "trakt-nb"), "run", "--date", DAY.isoformat()], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = [l for l in p.stderr.splitlines() if l.startswith("trakt-nb:")]
    assert p.returncode == 2 and len(lines) == 1 and "no-such-movie-4242" in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "w.duckdb").exists()


@pytest.mark.slow
def test_backfill_runs_each_day_once_and_resumes(tmp_path, monkeypatch):
    s = small_settings(tmp_path, monkeypatch)
    days = [DAY, DAY + dt.timedelta(days=1)]
    lines = []
    runs = backfill(s, days[0], days[1], echo=lines.append)
    assert [r.run_date for r in runs] == [d.isoformat() for d in days]
    assert any("backfill 1/2" in l for l in lines) and any("[4/4] 31_half_life" in l for l in lines)
    mtimes = [(s.storage.reports_dir / d.isoformat() / "run.json").stat().st_mtime for d in days]
    lines.clear()
    assert backfill(s, days[0], days[1], echo=lines.append) == []
    assert lines == [f"backfill 1/2 {days[0]}: already done", f"backfill 2/2 {days[1]}: already done"]
    assert mtimes == [(s.storage.reports_dir / d.isoformat() / "run.json").stat().st_mtime for d in days]
    # the same days run one by one, into another warehouse, end with the same silver and gold (the two steps that
    # write them: the report steps only read)
    daily = small_settings(tmp_path / "daily", monkeypatch)
    for d in days:  # what the two steps' notebooks call, in this process
        ingest(daily, d, in_process=True, progress=False)
        build_model(daily, d)
    assert tables_content(s) == tables_content(daily)


def kernel_children() -> list[int]:
    "Kernel processes this process started that are still alive."
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError: continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"ipykernel" in (stat.parent / "cmdline").read_bytes(): pids.append(int(stat.parent.name))
    return pids


def test_killed_kernel_is_a_failed_step(tmp_path, monkeypatch):
    "A step whose kernel dies (killed from outside, say by the OOM killer) fails the run in one sentence naming the step; no kernel is left."
    _model_step_doing(tmp_path, monkeypatch, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    s = small_settings(tmp_path, monkeypatch)
    t = time.monotonic()
    with pytest.raises(StepFailed, match=r"^step 20_model failed: its kernel died \(killed; out of memory\?\); see .*20_model\.ipynb"):
        run_day(s, DAY, steps=("20_model",))
    assert time.monotonic() - t < 60
    run = json.loads((s.storage.reports_dir / DAY.isoformat() / "run.json").read_text())
    assert run["status"] == "failed" and run["steps"][0]["error"].startswith("step 20_model failed: its kernel died")
    assert kernel_children() == []


def tables_content(s) -> dict:
    "Every silver and gold table's rows (fetch times and load bookkeeping left out), sorted."
    con = connect(s, read_only=True)
    try:
        out = {}
        for sch, tab in con.execute("""SELECT table_schema, table_name FROM information_schema.tables
                                       WHERE table_schema IN ('silver', 'gold') AND table_name != 'load_state' ORDER BY ALL""").fetchall():
            cols = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                                              [sch, tab]).fetchall() if c not in ("fetched_at", "first_seen_at", "last_seen_at")]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[f"{sch}.{tab}"] = con.execute(f'SELECT {sel} FROM "{sch}"."{tab}" ORDER BY ALL').fetchall()
        return out
    finally:
        con.close()


def test_data_test_error_fails_the_run_after_the_reports(tmp_path, monkeypatch):
    "An error-level data test fails the run, but only once every report page has been written."
    import trakt_nb.model.quality as quality
    bad = quality.TestResult("volume_anomaly:silver.stg_trakt__comment_event", "silver.stg_trakt__comment_event", "volume_anomaly",
                             "error", "fail", "-4.8", "3.0", "new comments 51 vs 117.5 expected (z = -4.8)")
    monkeypatch.setattr(quality, "check_day", lambda s, day, run_id=None: [bad])
    s = small_settings(tmp_path, monkeypatch)
    with pytest.raises(StepFailed, match=r"data tests failed: volume_anomaly.*health\.html"):
        run_day(s, DAY)
    out = s.storage.reports_dir / DAY.isoformat()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and [st["name"] for st in run["steps"]][-2:] == ["30_quadrants", "31_half_life"]
    assert all((out / f"{n}.html").exists() for n in STEPS) and (out / "health.html").exists()
    assert not (s.storage.reports_dir / "latest").exists()

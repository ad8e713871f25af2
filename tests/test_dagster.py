"""The pipeline under Dagster: one partition materialised in-process leaves the warehouse `trakt-nb run` leaves; a failing
data test fails its asset check; a killed ingest resumes; backfills skip done days; the webserver lists the assets."""
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

dg = pytest.importorskip("dagster", reason="the dagster extra is not installed (pip install -e '.[dagster]'; `make test` installs it)")

from trakt_nb.land.bronze import connect
from trakt_nb.land.ledger import end_of_day

from test_ingest import replay_app, state
from test_run import DAY, MARKER, secret_hits, small_settings

pytestmark = pytest.mark.dagster

BIN = Path(sys.executable).parent
KEYS = {"bronze_pages", "silver", "gold", "metric_views", "breadth_vs_intensity", "half_life_and_hold_up", "day_run"}
# what differs between two runs of the same day by design: ids and times of the run, load bookkeeping, run summaries (durations)
VOLATILE = {"run_id", "load_id", "last_load_id", "silver_load_id", "fetched_at", "first_seen_at", "last_seen_at", "started_at", "finished_at",
            "updated_at", "silver_updated_at", "checked_at", "summary"}


def warehouse_tables(s) -> dict:
    "Every table's rows in every schema, run ids, run times and load bookkeeping left out, sorted; and the views' definitions."
    con = connect(s, read_only=True)
    try:
        out = {}
        for sch, tab in con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall():
            cols = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [sch, tab]).fetchall()
                    if c not in VOLATILE]
            rows = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{sch}"."{tab}" ORDER BY ALL').fetchall()
            if (sch, tab) == ("quality", "test_results") or tab == "load_state":  # a freshness test observes the newest fetch time; a gold state names when its silver was written, and its load
                rows = [tuple(re.sub(r'("trakt_nb\.silver_load_id": )"\d+"', r"\1<load>", re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[^\s\"]*", "<time>", v))
                              if isinstance(v, str) else v for v in r) for r in rows]
            out[f"{sch}.{tab}"] = rows
        out["views"] = con.execute("SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def materialize_day(defs_assets, day=DAY, **kw):
    "Materialise `defs_assets` for `day` in-process on a fresh ephemeral instance."
    return dg.materialize(defs_assets, partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, **kw)


def all_defs():
    from trakt_nb.ops import dagster as tdg
    return [tdg.bronze_pages, tdg.model, *tdg.REPORT_DEFS, tdg.day_run, tdg.data_tests_check()]


@pytest.fixture(scope="module")
def both(tmp_path_factory, clean_run):
    "The same day run by `trakt-nb run` (the runner's Python entry: conftest's `clean_run`) and materialised under Dagster into a folder of its own."
    tmp = tmp_path_factory.mktemp("dagster")
    runner = clean_run
    res = json.loads((runner.storage.reports_dir / DAY.isoformat() / "run.json").read_text())
    with pytest.MonkeyPatch.context() as mp:
        dag = small_settings(tmp / "dagster", mp)
        t0 = time.monotonic(); result = materialize_day(all_defs()); t_dagster = time.monotonic() - t0
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.all_events if e.is_step_success}
    runner_steps = ", ".join("%s %.1fs" % (st["name"], st["duration_s"]) for st in res["steps"])
    print(f"\none partition: Dagster materialisation {t_dagster:.1f}s; the runner's run {res['duration_s']:.1f}s (its run.json, another moment)\n"
          f"  runner steps: {runner_steps}\n"
          f"  Dagster steps: {', '.join(f'{k} {v:.1f}s' for k, v in steps.items())}")
    return runner, dag, result, tmp


@pytest.mark.slow
def test_materialised_partition_equals_the_runners_warehouse(both):
    runner, dag, result, tmp = both
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == KEYS
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    con = connect(runner, read_only=True)
    pages = con.execute("SELECT count(*) FROM bronze.trakt_pages WHERE run_date = $1", [DAY]).fetchone()[0]
    quadrant = con.execute("SELECT count(*) FROM gold.mart_title_quadrant WHERE as_of_date = $1", [DAY]).fetchone()[0]
    con.close()
    assert meta["bronze_pages"]["pages"].value == pages > 0 and meta["bronze_pages"]["api_calls"].value > 0
    assert meta["bronze_pages"]["quarantined"].value == 0 and meta["bronze_pages"]["completeness_min"].value == 1.0
    assert meta["gold"]["rows_by_table"].value["mart_title_quadrant"] == quadrant > 0
    assert meta["metric_views"]["views"].value > 10
    assert meta["day_run"]["status"].value == "succeeded" and meta["day_run"]["completeness_min"].value == 1.0
    assert Path(meta["breadth_vs_intensity"]["notebook"].value).exists() and Path(meta["breadth_vs_intensity"]["report"].value).exists()
    # every data test is a check, and on this day each passes
    checks = result.get_asset_check_evaluations()
    assert len([c for c in checks if c.check_name != "done_by_deadline"]) == len(__import__("trakt_nb.model.quality", fromlist=["x"]).load_tests())
    assert all(c.passed for c in checks if c.check_name != "done_by_deadline")
    # the warehouses are equal table for table
    a, b = warehouse_tables(runner), warehouse_tables(dag)
    assert a.keys() == b.keys()
    for name in a: assert a[name] == b[name], name
    # the day's record: the same steps, pages and run.json as the runner's
    ra = json.loads((runner.storage.reports_dir / DAY.isoformat() / "run.json").read_text())
    rb = json.loads((dag.storage.reports_dir / DAY.isoformat() / "run.json").read_text())
    assert [st["name"] for st in ra["steps"]] == [st["name"] for st in rb["steps"]] and rb["status"] == "succeeded"
    assert ra["completeness"] == rb["completeness"]
    assert sorted(p.name for p in (runner.storage.reports_dir / DAY.isoformat()).iterdir()) == \
        sorted(p.name for p in (dag.storage.reports_dir / DAY.isoformat()).iterdir())
    # no secret in the event log, in the files or in the warehouse
    events = [str(e) for e in result.all_events]
    assert events and not any(MARKER in e for e in events)
    assert secret_hits(dag, tmp / "dagster") == []


@pytest.mark.slow
def test_failing_data_test_fails_its_check_with_the_message(both, monkeypatch, tmp_path):
    "An error-level data test that fails on the day's gold fails its check with ERROR severity and the test's message."
    import trakt_nb.model.quality as quality
    from trakt_nb.ops import dagster as tdg
    runner, dag, _, tmp = both
    small_settings(tmp / "dagster", monkeypatch)
    yml = tmp_path / "tests.yml"
    yml.write_text(Path(quality.TESTS_PATH).read_text().replace(
        "  gold.mart_title_quadrant:\n    as_of_column: as_of_date\n    tests:\n",
        "  gold.mart_title_quadrant:\n    as_of_column: as_of_date\n    tests:\n      - {name: breadth_at_most_one, kind: range, column: breadth, max: 1}\n"))
    monkeypatch.setattr(quality, "TESTS_PATH", yml)
    checks = tdg.data_tests_check()
    result = materialize_day([tdg.model, checks])  # the model step runs the data tests; the checks of its assets report them
    ev = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert len(ev) == len([t for t in quality.load_tests() if not t.table.startswith("bronze.")])
    bad = ev["breadth_at_most_one"]
    con = connect(dag, read_only=True)
    message = con.execute("SELECT message FROM quality.test_results WHERE test = 'breadth_at_most_one' AND as_of_date = $1", [DAY]).fetchone()[0]
    con.close()
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.ERROR and bad.asset_key.to_user_string() == "gold"
    assert bad.description == message and message.startswith("gold.mart_title_quadrant breadth_at_most_one: ") and "out of range" in message
    assert all(c.passed for n, c in ev.items() if n != "breadth_at_most_one")  # the other tests still pass


def test_backfill_skips_done_days(tmp_path, monkeypatch):
    "In a backfill a day whose recorded run succeeded is skipped (as `trakt-nb backfill` skips it): nothing runs, nothing is written."
    s = small_settings(tmp_path, monkeypatch)
    run_json = s.storage.reports_dir / DAY.isoformat() / "run.json"
    run_json.parent.mkdir(parents=True)
    run_json.write_text(json.dumps({"run_date": DAY.isoformat(), "status": "succeeded"}))
    result = materialize_day(all_defs(), tags={"dagster/backfill": "test"})
    assert result.success and result.get_asset_materialization_events() == []
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert {"model", "breadth_vs_intensity", "half_life_and_hold_up", "day_run"} <= skipped
    assert not s.storage.warehouse.exists() and sorted(p.name for p in run_json.parent.iterdir()) == ["run.json"]


def test_live_source_rule_for_past_days(tmp_path, monkeypatch):
    "A past day of live Trakt that bronze does not hold is refused with the CLI's sentence, before anything is written."
    from trakt_nb.ops import dagster as tdg
    small_settings(tmp_path, monkeypatch, TRAKT_NB_RUN_SOURCE="trakt")
    result = materialize_day([tdg.bronze_pages])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "has no time travel" in failure.event_specific_data.error.message
    assert not (tmp_path / "w.duckdb").exists()


def _descendants(pid: int) -> list[int]:
    "Every live process under `pid` (the papermill kernel runs in a session of its own, so a group kill misses it)."
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []): out.append(c); todo.append(c)
    return out


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    "Wait until each process has exited (gone, or a zombie no one has reaped yet: either way its files are closed)."
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try: state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError): break
            if state in ("Z", "X"): break
            time.sleep(0.02)
        else: raise AssertionError(f"process {pid} still runs {timeout:.0f} s after SIGKILL")


def _ingest_process(env: dict) -> subprocess.Popen:
    code = ("import dagster as dg; from trakt_nb.ops.dagster import bronze_pages; "
            f"r = dg.materialize([bronze_pages], partition_key='{DAY}', instance=dg.DagsterInstance.ephemeral()); raise SystemExit(0 if r.success else 1)")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _requests(url: str) -> int | None:
    "Requests the replay has answered, or None when it is too busy to say (a loaded machine): ask again."
    try: return state(url)["requests"]
    except httpx.HTTPError: return None


def _pages(s) -> tuple[set, int]:
    con = connect(s, read_only=True)
    try:
        got = set(con.execute("""SELECT resource_kind, title_kind, title_id_trakt, parent_comment_id, page, payload_sha256 FROM bronze.trakt_pages
                                 WHERE resource_kind IN ('comments', 'replies', 'ratings')""").fetchall())
        twice = con.execute("SELECT count(*) FROM (SELECT unit_key FROM bronze.trakt_pages WHERE unit_key IS NOT NULL GROUP BY run_date, unit_key HAVING count(*) > 1)").fetchone()[0]
        return got, twice
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.server
def test_killed_ingest_materialisation_resumes(tmp_path, monkeypatch, serve):
    "The ingest asset killed (SIGKILL, kernel and all) mid-crawl, then materialised again, holds the pages of an uninterrupted run, none twice."
    s = small_settings(tmp_path / "killed", monkeypatch)
    srv = serve(replay_app(s, end_of_day(DAY), faults="slow:1.0@0.04"))
    extra = {"TRAKT_NB_REPLAY_URL": srv.url, "TRAKT_NB_STORAGE_WRITE_BATCH_PAGES": "20", "TRAKT_NB_CLIENT_CONCURRENCY": "2",
             "TRAKT_NB_CLIENT_COMMENTS_LIMIT": "10", "TRAKT_NB_CLIENT_BACKOFF_BASE_S": "0.01"}
    s = small_settings(tmp_path / "killed", monkeypatch, **extra)
    monkeypatch.delenv("TRAKT_CLIENT_ID")  # the replay served here knows its own key only
    start = httpx.get(srv.url + "/_replay/state", timeout=60).json()["requests"]
    p = _ingest_process(dict(os.environ))
    deadline = time.monotonic() + 120
    while (_requests(srv.url) or start) - start < 80 and p.poll() is None and time.monotonic() < deadline: time.sleep(0.05)
    assert p.poll() is None, f"finished before the kill: {p.communicate()}"
    killed = [p.pid, *_descendants(p.pid)]
    for pid in killed:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait()
    _wait_gone(killed[1:])  # the kernel lets go of the warehouse when it has exited, which may be a moment after the kill
    kept, _ = _pages(s)
    # the resumed and the uninterrupted crawls need no slow answers: the same world as of the same time, served at full speed
    extra["TRAKT_NB_REPLAY_URL"] = serve(replay_app(s, end_of_day(DAY))).url
    monkeypatch.setenv("TRAKT_NB_REPLAY_URL", extra["TRAKT_NB_REPLAY_URL"])
    p = _ingest_process(dict(os.environ)); out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]
    clean = small_settings(tmp_path / "clean", monkeypatch, **extra)
    monkeypatch.delenv("TRAKT_CLIENT_ID")
    p = _ingest_process(dict(os.environ)); out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]
    (got, twice), (want, _) = _pages(s), _pages(clean)
    print(f"{len(kept)} pages kept by the killed materialisation; {len(got)} after it resumed vs {len(want)} uninterrupted")
    assert 0 < len(kept) < len(want) and got == want and twice == 0


def _free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


@pytest.mark.server
@pytest.mark.slow
def test_webserver_lists_the_assets(tmp_path):
    "dagster-webserver on 127.0.0.1 loads the definitions; its GraphQL endpoint lists every asset and the data tests' checks."
    port, home = _free_port(), tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    p = subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "trakt_nb.ops.dagster"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, keys = time.monotonic() + 180, None
        while time.monotonic() < deadline and p.poll() is None:
            try:
                r = httpx.post(url + "/graphql", json={"query": "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"}, timeout=10)
                nodes = r.json()["data"]["assetNodes"]
                if nodes: keys = {"/".join(n["assetKey"]["path"]): n for n in nodes}; break
            except (httpx.HTTPError, KeyError, TypeError, ValueError): pass
            time.sleep(1)
        assert keys is not None, p.stderr.read().decode()[-3000:] if p.poll() is not None else "no answer in 180 s"
        assert set(keys) == KEYS
        gold_checks = {c["name"] for c in keys["gold"]["assetChecksOrError"]["checks"]}
        assert "gold_fresh" in gold_checks and {c["name"] for c in keys["day_run"]["assetChecksOrError"]["checks"]} == {"done_by_deadline"}
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()


def test_definitions_validate(tmp_path):
    "`dagster definitions validate -m trakt_nb.ops.dagster` (what CI checks) passes."
    r = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "trakt_nb.ops.dagster"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "DAGSTER_HOME": str(tmp_path)})
    assert r.returncode == 0 and "Validation successful" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


def test_freshness_sensor_flags_a_day_not_done_by_its_deadline_once(tmp_path, monkeypatch):
    "A day past its deadline without a succeeded run is flagged as a failed done_by_deadline check (ERROR), once; a done day never."
    from trakt_nb.ops import dagster as tdg
    from trakt_nb.ops.slo import freshness_deadline
    s = small_settings(tmp_path, monkeypatch)
    today = dt.datetime.now(dt.timezone.utc).date()
    failed, done = today - dt.timedelta(days=5), today - dt.timedelta(days=4)
    for d, status in ((failed, "failed"), (done, "succeeded")):
        (s.storage.reports_dir / d.isoformat()).mkdir(parents=True)
        (s.storage.reports_dir / d.isoformat() / "run.json").write_text(json.dumps({"run_date": d.isoformat(), "status": status}))
    res = tdg.freshness_sensor(dg.build_sensor_context(cursor=None))
    flagged = {e.metadata["day"].value: e for e in res.asset_events}
    assert failed.isoformat() in flagged and done.isoformat() not in flagged
    assert str(today) not in flagged  # today's deadline is tomorrow
    e = flagged[failed.isoformat()]
    assert (e.check_name, e.passed, e.severity, e.asset_key.to_user_string()) == ("done_by_deadline", False, dg.AssetCheckSeverity.ERROR, "day_run")
    assert f"{freshness_deadline(s, failed):%Y-%m-%d %H:%M}" in e.description
    again = tdg.freshness_sensor(dg.build_sensor_context(cursor=res.cursor))
    assert isinstance(again, dg.SkipReason)  # flagged once

"""Observability over a real small warehouse: the manifest equals the warehouse, the Prometheus textfile equals the manifest,
the OpenLineage events read back into the client's spec classes and link bronze → silver → gold → reports, the health body
is escaped and fetches nothing, and the Grafana dashboard only asks for metrics the textfile defines."""
import datetime as dt
import html
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trakt_nb.land.bronze import connect
from trakt_nb.config import load_settings
from trakt_nb.land.contracts import load_contracts
from trakt_nb.ops.health import health_body
from trakt_nb.ops.lineage import JOBS, emit_lineage, event_from_dict, lineage_events, validate_event
from trakt_nb.ops.observe import build_manifest, quality_rows, write_manifest
from trakt_nb.ops.prometheus import push_prometheus, write_prometheus

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 7, 10)
MARKER = "marker-secret-0b5e2f71"
SMALL = {"TRAKT_NB_REPLAY_SEED": "5", "TRAKT_NB_REPLAY_MOVIES": "4", "TRAKT_NB_REPLAY_SHOWS": "3", "TRAKT_NB_REPLAY_USERS": "300",
         "TRAKT_NB_REPLAY_COMMENTS_PER_TITLE": "300", "TRAKT_NB_TITLES_TRENDING_TOP_N": "3"}
HOSTILE = '<script>alert("x")</script><img src="https://evil.example/x.png">'
STEPS = [("10_ingest", 40.0), ("20_model", 30.0), ("30_quadrants", 20.0), ("31_half_life", 10.0)]
SLO = {"ok": False, "freshness_ratio": 0.9, "completeness_ratio": 1.0, "breaches": ["freshness: 27 of 30 days on time < 99%"]}


def run_dict(failed_step: str | None = None) -> dict:
    "A run.json dict shaped like RunResult.as_dict()."
    steps = []
    for name, d in STEPS:
        bad = name == failed_step
        steps.append({"name": name, "status": "failed" if bad else "succeeded", "duration_s": d,
                      "error": f"step {name} failed in cell 3 (ValueError: {HOSTILE})" if bad else ""})
        if bad: break
    return {"run_date": DAY.isoformat(), "status": "failed" if failed_step else "succeeded", "started_at": "2026-07-11T10:00:00+00:00",
            "finished_at": "2026-07-11T10:01:40+00:00", "duration_s": 100.0, "steps": steps, "fresh": not failed_step,
            "deadline": "2026-07-11T14:00:00+00:00", "completeness": {"min": 1.0, "median": 1.0, "titles": 6}, "version": "0.1.0"}


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    "A small warehouse: one ingest and one model build for DAY, plus a quality run with a failing error and warn test."
    from trakt_nb.land.ingest import ingest
    from trakt_nb.model.build import build_model
    tmp = tmp_path_factory.mktemp("observe")
    env = {**SMALL, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp / "w.duckdb"), "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp / "reports"),
           "TRAKT_NB_STORAGE_STATE_DIR": str(tmp / "state"), "TRAKT_CLIENT_ID": MARKER}
    s = load_settings(env=env)
    ingest(s, DAY, in_process=True, progress=False)
    build_model(s, DAY)
    con = connect(s)
    con.execute("""CREATE SCHEMA IF NOT EXISTS quality; CREATE TABLE quality.test_results (run_id VARCHAR, as_of_date DATE, test VARCHAR,
                   table_name VARCHAR, kind VARCHAR, severity VARCHAR, status VARCHAR, observed VARCHAR, expected VARCHAR, message VARCHAR,
                   checked_at TIMESTAMPTZ)""")
    rows = [("q-old", "unique_comment_id", "silver.stg_trakt__comment_event", "unique", "error", "fail", "3", "0", "old run", "2026-07-11 09:00:00+00"),
            ("q1", "unique_comment_id", "silver.stg_trakt__comment_event", "unique", "error", "pass", "0", "0", "", "2026-07-11 10:01:00+00"),
            ("q1", f"not_null_{HOSTILE}", "gold.mart_title_quadrant", "not_null", "error", "fail", "2", "0", HOSTILE, "2026-07-11 10:01:00+00"),
            ("q1", "volume_comments", "silver.stg_trakt__comment_event", "volume", "warn", "fail", "12", "40..90", "fewer comments than usual", "2026-07-11 10:01:00+00")]
    for r in rows:
        con.execute("INSERT INTO quality.test_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [r[0], DAY, *r[1:]])
    con.close()
    return s


@pytest.fixture(scope="module")
def manifest(wh):
    con = connect(wh, read_only=True)
    try: yield build_manifest(wh, run_dict(), con, slo=SLO)
    finally: con.close()


def sample_values(text: str) -> dict:
    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value for f in text_string_to_metric_families(text) for smp in f.samples}


def test_manifest_equals_the_warehouse(wh, manifest, tmp_path):
    con = connect(wh, read_only=True)
    try:
        summary = json.loads(con.execute("SELECT summary FROM bronze.runs WHERE run_date = ? ORDER BY started_at DESC LIMIT 1", [DAY]).fetchone()[0])
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('bronze','silver','gold','metrics','quality')").fetchall()
        counts = {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0] for s, t in tables}
        views = {f"{s}.{v}" for s, v in con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'metrics'").fetchall()}
        dim_cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema='silver' AND table_name='dim_title' ORDER BY ordinal_position").fetchall()]
    finally:
        con.close()
    ing = manifest["ingest"]
    assert ing["calls"] == summary["calls"] > 0 and ing["pages"] == summary["pages"] > 0
    assert (ing["rate_limited"], ing["retries"], ing["quarantined"]) == (summary["rate_limited"], summary["retries"], summary["quarantined"])
    assert manifest["completeness"]["titles"] == summary["completeness"] and len(summary["completeness"]) == 6
    assert manifest["completeness"]["min"] == min(summary["completeness"].values())
    assert {t: d["rows"] for t, d in manifest["tables"].items() if d["kind"] == "table"} == counts
    assert counts["silver.stg_trakt__comment_event"] > 0 and counts["gold.mart_title_quadrant"] == 6
    assert {t for t, d in manifest["tables"].items() if d["kind"] == "view"} == views and views
    assert [c for c, _ in manifest["tables"]["silver.dim_title"]["columns"]] == dim_cols
    assert manifest["tables"]["gold.mart_title_quadrant"]["rows_run_date"] == 6
    c = load_contracts()
    assert manifest["versions"]["schemas"] == {r: c.version(r) for r in c} and manifest["versions"]["code"] == "0.1.0"
    # quality: only the latest quality run of the date counts
    q = manifest["quality"]
    assert (q["tests"], q["passed"], q["failed"]) == (3, 1, {"error": 1, "warn": 1})
    # steps run back to back from the start; freshness lag is finished minus the end of the day in Chicago (05:00 UTC in July)
    assert [(st["name"], st["started_at"], st["finished_at"]) for st in manifest["steps"]][2] == (
        "30_quadrants", "2026-07-11T10:01:10+00:00", "2026-07-11T10:01:30+00:00")
    assert manifest["freshness"]["lag_s"] == 5 * 3600 + 100
    assert manifest["slo"]["slos"]["freshness"] == {"ratio": 0.9, "target": 0.99, "ok": False} and manifest["slo"]["ok"] is False
    p = write_manifest(manifest, tmp_path / "reports" / DAY.isoformat() / "manifest.json")
    assert json.loads(p.read_text()) == json.loads(json.dumps(manifest, default=str))
    assert MARKER not in p.read_text() and str(wh.storage.warehouse) not in p.read_text()


def test_manifest_without_quality_or_slo(wh, tmp_path):
    con = connect(wh, read_only=True)
    try:
        m = build_manifest(wh, run_dict(), con)
        assert quality_rows(con, "2026-01-01") == []
    finally:
        con.close()
    assert m["slo"] is None
    import duckdb
    mem = duckdb.connect(":memory:")  # an empty warehouse: no bronze, no quality
    e = build_manifest(wh, run_dict(), mem)
    assert e["ingest"] == {} and e["quality"]["available"] is False and e["tables"] == {}
    assert "trakt_nb_api_calls_total 0.0" in write_prometheus(e, tmp_path).read_text()


def test_textfile_parses_and_equals_the_manifest(manifest, tmp_path):
    p = write_prometheus(manifest, tmp_path / "textfile")
    assert p == tmp_path / "textfile" and p.read_text().endswith("\n")
    v = sample_values(p.read_text())
    ing = manifest["ingest"]
    assert v[("trakt_nb_api_calls_total", ())] == ing["calls"]
    assert v[("trakt_nb_api_pages_total", ())] == ing["pages"]
    assert v[("trakt_nb_rate_limited_total", ())] == ing["rate_limited"]
    assert v[("trakt_nb_retries_total", ())] == ing["retries"]
    assert v[("trakt_nb_quarantined_total", ())] == manifest["quarantined_payloads"]
    assert v[("trakt_nb_run_duration_seconds", ())] == 100.0
    assert v[("trakt_nb_run_success", ())] == 1.0
    assert v[("trakt_nb_freshness_lag_seconds", ())] == manifest["freshness"]["lag_s"]
    assert v[("trakt_nb_run_finished_timestamp_seconds", ())] == dt.datetime(2026, 7, 11, 10, 1, 40, tzinfo=dt.timezone.utc).timestamp()
    assert {k[1][0][1]: val for k, val in v.items() if k[0] == "trakt_nb_page_completeness"} == manifest["completeness"]["titles"]
    assert {k[1][0][1]: val for k, val in v.items() if k[0] == "trakt_nb_rows"} == {t: d["rows"] for t, d in manifest["tables"].items() if d["rows"] is not None}
    assert v[("trakt_nb_quality_failures", (("severity", "error"),))] == 1 and v[("trakt_nb_quality_failures", (("severity", "warn"),))] == 1
    assert v[("trakt_nb_quality_tests", ())] == 3
    assert v[("trakt_nb_slo_ok", (("slo", "freshness"),))] == 0 and v[("trakt_nb_slo_ok", (("slo", "completeness"),))] == 1
    assert v[("trakt_nb_slo_ok", (("slo", "all"),))] == 0 and v[("trakt_nb_slo_ratio", (("slo", "freshness"),))] == 0.9
    assert {k[1][0][1] for k in v if k[0] == "trakt_nb_step_success"} == {n for n, _ in STEPS}
    # each gauge reads its own field (in this world calls == pages and there are no 429s, so make them differ)
    odd = {**manifest, "ingest": {**manifest["ingest"], "calls": 101, "pages": 77, "rate_limited": 5, "retries": 7}, "quarantined_payloads": 3}
    w = sample_values(write_prometheus(odd, tmp_path / "odd.prom").read_text())
    assert [w[(n, ())] for n in ("trakt_nb_api_calls_total", "trakt_nb_api_pages_total", "trakt_nb_rate_limited_total",
                                 "trakt_nb_retries_total", "trakt_nb_quarantined_total")] == [101, 77, 5, 7, 3]
    # a failed run says so
    failed = {**manifest, "status": "failed"}
    assert sample_values(write_prometheus(failed, tmp_path / "f.prom").read_text())[("trakt_nb_run_success", ())] == 0.0


class _Recorder(http.server.BaseHTTPRequestHandler):
    "Records each request (method, path, body) on the server and answers 200."
    def _record(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append((self.command, self.path, self.rfile.read(n)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    do_PUT = do_POST = _record
    def log_message(self, *a): pass


@pytest.fixture
def recorder():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield srv
    srv.shutdown(); srv.server_close()


@pytest.mark.server
def test_push_to_a_pushgateway(manifest, recorder):
    push_prometheus(manifest, f"http://127.0.0.1:{recorder.server_port}", timeout=5)
    (method, path, body), = recorder.seen
    assert (method, path) == ("PUT", "/metrics/job/trakt_nb")
    assert sample_values(body.decode())[("trakt_nb_api_calls_total", ())] == manifest["ingest"]["calls"]


def _by_job(events):
    out = {}
    for e in events: out.setdefault(e["job"]["name"], []).append(e)
    return out


def test_lineage_events_follow_the_spec_and_link_bronze_to_reports(wh, manifest):
    run = run_dict()
    events = lineage_events(wh, run, manifest)
    for e in events:
        validate_event(e)  # reads into openlineage-python's spec classes (spec 2-0-2) and serializes back to itself
        assert e["schemaURL"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    jobs = _by_job(events)
    assert list(jobs) == list(JOBS)
    for name, (start, end) in jobs.items():
        assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
        assert start["run"]["runId"] == end["run"]["runId"] and start["eventTime"] <= end["eventTime"]
        parent = end["run"]["facets"]["parent"]["job"]
        assert (parent["namespace"], parent["name"]) == ("trakt-nb", "daily_run")
    assert len({e["run"]["runId"] for e in events}) == len(JOBS)
    # every input of a job was written by an earlier job (ingest reads the API)
    written: set = set()
    for name in JOBS:
        end = jobs[name][1]
        ins = {(d["namespace"], d["name"]) for d in end["inputs"]}
        if name == "ingest": assert {ns for ns, _ in ins} == {"replay://trakt-nb"}
        else: assert ins and ins <= written, (name, ins - written)
        written |= {(d["namespace"], d["name"]) for d in end["outputs"]}
    names = lambda job, side: {d["name"] for d in jobs[job][1][side]}
    assert "bronze.trakt_pages" in names("ingest", "outputs") & names("silver", "inputs")
    assert "silver.stg_trakt__comment_event" in names("silver", "outputs") & names("gold", "inputs")
    assert "silver.dim_title" in names("dims", "outputs") & names("gold", "inputs")
    assert "gold.mart_title_quadrant" in names("gold", "outputs") & names("semantic_views", "inputs")
    assert "metrics.breadth" in names("semantic_views", "outputs") & names("reports", "inputs")
    assert names("reports", "outputs") == {f"reports/{DAY}/30_quadrants.html", f"reports/{DAY}/31_half_life.html"}
    # schema facets from information_schema, row counts from the manifest
    dim = next(d for d in jobs["dims"][1]["outputs"] if d["name"] == "silver.dim_title")
    assert [[f["name"], f["type"]] for f in dim["facets"]["schema"]["fields"]] == manifest["tables"]["silver.dim_title"]["columns"]
    assert dim["outputFacets"]["outputStatistics"]["rowCount"] == 6
    # no secret, no machine path; same run, same events
    text = json.dumps(events)
    assert MARKER not in text and str(wh.storage.warehouse.parent) not in text and "duckdb://trakt-nb/w" in text
    assert lineage_events(wh, run, manifest) == events


def test_off_spec_events_are_refused(wh, manifest):
    e = lineage_events(wh, run_dict(), manifest)[1]
    for path, value in [(("eventType",), "DONE"), (("run", "runId"), "42"), (("eventTime",), "yesterday"),
                        (("job", "colour"), "red"), (("schemaURL",), "https://openlineage.io/spec/9-9-9/OpenLineage.json#/$defs/RunEvent")]:
        bad = json.loads(json.dumps(e))
        node = bad
        for k in path[:-1]: node = node[k]
        node[path[-1]] = value
        with pytest.raises(Exception): validate_event(bad)
    bad = json.loads(json.dumps(e)); bad["run"]["facets"]["parent"]["_schemaURL"] = "https://example.org/other.json"
    with pytest.raises(ValueError): event_from_dict(bad)


def test_a_failed_step_fails_its_jobs_and_stops_the_graph(wh, manifest):
    run = run_dict(failed_step="20_model")
    events = lineage_events(wh, run, {**manifest, "steps": build_manifest.__globals__["manifest_steps"](run)})
    for e in events: validate_event(e)
    jobs = _by_job(events)
    assert list(jobs) == ["ingest", "silver", "dims", "gold", "semantic_views"]
    assert jobs["ingest"][1]["eventType"] == "COMPLETE"
    for j in ("silver", "dims", "gold", "semantic_views"):
        end = jobs[j][1]
        assert end["eventType"] == "FAIL" and "ValueError" in end["run"]["facets"]["errorMessage"]["message"] and end["outputs"] == []


def test_emit_to_a_file_and_over_http(wh, manifest, recorder):
    events = lineage_events(wh, run_dict(), manifest)
    p = emit_lineage(events, wh)
    assert p == wh.storage.state_dir / "lineage" / f"{DAY}.ndjson"
    def sent(e):  # the client adds its version as a run tag; the rest is what we built
        validate_event(e)
        tags = e["run"]["facets"].pop("tags")["tags"]
        assert [t["key"] for t in tags] == ["openlineage_client_version"]
        return e
    assert [sent(json.loads(line)) for line in p.read_text().splitlines()] == events
    emit_lineage(events, wh, url=f"http://127.0.0.1:{recorder.server_port}")
    assert [(m, path) for m, path, _ in recorder.seen] == [("POST", "/api/v1/lineage")] * len(events)
    assert [sent(json.loads(b)) for _, _, b in recorder.seen] == events


def remote_refs(text: str) -> list[str]:
    "URLs a browser would fetch: src/href attributes and CSS url() pointing off the machine."
    return re.findall(r'(?:src|href)\s*=\s*["\'](?:https?:)?//[^"\']+', text) + re.findall(r'url\(\s*["\']?(?:https?:)?//', text)


def test_health_body_is_escaped_and_fetches_nothing(wh, manifest):
    con = connect(wh, read_only=True)
    try: q = quality_rows(con, DAY)
    finally: con.close()
    assert {r["run_id"] for r in q} == {"q1"}
    run = run_dict(failed_step="31_half_life")
    m = {**manifest, "status": "failed", "steps": build_manifest.__globals__["manifest_steps"](run)}
    events = lineage_events(wh, run, m)
    body = health_body(m, q, SLO, events)
    assert "<script" not in body and "<img" not in body and remote_refs(body) == []
    assert html.unescape(body).count('<script>alert("x")</script>') >= 3  # as text, escaped: test name, message, step error
    assert body.count("<rect") == len(JOBS) and "FAIL" in body
    for section in ("tests", "slos", "anomalies", "lineage"): assert f'id="{section}"' in body
    assert "breached" in body and "27 of 30 days" in body and "fewer comments than usual" in body
    assert "unique_comment_id" in body and "old run" not in body
    assert "No service-level status" in health_body({**manifest, "slo": None}, [], None, [])


def test_grafana_dashboard_uses_only_metrics_the_textfile_defines(manifest):
    dash = json.loads((ROOT / "observability" / "grafana" / "trakt-nb-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] and dash["panels"] and isinstance(dash["schemaVersion"], int)
    from trakt_nb.ops.prometheus import prometheus_text
    defined = {smp.name for f in text_string_to_metric_families(prometheus_text(manifest)) for smp in f.samples}
    used = set()
    for p in dash["panels"]:
        assert p["targets"] and {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["datasource"]["type"] == "prometheus"
        for t in p["targets"]:
            names = set(re.findall(r"\btrakt_nb_[a-z0-9_]+", t["expr"]))
            assert names, t["expr"]
            used |= names
    assert used <= defined, used - defined
    assert {"trakt_nb_freshness_lag_seconds", "trakt_nb_page_completeness", "trakt_nb_rows", "trakt_nb_rate_limited_total",
            "trakt_nb_retries_total", "trakt_nb_run_duration_seconds", "trakt_nb_quality_failures", "trakt_nb_slo_ok"} <= used


def test_manifest_takes_the_slo_status_object(wh, tmp_path):
    from trakt_nb.ops.slo import slo_status
    rd = wh.storage.reports_dir / DAY.isoformat()
    rd.mkdir(parents=True, exist_ok=True)
    (rd / "run.json").write_text(json.dumps(run_dict()))
    st = slo_status(wh, DAY + dt.timedelta(days=3))
    con = connect(wh, read_only=True)
    try: m = build_manifest(wh, run_dict(), con, slo=st)
    finally: con.close()
    assert m["slo"]["ok"] == st.ok and m["slo"]["breaches"] == list(st.breaches)
    assert m["slo"]["slos"]["freshness"] == {"ratio": st.freshness_ratio, "target": st.freshness_target, "ok": st.freshness_ok}
    assert m["slo"]["slos"]["completeness"]["ratio"] == st.completeness_ratio
    json.dumps(m)  # the manifest stays plain JSON
    v = sample_values(write_prometheus(m, tmp_path / "slo.prom").read_text())
    assert v[("trakt_nb_slo_ok", (("slo", "all"),))] == int(st.ok)

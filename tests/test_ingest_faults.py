"""Ingest under each replay fault scenario: retries win, quarantine is exactly what it should be, a long wait stops cleanly."""

import httpx
import pytest

from test_ingest import D, bronze_ids, end_of_day, followed, make_settings, quarantined_ids, replay_app, state, truth, truth_ids
from trakt_nb.land.bronze import connect, ensure_bronze
from trakt_nb.land.ledger import get_state, set_state
from trakt_nb.land.titles import RunStopped
from trakt_nb.land.ingest import ingest

T0 = end_of_day(D)


def _run(tmp_path, serve, faults, client=None, **kw):
    s0 = make_settings(tmp_path)
    srv = serve(replay_app(s0, T0, faults=faults))
    s = make_settings(tmp_path, url=srv.url, client={"max_attempts": 8, **(client or {})})
    summary = ingest(s, D, progress=False, **kw)
    return s, srv, summary


def _q(s, sql):
    con = connect(s, read_only=True)
    try: return con.execute(sql).fetchall()
    finally: con.close()


SLOW = pytest.mark.slow
# the faults answered with a real wait (a Retry-After of 1 s, a timeout) hit fewer requests than the others: each hit
# key still gets its streak of faults in a row, and the run still has to wait out several of them
RECOVERABLE = [pytest.param("quota_storm:0.02@0.3", None, marks=SLOW, id="quota_storm"),
               pytest.param("cloudflare_429:0.1", None, marks=SLOW, id="cloudflare_429"),
               pytest.param("cloudflare_403:0.3", None, id="cloudflare_403"),
               pytest.param("server_errors:0.3", None, id="server_errors"),
               pytest.param("slow:0.1@1.0", {"timeout_s": 0.5}, marks=SLOW, id="slow"),
               pytest.param("truncated:0.3", None, id="truncated"),
               pytest.param("page_shift:1.0@600", None, id="page_shift"),
               pytest.param("wrong_item_count:0.5", None, id="wrong_item_count")]


@pytest.mark.parametrize("faults,client", RECOVERABLE)
def test_recoverable_fault_loses_nothing(tmp_path, serve, faults, client):
    s, srv, summary = _run(tmp_path, serve, faults, client)
    st = state(srv.url)
    print(f"{faults}: {summary.line()} | replay by status {st['by_status']}")
    assert summary.status == "succeeded"
    assert summary.quarantined == 0 and _q(s, "SELECT count(*) FROM bronze.quarantine") == [(0,)]
    assert set(summary.completeness.values()) == {1.0}
    want = truth_ids(s, T0, followed(s))  # everything that existed at the server's starting instant
    assert want - bronze_ids(s) == set()
    if not faults.startswith(("page_shift", "wrong_item_count")):
        assert summary.retries > 0  # the fault did bite
        assert bronze_ids(s) == want


def test_truncated_always_is_quarantined(tmp_path, serve):
    # the followed titles are fixed first: a trending list cut short is no list to choose from (that first run stops, exit 75)
    (tmp_path / "titles").mkdir()
    s0, _, _ = _run(tmp_path / "titles", serve, None)
    con = connect(s0, read_only=True)
    try: titles = get_state(con, "followed_titles")
    finally: con.close()
    s1 = make_settings(tmp_path)
    con = ensure_bronze(connect(s1))
    try: set_state(con, "followed_titles", titles)
    finally: con.close()
    s, srv, summary = _run(tmp_path, serve, "truncated_always:0.15")
    assert summary.status == "succeeded" and summary.quarantined > 0
    assert summary.missing > 0  # loud: the day is not done, and the CLI exits 3 naming the pages
    reasons = _q(s, "SELECT DISTINCT reason FROM bronze.quarantine")
    assert reasons == [("invalid_json",)]
    assert min(summary.completeness.values()) < 1
    missing = truth_ids(s, T0, followed(s)) - bronze_ids(s)
    # a cut body loses the items past the cut too: every loss is on a title the run reports incomplete
    g = truth(s, T0, followed(s)).set_index("comment_id")
    incomplete = {int(k.split(":")[1]) for k, v in summary.completeness.items() if v < 1}
    assert missing and set(g.loc[sorted(missing), "title_id_trakt"]) <= incomplete
    assert quarantined_ids(s) & missing  # and what could be parsed of them is in quarantine


def test_drift_field_is_recorded_not_quarantined(tmp_path, serve):
    s, srv, summary = _run(tmp_path, serve, "drift_field:0.3")
    assert summary.status == "succeeded" and summary.quarantined == 0
    paths = {p for (p,) in _q(s, "SELECT json_path FROM bronze.schema_drift")}
    assert {"$.sentiment", "$.user.karma"} <= paths
    assert bronze_ids(s) == truth_ids(s, T0, followed(s))


def test_type_change_is_quarantined_as_invalid_schema(tmp_path, serve):
    s, srv, summary = _run(tmp_path, serve, "type_change:0.05")
    assert summary.status == "succeeded" and summary.quarantined > 0
    assert _q(s, "SELECT DISTINCT reason FROM bronze.quarantine") == [("invalid_schema",)]
    assert min(summary.completeness.values()) < 1
    missing = truth_ids(s, T0, followed(s)) - bronze_ids(s)
    assert missing and missing == quarantined_ids(s)


def test_long_retry_after_stops_then_resumes(tmp_path, serve):
    s0 = make_settings(tmp_path)
    srv = serve(replay_app(s0, T0, faults="long_retry_after:0.2@3600"))
    s = make_settings(tmp_path, url=srv.url, client={"retry_after_ceiling_s": 5})
    with pytest.raises(RunStopped, match="rate limited until .* resume with the same command"):
        ingest(s, D, progress=False)
    stopped = _q(s, "SELECT status FROM bronze.runs")
    assert stopped == [("stopped",)]
    httpx.post(srv.url + "/_replay/faults", json={})
    done = ingest(s, D, progress=False)
    assert done.status == "succeeded"
    clean_srv = serve(replay_app(s0, T0))
    c = make_settings(tmp_path, url=clean_srv.url, name="clean.duckdb")
    ingest(c, D, progress=False)
    assert bronze_ids(s) == bronze_ids(c) == truth_ids(s, T0, followed(s))

"""Schema drift promoted in stages, end to end on replay runs: recorded drift, promote, silver backfilled from stored pages, drift report."""
import datetime as dt
import json
import shutil

import httpx
import pytest

from test_ingest import D, make_settings
from trakt_nb.land.bronze_writer import BronzeWriter
from trakt_nb.land.bronze import connect
from trakt_nb.config import UserError
from trakt_nb.land.contracts import SCHEMAS_DIR, check_items, load_contracts
from trakt_nb.land.promotion import drift_report, promote, promote_from_drift
from trakt_nb.land.ingest import ingest
from trakt_nb.land.store import DuckFileStore
from trakt_nb.model.silver import build_silver

ITEMS = """SELECT unnest(from_json(payload, '["json"]')) AS item, run_date, schema_version FROM bronze.trakt_pages
           WHERE resource_kind IN ('comments', 'replies') AND http_status = 200"""


def _ingested(tmp_path_factory, faults: str):
    d = tmp_path_factory.mktemp(faults.split(":")[0])
    s = make_settings(d, replay={"faults": faults})
    summary = ingest(s, D, in_process=True, progress=False)
    assert summary.status == "succeeded"
    return s


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    "A warehouse after one replay run whose comments carry `sentiment` and `user.karma` 30% of the time."
    return _ingested(tmp_path_factory, "drift_field:0.3")


@pytest.fixture
def work(drifted, tmp_path):
    "A private copy of the drifted warehouse and of the project's schemas."
    shutil.copy(drifted.storage.warehouse, tmp_path / "w.duckdb")
    shutil.copytree(SCHEMAS_DIR, tmp_path / "schemas")
    s = drifted.replace(storage={"warehouse": tmp_path / "w.duckdb"})
    con = connect(s)
    yield s, con, tmp_path / "schemas"
    con.close()


@pytest.fixture
def no_network(monkeypatch):
    "Any HTTP request fails the test."
    calls = []
    def refuse(self, request, *a, **kw):
        calls.append(str(request.url)); raise AssertionError(f"network call to {request.url}")
    async def arefuse(self, request, *a, **kw): refuse(self, request)
    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(httpx.AsyncClient, "send", arefuse)
    return calls


def _bronze_counts(con) -> tuple:
    return con.execute("SELECT (SELECT count(*) FROM bronze.trakt_pages), (SELECT count(*) FROM bronze.runs), "
                       "(SELECT max(load_id) FROM bronze.trakt_pages)").fetchone()


def test_promotion_backfills_silver_from_stored_pages(work, no_network):
    s, con, schemas = work
    build_silver(DuckFileStore(con), schemas_dir=schemas)
    assert "sentiment" not in con.sql("SELECT * FROM silver.stg_trakt__comment_event").columns  # drift alone: ignored
    bronze_before = _bronze_counts(con)

    path = promote_from_drift(con, "comment", "$.sentiment", schemas)
    assert path == schemas / "comment" / "v2.json"
    assert load_contracts(schemas).version("comment") == 2 and load_contracts().version("comment") == 1
    out = build_silver(DuckFileStore(con), schemas_dir=schemas)
    assert out["rebuilt"] and out["loads"][0] == 1

    carrying = con.execute(f"SELECT count(DISTINCT item->>'id') FROM ({ITEMS}) WHERE json_exists(item, '$.sentiment')").fetchone()[0]
    filled = con.execute("SELECT count(sentiment), min(sentiment), max(sentiment) FROM silver.stg_trakt__comment_event").fetchone()
    total = con.execute("SELECT count(*) FROM silver.stg_trakt__comment_event").fetchone()[0]
    assert carrying > 20 and filled[0] == carrying and -1 <= filled[1] < filled[2] <= 1
    assert 0.15 < carrying / total < 0.45  # the fault's rate is 0.3
    wrong = con.execute(f"""SELECT count(*) FROM silver.stg_trakt__comment_event e
        JOIN (SELECT DISTINCT (item->>'id')::BIGINT AS id, (item->>'sentiment')::DOUBLE AS v FROM ({ITEMS})) b ON b.id = e.comment_id
        WHERE b.v IS DISTINCT FROM e.sentiment""").fetchone()[0]
    assert wrong == 0  # every comment's value is the stored payload's

    promote("comment", "user.karma", schemas_dir=schemas, con=con)
    build_silver(DuckFileStore(con), schemas_dir=schemas)
    karma = con.execute("SELECT count(user_karma), count(sentiment), typeof(any_value(user_karma)) FROM silver.stg_trakt__comment_event").fetchone()
    assert karma == (carrying, carrying, "BIGINT")
    assert con.execute("SELECT count(sentiment) FROM silver.stg_trakt__comment_event_history").fetchone()[0] >= carrying
    assert _bronze_counts(con) == bronze_before and no_network == []  # nothing fetched, bronze untouched


def test_refusals_on_a_real_warehouse(work):
    s, con, schemas = work
    promote_from_drift(con, "comment", "$.sentiment", schemas)
    for args, msg in [(("comment", "$.sentiment"), "already declared in trakt-nb:comment:v2"),
                      (("comment", "$.sentimentt"), "has never been seen in bronze.schema_drift"),
                      (("comments", "$.sentiment"), "There is no schema for resource 'comments'"),
                      (("comment", "$.likes"), "already declared")]:
        with pytest.raises(UserError, match=msg.replace(".", r"\.").replace("$", r"\$")):
            promote_from_drift(con, *args, schemas_dir=schemas)
    assert sorted(p.name for p in (schemas / "comment").iterdir()) == ["v1.json", "v2.json"]


def test_promote_without_a_connection_reads_the_settings_warehouse(work, monkeypatch):
    s, con, schemas = work
    con.close()  # promote opens the warehouse read-only by itself
    monkeypatch.setattr("trakt_nb.config.load_settings", lambda *a, **kw: s)
    path = promote("comment", "sentiment", schemas_dir=schemas)
    assert json.loads(path.read_text())["properties"]["sentiment"]["x-promoted"] == {"since": 2, "json_path": "$.sentiment",
                                                                                    "silver_column": "sentiment"}


def test_promoted_schema_validates_stored_payloads_and_the_next_run(work, monkeypatch):
    s, con, schemas = work
    promote_from_drift(con, "comment", "$.sentiment", schemas)
    v2 = load_contracts(schemas)["comment"]
    items = [json.loads(r[0]) for r in con.execute(f"SELECT item FROM ({ITEMS})").fetchall()]
    res = check_items(v2, items)
    assert res.ok and len(res.valid) == len(items) > 100
    assert any("sentiment" not in i for i in items) and any("sentiment" in i for i in items)
    assert {p for p, _ in res.drift} == {"$.user.karma"}  # sentiment is no longer drift

    build_silver(DuckFileStore(con), schemas_dir=schemas)
    before = con.execute("SELECT count(sentiment) FROM silver.stg_trakt__comment_event").fetchone()[0]
    con.close()
    monkeypatch.setattr("trakt_nb.land.crawl.load_contracts", lambda *a, **kw: load_contracts(schemas))
    assert ingest(s, D + dt.timedelta(days=1), in_process=True, progress=False).status == "succeeded"
    con = connect(s)
    try:
        versions = dict(con.execute("SELECT run_date, list_distinct(list(schema_version)) FROM bronze.trakt_pages "
                                    "WHERE resource_kind = 'comments' GROUP BY 1").fetchall())
        assert versions == {D: [1], D + dt.timedelta(days=1): [2]}
        out = build_silver(DuckFileStore(con), schemas_dir=schemas)
        assert "rebuilt" not in out and out["history"] > 0  # same columns: incremental
        after = con.execute("SELECT count(sentiment) FROM silver.stg_trakt__comment_event").fetchone()[0]
        carrying = con.execute(f"SELECT count(DISTINCT item->>'id') FROM ({ITEMS}) WHERE json_exists(item, '$.sentiment')").fetchone()[0]
        assert after == carrying >= before
    finally:
        con.close()


def test_drift_report_new_fields_after_a_drifted_run(work):
    s, con, schemas = work
    rep = drift_report(con, D, schemas)
    new = rep[rep.change == "new"].set_index("json_path")
    recorded = dict(con.execute("SELECT json_path, sum(count) FROM bronze.schema_drift WHERE resource = 'comment' GROUP BY 1").fetchall())
    assert {"$.sentiment", "$.user.karma"} <= set(new.index)
    assert new.loc["$.sentiment", "json_type"] == "number" and new.loc["$.user.karma", "json_type"] == "integer"
    assert new.loc["$.sentiment", "count"] == recorded["$.sentiment"] > 0
    assert new.loc["$.sentiment", "first_seen"] <= new.loc["$.sentiment", "last_seen"]
    assert "trakt-nb schema promote comment $.sentiment" in new.loc["$.sentiment", "detail"]
    assert set(rep.change) == {"new"}  # no previous date, nothing quarantined
    promote_from_drift(con, "comment", "$.sentiment", schemas)
    assert "$.sentiment" not in set(drift_report(con, D, schemas).json_path)  # promoted: no longer new


def test_drift_report_missing_field_from_crafted_pages(work):
    s, con, schemas = work
    items = [json.loads(r[0]) for r in con.execute(f"SELECT item FROM ({ITEMS}) LIMIT 40").fetchall()]
    assert sum("language" in i for i in items) > 0
    nxt = D + dt.timedelta(days=1)
    with BronzeWriter(con, "crafted", nxt) as w:
        w.add_page({"resource_kind": "comments", "title_kind": "movie", "title_id_trakt": 1, "http_status": 200,
                    "payload": json.dumps([{k: v for k, v in i.items() if k != "language"} for i in items])}, "crafted-1")
    rep = drift_report(con, nxt, schemas)
    missing = rep[rep.change == "missing"].set_index("json_path")
    assert "$.language" in missing.index
    had = con.execute(f"SELECT count(*) FROM ({ITEMS}) WHERE run_date = $1 AND json_exists(item, '$.language')", [D]).fetchone()[0]
    assert missing.loc["$.language", "count"] == had
    assert "$.user_rating" not in missing.index and "$.likes" not in missing.index  # still there / required
    assert rep[rep.change == "missing"].json_path.isin([p for p in missing.index]).all()


@pytest.fixture(scope="module")
def type_changed(tmp_path_factory):
    return _ingested(tmp_path_factory, "type_change:0.05")


def test_drift_report_type_change_from_quarantine(type_changed):
    con = connect(type_changed, read_only=True)
    try:
        rep, before = drift_report(con, D), drift_report(con, D - dt.timedelta(days=1))
        quarantined = con.execute("SELECT count(*) FROM bronze.quarantine WHERE reason = 'invalid_schema' AND run_date = $1", [D]).fetchone()[0]
    finally:
        con.close()
    tc = rep[rep.change == "type_change"]
    assert quarantined > 0
    assert tc[["resource", "json_path", "json_type", "count"]].values.tolist() == [["comment", "$.likes", "string", quarantined]]
    assert tc.detail.iloc[0].endswith("is not of type 'integer'")
    assert before.empty  # nothing was quarantined or recorded the day before

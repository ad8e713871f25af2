"""Lakehouse storage: each Lake operation on Iceberg and Delta; runs on the lake give the DuckDB file's gold; resume and idempotency hold."""
import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from trakt_nb.land.bronze_writer import BronzeWriter
from trakt_nb.land.bronze import connect, ensure_bronze
from trakt_nb.land.ledger import end_of_day
from trakt_nb.land.ingest import ingest
from trakt_nb.land.lake import BRONZE_PAGES, open_lake, publish_bronze, published_load_id
from trakt_nb.model.marts import MARTS
from trakt_nb.model.build import build_model

from test_ingest import FAST_CLIENT, REPLAY, make_settings, replay_app, state, write_ini

pytestmark = pytest.mark.lakehouse

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("iceberg", "delta")
D1, D2, D3 = dt.date(2026, 7, 10), dt.date(2026, 7, 11), dt.date(2026, 7, 12)
GOLD = MARTS + ("fct_title_daily_engagement",)
SILVER_SAME = {"stg_trakt__comment_event_history": [], "stg_trakt__comment_event": [], "stg_trakt__rating_dist": [], "stg_trakt__rating_source": [], "dim_title": []}


def lake_settings(tmp_path, storage, name=None):
    "The small world's settings with `storage`, warehouse and lake in `tmp_path`."
    name = name or storage
    return make_settings(tmp_path, name=f"{name}.duckdb").replace(storage={"storage": storage, "lake": tmp_path / f"{name}-lake"})


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    "Rows in one order (non-float columns first, then all), index reset, columns sorted, lists as tuples."
    df = df[sorted(df.columns)].copy()
    for c in df.columns:
        if df[c].map(lambda v: hasattr(v, "__len__") and not isinstance(v, str)).any(): df[c] = df[c].map(lambda v: None if v is None else tuple(v))
    keys = [c for c in df.columns if not pd.api.types.is_float_dtype(df[c])] + [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def assert_same(a: pd.DataFrame, b: pd.DataFrame, what: str):
    assert len(a) == len(b), f"{what}: {len(a)} rows vs {len(b)}"
    pd.testing.assert_frame_equal(canonical(a), canonical(b), check_dtype=False, rtol=1e-9, atol=1e-9, obj=what)


def duck_gold(s) -> dict[str, pd.DataFrame]:
    con = connect(s, read_only=True)
    try: return {n: con.sql(f"SELECT * FROM gold.{n}").to_arrow_table().to_pandas() for n in GOLD}
    finally: con.close()


def lake_gold(s) -> dict[str, pd.DataFrame]:
    lake = open_lake(s)
    return {n: lake.to_arrow(f"gold.{n}").to_pandas() for n in GOLD}


def lake_pages(s) -> set[tuple]:
    t = open_lake(s).to_arrow(BRONZE_PAGES, columns=["resource_kind", "title_id_trakt", "parent_comment_id", "page", "payload_sha256"])
    return set(tuple(r.values()) for r in t.to_pylist() if r["resource_kind"] in ("comments", "replies", "ratings"))


# -- 1. each Lake operation on both formats ---------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_lake_operations(tmp_path, fmt):
    lake = open_lake(lake_settings(tmp_path, fmt))
    d1, d2 = dt.date(2026, 7, 1), dt.date(2026, 7, 2)
    ts = pa.array([dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone.utc)] * 3, pa.timestamp("us", tz="UTC"))
    lake.append("silver.t", pa.table({"k": [1, 2, 3], "day": [d1, d1, d2], "v": [1.5, 2.5, 3.5], "at": ts}),
                props={"trakt_nb.mark": 7, "trakt_nb.note": "first"}, partition_by=["day"])
    assert lake.props("silver.t") == {"trakt_nb.mark": "7", "trakt_nb.note": "first"}
    lake.append("silver.t", pa.table({"k": [4], "day": [d2], "v": [4.5], "at": ts[:1]}), props={"trakt_nb.mark": 8})
    assert lake.props("silver.t") == {"trakt_nb.mark": "8"}  # the latest commit's own properties
    # upsert: k=2 updated, k=5 inserted, the rest untouched
    lake.upsert("silver.t", pa.table({"k": [2, 5], "day": [d1, d2], "v": [20.0, 5.5], "at": ts[:2]}), keys=["k"], props={"trakt_nb.mark": 9})
    got = {r["k"]: r["v"] for r in lake.to_arrow("silver.t").to_pylist()}
    assert got == {1: 1.5, 2: 20.0, 3: 3.5, 4: 4.5, 5: 5.5} and lake.props("silver.t")["trakt_nb.mark"] == "9"
    # replace_where: only d2's rows replaced
    lake.replace_where("silver.t", pa.table({"k": [30], "day": [d2], "v": [30.0], "at": ts[:1]}), "day", d2)
    rows = sorted((r["day"], r["k"], r["v"]) for r in lake.to_arrow("silver.t").to_pylist())
    assert rows == [(d1, 1, 1.5), (d1, 2, 20.0), (d2, 30, 30.0)]
    lake.replace_where("silver.t", pa.table({"k": [30], "day": [d2], "v": [30.0], "at": ts[:1]}), "day", d2)  # again: no change
    assert lake.count("silver.t") == 3
    # data files: every row of the table, and nothing else (no delete files or deletion vectors to apply)
    import duckdb
    files = lake.data_files("silver.t")
    assert files and all(Path(f).is_file() for f in files)
    assert sorted(duckdb.sql(f"SELECT k, v FROM read_parquet({files!r})").fetchall()) == [(1, 1.5), (2, 20.0), (30, 30.0)]
    assert lake.to_arrow("silver.t", where=[("k", ">", 1), ("day", "=", d1)]).column("k").to_pylist() == [2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_lake_schema_changes(tmp_path, fmt):
    "New columns widen a table on any write (older rows read NULL); a whole overwrite takes exactly its own columns."
    lake = open_lake(lake_settings(tmp_path, fmt))
    d1, d2 = dt.date(2026, 7, 1), dt.date(2026, 7, 2)
    lake.append("gold.t", pa.table({"k": [1, 2], "as_of_date": [d1, d1]}), props={"trakt_nb.mark": 1})
    lake.append("gold.t", pa.table({"k": [3], "as_of_date": [d2], "x": ["a"]}), props={"trakt_nb.mark": 2})
    lake.upsert("gold.t", pa.table({"k": [1], "as_of_date": [d2], "x": ["b"], "y": [1.5]}), keys=["k"], props={"trakt_nb.mark": 3})
    assert sorted((r["k"], r["x"], r["y"]) for r in lake.to_arrow("gold.t").to_pylist()) == [(1, "b", 1.5), (2, None, None), (3, "a", None)]
    assert lake.props("gold.t") == {"trakt_nb.mark": "3"}
    lake.replace_where("gold.t", pa.table({"k": [5], "as_of_date": [d2], "z": [True]}), "as_of_date", d2)
    assert sorted((r["k"], r["z"]) for r in lake.to_arrow("gold.t").to_pylist()) == [(2, None), (5, True)]
    lake.overwrite("gold.t", pa.table({"k": [9], "as_of_date": [d1]}))
    assert lake.to_arrow("gold.t").to_pylist() == [{"k": 9, "as_of_date": d1}]


# -- 2. runs on the lake give the DuckDB file's gold ---------------------------------------------------

@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    """Three daily runs on the DuckDB file; after each day's ingest, the lake runs model the same pages: each gets a copy of
    the warehouse (its outbox holds the day's new loads; pages it has published already are skipped by the watermark)."""
    tmp = tmp_path_factory.mktemp("lake_runs")
    out = {storage: lake_settings(tmp, storage) for storage in ("duckdb",) + FORMATS}
    for day in (D1, D2, D3):
        ingest(out["duckdb"], day, in_process=True, progress=False)
        build_model(out["duckdb"], day)
        for fmt in FORMATS:
            shutil.copyfile(out["duckdb"].storage.warehouse, out[fmt].storage.warehouse)
            build_model(out[fmt], day)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_gold_on_the_lake_equals_duckdb(three_days, fmt):
    want, got = duck_gold(three_days["duckdb"]), lake_gold(three_days[fmt])
    for name in GOLD:
        assert_same(got[name], want[name], f"{fmt} gold.{name}")
    assert set(want["mart_title_quadrant"].as_of_date) == {D1, D2, D3} and len(want["mart_title_quadrant"]) > 0
    # silver too, row for row
    con = connect(three_days["duckdb"], read_only=True)
    try:
        for name, drop in SILVER_SAME.items():
            a = open_lake(three_days[fmt]).to_arrow(f"silver.{name}").to_pandas().drop(columns=drop)
            b = con.sql(f"SELECT * FROM silver.{name}").to_arrow_table().to_pandas().drop(columns=drop)
            assert len(b) > 0
            assert_same(a, b, f"{fmt} silver.{name}")
    finally: con.close()
    lake = open_lake(three_days[fmt])
    # bronze lives in the lake, partitioned by fetch day; the outbox keeps only the two newest run dates
    pages = lake.to_arrow(BRONZE_PAGES, columns=["run_date", "fetched_at", "fetched_day"]).to_pylist()
    assert {r["run_date"] for r in pages} == {D1, D2, D3} and all(r["fetched_day"] == r["fetched_at"].date() for r in pages)
    con = connect(three_days[fmt], read_only=True)
    try: assert {r[0] for r in con.execute("SELECT DISTINCT run_date FROM bronze.trakt_pages").fetchall()} == {D2, D3}
    finally: con.close()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_repeated_date_changes_nothing(three_days, fmt):
    s = three_days[fmt]
    lake = open_lake(s)
    before = {n: lake.to_arrow(n).to_pandas() for n in [BRONZE_PAGES, "silver.stg_trakt__comment_event_history",
                                                         "silver.stg_trakt__comment_event"] + [f"gold.{g}" for g in MARTS]}
    ingest(s, D2, in_process=True, progress=False)
    m = build_model(s, D2)
    assert m.silver["history"] == 0 and m.silver["current"] == 0  # no bronze load to take in
    for n, df in before.items():
        assert_same(lake.to_arrow(n).to_pandas(), df, n)


@pytest.mark.slow
def test_full_refresh_on_the_lake_equals_incremental(three_days):
    s = three_days["iceberg"]
    lake = open_lake(s)
    hist = lake.to_arrow("silver.stg_trakt__comment_event_history").to_pandas()
    gold = lake.to_arrow("gold.mart_title_half_life").to_pandas()
    m = build_model(s, D3, full_refresh=True)
    assert m.silver["loads"][0] == 1  # every load again, from the first
    assert_same(lake.to_arrow("silver.stg_trakt__comment_event_history").to_pandas(), hist, "history")
    assert_same(lake.to_arrow("gold.mart_title_half_life").to_pandas(), gold, "half-life")


def _deleting(s):
    "Comments deleted while their listings are paged (20 per page: many page boundaries to cross)."
    return s.replace(replay={"faults": "delete_mid_crawl:0.5@2"}, client={"comments_limit": 20})


@pytest.fixture(scope="module")
def deletion_days(tmp_path_factory):
    """Two days crawled while comments are deleted mid-crawl, modeled on the DuckDB file; the warehouse after each day's ingest
    is kept, for the lake runs to model the very same pages."""
    tmp = tmp_path_factory.mktemp("lake_deletions")
    duck, snaps = _deleting(lake_settings(tmp, "duckdb")), []
    for day in (D1, D2):
        ingest(duck, day, in_process=True, progress=False)
        snaps.append((day, tmp / f"after-ingest-{day}.duckdb"))
        shutil.copyfile(duck.storage.warehouse, snaps[-1][1])
        build_model(duck, day)
    return tmp, duck, snaps


@pytest.mark.slow
@pytest.mark.parametrize("fmt,backend", [("iceberg", "duckdb"), ("delta", "duckdb"),
                                         pytest.param("iceberg", "pyspark", marks=[pytest.mark.spark, pytest.mark.reliability_full])])  # Spark's run (about 3 min): `make test-reliability`
def test_deletions_on_the_lake_equal_duckdb(deletion_days, fmt, backend):
    "A comment gone for good is marked deleted (with when last seen) and is not live on the lake, as in the DuckDB file."
    tmp, duck, snaps = deletion_days
    s = _deleting(lake_settings(tmp, fmt, name=f"{fmt}-{backend}")).replace(model={"backend": backend})
    for day, snap in snaps:
        shutil.copyfile(snap, s.storage.warehouse)
        build_model(s, day)
    con = connect(duck, read_only=True)
    try: want = {n: con.sql(f"SELECT * FROM silver.{n}").to_arrow_table().to_pandas() for n in ("stg_trakt__comment_deleted", "stg_trakt__comment_event")}
    finally: con.close()
    gone = want["stg_trakt__comment_deleted"]
    assert len(gone) >= 5 and gone.last_seen_at.notna().all()  # the fault bit, and each one says when it was last seen
    assert not set(gone.comment_id) & set(want["stg_trakt__comment_event"].comment_id)
    lake = open_lake(s)
    for n, df in want.items(): assert_same(lake.to_arrow(f"silver.{n}").to_pandas(), df, f"{fmt}/{backend} silver.{n}")
    duck_g, lake_g = duck_gold(duck), lake_gold(s)
    for name in GOLD: assert_same(lake_g[name], duck_g[name], f"{fmt}/{backend} gold.{name}")
    con = connect(s, read_only=True)  # the DuckDB file's views of the lake (reports, data tests) see the same
    try:
        assert con.sql("SELECT count(*) FROM silver.stg_trakt__comment_deleted").fetchone()[0] == len(gone)
        assert con.sql("""SELECT count(*) FROM silver.stg_trakt__comment_event
                          WHERE comment_id IN (SELECT comment_id FROM silver.stg_trakt__comment_deleted)""").fetchone()[0] == 0
    finally: con.close()


# -- 3. resume: a killed ingest, a killed publish --------------------------------------------------------

def _ini(tmp_path, url, name, fmt):
    return write_ini(tmp_path / f"{name}.ini", {
        "replay": {**REPLAY, "comments_per_title": 400, "url": url},
        "storage": {"storage": fmt, "warehouse": tmp_path / f"{name}.duckdb", "lake": tmp_path / f"{name}-lake",
                    "write_batch_pages": 20},  # the kill below comes after 80 requests: several batches committed
        "titles": {"trending_top_n": 2}, "client": {**FAST_CLIENT, "concurrency": 2, "comments_limit": 5}})


def _spawn(ini, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAKT_NB_") and k != "TRAKT_CLIENT_ID"}
    env["TRAKT_NB_SETTINGS"] = str(ini)
    return subprocess.Popen([str(ROOT / ".venv/bin/trakt-nb"), "ingest", "--date", D1.isoformat(), "--quiet", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ini.parent)


@pytest.mark.slow
@pytest.mark.server
def test_killed_ingest_resumes_to_the_same_lake_bronze(tmp_path, serve):
    from trakt_nb.config import load_settings
    s0 = make_settings(tmp_path, replay={"comments_per_title": 400})
    srv = serve(replay_app(s0, end_of_day(D1), faults="slow:1.0@0.04"))
    ini = _ini(tmp_path, srv.url, "killed", "iceberg")
    start = state(srv.url)["requests"]
    p = _spawn(ini)
    deadline = time.monotonic() + 60
    while state(srv.url)["requests"] - start < 80 and p.poll() is None and time.monotonic() < deadline: time.sleep(0.02)
    assert p.poll() is None, f"finished before the kill: {p.communicate()}"
    p.send_signal(signal.SIGKILL); p.wait()
    s = load_settings(ini, env={})
    con = connect(s, read_only=True)
    kept = con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0]
    con.close()
    assert kept > 0 and not open_lake(s).exists(BRONZE_PAGES)  # committed pages wait in the outbox
    p = _spawn(ini); out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    httpx_reset = __import__("httpx").post(srv.url + "/_replay/reset", json={})
    assert httpx_reset.status_code < 400
    clean = _ini(tmp_path, srv.url, "clean", "iceberg")
    p = _spawn(clean); out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    c = load_settings(clean, env={})
    got, want = lake_pages(s), lake_pages(c)
    print(f"{kept} pages kept by the killed attempt; {len(got)} pages in the resumed lake vs {len(want)} uninterrupted")
    assert got == want and len(got) > 80
    t = open_lake(s).to_arrow(BRONZE_PAGES, columns=["unit_key", "run_date"]).to_pandas()
    assert not t[t.unit_key.notna()].duplicated().any()  # no page twice


def test_model_publishes_what_ingest_left_in_the_outbox(tmp_path):
    "Pages a run committed but never published (killed before its publish) reach the lake when the model step starts."
    import asyncio
    from trakt_nb.land.ingest import ingest_async
    s = lake_settings(tmp_path, "delta").replace(replay={"movies": 2, "shows": 1, "comments_per_title": 100}, titles={"trending_top_n": 1})
    asyncio.run(ingest_async(s, D1, in_process=True, progress=False))  # the library call: bronze in DuckDB, no publish
    con = connect(s, read_only=True)
    want = set(con.execute("SELECT payload_sha256 FROM bronze.trakt_pages").fetchall())
    n = con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0]
    con.close()
    assert want and not open_lake(s).exists(BRONZE_PAGES)
    build_model(s, D1)
    lake = open_lake(s)
    assert set((r,) for r in lake.to_arrow(BRONZE_PAGES, columns=["payload_sha256"]).column(0).to_pylist()) == want
    assert lake.count(BRONZE_PAGES) == n
    assert lake.count("gold.mart_title_quadrant") > 0


_KILL_AFTER_COMMIT = """
import os, signal, sys
import trakt_nb.land.lake as lake
from trakt_nb.config import load_settings
def die(con, published): os.kill(os.getpid(), signal.SIGKILL)
lake.prune_outbox = die
lake.publish_bronze(load_settings(sys.argv[1], env={}))
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_publish_killed_after_the_lake_commit_does_not_duplicate(tmp_path, fmt):
    ini = write_ini(tmp_path / "p.ini", {"storage": {"storage": fmt, "warehouse": tmp_path / "w.duckdb", "lake": tmp_path / "lake"}})
    from trakt_nb.config import load_settings
    s = load_settings(ini, env={})
    con = ensure_bronze(connect(s))
    for day in (D1, D2, D3):
        with BronzeWriter(con, f"run-{day}", day) as w:
            for i in range(3): w.add_page({"resource_kind": "comments", "page": i + 1, "payload": [{"id": i}]}, f"u{i}")
    con.close()
    p = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", _KILL_AFTER_COMMIT, str(ini)], capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    lake = open_lake(s)
    assert lake.count(BRONZE_PAGES) == 9 and published_load_id(lake) == 3
    con = connect(s, read_only=True)
    assert con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0] == 9  # the cleanup never ran
    con.close()
    again = publish_bronze(s)
    assert again["published_pages"] == 0 and again["pruned_pages"] == 3
    assert lake.count(BRONZE_PAGES) == 9
    # a warehouse that did not feed this lake is refused, not silently skipped
    from trakt_nb.config import UserError
    with pytest.raises(UserError, match="not the one that fed this lake"):
        publish_bronze(s.replace(storage={"warehouse": tmp_path / "other.duckdb"}), ensure_bronze(connect(tmp_path / "other.duckdb")))


def test_missing_extra_is_one_sentence(tmp_path, monkeypatch):
    import builtins
    from trakt_nb.config import UserError
    real = builtins.__import__
    def no_deltalake(name, *a, **kw):
        if name.split(".")[0] == "deltalake": raise ImportError("No module named 'deltalake'", name="deltalake")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_deltalake)
    with pytest.raises(UserError, match=r'pip install -e "\.\[lake\]"'):
        open_lake(lake_settings(tmp_path, "delta"))


@pytest.mark.slow
def test_daily_run_on_iceberg_serves_the_lake_to_the_reports(tmp_path, monkeypatch):
    "`trakt-nb run` with storage = iceberg: every step succeeds, and the DuckDB file's gold is a view of the lake's."
    from test_run import DAY as RUN_DAY, small_settings
    from trakt_nb.ops.run import run_day
    s = small_settings(tmp_path, monkeypatch, TRAKT_NB_STORAGE_STORAGE="iceberg", TRAKT_NB_STORAGE_LAKE=str(tmp_path / "lake"))
    res = run_day(s, RUN_DAY)
    assert res.status == "succeeded", [(st.name, st.status, st.error) for st in res.steps]
    assert [st.name for st in res.steps] == ["10_ingest", "20_model", "quality", "30_quadrants", "31_half_life"]
    con = connect(s, read_only=True)
    try:
        kinds = dict(con.execute("""SELECT table_schema || '.' || table_name, table_type FROM information_schema.tables
                                    WHERE table_schema IN ('silver', 'gold')""").fetchall())
        served = con.sql("SELECT * FROM gold.mart_title_quadrant").to_arrow_table().to_pandas()
        metric_rows = con.sql('SELECT count(*) FROM metrics."breadth"').fetchone()[0]
    finally: con.close()
    assert kinds and set(kinds.values()) == {"VIEW"} and "gold.mart_title_quadrant" in kinds
    assert_same(served, open_lake(s).to_arrow("gold.mart_title_quadrant").to_pandas(), "served quadrant mart")
    assert len(served) > 0 and metric_rows > 0
    assert "Breadth" in (s.storage.reports_dir / RUN_DAY.isoformat() / "30_quadrants.html").read_text()


_KILL_AT_SECOND_CHUNK = """
import os, signal, sys
import trakt_nb.land.lake as lake
from trakt_nb.config import load_settings
lake.PUBLISH_CHUNK_BYTES = 1  # one load per commit
calls = []
def outbox(con, lo, hi, _real=lake.outbox_pages):
    calls.append(hi)
    if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)
    return _real(con, lo, hi)
lake.outbox_pages = outbox
lake.publish_bronze(load_settings(sys.argv[1], env={}))
"""


def test_publish_in_chunks_killed_between_chunks_resumes_exactly_once(tmp_path):
    "A large outbox goes to the lake in several commits, each with its own watermark: a kill between two leaves no gap and no double."
    ini = write_ini(tmp_path / "p.ini", {"storage": {"storage": "iceberg", "warehouse": tmp_path / "w.duckdb", "lake": tmp_path / "lake"}})
    from trakt_nb.config import load_settings
    s = load_settings(ini, env={})
    con = ensure_bronze(connect(s))
    for day in (D1, D2, D3):
        with BronzeWriter(con, f"run-{day}", day) as w:
            for i in range(3): w.add_page({"resource_kind": "comments", "page": i + 1, "payload": [{"id": i, "day": str(day)}]}, f"u{i}")
    want = sorted(r[0] for r in con.execute("SELECT payload_sha256 FROM bronze.trakt_pages").fetchall())
    con.close()
    p = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", _KILL_AT_SECOND_CHUNK, str(ini)], capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    lake = open_lake(s)
    assert lake.count(BRONZE_PAGES) == 3 and published_load_id(lake) == 1  # the first load's commit only
    again = publish_bronze(s)
    assert again["published_pages"] == 6 and published_load_id(lake) == 3
    assert sorted(lake.to_arrow(BRONZE_PAGES, columns=["payload_sha256"]).column(0).to_pylist()) == want

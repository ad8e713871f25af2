"""Silver and gold computed by Spark (local[2]) equal DuckDB's by content, on a small replay world and the same dates;
and, end to end, gold from DuckDB-on-file and Spark-on-Iceberg is the same (DuckDB-on-Iceberg's: tests/test_lake.py)."""
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ibis import _

from trakt_nb.land.store import cache_table, table_from_arrow, table_from_files, to_arrow
from trakt_nb.model.backend import compute_backend, stop_backend
from trakt_nb.land.bronze import connect
from trakt_nb.config import load_settings
from trakt_nb.land.contracts import EVENT_COLUMNS
from trakt_nb.model.gold import daily_engagement
from trakt_nb.model.engagement import GOLD_EVENT_COLUMNS, apply_engagement_changes, engagement_changes
from trakt_nb.land.ingest import ingest
from trakt_nb.model.marts import MARTS, gold_marts, half_life_of
from trakt_nb.model.build import build_model
from trakt_nb.model.silver import (comment_contract, comment_events_as_of, day_versions, dim_title, flatten_comments,
                             latest_version, rating_dist)

pytestmark = [pytest.mark.spark, pytest.mark.lakehouse]

REPLAY = {"seed": 5, "movies": 4, "shows": 3, "users": 300, "comments_per_title": 300}
DATES = (dt.date(2026, 7, 11), dt.date(2026, 7, 14))
GOLD = (*MARTS, "fct_title_daily_engagement")
FACT_KEY = ["as_of_date", "title_kind", "title_id_trakt", "day"]
KEYS = {"mart_half_life_cohort_trend": ["as_of_date", "cohort"], "fct_title_daily_engagement": FACT_KEY, "fct_title_daily_engagement incremental": FACT_KEY,
        "stg_trakt__comment_event_history": ["version_key"], "stg_trakt__comment_event": ["comment_id"],
        "stg_trakt__rating_dist": ["title_kind", "title_id_trakt", "snapshot_date"], "dim_title": ["title_kind", "title_id_trakt"]}
SILVER = ("stg_trakt__comment_event_history", "stg_trakt__comment_event", "stg_trakt__rating_dist", "dim_title")


def _settings(folder, **storage):
    return load_settings(env={}).replace(storage={"warehouse": folder / "w.duckdb", "lake": folder / "lake", **storage},
                                         replay=REPLAY, titles={"trending_top_n": 3})


def _frame(t: pa.Table, name: str) -> pd.DataFrame:
    "Rows in key order, columns by name, as plain pandas values (lists as tuples)."
    df = t.to_pandas().sort_values(KEYS.get(name, ["as_of_date", "title_kind", "title_id_trakt"]), kind="stable")
    df = df.reset_index(drop=True)[sorted(df.columns)]
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, (list, np.ndarray))).any(): df[c] = df[c].map(lambda v: None if v is None else tuple(v))
    return df


def assert_same(a: pa.Table, b: pa.Table, name: str, what: str = ""):
    "Equal by content: same rows after sorting by the table `name`'s key, floats within 1e-9."
    what = what or name
    assert a.num_rows > 0, f"{what}: no rows to compare"
    assert set(a.column_names) == set(b.column_names), f"{what}: columns differ"
    pd.testing.assert_frame_equal(_frame(a, name), _frame(b, name), check_exact=False, rtol=0, atol=1e-9, check_dtype=False, obj=what)


def model_tables(b, pages, s) -> dict[tuple[str, dt.date | None], pa.Table]:
    "Silver from all bronze pages and every gold table for each of DATES, computed on backend `b` as the model run computes them."
    fields = comment_contract()
    columns = EVENT_COLUMNS + [f["silver_column"] for f in fields]
    v = day_versions(flatten_comments(pages, fields), columns)
    history = cache_table(b, "history", v.select((v.comment_id.cast("string") + ":" + v.seen_date.cast("string")).name("version_key"), *columns))
    seen = history.group_by("comment_id").agg(first_seen_at=_.fetched_at.min(), last_seen_at=_.fetched_at.max())
    ratings = cache_table(b, "ratings", rating_dist(pages))
    out = {("stg_trakt__comment_event_history", None): to_arrow(history),
           ("stg_trakt__comment_event", None): to_arrow(latest_version(history, ["comment_id"]).join(seen, "comment_id").select(*columns, "first_seen_at", "last_seen_at")),
           ("stg_trakt__rating_dist", None): to_arrow(ratings), ("dim_title", None): to_arrow(dims := cache_table(b, "dims", dim_title(pages)))}
    m, gold_history, prev = s.metrics, history.select(GOLD_EVENT_COLUMNS), None
    for d in DATES:
        events = cache_table(b, f"events_{d:%Y%m%d}", comment_events_as_of(gold_history, d))
        eng = cache_table(b, f"engagement_{d:%Y%m%d}", daily_engagement(events, d))
        if prev is not None:  # the fact brought up to date from the previous date's, as the model run does between days
            changes = cache_table(b, f"changes_{d:%Y%m%d}", engagement_changes(prev[1], gold_history, prev[0], d))  # cached as the run does
            out[("fct_title_daily_engagement incremental", d)] = to_arrow(apply_engagement_changes(prev[1], changes).mutate(as_of_date=d))
        prev = (d, eng)
        hl = cache_table(b, f"half_life_{d:%Y%m%d}", half_life_of(gold_history, dims, d, m))
        marts = {**gold_marts(eng, events, hl, ratings, d, m), "fct_title_daily_engagement": eng.mutate(as_of_date=d)}
        out |= {(n, d): to_arrow(e) for n, e in marts.items()}
    return out


@pytest.fixture(scope="module", autouse=True)
def few_shuffle_partitions():
    """Spark's shuffles in 2 partitions (one per core of local[2]) in this module's sessions: `LOCAL_CONF`'s 64 are
    sized for millions of comments, and each partition is a task to schedule; these thousands of rows need 2."""
    from trakt_nb.model import backend
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(backend.LOCAL_CONF, "spark.sql.shuffle.partitions", "2")
        yield


@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    "A DuckDB-file run on DATES: its settings, bronze pages (Arrow and a Parquet file), and stored silver and gold."
    folder = tmp_path_factory.mktemp("file_run")
    s = _settings(folder)
    for d in DATES:
        ingest(s, d, in_process=True, progress=False)
        build_model(s, d)
    con = connect(s, read_only=True)
    try:
        pages = con.sql("SELECT * FROM bronze.trakt_pages").to_arrow_table()
        stored = {(t, None): con.sql(f"SELECT * FROM silver.{t}").to_arrow_table() for t in SILVER}
        for d in DATES:
            for n in GOLD:
                if n == "fct_title_daily_engagement" and d != DATES[-1]: continue  # the fact keeps the newest as-of date only
                stored[(n, d)] = con.sql(f"SELECT * FROM gold.{n} WHERE as_of_date = DATE '{d}'").to_arrow_table()
    finally:
        con.close()
    pq.write_table(pages, folder / "pages.parquet")
    return s, pages, folder / "pages.parquet", stored


@pytest.fixture(scope="module")
def spark(file_run):
    "One Spark local[2] session for the module."
    b = compute_backend(file_run[0].replace(model={"backend": "pyspark"}))
    yield b
    stop_backend(b)


@pytest.fixture(scope="module")
def on_duckdb(file_run):
    s, pages, _, _ = file_run
    b = compute_backend(s)
    try: return model_tables(b, table_from_arrow(b, "trakt_pages", pages), s)
    finally: stop_backend(b)


@pytest.fixture(scope="module")
def on_spark(file_run, spark):
    s, _, files, _ = file_run
    return model_tables(spark, table_from_files(spark, "trakt_pages", [str(files)]), s)


def test_duckdb_in_memory_equals_the_file_run(file_run, on_duckdb):
    "The calls of `model_tables` are those of the model run: on DuckDB in memory they give the file run's silver and gold."
    stored = file_run[3]
    for key, t in stored.items():
        if key[0] == "mart_title_rating_trend" and t.num_rows == 0: continue  # no snapshot by then
        assert_same(t, on_duckdb[key], key[0], f"{key[0]} {key[1] or ''}")


def test_spark_equals_duckdb(on_duckdb, on_spark):
    assert on_spark.keys() == on_duckdb.keys()
    for key, t in on_duckdb.items():
        if key[0] == "mart_title_rating_trend" and t.num_rows == 0: continue
        assert_same(t, on_spark[key], key[0], f"{key[0]} {key[1] or ''} on Spark")


def test_incremental_fact_equals_full(on_duckdb, on_spark):
    "The fact brought up to date from the day before equals the fact computed in full, on both backends."
    for tables in (on_duckdb, on_spark):
        d = DATES[-1]
        assert_same(tables[("fct_title_daily_engagement", d)], tables[("fct_title_daily_engagement incremental", d)], "fct_title_daily_engagement")


def test_spark_keeps_types(on_duckdb, on_spark):
    "Same Arrow types both ways (Spark forgets time zones and JSON; the backend module puts them back)."
    for key, t in on_duckdb.items():
        assert on_spark[key].schema.remove_metadata().equals(t.schema.remove_metadata()), f"{key}: {on_spark[key].schema} != {t.schema}"


def test_parity_check_sees_a_difference(on_duckdb):
    "The comparison fails on one changed float beyond 1e-9, and on a missing row."
    t = on_duckdb[("mart_title_hold_up", DATES[-1])]
    i = t.schema.get_field_index("background_yearly_share")
    col = t.column(i).to_pylist()
    j = next(k for k, v in enumerate(col) if v is not None)
    bumped = t.set_column(i, "background_yearly_share", pa.array([v + 1e-7 if k == j else v for k, v in enumerate(col)], pa.float64()))
    with pytest.raises(AssertionError): assert_same(t, bumped, "mart_title_hold_up")
    with pytest.raises(AssertionError): assert_same(t, t.slice(1), "mart_title_hold_up")
    assert_same(t, t.set_column(i, "background_yearly_share", pa.array([v + 1e-12 if v is not None else v for v in col], pa.float64())), "mart_title_hold_up")


def test_gold_equal_on_file_and_spark_on_iceberg(file_run, spark, tmp_path, monkeypatch):
    """End to end, the same days ingested and modeled: gold from Spark-on-Iceberg is the DuckDB file's. (DuckDB-on-Iceberg's
    is too: tests/test_lake.py::test_gold_on_the_lake_equals_duckdb, every gold and silver table, on the iceberg lake.)"""
    from trakt_nb.land.lake import open_lake
    from trakt_nb.model import build
    # each day's build runs on the module's Spark session (`compute_backend` gets the running one) and leaves it running
    # for the next day: the fixture stops it at the end
    monkeypatch.setattr(build, "stop_backend", lambda b: None)
    stored = file_run[3]
    s = _settings(tmp_path, storage="iceberg").replace(model={"backend": "pyspark"})
    for d in DATES:
        ingest(s, d, in_process=True, progress=False)
        build_model(s, d)
    lake = open_lake(s)
    assert spark._session.sparkContext._jsc is not None  # the run used the module's session, which is still up
    for (n, d), t in stored.items():
        if d is None or (n == "mart_title_rating_trend" and t.num_rows == 0): continue
        assert_same(t, lake.to_arrow(f"gold.{n}", where=[("as_of_date", "=", d)]), n, f"{n} {d}: DuckDB file vs Spark on Iceberg")

"""Model run on a small replay world: incremental equals full refresh (hypothesis over run-date sequences), re-running
a date changes nothing, edits and growing likes reach silver with their history, and gold for a day is reproducible later."""
import datetime as dt
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trakt_nb.land.bronze import connect
from trakt_nb.config import load_settings
from trakt_nb.land.ingest import ingest
from trakt_nb.model import build as model
from trakt_nb.model.marts import MARTS
from trakt_nb.model.gold_tables import GOLD_TABLES
from trakt_nb.model.build import build_gold, build_model
from trakt_nb.land.store import DuckFileStore
from trakt_nb.source.replay_world import WorldSpec, get_world, to_epoch
from trakt_nb.source.replay_as_of import likes_as_of

REPLAY = {"seed": 5, "movies": 4, "shows": 3, "users": 300, "comments_per_title": 300}
EVENT_TABLES = ("stg_trakt__comment_event", "stg_trakt__comment_event_history")
GOLD_KEYS = {"mart_half_life_cohort_trend": ["as_of_date", "cohort"], "fct_title_daily_engagement": ["as_of_date", "title_kind", "title_id_trakt", "day"]}
D1, D2 = dt.date(2026, 7, 8), dt.date(2026, 7, 11)  # D2 = D1 + 3; four comments of a show created by 07-08 are edited on 07-09 to 07-11


def _settings(folder: Path):
    return load_settings(env={}).replace(storage={"warehouse": Path(folder) / "w.duckdb"}, replay=REPLAY, titles={"trending_top_n": 3})


def _day(s, d: dt.date, **kw):
    "Ingest `d` then model it."
    ingest(s, d, in_process=True, progress=False)
    return build_model(s, d, **kw)


def _df(con, sql: str) -> pd.DataFrame: return con.sql(sql).df()


def _gold(con, name: str, as_of: dt.date) -> pd.DataFrame:
    "The rows of one gold table for one as-of date, in key order."
    keys = GOLD_KEYS.get(name, ["as_of_date", "title_kind", "title_id_trakt"])
    return _df(con, f"SELECT * FROM gold.{name} WHERE as_of_date = DATE '{as_of}' ORDER BY {', '.join(keys)}").reset_index(drop=True)


def _assert_gold_equal(a: pd.DataFrame, b: pd.DataFrame, what: str):
    assert len(a) > 0, f"{what}: no rows to compare"
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-9, obj=what)


def _hashes(con, digits: int | None = 9) -> dict:
    "Row count and an order-free content hash of every silver and gold table (floats rounded to `digits` decimals; None: exact)."
    tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('silver', 'gold') "
                         "AND table_type = 'BASE TABLE' ORDER BY ALL").fetchall()
    out = {}
    for sch, t in tables:
        cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
                           "ORDER BY ordinal_position", [sch, t]).fetchall()
        sel = ", ".join(f'round("{c}", {digits}) AS "{c}"' if digits is not None and ty in ("DOUBLE", "FLOAT") else f'"{c}"' for c, ty in cols)
        out[f"{sch}.{t}"] = con.execute(f"SELECT count(*), sum(hash(x)::HUGEINT), bit_xor(hash(x)) FROM (SELECT {sel} FROM {sch}.{t}) x").fetchone()
    return out


# --- incremental == full refresh -------------------------------------------------------------------------------------

run_dates = st.lists(st.integers(1, 31), min_size=2, max_size=5, unique=True).map(lambda xs: [dt.date(2026, 7, x) for x in sorted(xs)])


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(run_dates)
def test_incremental_equals_full_refresh(dates):
    paths, fact_since = [], model.fact_since
    def since(con, as_of):
        paths.append((as_of, fact_since(con, as_of)))
        return paths[-1][1]
    with tempfile.TemporaryDirectory() as tmp, mock.patch("trakt_nb.model.build.fact_since", since):
        s = _settings(tmp)
        for d in dates: _day(s, d)
        # the first day computes the fact in full; every later day brings it up to date in place from the day before
        assert paths == [(dates[0], None), *zip(dates[1:], dates[:-1])], paths
        con = connect(s, read_only=True)
        silver = {t: _df(con, f"SELECT * FROM silver.{t} ORDER BY ALL") for t in EVENT_TABLES}
        gold = {(n, d): _gold(con, n, d) for n in MARTS for d in dates}
        fact = _gold(con, "fct_title_daily_engagement", dates[-1])
        con.close()
        assert silver["stg_trakt__comment_event"].comment_id.is_unique
        assert len(silver["stg_trakt__comment_event_history"]) > len(silver["stg_trakt__comment_event"])  # several days of versions

        build_model(s, dates[-1], full_refresh=True)
        con = connect(s)
        try:
            for t in EVENT_TABLES:
                pd.testing.assert_frame_equal(silver[t], _df(con, f"SELECT * FROM silver.{t} ORDER BY ALL"), obj=f"silver.{t} {dates}")
            for d in dates[:-1]: build_gold(DuckFileStore(con), d, s)
            for (n, d), before in gold.items():
                if n == "mart_title_rating_trend" and before.empty: continue  # no snapshot yet: nothing to compare
                _assert_gold_equal(before, _gold(con, n, d), f"gold.{n} as of {d} ({dates})")
            _assert_gold_equal(fact, _gold(con, "fct_title_daily_engagement", dates[-1]), f"gold.fct_title_daily_engagement ({dates})")
        finally:
            con.close()


# --- one warehouse with D1 and D1 + 3 --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_days():
    "A warehouse ingested and modeled on D1 then D2, with D1's gold as it was computed on D1."
    with tempfile.TemporaryDirectory() as tmp:
        s = _settings(tmp)
        _day(s, D1)
        con = connect(s, read_only=True)
        gold_d1 = {n: _gold(con, n, D1) for n in MARTS} | {"fct_title_daily_engagement": _gold(con, "fct_title_daily_engagement", D1)}
        con.close()
        _day(s, D2)
        yield s, gold_d1


@pytest.mark.slow
def test_same_date_twice_changes_nothing(two_days, tmp_path):
    s0, _ = two_days
    shutil.copy(s0.storage.warehouse, tmp_path / "w.duckdb")
    s = _settings(tmp_path)
    con = connect(s, read_only=True)
    before = _hashes(con)
    con.close()
    assert {"silver.stg_trakt__comment_event", "silver.stg_trakt__comment_event_history", "silver.dim_title",
            "gold.fct_title_daily_engagement", *(f"gold.{m}" for m in MARTS)} <= set(before)
    assert ingest(s, D2, in_process=True, progress=False).status == "skipped"  # the day is already in bronze
    m = build_model(s, D2)
    assert m.silver["loads"] == []  # nothing new from bronze
    build_model(s, D1)  # an earlier date again: its marts are replaced by the same rows, the fact keeps D2
    con = connect(s, read_only=True)
    after = _hashes(con)
    con.close()
    assert after == before  # floats to 1e-9: the decay fit is not bit-reproducible (test_decay_fit_does_not_depend_on_row_order)


@pytest.mark.slow
def test_stored_gold_tables_are_the_declared_columns(two_days):
    "The build stores every gold table with the columns GOLD_TABLES declares, in their order and types (the fact after an incremental day too)."
    con = connect(two_days[0], read_only=True)
    try:
        for table, cols in GOLD_TABLES.items():
            got = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema || '.' || table_name = $1 "
                              "ORDER BY ordinal_position", [table]).fetchall()
            assert got == list(cols.items()), table
    finally:
        con.close()


def test_hashes_see_a_change():
    "The content hash used above notices one changed value, and a float change only beyond its rounding when exact."
    import duckdb
    con = duckdb.connect()
    con.execute("CREATE SCHEMA silver; CREATE TABLE silver.t AS SELECT range AS a, range * 2 AS b, range / 3 AS f FROM range(100)")
    h, exact = _hashes(con), _hashes(con, None)
    con.execute("UPDATE silver.t SET f = f + 1e-15 WHERE a = 1")
    assert _hashes(con) == h and _hashes(con, None) != exact
    con.execute("UPDATE silver.t SET b = 3 WHERE a = 1")
    assert _hashes(con) != h


def test_decay_fit_does_not_depend_on_row_order():
    from trakt_nb.model.half_life import fit_titles
    for seed in range(5):
        r = np.random.default_rng(seed)
        t = (np.concatenate([r.exponential(10 / np.log(2), 300), r.uniform(0, 200, 50)]) * 86400).astype("int64") + 1_735_689_600
        w = pd.DataFrame({"title_kind": "movie", "title_id_trakt": 1, "created": t})
        as_of = dt.date(2025, 7, 20)
        pd.testing.assert_frame_equal(fit_titles(w, as_of), fit_titles(w.iloc[::-1], as_of), check_exact=True, obj=f"seed {seed}")


@pytest.mark.slow
def test_edits_and_growing_likes_reach_silver(two_days):
    s, _ = two_days
    w = get_world(WorldSpec.from_settings(s))
    con = connect(s, read_only=True)
    try:
        hist = _df(con, "SELECT * FROM silver.stg_trakt__comment_event_history ORDER BY comment_id, seen_date")
        cur = _df(con, "SELECT * FROM silver.stg_trakt__comment_event").set_index("comment_id")
    finally:
        con.close()
    t1, t2 = to_epoch(D1), to_epoch(D2)
    P1, P2 = pd.Timestamp(D1), pd.Timestamp(D2)  # dates as pandas reads them
    # a comment created before D1 and edited between D1 and D2
    c = w.c
    edited = [int(c["id"][r]) for r in np.flatnonzero((c["created"] <= t1) & (c["edit_at"] > t1) & (c["edit_at"] <= t2) & ~c["hidden"])]
    edited = [i for i in edited if i in set(hist.comment_id)]
    assert edited, "the world has a followed comment edited between the two run dates"
    for cid in edited:
        r = w.row_of(cid)
        h = hist[hist.comment_id == cid].set_index("seen_date")
        v1, v2 = h.loc[P1], h.loc[P2]
        assert v1.updated_at == v1.created_at and v2.updated_at == pd.Timestamp(int(c["edit_at"][r]), unit="s", tz="UTC")
        assert len(v2.comment_text) > len(v1.comment_text) and v2.word_count > v1.word_count
        now = cur.loc[cid]
        assert (now.updated_at, now.comment_text, now.word_count, now.seen_date) == (v2.updated_at, v2.comment_text, v2.word_count, P2)
        assert now.first_seen_at < now.last_seen_at and now.first_seen_at == v1.fetched_at
    # likes: every comment seen on both days carries the world's likes of each day, and the current row the later ones
    both = hist.pivot_table(index="comment_id", columns="seen_date", values="likes").dropna()
    rows = np.array([w.row_of(int(i)) for i in both.index])
    np.testing.assert_array_equal(both[P1].to_numpy(), likes_as_of(w, rows, t1))
    np.testing.assert_array_equal(both[P2].to_numpy(), likes_as_of(w, rows, t2))
    grew = both[both[P2] > both[P1]]
    assert len(grew) >= 3, f"only {len(grew)} comments gained likes between the two days"
    assert (cur.loc[grew.index, "likes"].to_numpy() == grew[P2].to_numpy()).all()
    # a late comment: created after D1, present only in the D2 version, and in the current table
    late = hist.groupby("comment_id").seen_date.min()
    late = late[late == P2].index
    assert len(late) > 0 and cur.loc[late, "created_at"].min() > pd.Timestamp(D1, tz="UTC")


@pytest.mark.slow
def test_gold_for_a_day_is_reproducible_later(two_days):
    s, gold_d1 = two_days
    con = connect(s)
    try:
        # D2's data really differs for D1's comments: the current versions carry more likes than D1 knew
        grown = con.execute(f"""SELECT sum(c.likes) - sum(h.likes) FROM silver.stg_trakt__comment_event c
            JOIN silver.stg_trakt__comment_event_history h ON h.comment_id = c.comment_id AND h.seen_date = DATE '{D1}'""").fetchone()[0]
        assert grown > 0
        for n in MARTS:  # as stored, after D2's run
            if n == "mart_title_rating_trend" and gold_d1[n].empty: continue
            _assert_gold_equal(gold_d1[n], _gold(con, n, D1), f"stored gold.{n} as of {D1}")
        counts = build_gold(DuckFileStore(con), D1, s)  # recomputed now
        assert counts["mart_title_quadrant"] == len(gold_d1["mart_title_quadrant"])
        for n in MARTS:
            if n == "mart_title_rating_trend" and gold_d1[n].empty: continue
            _assert_gold_equal(gold_d1[n], _gold(con, n, D1), f"recomputed gold.{n} as of {D1}")
        assert con.execute("SELECT max(as_of_date) FROM gold.fct_title_daily_engagement").fetchone()[0] == D2  # the fact keeps the newest day
    finally:
        con.close()


@pytest.mark.slow
def test_query_as_of_an_earlier_day_equals_that_days_fact(two_days):
    "The fact is stored as of its newest day; the semantic layer computes an earlier as-of from silver history, equal to what that day's run stored."
    from trakt_nb.model.semantic import query
    s, gold_d1 = two_days
    con = connect(s, read_only=True)
    try:
        assert con.execute("SELECT DISTINCT as_of_date FROM gold.fct_title_daily_engagement").fetchall() == [(D2,)]
        by = ["title_kind", "title_id_trakt", "day"]
        got = query(con, ["comments", "likes", "replies_received", "user_ratings"], by=by, as_of=D1).to_pandas()
        want = gold_d1["fct_title_daily_engagement"]
        assert len(got) == len(want) > 0
        got = got.sort_values(by).reset_index(drop=True)
        assert got.comments.tolist() == want.comments.tolist() and got.likes.tolist() == want.likes.tolist()
        assert got.replies_received.tolist() == want.replies_received.tolist()
        assert got.user_ratings.tolist() == want.rating_count.tolist()
        now = query(con, ["likes"], as_of=D2).to_pandas().likes[0]
        assert now > want.likes.sum()  # the newest as-of really differs: likes grew after D1
    finally:
        con.close()

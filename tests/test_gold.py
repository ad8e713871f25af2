"""Gold layer: properties on random small event tables (hypothesis), and every gold function on a real DuckDB file."""
import datetime as dt
import math

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trakt_nb.model.gold import daily_engagement, half_life, half_life_cohort_trend, hold_up, quadrant, rating_trend
from trakt_nb.model.engagement import events_memtable
from trakt_nb.config import load_settings
from trakt_nb.model.build import FACT
from trakt_nb.model.gold_tables import GOLD_TABLES
from trakt_nb.model.marts import gold_marts, half_life_of

BASE = dt.date(2025, 1, 1)
PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROPS_COSTLY = settings(PROPS, max_examples=12)  # the properties whose every example costs ~0.5-1 s of DuckDB queries
QUAD = {(True, True): "Phenomenon", (True, False): "Mainstream", (False, True): "Cult", (False, False): "Quiet"}

event = st.tuples(st.sampled_from(["movie", "show"]), st.integers(1, 3), st.integers(0, 60), st.sampled_from("abcde"),
                  st.booleans(), st.integers(0, 300), st.integers(0, 5), st.integers(0, 3),
                  st.one_of(st.none(), st.integers(1, 10)))
events_st = st.lists(event, min_size=1, max_size=40)


def _events(rows):
    "An events memtable and the same events as a DataFrame (with `day`) from the generated tuples."
    tuples = [(i + 1, 0 if not rep else 1, k, t, u, (dt.datetime.combine(BASE, dt.time(12)) + dt.timedelta(days=d)).isoformat(),
               w, w >= 200, False, lk, rp, r) for i, (k, t, d, u, rep, w, lk, rp, r) in enumerate(rows)]
    df = pd.DataFrame([dict(kind=k, title=t, day=BASE + dt.timedelta(days=d), user=u, reply=rep, likes=lk, replies=rp, rating=r)
                       for k, t, d, u, rep, w, lk, rp, r in rows])
    return events_memtable(tuples), df


def _none(x): return None if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA or x is pd.NaT else x


@PROPS
@given(events_st, st.integers(0, 70))
def test_daily_engagement_sums_and_zero_fill(rows, as_of_off):
    as_of = BASE + dt.timedelta(days=as_of_off)
    ev, df = _events(rows)
    de = daily_engagement(ev, as_of).to_pandas()
    seen = df[df.day <= as_of]
    assert de.comments.sum() == len(seen)
    assert de.likes.sum() == seen.likes.sum() and de.replies_received.sum() == seen.replies.sum()
    assert de.rating_count.sum() == seen.rating.notna().sum()
    assert (de.top_level_comments + de.replies_posted == de.comments).all()
    assert (de.distinct_commenters <= de.comments).all()
    assert (de.rating_mean.isna() == (de.rating_count == 0)).all()
    first = seen.groupby(["kind", "title"]).day.min()
    rows_per_title = de.groupby(["title_kind", "title_id_trakt"]).size()
    assert rows_per_title.to_dict() == {key: (as_of - d).days + 1 for key, d in first.items()}
    assert not de.duplicated(["title_kind", "title_id_trakt", "day"]).any()


@pytest.mark.slow
@PROPS_COSTLY
@given(events_st, st.integers(0, 70), st.integers(1, 4))
def test_quadrant_labels_follow_thresholds(rows, as_of_off, min_comments):
    as_of = BASE + dt.timedelta(days=as_of_off)
    ev, df = _events(rows)
    q = quadrant(daily_engagement(ev, as_of), as_of, window_days=14, min_comments=min_comments).to_pandas()
    w = df[(df.day <= as_of) & (df.day > as_of - dt.timedelta(days=14))]
    by_title = w.groupby(["kind", "title"]).size()
    for r in q.itertuples():
        assert r.comments_in_window == by_title.get((r.title_kind, r.title_id_trakt), 0)
        assert bool(r.eligible) == (r.comments_in_window >= min_comments)
        if not r.eligible:
            assert _none(r.quadrant) is None and _none(r.breadth_pct) is None
            continue
        assert r.quadrant == QUAD[(r.breadth >= r.breadth_threshold, r.intensity >= r.intensity_threshold)]
        assert 0 <= r.breadth_pct <= 1 and 0 <= r.intensity_pct <= 1
        assert r.intensity_lo <= r.intensity <= r.intensity_hi and 0 <= r.p_high_intensity <= 1 and 0 <= r.p_high_breadth <= 1
        assert bool(r.placement_certain) == (max(r.p_high_breadth, 1 - r.p_high_breadth) >= 0.9 and max(r.p_high_intensity, 1 - r.p_high_intensity) >= 0.9)
    assert not (q.moved & ~(q.placement_certain.fillna(False).astype(bool))).any()   # a move needs a certain placement
    for kind, g in q[q.eligible].groupby("title_kind"):   # thresholds are per-kind medians of eligible titles
        assert g.breadth_threshold.iloc[0] == pytest.approx(float(np.median(g.breadth)))
        assert g.intensity_threshold.iloc[0] == pytest.approx(float(np.median(g.intensity)))


@pytest.mark.slow
@PROPS
@given(events_st, st.integers(20, 70), st.integers(3, 15))
def test_half_lives_are_positive_with_intervals_or_null(rows, as_of_off, min_comments):
    as_of = BASE + dt.timedelta(days=as_of_off)
    ev, df = _events(rows)
    hl = half_life(ev, as_of, min_comments=min_comments, min_days=7).to_pandas()
    top = df[~df.reply & (df.day <= as_of)]
    assert len(hl) == top.groupby(["kind", "title"]).ngroups  # one row per title with a top-level comment
    for r in hl.itertuples():
        assert r.fit_status in ("ok", "insufficient_data", "poor_fit", "no_decay")
        est = [_none(v) for v in (r.burst_half_life_days, r.burst_half_life_days_lo, r.burst_half_life_days_hi,
                                  r.background_per_day, r.background_per_day_lo, r.background_per_day_hi)]
        if r.fit_status != "ok": assert all(v is None for v in est)
        else:
            h, lo, hi, b, blo, bhi = est
            assert 0 < lo <= h <= hi and math.isfinite(hi) and 0 <= blo <= b <= bhi
        if r.top_level_comments < min_comments: assert r.fit_status == "insufficient_data"
    trend = half_life_cohort_trend(ibis.memtable(hl)).to_pandas()
    assert trend.titles.sum() == len(hl)


@PROPS_COSTLY
@given(events_st, st.integers(0, 70))
def test_hold_up_needs_an_ok_fit(rows, as_of_off):
    as_of = BASE + dt.timedelta(days=as_of_off)
    ev, _ = _events(rows)
    hl = half_life(ev, as_of, min_comments=3, min_days=1)
    hu = hold_up(daily_engagement(ev, as_of), hl, as_of, min_ratings=2).to_pandas()
    for r in hu.itertuples():
        if r.fit_status != "ok": assert _none(r.long_tail) is None and _none(r.rating_drift) is None
        assert bool(r.qualifies) == (_none(r.long_tail) is not None)
        assert (_none(r.holds_up) is None) == (not r.qualifies)
        if _none(r.rating_drift) is not None: assert r.rating_drift_lo <= r.rating_drift <= r.rating_drift_hi


snapshot = st.tuples(st.sampled_from(["movie", "show"]), st.integers(1, 2), st.integers(0, 40),
                     st.floats(1, 10, allow_nan=False), st.lists(st.integers(0, 20), min_size=10, max_size=10))


@PROPS
@given(st.lists(snapshot, min_size=1, max_size=20), st.integers(0, 45))
def test_rating_trend_changes_need_a_baseline(snaps, as_of_off):
    as_of = BASE + dt.timedelta(days=as_of_off)
    df = pd.DataFrame([dict(title_kind=k, title_id_trakt=t, snapshot_date=BASE + dt.timedelta(days=d),
                            fetched_at=pd.Timestamp(BASE + dt.timedelta(days=d), tz="UTC") + pd.Timedelta(seconds=i),
                            rating=r, votes=sum(dist), **{f"dist_{j + 1}": v for j, v in enumerate(dist)})
                       for i, (k, t, d, r, dist) in enumerate(snaps)])
    rt = rating_trend(ibis.memtable(df), as_of).to_pandas()
    for r in rt.itertuples():
        mine = df[(df.title_kind == r.title_kind) & (df.title_id_trakt == r.title_id_trakt)]
        for days, change in ((7, r.rating_change_7d), (28, r.rating_change_28d)):
            has_base = (mine.snapshot_date <= as_of - dt.timedelta(days=days)).any()
            assert (_none(change) is not None) == has_base
        for share in (r.share_9_10, r.share_1_3):
            assert _none(share) is None or 0 <= share <= 1
    assert len(rt) == df[df.snapshot_date <= as_of].groupby(["title_kind", "title_id_trakt"]).ngroups


def test_gold_runs_on_a_duckdb_file(tmp_path):
    "Each gold function on tables of a DuckDB file gives what it gives on memtables, and its compiled SQL runs there."
    rows = [("movie", 1, d % 50, "abcde"[d % 5], d % 3 == 0, 50, d % 4, d % 2, (d % 10) + 1 if d % 2 else None)
            for d in range(0, 400, 3)] + [("show", 2, d, "ab"[d % 2], False, 10, 1, 0, 7) for d in range(0, 60, 2)]
    ev, _ = _events(rows)
    rd = pd.DataFrame([dict(title_kind="movie", title_id_trakt=1, snapshot_date=BASE + dt.timedelta(days=d),
                            fetched_at=pd.Timestamp(BASE + dt.timedelta(days=d), tz="UTC"), rating=7 + d / 100, votes=10 + d,
                            **{f"dist_{j}": j + d for j in range(1, 11)}) for d in range(0, 60, 5)])
    path = tmp_path / "gold.duckdb"
    as_of = BASE + dt.timedelta(days=59)
    con = ibis.duckdb.connect(str(path))
    con.create_table("events", ev.to_pyarrow())
    con.create_table("rating_dist", rd)
    eng = daily_engagement(con.table("events"), as_of)
    con.create_table("engagement", eng)
    e = con.table("engagement")
    pairs = {
        "daily_engagement": (eng, daily_engagement(ev, as_of)),
        "quadrant": (quadrant(e, as_of), quadrant(daily_engagement(ev, as_of), as_of)),
        "half_life": (half_life(con.table("events"), as_of, min_comments=5, min_days=7), half_life(ev, as_of, min_comments=5, min_days=7)),
        "rating_trend": (rating_trend(con.table("rating_dist"), as_of), rating_trend(ibis.memtable(rd), as_of)),
    }
    con.create_table("half_life", pairs["half_life"][0])
    pairs["hold_up"] = (hold_up(e, con.table("half_life"), as_of), hold_up(daily_engagement(ev, as_of), pairs["half_life"][1], as_of))
    for name, (on_file, on_memtable) in pairs.items():
        got, want = on_file.to_pandas(), on_memtable.to_pandas()
        assert len(got) > 0, name
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=name)
    hl = pairs["half_life"][0].to_pandas()
    assert hl.fit_status.notna().all() and hl.title_id_trakt.tolist() == [2]  # the movie's comments are all replies: no fit
    trend = half_life_cohort_trend(con.table("half_life")).to_pandas()
    assert trend.titles.sum() == 1 and trend.cohort.tolist() == ["2025"]
    con.disconnect()
    raw = duckdb.connect(str(path), read_only=True)          # the compiled SQL (no memtables in it) runs on the file as is
    for name in ["hold_up", "rating_trend"]:                 # (quadrant and half_life carry their Python fits as memtables)
        sql = ibis.to_sql(pairs[name][0], dialect="duckdb")
        assert len(raw.sql(sql).fetchall()) == len(pairs[name][1].to_pandas()), name
    raw.close()



def _stored_columns(con, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    return con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
                       "ORDER BY ordinal_position", [schema, name]).fetchall()


def test_gold_outputs_are_the_declared_columns(tmp_path):
    "What the gold functions store — the marts of `gold_marts` and the fact as the build adds its as-of date — is GOLD_TABLES: each column's name, place and type."
    burst = [int(-8 * math.log(1 - (i + 0.5) / 150)) for i in range(150)] + [20 + 3 * i for i in range(12)]  # a decay, then a background
    rows = [("movie", 1, d % 50, "abcde"[d % 5], d % 4 == 0, 50, d % 4, d % 2, (d % 10) + 1 if d % 2 else None) for d in range(0, 400, 3)] + \
           [("show", 2, d, "abcdefg"[i % 7], False, 10, i % 3, i % 2, 7) for i, d in enumerate(burst)]
    ev, _ = _events(rows)
    as_of = BASE + dt.timedelta(days=59)
    rd = pd.DataFrame([dict(title_kind="movie", title_id_trakt=1, snapshot_date=BASE + dt.timedelta(days=d), fetched_at=pd.Timestamp(BASE + dt.timedelta(days=d), tz="UTC"),
                            rating=7 + d / 100, votes=10 + d, **{f"dist_{j}": j + d for j in range(1, 11)}) for d in range(0, 60, 5)])
    m = load_settings(env={}).replace(metrics={"quadrant_min_comments": 5, "half_life_min_comments": 20, "half_life_min_days": 14}).metrics
    b = ibis.duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    events = b.create_table("events", ev.to_pyarrow())
    eng = b.create_table("engagement", daily_engagement(events, as_of))
    hl = b.create_table("half_life", half_life_of(events, None, as_of, m))
    stored = {FACT: eng.mutate(as_of_date=ibis.literal(as_of, type="date")), **gold_marts(eng, events, hl, ibis.memtable(rd), as_of, m)}
    b.raw_sql("CREATE SCHEMA gold")
    for name, expr in stored.items():
        b.create_table(name, expr, database="gold")
    assert sorted(f"gold.{n}" for n in stored) == sorted(GOLD_TABLES)
    con = b.con
    assert con.execute("SELECT count(*) FROM gold.mart_title_half_life WHERE fit_status = 'ok'").fetchone()[0] >= 1  # real rows, not empty tables
    assert con.execute("SELECT count(*) FROM gold.mart_title_quadrant WHERE eligible").fetchone()[0] == 2
    for table, cols in GOLD_TABLES.items():
        assert _stored_columns(con, table) == list(cols.items()), table
    b.disconnect()


# comment versions: (title, created day, user, likes on each seen day, days after creation it was first seen, days between sightings, edit)
version = st.tuples(st.integers(1, 3), st.integers(0, 20), st.sampled_from("abcd"), st.lists(st.integers(0, 9), min_size=1, max_size=3),
                    st.integers(0, 12), st.integers(1, 4), st.booleans())


def _history(comments) -> ibis.Table:
    "A silver comment history (the columns gold reads) from generated comments: one row per comment and day it was seen."
    rows = []
    for cid, (title, day, user, likes, late, gap, edited) in enumerate(comments, 1):
        created = dt.datetime.combine(BASE + dt.timedelta(days=day), dt.time(10), dt.timezone.utc)
        for k, lk in enumerate(likes):
            seen = BASE + dt.timedelta(days=day + late + k * gap)
            rows.append(dict(comment_id=cid, is_reply=cid % 4 == 0, title_kind="movie" if title < 3 else "show", title_id_trakt=title,
                             user_slug=user, created_at=created, updated_at=created + dt.timedelta(hours=k if edited else 0),
                             created_date=created.date(), word_count=5 + k, is_review=False, is_spoiler=k == 2, likes=lk, replies=k,
                             user_rating=lk if lk > 3 else None, seen_date=seen,
                             fetched_at=dt.datetime.combine(seen + dt.timedelta(days=1), dt.time(6), dt.timezone.utc)))
    schema = {"comment_id": "int64", "is_reply": "boolean", "title_kind": "string", "title_id_trakt": "int64", "user_slug": "string",
              "created_at": "timestamp('UTC')", "updated_at": "timestamp('UTC')", "created_date": "date", "word_count": "int32",
              "is_review": "boolean", "is_spoiler": "boolean", "likes": "int64", "replies": "int64", "user_rating": "int32",
              "seen_date": "date", "fetched_at": "timestamp('UTC')"}
    return ibis.memtable(pd.DataFrame(rows), schema=schema)


@pytest.mark.slow
@PROPS_COSTLY
@given(st.lists(version, min_size=1, max_size=25), st.integers(0, 30), st.integers(0, 8))
def test_engagement_changes_bring_the_fact_up_to_date(comments, since_off, days):
    "The series as of `since` with `engagement_changes` applied equals the series computed in full as of a later day: late, edited and new comments, new titles, moved first days."
    from trakt_nb.model.engagement import apply_engagement_changes, engagement_changes
    from trakt_nb.model.silver import comment_events_as_of
    hist = _history(comments)
    since, as_of = BASE + dt.timedelta(days=since_off), BASE + dt.timedelta(days=since_off + days)
    prev = daily_engagement(comment_events_as_of(hist, since), since)
    prev = ibis.memtable(prev.to_pyarrow())  # stored, as the warehouse holds it
    changes = engagement_changes(prev, hist, since, as_of)
    got = apply_engagement_changes(prev, changes).to_pandas()
    want = daily_engagement(comment_events_as_of(hist, as_of), as_of).to_pandas()
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

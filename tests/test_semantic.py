"""Semantic layer: every governed metric compiles, runs and gives the hand-computed value on the demo warehouse;
the `metrics` views equal `query`; metrics.yml is well formed; the grammar never runs arbitrary text."""
import datetime as dt
import math

import duckdb
import ibis
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from trakt_nb.config import UserError
from trakt_nb.model.demo_gold import write_demo_gold
from trakt_nb.model.gold_tables import GOLD_TABLES
from trakt_nb.model.metric_catalogue import METRICS_PATH, catalogue_table, format_value, load_metrics
from trakt_nb.model.metric_grammar import ExpressionError, parse_expression, parse_predicate
from trakt_nb.model.periods import period
from trakt_nb.model.semantic import create_metric_views, query

CAT = load_metrics()
LATEST, EARLIER = dt.date(2026, 11, 20), dt.date(2026, 11, 13)

# Each metric over the whole demo warehouse at the latest as-of date, computed by hand from the rows of
# trakt_nb.model.demo_gold._DEMO_ROWS (see the comments there for column order).
EXPECTED = {
    "comments": 3 + 2 + 0 + 4 + 1 + 5 + 0 + 1,
    "top_level_comments": 2 + 2 + 0 + 3 + 1 + 4 + 0 + 1,
    "replies_posted": 1 + 1 + 1,
    "reviews": 1 + 2,
    "spoilers": 1 + 2 + 1,
    "spoiler_share": 4 / 16,
    "likes": 5 + 1 + 2 + 10,
    "replies_received": 1 + 1 + 1,
    "words": 300 + 40 + 80 + 10 + 500 + 20,
    "words_per_comment": 950 / 16,
    "user_ratings": 2 + 1 + 1 + 3,
    "mean_user_rating": (17 + 8 + 6 + 27) / 7,
    "breadth": 4.5,               # median of 5, 4, 5, 1
    "intensity": 0.9,             # median of 1.2, 0.6, 1.8, 0.0
    "quadrant_titles": 3,         # show 3 is not eligible
    "intensity_lo": 0.6,          # median of 0.9, 0.3, 1.5, 0.0
    "intensity_hi": 1.8,          # median of 1.6, 1.0, 2.2, 2.0
    "uncertain_placements": 1,    # movie 2 (show 3 is not eligible)
    "quadrant_movers": 1,         # both movies changed quadrant, but movie 2's placement is not certain; show 1 has no previous quadrant
    "burst_half_life": 12.0,      # median of the ok fits 12, 4, 20 (show 3 is insufficient_data)
    "background_rate": 0.2,       # median of 0.2, 0.0, 0.5
    "decay_fits": 3,
    "hold_up_titles": 3,          # long tail known for movie 1, movie 2, show 1
    "rating_drift": (-0.2 - 1.0) / 2,
    "long_tail_share": 2 / 3,
    "holds_up_share": 1 / 3,
    "latest_rating": (8.0 * 100 + 6.0 * 300 + 9.0 * 50) / 450,
    "votes": 450,
    "rating_change_7d": (0.1 - 0.2 + 0.0) / 3,
    "rating_change_28d": (0.3 - 0.1) / 2,
    "votes_change_7d": 5 + 10 + 2,
    "votes_change_28d": 20 + 4,
    "share_9_10": (0.5 * 100 + 0.2 * 300 + 0.8 * 50) / 450,
    "share_1_3": (0.1 * 100 + 0.3 * 300 + 0.02 * 50) / 450,
}
# non-additive metrics are checked at their required grain: the sum of the per title-day values
EXPECTED_AT_GRAIN = {"distinct_commenters": 3 + 2 + 0 + 3 + 1 + 4 + 0 + 1}


@pytest.fixture(scope="module")
def demo():
    con = write_demo_gold(duckdb.connect(":memory:"))
    yield con
    con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    "A warehouse file holding the demo gold tables and the metrics views."
    path = tmp_path_factory.mktemp("semantic") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        write_demo_gold(con)
        create_metric_views(con)
    return path


def close(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)): return b is None or (isinstance(b, float) and math.isnan(b))
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def test_yml_names_are_unique_and_complete():
    raw = yaml.safe_load(METRICS_PATH.read_text())
    names = [m["name"] for m in raw["metrics"]]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    assert set(names) == set(CAT.metrics)
    # every metric has a hand-computed value in this file
    assert set(names) == set(EXPECTED) | set(EXPECTED_AT_GRAIN)


def test_yml_rejects_a_duplicate(tmp_path):
    p = tmp_path / "metrics.yml"
    text = METRICS_PATH.read_text()
    first = text.index("  - name: comments\n")
    p.write_text(text + text[first:text.index("  - name: top_level_comments\n")])
    with pytest.raises(UserError, match="'comments' in metrics.yml is defined twice"):
        load_metrics(p)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metric_total_matches_hand_value(demo, name):
    got = query(demo, [name]).to_pandas()
    assert list(got.columns) == [name] and len(got) == 1
    assert close(got[name][0], EXPECTED[name]), (name, got[name][0], EXPECTED[name])


def test_non_additive_metric_at_its_grain(demo):
    m = CAT["distinct_commenters"]
    got = query(demo, ["distinct_commenters"], by=list(m.requires)).to_pandas()
    assert got.distinct_commenters.sum() == EXPECTED_AT_GRAIN["distinct_commenters"]
    with pytest.raises(UserError, match="not additive"):
        query(demo, ["distinct_commenters"], by=["title_kind", "title_id_trakt"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CAT.metrics))
def test_metric_runs_by_each_dimension(demo, name):
    m = CAT[name]
    for d in m.dimensions:
        by = list(dict.fromkeys([*m.requires, d]))
        df = query(demo, [name], by=by).to_pandas()
        assert list(df.columns) == [*by, name]
        assert len(df) >= 1, (name, d)
        assert not df.duplicated(subset=by).any(), (name, by)  # one row per group
    df = query(demo, [name], by=list(m.grain), as_of=LATEST).to_pandas()
    assert len(df) >= 1


@pytest.mark.parametrize("name", sorted(CAT.metrics))
def test_view_equals_query(demo, warehouse, name):
    m = CAT[name]
    with duckdb.connect(str(warehouse), read_only=True) as plain:  # no Ibis, no trakt_nb: plain SQL
        view = plain.sql(f"SELECT * FROM metrics.{name}").df()
        dates = sorted(plain.sql(f"SELECT DISTINCT as_of_date FROM metrics.{name}").df().as_of_date.dt.date)
    assert list(view.columns) == [*m.grain, name]
    assert dates, name
    for d in dates:
        q = query(demo, [name], by=list(m.grain), as_of=d).to_pandas()
        v = view[view.as_of_date.dt.date == d].reset_index(drop=True)
        key = [g for g in m.grain if g != "as_of_date"]
        q = q.sort_values(key, na_position="last").reset_index(drop=True)
        v = v.sort_values(key, na_position="last").reset_index(drop=True)
        assert len(q) == len(v), (name, d)
        for c in key: assert q[c].astype(str).tolist() == v[c].astype(str).tolist(), (name, d, c)
        assert all(close(a, b) for a, b in zip(q[name], v[name])), (name, d)


def test_views_keep_every_as_of(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as plain:
        got = plain.sql("SELECT as_of_date, quadrant, quadrant_titles FROM metrics.quadrant_titles ORDER BY ALL").fetchall()
        catalogue = plain.sql("SELECT name, model FROM metrics.catalogue").df()
    assert got == [(EARLIER, "Cult", 1), (EARLIER, "Mainstream", 1), (LATEST, "Phenomenon", 1), (LATEST, "Phenomenon", 1), (LATEST, "Quiet", 1)]
    assert set(catalogue.name) == set(CAT.metrics)


def test_views_are_replaced_not_duplicated(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        views = create_metric_views(con)
        n = con.sql("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'metrics'").fetchone()[0]
    assert n == len(views) == len(CAT)


def test_as_of_selects_that_days_rows(demo):
    assert query(demo, ["quadrant_titles"], as_of=EARLIER).to_pandas().quadrant_titles[0] == 2
    assert query(demo, ["quadrant_titles"], as_of="2026-11-20").to_pandas().quadrant_titles[0] == 3
    with pytest.raises(UserError, match="has no rows as of 2026-01-01; ask for one of its as-of dates 2026-11-13, 2026-11-20"):
        query(demo, ["quadrant_titles"], by=["quadrant"], as_of="2026-01-01")  # not an empty table


def test_metrics_of_several_models(demo):
    df = query(demo, ["comments", "breadth", "holds_up_share", "latest_rating"], by=["title_kind", "title_id_trakt"]).to_pandas()
    rows = {(r.title_kind, r.title_id_trakt): r for r in df.itertuples()}
    assert set(rows) == {("movie", 1), ("movie", 2), ("show", 1), ("show", 3)}
    assert rows["movie", 1].comments == 5 and rows["movie", 1].breadth == 5 and rows["movie", 1].latest_rating == 8.0
    assert rows["show", 1].comments == 6 and rows["show", 1].holds_up_share == 0.0
    assert pd.isna(rows["show", 3].comments) and pd.isna(rows["show", 3].holds_up_share)  # no fact rows; not qualifying
    with pytest.raises(UserError, match=r"cannot be combined by day: their grains differ"):
        query(demo, ["comments", "breadth"], by=["day"])


def test_title_dimensions_join_dim_title(demo):
    df = query(demo, ["comments"], by=["year"]).to_pandas()
    assert dict(zip(df.year, df.comments)) == {2023: 6, 2024: 5, 2025: 5}
    df = query(demo, ["votes"], by=["genre"], where={"title_kind": "movie"}).to_pandas()
    assert dict(zip(df.genre, df.votes)) == {"comedy": 300, "drama": 100, "thriller": 100}
    # ids are per kind: movie 1 and show 1 are different titles
    df = query(demo, ["comments"], by=["title"], where={"title_id_trakt": 1}).to_pandas()
    assert dict(zip(df.title, df.comments)) == {"Alpha": 5, "Gamma": 6}


@pytest.mark.parametrize("call, message", [
    (lambda c: query(c, ["nope"]), "There is no metric 'nope'"),
    (lambda c: query(c, []), "No metrics asked for"),
    (lambda c: query(c, ["breadth"], by=["day"]), "Metric breadth cannot be grouped or filtered by day"),
    (lambda c: query(c, ["comments"], by=["colour"]), "There is no dimension 'colour'"),
    (lambda c: query(c, ["comments"], where={"quadrant": "Cult"}), "Metric comments cannot be grouped or filtered by quadrant"),
    (lambda c: query(c, ["comments"], by=["day", "day"]), "repeats a dimension"),
    (lambda c: query(c, ["comments"], as_of="yesterday"), "is not a date"),
])
def test_user_errors_are_one_sentence(demo, call, message):
    with pytest.raises(UserError) as e:
        call(demo)
    text = str(e.value)
    assert message in text and text.count(". ") == 0 and "\n" not in text


def test_missing_gold_table_is_a_user_error():
    with pytest.raises(UserError, match="no table gold.mart_title_quadrant; run `trakt-nb run`"):
        query(duckdb.connect(":memory:"), ["breadth"]).to_pandas()


def test_catalogue_table_and_formats():
    df = catalogue_table()
    assert len(df) == len(CAT) and df.name.is_unique
    assert df.set_index("name").loc["mean_user_rating", "expression"] == "sum(rating_sum) / sum(rating_count)"
    assert format_value("comments", 1234567) == "1,234,567"
    assert format_value("share_9_10", 0.2754) == "27.5%"
    assert format_value("burst_half_life", 9.96) == "10.0 days"
    assert format_value("mean_user_rating", None) == "n/a"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="sumeancotr_()'=<>!+-*/ .,;:01abx\"[]", max_size=40))
def test_grammar_rejects_or_parses_never_crashes(text):
    for parse in (parse_expression, parse_predicate):
        try: tree = parse(text)
        except ExpressionError: continue
        assert isinstance(tree, tuple)


def test_grammar_has_no_python_escape():
    for text in ["__import__('os').system('true')", "sum(comments).__class__", "eval('1')", "sum(comments)[0]", "lambda: 1"]:
        with pytest.raises(ExpressionError):
            parse_expression(text)


def test_catalogue_models_have_the_declared_gold_columns():
    for model, spec in CAT.models.items():
        assert spec["columns"] == list(GOLD_TABLES[model]), model
    raw = yaml.safe_load(METRICS_PATH.read_text())["models"]
    assert raw and not any("columns" in (spec or {}) for spec in raw.values())  # declared once, in GOLD_TABLES


# The gold modules produce the columns metrics.yml's models read (as tests/test_gold.py checks against GOLD_TABLES).
def _events():
    ge = pytest.importorskip("trakt_nb.model.engagement")
    rows = []
    start = dt.datetime(2026, 1, 1, 12)  # a burst in January, then a long tail into the quadrant window
    for i in range(120):
        day = start + dt.timedelta(days=i // 3 if i < 60 else 40 + (i - 60) * 5)
        rows.append((i + 1, 0 if i % 4 else max(i, 1), "movie", 7, f"u{i % 9}", day.isoformat(), 50 + i, i % 10 == 0,
                     i % 7 == 0, i % 5, i % 3, (i % 10) + 1 if i % 2 else None))
    # a second movie with a clear 10-day burst over a small background, so that its decay fit is ok
    import numpy as np
    r = np.random.default_rng(0)
    for j, d in enumerate(np.concatenate([r.exponential(10 / np.log(2), 300), r.uniform(0, 300, 60)])):
        day = (start + dt.timedelta(days=float(d))).replace(microsecond=0)
        rows.append((1000 + j, 0, "movie", 8, f"v{j % 40}", day.isoformat(), 30, False, False, j % 4, 0, (j % 10) + 1))
    return ge, ge.events_memtable(rows)


def test_gold_outputs_have_the_columns_metrics_read():
    ge, events = _events()
    as_of = dt.date(2026, 11, 20)
    eng = ge.daily_engagement(events, as_of).mutate(as_of_date=ibis.literal(as_of))
    outputs = {"gold.fct_title_daily_engagement": eng}
    from trakt_nb.model.quadrant import quadrant
    from trakt_nb.model.half_life import half_life
    from trakt_nb.model.hold_up import hold_up
    outputs["gold.mart_title_quadrant"] = quadrant(eng, as_of)
    outputs["gold.mart_title_half_life"] = hl = half_life(events, as_of, min_comments=3, min_days=1)
    outputs["gold.mart_title_hold_up"] = hold_up(eng, hl, as_of)
    con = duckdb.connect(":memory:")
    con.execute("CREATE SCHEMA gold")
    for model, t in outputs.items():
        missing = set(CAT.models[model]["columns"]) - set(t.columns)
        assert not missing, (model, missing)
        con.register("_t", t.to_pyarrow())
        con.execute(f"CREATE TABLE {model} AS SELECT * FROM _t")
        con.unregister("_t")
    for m in CAT:
        if m.model in outputs:
            df = query(con, [m.name], by=list(m.grain)).to_pandas()
            assert len(df) >= 1, m.name


def test_views_work_when_the_warehouse_is_attached_under_another_name(warehouse):
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{warehouse}' AS elsewhere (READ_ONLY)")
        got = con.sql("SELECT title_kind, sum(comments) FROM elsewhere.metrics.comments GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("movie", 10), ("show", 6)]


# --- periods, period-over-period, as-of and typed filters -----------------------------------------------------------

@pytest.mark.parametrize("kw, days", [
    (dict(between=("2026-11-18", "2026-11-19")), {"2026-11-18", "2026-11-19"}),
    (dict(between=(dt.date(2026, 11, 19), "2026-11-20")), {"2026-11-19", "2026-11-20"}),
    (dict(last_days=2), {"2026-11-19", "2026-11-20"}),          # ends on the fact's as-of date
    (dict(month="2026-11"), {"2026-11-18", "2026-11-19", "2026-11-20"}),
    (dict(week="2026-W47"), {"2026-11-18", "2026-11-19", "2026-11-20"}),  # Mon 16 … Sun 22 November
    (dict(month="2026-10"), set()),
    (dict(where={"day": ("2026-11-20", "2026-11-20")}), {"2026-11-20"}),
])
def test_period_keeps_its_days(demo, kw, days):
    got = query(demo, ["comments"], by=["day"], **kw).to_pandas()
    assert {str(d)[:10] for d in got.day} == days
    per_day = {"2026-11-18": 8, "2026-11-19": 6, "2026-11-20": 2}
    total = query(demo, ["comments"], **kw).to_pandas().comments[0]
    assert (0 if pd.isna(total) else total) == sum(per_day[d] for d in days)


def test_compare_gives_delta_and_ratio_against_the_period_before(demo):
    df = query(demo, ["comments", "likes"], by=["title_kind"], last_days=1, compare=True).to_pandas().set_index("title_kind")
    # 20 Nov against 19 Nov: movies 0 + 1 against 2 + 4 comments, likes 0 + 0 against 1 + 2; shows 1 against 0
    assert df.loc["movie", ["comments", "comments_prev", "comments_delta"]].tolist() == [1, 6, -5]
    assert df.loc["movie", "comments_ratio"] == pytest.approx(1 / 6)
    assert df.loc["movie", ["likes", "likes_prev", "likes_delta", "likes_ratio"]].tolist() == [0, 3, -3, 0.0]
    assert df.loc["show", "comments_prev"] == 0 and pd.isna(df.loc["show", "comments_ratio"])  # nothing before: no ratio
    assert period(month="2026-12").previous() == period(month="2026-11")
    with pytest.raises(UserError, match="cannot group by day"):
        query(demo, ["comments"], by=["day"], last_days=2, compare=True)


def test_nulls_sort_last_both_ways(demo):
    for order in ("mean_user_rating", "-mean_user_rating"):
        df = query(demo, ["mean_user_rating"], by=["title"], between=("2026-11-19", "2026-11-20"), order_by=order).to_pandas()
        assert df.title.tolist()[-1] == "Gamma" and pd.isna(df.mean_user_rating.iloc[-1])
        assert df.title.tolist()[:2] == (["Beta", "Alpha"] if order[0] != "-" else ["Alpha", "Beta"])


@pytest.mark.parametrize("kw, message", [
    (dict(where={"day": ("2026-11-01", 30)}), "where day=30 is not a date"),
    (dict(where={"title_kind": "movies"}), "There is no title_kind 'movies' in gold.fct_title_daily_engagement; did you mean 'movie'?"),
    (dict(where={"title": 7}), "is not text"),
    (dict(where={"title_id_trakt": 1.5}), "is not a whole number"),
    (dict(between=("2026-11-20", "2026-11-01")), "after it ends"),
    (dict(month="November"), "not a calendar month"),
    (dict(last_days=-3), "positive whole number"),
    (dict(as_of="2026-12-01"), "known up to 2026-11-20"),
    (dict(as_of="2026-11-13"), "to compute it as of 2026-11-13"),
])
def test_bad_requests_are_one_sentence(demo, kw, message):
    with pytest.raises(UserError) as e:
        query(demo, ["comments"], **kw)
    assert message in str(e.value) and str(e.value).count(". ") == 0


def test_period_macros_equal_query(warehouse, demo):
    with duckdb.connect(str(warehouse), read_only=True) as plain:
        got = plain.sql("SELECT title, comments FROM metrics.comments_between('2026-11-18', '2026-11-19') ORDER BY title").fetchall()
        share = plain.sql("SELECT title, spoiler_share FROM metrics.spoiler_share_between('2026-11-18', '2026-11-20') ORDER BY title").fetchall()
    want = query(demo, ["comments"], by=["title"], between=("2026-11-18", "2026-11-19")).to_pandas()
    assert got == list(zip(want.title, want.comments)) == [("Alpha", 5), ("Beta", 4), ("Gamma", 5)]
    assert dict(share) == pytest.approx({"Alpha": 1 / 5, "Beta": 2 / 5, "Gamma": 1 / 6})

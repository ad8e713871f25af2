"""Data tests on a warehouse built by the real pipeline: clean days pass, the replay's missing_day fault raises the volume anomaly as an error, and the weekend/weekday swing of the replay world does not."""
import datetime as dt
import re
import shutil

import duckdb
import pytest

from trakt_nb.config import load_settings
from trakt_nb.land.ingest import ingest
from trakt_nb.model.build import build_model
from trakt_nb.model.quality import QualityFailed, check_day, failures, raise_for_errors, run_quality, weekday_profile, counts_by_day, load_tests, table_columns, where_clause

# seed 5 at 4,000 comments per title: about 100 new comments a day in late July 2026 over the followed titles, a window
# without a revival starting or fading in it (clean days must score |z| < 3; earlier July has one fading, z = -4.1)
WORLD = {"seed": 5, "movies": 4, "shows": 3, "users": 1000, "comments_per_title": 4000}
FIRST, DAYS = dt.date(2026, 7, 21), 15  # 2026-07-21 .. 2026-08-04, then 2026-08-05 (a Wednesday) clean or faulted
LAST = FIRST + dt.timedelta(days=DAYS - 1)
NEXT = LAST + dt.timedelta(days=1)


def _settings(root, **replay):
    # no deep refresh inside the 16 days (the default re-reads every title's comments weekly: 2 of the 16 ingests would cost
    # as much as the other 14); the new comments a day brings, which the volume test counts, are found by the daily crawl
    return load_settings(env={}).replace(storage={"warehouse": root / "w.duckdb", "state_dir": root / "state", "reports_dir": root / "reports"},
                                         replay={**WORLD, **replay}, titles={"trending_top_n": 3}, run={"deep_refresh_days": 30})


def _z(result) -> float:
    return float(re.search(r"z=(-?[\d.]+)", result.observed).group(1))


def _volume(con, day):
    return next(r for r in run_quality(con, day) if r.test == "new_comments_volume")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """15 consecutive clean days ingested, then modeled once as of the last: the day-by-day silver history the volume
    test reads is the one a daily run builds (test_model's incremental-equals-full-refresh), at one model run instead of 15."""
    root = tmp_path_factory.mktemp("quality")
    s = _settings(root)
    for i in range(DAYS):
        ingest(s, FIRST + dt.timedelta(days=i), in_process=True, progress=False)
    build_model(s, LAST)
    return root


def _next_day(built, tmp_path, faults=""):
    "A copy of the built warehouse with one more day ingested and modeled (with `faults` in the replay)."
    (tmp_path / "state").mkdir()
    shutil.copy(built / "w.duckdb", tmp_path / "w.duckdb")
    s = _settings(tmp_path, faults=faults)
    ingest(s, NEXT, in_process=True, progress=False)
    build_model(s, NEXT)
    return s


@pytest.mark.slow
def test_clean_days_pass(built):
    con = duckdb.connect(str(built / "w.duckdb"), read_only=True)
    zs = {}
    for i in range(DAYS):
        d = FIRST + dt.timedelta(days=i)
        v = _volume(con, d)
        assert v.status == "pass", v.message
        if "not scored" not in v.observed: zs[d] = _z(v)
    assert len(zs) == DAYS - 7  # scored from the 8th day on
    assert max(abs(z) for z in zs.values()) < 3, zs
    res = run_quality(con, LAST)
    assert failures(res, "error") == [], [r.message for r in failures(res, "error")]
    assert failures(res, "warn") == [], [r.message for r in failures(res, "warn")]


@pytest.mark.slow
def test_missing_day_raises_volume_anomaly(built, tmp_path):
    s = _next_day(built, tmp_path, faults="missing_day:0.5")
    res = check_day(s, NEXT, run_id="faulted")
    errors = failures(res, "error")
    assert [r.test for r in errors] == ["new_comments_volume"], [r.message for r in errors]
    v = errors[0]
    assert v.severity == "error" and _z(v) <= -3, v.observed
    assert "new rows on 2026-08-05" in v.message and "Wednesday" in v.message
    with pytest.raises(QualityFailed, match="new_comments_volume"):
        raise_for_errors(res)
    con = duckdb.connect(str(s.storage.warehouse), read_only=True)
    rows = con.sql("SELECT test, severity, status FROM quality.test_results WHERE run_id = 'faulted' AND status = 'fail'").fetchall()
    assert rows == [("new_comments_volume", "error", "fail")]
    con.close()
    check_day(s, NEXT, run_id="faulted")  # re-running the run replaces its rows
    con = duckdb.connect(str(s.storage.warehouse), read_only=True)
    assert con.sql("SELECT count(*) FROM quality.test_results WHERE run_id = 'faulted'").fetchone()[0] == len(res)


@pytest.mark.slow
def test_weekend_swing_is_not_an_anomaly(built, tmp_path):
    "The replay world is busier at weekends: the profile sees it, and weekends and the Mondays after them pass."
    s = _next_day(built, tmp_path)
    con = duckdb.connect(str(s.storage.warehouse), read_only=True)
    t = next(t for t in load_tests() if t.name == "new_comments_volume")
    cols = table_columns(con, t.table)
    counts = counts_by_day(con, t, cols, *where_clause(t, cols, NEXT), NEXT, FIRST)
    prof = weekday_profile(counts, NEXT)
    assert min(prof[5], prof[6]) > max(prof[w] for w in range(5)) * 0.95, prof  # weekends above every weekday, within noise
    assert (prof[5] + prof[6]) / 2 > sum(prof[w] for w in range(5)) / 5 * 1.1, prof
    swing = [d for d in counts if d >= FIRST + dt.timedelta(days=7) and d.weekday() in (5, 6, 0)]
    assert len(swing) >= 3
    for d in swing:
        v = _volume(con, d)
        assert v.status == "pass" and abs(_z(v)) < 3, (d, v.observed)
    v = _volume(con, NEXT)
    assert v.status == "pass" and abs(_z(v)) < 2, v.observed  # the same Wednesday without the fault

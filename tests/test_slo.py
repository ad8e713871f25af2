"""Service levels: freshness per day against the 09:00 Chicago deadline (both sides of DST), page completeness per title-day,
the exact window, days not due yet, and projects with nothing recorded."""
import datetime as dt
import json

import pytest

from trakt_nb.land.bronze import connect, ensure_bronze
from trakt_nb.land.ledger import finish_run, start_run
from trakt_nb.config import load_settings
from trakt_nb.ops.slo import check, freshness_deadline, slo_status, slo_window, status_table, summary_line

UTC = dt.timezone.utc
D = dt.date


@pytest.fixture
def s(tmp_path):
    return load_settings(env={}).replace(storage={"reports_dir": tmp_path / "reports", "warehouse": tmp_path / "wh.duckdb"})


def write_run(s, day, finished, status="succeeded"):
    d = s.storage.reports_dir / day.isoformat()
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps({"run_date": day.isoformat(), "status": status, "started_at": finished.isoformat(),
                                            "finished_at": finished.isoformat(), "steps": []}))


def on_time(s, day):
    write_run(s, day, freshness_deadline(s, day) - dt.timedelta(hours=3))


def ingests(s, rows):
    con = ensure_bronze(connect(s))
    n = con.execute("SELECT count(*) FROM bronze.runs").fetchone()[0]
    for i, (day, status, comp) in enumerate(rows, n):
        start_run(con, f"run{i:03d}", day, "replay")
        finish_run(con, f"run{i:03d}", status, {"completeness": comp})
    con.close()


def states(st):
    return {d.day: d.state for d in st.days}


@pytest.mark.parametrize("day,deadline_utc", [
    (D(2026, 7, 1), dt.datetime(2026, 7, 2, 14, 0, tzinfo=UTC)),     # summer: CDT, UTC-5
    (D(2026, 12, 1), dt.datetime(2026, 12, 2, 15, 0, tzinfo=UTC)),   # winter: CST, UTC-6
    (D(2026, 3, 7), dt.datetime(2026, 3, 8, 14, 0, tzinfo=UTC)),     # clocks go forward at 02:00 on the 8th
    (D(2026, 10, 31), dt.datetime(2026, 11, 1, 15, 0, tzinfo=UTC)),  # clocks go back at 02:00 on 1 November
])
def test_fresh_and_late_on_both_sides_of_dst(s, day, deadline_utc):
    s = s.replace(slo={"window_days": 1})
    today = day + dt.timedelta(days=1)
    write_run(s, day, deadline_utc)  # exactly at the deadline: on time
    assert states(slo_status(s, today=today)) == {day: "fresh"}
    write_run(s, day, deadline_utc + dt.timedelta(seconds=1))
    st = slo_status(s, today=today)
    assert states(st) == {day: "late"} and st.days[0].deadline == deadline_utc and check(st) == 1


def test_same_utc_time_is_on_time_in_winter_and_late_in_summer(s):
    s = s.replace(slo={"window_days": 1})
    write_run(s, D(2026, 7, 1), dt.datetime(2026, 7, 2, 14, 30, tzinfo=UTC))
    write_run(s, D(2026, 12, 1), dt.datetime(2026, 12, 2, 14, 30, tzinfo=UTC))
    assert states(slo_status(s, today=D(2026, 7, 2))) == {D(2026, 7, 1): "late"}
    assert states(slo_status(s, today=D(2026, 12, 2))) == {D(2026, 12, 1): "fresh"}


def test_thirty_days_with_late_missing_and_failed_days(s):
    today = D(2026, 11, 28)
    days = [today - dt.timedelta(days=i) for i in range(1, 31)]
    for d in days: on_time(s, d)
    write_run(s, D(2026, 11, 2), freshness_deadline(s, D(2026, 11, 2)) + dt.timedelta(hours=2))  # late
    (s.storage.reports_dir / "2026-11-05" / "run.json").unlink()  # missing
    write_run(s, D(2026, 11, 9), freshness_deadline(s, D(2026, 11, 9)) - dt.timedelta(hours=1), status="failed")  # failed
    st = slo_status(s, today=today)
    assert len(st.days) == 30 and st.days[0].day == D(2026, 10, 29) and st.days[-1].day == D(2026, 11, 27)
    assert {d.day: d.state for d in st.days if not d.fresh} == {D(2026, 11, 2): "late", D(2026, 11, 5): "missing", D(2026, 11, 9): "failed"}
    assert st.freshness_ratio == pytest.approx(27 / 30)
    assert st.breaches == ["freshness 90.0% over 30 days is below the 99% target: late or missing "
                           "2026-11-02 (late), 2026-11-05 (missing), 2026-11-09 (failed)"]
    assert check(st) == 1 and not st.ok
    assert "freshness 90.0% of 30 days (target 99%, BREACHED)" in summary_line(st)


def test_all_fresh_is_ok(s):
    today = D(2026, 11, 28)
    for i in range(1, 31): on_time(s, today - dt.timedelta(days=i))
    st = slo_status(s, today=today)
    assert st.freshness_ratio == 1.0 and st.breaches == [] and check(st) == 0
    assert "freshness          100.0%  99%     ok" in status_table(st)


def test_window_boundaries(s):
    s = s.replace(slo={"window_days": 7})
    today = D(2026, 11, 28)
    first, last, _ = slo_window(s, today=today)
    assert (first, last) == (D(2026, 11, 21), D(2026, 11, 27))
    for i in range(1, 15): on_time(s, today - dt.timedelta(days=i))
    write_run(s, D(2026, 11, 20), freshness_deadline(s, D(2026, 11, 20)) + dt.timedelta(days=1))  # late, but the day before the window
    on_time(s, today)  # today's own run: never judged
    st = slo_status(s, today=today)
    assert [d.day for d in st.days] == [first + dt.timedelta(days=i) for i in range(7)]
    assert st.ok and st.freshness_ratio == 1.0
    write_run(s, first, freshness_deadline(s, first) + dt.timedelta(minutes=1))  # the first day of the window counts
    assert states(slo_status(s, today=today))[first] == "late"


def test_yesterday_not_yet_due_is_pending_not_a_breach(s):
    s = s.replace(slo={"window_days": 3})
    today = D(2026, 11, 28)
    for i in (2, 3): on_time(s, today - dt.timedelta(days=i))
    deadline = freshness_deadline(s, D(2026, 11, 27))  # 2026-11-28 15:00 UTC
    before, after = deadline - dt.timedelta(minutes=1), deadline + dt.timedelta(minutes=1)
    st = slo_status(s, now=before)
    assert st.window_end == D(2026, 11, 27) and states(st)[D(2026, 11, 27)] == "pending"
    assert st.freshness_ratio == 1.0 and st.ok and check(st) == 0 and len(st.counted_days) == 2
    assert "2/2 days on time, 1 not due yet" in status_table(st)
    import re
    assert not re.search(r"\b(fresh|pending)\b", status_table(st))  # one vocabulary with the reports: on time, late, not due yet
    st = slo_status(s, now=after)  # the deadline passed without a run
    assert states(st)[D(2026, 11, 27)] == "missing" and check(st) == 1
    write_run(s, D(2026, 11, 27), before - dt.timedelta(hours=1))  # finished before the deadline: fresh even before it passes
    assert states(slo_status(s, now=before))[D(2026, 11, 27)] == "fresh"
    write_run(s, D(2026, 11, 27), before - dt.timedelta(hours=1), status="failed")  # failed but still time to rerun
    assert states(slo_status(s, now=before))[D(2026, 11, 27)] == "pending"
    assert states(slo_status(s, now=after))[D(2026, 11, 27)] == "failed"


def test_completeness_below_and_above_target(s):
    s = s.replace(slo={"window_days": 2})
    today = D(2026, 11, 3)
    for d in (D(2026, 11, 1), D(2026, 11, 2)): on_time(s, d)
    ingests(s, [(D(2026, 11, 1), "succeeded", {"movie:1": 0.99, "movie:2": 1.0, "show:3": 0.995}),
                (D(2026, 11, 2), "succeeded", {"movie:1": 0.98, "movie:2": 1.0, "show:3": 1.0}),
                (D(2026, 11, 2), "failed", {"movie:1": 0.0})])  # a later failed ingest does not replace the succeeded one
    st = slo_status(s, today=today)
    assert [(t.day, t.title) for t in st.title_days if not t.complete] == [(D(2026, 11, 2), "movie:1")]
    assert st.completeness_ratio == pytest.approx(5 / 6) and st.freshness_ok and not st.completeness_ok
    assert st.breaches == ["page completeness 83.3% of 6 title-days over 2 days is below the 99% target: incomplete movie:1 on 2026-11-02 (98.0%)"]
    assert {d.day: d.worst_completeness for d in st.days} == {D(2026, 11, 1): 0.99, D(2026, 11, 2): 0.98}
    ingests(s, [(D(2026, 11, 2), "succeeded", {"movie:1": 1.0, "movie:2": 1.0, "show:3": 1.0})])  # a rerun fixes the day
    st = slo_status(s, today=today)
    assert st.completeness_ratio == 1.0 and st.ok and check(st) == 0


def test_completeness_ratio_against_its_target(s):
    # 200 title-days, one at 50%: 99.5% of title-days are complete, which meets a 99% target
    s = s.replace(slo={"window_days": 2})
    for d in (D(2026, 11, 1), D(2026, 11, 2)): on_time(s, d)
    comp = {f"movie:{i}": 1.0 for i in range(100)}
    ingests(s, [(D(2026, 11, 1), "succeeded", comp), (D(2026, 11, 2), "succeeded", {**comp, "movie:7": 0.5})])
    st = slo_status(s, today=D(2026, 11, 3))
    assert st.completeness_ratio == pytest.approx(199 / 200) and st.ok
    assert not slo_status(s.replace(slo={"completeness_target": 0.999}), today=D(2026, 11, 3)).ok


def test_days_before_the_first_run_are_not_counted(s):
    today = D(2026, 11, 28)
    for i in range(1, 6): on_time(s, today - dt.timedelta(days=i))
    st = slo_status(s, today=today)
    assert [d.day for d in st.days] == [D(2026, 11, 23) + dt.timedelta(days=i) for i in range(5)]
    assert st.ok and any("first recorded run is for 2026-11-23" in n for n in st.notes)
    ingests(s, [(D(2026, 11, 20), "succeeded", {"movie:1": 1.0})])  # an older ingest moves the start back: 21 and 22 missing
    st = slo_status(s, today=today)
    assert states(st)[D(2026, 11, 20)] == "missing" and len(st.days) == 8 and not st.ok


def test_empty_project_and_missing_pieces(s):
    st = slo_status(s, today=D(2026, 11, 28))
    assert (st.days, st.title_days, st.breaches, st.ok, check(st)) == ([], [], [], True, 0)
    assert st.freshness_ratio is None and st.completeness_ratio is None
    text = status_table(st)
    assert "no data" in text and "no reports folder" in text and "no warehouse" in text
    assert summary_line(st) == "SLOs over 30 days: no finished run to judge yet (a run counts once it has finished; `trakt-nb status` then lists it)."
    # reports but no warehouse: freshness judged, completeness has no data and is not a breach
    on_time(s, D(2026, 11, 27))
    (s.storage.reports_dir / "latest").mkdir()
    (s.storage.reports_dir / "2026-11-26").mkdir()
    (s.storage.reports_dir / "2026-11-26" / "run.json").write_text("{not json")
    st = slo_status(s, today=D(2026, 11, 28))
    assert states(st) == {D(2026, 11, 27): "fresh"} and st.ok
    assert any("no warehouse" in n for n in st.notes) and any("2026-11-26" in n and "could not be read" in n for n in st.notes)
    assert "page completeness: no data" in summary_line(st)


def test_busy_warehouse_is_a_note(s):
    on_time(s, D(2026, 11, 27))
    ingests(s, [(D(2026, 11, 27), "succeeded", {"movie:1": 1.0})])
    con = connect(s)  # held read-write (as a running ingest would)
    try:
        st = slo_status(s, today=D(2026, 11, 28))
    finally:
        con.close()
    assert states(st) == {D(2026, 11, 27): "fresh"} and st.title_days == []
    assert any(n.startswith("Page completeness was not read") for n in st.notes)


def test_status_table_lists_last_runs_newest_first(s):
    today = D(2026, 11, 28)
    for i in range(1, 15): on_time(s, today - dt.timedelta(days=i))
    lines = status_table(slo_status(s, today=today), last_runs=3).splitlines()
    at = lines.index("Last runs (times in UTC)")
    assert [l.split()[0] for l in lines[at + 3:at + 6]] == ["2026-11-27", "2026-11-26", "2026-11-25"]
    assert lines[at + 6] == ""


def test_naive_and_garbled_timestamps(s):
    s = s.replace(slo={"window_days": 2})
    d1, d2 = D(2026, 11, 26), D(2026, 11, 27)
    (s.storage.reports_dir / d1.isoformat()).mkdir(parents=True)
    (s.storage.reports_dir / d1.isoformat() / "run.json").write_text(json.dumps({"run_date": str(d1), "status": "succeeded", "finished_at": "2026-11-27T14:59:00"}))
    (s.storage.reports_dir / d2.isoformat()).mkdir(parents=True)
    (s.storage.reports_dir / d2.isoformat() / "run.json").write_text(json.dumps({"run_date": str(d2), "status": "succeeded", "finished_at": "soon"}))
    assert states(slo_status(s, today=D(2026, 11, 28))) == {d1: "fresh", d2: "late"}  # naive = UTC; an unreadable time is not on time

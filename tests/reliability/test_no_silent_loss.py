"""No silent loss: every fault either ends recovered (the clean outcome, checked against the replay's ground truth) or loud — a
non-zero exit whose one sentence names what is missing and the command that repairs it, and that command does repair it."""
import datetime as dt
import json

import httpx
import pytest

from .conftest import (D, Site, bronze_pages_kept, end_of_day, followed_indexes, ingest_and_model, make_app, record,
                       silver_vs_truth)
from trakt_nb.source.replay_as_of import ground_truth

FULL = pytest.mark.reliability_full


def no_traceback(*procs) -> int:
    "How many of the commands' outputs hold a traceback (the matrix's total must stay 0)."
    return sum("Traceback (most recent call last)" in (p.stderr + p.stdout) for p in procs)


def last_line(p) -> str:
    lines = [l for l in p.stderr.splitlines() if l.startswith("trakt-nb: ")]
    return lines[-1] if lines else ""


def check_whole(site: Site, world, day=D, deleted: set[int] = frozenset()) -> dict:
    "Silver against the ground truth (less what the replay deleted): nothing lost, nothing twice, no stale value, no secret."
    if deleted:
        v = silver_vs_deletions(site, world, deleted, day)
    else:
        v = silver_vs_truth(site, world, day)
        assert v["lost"] == 0 and v["duplicated"] == 0 and v["unexpected"] == 0 and v["stale"] == 0, v
    assert bronze_pages_kept(site)
    leaks = site.secret_leaks()
    assert leaks == [], leaks
    return v


# -- 1. the followed titles: fixed only from complete trending lists ---------------------------------------------------------------

def test_api_unreachable_is_one_sentence_exit_75(tmp_path):
    site = Site(tmp_path / "site", url="http://127.0.0.1:9")  # nothing listens there
    p = site.run(timeout=120)
    assert p.returncode == 75, (p.returncode, p.stderr)
    line = last_line(p)
    assert "could not be reached" in line and "http://127.0.0.1:9" in line and "run the same command again" in line, p.stderr
    assert "[titles]" not in p.stderr and no_traceback(p) == 0  # the settings are not blamed
    assert not site.warehouse.exists()
    record("API unreachable (first run)", "replay url http://127.0.0.1:9", f"exit 75: {line[10:120]}…", 0, 0, secrets=0, tracebacks=0)


def test_trending_outage_fixes_no_titles_then_resumes(tmp_path, serve, world):
    # /shows/trending answers 503 to its first 12 calls: more than one run's attempts (8), fewer than two runs'
    srv = serve(make_app(world, faults="outage:/shows/trending@12"))
    site = Site(tmp_path, url=srv.url)
    p1 = site.run()
    assert p1.returncode == 75, (p1.returncode, p1.stderr)
    assert "/shows/trending" in last_line(p1) and "run the same command again" in last_line(p1), p1.stderr
    assert not site.warehouse.exists()  # no movie-only list was saved as the followed titles
    p2 = site.run()
    assert p2.returncode == 0, p2.stderr
    followed = site.q("SELECT value FROM bronze.state WHERE key = 'followed_titles'")[0][0]
    kinds = sorted(r["kind"] for r in json.loads(followed))
    assert kinds == ["movie"] * 3 + ["show"] * 3, kinds
    v = check_whole(site, world)
    record("trending outage on the first run", "outage:/shows/trending@12",
           f"exit 75 naming /shows/trending, nothing written; the same command then exit 0 with 3 movies + 3 shows followed "
           f"({v['truth']} comments)", v["lost"], v["duplicated"], secrets=0, tracebacks=no_traceback(p1, p2))


# -- 2/3. pages that failed: loud, and retried by the same command -------------------------------------------------------------------

def test_failed_pages_exit_3_then_same_command_repairs(tmp_path, serve, world):
    # an error page echoing the request headers (the key, the TMDb token), often enough that some pages use up their 2 attempts
    srv = serve(make_app(world, faults="echo_headers:0.3"))
    site = Site(tmp_path, url=srv.url, client={"max_attempts": 2})
    p1 = site.run()
    assert p1.returncode == 3, (p1.returncode, p1.stderr)
    line = last_line(p1)
    assert "is incomplete" in line and "could not be fetched" in line and f"trakt-nb run --date {D}" in line, p1.stderr
    held = site.q("SELECT count(*) FROM bronze.quarantine WHERE reason = 'http_error' AND payload LIKE '%trakt-api-key: ***%'")[0][0]
    assert held > 0  # the echoing pages were kept, redacted
    assert site.secret_leaks() == []
    failed = site.q("SELECT count(*) FROM bronze.ingest_ledger WHERE state = 'failed'")[0][0]
    calls_before = httpx.get(srv.url + "/_replay/state").json()["requests"]
    httpx.post(srv.url + "/_replay/faults", json={})  # the server mends
    p2 = site.run()
    assert p2.returncode == 0, p2.stderr
    calls = httpx.get(srv.url + "/_replay/state").json()["requests"] - calls_before
    assert site.q("SELECT count(*) FROM bronze.ingest_ledger WHERE state = 'failed'")[0][0] == 0
    assert calls < 3 * failed + 10, (calls, failed)  # what failed was fetched again, not what succeeded
    v = check_whole(site, world)
    record("pages that failed, echoing the request headers", "echo_headers:0.3, 2 attempts per request",
           f"exit 3 naming {failed} missing pages and `trakt-nb run --date {D}`; {held} echoing error pages held redacted; "
           f"the same command then fetched {calls} URLs and exit 0", v["lost"], v["duplicated"], secrets=0,
           tracebacks=no_traceback(p1, p2))


def run_until_done(site: Site, tries: int = 6) -> tuple[list, list]:
    "Run the same command until it exits 0; every earlier exit must be 75 (try again later) naming when. Returns (codes, procs)."
    codes, procs = [], []
    for _ in range(tries):
        p = site.run()
        codes.append(p.returncode); procs.append(p)
        if p.returncode == 0: break
        assert p.returncode == 75 and "rate limited until" in last_line(p), (p.returncode, p.stderr)
    assert codes[-1] == 0, codes
    return codes, procs


@FULL
def test_quota_storm_with_cloudflare_429s_recovers(tmp_path, serve, world):
    # a 429 waited out is not a failed attempt, so no page gives up; the waits of one request are budgeted by the ceiling (5 s
    # here): a storm that outlasts it stops the run with the time to resume (75), and the same command goes on from there
    srv = serve(make_app(world, faults="quota_storm:0.05@2, cloudflare_429:0.2"))
    site = Site(tmp_path, url=srv.url, client={"max_attempts": 6})
    codes, procs = run_until_done(site)
    v = check_whole(site, world)
    assert site.q("SELECT count(*) FROM bronze.quarantine") == [(0,)]  # no page gave up
    st = httpx.get(srv.url + "/_replay/state").json()["by_status"]
    record("quota storm and Cloudflare 429s", "quota_storm:0.05@2, cloudflare_429:0.2, 6 attempts, ceiling 5 s",
           f"exit codes {codes} (75 = stopped with the time to resume), no page quarantined (replay answered {st})", v["lost"],
           v["duplicated"], secrets=0, tracebacks=no_traceback(*procs))


@FULL
def test_quota_storm_heavy_recovers(tmp_path, serve, world):
    srv = serve(make_app(world, faults="quota_storm:0.08@2"))
    site = Site(tmp_path, url=srv.url, client={"max_attempts": 6})
    codes, procs = run_until_done(site)
    v = check_whole(site, world)
    assert site.q("SELECT count(*) FROM bronze.quarantine") == [(0,)]
    record("heavy quota storm", "quota_storm:0.08@2, 6 attempts, ceiling 5 s", f"exit codes {codes}, no page quarantined",
           v["lost"], v["duplicated"], secrets=0, tracebacks=no_traceback(*procs))


@FULL
def test_always_truncated_pages_are_loud_then_repaired(tmp_path, serve, world):
    # 20 comments per page: enough pages that some are cut short on every attempt (a trending list cut short stops the first run: 75)
    srv = serve(make_app(world, faults="wrong_item_count:0.5, truncated_always:0.1"))
    site = Site(tmp_path, url=srv.url, client={"comments_limit": 20})
    p1 = site.run()
    assert p1.returncode in (3, 75) and ("is incomplete" in last_line(p1) or "could not be read whole" in last_line(p1)), (p1.returncode, p1.stderr)
    missing = site.q("SELECT count(*) FROM bronze.ingest_ledger WHERE state = 'failed'")[0][0] if site.warehouse.exists() else 0
    p2 = site.run()  # the fault still holds: still loud, never a quiet 0
    assert p2.returncode == p1.returncode, p2.stderr
    httpx.post(srv.url + "/_replay/faults", json={})
    p3 = site.run()
    assert p3.returncode == 0, p3.stderr
    v = check_whole(site, world)
    record("always-truncated pages", "wrong_item_count:0.5, truncated_always:0.1, 20 per page",
           f"exit {p1.returncode} twice ({missing} pages missing, named); once the server mends, the same command exit 0", v["lost"],
           v["duplicated"], secrets=0, tracebacks=no_traceback(p1, p2, p3))


# -- 4. deletions while a listing is paged -------------------------------------------------------------------------------------------

def silver_vs_deletions(site: Site, world, deleted: set[int], day=D) -> dict:
    "Silver against the ground truth less the comments the replay deleted (and the replies under them)."
    g = ground_truth(world, end_of_day(day), titles=followed_indexes(site, world))
    ids = set(g.comment_id[g.parent_id == 0].tolist()) - deleted
    while True:
        more = set(g.comment_id[g.parent_id.isin(ids)].tolist()) - ids
        if not more: break
        ids |= more
    live = {r[0] for r in site.q("SELECT comment_id FROM silver.stg_trakt__comment_event")}
    rows = site.q("SELECT comment_id, count(*) FROM silver.stg_trakt__comment_event GROUP BY ALL HAVING count(*) > 1")
    seen = {r[0] for r in site.q("SELECT comment_id FROM silver.stg_trakt__comment_event_history WHERE parent_id = 0")}
    marked = dict(site.q("SELECT comment_id, last_seen_at FROM silver.stg_trakt__comment_deleted"))
    v = {"truth": len(ids), "deleted": len(deleted), "lost": len(ids - live), "duplicated": len(rows), "unexpected": len(live - ids),
         "deleted_seen": len(deleted & seen), "marked": len(deleted & set(marked))}
    assert v["lost"] == 0 and v["duplicated"] == 0, v
    assert v["unexpected"] == 0, v  # a comment gone for good is not live in silver (so gold does not count it)
    assert deleted & seen <= set(marked) and all(marked[i] is not None for i in deleted & seen), v  # marked, with when last seen
    return v


def test_deletions_mid_crawl_lose_nothing(tmp_path, serve, world):
    srv = serve(make_app(world, faults="delete_mid_crawl:0.5@2"))
    site = Site(tmp_path, url=srv.url, client={"comments_limit": 20})  # many pages per title: many boundaries to cross
    procs = ingest_and_model(site)  # what is checked is bronze, silver and gold: the report steps of a whole run add nothing here
    assert [p.returncode for p in procs] == [0, 0], procs[-1].stderr
    deleted = {int(i) for i in httpx.get(srv.url + "/_replay/state").json()["deleted"]}
    assert len(deleted) >= 10  # the fault did bite
    v = check_whole(site, world, deleted=deleted)
    shrank = site.q("SELECT count(*) FROM bronze.ingest_ledger WHERE unit_key LIKE '%:comments:reread:%'")[0][0]
    assert shrank > 0
    assert v["deleted_seen"] > 0  # some were read before they were deleted: those must be marked, not kept live
    gold_live = site.q("SELECT sum(comments) FROM gold.fct_title_daily_engagement")[0][0]
    assert gold_live == v["truth"], (gold_live, v)  # gold counts the live comments only
    record("deletions while a listing is paged", "delete_mid_crawl:0.5@2 (two comments on earlier pages deleted per hit), 20 per page",
           f"exit 0; {len(deleted)} comments deleted mid-crawl ({v['deleted_seen']} read before their deletion, all marked deleted "
           f"in silver with when last seen), {shrank} pages read again where the count fell; gold counts {gold_live} comments", v["lost"],
           v["duplicated"], secrets=0, tracebacks=no_traceback(*procs))


# -- 5. a rate-limit stop inside `trakt-nb run` ----------------------------------------------------------------------------------

@FULL
def test_rate_limit_stop_inside_run_is_75_with_the_time(tmp_path, serve, world):
    srv = serve(make_app(world))
    site = Site(tmp_path, url=srv.url)
    assert site.run().returncode == 0  # the first run fixes the titles; the stop then comes from inside the ingest step
    httpx.post(srv.url + "/_replay/faults", json={"long_retry_after": 1.0})
    p = site.run(day=D + dt.timedelta(days=1))
    assert p.returncode == 75 and "rate limited until" in last_line(p) and "resume" in last_line(p), (p.returncode, p.stderr)
    httpx.post(srv.url + "/_replay/faults", json={})
    p2 = site.run(day=D + dt.timedelta(days=1))
    assert p2.returncode == 0, p2.stderr
    record("rate-limit stop inside the ingest step", "long_retry_after:1.0 on day 2", f"exit 75: {last_line(p)[10:90]}…; resumed", 0, 0,
           secrets=0, tracebacks=no_traceback(p, p2))


# -- 7. dates ------------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("date", ["2031-01-01", "9999-12-31", "0001-01-01", "1999-01-01"])
def test_dates_out_of_range_are_refused(tmp_path, date):
    site = Site(tmp_path / "site", url="http://127.0.0.1:9")
    p = site.cli("run", "--date", date)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2 and len(lines) == 1 and ("has not happened yet" in lines[0] or "before Trakt existed" in lines[0]), p.stderr
    assert sorted(x.name for x in site.root.iterdir()) == ["settings.ini"]
    record(f"date out of range {date!r}", "run --date", "exit 2, one sentence, nothing written", 0, 0, secrets=0, tracebacks=no_traceback(p))


# -- 6/8. settings from the environment: the variable named, a misspelt one refused, inf and nan refused --------------------------

@pytest.mark.parametrize("var,value,says", [("TRAKT_NB_CLIENT_TIMEOUT_S", "soon", "The environment variable TRAKT_NB_CLIENT_TIMEOUT_S"),
                                            ("TRAKT_NB_CLIENT_MAX_RESPONSE_MB", "inf", "TRAKT_NB_CLIENT_MAX_RESPONSE_MB = 'inf' is not valid"),
                                            ("TRAKT_NB_CLIENT_BACKOFF_CAP_S", "nan", "TRAKT_NB_CLIENT_BACKOFF_CAP_S = 'nan' is not valid"),
                                            ("TRAKT_NB_CLIENT_TIMEOUT", "3", "did you mean TRAKT_NB_CLIENT_TIMEOUT_S?")])
def test_environment_override_errors_name_the_variable(tmp_path, var, value, says):
    site = Site(tmp_path / "site", url="http://127.0.0.1:9")
    p = site.run(env=site.env(**{var: value}), timeout=60)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2 and len(lines) == 1 and says in lines[0] and "settings.ini" not in lines[0], p.stderr
    assert sorted(x.name for x in site.root.iterdir()) == ["settings.ini"]
    record(f"environment override {var}={value}", "run with the variable set", f"exit 2: {lines[0][10:110]}", 0, 0, secrets=0,
           tracebacks=no_traceback(p))


# -- 6/9. a step's kernel killed (the OOM killer), and the ingest's run record it leaves ------------------------------------------

@FULL
def test_kernel_killed_is_a_failed_step_then_resumes(tmp_path, serve, world, clean):
    import os, signal, subprocess, threading, time
    srv = serve(make_app(world, faults="slow:0.3@0.4"))  # a slower crawl: time to find and kill its kernel
    site = Site(tmp_path, url=srv.url)
    proc = site.popen("run", "--date", D.isoformat())
    killed = []
    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not killed:
            if site.warehouse.exists():  # the ingest step is writing: kill every kernel of the run (the step's, and any started ahead)
                time.sleep(1.0)
                rows = [l.split(None, 2) for l in subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout.splitlines()]
                tree, todo = set(), [proc.pid]  # the run's descendants (kernels get sessions of their own)
                while todo:
                    parent = todo.pop()
                    for r in rows:
                        if len(r) == 3 and int(r[1]) == parent and int(r[0]) not in tree: tree.add(int(r[0])); todo.append(int(r[0]))
                pids = [int(r[0]) for r in rows if len(r) == 3 and int(r[0]) in tree and "ipykernel" in r[2]]
                for pid in pids: os.kill(pid, signal.SIGKILL)
                killed.extend(pids)
            time.sleep(0.1)
    t = threading.Thread(target=killer); t.start()
    out, err = proc.communicate(timeout=300); t.join()
    site.logs += [out, err]
    assert killed and proc.returncode == 1, (killed, proc.returncode, err)
    line = [l for l in err.splitlines() if l.startswith("trakt-nb: ")][-1]
    assert "kernel died" in line and "Traceback" not in err, err
    p2 = site.run()
    assert p2.returncode == 0, p2.stderr
    assert site.q("SELECT count(*) FROM bronze.runs WHERE status = 'running'") == [(0,)]  # the killed ingest's row did not stay 'running'
    v = check_whole(site, world)
    assert site.gold() == clean["gold"]
    record("a step's kernel killed (OOM killer)", "SIGKILL of the first step's kernel mid-crawl",
           f"exit 1: {line[10:100]}…; the same command resumed to the clean outcome, no run left 'running'", v["lost"], v["duplicated"],
           secrets=0, tracebacks=0)


# -- 7. a day run by mistake is forgotten -------------------------------------------------------------------------------------------

@FULL
def test_forget_a_day_leaves_the_clean_outcome(tmp_path, serve, world, clean):
    srv = serve(make_app(world))
    site = Site(tmp_path, url=srv.url)
    assert site.run().returncode == 0
    D2 = D + dt.timedelta(days=1)
    assert site.run(day=D2).returncode == 0
    p = site.cli("forget", "--date", D2.isoformat())
    assert p.returncode == 0 and f"forgot {D2}" in p.stdout and "rebuilt as of 2026-07-10" in p.stdout, (p.stdout, p.stderr)
    assert site.q("SELECT count(*) FROM bronze.trakt_pages WHERE run_date = ?", [D2]) == [(0,)]
    assert site.q("SELECT count(*) FROM bronze.runs WHERE run_date = ?", [D2]) == [(0,)]
    assert not (site.reports / D2.isoformat()).exists()
    assert site.gold() == clean["gold"]  # as if the day had never run
    record("a day run by mistake, forgotten", f"run {D2}, then `trakt-nb forget --date {D2}`",
           "its pages, runs and reports gone; gold rebuilt equal to the clean run's", 0, 0, secrets=0, tracebacks=no_traceback(p))


# -- 10. backfilled days are not late ---------------------------------------------------------------------------------------------

@FULL
def test_backfill_is_not_late_for_the_freshness_slo(tmp_path, serve, world):
    from zoneinfo import ZoneInfo
    today = dt.datetime.now(ZoneInfo("America/Chicago")).date()  # the SLO's own calendar ([slo] timezone)
    first, last = today - dt.timedelta(days=2), today - dt.timedelta(days=1)  # the whole window, filled in after its deadlines
    srv = serve(make_app(world, day=last))
    site = Site(tmp_path, url=srv.url, slo={"window_days": 2})
    p = site.cli("backfill", "--start", first.isoformat(), "--end", last.isoformat(), timeout=600)
    assert p.returncode == 0, p.stderr
    runs = [json.loads((site.reports / d.isoformat() / "run.json").read_text()) for d in (first, last)]
    assert all(r["backfill"] for r in runs) and runs[0]["fresh"] is False  # past its deadline, visibly a backfill
    st = site.cli("status")
    assert "backfill" in st.stdout, st.stdout
    chk = site.cli("slo", "check")
    assert chk.returncode == 0 and "BREACHED" not in chk.stdout, chk.stdout
    record("backfill, then the freshness SLO", f"`trakt-nb backfill` of the whole window ({first}…{last}), then `slo check`",
           f"both days shown as backfill, exit 0: {chk.stdout.strip()[:120]}", 0, 0, secrets=0, tracebacks=no_traceback(p, st, chk))


# -- 9. a damaged write-ahead log is named before anything is written ---------------------------------------------------------------

def test_garbage_wal_is_named_not_ignored(tmp_path, serve, world, clean):
    import shutil
    srv = serve(make_app(world))
    site = Site(tmp_path, url=srv.url)
    shutil.copy(clean["site"].warehouse, site.warehouse)  # a warehouse a run left …
    wal = site.warehouse.with_name(site.warehouse.name + ".wal")
    wal.write_bytes(bytes(range(256)) * 40)  # … and a log that is not one
    before = site.warehouse.read_bytes()
    p = site.run(timeout=120)
    line = last_line(p)
    assert p.returncode == 2 and "write-ahead log" in line and str(wal) in line and no_traceback(p) == 0, (p.returncode, p.stderr)
    assert site.warehouse.read_bytes() == before  # nothing appended to it
    record("a garbage .wal next to the warehouse", "10 KB of bytes that are not a DuckDB log",
           f"exit 2 naming it, warehouse untouched: {line[10:100]}…", 0, 0, secrets=0, tracebacks=0)


def test_damaged_warehouse_is_refused_before_writing(tmp_path, serve, world, clean):
    # here, not in test_storage_faults.py, so that CI's quick subset (a test file whole on one worker) makes no second clean run
    from .test_storage_faults import refuse_damaged
    site, _, at, line, p = refuse_damaged(tmp_path, serve, world, clean)
    record("damage in the middle of the warehouse", f"64 bytes of table data overwritten at byte {at:,} of {site.warehouse.stat().st_size:,}, then run D+1",
           f"exit 2 before ingest wrote, twice: {line[10:150]}…; warehouse unchanged byte for byte", 0, 0, secrets=0, tracebacks=no_traceback(p))

"""Bronze layer against a real DuckDB file: atomic batches, SIGKILL recovery, the warehouse lock, and write throughput."""
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import orjson
import pytest

from trakt_nb.land.bronze_writer import BronzeWriter
from trakt_nb.land.bronze import connect, ensure_bronze
from trakt_nb.land.ledger import (done_units, get_state, ledger_summary, set_state, start_run, finish_run, last_runs,
                                  unit_state)
from trakt_nb.land.lock import warehouse_lock
from trakt_nb.config import UserError

DAY = dt.date(2026, 5, 1)


def comments_payload(rng: random.Random, n_comments: int = 25, words: int = 115) -> bytes:
    "A Trakt-shaped comments page (~1 KB per comment)."
    vocab = ["film", "show", "great", "slow", "ending", "actor", "plot", "score", "twist", "season", "pacing", "camera", "cast"]
    return orjson.dumps([{
        "id": rng.randrange(1, 10**9), "parent_id": 0, "created_at": "2026-04-30T12:00:00.000Z",
        "updated_at": "2026-04-30T12:00:00.000Z", "comment": " ".join(rng.choice(vocab) for _ in range(words)),
        "spoiler": False, "review": rng.random() < 0.1, "replies": rng.randrange(5), "likes": rng.randrange(50),
        "user_stats": {"rating": rng.randrange(1, 11), "play_count": 1, "completed_count": 1},
        "user": {"username": f"user{rng.randrange(4000)}", "private": False, "name": "", "vip": False, "vip_ep": False,
                 "ids": {"slug": f"user{rng.randrange(4000)}"}}} for _ in range(n_comments)])


def page_row(i: int, payload: bytes) -> tuple[dict, str]:
    title, page = i // 50 + 1, i % 50 + 1
    key = f"movie:{title}:comments:newest:{page}"
    return ({"resource_kind": "comments", "title_kind": "movie", "title_id_trakt": title, "sort": "newest", "page": page,
             "page_count": 50, "page_limit": 25, "item_count": 1250, "items_delivered": 25, "http_status": 200,
             "request_path": f"/movies/{title}/comments/newest?page={page}&limit=25", "schema_version": 1,
             "payload": payload}, key)


def consistency(con, day=DAY):
    "(page unit keys, done unit keys, pages per load_id) of one day."
    pages = [r[0] for r in con.execute("SELECT unit_key FROM bronze.trakt_pages WHERE run_date = $1", [day]).fetchall()]
    per_load = dict(con.execute("SELECT load_id, count(*) FROM bronze.trakt_pages GROUP BY ALL").fetchall())
    return pages, done_units(con, day), per_load


# --- atomicity ---------------------------------------------------------------------------------------------------

def test_page_and_ledger_commit_together(tmp_path):
    wh = tmp_path / "w.duckdb"
    con = ensure_bronze(connect(wh))
    row, key = page_row(0, b'[{"id": 1}]')
    with pytest.raises(RuntimeError):
        with BronzeWriter(con, "r1", DAY) as w:
            w.add_page(row, key)
            raise RuntimeError("boom")
    con.close()
    con = connect(wh)  # what is on disk, not what one session sees
    assert con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0] == 0
    assert unit_state(con, DAY, key) is None
    with BronzeWriter(con, "r1", DAY) as w: w.add_page(row, key)
    con.close()
    con = connect(wh)
    assert con.execute("SELECT unit_key FROM bronze.trakt_pages").fetchall() == [(key,)]
    assert unit_state(con, DAY, key) == "done"


def test_failed_flush_writes_nothing_and_can_be_retried(tmp_path):
    con = ensure_bronze(connect(tmp_path / "w.duckdb"))
    w = BronzeWriter(con, "r1", DAY)
    row, key = page_row(0, b"[]")
    w.add_page(row, key)
    w.add_drift("comment", {("$.x", "string"): 1})
    con.execute("ALTER TABLE bronze.schema_drift RENAME TO schema_drift_gone")  # the last insert of the flush fails
    with pytest.raises(Exception):
        w.flush()
    assert con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0] == 0
    assert unit_state(con, DAY, key) is None
    con.execute("ALTER TABLE bronze.schema_drift_gone RENAME TO schema_drift")
    assert w.flush() == 1
    assert unit_state(con, DAY, key) == "done"
    assert con.execute("SELECT count FROM bronze.schema_drift").fetchone()[0] == 1


def test_ensure_bronze_idempotent_keeps_data(tmp_path):
    wh = tmp_path / "w.duckdb"
    con = ensure_bronze(connect(wh))
    with BronzeWriter(con, "r1", DAY) as w: w.add_page(*page_row(0, b"[]"))
    set_state(con, "k", [1])
    con.close()
    con = ensure_bronze(ensure_bronze(connect(wh)))
    assert con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0] == 1
    assert get_state(con, "k") == [1]
    n_tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'bronze'").fetchone()[0]
    assert n_tables == 6


def test_load_id_monotonic_across_flushes_and_sessions(tmp_path):
    wh = tmp_path / "w.duckdb"
    ids = []
    for session in range(3):
        con = ensure_bronze(connect(wh))
        with BronzeWriter(con, f"r{session}", DAY, batch_pages=4) as w:
            for i in range(session * 10, session * 10 + 10): w.add_page(*page_row(i, b"[]"))
            w.add_quarantine({"reason": "http_error", "http_status": 500})  # a flush without pages takes no load_id
        ids += w.load_ids
        con.close()
    assert ids == list(range(1, len(ids) + 1)) and len(ids) == 9  # 10 pages in batches of 4 -> 3 flushes, x3 sessions
    con = connect(wh)
    # load_id order follows insertion order
    assert con.execute("SELECT bool_and(ok) FROM (SELECT load_id >= lag(load_id) OVER (ORDER BY rowid) AS ok FROM bronze.trakt_pages)").fetchone()[0]


def test_plan_never_downgrades_and_drift_counts(tmp_path):
    con = ensure_bronze(connect(tmp_path / "w.duckdb"))
    units = [{"unit_key": f"show:9:comments:newest:{p}", "title_kind": "show", "title_id_trakt": 9,
              "resource_kind": "comments", "page": p} for p in (1, 2, 3)]
    t0 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    with BronzeWriter(con, "r1", DAY) as w:
        w.plan(units)
        w.add_page({"resource_kind": "comments", "payload": b"[]"}, units[0]["unit_key"])
        w.add_quarantine({"reason": "invalid_schema", "payload": b"{}"}, units[1]["unit_key"])
        w.add_drift("comment", {("$.a", "string"): 2}, seen_at=t0)
    with BronzeWriter(con, "r2", DAY) as w:
        w.plan(units + [{"unit_key": "show:9:comments:newest:4"}])
        w.add_drift("comment", {("$.a", "string"): 5, ("$.b", "null"): 1}, seen_at=t0 + dt.timedelta(days=1))
    states = dict(con.execute("SELECT unit_key, state FROM bronze.ingest_ledger").fetchall())
    assert states == {"show:9:comments:newest:1": "done", "show:9:comments:newest:2": "failed",
                      "show:9:comments:newest:3": "planned", "show:9:comments:newest:4": "planned"}
    # the planned unit kept its planned metadata when the page arrived
    assert con.execute("SELECT title_kind, title_id_trakt, page, attempts FROM bronze.ingest_ledger WHERE unit_key LIKE '%:1'").fetchone() == ("show", 9, 1, 1)
    assert ledger_summary(con, DAY)["by_state"] == {"planned": 2, "done": 1, "failed": 1}
    drift = con.execute("SELECT json_path, count, first_seen::DATE, last_seen::DATE FROM bronze.schema_drift ORDER BY 1").fetchall()
    assert drift == [("$.a", 7, dt.date(2026, 5, 1), dt.date(2026, 5, 2)), ("$.b", 1, dt.date(2026, 5, 2), dt.date(2026, 5, 2))]


def test_runs_and_state_survive_reopen(tmp_path):
    wh = tmp_path / "w.duckdb"
    con = ensure_bronze(connect(wh))
    start_run(con, "a", DAY, "replay"); finish_run(con, "a", "stopped", {"reason": "retry_after", "at": dt.date(2026, 5, 1)})
    start_run(con, "b", DAY, "replay")
    set_state(con, "followed_titles", {"movie": [1, 2]})
    con.close()
    con = connect(wh, read_only=True)
    runs = last_runs(con)
    assert [(r["run_id"], r["status"]) for r in runs] == [("b", "running"), ("a", "stopped")]
    assert runs[1]["summary"] == {"reason": "retry_after", "at": "2026-05-01"}
    assert runs[1]["finished_at"].tzinfo is not None
    assert get_state(con, "followed_titles") == {"movie": [1, 2]}
    assert len(last_runs(con, n=1)) == 1


# --- crash safety -------------------------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, random
    sys.path.insert(0, sys.argv[3])
    from test_bronze import page_row, comments_payload, DAY
    from trakt_nb.land.bronze import connect, ensure_bronze
    from trakt_nb.land.bronze_writer import BronzeWriter
    from trakt_nb.land.ledger import done_units
    wh, n, batch = sys.argv[1], int(sys.argv[2]), 7
    con = ensure_bronze(connect(wh))
    done = done_units(con, DAY)
    rng = random.Random(len(done))
    payloads = [comments_payload(rng) for _ in range(20)]
    w = BronzeWriter(con, f"run-{len(done)}", DAY, batch_pages=batch)
    announced = False
    for i in range(n):
        row, key = page_row(i, payloads[i % 20])
        if key in done: continue
        w.add_page(row, key)
        if w.stats["flushes"] and not announced:
            print("flushed", flush=True); announced = True
    w.flush()
    print("finished", flush=True)
""")


@pytest.mark.slow
def test_sigkill_mid_batch_leaves_whole_batches_and_resumes(tmp_path):
    wh, script = tmp_path / "w.duckdb", tmp_path / "writer.py"
    script.write_text(WRITER)
    n, rng = 800, random.Random(20260501)  # several times what four attempts write before their kill (~30 pages each, ~110 at most)
    tests_dir = os.path.dirname(__file__)
    for attempt in range(4):
        p = subprocess.Popen([sys.executable, str(script), str(wh), str(n), tests_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        assert first == "flushed\n", p.stderr.read()
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL  # killed, not finished
        con = connect(wh)
        pages, done, per_load = consistency(con)
        assert len(pages) == len(set(pages)), "a page was written twice"
        assert set(pages) == done, "page rows and done ledger rows differ"
        assert set(per_load.values()) == {7}, f"a partial batch was written: {per_load}"
        assert 0 < len(pages) < n
        con.close()
    # resume to the end: every unit exactly once
    out = subprocess.run([sys.executable, str(script), str(wh), str(n), tests_dir], capture_output=True, text=True, timeout=600)  # a safety net only: under load ~110 transactions can take seconds
    assert out.returncode == 0 and out.stdout.strip().endswith("finished"), out.stderr
    con = connect(wh)
    pages, done, per_load = consistency(con)
    assert len(pages) == n == len(set(pages)) and set(pages) == done
    assert ledger_summary(con, DAY) == {"total": n, "by_state": {"planned": 0, "done": n, "failed": 0}, "by_resource": {"comments": {"done": n}}}


# --- the lock -----------------------------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from trakt_nb.land.lock import warehouse_lock
    with warehouse_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")
TAKER = textwrap.dedent("""
    import sys
    from trakt_nb.land.lock import warehouse_lock
    with warehouse_lock(sys.argv[1], wait_s=float(sys.argv[2])):
        print("acquired", flush=True)
""")


def _holder(tmp_path, wh):
    (tmp_path / "holder.py").write_text(HOLDER)
    p = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(wh)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "locked\n"
    return p


@pytest.mark.slow
def test_lock_refuses_second_process_until_holder_is_killed(tmp_path):
    wh = tmp_path / "data" / "w.duckdb"
    (tmp_path / "taker.py").write_text(TAKER)
    take = lambda wait: subprocess.run([sys.executable, str(tmp_path / "taker.py"), str(wh), str(wait)], capture_output=True, text=True, timeout=60)
    holder = _holder(tmp_path, wh)
    try:
        t0 = time.monotonic()
        out = take(1.0)
        assert out.returncode != 0 and "acquired" not in out.stdout
        assert f"another trakt-nb run (pid {holder.pid}) is writing {wh.resolve()}" in out.stderr
        assert time.monotonic() - t0 >= 1.0  # it waited wait_s before giving up
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            with warehouse_lock(wh): pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert (wh.parent / "w.duckdb.lock").exists()  # the stale file stays, and blocks nobody
    out = take(0)
    assert out.returncode == 0 and out.stdout == "acquired\n", out.stderr


@pytest.mark.slow
def test_lock_waits_for_holder_to_die(tmp_path):
    wh = tmp_path / "w.duckdb"
    holder = _holder(tmp_path, wh)
    (tmp_path / "taker.py").write_text(TAKER)
    taker = subprocess.Popen([sys.executable, str(tmp_path / "taker.py"), str(wh), "30"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert taker.poll() is None  # still waiting
    os.kill(holder.pid, signal.SIGKILL); holder.wait(timeout=30)
    assert taker.wait(timeout=30) == 0 and taker.stdout.read() == "acquired\n"


@pytest.mark.slow
def test_connect_names_the_process_holding_the_file(tmp_path):
    wh = tmp_path / "w.duckdb"
    p = subprocess.Popen([sys.executable, "-c", "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(120)", str(wh)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "open\n"
        with pytest.raises(UserError, match=f"open in another process \\(pid {p.pid}\\)"):
            connect(wh)
    finally:
        os.kill(p.pid, signal.SIGKILL); p.wait(timeout=30)
    connect(wh).close()  # free once the holder died


# --- throughput ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_write_throughput(tmp_path, capsys):
    "add_page + flush of 1000 distinct pages of ~25 KB in batches of 50 keeps every page once; the rate is printed, not asserted (speed is measured in bench/)."
    rng = random.Random(1)
    base = [comments_payload(rng) for _ in range(200)]
    # every page distinct (a different first id), so DuckDB cannot dictionary-compress identical payloads
    payloads = [b'[{"id":%d,' % i + b[2:] for i, b in enumerate(base * 5)]
    n, mb = len(payloads), sum(map(len, payloads)) / 1e6
    con = ensure_bronze(connect(tmp_path / "w.duckdb"))
    t0 = time.perf_counter()
    with BronzeWriter(con, "bench", DAY, batch_pages=50) as w:
        for i, pl in enumerate(payloads): w.add_page(*page_row(i, pl))
    secs = time.perf_counter() - t0
    con.execute("CHECKPOINT")
    size = os.path.getsize(tmp_path / "w.duckdb") / 1e6
    assert con.execute("SELECT count(*), count(DISTINCT unit_key) FROM bronze.trakt_pages").fetchone() == (n, n) == (1000, 1000)
    assert w.load_ids == list(range(1, n // 50 + 1))  # one load_id per batch of 50
    assert con.execute("SELECT count(DISTINCT payload_sha256) FROM bronze.trakt_pages").fetchone()[0] == n
    with capsys.disabled():
        print(f"\nbronze write: {n} pages, {mb:.0f} MB payload (avg {mb * 1000 / n:.1f} KB/page) in {secs:.2f} s "
              f"= {n / secs:,.0f} pages/s, {mb / secs:.0f} MB/s; file {size:.0f} MB after checkpoint")

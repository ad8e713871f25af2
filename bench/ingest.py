"""Ingest throughput and API-call efficiency, side by side.

Builds a replay world with ~N visible top-level comments over a handful of titles, serves it as of a
fixed day from a separate process on loopback, and times, each variant in its own subprocess (peak RSS
from `ru_maxrss`), the same comment pages (limit 100) fetched by:

1. our `trakt_nb.land.ingest.ingest` full crawl into a fresh DuckDB file (loopback, then in-process);
2. a bare loop: httpx.AsyncClient (same concurrency) + json.loads + one bulk insert, no validation —
   over the comment-listing pages, and over exactly the URLs our ingest called; on httpx's own
   connection pool and on aiohttp's (`AiohttpTransport`, what our client uses by default);
3. dlt's `rest_api` source into DuckDB: default (jsonl loader files, append), then parquet.

Then the daily-incremental call efficiency: ingest day D in full, then D+1, and compare the calls of
D+1 with the lower bound (per title: ceil(comments created since watermark - lookback / limit), at
least 1, + 1 ratings call, + the reply pages needed).

Run from the project root:  .venv/bin/python -m bench.ingest  [--comments 100000] [--quick] [--repeat 3]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LIMIT = 100  # default page size, as in the calibration; --limit changes it for every variant alike
HEADERS = {"Content-Type": "application/json", "trakt-api-version": "2", "User-Agent": "trakt-nb-bench/1"}
DAY = dt.date(2026, 3, 14)  # the run day D (mid-span, so day D+1 brings a realistic trickle of new comments)


# -- the world ------------------------------------------------------------------------------------
def _spec(cfg: dict):
    from trakt_nb.source.replay_world import WorldSpec
    return WorldSpec(seed=cfg["seed"], movies=cfg["movies"], shows=cfg["shows"], comments_per_title=cfg["cpt"])


def plan_world(n_comments: int, seed: int = 11, movies: int = 5, shows: int = 3) -> dict:
    "A world config whose visible top-level comments as of DAY are close to `n_comments`."
    from trakt_nb.source.replay_world import World
    from trakt_nb.source.replay_as_of import ground_truth
    cfg = {"seed": seed, "movies": movies, "shows": shows, "cpt": n_comments / (movies + shows), "day": DAY.isoformat()}
    for _ in range(3):
        g = ground_truth(World.build(_spec(cfg)), DAY)
        top = int((g.parent_id == 0).sum())
        if abs(top - n_comments) / n_comments < 0.03: break
        cfg["cpt"] *= n_comments / top
    w = World.build(_spec(cfg))
    g = ground_truth(w, DAY)
    cfg.update(top=int((g.parent_id == 0).sum()), replies=int((g.parent_id != 0).sum()),
               titles=[(k, int(t)) for k, t in zip(w.titles.kind, w.titles.trakt)],
               per_title={f"{k}:{t}": int(n) for (k, t), n in g[g.parent_id == 0].groupby(["title_kind", "title_id_trakt"]).size().items()})
    return cfg


def _settings(cfg: dict, wd: Path, url: str = "", http_transport: str = "aiohttp"):
    from trakt_nb.config import load_settings
    return load_settings(env={}).replace(
        storage={"warehouse": wd / "w.duckdb", "state_dir": wd, "reports_dir": wd},
        replay={"seed": cfg["seed"], "movies": cfg["movies"], "shows": cfg["shows"], "comments_per_title": cfg["cpt"],
                "rate_limit_calls": 10**9, "rate_limit_period_s": 1, "url": url, "faults": ""},
        titles={"movies": [str(t) for k, t in cfg["titles"] if k == "movie"], "shows": [str(t) for k, t in cfg["titles"] if k == "show"],
                "trending_top_n": 0},
        client={"comments_limit": cfg['limit'], "concurrency": cfg["concurrency"], "http_transport": http_transport},
        run={"source": "replay", "full_crawl_max_pages": 100_000})


def _app(cfg: dict, as_of: dt.date):
    from trakt_nb.land.ledger import end_of_day
    from trakt_nb.source.replay_api import ReplayAPI
    from trakt_nb.source.replay_world import get_world
    return ReplayAPI(get_world(_spec(cfg)), as_of=end_of_day(as_of), rate_limit_calls=10**9, rate_limit_period_s=1)


# -- the server process ---------------------------------------------------------------------------
class Cached:
    "An ASGI wrapper answering a repeated GET (same as_of, path and query) from memory, so a warmed server costs almost nothing."
    def __init__(self, app):
        self.app, self.store = app, {}
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_replay/"): return await self.app(scope, receive, send)
        from urllib.parse import parse_qsl
        key = (self.app.as_of, scope["path"], tuple(sorted(parse_qsl(scope.get("query_string", b"").decode()))))
        hit = self.store.get(key)
        if hit is not None: self.app.requests += 1  # still counted by /_replay/state
        else:
            msgs = []
            async def keep(m): msgs.append(m)
            await self.app(scope, receive, keep)
            hit = msgs
            if msgs and msgs[0].get("status") in (200, 404): self.store[key] = msgs
        for m in hit: await send(m)


def serve(cfg: dict, port: int, cached: bool):
    "Serve the world as of cfg['day'] on loopback until killed."
    import uvicorn
    app = _app(cfg, dt.date.fromisoformat(cfg["day"]))
    if cached: app = Cached(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False, date_header=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _proc_cpu(pid: int) -> float:
    "User + system CPU seconds of a process so far."
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _admin(url: str, path: str, data: dict | None = None) -> dict:
    req = urllib.request.Request(url + path, data=None if data is None else json.dumps(data).encode(), method="GET" if data is None else "POST")
    with urllib.request.urlopen(req, timeout=30) as r: return json.loads(r.read())


# -- variants (each runs in its own process) --------------------------------------------------------
def _comment_paths(cfg: dict) -> list[str]:
    "Every comment-listing page of every title, as of the day (pages of the configured limit)."
    out = []
    for (kind, tid) in cfg["titles"]:
        n = cfg["listing"][f"{kind}:{tid}"]
        out += [f"/{kind}s/{tid}/comments/newest?page={p}&limit={cfg['limit']}" for p in range(1, max(1, math.ceil(n / cfg['limit'])) + 1)]
    return out


def _ingest_paths(cfg: dict) -> list[str]:
    "The URLs our ingest called in its loopback run (written by that run)."
    return json.loads(Path(cfg["ingest_paths"]).read_text())


def v_ingest(cfg: dict, wd: Path, url: str, in_process: bool, replies: bool = True, silver: bool = False,
             http_transport: str = "aiohttp") -> dict:
    import trakt_nb.land.comments
    from trakt_nb.land.ingest import ingest
    if not replies:  # diagnostic only: the same crawl with reply threads skipped, to compare comment pages with comment pages
        async def no_replies(*a, **k): return None
        trakt_nb.land.comments.crawl_replies = no_replies
    from trakt_nb.source.replay_world import get_world
    from trakt_nb.land.bronze import connect
    s = _settings(cfg, wd, "" if in_process else url, http_transport)
    if in_process: get_world(_spec(cfg))  # built before the clock starts, as the server process's world is
    t0, c0 = time.perf_counter(), _cpu()
    summ = ingest(s, DAY, in_process=in_process, progress=False)
    if silver:  # like for like with dlt's typed, flattened table: bronze plus the typed comment events
        from trakt_nb.land.store import DuckFileStore
        from trakt_nb.model.silver import build_silver
        con = connect(s); build_silver(DuckFileStore(con)); con.close()
    secs, cpu = time.perf_counter() - t0, _cpu() - c0
    con = connect(s, read_only=True)
    by_kind = dict(con.execute("""SELECT resource_kind, count(*) FROM bronze.trakt_pages GROUP BY 1""").fetchall())
    items = con.execute("""SELECT coalesce(sum(json_array_length(payload)), 0) FROM bronze.trakt_pages
                           WHERE resource_kind IN ('comments', 'replies')""").fetchone()[0]
    paths = [("/3" if k == "tmdb" else "") + p for k, p in
             con.execute("SELECT resource_kind, request_path FROM bronze.trakt_pages ORDER BY fetched_at").fetchall()]
    con.close()
    if replies: (wd / "ingest_paths.json").write_text(json.dumps(paths))
    return {"seconds": secs, "cpu_s": cpu, "comments": summ.comments_seen, "comments_in_bronze": int(items), "pages": summ.pages,
            "calls": summ.calls, "status": summ.status, "pages_by_kind": by_kind, "ingest_duration_s": summ.duration_s,
            "quarantined": summ.quarantined}


async def _bare(paths: list[str], client, concurrency: int) -> list[tuple[str, bytes]]:
    sem = asyncio.Semaphore(concurrency)
    async def one(p):
        async with sem:
            r = await client.get(p)
            if r.status_code not in (200, 404): r.raise_for_status()  # TMDb answers 404 for titles it does not know
            return p, r.content
    return await asyncio.gather(*(one(p) for p in paths))


def v_bare(cfg: dict, wd: Path, url: str, in_process: bool, paths: list[str], aio: bool = False) -> dict:
    import duckdb
    import httpx
    import pandas as pd
    from trakt_nb.config import REPLAY_DEV_KEY, REPLAY_TMDB_TOKEN
    headers = {**HEADERS, "trakt-api-key": REPLAY_DEV_KEY, "Authorization": f"Bearer {REPLAY_TMDB_TOKEN}"}
    limits = httpx.Limits(max_connections=cfg["concurrency"], max_keepalive_connections=cfg["concurrency"])
    if in_process:
        app = _app(cfg, DAY)
        mk = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replay.local", headers=headers)
    else:
        from trakt_nb.source.http import AiohttpTransport
        transport = AiohttpTransport(cfg["concurrency"]) if aio else None  # the connection pool our client uses by default
        mk = lambda: httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60, transport=transport)
    async def run():
        async with mk() as c: return await _bare(paths, c, cfg["concurrency"])
    t0, c0 = time.perf_counter(), _cpu()
    got = asyncio.run(run())
    n = 0
    for _, body in got:
        data = json.loads(body)
        if isinstance(data, list): n += len(data)
    con = duckdb.connect(str(wd / "bare.duckdb"))
    con.execute("CREATE TABLE pages (request_path VARCHAR, fetched_at TIMESTAMPTZ, payload JSON)")
    now = dt.datetime.now(dt.timezone.utc)
    df = pd.DataFrame({"request_path": [p for p, _ in got], "fetched_at": now, "payload": [b.decode() for _, b in got]})
    con.execute("INSERT INTO pages SELECT * FROM df")
    con.close()
    secs = time.perf_counter() - t0
    return {"seconds": secs, "cpu_s": _cpu() - c0, "comments": n, "pages": len(got), "calls": len(got)}


def v_dlt(cfg: dict, wd: Path, url: str, fmt: str | None, parallel: bool, replies: bool = False) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator
    from dlt.sources.rest_api import rest_api_source
    from trakt_nb.config import REPLAY_DEV_KEY

    class TraktPages(PageNumberPaginator):
        "Page numbers from 1; stops after X-Pagination-Page-Count (Trakt gives the total in a header)."
        def __init__(self): super().__init__(base_page=1, page=1, page_param="page", total_path=None, stop_after_empty_page=True)
        def update_state(self, response, data=None):
            super().update_state(response, data)
            n = int(response.headers.get("X-Pagination-Page-Count") or 0)
            if self.current_value > n: self._has_next_page = False

    resources = [{"name": f"comments_{k}_{t}", "table_name": "comments", "write_disposition": "append",
                  **({"parallelized": True} if parallel else {}),
                  "endpoint": {"path": f"{k}s/{t}/comments/newest", "params": {"limit": cfg['limit']}, "paginator": TraktPages(),
                               "data_selector": "$"}}
                 for k, t in cfg["titles"]]
    source = rest_api_source({"client": {"base_url": url + "/", "headers": {**HEADERS, "trakt-api-key": REPLAY_DEV_KEY}},
                              "resources": resources})
    if replies:  # the same endpoints our crawl reads: each comment with replies has its thread fetched, into a `replies` table
        from dlt.sources.helpers.rest_client import RESTClient
        client = RESTClient(base_url=url + "/", headers={**HEADERS, "trakt-api-key": REPLAY_DEV_KEY})
        def walk(page):
            "Every reply page under the comments of `page`: replies can have replies, and our crawl walks whole threads."
            for c in page:
                if c.get("replies"):
                    for rp in client.paginate(f"comments/{c['id']}/replies", params={"limit": cfg['limit']},
                                              paginator=TraktPages(), data_selector="$"):
                        yield rp
                        yield from walk(rp)
        def threads(parent: str):
            @dlt.transformer(name=f"replies_of_{parent}", table_name="replies", write_disposition="append")
            def thread(page): yield from walk(page)
            return thread
        for name in list(source.resources):
            source.resources.add(source.resources[name] | threads(name))
    pipe = dlt.pipeline(pipeline_name=f"bench_{fmt or 'default'}{'_par' if parallel else ''}", pipelines_dir=str(wd / "dlt_pipelines"),
                        destination=dlt.destinations.duckdb(str(wd / "dlt.duckdb")), dataset_name="trakt")
    t0, c0 = time.perf_counter(), _cpu()
    info = pipe.run(source, **({"loader_file_format": fmt} if fmt else {}))
    secs, cpu = time.perf_counter() - t0, _cpu() - c0
    with pipe.sql_client() as c:
        n = c.execute_sql("SELECT count(*) FROM comments")[0][0]
        if replies: n += c.execute_sql("SELECT count(*) FROM replies")[0][0]
    files = [j.file_path for p in info.load_packages for j in p.jobs.get("completed_jobs", [])]
    used = sorted({Path(f).name.removesuffix(".gz").split(".")[-1] for f in files if Path(f).name.startswith("comments.")})
    tables = sorted(pipe.default_schema.data_table_names())
    ncols = len(pipe.default_schema.get_table_columns("comments"))
    return {"seconds": secs, "cpu_s": cpu, "comments": int(n), "pages": None, "calls": None, "file_format": ",".join(used) or (fmt or "jsonl"),
            "tables": tables, "comment_columns": ncols}


def run_variant(name: str, cfg: dict, wd: Path, url: str) -> dict:
    wd.mkdir(parents=True, exist_ok=True)
    if name == "ingest_loopback": out = v_ingest(cfg, wd, url, False)
    elif name == "ingest_loopback_noreplies": out = v_ingest(cfg, wd, url, False, replies=False)
    elif name == "ingest_loopback_httpx": out = v_ingest(cfg, wd, url, False, http_transport="httpx")
    elif name == "ingest_inprocess": out = v_ingest(cfg, wd, url, True)
    elif name == "ingest_silver_loopback": out = v_ingest(cfg, wd, url, False, silver=True)
    elif name == "bare_loopback": out = v_bare(cfg, wd, url, False, _comment_paths(cfg))
    elif name == "bare_aio_loopback": out = v_bare(cfg, wd, url, False, _comment_paths(cfg), aio=True)
    elif name == "bare_aio_ingest_urls": out = v_bare(cfg, wd, url, False, _ingest_paths(cfg), aio=True)
    elif name == "bare_inprocess": out = v_bare(cfg, wd, url, True, _comment_paths(cfg))
    elif name == "bare_ingest_urls_inprocess": out = v_bare(cfg, wd, url, True, _ingest_paths(cfg))
    elif name == "bare_ingest_urls": out = v_bare(cfg, wd, url, False, _ingest_paths(cfg))
    elif name == "dlt_default": out = v_dlt(cfg, wd, url, None, False)
    elif name == "dlt_jsonl": out = v_dlt(cfg, wd, url, "jsonl", False)
    elif name == "dlt_parquet": out = v_dlt(cfg, wd, url, "parquet", False)
    elif name == "dlt_parquet_parallel": out = v_dlt(cfg, wd, url, "parquet", True)
    elif name == "dlt_parquet_replies": out = v_dlt(cfg, wd, url, "parquet", False, replies=True)
    else: raise SystemExit(f"unknown variant {name}")
    ru = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    out["peak_mb"] = ru / 1024
    return out


# -- the driver ------------------------------------------------------------------------------------
def _sub(args: list[str], env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.ingest", *args], capture_output=True, text=True, env=env)


def measure(name: str, cfg_path: Path, wd: Path, url: str) -> dict:
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "TRAKT_NB_LOG_LEVEL": "error"}
    p = _sub(["--variant", name, "--cfg", str(cfg_path), "--workdir", str(wd / name), "--url", url], env)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1][:300], "stderr": p.stderr[-3000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


LABELS = {
    "bare_loopback": "bare loop, loopback (httpx + json.loads + 1 bulk insert)",
    "bare_aio_loopback": "bare loop, loopback, httpx on aiohttp's pool (our default)",
    "bare_aio_ingest_urls": "bare loop over our URLs, loopback, httpx on aiohttp's pool",
    "bare_inprocess": "bare loop, in-process (ASGI transport)",
    "bare_ingest_urls_inprocess": "bare loop over the URLs our ingest called, in-process",
    "bare_ingest_urls": "bare loop over the URLs our ingest called, loopback",
    "ingest_loopback": "trakt-nb ingest → bronze, loopback",
    "ingest_loopback_httpx": "trakt-nb ingest → bronze, loopback, http_transport = httpx",
    "ingest_inprocess": "trakt-nb ingest → bronze, in-process",
    "ingest_silver_loopback": "trakt-nb ingest → bronze + silver comment events, loopback",
    "ingest_loopback_noreplies": "diagnostic: trakt-nb ingest without reply threads, loopback",
    "dlt_default": "dlt rest_api → duckdb, default [insert_values, append]",
    "dlt_jsonl": "dlt rest_api → duckdb [jsonl, append]",
    "dlt_parquet": "dlt rest_api → duckdb [parquet, append]",
    "dlt_parquet_parallel": "dlt rest_api → duckdb [parquet, append, parallelized]",
    "dlt_parquet_replies": "dlt rest_api + reply threads → duckdb [parquet, append]",
}


def table(results: dict) -> str:
    def cps_of(name):
        b = results.get(name, {})
        return b["comments"] / b["seconds"] if "seconds" in b else None
    lines = [f"{'variant':62} {'s':>6} {'comments':>8} {'comments/s':>10} {'pages':>5} {'pages/s':>7} {'peak MB':>7} "
             f"{'CPU s':>6} {'srv CPU s':>9} {'× bare':>6}",
             "(× bare = the bare loop's comments/s over this row's, same transport: loopback or in-process)"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{LABELS[name]:62} failed: {r['error']}"); continue
        cps = r["comments"] / r["seconds"]
        r["pages"] = r.get("pages") or r.get("server_requests")  # dlt: the GETs the server answered, one per page
        pps = f"{r['pages'] / r['seconds']:8.0f}" if r.get("pages") else f"{'—':>8}"
        base_cps = cps_of("bare_inprocess" if "inprocess" in name else "bare_loopback")
        ratio = f"{base_cps / cps:6.2f}" if base_cps else f"{'—':>6}"
        srv = f"{r['server_cpu_s']:9.1f}" if "inprocess" not in name and "server_cpu_s" in r else f"{'(in proc)':>9}"
        label = LABELS[name]
        if name.startswith("dlt") and r.get("file_format") and f"[{r['file_format']}," not in label:
            label += f" (files written: {r['file_format']})"
        lines.append(f"{label:62} {r['seconds']:6.2f} {r['comments']:8,} {cps:10,.0f} {r.get('pages') or '—':>5} {pps[1:]} {r['peak_mb']:7.0f} "
                     f"{r.get('cpu_s', 0):6.1f} {srv} {ratio}")
    pairs = [("ingest_loopback", "bare_ingest_urls"), ("ingest_loopback", "bare_aio_ingest_urls"),
             ("ingest_loopback_httpx", "bare_ingest_urls"), ("ingest_inprocess", "bare_ingest_urls_inprocess")]
    for name, ref_name in pairs:
        r, ref = results.get(name, {}), results.get(ref_name, {})
        if "seconds" in r and "seconds" in ref:
            lines.append(f"like for like: {LABELS[name]} takes {r['seconds'] / ref['seconds']:.2f}× the time of the {LABELS[ref_name]} "
                         f"({ref['calls']} URLs; {r['calls']} calls)")
    return "\n".join(lines)


def incremental(cfg: dict, wd: Path, url: str) -> dict:
    "Ingest D in full, then D+1 (replay as of D+1), and compare D+1's calls with the lower bound."
    import numpy as np
    from trakt_nb.land.bronze import connect
    from trakt_nb.land.ingest import ingest
    from trakt_nb.land.ledger import end_of_day
    from trakt_nb.land.crawl import to_epoch_iso
    from trakt_nb.source.replay_world import get_world
    from trakt_nb.source.replay_as_of import replies_as_of, visible
    from trakt_nb.source.replay_listings import comment_listing, reply_listing
    wd.mkdir(parents=True, exist_ok=True)
    s = _settings(cfg, wd, url)
    d0, d1 = DAY, DAY + dt.timedelta(days=1)
    _admin(url, "/_replay/as_of", {"as_of": d0.isoformat()})
    first = ingest(s, d0, progress=False)
    _admin(url, "/_replay/as_of", {"as_of": d1.isoformat()})
    second = ingest(s, d1, progress=False)
    _admin(url, "/_replay/as_of", {"as_of": d0.isoformat()})
    con = connect(s, read_only=True)
    water = {k: json.loads(d) for k, d in con.execute(
        "SELECT unit_key, detail FROM bronze.ingest_ledger WHERE run_date = $1 AND unit_key LIKE '%:comments:done'", [d0]).fetchall()}
    calls_d1 = dict(con.execute("SELECT resource_kind, count(*) FROM bronze.trakt_pages WHERE run_date = $1 GROUP BY 1", [d1]).fetchall())
    con.close()
    w = get_world(_spec(cfg))
    t0, t1 = int(end_of_day(d0).timestamp()), int(end_of_day(d1).timestamp())
    lb = {"comment_pages": 0, "ratings": 0, "reply_pages": 0}
    for ti, (kind, tid) in enumerate(zip(w.titles.kind, w.titles.trakt)):
        det = water.get(f"{kind}:{tid}:comments:done")
        wm = (det or {}).get("max_created_epoch") or 0  # no comment seen on D: no watermark, everything is new
        cutoff = wm - s.run.lookback_days * 86400 if wm else -1
        rows = comment_listing(w, ti, "newest", t1)
        n_since = int((w.c["created"][rows] > cutoff).sum())
        lb["comment_pages"] += max(1, math.ceil(n_since / cfg['limit']))
        lb["ratings"] += 1
        # reply pages needed: every visible comment of the title (any depth) whose reply count moved from D to D+1
        allrows = np.flatnonzero((w.c["title"] == ti) & visible(w, np.arange(w.n_comments), t1))
        moved = allrows[replies_as_of(w, allrows, t1) != replies_as_of(w, allrows, t0)]
        lb["reply_pages"] += sum(max(1, math.ceil(len(reply_listing(w, int(r), t1)) / cfg['limit'])) for r in moved)
    bound = sum(lb.values())
    return {"day0": {"calls": first.calls, "pages": first.pages, "status": first.status},
            "day1": {"calls": second.calls, "pages": second.pages, "status": second.status, "pages_by_kind": calls_d1,
                     "new": second.new_comments, "seen": second.comments_seen},
            "lower_bound": bound, "lower_bound_parts": lb, "ratio": second.calls / bound}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comments", type=int, default=100_000, help="visible top-level comments in the world (default 100000)")
    ap.add_argument("--quick", action="store_true", help="a small run (~10k comments) for smoke-testing")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--limit", type=int, default=LIMIT, help=f"page size asked for by every variant (default {LIMIT}; Trakt's cap is 250)")
    ap.add_argument("--only", help="comma-separated variants to run (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every variant, interleaved; each row is its median round (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--variant"); ap.add_argument("--cfg"); ap.add_argument("--workdir"); ap.add_argument("--url", default="")
    ap.add_argument("--server", choices=["cached", "live"], default="cached",
                    help="cached (default): the loopback server is warmed by one untimed crawl and then answers from memory, "
                         "so the figures measure the clients; live: every response is generated by the replay world")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        serve(json.loads(Path(a.cfg).read_text()), a.serve, a.server == "cached"); return
    if a.variant:
        out = run_variant(a.variant, json.loads(Path(a.cfg).read_text()), Path(a.workdir), a.url)
        print(json.dumps(out, default=str)); return

    n = 10_000 if a.quick else a.comments
    wd = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    t = time.perf_counter()
    cfg = plan_world(n)
    cfg["concurrency"], cfg["limit"] = a.concurrency, a.limit
    from trakt_nb.source.replay_world import World
    from trakt_nb.source.replay_listings import comment_listing
    from trakt_nb.land.ledger import end_of_day
    w = World.build(_spec(cfg))
    tday = int(end_of_day(DAY).timestamp())
    cfg["listing"] = {f"{k}:{tid}": len(comment_listing(w, i, "newest", tday)) for i, (k, tid) in enumerate(cfg["titles"])}
    cfg["ingest_paths"] = str(wd / "ingest_loopback" / "ingest_paths.json")
    cfg_path = wd / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    print(f"world: seed {cfg['seed']}, {cfg['movies']} movies + {cfg['shows']} shows, comments_per_title {cfg['cpt']:.0f}; as of {DAY}: "
          f"{cfg['top']:,} visible top-level comments + {cfg['replies']:,} replies "
          f"({sum(math.ceil(v / cfg['limit']) for v in cfg['listing'].values())} comment pages of {cfg['limit']}); planned in {time.perf_counter() - t:.1f}s")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; concurrency {a.concurrency}; "
          f"server: separate process (uvicorn) on 127.0.0.1, {a.server}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen([sys.executable, "-m", "bench.ingest", "--serve", str(port), "--cfg", str(cfg_path), "--server", a.server],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try: _admin(url, "/_replay/state"); break
            except Exception:
                if srv.poll() is not None or time.monotonic() > deadline: raise SystemExit("replay server did not start: " + srv.stderr.read().decode()[-2000:])
                time.sleep(0.2)
        order = ["bare_loopback", "bare_aio_loopback", "ingest_loopback", "ingest_loopback_httpx", "ingest_silver_loopback", "bare_ingest_urls",
                 "bare_aio_ingest_urls", "bare_inprocess", "ingest_inprocess", "bare_ingest_urls_inprocess", "ingest_loopback_noreplies",
                 "dlt_default", "dlt_jsonl", "dlt_parquet", "dlt_parquet_parallel", "dlt_parquet_replies"]
        if a.only: order = [v for v in order if v in a.only.split(",")]
        results = {}
        if a.server == "cached":
            t = time.perf_counter()
            measure("ingest_loopback", cfg_path, wd / "warmup", url)  # fetches every URL any variant fetches
            print(f"  server warmed by one untimed ingest crawl in {time.perf_counter() - t:.1f}s", flush=True)
        rounds: dict[str, list[dict]] = {name: [] for name in order}
        for k in range(a.repeat):
            if a.repeat > 1: print(f"  round {k + 1} of {a.repeat}", flush=True)
            for name in order:
                cpu0 = _proc_cpu(srv.pid)
                _admin(url, "/_replay/reset", {})
                shutil.rmtree(wd / name, ignore_errors=True)  # every round starts from an empty work directory
                r = measure(name, cfg_path, wd, url)
                if "error" not in r:
                    r["server_requests"] = _admin(url, "/_replay/state")["requests"]
                    r["server_cpu_s"] = _proc_cpu(srv.pid) - cpu0
                    rounds[name].append(r)
                else: results[name] = r
                if "error" in r: print(f"  {name}: FAILED {r['error']}\n{r.get('stderr', '')}", file=sys.stderr, flush=True)
                else: print(f"  {name}: {r['seconds']:.2f}s, {r['comments']:,} comments, {r['peak_mb']:.0f} MB"
                            + (f", {r['calls']} calls, pages {r.get('pages_by_kind')}" if name.startswith("ingest") else "")
                            + (f", file format {r['file_format']}, tables {r['tables']}, {r['comment_columns']} columns in comments" if name.startswith("dlt") else ""),
                            flush=True)
        for name, rs in rounds.items():
            if rs: results[name] = sorted(rs, key=lambda r: r["seconds"])[(len(rs) - 1) // 2]  # the median round (lower middle)
        results = {n: results[n] for n in order if n in results}
        if a.repeat > 1:
            print("\nseconds per round: " + "; ".join(f"{n} " + "/".join(f"{r['seconds']:.2f}" for r in rs) for n, rs in rounds.items() if rs))
        print()
        print(table(results))
        if not a.only or "incremental" in a.only:
            inc = incremental(cfg, wd / "incremental", url)
            lb = inc["lower_bound_parts"]
            print(f"\ndaily incremental: day D={DAY} full: {inc['day0']['calls']} calls; day D+1: {inc['day1']['calls']} calls "
                  f"(pages by kind {inc['day1']['pages_by_kind']}, {inc['day1']['new']} new comments); lower bound {inc['lower_bound']} "
                  f"= {lb['comment_pages']} comment pages + {lb['ratings']} ratings + {lb['reply_pages']} reply pages; "
                  f"calls / lower bound = {inc['ratio']:.2f}")
        print(f"load average {os.getloadavg()[0]:.1f} at the end (other jobs share the machine)")
        (wd / "results.json").write_text(json.dumps(results, default=str, indent=1))
    finally:
        srv.terminate(); srv.wait(timeout=10)
        if not a.keep: shutil.rmtree(wd, ignore_errors=True)
        else: print(f"work directory kept: {wd}")


if __name__ == "__main__":
    main()

"""What the replay API costs: building worlds, and comment pages served per second, against a client's bare parse.

Times (1) building the default world and a ~1M-comment world, (2) pages of `limit=100` comments served
in-process (httpx.ASGITransport) and over loopback (uvicorn; server in a thread of the client's process,
as the pipeline runs it, and in a process of its own), each by one sequential client and with 8 requests
in flight, and (3) a bare `orjson.loads` of the same page bodies: the least work a client does per page.
The ratio column is pages/s served over pages/s parsed.

Run from the project root:  .venv/bin/python -m bench.replay  [--pages 400] [--repeat 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time

import httpx
import orjson

from trakt_nb.source.replay_api import DEFAULT_HEADERS, ReplayAPI
from trakt_nb.source.replay_serve import serve_in_thread
from trakt_nb.source.replay_world import World, WorldSpec, to_epoch
from trakt_nb.source.replay_listings import SORTS, comment_listing

AS_OF = "2026-11-25"
LIMIT = 100
CONCURRENCY = 8
BIG = WorldSpec(movies=600, shows=400, comments_per_title=1000)  # ~1.1M comments, replies included


def page_requests(w: World, n: int) -> list[str]:
    "`n` distinct, non-empty comment pages of `limit=100`, spread over titles and sorts."
    t, out = to_epoch(AS_OF), []
    by_title = []
    for i, r in enumerate(w.titles.itertuples()):
        pages = -(-len(comment_listing(w, i, "oldest", t)) // LIMIT)
        by_title.append([f"/{r.kind}s/{r.slug}/comments/{s}?page={p}&limit={LIMIT}"
                         for p in range(1, pages + 1) for s in SORTS if s != "watched" or r.kind == "show"])
    while len(out) < n and any(by_title):
        for lst in by_title:
            if lst and len(out) < n: out.append(lst.pop(0))
    return out


def make_app(w: World) -> ReplayAPI:
    return ReplayAPI(w, as_of=AS_OF, rate_limit_calls=10**9)


def asgi_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replay.local", headers=DEFAULT_HEADERS)


async def run_async(client: httpx.AsyncClient, paths: list[str], concurrency: int) -> list[bytes]:
    "Fetch every path with at most `concurrency` in flight; the bodies in order."
    sem = asyncio.Semaphore(concurrency)
    async def one(p):
        async with sem:
            r = await client.get(p)
            if r.status_code != 200: raise RuntimeError(f"{p}: HTTP {r.status_code}")
            return r.content
    return await asyncio.gather(*(one(p) for p in paths))


def timed(fn, repeat: int) -> tuple[float, object]:
    "Best wall time of `repeat` runs of `fn()`, and its last result."
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter(); out = fn(); best = min(best, time.perf_counter() - t0)
    return best, out


def in_process(w, paths, concurrency, repeat):
    def go():
        async def main():
            async with asgi_client(make_app(w)) as c: return await run_async(c, paths, concurrency)
        return asyncio.run(main())
    return timed(go, repeat)


def over_http(url, paths, concurrency, repeat):
    def go():
        if concurrency == 1:
            with httpx.Client(base_url=url, headers=DEFAULT_HEADERS, timeout=60) as c:
                out = []
                for p in paths:
                    r = c.get(p); r.raise_for_status(); out.append(r.content)
                return out
        async def main():
            async with httpx.AsyncClient(base_url=url, headers=DEFAULT_HEADERS, timeout=60) as c:
                return await run_async(c, paths, concurrency)
        return asyncio.run(main())
    return timed(go, repeat)


def serve_forever(port: int):
    "Child process: serve the default world on 127.0.0.1:`port` until killed."
    srv = serve_in_thread(make_app(World.build(WorldSpec())), port=port)
    print("ready", flush=True)
    srv.thread.join()


def build_big() -> dict:
    "Child process: build the ~1M-comment world; its time, size and peak memory."
    import resource
    t0 = time.perf_counter(); w = World.build(BIG); s = time.perf_counter() - t0
    return {"s": s, "comments": w.n_comments, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=400, help="distinct comment pages per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--build-big", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve: return serve_forever(a.serve)
    if a.build_big: return print(orjson.dumps(build_big()).decode())

    print(f"python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter(); w = World.build(WorldSpec()); build_default = time.perf_counter() - t0
    big = orjson.loads(subprocess.run([sys.executable, "-m", "bench.replay", "--build-big"], capture_output=True,
                                      check=True, text=True).stdout.strip().splitlines()[-1])
    paths = page_requests(w, a.pages)

    _, bodies = in_process(w, paths, 1, 1)  # warm-up: the world caches its user objects on first use
    parse_s = [timed(lambda: [orjson.loads(b) for b in bodies], max(5, a.repeat))[0]]
    rows = {}  # figure -> pages/s
    for c in (1, CONCURRENCY):
        s, got = in_process(w, paths, c, a.repeat)
        assert got == bodies, "in-process bodies differ between runs"
        rows[f"in-process, {'sequential' if c == 1 else f'{c} in flight'}"] = len(paths) / s
    with serve_in_thread(make_app(w)) as srv:
        for c in (1, CONCURRENCY):
            s, got = over_http(srv.url, paths, c, a.repeat)
            assert got == bodies, "loopback bodies differ from in-process ones"
            rows[f"loopback, server in a thread, {'sequential' if c == 1 else f'{c} in flight'}"] = len(paths) / s
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "bench.replay", "--serve", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready": raise RuntimeError("the replay server process did not start")
        for c in (1, CONCURRENCY):
            s, got = over_http(f"http://127.0.0.1:{port}", paths, c, a.repeat)
            assert got == bodies, "loopback bodies differ from in-process ones"
            rows[f"loopback, server in its own process, {'sequential' if c == 1 else f'{c} in flight'}"] = len(paths) / s
    finally:
        child.terminate(); child.wait(timeout=10)
    parse_s.append(timed(lambda: [orjson.loads(b) for b in bodies], max(5, a.repeat))[0])  # before and after: the best
    parse = len(bodies) / min(parse_s)

    items = sum(len(orjson.loads(b)) for b in bodies)
    kb = sum(map(len, bodies)) / len(bodies) / 1024
    print(f"{len(paths)} distinct comment pages of limit={LIMIT} from the default world as of {AS_OF}: "
          f"{items / len(bodies):.1f} comments and {kb:.1f} KB per page; best of {a.repeat}")
    print()
    table = [("figure", "value", "ratio"), ("-" * 58, "-" * 24, "-" * 22),
             (f"build default world ({w.n_comments:,} comments)", f"{build_default:.2f} s", ""),
             (f"build ~1M world ({big['comments']:,} comments)", f"{big['s']:.2f} s", f"peak RSS {big['rss_mb']:.0f} MB"),
             ("client floor: orjson.loads of the same bodies", f"{parse:,.0f} pages/s", "1 (served / parsed)")]
    for name, v in rows.items():
        table.append((f"served: {name}", f"{v:,.0f} pages/s", f"{v / parse:.2f} (parsing is {parse / v:.1f}x faster)"))
    for f, v, r in table: print(f"{f:<58} {v:>24}  {r}")


if __name__ == "__main__":
    main()

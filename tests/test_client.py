"""trakt_nb.source.client against small in-process servers that behave like Trakt, Cloudflare and TMDb."""
import asyncio
import math
import random
import time
from collections import deque
from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pytest
import structlog

import trakt_nb
from trakt_nb.source.client import (ApiKeyRejected, ClientStats, InvalidBody, RateLimitedUntil, ResponseTooLarge, RetriesExhausted,
                                    TraktClient)
from trakt_nb.source.rate_limit import FakeTime, MIN_WAIT_S, RateLimiter
from trakt_nb.config import UserError, configure_logging, load_settings

KEY, TOKEN = "pytest-key-91c0de77", "pytest-token-3e5f10"
S = load_settings(env={})
TRAKT_HDRS = {"content-type": "application/json; charset=utf-8", "x-runtime": "0.010", "x-request-id": "r-1"}


def run(coro):
    return asyncio.run(coro)


def asgi(handler):
    """A raw ASGI app: `await handler(method, path, query) -> (status, headers, body)`."""
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        query = dict(httpx.QueryParams(scope["query_string"].decode()))
        hdrs = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, headers, body = await handler(scope["path"], query, hdrs)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), str(v).encode()) for k, v in headers.items()]})
        await send({"type": "http.response.body", "body": body})
    return app


def tj(data, status=200, **headers):
    """(status, headers, body) of a Trakt-shaped JSON answer; header values as strings."""
    return status, {**TRAKT_HDRS, **{k.replace("_", "-"): str(v) for k, v in headers.items()}}, orjson.dumps(data)


def client_for(transport, settings=S, fake=True, **kw):
    ft = FakeTime()
    if fake:
        kw = {"sleep": ft.sleep, "clock": ft.monotonic, "now": ft.now, **kw}
    kw = {"api_key": KEY, "tmdb_token": TOKEN, "rng": random.Random(11), **kw}
    return TraktClient(settings, transport=transport, base_url="https://api.trakt.test",
                       tmdb_base_url="https://tmdb.test/3", **kw), ft


def mock(answers):
    """MockTransport replaying a list of httpx.Response (or exceptions to raise), recording requests."""
    seen = []
    def handler(request):
        seen.append(request)
        a = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(a, Exception):
            raise a
        return a
    return httpx.MockTransport(handler), seen


# ---------------------------------------------------------------- headers and secrets

def test_headers_over_asgi():
    got = []
    async def h(path, q, hdrs):
        got.append((path, hdrs))
        return tj({"ok": True})
    async def go():
        async with client_for(httpx.ASGITransport(app=asgi(h)))[0] as c:
            await c.get("/movies/trending", {"limit": 5})
            await c.get("/tv/1399", api="tmdb")
    run(go())
    (p1, h1), (p2, h2) = got
    assert (p1, h1["trakt-api-key"], h1["trakt-api-version"], h1["content-type"]) == ("/movies/trending", KEY, "2", "application/json")
    assert h1["user-agent"] == f"trakt-nb/{trakt_nb.__version__}" and "authorization" not in h1
    assert p2 == "/3/tv/1399" and h2["authorization"] == f"Bearer {TOKEN}" and "trakt-api-key" not in h2
    assert h2["user-agent"].startswith("trakt-nb/")


def test_key_never_in_logs_paths_or_errors(capsys):
    import io
    buf = io.StringIO()
    configure_logging("debug", stream=buf)
    try:
        async def go():
            errors = []
            scenarios = [
                [httpx.Response(503, headers=TRAKT_HDRS)],
                [httpx.Response(403, json={"error": KEY}, headers=TRAKT_HDRS)],
                [httpx.ConnectError(f"refused for {KEY}")],
                [httpx.Response(200, content=b"[1,", headers=TRAKT_HDRS)],
                [httpx.Response(429, text="slow down", headers={"content-type": "text/plain", "retry-after": "5000"})],
                [httpx.Response(200, content=b"x" * 5000, headers={"content-length": "5000"})],
            ]
            for answers in scenarios:
                t, _ = mock(answers)
                c, _ = client_for(t, S.replace(client={"max_attempts": 2, "max_response_mb": 0.001}))
                try:
                    await c.get_json(f"/movies/{KEY}/comments/newest", {"api_key": KEY, "page": 1})
                except Exception as e:  # noqa: BLE001 - every kind is checked below
                    errors.append(e)
            return errors
        errors = run(go())
    finally:
        structlog.reset_defaults()
    kinds = {type(e) for e in errors}
    assert kinds == {RetriesExhausted, ApiKeyRejected, InvalidBody, RateLimitedUntil, ResponseTooLarge}
    for e in errors:
        assert KEY not in str(e) and KEY not in repr(e)
        resp = getattr(e, "response", None)
        if resp is not None:
            assert KEY not in resp.request_path and "***" in resp.request_path
    out = buf.getvalue() + capsys.readouterr().out
    assert "http_request" in out and KEY not in out and TOKEN not in out


# ---------------------------------------------------------------- pagination

def comments_app(n, clamp=250, hidden=None, empty_from=None, log=None):
    hidden = hidden or {}
    async def h(path, q, hdrs):
        if log is not None:
            log.append(dict(q))
        page, limit = int(q["page"]), min(int(q["limit"]), clamp)
        pages = max(1, math.ceil(n / limit))
        ids = list(range((page - 1) * limit + 1, min(page * limit, n) + 1))
        ids = ids[: max(0, len(ids) - hidden.get(page, 0))]
        if empty_from is not None and page >= empty_from:
            ids = []
        return tj([{"id": i, "parent_id": 0} for i in ids], x_pagination_page=page, x_pagination_limit=limit,
                  x_pagination_page_count=pages, x_pagination_item_count=n)
    return asgi(h)


def crawl(app, **kw):
    async def go():
        async with client_for(httpx.ASGITransport(app=app))[0] as c:
            return [(r.page, r.page_count, items) async for r, items in c.paginate("/movies/x/comments/newest", {"sort": "newest"}, **kw)]
    return run(go())


def test_clamped_limit_still_every_page():
    log = []
    pages = crawl(comments_app(1001, log=log), limit=1000)
    assert [p for p, _, _ in pages] == [1, 2, 3, 4, 5]
    assert sorted(c["id"] for _, _, items in pages for c in items) == list(range(1, 1002))
    assert [q["limit"] for q in log] == ["1000", "250", "250", "250", "250"]
    assert all(q["sort"] == "newest" for q in log)


def test_short_pages_in_the_middle_do_not_stop():
    pages = crawl(comments_app(95, hidden={1: 1, 3: 4, 5: 9}), limit=10)
    assert [len(items) for _, _, items in pages] == [9, 10, 6, 10, 1, 10, 10, 10, 10, 5]


def test_empty_page_stops_and_stop_predicate():
    pages = crawl(comments_app(100, empty_from=4), limit=10)
    assert [len(items) for _, _, items in pages] == [10, 10, 10, 0]
    seen_ids = {25}
    pages = crawl(comments_app(100), limit=10, stop=lambda items: any(c["id"] in seen_ids for c in items))
    assert [p for p, _, _ in pages] == [1, 2, 3]


def test_limit_always_sent_default():
    log = []
    crawl(comments_app(3, log=log))
    assert log == [{"sort": "newest", "page": "1", "limit": str(S.client.comments_limit)}]


# ---------------------------------------------------------------- 429 and the limiter

def test_429_retry_after_is_waited():
    t, _ = mock([httpx.Response(429, json={}, headers={**TRAKT_HDRS, "retry-after": "30"}), httpx.Response(200, json=[], headers=TRAKT_HDRS)])
    c, ft = client_for(t)
    r = run(c.get("/movies/trending"))
    assert r.status == 200 and len(ft.sleeps) == 1 and 30 <= ft.sleeps[0] <= 31
    assert c.stats.rate_limited == 1 and c.stats.retries == 1


def test_429_zero_retry_after_is_not_a_tight_loop():
    t, _ = mock([httpx.Response(429, json={}, headers={**TRAKT_HDRS, "retry-after": "0"}), httpx.Response(200, json=[], headers=TRAKT_HDRS)])
    c, ft = client_for(t)
    run(c.get("/movies/trending"))
    assert ft.sleeps[0] >= S.client.backoff_base_s


def test_429_without_retry_after_backs_off_growing_capped_jittered():
    settings = S.replace(client={"max_attempts": 8, "backoff_base_s": 1.0, "backoff_cap_s": 8.0})
    runs = []
    for seed in range(40):
        t, _ = mock([httpx.Response(429, json={}, headers=TRAKT_HDRS)])
        c, ft = client_for(t, settings, rng=random.Random(seed))
        with pytest.raises(RetriesExhausted) as ei:
            run(c.get("/movies/trending"))
        assert ei.value.status == 429 and c.stats.calls == 8
        runs.append(ft.sleeps)
    caps = [min(8.0, 2.0 ** i) for i in range(7)]
    for sleeps in runs:
        assert len(sleeps) == 7
        assert all(MIN_WAIT_S <= w <= cap + 1e-9 for w, cap in zip(sleeps, caps))
    by_retry = list(zip(*runs))
    means = [sum(ws) / len(ws) for ws in by_retry]
    assert means[0] < means[1] < means[2] < means[3]  # grows
    assert max(max(ws) for ws in by_retry) <= 8.0  # capped
    assert all(len(set(ws)) > 30 for ws in by_retry[1:])  # jittered


def test_429_pauses_every_task_and_ratelimit_resyncs():
    """A 429 with X-Ratelimit remaining=0 until T: no task (not only the one rate limited) starts before T."""
    ft = FakeTime()
    until = ft.start + timedelta(seconds=20)
    starts = []
    state = {"n": 0}
    async def h(path, q, hdrs):
        starts.append(ft.now())
        state["n"] += 1
        if state["n"] == 1:
            return tj({}, 429, retry_after=3, x_ratelimit=orjson.dumps(
                {"name": "UNAUTHED_API_GET_LIMIT", "period": 300, "limit": 500, "remaining": 0,
                 "until": until.strftime("%Y-%m-%dT%H:%M:%SZ")}).decode())
        return tj([])
    c = TraktClient(S, transport=httpx.ASGITransport(app=asgi(h)), base_url="https://api.trakt.test", api_key=KEY,
                    sleep=ft.sleep, clock=ft.monotonic, now=ft.now, rng=random.Random(1))
    async def go():
        first = asyncio.create_task(c.get("/a"))
        await asyncio.sleep(0.01)
        others = [asyncio.create_task(c.get(f"/b{i}")) for i in range(5)]
        return await asyncio.gather(first, *others)
    rs = run(go())
    assert all(r.status == 200 for r in rs)
    assert len(starts) == 7 and all(s >= until for s in starts[1:])


def test_ratelimit_header_on_success_resyncs():
    ft = FakeTime()
    until = (ft.start + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answers = [httpx.Response(200, json=[], headers={**TRAKT_HDRS, "x-ratelimit": f'{{"remaining": 1, "until": "{until}"}}'})]
    t, seen = mock(answers)
    c = TraktClient(S, transport=t, base_url="https://api.trakt.test", api_key=KEY, sleep=ft.sleep, clock=ft.monotonic, now=ft.now)
    async def go():
        for _ in range(3):
            await c.get("/x")
    run(go())
    # the server allowed one more start before `until` (+1 s, since `until` is truncated to the second)
    assert ft.t == pytest.approx(61.0)


def test_retry_after_beyond_ceiling_raises_with_instant():
    t, seen = mock([httpx.Response(429, text="<html>rate limited</html>", headers={"content-type": "text/html", "retry-after": "2852"})])
    c, ft = client_for(t)
    with pytest.raises(RateLimitedUntil) as ei:
        run(c.get("/movies/trending"))
    assert ei.value.until == datetime(2026, 11, 28, 0, 47, 32, tzinfo=timezone.utc)
    assert str(ei.value) == "rate limited until 2026-11-28T00:47:32Z; resume with the same command"
    assert len(seen) == 1 and ft.sleeps == [] and c.stats.cloudflare == 1


def test_limiter_fake_clock_20_from_10_tasks():
    for seed in range(5):
        ft = FakeTime()
        lim = RateLimiter(5, 1.0, clock=ft.monotonic, sleep=ft.sleep)
        starts = []
        rnd = random.Random(seed)
        async def worker():
            for _ in range(2):
                for _ in range(rnd.randint(0, 3)):
                    await asyncio.sleep(0)
                await lim.acquire()
                starts.append(ft.t)
        async def go():
            await asyncio.gather(*(worker() for _ in range(10)))
        run(go())
        starts.sort()
        assert len(starts) == 20
        for s in starts:
            assert sum(1 for x in starts if s <= x < s + 1.0 - 1e-9) <= 5
        expected = [float(i // 5) for i in range(20)]
        assert all(abs(a - b) <= 0.1 * max(b, 1.0) for a, b in zip(starts, expected))


@pytest.mark.slow
def test_real_clock_limiter_no_429_against_strict_server():
    """20 calls per 0.5 s, 100 requests from 10 tasks, a server counting a sliding window on arrival."""
    calls, period = 20, 0.5
    arrivals = deque()
    stats = {"429": 0, "ok": 0}
    async def h(path, q, hdrs):
        now = time.monotonic()
        while arrivals and arrivals[0] <= now - period:
            arrivals.popleft()
        if len(arrivals) >= calls:
            stats["429"] += 1
            return tj({}, 429, retry_after=1)
        arrivals.append(now)
        stats["ok"] += 1
        return tj([])
    settings = S.replace(replay={"rate_limit_calls": calls, "rate_limit_period_s": period})
    c = TraktClient(settings, transport=httpx.ASGITransport(app=asgi(h)), base_url="http://127.0.0.1:1", api_key=KEY)
    async def go():
        async def worker(i):
            for j in range(10):
                await c.get(f"/movies/{i}-{j}")
        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(10)))
        return time.monotonic() - t0
    elapsed = run(go())
    assert stats == {"429": 0, "ok": 100} and c.stats.rate_limited == 0
    earliest = (100 / calls - 1) * period  # 4 full windows of waiting
    assert earliest <= elapsed <= earliest * 1.3 + 0.2


# ---------------------------------------------------------------- 5xx, timeouts, Cloudflare

def test_5xx_wave_under_concurrency_then_success():
    state = {"n": 0}
    async def h(path, q, hdrs):
        state["n"] += 1
        if state["n"] <= 12:
            code = [500, 502, 503, 504, 520, 521, 522][state["n"] % 7]
            if code >= 520:
                return code, {"content-type": "text/html"}, b"<html>origin error</html>"
            return tj({"error": "x"}, code, x_error_message="upstream busy")
        return tj([{"id": 1}])
    c, ft = client_for(httpx.ASGITransport(app=asgi(h)))
    async def go():
        return await asyncio.gather(*(c.get_json(f"/m/{i}") for i in range(6)))
    rs = run(go())
    assert all(data == [{"id": 1}] for _, data in rs)
    assert c.stats.calls == 18 and c.stats.retries == 12 and c.stats.cloudflare >= 3
    assert all(w >= MIN_WAIT_S for w in ft.sleeps)


def test_exhausted_after_max_attempts_keeps_last_response():
    t, seen = mock([httpx.Response(502, text="bad gateway", headers={"content-type": "text/html"})])
    c, ft = client_for(t, S.replace(client={"max_attempts": 4}))
    with pytest.raises(RetriesExhausted) as ei:
        run(c.get("/movies/trending"))
    e = ei.value
    assert (e.status, e.attempts, len(seen), len(ft.sleeps)) == (502, 4, 4, 3)
    assert e.response.from_cloudflare and "Cloudflare" in str(e)


@pytest.mark.slow
def test_slow_responses_time_out_then_succeed():
    state = {"n": 0}
    async def h(path, q, hdrs):
        state["n"] += 1
        if state["n"] <= 2:
            await asyncio.sleep(5)
        return tj([])
    c, ft = client_for(httpx.ASGITransport(app=asgi(h)), S.replace(client={"timeout_s": 0.2}))
    t0 = time.monotonic()
    r = run(c.get("/movies/trending"))
    assert r.status == 200 and r.attempts == 3 and c.stats.timeouts == 2
    assert time.monotonic() - t0 < 1.5


def test_404_and_other_4xx_not_retried():
    for code in (404, 405, 409, 412, 420, 422, 423, 426):
        t, seen = mock([httpx.Response(code, headers=TRAKT_HDRS)])
        c, ft = client_for(t)
        r = run(c.get("/x"))
        assert r.status == code and len(seen) == 1 and ft.sleeps == []


def test_trakt_401_403_are_key_errors_cloudflare_403_is_transient():
    for code in (401, 403):
        t, seen = mock([httpx.Response(code, headers=TRAKT_HDRS)])
        c, _ = client_for(t)
        with pytest.raises(ApiKeyRejected) as ei:
            run(c.get("/x"))
        assert isinstance(ei.value, UserError) and "TRAKT_CLIENT_ID" in str(ei.value) and len(seen) == 1
    cf403 = httpx.Response(403, text="<!DOCTYPE html><title>Attention Required! | Cloudflare</title>",
                           headers={"content-type": "text/html; charset=UTF-8", "server": "cloudflare", "cf-ray": "8e1-ORD"})
    t, seen = mock([cf403, httpx.Response(200, json=[], headers=TRAKT_HDRS)])
    c, ft = client_for(t)
    r = run(c.get("/x"))
    assert r.status == 200 and len(seen) == 2 and c.stats.cloudflare == 1 and len(ft.sleeps) == 1
    # TMDb 401 names its own variable
    t, _ = mock([httpx.Response(401, json={"status_code": 7, "status_message": "Invalid API key", "success": False})])
    c, _ = client_for(t)
    with pytest.raises(ApiKeyRejected, match="TMDB_API_TOKEN"):
        run(c.get("/movie/1", api="tmdb"))


def test_cloudflare_429_plain_text_retry_after():
    cf429 = httpx.Response(429, text="error code: 1015", headers={"content-type": "text/plain", "retry-after": "143"})
    t, _ = mock([cf429, httpx.Response(200, json=[], headers=TRAKT_HDRS)])
    c, ft = client_for(t)
    r = run(c.get("/x"))
    assert r.status == 200 and ft.sleeps[0] >= 143 and c.stats.cloudflare == 1 and c.stats.rate_limited == 1


# ---------------------------------------------------------------- bodies

def test_truncated_json_retried_then_invalid_body():
    t, seen = mock([httpx.Response(200, content=b'[{"id": 1, "comment": "Great fi', headers=TRAKT_HDRS)])
    c, _ = client_for(t, S.replace(client={"max_attempts": 3}))
    with pytest.raises(InvalidBody) as ei:
        run(c.get_json("/x"))
    assert len(seen) == 3 and ei.value.response.content.startswith(b'[{"id": 1') and "invalid JSON" in ei.value.error


def streaming_response(n_chunks, chunk=1000, announce=None):
    pulled = {"n": 0}
    async def body():
        for _ in range(n_chunks):
            pulled["n"] += 1
            yield b"x" * chunk
    headers = {"content-type": "application/json"}
    if announce is not None:
        headers["content-length"] = str(announce)
    return httpx.Response(200, content=body(), headers=headers), pulled


def test_oversized_body_rejected_while_streaming():
    resp, pulled = streaming_response(1000)  # 1 MB, no Content-Length
    c, _ = client_for(httpx.MockTransport(lambda request: resp), S.replace(client={"max_response_mb": 0.01}))
    with pytest.raises(ResponseTooLarge) as ei:
        run(c.get("/x"))
    assert pulled["n"] <= 12 and not ei.value.announced and c.stats.calls == 1


def test_oversized_content_length_rejected_before_reading():
    resp, pulled = streaming_response(50, announce=50_000)
    c, _ = client_for(httpx.MockTransport(lambda request: resp), S.replace(client={"max_response_mb": 0.01}))
    with pytest.raises(ResponseTooLarge) as ei:
        run(c.get("/x"))
    assert pulled["n"] == 0 and ei.value.announced and ei.value.seen_bytes == 50_000


# ---------------------------------------------------------------- construction and pool

def test_defaults_from_settings(monkeypatch):
    monkeypatch.delenv("TRAKT_CLIENT_ID", raising=False)
    monkeypatch.delenv("TMDB_API_TOKEN", raising=False)
    c = TraktClient(S)
    assert c.base_url == f"http://{S.replay.host}:{S.replay.port}" and c.tmdb_base_url == c.base_url + "/3"
    assert (c.limiter.calls, c.limiter.period_s) == (S.replay.rate_limit_calls, S.replay.rate_limit_period_s)
    assert c._trakt_headers["trakt-api-key"] == "replay-dev-key"
    live = S.replace(run={"source": "trakt"})
    with pytest.raises(UserError, match="TRAKT_CLIENT_ID"):
        TraktClient(live)
    monkeypatch.setenv("TRAKT_CLIENT_ID", KEY)
    c = TraktClient(live)
    assert c.base_url == "https://api.trakt.tv" and c.tmdb_base_url == "https://api.themoviedb.org/3"
    assert (c.limiter.calls, c.limiter.period_s) == (500, 300.0)
    with pytest.raises(UserError, match="https"):
        TraktClient(live.replace(trakt={"base_url": "http://api.trakt.tv"}))
    c = TraktClient(live, tmdb_token=None)  # live, no TMDb token in env: TMDb calls are a UserError
    with pytest.raises(UserError, match="TMDB_API_TOKEN"):
        run(c.get("/movie/1", api="tmdb"))


def test_concurrency_bounded_by_settings():
    inflight = {"now": 0, "max": 0}
    async def h(path, q, hdrs):
        inflight["now"] += 1
        inflight["max"] = max(inflight["max"], inflight["now"])
        await asyncio.sleep(0.01)
        inflight["now"] -= 1
        return tj([])
    c, _ = client_for(httpx.ASGITransport(app=asgi(h)), S.replace(client={"concurrency": 3}), fake=False)
    async def go():
        await asyncio.gather(*(c.get(f"/m/{i}") for i in range(20)))
    run(go())
    assert inflight["max"] == 3


def test_shared_stats_object():
    stats = ClientStats()
    t, _ = mock([httpx.Response(200, json=[1, 2], headers=TRAKT_HDRS)])
    c, _ = client_for(t, stats=stats)
    run(c.get("/x"))
    run(c.get("/y"))
    assert stats.calls == 2 and stats.responses[200] == 2 and stats.bytes == 10
    assert stats.as_dict()["responses"] == {"200": 2}


# ---------------------------------------------------------------- the default transport (aiohttp) over loopback

class RawServer:
    """A raw HTTP/1.1 server on 127.0.0.1 serving `answers` in order, one per request, over keep-alive connections.

    An answer is bytes to send as is, ("cut", bytes) to send and close the connection, or ("stall", s) to wait s seconds."""
    def __init__(self, answers):
        self.answers, self.requests, self.connections = list(answers), [], 0

    async def _handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                try: head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError): return
                self.requests.append(head.decode("latin-1"))
                a = self.answers.pop(0)
                if isinstance(a, tuple) and a[0] == "stall":
                    await asyncio.sleep(a[1]); return
                writer.write(a[1] if isinstance(a, tuple) else a); await writer.drain()
                if isinstance(a, tuple): return
        finally: writer.close()

    async def __aenter__(self):
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.srv.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.srv.close()


def http_answer(body: bytes, status: str = "200 OK", chunked: bool = False, **headers) -> bytes:
    hdrs = {"content-type": "application/json", "x-runtime": "0.01", **{k.replace("_", "-"): v for k, v in headers.items()}}
    if chunked:
        hdrs["transfer-encoding"] = "chunked"
        body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096]) for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
    else: hdrs["content-length"] = str(len(body))
    return f"HTTP/1.1 {status}\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode() + b"\r\n" + body


def loopback_client(url, **client):
    return TraktClient(S.replace(client=client), base_url=url, api_key=KEY, tmdb_token=TOKEN, rng=random.Random(3),
                       sleep=FakeTime().sleep)  # backoff waits are instant; timeouts are real


def test_default_transport_is_aiohttp_and_httpx_is_a_setting():
    from trakt_nb.source.http import AiohttpTransport
    async def transports():
        async with TraktClient(S, api_key=KEY) as a, TraktClient(S.replace(client={"http_transport": "httpx"}), api_key=KEY) as b:
            return type(a._http._transport), type(b._http._transport)
    assert run(transports()) == (AiohttpTransport, httpx.AsyncHTTPTransport)


def test_loopback_pages_headers_gzip_and_no_cookies():
    import gzip
    page = [{"id": i, "comment": "é" * 10} for i in range(3)]
    async def go():
        answers = [http_answer(orjson.dumps(page), x_pagination_page="1", x_pagination_page_count="2", set_cookie="__cf_bm=abc; Path=/"),
                   http_answer(gzip.compress(orjson.dumps(page[:1])), content_encoding="gzip", x_pagination_page="2",
                               x_pagination_page_count="2")]
        async with RawServer(answers) as srv, loopback_client(srv.url) as c:
            got = [items async for _, items in c.paginate("/movies/1/comments/newest", limit=3)]
            return srv, got, c.stats
    srv, got, stats = run(go())
    assert got == [page, page[:1]]  # the gzip page decoded by httpx, once
    assert srv.connections == 1 and stats.calls == 2  # one keep-alive connection for both pages
    first = srv.requests[0].lower()
    assert first.startswith("get /movies/1/comments/newest?page=1&limit=3 http/1.1")
    assert f"trakt-api-key: {KEY}".lower() in first and f"user-agent: trakt-nb/{trakt_nb.__version__}" in first
    assert "aiohttp" not in first and TOKEN.lower() not in first
    assert "cookie" not in srv.requests[1].lower()  # no cookie store: a Set-Cookie is not sent back


def test_loopback_cut_body_and_stall_are_retried_as_connection_error_and_timeout():
    ok = http_answer(b"[1, 2]")
    async def go():
        answers = [("cut", ok[:-3]), ("stall", 3.0), ok]
        async with RawServer(answers) as srv, loopback_client(srv.url, timeout_s=0.3) as c:
            resp, data = await c.get_json("/movies/trending")
            return srv, resp, data, c.stats
    srv, resp, data, stats = run(go())
    assert data == [1, 2] and resp.attempts == 3 and len(srv.requests) == 3
    assert (stats.connection_errors, stats.timeouts, stats.retries) == (1, 1, 2)


def test_loopback_refused_connection_is_retried_then_exhausted():
    async def go():
        async with RawServer([]) as srv: url = srv.url
        async with loopback_client(url, max_attempts=3) as c:
            with pytest.raises(RetriesExhausted) as ei: await c.get("/movies/trending")
            return ei.value, c.stats
    e, stats = run(go())
    assert e.attempts == 3 and e.status is None and "ConnectError" in e.error and stats.connection_errors == 3


def test_loopback_oversized_chunked_body_stops_reading_and_drops_the_connection():
    big = http_answer(b"[" + b"1," * 4_000_000 + b"1]", chunked=True)  # 8 MB, no Content-Length
    async def go():
        async with RawServer([big, http_answer(b"[]")]) as srv, loopback_client(srv.url, max_response_mb=0.01) as c:
            with pytest.raises(ResponseTooLarge) as ei: await c.get("/x")
            resp = await c.get("/y")  # the next request does not read the rest of the big body
            return srv, ei.value, resp
    srv, e, resp = run(go())
    assert not e.announced and e.seen_bytes < 2_000_000  # read as it arrives, not to the end
    assert resp.status == 200 and resp.content == b"[]" and srv.connections == 2


# ---------------------------------------------------------------- 2026: Trakt or Cloudflare by body and headers

CF_HDRS = {"server": "cloudflare", "cf-ray": "8e1c2d3e4f5a-ORD"}


def test_json_403_without_request_id_is_the_origin_and_stops_at_once():
    "2026: no X-Ratelimit outside 429s, no x-request-id on some answers: a JSON 403 is still Trakt's rejected key, not six Cloudflare retries."
    t, seen = mock([httpx.Response(403, json={"error": "invalid api key"}, headers={"content-type": "application/json", **CF_HDRS})])
    c, ft = client_for(t)
    with pytest.raises(ApiKeyRejected, match="TRAKT_CLIENT_ID"):
        run(c.get("/movies/1/comments/newest"))
    assert len(seen) == 1 and ft.sleeps == [] and c.stats.cloudflare == 0


def test_cloudflare_by_headers_when_there_is_no_body():
    "An empty 403 that carries only Cloudflare's headers is a block (retried); an empty one with Trakt's markers is a rejected key."
    t, seen = mock([httpx.Response(403, headers=CF_HDRS), httpx.Response(200, json=[], headers=TRAKT_HDRS)])
    c, ft = client_for(t)
    assert run(c.get("/x")).status == 200 and len(seen) == 2 and c.stats.cloudflare == 1 and len(ft.sleeps) == 1
    t, seen = mock([httpx.Response(403, headers={**CF_HDRS, "x-request-id": "r-9", "x-runtime": "0.003"})])
    c, _ = client_for(t)
    with pytest.raises(ApiKeyRejected):
        run(c.get("/x"))
    assert len(seen) == 1


def test_limiter_follows_x_ratelimit_when_one_comes():
    "The settings' limit holds until an answer announces another; a 429's X-Ratelimit of 1000/300 s is then followed."
    s = S.replace(run={"source": "trakt"})
    until = (FakeTime().now() + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rl = orjson.dumps({"name": "UNAUTHED_API_GET_LIMIT", "period": 300, "limit": 1000, "remaining": 0, "until": until}).decode()
    t, _ = mock([httpx.Response(200, json=[], headers=TRAKT_HDRS),
                 httpx.Response(429, headers={**TRAKT_HDRS, "retry-after": "2", "x-ratelimit": rl}),
                 httpx.Response(200, json=[], headers=TRAKT_HDRS)])
    c, _ = client_for(t, s)
    assert (c.limiter.calls, c.limiter.period_s) == (500, 300.0)  # settings.ini: what Trakt documents in 2026
    run(c.get("/a"))
    assert (c.limiter.calls, c.limiter.period_s) == (500, 300.0)  # 2026 answers carry no X-Ratelimit: the settings hold
    run(c.get("/b"))
    assert (c.limiter.calls, c.limiter.period_s) == (1000, 300.0)

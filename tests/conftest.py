"""Shared fixtures: a small replay world, the replay API in-process, and on a loopback server."""
import asyncio

import httpx
import pytest

from trakt_nb.replay_api import DEFAULT_HEADERS, ReplayAPI, replay_client, serve_in_thread
from trakt_nb.replay_world import World, WorldSpec

SMALL_SPEC = WorldSpec(seed=11, movies=5, shows=3, users=300, comments_per_title=300)
AS_OF = "2026-11-25"  # served as of 2026-11-25T23:59:59Z


def asgi_client(app, **kw) -> httpx.AsyncClient:
    "`replay_client(app)`; the same client built by hand where the library's cannot be built."
    try: return replay_client(app, **kw)
    except NameError:  # trakt_nb.replay_api does not import httpx (see test_replay_client_builds)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replay.local", **kw)


class InProcess:
    "Synchronous calls into an ASGI app, one event loop and one httpx client for the whole test."
    def __init__(self, app):
        self.app, self.loop = app, asyncio.new_event_loop()
        self.client = asgi_client(app)

    def request(self, method, path, headers=None, **kw) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, headers=DEFAULT_HEADERS if headers is None else headers, **kw))

    def get(self, path, headers=None, **params) -> httpx.Response:
        return self.request("GET", path, headers, params=params or None)  # httpx drops a query written in `path` when params={}
    def post(self, path, json) -> httpx.Response: return self.request("POST", path, json=json)

    def gather(self, coros):
        "Run coroutines made with `self.client` concurrently."
        async def _all(): return await asyncio.gather(*coros)
        return self.loop.run_until_complete(_all())

    def close(self):
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="session")
def small_world() -> World:
    "The small test world, built once per session (never mutated by tests that use it)."
    return World.build(SMALL_SPEC)


@pytest.fixture
def make_app(small_world):
    "Factory of replay apps on the small world as of `AS_OF`, rate limit out of the way unless asked."
    def make(world=None, **kw):
        kw.setdefault("as_of", AS_OF)
        kw.setdefault("rate_limit_calls", 10**9)
        return ReplayAPI(world if world is not None else small_world, **kw)
    return make


@pytest.fixture
def inproc():
    "Factory of `InProcess` callers, closed after the test."
    made = []
    def make(app):
        made.append(InProcess(app))
        return made[-1]
    yield make
    for x in made: x.close()


@pytest.fixture
def call(make_app, inproc) -> InProcess:
    "In-process caller of a default app on the small world."
    return inproc(make_app())


@pytest.fixture
def serve():
    "Factory starting apps on 127.0.0.1 (uvicorn in a thread); stopped after the test."
    servers = []
    def start(app):
        servers.append(serve_in_thread(app))
        return servers[-1]
    yield start
    for s in servers: s.stop()

"""Shared fixtures: a small replay world, the replay API in-process, and on a loopback server."""
import asyncio

import httpx
import pytest

from trakt_nb.source.replay_api import DEFAULT_HEADERS, ReplayAPI, replay_client
from trakt_nb.source.replay_serve import serve_in_thread
from trakt_nb.source.replay_world import World, WorldSpec

SMALL_SPEC = WorldSpec(seed=11, movies=5, shows=3, users=300, comments_per_title=300)
AS_OF = "2026-11-25"  # served as of 2026-11-25T23:59:59Z


def asgi_client(app, **kw) -> httpx.AsyncClient:
    "`replay_client(app)`; the same client built by hand where the library's cannot be built."
    try: return replay_client(app, **kw)
    except NameError:  # trakt_nb.source.replay_api does not import httpx (see test_replay_client_builds)
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



@pytest.fixture(scope="session")
def clean_run(tmp_path_factory, worker_id):
    """One `trakt-nb run` of test_run's DAY on its small world (test_run.small_settings, the marker key in the environment),
    made once per test session: the first worker to ask runs it under a lock, the other reads the same folder. Its
    users only read it (they copy it before writing). Returns the run's settings (the paths inside its folder)."""
    import shutil
    from filelock import FileLock
    from test_run import DAY, kernel_children, small_settings
    from trakt_nb.ops.run import run_day
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "clean_run"
    with FileLock(str(root) + ".lock"), pytest.MonkeyPatch.context() as mp:
        s = small_settings(root, mp)
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)  # a run that failed half-way is run again
            res = run_day(s, DAY, echo=lambda m: None)
            assert res.status == "succeeded" and kernel_children() == []  # every step's kernel has ended
            (root / "done").touch()
    return s

# files that share a session fixture too costly to build on both workers (reliability's `clean`: a whole `trakt-nb run`)
SHARED_UNITS = {"tests/reliability/test_matrix.py": "tests/reliability (clean run)",
                "tests/reliability/test_no_silent_loss.py": "tests/reliability (clean run)"}


def _scope(nodeid: str) -> str:
    "The unit a worker runs whole: a test file, files sharing a costly session fixture, or all the notebooks together."
    path = nodeid.split("::", 1)[0]
    return "notebooks" if path.endswith(".ipynb") else SHARED_UNITS.get(path, path)


def pytest_xdist_make_scheduler(config, log):
    """Under xdist (`make test` passes `-n 2`) a test file runs whole on one worker, so its module fixtures are built
    once, and the notebooks run together in order: the pipeline notebooks share their check warehouse (10_ingest fills
    it, 20_model models it, the reports read it). (`--dist loadgroup` with marks would say the same, but the marks do
    not reach xdist 3.8's test ids under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str: return _scope(nodeid)
    return FileScheduling(config, log)


# Seconds each unit keeps one worker of `make test` busy (from `--durations=0` of the two-worker run on a quiet machine,
# scaled by each file's own before/after ratio where it changed since; rough figures: only their order matters). A unit
# not listed weighs by its tests.
UNIT_SECONDS = {
    "tests/reliability (clean run)": 230, "notebooks": 230, "tests/test_spark.py": 190, "tests/test_lake.py": 180,
    "tests/test_run.py": 120, "tests/test_model.py": 110, "tests/test_dagster.py": 110, "tests/test_trakt2026.py": 90,
    "tests/test_quality.py": 75, "tests/test_ingest_faults.py": 66, "tests/test_wheel.py": 60, "tests/test_ingest.py": 60,
    "tests/test_gold.py": 42, "tests/test_explore.py": 36, "tests/test_bronze.py": 33, "tests/test_reports_browser.py": 30,
    "tests/reliability/test_bad_input.py": 30, "tests/test_charts.py": 27,
}


def _unit_seconds(unit: str, items) -> float:
    "The unit's figure in `UNIT_SECONDS`, else 20 s a slow test, 1 s another, 60 s more if it starts Spark or the lakehouse."
    if unit in UNIT_SECONDS: return UNIT_SECONDS[unit]
    heavy = any(it.get_closest_marker("spark") or it.get_closest_marker("lakehouse") for it in items)
    return 60 * heavy + sum(20 if it.get_closest_marker("slow") else 1 for it in items)


def pytest_collection_modifyitems(config, items):
    """The longest units first (run with `--no-loadscope-reorder`, which keeps this order), so that neither worker is left
    alone with a long one at the end: each worker takes the next unit when it is done with its own, and what is left at
    the end is the short files."""
    units: dict[str, list] = {}
    for it in items: units.setdefault(_scope(it.nodeid), []).append(it)
    seconds = {u: _unit_seconds(u, its) for u, its in units.items()}
    items.sort(key=lambda it: -seconds[_scope(it.nodeid)])  # stable: each unit keeps its own order

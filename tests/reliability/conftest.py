"""The fault matrix's harness: a small replay world served on loopback, `trakt-nb run` as a real subprocess, and the checks
every scenario ends with (ground truth in silver, gold equal to a clean run's, bronze keeping every page, no secret anywhere)."""
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # test_run's helpers are imported, not copied

from test_run import MARKER, secret_hits, tables_content  # noqa: E402
from trakt_nb.land.bronze import connect  # noqa: E402
from trakt_nb.land.ledger import get_state  # noqa: E402
from trakt_nb.config import REPLAY_DEV_KEY, REPLAY_TMDB_TOKEN  # noqa: E402
from trakt_nb.source.replay_api import ReplayAPI  # noqa: E402
from trakt_nb.source.replay_serve import serve_in_thread  # noqa: E402
from trakt_nb.source.replay_world import World, WorldSpec, to_epoch  # noqa: E402
from trakt_nb.source.replay_as_of import ground_truth  # noqa: E402

CLI = str(Path(sys.executable).parent / "trakt-nb")
D = dt.date(2026, 7, 10)  # a busy week of the small world
TMDB_MARKER, OAUTH_MARKER = "tmdb-mk-91d0c3e2f4", "oauth-mk-7a3be61d05"
SECRETS = {"TRAKT_CLIENT_ID": MARKER, "TMDB_API_TOKEN": TMDB_MARKER, "TRAKT_ACCESS_TOKEN": OAUTH_MARKER}
REPLAY = {"seed": 5, "movies": 4, "shows": 3, "users": 300, "comments_per_title": 300}
SPEC = WorldSpec(seed=5, movies=4, shows=3, users=300, comments_per_title=300)
CLIENT = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 0.5, "retry_after_ceiling_s": 5, "max_attempts": 8}
RESULTS = Path(os.environ.get("TRAKT_NB_RELIABILITY_RESULTS", ROOT / "tests" / "reliability" / ".results.jsonl"))  # README's table


def pytest_configure(config):
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        RESULTS.unlink(missing_ok=True)  # the table is of this run only
    config.addinivalue_line("markers", "reliability_full: a fault-matrix scenario run only by `make test-reliability` (not in CI's quick subset)")


def end_of_day(d: dt.date) -> int:
    return to_epoch(dt.datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=dt.timezone.utc))


@pytest.fixture(scope="session")
def world() -> World:
    return World.build(SPEC)


def make_app(world, day=D, **kw) -> ReplayAPI:
    "A replay app serving `world` as of the end of `day`, accepting the marker secrets as keys."
    kw.setdefault("rate_limit_calls", 10**9)
    return ReplayAPI(world, as_of=end_of_day(day), api_keys={REPLAY_DEV_KEY, MARKER}, tmdb_tokens={REPLAY_TMDB_TOKEN, TMDB_MARKER}, **kw)


def write_ini(path: Path, sections: dict) -> Path:
    path.write_text("".join(f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) for sec, kv in sections.items()))
    return path


class Site:
    "One scenario's folder: settings.ini, warehouse, reports, and the logs of every command run there."
    def __init__(self, root: Path, url: str | None = None, client: dict | None = None, storage: dict | None = None, **sections):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.warehouse, self.reports = root / "w.duckdb", root / "reports"
        rep = {**REPLAY, **({"url": url} if url else {})}
        self.ini = write_ini(root / "settings.ini", {
            "replay": rep, "titles": {"trending_top_n": 3}, "client": {**CLIENT, **(client or {})},
            "storage": {"warehouse": self.warehouse, "reports_dir": self.reports, "state_dir": root / "state", **(storage or {})}, **sections})
        self.logs: list[str] = []

    def env(self, **extra) -> dict:
        return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(self.root), "TRAKT_NB_SETTINGS": str(self.ini),
                "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8", **SECRETS,
                **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}), **extra}  # a checkout's own code

    def popen(self, *args, env=None, **kw) -> subprocess.Popen:
        return subprocess.Popen([CLI, *args], cwd=self.root, env=env or self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, **kw)

    def cli(self, *args, env=None, timeout=300, **kw) -> subprocess.CompletedProcess:
        "Run `trakt-nb ARGS` to the end; its output is kept for the secret check."
        p = subprocess.run([CLI, *args], cwd=self.root, env=env or self.env(), capture_output=True, text=True, timeout=timeout, **kw)
        self.logs += [p.stdout, p.stderr]
        return p

    def run(self, day=D, timeout=300, **kw) -> subprocess.CompletedProcess:
        return self.cli("run", "--date", day.isoformat(), timeout=timeout, **kw)

    @property
    def settings(self):
        from trakt_nb.config import load_settings
        return load_settings(self.ini, env={})

    def q(self, sql, params=None):
        con = connect(self.warehouse, read_only=True)
        try: return con.execute(sql, params or []).fetchall()
        finally: con.close()

    def gold(self) -> dict:
        return {k: v for k, v in tables_content(self.settings).items() if k.startswith("gold.")}

    def secret_leaks(self) -> list[str]:
        "Files, warehouse columns and command output holding any of the marker secrets."
        hits = secret_hits(self.settings, self.root) if self.warehouse.exists() else []
        for m in (TMDB_MARKER, OAUTH_MARKER):
            hits += [str(p) for p in self.root.rglob("*") if p.is_file() and m.encode() in p.read_bytes()]
        hits += [f"output of a command: …{l[max(0, l.find(m) - 60):l.find(m) + 20]}…" for l in self.logs for m in SECRETS.values() if m in l]
        return hits


def followed_indexes(site: Site, world: World) -> list[int]:
    con = connect(site.warehouse, read_only=True)
    try: ids = [r["trakt"] for r in get_state(con, "followed_titles")]
    finally: con.close()
    return [int(i) for i in np.flatnonzero(world.titles.trakt.isin(ids))]


def servable_truth(world: World, day: dt.date, titles: list[int]):
    "Ground truth as of the end of `day`, without replies under hidden comments (the API cannot serve those)."
    g = ground_truth(world, end_of_day(day), titles=titles)
    ids = set(g.comment_id[g.parent_id == 0].tolist())
    while True:
        more = set(g.comment_id[g.parent_id.isin(ids)].tolist()) - ids
        if not more: break
        ids |= more
    return g[g.comment_id.isin(ids)]


def silver_vs_truth(site: Site, world: World, day: dt.date = D) -> dict:
    "Lost, duplicated, unexpected and stale comments of silver against the replay's ground truth as of `day`."
    g = servable_truth(world, day, followed_indexes(site, world)).set_index("comment_id")
    rows = site.q("""SELECT comment_id, likes, replies, epoch(updated_at)::BIGINT FROM silver.stg_trakt__comment_event
                     WHERE created_at <= $1""", [dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=dt.timezone.utc)])
    ids = [r[0] for r in rows]
    got = {r[0]: r[1:] for r in rows}
    stale = [i for i, (likes, replies, upd) in got.items() if i in g.index and
             (likes, replies, upd) != (int(g.at[i, "likes"]), int(g.at[i, "replies"]), int(g.at[i, "updated_at"].timestamp()))]
    return {"truth": len(g), "silver": len(ids), "lost": len(set(g.index) - set(ids)), "duplicated": len(ids) - len(set(ids)),
            "unexpected": len(set(ids) - set(g.index)), "stale": len(stale)}


def page_keys(site: Site) -> set:
    "What bronze holds, page by page (resource, title, parent comment, page number)."
    return set(site.q("SELECT DISTINCT resource_kind, title_id_trakt, parent_comment_id, page FROM bronze.trakt_pages"))


def bronze_pages_kept(site: Site) -> bool:
    "Every page a finished ingest counted is stored in bronze."
    rows = site.q("""SELECT r.run_id, CAST(json_extract_string(r.summary, '$.pages') AS INTEGER),
                            (SELECT count(*) FROM bronze.trakt_pages p WHERE p.run_id = r.run_id)
                     FROM bronze.runs r WHERE r.status IN ('succeeded', 'stopped') AND json_extract_string(r.summary, '$.pages') IS NOT NULL""")
    return all(counted == stored for _, counted, stored in rows)


def ingest_and_model(site: Site, day=D, timeout=300) -> list[subprocess.CompletedProcess]:
    "`trakt-nb ingest` then `trakt-nb model` of `day`: the day's bronze, silver and gold, without the report steps' kernels."
    procs = [site.cli("ingest", "--date", day.isoformat(), "--quiet", timeout=timeout)]
    if procs[0].returncode == 0: procs.append(site.cli("model", "--date", day.isoformat(), timeout=timeout))
    return procs


@pytest.fixture(scope="session")
def clean(world, tmp_path_factory):
    """A clean ingest and model of D: its gold, its bronze pages and how long it took (the reference of every scenario). The
    `trakt-nb run` steps after 20_model only read gold (the reports), so a run's gold and bronze are these; that the whole
    `trakt-nb run` of a clean day matches them is checked by every scenario that ends in a run compared with this reference."""
    root = tmp_path_factory.mktemp("clean")
    srv = serve_in_thread(make_app(world))
    try:
        site = Site(root, url=srv.url)
        t0 = time.monotonic()
        procs = ingest_and_model(site)
        took = time.monotonic() - t0
        assert [p.returncode for p in procs] == [0, 0], procs[-1].stderr
        yield {"site": site, "gold": site.gold(), "pages": page_keys(site), "seconds": took}
    finally:
        srv.stop()


def record(scenario: str, injected: str, outcome: str, lost, duplicated, resume_s=None, **extra):
    "Append one row of the README table (written by the run itself, not by hand)."
    row = {"scenario": scenario, "injected": injected, "outcome": outcome, "lost": lost, "duplicated": duplicated,
           "resume_s": None if resume_s is None else round(resume_s, 1), **extra}
    with RESULTS.open("a") as f: f.write(json.dumps(row, default=str) + "\n")


def results_table(path: Path = RESULTS) -> str:
    "The README's table from a run's results (one row per scenario, same-named rows merged)."
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
    out = ["| scenario | what was injected | outcome | comments lost | comments duplicated | resume time |", "|---|---|---|---|---|---|"]
    for r in rows:
        cell = lambda x: str(x).replace("|", "\\|").replace("\n", " ")
        out.append(f"| {cell(r['scenario'])} | {cell(r['injected'])} | {cell(r['outcome'])} | {r['lost']} | {r['duplicated']} | "
                   f"{'' if r['resume_s'] is None else str(r['resume_s']) + ' s'} |")
    total = lambda k: sum(int(r.get(k) or 0) for r in rows)
    out.append(f"\nTotals: {len(rows)} scenarios tried; comments lost {total('lost')}, duplicated {total('duplicated')}; "
               f"secrets found {total('secrets')}; tracebacks {total('tracebacks')}.")
    return "\n".join(out) + "\n"


def pytest_sessionfinish(session, exitstatus):
    if RESULTS.exists(): RESULTS.with_suffix(".md").write_text(results_table())

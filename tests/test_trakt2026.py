"""Trakt as it answers in 2026, through the real client over loopback against the replay, and `trakt-nb run` end to end."""
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from trakt_nb.source.client import ApiKeyRejected, TraktClient
from trakt_nb.config import REPLAY_DEV_KEY, load_settings
from trakt_nb.land.contracts import SCHEMAS_DIR, check_object, load_contracts
from trakt_nb.source.replay_api import ReplayAPI
from trakt_nb.source.replay_world import World, WorldSpec, to_epoch
from trakt_nb.source.replay_listings import trending

from conftest import AS_OF, SMALL_SPEC

ROOT = Path(__file__).resolve().parents[1]
SWITCH = dt.date(2026, 11, 20)  # before AS_OF: the small world below answers in 2026's shapes
S = load_settings(env={})


@pytest.fixture(scope="module")
def world_2026() -> World:
    return World.build(WorldSpec(**{**SMALL_SPEC.__dict__, "ratings_multi_source_from": SWITCH, "new_fields_from": SWITCH}))


def fetch(url: str, calls: list, key: str = REPLAY_DEV_KEY, settings=S):
    "Run `(path, params)` calls through the real client (aiohttp connections) against `url`; the responses and the client's stats."
    async def go():
        async with TraktClient(settings, base_url=url, api_key=key, tmdb_token="x") as c:
            out = [await c.get_json(p, q) for p, q in calls]
            return out, c.stats
    return asyncio.run(go())


@pytest.mark.server
def test_2026_headers_and_shapes_through_the_client(serve, world_2026):
    app = ReplayAPI(world_2026, as_of=AS_OF, rate_limit_calls=10**6)
    srv = serve(app)
    w = world_2026
    movie = int(w.titles.index[w.titles.kind == "movie"][0]); show = int(w.titles.index[w.titles.kind == "show"][0])
    m, sh = w.titles.iloc[movie], w.titles.iloc[show]
    calls = [(f"/movies/{m.slug}/comments/newest", {"limit": 50}), ("/shows/trending", {"extended": "full", "limit": 10}),
             (f"/shows/{sh.slug}", None), (f"/shows/{sh.slug}", {"extended": "full"}), (f"/movies/{m.slug}/ratings", None),
             ("/movies/no-such-title", None)] + [(f"/movies/{m.slug}/comments/likes", {"limit": 10, "page": p}) for p in range(1, 9)]
    out, stats = fetch(srv.url, calls)
    (listing, items), (tr, tr_items), (short, short_o), (full, full_o), (rt, rt_o), (nf, _) = out[:6]
    # gzip on the wire, decoded by the client; the body is the world's
    assert listing.headers["content-encoding"] == "gzip" and len(items) > 0 and listing.json() == items
    # listings: x-movie-updated-at, no x-sort-*; no X-Ratelimit outside 429s
    assert listing.headers["x-movie-updated-at"].endswith(".000Z")
    assert not any(k.startswith(("x-sort", "x-applied-sort")) for k in listing.headers)
    assert all("x-ratelimit" not in r.headers for r, _ in out)
    # trending honours extended=full and counts its users
    assert int(tr.headers["x-trending-user-count"]) == sum(n for _, n in trending(w, "show", to_epoch(AS_OF)))
    assert all({"airs", "aired_episodes", "total_runtime", "original_title", "subgenres", "images"} <= set(i["show"]) for i in tr_items)
    # shows: aired_episodes even without extended; airs and total_runtime with it; nested 2026 fields after the switch
    assert set(short_o) == {"title", "year", "ids", "aired_episodes"} and short_o["ids"]["plex"]["slug"] == sh.slug
    assert full_o["total_runtime"] == full_o["runtime"] * full_o["aired_episodes"] and set(full_o["airs"]) == {"day", "time", "timezone"}
    # ratings in the multi-source shape: valid for ratings v2, whose contract declares every source
    assert set(rt_o) == {"trakt", "tmdb", "imdb", "metascore", "rotten_tomatoes"} and check_object(load_contracts()["ratings"], rt_o).ok
    # 404: empty text/html, Trakt's own (not counted as Cloudflare)
    assert nf.status == 404 and nf.content == b"" and nf.headers["content-type"] == "text/html" and not nf.from_cloudflare
    # Cloudflare's cache: some answers lack Trakt's markers, and the client takes them as they are
    cached = [r for r, _ in out if r.headers.get("cf-cache-status") == "HIT"]
    assert cached and all("x-request-id" not in r.headers and "x-runtime" not in r.headers for r in cached)
    assert stats.cloudflare == 0 and stats.retries == 0


@pytest.mark.server
def test_ratings_switch_shape_on_the_day(serve, world_2026):
    app = ReplayAPI(world_2026, as_of=SWITCH - dt.timedelta(days=1), rate_limit_calls=10**6)
    srv = serve(app)
    path = f"/movies/{world_2026.titles.slug[0]}/ratings"
    (before, b), = fetch(srv.url, [(path, None)])[0]
    app.as_of = to_epoch(SWITCH)
    (after, a), = fetch(srv.url, [(path, None)])[0]
    assert set(b) == {"rating", "votes", "distribution"} and a["trakt"]["distribution"].keys() == b["distribution"].keys()
    ratings = load_contracts()["ratings"]
    assert check_object(ratings, b).ok and check_object(ratings, a).ok and not load_contracts().get("ratings", 1).is_valid(a)


@pytest.mark.server
def test_rejected_key_stops_at_once_over_loopback(serve, small_world):
    srv = serve(ReplayAPI(small_world, as_of=AS_OF))
    with pytest.raises(ApiKeyRejected, match="TRAKT_CLIENT_ID"):
        fetch(srv.url, [("/movies/trending", None)], key="not-a-key")


# ---------------------------------------------------------------- end to end: trakt-nb run, drift, promote, model

D1, D2 = dt.date(2026, 7, 10), dt.date(2026, 7, 11)
SMALL = {"TRAKT_NB_REPLAY_SEED": "5", "TRAKT_NB_REPLAY_MOVIES": "4", "TRAKT_NB_REPLAY_SHOWS": "3", "TRAKT_NB_REPLAY_USERS": "300",
         "TRAKT_NB_REPLAY_COMMENTS_PER_TITLE": "300", "TRAKT_NB_TITLES_TRENDING_TOP_N": "3"}


def cli(env, *args, timeout=600):
    p = subprocess.run([str(Path(sys.executable).parent / "trakt-nb"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.slow
def test_run_end_to_end_across_the_2026_switch(tmp_path):
    "Day 1 in 2025's shapes, day 2 in 2026's: nothing quarantined, both ratings shapes in silver, drift at the leaves, promote ids.plex, backfilled."
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, schemas)
    # each source its own warehouse, state and reports: the paths name it
    env = {**os.environ, **SMALL, "TRAKT_NB_STORAGE_WAREHOUSE": str(tmp_path / "{source}" / "w.duckdb"),
           "TRAKT_NB_STORAGE_REPORTS_DIR": str(tmp_path / "r" / "{source}"), "TRAKT_NB_STORAGE_STATE_DIR": str(tmp_path / "{source}"),
           "TRAKT_NB_SCHEMAS_DIR": str(schemas), "TRAKT_CLIENT_ID": "a-live-key-that-is-never-used",
           "TRAKT_NB_RUN_SUMMARY_REFRESH_DAYS": "1", "TRAKT_NB_REPLAY_RATINGS_MULTI_SOURCE_FROM": D2.isoformat(),
           "TRAKT_NB_REPLAY_NEW_FIELDS_FROM": D2.isoformat()}
    env.pop("TRAKT_NB_SETTINGS", None)
    for day in (D1, D2):
        code, out, err = cli(env, "run", "--date", day.isoformat())
        assert code == 0, err[-2000:]
        assert json.loads((tmp_path / "r" / "replay" / day.isoformat() / "run.json").read_text())["status"] == "succeeded"  # data tests included
    assert "the replay API" in (tmp_path / "r" / "replay" / "index.html").read_text()  # the reports say which source they show
    # live Trakt keeps its own state: the replay's done day is not "already done" for it, and a past day is refused, with no call
    code, out, err = cli(env, "ingest", "--source", "trakt", "--date", D1.isoformat())
    assert code == 2 and "no time travel" in err and "already done" not in out + err and not (tmp_path / "trakt").exists(), out + err
    wh = tmp_path / "replay" / "w.duckdb"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM bronze.quarantine").fetchone()[0] == 0
        dist = dict(con.execute("SELECT snapshot_date, count(*) FROM silver.stg_trakt__rating_dist GROUP BY 1").fetchall())
        titles = con.execute("SELECT count(*) FROM silver.dim_title").fetchone()[0]
        assert dist == {D1: titles, D2: titles}  # the plain shape on day 1, the multi-source one on day 2
        src = dict(con.execute("SELECT snapshot_date, list(DISTINCT source ORDER BY source) FROM silver.stg_trakt__rating_source GROUP BY 1").fetchall())
        assert src[D1] == ["trakt"] and {"trakt", "tmdb", "imdb"} <= set(src[D2])
        same = con.execute("""SELECT count(*) FROM silver.stg_trakt__rating_dist d JOIN silver.stg_trakt__rating_source s
                              ON s.source = 'trakt' AND (d.title_kind, d.title_id_trakt, d.snapshot_date) = (s.title_kind, s.title_id_trakt, s.snapshot_date)
                              WHERE d.rating = s.rating AND d.votes = s.votes""").fetchone()[0]
        assert same == 2 * titles
    finally:
        con.close()
    code, out, err = cli(env, "schema", "drift", "--date", D2.isoformat())
    assert code == 0 and "$.ids.plex.guid" in out and "schema promote movie $.ids.plex" in out and "$.subgenres[*]" in out, out + err
    for kind in ("movie", "show"):
        code, out, err = cli(env, "schema", "promote", kind, "ids.plex")
        assert code == 0 and f"{kind}/v3.json" in out, err
    code, out, err = cli(env, "schema", "drift", "--date", D2.isoformat())
    assert "$.ids.plex" not in out and "$.subgenres[*]" in out
    code, out, err = cli(env, "model", "--date", D2.isoformat())
    assert code == 0, err
    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute("SELECT slug, ids_plex_slug, ids_plex_guid FROM silver.dim_title").fetchall()
    finally:
        con.close()
    assert rows and all(slug == plex and guid.startswith("plex://") for slug, plex, guid in rows)  # backfilled from bronze, no refetch
    # forget a user on request: every layer, bronze included
    con = duckdb.connect(str(wh), read_only=True)
    try:
        slug, n = con.execute("""SELECT user_slug, count(*) FROM silver.stg_trakt__comment_event_history GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""").fetchone()
    finally:
        con.close()
    code, out, err = cli(env, "forget", "--user", slug)
    assert code == 0 and f"forgot {slug}" in out, err
    con = duckdb.connect(str(wh), read_only=True)
    try:
        items = con.execute("""SELECT count(*) FROM (SELECT unnest(from_json(payload, '["json"]')) AS i FROM bronze.trakt_pages
                               WHERE resource_kind IN ('comments', 'replies')) WHERE i->'user'->'ids'->>'slug' = $1""", [slug]).fetchone()[0]
        silver = con.execute("SELECT count(*) FROM silver.stg_trakt__comment_event_history WHERE user_slug = $1", [slug]).fetchone()[0]
        others = con.execute("SELECT count(*) FROM silver.stg_trakt__comment_event").fetchone()[0]
    finally:
        con.close()
    assert (items, silver) == (0, 0) and others > 0
    code, out, err = cli(env, "model", "--date", D2.isoformat(), "--full-refresh")  # a rebuild from bronze does not bring the user back
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert code == 0 and con.execute("SELECT count(*) FROM silver.stg_trakt__comment_event WHERE user_slug = $1", [slug]).fetchone()[0] == 0
    finally:
        con.close()


def test_a_day_without_pages_has_no_report(tmp_path):
    "The guard run_day applies after its ingest step: only a day bronze holds pages of gets model and reports."
    from trakt_nb.land.bronze_writer import BronzeWriter
    from trakt_nb.land.bronze import connect, ensure_bronze
    from trakt_nb.ops.run import day_has_pages
    s = load_settings(env={}).replace(storage={"warehouse": tmp_path / "w.duckdb", "state_dir": tmp_path})
    assert not day_has_pages(s, D1)  # no warehouse yet
    con = ensure_bronze(connect(s))
    con.close()
    assert not day_has_pages(s, D1)  # bronze, but no page of that day
    con = connect(s)
    with BronzeWriter(con, "r1", D1) as w:
        w.add_page({"resource_kind": "ratings", "title_kind": "movie", "title_id_trakt": 1, "http_status": 200,
                    "payload": json.dumps({"rating": 7.0, "votes": 1, "distribution": {str(i): int(i == 7) for i in range(1, 11)}})}, "u1")
    con.close()
    assert day_has_pages(s, D1) and not day_has_pages(s, D2)


@pytest.mark.lakehouse
@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_forget_user_rewrites_the_lake_tables(tmp_path, fmt):
    "With a lakehouse storage, the user's items leave the lake's bronze pages and silver comment tables too; everyone else's stay."
    import pyarrow as pa
    from trakt_nb.land.bronze import connect, ensure_bronze
    from trakt_nb.ops.forget import forget_user
    from trakt_nb.land.lake import BRONZE_PAGES, open_lake
    s = load_settings(env={}).replace(storage={"warehouse": tmp_path / "w.duckdb", "state_dir": tmp_path, "storage": fmt, "lake": tmp_path / "lake"})
    ensure_bronze(connect(s)).close()
    lake = open_lake(s)
    page = json.dumps([{"id": 1, "user": {"ids": {"slug": "ann"}}}, {"id": 2, "user": {"ids": {"slug": "bo"}}}])
    lake.append(BRONZE_PAGES, pa.table({"load_id": [1, 2], "fetched_day": [D1, D1], "payload": [page, "[]"]}), {"trakt_nb.published_load_id": "2"},
                partition_by=["fetched_day"])
    lake.overwrite("silver.stg_trakt__comment_event", pa.table({"comment_id": [1, 2], "user_slug": ["ann", "bo"]}), {"trakt_nb.last_load_id": "2"})
    gone = forget_user(s, "ann")
    assert gone[f"lake:{BRONZE_PAGES}"] == 1 and gone["lake:silver.stg_trakt__comment_event"] == 1
    pages = lake.to_arrow(BRONZE_PAGES).sort_by("load_id").column("payload").to_pylist()
    assert [[i["id"] for i in json.loads(p)] for p in pages] == [[2], []]
    assert lake.to_arrow("silver.stg_trakt__comment_event").column("user_slug").to_pylist() == ["bo"]
    assert lake.props(BRONZE_PAGES).get("trakt_nb.published_load_id") == "2"  # the lake's own bookkeeping survives the rewrite

"""What the model build costs: silver + gold through Ibis against the same work in hand-written DuckDB SQL, and an incremental day.

For each size (comments created up to day D) it synthesises a bronze warehouse directly (no HTTP): comment and
reply pages of 250 Trakt comment objects per title as seen on run date D (loads 1..4), 32 days of rating pages and
a summary page per title, plus the next day's crawl (load 5, run date D+1: the comments created on D+1 and the
pages of the 7-day lookback refetched with fresh likes/replies). The file is cached under bench/out/ by size, so
reruns skip generation (its time is printed apart and is not part of any figure).

Each measurement runs in a child process of its own on a fresh copy of that file (copying is not timed) and reports
its wall time and peak RSS (VmHWM of the child):
  ibis full        build_silver(full_refresh=True) + mark_gone + build_gold(D), on the file's store (the project's code)
  sql full         the same silver and gold tables written by hand in DuckDB SQL     (same decay fit, fit_titles)
  ibis full D+1    full refresh over all five loads + build_gold(D+1)
  ibis incr D+1    after silver/gold for D (untimed): build_silver incremental on load 5 + build_gold(D+1)
The run fails unless (sql full) equals (ibis full) and (ibis incr D+1) equals (ibis full D+1), table by table
(every row, floats to 9 significant digits).

Run from the project root:  .venv/bin/python -m bench.model [--sizes 1e6,1e7] [--quick]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

OUT = Path(__file__).resolve().parent / "out"
D = dt.date(2026, 11, 25)  # the as-of day of the full builds; D+1 is the incremental day
NEXT = D + dt.timedelta(days=1)
LOOKBACK_DAYS = 7
PAGE = 250
LOADS = 4
RATING_DAYS = 32
GEN_VERSION = 1
_DAY = 86400


def _end_of(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp())


# ---------------------------------------------------------------- generation

def _spec(size: int):
    from trakt_nb.source.replay_world import WorldSpec
    titles = 100 if size < 500_000 else 1000
    per_title = size / titles * 0.93  # replies add ~10 %, comments after D+1 are cut
    return WorldSpec(movies=titles * 6 // 10, shows=titles * 4 // 10, users=max(4000, size // 250),
                     comments_per_title=per_title, end_date=NEXT)


def _texts(w, rows: np.ndarray, t: int) -> list[str]:
    "comment_text(w, row, t) for every row, with the plain case sliced in bulk."
    from trakt_nb.source.replay_as_of import comment_text
    from trakt_nb.source.replay_text import LANGUAGES
    c = w.c
    out = [None] * len(rows)
    special = c["inline_spoiler"][rows] | (c["edit_at"][rows] <= t)
    lang = c["lang"][rows]
    for li, name in enumerate(LANGUAGES):
        sel = np.flatnonzero((lang == li) & ~special)
        if not len(sel): continue
        corp = w.corpora[name]
        m = len(corp.starts) - 1
        n = c["words"][rows[sel]].astype(np.int64)
        at = np.where(m > n, c["text_at"][rows[sel]] % np.maximum(m - n, 1), 0)
        a, b = corp.starts[at].tolist(), (corp.starts[at + n] - 1).tolist()
        text = corp.text
        for j, x, y in zip(sel.tolist(), a, b): out[j] = text[x:y]
    for j in np.flatnonzero(special).tolist(): out[j] = comment_text(w, int(rows[j]), t)
    return out


def _comment_columns(w, rows: np.ndarray, t: int) -> pa.Table:
    "The fields of the Trakt comment objects of `rows` as of `t`, as columns (rendered to JSON in DuckDB)."
    from trakt_nb.source.replay_as_of import likes_as_of, words_as_of
    from trakt_nb.source.replay_text import LANGUAGES
    c = w.c
    parent = c["parent"][rows]
    edited = c["edit_at"][rows] <= t
    lang = np.array(LANGUAGES, dtype=object)[c["lang"][rows]]
    has_lang, null_lang = c["has_lang"][rows], c["null_lang"][rows]
    rating = c["rating"][rows].astype(np.int64)
    kids = np.flatnonzero((c["parent"] >= 0) & (c["created"] <= t))
    replies = np.bincount(c["parent"][kids], minlength=w.n_comments)[rows]
    titles = w.titles
    return pa.table({
        "id": c["id"][rows], "parent_id": np.where(parent >= 0, c["id"][np.maximum(parent, 0)], 0),
        "created": c["created"][rows], "updated": np.where(edited, c["edit_at"][rows], c["created"][rows]),
        "comment": pa.array(_texts(w, rows, t), pa.large_string()), "spoiler": c["spoiler"][rows],
        "review": words_as_of(w, rows, t) >= 200, "replies": replies.astype(np.int64),
        "likes": likes_as_of(w, rows, t), "has_lang": has_lang,
        "language": pa.array(np.where(has_lang & ~null_lang, lang, None), pa.string()),
        "has_user_rating": c["has_user_rating"][rows], "has_stats": c["has_stats"][rows],
        "rating": pa.array(rating, mask=rating == 0), "play": c["play"][rows].astype(np.int64),
        "completed": c["completed"][rows].astype(np.int64), "user": c["user"][rows].astype(np.int64),
        "title": c["title"][rows].astype(np.int64), "is_reply": parent >= 0,
        "title_kind": titles["kind"].to_numpy()[c["title"][rows]].astype(str),
        "title_id_trakt": titles["trakt"].to_numpy()[c["title"][rows]].astype(np.int64),
    })


_PAGES_SQL = """
INSERT INTO {target} BY NAME
WITH obj AS (
  SELECT c.*, to_json({{
      'id': c.id, 'parent_id': c.parent_id,
      'created_at': strftime(make_timestamp(c.created * 1000000), '%Y-%m-%dT%H:%M:%S.000Z'),
      'updated_at': strftime(make_timestamp(c.updated * 1000000), '%Y-%m-%dT%H:%M:%S.000Z'),
      'comment': c.comment, 'spoiler': c.spoiler, 'review': c.review, 'replies': c.replies, 'likes': c.likes,
      'language': c.language, 'user_rating': CASE WHEN c.has_user_rating THEN c.rating END,
      'user_stats': CASE WHEN c.has_stats THEN {{'rating': c.rating, 'play_count': c.play, 'completed_count': c.completed}} END,
      'user': {{'username': u.username, 'private': u.private, 'ids': {{'slug': u.slug}}}}}})::VARCHAR AS o,
    CASE WHEN c.is_reply THEN 'replies' ELSE 'comments' END AS resource_kind,
    (row_number() OVER (PARTITION BY c.title, c.is_reply ORDER BY c.created DESC, c.id DESC) - 1) // {page} + 1 AS page,
    count(*) OVER (PARTITION BY c.title, c.is_reply) AS item_count
  FROM _c c JOIN _users u ON u.i = c.user),
pages AS (
  SELECT title, title_kind, title_id_trakt, resource_kind, page, any_value(item_count) AS item_count, count(*) AS n,
         '[' || string_agg(o, ',' ORDER BY created DESC, id DESC) || ']' AS payload
  FROM obj GROUP BY ALL)
SELECT $run_id AS run_id, $run_date::DATE AS run_date, resource_kind, title_kind, title_id_trakt,
       NULL::BIGINT AS parent_comment_id, 'newest' AS sort, page::INTEGER AS page,
       ((item_count + {page} - 1) // {page})::INTEGER AS page_count, {page} AS page_limit, item_count::INTEGER AS item_count,
       n::INTEGER AS items_delivered, $fetched::TIMESTAMPTZ + to_seconds(title) AS fetched_at, 200 AS http_status,
       '/' || title_kind || 's/' || title_id_trakt || '/' || resource_kind || '/newest?page=' || page || '&limit={page}' AS request_path,
       1 AS schema_version, payload::JSON AS payload, sha256(payload) AS payload_sha256,
       {load} AS load_id, resource_kind || ':' || title_kind || ':' || title_id_trakt || ':' || page AS unit_key
FROM pages
"""


def _insert_comment_pages(con, w, rows: np.ndarray, t: int, target: str, run_date: dt.date, load, fetched: dt.datetime,
                          chunk_titles: int = 100):
    "Render the comment/reply pages of `rows` as of `t` into `target`, a chunk of titles at a time."
    title_of = w.c["title"][rows]
    for lo in range(0, len(w.titles), chunk_titles):
        sel = rows[(title_of >= lo) & (title_of < lo + chunk_titles)]
        if not len(sel): continue
        con.register("_c", _comment_columns(w, sel, t))
        con.execute(_PAGES_SQL.format(target=target, page=PAGE, load=load),
                    {"run_id": f"bench-{run_date}", "run_date": run_date, "fetched": fetched})
        con.unregister("_c")


def _other_pages(w, days: list[dt.date], summary_days: list[dt.date], load_of) -> list[dict]:
    "Rating pages per title and day, and summary pages, as bronze rows."
    from trakt_nb.source.replay_listings import ratings_object, title_object
    rows = []
    for i, r in enumerate(w.titles.itertuples()):
        for kind, when in [("ratings", d) for d in days] + [("summary", d) for d in summary_days]:
            t = _end_of(when)
            obj = ratings_object(w, i, t) if kind == "ratings" else title_object(w, i, t, extended=True)
            payload = json.dumps(obj)
            rows.append(dict(run_id=f"bench-{when}", run_date=when, resource_kind=kind, title_kind=r.kind, title_id_trakt=int(r.trakt),
                             fetched_at=dt.datetime.combine(when + dt.timedelta(days=1), dt.time(6), dt.timezone.utc) + dt.timedelta(seconds=i),
                             http_status=200, request_path=f"/{r.kind}s/{r.trakt}/{kind}", schema_version=1, payload=payload,
                             payload_sha256="", load_id=load_of(i, when), unit_key=f"{kind}:{r.kind}:{r.trakt}"))
    return rows


def generate(size: int, path: Path) -> dict:
    "Build the cached bronze file of `size` comments; returns what it holds."
    from trakt_nb.land.bronze import ensure_bronze
    from trakt_nb.source.replay_world import World
    t0 = time.perf_counter()
    w = World.build(_spec(size))
    t_world = time.perf_counter() - t0
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    con.execute("SET TimeZone = 'UTC'")
    ensure_bronze(con)
    con.execute("CREATE SCHEMA bench_next; CREATE TABLE bench_next.trakt_pages AS SELECT * FROM bronze.trakt_pages LIMIT 0")
    u = w.users
    con.register("_users_df", pa.table({"i": np.arange(len(u)), "username": u["username"].astype(str), "private": u["private"].to_numpy(),
                                         "slug": u["slug"].astype(str)}))
    con.execute("CREATE TEMP TABLE _users AS SELECT * FROM _users_df")
    c, tD, tN = w.c, _end_of(D), _end_of(NEXT)
    vis_D = np.flatnonzero((c["created"] <= tD) & ~c["hidden"])
    lb_start = _end_of(D - dt.timedelta(days=LOOKBACK_DAYS)) + 1  # start of D-6
    vis_N = np.flatnonzero((c["created"] <= tN) & (c["created"] >= lb_start) & ~c["hidden"])
    fetched_D = dt.datetime.combine(NEXT, dt.time(6), dt.timezone.utc)
    _insert_comment_pages(con, w, vis_D, tD, "bronze.trakt_pages", D, f"(title % {LOADS}) + 1", fetched_D)
    _insert_comment_pages(con, w, vis_N, tN, "bench_next.trakt_pages", NEXT, str(LOADS + 1), fetched_D + dt.timedelta(days=1))
    days = [D - dt.timedelta(days=k) for k in range(RATING_DAYS - 1, -1, -1)]
    other = _other_pages(w, days, [D], lambda i, when: i % LOADS + 1)
    other_next = _other_pages(w, [NEXT], [NEXT], lambda i, when: LOADS + 1)
    from trakt_nb.land.bronze import bronze_arrow
    schema = bronze_arrow("trakt_pages")
    for target, rows in (("bronze.trakt_pages", other), ("bench_next.trakt_pages", other_next)):
        tab = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
        con.register("_o", tab)
        con.execute(f"INSERT INTO {target} BY NAME SELECT * REPLACE (sha256(payload) AS payload_sha256, payload::JSON AS payload) FROM _o")
        con.unregister("_o")
    info = {"size": size, "comments_D": int(len(vis_D)), "comments_next_load": int(len(vis_N)),
            "new_on_next": int(((c["created"] > tD) & (c["created"] <= tN) & ~c["hidden"]).sum()),
            "titles": len(w.titles), "world_s": round(t_world, 2)}
    info["pages"] = con.execute("SELECT count(*) FROM bronze.trakt_pages").fetchone()[0]
    info["next_pages"] = con.execute("SELECT count(*) FROM bench_next.trakt_pages").fetchone()[0]
    con.execute("CHECKPOINT")
    info["gen_s"] = round(time.perf_counter() - t0, 2)
    con.execute("CREATE TABLE bench_next.meta AS SELECT $m::VARCHAR AS m", {"m": json.dumps(info)})
    con.close()
    info["file_mb"] = round(tmp.stat().st_size / 2**20)
    tmp.rename(path)
    return info


def bronze_file(size: int) -> tuple[Path, dict, bool]:
    "The cached bronze file of `size` (generated in a child process if missing), its info, and whether it was cached."
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bronze_{size}_v{GEN_VERSION}.duckdb"
    cached = path.exists()
    if not cached:
        _child(["--generate", str(size), "--db", str(path)])
    con = duckdb.connect(str(path), read_only=True)
    info = json.loads(con.execute("SELECT m FROM bench_next.meta").fetchone()[0])
    con.close()
    info["file_mb"] = round(path.stat().st_size / 2**20)
    return path, info, cached


# ---------------------------------------------------------------- the same model in hand-written DuckDB SQL

_ITEM = ('[{"id":"BIGINT","parent_id":"BIGINT","created_at":"VARCHAR","updated_at":"VARCHAR","comment":"VARCHAR",'
         '"spoiler":"BOOLEAN","review":"BOOLEAN","replies":"BIGINT","likes":"BIGINT","language":"VARCHAR",'
         '"user_rating":"BIGINT","user_stats":{"rating":"BIGINT"},"user":{"ids":{"slug":"VARCHAR"}}}]')

HAND_SILVER = f"""
CREATE SCHEMA IF NOT EXISTS hand;
CREATE OR REPLACE TEMP TABLE flat AS
SELECT i.id AS comment_id, i.parent_id, p.title_kind, p.title_id_trakt, i."user".ids.slug AS user_slug,
       i.created_at::TIMESTAMPTZ AS created_at, i.updated_at::TIMESTAMPTZ AS updated_at, i.comment AS comment_text,
       len(list_filter(regexp_split_to_array(regexp_replace(i.comment, '(?i)\\[/?spoiler\\]', ' ', 'g'), '[ \\t\\n\\r\\f\\x0B]+'),
                       w -> w <> '' AND lower(w) <> 'edit:'))::INT AS word_count,  -- a word as silver.word_count defines it
       i.review AS is_review, i.spoiler OR contains(lower(i.comment), '[spoiler]') AS is_spoiler, i.likes, i.replies,
       coalesce(i.user_stats.rating, i.user_rating)::INT AS user_rating, i.language,
       p.run_date AS seen_date, p.fetched_at
FROM (SELECT run_date, fetched_at, title_kind, title_id_trakt, unnest(from_json(payload, '{_ITEM}')) AS i
      FROM bronze.trakt_pages WHERE resource_kind IN ('comments', 'replies') AND http_status = 200) p;
CREATE OR REPLACE TABLE hand.stg_trakt__comment_event_history AS
SELECT comment_id::VARCHAR || ':' || seen_date::VARCHAR AS version_key, comment_id, parent_id, parent_id <> 0 AS is_reply,
       title_kind, title_id_trakt, user_slug, created_at, updated_at, created_at::DATE AS created_date, comment_text, word_count,
       is_review, is_spoiler, likes, replies, user_rating, language, seen_date, fetched_at
FROM flat
QUALIFY row_number() OVER (PARTITION BY comment_id, seen_date ORDER BY greatest(created_at, updated_at) DESC, seen_date DESC, fetched_at DESC) = 1;
CREATE OR REPLACE TABLE hand.stg_trakt__comment_event AS
SELECT * EXCLUDE (version_key),
       min(fetched_at) OVER (PARTITION BY comment_id) AS first_seen_at, max(fetched_at) OVER (PARTITION BY comment_id) AS last_seen_at
FROM hand.stg_trakt__comment_event_history
QUALIFY row_number() OVER (PARTITION BY comment_id ORDER BY greatest(created_at, updated_at) DESC, seen_date DESC, fetched_at DESC) = 1;
DROP TABLE flat;
CREATE OR REPLACE TABLE hand.stg_trakt__rating_dist AS
SELECT title_kind, title_id_trakt, run_date AS snapshot_date, (payload->>'rating')::DOUBLE AS rating, (payload->>'votes')::BIGINT AS votes,
       {", ".join(f"(payload->'distribution'->>'{k}')::BIGINT AS dist_{k}" for k in range(1, 11))}, fetched_at
FROM bronze.trakt_pages WHERE resource_kind = 'ratings' AND http_status = 200
QUALIFY row_number() OVER (PARTITION BY title_kind, title_id_trakt, run_date ORDER BY fetched_at DESC) = 1;
CREATE OR REPLACE TABLE hand.dim_title AS
WITH s AS (SELECT * FROM bronze.trakt_pages WHERE resource_kind = 'summary' AND http_status = 200
           QUALIFY row_number() OVER (PARTITION BY title_kind, title_id_trakt ORDER BY fetched_at DESC) = 1),
     t AS (SELECT * FROM bronze.trakt_pages WHERE resource_kind = 'tmdb' AND http_status IN (200, 404)
           QUALIFY row_number() OVER (PARTITION BY title_kind, title_id_trakt ORDER BY fetched_at DESC) = 1)
SELECT s.title_kind, s.title_id_trakt, s.payload->'ids'->>'slug' AS slug, s.payload->'ids'->>'imdb' AS imdb,
       (s.payload->'ids'->>'tmdb')::BIGINT AS tmdb, (s.payload->'ids'->>'tvdb')::BIGINT AS tvdb, s.payload->>'title' AS title,
       (s.payload->>'year')::INT AS year, coalesce(s.payload->>'released', left(s.payload->>'first_aired', 10))::DATE AS release_date,
       from_json(s.payload->'genres', '["VARCHAR"]') AS genres, (s.payload->>'runtime')::INT AS runtime,
       s.payload->>'language' AS language, s.payload->>'country' AS country, s.payload->>'status' AS status,
       coalesce(t.http_status = 200, false) AS tmdb_known, (t.payload->>'popularity')::DOUBLE AS tmdb_popularity,
       (t.payload->>'vote_average')::DOUBLE AS tmdb_vote_average, (t.payload->>'vote_count')::BIGINT AS tmdb_vote_count,
       t.payload->>'original_language' AS tmdb_original_language
FROM s LEFT JOIN t USING (title_kind, title_id_trakt);
"""


def _quadrant_sql(con, a: dt.date, window: int, min_comments: int, cap_q: float, certainty: float) -> str:
    "The quadrant as of `a` as a SQL subquery: window stats in SQL, the project's empirical-Bayes step on them (like the decay fit), ranks and labels in SQL."
    from trakt_nb.model.quadrant import place_titles
    start = a - dt.timedelta(days=window - 1)
    stats = con.sql(f"""
WITH w AS (
  SELECT title_kind, title_id_trakt,
         coalesce(sum(comments) FILTER (WHERE day >= DATE '{start}'), 0)::BIGINT AS comments_in_window,
         coalesce(sum(likes + replies_received) FILTER (WHERE day >= DATE '{start}'), 0)::DOUBLE AS reactions
  FROM eng WHERE day <= DATE '{a}' GROUP BY ALL),
ev AS (SELECT title_kind, title_id_trakt, user_slug, (likes + replies)::DOUBLE AS r FROM events
       WHERE created_date BETWEEN DATE '{start}' AND DATE '{a}'),
cap AS (SELECT title_kind, quantile_cont(r, {cap_q}) AS cap FROM ev GROUP BY ALL),
per AS (SELECT title_kind, title_id_trakt, count(DISTINCT user_slug)::BIGINT AS people, sum(least(r, cap)) AS capped,
               sum(least(r, cap) * least(r, cap)) AS capped_sq FROM ev JOIN cap USING (title_kind) GROUP BY ALL)
SELECT w.title_kind, w.title_id_trakt, comments_in_window, coalesce(people, 0) AS breadth, comments_in_window >= {min_comments} AS eligible,
       reactions, coalesce(capped, 0) AS reactions_capped, coalesce(capped_sq, 0) AS reactions_capped_sq
FROM w LEFT JOIN per USING (title_kind, title_id_trakt)""").df()
    name = f"placed_{a:%Y%m%d}"
    con.register(name, place_titles(stats, certainty))
    return f"""(WITH t AS (SELECT * FROM {name}),
pc AS (SELECT title_kind, title_id_trakt, percent_rank() OVER (PARTITION BY title_kind ORDER BY breadth) AS breadth_pct,
              percent_rank() OVER (PARTITION BY title_kind ORDER BY intensity) AS intensity_pct FROM t WHERE eligible)
SELECT t.*, breadth_pct, intensity_pct,
       CASE WHEN NOT eligible THEN NULL
            WHEN breadth >= breadth_threshold AND intensity >= intensity_threshold THEN 'Phenomenon'
            WHEN breadth >= breadth_threshold THEN 'Mainstream'
            WHEN intensity >= intensity_threshold THEN 'Cult' ELSE 'Quiet' END AS quadrant
FROM t LEFT JOIN pc USING (title_kind, title_id_trakt))"""


def hand_gold(con, a: dt.date, m) -> None:
    "Every gold table as of `a` into schema `hand`, in plain DuckDB SQL (the decay fit and the trend regression are the project's scipy/statsmodels steps)."
    from scipy import stats
    from trakt_nb.model.half_life import HALF_LIFE_SCHEMA, cohort_trend, fit_titles
    end = f"TIMESTAMPTZ '{a} 23:59:59+00'"
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE events AS
SELECT * FROM hand.stg_trakt__comment_event_history WHERE seen_date <= DATE '{a}' AND created_at <= {end}
QUALIFY row_number() OVER (PARTITION BY comment_id ORDER BY greatest(created_at, updated_at) DESC, seen_date DESC, fetched_at DESC) = 1;
CREATE OR REPLACE TEMP TABLE eng AS
WITH d AS (
  SELECT title_kind, title_id_trakt, created_date AS day, count(*) AS comments, count(*) FILTER (WHERE NOT is_reply) AS top_level_comments,
         count(*) FILTER (WHERE is_reply) AS replies_posted, count(*) FILTER (WHERE is_review) AS reviews,
         count(*) FILTER (WHERE is_spoiler) AS spoilers, count(DISTINCT user_slug) AS distinct_commenters, sum(likes) AS likes,
         sum(replies) AS replies_received, sum(word_count) AS words, sum(user_rating) AS rating_sum, count(user_rating) AS rating_count
  FROM events WHERE created_date <= DATE '{a}' GROUP BY ALL),
spine AS (SELECT title_kind, title_id_trakt, unnest(generate_series(min(day), DATE '{a}', INTERVAL 1 DAY))::DATE AS day FROM d GROUP BY ALL)
SELECT s.title_kind, s.title_id_trakt, s.day,
       {", ".join(f"coalesce(d.{c}, 0)::BIGINT AS {c}" for c in ("comments", "top_level_comments", "replies_posted", "reviews", "spoilers",
                                                               "distinct_commenters", "likes", "replies_received", "words", "rating_sum", "rating_count"))},
       coalesce(d.rating_sum, 0)::DOUBLE / nullif(coalesce(d.rating_count, 0), 0) AS rating_mean
FROM spine s LEFT JOIN d USING (title_kind, title_id_trakt, day)
ORDER BY s.title_kind, s.title_id_trakt, s.day;
""")
    prev = a - dt.timedelta(days=7)
    qargs = (m.quadrant_window_days, m.quadrant_min_comments, m.quadrant_reaction_cap, m.quadrant_certainty)
    con.execute(f"""
CREATE OR REPLACE TABLE hand.mart_title_quadrant AS
SELECT DATE '{a}' AS as_of_date, n.title_kind, n.title_id_trakt, n.comments_in_window, n.breadth, n.intensity, n.eligible,
       n.breadth_threshold, n.intensity_threshold, n.breadth_pct, n.intensity_pct, n.quadrant, p.quadrant AS prev_quadrant,
       n.raw_intensity, n.intensity_lo, n.intensity_hi, n.p_high_breadth, n.p_high_intensity, n.placement_certain,
       coalesce(p.quadrant IS NOT NULL AND n.quadrant <> p.quadrant AND n.placement_certain AND p.placement_certain, false) AS moved
FROM {_quadrant_sql(con, a, *qargs)} n
LEFT JOIN {_quadrant_sql(con, prev, *qargs)} p USING (title_kind, title_id_trakt)
ORDER BY n.title_kind, n.title_id_trakt;
""")
    for d in (a, prev): con.unregister(f"placed_{d:%Y%m%d}")
    # decay fits: the top-level comment times and release dates by hand, the fit itself is the project's numpy/scipy step
    times = con.sql(f"""SELECT DISTINCT title_kind, title_id_trakt, comment_id, epoch(created_at)::BIGINT AS created
                        FROM hand.stg_trakt__comment_event_history WHERE NOT is_reply AND seen_date <= DATE '{a}' AND created_at <= {end}""").df()
    rel = con.sql("SELECT title_kind, title_id_trakt, release_date FROM hand.dim_title").df()
    fits = fit_titles(times, a, rel, min_comments=m.half_life_min_comments, min_days=m.half_life_min_days, p_threshold=m.half_life_p_threshold)
    con.register("fits", pa.Table.from_pandas(fits, schema=HALF_LIFE_SCHEMA, preserve_index=False))
    con.execute("CREATE OR REPLACE TABLE hand.mart_title_half_life AS SELECT * FROM fits ORDER BY title_kind, title_id_trakt")
    con.unregister("fits")
    md = m.cohort_min_observed_days
    trend = cohort_trend(fits, min_observed_days=md)
    n_max = max(2, len(fits))
    con.register("tq", pa.table({"n": list(range(2, n_max + 1)), "q": [float(stats.t.ppf(0.95, k - 1)) for k in range(2, n_max + 1)]}))
    con.execute(f"""
CREATE OR REPLACE TABLE hand.mart_half_life_cohort_trend AS
WITH c AS (SELECT as_of_date, cohort, count(*) AS titles,
                  count(*) FILTER (WHERE fit_status = 'ok' AND observed_days >= {md}) AS fitted_titles,
                  avg(ln(burst_half_life_days)) FILTER (WHERE fit_status = 'ok' AND observed_days >= {md}) AS m,
                  stddev_samp(ln(burst_half_life_days)) FILTER (WHERE fit_status = 'ok' AND observed_days >= {md}) AS sd
           FROM hand.mart_title_half_life GROUP BY ALL)
SELECT as_of_date, cohort, titles, fitted_titles, exp(m) AS cohort_half_life_days,
       CASE WHEN fitted_titles >= 2 THEN exp(m - q * sd / sqrt(fitted_titles)) END AS cohort_half_life_days_lo,
       CASE WHEN fitted_titles >= 2 THEN exp(m + q * sd / sqrt(fitted_titles)) END AS cohort_half_life_days_hi,
       {trend["trend_titles"]}::BIGINT AS trend_titles,
       {", ".join(f"{'NULL' if trend[k] is None else repr(trend[k])}::DOUBLE AS {k}" for k in ("trend_per_year", "trend_per_year_lo", "trend_per_year_hi", "trend_per_year_lo99", "trend_per_year_hi99"))},
       '{trend["trend_verdict"]}' AS trend_verdict
FROM c LEFT JOIN tq ON tq.n = c.fitted_titles ORDER BY as_of_date, cohort;
""")
    con.unregister("tq")
    z, p_thr, share = 1.6448536269514722, m.half_life_p_threshold, m.long_tail_max_yearly_share
    con.execute(f"""
CREATE OR REPLACE TABLE hand.mart_title_hold_up AS
WITH h AS (SELECT *, CASE WHEN fit_status <> 'ok' THEN NULL WHEN background_p < {p_thr} THEN true
                          WHEN background_per_day_hi * 365.0 / nullif(burst_comments, 0) < {share} THEN false END AS long_tail,
                     burst_half_life_days * {m.hold_up_burst_half_lives} AS burst_days
           FROM hand.mart_title_half_life),
j AS (SELECT e.title_kind, e.title_id_trakt, e.rating_sum::DOUBLE AS s, e.rating_count::DOUBLE AS c, (e.day - h.onset_day)::DOUBLE AS "offset", h.burst_days
      FROM eng e JOIN h USING (title_kind, title_id_trakt) WHERE h.fit_status = 'ok' AND e.day <= DATE '{a}'),
g AS (SELECT title_kind, title_id_trakt,
        sum(s) FILTER (WHERE "offset" >= 0 AND "offset" < burst_days) AS ds, sum(c) FILTER (WHERE "offset" >= 0 AND "offset" < burst_days) AS dc,
        sum(s * s) FILTER (WHERE "offset" >= 0 AND "offset" < burst_days) AS dss, sum(s * c) FILTER (WHERE "offset" >= 0 AND "offset" < burst_days) AS dsc,
        sum(c * c) FILTER (WHERE "offset" >= 0 AND "offset" < burst_days) AS dcc,
        sum(s) FILTER (WHERE "offset" >= burst_days) AS a_s, sum(c) FILTER (WHERE "offset" >= burst_days) AS ac,
        sum(s * s) FILTER (WHERE "offset" >= burst_days) AS ass, sum(s * c) FILTER (WHERE "offset" >= burst_days) AS asc_,
        sum(c * c) FILTER (WHERE "offset" >= burst_days) AS acc
      FROM j GROUP BY ALL),
k AS (SELECT *, ds / nullif(dc, 0) AS dm, a_s / nullif(ac, 0) AS am FROM g),
v AS (SELECT *, (dss - 2 * dm * dsc + dm * dm * dcc) / (nullif(dc, 0) * nullif(dc, 0)) AS dv,
                (ass - 2 * am * asc_ + am * am * acc) / (nullif(ac, 0) * nullif(ac, 0)) AS av,
                CASE WHEN dc >= {m.rating_min_count} AND ac >= {m.rating_min_count} THEN am - dm END AS drift FROM k)
SELECT DATE '{a}' AS as_of_date, h.title_kind, h.title_id_trakt, h.fit_status, h.long_tail IS NOT NULL AS qualifies, h.long_tail,
       h.background_per_day * 365.0 / nullif(h.burst_comments, 0) AS background_yearly_share,
       h.background_per_day_lo * 365.0 / nullif(h.burst_comments, 0) AS background_yearly_share_lo,
       h.background_per_day_hi * 365.0 / nullif(h.burst_comments, 0) AS background_yearly_share_hi,
       h.burst_days, coalesce(v.dc, 0)::BIGINT AS during_ratings, coalesce(v.ac, 0)::BIGINT AS after_ratings,
       v.dm AS during_rating_mean, v.am AS after_rating_mean, v.drift AS rating_drift,
       v.drift - {z} * sqrt(v.av + v.dv) AS rating_drift_lo, v.drift + {z} * sqrt(v.av + v.dv) AS rating_drift_hi,
       CASE WHEN h.long_tail IS NULL THEN NULL ELSE h.long_tail AND (v.drift + {z} * sqrt(v.av + v.dv) IS NULL OR v.drift + {z} * sqrt(v.av + v.dv) >= 0) END AS holds_up
FROM h LEFT JOIN v USING (title_kind, title_id_trakt) ORDER BY h.title_kind, h.title_id_trakt;
""")
    snap = lambda d: (f"(SELECT * FROM hand.stg_trakt__rating_dist WHERE snapshot_date <= DATE '{d}' QUALIFY row_number() OVER "
                      f"(PARTITION BY title_kind, title_id_trakt ORDER BY snapshot_date DESC, fetched_at DESC) = 1)")
    total = "nullif(" + " + ".join(f"n.dist_{k}" for k in range(1, 11)) + ", 0)::DOUBLE"
    con.execute(f"""
CREATE OR REPLACE TABLE hand.mart_title_rating_trend AS
SELECT DATE '{a}' AS as_of_date, n.title_kind, n.title_id_trakt, n.rating, n.votes, n.rating - w7.rating AS rating_change_7d,
       n.rating - w28.rating AS rating_change_28d, n.votes - w7.votes AS votes_change_7d, n.votes - w28.votes AS votes_change_28d,
       (n.dist_9 + n.dist_10) / {total} AS share_9_10, (n.dist_1 + n.dist_2 + n.dist_3) / {total} AS share_1_3
FROM {snap(a)} n LEFT JOIN {snap(a - dt.timedelta(days=7))} w7 USING (title_kind, title_id_trakt)
LEFT JOIN {snap(a - dt.timedelta(days=28))} w28 USING (title_kind, title_id_trakt)
ORDER BY n.title_kind, n.title_id_trakt;
CREATE OR REPLACE TABLE hand.fct_title_daily_engagement AS SELECT *, DATE '{a}' AS as_of_date FROM eng;
DROP TABLE events; DROP TABLE eng;
""")


# ---------------------------------------------------------------- child processes

def _child(args: list[str]) -> dict:
    "Run `python -m bench.model <args>` and return the JSON of its last stdout line."
    p = subprocess.run([sys.executable, "-m", "bench.model", *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-8000:])
        raise SystemExit(f"child {' '.join(args)} failed")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _peak_mb() -> float:
    "Peak RSS of this process image in MB (VmHWM: unlike ru_maxrss it does not inherit the parent's peak across fork/exec)."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SILVER_OUT = ["stg_trakt__comment_event_history", "stg_trakt__comment_event", "stg_trakt__rating_dist", "dim_title"]
GOLD_OUT = ["fct_title_daily_engagement", "mart_title_quadrant", "mart_title_half_life", "mart_title_hold_up",
            "mart_title_rating_trend", "mart_half_life_cohort_trend"]


def _run_variant(kind: str, db: str, as_of: dt.date) -> dict:
    "One timed build on `db` (in this child process): 'ibis', 'ibis_incr' or 'sql'."
    import warnings
    warnings.filterwarnings("ignore")
    from trakt_nb.land.bronze import connect
    from trakt_nb.config import load_settings
    from trakt_nb.land.store import DuckFileStore
    from trakt_nb.model.build import build_gold, mark_gone
    from trakt_nb.model.lake_build import confirmed_gone
    from trakt_nb.model.silver import build_silver
    import trakt_nb.model.half_life as ghl
    settings = load_settings()
    from trakt_nb.land.bronze import write_seal
    write_seal(Path(db))  # the file as a clean stop leaves it (this script wrote it, whole): opening it does not read it all to verify it
    con = connect(db)
    if os.environ.get("BENCH_MEMORY_LIMIT"): con.execute(f"SET memory_limit = '{os.environ['BENCH_MEMORY_LIMIT']}'")
    fit = {"fit_s": 0.0, "fit_cpu_s": 0.0}
    fit_titles = ghl.fit_titles
    def timed_fit(*a, **k):  # the decay fits' share of the gold build (both paths call this function by its module name)
        w0, c0 = time.perf_counter(), time.process_time()
        try: return fit_titles(*a, **k)
        finally: fit["fit_s"] += time.perf_counter() - w0; fit["fit_cpu_s"] += time.process_time() - c0
    ghl.fit_titles = timed_fit
    base = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "sql":
        con.execute(HAND_SILVER)
        t1, c1 = time.perf_counter(), time.process_time()
        hand_gold(con, as_of, settings.metrics)
    else:
        store = DuckFileStore(con)
        silver = build_silver(store, full_refresh=(kind == "ibis"))
        mark_gone(store, confirmed_gone(con))
        t1, c1 = time.perf_counter(), time.process_time()
        build_gold(store, as_of, settings)
    t2, c2 = time.perf_counter(), time.process_time()
    con.close()
    return {"seconds": t2 - t0, "silver_s": t1 - t0, "gold_s": t2 - t1, "gold_cpu_s": c2 - c1, **fit, "peak_mb": _peak_mb(), "start_mb": base}


def _add_next_day(db: Path):
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO bronze.trakt_pages SELECT * FROM bench_next.trakt_pages; CHECKPOINT")
    con.close()


def compare(db_a: Path, schema_map_a: dict, db_b: Path, schema_map_b: dict, tables: list[str], where: str = "") -> dict:
    "Rows of each table in A that B lacks and the reverse (doubles to 9 decimals): {table: (rows_a, rows_b, only_a, only_b)}."
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{os.environ.get('BENCH_MEMORY_LIMIT') or '4GB'}'")  # 10M rows of text on each side: spill, do not swap
    con.execute(f"SET temp_directory = '{OUT / 'work' / 'compare.tmp'}'")
    same = Path(db_a) == Path(db_b)  # both sides in one file (--one-copy): attached once
    con.execute(f"ATTACH '{db_a}' AS a (READ_ONLY)" + ("" if same else f"; ATTACH '{db_b}' AS b (READ_ONLY)"))
    out = {}
    for t in tables:
        ta, tb = f"a.{schema_map_a[t]}.{t}", f"{'a' if same else 'b'}.{schema_map_b[t]}.{t}"
        cols = con.execute(f"SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'a' AND schema_name = $1 "
                           f"AND table_name = $2 AND column_name <> 'version_key' ORDER BY column_index", [schema_map_a[t], t]).fetchall()
        sel = ", ".join(f"round({c}, 9) AS {c}" if ty == "DOUBLE" else f'"{c}"' for c, ty in cols)
        w = where if where and any(c == "as_of_date" for c, _ in cols) else ""
        qa, qb = f"SELECT {sel} FROM {ta} {w}", f"SELECT {sel} FROM {tb} {w}"
        na, nb = (con.execute(f"SELECT count(*) FROM ({q})").fetchone()[0] for q in (qa, qb))
        only_a = con.execute(f"SELECT count(*) FROM ({qa} EXCEPT ALL {qb})").fetchone()[0]
        only_b = con.execute(f"SELECT count(*) FROM ({qb} EXCEPT ALL {qa})").fetchone()[0]
        out[t] = (na, nb, only_a, only_b)
    con.close()
    return out


def aggregates(db: Path, silver: str, gold: str, as_of: dt.date) -> dict:
    "A few headline figures of a built file."
    con = duckdb.connect(str(db), read_only=True)
    q = lambda sql: con.execute(sql).fetchone()
    r = {"events": q(f"SELECT count(*) FROM {silver}.stg_trakt__comment_event")[0],
         "versions": q(f"SELECT count(*) FROM {silver}.stg_trakt__comment_event_history")[0],
         "title_days": q(f"SELECT count(*) FROM {gold}.fct_title_daily_engagement")[0],
         "comments_sum": q(f"SELECT sum(comments) FROM {gold}.fct_title_daily_engagement")[0],
         "quadrants": dict(con.execute(f"SELECT coalesce(quadrant, '-'), count(*) FROM {gold}.mart_title_quadrant "
                                       f"WHERE as_of_date = DATE '{as_of}' GROUP BY 1 ORDER BY 1").fetchall()),
         "median_burst_half_life": q(f"SELECT round(median(burst_half_life_days), 2) FROM {gold}.mart_title_half_life WHERE as_of_date = DATE '{as_of}'")[0],
         "holds_up": q(f"SELECT count(*) FILTER (WHERE holds_up) FROM {gold}.mart_title_hold_up WHERE as_of_date = DATE '{as_of}'")[0]}
    con.close()
    return r


def _child_main(a) -> dict:
    if a.generate:
        return generate(int(a.generate), Path(a.db))
    if a.run:
        return _run_variant(a.run, a.db, dt.date.fromisoformat(a.as_of))
    raise SystemExit("nothing to do")


def _measure(kind: str, db: Path, as_of: dt.date) -> dict:
    return _child(["--run", kind, "--db", str(db), "--as-of", as_of.isoformat()])


def _bronze_announced(size: int, extra: str = ""):
    "The size's cached bronze file (generated if missing), with one line saying what it holds."
    src, info, cached = bronze_file(size)
    print(f"\n{size:,}: {info['comments_D']:,} comments up to {D} in {info['pages']:,} pages ({info['file_mb']:,} MB); "
          f"next day: {info['new_on_next']:,} new, {info['comments_next_load']:,} in {info['next_pages']:,} refetched pages; "
          f"generation {info['gen_s']} s{' (cached, not redone)' if cached else ''}{extra}", flush=True)
    return src, info, cached


def run_size(size: int, incremental: bool, keep: bool) -> list[dict]:
    "Every variant of one size; checks that the variants agree."
    src, info, cached = _bronze_announced(size)
    work = OUT / "work"
    work.mkdir(exist_ok=True)
    rows = []
    f_ibis, f_sql = work / f"ibis_{size}.duckdb", work / f"sql_{size}.duckdb"
    shutil.copy(src, f_ibis); shutil.copy(src, f_sql)
    r_ibis = _measure("ibis", f_ibis, D); rows.append(dict(size=size, variant=f"ibis full @D", **r_ibis))
    r_sql = _measure("sql", f_sql, D); rows.append(dict(size=size, variant=f"sql full @D", **r_sql))
    silver_gold = {**{t: "silver" for t in SILVER_OUT}, **{t: "gold" for t in GOLD_OUT}}
    cmp = compare(f_ibis, silver_gold, f_sql, {t: "hand" for t in SILVER_OUT + GOLD_OUT}, SILVER_OUT + GOLD_OUT)
    bad = {t: v for t, v in cmp.items() if v[2] or v[3] or v[0] != v[1]}
    print("  sql vs ibis:", "identical in every table (" + ", ".join(f"{t} {v[0]:,}" for t, v in cmp.items()) + ")" if not bad else f"DIFFER {bad}")
    print("  aggregates ibis:", aggregates(f_ibis, "silver", "gold", D))
    print("  aggregates sql: ", aggregates(f_sql, "hand", "hand", D))
    rows[-1]["ratio"] = r_sql["seconds"] / r_sql["seconds"]
    rows[-2]["ratio"] = r_ibis["seconds"] / r_sql["seconds"]
    rows[-2]["vs"] = rows[-1]["vs"] = "sql full"
    f_sql.unlink()
    if bad: raise SystemExit("the hand-written SQL and the Ibis path disagree")
    if incremental:
        f_full = work / f"full_next_{size}.duckdb"
        shutil.copy(src, f_full); _add_next_day(f_full)
        r_full = _measure("ibis", f_full, NEXT); rows.append(dict(size=size, variant="ibis full @D+1", **r_full))
        _add_next_day(f_ibis)  # the ibis file holds silver and gold as of D: the state an incremental day starts from
        r_inc = _measure("ibis_incr", f_ibis, NEXT); rows.append(dict(size=size, variant="ibis incremental @D+1", **r_inc))
        rows[-1]["ratio"], rows[-2]["ratio"] = r_inc["seconds"] / r_full["seconds"], 1.0
        rows[-1]["vs"] = rows[-2]["vs"] = "ibis full @D+1"
        cmp = compare(f_ibis, silver_gold, f_full, silver_gold, SILVER_OUT + GOLD_OUT, where=f"WHERE as_of_date = DATE '{NEXT}'")
        bad = {t: v for t, v in cmp.items() if v[2] or v[3] or v[0] != v[1]}
        print("  incremental vs full @D+1:", "identical in every table" if not bad else f"DIFFER {bad}")
        if not keep: f_full.unlink()
        if bad: raise SystemExit("the incremental day and the full build disagree")
    if not keep: f_ibis.unlink()
    return rows


def run_size_one_copy(size: int, keep: bool, sql: bool = True) -> list[dict]:
    "Every variant of one size on a single copy of the bronze file (for sizes whose copies would not fit on disk)."
    src, info, cached = _bronze_announced(size, "; one copy: ibis full, sql full, next day, incremental")
    work = OUT / "work"
    work.mkdir(exist_ok=True)
    f = work / f"one_{size}.duckdb"
    shutil.copy(src, f)
    rows = []
    r_ibis = _measure("ibis", f, D); rows.append(dict(size=size, variant="ibis full @D", **r_ibis, ratio=1.0, vs="ibis full @D"))
    print("  measured:", rows[-1], flush=True)
    print("  aggregates ibis:", aggregates(f, "silver", "gold", D), flush=True)
    if sql:
        r_sql = _measure("sql", f, D); rows.append(dict(size=size, variant="sql full @D", **r_sql))
        print("  measured:", rows[-1], flush=True)
        silver_gold = {**{t: "silver" for t in SILVER_OUT}, **{t: "gold" for t in GOLD_OUT}}
        cmp = compare(f, silver_gold, f, {t: "hand" for t in SILVER_OUT + GOLD_OUT}, SILVER_OUT + GOLD_OUT)
        bad = {t: v for t, v in cmp.items() if v[2] or v[3] or v[0] != v[1]}
        print("  sql vs ibis:", "identical in every table (" + ", ".join(f"{t} {v[0]:,}" for t, v in cmp.items()) + ")" if not bad else f"DIFFER {bad}")
        rows[-2]["ratio"], rows[-1]["ratio"] = r_ibis["seconds"] / r_sql["seconds"], 1.0
        rows[-2]["vs"] = rows[-1]["vs"] = "sql full"
        if bad: raise SystemExit("the hand-written SQL and the Ibis path disagree")
        con = duckdb.connect(str(f))
        con.execute("DROP SCHEMA hand CASCADE; CHECKPOINT")
        con.close()
    _add_next_day(f)
    r_inc = _measure("ibis_incr", f, NEXT); rows.append(dict(size=size, variant="ibis incremental @D+1", **r_inc))
    rows[-1]["ratio"], rows[-1]["vs"] = r_inc["seconds"] / r_ibis["seconds"], "ibis full @D"
    print("  aggregates incremental @D+1:", aggregates(f, "silver", "gold", NEXT))
    if not keep: f.unlink()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e6,1e7", help="comma-separated comment counts (e.g. 1e6,3e6)")
    ap.add_argument("--quick", action="store_true", help="one 100k size, for a smoke run")
    ap.add_argument("--incremental", default="largest", help="sizes that also measure the incremental day: largest | all | none")
    ap.add_argument("--keep", action="store_true", help="keep the built warehouse files under bench/out/work")
    ap.add_argument("--one-copy", dest="one_copy", help="sizes measured on one copy of their file (ibis, sql, then the incremental day "
                    "against ibis full @D; no full @D+1 build): e.g. 1e7, for files whose copies would not fit on disk")
    ap.add_argument("--no-sql", dest="no_sql", action="store_true", help="--one-copy sizes skip the hand-written SQL build (and its check)")
    ap.add_argument("--memory-limit", dest="memory_limit", help="DuckDB memory_limit for every build (e.g. 12GB); default DuckDB's own")
    ap.add_argument("--generate", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--as-of", dest="as_of", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.generate or a.run:
        print(json.dumps(_child_main(a), default=str))
        return
    sizes = [100_000] if a.quick else [int(float(x)) for x in a.sizes.split(",")]
    one_copy = {int(float(x)) for x in a.one_copy.split(",")} if a.one_copy else set()
    if a.memory_limit: os.environ["BENCH_MEMORY_LIMIT"] = a.memory_limit
    print(f"python {platform.python_version()} · duckdb {duckdb.__version__} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f}"
          f"{' · memory_limit ' + a.memory_limit if a.memory_limit else ''}")
    print(f"D = {D}; each figure is one child process on a fresh copy of the cached bronze file (copy not timed)")
    rows = []
    for s in sizes:
        inc = a.incremental == "all" or (a.incremental == "largest" and s == max(sizes))
        rows += run_size_one_copy(s, a.keep, sql=not a.no_sql) if s in one_copy else run_size(s, inc, a.keep)
    print()
    print(f"{'size':>11}  {'variant':<22} {'seconds':>8} {'silver s':>9} {'gold s':>7} {'peak MB':>8}  {'ratio':<22}  "
          f"{'fits s':>6} {'gold cpu s':>10} {'fits cpu s':>10} {'fits/rest cpu':>13}")
    print(f"{'-' * 11}  {'-' * 22} {'-' * 8} {'-' * 9} {'-' * 7} {'-' * 8}  {'-' * 22}  {'-' * 6} {'-' * 10} {'-' * 10} {'-' * 13}")
    for r in rows:  # fits: the decay fits (fit_titles) inside the gold build; fits/rest: their CPU time over the rest of gold's
        rest = r['gold_cpu_s'] - r['fit_cpu_s']
        print(f"{r['size']:>11,}  {r['variant']:<22} {r['seconds']:>8.2f} {r['silver_s']:>9.2f} {r['gold_s']:>7.2f} "
              f"{r['peak_mb']:>8,.0f}  {str(round(r['ratio'], 2)) + 'x ' + r['vs']:<22}  {r['fit_s']:>6.2f} {r['gold_cpu_s']:>10.2f} "
              f"{r['fit_cpu_s']:>10.2f} {r['fit_cpu_s'] / rest if rest > 0 else float('nan'):>13.2f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Contracts: schema files, agreement of the fast and the explaining validator, quarantine text, replay payloads."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from jsonschema import Draft202012Validator, FormatChecker

import trakt_nb.land.contracts as contracts_mod
import trakt_nb.land.typed as typed_mod
from trakt_nb.land.contracts import (SCHEMAS_DIR, CheckResult, check_items, check_object, load_contracts,
                                quarantine_text)

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = {"comment", "ratings", "movie", "show", "trending_movie", "trending_show", "tmdb_movie", "tmdb_tv"}
CONTRACTS = load_contracts()

COMMENT = {
    "id": 8, "parent_id": 0, "created_at": "2026-11-01T09:10:11.000Z", "updated_at": "2026-11-01T09:12:40.000Z",
    "comment": "The score carries the whole second act.", "spoiler": False, "review": False, "replies": 1, "likes": 12,
    "language": "en", "user_rating": 8, "user_stats": {"rating": 8, "play_count": 2, "completed_count": 1},
    "user": {"username": "filmfan42", "private": False, "deleted": False, "name": "Alex Example", "vip": True,
             "vip_ep": False, "director": False, "ids": {"slug": "filmfan42"}},
}


def test_schemas_dir_is_the_projects():
    assert SCHEMAS_DIR == ROOT / "schemas"


def test_every_resource_has_a_well_formed_v1():
    assert set(CONTRACTS.resources) == RESOURCES
    for r in RESOURCES:
        path = ROOT / "schemas" / r / "v1.json"
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"trakt-nb:{r}:v1" and schema["x-version"] == 1 and schema["title"]
        assert CONTRACTS.version(r) == (1 if r.startswith("tmdb") or r == "comment" else 2)  # 2026: ratings' second shape, titles' new fields


def _body(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k in ("type", "required", "properties")}


@pytest.mark.parametrize("kind", ["movie", "show"])
def test_trending_embeds_the_same_title_schema(kind):
    "trending_<kind> repeats the <kind> schema in $defs: the copies must not drift apart."
    title = CONTRACTS[kind].schema
    trending = CONTRACTS[f"trending_{kind}"].schema
    assert trending["$defs"][kind] == _body(title)
    assert trending["$defs"]["timestamp"] == title["$defs"]["timestamp"]


def test_schemas_dir_found_from_another_working_directory(tmp_path):
    out = subprocess.run([sys.executable, "-c", "from trakt_nb.land.contracts import load_contracts as l; print(l().schemas_dir)"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == ROOT / "schemas"


# ---- the fast path and jsonschema must give the same verdict ------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=False, allow_infinity=False),
                         st.sampled_from(["", "12", "en", "2026-11-01T09:10:11.000Z", "2026-11-01T09:10:11Z",
                                          "2026-02-30T09:10:11.000Z", "2026-11-01T09:10:11.000Z\n", "2026-11-01",
                                          "2026-11-01T25:10:11.000Z", "2026-11-01t09:10:11.000z", "9999-12-31T23:59:59.999Z"]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                   st.dictionaries(st.sampled_from(["slug", "rating", "x"]), inner, max_size=3)),
                           max_leaves=6)
PATHS = [("id",), ("parent_id",), ("created_at",), ("updated_at",), ("comment",), ("spoiler",), ("review",), ("replies",),
         ("likes",), ("language",), ("user_rating",), ("user_stats",), ("user_stats", "rating"), ("user_stats", "play_count"),
         ("user",), ("user", "username"), ("user", "private"), ("user", "name"), ("user", "ids"), ("user", "ids", "slug"),
         ("extra",), ("user", "extra")]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(JSON_VALUES, st.just(KeyError))), min_size=1, max_size=3))
def test_fast_path_agrees_with_jsonschema(edits):
    c = CONTRACTS["comment"]
    obj = copy.deepcopy(COMMENT)
    for path, value in edits:
        parent = obj
        for k in path[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
        if not isinstance(parent, dict): continue
        if value is KeyError: parent.pop(path[-1], None)
        else: parent[path[-1]] = value
    try:
        c._fast(obj); fast_ok = True
    except contracts_mod.JsonSchemaValueException:
        fast_ok = False
    assert fast_ok == (c.errors(obj) == []), (obj, c.errors(obj))
    assert c.is_valid(obj) == fast_ok
    _assert_typed_not_looser(c, obj)


def _typed_ok(c, obj, which=1) -> bool:
    raw = orjson.dumps([obj] if which == 0 else obj)
    return contracts_mod.typed_ok(c, raw, which)


def _assert_typed_not_looser(c, obj):
    "What the typed decoder accepts, as a page of one and as an object, is valid and has no drift."
    for which in (0, 1):
        if _typed_ok(c, obj, which): assert c.errors(obj) == [] and c.drift(obj) == [], (which, obj, c.errors(obj))


MOVIE = {"title": "Harbor Lights", "year": 2026, "ids": {"trakt": 901, "slug": "harbor-lights-2026", "imdb": "tt9000901", "tmdb": 770901},
         "tagline": None, "overview": "A ferry captain's last season.", "released": "2026-03-14", "runtime": 118,
         "country": "us", "trailer": None, "homepage": None, "status": "released", "rating": 7.61, "votes": 1402,
         "comment_count": 87, "updated_at": "2026-11-27T08:00:12.000Z", "language": "en", "languages": ["en"],
         "available_translations": ["en", "de"], "genres": ["drama"], "certification": "PG-13"}
SHOW = {"title": "Night Shift Radio", "year": 2025, "ids": {"trakt": 5501, "slug": "night-shift-radio", "tvdb": 412001, "imdb": "tt8005501", "tmdb": 95501},
        "overview": "Call-ins after midnight.", "first_aired": "2025-01-21T02:00:00.000Z",
        "airs": {"day": "Monday", "time": "21:00", "timezone": "America/New_York"}, "runtime": 45, "certification": "TV-14",
        "network": "HBO", "country": "us", "status": "returning series", "rating": 8.1, "votes": 900, "comment_count": 41,
        "updated_at": "2026-11-27T08:00:12.000Z", "language": "en", "languages": ["en"], "available_translations": ["en"],
        "genres": ["drama", "mystery"], "aired_episodes": 18}
TYPED_BASES = {"comment": COMMENT, "movie": MOVIE, "show": SHOW, "trending_movie": {"watchers": 41, "movie": MOVIE},
               "trending_show": {"watchers": 3, "show": SHOW},
               "ratings": {"rating": 8.29, "votes": 24789, "distribution": {str(i): 10 * i for i in range(1, 11)}}}
# ratings v2 (the plain or the multi-source shape, `anyOf`) has no typed path: ratings v1 keeps one, and is checked here
TYPED = {r: CONTRACTS.get(r, 1) if r == "ratings" else CONTRACTS[r] for r in TYPED_BASES}


def _key_paths(obj, pre=()) -> list[tuple]:
    "Every key path in a decoded object (list items as index 0)."
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items(): out += [pre + (k,)] + _key_paths(v, pre + (k,))
    elif isinstance(obj, list) and obj: out += [pre + (0,)] + _key_paths(obj[0], pre + (0,))
    return out


@pytest.mark.parametrize("resource", sorted(TYPED_BASES))
def test_typed_path_passes_clean_payloads(resource):
    "Every contract but TMDb's has a typed path, and a clean payload passes it (else the crawl would gain nothing)."
    assert TYPED[resource]._typed is not None
    assert _typed_ok(TYPED[resource], TYPED_BASES[resource])
    assert {r for r in CONTRACTS if CONTRACTS[r]._typed is None} == {"ratings", "tmdb_movie", "tmdb_tv"}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(TYPED_BASES)), st.data())
def test_typed_path_is_never_looser_than_the_schema(resource, data):
    "Random edits anywhere in a payload (new values, removed keys, added keys): whatever the typed decoder accepts, the schema accepts, without drift."
    obj = copy.deepcopy(TYPED_BASES[resource])
    paths = _key_paths(obj)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths + [p[:-1] + ("extra",) for p in paths]))
        parent = obj
        for k in path[:-1]:
            parent = parent[k] if isinstance(parent, (dict, list)) and (k in parent if isinstance(parent, dict) else isinstance(k, int) and k < len(parent)) else None
        if parent is None or not isinstance(parent, (dict, list)): continue
        value = data.draw(st.one_of(JSON_VALUES, st.just(KeyError)))
        if isinstance(parent, list):
            if value is KeyError: parent.clear()
            elif parent: parent[0] = value
        elif value is KeyError: parent.pop(path[-1], None)
        else: parent[path[-1]] = value
    _assert_typed_not_looser(TYPED[resource], obj)


TRICKY_TIMES = ["2026-11-01T09:10:11.000Z", "2026-02-30T09:10:11.000Z", "2025-02-29T09:10:11.000Z", "2024-02-29T09:10:11.000Z",
                "2026-11-01T24:00:00.000Z", "2026-11-01T09:60:11.000Z", "2016-12-31T23:59:60.000Z", "2026-00-10T09:10:11.000Z",
                "2026-11-01T09:10:11Z", "2026-11-01T09:10:11.000+00:00", "2026-11-01 09:10:11.000Z", "2026-11-01T09:10:11.000Z\n"]
TRICKY_DATES = ["2026-03-14", "2026-02-30", "2024-02-29", "2025-02-29", "2026-13-01", "2026-3-14", "20260314", "", "2026-03-14\n"]


@pytest.mark.parametrize("value", TRICKY_TIMES)
@pytest.mark.parametrize("resource,path", [("comment", ("created_at",)), ("show", ("first_aired",)),
                                           ("trending_movie", ("movie", "updated_at"))])
def test_fast_path_agrees_on_timestamps(resource, path, value):
    c = CONTRACTS[resource]
    base = {"comment": COMMENT,
            "show": {"title": "S", "year": 2025, "ids": {"trakt": 1, "slug": "s"}},
            "trending_movie": {"watchers": 1, "movie": {"title": "M", "year": 2026, "ids": {"trakt": 2, "slug": "m"}}}}[resource]
    obj = copy.deepcopy(base)
    parent = obj
    for k in path[:-1]: parent = parent[k]
    parent[path[-1]] = value
    assert c.is_valid(obj) == (c.errors(obj) == [])
    try:
        c._fast(obj); fast_ok = True
    except contracts_mod.JsonSchemaValueException:
        fast_ok = False
    assert fast_ok == (c.errors(obj) == []), (value, c.errors(obj))
    assert _typed_ok(c, obj) == fast_ok, value  # on these, the typed path is exactly as strict


TWO = st.integers(0, 99).map("{:02d}".format)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(["0000", "0001", "1900", "2000", "2016", "2024", "2025", "2100", "9999"]), TWO, TWO, TWO, TWO, TWO,
       st.integers(0, 999))
def test_fast_datetime_equals_reference_on_trakt_form(year, month, day, hour, minute, second, ms):
    "The C-parser shortcut for YYYY-MM-DDTHH:MM:SS.mmmZ accepts exactly what jsonschema's RFC 3339 check accepts."
    value = f"{year}-{month}-{day}T{hour}:{minute}:{second}.{ms:03d}Z"
    assert typed_mod.FAST_FORMATS["date-time"](value) == FormatChecker().conforms(value, "date-time"), value


@pytest.mark.parametrize("value", TRICKY_DATES)
@pytest.mark.parametrize("resource,key", [("movie", "released"), ("tmdb_movie", "release_date"), ("tmdb_tv", "last_air_date")])
def test_fast_path_agrees_on_dates(resource, key, value):
    c = CONTRACTS[resource]
    obj = {"title": "M", "year": 2026, "ids": {"trakt": 2, "slug": "m"}} if resource == "movie" else {"id": 5}
    obj[key] = value
    try:
        c._fast(obj); fast_ok = True
    except contracts_mod.JsonSchemaValueException:
        fast_ok = False
    assert fast_ok == (c.errors(obj) == []), (value, c.errors(obj))
    assert fast_ok == (value in ("2026-03-14", "2024-02-29") or (value == "" and resource != "movie"))
    _assert_typed_not_looser(c, obj)


# ---- check_items over whole pages -----------------------------------------------------------------------

def test_check_items_keeps_order_and_counts_drift_per_item():
    c = CONTRACTS["comment"]
    page = []
    for i in range(1, 51):
        x = dict(COMMENT, id=i)
        if i % 10 == 0: x["likes"] = str(x["likes"])
        if i % 7 == 0: x["user"] = dict(x["user"], karma=i)
        page.append(x)
    r = check_items(c, orjson.loads(orjson.dumps(page)))
    assert [x["id"] for x in r.valid] == [i for i in range(1, 51) if i % 10]
    assert [i for i, _, _ in r.invalid] == [9, 19, 29, 39, 49]
    assert all(e == ["$.likes: '12' is not of type 'integer'"] for _, _, e in r.invalid)
    assert r.drift == {("$.user.karma", "integer"): 7}  # items 7, 14, ..., 49: all of them valid
    assert r.reason().startswith("5 invalid: item 9: $.likes")


def test_check_object_result_shapes():
    r = check_object(CONTRACTS["ratings"], {"rating": 0.0, "votes": 0, "distribution": {str(i): 0 for i in range(1, 11)}})
    assert (r.valid != [], r.invalid, r.drift, r.reason()) == (True, [], {}, "")
    r = check_object(CONTRACTS["ratings"], None)
    assert r.invalid == [(-1, None, ["$: expected a JSON object of ratings, got null"])] and r.valid == []
    assert isinstance(r, CheckResult)


# ---- quarantine text --------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_quarantine_text_always_fits(raw):
    old = contracts_mod.MAX_QUARANTINE_BYTES
    contracts_mod.MAX_QUARANTINE_BYTES = 120
    try:
        text = quarantine_text(raw)
        assert len(text.encode("utf-8")) <= 120
        if len(raw) <= 40:
            assert text == raw.decode("utf-8", errors="replace")
        if len(raw) > 120:
            assert text.endswith(f"[cut: {len(raw)} bytes in total]")
    finally:
        contracts_mod.MAX_QUARANTINE_BYTES = old


def test_quarantine_text_keeps_valid_text_intact():
    body = json.dumps({"comment": "café 映画 😂", "likes": "12"}, ensure_ascii=False).encode()
    assert quarantine_text(body) == body.decode()


# ---- the replay world's payloads satisfy the contracts -------------------------------------------------------

@pytest.mark.slow
def test_replay_world_payloads_are_valid():
    rw = pytest.importorskip("trakt_nb.source.replay_world")
    rl = pytest.importorskip("trakt_nb.source.replay_listings")
    import numpy as np
    w = rw.get_world(rw.WorldSpec(movies=4, shows=3, users=150, comments_per_title=60))
    t = rw.to_epoch("2027-06-01")
    wire = lambda x: orjson.loads(orjson.dumps(x, option=orjson.OPT_SERIALIZE_NUMPY))  # what a client decodes
    r = check_items(CONTRACTS["comment"], wire(rl.comment_objects(w, np.arange(w.n_comments), t)))
    assert r.invalid == [] and r.drift == {} and len(r.valid) == w.n_comments
    raw = orjson.dumps(rl.comment_objects(w, np.arange(w.n_comments), t), option=orjson.OPT_SERIALIZE_NUMPY)
    assert contracts_mod.typed_ok(CONTRACTS["comment"], raw, 0)  # the crawl's pages pass in one typed decode
    for i in range(len(w.titles)):
        kind = w.titles.kind.iloc[i]
        for extended in (False, True):
            r = check_object(CONTRACTS[kind], wire(rl.title_object(w, i, t, extended)))
            assert (r.invalid, r.drift) == ([], {}), (kind, extended)
        r = check_object(CONTRACTS["ratings"], wire(rl.ratings_object(w, i, t)))
        assert (r.invalid, r.drift) == ([], {})


# ---- the benchmark still runs ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_bench_validate_smoke(capsys):
    sys.path.insert(0, str(ROOT))
    from bench import validate
    res = validate.main(["--n", "1500", "--repeat", "1"])
    valid = [r["valid"] for r in res["rows"]]
    assert valid[0] == 1500 and len(set(valid[1:])) == 1 and 1480 < valid[1] < 1500
    assert "(d) + contracts.check_items" in capsys.readouterr().out


# -- promotion ---------------------------------------------------------------

SEGMENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(SEGMENT, min_size=1, max_size=4))
def test_silver_column_is_a_lower_snake_identifier(parts):
    from trakt_nb.land.contracts import as_field_path, silver_column
    path = "$." + ".".join(parts)
    assert as_field_path(path) == path == as_field_path(".".join(parts))
    try: col = silver_column(path)
    except contracts_mod.UserError as e:
        assert "not a valid identifier" in str(e); return
    assert col.isidentifier() and col == col.lower() and "__" not in col and len(col) <= 63


def _drift_con(*rows):
    import duckdb
    from trakt_nb.land.bronze import ensure_bronze
    con = ensure_bronze(duckdb.connect())
    for path, t in rows:
        con.execute("INSERT INTO bronze.schema_drift VALUES ('comment', $1, $2, now(), now(), 3)", [path, t])
    return con


def test_promote_changes_only_the_promoted_property(tmp_path):
    import shutil
    from trakt_nb.land.contracts import promoted_fields
    from trakt_nb.land.promotion import promote
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    con = _drift_con(("$.user.karma", "integer"), ("$.user.karma", "null"))
    path = promote("comment", "$.user.karma", schemas_dir=tmp_path / "schemas", con=con)
    v1, v2 = CONTRACTS["comment"].schema, json.loads(path.read_text())
    Draft202012Validator.check_schema(v2)
    karma = v2["$defs"]["user"]["properties"].pop("karma")
    assert karma["type"] == ["integer", "null"] and karma["x-promoted"] == {"since": 2, "json_path": "$.user.karma", "silver_column": "user_karma"}
    assert {k: v for k, v in v2.items() if k not in ("$id", "x-version")} == {k: v for k, v in v1.items() if k not in ("$id", "x-version")}
    assert "karma" not in v2["$defs"]["user"].get("required", [])
    c2 = load_contracts(tmp_path / "schemas")["comment"]
    assert [f["silver_column"] for f in promoted_fields(c2)] == ["user_karma"]
    assert c2.is_valid(COMMENT) and c2.is_valid({**COMMENT, "user": {**COMMENT["user"], "karma": None}})
    assert not c2.is_valid({**COMMENT, "user": {**COMMENT["user"], "karma": 1.5}})


def _formats_used(node) -> set[str]:
    if isinstance(node, dict): return ({node["format"]} if isinstance(node.get("format"), str) else set()) | set().union(*map(_formats_used, node.values()))
    if isinstance(node, list): return set().union(*map(_formats_used, node))
    return set()


def test_loading_the_contracts_skips_the_iri_grammar_and_keeps_the_formats_the_schemas_use():
    "The IRI checker's grammar (seconds per process) is kept out, and every format our schemas name is still checked."
    used = set().union(*(_formats_used(json.loads(p.read_text())) for p in SCHEMAS_DIR.rglob("v*.json")))
    assert {"date", "date-time"} <= used and not used & {"iri", "iri-reference"}
    code = ("import sys, json, trakt_nb.land.contracts; from jsonschema import FormatChecker; "
            "print(json.dumps([sys.modules.get('rfc3987_syntax') is None, sorted(FormatChecker().checkers)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    skipped, checkers = json.loads(out)
    assert skipped is True
    assert used <= set(checkers) and "iri" not in checkers

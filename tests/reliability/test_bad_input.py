"""Bad input to `trakt-nb run`: each answered with one clear sentence, exit code 2, nothing written — and hostile bodies refused
without exhausting memory."""
import re
import threading
import time

import pytest

from .conftest import D, Site, make_app, record
from trakt_nb.source.replay_serve import serve_in_thread

BAD_INPUT_REASON = ("A user error raised inside a pipeline notebook (unknown title, no key in live mode) reaches `trakt-nb run` as a "
                    "failed step: exit 1, a multi-part 'step 10_ingest failed in cell N (UserError: …)' message, and reports/D/ "
                    "(run.json, 10_ingest.ipynb/.html, index.html) plus the warehouse lock file are written.")


def one_sentence(err: str) -> bool:
    "stderr is one line `trakt-nb: <Sentence ending in a period>` with no traceback."
    lines = [l for l in err.splitlines() if l.strip() and "IPKernelApp" not in l]
    return len(lines) == 1 and lines[0].startswith("trakt-nb: ") and lines[0].rstrip().endswith(".") and "Traceback" not in err


def written(site: Site) -> list[str]:
    "Everything a command left in the site folder besides its settings."
    return sorted(str(p.relative_to(site.root)) for p in site.root.rglob("*") if p.name != "settings.ini")


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path / "site", url="http://127.0.0.1:9")  # nothing listens there: no bad input may get as far as a call


@pytest.mark.parametrize("date", ["2026-13-45", "2026-07-10/../../x", "../../../tmp/escape", "10/07/2026", "-1"])
def test_bad_date_is_one_sentence_and_writes_nothing(site, date):
    p = site.cli("run", "--date", date)
    assert p.returncode == 2 and one_sentence(p.stderr) and "YYYY-MM-DD" in p.stderr, p.stderr
    assert written(site) == []
    assert not list(site.root.parent.glob("escape*")) and not (site.root.parent.parent / "escape").exists()
    record(f"bad date {date!r}", "run --date", "exit 2, one sentence, nothing written", 0, 0)


@pytest.mark.parametrize("text", ["[client\ntimeout_s = 3\n", "[client]\ntimeout_s = soon\n", "[nosuch]\nx = 1\n",
                                  "[client]\nmax_attempts = 3\nmax_attempts = 4\n"])
def test_malformed_settings_is_one_sentence_and_writes_nothing(site, text):
    site.ini.write_text(text)
    p = site.run()
    assert p.returncode == 2 and one_sentence(p.stderr) and "settings.ini" in p.stderr, p.stderr
    assert written(site) == []
    record("malformed settings.ini", repr(text[:24]), "exit 2, one sentence, nothing written", 0, 0)


def test_missing_settings_file_is_one_sentence(site):
    p = site.run(env=site.env(TRAKT_NB_SETTINGS=str(site.root / "nope.ini")))
    assert p.returncode == 2 and one_sentence(p.stderr) and "nope.ini" in p.stderr
    assert written(site) == []


def _live_env(site):
    env = site.env()
    del env["TRAKT_CLIENT_ID"]
    return env


def test_missing_key_in_live_mode_exit_2_nothing_written(site):
    "Stops before any call (nothing listens at the url, nothing is written), in one sentence naming the fix."
    p = site.cli("run", "--source", "trakt", "--date", D.isoformat(), env=_live_env(site), timeout=120)
    assert p.returncode == 2 and one_sentence(p.stderr) and written(site) == [], (p.returncode, p.stderr, written(site))
    assert "export TRAKT_CLIENT_ID" in p.stderr and not site.warehouse.exists(), p.stderr
    record("missing key in live mode", "source = trakt, no TRAKT_CLIENT_ID", f"exit {p.returncode}, names the fix", 0, 0)


FULL = pytest.mark.reliability_full
SLUGS = [pytest.param("../../../../tmp/escape-slug", id="dotdot"), pytest.param("no-such-movie-4242", marks=FULL, id="unknown"),
         pytest.param("..%2F..%2Fescape", marks=FULL, id="encoded"), pytest.param("/etc/passwd", marks=FULL, id="absolute"),
         pytest.param("inception-2010/../../x", marks=FULL, id="inner-dotdot")]


@pytest.mark.parametrize("slug", SLUGS)
def test_unknown_or_hostile_slug_never_becomes_a_path(tmp_path, serve, world, slug):
    srv = serve(make_app(world))
    site = Site(tmp_path / "a" / "b" / "site", url=srv.url, titles={"movies": slug, "trending_top_n": 0})
    before = set(tmp_path.rglob("*"))
    p = site.run(timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "Trakt has no movie" in p.stderr and "fix [titles] movies" in p.stderr, p.stderr
    # the slug went to the API as one quoted path segment and to no file name anywhere
    new = set(tmp_path.rglob("*")) - before
    assert all(p.is_relative_to(site.root) for p in new), new
    assert not any("escape" in str(p) or "passwd" in str(p) for p in new)
    assert {p.relative_to(site.reports).parts[0] for p in site.reports.rglob("*")} <= {D.isoformat(), "index.html"}
    assert not site.warehouse.exists()  # nothing fetched, nothing stored
    record(f"slug {slug!r}", "[titles] movies", f"exit {p.returncode}, one named error, no path outside reports/D", 0, 0)


@FULL
def test_unknown_title_exit_2_nothing_written(tmp_path, serve, world):
    srv = serve(make_app(world))
    site = Site(tmp_path / "site", url=srv.url, titles={"movies": "no-such-movie-4242", "trending_top_n": 0})
    p = site.run(timeout=120)
    assert p.returncode == 2 and one_sentence(p.stderr) and written(site) == [], (p.returncode, p.stderr, written(site))


# -- hostile bodies: refused without exhausting memory ------------------------------------------------------------------------------

_LISTING = re.compile(r"^/movies/[^/]+/comments")


class Hostile:
    "The replay API, except that every movie's first comments page is a hostile body (`huge` streamed, or `nested`)."
    def __init__(self, inner, kind: str, huge_mb: int = 256):
        self.inner, self.kind, self.huge_mb, self.served = inner, kind, huge_mb, 0

    async def __call__(self, scope, receive, send):
        qs = scope.get("query_string", b"").decode()
        if scope["type"] != "http" or not _LISTING.match(scope["path"]) or re.search(r"(^|&)page=([2-9]|\d\d)", qs):
            return await self.inner(scope, receive, send)
        self.served += 1
        h = [(b"content-type", b"application/json; charset=utf-8"), (b"x-pagination-page", b"1"), (b"x-pagination-limit", b"250"),
             (b"x-pagination-page-count", b"1"), (b"x-pagination-item-count", b"1")]
        if self.kind == "nested":
            body = b"[" * 100_000 + b"]" * 100_000
            await send({"type": "http.response.start", "status": 200, "headers": h + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        chunk = b"[" + b'{"id": 1, "comment": "' + b"x" * (1 << 20) + b'"},'  # ~1 MB per chunk, as a JSON array that never ends
        await send({"type": "http.response.start", "status": 200, "headers": h})  # no content-length: the client must count
        for _ in range(self.huge_mb):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"{}]"})


def _hwm_mb(pid: int) -> int | None:
    try: return int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1)) // 1024
    except (OSError, AttributeError): return None


def _ingest_peak_rss(site: Site) -> tuple[int, int, str]:
    "Run `trakt-nb ingest` as a child; its exit code, peak RSS in MB (the child's own VmHWM, polled) and stderr."
    p = site.popen("ingest", "--date", D.isoformat(), "--quiet")
    peak = [0]
    def watch():
        while p.poll() is None:
            v = _hwm_mb(p.pid)
            if v: peak[0] = max(peak[0], v)
            time.sleep(0.02)
    t = threading.Thread(target=watch, daemon=True); t.start()
    out, err = p.communicate(timeout=300)
    t.join(5)
    site.logs += [out, err]
    return p.returncode, peak[0], err


@pytest.fixture(scope="module")
def clean_ingest_rss(world, tmp_path_factory) -> int:
    "Peak RSS in MB of a clean `trakt-nb ingest` of D with a 1 MB cap (the yardstick of both hostile bodies, which only read it)."
    srv = serve_in_thread(make_app(world))
    try:
        code, base_rss, err = _ingest_peak_rss(Site(tmp_path_factory.mktemp("base"), url=srv.url, client={"max_response_mb": 1}))
    finally: srv.stop()
    assert code == 0, err
    return base_rss


@pytest.mark.parametrize("kind", ["huge", "nested"])
def test_hostile_body_is_refused_within_memory(tmp_path, serve, world, clean_ingest_rss, kind):
    base_rss = clean_ingest_rss
    app = Hostile(make_app(world), kind)
    site = Site(tmp_path / "hostile", url=serve(app).url, client={"max_response_mb": 1})
    code, rss, err = _ingest_peak_rss(site)
    assert app.served >= 1
    assert "Traceback" not in err and "RecursionError" not in err, err
    assert rss < base_rss + 64, (rss, base_rss)  # a 256 MB body or 100k-deep nesting costs no more than 64 MB over a clean crawl
    if code == 3:  # the title's page is quarantined, the rest is kept, and the day is loud: incomplete, the pages named
        reasons = {r for (r,) in site.q("SELECT DISTINCT reason FROM bronze.quarantine")}
        assert reasons and site.q("SELECT count(*) FROM bronze.quarantine WHERE strlen(payload) > 1100000") == [(0,)]
        last = err.strip().splitlines()[-1]
        assert last.startswith("trakt-nb: ") and "is incomplete" in last and "run `trakt-nb ingest --date" in last, err
        outcome = f"quarantined ({', '.join(sorted(reasons))}), exit 3 naming the pages and the repair"
    else:
        assert one_sentence(err), err
        outcome = f"refused: exit {code}, {err.strip()[:80]}"
    assert site.secret_leaks() == []
    record(f"{'oversized' if kind == 'huge' else 'deeply nested'} response body",
           "256 MB streamed body, cap 1 MB" if kind == "huge" else "JSON nested 100,000 deep",
           f"{outcome}; peak RSS {rss} MB vs {base_rss} MB clean", 0, 0)

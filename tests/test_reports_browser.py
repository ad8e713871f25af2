"""The published reports in a real browser: headless Chromium opens every page from disk.

Each chart must draw marks, the console must stay free of errors, no request may leave the machine,
no script may run from data (an injected `alert` would open a dialog), and every link between pages
must lead to a page that exists. Screenshots land in reports/screenshots/ for people to look at.
Each page is opened once, in one browser, and the tests read the open pages (none of them changes a page).
The same run's report notebooks, executed under papermill with a key in the environment, are checked here too."""
import json
import shutil
from pathlib import Path
from urllib.parse import urlparse, unquote

import pytest

from test_run import DAY, MARKER
from trakt_nb.ops import vega

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-headless-shell")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic", "--disable-default-apps", "--mute-audio"]
pytestmark = pytest.mark.slow
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is missing: `make test` installs the Debian package")


@pytest.fixture(scope="module")
def reports(clean_run):
    "The reports of the session's one clean run (conftest `clean_run`: `run_day` with a key in the environment); only read here."
    return clean_run.storage.reports_dir


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


def visit(browser, path: Path, shot: Path):
    "Open `path`; return (page, console errors, off-machine requests, dialogs). The lists go on filling while the page is open."
    page = browser.new_page()
    errors, remote, dialogs = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file://", "data:", "about:", "blob:")) else None)
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    charts = page.locator(".trakt-chart")
    for i in range(charts.count()):  # wait until every chart has drawn
        charts.nth(i).locator("svg, canvas").first.wait_for(state="attached", timeout=15000)
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    return page, errors, remote, dialogs


def shot_of(path: Path) -> Path:
    return SHOTS / f"{path.parent.name}-{path.stem}.png"


@pytest.fixture(scope="module")
def opened(reports, browser):
    "Every page of `pages_of` opened once (drawn, its screenshot saved), by path: (page, errors, remote, dialogs). The tests only read them."
    seen = {path: visit(browser, path, shot_of(path)) for path in pages_of(reports) if path.exists()}  # a missing page fails the tests that need it
    yield seen
    for page, *_ in seen.values(): page.close()


def pages_of(reports: Path) -> list[Path]:
    day = reports / DAY.isoformat()
    titles = sorted((day / "titles").glob("*-*.html"))
    return [reports / "index.html", day / "30_quadrants.html", day / "31_half_life.html", day / "10_ingest.html",
            day / "20_model.html", day / "health.html", reports / "latest" / "30_quadrants.html",
            day / "titles" / "index.html", titles[0] if titles else day / "titles" / "no-title-page.html"]


@needs_chromium
def test_every_page_renders_offline(reports, opened):
    for path in pages_of(reports):
        assert path.exists(), path
        page, errors, remote, dialogs = opened[path]
        assert shot_of(path).exists(), path
        assert errors == [], (path.name, errors)
        assert remote == [], (path.name, remote)
        assert dialogs == [], (path.name, dialogs)
        n = page.locator(".trakt-chart").count()
        if path.stem in ("30_quadrants", "31_half_life"):
            assert n >= 3, (path.name, n)
        for i in range(n):  # every chart has marks drawn from data
            marks = page.locator(".trakt-chart").nth(i).locator("svg .mark-symbol path, svg .mark-rect path, svg .mark-line path, "
                                                                  "svg .mark-area path, svg .mark-text text, svg .mark-rule line")
            assert marks.count() > 0, (path.name, i)


@needs_chromium
def test_links_between_pages_work(reports, opened):
    for path in pages_of(reports):
        page = opened[path][0]
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        local = [h for h in hrefs if h.startswith("file://") and "#" not in h]
        assert local, path
        for h in local:
            assert Path(unquote(urlparse(h).path)).exists(), (path.name, h)


@needs_chromium
def test_data_text_cannot_run_as_script(reports, opened):
    "The replay's comments include <script>alert(\"boo\")</script>; wherever text from the API shows, it stays text."
    for path in pages_of(reports):
        page, errors, remote, dialogs = opened[path]
        assert dialogs == []


@needs_chromium
def test_no_page_scrolls_sideways_at_1280(reports, opened):
    for path in pages_of(reports):
        page = opened[path][0]
        width, view = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert view == 1280 and width <= view, (path.name, width)


@needs_chromium
def test_every_chart_offers_its_data_as_csv(reports, opened):
    import csv, io
    from urllib.parse import unquote as unq
    for path in pages_of(reports):
        page = opened[path][0]
        n = page.locator(".trakt-chart").count()
        links = page.eval_on_selector_all(".trakt-csv a", "els => els.map(e => [e.getAttribute('download'), e.getAttribute('href')])")
        if not n: continue
        charts_with_links = len({d.rsplit("-", 1)[0] if d.rsplit("-", 1)[-1][:-4].isdigit() else d for d, _ in links})
        assert len(links) >= n and charts_with_links >= 1, (path.name, n, len(links))
        for name, href in links:
            assert name.endswith(".csv") and href.startswith("data:text/csv"), (path.name, name)
            rows = list(csv.reader(io.StringIO(unq(href.split(",", 1)[1]))))
            assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows), (path.name, name)  # a header and rows


@needs_chromium
def test_tables_read_at_a_glance(reports, opened):
    "No pandas index column, integers as integers, titles by name on the ingest page."
    import re
    for path in pages_of(reports):
        page = opened[path][0]
        index_cells = page.locator("main table tbody th").count()
        cells = page.eval_on_selector_all("main table td", "els => els.map(e => e.textContent.trim())")
        heads = page.eval_on_selector_all("main table th", "els => els.map(e => e.textContent.trim())")
        assert index_cells == 0, (path.name, "index column")
        assert not [c for c in cells if re.fullmatch(r"-?[\d,]+\.0+", c)], (path.name, [c for c in cells if re.fullmatch(r"-?[\d,]+\.0+", c)][:5])
        if path.stem == "10_ingest":
            assert "title" in heads and "title_id_trakt" not in heads, heads


@needs_chromium
def test_every_axis_says_what_it_is(reports, opened):
    "Every axis has a title; a log or compressed scale says so in it."
    for path in pages_of(reports):
        page = opened[path][0]
        untitled = page.evaluate("""() => [...document.querySelectorAll('.trakt-chart svg g.role-axis')].filter(a => a.getAttribute('aria-hidden') !== 'true')  // not the grid
            .filter(a => !(a.querySelector('.role-axis-title text') || {}).textContent)
            .map(a => a.getAttribute('aria-label') || '?')""")
        assert untitled == [], (path.name, untitled[:5])


@needs_chromium
def test_title_page_shows_the_title(reports, opened):
    day = reports / DAY.isoformat()
    pages = sorted((day / "titles").glob("*-*.html"))
    assert len(pages) >= 2
    page, errors, remote, dialogs = opened[pages[0]]  # the first title page is one of `pages_of`
    shutil.copyfile(shot_of(pages[0]), SHOTS / "title-page.png")
    heads = page.eval_on_selector_all("main h2", "els => els.map(e => e.textContent)")
    n = page.locator(".trakt-chart").count()
    assert errors == [] and remote == [] and n >= 1
    assert heads[:2] == ["Comments, replies and ratings over time", "Quadrant week by week"] and "Attention decay" in heads and "Hold-up" in heads


@needs_chromium
def test_marks_naming_a_title_link_to_its_page(reports, opened):
    import re
    day = reports / DAY.isoformat()
    linked = set()
    for path in (day / "30_quadrants.html", day / "31_half_life.html"):
        page = opened[path][0]
        specs = page.evaluate("""() => [...document.querySelectorAll('script[data-for]')]
            .map(j => JSON.stringify(window.traktLinks(JSON.parse(j.textContent))))""")
        with_links = [t for t in specs if '"href":{"field":"_title_page"}' in t]
        assert with_links, path.name
        linked |= {m for t in with_links for m in re.findall(r'"_title_page":"(titles/[^"]+)"', t)}
    assert linked and all((day / href).exists() for href in linked), sorted(h for h in linked if not (day / h).exists())[:3]


@needs_chromium
def test_legend_entries_differ(reports, opened):
    "Every legend's entries have distinct labels and distinct symbols; the decay curves tell comments, fit and band apart."
    for path in pages_of(reports):
        page = opened[path][0]
        legends = page.evaluate("""() => [...document.querySelectorAll('.trakt-chart svg g.role-legend')].map(l =>
            [...l.querySelectorAll('g.role-legend-entry g.role-scope > g')].map(e => {
                const s = e.querySelector('.role-legend-symbol path'), t = e.querySelector('.role-legend-label text');
                return [t ? t.textContent : '', s ? [s.getAttribute('fill'), s.getAttribute('stroke'), s.getAttribute('d')].join('|') : ''];
            }))""")
        for entries in legends:
            labels, symbols = [e[0] for e in entries], [e[1] for e in entries]
            assert len(set(labels)) == len(labels) and len(set(symbols)) == len(symbols), (path.name, entries)
        if path.stem == "31_half_life":
            assert any({"Comments in the week", "Fitted burst + background"} <= {e[0] for e in entries} for entries in legends), legends


@needs_chromium
def test_dots_sit_inside_their_plot(reports, opened):
    "No point is cut by its plot's edge: a dot at 0 % (or 0 on a compressed scale) is drawn whole inside the frame."
    for path in pages_of(reports):
        page = opened[path][0]
        outside = page.evaluate("""() => [...document.querySelectorAll('.trakt-chart svg g.mark-symbol.role-mark')].flatMap(m => {
            const item = m.parentElement && m.parentElement.parentElement;  // the view (a facet cell, a layer) the marks are drawn in
            const bg = item && item.querySelector(':scope > path.background');
            if (!bg) return [];
            const f = bg.getBoundingClientRect();
            return [...m.querySelectorAll('path')].map(p => p.getBoundingClientRect())
                .filter(b => b.width > 0 && (b.left < f.left - 0.5 || b.right > f.right + 0.5 || b.top < f.top - 0.5 || b.bottom > f.bottom + 0.5))
                .map(b => [m.getAttribute('aria-roledescription') || 'mark', Math.round(b.left - f.left), Math.round(b.top - f.top)]);
        })""")
        assert outside == [], (path.name, len(outside), outside[:5])


@needs_chromium
def test_quadrant_scatter_names_its_leading_titles(reports, opened):
    "The broadest eligible titles of each kind are named beside their point in the quadrant scatter."
    path = reports / DAY.isoformat() / "30_quadrants.html"
    page = opened[path][0]
    specs = page.evaluate("() => [...document.querySelectorAll('script[data-for]')].map(j => j.textContent)")
    drawn = set(page.eval_on_selector_all(".trakt-chart svg g.mark-text.role-mark text", "els => els.map(e => e.textContent)"))
    rows = next(r for s in map(json.loads, specs) for r in s.get("datasets", {}).values() if r and {"breadth", "intensity", "placement"} <= set(r[0]))
    eligible = [r for r in rows if r["quadrant"] != "Not eligible"]
    leading = {k: sorted((r for r in eligible if r["title_kind"] == k), key=lambda r: (-r["breadth"], r["title"]))[:3] for k in ("movie", "show")}
    want = {r["title"] for rs in leading.values() for r in rs}
    assert want and want <= drawn, sorted(want - drawn)


def test_report_notebooks_under_papermill(reports):
    "The run executed the report notebooks under papermill with a key in the environment (small_settings exports it as "
    "TRAKT_CLIENT_ID): it is not needed, it does not leak into them, and each opens with the run-facts line and shows its charts offline."
    for name in ("30_quadrants", "31_half_life"):
        text = (reports / DAY.isoformat() / f"{name}.ipynb").read_text()
        nb = json.loads(text)
        assert nb["metadata"]["papermill"]["parameters"]["run_date"] == DAY.isoformat()
        assert MARKER not in text
        assert f"Run {DAY.isoformat()} · freshness: newest comment {DAY.isoformat()}" in text
        html = [o["data"]["text/html"] for c in nb["cells"] for o in c.get("outputs", []) if "application/vnd.vegalite.v5+json" in o.get("data", {})]
        assert len(html) >= 4 and all(vega.remote_fetches("".join(h)) == [] for h in html)

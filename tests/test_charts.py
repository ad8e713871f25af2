"""Every chart builder renders to SVG offline on realistic frames, and text from the API cannot escape a chart's JSON.
(The report notebooks executed under papermill are checked on the real run of tests/test_reports_browser.py.)"""
import asyncio
import datetime as dt
import json
import re

import pytest
import vl_convert as vlc

from trakt_nb.ops import charts, report, vega

DAY = dt.date(2026, 11, 28)
EVIL = "<script>alert(1)</script>"


def _builders(f: dict, day: dt.date) -> dict:
    "Every builder applied to frames shaped like the reports' semantic queries."
    lead = f["half_life"].head(4)
    weekly = charts.weekly_since_onset(f["daily"].merge(lead[["title_kind", "title_id_trakt"]]), lead, day)
    return {"quadrant_scatter": charts.quadrant_scatter(f["quadrant"], f["thresholds"]),
            "quadrant_counts": charts.quadrant_counts(f["counts"]),
            "movers": charts.movers(f["quadrant"]),
            "top_titles": charts.top_titles(f["quadrant"]),
            "half_life_distribution": charts.half_life_distribution(f["half_life"]),
            "decay_curves": charts.decay_curves(weekly, lead),
            "cohort_trend": charts.cohort_trend(f["cohort"]),
            "hold_up_leaderboard": charts.hold_up_leaderboard(f["hold_up"]),
            "rating_polarisation": charts.rating_polarisation(f["rating"])}


def _svg_ok(chart) -> str:
    svg = vlc.vegalite_to_svg(chart.to_dict())
    assert svg.startswith("<svg") and "<path" in svg
    return svg


def _spec_json(html: str) -> str:
    return re.search(r'<script type="application/json" data-for="([^"]+)">(.*?)</script>', html, re.S).group(2)


BUILDERS = ("quadrant_scatter", "quadrant_counts", "movers", "top_titles", "half_life_distribution", "decay_curves", "cohort_trend",
            "hold_up_leaderboard", "rating_polarisation")


@pytest.fixture(scope="module")
def demo_charts() -> dict:
    "Every builder applied once to the demo frames, for the tests that only read the charts."
    built = _builders(charts.demo_frames(), dt.date(2026, 7, 1))
    assert tuple(built) == BUILDERS  # each builder has its own test below
    return built


@pytest.mark.parametrize("name", BUILDERS)
def test_builder_renders_on_demo_frames(name, demo_charts):
    chart = demo_charts[name]
    spec = chart.to_dict()
    assert spec["datasets"] and any(len(v) for v in spec["datasets"].values())
    assert "tooltip" in json.dumps(spec)
    _svg_ok(chart)


def test_title_text_appears_in_svg_as_text_not_markup():
    q = charts.demo_frames()["quadrant"]
    q.loc[q.index[1], "title"] = EVIL
    chart = charts.top_titles(q, n=20)
    svg = _svg_ok(chart)
    assert "<script" not in svg and "&lt;script&gt;alert(1)" in svg  # Vega draws it as text, escaped


def test_hostile_title_stays_inside_the_json_element():
    f = charts.demo_frames()
    for frame in ("quadrant", "hold_up", "rating", "half_life"):
        f[frame].loc[f[frame].index[3], "title"] = EVIL
    for name, chart in _builders(f, dt.date(2026, 7, 1)).items():
        html = vega.chart_html(chart)
        assert html.count("</script>") == 2 and html.lower().count("<script") == 2, name  # only the two elements the embed needs
        body = _spec_json(html)
        assert "<" not in body and ">" not in body and "&" not in body, name
        if name not in ("cohort_trend", "quadrant_counts"):  # frames without titles
            assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in body, name
            assert EVIL in json.dumps(json.loads(body)), name  # JSON.parse gives the title back unchanged
        assert vega.remote_fetches(html) == [], name


def test_show_displays_both_forms(capsys):
    bundle = vega.mimebundle(charts.rating_polarisation(charts.demo_frames()["rating"]))
    assert set(bundle) == {"application/vnd.vegalite.v5+json", "text/html"}
    assert bundle["application/vnd.vegalite.v5+json"]["mark"]["type"] == "circle"
    assert 'class="trakt-chart"' in bundle["text/html"] and "vegaEmbed(" in bundle["text/html"]


def test_bundle_defines_vega_embed_and_fetches_nothing():
    script = vega.vega_bundle_script()
    assert script.startswith("<script>") and script.endswith("</script>") and script.count("</script") == 1
    assert "window.vegaEmbed=" in script and vega.remote_fetches(script) == []


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from trakt_nb.config import load_settings
    from trakt_nb.land.ingest import ingest_async
    from trakt_nb.model.build import build_model
    from trakt_nb.land.bronze import connect
    s = load_settings(None).replace(storage={"warehouse": str(tmp_path_factory.mktemp("charts") / "w.duckdb")})
    asyncio.run(ingest_async(s, DAY, progress=False))
    build_model(s, DAY)
    con = connect(s, read_only=True)
    yield con
    con.close()


@pytest.mark.slow
def test_every_builder_renders_on_warehouse_frames(warehouse):
    from trakt_nb.model.semantic import query
    q = lambda m, by, **kw: query(warehouse, m, by=by, as_of=kw.pop("as_of", DAY), **kw).to_pandas()
    title = ["title_kind", "title_id_trakt", "title", "year"]
    f = {"quadrant": q(["breadth", "intensity"], title + ["quadrant", "prev_quadrant", "eligible"]),
         "thresholds": q(["breadth", "intensity"], ["title_kind"], where={"eligible": True}),
         "counts": q(["quadrant_titles", "quadrant_movers"], ["title_kind", "quadrant"]),
         **charts.half_life_frames(warehouse, DAY),
         "daily": q(["top_level_comments"], ["title_kind", "title_id_trakt", "day"]),
         "rating": q(["share_9_10", "share_1_3", "latest_rating", "votes"], title)}
    assert all(len(v) for v in f.values())
    for name, chart in _builders(f, DAY).items():
        _svg_ok(chart)
        assert vega.remote_fetches(vega.chart_html(chart)) == [], name
    facts = report.run_facts(warehouse, DAY)
    assert facts["titles"] > 0 and 0 < facts["completeness_min"] <= facts["completeness_median"] <= 1
    assert facts["newest_comment"].date() == DAY and 0 <= facts["lag_hours"] < 24


@pytest.mark.slow
def test_report_setup_opens_the_built_day(warehouse, capsys):
    "A report's start on a built warehouse: no rebuild, the run-facts line, a read-only connection to the day."
    import duckdb
    wh = warehouse.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0]
    s, day, con = asyncio.run(report.report_setup(DAY.isoformat(), warehouse=wh))
    try:
        assert day == DAY and str(s.storage.warehouse) == wh
        assert capsys.readouterr().out == report.run_facts_line(report.run_facts(con, DAY)) + "\n"  # nothing was ingested or modelled
        assert con.execute("SELECT count(*) FROM gold.mart_title_quadrant WHERE as_of_date = ?", [DAY]).fetchone()[0] > 0
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE gold.x (a INT)")
    finally:
        con.close()


def _scaled_axes(node, found):
    "Every (field, title, scale type) of an x/y encoding with a scale type, anywhere in a spec."
    if isinstance(node, dict):
        for ch in ("x", "y"):
            e = node.get("encoding", {}).get(ch) if isinstance(node.get("encoding"), dict) else None
            if isinstance(e, dict) and isinstance(e.get("scale"), dict) and e["scale"].get("type"):
                found.append((e.get("field"), e.get("title"), e["scale"]["type"]))
        for v in node.values(): _scaled_axes(v, found)
    elif isinstance(node, list):
        for v in node: _scaled_axes(v, found)
    return found


def test_a_log_or_compressed_axis_says_so(demo_charts):
    "An axis on a log or symlog scale names it in its title (a reader takes a straight axis for granted)."
    axes = [a for chart in demo_charts.values() for a in _scaled_axes(chart.to_dict(), [])
            if a[2] in ("log", "symlog") and a[1]]
    assert len(axes) >= 4, axes
    assert all(("log scale" if t == "log" else "compressed scale") in title for _, title, t in axes), axes

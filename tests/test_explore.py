"""explore.ipynb reads the warehouse the daily run writes (a snapshot, so a run can go on), and builds a small demo
only when there is none — saying so."""
import os
from pathlib import Path

import papermill as pm
import pytest

NB = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"


def _run(tmp_path: Path, warehouse: Path, name: str) -> str:
    out = tmp_path / name
    env = {**os.environ, "TRAKT_NB_STORAGE_WAREHOUSE": str(warehouse)}
    old = dict(os.environ)
    os.environ.update(env)
    try: pm.execute_notebook(str(NB), str(out), cwd=str(NB.parent), progress_bar=False, kernel_name="python3")
    finally:
        os.environ.clear(); os.environ.update(old)
    import nbformat
    cells = nbformat.read(str(out), as_version=4).cells
    return "\n".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
def test_explore_builds_a_demo_only_without_a_warehouse_and_then_reads_the_warehouse(tmp_path):
    daily = tmp_path / "data" / "warehouse.duckdb"
    first = _run(tmp_path, daily, "first.ipynb")
    demo = daily.with_name("explore-demo.duckdb")
    assert f"There is no warehouse at {daily} yet" in first and "its numbers are not the reports'" in first
    assert demo.exists() and not daily.exists()
    # pointed at a built warehouse (here the demo file stands in for the daily run's): no demo, that file is read
    second = _run(tmp_path, demo, "second.ipynb")
    assert "There is no warehouse" not in second and f"{demo} as of " in second


@pytest.mark.slow
@pytest.mark.server
def test_make_lab_opens_the_project_root_with_explore_first_and_no_news(tmp_path):
    "The exact command `make lab` runs (read with `make -n`), on a free port: the root shows notebooks/, reports/ and data/,"
    " `/` leads to explore.ipynb, and the news feed is off."
    import json, re, shlex, socket, subprocess, time, urllib.request
    root = NB.parent.parent
    recipe = subprocess.run(["make", "-n", "lab"], cwd=root, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    cmd = [l for l in recipe.splitlines() if "jupyter lab" in l][-1]
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0)); port = sk.getsockname()[1]
    token = "labtest"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.Popen(shlex.split(cmd) + ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                            f"--IdentityProvider.token={token}"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    def get(path):
        with urllib.request.urlopen(f"{base}{path}{'&' if '?' in path else '?'}token={token}", timeout=10) as r: return r.geturl(), r.read().decode()
    try:
        for _ in range(120):
            try: get("/api/status"); break
            except OSError: time.sleep(0.5)
        else: raise AssertionError(f"jupyter lab did not start: {proc.stderr.read1().decode()[-2000:] if proc.poll() is not None else ''}")
        names = {c["name"] for c in json.loads(get("/api/contents/")[1])["content"]}
        assert {"notebooks", "reports", "data"} <= names, names
        url, html = get("/")
        assert url.split("?")[0].endswith("/lab/tree/notebooks/explore.ipynb"), url
        page_config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S).group(1))
        assert not page_config.get("newsUrl"), page_config.get("newsUrl")
    finally:
        proc.terminate(); proc.wait(timeout=20)

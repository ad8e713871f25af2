"""The package as a user gets it: the wheel built from this checkout, installed into a fresh virtualenv outside it,
runs the daily job from a folder that holds only a settings.ini — the contracts, metrics, data tests and pipeline
notebooks all come from inside the installed package (trakt_nb.config.resource)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-07-10"
SMALL = """[replay]
seed = 5
movies = 4
shows = 3
users = 300
comments_per_title = 300
[titles]
trending_top_n = 3
"""  # the small world of tests/test_run.py


def uv() -> str:
    "uv, which `make` installs into the project's environment next to its python."
    for c in (Path(sys.executable).parent / "uv", shutil.which("uv")):
        if c and Path(c).is_file(): return str(c)
    pytest.skip("uv is not installed: `make run` or `make test` installs it into .venv")


def outside_env(venv: Path) -> dict:
    "This process's environment minus what would reach the checkout or steer the run: PYTHONPATH, the active venv, TRAKT_NB_* and secrets."
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "TRAKT_CLIENT_ID", "TMDB_API_TOKEN", "TRAKT_ACCESS_TOKEN",
            "PYTHONDONTWRITEBYTECODE"}  # the fresh venv has no bytecode: the run's first process writes it for the others (95 s, not 140 s)
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("TRAKT_NB_")}
    here = str(Path(sys.executable).parent)  # the checkout's environment off the PATH too
    env["PATH"] = os.pathsep.join([str(venv / "bin")] + [p for p in env.get("PATH", "").split(os.pathsep) if p and p != here])
    return env


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(900)
def test_installed_wheel_runs_the_day(tmp_path):
    uv_bin = uv()
    sh = lambda *a, **kw: subprocess.run([str(x) for x in a], capture_output=True, text=True, **kw)
    # build: the sdist, then the wheel from the sdist (what `uv build` and PyPI users get; unlike `--wheel`, nothing but
    # the git-ignored trakt_nb.egg-info is written into the checkout)
    r = sh(uv_bin, "build", "--quiet", "--out-dir", tmp_path / "dist", ROOT)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp_path / "dist").glob("trakt_nb-*.whl"))
    # a fresh virtualenv outside the checkout, with the versions this environment was tested with (uv's cache has them)
    venv = tmp_path / "venv"
    assert sh(uv_bin, "venv", "--quiet", "--python", sys.executable, venv).returncode == 0
    pins = sh(uv_bin, "pip", "freeze", "--exclude-editable", "--python", sys.executable)
    (tmp_path / "pins.txt").write_text("\n".join(l for l in pins.stdout.splitlines() if not l.lower().startswith(("trakt-nb", "trakt_nb"))))
    r = sh(uv_bin, "pip", "install", "--quiet", "--python", venv / "bin" / "python", "--constraint", tmp_path / "pins.txt", wheel)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "work"; work.mkdir()
    (work / "settings.ini").write_text(SMALL)
    env = outside_env(venv)
    # the checkout is not importable there: trakt_nb is the installed one, and knows no checkout
    r = sh(venv / "bin" / "python", "-c", "import trakt_nb.config as c; print(c.__file__); print(c.checkout_root()); print(c.resource('pipeline'))",
           cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    module, checkout, pipeline = r.stdout.split()
    package = Path(module).parent
    assert package.is_relative_to(venv) and checkout == "None" and Path(pipeline) == package / "pipeline"
    assert sorted(p.name for p in (package / "schemas" / "semantic").iterdir()) == ["metrics.yml"]
    r = sh(venv / "bin" / "trakt-nb", "run", "--date", DAY, cwd=work, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    # written where settings.ini says (its defaults, relative to it), not into the installed package
    out = work / "reports" / "replay" / DAY
    for name in ("10_ingest.html", "20_model.html", "30_quadrants.html", "31_half_life.html", "health.html", "manifest.json"):
        assert (out / name).is_file(), name
    assert f"{DAY}/30_quadrants.html" in (work / "reports" / "replay" / "index.html").read_text()
    con = duckdb.connect(str(work / "data" / "replay" / "warehouse.duckdb"), read_only=True)
    try:
        followed = con.execute("SELECT DISTINCT title_kind, title_id_trakt FROM bronze.trakt_pages WHERE title_id_trakt IS NOT NULL ORDER BY ALL").fetchall()
        placed = con.execute("SELECT title_kind, title_id_trakt FROM gold.mart_title_quadrant WHERE as_of_date = ? ORDER BY ALL", [DAY]).fetchall()
        unchecked, = con.execute("SELECT count(*) FROM bronze.trakt_pages WHERE schema_version IS NULL").fetchone()
        quarantined, = con.execute("SELECT count(*) FROM bronze.quarantine").fetchone()
    finally:
        con.close()
    assert len(followed) == 6 and placed == followed  # 3 movies and 3 shows from trending, each placed in the quadrant
    assert unchecked == 0 and quarantined == 0  # every page validated against the contracts the package carries
    assert sorted(p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__") == ["land", "model", "ops", "pipeline", "schemas", "source", "templates"]  # what the wheel carries (the four layers and the data), nothing written there

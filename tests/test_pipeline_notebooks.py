"""The pipeline notebooks run under papermill with parameters, and carry no secret."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "notebooks" / "pipeline"


def _text(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    out = []
    for c in nb["cells"]:
        out.append("".join(c.get("source", "")))
        for o in c.get("outputs", []):
            out.append("".join(o.get("text", "")))
            for v in (o.get("data") or {}).values():
                out.append(v if isinstance(v, str) else "".join(v) if isinstance(v, list) else json.dumps(v))
    return "\n".join(out) + json.dumps(nb.get("metadata", {}))


def test_parameters_cell_is_tagged():
    nb = json.loads((PIPELINE / "10_ingest.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "run_date" in "".join(tagged[0]["source"])


@pytest.mark.slow
def test_ingest_notebook_under_papermill(tmp_path, monkeypatch):
    import papermill as pm
    monkeypatch.setenv("TRAKT_CLIENT_ID", "marker-secret-7f3a9c")  # the replay must not need it, and it must not leak
    monkeypatch.setenv("TRAKT_NB_REPLAY_MOVIES", "4")
    monkeypatch.setenv("TRAKT_NB_REPLAY_SHOWS", "2")
    monkeypatch.setenv("TRAKT_NB_TITLES_TRENDING_TOP_N", "3")
    out = tmp_path / "10_ingest.out.ipynb"
    wh = tmp_path / "w.duckdb"
    pm.execute_notebook(str(PIPELINE / "10_ingest.ipynb"), str(out), cwd=str(PIPELINE), progress_bar=False,
                        parameters={"run_date": "2026-10-15", "warehouse": str(wh)})
    text = _text(out)
    assert "ingest 2026-10-15: succeeded" in text
    assert "marker-secret-7f3a9c" not in text
    assert wh.exists()
    # a second execution of the same date makes no API call
    pm.execute_notebook(str(PIPELINE / "10_ingest.ipynb"), str(out), cwd=str(PIPELINE), progress_bar=False,
                        parameters={"run_date": "2026-10-15", "warehouse": str(wh)})
    assert "already done" in _text(out)

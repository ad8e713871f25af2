"""The pipeline notebooks declare their parameters. (They are executed under papermill, with
parameters and a key in the environment that must not leak, by tests/test_run.py: once per behaviour, not again here.)"""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "notebooks" / "pipeline"


@pytest.mark.parametrize("name", sorted(p.name for p in PIPELINE.glob("*.ipynb")))
def test_parameters_cell_is_tagged(name):
    "papermill puts the run's parameters after the one cell tagged `parameters`; each pipeline notebook has it, with run_date."
    nb = json.loads((PIPELINE / name).read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "run_date" in "".join(tagged[0]["source"])

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

"""The cycle count of tests/check_imports.py (what `make check-imports` prints) on small packages: a two-module and a
three-module cycle, one of them through an import inside a function, are two cycles; one-way imports are none."""
import textwrap

from check_imports import cycles, describe


def _package(root, name, modules: dict[str, str]):
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for mod, body in modules.items(): (pkg / f"{mod}.py").write_text(textwrap.dedent(body))


def test_counts_each_group_of_modules_that_import_one_another(tmp_path, monkeypatch):
    _package(tmp_path, "cyc_pkg", {
        "a": "from . import b\n",
        "b": "def f():\n    from cyc_pkg import a  # late: still a cycle\n",
        "c": "from .d import x\n",
        "d": "from . import e\nx = 1\n",
        "e": "import cyc_pkg.c\n",
        "f": "from . import a, c\n",  # imports into both cycles, imported by neither
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles("cyc_pkg") == [["cyc_pkg.a", "cyc_pkg.b"], ["cyc_pkg.c", "cyc_pkg.d", "cyc_pkg.e"]]
    n, report = describe("cyc_pkg")
    assert n == 2 and report.splitlines()[0] == "import cycles in cyc_pkg: 2"
    assert "    cyc_pkg.b:2 imports cyc_pkg.a: from cyc_pkg import a  # late: still a cycle" in report


def test_one_way_imports_are_no_cycle(tmp_path, monkeypatch):
    _package(tmp_path, "flow_pkg", {"low": "X = 1\n", "mid": "from .low import X\n", "top": "from . import low, mid\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles("flow_pkg") == []
    assert describe("flow_pkg") == (0, "import cycles in flow_pkg: 0")


def test_notebooks_read_in_order():
    "Each module of the library imports only modules whose notebooks come before its own (by file name), so the notebooks read as a book."
    import re
    from pathlib import Path
    import grimp
    root = Path(__file__).resolve().parents[1]
    notebook = {}  # module -> the notebook it is exported from (named in the header nbdev writes)
    for py in (root / "trakt_nb").rglob("*.py"):
        m = re.search(r"File to edit: \S*notebooks/([^/\s]+)\.ipynb", py.read_text())
        if m: notebook[".".join(py.relative_to(root).with_suffix("").parts)] = m.group(1)
    assert len(notebook) > 50
    g = grimp.build_graph("trakt_nb", cache_dir=None)
    backwards = sorted((notebook[m], m, notebook[i], i) for m in notebook for i in g.find_modules_directly_imported_by(m)
                       if i in notebook and notebook[i] > notebook[m])
    assert backwards == [], "\n".join(f"{a} ({m}) imports {i} from the later {b}" for a, m, b, i in backwards)

"""Committed notebooks carry no outputs or execution counts.

`python tests/check_clean.py notebooks` fails listing the notebooks that do;
`--fix` strips them (what `make export` runs after nbdev-clean, which keeps cell tags
such as papermill's `parameters` but, with clear_all off, not outputs)."""
import json, sys
from pathlib import Path

def notebooks(root: Path):
    return [p for p in sorted(root.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]

def is_dirty(nb: dict) -> bool:
    return any(c.get("outputs") or c.get("execution_count") for c in nb.get("cells", []) if c.get("cell_type") == "code")

def strip(p: Path) -> bool:
    "Remove outputs and execution counts from `p`; True if it changed."
    nb = json.loads(p.read_text(encoding="utf-8"))
    if not is_dirty(nb): return False
    for c in nb["cells"]:
        if c.get("cell_type") == "code": c["outputs"], c["execution_count"] = [], None
    p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = Path(args[0] if args else "notebooks")
    if "--fix" in sys.argv:
        fixed = [str(p) for p in notebooks(root) if strip(p)]
        print(f"stripped outputs from {len(fixed)} notebook(s)", *fixed, sep="\n  " if fixed else "")
        sys.exit(0)
    bad = [str(p) for p in notebooks(root) if is_dirty(json.loads(p.read_text(encoding="utf-8")))]
    if bad:
        print("notebooks with outputs (run `make export`):", *bad, sep="\n  ")
        sys.exit(1)
    print("notebooks are clean")

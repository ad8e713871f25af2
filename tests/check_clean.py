"""Fail when a committed notebook carries outputs or execution counts (run `make export`)."""
import json, sys
from pathlib import Path

def dirty_notebooks(root: Path) -> list[str]:
    bad = []
    for p in sorted(root.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in p.parts: continue
        cells = json.loads(p.read_text(encoding="utf-8")).get("cells", [])
        if any(c.get("outputs") or c.get("execution_count") for c in cells if c.get("cell_type") == "code"):
            bad.append(str(p))
    return bad

if __name__ == "__main__":
    bad = dirty_notebooks(Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks"))
    if bad:
        print("notebooks with outputs (run `make export`, which runs nbdev-clean):", *bad, sep="\n  ")
        sys.exit(1)
    print("notebooks are clean")

"""The library's modules import one another without cycles.

`python tests/check_imports.py` prints how many groups of `trakt_nb` modules import one another — directly or through
other modules, imports inside functions included (grimp's graph, the one `lint-imports` checks) — names the imports
of each, and fails unless there are none. `make check-imports` runs it after `lint-imports` (the contracts in
.importlinter), which keeps the layers one way and refuses a cycle; this prints the figure."""
import sys

import grimp


def cycles(package: str = "trakt_nb") -> list[list[str]]:
    "The groups of two or more modules of `package` that import one another, directly or not (sorted)."
    g = grimp.build_graph(package, cache_dir=None)
    mods = sorted(m for m in g.modules if m.startswith(package + "."))
    deps = {m: g.find_upstream_modules(m) for m in mods}  # what each module imports, directly or not
    groups = {tuple(sorted({m} | {n for n in deps[m] if m in deps.get(n, ())})) for m in mods}
    return sorted(list(grp) for grp in groups if len(grp) > 1)


def describe(package: str = "trakt_nb") -> tuple[int, str]:
    "The number of cycles, and a report naming each group's direct imports (file and line)."
    found = cycles(package)
    g = grimp.build_graph(package, cache_dir=None) if found else None
    lines = [f"import cycles in {package}: {len(found)}"]
    for grp in found:
        lines.append("  " + " <-> ".join(grp))
        for a in grp:
            for b in grp:
                for d in (g.get_import_details(importer=a, imported=b) if a != b else []):
                    lines.append(f"    {a}:{d['line_number']} imports {b}: {d['line_contents']}")
    return len(found), "\n".join(lines)


if __name__ == "__main__":
    n, report = describe(sys.argv[1] if len(sys.argv) > 1 else "trakt_nb")
    print(report)
    sys.exit(1 if n else 0)

"""Do the gold estimators recover the replay world's truth? The validation table of issue 15, over many worlds.

Each world is a default-size replay world (`WorldSpec()`, 50 titles) with its own seed, read as of its last day. The
real gold functions run on silver-like tables built from the world in memory (`trakt_nb.model.sense`: no HTTP crawl; the
pipeline copies the world exactly, tests/test_model.py). Figures are pooled over eligible titles (at least 200 top-level
comments after release) of every world of a kind:

  exponential   worlds with exponential bursts and no trend (also the "no trend" worlds of the cohort check)
  <shape>       biexponential, stretched and power-law bursts (misspecified for the fit)
  trend         exponential bursts whose half-life halves every year of release

Tables are functions in TABLES (name -> function(args) returning rows of (kind, measure, target, value, worlds,
eligible)): `decay` (the half-life, background, long tail and cohort trend) and `intensity` (split-half reliability of
the shrunken intensity and the quadrant side it gives against the generated `reaction_rate`).

Run from the project root:  .venv/bin/python -m bench.sense [--seeds 20] [--shape-seeds 6] [--trend-seeds 10] [--intensity-seeds 5] [--first-seed 1000] [--tables decay,intensity]
"""
from __future__ import annotations

import argparse
import platform
import time

from trakt_nb.source.replay_world import DECAY_SHAPES
from trakt_nb.model.sense import TARGETS, decay_figures, sense_worlds

MEASURES = [  # (figure, label, kind of worlds, target as text)
    ("within_20", "burst half-life within 20% of truth (eligible titles; not ok = miss)", "exponential", "≥ 0.80"),
    ("within_20_of_ok", "burst half-life within 20% of truth (ok fits)", "exponential", "≥ 0.80"),
    ("ok", "share of eligible titles with an ok fit", "exponential", "—"),
    ("rank_corr", "rank correlation with truth (ok fits)", "exponential", "≥ 0.90"),
    ("coverage", "90% intervals of the half-life holding the truth", "exponential", "0.85–0.95"),
    ("background_coverage", "90% intervals of the background holding the truth", "exponential", "0.85–0.95"),
    ("long_tail_precision", "long-tail precision vs generated flag (where known)", "exponential", "≥ 0.90"),
    ("long_tail_recall", "long-tail recall vs generated flag (where known)", "exponential", "≥ 0.90"),
    ("long_tail_known", "share of eligible titles whose long tail is known", "exponential", "—"),
    ("trend_reported", "cohort trend reported on worlds without one", "exponential", "≤ 0.05"),
    ("trend_faster", "injected 2× (per year) cohort trend detected", "trend", "≥ 0.80"),
]


def decay_table(a) -> list[tuple]:
    "Rows (kind, measure, target, value, worlds, eligible) of the decay validation."
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    runs = {"exponential": sense_worlds(seeds),
            "trend": sense_worlds(list(range(a.first_seed + 500, a.first_seed + 500 + a.trend_seeds)), trends=(2.0,))}
    for shape in DECAY_SHAPES[1:]:
        runs[shape] = sense_worlds(list(range(a.first_seed + 1000, a.first_seed + 1000 + a.shape_seeds)), shapes=(shape,))
    figs = {k: decay_figures(v) for k, v in runs.items()}
    rows = [(kind, label, target, figs[kind][fig], figs[kind]["worlds"], figs[kind]["eligible"]) for fig, label, kind, target in MEASURES]
    for shape in DECAY_SHAPES[1:]:
        f = figs[shape]
        rows.append((shape, "within 35% of truth or not reported (poor_fit etc.)", "≥ 0.80", f["within_35_or_flagged"], f["worlds"], f["eligible"]))
        rows.append((shape, "share flagged poor_fit", "—", f["poor_fit"], f["worlds"], f["eligible"]))
    return rows


def intensity_rows(a) -> list[tuple]:
    "Rows (kind, measure, target, value, worlds, eligible) of the intensity validation (`trakt_nb.model.intensity_sense`): default-size worlds from seed `first_seed + 2000`, each read at six as-of dates."
    from trakt_nb.model.intensity_sense import DATES, intensity_table
    seeds = tuple(range(a.first_seed + 2000, a.first_seed + 2000 + a.intensity_seeds))
    t = intensity_table(seeds=seeds).set_index("measure")
    eligible = int(t.value["eligible_titles"])
    return [("quadrant", f"{m.replace('_', ' ')} ({len(DATES)} dates a world)", "—" if r.target is None or r.target != r.target else f"≥ {r.target:.2f}",
             float(r.value), len(seeds), eligible) for m, r in t.iterrows() if m not in ("eligible_titles", "agreement_titles")]


TABLES = {"decay": decay_table, "intensity": intensity_rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20, help="exponential worlds (also the no-trend worlds)")
    p.add_argument("--shape-seeds", type=int, default=6, help="worlds of each misspecified shape")
    p.add_argument("--trend-seeds", type=int, default=10, help="worlds with an injected trend")
    p.add_argument("--intensity-seeds", type=int, default=5, help="worlds of the intensity table")
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--tables", default=",".join(TABLES), help=f"which tables ({', '.join(TABLES)})")
    a = p.parse_args(argv)
    print(f"Python {platform.python_version()}; seeds from {a.first_seed}")
    for name in a.tables.split(","):
        t0 = time.monotonic()
        rows = TABLES[name](a)
        print(f"\n{name} ({time.monotonic() - t0:.0f} s)\n")
        print(f"| {'worlds':<13} | {'measure':<72} | {'target':<9} | {'value':>6} | {'n worlds':>8} | {'eligible':>8} |")
        print(f"|{'-' * 15}|{'-' * 74}|{'-' * 11}|{'-' * 8}|{'-' * 10}|{'-' * 10}|")
        for kind, label, target, value, worlds, eligible in rows:
            print(f"| {kind:<13} | {label:<72} | {target:<9} | {value:6.3f} | {worlds:>8} | {eligible:>8} |")


if __name__ == "__main__":
    main()

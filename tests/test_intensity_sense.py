"""Intensity against the replay world's generated reaction rates (the CI version of notebooks/27b_intensity_sense).

The worlds and dates here are not the ones of the benchmark table (`intensity_table`). None of the checks can pass by
luck: halves of pure noise would correlate about 0, a coin agrees with the generated side about half the time
(asserted: an exact binomial test, p < 0.01). The side-agreement target (0.85) needs more titles than a CI run has to be asserted
without failing by chance about a third of the time (about 22 titles here: one disagreement moves it by 0.045);
it is asserted on the certain placements (the ones the report shows as sure) and on the benchmark table; over all
titles CI asserts 0.75 and better than a coin (one-sided binomial test, p < 0.01)."""
import datetime as dt

import pandas as pd
import pytest
from scipy.stats import binomtest

from trakt_nb.model.intensity_sense import TARGETS, intensity_figures, intensity_sample
from trakt_nb.source.replay_world import WorldSpec

SEEDS = (101, 102, 103, 104, 105)
DATES = (dt.date(2025, 3, 31), dt.date(2026, 3, 31))


@pytest.mark.slow
def test_intensity_meets_its_targets():
    f = intensity_figures(pd.concat([intensity_sample(WorldSpec(seed=s), d) for s in SEEDS for d in DATES], ignore_index=True))
    print({k: round(v, 3) for k, v in f.items()})
    n = f["agreement_titles"]
    assert n >= 12 and f["eligible_titles"] >= 20, f"only {n} titles in the agreement: too few to tell the estimator from a coin"
    assert f["split_half_reliability"] >= TARGETS["split_half_reliability"]
    assert f["rank_correlation_with_truth"] >= 0.8
    agree = round(f["intensity_side_agreement"] * n)
    assert f["intensity_side_agreement"] >= 0.75 and binomtest(agree, n, 0.5, alternative="greater").pvalue < 0.01  # not a coin
    assert f["certain_side_agreement"] >= TARGETS["intensity_side_agreement"] and f["certain_share"] * n >= 5

"""Intensity against the replay world's generated reaction rates (the CI version of notebooks/27b_intensity_sense).

Worlds and dates here are not the ones the benchmark table uses. The margins cannot be met by luck: over the
eligible titles a coin would agree with the generated side about half the time (standard error about 0.5/sqrt(n)),
and halves of pure noise would correlate about 0."""
import datetime as dt

import pytest

from trakt_nb.intensity_sense import TARGETS, intensity_figures, intensity_sample
from trakt_nb.replay_world import WorldSpec

SEEDS = (101, 102, 103, 104, 105)
DATES = (dt.date(2025, 3, 31), dt.date(2026, 3, 31))


@pytest.mark.slow
def test_intensity_meets_its_targets():
    import pandas as pd
    f = intensity_figures(pd.concat([intensity_sample(WorldSpec(seed=s), d) for s in SEEDS for d in DATES], ignore_index=True))
    print({k: round(v, 3) for k, v in f.items()})
    n = f["agreement_titles"]
    assert n >= 12 and f["eligible_titles"] >= 20, f"only {n} titles in the agreement: too few to tell the estimator from a coin"
    assert f["intensity_side_agreement"] >= TARGETS["intensity_side_agreement"]
    assert f["intensity_side_agreement"] - 0.5 >= 3 * 0.5 / n ** 0.5           # three standard errors above a coin
    assert f["split_half_reliability"] >= TARGETS["split_half_reliability"]
    assert f["rank_correlation_with_truth"] >= 0.6

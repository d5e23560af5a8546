"""Interval statistics shared by every stage that reports a rate: frame selection's hit rates, evaluation's
accuracies.

    rate, lo, hi = grouped_bootstrap(correct, videos)     # 95 % percentile interval, resampling whole videos

Questions about one clip are correlated (same scene, same frames), so an interval resamples the clip
(or the multi-camera scene), not the question; treating them as independent makes intervals too narrow.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def grouped_bootstrap(success: Sequence, units: Sequence, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> tuple[float, float, float]:
    """The success rate and its percentile bootstrap interval, resampling whole ``units`` (one per success).

    Each replicate draws as many units as there are, with replacement, and takes all their successes
    and trials. Units are compared as text and ordered, so a fixed ``seed`` gives the same interval every
    time, whatever the input order of the units. Empty input gives NaNs.
    """
    s = np.asarray(success, dtype=float)
    if not len(s):
        return float("nan"), float("nan"), float("nan")
    _, inv = np.unique(np.asarray([str(u) for u in units]), return_inverse=True)
    c, n = np.bincount(inv, weights=s), np.bincount(inv).astype(float)
    idx = np.random.default_rng(seed).integers(0, len(c), size=(n_boot, len(c)))
    boot = c[idx].sum(axis=1) / n[idx].sum(axis=1)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(c.sum() / n.sum()), float(lo), float(hi)

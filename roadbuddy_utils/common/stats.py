"""Interval statistics shared by every stage that reports a rate: frame selection's hit rates, evaluation's
accuracies.

    rate, lo, hi = grouped_bootstrap(correct, videos)     # 95 % percentile interval, resampling whole videos
    val, lo, hi = grouped_bootstrap_stat(scenes, lambda idx: figures(idx))   # any statistic(s), e.g. corpus scores

Questions about one clip are correlated (same scene, same frames), so an interval resamples the clip
(or the multi-camera scene), not the question; treating them as independent makes intervals too narrow.
"""
from __future__ import annotations

import warnings
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


def grouped_bootstrap_stat(units: Sequence, statistic, n_boot: int = 2000, seed: int = 0,
                           alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Any statistic of the items and its percentile bootstrap interval, resampling whole ``units``.

        value, lo, hi = grouped_bootstrap_stat(scenes, lambda idx: scores[idx].mean())

    ``statistic(idx)`` gets an index array into the items (one entry per item of every drawn unit, an
    item repeated as often as its unit is drawn) and returns a number or a 1-D array of numbers (several
    figures from the same resamples: per-subtask scores and their weighted total move together). It
    suits what a per-item mean cannot express: a corpus score computed from summed statistics
    (METEOR, BLEU), a weighted combination of subgroup means. For a plain mean of per-item values,
    binary or not, ``grouped_bootstrap`` gives the same interval (same draws for the same ``seed``).
    A replicate whose statistic is NaN (a subgroup no drawn unit holds) is left out of that figure's
    interval. Returns arrays (shape () for a scalar statistic): the value on all items, low, high.
    """
    keys = np.asarray([str(u) for u in units])
    value = np.asarray(statistic(np.arange(len(keys))), dtype=float)
    if not len(keys):
        return value, np.full(value.shape, np.nan), np.full(value.shape, np.nan)
    uniq, inv = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(len(uniq))]
    draws = np.random.default_rng(seed).integers(0, len(uniq), size=(n_boot, len(uniq)))
    boot = np.stack([np.asarray(statistic(np.concatenate([members[u] for u in row])), dtype=float) for row in draws])
    with warnings.catch_warnings():  # a figure that no replicate could compute stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return value, lo, hi

"""Choices as the model is shown them: permuted, cyclically shifted, mapped back, and the letter prior.

    shown, mapping = permute_choices(item.choices, f"{seed}:{item.id}")    # shuffle_choices ablation
    shown, mapping = cyclic_shift(item.choices, 1)                          # one cyclic shift
    scores = map_back(scores_on_shown_letters, mapping)                     # back to the original letters
    prior = estimate_letter_prior(score_rows)                               # positional bias, no labels
    fixed = debias_scores(scores, prior)                                    # divided out, renormalised
    content = cyclic_average(scores_per_shift)                              # bias cancelled by averaging

Used by answering (``infer``, ``multiview.run``) and by evaluation (``evaluate``); it depends on
nothing else in the package. Score vectors are keyed by letter; a letter's position is its index
in ``"ABCD..."``.
"""
from __future__ import annotations

import hashlib
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

LETTERS = "ABCDEFGH"

Scores = Mapping[str, float]


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _vec(scores: Scores | Sequence[float]) -> np.ndarray:
    """Score vector by position: a dict is read in letter order (A, B, ...)."""
    if isinstance(scores, Mapping):
        return np.array([scores[k] for k in sorted(scores)], dtype=float)
    return np.asarray(scores, dtype=float)


def _like(template: Scores | Sequence[float], v: np.ndarray):
    if isinstance(template, Mapping):
        return {k: float(x) for k, x in zip(sorted(template), v)}
    return v


def _softmax_log(logp: np.ndarray) -> np.ndarray:
    z = np.exp(logp - logp.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def estimate_letter_prior(score_rows: Iterable[Sequence[Scores | Sequence[float]]], method: str = "log",
                          eps: float = 1e-12) -> dict[int, np.ndarray]:
    """The model's prior over answer positions, per number of choices, estimated without labels.

    ``score_rows``: one entry per question, each a list of score vectors *by position* (what the
    model gave to the letters shown), one per ordering of the choices that was asked, e.g. all
    cyclic shifts. A single ordering per question also works: then position is only decorrelated
    from content across questions (gold letters roughly balanced), so more questions are needed.

    ``method="log"`` (default) averages log-probabilities and renormalises (a geometric mean).
    Under the usual model p(position j) ∝ prior_j x content(choice at j), when every choice visits
    every position once (cyclic shifts) the content terms cancel exactly and this returns the
    prior itself. ``method="mean"`` averages the probabilities, simpler but pulled towards uniform.
    """
    if method not in ("log", "mean"):
        raise ValueError(f"method must be 'log' or 'mean', got {method!r}")
    acc: dict[int, list[np.ndarray]] = {}
    for perms in score_rows:
        for sc in perms:
            if sc is None:
                continue
            v = _vec(sc)
            v = v / v.sum()
            acc.setdefault(len(v), []).append(np.log(np.maximum(v, eps)) if method == "log" else v)
    prior = {}
    for k, vs in sorted(acc.items()):
        m = np.mean(vs, axis=0)
        prior[k] = _softmax_log(m) if method == "log" else m / m.sum()
    return prior


def debias_scores(scores: Scores | Sequence[float] | None, prior: Mapping[int, np.ndarray] | Sequence[float],
                  eps: float = 1e-12):
    """Divide a score vector by the positional prior and renormalise (log p - log prior, softmax).

    ``prior`` is one vector, or ``estimate_letter_prior``'s dict by number of choices; a question
    whose number of choices has no estimate is returned unchanged. Same type out as in.
    """
    if scores is None:
        return None
    v = _vec(scores)
    pr = prior.get(len(v)) if isinstance(prior, Mapping) else np.asarray(prior, dtype=float)
    if pr is None:
        return scores
    if len(pr) != len(v):
        raise ValueError(f"prior has {len(pr)} positions, scores have {len(v)}")
    return _like(scores, _softmax_log(np.log(np.maximum(v, eps)) - np.log(np.maximum(pr, eps))))


def cyclic_shift(choices: Sequence[tuple[str, str]], shift: int) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Choices rotated by ``shift``: shown position j holds original choice (j + shift) mod k.

    Returns the relabelled choices (letters A.. in shown order) and the mapping shown -> original
    letter, in the same form as ``permute_choices``; ``cyclic_average`` assumes this convention.
    """
    k = len(choices)
    order = [(j + shift) % k for j in range(k)]
    return _relabel(choices, order)


def cyclic_average(scores_per_shift: Sequence[Scores | Sequence[float]], method: str = "log"):
    """Content scores for the original letters, averaged over cyclic shifts of the choices.

    ``scores_per_shift[s]`` is the score vector by shown position when the choices were shown as
    ``cyclic_shift(choices, s)``. Each is mapped back to the original letters, then averaged: in log
    space (default) a multiplicative positional bias cancels exactly, since every choice sat in every
    position once; ``"mean"`` averages probabilities. Returns the type of the first vector.
    """
    vs = [_vec(s) for s in scores_per_shift]
    k = len(vs[0])
    if len(vs) != k or any(len(v) != k for v in vs):
        raise ValueError(f"need {k} shifts of {k} scores each, got {[len(v) for v in vs]}")
    back = np.array([[v[(i - s) % k] for i in range(k)] for s, v in enumerate(vs)])  # original choice i
    if method == "log":
        out = _softmax_log(np.log(np.maximum(back, 1e-12)).mean(axis=0))
    elif method == "mean":
        out = back.mean(axis=0) / back.mean(axis=0).sum()
    else:
        raise ValueError(f"method must be 'log' or 'mean', got {method!r}")
    first = scores_per_shift[0]
    return {LETTERS[i]: float(x) for i, x in enumerate(out)} if isinstance(first, Mapping) else out


def _relabel(choices, order) -> tuple[list[tuple[str, str]], dict[str, str]]:
    shown = [(LETTERS[j], choices[i][1]) for j, i in enumerate(order)]
    return shown, {LETTERS[j]: choices[i][0] for j, i in enumerate(order)}


def permute_choices(choices: Sequence[tuple[str, str]], seed: int | str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Randomly reorder ``(letter, text)`` choices for the ``shuffle_choices`` ablation.

    Returns the choices relabelled A.. in their new order and the mapping shown letter -> original
    letter (give it to ``map_back``). A string seed (e.g. ``f"{seed}:{item.id}"``) is hashed with
    SHA-256, so each question gets its own permutation, reproducible across processes.
    """
    if isinstance(seed, str):
        seed = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:8], "big")
    order = np.random.default_rng(seed).permutation(len(choices)).tolist()
    return _relabel(choices, order)


def map_back(scores_or_letter, mapping: Mapping[str, str]):
    """A prediction on shown letters expressed on the original ones: a letter, a score dict, or None."""
    if _missing(scores_or_letter):
        return None
    if isinstance(scores_or_letter, str):
        return mapping[scores_or_letter]
    return {mapping[k]: v for k, v in sorted(scores_or_letter.items(), key=lambda kv: mapping[kv[0]])}

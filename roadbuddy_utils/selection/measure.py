"""How well a selector finds the support moments: per-question candidate tables, hit@k with by-video
intervals, AUC / MRR, and the video split that keeps held-out clips apart.

    rows = candidate_rows(selector, items, kinds=["embedding"])          # one Row per question
    report = evaluate_rows(rows, lambda r: r.feats["embedding"] @ w, cfg)  # hit@k, AUC, MRR
    fit, held = split_videos(rows, 0.2, seed=0)                          # no clip on both sides

Used by 02's selection run (``run.py``) and by contrastive tuning (``tune.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..common.stats import grouped_bootstrap
from ..data.questions import Item
from ..video.frames import VideoReadError
from .selector import FrameSelector, SelectorConfig, near_support, pick_frames

KS = (4, 8)


def question_ranking(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float | None, float | None]:
    """(AUC, reciprocal rank of the best-ranked positive) of one question's candidates."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    if not labels.any():
        return None, None
    rank = 1 + int(np.sum(scores > scores[labels].max()))
    if labels.all():
        return None, 1.0 / rank
    pos, neg = scores[labels], scores[~labels]
    auc = float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))
    return auc, 1.0 / rank


def hit_interval(hits: Sequence[bool], videos: Sequence[str], n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Hit rate and its 95 % bootstrap interval resampling videos (a hit is a success)."""
    return grouped_bootstrap(hits, videos, n_boot=n_boot, seed=seed)


@dataclass
class Row:
    """One question's candidates: times, features per kind, labels (near a support time)."""

    item: Item
    times: np.ndarray
    feats: dict
    labels: np.ndarray
    n_total: int
    fps: float


def candidate_rows(selector: FrameSelector, items: Sequence[Item], kinds: Sequence[str], progress: bool = True,
                   log: Callable = print) -> tuple[list[Row], dict[str, str]]:
    """Candidates and features of every question's clip (one decode per clip); failures by id."""
    from tqdm.auto import tqdm

    rows, failed = [], {}
    for it in tqdm(items, desc="candidates", disable=not progress, mininterval=5):
        try:
            for kind in kinds:
                cand, feats, _ = selector.candidates(it.video_path, kind=kind)
        except (VideoReadError, ValueError) as e:
            failed[it.id] = str(e)
            continue
        rows.append(Row(it, np.array(cand.timestamps), feats, near_support(cand.timestamps, it.support_frames,
                                                                           selector.cfg.window_s),
                        cand.info.n_frames, cand.info.fps))
    if failed:
        log(f"{len(failed)} question(s) without candidates (their clips fall back to uniform frames)")
    return rows, failed


def evaluate_rows(rows: Sequence[Row], score: Callable[[Row], np.ndarray], cfg: SelectorConfig,
                  ks: Sequence[int] = KS) -> dict:
    """hit@k (with the picker), mean per-question AUC and MRR of one scoring function on ``rows``."""
    hits = {k: [] for k in ks}
    aucs, rrs = [], []
    for r in rows:
        s = score(r)
        for k in ks:
            pos = pick_frames(r.times, s, k, cfg.min_gap_s, cfg.context_frames)
            hits[k].append(bool(r.labels[pos].any()))
        auc, rr = question_ranking(s, r.labels)
        aucs += [auc] if auc is not None else []
        rrs += [rr] if rr is not None else []
    return {"n": len(rows), **{f"hit_at_{k}": round(float(np.mean(v)), 4) if v else None for k, v in hits.items()},
            "auc": round(float(np.mean(aucs)), 4) if aucs else None,
            "mrr": round(float(np.mean(rrs)), 4) if rrs else None}


def split_videos(rows: Sequence, fraction: float, seed: int, video: Callable = lambda r: r.item.video_rel
                 ) -> tuple[list, list]:
    """(kept, held out): ``fraction`` of the videos (at least one) held out with all their questions."""
    videos = sorted({video(r) for r in rows})
    order = np.random.default_rng(seed).permutation(len(videos))
    held = {videos[k] for k in order[:max(1, int(round(fraction * len(videos))))]}
    return [r for r in rows if video(r) not in held], [r for r in rows if video(r) in held]

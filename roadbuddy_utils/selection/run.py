"""02's frame selection: train the learned scorer on support_frames, select per question, measure hits.

    metrics = run_selection(items, split, SelectorConfig(scorer="learned", features="auto"), n_frames=8,
                            output_dir="outputs/demo/02_frames@select", cache_dir="outputs/demo/frame_cache")

The hit rate at k is the share of questions with at least one of its k chosen frames within
``window_s`` (0.5 s) of a support time, on the validation side of the grouped split, per selector
(uniform beside every other), with a bootstrap interval that resamples videos, and by question theme.
The learned scorer (selection.LearnedScorer) is trained on the train side: candidates within
``window_s`` of a support time are positives, the clip's other candidates negatives. With
``features="auto"`` it is fitted on both the embedding model's and the VLM vision tower's features,
compared on held-out train videos (hit@4, then mean reciprocal rank) and the better one kept; both
are measured on the validation side. The training curve (held-out hit@4 / AUC / MRR against the
number of training questions) and the held-out metrics go into ``selection_metrics.json``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..common.files import write_json, write_jsonl
from ..data.questions import Item
from ..data.split import select
from ..data.themes import themes_of
from ..video.frames import FrameCache, VideoReadError, probe_video, uniform_indices
from .measure import KS, Row, candidate_rows, evaluate_rows, hit_interval, split_videos
from .selector import (
    EmbeddingModel,
    FrameSelector,
    LearnedScorer,
    SelectorConfig,
    VisionTowerFeatures,
    near_support,
    pick_frames,
    question_text,
    with_path,
)

# --------------------------------------------------------------------------- measures (pure)


# --------------------------------------------------------------------------- per-question candidate tables


# --------------------------------------------------------------------------- training the learned scorer

def fit_learned(rows: Sequence[Row], cfg: SelectorConfig, kind: str, feature_model: str, pca_dim: int = 32,
                C: float = 0.5, seed: int = 0, extra_meta: dict | None = None) -> LearnedScorer:
    """Logistic regression (balanced classes) on the design rows of ``rows``' candidates."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    use = [r for r in rows if r.labels.any()]
    if not use:
        raise ValueError("no training question has a candidate within the support window: nothing to learn from")
    allf = np.concatenate([r.feats[kind] for r in use])
    arrays: dict[str, np.ndarray] = {}
    if allf.shape[1] > pca_dim:
        pca = PCA(n_components=min(pca_dim, len(allf) - 1), random_state=seed).fit(allf)
        arrays |= {"pca_mean": pca.mean_.astype(np.float32), "pca_components": pca.components_.astype(np.float32)}
    x = np.concatenate([LearnedScorer.design(r.feats[kind], r.item.question, cfg.interaction, arrays.get("pca_mean"),
                                             arrays.get("pca_components")) for r in use])
    y = np.concatenate([r.labels for r in use])
    mean, scale = x.mean(0), x.std(0) + 1e-6
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed).fit((x - mean) / scale, y)
    arrays |= {"x_mean": mean.astype(np.float32), "x_scale": scale.astype(np.float32),
               "coef": lr.coef_[0].astype(np.float32), "intercept": np.array(lr.intercept_[0], np.float32)}
    meta = {"features": kind, "feature_model": feature_model, "interaction": cfg.interaction, "pca_dim": pca_dim,
            "C": C, "window_s": cfg.window_s, "candidate_fps": cfg.candidate_fps, "max_side": cfg.max_side,
            "n_questions": len(use), "n_frames": int(len(y)), "n_positive": int(y.sum())} | (extra_meta or {})
    return LearnedScorer(meta, arrays)


def train_learned(selector: FrameSelector, train_items: Sequence[Item], cfg: SelectorConfig, kinds: Sequence[str],
                  feature_models: dict[str, str], holdout_fraction: float = 0.2, seed: int = 0,
                  progress: bool = True, log: Callable = print) -> tuple[dict[str, LearnedScorer], dict]:
    """Fit one scorer per feature kind on the train side; report held-out metrics and the curve.

    Returns ({kind: scorer fitted on every training question}, report with ``kept`` = the kind
    that ranked better on held-out train videos)."""
    with_support = [it for it in train_items if it.support_frames]
    if not with_support:
        src = train_items[0].source_file if train_items else "the data"
        raise ValueError(f"{src}: the learned selector trains on support_frames, and none of the {len(train_items)} "
                         "training questions has any (a test split?); train on train.json, or give selector_path, "
                         "or use selector_scorer 'embedding' / 'uniform'")
    t0 = time.perf_counter()
    rows, failed = candidate_rows(selector, with_support, kinds, progress, log)
    inner, held = split_videos(rows, holdout_fraction, seed)
    report = {"n_train_questions": len(rows), "n_failed": len(failed), "n_inner": len(inner), "n_heldout": len(held),
              "heldout": {}, "curve": {}}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(inner))
    for kind in kinds:
        scorer = fit_learned(inner, cfg, kind, feature_models[kind], seed=seed)
        report["heldout"][kind] = evaluate_rows(held, lambda r, s=scorer: s.scores(r.item, r.feats[kind]), cfg)
        curve = []
        for frac in (0.1, 0.25, 0.5, 1.0):
            part = [inner[k] for k in order[:max(4, int(round(frac * len(inner))))]]
            try:
                s = fit_learned(part, cfg, kind, feature_models[kind], seed=seed)
            except ValueError:
                continue
            curve.append({"n_questions": len(part)} | evaluate_rows(held, lambda r, s=s: s.scores(r.item, r.feats[kind]),
                                                                    cfg))
        report["curve"][kind] = curve
    rank = lambda k: (report["heldout"][k]["hit_at_4"] or 0, report["heldout"][k]["mrr"] or 0)  # noqa: E731
    report["kept"] = max(kinds, key=rank)
    scorers = {k: fit_learned(rows, cfg, k, feature_models[k], seed=seed,
                              extra_meta={"heldout": report["heldout"][k]}) for k in kinds}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return scorers, report


# --------------------------------------------------------------------------- 02's run

def _scoring_functions(selector: FrameSelector, scorers: dict[str, LearnedScorer]) -> dict[str, Callable]:
    """name -> score(row) for every selector this run can measure besides uniform."""
    out = {}
    if selector.embedder is not None:
        emb = selector.embedder
        with_choices = selector.cfg.with_choices
        out["embedding"] = lambda r: r.feats["embedding"] @ emb.text_features([question_text(r.item, with_choices)])[0]
    for kind, s in scorers.items():
        out[f"learned[{kind}]"] = lambda r, s=s, kind=kind: s.scores(r.item, r.feats[kind])
    return out


def _uniform_hits(items: Sequence[Item], rows: dict[str, Row], k: int, window_s: float) -> list[bool]:
    hits = []
    for it in items:
        r = rows.get(it.id)
        try:
            n_total, fps = (r.n_total, r.fps) if r else (lambda i: (i.n_frames, i.fps))(probe_video(it.video_path))
        except VideoReadError:
            hits.append(False)
            continue
        times = [i / fps for i in uniform_indices(n_total, k)]
        hits.append(bool(near_support(times, it.support_frames, window_s).any()))
    return hits


def hit_table(items: Sequence[Item], rows: Sequence[Row], score_fns: dict[str, Callable], cfg: SelectorConfig,
              ks: Sequence[int] = KS, n_boot: int = 1000, seed: int = 0) -> dict:
    """hit@k per selector (uniform first) with by-video intervals and by theme; ranking metrics per scorer.

    A question whose clip has no candidates counts with the uniform frames it falls back to."""
    by_id = {r.item.id: r for r in rows}
    videos = [it.video_rel for it in items]
    themes = [themes_of(it.question) for it in items]
    hits: dict[str, dict[int, list[bool]]] = {"uniform": {k: _uniform_hits(items, by_id, k, cfg.window_s) for k in ks}}
    ranking = {}
    for name, fn in score_fns.items():
        hits[name] = {k: [] for k in ks}
        scored = {}
        for it in items:
            r = by_id.get(it.id)
            if r is not None:
                scored[it.id] = fn(r)
        for k in ks:
            uni = dict(zip([i.id for i in items], hits["uniform"][k]))
            for it in items:
                if it.id in scored:
                    r = by_id[it.id]
                    pos = pick_frames(r.times, scored[it.id], k, cfg.min_gap_s, cfg.context_frames)
                    hits[name][k].append(bool(r.labels[pos].any()))
                else:
                    hits[name][k].append(uni[it.id])
        ranking[name] = evaluate_rows([by_id[i] for i in scored], lambda r: scored[r.item.id], cfg, ks=())
    out = {"n": len(items), "n_videos": len(set(videos)), "window_s": cfg.window_s,
           "hit_at_k": {}, "hit_at_k_ci": {}, "by_theme": [], "ranking": ranking}
    for name, per_k in hits.items():
        out["hit_at_k"][name] = {str(k): round(float(np.mean(v)), 4) if v else None for k, v in per_k.items()}
        out["hit_at_k_ci"][name] = {}
        for k, v in per_k.items():
            _, lo, hi = hit_interval(v, videos, n_boot, seed) if v else (None, None, None)
            out["hit_at_k_ci"][name][str(k)] = [round(lo, 4), round(hi, 4)] if v else None
        for theme in sorted({t for ts in themes for t in ts}):
            idx = [j for j, ts in enumerate(themes) if theme in ts]
            out["by_theme"].append({"theme": theme, "selector": name, "n": len(idx),
                                    **{f"hit_at_{k}": round(float(np.mean([per_k[k][j] for j in idx])), 4) for k in ks}})
    return out


def measure_cost(selector: FrameSelector, items: Sequence[Item], n_frames: int, max_side: int, n_videos: int = 12,
                 budget_s: float = 30.0) -> dict:
    """Selection time per question without any cache: candidates decoded + scored + picked frames decoded.

    A clip's candidate cost is shared by its questions (as in 03's ``time_ms``)."""
    fresh = FrameSelector(selector.cfg, selector.scorer, selector.embedder, selector.vision, cache=None,
                          backends=selector.backends)
    by_video: dict[str, list[Item]] = {}
    for it in items:
        by_video.setdefault(str(it.video_path), []).append(it)
    videos = list(by_video)[:n_videos + 1]
    per_q, cand_ms, score_ms = [], [], []
    for j, v in enumerate(videos):
        its = by_video[v]
        sels = [fresh.select_or_uniform(it, n_frames, max_side)[1] for it in its]
        fresh.forget(v)
        if j == 0:
            continue  # warm-up: first forward passes allocate
        clip = sels[0].candidates_ms
        cand_ms.append(clip)
        for s in sels:
            per_q.append(clip / len(its) + s.scoring_ms)
            score_ms.append(s.scoring_ms)
    if not per_q:
        return {"n_questions": 0}
    q = np.array(per_q)
    return {"n_questions": len(q), "n_videos": len(cand_ms), "per_question_ms_median": round(float(np.median(q)), 1),
            "per_question_ms_p95": round(float(np.percentile(q, 95)), 1), "per_question_ms_max": round(float(q.max()), 1),
            "candidates_ms_median_per_clip": round(float(np.median(cand_ms)), 1),
            "scoring_and_pick_ms_median": round(float(np.median(score_ms)), 1),
            "share_of_budget_median": round(float(np.median(q)) / (budget_s * 1000), 5),
            "share_of_budget_max": round(float(q.max()) / (budget_s * 1000), 5), "budget_s": budget_s}


def feature_selector(cfg: SelectorConfig, vlm_model: str | None, cache: FrameCache | None, vlm_max_pixels: int | None
                    ) -> tuple[FrameSelector, list[str], dict[str, str]]:
    """The selector holding every feature model this run needs, the learned feature kinds and their model ids."""
    need_embed = cfg.scorer == "embedding" or (cfg.scorer == "learned" and cfg.features in ("embedding", "auto"))
    kinds = [] if cfg.scorer != "learned" else (["embedding", "vlm"] if cfg.features == "auto" else [cfg.features])
    embedder = EmbeddingModel(cfg.model, cfg.batch_size) if need_embed else None
    vision, models = None, {"embedding": cfg.model}
    if "vlm" in kinds:
        from ..models.config import ModelConfig
        from ..models.vlm import VLM

        vlm_id = cfg.vlm_model or vlm_model
        if not vlm_id:
            raise ValueError("selector_features 'vlm' / 'auto' needs selector_vlm_model (the VLM whose vision tower "
                             "gives the features)")
        vlm = VLM.load(ModelConfig(vlm_id, **({"max_pixels": vlm_max_pixels} if vlm_max_pixels else {})))
        vision = VisionTowerFeatures(vlm, cfg.batch_size)
        models["vlm"] = vlm_id
    return FrameSelector(cfg, embedder=embedder, vision=vision, cache=cache), kinds, models


def run_selection(items: Sequence[Item], split: dict, cfg: SelectorConfig, n_frames: int, output_dir,
                  cache_dir=None, max_side: int = 448, vlm_max_pixels: int | None = None, n_boot: int = 1000,
                  budget_s: float = 30.0, tune_steps: int = 0, tune_options: dict | None = None,
                  progress: bool = True, log: Callable = print) -> dict:
    """02 with ``frame_mode: select``: (train the learned scorer,) select ``n_frames`` for every question,
    write ``selected_frames.jsonl`` and ``selection_metrics.json``; returns the metrics.

    ``tune_steps`` > 0 also fine-tunes the embedding model contrastively on the train side
    (selection/tune.py, ``{output_dir}/embedding_tuned``) and measures it as ``embedding[tuned]``."""
    from tqdm.auto import tqdm

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = FrameCache(cache_dir) if cache_dir else None
    train_items = select(list(items), split["train_ids"])
    val_items = [it for it in select(list(items), split["val_ids"]) if it.support_frames]  # hits need support times
    report = None
    scorers: dict[str, LearnedScorer] = {}
    if cfg.scorer == "learned" and cfg.path:
        scorer = LearnedScorer.load(cfg.path)
        sel = FrameSelector.build(cfg, cache=cache)
        scorers = {scorer.features: scorer}
        kinds = [scorer.features]
    else:
        sel, kinds, models = feature_selector(cfg, cfg.vlm_model, cache, vlm_max_pixels)
        if cfg.scorer == "learned":
            scorers, report = train_learned(sel, train_items, cfg, kinds, models, progress=progress, log=log)
            if sel.vision is not None:
                scorers["vlm"].meta["max_pixels"] = sel.vision.max_pixels
            kept = scorers[report["kept"]]
            path = kept.save(out / "learned_scorer")
            for kind, s in scorers.items():
                s.save(out / f"learned_scorer_{kind}")
            cfg = with_path(cfg, path)
            sel.cfg, sel.scorer = cfg, kept
            log(f"learned scorer ({report['kept']} features) saved to {path}")
    tuned = tune_report = None
    if tune_steps and cfg.scorer != "uniform":
        from .tune import finetune_embedding

        path, tune_report = finetune_embedding(train_items, cfg, out / "embedding_tuned", cache, steps=tune_steps,
                                               progress=progress, log=log, **(tune_options or {}))
        tuned_cfg = replace(cfg, model=str(path))
        tuned = FrameSelector(tuned_cfg, embedder=EmbeddingModel(str(path), cfg.batch_size), cache=cache)
    # every question, the configured selector (fallbacks recorded, nothing dropped)
    lines = []
    t0 = time.perf_counter()
    val_ids = set(split["val_ids"])
    for it in tqdm(items, desc="select", disable=not progress, mininterval=5):
        _, s = sel.select_or_uniform(it, n_frames, max_side)
        lines.append({"id": it.id, "video_path": str(it.video_path), "split": "val" if it.id in val_ids else "train",
                      "support_frames": it.support_frames} | s.record())
    write_jsonl(lines, out / "selected_frames.jsonl")
    select_s = time.perf_counter() - t0
    # measures on the validation side
    val_rows, _ = candidate_rows(sel, val_items, kinds or (["embedding"] if sel.embedder else []), progress, log) \
        if cfg.scorer != "uniform" else ([], {})
    metrics = {"selector": sel.name, "config": asdict(cfg), "n_frames": n_frames, "n_questions": len(lines),
               "n_fallbacks": sum(l["fallback"] is not None for l in lines),
               "n_failed": sum(not l["timestamps"] for l in lines), "select_seconds": round(select_s, 1)}
    metrics |= hit_table(val_items, val_rows, _scoring_functions(sel, scorers), cfg, n_boot=n_boot)
    if cfg.scorer == "learned":  # "learned" names the scorer this run uses (the kept feature kind)
        for key in ("hit_at_k", "hit_at_k_ci", "ranking"):
            metrics[key]["learned"] = metrics[key][sel.name]
    if report is not None:
        metrics["learned"] = report
    if tuned is not None:
        t_rows, _ = candidate_rows(tuned, val_items, ["embedding"], progress, log)
        name = "embedding[tuned]"
        t = hit_table(val_items, t_rows, {name: _scoring_functions(tuned, {})["embedding"]}, cfg, n_boot=n_boot)
        for key in ("hit_at_k", "hit_at_k_ci", "ranking"):
            metrics[key][name] = t[key][name]
        metrics["by_theme"] += [r for r in t["by_theme"] if r["selector"] == name]
        metrics["tuned"] = tune_report
    metrics["cost"] = measure_cost(sel, val_items or list(items), n_frames, max_side, budget_s=budget_s)
    write_json(metrics, out / "selection_metrics.json")
    return metrics


def hit_rows(metrics: dict) -> list[dict]:
    """``hit_at_k`` (with intervals) as table rows: selector, k, hit, ci_low, ci_high."""
    rows = []
    for name, per_k in metrics["hit_at_k"].items():
        for k, v in per_k.items():
            ci = metrics["hit_at_k_ci"][name][k] or [None, None]
            rows.append({"selector": name, "k": int(k), "hit": v, "ci_low": ci[0], "ci_high": ci[1], "n": metrics["n"]})
    return rows


def tune_rows(metrics: dict) -> list[dict]:
    """The contrastive tuning's held-out curve as rows (step, loss, hit_at_4, hit_at_8, auc, mrr)."""
    return list((metrics.get("tuned") or {}).get("curve", []))


def curve_rows(metrics: dict) -> list[dict]:
    """The learned scorer's training curve as rows (features, n_questions, hit_at_4, auc, mrr)."""
    learned = metrics.get("learned") or {}
    return [{"features": kind} | p for kind, pts in learned.get("curve", {}).items() for p in pts]

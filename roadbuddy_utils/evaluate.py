"""Model-independent statistics for 05_eval: compare runs, put intervals on them, explain them.

    paths = ["outputs/demo/03_zero_shot/predictions.jsonl", "outputs/demo/03_no_video/predictions.jsonl"]
    runs = load_runs(paths, labels=["zero-shot", "no video"], items=items)  # items: question text, gold
    meta = runs_meta(paths, labels=["zero-shot", "no video"])   # model, scorer, variant from run_config.json
    acc, lo, hi = bootstrap_ci(runs["zero-shot"])              # 95 % interval, resampled by video
    d = paired_comparison(runs["no video"], runs["zero-shot"])  # McNemar on the common questions
    table = summary_table(runs, {"zero-shot": {"model": "tiny:internvl", "scorer": "likelihood"}})
    write_summary(table, "outputs/demo/05_eval")                 # summary.csv + summary.md
    metrics = evaluate_runs(runs, meta)                          # everything 05 writes to metrics.json
    error_gallery_figure(runs["zero-shot"], items, "outputs/demo/frame_cache", meta["zero-shot"])

Every function takes the DataFrame of one run (one row per question, the columns of
``predictions.jsonl``) and never looks at a model; only the error gallery reads video frames.
Conventions used throughout:

* A question is *scored* when it has a gold ``answer``. Accuracy is over scored questions, an
  unanswered one (``pred`` null) counting as wrong, exactly as ``metrics.run_metrics`` does.
* Score vectors are keyed by letter; the letter's position is its index in ``"ABCD..."``.
* Questions about one clip are correlated (same scene, same frames), so intervals resample
  videos, not questions; treating them as independent makes intervals too narrow.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .themes import themes_of

LETTERS = "ABCDEFGH"
RUN_COLUMNS = ("id", "video", "pred", "scores", "answer", "correct", "n_choices", "time_ms", "source", "error",
               "text_only", "n_frames", "frame_times")
SUMMARY_COLUMNS = ["run", "model", "adapter", "frames", "scorer", "variant", "accuracy", "ci_low", "ci_high", "chance",
                   "n", "latency_p50_ms", "latency_p95_ms"]

Scores = Mapping[str, float]


# --------------------------------------------------------------------------- loading

def _default_labels(paths: Sequence[Path]) -> list[str]:
    """Name each run by its folder (``03_zero_shot``); go up one level at a time until names are unique."""
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parent.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """One run's ``predictions.jsonl`` as a DataFrame, one row per id.

    A resumed run appends: the latest line for an id wins (a retried error replaced by an answer).
    A malformed line raises ``ValueError`` naming the file and line, because silently dropping it
    would change the accuracy without a trace (``util.repair_jsonl`` fixes a line cut by a kill).
    """
    path = Path(path)
    rows: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{k}: malformed JSON line ({e}): {line[:80]!r}") from None
            if not isinstance(r, dict) or "id" not in r:
                raise ValueError(f"{path}:{k}: a prediction line must be a JSON object with an 'id': {line[:80]!r}")
            rows.pop(str(r["id"]), None)  # keep file order of the latest line
            rows[str(r["id"])] = r | {"id": str(r["id"])}
    df = pd.DataFrame(list(rows.values()))
    for c in RUN_COLUMNS:
        if c not in df.columns:
            df[c] = None
    return df.reset_index(drop=True)


def run_labels(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[str]:
    """The given labels (checked), or the runs' folder names."""
    paths = [Path(p) for p in paths]
    labels = list(labels) if labels else _default_labels(paths)
    if len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} prediction files")
    if len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be unique, got {labels}")
    return labels


def load_runs(paths: Sequence[str | Path], labels: Sequence[str] | None = None,
              items=None) -> dict[str, pd.DataFrame]:
    """Several runs keyed by label (default: their folder names), in the order given.

    With ``items`` (``data.Item``s of the evaluated split) each run gains the question text
    (``question``, for themes) and the gold letter where its lines have none (a test split whose
    answers come from a separate file)."""
    runs = {lab: read_predictions(p) for lab, p in zip(run_labels(paths, labels), paths)}
    return {lab: attach_items(df, items) for lab, df in runs.items()} if items is not None else runs


def items_frame(items) -> pd.DataFrame:
    """Questions as a run-shaped DataFrame with gold letters and no predictions, e.g. the train split
    as the reference of ``majority_letter_baseline``."""
    return pd.DataFrame([{"id": str(i.id), "video": i.video_rel, "question": i.question, "answer": i.answer,
                          "n_choices": i.n_choices, "pred": None} for i in items],
                        columns=["id", "video", "question", "answer", "n_choices", "pred"])


def attach_items(df: pd.DataFrame, items) -> pd.DataFrame:
    """Copy of a run with ``question`` text from ``items`` and their gold letter where a line has none."""
    by_id = {str(i.id): i for i in items}
    out = df.copy()
    out["question"] = [by_id[i].question if i in by_id else None for i in out["id"]]
    out["answer"] = [by_id[i].answer if _missing(a) and i in by_id else a for i, a in zip(out["id"], out["answer"])]
    return out


def run_meta(predictions_path: str | Path) -> dict:
    """What a run was, from the ``run_config.json`` that 03 writes beside its predictions.

    Keys: model, adapter, scorer, variant (``plain``, ``no_video``, ``shuffle_choices``,
    ``debias:prior`` ...), tiny_random, model_n_frames and max_pixels (to find its cached frames).
    Empty when there is no such file (predictions from elsewhere)."""
    path = Path(predictions_path).parent / "run_config.json"
    if not path.exists():
        return {}
    cfg = json.loads(path.read_text(encoding="utf-8"))
    model, infer = cfg.get("model") or {}, cfg.get("infer") or {}
    parts = [cfg.get("ablation"), f"debias:{cfg['debias']}" if cfg.get("debias") else None]
    return {"model": model.get("model"), "adapter": model.get("adapter_path"), "scorer": infer.get("scoring"),
            "variant": "+".join(p for p in parts if p) or "plain", "tiny_random": model.get("tiny_random"),
            "model_n_frames": model.get("n_frames"), "max_pixels": model.get("max_pixels")}


def runs_meta(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> dict[str, dict]:
    """``run_meta`` of each predictions file, keyed like ``load_runs``."""
    return {lab: run_meta(p) for lab, p in zip(run_labels(paths, labels), paths)}


# --------------------------------------------------------------------------- basics

def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """The questions with a gold answer, with a boolean ``is_correct`` (unanswered = wrong)."""
    s = df[df["answer"].map(lambda a: not _missing(a))].copy()
    s["is_correct"] = [not _missing(p) and p == a for p, a in zip(s["pred"], s["answer"])]
    return s


def accuracy(df: pd.DataFrame) -> float:
    s = scored(df)
    return float(s["is_correct"].mean()) if len(s) else float("nan")


def chance(df: pd.DataFrame) -> float:
    """Expected accuracy of a uniform guess: mean of 1/n_choices over the scored questions."""
    s = scored(df)
    return float(np.mean(1.0 / s["n_choices"].astype(float))) if len(s) else float("nan")


def _letter_ranking(golds: pd.Series) -> list[str]:
    counts = golds.value_counts()
    return sorted(counts.index, key=lambda l: (-counts[l], l))  # ties broken alphabetically


def majority_letter_baseline(reference: pd.DataFrame, df: pd.DataFrame | None = None,
                             by_n_choices: bool = True) -> float:
    """Accuracy on ``df`` (default: ``reference``) of always answering the most frequent gold letter.

    Letters are ranked by gold frequency in ``reference`` (ideally the train split: ranking on the
    evaluated questions themselves is slightly optimistic); each question gets the best-ranked letter
    it offers (A..k). With ``by_n_choices`` the ranking is taken among reference questions with the
    same number of choices, because 2-choice (true/false) questions have their own letter skew.
    """
    ref, ev = scored(reference), scored(reference if df is None else df)
    if not len(ev):
        return float("nan")
    overall = _letter_ranking(ref["answer"])
    per_k = {k: _letter_ranking(g["answer"]) for k, g in ref.groupby("n_choices")} if by_n_choices else {}
    hits = []
    for k, gold in zip(ev["n_choices"], ev["answer"]):
        offered = LETTERS[:int(k)]
        ranking = [l for l in per_k.get(k, overall) + overall + list(offered) if l in offered]
        hits.append(ranking[0] == gold)
    return float(np.mean(hits))


def bootstrap_ci(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                 unit: str | None = "video") -> tuple[float, float, float]:
    """Accuracy and its percentile bootstrap interval, resampling whole ``unit`` groups (videos).

    Each replicate draws as many videos as there are, with replacement, and takes all their
    questions, so the interval reflects that questions about one clip succeed or fail together.
    ``unit=None`` (or ``"id"``) resamples questions, for comparison. A question without a unit
    value is its own unit. A fixed ``seed`` gives the same interval every time.
    """
    s = scored(df)
    if not len(s):
        return float("nan"), float("nan"), float("nan")
    key = s["id"] if unit in (None, "id") else s[unit].where(s[unit].notna(), "id:" + s["id"].astype(str))
    groups = s.groupby(key.astype(str), sort=True)["is_correct"].agg(["sum", "count"])
    c, n = groups["sum"].to_numpy(float), groups["count"].to_numpy(float)
    idx = np.random.default_rng(seed).integers(0, len(c), size=(n_boot, len(c)))
    boot = c[idx].sum(axis=1) / n[idx].sum(axis=1)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(c.sum() / n.sum()), float(lo), float(hi)


# --------------------------------------------------------------------------- per class / group

def per_class_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Per gold letter: support, accuracy (= recall), how often the letter was predicted, precision."""
    s = scored(df)
    letters = sorted(set(s["answer"]) | {p for p in s["pred"] if not _missing(p)})
    rows = []
    for l in letters:
        gold, pred = s["answer"] == l, s["pred"] == l
        rows.append({"letter": l, "n_gold": int(gold.sum()), "n_pred": int(pred.sum()),
                     "accuracy": float(s.loc[gold, "is_correct"].mean()) if gold.any() else float("nan"),
                     "precision": float((gold & pred).sum() / pred.sum()) if pred.any() else float("nan")})
    return pd.DataFrame(rows, columns=["letter", "n_gold", "n_pred", "accuracy", "precision"])


def confusion(df: pd.DataFrame, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Gold (rows) x predicted (columns) counts; an unanswered question is predicted ``"none"``."""
    from sklearn.metrics import confusion_matrix

    s = scored(df)
    pred = ["none" if _missing(p) else p for p in s["pred"]]
    if labels is None:
        labels = sorted(set(s["answer"]) | set(pred) - {"none"})
    cols = list(labels) + (["none"] if "none" in pred else [])
    m = confusion_matrix(list(s["answer"]), pred, labels=cols)
    return pd.DataFrame(m, index=pd.Index(cols, name="gold"), columns=pd.Index(cols, name="pred")).loc[list(labels)]


def letter_distribution(df: pd.DataFrame, normalize: bool = True) -> pd.DataFrame:
    """Predicted vs gold letter counts (or shares) on the scored questions: letter bias at a glance."""
    s = scored(df)
    out = pd.DataFrame({"gold": s["answer"].value_counts(), "pred": s["pred"].dropna().value_counts()})
    out = out.fillna(0).sort_index()
    out.index.name = "letter"
    return out / len(s) if normalize and len(s) else out.astype(int)


def _question_map(questions) -> dict[str, str]:
    if isinstance(questions, Mapping):
        return {str(k): v for k, v in questions.items()}
    return {str(i.id): i.question for i in questions}  # data.Item or anything with id / question


def add_themes(df: pd.DataFrame, questions) -> pd.DataFrame:
    """Copy of ``df`` with a ``themes`` list column; ``questions`` maps id -> question text (or Items),
    since predictions do not carry the question."""
    q = _question_map(questions)
    out = df.copy()
    out["themes"] = [themes_of(q[i]) if i in q else ["unknown"] for i in out["id"]]
    return out


def accuracy_by(df: pd.DataFrame, column: str, questions=None, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Accuracy (and chance) per value of ``column``, e.g. ``"n_choices"`` or ``"theme"``.

    ``"theme"`` needs ``questions`` (id -> text). A question with several themes counts in each of
    them, so theme rows do not add up to the total. ``n_boot > 0`` adds a by-video interval per row.
    """
    s = scored(df)
    if column == "theme":
        if questions is None and "question" not in s.columns:
            raise ValueError("accuracy by theme needs questions: a mapping id -> question text")
        qmap = (_question_map(questions) if questions is not None
                else {i: q for i, q in zip(s["id"], s["question"]) if isinstance(q, str)})
        s = add_themes(s, qmap).explode("themes").rename(columns={"themes": "theme"})
    rows = []
    for value, g in s.groupby(column, sort=True):
        row = {column: value, "n": len(g), "n_videos": g["video"].nunique(),
               "accuracy": float(g["is_correct"].mean()), "chance": float(np.mean(1.0 / g["n_choices"].astype(float)))}
        if n_boot:
            _, row["ci_low"], row["ci_high"] = bootstrap_ci(g, n_boot=n_boot, seed=seed)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- paired comparison

def mcnemar(b: int, c: int) -> tuple[float, float, float]:
    """McNemar on the discordant counts: (exact two-sided p, chi-square with continuity, its p).

    The exact test is a binomial test of b against b + c at 1/2; it is the one to trust when
    b + c is small (< ~25), where the chi-square approximation is poor.
    """
    n = b + c
    if n == 0:
        return 1.0, 0.0, 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    chi2 = (abs(b - c) - 1) ** 2 / n if abs(b - c) > 1 else 0.0
    return min(1.0, 2 * tail), float(chi2), math.erfc(math.sqrt(chi2 / 2))  # chi2 sf with 1 dof


def paired_comparison(df_a: pd.DataFrame, df_b: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> dict[str, Any]:
    """Run a vs run b on the questions both scored: which changed, McNemar, and the difference's interval.

    ``b10``: right in a, wrong in b (``right_to_wrong``); ``b01``: wrong in a, right in b
    (``wrong_to_right``). Only discordant questions carry information about the difference, which
    is why McNemar is used instead of comparing two independent accuracies. ``diff`` = acc_b - acc_a,
    with a bootstrap interval resampling videos (the same videos for both runs: paired).
    """
    a = scored(df_a).set_index("id")
    b = scored(df_b).set_index("id")
    common = a.index.intersection(b.index)
    ca, cb = a.loc[common, "is_correct"].to_numpy(bool), b.loc[common, "is_correct"].to_numpy(bool)
    r2w, w2r = sorted(common[ca & ~cb]), sorted(common[~ca & cb])
    p_exact, chi2, p_chi2 = mcnemar(len(w2r), len(r2w))
    out: dict[str, Any] = {
        "n": len(common), "acc_a": float(ca.mean()) if len(common) else float("nan"),
        "acc_b": float(cb.mean()) if len(common) else float("nan"),
        "both_right": int((ca & cb).sum()), "both_wrong": int((~ca & ~cb).sum()),
        "b10": len(r2w), "b01": len(w2r), "right_to_wrong": r2w, "wrong_to_right": w2r,
        "p_exact": p_exact, "chi2": chi2, "p_chi2": p_chi2,
    }
    out["diff"] = out["acc_b"] - out["acc_a"]
    if len(common) and n_boot:
        video = a.loc[common, "video"].where(a.loc[common, "video"].notna(), pd.Series(common, index=common))
        g = pd.DataFrame({"v": video.astype(str).to_numpy(), "d": cb.astype(float) - ca.astype(float)}).groupby("v")["d"]
        d, n = g.sum().to_numpy(), g.count().to_numpy(float)
        idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
        out["diff_ci_low"], out["diff_ci_high"] = (float(x) for x in
                                                   np.quantile(d[idx].sum(1) / n[idx].sum(1), [alpha / 2, 1 - alpha / 2]))
    return out


# --------------------------------------------------------------------------- calibration

def confidences(df: pd.DataFrame) -> pd.DataFrame:
    """Scored questions that have likelihood scores: ``confidence`` (max probability) and ``is_correct``.

    Generate-mode runs (scores null) drop out: they have no probability to calibrate.
    """
    s = scored(df)
    s = s[s["scores"].map(lambda x: isinstance(x, Mapping) and len(x) > 0)]
    return pd.DataFrame({"id": s["id"].to_numpy(), "confidence": [max(x.values()) for x in s["scores"]],
                         "is_correct": s["is_correct"].to_numpy(bool)})


def reliability(df: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width confidence bins on [0, 1]: count, mean confidence, accuracy (NaN where empty).

    Empty bins are kept so every run plots on the same grid; note that confidence is never below
    1/k, so the low bins are always empty.
    """
    c = confidences(df)
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.minimum((c["confidence"].to_numpy() * n_bins).astype(int), n_bins - 1)
    rows = []
    for k in range(n_bins):
        m = b == k
        rows.append({"bin_low": edges[k], "bin_high": edges[k + 1], "n": int(m.sum()),
                     "confidence": float(c["confidence"][m].mean()) if m.any() else float("nan"),
                     "accuracy": float(c["is_correct"][m].mean()) if m.any() else float("nan")})
    return pd.DataFrame(rows)


def ece(df: pd.DataFrame, n_bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (share of questions) x |accuracy - mean confidence|."""
    r = reliability(df, n_bins)
    r = r[r["n"] > 0]
    return float((r["n"] / r["n"].sum() * (r["accuracy"] - r["confidence"]).abs()).sum()) if len(r) else float("nan")


def coverage_curve(df: pd.DataFrame) -> pd.DataFrame:
    """Answer only when confidence >= threshold: coverage (share answered) and accuracy on those.

    One row per distinct confidence, threshold descending (coverage rising). If confidence means
    anything, accuracy falls as coverage grows; a flat curve says the scores do not rank errors.
    """
    c = confidences(df).sort_values("confidence", ascending=False, kind="stable")
    if not len(c):
        return pd.DataFrame(columns=["threshold", "n", "coverage", "accuracy"])
    conf, hit = c["confidence"].to_numpy(), c["is_correct"].to_numpy(float)
    n_ans, n_hit = np.arange(1, len(c) + 1), np.cumsum(hit)
    last = np.r_[conf[1:] != conf[:-1], True]  # ties answered together at their threshold
    return pd.DataFrame({"threshold": conf[last], "n": n_ans[last], "coverage": n_ans[last] / max(len(c), 1),
                         "accuracy": n_hit[last] / n_ans[last]})


# --------------------------------------------------------------------------- latency

def latency_stats(df: pd.DataFrame, budget_s: float = 30.0) -> dict[str, float]:
    """Per-question time (ms): p50/p90/p95/max/mean and the share over the budget (the task's 30 s)."""
    t = pd.to_numeric(df["time_ms"], errors="coerce").dropna().to_numpy(float)
    if not len(t):
        return {"n": 0}
    out = {f"p{q}_ms": float(np.percentile(t, q)) for q in (50, 90, 95)}
    return {"n": len(t), **out, "max_ms": float(t.max()), "mean_ms": float(t.mean()),
            "share_over_budget": float((t > budget_s * 1000).mean())}


# --------------------------------------------------------------------------- letter bias

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


def apply_debias(df: pd.DataFrame, prior: Mapping[int, np.ndarray] | None = None) -> pd.DataFrame:
    """Copy of a likelihood run with debiased ``scores`` and the resulting ``pred`` / ``correct``.

    Without ``prior`` it is estimated from the run's own scores (one ordering per question, no
    labels used). The scores must be by shown position, i.e. not from a ``shuffle_choices`` run,
    whose scores were mapped back to the original letters.
    """
    if prior is None:
        prior = estimate_letter_prior([[s] for s in df["scores"] if isinstance(s, Mapping)])
    out = df.copy()
    new = [debias_scores(s, prior) if isinstance(s, Mapping) else s for s in out["scores"]]
    out["scores"] = new
    out["pred"] = [max(s, key=s.get) if isinstance(s, Mapping) and s else p for s, p in zip(new, df["pred"])]
    out["correct"] = [None if _missing(a) else p == a for p, a in zip(out["pred"], out["answer"])]
    return out


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


# --------------------------------------------------------------------------- reports

def summary_table(runs: Mapping[str, pd.DataFrame], meta: Mapping[str, Mapping] | None = None,
                  n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per run: model, adapter, frames, scorer, accuracy [95 % CI by video], chance, n, latency.

    ``meta[label]`` supplies model / adapter / frames / scorer; missing ones are read from the
    predictions where possible (frames: the most common ``n_frames``; scorer: ``likelihood`` if the
    run has scores, else ``generate``).
    """
    meta = meta or {}
    rows = []
    for label, df in runs.items():
        m = dict(meta.get(label, {}))
        acc, lo, hi = bootstrap_ci(df, n_boot=n_boot, seed=seed)
        nf = pd.to_numeric(df["n_frames"], errors="coerce").dropna()
        lat = latency_stats(df)
        has_scores = df["scores"].map(lambda x: isinstance(x, Mapping)).any()
        rows.append({"run": label, "model": m.get("model"), "adapter": m.get("adapter"),
                     "frames": m.get("frames", m.get("n_frames", int(nf.mode().iloc[0]) if len(nf) else None)),
                     "scorer": m.get("scorer") or ("likelihood" if has_scores else "generate"),
                     "variant": m.get("variant"),
                     "accuracy": acc, "ci_low": lo, "ci_high": hi, "chance": chance(df), "n": len(scored(df)),
                     "latency_p50_ms": lat.get("p50_ms"), "latency_p95_ms": lat.get("p95_ms")})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-style Markdown table (``DataFrame.to_markdown`` would need the tabulate package)."""
    def cell(x) -> str:
        if _missing(x):
            return ""
        if isinstance(x, (float, np.floating)):
            return format(x, floatfmt)
        return str(x).replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_summary(table: pd.DataFrame, output_dir: str | Path, name: str = "summary") -> tuple[Path, Path]:
    """``{output_dir}/{name}.csv`` (full precision, for machines) and ``{name}.md`` (for people)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{name}.csv", out / f"{name}.md"
    table.to_csv(csv, index=False)
    md.write_text(markdown_table(table), encoding="utf-8")
    return csv, md


# --------------------------------------------------------------------------- side by side

def per_class_table(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per gold letter: its support, then each run's accuracy on it (recall). A letter-biased run is
    right on its favourite letter and wrong on the others; debiasing should even this out."""
    cols = {}
    for label, df in runs.items():
        t = per_class_accuracy(df).set_index("letter")
        cols.setdefault("n_gold", t["n_gold"])
        cols[label] = t["accuracy"]
    return pd.DataFrame(cols).rename_axis("letter")


def accuracy_table(runs: Mapping[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Accuracy per value of ``column`` (``n_choices`` or ``theme``) for each run, beside n and chance
    (taken from the first run; runs on the same questions share them)."""
    out = None
    for label, df in runs.items():
        t = accuracy_by(df, column).set_index(column)
        if out is None:
            out = t[["n", "n_videos", "chance"]].copy()
        out[label] = t["accuracy"]
    return out if out is not None else pd.DataFrame()


def paired_table(runs: Mapping[str, pd.DataFrame], reference: str | None = None, n_boot: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """Each run against the reference run (default: the first) on the questions both scored.

    ``wrong_to_right`` / ``right_to_wrong`` count the questions whose correctness changed (the only
    ones McNemar looks at), ``pred_changed`` those whose letter changed at all; ``diff`` is
    acc(run) - acc(reference) with its paired by-video interval, ``p_exact`` McNemar's exact p."""
    labels = list(runs)
    reference = reference or labels[0]
    rows = []
    for label in labels:
        if label == reference:
            continue
        d = paired_comparison(runs[reference], runs[label], n_boot=n_boot, seed=seed)
        a, b = runs[reference].set_index("id")["pred"], runs[label].set_index("id")["pred"]
        common = a.index.intersection(b.index)
        changed = int(sum(x != y for x, y in zip(a[common], b[common]) if not (_missing(x) and _missing(y))))
        rows.append({"reference": reference, "run": label, "n": d["n"], "acc_reference": d["acc_a"],
                     "acc_run": d["acc_b"], "diff": d["diff"], "diff_ci_low": d.get("diff_ci_low"), "diff_ci_high": d.get("diff_ci_high"),
                     "wrong_to_right": d["b01"], "right_to_wrong": d["b10"], "pred_changed": changed,
                     "p_exact": d["p_exact"]})
    return pd.DataFrame(rows, columns=["reference", "run", "n", "acc_reference", "acc_run", "diff", "diff_ci_low",
                                       "diff_ci_high", "wrong_to_right", "right_to_wrong", "pred_changed", "p_exact"])


def changed_questions(df_a: pd.DataFrame, df_b: pd.DataFrame) -> pd.DataFrame:
    """The questions right in one run and wrong in the other: id, question, gold, both letters, direction."""
    a, b = scored(df_a).set_index("id"), scored(df_b).set_index("id")
    common = a.index.intersection(b.index)
    flip = common[a.loc[common, "is_correct"].to_numpy(bool) != b.loc[common, "is_correct"].to_numpy(bool)]
    q = a["question"] if "question" in a.columns else pd.Series(None, index=a.index)
    return pd.DataFrame({"id": flip, "question": [q.get(i) for i in flip], "gold": a.loc[flip, "answer"].to_numpy(),
                         "pred_a": a.loc[flip, "pred"].to_numpy(), "pred_b": b.loc[flip, "pred"].to_numpy(),
                         "change": np.where(b.loc[flip, "is_correct"].to_numpy(bool), "wrong_to_right",
                                            "right_to_wrong")}).sort_values("id", ignore_index=True)


def changed_vs_reference(runs: Mapping[str, pd.DataFrame], reference: str | None = None) -> pd.DataFrame:
    """``changed_questions`` of every run against the reference run (default: the first), one table."""
    labels = list(runs)
    reference = reference or labels[0]
    parts = [changed_questions(runs[reference], runs[lab]).assign(run=lab) for lab in labels if lab != reference]
    cols = ["run", "id", "question", "gold", "pred_a", "pred_b", "change"]
    out = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    return out.rename(columns={"pred_a": f"pred ({reference})", "pred_b": "pred (run)"})


def debias_effects(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``debias_effect`` of every debiased run, one table with a ``run`` column (empty if none)."""
    parts = [t.assign(run=lab) for lab, df in runs.items() if (t := debias_effect(df)) is not None]
    cols = ["run", "letter", "n_gold", "acc_raw", "acc_debiased", "pred_share_raw", "pred_share_debiased"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def debias_effect(df: pd.DataFrame) -> pd.DataFrame | None:
    """For a debiased run (its lines keep ``pred_raw``): per gold letter and overall, accuracy and share
    of predictions before and after removing the letter prior. None for a run without ``pred_raw``."""
    if "pred_raw" not in df.columns or df["pred_raw"].map(_missing).all():
        return None
    s = scored(df)
    s["raw_correct"] = [not _missing(p) and p == a for p, a in zip(s["pred_raw"], s["answer"])]
    rows = []
    for letter, g in [("all", s)] + list(s.groupby("answer", sort=True)):
        rows.append({"letter": letter, "n_gold": len(g), "acc_raw": float(g["raw_correct"].mean()),
                     "acc_debiased": float(g["is_correct"].mean()),
                     "pred_share_raw": float((s["pred_raw"] == letter).mean()) if letter != "all" else float("nan"),
                     "pred_share_debiased": float((s["pred"] == letter).mean()) if letter != "all" else float("nan")})
    return pd.DataFrame(rows)


def calibration_table(runs: Mapping[str, pd.DataFrame], n_bins: int = 10) -> pd.DataFrame:
    """Per run with likelihood scores: n, mean confidence, accuracy on those questions, ECE."""
    rows = []
    for label, df in runs.items():
        c = confidences(df)
        rows.append({"run": label, "n_with_scores": len(c),
                     "mean_confidence": float(c["confidence"].mean()) if len(c) else float("nan"),
                     "accuracy": float(c["is_correct"].mean()) if len(c) else float("nan"), "ece": ece(df, n_bins)})
    return pd.DataFrame(rows)


def latency_table(runs: Mapping[str, pd.DataFrame], budget_s: float = 30.0) -> pd.DataFrame:
    """Per run: per-question latency percentiles (ms) and the share over the budget."""
    return pd.DataFrame([{"run": label} | latency_stats(df, budget_s) for label, df in runs.items()])


# --------------------------------------------------------------------------- everything for metrics.json

def json_safe(x):
    """Plain JSON values: numpy scalars unwrapped, NaN / inf as null, tuples and arrays as lists."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray, pd.Index)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if x is pd.NA or x is pd.NaT:
        return None
    return x


def _records(df: pd.DataFrame | None, index: str | None = None) -> list[dict] | None:
    if df is None:
        return None
    return (df.reset_index() if index else df).to_dict("records")


def evaluate_runs(runs: Mapping[str, pd.DataFrame], meta: Mapping[str, Mapping] | None = None,
                  reference: pd.DataFrame | None = None, n_boot: int = 2000, seed: int = 0, budget_s: float = 30.0,
                  n_bins: int = 10) -> dict:
    """Every number 05 shows, as one JSON-able dict (``metrics.json``).

    ``reference``: questions with gold letters to rank letters for the majority-letter baseline
    (ideally the train split, ``items_frame(load_items(train_json))``; the evaluated ids are left
    out of it); default the first run's own questions, which is slightly optimistic.

    Per run: accuracy with its 95 % by-video interval, chance, majority letter, per-class accuracy,
    confusion matrix, letter distribution, accuracy by number of choices and by theme (when runs
    carry ``question``), calibration (ECE, reliability, coverage), latency, and the debiasing effect
    for debiased runs; then every run paired with the first (McNemar, changed questions) and the
    summary table. Raises ``ValueError`` for a run without gold answers."""
    meta = meta or {}
    labels = list(runs)
    unlabelled = [lab for lab, df in runs.items() if not len(scored(df))]
    if unlabelled:
        raise ValueError(f"runs {unlabelled} have no gold answers: evaluate a labelled split (split='val' in 03) "
                         "or give answers_json")
    first = runs[labels[0]]
    ref = first
    if reference is not None:  # never rank letters on the evaluated questions themselves (val is part of train)
        held_out = reference[~reference["id"].astype(str).isin(set(first["id"]))]
        ref = held_out if len(scored(held_out)) else reference
    summary = summary_table(runs, meta, n_boot=n_boot, seed=seed).set_index("run")
    letters = sorted(set().union(*[set(s["answer"]) | set(s["pred"].dropna()) for s in map(scored, runs.values())]))
    out: dict[str, Any] = {
        "runs_order": labels, "n_boot": n_boot, "seed": seed, "budget_s": budget_s,
        "bootstrap_unit": "video",
        "majority_reference": "given reference questions" if reference is not None else
        "the evaluated questions (slightly optimistic)",
        "baselines": {"chance": chance(first), "majority_letter": majority_letter_baseline(ref, first)},
        "runs": {},
    }
    for label, df in runs.items():
        row = summary.loc[label]
        has_q = "question" in df.columns and df["question"].map(lambda q: isinstance(q, str)).any()
        cm = confusion(df, letters) if len(scored(df)) else None
        out["runs"][label] = {
            "meta": dict(meta.get(label, {})), "n": int(row["n"]), "accuracy": row["accuracy"],
            "ci_low": row["ci_low"], "ci_high": row["ci_high"], "chance": row["chance"],
            "majority_letter": majority_letter_baseline(ref, df),
            "per_class": _records(per_class_accuracy(df)),
            "confusion": None if cm is None else {"labels": list(cm.index), "columns": list(cm.columns),
                                                  "matrix": cm.to_numpy().tolist()},
            "letters": letter_distribution(df).to_dict("index"),
            "by_n_choices": _records(accuracy_by(df, "n_choices")),
            "by_theme": _records(accuracy_by(df, "theme")) if has_q else None,
            "ece": ece(df, n_bins), "n_with_scores": len(confidences(df)),
            "reliability": _records(reliability(df, n_bins)), "coverage": _records(coverage_curve(df)),
            "latency": latency_stats(df, budget_s),
            "debias_effect": _records(debias_effect(df)),
        }
    out["paired"] = []
    for label in labels[1:]:
        d = paired_comparison(first, runs[label], n_boot=n_boot, seed=seed)
        out["paired"].append({"reference": labels[0], "run": label} | d)
    out["summary"] = _records(summary, index="run")
    return json_safe(out)


# --------------------------------------------------------------------------- error gallery

def worst_theme_errors(df: pd.DataFrame, n_themes: int = 2, per_theme: int = 2, min_n: int = 3) -> pd.DataFrame:
    """Wrong answers from the ``n_themes`` themes with the lowest accuracy (among themes with at least
    ``min_n`` questions), the most confident errors first; a ``theme`` column says which.
    The run must carry ``question`` (``load_runs(..., items=...)``)."""
    s = scored(df)
    if not len(s) or "question" not in s.columns:
        return s.iloc[:0].assign(theme=[])
    by = accuracy_by(s, "theme")
    by = by[(by["n"] >= min_n) & (by["theme"] != "unknown")]
    by = by.sort_values(["accuracy", "n"], ascending=[True, False], kind="stable").head(n_themes)
    s = add_themes(s, {i: q for i, q in zip(s["id"], s["question"]) if isinstance(q, str)})
    s["confidence"] = [max(x.values()) if isinstance(x, Mapping) and x else float("nan") for x in s["scores"]]
    picked, used = [], set()
    for theme in by["theme"]:
        wrong = s[~s["is_correct"] & s["themes"].map(lambda t: theme in t) & ~s["id"].isin(used)]
        wrong = wrong.sort_values("confidence", ascending=False, kind="stable", na_position="last").head(per_theme)
        used |= set(wrong["id"])
        picked.append(wrong.assign(theme=theme))
    return pd.concat(picked, ignore_index=True) if picked else s.iloc[:0].assign(theme=[])


def _gallery_frames(row, item, sampling, cache) -> tuple[list[np.ndarray], list[float], str | None]:
    """The frames a question was answered with (from the frame cache when the run used one)."""
    from .frames import VideoReadError, sample_frames

    if item is None or row.get("text_only") or not row.get("n_frames"):
        return [], [], "no frames (text-only answer)"
    try:
        sample = sample_frames(item.video_path, sampling, cache=cache)
    except (VideoReadError, ValueError, OSError) as e:
        return [], [], f"frames unavailable: {e}"
    times = [round(t, 3) for t in sample.timestamps]
    want = {round(float(t), 3) for t in (row.get("frame_times") or [])}
    keep = [k for k, t in enumerate(times) if t in want] or list(range(len(times)))
    return [sample.frames[k] for k in keep], [sample.timestamps[k] for k in keep], None


def error_gallery_figure(df: pd.DataFrame, items, cache_dir=None, meta: Mapping | None = None, n_themes: int = 2,
                         per_theme: int = 2, max_frames: int = 4, min_n: int = 3):
    """For the worst themes, each wrong answer as one row: frames with their times, then the question,
    the choices (prediction and gold marked) and the confidence.

    Frames are re-read with the run's sampling (``meta`` from ``run_meta``: frames per clip and the
    pixel budget), so with the run's ``cache_dir`` they come from the frame cache; of a question
    answered with fewer frames only those are shown (matched by ``frame_times``), at most
    ``max_frames`` evenly spread."""
    import textwrap

    from .frames import FrameCache, SamplingConfig
    from .models import ModelConfig

    meta = meta or {}
    rows = worst_theme_errors(df, n_themes, per_theme, min_n)
    by_id = {str(i.id): i for i in items}
    if not len(rows):
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no wrong answers in a theme with enough questions", ha="center", va="center")
        return fig
    nf = pd.to_numeric(df["n_frames"], errors="coerce").dropna()
    n_frames = int(meta.get("model_n_frames") or (nf.max() if len(nf) and nf.max() > 0 else 8))
    max_side = ModelConfig(max_pixels=int(meta["max_pixels"])).max_side if meta.get("max_pixels") else 448
    sampling = SamplingConfig("uniform", n_frames=n_frames, max_side=max_side)
    cache = FrameCache(cache_dir) if cache_dir else None
    fig, axes = plt.subplots(len(rows), max_frames + 1, figsize=(2.2 * max_frames + 6, 2.4 * len(rows)),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * max_frames + [2.8]})
    for r, row in enumerate(rows.to_dict("records")):
        item = by_id.get(str(row["id"]))
        frames, times, note = _gallery_frames(row, item, sampling, cache)
        show = sorted(set(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))) \
            if frames else []
        for c in range(max_frames):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(show):
                ax.imshow(frames[show[c]])
                ax.set_title(f"{times[show[c]]:.1f} s", fontsize=8)
            elif c == 0 and note:
                ax.text(0.0, 0.5, textwrap.fill(note, 22), fontsize=8, va="center")
        choices = item.choices if item is not None else []
        lines = [f"{row['id']}  ·  theme: {row['theme']}", textwrap.fill(f"Q: {row.get('question') or ''}", 60)]
        for letter, text in choices:
            mark = "".join(m for m, hit in (("  <- predicted", letter == row["pred"]),
                                            ("  <- gold", letter == row["answer"])) if hit)
            lines.append(textwrap.shorten(f"{letter}. {text}", 55, placeholder="...") + mark)
        conf = row.get("confidence")
        conf = f"  confidence {conf:.2f}" if isinstance(conf, float) and conf == conf else ""
        lines.append(f"pred {row['pred']}  gold {row['answer']}{conf}")
        axes[r, -1].axis("off")
        axes[r, -1].text(0, 1, "\n".join(lines), fontsize=8, va="top", ha="left", family="DejaVu Sans")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- plots

def _runs(x) -> dict[str, pd.DataFrame]:
    return {"run": x} if isinstance(x, pd.DataFrame) else dict(x)


def plot_accuracy(summary: pd.DataFrame, chance_level: float | None = None, majority: float | None = None):
    """Accuracy per run with its by-video interval, beside the chance and majority-letter baselines."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(summary) + 2), 4))
    x = np.arange(len(summary))
    acc = summary["accuracy"].to_numpy(float)
    err = np.vstack([acc - summary["ci_low"].to_numpy(float), summary["ci_high"].to_numpy(float) - acc])
    ax.bar(x, acc, yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    if chance_level is None and "chance" in summary and len(summary):
        chance_level = float(summary["chance"].mean())
    if chance_level is not None:
        ax.axhline(chance_level, ls="--", color="gray", label=f"chance {chance_level:.2f}")
    if majority is not None:
        ax.axhline(majority, ls=":", color="tab:red", label=f"majority letter {majority:.2f}")
    ax.set_xticks(x, summary["run"], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI, by video)")
    if chance_level is not None or majority is not None:
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_confusions(runs, labels: Sequence[str] | None = None):
    """One gold x predicted matrix per run, same letter order everywhere."""
    runs = _runs(runs)
    if labels is None:
        seen = [set(s["answer"]) | set(s["pred"].dropna()) for s in map(scored, runs.values())]
        labels = sorted(set().union(*seen)) or ["A", "B"]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.4), squeeze=False)
    for ax, (label, df) in zip(axes[0], runs.items()):
        m = confusion(df, labels)
        ax.imshow(m.to_numpy(), cmap="Blues")
        for (i, j), v in np.ndenumerate(m.to_numpy()):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(m.shape[1]), m.columns)
        ax.set_yticks(range(m.shape[0]), m.index)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(label)
    fig.tight_layout()
    return fig


def plot_letter_distribution(runs):
    """Share of each letter: gold (once) and predicted by each run, grouped by letter."""
    runs = _runs(runs)
    first = next(iter(runs.values()))
    cols = {"gold": letter_distribution(first)["gold"]}
    cols |= {label: letter_distribution(df)["pred"] for label, df in runs.items()}
    t = pd.DataFrame(cols).fillna(0).sort_index()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    t.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("letter")
    ax.set_ylabel("share of questions")
    ax.set_title("predicted vs gold letters")
    fig.tight_layout()
    return fig


def _finish(fig, ax, xlabel: str, ylabel: str, ylim=(0, 1)):
    """Unit x axis, labels, legend, tight layout: the common end of the probability plots."""
    ax.set_xlim(0, 1)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_reliability(runs, n_bins: int = 10):
    """Accuracy vs mean confidence per bin (the diagonal is perfect calibration); ECE in the legend."""
    runs = _runs(runs)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="gray")
    for label, df in runs.items():
        r = reliability(df, n_bins)
        r = r[r["n"] > 0]
        if len(r):
            ax.plot(r["confidence"], r["accuracy"], marker="o", label=f"{label} (ECE {ece(df, n_bins):.3f})")
    return _finish(fig, ax, "confidence (max probability)", "accuracy", ylim=(0, 1))


def plot_coverage(runs):
    """Accuracy when answering only the most confident questions, against the share answered."""
    runs = _runs(runs)
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, df in runs.items():
        c = coverage_curve(df)
        if len(c):
            ax.plot(c["coverage"], c["accuracy"], label=label)
    return _finish(fig, ax, "coverage (share answered)", "accuracy on answered", ylim=(0, 1.02))


def plot_latency(runs, budget_s: float = 30.0, bins: int = 30):
    """Per-question time in seconds with the budget marked; the legend gives the share over it."""
    runs = _runs(runs)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, df in runs.items():
        t = pd.to_numeric(df["time_ms"], errors="coerce").dropna() / 1000
        if len(t):
            ax.hist(t, bins=bins, alpha=0.5, label=f"{label} ({(t > budget_s).mean():.1%} over)")
    ax.axvline(budget_s, color="tab:red", ls="--", label=f"budget {budget_s:g} s")
    ax.set_xlabel("seconds per question")
    ax.set_ylabel("questions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

"""Model-independent statistics and tables for 05_eval: compare runs, put intervals on them, explain them.

    runs = results.load_runs(paths, labels=["zero-shot", "no video"], items=items)  # evaluate/results.py
    meta = results.runs_meta(paths, labels=["zero-shot", "no video"])
    acc, lo, hi = bootstrap_ci(runs["zero-shot"])              # 95 % interval, resampled by video
    d = paired_comparison(runs["no video"], runs["zero-shot"])  # McNemar on the common questions
    table = summary_table(runs, {"zero-shot": {"model": "tiny:internvl", "scorer": "likelihood"}})
    write_summary(table, "outputs/demo/05_eval")                 # summary.csv + summary.md
    metrics = evaluate_runs(runs, meta)                          # everything 05 writes to metrics.json

Every function takes the DataFrame of one run (one row per question, the columns of
``predictions.jsonl``) and never looks at a model or a video; the figures are in ``report/plots.py``,
choice permutations and the letter prior in ``data/choices.py``.
Conventions used throughout:

* A question is *scored* when it has a gold ``answer``. Accuracy is over scored questions, an
  unanswered one (``pred`` null) counting as wrong, exactly as ``metrics.run_metrics`` does.
* Score vectors are keyed by letter; the letter's position is its index in ``"ABCD..."``.
* Questions about one clip are correlated (same scene, same frames), so intervals resample
  videos, not questions; treating them as independent makes intervals too narrow.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..common.stats import grouped_bootstrap
from ..data.choices import LETTERS, _missing, debias_scores, estimate_letter_prior
from ..data.themes import themes_of

SUMMARY_COLUMNS = ["run", "model", "adapter", "frames", "scorer", "variant", "accuracy", "ci_low", "ci_high", "chance",
                   "n", "latency_p50_ms", "latency_p95_ms"]

# --------------------------------------------------------------------------- basics

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
        offered = LETTERS if _missing(k) else LETTERS[:int(k)]  # k unknown: a submission without its questions
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
    key = s["id"] if unit in (None, "id") else s[unit].where(s[unit].notna(), "id:" + s["id"].astype(str))
    return grouped_bootstrap(s["is_correct"].to_numpy(), key.astype(str).to_numpy(), n_boot, seed, alpha)


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


# --------------------------------------------------------------------------- frame selection

def selection_tables(selection_metrics) -> tuple[pd.DataFrame, pd.DataFrame]:
    """02's ``selection_metrics.json`` (a path or its dict) as two tables: hit@k per selector with the
    by-video interval, and hit@k per selector and question theme."""
    m = json.loads(Path(selection_metrics).read_text(encoding="utf-8")) if isinstance(selection_metrics, (str, Path)) \
        else dict(selection_metrics)
    from ..selection.run import hit_rows

    rows = hit_rows(m)
    themes = pd.DataFrame(m.get("by_theme") or [])
    if len(themes):
        themes = themes.pivot_table(index="theme", columns="selector", values=[c for c in themes if c.startswith("hit_at_")])
    return pd.DataFrame(rows), themes

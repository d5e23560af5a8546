"""Accuracy and friends for one run's predictions (03); comparisons across runs come in 05.

    m = run_metrics(read_jsonl("outputs/demo/03_zero_shot/predictions.jsonl"))

``chance`` is the mean of 1/number of choices over the scored questions: the baseline every
accuracy is shown beside.
"""
from __future__ import annotations

from collections import Counter

import numpy as np


def run_metrics(lines: list[dict]) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    scored = [r for r in lines if r.get("answer")]
    answered = [r for r in scored if r.get("pred")]
    times = np.array([r["time_ms"] for r in lines if r.get("time_ms") is not None], dtype=float)
    out = {
        "n": len(scored),
        "n_answered": len(answered),
        "accuracy": round(sum(r["pred"] == r["answer"] for r in answered) / len(scored), 4) if scored else None,
        "chance": round(float(np.mean([1 / r["n_choices"] for r in scored])), 4) if scored else None,
        "n_errors": sum(bool(r.get("error")) for r in lines),
        "n_text_only": sum(bool(r.get("text_only")) for r in lines),
        "n_reduced_frames": sum(r.get("reduced_frames") is not None for r in lines),
        "n_over_budget": sum(bool(r.get("over_budget")) for r in lines),
        "sources": dict(Counter(r.get("source") for r in lines)),
        "latency_ms": {f"p{q}": round(float(np.percentile(times, q)), 1) for q in (50, 90, 95, 99)} |
                      {"max": round(float(times.max()), 1), "mean": round(float(times.mean()), 1)} if len(times) else {},
    }
    if answered:
        labels = sorted({r["answer"] for r in answered} | {r["pred"] for r in answered})
        y, p = [r["answer"] for r in answered], [r["pred"] for r in answered]
        prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
        out["per_class"] = {l: {"precision": round(float(a), 4), "recall": round(float(b), 4), "f1": round(float(c), 4),
                                "support": int(d)} for l, a, b, c, d in zip(labels, prec, rec, f1, sup)}
        out["confusion_matrix"] = {"labels": labels, "matrix": confusion_matrix(y, p, labels=labels).tolist()}
        out["pred_letters"] = dict(sorted(Counter(p).items()))
        out["gold_letters"] = dict(sorted(Counter(y).items()))
    return out

"""Figures for 03 and 05: accuracy with intervals, confusion matrices, letters, calibration, coverage,
latency, and the error gallery with the frames the model saw.

    fig = plot_accuracy(pd.DataFrame(metrics["summary"]), majority=0.3)
    fig = plot_confusions(runs)                    # one matrix per run
    fig = error_gallery_figure(runs["zero-shot"], items, "outputs/demo/frame_cache", meta["zero-shot"])

The numbers behind every figure come from ``evaluate`` (one run's DataFrame in, a table out); this
module only draws them.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..evaluate.compare import (
    confusion,
    coverage_curve,
    ece,
    letter_distribution,
    reliability,
    scored,
    worst_theme_errors,
)

# --------------------------------------------------------------------------- error gallery

def _gallery_frames(row, item, sampling, cache) -> tuple[list[np.ndarray], list[float], str | None]:
    """The frames a question was answered with (from the frame cache when the run used one)."""
    from ..video.frames import VideoReadError, sample_frames

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

    from ..models.config import ModelConfig
    from ..video.frames import FrameCache, SamplingConfig

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
    ax.set_ylim(0, 1.18)  # headroom: the legend sits above the bars, never over a bar or its interval
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy (95% CI, by video)")
    for xi, a in zip(x, acc):
        ax.text(xi, 0.02, f"{a:.2f}", ha="center", va="bottom", color="white", fontsize=8)
    if chance_level is not None or majority is not None:
        ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
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

"""Tables and plots for 01_explore and 02_frames (the notebooks only call these).

    items = load_items(data_json, videos_root)
    q = questions_table(items); v = videos_table(items)
    fig = overview_figure(q, v)

02's frame selection (``frame_mode: select``): ``selection_strips_figure`` (scores over time with the
support windows and the chosen frames), ``hit_rate_figure``, ``selection_curve_figure``.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter, ScalarFormatter

from ..data.questions import Item
from ..data.themes import themes_of
from ..video.frames import FrameCache, SamplingConfig, VideoReadError, probe_video, sample_frames


def questions_table(items: list[Item]) -> pd.DataFrame:
    return pd.DataFrame([{
        "id": i.id, "video": i.video_rel, "n_choices": i.n_choices, "answer": i.answer,
        "question_words": len(i.question.split()), "question_chars": len(i.question),
        "themes": themes_of(i.question), "n_support": len(i.support_frames),
    } for i in items])


def videos_table(items: list[Item]) -> pd.DataFrame:
    """One row per video: questions, and the clip's duration / fps / size (or the read error)."""
    by_video: dict[str, list[Item]] = defaultdict(list)
    for i in items:
        by_video[i.video_rel].append(i)
    rows = []
    for rel, its in by_video.items():
        row = {"video": rel, "path": str(its[0].video_path), "questions": len(its),
               "duration_s": np.nan, "fps": np.nan, "width": np.nan, "height": np.nan, "error": None}
        try:
            info = probe_video(its[0].video_path)
            row.update(duration_s=round(info.duration_s, 2), fps=info.fps, width=info.width, height=info.height)
        except VideoReadError as e:
            row["error"] = str(e)
        rows.append(row)
    return pd.DataFrame(rows)


def theme_counts(q: pd.DataFrame) -> pd.Series:
    return q["themes"].explode().value_counts()


def overview_figure(q: pd.DataFrame, v: pd.DataFrame):
    """Six panels: questions per video, choices, answer letters, question length, themes, durations."""
    fig, ax = plt.subplots(2, 3, figsize=(15, 8))
    ax = ax.ravel()
    v["questions"].value_counts().sort_index().plot.bar(ax=ax[0], title="questions per video", xlabel="questions")
    q["n_choices"].value_counts().sort_index().plot.bar(ax=ax[1], title="choices per question", xlabel="choices")
    if q["answer"].notna().any():
        q["answer"].value_counts().sort_index().plot.bar(ax=ax[2], title="gold answer letters", xlabel="letter")
    else:
        ax[2].text(0.5, 0.5, "no answers in this split", ha="center"); ax[2].set_title("gold answer letters")
    q["question_words"].plot.hist(ax=ax[3], bins=20, title="question length (words)")
    theme_counts(q).plot.barh(ax=ax[4], title="themes (keyword match, overlapping)")
    v["duration_s"].dropna().plot.hist(ax=ax[5], bins=15, title="clip duration (s)")
    fig.tight_layout()
    return fig


def resolution_table(v: pd.DataFrame) -> pd.DataFrame:
    ok = v.dropna(subset=["width"])
    return (ok.assign(resolution=ok["width"].astype(int).astype(str) + "x" + ok["height"].astype(int).astype(str))
            .groupby(["resolution", "fps"]).size().rename("videos").reset_index())


def gallery_figure(items: list[Item], n: int = 6, config: SamplingConfig | None = None,
                   cache: FrameCache | None = None, seed: int = 0):
    """One frame per question (at its first support time when known, else mid-clip) with its text."""
    rng = np.random.default_rng(seed)
    pick = [items[k] for k in rng.choice(len(items), size=min(n, len(items)), replace=False)]
    cols = 3
    rows = int(np.ceil(len(pick) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.6 * rows), squeeze=False)
    cfg = config or SamplingConfig(mode="uniform", n_frames=1, max_side=448)
    for ax, it in zip(axes.ravel(), pick):
        ax.axis("off")
        try:
            if it.support_frames:
                s = sample_frames(it.video_path, SamplingConfig("support", min_frames=1, max_frames=1,
                                                                max_side=cfg.max_side), it.support_frames[:1], cache)
            else:
                s = sample_frames(it.video_path, cfg, cache=cache)
            ax.imshow(s.frames[0])
            when = f"t={s.timestamps[0]:.2f}s"
        except VideoReadError as e:
            ax.text(0.5, 0.5, f"cannot read video\n{e.reason}", ha="center", va="center", wrap=True)
            when = "no frame"
        gold = f"  (gold {it.answer})" if it.answer else ""
        text = "\n".join([it.question[:70]] + [f"{l}. {t[:40]}" for l, t in it.choices])
        ax.set_title(f"{it.id}  {when}{gold}", fontsize=9)
        ax.text(0, 1.0, text, transform=ax.transAxes, va="bottom", fontsize=8, wrap=True,
                bbox=dict(facecolor="white", alpha=0.8, linewidth=0))
    for ax in axes.ravel()[len(pick):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def frame_strips_figure(index: list[dict], support_by_video: dict[str, list[float]], cache: FrameCache | None,
                        config: SamplingConfig, n_videos: int = 4):
    """Sampled frames of a few videos in a row each; a red border marks frames within the support
    window, and the support times are listed in the row title."""
    ok = [r for r in index if not r["error"]][:n_videos]
    if not ok:
        fig, ax = plt.subplots(figsize=(6, 1)); ax.axis("off"); ax.text(0.5, 0.5, "no readable video", ha="center")
        return fig
    cols = max(len(r["timestamps"]) for r in ok)
    fig, axes = plt.subplots(len(ok), cols, figsize=(2.6 * cols, 2.0 * len(ok)), squeeze=False)
    for row, rec in zip(axes, ok):
        support = support_by_video.get(rec["video_path"], [])
        sample = sample_frames(rec["video_path"], config, support or None, cache)
        sup = ", ".join(f"{s:g}" for s in support) or "none"
        for k, ax in enumerate(row):
            ax.axis("off")
            if k >= len(sample.frames):
                continue
            ax.imshow(sample.frames[k])
            t = sample.timestamps[k]
            near = any(abs(t - s) <= config.support_window_s + 0.5 / sample.info.fps for s in support)
            if near:
                ax.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec="red", lw=4))
            head = f"{Path(rec['video_path']).name[:24]}\nsupport: {sup} s\n" if k == 0 else "\n\n"
            ax.set_title(f"{head}{t:.2f}s #{sample.frame_indices[k]}", fontsize=7, color="red" if near else "black",
                         loc="left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- frame selection (02, frame_mode select)

def _border(ax, colour: str) -> None:
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec=colour, lw=4))


def selection_strips_figure(lines: list[dict], n: int = 4, window_s: float = 0.5, max_side: int = 224,
                            split: str | None = "val"):
    """One row per question: its candidates' scores over time (support windows shaded red, picked
    times in blue), then the picked frames (red border: within ``window_s`` of a support time)."""
    from ..video.frames import decode_frames

    ok = [l for l in lines if l["timestamps"] and l.get("support_frames") and (split is None or l.get("split") == split)]
    ok = ok[:n]
    if not ok:
        fig, ax = plt.subplots(figsize=(6, 1)); ax.axis("off"); ax.text(0.5, 0.5, "no selected question to show", ha="center")
        return fig
    cols = 1 + max(len(l["timestamps"]) for l in ok)
    fig, axes = plt.subplots(len(ok), cols, figsize=(2.4 * cols + 1.6, 2.0 * len(ok)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2] + [1] * (cols - 1)})
    for row, rec in zip(axes, ok):
        ax = row[0]
        for s in rec["support_frames"]:
            ax.axvspan(s - window_s, s + window_s, color="red", alpha=0.2, lw=0)
        if rec.get("candidate_times"):
            ax.plot(rec["candidate_times"], rec["candidate_scores"], ".-", color="grey", lw=1, ms=3)
        for t in rec["timestamps"]:
            ax.axvline(t, color="tab:blue", lw=1.5)
        fb = f" fallback: {rec['fallback']}" if isinstance(rec.get("fallback"), str) else ""
        ax.set_title(f"{rec['id']} ({rec['selector']}{fb})\nsupport: {', '.join(f'{s:g}' for s in rec['support_frames'])} s",
                     fontsize=7, loc="left")
        ax.tick_params(labelsize=6)
        ax.set_xlabel("s", fontsize=6)
        try:
            pics, _, _ = decode_frames(rec["video_path"], rec["frame_indices"], max_side=max_side)
        except (VideoReadError, ValueError):
            pics = [None] * len(rec["timestamps"])
        for k, ax in enumerate(row[1:]):
            ax.axis("off")
            if k >= len(rec["timestamps"]) or pics[k] is None:
                continue
            ax.imshow(pics[k])
            t = rec["timestamps"][k]
            hit = any(abs(t - s) <= window_s + 1e-6 for s in rec["support_frames"])
            if hit:
                _border(ax, "red")
            score = f" s={rec['scores'][k]:.2f}" if rec.get("scores") else ""
            ax.set_title(f"{t:.2f}s{score}", fontsize=7, color="red" if hit else "black")
    fig.tight_layout()
    return fig


def hit_rate_figure(metrics: dict):
    """hit@k per selector (bars) with the by-video bootstrap interval."""
    names = list(metrics["hit_at_k"])
    ks = sorted({int(k) for v in metrics["hit_at_k"].values() for k in v})
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names) * len(ks) / 2, 3.2))
    width = 0.8 / len(ks)
    for j, k in enumerate(ks):
        vals = [metrics["hit_at_k"][n].get(str(k)) or 0 for n in names]
        ci = [metrics["hit_at_k_ci"][n].get(str(k)) or [v, v] for n, v in zip(names, vals)]
        err = np.array([[v - c[0] for v, c in zip(vals, ci)], [c[1] - v for v, c in zip(vals, ci)]])
        ax.bar(np.arange(len(names)) + j * width, vals, width, yerr=err, capsize=3, label=f"k={k}")
    ax.set_xticks(np.arange(len(names)) + width * (len(ks) - 1) / 2, names, fontsize=8, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("hit rate (support within 0.5 s)")
    ax.set_title(f"validation questions: n={metrics['n']}, {metrics['n_videos']} videos", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _curve_axes(curve: pd.DataFrame, empty: str):
    """(figure, axes) of a held-out curve; axes None (and the figure says ``empty``) when there is none."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if curve.empty:
        ax.axis("off"); ax.text(0.5, 0.5, empty, ha="center")
        return fig, None
    return fig, ax


def _finish_curve(fig, ax, title: str, **legend):
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, **legend)
    fig.tight_layout()
    return fig


def selection_curve_figure(curve: pd.DataFrame):
    """The learned scorer's held-out hit@4 / AUC / MRR against the number of training questions."""
    fig, ax = _curve_axes(curve, "no learned scorer trained in this run")
    if ax is None:
        return fig
    for (feat, g), ls in zip(curve.groupby("features"), ["-", "--", ":"]):
        for metric, c in (("hit_at_4", "tab:blue"), ("auc", "tab:orange"), ("mrr", "tab:green")):
            ax.plot(g["n_questions"], g[metric], ls, marker="o", color=c, label=f"{metric} ({feat})")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training questions")
    return _finish_curve(fig, ax, "learned scorer on held-out training videos", ncol=2)


def tune_curve_figure(curve: pd.DataFrame):
    """Contrastive tuning of the embedding model: held-out hit@4 / MRR and the training loss per step."""
    fig, ax = _curve_axes(curve, "the embedding model was not tuned in this run")
    if ax is None:
        return fig
    for metric, c in (("hit_at_4", "tab:blue"), ("mrr", "tab:green"), ("auc", "tab:orange")):
        ax.plot(curve["step"], curve[metric], marker="o", color=c, label=metric)
    ax.set_xlabel("step")
    loss = curve.dropna(subset=["loss"])
    if len(loss):
        ax2 = ax.twinx()
        ax2.plot(loss["step"], loss["loss"], "--", color="grey", label="training loss")
        ax2.set_ylabel("loss", fontsize=8)
        ax2.legend(fontsize=7, loc="lower right")
    return _finish_curve(fig, ax, "embedding model tuned on support_frames: held-out training videos", loc="center right")

"""Tables and plots for 01_explore and 02_frames (the notebooks only call these).

    items = load_items(data_json, videos_root)
    q = questions_table(items); v = videos_table(items)
    fig = overview_figure(q, v)
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data import Item
from .frames import FrameCache, SamplingConfig, VideoReadError, probe_video, sample_frames
from .themes import themes_of


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

"""Question-aware camera selection for multi-camera questions (06's ``frame_mode: select``).

    cams = CameraSelector(SelectorConfig(scorer="embedding", model="google/siglip-base-patch16-224"))
    scores = cams.scores(item, select_images(item))          # {camera: similarity to the question}
    images = select_images(item, max_images=3, scores=scores)  # the 3 best cameras, in camera order

A DriveBench / RoboSense question comes with one keyframe of six cameras, not a clip, so what 03
selects among frames in time, 06 selects among camera views: the image-text embedding model of
``selection.EmbeddingModel`` scores each camera image against the question, and when
``max_images_per_prompt`` is below the number of cameras the best-scored ones are sent (in the
official camera order). With every camera sent, selection only records the scores. The learned
scorer cannot apply: it trains on ``support_frames``, which multi-camera questions do not have.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..selection.selector import EmbeddingModel, SelectorConfig
from .data import MVItem


def check_selector(cfg: SelectorConfig | dict | None) -> SelectorConfig | None:
    """The selector block of a multi-camera run: None (or ``uniform``: every camera in the official
    order), or an ``embedding`` scorer; ``learned`` is refused with the reason."""
    if isinstance(cfg, dict):
        cfg = SelectorConfig(**cfg)
    if cfg is None or cfg.scorer == "uniform":
        return None
    if cfg.scorer == "learned":
        raise ValueError("selector_scorer 'learned' trains on support_frames, which multi-camera questions "
                         "(DriveBench / RoboSense) do not have: use selector_scorer 'embedding' in 06, or "
                         "frame_mode 'uniform'")
    return cfg


def load_image(path, max_side: int) -> np.ndarray:
    """An RGB image with its longest side at most ``max_side`` (the embedding model resizes anyway)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.array(im)  # a writable copy (torch warns on read-only arrays)


@dataclass
class CameraScores:
    scores: dict[str, float] | None  # camera -> cosine similarity with the question (None: selection failed)
    ms: float
    error: str | None = None  # why it failed (the cameras then go in the official order)


class CameraSelector:
    """Scores the cameras of a question with an image-text embedding model."""

    def __init__(self, cfg: SelectorConfig):
        self.cfg = check_selector(cfg)
        if self.cfg is None:
            raise ValueError("CameraSelector needs selector_scorer 'embedding'")
        self.embedder = EmbeddingModel(self.cfg.model, self.cfg.batch_size)  # a missing checkpoint stops here

    @property
    def name(self) -> str:
        return "embedding"

    def scores(self, item: MVItem, images: list[tuple[str, Path]]) -> CameraScores:
        t0 = time.perf_counter()
        try:
            feats = self.embedder.image_features([load_image(p, self.cfg.max_side) for _, p in images])
            text = self.embedder.text_features([item.question])[0]
        except (OSError, ValueError) as e:  # an unreadable image: fall back to the official order
            return CameraScores(None, (time.perf_counter() - t0) * 1000, f"{item.id}: {type(e).__name__}: {e}")
        sims = {cam: round(float(s), 5) for (cam, _), s in zip(images, feats @ text)}
        return CameraScores(sims, (time.perf_counter() - t0) * 1000)


def selection_line(line: dict) -> dict:
    """One ``selected_frames.jsonl`` line of a multi-camera result line (cameras instead of times)."""
    scores = line.get("camera_scores") or {}
    return {"id": line["id"], "video_path": None, "timestamps": None, "cameras": line.get("cameras"),
            "scores": [scores.get(c) for c in line.get("cameras") or []] if scores else None,
            "all_scores": scores or None, "selector": line.get("selector"),
            "error": line.get("selection_fallback"), "fallback": "camera_order" if line.get("selection_fallback") else None}

"""One question ready for a model: the item with its frames (or none) and their times.

    ex = Example.of(item, sample)       # from a video.frames.FrameSample; Example(item, None) is text only
    vlm.answer([ex])                    # what the model wrapper, the answering loop and training take
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.questions import Item
from ..video.frames import FrameSample


@dataclass
class Example:
    """One question ready for the model: frames (or none) with their times."""

    item: Item
    frames: np.ndarray | None  # (T, H, W, 3) uint8, None = text only
    timestamps: list[float] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    fps: float | None = None
    total_frames: int | None = None  # frames in the whole clip (Qwen's video metadata)

    @classmethod
    def of(cls, item: Item, sample: FrameSample | None) -> "Example":
        """The question with a sample's frames and times (text only when there is no sample)."""
        if sample is None:
            return cls(item, None)
        return cls(item, sample.frames, sample.timestamps, sample.frame_indices, sample.info.fps, sample.info.n_frames)

"""What training reads: frame pools decoded once per question, a dataset that draws jittered frames from
them every epoch, the answer text, and the collator that puts the loss on the answer tokens only.

    pools = frame_pools(items, SamplingConfig("support", ...), cache, support=True, jitter_s=0.5)
    trainset = TrainSet(items, pools, k=4, seed=0)            # Example per question, redrawn each epoch
    batch = Collator(vlm, cfg)([trainset[0], trainset[1]])     # cfg: a finetune.TrainConfig
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.questions import Item
from ..models.example import Example
from ..video.frames import FrameCache, SamplingConfig, VideoReadError, sample_frames


@dataclass
class Pool:
    frames: np.ndarray | None
    timestamps: list[float]
    indices: list[int]
    fps: float | None
    total: int | None
    near: list[bool] = field(default_factory=list)  # frame within the jitter window of a support time


def frame_pools(items: list[Item], sampling: SamplingConfig, cache: FrameCache | None, support: bool,
                jitter_s: float = 0.0, log=print) -> dict[str, Pool]:
    """Frames per question, decoded once. ``support``: frames at each support time shifted by
    ``-jitter_s, -jitter_s/2, 0, +jitter_s/2, +jitter_s`` (the event as seen a little earlier or later)
    plus uniform context frames up to ``sampling.min_frames``; else the clip's uniform frames."""
    pools: dict[str, Pool] = {}
    by_key: dict[str, Pool] = {}
    for it in items:
        times = None
        if support:
            offsets = (0.0,) if jitter_s <= 0 else (-jitter_s, -jitter_s / 2, 0.0, jitter_s / 2, jitter_s)
            times = sorted(max(0.0, t + d) for t in it.support_frames for d in offsets)
        key = f"{it.video_path}|{times}"
        if key not in by_key:
            try:
                s = sample_frames(it.video_path, sampling, support_times=times, cache=cache)
                near = [any(abs(ts - t) <= max(jitter_s, 0.5 / max(s.info.fps, 1)) + 1e-6 for t in it.support_frames)
                        for ts in s.timestamps] if support else [False] * len(s.timestamps)
                by_key[key] = Pool(s.frames, s.timestamps, s.frame_indices, s.info.fps, s.info.n_frames, near)
            except (VideoReadError, ValueError) as e:
                log(f"{it.id}: {e} (trained / validated from text alone)")
                by_key[key] = Pool(None, [], [], None, None, [])
        pools[it.id] = by_key[key]
    return pools


class TrainSet:
    """Questions with a frame pool each. ``__getitem__`` draws ``k`` frames in time order: with
    ``jitter``, a random ``k - context`` of the frames around the support times (a different draw
    every epoch) plus ``context`` random uniform frames; without, evenly spaced pool frames."""

    def __init__(self, items: list[Item], pools: dict[str, Pool], k: int, seed: int, jitter: bool = True,
                 context: int = 1):
        self.items, self.pools, self.k, self.seed, self.jitter, self.context = items, pools, k, seed, jitter, context
        self.epoch = 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i) -> Example:
        it = self.items[i]
        p = self.pools[it.id]
        if p.frames is None:
            return Example(it, None)
        n = len(p.frames)
        if self.jitter and n > self.k:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            near = [j for j in range(n) if p.near[j]]
            far = [j for j in range(n) if not p.near[j]]
            n_ctx = min(len(far), self.context, self.k)
            n_near = min(len(near), self.k - n_ctx)
            keep = list(rng.choice(near, n_near, replace=False)) + list(rng.choice(far, self.k - n_near, replace=False))
            keep = np.sort(np.array(keep, dtype=int))
        else:
            keep = np.unique(np.linspace(0, n - 1, min(self.k, n)).round().astype(int))
        return Example(it, p.frames[keep], [p.timestamps[k] for k in keep], [p.indices[k] for k in keep], p.fps,
                       p.total)


def target_text(item: Item, how: str) -> str:
    letter = item.answer
    if how == "letter_text":
        return f"{letter}. {dict(item.choices)[letter]}"
    return letter


class Collator:
    """Prompt (the 03 renderer) + answer + end token; labels only on the answer tokens."""

    def __init__(self, vlm, cfg):  # a finetune.TrainConfig (target, lang, loss)
        self.vlm, self.cfg = vlm, cfg
        self.end = vlm.processor.tokenizer.eos_token or "<|im_end|>"

    def __call__(self, examples: list[Example]) -> dict:
        import torch

        tok = self.vlm.processor.tokenizer
        answers = [target_text(ex.item, self.cfg.target) + self.end for ex in examples]
        texts = [self.vlm.render(ex, self.cfg.lang) + a for ex, a in zip(examples, answers)]
        batch = dict(self.vlm.inputs(examples, self.cfg.lang, texts=texts).to("cpu"))
        ids = batch["input_ids"]
        labels = torch.full_like(ids, -100)
        letter_pos, letter_ids, offered = [], [], []
        for b, (ex, a) in enumerate(zip(examples, answers)):
            a_ids = tok.encode(a, add_special_tokens=False)
            k = len(a_ids)
            if ids[b, -k:].tolist() != a_ids:  # left padding: the answer is the sequence's tail
                raise ValueError(f"{ex.item.id}: answer tokens not found at the end of the prompt")
            labels[b, -k:] = ids[b, -k:]
            letter_pos.append(ids.shape[1] - k - 1)  # logits here predict the letter
            offered.append([self.vlm.letter_ids[l] for l in ex.item.letters])
            letter_ids.append(ex.item.letters.index(ex.item.answer))
        batch["labels"] = labels
        if self.cfg.loss == "letters":
            width = max(len(o) for o in offered)
            batch["rb_offered"] = torch.tensor([o + [-1] * (width - len(o)) for o in offered])
            batch["rb_gold"] = torch.tensor(letter_ids)
            batch["rb_k"] = torch.tensor([ids.shape[1] - p for p in letter_pos])  # positions from the end
        return batch

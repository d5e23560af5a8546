"""Resumable batch answering: frames once per video, batched scoring, every failure recorded.

    vlm = VLM.load(ModelConfig("tiny:internvl"))                  # or "OpenGVLab/InternVL3-8B-hf"
    lines = run_inference(items, vlm, InferConfig(scoring="likelihood"), "outputs/demo/03_zero_shot")

``{output_dir}/predictions.jsonl`` gets one line per question as soon as its batch is answered
(flushed). A rerun skips ids that already have an answer; ids recorded with an error and no
answer are tried again. A video that cannot be read does not lose its questions: they are answered
from the text alone (``text_only: true``, the read error in ``error``). An out-of-memory error on a
batch retries that batch item by item; an item that still fails is recorded with its error and the
run goes on.

Time per question (``time_ms``): its share of its video's frame time (decode or cache read,
divided among the questions asked about that video in this run) plus its share of its batch's
model time. With ``time_budget_s`` (the task's 30 s), a question whose predicted time exceeds the
budget is answered with fewer frames (``reduced_frames``: the number used); one that still ends
over budget is marked ``over_budget``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import Item
from .frames import FrameCache, FrameSample, SamplingConfig, VideoReadError, sample_frames
from .util import read_jsonl, repair_jsonl, write_json


@dataclass
class InferConfig:
    scoring: str = "likelihood"  # "likelihood": one forward pass over the offered letters; "generate": greedy text
    lang: str = "vi"  # prompt language: "vi" or "en"
    batch_size: int = 4  # questions per forward pass
    max_new_tokens: int = 16  # generate mode
    time_budget_s: float | None = 30.0  # per question, frames included; None disables the check
    shard_index: int = 0  # this process's shard ...
    num_shards: int = 1  # ... of this many (split by video)
    limit: int | None = None  # answer at most this many questions (after sharding)
    cache_dir: str | None = None  # frame cache folder (None: no cache)

    def __post_init__(self):
        if self.scoring not in ("likelihood", "generate"):
            raise ValueError(f"scoring must be 'likelihood' or 'generate', got {self.scoring!r}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index {self.shard_index} outside 0..{self.num_shards - 1}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


@dataclass
class Example:
    """One question ready for the model: frames (or none) with their times."""

    item: Item
    frames: np.ndarray | None  # (T, H, W, 3) uint8, None = text only
    timestamps: list[float] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    fps: float | None = None
    total_frames: int | None = None  # frames in the whole clip (Qwen's video metadata)


def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def shard_items(items: Sequence[Item], shard_index: int, num_shards: int) -> list[Item]:
    """Split by video (sorted), so a clip is decoded by one shard only."""
    videos = sorted({i.video_rel for i in items})
    mine = {v for k, v in enumerate(videos) if k % num_shards == shard_index}
    return [i for i in items if i.video_rel in mine]


def load_done(path) -> dict[str, dict]:
    """Answered ids of an earlier run (call ``repair_jsonl`` first if it may have been killed)."""
    path = Path(path)
    if not path.exists():
        return {}
    done = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("pred") is not None:
                done[r["id"]] = r
    return done


def _subsample(ex: Example, n: int) -> Example:
    keep = np.linspace(0, len(ex.frames) - 1, n).round().astype(int)
    keep = sorted(set(keep.tolist()))
    return Example(ex.item, ex.frames[keep], [ex.timestamps[k] for k in keep], [ex.frame_indices[k] for k in keep],
                   ex.fps, ex.total_frames)


def prompt_hash(vlm, ex: Example, cfg: InferConfig) -> str:
    return hashlib.sha1(vlm.render(ex, cfg.lang).encode()).hexdigest()[:12]


def _answer_batch(vlm, examples: list[Example], cfg: InferConfig) -> list[dict]:
    """Answers for a batch; on out-of-memory, item by item; an item's failure is its own record."""
    try:
        return vlm.answer(examples, scoring=cfg.scoring, lang=cfg.lang, max_new_tokens=cfg.max_new_tokens)
    except Exception as e:  # noqa: BLE001 - one bad batch must not stop the run
        if is_oom(e):
            _free_memory()
        if len(examples) > 1:
            return [r for ex in examples for r in _answer_batch(vlm, [ex], cfg)]
        return [{"pred": None, "scores": None, "raw": None, "source": None,
                 "error": f"{'out of memory' if is_oom(e) else type(e).__name__}: {e}"}]


def _free_memory():
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_inference(items: Sequence[Item], vlm, cfg: InferConfig, output_dir, progress: bool = True,
                  tags: dict | None = None) -> list[dict]:
    """Answer ``items`` (this shard, minus what is done); returns every line for this shard."""
    from tqdm.auto import tqdm

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / "predictions.jsonl"
    write_json({"infer": asdict(cfg), "model": vlm.describe(), **(tags or {})}, out / "run_config.json")
    mine = shard_items(items, cfg.shard_index, cfg.num_shards)
    if cfg.limit is not None:
        mine = mine[: cfg.limit]
    repair_jsonl(pred_path)
    done = load_done(pred_path)
    todo = [i for i in mine if i.id not in done]
    by_video: dict[str, list[Item]] = {}
    for it in todo:
        by_video.setdefault(str(it.video_path), []).append(it)
    cache = FrameCache(cfg.cache_dir) if cfg.cache_dir else None
    # frames per clip and pixel budget belong to the model wrapper (one validated place)
    sampling = SamplingConfig("uniform", n_frames=vlm.cfg.n_frames, max_side=vlm.cfg.max_side)
    ms_per_frame: list[float] = []  # measured model time per question per frame (for the budget)
    bar = tqdm(total=len(todo), desc=f"answer ({cfg.scoring})", disable=not progress)
    with open(pred_path, "a", encoding="utf-8") as f:
        for video, its in by_video.items():
            t0 = time.perf_counter()
            sample: FrameSample | None = None
            video_error = None
            try:
                sample = sample_frames(video, sampling, cache=cache)
            except (VideoReadError, ValueError) as e:
                video_error = str(e)
            frame_ms = (time.perf_counter() - t0) * 1000 / len(its)
            for k in range(0, len(its), cfg.batch_size):
                chunk = its[k:k + cfg.batch_size]
                examples = [Example(it, sample.frames, sample.timestamps, sample.frame_indices, sample.info.fps,
                                    sample.info.n_frames)
                            if sample is not None else Example(it, None) for it in chunk]
                reduced = None
                if sample is not None and cfg.time_budget_s and ms_per_frame:
                    per_frame = float(np.median(ms_per_frame))
                    n = len(sample.frames)
                    while n > 1 and frame_ms + per_frame * n > cfg.time_budget_s * 1000:
                        n //= 2
                    if n < len(sample.frames):
                        examples = [_subsample(ex, n) for ex in examples]
                        reduced = len(examples[0].frames)
                t1 = time.perf_counter()
                results = _answer_batch(vlm, examples, cfg)
                model_ms = (time.perf_counter() - t1) * 1000 / len(chunk)
                if sample is not None and not any(r["error"] for r in results):
                    ms_per_frame.append(model_ms / len(examples[0].frames))
                for ex, r in zip(examples, results):
                    it = ex.item
                    total = frame_ms + model_ms
                    line = {"id": it.id, "video": it.video_rel, "pred": r["pred"], "scores": r["scores"],
                            "answer": it.answer, "correct": (r["pred"] == it.answer) if it.answer and r["pred"] else None,
                            "n_choices": it.n_choices, "time_ms": round(total, 1), "source": r["source"],
                            "error": r["error"] or video_error, "raw": r["raw"], "text_only": ex.frames is None,
                            "n_frames": 0 if ex.frames is None else len(ex.frames),
                            "frame_times": [round(t, 3) for t in ex.timestamps], "reduced_frames": reduced,
                            "over_budget": bool(cfg.time_budget_s and total > cfg.time_budget_s * 1000),
                            "prompt_hash": prompt_hash(vlm, ex, cfg), **(tags or {})}
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
                f.flush()
                bar.update(len(chunk))
    bar.close()
    latest = {r["id"]: r for r in read_jsonl(pred_path)} if pred_path.exists() else {}
    return [latest[i.id] for i in mine if i.id in latest]


def attach_answers(items: list[Item], answers_json) -> list[Item]:
    """Gold letters from a separate ``{id: letter}`` file (the demo's test answers) onto test items."""
    if not answers_json:
        return items
    path = Path(answers_json)
    try:
        gold = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read answers ({e})") from e
    for it in items:
        if it.answer is None and it.id in gold:
            it.answer = gold[it.id]
    return items


def eval_items(data_json, videos_root=None, split: str = "all", split_file=None, val_fraction: float = 0.2,
               split_seed: int = 0, answers_json=None) -> list[Item]:
    """The questions a run answers: ``all`` of the file, or the grouped ``val`` split (step 1's file)."""
    from .data import load_items, load_or_make_split, select

    items = attach_answers(load_items(data_json, videos_root), answers_json)
    if split == "all":
        return items
    if split != "val":
        raise ValueError(f"split must be 'val' or 'all', got {split!r}")
    if not split_file:
        raise ValueError("split='val' needs split_file (written by 01_explore)")
    return select(items, load_or_make_split(items, split_file, val_fraction, split_seed)["val_ids"])


def run_zero_shot(items: Sequence[Item], model_cfg, infer_cfg: InferConfig, output_dir, progress: bool = True,
                  vlm=None) -> tuple[list[dict], dict]:
    """Load the model (unless given), answer, write ``predictions.jsonl`` and ``metrics.json``."""
    from .metrics import run_metrics
    from .models import VLM

    vlm = vlm or VLM.load(model_cfg)
    lines = run_inference(items, vlm, infer_cfg, output_dir, progress=progress)
    metrics = run_metrics(lines) | {"model": vlm.describe()}
    if metrics["n"]:
        write_json(metrics, Path(output_dir) / "metrics.json")
    return lines, metrics

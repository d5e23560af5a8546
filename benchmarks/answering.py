"""Questions per second: one-pass ``likelihood`` letter scoring vs ``generate`` (+ extraction), in one run.

    python benchmarks/answering.py                       # 3 tiny families, 48 questions, 8 frames
    python benchmarks/answering.py --families internvl --questions 16 --repeats 1   # quick

Same questions, same frames (sampled once beforehand, so only model time is compared), same batch
size. ``generate`` uses 50 new tokens as the reference scripts do; a random tiny model never emits
its end token early, so every reply is 50 tokens long (a trained model often stops sooner: the ratio
is then smaller, but still bounded below by the prompt pass both modes share). Also times
``generate`` one question at a time (what the reference scripts do). Prints a Markdown table;
paste it into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="internvl,qwen2_5_vl,qwen3_vl")
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rb-bench-"))
    os.environ.setdefault("RB_TINY_CACHE", str(tmp / "tiny"))
    import torch

    from roadbuddy_utils.data.questions import load_items
    from roadbuddy_utils.demo.dataset import DemoConfig, generate
    from roadbuddy_utils.models.config import ModelConfig
    from roadbuddy_utils.models.example import Example
    from roadbuddy_utils.models.vlm import VLM
    from roadbuddy_utils.video.frames import SamplingConfig, sample_frames

    torch.set_num_threads(os.cpu_count() or 1)
    generate(tmp / "data", DemoConfig(seed=1, n_train_videos=max(4, args.questions // 2), n_public_videos=1,
                                      n_private_videos=1), progress=False)
    items = load_items(tmp / "data/traffic_buddy_train+public_test/train/train.json")[: args.questions]
    samples = {}
    for it in items:
        if it.video_rel not in samples:
            samples[it.video_rel] = sample_frames(it.video_path, SamplingConfig("uniform", n_frames=args.frames))
    examples = [Example(it, s.frames, s.timestamps, s.frame_indices, s.info.fps, s.info.n_frames)
                for it in items for s in [samples[it.video_rel]]]
    print(f"{len(examples)} questions, {args.frames} frames each, batch {args.batch}, torch {torch.__version__}, "
          f"{platform.machine()} {os.cpu_count()} cores")

    def timed(fn):
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    def batched(vlm, scoring, batch):
        def go():
            for k in range(0, len(examples), batch):
                vlm.answer(examples[k:k + batch], scoring=scoring, max_new_tokens=args.new_tokens)
        return go

    rows = []
    for fam in args.families.split(","):
        vlm = VLM.load(ModelConfig(f"tiny:{fam}", n_frames=args.frames))
        vlm.answer(examples[:2])  # warm-up
        t_like = timed(batched(vlm, "likelihood", args.batch))
        t_gen = timed(batched(vlm, "generate", args.batch))
        t_gen1 = timed(batched(vlm, "generate", 1))
        n = len(examples)
        # model time alone on one pre-processed batch (the processor's frame preprocessing is shared
        # by both modes and dominates on a tiny model)
        batch = vlm.inputs(examples[: args.batch])
        with torch.inference_mode():
            t_fwd = timed(lambda: vlm.model(**batch, logits_to_keep=1))
            t_g = timed(lambda: vlm.model.generate(**batch, max_new_tokens=args.new_tokens, do_sample=False,
                                                   pad_token_id=vlm.processor.tokenizer.pad_token_id))
        rows.append((fam, n / t_like, n / t_gen, n / t_gen1, t_gen / t_like, t_gen1 / t_like, t_g / t_fwd))
    print("\n| model | likelihood q/s (batched) | generate q/s (batched) | generate q/s (one by one) "
          "| likelihood vs generate | likelihood vs generate one by one | model time only, batched |")
    print("|---|---|---|---|---|---|---|")
    for fam, a, b, c, r1, r2, r3 in rows:
        print(f"| tiny:{fam} | {a:.1f} | {b:.1f} | {c:.1f} | {r1:.1f}x | {r2:.1f}x | {r3:.1f}x |")


if __name__ == "__main__":
    main()

"""How many answers change when Qwen2.5-VL's text after the video gets the trained positions (models/rope.py).

    python benchmarks/mrope_rule.py outputs/brief/data/traffic_buddy_train+public_test/train/train.json \
        --videos-root outputs/brief/data/traffic_buddy_train+public_test --limit 200
    python benchmarks/mrope_rule.py outputs/demo/data/.../public_test/public_test.json --videos-root ...

The same questions and frames (8 uniform frames per clip, the demo's pixel budget) are scored by one tiny
random Qwen2.5-VL twice: with the rule (what the project now runs) and with transformers' own text positions.
Prints how many prompts have different positions (clips whose temporal extent passes the spatial one), how
many predicted letters change, and the largest letter-probability difference. A tiny random model is far
more sensitive to positions than a trained one: the real effect needs a GPU run of the real model.
"""
from __future__ import annotations

import argparse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_json")
    ap.add_argument("--videos-root", default=None)
    ap.add_argument("--limit", type=int, default=None, help="at most this many questions")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--max-pixels", type=int, default=12544, help="per frame (the demo's 112 x 112)")
    args = ap.parse_args(argv)
    import torch

    from roadbuddy_utils.data.questions import load_items
    from roadbuddy_utils.models.config import ModelConfig
    from roadbuddy_utils.models.example import Example
    from roadbuddy_utils.models.vlm import VLM
    from roadbuddy_utils.video.frames import SamplingConfig, VideoReadError, sample_frames

    items = load_items(args.data_json, args.videos_root)[: args.limit]
    cfg = ModelConfig("tiny:qwen2_5_vl", n_frames=args.frames, max_pixels=args.max_pixels, device="cpu")
    ours = VLM.load(cfg)
    stock = VLM.load(cfg)
    del stock.model.model.get_rope_index  # transformers' own rule
    sampling = SamplingConfig("uniform", n_frames=args.frames, max_side=cfg.max_side)
    samples, examples = {}, []
    for it in items:
        if it.video_rel not in samples:
            try:
                samples[it.video_rel] = sample_frames(it.video_path, sampling)
            except (VideoReadError, ValueError):
                samples[it.video_rel] = None
        examples.append(Example.of(it, samples[it.video_rel]))
    examples = [e for e in examples if e.frames is not None]
    moved = changed = 0
    worst = 0.0
    inner = ours.model.model
    keys = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts", "attention_mask")
    for k in range(0, len(examples), 8):
        chunk = examples[k:k + 8]
        for ex in chunk:
            b = ours.inputs([ex], "vi")
            a = inner.get_rope_index(b["input_ids"], b["mm_token_type_ids"], **{x: b.get(x) for x in keys})[0]
            s = type(inner).get_rope_index(inner, b["input_ids"], b["mm_token_type_ids"], **{x: b.get(x) for x in keys})[0]
            moved += not torch.equal(a, s)
        for x, y in zip(ours.letter_scores(chunk), stock.letter_scores(chunk)):
            changed += max(x, key=x.get) != max(y, key=y.get)
            worst = max(worst, max(abs(x[l] - y[l]) for l in x))
    durations = sorted({round(float(e.total_frames / e.fps), 1) for e in examples if e.fps})
    print(f"| questions | clip lengths (s) | prompts with other positions | letters changed | max prob. difference |")
    print(f"|---|---|---|---|---|")
    print(f"| {len(examples)} | {durations[0]}-{durations[-1]} | {moved} | {changed} | {worst:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

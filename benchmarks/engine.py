"""Questions per second through the vLLM engine with and without prefix caching, and through the HF path.

    python benchmarks/engine.py                          # tiny Qwen2.5-VL (@hd32), 8 clips x 3 questions, 8 frames
    python benchmarks/engine.py --clips 16 --repeats 3

The questions of one clip share its frames, so their prompts share the clip's part: with prefix caching the
engine computes it once. Same questions, same frames (sampled once beforehand: only answering is timed),
letter scoring (``likelihood``), batches of the three questions of a clip (what 03 does: one clip's questions
go out together). Three setups in one run on this machine: HF (transformers, this process), engine with
``enable_prefix_caching`` off, engine with it on; the parity of the two engine runs with HF is printed too.
On the CPU with tiny random models these are CPU figures, not a GPU claim: the engine's own gains
(continuous batching, CUDA graphs, paged attention) need a GPU (``benchmarks/gpu_check.py --backend vllm``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _examples(n_clips: int, frames: int, seed: int = 0):
    import numpy as np

    from roadbuddy_utils.data.questions import Item
    from roadbuddy_utils.models.example import Example

    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_clips):
        clip = rng.integers(0, 255, (frames, 144, 256, 3), dtype=np.uint8)
        idx = [int(round((k + 0.5) * 300 / frames)) for k in range(frames)]
        for q, (text, choices) in enumerate([("Biển báo nào xuất hiện?", ["Cấm rẽ trái", "Cấm đỗ xe", "Hết cấm", "Không có"]),
                                             ("Đèn tín hiệu màu gì?", ["Đỏ", "Vàng", "Xanh"]),
                                             ("Xe có được rẽ trái không?", ["Đúng", "Sai"])]):
            item = Item(f"c{c}q{q}", text, [("ABCD"[k], t) for k, t in enumerate(choices)], None, [], None, f"v{c}.mp4")
            out.append(Example(item, clip, [i / 30 for i in idx], idx, 30.0, 300))
    return out


def _time(vlm, examples, repeats: int) -> tuple[float, list[dict]]:
    per = []
    scores = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores = [s for k in range(0, len(examples), 3) for s in vlm.letter_scores(examples[k:k + 3])]
        per.append(len(examples) / (time.perf_counter() - t0))
    return statistics.median(per), scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--max-pixels", type=int, default=12544)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("RB_TINY_CACHE", str(Path(tempfile.mkdtemp(prefix="rb-engine-bench-")) / "tiny"))
    from roadbuddy_utils.engine.client import EngineVLM
    from roadbuddy_utils.models.config import ModelConfig
    from roadbuddy_utils.models.vlm import VLM

    cfg = ModelConfig("tiny:qwen2_5_vl@hd32", n_frames=args.frames, max_pixels=args.max_pixels, device="cpu")
    examples = _examples(args.clips, args.frames)
    hf = VLM.load(cfg)
    _time(hf, examples[:3], 1)  # warm-up
    rows = [("HF (transformers)",) + _time(hf, examples, args.repeats)]
    for caching in (False, True):
        eng = EngineVLM.start(cfg, {"enable_prefix_caching": caching, "max_model_len": 4096})
        try:
            _time(eng, examples[:3], 1)
            rows.append((f"vLLM, prefix caching {'on' if caching else 'off'}",) + _time(eng, examples, args.repeats))
        finally:
            eng.close()
    ref = rows[0][2]
    print(f"{len(examples)} questions ({args.clips} clips x 3), {args.frames} frames, tiny Qwen2.5-VL, CPU "
          f"({os.cpu_count()} cores), median of {args.repeats}")
    print("| setup | questions / s | vs HF | max abs. prob. difference vs HF |")
    print("|---|---|---|---|")
    for name, qps, scores in rows:
        d = max(abs(a[k] - b[k]) for a, b in zip(ref, scores) for k in a)
        print(f"| {name} | {qps:.2f} | {qps / rows[0][1]:.2f}x | {d:.1e} |")
    print(f"prefix caching on / off: {rows[2][1] / rows[1][1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Frame sampling speed: our sampler vs per-frame OpenCV seeking vs a cache hit, in one run.

    python benchmarks/frames.py                 # 3 road clips + 1 texture clip, 4/8/16 frames, 5 repeats
    python benchmarks/frames.py --clips 1 --repeats 2 --frames 8   # quick

Clips: generated 1280x720, 30 fps, 10 s, h264 with x264's default settings (GOP 250, B-frames),
showing the demo road scene with events, plus a frame-number barcode so every method is checked
to return exactly the requested frames. "OpenCV seek" is what the reference scripts do:
``cap.set(CAP_PROP_POS_FRAMES, i); cap.read()`` per frame. Prints a Markdown table of medians (ms)
and ratios against OpenCV seeking; paste it into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from roadbuddy_utils.demo.dataset import render_clip
from roadbuddy_utils.video import frames as F
from roadbuddy_utils.video.clips import draw_barcode, read_barcode, write_video


def make_clip(path: Path, seed: int, kind: str = "road") -> Path:
    """``road``: the demo scene (events appearing cut in -> x264 inserts scene-cut keyframes);
    ``texture``: a scrolling random texture with no scene cuts (keyframes only every 250 frames)."""
    if kind == "texture":
        from roadbuddy_utils.video.clips import barcode_clip

        return barcode_clip(path, n_frames=300, fps=30, size=(1280, 720))
    rng = np.random.default_rng(seed)
    events = [{"kind": "light", "value": "red", "time": 2.0}, {"kind": "speed", "value": 60, "time": 5.0},
              {"kind": "count", "value": 3, "time": 8.0}]
    frames = (draw_barcode(f, i) for i, f in enumerate(render_clip(events, 10, 30, (1280, 720), bool(rng.random() < 0.5),
                                                                   noise_seed=seed)))
    return write_video(path, frames, fps=30)


def opencv_seek(path, indices):
    cap = cv2.VideoCapture(str(path))
    out = []
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"cannot read frame {i}")
        out.append(F.resize_max_side(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 448))
    cap.release()
    return out


def timed(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--kinds", nargs="+", default=["road", "texture"], choices=["road", "texture"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rb-bench-"))
    ap_kinds = args.kinds
    cache = F.FrameCache(tmp / "cache")
    rows = []
    for kind in ap_kinds:
        clips = [make_clip(tmp / f"{kind}{k}.mp4", k, kind) for k in range(args.clips if kind == "road" else 1)]
        rows += bench(kind, clips, args, cache)
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.repeats} repeats, median ms")
    print("\n| clip | frames | OpenCV seek | decord get_batch | sampler (cold) | cache hit | sampler vs seek | cache vs seek | cache vs sampler |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, n, m in rows:
        print(f"| {kind} | {n} | {m['opencv_seek']:.0f} | {m['decord']:.0f} | {m['sampler']:.0f} | {m['cache_hit']:.1f} | "
              f"{m['opencv_seek'] / m['sampler']:.1f}x | {m['opencv_seek'] / m['cache_hit']:.0f}x | "
              f"{m['sampler'] / m['cache_hit']:.0f}x |")


def bench(kind, clips, args, cache):
    rows = []
    for n in args.frames:
        cfg = F.SamplingConfig(mode="uniform", n_frames=n, max_side=448)
        agg = {"opencv_seek": [], "decord": [], "sampler": [], "cache_hit": []}
        for clip in clips:
            idx = F.uniform_indices(F.probe_video(clip).n_frames, n)
            ms, out = timed(lambda: opencv_seek(clip, idx), args.repeats)
            assert [read_barcode(f) for f in out] == idx, "opencv seek returned wrong frames"
            agg["opencv_seek"].append(ms)
            ms, out = timed(lambda: F.sample_frames(clip, cfg, backends=("decord",)), args.repeats)
            assert [read_barcode(f) for f in out.frames] == idx
            agg["decord"].append(ms)
            ms, out = timed(lambda: F.sample_frames(clip, cfg), args.repeats)  # cold: no cache
            assert out.backend == "pyav" and [read_barcode(f) for f in out.frames] == idx
            agg["sampler"].append(ms)
            F.sample_frames(clip, cfg, cache=cache)  # fill
            ms, out = timed(lambda: F.sample_frames(clip, cfg, cache=cache), args.repeats)
            assert out.backend == "cache" and [read_barcode(f) for f in out.frames] == idx
            agg["cache_hit"].append(ms)
        med = {k: statistics.median(v) for k, v in agg.items()}
        rows.append((kind, n, med))
    return rows


if __name__ == "__main__":
    main()

"""Writing h264 clips (PyAV/libx264) and frame-number barcodes for exactness tests.

``write_video`` is used by the demo dataset generator, the tests and ``benchmarks/frames.py``;
``draw_barcode`` / ``read_barcode`` put a frame's own index into its pixels so that a test can
check that a decoder returned exactly the frame it was asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

BARCODE_BITS = 12  # up to 4095 frames


def write_video(path, frames: Iterable[np.ndarray], fps: float = 30, gop: int | None = None,
                crf: int | None = None, preset: str | None = None) -> Path:
    """Encode RGB uint8 frames (H, W even) as h264/yuv420p MP4. ``gop=None`` keeps x264's default (250)."""
    from fractions import Fraction

    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.pix_fmt = "yuv420p"
        opts = {}
        if crf is not None:
            opts["crf"] = str(crf)
        if preset:
            opts["preset"] = preset
        if gop is not None:
            s.codec_context.gop_size = gop
            opts["keyint"] = str(gop)
        s.options = opts
        first = True
        for f in frames:
            if first:
                s.height, s.width = f.shape[:2]
                first = False
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.replace(path)
    return path


def draw_barcode(frame: np.ndarray, value: int, band: float = 0.15) -> np.ndarray:
    """Write ``value`` as BARCODE_BITS black/white blocks across the top ``band`` of the frame."""
    h, w = frame.shape[:2]
    bh = max(2, int(h * band))
    bw = w // BARCODE_BITS
    for b in range(BARCODE_BITS):
        frame[:bh, b * bw:(b + 1) * bw] = 255 if (value >> b) & 1 else 0
    return frame


def read_barcode(frame: np.ndarray, band: float = 0.15) -> int:
    h, w = frame.shape[:2]
    bh = max(2, int(h * band))
    bw = w // BARCODE_BITS
    value = 0
    for b in range(BARCODE_BITS):
        block = frame[bh // 4: bh - bh // 4, b * bw + bw // 4:(b + 1) * bw - bw // 4]
        if block.mean() > 127:
            value |= 1 << b
    return value


def barcode_clip(path, n_frames: int = 300, fps: float = 30, size=(1280, 720), gop: int | None = None) -> Path:
    """A clip whose frame i shows i as a barcode over a moving, textured background."""
    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)

    def frames():
        for i in range(n_frames):
            f = np.roll(texture, 4 * i, axis=1).copy()
            yield draw_barcode(f, i)

    return write_video(path, frames(), fps=fps, gop=gop)

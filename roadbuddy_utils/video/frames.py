"""Frame sampling from dashcam clips: which frames to take, decoding them, and a disk cache.

Real run (Kaggle)::

    cfg = SamplingConfig(mode="uniform", n_frames=8, max_side=448)
    sample = sample_frames("train/videos/x.mp4", cfg, cache=FrameCache("outputs/kaggle/frames"))

Tiny run: the same call on a demo clip (``python -m roadbuddy_utils demo-data outputs/demo/data``).

Selection and decoding are separate steps so that a test-time keyframe selector can plug in:
``select_indices`` is a pure function of the clip's ``VideoInfo`` and the config; any callable
with the same signature can be passed as ``selector=`` to ``sample_frames``.

Decoders, tried in order until one succeeds (``backends=``): ``pyav`` decodes forward from the
keyframe before each target and converts only the targets to RGB (measured fastest, see
benchmarks/RESULTS.md), ``decord`` (``get_batch``), ``opencv`` (sequential grab). Every failure
is reported as one error type, :class:`VideoReadError`, naming the file.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..common.files import write_jsonl

DEFAULT_BACKENDS = ("pyav", "decord", "opencv")


class VideoReadError(RuntimeError):
    """A video that is missing, empty or cannot be decoded by any backend."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class SamplingConfig:
    """How frames are chosen from one clip. Saved next to every product that uses it."""

    mode: str = "uniform"  # "uniform": segment centres; "support": around support times (train only)
    n_frames: int = 8  # frames per clip in uniform mode
    min_frames: int = 4  # support mode: at least this many (filled with uniform frames)
    max_frames: int = 6  # support mode: at most this many
    support_window_s: float = 0.5  # support mode: also take frames this far before/after each time
    max_side: int = 448  # resize so the longer side is at most this (bounds memory); 0 keeps size

    def __post_init__(self):
        if self.mode not in ("uniform", "support"):
            raise ValueError(f"frame mode must be 'uniform' or 'support', got {self.mode!r}")
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if self.support_window_s < 0:
            raise ValueError(f"support_window_s must be >= 0, got {self.support_window_s}")
        if self.max_side < 0:
            raise ValueError(f"max_side must be >= 0, got {self.max_side}")

    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps if self.fps else 0.0


@dataclass
class FrameSample:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps: list[float]  # seconds, frame_index / fps
    frame_indices: list[int]
    info: VideoInfo
    backend: str  # decoder that produced the frames, or "cache"
    decode_ms: float = 0.0
    scores: list[float] | None = None  # frame_mode "select": the selector's score of each frame

    def record(self) -> dict:
        """The JSON-able part (no pixels)."""
        rec = {
            "video_path": self.info.path,
            "timestamps": [round(t, 4) for t in self.timestamps],
            "frame_indices": list(self.frame_indices),
            "fps": self.info.fps,
            "n_total_frames": self.info.n_frames,
            "width": self.info.width,
            "height": self.info.height,
            "backend": self.backend,
        }
        if self.scores is not None:
            rec["scores"] = [round(float(x), 6) for x in self.scores]
        return rec


# --------------------------------------------------------------------------- selection (pure)

def uniform_indices(n_total: int, n: int) -> list[int]:
    """Centres of ``n`` equal segments of ``n_total`` frames (no duplicates if n > n_total)."""
    if n_total <= 0:
        return []
    idx = [min(n_total - 1, int((i + 0.5) * n_total / n)) for i in range(n)]
    return sorted(set(idx))


def support_indices(info: VideoInfo, support_times: Sequence[float], window_s: float,
                    min_frames: int, max_frames: int) -> list[int]:
    """Frames at each support time, then at time +/- ``window_s``, filled with uniform frames.

    Priority when over ``max_frames``: every support centre first (in time order), then the
    window edges; when under ``min_frames``: uniform segment centres farthest from those chosen.
    """
    last = info.n_frames - 1
    to_idx = lambda t: int(min(max(round(t * info.fps), 0), last))  # noqa: E731
    times = sorted(float(t) for t in support_times)
    ordered = [to_idx(t) for t in times]
    for t in times:
        ordered += [to_idx(t - window_s), to_idx(t + window_s)]
    chosen: list[int] = []
    for i in ordered:
        if i not in chosen and len(chosen) < max_frames:
            chosen.append(i)
    fill = [i for i in uniform_indices(info.n_frames, max(min_frames, 1) + len(chosen)) if i not in chosen]
    while len(chosen) < min_frames and fill:
        best = max(fill, key=lambda i: min((abs(i - c) for c in chosen), default=info.n_frames))
        chosen.append(best)
        fill.remove(best)
    return sorted(chosen)


def candidate_indices(info: VideoInfo, fps: float) -> list[int]:
    """Dense candidates for test-time selection: one frame per ``1/fps`` s (segment centres).

    A clip shorter than one spacing has no candidate grid: ValueError naming the file."""
    if fps <= 0:
        raise ValueError(f"candidate fps must be > 0, got {fps}")
    if info.duration_s < 1 / fps:
        raise ValueError(f"{info.path}: clip is {info.duration_s:.2f} s long, shorter than the candidate spacing "
                         f"{1 / fps:.2f} s ({fps:g} candidates per second); lower the candidate rate or use "
                         "uniform frames")
    return uniform_indices(info.n_frames, int(info.duration_s * fps + 1e-6))


def dense_selector(fps: float, max_candidates: int | None = None) -> "Selector":
    """A ``sample_frames`` selector taking :func:`candidate_indices`, at most ``max_candidates`` of them
    (spread evenly: a long clip, or a time budget that asks for fewer); its name, the cache key, holds both."""

    def select(info: VideoInfo, config: SamplingConfig, support_times=None) -> list[int]:
        idx = candidate_indices(info, fps)
        if max_candidates and len(idx) > max_candidates:
            idx = uniform_indices(info.n_frames, max_candidates)
        return idx

    select.__name__ = f"dense@{fps:g}fps" + (f"<={max_candidates}" if max_candidates else "")
    return select


def fixed_selector(indices: Sequence[int]) -> "Selector":
    """A ``sample_frames`` selector returning the given frame indices (frames a selector picked)."""
    chosen = sorted(int(i) for i in indices)

    def select(info: VideoInfo, config: SamplingConfig, support_times=None) -> list[int]:
        return chosen

    select.__name__ = "picked:" + hashlib.sha1(json.dumps(chosen).encode()).hexdigest()[:10]
    return select


def select_indices(info: VideoInfo, config: SamplingConfig, support_times: Sequence[float] | None = None) -> list[int]:
    """The default selector: ``uniform`` or ``support`` as the config says."""
    if config.mode == "support":
        if not support_times:
            raise ValueError("frame mode 'support' needs support times (train items only)")
        return support_indices(info, support_times, config.support_window_s, config.min_frames, config.max_frames)
    return uniform_indices(info.n_frames, config.n_frames)


# --------------------------------------------------------------------------- decoding

def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")


def resize_max_side(frame: np.ndarray, max_side: int) -> np.ndarray:
    if not max_side:
        return frame
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return frame
    import cv2

    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _probe_pyav(path: Path) -> VideoInfo:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 0)
        n = s.frames
        if not n and s.duration and s.time_base and fps:
            n = int(round(float(s.duration * s.time_base) * fps))
        if not n and c.duration and fps:
            n = int(round(c.duration / 1e6 * fps))
        return VideoInfo(str(path), fps, int(n), s.codec_context.width, s.codec_context.height)


def _probe_decord(path: Path) -> VideoInfo:
    import decord

    vr = decord.VideoReader(str(path))
    h, w = vr[0].shape[:2] if len(vr) else (0, 0)
    return VideoInfo(str(path), float(vr.get_avg_fps()), len(vr), int(w), int(h))


def _probe_opencv(path: Path) -> VideoInfo:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise RuntimeError("OpenCV cannot open it")
        return VideoInfo(str(path), float(cap.get(cv2.CAP_PROP_FPS)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def _decode_pyav(path: Path, indices: Sequence[int], info: VideoInfo) -> list[np.ndarray]:
    """Decode only what the targets need, exactly.

    * Keyframe positions come from a demux pass (packets only, no decoding); the decoder seeks
      to the keyframe before a target only when that keyframe lies past the current position.
    * Non-reference frames (that no other frame depends on) are skipped unless they are a
      target: the skip is set per packet, so a target is never skipped (skipping blindly
      returns wrong frames).
    * Only targets are converted to RGB. Decoding uses slice threads.
    """
    import av

    targets = sorted(set(indices))
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = float(s.time_base)
        start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        to_index = lambda pts: int(round((pts * tb - start) * info.fps))  # noqa: E731
        keyframes = sorted(to_index(p.pts) for p in c.demux(s) if p.is_keyframe and p.pts is not None)
        if not keyframes:
            raise RuntimeError("no keyframes found")
        # slice threading measured fastest here (benchmarks/RESULTS.md); frame threading adds
        # latency that per-target seeking pays again after every seek
        s.thread_type = "SLICE"
        cc = s.codec_context
        want = set(targets)
        out: dict[int, np.ndarray] = {}
        pos = -1  # display index of the last decoded frame

        def take(frames):
            nonlocal pos
            for fr in frames:
                pos = to_index(fr.pts) if fr.pts is not None else pos + 1
                if pos in want and pos not in out:
                    out[pos] = fr.to_ndarray(format="rgb24")

        while len(out) < len(want):
            nxt = min(i for i in want if i not in out)
            kf = keyframes[max(0, bisect.bisect_right(keyframes, nxt) - 1)]
            if pos >= nxt:
                raise RuntimeError(f"frame {nxt} was not produced by the decoder")
            c.seek(int(round((kf / info.fps + start) / tb)), stream=s, backward=True, any_frame=False)
            pos = -1
            for pkt in c.demux(s):
                if pkt.pts is not None:
                    cc.skip_frame = "DEFAULT" if to_index(pkt.pts) in want else "NONREF"
                take(cc.decode(pkt))
                if len(out) == len(want):
                    break
                nxt = min((i for i in want if i not in out), default=None)
                if nxt is not None and pos >= 0:
                    nkf = keyframes[max(0, bisect.bisect_right(keyframes, nxt) - 1)]
                    if nkf > pos + 8:  # the next target is cheaper to reach by seeking
                        break
            else:
                cc.skip_frame = "DEFAULT"
                take(cc.decode(None))  # flush frames held back by B-frame reordering/threads
                if len(out) < len(want):
                    missing = sorted(want - set(out))
                    raise RuntimeError(f"stream ended before frames {missing}")
        return [out[i] for i in indices]


def _decode_decord(path: Path, indices: Sequence[int], info: VideoInfo) -> list[np.ndarray]:
    import decord

    vr = decord.VideoReader(str(path), num_threads=0)
    batch = vr.get_batch(list(indices)).asnumpy()
    return list(batch)


def _decode_opencv(path: Path, indices: Sequence[int], info: VideoInfo) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise RuntimeError("OpenCV cannot open it")
        want = set(indices)
        out: dict[int, np.ndarray] = {}
        for i in range(max(indices) + 1):
            if not cap.grab():
                raise RuntimeError(f"stream ended before frame {i}")
            if i in want:
                ok, bgr = cap.retrieve()
                if not ok:
                    raise RuntimeError(f"cannot retrieve frame {i}")
                out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return [out[i] for i in indices]
    finally:
        cap.release()


_PROBES = {"pyav": _probe_pyav, "decord": _probe_decord, "opencv": _probe_opencv}
_DECODERS = {"pyav": _decode_pyav, "decord": _decode_decord, "opencv": _decode_opencv}


def probe_video(path, backends: Sequence[str] = DEFAULT_BACKENDS) -> VideoInfo:
    """fps, frame count and size; tries each backend; raises VideoReadError naming the file."""
    path = Path(path)
    _check_file(path)
    errors = []
    for b in backends:
        try:
            info = _PROBES[b](path)
            if info.n_frames > 0 and info.fps > 0:
                return info
            errors.append(f"{b}: no frames")
        except Exception as e:  # noqa: BLE001 - any decoder failure means: try the next one
            errors.append(f"{b}: {type(e).__name__}: {e}")
    raise VideoReadError(path, "cannot read video (" + "; ".join(errors) + ")")


def decode_frames(path, indices: Sequence[int], info: VideoInfo | None = None,
                  backends: Sequence[str] = DEFAULT_BACKENDS, max_side: int = 0) -> tuple[np.ndarray, str, VideoInfo]:
    """Decode the given frame indices with the first backend that works. Returns (frames, backend, info)."""
    path = Path(path)
    info = info or probe_video(path, backends)
    bad = [i for i in indices if not 0 <= i < info.n_frames]
    if bad:
        raise ValueError(f"{path}: frame indices {bad} outside 0..{info.n_frames - 1}")
    errors = []
    for b in backends:
        try:
            frames = _DECODERS[b](path, indices, info)
            frames = [resize_max_side(f, max_side) for f in frames]
            return np.stack(frames), b, info
        except Exception as e:  # noqa: BLE001
            errors.append(f"{b}: {type(e).__name__}: {e}")
    raise VideoReadError(path, "no decoder could read it (" + "; ".join(errors) + ")")


# --------------------------------------------------------------------------- cache

class FrameCache:
    """Frames on disk, one ``.npz`` per (video file, sampling config, support times).

    The key includes the file's size and modification time, so a replaced video is re-decoded.
    Writes are atomic (temp file + rename): safe to rerun or to kill mid-way.
    """

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, video, config: SamplingConfig, support_times=None, selector_name: str = "") -> Path:
        video = Path(video).resolve()
        st = video.stat()
        blob = json.dumps([str(video), st.st_size, st.st_mtime_ns, config.key(),
                           [round(float(t), 4) for t in (support_times or [])], selector_name])
        h = hashlib.sha1(blob.encode()).hexdigest()[:16]
        return self.root / f"{video.stem[:60]}-{h}.npz"

    def load(self, path: Path) -> FrameSample | None:
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                frames = z["frames"]
        except Exception:  # noqa: BLE001 - a damaged cache file is simply recomputed
            return None
        info = VideoInfo(**meta["info"])
        return FrameSample(frames, meta["timestamps"], meta["frame_indices"], info, "cache")

    def save(self, path: Path, sample: FrameSample) -> None:
        meta = {"info": dataclasses.asdict(sample.info), "timestamps": sample.timestamps,
                "frame_indices": sample.frame_indices, "backend": sample.backend}
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, frames=sample.frames, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)


Selector = Callable[[VideoInfo, SamplingConfig, Sequence[float] | None], list[int]]


def sample_frames(path, config: SamplingConfig = SamplingConfig(), support_times: Sequence[float] | None = None,
                  cache: FrameCache | None = None, backends: Sequence[str] = DEFAULT_BACKENDS,
                  selector: Selector = select_indices) -> FrameSample:
    """Choose, decode (or load from cache) and resize the frames of one clip."""
    path = Path(path)
    _check_file(path)
    cpath = None
    if cache is not None:
        name = "" if selector is select_indices else getattr(selector, "__name__", repr(selector))
        cpath = cache.path_for(path, config, support_times if config.mode == "support" else None, name)
        t0 = time.perf_counter()
        hit = cache.load(cpath)
        if hit is not None:
            hit.decode_ms = (time.perf_counter() - t0) * 1000
            return hit
    t0 = time.perf_counter()
    info = probe_video(path, backends)
    indices = selector(info, config, support_times)
    frames, backend, info = decode_frames(path, indices, info, backends, config.max_side)
    sample = FrameSample(frames, [i / info.fps for i in indices], list(indices), info, backend,
                         (time.perf_counter() - t0) * 1000)
    if cpath is not None:
        cache.save(cpath, sample)
    return sample


@dataclass
class ExtractResult:
    records: list[dict] = field(default_factory=list)  # one per video, with "error" (None or message)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["error"]]


def extract_all(videos: Iterable[tuple[str, Sequence[float] | None]], config: SamplingConfig,
                cache: FrameCache | None = None, backends: Sequence[str] = DEFAULT_BACKENDS,
                progress: bool = True) -> ExtractResult:
    """Sample every (video path, support times) pair; a broken video is recorded, never fatal."""
    from tqdm.auto import tqdm

    videos = list(videos)
    result = ExtractResult()
    for path, support in tqdm(videos, desc="frames", disable=not progress):
        t0 = time.perf_counter()
        try:
            s = sample_frames(path, config, support, cache, backends)
            rec = s.record() | {"error": None, "ms": round((time.perf_counter() - t0) * 1000, 2)}
        except (VideoReadError, ValueError) as e:
            rec = {"video_path": str(path), "timestamps": [], "frame_indices": [], "backend": None,
                   "error": str(e), "ms": round((time.perf_counter() - t0) * 1000, 2)}
        result.records.append(rec)
    return result


def support_by_video(items) -> dict[str, list[float]]:
    """Resolved video path -> sorted union of its questions' support times (one decode per video)."""
    out: dict[str, set] = {}
    for it in items:
        out.setdefault(str(it.video_path), set()).update(round(float(t), 3) for t in it.support_frames)
    return {k: sorted(v) for k, v in out.items()}


def build_frames_index(items, config: SamplingConfig, cache_dir, output_dir, progress: bool = True):
    """Sample and cache every video of ``items`` once; write ``{output_dir}/frames_index.jsonl``.

    Runs a second pass to time cache hits. Returns (records, timing table as a list of dicts).
    In support mode a video's support times are the union over its questions.
    """
    videos = support_by_video(items)
    pairs = [(v, s if config.mode == "support" else None) for v, s in videos.items()]
    cache = FrameCache(cache_dir)
    timing = []
    result = None
    for label in ("first pass", "second pass (cache)"):
        t0 = time.perf_counter()
        res = extract_all(pairs, config, cache, progress=progress)
        ms = [r["ms"] for r in res.records if not r["error"]]
        backends: dict = {}
        for r in res.records:
            if r["backend"]:
                backends[r["backend"]] = backends.get(r["backend"], 0) + 1
        timing.append({"pass": label, "videos": len(res.records), "failed": len(res.failed),
                       "total_s": round(time.perf_counter() - t0, 2),
                       "median_ms": round(float(np.median(ms)), 2) if ms else None,
                       "p95_ms": round(float(np.percentile(ms, 95)), 2) if ms else None,
                       "backends": backends})
        result = result or res
    records = [{k: r.get(k) for k in ("video_path", "timestamps", "frame_indices", "error", "backend", "ms",
                                      "fps", "n_total_frames", "width", "height")} for r in result.records]
    write_jsonl(records, Path(output_dir) / "frames_index.jsonl")
    return records, timing


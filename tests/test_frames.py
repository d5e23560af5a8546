import time

import numpy as np
import pytest

from roadbuddy_utils.video import frames as F
from roadbuddy_utils.video.clips import barcode_clip, read_barcode


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Barcode clips: x264 defaults (GOP 250, B-frames) and a short GOP; 12.5 fps to test odd rates."""
    d = tmp_path_factory.mktemp("clips")
    return {"default": barcode_clip(d / "default.mp4", n_frames=150, fps=30, size=(320, 180)),
            "gop10": barcode_clip(d / "gop10.mp4", n_frames=150, fps=30, size=(320, 180), gop=10),
            "odd_fps": barcode_clip(d / "odd.mp4", n_frames=60, fps=12.5, size=(320, 180))}


def test_uniform_indices_are_segment_centres():
    assert F.uniform_indices(300, 4) == [37, 112, 187, 262]
    assert F.uniform_indices(10, 10) == list(range(10))
    assert F.uniform_indices(3, 8) == [0, 1, 2]  # never duplicates, never out of range
    assert F.uniform_indices(0, 4) == []


def test_support_indices_window_and_fill():
    info = F.VideoInfo("x", 30.0, 300, 1280, 720)
    # one support time: centre and +/-0.5 s, then filled to min_frames with uniform frames
    idx = F.support_indices(info, [5.0], 0.5, 4, 6)
    assert {150, 135, 165} <= set(idx) and len(idx) == 4
    # three support times: centres win over window edges when over max_frames
    idx = F.support_indices(info, [1.0, 5.0, 9.0], 0.5, 4, 6)
    assert len(idx) == 6 and {30, 150, 270} <= set(idx)
    # times past the end are clamped
    assert max(F.support_indices(info, [20.0], 0.5, 1, 3)) == 299
    assert idx == sorted(idx)


@pytest.mark.parametrize("backend", ["pyav", "decord", "opencv"])
@pytest.mark.parametrize("kind", ["default", "gop10", "odd_fps"])
def test_exact_frames_every_backend(clips, backend, kind):
    info = F.probe_video(clips[kind])
    for idx in (F.uniform_indices(info.n_frames, 8), [0, 1, info.n_frames - 1], [5, 5, 3],
                list(range(0, info.n_frames, 7))):
        frames, used, _ = F.decode_frames(clips[kind], idx, info, backends=(backend,))
        assert used == backend
        assert [read_barcode(f) for f in frames] == idx, (backend, kind, idx)


@pytest.mark.parametrize("kind", ["default", "odd_fps"])
def test_sampled_timestamps_are_exact(clips, kind):
    info = F.probe_video(clips[kind])
    s = F.sample_frames(clips[kind], F.SamplingConfig("uniform", n_frames=6, max_side=0))
    got = [read_barcode(f) for f in s.frames]
    assert got == s.frame_indices == F.uniform_indices(info.n_frames, 6)
    assert s.timestamps == pytest.approx([i / info.fps for i in got])
    s = F.sample_frames(clips[kind], F.SamplingConfig("support", min_frames=3, max_frames=5, max_side=0), [2.0])
    got = [read_barcode(f) for f in s.frames]
    assert got == s.frame_indices and round(2.0 * info.fps) in got
    assert any(abs(t - 2.0) < 1e-9 for t in s.timestamps)


def test_resize_bounds_the_longer_side(clips):
    info = F.probe_video(clips["default"])
    s = F.sample_frames(clips["default"], F.SamplingConfig(n_frames=2, max_side=100))
    assert s.frames.shape == (2, round(info.height * 100 / info.width), 100, 3) and s.frames.dtype == np.uint8


def test_support_mode_needs_support_times(clips):
    with pytest.raises(ValueError, match="support times"):
        F.sample_frames(clips["default"], F.SamplingConfig("support"))


def test_config_validation():
    with pytest.raises(ValueError):
        F.SamplingConfig(mode="random")
    with pytest.raises(ValueError):
        F.SamplingConfig(min_frames=5, max_frames=4)


def test_missing_empty_corrupt_videos_raise_one_error_type(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    for path, why in [(tmp_path / "nope.mp4", "not found"), (empty, "empty"), (corrupt, "cannot read")]:
        with pytest.raises(F.VideoReadError, match=why) as e:
            F.sample_frames(path)
        assert e.value.path == str(path) and str(path) in str(e.value)


def test_decoder_fallback(clips, monkeypatch):
    calls = []

    def broken(path, indices, info):
        calls.append("pyav")
        raise RuntimeError("simulated decoder failure")

    monkeypatch.setitem(F._DECODERS, "pyav", broken)
    s = F.sample_frames(clips["default"], F.SamplingConfig(n_frames=4, max_side=0))
    assert calls == ["pyav"] and s.backend == "decord"
    assert [read_barcode(f) for f in s.frames] == s.frame_indices
    monkeypatch.setitem(F._DECODERS, "decord", broken)
    assert F.sample_frames(clips["default"], F.SamplingConfig(n_frames=4)).backend == "opencv"
    monkeypatch.setitem(F._DECODERS, "opencv", broken)
    with pytest.raises(F.VideoReadError, match="no decoder could read it.*pyav.*decord.*opencv"):
        F.sample_frames(clips["default"], F.SamplingConfig(n_frames=4))


def test_cache_hit_miss_and_invalidation(clips, tmp_path):
    cache = F.FrameCache(tmp_path / "cache")
    cfg = F.SamplingConfig(n_frames=4, max_side=0)
    a = F.sample_frames(clips["gop10"], cfg, cache=cache)
    b = F.sample_frames(clips["gop10"], cfg, cache=cache)
    assert a.backend == "pyav" and b.backend == "cache"
    assert np.array_equal(a.frames, b.frames) and a.timestamps == b.timestamps and a.frame_indices == b.frame_indices
    assert len(list(cache.root.glob("*.npz"))) == 1
    assert F.sample_frames(clips["gop10"], F.SamplingConfig(n_frames=5, max_side=0), cache=cache).backend == "pyav"
    # a damaged cache file is recomputed, not fatal
    path = cache.path_for(clips["gop10"], cfg)
    path.write_bytes(b"garbage")
    assert F.sample_frames(clips["gop10"], cfg, cache=cache).backend == "pyav"
    assert F.sample_frames(clips["gop10"], cfg, cache=cache).backend == "cache"
    # no temp files left behind
    assert not list(cache.root.glob("*.tmp*"))


def test_cache_key_follows_the_file(tmp_path):
    clip = barcode_clip(tmp_path / "v.mp4", n_frames=30, fps=30, size=(160, 96))
    cache = F.FrameCache(tmp_path / "cache")
    k1 = cache.path_for(clip, F.SamplingConfig())
    barcode_clip(clip, n_frames=45, fps=30, size=(160, 96))  # replaced video
    assert cache.path_for(clip, F.SamplingConfig()) != k1


def test_cache_hit_at_least_10x_faster_than_decoding(tmp_path):
    clip = barcode_clip(tmp_path / "hd.mp4", n_frames=150, fps=30, size=(1280, 720))
    cache = F.FrameCache(tmp_path / "cache")
    cfg = F.SamplingConfig(n_frames=8)
    cold = min(_timed(lambda: F.sample_frames(clip, cfg)) for _ in range(3))
    F.sample_frames(clip, cfg, cache=cache)
    hit = min(_timed(lambda: F.sample_frames(clip, cfg, cache=cache)) for _ in range(5))
    assert hit * 10 <= cold, f"cache hit {hit * 1000:.1f} ms vs decode {cold * 1000:.1f} ms"


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_extract_all_records_failures_and_continues(clips, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    res = F.extract_all([(clips["gop10"], None), (bad, None), (tmp_path / "missing.mp4", None),
                         (clips["default"], None)], F.SamplingConfig(n_frames=3), progress=False)
    assert [r["error"] is None for r in res.records] == [True, False, False, True]
    assert "bad.mp4" in res.records[1]["error"] and "not found" in res.records[2]["error"]
    assert len(res.failed) == 2 and len(res.records[3]["timestamps"]) == 3

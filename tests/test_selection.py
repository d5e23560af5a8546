"""Test-time frame selection: picker, candidates and cache, scorers, fallbacks, 02 and 03 with select."""
import json

import numpy as np
import pytest

from roadbuddy_utils.common.files import read_jsonl
from roadbuddy_utils.data.questions import load_items
from roadbuddy_utils.data.split import make_split
from roadbuddy_utils.selection.measure import candidate_rows, evaluate_rows, question_ranking
from roadbuddy_utils.selection.run import near_support, run_selection, train_learned
from roadbuddy_utils.selection.selector import (
    EmbeddingModel,
    FrameSelector,
    LearnedScorer,
    SelectorConfig,
    VisionTowerFeatures,
    config_for_mode,
    pick_frames,
)
from roadbuddy_utils.video import frames as F
from roadbuddy_utils.video.clips import barcode_clip, read_barcode, write_video

QUESTIONS = {"light": ("Đèn tín hiệu giao thông phía trước đang có màu gì?", ["Đỏ", "Vàng", "Xanh"]),
             "speed": ("Biển báo giới hạn tốc độ tối đa xuất hiện trong video là bao nhiêu?", ["40 km/h", "50 km/h"])}


def _frame(t, events, w=128, h=72):
    """A grey road with a moving dash; each event is drawn only within 0.2 s of its time."""
    img = np.full((h, w, 3), (100, 110, 120), np.uint8)
    img[h // 2:] = (90, 90, 95)
    x = int((t * 20) % w)
    img[h // 2:h // 2 + 4, x:x + 6] = 230
    yy, xx = np.ogrid[:h, :w]
    for kind, t0 in events:
        if abs(t - t0) > 0.2:
            continue
        if kind == "light":  # a red disk
            img[(yy - h // 3) ** 2 + (xx - int(w * 0.6)) ** 2 <= (h // 5) ** 2] = (230, 30, 30)
        elif kind == "speed":  # a blue square
            img[h // 6:h // 6 + h // 3, int(w * 0.2):int(w * 0.2) + h // 3] = (30, 60, 220)
        else:  # a distractor no question asks about: a big yellow car, as salient as the events
            img[h // 2:h // 2 + h // 3, int(w * 0.4):int(w * 0.4) + w // 3] = (240, 240, 60)
    return img


def brief_clips(root, n_videos=20, seed=0, duration=8.0, fps=10):
    """Clips of 8 s where each event is visible for 0.4 s: two asked-about events and a distractor,
    at 2, 4 or 6 s (+/- 0.25): between the 4 uniform frames (1, 3, 5, 7 s), which therefore miss them."""
    rng = np.random.default_rng(seed)
    items = []
    for v in range(n_videos):
        t = rng.permutation([2.0, 4.0, 6.0]) + rng.uniform(-0.25, 0.25, 3)
        events = [("light", float(t[0])), ("speed", float(t[1])), ("car", float(t[2]))]
        name = f"v{v:03d}_synth_clip_{v}_0_{int(duration)}.mp4"
        write_video(root / "videos" / name, (_frame(i / fps, events) for i in range(int(duration * fps))), fps=fps)
        for kind, t0 in events[:2]:
            q, ch = QUESTIONS[kind]
            items.append({"id": f"train_{len(items) + 1:04d}", "question": q,
                          "choices": [f"{'ABC'[i]}. {c}" for i, c in enumerate(ch)], "answer": f"A. {ch[0]}",
                          "support_frames": [round(t0, 2)], "video_path": f"videos/{name}"})
    path = root / "train.json"
    path.write_text(json.dumps({"__count__": len(items), "data": items}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def brief(tmp_path_factory):
    root = tmp_path_factory.mktemp("brief")
    items = load_items(brief_clips(root))
    return root, items, make_split(items, 0.25, 0)


@pytest.fixture(scope="module")
def embedder():
    return EmbeddingModel("tiny:siglip")


@pytest.fixture(scope="module")
def trained(brief, embedder, tmp_path_factory):
    """A learned scorer fitted on the train side of the synthetic clips (embedding features), saved."""
    root, items, split = brief
    cfg = SelectorConfig(scorer="learned")
    sel = FrameSelector(cfg, embedder=embedder, cache=F.FrameCache(root / "cache"))
    train = [i for i in items if i.id in set(split["train_ids"])]
    scorers, report = train_learned(sel, train, cfg, ["embedding"], {"embedding": "tiny:siglip"}, progress=False)
    folder = scorers["embedding"].save(tmp_path_factory.mktemp("scorer") / "learned_scorer")
    return sel, scorers["embedding"], report, folder


# --------------------------------------------------------------------------- picker

def test_picker_keeps_spread_and_a_uniform_context_frame():
    times = np.arange(0, 8, 1 / 3)
    scores = -np.abs(times - 3.0)  # one peak at 3 s: its neighbours score almost as high
    pos = pick_frames(times, scores, 4, min_gap_s=0.5, context_frames=1)
    picked = times[pos]
    assert len(pos) == 4 and list(pos) == sorted(pos)
    assert np.min(np.diff(picked)) >= 0.5 - 1e-9  # no two within the gap
    assert 3.0 in np.round(picked, 6)  # the best frame is kept
    assert np.sum(np.abs(picked - 3.0) <= 1.0) == 3  # three scored picks around the peak ...
    assert np.max(np.abs(picked - 3.0)) >= 3.5  # ... and one context frame far from it (a uniform grid point)
    # no context: all four are top-scored, spaced by the gap
    pos0 = pick_frames(times, scores, 4, min_gap_s=0.5, context_frames=0)
    assert np.max(np.abs(times[pos0] - 3.0)) <= 4 / 3 + 1e-9 and np.min(np.diff(times[pos0])) >= 0.5 - 1e-9
    # two context frames; a gap larger than the clip still yields k frames; k >= candidates takes them all
    assert len(pick_frames(times, scores, 4, 0.5, context_frames=2)) == 4
    assert len(pick_frames(times, scores, 5, min_gap_s=100.0, context_frames=0)) == 5
    assert pick_frames(times[:3], scores[:3], 8) == [0, 1, 2]


def test_selector_config_validates_and_notebook_modes():
    with pytest.raises(ValueError, match="selector_scorer"):
        SelectorConfig(scorer="clip")
    with pytest.raises(ValueError, match="context_frames"):
        SelectorConfig(context_frames=3)
    with pytest.raises(FileNotFoundError, match="02_frames"):
        SelectorConfig(scorer="learned", path="/nonexistent/scorer")
    assert config_for_mode("uniform", scorer="learned") is None
    assert config_for_mode("select", scorer="embedding").scorer == "embedding"
    with pytest.raises(ValueError, match="frame_mode must be one of"):
        config_for_mode("support")


def test_hit_and_ranking_measures():
    assert near_support([0.0, 1.0, 2.0], [1.4], 0.5).tolist() == [False, True, False]
    assert not near_support([1.0], [], 0.5).any()
    auc, rr = question_ranking([0.1, 0.9, 0.5], [False, True, False])
    assert auc == 1.0 and rr == 1.0
    auc, rr = question_ranking([0.9, 0.1, 0.5], [False, True, False])
    assert auc == 0.0 and rr == pytest.approx(1 / 3)
    assert question_ranking([1, 2], [False, False]) == (None, None)


# --------------------------------------------------------------------------- candidates

def test_candidates_are_dense_exact_and_cached(tmp_path, embedder):
    clip = barcode_clip(tmp_path / "bar.mp4", n_frames=90, fps=30, size=(320, 180))
    cache = F.FrameCache(tmp_path / "cache")
    s1 = F.sample_frames(clip, F.SamplingConfig("uniform", n_frames=1, max_side=0), cache=cache,
                         selector=F.dense_selector(3.0))
    assert s1.frame_indices == F.uniform_indices(90, 9) == [5, 15, 25, 35, 45, 55, 65, 75, 85]
    assert s1.timestamps == pytest.approx([i / 30 for i in s1.frame_indices])
    assert [read_barcode(f) for f in s1.frames] == s1.frame_indices  # exactly the frames asked for
    s2 = F.sample_frames(clip, F.SamplingConfig("uniform", n_frames=1, max_side=0), cache=cache,
                         selector=F.dense_selector(3.0))
    assert s2.backend == "cache" and s2.frame_indices == s1.frame_indices
    assert np.array_equal(s2.frames, s1.frames)
    # another rate or cap is another cache entry, and the cap spreads candidates evenly
    capped = F.sample_frames(clip, F.SamplingConfig("uniform", n_frames=1, max_side=0), cache=cache,
                             selector=F.dense_selector(3.0, max_candidates=4))
    assert capped.backend != "cache" and capped.frame_indices == F.uniform_indices(90, 4)
    # the selector reads its candidates through the same cache: a second selector instance hits it
    cfg = SelectorConfig(scorer="embedding", max_side=112)
    FrameSelector(cfg, embedder=embedder, cache=cache).candidates(clip)
    cand, feats, _ = FrameSelector(cfg, embedder=embedder, cache=cache).candidates(clip)
    assert cand.backend == "cache" and feats["embedding"].shape == (9, 64)
    assert np.allclose(np.linalg.norm(feats["embedding"], axis=1), 1, atol=1e-4)


def _item(items, video):
    return next(i for i in items if i.video_path == video)


def test_too_short_clip_and_mid_decode_failure_fall_back_to_uniform(tmp_path, monkeypatch, embedder):
    short = write_video(tmp_path / "short.mp4", [np.full((64, 96, 3), 90, np.uint8)] * 2, fps=10)  # 0.2 s
    long = barcode_clip(tmp_path / "long.mp4", n_frames=120, fps=30, size=(160, 96))
    data = [{"id": f"train_{k}", "question": QUESTIONS["light"][0], "choices": ["A. Đỏ", "B. Vàng"], "answer": "A",
             "support_frames": [0.1], "video_path": v.name} for k, v in enumerate([short, long])]
    (tmp_path / "train.json").write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    items = load_items(tmp_path / "train.json")
    sel = FrameSelector(SelectorConfig(scorer="embedding", candidate_fps=3.0), embedder=embedder)
    sample, s = sel.select_or_uniform(items[0], 4, 224)
    assert s.fallback == "uniform" and "short.mp4" in s.error and "shorter than the candidate spacing" in s.error
    assert sample is not None and len(sample.frames) == 2 and s.timestamps == sample.timestamps

    real = dict(F._DECODERS)

    def failing(path, indices, info, _real=None):  # the dense decode breaks part-way, short reads work
        if len(indices) > 4:
            raise RuntimeError("corrupt packet at frame 61")
        return _real(path, indices, info)

    for name, fn in real.items():
        monkeypatch.setitem(F._DECODERS, name, lambda p, i, info, _real=fn: failing(p, i, info, _real))
    sample, s = sel.select_or_uniform(items[1], 4, 224)
    assert s.fallback == "uniform" and "long.mp4" in s.error and "corrupt packet" in s.error
    assert [read_barcode(f) for f in sample.frames] == F.uniform_indices(120, 4)
    # a clip that defeats uniform frames too: no frames, both reasons kept
    (tmp_path / "long.mp4").write_bytes(b"not a video")
    sel2 = FrameSelector(SelectorConfig(scorer="embedding"), embedder=embedder)
    sample, s = sel2.select_or_uniform(items[1], 4, 224)
    assert sample is None and s.timestamps == [] and "uniform frames failed too" in s.error


def test_embedding_checkpoint_missing_or_of_another_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        EmbeddingModel(str(tmp_path / "nowhere" / "siglip"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        EmbeddingModel(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="not a supported image-text embedding model"):
        EmbeddingModel("tiny:internvl")  # a VLM, not SigLIP / CLIP
    with pytest.raises(FileNotFoundError, match="no trained scorer"):
        LearnedScorer.load(tmp_path / "empty")


def test_learned_selector_needs_support_frames(brief, embedder):
    root, items, _ = brief
    from dataclasses import replace

    bare = [replace(i, support_frames=[]) for i in items[:4]]
    sel = FrameSelector(SelectorConfig(scorer="learned"), embedder=embedder)
    with pytest.raises(ValueError, match="support_frames.*none of the 4 training questions"):
        train_learned(sel, bare, sel.cfg, ["embedding"], {"embedding": "tiny:siglip"}, progress=False)


# --------------------------------------------------------------------------- scorers

def test_learned_scorer_ranks_support_frames_above_uniform(brief, trained):
    root, items, split = brief
    sel, scorer, report, folder = trained
    val = [i for i in items if i.id in set(split["val_ids"])]
    rows, failed = candidate_rows(sel, val, ["embedding"], progress=False)
    assert not failed and len(rows) == len(val) >= 8
    learned = evaluate_rows(rows, lambda r: scorer.scores(r.item, r.feats["embedding"]), sel.cfg)
    uniform = np.mean([near_support([t / r.fps for t in F.uniform_indices(r.n_total, 4)], r.item.support_frames).any()
                       for r in rows])
    assert uniform <= 0.25  # the events sit between the 4 uniform frames
    assert learned["hit_at_4"] >= 0.9 and learned["hit_at_4"] >= uniform + 0.2, (learned, uniform)
    assert learned["mrr"] > 0.7
    assert report["kept"] == "embedding" and report["curve"]["embedding"][-1]["n_questions"] == report["n_inner"]
    # saved and loaded: the same scores; the loaded selector picks frames near the support time
    loaded = FrameSelector.build(SelectorConfig(scorer="learned", path=str(folder)), cache=sel.cache)
    r = rows[0]
    assert np.allclose(LearnedScorer.load(folder).scores(r.item, r.feats["embedding"]),
                       scorer.scores(r.item, r.feats["embedding"]), atol=1e-4)
    sample, s = loaded.select_or_uniform(r.item, 4, 224)
    assert s.fallback is None and s.selector == "learned[embedding]" and len(s.scores) == 4
    assert sample.scores == pytest.approx(s.scores, abs=1e-5) and sample.timestamps == s.timestamps
    assert near_support(s.timestamps, r.item.support_frames).any()


def test_vision_tower_features_of_each_family(tiny_vlm):
    frames = np.random.default_rng(0).integers(0, 255, (3, 72, 128, 3), dtype=np.uint8)
    for family in ("internvl", "qwen2_5_vl"):
        f = VisionTowerFeatures(tiny_vlm(family, n_frames=2)).image_features(frames)
        assert f.shape == (3, 64) and np.isfinite(f).all() and not np.allclose(f[0], f[1])


# --------------------------------------------------------------------------- 02 and 03

def test_run_selection_writes_both_products_with_fallbacks(brief, trained, tmp_path):
    root, items, split = brief
    _, _, _, folder = trained
    cfg = SelectorConfig(scorer="learned", path=str(folder))
    m = run_selection(items, split, cfg, 4, tmp_path / "02", root / "cache", n_boot=100, progress=False,
                      log=lambda *_: None)
    lines = read_jsonl(tmp_path / "02" / "selected_frames.jsonl")
    assert [l["id"] for l in lines] == [i.id for i in items]
    assert {"id", "video_path", "timestamps", "scores", "selector", "error", "fallback"} <= set(lines[0])
    assert all(len(l["timestamps"]) == len(l["scores"]) == 4 for l in lines)
    saved = json.loads((tmp_path / "02" / "selection_metrics.json").read_text())
    assert saved["n"] == len(split["val_ids"]) and {"uniform", "embedding", "learned"} <= set(saved["hit_at_k"])
    for name in ("uniform", "learned"):
        assert set(saved["hit_at_k"][name]) == {"4", "8"}
        lo, hi = saved["hit_at_k_ci"][name]["4"]
        assert lo <= saved["hit_at_k"][name]["4"] <= hi
    assert saved["hit_at_k"]["learned"]["4"] > saved["hit_at_k"]["uniform"]["4"]
    assert {r["theme"] for r in saved["by_theme"]} >= {"lights", "speed_limits"}
    assert 0 < saved["cost"]["share_of_budget_median"] < 1


def test_03_with_select_records_the_selection_inside_the_question_time(brief, trained, tmp_path, tiny_vlm):
    from roadbuddy_utils.answer.batch import InferConfig, run_inference

    root, items, split = brief
    _, _, _, folder = trained
    val = [i for i in items if i.id in set(split["val_ids"])][:4]
    vlm = tiny_vlm("internvl", n_frames=4)
    cfg = InferConfig(batch_size=4, cache_dir=str(root / "cache"),
                      selector=SelectorConfig(scorer="learned", path=str(folder)))
    lines = run_inference(val, vlm, cfg, tmp_path / "03", progress=False)
    sel = {r["id"]: r for r in read_jsonl(tmp_path / "03" / "selected_frames.jsonl")}
    assert [l["id"] for l in lines] == [i.id for i in val] and set(sel) == {i.id for i in val}
    for l in lines:
        assert l["pred"] in "ABC" and l["selector"] == "learned" and l["n_frames"] == 4
        assert l["frame_times"] == pytest.approx(sel[l["id"]]["timestamps"], abs=1e-3)
        assert len(l["frame_scores"]) == 4 and 0 < l["selection_ms"] < l["time_ms"]
        assert l["selection_fallback"] is None
    # two questions share each clip: their frames differ (each question its own event)
    by_video = {}
    for l in lines:
        by_video.setdefault(l["video"], []).append(tuple(l["frame_times"]))
    assert any(len(set(v)) > 1 for v in by_video.values())
    # a plain run cannot be resumed into this output_dir
    with pytest.raises(ValueError, match="another run variant"):
        run_inference(val, vlm, InferConfig(batch_size=4), tmp_path / "03", progress=False)


class _FastVLM:
    """The wrapper's interface, answering instantly (the budget test times only the selection)."""

    def __init__(self, n_frames=4):
        from roadbuddy_utils.models.config import ModelConfig

        self.cfg = ModelConfig(n_frames=n_frames, max_pixels=12544)

    def describe(self):
        return {"model": "fast"}

    def render(self, ex, lang="vi"):
        return ex.item.id

    def answer(self, examples, scoring="likelihood", lang="vi", max_new_tokens=16):
        return [{"pred": "A", "scores": None, "raw": None, "source": "likelihood", "error": None} for _ in examples]


def test_time_budget_thins_candidates_before_model_frames(brief, tmp_path, monkeypatch):
    """Candidates cost 40 ms each (a slowed feature model): 24 of them for a clip's two questions
    break a 0.5 s budget, so later clips get fewer candidates, and the model keeps its 4 frames."""
    import time

    from roadbuddy_utils.answer.batch import InferConfig, run_inference

    real = EmbeddingModel.image_features

    def slow(self, frames):
        time.sleep(0.04 * len(frames))
        return real(self, frames)

    monkeypatch.setattr(EmbeddingModel, "image_features", slow)
    root, items, _ = brief
    cfg = InferConfig(batch_size=2, time_budget_s=0.5, selector=SelectorConfig(scorer="embedding"))
    lines = run_inference(items[:8], _FastVLM(), cfg, tmp_path, progress=False)
    first, later = lines[:2], lines[2:]
    assert all(l["n_candidates"] == 24 and l["reduced_candidates"] is None for l in first)
    # 64 -> 32 -> 16 (-> 8, or to the model's 4 frames, on a loaded machine: measured costs grow with the load):
    # halved until the clip's share fits the budget, never below the model's frame count
    assert all(l["reduced_candidates"] in (4, 8, 16) and l["n_candidates"] == l["reduced_candidates"] for l in later)
    assert all(l["n_frames"] == 4 and l["reduced_frames"] is None for l in later)
    # the clip's candidate time is inside each of its questions' time
    assert all(l["time_ms"] >= l["selection_ms"] >= l["n_candidates"] * 40 / 2 for l in later)


@pytest.mark.notebooks
def test_smoke_02_then_03_select(demo_small, tmp_path):
    """02 with frame_mode select on the small demo trains the learned scorer (both feature kinds) and
    selects; 03 with frame_mode select answers 4 public-test questions with that scorer."""
    from roadbuddy_utils.report.runner import run_profile

    root = demo_small / "traffic_buddy_train+public_test"
    out = tmp_path / "02"
    params = {"data_json": str(root / "train/train.json"), "videos_root": str(root), "output_dir": str(out),
              "cache_dir": str(tmp_path / "cache"), "split_file": str(tmp_path / "split.json"), "n_boot": 100}
    p03 = {"data_json": str(root / "public_test/public_test.json"), "videos_root": str(root),
           "answers_json": str(demo_small / "answers/public_test_answers.json"), "output_dir": str(tmp_path / "03"),
           "cache_dir": str(tmp_path / "cache"), "limit": 4, "selector_path": str(out / "learned_scorer")}
    m = run_profile("demo", only=["02_frames@select", "03_zero_shot@select"], output_root=tmp_path / "outputs",
                    extra_params={"02_frames@select": params, "03_zero_shot@select": p03}, prepare=False,
                    log=lambda *_: None)
    assert [n["status"] for n in m["notebooks"]] == ["ok", "ok"]
    assert m["notebooks"][0]["parameters"]["frame_mode"] == "select"
    items = load_items(root / "train/train.json")
    lines = read_jsonl(out / "selected_frames.jsonl")
    assert [l["id"] for l in lines] == [i.id for i in items]
    assert all({"id", "video_path", "timestamps", "scores", "selector", "error", "fallback"} <= set(l) for l in lines)
    assert all(len(l["timestamps"]) == 4 and l["selector"].startswith("learned[") for l in lines)
    metrics = json.loads((out / "selection_metrics.json").read_text())
    split = json.loads((tmp_path / "split.json").read_text())
    assert metrics["n"] == len(split["val_ids"]) > 0
    assert {"uniform", "learned", "learned[embedding]", "learned[vlm]", "embedding"} <= set(metrics["hit_at_k"])
    assert all(set(v) == {"4", "8"} for v in metrics["hit_at_k"].values())
    assert metrics["learned"]["kept"] in ("embedding", "vlm") and (out / "learned_scorer" / "scorer.npz").exists()
    for png in ("hit_rate", "learned_curve", "selection_strips"):
        assert (out / f"{png}.png").stat().st_size > 5_000, png
    assert (out / "frames_index.jsonl").exists()  # the uniform index stays
    answered = read_jsonl(tmp_path / "03" / "predictions.jsonl")
    assert len(answered) == 4 and all(l["selector"] == "learned" and len(l["frame_scores"]) == 4 for l in answered)
    assert len(read_jsonl(tmp_path / "03" / "selected_frames.jsonl")) == 4


def test_04_validates_with_the_frames_03_would_select(brief, trained, tmp_path):
    """04 with frame_mode select: validation questions get the selector's frames (the same ones 03's
    selector picks), their lines in selected_frames.jsonl, the hit rate in metrics' val_frames; the
    selector block survives the JSON round trip torchrun's launch uses."""
    from dataclasses import asdict

    from roadbuddy_utils.train.finetune import TrainConfig, config_from, train

    root, items, split = brief
    _, _, _, folder = trained
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps(split))
    cfg = TrainConfig(model="tiny:internvl", train_json=str(root / "train.json"), videos_root=str(root),
                      output_dir=str(tmp_path / "04"), split_file=str(split_file), cache_dir=str(root / "cache"),
                      loss="letters", batch_size=4, grad_accum=1, max_steps=2, eval_steps=2, n_frames=4,
                      train_frames=2, max_pixels=112 * 112, val_limit=6,
                      selector={"scorer": "learned", "path": str(folder)})
    assert isinstance(cfg.selector, SelectorConfig) and config_from(json.loads(json.dumps(asdict(cfg)))) == cfg
    m = train(cfg, log=lambda *_: None)
    val = [i for i in items if i.id in set(split["val_ids"])][:6]
    lines = read_jsonl(tmp_path / "04" / "selected_frames.jsonl")
    assert [l["id"] for l in lines] == [i.id for i in val]
    direct = FrameSelector.build(SelectorConfig(scorer="learned", path=str(folder)), cache=F.FrameCache(root / "cache"))
    for it, line in zip(val, lines):
        assert line["selector"] == "learned[embedding]" and line["fallback"] is None and len(line["scores"]) == 4
        assert line["timestamps"] == pytest.approx(direct.select(it, 4, 112)[1].timestamps, abs=1e-3)
    vf = m["val_frames"]
    assert vf["frame_mode"] == "select" and vf["selector"] == "learned[embedding]" and vf["n_with_support"] == 6
    hits = np.mean([near_support(l["timestamps"], it.support_frames).any() for it, l in zip(val, lines)])
    assert vf["hit_at_k"] == pytest.approx(hits, abs=1e-4) and vf["hit_at_k"] >= 0.5
    assert json.loads((tmp_path / "04" / "metrics.json").read_text())["val_frames"] == vf
    plain = train(TrainConfig(**(asdict(cfg) | {"selector": None, "output_dir": str(tmp_path / "u")})), log=lambda *_: None)
    assert plain["val_frames"] == {"frame_mode": "uniform", "k": 4} and not (tmp_path / "u/selected_frames.jsonl").exists()


# --------------------------------------------------------------------------- contrastive tuning of the embedding model

def test_contrastive_tuning_learns_the_asked_moment_and_saves_a_checkpoint(brief, tmp_path):
    """Frames near the support time as positives, the clip's other frames as negatives: on the
    synthetic clips (a red light and a blue sign, a yellow car as distractor) the tiny random SigLIP
    learns to rank the asked event's frames first on held-out videos; the saved folder loads as an
    embedding checkpoint (the selector_model of the embedding scorer) and scores like the tuned state."""
    from roadbuddy_utils.selection.tune import finetune_embedding

    root, items, split = brief
    train_items = [i for i in items if i.id in set(split["train_ids"])]
    cfg = SelectorConfig(scorer="embedding")
    path, rep = finetune_embedding(train_items, cfg, tmp_path / "tuned", cache=F.FrameCache(root / "cache"), steps=40,
                                   lr=1e-3, trainable="full", batch_size=6, eval_steps=20, progress=False,
                                   log=lambda *_: None)
    assert rep["n_heldout"] > 0 and [c["step"] for c in rep["curve"]] == [0, 20, 40]
    assert rep["best"]["mrr"] >= rep["before"]["mrr"] + 0.2, rep["curve"]
    assert json.loads((path / "tune_report.json").read_text())["best_step"] == rep["best_step"] > 0
    tuned = EmbeddingModel(str(path))
    base = EmbeddingModel("tiny:siglip")
    q = [i for i in train_items][:1]
    assert not np.allclose(tuned.text_features([q[0].question]), base.text_features([q[0].question]))
    with pytest.raises(ValueError, match="support_frames"):
        finetune_embedding([i.__class__(**{**i.__dict__, "support_frames": []}) for i in train_items[:4]], cfg,
                           tmp_path / "x", steps=1, progress=False)
    with pytest.raises(ValueError, match="lora' or 'full"):
        finetune_embedding(train_items, cfg, tmp_path / "x", trainable="half", progress=False)


def test_contrastive_tuning_with_lora_merges_into_a_plain_checkpoint(brief, tmp_path):
    from roadbuddy_utils.selection.tune import finetune_embedding

    root, items, split = brief
    train_items = [i for i in items if i.id in set(split["train_ids"])]
    path, rep = finetune_embedding(train_items, SelectorConfig(scorer="embedding"), tmp_path / "tuned",
                                   cache=F.FrameCache(root / "cache"), steps=4, lr=1e-3, trainable="lora",
                                   eval_steps=2, progress=False, log=lambda *_: None)
    assert rep["trainable"] == "lora" and not (path / "adapter_config.json").exists()
    assert EmbeddingModel(str(path)).model_type == "siglip"


def test_run_selection_measures_the_tuned_embedding_model(brief, tmp_path):
    root, items, split = brief
    m = run_selection(items, split, SelectorConfig(scorer="embedding"), 4, tmp_path / "02", root / "cache", n_boot=50,
                      tune_steps=4, tune_options={"trainable": "full", "eval_steps": 2, "batch_size": 4},
                      progress=False, log=lambda *_: None)
    assert {"uniform", "embedding", "embedding[tuned]"} <= set(m["hit_at_k"])
    assert set(m["hit_at_k"]["embedding[tuned]"]) == {"4", "8"} and "embedding[tuned]" in m["ranking"]
    assert any(r["selector"] == "embedding[tuned]" for r in m["by_theme"])
    assert m["tuned"]["path"] == str(tmp_path / "02" / "embedding_tuned") and (tmp_path / "02/embedding_tuned").is_dir()
    saved = json.loads((tmp_path / "02" / "selection_metrics.json").read_text())
    assert saved["hit_at_k"]["embedding[tuned]"] == m["hit_at_k"]["embedding[tuned]"]

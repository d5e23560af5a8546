import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from roadbuddy_utils.data import questions
from roadbuddy_utils.demo import dataset as D
from roadbuddy_utils.demo.dataset import QUESTION_TYPES, DemoConfig, generate
from roadbuddy_utils.video import frames as F
from tests.conftest import SMALL


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def _paths(root):
    return {"train": root / "traffic_buddy_train+public_test/train/train.json",
            "public_test": root / "traffic_buddy_train+public_test/public_test/public_test.json",
            "private_test": root / "traffic_buddy_private_test/private_test.json"}


def test_deterministic_by_seed(demo_small, tmp_path):
    cfg = DemoConfig(**{**SMALL.__dict__})
    generate(tmp_path / "again", cfg, progress=False)
    assert _digest(tmp_path / "again") == _digest(demo_small)
    generate(tmp_path / "other", DemoConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    assert _paths(tmp_path / "other")["train"].read_text() != _paths(demo_small)["train"].read_text()


def test_layout_format_and_quirks(demo_small):
    _check_layout_format_and_quirks(demo_small)


def _check_layout_format_and_quirks(root):
    p = _paths(root)
    raw = {k: json.loads(v.read_text(encoding="utf-8")) for k, v in p.items()}
    for k, doc in raw.items():
        assert set(doc) == {"__count__", "data"} and doc["__count__"] == len(doc["data"])
        summary, problems = questions.validate(v := p[k])
        assert problems == [], problems
        assert summary["missing_videos"] == [], v
    train = raw["train"]["data"]
    assert all(it["answer"] in it["choices"] and len(it["answer"]) > 3 for it in train)  # full-string answers
    assert all("_unused_" in it and it["support_frames"] for it in train)
    assert any(len(it["choices"]) == 8 for it in train)  # the doubled list
    assert {len(questions.normalise_choices(it["choices"])[0]) for it in train} == {2, 3, 4}
    # private test: paths relative to its own folder, no _Y/_N suffix, id gaps
    priv = raw["private_test"]["data"]
    assert all(it["video_path"].startswith("videos/") and not it["video_path"].endswith(("_Y.mp4", "_N.mp4"))
               for it in priv)
    assert all("answer" not in it and "support_frames" not in it for it in raw["public_test"]["data"] + priv)
    assert all(it["video_path"].startswith("public_test/videos/") for it in raw["public_test"]["data"])


def test_no_space_quirk_appears_in_full_size_train():
    # the "D.Text" quirk is drawn at random (about 5% of 4-choice items); check the generator's output text
    from roadbuddy_utils.demo.dataset import _choices

    assert _choices("speed", None, True, False)[-1] == "D.80 km/h"
    assert _choices("speed", None, False, True)[:4] == _choices("speed", None, False, True)[4:]


def test_events_never_overlap():
    from roadbuddy_utils.demo.dataset import EVENT_HALF_WINDOW_S, _plan_video, _RoundRobin

    rng = np.random.default_rng(0)
    robins = {t: _RoundRobin(v[3], rng) for t, v in QUESTION_TYPES.items()}
    for _ in range(300):
        duration, events, questions = _plan_video(rng, DemoConfig(), robins)
        times = sorted(t for _, _, t in questions)
        assert all(b - a > 2 * EVENT_HALF_WINDOW_S for a, b in zip(times, times[1:])), times
        assert all(EVENT_HALF_WINDOW_S - 1e-9 <= t <= duration - EVENT_HALF_WINDOW_S + 1e-9 for t in times)


def test_fixed_choice_order_and_balanced_gold_per_type(demo_small):
    items = questions.load_items(_paths(demo_small)["train"])
    by_choices = defaultdict(list)
    for it in items:
        by_choices[tuple(t for _, t in it.choices)].append(it.answer)
    assert set(by_choices) <= {tuple(v[1]) for v in QUESTION_TYPES.values()}
    for texts, golds in by_choices.items():
        c = Counter(golds)
        assert max(c.values()) - min(c.get(l, 0) for l in "ABCD"[:len(texts)]) <= 2, (texts, c)


def _colour_share(frame, rgb, tol=40):
    return float((np.abs(frame.astype(int) - np.array(rgb)).max(axis=2) < tol).mean())


def test_answers_are_visible_at_the_support_time(demo_small):
    """Light colour and no-parking presence can be read off the frame at the support time."""
    items = questions.load_items(_paths(demo_small)["train"])
    cfg = F.SamplingConfig("support", min_frames=1, max_frames=1, max_side=0)
    checked = Counter()
    for it in items:
        texts = [t for _, t in it.choices]
        if texts == QUESTION_TYPES["light"][1]:
            f = F.sample_frames(it.video_path, cfg, it.support_frames).frames[0]
            shares = {"A": _colour_share(f, (235, 30, 30)), "B": _colour_share(f, (250, 215, 0)),
                      "C": _colour_share(f, (20, 220, 60))}
            assert max(shares, key=shares.get) == it.answer, (it.id, shares)
            checked["light"] += 1
        elif texts in (QUESTION_TYPES["presence"][1], QUESTION_TYPES["presence_tf"][1]):
            # the no-parking sign is the only event with blue and red together (events never overlap)
            s = F.sample_frames(it.video_path, F.SamplingConfig(n_frames=24, max_side=0))
            both = max(min(_colour_share(f, (20, 70, 210)), _colour_share(f, (220, 20, 20))) for f in s.frames)
            assert (both > 0.005) == (it.answer == "A"), (it.id, both)
            checked["presence"] += 1
    assert checked["light"] >= 2 and checked["presence"] >= 2


def test_default_size_well_under_50mb(demo_small):
    per_video = sum(p.stat().st_size for p in demo_small.rglob("*.mp4")) / len(list(demo_small.rglob("*.mp4")))
    d = DemoConfig()
    n = d.n_train_videos + d.n_public_videos + d.n_private_videos
    assert per_video * n < 40e6, f"estimated {per_video * n / 1e6:.1f} MB"
    assert d.max_events == 1 and d.n_train_videos >= 850  # one question per clip, ~900 training questions


# --------------------------------------------------------------------------- brief-event variant

BRIEF = DemoConfig(variant="brief", seed=1, n_train_videos=8, n_public_videos=2, n_private_videos=2)
# demo_config.json of the default variant as it was before variants existed (SMALL)
OLD_CONFIG_KEYS = ["seed", "n_train_videos", "n_public_videos", "n_private_videos", "width", "height", "fps",
                   "min_duration_s", "max_duration_s", "max_events"]


@pytest.fixture(scope="module")
def demo_brief(tmp_path_factory):
    root = tmp_path_factory.mktemp("brief")
    generate(root, BRIEF, progress=False)
    return root


def test_default_variant_files_are_as_before(demo_small):
    """The JSON, answers and config of the default variant hash as the generator's did before variants."""
    h = hashlib.sha256()
    for rel in ["traffic_buddy_train+public_test/train/train.json",
                "traffic_buddy_train+public_test/public_test/public_test.json",
                "traffic_buddy_private_test/private_test.json", "answers/public_test_answers.json",
                "answers/private_test_answers.json", "demo_config.json"]:
        h.update((demo_small / rel).read_bytes())
    assert h.hexdigest() == "5406873f2a5b99b39e5ec23bd5a5c8d342081de06f79267d8fee7143ac3145e2"
    assert list(json.loads((demo_small / "demo_config.json").read_text())) == OLD_CONFIG_KEYS


def test_variant_knobs_and_bad_values():
    b = DemoConfig(variant="brief")
    assert (b.min_duration_s, b.max_duration_s, b.event_half_window_s) == (8, 15, 0.3)
    assert b.sign_distractors >= 1 and b.car_passes >= 1 and b.tree_passes >= 1 and 500 <= b.n_train_videos <= 600
    assert DemoConfig(variant="brief", max_duration_s=9).max_duration_s == 9  # a knob overrides the preset
    assert b.x264_preset == "veryfast" and DemoConfig().x264_preset is None  # x264's own default for the default
    assert DemoConfig(**D.config_record(b)) == b  # demo_config.json round-trips
    with pytest.raises(ValueError, match="brief"):
        DemoConfig(variant="short")
    with pytest.raises(ValueError, match="support_noise_s"):
        DemoConfig(variant="brief", support_noise_s=0.3)


def test_brief_layout_quirks_and_item_shapes(demo_brief, demo_small):
    _check_layout_format_and_quirks(demo_brief)
    for split, path in _paths(demo_brief).items():
        keys = {tuple(it) for it in json.loads(path.read_text(encoding="utf-8"))["data"]}
        default_keys = {tuple(it) for it in json.loads(_paths(demo_small)[split].read_text(encoding="utf-8"))["data"]}
        assert keys == default_keys, split
    assert sorted(p.name for p in (demo_brief / "answers").iterdir()) == ["private_test_answers.json",
                                                                          "public_test_answers.json"]
    assert json.loads((demo_brief / "demo_config.json").read_text())["variant"] == "brief"


def test_brief_clip_durations(demo_brief):
    videos = sorted(demo_brief.rglob("*.mp4"))
    assert len(videos) == 12
    durations = [F.probe_video(v).duration_s for v in videos]
    assert all(8 <= d <= 15 for d in durations), durations
    assert max(durations) - min(durations) >= 2  # drawn across the range, not one length


def _mp4(root, clip):
    return root / clip.video


def test_event_visible_only_within_its_window(demo_brief):
    """Decoded frames: the event's pixels are there on the first and last frame of its window and
    at its time, and gone one frame before and after; the window is at most 0.6 s (9 frames)."""
    checked = 0
    for clip in D.replay(demo_brief)[0].clips[:6]:
        for qid, q in clip.questions.items():
            if not q["drawn"]:
                continue
            inside = [i for i in range(D.n_clip_frames(clip.duration_s, clip.fps))
                      if D.event_visible(i / clip.fps, q["time"], clip.half_window_s)]
            assert 1 <= len(inside) <= 9 and (inside[-1] - inside[0]) / clip.fps <= 0.6 + 1e-9
            probe = [inside[0] - 1, inside[0], round(q["time"] * clip.fps), inside[-1], inside[-1] + 1]
            frames, _, _ = F.decode_frames(_mp4(demo_brief, clip), probe)
            shown = []
            for i, f in zip(probe, frames):
                e = D.event_evidence(f, i / clip.fps, clip, qid)
                shown.append(e["event_mae"] < e["scene_mae"])
                assert min(e["event_mae"], e["scene_mae"]) < 20, (qid, i, e)  # one render matches the pixels (up to h264)
            assert shown == [False, True, True, True, False], (qid, probe, shown)
            checked += 1
    assert checked >= 3


def test_distractors_present_and_never_beside_the_event(demo_brief):
    clips = [c for sp in D.replay(demo_brief) for c in sp.clips]
    for clip in clips:
        kinds = Counter(d["kind"] for d in clip.distractors)
        assert kinds["car"] >= 1 and kinds["tree"] >= 1 and kinds["info"] + kinds["board"] >= 1, kinds
        for d in clip.distractors:
            if d["kind"] in ("info", "board"):
                gaps = [abs(d["time"] - q["time"]) for q in clip.questions.values()]
                assert min(gaps) >= 2 * clip.half_window_s + D.SIGN_GAP_S, (clip.video, d, gaps)
    # decoded: each distractor of one clip is in its frame (closer to the render with it than without)
    clip = clips[0]
    bg = D._background(*clip.size, clip.night)
    for d in clip.distractors:
        t = d["time"] if "time" in d else d["start"] + 0.8 * d["dur"]  # a passing car / tree, near the camera
        i = min(D.n_clip_frames(clip.duration_s, clip.fps) - 1, max(0, round(t * clip.fps)))
        t = i / clip.fps
        rest = [o for o in clip.distractors if o is not d]
        with_d = D.render_scene(bg, t, clip.events, clip.half_window_s, tuple(clip.distractors)).astype(int)
        without = D.render_scene(bg, t, clip.events, clip.half_window_s, tuple(rest)).astype(int)
        mask = np.abs(with_d - without).max(axis=2) > 40
        if mask.sum() < 20:  # out of frame at this moment (a car leaving the picture)
            continue
        f = F.decode_frames(_mp4(demo_brief, clip), [i])[0][0].astype(int)
        assert np.abs(f - with_d)[mask].mean() < np.abs(f - without)[mask].mean(), (clip.video, d)
    # the information sign really is blue in the decoded picture
    info = next((c, d) for c in clips for d in c.distractors if d["kind"] == "info")
    f = F.decode_frames(_mp4(demo_brief, info[0]), [round(info[1]["time"] * info[0].fps)])[0][0]
    assert _colour_share(f, (30, 90, 200)) > 0.02


def test_brief_answers_readable_at_the_support_time(demo_brief):
    """Distractors never spoil the answer at the support time: light colour and no-parking presence
    read off that one frame (measured on the full brief set, seed 0: 161 / 161 lights, 142 / 142 presence)."""
    cfg = F.SamplingConfig("support", min_frames=1, max_frames=1, max_side=0)
    checked = Counter()
    for it in questions.load_items(_paths(demo_brief)["train"]):
        texts = [t for _, t in it.choices]
        f = F.sample_frames(it.video_path, cfg, it.support_frames).frames[0]
        if texts == QUESTION_TYPES["light"][1]:
            shares = {"A": _colour_share(f, (235, 30, 30)), "B": _colour_share(f, (250, 215, 0)),
                      "C": _colour_share(f, (20, 220, 60))}
            assert max(shares, key=shares.get) == it.answer, (it.id, shares)
            checked["light"] += 1
        elif texts in (QUESTION_TYPES["presence"][1], QUESTION_TYPES["presence_tf"][1]):
            both = min(_colour_share(f, (20, 70, 210)), _colour_share(f, (220, 20, 20)))
            assert (both > 0.005) == (it.answer == "A"), (it.id, both)
            checked["presence"] += 1
    assert checked["light"] >= 2 and checked["presence"] >= 2


def test_uniform_frames_mostly_miss_the_brief_event():
    """Analytic, on a planned (not rendered) dataset: the share of questions whose 4 uniform frames show no event frame."""
    def windows(cfg):
        return [D.EventWindow(qid, sp.split, c.video, q["kind"], q["time"], c.half_window_s, c.fps,
                              D.n_clip_frames(c.duration_s, c.fps), q["drawn"])
                for sp in D.plan_dataset(cfg) for c in sp.clips for qid, q in c.questions.items()]

    m4, n = D.uniform_miss(windows(DemoConfig(variant="brief", n_train_videos=200, n_public_videos=0,
                                              n_private_videos=0)), 4)
    assert n >= 150 and m4 / n >= 0.5, (m4, n)  # measured 0.76 at full size; 0.4 is the bound
    m0, n0 = D.uniform_miss(windows(DemoConfig(n_train_videos=200, n_public_videos=0, n_private_videos=0)), 4)
    assert n0 >= 150 and m0 == 0  # the default variant: 4 uniform frames always catch the event


def test_uniform_miss_on_a_hand_built_case():
    # 8 s at 15 fps: 4 uniform frames at 15, 45, 75, 105 = 1.0, 3.0, 5.0, 7.0 s
    def w(t, drawn=True):
        return D.EventWindow("q", "train", "v.mp4", "light", t, 0.3, 15, 120, drawn)

    assert w(1.2).shows([1.0]) and w(0.75).shows([1.0]) and not w(1.31).shows([1.0])
    assert D.uniform_miss([w(1.2), w(2.0), w(4.0), w(6.75), w(2.0, drawn=False)], 4) == (2, 4)
    assert D.uniform_miss([w(2.0)], 8) == (1, 1) and D.uniform_miss([w(1.5)], 8) == (0, 1)  # 8 frames: 0.5, 1.5, ...
    assert D.visible_window(2.0, 0.3) == (1.7, 2.3)


def test_event_windows_match_the_json_and_replay_checks_it(demo_brief, tmp_path):
    ws = D.event_windows(demo_brief)
    raw = {it["id"]: it for p in _paths(demo_brief).values() for it in json.loads(p.read_text(encoding="utf-8"))["data"]}
    assert set(ws) == set(raw)
    for qid, it in raw.items():
        w = ws[qid]
        assert w.video_path == it["video_path"] and w.half_window_s == 0.3
        if "support_frames" in it:
            assert abs(it["support_frames"][0] - w.time) <= BRIEF.support_noise_s + 1e-9
            assert w.shows(it["support_frames"]) == w.drawn  # the support time always shows a drawn event
    # a folder whose JSON the generator would not write is refused, naming the file
    import shutil

    copy = tmp_path / "copy"
    for rel in [*(p.relative_to(demo_brief) for p in _paths(demo_brief).values()), Path("demo_config.json")]:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_brief / rel, copy / rel)
    train = _paths(copy)["train"]
    doc = json.loads(train.read_text(encoding="utf-8"))
    doc["data"][3]["support_frames"] = [0.0]
    train.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.json: item train_0004"):
        D.replay(copy)
    with pytest.raises(FileNotFoundError, match="demo_config.json"):
        D.event_windows(tmp_path / "nothing")


def test_cli_writes_the_brief_variant(tmp_path):
    from roadbuddy_utils.__main__ import main

    assert main(["demo-data", str(tmp_path / "d"), "--variant", "brief", "--seed", "3", "--train-videos", "2",
                 "--test-videos", "1"]) == 0
    cfg = json.loads((tmp_path / "d/demo_config.json").read_text())
    assert (cfg["variant"], cfg["seed"], cfg["n_train_videos"], cfg["event_half_window_s"]) == ("brief", 3, 2, 0.3)
    assert len(list((tmp_path / "d").rglob("*.mp4"))) == 4

"""A small, RoadBuddy-shaped demo dataset with clips whose answers are visible in the frames.

    python -m roadbuddy_utils demo-data outputs/demo/data --seed 0
    python -m roadbuddy_utils demo-data outputs/demo_brief/data --variant brief   # uniform frames miss

Each clip is a road seen from a car (sky, road with moving lane dashes, verge) on which a few
*events* appear around their support times: a traffic light (red / yellow / green), a speed-limit
sign (40 / 50 / 60 / 80), a direction sign (left / right / straight), a no-parking sign (present
or not) and a group of 1-4 warning triangles. Every question asks about one event, so its answer
is decidable from frames near the support time.

Design choices that let a tiny model learn from random weights (see
shared/reference/stack-notes.md, "Learning from random weights"): facts are drawn large and
salient (lamps and signs several patches wide at the tiny models' 112 px); each question type
always lists its choices in one fixed order, and the gold values of each type cycle through a
seeded round-robin so gold letters are balanced and the text alone stays at chance. By default a
clip shows one event (``max_events=1``): measured on the tiny models, with 2-4 events per clip the
uniform frames 03 samples hold same-coloured distractors (a red speed-sign ring next to a red
light) and learning from random weights stalled near 0.55 within the 10-minute budget, while the
same model reached 0.85 on frames around the asked event (benchmarks/RESULTS.md). The file format reproduces the real data's quirks (2/3/4 choices, one doubled 8-entry
choice list, ``"D.Text"`` without a space, full-string answers, an unknown ``_unused_`` field,
private-test paths relative to their own folder, id gaps).

Variants (``DemoConfig.variant``; each is a preset of the knobs in ``VARIANTS``, any knob can be
overridden): ``default`` (5-6 s clips, the event on screen for +/- 0.8 s: 4 uniform frames always
catch it) and ``brief`` (8-15 s clips, the event on screen for +/- 0.3 s, i.e. at most 9 frames =
0.6 s at 15 fps, plus distractors that change the picture as much as the event: passing cars,
trees, blue information signs where the round signs stand or overhead, advertising boards on the
verge or a dark message board where the light hangs, the signs never near an event's time;
encoded with x264 "veryfast"). In ``brief`` only the question says which moment matters: uniform
frames miss the asked event for most questions, and the frame that differs most from the clip's
median frame shows it for few (benchmarks/uniform_miss.py measures both).
The default variant's files are byte-identical to those of the generator before variants existed.

Ground truth for frame selectors: ``event_visible`` is the renderer's own visibility rule, and
``event_windows(OUT)`` replays the generator's plan from ``OUT/demo_config.json`` (checked item
by item against the written JSON) to give every question its event time and visible window.

Layout (as distributed)::

    OUT/traffic_buddy_train+public_test/train/train.json, train/videos/*.mp4
    OUT/traffic_buddy_train+public_test/public_test/public_test.json, public_test/videos/*.mp4
    OUT/traffic_buddy_private_test/private_test.json, videos/*.mp4
    OUT/answers/{public,private}_test_answers.json   (demo only: gold letters for offline scoring)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..video.clips import write_video
from .scene import (  # noqa: F401 (re-exported)
    EVENT_HALF_WINDOW_S,
    _background,
    event_visible,
    n_clip_frames,
    render_clip,
    render_scene,
    visible_window,
)

# Question types: template, fixed choice texts, event kind, value per choice (same order).
QUESTION_TYPES = {
    "light": ("Đèn tín hiệu giao thông phía trước đang có màu gì?",
              ["Đỏ", "Vàng", "Xanh"], "light", ["red", "yellow", "green"]),
    "speed": ("Biển báo giới hạn tốc độ tối đa xuất hiện trong video là bao nhiêu?",
              ["40 km/h", "50 km/h", "60 km/h", "80 km/h"], "speed", [40, 50, 60, 80]),
    "arrow": ("Biển chỉ dẫn trong video cho phép xe đi theo hướng nào?",
              ["Rẽ trái", "Rẽ phải", "Đi thẳng"], "arrow", ["left", "right", "straight"]),
    "presence": ("Trong video có xuất hiện biển báo cấm đỗ xe không?",
                 ["Có", "Không"], "noparking", [True, False]),
    "presence_tf": ("Video có biển báo cấm đỗ xe bên đường, đúng hay sai?",
                    ["Đúng", "Sai"], "noparking", [True, False]),
    "count": ("Có bao nhiêu biển báo nguy hiểm hình tam giác xuất hiện cùng lúc",
              ["1 biển", "2 biển", "3 biển", "4 biển"], "count", [1, 2, 3, 4]),
}
# Mix of question types: most weight on the facts a random tiny model can learn (light, presence).
TYPE_WEIGHTS = {"light": 0.28, "presence": 0.14, "presence_tf": 0.1, "count": 0.2, "speed": 0.16, "arrow": 0.12}
LETTERS = "ABCDEFGH"


# Presets per variant for the knobs left at None in DemoConfig.
VARIANTS = {
    "default": {"n_train_videos": 900, "min_duration_s": 5, "max_duration_s": 6,
                "event_half_window_s": EVENT_HALF_WINDOW_S, "sign_distractors": 0, "car_passes": 0, "tree_passes": 0,
                "x264_preset": None},
    # twice the seconds of video per clip: x264 "veryfast" (half the encoding CPU of x264's default)
    # keeps 600 train clips cheap: 648 clips in 242 s of CPU (measured; the default variant ~330 s)
    "brief": {"n_train_videos": 600, "min_duration_s": 8, "max_duration_s": 15,
              "event_half_window_s": 0.3, "sign_distractors": 3, "car_passes": 3, "tree_passes": 4,
              "x264_preset": "veryfast"},
}
# Knobs added with the variants: left out of the default variant's demo_config.json when at their
# default values, so that file (and ensure()'s reuse of existing data) is as before.
_VARIANT_KNOBS = ("variant", "event_half_window_s", "support_noise_s", "sign_distractors", "car_passes", "tree_passes",
                  "x264_preset")
SIGN_GAP_S = 0.6  # a sign distractor's window starts at least this long after an event's window ends


@dataclass
class DemoConfig:
    seed: int = 0
    n_train_videos: int | None = None  # default 900 (one question per clip with max_events=1), brief 600
    n_public_videos: int = 24
    n_private_videos: int = 24
    width: int = 256
    height: int = 144
    fps: int = 15
    min_duration_s: int | None = None  # clip length in whole seconds: default 5-6, brief 8-15
    max_duration_s: int | None = None
    max_events: int = 1  # events (and questions) per clip; more events = distractor frames
    variant: str = "default"  # preset for the knobs left at None: "default" | "brief"
    event_half_window_s: float | None = None  # an event is on screen for +/- this around its time
    support_noise_s: float = 0.2  # train support_frames = event time +/- up to this (inside the window)
    sign_distractors: int | None = None  # per clip: blue information sign / advertising board, never beside an event
    car_passes: int | None = None  # per clip: cars passing on the left (at any time)
    tree_passes: int | None = None  # per clip: roadside trees passing on either side (at any time)
    x264_preset: str | None = None  # encoder speed: default variant x264's own default, brief "veryfast"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"demo variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        for k, v in VARIANTS[self.variant].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        if not 1 <= self.min_duration_s <= self.max_duration_s:
            raise ValueError(f"need 1 <= min_duration_s <= max_duration_s, got {self.min_duration_s}, "
                             f"{self.max_duration_s}")
        if not 0 <= self.support_noise_s < self.event_half_window_s:
            raise ValueError(f"support_noise_s ({self.support_noise_s}) must be below event_half_window_s "
                             f"({self.event_half_window_s}), or support_frames could point at frames without the event")
        if self.min_duration_s < 2 * self.event_half_window_s + 1:
            raise ValueError(f"clips of {self.min_duration_s} s are too short for an event window of "
                             f"+/- {self.event_half_window_s} s; raise min_duration_s")


def config_record(cfg: DemoConfig) -> dict:
    """What demo_config.json holds (and ensure() compares): every knob, except that the default
    variant leaves out the variant knobs at their default values (its file is as it always was)."""
    d = dict(cfg.__dict__)
    if cfg.variant == "default":
        base = DemoConfig().__dict__
        d = {k: v for k, v in d.items() if k not in _VARIANT_KNOBS or v != base[k]}
    return d


# --------------------------------------------------------------------------- dataset

class _RoundRobin:
    """Seeded, balanced cycling over a list of values (so gold letters stay balanced)."""

    def __init__(self, values, rng):
        self.values, self.rng, self.queue = list(values), rng, []

    def next(self):
        if not self.queue:
            self.queue = list(self.rng.permutation(len(self.values)))
        return self.values[self.queue.pop()]


def _plan_video(rng, cfg: DemoConfig, robins: dict) -> tuple[float, list[dict], list[tuple[str, object, float]]]:
    """Choose duration, events and the questions asked about them."""
    duration = int(rng.integers(cfg.min_duration_s, cfg.max_duration_s + 1))
    types = list(TYPE_WEIGHTS)
    p = np.array([TYPE_WEIGHTS[t] for t in types])
    # events never overlap on screen (each is visible for +/- its half window), so every
    # answer stays decidable: at most as many events as fit in the clip
    hw = cfg.event_half_window_s
    min_gap = 2 * hw + 0.1
    k_max = int((duration - 2 * hw) // min_gap) + 1
    ks = np.arange(1, cfg.max_events + 1)
    k = min(k_max, int(rng.choice(ks, p=np.array([0.2, 0.35, 0.3, 0.15][:len(ks)]) / sum([0.2, 0.35, 0.3, 0.15][:len(ks)]))))
    chosen: list[str] = []
    for t in rng.choice(types, size=len(types), replace=False, p=p / p.sum()):
        kind = QUESTION_TYPES[t][2]
        if kind not in [QUESTION_TYPES[c][2] for c in chosen]:
            chosen.append(str(t))
        if len(chosen) == k:
            break
    lo, hi = hw, duration - hw
    if len(chosen) == 1:
        slots = np.array([rng.uniform(lo + 0.5, hi - 0.5)])
    else:
        spacing = (hi - lo) / (len(chosen) - 1)
        slack = min(0.3, (spacing - min_gap) / 2)
        slots = np.linspace(lo, hi, num=len(chosen)) + rng.uniform(-slack, slack, size=len(chosen))
        slots = np.clip(slots, lo, hi)
    events, questions = [], []
    for qtype, t in zip(chosen, rng.permutation(slots)):
        kind = QUESTION_TYPES[qtype][2]
        value = robins[qtype].next()
        t = float(round(float(t), 2))
        if kind != "noparking" or value:
            events.append({"kind": kind, "value": value, "time": t})
        questions.append((qtype, value, t))
    return float(duration), events, questions


def _plan_distractors(rng, cfg: DemoConfig, duration: float, event_times: list[float]) -> list[dict]:
    """Sign distractors (as brief as an event, never within SIGN_GAP_S of an event's window, so
    frames near a support time show only the asked event), then passing cars and trees (any time)."""
    hw, out, taken = cfg.event_half_window_s, [], list(event_times)
    for k in range(cfg.sign_distractors):
        for _ in range(50):  # rejection sampling; a sign that finds no free time is left out
            t = float(round(rng.uniform(hw, duration - hw), 2))
            if all(abs(t - u) >= 2 * hw + SIGN_GAP_S for u in taken):
                taken.append(t)
                out.append({"kind": ("board", "info", "board")[k % 3], "time": t, "style": int(rng.integers(3))})
                break
    for kind, n in (("car", cfg.car_passes), ("tree", cfg.tree_passes)):
        for _ in range(n):
            dur = float(round(rng.uniform(0.8, 1.4), 2))
            d = {"kind": kind, "start": float(round(rng.uniform(-0.5, duration - dur + 0.5), 2)), "dur": dur,
                 "style": int(rng.integers(5))}
            d.update({"oncoming": bool(rng.random() < 0.5)} if kind == "car" else {"side": int(rng.choice([-1, 1]))})
            out.append(d)
    return out


def _choices(qtype: str, rng, quirk_nospace: bool, quirk_double: bool) -> list[str]:
    texts = QUESTION_TYPES[qtype][1]
    out = [f"{LETTERS[i]}.{t}" if (quirk_nospace and i == len(texts) - 1) else f"{LETTERS[i]}. {t}"
           for i, t in enumerate(texts)]
    return out + out if quirk_double else out


def _question_text(qtype: str, rng) -> str:
    q = QUESTION_TYPES[qtype][0].rstrip("?:")
    return q + str(rng.choice(["?", ":", "", "?"]))


@dataclass
class ClipPlan:
    """Everything needed to render one clip again (and to know what each of its questions asks about)."""
    split: str
    video: str  # path relative to the output folder
    duration_s: float
    fps: int
    size: tuple[int, int]
    night: bool
    noise_seed: int
    half_window_s: float
    events: list[dict]  # drawn events: kind, value, time
    distractors: list[dict]
    questions: dict  # item id -> {"kind", "value", "time", "drawn"} (no-parking "absent" is not drawn)

    def frames(self):
        return render_clip(self.events, self.duration_s, self.fps, self.size, self.night, self.noise_seed,
                           self.half_window_s, tuple(self.distractors))


@dataclass
class SplitPlan:
    split: str
    json_path: str  # relative to the output folder
    items: list[dict]  # exactly the JSON "data" list
    gold: dict  # test splits: id -> letter (answers/ folder)
    clips: list[ClipPlan]


_SPLITS = [("train", "traffic_buddy_train+public_test/train", "train/videos", "train"),
           ("public_test", "traffic_buddy_train+public_test/public_test", "public_test/videos", "testa"),
           ("private_test", "traffic_buddy_private_test", "videos", "testb")]


def plan_dataset(cfg: DemoConfig) -> list[SplitPlan]:
    """The whole dataset as data, no files: deterministic for a given config (one random stream,
    drawn in the same order as ever for the default variant; distractors use their own streams)."""
    rng = np.random.default_rng(cfg.seed)
    robins = {t: _RoundRobin(QUESTION_TYPES[t][3], np.random.default_rng([cfg.seed, i])) for i, t in enumerate(QUESTION_TYPES)}
    n_by_split = {"train": cfg.n_train_videos, "public_test": cfg.n_public_videos, "private_test": cfg.n_private_videos}
    plans = []
    for s_no, (split, folder, rel_dir, prefix) in enumerate(_SPLITS):
        items, gold, clips, qid, doubled = [], {}, [], 0, False
        for v in range(n_by_split[split]):
            duration, events, questions = _plan_video(rng, cfg, robins)
            night = bool(rng.random() < 0.3)
            vid_hash = hashlib.sha1(f"{cfg.seed}-{split}-{v}".encode()).hexdigest()[:8]
            start = int(rng.integers(0, 60))
            name = f"{vid_hash}_demo_clip_{v}_{start}_{start + int(duration)}"
            name += f"_{'Y' if events else 'N'}.mp4" if split != "private_test" else ".mp4"
            distractors = _plan_distractors(np.random.default_rng([cfg.seed, s_no, v, 1]), cfg, duration,
                                            [t for _, _, t in questions])
            clip = ClipPlan(split, f"{folder}/videos/{name}", duration, cfg.fps, (cfg.width, cfg.height), night,
                            int(rng.integers(1 << 30)), cfg.event_half_window_s, events, distractors, {})
            for qtype, value, t in questions:
                qid += 1 + (int(rng.random() < 0.15) if split == "private_test" else 0)  # id gaps
                values = QUESTION_TYPES[qtype][3]
                letter = LETTERS[values.index(value)]
                quirk_double = split == "train" and not doubled and len(values) == 4 and len(items) >= 5
                doubled = doubled or quirk_double
                quirk_nospace = len(QUESTION_TYPES[qtype][1]) == 4 and rng.random() < 0.05
                choices = _choices(qtype, rng, quirk_nospace, quirk_double)
                item = {"id": f"{prefix}_{qid:04d}", "question": _question_text(qtype, rng), "choices": choices}
                full_answer = next(c for c in choices if c.startswith(letter))
                if split == "train":
                    item["answer"] = full_answer
                    item["support_frames"] = [round(t + float(rng.uniform(-cfg.support_noise_s, cfg.support_noise_s)), 2)]
                item["video_path"] = f"{rel_dir}/{name}"
                if split == "train":
                    item["_unused_"] = hashlib.md5(item["id"].encode()).hexdigest()
                else:
                    gold[item["id"]] = letter
                kind = QUESTION_TYPES[qtype][2]
                clip.questions[item["id"]] = {"kind": kind, "value": value, "time": t,
                                              "drawn": kind != "noparking" or bool(value)}
                items.append(item)
            clips.append(clip)
        plans.append(SplitPlan(split, f"{folder}/{split}.json", items, gold, clips))
    return plans


def generate(out_dir, cfg: DemoConfig | None = None, progress: bool = True) -> dict:
    """Write the dataset; returns {split: json path}. Deterministic for a given seed."""
    from tqdm.auto import tqdm

    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    paths = {}
    for sp in plan_dataset(cfg):
        for clip in tqdm(sp.clips, desc=f"demo {sp.split}", disable=not progress, mininterval=10):
            write_video(out / clip.video, clip.frames(), fps=cfg.fps, preset=cfg.x264_preset)
        json_path = out / sp.json_path
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"__count__": len(sp.items), "data": sp.items}, ensure_ascii=False, indent=1),
                             encoding="utf-8")
        paths[sp.split] = json_path
        if sp.gold:
            (out / "answers").mkdir(parents=True, exist_ok=True)
            (out / "answers" / f"{sp.split}_answers.json").write_text(json.dumps(sp.gold, indent=1), encoding="utf-8")
    (out / "answers").mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(config_record(cfg), indent=1), encoding="utf-8")
    return paths


def ensure(out_dir, cfg: DemoConfig | None = None) -> dict:
    """Generate once: reuse the dataset if it exists with the same config."""
    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    marker = out / "demo_config.json"
    if marker.exists() and json.loads(marker.read_text()) == config_record(cfg):
        return {sp: out / path for sp, path in [(s, f"{folder}/{s}.json") for s, folder, _, _ in _SPLITS]}
    return generate(out, cfg)


# --------------------------------------------------------------------------- ground truth for selectors

def replay(out_dir) -> list[SplitPlan]:
    """The plan of a generated demo folder, from its demo_config.json, checked against its JSON files."""
    out = Path(out_dir)
    marker = out / "demo_config.json"
    if not marker.exists():
        raise FileNotFoundError(f"{marker}: not found; {out} is not a generated demo folder "
                                f"(python -m roadbuddy_utils demo-data {out} [--variant brief] writes one)")
    plans = plan_dataset(DemoConfig(**json.loads(marker.read_text())))
    for sp in plans:
        path = out / sp.json_path
        written = json.loads(path.read_text(encoding="utf-8"))["data"] if path.exists() else None
        if written != sp.items:
            bad = "file missing" if written is None else next(
                (f"item {a.get('id')}" for a, b in zip(written, sp.items) if a != b), "item count")
            raise ValueError(f"{path}: {bad} differs from what this generator plans for {marker} (written by "
                             f"another version of demo_data?); regenerate the folder with demo-data")
    return plans


@dataclass(frozen=True)
class EventWindow:
    """Where one question's event is on screen; ``drawn`` False: nothing to see (no-parking "absent")."""
    id: str
    split: str
    video_path: str  # as in the JSON item
    kind: str
    time: float  # the event's true time (support_frames add up to support_noise_s to it)
    half_window_s: float
    fps: int
    n_frames: int
    drawn: bool

    def shows(self, timestamps) -> bool:
        """Does any of these frame times (seconds, frame_index / fps) show the event?"""
        return self.drawn and any(event_visible(t, self.time, self.half_window_s) for t in timestamps)


def event_windows(out_dir) -> dict[str, EventWindow]:
    """{item id: EventWindow} for every question of a generated demo folder (all splits)."""
    out = {}
    for sp in replay(out_dir):
        paths = {it["id"]: it["video_path"] for it in sp.items}
        for clip in sp.clips:
            n = n_clip_frames(clip.duration_s, clip.fps)
            for qid, q in clip.questions.items():
                out[qid] = EventWindow(qid, sp.split, paths[qid], q["kind"], q["time"], clip.half_window_s,
                                       clip.fps, n, q["drawn"])
    return out


def uniform_miss(windows, k: int) -> tuple[int, int]:
    """(questions whose ``k`` uniform frames (segment centres, as frames.uniform_indices) show no
    frame of their event, questions with a drawn event)."""
    from ..video.frames import uniform_indices

    drawn = [w for w in windows if w.drawn]
    misses = sum(not w.shows([i / w.fps for i in uniform_indices(w.n_frames, k)]) for w in drawn)
    return misses, len(drawn)


def event_evidence(frame: np.ndarray, t: float, clip: ClipPlan, qid: str, threshold: int = 40) -> dict:
    """Compare a decoded full-size frame at time ``t`` with the clip rendered at ``t`` with and
    without question ``qid``'s event: inside the event's pixels (where those two renders differ),
    the mean absolute error to each. ``event_mae < scene_mae`` means the event is in the frame."""
    q = clip.questions[qid]
    others = [e for e in clip.events if e["time"] != q["time"]]
    bg = _background(clip.size[0], clip.size[1], clip.night)
    shown = q if event_visible(t, q["time"], clip.half_window_s) else {**q, "time": t}
    with_ev = render_scene(bg, t, others + [shown], clip.half_window_s, tuple(clip.distractors)).astype(int)
    without = render_scene(bg, t, others, clip.half_window_s, tuple(clip.distractors)).astype(int)
    mask = np.abs(with_ev - without).max(axis=2) > threshold
    if not mask.any():
        raise ValueError(f"{clip.video}: question {qid} has no event pixels to compare (not drawn)")
    f = frame.astype(int)
    return {"event_mae": float(np.abs(f - with_ev)[mask].mean()), "scene_mae": float(np.abs(f - without)[mask].mean()),
            "event_pixels": int(mask.sum())}

"""A small, RoadBuddy-shaped demo dataset with clips whose answers are visible in the frames.

    python -m roadbuddy_utils demo-data outputs/demo/data --seed 0

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

from .video_io import write_video

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
EVENT_HALF_WINDOW_S = 0.8  # an event is on screen for +/- this around its support time


@dataclass
class DemoConfig:
    seed: int = 0
    n_train_videos: int = 900  # one question per clip by default (max_events=1)
    n_public_videos: int = 24
    n_private_videos: int = 24
    width: int = 256
    height: int = 144
    fps: int = 15
    min_duration_s: int = 5
    max_duration_s: int = 6
    max_events: int = 1  # events (and questions) per clip; more events = distractor frames


# --------------------------------------------------------------------------- drawing

_COLOURS = {"red": (235, 30, 30), "yellow": (250, 215, 0), "green": (20, 220, 60)}


def _background(w: int, h: int, night: bool) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(h * 0.42)
    top, bottom = ((15, 20, 45), (40, 45, 80)) if night else ((110, 160, 225), (190, 215, 240))
    for y in range(horizon):
        a = y / max(1, horizon - 1)
        img[y] = [int(top[c] * (1 - a) + bottom[c] * a) for c in range(3)]
    img[horizon:] = (40, 70, 35) if night else (80, 130, 60)
    import cv2

    road = np.array([[int(w * 0.44), horizon], [int(w * 0.56), horizon], [w, h], [0, h]], np.int32)
    cv2.fillPoly(img, [road], (60, 60, 65) if night else (105, 105, 110))
    return img


def _draw_dashes(img: np.ndarray, t: float) -> None:
    import cv2

    h, w = img.shape[:2]
    horizon = int(h * 0.42)
    phase = (t * 1.5) % 1.0
    for k in range(6):
        d0 = ((k + phase) / 6) ** 2
        d1 = ((k + phase + 0.45) / 6) ** 2
        y0, y1 = horizon + d0 * (h - horizon), horizon + min(d1, 1) * (h - horizon)
        half0, half1 = 1 + d0 * w * 0.012, 1 + min(d1, 1) * w * 0.012
        pts = np.array([[w / 2 - half0, y0], [w / 2 + half0, y0], [w / 2 + half1, y1], [w / 2 - half1, y1]], np.int32)
        cv2.fillPoly(img, [pts], (235, 235, 235))


def _draw_event(img: np.ndarray, kind: str, value, grow: float) -> None:
    """Draw one event big and salient; ``grow`` in [0.85, 1.15] mimics approaching it."""
    import cv2

    h, w = img.shape[:2]
    r = int(h * 0.27 * grow)  # sign radius: large on purpose (see module docstring)
    cx, cy = int(w * 0.74), int(h * 0.36)
    if kind == "light":  # a horizontal light (common on Vietnamese streets), lamps a few patches wide
        lr = int(h * 0.16 * grow)  # lamp radius
        bw, bh = int(lr * 6.9), int(lr * 2.5)
        lx, ly = int(w * 0.55), int(h * 0.22)
        cv2.line(img, (lx + bw // 2, ly), (lx + bw // 2, h), (50, 50, 50), max(2, lr // 3))
        cv2.rectangle(img, (lx - bw // 2, ly - bh // 2), (lx + bw // 2, ly + bh // 2), (25, 25, 25), -1)
        for k, name in enumerate(["red", "yellow", "green"]):
            col = _COLOURS[name] if name == value else (55, 55, 55)
            cv2.circle(img, (lx - bw // 2 + int((k + 0.5) * bw / 3), ly), lr, col, -1)
        return
    if kind == "count":
        n = int(value)
        side = int(h * 0.3 * grow)
        gap = int(side * 1.15)
        x0 = w // 2 - (n * gap) // 2
        for k in range(n):
            x = x0 + k * gap + gap // 2
            tri = np.array([[x, int(h * 0.12)], [x - side // 2, int(h * 0.12) + side], [x + side // 2, int(h * 0.12) + side]], np.int32)
            cv2.fillPoly(img, [tri], (200, 20, 20))
            inner = np.array([[x, int(h * 0.12) + side // 4], [x - side // 3, int(h * 0.12) + side - side // 8],
                              [x + side // 3, int(h * 0.12) + side - side // 8]], np.int32)
            cv2.fillPoly(img, [inner], (255, 220, 0))
        return
    cv2.line(img, (cx, cy + r), (cx, h), (90, 90, 90), max(2, r // 6))
    if kind == "speed":
        cv2.circle(img, (cx, cy), r, (220, 20, 20), -1)
        cv2.circle(img, (cx, cy), int(r * 0.74), (255, 255, 255), -1)
        text = str(value)
        scale = r / 26
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, r // 12))
        cv2.putText(img, text, (cx - tw // 2, cy + th // 2), cv2.FONT_HERSHEY_DUPLEX, scale, (0, 0, 0), max(1, r // 12))
    elif kind == "arrow":
        cv2.circle(img, (cx, cy), r, (20, 70, 210), -1)
        d = int(r * 0.65)
        tip = {"left": (cx - d, cy), "right": (cx + d, cy), "straight": (cx, cy - d)}[value]
        tail = {"left": (cx + d, cy), "right": (cx - d, cy), "straight": (cx, cy + d)}[value]
        cv2.arrowedLine(img, tail, tip, (255, 255, 255), max(2, r // 4), tipLength=0.5)
    elif kind == "noparking":
        cv2.circle(img, (cx, cy), r, (220, 20, 20), -1)
        cv2.circle(img, (cx, cy), int(r * 0.72), (20, 70, 210), -1)
        d = int(r * 0.5)
        cv2.line(img, (cx - d, cy - d), (cx + d, cy + d), (220, 20, 20), max(2, r // 5))
        cv2.line(img, (cx - d, cy + d), (cx + d, cy - d), (220, 20, 20), max(2, r // 5))


def render_clip(events: list[dict], duration_s: float, fps: int, size: tuple[int, int], night: bool,
                noise_seed: int = 0):
    """Yield RGB frames; each event dict has kind, value, time (s)."""
    w, h = size
    bg = _background(w, h, night)
    rng = np.random.default_rng(noise_seed)
    n = int(round(duration_s * fps))
    for i in range(n):
        t = i / fps
        img = bg.copy()
        _draw_dashes(img, t)
        for ev in events:
            dt = t - ev["time"]
            if abs(dt) <= EVENT_HALF_WINDOW_S:
                _draw_event(img, ev["kind"], ev["value"], 1.0 + 0.15 * dt / EVENT_HALF_WINDOW_S)
        jitter = rng.integers(-4, 5, size=(1, 1, 3))  # a little camera exposure flicker
        yield np.clip(img.astype(np.int16) + jitter, 0, 255).astype(np.uint8)


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
    # events never overlap on screen (each is visible for +/- EVENT_HALF_WINDOW_S), so every
    # answer stays decidable: at most as many events as fit in the clip
    min_gap = 2 * EVENT_HALF_WINDOW_S + 0.1
    k_max = int((duration - 2 * EVENT_HALF_WINDOW_S) // min_gap) + 1
    ks = np.arange(1, cfg.max_events + 1)
    k = min(k_max, int(rng.choice(ks, p=np.array([0.2, 0.35, 0.3, 0.15][:len(ks)]) / sum([0.2, 0.35, 0.3, 0.15][:len(ks)]))))
    chosen: list[str] = []
    for t in rng.choice(types, size=len(types), replace=False, p=p / p.sum()):
        kind = QUESTION_TYPES[t][2]
        if kind not in [QUESTION_TYPES[c][2] for c in chosen]:
            chosen.append(str(t))
        if len(chosen) == k:
            break
    lo, hi = EVENT_HALF_WINDOW_S, duration - EVENT_HALF_WINDOW_S
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


def _choices(qtype: str, rng, quirk_nospace: bool, quirk_double: bool) -> list[str]:
    texts = QUESTION_TYPES[qtype][1]
    out = [f"{LETTERS[i]}.{t}" if (quirk_nospace and i == len(texts) - 1) else f"{LETTERS[i]}. {t}"
           for i, t in enumerate(texts)]
    return out + out if quirk_double else out


def _question_text(qtype: str, rng) -> str:
    q = QUESTION_TYPES[qtype][0].rstrip("?:")
    return q + str(rng.choice(["?", ":", "", "?"]))


def generate(out_dir, cfg: DemoConfig | None = None, progress: bool = True) -> dict:
    """Write the dataset; returns {split: json path}. Deterministic for a given seed."""
    from tqdm.auto import tqdm

    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    robins = {t: _RoundRobin(QUESTION_TYPES[t][3], np.random.default_rng([cfg.seed, i])) for i, t in enumerate(QUESTION_TYPES)}
    root_tp = out / "traffic_buddy_train+public_test"
    root_priv = out / "traffic_buddy_private_test"
    splits = [("train", cfg.n_train_videos, root_tp / "train", "train/videos", "train"),
              ("public_test", cfg.n_public_videos, root_tp / "public_test", "public_test/videos", "testa"),
              ("private_test", cfg.n_private_videos, root_priv, "videos", "testb")]
    paths, answers = {}, {}
    for split, n_videos, folder, rel_dir, prefix in splits:
        items, qid, doubled = [], 0, False
        for v in tqdm(range(n_videos), desc=f"demo {split}", disable=not progress, mininterval=10):
            duration, events, questions = _plan_video(rng, cfg, robins)
            night = bool(rng.random() < 0.3)
            vid_hash = hashlib.sha1(f"{cfg.seed}-{split}-{v}".encode()).hexdigest()[:8]
            start = int(rng.integers(0, 60))
            name = f"{vid_hash}_demo_clip_{v}_{start}_{start + int(duration)}"
            name += f"_{'Y' if events else 'N'}.mp4" if split != "private_test" else ".mp4"
            video_file = folder / "videos" / name
            write_video(video_file, render_clip(events, duration, cfg.fps, (cfg.width, cfg.height), night,
                                                noise_seed=int(rng.integers(1 << 30))), fps=cfg.fps)
            for qtype, value, t in questions:
                qid += 1 + (int(rng.random() < 0.15) if split == "private_test" else 0)  # id gaps
                values = QUESTION_TYPES[qtype][3]
                gold = LETTERS[values.index(value)]
                quirk_double = split == "train" and not doubled and len(values) == 4 and len(items) >= 5
                doubled = doubled or quirk_double
                quirk_nospace = len(QUESTION_TYPES[qtype][1]) == 4 and rng.random() < 0.05
                choices = _choices(qtype, rng, quirk_nospace, quirk_double)
                item = {"id": f"{prefix}_{qid:04d}", "question": _question_text(qtype, rng), "choices": choices}
                full_answer = next(c for c in choices if c.startswith(gold))
                if split == "train":
                    item["answer"] = full_answer
                    item["support_frames"] = [round(t + float(rng.uniform(-0.2, 0.2)), 2)]
                item["video_path"] = f"{rel_dir}/{name}"
                if split == "train":
                    item["_unused_"] = hashlib.md5(item["id"].encode()).hexdigest()
                else:
                    answers.setdefault(split, {})[item["id"]] = gold
                items.append(item)
        json_path = (folder / f"{split}.json")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"__count__": len(items), "data": items}, ensure_ascii=False, indent=1),
                             encoding="utf-8")
        paths[split] = json_path
    ans_dir = out / "answers"
    ans_dir.mkdir(parents=True, exist_ok=True)
    for split, gold in answers.items():
        (ans_dir / f"{split}_answers.json").write_text(json.dumps(gold, indent=1), encoding="utf-8")
    (out / "demo_config.json").write_text(json.dumps(cfg.__dict__, indent=1), encoding="utf-8")
    return paths


def ensure(out_dir, cfg: DemoConfig | None = None) -> dict:
    """Generate once: reuse the dataset if it exists with the same config."""
    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    marker = out / "demo_config.json"
    if marker.exists() and json.loads(marker.read_text()) == cfg.__dict__:
        return {"train": out / "traffic_buddy_train+public_test/train/train.json",
                "public_test": out / "traffic_buddy_train+public_test/public_test/public_test.json",
                "private_test": out / "traffic_buddy_private_test/private_test.json"}
    return generate(out, cfg)

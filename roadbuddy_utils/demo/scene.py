"""Drawing the demo's road scenes: background, lane dashes, events and distractors, one frame or a clip.

    from roadbuddy_utils.demo.scene import render_clip
    frames = list(render_clip([{"kind": "light", "value": "red", "time": 2.0}], 5, 15, (256, 144), night=False))

Used by demo_data (the generated dataset, its ground truth) and benchmarks/frames.py. Events are
drawn large on purpose (see demo_data's docstring); ``event_visible`` is the one rule that decides
in which frames an event or a sign distractor appears, so ground truth computed with it matches
the pixels.
"""
from __future__ import annotations

import numpy as np

EVENT_HALF_WINDOW_S = 0.8  # default variant: an event is on screen for +/- this around its time


def event_visible(t: float, event_time: float, half_window_s: float) -> bool:
    """The renderer's rule: an event (or sign distractor) is drawn in the frame at time ``t`` iff this holds.

    An exact float comparison (a frame exactly on the edge may fall either side), so ground truth
    must call this function rather than re-derive the window."""
    return abs(t - event_time) <= half_window_s


def visible_window(event_time: float, half_window_s: float) -> tuple[float, float]:
    """(first, last) time in seconds at which the event is on screen."""
    return event_time - half_window_s, event_time + half_window_s


def n_clip_frames(duration_s: float, fps: float) -> int:
    return int(round(duration_s * fps))


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


# Distractor colours stay off the event palettes (lamp red/yellow/green, sign red) so that every
# answer stays decidable at its support time; the information sign shares the arrow sign's blue on purpose.
_CAR_COLOURS = [(225, 225, 230), (165, 168, 175), (35, 35, 40), (110, 75, 50), (30, 130, 140)]
_BOARD_COLOURS = [(240, 130, 30), (140, 50, 170), (40, 190, 200)]
_INFO_BLUE = (30, 90, 200)


def _draw_info_sign(img: np.ndarray, style: int, grow: float) -> None:
    """A blue information sign of about an event's area: styles 0-1 stand where the round signs
    stand ("H" / text lines), style 2 hangs overhead where the traffic light hangs (a direction panel)."""
    import cv2

    h, w = img.shape[:2]
    r = int(h * 0.27 * grow)
    if style == 2:
        cx, cy, hw_, hh = int(w * 0.55), int(h * 0.22), int(h * 0.55 * grow), int(h * 0.2 * grow)
        cv2.line(img, (cx + hw_, cy), (cx + hw_, h), (50, 50, 50), max(2, r // 8))
    else:
        cx, cy, hw_, hh = int(w * 0.74), int(h * 0.36), int(r * 1.1), int(r * 0.9)
        cv2.line(img, (cx, cy + hh), (cx, h), (90, 90, 90), max(2, r // 6))
    cv2.rectangle(img, (cx - hw_, cy - hh), (cx + hw_, cy + hh), _INFO_BLUE, -1)
    cv2.rectangle(img, (cx - hw_ + 3, cy - hh + 3), (cx + hw_ - 3, cy + hh - 3), (255, 255, 255), max(1, r // 14))
    if style == 0:  # "H" (hospital)
        cv2.putText(img, "H", (cx - r // 3, cy + r // 3), cv2.FONT_HERSHEY_DUPLEX, r / 30, (255, 255, 255), max(1, r // 10))
    else:  # text lines (place names)
        for k in range(2):
            y = cy - hh // 3 + k * (2 * hh) // 3
            cv2.line(img, (cx - hw_ // 2, y), (cx + hw_ // 2, y), (255, 255, 255), max(2, r // 8))


def _draw_board(img: np.ndarray, style: int, grow: float) -> None:
    """An advertising board of about an event's area: styles 0-1 on two legs on the left verge,
    style 2 a dark overhead message board (amber text) of the traffic light's size and place."""
    import cv2

    h, w = img.shape[:2]
    if style == 2:
        lr = int(h * 0.16 * grow)  # the light's lamp radius: same box as the light
        bw, bh, cx, cy = int(lr * 6.9), int(lr * 2.5), int(w * 0.55), int(h * 0.22)
        cv2.line(img, (cx - bw // 2, cy), (cx - bw // 2, h), (50, 50, 50), max(2, lr // 3))
        cv2.rectangle(img, (cx - bw // 2, cy - bh // 2), (cx + bw // 2, cy + bh // 2), (25, 25, 25), -1)
        for k in (-1, 1):
            y = cy + k * bh // 5
            cv2.line(img, (cx - bw // 3, y), (cx + bw // 3, y), _BOARD_COLOURS[0], max(2, lr // 3))
        return
    bw, bh = int(w * 0.46 * grow), int(h * 0.4 * grow)
    cx, cy = int(w * 0.24), int(h * 0.27)
    for x in (cx - bw // 3, cx + bw // 3):
        cv2.line(img, (x, cy), (x, int(h * 0.62)), (70, 70, 70), 3)
    col = _BOARD_COLOURS[style % len(_BOARD_COLOURS)]
    cv2.rectangle(img, (cx - bw // 2, cy - bh // 2), (cx + bw // 2, cy + bh // 2), col, -1)
    cv2.rectangle(img, (cx - bw // 2 + 4, cy - bh // 4), (cx + bw // 6, cy), (245, 245, 245), -1)
    cv2.circle(img, (cx + bw // 3, cy + bh // 8), bh // 4, (30, 30, 30), -1)


def _draw_car(img: np.ndarray, s: float, oncoming: bool, colour: int) -> None:
    """A car on the left lane at pass progress ``s`` in [0, 1]: oncoming grows from the horizon,
    overtaking shrinks towards it; near the camera it is as large as an event sign."""
    import cv2

    h, w = img.shape[:2]
    horizon = int(h * 0.42)
    p = s * s if oncoming else (1 - s) ** 2  # nearness: 0 at the horizon, 1 beside the camera
    cw = w * (0.05 + 0.5 * p)
    ch = cw * 0.55
    cx, bottom = w * (0.45 - 0.33 * p), horizon + 3 + p * (h * 0.97 - horizon - 3)
    col = _CAR_COLOURS[colour % len(_CAR_COLOURS)]
    pt = lambda x, y: (int(cx + x * cw), int(bottom - y * ch))  # noqa: E731  car-relative coordinates
    cv2.rectangle(img, pt(-0.5, 0.6), pt(0.5, 0.1), col, -1)
    cv2.rectangle(img, pt(-0.33, 1.0), pt(0.33, 0.6), col, -1)
    cv2.rectangle(img, pt(-0.27, 0.92), pt(0.27, 0.64), (40, 50, 60), -1)  # windscreen
    for x in (-0.33, 0.33):
        cv2.circle(img, pt(x, 0.12), max(1, int(ch * 0.16)), (15, 15, 15), -1)


def _draw_tree(img: np.ndarray, s: float, side: int, shade: int) -> None:
    """A roadside tree at pass progress ``s``: from the horizon out of the frame on ``side`` (-1 / 1)."""
    import cv2

    h, w = img.shape[:2]
    horizon = int(h * 0.42)
    p = s * s
    x, base = int(w / 2 + side * w * (0.1 + 0.55 * p)), int(horizon + p * (h * 0.75 - horizon))
    trunk, r = int(4 + 50 * p), int(3 + 40 * p)
    cv2.line(img, (x, base), (x, base - trunk), (90, 60, 35), max(1, r // 4))
    cv2.circle(img, (x, base - trunk - r // 2), r, ((35, 105, 40), (55, 125, 45))[shade % 2], -1)


def _draw_distractor(img: np.ndarray, d: dict, t: float, half_window_s: float) -> None:
    if d["kind"] in ("info", "board"):
        if event_visible(t, d["time"], half_window_s):
            grow = 1.0 + 0.15 * (t - d["time"]) / half_window_s
            (_draw_info_sign if d["kind"] == "info" else _draw_board)(img, d["style"], grow)
        return
    s = (t - d["start"]) / d["dur"]
    if 0 <= s <= 1:
        if d["kind"] == "car":
            _draw_car(img, s, d["oncoming"], d["style"])
        else:
            _draw_tree(img, s, d["side"], d["style"])


def render_scene(bg: np.ndarray, t: float, events: list[dict], half_window_s: float = EVENT_HALF_WINDOW_S,
                 distractors: tuple = ()) -> np.ndarray:
    """One frame without the exposure flicker: road, distractors, then the events visible at ``t`` on top."""
    img = bg.copy()
    _draw_dashes(img, t)
    for d in distractors:
        _draw_distractor(img, d, t, half_window_s)
    for ev in events:
        dt = t - ev["time"]
        if event_visible(t, ev["time"], half_window_s):
            _draw_event(img, ev["kind"], ev["value"], 1.0 + 0.15 * dt / half_window_s)
    return img


def render_clip(events: list[dict], duration_s: float, fps: int, size: tuple[int, int], night: bool,
                noise_seed: int = 0, half_window_s: float = EVENT_HALF_WINDOW_S, distractors: tuple = ()):
    """Yield RGB frames; each event dict has kind, value, time (s); distractors as _plan_distractors makes them."""
    import cv2

    w, h = size
    bg = _background(w, h, night)
    rng = np.random.default_rng(noise_seed)
    for i in range(n_clip_frames(duration_s, fps)):
        img = render_scene(bg, i / fps, events, half_window_s, distractors)
        jitter = rng.integers(-4, 5, size=3)  # a little camera exposure flicker
        # cv2.add saturates like np.clip(img + jitter, 0, 255), about 15x faster
        yield cv2.add(img, tuple(float(j) for j in jitter) + (0.0,))

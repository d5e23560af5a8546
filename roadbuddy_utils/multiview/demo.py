"""Stand-in six-camera data for the multi-camera demo: fixture questions, drawn images, a small KB.

    paths = make_demo_multiview("outputs/demo/mv", n=24, seed=0)
    paths = ensure_demo_multiview("outputs/demo/multiview")   # the same, skipped when already there (06)
    items, problems = load_multiview(paths["questions"], image_root=paths["image_root"])

No real nuScenes image may be shipped, so each frame gets six small drawn images (one colour per
camera, the camera name written on it, a box with the object id where a question's tag points):
enough for the pipeline to run end to end and for a tiny model to see distinct inputs; nothing
about the answers is visible in them.

Questions are a seeded mix of the two fixture files kept in the package
(``roadbuddy_utils/multiview/fixtures/``, written by ``scripts/make_mv_fixtures.py`` in the real files'
shapes; no real question is shipped): questions shaped as RoboSense phase 1 (answers hidden), picked
round-robin over subtasks so every subtask appears, and DriveBench-shaped items whose answers let the
offline scorer run. The KB (``kb.json``) holds exact copies of ``n_overlap`` answered items (for the
leakage guard), notes on the same frames and scenes, and unrelated notes. ``drop_images`` image
files are left out on purpose so the loader's missing-image record shows in the demo.
"""
from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from ..common.files import write_json
from .data import CAMERAS, MV_ANSWERED, MV_QUESTIONS, MVItem, load_multiview, parse_tags
from .router import classify

# one distinct background colour per camera (RGB)
_COLOURS = {"CAM_FRONT": (70, 110, 170), "CAM_FRONT_RIGHT": (60, 150, 90), "CAM_FRONT_LEFT": (160, 120, 50),
            "CAM_BACK": (150, 60, 70), "CAM_BACK_RIGHT": (110, 70, 150), "CAM_BACK_LEFT": (60, 140, 150)}

_EXTRA_NOTES = [  # (question, answer) added as same-frame / same-scene / unrelated KB notes
    ("What is the weather in this scene?", "Clear daytime weather; the road is dry."),
    ("Are there pedestrians near the ego vehicle?", "No pedestrians are close to the ego vehicle."),
    ("What is the road layout ahead?", "A straight two-lane road with an intersection further ahead."),
    ("Is the traffic light ahead green?", "Yes."),
]


def _draw(camera: str, frame_no: int, tags, size: tuple[int, int]):
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, _COLOURS.get(camera, (120, 120, 120)))
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.55), w, h], fill=(60, 60, 60))  # road
    d.line([w // 2, h, w // 2, int(h * 0.55)], fill=(230, 230, 230), width=2)
    d.text((4, 3), camera, fill=(255, 255, 255))
    d.text((4, 15), f"frame {frame_no}", fill=(255, 255, 255))
    for t in tags:
        fx, fy = t.fraction()
        x, y = int(fx * w), int(fy * h)
        d.rectangle([x - 8, y - 6, x + 8, y + 6], outline=(255, 255, 0), width=2)
        d.text((x - 6, y - 18), t.id, fill=(255, 255, 0))
    return img


def _pick_round_robin(items: list[MVItem], k: int, rng: random.Random) -> list[MVItem]:
    """``k`` items spread over subtasks (round-robin), seeded."""
    by: dict[str, list[MVItem]] = defaultdict(list)
    for it in items:
        by[classify(it)[0]].append(it)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by.items())]
    out: list[MVItem] = []
    while len(out) < k and any(pools):
        for p in pools:
            if p and len(out) < k:
                out.append(p.pop())
    return out


def _by_frame(items: list[MVItem]) -> list[tuple[str, list[MVItem]]]:
    """The items grouped by frame (one set of six images each), in scene / frame / file order."""
    frames: dict[str, list[MVItem]] = defaultdict(list)
    for it in sorted(items, key=lambda it: (it.scene_token or "", it.frame_token or "", it.index)):
        frames[it.frame_token or it.id].append(it)
    return list(frames.items())


def _interleaved(answered: list, unanswered: list) -> list:
    """Frames with answers and frames without alternate, so the first questions of the file (a run with a
    ``limit``) include items the offline scorer can score."""
    return [f for k in range(max(len(answered), len(unanswered))) for f in answered[k:k + 1] + unanswered[k:k + 1]]


def make_demo_multiview(out_dir, questions_json=None, n: int = 24, seed: int = 0, answers_json=None,
                        n_overlap: int = 2, drop_images: int = 1, size: tuple[int, int] = (160, 90)) -> dict:
    """Write ``questions.json`` (converted RoboSense format), ``images/`` and ``kb.json`` under
    ``out_dir``; returns their paths and counts. Deterministic for a given ``seed``.

    ``questions_json``: the unanswered question pool (default: the phase-1-shaped fixture);
    ``answers_json``: DriveBench-format items with answers (default: the DriveBench-shaped fixture);
    about half of ``n`` comes from each."""
    out = Path(out_dir)
    rng = random.Random(seed)
    pool, _ = load_multiview(questions_json or MV_QUESTIONS, check_images=False)
    answered, _ = load_multiview(answers_json or MV_ANSWERED, check_images=False)
    n_ans = min(len(answered), n // 2)
    frames = _interleaved(_by_frame(_pick_round_robin(answered, n_ans, rng)),
                          _by_frame(_pick_round_robin(pool, n - n_ans, rng)))
    records, missing = [], []
    for f_no, (ftok, its) in enumerate(frames):
        tags = [t for it in its for t in parse_tags(it.question) + parse_tags(it.answer)]
        rels = {}
        for cam in CAMERAS:
            rel = f"images/{ftok[:12]}/{cam}.jpg"
            rels[cam] = rel
            if len(missing) < drop_images and f_no == 0 and cam == CAMERAS[-1]:
                missing.append(rel)  # left out on purpose: the loader must record it
                continue
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            _draw(cam, f_no, [t for t in tags if t.camera == cam], size).save(p, quality=90)
        for it in its:
            category = it.category if it.category in ("perception", "prediction", "planning", "corruption") \
                else "prediction"  # DriveBench "behavior" (ego MCQ) is filed under prediction
            records.append({"scene_token": it.scene_token, "frame_token": it.frame_token, "question": it.question,
                            "answer": it.answer, "category": category, "img_paths": dict(rels)})

    with_answer = [r for r in records if r["answer"]]
    # the first answered item is always one of the copies, so a short run (06's limit) shows the guard at work
    overlap = with_answer[:1] + rng.sample(with_answer[1:], max(0, min(n_overlap, len(with_answer)) - 1))
    anns = [{"id": f"kb_leak{k}", "scene_token": r["scene_token"], "frame_token": r["frame_token"],
             "question": r["question"], "answer": r["answer"]} for k, r in enumerate(overlap)]
    keys = sorted({(r["scene_token"], r["frame_token"]) for r in records})
    for k, (scene, frame) in enumerate(keys):
        q, a = _EXTRA_NOTES[k % len(_EXTRA_NOTES)]
        level = k % 3  # 0 same frame, 1 same scene only, 2 unrelated
        anns.append({"id": f"kb_note{k}", "scene_token": scene if level < 2 else f"other_scene_{k}",
                     "frame_token": frame if level == 0 else f"other_frame_{k}", "question": q, "answer": a})
    q_path = write_json(records, out / "questions.json")
    kb_path = write_json({"annotations": anns}, out / "kb.json")
    return {"questions": str(q_path), "kb": str(kb_path), "image_root": str(out), "n_items": len(records),
            "n_answered": len(with_answer), "n_overlap": len(overlap), "missing_images": missing}


def ensure_demo_multiview(out_dir, **kw) -> dict:
    """``make_demo_multiview`` unless ``out_dir`` already holds its questions and KB (then their
    paths, read back); ``kw`` as for ``make_demo_multiview``, used only when it runs."""
    import json

    out = Path(out_dir)
    q, kb = out / "questions.json", out / "kb.json"
    if not (q.is_file() and kb.is_file()):
        return make_demo_multiview(out, **kw) | {"created": True}
    records = json.loads(q.read_text(encoding="utf-8"))
    return {"questions": str(q), "kb": str(kb), "image_root": str(out), "n_items": len(records),
            "n_answered": sum(bool(r.get("answer")) for r in records), "created": False}

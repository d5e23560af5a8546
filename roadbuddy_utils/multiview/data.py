"""Multi-camera driving QA (DriveBench / RoboSense Track 1): items, cameras, object tags, options.

    items, problems = load_multiview("robosense_track1_phase1_questions.json", image_root="nuscenes/")
    python -c "from roadbuddy_utils.multiview.demo import make_demo_multiview; make_demo_multiview('outputs/demo/mv')"  # tiny

Two input formats are read into one typed ``MVItem``:

* converted RoboSense: a JSON list of ``{scene_token, frame_token, question | prompt, answer,
  category, img_paths: {camera: path}}``;
* DriveBench's own: ``question_type`` instead of ``category``, ``tag`` (0 MCQ / yes-no,
  1 planning VQA, 2 perception VQA, 3 prediction VQA) and ``image_path`` instead of ``img_paths``.

A missing image is a recorded ``Problem`` (file, item, field), never a crash: a whole test set must
not be lost to one absent JPEG. The raw dict is kept on the item so every output line can repeat
every input field (the submission format is the input with ``answer`` filled in).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..data.questions import Problem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Project-written stand-ins in the real files' shapes (scripts/make_mv_fixtures.py writes them): the real
# RoboSense / DriveBench question files may be read but are never shipped.
MV_QUESTIONS = FIXTURES / "mv_questions.json"  # converted RoboSense phase-1 shape, answers empty
MV_ANSWERED = FIXTURES / "mv_answered.json"  # DriveBench shape, 19 items with answers

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT")
IMAGE_SIZE = (1600, 900)  # nuScenes camera frames; RoboSense tags are pixels of this size

SUBTASKS = ("Perception-MCQs", "Perception-VQAs-Object-Description", "Perception-VQAs-Scene-Description",
            "Prediction-MCQs", "Planning-VQAs-Scene-Description", "Planning-VQAs-Object-Description",
            "Corruption-MCQs")
# Official phase-1 question counts (datasets.md section 2); the official score weights by these.
PHASE1_COUNTS = {"Perception-MCQs": 53, "Perception-VQAs-Object-Description": 244,
                 "Perception-VQAs-Scene-Description": 64, "Prediction-MCQs": 522,
                 "Planning-VQAs-Scene-Description": 183, "Planning-VQAs-Object-Description": 330}


# ----------------------------------------------------------------------------------------------
# Object tags: <c1,CAM_BACK,795.0,514.2> (pixels) or <c1,CAM_BACK,0.5073,0.5778> (normalised)

TAG_RE = re.compile(r"<(c\d+),\s*(CAM_[A-Z_]+),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)>")
CAM_RE = re.compile(r"\bCAM_[A-Z]+(?:_[A-Z]+)*\b")


@dataclass(frozen=True)
class ObjectTag:
    """One object reference. ``normalised`` is inferred: both coordinates <= 1 can only be a
    fraction of the frame (a real pixel position that small would sit in the image corner)."""

    id: str
    camera: str
    x: float
    y: float
    normalised: bool
    text: str  # the tag as written, so it can be found again in the question

    def pixel(self, size: tuple[int, int] = IMAGE_SIZE) -> tuple[float, float]:
        return (self.x * size[0], self.y * size[1]) if self.normalised else (self.x, self.y)

    def fraction(self, size: tuple[int, int] = IMAGE_SIZE) -> tuple[float, float]:
        return (self.x, self.y) if self.normalised else (self.x / size[0], self.y / size[1])


def parse_tags(text: str) -> list[ObjectTag]:
    """Every distinct object tag in ``text``, in order of first appearance."""
    out, seen = [], set()
    for m in TAG_RE.finditer(text or ""):
        if m.group(0) in seen:
            continue
        seen.add(m.group(0))
        x, y = float(m.group(3)), float(m.group(4))
        out.append(ObjectTag(m.group(1), m.group(2), x, y, x <= 1.0 and y <= 1.0, m.group(0)))
    return out


def describe_tags(tags: Sequence[ObjectTag], size: tuple[int, int] = IMAGE_SIZE) -> str:
    """One line per object, e.g. ``c1: CAM_BACK at (795, 514) px (x 0.50, y 0.57 of the image)``.

    Both forms are given because the models saw both during pre-training and the raw tag alone
    does not say which one it is."""
    lines = []
    for t in tags:
        (px, py), (fx, fy) = t.pixel(size), t.fraction(size)
        lines.append(f"{t.id}: {t.camera} at ({px:.0f}, {py:.0f}) px (x {fx:.2f}, y {fy:.2f} of the image)")
    return "\n".join(lines)


def cameras_named(text: str) -> list[str]:
    """Cameras the question names (in tags or in words), in order of appearance."""
    seen: list[str] = []
    for c in CAM_RE.findall(text or ""):
        if c not in seen:
            seen.append(c)
    return seen


# ----------------------------------------------------------------------------------------------
# Items


@dataclass
class MVItem:
    id: str  # the input's ``id`` if it has one, else index + hash of (scene, frame, question): stable for resume
    index: int  # position in the input file
    question: str
    category: str | None  # ``category`` (RoboSense) or ``question_type`` (DriveBench), lower-case
    images: list[tuple[str, Path]]  # (camera, path) of the images that exist, in CAMERAS order
    answer: str  # gold answer, "" when hidden
    scene_token: str | None
    frame_token: str | None
    raw: dict  # the input item untouched
    source_format: str  # "robosense" | "drivebench"
    tags: list[ObjectTag] = field(default_factory=list)
    subtask: str | None = None  # set by classify()
    rule: str | None = None  # the router rule that chose it


def order_cameras(images: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Known cameras in the official prompt order, unknown ones after them in input order."""
    images = list(images)
    rank = {c: i for i, c in enumerate(CAMERAS)}
    return sorted(images, key=lambda cp: (rank.get(cp[0], len(CAMERAS)), images.index(cp)))


def select_images(item: MVItem, max_images: int | None = None, only_named: bool = False,
                  scores: dict[str, float] | None = None) -> list[tuple[str, Path]]:
    """Images to send for ``item``: ordered, optionally only the cameras the question names
    (all of them when it names none or none of those exist), capped at ``max_images``: the first
    ones, or with ``scores`` (camera -> score, views.CameraSelector) the best-scored ones, still in
    camera order."""
    imgs = item.images
    if only_named:
        named = cameras_named(item.question)
        kept = [cp for cp in imgs if cp[0] in named]
        imgs = kept or imgs
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images_per_prompt must be >= 1 or None, got {max_images}")
        if scores and len(imgs) > max_images:
            best = sorted(range(len(imgs)), key=lambda k: -scores.get(imgs[k][0], float("-inf")))[:max_images]
            imgs = [imgs[k] for k in sorted(best)]
        imgs = imgs[:max_images]
    return list(imgs)


def _item_id(raw: dict, index: int, question: str) -> str:
    if raw.get("id") not in (None, ""):
        return str(raw["id"])
    key = f"{raw.get('scene_token')}|{raw.get('frame_token')}|{question}"
    return f"mv{index:05d}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _camera_from_path(path: str, k: int) -> str:
    m = CAM_RE.search(Path(path).name) or CAM_RE.search(path)
    return m.group(0) if m else f"IMG_{k}"


def load_multiview(path, image_root=None, check_images: bool = True) -> tuple[list[MVItem], list[Problem]]:
    """Items of a RoboSense-converted or DriveBench JSON file, and every problem found.

    ``image_root``: folder the image paths are relative to (default: the JSON file's folder).
    Items without a question, and image entries whose file does not exist, are skipped and
    recorded; a file that is not JSON or not a list raises ``ValueError`` naming the file."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read multiview JSON: {e}") from e
    if isinstance(data, dict):  # tolerate {"data": [...]} / {"questions": [...]} wrappers
        data = data.get("data", data.get("questions"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of items (or {{'data': [...]}}), got {type(data).__name__}")
    items, problems = [], []
    for k, raw in enumerate(data):
        if not isinstance(raw, dict):
            problems.append(Problem(str(path), f"#{k}", None, f"item is a {type(raw).__name__}, not an object; skipped"))
            continue
        qfield = "question" if raw.get("question") else "prompt" if raw.get("prompt") else None
        if qfield is None:
            problems.append(Problem(str(path), str(raw.get("id", f"#{k}")), "question",
                                    "no 'question' or 'prompt' text; skipped"))
            continue
        question = str(raw[qfield])
        iid = _item_id(raw, k, question)
        fmt = "drivebench" if ("question_type" in raw or "image_path" in raw or "tag" in raw) else "robosense"
        ifield = "img_paths" if "img_paths" in raw else "image_path" if "image_path" in raw else None
        paths = raw.get(ifield) if ifield else None
        if isinstance(paths, str):
            paths = [paths]
        if isinstance(paths, list):
            paths = {_camera_from_path(str(p), j): p for j, p in enumerate(paths)}
        images: list[tuple[str, Path]] = []
        if ifield is None:
            problems.append(Problem(str(path), iid, "img_paths", "no 'img_paths' or 'image_path'; item has no images"))
        elif not isinstance(paths, dict):
            problems.append(Problem(str(path), iid, ifield, f"expected a camera -> path mapping, got "
                                                           f"{type(paths).__name__}; item has no images"))
        else:
            for cam, p in paths.items():
                full = Path(p) if Path(str(p)).is_absolute() else root / str(p)
                if check_images and not full.is_file():
                    problems.append(Problem(str(path), iid, f"{ifield}.{cam}", f"missing image {full}; camera skipped"))
                    continue
                images.append((str(cam), full))
        category = raw.get("category", raw.get("question_type"))
        answer = raw.get("answer")
        items.append(MVItem(id=iid, index=k, question=question,
                            category=str(category).strip().lower() if category else None,
                            images=order_cameras(images), answer="" if answer is None else str(answer),
                            scene_token=raw.get("scene_token"), frame_token=raw.get("frame_token"), raw=raw,
                            source_format=fmt, tags=parse_tags(question)))
    dup = [i for i, n in Counter(it.id for it in items).items() if n > 1]
    for i in dup:  # resume keys on id: a duplicate would make one of them look done
        problems.append(Problem(str(path), i, "id", "duplicate id; later copies will be treated as done on resume"))
    return items, problems



# ----------------------------------------------------------------------------------------------
# Options written in the question


def parse_options(question: str, letters: str = "ABCDE") -> list[tuple[str, str]]:
    """``[(letter, text), ...]`` of the options written in the question ("A. Going ahead. B. ...").

    Letters are searched in sequence (A, then B after it, ...), so a full stop inside an option's
    text ("The ego vehicle is going straight. The ego ...") does not end it. Fewer than two found
    means the question has no options."""
    text = question or ""
    start = re.search(r"options\s*:", text, re.I)
    pos = start.end() if start else 0
    found: list[tuple[str, int, int]] = []
    for letter in letters:
        m = re.compile(rf"(?:^|(?<=\s)|(?<=[:(]))\(?{letter}[\.\)]\s*").search(text, pos)
        if not m:
            break
        found.append((letter, m.start(), m.end()))
        pos = m.end()
    if len(found) < 2:
        return []
    out = []
    for k, (letter, _, end) in enumerate(found):
        stop = found[k + 1][1] if k + 1 < len(found) else len(text)
        out.append((letter, text[end:stop].strip()))
    return out

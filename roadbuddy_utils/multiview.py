"""Multi-camera driving QA (DriveBench / RoboSense Track 1): items, cameras, object tags, router, prompts.

    items, problems = load_multiview("robosense_track1_phase1_questions.json", image_root="nuscenes/")
    routes = load_routing()                                  # params/routing_default.yaml
    for it in items:
        it.subtask, it.rule = classify(it)
        p = build_prompt(it, routes[it.subtask], select_images(it, max_images=6))
        # the model wrapper turns p.segments() into chat content; the answer goes into result_line(...)
    # mv_run.py runs this loop with models by size, fallback and resume (notebook 06)
    python -c "from roadbuddy_utils.mv_demo import make_demo_multiview; make_demo_multiview('outputs/demo/mv')"  # tiny

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

import yaml

from .data import Problem
from .util import read_jsonl, repair_jsonl, write_json

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "multiview"
DEFAULT_ROUTING = REPO / "params" / "routing_default.yaml"

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT")
IMAGE_SIZE = (1600, 900)  # nuScenes camera frames; RoboSense tags are pixels of this size

SUBTASKS = ("Perception-MCQs", "Perception-VQAs-Object-Description", "Perception-VQAs-Scene-Description",
            "Prediction-MCQs", "Planning-VQAs-Scene-Description", "Planning-VQAs-Object-Description",
            "Corruption-MCQs")
# Official phase-1 question counts (datasets.md section 2); the official score weights by these.
PHASE1_COUNTS = {"Perception-MCQs": 53, "Perception-VQAs-Object-Description": 244,
                 "Perception-VQAs-Scene-Description": 64, "Prediction-MCQs": 522,
                 "Planning-VQAs-Scene-Description": 183, "Planning-VQAs-Object-Description": 330}
STYLES = ("mcq", "yesno", "open")


# ----------------------------------------------------------------------------------------------
# Object tags: <c1,CAM_BACK,795.0,514.2> (pixels) or <c1,CAM_BACK,0.5073,0.5778> (normalised)

_TAG_RE = re.compile(r"<(c\d+),\s*(CAM_[A-Z_]+),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)>")
_CAM_RE = re.compile(r"\bCAM_[A-Z]+(?:_[A-Z]+)*\b")


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
    for m in _TAG_RE.finditer(text or ""):
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
    for c in _CAM_RE.findall(text or ""):
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


def select_images(item: MVItem, max_images: int | None = None, only_named: bool = False) -> list[tuple[str, Path]]:
    """Images to send for ``item``: ordered, optionally only the cameras the question names
    (all of them when it names none or none of those exist), capped at ``max_images``."""
    imgs = item.images
    if only_named:
        named = cameras_named(item.question)
        kept = [cp for cp in imgs if cp[0] in named]
        imgs = kept or imgs
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images_per_prompt must be >= 1 or None, got {max_images}")
        imgs = imgs[:max_images]
    return list(imgs)


def _item_id(raw: dict, index: int, question: str) -> str:
    if raw.get("id") not in (None, ""):
        return str(raw["id"])
    key = f"{raw.get('scene_token')}|{raw.get('frame_token')}|{question}"
    return f"mv{index:05d}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _camera_from_path(path: str, k: int) -> str:
    m = _CAM_RE.search(Path(path).name) or _CAM_RE.search(path)
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
# Router: category + question patterns -> official subtask

_OPTIONS_HINT = re.compile(r"options\s*:|\bA\.\s.+\bB\.\s", re.I | re.S)
_YESNO_START = re.compile(r"^\s*(is|are|was|were|will|would|does|do|did|can|could|should|has|have)\b", re.I)
_PLANNING_SCENE = re.compile(
    r"safe actions|dangerous actions|comment on this scene|issues worth noting|noteworthy issues|"
    r"situation affects|conditions does this scene|conditions in this scene|impact on driving|"
    r"impact does this situation|priority of the objects|traffic signal", re.I)

# (rule name, categories it applies to (None: any), question pattern, subtask). First match wins.
RULES: list[tuple[str, frozenset | None, re.Pattern, str]] = [
    ("corruption", None, re.compile(r"type of corruption", re.I), "Corruption-MCQs"),
    ("perception_mcq", frozenset({"perception"}), _OPTIONS_HINT, "Perception-MCQs"),
    ("perception_object", frozenset({"perception"}), re.compile(r"(visual )?description of <obj>", re.I),
     "Perception-VQAs-Object-Description"),
    ("perception_scene", frozenset({"perception"}), re.compile(r"important objects in the current scene", re.I),
     "Perception-VQAs-Scene-Description"),
    ("prediction_notice", frozenset({"prediction"}), re.compile(r"notice (first|second|third)", re.I),
     "Prediction-MCQs"),
    ("prediction_yesno", frozenset({"prediction"}), _YESNO_START, "Prediction-MCQs"),
    ("prediction_mcq", frozenset({"prediction"}), _OPTIONS_HINT, "Prediction-MCQs"),
    # DriveBench's "behavior" (predict the ego vehicle's behaviour, MCQ) has no official subtask
    # of its own; it is closest to prediction and is answered as an MCQ.
    ("behavior_mcq", frozenset({"behavior"}), _OPTIONS_HINT, "Prediction-MCQs"),
    ("planning_object", frozenset({"planning"}), re.compile(r"<obj>"), "Planning-VQAs-Object-Description"),
    ("planning_scene", frozenset({"planning"}), _PLANNING_SCENE, "Planning-VQAs-Scene-Description"),
]


def _route_text(question: str) -> str:
    return _TAG_RE.sub("<obj>", question)


def classify(item: MVItem) -> tuple[str, str]:
    """``(subtask, rule)``. Rules named ``default:...`` mean no question pattern matched and the
    subtask was guessed from the category (or, without one, from the question's shape): those are
    the ones to look at when a new question set arrives."""
    q, cat = _route_text(item.question), item.category
    if cat == "corruption":
        return "Corruption-MCQs", "corruption"
    for name, cats, pat, subtask in RULES:
        if (cats is None or cat in cats) and pat.search(q):
            return subtask, name
    has_obj = "<obj>" in q
    if cat == "perception":
        return ("Perception-MCQs" if _OPTIONS_HINT.search(q) else "Perception-VQAs-Object-Description" if has_obj
                else "Perception-VQAs-Scene-Description"), "default:perception"
    if cat in ("prediction", "behavior"):
        return "Prediction-MCQs", f"default:{cat}"
    if cat == "planning":
        return ("Planning-VQAs-Object-Description" if has_obj else "Planning-VQAs-Scene-Description"), "default:planning"
    # no (known) category: the question's shape decides
    if _OPTIONS_HINT.search(q):
        return "Perception-MCQs", "default:options"
    if _YESNO_START.search(q):
        return "Prediction-MCQs", "default:yesno"
    return ("Planning-VQAs-Object-Description" if has_obj else "Planning-VQAs-Scene-Description"), "default:open"


def classify_all(items: Sequence[MVItem]) -> tuple[Counter, list[dict]]:
    """Classify in place; returns counts per subtask and the items that fell to a default rule."""
    counts: Counter = Counter()
    defaults = []
    for it in items:
        it.subtask, it.rule = classify(it)
        counts[it.subtask] += 1
        if it.rule.startswith("default:"):
            defaults.append({"id": it.id, "category": it.category, "rule": it.rule, "subtask": it.subtask,
                             "question": it.question[:200]})
    return counts, defaults


# ----------------------------------------------------------------------------------------------
# Routing table: subtask -> model size, prompt style, max_new_tokens


@dataclass(frozen=True)
class Route:
    model: str  # a size name registered in ``models`` (e.g. "small", "large")
    style: str  # "mcq" | "yesno" | "open"
    max_new_tokens: int
    max_new_tokens_open: int | None = None  # for open questions inside a closed subtask ("notice first...")


_ROUTE_KEYS = {"model", "style", "max_new_tokens"}
_ROUTE_OPTIONAL = {"max_new_tokens_open"}


def load_routing(source=None, overrides: dict | None = None, models: Iterable[str] | None = None) -> dict[str, Route]:
    """Validated routing table from a YAML path, a dict, or (None) ``params/routing_default.yaml``.

    ``overrides`` changes keys of single entries (``{"Perception-MCQs": {"model": "large"}}``);
    ``models``: the registered size names, so a route to an unknown model fails here, before any
    model is loaded. Every official subtask needs an entry: an item must never lack a route."""
    where = "routing table"
    if source is None:
        source = DEFAULT_ROUTING
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            source = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{where}: cannot read routing table: {e}") from e
    if not isinstance(source, dict):
        raise ValueError(f"{where}: expected a mapping subtask -> {{model, style, max_new_tokens}}")
    table = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}
    for k, v in (overrides or {}).items():
        if k not in table or not isinstance(v, dict):
            raise ValueError(f"{where}: override for {k!r} must be a mapping of an existing subtask entry")
        table[k].update(v)
    errors = []
    unknown = sorted(set(table) - set(SUBTASKS))
    if unknown:
        errors.append(f"unknown subtask(s) {unknown}; known: {list(SUBTASKS)}")
    missing = [s for s in SUBTASKS if s not in table]
    if missing:
        errors.append(f"no entry for subtask(s) {missing}")
    models = set(models) if models is not None else None
    out = {}
    for s, v in table.items():
        if s in unknown:
            continue
        if not isinstance(v, dict):
            errors.append(f"{s}: expected a mapping, got {v!r}")
            continue
        if _ROUTE_KEYS - set(v):
            errors.append(f"{s}: missing key(s) {sorted(_ROUTE_KEYS - set(v))}")
            continue
        if set(v) - _ROUTE_KEYS - _ROUTE_OPTIONAL:
            errors.append(f"{s}: unknown key(s) {sorted(set(v) - _ROUTE_KEYS - _ROUTE_OPTIONAL)}")
        if v["style"] not in STYLES:
            errors.append(f"{s}.style: {v['style']!r} is not one of {list(STYLES)}")
        for key in ("max_new_tokens", "max_new_tokens_open"):
            n = v.get(key)
            if (key in v or key == "max_new_tokens") and not (isinstance(n, int) and not isinstance(n, bool) and n > 0):
                errors.append(f"{s}.{key}: must be a positive integer, got {n!r}")
        if models is not None and v["model"] not in models:
            errors.append(f"{s}.model: {v['model']!r} is not a registered model {sorted(models)}")
        out[s] = Route(str(v["model"]), v["style"], v["max_new_tokens"], v.get("max_new_tokens_open"))
    if errors:
        raise ValueError(f"{where}: invalid routing table:\n  " + "\n  ".join(errors))
    return out


def item_style(item: MVItem, route: Route) -> tuple[str, int]:
    """``(style, max_new_tokens)`` for one item: the route's, except that a question listing
    options is always MCQ and a non-yes/no question in a yes/no subtask (Prediction's "notice
    first/second/third") is open, with ``max_new_tokens_open`` when set."""
    if parse_options(item.question):
        return "mcq", route.max_new_tokens
    if route.style == "yesno" and not _YESNO_START.search(_route_text(item.question)):
        return "open", route.max_new_tokens_open or route.max_new_tokens
    return route.style, route.max_new_tokens


# ----------------------------------------------------------------------------------------------
# Prompts


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


PROMPT = {
    "system": "You are the driving assistant of a self-driving car. You see the images of its surround "
              "cameras; the camera name is given before each image.",
    "image_label": "{camera}:",
    "objects": "Objects referred to in the question:\n{objects}",
    "notes": "Notes from earlier annotations (similarity in brackets; they may not apply here):\n{notes}",
    "question": "Question: {question}",
    "mcq": "Answer with the letter of the correct option ({letters}) first, then one short sentence of reasoning.",
    "yesno": "Answer Yes or No first, then one short sentence of reasoning.",
    "open": "Answer in a few concise sentences; name objects by their ids (such as c1) and cameras where relevant.",
}


@dataclass
class MVPrompt:
    """Text around the images. The model wrapper inserts image k right after ``image_labels[k]``
    and appends ``text``; ``segments()`` gives that interleaving directly."""

    system: str
    images: list[tuple[str, Path]]
    image_labels: list[str]
    text: str
    style: str
    letters: list[str]  # option letters offered (MCQ), for the likelihood scorer / extractor
    max_new_tokens: int

    def segments(self) -> list[tuple[str, str]]:
        """``[("text", label), ("image", path), ..., ("text", question block)]``."""
        out: list[tuple[str, str]] = []
        for label, (_, p) in zip(self.image_labels, self.images):
            out += [("text", label), ("image", str(p))]
        return out + [("text", self.text)]

    def render(self) -> str:
        """Flat text with ``<image>`` placeholders: for prompt hashes and snapshot tests."""
        return "\n".join([self.system] + [s if kind == "text" else "<image>" for kind, s in self.segments()])


def build_prompt(item: MVItem, route: Route, images: Sequence[tuple[str, Path]], rag_text: str | None = None,
                 describe_objects: bool = True) -> MVPrompt:
    """The prompt for ``item``: camera label per image, object positions spelled out, optional
    retrieval notes, the question and the style's answer instruction. For MCQs with no options
    in the text (corruption questions can list them elsewhere) the letters default to A-E."""
    style, max_new = item_style(item, route)
    letters = [l for l, _ in parse_options(item.question)] if style == "mcq" else []
    if style == "mcq" and not letters:
        letters = list("ABCDE")
    parts = []
    if describe_objects and item.tags:
        parts.append(PROMPT["objects"].format(objects=describe_tags(item.tags)))
    if rag_text:
        parts.append(PROMPT["notes"].format(notes=rag_text))
    parts.append(PROMPT["question"].format(question=item.question.strip()))
    parts.append(PROMPT[style].format(letters=", ".join(letters)))
    return MVPrompt(PROMPT["system"], list(images), [PROMPT["image_label"].format(camera=c) for c, _ in images],
                    "\n".join(parts), style, letters, max_new)


# ----------------------------------------------------------------------------------------------
# LoRA adapter folders


def resolve_adapter(folder) -> Path | None:
    """The adapter to load from a LoRA output folder: the folder itself when it holds
    ``adapter_config.json`` (a finished run), else its highest ``checkpoint-N`` that holds one
    (a run cut short). ``None`` passes through (no adapter)."""
    if folder in (None, ""):
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"adapter folder {folder} does not exist")
    if (folder / "adapter_config.json").is_file():
        return folder
    ckpts = []
    for d in folder.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and d.is_dir() and (d / "adapter_config.json").is_file():
            ckpts.append((int(m.group(1)), d))
    if not ckpts:
        seen = sorted(d.name for d in folder.iterdir())[:10]
        raise FileNotFoundError(f"{folder}: no adapter_config.json at its root nor in any checkpoint-N subfolder "
                                f"(contents: {seen})")
    return max(ckpts)[1]


# ----------------------------------------------------------------------------------------------
# Output lines and resumable writing


def result_line(item: MVItem, subtask: str, model_routed: str | None, model_used: str | None, answer: str | None,
                rag_notes: list[dict] | None = None, error: str | None = None, **extra) -> dict:
    """One output item: every input field, ``answer`` replaced by the model's, plus routing facts.

    The input's answer survives as ``gold_answer`` (empty when hidden) so scoring needs no second
    file; ``id`` is added when the input has none (resume keys on it). ``extra``: ``rule``,
    ``style``, ``time_s``, ``rag_override`` ..."""
    line = dict(item.raw)
    line.setdefault("id", item.id)
    line.update({"gold_answer": item.answer, "subtask": subtask, "model_routed": model_routed,
                 "model_used": model_used, "answer": answer, "rag_notes": list(rag_notes or []), "error": error})
    line.update(extra)
    return line


class ResultStore:
    """``{output_dir}/results.jsonl``: lines appended and flushed as they come; a rerun skips ids
    already answered without error (a killed run loses at most the line being written).

        store = ResultStore(out)
        for it in items:
            if store.is_done(it.id): continue
            store.add(result_line(it, ...))
        lines = store.finish(items)          # also writes {output_dir}/results.json in input order
    """

    def __init__(self, output_dir, name: str = "results"):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / f"{name}.jsonl"
        self.json = self.dir / f"{name}.json"
        self.repaired_bytes = repair_jsonl(self.jsonl)
        self.lines: dict[str, dict] = {}  # latest line per id
        if self.jsonl.exists():
            for r in read_jsonl(self.jsonl):
                self.lines[str(r["id"])] = r

    def is_done(self, item_id: str) -> bool:
        r = self.lines.get(str(item_id))
        return r is not None and r.get("error") is None and r.get("answer") is not None

    @property
    def n_done(self) -> int:
        return sum(self.is_done(i) for i in self.lines)

    def add(self, line: dict) -> None:
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            f.flush()
        self.lines[str(line["id"])] = line

    def finish(self, items: Sequence[MVItem] | None = None) -> list[dict]:
        """Latest line per item in input order (every stored line when ``items`` is None), written to
        ``results.json``."""
        ids = [it.id for it in items] if items is not None else list(self.lines)
        out = [self.lines[i] for i in ids if i in self.lines]
        write_json(out, self.json)
        return out

"""RoadBuddy JSON: typed items, every known quirk, validation and the grouped train/val split.

    items = load_items("traffic_buddy_train+public_test/train/train.json")          # real
    items = load_items("outputs/demo/data/traffic_buddy_train+public_test/train/train.json")  # demo
    python -m roadbuddy_utils validate train/train.json --videos-root traffic_buddy_train+public_test

Quirks handled (shared/reference/datasets.md): 2, 3 or 4 choices; one train item whose 4 choices
are listed twice (8 entries); ``"D.Text"`` without a space; a letter written twice with different texts
(``"A. 1", "B. 2", "B. 3", "B. 4"``: every choice kept, lettered by position, the gold matched by its text);
answers given as the full choice string (``"B. Sai"``) or truncated; unknown extra fields (``_unused_``);
private-test ``video_path`` relative to its own folder while train / public test paths are relative to the
split's parent.

Every problem is a ``Problem`` naming the file, the item id and the field, with a severity: an ``error``
makes an item (or part of it) unusable or dropped (``validate`` exits 1); a ``warning`` is a quirk the
loader fixed (relettered choices, a choice without a letter, an answer matched by a truncated text, ...).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

LETTERS = "ABCDEFGH"
# "A. text", "A.text", "A) text", "A: text", "A - text"; the letter must stand alone.
_CHOICE_RE = re.compile(r"^\s*([A-Ha-h])\s*[\.\):\-]\s*(.*)$", re.S)
# clip length from the file name: ..._clip_<k>_<start>_<end>[_Y|_N].mp4
_CLIP_RE = re.compile(r"_clip_\d+_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)(?:_[YN])?\.\w+$")


@dataclass
class Problem:
    """One thing wrong with a data file, precise enough to find and fix it."""

    file: str
    item_id: str | None
    field: str | None
    message: str
    severity: str = "error"  # error: the item or part of it is unusable / dropped; warning: loaded with a fix

    def __str__(self) -> str:
        where = self.file
        if self.item_id is not None:
            where += f" id={self.item_id}"
        if self.field:
            where += f" field={self.field}"
        return f"{where}: {self.message}"


class DatasetError(ValueError):
    """The file cannot be used at all (invalid JSON, no ``data`` list). Lists every problem."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Item:
    id: str
    question: str
    choices: list[tuple[str, str]]  # normalised (letter, text): every distinct choice, letters unique
    answer: str | None  # gold letter, None on test splits
    support_frames: list[float]  # seconds; train only
    video_path: Path | None  # resolved (may not exist: see video_exists)
    video_rel: str  # as written in the JSON; the grouping key for splits
    source_file: str = ""
    extra: dict = field(default_factory=dict)  # unknown fields, kept untouched

    @property
    def letters(self) -> list[str]:
        return [c[0] for c in self.choices]

    @property
    def n_choices(self) -> int:
        return len(self.choices)

    @property
    def video_exists(self) -> bool:
        return self.video_path is not None and self.video_path.is_file()

    def choice_text(self, letter: str) -> str:
        return dict(self.choices)[letter]


# --------------------------------------------------------------------------- parsing helpers

def parse_choice(raw) -> tuple[str | None, str]:
    """``"A. Đúng"`` -> ("A", "Đúng"); ``"D.Cấm"`` -> ("D", "Cấm"); no letter -> (None, text)."""
    if not isinstance(raw, str):
        return None, str(raw)
    m = _CHOICE_RE.match(raw)
    if not m:
        return None, raw.strip()
    return m.group(1).upper(), m.group(2).strip()


def normalise_choices(raw: list) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Parsed choices with unique letters, and a list of (field, message) warnings.

    The doubled list (the same choices written twice) collapses to one copy, and an exact repeat of a
    choice is dropped (with a warning); every distinct choice is kept. A choice without a letter gets
    the letter of its position. When a letter is written for two different texts (``"B. 2", "B. 3"``,
    a typo for the positional letter in the real files), all choices are lettered by position
    (A, B, C, D, ...): the model is shown and scored on every one of them.
    """
    warnings: list[tuple[str, str]] = []
    parsed = [parse_choice(c) for c in raw]
    half = len(parsed) // 2
    if len(parsed) % 2 == 0 and half >= 2 and parsed[:half] == parsed[half:]:  # the doubled list
        parsed, raw = parsed[:half], raw[:half]
    out: list[tuple[str, str]] = []
    kept_raw = []
    for k, (letter, text) in enumerate(parsed):
        if letter is None:
            letter = LETTERS[len(out)] if len(out) < len(LETTERS) else "?"
            warnings.append((f"choices[{k}]", f"choice without a letter: {raw[k]!r} (given the letter of its "
                                              f"position, {letter})"))
        if (letter, text) in out:
            warnings.append((f"choices[{k}]", f"the same choice written twice: {raw[k]!r} (one copy kept)"))
            continue
        out.append((letter, text))
        kept_raw.append(raw[k])
    letters = [l for l, _ in out]
    if len(set(letters)) < len(letters):
        repeated = sorted({l for l in letters if letters.count(l) > 1})
        out = [(LETTERS[k], t) for k, (_, t) in enumerate(out)]
        warnings.append(("choices", f"relettered by position: letter {', '.join(repeated)} written for different "
                                    f"choices in {kept_raw}; now {[f'{l}. {t}' for l, t in out]}"))
    return out, warnings


def parse_answer(raw, choices: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """Gold letter from ``"B. Sai"``, ``"B"`` or the choice text itself, and how it was matched
    (``letter``, ``text``, ``prefix``); (None, None) if it matches no choice.

    The text is matched first, then the letter: in the real files a letter may be a typo (``"C. Rẽ
    phải"`` is the third choice of ``A. Đi thẳng, B. Rẽ trái, C. Rẽ phải, C. Vòng quay đầu``, lettered
    A-D by position), while the text names the choice. Choice texts are sometimes truncated in the real
    data, so a text that is a prefix of a choice's (or the other way round) still counts, as ``prefix``.
    """
    if raw is None:
        return None, None
    s = str(raw).strip()
    by_letter = dict(choices)
    if len(s) == 1:
        return (s.upper(), "letter") if s.upper() in by_letter else (None, None)
    letter, text = parse_choice(s)
    want = text.casefold()
    if want:
        for cand in (want, s.casefold()):  # "B. Sai" by its text, or a choice whose text itself reads "B. ..."
            exact = [l for l, t in choices if t.casefold() == cand]
            if exact:
                return (letter if letter in exact else exact[0]), "text"
        near = [l for l, t in choices if t and (t.casefold().startswith(want) or want.startswith(t.casefold()))]
        if letter in near or len(near) == 1:
            return (letter if letter in near else near[0]), "prefix"
        return None, None
    return (letter, "letter") if letter in by_letter else (None, None)


def clip_duration_from_name(name: str) -> float | None:
    m = _CLIP_RE.search(name)
    if not m:
        return None
    start, end = float(m.group(1)), float(m.group(2))
    return end - start if end > start else None


def resolve_video(rel: str, json_path: Path, videos_root=None) -> Path:
    """First existing of videos_root/rel, json folder/rel, json parent/rel; else the first candidate."""
    p = Path(rel)
    if p.is_absolute():
        return p
    bases = ([Path(videos_root)] if videos_root else []) + [json_path.parent, json_path.parent.parent]
    candidates = [b / p for b in bases]
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


# --------------------------------------------------------------------------- loading

def read_json(path) -> tuple[list, list[Problem]]:
    """The raw ``data`` list, or problems saying why there is none."""
    path = Path(path)
    if not path.is_file():
        return [], [Problem(str(path), None, None, "file not found. Attach the dataset so that this path exists "
                            "(Kaggle: add the RoadBuddy dataset as an input; elsewhere: download and unzip it), or "
                            "point the notebook at your copy: set its data path parameter (data_json / train_json / "
                            "test_json) with papermill -p NAME PATH or in params/<profile>/<notebook>.yaml")]
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        return [], [Problem(str(path), None, None, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}")]
    except UnicodeDecodeError as e:
        return [], [Problem(str(path), None, None, f"not UTF-8 text: {e}")]
    data = doc.get("data") if isinstance(doc, dict) else doc if isinstance(doc, list) else None
    if not isinstance(data, list):
        return [], [Problem(str(path), None, "data", "no 'data' list (expected {\"__count__\": N, \"data\": [...]})")]
    return data, []


def parse_items(path, videos_root=None, check_videos: bool = False,
                strict: bool = False) -> tuple[list[Item], list[Problem]]:
    """Parse every item; return the usable items and every problem found (never stops early).

    Items with an unusable question or fewer than two choices are dropped (and reported); items
    with softer problems (answer not among the choices, support times out of range, a choice
    without a letter) are kept so that a batch run still covers them. ``check_videos`` probes
    the clip length when the file name does not give it. ``strict``: a file that cannot be used at all
    (missing, invalid JSON, no ``data`` list) raises ``DatasetError`` instead of giving no items.
    """
    path = Path(path)
    raw, problems = read_json(path)
    if strict and problems:
        raise DatasetError(problems)
    items: list[Item] = []
    seen: Counter = Counter()
    for k, r in enumerate(raw):
        fid = f"#{k}"
        if not isinstance(r, dict):
            problems.append(Problem(str(path), fid, None, f"item is a {type(r).__name__}, not an object"))
            continue
        item_id = str(r.get("id", "")).strip()
        if not item_id:
            problems.append(Problem(str(path), fid, "id", "missing id"))
            item_id = fid
        seen[item_id] += 1
        if seen[item_id] == 2:
            problems.append(Problem(str(path), item_id, "id", "duplicate id"))
        P = lambda fld, msg, sev="error": problems.append(Problem(str(path), item_id, fld, msg, sev))  # noqa: E731
        usable = True
        question = r.get("question")
        if not isinstance(question, str) or not question.strip():
            P("question", "empty question")
            usable = False
        raw_choices = r.get("choices")
        if not isinstance(raw_choices, list):
            P("choices", "choices is not a list")
            raw_choices = []
        choices, cprobs = normalise_choices(raw_choices)
        for fld, msg in cprobs:
            P(fld, msg, "warning")
        if len(choices) < 2:
            P("choices", f"fewer than two choices ({len(choices)})")
            usable = False
        answer = None
        if r.get("answer") not in (None, ""):
            answer, how = parse_answer(r["answer"], choices)
            if answer is None:
                P("answer", f"answer {r['answer']!r} is not one of the choices {[f'{l}. {t}' for l, t in choices]}")
            elif how == "prefix":
                P("answer", f"answer {r['answer']!r} matched choice {answer}. {dict(choices)[answer]!r} by prefix "
                            "(a truncated text)", "warning")
        rel = r.get("video_path")
        video = None
        if not isinstance(rel, str) or not rel.strip():
            P("video_path", "missing video_path")
            rel = ""
        else:
            video = resolve_video(rel, path, videos_root)
            if check_videos and not video.is_file():
                P("video_path", f"video not found: {video}")
        support_raw = r.get("support_frames") or []
        support: list[float] = []
        if not isinstance(support_raw, list):
            P("support_frames", f"support_frames is not a list: {support_raw!r}")
            support_raw = []
        for s in support_raw:
            try:
                support.append(float(s))
            except (TypeError, ValueError):
                P("support_frames", f"support time {s!r} is not a number")
        duration = clip_duration_from_name(rel) if rel else None
        if duration is None and check_videos and video is not None and video.is_file():
            try:
                from ..video.frames import probe_video

                duration = probe_video(video).duration_s
            except Exception as e:  # noqa: BLE001
                P("video_path", f"cannot read video: {e}")
        for s in support:
            if s < 0:
                P("support_frames", f"negative support time {s} (kept)", "warning")
            elif duration is not None and s > duration + 1e-6:
                P("support_frames", f"support time {s} s is past the clip's end ({duration:g} s) (kept)", "warning")
        known = {"id", "question", "choices", "answer", "support_frames", "video_path"}
        if usable:
            items.append(Item(item_id, question.strip(), choices, answer, support, video, rel, str(path),
                              {k2: v for k2, v in r.items() if k2 not in known}))
    return items, problems


def load_items(path, videos_root=None) -> list[Item]:
    """Usable items of a file. Raises DatasetError only if the file itself is unusable."""
    items, problems = parse_items(path, videos_root)
    fatal = [p for p in problems if p.item_id is None]
    if fatal:
        raise DatasetError(fatal)
    if problems:
        import warnings

        n_err = sum(p.severity == "error" for p in problems)
        warnings.warn(f"{path}: {n_err} error(s), {len(problems) - n_err} warning(s); run "
                      f"`python -m roadbuddy_utils validate {path} --skip-videos`", stacklevel=2)
    return items


# --------------------------------------------------------------------------- validation

def summarize(items: list[Item], check_videos: bool = True) -> dict:
    videos = Counter(i.video_rel for i in items)
    per_video = Counter(videos.values())
    return {
        "questions": len(items),
        "videos": len(videos),
        "questions_per_video": {"mean": round(len(items) / max(1, len(videos)), 2),
                                "histogram": dict(sorted(per_video.items()))},
        "choice_counts": dict(sorted(Counter(i.n_choices for i in items).items())),
        "answer_letters": dict(sorted(Counter(i.answer for i in items if i.answer).items())),
        "with_answers": sum(i.answer is not None for i in items),
        "missing_videos": sorted({str(i.video_path) for i in items if not i.video_exists}) if check_videos else None,
    }


def validate(path, videos_root=None, check_videos: bool = True) -> tuple[dict, list[Problem]]:
    """Summary and every problem; missing or unreadable videos too unless ``check_videos`` is off (the question
    file alone, before the clips are downloaded)."""
    items, problems = parse_items(path, videos_root, check_videos=check_videos)
    return summarize(items, check_videos), problems


def errors(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def format_report(path, summary: dict, problems: list[Problem]) -> str:
    """The summary, then every problem grouped: errors (unusable or dropped), then warnings (loaded with a fix)."""
    missing = summary["missing_videos"]
    lines = [f"{path}",
             f"  questions: {summary['questions']}   videos: {summary['videos']}   "
             f"questions per video: {summary['questions_per_video']['mean']} "
             f"(histogram {summary['questions_per_video']['histogram']})",
             f"  choices per question: {summary['choice_counts']}",
             f"  answer letters: {summary['answer_letters'] or 'none (test split)'}",
             f"  missing videos: {len(missing)}" if missing is not None else
             "  missing videos: not checked (--skip-videos)"]
    lines += [f"    {v}" for v in (missing or [])[:20]]
    if missing and len(missing) > 20:
        lines.append(f"    ... and {len(missing) - 20} more")
    errs = errors(problems)
    warns = [p for p in problems if p.severity != "error"]
    for title, group in (("ERRORS (unusable or dropped)", errs), ("WARNINGS (loaded with a fix)", warns)):
        if group:
            lines.append(f"  {title}: {len(group)}")
            lines += [f"    {p}" for p in group]
    lines.append(f"  {len(errs)} errors, {len(warns)} warnings" if problems else "  no problems")
    return "\n".join(lines)

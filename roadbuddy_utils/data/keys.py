"""Answer keys: the gold letter of each question, from any of the files users have.

    gold = read_answer_key("outputs/demo/data/answers/public_test_answers.json")   # {id: letter}
    gold, problems = parse_answer_key("key.csv")     # the usable entries and every problem, for reports

Three forms, told apart by their content (not their name):

* a JSON like the competition files: ``{"data": [{"id": ..., "choices": [...], "answer": "B. Sai"}, ...]}``
  (or the bare list); the answer may be the full choice string, a letter or the choice text, and is
  checked against the item's choices when it has them (``questions.parse_answer``);
* a JSON map ``{id: letter}`` (the demo's test answers; ``"B. Sai"`` is read as ``B`` too);
* a CSV with an ``id`` and an ``answer`` column (a submission file used as a key).

Every problem names the file (and the CSV line), the id and the field, as ``validate`` does: an
entry without an id or an answer, an answer that is no letter or not one of the item's choices, the
same id given two different answers. Such an entry is left out of the key (reported, never guessed);
``read_answer_key`` raises ``DatasetError`` listing them all, ``parse_answer_key`` returns them.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .questions import LETTERS, DatasetError, Problem, normalise_choices, parse_answer, parse_choice


def _letter(raw) -> str | None:
    """A lone letter (any case) or the letter of ``"B. Sai"`` / ``"B.Sai"``; None otherwise."""
    s = str(raw).strip()
    if len(s) == 1 and s.upper() in LETTERS:
        return s.upper()
    letter, _ = parse_choice(s)
    return letter


class _Key:
    """Entries collected with their problems; an id answered two different ways is dropped."""

    def __init__(self, path: Path):
        self.path, self.gold, self.problems, self.conflicts = path, {}, [], set()

    def problem(self, item_id, field, message, where: str | None = None) -> None:
        self.problems.append(Problem(where or str(self.path), None if item_id is None else str(item_id), field, message))

    def add(self, item_id, letter: str, where: str | None = None) -> None:
        item_id = str(item_id)
        if item_id in self.conflicts:
            return
        if item_id in self.gold and self.gold[item_id] != letter:
            self.problem(item_id, "answer", f"answered both {self.gold.pop(item_id)} and {letter}: left out", where)
            self.conflicts.add(item_id)
            return
        self.gold[item_id] = letter


def _from_records(key: _Key, records: list) -> None:
    for k, r in enumerate(records):
        if not isinstance(r, dict):
            key.problem(f"#{k}", None, f"entry is a {type(r).__name__}, not an object")
            continue
        item_id = str(r.get("id", "")).strip()
        if not item_id:
            key.problem(f"#{k}", "id", "missing id")
            continue
        raw = r.get("answer")
        if raw is None or not str(raw).strip():
            key.problem(item_id, "answer", "no answer")
            continue
        if isinstance(r.get("choices"), list):
            choices, _ = normalise_choices(r["choices"])
            letter, _ = parse_answer(raw, choices)  # (letter, how it matched)
            if letter is None:
                key.problem(item_id, "answer", f"answer {raw!r} is not one of the choices "
                                               f"{[f'{l}. {t}' for l, t in choices]}")
                continue
        else:
            letter = _letter(raw)
            if letter is None:
                key.problem(item_id, "answer", f"answer {raw!r} is not a letter A-{LETTERS[-1]}")
                continue
        key.add(item_id, letter)


def _from_map(key: _Key, mapping: dict) -> None:
    for item_id, raw in mapping.items():
        letter = _letter(raw) if isinstance(raw, str) else None
        if letter is None:
            key.problem(item_id, "answer", f"answer {raw!r} is not a letter A-{LETTERS[-1]}")
            continue
        key.add(item_id, letter)


def _from_csv(key: _Key, text: str) -> None:
    rows = list(csv.reader(text.splitlines()))
    header = [h.strip().casefold() for h in rows[0]] if rows else []
    if "id" not in header or "answer" not in header:
        key.problem(None, None, f"a CSV answer key needs a header with 'id' and 'answer' columns, got {rows[:1]}")
        return
    i_id, i_ans = header.index("id"), header.index("answer")
    for n, row in enumerate(rows[1:], 2):
        where = f"{key.path}:{n}"
        if not any(c.strip() for c in row):
            continue
        item_id = row[i_id].strip() if len(row) > i_id else ""
        if not item_id:
            key.problem(f"#{n}", "id", "missing id", where)
            continue
        if len(row) <= i_ans or not row[i_ans].strip():
            key.problem(item_id, "answer", f"no answer ({len(row)} fields, the header has {len(header)})", where)
            continue
        raw = row[i_ans]
        letter = _letter(raw)
        if letter is None:
            key.problem(item_id, "answer", f"answer {raw!r} is not a letter A-{LETTERS[-1]}", where)
            continue
        key.add(item_id, letter, where)


def parse_answer_key(path) -> tuple[dict[str, str], list[Problem]]:
    """``({id: letter}, problems)``. A problem with ``item_id`` None is about the whole file (unreadable,
    no entries; see ``file_problems``); the others are entries left out of the key (``#k``: the k-th
    JSON entry or CSV line, when it has no id)."""
    path = Path(path)
    key = _Key(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        key.problem(None, None, f"cannot read the answer key: {e}")
        return {}, key.problems
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            key.problem(None, None, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}")
            return {}, key.problems
        if isinstance(doc, dict) and isinstance(doc.get("data"), list):
            _from_records(key, doc["data"])
        elif isinstance(doc, list):
            _from_records(key, doc)
        elif isinstance(doc, dict) and "data" not in doc:
            _from_map(key, doc)
        else:
            key.problem(None, "data", "expected {\"data\": [...]}, a list of {id, answer} or an {id: letter} map")
    else:
        _from_csv(key, text)
    if not key.gold and not any(p.item_id is None for p in key.problems):
        key.problem(None, None, "no answers in the file")
    return key.gold, key.problems


def file_problems(problems: list[Problem]) -> list[Problem]:
    """The problems that make a key file unusable as a whole (not one entry)."""
    return [p for p in problems if p.item_id is None]


def read_answer_key(path) -> dict[str, str]:
    """``{id: letter}`` from a competition-style JSON, an ``{id: letter}`` map or an ``id,answer`` CSV.
    Raises ``DatasetError`` listing every problem (file, line, id, field) if there is any."""
    gold, problems = parse_answer_key(path)
    if problems:
        raise DatasetError(problems)
    return gold

"""Small file helpers shared by every stage: the repository root, atomic JSON / JSONL writes."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

# the repository root: notebooks/, params/ and the runs' relative output_dir paths start here
REPO = Path(__file__).resolve().parents[2]


def write_json(obj, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_jsonl(records: Iterable[dict], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def repair_jsonl(path) -> int:
    """Drop a last line cut short by a kill (no trailing newline / not JSON). Returns bytes removed."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    data = path.read_bytes()
    cut = len(data)
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
    else:
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        try:
            json.loads(last)
        except ValueError:
            cut = len(data) - len(last)
    if cut < len(data):
        with open(path, "r+b") as f:
            f.truncate(cut)
    return len(data) - cut


def as_list(value, name: str = "value") -> list | None:
    """A list parameter as a list, however it was passed: a list or tuple, None, a JSON list string
    (``'["a.jsonl", "b.jsonl"]'``), or a single string (one element). ``papermill -p name x.jsonl``
    passes the last form; anything else (a number, a dict) fails with the way to pass a list."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (str, Path)):
        s = str(value).strip()
        if s.startswith("["):
            try:
                parsed = json.loads(s)
            except ValueError as e:
                raise ValueError(f"{name}: {s!r} looks like a JSON list but does not parse ({e}); pass a list as "
                                 f"-y \"{name}: [a, b]\" or a JSON list string") from None
            if not isinstance(parsed, list):
                raise ValueError(f"{name}: {s!r} is not a list")
            return parsed
        return [str(value)]
    raise ValueError(f"{name}: expected a list (or one string), got {type(value).__name__} {value!r}; "
                     f"pass a list with papermill as -y \"{name}: [a, b]\"")

"""Small file helpers shared by every stage: atomic JSON / JSONL writes."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable


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

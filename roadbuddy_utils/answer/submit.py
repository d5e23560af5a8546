"""Merge prediction shards and write a checked submission.

    preds = merge_predictions(["outputs/kaggle/03_shard0/predictions.jsonl", ".../03_shard1/predictions.jsonl"])
    write_submission(preds, "private_test.json", "outputs/kaggle/07_submit")

Writes ``submission.csv`` (``id,answer``) and ``time_submission.csv`` (``id,answer,time``, time in
ms) in the test file's id order, only after every check passed: every test id exactly once, no
unknown id, each letter within that question's choices. Otherwise :class:`SubmissionError` lists
every problem and nothing is written (files are written to temp names and renamed together).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

from ..common.files import as_list, read_jsonl
from ..data.questions import load_items


class SubmissionError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s):\n" + "\n".join(problems))


def merge_predictions(paths: str | Sequence[str]) -> dict[str, dict]:
    """id -> prediction line. Within a file the last line of an id wins (a resumed run); the same
    id answered differently in two shards is an error."""
    paths = as_list(paths, "predictions")
    merged: dict[str, dict] = {}
    origin: dict[str, str] = {}
    problems = []
    for p in paths:
        if not Path(p).exists():
            problems.append(f"{p}: predictions file not found")
            continue
        latest = {r["id"]: r for r in read_jsonl(p)}
        for i, r in latest.items():
            if i in merged and merged[i].get("pred") != r.get("pred"):
                problems.append(f"id={i}: answered {merged[i].get('pred')} in {origin[i]} but {r.get('pred')} in {p}")
            merged[i], origin[i] = r, str(p)
    if problems:
        raise SubmissionError(problems)
    return merged


def check_submission(preds: dict[str, dict], test_json, videos_root=None) -> list[str]:
    items = load_items(test_json, videos_root)
    problems = []
    by_id = {i.id: i for i in items}
    for i in items:
        r = preds.get(i.id)
        if r is None:
            problems.append(f"id={i.id}: no prediction")
        elif r.get("pred") not in i.letters:
            problems.append(f"id={i.id} field=pred: {r.get('pred')!r} is not one of this question's letters {i.letters}")
    for i in sorted(set(preds) - set(by_id)):
        problems.append(f"id={i}: not in {test_json}")
    return problems


def write_submission(preds: dict[str, dict], test_json, output_dir, videos_root=None) -> dict[str, Path]:
    problems = check_submission(preds, test_json, videos_root)
    if problems:
        raise SubmissionError(problems)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [i.id for i in load_items(test_json, videos_root)]
    files = {"submission": out / "submission.csv", "time_submission": out / "time_submission.csv"}
    tmps = {k: p.with_name(p.name + ".tmp") for k, p in files.items()}
    with open(tmps["submission"], "w", newline="") as f1, open(tmps["time_submission"], "w", newline="") as f2:
        w1, w2 = csv.writer(f1), csv.writer(f2)
        w1.writerow(["id", "answer"])
        w2.writerow(["id", "answer", "time"])
        for i in ids:
            r = preds[i]
            w1.writerow([i, r["pred"]])
            w2.writerow([i, r["pred"], int(round(r.get("time_ms") or 0))])
    for k in files:
        os.replace(tmps[k], files[k])
    return files

"""The runs 05 compares: predictions.jsonl files read into DataFrames, with what each run was.

    runs = load_runs(["outputs/demo/03_zero_shot/predictions.jsonl", "outputs/demo/03_zero_shot@no_video/predictions.jsonl"],
                     items=items)            # {label: DataFrame}, labels = the runs' folder names
    meta = runs_meta(paths)                   # model, scorer, variant from each run_config.json

One row per question, the columns of ``predictions.jsonl`` (``RUN_COLUMNS`` always present).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..common.files import as_list
from ..data.choices import _missing

RUN_COLUMNS = ("id", "video", "pred", "scores", "answer", "correct", "n_choices", "time_ms", "source", "error",
               "text_only", "n_frames", "frame_times")


def _default_labels(paths: Sequence[Path]) -> list[str]:
    """Name each run by its folder (``03_zero_shot``); go up one level at a time until names are unique."""
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parent.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """One run's ``predictions.jsonl`` as a DataFrame, one row per id.

    A resumed run appends: the latest line for an id wins (a retried error replaced by an answer).
    A malformed line raises ``ValueError`` naming the file and line, because silently dropping it
    would change the accuracy without a trace (``util.repair_jsonl`` fixes a line cut by a kill).
    """
    path = Path(path)
    rows: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{k}: malformed JSON line ({e}): {line[:80]!r}") from None
            if not isinstance(r, dict) or "id" not in r:
                raise ValueError(f"{path}:{k}: a prediction line must be a JSON object with an 'id': {line[:80]!r}")
            rows.pop(str(r["id"]), None)  # keep file order of the latest line
            rows[str(r["id"])] = r | {"id": str(r["id"])}
    df = pd.DataFrame(list(rows.values()))
    for c in RUN_COLUMNS:
        if c not in df.columns:
            df[c] = None
    return df.reset_index(drop=True)


def run_labels(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[str]:
    """The given labels (checked), or the runs' folder names. Either may be one string or a JSON
    list string (``papermill -p predictions x.jsonl``), see ``util.as_list``."""
    paths = [Path(p) for p in as_list(paths, "predictions")]
    labels = as_list(labels, "labels") or _default_labels(paths)
    if len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} prediction files")
    if len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be unique, got {labels}")
    return labels


def load_runs(paths: Sequence[str | Path], labels: Sequence[str] | None = None,
              items=None) -> dict[str, pd.DataFrame]:
    """Several runs keyed by label (default: their folder names), in the order given.

    With ``items`` (``data.Item``s of the evaluated split) each run gains the question text
    (``question``, for themes) and the gold letter where its lines have none (a test split whose
    answers come from a separate file)."""
    paths = as_list(paths, "predictions")
    runs = {lab: read_predictions(p) for lab, p in zip(run_labels(paths, labels), paths)}
    return {lab: attach_items(df, items) for lab, df in runs.items()} if items is not None else runs


def items_frame(items) -> pd.DataFrame:
    """Questions as a run-shaped DataFrame with gold letters and no predictions, e.g. the train split
    as the reference of ``majority_letter_baseline``."""
    return pd.DataFrame([{"id": str(i.id), "video": i.video_rel, "question": i.question, "answer": i.answer,
                          "n_choices": i.n_choices, "pred": None} for i in items],
                        columns=["id", "video", "question", "answer", "n_choices", "pred"])


def attach_items(df: pd.DataFrame, items) -> pd.DataFrame:
    """Copy of a run with ``question`` text from ``items`` and their gold letter where a line has none."""
    by_id = {str(i.id): i for i in items}
    out = df.copy()
    out["question"] = [by_id[i].question if i in by_id else None for i in out["id"]]
    out["answer"] = [by_id[i].answer if _missing(a) and i in by_id else a for i, a in zip(out["id"], out["answer"])]
    return out


def run_meta(predictions_path: str | Path) -> dict:
    """What a run was, from the ``run_config.json`` that 03 writes beside its predictions.

    Keys: model, adapter, scorer, variant (``plain``, ``no_video``, ``shuffle_choices``,
    ``debias:prior`` ...), tiny_random, model_n_frames and max_pixels (to find its cached frames).
    Empty when there is no such file (predictions from elsewhere)."""
    path = Path(predictions_path).parent / "run_config.json"
    if not path.exists():
        return {}
    cfg = json.loads(path.read_text(encoding="utf-8"))
    model, infer = cfg.get("model") or {}, cfg.get("infer") or {}
    parts = [cfg.get("ablation"), f"debias:{cfg['debias']}" if cfg.get("debias") else None]
    return {"model": model.get("model"), "adapter": model.get("adapter_path"), "scorer": infer.get("scoring"),
            "variant": "+".join(p for p in parts if p) or "plain", "tiny_random": model.get("tiny_random"),
            "model_n_frames": model.get("n_frames"), "max_pixels": model.get("max_pixels")}


def runs_meta(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> dict[str, dict]:
    """``run_meta`` of each predictions file, keyed like ``load_runs``."""
    paths = as_list(paths, "predictions")
    return {lab: run_meta(p) for lab, p in zip(run_labels(paths, labels), paths)}

"""The runs 05 compares: predictions.jsonl files and submission CSVs read into DataFrames, with what each run was.

    runs = load_runs(["outputs/demo/03_zero_shot/predictions.jsonl", "outputs/demo/07_submit/submission.csv"],
                     items=items, gold=keys.read_answer_key("answers.csv"))  # {label: DataFrame}
    meta = runs_meta(paths)                   # model, scorer, variant from each run_config.json / ensemble.json
    summary, problems = input_checks(runs)    # per run: missing ids, letters not offered, scores or not

One row per question, the columns of ``predictions.jsonl`` (``RUN_COLUMNS`` always present). A
submission (``id,answer`` CSV: an older run, another team's file, 07's output) is a run with letters
only: no ``scores`` (so it is left out of calibration, coverage and debiasing), no ``video`` or
``n_choices`` until the questions (``items``) or another run of the same ids supply them.

With a gold key or several runs, every run is completed to the same questions: an id a run lacks is
added unanswered (``missing``: it counts as wrong) and listed, never silently left out of its
accuracy; a letter the question does not offer is flagged (``pred_offered`` False).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..common.files import as_list
from ..data.choices import _missing
from ..data.keys import file_problems, parse_answer_key
from ..data.questions import LETTERS, DatasetError

RUN_COLUMNS = ("id", "video", "pred", "scores", "answer", "correct", "n_choices", "time_ms", "source", "error",
               "text_only", "n_frames", "frame_times")


def _default_labels(paths: Sequence[Path]) -> list[str]:
    """Name each run by its folder (``03_zero_shot``); go up one level at a time until names are unique."""
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parent.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def _frame(rows: list[dict], kind: str, path: Path, problems: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in RUN_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df = df.reset_index(drop=True)
    df.attrs.update({"kind": kind, "file": str(path), "problems": problems})
    return df


def _letter_or_raw(raw: str) -> str | None:
    """``"b"`` -> ``"B"``, ``"B. Sai"`` -> ``"B"``; anything else is kept as written (and flagged later)."""
    s = raw.strip()
    if not s:
        return None
    if len(s) == 1 and s.upper() in LETTERS:
        return s.upper()
    head = s[0].upper()
    return head if head in LETTERS and len(s) > 1 and s[1] in ".):" else s


def read_submission(path: str | Path) -> pd.DataFrame:
    """A submission file (``id,answer`` CSV; ``time_submission.csv``'s ``time`` is read as ``time_ms``) as a run.

    Letters only: ``scores``, ``video`` and ``n_choices`` stay empty (``load_runs`` fills the last two
    from the questions). A file without an ``id`` and an ``answer`` column raises ``ValueError``; a row
    without an id or an answer, and an id given twice (the last row wins, as in ``read_predictions``), is
    kept in ``df.attrs["problems"]`` with its line, never fatal."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        table = list(csv.reader(f))
    header = [h.strip().casefold() for h in table[0]] if table else []
    if "id" not in header or "answer" not in header:
        raise ValueError(f"{path}: a submission needs a header with 'id' and 'answer' columns, got {table[:1]}")
    cols = {name: header.index(name) for name in ("id", "answer", "time") if name in header}
    rows: dict[str, dict] = {}
    problems: list[dict] = []
    for n, row in enumerate(table[1:], 2):
        if not any(c.strip() for c in row):
            continue
        get = lambda name: row[cols[name]].strip() if name in cols and cols[name] < len(row) else ""  # noqa: E731
        item_id, answer = get("id"), get("answer")
        if not item_id:
            problems.append({"file": str(path), "line": n, "id": None, "field": "id", "problem": f"no id: {row}"})
            continue
        if not answer:
            problems.append({"file": str(path), "line": n, "id": item_id, "field": "answer",
                             "problem": "no answer (counts as unanswered)"})
        if item_id in rows:
            problems.append({"file": str(path), "line": n, "id": item_id, "field": "id",
                             "problem": f"id given twice (line {rows[item_id]['line']}: {rows[item_id]['pred']}, "
                                        f"line {n}: {_letter_or_raw(answer)}); the last line is used"})
            rows.pop(item_id)
        t = pd.to_numeric(get("time"), errors="coerce") if "time" in cols else float("nan")
        rows[item_id] = {"id": item_id, "pred": _letter_or_raw(answer), "source": "submission", "line": n,
                         "time_ms": None if pd.isna(t) else float(t)}
    return _frame(list(rows.values()), "submission", path, problems)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """One run's ``predictions.jsonl`` (or a submission ``.csv``, see ``read_submission``) as a DataFrame,
    one row per id.

    A resumed run appends: the latest line for an id wins (a retried error replaced by an answer).
    A malformed line raises ``ValueError`` naming the file and line, because silently dropping it
    would change the accuracy without a trace (``util.repair_jsonl`` fixes a line cut by a kill).
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_submission(path)
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
    return _frame(list(rows.values()), "predictions", path, [])


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
              items=None, gold: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Several runs keyed by label (default: their folder names), in the order given, on the same questions.

    With ``items`` (``data.Item``s of the evaluated split) each run gains the question text
    (``question``, for themes), and the gold letter, ``video`` and ``n_choices`` where its lines have
    none (a submission; a test split whose answers come from a separate file). ``gold`` (an answer
    key, ``keys.read_answer_key``) fills gold letters too and says which questions every run must
    answer; without it, each run must answer the questions any of them answered. See ``complete_runs``."""
    paths = as_list(paths, "predictions")
    runs = {lab: read_predictions(p) for lab, p in zip(run_labels(paths, labels), paths)}
    if items is not None:
        runs = {lab: attach_items(df, items) for lab, df in runs.items()}
    return complete_runs(runs, gold, items)


def complete_runs(runs: dict[str, pd.DataFrame], gold: dict[str, str] | None = None, items=None) -> dict[str, pd.DataFrame]:
    """Every run on the same questions, with what one run knows about a question shared with the others.

    The expected ids are ``gold``'s when given, else every id any run answered. An id a run lacks is
    added with no answer (``missing`` True, so it counts as wrong; ``input_checks`` lists it). Gold
    letters come from ``gold`` where a line has none; ``video`` and ``n_choices`` missing on a line
    (a submission) are taken from another run of the same id, so intervals still resample videos.
    ``pred_offered``: whether the answer is a letter the question offers (from ``items``, else the
    run's score letters, else A..n_choices; None when unknown or unanswered)."""
    expected = list(gold) if gold else list(dict.fromkeys(i for df in runs.values() for i in df["id"]))
    known: dict[str, dict[str, object]] = {}
    for df in runs.values():
        for col in ("video", "n_choices", "answer"):
            for i, v in zip(df["id"], df[col]):
                if not _missing(v):
                    known.setdefault(col, {}).setdefault(i, v)
    letters = {str(i.id): i.letters for i in items} if items is not None else {}
    out = {}
    for lab, df in runs.items():
        attrs = dict(df.attrs)
        have = set(df["id"])
        lacking = [i for i in expected if i not in have]
        df = pd.concat([df.assign(missing=False),
                        pd.DataFrame({"id": lacking, "pred": None, "missing": True,
                                      "error": f"no answer for this id in {attrs.get('file', lab)}"})],
                       ignore_index=True) if lacking else df.assign(missing=False)
        if gold:
            df["answer"] = [gold.get(i) if _missing(a) else a for i, a in zip(df["id"], df["answer"])]
        for col in ("video", "n_choices", "answer"):
            df[col] = [known.get(col, {}).get(i) if _missing(v) else v for i, v in zip(df["id"], df[col])]
        df["pred_offered"] = [_offered(p, letters.get(i), sc, k) for i, p, sc, k
                              in zip(df["id"], df["pred"], df["scores"], df["n_choices"])]
        df.attrs.update(attrs)
        out[lab] = df
    return out


def _offered(pred, item_letters, scores, n_choices) -> bool | None:
    if _missing(pred):
        return None
    offered = item_letters or (list(scores) if isinstance(scores, dict) and scores else None) \
        or (list(LETTERS[:int(n_choices)]) if not _missing(n_choices) else None)
    return None if offered is None else pred in offered


def answer_key(answers_json) -> tuple[dict[str, str] | None, list]:
    """05's ``answers_json`` (any form ``keys.parse_answer_key`` reads): ``({id: letter}, problems)``,
    ``(None, [])`` when not given. A file unusable as a whole raises ``DatasetError``; a bad entry is
    one problem (that question is left without gold, and ``input_checks`` lists it)."""
    if not answers_json:
        return None, []
    gold, problems = parse_answer_key(answers_json)
    if file_problems(problems):
        raise DatasetError(problems)
    return gold, problems


def input_checks(runs: dict[str, pd.DataFrame], key_problems=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What 05 was given, before any number: one row per run and one row per problem.

    Per run: its kind (predictions / submission) and file, questions expected, answered, missing (an id
    without a line: counted wrong), answers that are not a letter the question offers (counted wrong,
    since no such answer can be right), questions without gold (not scored), whether it has letter
    probabilities (if not: left out of calibration, coverage and debiasing), and the interval's unit.
    Problems: every missing id, letter not offered and bad submission row, with file, line and id, then
    the answer key's (``key_problems``, from ``answer_key``)."""
    rows, problems = [], []
    for lab, df in runs.items():
        kind, file = df.attrs.get("kind", "predictions"), df.attrs.get("file")
        missing = df[df.get("missing", pd.Series(False, index=df.index)).fillna(False).astype(bool)]
        bad = df[df.get("pred_offered", pd.Series(None, index=df.index)).map(lambda x: x is False)]
        has_scores = df["scores"].map(lambda x: isinstance(x, dict) and len(x) > 0)
        no_video = int(df["video"].map(_missing).sum())
        rows.append({"run": lab, "kind": kind, "file": file, "n_questions": len(df), "n_answered": int((~df["pred"].map(_missing)).sum()),
                     "n_missing": len(missing), "n_not_offered": len(bad),
                     "n_without_gold": int(df["answer"].map(_missing).sum()),
                     "scores": f"{int(has_scores.sum())} of {len(df)}" if has_scores.any() else
                     "none: left out of calibration, coverage and debiasing",
                     "interval_unit": "video" if not no_video else
                     "question (no video known)" if no_video == len(df) else f"video ({no_video} questions alone)"})
        problems += [{"run": lab, "file": file, "line": None, "id": i, "field": "id",
                      "problem": "missing from this run: counted as wrong"} for i in missing["id"]]
        problems += [{"run": lab, "file": file, "line": None if _missing(r.get("line")) else int(r["line"]),
                      "id": r["id"], "field": "answer",
                      "problem": f"answer {r['pred']!r} is not a letter this question offers: counted as wrong"}
                     for r in bad.to_dict("records")]
        problems += [{"run": lab} | p for p in df.attrs.get("problems", [])]
    for p in key_problems:
        file, _, line = str(p.file).rpartition(":") if str(p.file).rpartition(":")[2].isdigit() else (p.file, "", None)
        problems.append({"run": "answer key", "file": file, "line": int(line) if line else None, "id": p.item_id,
                         "field": p.field, "problem": p.message + " (no gold for this id)"})
    cols = ["run", "file", "line", "id", "field", "problem"]
    return pd.DataFrame(rows), pd.DataFrame(problems, columns=cols)


def items_frame(items) -> pd.DataFrame:
    """Questions as a run-shaped DataFrame with gold letters and no predictions, e.g. the train split
    as the reference of ``majority_letter_baseline``."""
    return pd.DataFrame([{"id": str(i.id), "video": i.video_rel, "question": i.question, "answer": i.answer,
                          "n_choices": i.n_choices, "pred": None} for i in items],
                        columns=["id", "video", "question", "answer", "n_choices", "pred"])


def attach_items(df: pd.DataFrame, items) -> pd.DataFrame:
    """Copy of a run with ``question`` text from ``items``, and their gold letter, ``video`` and
    ``n_choices`` where a line has none (a submission has only letters)."""
    by_id = {str(i.id): i for i in items}
    out = df.copy()
    out["question"] = [by_id[i].question if i in by_id else None for i in out["id"]]
    for col, attr in (("answer", "answer"), ("video", "video_rel"), ("n_choices", "n_choices")):
        out[col] = [getattr(by_id[i], attr) if _missing(v) and i in by_id else v for i, v in zip(out["id"], out[col])]
    return out


def run_meta(predictions_path: str | Path) -> dict:
    """What a run was, from the ``run_config.json`` that 03 writes beside its predictions (or the
    ``ensemble.json`` of an ensemble).

    Keys: model, adapter, scorer, variant (``plain``, ``no_video``, ``shuffle_choices``,
    ``debias:prior``, ``ensemble:mean`` ...), tiny_random, model_n_frames and max_pixels (to find its
    cached frames). A submission CSV is variant ``submission``; otherwise empty when there is no such
    file (predictions from elsewhere)."""
    predictions_path = Path(predictions_path)
    ens = predictions_path.parent / "ensemble.json"
    if predictions_path.suffix.lower() == ".csv":
        return {"variant": "submission", "scorer": "letters only"}
    if ens.exists():
        e = json.loads(ens.read_text(encoding="utf-8"))
        return {"model": " + ".join(m["label"] for m in e.get("members", [])), "scorer": e.get("scores"),
                "variant": f"ensemble:{e.get('method')}"}
    path = predictions_path.parent / "run_config.json"
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

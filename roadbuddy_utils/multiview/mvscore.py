"""Multi-camera scores built as the official ones: per-subtask figures, the phase score with the track's
formula, intervals resampled by scene, a local judge for open answers.

    python -m roadbuddy_utils mv-score outputs/demo/06_multiview_router_rag/results.json \\
        --gold outputs/demo/multiview/questions.json [--phase 1|2] [--judge-model M] [--json]
    res = score_run(lines)                               # 06's results.json lines (gold in gold_answer)
    res = score_run(lines, gold, phase=2, judge_model="tiny:qwen2_5_vl", cache_dir=out)
    table(res)                                           # subtasks x figures with 95 % intervals

**Join by position.** Predictions, gold answers and judge records of one run line up by the item's
index in the file: line k of the results is item k of the gold file. Question text is never a key
(phase 2 repeats 9 scene / frame / question triples: those stay two items); it is only compared, and
every position where it differs is reported (``join.mismatches``). A gold item without a prediction
line counts as unanswered (wrong, and an empty open answer).

**Per item** (``official.py`` for the formula): a letter question is read by the project's extractor
(options A-E, the article "a" never read as A), yes/no by its reader; open answers get ROUGE-L,
METEOR and BLEU-4 (``cocoeval.py``: the toolkit's COCO-caption code where Java runs, an approximation
otherwise, always named in ``metrics_impl``) and, with ``judge_model``, a local judge's 0-100 score.
Without a judge the LLM term of the formula is replaced by ROUGE-L, and every report says so
(``llm_source``).

**Per subtask**: accuracy (closed items), ROUGE-L (mean), METEOR and BLEU-4 (corpus), the judge's mean,
and the subtask's score (accuracy for MCQ-group items, the phase's VQA combination for open ones,
mixed by count); the phase score weights subtasks by their question counts in this run
(``phase_score.value``) and, for a sample, by the official counts (``phase_score.official_weights``).
Every figure gets a 95 % percentile bootstrap interval that resamples whole scenes (``scene_token``):
questions about one scene share its images, so they are not independent.

**Sensitivity**: how many letter answers DriveBench's scorer (``official.toolkit_letter``) would read
differently, and the accuracy it would report; yes/no items, which it does not score, are counted.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..common.files import write_json
from ..common.stats import grouped_bootstrap_stat
from . import cocoeval, official
from .data import SUBTASKS, MVItem
from .judge import JudgeItem, judge_prompt, judge_summary, label, rubric_for, run_judge, visual_descriptions
from .router import classify
from .scoring import extract_choice, extract_yes_no, gold_kind

FIGURES = ("accuracy", "rouge_l", "meteor", "bleu4", "judge", "score")


def read_items(path) -> list[dict]:
    """A JSON list of item objects (06's results.json, a submission, a RoboSense or DriveBench file;
    ``{"data": [...]}`` / ``{"questions": [...]}`` wrappers too). Anything else raises ``ValueError``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if isinstance(doc, dict):
        doc = doc.get("data", doc.get("questions"))
    if not isinstance(doc, list) or not all(isinstance(x, dict) for x in doc):
        raise ValueError(f"{path}: expected a JSON list of item objects")
    return doc


def _question(d: dict) -> str:
    return str(d.get("question") or d.get("prompt") or "")


def join_by_position(results: Sequence[dict], gold: Sequence[dict] | None = None) -> tuple[list[dict], dict]:
    """One record per gold item (``gold`` None: the results' own ``gold_answer``, as 06 writes it):
    ``index, question, subtask, category, scene, frame, pred, gold``; and the join report (counts,
    positions whose question differs, lines beyond the gold file, predictions missing)."""
    own = gold is None
    gold = list(results) if own else list(gold)
    rows, mismatches = [], []
    for k, g in enumerate(gold):
        line = results[k] if k < len(results) else None
        q = _question(g)
        if line is not None and not own and _question(line).strip() != q.strip():
            mismatches.append(k)
        cat = g.get("category", g.get("question_type"))
        item = MVItem(id=str(k), index=k, question=q, category=str(cat).strip().lower() if cat else None, images=[],
                      answer="", scene_token=g.get("scene_token"), frame_token=g.get("frame_token"), raw=g,
                      source_format="")
        sub, _ = classify(item)
        gold_answer = g.get("gold_answer") if own else g.get("answer")
        rows.append({"index": k, "question": q, "subtask": sub, "category": item.category,
                     "scene": str(g.get("scene_token") or g.get("frame_token") or f"item{k}"),
                     "frame": g.get("frame_token"), "pred": None if line is None else line.get("answer"),
                     "gold": "" if gold_answer is None else str(gold_answer)})
    report = {"by": "position", "n_results": len(results), "n_gold": len(gold),
              "n_missing_predictions": max(0, len(gold) - len(results)),
              "n_extra_results": max(0, len(results) - len(gold)),
              "n_question_mismatches": len(mismatches), "mismatches": mismatches[:20],
              "duplicate_triples": sum(n - 1 for n in Counter((r["scene"], r["frame"], r["question"])
                                                               for r in rows).values() if n > 1)}
    return rows, report


# ----------------------------------------------------------------------------------------------
# Per-item scores


def item_scores(rows: Sequence[dict]) -> list[dict]:
    """Rows with a gold answer, each with ``kind`` (mcq / yesno / open) and, for closed items,
    ``correct`` (the project's reading) and the toolkit's reading."""
    out = []
    for r in rows:
        g = gold_kind(r["gold"])
        if g is None:
            continue
        kind, gold = g
        s = dict(r, kind=kind, gold_value=gold)
        pred = r["pred"]
        if kind == "mcq":
            got = extract_choice(pred, r["question"])
            s |= {"read": got, "correct": float(got == gold), "toolkit_read": official.toolkit_letter(pred),
                  "toolkit_correct": float(official.toolkit_correct(pred, gold))}
        elif kind == "yesno":
            got = extract_yes_no(pred)
            s |= {"read": got, "correct": float(got == gold)}
        out.append(s)
    return out


def _judge(items: list[dict], judge_model, cache, max_new_tokens: int, desc_file, batch_size: int,
           backend: str) -> dict[int, dict]:
    lookup = visual_descriptions(desc_file) if desc_file else None
    todo = []
    for s in items:
        if s["kind"] != "open":
            continue
        desc = lookup(s["scene"], s["frame"], s["question"]) if lookup else None
        rubric = rubric_for(s["subtask"], "open", s["category"])
        todo.append(JudgeItem(s["index"], rubric, judge_prompt(rubric, s["question"], s["gold"], s["pred"] or "", desc),
                              s["subtask"]))
    return run_judge(todo, judge_model, cache, max_new_tokens=max_new_tokens, batch_size=batch_size,
                     model_name=judge_model if isinstance(judge_model, str) else None, backend=backend)


# ----------------------------------------------------------------------------------------------
# The table as a function of the items drawn (so every figure can be resampled by scene)


class _Table:
    def __init__(self, items: list[dict], lang: cocoeval.LanguageScores, judge: dict[int, dict] | None, phase: int):
        self.phase, self.lang = phase, lang
        self.subtasks = [s for s in SUBTASKS if any(i["subtask"] == s for i in items)]
        self.sub = np.array([self.subtasks.index(i["subtask"]) for i in items], dtype=int)
        self.closed = np.array([i["kind"] != "open" for i in items], dtype=bool)
        self.correct = np.array([i.get("correct", np.nan) for i in items], dtype=float)
        pos, k = np.full(len(items), -1), 0
        for j, i in enumerate(items):
            if i["kind"] == "open":
                pos[j], k = k, k + 1
        self.lang_pos = pos
        self.judge = np.array([np.nan if judge is None or (judge.get(i["index"]) or {}).get("score") is None
                               else judge[i["index"]]["score"] for i in items], dtype=float)
        self.judged = {s: bool(np.isfinite(self.judge[(self.sub == k) & ~self.closed]).any())
                       for k, s in enumerate(self.subtasks)}

    def rows(self, idx: np.ndarray) -> dict[str, dict]:
        out = {}
        for k, s in enumerate(self.subtasks):
            sel = idx[self.sub[idx] == k]
            cl, op = sel[self.closed[sel]], sel[~self.closed[sel]]
            acc = 100 * float(self.correct[cl].mean()) if len(cl) else None
            lang = {m: None if v is None or np.isnan(v) else 100 * v for m, v in self.lang.corpus(self.lang_pos[op]).items()}
            j = self.judge[op]
            judge = float(np.nanmean(j)) if np.isfinite(j).any() else None
            llm = judge if self.judged[s] else lang["rouge_l"]
            open_score = official.vqa_score(self.phase, llm, lang["rouge_l"], lang["meteor"]) if len(op) else None
            out[s] = {"n": len(sel), "n_closed": len(cl), "n_open": len(op), "accuracy": acc, **lang,
                      "judge": judge, "score": official.mixed_score(len(cl), acc, len(op), open_score)}
        return out

    def vector(self, idx: np.ndarray, official_counts: dict) -> np.ndarray:
        rows = self.rows(idx)
        own = official.phase_score({s: r["score"] for s, r in rows.items()}, {s: r["n"] for s, r in rows.items()})
        off = official.phase_score({s: r["score"] for s, r in rows.items()}, official_counts)
        vals = [rows[s][f] for s in self.subtasks for f in FIGURES] + [own, off]
        return np.array([np.nan if v is None else v for v in vals], dtype=float)


def _r(v, nd: int = 2):
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def score_run(results: Sequence[dict], gold: Sequence[dict] | None = None, phase: int | None = None,
              judge_model=None, cache_dir=None, impl: str = "auto", n_boot: int = 2000, seed: int = 0,
              judge_max_new_tokens: int = 512, judge_batch_size: int = 4, desc_file=None,
              judge_backend: str = "hf") -> dict:
    """Everything ``mv-score`` prints, as one JSON-ready object: ``subtasks`` (figures with ``*_ci``),
    ``phase_score``, ``metrics_impl``, ``judge`` (None without a judge model), ``sensitivity``, ``join``,
    ``interval``. ``phase`` None: 2 when corruption questions are present, else 1. ``judge_model``: a
    model id (loaded through ``judge_backend``: hf, or vllm for the serving engine) or an object with
    ``chat_generate``; its records go to ``{cache_dir}/judge-<model>.jsonl``."""
    rows, join = join_by_position(results, gold)
    items = item_scores(rows)
    subs = {i["subtask"] for i in rows}
    phase = official.check_phase(phase) if phase is not None else (2 if "Corruption-MCQs" in subs else 1)
    opened = [i for i in items if i["kind"] == "open"]
    impl = cocoeval.resolve_impl(impl) if opened else "none"
    lang = cocoeval.language_scores([i["pred"] or "" for i in opened], [i["gold"] for i in opened], impl) \
        if opened else cocoeval.LanguageScores("none", np.zeros(0), np.zeros(0), np.zeros(0))
    judge_recs, judge_info = None, None
    if judge_model is not None and opened:
        name = judge_model if isinstance(judge_model, str) else getattr(judge_model, "name", type(judge_model).__name__)
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
        cache = Path(cache_dir or ".") / f"judge-{slug}.jsonl"
        judge_recs = _judge(items, judge_model, cache, judge_max_new_tokens, desc_file, judge_batch_size, judge_backend)
        judge_info = judge_summary(judge_recs, name) | {"cache": str(cache)}
    t = _Table(items, lang, judge_recs, phase)
    counts = official.PHASE_COUNTS[phase]
    if items:
        val, lo, hi = grouped_bootstrap_stat([i["scene"] for i in items], lambda idx: t.vector(idx, counts), n_boot, seed)
    else:
        val = lo = hi = np.zeros(2) * np.nan
    subtasks, all_rows = {}, t.rows(np.arange(len(items)))
    for k, s in enumerate(t.subtasks):
        row = all_rows[s]
        d = {"group": official.group(s), "n": row["n"], "n_closed": row["n_closed"], "n_open": row["n_open"]}
        for f_i, f in enumerate(FIGURES):
            j = k * len(FIGURES) + f_i
            d[f], d[f"{f}_ci"] = _r(val[j]), [_r(lo[j]), _r(hi[j])] if _r(val[j]) is not None else None
        d["n_judged"] = int(np.isfinite(t.judge[(t.sub == k) & ~t.closed]).sum())
        d["llm_source"] = (label(judge_info["model"]) if t.judged[s] else
                           "stand-in: ROUGE-L (" + ("the judge gave no score" if judge_info else "no judge model") + ")") \
            if row["n_open"] else None
        subtasks[s] = d
    missing = [s for s in counts if s not in t.subtasks]
    phase_score = {"phase": phase, "value": _r(val[-2]), "ci": [_r(lo[-2]), _r(hi[-2])],
                   "weights": "question counts per subtask in this run",
                   "official_weights": {"value": _r(val[-1]), "ci": [_r(lo[-1]), _r(hi[-1])], "counts": counts,
                                        "subtasks_missing": missing},
                   "llm": _llm_term(subtasks, judge_info),
                   "official": False}
    return {"phase": phase, "n_items": len(rows), "n_scored": len(items), "n_unscored": len(rows) - len(items),
            "subtasks": subtasks, "phase_score": phase_score,
            "metrics_impl": cocoeval.impl_info(impl) if impl != "none" else {"impl": "none", "label": "no open answers"},
            "judge": judge_info, "sensitivity": sensitivity(items), "join": join,
            "interval": {"method": "95 % percentile bootstrap resampling whole scenes (scene_token)", "n_boot": n_boot,
                         "seed": seed, "n_scenes": len({i["scene"] for i in items})}}


def _llm_term(subtasks: dict, judge_info: dict | None) -> str:
    """What stands for the LLM score in the total: the judge, ROUGE-L, or each where it applies."""
    if judge_info is None:
        return "stand-in: ROUGE-L (no judge model)"
    used = {d["llm_source"] for d in subtasks.values() if d["llm_source"]}
    if used == {judge_info["label"]}:
        return judge_info["label"]
    if judge_info["label"] not in used:
        return "stand-in: ROUGE-L (the judge gave no score)"
    return f"{judge_info['label']} where it gave scores, ROUGE-L in the subtasks where it gave none"


def save(res: dict, output_dir) -> Path:
    """``{output_dir}/official_score.json``, and the same object under ``official`` in ``metrics.json`` (when
    06 has written one) with ``metrics_impl`` at its top level, so that no reader of metrics.json takes
    approximate language metrics for the toolkit's."""
    out = Path(output_dir)
    path = write_json(res, out / "official_score.json")
    metrics = out / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text(encoding="utf-8"))
        write_json(m | {"official": res, "metrics_impl": res["metrics_impl"]}, metrics)
    return path


def sensitivity(items: Sequence[dict]) -> dict:
    """The project's letter reading against DriveBench's faulty regex, on the letter questions."""
    mcq = [i for i in items if i["kind"] == "mcq"]
    diff = [i for i in mcq if (i["read"] or "") != i["toolkit_read"]]
    return {"n_mcq": len(mcq), "n_read_differently": len(diff),
            "accuracy_project": _r(100 * np.mean([i["correct"] for i in mcq])) if mcq else None,
            "accuracy_toolkit_regex": _r(100 * np.mean([i["toolkit_correct"] for i in mcq])) if mcq else None,
            "examples": [{"index": i["index"], "answer": (i["pred"] or "")[:80], "project": i["read"],
                          "toolkit": i["toolkit_read"] or None, "gold": i["gold_value"]} for i in diff[:5]],
            "n_yesno_not_scored_by_toolkit": sum(i["kind"] == "yesno" for i in items)}


# ----------------------------------------------------------------------------------------------
# Reports


def _cell(v, ci) -> str:
    if v is None:
        return ""
    return f"{v:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci and None not in ci else f"{v:.1f}"


def table(res: dict):
    """Subtasks x figures, each as "value [low, high]" (0-100), then the phase score rows."""
    import pandas as pd

    names = {"accuracy": "accuracy", "rouge_l": "ROUGE-L", "meteor": "METEOR", "bleu4": "BLEU-4",
             "judge": "judge", "score": "score"}
    rows = []
    for s, d in res["subtasks"].items():
        rows.append({"subtask": s, "group": d["group"], "n": d["n"], "closed": d["n_closed"], "open": d["n_open"],
                     **{names[f]: _cell(d[f], d[f"{f}_ci"]) for f in FIGURES}})
    ps, ow = res["phase_score"], res["phase_score"]["official_weights"]
    blank = dict.fromkeys(["group", "closed", "open", *names.values()], "")
    rows.append(blank | {"subtask": f"phase {ps['phase']} score", "n": res["n_scored"],
                         "score": _cell(ps["value"], ps["ci"])})
    rows.append(blank | {"subtask": f"phase {ps['phase']} score, official counts", "n": sum(ow["counts"].values()),
                         "score": _cell(ow["value"], ow["ci"])})
    return pd.DataFrame(rows, columns=["subtask", "group", "n", "closed", "open", *names.values()]).set_index("subtask")


def notes(res: dict) -> list[str]:
    """The lines every report prints under the table: what the numbers are and are not."""
    ps, mi, j, sens = res["phase_score"], res["metrics_impl"], res["judge"], res["sensitivity"]
    out = ["no item has a gold answer: nothing scored"] if not res["n_scored"] else []
    out += [f"phase {ps['phase']} formula (robosense2025/track1), LLM term: {ps['llm']}; not the official LLM score",
           f"language metrics: {mi['label']}" + (f" (why: {mi['why']})" if mi.get("why") else ""),
           f"intervals: {res['interval']['method']}, {res['interval']['n_boot']} resamples of "
           f"{res['interval']['n_scenes']} scenes",
           f"joined by position: {res['join']['n_gold']} gold items, {res['join']['n_results']} result lines, "
           f"{res['join']['n_question_mismatches']} question mismatches, {res['join']['n_missing_predictions']} missing"]
    if ow_missing := ps["official_weights"]["subtasks_missing"]:
        out.append(f"official-count total over the subtasks present only (missing: {', '.join(ow_missing)})")
    if j:
        out.append(f"{j['label']}: {j['n_scored']} of {j['n_items']} open answers scored, {j['n_no_score']} without a "
                   f"score ({100 * (j['no_score_rate'] or 0):.0f} %), {j['n_errors']} errors, {j['n_cached']} reused")
    out.append(f"DriveBench letter regex: {sens['n_read_differently']} of {sens['n_mcq']} letter answers read "
               f"differently (accuracy {sens['accuracy_project']} here vs {sens['accuracy_toolkit_regex']} with the "
               f"toolkit's regex); {sens['n_yesno_not_scored_by_toolkit']} yes/no items it does not score")
    return out


def sensitivity_row(res: dict):
    import pandas as pd

    s = res["sensitivity"]
    return pd.DataFrame([{k: v for k, v in s.items() if k != "examples"}], index=["DriveBench letter regex"])


def compare_impls(results: Sequence[dict], gold: Sequence[dict] | None = None):
    """The open answers' ROUGE-L / METEOR / BLEU-4 per subtask (0-100) with the toolkit's code (coco, where
    Java runs) beside the Python approximation, for the same items."""
    import pandas as pd

    rows, _ = join_by_position(results, gold)
    opened = [i for i in item_scores(rows) if i["kind"] == "open"]
    impls = ["coco", "approx"] if cocoeval.java_unavailable() is None else ["approx"]
    scores = {m: cocoeval.language_scores([i["pred"] or "" for i in opened], [i["gold"] for i in opened], m)
              for m in impls} if opened else {}
    out = []
    for s in SUBTASKS:
        idx = np.array([k for k, i in enumerate(opened) if i["subtask"] == s], dtype=int)
        if not len(idx):
            continue
        r = {"subtask": s, "n_open": len(idx)}
        for m, sc in scores.items():
            r |= {f"{f} ({m})": _r(100 * v) if v is not None else None for f, v in sc.corpus(idx).items()}
        out.append(r)
    return pd.DataFrame(out).set_index("subtask") if out else pd.DataFrame()


# ----------------------------------------------------------------------------------------------
# Command line


def add_arguments(p) -> None:
    p.add_argument("results", help="06's results.json or a submission (a JSON list in the converted format)")
    p.add_argument("--gold", default=None, help="the questions with answers, same order (default: the results' "
                                                "own gold_answer fields, as 06 writes them)")
    p.add_argument("--phase", type=int, choices=[1, 2], default=None,
                   help="the formula's phase (default: 2 when corruption questions are present, else 1)")
    p.add_argument("--judge-model", default=None, help="a Hugging Face chat model (or tiny:<family>) as a local judge "
                                                       "of open answers (default: none, ROUGE-L stands in)")
    p.add_argument("--judge-max-new-tokens", type=int, default=512)
    p.add_argument("--judge-backend", choices=["hf", "vllm"], default="hf",
                   help="hf: transformers in this process; vllm: the serving engine (bash scripts/setup.sh --engine)")
    p.add_argument("--judge-cache", default=None, help="folder of the judge's records (default: the results' folder)")
    p.add_argument("--desc-file", default=None, help="DriveBench's data/visual_description.json, for the rubrics' "
                                                     "{DESC} field")
    p.add_argument("--impl", choices=list(cocoeval.IMPLS), default="auto",
                   help="language metrics: coco (the toolkit's, needs Java), approx, or auto")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--other-phase", default=None, help="--json output of the other phase: also print the final "
                                                       "score 0.2 * phase 1 + 0.8 * phase 2")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def cli(args) -> int:
    results = read_items(args.results)
    gold = read_items(args.gold) if args.gold else None
    res = score_run(results, gold, args.phase, args.judge_model, args.judge_cache or Path(args.results).parent,
                    args.impl, args.n_boot, judge_max_new_tokens=args.judge_max_new_tokens, desc_file=args.desc_file,
                    judge_backend=args.judge_backend)
    if args.other_phase:
        other = json.loads(Path(args.other_phase).read_text(encoding="utf-8"))["phase_score"]
        if other["phase"] == res["phase"]:
            raise ValueError(f"--other-phase holds phase {other['phase']} too: give the other phase's scores")
        p = {res["phase"]: res["phase_score"]["value"], other["phase"]: other["value"]}
        res["final_score"] = _r(official.final_score(p[1], p[2]))
    if args.out:
        write_json(res, args.out)
    if args.json:
        print(json.dumps(res, ensure_ascii=False, indent=1))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 40):
        print(table(res).to_string())
    print(*notes(res), sep="\n")
    if "final_score" in res:
        print(f"final score (0.2 * phase 1 + 0.8 * phase 2): {res['final_score']}")
    return 0

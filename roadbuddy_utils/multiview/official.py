"""The RoboSense Track 1 score as the organisers define it, and the DriveBench toolkit's letter reading.

    s = subtask_score("Planning-VQAs-Object-Description", phase=2, llm=31.0, rouge_l=40.2, meteor=35.1)
    total = phase_score(BASELINE[2], PHASE_COUNTS[2])          # 43.67: the published 43.7
    final = final_score(phase1_total, phase2_total)             # 0.2 * phase 1 + 0.8 * phase 2

Sources (both Apache-2.0): robosense2025/track1 README ("Evaluation Metrics") and the toolkit it is
built on, worldbench/drivebench ``evaluate/``.

* Phase 1 = (N_MCQ * Acc + N_VQA * LLM) / N.
* Phase 2 = (N_MCQ * Acc + N_VQA * (0.1 * ROUGE-L + 0.1 * METEOR + 0.8 * LLM)) / N.
* Final = 0.2 * Phase 1 + 0.8 * Phase 2.

"MCQ" is Perception-MCQs, Prediction (yes/no, plus the few open "notice first / second / third"
items filed there) and Corruption-MCQs; "VQA" the four description subtasks. Every figure here is on
the 0-100 scale the leaderboard prints: accuracy and ROUGE-L / METEOR (0..1 from the metric code)
times 100, the LLM score as the judge gives it (0-100).

The per-subtask form is the same sum: each subtask's score (accuracy, or the VQA combination of its
open answers) weighted by its question count. The published baseline per-subtask numbers weighted
by the published counts give 43.67 for phase 2 (README: 43.7) and 42.2-42.4 for phase 1 (README:
42.5; the phase-1 table is rounded to one decimal and may have used slightly different counts).

Open items inside an MCQ-group subtask (Prediction's "notice" questions) have no letter to score;
how the organisers grade them is not published. Here they get the phase's VQA combination and the
subtask's score mixes them with the closed items' accuracy by count (``mixed_score``), so every
question counts once, as in N.
"""
from __future__ import annotations

import re
from typing import Mapping

from .data import PHASE1_COUNTS, SUBTASKS

MCQ_GROUP = ("Perception-MCQs", "Prediction-MCQs", "Corruption-MCQs")
VQA_GROUP = ("Perception-VQAs-Object-Description", "Perception-VQAs-Scene-Description",
             "Planning-VQAs-Scene-Description", "Planning-VQAs-Object-Description")
assert set(MCQ_GROUP) | set(VQA_GROUP) == set(SUBTASKS)

# Official question counts per phase (datasets.md section 2; the track's README tables).
PHASE2_COUNTS = {"Perception-MCQs": 98, "Perception-VQAs-Object-Description": 426,
                 "Perception-VQAs-Scene-Description": 104, "Prediction-MCQs": 861,
                 "Planning-VQAs-Scene-Description": 273, "Planning-VQAs-Object-Description": 587,
                 "Corruption-MCQs": 104}
PHASE_COUNTS = {1: dict(PHASE1_COUNTS), 2: PHASE2_COUNTS}
PHASE2_VQA_WEIGHTS = {"rouge_l": 0.1, "meteor": 0.1, "llm": 0.8}
FINAL_WEIGHTS = {1: 0.2, 2: 0.8}

# The official baseline (Qwen2.5-VL-7B-Instruct) as published in the track's README, per subtask.
BASELINE = {1: {"Perception-MCQs": 75.5, "Perception-VQAs-Object-Description": 29.2,
                "Perception-VQAs-Scene-Description": 22.2, "Prediction-MCQs": 59.2,
                "Planning-VQAs-Object-Description": 29.6, "Planning-VQAs-Scene-Description": 31.2},
            2: {"Perception-MCQs": 78.6, "Perception-VQAs-Object-Description": 21.7,
                "Perception-VQAs-Scene-Description": 19.3, "Prediction-MCQs": 61.6,
                "Planning-VQAs-Object-Description": 30.8, "Planning-VQAs-Scene-Description": 31.3,
                "Corruption-MCQs": 81.7}}
PUBLISHED_TOTAL = {1: 42.5, 2: 43.7}


def group(subtask: str) -> str:
    """``"MCQ"`` or ``"VQA"``: which term of the formula a subtask's questions are counted in."""
    if subtask in MCQ_GROUP:
        return "MCQ"
    if subtask in VQA_GROUP:
        return "VQA"
    raise ValueError(f"unknown subtask {subtask!r}; known: {list(SUBTASKS)}")


def check_phase(phase) -> int:
    if phase not in (1, 2, "1", "2"):
        raise ValueError(f"phase must be 1 or 2, got {phase!r}")
    return int(phase)


def vqa_score(phase: int, llm: float | None, rouge_l: float | None = None, meteor: float | None = None) -> float | None:
    """An open answer set's score (0-100): phase 1 the LLM score; phase 2 0.1 ROUGE-L + 0.1 METEOR +
    0.8 LLM. None when a needed part is missing (a missing part must not count as 0)."""
    phase = check_phase(phase)
    if llm is None:
        return None
    if phase == 1:
        return float(llm)
    if rouge_l is None or meteor is None:
        return None
    w = PHASE2_VQA_WEIGHTS
    return w["rouge_l"] * rouge_l + w["meteor"] * meteor + w["llm"] * llm


def mixed_score(n_closed: int, accuracy: float | None, n_open: int, open_score: float | None) -> float | None:
    """A subtask's score from its closed items' accuracy and its open items' VQA score, weighted by
    how many of each it has (the formula's N counts every question once). None when a part that has
    items has no value."""
    parts = [(n_closed, accuracy), (n_open, open_score)]
    if any(n and v is None for n, v in parts) or not (n_closed + n_open):
        return None
    return sum(n * v for n, v in parts if n) / (n_closed + n_open)


def subtask_score(subtask: str, phase: int, accuracy: float | None = None, llm: float | None = None,
                  rouge_l: float | None = None, meteor: float | None = None) -> float | None:
    """One subtask's score (0-100) when all its items are of its group's kind: accuracy for the MCQ
    group, ``vqa_score`` for the VQA group."""
    return accuracy if group(subtask) == "MCQ" else vqa_score(phase, llm, rouge_l, meteor)


def phase_score(scores: Mapping[str, float | None], counts: Mapping[str, int]) -> float | None:
    """(sum of count * score) / (sum of counts) over the subtasks that have a score and a count: the
    official total when ``counts`` are the phase's question counts (``PHASE_COUNTS``). None without any."""
    num = den = 0.0
    for sub, s in scores.items():
        n = counts.get(sub, 0)
        if s is None or not n:
            continue
        num, den = num + n * float(s), den + n
    return num / den if den else None


def final_score(phase1: float | None, phase2: float | None) -> float | None:
    """0.2 * Phase 1 + 0.8 * Phase 2 (the final ranking); None unless both phases are given."""
    if phase1 is None or phase2 is None:
        return None
    return FINAL_WEIGHTS[1] * phase1 + FINAL_WEIGHTS[2] * phase2


# ----------------------------------------------------------------------------------------------
# The toolkit's letter reading (worldbench/drivebench evaluate/utils.py ``preprocess_answer``),
# reproduced with its faults for the sensitivity row only: never used for the project's own score.

_TOOLKIT_PATTERNS = [("A", re.compile(r"\b(a|option a)\b")), ("B", re.compile(r"\b(b|option b)\b")),
                     ("C", re.compile(r"\b(c|option c)\b")), ("D", re.compile(r"\b(d|option d)\b"))]


def toolkit_letter(answer: str | None) -> str:
    """The letter DriveBench's scorer reads: the answer lower-cased, then the first of A, B, C, D (in
    that order, wherever it stands) written as a lone word, else "". So the article "a" anywhere reads
    as option A, and option E does not exist (a corruption question's "E" reads as "")."""
    text = (answer or "").strip().lower()
    for letter, pat in _TOOLKIT_PATTERNS:
        if pat.search(text):
            return letter
    return ""


def toolkit_correct(answer: str | None, gold: str | None) -> bool:
    """The toolkit's accuracy test: both sides go through ``toolkit_letter`` and are compared, so an
    unreadable answer to a question whose gold is E counts as correct ("" == "")."""
    return toolkit_letter(answer) == toolkit_letter(gold)

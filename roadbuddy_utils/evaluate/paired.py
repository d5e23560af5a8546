"""Two runs of the same questions compared where it matters: overall, per question theme, and on the
questions a glossary grounded or not (05's section on sign knowledge: ``knowledge_pair``).

    table = paired_by_theme(runs["zero-shot"], runs["knowledge (glossary)"], n_boot=2000)

Each row is compare.paired_comparison on a subset (McNemar on the questions that changed, the difference's
interval resampling videos). The run with notes (the second) says which questions had any
(``knowledge_codes``): the notes can only act there, so the rows "with notes" / "without notes" separate the
effect from noise elsewhere (without notes the prompts are identical; any change there is the model's
batch-level nondeterminism or nothing).
"""
from __future__ import annotations

import pandas as pd

from ..data.themes import themes_of
from .compare import paired_comparison


def _row(label: str, a: pd.DataFrame, b: pd.DataFrame, n_boot: int, seed: int) -> dict:
    r = paired_comparison(a, b, n_boot=n_boot, seed=seed)
    return {"subset": label, "n": r["n"], "acc_off": r["acc_a"], "acc_on": r["acc_b"], "diff": r["diff"],
            "ci_low": r.get("diff_ci_low"), "ci_high": r.get("diff_ci_high"), "wrong_to_right": r["b01"],
            "right_to_wrong": r["b10"], "p_exact": r["p_exact"]}


def paired_by_theme(off: pd.DataFrame, on: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                    min_n: int = 1) -> pd.DataFrame:
    """One row for all questions, for those with / without notes (when ``on`` records ``knowledge_codes``), and
    per theme of the question text (themes with at least ``min_n`` questions; a question counts in each of its
    themes)."""
    rows = [_row("all", off, on, n_boot, seed)]
    if "knowledge_codes" in on:
        has = on.set_index("id")["knowledge_codes"].map(lambda c: bool(c) if isinstance(c, list) else False)
        for label, keep in (("with notes", has[has].index), ("without notes", has[~has].index)):
            rows.append(_row(label, off[off["id"].isin(keep)], on[on["id"].isin(keep)], n_boot, seed))
    if "question" in off:
        themes = {i: themes_of(q) for i, q in zip(off["id"], off["question"]) if isinstance(q, str)}
        for theme in sorted({t for ts in themes.values() for t in ts}):
            ids = [i for i, ts in themes.items() if theme in ts]
            if len(ids) >= min_n:
                rows.append(_row(f"theme: {theme}", off[off["id"].isin(ids)], on[on["id"].isin(ids)], n_boot, seed))
    return pd.DataFrame(rows)

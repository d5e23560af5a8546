"""``python -m roadbuddy_utils knowledge QUESTIONS.json [--id ID] [--json] [--budget N] [--tokenizer MODEL]``.

    python -m roadbuddy_utils knowledge traffic_buddy_train+public_test/train/train.json
    python -m roadbuddy_utils knowledge public_test.json --id testa_0001          # that question's notes
    python -m roadbuddy_utils knowledge public_test.json --json --tokenizer tiny:internvl

Prints the coverage (choices that name a sign, how many the glossary matched), note tokens per question and,
per question, the codes whose notes the prompt would show; ``--json`` prints one object instead
(``questions``, ``sign_choices``, ``matched``, ``coverage``, ``items`` with each ``id`` and its ``codes``).
"""
from __future__ import annotations

import json
import warnings

from ..data.questions import load_items
from .glossary import load
from .ground import DEFAULT_BUDGET, coverage, format_coverage, ground


def cli(args, count=None) -> int:
    """Run the subcommand (``count``: a tokenizer's counter, None for the estimate)."""
    with warnings.catch_warnings():  # the loader's quirk warnings are `validate`'s business
        warnings.simplefilter("ignore")
        items = load_items(args.questions)
    budget = args.budget or DEFAULT_BUDGET
    if args.id:
        items = [it for it in items if it.id == args.id]
        if not items:
            raise KeyError(f"{args.questions}: no question with id {args.id!r}")
    report = coverage(items, budget, count)
    if args.json:
        out = {k: v for k, v in report.items() if k != "items"}
        out["items"] = [{"id": r["id"], "codes": r["codes"], "matched": r["matched"], "tokens": r["tokens"]}
                        for r in report["items"]]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(format_coverage(report, report["items"]))
    if args.id:
        glossary = load()
        for note in ground(items[0], glossary, budget, count).notes:
            print(f"- {note}")
    return 0

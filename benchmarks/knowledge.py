"""How much of a question file the QCVN 41:2024 glossary grounds, and what its notes cost in prompt tokens.

    .venv/bin/python benchmarks/knowledge.py traffic_buddy_train+public_test/train/train.json \
        traffic_buddy_train+public_test/public_test/public_test.json --tokenizers tiny:internvl tiny:qwen2_5_vl

Per file: questions, choices that name a sign and how many the glossary matched (knowledge.ground.coverage),
choices naming only groups, questions with notes. Note tokens per question (mean / p95 / max under 03's budget)
counted by the estimate (UTF-8 bytes / 3) and by each tokenizer given (the tiny models' byte-level BPE, trained
on the demo texts only: not the real Qwen2 vocabulary of InternVL3 / Qwen2.5-VL / Qwen3-VL, which this machine
cannot download). Beside them, the visual tokens 8 frames cost in each real checkpoint's config
(tests/fixtures/configs, models/plan.visual_tokens: 448 px frames), the scale the notes add to. Prints only
numbers, never question text (the RoadBuddy files may not be redistributed).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from roadbuddy_utils.data.questions import load_items  # noqa: E402
from roadbuddy_utils.knowledge.glossary import load  # noqa: E402
from roadbuddy_utils.knowledge.ground import DEFAULT_BUDGET, coverage  # noqa: E402


def counters(names: list[str]) -> dict:
    out = {"estimate (bytes/3)": None}
    if names:
        from transformers import AutoTokenizer

        from roadbuddy_utils.models.tiny import resolve_model_id

        for n in names:
            tok = AutoTokenizer.from_pretrained(resolve_model_id(n))
            out[n] = (lambda t: (lambda text: len(t.encode(text, add_special_tokens=False))))(tok)
    return out


def visual_rows(n_frames: int = 8) -> list[tuple[str, int]]:
    from roadbuddy_utils.models.checkpoint import family_of, read_checkpoint
    from roadbuddy_utils.models.plan import visual_tokens

    rows = []
    for path in sorted((REPO / "tests/fixtures/configs").iterdir()):
        if path.is_dir():
            ck = read_checkpoint(str(path))
            rows.append((path.name, visual_tokens(family_of(ck.config), ck.config, ck.processor, n_frames,
                                                  448 * 448)["visual"]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("questions", nargs="+")
    ap.add_argument("--tokenizers", nargs="*", default=[])
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET)
    args = ap.parse_args(argv)
    g = load()
    print(f"glossary {g.version}: {g.counts()}")
    count_by = counters(args.tokenizers)
    for path in args.questions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items = load_items(path)
        for name, count in count_by.items():
            r = coverage(items, args.budget, count, g)
            t = r["tokens"]
            print(f"{Path(path).name} [{name}]: {r['questions']} questions; sign choices {r['sign_choices']}, matched "
                  f"{r['matched']} (coverage {r['coverage']}); group-only choices {r['group_choices']}; questions with "
                  f"notes {r['questions_with_notes']}; note tokens mean {t['mean']}, p95 {t['p95']}, max {t['max']} "
                  f"(budget {t['budget']})")
    for name, n in visual_rows():
        print(f"visual tokens, 8 frames at 448 px: {name} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

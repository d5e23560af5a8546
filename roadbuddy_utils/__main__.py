"""Command line: ``python -m roadbuddy_utils {validate,demo-data,run,train,plan,ensemble} ...`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m roadbuddy_utils", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("validate", help="summarise a RoadBuddy JSON file and list every problem")
    v.add_argument("path", nargs="+", help="train.json / public_test.json / private_test.json")
    v.add_argument("--videos-root", default=None, help="folder the item video_path values are relative to")
    v.add_argument("--skip-videos", action="store_true",
                   help="check the question file alone (the clips not downloaded yet): no video is looked for")

    d = sub.add_parser("demo-data", help="write the generated demo dataset")
    d.add_argument("out_dir")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--variant", choices=["default", "brief"], default="default",
                   help="default: 5-6 s clips, event on screen +/- 0.8 s; brief: 8-15 s clips, event +/- 0.3 s, "
                        "distractors (uniform frames miss the event)")
    d.add_argument("--train-videos", type=int, default=None, help="number of training clips (default 900, brief 600)")
    d.add_argument("--test-videos", type=int, default=None, help="clips per test split (default 24)")

    r = sub.add_parser("run", help="execute the notebooks of a profile with papermill")
    r.add_argument("--profile", required=True, help="demo | brief | kaggle (a folder in params/)")
    r.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,02")

    t = sub.add_parser("train", help="fine-tune (LoRA) from a YAML/JSON config; works under torchrun / accelerate")
    t.add_argument("--config", required=True, help="TrainConfig fields as YAML or JSON (e.g. params/demo/04_lora_train.yaml)")

    pl = sub.add_parser("plan", help="memory plan from the config files alone: weights, activations, where it fits "
                                     "(exit 0 whether or not it fits, 2 on bad input)")
    from .models.engine_plan import add_arguments as add_engine_arguments
    from .models.plan import add_arguments

    add_arguments(pl)
    add_engine_arguments(pl)  # --backend vllm: the serving engine's reservation, KV cache, tensor parallel

    en = sub.add_parser("ensemble", help="combine runs of the same questions into one run that 05 and 07 take "
                                         "(exit 2 on bad input)")
    en.add_argument("runs", nargs="+", help="members: predictions.jsonl or submission .csv files (single-clip), or 06's "
                                            "results.json files (multi-camera: joined by position; vote or mean)")
    en.add_argument("--method", choices=["vote", "mean", "fit"], required=True,
                    help="vote: majority letter; mean: average letter probabilities; fit: weights learned on --val")
    en.add_argument("--out", required=True, help="folder for predictions.jsonl (or results.json) and ensemble.json")
    en.add_argument("--val", nargs="+", default=None, help="fit: the same members' runs on labelled questions, same order")
    en.add_argument("--labels", nargs="+", default=None, help="one name per member (default: their folder names)")
    en.add_argument("--folds", type=int, default=5, help="fit: cross-validation folds, grouped by video")

    ms = sub.add_parser("mv-score", help="multi-camera scores with the official formula, per subtask, with intervals "
                                         "by scene (exit 2 on bad input)")
    from .multiview.mvscore import add_arguments as mv_score_arguments

    mv_score_arguments(ms)

    kn = sub.add_parser("knowledge", help="which QCVN 41:2024 glossary entries each question's choices and question name, "
                                          "coverage and note tokens (exit 2 on bad input)")
    kn.add_argument("questions", help="a RoadBuddy question file (train.json, public_test.json, private_test.json)")
    kn.add_argument("--id", default=None, help="one question: its notes as the prompt shows them")
    kn.add_argument("--json", action="store_true", help="one JSON object: questions, sign_choices, matched, coverage, "
                                                        "items [{id, codes}]")
    kn.add_argument("--budget", type=int, default=None, help="note tokens per question (default: 03's 240)")
    kn.add_argument("--tokenizer", default=None, help="count note tokens with this model's tokenizer (tiny:internvl, a "
                                                      "local checkpoint folder); default: an estimate")

    args = ap.parse_args(argv)
    if args.cmd == "knowledge":
        from .knowledge.cli import cli as knowledge_cli

        try:
            count = None
            if args.tokenizer:  # a tiny model's or a local checkpoint's tokenizer (models/ resolves tiny: ids)
                from transformers import AutoTokenizer

                from .models.tiny import resolve_model_id

                tok = AutoTokenizer.from_pretrained(resolve_model_id(args.tokenizer))
                count = lambda text: len(tok.encode(text, add_special_tokens=False))  # noqa: E731
            return knowledge_cli(args, count)
        except (ValueError, OSError, KeyError) as e:
            print(f"knowledge: {e}", file=sys.stderr)
            return 2
    if args.cmd == "mv-score":
        from .multiview.mvscore import cli as mv_score_cli

        try:
            return mv_score_cli(args)
        except (ValueError, OSError, RuntimeError) as e:
            print(f"mv-score: {e}", file=sys.stderr)
            return 2
    if args.cmd == "ensemble":
        multi = [str(p).endswith(".json") for p in args.runs]
        try:
            if any(multi) and not all(multi):
                raise ValueError("mix of 06's results.json and single-clip runs: ensemble one kind at a time")
            if all(multi):
                from .multiview.ensemble import cli as ensemble_cli
            else:
                from .evaluate.ensemble import cli as ensemble_cli
            return ensemble_cli(args)
        except (ValueError, OSError) as e:
            print(f"ensemble: {e}", file=sys.stderr)
            return 2
    if args.cmd == "validate":
        from .data.questions import errors, format_report, validate

        status = 0
        for path in args.path:  # exit 1 on errors only: warnings are quirks the loader fixed
            summary, problems = validate(path, args.videos_root, check_videos=not args.skip_videos)
            print(format_report(path, summary, problems))
            status |= bool(errors(problems))
        return status
    if args.cmd == "demo-data":
        from .demo.dataset import DemoConfig, generate

        cfg = DemoConfig(seed=args.seed, variant=args.variant)
        if args.train_videos is not None:
            cfg.n_train_videos = args.train_videos
        if args.test_videos is not None:
            cfg.n_public_videos = cfg.n_private_videos = args.test_videos
        for split, p in generate(args.out_dir, cfg).items():
            print(f"{split}: {p}")
        return 0
    if args.cmd == "run":
        from .report.runner import main_run

        return main_run(args.profile, args.only)
    if args.cmd == "train":
        import yaml

        from .train.finetune import config_from, train

        with open(args.config, encoding="utf-8") as f:
            train(config_from(yaml.safe_load(f)))
        return 0
    if args.cmd == "plan":
        if args.backend == "vllm":
            from .models.engine_plan import cli as engine_cli

            return engine_cli(args)
        from .models.plan import cli

        return cli(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

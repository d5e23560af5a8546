"""What selection buys: the same tuned model answering the validation split with uniform vs selected frames.

    python benchmarks/downstream.py DATA --scorer SEL/learned_scorer --split-file SEL/split.json --out OUT
    # DATA: a demo dataset (python -m roadbuddy_utils demo-data DATA --variant brief); SEL: the output folder of
    # benchmarks/selection.py DATA (or 02 with frame_mode select), which holds the learned scorer and the split

Trains tiny:internvl with the demo recipe (params/demo/04_lora_train.yaml, ``--max-steps``) on the train
side of the split unless ``--adapter`` is given, then answers the validation side twice with that adapter
(uniform frames; frames chosen by the learned scorer) and prints both accuracies with by-video intervals
and 05's paired comparison (McNemar, the difference with its interval). One thread per process.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--scorer", required=True, help="a learned scorer folder (02 / benchmarks/selection.py)")
    ap.add_argument("--split-file", required=True)
    ap.add_argument("--out", default=str(REPO / "outputs/benchmarks/downstream"))
    ap.add_argument("--adapter", default=None, help="skip training: evaluate this adapter")
    ap.add_argument("--max-steps", type=int, default=800)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from roadbuddy_utils.answer.batch import InferConfig, run_inference
    from roadbuddy_utils.data.split import eval_items
    from roadbuddy_utils.evaluate import compare, results
    from roadbuddy_utils.models.config import ModelConfig
    from roadbuddy_utils.models.vlm import VLM
    from roadbuddy_utils.selection import selector
    from roadbuddy_utils.train.finetune import config_from, train

    root = Path(args.data) / "traffic_buddy_train+public_test"
    out = Path(args.out)
    recipe = yaml.safe_load((REPO / "params/demo/04_lora_train.yaml").read_text())
    adapter = args.adapter
    if adapter is None:
        cfg = recipe | {"train_json": str(root / "train/train.json"), "videos_root": str(root),
                        "output_dir": str(out / "04"), "split_file": args.split_file, "cache_dir": str(out / "cache"),
                        "max_steps": args.max_steps, "eval_steps": args.max_steps // 2, "val_limit": 60}
        m = train(config_from(cfg), log=lambda *_: None)
        print(f"trained: validation (uniform frames) {m['val_accuracy_before']} -> {m['val_accuracy_best']}, "
              f"chance {m['chance']}, {m['steps']} steps, {m['train_runtime_s']} s")
        adapter = m["adapter_path"]
    items = eval_items(root / "train/train.json", root, "val", args.split_file, 0.2, 0)
    vlm = VLM.load(ModelConfig(recipe["model"], adapter_path=adapter, n_frames=recipe["n_frames"],
                               max_pixels=recipe["max_pixels"]))
    paths = {}
    for name in ("uniform", "select"):
        sel = selector.config_for_mode(name, scorer="learned", path=args.scorer)
        run_inference(items, vlm, InferConfig(batch_size=8, cache_dir=str(out / "cache"), selector=sel),
                      out / f"03_{name}", progress=False)
        paths[name] = out / f"03_{name}" / "predictions.jsonl"
    runs = results.load_runs(list(paths.values()), list(paths))
    for name, df in runs.items():
        acc, lo, hi = compare.bootstrap_ci(df)
        print(f"{name}: accuracy {acc:.3f} [{lo:.3f}, {hi:.3f}] (n {len(df)})")
    d = compare.paired_comparison(runs["uniform"], runs["select"])
    print(json.dumps({k: v for k, v in d.items() if not isinstance(v, list)}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

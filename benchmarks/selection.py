"""Frame selection on a demo dataset: hit@4 / hit@8 per selector, and what selection costs per question.

    python -m roadbuddy_utils demo-data outputs/demo/data && python benchmarks/selection.py outputs/demo/data
    python -m roadbuddy_utils demo-data outputs/brief/data --variant brief && python benchmarks/selection.py outputs/brief/data
    python benchmarks/selection.py outputs/brief/data --cost-only --embedding-size base
    python benchmarks/selection.py outputs/brief/data --tune-steps 300    # + the contrastively tuned SigLIP twin

The hit rates are 02's (``selection_run.run_selection`` with ``frame_mode: select``, learned scorer
trained on the train side of the grouped split, ``features=auto``: tiny SigLIP and tiny InternVL
vision tower), on the validation side. ``--cost-only`` times selection per question without any
cache (candidates decoded at 3 fps + features + scoring + the picked frames decoded), with the tiny
SigLIP or a randomly initialised SigLIP of the real base size (768 wide, 12 layers, 224 px: the
size of google/siglip-base-patch16-224; random weights time the same as trained ones). Torch
threads default to 1: on a shared 2-core machine more threads than free cores made the tiny
models ten times slower (measured). Prints a Markdown table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def base_siglip(folder: Path) -> str:
    """A random SigLIP of the base checkpoint's size with the tiny twin's tokenizer (timing only)."""
    from transformers import AutoProcessor, SiglipConfig, SiglipModel

    from roadbuddy_utils.models.tiny import resolve_model_id

    if (folder / "config.json").exists():
        return str(folder)
    proc = AutoProcessor.from_pretrained(resolve_model_id("tiny:siglip"))
    proc.image_processor.size = {"height": 224, "width": 224}
    tok = proc.tokenizer
    cfg = SiglipConfig(text_config=dict(vocab_size=len(tok), max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                                        eos_token_id=tok.eos_token_id, bos_token_id=None))
    SiglipModel(cfg).save_pretrained(folder)
    proc.save_pretrained(folder)
    return str(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a demo-data folder")
    ap.add_argument("--out", default=None, help="output folder (default outputs/benchmarks/selection/<data name>)")
    ap.add_argument("--n-frames", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--embedding-size", choices=["tiny", "base"], default="tiny")
    ap.add_argument("--cost-videos", type=int, default=12)
    ap.add_argument("--tune-steps", type=int, default=0, help="also tune the embedding model contrastively (LoRA)")
    ap.add_argument("--tune-lr", type=float, default=2e-3)
    args = ap.parse_args()

    import torch

    from roadbuddy_utils.data.questions import load_items
    from roadbuddy_utils.data.split import load_or_make_split, select
    from roadbuddy_utils.selection.run import feature_selector, hit_rows, measure_cost, run_selection
    from roadbuddy_utils.selection.selector import SelectorConfig

    torch.set_num_threads(args.threads)
    root = Path(args.data) / "traffic_buddy_train+public_test"
    out = Path(args.out or f"outputs/benchmarks/selection/{Path(args.data).parent.name}_{Path(args.data).name}")
    items = load_items(root / "train/train.json", root)
    split = load_or_make_split(items, out / "split.json", 0.2, 0)
    t0 = time.perf_counter()
    if args.cost_only:
        model = base_siglip(out / "siglip_base_random") if args.embedding_size == "base" else "tiny:siglip"
        sel, _, _ = feature_selector(SelectorConfig(scorer="embedding", model=model), None, None, None)
        cost = measure_cost(sel, select(items, split["val_ids"]), args.n_frames, 448, n_videos=args.cost_videos)
        print(json.dumps(cost | {"embedding": args.embedding_size, "threads": args.threads}, indent=1))
        return
    m = run_selection(items, split, SelectorConfig(scorer="learned", features="auto", vlm_model="tiny:internvl"),
                      args.n_frames, out, out / "cache", vlm_max_pixels=12544, n_boot=1000, tune_steps=args.tune_steps,
                      tune_options={"lr": args.tune_lr, "trainable": "lora"})
    print(f"{args.data}: {m['n']} validation questions, {m['n_videos']} videos, {time.perf_counter() - t0:.0f} s\n")
    print("| selector | k | hit | 95 % interval (by video) |\n|---|---|---|---|")
    for r in hit_rows(m):
        print(f"| {r['selector']} | {r['k']} | {r['hit']:.3f} | {r['ci_low']:.3f}-{r['ci_high']:.3f} |")
    print(f"\nkept features: {m['learned']['kept']}; held-out: {json.dumps(m['learned']['heldout'])}")
    print(f"cost: {json.dumps(m['cost'])}")
    if "tuned" in m:
        t = m["tuned"]
        print(f"tuned: held-out hit@4 {t['before']['hit_at_4']} -> {t['best']['hit_at_4']} (step {t['best_step']}), "
              f"{t['seconds']} s; curve {json.dumps(t['curve'])}")


if __name__ == "__main__":
    main()

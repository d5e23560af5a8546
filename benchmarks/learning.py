"""Does fine-tuning really learn? Tiny random models trained on the demo data, several seeds.

    python benchmarks/learning.py                                   # internvl + qwen2_5_vl, seeds 0 1 2
    python benchmarks/learning.py --families internvl --seeds 0 --parallel 1

Trains with the demo profile's recipe (params/demo/04_lora_train.yaml: the same code path a GPU
run uses) from random weights, and reports per run the validation accuracy (likelihood scorer,
uniform frames as in 03) before training and at every evaluation, the first step and wall time at
which it reached 0.80, the best accuracy and the total wall time. ``--parallel 2`` runs two
trainings at once with one thread each (2-core machine); wall times then include that sharing.
Prints a Markdown table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def run_one(family: str, seed: int, args) -> subprocess.Popen:
    cfg = yaml.safe_load((REPO / "params/demo/04_lora_train.yaml").read_text())
    out = Path(args.out) / f"{family}-s{seed}"
    cfg |= {"model": f"tiny:{family}", "seed": seed, "output_dir": str(out),
            "split_file": str(Path(args.out) / "split.json")}
    if args.max_steps:
        cfg["max_steps"] = args.max_steps
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = yaml.safe_load(v)
    for k in ("train_json", "videos_root", "cache_dir"):
        cfg[k] = str(REPO / cfg[k])
    out.mkdir(parents=True, exist_ok=True)
    (out / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
    code = (f"import time, torch; torch.set_num_threads({args.threads}); t=time.time(); "
            "from roadbuddy_utils.__main__ import main; main(['train', '--config', %r]); "
            "open(%r, 'w').write(str(time.time() - t))" % (str(out / "cfg.yaml"), str(out / "wall_s.txt")))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=open(out / "log.txt", "w"),
                            stderr=subprocess.STDOUT, cwd=REPO)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="internvl,qwen2_5_vl")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "outputs/benchmarks/learning"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field (YAML value), e.g. --set n_frames=8")
    args = ap.parse_args()
    args.threads = max(1, (os.cpu_count() or 2) // args.parallel)
    data = REPO / "outputs/demo/data"
    if not (data / "demo_config.json").exists():
        subprocess.run([sys.executable, "-m", "roadbuddy_utils", "demo-data", str(data)], check=True, cwd=REPO)
    jobs = [(f, int(s)) for f in args.families.split(",") for s in args.seeds.split(",")]
    running: list = []
    t0 = time.time()
    while jobs or running:
        while jobs and len(running) < args.parallel:
            f, s = jobs.pop(0)
            running.append((f, s, run_one(f, s, args)))
        time.sleep(2)
        for r in [r for r in running if r[2].poll() is not None]:
            running.remove(r)
            print(f"{r[0]} seed {r[1]}: exit {r[2].returncode} ({time.time() - t0:.0f} s since start)", flush=True)
    print(f"\n{args.parallel} run(s) at a time, {args.threads} thread(s) each; overrides: {args.set or 'none'}\n")
    print("| model | seed | before | accuracy per evaluation (step: acc) | first >= 0.80 (step, s) | best | wall s |")
    print("|---|---|---|---|---|---|---|")
    for f in args.families.split(","):
        for s in args.seeds.split(","):
            out = Path(args.out) / f"{f}-s{s}"
            try:
                m = json.loads((out / "metrics.json").read_text())
            except FileNotFoundError:
                print(f"| tiny:{f} | {s} | failed: see {out / 'log.txt'} | | | | |")
                continue
            wall = float((out / "wall_s.txt").read_text())
            per_step = wall / max(1, m["steps"])
            hit = next((h for h in m["history"] if h["val_accuracy"] >= 0.8), None)
            first = f"{hit['step']}, ~{hit['step'] * per_step:.0f}" if hit else "not reached"
            curve = " ".join(f"{h['step']}: {h['val_accuracy']:.2f}" for h in m["history"])
            print(f"| tiny:{f} | {s} | {m['val_accuracy_before']:.2f} | {curve} | {first} | "
                  f"{m['val_accuracy_best']:.2f} | {wall:.0f} |")


if __name__ == "__main__":
    main()

"""Does fine-tuning really learn? Tiny random models trained on demo data, several seeds and datasets.

    python benchmarks/learning.py                                   # internvl + qwen2_5_vl, seeds 0 1 2
    python benchmarks/learning.py --families internvl --seeds 0 --data-seed 0,1,2 --parallel 2

Trains with the demo profile's recipe (params/demo/04_lora_train.yaml: the same code path a GPU
run uses) from random weights, and reports per run the validation accuracy (likelihood scorer,
uniform frames as in 03) before training and at every evaluation, the first step reaching 0.80
and its time (estimated from the run's CPU seconds per step), the best accuracy, the total wall
time and CPU time (on a shared machine the wall time measures the others' load too).
``--seeds`` are training seeds (LoRA initialisation, data order); ``--data-seed`` generates (once,
then reuses) the default demo with that generator seed under ``outputs/benchmarks/data-seedN``;
``--data`` names a demo folder (default ``outputs/demo/data``). Every run gets a row, also those
that miss 0.80 or fail. ``--parallel 2`` runs two trainings at once with one thread each (2-core
machine). Prints a Markdown table for benchmarks/RESULTS.md (also written to ``{out}/table.md``).
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
RECIPE = REPO / "params/demo/04_lora_train.yaml"
TRAIN_JSON = "traffic_buddy_train+public_test/train/train.json"


def demo_folders(args) -> dict[str, Path]:
    """{label: demo data folder}: one per ``--data-seed`` (generated if missing), else ``--data``."""
    if not args.data_seed:
        return {Path(args.data).name: Path(args.data)}
    return {f"data-seed{s}": REPO / f"outputs/benchmarks/data-seed{s}" for s in args.data_seed.split(",")}


def ensure_demo(label: str, folder: Path, args) -> None:
    """Generate the demo once; a folder that holds another seed's demo is an error, not reused."""
    marker = folder / "demo_config.json"
    seed = int(label.removeprefix("data-seed")) if label.startswith("data-seed") and args.data_seed else None
    if marker.exists():
        have = json.loads(marker.read_text()).get("seed")
        if seed is not None and have != seed:
            sys.exit(f"{marker}: demo data of seed {have}, but --data-seed asks for {seed}; "
                     f"delete {folder} or pass --data {folder}")
        return
    if seed is None and (folder / TRAIN_JSON).exists():
        return  # a dataset that is not a generated demo
    cmd = [sys.executable, "-m", "roadbuddy_utils", "demo-data", str(folder)] + (["--seed", str(seed)] if seed is not None else [])
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def run_config(family: str, seed: int, label: str, folder: Path, args) -> tuple[Path, dict]:
    """The recipe with this run's model, seed, data and paths (+ ``--max-steps`` / ``--set``)."""
    cfg = yaml.safe_load(RECIPE.read_text())
    out = Path(args.out) / label / f"{family}-s{seed}"
    cfg |= {"model": f"tiny:{family}", "seed": seed, "output_dir": str(out),
            "train_json": str(folder / TRAIN_JSON), "videos_root": str(folder / TRAIN_JSON.split("/")[0]),
            "split_file": str(Path(args.out) / label / "split.json"), "cache_dir": str(REPO / cfg["cache_dir"])}
    if args.max_steps:
        cfg["max_steps"] = args.max_steps
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg[k] = yaml.safe_load(v)
    return out, cfg


def run_one(out: Path, cfg: dict, threads: int) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.json", "wall_s.txt"):  # a rerun must not report the previous run's numbers
        (out / stale).unlink(missing_ok=True)
    (out / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    # CPU seconds beside wall seconds: on a shared machine the wall time depends on the others' load
    code = (f"import time, torch; torch.set_num_threads({threads}); t=time.time(); c=time.process_time(); "
            "from roadbuddy_utils.__main__ import main; main(['train', '--config', %r]); "
            "open(%r, 'w').write(f'{time.time() - t} {time.process_time() - c}')"
            % (str(out / "cfg.yaml"), str(out / "wall_s.txt")))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=open(out / "log.txt", "w"),
                            stderr=subprocess.STDOUT, cwd=REPO)


def table_row(family: str, label: str, seed: int, out: Path) -> str:
    """One Markdown row; a run that wrote no metrics says where its log is."""
    try:
        m = json.loads((out / "metrics.json").read_text())
        wall, cpu = map(float, (out / "wall_s.txt").read_text().split())
    except FileNotFoundError:
        return f"| tiny:{family} | {label} | {seed} | failed: see {out / 'log.txt'} | | | | | |"
    per_step = cpu / max(1, m["steps"])  # CPU time: what the step costs, whatever else shares the cores
    hit = next((h for h in m["history"] if h["val_accuracy"] >= 0.8), None)
    first = f"{hit['step']}, ~{hit['step'] * per_step:.0f}" if hit else "not reached"
    curve = " ".join(f"{h['step']}: {h['val_accuracy']:.2f}" for h in m["history"])
    return (f"| tiny:{family} | {label} | {seed} | {m['val_accuracy_before']:.2f} | {curve} | {first} | "
            f"{m['val_accuracy_best']:.2f} | {wall:.0f} | {cpu:.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="internvl,qwen2_5_vl")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (comma-separated)")
    ap.add_argument("--data-seed", default=None, metavar="N[,N...]",
                    help="demo generator seed(s): data under outputs/benchmarks/data-seedN, generated once")
    ap.add_argument("--data", default=str(REPO / "outputs/demo/data"), help="a demo data folder (without --data-seed)")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "outputs/benchmarks/learning"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field (YAML value), e.g. --set n_frames=8")
    args = ap.parse_args()
    threads = max(1, (os.cpu_count() or 2) // args.parallel)
    folders = demo_folders(args)
    for label, folder in folders.items():
        ensure_demo(label, folder, args)
    runs = [(f, int(s), label) for label in folders for f in args.families.split(",") for s in args.seeds.split(",")]
    jobs = [(f, s, label, *run_config(f, s, label, folders[label], args)) for f, s, label in runs]
    running: list = []
    t0 = time.time()
    while jobs or running:
        while jobs and len(running) < args.parallel:
            f, s, label, out, cfg = jobs.pop(0)
            running.append((f, s, label, run_one(out, cfg, threads)))
        time.sleep(2)
        for r in [r for r in running if r[3].poll() is not None]:
            running.remove(r)
            print(f"{r[0]} {r[2]} seed {r[1]}: exit {r[3].returncode} ({time.time() - t0:.0f} s since start)", flush=True)
    lines = [f"{args.parallel} run(s) at a time, {threads} thread(s) each; overrides: {args.set or 'none'}", "",
             "| model | data | seed | before | accuracy per evaluation (step: acc) | first >= 0.80 (step, ~CPU s) | best | wall s | CPU s |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [table_row(f, label, s, Path(args.out) / label / f"{f}-s{s}") for f, s, label in runs]
    text = "\n".join(lines)
    print("\n" + text)
    (Path(args.out) / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

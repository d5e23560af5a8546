"""GPU check in one command: full-size random-weight models of each family, timed and measured on CUDA.

    python benchmarks/gpu_check.py --size full --write-results     # 8 B models on the GPU (bf16, fp16, 4-bit)
    python benchmarks/gpu_check.py --size tiny --write-results     # the same code, tiny models on the CPU (CI)

Per model (``--families``: InternVL3-8B-hf, Qwen2.5-VL-7B-Instruct, Qwen3-VL-8B-Instruct from their
real config files in tests/fixtures/configs, or ``--model DIR``) and precision (``--dtypes``:
bfloat16, float16, 4bit on a GPU as it allows; float32 and 4bit on the CPU), with random weights
built by ``roadbuddy_utils.models.random_init`` (no download; real vocabulary, real processor settings):

* ``build``: seconds to build the model on the device (random init; 4-bit: quantized in memory as
  ``from_pretrained`` would), parameters, GPU memory the weights take and the peak while building;
* ``plan``: the memory planner's weights and peaks for the same model, to set beside the measured ones;
* ``tokens``: visual and prompt tokens of one question at ``--frames`` frames (448 x 448 pixel
  budget, frames as the sampler returns them for a 1920x1080 clip) beside the memory planner's count;
* ``likelihood`` and ``generate`` (``--new-tokens`` 16): seconds per question (p50 / p95 over
  ``--repeats`` calls after one warm-up; a batch's time divided by its size) for each of
  ``--batches`` until one runs out of memory, the best batch, and the peak GPU memory;
* ``train``: one LoRA step (16-bit base) or QLoRA step (4-bit base) on one question with gradient
  checkpointing, through the project's training code (``prepare_model_for_kbit_training``,
  ``apply_trainable``, ``Collator``, the Trainer's optimizer and mixed precision): seconds, peak memory.

Peaks are ``torch.cuda.max_memory_allocated`` reset before each measurement. Every measurement is
caught on its own: an out-of-memory error or any other failure is recorded (``status``, ``error``)
and the run goes on. The JSON (``--json``) is rewritten after every phase, so a killed run keeps
what it measured; ``--write-results`` puts a Markdown table with the machine, the command, the date
and the targets (pass / fail) into benchmarks/RESULTS.md between ``<!-- gpu_check:... -->`` markers.
``--from-json PATH --write-results`` writes the block of a saved JSON (a run killed midway, say).
``--size full`` on a machine without CUDA checks what it can (the full-size models built on the
meta device, real-size tokenizers and processors) and exits with status 2.

``--backend vllm`` adds an ``engine`` phase per model and precision, after the HF phases (the HF model is
freed first): the same questions through the vLLM engine (``bash scripts/setup.sh --engine``; a full-size
model with ``load_format="dummy"``: random weights from the config, nothing downloaded): engine start
seconds, seconds per question for likelihood scoring and generation per batch, and the throughput against the
HF backend on the same card (HF's best batch s/q over the engine's). 4-bit is not served with dummy weights
(bitsandbytes quantizes real ones): recorded as not measured.
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL = {"internvl": "tests/fixtures/configs/InternVL3-8B-hf", "qwen2_5_vl": "tests/fixtures/configs/Qwen2.5-VL-7B-Instruct",
        "qwen3_vl": "tests/fixtures/configs/Qwen3-VL-8B-Instruct"}
# visual tokens of 8 frames of a 1920x1080 clip under the 448 x 448 budget, measured with the real processors
# (shared/reference/hardware.md): InternVL 256 per frame, Qwen2.5-VL 4 x 24 x 42 / 4, Qwen3-VL 4 x 20 x 38 / 4
REFERENCE_VISUAL_8 = {"InternVL3-8B-hf": 2048, "Qwen2.5-VL-7B-Instruct": 1008, "Qwen3-VL-8B-Instruct": 760}
PHASES = ("build", "plan", "tokens", "likelihood", "generate", "train")  # + "engine" with --backend vllm
GIB = 2 ** 30
BEGIN, END = "<!-- gpu_check:begin -->", "<!-- gpu_check:end -->"
PENDING = {"full": "full-size figures pending: no GPU was available.",
           "tiny": "tiny figures pending: run `python benchmarks/gpu_check.py --size tiny --write-results`."}
BIG_GPU = re.compile(r"H100|H200|H800|GH200|B200|B100", re.IGNORECASE)  # "H100/H200-class"
EIGHT_B = (7.0e9, 9.5e9)  # parameters of "an 8 B model" (Qwen2.5-VL-7B has 8.29 B)


# ---------------------------------------------------------------------------------------------- inputs
def frame_shape(max_pixels: int, source=(1080, 1920)) -> tuple[int, int]:
    """(H, W) of the frames the sampler returns for a ``source`` clip (decoded at ``ModelConfig.max_side``)."""
    from roadbuddy_utils.models.config import ModelConfig

    side = ModelConfig("tiny:internvl", max_pixels=max_pixels).max_side
    return round(source[0] * side / source[1]), side


def make_examples(n: int, n_frames: int, max_pixels: int, seed: int = 0) -> list:
    """``n`` four-choice questions on 10 s, 30 fps clips with ``n_frames`` random frames each (gold A)."""
    from roadbuddy_utils.data.questions import Item
    from roadbuddy_utils.models.example import Example

    h, w = frame_shape(max_pixels)
    rng = np.random.default_rng(seed)
    idx = [int(300 / n_frames * (k + 0.5)) for k in range(n_frames)]  # segment centres, as the sampler picks them
    out = []
    for q in range(n):
        item = Item(f"gc{q}", "Đèn tín hiệu giao thông phía trước đang có màu gì?",
                    [("A", "Đỏ"), ("B", "Vàng"), ("C", "Xanh"), ("D", "Không có đèn")], "A", [5.0], None, f"v{q}.mp4")
        frames = rng.integers(0, 255, (n_frames, h, w, 3), dtype=np.uint8)
        out.append(Example(item, frames, [i / 30 for i in idx], idx, 30.0, 300))
    return out


# ---------------------------------------------------------------------------------------------- measuring
class Meter:
    """Synchronised wall time and the CUDA allocator's peak (None on the CPU: it keeps no such statistic)."""

    def __init__(self, device):
        import torch

        self.torch, self.cuda = torch, torch.device(device).type == "cuda"

    def reset(self):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def now(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
        return time.perf_counter()

    def peak_gib(self) -> float | None:
        return round(self.torch.cuda.max_memory_allocated() / GIB, 3) if self.cuda else None

    def allocated_gib(self) -> float | None:
        return round(self.torch.cuda.memory_allocated() / GIB, 3) if self.cuda else None

    def peak_fields(self) -> dict:
        peak = self.peak_gib()
        return {"peak_gib": peak} | ({} if peak is not None else
                                     {"peak_note": "CPU: torch.cuda.max_memory_allocated exists only on CUDA"})


def failure(err: BaseException) -> dict:
    from roadbuddy_utils.machine.hardware import is_oom

    text = (str(err).strip().splitlines() or [""])[0][:300]
    return {"status": "oom" if is_oom(err) else "error", "error": f"{type(err).__name__}: {text}"}


def run_phase(record: dict, name: str, fn, save=None) -> dict:
    """``record[name]`` = fn()'s numbers with status ok, or the failure (out-of-memory or error); never raises."""
    from roadbuddy_utils.machine.hardware import free_memory

    t0 = time.perf_counter()
    try:
        record[name] = {"status": "ok", **fn()}
    except Exception as err:  # noqa: BLE001 - one failure must never lose the other measurements
        record[name] = failure(err)
    free_memory()
    record[name]["wall_s"] = round(time.perf_counter() - t0, 3)
    if save:
        save()
    return record[name]


def percentiles(values: list[float]) -> dict:
    return {"p50": round(float(np.percentile(values, 50)), 4), "p95": round(float(np.percentile(values, 95)), 4)}


def time_scoring(vlm, examples, scoring: str, batches, repeats: int, new_tokens: int, meter: Meter) -> dict:
    """Seconds per question for each batch size (stopping after the first out-of-memory) and the best batch."""
    from roadbuddy_utils.machine.hardware import free_memory

    def call(chunk):
        if scoring == "likelihood":
            return sum(r["error"] is not None for r in vlm.answer(chunk, scoring="likelihood"))
        vlm.generate(chunk, max_new_tokens=new_tokens)  # the decoding itself: random weights never write a letter
        return 0

    out: dict = {"batches": {}}
    for b in batches:
        chunk = examples[:b]
        try:
            meter.reset()
            errors = call(chunk)  # warm-up: kernels, allocator, caches
            per_q = []
            for _ in range(repeats):
                t0 = meter.now()
                errors += call(chunk)
                per_q.append((meter.now() - t0) / b)
            p = percentiles(per_q)
            out["batches"][str(b)] = {"status": "ok", "calls": repeats, "s_per_question_p50": p["p50"],
                                      "s_per_question_p95": p["p95"], "s_per_call_p50": round(p["p50"] * b, 4),
                                      "error_rows": errors, **meter.peak_fields()}
        except Exception as err:  # noqa: BLE001
            out["batches"][str(b)] = failure(err)
        if out["batches"][str(b)]["status"] != "ok":
            free_memory()  # outside the except block: the traceback no longer holds the batch's tensors
            if out["batches"][str(b)]["status"] == "oom":
                break  # a larger batch needs more memory still
    ok = {b: r for b, r in out["batches"].items() if r["status"] == "ok"}
    if not ok:
        raise RuntimeError(f"every batch failed; batch {batches[0]}: {out['batches'][str(batches[0])]['error']}")
    out["best_batch"] = int(min(ok, key=lambda b: ok[b]["s_per_question_p50"]))
    return out


def count_tokens(vlm, example, n_frames: int) -> dict:
    """Visual and prompt tokens of one question (the processor on the CPU) and the planner's visual count."""
    import torch

    from roadbuddy_utils.models import plan
    from roadbuddy_utils.models.checkpoint import read_checkpoint

    cpu = replace(vlm, model=torch.nn.Linear(1, 1))  # same processor and prompt path; tensors stay on the CPU
    ids = cpu.inputs([example])["input_ids"][0]
    config = vlm.model.config
    marks = {getattr(config, k, None) for k in ("image_token_id", "video_token_id")} - {None}
    visual = int(sum(int((ids == t).sum()) for t in marks))
    planned = plan.visual_tokens(vlm.family, config, read_checkpoint(vlm.path).processor, n_frames, vlm.cfg.max_pixels)
    name = Path(vlm.path).name
    out = {"visual_tokens": visual, "prompt_tokens": int(len(ids)), "planner_visual_tokens": planned["visual"],
           "matches_planner": visual == planned["visual"]}
    if name in REFERENCE_VISUAL_8 and n_frames == 8:
        out["reference_visual_tokens"] = REFERENCE_VISUAL_8[name]
    return out


def planned(vlm, n_frames: int, lora_r: int = 32) -> dict:
    """The memory planner's figures for this model on this device (to set beside the measured peaks)."""
    from roadbuddy_utils.models.plan import make_plan

    cuda = vlm.device.type == "cuda"
    kw = dict(gpus="auto" if cuda else "cpu", dtype=vlm._dtype_name(), quantization=vlm.cfg.quantization,
              n_frames=n_frames, max_pixels=vlm.cfg.max_pixels, device_map=None, suggest=False)
    infer = make_plan(vlm.path, **kw)
    train = make_plan(vlm.path, train=True, gradient_checkpointing=True, lora_r=lora_r,
                      optimizer="paged_adamw_8bit" if cuda and vlm.cfg.quantization != "none" else "adamw", **kw)
    return {"weights_gib": infer.weights_gib, "inference_peak_gib": round(max(infer.per_device_gib.values()), 3),
            "train_peak_gib": round(max(train.per_device_gib.values()), 3), "fits": infer.fits, "train_fits": train.fits,
            "note": "planner peaks include its CUDA context allowance (0.75 GiB per GPU); measured peaks do not"}


def train_step(vlm, examples, n_frames: int, meter: Meter, lora_r: int = 32) -> dict:
    """One LoRA / QLoRA step on one question, as train.train sets it up (the model is trained in place)."""
    import torch
    from transformers import Trainer, TrainingArguments

    from roadbuddy_utils.machine import hardware
    from roadbuddy_utils.train.examples import Collator
    from roadbuddy_utils.train.finetune import (
        TrainConfig,
        apply_trainable,
        float32_trainable,
        trainable_counts,
        training_precision,
    )
    from roadbuddy_utils.train.qlora import prepare_quantized_for_training

    quantized = vlm.cfg.quantization != "none"
    tcfg = TrainConfig(model=vlm.cfg.model, trainable=("lora",), lora_r=lora_r, lora_alpha=2 * lora_r, loss="tokens",
                       n_frames=n_frames, train_frames=n_frames, max_pixels=vlm.cfg.max_pixels, batch_size=1,
                       dtype=vlm.cfg.dtype, quantization=vlm.cfg.quantization, gradient_checkpointing=True)
    device = vlm.device
    cuda = device.type == "cuda"
    precision = training_precision(tcfg, hardware.device_capability(device) if cuda else None, cuda)
    model = vlm.model
    if quantized:  # QLoRA: the inference phases above may have packed the 4-bit weights for the CPU
        model = prepare_quantized_for_training(model)
    model = apply_trainable(model, vlm.family, tcfg)
    float32_trainable(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    batch = {k: v.to(device) for k, v in Collator(vlm, tcfg)(examples[:1]).items()}
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, optim=precision["optim"], learning_rate=tcfg.lr,
                                 weight_decay=tcfg.weight_decay, bf16=precision["bf16"], fp16=precision["fp16"],
                                 use_cpu=not cuda, report_to=[])
        opt_cls, opt_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    opt = opt_cls([p for p in model.parameters() if p.requires_grad], **opt_kwargs)
    half = torch.bfloat16 if precision["bf16"] else torch.float16 if precision["fp16"] else None
    scaler = torch.amp.GradScaler(device.type) if precision["fp16"] else None  # what the Trainer does for fp16
    meter.reset()
    t0 = meter.now()
    with torch.autocast(device.type, dtype=half) if half else nullcontext():
        loss = model(**batch).loss
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    seconds = meter.now() - t0
    loss = float(loss.detach())
    if not np.isfinite(loss):
        raise FloatingPointError(f"training loss is {loss}")
    return {"kind": "qlora" if quantized else "lora", "seconds": round(seconds, 4), **meter.peak_fields(),
            "loss": round(loss, 4), "sequence_tokens": int(batch["input_ids"].shape[1]),
            "trainable_params": trainable_counts(model)["trainable"], "lora_r": lora_r,
            "precision": {k: precision[k] for k in ("bf16", "fp16", "optim", "gradient_checkpointing")}}


# ---------------------------------------------------------------------------------------------- one model
def precision_config(source: str, precision: str, device: str, max_pixels: int, n_frames: int):
    """(ModelConfig, None) for ``precision`` on ``device``, or (None, why it is not measured here)."""
    from roadbuddy_utils.machine import hardware
    from roadbuddy_utils.models.config import ModelConfig

    cap = None
    if device.startswith("cuda"):
        import torch

        cap = torch.cuda.get_device_capability(torch.device(device))
    if precision == "bfloat16" and cap is not None and cap < (8, 0):
        return None, f"bfloat16 is only emulated below compute capability 8.0 (this GPU: {cap[0]}.{cap[1]})"
    if precision in ("bfloat16", "float16") and cap is None and device != "meta":
        return None, f"{precision} on the CPU is not measured (float32 and 4bit are)"
    if precision not in ("bfloat16", "float16", "float32", "4bit"):
        raise ValueError(f"--dtypes: unknown precision {precision!r}; choose bfloat16, float16, float32, 4bit")
    if precision == "4bit":
        hardware.check_quantization("4bit", cap)
    dtype = "bfloat16" if device == "meta" and precision == "4bit" else "auto" if precision == "4bit" else precision
    return ModelConfig(source, dtype=dtype, quantization="4bit" if precision == "4bit" else "none", device=device,
                       attn_implementation="auto", n_frames=n_frames, max_pixels=max_pixels), None


def check_model(run: dict, source: str, precision: str, args, device: str, save) -> dict:
    """Every phase of one model in one precision into ``run`` (each caught on its own); the model is freed afterwards."""
    from roadbuddy_utils.models.random_init import random_vlm

    run.update(model=Path(source).name if not source.startswith("tiny:") else source, source=source)
    ph = run["phases"]
    cfg, why = precision_config(source, precision, device, args.max_pixels, args.frames)
    if cfg is None:
        run["skipped"] = why
        return run
    meter = Meter(device if device != "meta" else "cpu")
    holder = {}

    def build():
        meter.reset()
        t0 = time.perf_counter()
        holder["vlm"], info = random_vlm(source, cfg, seed=args.seed, work_dir=Path(args.work_dir) / run["model"])
        return info | {"seconds": round(time.perf_counter() - t0, 3), "weights_gib": meter.allocated_gib(),
                       "build_peak_gib": meter.peak_gib()}

    if run_phase(ph, "build", build, save)["status"] != "ok":
        for name in PHASES[1:]:
            ph[name] = {"status": "skipped", "reason": "the model could not be built"}
        return run
    vlm = holder.pop("vlm")
    examples = make_examples(max(args.batches), args.frames, args.max_pixels, args.seed)
    if "plan" in args.phases:
        run_phase(ph, "plan", lambda: planned(vlm, args.frames), save)
    if "tokens" in args.phases:
        run_phase(ph, "tokens", lambda: count_tokens(vlm, examples[0], args.frames), save)
    for scoring in ("likelihood", "generate"):
        if device == "meta":
            ph[scoring] = {"status": "skipped", "reason": "no CUDA GPU: the full-size model was built on the meta device"}
        elif scoring in args.phases:
            run_phase(ph, scoring, lambda s=scoring: time_scoring(vlm, examples, s, args.batches, args.repeats,
                                                                   args.new_tokens, meter), save)
    if device == "meta":
        ph["train"] = {"status": "skipped", "reason": "no CUDA GPU: the full-size model was built on the meta device"}
    elif "train" in args.phases:  # last: it wraps and trains the model in place
        run_phase(ph, "train", lambda: train_step(vlm, examples, args.frames, meter), save)
    del vlm
    if getattr(args, "backend", "hf") == "vllm":
        from roadbuddy_utils.machine.hardware import free_memory

        free_memory()  # the HF model's memory back before the engine reserves its share
        if device == "meta":
            ph["engine"] = {"status": "skipped", "reason": "no CUDA GPU for the full-size model"}
        elif precision == "4bit":
            ph["engine"] = {"status": "skipped", "reason": "4-bit needs real weights for bitsandbytes (dummy weights here)"}
        else:
            run_phase(ph, "engine", lambda: engine_phase(source, cfg, examples, args, run, meter), save)
    return run


def engine_phase(source: str, cfg, examples, args, run: dict, meter) -> dict:
    """Start the engine on the same model, time likelihood and generation per batch, compare with the HF phases."""
    from roadbuddy_utils.engine.client import EngineVLM
    from roadbuddy_utils.models.random_init import checkpoint_folder

    folder = checkpoint_folder(source, Path(args.work_dir) / run["model"])
    dummy = not any(folder.glob("*.safetensors"))
    t0 = time.perf_counter()
    eng = EngineVLM.start(replace(cfg, model=str(folder), device="auto"),
                          {"extra": {"load_format": "dummy"} if dummy else {}})
    out = {"start_s": round(time.perf_counter() - t0, 2), "version": eng.engine_version, "dummy_weights": dummy,
           "settings": {k: v for k, v in eng._settings.items() if k not in ("model", "tokenizer")}}
    try:
        for scoring in ("likelihood", "generate"):
            out[scoring] = time_scoring(eng, examples, scoring, args.batches, args.repeats, args.new_tokens, meter)
            hf = run["phases"].get(scoring) or {}
            if hf.get("status") == "ok":
                best = lambda r: r["batches"][str(r["best_batch"])]["s_per_question_p50"]  # noqa: E731
                out[scoring]["throughput_vs_hf"] = round(best(hf) / max(best(out[scoring]), 1e-9), 2)
    finally:
        eng.close()
    return out


# ---------------------------------------------------------------------------------------------- targets, report
def targets(results: dict) -> list[dict]:
    """The issue's targets, each with what was measured and pass / fail (or why it does not apply)."""
    gpus = results["machine"].get("gpus") or []
    gpu = gpus[0]["name"] if gpus else None
    specs = [("p95 ≤ 2 s per question, likelihood, batch 1: 8 B model in bf16 on an H100/H200-class GPU", "likelihood",
              "bfloat16", 2.0, True),
             ("p95 ≤ 2 s per question, generate 16 tokens, batch 1: 8 B model in bf16 on an H100/H200-class GPU",
              "generate", "bfloat16", 2.0, True),
             ("QLoRA step peak ≤ 12 GiB: 8 B model, 4-bit base, 8 frames (fits a T4)", "train", "4bit", 12.0, False),
             ("bf16 LoRA step peak ≤ 20 GiB: 8 B model, 8 frames (fits the 24 GB card)", "train", "bfloat16", 20.0, False)]
    out = []
    for label, phase, precision, limit, latency in specs:
        rows = []
        if results["size"] != "full":
            why = "not applicable: tiny models on the CPU (the targets are for full-size models on a GPU)"
        elif not gpu:
            why = "pending: no GPU was available"
        elif latency and not BIG_GPU.search(gpu):
            why = f"not applicable on {gpu} (the target is for an H100/H200-class GPU)"
        elif not latency and results["frames"] != 8:
            why = "not applicable: the target is at 8 frames"
        else:
            why = "not measured: no 8 B run in this precision"
            for run in results["runs"]:
                b = run["phases"].get("build", {})
                if run["precision"] != precision or not (EIGHT_B[0] <= b.get("n_params", 0) <= EIGHT_B[1]):
                    continue
                r = run["phases"].get(phase, {})
                if r.get("status") != "ok":
                    rows.append((run["model"], r.get("status", "missing"), False))
                elif latency:
                    v = r["batches"]["1"]["s_per_question_p95"] if r["batches"].get("1", {}).get("status") == "ok" else None
                    rows.append((run["model"], f"{v:.2f} s" if v is not None else "batch 1 failed",
                                 v is not None and v <= limit))
                else:
                    rows.append((run["model"], f"{r['peak_gib']:.2f} GiB", r["peak_gib"] <= limit))
        measured = "; ".join(f"{m}: {v}" for m, v, _ in rows) or why
        verdict = ("pass" if all(ok for *_, ok in rows) else "FAIL") if rows else "—"
        out.append({"target": label, "measured": measured, "verdict": verdict})
    return out


def machine_line(d: dict) -> str:
    gpus = d.get("gpus") or []
    gpu = (f"{len(gpus)} × {gpus[0]['name']} (compute capability {'.'.join(map(str, gpus[0]['capability']))}, "
           f"{gpus[0]['total_gib']} GiB)") if gpus else "no GPU"
    return (f"{gpu}; {d.get('cpu')} ({d.get('cores')} cores), {d.get('ram_total_gib')} GiB RAM; env {d.get('env')}; "
            f"Python {d.get('python')}, torch {d.get('torch')} (CUDA {d.get('cuda')}), transformers "
            f"{d.get('transformers')}, bitsandbytes {d.get('bitsandbytes')}")


def _cell(r: dict | None, fmt) -> str:
    if not r:
        return "—"
    if r.get("status") == "ok":
        return fmt(r)
    return {"oom": "OOM", "skipped": "skipped"}.get(r.get("status"), "error")


def _scoring_cells(r: dict | None) -> tuple[str, str]:
    def b1(x):
        one = x["batches"].get("1", {})
        return f"{one['s_per_question_p50']:.3f} / {one['s_per_question_p95']:.3f}" if one.get("status") == "ok" else "failed"

    def best(x):
        b = x["batches"][str(x["best_batch"])]
        tried = ", ".join(f"{k}{'' if v['status'] == 'ok' else ' ' + v['status'].upper()}" for k, v in x["batches"].items())
        return f"{x['best_batch']}: {b['s_per_question_p50']:.3f} / {b['s_per_question_p95']:.3f} (tried {tried})"
    return _cell(r, b1), _cell(r, best)


def _gib(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def markdown(results: dict) -> str:
    """The RESULTS.md block of one run: machine, command, date, the table and the targets."""
    lines = [f"Command: `{results['command']}`. Date: {results['date'][:10]}. Machine: {machine_line(results['machine'])}.",
             f"{results['frames']} frames per question ({results['frame_shape'][1]}×{results['frame_shape'][0]}, "
             f"448 × 448 pixel budget), {results['repeats']} timed calls per batch after one warm-up; seconds per "
             "question p50 / p95 (a batch's time divided by its size); peaks are torch.cuda.max_memory_allocated "
             "(weights included), reset before each measurement; the planner's figures (models/plan.py, batch 1, QLoRA / "
             "LoRA r 32 with gradient checkpointing) are for the same device (on a GPU they include its 0.75 GiB "
             "CUDA-context allowance)."]
    if results["size"] == "tiny":
        lines.append("**Tiny random models (about 0.2 M parameters) on the CPU, which other jobs were sharing:** these "
                     "figures show that every phase runs, not how fast anything real is; the CPU keeps no allocator "
                     "peak, so the memory columns are empty.")
    lines += ["", "| model | precision | model build s | parameters | visual tokens (planner) / prompt | likelihood s/q, batch 1 "
                  "| likelihood best batch | generate 16 tokens s/q, batch 1 | generate best batch | peak GiB, likelihood "
                  "batch 1 | train step | step s | step peak GiB | planner GiB: inference / train |", "|" + "---|" * 14]
    for run in results["runs"]:
        ph = run["phases"]
        if run.get("skipped"):
            lines.append(f"| {run['model']} | {run['precision']} | skipped: {run['skipped']} |" + " |" * 11)
            continue
        b, t, tr = ph.get("build"), ph.get("tokens"), ph.get("train")
        lk, lbest = _scoring_cells(ph.get("likelihood"))
        gk, gbest = _scoring_cells(ph.get("generate"))
        peak = _cell(ph.get("likelihood"), lambda x: _gib(x["batches"].get("1", {}).get("peak_gib")))
        lines.append(" | ".join([
            f"| {run['model']}", run["precision"], _cell(b, lambda x: f"{x['build_s']:.1f}"),
            _cell(b, lambda x: f"{x['n_params'] / 1e9:.3f} B" if x["n_params"] > 1e8 else f"{x['n_params'] / 1e6:.2f} M"),
            _cell(t, lambda x: f"{x['visual_tokens']} ({x['planner_visual_tokens']}) / {x['prompt_tokens']}"),
            lk, lbest, gk, gbest, peak, _cell(tr, lambda x: x["kind"]), _cell(tr, lambda x: f"{x['seconds']:.2f}"),
            _cell(tr, lambda x: _gib(x.get("peak_gib"))),
            _cell(ph.get("plan"), lambda x: f"{x['inference_peak_gib']:.2f} / {x['train_peak_gib']:.2f}")]) + " |")
    errors = [(run["model"], run["precision"], name, r["error"]) for run in results["runs"]
              for name, r in run["phases"].items() if r.get("error")]
    errors += [(run["model"], run["precision"], f"{name} batch {k}", v["error"]) for run in results["runs"]
               for name in ("likelihood", "generate") for k, v in run["phases"].get(name, {}).get("batches", {}).items()
               if v.get("error")]
    engine = [run for run in results["runs"] if run["phases"].get("engine")]
    if engine:
        lines += ["", "The vLLM engine on the same questions (`--backend vllm`; throughput = HF best-batch s/q over the "
                      "engine's; the engine's memory is its own process's, not measured here):", "",
                  "| model | precision | engine start s | likelihood s/q, best batch | vs HF | generate s/q, best batch "
                  "| vs HF |", "|---|---|---|---|---|---|---|"]
        for run in engine:
            e = run["phases"]["engine"]
            if e.get("status") != "ok":
                lines.append(f"| {run['model']} | {run['precision']} | {e.get('reason') or e.get('error')} | | | | |")
                continue
            cells = []
            for scoring in ("likelihood", "generate"):
                r = e[scoring]
                cells += [f"{r['batches'][str(r['best_batch'])]['s_per_question_p50']:.3f} (batch {r['best_batch']})",
                          f"{r.get('throughput_vs_hf', '-')}x"]
            lines.append(" | ".join([f"| {run['model']}", run["precision"], f"{e['start_s']:.0f}", *cells]) + " |")
    if errors:
        lines += ["", "Failures (out of memory or errors, as recorded in the JSON):", ""]
        lines += [f"- {m} {p} {name}: {e}" for m, p, name, e in errors]
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in results["targets"]]
    return "\n".join(lines)


def write_section(path, size: str, body: str) -> Path:
    """Replace the ``size`` block (tiny / full) of the gpu_check section in ``path``; the section is
    created (with both blocks, the other one pending) when missing; the rest of the file is kept."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Measured results\n"
    if BEGIN not in text or END not in text:
        blocks = "\n\n".join(f"### {_title(s)}\n\n<!-- gpu_check:{s}:begin -->\n{PENDING[s]}\n<!-- gpu_check:{s}:end -->"
                             for s in ("full", "tiny"))
        text = (text.rstrip("\n") + "\n\n" + BEGIN + "\n## GPU check (`benchmarks/gpu_check.py`, issue 11 item 9)\n\n"
                "Full-size random-weight models built from the real config files (models/random_init.py), measured on CUDA; "
                "`--size tiny` runs the same code on the CPU.\n\n" + blocks + "\n" + END + "\n")
    start, stop = f"<!-- gpu_check:{size}:begin -->", f"<!-- gpu_check:{size}:end -->"
    head, rest = text.split(BEGIN, 1)
    section, tail = rest.split(END, 1)
    if start not in section:
        section = section.rstrip("\n") + f"\n\n### {_title(size)}\n\n{start}\n{PENDING[size]}\n{stop}\n"
    before, after = section.split(start, 1)
    section = before + start + "\n" + body.strip("\n") + "\n" + stop + after.split(stop, 1)[1]
    path.write_text(head + BEGIN + section + END + tail, encoding="utf-8")
    return path


def _title(size: str) -> str:
    return "Full-size models on a GPU (`--size full`)" if size == "full" else "Tiny models on the CPU (`--size tiny`)"


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--backend", choices=["hf", "vllm"], default="hf",
                    help="vllm: also the same questions through the vLLM engine (bash scripts/setup.sh --engine)")
    ap.add_argument("--families", default="internvl,qwen2_5_vl,qwen3_vl", help="comma list (tiny:<family> or the 8 B configs)")
    ap.add_argument("--model", action="append", default=None, help="a config folder or tiny:<family> (repeatable; "
                                                                     "replaces --families)")
    ap.add_argument("--dtypes", default=None, help="comma list of bfloat16, float16, float32, 4bit "
                                                   "(default: full bfloat16,float16,4bit; tiny float32,4bit)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batches", default="1,2,4,8", help="batch sizes tried in order until one runs out of memory")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per batch (default: full 10, tiny 3)")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--max-pixels", type=int, default=448 * 448)
    ap.add_argument("--phases", default=",".join(PHASES[1:]), help="of plan,tokens,likelihood,generate,train (build always)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="results file (default outputs/benchmarks/gpu_check_<size>.json)")
    ap.add_argument("--write-results", action="store_true", help="write the Markdown block into --results")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--from-json", default=None, help="measure nothing: write the Markdown of a saved results JSON "
                                                      "(e.g. of a run killed midway: the JSON is saved after every phase)")
    ap.add_argument("--work-dir", default=None, help="where real-size tokenizers are written (default: a temporary folder)")
    args = ap.parse_args(argv)
    args.batches = sorted({int(b) for b in str(args.batches).split(",") if b.strip()})
    if not args.batches or args.batches[0] < 1:
        ap.error(f"--batches must be positive integers, got {args.batches}")
    args.dtypes = [d.strip() for d in (args.dtypes or ("bfloat16,float16,4bit" if args.size == "full"
                                                        else "float32,4bit")).split(",") if d.strip()]
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if args.phases - set(PHASES[1:]):
        ap.error(f"--phases: unknown {sorted(args.phases - set(PHASES[1:]))}; choose from {PHASES[1:]}")
    args.repeats = args.repeats or (10 if args.size == "full" else 3)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FULL]
    if unknown and not args.model:
        ap.error(f"--families: unknown {unknown}; choose from {sorted(FULL)}")
    args.sources = args.model or [f"tiny:{f}" if args.size == "tiny" else str(ROOT / FULL[f]) for f in families]
    args.json = args.json or str(ROOT / "outputs" / "benchmarks" / f"gpu_check_{args.size}.json")
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="rb-gpu-check-")
    return args


def report(results: dict, args) -> str:
    """The Markdown block of ``results`` (targets recomputed), written into --results with --write-results."""
    results["targets"] = targets(results)
    body = markdown(results)
    if results["device"] == "meta":
        body = PENDING["full"] + f" Last attempt {results['date'][:10]} on: {machine_line(results['machine'])}; its CPU " \
               "checks of the full-size path (models on the meta device, real-size tokenizers and processors):\n\n" + body
    print(body)
    if args.write_results:
        print(f"wrote the {results['size']} block of {write_section(args.results, results['size'], body)}")
    return body


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        import json

        report(json.loads(Path(args.from_json).read_text(encoding="utf-8")), args)
        return 0
    import torch

    from roadbuddy_utils.common.files import write_json
    from roadbuddy_utils.machine import hardware

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if args.size == "full" and not cuda:
        print("no CUDA GPU on this machine: the full-size figures need one. Checking what the CPU can (full-size "
              "models on the meta device, real-size tokenizers and processors); exit status 2.", file=sys.stderr)
        device = "meta"
    results = {"size": args.size, "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": hardware.describe(), "device": device, "frames": args.frames,
               "frame_shape": list(frame_shape(args.max_pixels)), "repeats": args.repeats, "batches": args.batches,
               "new_tokens": args.new_tokens, "runs": [], "targets": []}
    save = lambda: write_json(results, args.json)  # noqa: E731 - rewritten after every phase
    for source in args.sources:
        for precision in args.dtypes:
            run = {"model": source, "precision": precision, "phases": {}}
            results["runs"].append(run)
            try:
                check_model(run, source, precision, args, device, save)
            except Exception as err:  # noqa: BLE001 - e.g. a bad --model: recorded, the other models still run
                run["skipped"] = failure(err)["error"]
            hardware.free_memory()
            print(f"{source} {precision}: " + ", ".join(f"{k} {v['status']}" for k, v in run["phases"].items())
                  + (f" skipped ({run['skipped']})" if run.get("skipped") else ""), flush=True)
            save()
    report(results, args)
    save()
    print(f"wrote {args.json}")
    return 2 if device == "meta" else 0


if __name__ == "__main__":
    sys.exit(main())

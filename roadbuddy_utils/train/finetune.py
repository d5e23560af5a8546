"""LoRA (or full) fine-tuning with the Hugging Face ``Trainer``, validated by the likelihood scorer.

    cfg = TrainConfig(model="tiny:internvl", train_json=..., videos_root=..., output_dir="outputs/demo/04")
    result = train(cfg)              # {"val_accuracy_before", "val_accuracy_best", "adapter_path", "history", ...}
    export_merged(result["adapter_path"], "outputs/demo/04/merged")   # a standalone folder 03 loads

What trains (``trainable``): ``lora`` on the language model (regex per family, so the vision tower
is never hit by accident); ``projector`` adds the vision-language projector as a fully trained
module (``modules_to_save``); ``vision`` adds LoRA on the vision tower (with ``full``: trains it
fully); ``lm_head`` trains the output layer; ``full`` trains every weight outside the vision tower.
On a random tiny model the demo profile trains LoRA + projector + lm_head (benchmarks/RESULTS.md
has what LoRA alone reaches).

Examples use the same prompt renderer as 03 (``VLM.inputs``). Only the answer tokens carry the loss
(prompt, image and padding tokens are -100). ``loss="letters"`` restricts the loss at the answer
position to the letters the question offers (what the likelihood scorer reads). Training frames come
from ``support`` mode, a pool around the support times from which each epoch draws a random subset
(jitter); validation uses the frames 03 uses: uniform, or with ``selector`` (``frame_mode: select``) the
frames a selector picks per question (chosen once, lines in ``selected_frames.jsonl``, hit rate in
``metrics.json``'s ``val_frames``). Validation accuracy is the likelihood scorer's,
every epoch (or ``eval_steps``); the best adapter by that accuracy is kept; TensorBoard logs;
``resume_from="last"`` continues after a kill. Runs unchanged under ``torchrun`` / ``accelerate launch``.

``knowledge="glossary"`` puts 03's QCVN 41:2024 notes (knowledge/ground.py) before each training and validation
question, so that the adapter learns to use them; 03 must then answer with ``knowledge: glossary`` too.

Hardware (``machine/hardware.py`` decides the ``auto`` values): base weights in bfloat16 from compute
capability 8.0, float16 below, float32 on the CPU; mixed precision bf16 where native, fp16 on a T4
/ V100; parts that train are kept in float32. ``quantization: 4bit`` is QLoRA: the base in NF4,
``peft.prepare_model_for_kbit_training``, LoRA, gradient checkpointing, and the ``paged_adamw_8bit``
optimizer on CUDA (``adamw_torch_fused`` on a CPU, recorded in ``metrics.json``'s ``precision``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..common.files import write_json, write_jsonl
from ..data.questions import Item
from ..machine import hardware
from ..models.example import Example
from ..selection.selector import FrameSelector, SelectorConfig, near_support
from ..video.frames import FrameCache, SamplingConfig
from .examples import Collator, TrainSet, frame_pools
from .qlora import keep_4bit_unpacked, prepare_quantized_for_training

LANGUAGE = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
VISION = {"internvl": r".*vision_tower.*\.(q_proj|k_proj|v_proj|projection_layer|fc1|fc2)$",
          "qwen": r".*visual\.blocks.*\.(qkv|proj|gate_proj|up_proj|down_proj)$",
          "qwen3": r".*visual\.blocks.*\.(qkv|proj|linear_fc1|linear_fc2)$"}
PROJECTOR = {"internvl": ["multi_modal_projector"], "qwen": ["merger"], "qwen3": ["merger", "deepstack_merger_list"]}


def projector_modules(model, family: str) -> list[str]:
    """Names ``modules_to_save`` can wrap: a ModuleList (Qwen3-VL's deepstack mergers) by its items."""
    import torch

    names = []
    for key in PROJECTOR[family]:
        for name, m in model.named_modules():
            if name.split(".")[-1] == key:
                if isinstance(m, torch.nn.ModuleList):
                    names += [f"{key}.{i}" for i in range(len(m))]
                else:
                    names.append(key)
                break
    return sorted(set(names))
TRAINABLE = {"lora", "projector", "vision", "lm_head", "full"}


@dataclass
class TrainConfig:
    model: str = "tiny:internvl"
    train_json: str = ""
    videos_root: str | None = None
    output_dir: str = "outputs/demo/04_lora_train"
    split_file: str | None = None  # 01's grouped split (written once, reused); None: the one derived from the data
    val_fraction: float = 0.2
    split_seed: int = 0
    val_limit: int | None = None  # validate on at most this many questions (speed)
    cache_dir: str | None = None
    lang: str = "vi"
    # what trains
    trainable: tuple[str, ...] = ("lora",)
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    target_regex: str | None = None  # overrides the language-model regex
    # objective
    loss: str = "tokens"  # tokens: LM loss on the answer tokens | letters: CE over the offered letters
    target: str = "letter"  # letter | letter_text ("B. Sai")
    # frames
    n_frames: int = 8  # validation / inference frames per question
    selector: SelectorConfig | dict | None = None  # validation frames chosen per question (frame_mode select, as 03); None: uniform
    knowledge: str = "none"  # "glossary": train and validate with 03's QCVN 41:2024 notes before each question
    knowledge_budget: int = 240  # knowledge "glossary": at most this many tokens of notes per question (as 03)
    train_frames: int = 4  # frames drawn per training example from its pool
    pool_frames: int = 8  # pool per question: 5 frames around the support time + uniform context
    context_frames: int = 1  # of train_frames, uniform frames away from the support time
    jitter_s: float = 0.5  # pool frames at support time +/- this (and half of it)
    max_pixels: int = 448 * 448
    # optimiser (the reference recipe's defaults)
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scheduler: str = "cosine"
    batch_size: int = 4
    grad_accum: int = 4
    epochs: float = 5
    max_steps: int = -1
    eval_steps: int | None = None  # validate every N steps (None: every epoch)
    dtype: str = "auto"  # base weights: auto (bfloat16 >= 8.0, float16 on T4, float32 on the CPU) | float32 | ...
    quantization: str = "none"  # none | 8bit | 4bit (QLoRA: the quantized base stays frozen, LoRA trains)
    bf16: str | bool = "auto"  # mixed precision; auto: where native (compute capability >= 8.0)
    fp16: str | bool = "auto"  # auto: on GPUs without native bf16 (T4, V100)
    optim: str = "auto"  # auto: paged_adamw_8bit for a quantized model on CUDA, else adamw_torch_fused
    gradient_checkpointing: bool | str = "auto"  # auto: on with quantization
    seed: int = 0
    resume_from: str | None = None  # "last" | a checkpoint folder | None
    save_total_limit: int = 3
    dataloader_workers: int = 0

    def __post_init__(self):
        self.trainable = tuple(self.trainable)
        if isinstance(self.selector, dict):  # from train_config.json (torchrun) or a YAML mapping
            self.selector = SelectorConfig(**self.selector)
        bad = set(self.trainable) - TRAINABLE
        if bad:
            raise ValueError(f"trainable has unknown parts {sorted(bad)}; choose from {sorted(TRAINABLE)}")
        if self.loss not in ("tokens", "letters"):
            raise ValueError(f"loss must be 'tokens' or 'letters', got {self.loss!r}")
        if self.target not in ("letter", "letter_text"):
            raise ValueError(f"target must be 'letter' or 'letter_text', got {self.target!r}")
        if self.knowledge not in ("none", "glossary"):
            raise ValueError(f"knowledge must be 'none' or 'glossary', got {self.knowledge!r}")
        self.quantization = self.quantization or "none"
        if self.quantization not in hardware.QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {hardware.QUANTIZATIONS}, got {self.quantization!r}")
        if self.quantization != "none" and "full" in self.trainable:
            raise ValueError(f"trainable 'full' cannot train {self.quantization} weights: use quantization none, or "
                             "trainable lora / projector / lm_head (QLoRA)")


def config_from(params: dict) -> TrainConfig:
    """A TrainConfig from any mapping (a notebook's globals, a YAML file): known fields only."""
    from dataclasses import fields

    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in params.items() if k in names})


def launch(cfg: TrainConfig, num_processes: int = 1, log=print) -> dict:
    """Train in this process, or in ``num_processes`` DDP processes through ``torchrun`` (gloo on a
    CPU, nccl on GPUs): the same code either way. Returns the metrics rank 0 wrote."""
    import subprocess
    import sys

    if num_processes <= 1:
        return train(cfg, log=log)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = write_json(asdict(cfg), out / "train_config.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={num_processes}", "--standalone",
           "-m", "roadbuddy_utils", "train", "--config", str(cfg_path)]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)
    return json.loads((out / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------- modules
def candidate_modules(model) -> "pd.DataFrame":
    """Linear layers of a loaded model by component (the reference ``inspect_model.py``)."""
    import pandas as pd
    import torch

    rows = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            part = ("vision" if re.search(r"vision_tower|visual\.blocks|visual\.patch", name) else
                    "projector" if re.search(r"multi_modal_projector|merger", name) else
                    "language" if "language_model" in name else "head" if "lm_head" in name else "other")
            rows.append({"module": name, "part": part, "suffix": name.rsplit(".", 1)[-1],
                         "in": m.in_features, "out": m.out_features})
    return pd.DataFrame(rows)


def lora_target_regex(family: str, trainable, override: str | None = None) -> str:
    parts = [override or LANGUAGE]
    if "vision" in trainable:
        parts.append(VISION[family])
    return "|".join(f"(?:{p})" for p in parts)


def apply_trainable(model, family: str, cfg: TrainConfig):
    """Wrap ``model`` for training as ``cfg.trainable`` says; returns the (peft) model."""
    if "full" in cfg.trainable:  # everything but the vision tower (add "vision" to train it too)
        for name, p in model.named_parameters():
            p.requires_grad_("vision" in cfg.trainable or not re.search(r"vision_tower|visual\.(blocks|patch_embed|pos_embed)", name))
        return model
    from peft import LoraConfig, get_peft_model

    save = []
    if "projector" in cfg.trainable:
        save += projector_modules(model, family)
    if "lm_head" in cfg.trainable:
        save.append("lm_head")
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                      target_modules=lora_target_regex(family, cfg.trainable, cfg.target_regex),
                      modules_to_save=save or None, task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)


def trainable_counts(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    by_part: dict[str, int] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            part = ("lora_vision" if "lora_" in n and re.search(r"vision_tower|visual\.blocks", n) else
                    "lora_language" if "lora_" in n else
                    "projector" if re.search(r"multi_modal_projector|merger", n) else
                    "lm_head" if "lm_head" in n else "other")
            by_part[part] = by_part.get(part, 0) + p.numel()
    return {"total": total, "trainable": train, "share": round(train / total, 4), "by_part": by_part}


# ---------------------------------------------------------------------------------------- trainer
def _make_trainer_class():
    import torch
    from transformers import Trainer

    class RBTrainer(Trainer):
        """Trainer whose evaluation is the likelihood scorer's validation accuracy."""

        def __init__(self, *a, rb_vlm=None, rb_val=None, rb_cfg=None, **kw):
            super().__init__(*a, **kw)
            self.rb_vlm, self.rb_val, self.rb_cfg = rb_vlm, rb_val, rb_cfg

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            offered = inputs.pop("rb_offered", None)
            gold = inputs.pop("rb_gold", None)
            back = inputs.pop("rb_k", None)
            if offered is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            keep = int(back.max())
            out = model(**inputs, logits_to_keep=keep)
            logits = out.logits  # (B, keep, V): the last `keep` positions
            rows = logits[torch.arange(len(gold)), keep - back]  # the position predicting the letter
            mask = offered >= 0
            sel = torch.gather(rows, 1, offered.clamp(min=0)).masked_fill(~mask, float("-inf"))
            loss = torch.nn.functional.cross_entropy(sel.float(), gold)
            inputs["labels"] = labels
            return (loss, out) if return_outputs else loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            acc, n = val_accuracy(self.rb_vlm, self.model, self.rb_val, self.rb_cfg)
            metrics = {f"{metric_key_prefix}_accuracy": acc, "epoch": self.state.epoch or 0}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return RBTrainer


def val_accuracy(vlm, model, val: list[Example], cfg: TrainConfig, batch_size: int = 16) -> tuple[float, int]:
    """Likelihood-scorer accuracy of ``model`` (the training model, possibly DDP/peft-wrapped)."""
    base = getattr(model, "module", model)
    was_training = base.training
    vlm.model = base
    base.eval()
    right = 0
    for k in range(0, len(val), batch_size):
        chunk = val[k:k + batch_size]
        for ex, r in zip(chunk, vlm.answer(chunk, "likelihood", cfg.lang)):
            right += r["pred"] == ex.item.answer  # a non-finite (fp16) row has no letter: counted wrong
    if was_training:
        base.train()
    return right / max(1, len(val)), len(val)


def _val_examples(items, pools, k) -> list[Example]:
    return [TrainSet(items, pools, k, 0, jitter=False)[i] for i in range(len(items))]


def selected_examples(items: list[Item], scfg: SelectorConfig, vlm, cache: FrameCache | None, n_frames: int,
                      max_side: int, log=print) -> tuple[list[Example], list[dict], dict]:
    """Validation questions with the frames 03 would answer from under ``frame_mode: select``: the
    examples, one ``selected_frames.jsonl`` line each, and a summary (selector, share of questions
    with a chosen frame within ``window_s`` of a support time, fallbacks, selection time). Chosen
    once, before training: the selector does not depend on the weights being trained."""
    selector = FrameSelector.build(scfg, vlm=vlm, cache=cache)
    examples, lines, hits, ms = [], [], [], []
    for it in items:
        s, sel = selector.select_or_uniform(it, n_frames, max_side)
        if s is None:
            log(f"{it.id}: {sel.error} (validated from text alone)")
        examples.append(Example.of(it, s))
        if sel.fallback:
            log(f"{it.id}: selection fell back to uniform frames: {sel.error}")
        if it.support_frames and sel.timestamps:
            hits.append(bool(near_support(sel.timestamps, it.support_frames, scfg.window_s).any()))
        ms.append(sel.candidates_ms + sel.scoring_ms)
        lines.append({"id": it.id, "video_path": str(it.video_path)} | sel.record())
    summary = {"frame_mode": "select", "selector": selector.name, "k": n_frames,
               "hit_at_k": round(float(np.mean(hits)), 4) if hits else None, "n_with_support": len(hits),
               "n_fallback": sum(bool(ln["fallback"]) for ln in lines), "n_failed": sum(ex.frames is None for ex in examples),
               "selection_ms_median": round(float(np.median(ms)), 1) if ms else None}
    return examples, lines, summary


def with_glossary(train_items: list[Item], val_items: list[Item], vlm, budget: int) -> tuple[list, list, dict]:
    """Both sides with their glossary notes (knowledge/ground.py, counted by the model's tokenizer) and what
    metrics.json records: glossary version, budget, questions with notes on each side."""
    from ..knowledge.glossary import load
    from ..knowledge.ground import ground_items

    tok = vlm.processor.tokenizer
    count = lambda text: len(tok.encode(text, add_special_tokens=False))  # noqa: E731
    tr, va = ground_items(train_items, budget, count), ground_items(val_items, budget, count)
    return tr, va, {"mode": "glossary", "glossary_version": load().version, "budget_tokens": budget,
                    "train_with_notes": sum(bool(i.notes) for i in tr), "val_with_notes": sum(bool(i.notes) for i in va)}


def train(cfg: TrainConfig, log=print, callbacks=None) -> dict:
    """Train, validate, keep the best adapter; returns (and writes) ``metrics.json``'s content."""
    import torch
    from transformers import TrainerCallback, TrainingArguments, set_seed

    from ..data.questions import load_items
    from ..data.split import load_or_make_split, select
    from ..models.config import ModelConfig
    from ..models.vlm import VLM

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    rank = int(os.environ.get("RANK", "0"))
    items = [i for i in load_items(cfg.train_json, cfg.videos_root) if i.answer]
    split = load_or_make_split(items, cfg.split_file, cfg.val_fraction, cfg.split_seed)  # None: the data's own
    train_items, val_items = select(items, split["train_ids"]), select(items, split["val_ids"])
    if cfg.val_limit:
        val_items = val_items[: cfg.val_limit]
    cuda = torch.cuda.is_available()
    mcfg = ModelConfig(cfg.model, n_frames=cfg.n_frames, max_pixels=cfg.max_pixels, dtype=cfg.dtype,
                       quantization=cfg.quantization,
                       device=f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu")
    precision = training_precision(cfg, hardware.device_capability(mcfg.device), cuda)
    vlm = VLM.load(mcfg)
    knowledge = None
    if cfg.knowledge == "glossary":  # the notes 03 shows, in training and validation prompts alike
        train_items, val_items, knowledge = with_glossary(train_items, val_items, vlm, cfg.knowledge_budget)
    if cfg.quantization != "none":  # validation before, during and after training on the layout training uses
        keep_4bit_unpacked(vlm.model)
    cache = FrameCache(cfg.cache_dir) if cfg.cache_dir else None
    pool_cfg = SamplingConfig("support", n_frames=cfg.pool_frames, min_frames=cfg.pool_frames,
                              max_frames=cfg.pool_frames, support_window_s=0.0, max_side=mcfg.max_side)
    val_cfg = SamplingConfig("uniform", n_frames=cfg.n_frames, max_side=mcfg.max_side)
    train_pools = frame_pools(train_items, pool_cfg, cache, support=True, jitter_s=cfg.jitter_s, log=log)
    if cfg.selector is not None:
        val, sel_lines, val_frames = selected_examples(val_items, cfg.selector, vlm, cache, cfg.n_frames, mcfg.max_side,
                                                       log)
        if rank == 0:
            write_jsonl(sel_lines, out / "selected_frames.jsonl")
        log(f"validation frames: {val_frames['selector']}, hit@{cfg.n_frames} {val_frames['hit_at_k']} "
            f"({val_frames['n_fallback']} fallbacks)")
    else:
        val = _val_examples(val_items, frame_pools(val_items, val_cfg, cache, support=False, log=log), cfg.n_frames)
        val_frames = {"frame_mode": "uniform", "k": cfg.n_frames}
    chance = float(np.mean([1 / i.n_choices for i in val_items]))
    acc_before, _ = val_accuracy(vlm, vlm.model, val, cfg)
    log(f"{len(train_items)} training / {len(val_items)} validation questions; accuracy before {acc_before:.3f} "
        f"(chance {chance:.3f})")

    set_seed(cfg.seed)  # LoRA initialisation must not depend on what ran before (a model build, a cache miss)
    model = vlm.model
    if cfg.quantization != "none":  # QLoRA: frozen quantized base, norms / embeddings in float32
        model = prepare_quantized_for_training(model)
    model = apply_trainable(model, vlm.family, cfg)
    float32_trainable(model)
    counts = trainable_counts(model)
    if precision["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    trainset = TrainSet(train_items, train_pools, cfg.train_frames, cfg.seed, context=cfg.context_frames)
    strategy = "steps" if cfg.eval_steps else "epoch"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type=cfg.scheduler, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, eval_strategy=strategy, save_strategy=strategy, eval_steps=cfg.eval_steps,
        save_steps=cfg.eval_steps, logging_steps=max(1, min(20, (cfg.eval_steps or 50) // 2)),
        load_best_model_at_end=True, metric_for_best_model="eval_accuracy", greater_is_better=True,
        save_total_limit=cfg.save_total_limit, bf16=precision["bf16"], fp16=precision["fp16"],
        optim=precision["optim"], seed=cfg.seed, data_seed=cfg.seed,
        report_to=["tensorboard"], remove_unused_columns=False,
        dataloader_num_workers=cfg.dataloader_workers, disable_tqdm=True,
        ddp_find_unused_parameters=False, use_cpu=not cuda)

    class EpochJitter(TrainerCallback):
        def on_epoch_begin(self, a, state, control, **kw):
            trainset.epoch = int(state.epoch or 0)

    trainer = _make_trainer_class()(model=model, args=args, train_dataset=trainset, eval_dataset=val,
                                    data_collator=Collator(vlm, cfg),
                                    rb_vlm=vlm, rb_val=val, rb_cfg=cfg, callbacks=[EpochJitter(), *(callbacks or [])])
    resume = cfg.resume_from
    if resume == "last":
        ckpts = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        resume = str(ckpts[-1]) if ckpts else None
    trainer.train(resume_from_checkpoint=resume)
    history = epoch_history(trainer.state.log_history)
    best = trainer.state.best_metric
    adapter = out / "adapter"
    trainer.save_model(str(adapter))  # the best model (load_best_model_at_end); rank 0 writes
    if rank == 0:
        vlm.processor.save_pretrained(str(adapter))
        write_json(asdict(cfg) | {"base_model_path": vlm.path, "family": vlm.family}, adapter / "roadbuddy_train.json")
    metrics = {"val_accuracy_before": round(acc_before, 4), "val_accuracy_best": round(float(best or 0), 4),
               "chance": round(chance, 4), "adapter_path": str(adapter), "best_checkpoint": trainer.state.best_model_checkpoint,
               "n_train": len(train_items), "n_val": len(val_items), "steps": trainer.state.global_step,
               "world_size": int(os.environ.get("WORLD_SIZE", "1")),
               "train_runtime_s": round(next((h["train_runtime"] for h in trainer.state.log_history
                                              if "train_runtime" in h), 0), 1),
               "val_frames": val_frames, "knowledge": knowledge,
               "trainable": counts, "precision": precision, "history": history, "config": asdict(cfg),
               "model": vlm.describe(), "machine": hardware.describe()}
    if rank == 0:
        write_json(metrics, out / "metrics.json")
    return metrics


def training_precision(cfg: TrainConfig, capability, cuda: bool) -> dict:
    """What ``auto`` became on this machine: bf16 / fp16 mixed precision, optimizer, gradient checkpointing."""
    ckpt = cfg.gradient_checkpointing
    ckpt = cfg.quantization != "none" if ckpt in ("auto", None) else bool(ckpt)
    return {**hardware.train_precision(cfg.bf16, cfg.fp16, capability), "quantization": cfg.quantization,
            "dtype": hardware.resolve_dtype(cfg.dtype, capability), "gradient_checkpointing": ckpt,
            "optim": hardware.resolve_optim(cfg.optim, cfg.quantization, cuda)}


def float32_trainable(model) -> None:
    """Trained weights in float32 (a 16-bit base's ``modules_to_save`` copies are 16-bit): fp16 mixed
    precision cannot unscale 16-bit gradients, and optimizer states need the range."""
    import torch

    for p in model.parameters():
        if p.requires_grad and p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.float()


def epoch_history(log_history: list[dict]) -> list[dict]:
    """Per evaluation: step, epoch, mean training loss since the previous one, validation accuracy."""
    rows, losses = [], []
    for h in log_history:
        if "loss" in h:
            losses.append(h["loss"])
        if "eval_accuracy" in h:
            rows.append({"step": h.get("step"), "epoch": round(float(h.get("epoch") or 0), 3),
                         "train_loss": round(float(np.mean(losses)), 4) if losses else None,
                         "val_accuracy": round(float(h["eval_accuracy"]), 4)})
            losses = []
    return rows


def export_merged(adapter_path, out_dir) -> Path:
    """``merge_and_unload`` the adapter into its base model; saves a standalone checkpoint folder."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    meta = json.loads((Path(adapter_path) / "roadbuddy_train.json").read_text())
    base = AutoModelForImageTextToText.from_pretrained(meta["base_model_path"], dtype="float32")
    merged = PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(out)
    AutoProcessor.from_pretrained(adapter_path).save_pretrained(out)
    return out


def target_table(cfg: TrainConfig) -> "pd.DataFrame":
    """Candidate modules of ``cfg.model`` per part, and which ones ``cfg`` trains (LoRA or fully)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from ..models.config import FAMILIES
    from ..models.tiny import resolve_model_id

    # the module tree only: built on the meta device, no weights read (an 8B model stays on disk)
    config = AutoConfig.from_pretrained(resolve_model_id(cfg.model))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    family = FAMILIES[config.model_type]
    df = candidate_modules(model)
    rx = re.compile(lora_target_regex(family, cfg.trainable, cfg.target_regex))
    full = set(projector_modules(model, family) * ("projector" in cfg.trainable)) | ({"lm_head"} if "lm_head" in cfg.trainable else set())
    whole = "full" in cfg.trainable
    df["trained"] = ["full" if (whole and (part != "vision" or "vision" in cfg.trainable))
                     or any(f".{p}." in f".{m}." for p in full) else
                     "lora" if not whole and rx.fullmatch(m) else "" for m, part in zip(df["module"], df["part"])]
    return df.groupby(["part", "suffix", "trained"], as_index=False).size()


def plot_history(metrics: dict):
    """Training loss and validation accuracy per evaluation, with chance and the starting accuracy."""
    import matplotlib.pyplot as plt

    h = metrics["history"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    steps = [r["step"] for r in h]
    a.plot(steps, [r["train_loss"] for r in h], "o-")
    a.set(xlabel="step", ylabel="training loss", title="loss (mean since previous evaluation)")
    b.plot([0] + steps, [metrics["val_accuracy_before"]] + [r["val_accuracy"] for r in h], "o-", label="validation")
    b.axhline(metrics["chance"], color="grey", ls="--", label="chance")
    vf = metrics.get("val_frames") or {}
    frames = f"{vf['k']} frames chosen by {vf['selector']}" if vf.get("frame_mode") == "select" else "uniform frames"
    b.set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title=f"validation accuracy (likelihood scorer, {frames})")
    b.legend()
    fig.tight_layout()
    return fig

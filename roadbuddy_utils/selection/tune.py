"""Contrastive fine-tuning of the image-text embedding model on ``support_frames`` (the peers' recipe).

    path, report = finetune_embedding(train_items, SelectorConfig(model="google/siglip-base-patch16-224"),
                                      "outputs/02_frames/embedding_tuned", cache=FrameCache("frame_cache"))
    # path is a checkpoint like any other: selector_model of the embedding scorer (03, 06), or its features

Per training question, its clip's dense candidates (the ones 02 and 03 score, same cache): those
within ``window_s`` of a support time are positives, the clip's other candidates negatives. The
loss is the multi-positive InfoNCE of the question's text embedding against those candidates'
image embeddings (cosine / ``temperature``): the model learns which moment of *this* clip the
question is about, not which clip it is. LoRA (peft) on the attention projections of both towers
(``trainable="lora"``, what fits a T4 for CLIP-L / SigLIP-base) or every weight (``"full"``).
Held-out training videos measure hit@4 / MRR (with 02's picker) before training and every
``eval_steps``; the best state is kept, merged into the weights and saved with the processor
(``save_pretrained``), with ``tune_report.json`` (curve, before / best, seconds) beside it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..data.questions import Item
from ..video.frames import FrameCache, VideoReadError
from .measure import Row, evaluate_rows, split_videos
from .selector import EmbeddingModel, SelectorConfig, decode_candidates, near_support, question_text

LORA_TARGETS = r".*encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)$"  # SigLIP and CLIP, both towers


def clip_candidates(item: Item, cfg: SelectorConfig, cache: FrameCache | None):
    """(frames, times, n_total, fps) of the clip's dense candidates: the frames 03's selector scores."""
    s = decode_candidates(item.video_path, cfg, cache)
    return s.frames, np.asarray(s.timestamps, float), s.info.n_frames, s.info.fps


def heldout_metrics(emb: EmbeddingModel, clips: list[tuple], cfg: SelectorConfig) -> dict:
    """hit@4 / hit@8 / AUC / MRR of the model's cosine scores on held-out clips (02's measures)."""
    import torch


    rows = []
    with torch.inference_mode():
        for it, frames, times, n_total, fps in clips:
            feats = emb.image_tensor(frames).cpu().numpy()
            text = emb.text_tensor([question_text(it, cfg.with_choices)])[0].cpu().numpy()
            rows.append(Row(it, times, {"embedding": feats @ text}, near_support(times, it.support_frames, cfg.window_s),
                            n_total, fps))
    return evaluate_rows(rows, lambda r: r.feats["embedding"], cfg)


def finetune_embedding(train_items: Sequence[Item], cfg: SelectorConfig, output_dir, cache: FrameCache | None = None,
                       steps: int = 300, lr: float = 5e-4, batch_size: int = 8, max_negatives: int = 15,
                       trainable: str = "lora", lora_r: int = 16, temperature: float = 0.05, eval_steps: int = 50,
                       holdout_fraction: float = 0.2, seed: int = 0, progress: bool = True,
                       log: Callable = print) -> tuple[Path, dict]:
    """Fine-tune ``cfg.model`` contrastively on the training questions' support_frames; returns the
    saved checkpoint folder and the report (also in ``{output_dir}/tune_report.json``)."""
    import torch
    from tqdm.auto import tqdm

    if trainable not in ("lora", "full"):
        raise ValueError(f"embedding_tune_trainable must be 'lora' or 'full', got {trainable!r}")
    if steps < 1 or batch_size < 1 or eval_steps < 1:
        raise ValueError(f"embedding tuning needs steps, batch_size and eval_steps >= 1, got {steps}, {batch_size}, "
                         f"{eval_steps}")
    with_support = [it for it in train_items if it.support_frames]
    if not with_support:
        src = train_items[0].source_file if train_items else "the data"
        raise ValueError(f"{src}: contrastive tuning trains on support_frames, and none of the {len(train_items)} "
                         "training questions has any (a test split?); tune on train.json")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    emb = EmbeddingModel(cfg.model, cfg.batch_size)
    clips, failed = [], {}
    for it in tqdm(with_support, desc="tuning candidates", disable=not progress, mininterval=5):
        try:
            frames, times, n_total, fps = clip_candidates(it, cfg, cache)
        except (VideoReadError, ValueError) as e:
            failed[it.id] = str(e)
            continue
        if near_support(times, it.support_frames, cfg.window_s).any():
            clips.append((it, frames, times, n_total, fps))
    if failed:
        log(f"{len(failed)} training question(s) without candidates left out of tuning")
    inner, held = split_videos(clips, holdout_fraction, seed, video=lambda c: c[0].video_rel)
    if not inner or not held:
        raise ValueError(f"contrastive tuning needs training and held-out clips with a candidate near a support time; "
                         f"got {len(inner)} and {len(held)} (too few training videos?)")
    model = emb.model
    if trainable == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                                                 target_modules=LORA_TARGETS))
        emb.model = model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                              * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    model.eval()  # dropout off (SigLIP / CLIP have none to speak of); gradients still flow
    before = heldout_metrics(emb, held, cfg)
    curve = [{"step": 0, "loss": None} | before]
    best, best_key = {k: v.detach().clone() for k, v in model.state_dict().items()}, (before["hit_at_4"] or 0,
                                                                                        before["mrr"] or 0)
    best_step, losses = 0, []
    bar = tqdm(total=steps, desc="tuning", disable=not progress, mininterval=5)
    for step in range(1, steps + 1):
        batch = [inner[k] for k in rng.choice(len(inner), min(batch_size, len(inner)), replace=False)]
        images, owners, labels = [], [], []
        for j, (it, frames, times, _, _) in enumerate(batch):
            near = near_support(times, it.support_frames, cfg.window_s)
            pos, neg = np.flatnonzero(near), np.flatnonzero(~near)
            keep = np.concatenate([pos[:4], rng.permutation(neg)[:max_negatives]])
            images += list(frames[keep])
            owners += [j] * len(keep)
            labels += list(near[keep])
        img = emb.image_tensor(images)
        txt = emb.text_tensor([question_text(it, cfg.with_choices) for it, *_ in batch])
        owners_t, labels_t = torch.tensor(owners), torch.tensor(labels)
        logits = (img * txt[owners_t]).sum(-1) / temperature
        loss = 0.0
        for j in range(len(batch)):
            mine = owners_t == j
            lj = logits[mine]
            loss = loss + torch.logsumexp(lj, 0) - torch.logsumexp(lj[labels_t[mine]], 0)
        loss = loss / len(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.update(1)
        if step % eval_steps == 0 or step == steps:
            m = heldout_metrics(emb, held, cfg)
            curve.append({"step": step, "loss": round(float(np.mean(losses[-eval_steps:])), 4)} | m)
            key = (m["hit_at_4"] or 0, m["mrr"] or 0)
            if key > best_key:
                best_key, best_step = key, step
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bar.close()
    model.load_state_dict(best)
    if trainable == "lora":
        model = model.merge_and_unload()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    emb.processor.save_pretrained(str(out))
    report = {"base_model": cfg.model, "trainable": trainable, "lora_r": lora_r if trainable == "lora" else None,
              "steps": steps, "lr": lr, "batch_size": batch_size, "max_negatives": max_negatives,
              "temperature": temperature, "window_s": cfg.window_s, "candidate_fps": cfg.candidate_fps,
              "max_side": cfg.max_side, "n_train_questions": len(inner), "n_heldout": len(held),
              "n_failed": len(failed), "before": before, "best": next(c for c in curve if c["step"] == best_step),
              "best_step": best_step, "curve": curve, "seconds": round(time.perf_counter() - t0, 1), "path": str(out)}
    (out / "tune_report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    log(f"embedding model tuned: held-out hit@4 {before['hit_at_4']} -> {report['best']['hit_at_4']} "
        f"(step {best_step}); saved to {out}")
    return out, report

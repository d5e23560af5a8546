"""The vLLM engine's memory plan: what each GPU of a tensor-parallel engine holds, and the KV cache left over.

    python -m roadbuddy_utils plan --model tests/fixtures/configs/Qwen2.5-VL-7B-Instruct --gpus 15GiB,15GiB --backend vllm
    engine_plan("tests/fixtures/configs/Qwen2.5-VL-7B-Instruct", "15GiB").suggestion   # 4-bit, or TP 2

``plan.make_plan`` plans the HF path (``from_pretrained``, ``device_map``); vLLM manages memory its own way
(read from vLLM 0.32's source: ``v1/worker/gpu_worker.determine_available_memory``, ``v1/worker/utils``,
``gpu_model_runner.profile_run``, ``multimodal/encoder_budget``, ``v1/core/kv_cache_utils``). Per GPU (rank):

* **budget** = ``gpu_memory_utilization`` x the GPU's total memory. vLLM refuses to start when less than that
  is free ("Free memory on device ... is less than desired GPU memory utilization"); checked where the free
  memory is known (``gpus="auto"`` or a ``hardware.Machine``), a size list is taken as an empty GPU.
* inside it, the rank's **weights**: the meta model's tensors (``plan.meta_model`` / ``plan.tensor_bytes``:
  16-bit, or bitsandbytes 4-bit counted as the HF plan counts it, vision tower / projector / ``lm_head`` kept
  16-bit) split as vLLM's tensor-parallel layers split them. Assumed from vLLM's model code: the language model's
  embeddings, attention, MLP and ``lm_head`` split by TP, k/v projections holding ``max(1, kv_heads // TP)``
  heads per rank (replicated when TP exceeds the KV heads); Qwen2.5-VL / Qwen3-VL's vision blocks and mergers
  split too (``Qwen2_5_VisionAttention``, ``mm_encoder_tp_mode`` "weights"); InternVL-hf's vision MLP split but
  its vision attention and projector plain ``nn.Linear`` (replicated); every 1-D tensor (norms, biases), patch
  convolutions and position tables replicated (column-parallel biases really split: a few MB too many).
* the **profiling peak** of activations (vLLM measures it with a dummy run before sizing the cache): the larger of
  the vision encoder on its encoder budget (max(``max_num_batched_tokens``, the processor's largest image)
  visual tokens of dummy images, with the outputs kept) and the language model on ``max_num_batched_tokens``
  tokens plus those kept encoder outputs and the sampler's float32 logits. Per layer the hidden-size tensors
  (embeddings, hidden, residual) beside the larger phase: q/k/v with the attention output, or the MLP's gate-up
  projection and product (flash-style and memory-efficient attention keep no score matrix).
  ``max_num_batched_tokens`` defaults as vLLM's offline ``LLM`` sets it: 8192 (16384 on a GPU of >= 70 GiB),
  4096 on the CPU, at most ``max_num_seqs x max_model_len``.
* a **non-torch allowance**: ``NON_TORCH_GIB`` (NCCL buffers, cuBLAS workspace, allocator slack the profile sees
  grow outside torch) and ``CUDA_GRAPH_GIB`` unless ``enforce_eager`` (vLLM >= 0.21 profiles the CUDA graphs'
  memory and takes it out of the budget).
* the rest is the **KV cache pool**: bytes per token per rank = 2 (K and V) x layers x ``max(1, kv_heads // TP)``
  x head_dim x element size, in blocks of 16 tokens.

``fits`` = the weights and activations leave a pool ("No available memory for the cache blocks" otherwise), the
pool holds one sequence of ``max_model_len`` ("To serve at least one request with the model's max seq len (L),
(X GiB KV cache is needed, which is larger than the available KV cache memory (Y GiB)" otherwise), and this
question's prompt (visual + text tokens, as ``plan`` counts them) is within ``max_model_len``. TP must divide the
attention heads (language model, and the vision tower where vLLM splits it) and pair with the KV heads.

On the CPU (``gpus="cpu"``) vLLM reserves ``gpu_memory_utilization`` x RAM for its worker and the KV cache is
that less the worker's resident memory (weights, ``CPU_RUNTIME_GIB``, activations); TP 1.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..machine import hardware
from .checkpoint import GIB, Device, PlanInputError, family_of, parse_gpus, read_checkpoint
from .plan import (STEP_TEXT_TOKENS, TEXT_TOKENS, _lm_dims, _quiet, _vision_dims, check_quantization, meta_model,
                   resolve_dtype, tensor_bytes, visual_tokens)

NON_TORCH_GIB = 0.5  # per GPU: NCCL buffers and custom all-reduce (TP > 1), cuBLAS workspace; vLLM logs ~0.2-0.6 GiB
CUDA_GRAPH_GIB = 0.5  # per GPU: captured CUDA graphs (max_num_seqs-sized batches); 0 with enforce_eager
CPU_RUNTIME_GIB = 1.0  # the CPU worker's own resident memory before the cache (python, torch, vLLM): an assumption
BLOCK_TOKENS = 16  # vLLM's KV cache block
MAX_MODEL_LEN_CAP = 8192  # max_model_len None: the model's own limit, at most this (EngineConfig's default)
SAMPLER_COPIES = 3  # float32 logits, log-softmax and probabilities of max_num_seqs rows in the dummy sampler run
BIG_GPU_GIB = 70  # vLLM's offline default max_num_batched_tokens: 16384 from here (H100 / H200), else 8192


@dataclass
class EnginePlan:
    model: str
    family: str
    model_type: str
    dtype: str
    quantization: str
    n_params: int
    devices: list  # what each rank runs on ("15 GiB", "Tesla T4", "cpu")
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    enforce_eager: bool
    budget_gib: float  # per rank (the smallest one's)
    weights_gib: float  # per rank
    weights_total_gib: float  # the whole model, as the HF plan counts it
    activation_gib: float  # profiling peak per rank
    activations: dict  # GiB: language model, vision encoder, kept encoder outputs, sampler
    overhead_gib: float  # non-torch + CUDA graphs (GPU) or the worker's runtime (CPU)
    kv_pool_bytes: int  # per rank (the smallest pool: vLLM sizes every rank's cache alike)
    kv_pool_gib: float
    kv_bytes_per_token: int  # per rank
    kv_tokens: int  # tokens the pool holds (whole blocks)
    max_model_len_fits: int  # the longest max_model_len the pool could serve
    tokens: dict  # this question's prompt, as plan counts it
    prompt_tokens: int  # visual + text + the one token scored
    prompts_in_pool: int  # this question's prompts the pool holds at once
    prompts_at_once: int  # ... and that the scheduler runs together (at most max_num_seqs)
    fits: bool
    reasons: list  # why not, each with the gist of vLLM's own message
    suggestion: str
    valid_tensor_parallel_sizes: list
    per_device: list = field(default_factory=list)  # [{device, total_gib, budget_gib, kv_pool_gib}]
    notes: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))

    def report(self) -> str:
        """A readable table: per GPU what vLLM reserves, the KV cache left, the verdict."""
        cpu = self.devices == ["cpu"]
        where = "the CPU" if cpu else f"{self.tensor_parallel_size} GPU{'s' if self.tensor_parallel_size > 1 else ''} " \
                                      f"({', '.join(self.devices)})"
        per = "" if cpu else " per GPU"
        a = self.activations
        size = f"{self.n_params / 1e9:.3f} B" if self.n_params >= 1e8 else f"{self.n_params / 1e6:.2f} M"
        rows = [("model", f"{self.model} ({self.model_type}, {size} parameters) through vLLM"),
                ("engine", f"tensor_parallel_size {self.tensor_parallel_size} on {where}, {self.dtype}, quantization "
                           f"{self.quantization}, max_model_len {self.max_model_len}, max_num_seqs {self.max_num_seqs}, "
                           f"max_num_batched_tokens {self.max_num_batched_tokens}, "
                           f"CUDA graphs {'off' if self.enforce_eager or cpu else 'on'}"),
                ("budget", f"{self.budget_gib:.2f} GiB{per} (gpu_memory_utilization {self.gpu_memory_utilization:g} x "
                           f"{min(d['total_gib'] for d in self.per_device):.2f} GiB {'RAM' if cpu else ''})".replace(" )", ")")),
                ("weights", f"{self.weights_gib:.2f} GiB{per} ({self.weights_total_gib:.2f} GiB in all)"),
                ("activations", f"{self.activation_gib:.2f} GiB profiling peak{per} (vision encoder {a['vision']:.2f}, "
                                f"language model {a['lm']:.2f} + kept encoder outputs {a['encoder_outputs']:.2f} + "
                                f"sampler {a['sampler']:.2f})"),
                ("overhead", f"{self.overhead_gib:.2f} GiB{per} " + ("(the worker's runtime)" if cpu else
                             f"(non-torch {NON_TORCH_GIB:g}" + ("" if self.enforce_eager else
                                                                f", CUDA graphs {CUDA_GRAPH_GIB:g}") + ")")),
                ("KV cache", f"{self.kv_pool_gib:.2f} GiB{per} = {self.kv_tokens:,} tokens "
                             f"({self.kv_bytes_per_token / 1024:.1f} KiB per token{per}); longest max_model_len it "
                             f"serves {self.max_model_len_fits:,}"),
                ("prompts", f"{self.prompt_tokens:,} tokens per question ({self.tokens.get('visual')} visual + "
                            f"{self.tokens.get('text')} text + 1): {self.prompts_in_pool} fit the pool, "
                            f"{self.prompts_at_once} run at once (max_num_seqs {self.max_num_seqs})")]
        if len(self.per_device) > 1 and len({d["total_gib"] for d in self.per_device}) > 1:
            rows += [(d["device"], f"{d['budget_gib']:.2f} GiB budget, KV pool {d['kv_pool_gib']:.2f} GiB")
                     for d in self.per_device]
        rows.append(("fits", "yes" if self.fits else "NO"))
        rows += [("why not", r) for r in self.reasons]
        if self.suggestion:  # the suggestion repeats the reasons (it is an error message on its own): the change only
            head = "; ".join(self.reasons) + ". "
            rows.append(("change", self.suggestion[len(head):] if self.suggestion.startswith(head) else self.suggestion))
        rows += [("note", n) for n in self.notes]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


# ---------------------------------------------------------------------------------------------- the pieces
def max_positions(config) -> int:
    """The language model's own position limit (``max_position_embeddings``)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text, "max_position_embeddings", None) or MAX_MODEL_LEN_CAP)


def default_max_model_len(config) -> int:
    """``max_model_len`` None: the model's own limit, at most ``MAX_MODEL_LEN_CAP``."""
    return min(MAX_MODEL_LEN_CAP, max_positions(config))


def _splits_vision_attention(family: str) -> bool:
    return family in ("qwen", "qwen3")  # InternVL-hf (vLLM's interns1_vit): plain nn.Linear q/k/v


def valid_tp_sizes(family: str, config, limit: int = 64) -> list[int]:
    """Tensor-parallel sizes vLLM accepts: they divide the language model's attention heads, pair with its KV
    heads (divide them or are a multiple of them) and divide the vision tower's heads where vLLM splits it."""
    d = _lm_dims(config)
    heads_v = _vision_dims(family, config)[3]
    return [t for t in range(1, limit + 1) if d["heads"] % t == 0 and (d["kv"] % t == 0 or t % d["kv"] == 0)
            and (not _splits_vision_attention(family) or heads_v % t == 0)]


def _rank_share(name: str, shape: tuple, family: str, tp: int, kv: int) -> float:
    """The share of one tensor each rank holds (1 = replicated)."""
    if tp == 1 or len(shape) != 2 or "pos_embed" in name or "position_embeddings" in name:
        return 1.0  # norms, biases, scales, convolutions, position tables: replicated
    if "vision_tower" in name or "multi_modal_projector" in name:  # InternVL-hf
        return 1 / tp if ".mlp." in name else 1.0
    if ".visual." in name or name.startswith("visual."):
        return 1 / tp if _splits_vision_attention(family) else 1.0
    if name.endswith(("k_proj.weight", "v_proj.weight")):
        return max(1, kv // tp) / kv  # KV heads replicated once TP exceeds them
    return 1 / tp  # embeddings, q / o, MLP, lm_head


def _max_item_tokens(family: str, config, proc: dict) -> int:
    """Visual tokens of the processor's largest image (what vLLM's encoder profile feeds)."""
    v = config.vision_config
    if family == "internvl":
        per = proc.get("image_seq_length") or getattr(config, "image_seq_length", None) or 256
        return per * ((proc.get("max_patches") or 12) + 1 if proc.get("crop_to_patches") else 1)
    patch = proc.get("patch_size") or v.patch_size
    merge = proc.get("merge_size") or v.spatial_merge_size
    hi = (proc.get("size") or {}).get("longest_edge") or proc.get("max_pixels") or 28 * 28 * 1280
    return max(1, hi // (patch * merge) ** 2)


def _activations(family: str, config, proc: dict, tp: int, elt: int, batched: int, max_num_seqs: int) -> dict:
    """Bytes of vLLM's profiling peak per rank: vision encoder, language model, kept encoder outputs, sampler."""
    d = _lm_dims(config)
    hv, iv, k, _ = _vision_dims(family, config)
    v = config.vision_config
    tpa = tp if _splits_vision_attention(family) else 1
    enc_tokens = max(batched, _max_item_tokens(family, config, proc))
    if family == "internvl":
        size, patch = _first(v.image_size), _first(v.patch_size)
        per_tok = ((size // patch) ** 2 + 1) / (proc.get("image_seq_length") or 256)  # patches + CLS per 256 tokens
        pixel = 3 * patch * patch
    else:
        per_tok = (proc.get("merge_size") or v.spatial_merge_size) ** 2
        pixel = 3 * v.temporal_patch_size * (proc.get("patch_size") or v.patch_size) ** 2
    patches = enc_tokens * per_tok
    # per block, the larger phase: residual + norm + block output (3 hv) beside q/k/v and the context (4 hv / TP where
    # split), or beside the MLP's up (and gate) projection and product (k iv / TP)
    vision = patches * (3 * hv + max(4 * hv / tpa, k * iv / tp) + pixel) * elt
    outputs = enc_tokens * d["H"] * elt  # the encoder outputs vLLM keeps through the language model's dummy run
    q, kvr = d["heads"] // tp * d["hd"], max(1, d["kv"] // tp) * d["hd"]
    # embeddings, hidden and residual (3 H) beside the larger phase: q/k/v and attention output, or gate-up and product
    lm = batched * (3 * d["H"] + max(2 * q + 2 * kvr, 3 * d["I"] // tp)) * elt
    sampler = max_num_seqs * d["V"] * 4 * SAMPLER_COPIES
    return {"vision": vision + outputs, "lm": lm, "encoder_outputs": outputs, "sampler": sampler,
            "peak": max(vision + outputs, lm + outputs + sampler), "encoder_tokens": enc_tokens}


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


def _targets(gpus):
    """(devices, free bytes per device or None, host RAM (total, available) GiB) from 'auto', 'cpu', a size list, Devices or a
    ``hardware.Machine`` (a detected one: each GPU's total and free memory)."""
    if isinstance(gpus, str) and gpus.strip().lower() == "auto":
        gpus = hardware.detect()
    if isinstance(gpus, hardware.Machine):
        devs = [Device(f"cuda:{i}", int(g.total_gib * GIB), tuple(g.capability), g.name) for i, g in enumerate(gpus.gpus)]
        free = [None if g.free_gib is None else int(g.free_gib * GIB) for g in gpus.gpus]
        return devs, free, ((gpus.ram_total_gib, gpus.ram_available_gib) if gpus.ram_total_gib else hardware.ram_gib())
    devs = parse_gpus(gpus)
    return devs, [None] * len(devs), hardware.ram_gib()


# ---------------------------------------------------------------------------------------------- the plan
def engine_plan(model: str, gpus="auto", dtype: str = "auto", quantization: str = "none", n_frames: int = 8,
                max_pixels: int = 448 * 448, tensor_parallel_size="auto", gpu_memory_utilization="auto",
                max_model_len: int | None = None, max_num_seqs: int = 16, enforce_eager: bool = False,
                max_num_batched_tokens: int | None = None, text_tokens: int = TEXT_TOKENS,
                suggest: bool = True) -> EnginePlan:
    """Plan ``model`` (hub id, folder or ``tiny:<family>``) through vLLM on ``gpus`` (``parse_gpus``' forms, a
    list of ``Device`` or a ``hardware.Machine``). ``tensor_parallel_size`` / ``gpu_memory_utilization`` "auto"
    follow ``hardware.engine_defaults``: every GPU given, 0.90 (the CPU: its RAM share)."""
    devices, free, (ram_gib, ram_free) = _targets(gpus)
    if quantization not in ("none", "4bit"):
        raise PlanInputError(f"quantization {quantization!r} through vLLM: the engine quantizes in flight to 4-bit "
                             "only (bitsandbytes); choose none or 4bit")
    if not isinstance(n_frames, int) or n_frames < 1 or max_num_seqs < 1:
        raise PlanInputError(f"n_frames and max_num_seqs must be positive integers (got {n_frames}, {max_num_seqs})")
    ck = read_checkpoint(model)
    family = family_of(ck.config)
    valid = valid_tp_sizes(family, ck.config)
    defaults = hardware.engine_defaults(len(devices), ram_gib, ram_free)
    tp = defaults["tensor_parallel_size"] if tensor_parallel_size in (None, "auto") else int(tensor_parallel_size)
    util = defaults["gpu_memory_utilization"] if gpu_memory_utilization in (None, "auto") \
        else float(gpu_memory_utilization)
    if not 0 < util <= 1:
        raise PlanInputError(f"gpu_memory_utilization {util}: a share in (0, 1]")
    if not devices and tp != 1:
        raise PlanInputError(f"tensor_parallel_size {tp} on the CPU: the engine runs one CPU worker (1)")
    if tp not in valid:
        d = _lm_dims(ck.config)
        vis = f", its vision tower {_vision_dims(family, ck.config)[3]}" if _splits_vision_attention(family) else ""
        raise PlanInputError(f"tensor_parallel_size {tp}: {Path(model).name} has {d['heads']} attention heads "
                             f"({d['kv']} KV heads{vis}); vLLM splits them evenly: choose one of {valid}")
    if devices and tp > len(devices):
        raise PlanInputError(f"tensor_parallel_size {tp} needs {tp} GPUs; {len(devices)} given ({GPUS_HINT})")
    ranks, free = devices[:tp], free[:tp]
    build, label = resolve_dtype(dtype, ranks)
    check_quantization(quantization, ranks, ck.config, model)
    with _quiet():
        meta, quantizer = meta_model(ck, build, quantization)
        sizes = tensor_bytes(meta, quantizer)
    d = _lm_dims(ck.config)
    shapes = {n: tuple(t.shape) for n, t in list(meta.named_parameters()) + list(meta.named_buffers())}
    weights = sum(b * _rank_share(n, shapes[n], family, tp, d["kv"]) for n, b in sizes.items())
    elt = 4 if build == "float32" else 2
    mml = int(max_model_len or default_max_model_len(ck.config))
    big = bool(ranks) and min(r.gib for r in ranks) >= BIG_GPU_GIB
    batched = int(max_num_batched_tokens or min(max_num_seqs * mml, (16384 if big else 8192) if ranks else 4096))
    act = _activations(family, ck.config, ck.processor, tp, elt, batched, max_num_seqs)
    overhead = (NON_TORCH_GIB + (0 if enforce_eager else CUDA_GRAPH_GIB)) * GIB if ranks else CPU_RUNTIME_GIB * GIB
    per_token = 2 * d["N"] * max(1, d["kv"] // tp) * d["hd"] * elt
    totals = [r.total_bytes for r in ranks] or [int(ram_gib * GIB)]
    budgets = [math.ceil(t * util) for t in totals]
    pools = [b - weights - act["peak"] - overhead for b in budgets]
    pool = int(min(pools))
    blocks = max(0, pool) // (per_token * BLOCK_TOKENS)
    kv_tokens = blocks * BLOCK_TOKENS
    tok = visual_tokens(family, ck.config, ck.processor, n_frames, max_pixels)
    tok["text"] = text_tokens + STEP_TEXT_TOKENS[family] * tok["vision_seqs"]
    tok["total"] = tok["visual"] + tok["text"]
    prompt = tok["total"] + 1
    in_pool = kv_tokens // (math.ceil(prompt / BLOCK_TOKENS) * BLOCK_TOKENS)
    need = math.ceil(mml / BLOCK_TOKENS) * BLOCK_TOKENS * per_token
    where = [r.label or r.name for r in ranks] or ["cpu"]
    reasons = []
    for r, f, b in zip(ranks, free, budgets):
        if f is not None and f < b:
            reasons.append(f"{r.label or r.name}: {f / GIB:.2f} GiB free of {r.gib:.2f} GiB is less than the "
                           f"{b / GIB:.2f} GiB budget (vLLM: \"Free memory on device ... on startup is less than "
                           "desired GPU memory utilization\")")
    if pool <= 0:
        reasons.append(f"weights {weights / GIB:.2f} + activations {act['peak'] / GIB:.2f} + overhead "
                       f"{overhead / GIB:.2f} GiB exceed the {min(budgets) / GIB:.2f} GiB budget (vLLM: \"No available "
                       "memory for the cache blocks\"" + (", or out of memory loading the weights" if ranks and
                                                          weights > min(totals) else "") + ")")
    elif need > pool:
        reasons.append(f"one sequence of max_model_len {mml} needs {need / GIB:.2f} GiB of KV cache, the pool holds "
                       f"{pool / GIB:.2f} GiB (vLLM: \"To serve at least one request with the model's max seq len "
                       f"({mml}) ... larger than the available KV cache memory\"; it estimates {kv_tokens})")
    if prompt > mml:
        reasons.append(f"this question's prompt ({prompt} tokens) is longer than max_model_len {mml}: vLLM rejects "
                       "each such request")
    notes = list(ck.notes) + [f"the encoder profile runs {act['encoder_tokens']} visual tokens of dummy images (the "
                              "processor's largest image or max_num_batched_tokens, whichever is larger)"]
    if len(devices) > tp:
        notes.append(f"{len(devices)} GPUs given, tensor_parallel_size {tp} uses the first {tp}")
    plan = EnginePlan(
        model=model, family=family, model_type=ck.config.model_type, dtype=label, quantization=quantization,
        n_params=sum(p.numel() for p in meta.parameters()), devices=where, tensor_parallel_size=tp,
        gpu_memory_utilization=util, max_model_len=mml, max_num_seqs=max_num_seqs, max_num_batched_tokens=batched,
        enforce_eager=bool(enforce_eager or not ranks), budget_gib=round(min(budgets) / GIB, 3),
        weights_gib=round(weights / GIB, 3), weights_total_gib=round(sum(sizes.values()) / GIB, 3),
        activation_gib=round(act["peak"] / GIB, 3),
        activations={k: round(act[k] / GIB, 3) for k in ("lm", "vision", "encoder_outputs", "sampler")},
        overhead_gib=round(overhead / GIB, 3), kv_pool_bytes=pool, kv_pool_gib=round(pool / GIB, 3),
        kv_bytes_per_token=per_token, kv_tokens=kv_tokens,
        max_model_len_fits=min(kv_tokens, max_positions(ck.config)), tokens=tok,
        prompt_tokens=prompt, prompts_in_pool=in_pool, prompts_at_once=min(in_pool, max_num_seqs),
        fits=not reasons, reasons=reasons, suggestion="", valid_tensor_parallel_sizes=valid,
        per_device=[{"device": w, "total_gib": round(t / GIB, 3), "budget_gib": round(b / GIB, 3),
                     "kv_pool_gib": round(p / GIB, 3)} for w, t, b, p in zip(where, totals, budgets, pools)],
        notes=notes, settings={"n_frames": n_frames, "max_pixels": max_pixels, "text_tokens": text_tokens,
                               "gpus": [r.label or r.name for r in devices] or "cpu"})
    if not plan.fits and suggest:
        plan.suggestion = _suggest(plan, ranks, dict(
            model=model, dtype=dtype, quantization=quantization, n_frames=n_frames, max_pixels=max_pixels,
            tensor_parallel_size=tp, gpu_memory_utilization=util, max_model_len=mml, max_num_seqs=max_num_seqs,
            enforce_eager=enforce_eager, max_num_batched_tokens=max_num_batched_tokens, text_tokens=text_tokens))
    return plan


GPUS_HINT = "give as many: --gpus 15GiB,15GiB, or lower --tensor-parallel-size"


# ---------------------------------------------------------------------------------------------- advice
def _suggest(plan: EnginePlan, ranks: list[Device], kw: dict) -> str:
    """One sentence: the first changes (more TP, 4-bit, a shorter max_model_len, a higher utilization) that fit."""
    def tryit(label, gpus=None, **change):
        try:
            p = engine_plan(gpus=ranks if gpus is None else gpus, suggest=False, **(kw | change))
        except PlanInputError:
            return None
        per = " per GPU" if p.devices != ["cpu"] else ""
        return (f"{label} (≈ {p.weights_gib:.1f} GiB weights{per}, KV cache {p.kv_pool_gib:.1f} GiB = "
                f"{p.kv_tokens:,} tokens, {p.prompts_in_pool} prompts)") if p.fits else None

    options = []
    if ranks:
        for t in (t for t in plan.valid_tensor_parallel_sizes if plan.tensor_parallel_size < t <= 8):
            more = [Device(f"cuda:{i}", ranks[0].total_bytes, ranks[0].capability, ranks[0].label) for i in range(t)]
            options.append(tryit(f"tensor_parallel_size: {t} over {_count(t)} {ranks[0].label or ranks[0].name} GPUs",
                                 gpus=more, tensor_parallel_size=t))
            if options[-1]:
                break
    if kw["quantization"] == "none":
        options.append(tryit("quantization: 4bit (bitsandbytes)", quantization="4bit"))
    shorter = min(plan.kv_tokens, MAX_MODEL_LEN_CAP) // 256 * 256
    if plan.kv_pool_bytes > 0 and plan.prompt_tokens <= shorter < plan.max_model_len:
        options.append(tryit(f"max_model_len: {shorter}", max_model_len=shorter))
    if kw["gpu_memory_utilization"] < 0.95:
        options.append(tryit("gpu_memory_utilization: 0.95", gpu_memory_utilization=0.95))
    options = [o for o in options if o]
    head = "; ".join(plan.reasons)
    if not options:
        return head + ". No single change tried (more GPUs, 4-bit, a shorter max_model_len, utilization 0.95) fits: " \
                      "use a smaller checkpoint (a 2-4 B model), a larger GPU or backend: hf"
    return head + ". Set " + ", or ".join(options[:3])


def _count(n: int) -> str:
    return {2: "two", 3: "three", 4: "four", 8: "eight"}.get(n, str(n))


# ---------------------------------------------------------------------------------------------- what fits where
TABLE = {"T4 (15 GiB)": ("15GiB", 1), "2 × T4, TP 2": ("15GiB,15GiB", 2), "24 GB": ("24GB", 1),
         "80 GB": ("80GiB", 1)}


def engine_table(models: list[str], n_frames: int = 8, quantizations=("none", "4bit")) -> str:
    """Markdown: model x GPUs x precision through vLLM, each cell "yes 3.1 GiB / 57k" (fits, KV pool per GPU and
    the tokens it holds) or "no"."""
    rows = ["| model | precision | " + " | ".join(TABLE) + " |", "|" + "---|" * (len(TABLE) + 2)]
    for m in models:
        for q in quantizations:
            cells = []
            for spec, tp in TABLE.values():
                p = engine_plan(m, spec, quantization=q, n_frames=n_frames, tensor_parallel_size=tp, suggest=False)
                cells.append(f"yes {p.kv_pool_gib:.1f} GiB / {p.kv_tokens // 1000}k" if p.fits else
                             f"no ({'weights' if p.kv_pool_bytes <= 0 else 'KV'})")
            name = Path(m).name if Path(m).is_dir() else m
            rows.append(f"| {name} | {'16-bit' if q == 'none' else q} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def add_arguments(p):
    """The engine's options of the ``plan`` subcommand (beside ``plan.add_arguments``)."""
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                   help="hf: transformers (from_pretrained, device_map); vllm: the engine's reservation and KV cache")
    p.add_argument("--tensor-parallel-size", default="auto", help="vllm: GPUs the model is split over (auto: all given)")
    p.add_argument("--gpu-memory-utilization", default="auto",
                   help="vllm: share of each GPU's memory the engine reserves (auto: 0.90; the CPU: its RAM share)")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm: longest sequence (default: model, <= 8192)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="vllm: sequences scheduled together (default 16)")
    p.add_argument("--max-num-batched-tokens", type=int, default=None, help="vllm: tokens per step (default: vLLM's)")
    p.add_argument("--enforce-eager", action="store_true", help="vllm: no CUDA graphs")


def cli(args) -> int:
    """``python -m roadbuddy_utils plan --backend vllm``: the engine plan (``--json``: one object; ``--table``: the
    what-fits-where table). Exit 0 whether or not it fits, 2 on bad input."""
    import sys

    from .plan import table_models

    try:
        if args.train:
            raise PlanInputError("--train plans the HF path (training does not run through the engine); drop "
                                 "--backend vllm")
        if args.table:
            print(engine_table(table_models(args.model), n_frames=args.n_frames))
            return 0
        if len(args.model) != 1:
            raise PlanInputError("give one --model (several only with --table)")
        plan = engine_plan(args.model[0], args.gpus, dtype=args.dtype, quantization=args.quantization,
                           n_frames=args.n_frames, max_pixels=args.max_pixels,
                           tensor_parallel_size=args.tensor_parallel_size,
                           gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
                           max_num_seqs=args.max_num_seqs, enforce_eager=args.enforce_eager,
                           max_num_batched_tokens=args.max_num_batched_tokens)
    except (PlanInputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(plan.to_dict(), ensure_ascii=False) if args.json else plan.report())
    return 0

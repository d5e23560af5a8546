"""Memory plan before anything loads: weights, activations, KV cache, where they go, whether it fits.

    python -m roadbuddy_utils plan --model tests/fixtures/configs/Qwen2.5-VL-7B-Instruct --gpus 15GiB,15GiB
    python -m roadbuddy_utils plan --model tiny:internvl --gpus cpu --json

From the config files alone (``checkpoint.read_checkpoint``: no tokenizer, no weights) the model is
built on the meta device (``accelerate.init_empty_weights``, weight init skipped, embeddings tied as
transformers ties them) in the dtype it would load in, and quantized as ``from_pretrained`` does it:
transformers' bitsandbytes quantizer (``replace_with_bnb_linear``) with ``models/vlm.py``'s skip list
(vision tower, projector, ``lm_head`` stay 16-bit). Bytes per tensor are the quantizer's (0.5 per
NF4 weight, 1 per LLM.int8 weight) plus the state bitsandbytes adds (NF4 with double quant: an 8-bit
absmax per 64 weights and an fp32 one per 256 blocks; LLM.int8: an fp32 scale per output row).
``device_map: auto`` over several GPUs is placed with what ``from_pretrained`` calls
(``get_balanced_memory``, the quantizer's 10 % cut, ``infer_auto_device_map``) on ``max_memory`` =
each GPU less the CUDA context and its activations; pass ``plan.max_memory`` to ``from_pretrained``.

Activations are estimates from the token counts: visual tokens from the processor's settings
(InternVL: ``image_seq_length`` per 448 px tile, one per frame; Qwen: frames cut to ``max_pixels``,
rounded to ``patch_size * merge_size``, paired by ``temporal_patch_size``) plus ``text_tokens``; per
layer the hidden-size and MLP tensors of the sequence and one layer's attention scores (an upper
bound where flash / memory-efficient kernels run), the vision tower likewise, the KV cache for the
prompt and ``new_tokens``. ``train=True`` plans LoRA (QLoRA with 4bit): rank-``lora_r`` adapters on
the language model's q/k/v/o/gate/up/down in fp32 with gradients and AdamW state (8 bytes, 2 with
``paged_adamw_8bit``) and the tensors autograd keeps, with or without gradient checkpointing, on one
GPU per process (DDP replicates the model).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .checkpoint import GIB, GPUS_FORM, Checkpoint, Device, PlanInputError, family_of, parse_gpus, read_checkpoint
from .config import VISION_MODULES, bnb_config

CUDA_CONTEXT_GIB = 0.75  # per GPU: CUDA context, cuBLAS workspace, allocator slack (0.5-1 GiB in practice)
SOURCE_FRAME = (1080, 1920)  # RoadBuddy clips are mostly 1920x1080
TEXT_TOKENS = 160  # system + question + choices: 120 measured (Qwen2.5-VL prompt minus video), room for long ones
STEP_TEXT_TOKENS = {"internvl": 7, "qwen": 0, "qwen3": 8}  # per frame / step: "Frame1: <img></img>", "<t seconds>"
NEW_TOKENS = 32  # generated reply (generate scoring); likelihood scoring needs none
TRAIN_KEEP = 8  # logits positions the training loss reads (logits_to_keep)
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"  # = train.LANGUAGE
OPTIMIZER_BYTES = {"adamw": 8, "paged_adamw_8bit": 2}  # optimizer state per trainable parameter
NF4_STATE = 1 / 64 + 4 / (64 * 256)  # bytes per NF4 weight: an 8-bit absmax per 64, an fp32 one per 256 blocks
_META: dict = {}  # (source, dtype, quantization) -> (meta model, quantizer): a second plan of a model is instant


class MemoryPlanError(RuntimeError):
    """The model does not fit the GPUs it is about to load on; ``.plan`` holds the numbers."""

    def __init__(self, plan: "Plan"):
        self.plan = plan
        super().__init__(plan.suggestion)


@dataclass
class Plan:
    model: str
    family: str
    model_type: str
    dtype: str
    quantization: str
    n_params: int
    n_params_vision: int
    weights_bytes: int
    weights_gib: float
    activation_gib: float  # peak transient activations (vision tower or language model, whichever is larger)
    kv_cache_gib: float
    per_device_gib: dict  # device -> planned peak (weights + activations + KV + CUDA context)
    capacity_gib: dict  # device -> memory it has
    fits: bool
    suggestion: str  # what to change when it does not fit (empty when it does)
    tokens: dict = field(default_factory=dict)
    device_map: dict = field(default_factory=dict)  # module -> device (what from_pretrained would do)
    max_memory: dict = field(default_factory=dict)  # pass to from_pretrained with device_map="auto"
    train: dict | None = None
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))

    def report(self) -> str:
        """A readable table: what loads where, and the verdict."""
        rows = [("model", f"{self.model} ({self.model_type}, {self.n_params / 1e9:.3f} B parameters, "
                          f"vision {self.n_params_vision / 1e9:.3f} B)"),
                ("weights", f"{self.weights_gib:.2f} GiB in {self.dtype}, quantization {self.quantization}"),
                ("tokens", ", ".join(f"{k} {v}" for k, v in self.tokens.items())),
                ("activations", f"{self.activation_gib:.2f} GiB peak, KV cache {self.kv_cache_gib:.2f} GiB")]
        if self.train:
            t = self.train
            rows.append(("training", f"{t['trainable_params'] / 1e6:.1f} M LoRA parameters (r {t['lora_r']}): "
                                     f"{t['states_gib']:.2f} GiB weights+grads+{t['optimizer']}; activations "
                                     f"{t['activations_gib']:.2f} GiB ({t['activations_checkpointed_gib']:.2f} with "
                                     f"gradient checkpointing, {'on' if t['gradient_checkpointing'] else 'off'})"))
        for dev, gib in self.per_device_gib.items():
            cap = self.capacity_gib.get(dev)
            rows.append((dev, f"{gib:.2f} GiB planned of {cap:.2f} GiB" if cap else f"{gib:.2f} GiB planned"))
        rows.append(("fits", "yes" if self.fits else "NO"))
        if self.suggestion:
            rows.append(("change", self.suggestion))
        rows += [("note", n) for n in self.notes]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


# ---------------------------------------------------------------------------------------------- the meta model
@contextmanager
def _quiet():
    """accelerate warns for every GPU index this machine lacks; planning for other machines is the point."""
    log = logging.getLogger("accelerate")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def meta_model(ck: Checkpoint, dtype: str, quantization: str):
    """(model on the meta device in ``dtype``, transformers' quantizer or None), cached per checkpoint."""
    key = (ck.source, hash(ck.config.to_json_string()), dtype, quantization)
    if key not in _META:
        import torch
        from accelerate import init_empty_weights
        from transformers import AutoModelForImageTextToText

        try:
            from transformers.initialization import no_init_weights
        except ImportError:  # older transformers
            from transformers.modeling_utils import no_init_weights
        with init_empty_weights(), no_init_weights():
            model = AutoModelForImageTextToText.from_config(ck.config, dtype=getattr(torch, dtype))
        model.tie_weights()  # tied embeddings are one tensor, as after from_pretrained
        quantizer = None
        if quantization != "none":
            from transformers.quantizers import AutoHfQuantizer

            quantizer = AutoHfQuantizer.from_config(bnb_config(quantization, dtype), pre_quantized=False)
            quantizer.preprocess_model(model, device_map=None)
        if len(_META) >= 8:
            _META.pop(next(iter(_META)))
        _META[key] = (model, quantizer)
    return _META[key]


def tensor_bytes(model, quantizer) -> dict[str, float]:
    """Bytes of every parameter and buffer as loaded (quantized weights with their quantization state)."""
    out = {}
    tied = getattr(model, "all_tied_weights_keys", {}) or {}
    mods = dict(model.named_modules())
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if name in tied:
            continue
        if quantizer is not None and quantizer.param_needs_quantization(model, name):
            size = quantizer.quantized_element_size
            mod = mods[name.rsplit(".", 1)[0]]
            extra = t.numel() * NF4_STATE if size < 1 else 4 * mod.out_features  # NF4 absmax / int8 row scales
            out[name] = t.numel() * size + extra
        else:
            out[name] = t.numel() * t.element_size()
    return out


def _device_of(name: str, device_map: dict):
    parts = name.split(".")
    for i in range(len(parts), -1, -1):
        key = ".".join(parts[:i])
        if key in device_map:
            return device_map[key]
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------- tokens
def _smart_resize(h: int, w: int, factor: int, lo: int, hi: int, frames: int = 1, t_bar: int = 1) -> tuple[int, int]:
    """Qwen's resize: sides rounded to multiples of ``factor``, pixels (x ``t_bar`` frames for Qwen3-VL's
    video processor) kept in [lo, hi]."""
    hb, wb = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if t_bar * hb * wb > hi:
        beta = math.sqrt(frames * h * w / hi)
        hb, wb = max(factor, math.floor(h / beta / factor) * factor), max(factor, math.floor(w / beta / factor) * factor)
    elif t_bar * hb * wb < lo:
        beta = math.sqrt(lo / (frames * h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def visual_tokens(family: str, config, proc: dict, n_frames: int, max_pixels: int, frame=SOURCE_FRAME) -> dict:
    """Visual tokens the language model reads and the vision tower's sequences for ``n_frames`` frames."""
    v = config.vision_config
    if family == "internvl":  # frames are images, one tile each
        size = proc.get("size", {}).get("height") or _first(v.image_size)
        patch = _first(v.patch_size)
        per = proc.get("image_seq_length") or getattr(config, "image_seq_length", None) or \
            int((size // patch) ** 2 * config.downsample_ratio ** 2)
        return {"visual": per * n_frames, "vision_seqs": n_frames, "vision_seq_len": (size // patch) ** 2 + 1,
                "tile": size}
    h, w = frame  # the project's resizes before the processor: decoder to ModelConfig.max_side, then fit_pixels
    scale = (int(math.sqrt(max_pixels * 16 / 9)) + 1) / max(h, w)
    if scale < 1:
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    if h * w > max_pixels:
        s = math.sqrt(max_pixels / (h * w))
        h, w = max(1, int(h * s)), max(1, int(w * s))
    vp = {k: x for k, x in proc.items() if k != "video"} | proc.get("video", {})  # Qwen reads frames as a video
    patch = vp.get("patch_size", v.patch_size)
    merge = vp.get("merge_size", v.spatial_merge_size)
    tps = vp.get("temporal_patch_size", v.temporal_patch_size)
    size = vp.get("size") or {}
    lo = size.get("shortest_edge") or vp.get("min_pixels") or 56 * 56
    hi = size.get("longest_edge") or vp.get("max_pixels") or 28 * 28 * 1280
    t_bar = round(n_frames / tps) * tps if family == "qwen3" else 1
    hb, wb = _smart_resize(h, w, patch * merge, lo, hi, n_frames if family == "qwen3" else 1, t_bar)
    steps = math.ceil(n_frames / tps)
    grid = (hb // patch) * (wb // patch)
    return {"visual": steps * grid // merge ** 2, "vision_seqs": steps, "vision_seq_len": grid,
            "grid_thw": [steps, hb // patch, wb // patch]}


def _first(x):
    return x[0] if isinstance(x, (list, tuple)) else x


# ---------------------------------------------------------------------------------------------- activations
def _lm_dims(config) -> dict:
    t = config.get_text_config()
    heads = t.num_attention_heads
    return {"H": t.hidden_size, "I": t.intermediate_size, "N": t.num_hidden_layers, "V": t.vocab_size, "heads": heads,
            "kv": getattr(t, "num_key_value_heads", None) or heads,
            "hd": getattr(t, "head_dim", None) or t.hidden_size // heads}


def _vision_dims(family: str, config) -> tuple[int, int, int, int]:
    v = config.vision_config
    heads = getattr(v, "num_heads", None) or v.num_attention_heads
    return v.hidden_size, v.intermediate_size, 3 if family == "qwen" else 2, heads  # SwiGLU (3 I) / GELU MLP (2 I)


def inference_bytes(family, config, tok: dict, batch: int, elt: int, new_tokens: int = NEW_TOKENS) -> dict:
    """Peak transient activations of one forward (vision tower, language model) and the KV cache."""
    d = _lm_dims(config)
    hv, iv, k, heads_v = _vision_dims(family, config)
    patches = tok["vision_seqs"] * tok["vision_seq_len"]
    seqlen = tok["vision_seq_len"]  # attention runs per frame (InternVL) / per temporal step (Qwen)
    vision = batch * patches * ((4 * hv + k * iv + heads_v * seqlen) * elt + 3 * 16 * 16 * 2 * 4)  # + float32 pixels
    seq = tok["total"]
    # inputs_embeds, residual, norm, q, attn out, o + gate, up, act, product; the scores of one layer as eager /
    # math SDPA materialise them (flash and memory-efficient kernels do not: an upper bound there)
    lm = batch * seq * ((6 * d["H"] + 4 * d["I"]) + d["heads"] * seq) * elt
    logits = batch * d["V"] * (elt + 4)  # last position only (logits_to_keep=1), upcast to float32
    kv = 2 * d["N"] * d["kv"] * d["hd"] * batch * (seq + new_tokens) * elt
    return {"vision": vision, "lm": lm + logits, "kv": kv}


def train_bytes(config, model, tok: dict, batch: int, elt: int, lora_r: int, optimizer: str) -> dict:
    """LoRA adapters (fp32) with gradients and optimizer state, and the activations autograd keeps."""
    if optimizer not in OPTIMIZER_BYTES:
        raise PlanInputError(f"optimizer {optimizer!r}: choose one of {sorted(OPTIMIZER_BYTES)}")
    rx = re.compile(LORA_TARGETS)
    lora = 0
    for name, mod in model.named_modules():
        if rx.match(name) and hasattr(mod, "in_features"):
            lora += lora_r * (mod.in_features + mod.out_features)
    if not lora:
        raise PlanInputError(f"no LoRA targets in {type(model).__name__} (pattern {LORA_TARGETS})")
    d = _lm_dims(config)
    seq = tok["total"]
    # saved per layer per token (frozen base, LoRA on 7 linears): both norm inputs (2H), peft's dropout(x) copy per
    # adapter for lora_A's gradient (q, k, v, o, gate, up: 6H; down: I) with their bool masks, SDPA's q, k, v and
    # output (2H + 2 kv), SiLU's input and the product's two operands (3I)
    kv = d["kv"] * d["hd"]
    layer = batch * seq * ((10 * d["H"] + 2 * kv + 4 * d["I"]) * elt + 6 * d["H"] + d["I"])
    full = d["N"] * layer
    ckpt = d["N"] * batch * seq * d["H"] * elt + layer  # layer inputs kept, one layer recomputed at a time
    logits = batch * TRAIN_KEEP * d["V"] * (elt + 8)  # logits, float32 copy and its gradient
    grads_h = 2 * batch * seq * d["H"] * elt  # hidden-state gradients flowing back
    states = lora * (4 + 4 + OPTIMIZER_BYTES[optimizer])  # fp32 adapter + fp32 grad + optimizer state
    return {"trainable_params": lora, "states": states, "full": full + logits + grads_h,
            "checkpointed": ckpt + logits + grads_h}


# ---------------------------------------------------------------------------------------------- the plan
def resolve_dtype(dtype: str, devices: list[Device]) -> tuple[str, str]:
    """(dtype to build in, label): auto follows ``hardware.resolve_dtype`` by compute capability; GPUs
    given only by size are planned in 16 bit (bfloat16 and float16 take the same memory)."""
    from ..machine import hardware

    if dtype not in ("auto", "bfloat16", "float16", "float32"):
        raise PlanInputError(f"dtype {dtype!r}: choose auto, bfloat16, float16 or float32")
    if dtype != "auto":
        return dtype, dtype
    if not devices:
        return "float32", "float32"
    caps = [d.capability for d in devices]
    if None in caps:
        return "bfloat16", "16-bit"  # bfloat16 from compute capability 8.0, float16 below: same bytes
    name = hardware.resolve_dtype("auto", min(caps)) if hasattr(hardware, "resolve_dtype") else \
        ("bfloat16" if min(caps) >= (8, 0) else "float16")
    return name, name


def check_quantization(quantization: str, devices: list[Device], config, model: str):
    """Stop before any weights when ``quantization`` cannot run: bitsandbytes missing, LLM.int8 below
    compute capability 7.5, or a checkpoint that is already quantized."""
    import importlib.util

    if quantization not in ("none", "8bit", "4bit"):
        raise PlanInputError(f"quantization {quantization!r}: choose none, 8bit or 4bit")
    if quantization == "none":
        return
    already = getattr(config, "quantization_config", None)
    if already:
        method = already.get("quant_method") if isinstance(already, dict) else getattr(already, "quant_method", "?")
        raise PlanInputError(f"{model} is already quantized ({method}); plan it with quantization none")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PlanInputError(f"quantization {quantization} needs bitsandbytes: pip install bitsandbytes==0.50.2 "
                             "(or plan with quantization none)")
    low = [d for d in devices if d.capability is not None and tuple(d.capability) < (7, 5)]
    if quantization == "8bit" and low:
        raise PlanInputError(f"quantization 8bit (LLM.int8) needs compute capability >= 7.5; {low[0].label} is "
                             f"{low[0].capability[0]}.{low[0].capability[1]}: use quantization 4bit")


def make_plan(model: str, gpus="auto", dtype: str = "auto", quantization: str = "none", n_frames: int = 8,
              max_pixels: int = 448 * 448, train: bool = False, batch_size: int = 1, lora_r: int = 32,
              gradient_checkpointing: bool = False, optimizer: str = "adamw", device_map: str | None = "auto",
              text_tokens: int = TEXT_TOKENS, suggest: bool = True) -> Plan:
    """Plan ``model`` (hub id, folder or ``tiny:<family>``) on ``gpus`` (see ``parse_gpus``).
    ``device_map`` "auto" spreads over every GPU given (inference); None keeps the model on the first."""
    devices = parse_gpus(gpus)
    if not isinstance(n_frames, int) or n_frames < 1 or batch_size < 1 or lora_r < 1:
        raise PlanInputError(f"n_frames, batch_size and lora_r must be positive integers "
                             f"(got {n_frames}, {batch_size}, {lora_r})")
    ck = read_checkpoint(model)
    family = family_of(ck.config)
    build, label = resolve_dtype(dtype, devices)
    check_quantization(quantization, devices, ck.config, model)
    with _quiet():
        meta, quantizer = meta_model(ck, build, quantization)
        sizes = tensor_bytes(meta, quantizer)
    kbit_upcast = 0
    if train and quantizer is not None:
        # QLoRA: peft's prepare_model_for_kbit_training casts every 16-bit weight it does not quantize
        # (embeddings, lm_head, the vision tower, norms) to float32 before training
        for n, prm in meta.named_parameters():
            if n in sizes and prm.element_size() == 2 and not quantizer.param_needs_quantization(meta, n):
                kbit_upcast += sizes[n]
                sizes[n] *= 2
    if quantizer is not None and not any(quantizer.param_needs_quantization(meta, n) for n, _ in meta.named_parameters()):
        raise PlanInputError(f"{model}: quantization {quantization} finds no Linear layer to quantize outside the "
                             "skip list (vision tower, projector, lm_head); plan it with quantization none")
    elt = 4 if build == "float32" else 2
    tok = visual_tokens(family, ck.config, ck.processor, n_frames, max_pixels)
    steps = tok["vision_seqs"]
    tok["text"] = text_tokens + STEP_TEXT_TOKENS[family] * steps
    tok["total"] = tok["visual"] + tok["text"]
    act = inference_bytes(family, ck.config, tok, batch_size, elt, 0 if train else NEW_TOKENS)
    tr = train_bytes(ck.config, meta, tok, batch_size, elt, lora_r, optimizer) if train else None
    spread = devices[:1] if (train or device_map is None) else devices
    with _quiet():
        placed, max_memory = _place(meta, quantizer, spread, act, tr, gradient_checkpointing)
    per_dev = _per_device(meta, sizes, placed, act, tr, gradient_checkpointing)
    capacity = {d.name: d.gib for d in spread} or {"cpu": _host_gib()}
    fits = all(per_dev.get(k, 0) <= capacity[k] for k in capacity) and set(per_dev) <= set(capacity)
    vision_mods = _vision_prefixes(family)
    plan = Plan(
        model=model, family=family, model_type=ck.config.model_type, dtype=label, quantization=quantization,
        n_params=sum(p.numel() for p in meta.parameters()),
        n_params_vision=sum(p.numel() for n, p in meta.named_parameters() if any(v in n for v in vision_mods)),
        weights_bytes=int(sum(sizes.values())), weights_gib=round(sum(sizes.values()) / GIB, 3),
        activation_gib=round(max(act["vision"], act["lm"]) / GIB, 3), kv_cache_gib=round(act["kv"] / GIB, 3),
        per_device_gib={k: round(v, 3) for k, v in per_dev.items()},
        capacity_gib={k: round(v, 3) for k, v in capacity.items()}, fits=fits, suggestion="",
        tokens=tok,
        device_map={k: str(v) for k, v in placed.items()}, max_memory=max_memory,
        settings={"n_frames": n_frames, "max_pixels": max_pixels, "batch_size": batch_size, "train": train,
                  "device_map": device_map if len(spread) > 1 else None,
                  "gpus": [d.label or d.name for d in devices]},
        notes=list(ck.notes) + ([f"QLoRA: {kbit_upcast / GIB:.2f} GiB of 16-bit weights outside the 4/8-bit layers "
                                 "become float32 (prepare_model_for_kbit_training)"] if kbit_upcast else [])
              + ([f"training plans one GPU per process (DDP replicates the model); "
                                 f"{len(devices)} GPUs given"] if train and len(devices) > 1 else []))
    if tr:
        plan.train = {"trainable_params": tr["trainable_params"], "lora_r": lora_r, "optimizer": optimizer,
                      "states_gib": round(tr["states"] / GIB, 3), "activations_gib": round(tr["full"] / GIB, 3),
                      "activations_checkpointed_gib": round(tr["checkpointed"] / GIB, 3),
                      "gradient_checkpointing": gradient_checkpointing}
    if not fits and suggest:
        plan.suggestion = _suggest(plan, devices, dict(model=model, dtype=dtype, quantization=quantization,
                                   n_frames=n_frames, max_pixels=max_pixels, train=train, batch_size=batch_size,
                                   lora_r=lora_r, gradient_checkpointing=gradient_checkpointing,
                                   optimizer=optimizer, device_map=device_map, text_tokens=text_tokens))
    return plan


def _vision_prefixes(family: str) -> tuple[str, ...]:
    return VISION_MODULES.get(family, ())


def _host_gib() -> float:
    from ..machine import hardware

    if hasattr(hardware, "ram_gib"):
        return hardware.ram_gib()[0]
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def _reserve(act: dict, tr: dict | None, ckpt: bool, n: int) -> float:
    """Bytes each GPU keeps free beside the weights: CUDA context, activations, its share of the KV cache."""
    if tr:
        return CUDA_CONTEXT_GIB * GIB + tr["states"] + max(act["vision"], tr["checkpointed" if ckpt else "full"])
    return CUDA_CONTEXT_GIB * GIB + max(act["vision"], act["lm"]) + act["kv"] / n


def _place(model, quantizer, devices, act, tr, ckpt):
    """(device map, max_memory): one device takes everything; several are placed like from_pretrained."""
    if len(devices) <= 1:
        dev = devices[0].name if devices else "cpu"
        return {"": dev}, {}
    from transformers.integrations.accelerate import get_balanced_memory, infer_auto_device_map

    reserve = _reserve(act, tr, ckpt, len(devices))
    max_memory = {i: max(0, int(d.total_bytes - reserve)) for i, d in enumerate(devices)}
    budget = dict(max_memory) | {"cpu": 10 ** 15}  # anything that does not fit lands here (= does not fit)
    split = model._no_split_modules
    budget = get_balanced_memory(model, max_memory=budget, no_split_module_classes=split, hf_quantizer=quantizer)
    if quantizer is not None:
        budget = quantizer.adjust_max_memory(budget)
    dm = infer_auto_device_map(model, max_memory=budget, no_split_module_classes=split, hf_quantizer=quantizer)
    return {k: (f"cuda:{v}" if isinstance(v, int) else v) for k, v in dm.items()}, max_memory


def _per_device(model, sizes, placed, act, tr, ckpt) -> dict[str, float]:
    """GiB planned per device: its weights, CUDA context, and the activations / KV its layers hold."""
    weights: dict[str, float] = {}
    for name, b in sizes.items():
        dev = _device_of(name, placed)
        weights[dev] = weights.get(dev, 0) + b
    layer_dev = [_device_of(n, placed) for n, _ in model.named_modules() if re.search(r"language_model\.layers\.\d+$", n)]
    out = {}
    for dev, w in weights.items():
        share = layer_dev.count(dev) / max(1, len(layer_dev))
        if tr:
            extra = tr["states"] * share + max(act["vision"], tr["checkpointed" if ckpt else "full"] * share)
        else:
            extra = max(act["vision"], act["lm"]) + act["kv"] * share
        out[dev] = (w + extra) / GIB + (CUDA_CONTEXT_GIB if dev.startswith("cuda") else 0)
    return out


# ---------------------------------------------------------------------------------------------- advice
def _what(plan: Plan, devices: list[Device]) -> str:
    where = ("the CPU" if not devices else f"one {devices[0].label or devices[0].name} GPU" if len(devices) == 1
             else f"{len(devices)} GPUs ({', '.join(d.label or d.name for d in devices)})")
    extra = plan.train["states_gib"] + (plan.train["activations_checkpointed_gib"] if
                                        plan.train["gradient_checkpointing"] else plan.train["activations_gib"]) \
        if plan.train else plan.activation_gib + plan.kv_cache_gib
    what = f"weights in {plan.dtype}" if plan.quantization == "none" else \
        f"{plan.quantization} weights (the rest in {plan.dtype})"
    return (f"{plan.weights_gib:.1f} GiB of {what} + {extra:.1f} GiB {'training state and activations' if plan.train else 'activations and KV cache'}"
            + f" do not fit {where}")


def _suggest(plan: Plan, devices: list[Device], kw: dict) -> str:
    """One sentence: the first changes (from cheapest) that make it fit, with their numbers."""
    def tryit(label, **change):
        try:
            p = make_plan(gpus=change.pop("gpus", devices), suggest=False, **(kw | change))
        except PlanInputError:
            return None
        peak = max(p.per_device_gib.values())
        return f"{label} (≈ {p.weights_gib:.1f} GiB weights, {peak:.1f} GiB peak per device)" if p.fits else None

    options = []
    if kw["train"]:
        if not kw["gradient_checkpointing"]:
            options.append(tryit("gradient_checkpointing: true", gradient_checkpointing=True))
        if kw["optimizer"] == "adamw":
            options.append(tryit("optim: paged_adamw_8bit", optimizer="paged_adamw_8bit"))
        if kw["quantization"] != "4bit":
            options.append(tryit("quantization: 4bit (QLoRA) with gradient checkpointing", quantization="4bit",
                                 gradient_checkpointing=True))
        if kw["batch_size"] > 1:
            options.append(tryit("batch_size: 1 with more grad_accum", batch_size=1))
    else:
        for q in ("8bit", "4bit"):
            if kw["quantization"] == "none" or (kw["quantization"] == "8bit" and q == "4bit"):
                options.append(tryit(f"quantization: {q}", quantization=q))
        if len(devices) == 1:
            options.append(tryit(f"device_map: auto over two {devices[0].label or devices[0].name} GPUs",
                                 gpus=[devices[0], Device("cuda:1", devices[0].total_bytes, devices[0].capability,
                                                          devices[0].label)], device_map="auto"))
        elif len(devices) > 1 and kw["device_map"] is None:
            options.append(tryit(f"device_map: auto over the {len(devices)} GPUs", device_map="auto"))
        if kw["n_frames"] > 2:
            options.append(tryit(f"n_frames: {kw['n_frames'] // 2}", n_frames=kw["n_frames"] // 2))
    options = [o for o in options if o]
    head = _what(plan, devices[:1] if kw["train"] or kw["device_map"] is None else devices)
    if not options:
        return head + ": no single change tried (quantization, more GPUs, fewer frames) fits; use a smaller " \
                      "checkpoint (a 2-4 B model) or a larger GPU"
    return head + ": set " + ", or ".join(options[:3])


# ---------------------------------------------------------------------------------------------- entry points
def preflight(model_cfg, gpus="auto") -> Plan:
    """Plan a ``models.ModelConfig`` on this machine before any weights are read; raise
    ``MemoryPlanError`` (with the suggestion) when it does not fit."""
    devices = parse_gpus(gpus)
    device = getattr(model_cfg, "device", "auto")
    if device == "cpu":
        devices = []
    elif str(device).startswith("cuda:") and getattr(model_cfg, "device_map", None) is None:
        idx = int(str(device).split(":")[1])
        devices = [d for d in devices if d.name == f"cuda:{idx}"] or devices[:1]
    plan = make_plan(model_cfg.model, devices, dtype=model_cfg.dtype,
                     quantization=getattr(model_cfg, "quantization", None) or "none", n_frames=model_cfg.n_frames,
                     max_pixels=model_cfg.max_pixels, device_map=getattr(model_cfg, "device_map", None))
    if not plan.fits:
        raise MemoryPlanError(plan)
    return plan


TABLE_GPUS = {"T4 (15 GiB)": "15GiB", "2 × T4 (device_map auto)": "15GiB,15GiB", "24 GB": "24GB", "80 GB": "80GiB"}


def fits_table(models: list[str], n_frames: int = 8, quantizations=("none", "8bit", "4bit")) -> str:
    """Markdown: model x hardware x precision, each cell "yes 15.4" (fits, peak GiB on the fullest GPU)."""
    head = "| model | precision | " + " | ".join(TABLE_GPUS) + " |"
    rows = [head, "|" + "---|" * (len(TABLE_GPUS) + 2)]
    for m in models:
        for q in quantizations:
            cells = []
            for spec in TABLE_GPUS.values():
                p = make_plan(m, spec, quantization=q, n_frames=n_frames, suggest=False)
                cells.append(f"{'yes' if p.fits else 'no'} {max(p.per_device_gib.values()):.1f}")
            name = Path(m).name if Path(m).is_dir() else m
            rows.append(f"| {name} | {'16-bit' if q == 'none' else q} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def table_models(paths: list[str]) -> list[str]:
    """Model folders for the table: each path itself, or its subfolders holding a config.json."""
    out = []
    for p in paths:
        sub = sorted(str(c) for c in Path(p).iterdir() if (c / "config.json").is_file()) if Path(p).is_dir() \
            and not (Path(p) / "config.json").is_file() else []
        out += sub or [p]
    return out


def cli(args) -> int:
    """``python -m roadbuddy_utils plan``: print the plan (``--json``: one JSON object) or, with
    ``--table``, the Markdown what-fits-where table. Exit 0 whether or not it fits, 2 on bad input."""
    import sys

    try:
        if args.table:
            print(fits_table(table_models(args.model), n_frames=args.n_frames))
            return 0
        if len(args.model) != 1:
            raise PlanInputError("give one --model (several only with --table)")
        plan = make_plan(args.model[0], args.gpus, dtype=args.dtype, quantization=args.quantization,
                         n_frames=args.n_frames, max_pixels=args.max_pixels, train=args.train,
                         batch_size=args.batch_size, lora_r=args.lora_r,
                         gradient_checkpointing=args.gradient_checkpointing, optimizer=args.optim,
                         device_map=None if args.device_map == "none" else "auto")
    except PlanInputError as e:  # PlanInputError too: bad input, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(plan.to_dict(), ensure_ascii=False) if args.json else plan.report())
    return 0


def add_arguments(p):
    """The ``plan`` subcommand's options (``__main__`` calls this)."""
    p.add_argument("--model", action="append", required=True,
                   help="hub id, folder with config.json + processor configs, or tiny:<family> (repeat for --table)")
    p.add_argument("--gpus", default="auto", help=f"GPUs to plan for: {GPUS_FORM}")
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    p.add_argument("--quantization", default="none", choices=["none", "8bit", "4bit"])
    p.add_argument("--n-frames", type=int, default=8, help="frames per clip (default 8)")
    p.add_argument("--max-pixels", type=int, default=448 * 448, help="pixel budget per frame (default 448*448)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device-map", default="auto", choices=["auto", "none"],
                   help="auto spreads over every GPU given (inference); none keeps the model on the first")
    p.add_argument("--train", action="store_true", help="plan LoRA training (QLoRA with --quantization 4bit)")
    p.add_argument("--lora-r", type=int, default=32)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--optim", default="adamw", choices=sorted(OPTIMIZER_BYTES))
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--table", action="store_true",
                   help="Markdown table of every --model (a folder of checkpoint folders works) on T4, 2 x T4, "
                        "24 GB and 80 GB in 16-bit, 8bit and 4bit")

"""Full-size models with random weights, built from a checkpoint's config files alone (no download).

    vlm, info = random_vlm("tests/fixtures/configs/Qwen2.5-VL-7B-Instruct", ModelConfig(..., dtype="bfloat16"))
    vlm, info = random_vlm("tiny:qwen2_5_vl", ModelConfig("tiny:qwen2_5_vl", quantization="4bit", device="cpu"))

What a GPU check needs to measure time and memory without the real weights (benchmarks/gpu_check.py):

* the model: ``AutoModelForImageTextToText.from_config`` inside a ``torch.device`` context, so the
  random weights are initialised directly on the GPU in the target dtype (no 16-30 GB of host RAM);
* 4-bit: the 16-bit model quantized in memory with the machinery ``from_pretrained`` uses
  (transformers' bitsandbytes quantizer swaps the Linear layers outside ``models.NOT_QUANTIZED``
  for ``Linear4bit``; each weight becomes a ``Params4bit`` exactly as ``Bnb4bitQuantize`` makes it
  while loading), so the layers, bytes and NF4 codes equal those of a 4-bit ``VLM.load``. The
  16-bit model must fit once while it is quantized (about 16 GiB for an 8 B model);
* the tokenizer: models/tiny.py's byte-level BPE padded with never-produced filler tokens to the config's
  vocabulary size, the special tokens at the ids the config and the Qwen2 vocabulary use
  (``<|im_end|>`` 151645, ``<|video_pad|>`` 151656, InternVL's ``<IMG_CONTEXT>`` 151667, ...): the
  embedding and output layers keep their real size and the model config is used unchanged;
* the processor: the checkpoint's own processor config files (patch and merge size,
  ``image_seq_length``, min / max pixels), so a prompt has the real number of visual tokens.

A ``tiny:<family>`` source uses its own tokenizer and processor (models/tiny.py) and the same model path.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..machine import hardware
from .checkpoint import PROCESSOR_FILES, PlanInputError, read_checkpoint
from .config import FAMILIES, ModelConfig, quantization_config, resolve_device, resolve_dtype
from .tiny import build_tokenizer, chat_template, is_tiny, resolve_model_id
from .vlm import VLM

# ids of the special tokens in the Qwen2 vocabulary (shared by InternVL3, Qwen2.5-VL and Qwen3-VL);
# the config's own ids (image_token_id, ...) win where it names them
QWEN2_SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                     "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655,
                     "<|video_pad|>": 151656, "<img>": 151665, "</img>": 151666, "<IMG_CONTEXT>": 151667}
CONFIG_TOKEN_IDS = {"image_token_id": {"internvl": "<IMG_CONTEXT>"}, "video_token_id": "<|video_pad|>",
                    "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}


def special_token_ids(model_type: str, config, specials: list[str]) -> dict[str, int]:
    """Where each special token goes: the config's ids, else the Qwen2 vocabulary's, else the first
    free id after the lowest of those."""
    place = {}
    for key, token in CONFIG_TOKEN_IDS.items():
        token = token.get(model_type, "<|image_pad|>") if isinstance(token, dict) else token
        if getattr(config, key, None) is not None:
            place[token] = int(getattr(config, key))
    place = {t: i for t, i in ({**QWEN2_SPECIAL_IDS, **place}).items() if t in specials}
    free = (i for i in range(min(place.values(), default=0), 10 ** 9) if i not in set(place.values()))
    for t in specials:
        if t not in place:
            place[t] = next(free)
    return place


def real_size_tokenizer(model_type: str, config, out_dir) -> "PreTrainedTokenizerFast":
    """models/tiny.py's tokenizer with ``config``'s vocabulary size and special-token ids, saved to ``out_dir``."""
    from transformers import AutoTokenizer

    vocab_size = config.get_text_config().vocab_size
    build_tokenizer(model_type).save_pretrained(out_dir)  # its special tokens follow the family
    path = Path(out_dir) / "tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    specials = [a["content"] for a in spec["added_tokens"]]
    place = special_token_ids(model_type, config, specials)
    regular = [t for t, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1]) if t not in specials]
    vocab = {t: i for i, t in enumerate(regular)}
    clash = {t: i for t, i in place.items() if i < len(regular) or i >= vocab_size}
    if clash:
        raise ValueError(f"special tokens {clash} fall outside ids {len(regular)}..{vocab_size - 1} of the config's "
                         "vocabulary; check vocab_size and the *_token_id fields of its config.json")
    vocab |= place
    # no merge produces a filler, so no text ever encodes to one; they only give the vocabulary its real size
    taken = set(vocab.values())
    vocab |= {f"<|filler_{i}|>": i for i in range(vocab_size) if i not in taken}
    spec["model"]["vocab"] = vocab
    for added in spec["added_tokens"]:
        added["id"] = place[added["content"]]
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(out_dir)
    if len(tok) != vocab_size:
        raise AssertionError(f"tokenizer has {len(tok)} tokens, the config {vocab_size}")
    return tok


def checkpoint_folder(source: str, out_dir) -> Path:
    """A folder ``AutoProcessor`` loads: ``source`` itself when it has a tokenizer (a tiny model, a
    real checkpoint), else its config and processor files with a real-size tokenizer in ``out_dir``."""
    src = Path(resolve_model_id(source))
    if (src / "tokenizer.json").is_file() or (src / "tokenizer_config.json").is_file():
        return src
    ck = read_checkpoint(str(src))  # one clear error for a missing config / an unsupported family
    if not any((src / f).is_file() for f in PROCESSOR_FILES):
        raise PlanInputError(f"{source}: no processor config ({', '.join(PROCESSOR_FILES)}): the visual token counts "
                             "would not be the real ones; copy the checkpoint's processor files there")
    out = Path(out_dir)
    same = [(out / n).is_file() and (out / n).read_bytes() == (src / n).read_bytes()
            for n in ("config.json", *PROCESSOR_FILES) if (src / n).is_file()]
    if all(same) and (out / "tokenizer.json").is_file():  # built before from the same files: reuse it
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", *PROCESSOR_FILES):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    real_size_tokenizer(ck.config.model_type, ck.config, out)
    return out


def load_processor(folder, model_type: str):
    """The processor of ``folder`` with the project's chat template where it ships none."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    if not getattr(processor, "chat_template", None):
        processor.chat_template = chat_template(model_type)
    return processor


def build_model(config, device, dtype, attn_implementation: str | None = None, seed: int = 0):
    """Random weights of ``config``'s architecture, initialised on ``device`` in ``dtype``."""
    import torch
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    kwargs = {"dtype": dtype} | ({"attn_implementation": attn_implementation} if attn_implementation else {})
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, **kwargs)
    model.tie_weights()  # tied embeddings are one tensor, as after from_pretrained
    return model


def quantize_4bit(model, cfg: ModelConfig, dtype):
    """Quantize ``model`` in place to NF4 (double quantisation, compute in ``dtype``) as a 4-bit
    ``from_pretrained`` does: the same quantizer, skip list and ``Params4bit`` construction. Each 16-bit
    weight is released as soon as its 4-bit copy exists."""
    import bitsandbytes as bnb
    import torch
    from transformers.quantizers import AutoHfQuantizer

    device = next(model.parameters()).device
    qconfig = quantization_config(cfg, model.config, device, dtype)  # bitsandbytes present, GPU able, not quantized
    quantizer = AutoHfQuantizer.from_config(qconfig, pre_quantized=False)
    linears = {name: m for name, m in model.named_modules() if type(m) is torch.nn.Linear}
    quantizer.preprocess_model(model, dtype=dtype, device_map=None)  # swaps in Linear4bit shells on the meta device
    for name, mod in model.named_modules():
        if isinstance(mod, bnb.nn.Linear4bit):
            src = linears.pop(name)
            mod.weight = bnb.nn.Params4bit(src.weight.data, requires_grad=False, **mod.weight.__dict__).to(device)
            if src.bias is not None:
                mod.bias = src.bias
            mod._is_hf_initialized = True
            del src
    linears.clear()
    model.hf_quantizer = quantizer
    quantizer.postprocess_model(model)
    return model


def random_vlm(source: str, cfg: ModelConfig, seed: int = 0, work_dir=None) -> tuple[VLM, dict]:
    """A ``VLM`` of ``source`` (a config folder or ``tiny:<family>``) with random weights, placed and
    typed as ``VLM.load`` would place ``cfg``; ``info`` has the build time and the parameter count."""
    import tempfile

    from transformers import AutoConfig

    t0 = time.perf_counter()
    folder = checkpoint_folder(source, work_dir or tempfile.mkdtemp(prefix="rb-random-"))
    config = AutoConfig.from_pretrained(folder)
    if config.model_type not in FAMILIES:
        raise PlanInputError(f"{source}: model_type {config.model_type!r} is not supported; supported: {sorted(FAMILIES)}")
    device = resolve_device(cfg)
    cap = hardware.device_capability(device, cfg.device_map) if device.type == "cuda" else None
    hardware.check_gpu(cap)
    dtype = resolve_dtype(cfg, device)
    attn = hardware.resolve_attn(cfg.attn_implementation, cap, str(dtype).removeprefix("torch."))
    if cfg.quantization not in ("none", "4bit"):
        raise ValueError(f"random_vlm builds 16-bit and 4-bit models; quantization {cfg.quantization!r} is not built")
    processor = load_processor(folder, config.model_type)
    t_tok = time.perf_counter() - t0
    model = build_model(config, device, dtype, attn, seed)
    if cfg.quantization == "4bit":
        model = quantize_4bit(model, cfg, dtype)
    vlm = VLM.from_model(model, processor, cfg, FAMILIES[config.model_type], str(folder))
    info = {"source": source, "folder": str(folder), "model_type": config.model_type, "device": str(device),
            "dtype": str(dtype).removeprefix("torch."), "quantization": cfg.quantization, "attn_implementation": attn,
            "n_params": n_params(model), "tokenizer_processor_s": round(t_tok, 3),
            "build_s": round(time.perf_counter() - t0 - t_tok, 3), "tiny": is_tiny(source)}
    return vlm, info


def n_params(model) -> int:
    """Parameters as published (a 4-bit weight counts its original elements, not its packed bytes)."""
    total = 0
    for p in model.parameters():
        shape = getattr(getattr(p, "quant_state", None), "shape", None)
        total += int(shape.numel()) if shape is not None else p.numel()
    return total

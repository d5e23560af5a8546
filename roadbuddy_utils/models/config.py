"""What a model run is: the model configuration, the family table, and the device / dtype / quantization it loads with.

    cfg = ModelConfig("OpenGVLab/InternVL3-8B-hf", dtype="bfloat16", n_frames=8)   # validated here
    FAMILIES[config.model_type]                                                    # internvl | qwen | qwen3

Used by the model wrapper (``vlm.py``) and by the memory planner (``models/plan.py``, ``checkpoint.py``), which
plans a configuration before the wrapper loads it; neither of them imports the other's module for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..machine import hardware

FAMILIES = {"internvl": "internvl", "qwen2_5_vl": "qwen", "qwen2_vl": "qwen", "qwen3_vl": "qwen3"}
DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTN = (None, "auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3")
# the vision side of each family: kept out of quantization, and run in float32 on a non-finite retry
# (first module: where pixels enter; last: what hands features to the language model)
VISION_MODULES = {"internvl": ("vision_tower", "multi_modal_projector"), "qwen": ("visual",), "qwen3": ("visual",)}
NOT_QUANTIZED = ["lm_head", r".*\.visual", r".*\.vision_tower", r".*\.multi_modal_projector"]



@dataclass
class ModelConfig:
    """What to load and how much of each clip it sees (validated here, not as globals)."""

    model: str = "tiny:internvl"  # Hugging Face id, local folder, or tiny:<family>
    adapter_path: str | None = None  # a LoRA adapter folder (peft) applied on top
    dtype: str = "auto"  # auto: bfloat16 from compute capability 8.0, float16 below (T4), float32 on the CPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N (ignored when device_map is set)
    device_map: str | dict | None = None  # "auto" spreads a model larger than one GPU over several
    attn_implementation: str | None = None  # auto | sdpa | eager | flash_attention_2 (None: library default)
    quantization: str | None = "none"  # none | 8bit | 4bit (bitsandbytes; the language model only)
    n_frames: int = 8  # uniform frames per clip
    max_pixels: int = 448 * 448  # pixel budget per frame (H*W) before the processor
    min_pixels: int = 28 * 28

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.n_frames, int) or not 1 <= self.n_frames <= 64:
            raise ValueError(f"n_frames must be an integer in 1..64, got {self.n_frames!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < max(self.min_pixels, 28 * 28):
            raise ValueError(f"max_pixels must be an integer >= {max(self.min_pixels, 28 * 28)}, got {self.max_pixels!r}")
        if self.attn_implementation not in ATTN:
            raise ValueError(f"unknown attn_implementation {self.attn_implementation!r}; choose one of {ATTN}")
        self.quantization = self.quantization or "none"
        if self.quantization not in hardware.QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {hardware.QUANTIZATIONS}, got {self.quantization!r}")
        if self.adapter_path and not Path(self.adapter_path).exists():
            raise FileNotFoundError(f"adapter_path {self.adapter_path} does not exist")

    @property
    def max_side(self) -> int:
        """Longest side a frame is decoded at (the sampler's resize), from the pixel budget."""
        return int(np.sqrt(self.max_pixels * 16 / 9)) + 1


def fit_pixels(frames: np.ndarray, max_pixels: int) -> np.ndarray:
    """Downscale (T, H, W, 3) frames so that H*W <= max_pixels, keeping the aspect ratio."""
    t, h, w = frames.shape[:3]
    if h * w <= max_pixels:
        return frames
    import cv2

    s = np.sqrt(max_pixels / (h * w))
    size = (max(1, int(w * s)), max(1, int(h * s)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def resolve_device(cfg: ModelConfig):
    import torch

    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(cfg: ModelConfig, device):
    """The torch dtype for ``cfg.dtype`` on ``device`` (by compute capability: see ``hardware.resolve_dtype``)."""
    import torch

    cap = hardware.device_capability(device, cfg.device_map)
    return getattr(torch, hardware.resolve_dtype(cfg.dtype, cap))


def quantization_config(cfg: ModelConfig, config, device, dtype):
    """bitsandbytes settings for ``cfg.quantization`` (None for none), checked before any weights are read."""
    if cfg.quantization == "none":
        return None
    hardware.check_quantization(cfg.quantization, hardware.device_capability(device, cfg.device_map))
    already = getattr(config, "quantization_config", None)
    if already:
        method = already.get("quant_method") if isinstance(already, dict) else getattr(already, "quant_method", "?")
        raise ValueError(f"{cfg.model} is already quantized ({method}); set quantization: none to load it as it is")
    return bnb_config(cfg.quantization, dtype)


def bnb_config(quantization: str, dtype):
    """bitsandbytes' settings for ``8bit`` / ``4bit`` (NF4, double quantisation, compute in ``dtype``: a torch
    dtype or its name), the vision side and ``lm_head`` left unquantized; what loading and the planner use."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=NOT_QUANTIZED)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype,
                              llm_int8_skip_modules=NOT_QUANTIZED)

"""One wrapper for every vision-language model family: load, prompt, score letters, generate.

    vlm = VLM.load(ModelConfig("OpenGVLab/InternVL3-8B-hf", dtype="bfloat16", n_frames=8))
    vlm = VLM.load(ModelConfig("tiny:qwen2_5_vl"))            # tiny random model, same code path
    results = vlm.answer(examples, scoring="likelihood")     # [{pred, scores, raw, source, error}]
    vlm.chat_generate([(system, [("text", "CAM_FRONT:"), ("image", "f.jpg"), ("text", "Question ...")])])

Families (``config.model_type``): ``internvl`` (HF-format InternVL3 checkpoints), ``qwen2_5_vl``
(and ``qwen2_vl``), ``qwen3_vl``. Everything family-specific lives in ``_content`` and ``_inputs``:

* InternVL sees each sampled frame as its own image, labelled ``Frame{i}:`` like its video
  training data, with tiling off (one 448 px tile per frame: 256 tokens at full size).
* Qwen sees one video input with the true fps and frame indices (``video_metadata``; without it
  the processor assumes 24 fps, and Qwen3-VL writes wrong ``<t seconds>`` stamps into the prompt).
* A question without frames (unreadable video, ``no_video`` ablation) gets a text-only prompt.
* ``chat_*`` methods take free-form prompts of text and separate images (the multi-camera
  pipeline's camera-labelled views): both families get each image as its own image input.

``likelihood`` scoring is one forward pass: the logits at the position after
``<|im_start|>assistant\\n`` restricted to the letters the question offers, softmaxed. It cannot
fail to parse. ``generate`` decodes greedily and runs the one extractor (``extract.py``); a reply it
cannot read falls back to the likelihood scores, marked ``source: "fallback_likelihood"``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .extract import extract_letter
from .prompts import FRAME_LABEL, question_text, template
from .tiny import is_tiny, resolve_model_id

FAMILIES = {"internvl": "internvl", "qwen2_5_vl": "qwen", "qwen2_vl": "qwen", "qwen3_vl": "qwen3"}
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class ModelConfig:
    """What to load and how much of each clip it sees (validated here, not as globals)."""

    model: str = "tiny:internvl"  # Hugging Face id, local folder, or tiny:<family>
    adapter_path: str | None = None  # a LoRA adapter folder (peft) applied on top
    dtype: str = "auto"  # auto: bfloat16 on a GPU that supports it, else float32
    device: str = "auto"  # auto | cpu | cuda | cuda:N (ignored when device_map is set)
    device_map: str | dict | None = None  # "auto" spreads a model larger than one GPU over several
    attn_implementation: str | None = None  # sdpa | eager | flash_attention_2 (None: library default)
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
        if self.attn_implementation not in (None, "sdpa", "eager", "flash_attention_2", "flash_attention_3"):
            raise ValueError(f"unknown attn_implementation {self.attn_implementation!r}")
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
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@dataclass
class VLM:
    model: object
    processor: object
    cfg: ModelConfig
    family: str
    path: str
    letter_ids: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, cfg: ModelConfig | None = None, **kw) -> "VLM":
        """Load model + processor by id or folder (``tiny:<family>`` builds once into the cache)."""
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        cfg = cfg or ModelConfig(**kw)
        path = resolve_model_id(cfg.model)
        model_type = AutoConfig.from_pretrained(path).model_type
        if model_type not in FAMILIES:
            raise ValueError(f"{cfg.model}: model_type {model_type!r} is not supported; "
                             f"supported: {sorted(FAMILIES)}")
        device = resolve_device(cfg)
        dtype = resolve_dtype(cfg, device)
        kwargs = {"dtype": dtype}
        if cfg.attn_implementation:
            kwargs["attn_implementation"] = cfg.attn_implementation
        if cfg.device_map is not None:
            kwargs["device_map"] = cfg.device_map
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        if cfg.device_map is None:
            model = model.to(device)
        if cfg.adapter_path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.adapter_path)
        model.eval()
        processor = AutoProcessor.from_pretrained(path)
        processor.tokenizer.padding_side = "left"
        vlm = cls(model, processor, cfg, FAMILIES[model_type], path)
        vlm.letter_ids = vlm._letter_ids()
        return vlm

    def _letter_ids(self) -> dict[str, int]:
        tok = self.processor.tokenizer
        ids = {}
        for letter in "ABCDEFGH":
            enc = tok.encode(letter, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"{self.cfg.model}: letter {letter!r} is not a single token ({enc})")
            ids[letter] = enc[0]
        return ids

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def is_tiny(self) -> bool:
        return is_tiny(self.cfg.model)

    def describe(self) -> dict:
        d = asdict(self.cfg) | {"family": self.family, "path": self.path, "tiny_random": self.is_tiny,
                                "n_params": int(sum(p.numel() for p in self.model.parameters()))}
        d["note"] = ("tiny randomly initialised model: chance-level answers until trained" if self.is_tiny
                     and not self.cfg.adapter_path else None)
        return d

    # ------------------------------------------------------------------ prompts
    def messages(self, ex, lang: str = "vi", choices=None) -> list[dict]:
        """Chat messages for one example: system text, then frames (family style), then the question."""
        t = template(lang)
        has_video = ex.frames is not None and len(ex.frames) > 0
        content: list[dict] = []
        if has_video:
            if self.family == "internvl":
                for i in range(len(ex.frames)):
                    content += [{"type": "text", "text": FRAME_LABEL.format(i=i + 1)}, {"type": "image"}]
            else:
                content.append({"type": "video"})
        content.append({"type": "text", "text": question_text(ex.item, lang, with_video=has_video,
                                                              choices=choices)})
        return [{"role": "system", "content": [{"type": "text", "text": t["system"]}]},
                {"role": "user", "content": content}]

    def render(self, ex, lang: str = "vi", choices=None) -> str:
        """The prompt text with the chat template applied (vision placeholders not yet expanded)."""
        return self.processor.apply_chat_template(self.messages(ex, lang, choices), tokenize=False,
                                                  add_generation_prompt=True)

    def inputs(self, examples, lang: str = "vi", texts: list[str] | None = None, choices=None):
        """Processor tensors for a batch (left-padded), on the model's device.

        ``texts`` overrides the rendered prompts (training appends the answer); ``choices`` is a
        per-example list of choice overrides (permuted orders)."""
        texts = texts or [self.render(ex, lang, None if choices is None else choices[k])
                          for k, ex in enumerate(examples)]
        kw: dict = {"text": texts, "padding": True, "return_tensors": "pt"}
        with_frames = [ex for ex in examples if ex.frames is not None and len(ex.frames) > 0]
        frames = [fit_pixels(ex.frames, self.cfg.max_pixels) for ex in with_frames]
        if frames and self.family == "internvl":
            kw["images"] = [f for fr in frames for f in fr]
            kw["crop_to_patches"] = False
        elif frames:
            kw["videos"] = [list(fr) for fr in frames]
            kw["video_metadata"] = [_metadata(ex, fr) for ex, fr in zip(with_frames, frames)]
            kw["do_sample_frames"] = False
            kw["cap_pixels_per_frame"] = True  # qwen-vl-utils' per-frame cap (the reference behaviour)
        batch = self.processor(**kw)
        return batch.to(self.device)

    # ------------------------------------------------------------------ answering
    def letter_scores(self, examples, lang: str = "vi", choices=None):
        """Softmax over each question's offered letters at the answer position: list of dicts."""
        import torch

        letters_per = [[l for l, _ in (ex.item.choices if choices is None else choices[k])]
                       for k, ex in enumerate(examples)]
        with torch.inference_mode():
            return self._letter_probs(self.inputs(examples, lang, choices=choices), letters_per)

    def _letter_probs(self, batch, letters_per) -> list[dict]:
        """One forward pass; softmax over each row's letters at the last position (the answer)."""
        import torch

        logits = self.model(**batch, logits_to_keep=1).logits[:, -1, :].float()
        out = []
        for row, letters in zip(logits, letters_per):
            ids = torch.tensor([self.letter_ids[l] for l in letters], device=row.device)
            p = torch.softmax(row[ids], dim=-1).cpu().numpy()
            out.append({l: round(float(v), 6) for l, v in zip(letters, p)})
        return out

    def generate(self, examples, lang: str = "vi", max_new_tokens: int = 16) -> list[str]:
        import torch

        with torch.inference_mode():
            batch = self.inputs(examples, lang)
            tok = self.processor.tokenizer
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        return tok.batch_decode(new, skip_special_tokens=True)

    def answer(self, examples, scoring: str = "likelihood", lang: str = "vi", max_new_tokens: int = 16) -> list[dict]:
        """One result per example: ``pred``, ``scores`` (letter -> probability, or None), ``raw``
        (generated text), ``source`` (how the letter was obtained), ``error``."""
        if scoring == "likelihood":
            return [{"pred": max(s, key=s.get), "scores": s, "raw": None, "source": "likelihood", "error": None}
                    for s in self.letter_scores(examples, lang)]
        if scoring != "generate":
            raise ValueError(f"scoring must be 'likelihood' or 'generate', got {scoring!r}")
        raws = self.generate(examples, lang, max_new_tokens)
        results = []
        for ex, raw in zip(examples, raws):
            letter, how = extract_letter(raw, ex.item.choices)
            results.append({"pred": letter, "scores": None, "raw": raw, "source": how, "error": None})
        missing = [k for k, r in enumerate(results) if r["pred"] is None]
        if missing:  # explicit, marked fallback: the model's own letter likelihoods
            for k, s in zip(missing, self.letter_scores([examples[k] for k in missing], lang)):
                results[k].update(pred=max(s, key=s.get), scores=s, source="fallback_likelihood")
        return results


    # ------------------------------------------------------------------ interleaved multi-image prompts
    # Used by the multi-camera pipeline (multiview/run.py): a prompt is ``(system, segments)`` with
    # segments ``[("text", str) | ("image", path | PIL image | (H, W, 3) uint8 array), ...]`` in the
    # order the model reads them (a camera label before each image). Both families get each image as
    # its own ``{"type": "image"}`` entry. InternVL: one 448 px tile per image (tiling off: six
    # cameras x 13 tiles would be ~20 k tokens); Qwen: the image shrunk to ``max_pixels`` first.

    def chat_messages(self, system: str | None, segments) -> list[dict]:
        content, after_image = [], False
        for kind, v in segments:
            if kind == "image":
                content.append({"type": "image"})
            else:  # Qwen's image block ends without a newline (InternVL's template adds one): add it
                nl = "\n" if after_image and self.family != "internvl" else ""
                content.append({"type": "text", "text": nl + str(v)})
            after_image = kind == "image"
        sys = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
        return sys + [{"role": "user", "content": content}]

    def chat_render(self, system: str | None, segments) -> str:
        """The prompt text with the chat template applied (image placeholders not yet expanded)."""
        return self.processor.apply_chat_template(self.chat_messages(system, segments), tokenize=False,
                                                  add_generation_prompt=True)

    def chat_inputs(self, prompts):
        """Processor tensors (left-padded) for a list of ``(system, segments)`` prompts."""
        texts = [self.chat_render(system, segs) for system, segs in prompts]
        images = [_image_array(v, self.cfg.max_pixels) for _, segs in prompts for kind, v in segs if kind == "image"]
        kw: dict = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kw["images"] = images
            if self.family == "internvl":
                kw["crop_to_patches"] = False
        return self.processor(**kw).to(self.device)

    def chat_letter_scores(self, prompts, letters) -> list[dict]:
        """Softmax over ``letters[k]`` (the letters prompt k offers) at the answer position."""
        import torch

        with torch.inference_mode():
            return self._letter_probs(self.chat_inputs(prompts), letters)

    def chat_generate(self, prompts, max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 0.7,
                      top_p: float = 0.9) -> list[str]:
        """Generated replies; greedy unless ``do_sample`` (seed torch beforehand for repeatable samples)."""
        import torch

        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else \
            {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with torch.inference_mode():
            batch = self.chat_inputs(prompts)
            tok = self.processor.tokenizer
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                      **sampling)
        return tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def _image_array(image, max_pixels: int) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array within the pixel budget, from a path, a PIL image or an array."""
    if isinstance(image, np.ndarray):
        arr = image
    else:
        from PIL import Image

        if isinstance(image, (str, Path)):
            with Image.open(image) as im:
                arr = np.array(im.convert("RGB"))  # a writable copy: torch warns on read-only
        else:
            arr = np.array(image.convert("RGB"))
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    return fit_pixels(arr[None], max_pixels)[0]


def _metadata(ex, frames: np.ndarray) -> dict:
    """Qwen's ``video_metadata``: the clip's true fps and the indices of the sampled frames."""
    fps = float(ex.fps) if ex.fps else None
    idx = [int(i) for i in ex.frame_indices] if ex.frame_indices else list(range(len(frames)))
    total = int(ex.total_frames) if getattr(ex, "total_frames", None) else (max(idx) + 1)
    h, w = frames.shape[1:3]
    return {"fps": fps, "frames_indices": idx, "total_num_frames": total, "width": int(w), "height": int(h),
            "duration": total / fps if fps else None}

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
fail to parse. ``generate`` decodes greedily and runs the one extractor (``models/extract.py``); a reply it
cannot read falls back to the likelihood scores, marked ``source: "fallback_likelihood"``.

Hardware (``machine/hardware.py`` decides): ``dtype: auto`` is bfloat16 from compute capability 8.0,
float16 on a T4 / V100, float32 on the CPU; ``attn_implementation: auto`` is FlashAttention-2 where
it runs, else SDPA. ``quantization: 4bit`` loads the language model in NF4 with double quantisation
(compute in the resolved dtype), ``8bit`` in LLM.int8; the vision tower, projector and ``lm_head``
stay in 16 bit (small, and quantizing them costs accuracy).

float16 safety: every likelihood pass checks that the letter logits are finite. A batch that is
not is run again with the vision tower (and projector) in float32, its output clamped into the
float16 range (where Qwen2.5-VL and InternVL overflow); a question still non-finite gets an
``error`` ("non-finite logits in float16 ..."), never a letter read from NaNs (``nonfinite`` counts).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..machine import hardware
from .config import (
    FAMILIES,
    VISION_MODULES,
    ModelConfig,
    fit_pixels,
    quantization_config,
    resolve_device,
    resolve_dtype,
)
from .extract import extract_letter
from .prompts import FRAME_LABEL, question_text, template
from .rope import use_trained_positions
from .tiny import is_tiny, resolve_model_id


class NonFiniteLogits(FloatingPointError):
    """Letter logits stayed inf / NaN after the float32 retry (the message says what to change)."""


@dataclass
class VLM:
    model: object
    processor: object
    cfg: ModelConfig
    family: str
    path: str
    letter_ids: dict[str, int] = field(default_factory=dict)
    # float16 safety counters: batches with non-finite letter logits, rows the float32 retry fixed / did not
    nonfinite: dict = field(default_factory=lambda: {"batches": 0, "rows_retried_ok": 0, "rows_failed": 0})

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, cfg: ModelConfig | None = None, **kw) -> "VLM":
        """Load model + processor by id or folder (``tiny:<family>`` builds once into the cache)."""
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        cfg = cfg or ModelConfig(**kw)
        path = resolve_model_id(cfg.model)
        config = AutoConfig.from_pretrained(path)
        model_type = config.model_type
        if model_type not in FAMILIES:
            raise ValueError(f"{cfg.model}: model_type {model_type!r} is not supported; "
                             f"supported: {sorted(FAMILIES)}")
        device = resolve_device(cfg)
        cap = hardware.device_capability(device, cfg.device_map)
        hardware.check_gpu(cap)
        dtype = resolve_dtype(cfg, device)
        kwargs = {"dtype": dtype}
        attn = hardware.resolve_attn(cfg.attn_implementation, cap, str(dtype).removeprefix("torch."))
        if attn:
            kwargs["attn_implementation"] = attn
        device_map = cfg.device_map
        qconfig = quantization_config(cfg, config, device, dtype)
        if device.type == "cuda":
            # The memory plan from the config files, before a long download or a CUDA out-of-memory
            # error: it stops here with what to change (plan.MemoryPlanError), and gives device_map
            # "auto" per-GPU limits that leave room for the activations.
            from .plan import preflight

            planned = preflight(replace(cfg, dtype=str(dtype).removeprefix("torch.")))
            if device_map == "auto" and planned.max_memory:
                kwargs["max_memory"] = planned.max_memory
        if qconfig is not None:  # bitsandbytes places weights as it loads them: no .to() afterwards
            kwargs["quantization_config"] = qconfig
            device_map = device_map or {"": f"cuda:{device.index or 0}" if device.type == "cuda" else str(device)}
        if device_map is not None:
            kwargs["device_map"] = device_map
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        if device_map is None:
            model = model.to(device)
        if cfg.adapter_path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.adapter_path)
        return cls.from_model(model, AutoProcessor.from_pretrained(path), cfg, FAMILIES[model_type], path)

    @classmethod
    def from_model(cls, model, processor, cfg: ModelConfig, family: str | None = None, path: str = "") -> "VLM":
        """Wrap a model already in memory (built from a config, e.g. benchmarks/gpu_check.py's random
        full-size models) as ``load`` wraps what it loaded: eval mode, left padding, letter ids."""
        family = family or FAMILIES.get(getattr(model.config, "model_type", None))
        if family not in FAMILIES.values():
            raise ValueError(f"{cfg.model}: family {family!r} is not one of {sorted(set(FAMILIES.values()))}")
        model.eval()
        use_trained_positions(model)  # Qwen2(.5)-VL: text after a video at max vision position + 1 (rope.py)
        processor.tokenizer.padding_side = "left"
        vlm = cls(model, processor, cfg, family, path or cfg.model)
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
        attn = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        d["resolved"] = {"dtype": self._dtype_name(), "quantization": self.cfg.quantization, "attn_implementation": attn}
        import transformers

        d["backend"] = {"name": "hf", "version": transformers.__version__}
        return d

    def _dtype_name(self) -> str:
        """The language model's compute dtype (its embeddings stay unquantized)."""
        return str(self.model.get_input_embeddings().weight.dtype).removeprefix("torch.")

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
    def letter_scores(self, examples, lang: str = "vi", choices=None) -> list[dict]:
        """Softmax over each question's offered letters at the answer position: list of dicts. Raises
        ``NonFiniteLogits`` when a question's logits stay non-finite (``answer`` records it instead)."""
        return _finite_or_raise(self._letter_rows(examples, lang, choices))

    def _letter_rows(self, examples, lang: str = "vi", choices=None) -> list[dict | str]:
        import torch

        letters_per = [[l for l, _ in (ex.item.choices if choices is None else choices[k])]
                       for k, ex in enumerate(examples)]
        with torch.inference_mode():
            return self._letter_probs(self.inputs(examples, lang, choices=choices), letters_per)

    def _letter_logits(self, batch, letters_per) -> list:
        """One forward pass: each row's logits of its letters at the last position (the answer)."""
        import torch

        logits = self.model(**batch, logits_to_keep=1).logits[:, -1, :].float()
        return [row[torch.tensor([self.letter_ids[l] for l in letters], device=row.device)]
                for row, letters in zip(logits, letters_per)]

    def _letter_probs(self, batch, letters_per) -> list[dict | str]:
        """Softmax over each row's letters; rows with inf / NaN letter logits are run again with the
        vision side in float32, and a row still non-finite is its error message (never a letter)."""
        import torch

        rows = self._letter_logits(batch, letters_per)
        bad = [k for k, r in enumerate(rows) if not torch.isfinite(r).all()]
        retried = False
        if bad:
            self.nonfinite["batches"] += 1
            with self.vision_float32() as retried:
                if retried:
                    again = self._letter_logits(batch, letters_per)
                    rows = [again[k] if k in bad else r for k, r in enumerate(rows)]
        out = []
        for k, (row, letters) in enumerate(zip(rows, letters_per)):
            if not torch.isfinite(row).all():
                self.nonfinite["rows_failed"] += 1
                how = ("retried with the vision tower in float32: still non-finite" if retried else
                       "no 16-bit vision tower to retry in float32")
                out.append(f"non-finite logits in {self._dtype_name()} ({how}); load with dtype float32, "
                           "or bfloat16 on a GPU of compute capability >= 8.0")
                continue
            self.nonfinite["rows_retried_ok"] += k in bad
            p = torch.softmax(row, dim=-1).cpu().numpy()
            out.append({l: round(float(v), 6) for l, v in zip(letters, p)})
        return out

    @contextmanager
    def vision_float32(self):
        """The vision tower and projector in float32 for the passes inside, their output clamped into
        the language model's range and cast to its dtype; yields False (nothing changed) when they are
        not in 16 bit. The 16-bit tensors are put back as they were (not re-rounded)."""
        import torch

        mods = [m for key in VISION_MODULES[self.family] for m in _first_named(self.model, key)]
        half = {id(t): t for m in mods for t in [*m.parameters(), *m.buffers()]
                if t.dtype in (torch.float16, torch.bfloat16)}
        if not half:
            yield False
            return
        lm_dtype = self.model.get_input_embeddings().weight.dtype
        saved = [(t, t.data) for t in half.values()]
        with torch.inference_mode(False), torch.no_grad():  # real tensors: the model may train afterwards
            for t, data in saved:
                t.data = data.float()
        hooks = [mods[0].register_forward_pre_hook(
                     lambda m, args, kw: (_cast(args, torch.float32), _cast(kw, torch.float32)), with_kwargs=True),
                 mods[-1].register_forward_hook(lambda m, args, out: _cast(out, lm_dtype, clamp=True))]
        try:
            yield True
        finally:
            for h in hooks:
                h.remove()
            for t, data in saved:
                t.data = data

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
                    if isinstance(s, dict) else {"pred": None, "scores": None, "raw": None, "source": None, "error": s}
                    for s in self._letter_rows(examples, lang)]
        if scoring != "generate":
            raise ValueError(f"scoring must be 'likelihood' or 'generate', got {scoring!r}")
        raws = self.generate(examples, lang, max_new_tokens)
        results = []
        for ex, raw in zip(examples, raws):
            letter, how = extract_letter(raw, ex.item.choices)
            results.append({"pred": letter, "scores": None, "raw": raw, "source": how, "error": None})
        missing = [k for k, r in enumerate(results) if r["pred"] is None]
        if missing:  # explicit, marked fallback: the model's own letter likelihoods
            for k, s in zip(missing, self._letter_rows([examples[k] for k in missing], lang)):
                if isinstance(s, str):  # no readable reply and no trustworthy scores: an error, no letter
                    results[k].update(source="fallback_likelihood", error=s)
                else:
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
            return _finite_or_raise(self._letter_probs(self.chat_inputs(prompts), letters))

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


def _finite_or_raise(rows: list[dict | str]) -> list[dict]:
    bad = [r for r in rows if isinstance(r, str)]
    if bad:
        raise NonFiniteLogits(f"{len(bad)} of {len(rows)} prompts: {bad[0]}")
    return rows


def _first_named(model, key: str) -> list:
    """The shallowest module whose name ends in ``key`` (a list: empty when the model has none)."""
    for name, m in model.named_modules():
        if name.split(".")[-1] == key:
            return [m]
    return []


def _cast(obj, dtype, clamp: bool = False):
    """Floating tensors in ``obj`` (a tensor, tuple, list, dict or model output) cast to ``dtype``;
    ``clamp``: first into its finite range, so an activation beyond float16's 65504 stays finite."""
    import torch

    if isinstance(obj, torch.Tensor):
        if not obj.is_floating_point() or obj.dtype == dtype:
            return obj
        if clamp and dtype in (torch.float16, torch.bfloat16):
            obj = obj.clamp(-torch.finfo(dtype).max, torch.finfo(dtype).max)
        return obj.to(dtype)
    if isinstance(obj, dict):  # includes ModelOutput, whose __setitem__ keeps its attributes in step
        for k in list(obj.keys()):
            obj[k] = _cast(obj[k], dtype, clamp)
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(o, dtype, clamp) for o in obj)
    return obj


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

"""Tiny, randomly initialised models of the real architectures, for the demo profile and the tests.

    path = resolve_model_id("tiny:internvl")      # builds once into the cache, returns the folder
    vlm = VLM.load(ModelConfig("tiny:internvl"))  # models/vlm.py calls resolve_model_id for you
    path = resolve_model_id("tiny:siglip")        # the image-text embedding twin (frame selection)

Model hubs are unreachable on the development machines, so no pretrained weights exist here. A tiny
model has the real class (``InternVLForConditionalGeneration``, ``Qwen2_5_VLForConditionalGeneration``,
``Qwen3VLForConditionalGeneration``), a real processor (image and video processors of the family)
and a byte-level BPE tokenizer trained locally; it is saved with ``save_pretrained`` and loaded
back through ``AutoModelForImageTextToText`` / ``AutoProcessor``, exactly like a checkpoint.
Its weights are random: it answers at chance until trained, and every report made with it says so.

``tiny:siglip`` is a tiny random SigLIP (``SiglipModel`` + ``SiglipProcessor``, loaded through
``AutoModel`` / ``AutoProcessor`` like ``google/siglip-base-patch16-224``): the image-text embedding
model of test-time frame selection (selection/selector.py), 112 px images, patch 16, width 64 x 2 layers.

Sizes (see shared/reference/stack-notes.md): vision width 32 x 2 layers, language model width 64 x
2 layers; InternVL 112 px frames, patch 14, pixel shuffle 0.5 -> 16 tokens per frame; Qwen2.5-VL
112 x 112 frames (16 tokens per pair of frames); Qwen3-VL 128 x 128 (patch 16, 16 tokens per pair).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY_FAMILIES = ("internvl", "qwen2_5_vl", "qwen3_vl")
TINY_EMBEDDERS = ("siglip",)  # image-text embedding twins (not VLMs: VLM.load refuses them)
TINY_VERSION = "v1"  # bump when the recipe below changes: the cache folder name includes it, and the corpus hash
# The prompt phrases the tokenizers are trained on: prompts.TEMPLATES' keys as of v1. The BPE vocabulary, and with it
# which random embedding row each token gets, follows the corpus: the "knowledge" template (issue 21) silently re-drew
# every tiny model under the same cache name (brief demo 0.94 -> 0.81 with selected frames); a template added later
# must not change the vocabulary. Change this tuple only together with TINY_VERSION.
CORPUS_TEMPLATE_KEYS = ("system", "frames", "no_video", "question", "choices", "instruction")
LETTERS = "ABCDEFGH"

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
INTERNVL_SPECIAL = QWEN_SPECIAL + ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]

# ChatML templates with the family's multimodal placeholders (the real checkpoints ship the same
# shapes: InternVL puts <IMG_CONTEXT> / <video> that its processor expands, Qwen a vision block).
_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
           "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
           "{% for c in message['content'] %}"
           "{% if c['type'] == 'image' %}IMAGE{% elif c['type'] == 'video' %}VIDEO"
           "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
           "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def chat_template(family: str) -> str:
    if family == "internvl":
        image, video = "<IMG_CONTEXT>\n", "<video>\n"
    else:
        image, video = "<|vision_start|><|image_pad|><|vision_end|>", "<|vision_start|><|video_pad|><|vision_end|>"
    return _CHATML.replace("IMAGE", image).replace("VIDEO", video)


def tiny_cache_dir() -> Path:
    return Path(os.environ.get("RB_TINY_CACHE") or Path.home() / ".cache" / "roadbuddy" / "tiny")


def _corpus() -> list[str]:
    """The demo's own question and choice sentences plus the prompt phrases (so that each choice
    word stays one token: with a generic corpus, colour words began with the same token)."""
    from ..demo.dataset import QUESTION_TYPES
    from .prompts import TEMPLATES

    lines = []
    for question, choices, _, _ in QUESTION_TYPES.values():
        lines.append(question)
        lines += choices
        lines += [f"{LETTERS[k]}. {c}" for k, c in enumerate(choices)]
    for t in TEMPLATES.values():  # the pinned keys only (CORPUS_TEMPLATE_KEYS)
        lines += [t[k].replace("{", "").replace("}", "") for k in CORPUS_TEMPLATE_KEYS]
    lines += ["Đáp án: A", "Đáp án là B", "The answer is C", "Answer: D", "Đúng", "Sai", "Có", "Không",
              "Frame1", "Khung hình 1 (0.5s)", "seconds", "<0.5 seconds>", "0123456789",
              "abcdefghijklmnopqrstuvwxyz", "ABCDEFGH", "xe máy ô tô xe tải làn đường vạch kẻ biển báo rẽ trái phải"]
    return lines * 3


def corpus_hash() -> str:
    """Eight hex digits of the tokenizer corpus: part of the cache folder name, so a changed corpus (a demo question
    type, a prompt phrase) builds new tiny models instead of reusing ones with another vocabulary."""
    import hashlib

    return hashlib.sha1("\n".join(_corpus()).encode("utf-8")).hexdigest()[:8]


def _train_bpe(special: list[str], vocab_size: int = 600):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on the demo texts with these special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    return tok


def build_tokenizer(family: str, vocab_size: int = 600):
    """Byte-level BPE trained on the demo texts, with the family's special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    tok = _train_bpe(INTERNVL_SPECIAL if family == "internvl" else QWEN_SPECIAL, vocab_size)
    extra = {}
    if family == "internvl":
        extra = {"start_image_token": "<img>", "end_image_token": "</img>",
                 "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    else:
        extra = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                 "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left", extra_special_tokens=extra,
                                   chat_template=chat_template(family))
    for letter in LETTERS:  # the likelihood scorer reads one token per letter
        assert len(fast.encode(letter, add_special_tokens=False)) == 1, letter
    return fast


def _text_config(tok, model_type: str | None, head: int = 16, **extra) -> dict:
    heads = 64 // head
    cfg = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), max_position_embeddings=4096,
               pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
               tie_word_embeddings=False, **extra)
    if model_type:
        cfg["model_type"] = model_type
    return cfg


def _mrope(head_dim: int) -> list[int]:
    """Qwen's rotary sections (time, height, width) for a head of ``head_dim``: [2, 3, 3] at 16."""
    return [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]


def _build_internvl(tok, head_dim: int = 16):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    size, patch, ratio = 112, 14, 0.5
    seq = int((size // patch) ** 2 * ratio ** 2)  # 16: must match in config and processor
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=[size, size], patch_size=[patch, patch]),
        text_config=_text_config(tok, "qwen2", head_dim),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=seq, downsample_ratio=ratio,
        tie_word_embeddings=False)
    model = InternVLForConditionalGeneration(config)
    norm = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size={"height": size, "width": size}, crop_to_patches=False,
                                                  **norm),
        tokenizer=tok, video_processor=InternVLVideoProcessor(size={"height": size, "width": size}, **norm),
        image_seq_length=seq, chat_template=chat_template("internvl"))
    return model, processor


def _qwen_vision(patch: int, **extra) -> dict:
    return dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                patch_size=patch, spatial_merge_size=2, temporal_patch_size=2, **extra)


def _build_qwen2_5_vl(tok, head_dim: int = 16):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    ids = _qwen_ids(tok)
    config = Qwen2_5_VLConfig(
        vision_config=_qwen_vision(14, window_size=112, fullatt_block_indexes=[1]),
        text_config=_text_config(tok, None, head_dim, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                       "mrope_section": _mrope(head_dim)}),
        **ids)
    model = Qwen2_5_VLForConditionalGeneration(config)
    px = 112 * 112
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=px, max_pixels=px),
        video_processor=Qwen2VLVideoProcessor(min_pixels=px, max_pixels=px, do_sample_frames=False),
        tokenizer=tok, chat_template=chat_template("qwen2_5_vl"))
    return model, processor


def _build_qwen3_vl(tok, head_dim: int = 16):
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    ids = _qwen_ids(tok)
    config = Qwen3VLConfig(
        vision_config=_qwen_vision(16, num_position_embeddings=64, deepstack_visual_indexes=[1]),
        text_config=_text_config(tok, None, head_dim, head_dim=head_dim,
                                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                  "mrope_section": _mrope(head_dim), "mrope_interleaved": True}),
        **ids)
    model = Qwen3VLForConditionalGeneration(config)
    px = 128 * 128
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, min_pixels=px, max_pixels=px,
                                                  size={"shortest_edge": px, "longest_edge": px}),
        video_processor=Qwen3VLVideoProcessor(patch_size=16, size={"shortest_edge": px, "longest_edge": px},
                                              do_sample_frames=False),
        tokenizer=tok, chat_template=chat_template("qwen3_vl"))
    return model, processor


def _qwen_ids(tok) -> dict:
    c = tok.convert_tokens_to_ids
    return dict(image_token_id=c("<|image_pad|>"), video_token_id=c("<|video_pad|>"),
                vision_start_token_id=c("<|vision_start|>"), vision_end_token_id=c("<|vision_end|>"))


def _build_siglip(_tok=None):
    """A tiny random SigLIP; its tokenizer is the same kind of local byte-level BPE as the VLMs'
    (right-padded to ``max_length`` as SigLIP was trained: the text pooler reads the last position)."""
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    tok = _train_bpe(["<pad>", "</s>", "<unk>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   padding_side="right", model_max_length=64)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=fast.pad_token_id,
                         eos_token_id=fast.eos_token_id, bos_token_id=None, projection_size=64),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=112, patch_size=16))
    model = SiglipModel(config)
    processor = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 112, "width": 112}),
                                tokenizer=fast)
    return model, processor


_BUILDERS = {"internvl": _build_internvl, "qwen2_5_vl": _build_qwen2_5_vl, "qwen3_vl": _build_qwen3_vl,
             "siglip": _build_siglip}


def build_tiny(family: str, out_dir, seed: int = 0, head_dim: int = 16) -> Path:
    """Build a tiny random model + processor of ``family`` and ``save_pretrained`` both to ``out_dir``
    (written to a temporary folder first and renamed, so a half-built model is never found). ``head_dim``:
    the language model's attention head size (16; 32 for the ``@hd32`` variant that vLLM's CPU attention
    kernels accept)."""
    import torch

    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {TINY_FAMILIES + TINY_EMBEDDERS}")
    out = Path(out_dir)
    torch.manual_seed(seed)
    if family in TINY_EMBEDDERS:
        model, processor = _BUILDERS[family]()
    else:
        tok = build_tokenizer(family)
        model, processor = _BUILDERS[family](tok, head_dim)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "TINY_RANDOM_MODEL.txt").write_text(
            f"Randomly initialised tiny {family} model (seed {seed}), built by roadbuddy_utils.models.tiny.\n"
            "Not pretrained: its outputs are random (a VLM answers at chance level) until trained.\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_tiny(model_id: str) -> bool:
    return str(model_id).startswith("tiny:")


def resolve_model_id(model_id: str) -> str:
    """``tiny:<family>`` -> its cached folder (built on first use); anything else is returned as is.
    ``tiny:<family>@hd32``: the same model with 32-wide attention heads (2 heads), the smallest head size the
    vLLM CPU build's attention accepts (the engine parity tests use it; the demo keeps 16)."""
    if not is_tiny(model_id):
        return model_id
    family, _, variant = model_id.split(":", 1)[1].partition("@")
    if family not in TINY_FAMILIES + TINY_EMBEDDERS or variant not in ("", "hd32") or \
            (variant and family in TINY_EMBEDDERS):
        raise ValueError(f"unknown tiny model {model_id!r}; choose one of " +
                         ", ".join(f"tiny:{f}" for f in TINY_FAMILIES + TINY_EMBEDDERS) +
                         " (a VLM family may end in @hd32)")
    path = tiny_cache_dir() / f"{family}{'-' + variant if variant else ''}-{TINY_VERSION}-{corpus_hash()}"
    if not (path / "config.json").exists():
        build_tiny(family, path, head_dim=32 if variant == "hd32" else 16)
    return str(path)

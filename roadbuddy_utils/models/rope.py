"""The text positions Qwen2-VL / Qwen2.5-VL were trained with after a video: "max vision position + 1".

    use_trained_positions(model)          # once per loaded model (VLM.from_model does it)
    pos, deltas = max_plus_one(pos, mm_token_type_ids, attention_mask)   # the rule on any M-RoPE positions

These models give every token three rotary positions (time, height, width). Text after an image or a video
starts one past the largest position the vision block used: the rule the models were built with (their
authors in transformers PR 35569: "the text start position_ids as the max vision position_ids plus 1"), and
what vLLM does. transformers 5.19-5.23 (`Qwen2VLModel` / `Qwen2_5_VLModel.get_rope_index`) instead
advance by ``max(grid_h, grid_w) // spatial_merge_size`` only, ignoring the video's temporal extent. For an
image both agree; for a video they disagree whenever the last temporal position passes the spatial extent:
for Qwen2.5-VL-7B (``tokens_per_second`` 2) and a 16:9 clip at the 448² budget (merged grid 12 x 21) every
clip longer than about 13 s with 8 frames, about 11.5 s with 16 (part of RoadBuddy's 5-15 s clips).
Qwen3-VL is not affected (each frame is its own block after a text timestamp) and InternVL uses 1-D
positions.

``use_trained_positions`` wraps the loaded model's own ``get_rope_index`` (instance-level: nothing global
changes) so that every forward pass and ``generate`` — answering, the validation passes and the training
steps of 04 — see the trained positions. The correction is a uniform shift of everything after each vision
block, so it never depends on how transformers laid out the block itself.
"""
from __future__ import annotations

import itertools

AFFECTED = ("qwen2_vl", "qwen2_5_vl")  # config.model_type of the families with the deviation


def max_plus_one(position_ids, mm_token_type_ids, attention_mask=None):
    """``(position_ids, rope_deltas)`` with the text after every vision block starting at the block's
    largest position + 1.

    ``position_ids`` (3, batch, length) as transformers' ``get_rope_index`` built them; ``mm_token_type_ids``
    (batch, length): 0 text, 1 image, 2 video; padding (``attention_mask`` 0) is left as it is. The deltas are
    what generation adds to later text positions: max position + 1 - number of real tokens, per row.
    """
    import torch

    pos = position_ids.clone()
    deltas = []
    for b in range(pos.shape[1]):
        keep = attention_mask[b].bool() if attention_mask is not None else torch.ones_like(mm_token_type_ids[b],
                                                                                            dtype=torch.bool)
        idx = torch.nonzero(keep).flatten()
        row = pos[:, b, idx]
        types = mm_token_type_ids[b, idx].tolist()
        shift, start, prev_vision_max = 0, 0, None
        for kind, group in itertools.groupby(types):
            n = len(list(group))
            block = row[:, start:start + n]
            block += shift
            if kind == 0 and prev_vision_max is not None:
                extra = int(prev_vision_max) + 1 - int(block[:, 0].max())
                block += extra
                shift += extra
            prev_vision_max = block.max() if kind != 0 else None
            start += n
        pos[:, b, idx] = row
        deltas.append(int(row.max()) + 1 - len(idx) if len(idx) else 0)
    return pos, torch.tensor(deltas, device=pos.device).unsqueeze(1)


def use_trained_positions(model) -> bool:
    """Give a loaded Qwen2-VL / Qwen2.5-VL model (plain, or wrapped: a peft adapter, DDP) the trained text positions
    after a video; returns whether the model needed it. Idempotent."""
    if getattr(getattr(model, "config", None), "model_type", None) not in AFFECTED:
        return False
    inner = next((m for m in model.modules() if hasattr(type(m), "get_rope_index")), None)
    if inner is None:
        return False
    if getattr(inner, "_rb_max_plus_one", False):
        return True
    original = inner.get_rope_index

    def get_rope_index(input_ids, mm_token_type_ids, *args, attention_mask=None, **kwargs):
        pos, _ = original(input_ids, mm_token_type_ids, *args, attention_mask=attention_mask, **kwargs)
        return max_plus_one(pos, mm_token_type_ids, attention_mask)

    inner.get_rope_index = get_rope_index
    inner._rb_max_plus_one = True
    return True

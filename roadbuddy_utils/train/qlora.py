"""QLoRA's base: a quantized (bitsandbytes 4-bit) model made ready to train, on every CPU and GPU.

    keep_4bit_unpacked(vlm.model)                  # before any pass of a run that will train (validation included)
    model = prepare_quantized_for_training(model)  # unpacked, then peft's prepare_model_for_kbit_training
"""
from __future__ import annotations


def keep_4bit_unpacked(model) -> int:
    """Keep a 4-bit model's weights in bitsandbytes' training layout; returns how many layers were unpacked.

    bitsandbytes 0.50.2, ``Linear4bit.forward``: on a CPU with AVX512-BF16, a forward pass in eval mode whose
    input needs no grad (a validation pass, any inference) converts the layer's weights once, in place, to a
    CPU-packed layout (``_convert_weight_packed_for_cpu``; ``quant_state.packing_format_for_cpu``) and keeps them
    so. Training steps that follow take the packed path, whose in-place ``result += bias`` after
    ``gemv_4bit`` fails under autograd ("a view of a leaf Variable that requires grad is being used in an
    in-place operation"). A CPU without AVX512-BF16 never packs. So a model that will train is brought back
    from the packed layout (bitsandbytes' own inverse, the one its ``state_dict`` uses) and told not to pack
    again (``support_avx512bf16_for_cpu``, read by every forward). Inference-only 4-bit is left alone: the
    packed layout is bitsandbytes' fast CPU path.
    """
    try:
        import bitsandbytes as bnb
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    except ImportError:  # no bitsandbytes: nothing can be quantized, nothing is packed
        return 0
    n = 0
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            w = m.weight
            if getattr(w.quant_state, "packing_format_for_cpu", False):
                w.data, w.quant_state = _convert_weight_packed_for_cpu_inverse(w.data, w.quant_state)
                n += 1
            m.support_avx512bf16_for_cpu = False
    return n


def prepare_quantized_for_training(model):
    """The one place a quantized model is made ready to train (QLoRA): unpacked from bitsandbytes' CPU layout
    (``keep_4bit_unpacked``), then ``peft.prepare_model_for_kbit_training`` (frozen base, norms and
    embeddings in float32; gradient checkpointing is the caller's)."""
    from peft import prepare_model_for_kbit_training

    keep_4bit_unpacked(model)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)

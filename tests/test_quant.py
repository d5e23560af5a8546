"""Quantized loading (bitsandbytes on the CPU), QLoRA training steps, and float16 safety of the likelihood scorer."""
import json
import shutil

import numpy as np
import pytest
import torch

from roadbuddy_utils.data.questions import Item
from roadbuddy_utils.models.config import ModelConfig
from roadbuddy_utils.models.example import Example
from roadbuddy_utils.models.tiny import resolve_model_id
from roadbuddy_utils.models.vlm import VLM, NonFiniteLogits

bnb = pytest.importorskip("bitsandbytes")

ITEM = Item("q1", "Đèn tín hiệu giao thông phía trước đang có màu gì?", [("A", "Đỏ"), ("B", "Vàng"), ("C", "Xanh")],
            "A", [1.0], None, "videos/q1.mp4")


def _ex(n=4, seed=0, item=ITEM):
    idx = [int(15 * (0.5 + k)) for k in range(n)]
    frames = np.random.default_rng(seed).integers(0, 255, (n, 144, 256, 3), dtype=np.uint8)
    return Example(item, frames, [i / 15 for i in idx], idx, 15.0, 15 * n)


def _linear_kinds(model) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            part = "language" if "language_model" in name else "lm_head" if "lm_head" in name else "vision"
            kinds.setdefault(part, set()).add(type(m).__name__)
    return kinds


def test_4bit_tiny_model_loads_on_cpu_and_answers(tiny_vlm):
    vlm = tiny_vlm("qwen2_5_vl", quantization="4bit", device="cpu")
    kinds = _linear_kinds(vlm.model)
    assert kinds["language"] == {"Linear4bit"}  # the language model in NF4
    assert kinds["vision"] == {"Linear"} and kinds["lm_head"] == {"Linear"}  # vision side and head kept
    lin = next(m for m in vlm.model.modules() if isinstance(m, bnb.nn.Linear4bit))
    assert lin.weight.quant_type == "nf4" and lin.weight.quant_state.nested  # double quantisation
    res = vlm.answer([_ex(), _ex(2, seed=1), Example(ITEM, None)], scoring="likelihood")
    for r in res:
        assert r["error"] is None and r["pred"] in "ABC"
        assert all(np.isfinite(v) for v in r["scores"].values()) and abs(sum(r["scores"].values()) - 1) < 1e-4
    assert vlm.describe()["resolved"]["quantization"] == "4bit"


def test_8bit_internvl_on_cpu_with_auto_attention():
    vlm = VLM.load(ModelConfig("tiny:internvl", quantization="8bit", device="cpu", attn_implementation="auto"))
    assert _linear_kinds(vlm.model)["language"] == {"Linear8bitLt"}
    assert vlm.describe()["resolved"] == {"dtype": "float32", "quantization": "8bit", "attn_implementation": "sdpa"}
    assert vlm.answer([_ex(2)])[0]["error"] is None


def test_quantization_errors_come_before_any_weights_are_read(monkeypatch, tmp_path):
    import importlib.util

    from transformers import AutoModelForImageTextToText

    def no_weights(*a, **k):
        raise AssertionError("weights were read")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", no_weights)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ImportError, match="pip install bitsandbytes"):
        VLM.load(ModelConfig("tiny:qwen2_5_vl", quantization="4bit", device="cpu"))
    monkeypatch.setattr(importlib.util, "find_spec", real)
    folder = tmp_path / "awq"  # a checkpoint that is already quantized
    shutil.copytree(resolve_model_id("tiny:qwen2_5_vl"), folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | {"quantization_config": {"quant_method": "awq", "bits": 4}}))
    with pytest.raises(ValueError, match="already quantized \\(awq\\).*quantization: none"):
        VLM.load(ModelConfig(str(folder), quantization="4bit", device="cpu"))
    with pytest.raises(ValueError, match="quantization must be one of"):
        ModelConfig("tiny:internvl", quantization="nf4")
    assert ModelConfig("tiny:internvl", quantization=None).quantization == "none"


def test_multiview_registry_passes_quantization():
    from roadbuddy_utils.multiview.run import model_configs

    cfgs = model_configs({"small": "tiny:internvl",
                          "large": {"model": "tiny:qwen2_5_vl", "quantization": "4bit", "device_map": "auto"}})
    assert cfgs["large"].quantization == "4bit" and cfgs["small"].quantization == "none"


# ------------------------------------------------------------------------------------------------ float16 safety
def _first_vision_block(vlm):
    inner = vlm.model.model
    return inner.vision_tower.encoder.layer[0] if vlm.family == "internvl" else inner.visual.blocks[0]


def _overflow(only_float16: bool):
    """A forward hook writing inf into a vision block's output (as Qwen2.5-VL's encoder does in fp16)."""
    def hook(module, args, out):
        t = out[0] if isinstance(out, tuple) else out
        if only_float16 and t.dtype != torch.float16:
            return out
        bad = torch.full_like(t, float("inf"))
        return (bad, *out[1:]) if isinstance(out, tuple) else bad
    return hook


@pytest.mark.parametrize("family", ["qwen2_5_vl", "internvl"])
def test_fp16_overflow_is_retried_with_the_vision_tower_in_float32(tiny_vlm, family):
    vlm = tiny_vlm(family, dtype="float16", device="cpu")
    clean = vlm.answer([_ex()])[0]["scores"]
    before = dict(vlm.nonfinite)
    h = _first_vision_block(vlm).register_forward_hook(_overflow(only_float16=True))
    try:
        res = vlm.answer([_ex(), Example(ITEM, None)])
    finally:
        h.remove()
    assert [r["error"] for r in res] == [None, None]
    assert res[0]["scores"] == pytest.approx(clean, abs=0.02)  # fp32 vision ~ the clean fp16 pass
    assert vlm.nonfinite["batches"] == before["batches"] + 1
    assert vlm.nonfinite["rows_retried_ok"] == before["rows_retried_ok"] + 1  # the text-only row was fine
    # the model is back as it was: 16-bit weights, no hooks left behind
    assert {p.dtype for p in vlm.model.parameters()} == {torch.float16}
    assert vlm.answer([_ex()])[0]["scores"] == clean and vlm.nonfinite["batches"] == before["batches"] + 1


def test_fp16_overflow_that_survives_the_retry_is_an_error_not_a_letter(tiny_vlm):
    vlm = tiny_vlm("qwen2_5_vl", dtype="float16", device="cpu")
    failed = vlm.nonfinite["rows_failed"]
    h = _first_vision_block(vlm).register_forward_hook(_overflow(only_float16=False))
    try:
        res = vlm.answer([_ex(), Example(ITEM, None)])
        with pytest.raises(NonFiniteLogits, match="non-finite logits in float16"):
            vlm.letter_scores([_ex()])
        with pytest.raises(NonFiniteLogits, match="still non-finite"):
            vlm.chat_letter_scores([("sys", [("text", "CAM_FRONT:"), ("image", _ex().frames[0]),
                                             ("text", "Màu gì? A. Đỏ B. Xanh")])], [["A", "B"]])
    finally:
        h.remove()
    bad, text_only = res
    assert bad["pred"] is None and bad["scores"] is None and "non-finite logits in float16" in bad["error"]
    assert text_only["error"] is None and text_only["pred"] in "ABC"  # no image: untouched by the overflow
    assert vlm.nonfinite["rows_failed"] >= failed + 3


# ------------------------------------------------------------------------------------------------ QLoRA
def test_qlora_steps_on_cpu_change_the_lora_weights(demo_small, tmp_path):
    from transformers import TrainerCallback

    from roadbuddy_utils.train.finetune import TrainConfig, train

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            self.kinds = _linear_kinds(model)
            self.b0 = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
            self.dtypes = {p.dtype for p in model.parameters() if p.requires_grad}

        def on_train_end(self, args, state, control, model=None, **kw):
            self.b1 = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

    root = demo_small / "traffic_buddy_train+public_test"
    cfg = TrainConfig(model="tiny:qwen2_5_vl", train_json=str(root / "train/train.json"), videos_root=str(root),
                      output_dir=str(tmp_path / "run"), split_file=str(tmp_path / "split.json"),
                      trainable=("lora", "projector"), loss="letters", lr=5e-3, batch_size=2, grad_accum=1, max_steps=2,
                      eval_steps=2, n_frames=2, train_frames=2, pool_frames=2, max_pixels=112 * 112, lora_dropout=0.0,
                      val_limit=2, quantization="4bit", seed=0)
    watch = Watch()
    m = train(cfg, log=lambda *a: None, callbacks=[watch])
    assert m["steps"] == 2
    assert m["precision"] == {"bf16": False, "fp16": False, "quantization": "4bit", "dtype": "float32",
                              "gradient_checkpointing": True, "optim": "adamw_torch_fused"}  # CPU fallbacks
    assert "Linear4bit" in watch.kinds["language"] and watch.dtypes == {torch.float32}
    assert watch.b0 and all(float(b.abs().max()) == 0 for b in watch.b0.values())  # LoRA B starts at zero
    assert any(float(watch.b1[n].abs().max()) > 0 for n in watch.b0)  # ... and the steps moved it


def test_full_training_of_a_quantized_model_is_refused():
    from roadbuddy_utils.train.finetune import TrainConfig

    with pytest.raises(ValueError, match="'full' cannot train 4bit"):
        TrainConfig(trainable=("full",), quantization="4bit")


def _cpu_packs_4bit() -> bool:
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())


@pytest.mark.skipif(not _cpu_packs_4bit(), reason="this CPU lacks AVX512-BF16: bitsandbytes 0.50.2 never packs 4-bit "
                                                   "weights for it, so the packed path cannot be exercised here")
def test_qlora_after_an_eval_pass_that_packed_the_weights():
    """bitsandbytes packs 4-bit weights for the CPU on the first eval-mode forward (AVX512-BF16 only): a model
    that then trains must be brought back first (train.prepare_quantized_for_training)."""
    from roadbuddy_utils.train.examples import Collator
    from roadbuddy_utils.train.finetune import TrainConfig, apply_trainable, float32_trainable
    from roadbuddy_utils.train.qlora import prepare_quantized_for_training

    vlm = VLM.load(ModelConfig("tiny:qwen2_5_vl", quantization="4bit", device="cpu"))  # its own copy: it trains
    layers = [m for m in vlm.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    before = vlm.answer([_ex()], scoring="likelihood")[0]["scores"]
    assert all(m.weight.quant_state.packing_format_for_cpu for m in layers)  # the fast inference layout
    cfg = TrainConfig(model="tiny:qwen2_5_vl", trainable=("lora",), loss="tokens", lora_dropout=0.0, n_frames=4,
                      quantization="4bit", lr=5e-2)
    model = apply_trainable(prepare_quantized_for_training(vlm.model), vlm.family, cfg)
    float32_trainable(model)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    b0 = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    batch = Collator(vlm, cfg)([_ex(), _ex(2, seed=1)])
    for _ in range(2):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        assert torch.isfinite(loss)
    assert any(float((p.detach() - b0[n]).abs().max()) > 0 for n, p in model.named_parameters() if n in b0)
    model.eval()
    vlm.model = model
    after = vlm.answer([_ex()], scoring="likelihood")[0]
    assert after["error"] is None and all(np.isfinite(v) for v in after["scores"].values())
    assert after["scores"] != before  # the trained adapter answers
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)  # stays unpacked

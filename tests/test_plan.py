"""Memory planner on the real architectures (config files only) and on tiny models it can be checked against.

    /work/main/.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_plan.py
"""
import json
import shutil
from pathlib import Path

import pytest

from roadbuddy_utils.models.checkpoint import Device, read_checkpoint
from roadbuddy_utils.models.config import bnb_config
from roadbuddy_utils.models.plan import (
    GIB,
    MemoryPlanError,
    PlanInputError,
    fits_table,
    make_plan,
    parse_gpus,
    preflight,
    resolve_dtype,
)

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
BIG = ["InternVL3-8B-hf", "Qwen2.5-VL-7B-Instruct", "Qwen3-VL-8B-Instruct"]
# published sizes (tests/fixtures/configs/SOURCES.md says where each comes from)
PUBLISHED = {"Qwen2.5-VL-7B-Instruct": 8.292e9, "Qwen2.5-VL-3B-Instruct": 7_509_245_952 / 2,
             "Qwen3-VL-8B-Instruct": 8.77e9, "Qwen3-VL-4B-Instruct": 4.438e9, "InternVL3-8B-hf": 15.89e9 / 2}


def cfg(name: str) -> str:
    return str(CONFIGS / name)


# ---------------------------------------------------------------------------------------------- the fixtures
def test_fixture_folders_hold_only_config_files():
    for d in CONFIGS.iterdir():
        if d.is_dir():
            names = {p.name for p in d.iterdir()}
            assert "config.json" in names and names <= {"config.json", "preprocessor_config.json",
                                                        "processor_config.json", "video_preprocessor_config.json"}, d


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_the_published_size(name):
    plan = make_plan(cfg(name), "15GiB", suggest=False)
    assert plan.n_params == pytest.approx(PUBLISHED[name], rel=0.01)


def test_small_checkpoints_are_small():
    sizes = {n: make_plan(cfg(n), "15GiB", suggest=False).n_params / 1e9
             for n in ("InternVL3-2B-hf", "Qwen2.5-VL-3B-Instruct", "Qwen3-VL-4B-Instruct")}
    assert all(1.0 < s < 5.0 for s in sizes.values()), sizes


def test_weights_of_the_7b_in_16_bit_are_15_4_gib():
    plan = make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", suggest=False)
    assert plan.weights_gib == pytest.approx(15.45, abs=0.05)  # hardware.md: 8.292 B = 15.4 GiB
    assert plan.n_params_vision == pytest.approx(0.677e9, rel=0.01)


# ---------------------------------------------------------------------------------------------- where it fits
@pytest.mark.parametrize("name", BIG)
def test_8b_in_16_bit_needs_two_t4s_or_a_24gb_card(name):
    one = make_plan(cfg(name), "15GiB", suggest=False)
    assert not one.fits and one.per_device_gib["cuda:0"] > 15
    two = make_plan(cfg(name), "15GiB,15GiB", suggest=False)
    assert two.fits and set(two.per_device_gib) == {"cuda:0", "cuda:1"}
    assert all(g <= 15 for g in two.per_device_gib.values())
    assert set(two.device_map.values()) == {"cuda:0", "cuda:1"} and set(two.max_memory) == {0, 1}
    assert make_plan(cfg(name), "24GB", suggest=False).fits


@pytest.mark.parametrize("name", BIG)
def test_8b_in_4_bit_fits_one_t4_with_8_frames(name):
    plan = make_plan(cfg(name), "15GiB", quantization="4bit", n_frames=8, suggest=False)
    sixteen = make_plan(cfg(name), "15GiB", suggest=False)
    assert plan.fits and plan.weights_gib < 0.5 * sixteen.weights_gib
    assert plan.settings["n_frames"] == 8


def test_spread_keeps_vision_on_the_first_gpu_and_lm_head_on_the_last():
    plan = make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB,15GiB", suggest=False)
    assert plan.device_map["model.visual"] == "cuda:0" and plan.device_map["lm_head"] == "cuda:1"
    assert all(v < 15 * GIB for v in plan.max_memory.values())


def test_suggestion_names_what_fits():
    plan = make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB")
    assert not plan.fits
    s = plan.suggestion
    assert "15.4 GiB of weights" in s and "do not fit one 15 GiB GPU" in s
    assert "quantization: 4bit" in s and "device_map: auto over two 15 GiB GPUs" in s
    assert make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "24GB").suggestion == ""


# ---------------------------------------------------------------------------------------------- tokens
def test_token_counts_match_the_measured_prompts():
    # shared/reference/hardware.md: 8 frames of 1920x1080 at 448x448 px -> 1008 (Qwen2.5-VL), 760 (Qwen3-VL)
    assert make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", suggest=False).tokens["visual"] == 1008
    assert make_plan(cfg("Qwen3-VL-8B-Instruct"), "15GiB", suggest=False).tokens["visual"] == 760
    assert make_plan(cfg("InternVL3-8B-hf"), "15GiB", n_frames=4, suggest=False).tokens["visual"] == 4 * 256


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_token_counts_match_the_tiny_processors(family):
    import numpy as np
    from transformers import AutoProcessor

    from roadbuddy_utils.models.tiny import resolve_model_id

    proc = AutoProcessor.from_pretrained(resolve_model_id(f"tiny:{family}"))
    frames = np.zeros((8, 335, 597, 3), dtype=np.uint8)  # what the pipeline hands over at max_pixels 448*448
    t, h, w = proc.video_processor(videos=[frames], return_tensors="pt", do_sample_frames=False)["video_grid_thw"][0]
    assert make_plan(f"tiny:{family}", "cpu", suggest=False).tokens["visual"] == int(t * h * w) // 4


def test_more_frames_cost_more_activations():
    few = make_plan(cfg("InternVL3-8B-hf"), "15GiB", quantization="4bit", n_frames=4, suggest=False)
    many = make_plan(cfg("InternVL3-8B-hf"), "15GiB", quantization="4bit", n_frames=16, suggest=False)
    assert many.activation_gib > few.activation_gib and many.kv_cache_gib > 3 * few.kv_cache_gib
    assert many.weights_gib == few.weights_gib


# ---------------------------------------------------------------------------------------------- against real loads
def _loaded_bytes(model) -> int:
    total = 0
    for p in model.parameters():
        total += p.numel() * p.element_size()
        state = getattr(p, "quant_state", None)
        if state is not None:
            total += sum(v.numel() * v.element_size() for v in state.as_dict(packed=False).values() if hasattr(v, "numel"))
        if getattr(p, "SCB", None) is not None:
            total += p.SCB.numel() * p.SCB.element_size()
    return total + sum(b.numel() * b.element_size() for b in model.buffers())


@pytest.mark.parametrize("family,quantization", [("internvl", "none"), ("qwen2_5_vl", "none"),
                                                 ("qwen2_5_vl", "4bit"), ("internvl", "8bit")])
def test_planned_weights_match_the_loaded_tiny_model(family, quantization):
    import torch
    from transformers import AutoModelForImageTextToText

    from roadbuddy_utils.models.tiny import resolve_model_id

    kw = {} if quantization == "none" else {"quantization_config": bnb_config(quantization, "float32"),
                                            "device_map": "cpu"}
    model = AutoModelForImageTextToText.from_pretrained(resolve_model_id(f"tiny:{family}"), dtype=torch.float32, **kw)
    plan = make_plan(f"tiny:{family}", "cpu", dtype="float32", quantization=quantization, suggest=False)
    assert plan.weights_bytes == pytest.approx(_loaded_bytes(model), rel=0.10)
    if quantization == "none":
        assert plan.weights_bytes == _loaded_bytes(model)  # float32 weights and buffers: exact


def _synthetic_inputs(config, plan, device, dtype):
    """A prompt with the plan's token counts: random text ids around the family's vision placeholders and
    random pixels of the planned shape (the model raises if the counts disagree with its vision tower)."""
    import torch

    text = lambda n: [20 + i % 100 for i in range(n)]  # noqa: E731 - plain ids (special tokens lie outside 20..119)
    tok, fam = plan.tokens, plan.family
    if fam == "internvl":
        per = tok["visual"] // tok["vision_seqs"]
        ids = text(20) + sum(([config.image_token_id] * per + text(4) for _ in range(tok["vision_seqs"])), [])
        pix = {"pixel_values": torch.randn(tok["vision_seqs"], 3, tok["tile"], tok["tile"])}
    else:
        t, h, w = tok["grid_thw"]
        v = config.vision_config
        blocks = [(1, h, w)] * t if fam == "qwen3" else [(t, h, w)]  # Qwen3-VL: one placeholder block per step
        ids = text(20)
        for bt, bh, bw in blocks:
            ids += [config.vision_start_token_id] + [config.video_token_id] * (bt * bh * bw // 4) + \
                [config.vision_end_token_id] + text(2)
        pix = {"pixel_values_videos": torch.randn(t * h * w, 3 * v.temporal_patch_size * v.patch_size ** 2),
               "video_grid_thw": torch.tensor([[t, h, w]])}
    ids = torch.tensor([ids + text(max(1, tok["total"] - len(ids)))])
    if fam != "internvl":  # 2 marks video tokens (what the processor returns for M-RoPE)
        pix["mm_token_type_ids"] = (ids == config.video_token_id).long() * 2
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            **{k: (x.to(device, dtype) if x.is_floating_point() else x.to(device)) for k, x in pix.items()}}


@pytest.mark.parametrize("family", ["internvl", "qwen2_5_vl", "qwen3_vl"])
def test_planned_tokens_are_what_the_tiny_model_reads(family):
    import torch
    from transformers import AutoModelForImageTextToText

    from roadbuddy_utils.models.tiny import resolve_model_id

    model = AutoModelForImageTextToText.from_pretrained(resolve_model_id(f"tiny:{family}"), dtype=torch.float32)
    plan = make_plan(f"tiny:{family}", "cpu", n_frames=4, suggest=False)
    with torch.no_grad():
        out = model(**_synthetic_inputs(model.config, plan, "cpu", torch.float32), logits_to_keep=1)
    assert out.logits.shape[1] == 1


@pytest.mark.gpu
def test_planned_memory_bounds_a_real_forward_on_cuda():
    """Qwen2.5-VL-3B with random weights on the GPU: planned weights are what CUDA allocates, and the
    planned activations + KV cache bound the real peak of a likelihood pass (8 frames)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    props = torch.cuda.get_device_properties(0)
    gpu = Device("cuda:0", props.total_memory, (props.major, props.minor), props.name)
    plan = make_plan(cfg("Qwen2.5-VL-3B-Instruct"), [gpu], suggest=False)
    dtype = getattr(torch, resolve_dtype("auto", [gpu])[0])
    base = torch.cuda.memory_allocated()
    with torch.device("cuda"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(cfg("Qwen2.5-VL-3B-Instruct")),
                                                        dtype=dtype).eval()
    model.tie_weights()
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated()
    assert held - base == pytest.approx(plan.weights_bytes, rel=0.02)
    inputs = _synthetic_inputs(model.config, plan, "cuda", dtype)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model(**inputs, logits_to_keep=1)
    peak = torch.cuda.max_memory_allocated() - held
    planned = (plan.activation_gib + plan.kv_cache_gib) * GIB
    assert 0.05 * planned < peak <= planned, (peak / GIB, planned / GIB)


# ---------------------------------------------------------------------------------------------- training
def test_lora_parameters_match_peft_on_the_tiny_model():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from roadbuddy_utils.models.plan import LORA_TARGETS
    from roadbuddy_utils.models.tiny import resolve_model_id

    model = AutoModelForImageTextToText.from_pretrained(resolve_model_id("tiny:qwen2_5_vl"), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=LORA_TARGETS))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    plan = make_plan("tiny:qwen2_5_vl", "cpu", train=True, lora_r=8, suggest=False)
    assert plan.train["trainable_params"] == trainable


def test_training_plan_qlora_and_checkpointing():
    lora = make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", train=True, n_frames=4)
    assert not lora.fits and "quantization: 4bit (QLoRA)" in lora.suggestion
    t = lora.train
    assert t["activations_checkpointed_gib"] < t["activations_gib"] / 5
    assert t["trainable_params"] == pytest.approx(80.7e6, rel=0.01)  # r 32 on 28 layers x 7 projections
    assert t["states_gib"] == pytest.approx(t["trainable_params"] * 16 / GIB, rel=1e-3)  # fp32 w + g + AdamW
    qlora = make_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", train=True, n_frames=4, quantization="4bit",
                      gradient_checkpointing=True, optimizer="paged_adamw_8bit")
    assert qlora.fits and qlora.train["states_gib"] == pytest.approx(t["states_gib"] * 10 / 16, rel=1e-3)


# ---------------------------------------------------------------------------------------------- inputs
def test_gpu_sizes():
    assert [d.total_bytes for d in parse_gpus("15GiB,15GiB")] == [15 * 2 ** 30] * 2
    assert parse_gpus("24GB")[0].total_bytes == 24 * 10 ** 9
    assert [d.name for d in parse_gpus("2x15GiB")] == ["cuda:0", "cuda:1"]
    assert parse_gpus("cpu") == [] and parse_gpus("none") == []


@pytest.mark.parametrize("bad", ["15", "fifteen", "15GiB,", "15 TB", "0GiB", "-3GB"])
def test_bad_gpus_say_the_expected_form(bad):
    with pytest.raises(PlanInputError, match="expected 'auto', 'cpu'"):
        parse_gpus(bad)


def test_dtype_follows_the_compute_capability():
    assert resolve_dtype("auto", [Device("cuda:0", GIB, (7, 5), "T4")])[0] == "float16"
    assert resolve_dtype("auto", [Device("cuda:0", GIB, (8, 6), "3090")])[0] == "bfloat16"
    assert resolve_dtype("auto", [])[0] == "float32"
    assert resolve_dtype("float16", parse_gpus("15GiB")) == ("float16", "float16")


def test_config_files_alone_are_enough(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(CONFIGS / "Qwen3-VL-4B-Instruct", folder)
    plan = make_plan(str(folder), "15GiB", suggest=False)
    assert plan.fits and plan.tokens["visual"] == 760 and not plan.notes
    (folder / "preprocessor_config.json").unlink()
    (folder / "video_preprocessor_config.json").unlink()
    assert "no processor config" in make_plan(str(folder), "15GiB", suggest=False).notes[0]


def test_unsupported_family_names_model_type_and_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(PlanInputError, match=r"model_type 'llava' is not supported; supported: \['internvl'"):
        read_checkpoint(str(tmp_path))


def test_folder_without_config_and_unknown_id_say_the_fix(tmp_path, monkeypatch):
    with pytest.raises(PlanInputError, match="has no config.json"):
        read_checkpoint(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PlanInputError, match="not in the local Hugging Face cache.*pass --model DIR"):
        read_checkpoint("no-such-org/no-such-model")


def test_quantization_is_checked_before_any_weights(tmp_path, monkeypatch):
    import importlib.util

    with pytest.raises(PlanInputError, match="8bit .* needs compute capability >= 7.5"):
        make_plan(cfg("Qwen2.5-VL-3B-Instruct"), [Device("cuda:0", 16 * GIB, (6, 0), "P100")], quantization="8bit")
    conf = json.loads((CONFIGS / "Qwen2.5-VL-3B-Instruct" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(conf | {"quantization_config": {"quant_method": "awq"}}))
    with pytest.raises(PlanInputError, match=r"already quantized \(awq\)"):
        make_plan(str(tmp_path), "15GiB", quantization="4bit")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a))
    with pytest.raises(PlanInputError, match="needs bitsandbytes: pip install"):
        make_plan(cfg("Qwen2.5-VL-3B-Instruct"), "15GiB", quantization="4bit")


# ---------------------------------------------------------------------------------------------- entry points
def test_preflight_passes_tiny_and_stops_a_7b_on_one_t4():
    from roadbuddy_utils.models.config import ModelConfig

    assert preflight(ModelConfig("tiny:internvl"), gpus="cpu").fits
    with pytest.raises(MemoryPlanError, match="quantization: 4bit") as err:
        preflight(ModelConfig(cfg("Qwen2.5-VL-7B-Instruct")), gpus="15GiB")
    assert isinstance(err.value, RuntimeError) and not err.value.plan.fits
    assert preflight(ModelConfig(cfg("Qwen2.5-VL-7B-Instruct"), device_map="auto"), gpus="15GiB,15GiB").fits


def test_cli_json_is_one_object_with_the_keys(capsys):
    from roadbuddy_utils.__main__ import main

    assert main(["plan", "--model", cfg("Qwen2.5-VL-7B-Instruct"), "--gpus", "15GiB", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"n_params", "weights_gib", "per_device_gib", "activation_gib", "fits", "suggestion"} <= set(out)
    assert out["fits"] is False and out["suggestion"]
    assert main(["plan", "--model", "tiny:internvl", "--gpus", "cpu"]) == 0
    assert "fits" in capsys.readouterr().out


def test_cli_bad_input_exits_2(capsys):
    from roadbuddy_utils.__main__ import main

    assert main(["plan", "--model", cfg("Qwen2.5-VL-7B-Instruct"), "--gpus", "lots"]) == 2
    assert "expected 'auto'" in capsys.readouterr().err


def test_fits_table_rows():
    table = fits_table([cfg("Qwen2.5-VL-7B-Instruct")], quantizations=("none", "4bit"))
    rows = table.splitlines()
    assert rows[0].startswith("| model | precision | T4") and len(rows) == 4
    cells = [c.strip().split()[0] for c in rows[2].split("|")[3:-1]]
    assert cells == ["no", "yes", "yes", "yes"] and rows[3].split("|")[3].strip().startswith("yes")


def test_vlm_load_stops_with_the_plan_before_any_weights_are_read(monkeypatch):
    """On a GPU too small for the checkpoint, VLM.load raises the planner's message instead of a CUDA
    out-of-memory error after the download (a T4-sized GPU faked; from_pretrained must never run)."""
    import torch
    import transformers

    from roadbuddy_utils.machine import hardware
    from roadbuddy_utils.models import checkpoint, vlm
    from roadbuddy_utils.models.config import ModelConfig
    from roadbuddy_utils.models.plan import MemoryPlanError

    def no_weights(*a, **k):
        raise AssertionError("weights were read before the memory plan")

    monkeypatch.setattr(vlm, "resolve_device", lambda cfg: torch.device("cuda", 0))
    monkeypatch.setattr(hardware, "device_capability", lambda *a, **k: (7, 5))
    monkeypatch.setattr(checkpoint, "detect_gpus", lambda: checkpoint.parse_gpus("15GiB"))
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", no_weights)
    with pytest.raises(MemoryPlanError, match=r"quantization: 4bit"):
        vlm.VLM.load(ModelConfig(str(CONFIGS / "Qwen2.5-VL-7B-Instruct"), dtype="auto"))


def test_qlora_plan_counts_the_float32_upcast_of_the_unquantized_weights():
    """prepare_model_for_kbit_training makes the 16-bit weights outside the 4-bit layers float32: the plan
    of a QLoRA run holds them at 4 bytes each, inference at 2."""
    from roadbuddy_utils.models.plan import make_plan

    m = str(CONFIGS / "Qwen2.5-VL-7B-Instruct")
    infer = make_plan(m, "15GiB", quantization="4bit")
    train = make_plan(m, "15GiB", quantization="4bit", train=True, gradient_checkpointing=True)
    extra = train.weights_gib - infer.weights_gib
    assert 2.5 < extra < 4.0 and any("float32" in n for n in train.notes)  # ~1.8 B params x 2 bytes more

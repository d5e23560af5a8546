"""Settings that follow the hardware: dtype / attention decisions, machine detection, presets (no GPU needed)."""
import json
import warnings

import pytest

from roadbuddy_utils.machine import hardware
from roadbuddy_utils.machine.hardware import (
    GPU,
    PROFILES,
    Machine,
    UnsupportedGPU,
    check_quantization,
    parse_size,
    preset,
    resolve_attn,
    resolve_dtype,
    resolve_optim,
    resolve_settings,
    train_precision,
)

T4, V100, A100, RTX3090, P100 = (7, 5), (7, 0), (8, 0), (8, 6), (6, 0)


@pytest.mark.parametrize("cap,want", [(None, "float32"), (T4, "float16"), (V100, "float16"), (A100, "bfloat16"),
                                      (RTX3090, "bfloat16"), ((9, 0), "bfloat16")])
def test_auto_dtype_by_compute_capability(cap, want):
    assert resolve_dtype("auto", cap) == want


def test_bfloat16_below_8_warns_it_is_emulated_and_is_kept():
    with pytest.warns(UserWarning, match="emulated.*float16 or auto"):
        assert resolve_dtype("bfloat16", T4) == "bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning where bf16 is native, or for float16 on a T4
        assert resolve_dtype("bfloat16", A100) == "bfloat16" and resolve_dtype("float16", T4) == "float16"
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("half", T4)


def test_is_bf16_supported_is_not_consulted(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 reports
    assert resolve_dtype("auto", T4) == "float16"


@pytest.mark.parametrize("cap,dtype,flash,want", [
    (T4, "float16", True, "sdpa"),  # FlashAttention-2 is Ampere+ only
    (A100, "bfloat16", True, "flash_attention_2"),
    (A100, "bfloat16", False, "sdpa"),  # package not installed
    (A100, "float32", True, "sdpa"),  # FA2 runs in 16 bit only
    (None, "float32", True, "sdpa"),
])
def test_auto_attention(cap, dtype, flash, want):
    assert resolve_attn("auto", cap, dtype, flash_available=flash) == want


def test_explicit_attention_is_kept_or_refused_clearly():
    assert resolve_attn(None, T4) is None  # the library default
    assert resolve_attn("eager", T4, "float16", flash_available=False) == "eager"
    with pytest.raises(ValueError, match="compute capability >= 8.0"):
        resolve_attn("flash_attention_2", T4, "float16", flash_available=True)
    with pytest.raises(ValueError, match="pip install flash-attn"):
        resolve_attn("flash_attention_2", A100, "bfloat16", flash_available=False)


def test_quantization_checks_before_loading():
    check_quantization("4bit", T4, bnb_available=True)
    check_quantization("8bit", None, bnb_available=True)  # bitsandbytes 0.50 runs int8 on the CPU
    with pytest.raises(ImportError, match="pip install bitsandbytes==0.50.2"):
        check_quantization("4bit", T4, bnb_available=False)
    with pytest.raises(ValueError, match="8bit.*>= 7.5.*4bit"):
        check_quantization("8bit", V100, bnb_available=True)
    with pytest.raises(ValueError, match="quantization must be one of"):
        check_quantization("nf4", T4, bnb_available=True)


def test_training_precision_and_optimizer():
    assert train_precision("auto", "auto", T4) == {"bf16": False, "fp16": True}
    assert train_precision("auto", "auto", A100) == {"bf16": True, "fp16": False}
    assert train_precision("auto", "auto", None) == {"bf16": False, "fp16": False}
    assert train_precision(False, True, A100) == {"bf16": False, "fp16": True}  # explicit wins
    with pytest.raises(ValueError, match="both on"):
        train_precision(True, True, A100)
    with pytest.raises(ValueError, match="fp16 mixed precision needs a GPU"):
        train_precision("auto", True, None)
    assert resolve_optim("auto", "4bit", on_cuda=True, bnb_available=True) == "paged_adamw_8bit"
    assert resolve_optim("auto", "4bit", on_cuda=False, bnb_available=True) == "adamw_torch_fused"
    assert resolve_optim("auto", "none", on_cuda=True, bnb_available=True) == "adamw_torch_fused"
    assert resolve_optim("sgd", "4bit", on_cuda=True) == "sgd"


def test_p100_is_a_clear_error():
    p100 = Machine("kaggle", [GPU("Tesla P100-PCIE-16GB", P100, 15.9, 15.6)], 31, 29, "cpu", 4)
    with pytest.raises(UnsupportedGPU, match="P100.*6.0.*sm_60.*T4 x2"):
        preset(machine=p100)


# ------------------------------------------------------------------------------------------------ detection
def test_detect_on_this_machine_is_local_cpu_and_json_safe(monkeypatch):
    import torch

    for var in ("KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG", "COLAB_GPU"):
        monkeypatch.delenv(var, raising=False)
    m = hardware.detect()
    assert m.env == "local" and m.cores >= 1 and m.cpu
    assert 0 < m.ram_available_gib <= m.ram_total_gib
    if not torch.cuda.is_available():
        assert m.gpus == [] and m.capability is None
    d = json.loads(json.dumps(hardware.describe(m)))
    assert d["env"] == "local" and d["torch"] == torch.__version__ and "bitsandbytes" in d


def test_ram_without_psutil_reads_proc_meminfo(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_psutil(name, *a, **k):
        if name == "psutil":
            raise ImportError("no psutil")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    total, avail = hardware.ram_gib()
    assert 0 < avail <= total


@pytest.mark.parametrize("env,want", [({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "kaggle"),
                                      ({"COLAB_RELEASE_TAG": "release-colab_20261101-060117_RC00"}, "colab"),
                                      ({"COLAB_GPU": "1"}, "colab"), ({}, "local")])
def test_environment_from_its_variables(monkeypatch, env, want):
    for var in ("KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG", "COLAB_GPU"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert hardware.detect_env() == want
    assert hardware.detect().env == want


def test_capability_is_the_lowest_gpu():
    m = Machine("local", [GPU("A100", A100, 79, 79), GPU("T4", T4, 14.7, 14.7)])
    assert m.capability == T4 and GPU("A100", A100, 79).bf16_native and not GPU("T4", T4, 14.7).bf16_native


# ------------------------------------------------------------------------------------------------ presets
def test_preset_t4x2_spreads_float16_over_both():
    s = preset("t4x2", "Qwen/Qwen2.5-VL-7B-Instruct")
    assert (s["dtype"], s["device_map"], s["quantization"], s["attn_implementation"]) == ("float16", "auto", "none", "sdpa")
    assert s["fp16"] and not s["bf16"] and "spread" in s["why"]
    t = preset("t4x2", "8B", task="train")  # one process per GPU holds the whole model: QLoRA
    assert (t["quantization"], t["device_map"], t["optim"], t["gradient_checkpointing"]) == \
        ("4bit", None, "paged_adamw_8bit", True)


def test_preset_one_t4_is_4bit_unless_the_model_is_small():
    s = preset("t4")  # no size hint: a 7-8 B model
    assert (s["dtype"], s["quantization"], s["device_map"]) == ("float16", "4bit", None)
    small = preset("t4", "OpenGVLab/InternVL3-2B-hf")
    assert (small["quantization"], small["dtype"]) == ("none", "float16")


def test_preset_24gb_is_bfloat16_on_one_device_and_cpu_is_float32():
    s = preset("24gb", "OpenGVLab/InternVL3-8B-hf")
    assert (s["dtype"], s["device_map"], s["quantization"], s["bf16"], s["fp16"]) == ("bfloat16", None, "none", True, False)
    assert preset("24gb", "8B", task="train")["gradient_checkpointing"]  # 15 GiB of weights on 24 GB
    c = preset("cpu")
    assert (c["dtype"], c["quantization"], c["device_map"], c["bf16"], c["fp16"]) == ("float32", "none", None, False, False)


def test_preset_warns_when_nothing_fits():
    with pytest.warns(UserWarning, match="does not fit.*even in 4-bit"):
        s = preset("t4x2", "Qwen/Qwen2.5-VL-72B-Instruct")
    assert s["quantization"] == "4bit" and s["device_map"] == "auto"
    assert preset("a100", "72B")["quantization"] == "4bit"


def test_preset_auto_follows_a_given_machine():
    t4 = Machine("colab", [GPU("Tesla T4", T4, 14.74, 14.5)], 12.7, 11, "cpu", 2)
    assert preset("auto", "7B", machine=t4)["quantization"] == "4bit"
    with pytest.raises(ValueError, match="unknown hardware preset 'h100'"):
        preset("h100")


def test_parse_size():
    assert parse_size("Qwen/Qwen2.5-VL-72B-Instruct") == 72 and parse_size("OpenGVLab/InternVL3-8B-hf") == 8
    assert parse_size(4.4) == 4.4 and parse_size("Qwen/Qwen3-VL-4B-Instruct") == 4
    assert parse_size("tiny:internvl") < 0.01 and parse_size(None) == hardware.DEFAULT_SIZE_B


def test_explicit_settings_win_over_the_preset():
    s = resolve_settings({"dtype": "auto", "quantization": "8bit", "device_map": None, "n_frames": 8}, preset="t4",
                         model_size_hint="7B")
    assert s["quantization"] == "8bit" and s["dtype"] == "float16" and s["n_frames"] == 8  # unknown keys pass
    assert resolve_settings({"quantization": "none"}, preset="t4")["quantization"] == "none"
    with pytest.warns(UserWarning, match="emulated"):
        assert resolve_settings({"dtype": "bfloat16"}, preset="t4x2")["dtype"] == "bfloat16"
    assert resolve_settings({"dtype": "auto"}, preset="none") == {"dtype": "auto"}
    assert set(hardware.MODEL_KEYS) <= set(preset("cpu")) and set(hardware.TRAIN_KEYS) <= set(preset("cpu"))
    assert set(PROFILES) == {"cpu", "t4", "t4x2", "24gb", "a100"}

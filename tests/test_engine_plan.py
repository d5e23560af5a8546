"""The vLLM engine's memory plan on the real architectures (config files only), the presets' engine entry, the CLI,
and the preflight that stops ``EngineVLM.start`` before anything is spawned. Fast: no engine, no weights.

    /work/main/.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_engine_plan.py
"""
import json
import math
from pathlib import Path

import pytest

from roadbuddy_utils.machine import hardware
from roadbuddy_utils.machine.hardware import GPU, PROFILES, Machine, preset
from roadbuddy_utils.models.checkpoint import GIB, PlanInputError
from roadbuddy_utils.models.engine_plan import BLOCK_TOKENS, engine_plan

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def cfg(name: str) -> str:
    return str(CONFIGS / name)


def text_config(name: str) -> dict:
    c = json.loads((CONFIGS / name / "config.json").read_text())
    return c.get("text_config") or c.get("llm_config") or c


def kv_per_token(name: str, tp: int, elt: int = 2) -> int:
    t = text_config(name)
    hd = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
    return 2 * t["num_hidden_layers"] * max(1, t["num_key_value_heads"] // tp) * hd * elt


# ---------------------------------------------------------------------------------------------- where it fits
def test_7b_in_16_bit_does_not_fit_one_t4_and_the_suggestion_names_4bit_or_tp_2():
    p = engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", gpu_memory_utilization=0.9)
    assert not p.fits and p.tensor_parallel_size == 1 and p.kv_pool_bytes < 0
    assert p.budget_gib == pytest.approx(13.5, abs=0.01) and p.weights_gib == pytest.approx(15.45, abs=0.05)
    assert any("No available memory for the cache blocks" in r for r in p.reasons)
    assert "quantization: 4bit" in p.suggestion and "tensor_parallel_size: 2 over two 15 GiB GPUs" in p.suggestion
    assert "fits" in p.report() and "NO" in p.report()


def test_tp_2_over_two_t4s_fits_with_half_the_weights_on_each():
    one = engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", suggest=False)
    two = engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB,15GiB")
    assert two.fits and two.tensor_parallel_size == 2 and two.suggestion == ""
    assert 0.49 < two.weights_gib / two.weights_total_gib < 0.52  # norms, biases, the patch convolution replicated
    assert two.weights_total_gib == one.weights_total_gib
    assert two.kv_bytes_per_token == kv_per_token("Qwen2.5-VL-7B-Instruct", 2) == 28 * 1024  # 2 of 4 KV heads
    assert two.activation_gib < one.activation_gib  # the MLPs and the vision tower are split too
    assert 1.0 < two.kv_pool_gib < 6.0 and two.kv_tokens > 30_000
    assert two.prompts_in_pool >= 16 and two.prompts_at_once == 16  # max_num_seqs bounds what runs together
    assert two.tokens["visual"] == 1008  # this question's prompt, as the HF plan counts it


def test_kv_tokens_are_the_pool_over_the_bytes_per_token_and_scale_with_utilization():
    name = "Qwen2.5-VL-7B-Instruct"
    low = engine_plan(cfg(name), "24GB", gpu_memory_utilization=0.85, suggest=False)
    high = engine_plan(cfg(name), "24GB", gpu_memory_utilization=0.95, suggest=False)
    total = 24 * 10 ** 9
    for p, u in ((low, 0.85), (high, 0.95)):
        assert p.budget_gib == pytest.approx(math.ceil(total * u) / GIB, abs=1e-3)
        assert p.kv_bytes_per_token == kv_per_token(name, 1) == 2 * 28 * 4 * 128 * 2
        assert p.kv_tokens == p.kv_pool_bytes // (p.kv_bytes_per_token * BLOCK_TOKENS) * BLOCK_TOKENS
        assert p.kv_tokens <= p.kv_pool_bytes / p.kv_bytes_per_token < p.kv_tokens + BLOCK_TOKENS
    # weights, activations and overhead do not depend on the utilization: the pool grows by exactly the budget
    assert high.kv_pool_bytes - low.kv_pool_bytes == math.ceil(total * 0.95) - math.ceil(total * 0.85)
    assert high.weights_gib == low.weights_gib and high.activation_gib == low.activation_gib


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    name = "Qwen2.5-VL-3B-Instruct"  # 16 heads, 2 KV heads
    assert text_config(name)["num_key_value_heads"] == 2
    p2 = engine_plan(cfg(name), "4x15GiB", tensor_parallel_size=2, suggest=False)
    p4 = engine_plan(cfg(name), "4x15GiB", tensor_parallel_size=4, suggest=False)
    assert p2.kv_bytes_per_token == p4.kv_bytes_per_token == kv_per_token(name, 4) == 2 * 36 * 1 * 128 * 2
    assert p4.weights_gib < p2.weights_gib


def test_a_tp_that_does_not_divide_the_heads_names_the_valid_sizes():
    heads = text_config("Qwen2.5-VL-7B-Instruct")["num_attention_heads"]
    assert heads == 28 and heads % 8
    with pytest.raises(PlanInputError, match=r"tensor_parallel_size 8: .*28 attention heads.*choose one of \[1, 2, 4\]"):
        engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "8x15GiB", tensor_parallel_size=8)
    with pytest.raises(PlanInputError, match="needs 2 GPUs; 1 given"):
        engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", tensor_parallel_size=2)
    with pytest.raises(PlanInputError, match="4-bit only"):
        engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB", quantization="8bit")


@pytest.mark.parametrize("name", ["InternVL3-8B-hf", "Qwen3-VL-8B-Instruct"])
def test_internvl3_8b_and_qwen3_vl_8b_plan_too(name):
    one = engine_plan(cfg(name), "15GiB")
    assert not one.fits and "4bit" in one.suggestion
    two = engine_plan(cfg(name), "15GiB,15GiB")
    assert two.fits and two.kv_bytes_per_token == kv_per_token(name, 2)
    assert 0.49 < two.weights_gib / two.weights_total_gib < 0.53
    four = engine_plan(cfg(name), "15GiB", quantization="4bit")
    assert four.fits and four.weights_gib < 0.5 * one.weights_gib
    # vLLM splits Qwen's vision heads (16) too, InternVL-hf's vision attention stays whole
    assert two.valid_tensor_parallel_sizes == ([1, 2, 4, 28] if name.startswith("InternVL") else [1, 2, 4, 8, 16])


def test_internvl_vision_attention_is_replicated_qwen_vision_is_split():
    intern = engine_plan(cfg("InternVL3-8B-hf"), "15GiB,15GiB", suggest=False)
    qwen = engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB,15GiB", suggest=False)
    # InternVL-hf's vision attention and projector are plain nn.Linear in vLLM: more than half stays on each rank
    assert intern.weights_gib / intern.weights_total_gib > qwen.weights_gib / qwen.weights_total_gib
    assert qwen.valid_tensor_parallel_sizes == [1, 2, 4]  # 28 heads, 4 KV heads, 16 vision heads


def test_a_pool_below_one_max_model_len_sequence_suggests_a_shorter_one():
    p = engine_plan(cfg("Qwen3-VL-8B-Instruct"), "24GB")
    assert p.kv_pool_bytes > 0 and not p.fits
    assert any("To serve at least one request with the model's max seq len (8192)" in r for r in p.reasons)
    assert "max_model_len:" in p.suggestion
    assert engine_plan(cfg("Qwen3-VL-8B-Instruct"), "24GB", max_model_len=4096).fits


def test_a_prompt_longer_than_max_model_len_does_not_fit():
    p = engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), "15GiB,15GiB", max_model_len=1024, suggest=False)
    assert not p.fits and any("longer than max_model_len 1024" in r for r in p.reasons)


def test_less_free_memory_than_the_budget_is_refused_as_vllm_does():
    busy = Machine("local", [GPU("Tesla T4", (7, 5), 14.74, 9.0), GPU("Tesla T4", (7, 5), 14.74, 14.5)], 31, 29)
    p = engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), busy, suggest=False)
    assert p.tensor_parallel_size == 2 and p.dtype == "float16" and p.devices == ["Tesla T4", "Tesla T4"]
    assert not p.fits and any("less than desired GPU memory utilization" in r for r in p.reasons)
    assert engine_plan(cfg("Qwen2.5-VL-7B-Instruct"), PROFILES["t4x2"]).fits


def test_cpu_plan_of_a_tiny_model_is_one_worker_in_ram():
    p = engine_plan("tiny:qwen2_5_vl", "cpu")
    total, avail = hardware.ram_gib()
    assert p.tensor_parallel_size == 1 and p.devices == ["cpu"] and p.enforce_eager and p.dtype == "float32"
    assert p.gpu_memory_utilization == hardware.engine_defaults(0, total, avail)["gpu_memory_utilization"] <= 0.25
    assert p.budget_gib == pytest.approx(math.ceil(total * GIB * p.gpu_memory_utilization) / GIB, abs=1e-3)
    assert p.fits and p.kv_tokens > 0 and p.kv_bytes_per_token == kv_per_token_tiny(p)
    with pytest.raises(PlanInputError, match="on the CPU"):
        engine_plan("tiny:qwen2_5_vl", "cpu", tensor_parallel_size=2)


def kv_per_token_tiny(p) -> int:
    from roadbuddy_utils.models.checkpoint import read_checkpoint
    from roadbuddy_utils.models.plan import _lm_dims

    d = _lm_dims(read_checkpoint(p.model).config)
    return 2 * d["N"] * d["kv"] * d["hd"] * 4  # float32 on the CPU


# ---------------------------------------------------------------------------------------------- presets and CLI
def test_presets_carry_the_engine_reservation_and_engine_config_takes_it():
    from roadbuddy_utils.engine.client import EngineConfig
    from roadbuddy_utils.models.config import ModelConfig

    assert preset("t4x2")["engine"] == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.9,
                                        "enforce_eager": False}
    assert preset("a100")["engine"]["tensor_parallel_size"] == 1
    assert preset("cpu")["engine"] == {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.25, "enforce_eager": True}
    path = cfg("Qwen2.5-VL-7B-Instruct")
    s = EngineConfig().settings(path, ModelConfig(model=path), None, machine=PROFILES["t4x2"])
    assert (s["tensor_parallel_size"], s["gpu_memory_utilization"], s["enforce_eager"], s["dtype"],
            s["max_model_len"]) == (2, 0.9, False, "float16", 8192)
    s = EngineConfig(tensor_parallel_size=1, gpu_memory_utilization=0.8).settings(path, ModelConfig(model=path), None,
                                                                                   machine=PROFILES["cpu"])
    assert (s["tensor_parallel_size"], s["gpu_memory_utilization"], s["enforce_eager"]) == (1, 0.8, True)


def test_cli_prints_the_engine_report_and_json(capsys):
    from roadbuddy_utils.__main__ import main

    m = cfg("Qwen2.5-VL-7B-Instruct")
    assert main(["plan", "--model", m, "--gpus", "15GiB,15GiB", "--backend", "vllm"]) == 0
    out = capsys.readouterr().out
    assert "through vLLM" in out and "KV cache" in out and "tensor_parallel_size 2" in out and "fits         yes" in out
    assert main(["plan", "--model", m, "--gpus", "24GB", "--backend", "vllm", "--tensor-parallel-size", "1",
                 "--gpu-memory-utilization", "0.8", "--max-model-len", "4096", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["tensor_parallel_size"], d["gpu_memory_utilization"], d["max_model_len"]) == (1, 0.8, 4096)
    assert {"kv_pool_gib", "kv_tokens", "kv_bytes_per_token", "fits", "suggestion", "weights_gib"} <= set(d)
    assert main(["plan", "--model", m, "--gpus", "15GiB", "--json"]) == 0  # backend hf: today's plan
    assert "device_map" in json.loads(capsys.readouterr().out)
    assert main(["plan", "--model", m, "--gpus", "8x15GiB", "--backend", "vllm", "--tensor-parallel-size", "8"]) == 2
    assert "choose one of [1, 2, 4]" in capsys.readouterr().err
    assert main(["plan", "--model", m, "--backend", "vllm", "--train"]) == 2


# ---------------------------------------------------------------------------------------------- the preflight
def test_engine_start_refuses_a_too_small_gpu_before_spawning(monkeypatch):
    import subprocess

    from roadbuddy_utils.engine import client
    from roadbuddy_utils.models.config import ModelConfig

    def no_spawn(*a, **k):
        raise AssertionError("the engine was spawned")

    monkeypatch.setattr(hardware, "detect", lambda: PROFILES["t4"])  # plan for a machine we are not on
    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    with pytest.raises(client.EngineError) as e:
        client.EngineVLM.start(ModelConfig(model=cfg("Qwen2.5-VL-7B-Instruct")), {"python": "/nonexistent/python"})
    assert e.value.engine_start and "does not fit the engine" in str(e.value)
    assert "quantization: 4bit" in str(e.value) and "Tesla T4" in str(e.value)
    monkeypatch.setattr(hardware, "detect", lambda: Machine("local", [GPU("T4", (7, 5), 14.74, 14.7)] * 8, 31, 29))
    with pytest.raises(client.EngineError, match=r"choose one of \[1, 2, 4\]") as e:
        client.EngineVLM.start(ModelConfig(model=cfg("Qwen2.5-VL-7B-Instruct")), {"python": "/nonexistent/python"})
    assert e.value.engine_start


def test_preflight_records_on_a_fitting_gpu_and_never_stops_the_cpu():
    from roadbuddy_utils.engine.client import EngineConfig, preflight
    from roadbuddy_utils.models.config import ModelConfig

    path = cfg("Qwen2.5-VL-7B-Instruct")
    mc = ModelConfig(model=path)
    ec = EngineConfig()
    plan = preflight(path, mc, ec, ec.settings(path, mc, None, machine=PROFILES["t4x2"]), PROFILES["t4x2"])
    assert plan["fits"] and plan["tensor_parallel_size"] == 2
    ec = EngineConfig(gpu_memory_utilization=1e-6)  # 06's failing engine on the CPU: vLLM itself must say so
    plan = preflight(path, mc, ec, ec.settings(path, mc, None, machine=PROFILES["cpu"]), PROFILES["cpu"])
    assert plan["fits"] is False and plan["devices"] == ["cpu"]
    ec = EngineConfig(extra={"pipeline_parallel_size": 2})  # settings the plan does not model: recorded only
    plan = preflight(path, mc, ec, ec.settings(path, mc, None, machine=PROFILES["t4"]), PROFILES["t4"])
    assert plan["fits"] is False
    assert preflight(path, mc, EngineConfig(preflight=False), {}, PROFILES["t4"]) is None


def test_06_falls_back_at_once_when_the_large_engine_cannot_fit(monkeypatch):
    from roadbuddy_utils.multiview.run import ModelRegistry, ModelUnavailable, model_configs

    monkeypatch.setattr(hardware, "detect", lambda: PROFILES["t4"])
    reg = ModelRegistry(model_configs({"small": "tiny:qwen2_5_vl", "large": cfg("Qwen2.5-VL-7B-Instruct")}),
                        backend="vllm", engines={"large": {"python": "/nonexistent/python"}})
    with pytest.raises(ModelUnavailable) as e:
        reg.get("large")
    assert e.value.oom and "does not fit the engine" in reg.stats["large"]["load_error"]

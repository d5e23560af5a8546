"""benchmarks/gpu_check.py and models/random_init.py: every phase runs on tiny models on the CPU; the full-size
path (models from the real configs, real-size tokenizers and processors) is checked without a GPU."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from roadbuddy_utils.models.config import ModelConfig
from roadbuddy_utils.models.random_init import checkpoint_folder, quantize_4bit, random_vlm, real_size_tokenizer
from roadbuddy_utils.models.vlm import VLM

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "fixtures" / "configs"
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gc)

# published sizes (tests/fixtures/configs/SOURCES.md) and the visual tokens of 8 frames under the 448 x 448
# budget measured with the real processors (shared/reference/hardware.md)
FULL = {"InternVL3-8B-hf": (7.9444e9, 2048), "Qwen2.5-VL-7B-Instruct": (8.2922e9, 1008),
        "Qwen3-VL-8B-Instruct": (8.7671e9, 760)}


def _ok_number(d: dict, *keys):
    for k in keys:
        assert isinstance(d[k], (int, float)) and d[k] >= 0, (k, d)


def test_tiny_run_measures_every_phase_of_every_family(tmp_path):
    out, md = tmp_path / "gc.json", tmp_path / "RESULTS.md"
    md.write_text("# Measured results\n\n## Frame sampling\nkept as it is\n", encoding="utf-8")
    rc = gc.main(["--size", "tiny", "--batches", "1,2", "--repeats", "1", "--new-tokens", "4", "--json", str(out),
                  "--results", str(md), "--write-results"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert [(r["model"], r["precision"]) for r in res["runs"]] == [
        (f"tiny:{f}", p) for f in ("internvl", "qwen2_5_vl", "qwen3_vl") for p in ("float32", "4bit")]
    for run in res["runs"]:
        ph = run["phases"]
        assert list(ph) == list(gc.PHASES) and all(v["status"] == "ok" for v in ph.values()), run
        _ok_number(ph["build"], "seconds", "n_params")
        assert ph["build"]["quantization"] == ("4bit" if run["precision"] == "4bit" else "none")
        _ok_number(ph["plan"], "weights_gib", "inference_peak_gib", "train_peak_gib")
        assert ph["tokens"]["visual_tokens"] > 0 and ph["tokens"]["prompt_tokens"] > ph["tokens"]["visual_tokens"]
        for scoring in ("likelihood", "generate"):
            batches = ph[scoring]["batches"]
            assert set(batches) == {"1", "2"} and ph[scoring]["best_batch"] in (1, 2)
            for b in batches.values():
                _ok_number(b, "s_per_question_p50", "s_per_question_p95")
                assert b["peak_gib"] is None and "CUDA" in b["peak_note"]  # the CPU keeps no allocator peak
        assert ph["likelihood"]["batches"]["1"]["error_rows"] == 0
        tr = ph["train"]
        assert tr["kind"] == ("qlora" if run["precision"] == "4bit" else "lora") and tr["trainable_params"] > 0
        assert np.isfinite(tr["loss"]) and tr["seconds"] > 0 and tr["precision"]["gradient_checkpointing"]
    assert all(t["verdict"] == "—" and "tiny" in t["measured"] for t in res["targets"])
    text = md.read_text()
    assert "## Frame sampling\nkept as it is\n" in text and text.count(gc.BEGIN) == 1
    assert "| tiny:qwen3_vl | 4bit |" in text and "qlora" in text
    assert gc.PENDING["full"] in text  # no full-size figures yet: the section says so
    again = tmp_path / "again.md"  # the block re-rendered from the saved JSON alone is the same
    assert gc.main(["--from-json", str(out), "--results", str(again), "--write-results"]) == 0
    block = lambda t: t.split("<!-- gpu_check:tiny:begin -->")[1].split("<!-- gpu_check:tiny:end -->")[0]  # noqa: E731
    assert block(again.read_text()) == block(text)


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_model_tokenizer_and_processor_without_a_gpu(name, tmp_path):
    """The full-size construction path on the meta device: the real parameter count, 4-bit layers outside
    the vision side, the config's vocabulary and special-token ids, and the real visual token count."""
    n_params, visual = FULL[name]
    src = str(CONFIGS / name)
    vlm, info = random_vlm(src, ModelConfig(src, device="meta", dtype="bfloat16", quantization="4bit"),
                           work_dir=tmp_path / name)
    assert abs(info["n_params"] - n_params) / n_params < 1e-3
    assert vlm.model.get_input_embeddings().weight.dtype == torch.bfloat16 and info["device"] == "meta"
    four = [n for n, m in vlm.model.named_modules() if type(m).__name__ == "Linear4bit"]
    assert four and all("language_model" in n for n in four)  # vision tower, projector, lm_head stay 16-bit
    tok, config = vlm.processor.tokenizer, vlm.model.config
    assert len(tok) == config.get_text_config().vocab_size
    assert tok.convert_tokens_to_ids("<|im_end|>") == 151645
    image = "<IMG_CONTEXT>" if config.model_type == "internvl" else "<|image_pad|>"
    assert tok.convert_tokens_to_ids(image) == config.image_token_id
    if config.model_type != "internvl":
        assert tok.convert_tokens_to_ids("<|video_pad|>") == config.video_token_id
    assert sorted(vlm.letter_ids.values()) == list(range(32, 40))  # A-H single tokens, as in the Qwen2 vocabulary
    text_ids = tok.encode("Đèn tín hiệu giao thông phía trước đang có màu gì? A. Đỏ", add_special_tokens=False)
    assert all(not tok.convert_ids_to_tokens(i).startswith("<|filler_") for i in text_ids)
    tokens = gc.count_tokens(vlm, gc.make_examples(1, 8, 448 * 448)[0], 8)
    assert tokens["visual_tokens"] == visual == tokens["reference_visual_tokens"]
    assert tokens["matches_planner"]


def test_in_memory_4bit_equals_from_pretrained_4bit():
    """quantize_4bit makes the same NF4 layers and codes as a 4-bit VLM.load of the same weights."""
    loaded = VLM.load(ModelConfig("tiny:qwen2_5_vl", quantization="4bit", device="cpu"))
    cfg = ModelConfig("tiny:qwen2_5_vl", quantization="4bit", device="cpu")
    ours = quantize_4bit(VLM.load(ModelConfig("tiny:qwen2_5_vl", device="cpu")).model, cfg, torch.float32)
    a = {n: m for n, m in loaded.model.named_modules() if type(m).__name__ == "Linear4bit"}
    b = {n: m for n, m in ours.named_modules() if type(m).__name__ == "Linear4bit"}
    assert a and set(a) == set(b)
    for n in a:
        wa, wb = a[n].weight, b[n].weight
        assert torch.equal(wa.data, wb.data) and torch.equal(wa.quant_state.absmax, wb.quant_state.absmax), n
        assert wb.quant_state.nested and wb.quant_type == "nf4" and b[n].compute_dtype == torch.float32
    assert ours.is_loaded_in_4bit and ours.config.quantization_config.load_in_4bit


def test_real_size_tokenizer_rejects_ids_outside_the_vocabulary(tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(CONFIGS / "Qwen2.5-VL-7B-Instruct")
    config.get_text_config().vocab_size = 151000  # smaller than the special tokens' ids
    with pytest.raises(ValueError, match="fall outside ids .*vocab_size"):
        real_size_tokenizer("qwen2_5_vl", config, tmp_path)


def test_checkpoint_folder_needs_processor_files(tmp_path):
    from roadbuddy_utils.models.checkpoint import PlanInputError

    (tmp_path / "config.json").write_text((CONFIGS / "Qwen3-VL-8B-Instruct" / "config.json").read_text())
    with pytest.raises(PlanInputError, match="no processor config"):
        checkpoint_folder(str(tmp_path), tmp_path / "out")


class _FakeVLM:
    """Answers batches up to ``limit`` and runs out of memory above it."""

    def __init__(self, limit, oom=True):
        self.limit, self.oom, self.calls = limit, oom, []

    def answer(self, chunk, scoring):
        self.calls.append(len(chunk))
        if len(chunk) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") if self.oom else \
                RuntimeError("shape mismatch")
        return [{"error": None}] * len(chunk)


def test_batches_stop_at_the_first_out_of_memory_and_errors_are_recorded():
    meter = gc.Meter("cpu")
    fake = _FakeVLM(limit=2)
    out = gc.time_scoring(fake, list(range(8)), "likelihood", [1, 2, 4, 8], 2, 16, meter)
    assert [out["batches"][b]["status"] for b in ("1", "2", "4")] == ["ok", "ok", "oom"] and "8" not in out["batches"]
    assert "out of memory" in out["batches"]["4"]["error"] and out["best_batch"] in (1, 2)
    assert 8 not in fake.calls
    other = gc.time_scoring(_FakeVLM(limit=1, oom=False), list(range(8)), "likelihood", [1, 2, 4], 1, 16, meter)
    assert [other["batches"][b]["status"] for b in ("1", "2", "4")] == ["ok", "error", "error"]  # not OOM: go on
    record = {}
    gc.run_phase(record, "likelihood", lambda: gc.time_scoring(_FakeVLM(limit=0), [1], "likelihood", [1], 1, 16, meter))
    gc.run_phase(record, "generate", lambda: gc.time_scoring(_FakeVLM(0, oom=False), [1], "likelihood", [1], 1, 16, meter))
    gc.run_phase(record, "train", lambda: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory")))
    assert record["likelihood"]["status"] == "oom" and "every batch failed" in record["likelihood"]["error"]
    assert record["generate"]["status"] == "error" and "shape mismatch" in record["generate"]["error"]
    assert record["train"]["status"] == "oom" and record["train"]["wall_s"] >= 0


def _results(gpu, runs, size="full", frames=8):
    gpus = [{"name": gpu, "capability": [9, 0], "total_gib": 139.8}] if gpu else []
    return {"size": size, "frames": frames, "machine": {"gpus": gpus}, "runs": runs}


def _run(model, precision, n_params, p95=None, peak=None):
    ph = {"build": {"status": "ok", "n_params": n_params}}
    if p95 is not None:
        ph["likelihood"] = ph["generate"] = {"status": "ok", "batches": {"1": {"status": "ok", "s_per_question_p95": p95}}}
    if peak is not None:
        ph["train"] = {"status": "ok", "peak_gib": peak} if peak != "oom" else {"status": "oom", "error": "OOM"}
    return {"model": model, "precision": precision, "phases": ph}


def test_targets_pass_fail_and_not_applicable():
    runs = [_run("InternVL3-8B-hf", "bfloat16", 7.94e9, p95=0.8, peak=19.0),
            _run("Qwen2.5-VL-7B-Instruct", "bfloat16", 8.29e9, p95=2.4, peak=21.5),
            _run("Qwen2.5-VL-7B-Instruct", "4bit", 8.29e9, peak=11.0),
            _run("Qwen3-VL-8B-Instruct", "4bit", 8.77e9, peak="oom"),
            _run("Qwen2.5-VL-3B-Instruct", "bfloat16", 3.75e9, p95=9.0)]  # not an 8 B model: not counted
    t = {x["target"].split(":")[0]: x for x in gc.targets(_results("NVIDIA H200", runs))}
    lik = t["p95 ≤ 2 s per question, likelihood, batch 1"]
    assert lik["verdict"] == "FAIL" and "InternVL3-8B-hf: 0.80 s" in lik["measured"] and "3B" not in lik["measured"]
    assert t["QLoRA step peak ≤ 12 GiB"]["verdict"] == "FAIL" and "oom" in t["QLoRA step peak ≤ 12 GiB"]["measured"]
    assert t["bf16 LoRA step peak ≤ 20 GiB"]["verdict"] == "FAIL"
    good = gc.targets(_results("NVIDIA H100 80GB HBM3", runs[:1] + runs[2:3]))
    assert [x["verdict"] for x in good] == ["pass", "pass", "pass", "pass"]
    t4 = gc.targets(_results("Tesla T4", runs[:1]))
    assert "not applicable on Tesla T4" in t4[0]["measured"] and t4[0]["verdict"] == "—"
    assert all("pending: no GPU" in x["measured"] for x in gc.targets(_results(None, [])))


def test_results_section_replaces_only_its_own_block(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Measured results\n\n## Answering\n| a | b |\n", encoding="utf-8")
    gc.write_section(md, "tiny", "first tiny table")
    gc.write_section(md, "tiny", "second tiny table")
    text = md.read_text()
    assert text.startswith("# Measured results\n\n## Answering\n| a | b |\n")
    assert "second tiny table" in text and "first tiny table" not in text and gc.PENDING["full"] in text
    gc.write_section(md, "full", "H200 table")
    text = md.read_text()
    assert "H200 table" in text and gc.PENDING["full"] not in text and "second tiny table" in text
    assert text.count(gc.BEGIN) == text.count(gc.END) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_full_size_without_a_gpu_says_so_and_exits_nonzero(tmp_path, capsys):
    out, md = tmp_path / "gc.json", tmp_path / "RESULTS.md"
    rc = gc.main(["--size", "full", "--families", "qwen3_vl", "--dtypes", "bfloat16", "--json", str(out),
                  "--results", str(md), "--write-results", "--work-dir", str(tmp_path / "work")])
    assert rc == 2 and "no CUDA GPU" in capsys.readouterr().err
    run = json.loads(out.read_text())["runs"][0]
    assert run["phases"]["build"]["status"] == "ok" and run["phases"]["build"]["device"] == "meta"
    assert run["phases"]["tokens"]["visual_tokens"] == 760
    for name in ("likelihood", "generate", "train"):
        assert run["phases"][name]["status"] == "skipped" and "no CUDA GPU" in run["phases"][name]["reason"]
    assert gc.PENDING["full"] in md.read_text()


@pytest.mark.gpu
def test_one_full_size_family_on_cuda(tmp_path):
    out = tmp_path / "gc.json"
    rc = gc.main(["--size", "full", "--families", "qwen2_5_vl", "--dtypes", "bfloat16", "--batches", "1,2",
                  "--repeats", "2", "--json", str(out), "--work-dir", str(tmp_path / "work")])
    assert rc == 0
    ph = json.loads(out.read_text())["runs"][0]["phases"]
    assert all(v["status"] == "ok" for v in ph.values()), ph
    assert abs(ph["build"]["n_params"] - 8.2922e9) / 8.2922e9 < 1e-3 and ph["build"]["weights_gib"] > 14
    assert ph["tokens"]["visual_tokens"] == 1008
    assert ph["likelihood"]["batches"]["1"]["peak_gib"] > ph["build"]["weights_gib"]
    assert ph["train"]["kind"] == "lora" and ph["train"]["peak_gib"] > ph["build"]["weights_gib"]


@pytest.mark.gpu
def test_qlora_step_of_a_full_size_model_on_cuda(tmp_path):
    out = tmp_path / "gc.json"
    rc = gc.main(["--size", "full", "--families", "qwen3_vl", "--dtypes", "4bit", "--phases", "train", "--batches", "1",
                  "--json", str(out), "--work-dir", str(tmp_path / "work")])
    assert rc == 0
    ph = json.loads(out.read_text())["runs"][0]["phases"]
    assert ph["build"]["status"] == "ok" and ph["build"]["quantization"] == "4bit" and ph["build"]["weights_gib"] < 9
    assert ph["train"]["status"] == "ok" and ph["train"]["kind"] == "qlora" and ph["train"]["precision"]["optim"] == \
        "paged_adamw_8bit"

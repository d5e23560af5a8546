"""The vLLM backend against the HF path, for real (no mocks): the engine environment runs the tiny models.

Marked ``engine``: they need ``.venv-engine`` (``bash scripts/setup.sh --engine``, which CI runs) and skip
with that reason without it. Every comparison reports its largest difference: the lines are gathered and
printed in pytest's terminal summary ("engine parity"), so CI's log shows them under ``-q`` too.
"""
import json

import numpy as np
import pytest

from roadbuddy_utils.common.files import REPO
from roadbuddy_utils.data.questions import Item
from roadbuddy_utils.models.config import ModelConfig
from roadbuddy_utils.models.example import Example
from roadbuddy_utils.models.vlm import VLM

pytestmark = [pytest.mark.engine,
              pytest.mark.skipif(not (REPO / ".venv-engine" / "bin" / "python").exists(),
                                 reason="no engine environment: bash scripts/setup.sh --engine (CI creates it)")]

TOL = 1e-4
Q4 = Item("q4", "Biển báo nào xuất hiện trong video?", [("A", "Cấm rẽ trái"), ("B", "Cấm đỗ xe"), ("C", "Hết cấm"),
                                                         ("D", "Không có")], "A", [], None, "v.mp4")
Q2 = Item("q2", "Xe có được phép rẽ trái không?", [("A", "Đúng"), ("B", "Sai")], "B", [], None, "v.mp4")


def _clip(n=8, seconds=12.0, fps=30.0, seed=0, item=Q4):
    idx = [int(round((k + 0.5) * seconds * fps / n)) for k in range(n)]
    frames = np.random.default_rng(seed).integers(0, 255, (n, 56, 112, 3), dtype=np.uint8)
    return Example(item, frames, [i / fps for i in idx], idx, fps, int(seconds * fps))


EXAMPLES = [_clip(), _clip(4, 6.0, seed=1, item=Q2), _clip(8, 15.0, seed=2), Example(Q2, None)]


class _ParityReport:
    """A plugin registered once per session: its lines go to the terminal summary."""
    lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("engine parity (vLLM against transformers, tolerance 1e-4)")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _parity_report(pytestconfig):
    if not pytestconfig.pluginmanager.has_plugin("rb-engine-parity"):
        pytestconfig.pluginmanager.register(_ParityReport(), "rb-engine-parity")


def report(line: str):
    """Print the figure (seen with -s) and keep it for the summary."""
    print(line)
    _ParityReport.lines.append(line)


def _diff(a: list[dict], b: list[dict]) -> float:
    assert [set(x) for x in a] == [set(y) for y in b]
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x)


@pytest.fixture(scope="module")
def pair(request):
    """(HF model, engine model) of one tiny family with the same configuration."""
    from roadbuddy_utils.engine.client import EngineVLM

    made = {}

    def get(family, **kw):
        if family not in made:
            for _, old in made.values():  # one engine at a time: each reserves its share of RAM
                old.close()
            made.clear()
            cfg = ModelConfig(f"tiny:{family}@hd32", n_frames=8, max_pixels=56 * 112, device="cpu", **kw)
            made[family] = (VLM.load(cfg), EngineVLM.start(cfg, {"max_model_len": 4096}))
        return made[family]

    yield get
    for _, eng in made.values():
        eng.close()


def test_qwen2_5_vl_video_letter_scores_match_hf(pair):
    hf, eng = pair("qwen2_5_vl")
    d = _diff(hf.letter_scores(EXAMPLES), eng.letter_scores(EXAMPLES))
    report(f"qwen2_5_vl video (8 frames of 12 s, 4 of 6 s, 8 of 15 s, text only): max |dp| = {d:.2e}")
    assert d <= TOL


def test_multi_image_letter_scores_match_hf(pair):
    hf, eng = pair("qwen2_5_vl")
    rng = np.random.default_rng(3)
    cams = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(3)]
    prompts = [("You are driving.", [("text", "CAM_FRONT:"), ("image", cams[0]), ("text", "CAM_BACK:"),
                                     ("image", cams[1]), ("text", "Is it safe? A. Yes B. No")]),
               (None, [("text", "CAM_FRONT_LEFT:"), ("image", cams[2]), ("text", "Which? A. car B. bus C. truck")])]
    letters = [["A", "B"], ["A", "B", "C"]]
    d = _diff(hf.chat_letter_scores(prompts, letters), eng.chat_letter_scores(prompts, letters))
    report(f"qwen2_5_vl multi-image (06's prompts): max |dp| = {d:.2e}")
    assert d <= TOL


def test_greedy_generation_gives_the_same_text(pair):
    hf, eng = pair("qwen2_5_vl")
    a, b = hf.generate(EXAMPLES[:2], max_new_tokens=6), eng.generate(EXAMPLES[:2], max_new_tokens=6)
    report(f"generation HF {a!r} vs engine {b!r}")
    assert a == b


@pytest.mark.parametrize("family", ["internvl", pytest.param("qwen3_vl", marks=pytest.mark.xfail(
    strict=True, reason="vLLM 0.32 (CPU) serves Qwen3-VL, but its video letter scores differ from transformers 5.23 "
                        "by 3.5e-3 (measured): not at parity; use backend hf for Qwen3-VL until a GPU check shows it"))])
def test_other_families_match_or_say_why_not(pair, family):
    from roadbuddy_utils.engine.client import EngineError

    try:
        hf, eng = pair(family)
    except EngineError as e:  # a family this vLLM build does not serve: a clear message, never a wrong score
        report(f"{family}: not served by the engine: {str(e).splitlines()[0]}")
        assert family in str(e) or "could not load" in str(e)
        pytest.skip(f"{family} is not supported by this vLLM build")
    d = _diff(hf.letter_scores(EXAMPLES), eng.letter_scores(EXAMPLES))
    report(f"{family} video: max |dp| = {d:.2e}")
    assert d <= TOL


def test_a_lora_adapter_through_the_engine(tmp_path):
    """04's adapter (LoRA on the language model's seven projections) through the engine equals the HF path with the
    adapter, served per request (``LoRARequest``) and as 04's merged export."""
    import torch
    from peft import LoraConfig, get_peft_model

    from roadbuddy_utils.engine.client import EngineVLM
    from roadbuddy_utils.models.tiny import resolve_model_id
    from roadbuddy_utils.train.finetune import export_merged, lora_target_regex

    base = VLM.load(ModelConfig("tiny:qwen2_5_vl@hd32", n_frames=8, max_pixels=56 * 112, device="cpu"))
    plain = base.letter_scores(EXAMPLES)
    torch.manual_seed(0)
    model = get_peft_model(base.model, LoraConfig(r=8, lora_alpha=16, target_modules=lora_target_regex("qwen", ["lora"])))
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # a trained-looking adapter: it must change the answers
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    base.processor.save_pretrained(adapter)
    (adapter / "roadbuddy_train.json").write_text(json.dumps({"base_model_path": resolve_model_id("tiny:qwen2_5_vl@hd32")}))
    merged = export_merged(adapter, tmp_path / "merged")
    kw = dict(n_frames=8, max_pixels=56 * 112, device="cpu")
    hf = VLM.load(ModelConfig("tiny:qwen2_5_vl@hd32", adapter_path=str(adapter), **kw)).letter_scores(EXAMPLES)
    moved = _diff(hf, plain)
    eng = EngineVLM.start(ModelConfig(str(merged), **kw))
    try:
        d_merged = _diff(hf, eng.letter_scores(EXAMPLES))
    finally:
        eng.close()
    eng = EngineVLM.start(ModelConfig("tiny:qwen2_5_vl@hd32", adapter_path=str(adapter), **kw))
    try:
        served = eng.letter_scores(EXAMPLES)
    finally:
        eng.close()
    d_request = _diff(hf, served)
    report(f"LoRA (seven projections, adapter effect {moved:.2e}): merged export through the engine max |dp| = "
          f"{d_merged:.2e}; per-request LoRARequest max |dp| = {d_request:.2e}")
    assert moved > 10 * TOL and d_merged <= TOL and d_request <= TOL


def test_gpu_check_with_the_engine_backend_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py --backend vllm: the same per-question timings through the engine (tiny, CPU)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    out = tmp_path / "gc.json"
    assert gc.main(["--size", "tiny", "--model", "tiny:qwen2_5_vl@hd32", "--dtypes", "float32", "--batches", "1,2",
                    "--repeats", "1", "--new-tokens", "4", "--phases", "likelihood,generate", "--backend", "vllm",
                    "--json", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    e = json.loads(out.read_text())["runs"][0]["phases"]["engine"]
    assert e["status"] == "ok", e
    for scoring in ("likelihood", "generate"):
        assert e[scoring]["best_batch"] in (1, 2) and e[scoring]["throughput_vs_hf"] > 0
    assert e["start_s"] > 0 and e["version"]


def test_03_with_backend_vllm_matches_backend_hf_on_every_question(demo_small, tmp_path):
    """03's loop (run_zero_shot) on the demo's public test with both backends: the same lines, scores within 1e-4."""
    from roadbuddy_utils.answer.batch import InferConfig, run_zero_shot
    from roadbuddy_utils.data.split import eval_items

    pub = demo_small / "traffic_buddy_train+public_test"
    items = eval_items(pub / "public_test/public_test.json", pub, answers_json=demo_small / "answers/public_test_answers.json")
    cfg = ModelConfig("tiny:qwen2_5_vl@hd32", n_frames=4, max_pixels=112 * 112, device="cpu")
    infer = InferConfig(batch_size=4, time_budget_s=None, cache_dir=str(tmp_path / "cache"))
    hf, _ = run_zero_shot(items, cfg, infer, tmp_path / "hf", progress=False)
    vl, metrics = run_zero_shot(items, cfg, infer, tmp_path / "vllm", progress=False, backend="vllm",
                                engine={"max_model_len": 4096})
    assert [r["id"] for r in hf] == [r["id"] for r in vl] and all(r["error"] is None for r in vl)
    d = _diff([r["scores"] for r in hf], [r["scores"] for r in vl])
    report(f"03 on {len(hf)} demo questions, backend vllm vs hf: max |dp| = {d:.2e}")
    assert d <= TOL and [r["pred"] for r in hf] == [r["pred"] for r in vl]
    run = json.loads((tmp_path / "vllm" / "run_config.json").read_text())
    assert run["model"]["backend"]["name"] == "vllm" and run["model"]["backend"]["version"]
    assert run["model"]["backend"]["settings"]["enable_prefix_caching"] is True
    assert json.loads((tmp_path / "hf" / "run_config.json").read_text())["model"]["backend"]["name"] == "hf"
    assert metrics["model"]["backend"]["name"] == "vllm"


def test_06_with_backend_vllm_answers_and_a_failed_engine_falls_back(tmp_path):
    """06's loop with an engine per size: MCQ by letter scores, open questions by generation; the large
    engine that cannot start (no memory for its cache) sends its questions to the small one."""
    import yaml

    from roadbuddy_utils.multiview.demo import ensure_demo_multiview
    from roadbuddy_utils.multiview.router import DEFAULT_ROUTING
    from roadbuddy_utils.multiview.run import ModelRegistry, MVRunConfig, answer_all, engine_settings, model_configs, prepare

    demo = ensure_demo_multiview(tmp_path / "mv", n=8, size=(64, 36))
    routing = {s: v | {"max_new_tokens": 4} | ({"max_new_tokens_open": 4} if "max_new_tokens_open" in v else {})
               for s, v in yaml.safe_load(DEFAULT_ROUTING.read_text()).items()}
    models = {"small": {"model": "tiny:qwen2_5_vl@hd32", "max_pixels": 64 * 64, "engine": {"max_model_len": 4096}},
              "large": {"model": "tiny:internvl@hd32", "engine": {"gpu_memory_utilization": 1e-6}}}
    cfg = MVRunConfig()
    registry = ModelRegistry(model_configs(models), backend="vllm", engines=engine_settings(models))
    prep = prepare(demo["questions"], demo["image_root"], registry.sizes, routing, None, cfg)
    try:
        lines = answer_all(prep, registry, tmp_path / "06", cfg)
    finally:
        for size in list(registry.loaded):
            registry.release(size)
    assert lines and all(l["error"] is None for l in lines), [l["error"] for l in lines if l["error"]]
    assert all(l["model_used"] == "small" for l in lines)
    assert {l["model_routed"] for l in lines} == {"small", "large"}  # the large route fell back
    fell = [l for l in lines if l["model_routed"] == "large"]
    assert fell and all("large" in (l.get("fallback_reason") or "") for l in fell)
    assert any(l.get("scores") for l in lines) and any(l.get("scores") is None and l["answer"] for l in lines)
    assert registry.stats["large"]["load_error"] and "engine" in registry.stats["large"]["load_error"]

"""The multi-camera run loop: router table, models by size, out-of-memory fallback, resume, retrieval
in the prompt, and both tiny model families answering one six-image prompt."""
import json
from collections import Counter

import numpy as np
import pytest
import torch

from roadbuddy_utils.common.files import read_jsonl
from roadbuddy_utils.multiview.data import MV_ANSWERED, load_multiview
from roadbuddy_utils.multiview.demo import ensure_demo_multiview
from roadbuddy_utils.multiview.retrieval import LeakageError
from roadbuddy_utils.multiview.router import DEFAULT_ROUTING, classify, load_routing
from roadbuddy_utils.multiview.run import ModelRegistry, MVRunConfig, answer_item, model_configs, prepare, run_multiview

MODELS = {"small": {"model": "tiny:internvl"}, "large": {"model": "tiny:qwen2_5_vl"}}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """16 fixture questions (8 with answers) on drawn 64x36 images, and the demo KB."""
    return ensure_demo_multiview(tmp_path_factory.mktemp("mv"), n=16, size=(64, 36))


@pytest.fixture(scope="module")
def short_routing():
    """The default table with 4 new tokens everywhere (tests time the loop, not the babble)."""
    import yaml

    table = yaml.safe_load(DEFAULT_ROUTING.read_text())
    return {s: v | {"max_new_tokens": 4} | ({"max_new_tokens_open": 4} if "max_new_tokens_open" in v else {})
            for s, v in table.items()}


class FakeVLM:
    """Answers instantly and remembers its prompts; ``fail`` raises that exception on every call."""

    def __init__(self, cfg, fail=None):
        self.cfg, self.fail, self.prompts = cfg, fail, []

    def _call(self, prompts):
        if self.fail is not None:
            raise self.fail
        self.prompts += prompts

    def chat_letter_scores(self, prompts, letters):
        self._call(prompts)
        return [{l: (0.9 if k == 1 else 0.1 / (len(ls) - 1)) for k, l in enumerate(ls)} for ls in letters]

    def chat_generate(self, prompts, max_new_tokens, **kw):
        self._call(prompts)
        return [f"Yes. ({self.cfg.model})" for _ in prompts]


def fake_loader(fail_on=None, fail_at="answer", loads=None):
    """Loader making FakeVLMs; the model named ``fail_on`` runs out of memory at load or on every item."""

    def load(cfg):
        if loads is not None:
            loads.append(cfg.model)
        oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if cfg.model == fail_on and fail_at == "load":
            raise oom
        return FakeVLM(cfg, oom if cfg.model == fail_on else None)

    return load


def recording(loader, vlms):
    """``loader`` that also appends every model it makes to ``vlms``."""

    def load(cfg):
        vlms.append(loader(cfg))
        return vlms[-1]

    return load


def _run(demo, out, routing, loader=None, models=MODELS, **kw):
    return run_multiview(demo["questions"], demo["image_root"], out, models, routing, demo["kb"],
                         MVRunConfig(**kw), loader=loader)


def test_router_table_is_respected(demo, tmp_path, short_routing):
    loads = []
    flipped = {s: v | {"model": "large" if v["model"] == "small" else "small"} for s, v in short_routing.items()}
    for name, table in {"default": short_routing, "flipped": flipped}.items():
        lines, m = _run(demo, tmp_path / name, table, fake_loader(loads=loads))
        routes = load_routing(table)
        assert len(lines) == demo["n_items"] and m["n_errors"] == 0
        for l in lines:
            assert l["model_routed"] == l["model_used"] == routes[l["subtask"]].model
            assert l["model_id"] == MODELS[l["model_used"]]["model"]
            assert l["answer"] and l["error"] is None and l["fallback_reason"] is None
        assert m["routing"]["per_model_used"] == dict(Counter(routes[l["subtask"]].model for l in lines))
        # MCQs went through the likelihood scorer over their own letters; the rest generated
        mcq = [l for l in lines if l["style"] == "mcq"]
        assert mcq and all(l["source"] == "likelihood" and l["answer"] in l["letters"] for l in mcq)
        assert all(l["source"] == "generate" for l in lines if l["style"] != "mcq")
    assert loads == ["tiny:internvl", "tiny:qwen2_5_vl"] * 2  # lazily, once per model per run


@pytest.mark.parametrize("fail_at", ["answer", "load"])
def test_large_out_of_memory_falls_back_to_small(demo, tmp_path, short_routing, fail_at):
    loads = []
    lines, m = _run(demo, tmp_path, short_routing, fake_loader("tiny:qwen2_5_vl", fail_at, loads))
    large = [l for l in lines if l["model_routed"] == "large"]
    assert large and all(l["model_used"] == "small" and l["error"] is None and l["answer"] for l in large)
    assert all(f"large: out of memory ({fail_at})" == l["fallback_reason"] for l in large)
    assert all(l["model_used"] == "small" and l["fallback_reason"] is None for l in lines
               if l["model_routed"] == "small")
    r = m["routing"]
    assert r["n_fallbacks"] == len(large) and r["fallbacks"] == {"large->small": len(large)}
    assert loads.count("tiny:qwen2_5_vl") == 1  # a failed load is not retried for every item
    if fail_at == "load":
        assert "OutOfMemoryError" in m["models"]["large"]["load_error"]


def test_small_out_of_memory_is_recorded_and_the_run_goes_on(demo, tmp_path, short_routing):
    lines, m = _run(demo, tmp_path, short_routing, fake_loader("tiny:internvl"))
    small = [l for l in lines if l["model_routed"] == "small"]
    assert small and all(l["answer"] is None and "out of memory" in l["error"] for l in small)
    assert all(l["error"] is None and l["model_used"] == "large" for l in lines if l["model_routed"] == "large")
    assert m["n_errors"] == m["routing"]["n_errors"] == len(small)


def test_keep_one_in_memory_releases_the_other():
    reg = ModelRegistry(model_configs({"small": "tiny:internvl", "large": "tiny:qwen2_5_vl"}), True, fake_loader())
    reg.get("small")
    reg.get("large")
    assert list(reg.loaded) == ["large"] and reg.describe()["small"]["loads"] == 1
    with pytest.raises(KeyError, match="registered"):
        reg.get("medium")


def test_resume_answers_only_what_failed(demo, tmp_path, short_routing):
    out = tmp_path / "run"
    # first run: every large question fails with an ordinary error (no fallback for those)
    lines, _ = _run(demo, out, short_routing, fake_loader("tiny:qwen2_5_vl"), fallback={})
    failed = {l["id"] for l in lines if l["error"]}
    assert failed and len(failed) < len(lines)
    vlms = []
    lines2, m = _run(demo, out, short_routing, recording(fake_loader(), vlms))
    assert [v.cfg.model for v in vlms] == ["tiny:qwen2_5_vl"]  # small's questions were all done: never loaded
    assert sum(len(v.prompts) for v in vlms) == len(failed)
    assert m["n_errors"] == 0 and [l["id"] for l in lines2] == [l["id"] for l in lines]
    saved = json.loads((out / "results.json").read_text())
    assert [l["id"] for l in saved] == [l["id"] for l in lines] and all(l["answer"] for l in saved)
    assert len(read_jsonl(out / "results.jsonl")) == len(lines) + len(failed)


def test_kb_hint_notes_reach_the_prompt_and_rag_notes(demo, tmp_path, short_routing):
    vlms = []
    lines, m = _run(demo, tmp_path, short_routing, recording(fake_loader(), vlms), rag_mode="hint", kb_topk=2, limit=6)
    assert len(lines) == 6 and m["n_items"] == demo["n_items"] and m["leakage"]["kb_size"] > 0
    with_notes = [l for l in lines if l["rag_notes"]]
    assert with_notes and all(len(l["rag_notes"]) <= 2 and {"id", "score", "level"} <= set(l["rag_notes"][0])
                              for l in with_notes)
    texts = [seg for v in vlms for _, segs in v.prompts for kind, seg in segs if kind == "text"]
    assert sum("Notes from earlier annotations" in t for t in texts) == len(with_notes)
    # an evaluated question's own KB copy is never among its notes
    leaks = {a["id"]: a for a in json.loads(open(demo["kb"]).read())["annotations"] if a["id"].startswith("kb_leak")}
    for l in lines:
        for n in l["rag_notes"]:
            a = leaks.get(n["id"])
            assert a is None or (a["frame_token"], a["question"]) != (l["frame_token"], l["question"])
    # cameras in the official order, each image after its label
    first = vlms[0].prompts[0][1]
    labels = [seg for kind, seg in first if kind == "text"][:-1]
    assert [k for k, _ in first[:4]] == ["text", "image", "text", "image"] and labels[0] == "CAM_FRONT:"


def test_override_is_refused_on_leaked_items_then_reported_apart(demo, tmp_path, short_routing):
    with pytest.raises(LeakageError, match="override"):
        _run(demo, tmp_path / "a", short_routing, fake_loader(), rag_mode="override")
    lines, m = _run(demo, tmp_path / "b", short_routing, fake_loader(), rag_mode="override", allow_leakage=True)
    over = [l for l in lines if l.get("rag_override")]
    assert len(over) == m["leakage"]["n_overlap"] == 2
    assert all(l["model_used"] is None and l["source"] == "kb_override" and l["answer"] for l in over)
    assert m["score"]["n_overridden"] == 2 and m["routing"]["n_rag_override"] == 2


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="do_sample"):
        MVRunConfig(do_sample="False")
    with pytest.raises(ValueError, match="unknown key"):
        model_configs({"small": {"model": "tiny:internvl", "n_gpu": 2}})
    ckpt = tmp_path / "lora" / "checkpoint-20"
    ckpt.mkdir(parents=True)
    (ckpt / "adapter_config.json").write_text("{}")
    cfgs = model_configs({"small": {"model": "tiny:internvl", "adapter": str(tmp_path / "lora")}, "large": "x/y"})
    assert cfgs["small"].adapter_path == str(ckpt) and cfgs["large"].model == "x/y"
    with pytest.raises(ValueError, match="not a registered model"):
        prepare(MV_ANSWERED, None, ["small"], None)  # the table routes to large


@pytest.mark.parametrize("family", ["internvl", "qwen2_5_vl", "qwen3_vl"])
def test_tiny_families_answer_a_six_camera_prompt(tiny_vlm, demo, short_routing, family):
    vlm = tiny_vlm(family)
    items, _ = load_multiview(demo["questions"], demo["image_root"])
    routes = load_routing(short_routing)
    for it in items:
        it.subtask, it.rule = classify(it)
    full = next(it for it in items if len(it.images) == 6 and "options" in it.question.lower())
    open_q = next(it for it in items if routes[it.subtask].style == "open")
    r = answer_item(vlm, full, routes[full.subtask], MVRunConfig())
    assert r["style"] == "mcq" and r["answer"] in r["letters"] and abs(sum(r["scores"].values()) - 1) < 1e-4
    assert r["cameras"] == ["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT",
                            "CAM_BACK_LEFT"]
    segs = [("text", f"{c}:") if k % 2 == 0 else ("image", p) for c, p in full.images for k in (0, 1)]
    text = vlm.chat_render("system", segs + [("text", "Question?")])
    pos = [text.index(f"{c}:") for c in r["cameras"]]
    assert pos == sorted(pos)
    batch = vlm.chat_inputs([("system", segs + [("text", "Question?")])])
    if family == "internvl":
        ctx = vlm.processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
        assert int((batch["input_ids"] == ctx).sum()) == 6 * vlm.model.config.image_seq_length
        assert text.count("<IMG_CONTEXT>") == 6
    else:
        assert batch["image_grid_thw"].shape[0] == 6 and text.count("<|image_pad|>") == 6
    # open question: generated text; sampling is repeatable for a given seed
    cfg = MVRunConfig(do_sample=True, seed=3)
    a, b = (answer_item(vlm, open_q, routes[open_q.subtask], cfg) for _ in range(2))
    assert a["style"] == "open" and isinstance(a["raw"], str) and a["raw"] == b["raw"]
    # array images work too
    img = np.zeros((36, 64, 3), np.uint8)
    assert len(vlm.chat_generate([(None, [("text", "CAM_FRONT:"), ("image", img), ("text", "Q")])], 2)) == 1


# ---------------------------------------------------------------------------------------------- camera selection

def test_select_images_keeps_the_best_scored_cameras_in_camera_order(demo):
    from roadbuddy_utils.multiview.data import select_images

    it = next(i for i in load_multiview(demo["questions"], demo["image_root"])[0] if len(i.images) == 6)
    cams = [c for c, _ in it.images]
    scores = {c: float(k) for k, c in enumerate(cams)}  # the last cameras score best
    assert [c for c, _ in select_images(it, 3, scores=scores)] == cams[3:]
    assert [c for c, _ in select_images(it, 3)] == cams[:3]  # no scores: the official order
    assert [c for c, _ in select_images(it, 6, scores=scores)] == cams  # everything fits: nothing dropped


def test_06_select_scores_cameras_with_the_embedding_model(demo, tmp_path, short_routing, monkeypatch):
    """frame_mode select in 06: every camera scored against the question (tiny SigLIP), the best
    max_images_per_prompt sent, scores and time on the line, selected_frames.jsonl written; an
    unreadable image falls back to the camera order with the reason; learned and a missing
    checkpoint are refused before anything is answered."""
    from roadbuddy_utils.multiview import views
    from roadbuddy_utils.selection.selector import SelectorConfig

    vlms = []
    real = views.load_image
    bad = {}

    def flaky(path, max_side):
        if bad and str(path) == bad["path"]:
            raise OSError("image file is truncated")
        return real(path, max_side)

    monkeypatch.setattr(views, "load_image", flaky)
    items = load_multiview(demo["questions"], demo["image_root"])[0]
    victim = next(i for i in items if len(i.images) == 6 and i.answer)
    bad["path"] = str(victim.images[0][1])
    # every question of the victim's frame shares its images, so each of them meets the broken file
    hit = {i.id: i for i in items if any(str(p) == bad["path"] for _, p in i.images)}
    lines, m = _run(demo, tmp_path, short_routing, recording(fake_loader(), vlms), max_images_per_prompt=3,
                    selector=SelectorConfig(scorer="embedding", model="tiny:siglip"))
    assert m["n_errors"] == 0
    answered = [l for l in lines if l["model_used"]]
    for l in answered:
        assert l["selector"] == "embedding" and len(l["cameras"]) <= 3 and l["selection_ms"] >= 0
        if l["id"] in hit:
            assert l["camera_scores"] is None and "truncated" in l["selection_fallback"]
            assert l["cameras"] == [c for c, _ in hit[l["id"]].images[:3]]
            continue
        s = l["camera_scores"]
        assert l["selection_fallback"] is None and set(l["cameras"]) <= set(s)
        assert min(s[c] for c in l["cameras"]) >= max([v for c, v in s.items() if c not in l["cameras"]] or [-9])
    sel = read_jsonl(tmp_path / "selected_frames.jsonl")
    assert [r["id"] for r in sel] == [l["id"] for l in lines]
    row = next(r for r in sel if r["id"] == next(l["id"] for l in answered if l["id"] not in hit))
    assert {"id", "video_path", "timestamps", "scores", "selector", "error"} <= set(row) and len(row["scores"]) <= 3
    assert next(r for r in sel if r["id"] == victim.id)["fallback"] == "camera_order"
    with pytest.raises(ValueError, match="support_frames"):
        MVRunConfig(selector={"scorer": "learned"})
    assert MVRunConfig(selector={"scorer": "uniform"}).selector is None
    with pytest.raises(FileNotFoundError, match="selector_model"):
        _run(demo, tmp_path / "x", short_routing, fake_loader(), selector={"scorer": "embedding",
                                                                              "model": str(tmp_path / "nope")})
    assert not (tmp_path / "x" / "results.jsonl").exists()

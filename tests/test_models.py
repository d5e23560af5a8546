"""Model wrapper: all three tiny families through load -> prompt -> both scorers; prompt snapshots."""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from roadbuddy_utils.data.questions import Item
from roadbuddy_utils.models.config import ModelConfig, fit_pixels
from roadbuddy_utils.models.example import Example
from roadbuddy_utils.models.tiny import TINY_FAMILIES, build_tokenizer
from roadbuddy_utils.models.vlm import VLM

SNAP = Path(__file__).parent / "snapshots"


def _item(iid, choices, answer="A", question="Đèn tín hiệu giao thông phía trước đang có màu gì?"):
    return Item(iid, question, choices, answer, [1.0], None, f"videos/{iid}.mp4")


ITEMS = {
    "three": _item("s1", [("A", "Đỏ"), ("B", "Vàng"), ("C", "Xanh")]),
    "two": _item("s2", [("A", "Đúng"), ("B", "Sai")], "B", "Video có biển báo cấm đỗ xe bên đường, đúng hay sai?"),
    "four": _item("s3", [("A", "40 km/h"), ("B", "50 km/h"), ("C", "60 km/h"), ("D", "80 km/h")], "C",
                  "Biển báo giới hạn tốc độ tối đa xuất hiện trong video là bao nhiêu?"),
}


def _frames(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, 144, 256, 3), dtype=np.uint8)


def _ex(item, n=4, seed=0):
    idx = [int(15 * (0.5 + k)) for k in range(n)]
    return Example(item, _frames(n, seed), [i / 15 for i in idx], idx, 15.0, 15 * n)


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("case,lang,video", [("three", "vi", True), ("two", "en", True), ("four", "vi", False)])
def test_prompt_snapshot(tiny_vlm, family, case, lang, video):
    """The rendered prompt (chat template applied) is frozen; RB_UPDATE_SNAPSHOTS=1 rewrites."""
    vlm = tiny_vlm(family)
    ex = _ex(ITEMS[case]) if video else Example(ITEMS[case], None)
    text = vlm.render(ex, lang)
    path = SNAP / f"prompt_{family}_{case}_{lang}.txt"
    if os.environ.get("RB_UPDATE_SNAPSHOTS") or not path.exists():
        if not os.environ.get("RB_UPDATE_SNAPSHOTS"):
            pytest.fail(f"missing snapshot {path.name}; run with RB_UPDATE_SNAPSHOTS=1 to create it")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    letters = ", ".join(l for l, _ in ITEMS[case].choices)
    assert text.endswith("<|im_start|>assistant\n") and f"({letters})" in text


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_both_scorers_all_families(tiny_vlm, family):
    vlm = tiny_vlm(family)
    assert vlm.describe()["tiny_random"] and "chance" in vlm.describe()["note"]
    exs = [_ex(ITEMS["three"]), _ex(ITEMS["two"], seed=1), Example(ITEMS["four"], None)]
    res = vlm.answer(exs, scoring="likelihood")
    for ex, r in zip(exs, res):
        assert list(r["scores"]) == ex.item.letters  # only the offered letters
        assert abs(sum(r["scores"].values()) - 1) < 1e-4
        assert r["pred"] == max(r["scores"], key=r["scores"].get) and r["source"] == "likelihood"
    # batched with left padding == one by one
    single = [vlm.answer([ex])[0]["scores"] for ex in exs]
    for r, s in zip(res, single):
        for l in s:
            assert r["scores"][l] == pytest.approx(s[l], abs=2e-3)
    gen = vlm.answer(exs, scoring="generate", max_new_tokens=4)
    for ex, r in zip(exs, gen):
        assert isinstance(r["raw"], str) and r["pred"] in ex.item.letters
        # a random model's babble is never silently read as "A": either extracted or the marked fallback
        assert r["source"] in {"answer_phrase", "letter", "choice_text", "yes_no", "letter_anywhere",
                               "fallback_likelihood"}
        if r["source"] == "fallback_likelihood":
            assert r["scores"] is not None


def test_internvl_frames_are_labelled_images(tiny_vlm):
    vlm = tiny_vlm("internvl")
    ex = _ex(ITEMS["three"], n=3)
    assert vlm.render(ex).count("<IMG_CONTEXT>") == 3 and "Frame3: <IMG_CONTEXT>" in vlm.render(ex)
    batch = vlm.inputs([ex])
    ctx = vlm.processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert int((batch["input_ids"] == ctx).sum()) == 3 * vlm.model.config.image_seq_length
    assert batch["pixel_values"].shape[0] == 3  # one tile per frame: no tiling of video frames


def test_qwen3_gets_true_frame_times(tiny_vlm):
    vlm = tiny_vlm("qwen3_vl")
    ex = _ex(ITEMS["three"], n=4)  # frames at 0.5, 1.5, 2.5, 3.5 s
    text = vlm.processor.tokenizer.decode(vlm.inputs([ex])["input_ids"][0])
    stamps = [float(x) for x in re.findall(r"<([\d.]+) seconds>", text)]
    assert stamps == pytest.approx([1.0, 3.0], abs=0.05)  # pairs of frames merged in time


def test_qwen2_5_gets_true_fps(tiny_vlm):
    vlm = tiny_vlm("qwen2_5_vl")
    batch = vlm.inputs([_ex(ITEMS["three"], n=4)])
    # 4 of 60 frames sampled at 15 fps -> 1 sampled frame/s -> 2 s per temporal patch of 2 frames
    assert float(batch["second_per_grid_ts"][0]) == pytest.approx(2.0)


def test_model_config_validation(tmp_path):
    with pytest.raises(ValueError, match="n_frames"):
        ModelConfig(n_frames=0)
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(dtype="fp8")
    with pytest.raises(ValueError, match="max_pixels"):
        ModelConfig(max_pixels=10)
    with pytest.raises(FileNotFoundError, match="adapter_path"):
        ModelConfig(adapter_path=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="unknown tiny model"):
        VLM.load(ModelConfig("tiny:llava"))


def test_fit_pixels_keeps_aspect():
    out = fit_pixels(_frames(2), 64 * 36)
    assert out.shape[1] * out.shape[2] <= 64 * 36 and abs(out.shape[2] / out.shape[1] - 256 / 144) < 0.1
    assert fit_pixels(_frames(1), 10 ** 6).shape == (1, 144, 256, 3)


def test_tokenizer_letters_and_choice_words_are_single_tokens():
    tok = build_tokenizer("internvl")
    for w in ["A", "B", "C", "D", "<IMG_CONTEXT>", "<|im_start|>"]:
        assert len(tok.encode(w, add_special_tokens=False)) == 1, w
    assert tok.padding_side == "left" and tok.context_image_token == "<IMG_CONTEXT>"


def test_tiny_vocabulary_is_pinned_and_a_new_prompt_template_does_not_redraw_it(monkeypatch):
    """The tiny models' identity is their vocabulary: each token id picks a random embedding row. Issue 21's
    "knowledge" template entered the BPE corpus and re-drew every tiny model under the same cache name (the brief
    demo's selected-frames accuracy went 0.94 -> 0.81). Ids pinned as of v1; templates added later stay out of the
    corpus; the cache folder is named by the corpus hash, so a real corpus change builds new models."""
    from roadbuddy_utils.models import prompts, tiny

    tok = build_tokenizer("internvl")
    ids = {w: tok.convert_tokens_to_ids(w) for w in ["Ġ1", "Ġ2", "Ġ3", "Ġ4", "Ġ40", "Ġ50", "Ġ60", "Ġ80"]}
    assert ids == {"Ġ1": 423, "Ġ2": 550, "Ġ3": 551, "Ġ4": 552, "Ġ40": 563, "Ġ50": 564, "Ġ60": 565, "Ġ80": 566}
    assert tok.tokenize(" 40 km/h") == ["Ġ40", "Ġkm", "/", "h"] and tiny.corpus_hash() == "b4eb8c8a"
    extra = {lang: t | {"later": "Một mẫu câu mới QCVN 2099"} for lang, t in prompts.TEMPLATES.items()}
    monkeypatch.setattr(prompts, "TEMPLATES", extra)
    assert tiny.corpus_hash() == "b4eb8c8a" and build_tokenizer("internvl").get_vocab() == tok.get_vocab()
    monkeypatch.setattr(tiny, "CORPUS_TEMPLATE_KEYS", tiny.CORPUS_TEMPLATE_KEYS + ("later",))
    assert tiny.corpus_hash() != "b4eb8c8a"  # a deliberate corpus change: another cache folder
    monkeypatch.setenv("RB_TINY_CACHE", "/nonexistent-cache")
    monkeypatch.setattr(tiny, "build_tiny", lambda family, path, head_dim: None)
    assert tiny.resolve_model_id("tiny:internvl").endswith(f"internvl-{tiny.TINY_VERSION}-{tiny.corpus_hash()}")

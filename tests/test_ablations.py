"""Ablations and letter-bias correction inside run_inference: no_video, shuffle_choices, debias."""
import hashlib
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from roadbuddy_utils.answer.batch import InferConfig, estimate_prior, run_inference
from roadbuddy_utils.data.questions import load_items
from roadbuddy_utils.evaluate import compare as ev
from roadbuddy_utils.evaluate import results
from roadbuddy_utils.models.config import ModelConfig
from roadbuddy_utils.models.example import Example

TRAIN = "traffic_buddy_train+public_test/train/train.json"


def softmax(x):
    z = np.exp(np.asarray(x, float) - np.max(x))
    return z / z.sum()


class TextVLM:
    """Scores that depend only on the choice texts, times a planted preference for shown positions.

    logit(choice at shown position j) = content(question, text) + bias[j], where content is 1.2 for
    the gold text plus a fixed pseudo-random jitter in [0, 1): the exact model the debiasing assumes.
    """

    def __init__(self, items, bias=(0.0, 0.0, 0.0, 0.0)):
        self.cfg = ModelConfig(n_frames=2)
        self.gold = {i.id: i.choice_text(i.answer) for i in items}
        self.bias, self.seen = np.asarray(bias, float), []

    def describe(self):
        return {"model": "text-only fake", "bias": self.bias.tolist()}

    def render(self, ex, lang="vi"):
        return f"{ex.item.id}|{ex.frames is None}|" + "|".join(f"{l}.{t}" for l, t in ex.item.choices)

    def content(self, qid, text):
        jitter = int(hashlib.sha1(f"{qid}:{text}".encode()).hexdigest()[:8], 16) / 16 ** 8
        return (1.2 if text == self.gold[qid] else 0.0) + jitter

    def answer(self, examples, scoring="likelihood", lang="vi", max_new_tokens=16):
        out = []
        for ex in examples:
            self.seen.append((ex.item.id, list(ex.item.choices), ex.frames is None))
            k = ex.item.n_choices
            p = softmax([self.content(ex.item.id, t) for _, t in ex.item.choices] + self.bias[:k])
            s = {l: round(float(x), 6) for (l, _), x in zip(ex.item.choices, p)}
            out.append({"pred": max(s, key=s.get), "scores": s, "raw": None, "source": "likelihood", "error": None})
        return out


@pytest.fixture(scope="module")
def items(demo_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("abl") / "data"
    shutil.copytree(demo_small, root)
    return load_items(root / TRAIN)


def by_id(lines):
    return {r["id"]: r for r in lines}


def test_shuffled_choices_map_back_to_the_same_answers(items, tmp_path):
    """Without position effects, a shuffled run mapped back must equal the plain run exactly."""
    cfg = dict(batch_size=4, time_budget_s=None, cache_dir=str(tmp_path / "cache"))
    plain = by_id(run_inference(items, TextVLM(items), InferConfig(**cfg), tmp_path / "plain", progress=False))
    vlm = TextVLM(items)
    shuf = run_inference(items, vlm, InferConfig(shuffle_choices=7, **cfg), tmp_path / "shuf", progress=False)
    assert len(shuf) == len(items) and any(r["perm"] != {l: l for l in r["perm"]} for r in shuf)
    original = {i.id: dict(i.choices) for i in items}
    shown = {qid: ch for qid, ch, _ in vlm.seen}
    for r in shuf:
        assert r["ablation"] == "shuffle_choices" and r["shuffle_seed"] == 7 and not r["text_only"]
        assert sorted(r["perm"].values()) == sorted(original[r["id"]])
        # the prompt showed the permuted order: shown letter l holds the text of original letter perm[l]
        assert all(original[r["id"]][r["perm"][l]] == t for l, t in shown[r["id"]])
        p = plain[r["id"]]
        assert r["pred"] == p["pred"] and r["correct"] == p["correct"] and list(r["scores"]) == list(p["scores"])
        assert r["scores"] == pytest.approx(p["scores"], abs=2e-6)
    assert sum(r["prompt_hash"] != plain[r["id"]]["prompt_hash"] for r in shuf) > len(items) // 2
    # with a position preference the shuffled run differs: that difference is what the ablation exposes
    biased = run_inference(items, TextVLM(items, (3, 0, 0, 0)), InferConfig(shuffle_choices=7, **cfg),
                           tmp_path / "shuf_biased", progress=False)
    assert any(r["pred"] != plain[r["id"]]["pred"] for r in biased)


def test_no_video_lines_are_text_only(items, tmp_path, tiny_vlm):
    vlm = tiny_vlm("internvl", n_frames=2)
    lines = run_inference(items, vlm, InferConfig(no_video=True, limit=5, cache_dir=str(tmp_path / "cache")),
                          tmp_path / "nv", progress=False)
    assert len(lines) == 5
    for r, it in zip(lines, items):
        assert r["text_only"] and r["ablation"] == "no_video" and r["n_frames"] == 0 and r["frame_times"] == []
        assert r["error"] is None and r["pred"] in it.letters and set(r["scores"]) == set(it.letters)
        text_prompt = vlm.render(Example(it, None))
        assert "Không có khung hình" in text_prompt
        assert r["prompt_hash"] == hashlib.sha1(text_prompt.encode()).hexdigest()[:12]
    assert not list((tmp_path / "cache").glob("*.npz"))  # nothing was decoded
    assert json.loads((tmp_path / "nv" / "run_config.json").read_text())["ablation"] == "no_video"


PLANTED = (2.5, 0.0, 0.0, 0.0)  # a strong preference for shown position A


def test_debias_prior_recovers_a_planted_letter_prior(items, tmp_path):
    cfg = dict(no_video=True, batch_size=8, time_budget_s=None)
    raw = run_inference(items, TextVLM(items, PLANTED), InferConfig(**cfg), tmp_path / "raw", progress=False)
    clean = run_inference(items, TextVLM(items), InferConfig(**cfg), tmp_path / "clean", progress=False)
    deb = run_inference(items, TextVLM(items, PLANTED), InferConfig(debias="prior", **cfg), tmp_path / "deb",
                        progress=False)
    est = json.loads((tmp_path / "deb" / "letter_prior.json").read_text())
    for k in (2, 3, 4):  # every choice visits every position: the content cancels, the prior remains
        assert np.allclose(est["prior"][str(k)], softmax(PLANTED[:k]), atol=1e-4)
    # labels play no part: the same estimate from questions stripped of their answers
    vlm = TextVLM(items, PLANTED)
    blind = estimate_prior([replace(i, answer=None) for i in items], vlm, InferConfig(debias="prior", **cfg),
                           None, progress=False)
    assert blind["prior"] == {int(k): v for k, v in est["prior"].items()}
    df_raw, df_deb = (results.read_predictions(tmp_path / d / "predictions.jsonl") for d in ("raw", "deb"))
    assert ev.accuracy(df_deb) > ev.accuracy(df_raw) + 0.2
    assert [r["pred"] for r in deb] == [r["pred"] for r in clean]  # exactly the unbiased answers
    share = lambda df: ev.letter_distribution(df).loc["A", "pred"]  # noqa: E731
    gold_a = ev.letter_distribution(df_raw).loc["A", "gold"]
    assert share(df_raw) > 0.9 and abs(share(df_deb) - gold_a) < abs(share(df_raw) - gold_a)
    for r, r0 in zip(deb, raw):
        assert r["debias"] == "prior" and r["pred_raw"] == r0["pred"] and r["scores_raw"] == r0["scores"]
    run_config = json.loads((tmp_path / "deb" / "run_config.json").read_text())
    assert run_config["debias"] == "prior" and run_config["letter_prior"]["prior"] == est["prior"]


def test_debias_cyclic_and_with_shuffled_choices(items, tmp_path):
    cfg = dict(no_video=True, batch_size=8, time_budget_s=None)
    clean = run_inference(items, TextVLM(items), InferConfig(**cfg), tmp_path / "clean", progress=False)
    vlm = TextVLM(items, PLANTED)
    cyc = run_inference(items, vlm, InferConfig(debias="cyclic", **cfg), tmp_path / "cyc", progress=False)
    assert len(vlm.seen) == sum(i.n_choices for i in items)  # one pass per cyclic shift
    assert [r["pred"] for r in cyc] == [r["pred"] for r in clean]
    for r, r0 in zip(cyc, clean):
        assert r["debias"] == "cyclic" and r["scores"] == pytest.approx(r0["scores"], abs=1e-4)
    assert sum(r["pred_raw"] == "A" for r in cyc) > 0.9 * len(items)  # the raw scores keep the bias
    # shuffled and debiased: mapping back composes with the correction
    both = run_inference(items, TextVLM(items, PLANTED), InferConfig(debias="cyclic", shuffle_choices=3, **cfg),
                         tmp_path / "both", progress=False)
    assert [r["pred"] for r in both] == [r["pred"] for r in clean]
    assert all(r["ablation"] == "no_video+shuffle_choices" and r["perm"] for r in both)


def test_variants_are_validated_and_never_mixed(items, tmp_path):
    with pytest.raises(ValueError, match="likelihood"):
        InferConfig(scoring="generate", debias="prior")
    with pytest.raises(ValueError, match="debias"):
        InferConfig(debias="mean")
    with pytest.raises(ValueError, match="seed"):
        InferConfig(shuffle_choices=True)
    run_inference(items[:3], TextVLM(items), InferConfig(no_video=True), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another run variant"):
        run_inference(items[:3], TextVLM(items), InferConfig(no_video=True, debias="cyclic"), tmp_path, progress=False)

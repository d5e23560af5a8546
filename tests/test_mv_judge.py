"""The local LLM judge of open multi-camera answers: the toolkit's rubrics, the score read from the reply, a
reply without a score recorded (never retried forever), records cached by position (multiview/judge.py)."""
import hashlib
import json

import pytest

from roadbuddy_utils.common.files import REPO
from roadbuddy_utils.multiview import judge_prompts
from roadbuddy_utils.multiview.judge import (
    JudgeItem,
    judge_prompt,
    parse_total_score,
    rubric_for,
    run_judge,
    visual_descriptions,
)
from roadbuddy_utils.multiview.mvscore import score_run

# sha256 prefixes of worldbench/drivebench evaluate/prompts.py at d8e1ab74 (the quoted text must stay theirs)
RUBRIC_HASHES = {"PERCEPTION_MCQ_PROMPT": "b0dd42d4a3d48ecc", "PERCEPTION_VQA_PROMPT": "38e3db0c7afc10ad",
                 "PREDICTION_MCQ_PROMPT": "d2b2eb4e0b741e69", "PREDICTION_VQA_PROMPT": "e9a37fb6292fded1",
                 "PLANNING_VQA_PROMPT": "cefd8eaaef8acd33", "BEHAVIOR_MCQ_PROMPT": "4179863f37e5048c"}
OBJ_Q = "What actions could the ego vehicle take based on <c1,CAM_BACK,0.5073,0.5778>? Why take this action?"


class FakeJudge:
    """Counts calls; replies with a fixed text, or raises."""

    def __init__(self, reply="", error=None):
        self.reply, self.error, self.calls, self.name = reply, error, 0, "fake-judge"

    def chat_generate(self, prompts, max_new_tokens, do_sample=False):
        self.calls += len(prompts)
        assert do_sample is False and all(system is None for system, _ in prompts)
        if self.error:
            raise self.error
        return [self.reply] * len(prompts)


def test_rubrics_are_the_toolkits_and_attributed():
    for name, h in RUBRIC_HASHES.items():
        assert hashlib.sha256(getattr(judge_prompts, name).encode()).hexdigest()[:16] == h, name
    doc = judge_prompts.__doc__
    assert "worldbench/drivebench" in doc and "Apache License, Version 2.0" in doc


def test_prompt_fields_and_rubric_per_subtask():
    assert rubric_for("Planning-VQAs-Object-Description", "open") == "planning_vqa"
    assert rubric_for("Perception-VQAs-Scene-Description", "open") == "perception_vqa"
    assert rubric_for("Prediction-MCQs", "open") == "prediction_vqa"
    assert rubric_for("Prediction-MCQs", "yesno") == "prediction_mcq"
    assert rubric_for("Prediction-MCQs", "mcq", "behavior") == "behavior_mcq"
    p = judge_prompt("planning_vqa", OBJ_Q, "Keep going.", "Turn left.")
    assert p.startswith(judge_prompts.SYSTEM_MESSAGE + "\nPlease evaluate")
    assert f'"{OBJ_Q}"' in p and '"Keep going."' in p and '"Turn left."' in p and "No visual description available" in p
    assert "{" not in p and p.rstrip().endswith("Brief Summary:")


@pytest.mark.parametrize("reply, expected", [
    ("1. Action Prediction Accuracy (40 points): 30\nTotal Score: 85\n\nBrief Summary: good", (85, "toolkit")),
    ("**Total Score:** 72", (72, "lenient")), ("Total Score: 150", (100, "toolkit,clamped")),
    ("total score - 0 points", (0, "lenient")), ("I cannot grade this.", (None, None)), (None, (None, None)),
    ("Total Score: \n\nBrief Summary: it is fine", (None, None))])
def test_parse_total_score(reply, expected):
    assert parse_total_score(reply) == expected


def test_reply_without_score_is_recorded_once_and_reused(tmp_path):
    items = [JudgeItem(k, "planning_vqa", judge_prompt("planning_vqa", OBJ_Q, "Keep going.", f"answer {k}")) for k in (0, 1)]
    fake = FakeJudge("The answer is reasonable.")
    recs = run_judge(items, fake, tmp_path / "j.jsonl", max_new_tokens=8)
    assert fake.calls == 2 and all(r["score"] is None and r["raw"] == "The answer is reasonable." for r in recs.values())
    recs = run_judge(items, fake, tmp_path / "j.jsonl", max_new_tokens=8)
    assert fake.calls == 2 and all(r["cached"] for r in recs.values())  # greedy: the same reply, not asked again
    changed = [JudgeItem(0, "planning_vqa", items[0].prompt + " changed"), items[1]]
    run_judge(changed, fake, tmp_path / "j.jsonl", max_new_tokens=8)
    assert fake.calls == 3  # a changed prediction at a position is judged again


def test_an_error_is_recorded_and_retried_on_a_later_run_only(tmp_path):
    items = [JudgeItem(0, "perception_vqa", "p0"), JudgeItem(1, "perception_vqa", "p1")]
    broken = FakeJudge(error=RuntimeError("CUDA out of memory"))
    recs = run_judge(items, broken, tmp_path / "j.jsonl", batch_size=1)
    assert broken.calls == 2 and all("out of memory" in r["error"] and r["score"] is None for r in recs.values())
    fixed = FakeJudge("Total Score: 40")
    recs = run_judge(items, fixed, tmp_path / "j.jsonl")
    assert fixed.calls == 2 and [r["score"] for r in recs.values()] == [40, 40]


def test_tiny_model_judge_in_a_scored_run(tmp_path):
    """A tiny random model gives no score: recorded with its raw text, counted, ROUGE-L stands in."""
    gold = [{"scene_token": "s1", "frame_token": "f1", "question": OBJ_Q, "answer": "Keep going at the same speed.",
             "category": "planning"},
            {"scene_token": "s2", "frame_token": "f2", "question": OBJ_Q, "answer": "Turn left slowly.",
             "category": "planning"}]
    results = [dict(g, answer="Keep going.") for g in gold]
    res = score_run(results, gold, judge_model="tiny:qwen2_5_vl", cache_dir=tmp_path, impl="approx", n_boot=50,
                    judge_max_new_tokens=6)
    j = res["judge"]
    assert j["label"] == "local judge (tiny:qwen2_5_vl)" and j["n_items"] == 2 and j["official"] is False
    assert j["n_scored"] + j["n_no_score"] == 2 and j["n_errors"] == 0
    lines = [json.loads(x) for x in (tmp_path / "judge-tiny-qwen2_5_vl.jsonl").read_text().splitlines()]
    assert [r["index"] for r in lines] == [0, 1] and all(isinstance(r["raw"], str) for r in lines)
    row = res["subtasks"]["Planning-VQAs-Object-Description"]
    if j["n_scored"] == 0:  # the usual case for random weights
        assert row["llm_source"] == "stand-in: ROUGE-L (the judge gave no score)" and row["judge"] is None
        assert j["no_score_rate"] == 1.0 and j["examples_no_score"]
        assert res["phase_score"]["llm"] == "stand-in: ROUGE-L (the judge gave no score)"
    again = score_run(results, gold, judge_model="tiny:qwen2_5_vl", cache_dir=tmp_path, impl="approx", n_boot=50,
                      judge_max_new_tokens=6)
    assert again["judge"]["n_cached"] == 2


def test_judge_scores_enter_the_formula_by_position(tmp_path):
    """Two items with the same scene, frame and question keep their own judge records."""
    gold = [{"scene_token": "s1", "frame_token": "f1", "question": OBJ_Q, "answer": a, "category": "planning"}
            for a in ("Keep going at the same speed.", "Stop and wait.")]
    results = [dict(g, answer="Keep going at the same speed.") for g in gold]
    res = score_run(results, gold, phase=1, judge_model=FakeJudge("Total Score: 80"), cache_dir=tmp_path,
                    impl="approx", n_boot=50)
    row = res["subtasks"]["Planning-VQAs-Object-Description"]
    assert row["judge"] == 80.0 and row["score"] == 80.0 and row["llm_source"] == "local judge (fake-judge)"
    assert res["phase_score"]["llm"] == "local judge (fake-judge)" and res["join"]["duplicate_triples"] == 1
    recs = [json.loads(x) for x in (tmp_path / "judge-fake-judge.jsonl").read_text().splitlines()]
    assert [r["index"] for r in recs] == [0, 1] and recs[0]["key"] != recs[1]["key"]
    p2 = score_run(results, gold, phase=2, judge_model=FakeJudge("Total Score: 80"), cache_dir=tmp_path,
                   impl="approx", n_boot=50)["subtasks"]["Planning-VQAs-Object-Description"]
    assert p2["score"] == pytest.approx(0.1 * p2["rouge_l"] + 0.1 * p2["meteor"] + 0.8 * 80.0, abs=0.02)


def test_visual_descriptions_as_the_toolkit_looks_them_up(tmp_path):
    desc = {"s1": {"key_frames": {"f1": {"key_object_infos": {"<c1,CAM_BACK,795.0,514.2>": {
        "Visual_description": "Gray sedan."}}}}}}
    p = tmp_path / "visual_description.json"
    p.write_text(json.dumps(desc))
    look = visual_descriptions(p)
    assert look("s1", "f1", "Is <c1,CAM_BACK,0.5,0.5> moving?") == "gray sedan."
    assert look("s1", "f1", "In this scenario, what are safe actions to take for the ego vehicle?").startswith("No visual")
    assert look("s1", "f1", "Is <c2,CAM_FRONT,0.5,0.5> moving?") is None and look("s9", "f1", "<c1,CAM_BACK,1,1>") is None


def test_text_only_chat_model_as_judge(tmp_path):
    """A causal LM that is not a vision-language model goes through TextChat."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from roadbuddy_utils.models.tiny import resolve_model_id
    from roadbuddy_utils.multiview.judge import TextChat, load_judge

    tok = AutoTokenizer.from_pretrained(resolve_model_id("tiny:qwen2_5_vl"))
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096))
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    judge = load_judge(str(tmp_path / "m"))
    assert isinstance(judge, TextChat)
    recs = run_judge([JudgeItem(3, "perception_vqa", judge_prompt("perception_vqa", "Q?", "A car.", "A bus."))],
                     judge, tmp_path / "j.jsonl", max_new_tokens=4)
    assert recs[3]["error"] is None and isinstance(recs[3]["raw"], str)


@pytest.mark.engine
@pytest.mark.skipif(not (REPO / ".venv-engine" / "bin" / "python").exists(),
                    reason="no engine environment: bash scripts/setup.sh --engine (CI creates it)")
def test_judge_through_the_serving_engine_gives_the_hf_reply(tmp_path):
    """backend vllm: the same greedy reply as transformers for the same rubric prompt, recorded alike."""
    from roadbuddy_utils.multiview.judge import load_judge

    items = [JudgeItem(0, "planning_vqa", judge_prompt("planning_vqa", OBJ_Q, "Keep going.", "Turn left."))]
    model = "tiny:qwen2_5_vl@hd32"
    hf = run_judge(items, load_judge(model), tmp_path / "hf.jsonl", max_new_tokens=8, model_name=model)
    eng = run_judge(items, model, tmp_path / "vllm.jsonl", max_new_tokens=8, backend="vllm",
                    engine={"max_model_len": 4096})
    assert eng[0]["error"] is None, eng[0]["error"]
    assert eng[0]["raw"] == hf[0]["raw"] and eng[0]["score"] == hf[0]["score"]

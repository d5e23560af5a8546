"""Multi-camera scores built as the official ones: the formula, joins by position, the DriveBench letter
regex as a sensitivity row, intervals by scene, and the mv-score command (multiview/official.py, mvscore.py)."""
import json

import numpy as np
import pytest

from roadbuddy_utils.__main__ import main
from roadbuddy_utils.common.stats import grouped_bootstrap, grouped_bootstrap_stat
from roadbuddy_utils.multiview import official
from roadbuddy_utils.multiview.data import MV_ANSWERED, SUBTASKS
from roadbuddy_utils.multiview.mvscore import join_by_position, read_items, score_run, table
from roadbuddy_utils.multiview.scoring import extract_choice

DRIVEBENCH = MV_ANSWERED  # DriveBench-shaped, project-written: the real sample's size and mix
CORRUPTION_Q = ("What's the current type of corruption? Please select the correct answer from the following options: "
                "A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption.")


# ---------------------------------------------------------------------------------------------- the formula

def test_baseline_per_subtask_numbers_give_the_published_totals():
    p2 = official.phase_score(official.BASELINE[2], official.PHASE_COUNTS[2])
    assert round(p2, 2) == 43.67 and abs(p2 - official.PUBLISHED_TOTAL[2]) < 0.05
    p1 = official.phase_score(official.BASELINE[1], official.PHASE_COUNTS[1])
    assert 42.2 <= p1 <= 42.4  # published 42.5 from a table rounded to one decimal
    assert sum(official.PHASE_COUNTS[2].values()) == 2453 and sum(official.PHASE_COUNTS[1].values()) == 1396
    assert official.final_score(p1, p2) == pytest.approx(0.2 * p1 + 0.8 * p2)
    assert official.final_score(p1, None) is None


def test_changing_one_count_moves_the_total_as_the_formula_says():
    scores, counts = official.BASELINE[2], dict(official.PHASE_COUNTS[2])
    base = official.phase_score(scores, counts)
    counts["Corruption-MCQs"] += 100  # 100 more corruption questions at 81.7
    moved = official.phase_score(scores, counts)
    assert moved == pytest.approx((base * 2453 + 100 * 81.7) / 2553)
    assert moved > base  # a subtask above the mean pulls the total up
    counts["Corruption-MCQs"] = 0  # a subtask without questions drops out of numerator and denominator
    assert official.phase_score(scores, counts) == pytest.approx((base * 2453 - 104 * 81.7) / 2349)


def test_vqa_combination_per_phase_and_missing_parts():
    assert official.vqa_score(1, llm=40.0, rouge_l=90.0, meteor=90.0) == 40.0
    assert official.vqa_score(2, llm=40.0, rouge_l=50.0, meteor=30.0) == pytest.approx(0.1 * 50 + 0.1 * 30 + 0.8 * 40)
    assert official.vqa_score(2, llm=40.0, rouge_l=None, meteor=30.0) is None and official.vqa_score(1, None) is None
    assert official.subtask_score("Perception-MCQs", 2, accuracy=70.0, llm=10.0) == 70.0
    assert official.subtask_score("Planning-VQAs-Scene-Description", 1, accuracy=70.0, llm=10.0) == 10.0
    assert official.mixed_score(3, 100.0, 1, 20.0) == pytest.approx(80.0)  # every question counts once
    assert official.mixed_score(3, 100.0, 1, None) is None and official.mixed_score(0, None, 2, 50.0) == 50.0
    assert {official.group(s) for s in SUBTASKS} == {"MCQ", "VQA"}
    with pytest.raises(ValueError, match="phase must be 1 or 2"):
        official.vqa_score(3, 10.0)


# ---------------------------------------------------------------------------------------------- letter regex

@pytest.mark.parametrize("answer, toolkit", [
    ("C", "C"), ("C. Turn right.", "C"), ("The answer is C, a car turning", "A"),  # the article read as A
    ("E", ""), ("E. WaterSplashCorruption", ""), ("", ""), ("option b", "B"), ("d", "D")])
def test_toolkit_letter_reproduces_its_faults(answer, toolkit):
    assert official.toolkit_letter(answer) == toolkit


def test_toolkit_accuracy_faults_on_corruption_questions():
    assert official.toolkit_correct("", "E")  # no letter read on either side: counted correct
    assert official.toolkit_correct("E", "E") and not official.toolkit_correct("D", "E")
    assert extract_choice("E", CORRUPTION_Q) == "E" and extract_choice("", CORRUPTION_Q) is None


# ---------------------------------------------------------------------------------------------- joins

def _gold_items():
    """Five items over two scenes; positions 1 and 3 are the same scene / frame / question with
    different gold answers (as phase 2 repeats 9 triples)."""
    q_yes = "Is <c1,CAM_BACK,795.0,514.2> a traffic sign or a road barrier?"
    mcq = ("What is the moving status of object <c1,CAM_BACK,795.0,514.2>? Please select the correct answer from the "
           "following options: A. Going ahead. B. Turn left. C. Turn right.")
    g = [{"scene_token": "s1", "frame_token": "f1", "question": mcq, "answer": "A", "category": "perception"},
         {"scene_token": "s1", "frame_token": "f1", "question": q_yes, "answer": "No.", "category": "prediction"},
         {"scene_token": "s2", "frame_token": "f2", "question": CORRUPTION_Q, "answer": "E", "category": "corruption"},
         {"scene_token": "s1", "frame_token": "f1", "question": q_yes, "answer": "Yes.", "category": "prediction"},
         {"scene_token": "s2", "frame_token": "f2", "question": "In this scenario, what are safe actions to take for "
          "the ego vehicle?", "answer": "Keep going at the same speed.", "category": "planning"}]
    return g


def test_join_by_position_keeps_duplicated_questions_apart():
    gold = _gold_items()
    preds = ["A", "No", "", "No", "Keep going at the same speed."]
    results = [dict(g, answer=p) for g, p in zip(gold, preds)]
    rows, join = join_by_position(results, gold)
    assert [r["gold"] for r in rows] == ["A", "No.", "E", "Yes.", "Keep going at the same speed."]
    assert join["duplicate_triples"] == 1 and join["n_question_mismatches"] == 0
    res = score_run(results, gold, phase=2, impl="approx", n_boot=100)
    pm = res["subtasks"]["Prediction-MCQs"]
    assert pm["n"] == 2 and pm["accuracy"] == 50.0  # the duplicate stays two items: one right, one wrong
    # the empty answer to the corruption question: wrong here, right by the toolkit's regex
    assert res["subtasks"]["Corruption-MCQs"]["accuracy"] == 0.0
    sens = res["sensitivity"]
    assert sens["n_mcq"] == 2 and sens["accuracy_toolkit_regex"] == 100.0 and sens["accuracy_project"] == 50.0
    assert sens["n_yesno_not_scored_by_toolkit"] == 2


def test_join_reports_mismatches_missing_and_extra_lines():
    gold = _gold_items()
    results = [dict(g, answer="A") for g in gold[:3]]
    results[1]["question"] = "another question"
    rows, join = join_by_position(results, gold)
    assert join["n_question_mismatches"] == 1 and join["mismatches"] == [1]
    assert join["n_missing_predictions"] == 2 and [r["pred"] for r in rows[3:]] == [None, None]
    res = score_run(results, gold, impl="approx", n_boot=50)
    assert res["subtasks"]["Planning-VQAs-Scene-Description"]["rouge_l"] == 0.0  # unanswered: an empty answer
    _, join = join_by_position(results + [dict(gold[0])] * 4, gold)
    assert join["n_extra_results"] == 2


def test_own_gold_answers_when_no_gold_file():
    """06's results.json carries the gold answer of each line: mv-score needs no second file then."""
    gold = _gold_items()
    lines = [dict(g, gold_answer=g["answer"], answer=g["answer"]) for g in gold]
    res = score_run(lines, impl="approx", n_boot=50)
    assert res["phase"] == 2  # a corruption question is present
    assert all(d["accuracy"] in (None, 100.0) for d in res["subtasks"].values())


# ---------------------------------------------------------------------------------------------- intervals

def test_general_bootstrap_matches_the_mean_one_and_handles_vectors():
    rng = np.random.default_rng(3)
    v, u = rng.random(60), rng.integers(0, 9, 60)
    assert grouped_bootstrap_stat(u, lambda i: v[i].mean(), 500, 1)[1] == pytest.approx(grouped_bootstrap(v, u, 500, 1)[1])
    val, lo, hi = grouped_bootstrap_stat(u, lambda i: np.array([v[i].mean(), np.nan]), 200)
    assert lo[0] <= val[0] <= hi[0] and np.isnan(lo[1]) and np.isnan(hi[1])


def test_intervals_resample_scenes():
    """Per-item errors spread over scenes: an interval per figure; one scene only: no spread at all."""
    gold = read_items(DRIVEBENCH)
    rng = np.random.default_rng(0)
    results = [dict(g, answer=g["answer"] if rng.random() < 0.6 else ("B" if len(g["answer"]) == 1 else "Stop."))
               for g in gold]
    res = score_run(results, gold, impl="approx", n_boot=300)
    for d in res["subtasks"].values():
        for f in ("accuracy", "rouge_l", "score"):
            if d[f] is not None:
                lo, hi = d[f"{f}_ci"]
                assert lo <= d[f] <= hi
    assert res["interval"]["n_scenes"] == 3
    ps = res["phase_score"]
    assert ps["ci"][0] < ps["value"] < ps["ci"][1]
    one = [dict(r, scene_token="same") for r in results]
    ps1 = score_run(one, [dict(g, scene_token="same") for g in gold], impl="approx", n_boot=100)["phase_score"]
    assert ps1["ci"] == [ps1["value"], ps1["value"]]


# ---------------------------------------------------------------------------------------------- the command

@pytest.mark.parametrize("which", ["project", "real"])
def test_mv_score_on_the_drivebench_items_with_gold_as_prediction(capsys, real_multiview, which):
    """The 19 DriveBench items with answers (the project's; the real sample where ../shared has it), the
    gold used as prediction: accuracy and ROUGE-L 100."""
    path = DRIVEBENCH if which == "project" else real_multiview("drivebench_test_sample.json")
    assert main(["mv-score", str(path), "--gold", str(path), "--n-boot", "200", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) >= {"subtasks", "phase_score", "metrics_impl", "judge"} and res["judge"] is None
    assert res["n_scored"] == 19 and res["join"]["n_question_mismatches"] == 0
    for s, d in res["subtasks"].items():
        assert d["accuracy"] in (None, 100.0) and d["rouge_l"] in (None, 100.0), s
        assert d["score"] == 100.0
    assert res["phase_score"]["value"] == 100.0 and res["phase"] == 1
    assert res["phase_score"]["official_weights"]["subtasks_missing"] == ["Perception-VQAs-Object-Description"]
    assert res["metrics_impl"]["impl"] in ("coco", "approx")


def test_mv_score_table_text_and_errors(tmp_path, capsys):
    gold = read_items(DRIVEBENCH)
    results = [dict(g, answer="A" if len(g["answer"]) == 1 else "Keep going.") for g in gold]
    rp = tmp_path / "results.json"
    rp.write_text(json.dumps(results))
    out = tmp_path / "score.json"
    assert main(["mv-score", str(rp), "--gold", str(DRIVEBENCH), "--impl", "approx", "--n-boot", "100",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "phase 1 score" in text and "[" in text and "APPROXIMATION" in text and "stand-in: ROUGE-L" in text
    assert "DriveBench letter regex" in text
    saved = json.loads(out.read_text())
    assert table(saved).loc["Perception-MCQs", "accuracy"].startswith(f"{saved['subtasks']['Perception-MCQs']['accuracy']:.1f} [")
    # the final score from the other phase's --json output
    other = tmp_path / "p2.json"
    other.write_text(json.dumps({"phase_score": {"phase": 2, "value": 50.0}}))
    assert main(["mv-score", str(rp), "--gold", str(DRIVEBENCH), "--impl", "approx", "--n-boot", "50",
                 "--other-phase", str(other), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["final_score"] == pytest.approx(round(0.2 * res["phase_score"]["value"] + 0.8 * 50.0, 2))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["mv-score", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err

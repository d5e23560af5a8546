"""05's inputs: answer keys in every form, submission CSVs beside predictions.jsonl runs, missing ids and
letters a question does not offer (fast; one papermill run of 05 marked notebooks)."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from roadbuddy_utils.data import keys
from roadbuddy_utils.data.questions import DatasetError, load_items
from roadbuddy_utils.data.split import attach_answers
from roadbuddy_utils.evaluate import compare, results

ITEMS = [{"id": "q1", "question": "Biển gì?", "choices": ["A. Cấm dừng", "B. Cấm đỗ", "C. Hết cấm", "D.Giao nhau"],
          "answer": "D.Giao nhau", "video_path": "train/videos/a.mp4"},
         {"id": "q2", "question": "Đúng hay sai?", "choices": ["A. Đúng", "B. Sai"], "answer": "B. Sai",
          "video_path": "train/videos/a.mp4"},
         {"id": "q3", "question": "Đèn màu gì?", "choices": ["A. Đỏ", "B. Vàng", "C. Xanh"], "answer": "Xanh",
          "video_path": "train/videos/b.mp4"}]


def _test_items():
    return [{k: v for k, v in it.items() if k != "answer"} for it in ITEMS]


# --------------------------------------------------------------------------- answer keys

def test_the_three_key_forms_give_the_same_letters(tmp_path, write_items):
    competition = write_items(ITEMS, name="gold.json")  # full strings, "D.Text", a bare choice text
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"q1": "D", "q2": "B. Sai", "q3": "c"}))
    csv = tmp_path / "key.csv"
    csv.write_text("id,answer\nq1,D\nq2,b\nq3,C\n")
    want = {"q1": "D", "q2": "B", "q3": "C"}
    assert keys.read_answer_key(competition) == keys.read_answer_key(mapping) == keys.read_answer_key(csv) == want


def test_key_problems_name_file_line_id_and_field(tmp_path, write_items):
    csv = tmp_path / "key.csv"
    csv.write_text("id,answer\nq1,D\nq2,maybe\n,A\nq3,A\nq3,B\nq4\n")
    gold, problems = keys.parse_answer_key(csv)
    text = [str(p) for p in problems]
    assert gold == {"q1": "D"}  # every bad entry left out, none guessed
    assert f"{csv}:3 id=q2 field=answer: answer 'maybe' is not a letter A-H" in text
    assert f"{csv}:4 id=#4 field=id: missing id" in text
    assert any(t.startswith(f"{csv}:6 id=q3 field=answer: answered both A and B") for t in text)
    assert any(t.startswith(f"{csv}:7 id=q4 field=answer: no answer") for t in text)
    with pytest.raises(DatasetError) as e:
        keys.read_answer_key(csv)
    assert len(e.value.problems) == 4
    bad = [dict(ITEMS[0], answer="E. Không có")]
    _, problems = keys.parse_answer_key(write_items(bad, name="gold.json"))
    assert "id=q1 field=answer: answer 'E. Không có' is not one of the choices" in str(problems[0])
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [')
    _, problems = keys.parse_answer_key(broken)
    assert keys.file_problems(problems) and "invalid JSON" in str(problems[0])
    with pytest.raises(DatasetError, match="invalid JSON"):
        attach_answers([], broken)


def test_attach_answers_takes_every_form_and_never_guesses(tmp_path, write_items):
    path = write_items(_test_items(), name="public_test.json", folder="public_test")
    csv = tmp_path / "key.csv"
    csv.write_text("id,answer\nq1,D\nq2,C\nq3,C\n")  # q2 offers A and B only
    with pytest.warns(UserWarning, match=r"id=q2 field=answer: C is not one of this question's letters"):
        items = attach_answers(load_items(path), csv)
    assert [i.answer for i in items] == ["D", None, "C"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean key warns about nothing
        items = attach_answers(load_items(path), write_items(ITEMS, name="gold.json", folder="keys"))
    assert [i.answer for i in items] == ["D", "B", "C"]


# --------------------------------------------------------------------------- submissions

def test_read_submission_letters_and_problems(tmp_path):
    p = tmp_path / "time_submission.csv"
    p.write_text("id,answer,time\nq1,b,1200\nq2,C. Xanh,900\nq3,,5\n,A,1\nq1,A,800\n")
    df = results.read_predictions(p)
    assert df.attrs["kind"] == "submission" and list(df["id"]) == ["q2", "q3", "q1"]
    assert [None if pd.isna(x) else x for x in df["pred"]] == ["C", None, "A"]
    assert list(df["time_ms"]) == [900.0, 5.0, 800.0]
    assert df["scores"].isna().all() and df["video"].isna().all()
    problems = {(x["line"], x["field"]): x["problem"] for x in df.attrs["problems"]}
    assert problems[(4, "answer")].startswith("no answer") and problems[(5, "id")].startswith("no id")
    assert "line 2: B, line 6: A" in problems[(6, "id")]
    (tmp_path / "noheader.csv").write_text("q1,A\n")
    with pytest.raises(ValueError, match=r"noheader.csv: a submission needs a header"):
        results.read_predictions(tmp_path / "noheader.csv")


def _scenario(tmp_path, write_items):
    """Gold for 6 questions on 3 videos; a scored predictions.jsonl run; submission a lacks q1, submission b
    answers q2 (two choices) with D."""
    items = [{"id": f"q{k}", "question": "Biển báo gì?" if k % 2 else "Đèn màu gì?",
              "choices": ["A. Một", "B. Hai"] if k == 2 else ["A. Một", "B. Hai", "C. Ba", "D. Bốn"],
              "answer": "AB"[k % 2] + (". Một" if k % 2 == 0 else ". Hai"), "video_path": f"train/videos/v{k // 2}.mp4"}
             for k in range(6)]
    data = write_items([{k: v for k, v in it.items() if k != "answer"} for it in items], name="test.json")
    gold = write_items(items, name="gold.json", folder="keys")
    letters = {it["id"]: it["answer"][0] for it in items}
    (tmp_path / "run").mkdir()
    lines = [{"id": i, "video": f"train/videos/v{k // 2}.mp4", "pred": g if k < 4 else "C", "n_choices": 2 if k == 2 else 4,
              "scores": {l: (0.7 if l == (g if k < 4 else "C") else 0.1) for l in ("AB" if k == 2 else "ABCD")},
              "time_ms": 800.0} for k, (i, g) in enumerate(letters.items())]
    (tmp_path / "run/predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a/submission.csv").write_text("id,answer\n" + "".join(f"{i},{g}\n" for i, g in letters.items() if i != "q1"))
    (tmp_path / "b/submission.csv").write_text("id,answer\n" + "".join(f"{i},{'D' if i == 'q2' else g}\n"
                                                                       for i, g in letters.items()))
    paths = [tmp_path / "run/predictions.jsonl", tmp_path / "a/submission.csv", tmp_path / "b/submission.csv"]
    return data, gold, paths


def test_submissions_beside_a_run_against_a_competition_key(tmp_path, write_items):
    data, gold_file, paths = _scenario(tmp_path, write_items)
    gold, key_problems = results.answer_key(gold_file)
    runs = results.load_runs(paths, ["run", "a", "b"], items=load_items(data), gold=gold)
    for df in runs.values():  # intervals resample videos: the questions' clips reach the submissions too
        assert len(df) == 6 and df["video"].notna().all() and df["n_choices"].notna().all()
    assert compare.accuracy(runs["run"]) == pytest.approx(4 / 6)
    assert compare.accuracy(runs["a"]) == pytest.approx(5 / 6)  # q1 missing: counted wrong, not left out
    assert compare.accuracy(runs["b"]) == pytest.approx(5 / 6)  # q2 answered D: wrong
    acc, lo, hi = compare.bootstrap_ci(runs["a"], n_boot=500)
    assert lo <= acc <= hi and lo >= 0.5  # 3 videos: 1/2, 2/2, 2/2 right
    d = compare.paired_comparison(runs["a"], runs["b"], n_boot=200)
    assert (d["b10"], d["b01"], d["n"]) == (1, 1, 6) and d["p_exact"] == 1.0
    table, problems = results.input_checks(runs, key_problems)
    t = table.set_index("run")
    assert t.loc["a", "n_missing"] == 1 and t.loc["b", "n_not_offered"] == 1 and t.loc["run", "scores"] == "6 of 6"
    assert t.loc["a", "scores"].startswith("none: left out of calibration") and (t["interval_unit"] == "video").all()
    assert {(r["run"], r["id"], r["field"]) for r in problems.to_dict("records")} == {("a", "q1", "id"), ("b", "q2", "answer")}
    assert problems.set_index("run").loc["b", "line"] == 4
    cal = compare.calibration_table(runs).set_index("run")
    assert cal.loc["run", "n_with_scores"] == 6 and cal.loc["a", "n_with_scores"] == 0 and np.isnan(cal.loc["a", "ece"])
    m = compare.evaluate_runs(runs, n_boot=100)
    assert m["runs"]["a"]["n"] == 6 and m["runs"]["a"]["coverage"] == [] and m["runs"]["b"]["debias_effect"] is None


def test_submissions_with_a_csv_key_and_no_questions(tmp_path, write_items):
    """No data_json: videos and choice counts come from the scored run of the same ids; without any
    run that has them, each question is its own unit and the table says so."""
    _, _, paths = _scenario(tmp_path, write_items)
    key = tmp_path / "key.csv"
    key.write_text("id,answer\n" + "".join(f"q{k},{'AB'[k % 2]}\n" for k in range(6)) + "q9,A\n")
    gold, _ = results.answer_key(key)
    runs = results.load_runs(paths, ["run", "a", "b"], gold=gold)
    assert runs["b"].set_index("id").loc["q3", "video"] == "train/videos/v1.mp4"
    assert runs["b"].set_index("id").loc["q2", "pred_offered"] is False  # A/B from the run's score letters
    assert all(len(df) == 7 and df.set_index("id").loc["q9", "missing"] for df in runs.values())
    alone = results.load_runs(paths[1:], ["a", "b"], gold=gold)
    table, _ = results.input_checks(alone)
    assert (table["interval_unit"] == "question (no video known)").all()
    assert compare.evaluate_runs(alone, n_boot=50)["runs"]["a"]["n"] == 7  # unknown choice counts do not crash


@pytest.mark.notebooks
def test_smoke_05_on_two_submissions_and_a_run(tmp_path, write_items):
    """05 itself: two CSVs and a predictions.jsonl against a competition-style key, with a vote ensemble."""
    import papermill as pm

    from roadbuddy_utils.common.files import REPO

    data, gold_file, paths = _scenario(tmp_path, write_items)
    out = tmp_path / "05"
    params = {"predictions": [str(p) for p in paths], "labels": ["run", "sub a", "sub b"], "data_json": str(data),
              "videos_root": str(data.parent.parent), "answers_json": str(gold_file), "cache_dir": str(tmp_path / "cache"),
              "output_dir": str(out), "n_boot": 200, "gallery_per_theme": 1,
              "ensembles": [{"label": "vote of 3", "method": "vote"}]}
    pm.execute_notebook(str(REPO / "notebooks/05_eval.ipynb"), str(tmp_path / "05.ipynb"), parameters=params,
                        cwd=str(REPO), kernel_name="python3", progress_bar=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m["runs_order"] == ["run", "sub a", "sub b", "vote of 3"]
    for r in m["runs"].values():
        assert r["n"] == 6 and r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    assert m["runs"]["sub a"]["accuracy"] == pytest.approx(5 / 6) and m["runs"]["sub a"]["n_with_scores"] == 0
    assert [p["run"] for p in m["paired"]] == ["sub a", "sub b", "vote of 3"]
    assert all(0 <= p["p_exact"] <= 1 for p in m["paired"])
    assert {(p["run"], p["id"]) for p in m["input_problems"]} == {("sub a", "q1"), ("sub b", "q2")}
    assert m["ensembles"][0]["ensemble"] == "vote of 3" and m["ensembles"][0]["best_member"] in ("sub a", "sub b")
    assert (out / "summary.md").read_text().count("submission") == 2

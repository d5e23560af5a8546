import csv
import json

import pytest

from roadbuddy_utils.answer.submit import SubmissionError, merge_predictions, write_submission


@pytest.fixture
def test_json(tmp_path):
    data = [{"id": "testb_0001", "question": "Q1", "choices": ["A. Có", "B. Không"], "video_path": "videos/a.mp4"},
            {"id": "testb_0003", "question": "Q2", "choices": ["A. 1", "B. 2", "C. 3", "D. 4"], "video_path": "videos/a.mp4"},
            {"id": "testb_0002", "question": "Q3", "choices": ["A. x", "B. y", "C. z"], "video_path": "videos/b.mp4"}]
    p = tmp_path / "private_test.json"
    p.write_text(json.dumps({"__count__": 3, "data": data}))
    return p


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_merge_shards_and_write_in_test_order(tmp_path, test_json):
    s0 = _jsonl(tmp_path / "s0.jsonl", [{"id": "testb_0001", "pred": "A", "time_ms": 1200.4},
                                        {"id": "testb_0003", "pred": None, "error": "oom"},
                                        {"id": "testb_0003", "pred": "D", "time_ms": 900}])  # resumed: last wins
    s1 = _jsonl(tmp_path / "s1.jsonl", [{"id": "testb_0002", "pred": "C", "time_ms": 15000}])
    files = write_submission(merge_predictions([s0, s1]), test_json, tmp_path / "out")
    rows = list(csv.reader(open(files["submission"])))
    assert rows == [["id", "answer"], ["testb_0001", "A"], ["testb_0003", "D"], ["testb_0002", "C"]]
    trows = list(csv.reader(open(files["time_submission"])))
    assert trows[0] == ["id", "answer", "time"] and trows[1] == ["testb_0001", "A", "1200"]


def test_every_problem_listed_and_nothing_written(tmp_path, test_json):
    preds = {"testb_0001": {"id": "testb_0001", "pred": "C"},  # 2-choice question
             "testb_0002": {"id": "testb_0002", "pred": None},
             "testb_9999": {"id": "testb_9999", "pred": "A"}}
    with pytest.raises(SubmissionError) as e:
        write_submission(preds, test_json, tmp_path / "out")
    msg = str(e.value)
    assert "id=testb_0001 field=pred: 'C' is not one of" in msg
    assert "id=testb_0002 field=pred" in msg and "id=testb_0003: no prediction" in msg
    assert "id=testb_9999: not in" in msg and len(e.value.problems) == 4
    assert not (tmp_path / "out" / "submission.csv").exists()


def test_conflicting_shards_refused(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", [{"id": "x", "pred": "A"}])
    b = _jsonl(tmp_path / "b.jsonl", [{"id": "x", "pred": "B"}])
    with pytest.raises(SubmissionError, match="answered A in .* but B"):
        merge_predictions([a, b])
    with pytest.raises(SubmissionError, match="not found"):
        merge_predictions([tmp_path / "nope.jsonl"])

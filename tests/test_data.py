import json
import subprocess
import sys

import pytest

from roadbuddy_utils.data import questions, split


def item(i="train_0001", **kw):
    base = {"id": i, "question": "Đèn màu gì?", "choices": ["A. Đỏ", "B. Vàng", "C. Xanh"],
            "answer": "A. Đỏ", "support_frames": [1.5], "video_path": "train/videos/a_x_clip_1_0_8_Y.mp4"}
    base.update(kw)
    return base


def problems_of(path, **kw):
    return questions.parse_items(path, **kw)[1]


# ----------------------------------------------------------------------------- quirks

@pytest.mark.parametrize("raw,expected", [
    ("A. Đúng", ("A", "Đúng")), ("D.Cấm rẽ trái", ("D", "Cấm rẽ trái")), ("B) 50 km/h", ("B", "50 km/h")),
    ("c. xe tải", ("C", "xe tải")), ("Không có chữ cái", (None, "Không có chữ cái")), ("Biển báo", (None, "Biển báo")),
])
def test_parse_choice(raw, expected):
    assert questions.parse_choice(raw) == expected


def test_two_three_four_choices(write_items):
    p = write_items([item("a", choices=["A. Đúng", "B. Sai"], answer="B. Sai"),
                     item("b"), item("c", choices=["A. 1", "B. 2", "C. 3", "D. 4"], answer="D. 4")])
    items = questions.load_items(p)
    assert [i.n_choices for i in items] == [2, 3, 4]
    assert [i.answer for i in items] == ["B", "A", "D"]


def test_doubled_eight_entry_list_collapses(write_items):
    four = ["A. Cấm đỗ", "B. Cấm dừng", "C. Cấm rẽ", "D.Cấm quay đầu"]
    items, problems = questions.parse_items(write_items([item(choices=four + four, answer="D. Cấm quay đầu")]))
    assert problems == []
    assert items[0].choices == [("A", "Cấm đỗ"), ("B", "Cấm dừng"), ("C", "Cấm rẽ"), ("D", "Cấm quay đầu")]
    assert items[0].answer == "D"


@pytest.mark.parametrize("answer,letter", [("B. Vàng", "B"), ("B", "B"), ("Vàng", "B"), ("b", "B"),
                                           ("C. Xan", "C"), ("  A. Đỏ ", "A")])
def test_answer_forms(write_items, answer, letter):
    assert questions.load_items(write_items([item(answer=answer)]))[0].answer == letter


def test_unknown_fields_kept(write_items):
    it = questions.load_items(write_items([item(_unused_="xyz", weather="rain")]))[0]
    assert it.extra == {"_unused_": "xyz", "weather": "rain"}


def test_test_split_without_answers(write_items):
    it = questions.load_items(write_items([{"id": "testa_0001", "question": "Q?", "choices": ["A. Có", "B. Không"],
                                       "video_path": "public_test/videos/v.mp4"}], "public_test.json", "public_test"))[0]
    assert it.answer is None and it.support_frames == []


def test_video_resolution_order(tmp_path, write_items):
    # train/public: relative to the split's parent; private: relative to the JSON's own folder
    (tmp_path / "train" / "videos").mkdir(parents=True)
    (tmp_path / "train" / "videos" / "v.mp4").write_bytes(b"x")
    p = write_items([item(video_path="train/videos/v.mp4")])
    assert questions.load_items(p)[0].video_path == tmp_path / "train" / "videos" / "v.mp4"
    (tmp_path / "priv" / "videos").mkdir(parents=True)
    (tmp_path / "priv" / "videos" / "w.mp4").write_bytes(b"x")
    p2 = write_items([{"id": "testb_0001", "question": "Q", "choices": ["A. Có", "B. Không"],
                       "video_path": "videos/w.mp4"}], "private_test.json", "priv")
    assert questions.load_items(p2)[0].video_path == tmp_path / "priv" / "videos" / "w.mp4"
    # an explicit videos_root wins when the file is there
    other = tmp_path / "elsewhere" / "train" / "videos"
    other.mkdir(parents=True)
    (other / "v.mp4").write_bytes(b"x")
    assert questions.load_items(p, videos_root=tmp_path / "elsewhere")[0].video_path == other / "v.mp4"


# ----------------------------------------------------------------------------- validation errors

def test_invalid_json_is_reported_with_position(write_items):
    p = write_items([], raw='{"data": [ {"id": "x",, } ]}')
    probs = problems_of(p)
    assert len(probs) == 1 and "invalid JSON" in probs[0].message and "line 1" in probs[0].message
    with pytest.raises(questions.DatasetError, match="invalid JSON"):
        questions.load_items(p)


def test_no_data_list(write_items):
    probs = problems_of(write_items([], raw='{"__count__": 0, "items": []}'))
    assert probs[0].field == "data" and "no 'data' list" in probs[0].message


def test_every_problem_listed_by_id_and_field(write_items):
    p = write_items([
        item("e1", question="  "),
        item("e2", choices=["A. Có"], answer=None),
        item("dup"), item("dup"),
        item("e4", answer="D. Không có"),
        item("e5", support_frames=[-1.0]),
        item("e6", support_frames=[9.5]),  # the clip is 0..8 s by its name
        item("e7", choices=["A. Có", "Không"], answer="A. Có"),
        item("ok"),
    ])
    items, probs = questions.parse_items(p)
    found = {(x.item_id, x.field) for x in probs}
    assert ("e1", "question") in found
    assert ("e2", "choices") in found
    assert ("dup", "id") in found
    assert ("e4", "answer") in found
    assert ("e5", "support_frames") in found and ("e6", "support_frames") in found
    assert ("e7", "choices[1]") in found
    assert all(str(p) in str(x) for x in probs)
    assert {i.id for i in items} >= {"ok", "e4", "e5", "e6", "e7"}  # soft problems keep the item
    assert not {"e1", "e2"} & {i.id for i in items}  # unusable ones are dropped (and reported)
    assert "past the clip's end (8 s)" in " ".join(x.message for x in probs)


def test_validate_cli_lists_everything_and_fails(write_items):
    p = write_items([item("bad1", question=""), item("bad2", answer="Z. nope"), item("good")])
    r = subprocess.run([sys.executable, "-m", "roadbuddy_utils", "validate", str(p)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "id=bad1 field=question: empty question" in r.stdout
    assert "id=bad2 field=answer" in r.stdout
    assert "missing videos: 1" in r.stdout  # "good" and "bad2" share one clip that does not exist
    assert "id=good field=video_path: video not found" in r.stdout
    assert "questions: 2" in r.stdout


def test_validate_cli_clean_file_exits_zero(demo_small):
    p = demo_small / "traffic_buddy_train+public_test" / "train" / "train.json"
    r = subprocess.run([sys.executable, "-m", "roadbuddy_utils", "validate", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert "no problems" in r.stdout and "missing videos: 0" in r.stdout


def test_summary(write_items):
    s = questions.summarize(questions.load_items(write_items([
        item("a", video_path="v1_clip_1_0_8_Y.mp4"), item("b", video_path="v1_clip_1_0_8_Y.mp4"),
        item("c", video_path="v2_clip_1_0_8_Y.mp4", choices=["A. Có", "B. Không"], answer="B. Không")])))
    assert s["questions"] == 3 and s["videos"] == 2
    assert s["questions_per_video"]["histogram"] == {1: 1, 2: 1}
    assert s["choice_counts"] == {2: 1, 3: 2}
    assert s["answer_letters"] == {"A": 2, "B": 1}
    assert len(s["missing_videos"]) == 2


# ----------------------------------------------------------------------------- split

def _many(n_videos=30, per=3):
    return [questions.Item(f"q{v}_{k}", "q", [("A", "x"), ("B", "y")], "A", [], None, f"v{v}.mp4")
            for v in range(n_videos) for k in range(per)]


def test_split_is_grouped_by_video_and_deterministic():
    items = _many()
    s1, s2 = split.make_split(items, 0.2, seed=3), split.make_split(items, 0.2, seed=3)
    assert s1 == s2
    vid = {i.id: i.video_rel for i in items}
    assert not {vid[i] for i in s1["train_ids"]} & {vid[i] for i in s1["val_ids"]}
    assert len(s1["val_videos"]) == 6 and len(s1["val_ids"]) == 18
    assert split.make_split(items, 0.2, seed=4)["val_videos"] != s1["val_videos"]


def test_split_written_once_and_reused(tmp_path):
    items = _many()
    path = tmp_path / "split.json"
    s1 = split.load_or_make_split(items, path, 0.2, seed=0)
    mtime = path.stat().st_mtime_ns
    s2 = split.load_or_make_split(items, path, 0.5, seed=9)  # other arguments: the stored split wins
    assert s1 == s2 and path.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="split of other data. Leave split_file unset"):
        split.load_or_make_split(items[:-3], path)
    assert json.loads(path.read_text())["seed"] == 0


def test_a_split_belongs_to_its_data(tmp_path, monkeypatch):
    """Without split_file each dataset gets its own split file (no collision with the demo's, nothing to delete)."""
    monkeypatch.chdir(tmp_path)
    items, other = _many(), _many()[:-3]
    s1 = split.load_or_make_split(items)
    assert split.load_or_make_split(other)["train_ids"] != s1["train_ids"]  # no refusal: another file
    assert split.default_split_file(items) != split.default_split_file(other)
    assert split.default_split_file(items) == split.default_split_file(list(reversed(items)))  # order-free
    assert split.load_or_make_split(items) == s1 and len(list((tmp_path / "outputs/splits").glob("*.json"))) == 2


# ----------------------------------------------------------------------------- a letter written twice (issue 18)
# The shapes of the 13 official items whose choices repeat a letter with another text (fixtures of our own).
RELETTERED = [
    ("speed", ["A. 50Km/h", "B. 60Km/h", "B. 70Km/h", "B. 80Km/h"], "A. 50Km/h",
     [("A", "50Km/h"), ("B", "60Km/h"), ("C", "70Km/h"), ("D", "80Km/h")], "A"),
    ("turn", ["A. Đi thẳng", "B. Rẽ trái", "C. Rẽ phải", "C. Vòng quay đầu"], "C. Rẽ phải",
     [("A", "Đi thẳng"), ("B", "Rẽ trái"), ("C", "Rẽ phải"), ("D", "Vòng quay đầu")], "C"),
    ("count", ["A. 1", "B. 2", "B. 3", "B. 4"], "B. 2", [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")], "B"),
    ("count_test", ["A. 0", "B. 1", "B. 2", "B. 3"], None, [("A", "0"), ("B", "1"), ("C", "2"), ("D", "3")], None),
    ("signs_test", ["A. Cấm dừng và đỗ xe", "B. Báo nơi giao nhau chạy theo vòng xuyến", "C. Cấm rẽ trái",
                    "C. Cấm rẽ phải"], None,
     [("A", "Cấm dừng và đỗ xe"), ("B", "Báo nơi giao nhau chạy theo vòng xuyến"), ("C", "Cấm rẽ trái"),
      ("D", "Cấm rẽ phải")], None),
]


@pytest.mark.parametrize("name,raw,answer,choices,gold", RELETTERED, ids=[r[0] for r in RELETTERED])
def test_a_repeated_letter_keeps_every_choice_by_position(write_items, name, raw, answer, choices, gold):
    items, probs = questions.parse_items(write_items([item(name, choices=raw, answer=answer)]))
    assert items[0].choices == choices and items[0].letters == list("ABCD")
    assert items[0].answer == gold
    assert [(p.item_id, p.field, p.severity) for p in probs] == [(name, "choices", "warning")]
    assert "relettered by position" in probs[0].message and str(probs[0]).startswith(str(items[0].source_file))


def test_gold_of_a_relettered_item_is_matched_by_its_text_first(write_items):
    # "C. Vòng quay đầu" was written with the letter C but is the fourth choice: its text says D
    it = questions.load_items(write_items([item("t", choices=RELETTERED[1][1], answer="C. Vòng quay đầu")]))[0]
    assert it.answer == "D"
    # a gold given as a bare letter can only be read by letter
    it = questions.load_items(write_items([item("t", choices=RELETTERED[2][1], answer="B")]))[0]
    assert it.answer == "B"


def test_the_doubled_list_still_collapses_and_a_relettered_doubled_list_too(write_items):
    raw = RELETTERED[2][1]
    items, probs = questions.parse_items(write_items([item("d", choices=raw + raw, answer="B. 2")]))
    assert items[0].choices == RELETTERED[2][3] and items[0].answer == "B"
    assert [p.field for p in probs] == ["choices"]


def test_warnings_and_errors_are_told_apart(write_items):
    p = write_items([
        item("relettered", choices=RELETTERED[0][1], answer="A. 50Km/h"),
        item("no_letter", choices=["A. Có", "Không"], answer="A. Có"),
        item("truncated", answer="C. Xan"),
        item("past_end", support_frames=[9.5]),
        item("bad_answer", answer="D. Không có"),
        item("empty", question=""),
    ])
    items, probs = questions.parse_items(p)
    sev = {(x.item_id, x.severity) for x in probs}
    assert {("relettered", "warning"), ("no_letter", "warning"), ("truncated", "warning"),
            ("past_end", "warning"), ("bad_answer", "error"), ("empty", "error")} == sev
    assert "prefix" in next(x.message for x in probs if x.item_id == "truncated")
    assert {i.id for i in items} == {"relettered", "no_letter", "truncated", "past_end", "bad_answer"}


def test_validate_skip_videos_on_the_real_shapes_exits_zero_and_names_every_id(write_items):
    p = write_items([item(name, choices=raw, answer=answer) for name, raw, answer, _, _ in RELETTERED]
                    + [item("no_letter", choices=["A. Có", "Không"], answer="A. Có")])
    r = subprocess.run([sys.executable, "-m", "roadbuddy_utils", "validate", str(p), "--skip-videos"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for name, *_ in RELETTERED:
        assert f"id={name} field=choices: relettered by position" in r.stdout
    assert "0 errors, 6 warnings" in r.stdout and "video not found" not in r.stdout
    assert "missing videos: not checked (--skip-videos)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "roadbuddy_utils", "validate", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "video not found" in r.stdout  # with the videos checked, a missing clip is an error

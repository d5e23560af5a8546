"""The QCVN 41:2024 glossary: entries pinned against the regulation's text, the builder on text in its shape,
grounding (matching that survives how questions write sign names), the budget, the CLI, the prompt, 03's lines."""
import importlib.util
import json
from pathlib import Path

import pytest

from roadbuddy_utils.data.questions import Item
from roadbuddy_utils.knowledge.glossary import load, shorten
from roadbuddy_utils.knowledge.ground import coverage, find, fold, ground, ground_items, with_notes
from roadbuddy_utils.models.prompts import question_text

REPO = Path(__file__).resolve().parent.parent
G = load()

# code, official name (articles 22, 28, 32, 36, 41, 46.8, annex G), words of the regulation's meaning or
# obligation for it (annexes B-G, articles 11 and 29, Law 36/2024 for the rules): every group is here.
PINNED = [
    ("P.101", "Đường cấm", "cấm các loại phương tiện đi lại cả hai hướng"),
    ("P.102", "Cấm đi ngược chiều", "đi vào theo chiều đặt biển"),
    ("P.103a", "Cấm xe ô tô", "trừ xe máy 2 bánh, xe gắn máy"),
    ("P.104", "Cấm xe máy", "Biển không có giá trị cấm những người dắt xe máy"),
    ("P.106a", "Cấm xe ô tô tải", "máy kéo và các xe máy chuyên dùng"),
    ("P.107a", "Cấm xe ô tô khách", "Biển này không cấm xe buýt"),
    ("P.110a", "Cấm xe đạp", "không có giá trị cấm những người dắt xe đạp"),
    ("P.123a", "Cấm rẽ trái", "Biển không có giá trị cấm quay đầu xe"),
    ("P.123b", "Cấm rẽ phải", "Biển không có giá trị cấm quay đầu xe"),
    ("P.124a", "Cấm quay đầu xe", "không có giá trị cấm rẽ trái để đi sang hướng đường khác"),
    ("P.124c", "Cấm rẽ trái và quay đầu xe", "rẽ trái đồng thời cấm quay đầu"),
    ("P.125", "Cấm vượt", "được phép vượt xe máy 2 bánh, xe gắn máy"),
    ("P.127", "Tốc độ tối đa cho phép", "vượt quá trị số ghi trên biển"),
    ("P.130", "Cấm dừng xe và đỗ xe", "cấm các loại xe cơ giới dừng và đỗ ở phía đường có đặt biển"),
    ("P.131a", "Cấm đỗ xe", "Báo nơi cấm đỗ xe"),
    ("DP.133", "Hết cấm vượt", "hết đoạn đường cấm vượt"),
    ("W.201a", "Chỗ ngoặt nguy hiểm", "vòng bên trái"),
    ("W.207a", "Giao nhau với đường không ưu tiên (đường nhánh)", "được quyền ưu tiên qua nơi giao nhau"),
    ("W.208", "Giao nhau với đường ưu tiên (đường chính)", "phải nhường đường cho xe đi trên đường ưu tiên"),
    ("W.224", "Đường người đi bộ cắt ngang", "nhường ưu tiên cho người đi bộ"),
    ("W.225", "Trẻ em", "đi chậm và thận trọng"),
    ("W.227", "Công trường", "đang tiến hành thi công"),
    ("R.122", "Dừng lại", "dừng lại trước biển hoặc trước vạch ngang đường"),
    ("R.301a", "Hướng đi phải theo", "chỉ được đi thẳng"),
    ("R.303", "Nơi giao nhau chạy theo vòng xuyến", "chạy vòng theo đảo an toàn"),
    ("R.306", "Tốc độ tối thiểu cho phép", "không nhỏ hơn trị số ghi trên biển"),
    ("R.412e", "Làn đường dành cho xe buýt", "không được đi vào làn đường có đặt biển này"),
    ("R.420", "Bắt đầu khu đông dân cư", "phạm vi khu đông dân cư"),
    ("I.401", "Bắt đầu đường ưu tiên", "được đi trước"),
    ("I.407a", "Đường một chiều", "chạy một chiều"),
    ("I.408", "Nơi đỗ xe", "được phép đỗ xe"),
    ("I.434a", "Bến xe buýt", "xe buýt cho khách lên xuống"),
    ("IE.452", "Bắt đầu đường cao tốc", "bắt đầu đường cao tốc"),
    ("S.501", "Phạm vi tác dụng của biển", "chiều dài đoạn đường"),
    ("S.507", "Hướng rẽ", "chỗ rẽ nguy hiểm"),
    ("S.508a", "Biểu thị thời gian", "thời gian hiệu lực"),
    ("Vạch 1.1", "Vạch phân chia hai chiều xe chạy", "được phép cắt qua"),
    ("Vạch 1.2", "Vạch phân chia hai chiều xe chạy", "không được lấn làn"),
    ("Vạch 2.2", "Vạch phân chia các làn xe cùng chiều", "không cho phép xe chuyển làn"),
    ("Vạch 7.3", "Vạch đi bộ qua đường", "người đi bộ cắt qua đường"),
    ("L36.13.2", "chuyển làn", "chỉ được chuyển làn đường ở những nơi cho phép"),
    ("L36.15.4", "quay đầu xe", "Không được quay đầu xe ở phần đường dành cho người đi bộ qua đường"),
    ("L36.22.3", "vòng xuyến", "nhường đường cho xe đi đến từ bên trái"),
    ("GROUP:P", "Biển báo cấm", "hình tròn, viền đỏ, nền màu trắng"),
    ("GROUP:W", "Biển báo nguy hiểm và cảnh báo", "tam giác đều, viền đỏ, nền màu vàng"),
    ("GROUP:R", "Biển hiệu lệnh", "hình tròn trên nền xanh lam"),
    ("GROUP:I", "Biển chỉ dẫn", "hình chữ nhật hoặc hình vuông"),
    ("GROUP:S", "Biển phụ, biển viết bằng chữ", "thuyết minh bổ sung"),
]


@pytest.mark.parametrize("code,name,words", PINNED, ids=[p[0] for p in PINNED])
def test_entry_says_what_the_regulation_says(code, name, words):
    e = G.entry(code)
    assert e.name.startswith(name) if e.group in ("marking", "rule") or code.startswith("Vạch") else e.name == name
    assert words in " ".join([e.meaning, *e.obligations, e.shape_colour or ""]), (code, e.meaning, e.obligations)
    assert e.source.startswith(("QCVN 41:2024/BGTVT", "Luật 36/2024/QH15"))


def test_every_group_is_covered_and_sizes():
    c = G.counts()
    assert {G.entry(code).group for code, _, _ in PINNED} >= {"P", "W", "R", "I", "S", "marking", "rule", "group"}
    assert c["signs_by_group"]["P"] == 62 and c["signs_by_group"]["W"] >= 80 and c["signs_by_group"]["R"] >= 70
    assert c["signs_by_group"]["I"] >= 90 and c["signs_by_group"]["S"] >= 30 and c["markings"] >= 30 and c["rules"] >= 15
    assert G.entry("W.208").shape_colour.startswith("tam giác") and "hướng xuống" in G.entry("W.208").shape_colour
    assert G.version.startswith("qcvn41-2024") and G.entry("W.211").codes_2019 == ("W.211a",)


def _item(question, choices, id_="t_0001"):
    return Item(id_, question, [(chr(65 + k), c) for k, c in enumerate(choices)], None, [], None, "v.mp4")


def test_matching_survives_accents_casing_units_prefixes_and_renumbering():
    def codes(text):
        return [c for c, _ in find(text, G)]

    assert codes("Biển cấm rẽ trái") == codes("BIỂN BÁO CẤM RẼ TRÁI") == codes("cam re trai") == ["P.123a"]
    assert codes("Cấm rẽ trái và quay đầu xe") == ["P.124c"]  # the longer name wins over the two it contains
    assert codes("Biển cấm quay đầu, biển cấm rẽ trái") == ["P.124a", "P.123a"]
    assert codes("Cấm dừng và đỗ xe") == codes("cấm dừng đỗ") == ["P.130"]
    assert "I.442" not in codes("cấm dừng đỗ xe cho phương tiện")  # 'cho' is not 'chợ' in an accented text
    assert codes("Xe được đi ở làn đường nào?") == [] and codes("Biển làn đường") == ["S.504"]  # everyday phrases
    assert "R.122" not in ground(_item("Xe có phải dừng lại không?", ["Có", "Không"])).matched
    assert fold("60Km/h") == fold("60 km/h") == "60 km/h" and fold("Ô-tô") == fold("oto") == "o to"
    g = ground(_item("Biển báo giới hạn tốc độ tối đa là bao nhiêu?", ["40 km/h", "50Km/h", "60 km/h"]))
    assert g.codes[0] == "P.127" and all(c == ["P.127"] for c in g.choice_codes)
    assert ground(_item("Tốc độ tối thiểu cho phép là?", ["60 km/h", "80 km/h"])).codes[0] == "R.306"
    assert ground(_item("Biển số P123a có ý nghĩa gì?", ["Đúng", "Sai"])).codes[0] == "P.123a"
    assert ground(_item("Biển số 123a (QCVN 41:2012) cấm gì?", ["Rẽ trái", "Quay đầu"])).codes[0] == "P.123a"
    assert ground(_item("Biển W.211a báo gì?", ["A", "B"])).codes[0] == "W.211"  # 2019 code -> 2024
    assert ground(_item("Vạch 1.3 có được đè lên không?", ["Có", "Không"])).codes[0] == "Vạch 1.3"


def test_group_questions_get_the_group_description():
    g = ground(_item("Biển báo trong video là loại biển báo gì?", ["Cảnh báo", "Chỉ dẫn", "Cấm", "Không có thông tin"]))
    assert g.matched[:3] == ["GROUP:W", "GROUP:I", "GROUP:P"] and g.choice_kinds[:3] == ["group"] * 3
    g = ground(_item("Trong video có biển hiệu lệnh không?", ["Có", "Không"]))
    assert "GROUP:R" in g.codes


def test_budget_caps_the_notes_in_priority_order():
    item = _item("Xe có được rẽ trái hay quay đầu ở đây không?",
                 ["Biển cấm quay đầu, biển cấm rẽ trái", "Biển giới hạn tốc độ 80 km/h", "Cấm dừng và đỗ xe"])
    full = ground(item, budget=10_000)
    assert full.codes[:4] == ["P.124a", "P.123a", "P.127", "P.130"] and full.codes[-1].startswith("L36.")
    words = lambda text: len(text.split())  # noqa: E731
    small = ground(item, budget=40, count=words)
    assert small.tokens <= 40 and small.codes == full.codes[:len(small.codes)] or set(small.codes) < set(full.codes)
    assert sum(words(n) for n in small.notes) == small.tokens and len(small.codes) < len(full.codes)
    assert ground(item, budget=0).codes == [] and shorten("a. " * 200, 50).endswith(".")


def test_prompt_shows_notes_before_the_question_and_plain_items_unchanged():
    item = _item("Biển nào cấm rẽ trái?", ["Cấm rẽ trái", "Cấm quay đầu"])
    plain = question_text(item)
    noted = with_notes(item, ground(item))
    text = question_text(noted)
    assert text.index("QCVN 41:2024") < text.index("Câu hỏi:") and "- P.123a «Cấm rẽ trái»" in text
    assert text.replace(plain.split("\n")[0], "", 1).endswith(plain.split("\n", 1)[1])
    assert question_text(ground_items([_item("Trời mưa không?", ["Có", "Không"])])[0]) == question_text(
        _item("Trời mưa không?", ["Có", "Không"]))
    from dataclasses import replace

    assert replace(noted, choices=list(reversed(noted.choices))).notes == noted.notes  # shuffled choices keep them


def test_cli_json_on_a_question_file_in_the_real_shape(write_items, capsys):
    from roadbuddy_utils.__main__ import main

    path = write_items([
        {"id": "testa_0001", "question": "Những biển báo nào xuất hiện trong video?",
         "choices": ["A. Biển cấm quay đầu, biển cấm rẽ trái", "B. Biển giới hạn tốc độ 60km/h", "C. Cấm dừng và đỗ xe",
                     "D. Biển cấm tụ tập"], "video_path": "public_test/videos/a.mp4"},
        {"id": "testa_0002", "question": "Trong video có bao nhiêu biển báo?", "choices": ["A. 1 biển", "B. 2 biển"],
         "video_path": "public_test/videos/a.mp4"},
    ], name="public_test.json", folder="public_test")
    assert main(["knowledge", str(path), "--json", "--budget", "1000"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["questions"] == 2 and out["sign_choices"] == 4 and out["matched"] == 3 and out["coverage"] == 0.75
    assert out["items"][0]["id"] == "testa_0001" and out["items"][0]["codes"][:4] == ["P.124a", "P.123a", "P.127", "P.130"]
    assert out["items"][1]["codes"] == [] and out["glossary_version"] == G.version
    assert main(["knowledge", str(path), "--id", "testa_0001"]) == 0
    assert "- P.124a «Cấm quay đầu xe»" in capsys.readouterr().out
    assert main(["knowledge", str(path), "--id", "nope"]) == 2


def test_builder_reads_text_in_the_regulations_shape(tmp_path):
    spec = importlib.util.spec_from_file_location("build_glossary", REPO / "scripts/build_glossary.py")
    b = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(b)
    qcvn = tmp_path / "q.md"
    qcvn.write_text((Path(__file__).parent / "fixtures" / "qcvn41_shape.md").read_text(encoding="utf-8"), encoding="utf-8")
    law = tmp_path / "l.md"
    law.write_text("### Điều 10. Quy tắc chung\n\n1. Người tham gia giao thông đường bộ phải đi bên phải.\n\n"
                   + "".join(f"### Điều {a}. X\n\n" + "".join(f"{k}. Khoản {k} của điều {a}.\n\n" for k in range(1, 13))
                             for a in (11, 13, 14, 15, 18, 21, 22, 25, 27)), encoding="utf-8")
    data = b.build(qcvn, law)
    signs = {s["code"]: s for s in data["signs"]}
    assert signs["P.123a"]["name"] == "Cấm rẽ trái" and signs["P.123b"]["name"] == "Cấm rẽ phải"
    assert signs["P.123a"]["meaning"].startswith("Báo cấm rẽ trái hoặc rẽ phải")
    assert "Biển không có giá trị cấm quay đầu xe." in signs["P.123b"]["obligations"]
    assert signs["DP.133"]["meaning"] == "Báo hết đoạn đường cấm vượt."  # annex 'P.133' is the list's DP.133
    assert signs["W.201a"]["meaning"].endswith("vòng bên trái.") and signs["W.201a"]["group"] == "W"
    assert [g["code"] for g in data["groups"]] == ["GROUP:P", "GROUP:W", "GROUP:R", "GROUP:I", "GROUP:S"]
    assert data["rules"][0]["meaning"] == "Người tham gia giao thông đường bộ phải đi bên phải."
    assert data["markings"][0]["code"] == "Vạch 1.1" and "màu vàng" in data["markings"][0]["shape_colour"]


def test_03_records_codes_and_glossary_version(write_items, tmp_path, tiny_vlm):
    from roadbuddy_utils.answer.batch import InferConfig, run_inference
    from roadbuddy_utils.common.files import read_jsonl
    from roadbuddy_utils.data.questions import load_items

    path = write_items([{"id": f"train_{k:04d}", "question": q, "choices": ch, "answer": ch[0],
                         "video_path": "train/videos/x.mp4"} for k, (q, ch) in enumerate([
        ("Biển báo nào xuất hiện trong video?", ["A. Cấm rẽ trái", "B. Cấm đỗ xe"]),
        ("Trời có mưa không?", ["A. Có", "B. Không"])])])
    items = load_items(path)
    vlm = tiny_vlm("internvl", n_frames=2)
    lines = run_inference(items, vlm, InferConfig(no_video=True, knowledge="glossary", knowledge_budget=2000), tmp_path / "k", progress=False)
    assert lines[0]["knowledge_codes"][:2] == ["P.123a", "P.131a"] and lines[1]["knowledge_codes"] == []
    assert lines[0]["knowledge"] == "glossary" and 0 < lines[0]["knowledge_tokens"] <= 2000
    run = json.loads((tmp_path / "k" / "run_config.json").read_text())
    assert run["knowledge"]["glossary_version"] == G.version and run["knowledge"]["counted_with"] == "model tokenizer"
    plain = run_inference(items, vlm, InferConfig(no_video=True), tmp_path / "p", progress=False)
    assert plain[0]["prompt_hash"] != lines[0]["prompt_hash"] and plain[1]["prompt_hash"] == lines[1]["prompt_hash"]
    with pytest.raises(ValueError, match="another run variant"):
        run_inference(items, vlm, InferConfig(no_video=True), tmp_path / "k", progress=False)
    with pytest.raises(ValueError, match="knowledge must be"):
        InferConfig(knowledge="rag")
    assert read_jsonl(tmp_path / "k" / "predictions.jsonl")[0]["knowledge_codes"] == lines[0]["knowledge_codes"]


def test_04_trains_with_the_same_notes(tiny_vlm):
    from roadbuddy_utils.train.finetune import TrainConfig, with_glossary

    vlm = tiny_vlm("internvl", n_frames=2)
    tr, va, info = with_glossary([_item("Biển gì?", ["Cấm rẽ trái", "Cấm đỗ xe"])], [_item("Mưa?", ["Có", "Không"])],
                                 vlm, 160)
    assert tr[0].notes and not va[0].notes and info["train_with_notes"] == 1 and info["glossary_version"] == G.version
    assert "P.123a" in vlm.render(__import__("roadbuddy_utils.models.example", fromlist=["Example"]).Example(tr[0], None))
    with pytest.raises(ValueError, match="knowledge must be"):
        TrainConfig(knowledge="yes")


def test_05_pairs_knowledge_off_and_on_overall_with_notes_and_by_theme():
    import pandas as pd

    from roadbuddy_utils.evaluate.paired import paired_by_theme

    ids = [f"q{k}" for k in range(6)]
    base = {"id": ids, "video": ["v1", "v1", "v2", "v2", "v3", "v3"], "pred": ["A"] * 6, "answer": ["A", "B"] * 3,
            "question": ["Biển cấm rẽ trái?", "Đèn màu gì?"] * 3}
    off = pd.DataFrame(base | {"correct": [True, False, True, False, True, False]})
    on = pd.DataFrame(base | {"correct": [True, False, True, False, False, True],
                              "knowledge_codes": [["P.123a"], [], ["P.123a"], [], ["P.123a"], []]})
    for df in (off, on):
        df["pred"] = [a if c else ("B" if a == "A" else "A") for a, c in zip(df["answer"], df["correct"])]
    t = paired_by_theme(off, on, n_boot=50).set_index("subset")
    assert t.loc["all", "n"] == 6 and t.loc["with notes", "n"] == 3 and t.loc["without notes", "n"] == 3
    assert t.loc["with notes", "right_to_wrong"] == 1 and t.loc["without notes", "wrong_to_right"] == 1
    assert "theme: signs" in t.index and "theme: lights" in t.index

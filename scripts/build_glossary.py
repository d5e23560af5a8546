"""Build roadbuddy_utils/knowledge/glossary.json from the regulation's own text.

    python scripts/build_glossary.py --qcvn PATH/51_2024_TT_BGTVT.md --law PATH/luat-36-2024.md
    python scripts/build_glossary.py --qcvn ... --law ... --check     # compare with the shipped JSON, write nothing

Sources (legal normative documents: outside copyright under art. 15 of Vietnam's IP law; no third-party
compilation is read):

* ``--qcvn``: Circular 51/2024/TT-BGTVT with QCVN 41:2024/BGTVT as Markdown (a public copy is
  ``processed/documents/51_2024_TT_BGTVT.md`` of the repository human6004/knowledge-augmented-generation-
  vietnamese-road-traffic-laws; an excerpt in the same format works too). Read from it: the name lists of
  articles 22, 28, 32, 36, 41 and 46.8 (code -> official name), each group's shape and colours (article 11
  and 29, 33, 38, 41.3), the annexes B-F (meaning and use of each sign: the clause before "đặt biển số ...",
  and the sentences that say what the sign obliges or does not, "Biển không có giá trị cấm quay đầu xe"),
  annex G (road markings: "Vạch X.Y: name", "Ý nghĩa sử dụng", colour and stroke from "Quy cách").
* ``--law``: the Law on Road Traffic Order and Safety 36/2024/QH15 as Markdown (``### Điều N.`` headings,
  numbered clauses, lettered points). Read from it: the clauses listed in RULES below.

Where the text is messy the fixes are here, by hand, each with its reason (CODE_FIXES, ALIASES, SHAPES);
tests/test_knowledge.py pins a sample of the result against the regulation (code -> name -> obligation).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "roadbuddy_utils" / "knowledge" / "glossary.json"
QCVN = "QCVN 41:2024/BGTVT"
LAW = "Luật 36/2024/QH15"

GROUPS = {  # group key -> (name, article of its list, article of its shape, annex)
    "P": ("Biển báo cấm", "Điều 22", "Điều 11.1", "Phụ lục B"),
    "W": ("Biển báo nguy hiểm và cảnh báo", "Điều 28", "Điều 11.3, 29.1", "Phụ lục C"),
    "R": ("Biển hiệu lệnh", "Điều 32", "Điều 11.2, 33.1", "Phụ lục D"),
    "I": ("Biển chỉ dẫn", "Điều 36, 46.8", "Điều 11.4, 38, 46.3", "Phụ lục E, Điều 47"),
    "S": ("Biển phụ, biển viết bằng chữ", "Điều 41", "Điều 11.5, 41.3", "Phụ lục F"),
}
PREFIX_GROUP = {"P": "P", "DP": "P", "W": "W", "R": "R", "R.E": "R", "I": "I", "IE": "I", "S": "S", "S.G": "S",
                "S.H": "S"}

# The text names some codes inconsistently; the list articles are authoritative.
CODE_FIXES = {
    "P.133": "DP.133", "P.134": "DP.134", "P.135": "DP.135",  # annex B still writes the 2016 codes
    "DP.127d": "DP.127", "DP.127a": "DP.127", "DP.127b": "DP.127", "DP.127c": "DP.127",  # drawings of one sign
    **{f"R.413{c}": f"R.412{c}" for c in "ijklmnop"},  # D.15 writes R.413i-p for the list's R.412i-p
    "W.211a": "W.211",  # QCVN 41:2019's code (W.211b, tram crossing, was dropped in 2024)
    "I.428": "I.428a",  # 2019 had one fuel-station sign; 2024 splits it into I.428a/b/c
    "R.415a": "R.415",
}
# 2019 codes and names that differ from 2024's, so that older questions still find their entry.
RENUMBERED_2019 = {"W.211a": "W.211", "I.428": "I.428a"}
NAMES_2019 = {"P.114": ["cấm xe súc vật kéo"], "P.115": ["hạn chế trọng tải toàn bộ xe cho phép"],
              "P.116": ["hạn chế tải trọng trục xe"]}

# Everyday names used for the signs (the way questions and choices write them), checked by hand: each maps
# to the official entry it means. Official names and annex quotes are aliases already.
ALIASES = {
    "P.101": ["cấm tất cả phương tiện", "cấm tất cả các loại phương tiện", "đường bị cấm"],
    "P.102": ["cấm ngược chiều", "cấm đi vào"],
    "P.104": ["cấm mô tô", "cấm xe mô tô"],
    "P.115": ["hạn chế trọng lượng", "giới hạn trọng lượng", "giới hạn trọng tải", "hạn chế trọng tải",
              "hạn chế tải trọng"],
    "P.117": ["giới hạn chiều cao"], "P.118": ["giới hạn chiều rộng", "giới hạn chiều ngang"],
    "P.121": ["khoảng cách tối thiểu giữa hai xe", "cự ly tối thiểu"],
    "P.136": ["cấm xe đi thẳng"],
    "P.103a": ["cấm ô tô"],
    "P.106a": ["cấm xe tải", "cấm ô tô tải"],
    "P.107": ["cấm xe khách và xe tải"],
    "P.107a": ["cấm xe khách"],
    "P.108a": ["cấm xe sơ mi rơ moóc", "cấm xe container", "cấm container"],
    "P.123a": ["cấm rẽ trái", "cấm xe rẽ trái"], "P.123b": ["cấm rẽ phải", "cấm xe rẽ phải"],
    "P.124a": ["cấm quay đầu", "cấm quay xe", "cấm các phương tiện quay đầu"], "P.124b": ["cấm ô tô quay đầu"],
    "P.124c": ["cấm rẽ trái và quay đầu"], "P.124d": ["cấm rẽ phải và quay đầu"],
    "P.127": ["giới hạn tốc độ", "tốc độ tối đa", "hạn chế tốc độ tối đa", "biển tốc độ", "giới hạn tốc độ tối đa",
              "hạn chế tốc độ"],
    "P.130": ["cấm dừng đỗ", "cấm dừng đỗ xe", "cấm dừng và đỗ xe", "cấm dừng, cấm đỗ", "cấm dừng và đỗ",
              "cấm dừng xe, đỗ xe", "cấm dừng"],
    "P.131a": ["cấm đỗ", "cấm đỗ xe"], "P.131b": ["cấm đỗ xe ngày lẻ", "cấm đỗ ngày lẻ"],
    "P.131c": ["cấm đỗ xe ngày chẵn", "cấm đỗ ngày chẵn"],
    "P.128": ["cấm còi", "cấm bóp còi"],
    "DP.134": ["hết giới hạn tốc độ", "hết hạn chế tốc độ tối đa", "hết tốc độ tối đa"],
    "DP.135": ["hết mọi lệnh cấm", "hết tất cả lệnh cấm"],
    "W.201a": ["chỗ ngoặt nguy hiểm vòng bên trái", "chỗ ngoặt nguy hiểm", "chỗ ngoặc nguy hiểm"],
    "W.201b": ["chỗ ngoặt nguy hiểm vòng bên phải"],
    "W.202a": ["nhiều chỗ ngoặt nguy hiểm"],
    "W.203a": ["đường bị hẹp", "đường hẹp", "đường bị thu hẹp cả hai bên"],
    "W.203b": ["đường bị hẹp bên trái", "đường bị thu hẹp về phía trái"],
    "W.203c": ["đường bị hẹp bên phải", "đường bị thu hẹp về phía phải"],
    "W.205a": ["giao nhau cùng cấp", "đường giao nhau cùng cấp", "giao nhau với đường cùng cấp", "ngã tư"],
    "W.207a": ["giao nhau với đường không ưu tiên", "đường không ưu tiên"],
    "W.208": ["giao nhau với đường ưu tiên", "giao với đường ưu tiên"],
    "W.206": ["vòng xuyến"],
    "W.210": ["đường sắt có rào chắn"], "W.211": ["đường sắt không có rào chắn", "giao nhau với đường sắt"],
    "W.219": ["dốc xuống nguy hiểm", "xuống dốc nguy hiểm"], "W.220": ["dốc lên nguy hiểm"],
    "W.221a": ["đường không bằng phẳng", "đường xấu", "đường xuống cấp"],
    "W.221b": ["gồ giảm tốc", "đường có gờ giảm tốc", "gờ giảm tốc"],
    "W.222a": ["đường trơn", "trơn trượt"],
    "W.224": ["người đi bộ cắt ngang", "đường người đi bộ", "người đi bộ qua đường"],
    "W.225": ["trẻ em", "khu vực trường học"],
    "W.227": ["công trường", "đang thi công", "công trình đang thi công"],
    "W.233": ["nguy hiểm khác"],
    "W.239a": ["đường cáp điện phía trên", "cáp điện phía trên", "đường dây điện phía trên"],
    "W.245a": ["đi chậm"],
    "W.246a": ["chú ý chướng ngại vật", "chướng ngại vật"],
    "R.122": ["dừng lại", "stop"],
    "R.301a": ["chỉ được đi thẳng", "hướng đi thẳng phải theo", "đi thẳng phải theo", "hiệu lệnh đi thẳng"],
    "R.301b": ["chỉ được rẽ phải", "hướng rẽ phải phải theo"],
    "R.301c": ["chỉ được rẽ trái", "hướng rẽ trái phải theo"],
    "R.301f": ["chỉ được đi thẳng và rẽ phải"], "R.301g": ["chỉ được đi thẳng và rẽ trái"],
    "R.301h": ["chỉ được rẽ trái và rẽ phải"],
    "R.302a": ["hướng phải đi vòng sang phải", "đi vòng sang phải"],
    "R.302b": ["hướng phải đi vòng sang trái", "đi vòng sang trái"],
    "R.303": ["nơi giao nhau chạy theo vòng xuyến", "chạy theo vòng xuyến"],
    "R.306": ["tốc độ tối thiểu"],
    "R.309": ["ấn còi", "bấm còi"],
    "R.403a": ["đường dành cho ô tô"], "R.403b": ["đường dành cho ô tô, xe máy"],
    "R.411": ["hướng đi trên mỗi làn đường", "hướng đi trên mỗi làn"],
    "R.412a": ["làn dành cho xe khách", "làn đường dành cho ô tô khách"],
    "R.412b": ["làn dành cho xe con", "làn đường dành cho ô tô con"],
    "R.412c": ["làn dành cho xe tải", "làn đường dành cho ô tô tải"],
    "R.412d": ["làn dành cho xe máy"], "R.412e": ["làn dành cho xe buýt", "làn xe buýt"],
    "R.412f": ["làn dành cho ô tô", "làn đường dành cho ô tô"],
    "R.415": ["gộp làn đường theo phương tiện", "biển gộp làn", "phân làn theo phương tiện"],
    "R.420": ["khu đông dân cư", "khu dân cư", "bắt đầu khu dân cư"],
    "R.421": ["hết khu dân cư"],
    "I.401": ["đường ưu tiên"],
    "I.405a": ["đường cụt"],
    "I.407a": ["đường một chiều"],
    "I.408": ["nơi đỗ xe", "bãi đỗ xe", "điểm đỗ xe", "được phép đỗ xe"],
    "I.409": ["chỗ quay xe", "được quay đầu"],
    "I.414a": ["chỉ hướng đường", "chỉ dẫn hướng đi", "biển chỉ hướng"],
    "I.415": ["mũi tên chỉ hướng đi"],
    "I.423a": ["vị trí người đi bộ sang ngang", "người đi bộ sang ngang"],
    "I.425": ["bệnh viện"], "I.426": ["trạm cấp cứu"],
    "I.427b": ["trạm kiểm tra tải trọng", "kiểm tra tải trọng xe", "trạm cân"],
    "I.428a": ["trạm xăng", "cây xăng", "cửa hàng xăng dầu"],
    "I.434a": ["bến xe buýt", "trạm xe buýt", "điểm dừng xe buýt", "trạm dừng xe buýt"],
    "I.437": ["bắt đầu đường cao tốc"],
    "I.439": ["tên cầu"],
    "I.440": ["đoạn đường thi công", "đường đang thi công"],
    "I.449": ["tên đường", "biển tên đường"],
    "IE.471": ["giữ khoảng cách an toàn", "căn khoảng cách", "khoảng cách an toàn"],
    "IE.474": ["lối ra cao tốc"],
    "S.501": ["phạm vi tác dụng"], "S.502": ["khoảng cách đến đối tượng báo hiệu"],
    "S.503a": ["hướng tác dụng của biển"],
    "S.505a": ["biển phụ loại xe"],
    "S.508a": ["biểu thị thời gian", "biển phụ thời gian"],
}
# Where the text states a sign's own shape or colours (else the group's apply).
SHAPES = {
    "W.208": "tam giác đều viền đỏ nền vàng, đỉnh hướng xuống dưới (Điều 29.1)",
    "P.127b": "hình chữ nhật nền màu xanh (B.27b)", "P.127c": "hình chữ nhật nền màu xanh (B.27c)",
    "R.415": "hình chữ nhật nền màu xanh (D.16)",
    "S.510a": "hình chữ nhật nền đỏ, chữ và viền màu trắng, hình vẽ màu đen (F.12)",
    "S.510b": "hình chữ nhật nền đỏ, chữ và viền màu trắng, hình vẽ màu đen (F.12)",
    "I.449": "nền màu xanh đậm, chữ màu trắng (E.52)",
    "IE.471": "chữ màu đen trên nền vàng huỳnh quang, viền đen (47.22)",
    "IE.473": "chữ màu đen trên nền vàng huỳnh quang (47.24)",
    "P.137": "hình tròn viền đỏ, vạch chéo màu đỏ đè lên mũi tên màu đen (B.37)",
}
# Rules of the road: (article, clause, points or None, topic, key words that call for it). The text is read
# from --law; a point list keeps only those lettered points of the clause.
RULES = [
    (10, 1, None, "quy tắc chung", ["đi bên phải", "đúng làn", "phần đường"]),
    (11, 2, None, "thứ tự chấp hành báo hiệu", ["thứ tự ưu tiên", "hiệu lệnh của người điều khiển", "cảnh sát giao thông",
                                              "chấp hành báo hiệu"]),
    (11, 4, None, "đèn tín hiệu", ["đèn vàng", "đèn đỏ", "đèn xanh", "đèn giao thông", "đèn tín hiệu", "vượt đèn"]),
    (11, 12, None, "biển tạm thời", ["biển tạm thời", "tạm thời"]),
    (13, 2, None, "chuyển làn", ["chuyển làn", "đổi làn", "sang làn"]),
    (13, 3, None, "làn của xe thô sơ và xe cơ giới", ["làn bên phải", "làn trong cùng", "làn ngoài cùng", "xe thô sơ"]),
    (13, 4, None, "làn dành riêng", ["làn dành riêng", "làn đường dành cho", "làn dành cho"]),
    (14, 2, None, "vượt xe", ["vượt bên phải", "vượt bên trái", "vượt xe"]),
    (15, 3, None, "chuyển hướng", ["rẽ trái", "rẽ phải", "chuyển hướng", "nhường đường cho người đi bộ"]),
    (15, 4, None, "quay đầu xe", ["quay đầu"]),
    (18, 4, None, "nơi không được dừng, đỗ", ["dừng xe", "đỗ xe", "dừng đỗ", "được dừng", "được đỗ"]),
    (21, 2, None, "sử dụng còi", ["còi"]),
    (22, 1, None, "nhường đường ở nơi giao nhau", ["nhường đường", "đường ưu tiên", "đường nhánh"]),
    (22, 2, None, "giao nhau không có vòng xuyến", ["xe đi đến từ bên phải", "nhường đường cho xe bên phải",
                                                   "không có vòng xuyến"]),
    (22, 3, None, "vòng xuyến", ["vòng xuyến"]),
    (25, 3, None, "đường cao tốc", ["cao tốc"]),
    (27, 5, None, "xe ưu tiên", ["xe ưu tiên", "cứu thương", "cứu hỏa", "xe cứu"]),
]
# Road markings: key words beyond the official name (how questions describe them).
MARKING_ALIASES = {
    "1.1": ["vạch vàng đứt", "vạch tim đường đứt"], "1.2": ["vạch vàng liền", "vạch tim đường liền"],
    "1.3": ["vạch vàng đôi", "vạch đôi liền", "hai vạch vàng"], "1.4": ["vạch đôi một liền một đứt"],
    "2.1": ["vạch trắng đứt", "vạch đứt nét", "vạch đứt", "vạch nét đứt"],
    "2.2": ["vạch trắng liền", "vạch liền nét", "vạch liền", "vạch nét liền"],
    "3.1": ["vạch mép đường", "vạch giới hạn mép"], "4.1": ["vạch gạch chéo", "vạch kênh hóa"],
    "4.2": ["vạch chữ v"], "4.4": ["mắt võng", "ô vuông vàng", "vạch chéo vàng"],
    "6.1": ["vạch vàng trên bó vỉa", "vạch cấm đỗ"], "6.2": ["vạch cấm dừng"],
    "7.1": ["vạch dừng", "vạch dừng xe"], "7.2": ["vạch nhường đường", "tam giác ngược"],
    "7.3": ["vạch đi bộ", "vạch qua đường", "ngựa vằn", "vạch người đi bộ", "vạch sang đường",
            "vạch kẻ đường cho người đi bộ", "vạch cho người đi bộ", "vạch kẻ cho người đi bộ"],
    "9.1": ["vạch cấm quay đầu"], "9.2": ["chữ m", "vạch dừng xe buýt"],
    "9.3": ["mũi tên trên mặt đường", "mũi tên chỉ hướng trên mặt đường", "mũi tên trên đường", "vạch mũi tên"],
    "9.5": ["chữ trên mặt đường", "chữ viết trên mặt đường"],
}

BOILERPLATE = re.compile(r"^(Người ký|Email|Cơ quan|Thời gian ký|VĂN BẢN QUY PHẠM|BỘ GIAO THÔNG|Thông tư số 51|"
                         r"\(Tiếp theo Công báo|ban hành Quy chuẩn kỹ thuật|Hình |Minh họa|Đơn vị|Ghi chú|Chú dẫn)")
CODE = r"(?:DP|IE|R\.E|S\.G|S\.H|[PWRIS])[\., ]\s?\d+[a-z]?"


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def clean_lines(text: str) -> list[str]:
    """The Markdown's lines without page numbers, signature blocks and figure captions."""
    out = []
    for line in nfc(text).splitlines():
        s = line.strip()
        if not s or re.fullmatch(r"[\dLABCDERb=,.\-() ]{1,14}", s) or BOILERPLATE.match(s):
            continue
        if re.fullmatch(r"(?:[a-z]\)\s*)?(?:Biển số\s*\S+\s*)+(?:[a-z]\)\s*(?:Biển số\s*\S+\s*)*)*", s) and (
                s.count("Biển số") > 1 or re.match(r"[a-z]\)", s)):
            continue  # "a) Biển số P.103a   b) Biển số P.103b": the figures' captions
        out.append(s)
    return out


def norm_code(raw: str) -> str:
    """'P.123a' / 'R.E,9a' / 'S.H,3a' / 'IE. 451' -> canonical code (CODE_FIXES applied)."""
    c = re.sub(r"\s+", "", raw).rstrip(".,;")
    c = re.sub(r"^(DP|IE|P|W|R|I|S)(\d)", r"\1.\2", c)
    return CODE_FIXES.get(c, c)


def expand(spec: str) -> list[str]:
    """'P.103(b,c)' -> [P.103b, P.103c]; 'P.111(b) hoặc (c)' -> [P.111b, P.111c]; 'R.E,9a' -> [R.E,9a];
    'S.G,11a; S.G,11c' -> both."""
    spec = spec.strip()
    if ";" in spec:
        return [c for part in spec.split(";") for c in expand(part)]
    m = re.match(r"^((?:DP\.|IE\.|R\.E,|S\.G,|S\.H,|[PWRIS]\.)\s?\d+[a-z]?)\s*(.*)$", spec)
    if not m:
        return []
    base, rest = re.sub(r"\s", "", m.group(1)), m.group(2)
    letters = re.findall(r"\b([a-z])\b", rest.replace(",", " "))
    return [norm_code(base + l) for l in letters] if letters else [norm_code(base)]


def section(lines: list[str], start: str, stop: str) -> list[str]:
    """Lines from the first that starts with ``start`` to the next that starts with ``stop`` (exclusive)."""
    i = next(k for k, s in enumerate(lines) if s.startswith(start))
    j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith(stop)), len(lines))
    return lines[i:j]


def parse_lists(lines: list[str]) -> dict[str, dict]:
    """Articles 22, 28, 32, 36, 41: '- Biển số CODE: Name;' (names wrap over lines)."""
    entries: dict[str, dict] = {}
    for start, stop, article in (("22.1.", "22.2.", "Điều 22"), ("28.1.", "28.2.", "Điều 28"),
                                 ("32.1.", "32.2.", "Điều 32"), ("36.1.", "36.2.", "Điều 36"),
                                 ("41.2.1.", "41.2.2.", "Điều 41")):
        items, cur = [], None
        for s in section(lines, start, stop)[1:]:
            if s.startswith("- Biển"):
                cur = [s[2:]]
                items.append(cur)
            elif cur is not None and not s.startswith("Ngoài ra"):
                cur.append(s)
        for parts in items:
            text = " ".join(parts)
            m = re.match(r"Biển(?: số)? (.+?):\s*(.+?)[;.]?\s*$", text)
            if not m:
                continue
            codes = expand(m.group(1))
            names = [n.strip() for n in re.split(r";\s*", m.group(2)) if n.strip()]
            if len(names) != len(codes) and re.search(r"\([a-z]\)", m.group(2)):  # 'Đi chậm (a), Đi chậm có ... (b)'
                names = [re.sub(r"\s*\([a-z]\)\s*$", "", n).strip() for n in re.split(r",\s*(?=[A-ZĐ])", m.group(2))]
            for k, code in enumerate(codes):
                name = names[k] if len(names) == len(codes) else names[0]
                entries[code] = {"code": code, "name": name.rstrip(" ;."), "list_article": article}
    # 46.8: expressway guide signs, a table ('Biển số IE.450(a,b)' then the name on the next lines)
    rows, cur = [], None
    for s in section(lines, "46.8.", "46.9.")[1:]:
        m = re.match(r"^Biển số (IE\.\s?\d+)\s*(\([a-z,]+\))?\s*(.*)$", s)
        if m:
            cur = [m.group(1) + (m.group(2) or ""), m.group(3)]
            rows.append(cur)
        elif cur is not None and not re.fullmatch(r"\d+|TT|Số hiệu|Tên biển chỉ dẫn", s):
            cur[1] = (cur[1] + " " + s).strip()
    for spec, name in rows:
        for code in expand(spec):
            entries[code] = {"code": code, "name": name.strip(), "list_article": "Điều 46.8"}
    return entries


def group_of(code: str) -> str:
    prefix = re.match(r"^(R\.E|S\.G|S\.H|DP|IE|[PWRIS])", code).group(1)
    return PREFIX_GROUP[prefix]


def group_texts(lines: list[str]) -> dict[str, str]:
    """Each group's definition, shape and colours from article 11 (and 33.1, 38.2, 41.3.2)."""
    joined = " ".join(section(lines, "11.1.", "##### Điều 12"))
    out = {}
    for key, num in (("P", "11.1"), ("R", "11.2"), ("W", "11.3"), ("I", "11.4"), ("S", "11.5")):
        m = re.search(re.escape(num) + r"\. (.*?)(?= 11\.\d\. |$)", joined)
        out[key] = m.group(1).strip()
    return out


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.;])\s+(?=[A-ZĐÂƯƠÊÔ\-a-zđ]\)?)", text) if s.strip()]


CUE = re.compile(r"^(?:[a-zđ]\)\s*)?(?:Biển (?:không|có|này|chỉ)|Gặp biển|Khi gặp biển|Các xe đi trên đường có đặt|"
                 r"Các phương tiện|Các loại xe khác|Các loại phương tiện|Xe đi ở chiều|Người đi bộ được|Xe chạy trên làn|"
                 r"Kể từ biển này|Người tham gia giao thông (?:phải|có trách nhiệm)|Ngoài các loại phương tiện|"
                 r"Xe phải|Lái xe cần|Khi qua|Người lái)")


def meaning_of(sentence: str) -> str:
    """'a) Để báo đường cấm ..., đặt biển số P.101 "Đường cấm".' -> 'Báo đường cấm ...'."""
    s = re.sub(r"^[a-zđ]\)\s*", "", sentence).strip()
    cut = re.split(r",\s*(?:thì |phải |cần phải )?(?:đặt|sử dụng|dùng)\s+(?:một trong những kiểu |các |thêm )?"
                   r"(?:biển|trên mặt đường biển)", s)
    s = cut[0] if len(cut) > 1 else re.split(r"\s+(?:phải |cần phải )?(?:đặt|sử dụng)\s+(?:các )?biển số", s)[0]
    s = re.sub(r"^Để\s+", "", s).strip(" ,;:")
    s = re.sub(r"\s+", " ", s)
    return (s[:1].upper() + s[1:]).rstrip(".") + "." if s else ""


def annex_items(lines: list[str]) -> list[tuple[str, str, list[str]]]:
    """(annex item id, header, body lines) for annexes B-F."""
    body = section(lines, "Phụ lục B", "Phụ lục G")
    items, cur = [], None
    for s in body:
        m = re.match(r"^([B-F])\.(\d+[a-z]?)\s+(.*)$", s)
        if m and ("Biển" in m.group(3) or "Chỉ dẫn" in m.group(3) or "Báo hiệu" in m.group(3)):
            cur = (f"{m.group(1)}.{m.group(2)}", m.group(3), [])
            items.append(cur)
        elif s.startswith("Phụ lục"):
            cur = None
        elif cur is not None:
            open_quote = len(re.findall(r"[\"“”]", cur[1])) % 2 == 1
            if cur[2] == [] and (open_quote or re.search(r"(và|,|hoặc|\()\s*$", cur[1]) or (s[:1].islower() and not re.match(r"^[a-zđ]\)", s))):
                cur = (cur[0], cur[1] + " " + s, cur[2])  # the header wraps
                items[-1] = cur
            else:
                cur[2].append(s)
    return items


def codes_in(text: str) -> list[str]:
    out = []
    for m in re.finditer(r"(?:biển|Biển)(?: báo)?(?: số)? ((?:DP\.|IE\.\s?|R\.E,|S\.G,|S\.H,|[PWRIS]\.)\s?\d+[a-z]?"
                         r"(?:\s?\([a-z,\s]+\))?(?:\s?(?:,|;|và|hoặc|hay)\s?(?:DP\.|IE\.|R\.E,|S\.G,|S\.H,|[PWRIS]\.)\d+[a-z]?)*)",
                         text):
        for part in re.split(r"\s?(?:,|;|và|hoặc|hay)\s?(?=(?:DP\.|IE\.|R\.E,|S\.G,|S\.H,|[PWRIS]\.)\d)", m.group(1)):
            out += expand(re.sub(r"\(([a-z,\s]+)\)", lambda g: "(" + g.group(1).replace(" ", "") + ")", part))
    return list(dict.fromkeys(out))


def parse_annexes(lines: list[str], entries: dict[str, dict]) -> None:
    """Meaning, obligations, annex item and quoted names of each sign, from annexes B-F."""
    for item, header, body in annex_items(lines):
        text = re.sub(r"\s+", " ", " ".join(body))
        head_codes = codes_in(header) or codes_in(text)
        for quote_code, quote in re.findall(r"biển số ((?:DP|IE|[PWRIS])\.\d+[a-z]?)\s*[\"“]\s*([^\"”]+?)\s*[\"”]",
                                            header + " " + text, flags=re.I):
            c = norm_code(quote_code)
            if c in entries:
                entries[c].setdefault("quoted", set()).add(quote.strip())
            elif re.search(r"\d[a-z]$", c) or not any(k.startswith(c) for k in entries):  # 'I.428b', not 'I.419'
                if not re.search(r"\d[a-z]$", c) and any(k.startswith(c) for k in entries):
                    continue
                entries[c] = {"code": c, "name": quote.strip(), "list_article": f"Phụ lục {item[0]} mục {item}"}
        paragraphs = [p.strip() for p in re.split(r"(?<=[.;:])\s+(?=[a-zđ]\)\s)", text) if p.strip()]
        item_codes = [c for c in head_codes if c in entries] or [c for c in codes_in(text) if c in entries]
        bullets = dict(re.findall(r"- Biển số ((?:DP|IE|[PWRIS])\.\d+[a-z]?):? ([^;]+?)[;.]", text))
        for code in item_codes:
            e = entries[code]
            e.setdefault("annex", f"Phụ lục {item[0]} mục {item}")
            mine = [p for p in paragraphs if code in codes_in(p) or code.rsplit(".", 1)[-1] in p and code in p]
            base = re.sub(r"[a-z]$", "", code)
            mine = mine or [p for p in paragraphs if any(c.startswith(base) for c in codes_in(p))] or paragraphs[:1]
            first = sentences(mine[0])[0] if mine else ""
            meaning = meaning_of(first)
            if code in bullets:
                meaning = meaning.rstrip(".:") + ": " + bullets[code].strip() + "."
            own_bullet = re.search(r"- Để ([^;]*?), đặt biển số " + re.escape(code) + r"\b", text)
            if own_bullet:
                meaning = meaning_of("Để " + own_bullet.group(1)).rstrip(".") + " (" + meaning.rstrip(".") + ")."
            e.setdefault("meaning", meaning)
            own = [p for p in paragraphs if not codes_in(p)] + mine
            obl = []
            for p in own:
                for s in sentences(p):
                    s2 = re.sub(r"^[a-zđ]\)\s*", "", s)
                    if CUE.match(s) and s2 not in obl and s is not first:
                        others = [c for c in codes_in(s2) if c != code and not c.startswith(base)]
                        if not others or code in codes_in(s2):
                            obl.append(s2.rstrip(";") if s2.endswith(".") else s2.rstrip(";") + ".")
            e.setdefault("obligations", obl[:3])


def parse_expressway(lines: list[str], entries: dict[str, dict]) -> None:
    """IE signs: their meaning is in article 47 (47.x sub-items), not an annex."""
    text = re.sub(r"\s+", " ", " ".join(section(lines, "##### Điều 47", "### CHƯƠNG 10")))
    for code in [c for c in entries if c.startswith("IE.")]:
        m = re.search(r"Biển số " + re.escape(code) + r"[a-z]?\s([^.]*\.)", text)
        if m and "meaning" not in entries[code]:
            entries[code]["meaning"] = meaning_of(m.group(1))
            entries[code]["annex"] = "Điều 47"


def parse_markings(lines: list[str]) -> dict[str, dict]:
    """Annex G: 'a. Vạch 1.1: name' / 'Vạch 7.1: name' / '- Vạch 9.5a: ...', 'Ý nghĩa sử dụng:', 'Quy cách'."""
    body = section(lines, "Phụ lục G", "Phụ lục I")
    out: dict[str, dict] = {}
    cur = None
    for s in body:
        m = re.match(r"^(?:[a-g]\.\s*)?(?:- )?Vạch (?:số )?(\d\.\d[a-z]?)\s*:\s*(.*)$", s)
        if m:
            cur = out.setdefault(m.group(1), {"code": f"Vạch {m.group(1)}", "name": m.group(2).strip().rstrip("."),
                                              "lines": []})
            continue
        if cur is not None:
            cur["lines"].append(s)
    for num, e in out.items():
        text = re.sub(r"\s+", " ", " ".join(e.pop("lines")))
        if e["name"][:1].islower() and not e["name"].lower().startswith("vạch"):  # '- Vạch 3.4: sử dụng để ...'
            text, e["name"] = "Ý nghĩa sử dụng: " + e["name"] + " " + text, e["code"]
        if e["name"].lower().startswith("vạch") and len(e["name"]) > 40:  # 'Vạch 3.2: Vạch liền nét, màu trắng, ...'
            text, e["name"] = e["name"] + " " + text, e["name"].split(",")[0]
        wrap = re.match(r"^(.*?)(?=Ý nghĩa sử dụng|Quy cách|$)", text).group(1)
        if wrap and not e["name"].endswith(wrap.strip()) and len(wrap) < 80 and not wrap.startswith(("Vạch", "Xe")):
            e["name"] = (e["name"] + " " + wrap).strip()
        mm = re.search(r"Ý nghĩa sử dụng:\s*(.*?)(?=Minh họa|Quy cách|$)", text)
        meaning = mm.group(1).strip() if mm else " ".join(sentences(text)[:2])
        sents = sentences(meaning)
        e["meaning"] = meaning_of(sents[0]) if sents else ""
        e["obligations"] = [s for s in sents[1:3] if re.search(r"không được|phải|được phép|có thể cắt", s)]
        qc = re.search(r"Quy cách[^:]*:\s*(.*)", text)
        spec = (qc.group(1) if qc else text)
        colour = re.findall(r"màu (vàng|trắng|đỏ|đen)", spec[:300])
        stroke = re.findall(r"(vạch đơn|vạch đôi|liền nét|nét liền|đứt nét|nét đứt|đứt khúc)", spec[:300])
        e["shape_colour"] = ", ".join(dict.fromkeys(stroke + [f"màu {c}" for c in colour])) or None
        e["group"] = "marking"
        e["source"] = f"{QCVN}, Phụ lục G"
        e["aliases"] = MARKING_ALIASES.get(num, [])
    return {e["code"]: e for e in out.values()}


def parse_law(path: Path) -> list[dict]:
    """RULES' clauses from the Law 36/2024/QH15 Markdown."""
    text = nfc(path.read_text(encoding="utf-8"))
    arts = {int(m.group(1)): m for m in re.finditer(r"^### Điều (\d+)\. (.*)$", text, flags=re.M)}
    out = []
    for art, clause, points, topic, keys in RULES:
        start = arts[art].end()
        nxt = [m.start() for a, m in arts.items() if m.start() > start]
        body = text[start:min(nxt) if nxt else len(text)]
        cm = re.search(rf"^{clause}\. (.*?)(?=^\d+\. |\Z)", body, flags=re.M | re.S)
        if not cm:
            raise ValueError(f"{path}: Điều {art} khoản {clause} not found")
        ctext = re.sub(r"\\\*|\*+|_+", "", cm.group(1))
        ctext = re.sub(r"\s+", " ", ctext).strip()
        out.append({"code": f"L36.{art}.{clause}", "group": "rule", "name": f"{topic} (Điều {art} khoản {clause})",
                    "meaning": ctext, "obligations": [], "shape_colour": None, "aliases": keys,
                    "source": f"{LAW}, Điều {art} khoản {clause}"})
    return out


def build(qcvn: Path, law: Path) -> dict:
    lines = clean_lines(qcvn.read_text(encoding="utf-8"))
    entries = parse_lists(lines)
    parse_annexes(lines, entries)
    parse_expressway(lines, entries)
    shapes = group_texts(lines)
    signs = []
    for code, e in entries.items():
        g = group_of(code)
        names = [e["name"], *sorted(e.pop("quoted", set())), *NAMES_2019.get(code, []), *ALIASES.get(code, [])]
        meaning = e.get("meaning") or ""
        if not meaning:  # only the list names it (no annex item in the text read): the name is all it says
            meaning = f"{GROUPS[g][0]}: {e['name']}."
        signs.append({"code": code, "group": g, "name": e["name"], "meaning_from": "annex" if e.get("meaning") else "name",
                      "aliases": list(dict.fromkeys(n.strip() for n in names[1:] if n.strip().lower() != e["name"].lower())),
                      "meaning": meaning, "obligations": e.get("obligations", []),
                      "shape_colour": SHAPES.get(code),
                      "source": f"{QCVN}, {e['list_article']}" + (f"; {e['annex']}" if e.get("annex") else ""),
                      "codes_2019": [old for old, new in RENUMBERED_2019.items() if new == code]})
    groups = [{"code": f"GROUP:{k}", "group": "group", "name": v[0], "meaning": shapes[k], "obligations": [],
               "shape_colour": None, "aliases": [], "source": f"{QCVN}, {v[2]}"} for k, v in GROUPS.items()]
    markings = list(parse_markings(lines).values())
    rules = parse_law(law)
    data = {"source": f"{QCVN} (Thông tư 51/2024/TT-BGTVT, hiệu lực 01/01/2025); {LAW}",
            "groups": groups, "signs": sorted(signs, key=lambda s: _order(s["code"])), "markings": markings,
            "rules": rules}
    body = json.dumps(data, ensure_ascii=False, sort_keys=True)
    data["version"] = "qcvn41-2024+l36-2024:" + hashlib.sha1(body.encode()).hexdigest()[:10]
    return data


def _order(code: str):
    m = re.match(r"^([A-Z.,]+?)\.?(\d+)([a-z]?)$", code.replace(",", "."))
    return (m.group(2), m.group(3), m.group(1)) if m else (code, "", "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qcvn", required=True, type=Path, help="Circular 51/2024/TT-BGTVT as Markdown")
    ap.add_argument("--law", required=True, type=Path, help="Law 36/2024/QH15 as Markdown")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out and write nothing (exit 1 if it differs)")
    args = ap.parse_args(argv)
    data = build(args.qcvn, args.law)
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    counts = {k: len(data[k]) for k in ("groups", "signs", "markings", "rules")}
    by_group = {}
    for s in data["signs"]:
        by_group[s["group"]] = by_group.get(s["group"], 0) + 1
    empty = [s["code"] for s in data["signs"] if s["meaning_from"] == "name"]
    print(f"{counts} signs by group {by_group}; version {data['version']}; no meaning: {empty}")
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print("same as" if same else "differs from", args.out)
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

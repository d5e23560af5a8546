"""Question themes by keyword (Vietnamese), the taxonomy used by 01_explore and later by 05_eval.

Matching is on the lower-cased, NFC-normalised question; a question can have several themes.
The keyword lists follow the themes counted in shared/reference/datasets.md.
"""
from __future__ import annotations

import unicodedata

THEMES: dict[str, tuple[str, ...]] = {
    "signs": ("biển", "bien bao"),
    "prohibitions": ("cấm", "không được phép", "không được"),
    "direction": ("hướng", "rẽ", "re trai", "re phai", "đi thẳng", "quay đầu", "chỉ dẫn"),
    "lanes": ("làn",),
    "counting": ("bao nhiêu", "mấy", "số lượng"),
    "speed_limits": ("tốc độ", "km/h"),
    "warnings": ("nguy hiểm", "cảnh báo", "tam giác"),
    "markings": ("vạch", "mặt đường", "kẻ đường"),
    "vehicle_types": ("xe tải", "xe khách", "xe máy", "ô tô", "oto", "xe con", "xe buýt"),
    "street_names": ("tên đường", "phố", "đường nào", "đại lộ"),
    "time_windows": ("giờ", "khung thời gian", "thời gian"),
    "lights": ("đèn",),
}


def normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def themes_of(question: str) -> list[str]:
    q = normalise(question)
    found = [name for name, words in THEMES.items() if any(w in q for w in words)]
    return found or ["other"]

"""Grounding a question in the glossary: the entries its choices and question name, as short notes for the
prompt, within a token budget.

    g = ground(item)                                  # Grounding(codes=[...], notes=[...], tokens=...)
    item = with_notes(item, g)                        # a GroundedItem: the prompt shows its notes (models/prompts.py)
    items = ground_items(items, budget=240, count=len_in_tokens)
    report = coverage(items)                          # what `python -m roadbuddy_utils knowledge Q.json` prints
    python -m roadbuddy_utils knowledge traffic_buddy_train+public_test/train/train.json [--id ID] [--json]

Matching survives the ways questions write sign names: accents or none ("cam re trai"), casing, "km/h" /
"Km/h" / "60km/h", "biển" / "biển báo" prefixes, "oto", codes written "P.123a" / "P123a" / "biển số 123a"
(the 2012 numbers), QCVN 41:2019 codes that 2024 changed (W.211a -> W.211, I.428 -> I.428a), speed-limit
numbers ("60 km/h" -> P.127, or R.306 when the question asks for a minimum speed), road markings ("vạch 1.3",
"vạch đi bộ"), a sign group when the question asks about one ("biển báo nguy hiểm", "biển hiệu lệnh", or a bare
"Cảnh báo" choice when the question asks which kind of sign), and rules of the road by key words ("chuyển làn",
"quay đầu"). Longer names win over the names they contain ("cấm rẽ trái và quay đầu xe" is P.124c, not P.123a +
P.124a). Notes are added in priority order (codes written out, signs and markings the choices and question
name, then groups, then rules) while they fit the budget, counted by ``count`` (the run's tokenizer in 03 / 04,
else ``approx_tokens``).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..data.questions import Item
from .glossary import Glossary, load

DEFAULT_BUDGET = 240  # tokens of notes per question (the video part is ~1,000-2,000 at 8 frames)
PRIORITY = {"code": 0, "signs": 1, "markings": 2, "groups": 3, "rules": 4}
GROUP_ALIASES = {
    "GROUP:P": ["biển cấm", "biển báo cấm", "nhóm biển cấm", "nhóm biển báo cấm"],
    "GROUP:W": ["biển báo nguy hiểm", "biển nguy hiểm", "biển cảnh báo", "biển báo cảnh báo", "biển báo nguy hiểm và "
                "cảnh báo", "nhóm biển báo nguy hiểm", "biển cảnh báo nguy hiểm"],
    "GROUP:R": ["biển hiệu lệnh", "biển báo hiệu lệnh", "nhóm biển hiệu lệnh"],
    "GROUP:I": ["biển chỉ dẫn", "biển báo chỉ dẫn", "nhóm biển chỉ dẫn", "biển chỉ dẫn trên đường cao tốc"],
    "GROUP:S": ["biển phụ", "biển báo phụ", "biển viết bằng chữ"],
}
BARE_GROUP = {"cấm": "GROUP:P", "báo cấm": "GROUP:P", "cảnh báo": "GROUP:W", "nguy hiểm": "GROUP:W",
              "nguy hiểm và cảnh báo": "GROUP:W", "hiệu lệnh": "GROUP:R", "chỉ dẫn": "GROUP:I", "phụ": "GROUP:S"}
GROUP_ENDS = {"|", "va", "hoac", "hay", "nao", "khong", "gi", "trong", "xuat", "co", "deu", "la", "thuoc", "o", "duoc",
              "khac", "nay", "do", "dau", "thu", "hai", "sau", "day", "ben", "phia", "cua", "cho", "tren", "tai", "da"}
GENERIC = {tuple(p.split()) for p in ("lan duong", "loai xe", "dung lai", "kiem tra", "huong re", "giam toc do",
                                      "lan", "loi ra", "nhap lan", "diem", "duong ham", "ten duong", "dien thoai")}
ASKS_KIND = re.compile(r"loại biển|nhóm biển|biển báo gì|thuộc loại|thuộc nhóm")
SIGN_CUE = re.compile(r"biển|cấm|\d\s*km/h|vạch")
NOT_A_NAME = re.compile(r"^(?:\d+\s*biển(?: báo)?|không có(?: thông tin| biển(?: báo)?(?: nào)?)?|tất cả.*|cả .* đều .*|"
                        r"không có đáp án.*|không)$")
# codes of QCVN 41:2012 (numbers only) by range: which prefix a bare 'biển số 123a' means
RANGES = [(101, 140, "P"), (122, 122, "R"), (133, 135, "DP"), (201, 247, "W"), (301, 310, "R"), (401, 449, "I"),
          (403, 404, "R"), (411, 412, "R"), (415, 415, "R"), (420, 421, "R"), (450, 474, "IE"), (501, 510, "S")]
CODE_RE = re.compile(r"\b(DP|IE|R\.E,|S\.G,|S\.H,|[PWRIS])\s?\.?\s?(\d{1,3})\s?([a-z])?\b", re.I)
OLD_CODE_RE = re.compile(r"\bbiển(?: báo)?(?: số)? (\d{3})\s?([a-z])?\b")
MARKING_RE = re.compile(r"\bvạch(?: kẻ đường)?(?: số)? (\d)\.(\d)([a-z])?\b")
SPEED_RE = re.compile(r"\b(\d{2,3}) ?km/h\b")


def nfc_lower(text: str) -> str:
    t = unicodedata.normalize("NFC", str(text)).casefold()
    t = re.sub(r"\bo\s?tô\b|\boto\b|\bô-tô\b|\bôtô\b", "ô tô", t)
    t = re.sub(r"(\d)\s*(?:km\s*/\s*h|km/giờ|kmh)\b", r"\1 km/h", t)
    return t


def words(text: str) -> str:
    """Lower case with diacritics, units normalised, clause punctuation to '|', other punctuation to spaces."""
    t = re.sub(r"[,;.?!:()\"“”]+(?!\d)", " | ", nfc_lower(text).replace("-", " "))
    return " ".join(re.sub(r"[^\w/|]+", " ", t).split())


def fold(text: str) -> str:
    """``words`` without diacritics (đ -> d): where a text written without accents is matched."""
    t = words(text).replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: about one token per 3 UTF-8 bytes of Vietnamese (diacritics cost bytes)."""
    return -(-len(text.encode("utf-8")) // 3)


@dataclass
class GroundedItem(Item):
    """An item with the glossary notes its question and choices call for (models/prompts.py shows them before
    the question). ``dataclasses.replace`` keeps them (shuffled choices, cyclic shifts)."""

    notes: tuple[str, ...] = ()
    knowledge_codes: tuple[str, ...] = ()


@dataclass
class Grounding:
    codes: list[str] = field(default_factory=list)  # the entries whose notes fit, in prompt order
    notes: list[str] = field(default_factory=list)
    tokens: int = 0  # notes' tokens as counted
    matched: list[str] = field(default_factory=list)  # every entry found, before the budget
    choice_codes: list[list[str]] = field(default_factory=list)  # per choice: sign / marking codes it names
    choice_kinds: list[str] = field(default_factory=list)  # per choice: sign | group | other


_INDEXES: dict[int, dict] = {}


def _index(glossary: Glossary) -> dict[str, list[tuple[tuple[str, ...], tuple[str, ...], str, str]]]:
    """first folded word -> [(folded alias, accented alias, code, kind)] for every alias of every entry (built
    once per glossary)."""
    if id(glossary) in _INDEXES:
        return _INDEXES[id(glossary)]
    idx: dict[str, list] = {}
    names: dict[tuple, set] = {}
    for e in glossary.entries:
        phrases = [] if e.kind == "groups" else [e.name, re.sub(r"\s*\(.*?\)\s*", " ", e.name), *e.aliases]
        phrases += GROUP_ALIASES.get(e.code, [])
        for p in phrases:
            acc, folded = tuple(words(p).split()), tuple(fold(p).split())
            if not acc:
                continue
            if e.kind == "signs" and acc in names and any(glossary.entry(c).kind == "signs" for c in names[acc]):
                continue  # the same name on several variants (W.205a-e): the first one stands for them
            names.setdefault(acc, set()).add(e.code)
            idx.setdefault(folded[0], []).append((folded, acc, e.code, e.kind))
    for v in idx.values():
        v.sort(key=lambda a: -len(a[0]))
    _INDEXES[id(glossary)] = idx
    return idx


def _prefix_code(num: int, letter: str, glossary: Glossary) -> str | None:
    prefix = None
    for lo, hi, p in RANGES:
        if lo <= num <= hi:
            prefix = p  # later, narrower ranges win
    if prefix is None:
        return None
    for cand in (f"{prefix}.{num}{letter}", f"{prefix}.{num}", f"{prefix}.{num}a"):
        if cand in glossary.by_code:
            return cand
    return None


def explicit_codes(text: str, glossary: Glossary) -> list[str]:
    """Codes written out: 'P.123a', 'P123a', 'biển số 123a' (2012 numbering), 'W.211a' (2019), 'vạch 1.3'."""
    t, out = nfc_lower(text), []
    for m in CODE_RE.finditer(t):
        prefix, num, letter = m.group(1).upper(), m.group(2), (m.group(3) or "").lower()
        if prefix in ("P", "W", "R", "I", "S") and len(num) < 3:
            continue
        code = f"{prefix}.{num}{letter}" if not prefix.endswith(",") else f"{prefix}{num}{letter}"
        code = code.replace("R.E,", "R.E,").replace(".,", ",")
        hits = [code, f"{code}a" if not letter else code] + [e.code for e in glossary.entries if code in e.codes_2019]
        found = next((c for c in hits if c in glossary.by_code), None)
        if found is None and prefix == "P" and num in ("133", "134", "135"):
            found = f"DP.{num}"
        if found:
            out.append(found)
    for m in OLD_CODE_RE.finditer(t):
        code = _prefix_code(int(m.group(1)), m.group(2) or "", glossary)
        if code:
            out.append(code)
    for m in MARKING_RE.finditer(t):
        for cand in (f"Vạch {m.group(1)}.{m.group(2)}{m.group(3) or ''}", f"Vạch {m.group(1)}.{m.group(2)}"):
            if cand in glossary.by_code:
                out.append(cand)
                break
    return list(dict.fromkeys(out))


def find(text: str, glossary: Glossary, kinds=("signs", "markings", "groups", "rules"),
         strict: bool = False) -> list[tuple[str, str]]:
    """(code, kind) of every entry ``text`` names, longest names first, no two overlapping, in text order; a
    text with diacritics matches accented names, one without them matches the names without theirs. Everyday
    phrases that are also sign names ('làn đường', 'dừng lại') count only after 'biển' / 'biển báo'; with
    ``strict`` (a question's text, which describes the scene) so does every sign name under three words."""
    acc, folded = words(text).split(), fold(text).split()
    accented = acc != folded  # a text with diacritics matches with them ('chợ' is not 'cho'); one without, without
    idx = _index(glossary)
    cands = []
    for i, w in enumerate(folded):
        for alias_f, alias_a, code, kind in idx.get(w, ()):
            n = len(alias_f)
            if kind in kinds and tuple((acc if accented else folded)[i:i + n]) == (alias_a if accented else alias_f):
                if kind == "groups" and i + n < len(folded) and folded[i + n] not in GROUP_ENDS:
                    continue  # 'biển cấm tụ tập' names a sign (unknown), not the group of prohibition signs
                after_bien = i > 0 and folded[i - 1] in ("bien", "bao", "dan", "lenh")  # biển (báo / chỉ dẫn / hiệu lệnh) X
                if kind in ("signs", "markings") and not after_bien and (
                        alias_f in GENERIC or (strict and n < 3 and not alias_f[0] in ("cam", "het", "vach"))):
                    continue
                cands.append((i, i + n, code, kind))
    cands.sort(key=lambda c: (PRIORITY[c[3]] > PRIORITY["markings"], -(c[1] - c[0]), PRIORITY[c[3]], c[0]))
    taken, chosen = set(), []
    for s, e, code, kind in cands:
        span = set(range(s, e))
        if span & taken:
            continue
        taken |= span
        chosen.append((s, code, kind))
    return [(code, kind) for _, code, kind in sorted(chosen)]


def _speed(text: str, context: str) -> list[str]:
    t = nfc_lower(text)
    if not SPEED_RE.search(t):
        return []
    return ["R.306" if "tối thiểu" in nfc_lower(context) and "tối đa" not in t else "P.127"]


def ground(item: Item, glossary: Glossary | None = None, budget: int = DEFAULT_BUDGET,
           count: Callable[[str], int] | None = None) -> Grounding:
    """The entries ``item``'s choices and question name, and the notes that fit ``budget`` tokens."""
    glossary = glossary or load()
    count = count or approx_tokens
    q = item.question
    asks_kind = bool(ASKS_KIND.search(nfc_lower(q)))
    ranked: list[tuple[int, int, str]] = []  # (priority, order, code)
    g = Grounding()
    order = 0
    for _, text in item.choices:
        t = nfc_lower(text).strip(" .")
        found = [(c, "code") for c in explicit_codes(text, glossary)] + [(c, "signs") for c in _speed(text, q)]
        found += find(text, glossary, kinds=("signs", "markings", "groups"))
        if asks_kind and t in BARE_GROUP:
            found.append((BARE_GROUP[t], "groups"))
        codes = [c for c, k in found if k != "groups" and glossary.entry(c).kind != "groups"]
        g.choice_codes.append(list(dict.fromkeys(codes)))
        g.choice_kinds.append("sign" if codes else "group" if found else
                              "sign" if SIGN_CUE.search(t) and not NOT_A_NAME.match(t) else "other")
        for c, k in found:
            ranked.append((PRIORITY[k] if k != "signs" else PRIORITY[glossary.entry(c).kind], order, c))
            order += 1
    found_q = [(c, "code") for c in explicit_codes(q, glossary)] + find(q, glossary, strict=True)
    for c, k in found_q:
        ranked.append((PRIORITY[k] if k in ("code", "rules", "groups") else PRIORITY[glossary.entry(c).kind], order, c))
        order += 1
    for _, text in item.choices:  # rules may also hang on a choice's words ('Rẽ trái', 'Chuyển làn')
        for c, k in find(text, glossary, kinds=("rules",)):
            ranked.append((PRIORITY["rules"], order, c))
            order += 1
    seen: list[str] = []
    for _, _, c in sorted(ranked):
        if c not in seen:
            seen.append(c)
    g.matched = seen
    for c in seen:
        note = glossary.note(glossary.entry(c))
        n = count(note)
        if g.tokens + n <= budget:
            g.codes.append(c)
            g.notes.append(note)
            g.tokens += n
    return g


def with_notes(item: Item, grounding: Grounding) -> GroundedItem:
    """``item`` as a GroundedItem carrying ``grounding``'s notes and codes (other fields unchanged)."""
    fields = {k: getattr(item, k) for k in Item.__dataclass_fields__}
    return GroundedItem(**fields, notes=tuple(grounding.notes), knowledge_codes=tuple(grounding.codes))


def ground_items(items: Sequence[Item], budget: int = DEFAULT_BUDGET, count: Callable[[str], int] | None = None,
                 glossary: Glossary | None = None) -> list[GroundedItem]:
    """Every item with its notes (an item without matches gets none: its prompt is the plain one)."""
    glossary = glossary or load()
    return [with_notes(it, ground(it, glossary, budget, count)) for it in items]


def coverage(items: Sequence[Item], budget: int = DEFAULT_BUDGET, count: Callable[[str], int] | None = None,
             glossary: Glossary | None = None) -> dict:
    """How much of a question file the glossary grounds.

    ``sign_choices``: choices that name a sign or marking (a match, or sign words such as "biển" / "cấm" /
    "km/h" that matched nothing; counts like "3 biển" and "Không có" are not names); ``matched``: those with a
    glossary code; ``coverage`` = matched / sign_choices; ``group_choices``: choices that name only sign groups;
    ``questions_with_notes``; note tokens per question (mean, p95, max) as ``count`` measures them."""
    glossary = glossary or load()
    rows, sign, matched, group, tokens = [], 0, 0, 0, []
    for it in items:
        g = ground(it, glossary, budget, count)
        sign += sum(k == "sign" for k in g.choice_kinds)
        matched += sum(k == "sign" and bool(c) for k, c in zip(g.choice_kinds, g.choice_codes))
        group += sum(k == "group" for k in g.choice_kinds)
        tokens.append(g.tokens)
        rows.append({"id": it.id, "codes": g.codes, "matched": g.matched, "tokens": g.tokens,
                     "choice_codes": g.choice_codes})
    ts = sorted(tokens)
    return {"questions": len(items), "sign_choices": sign, "matched": matched,
            "coverage": round(matched / sign, 4) if sign else None, "group_choices": group,
            "questions_with_notes": sum(bool(r["codes"]) for r in rows),
            "tokens": {"mean": round(sum(ts) / len(ts), 1) if ts else 0, "p95": ts[int(0.95 * (len(ts) - 1))] if ts else 0,
                       "max": ts[-1] if ts else 0, "budget": budget},
            "glossary_version": glossary.version, "items": rows}


def format_coverage(report: dict, show: Sequence[dict] | None = None) -> str:
    """The text the CLI prints: totals, then one line per item shown (id: codes)."""
    t = report["tokens"]
    lines = [f"{report['questions']} questions; {report['sign_choices']} choices name a sign, {report['matched']} "
             f"matched (coverage {report['coverage']}); {report['group_choices']} choices name only groups; "
             f"{report['questions_with_notes']} questions get notes; note tokens per question mean {t['mean']}, "
             f"p95 {t['p95']}, max {t['max']} (budget {t['budget']}); glossary {report['glossary_version']}"]
    for r in show or ():
        lines.append(f"{r['id']}: {' '.join(r['codes']) or '-'}")
    return "\n".join(lines)

"""The QCVN 41:2024 glossary shipped with the package: one entry per sign, road marking, rule of the road and
sign group, each with its source in the regulation (or the 2024 road traffic law).

    g = load()                                   # roadbuddy_utils/knowledge/glossary.json, read once
    g.entry("P.123a").name                       # 'Cấm rẽ trái'
    g.note(g.entry("P.123a"))                    # the one-line note the prompt shows
    g.version                                    # recorded in run_config.json

Built by ``scripts/build_glossary.py`` from the regulation's own text (Circular 51/2024/TT-BGTVT, in force
since 2025-01-01, and Law 36/2024/QH15); legal normative documents are outside copyright, no third-party
compilation was read. tests/test_knowledge.py pins entries of every group against the regulation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PATH = Path(__file__).with_name("glossary.json")
KINDS = ("signs", "markings", "rules", "groups")
NOTE_CHARS = 200  # a note longer than this is cut at a sentence end (or a word) with an ellipsis


@dataclass(frozen=True)
class Entry:
    code: str  # 'P.123a', 'Vạch 1.3', 'L36.13.2', 'GROUP:P'
    group: str  # P | W | R | I | S (signs), marking, rule, group
    name: str
    meaning: str
    obligations: tuple[str, ...] = ()
    shape_colour: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""
    codes_2019: tuple[str, ...] = ()
    meaning_from: str = "annex"  # 'name' where the text read gives the list name only

    @property
    def kind(self) -> str:
        return {"marking": "markings", "rule": "rules", "group": "groups"}.get(self.group, "signs")


@dataclass
class Glossary:
    entries: list[Entry]
    version: str
    source: str
    by_code: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self):
        self.by_code = {e.code: e for e in self.entries}

    def entry(self, code: str) -> Entry:
        return self.by_code[code]

    def of_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    def counts(self) -> dict:
        """Entries per kind and signs per group (the README and RESULTS quote these)."""
        out = {k: len(self.of_kind(k)) for k in KINDS}
        out["signs_by_group"] = {g: sum(e.group == g for e in self.entries) for g in "PWRIS"}
        return out

    def note(self, e: Entry, max_chars: int = NOTE_CHARS) -> str:
        """One line for the prompt: code, name, meaning and the first obligation (a group: its definition,
        shape and colours; a rule: its article and text)."""
        if e.group == "group":
            text = f"{e.name} ({e.source.split(', ', 1)[-1]}): {e.meaning}"
        elif e.group == "rule":
            text = f"{e.source}: {e.meaning}"
        else:
            shape = f" ({e.shape_colour})" if e.shape_colour else ""
            extra = f" {e.obligations[0]}" if e.obligations else ""
            meaning = "" if e.meaning_from == "name" else f": {e.meaning}"
            text = f"{e.code} «{e.name}»{shape}{meaning}{extra}"
        return shorten(text, max_chars)


def shorten(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``: at the last sentence end inside the limit, else the last word, with '…'."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    cut = max(head.rfind(". "), head.rfind("; "))
    if cut > max_chars // 2:
        return head[:cut + 1]
    return head[:head.rfind(" ")].rstrip(",;:") + "…"


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Glossary:
    """The glossary (the shipped JSON unless ``path``), parsed once per path."""
    data = json.loads(Path(path or PATH).read_text(encoding="utf-8"))
    entries = []
    for kind in ("signs", "markings", "groups", "rules"):
        for r in data[kind]:
            entries.append(Entry(code=r["code"], group=r["group"], name=r["name"], meaning=r["meaning"],
                                 obligations=tuple(r.get("obligations") or ()), shape_colour=r.get("shape_colour"),
                                 aliases=tuple(r.get("aliases") or ()), source=r.get("source", ""),
                                 codes_2019=tuple(r.get("codes_2019") or ()),
                                 meaning_from=r.get("meaning_from", "annex")))
    return Glossary(entries, data["version"], data["source"])

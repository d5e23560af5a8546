"""One robust letter extractor for generated answers.

    letter, how = extract_letter("Đáp án: B. Sai", [("A", "Đúng"), ("B", "Sai")])   # ("B", "answer_phrase")

Tried in order, on the text with any leading ``<think>...</think>`` block removed:
1. ``answer_phrase``: "Đáp án: B", "đáp án là (C)", "answer is C", "Answer: D", "The correct option is B";
2. ``letter``: the reply starts with a letter standing alone ("B", "B.", "(B)", "B) Sai", "**B**");
   an English article ("A car ...") is not a letter;
3. ``choice_text``: the reply is, starts with, or contains exactly one choice's text ("Rẽ trái");
4. ``yes_no``: Đúng/Sai, Có/Không, Yes/No, True/False mapped to the choice that says it;
5. ``letter_anywhere``: exactly one offered letter stands alone somewhere in the reply.
Returns ``(None, "none")`` when nothing fits: the caller's fallback must be explicit and marked.
"""
from __future__ import annotations

import re
import unicodedata

_THINK = re.compile(r"^\s*<think>.*?(</think>|$)", re.S | re.I)
_PHRASE = re.compile(
    r"(?:đáp\s*án(?:\s+đúng)?(?:\s+là)?|câu\s+trả\s+lời(?:\s+đúng)?(?:\s+là)?|lựa\s+chọn(?:\s+đúng)?(?:\s+là)?|"
    r"answer(?:\s+is)?|correct\s+(?:answer|option|choice)(?:\s+is)?|option(?:\s+is)?|choice(?:\s+is)?)"
    # an upper-case letter, or a lower-case one standing alone at the end ("answer: b."), never the
    # article in "the answer is a car turning"
    r"\s*[:：]?\s*[\(\[\*\"']*\s*((?-i:[A-H])(?![A-Za-zÀ-ỹ])|(?-i:[a-h])(?=\s*(?:$|[\.\)\]\*,;!])))", re.I)
_LEADING = re.compile(r"^\s*[\(\[\*\"'#]*\s*([A-H])\s*(?:[\.\)\]:\*\"'\-]|$|\s+(?=[^\s]))")
_YES_NO = {"đúng": ("đúng", "true", "yes", "correct", "có"), "sai": ("sai", "false", "incorrect", "no"),
           "có": ("có", "yes"), "không": ("không", "no")}


def _norm(s: str) -> str:
    return unicodedata.normalize("NFC", s).casefold().strip(" \t\n.,:;!?\"'*()[]")


def _is_article(text: str, pos: int) -> bool:
    """An upper-case "A" followed by a space and a lower-case word is the English article."""
    return text[pos] == "A" and re.match(r"\s+[a-zà-ỹ]", text[pos + 1:]) is not None


def strip_think(text: str) -> str:
    return _THINK.sub("", text or "", count=1).strip()


def extract_letter(text: str, choices: list[tuple[str, str]]) -> tuple[str | None, str]:
    letters = [l for l, _ in choices]
    body = strip_think(text)
    if not body:
        return None, "none"
    for m in _PHRASE.finditer(body):
        if m.group(1).upper() in letters:
            return m.group(1).upper(), "answer_phrase"
    m = _LEADING.match(body)
    if m and m.group(1) in letters and not _is_article(body, m.start(1)):
        return m.group(1), "letter"
    nb = _norm(body)
    by_text = [(l, _norm(t)) for l, t in choices if _norm(t)]
    exact = [l for l, t in by_text if nb == t or nb.startswith(t + " ") or nb.startswith(t + ",")]
    if len(exact) == 1:
        return exact[0], "choice_text"
    contained = [l for l, t in by_text if re.search(r"(?<![\wÀ-ỹ])" + re.escape(t) + r"(?![\wÀ-ỹ])", nb)]
    if len(contained) == 1:
        return contained[0], "choice_text"
    first = re.split(r"[\s,\.!:;]+", nb, maxsplit=1)[0] if nb else ""
    for l, t in by_text:
        if t in _YES_NO and first in _YES_NO[t]:
            others = [t2 for _, t2 in by_text if t2 != t and t2 in _YES_NO and first in _YES_NO[t2]]
            if not others:
                return l, "yes_no"
    alone = {m.group(1) for m in re.finditer(r"(?<![A-Za-zÀ-ỹ])([A-H])(?![A-Za-zÀ-ỹ])", body)
             if m.group(1) in letters and not _is_article(body, m.start(1))}
    if len(alone) == 1:
        return alone.pop(), "letter_anywhere"
    return None, "none"

"""Retrieval over a JSON knowledge base of earlier annotations, with a leakage guard.

    kb = KnowledgeBase.load("kb.json")                         # {"annotations": [{question, answer?, ...}]}
    rag = Retriever(kb, mode="hint", topk=3, floor=0.1)
    report = rag.check(items)                                  # counts KB/eval overlap; refuses override on it
    r = rag.apply(item)                                        # r.notes (ids + scores), r.text, r.override

Modes: ``off``; ``hint``: the top ``topk`` notes go into the prompt, same frame before same scene
before the rest, each above a TF-IDF cosine ``floor``; ``override``: a note with the same scene,
frame and question replaces the model's answer.

Why the guard: a KB built from labelled evaluation questions makes ``override`` copy the answers
(and ``hint`` show them). ``check`` counts evaluated items whose (scene, frame, question) is in the
KB; ``override`` on such items raises ``LeakageError`` unless ``allow_leakage=True``, and the
results mark overridden items (``rag_override``) so their accuracy is reported apart. In ``hint``
mode an exact match is left out of the notes unless ``allow_leakage=True``.

TF-IDF (scikit-learn) on questions and answers with object tags reduced to their camera: tag
coordinates are different numbers in every frame and would only add noise to the match.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .data import MVItem

MODES = ("off", "hint", "override")
_TAG_RE = re.compile(r"<c\d+,\s*(CAM_[A-Z_]+),[^>]*>")


class LeakageError(RuntimeError):
    """``override`` would copy KB answers onto evaluated items that the KB contains."""


def norm_question(q: str) -> str:
    """Key form of a question: case, spacing and trailing punctuation do not make it new."""
    return re.sub(r"\s+", " ", str(q or "")).strip().casefold().rstrip("?.! ")


def _index_text(q: str) -> str:
    return _TAG_RE.sub(lambda m: f" object {m.group(1).lower()} ", q or "")


@dataclass
class Note:
    id: str
    question: str
    answer: str | None
    scene_token: str | None
    frame_token: str | None
    raw: dict

    @property
    def key(self) -> tuple | None:
        if not (self.scene_token and self.frame_token and self.question):
            return None
        return self.scene_token, self.frame_token, norm_question(self.question)


def item_key(item: MVItem) -> tuple:
    return item.scene_token, item.frame_token, norm_question(item.question)


class KnowledgeBase:
    def __init__(self, notes: Sequence[Note], source: str = "<memory>"):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.notes = list(notes)
        self.source = source
        self.by_key: dict[tuple, Note] = {}
        for n in self.notes:  # first note wins for a repeated key: deterministic
            if n.key is not None:
                self.by_key.setdefault(n.key, n)
        docs = [_index_text(f"{n.question} {n.answer or ''}") for n in self.notes]
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        try:
            self.matrix = self.vectorizer.fit_transform(docs) if docs else None
        except ValueError:  # only stop words / empty texts: nothing to retrieve on
            self.matrix = None

    @classmethod
    def load(cls, path) -> "KnowledgeBase":
        """Read ``{"annotations": [...]}``; an annotation without a question is an error naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read knowledge base: {e}") from e
        anns = data.get("annotations") if isinstance(data, dict) else None
        if not isinstance(anns, list):
            raise ValueError(f"{path}: expected {{'annotations': [...]}}")
        return cls.from_annotations(anns, str(path))

    @classmethod
    def from_annotations(cls, anns: Sequence[dict], source: str = "<memory>") -> "KnowledgeBase":
        notes = []
        for k, a in enumerate(anns):
            q = a.get("question") if isinstance(a, dict) else None
            if not q:
                raise ValueError(f"{source}: annotations[{k}] has no 'question'")
            ans = a.get("answer")
            notes.append(Note(str(a.get("id", f"kb{k:05d}")), str(q), None if ans in (None, "") else str(ans),
                              a.get("scene_token"), a.get("frame_token"), a))
        return cls(notes, source)

    def __len__(self) -> int:
        return len(self.notes)

    def similarities(self, text: str):
        """Cosine similarity of ``text`` to every note (TF-IDF rows are L2-normalised)."""
        import numpy as np

        if self.matrix is None:
            return np.zeros(len(self.notes))
        q = self.vectorizer.transform([_index_text(text)])
        return (self.matrix @ q.T).toarray().ravel()

    def exact(self, item: MVItem) -> Note | None:
        return self.by_key.get(item_key(item))


@dataclass
class LeakageReport:
    n_items: int
    n_overlap: int  # evaluated items whose (scene, frame, question) is in the KB
    overlap_ids: list[str]
    n_same_frame: int  # items with at least one KB note on their frame (not leakage by itself)
    kb_size: int
    kb_source: str

    def as_dict(self) -> dict:
        return {"n_items": self.n_items, "n_overlap": self.n_overlap, "overlap_ids": self.overlap_ids[:50],
                "n_same_frame": self.n_same_frame, "kb_size": self.kb_size, "kb_source": self.kb_source}


@dataclass
class RagResult:
    notes: list[dict] = field(default_factory=list)  # [{"id", "score", "level"}] as used
    text: str | None = None  # block for the prompt (hint mode)
    override: str | None = None  # replacing answer (override mode)
    override_id: str | None = None


def leakage_report(kb: KnowledgeBase, items: Sequence[MVItem]) -> LeakageReport:
    overlap = [it.id for it in items if kb.exact(it) is not None]
    frames = {n.frame_token for n in kb.notes if n.frame_token}
    return LeakageReport(len(items), len(overlap), overlap, sum(it.frame_token in frames for it in items),
                         len(kb), kb.source)


class Retriever:
    def __init__(self, kb: KnowledgeBase | None, mode: str = "off", topk: int = 3, floor: float = 0.1,
                 allow_leakage: bool = False):
        if mode not in MODES:
            raise ValueError(f"rag_mode must be one of {list(MODES)}, got {mode!r}")
        if mode != "off" and kb is None:
            raise ValueError(f"rag_mode={mode!r} needs a knowledge base (kb_file)")
        if topk < 1:
            raise ValueError(f"kb_topk must be >= 1, got {topk}")
        self.kb, self.mode, self.topk, self.floor, self.allow_leakage = kb, mode, topk, floor, allow_leakage
        self.checked = False

    def check(self, items: Sequence[MVItem]) -> LeakageReport | None:
        """Run before answering. Raises ``LeakageError`` for ``override`` on overlapping items."""
        self.checked = True
        if self.kb is None:
            return None
        rep = leakage_report(self.kb, items)
        if self.mode == "override" and rep.n_overlap and not self.allow_leakage:
            raise LeakageError(
                f"rag_mode='override': {rep.n_overlap} of {rep.n_items} evaluated items have the same "
                f"(scene_token, frame_token, question) in {self.kb.source} (e.g. {rep.overlap_ids[:3]}); their "
                f"answers would be copied from the KB. Use a KB without the evaluated questions, or pass "
                f"allow_leakage=True and report those items apart.")
        return rep

    def search(self, item: MVItem) -> list[tuple[Note, float, str]]:
        """``[(note, score, level)]``: level ``frame`` / ``scene`` / ``other``; sorted by level then
        score; notes under ``floor`` dropped; exact matches dropped unless leakage is allowed."""
        if self.kb is None or not len(self.kb):
            return []
        sims = self.kb.similarities(item.question)
        key = item_key(item)
        rank = {"frame": 0, "scene": 1, "other": 2}
        hits = []
        for n, s in zip(self.kb.notes, sims):
            if s < self.floor or (n.key == key and not self.allow_leakage):
                continue
            level = ("frame" if item.frame_token and n.frame_token == item.frame_token else
                     "scene" if item.scene_token and n.scene_token == item.scene_token else "other")
            hits.append((n, float(s), level))
        hits.sort(key=lambda h: (rank[h[2]], -h[1], h[0].id))
        return hits[: self.topk]

    def apply(self, item: MVItem) -> RagResult:
        if self.mode == "off":
            return RagResult()
        if not self.checked:
            raise RuntimeError("call Retriever.check(items) before apply(): the leakage guard must run first")
        if self.mode == "override":
            n = self.kb.exact(item)
            if n is not None and n.answer is not None:
                if not self.allow_leakage:  # check() passed, so only reachable for items it did not see
                    raise LeakageError(f"item {item.id}: exact KB match {n.id} and allow_leakage=False")
                return RagResult([{"id": n.id, "score": 1.0, "level": "exact"}], None, n.answer, n.id)
            return RagResult()
        hits = self.search(item)
        if not hits:
            return RagResult()
        lines = [f"- [{s:.2f}{', same ' + lvl if lvl != 'other' else ''}] Q: {n.question}"
                 + (f" A: {n.answer}" if n.answer else "") for n, s, lvl in hits]
        return RagResult([{"id": n.id, "score": round(s, 4), "level": lvl} for n, s, lvl in hits], "\n".join(lines))

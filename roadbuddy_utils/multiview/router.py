"""The subtask router and the routing table: which official subtask a question is, and which model
size, prompt style and answer length it gets.

    for it in items:
        it.subtask, it.rule = classify(it)
    routes = load_routing()                                  # params/routing_default.yaml
    style, max_new = item_style(item, routes[item.subtask])
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from ..common.files import REPO
from .data import SUBTASKS, TAG_RE, MVItem, parse_options

DEFAULT_ROUTING = REPO / "params" / "routing_default.yaml"
STYLES = ("mcq", "yesno", "open")

# ----------------------------------------------------------------------------------------------
# Router: category + question patterns -> official subtask

_OPTIONS_HINT = re.compile(r"options\s*:|\bA\.\s.+\bB\.\s", re.I | re.S)
_YESNO_START = re.compile(r"^\s*(is|are|was|were|will|would|does|do|did|can|could|should|has|have)\b", re.I)
_PLANNING_SCENE = re.compile(
    r"safe actions|dangerous actions|comment on this scene|issues worth noting|noteworthy issues|"
    r"situation affects|conditions does this scene|conditions in this scene|impact on driving|"
    r"impact does this situation|priority of the objects|traffic signal", re.I)

# (rule name, categories it applies to (None: any), question pattern, subtask). First match wins.
RULES: list[tuple[str, frozenset | None, re.Pattern, str]] = [
    ("corruption", None, re.compile(r"type of corruption", re.I), "Corruption-MCQs"),
    ("perception_mcq", frozenset({"perception"}), _OPTIONS_HINT, "Perception-MCQs"),
    ("perception_object", frozenset({"perception"}), re.compile(r"(visual )?description of <obj>", re.I),
     "Perception-VQAs-Object-Description"),
    ("perception_scene", frozenset({"perception"}), re.compile(r"important objects in the current scene", re.I),
     "Perception-VQAs-Scene-Description"),
    ("prediction_notice", frozenset({"prediction"}), re.compile(r"notice (first|second|third)", re.I),
     "Prediction-MCQs"),
    ("prediction_yesno", frozenset({"prediction"}), _YESNO_START, "Prediction-MCQs"),
    ("prediction_mcq", frozenset({"prediction"}), _OPTIONS_HINT, "Prediction-MCQs"),
    # DriveBench's "behavior" (predict the ego vehicle's behaviour, MCQ) has no official subtask
    # of its own; it is closest to prediction and is answered as an MCQ.
    ("behavior_mcq", frozenset({"behavior"}), _OPTIONS_HINT, "Prediction-MCQs"),
    ("planning_object", frozenset({"planning"}), re.compile(r"<obj>"), "Planning-VQAs-Object-Description"),
    ("planning_scene", frozenset({"planning"}), _PLANNING_SCENE, "Planning-VQAs-Scene-Description"),
]


def _route_text(question: str) -> str:
    return TAG_RE.sub("<obj>", question)


def classify(item: MVItem) -> tuple[str, str]:
    """``(subtask, rule)``. Rules named ``default:...`` mean no question pattern matched and the
    subtask was guessed from the category (or, without one, from the question's shape): those are
    the ones to look at when a new question set arrives."""
    q, cat = _route_text(item.question), item.category
    if cat == "corruption":
        return "Corruption-MCQs", "corruption"
    for name, cats, pat, subtask in RULES:
        if (cats is None or cat in cats) and pat.search(q):
            return subtask, name
    has_obj = "<obj>" in q
    if cat == "perception":
        return ("Perception-MCQs" if _OPTIONS_HINT.search(q) else "Perception-VQAs-Object-Description" if has_obj
                else "Perception-VQAs-Scene-Description"), "default:perception"
    if cat in ("prediction", "behavior"):
        return "Prediction-MCQs", f"default:{cat}"
    if cat == "planning":
        return ("Planning-VQAs-Object-Description" if has_obj else "Planning-VQAs-Scene-Description"), "default:planning"
    # no (known) category: the question's shape decides
    if _OPTIONS_HINT.search(q):
        return "Perception-MCQs", "default:options"
    if _YESNO_START.search(q):
        return "Prediction-MCQs", "default:yesno"
    return ("Planning-VQAs-Object-Description" if has_obj else "Planning-VQAs-Scene-Description"), "default:open"


def classify_all(items: Sequence[MVItem]) -> tuple[Counter, list[dict]]:
    """Classify in place; returns counts per subtask and the items that fell to a default rule."""
    counts: Counter = Counter()
    defaults = []
    for it in items:
        it.subtask, it.rule = classify(it)
        counts[it.subtask] += 1
        if it.rule.startswith("default:"):
            defaults.append({"id": it.id, "category": it.category, "rule": it.rule, "subtask": it.subtask,
                             "question": it.question[:200]})
    return counts, defaults


# ----------------------------------------------------------------------------------------------
# Routing table: subtask -> model size, prompt style, max_new_tokens


@dataclass(frozen=True)
class Route:
    model: str  # a size name registered in ``models`` (e.g. "small", "large")
    style: str  # "mcq" | "yesno" | "open"
    max_new_tokens: int
    max_new_tokens_open: int | None = None  # for open questions inside a closed subtask ("notice first...")


_ROUTE_KEYS = {"model", "style", "max_new_tokens"}
_ROUTE_OPTIONAL = {"max_new_tokens_open"}


def load_routing(source=None, overrides: dict | None = None, models: Iterable[str] | None = None) -> dict[str, Route]:
    """Validated routing table from a YAML path, a dict, or (None) ``params/routing_default.yaml``.

    ``overrides`` changes keys of single entries (``{"Perception-MCQs": {"model": "large"}}``);
    ``models``: the registered size names, so a route to an unknown model fails here, before any
    model is loaded. Every official subtask needs an entry: an item must never lack a route."""
    where = "routing table"
    if source is None:
        source = DEFAULT_ROUTING
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            source = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{where}: cannot read routing table: {e}") from e
    if not isinstance(source, dict):
        raise ValueError(f"{where}: expected a mapping subtask -> {{model, style, max_new_tokens}}")
    table = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}
    for k, v in (overrides or {}).items():
        if k not in table or not isinstance(v, dict):
            raise ValueError(f"{where}: override for {k!r} must be a mapping of an existing subtask entry")
        table[k].update(v)
    errors = []
    unknown = sorted(set(table) - set(SUBTASKS))
    if unknown:
        errors.append(f"unknown subtask(s) {unknown}; known: {list(SUBTASKS)}")
    missing = [s for s in SUBTASKS if s not in table]
    if missing:
        errors.append(f"no entry for subtask(s) {missing}")
    models = set(models) if models is not None else None
    out = {}
    for s, v in table.items():
        if s in unknown:
            continue
        if not isinstance(v, dict):
            errors.append(f"{s}: expected a mapping, got {v!r}")
            continue
        if _ROUTE_KEYS - set(v):
            errors.append(f"{s}: missing key(s) {sorted(_ROUTE_KEYS - set(v))}")
            continue
        if set(v) - _ROUTE_KEYS - _ROUTE_OPTIONAL:
            errors.append(f"{s}: unknown key(s) {sorted(set(v) - _ROUTE_KEYS - _ROUTE_OPTIONAL)}")
        if v["style"] not in STYLES:
            errors.append(f"{s}.style: {v['style']!r} is not one of {list(STYLES)}")
        for key in ("max_new_tokens", "max_new_tokens_open"):
            n = v.get(key)
            if (key in v or key == "max_new_tokens") and not (isinstance(n, int) and not isinstance(n, bool) and n > 0):
                errors.append(f"{s}.{key}: must be a positive integer, got {n!r}")
        if models is not None and v["model"] not in models:
            errors.append(f"{s}.model: {v['model']!r} is not a registered model {sorted(models)}")
        out[s] = Route(str(v["model"]), v["style"], v["max_new_tokens"], v.get("max_new_tokens_open"))
    if errors:
        raise ValueError(f"{where}: invalid routing table:\n  " + "\n  ".join(errors))
    return out


def item_style(item: MVItem, route: Route) -> tuple[str, int]:
    """``(style, max_new_tokens)`` for one item: the route's, except that a question listing
    options is always MCQ and a non-yes/no question in a yes/no subtask (Prediction's "notice
    first/second/third") is open, with ``max_new_tokens_open`` when set."""
    if parse_options(item.question):
        return "mcq", route.max_new_tokens
    if route.style == "yesno" and not _YESNO_START.search(_route_text(item.question)):
        return "open", route.max_new_tokens_open or route.max_new_tokens
    return route.style, route.max_new_tokens

"""Multi-camera QA end to end: classify, route to a model by size, retrieve, answer, fall back, score.

    models = {"small": {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "adapter": "lora/7b"},
              "large": {"model": "Qwen/Qwen2.5-VL-72B-Instruct", "device_map": "auto"}}
    lines, metrics = run_multiview("robosense_track1_phase1_questions.json", "nuscenes/", "outputs/06", models)
    # tiny (CPU, seconds): ensure_demo_multiview("outputs/demo/multiview") then
    run_multiview("outputs/demo/multiview/questions.json", "outputs/demo/multiview", "outputs/demo/06",
                  {"small": {"model": "tiny:internvl"}, "large": {"model": "tiny:qwen2_5_vl"}},
                  kb_file="outputs/demo/multiview/kb.json", cfg=MVRunConfig(rag_mode="hint"))

The notebook ``06_multiview_router_rag`` runs the same steps one by one: ``prepare`` (load, classify
every item, routing table, leakage check), ``answer_all`` (the loop) and ``summarize``.

The loop, per item: route (``subtask -> size``) -> images in camera order, capped, each after its
camera name -> retrieval (``hint`` notes into the prompt; ``override`` answers from the KB without a
model) -> answer. MCQs are answered by the likelihood scorer over the letters the question offers
(``mcq_scoring="likelihood"``: one forward pass, cannot fail to parse) or by generation; yes/no
and open questions generate up to the route's ``max_new_tokens``.

Items are answered grouped by routed model, in the order ``models`` lists the sizes, so that with
``keep_one_in_memory`` each model is loaded once. An out-of-memory error (at load or on an item)
sends the item to the model ``fallback`` names (``large -> small``); it is answered after the
current group, and its line says ``model_routed: large, model_used: small`` with the reason. A
model that fails to load for another reason, and any other error on an item, is recorded in the
item's ``error`` and the run goes on. Lines are flushed to ``results.jsonl`` as they come
(``ResultStore``); a rerun skips items answered without error.

Sampling: ``do_sample=False`` (greedy) by default; with sampling on, torch is seeded with
``seed + item index`` before each item, so an item's answer does not depend on which items ran
before it (a resumed run gives the same answers).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

from ..common.files import read_jsonl, repair_jsonl, write_json, write_jsonl
from ..data.questions import Problem
from ..machine.hardware import MODEL_KEYS, describe, free_memory, is_oom, resolve_settings
from ..models.config import ModelConfig
from .data import PHASE1_COUNTS, SUBTASKS, MVItem, load_multiview, select_images
from .prompts import build_prompt
from .retrieval import KnowledgeBase, Retriever
from .router import Route, classify_all, load_routing
from .scoring import extract_choice, routing_stats, score_results
from .views import CameraSelector, check_selector, selection_line

MODEL_FIELDS = {f.name for f in fields(ModelConfig)} - {"model", "adapter_path", "n_frames"}


@dataclass
class MVRunConfig:
    """Knobs of one multi-camera run (the notebook's parameters, validated here)."""

    max_images_per_prompt: int | None = 6  # cameras per prompt, in the official order (None: all)
    only_named_cameras: bool = False  # send only the cameras a question names (all when it names none)
    rag_mode: str = "off"  # off | hint (top notes in the prompt) | override (exact KB match is the answer)
    kb_topk: int = 3  # notes per prompt in hint mode
    kb_floor: float = 0.1  # minimum TF-IDF cosine similarity of a note
    allow_leakage: bool = False  # let override / hint use KB entries identical to evaluated items
    mcq_scoring: str = "likelihood"  # likelihood (offered letters, one forward pass) | generate
    seed: int = 0
    do_sample: bool = False  # greedy decoding unless True
    temperature: float = 0.7  # sampling only
    limit: int | None = None  # answer only the first N items (all items are still classified and counted)
    keep_one_in_memory: bool = False  # release a model before loading another (one GPU, large models)
    fallback: dict = field(default_factory=lambda: {"large": "small"})  # on out-of-memory: size -> size
    selector: object = None  # frame_mode "select": a SelectorConfig (embedding) that picks the cameras (views.py)

    def __post_init__(self):
        self.selector = check_selector(self.selector)
        if not isinstance(self.do_sample, bool):
            raise ValueError(f"do_sample must be True or False, got {self.do_sample!r}")
        if self.mcq_scoring not in ("likelihood", "generate"):
            raise ValueError(f"mcq_scoring must be 'likelihood' or 'generate', got {self.mcq_scoring!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, got {self.limit!r}")
        if self.max_images_per_prompt is not None and self.max_images_per_prompt < 1:
            raise ValueError(f"max_images_per_prompt must be >= 1 or None, got {self.max_images_per_prompt}")
        if not isinstance(self.fallback, dict):
            raise ValueError(f"fallback must be a mapping size -> size, got {self.fallback!r}")


# ----------------------------------------------------------------------------------------------
# Models by size


class ModelUnavailable(RuntimeError):
    """A registered model could not be loaded (``oom`` when it ran out of memory)."""

    def __init__(self, size: str, message: str, oom: bool):
        super().__init__(f"model {size!r} could not be loaded: {message}")
        self.size, self.oom = size, oom


def model_configs(models: dict, hardware: str | None = None) -> dict[str, ModelConfig]:
    """``{size: ModelConfig}`` from the notebook's ``models``: size -> model id (a string) or
    ``{model, adapter?, dtype?, device_map?, quantization?, max_pixels?, ...}`` (every ``ModelConfig`` field:
    ``quantization: 4bit`` + ``device_map: auto`` puts a 72B in about 49 GiB). ``adapter`` is a LoRA output folder:
    its root when it holds the adapter, else its highest ``checkpoint-N``. With ``hardware`` (a preset name of
    ``hardware.preset``, e.g. "auto") the loading settings a model does not set follow the GPUs."""
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty mapping size -> model id or {model, adapter, ...}")
    out = {}
    for size, spec in models.items():
        spec = {"model": spec} if isinstance(spec, str) else dict(spec or {})
        if not spec.get("model"):
            raise ValueError(f"models.{size}: no 'model' (a Hugging Face id, a folder or tiny:<family>)")
        unknown = set(spec) - MODEL_FIELDS - {"model", "adapter", "engine"}
        if unknown:
            raise ValueError(f"models.{size}: unknown key(s) {sorted(unknown)}; allowed: model, adapter, engine, "
                             f"{', '.join(sorted(MODEL_FIELDS))}")
        spec.pop("engine", None)  # the serving engine's settings: engine_settings
        if hardware not in (None, "none"):
            resolved = resolve_settings(spec, preset=hardware, model_size_hint=spec["model"])
            spec |= {k: resolved[k] for k in MODEL_KEYS if k in resolved}
        adapter = resolve_adapter(spec.pop("adapter", None))
        out[str(size)] = ModelConfig(model=spec.pop("model"), adapter_path=str(adapter) if adapter else None, **spec)
    return out


def engine_settings(models: dict) -> dict[str, dict]:
    """``{size: engine settings}`` from the ``engine`` key of each model spec (``backend: vllm``): the routing
    table's sizes each get their own engine, e.g. ``large: {model: Qwen/Qwen2.5-VL-72B-Instruct, engine:
    {tensor_parallel_size: 4}}`` spreads the 72 B model over four GPUs (``auto``: every visible GPU)."""
    return {str(size): dict(spec.get("engine") or {}) for size, spec in (models or {}).items() if isinstance(spec, dict)}


class ModelRegistry:
    """Models by size, loaded on first use and cached; with ``keep_one_in_memory`` the others are
    released before one loads. A failed load is remembered (not retried for every item).

        reg = ModelRegistry(model_configs({"small": "tiny:internvl", "large": "tiny:qwen2_5_vl"}))
        vlm = reg.get("large")

    ``loader`` (default ``VLM.load``, or with ``backend="vllm"`` an engine per size with ``engines[size]``
    settings) takes a ``ModelConfig``: tests pass fakes through it. An engine that fails to start or runs out
    of memory is a failed load like any other: the caller falls back (``model_used`` says so)."""

    def __init__(self, configs: dict[str, ModelConfig], keep_one_in_memory: bool = False,
                 loader: Callable | None = None, backend: str = "hf", engines: dict | None = None):
        self.backend, self.engines = backend, dict(engines or {})
        self.configs = dict(configs)
        self.keep_one_in_memory = keep_one_in_memory
        self.loader = loader
        self.loaded: dict[str, object] = {}
        self.failed: dict[str, ModelUnavailable] = {}
        self.stats = {s: {"loads": 0, "load_s": 0.0, "load_error": None} for s in self.configs}

    @property
    def sizes(self) -> list[str]:
        return list(self.configs)

    def get(self, size: str):
        if size not in self.configs:
            raise KeyError(f"no model registered as {size!r}; registered: {self.sizes}")
        if size in self.failed:
            raise self.failed[size]
        if size in self.loaded:
            return self.loaded[size]
        if self.keep_one_in_memory:
            for other in list(self.loaded):
                self.release(other)
        loader = self.loader
        if loader is None:
            from ..engine.client import load_vlm

            loader = lambda cfg: load_vlm(cfg, self.backend, self.engines.get(size))  # noqa: E731
        t0 = time.perf_counter()
        try:
            vlm = loader(self.configs[size])
        except Exception as e:  # noqa: BLE001 - recorded; the caller falls back or records per item
            free_memory()
            # an engine that did not start (its own memory reservation, a model it cannot serve) falls back too
            err = ModelUnavailable(size, f"{type(e).__name__}: {e}", is_oom(e) or getattr(e, "engine_start", False))
            self.failed[size] = err
            self.stats[size]["load_error"] = str(err)
            raise err from e
        self.stats[size]["loads"] += 1
        self.stats[size]["load_s"] = round(self.stats[size]["load_s"] + time.perf_counter() - t0, 2)
        self.loaded[size] = vlm
        return vlm

    def release(self, size: str) -> None:
        vlm = self.loaded.pop(size, None)
        if vlm is not None:
            if hasattr(vlm, "close"):  # an engine process: stopping it frees its GPUs
                vlm.close()
            free_memory()

    def describe(self) -> dict:
        out = {}
        for s, cfg in self.configs.items():
            d = {"model": cfg.model, "adapter": cfg.adapter_path, **self.stats[s]}
            vlm = self.loaded.get(s)
            if vlm is not None and hasattr(vlm, "describe"):
                info = vlm.describe()
                d |= {"family": info.get("family"), "n_params": info.get("n_params"), "note": info.get("note")}
            out[s] = d
        return out


# ----------------------------------------------------------------------------------------------
# Preparation: load, classify, routes, retrieval and its leakage check


@dataclass
class Prepared:
    items: list[MVItem]  # every item of the file, classified
    todo: list[MVItem]  # the ones this run answers (``limit``)
    problems: list[Problem]
    counts: Counter
    defaults: list[dict]  # items whose subtask came from a default rule
    routes: dict[str, Route]
    retriever: Retriever
    leakage: dict | None  # None without a KB

    def counts_table(self, official: dict | None = None) -> list[dict]:
        """Items per subtask beside the official phase-1 counts (they match on the phase-1 file)."""
        official = PHASE1_COUNTS if official is None else official
        subs = [s for s in SUBTASKS if s in self.counts or s in official]
        rows = [{"subtask": s, "n": self.counts.get(s, 0), "official_phase1": official.get(s),
                 "model": self.routes[s].model if s in self.routes else None, "style": self.routes[s].style
                 if s in self.routes else None} for s in subs]
        return rows + [{"subtask": "total", "n": sum(self.counts.values()),
                        "official_phase1": sum(official.values()), "model": None, "style": None}]


def prepare(multiview_json, image_root=None, models: Sequence[str] = ("small", "large"), routing=None,
            kb_file=None, cfg: MVRunConfig | None = None) -> Prepared:
    """Everything before the first model call. Raises ``LeakageError`` for ``override`` on items the
    KB contains (unless ``allow_leakage``), before any model is loaded."""
    cfg = cfg or MVRunConfig()
    items, problems = load_multiview(multiview_json, image_root)
    counts, defaults = classify_all(items)
    routes = load_routing(routing, models=list(models))
    kb = KnowledgeBase.load(kb_file) if kb_file else None
    retriever = Retriever(kb, cfg.rag_mode, cfg.kb_topk, cfg.kb_floor, cfg.allow_leakage)
    todo = items if cfg.limit is None else items[: cfg.limit]
    report = retriever.check(todo)
    return Prepared(items, todo, problems, counts, defaults, routes, retriever,
                    report.as_dict() if report is not None else None)


# ----------------------------------------------------------------------------------------------
# Answering


@dataclass
class _Work:
    item: MVItem
    routed: str
    tried: list[str] = field(default_factory=list)
    reason: str | None = None  # why it left its routed model


def _prompt_hash(model_id: str, text: str) -> str:
    return hashlib.sha1(f"{model_id}\n{text}".encode()).hexdigest()[:12]


def answer_item(vlm, item: MVItem, route: Route, cfg: MVRunConfig, rag_text: str | None = None,
                cameras: CameraSelector | None = None) -> dict:
    """The model part for one item: ``{answer, raw, scores, source, style, ...}``. Raises on errors
    (the caller decides: out of memory -> fallback, anything else -> recorded). With ``cameras``
    the cameras are scored against the question first and the best ones sent (inside ``time_s``)."""
    import torch

    t_sel = time.perf_counter()
    picked, selected = None, {}
    if cameras is not None:
        picked = cameras.scores(item, select_images(item, None, cfg.only_named_cameras))
        selected = {"selector": cameras.name, "camera_scores": picked.scores, "selection_ms": round(picked.ms, 1),
                    "selection_fallback": picked.error}
    images = select_images(item, cfg.max_images_per_prompt, cfg.only_named_cameras, picked and picked.scores)
    prompt = build_prompt(item, route, images, rag_text)
    segments = [(k, v) for k, v in prompt.segments()]
    torch.manual_seed(cfg.seed + item.index)  # per item: a resumed run samples the same answers
    conv = [(prompt.system, segments)]
    scores = raw = None
    if prompt.style == "mcq" and cfg.mcq_scoring == "likelihood":
        scores = vlm.chat_letter_scores(conv, [prompt.letters])[0]
        answer, source = max(scores, key=scores.get), "likelihood"
    else:
        raw = vlm.chat_generate(conv, prompt.max_new_tokens, do_sample=cfg.do_sample,
                                temperature=cfg.temperature)[0]
        answer, source = raw.strip(), "generate"
        if prompt.style == "mcq" and extract_choice(raw, item.question, "".join(prompt.letters)) is None:
            # explicit, marked fallback (as in step 2): the model's own letter likelihoods
            scores = vlm.chat_letter_scores(conv, [prompt.letters])[0]
            answer, source = max(scores, key=scores.get), "fallback_likelihood"
    return {"answer": answer, "raw": raw, "scores": scores, "source": source, "style": prompt.style,
            "letters": prompt.letters or None, "cameras": [c for c, _ in images],
            "time_s": round(time.perf_counter() - t_sel, 3),
            "prompt_hash": _prompt_hash(getattr(getattr(vlm, "cfg", None), "model", "?"), prompt.render())} | selected


def answer_all(prep: Prepared, registry: ModelRegistry, output_dir, cfg: MVRunConfig | None = None,
               progress: bool = True) -> list[dict]:
    """Answer ``prep.todo`` (resuming ``{output_dir}/results.jsonl``); returns the lines in input
    order and writes ``{output_dir}/results.json``."""
    from tqdm.auto import tqdm

    cfg = cfg or MVRunConfig()
    cameras = CameraSelector(cfg.selector) if cfg.selector is not None else None  # a bad checkpoint stops here
    store = ResultStore(output_dir)
    pending: dict[str, list[_Work]] = {s: [] for s in registry.sizes}
    for it in prep.todo:
        if not store.is_done(it.id):
            size = prep.routes[it.subtask].model
            pending[size].append(_Work(it, size))
    bar = tqdm(total=sum(map(len, pending.values())), desc="answer", disable=not progress)

    def write(w: _Work, used: str | None, error: str | None = None, rag=None, **extra):
        rag_notes = rag.notes if rag is not None else []
        store.add(result_line(w.item, w.item.subtask, w.routed, used, extra.pop("answer", None), rag_notes, error,
                              rule=w.item.rule, fallback_reason=w.reason, **extra))
        bar.update(1)

    while True:
        size = next((s for s in registry.sizes if pending[s]), None)
        if size is None:
            break
        works, pending[size] = pending[size], []
        for w in works:
            route = prep.routes[w.item.subtask]
            rag = None
            try:
                rag = prep.retriever.apply(w.item)
                if rag.override is not None:  # answered from the KB: no model involved
                    write(w, None, rag=rag, answer=rag.override, rag_override=rag.override_id, source="kb_override")
                    continue
                vlm = registry.get(size)
                out = answer_item(vlm, w.item, route, cfg, rag.text, cameras)
                write(w, size, rag=rag, model_id=registry.configs[size].model, **out)
            except Exception as e:  # noqa: BLE001 - one item's failure must not stop the run
                oom = e.oom if isinstance(e, ModelUnavailable) else is_oom(e)
                fb = cfg.fallback.get(size)
                if oom and not isinstance(e, ModelUnavailable):  # a failed load has freed already
                    free_memory()
                if oom and fb in registry.sizes and fb not in w.tried + [size]:
                    w.tried.append(size)
                    w.reason = f"{size}: out of memory ({'load' if isinstance(e, ModelUnavailable) else 'answer'})"
                    pending[fb].append(w)  # answered after this group: no reload per item
                else:
                    write(w, None, f"{type(e).__name__}: {e}", rag=rag)
        if cfg.keep_one_in_memory:
            registry.release(size)
    bar.close()
    lines = store.finish(prep.todo)
    if cameras is not None:
        write_jsonl([selection_line(ln) for ln in lines], Path(output_dir) / "selected_frames.jsonl")
    return lines


# ----------------------------------------------------------------------------------------------
# Metrics


def summarize(prep: Prepared, lines: Sequence[dict], registry: ModelRegistry | None = None,
              cfg: MVRunConfig | None = None, output_dir=None, extra: dict | None = None) -> dict:
    """``metrics.json``: subtask counts vs official, defaults, loader problems, routing statistics,
    leakage report, scores (weighted by scored items, and by the official phase-1 counts)."""
    score = score_results(lines)
    m = {"n_items": len(prep.items), "n_run": len(prep.todo), "n_lines": len(lines),
         "n_answered": sum(l.get("answer") is not None for l in lines),
         "n_errors": sum(l.get("error") is not None for l in lines),
         "subtask_counts": prep.counts_table(), "defaults": prep.defaults,
         "n_problems": len(prep.problems), "problems": [str(p) for p in prep.problems[:100]],
         "routing": routing_stats(lines), "leakage": prep.leakage,
         "score": score, "overall_official_weights": score_results(lines, PHASE1_COUNTS)["overall"],
         "routes": {s: asdict(r) for s, r in prep.routes.items()},
         "models": registry.describe() if registry is not None else None,
         "config": asdict(cfg) if cfg is not None else None, "machine": describe()} | (extra or {})
    if output_dir is not None:
        write_json(m, Path(output_dir) / "metrics.json")
    return m


def run_multiview(multiview_json, image_root, output_dir, models: dict, routing=None, kb_file=None,
                  cfg: MVRunConfig | None = None, loader: Callable | None = None,
                  progress: bool = False) -> tuple[list[dict], dict]:
    """``prepare`` -> ``answer_all`` -> ``summarize``; writes ``results.json`` and ``metrics.json``."""
    cfg = cfg or MVRunConfig()
    registry = ModelRegistry(model_configs(models), cfg.keep_one_in_memory, loader)
    prep = prepare(multiview_json, image_root, registry.sizes, routing, kb_file, cfg)
    lines = answer_all(prep, registry, output_dir, cfg, progress)
    paths = {"multiview_json": str(multiview_json), "image_root": str(image_root), "routing": str(routing),
             "kb_file": str(kb_file) if kb_file else None}
    return lines, summarize(prep, lines, registry, cfg, output_dir, {"inputs": paths})


# ----------------------------------------------------------------------------------------------
# LoRA adapter folders


def resolve_adapter(folder) -> Path | None:
    """The adapter to load from a LoRA output folder: the folder itself when it holds
    ``adapter_config.json`` (a finished run), else its highest ``checkpoint-N`` that holds one
    (a run cut short). ``None`` passes through (no adapter)."""
    if folder in (None, ""):
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"adapter folder {folder} does not exist")
    if (folder / "adapter_config.json").is_file():
        return folder
    ckpts = []
    for d in folder.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and d.is_dir() and (d / "adapter_config.json").is_file():
            ckpts.append((int(m.group(1)), d))
    if not ckpts:
        seen = sorted(d.name for d in folder.iterdir())[:10]
        raise FileNotFoundError(f"{folder}: no adapter_config.json at its root nor in any checkpoint-N subfolder "
                                f"(contents: {seen})")
    return max(ckpts)[1]


# ----------------------------------------------------------------------------------------------
# Output lines and resumable writing


def result_line(item: MVItem, subtask: str, model_routed: str | None, model_used: str | None, answer: str | None,
                rag_notes: list[dict] | None = None, error: str | None = None, **extra) -> dict:
    """One output item: every input field, ``answer`` replaced by the model's, plus routing facts.

    The input's answer survives as ``gold_answer`` (empty when hidden) so scoring needs no second
    file; ``id`` is added when the input has none (resume keys on it). ``extra``: ``rule``,
    ``style``, ``time_s``, ``rag_override`` ..."""
    line = dict(item.raw)
    line.setdefault("id", item.id)
    line.update({"gold_answer": item.answer, "subtask": subtask, "model_routed": model_routed,
                 "model_used": model_used, "answer": answer, "rag_notes": list(rag_notes or []), "error": error})
    line.update(extra)
    return line


class ResultStore:
    """``{output_dir}/results.jsonl``: lines appended and flushed as they come; a rerun skips ids
    already answered without error (a killed run loses at most the line being written).

        store = ResultStore(out)
        for it in items:
            if store.is_done(it.id): continue
            store.add(result_line(it, ...))
        lines = store.finish(items)          # also writes {output_dir}/results.json in input order
    """

    def __init__(self, output_dir, name: str = "results"):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / f"{name}.jsonl"
        self.json = self.dir / f"{name}.json"
        self.repaired_bytes = repair_jsonl(self.jsonl)
        self.lines: dict[str, dict] = {}  # latest line per id
        if self.jsonl.exists():
            for r in read_jsonl(self.jsonl):
                self.lines[str(r["id"])] = r

    def is_done(self, item_id: str) -> bool:
        r = self.lines.get(str(item_id))
        return r is not None and r.get("error") is None and r.get("answer") is not None

    @property
    def n_done(self) -> int:
        return sum(self.is_done(i) for i in self.lines)

    def add(self, line: dict) -> None:
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            f.flush()
        self.lines[str(line["id"])] = line

    def finish(self, items: Sequence[MVItem] | None = None) -> list[dict]:
        """Latest line per item in input order (every stored line when ``items`` is None), written to
        ``results.json``."""
        ids = [it.id for it in items] if items is not None else list(self.lines)
        out = [self.lines[i] for i in ids if i in self.lines]
        write_json(out, self.json)
        return out

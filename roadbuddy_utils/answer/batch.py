"""Resumable batch answering: frames once per video, batched scoring, every failure recorded.

    vlm = VLM.load(ModelConfig("tiny:internvl"))                  # or "OpenGVLab/InternVL3-8B-hf"
    lines = run_inference(items, vlm, InferConfig(scoring="likelihood"), "outputs/demo/03_zero_shot")

``{output_dir}/predictions.jsonl`` gets one line per question as soon as its batch is answered
(flushed). A rerun skips ids that already have an answer; ids recorded with an error and no
answer are tried again. A video that cannot be read does not lose its questions: they are answered
from the text alone (``text_only: true``, the read error in ``error``). An out-of-memory error on a
batch retries that batch item by item; an item that still fails is recorded with its error and the
run goes on.

Time per question (``time_ms``): its share of its video's frame time (decode or cache read,
divided among the questions asked about that video in this run) plus its share of its batch's
model time. With ``time_budget_s`` (the task's 30 s), a question whose predicted time exceeds the
budget is answered with fewer frames (``reduced_frames``: the number used); one that still ends
over budget is marked ``over_budget``.

Ablations and letter-bias correction are options of the same run (each in its own output_dir),
marked in every line (``ablation``, ``debias``) and in ``run_config.json``:

* ``no_video``: question and choices only; no frame is decoded (``text_only: true``).
* ``shuffle_choices=<seed>``: each question's choices are shown in the order
  ``choices.permute_choices(choices, f"{seed}:{id}")``; the letter and the scores are mapped back
  to the original letters (``perm``: shown letter -> original letter), so ``correct`` stays
  comparable with the plain run and only the letter-position effects change.
* ``debias="prior"``: before answering, the model's prior over answer positions is estimated
  without labels from every cyclic shift of the choices of ``debias_sample`` questions per number
  of choices (``letter_prior.json``, reused on resume), then divided out of each question's
  scores. ``debias="cyclic"``: every question is scored under each cyclic shift of its choices and
  the log-scores averaged (k forward passes per question: about k times the model time). Both need
  ``scoring="likelihood"``; the model's own scores stay in ``scores_raw`` / ``pred_raw``. The
  prior's one-off cost is in ``letter_prior.json`` (``seconds``), not in any ``time_ms``.

An output_dir holding lines of another variant is refused rather than resumed into a mixture.

    run_inference(items, vlm, InferConfig(no_video=True), "outputs/demo/03_no_video")
    run_inference(items, vlm, InferConfig(debias="prior", debias_sample=16), "outputs/demo/03_debiased")

Frames are the clip's uniform segment centres, or, with ``selector=SelectorConfig(...)``
(``frame_mode: select``), chosen per question by selection/selector.py: the clip's candidates are decoded
once and scored for each of its questions; that time is inside each question's ``time_ms`` (the
clip's share plus the question's own scoring). With a time budget, the candidates are thinned
first (``reduced_candidates``) and only then the model's frames. Each line records ``selector``,
``frame_times``, ``frame_scores``, ``selection_ms`` and, when the clip defeated selection,
``selection_fallback`` (the reason; the question is answered from uniform frames);
``selected_frames.jsonl`` gets one line per question as well.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..common.files import read_jsonl, repair_jsonl, write_json
from ..data.questions import Item
from ..machine.hardware import describe, free_memory, is_oom
from ..models.example import Example
from ..selection.selector import FrameSelector, SelectorConfig
from ..video.frames import FrameCache, FrameSample, SamplingConfig, VideoReadError, sample_frames


@dataclass
class InferConfig:
    scoring: str = "likelihood"  # "likelihood": one forward pass over the offered letters; "generate": greedy text
    lang: str = "vi"  # prompt language: "vi" or "en"
    batch_size: int = 4  # questions per forward pass
    max_new_tokens: int = 16  # generate mode
    time_budget_s: float | None = 30.0  # per question, frames included; None disables the check
    shard_index: int = 0  # this process's shard ...
    num_shards: int = 1  # ... of this many (split by video)
    limit: int | None = None  # answer at most this many questions (after sharding)
    cache_dir: str | None = None  # frame cache folder (None: no cache)
    no_video: bool = False  # ablation: question and choices only (text-only prompt, nothing decoded)
    shuffle_choices: int | None = None  # ablation: a seed; choices permuted per question, answers mapped back
    debias: str | None = None  # letter-bias correction of likelihood scores: "prior" | "cyclic" (None: off)
    debias_sample: int = 16  # debias="prior": questions per number of choices used to estimate the prior
    selector: SelectorConfig | None = None  # frame_mode "select": frames chosen per question (None: uniform)
    knowledge: str = "none"  # "glossary": QCVN 41:2024 notes for the signs a question names, before the question
    knowledge_budget: int = 240  # knowledge "glossary": at most this many tokens of notes per question

    def __post_init__(self):
        if isinstance(self.selector, dict):
            self.selector = SelectorConfig(**self.selector)
        if self.scoring not in ("likelihood", "generate"):
            raise ValueError(f"scoring must be 'likelihood' or 'generate', got {self.scoring!r}")
        if self.debias not in (None, "prior", "cyclic"):
            raise ValueError(f"debias must be None, 'prior' or 'cyclic', got {self.debias!r}")
        if self.debias and self.scoring != "likelihood":
            raise ValueError(f"debias={self.debias!r} corrects likelihood scores: it needs scoring='likelihood'")
        if self.debias_sample < 1:
            raise ValueError(f"debias_sample must be >= 1, got {self.debias_sample}")
        if self.shuffle_choices is not None and (isinstance(self.shuffle_choices, bool)
                                                 or not isinstance(self.shuffle_choices, int)):
            raise ValueError(f"shuffle_choices must be an integer seed or None, got {self.shuffle_choices!r}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index {self.shard_index} outside 0..{self.num_shards - 1}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.knowledge not in ("none", "glossary"):
            raise ValueError(f"knowledge must be 'none' or 'glossary', got {self.knowledge!r}")

    @property
    def ablation(self) -> str | None:
        """``no_video``, ``shuffle_choices``, both joined by ``+``, or None for the plain run."""
        flags = (("no_video", self.no_video), ("shuffle_choices", self.shuffle_choices is not None))
        on = [name for name, flag in flags if flag]
        return "+".join(on) or None

    @property
    def frame_mode(self) -> str:
        return "select" if self.selector is not None and not self.no_video else "uniform"

    def variant(self) -> dict:
        """What makes this run's lines incomparable with another run's (checked on resume)."""
        return {"ablation": self.ablation, "debias": self.debias, "shuffle_seed": self.shuffle_choices,
                "selector": self.selector.scorer if self.frame_mode == "select" else None,
                "knowledge": None if self.knowledge == "none" else self.knowledge}


def shard_items(items: Sequence[Item], shard_index: int, num_shards: int) -> list[Item]:
    """Split by video (sorted), so a clip is decoded by one shard only."""
    videos = sorted({i.video_rel for i in items})
    mine = {v for k, v in enumerate(videos) if k % num_shards == shard_index}
    return [i for i in items if i.video_rel in mine]


def load_done(path) -> dict[str, dict]:
    """Answered ids of an earlier run (call ``repair_jsonl`` first if it may have been killed)."""
    path = Path(path)
    if not path.exists():
        return {}
    done = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("pred") is not None:
                done[r["id"]] = r
    return done


def _subsample(ex: Example, n: int) -> Example:
    keep = np.linspace(0, len(ex.frames) - 1, n).round().astype(int)
    keep = sorted(set(keep.tolist()))
    return Example(ex.item, ex.frames[keep], [ex.timestamps[k] for k in keep], [ex.frame_indices[k] for k in keep],
                   ex.fps, ex.total_frames)


def prompt_hash(vlm, ex: Example, cfg: InferConfig) -> str:
    return hashlib.sha1(vlm.render(ex, cfg.lang).encode()).hexdigest()[:12]


def _answer_batch(vlm, examples: list[Example], cfg: InferConfig) -> list[dict]:
    """Answers for a batch; on out-of-memory, item by item; an item's failure is its own record."""
    try:
        return vlm.answer(examples, scoring=cfg.scoring, lang=cfg.lang, max_new_tokens=cfg.max_new_tokens)
    except Exception as e:  # noqa: BLE001 - one bad batch must not stop the run
        if is_oom(e):
            free_memory()
        if len(examples) > 1:
            return [r for ex in examples for r in _answer_batch(vlm, [ex], cfg)]
        return [{"pred": None, "scores": None, "raw": None, "source": None,
                 "error": f"{'out of memory' if is_oom(e) else type(e).__name__}: {e}"}]


# --------------------------------------------------------------------------- ablations and letter bias

def present(item: Item, cfg: InferConfig) -> tuple[Item, dict[str, str] | None]:
    """The question as the model sees it: with ``shuffle_choices``, a copy whose choices are permuted
    and relabelled A.., and the mapping shown letter -> original letter (else the item itself, None)."""
    if cfg.shuffle_choices is None:
        return item, None
    from ..data.choices import permute_choices

    shown, mapping = permute_choices(item.choices, f"{cfg.shuffle_choices}:{item.id}")
    return replace(item, choices=shown, answer=None), mapping


def _by_position(scores: dict, choices) -> np.ndarray:
    return np.array([scores[letter] for letter, _ in choices], dtype=float)


def _as_scores(v, choices) -> dict[str, float]:
    return {letter: round(float(x), 6) for (letter, _), x in zip(choices, v)}


def _score_shifts(vlm, examples: list[Example], cfg: InferConfig) -> list[list[dict] | str]:
    """Likelihood scores of each example under every cyclic shift of its choices.

    Per example: the list of score dicts, shift 0 first (``choices.cyclic_shift``'s convention: the
    letters are the shown ones, A.. by position), or the error message if any shift failed. Shifts
    are batched ``batch_size`` at a time, so a batch never holds more than the plain run's."""
    from ..data.choices import cyclic_shift

    flat = [(k, replace(ex, item=replace(ex.item, choices=cyclic_shift(ex.item.choices, s)[0])))
            for k, ex in enumerate(examples) for s in range(ex.item.n_choices)]
    results: list[dict] = []
    for j in range(0, len(flat), cfg.batch_size):
        results += _answer_batch(vlm, [e for _, e in flat[j:j + cfg.batch_size]], cfg)
    out: list[list[dict] | str] = [[] for _ in examples]
    for (k, _), r in zip(flat, results):
        if isinstance(out[k], str):
            continue
        if r["error"] or not r["scores"]:
            out[k] = r["error"] or "no scores"
        else:
            out[k].append(r["scores"])
    return out


def _debiased(vlm, examples: list[Example], cfg: InferConfig, prior) -> list[dict]:
    """Answers with the letter-position prior removed; ``scores_raw`` / ``pred_raw`` keep the model's own."""
    from ..data.choices import cyclic_average, debias_scores

    if cfg.debias == "prior":
        results = _answer_batch(vlm, examples, cfg)
        for ex, r in zip(examples, results):
            if r["scores"]:
                raw = r["scores"]
                v = debias_scores(_by_position(raw, ex.item.choices), prior or {})
                r.update(scores=_as_scores(v, ex.item.choices), scores_raw=raw, pred_raw=r["pred"])
                r["pred"] = max(r["scores"], key=r["scores"].get)
        return results
    results = []
    for ex, shifts in zip(examples, _score_shifts(vlm, examples, cfg)):
        if isinstance(shifts, str):
            results.append({"pred": None, "scores": None, "raw": None, "source": None, "error": shifts})
            continue
        raw = _as_scores([shifts[0][l] for l in sorted(shifts[0])], ex.item.choices)  # shift 0 = the plain order
        avg = cyclic_average([[s[l] for l in sorted(s)] for s in shifts])
        scores = _as_scores(avg, ex.item.choices)
        results.append({"pred": max(scores, key=scores.get), "scores": scores, "raw": None, "source": "likelihood",
                        "error": None, "scores_raw": raw, "pred_raw": max(raw, key=raw.get)})
    return results


def _answer(vlm, examples: list[Example], cfg: InferConfig, prior) -> list[dict]:
    return _debiased(vlm, examples, cfg, prior) if cfg.debias else _answer_batch(vlm, examples, cfg)


def _map_back(r: dict, mapping: dict[str, str] | None) -> dict:
    """A result on shown letters expressed on the item's own letters (shuffle_choices)."""
    if mapping is None:
        return r
    from ..data.choices import map_back

    return r | {k: map_back(r[k], mapping) for k in ("pred", "scores", "pred_raw", "scores_raw") if k in r}


def _load_frames(video: str, cfg: InferConfig, sampling: SamplingConfig,
                 cache) -> tuple[FrameSample | None, str | None]:
    """The clip's frames (None with the read error, or None for the no_video ablation)."""
    if cfg.no_video:
        return None, None
    try:
        return sample_frames(video, sampling, cache=cache), None
    except (VideoReadError, ValueError) as e:
        return None, str(e)


def _examples(its: Sequence[Item], samples: Sequence[FrameSample | None], cfg: InferConfig) -> tuple[list[Example], list]:
    """One example per question with its own frames (one clip's questions share them unless selected)."""
    presented = [present(it, cfg) for it in its]
    examples = [Example.of(p, s) for (p, _), s in zip(presented, samples)]
    return examples, [m for _, m in presented]


def _select_clip(its: Sequence[Item], selector: FrameSelector, vlm, cfg: InferConfig, ms_per_frame: list[float],
                 ms_per_candidate: list[float]) -> tuple[list, list, list[float], int | None]:
    """Per question of one clip: (frames, Selection, frame time in ms); and the candidate cap used.

    With a time budget and measured costs, the candidate cap is halved (down to the model's frame
    count) while the clip's candidate share plus the model's predicted time exceeds the budget."""
    n_frames, cap = vlm.cfg.n_frames, None
    if cfg.time_budget_s and ms_per_candidate:
        per_cand = float(np.median(ms_per_candidate))
        model_ms = float(np.median(ms_per_frame)) * n_frames if ms_per_frame else 0.0
        cap = selector.cfg.max_candidates
        while cap > n_frames and per_cand * cap / len(its) + model_ms > cfg.time_budget_s * 1000:
            cap = max(n_frames, cap // 2)
        cap = None if cap == selector.cfg.max_candidates else cap
    t0 = time.perf_counter()
    picked = [selector.select_or_uniform(it, n_frames, vlm.cfg.max_side, cap) for it in its]
    wall = (time.perf_counter() - t0) * 1000
    own = [sel.scoring_ms for _, sel in picked]
    shared = max(0.0, wall - sum(own)) / len(its)  # candidates (decode + features), failed attempts included
    done = [sel for _, sel in picked if sel.n_candidates]
    if done and done[0].candidates_ms:
        ms_per_candidate.append(done[0].candidates_ms / done[0].n_candidates)
    selector.forget(its[0].video_path)
    return [s for s, _ in picked], [sel for _, sel in picked], [shared + o for o in own], cap


def estimate_prior(items: Sequence[Item], vlm, cfg: InferConfig, sampling: SamplingConfig, cache=None,
                   progress: bool = True) -> dict:
    """The model's prior over answer positions, from the questions themselves and no labels.

    Takes ``debias_sample`` questions per number of choices (a fixed seed), scores each under every
    cyclic shift of its choices (frames as in the run: none for ``no_video``) and averages the
    log-scores by position (``evaluate.estimate_letter_prior``): every choice sits in every position
    once, so what the content contributes cancels and the positional preference remains.
    Returns ``{"prior": {k: [p_A, ...]}, "n_questions": {k: n}, "ids": [...], "seconds": s}``."""
    from tqdm.auto import tqdm

    from ..data.choices import estimate_letter_prior

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    by_k: dict[int, list[Item]] = {}
    for it in items:
        if it.n_choices >= 2:
            by_k.setdefault(it.n_choices, []).append(it)
    chosen = []
    for k, its in sorted(by_k.items()):
        chosen += [its[j] for j in sorted(rng.choice(len(its), size=min(cfg.debias_sample, len(its)), replace=False))]
    by_video: dict[str, list[Item]] = {}
    for it in chosen:
        by_video.setdefault(str(it.video_path), []).append(it)
    rows = []
    for video, its in tqdm(by_video.items(), desc="letter prior", disable=not progress):
        sample, _ = _load_frames(video, cfg, sampling, cache)
        examples, _ = _examples(its, [sample] * len(its), cfg)
        rows += [[[sc[l] for l in sorted(sc)] for sc in shifts]  # shown letters A.. = positions
                 for shifts in _score_shifts(vlm, examples, cfg) if not isinstance(shifts, str)]
    prior = estimate_letter_prior(rows)
    counts: dict[int, int] = {}
    for r in rows:
        counts[len(r[0])] = counts.get(len(r[0]), 0) + 1
    return {"prior": {int(k): [round(float(x), 6) for x in v] for k, v in prior.items()},
            "n_questions": counts, "ids": [it.id for it in chosen], "seconds": round(time.perf_counter() - t0, 2)}


def _prior_for_run(mine: Sequence[Item], vlm, cfg: InferConfig, sampling, cache, out: Path, progress: bool) -> dict:
    """``letter_prior.json`` of this output_dir if it was made for the same run, else estimate it anew."""
    key = hashlib.sha1(json.dumps([cfg.variant(), cfg.debias_sample, cfg.lang, [i.id for i in mine],
                                   vlm.describe()], sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = out / "letter_prior.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("key") == key:
                return saved
        except (OSError, ValueError):
            pass
    est = estimate_prior(mine, vlm, cfg, sampling, cache, progress) | {"key": key}
    write_json(est, path)
    return est


def check_variant(lines: Sequence[dict], cfg: InferConfig, path) -> None:
    """Refuse to append to predictions of another kind of run (a plain run resumed as an ablation)."""
    want = cfg.variant()
    for r in lines:
        got = {k: r.get(k) for k in want}
        if got != want:
            raise ValueError(f"{path} holds lines of another run variant ({got}) than this one ({want}); "
                             "give each ablation / debiasing run its own output_dir")


def weights_fingerprint(vlm) -> dict:
    """Which weights answered: the model id and a hash of the adapter's files (a retrained adapter keeps its path)."""
    cfg = getattr(vlm, "cfg", None)
    adapter = getattr(cfg, "adapter_path", None)
    digest = None
    if adapter and Path(adapter).is_dir():
        h = hashlib.sha1()
        for f in sorted(p for p in Path(adapter).rglob("*") if p.is_file()):
            h.update(f.relative_to(adapter).as_posix().encode())
            h.update(f.read_bytes())
        digest = h.hexdigest()[:12]
    return {"model": getattr(cfg, "model", None), "adapter": str(adapter) if adapter else None, "adapter_sha1": digest}


def set_aside_stale(pred_path: Path, fingerprint: dict) -> Path | None:
    """Predictions made by other weights (04 retrained the adapter at the same path) are not resumed into: the file
    is moved aside, kept, and the run starts afresh. Returns the new name, or None when nothing was stale (a
    run_config.json without a fingerprint, from before it was recorded, resumes as before)."""
    cfg_path = pred_path.parent / "run_config.json"
    if not (pred_path.exists() and cfg_path.exists()):
        return None
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8")).get("weights")
    except ValueError:
        return None
    if not old or old == fingerprint:
        return None
    aside = pred_path.with_name(f"predictions.stale-{old.get('adapter_sha1') or 'model'}-{int(time.time())}.jsonl")
    pred_path.rename(aside)
    warnings.warn(f"{pred_path}: made by other weights ({old}) than this run's ({fingerprint}); kept as {aside.name}, "
                  "answering afresh", stacklevel=3)
    return aside


def token_counter(vlm):
    """Tokens of a text by the model's own tokenizer (None when the wrapper has none: the estimate is used)."""
    tok = getattr(getattr(vlm, "processor", None), "tokenizer", None)
    return None if tok is None else (lambda text: len(tok.encode(text, add_special_tokens=False)))


def _with_glossary(items: Sequence[Item], vlm, cfg: InferConfig) -> tuple[list[Item], dict]:
    """The items with their glossary notes (budget counted by the run's tokenizer) and what run_config.json
    records: glossary version, budget, how tokens were counted, questions with notes, note tokens."""
    from ..knowledge.glossary import load
    from ..knowledge.ground import approx_tokens, ground, with_notes

    glossary, count = load(), token_counter(vlm)
    grounded, tokens = [], {}
    for it in items:
        g = ground(it, glossary, cfg.knowledge_budget, count)
        grounded.append(with_notes(it, g))
        tokens[it.id] = g.tokens
    ts = sorted(tokens.values()) or [0]
    return grounded, {"mode": cfg.knowledge, "glossary_version": glossary.version, "budget_tokens": cfg.knowledge_budget,
                      "counted_with": "model tokenizer" if count else f"estimate ({approx_tokens.__name__})",
                      "questions_with_notes": sum(bool(getattr(i, "notes", ())) for i in grounded),
                      "tokens_mean": round(sum(ts) / len(ts), 1), "tokens_max": ts[-1], "tokens_by_id": tokens}


def run_inference(items: Sequence[Item], vlm, cfg: InferConfig, output_dir, progress: bool = True,
                  tags: dict | None = None) -> list[dict]:
    """Answer ``items`` (this shard, minus what is done); returns every line for this shard."""
    from tqdm.auto import tqdm

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / "predictions.jsonl"
    mine = shard_items(items, cfg.shard_index, cfg.num_shards)
    if cfg.limit is not None:
        mine = mine[: cfg.limit]
    knowledge = None
    if cfg.knowledge == "glossary":  # notes for the signs each question names (knowledge/ground.py), the run's tokens
        mine, knowledge = _with_glossary(mine, vlm, cfg)
    repair_jsonl(pred_path)
    weights = weights_fingerprint(vlm)
    set_aside_stale(pred_path, weights)
    if pred_path.exists():
        check_variant(read_jsonl(pred_path), cfg, pred_path)
    cache = FrameCache(cfg.cache_dir) if cfg.cache_dir else None
    # frames per clip and pixel budget belong to the model wrapper (one validated place)
    sampling = SamplingConfig("uniform", n_frames=vlm.cfg.n_frames, max_side=vlm.cfg.max_side)
    prior = None
    run_config = {"infer": asdict(cfg), "ablation": cfg.ablation, "debias": cfg.debias, "model": vlm.describe(),
                  "weights": weights,
                  "machine": describe(), **(tags or {})}
    if cfg.debias == "prior":
        est = _prior_for_run(mine, vlm, cfg, sampling, cache, out, progress)
        prior = {int(k): np.array(v) for k, v in est["prior"].items()}
        run_config["letter_prior"] = {k: est[k] for k in ("prior", "n_questions", "seconds")}
    selector = None
    if cfg.frame_mode == "select":
        selector = FrameSelector.build(cfg.selector, vlm=vlm if hasattr(vlm, "family") else None, cache=cache)
        run_config["selector"] = {"name": selector.name} | asdict(selector.cfg)
    if knowledge is not None:
        run_config["knowledge"] = {k: v for k, v in knowledge.items() if k != "tokens_by_id"}
    write_json(run_config, out / "run_config.json")
    done = load_done(pred_path)
    todo = [i for i in mine if i.id not in done]
    by_video: dict[str, list[Item]] = {}
    for it in todo:
        by_video.setdefault(str(it.video_path), []).append(it)
    variant = {"ablation": cfg.ablation, "debias": cfg.debias, "selector": cfg.variant()["selector"],
               "knowledge": cfg.variant()["knowledge"]}
    ms_per_frame: list[float] = []  # measured model time per question per frame (for the budget)
    ms_per_candidate: list[float] = []  # measured candidate time per candidate frame (select mode's budget)
    bar = tqdm(total=len(todo), desc=f"answer ({cfg.scoring})", disable=not progress)
    with open(pred_path, "a", encoding="utf-8") as f, \
            open(out / "selected_frames.jsonl" if selector else os.devnull, "a", encoding="utf-8") as fsel:
        for video, its in by_video.items():
            sels, cap = [None] * len(its), None
            if selector is not None:
                samples, sels, q_ms, cap = _select_clip(its, selector, vlm, cfg, ms_per_frame, ms_per_candidate)
                video_errors = [None if s is not None else sel.error for s, sel in zip(samples, sels)]
            else:
                t0 = time.perf_counter()
                sample, video_error = _load_frames(video, cfg, sampling, cache)
                samples, video_errors = [sample] * len(its), [video_error] * len(its)
                q_ms = [(time.perf_counter() - t0) * 1000 / len(its)] * len(its)
            for k in range(0, len(its), cfg.batch_size):
                chunk = its[k:k + cfg.batch_size]
                examples, mappings = _examples(chunk, samples[k:k + cfg.batch_size], cfg)
                frame_ms = max(q_ms[k:k + cfg.batch_size])
                with_frames = [ex for ex in examples if ex.frames is not None]
                reduced = None
                if with_frames and cfg.time_budget_s and ms_per_frame:
                    per_frame = float(np.median(ms_per_frame))
                    n = full = max(len(ex.frames) for ex in with_frames)
                    while n > 1 and frame_ms + per_frame * n > cfg.time_budget_s * 1000:
                        n //= 2
                    if n < full:
                        examples = [_subsample(ex, n) if ex.frames is not None and len(ex.frames) > n else ex
                                    for ex in examples]
                        reduced = n
                t1 = time.perf_counter()
                results = _answer(vlm, examples, cfg, prior)
                model_ms = (time.perf_counter() - t1) * 1000 / len(chunk)
                if with_frames and not any(r["error"] for r in results):
                    ms_per_frame.append(model_ms * len(chunk) / sum(len(ex.frames) for ex in examples
                                                                    if ex.frames is not None))
                for j, (it, ex, r, mapping) in enumerate(zip(chunk, examples, results, mappings)):
                    r = _map_back(r, mapping)
                    total = q_ms[k + j] + model_ms
                    line = {"id": it.id, "video": it.video_rel, "pred": r["pred"], "scores": r["scores"],
                            "answer": it.answer, "correct": (r["pred"] == it.answer) if it.answer and r["pred"] else None,
                            "n_choices": it.n_choices, "time_ms": round(total, 1), "source": r["source"],
                            "error": r["error"] or video_errors[k + j], "raw": r["raw"], "text_only": ex.frames is None,
                            "n_frames": 0 if ex.frames is None else len(ex.frames),
                            "frame_times": [round(t, 3) for t in ex.timestamps], "reduced_frames": reduced,
                            "over_budget": bool(cfg.time_budget_s and total > cfg.time_budget_s * 1000),
                            "prompt_hash": prompt_hash(vlm, ex, cfg), **variant}
                    sel = sels[k + j]
                    if sel is not None:
                        line |= {"frame_scores": sel.scores, "selection_ms": round(q_ms[k + j], 1),
                                 "n_candidates": sel.n_candidates, "reduced_candidates": cap,
                                 "selection_fallback": sel.error if sel.fallback else None}
                        fsel.write(json.dumps({"id": it.id, "video_path": str(it.video_path)} | sel.record(),
                                              ensure_ascii=False) + "\n")
                    if mapping is not None:
                        line |= {"shuffle_seed": cfg.shuffle_choices, "perm": mapping}
                    if cfg.debias:
                        line |= {"scores_raw": r.get("scores_raw"), "pred_raw": r.get("pred_raw")}
                    if knowledge is not None:
                        line |= {"knowledge_codes": list(getattr(it, "knowledge_codes", ())),
                                 "knowledge_tokens": knowledge["tokens_by_id"].get(it.id, 0)}
                    f.write(json.dumps(line | (tags or {}), ensure_ascii=False) + "\n")
                f.flush()
                fsel.flush()
                bar.update(len(chunk))
    bar.close()
    latest = {r["id"]: r for r in read_jsonl(pred_path)} if pred_path.exists() else {}
    return [latest[i.id] for i in mine if i.id in latest]


def run_zero_shot(items: Sequence[Item], model_cfg, infer_cfg: InferConfig, output_dir, progress: bool = True,
                  vlm=None, backend: str = "hf", engine=None) -> tuple[list[dict], dict]:
    """Load the model (unless given) with ``backend`` (``hf``, or ``vllm`` with ``engine`` settings: the engine
    process stops at the end), answer, write ``predictions.jsonl`` and ``metrics.json``."""
    from ..engine.client import load_vlm
    from .metrics import run_metrics

    own = vlm is None
    vlm = vlm or load_vlm(model_cfg, backend, engine)
    try:
        lines = run_inference(items, vlm, infer_cfg, output_dir, progress=progress)
    finally:
        if own and hasattr(vlm, "close"):
            vlm.close()
    # float16 safety: batches whose letter logits were not finite, rows the float32 retry fixed / did not
    metrics = run_metrics(lines) | {"model": vlm.describe(), "nonfinite": getattr(vlm, "nonfinite", None)}
    if metrics["n"]:
        write_json(metrics, Path(output_dir) / "metrics.json")
    return lines, metrics

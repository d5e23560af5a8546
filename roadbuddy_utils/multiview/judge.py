"""A local LLM judge for open multi-camera answers, graded with the DriveBench toolkit's rubrics.

    items = [JudgeItem(k, rubric_for(sub, "open"), judge_prompt(rubric, question, gold, pred)) ...]
    records = run_judge(items, "Qwen/Qwen2.5-7B-Instruct", "outputs/06/judge-qwen2.5-7b.jsonl")
    run_judge(items, "tiny:qwen2_5_vl", tmp / "judge.jsonl", max_new_tokens=16)     # tests: a tiny random model

The official LLM score is gpt-3.5-turbo at temperature 0 grading each open answer with one rubric per
question kind (``judge_prompts.py``, quoted from the toolkit) and reading ``Total Score: N`` (0-100)
from the reply. Here any Hugging Face chat model does it, greedily: a vision-language checkpoint of a
supported family (and ``tiny:`` models) through the project's wrapper (``VLM.chat_generate``, text
only), any other causal LM through ``TextChat``. Its numbers are **a local judge's**, never the
official LLM score: reports name it "local judge (model)" and say how often it gave no score.

As the toolkit: the system line and the filled rubric go in one user message; ``{DESC}`` (the referred
object's visual description, in the rubrics for perception MCQs and planning) comes from DriveBench's
``data/visual_description.json`` when given (``visual_descriptions``), with the toolkit's sentence for the
"safe actions" question; elsewhere it reads "No visual description available." (the toolkit would fail
to format the rubric there). Unlike the toolkit: a reply without a score is recorded with its text,
``score`` null (the toolkit raises); nothing is retried in a loop (the toolkit's request loop retries
forever, and its ``call_chatgpt(prompt, max_tokens=512)`` call always raises a ``TypeError``, so it
would never stop); records are keyed by the item's **position** (the toolkit's log is keyed by
scene + frame + question, which phase 2 repeats for 9 triples).

Resumable: ``{cache}`` (JSONL) holds one record per position, with a key hashing the model, the prompt
and the answer length. A record with the same key is reused, a reply without a score included
(greedy decoding would give the same reply); only items whose generation raised (``error``) are tried
again, once per run.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..common.files import read_jsonl, repair_jsonl
from . import judge_prompts as P

RUBRICS = {"perception_mcq": P.PERCEPTION_MCQ_PROMPT, "perception_vqa": P.PERCEPTION_VQA_PROMPT,
           "prediction_mcq": P.PREDICTION_MCQ_PROMPT, "prediction_vqa": P.PREDICTION_VQA_PROMPT,
           "planning_vqa": P.PLANNING_VQA_PROMPT, "behavior_mcq": P.BEHAVIOR_MCQ_PROMPT}
NO_DESC = "No visual description available."
SAFE_ACTIONS_Q = "In this scenario, what are safe actions to take for the ego vehicle?"
SAFE_ACTIONS_DESC = "No visual description needed for this question."  # evaluate/eval.py's workaround
TOTAL_SCORE = re.compile(r"Total Score:\s*(\d{1,3})\b")  # evaluate/request.py extract_answer
LENIENT_SCORE = re.compile(r"total\s*score\W{0,8}?(\d{1,3})\b", re.I)  # "**Total Score:** 85", "Total score - 85"


def rubric_for(subtask: str | None, kind: str, category: str | None = None) -> str:
    """The rubric the toolkit grades such a question with (its ``forward`` routing by question type):
    perception VQA and planning VQA by theirs, prediction open items ("notice first...") by the
    prediction VQA rubric, yes/no by the prediction MCQ one, DriveBench's behaviour MCQs by theirs,
    other letter questions (perception and corruption MCQs) by the perception MCQ rubric."""
    sub = subtask or ""
    if kind == "open":
        if sub.startswith("Planning"):
            return "planning_vqa"
        return "prediction_vqa" if sub.startswith("Prediction") else "perception_vqa"
    if kind == "yesno":
        return "prediction_mcq"
    return "behavior_mcq" if category == "behavior" else "perception_mcq"


def judge_prompt(rubric: str, question: str, gold: str, pred: str, desc: str | None = None) -> str:
    """The user message the judge reads: the toolkit's system line, a newline, the filled rubric."""
    fields = {"QUESTION": question, "GT": gold, "PRED": pred, "DESC": desc or NO_DESC}
    return P.SYSTEM_MESSAGE + "\n" + RUBRICS[rubric].format_map(fields)


def parse_total_score(reply: str | None) -> tuple[int | None, str | None]:
    """``(score, how)``: the toolkit's ``Total Score: N`` first (``"toolkit"``), else the same words with
    markdown or other punctuation between them (``"lenient"``); a number above 100 is kept at 100
    (``"...,clamped"``). ``(None, None)`` when the reply gives no score."""
    for how, pat in (("toolkit", TOTAL_SCORE), ("lenient", LENIENT_SCORE)):
        m = pat.search(reply or "")
        if m:
            n = int(m.group(1))
            return (100, f"{how},clamped") if n > 100 else (n, how)
    return None, None


def visual_descriptions(desc_file) -> Callable[[str | None, str | None, str], str | None]:
    """``lookup(scene, frame, question)`` over DriveBench's ``data/visual_description.json``, as its
    ``extract_visual_description``: the first ``<c..,CAM..>`` of the question matched by prefix among the
    frame's key objects, lower-cased; None where nothing matches (the judge then says so)."""
    data = json.loads(Path(desc_file).read_text(encoding="utf-8"))

    def lookup(scene, frame, question):
        if question == SAFE_ACTIONS_Q:
            return SAFE_ACTIONS_DESC
        m = re.search(r"<([^>]*)>", question or "")
        if not m:
            return None
        prefix = "<" + ",".join(m.group(1).split(",")[:2])
        objs = ((data.get(scene) or {}).get("key_frames") or {}).get(frame, {}).get("key_object_infos") or {}
        key = next((k for k in objs if k.startswith(prefix)), None)
        if key is None:
            return None
        return str(objs[key].get("Visual_description", "")).lower() or None

    return lookup


# ----------------------------------------------------------------------------------------------
# The judge model


class TextChat:
    """A text-only chat model (``AutoModelForCausalLM`` + its tokenizer's chat template) with the
    wrapper's ``chat_generate`` signature, so the judge takes either."""

    def __init__(self, model, tokenizer, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def load(cls, model_id: str) -> "TextChat":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kw = {"dtype": "auto"} | ({"device_map": "auto"} if torch.cuda.is_available() else {})
        model = AutoModelForCausalLM.from_pretrained(model_id, **kw)
        return cls(model.eval(), AutoTokenizer.from_pretrained(model_id), model_id)

    def chat_generate(self, prompts, max_new_tokens: int = 64, do_sample: bool = False, **_) -> list[str]:
        import torch

        texts = []
        for system, segments in prompts:
            msgs = ([{"role": "system", "content": system}] if system else []) + \
                [{"role": "user", "content": "".join(str(v) for kind, v in segments if kind == "text")}]
            texts.append(self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                      top_p=None, top_k=None, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def load_judge(model_id: str, backend: str = "hf", engine: dict | None = None):
    """The judge model: ``tiny:`` and vision-language checkpoints of a supported family through
    ``VLM.load`` (``backend="vllm"``: the serving engine, ``engine`` its settings), any other chat model
    through ``TextChat`` (transformers only)."""
    from ..models.config import FAMILIES, ModelConfig
    from ..models.tiny import is_tiny

    if backend != "hf":
        from ..engine.client import load_vlm

        return load_vlm(ModelConfig(model=model_id), backend, engine)
    if not is_tiny(model_id):
        from transformers import AutoConfig

        if getattr(AutoConfig.from_pretrained(model_id), "model_type", None) not in FAMILIES:
            return TextChat.load(model_id)
    from ..models.vlm import VLM

    return VLM.load(ModelConfig(model=model_id))


# ----------------------------------------------------------------------------------------------
# Running it, resumable by position


@dataclass
class JudgeItem:
    index: int  # the item's position in the run: the join key
    rubric: str  # a key of RUBRICS
    prompt: str  # judge_prompt(...)
    subtask: str | None = None


def _key(model: str, prompt: str, max_new_tokens: int) -> str:
    return hashlib.sha1(f"{model}\n{max_new_tokens}\n{prompt}".encode()).hexdigest()[:16]


def label(model: str | None) -> str | None:
    """How every report names the judge's numbers."""
    return f"local judge ({model})" if model else None


def run_judge(items: Sequence[JudgeItem], judge, cache, max_new_tokens: int = 512, batch_size: int = 4,
              model_name: str | None = None, progress: bool = False, backend: str = "hf",
              engine: dict | None = None) -> dict[int, dict]:
    """``{index: record}`` for ``items``: ``score`` (0-100 or None), ``raw`` (the reply), ``parse``,
    ``error``, ``cached``. ``judge``: a model id (loaded here with ``backend`` only when some item needs
    it, released at the end) or an object with ``chat_generate``. Records are appended to ``cache``
    (JSONL) as they come."""
    from tqdm.auto import tqdm

    name = model_name or (judge if isinstance(judge, str) else getattr(judge, "name", type(judge).__name__))
    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    repair_jsonl(cache)
    stored = {int(r["index"]): r for r in read_jsonl(cache)} if cache.exists() else {}
    out, todo = {}, []
    for it in items:
        key = _key(name, it.prompt, max_new_tokens)
        r = stored.get(it.index)
        if r is not None and r.get("key") == key and not r.get("error"):
            out[it.index] = r | {"cached": True}
        else:
            todo.append((it, key))
    model = None
    with open(cache, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc="judge", disable=not progress) as bar:
        for b in range(0, len(todo), batch_size):
            chunk = todo[b:b + batch_size]
            t0 = time.perf_counter()
            try:
                if model is None:
                    model = load_judge(judge, backend, engine) if isinstance(judge, str) else judge
                replies = model.chat_generate([(None, [("text", it.prompt)]) for it, _ in chunk], max_new_tokens,
                                              do_sample=False)
                errors = [None] * len(chunk)
            except Exception as e:  # noqa: BLE001 - recorded on the items; retried on a later run, not now
                replies, errors = [None] * len(chunk), [f"{type(e).__name__}: {e}"] * len(chunk)
            dt = (time.perf_counter() - t0) / len(chunk)
            for (it, key), reply, err in zip(chunk, replies, errors):
                score, how = parse_total_score(reply)
                rec = {"index": it.index, "key": key, "model": name, "subtask": it.subtask, "rubric": it.rubric,
                       "score": score, "parse": how, "raw": reply, "error": err, "time_s": round(dt, 3)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                f.flush()
                out[it.index] = rec | {"cached": False}
            bar.update(len(chunk))
    if isinstance(judge, str) and hasattr(model, "close"):
        model.close()  # an engine process: its memory back before anything else loads
    return out


def judge_summary(records: dict[int, dict], model: str) -> dict:
    """Counts for the report: items judged, with a score, without one (and the rate), errors, reused."""
    recs = list(records.values())
    n = len(recs)
    no_score = [r for r in recs if r.get("score") is None and not r.get("error")]
    errors = [r for r in recs if r.get("error")]
    return {"label": label(model), "model": model, "official": False, "n_items": n,
            "n_scored": sum(r.get("score") is not None for r in recs), "n_no_score": len(no_score),
            "no_score_rate": round(len(no_score) / n, 4) if n else None, "n_errors": len(errors),
            "n_cached": sum(bool(r.get("cached")) for r in recs),
            "n_lenient_parse": sum(str(r.get("parse") or "").startswith("lenient") for r in recs),
            "examples_no_score": [{"index": r["index"], "raw": str(r.get("raw"))[:200]} for r in no_score[:3]],
            "errors": [{"index": r["index"], "error": r["error"]} for r in errors[:3]]}

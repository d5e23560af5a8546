"""Batch inference: resume, unreadable videos, out-of-memory, time budget, shards, submission."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from roadbuddy_utils.answer.batch import InferConfig, run_inference, shard_items
from roadbuddy_utils.answer.submit import SubmissionError, merge_predictions, write_submission
from roadbuddy_utils.common.files import read_jsonl
from roadbuddy_utils.data.questions import load_items
from roadbuddy_utils.data.split import eval_items
from roadbuddy_utils.models.config import ModelConfig

TRAIN = "traffic_buddy_train+public_test/train/train.json"


class FakeVLM:
    """A stand-in with the wrapper's interface, to script failures (OOM, slowness) precisely."""

    def __init__(self, oom_batches=False, oom_ids=(), ms=0.0, n_frames=8):
        self.cfg = ModelConfig(n_frames=n_frames)
        self.oom_batches, self.oom_ids, self.ms, self.calls = oom_batches, set(oom_ids), ms, []

    def describe(self):
        return {"model": "fake"}

    def render(self, ex, lang="vi"):
        return f"{ex.item.id}:{0 if ex.frames is None else len(ex.frames)}"

    def answer(self, examples, scoring="likelihood", lang="vi", max_new_tokens=16):
        import time

        import torch

        self.calls.append([(e.item.id, None if e.frames is None else len(e.frames)) for e in examples])
        if (self.oom_batches and len(examples) > 1) or any(e.item.id in self.oom_ids for e in examples):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(self.ms * sum(0 if e.frames is None else len(e.frames) for e in examples) / 1000)
        return [{"pred": e.item.letters[-1], "scores": None, "raw": None, "source": "likelihood", "error": None}
                for e in examples]


@pytest.fixture(scope="module")
def data(demo_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("infer") / "data"
    shutil.copytree(demo_small, root)
    return root


def test_resume_after_interruption(data, tmp_path, tiny_vlm):
    items = load_items(data / TRAIN)[:9]
    vlm = tiny_vlm("internvl", n_frames=2)
    cfg = InferConfig(batch_size=2, time_budget_s=None)
    full = run_inference(items, vlm, cfg, tmp_path / "full", progress=False)
    assert [r["id"] for r in full] == [i.id for i in items]
    # an interrupted run: 4 complete lines and a torn fifth
    part = tmp_path / "part"
    part.mkdir()
    text = (tmp_path / "full" / "predictions.jsonl").read_text().splitlines()
    (part / "predictions.jsonl").write_text("\n".join(text[:4]) + "\n" + text[4][:20])
    resumed = run_inference(items, vlm, cfg, part, progress=False)
    assert [r["id"] for r in resumed] == [i.id for i in items]
    assert len(read_jsonl(part / "predictions.jsonl")) == 9  # 4 kept + 5 new, torn line dropped
    for a, b in zip(full, resumed):
        assert a["pred"] == b["pred"] and a["scores"] == pytest.approx(b["scores"], abs=1e-4)
    # a third run has nothing left to do
    again = run_inference(items, vlm, cfg, part, progress=False)
    assert len(read_jsonl(part / "predictions.jsonl")) == 9 and len(again) == 9


def test_corrupt_video_answered_from_text_and_marked(data, tmp_path, tiny_vlm):
    items = load_items(data / TRAIN)
    bad = items[0].video_path
    root2 = tmp_path / "data"
    shutil.copytree(data, root2)
    (root2 / bad.relative_to(data)).write_bytes(b"not a video")
    items = load_items(root2 / TRAIN)[:6]
    lines = run_inference(items, tiny_vlm("internvl", n_frames=2), InferConfig(batch_size=3), tmp_path / "o",
                          progress=False)
    hit = [r for r in lines if r["video"] == items[0].video_rel]
    assert hit and all(r["text_only"] and r["pred"] in "ABCD" and "cannot read" in r["error"] for r in hit)
    assert all(not r["text_only"] and r["error"] is None for r in lines if r["video"] != items[0].video_rel)
    assert len(lines) == 6


def test_out_of_memory_retries_item_by_item_and_records_failure(data, tmp_path):
    items = load_items(data / TRAIN)[:8]
    vlm = FakeVLM(oom_batches=True, oom_ids={items[1].id})
    lines = run_inference(items, vlm, InferConfig(batch_size=4), tmp_path, progress=False)
    assert len(lines) == 8
    failed = [r for r in lines if r["error"]]
    assert [r["id"] for r in failed] == [items[1].id] and "out of memory" in failed[0]["error"]
    assert failed[0]["pred"] is None
    assert all(r["pred"] for r in lines if r["id"] != items[1].id)
    assert any(len(c) > 1 for c in vlm.calls) and sum(len(c) == 1 for c in vlm.calls) >= 7
    # a rerun retries only the failed id
    vlm.oom_ids = set()
    lines = run_inference(items, vlm, InferConfig(batch_size=4), tmp_path, progress=False)
    assert all(r["pred"] for r in lines)


def test_time_budget_reduces_frames(data, tmp_path):
    items = load_items(data / TRAIN)
    vlm = FakeVLM(ms=40, n_frames=8)  # 40 ms per frame -> 320 ms per question at 8 frames
    lines = run_inference(items, vlm, InferConfig(batch_size=1, time_budget_s=0.2), tmp_path, progress=False)
    reduced = [r for r in lines if r["reduced_frames"]]
    assert lines[0]["n_frames"] == 8 and reduced and all(r["n_frames"] < 8 for r in reduced)
    assert all(r["reduced_frames"] == r["n_frames"] for r in reduced)
    assert all(r["time_ms"] > 0 for r in lines)


def test_shards_partition_by_video_and_merge_to_a_valid_submission(data, tmp_path, tiny_vlm):
    test_json = data / "traffic_buddy_train+public_test/public_test/public_test.json"
    items = load_items(test_json)
    shards = [shard_items(items, k, 2) for k in range(2)]
    assert sorted(i.id for s in shards for i in s) == sorted(i.id for i in items)
    assert not {i.video_rel for i in shards[0]} & {i.video_rel for i in shards[1]}
    vlm = tiny_vlm("internvl", n_frames=2)
    paths = []
    for k in range(2):
        run_inference(items, vlm, InferConfig(shard_index=k, num_shards=2), tmp_path / f"s{k}", progress=False)
        paths.append(tmp_path / f"s{k}" / "predictions.jsonl")
    files = write_submission(merge_predictions([str(p) for p in paths]), test_json, tmp_path / "sub")
    rows = files["submission"].read_text().splitlines()
    assert rows[0] == "id,answer" and [r.split(",")[0] for r in rows[1:]] == [i.id for i in items]
    # one shard alone is refused with every missing id listed, nothing written
    with pytest.raises(SubmissionError) as e:
        write_submission(merge_predictions(str(paths[0])), test_json, tmp_path / "half")
    assert len(e.value.problems) == len(shards[1]) and not (tmp_path / "half" / "submission.csv").exists()


def test_eval_items_val_split_is_the_stored_one(data, tmp_path, monkeypatch):
    from roadbuddy_utils.data.split import default_split_file

    val = eval_items(data / TRAIN, split="val", split_file=tmp_path / "split.json")
    split = json.loads((tmp_path / "split.json").read_text())
    assert [i.id for i in val] == split["val_ids"]
    monkeypatch.chdir(tmp_path)  # without split_file: the split derived from the data, under outputs/splits
    assert [i.id for i in eval_items(data / TRAIN, split="val")] == split["val_ids"]
    derived = default_split_file(load_items(data / TRAIN))
    assert derived.parent == Path("outputs/splits") and json.loads(derived.read_text()) == split
    test = eval_items(data / "traffic_buddy_train+public_test/public_test/public_test.json",
                      answers_json=data / "answers/public_test_answers.json")
    assert all(i.answer in i.letters for i in test)


def test_relettered_items_are_scored_on_every_choice_and_submitted(write_items, tmp_path, tiny_vlm):
    """The real shapes whose choices repeat a letter (issue 18), on a test split without videos: the tiny
    model answers from the text alone, with a score for every positional letter, and 07 writes each id."""
    from test_data import RELETTERED

    p = write_items([{"id": f"testb_{k:04d}", "question": "Biển báo nào xuất hiện?", "choices": raw,
                      "video_path": f"videos/missing_{k}.mp4"} for k, (_, raw, *_) in enumerate(RELETTERED)],
                    "private_test.json", "priv")
    items = load_items(p)
    assert all(i.letters == list("ABCD") for i in items)
    lines = run_inference(items, tiny_vlm("qwen2_5_vl", n_frames=2), InferConfig(batch_size=2, time_budget_s=None),
                          tmp_path / "03", progress=False)
    assert [r["id"] for r in lines] == [i.id for i in items]
    for r in lines:
        assert r["text_only"] and "file not found" in r["error"]  # recorded, and answered from the text
        assert set(r["scores"]) == set("ABCD") and r["pred"] in "ABCD"
    files = write_submission(merge_predictions([str(tmp_path / "03" / "predictions.jsonl")]), p, tmp_path / "07")
    rows = files["submission"].read_text().splitlines()
    assert rows[0] == "id,answer" and [r.split(",")[0] for r in rows[1:]] == [i.id for i in items]


def test_a_retrained_adapter_at_the_same_path_is_not_resumed_into(data, tmp_path):
    """04 retrains and saves its adapter at the same path: 03's earlier predictions came from other weights, so they
    are moved aside (kept) and every question is answered again; the same weights resume as before."""
    items = load_items(data / TRAIN)[:4]
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"first training")
    vlm = FakeVLM(n_frames=2)
    vlm.cfg.adapter_path = str(adapter)
    out, cfg = tmp_path / "03", InferConfig(batch_size=2, time_budget_s=None)
    run_inference(items, vlm, cfg, out, progress=False)
    first = json.loads((out / "run_config.json").read_text())["weights"]
    assert first["adapter_sha1"] and len(vlm.calls) == 2
    run_inference(items, vlm, cfg, out, progress=False)  # same weights: resumed, nothing to answer
    assert len(vlm.calls) == 2 and not list(out.glob("predictions.stale-*"))
    (adapter / "adapter_model.safetensors").write_bytes(b"second training")
    with pytest.warns(UserWarning, match="made by other weights"):
        lines = run_inference(items, vlm, cfg, out, progress=False)
    assert len(vlm.calls) == 4 and len(lines) == 4 and len(read_jsonl(out / "predictions.jsonl")) == 4
    stale = list(out.glob("predictions.stale-*.jsonl"))
    assert len(stale) == 1 and len(read_jsonl(stale[0])) == 4  # nothing already computed is lost
    assert json.loads((out / "run_config.json").read_text())["weights"]["adapter_sha1"] != first["adapter_sha1"]

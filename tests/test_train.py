"""Fine-tuning: label masking, LoRA targets, resume, best checkpoint, merge, DDP, and real learning."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from roadbuddy_utils.data.questions import load_items
from roadbuddy_utils.models.config import ModelConfig
from roadbuddy_utils.models.example import Example
from roadbuddy_utils.models.tiny import TINY_FAMILIES
from roadbuddy_utils.models.vlm import VLM
from roadbuddy_utils.train.examples import Collator
from roadbuddy_utils.train.finetune import (
    TrainConfig,
    apply_trainable,
    export_merged,
    lora_target_regex,
    train,
    trainable_counts,
)

TRAIN = "traffic_buddy_train+public_test/train/train.json"


def _cfg(demo_small, tmp_path, **kw):
    root = demo_small / "traffic_buddy_train+public_test"
    base = dict(model="tiny:internvl", train_json=str(root / "train/train.json"), videos_root=str(root),
                output_dir=str(tmp_path / "run"), split_file=str(tmp_path / "split.json"), cache_dir=str(tmp_path / "c"),
                trainable=("lora", "projector", "lm_head"), loss="letters", lr=2e-3, batch_size=4, grad_accum=1,
                max_steps=6, eval_steps=3, n_frames=4, train_frames=2, max_pixels=112 * 112, lora_dropout=0.0,
                val_limit=8, seed=0)
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_labels_cover_only_the_answer_tokens(demo_small, tiny_vlm, family):
    vlm = tiny_vlm(family)
    items = load_items(demo_small / TRAIN)[:3]
    frames = np.random.default_rng(0).integers(0, 255, (2, 84, 150, 3), dtype=np.uint8)
    exs = [Example(items[0], frames, [0.5, 1.5], [7, 22], 15.0, 90), Example(items[1], None),
           Example(items[2], frames, [0.5, 1.5], [7, 22], 15.0, 90)]
    for target, loss in [("letter", "tokens"), ("letter_text", "letters")]:
        batch = Collator(vlm, TrainConfig(target=target, loss=loss))(exs)
        ids, labels = batch["input_ids"], batch["labels"]
        tok = vlm.processor.tokenizer
        for b, ex in enumerate(exs):
            kept = labels[b][labels[b] != -100].tolist()
            want = ex.item.answer + ("" if target == "letter" else f". {dict(ex.item.choices)[ex.item.answer]}")
            assert tok.decode(kept) == want + tok.eos_token
            assert kept == ids[b, -len(kept):].tolist()  # the tail: left padding, answer last
        vision = [tok.convert_tokens_to_ids(t) for t in ("<IMG_CONTEXT>", "<|video_pad|>", "<|image_pad|>")
                  if tok.convert_tokens_to_ids(t) is not None]
        assert not torch.isin(labels, torch.tensor(vision)).any()
        assert (labels[batch["attention_mask"] == 0] == -100).all()
        if loss == "letters":
            assert batch["rb_gold"].tolist() == [ex.item.letters.index(ex.item.answer) for ex in exs]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_lora_targets_stay_out_of_the_vision_tower(family):
    vlm = VLM.load(ModelConfig(f"tiny:{family}"))
    model = apply_trainable(vlm.model, vlm.family, TrainConfig(trainable=("lora",)))
    lora = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora and all("language_model" in n for n in lora)
    counts = trainable_counts(model)
    assert set(counts["by_part"]) == {"lora_language"}
    vlm2 = VLM.load(ModelConfig(f"tiny:{family}"))
    model2 = apply_trainable(vlm2.model, vlm2.family, TrainConfig(trainable=("lora", "vision", "projector")))
    parts = trainable_counts(model2)["by_part"]
    assert {"lora_language", "lora_vision", "projector"} <= set(parts)
    assert "vision_tower" in lora_target_regex("internvl", ("lora", "vision")) or family != "internvl"


class StopAt:
    """Simulates a kill right after a checkpoint: stop training at ``step``."""

    def __init__(self, step):
        self.step = step

    def __getattr__(self, name):  # every other TrainerCallback hook: do nothing
        return lambda *a, **k: None

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def _adapter_state(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_resume_after_kill_matches_uninterrupted_and_keeps_best(demo_small, tmp_path):
    full = train(_cfg(demo_small, tmp_path / "a"), log=lambda *_: None)
    interrupted = _cfg(demo_small, tmp_path / "b")
    train(interrupted, log=lambda *_: None, callbacks=[StopAt(3)])
    assert (tmp_path / "b/run/checkpoints/checkpoint-3").exists()
    resumed = train(_cfg(demo_small, tmp_path / "b", resume_from="last"), log=lambda *_: None)
    assert resumed["steps"] == full["steps"] == 6
    a, b = _adapter_state(tmp_path / "a/run/adapter"), _adapter_state(tmp_path / "b/run/adapter")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    # best checkpoint: the kept adapter is the one with the best validation accuracy
    accs = [h["val_accuracy"] for h in full["history"]]
    assert full["val_accuracy_best"] == pytest.approx(max(accs), abs=1e-4)
    assert full["best_checkpoint"].endswith(f"checkpoint-{full['history'][int(np.argmax(accs))]['step']}")
    m = json.loads((tmp_path / "a/run/metrics.json").read_text())
    assert {"val_accuracy_before", "val_accuracy_best", "chance", "adapter_path", "history"} <= set(m)
    assert (tmp_path / "a/run/adapter/adapter_config.json").exists()
    assert any((tmp_path / "a/run/tensorboard").rglob("events.out.tfevents*"))


def test_merged_export_equals_base_plus_adapter(demo_small, tmp_path):
    m = train(_cfg(demo_small, tmp_path, max_steps=2, eval_steps=2), log=lambda *_: None)
    merged = export_merged(m["adapter_path"], tmp_path / "merged")
    with_adapter = VLM.load(ModelConfig("tiny:internvl", adapter_path=m["adapter_path"]))
    standalone = VLM.load(ModelConfig(str(merged)))
    items = load_items(demo_small / TRAIN)[:4]
    frames = np.random.default_rng(1).integers(0, 255, (3, 84, 150, 3), dtype=np.uint8)
    exs = [Example(it, frames, [0.5, 1.5, 2.5], [7, 22, 37], 15.0, 90) for it in items]
    a, b = with_adapter.letter_scores(exs), standalone.letter_scores(exs)
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and all(abs(x[k] - y[k]) < 1e-4 for k in x)
    base = VLM.load(ModelConfig("tiny:internvl")).letter_scores(exs)
    assert any(abs(a[i][k] - base[i][k]) > 1e-3 for i in range(len(a)) for k in a[i])  # the adapter did something


def test_ddp_two_cpu_processes(demo_small, tmp_path):
    cfg = _cfg(demo_small, tmp_path, max_steps=2, eval_steps=2)
    from dataclasses import asdict

    from roadbuddy_utils.common.files import write_json

    path = write_json(asdict(cfg), tmp_path / "cfg.json")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "roadbuddy_utils", "train", "--config", str(path)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "run/metrics.json").read_text())
    assert m["steps"] == 2 and m["world_size"] == 2 and (tmp_path / "run/adapter/adapter_config.json").exists()
    assert len(list((tmp_path / "run").glob("adapter*"))) == 1


@pytest.fixture(scope="module")
def learn_data(tmp_path_factory):
    """A few hundred one-event clips: enough for a clear gain in a CI-sized run."""
    from roadbuddy_utils.demo.dataset import DemoConfig, generate

    root = tmp_path_factory.mktemp("learn")
    generate(root, DemoConfig(seed=3, n_train_videos=360, n_public_videos=1, n_private_videos=1), progress=False)
    return root


def test_learning_check_clear_gain_over_chance(learn_data, tmp_path):
    """The demo recipe from random weights, shortened: validation accuracy must clearly beat chance
    (the full check, >= 0.80 on demo data seeds 0, 1 and 2, is ``benchmarks/learning.py --data-seed
    0,1,2``). Measured here for training seeds 0 / 1 / 2: 0.88 / 0.77 / 0.77 at step 200 and 0.95 /
    0.95 / 0.90 at step 400 (needed: about 0.55); 300 steps left seed 2 at 0.75, and the old lr 2e-3
    at 0.50-0.72 depending on the machine (benchmarks/RESULTS.md)."""
    import yaml

    from roadbuddy_utils.common.files import REPO

    recipe = yaml.safe_load((REPO / "params/demo/04_lora_train.yaml").read_text())
    root = learn_data / "traffic_buddy_train+public_test"
    cfg = TrainConfig(**{k: v for k, v in recipe.items() if k not in ("train_json", "videos_root", "output_dir",
                                                                      "split_file", "cache_dir")}
                      | dict(train_json=str(root / "train/train.json"), videos_root=str(root),
                             output_dir=str(tmp_path / "run"), split_file=str(tmp_path / "split.json"),
                             cache_dir=str(tmp_path / "cache"), max_steps=400, eval_steps=200, val_limit=60))
    m = train(cfg, log=lambda *_: None)
    assert m["val_accuracy_before"] < m["chance"] + 0.15
    assert m["val_accuracy_best"] >= m["chance"] + 0.2, m["history"]

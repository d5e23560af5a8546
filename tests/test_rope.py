"""Qwen2.5-VL text positions after a video: the model's own "max vision position + 1" rule (models/rope.py)."""
import numpy as np
import pytest
import torch

from roadbuddy_utils.data.questions import Item
from roadbuddy_utils.models.config import ModelConfig
from roadbuddy_utils.models.example import Example
from roadbuddy_utils.models.rope import max_plus_one
from roadbuddy_utils.models.vlm import VLM

ITEM = Item("q1", "Biển báo nào xuất hiện trong video?", [("A", "Cấm rẽ trái"), ("B", "Cấm đỗ xe"), ("C", "Không có")],
            "A", [], None, "v.mp4")


def _long_clip(n=8, seconds=12.0, fps=30.0, seed=0):
    """n frames spread over a 12 s clip (the long end of RoadBuddy's 5-15 s)."""
    idx = [int(round((k + 0.5) * seconds * fps / n)) for k in range(n)]
    frames = np.random.default_rng(seed).integers(0, 255, (n, 56, 112, 3), dtype=np.uint8)
    return Example(ITEM, frames, [i / fps for i in idx], idx, fps, int(seconds * fps))


def test_the_rule_on_handmade_positions():
    # text(2) | video: t 0,0,4,4 h 0,1,0,1 w 0,0,0,0 (starts at 2) | text(2) | image 2x2 | text(1)
    types = torch.tensor([[0, 0, 2, 2, 2, 2, 0, 0, 1, 1, 1, 1, 0]])
    t = [0, 1, 2, 2, 6, 6, 3, 4, 5, 5, 5, 5, 7]
    h = [0, 1, 2, 3, 2, 3, 3, 4, 5, 5, 6, 6, 7]
    w = [0, 1, 2, 2, 2, 2, 3, 4, 5, 6, 5, 6, 7]
    pos, delta = max_plus_one(torch.tensor([t, h, w]).unsqueeze(1), types)
    # the text after the video starts at 6 + 1 = 7 (not 3); everything after moves by 4
    assert pos[:, 0].tolist() == [[0, 1, 2, 2, 6, 6, 7, 8, 9, 9, 9, 9, 11],
                                  [0, 1, 2, 3, 2, 3, 7, 8, 9, 9, 10, 10, 11],
                                  [0, 1, 2, 2, 2, 2, 7, 8, 9, 10, 9, 10, 11]]
    assert delta.tolist() == [[11 + 1 - 13]]
    # left padding is left alone and the row is corrected as if it were not there
    mask = torch.tensor([[0, 0] + [1] * 13])
    padded = torch.cat([torch.zeros(3, 1, 2, dtype=torch.long), torch.tensor([t, h, w]).unsqueeze(1)], dim=2)
    pos2, _ = max_plus_one(padded, torch.cat([torch.zeros(1, 2, dtype=torch.long), types], dim=1), mask)
    assert pos2[:, 0, 2:].tolist() == pos[:, 0].tolist() and pos2[:, 0, :2].tolist() == [[0, 0]] * 3


@pytest.fixture(scope="module")
def qwen():
    return VLM.load(ModelConfig("tiny:qwen2_5_vl", n_frames=8, max_pixels=56 * 112, device="cpu"))


def _positions(vlm, ex, stock=False):
    batch = vlm.inputs([ex], "vi")
    inner = vlm.model.model
    fn = (lambda *a, **k: type(inner).get_rope_index(inner, *a, **k)) if stock else inner.get_rope_index
    keys = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts", "attention_mask")
    pos, _ = fn(batch["input_ids"], batch["mm_token_type_ids"], **{k: batch.get(k) for k in keys})
    video = batch["mm_token_type_ids"][0] == 2
    after = int(torch.nonzero(video).max()) + 1  # the first text token after the video
    return pos[:, 0], video, after


def test_a_long_clip_gets_the_trained_positions_on_the_hf_path(qwen):
    pos, video, after = _positions(qwen, _long_clip())
    vision_max = int(pos[:, video].max())
    assert pos[:, after].tolist() == [vision_max + 1] * 3  # the rule
    stock, _, _ = _positions(qwen, _long_clip(), stock=True)
    assert int(stock[0, after]) < vision_max + 1  # transformers' own rule differs on this clip: the test bites
    assert torch.equal(stock[:, video], pos[:, video])  # the video's own positions are untouched


def test_answers_generation_and_training_use_the_rule(qwen):
    from roadbuddy_utils.models.rope import use_trained_positions
    from roadbuddy_utils.train.examples import Collator
    from roadbuddy_utils.train.finetune import TrainConfig, apply_trainable

    ex = _long_clip(seed=1)
    ours = qwen.letter_scores([ex])[0]
    stock = VLM.load(ModelConfig("tiny:qwen2_5_vl", n_frames=8, max_pixels=56 * 112, device="cpu"))
    del stock.model.model.get_rope_index, stock.model.model._rb_max_plus_one  # back to transformers' rule
    assert stock.letter_scores([ex])[0] != ours  # the forward pass reads the positions
    assert use_trained_positions(stock.model) and stock.letter_scores([ex])[0] == ours
    qwen.generate([ex], max_new_tokens=2)  # generate: its rope deltas come from the rule
    pos, video, after = _positions(qwen, ex)
    assert int(qwen.model.model.rope_deltas[0, 0]) == int(pos.max()) + 1 - pos.shape[1]
    calls = []
    inner = stock.model.model
    rule = inner.get_rope_index
    inner.get_rope_index = lambda *a, **k: calls.append(1) or rule(*a, **k)
    model = apply_trainable(stock.model, stock.family, TrainConfig(model="tiny:qwen2_5_vl", trainable=("lora",)))
    model.train()
    loss = model(**Collator(stock, TrainConfig(model="tiny:qwen2_5_vl", loss="tokens"))([ex])).loss
    assert calls and torch.isfinite(loss)  # a training step (peft-wrapped) goes through the rule too


def test_a_model_with_a_lora_adapter_gets_the_rule_too(qwen, tmp_path):
    """VLM.load with an adapter wraps the model in peft first: the rule must reach the wrapped model."""
    from peft import LoraConfig, get_peft_model

    from roadbuddy_utils.train.finetune import lora_target_regex

    base = VLM.load(ModelConfig("tiny:qwen2_5_vl", n_frames=8, max_pixels=56 * 112, device="cpu"))
    get_peft_model(base.model, LoraConfig(r=4, target_modules=lora_target_regex("qwen", ["lora"]))).save_pretrained(
        tmp_path / "adapter")
    with_adapter = VLM.load(ModelConfig("tiny:qwen2_5_vl", adapter_path=str(tmp_path / "adapter"), n_frames=8,
                                        max_pixels=56 * 112, device="cpu"))
    inner = next(m for m in with_adapter.model.modules() if hasattr(type(m), "get_rope_index"))
    assert getattr(inner, "_rb_max_plus_one", False)
    batch = with_adapter.inputs([_long_clip()], "vi")
    keys = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts", "attention_mask")
    pos, _ = inner.get_rope_index(batch["input_ids"], batch["mm_token_type_ids"], **{k: batch.get(k) for k in keys})
    video = batch["mm_token_type_ids"][0] == 2
    after = int(torch.nonzero(video).max()) + 1
    assert pos[:, 0, after].tolist() == [int(pos[:, 0][:, video].max()) + 1] * 3

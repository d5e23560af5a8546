import json
from pathlib import Path

import pytest

from roadbuddy_utils.demo.dataset import DemoConfig, generate

# several events (and questions) per clip: the tests need clips shared by questions
SMALL = DemoConfig(seed=0, n_train_videos=12, n_public_videos=3, n_private_videos=3, max_events=3)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for it in items:
            if "gpu" in it.keywords:
                it.add_marker(skip)


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory) -> Path:
    """A small generated demo dataset (same generator as the real demo, fewer clips)."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, SMALL, progress=False)
    return root


# Real competition files (RoboSense phase 1, the DriveBench sample): read to check the code against them,
# never committed. CI and this checkout's sibling folder have them; elsewhere their tests skip.
REAL_MULTIVIEW = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "multiview"


@pytest.fixture
def real_multiview():
    """``get(name)``: the path of a real multi-camera question file, or a skip naming where it was looked for."""

    def get(name):
        path = REAL_MULTIVIEW / name
        if not path.is_file():
            pytest.skip(f"real file {name} not found in {REAL_MULTIVIEW} (competition data: read, never committed)")
        return path

    return get


@pytest.fixture
def write_items(tmp_path):
    """Write a RoadBuddy-format JSON file with the given items; returns its path."""

    def _write(items, name="train.json", folder="train", raw=None):
        p = tmp_path / folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(raw if raw is not None else json.dumps({"__count__": len(items), "data": items}, ensure_ascii=False),
                     encoding="utf-8")
        return p

    return _write


@pytest.fixture(scope="session", autouse=True)
def tiny_cache(tmp_path_factory):
    """Tiny models are built once per test session into a private cache (never the user's)."""
    import os

    if not os.environ.get("RB_TINY_CACHE"):
        os.environ["RB_TINY_CACHE"] = str(tmp_path_factory.mktemp("tiny"))
    return os.environ["RB_TINY_CACHE"]


@pytest.fixture(scope="session")
def tiny_vlm():
    """One loaded tiny model per family (loaded once per session)."""
    from roadbuddy_utils.models.config import ModelConfig
    from roadbuddy_utils.models.vlm import VLM

    cache = {}

    def _get(family, **kw):
        key = (family, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = VLM.load(ModelConfig(f"tiny:{family}", **kw))
        return cache[key]

    return _get

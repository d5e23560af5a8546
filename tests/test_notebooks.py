"""Papermill smoke runs of the notebooks on a small generated demo dataset (marker: notebooks)."""
import json
import shutil

import pytest

from roadbuddy_utils.runner import NotebookFailed, run_profile
from roadbuddy_utils.util import read_jsonl

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_data(demo_small, tmp_path_factory):
    """The small demo data with one clip replaced by garbage (a corrupt video must not stop 02)."""
    root = tmp_path_factory.mktemp("smoke") / "data"
    shutil.copytree(demo_small, root)
    victim = sorted((root / "traffic_buddy_train+public_test/train/videos").glob("*.mp4"))[0]
    victim.write_bytes(b"this is not an mp4")
    return root


def _params(data_root, out):
    split_root = data_root / "traffic_buddy_train+public_test"
    common = {"data_json": str(split_root / "train/train.json"), "videos_root": str(split_root)}
    return {"01_explore": common | {"output_dir": str(out / "01"), "split_file": str(out / "split.json")},
            "02_frames": common | {"output_dir": str(out / "02"), "cache_dir": str(out / "cache")}}


def test_smoke_01_02(smoke_data, tmp_path):
    m = run_profile("demo", only=["01", "02"], output_root=tmp_path / "outputs",
                    extra_params=_params(smoke_data, tmp_path), prepare=False, log=lambda *_: None)
    assert [n["status"] for n in m["notebooks"]] == ["ok", "ok"]
    executed = tmp_path / "outputs" / "demo"
    for name in ("01_explore", "02_frames"):
        assert (executed / f"{name}.ipynb").exists() and (executed / f"{name}.html").stat().st_size > 10_000
    manifest = json.loads((executed / "manifest.json").read_text())
    assert manifest["versions"]["transformers"] and manifest["notebooks"][1]["parameters"]["frame_mode"] == "support"
    assert "git_commit" in manifest and all(n["duration_s"] > 0 for n in manifest["notebooks"])
    # 01: summary, plots, the split
    summary = json.loads((tmp_path / "01" / "explore_summary.json").read_text())
    assert summary["summary"]["questions"] > 20 and (tmp_path / "01" / "overview.png").exists()
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["val_ids"] and split["train_ids"]
    # 02: one line per video, the corrupt one recorded with its error, the rest decoded
    index = read_jsonl(tmp_path / "02" / "frames_index.jsonl")
    assert len(index) == 12
    failed = [r for r in index if r["error"]]
    assert len(failed) == 1 and "cannot read" in failed[0]["error"]
    ok = [r for r in index if not r["error"]]
    assert all(4 <= len(r["timestamps"]) == len(r["frame_indices"]) <= 6 for r in ok)
    assert {"video_path", "timestamps", "frame_indices", "error"} <= set(index[0])


def test_runner_stops_at_first_failing_notebook(smoke_data, tmp_path):
    params = _params(smoke_data, tmp_path)
    params["01_explore"]["data_json"] = str(tmp_path / "missing.json")
    params["01_explore"]["split_file"] = str(tmp_path / "split.json")
    with pytest.raises(NotebookFailed, match="01_explore.ipynb failed"):
        run_profile("demo", only=["01", "02"], output_root=tmp_path / "outputs", extra_params=params,
                    prepare=False, log=lambda *_: None)
    manifest = json.loads((tmp_path / "outputs" / "demo" / "manifest.json").read_text())
    assert [n["status"] for n in manifest["notebooks"]] == ["failed"]  # 02 never started

"""Papermill smoke runs of the notebooks on a small generated demo dataset (marker: notebooks)."""
import json
import shutil

import pytest

from roadbuddy_utils.common.files import read_jsonl
from roadbuddy_utils.report.runner import NotebookFailed, run_profile

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
    m = run_profile("demo", only=["01_explore", "02_frames"], output_root=tmp_path / "outputs",  # not 02@select
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
    with pytest.raises(NotebookFailed, match=r"01_explore.*failed"):
        run_profile("demo", only=["01", "02"], output_root=tmp_path / "outputs", extra_params=params,
                    prepare=False, log=lambda *_: None)
    manifest = json.loads((tmp_path / "outputs" / "demo" / "manifest.json").read_text())
    assert [n["status"] for n in manifest["notebooks"]] == ["failed"]  # 02 never started


def test_smoke_03_07(smoke_data, tmp_path):
    """03 answers the demo public test with a tiny model (one clip corrupt), 07 writes the submission."""
    pub = smoke_data / "traffic_buddy_train+public_test"
    test_json = str(pub / "public_test/public_test.json")
    params = {"03_zero_shot": {"data_json": test_json, "videos_root": str(pub), "output_dir": str(tmp_path / "03"),
                               "answers_json": str(smoke_data / "answers/public_test_answers.json"),
                               "cache_dir": str(tmp_path / "cache")},
              "07_submit": {"predictions": [str(tmp_path / "03" / "predictions.jsonl")], "test_json": test_json,
                            "videos_root": str(pub), "output_dir": str(tmp_path / "07")}}
    victim = sorted((pub / "public_test/videos").glob("*.mp4"))[0]
    victim.write_bytes(b"broken")
    m = run_profile("demo", only=["03_zero_shot", "07_submit"], output_root=tmp_path / "outputs",
                    extra_params=params, prepare=False, log=lambda *_: None)
    assert [n["status"] for n in m["notebooks"]] == ["ok", "ok"]
    lines = read_jsonl(tmp_path / "03" / "predictions.jsonl")
    metrics = json.loads((tmp_path / "03" / "metrics.json").read_text())
    assert metrics["n"] == len(lines) > 0 and 0 <= metrics["accuracy"] <= 1 and 0.25 <= metrics["chance"] <= 0.5
    assert metrics["model"]["tiny_random"] and "p95" in metrics["latency_ms"]
    assert {"id", "pred", "scores", "answer", "correct", "time_ms", "source", "error"} <= set(lines[0])
    broken = [r for r in lines if r["text_only"]]
    assert broken and all(r["pred"] and "cannot read" in r["error"] for r in broken)
    assert (tmp_path / "03" / "confusion.png").exists()
    sub = (tmp_path / "07" / "submission.csv").read_text().splitlines()
    assert sub[0] == "id,answer" and len(sub) == len(lines) + 1
    assert (tmp_path / "07" / "time_submission.csv").read_text().splitlines()[0] == "id,answer,time"


def test_smoke_06_multiview(tmp_path):
    """06 draws the stand-in multi-camera data itself, routes to two tiny models, retrieves, scores."""
    import yaml

    from roadbuddy_utils.multiview.router import DEFAULT_ROUTING

    mv, out = tmp_path / "mv", tmp_path / "06"
    routing = {s: v | {"max_new_tokens": 4, "max_new_tokens_open": 4}
               for s, v in yaml.safe_load(DEFAULT_ROUTING.read_text()).items()}  # short answers: fast
    params = {"demo_dir": str(mv), "multiview_json": str(mv / "questions.json"), "image_root": str(mv),
              "kb_file": str(mv / "kb.json"), "output_dir": str(out), "routing": routing, "limit": 4}
    m = run_profile("demo", only=["06"], output_root=tmp_path / "outputs",
                    extra_params={"06_multiview_router_rag": params}, prepare=False, log=lambda *_: None)
    assert [n["status"] for n in m["notebooks"]] == ["ok"]
    metrics = json.loads((out / "metrics.json").read_text())
    lines = json.loads((out / "results.json").read_text())
    assert metrics["n_items"] == 24 and len(lines) == metrics["n_run"] == 4 and metrics["n_errors"] == 0
    assert sum(r["n"] for r in metrics["subtask_counts"][:-1]) == 24 and metrics["defaults"] == []
    assert metrics["leakage"]["n_items"] == 4 and metrics["leakage"]["n_overlap"] >= 1  # KB copies of demo items
    assert metrics["n_problems"] >= 1  # one image file is left out on purpose
    assert set(metrics["routing"]["per_model_used"]) == {"small", "large"}
    assert metrics["score"]["n_scored"] > 0 and metrics["models"]["small"]["note"]
    assert {"subtask", "model_routed", "model_used", "answer", "rag_notes", "error", "category"} <= set(lines[0])
    assert any(l["rag_notes"] for l in lines)


def test_smoke_05_eval(smoke_data, tmp_path, tiny_vlm):
    """05 compares three tiny-model runs (plain, no video, debiased) of the train questions (one clip corrupt)."""
    import papermill as pm

    from roadbuddy_utils.answer.batch import InferConfig, run_inference
    from roadbuddy_utils.data.questions import load_items
    from roadbuddy_utils.common.files import REPO

    root = smoke_data / "traffic_buddy_train+public_test"
    items = load_items(root / "train/train.json", root)
    vlm = tiny_vlm("internvl", n_frames=2)
    runs = {"plain": {}, "no_video": {"no_video": True}, "prior": {"debias": "prior", "debias_sample": 2}}
    for name, kw in runs.items():
        run_inference(items, vlm, InferConfig(batch_size=8, limit=16, cache_dir=str(tmp_path / "cache"), **kw),
                      tmp_path / name, progress=False)
    out = tmp_path / "05"
    params = {"predictions": [str(tmp_path / n / "predictions.jsonl") for n in runs], "labels": list(runs),
              "data_json": str(root / "train/train.json"), "videos_root": str(root),
              "cache_dir": str(tmp_path / "cache"), "output_dir": str(out), "n_boot": 200, "gallery_per_theme": 1}
    pm.execute_notebook(str(REPO / "notebooks/05_eval.ipynb"), str(tmp_path / "05_eval.ipynb"), parameters=params,
                        cwd=str(REPO), kernel_name="python3", progress_bar=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m["runs_order"] == list(runs) and len(m["paired"]) == 2 and len(m["summary"]) == 3
    for name, r in m["runs"].items():
        assert r["n"] == 16 and r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert 0.25 <= r["chance"] <= 0.5 and r["meta"]["tiny_random"] and r["by_theme"]
        assert r["latency"]["share_over_budget"] == 0
    assert m["runs"]["no_video"]["meta"]["variant"] == "no_video" and m["runs"]["prior"]["debias_effect"]
    assert m["runs"]["plain"]["debias_effect"] is None and 0 <= m["paired"][0]["p_exact"] <= 1
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("run,model,adapter,frames,scorer,variant,accuracy") and len(summary) == 4
    assert (out / "summary.md").read_text().startswith("| run |")
    for png in ("accuracy", "confusion", "letters", "reliability", "coverage", "error_gallery", "latency"):
        assert (out / f"{png}.png").stat().st_size > 5_000, png


def test_smoke_04_then_03_with_the_adapter(smoke_data, tmp_path):
    """04 trains a few steps (tiny model, one corrupt clip), 03 then evaluates the saved adapter."""
    pub = smoke_data / "traffic_buddy_train+public_test"
    adapter = tmp_path / "04" / "adapter"
    params = {"04_lora_train": {"train_json": str(pub / "train/train.json"), "videos_root": str(pub),
                                "output_dir": str(tmp_path / "04"), "split_file": str(tmp_path / "split.json"),
                                "cache_dir": str(tmp_path / "cache"), "max_steps": 4, "eval_steps": 2,
                                "val_limit": 8, "batch_size": 4, "export_merged": True},
              "03_zero_shot@lora": {"data_json": str(pub / "public_test/public_test.json"), "videos_root": str(pub),
                                    "answers_json": str(smoke_data / "answers/public_test_answers.json"),
                                    "output_dir": str(tmp_path / "03"), "adapter_path": str(adapter),
                                    "cache_dir": str(tmp_path / "cache")}}
    m = run_profile("demo", only=["04_lora_train", "03_zero_shot@lora"], output_root=tmp_path / "outputs",
                    extra_params=params, prepare=False, log=lambda *_: None)
    assert [n["run"] for n in m["notebooks"]] == ["04_lora_train", "03_zero_shot@lora"]
    assert all(n["status"] == "ok" for n in m["notebooks"])
    metrics = json.loads((tmp_path / "04" / "metrics.json").read_text())
    assert {"val_accuracy_before", "val_accuracy_best", "chance", "adapter_path", "history"} <= set(metrics)
    assert metrics["steps"] == 4 and len(metrics["history"]) == 2 and (adapter / "adapter_config.json").exists()
    assert (tmp_path / "04" / "learning_curve.png").exists() and (tmp_path / "04" / "merged" / "config.json").exists()
    run = json.loads((tmp_path / "03" / "run_config.json").read_text())
    assert run["model"]["adapter_path"] == str(adapter)
    assert json.loads((tmp_path / "03" / "metrics.json").read_text())["n"] > 0


def test_01_to_05_on_other_data_with_only_its_paths(demo_small, tmp_path):
    """A user's own data: each notebook run bare (its own defaults) with only the data paths and output folders
    set (plus the run-length knobs a test needs); the split is derived from this data, not the demo's file,
    and 01, 03 (split val) and 04 find the same one."""
    import papermill as pm

    from roadbuddy_utils.common.files import REPO

    work = tmp_path / "work"  # the notebooks' working folder: relative outputs (the derived split) land here
    work.mkdir()
    root = demo_small / "traffic_buddy_train+public_test"
    data = {"data_json": str(root / "train/train.json"), "videos_root": str(root)}
    runs = [("01_explore", data), ("02_frames", data),
            ("03_zero_shot", data | {"split": "val", "n_frames": 2, "cache_dir": None}),
            ("04_lora_train", {"train_json": data["data_json"], "videos_root": str(root), "max_steps": 2,
                               "eval_steps": 2, "val_limit": 4, "batch_size": 2, "cache_dir": None}),
            ("05_eval", {"predictions": [str(tmp_path / "03_zero_shot" / "predictions.jsonl")], "data_json": None,
                         "cache_dir": None, "n_boot": 200})]
    for name, params in runs:
        pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                            parameters=params | {"output_dir": str(tmp_path / name)}, cwd=str(work),
                            kernel_name="python3", progress_bar=False, log_output=False)
    splits = list((work / "outputs" / "splits").glob("*.json"))
    assert len(splits) == 1, splits  # one split, derived from this data, shared by 01, 03 and 04
    split = json.loads(splits[0].read_text())
    preds = read_jsonl(tmp_path / "03_zero_shot" / "predictions.jsonl")
    assert sorted(r["id"] for r in preds) == sorted(split["val_ids"])
    assert json.loads((tmp_path / "04_lora_train" / "metrics.json").read_text())["n_val"] == min(4, len(split["val_ids"]))
    assert json.loads((tmp_path / "05_eval" / "metrics.json").read_text())["runs"]


def test_a_missing_question_file_stops_01_with_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "kaggle" / "input" / "train.json"
    with pytest.raises(NotebookFailed) as e:
        run_profile("demo", only=["01_explore"], output_root=tmp_path / "outputs", prepare=False, log=lambda *_: None,
                    extra_params={"01_explore": {"data_json": str(missing), "output_dir": str(tmp_path / "01")}})
    msg = str(e.value)
    assert "DatasetError" in msg and f"{missing}: file not found. Attach the dataset" in msg and "data_json" in msg
    assert "KeyError" not in msg


def test_smoke_03_with_sign_knowledge(smoke_data, tmp_path):
    """03@knowledge on the demo public test: every line records its glossary codes, run_config the version."""
    from roadbuddy_utils.knowledge.glossary import load

    pub = smoke_data / "traffic_buddy_train+public_test"
    params = {"03_zero_shot@knowledge": {"data_json": str(pub / "public_test/public_test.json"), "videos_root": str(pub),
                                         "answers_json": str(smoke_data / "answers/public_test_answers.json"),
                                         "output_dir": str(tmp_path / "03k"), "cache_dir": str(tmp_path / "cache")}}
    m = run_profile("demo", only=["03_zero_shot@knowledge"], output_root=tmp_path / "outputs", extra_params=params,
                    prepare=False, log=lambda *_: None)
    assert [n["status"] for n in m["notebooks"]] == ["ok"]
    lines = read_jsonl(tmp_path / "03k" / "predictions.jsonl")
    assert lines and all(r["knowledge"] == "glossary" and isinstance(r["knowledge_codes"], list) for r in lines)
    assert any(r["knowledge_codes"] for r in lines)  # the demo asks about speed limits and no-parking signs
    run = json.loads((tmp_path / "03k" / "run_config.json").read_text())
    assert run["knowledge"]["glossary_version"] == load().version and run["knowledge"]["questions_with_notes"] > 0

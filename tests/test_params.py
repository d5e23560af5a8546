"""Each params YAML uses only the parameters its notebook declares; notebooks are saved clean."""
import json
from pathlib import Path

import papermill as pm
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILES = sorted(p.name for p in (REPO / "params").iterdir() if p.is_dir())
REQUIRED = {"01_explore": {"data_json", "videos_root", "output_dir"},
            "02_frames": {"data_json", "videos_root", "output_dir", "frame_mode", "n_frames", "cache_dir"},
            "03_zero_shot": {"data_json", "videos_root", "output_dir", "model", "scoring", "n_frames", "limit", "split",
                             "adapter_path", "time_budget_s", "shard_index", "num_shards", "no_video",
                             "shuffle_choices", "debias", "debias_sample"},
            "05_eval": {"predictions", "labels", "data_json", "videos_root", "answers_json", "cache_dir", "output_dir",
                        "budget_s", "n_boot", "seed"},
            "06_multiview_router_rag": {"multiview_json", "image_root", "output_dir", "models", "routing", "kb_file",
                                        "rag_mode", "kb_topk", "max_images_per_prompt", "only_named_cameras",
                                        "seed", "do_sample", "limit", "allow_leakage"},
            "04_lora_train": {"train_json", "videos_root", "output_dir", "model", "lora_r", "lora_alpha", "lora_dropout",
                              "lr", "weight_decay", "epochs", "max_steps", "resume_from", "trainable", "loss"},
            "07_submit": {"predictions", "test_json", "output_dir"}}


def test_there_are_notebooks_and_profiles():
    assert [n.stem for n in NOTEBOOKS][:2] == ["01_explore", "02_frames"]
    assert {"demo", "kaggle"} <= set(PROFILES)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_declares_required_parameters(nb):
    declared = set(pm.inspect_notebook(str(nb)))
    assert REQUIRED[nb.stem] <= declared


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_params_keys_match_notebook(nb, profile):
    from roadbuddy_utils.report.runner import skipped_notebooks

    if nb.stem in skipped_notebooks(profile, REPO):
        assert skipped_notebooks(profile, REPO)[nb.stem], "a skipped notebook needs its reason"
        return
    path = REPO / "params" / profile / f"{nb.stem}.yaml"
    assert path.exists(), f"{path} missing"
    keys = set(yaml.safe_load(path.read_text()) or {})
    unknown = keys - set(pm.inspect_notebook(str(nb)))
    assert not unknown, f"{path} sets parameters {nb.name} does not declare: {sorted(unknown)}"


def test_params_files_set_each_key_once():
    """YAML keeps the last of two equal keys silently: a file that sets one twice says two things."""

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"sets {twice} more than once")
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    bad = {}
    for path in sorted((REPO / "params").rglob("*.yaml")):
        try:
            yaml.load(path.read_text(encoding="utf-8"), Loader=Strict)
        except ValueError as e:
            bad[str(path.relative_to(REPO))] = str(e)
    assert not bad, bad


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_notebooks_are_clean_and_hold_no_logic(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    src = "\n".join("".join(c["source"]) for c in code)
    assert "\ndef " not in "\n" + src and "\nclass " not in "\n" + src, "logic belongs in roadbuddy_utils"
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")


@pytest.mark.parametrize("profile", PROFILES)
def test_variant_params_match_their_notebook(profile):
    """``NN_name@variant.yaml`` files are extra runs of NN_name: same parameter names."""
    from roadbuddy_utils.report.runner import list_runs

    runs = list_runs(profile, REPO)
    assert len({r[2] for r in runs}) == len(runs)
    for nb, pfile, run in runs:
        keys = set(yaml.safe_load(pfile.read_text()) or {})
        unknown = keys - set(pm.inspect_notebook(str(nb)))
        assert not unknown, f"{pfile} sets parameters {nb.name} does not declare: {sorted(unknown)}"


def test_readme_file_tree_lists_every_tracked_file():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tree = readme[readme.index("## Files"):]
    listed = {line.split()[0] for line in tree.splitlines() if line and not line.startswith(("#", "`"))}
    missing = [f for f in tracked if f not in listed and not any(f.startswith(d) for d in listed if d.endswith("/"))]
    assert not missing, f"README file tree lacks: {missing}"


def _defaults(nb_name: str) -> dict:
    """A notebook's parameter defaults as Python values (papermill reads them as source text)."""
    import ast

    return {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(REPO / "notebooks" / nb_name)).items()}


def test_04_defaults_are_the_demo_recipe_that_learns():
    """04 run bare (no YAML) trains with the recipe benchmarks/learning.py measured: params/demo's values."""
    defaults = _defaults("04_lora_train.ipynb")
    demo = yaml.safe_load((REPO / "params/demo/04_lora_train.yaml").read_text())
    differ = {k: (defaults[k], v) for k, v in demo.items() if defaults[k] != v and not (
        isinstance(v, list) and list(defaults[k]) == v)}
    assert not differ, f"notebook default vs params/demo/04_lora_train.yaml: {differ}"


def test_kaggle_04_sets_every_value_where_the_demo_recipe_differs_from_the_real_one():
    """The notebook's defaults are the CPU recipe; none of them may leak into the real run unnoticed."""
    from dataclasses import fields

    from roadbuddy_utils.train.finetune import TrainConfig

    real = {f.name: f.default for f in fields(TrainConfig) if not callable(f.default_factory)}
    real["trainable"] = ("lora",)
    defaults = _defaults("04_lora_train.ipynb")
    kaggle = yaml.safe_load((REPO / "params/kaggle/04_lora_train.yaml").read_text())
    paths = {"train_json", "videos_root", "output_dir", "split_file", "cache_dir", "model"}
    paths |= {"hardware", "dtype", "quantization", "bf16", "fp16", "optim", "gradient_checkpointing"}  # the preset's
    leaks = [k for k, v in defaults.items() if k in real and k not in paths and k not in kaggle
             and (tuple(v) if isinstance(v, list) else v) != real[k]]
    assert not leaks, f"params/kaggle/04_lora_train.yaml must set {leaks} (the notebook default is the demo value)"


def test_readme_file_tree_names_only_existing_files():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tree = readme[readme.index("## Files"):]
    block = tree[tree.index("```") + 3:]
    block = block[:block.index("```")]
    listed = [line.split()[0] for line in block.splitlines() if line.strip()]
    gone = [p for p in listed if not (REPO / p.rstrip("/")).exists()]
    assert listed and not gone, f"README file tree names files that do not exist: {gone}"

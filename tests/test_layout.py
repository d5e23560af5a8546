"""The package reads as its parts: which module may import which, and none grows past about 600 lines."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "roadbuddy_utils"
MODULES = sorted(p for p in PKG.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))

# Reports and orchestration: nothing below them may import them.
REPORTING = {"evaluate", "plots", "results", "report", "runner", "explore", "selection_run", "selection_tune"}
# Answering and training loops (single clip) and the multi-camera loop.
LOOPS = {"infer", "train", "multiview.run"}
# data, video, models: the bottom layers.
LOWER = {"data", "video_io", "frames", "demo_data", "themes", "prompts", "extract", "tiny", "models", "hardware",
         "choices", "util", "metrics", "plan", "plan_inputs", "demo_scene", "selection"}


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PKG).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """Package modules imported by ``path`` (relative imports resolved, at any depth in the file)."""
    here = _name(path).split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("roadbuddy_utils"):
                mod = node.module[len("roadbuddy_utils."):] if node.module != "roadbuddy_utils" else ""
            else:
                continue
            names = [a.name for a in node.names]
            for n in names:  # "from . import evaluate" / "from .multiview import run"
                cand = f"{mod}.{n}" if mod else n
                if (PKG / (cand.replace(".", "/") + ".py")).exists():
                    out.add(cand)
            if mod and ((PKG / (mod.replace(".", "/") + ".py")).exists()):
                out.add(mod)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("roadbuddy_utils."):
                    out.add(a.name[len("roadbuddy_utils."):])
    return out


GRAPH = {_name(p): _imports(p) for p in MODULES}


def test_import_graph_is_read():
    assert "hardware" in GRAPH["infer"] and "choices" in GRAPH["infer"]
    assert "multiview.data" in GRAPH["multiview.router"]


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_lower_layers_never_import_higher_ones(mod):
    bad = set()
    if mod in LOWER or mod.startswith("multiview.") and mod not in {"multiview.run", "multiview.demo"}:
        bad = GRAPH[mod] & (REPORTING | LOOPS)
    if mod in LOOPS:
        bad = GRAPH[mod] & REPORTING
    assert not bad, f"{mod} imports {sorted(bad)}"


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_neither_pipeline_imports_the_others_loop(mod):
    if mod.startswith("multiview."):
        assert not GRAPH[mod] & {"infer", "train"}, f"{mod} imports the single-clip loop"
    else:
        assert not {m for m in GRAPH[mod] if m.startswith("multiview.")}, f"{mod} imports the multi-camera pipeline"


def test_no_module_over_about_600_lines():
    long = {_name(p): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 620}
    assert not long, long


def test_no_shims_of_old_module_names():
    old = ["mv_run.py", "mv_score.py", "mv_demo.py", "rag.py", "multiview.py", "fixtures"]
    assert not [o for o in old if (PKG / o).exists()]


def test_every_relative_import_names_a_module_that_exists():
    """A moved module leaves no import pointing at its old neighbours (lazy imports inside functions too)."""
    broken = []
    for path in MODULES + [PKG / "__main__.py"]:
        here = _name(path).split(".")[:-1] if path.name != "__main__.py" else []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                mod = base + (node.module.split(".") if node.module else [])
                target = PKG.joinpath(*mod) if mod else PKG
                if not (target.with_suffix(".py").exists() or (target / "__init__.py").exists()):
                    broken.append(f"{_name(path)}:{node.lineno} from {'.' * node.level}{node.module or ''}")
    assert not broken, broken

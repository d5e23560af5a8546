"""The package reads as its parts: which module may import which, and none grows past about 600 lines."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "roadbuddy_utils"
MODULES = sorted(p for p in PKG.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))

# One subpackage per stage, in pipeline order. A package may import its own and lower levels only; packages on
# one level do not import each other (answering and training are siblings). multiview (the multi-camera
# pipeline) sits beside the single-clip stages: it may use the levels up to selection, and nothing below
# reports uses it.
LEVELS = {"common": 0, "machine": 0, "video": 1, "data": 2, "demo": 3, "knowledge": 3, "models": 4, "selection": 5, "engine": 5,
          "answer": 6, "train": 6, "evaluate": 7, "report": 8}
MULTIVIEW_MAY_USE = {"common", "machine", "video", "data", "models", "selection", "engine", "multiview"}
OLD_FLAT_MODULES = ["data", "choices", "themes", "frames", "video_io", "demo_data", "demo_scene", "models", "prompts",
                    "extract", "tiny", "random_init", "plan", "plan_inputs", "hardware", "selection_run", "selection_tune",
                    "infer", "submit", "metrics", "train", "qlora", "evaluate", "results", "plots", "explore", "report",
                    "runner", "util"]


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


def _pkg(mod: str) -> str:
    return mod.split(".")[0]


def test_import_graph_is_read():
    assert "machine.hardware" in GRAPH["answer.batch"] and "data.choices" in GRAPH["answer.batch"]
    assert "multiview.data" in GRAPH["multiview.router"]
    assert "models.vlm" in GRAPH["models.random_init"]
    assert set(LEVELS) | {"multiview"} == {_pkg(m) for m in GRAPH}, "a package without a level"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's first appearance in a depth-first walk (enough to name each circle)."""
    found, state, stack = [], {}, []

    def walk(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                walk(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            walk(m)
    return found


def test_the_cycle_finder_names_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    """Imports inside functions count: a lazy import only hides a circle."""
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_lower_packages_never_import_higher_ones(mod):
    me = _pkg(mod)
    if me == "multiview":
        bad = {m for m in GRAPH[mod] if _pkg(m) not in MULTIVIEW_MAY_USE}
    else:
        bad = {m for m in GRAPH[mod] if _pkg(m) != me and (_pkg(m) == "multiview" and LEVELS[me] < LEVELS["report"]
                                                            or _pkg(m) != "multiview" and LEVELS[_pkg(m)] >= LEVELS[me])}
    assert not bad, f"{mod} (level {LEVELS.get(me, 'multiview')}) imports {sorted(bad)}"


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_neither_pipeline_imports_the_others_loop(mod):
    if mod.startswith("multiview."):
        assert not {m for m in GRAPH[mod] if _pkg(m) in ("answer", "train")}, f"{mod} imports the single-clip loop"
    else:
        assert "multiview.run" not in GRAPH[mod], f"{mod} imports the multi-camera loop"


def test_no_module_over_about_600_lines():
    long = {_name(p): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 620}
    assert not long, long


def test_no_shims_of_old_module_names():
    """The stage packages replaced the flat modules: no module of the old names is left beside them, and no
    package re-exports its modules' names (one name per thing)."""
    old = ["mv_run.py", "mv_score.py", "mv_demo.py", "rag.py", "multiview.py", "fixtures"]
    old += [f"{m}.py" for m in OLD_FLAT_MODULES]
    assert not [o for o in old if (PKG / o).exists()]
    assert sorted(p.name for p in PKG.glob("*.py")) == ["__init__.py", "__main__.py"]
    for init in PKG.rglob("__init__.py"):  # no module-level import: nothing is re-exported under a second name
        body = ast.parse(init.read_text(encoding="utf-8")).body
        assert not [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))], init


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

"""Run the notebooks of a profile in order with papermill, and keep a manifest of the run.

    python -m roadbuddy_utils run --profile demo            # every notebook, tiny models, CPU
    python -m roadbuddy_utils run --profile kaggle --only 02,03

For each ``notebooks/NN_name.ipynb`` with a ``params/<profile>/NN_name.yaml``: execute it with those
parameters (working directory: the repository root, so relative paths in the YAML work), write
the executed notebook and an HTML copy to ``outputs/<profile>/``, and record parameters,
durations, package versions and the git commit in ``outputs/<profile>/manifest.json``. The run
stops at the first failing notebook and shows the cell that failed. ``outputs/<profile>/index.html``
(report/index.py), rewritten after every notebook, links every run's report, numbers and figures.

``params/<profile>/_profile.yaml`` may hold settings for the whole profile; ``demo_data`` there makes
the runner generate the demo dataset first (once); ``skip`` (notebook stem: why) leaves notebooks out of
a profile that has no use for them (the brief-event profile has no multi-camera data or test submission).

A notebook can run more than once in a profile: ``params/<profile>/NN_name@variant.yaml`` is one
more run of ``NN_name.ipynb`` (an ablation, or 03 evaluating the adapter 04 trained), executed to
``outputs/<profile>/NN_name@variant.ipynb``. By default a notebook's variants follow it
(alphabetically); ``order:`` in ``_profile.yaml`` (a list of run names) sets the order explicitly.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..common.files import REPO
from . import index

PACKAGES = ["torch", "torchvision", "transformers", "tokenizers", "peft", "accelerate", "decord", "av",
            "opencv-python-headless", "papermill", "numpy", "scikit-learn", "matplotlib", "pandas"]


class NotebookFailed(RuntimeError):
    pass


def list_notebooks(repo: Path = REPO) -> list[Path]:
    return sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def params_path(notebook: Path, profile: str, repo: Path = REPO) -> Path:
    return repo / "params" / profile / f"{notebook.stem}.yaml"


def profile_settings(profile: str, repo: Path = REPO) -> dict:
    """``params/<profile>/_profile.yaml`` (empty when the profile has none)."""
    p = repo / "params" / profile / "_profile.yaml"
    return load_params(p) if p.exists() else {}


def skipped_notebooks(profile: str, repo: Path = REPO) -> dict[str, str]:
    """Notebooks a profile leaves out on purpose (``skip:`` in _profile.yaml: stem -> why)."""
    skip = profile_settings(profile, repo).get("skip") or {}
    stems = {nb.stem for nb in list_notebooks(repo)}
    unknown = sorted(set(skip) - stems)
    if unknown:
        raise SystemExit(f"{repo / 'params' / profile / '_profile.yaml'}: skip names unknown notebooks {unknown}")
    return dict(skip)


def list_runs(profile: str, repo: Path = REPO) -> list[tuple[Path, Path, str]]:
    """(notebook, params file, run name) in execution order; every notebook needs its params file,
    except those the profile's ``skip:`` leaves out (with the reason)."""
    pdir = repo / "params" / profile
    skip = skipped_notebooks(profile, repo)
    runs = []
    for nb in list_notebooks(repo):
        if nb.stem in skip:
            continue
        main = params_path(nb, profile, repo)
        if not main.exists():
            raise SystemExit(f"{nb.name}: no parameters file {main} for profile {profile!r}")
        runs.append((nb, main, nb.stem))
        runs += [(nb, p, p.stem) for p in sorted(pdir.glob(f"{nb.stem}@*.yaml"))]
    order = profile_settings(profile, repo).get("order")
    if order:
        by_name = {r[2]: r for r in runs}
        unknown = [n for n in order if n not in by_name]
        missing = [n for n in by_name if n not in order]
        if unknown or missing:
            raise SystemExit(f"{pdir / '_profile.yaml'}: order names unknown runs {unknown} / leaves out {missing}")
        runs = [by_name[n] for n in order]
    return runs


def load_params(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def git_commit(repo: Path = REPO) -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def export_html(ipynb: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    out = ipynb.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def prepare_profile(profile: str, repo: Path = REPO) -> dict:
    """Profile-wide settings; generates the demo dataset when the profile asks for it."""
    settings = profile_settings(profile, repo)
    demo = settings.get("demo_data")
    if demo:
        from ..demo.dataset import DemoConfig, ensure

        out = Path(demo.pop("out_dir"))
        ensure(out if out.is_absolute() else repo / out, DemoConfig(**demo))
    return settings


def run_profile(profile: str, only: list[str] | None = None, repo: Path = REPO, output_root: Path | None = None,
                extra_params: dict | None = None, prepare: bool = True, log=print) -> dict:
    """Execute the profile's notebooks in order; returns the manifest. Raises NotebookFailed."""
    import papermill as pm

    if not (repo / "params" / profile).is_dir():
        raise SystemExit(f"unknown profile {profile!r}: no folder {repo / 'params' / profile}")
    out_dir = (output_root or repo / "outputs") / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = list_runs(profile, repo)
    if only:
        runs = [r for r in runs if r[0].name[:2] in only or r[2] in only]  # "03": every 03 run
        if not runs:
            raise SystemExit(f"--only {','.join(only)} matches no notebook in {repo / 'notebooks'}")
    t_prep = time.perf_counter()
    if prepare:
        prepare_profile(profile, repo)
    manifest_path = out_dir / "manifest.json"
    manifest = {"profile": profile, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "git_commit": git_commit(repo), "platform": platform.platform(), "versions": package_versions(),
                "machine": index.machine_info(), "prepare_s": round(time.perf_counter() - t_prep, 1),
                "planned": [r[2] for r in runs], "notebooks": []}
    write_index(out_dir, manifest, repo, log)
    for nb, pfile, run in runs:
        params = load_params(pfile) | (extra_params or {}).get(run, {})
        out_nb = out_dir / f"{run}.ipynb"
        entry = {"notebook": nb.name, "run": run, "parameters": params, "output": str(out_nb.relative_to(repo))
                 if out_nb.is_relative_to(repo) else str(out_nb), "status": "running",
                 "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        manifest["notebooks"].append(entry)
        log(f"[{profile}] {run} ...")
        t0 = time.perf_counter()
        try:
            # The kernel's own log (e.g. "Kernel is running over TCP without encryption", once per
            # notebook) is no news to a user: only its errors reach the terminal.
            pm.execute_notebook(str(nb), str(out_nb), parameters=params, cwd=str(repo), kernel_name="python3",
                                progress_bar=False, log_output=False,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
            entry["status"] = "ok"
        except pm.PapermillExecutionError as e:
            entry["status"] = "failed"
            entry["error"] = f"cell {e.exec_count}: {e.ename}: {e.evalue}"
            entry["traceback"] = e.traceback[-5:] if e.traceback else []
        except BaseException as e:  # a dead kernel, Ctrl-C: the manifest and index must not say "running"
            entry["status"], entry["error"] = "interrupted", f"{type(e).__name__}: {e}"
            raise
        finally:
            entry["duration_s"] = round(time.perf_counter() - t0, 1)
            if out_nb.exists():
                try:
                    entry["html"] = str(export_html(out_nb).name)
                except Exception as ex:  # noqa: BLE001 - a failed export must not hide the run's result
                    entry["html_error"] = str(ex)
            manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str))
            write_index(out_dir, manifest, repo, log)  # after every notebook: a killed run keeps a current index
        log(f"[{profile}] {run} {entry['status']} in {entry['duration_s']} s")
        if entry["status"] != "ok":
            import re

            tb = "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", t) for t in entry["traceback"])
            raise NotebookFailed(f"{run} ({nb.name}) failed ({entry['error']}); executed notebook: {out_nb}\n{tb}")
    manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str))
    write_index(out_dir, manifest, repo, log)
    return manifest


def write_index(out_dir: Path, manifest: dict, repo: Path = REPO, log=print) -> Path | None:
    """``report.write_index``, never failing the run: the index is a view of the outputs, not one of them."""
    try:
        return index.write_index(out_dir, manifest, repo)
    except Exception as e:  # noqa: BLE001
        log(f"warning: could not write {out_dir / 'index.html'}: {type(e).__name__}: {e}")
        return None


def main_run(profile: str, only: str | None) -> int:
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        m = run_profile(profile, only.split(",") if only else None)
    except NotebookFailed as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        print(f"open outputs/{profile}/index.html", file=sys.stderr)
        return 1
    total = sum(n["duration_s"] for n in m["notebooks"])
    print(f"done: {len(m['notebooks'])} notebook(s) in {total:.0f} s; outputs in outputs/{profile}/")
    print(f"open outputs/{profile}/index.html")
    return 0

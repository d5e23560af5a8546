"""The front door of a profile's outputs: ``outputs/<profile>/index.html``, one row per run.

    python -m roadbuddy_utils.report.index outputs/demo        # rebuild the index from outputs/demo/manifest.json
    write_index("outputs/demo", manifest)                # what the runner does after every notebook

The page shows the profile, git commit, dates, package versions and the machine, then every run in
execution order: status (ok / failed / interrupted / not run), duration, links to its executed
notebook (HTML), and its headline numbers where it has them (01 questions and videos, 02 decoded
videos, 03 accuracy with a 95 % interval resampled by video beside chance, 04 validation accuracy
before -> best, 05 the summary table, 06 subtask counts and the offline score, 07 the submission
check), then each run's figures as thumbnails linking to the full images.

The page's markup is one Jinja2 template beside this file (``index.html.j2``, autoescaping on): its macros
make the small parts (chips of label and value, inner tables, links, a "-" with its reason), the rest is the
page. This module only reads the products and hands the template text and numbers.

The folder must work when zipped and opened anywhere, and in any browser: only relative links, no
JavaScript, no external CSS or fonts, every text escaped. Headlines are read defensively: a missing,
stale (older than the run) or malformed product shows "-" (hover for the reason), never a broken page.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from ..common.files import REPO

TEMPLATE = "index.html.j2"
MAX_FIGURES = 40  # per run: a run writing hundreds of images must not make the page unusable
DASH = "-"


class Unavailable(Exception):
    """A headline cannot be shown (file missing, stale or malformed); the message says why."""


_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=True)


def _template():
    return _ENV.get_template(TEMPLATE)


def _part(name: str, *args) -> Markup:
    """One of the template's macros (a chip row, an inner table, a link, ...) as markup."""
    return getattr(_template().module, name)(*args)


# ----------------------------------------------------------------------------------------------
# The machine


def machine_here() -> dict:
    """``hardware.describe()`` of this process: OS environment, CPU, RAM, the GPUs torch sees, library versions."""
    from ..machine import hardware

    return hardware.describe()


def machine_info(timeout_s: float = 120) -> dict:
    """``machine_here()`` run in a child process: the runner is the parent of every notebook kernel
    and must not initialise CUDA itself (reading GPU memory opens a context on each GPU, which would
    hold memory there for the whole run). A failed query is reported in the result, never raised."""
    code = "import json; from roadbuddy_utils.report.index import machine_here; print(json.dumps(machine_here(), default=str))"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env)
        if r.returncode == 0:
            return json.loads(r.stdout.strip().splitlines()[-1])
        reason = (r.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        reason = f"{type(e).__name__}: {e}"
    return {"cores": os.cpu_count(), "gpus": f"unknown (machine query failed: {reason})"}


# ----------------------------------------------------------------------------------------------
# Reading a run's products


def _resolve(p, repo: Path) -> Path:
    """A path parameter as the notebook saw it: relative ones are relative to the repository (the
    runner executes every notebook there)."""
    p = Path(p)
    return p if p.is_absolute() else repo / p


def _fresh(path: Path, since: float | None) -> Path:
    """``path`` if it exists and was written by this run (a file older than the run's start belongs to an
    earlier run: showing its numbers next to a failed run would be wrong)."""
    if not path.is_file():
        raise Unavailable(f"{path.name} not found")
    if since is not None and path.stat().st_mtime < since:
        raise Unavailable(f"{path.name} is older than this run (left from an earlier run)")
    return path


def _json(path: Path, since: float | None) -> dict:
    try:
        data = json.loads(_fresh(path, since).read_text(encoding="utf-8"))
    except ValueError as e:
        raise Unavailable(f"{path.name}: malformed JSON ({e})") from None
    if not isinstance(data, dict):
        raise Unavailable(f"{path.name}: a JSON object was expected, got {type(data).__name__}")
    return data


def _num(x) -> str:
    """A value for the page: floats to 3 decimals, "-" for none or NaN, anything else as text."""
    if x is None or isinstance(x, float) and not math.isfinite(x):
        return DASH
    return format(x, ".3f") if isinstance(x, float) else str(x)


def _pairs(pairs: list[tuple[str, object]]) -> Markup:
    """``label value`` chips; a value is text (escaped by the template) or a macro's markup."""
    return _part("pairs", pairs)


def _table(rows: list[dict], columns: list[str]) -> Markup:
    return _part("table", [[_num(r.get(c)) for c in columns] for r in rows], columns)


def _interval(acc, lo, hi) -> str:
    return f"{_num(acc)} [{_num(lo)}, {_num(hi)}]"


def headline_explore(ctx: dict) -> str:
    s = _json(ctx["run_dir"] / "explore_summary.json", ctx["since"])
    summary = s.get("summary") or {}
    return _pairs([("questions", _num(summary.get("questions"))), ("videos", _num(summary.get("videos"))),
                   ("with answers", _num(summary.get("with_answers"))),
                   ("missing videos", _num(len(summary.get("missing_videos") or []))),
                   ("problems", _num(len(s.get("problems") or [])))])


def headline_frames(ctx: dict) -> str:
    path = _fresh(ctx["run_dir"] / "frames_index.jsonl", ctx["since"])
    try:
        records = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    except ValueError as e:
        raise Unavailable(f"{path.name}: malformed line ({e})") from None
    pairs = [("videos", _num(len(records))), ("failed", _num(sum(bool(r.get("error")) for r in records)))]
    sel = ctx["run_dir"] / "selection_metrics.json"
    if sel.is_file():  # frame_mode select: support-window hit@4 per selector on the validation side
        m = _json(sel, ctx["since"])
        hits = {k: (v or {}).get("4") for k, v in (m.get("hit_at_k") or {}).items() if k != "learned"}
        pairs += [("validation n", _num(m.get("n")))] + [(f"hit@4 {k}", _num(v)) for k, v in hits.items()]
    return _pairs(pairs)


def headline_zero_shot(ctx: dict) -> str:
    """n, accuracy with its 95 % interval resampled by video (from predictions.jsonl), chance, errors."""
    from ..evaluate.compare import bootstrap_ci
    from ..evaluate.results import read_predictions, run_meta

    m = _json(ctx["run_dir"] / "metrics.json", ctx["since"])
    pred = ctx["run_dir"] / "predictions.jsonl"
    acc = _num(m.get("accuracy"))
    if m.get("n"):
        try:
            acc = _interval(*bootstrap_ci(read_predictions(_fresh(pred, ctx["since"])), n_boot=2000, seed=0))
        except (Unavailable, ValueError, KeyError) as e:  # numbers of metrics.json still stand
            acc = _part("with_note", acc, "(no interval)", str(e))
    meta = run_meta(pred)
    pairs = [("n", _num(m.get("n"))), ("accuracy [95 % CI by video]", acc if m.get("n") else "no gold answers"),
             ("chance", _num(m.get("chance"))), ("errors", _num(m.get("n_errors")))]
    if m.get("n_text_only"):
        pairs.append(("text only", _num(m["n_text_only"])))
    if meta.get("variant") and meta["variant"] != "plain":
        pairs.append(("variant", _num(meta["variant"])))
    if meta.get("adapter"):
        pairs.append(("adapter", "yes"))
    return _pairs(pairs)


def headline_train(ctx: dict) -> str:
    m = _json(ctx["run_dir"] / "metrics.json", ctx["since"])
    return _pairs([("val accuracy", _part("arrow", _num(m.get('val_accuracy_before')), _num(m.get('val_accuracy_best')))),
                   ("chance", _num(m.get("chance"))), ("steps", _num(m.get("steps"))),
                   ("train / val questions", f"{_num(m.get('n_train'))} / {_num(m.get('n_val'))}"),
                   ("training time", _duration(m.get("train_runtime_s")))]
                  + ([("validation frames", f"{vf.get('selector')}, hit@{_num(vf.get('k'))} {_num(vf.get('hit_at_k'))}")]
                     if (vf := m.get("val_frames") or {}).get("frame_mode") == "select" else []))


def headline_eval(ctx: dict) -> str:
    m = _json(ctx["run_dir"] / "metrics.json", ctx["since"])
    rows = m.get("summary")
    if not isinstance(rows, list) or not rows:
        raise Unavailable("metrics.json has no 'summary' records")
    base = m.get("baselines") or {}
    md = ctx["run_dir"] / "summary.md"
    pairs = [("majority letter", _num(base.get("majority_letter"))), ("chance", _num(base.get("chance")))]
    if md.is_file() and md.stat().st_mtime >= (ctx["since"] or 0):
        pairs.append(("full table", _link(md, ctx["out_dir"], "summary.md")))
    return _table(rows, ["run", "variant", "scorer", "n", "accuracy", "ci_low", "ci_high", "chance"]) + _pairs(pairs)


def headline_multiview(ctx: dict) -> str:
    """06: subtask counts and models; where gold answers exist, the official formula's phase score (mv-score's
    ``official`` record: interval by scene, the LLM term, the language-metrics implementation), else the older
    offline score."""
    m = _json(ctx["run_dir"] / "metrics.json", ctx["since"])
    score, off = m.get("score") or {}, m.get("official") or {}
    per, subs = score.get("per_subtask") or {}, off.get("subtasks") or {}
    rows = [r | {"score": (subs.get(r.get("subtask")) or {}).get("score", (per.get(r.get("subtask")) or {}).get("score"))}
            for r in m.get("subtask_counts") or []]
    pairs = []
    if off.get("n_scored"):
        ps, ow = off["phase_score"], off["phase_score"]["official_weights"]
        ci = lambda d: f" [{_num(d['ci'][0])}, {_num(d['ci'][1])}]" if d.get("ci") and d["ci"][0] is not None else ""
        judge = off.get("judge") or {}
        pairs += [(f"phase {ps['phase']} formula", f"{_num(ps['value'])}{ci(ps)} (95 % interval by scene)"),
                  ("with the official counts", f"{_num(ow['value'])}{ci(ow)}"),
                  ("LLM term", ps.get("llm")),
                  ("language metrics", (off.get("metrics_impl") or {}).get("label"))]
        if judge:
            pairs.append((judge.get("label"), f"{_num(judge.get('n_no_score'))} of {_num(judge.get('n_items'))} replies "
                                               f"without a score, {_num(judge.get('n_errors'))} errors"))
    else:
        pairs += [("offline score", _num(score.get("overall"))),
                  ("with official weights", _num(m.get("overall_official_weights")))]
    pairs += [("scored", f"{_num(off.get('n_scored', score.get('n_scored')))} of {_num(m.get('n_lines'))}"),
              ("errors", _num(m.get("n_errors"))),
              ("fallbacks", _num((m.get("routing") or {}).get("n_fallbacks")))]
    return _table(rows, ["subtask", "n", "official_phase1", "model", "score"]) + _pairs(pairs)


def headline_submit(ctx: dict) -> str:
    """The submission re-checked against the test file (every id once, each letter among its choices)."""
    from ..answer.submit import check_submission

    path = _fresh(ctx["run_dir"] / "submission.csv", ctx["since"])
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"id", "answer"} <= set(rows[0]):
        raise Unavailable(f"{path.name}: header must be id,answer")
    ids = [r["id"] for r in rows]
    problems = [f"id={i}: {ids.count(i)} rows" for i in sorted(set(ids)) if ids.count(i) > 1]
    test_json = ctx["params"].get("test_json")
    if test_json:
        root = ctx["params"].get("videos_root")
        problems += check_submission({r["id"]: {"pred": r["answer"]} for r in rows}, _resolve(test_json, ctx["repo"]),
                                     _resolve(root, ctx["repo"]) if root else None)
    check = ("ok" if not problems else f"{len(problems)} problem(s): {problems[0]}") if test_json \
        else "not re-checked (no test_json parameter)"
    return _pairs([("rows", _num(len(rows))), ("check", check),
                   ("file", _link(path, ctx["out_dir"], f"{path.parent.name}/{path.name}"))])


# notebook number -> its headline (runs of one notebook share it: 03 and its variants)
HEADLINES: dict[str, Callable[[dict], str]] = {"01": headline_explore, "02": headline_frames, "03": headline_zero_shot,
                                               "04": headline_train, "05": headline_eval, "06": headline_multiview,
                                               "07": headline_submit}


def headline(entry: dict, out_dir: Path, repo: Path) -> str:
    """The run's headline numbers as HTML, or "-" with the reason on hover; never raises."""
    fn = HEADLINES.get(str(entry.get("notebook", ""))[:2])
    params = entry.get("parameters") or {}
    if fn is None or entry.get("status") in (None, "not run"):
        return DASH
    if not params.get("output_dir"):
        return _why("the run has no output_dir parameter")
    ctx = {"run_dir": _resolve(params["output_dir"], repo), "params": params, "repo": repo, "out_dir": out_dir,
           "since": _started(entry)}
    try:
        return fn(ctx)
    except Unavailable as e:
        return _why(str(e))
    except Exception as e:  # noqa: BLE001 - a malformed product must never break the page
        # the page may travel as a zip: the reason names files relative to the repository
        return _why(f"{type(e).__name__}: {e}".replace(str(repo) + os.sep, ""))


def _why(reason: str) -> Markup:
    return _part("why", reason, DASH)


def _started(entry: dict) -> float | None:
    """The run's start as a timestamp, 2 s early: zip archives keep file times to 2 s."""
    try:
        return datetime.fromisoformat(entry["started"]).timestamp() - 2
    except (KeyError, TypeError, ValueError):
        return None


def figures(entry: dict, repo: Path) -> list[Path]:
    """Every *.png under the run's output_dir written by this run, sorted by path."""
    od = (entry.get("parameters") or {}).get("output_dir")
    if not od or entry.get("status") in (None, "not run"):
        return []
    run_dir, since = _resolve(od, repo), _started(entry)
    if not run_dir.is_dir():
        return []
    return [p for p in sorted(run_dir.rglob("*.png")) if p.is_file() and (since is None or p.stat().st_mtime >= since)]


# ----------------------------------------------------------------------------------------------
# The page


def _href(path: Path, out_dir: Path) -> str:
    """A URL relative to the index (relpath also for folders outside it), percent-encoded (the template escapes)."""
    return quote(os.path.relpath(path, out_dir).replace(os.sep, "/"), safe="/@-_.~")


def _link(path: Path, out_dir: Path, text: str) -> Markup:
    return _part("link", _href(path, out_dir), text)


def _duration(s) -> str:
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s):
        return DASH
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def machine_rows(machine) -> list[tuple[str, str]]:
    """(label, text) lines for the header from ``hardware.describe()``'s dict; other keys are shown as they are."""
    if not isinstance(machine, dict):
        return [("machine", _text(machine) if machine else "not recorded")]
    m = dict(machine)
    rows = []
    if any(k in m for k in ("cpu", "cores", "ram_total_gib")):
        cpu = [str(m.pop("cpu", "") or "CPU"), f"{m.pop('cores', DASH)} cores"]
        if m.get("ram_total_gib") is not None:
            cpu.append(f"{m.pop('ram_total_gib')} GiB RAM ({m.pop('ram_available_gib', DASH)} GiB available)")
        rows.append(("machine", ", ".join(cpu) + (f" · {m.pop('env')}" if m.get("env") else "")))
    gpus = m.pop("gpus", None)
    if isinstance(gpus, list):
        gpus = "; ".join(f"{g.get('name', 'GPU')} ({g.get('total_gib', DASH)} GiB, compute capability "
                         f"{'.'.join(map(str, g.get('capability') or [])) or DASH})" if isinstance(g, dict) else _text(g)
                         for g in gpus) or "none (CPU only)"
    rows.append(("GPUs", _text(gpus)))
    for k in ("python", "transformers", "os"):  # already in the packages / platform lines
        m.pop(k, None)
    libs = {k: m.pop(k) for k in ("torch", "cuda", "bitsandbytes", "flash_attn") if k in m}
    if libs:
        rows.append(("GPU libraries", " · ".join(f"{k} {v or 'none'}" for k, v in libs.items())))
    return rows + [(k.replace("_", " "), _text(v)) for k, v in m.items() if v not in (None, [], {}, "")]


def _text(v) -> str:
    """Any JSON value as short readable text (machine descriptions have nested GPU lists)."""
    if isinstance(v, dict):
        return ", ".join(f"{k} {_text(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "; ".join(_text(x) for x in v) if v else "none"
    return DASH if v is None else str(v)


def rows_of(manifest: dict, planned: list[str] | None = None) -> list[dict]:
    """The manifest's runs in execution order, then the planned runs it never reached ("not run")."""
    entries = [e for e in manifest.get("notebooks") or [] if isinstance(e, dict)]
    done = {e.get("run") for e in entries}
    planned = planned if planned is not None else manifest.get("planned") or []
    return entries + [{"run": r, "status": "not run"} for r in planned if r not in done]


def _run_row(e: dict, out_dir: Path, repo: Path) -> dict:
    """One row of the runs table: status, duration, links (report, notebook, this run's metrics.json), headline."""
    status = e.get("status") or "unknown"
    links = []
    for key, label in (("html", "report"), ("output", "notebook")):
        if e.get(key):
            p = out_dir / e[key] if key == "html" else _resolve(e[key], repo)
            if p.is_file():
                links.append((_href(p, out_dir), label))
    od = (e.get("parameters") or {}).get("output_dir")
    metrics = _resolve(od, repo) / "metrics.json" if od else None
    if status != "not run" and metrics is not None and metrics.is_file() and \
            metrics.stat().st_mtime >= (_started(e) or 0):  # never link an earlier run's numbers
        links.append((_href(metrics, out_dir), "metrics.json"))
    return {"run": str(e.get("run")), "status": status, "status_class": status.replace(" ", "-"),
            "duration": _duration(e.get("duration_s")) if status != "not run" else DASH, "links": links,
            "headline": headline(e, out_dir, repo), "error": str(e["error"]) if e.get("error") else None}


def _figure_section(e: dict, out_dir: Path, repo: Path) -> dict | None:
    figs = figures(e, repo)
    if not figs:
        return None
    run_dir = _resolve(e["parameters"]["output_dir"], repo)
    cards = [(_href(p, out_dir), p.relative_to(run_dir).as_posix()) for p in figs[:MAX_FIGURES]]
    return {"run": str(e.get("run")), "cards": cards, "more": max(0, len(figs) - MAX_FIGURES)}


def render(out_dir: Path, manifest: dict, repo: Path = REPO, planned: list[str] | None = None) -> str:
    """The index page for ``manifest`` as HTML text (links relative to ``out_dir``)."""
    out_dir = Path(out_dir)
    rows = rows_of(manifest, planned)
    total = sum(e.get("duration_s") or 0 for e in rows if isinstance(e.get("duration_s"), (int, float)))
    counts = {s: sum(e.get("status") == s for e in rows) for s in ("ok", "failed", "interrupted", "running", "not run")}
    versions = manifest.get("versions") or {}
    meta = [("git commit", manifest.get("git_commit")), ("started", manifest.get("started")),
            ("finished", manifest.get("finished") or "not finished"),
            ("runs", ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"),
            ("time in notebooks", _duration(total)), ("data preparation", _duration(manifest.get("prepare_s"))),
            ("platform", manifest.get("platform"))]
    meta += machine_rows(manifest.get("machine"))
    meta.append(("packages", " · ".join(f"{k} {v or 'not installed'}" for k, v in versions.items()) or DASH))
    page = {"profile": str(manifest.get("profile") or out_dir.name),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "manifest_href": _href(out_dir / "manifest.json", out_dir) if (out_dir / "manifest.json").is_file() else None,
            "meta": [(k, str(v if v is not None else DASH)) for k, v in meta],
            "runs": [_run_row(e, out_dir, repo) for e in rows],
            "figures": [f for e in rows if (f := _figure_section(e, out_dir, repo))]}
    return _template().render(page=page).lstrip()


def write_index(out_dir, manifest: dict, repo: Path = REPO, planned: list[str] | None = None) -> Path:
    """Write ``{out_dir}/index.html`` (atomically: a browser never sees half a page) and return its path.

    ``planned``: the run names of this profile run in order (default ``manifest["planned"]``); those not
    in the manifest yet are listed as "not run"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(out_dir, manifest, Path(repo), planned), encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m roadbuddy_utils.report.index", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="a profile's output folder holding manifest.json, e.g. outputs/demo")
    ap.add_argument("--repo", default=str(REPO), help="folder the runs' relative output_dir paths start from")
    args = ap.parse_args(argv)
    mpath = Path(args.out_dir) / "manifest.json"
    if not mpath.is_file():
        print(f"{mpath}: no manifest; run `python -m roadbuddy_utils run --profile <name>` first", file=sys.stderr)
        return 1
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except ValueError as e:
        print(f"{mpath}: malformed JSON ({e})", file=sys.stderr)
        return 1
    print(f"open {write_index(args.out_dir, manifest, Path(args.repo))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

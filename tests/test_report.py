"""The index page of a profile's outputs (report/index.py): rows, numbers, links, robustness, and a real browser.

    python -m pytest -q -p no:cacheprovider tests/test_report.py
    RB_WRITE_SCREENSHOT=1 python -m pytest -q -p no:cacheprovider tests/test_report.py -m browser   # docs/index_demo.png
"""
import html
import io
import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from roadbuddy_utils.answer import metrics
from roadbuddy_utils.answer.submit import merge_predictions, write_submission
from roadbuddy_utils.common.files import write_json, write_jsonl
from roadbuddy_utils.evaluate import compare, results
from roadbuddy_utils.report import index, runner

REPO = Path(__file__).resolve().parent.parent
CHOICES = ["A. one", "B. two", "C. three", "D. four"]


def _iso(seconds_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).isoformat(timespec="seconds")


def _png(path: Path, seed: int) -> Path:
    """A small bar chart (stands in for a run's figure; drawn with PIL: matplotlib is slow to import)."""
    from PIL import ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (240, 160), "white")
    draw = ImageDraw.Draw(img)
    draw.line([(20, 140), (230, 140)], fill="black")
    draw.line([(20, 10), (20, 140)], fill="black")
    for k, h in enumerate(np.random.default_rng(seed).integers(20, 120, 6)):
        draw.rectangle([30 + 33 * k, 140 - int(h), 55 + 33 * k, 139], fill=(31, 119, 180))
    img.save(path)
    return path


def _predictions(seed: int, n_videos: int = 10, per_video: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    lines = []
    for v in range(n_videos):
        for q in range(per_video):
            gold = "ABCD"[rng.integers(4)]
            pred = gold if rng.random() < 0.5 else "ABCD"[rng.integers(4)]
            lines.append({"id": f"q{v}_{q}", "video": f"videos/v{v}.mp4", "pred": pred, "answer": gold,
                          "correct": pred == gold, "n_choices": 4, "time_ms": 100.0 + q, "source": "likelihood",
                          "error": "decode failed" if (v, q) == (0, 0) else None, "n_frames": 4})
    return lines


@pytest.fixture
def profile(tmp_path):
    """A repository folder with a finished demo-like profile run: real products of 01 and 03-07 written
    with the package's own writers, one failed run (with a metrics.json left by an earlier run) and one
    run never reached (its folder also left from earlier). Returns (repo, out_dir, manifest)."""
    repo = tmp_path / "repo"
    out = repo / "outputs" / "demo"
    started = _iso(120)
    # 01
    write_json({"summary": {"questions": 30, "videos": 10, "with_answers": 30, "missing_videos": []},
                "problems": ["train.json #4: a problem"]}, out / "01_explore" / "explore_summary.json")
    _png(out / "01_explore" / "overview.png", 1)
    # 03 (and 05 comparing it with itself under another label)
    lines = _predictions(0)
    write_jsonl(lines, out / "03_zero_shot" / "predictions.jsonl")
    write_json(metrics.run_metrics(lines), out / "03_zero_shot" / "metrics.json")
    _png(out / "03_zero_shot" / "confusion.png", 2)
    _png(out / "03_zero_shot" / "sub dir" / "letters #1.png", 3)  # a space and a '#': the link must be encoded
    # 04
    write_json({"val_accuracy_before": 0.25, "val_accuracy_best": 0.61, "chance": 0.2843, "steps": 1200,
                "n_train": 800, "n_val": 200, "train_runtime_s": 754.2}, out / "04_lora_train" / "metrics.json")
    _png(out / "04_lora_train" / "learning_curve.png", 4)
    # 05
    preds = [out / "03_zero_shot" / "predictions.jsonl"] * 2
    runs = results.load_runs(preds, ["zero-shot", "again"])
    m05 = compare.evaluate_runs(runs, n_boot=200)
    write_json(m05, out / "05_eval" / "metrics.json")
    compare.write_summary(compare.pd.DataFrame(m05["summary"]), out / "05_eval")
    _png(out / "05_eval" / "accuracy.png", 5)
    # 06
    write_json({"n_lines": 20, "n_errors": 1, "routing": {"n_fallbacks": 2},
                "subtask_counts": [{"subtask": "perception_mcq", "n": 12, "official_phase1": 100, "model": "small"},
                                   {"subtask": "total", "n": 20, "official_phase1": 300, "model": None}],
                "score": {"per_subtask": {"perception_mcq": {"score": 0.4167}}, "overall": 0.3712, "n_scored": 16},
                "overall_official_weights": 0.3544}, out / "06_multiview_router_rag" / "metrics.json")
    # 07: the submission of 03's predictions, checked against the test file it answers
    test_json = repo / "data" / "public_test.json"
    write_json({"data": [{"id": l["id"], "question": "Q?", "choices": CHOICES, "video_path": l["video"]}
                         for l in lines]}, test_json)
    write_submission(merge_predictions(str(out / "03_zero_shot" / "predictions.jsonl")), test_json, out / "07_submit")
    # a failed run whose folder holds products of an earlier run, and a run never reached
    write_json({"n": 30, "accuracy": 0.99, "chance": 0.25, "n_errors": 0}, out / "03_shuffled" / "metrics.json")
    _png(out / "03_shuffled" / "old.png", 6)
    _png(out / "03_cyclic" / "old.png", 7)
    old = time.time() - 3600
    for p in [out / "03_shuffled" / "metrics.json", out / "03_shuffled" / "old.png", out / "03_cyclic" / "old.png"]:
        os.utime(p, (old, old))

    def entry(nb, run, od, status="ok", duration=12.5, **kw):
        (out / f"{run}.html").write_text(f"<html><body>{run}</body></html>")
        (out / f"{run}.ipynb").write_text("{}")
        return {"notebook": nb, "run": run, "parameters": {"output_dir": f"outputs/demo/{od}"} | kw.pop("params", {}),
                "output": f"outputs/demo/{run}.ipynb", "status": status, "started": started, "duration_s": duration,
                "html": f"{run}.html"} | kw

    entries = [entry("01_explore.ipynb", "01_explore", "01_explore", duration=3.2),
               entry("03_zero_shot.ipynb", "03_zero_shot", "03_zero_shot", duration=65.0),
               entry("04_lora_train.ipynb", "04_lora_train", "04_lora_train", duration=800.0),
               entry("05_eval.ipynb", "05_eval", "05_eval"),
               entry("06_multiview_router_rag.ipynb", "06_multiview_router_rag", "06_multiview_router_rag"),
               entry("07_submit.ipynb", "07_submit", "07_submit",
                     params={"test_json": "data/public_test.json", "videos_root": "data"}),
               entry("03_zero_shot.ipynb", "03_zero_shot@shuffled", "03_shuffled", status="failed",
                     started=_iso(30), error="cell 5: RuntimeError: shuffled <b>boom</b>")]
    manifest = {"profile": "demo", "started": started, "git_commit": "0123abc-dirty", "platform": "Linux-test",
                "versions": {"python": "3.11.2", "torch": "2.14.1", "decord": None},
                "machine": {"env": "local", "gpus": [], "ram_total_gib": 7.7, "ram_available_gib": 5.1,
                            "cpu": "Test CPU 9000", "cores": 2, "python": "3.11.2", "torch": "2.14.1", "cuda": None},
                "prepare_s": 4.0,
                "planned": [e["run"] for e in entries] + ["03_zero_shot@cyclic"], "notebooks": entries}
    write_json(manifest, out / "manifest.json")
    return repo, out, manifest


def _rows(page: str) -> dict[str, str]:
    """Run name -> the row's visible text (tags stripped, entities decoded)."""
    rows = {}
    for m in re.finditer(r'<tr id="run-([^"]+)">(.*?)</tr>\s*(?=<tr id="run-|</table>\s*<h2>)', page, re.S):
        text = re.sub(r"<[^>]+>", " ", m.group(2))
        rows[html.unescape(m.group(1))] = re.sub(r"\s+", " ", html.unescape(text)).strip()
    return rows


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _links(page: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(r'(?:href|src)="([^"]*)"', page)]


def _check_links(links: list[str], folder: Path):
    assert links, "the page links nothing"
    for u in links:
        parts = urlsplit(u)
        assert not parts.scheme and not parts.netloc and not u.startswith("/"), f"not a relative link: {u}"
        target = (folder / unquote(parts.path)).resolve()
        assert target.is_file(), f"{u} does not resolve to a file"
        assert target.is_relative_to(folder.resolve()), f"{u} leaves the folder"


def test_index_rows_numbers_and_statuses(profile):
    repo, out, manifest = profile
    page = index.write_index(out, manifest, repo).read_text(encoding="utf-8")
    rows = _rows(page)
    assert list(rows) == manifest["planned"]  # execution order, the unreached run last
    status = {r: t.split()[1] for r, t in rows.items()}
    assert status["03_zero_shot"] == "ok" and status["03_zero_shot@shuffled"] == "failed"
    assert rows["03_zero_shot@cyclic"].startswith("03_zero_shot@cyclic not run")
    # 03: n, accuracy with the by-video interval computed from its predictions, chance, errors
    acc, lo, hi = compare.bootstrap_ci(results.read_predictions(out / "03_zero_shot" / "predictions.jsonl"))
    m03 = json.loads((out / "03_zero_shot" / "metrics.json").read_text())
    assert f"accuracy [95 % CI by video] {acc:.3f} [{lo:.3f}, {hi:.3f}]" in rows["03_zero_shot"]
    assert f"n 30 " in rows["03_zero_shot"] and f"chance {m03['chance']:.3f}" in rows["03_zero_shot"]
    assert "errors 1" in rows["03_zero_shot"] and "1 min 05 s" in rows["03_zero_shot"]
    assert "val accuracy 0.250 → 0.610" in rows["04_lora_train"] and "13 min 20 s" in rows["04_lora_train"]
    m05 = json.loads((out / "05_eval" / "metrics.json").read_text())
    first = m05["summary"][0]
    assert (f"zero-shot {first['variant'] or '-'} {first['scorer']} 30 {first['accuracy']:.3f} {first['ci_low']:.3f}"
            in rows["05_eval"])
    assert "again" in rows["05_eval"] and "full table summary.md" in rows["05_eval"]
    assert "perception_mcq 12 100 small 0.417" in rows["06_multiview_router_rag"]
    assert "offline score 0.371" in rows["06_multiview_router_rag"] and "scored 16 of 20" in rows["06_multiview_router_rag"]
    assert "rows 30 check ok file 07_submit/submission.csv" in rows["07_submit"]
    # the failed run: its error, and not the numbers an earlier run left in its folder
    failed = rows["03_zero_shot@shuffled"]
    assert "shuffled <b>boom</b>" in failed and "0.990" not in failed and "metrics.json" not in failed
    # header: profile, commit, machine, versions
    for text in ("profile demo", "0123abc-dirty", "machine Test CPU 9000, 2 cores, 7.7 GiB RAM (5.1 GiB available) · local",
                 "GPUs none (CPU only)", "GPU libraries torch 2.14.1 · cuda none", "decord not installed", "6 ok, 1 failed, 1 not run"):
        assert text in _text(page), text


def test_06_row_leads_with_the_official_formula_when_gold_answers_exist(profile):
    """mv-score's record in 06's metrics.json (``official``): the phase score with its interval by scene, the
    official-count total, the LLM term and the language-metrics implementation take the old offline score's place."""
    from roadbuddy_utils.multiview import mvscore

    repo, out, manifest = profile
    q_mcq = "Which object is nearest? Please select the correct answer from the following options: A. Car. B. Bus."
    lines = [{"question": q_mcq, "category": "perception", "scene_token": f"s{k % 3}", "frame_token": f"f{k}",
              "answer": "A" if k % 4 else "B", "gold_answer": "A"} for k in range(12)]
    lines += [{"question": "What are the important objects in the current scene?", "category": "perception",
               "scene_token": f"s{k % 3}", "frame_token": f"g{k}", "answer": "a car ahead", "gold_answer": "a car ahead"}
              for k in range(3)]
    res = mvscore.score_run(lines, impl="approx", n_boot=200)
    mvscore.save(res, out / "06_multiview_router_rag")
    row = _rows(index.write_index(out, manifest, repo).read_text(encoding="utf-8"))["06_multiview_router_rag"]
    ps, ow = res["phase_score"], res["phase_score"]["official_weights"]
    assert f"phase {ps['phase']} formula {ps['value']:.3f} [{ps['ci'][0]:.3f}, {ps['ci'][1]:.3f}] (95 % interval by scene)" \
        in row, row
    assert f"with the official counts {ow['value']:.3f}" in row and f"LLM term {ps['llm']}" in row
    assert f"language metrics {res['metrics_impl']['label']}" in row and "scored 15 of 20" in row
    assert "offline score" not in row and "perception_mcq 12 100 small" in row


def test_links_resolve_inside_the_folder_without_scripts(profile):
    repo, out, manifest = profile
    page = index.write_index(out, manifest, repo).read_text(encoding="utf-8")
    _check_links(_links(page), out)
    assert "<script" not in page.lower() and "stylesheet" not in page and "@import" not in page
    assert str(repo) not in page  # nothing absolute, not even in text
    srcs = {unquote(u) for u in re.findall(r'src="([^"]*)"', page)}
    fresh = {str(p.relative_to(out)) for p in out.rglob("*.png") if "old.png" not in p.name}
    assert srcs == fresh  # every figure of a run, none left by an earlier run
    assert "03_zero_shot/sub%20dir/letters%20%231.png" in page


def test_failed_runs_index_from_the_runner(tmp_path, monkeypatch):
    """The runner writes the index after each notebook: after a failure it shows ok / failed / not run."""
    import nbformat
    import papermill

    repo = tmp_path / "repo"
    for name in ("01_a", "02_b", "03_c"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        (repo / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(repo / "notebooks" / f"{name}.ipynb"))
        (repo / "params" / "p").mkdir(parents=True, exist_ok=True)
        (repo / "params" / "p" / f"{name}.yaml").write_text(f"output_dir: outputs/p/{name}\n")

    def fake_execute(nb, out_nb, parameters, **kw):  # 01 runs, 02 fails; no kernel needed
        shutil.copy(nb, out_nb)
        if "02_b" in nb:
            raise papermill.PapermillExecutionError(3, 3, "x", "ValueError", "bad <value>", ["tb"])
        _png(repo / parameters["output_dir"] / "fig.png", 0)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(index, "machine_info", lambda: {"cpu": "stub", "cores": 1, "gpus": []})
    with pytest.raises(runner.NotebookFailed):
        runner.run_profile("p", repo=repo, prepare=False, log=lambda *_: None)
    out = repo / "outputs" / "p"
    page = (out / "index.html").read_text(encoding="utf-8")
    rows = _rows(page)
    assert [t.split()[1] for t in rows.values()] == ["ok", "failed", "not"] and list(rows) == ["01_a", "02_b", "03_c"]
    assert "bad <value>" in rows["02_b"] and "finished not finished" in _text(page)
    _check_links(_links(page), out)
    assert "01_a/fig.png" in page and "stub, 1 cores" in _text(page)

    def killed(nb, out_nb, parameters, **kw):  # a dead kernel / Ctrl-C is not a cell error
        raise RuntimeError("Kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", killed)
    with pytest.raises(RuntimeError, match="Kernel died"):
        runner.run_profile("p", repo=repo, prepare=False, log=lambda *_: None)
    rows = _rows((out / "index.html").read_text(encoding="utf-8"))
    assert [t.split()[1] for t in rows.values()] == ["interrupted", "not", "not"]
    assert json.loads((out / "manifest.json").read_text())["notebooks"][0]["status"] == "interrupted"


def test_malformed_products_show_a_dash(profile):
    repo, out, manifest = profile
    (out / "03_zero_shot" / "metrics.json").write_text("{not json")
    (out / "04_lora_train" / "metrics.json").unlink()
    (out / "05_eval" / "metrics.json").write_text("[1, 2]")
    (out / "06_multiview_router_rag" / "metrics.json").write_text('{"subtask_counts": 5, "score": []}')
    (out / "07_submit" / "submission.csv").write_text("id,answer\nq0_0,Z\nq0_0,Z\n")
    manifest["notebooks"][0]["parameters"] = {}  # 01 without output_dir
    page = index.write_index(out, manifest, repo).read_text(encoding="utf-8")
    rows = _rows(page)
    for run in ("01_explore", "03_zero_shot", "04_lora_train", "05_eval", "06_multiview_router_rag"):
        assert rows[run].endswith(" -"), (run, rows[run])
    assert 'title="metrics.json: malformed JSON' in page and 'title="metrics.json not found"' in page
    assert "check 3" in rows["07_submit"] and "problem(s): id=q0_0: 2 rows" in rows["07_submit"]
    # predictions cut by a kill: the accuracy of metrics.json stays, without its interval
    (out / "03_zero_shot" / "metrics.json").write_text(json.dumps({"n": 30, "accuracy": 0.4, "chance": 0.25}))
    with open(out / "03_zero_shot" / "predictions.jsonl", "a") as f:
        f.write('{"id": "cut')
    rows = _rows(index.write_index(out, manifest, repo).read_text(encoding="utf-8"))
    assert "accuracy [95 % CI by video] 0.400 (no interval)" in rows["03_zero_shot"]


def test_text_is_escaped(profile):
    repo, out, manifest = profile
    manifest["notebooks"][-1]["error"] = "<script>alert(1)</script>"
    manifest["git_commit"] = '"><img src=x>'
    page = index.write_index(out, manifest, repo).read_text(encoding="utf-8")
    assert "<script" not in page and "<img src=x>" not in page and "&lt;script&gt;alert(1)" in page


def test_cli_rebuilds_the_index(profile, capsys):
    repo, out, _ = profile
    assert index.main([str(out), "--repo", str(repo)]) == 0
    assert (out / "index.html").is_file() and "index.html" in capsys.readouterr().out
    assert index.main([str(out / "nowhere")]) == 1
    assert "no manifest" in capsys.readouterr().err


def test_machine_info_describes_this_machine(monkeypatch):
    import sys

    import torch

    m = index.machine_info()  # hardware.describe() from a child process
    assert m["cores"] >= 1 and m["ram_total_gib"] > 0 and m["cpu"]
    assert (m["gpus"] == []) == (not torch.cuda.is_available())
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert "machine query failed: FileNotFoundError" in index.machine_info()["gpus"]


def test_machine_rows_name_gpus_and_memory():
    rows = dict(index.machine_rows({"gpus": [{"name": "Tesla T4", "capability": [7, 5], "total_gib": 14.56},
                                              {"name": "Tesla T4", "capability": [7, 5], "total_gib": 14.56}],
                                     "cpu": "Xeon", "cores": 4, "ram_total_gib": 31.4, "ram_available_gib": 29.0,
                                     "env": "kaggle", "torch_arch_list": ["sm_75", "sm_80"], "flash_attn": None,
                                     "python": "3.11", "empty": []}))
    assert rows["GPUs"] == "Tesla T4 (14.56 GiB, compute capability 7.5); Tesla T4 (14.56 GiB, compute capability 7.5)"
    assert rows["machine"] == "Xeon, 4 cores, 31.4 GiB RAM (29.0 GiB available) · kaggle"
    assert rows["torch arch list"] == "sm_75; sm_80" and rows["GPU libraries"] == "flash_attn none"
    assert "empty" not in rows and "python" not in rows
    assert index.machine_rows(None) == [("machine", "not recorded")]


@pytest.mark.gpu
def test_machine_info_lists_gpus():
    import torch

    text = dict(index.machine_rows(index.machine_info()))["GPUs"]
    assert torch.cuda.get_device_name(0) in text and "GiB" in text


# ----------------------------------------------------------------------------------------------
# In a real browser


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browser(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    # --no-sandbox: CI containers run as root; a fresh profile dir keeps runs independent
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-extensions", *args], capture_output=True, text=True,
                          timeout=timeout)


def _small_png(img: Image.Image, limit: int = 300_000) -> bytes:
    """PNG bytes under ``limit``: quantized to a palette first, then downscaled until it fits."""
    for scale in (1.0, 0.8, 0.65, 0.5):
        im = img.resize((int(img.width * scale), int(img.height * scale)), Image.LANCZOS) if scale < 1 else img
        buf = io.BytesIO()
        im.convert("RGB").quantize(colors=128, method=Image.MEDIANCUT).save(buf, "PNG", optimize=True)
        if buf.tell() < limit:
            return buf.getvalue()
    raise AssertionError(f"screenshot still over {limit} bytes at half size")


@pytest.mark.browser
def test_index_in_headless_chromium(profile, tmp_path):
    """The real demo index when there is one (outputs/demo/index.html), else the synthetic one: rendered
    by Chromium, every link of the rendered DOM is a file of the folder, the screenshot is not blank."""
    if _chromium() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    real = REPO / "outputs" / "demo" / "index.html"
    if real.is_file():
        page = real
    else:
        repo, out, manifest = profile
        page = index.write_index(out, manifest, repo)
    shot = tmp_path / "shot.png"
    args = [f"--user-data-dir={tmp_path / 'chrome'}"]
    r = _browser(*args, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert shot.is_file(), f"chromium wrote no screenshot: {r.stderr[-2000:]}"
    dom = _browser(*args, "--dump-dom", page.as_uri()).stdout
    assert "<table" in dom and "Road Buddy" in dom, dom[:500]
    _check_links(_links(dom), page.parent)
    img = Image.open(shot).convert("RGB")
    pixels = np.asarray(img, dtype=float)
    assert img.size == (1280, 1600) and pixels.std() > 10, f"blank screenshot (std {pixels.std():.1f})"
    assert (pixels.mean(axis=2) < 128).mean() > 0.005  # some dark text on the page
    if os.environ.get("RB_WRITE_SCREENSHOT") == "1":
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "index_demo.png").write_bytes(_small_png(img))


def test_selection_headlines_for_02_and_04(tmp_path):
    """02 with frame_mode select shows hit@4 per selector (not the 'learned' alias twice); 04 validated on
    selected frames says so; plain runs show neither."""
    run = tmp_path / "02"
    run.mkdir()
    write_jsonl([{"video_path": "a.mp4", "error": None}], run / "frames_index.jsonl")
    assert "hit@4" not in index.headline_frames({"run_dir": run, "since": None})
    write_json({"n": 120, "hit_at_k": {"uniform": {"4": 0.358, "8": 0.717}, "learned[embedding]": {"4": 0.908},
                                       "learned": {"4": 0.908}}}, run / "selection_metrics.json")
    text = re.sub("<[^>]+>", " ", index.headline_frames({"run_dir": run, "since": None}))
    assert "hit@4 uniform  0.358" in text and "hit@4 learned[embedding]  0.908" in text
    assert "hit@4 learned " not in text and "validation n  120" in text
    t = tmp_path / "04"
    t.mkdir()
    base = {"val_accuracy_before": 0.46, "val_accuracy_best": 0.94, "chance": 0.36, "steps": 800, "n_train": 480,
            "n_val": 120, "train_runtime_s": 210.6}
    write_json(base | {"val_frames": {"frame_mode": "uniform", "k": 4}}, t / "metrics.json")
    assert "validation frames" not in index.headline_train({"run_dir": t, "since": None})
    write_json(base | {"val_frames": {"frame_mode": "select", "k": 4, "selector": "learned[embedding]",
                                      "hit_at_k": 0.908}}, t / "metrics.json")
    text = re.sub("<[^>]+>", " ", index.headline_train({"run_dir": t, "since": None}))
    assert "validation frames  learned[embedding], hit@4 0.908" in text

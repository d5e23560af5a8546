"""Ensembles: vote / mean / fit of single-clip runs (fit's folds grouped by video), the CLI, 05's table and 07
taking the result, and the multi-camera variant joined by position (fast, constructed runs)."""
import json

import numpy as np
import pytest

from roadbuddy_utils.__main__ import main
from roadbuddy_utils.evaluate import compare, ensemble, results
from roadbuddy_utils.multiview import ensemble as mv_ensemble


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _line(i, pred, scores=None, video="v0", answer="A", k=4, t=100.0):
    return {"id": i, "video": video, "pred": pred, "scores": scores, "answer": answer, "n_choices": k, "time_ms": t}


def _sc(best, letters="ABCD", p=0.7):
    return {l: p if l == best else (1 - p) / (len(letters) - 1) for l in letters}


def _read(path):
    return {r["id"]: r for r in map(json.loads, open(path))}


# --------------------------------------------------------------------------- vote

def test_vote_majority_and_both_tie_rules(tmp_path):
    a = _write(tmp_path / "a/predictions.jsonl", [_line("q1", "A", _sc("A")), _line("q2", "B", _sc("B", p=0.4)),
                                                  _line("q3", "C", _sc("C"))])
    b = _write(tmp_path / "b/predictions.jsonl", [_line("q1", "A", _sc("A")), _line("q2", "C", _sc("C", p=0.9)),
                                                  _line("q3", "B", _sc("B"))])
    doc = ensemble.build_ensemble([a, b], "vote", tmp_path / "vote")
    out = _read(tmp_path / "vote/predictions.jsonl")
    assert out["q1"]["pred"] == "A" and out["q1"]["scores"] == {"A": 1.0, "B": 0.0, "C": 0.0, "D": 0.0}
    assert out["q2"]["pred"] == "C"  # 1-1 tie: C has the larger summed probability (0.2 + 0.9 vs 0.4 + 0.6 / 18)
    assert out["q3"]["pred"] == "C"  # 1-1 tie with equal sums: the first member's letter
    assert doc["ties"] == {"no tie": 1, "scores": 1, "order": 1} and "earliest member" in doc["tie_break"]
    assert out["q2"]["members"] == {"a": "B", "b": "C"} and out["q2"]["time_ms"] == 200.0  # members' time adds up


def test_vote_on_submission_csvs_from_the_command_line_and_07_takes_it(tmp_path, write_items, capsys):
    from roadbuddy_utils.answer.submit import merge_predictions, write_submission

    items = [{"id": f"q{k}", "question": "?", "choices": ["A. x", "B. y", "C. z"], "video_path": f"public_test/v{k}.mp4"}
             for k in range(3)]
    test_json = write_items(items, name="public_test.json", folder="public_test")
    subs = {"s1": "ABC", "s2": "ABB", "s3": "CAB"}
    paths = []
    for name, letters in subs.items():
        p = tmp_path / name / "submission.csv"
        p.parent.mkdir()
        p.write_text("id,answer\n" + "".join(f"q{k},{l}\n" for k, l in enumerate(letters)))
        paths.append(str(p))
    assert main(["ensemble", *paths, "--method", "vote", "--out", str(tmp_path / "ens")]) == 0
    assert "3 questions, vote of s1, s2, s3" in capsys.readouterr().out
    out = _read(tmp_path / "ens/predictions.jsonl")
    assert [out[f"q{k}"]["pred"] for k in range(3)] == ["A", "B", "B"]  # each by 2 votes to 1
    assert all(r["scores"] is None and r["source"] == "ensemble:vote" for r in out.values())  # letters only: no scores
    doc = json.loads((tmp_path / "ens/ensemble.json").read_text())
    assert [m["label"] for m in doc["members"]] == ["s1", "s2", "s3"] and doc["scores"] is None
    files = write_submission(merge_predictions([str(tmp_path / "ens/predictions.jsonl")]), test_json, tmp_path / "07")
    assert files["submission"].read_text().splitlines() == ["id,answer", "q0,A", "q1,B", "q2,B"]
    assert main(["ensemble", *paths, "--method", "mean", "--out", str(tmp_path / "m")]) == 2
    assert "has none (a submission" in capsys.readouterr().err


# --------------------------------------------------------------------------- mean

def test_mean_is_arithmetic_and_a_bad_line_does_not_stop_it(tmp_path):
    a = _write(tmp_path / "a/predictions.jsonl", [_line("q1", "A", {"A": 0.9, "B": 0.1}, k=2),
                                                  _line("q2", "A", _sc("A"), answer="B"), _line("q3", "A", _sc("A"))])
    b = _write(tmp_path / "b/predictions.jsonl", [_line("q1", "B", {"A": 0.0, "B": 1.0}, k=2),
                                                  _line("q2", "B", {"A": 0.2, "B": 0.5, "C": 0.3}, answer="B")])
    doc = ensemble.build_ensemble([a, b], "mean", tmp_path / "mean", labels=["a", "b"])
    out = _read(tmp_path / "mean/predictions.jsonl")
    # arithmetic: A 0.45 vs B 0.55 (a geometric mean would give A 0 : member b's zero vetoes it)
    assert out["q1"]["pred"] == "B" and out["q1"]["scores"] == pytest.approx({"A": 0.45, "B": 0.55})
    assert out["q2"]["pred"] is None and out["q2"]["error"].startswith("members score different letters: a ABCD, b ABC")
    assert out["q3"]["pred"] == "A" and out["q3"]["members_used"] == ["a"]  # b lacks q3: answered by a alone
    assert doc["n_partial"] == 1 and doc["errors"] == {"members score different letters": 1}
    csv = tmp_path / "c/submission.csv"
    csv.parent.mkdir()
    csv.write_text("id,answer\nq1,A\n")
    with pytest.raises(ValueError, match=r"run 'c' \(.*submission.csv\) has none .*use --method vote"):
        ensemble.build_ensemble([a, csv], "mean", tmp_path / "x")


# --------------------------------------------------------------------------- fit

def _members(tmp_path, n_videos=24, per_video=3, seed=0):
    """Three members of differing skill on questions about n_videos clips (a strong, b weak, c noise)."""
    rng = np.random.default_rng(seed)
    lines = {m: [] for m in "abc"}
    for v in range(n_videos):
        for q in range(per_video):
            gold = "ABCD"[rng.integers(4)]
            for m, skill in zip("abc", (2.5, 0.7, 0.0)):
                z = rng.normal(size=4)
                z["ABCD".index(gold)] += skill
                p = np.exp(z) / np.exp(z).sum()
                sc = dict(zip("ABCD", map(float, p)))
                lines[m].append(_line(f"v{v}q{q}", max(sc, key=sc.get), sc, video=f"clip{v}.mp4", answer=gold))
    return [_write(tmp_path / m / "predictions.jsonl", ls) for m, ls in lines.items()]


def test_grouped_folds_keep_each_video_on_one_side():
    groups = [f"v{k // 3}" for k in range(30)] + ["lonely"]
    folds = ensemble.grouped_folds(groups, 4)
    assert len(folds) == 4 and sorted(np.concatenate([j for _, j in folds])) == list(range(31))
    for fit_i, judge_i in folds:
        assert not {groups[i] for i in fit_i} & {groups[i] for i in judge_i}
    with pytest.raises(ValueError, match="at least 2 videos"):
        ensemble.grouped_folds(["one"] * 5)


def test_fit_weights_follow_skill_and_no_clip_fits_and_judges(tmp_path):
    paths = _members(tmp_path)
    doc = ensemble.build_ensemble(paths, "fit", tmp_path / "fit", val=paths, n_splits=4)
    w = doc["weights"]
    assert w["a"] > w["b"] >= w["c"] and sum(w.values()) == pytest.approx(1, abs=1e-3)
    assert doc["n_val_questions"] == 72 and doc["n_val_videos"] == 24 and len(doc["cv"]) == len(ensemble.SHRINK)
    for f in doc["folds"] + doc["out_of_fold"]["folds"]:  # the weights' folds and the out-of-fold answers' folds
        assert f["fit_videos"] and f["judge_videos"] and not set(f["fit_videos"]) & set(f["judge_videos"])
    judge = {f["fold"]: set(f["judge_videos"]) for f in doc["out_of_fold"]["folds"]}
    out = _read(tmp_path / "fit/predictions.jsonl")
    assert doc["out_of_fold"]["n_questions"] == 72 and all(r["video"] in judge[r["fold"]] for r in out.values())
    runs = results.load_runs([*paths, tmp_path / "fit/predictions.jsonl"], ["a", "b", "c", "fit"])
    assert compare.accuracy(runs["fit"]) >= compare.accuracy(runs["b"])
    assert results.run_meta(tmp_path / "fit/predictions.jsonl")["variant"] == "ensemble:fit"


def test_fit_weights_apply_to_other_questions_without_folds(tmp_path):
    val = _members(tmp_path / "val", seed=1)
    test = _members(tmp_path / "test", n_videos=6, seed=2)
    for p in test:  # other clips: the fitted weights apply as they are
        p.write_text(p.read_text().replace("clip", "other"))
    doc = ensemble.build_ensemble(test, "fit", tmp_path / "fit", val=val)
    assert doc["out_of_fold"] is None and "GroupKFold" in doc["how_chosen"]
    out = list(_read(tmp_path / "fit/predictions.jsonl").values())
    assert len(out) == 18 and all("fold" not in r and r["pred"] for r in out)


def test_fit_pool_weights_find_the_informative_member():
    rng = np.random.default_rng(0)
    perfect, noise = np.full(200, 0.97), rng.uniform(0.05, 0.5, 200)
    w = ensemble.fit_pool_weights(np.c_[noise, perfect])
    assert w[1] > 0.95 and w.sum() == pytest.approx(1)


def test_fit_and_val_are_checked(tmp_path):
    paths = _members(tmp_path, n_videos=3)
    with pytest.raises(ValueError, match="needs --val with one labelled run per member"):
        ensemble.build_ensemble(paths, "fit", tmp_path / "x")
    with pytest.raises(ValueError, match="--val is for --method fit"):
        ensemble.build_ensemble(paths, "mean", tmp_path / "x", val=paths)
    with pytest.raises(ValueError, match="at least two runs"):
        ensemble.build_ensemble(paths[:1], "vote", tmp_path / "x")


# --------------------------------------------------------------------------- 05

def test_build_ensembles_and_the_table_beside_the_best_member(tmp_path):
    paths = _members(tmp_path)
    specs = [{"label": "vote", "method": "vote"}, {"label": "mean ab", "method": "mean", "members": ["a", "b"]},
             {"label": "fit", "method": "fit"}]
    built = ensemble.build_ensembles(specs, [str(p) for p in paths], ["a", "b", "c"], tmp_path / "ens")
    assert list(built) == ["a", "b", "c", "vote", "mean ab", "fit"]
    runs = results.load_runs(list(built.values()), list(built))
    table = ensemble.ensemble_table(runs, built, n_boot=200).set_index("ensemble")
    assert list(table.index) == ["vote", "mean ab", "fit"] and (table["best_member"] == "a").all()
    d = compare.paired_comparison(runs["a"], runs["vote"], n_boot=0)
    assert table.loc["vote", "p_exact"] == d["p_exact"] and table.loc["vote", "right_to_wrong"] == d["b10"]
    assert table.loc["vote", "diff"] == pytest.approx(compare.accuracy(runs["vote"]) - compare.accuracy(runs["a"]))
    assert (table["ci_low"] <= table["accuracy"]).all() and table.loc["mean ab", "members"] == "a, b"
    ensemble.build_ensemble(paths[1:], "mean", tmp_path / "cli")  # built elsewhere, members labelled b and c
    renamed = {"weak": str(paths[1]), "noise": str(paths[2]), "cli": str(tmp_path / "cli/predictions.jsonl")}
    table = ensemble.ensemble_table(results.load_runs(list(renamed.values()), list(renamed)), renamed, n_boot=50)
    assert table.loc[0, "members"] == "weak, noise" and table.loc[0, "best_member"] == "weak"  # matched by file
    with pytest.raises(ValueError, match=r"ensembles\[0\].members: \['z'\] are not runs"):
        ensemble.build_ensembles([{"method": "vote", "members": ["z"]}], [str(p) for p in paths], None, tmp_path / "e")


# --------------------------------------------------------------------------- multi-camera

def _mv(answers, scores=None):
    base = [{"id": "m1", "question": "Which? A. car B. bus C. truck", "style": "mcq", "gold_answer": "B"},
            {"id": "m2", "question": "Is it moving?", "style": "yesno", "gold_answer": "Yes"},
            {"id": "m3", "question": "What should the ego car do?", "style": "open", "gold_answer": "Slow down."},
            {"id": "m1", "question": "Which? A. car B. bus C. truck", "style": "mcq", "gold_answer": "C"}]
    scores = scores or [None] * 4
    return [b | {"answer": a, "scores": s, "error": None, "time_s": 1.0, "subtask": "Perception-MCQs"}
            for b, a, s in zip(base, answers, scores)]


def test_multiview_ensemble_joins_by_position(tmp_path, capsys):
    sa = [{"A": 0.1, "B": 0.5, "C": 0.4}, None, None, {"A": 0.1, "B": 0.6, "C": 0.3}]
    sb = [{"A": 0.1, "B": 0.3, "C": 0.6}, None, None, {"A": 0.0, "B": 0.2, "C": 0.8}]
    runs = {"a": _mv(["B", "yes, it is", "Slow down.", "B"], sa), "b": _mv(["C", "No.", "Stop.", "C"], sb),
            "c": _mv(["B", "Yes", "Turn.", "A"])}
    paths = []
    for name, lines in runs.items():
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "results.json")
        paths[-1].write_text(json.dumps(lines))
    doc = mv_ensemble.build_multiview_ensemble(paths[:2], "mean", tmp_path / "mean")
    out = json.loads((tmp_path / "mean/results.json").read_text())
    assert [o["answer"] for o in out] == ["C", "Yes", "Slow down.", "C"]  # two lines share id m1: position decides
    assert out[0]["scores"] == pytest.approx({"A": 0.1, "B": 0.4, "C": 0.5}) and "mean" in out[0]["ensemble"]
    assert "tie broken by order" in out[1]["ensemble"] and out[2]["ensemble"].startswith("not ensembled (open answer")
    assert doc["combined"] == {"mean": 2, "vote (tie: order)": 1, "not ensembled": 1}
    assert doc["score"]["ensemble"]["n_scored"] == 4
    assert main(["ensemble", *map(str, paths), "--method", "vote", "--out", str(tmp_path / "vote")]) == 0
    assert "open answers: not ensembled" in capsys.readouterr().out
    out = json.loads((tmp_path / "vote/results.json").read_text())
    assert [o["answer"] for o in out][:2] == ["B", "Yes"] and out[3]["answer"] == "C"  # 1-1-1 tie: C sums 1.1
    (tmp_path / "short.json").write_text(json.dumps(runs["a"][:3]))
    with pytest.raises(ValueError, match="different numbers of lines"):
        mv_ensemble.build_multiview_ensemble([paths[0], tmp_path / "short.json"], "vote", tmp_path / "x")
    shifted = runs["b"][1:] + runs["b"][:1]
    (tmp_path / "shifted.json").write_text(json.dumps(shifted))
    mv_ensemble.build_multiview_ensemble([paths[0], tmp_path / "shifted.json"], "vote", tmp_path / "y")
    out = json.loads((tmp_path / "y/results.json").read_text())
    assert out[0]["answer"] is None and "different ids" in out[0]["error"]
    assert main(["ensemble", str(paths[0]), str(paths[1]), "--method", "fit", "--out", str(tmp_path / "z")]) == 2


def test_profiles_ensemble_runs_they_have():
    """Each profile's 05 ``ensembles`` names runs of the same file and a known method (a typo would only fail
    at the end of a long run)."""
    import yaml

    from roadbuddy_utils.common.files import REPO

    seen = 0
    for path in sorted(REPO.glob("params/*/05_eval*.yaml")):
        p = yaml.safe_load(path.read_text()) or {}
        for spec in p.get("ensembles") or []:
            seen += 1
            assert spec["method"] in ensemble.METHODS and set(spec) <= {"label", "method", "members", "val"}, path
            assert set(spec.get("members") or []) <= set(p["labels"]), (path, spec)
    assert seen

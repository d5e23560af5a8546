"""Unit tests of roadbuddy_utils.evaluate.compare on constructed data (fast, no model)."""
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from roadbuddy_utils.data import choices as ch
from roadbuddy_utils.evaluate import compare as ev
from roadbuddy_utils.evaluate import results
from roadbuddy_utils.report import plots


def run(rows) -> pd.DataFrame:
    """rows: (id, video, pred, answer[, scores[, n_choices[, time_ms]]])."""
    out = []
    for r in rows:
        r = list(r) + [None] * (7 - len(r))
        i, v, p, a, s, k, t = r
        out.append({"id": i, "video": v, "pred": p, "answer": a, "scores": s, "n_choices": k or 4,
                    "time_ms": t, "n_frames": 8})
    return pd.DataFrame(out)


def clustered():
    """One video with 10 right answers, ten videos with one wrong answer each: 50 % either way."""
    rows = [(f"big{i}", "big", "A", "A") for i in range(10)]
    rows += [(f"s{i}", f"v{i}", "B", "A") for i in range(10)]
    return run(rows)


# --------------------------------------------------------------------------- loading

def test_load_runs_latest_line_wins_and_labels(tmp_path):
    d = tmp_path / "03_zero_shot"
    d.mkdir()
    lines = [{"id": "1", "video": "a", "pred": None, "answer": "A", "error": "oom"},
             {"id": "2", "video": "a", "pred": "B", "answer": "A"},
             {"id": "1", "video": "a", "pred": "A", "answer": "A", "error": None}]
    (d / "predictions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    runs = results.load_runs([d / "predictions.jsonl"])
    df = runs["03_zero_shot"]
    assert list(df["id"]) == ["2", "1"] and df.set_index("id").loc["1", "pred"] == "A"
    assert set(results.RUN_COLUMNS) <= set(df.columns)
    assert ev.accuracy(df) == 0.5


def test_load_runs_malformed_line_names_file(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text('{"id": "1", "pred": "A"}\n{"id": "2", "pr\n')
    with pytest.raises(ValueError, match=r"predictions.jsonl:2"):
        results.load_runs([p], labels=["x"])


def test_default_labels_disambiguate():
    from pathlib import Path

    labels = results._default_labels([Path("a/03/predictions.jsonl"), Path("b/03/predictions.jsonl")])
    assert labels == ["a/03", "b/03"]


# --------------------------------------------------------------------------- bootstrap and baselines

def test_bootstrap_fixed_seed_and_video_units():
    rng = np.random.default_rng(3)
    varied = run([(f"{v}-{i}", f"v{v}", "A", "A" if rng.uniform() < 0.6 else "B")
                  for v in range(40) for i in range(rng.integers(1, 6))])
    a = ev.bootstrap_ci(varied, seed=0)
    assert a == ev.bootstrap_ci(varied, seed=0)  # fixed seed -> fixed interval
    assert a[1:] != ev.bootstrap_ci(varied, seed=1)[1:]
    acc, lo, hi = ev.bootstrap_ci(clustered(), seed=0)
    assert acc == 0.5
    # by video: ~35 % of replicates miss the big video (accuracy 0); 97.5 % have it at most 3 times (30/38)
    assert lo == 0.0 and hi == pytest.approx(30 / 38)
    # by question the 20 are treated as independent: a much narrower interval
    acc_q, lo_q, hi_q = ev.bootstrap_ci(clustered(), seed=0, unit=None)
    assert acc_q == 0.5 and 0.25 <= lo_q <= 0.35 and 0.65 <= hi_q <= 0.75


def test_chance_and_majority_baseline():
    df = run([("1", "v", "A", "A", None, 2), ("2", "v", "A", "B", None, 2), ("3", "v", "A", "B", None, 2),
              ("4", "w", "A", "C", None, 4), ("5", "w", "A", "C", None, 4), ("6", "w", "A", "A", None, 4),
              ("7", "w", None, None, None, 3)])  # no gold: ignored
    assert ev.chance(df) == pytest.approx((3 / 2 + 3 / 4) / 6)
    # 2 choices: B most frequent (2/3); 4 choices: C (2/3)
    assert ev.majority_letter_baseline(df) == pytest.approx(4 / 6)
    # one ranking for all: A, B, C tie at 2 -> A (alphabetical) wins everywhere
    assert ev.majority_letter_baseline(df, by_n_choices=False) == pytest.approx(2 / 6)
    # ranking from a reference (train) applied to other questions, restricted to offered letters
    train = run([("t1", "v", None, "C", None, 4), ("t2", "v", None, "C", None, 4), ("t3", "v", None, "B", None, 4)])
    test = run([("1", "v", None, "B", None, 2), ("2", "v", None, "C", None, 3)])
    assert ev.majority_letter_baseline(train, test, by_n_choices=False) == 1.0  # C not offered in 2 -> B


# --------------------------------------------------------------------------- per class, groups

def test_per_class_confusion_distribution_and_by_theme():
    df = run([("1", "v", "A", "A", None, 2), ("2", "v", "A", "B", None, 2), ("3", "w", "B", "B", None, 3),
              ("4", "w", None, "C", None, 3)])
    pc = ev.per_class_accuracy(df).set_index("letter")
    assert pc.loc["A", "accuracy"] == 1.0 and pc.loc["B", "accuracy"] == 0.5 and pc.loc["C", "accuracy"] == 0.0
    assert pc.loc["A", "precision"] == 0.5 and pc.loc["A", "n_pred"] == 2
    cm = ev.confusion(df)
    assert list(cm.columns) == ["A", "B", "C", "none"] and cm.loc["B", "A"] == 1 and cm.loc["C", "none"] == 1
    dist = ev.letter_distribution(df, normalize=False)
    assert dist.loc["A", "pred"] == 2 and dist.loc["C", "gold"] == 1 and dist.loc["C", "pred"] == 0
    by_k = ev.accuracy_by(df, "n_choices").set_index("n_choices")
    assert by_k.loc[2, "accuracy"] == 0.5 and by_k.loc[3, "chance"] == pytest.approx(1 / 3)
    questions = {"1": "Biển báo cấm gì?", "2": "Xe đi làn nào?", "3": "Có bao nhiêu xe máy?", "4": "Trời đẹp không?"}
    th = ev.accuracy_by(df, "theme", questions).set_index("theme")
    assert th.loc["signs", "n"] == 1 and th.loc["prohibitions", "accuracy"] == 1.0  # "1" has two themes
    assert th.loc["counting", "n"] == 1 and th.loc["vehicle_types", "accuracy"] == 1.0
    assert th.loc["other", "accuracy"] == 0.0
    with pytest.raises(ValueError, match="questions"):
        ev.accuracy_by(df, "theme")


# --------------------------------------------------------------------------- McNemar

def test_mcnemar_known_table():
    p, chi2, p_chi2 = ev.mcnemar(10, 2)
    assert p == pytest.approx(0.03857, abs=1e-4)  # 2 * (1 + 12 + 66) / 4096
    assert chi2 == pytest.approx(49 / 12) and p_chi2 == pytest.approx(0.04331, abs=1e-4)
    assert ev.mcnemar(0, 0) == (1.0, 0.0, 1.0)
    assert ev.mcnemar(3, 3)[0] == 1.0


def test_paired_comparison_counts_and_ids():
    # a right/b wrong on 2, a wrong/b right on 10, both right on 5, both wrong on 3; "x" only in b
    rows_a, rows_b = [], []
    spec = [("rw", 2, "A", "B"), ("wr", 10, "B", "A"), ("rr", 5, "A", "A"), ("ww", 3, "B", "B")]
    for tag, n, pa, pb in spec:
        for i in range(n):
            rows_a.append((f"{tag}{i}", f"v{tag}{i}", pa, "A"))
            rows_b.append((f"{tag}{i}", f"v{tag}{i}", pb, "A"))
    rows_b.append(("x", "vx", "A", "A"))
    d = ev.paired_comparison(run(rows_a), run(rows_b))
    assert d["n"] == 20 and d["b10"] == 2 and d["b01"] == 10 and d["both_right"] == 5 and d["both_wrong"] == 3
    assert d["right_to_wrong"] == ["rw0", "rw1"] and len(d["wrong_to_right"]) == 10
    assert d["p_exact"] == pytest.approx(0.03857, abs=1e-4)
    assert d["diff"] == pytest.approx(0.4) and d["diff_ci_low"] > 0 and d["diff_ci_high"] <= 0.8


# --------------------------------------------------------------------------- calibration

def test_ece_and_reliability_hand_computed():
    s9, s7 = {"A": 0.9, "B": 0.1}, {"A": 0.7, "B": 0.2, "C": 0.1}
    df = run([("1", "v", "A", "A", s9), ("2", "v", "A", "B", s9),
              ("3", "v", "A", "A", s7), ("4", "v", "A", "A", s7), ("5", "v", "A", "C", s7),
              ("6", "v", "A", "A", None)])  # generate-mode row: no confidence
    # bin 0.9: acc 1/2, gap 0.4, weight 2/5; bin 0.7: acc 2/3, gap 1/30, weight 3/5
    assert ev.ece(df) == pytest.approx(0.4 * 2 / 5 + (1 / 30) * 3 / 5)
    r = ev.reliability(df)
    assert len(r) == 10 and r["n"].sum() == 5 and r.loc[9, "accuracy"] == 0.5 and r.loc[7, "n"] == 3


def test_coverage_curve_monotone():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 200)
    right = rng.uniform(size=200) < conf  # calibrated by construction
    df = run([(str(i), f"v{i}", "A", "A" if ok else "B", {"A": c, "B": 1 - c}) for i, (c, ok) in enumerate(zip(conf, right))])
    c = ev.coverage_curve(df)
    assert (np.diff(c["threshold"]) < 0).all() and (np.diff(c["coverage"]) > 0).all()
    assert c["coverage"].iloc[-1] == 1.0 and c["accuracy"].iloc[-1] == pytest.approx(ev.accuracy(df))
    top = c[c["coverage"] <= 0.2]["accuracy"].iloc[-1]
    assert top > c["accuracy"].iloc[-1] + 0.1  # confident answers are the better ones


def test_latency_stats():
    df = run([(str(i), "v", "A", "A", None, 4, t) for i, t in enumerate([1000, 2000, 3000, 40000])])
    lat = ev.latency_stats(df, budget_s=30)
    assert lat["p50_ms"] == 2500 and lat["max_ms"] == 40000 and lat["share_over_budget"] == 0.25


# --------------------------------------------------------------------------- letter bias

def synthetic_biased(n=3000, k=4, prior=(0.55, 0.15, 0.15, 0.15), seed=0):
    """Content logits (gold +1.5) plus a planted log-prior on positions; scores for all cyclic shifts."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, n)
    content = rng.normal(0, 1, (n, k))
    content[np.arange(n), gold] += 1.5
    lp = np.log(np.asarray(prior))

    def shown(s):  # position j shows original choice (j + s) % k
        logits = content[:, [(j + s) % k for j in range(k)]] + lp
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    return gold, content, [shown(s) for s in range(k)]


def test_debias_recovers_planted_prior():
    planted = np.array([0.55, 0.15, 0.15, 0.15])
    gold, content, shifts = synthetic_biased(prior=planted)
    unbiased_acc = (content.argmax(1) == gold).mean()
    biased_acc = (shifts[0].argmax(1) == gold).mean()
    assert biased_acc < unbiased_acc - 0.05

    # all cyclic shifts: the log estimator returns the prior itself
    prior = ch.estimate_letter_prior([[sh[q] for sh in shifts] for q in range(len(gold))])
    assert set(prior) == {4} and np.allclose(prior[4], planted, atol=1e-6)
    # one ordering per question, no labels: still close, and debiasing restores the accuracy
    prior1 = ch.estimate_letter_prior([[{"ABCD"[j]: p for j, p in enumerate(row)}] for row in shifts[0]])
    assert np.allclose(prior1[4], planted, atol=0.03)
    deb = np.array([ch.debias_scores(row, prior1) for row in shifts[0]])
    assert np.allclose(deb.sum(1), 1)
    assert abs((deb.argmax(1) == gold).mean() - unbiased_acc) < 0.01
    # the arithmetic-mean estimator points the same way, flatter
    mean_prior = ch.estimate_letter_prior([[sh[q] for sh in shifts] for q in range(len(gold))], method="mean")
    assert mean_prior[4].argmax() == 0 and mean_prior[4][0] < planted[0]
    # cyclic averaging removes a multiplicative position bias exactly
    avg = np.array([ch.cyclic_average([sh[q] for sh in shifts]) for q in range(len(gold))])
    assert (avg.argmax(1) == content.argmax(1)).all()


def test_apply_debias_on_a_run_and_dict_types():
    gold, _, shifts = synthetic_biased(n=2000, seed=1)
    rows = [(str(q), f"v{q}", "ABCD"[row.argmax()], "ABCD"[g], {"ABCD"[j]: float(p) for j, p in enumerate(row)})
            for q, (row, g) in enumerate(zip(shifts[0], gold))]
    df = run(rows)
    out = ev.apply_debias(df)  # prior from the run's own scores, labels unused
    assert ev.accuracy(out) > ev.accuracy(df) + 0.05
    assert ev.letter_distribution(out).loc["A", "pred"] < ev.letter_distribution(df).loc["A", "pred"]
    assert isinstance(out["scores"][0], dict) and out["correct"].dtype == bool
    # a number of choices without an estimate is left alone; None stays None
    assert ch.debias_scores({"A": 0.6, "B": 0.4}, {4: np.full(4, 0.25)}) == {"A": 0.6, "B": 0.4}
    assert ch.debias_scores(None, {}) is None
    d = ch.cyclic_average([{"A": 0.8, "B": 0.2}, {"A": 0.5, "B": 0.5}])  # shift 1: shown A = original B
    assert d["A"] > d["B"] and sum(d.values()) == pytest.approx(1)


def test_shuffle_and_map_back_round_trip():
    choices = [("A", "Đúng"), ("B", "Sai"), ("C", "Không rõ"), ("D", "Cả hai")]
    shown, mapping = ch.permute_choices(choices, "7:q1")
    assert (shown, mapping) == ch.permute_choices(choices, "7:q1")  # reproducible
    assert [l for l, _ in shown] == list("ABCD")
    assert sorted(t for _, t in shown) == sorted(t for _, t in choices)
    original = dict(choices)
    for letter, text in shown:  # the shown letter maps back to the choice with the same text
        assert original[ch.map_back(letter, mapping)] == text
    scores = {l: p for (l, _), p in zip(shown, [0.1, 0.2, 0.3, 0.4])}
    back = ch.map_back(scores, mapping)
    assert list(back) == list("ABCD") and sum(back.values()) == pytest.approx(1)
    assert all(back[mapping[l]] == p for l, p in scores.items())
    assert ch.map_back(None, mapping) is None
    # different seeds give different orders somewhere; cyclic_shift follows its documented convention
    assert len({tuple(ch.permute_choices(choices, s)[1].values()) for s in range(10)}) > 1
    cs, cm = ch.cyclic_shift(choices, 1)
    assert cs[0] == ("A", "Sai") and cm == {"A": "B", "B": "C", "C": "D", "D": "A"}


# --------------------------------------------------------------------------- reports and plots

def test_summary_table_writers_and_plots(tmp_path):
    runs = {"zero-shot": clustered(), "no video": run([("1", "v", "A", "A", {"A": 0.7, "B": 0.3}, 2, 500)])}
    t = ev.summary_table(runs, {"zero-shot": {"model": "tiny:internvl", "adapter": None, "scorer": "generate"}},
                         n_boot=200)
    for c in ["model", "adapter", "frames", "scorer", "accuracy", "ci_low", "ci_high", "n", "latency_p50_ms",
              "latency_p95_ms"]:
        assert c in t.columns
    assert list(t["run"]) == ["zero-shot", "no video"] and list(t["n"]) == [20, 1]
    assert t.loc[1, "scorer"] == "likelihood" and t.loc[1, "frames"] == 8 and t.loc[1, "latency_p50_ms"] == 500
    csv, md = ev.write_summary(t, tmp_path)
    assert pd.read_csv(csv).shape == t.shape
    text = md.read_text()
    assert text.startswith("| run | model |") and "| zero-shot | tiny:internvl |" in text and "0.500" in text
    figs = [plots.plot_accuracy(t, majority=0.4), plots.plot_confusions(runs), plots.plot_letter_distribution(runs),
            plots.plot_reliability(runs), plots.plot_coverage(runs), plots.plot_latency(runs)]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    for f in figs:
        plt.close(f)


def test_evaluate_runs_side_by_side_and_json(tmp_path):
    """Two runs on the same questions: paired counts, changed questions, debias effect, plain JSON out."""
    base = [(f"q{i}", f"v{i // 2}", "A", "A" if i % 3 else "B", {"A": 0.6, "B": 0.4}, 2, 100 + i) for i in range(12)]
    a = run(base)
    b = run([(i, v, "B" if k < 4 else p, g, s, n, t) for k, (i, v, p, g, s, n, t) in enumerate(base)])
    b["pred_raw"] = a["pred"]  # as a debiased run writes it
    runs = {"a": a, "b": b}
    pt = ev.paired_table(runs, n_boot=100)
    row = pt.iloc[0]
    # q0..q3 changed A -> B: q0, q3 (gold B) wrong -> right; q1, q2 (gold A) right -> wrong
    assert (row["run"], row["wrong_to_right"], row["right_to_wrong"], row["pred_changed"]) == ("b", 2, 2, 4)
    ch = ev.changed_vs_reference(runs)
    assert list(ch["id"]) == ["q0", "q1", "q2", "q3"] and list(ch["change"][:2]) == ["wrong_to_right", "right_to_wrong"]
    eff = ev.debias_effects(runs).set_index("letter")
    assert list(ev.debias_effects(runs)["run"].unique()) == ["b"]
    assert eff.loc["all", "acc_raw"] == ev.accuracy(a) and eff.loc["all", "acc_debiased"] == ev.accuracy(b)
    # the reference for the majority letter leaves out the evaluated ids (val questions are part of train)
    reference = pd.concat([a.assign(pred=None), run([(f"t{i}", "t", None, "B") for i in range(5)])])
    m = ev.evaluate_runs(runs, {"a": {"model": "m", "variant": "plain"}}, reference=reference, n_boot=100)
    json.dumps(m, allow_nan=False)  # NaN -> null, numpy -> plain
    assert m["runs_order"] == ["a", "b"] and m["baselines"]["majority_letter"] == pytest.approx(ev.accuracy(
        a.assign(pred="B")))
    assert m["paired"][0]["b01"] == 2 and m["summary"][0]["variant"] == "plain" and m["runs"]["b"]["debias_effect"]
    assert m["runs"]["a"]["by_theme"] is None and m["runs"]["a"]["confusion"]["labels"] == ["A", "B"]
    with pytest.raises(ValueError, match="no gold answers"):
        ev.evaluate_runs({"x": a.assign(answer=None)})


def test_list_parameters_accept_one_path_or_a_json_list(tmp_path):
    """``papermill -p predictions x.jsonl`` passes a string: it is one run, not a list of characters."""
    from roadbuddy_utils.answer.submit import merge_predictions
    from roadbuddy_utils.common.files import as_list

    p = tmp_path / "run_a" / "predictions.jsonl"
    p.parent.mkdir()
    p.write_text('{"id": "q1", "pred": "A", "answer": "A"}\n')
    assert results.run_labels(str(p)) == ["run_a"]
    assert list(results.load_runs(str(p))) == ["run_a"] and list(results.runs_meta(str(p))) == ["run_a"]
    assert list(results.load_runs(f'["{p}"]', '["mine"]')) == ["mine"]
    assert list(merge_predictions(str(p))) == ["q1"]
    assert as_list(("a", "b")) == ["a", "b"] and as_list(None) is None
    with pytest.raises(ValueError, match=r'-y "predictions: \[a, b\]"'):
        as_list(3, "predictions")
    with pytest.raises(ValueError, match="does not parse"):
        as_list("[a.jsonl, b", "predictions")

"""Ensembles of single-clip runs: several runs of the same questions combined into one run that 05 and 07
take like any other.

    python -m roadbuddy_utils ensemble outputs/brief/03_uniform/predictions.jsonl \\
        outputs/brief/03_select/predictions.jsonl --method mean --out outputs/brief/ensemble_mean
    python -m roadbuddy_utils ensemble a/submission.csv b/submission.csv c/submission.csv --method vote --out outputs/vote
    python -m roadbuddy_utils ensemble test_a.jsonl test_b.jsonl --method fit --val val_a.jsonl val_b.jsonl --out outputs/fit

    info = build_ensemble(paths, "mean", out_dir)   # the same in Python: writes both files, returns ensemble.json

Writes ``{out}/predictions.jsonl`` (one line per question: ``pred``, ``scores`` when the members have
them, ``members`` with each member's letter, ``members_used``, gold ``answer`` and ``video`` from the
members, ``time_ms`` the members' sum: an ensemble pays for every member within the 30 s budget) and
``{out}/ensemble.json`` (members, method, weights, how they were chosen). Questions are joined by id;
an id some member lacks is answered by the others and its line says which were used.

Methods:

* ``vote``: the letter most members give; works on submission CSVs. A tie goes to the tied letter with
  the largest summed probability over the members that have scores, else to the earliest member's
  letter (``ensemble.json`` says which rule applied how often). ``scores``, written only when every
  member has them, are the vote shares (agreement), not probabilities.
* ``mean``: the arithmetic mean of the members' letter probabilities (a linear pool); members must score
  the same letters of a question (else that line is an error, the run goes on). Arithmetic, not
  geometric: one member that is confidently wrong (probability near 0 on the right letter) cannot veto
  the others, the pooled scores stay a probability distribution without renormalising, and averaging
  probabilities is what deep ensembles do (Lakshminarayanan et al., 2017). The geometric mean suits
  one model's scores under several orderings of its choices (cyclic debiasing, ``choices.cyclic_average``),
  where it cancels a multiplicative letter bias; here the members are different runs.
* ``fit``: a weighted linear pool whose member weights are learned on labelled validation runs of the
  same members (``--val``, in the same order): the weights minimise the log loss of the gold letter
  (convex on the simplex; scipy SLSQP), then are shrunk towards equal weights by the amount with the
  lowest held-out log loss in cross-validation grouped by video (scikit-learn ``GroupKFold``): no clip
  is used both to fit a weight and to judge it. Test questions whose clip is in the validation runs
  (``--val`` = the evaluated runs themselves, as in 05) are answered out of fold: with the weights
  fitted without their clip's fold.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..common.files import as_list, write_json, write_jsonl
from ..data.choices import _missing
from .compare import bootstrap_ci, json_safe, paired_comparison, scored
from .results import read_predictions, run_labels

METHODS = ("vote", "mean", "fit")
SHRINK = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of equal weights mixed into the fitted ones (cross-validated)
_FLOOR = 1e-6  # probabilities below this count as this much in the log loss (a zero would be -inf)


def _has_scores(x) -> bool:
    return isinstance(x, Mapping) and len(x) > 0


def _member_frames(paths: Sequence, labels: Sequence[str] | None, gold: Mapping[str, str] | None) -> dict[str, pd.DataFrame]:
    paths = as_list(paths, "runs")
    if not paths or len(paths) < 2:
        raise ValueError(f"an ensemble needs at least two runs, got {paths}")
    out = {}
    for lab, p in zip(run_labels(paths, labels), paths):
        df = read_predictions(p)
        if gold:
            df["answer"] = [gold.get(i) if _missing(a) else a for i, a in zip(df["id"], df["answer"])]
        out[lab] = df.set_index("id", drop=False)
    return out


def _first(values):
    return next((v for v in values if not _missing(v)), None)


def _base_line(qid: str, rows: dict[str, dict], method: str) -> dict:
    """What every ensemble line carries: the question's facts from the members, their letters, the cost."""
    times = [r.get("time_ms") for r in rows.values()]
    return {"id": qid, "video": _first(r.get("video") for r in rows.values()),
            "answer": _first(r.get("answer") for r in rows.values()),
            "n_choices": _first(r.get("n_choices") for r in rows.values()),
            "pred": None, "scores": None, "source": f"ensemble:{method}", "error": None,
            "time_ms": None if any(_missing(t) for t in times) else round(float(sum(times)), 1),
            "members": {lab: (None if _missing(r.get("pred")) else r.get("pred")) for lab, r in rows.items()},
            "members_used": []}


def _rows_by_id(members: dict[str, pd.DataFrame]) -> list[tuple[str, dict[str, dict]]]:
    """(id, {member label: its line}) in the first member's order, then ids only later members have."""
    ids = list(dict.fromkeys(i for df in members.values() for i in df.index))
    recs = {lab: df.to_dict("index") for lab, df in members.items()}
    return [(i, {lab: recs[lab][i] for lab in members if i in recs[lab]}) for i in ids]


# --------------------------------------------------------------------------- vote

def vote_line(qid: str, rows: dict[str, dict]) -> tuple[dict, str | None]:
    """Majority letter of the members' answers; (line, tie rule used: None, "scores" or "order")."""
    line = _base_line(qid, rows, "vote")
    preds = {lab: r.get("pred") for lab, r in rows.items() if not _missing(r.get("pred"))}
    line["members_used"] = list(preds)
    if not preds:
        line["error"] = "no member answered this question"
        return line, None
    votes = Counter(preds.values())
    top = max(votes.values())
    tied = [l for l in dict.fromkeys(preds.values()) if votes[l] == top]  # in member order
    rule = None
    if len(tied) > 1:
        sums = {l: sum(float(r["scores"].get(l, 0.0)) for r in rows.values() if _has_scores(r.get("scores")))
                for l in tied}
        best = max(sums.values())
        by_scores = [l for l in tied if sums[l] == best]
        if any(_has_scores(r.get("scores")) for r in rows.values()) and len(by_scores) == 1:
            tied, rule = by_scores, "scores"
        else:
            rule = "order"
    line["pred"], line["votes"] = tied[0], dict(votes)
    if all(_has_scores(r.get("scores")) for r in rows.values()):
        letters = sorted(set().union(*(r["scores"] for r in rows.values())))
        line["scores"] = {l: votes.get(l, 0) / len(preds) for l in letters}
    return line, rule


# --------------------------------------------------------------------------- linear pools (mean, fit)

def pool_line(qid: str, rows: dict[str, dict], weights: Mapping[str, float], method: str) -> dict:
    """Weighted arithmetic mean of the members' letter probabilities (weights renormalised over the
    members that scored this question); an error line if they score different letters."""
    line = _base_line(qid, rows, method)
    scored_rows = {lab: r["scores"] for lab, r in rows.items() if _has_scores(r.get("scores"))}
    if not scored_rows:
        line["error"] = "no member has letter scores for this question"
        return line
    letter_sets = {lab: tuple(sorted(s)) for lab, s in scored_rows.items()}
    if len(set(letter_sets.values())) > 1:
        line["error"] = "members score different letters: " + ", ".join(f"{lab} {''.join(ls)}"
                                                                        for lab, ls in letter_sets.items())
        return line
    letters = next(iter(letter_sets.values()))
    w = np.array([weights[lab] for lab in scored_rows], float)
    if w.sum() <= 0:
        w = np.ones(len(w))
    p = (w[:, None] * np.array([[float(s[l]) for l in letters] for s in scored_rows.values()])).sum(0) / w.sum()
    p = p / p.sum()
    line["scores"] = {l: round(float(x), 6) for l, x in zip(letters, p)}
    line["pred"] = letters[int(np.argmax(p))]  # exact ties: the earlier letter
    line["members_used"] = list(scored_rows)
    return line


def _require_scores(members: dict[str, pd.DataFrame], method: str) -> None:
    for lab, df in members.items():
        if not df["scores"].map(_has_scores).any():
            raise ValueError(f"--method {method} needs letter probabilities, and run {lab!r} "
                             f"({df.attrs.get('file')}) has none (a submission or a generate-mode run): use --method vote")


def grouped_folds(groups: Sequence, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit indices, judge indices) per fold, grouped so that no group (video) is on both sides."""
    from sklearn.model_selection import GroupKFold

    groups = np.asarray([str(g) for g in groups])
    n_groups = len(set(groups))
    if n_groups < 2:
        raise ValueError(f"grouped cross-validation needs questions about at least 2 videos, got {n_groups}")
    return list(GroupKFold(n_splits=min(n_splits, n_groups)).split(np.zeros(len(groups)), groups=groups))


def fit_pool_weights(gold_probs: np.ndarray) -> np.ndarray:
    """Member weights on the simplex minimising the mean log loss ``-log(sum_m w_m p_m(gold))``
    (``gold_probs``: questions x members). Convex, so SLSQP from equal weights finds the optimum."""
    from scipy.optimize import minimize

    g = np.clip(np.asarray(gold_probs, float), _FLOOR, 1.0)
    m = g.shape[1]
    res = minimize(lambda w: -np.mean(np.log(np.clip(g @ w, _FLOOR, None))), np.full(m, 1.0 / m),
                   jac=lambda w: -(g / np.clip(g @ w, _FLOOR, None)[:, None]).mean(0),
                   bounds=[(0.0, 1.0)] * m, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
                   method="SLSQP")
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def _judge(w: np.ndarray, probs: list[np.ndarray], gold_idx: np.ndarray) -> tuple[float, float]:
    """Log loss and accuracy of the pool with weights ``w`` (probs: per question, members x letters)."""
    pooled = [w @ p for p in probs]
    nll = -np.mean([np.log(max(q[g], _FLOOR)) for q, g in zip(pooled, gold_idx)])
    return float(nll), float(np.mean([int(np.argmax(q)) == g for q, g in zip(pooled, gold_idx)]))


def choose_weights(probs: list[np.ndarray], gold_idx: np.ndarray, groups: Sequence, n_splits: int = 5) -> dict:
    """Fit the pool's weights on all questions; pick their shrinkage towards equal weights by grouped
    cross-validation (the fold's fitted weights judged on its held-out videos). Returns weights, shrink,
    the cross-validation table and the folds (videos on each side)."""
    groups = np.asarray([str(g) for g in groups])
    gp = np.array([p[:, g] for p, g in zip(probs, gold_idx)])  # questions x members
    m = gp.shape[1]
    u = np.full(m, 1.0 / m)
    folds = grouped_folds(groups, n_splits)
    losses = {s: [] for s in SHRINK}
    hits = {s: [] for s in SHRINK}
    fold_info = []
    for k, (fit_i, judge_i) in enumerate(folds):
        w_k = fit_pool_weights(gp[fit_i])
        for s in SHRINK:
            nll, acc = _judge((1 - s) * w_k + s * u, [probs[i] for i in judge_i], gold_idx[judge_i])
            losses[s].append(nll * len(judge_i))
            hits[s].append(acc * len(judge_i))
        fold_info.append({"fold": k, "n_fit": len(fit_i), "n_judge": len(judge_i),
                          "fit_videos": sorted(set(groups[fit_i])), "judge_videos": sorted(set(groups[judge_i]))})
    n = len(gold_idx)
    cv = [{"shrink": s, "log_loss": sum(losses[s]) / n, "accuracy": sum(hits[s]) / n} for s in SHRINK]
    best = min(cv, key=lambda r: (round(r["log_loss"], 9), -r["shrink"]))["shrink"]  # ties: closer to equal
    w = (1 - best) * fit_pool_weights(gp) + best * u
    return {"weights": w, "shrink": best, "cv": cv, "folds": fold_info}


def _val_matrix(val: dict[str, pd.DataFrame]) -> tuple[list[str], list[np.ndarray], np.ndarray, list[str], dict]:
    """The validation questions every member scored, with gold: ids, per-question member x letter
    probabilities, gold letter index, video; and how many were left out and why."""
    ids, probs, gold_idx, videos = [], [], [], []
    left = Counter()
    for qid, by_member in _rows_by_id(val):
        rows = [by_member.get(lab) for lab in val]
        gold = _first(r.get("answer") for r in rows if r is not None)
        if any(r is None or not _has_scores(r.get("scores")) for r in rows):
            left["a member has no scores for it"] += 1
            continue
        letters = tuple(sorted(rows[0]["scores"]))
        if any(tuple(sorted(r["scores"])) != letters for r in rows):
            left["members score different letters"] += 1
            continue
        if gold is None or gold not in letters:
            left["no gold letter among the scored ones"] += 1
            continue
        ids.append(qid)
        probs.append(np.array([[float(r["scores"][l]) for l in letters] for r in rows]))
        gold_idx.append(letters.index(gold))
        videos.append(str(_first(r.get("video") for r in rows) or f"id:{qid}"))
    return ids, probs, np.array(gold_idx, int), videos, dict(left)


def fit_ensemble(members: dict[str, pd.DataFrame], val: dict[str, pd.DataFrame], n_splits: int = 5) -> tuple[list[dict], dict]:
    """The ``fit`` method: weights chosen on ``val`` (same members, same order), applied to ``members``;
    questions whose clip is in ``val`` get the weights of the outer fold that held their clip out."""
    _require_scores(val, "fit")
    ids, probs, gold_idx, videos, left = _val_matrix(val)
    if len(ids) < 2:
        raise ValueError(f"fit needs labelled validation questions scored by every member; found {len(ids)} "
                         f"(left out: {left or 'none'})")
    labels = list(members)
    chosen = choose_weights(probs, gold_idx, videos, n_splits)
    weights = {lab: round(float(w), 4) for lab, w in zip(labels, chosen["weights"])}
    fold_of: dict[str, int] = {}
    fold_weights = []
    val_videos = set(videos)
    if any(str(v) in val_videos for df in members.values() for v in df["video"].dropna()):
        videos_arr = np.asarray(videos)
        for k, (fit_i, judge_i) in enumerate(grouped_folds(videos_arr, n_splits)):
            inner = choose_weights([probs[i] for i in fit_i], gold_idx[fit_i], videos_arr[fit_i], n_splits)
            fold_weights.append({"fold": k, "weights": {lab: round(float(w), 4) for lab, w in zip(labels, inner["weights"])},
                                 "shrink": inner["shrink"],
                                 "fit_videos": sorted(set(videos_arr[fit_i])),
                                 "judge_videos": sorted(set(videos_arr[judge_i]))})
            fold_of.update({v: k for v in videos_arr[judge_i]})
    lines, n_out_of_fold = [], 0
    for qid, rows in _rows_by_id(members):
        video = _first(r.get("video") for r in rows.values())
        k = fold_of.get(str(video) if video is not None else f"id:{qid}")
        line = pool_line(qid, rows, fold_weights[k]["weights"] if k is not None else weights, "fit")
        if k is not None:
            line["fold"], n_out_of_fold = k, n_out_of_fold + 1
        lines.append(line)
    info = {"weights": weights, "shrink_to_equal": chosen["shrink"], "cv": chosen["cv"], "folds": chosen["folds"],
            "n_val_questions": len(ids), "n_val_videos": len(set(videos)), "val_left_out": left,
            "how_chosen": "linear pool of the members' letter probabilities; weights minimise the log loss of the "
                          "gold letter on the validation runs (SLSQP on the simplex), then are shrunk towards "
                          "equal weights by the share with the lowest held-out log loss in cross-validation "
                          f"grouped by video (GroupKFold, {len(chosen['folds'])} folds): no clip both fits and "
                          "judges a weight",
            "out_of_fold": {"n_questions": n_out_of_fold, "folds": fold_weights,
                            "why": "these test questions' clips are in the validation runs: each is answered with "
                                   "the weights chosen without its clip's fold"} if fold_weights else None}
    return lines, info


# --------------------------------------------------------------------------- build

def combine(members: dict[str, pd.DataFrame], method: str, val: dict[str, pd.DataFrame] | None = None,
            n_splits: int = 5) -> tuple[list[dict], dict]:
    """Ensemble lines and the method's facts for ``ensemble.json`` (no files written)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "fit" and val:
        raise ValueError("--val is for --method fit")
    if method == "vote":
        lines, rules = [], Counter()
        for qid, rows in _rows_by_id(members):
            line, rule = vote_line(qid, rows)
            lines.append(line)
            rules[rule or "no tie"] += 1
        scored_all = all(df["scores"].map(_has_scores).all() for df in members.values())
        return lines, {"weights": {lab: 1 for lab in members}, "ties": dict(rules),
                       "tie_break": "summed probabilities of the tied letters over the members that have scores; "
                                    "without scores (or equal sums), the earliest member's letter",
                       "scores": "vote shares" if scored_all else None}
    _require_scores(members, method)
    if method == "mean":
        w = {lab: 1.0 / len(members) for lab in members}
        return [pool_line(q, rows, w, "mean") for q, rows in _rows_by_id(members)], {
            "weights": w, "how_chosen": "equal weights (arithmetic mean of probabilities)", "scores": "probabilities"}
    if not val:
        raise ValueError("--method fit needs --val: the same members' runs on labelled questions")
    if len(val) != len(members):
        raise ValueError(f"--val needs one run per member ({len(members)}), got {len(val)}")
    val = dict(zip(members, val.values()))  # the i-th validation run belongs to the i-th member
    lines, info = fit_ensemble(members, val, n_splits)
    return lines, info | {"scores": "probabilities"}


def build_ensemble(paths: Sequence, method: str, out_dir, val: Sequence | None = None,
                   labels: Sequence[str] | None = None, gold: Mapping[str, str] | None = None,
                   n_splits: int = 5) -> dict:
    """Read the member runs (``predictions.jsonl`` or submission CSVs), combine them, write
    ``{out_dir}/predictions.jsonl`` and ``{out_dir}/ensemble.json``; returns the latter's content.
    ``gold`` ({id: letter}) fills gold letters the members' lines lack (a test split scored with a key)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if val and method != "fit":
        raise ValueError("--val is for --method fit")
    if method == "fit" and len(as_list(val, "val") or []) != len(as_list(paths, "runs")):
        raise ValueError(f"--method fit needs --val with one labelled run per member ({len(as_list(paths, 'runs'))}, "
                         f"same order), got {as_list(val, 'val')}")
    members = _member_frames(paths, labels, gold)
    val_runs = _member_frames(val, None, gold) if val else None
    lines, info = combine(members, method, val_runs, n_splits)
    out = Path(out_dir)
    write_jsonl([json_safe(ln) for ln in lines], out / "predictions.jsonl")
    errors = Counter(ln["error"].split(":")[0] for ln in lines if ln["error"])
    doc = {"method": method, "members": [{"label": lab, "path": str(p)} for lab, p in zip(members, as_list(paths))],
           "val": [str(p) for p in as_list(val)] if val else None, "n_questions": len(lines),
           "n_partial": sum(len(ln["members_used"]) < len(members) for ln in lines if not ln["error"]),
           "errors": dict(errors)} | info
    write_json(json_safe(doc), out / "ensemble.json")
    return json_safe(doc)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "ensemble"


def build_ensembles(specs, predictions, labels, out_dir, gold: Mapping[str, str] | None = None, items=None,
                    n_splits: int = 5) -> dict[str, str]:
    """05's ``ensembles`` parameter: ``{label: predictions path}`` of the given runs followed by one
    ensemble per spec, each built into ``{out_dir}/<label>/``.

    A spec is ``{"label": ..., "method": "vote" | "mean" | "fit", "members": [run labels] (default: every
    given run), "val": [one labelled predictions file per member] (fit only; default: the members
    themselves, answered out of fold)}``. Gold letters come from ``items`` and ``gold`` where lines lack them."""
    paths = as_list(predictions, "predictions")
    runs = dict(zip(run_labels(paths, labels), map(str, paths)))
    out = dict(runs)
    letters = {str(i.id): i.answer for i in (items or []) if i.answer} | dict(gold or {})
    for k, spec in enumerate(as_list(specs, "ensembles") or []):
        if not isinstance(spec, Mapping) or set(spec) - {"label", "method", "members", "val"} or "method" not in spec:
            raise ValueError(f"ensembles[{k}]: expected {{label, method, members, val}} with a method, got {spec!r}")
        members = as_list(spec.get("members"), f"ensembles[{k}].members") or list(runs)
        unknown = [m for m in members if m not in runs]
        if unknown:
            raise ValueError(f"ensembles[{k}].members: {unknown} are not runs; the runs are {list(runs)}")
        label = spec.get("label") or f"{spec['method']} of {len(members)}"
        if label in out:
            raise ValueError(f"ensembles[{k}].label {label!r} is already a run label")
        val = as_list(spec.get("val"), f"ensembles[{k}].val")
        if spec["method"] == "fit" and not val:
            val = [runs[m] for m in members]
        target = Path(out_dir) / _slug(label)
        build_ensemble([runs[m] for m in members], spec["method"], target, val, members, letters or None, n_splits)
        out[label] = str(target / "predictions.jsonl")
    return out


# --------------------------------------------------------------------------- 05's table

def ensemble_table(runs: Mapping[str, pd.DataFrame], paths: Mapping[str, str], n_boot: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """Each ensemble (a run whose folder has ``ensemble.json``) beside its members: accuracy with its
    by-video interval, the best member on these questions (picked on them, which favours the member),
    and the paired difference ensemble - best member with its by-video interval and McNemar's exact p."""
    import json

    rows = []
    by_path = {str(Path(p).resolve()): lab for lab, p in paths.items()}
    for label, path in paths.items():
        doc_path = Path(path).parent / "ensemble.json"
        if label not in runs or not doc_path.exists():
            continue
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
        # a member is the run with its file (an ensemble built by the CLI under other labels), else its label
        members = [lab for m in doc["members"]
                   if (lab := by_path.get(str(Path(m["path"]).resolve()), m["label"])) in runs and lab != label]
        if not members:
            continue
        accs = {m: bootstrap_ci(runs[m], n_boot=n_boot, seed=seed) for m in members}
        best = max(members, key=lambda m: (accs[m][0], -members.index(m)))
        acc, lo, hi = bootstrap_ci(runs[label], n_boot=n_boot, seed=seed)
        d = paired_comparison(runs[best], runs[label], n_boot=n_boot, seed=seed)
        rows.append({"ensemble": label, "method": doc["method"], "members": ", ".join(members),
                     "weights": ", ".join(f"{float(v):.2f}" for v in (doc.get("weights") or {}).values()),
                     "n": len(scored(runs[label])), "accuracy": acc, "ci_low": lo, "ci_high": hi,
                     "best_member": best, "best_accuracy": accs[best][0], "diff": d["diff"],
                     "diff_ci_low": d.get("diff_ci_low"), "diff_ci_high": d.get("diff_ci_high"),
                     "wrong_to_right": d["b01"], "right_to_wrong": d["b10"], "p_exact": d["p_exact"]})
    cols = ["ensemble", "method", "members", "weights", "n", "accuracy", "ci_low", "ci_high", "best_member",
            "best_accuracy", "diff", "diff_ci_low", "diff_ci_high", "wrong_to_right", "right_to_wrong", "p_exact"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- command line

def cli(args) -> int:
    """``python -m roadbuddy_utils ensemble`` for single-clip runs: writes the files, prints what it did."""
    doc = build_ensemble(args.runs, args.method, args.out, args.val, args.labels, n_splits=args.folds)
    print(f"{Path(args.out) / 'predictions.jsonl'}: {doc['n_questions']} questions, {args.method} of "
          f"{', '.join(m['label'] for m in doc['members'])}")
    print(f"  weights: {doc.get('weights')}" + (f"  (shrink to equal {doc['shrink_to_equal']})" if args.method == "fit" else ""))
    if doc.get("ties"):
        print(f"  ties: {doc['ties']}  ({doc['tie_break']})")
    if doc.get("out_of_fold"):
        print(f"  {doc['out_of_fold']['n_questions']} questions answered out of fold (their clips are in --val)")
    for what in ("errors", "val_left_out"):
        if doc.get(what):
            print(f"  {what}: {doc[what]}")
    if doc.get("n_partial"):
        print(f"  {doc['n_partial']} questions answered by only some members (see members_used)")
    print(f"  {Path(args.out) / 'ensemble.json'}")
    return 0

"""Language metrics as the DriveBench toolkit computes them (pycocoevalcap, Java) against values computed
once with the toolkit's code, the Python aggregations that resample them, the approximation without
Java, and both side by side on the demo (multiview/cocoeval.py)."""
import numpy as np
import pytest

from roadbuddy_utils.multiview import cocoeval
from roadbuddy_utils.multiview.cocoeval import (
    bleu_from_stats,
    bleu_stats,
    java_unavailable,
    language_scores,
    meteor_from_stats,
    rouge_l_coco,
)

NO_JAVA = java_unavailable()
needs_java = pytest.mark.skipif(NO_JAVA is not None, reason=f"COCO-caption metrics need Java: {NO_JAVA}")

# (prediction, gold) pairs in the style of DriveBench's open answers (the project's own sentences: no real answer)
PAIRS = [("A white car is at the front left of the ego vehicle.",
          "There is a white sedan to the front-left of the ego car, it's moving."),
         ("The ego vehicle should slow down and yield to the pedestrian.",
          "Decelerate gradually without braking, and yield to the pedestrian crossing."),
         ("Carry on at a steady speed.", "Carry on at a steady speed, or speed up."),
         ("First, watch the black SUV at the front camera. It is parked, so keep going.",
          "First, watch that black suv seen by the front camera. The object is parked, so the ego vehicle should "
          "carry on at a steady speed.")]
# Computed once with pycocoevalcap 1.2 itself (PTBTokenizer, Meteor().compute_score, Rouge(), Bleu(4) on
# the tokenized pairs; OpenJDK 17), not with the project's code.
PTB = [("a white car is at the front left of the ego vehicle",
        "there is a white sedan to the front-left of the ego car it 's moving"),
       ("the ego vehicle should slow down and yield to the pedestrian",
        "decelerate gradually without braking and yield to the pedestrian crossing"),
       ("carry on at a steady speed", "carry on at a steady speed or speed up"),
       ("first watch the black suv at the front camera it is parked so keep going",
        "first watch that black suv seen by the front camera the object is parked so the ego vehicle should carry "
        "on at a steady speed")]
ROUGE_L = [0.43571428571428567, 0.4803149606299213, 0.7721518987341772, 0.47843137254901963]
METEOR_SEGMENTS = [0.3342023876853932, 0.24468934648281668, 0.4288273689135157, 0.23066543035283324]
METEOR_CORPUS = 0.283498613623124
BLEU_CORPUS = [0.5010188667675511, 0.40041084208187167, 0.3163865939184292, 0.2435593616090362]


def test_rouge_and_bleu_on_tokenized_text_match_the_toolkit():
    """ROUGE-L (beta 1.2) and corpus BLEU need no Java once the text is tokenized."""
    assert [rouge_l_coco(h, r) for h, r in PTB] == pytest.approx(ROUGE_L, abs=1e-12)
    stats = np.array([bleu_stats(h, r) for h, r in PTB])
    for n in range(1, 5):
        rows = np.array([bleu_stats(h, r, n) for h, r in PTB])
        assert bleu_from_stats(rows, n) == pytest.approx(BLEU_CORPUS[n - 1], abs=1e-12)
    # the package's own corpus BLEU on a resample with repeats: the aggregation is the scorer's
    from pycocoevalcap.bleu.bleu import Bleu

    idx = [0, 0, 2, 3, 3, 3]
    pkg, _ = Bleu(4).compute_score({k: [PTB[i][1]] for k, i in enumerate(idx)},
                                   {k: [PTB[i][0]] for k, i in enumerate(idx)}, verbose=0)
    assert bleu_from_stats(stats[idx]) == pytest.approx(pkg[3], abs=1e-12)


@needs_java
def test_pinned_values_with_java():
    s = language_scores([h for h, _ in PAIRS], [r for _, r in PAIRS], "coco")
    assert s.impl == "coco" and s.tokens == PTB
    assert list(s.rouge_l) == pytest.approx(ROUGE_L, abs=1e-12)
    assert list(s.meteor) == pytest.approx(METEOR_SEGMENTS, abs=1e-9)
    c = s.corpus(np.arange(4))
    assert c["meteor"] == pytest.approx(METEOR_CORPUS, abs=1e-9)  # the corpus score, not the segment mean
    assert abs(float(np.mean(METEOR_SEGMENTS)) - METEOR_CORPUS) > 0.01
    assert c["rouge_l"] == pytest.approx(np.mean(ROUGE_L)) and c["bleu4"] == pytest.approx(BLEU_CORPUS[3], abs=1e-12)


@needs_java
def test_meteor_aggregation_equals_the_jar_on_resamples():
    """Intervals recompute METEOR's corpus score from summed statistics; the jar's EVAL must agree."""
    hyps = [h for h, _ in PAIRS] + [r for _, r in PAIRS[:2]] + [""]  # exact copies and an empty answer
    refs = [r for _, r in PAIRS] + [r for _, r in PAIRS[:2]] + [PAIRS[2][1]]
    s = language_scores(hyps, refs, "coco")
    assert s.meteor[4] == pytest.approx(1.0, abs=0.01) and s.meteor[6] == 0.0
    jar = cocoeval.meteor_jar()
    rng = np.random.default_rng(0)
    for _ in range(15):
        idx = rng.integers(0, len(hyps), size=rng.integers(1, 12))
        segs, corpus = jar.evaluate(s.meteor_stats[idx])
        assert meteor_from_stats(s.meteor_stats[idx]) == pytest.approx(corpus, abs=1e-9)
        assert list(s.meteor[idx]) == pytest.approx(segs, abs=1e-9)


@needs_java
def test_ptb_tokenizer_edge_cases():
    assert cocoeval.ptb_tokenize(["", "Stop.", "two\nlines here", "  "]) == ["", "stop", "two lines here", ""]


def test_without_java_the_approximation_is_used_and_labelled(monkeypatch):
    monkeypatch.setattr(cocoeval, "java_unavailable", lambda: "no `java` on PATH: install a Java runtime")
    assert cocoeval.resolve_impl("auto") == "approx"
    with pytest.raises(RuntimeError, match="no `java` on PATH"):
        cocoeval.resolve_impl("coco")
    s = language_scores([h for h, _ in PAIRS], [r for _, r in PAIRS])
    assert s.impl == "approx" and s.meteor_stats is None
    info = cocoeval.impl_info(s.impl)
    assert info["approximation"] is True and "APPROXIMATION" in info["label"] and "java" in info["why"]
    # rouge-score splits "front-left", keeps no punctuation and uses beta 1: not the toolkit's numbers
    assert s.rouge_l[0] == pytest.approx(0.5714, abs=1e-4) and s.rouge_l[0] != pytest.approx(ROUGE_L[0], abs=0.01)


def test_both_implementations_side_by_side_on_the_demo(tmp_path):
    """The demo's answered open questions with half-length answers: coco beside approx per subtask."""
    from roadbuddy_utils.multiview.demo import make_demo_multiview
    from roadbuddy_utils.multiview.mvscore import compare_impls, read_items

    paths = make_demo_multiview(tmp_path / "mv", n=24, seed=0)
    gold = read_items(paths["questions"])
    results = [dict(g, answer=" ".join(g["answer"].split()[: max(1, len(g["answer"].split()) // 2)])) for g in gold]
    t = compare_impls(results, gold)
    assert len(t) >= 2 and (t["n_open"] > 0).all()
    assert {"rouge_l (approx)", "meteor (approx)", "bleu4 (approx)"} <= set(t.columns)
    if NO_JAVA is None:
        assert {"rouge_l (coco)", "meteor (coco)", "bleu4 (coco)"} <= set(t.columns)
        assert (t["meteor (coco)"] != t["meteor (approx)"]).all()  # different tokenization and METEOR versions

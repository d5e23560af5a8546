"""Language metrics of open answers as the DriveBench toolkit computes them (COCO-caption code), or an
approximation where Java is missing.

    s = language_scores(predictions, golds)          # impl "auto": coco where Java runs, else approx
    s.impl, s.corpus(np.arange(len(s)))              # "coco", {"rouge_l": .., "meteor": .., "bleu4": ..} on 0..1
    java_unavailable()                               # None, or why not and how to install Java

**coco** (``pycocoevalcap`` 1.2, the MS-COCO caption evaluation code the toolkit calls): both sides
are tokenized by the Stanford PTB tokenizer (``stanford-corenlp-3.4.1.jar``, lower-cased,
punctuation tokens removed); ROUGE-L is the LCS F-measure with beta = 1.2, averaged over items;
METEOR 1.5 runs ``meteor-1.5.jar - - -stdio -l en -norm`` and the reported figure is the jar's
corpus score (its sufficient statistics summed over the items, not a mean of item scores); BLEU-4 is
corpus-level with ``option='closest'``. The commands, flags and formulas are the package's; the
tokenizer's temporary file goes to the system temp folder rather than into site-packages (which may
be read-only), and empty answers are not sent to it (an empty line would shift the output lines).

So that an interval can resample items, the corpus figures are recomputed from per-item statistics:
``meteor_from_stats`` is METEOR 1.5's aggregation (sum the 23 statistics, ``-l en`` parameters
alpha 0.85, beta 0.2, gamma 0.6, delta 0.75, module weights 1.0 / 0.6 / 0.8 / 0.6), ``bleu_from_stats``
the BLEU scorer's; tests check both against the jar and the package on the same items.

**approx** (no Java): the maintained Python scorers of ``scoring.py``: ``rouge-score`` ROUGE-L F1,
``nltk`` METEOR, ``sacrebleu`` sentence BLEU, each averaged over items. Their tokenization is not
PTB's and their METEOR and BLEU are item means, not corpus scores: every report labels them an
approximation (``impl_info``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

JAVA_HOWTO = ("install a Java runtime: Debian / Ubuntu `apt-get install -y default-jre-headless` "
              "(bash scripts/setup_java.sh does it); Kaggle / Colab: `!apt-get install -y default-jre-headless` "
              "in a cell; pycocoevalcap==1.2 (requirements.txt) carries the jars")
PUNCTUATIONS = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...",
                ";"}  # pycocoevalcap's ptbtokenizer.py: tokens removed after tokenizing
IMPLS = ("auto", "coco", "approx")

# METEOR 1.5, language "en", task "default"
M_ALPHA, M_BETA, M_GAMMA, M_DELTA = 0.85, 0.20, 0.60, 0.75
M_WEIGHTS = np.array([1.0, 0.60, 0.80, 0.60])  # exact, stem, synonym, paraphrase


def _package_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def java_unavailable() -> str | None:
    """None when the COCO-caption metrics can run here, else why not and how to fix it."""
    pkg = _package_dir()
    if pkg is None:
        return "pycocoevalcap is not installed (pip install pycocoevalcap==1.2)"
    for jar in ("tokenizer/stanford-corenlp-3.4.1.jar", "meteor/meteor-1.5.jar", "meteor/data/paraphrase-en.gz"):
        if not (pkg / jar).is_file():
            return f"pycocoevalcap at {pkg} lacks {jar} (a partial install?)"
    java = shutil.which("java")
    if java is None:
        return f"no `java` on PATH: {JAVA_HOWTO}"
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`java -version` failed ({type(e).__name__}: {e}): {JAVA_HOWTO}"
    return None


def resolve_impl(impl: str = "auto") -> str:
    """``"coco"`` or ``"approx"``; ``"coco"`` asked for where Java is missing raises with the reason."""
    if impl not in IMPLS:
        raise ValueError(f"metrics impl must be one of {IMPLS}, got {impl!r}")
    why = java_unavailable() if impl != "approx" else None
    if impl == "coco" and why:
        raise RuntimeError(f"COCO-caption metrics unavailable: {why}")
    return "approx" if impl == "approx" or why else "coco"


# ----------------------------------------------------------------------------------------------
# PTB tokenizer


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Each text as pycocoevalcap's ``PTBTokenizer`` returns it: Stanford PTB tokens, lower-cased,
    punctuation tokens dropped, joined by single spaces ("" for an empty text)."""
    out = [""] * len(texts)
    todo = [(k, " ".join(str(t).splitlines())) for k, t in enumerate(texts) if str(t or "").strip()]
    if not todo:
        return out
    pkg = _package_dir()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(t for _, t in todo))
        name = f.name
    try:
        cmd = ["java", "-cp", "stanford-corenlp-3.4.1.jar", "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", name]
        p = subprocess.run(cmd, cwd=pkg / "tokenizer", capture_output=True, timeout=600)
    finally:
        os.remove(name)
    if p.returncode != 0:
        raise RuntimeError(f"PTB tokenizer failed ({p.returncode}): {p.stderr.decode(errors='replace')[-500:]}")
    lines = p.stdout.decode("utf-8", errors="replace").split("\n")
    if len(lines) < len(todo):
        raise RuntimeError(f"PTB tokenizer returned {len(lines)} lines for {len(todo)} texts")
    for (k, _), line in zip(todo, lines):
        out[k] = " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)
    return out


# ----------------------------------------------------------------------------------------------
# METEOR 1.5 (the jar, one process per Python process: starting it loads the paraphrase table, ~20 s)


class MeteorJar:
    """``meteor-1.5.jar - - -stdio -l en -norm`` as pycocoevalcap's ``Meteor`` runs it."""

    def __init__(self):
        self.proc = subprocess.Popen(["java", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en",
                                      "-norm"], cwd=_package_dir() / "meteor", stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def _ask(self, line: str, n_replies: int = 1) -> list[str]:
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()
        out = [self.proc.stdout.readline().decode("utf-8").strip() for _ in range(n_replies)]
        if any(not o for o in out):
            raise RuntimeError(f"METEOR jar stopped answering (exit code {self.proc.poll()})")
        return out

    def stats(self, hyp: str, ref: str) -> np.ndarray:
        """The 23 sufficient statistics of one (hypothesis, reference) pair."""
        hyp = hyp.replace("|||", "").replace("  ", " ")  # as pycocoevalcap's _stat
        ref = ref.replace("|||", "")  # (PTB output: one line, so no newline can break the protocol)
        return np.array([float(x) for x in self._ask(f"SCORE ||| {ref} ||| {hyp}")[0].split()])

    def evaluate(self, stats_rows: Sequence[np.ndarray]) -> tuple[list[float], float]:
        """The jar's own scores for rows of statistics: per segment, and the corpus score (the figure
        pycocoevalcap reports)."""
        line = "EVAL" + "".join(" ||| " + " ".join(str(float(x)) for x in r) for r in stats_rows)
        out = [float(x) for x in self._ask(line, len(stats_rows) + 1)]
        return out[:-1], out[-1]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.kill()
            self.proc.wait()


@lru_cache(maxsize=1)
def meteor_jar() -> MeteorJar:
    jar = MeteorJar()
    atexit.register(jar.close)
    return jar


def meteor_from_stats(rows: np.ndarray) -> float:
    """METEOR 1.5's score of summed statistics (``-l en``): what the jar's EVAL prints last for the
    same rows; NaN for no rows. A row that matches its reference exactly in one chunk adds no chunk
    (the jar's aggregation rule)."""
    rows = np.asarray(rows, dtype=float).reshape(-1, 23)
    if not len(rows):
        return float("nan")
    stages = rows[:, 4:20].reshape(-1, 4, 4)  # per module: test content, ref content, test function, ref function
    t_tot, r_tot = stages[:, :, [0, 2]].sum(axis=(1, 2)), stages[:, :, [1, 3]].sum(axis=(1, 2))
    perfect = (t_tot == rows[:, 0]) & (r_tot == rows[:, 1]) & (rows[:, 20] == 1)
    s = rows.sum(axis=0)
    chunks = rows[~perfect, 20].sum()
    st = s[4:20].reshape(4, 4)
    d = M_DELTA
    t_len = d * (s[0] - s[2]) + (1 - d) * s[2]
    r_len = d * (s[1] - s[3]) + (1 - d) * s[3]
    t_match = (st[:, 0] * M_WEIGHTS * d).sum() + (st[:, 2] * M_WEIGHTS * (1 - d)).sum()
    r_match = (st[:, 1] * M_WEIGHTS * d).sum() + (st[:, 3] * M_WEIGHTS * (1 - d)).sum()
    with np.errstate(all="ignore"):
        p, r = t_match / t_len, r_match / r_len
        fmean = 1.0 / ((1 - M_ALPHA) / p + M_ALPHA / r)
        if t_tot.sum() == s[0] and r_tot.sum() == s[1] and chunks == 1:
            frag = 0.0
        else:
            frag = chunks / ((s[21] + s[22]) / 2)
        score = fmean * (1 - M_GAMMA * frag ** M_BETA)
    return 0.0 if np.isnan(score) else max(float(score), 0.0)


# ----------------------------------------------------------------------------------------------
# BLEU (pycocoevalcap's BleuScorer, option "closest") and ROUGE-L (beta 1.2)


def bleu_stats(hyp: str, ref: str, n: int = 4) -> np.ndarray:
    """``[test length, reference length, guessed 1..n-grams, correct 1..n-grams]`` of one tokenized
    pair, as ``bleu_scorer.cook_test`` counts them (one reference: "closest" is its length)."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    c = cook_test(hyp, cook_refs([ref], n=n), eff="closest", n=n)
    return np.array([c["testlen"], c["reflen"], *c["guess"], *c["correct"]], dtype=float)


def bleu_from_stats(rows: np.ndarray, n: int = 4) -> float:
    """Corpus BLEU-n of summed statistics, as ``BleuScorer.compute_score(option='closest')``; NaN for no rows."""
    rows = np.asarray(rows, dtype=float).reshape(-1, 2 + 2 * n)
    if not len(rows):
        return float("nan")
    s = rows.sum(axis=0)
    tiny, small = 1e-15, 1e-9
    bleu = 1.0
    for k in range(n):
        bleu *= (s[2 + n + k] + tiny) / (s[2 + k] + small)
    out = bleu ** (1.0 / n)
    ratio = (s[0] + tiny) / (s[1] + small)
    return float(out * np.exp(1 - 1 / ratio) if ratio < 1 else out)


def rouge_l_coco(hyp: str, ref: str) -> float:
    """pycocoevalcap's ROUGE-L of one tokenized pair (LCS precision / recall, F-measure with beta 1.2)."""
    from pycocoevalcap.rouge.rouge import Rouge

    return float(Rouge().calc_score([hyp], [ref]))


# ----------------------------------------------------------------------------------------------
# Per-item scores, resampled into corpus figures


@dataclass
class LanguageScores:
    """Per-item language statistics of n (prediction, gold) pairs; ``corpus(idx)`` gives the figures
    over any selection of items (with repeats: a bootstrap replicate), on 0..1."""

    impl: str  # "coco" | "approx"
    rouge_l: np.ndarray  # per item
    meteor: np.ndarray  # per item (coco: the jar's segment score from its statistics; NaN: no WordNet)
    bleu4: np.ndarray  # per item (coco: sentence BLEU-4 from the stats; approx: sacrebleu sentence BLEU)
    meteor_stats: np.ndarray | None = None  # (n, 23), coco only
    bleu_stats: np.ndarray | None = None  # (n, 10), coco only
    tokens: list[tuple[str, str]] | None = None  # coco: (prediction, gold) after the PTB tokenizer

    def __len__(self) -> int:
        return len(self.rouge_l)

    def corpus(self, idx) -> dict:
        idx = np.asarray(idx, dtype=int)
        if not len(idx):
            return {"rouge_l": None, "meteor": None, "bleu4": None}
        mean = lambda a: None if np.isnan(a[idx]).any() else float(a[idx].mean())  # noqa: E731
        if self.impl == "coco":
            return {"rouge_l": mean(self.rouge_l), "meteor": meteor_from_stats(self.meteor_stats[idx]),
                    "bleu4": bleu_from_stats(self.bleu_stats[idx])}
        return {"rouge_l": mean(self.rouge_l), "meteor": mean(self.meteor), "bleu4": mean(self.bleu4)}


def language_scores(hyps: Sequence[str], refs: Sequence[str], impl: str = "auto") -> LanguageScores:
    """Per-item statistics for predictions ``hyps`` against golds ``refs`` (same length), with the
    toolkit's code (``coco``) or the Python approximation (``approx``); ``auto`` picks coco where Java runs."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} predictions for {len(refs)} golds")
    impl = resolve_impl(impl)
    hyps, refs = [str(h or "") for h in hyps], [str(r or "") for r in refs]
    if impl == "approx":
        from .scoring import bleu4, meteor, rouge_l

        nan = float("nan")
        return LanguageScores("approx", np.array([rouge_l(h, r) for h, r in zip(hyps, refs)], dtype=float),
                              np.array([nan if (m := meteor(h, r)) is None else m for h, r in zip(hyps, refs)],
                                       dtype=float),
                              np.array([bleu4(h, r) for h, r in zip(hyps, refs)], dtype=float))
    tok = ptb_tokenize(hyps + refs) if hyps else []
    th, tr = tok[:len(hyps)], tok[len(hyps):]
    jar = meteor_jar() if hyps else None
    ms = np.array([jar.stats(h, r) for h, r in zip(th, tr)]).reshape(-1, 23)
    bs = np.array([bleu_stats(h, r) for h, r in zip(th, tr)]).reshape(-1, 10)
    return LanguageScores("coco", np.array([rouge_l_coco(h, r) for h, r in zip(th, tr)], dtype=float),
                          np.array([meteor_from_stats(row) for row in ms], dtype=float),
                          np.array([bleu_from_stats(row) for row in bs], dtype=float), ms, bs, list(zip(th, tr)))


def impl_info(impl: str) -> dict:
    """What produced the language figures, for every report (``metrics_impl``)."""
    if impl == "coco":
        from importlib.metadata import version

        return {"impl": "coco", "approximation": False,
                "label": f"pycocoevalcap {version('pycocoevalcap')} as the DriveBench toolkit: PTB tokenizer (Java), "
                         "ROUGE-L beta 1.2 averaged per item, METEOR 1.5 corpus score (-l en -norm), "
                         "BLEU-4 corpus (closest)"}
    return {"impl": "approx", "approximation": True, "why": java_unavailable(),
            "label": "APPROXIMATION (not the toolkit's tokenization): rouge-score ROUGE-L F1, nltk METEOR and "
                     "sacrebleu sentence BLEU, averaged per item"}

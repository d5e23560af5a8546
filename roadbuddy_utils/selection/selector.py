"""Question-aware test-time frame selection: dense candidates, a scorer, a spread-out top-k picker.

    sel = FrameSelector.build(SelectorConfig(scorer="learned", path="outputs/demo/02_frames@select/learned_scorer"))
    sample, info = sel.select_or_uniform(item, n_frames=8, max_side=448)   # FrameSample with scores

Candidates are frames decoded densely (``candidate_fps``, default 3 per second) once per clip, at
``max_side`` (small: only the scorer sees them), cached by ``frames.FrameCache``. Scorers
(``scorer``), each scoring every candidate for one question:

* ``uniform``: today's behaviour, the baseline: the clip's uniform segment centres, no candidates.
* ``embedding``: an image-text model (SigLIP / CLIP through ``AutoModel`` / ``AutoProcessor``;
  ``tiny:siglip`` is a random twin): cosine similarity of the question (+ its choices) and each frame.
* ``learned``: a logistic regression trained on ``support_frames`` (selection_run.train_learned) on
  frozen image features: the embedding model's, or the VLM's own vision tower's (``features``).

The picker keeps the best-scored candidates no two within ``min_gap_s``, plus ``context_frames``
of the uniform frames (those farthest from the picks). The picked frames are decoded at the
answering model's size (cached too). Any failure of a clip (too short for the candidate spacing,
unreadable mid-way) falls back to uniform frames, and the fallback is returned with the reason.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.questions import Item
from ..data.themes import THEMES, themes_of
from ..video.frames import (
    DEFAULT_BACKENDS,
    FrameCache,
    FrameSample,
    SamplingConfig,
    VideoReadError,
    dense_selector,
    fixed_selector,
    sample_frames,
)

SCORERS = ("uniform", "embedding", "learned")
FEATURES = ("embedding", "vlm", "auto")
EMBEDDING_TYPES = ("siglip", "clip")  # model_type values whose get_image/text_features this code reads
THEME_NAMES = list(THEMES) + ["other"]


@dataclass(frozen=True)
class SelectorConfig:
    """Every knob of frame selection (02, 03 and later 04/05/06 read the same block)."""

    scorer: str = "uniform"  # uniform | embedding | learned
    candidate_fps: float = 3.0  # candidates per second of clip
    max_candidates: int = 64  # at most this many per clip (spread evenly); the time budget lowers it
    min_gap_s: float = 0.5  # no two picks closer than this
    context_frames: int = 1  # of the n frames, this many are uniform frames away from the picks
    model: str = "tiny:siglip"  # embedding model: HF id / local folder of a SigLIP or CLIP checkpoint, tiny:siglip
    path: str | None = None  # learned: folder of a trained scorer (02 trains one when None)
    features: str = "embedding"  # learned: frozen image features: embedding | vlm | auto (02 measures both)
    vlm_model: str | None = None  # features "vlm": the VLM whose vision tower gives them (None: 03's model)
    max_side: int = 224  # candidates are decoded with this longest side
    window_s: float = 0.5  # a candidate within this of a support time is a positive (and a hit)
    interaction: str = "theme"  # learned: image features x question themes ("none": one detector for all)
    with_choices: bool = True  # embedding: the text is the question and its choices (else the question)
    batch_size: int = 32  # frames per forward pass of the feature model

    def __post_init__(self):
        if self.scorer not in SCORERS:
            raise ValueError(f"selector_scorer must be one of {SCORERS}, got {self.scorer!r}")
        if self.features not in FEATURES:
            raise ValueError(f"selector_features must be one of {FEATURES}, got {self.features!r}")
        if self.interaction not in ("theme", "none"):
            raise ValueError(f"selector_interaction must be 'theme' or 'none', got {self.interaction!r}")
        if not self.candidate_fps > 0:
            raise ValueError(f"selector_candidate_fps must be > 0, got {self.candidate_fps}")
        if self.max_candidates < 2:
            raise ValueError(f"selector_max_candidates must be >= 2, got {self.max_candidates}")
        if self.min_gap_s < 0 or self.window_s < 0:
            raise ValueError(f"selector_min_gap_s and window_s must be >= 0, got {self.min_gap_s}, {self.window_s}")
        if not 0 <= self.context_frames <= 2:
            raise ValueError(f"selector_context_frames must be 0, 1 or 2, got {self.context_frames}")
        if self.max_side < 32 or self.batch_size < 1:
            raise ValueError(f"selector max_side must be >= 32 and batch_size >= 1, got {self.max_side}, "
                             f"{self.batch_size}")
        if self.path is not None and self.scorer == "learned" and not Path(self.path).is_dir():
            raise FileNotFoundError(f"selector_path {self.path}: no such folder; train a scorer with 02_frames "
                                    "(frame_mode: select, selector_scorer: learned, selector_path: null)")


# --------------------------------------------------------------------------- picker (pure)

def near_support(times: Sequence[float], support: Sequence[float], window_s: float = 0.5) -> np.ndarray:
    """Per time: is it within ``window_s`` of a support time (a positive / a hit)."""
    t = np.asarray(times, float)[:, None]
    s = np.asarray(support, float)[None, :]
    return (np.abs(t - s) <= window_s + 1e-6).any(axis=1) if s.size else np.zeros(len(t), bool)


def pick_frames(times: Sequence[float], scores: Sequence[float], k: int, min_gap_s: float = 0.5,
                context_frames: int = 1, n_total: int | None = None) -> list[int]:
    """Positions (into ``times``) of ``k`` candidates, in time order.

    The ``k - context_frames`` best-scored ones, none within ``min_gap_s`` of another, then
    ``context_frames`` of the clip's uniform frames (the grid of ``k`` segment centres), each the
    one farthest from what is picked, snapped to the nearest free candidate. If the gap leaves too
    few candidates, the rest are the best remaining by score (the gap is a preference, k is not)."""
    times = np.asarray(times, float)
    scores = np.asarray(scores, float)
    n = len(times)
    if k >= n:
        return list(range(n))
    n_ctx = min(context_frames, k - 1)
    order = np.argsort(-scores, kind="stable")
    picks: list[int] = []
    for i in order:
        if len(picks) == k - n_ctx:
            break
        if all(abs(times[i] - times[j]) >= min_gap_s - 1e-9 for j in picks):
            picks.append(int(i))
    span = times[-1] - times[0]
    grid = list(times[0] + (np.arange(k) + 0.5) / k * span) if n > 1 else [times[0]]
    for _ in range(n_ctx):
        if not grid:
            break
        target = max(grid, key=lambda g: min((abs(g - times[j]) for j in picks), default=np.inf))
        grid.remove(target)
        free = [i for i in range(n) if i not in picks]
        spaced = [i for i in free if all(abs(times[i] - times[j]) >= min_gap_s - 1e-9 for j in picks)] or free
        picks.append(min(spaced, key=lambda i: abs(times[i] - target)))
    for i in order:  # too few spaced candidates: the best of the rest
        if len(picks) == k:
            break
        if int(i) not in picks:
            picks.append(int(i))
    return sorted(picks, key=lambda i: times[i])


# --------------------------------------------------------------------------- feature models

def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_embedding_checkpoint(model_id: str):
    """(model, processor, model_type) of a SigLIP / CLIP checkpoint; clear errors when it is missing
    or of another kind."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from ..models.tiny import resolve_model_id

    path = resolve_model_id(model_id)
    local = Path(path).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(f"selector_model {model_id}: folder has no config.json (not a saved checkpoint)")
    if not local.exists() and (str(path).startswith(("/", ".", "~")) or str(path).count("/") > 1):
        raise FileNotFoundError(f"selector_model {model_id}: no such folder; give a local SigLIP / CLIP checkpoint, "
                                "a Hugging Face id, or tiny:siglip")
    try:
        model_type = AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"selector_model {model_id}: cannot load its config ({type(e).__name__}: {e}); "
                                "offline, download the checkpoint beforehand and give its folder") from e
    if model_type not in EMBEDDING_TYPES:
        raise ValueError(f"selector_model {model_id}: model_type {model_type!r} is not a supported image-text "
                         f"embedding model ({', '.join(EMBEDDING_TYPES)}); give a SigLIP or CLIP checkpoint")
    device = _device()
    model = AutoModel.from_pretrained(path, dtype=torch.float16 if device.type == "cuda" else torch.float32)
    return model.to(device).eval(), AutoProcessor.from_pretrained(path), model_type


def _pooled(out):
    """``get_*_features`` return a tensor (older transformers) or an output whose pooler_output is it."""
    return getattr(out, "pooler_output", out)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


class EmbeddingModel:
    """An image-text embedding model: L2-normalised image and text vectors in one space."""

    def __init__(self, model_id: str, batch_size: int = 32):
        self.model_id = model_id
        self.model, self.processor, self.model_type = load_embedding_checkpoint(model_id)
        self.batch_size = batch_size
        self._text: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return f"embedding:{self.model_id}"

    def image_tensor(self, frames) -> "torch.Tensor":
        """L2-normalised image embeddings of one batch of frames, as a float tensor (gradients flow
        when enabled: selection_tune trains through it)."""
        import torch.nn.functional as F

        pv = self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(self.model.device,
                                                                                        self.model.dtype)
        return F.normalize(_pooled(self.model.get_image_features(pixel_values=pv)).float(), dim=-1)

    def text_tensor(self, texts: Sequence[str]) -> "torch.Tensor":
        """L2-normalised text embeddings, as a float tensor (see ``image_tensor``)."""
        import torch.nn.functional as F

        return F.normalize(_pooled(self.model.get_text_features(**self.tokenize(texts))).float(), dim=-1)

    def image_features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return np.concatenate([self.image_tensor(frames[k:k + self.batch_size]).cpu().numpy()
                                   for k in range(0, len(frames), self.batch_size)])

    def tokenize(self, texts: Sequence[str]):
        """Token ids on the model's device, padded as the checkpoint was trained."""
        tok = self.processor.tokenizer
        if self.model_type == "siglip":  # trained with max_length padding; the pooler reads the last position
            enc = tok(list(texts), padding="max_length", truncation=True, return_tensors="pt",
                      max_length=min(tok.model_max_length, self.model.config.text_config.max_position_embeddings))
        else:
            enc = tok(list(texts), padding=True, truncation=True, return_tensors="pt",
                      max_length=self.model.config.text_config.max_position_embeddings)
        return enc.to(self.model.device)

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        todo = [t for t in dict.fromkeys(texts) if t not in self._text]
        if todo:
            with torch.inference_mode():
                self._text.update(zip(todo, self.text_tensor(todo).cpu().numpy()))
        return np.stack([self._text[t] for t in texts])


class VisionTowerFeatures:
    """The answering VLM's own vision tower: the mean of its projected image tokens per frame."""

    def __init__(self, vlm, batch_size: int = 16, max_pixels: int | None = None):
        # the pixel budget is the scorer's (saved with it), not the answering run's: same features
        self.vlm, self.batch_size = vlm, batch_size
        self.max_pixels = max_pixels or vlm.cfg.max_pixels

    @property
    def name(self) -> str:
        return f"vlm:{self.vlm.cfg.model}"

    def image_features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        from ..models.config import fit_pixels

        vlm = self.vlm
        kw = {"crop_to_patches": False} if vlm.family == "internvl" else {}
        out = []
        with torch.inference_mode():
            for k in range(0, len(frames), self.batch_size):
                imgs = list(fit_pixels(frames[k:k + self.batch_size], self.max_pixels))
                batch = vlm.processor.image_processor(images=imgs, return_tensors="pt", **kw)
                inputs = {n: batch[n].to(vlm.device) for n in ("pixel_values", "image_grid_thw") if n in batch}
                pooled = _pooled(vlm.model.get_image_features(**inputs))
                rows = [p.float().mean(0) for p in pooled] if isinstance(pooled, (list, tuple)) \
                    else list(pooled.float().mean(1))
                out.append(torch.stack(rows).cpu().numpy())
        return _normalise(np.concatenate(out))


def question_text(item: Item, with_choices: bool = True) -> str:
    """What the embedding model compares frames with: the question, then its choices."""
    if not with_choices:
        return item.question
    return item.question + " " + " ".join(f"{l}. {t}" for l, t in item.choices)


def theme_vector(question: str) -> np.ndarray:
    """Multi-hot over ``themes.THEMES`` (+ "other"): the question's kind, for the learned scorer."""
    found = set(themes_of(question))
    return np.array([float(t in found) for t in THEME_NAMES])


# --------------------------------------------------------------------------- scorers

class LearnedScorer:
    """Logistic regression over frozen frame features (and their product with the question's themes).

    Arrays live in ``scorer.npz`` and settings in ``scorer.json`` (no pickle: loadable anywhere)."""

    FILES = ("scorer.json", "scorer.npz")

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray]):
        self.meta, self.arrays = meta, arrays

    @property
    def features(self) -> str:
        return self.meta["features"]

    @staticmethod
    def design(feats: np.ndarray, question: str, interaction: str, pca_mean=None, pca_components=None) -> np.ndarray:
        """Rows for one question's candidates: [g, g - clip mean, (g - clip mean) x themes] (PCA-reduced g).

        The clip-relative part says what this frame has that the clip's others lack; the theme
        product lets one question kind look for its own event (a light, not a passing car)."""
        g = feats if pca_components is None else (feats - pca_mean) @ pca_components.T
        rel = g - g.mean(0, keepdims=True)
        parts = [g, rel]
        if interaction == "theme":
            parts.append((rel[:, :, None] * theme_vector(question)[None, None, :]).reshape(len(g), -1))
        return np.concatenate(parts, axis=1)

    def scores(self, item: Item, feats: np.ndarray) -> np.ndarray:
        a = self.arrays
        x = self.design(feats, item.question, self.meta["interaction"], a.get("pca_mean"), a.get("pca_components"))
        return ((x - a["x_mean"]) / a["x_scale"]) @ a["coef"] + float(a["intercept"])

    def save(self, folder) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "scorer.npz", **self.arrays)
        (folder / "scorer.json").write_text(json.dumps(self.meta, indent=1, ensure_ascii=False, default=str),
                                            encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder) -> "LearnedScorer":
        folder = Path(folder)
        missing = [f for f in cls.FILES if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"selector_path {folder}: no trained scorer here (missing {', '.join(missing)}); "
                                    "02_frames trains one (frame_mode: select, selector_scorer: learned)")
        meta = json.loads((folder / "scorer.json").read_text(encoding="utf-8"))
        with np.load(folder / "scorer.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(meta, arrays)


# --------------------------------------------------------------------------- the selector

@dataclass
class Selection:
    """What one question's selection did (for its line in predictions / selected_frames)."""

    selector: str
    timestamps: list[float]
    scores: list[float] | None
    frame_indices: list[int]
    n_candidates: int = 0
    candidates_ms: float = 0.0  # the clip's candidates: decode (or cache read) + features, shared by its questions
    scoring_ms: float = 0.0  # this question's scores + the pick + decoding the picked frames
    error: str | None = None  # why selection failed (then fallback says what was used instead)
    fallback: str | None = None  # "uniform" when the question fell back to uniform frames
    candidate_times: list[float] | None = None
    candidate_scores: list[float] | None = None

    def record(self) -> dict:
        return {k: (round(v, 2) if k.endswith("_ms") else v) for k, v in asdict(self).items()}


def decode_candidates(video, cfg: SelectorConfig, cache: FrameCache | None = None, max_candidates: int | None = None,
                      backends: Sequence[str] = DEFAULT_BACKENDS) -> FrameSample:
    """A clip's dense candidates (``candidate_fps``, at most ``max_candidates``, ``max_side`` px), cached."""
    return sample_frames(video, SamplingConfig("uniform", n_frames=1, max_side=cfg.max_side), cache=cache,
                         backends=backends, selector=dense_selector(cfg.candidate_fps, max_candidates or cfg.max_candidates))


class FrameSelector:
    """Candidates, features and scores per clip (kept in memory for the clip's other questions)."""

    def __init__(self, cfg: SelectorConfig, scorer=None, embedder: EmbeddingModel | None = None,
                 vision: VisionTowerFeatures | None = None, cache: FrameCache | None = None,
                 backends: Sequence[str] = DEFAULT_BACKENDS):
        self.cfg, self.scorer, self.embedder, self.vision = cfg, scorer, embedder, vision
        self.cache, self.backends = cache, backends
        self._clips: dict[tuple, tuple[FrameSample, dict, float]] = {}
        self._failed: dict[tuple, str] = {}

    @classmethod
    def build(cls, cfg: SelectorConfig, vlm=None, cache: FrameCache | None = None) -> "FrameSelector":
        """Load what ``cfg.scorer`` needs: the embedding model, a trained learned scorer (and the VLM
        whose vision tower it was trained on: ``vlm`` when it is that model, else loaded)."""
        if cfg.scorer == "uniform":
            return cls(cfg, cache=cache)
        if cfg.scorer == "embedding":
            return cls(cfg, embedder=EmbeddingModel(cfg.model, cfg.batch_size), cache=cache)
        if not cfg.path:
            raise ValueError("selector_scorer 'learned' needs selector_path (a scorer 02_frames trained); "
                             "run 02_frames with frame_mode: select first")
        scorer = LearnedScorer.load(cfg.path)
        cfg = replace(cfg, max_side=scorer.meta["max_side"])  # features of frames the size it was trained on
        if scorer.features == "embedding":
            return cls(cfg, scorer, embedder=EmbeddingModel(scorer.meta["feature_model"], cfg.batch_size), cache=cache)
        want = scorer.meta["feature_model"]
        if vlm is None or vlm.cfg.model != want:
            from ..models.config import ModelConfig
            from ..models.vlm import VLM

            vlm = VLM.load(ModelConfig(want))
        return cls(cfg, scorer, vision=VisionTowerFeatures(vlm, max_pixels=scorer.meta.get("max_pixels")), cache=cache)

    @property
    def name(self) -> str:
        if self.cfg.scorer == "learned" and self.scorer is not None:
            return f"learned[{self.scorer.features}]"
        return self.cfg.scorer

    def feature_model(self, kind: str):
        model = self.embedder if kind == "embedding" else self.vision
        if model is None:
            raise ValueError(f"no {kind} feature model loaded for selector {self.name}")
        return model

    def candidates(self, video, max_candidates: int | None = None, kind: str | None = None):
        """(candidates, {feature kind: features}, ms) of one clip; raises on a bad clip.

        Only the features stay in memory (``frames`` of the returned sample is None): a whole
        split's candidate pixels would take gigabytes; another feature kind reads them back from
        the cache."""
        kind = kind or (self.scorer.features if isinstance(self.scorer, LearnedScorer) else "embedding")
        m = min(max_candidates or self.cfg.max_candidates, self.cfg.max_candidates)
        key = (str(video), m)
        if key in self._failed:
            raise ValueError(self._failed[key])
        t0 = time.perf_counter()
        cand, feats, ms = self._clips.get(key, (None, {}, 0.0))
        try:
            if kind not in feats:
                cand = decode_candidates(video, self.cfg, self.cache, m, self.backends)
                feats[kind] = self.feature_model(kind).image_features(cand.frames)
                cand.frames = None
        except (VideoReadError, ValueError) as e:
            self._failed[key] = str(e)
            raise
        ms += (time.perf_counter() - t0) * 1000
        self._clips[key] = (cand, feats, ms)
        return cand, feats, ms

    def forget(self, video) -> None:
        """Drop a clip's candidates from memory (its last question is done)."""
        for key in [k for k in self._clips if k[0] == str(video)]:
            del self._clips[key]

    def scores_for(self, item: Item, cand: FrameSample, feats: dict) -> np.ndarray:
        if isinstance(self.scorer, LearnedScorer):
            return self.scorer.scores(item, feats[self.scorer.features])
        text = self.embedder.text_features([question_text(item, self.cfg.with_choices)])[0]
        return feats["embedding"] @ text

    def select(self, item: Item, n_frames: int, max_side: int,
               max_candidates: int | None = None) -> tuple[FrameSample, Selection]:
        """The question's frames: picked from scored candidates (``uniform``: the segment centres)."""
        video = item.video_path
        if self.cfg.scorer == "uniform":
            t0 = time.perf_counter()
            s = sample_frames(video, SamplingConfig("uniform", n_frames=n_frames, max_side=max_side), cache=self.cache,
                              backends=self.backends)
            return s, Selection("uniform", s.timestamps, None, s.frame_indices,
                                scoring_ms=(time.perf_counter() - t0) * 1000)
        cand, feats, cand_ms = self.candidates(video, max_candidates)
        t0 = time.perf_counter()
        scores = self.scores_for(item, cand, feats)
        pos = pick_frames(cand.timestamps, scores, n_frames, self.cfg.min_gap_s, self.cfg.context_frames)
        chosen = [cand.frame_indices[p] for p in pos]
        s = sample_frames(video, SamplingConfig("uniform", n_frames=len(chosen), max_side=max_side), cache=self.cache,
                          backends=self.backends, selector=fixed_selector(chosen))
        s.scores = [float(scores[p]) for p in pos]
        sel = Selection(self.name, s.timestamps, [round(x, 6) for x in s.scores], s.frame_indices, len(cand.timestamps),
                        cand_ms, (time.perf_counter() - t0) * 1000,
                        candidate_times=[round(t, 3) for t in cand.timestamps],
                        candidate_scores=[round(float(x), 5) for x in scores])
        return s, sel

    def select_or_uniform(self, item: Item, n_frames: int, max_side: int,
                          max_candidates: int | None = None) -> tuple[FrameSample | None, Selection]:
        """``select``, falling back to uniform frames when the clip defeats selection (the reason is
        kept in ``error``, ``fallback="uniform"``); (None, selection with both errors) if even that fails."""
        try:
            return self.select(item, n_frames, max_side, max_candidates)
        except (VideoReadError, ValueError) as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - a feature model failing on one clip (out of memory) must not stop a batch
            error = f"{item.video_path}: {type(e).__name__}: {e}"
        if self.cfg.scorer == "uniform":
            return None, Selection("uniform", [], None, [], error=error)
        t0 = time.perf_counter()
        try:
            s = sample_frames(item.video_path, SamplingConfig("uniform", n_frames=n_frames, max_side=max_side),
                              cache=self.cache, backends=self.backends)
        except (VideoReadError, ValueError) as e2:
            return None, Selection(self.name, [], None, [], error=f"{error}; uniform frames failed too: {e2}")
        return s, Selection(self.name, s.timestamps, None, s.frame_indices, scoring_ms=(time.perf_counter() - t0) * 1000,
                            error=error, fallback="uniform")


def with_path(cfg: SelectorConfig, path) -> SelectorConfig:
    """The same config pointing at a trained scorer."""
    return replace(cfg, path=str(path))



def config_for_mode(frame_mode: str, modes: Sequence[str] = ("uniform", "select"), **knobs) -> SelectorConfig | None:
    """A notebook's ``frame_mode`` and ``selector_*`` knobs (without the prefix) as a SelectorConfig
    for ``"select"``, None for the other modes; an unknown mode is an error listing ``modes``."""
    if frame_mode not in modes:
        raise ValueError(f"frame_mode must be one of {tuple(modes)}, got {frame_mode!r}")
    return SelectorConfig(**knobs) if frame_mode == "select" else None


def config_from_params(frame_mode: str, params: dict, modes: Sequence[str] = ("uniform", "select")) -> SelectorConfig | None:
    """``config_for_mode`` from a notebook's parameters: every ``selector_<field>`` key of ``params``
    (a notebook's ``globals()``, a YAML mapping) that names a SelectorConfig field."""
    from dataclasses import fields

    names = {f.name for f in fields(SelectorConfig)}
    knobs = {k[len("selector_"):]: v for k, v in params.items() if k.startswith("selector_") and k[len("selector_"):] in names}
    return config_for_mode(frame_mode, modes, **knobs)

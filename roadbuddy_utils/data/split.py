"""The grouped train / validation split (no clip on both sides), and the questions a run answers.

    split = load_or_make_split(items)               # written once, read back by every notebook
    items = eval_items(data_json, videos_root, split="val")

A split belongs to its data: without an explicit ``split_file`` it is stored under a name derived from the
questions' ids, the validation fraction and the seed (``default_split_file``), so every notebook pointed
at the same data finds the same split and other data gets its own, with nothing to delete or configure.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..common.files import write_json
from .questions import Item, load_items


def make_split(items: list[Item], val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Train/validation split grouped by video: no clip on both sides. Deterministic by seed."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    videos = sorted({i.video_rel for i in items})
    order = np.random.default_rng(seed).permutation(len(videos))
    n_val = max(1, int(round(val_fraction * len(videos))))
    val_videos = {videos[k] for k in order[:n_val]}
    return {"seed": seed, "val_fraction": val_fraction,
            "train_ids": [i.id for i in items if i.video_rel not in val_videos],
            "val_ids": [i.id for i in items if i.video_rel in val_videos],
            "val_videos": sorted(val_videos)}


SPLITS_DIR = Path("outputs") / "splits"  # relative, like every output path: the notebooks run at the repository root


def default_split_file(items: list[Item], val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Where the split of these questions lives when no ``split_file`` is given: a name from their ids
    (sorted, hashed), the validation fraction and the seed, e.g. ``outputs/splits/1490q-3f2a9c1b7e-val0.2-seed0.json``."""
    digest = hashlib.sha1("\n".join(sorted(i.id for i in items)).encode("utf-8")).hexdigest()[:10]
    return SPLITS_DIR / f"{len(items)}q-{digest}-val{val_fraction:g}-seed{seed}.json"


def load_or_make_split(items: list[Item], split_path=None, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write the split once; every later call (every notebook) reads the same file back.

    ``split_path`` None: the file derived from the data (``default_split_file``). A stored split that does
    not cover exactly these items belongs to other data: an error naming both fixes, never silently replaced.
    """
    split_path = Path(split_path) if split_path else default_split_file(items, val_fraction, seed)
    ids = {i.id for i in items}
    if split_path.exists():
        split = json.loads(split_path.read_text())
        stored = set(split["train_ids"]) | set(split["val_ids"])
        if stored != ids:
            raise ValueError(f"{split_path}: stored split covers {len(stored)} ids but the data has {len(ids)} "
                             f"({len(stored ^ ids)} differ): it is the split of other data. Leave split_file unset "
                             f"(None) to use this data's own split ({default_split_file(items, val_fraction, seed)}), "
                             "or give another path")
        return split
    split = make_split(items, val_fraction, seed)
    write_json(split, split_path)
    return split


def select(items: list[Item], ids) -> list[Item]:
    keep = set(ids)
    return [i for i in items if i.id in keep]


def attach_answers(items: list[Item], answers_json) -> list[Item]:
    """Gold letters from a separate answer key onto items that have none (a test split): a competition-style
    JSON with ``answer`` fields, an ``{id: letter}`` map or an ``id,answer`` CSV (``keys.read_answer_key``).

    A file that cannot be used at all raises ``DatasetError``; a bad entry, or a letter the question
    does not offer, leaves that item without gold and is named in one warning (never guessed)."""
    if not answers_json:
        return items
    from .keys import file_problems, parse_answer_key
    from .questions import DatasetError, Problem

    gold, problems = parse_answer_key(answers_json)
    if file_problems(problems):
        raise DatasetError(problems)
    for it in items:
        letter = gold.get(it.id)
        if it.answer is not None or letter is None:
            continue
        if letter in it.letters:
            it.answer = letter
        else:
            problems.append(Problem(str(answers_json), it.id, "answer", f"{letter} is not one of this question's "
                                                                           f"letters {it.letters}: left without gold"))
    if problems:
        import warnings

        warnings.warn(f"{answers_json}: {len(problems)} answer(s) not used:\n" + "\n".join(map(str, problems)),
                      stacklevel=2)
    return items


def eval_items(data_json, videos_root=None, split: str = "all", split_file=None, val_fraction: float = 0.2,
               split_seed: int = 0, answers_json=None) -> list[Item]:
    """The questions a run answers: ``all`` of the file, or the grouped ``val`` split (01's; ``split_file`` None:
    the one derived from the data)."""
    items = attach_answers(load_items(data_json, videos_root), answers_json)
    if split == "all":
        return items
    if split != "val":
        raise ValueError(f"split must be 'val' or 'all', got {split!r}")
    return select(items, load_or_make_split(items, split_file, val_fraction, split_seed)["val_ids"])

"""The multi-camera prompt: each image after its camera name, object positions spelled out, optional
retrieval notes, the question and the answer instruction of its style.

    p = build_prompt(item, routes[item.subtask], select_images(item, max_images=6), rag_text=None)
    p.segments()   # [("text", "CAM_FRONT:"), ("image", path), ..., ("text", question block)]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .data import MVItem, describe_tags, parse_options
from .router import Route, item_style

PROMPT = {
    "system": "You are the driving assistant of a self-driving car. You see the images of its surround "
              "cameras; the camera name is given before each image.",
    "image_label": "{camera}:",
    "objects": "Objects referred to in the question:\n{objects}",
    "notes": "Notes from earlier annotations (similarity in brackets; they may not apply here):\n{notes}",
    "question": "Question: {question}",
    "mcq": "Answer with the letter of the correct option ({letters}) first, then one short sentence of reasoning.",
    "yesno": "Answer Yes or No first, then one short sentence of reasoning.",
    "open": "Answer in a few concise sentences; name objects by their ids (such as c1) and cameras where relevant.",
}


@dataclass
class MVPrompt:
    """Text around the images. The model wrapper inserts image k right after ``image_labels[k]``
    and appends ``text``; ``segments()`` gives that interleaving directly."""

    system: str
    images: list[tuple[str, Path]]
    image_labels: list[str]
    text: str
    style: str
    letters: list[str]  # option letters offered (MCQ), for the likelihood scorer / extractor
    max_new_tokens: int

    def segments(self) -> list[tuple[str, str]]:
        """``[("text", label), ("image", path), ..., ("text", question block)]``."""
        out: list[tuple[str, str]] = []
        for label, (_, p) in zip(self.image_labels, self.images):
            out += [("text", label), ("image", str(p))]
        return out + [("text", self.text)]

    def render(self) -> str:
        """Flat text with ``<image>`` placeholders: for prompt hashes and snapshot tests."""
        return "\n".join([self.system] + [s if kind == "text" else "<image>" for kind, s in self.segments()])


def build_prompt(item: MVItem, route: Route, images: Sequence[tuple[str, Path]], rag_text: str | None = None,
                 describe_objects: bool = True) -> MVPrompt:
    """The prompt for ``item``: camera label per image, object positions spelled out, optional
    retrieval notes, the question and the style's answer instruction. For MCQs with no options
    in the text (corruption questions can list them elsewhere) the letters default to A-E."""
    style, max_new = item_style(item, route)
    letters = [l for l, _ in parse_options(item.question)] if style == "mcq" else []
    if style == "mcq" and not letters:
        letters = list("ABCDE")
    parts = []
    if describe_objects and item.tags:
        parts.append(PROMPT["objects"].format(objects=describe_tags(item.tags)))
    if rag_text:
        parts.append(PROMPT["notes"].format(notes=rag_text))
    parts.append(PROMPT["question"].format(question=item.question.strip()))
    parts.append(PROMPT[style].format(letters=", ".join(letters)))
    return MVPrompt(PROMPT["system"], list(images), [PROMPT["image_label"].format(camera=c) for c, _ in images],
                    "\n".join(parts), style, letters, max_new)



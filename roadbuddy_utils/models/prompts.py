"""The one multiple-choice prompt: task statement, question, normalised choices, "answer with a letter".

    text = question_text(item, lang="vi")     # the text part; the model wrapper adds the frames

Token-level choices (why the prompt looks like this):

* Choices are re-rendered from the parsed ``(letter, text)`` pairs as ``"A. text"`` one per line,
  whatever the raw file had (``"D.Text"``, doubled lists), so every item reads the same way.
* The instruction names exactly the letters this question offers (``A, B`` for two choices ...),
  matching the letters the ``likelihood`` scorer restricts the next-token logits to.
* The chat template ends with the generation prompt ``<|im_start|>assistant\\n``: the next token
  is the bare letter (``A``, not `` A``), so one forward pass scores every choice.
* The system message states the domain (Vietnamese dashcam, Vietnamese traffic law); it is short
  because every token of it is paid for on every question.
* An item that carries glossary notes (``knowledge: glossary``: a knowledge.ground.GroundedItem) gets them
  after the frames note and before the question, one "- " line each under a header naming the regulation;
  an item without notes renders exactly as before (the prompt snapshots do not change).
"""
from __future__ import annotations

from ..data.questions import Item

# InternVL's own video convention ("Frame1: <image>"), kept in every language: it is what the model saw.
FRAME_LABEL = "Frame{i}: "

TEMPLATES = {
    "vi": {
        "system": "Bạn là trợ lý phân tích video camera hành trình trên đường phố Việt Nam. "
                  "Trả lời theo luật giao thông Việt Nam.",
        "frames": "Các khung hình trên được trích từ video camera hành trình theo thứ tự thời gian.",
        "no_video": "Không có khung hình nào của video; hãy trả lời dựa trên câu hỏi.",
        "question": "Câu hỏi: {question}",
        "choices": "Các lựa chọn:",
        "instruction": "Hãy trả lời bằng một chữ cái ({letters}).",
        "knowledge": "Ghi chú theo QCVN 41:2024/BGTVT và Luật 36/2024/QH15:",
    },
    "en": {
        "system": "You are an assistant analysing dashcam videos recorded on Vietnamese roads. "
                  "Answer according to Vietnamese traffic law.",
        "frames": "The frames above come from a dashcam video, in time order.",
        "no_video": "No video frames are available; answer from the question alone.",
        "question": "Question: {question}",
        "choices": "Choices:",
        "instruction": "Answer with a single letter ({letters}).",
        "knowledge": "Notes from QCVN 41:2024/BGTVT and Law 36/2024/QH15 (in Vietnamese):",
    },
}


def template(lang: str) -> dict:
    if lang not in TEMPLATES:
        raise ValueError(f"prompt language must be one of {sorted(TEMPLATES)}, got {lang!r}")
    return TEMPLATES[lang]


def question_text(item: Item, lang: str = "vi", with_video: bool = True, choices=None) -> str:
    """Text that follows the frames: frames note, the item's glossary notes (if any), question, choices
    (``choices`` overrides the item's, e.g. a permuted order), and the letter instruction."""
    t = template(lang)
    choices = item.choices if choices is None else choices
    notes = getattr(item, "notes", ())
    lines = [t["frames"] if with_video else t["no_video"]]
    if notes:
        lines += [t["knowledge"], *(f"- {n}" for n in notes)]
    lines += [t["question"].format(question=item.question.strip()), t["choices"]]
    lines += [f"{letter}. {text}" for letter, text in choices]
    lines.append(t["instruction"].format(letters=", ".join(l for l, _ in choices)))
    return "\n".join(lines)

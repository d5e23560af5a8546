import pytest

from roadbuddy_utils.models.extract import extract_letter

FOUR = [("A", "Rẽ trái"), ("B", "Rẽ phải"), ("C", "Đi thẳng"), ("D", "Quay đầu")]
TF = [("A", "Đúng"), ("B", "Sai")]
YN = [("A", "Có"), ("B", "Không")]


@pytest.mark.parametrize("text,choices,expected", [
    ("B", FOUR, ("B", "letter")),
    ("B.", FOUR, ("B", "letter")),
    ("(C) Đi thẳng", FOUR, ("C", "letter")),
    ("**D**", FOUR, ("D", "letter")),
    ("Đáp án: C", FOUR, ("C", "answer_phrase")),
    ("đáp án đúng là (D)", FOUR, ("D", "answer_phrase")),
    ("The answer is C.", FOUR, ("C", "answer_phrase")),
    ("Answer: B", FOUR, ("B", "answer_phrase")),
    ("A car turns left, so the answer is B", FOUR, ("B", "answer_phrase")),
    ("Rẽ phải", FOUR, ("B", "choice_text")),
    ("Xe được phép rẽ phải.", FOUR, ("B", "choice_text")),
    ("<think>A or C? The light is green so straight.</think>\nC", FOUR, ("C", "letter")),
    ("<think>unfinished reasoning that never closes", FOUR, (None, "none")),
    ("Sai", TF, ("B", "choice_text")),
    ("Đúng, vì biển báo cho phép.", TF, ("A", "choice_text")),
    ("Yes", YN, ("A", "yes_no")),
    ("No.", YN, ("B", "yes_no")),
    ("I would pick D here", FOUR, ("D", "letter_anywhere")),
])
def test_extracts(text, choices, expected):
    assert extract_letter(text, choices) == expected


@pytest.mark.parametrize("text", ["", "hmm", "a", "A car is turning", "E", "Both B and C look right"])
def test_nothing_to_extract_is_explicit(text):
    assert extract_letter(text, FOUR) == (None, "none")


def test_only_offered_letters():
    assert extract_letter("Đáp án: C", TF) == (None, "none")


def test_article_after_answer_phrase_is_not_a_letter():
    ch = [("A", "Rẽ trái"), ("B", "Rẽ phải"), ("C", "Đi thẳng")]
    assert extract_letter("The answer is a car turning, so C", ch) == ("C", "letter_anywhere")
    assert extract_letter("answer: b.", ch) == ("B", "answer_phrase")

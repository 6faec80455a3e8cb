"""What the notes classifier refuses to read (empty notes, other languages) and how long notes are windowed.

No model is loaded here: the gate and the windowing are pure Python (tests/test_notes_model.py runs them through
the shipped classifier)."""

from __future__ import annotations

import pytest

from medviewer.notes.language import LANGUAGE_NOT_SUPPORTED, NO_TEXT, OK, check_note
from medviewer.notes.windows import note_sentences, note_windows


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n", None, "12. 3 -- ?", "..."])
def test_no_text(text):
    gate = check_note(text)
    assert gate.status == NO_TEXT and not gate.ok and gate.reason


@pytest.mark.parametrize("text, language", [
    ("Kein Pneumothorax.", "de"),
    ("Herz nicht vergrößert. Kein Pleuraerguss.", "de"),
    ("Pas d'épanchement pleural. Pas de pneumothorax.", "fr"),
    ("Sin neumotórax. Derrame pleural izquierdo leve.", "es"),
    ("No neumotórax.", "es"),
    ("Nessun versamento pleurico, non pneumotorace.", "it"),
    ("Não há derrame pleural.", "pt"),
    ("Geen pneumothorax, geen pleuravocht.", "nl"),
    ("Brak odmy opłucnej.", "pl"),
    ("Ingen pneumothorax.", "sv"),
    ("Нет пневмоторакса, сердце не увеличено.", "cyrillic"),
    ("未见气胸，心影不大。", "cjk"),
    ("Δεν υπάρχει πνευμοθώρακας.", "greek"),
    ("لا يوجد استرواح صدري", "arabic"),
])
def test_other_languages_are_not_supported(text, language):
    gate = check_note(text)
    assert gate.status == LANGUAGE_NOT_SUPPORTED, text
    assert gate.language == language and "only English" in gate.reason


@pytest.mark.parametrize("text", [
    "No pneumothorax.",
    "PTX. RLL atx.",
    "sm L eff, no ptx",
    "65 y/o M w/ cough, ?PNA RLL",
    "Cardiomegaly. Bibasilar atelectasis. Small bilateral effusions.",
    "Dr. Müller reviewed: no ptx",
    "cardiomeg\n- b/l effusions\n- no pneumo",
    "Pneumothorax",
    "NAD",
])
def test_english_notes_are_classified(text):
    assert check_note(text).status == OK, text


def test_every_openi_report_passes_the_gate():
    from medviewer.notes.data import load_reports

    try:
        train, test = load_reports()
    except FileNotFoundError as exc:
        pytest.skip(f"OpenI data not available: {exc}")
    refused = [r.id for r in train + test if not check_note(r.text).ok]
    assert refused == []


def test_note_sentences_split_lists_and_lines():
    text = "Findings:\n- cardiomeg\n- small L eff\n* no PTX\n1. ETT in place. 2. Lines ok; stable"
    assert note_sentences(text) == ["Findings:", "cardiomeg", "small L eff", "no PTX", "ETT in place.",
                                    "Lines ok;", "stable"]


def _count(texts):
    return [len(t.split()) for t in texts]  # one "word piece" per word


def test_short_note_is_one_window_itself():
    assert note_windows("No PTX. Small L eff.", _count, 10) == ["No PTX. Small L eff."]


def test_long_note_windows_fit_overlap_and_cover_every_sentence():
    sentences = [f"Sentence number {i} is here." for i in range(60)]  # 5 words each, 300 words
    text = " ".join(sentences) + " Small right apical pneumothorax."
    wins = note_windows(text, _count, 50)
    assert len(wins) > 6
    assert all(len(w.split()) <= 50 for w in wins)
    assert wins[-1].endswith("Small right apical pneumothorax.")
    for s in sentences:
        assert any(s in w for w in wins)
    # each window starts with the last sentence of the one before
    for a, b in zip(wins, wins[1:]):
        last = a.split(". ")[-1].rstrip(".")
        assert b.startswith(last), (a[-40:], b[:40])


def test_a_sentence_longer_than_a_window_is_cut_not_dropped():
    long_sentence = " ".join(f"w{i}" for i in range(130)) + " effusion"
    wins = note_windows("Heart normal. " + long_sentence, _count, 40)
    assert all(len(w.split()) <= 40 for w in wins)
    assert "effusion" in wins[-1]
    words = set(" ".join(wins).replace(".", "").split())
    assert {f"w{i}" for i in range(130)} <= words

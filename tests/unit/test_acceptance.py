"""Acceptances counted for every client (issue 11): from the document when the suggestion shown arrives
in it at once, from the item's command otherwise, and once when both happen."""

from __future__ import annotations

import pytest

from tandem_lsp.completion.acceptance import AcceptanceTracker, Shown, inserted_at_once

URI = "file:///p/calc.py"
DOC = "def add(a, b):\n    \n\nprint(add(1, 2))\n"
AT = DOC.index("\n\nprint")  # after the indentation on line 1
SUGGESTION = "return a + b"
ACCEPTED = DOC[:AT] + SUGGESTION + DOC[AT:]


def shown_in(tracker: AcceptanceTracker, text: str = DOC, offset: int = AT, suggestion: str = SUGGESTION) -> int:
    return tracker.shown(URI, text, offset, suggestion, "model")


def test_a_change_that_inserts_the_suggestion_counts_once():
    tracker = AcceptanceTracker()
    shown_in(tracker)
    assert tracker.changed(URI, ACCEPTED) == "model"
    assert tracker.changed(URI, ACCEPTED) is None  # once
    assert tracker.changed(URI, ACCEPTED + "x") is None


def test_the_document_holding_it_after_the_offset_counts_even_with_more_after_it():
    # eglot sends changes in batches: the acceptance and the next keys can arrive in one didChange
    tracker = AcceptanceTracker()
    shown_in(tracker)
    assert tracker.changed(URI, DOC[:AT] + SUGGESTION + "  # sum" + DOC[AT:]) == "model"


def test_a_replace_the_word_edit_counts():
    # the completion item's edit replaces the word typed ("re") with the word and the suggestion
    doc = DOC[:AT] + "re" + DOC[AT:]
    tracker = AcceptanceTracker()
    tracker.shown(URI, doc, AT + 2, "turn a + b", "cache")
    assert tracker.changed(URI, DOC[:AT] + "return a + b" + DOC[AT:]) == "cache"


def test_typing_it_by_hand_does_not_count():
    tracker = AcceptanceTracker()
    shown_in(tracker)
    text = DOC
    counted = []
    for i, ch in enumerate(SUGGESTION):
        text = text[: AT + i] + ch + text[AT + i :]
        counted.append(tracker.changed(URI, text))
    assert text == ACCEPTED and counted == [None] * len(SUGGESTION)


def test_other_edits_do_not_count():
    tracker = AcceptanceTracker()
    shown_in(tracker)
    assert tracker.changed(URI, DOC[:AT] + "return a - b" + DOC[AT:]) is None  # something else
    assert tracker.changed(URI, "# header\n" + DOC) is None  # an edit before it: the place moved
    assert tracker.changed(URI, DOC.replace("add(a, b)", "add(a, c)")[:AT] + SUGGESTION + DOC[AT:]) is None


def test_after_other_changes_the_acceptance_still_counts():
    # eglot may send an intermediate state (the completion's label) before the item's edit
    tracker = AcceptanceTracker()
    shown_in(tracker)
    assert tracker.changed(URI, DOC[:AT] + "return" + DOC[AT:]) is None
    assert tracker.changed(URI, ACCEPTED) == "model"


def test_text_already_there_is_not_an_acceptance():
    doc = DOC[:AT] + SUGGESTION + DOC[AT:]
    tracker = AcceptanceTracker()
    tracker.shown(URI, doc, AT, SUGGESTION, "model")
    assert tracker.changed(URI, doc + "# more\n") is None


@pytest.mark.parametrize("suggestion", [")", "\n    ", "  x", " "])
def test_a_single_character_or_blanks_never_count_from_the_document(suggestion):
    tracker = AcceptanceTracker()
    shown_in(tracker, suggestion=suggestion)
    assert tracker.changed(URI, DOC[:AT] + suggestion + DOC[AT:]) is None


def test_only_the_last_suggestion_shown_in_a_document_counts():
    tracker = AcceptanceTracker()
    shown_in(tracker)
    shown_in(tracker, suggestion="return a * b")
    assert tracker.changed(URI, ACCEPTED) is None
    assert tracker.changed(URI, DOC[:AT] + "return a * b" + DOC[AT:]) == "model"


def test_documents_are_apart_and_close_forgets():
    tracker = AcceptanceTracker()
    shown_in(tracker)
    assert tracker.changed("file:///p/other.py", ACCEPTED) is None
    tracker.closed(URI)
    assert tracker.changed(URI, ACCEPTED) is None


def test_the_command_after_the_document_is_not_counted_again():
    tracker = AcceptanceTracker()
    shown_id = shown_in(tracker)
    assert tracker.changed(URI, ACCEPTED) == "model"
    shown_in(tracker, text=ACCEPTED, offset=AT + len(SUGGESTION), suggestion="  # done")  # the next one
    assert tracker.command({"source": "model", "id": shown_id}) is False


def test_the_command_before_the_document_counts_and_the_change_does_not():
    # Neovim debounces didChange: the item's command can arrive first
    tracker = AcceptanceTracker()
    shown_id = shown_in(tracker)
    assert tracker.command({"source": "model", "id": shown_id}) is True
    assert tracker.changed(URI, ACCEPTED) is None
    assert tracker.command({"source": "model", "id": shown_id}) is False  # a repeated command


def test_a_command_without_an_id_always_counts():
    tracker = AcceptanceTracker()
    assert tracker.command({"source": "model"}) is True
    assert tracker.command({}) is True
    assert tracker.command("junk") is True
    assert tracker.command({"id": True}) is True  # not an id


def test_a_command_for_a_suggestion_no_longer_the_last_counts_once():
    tracker = AcceptanceTracker()
    old = shown_in(tracker)
    shown_in(tracker, suggestion="return a * b")
    assert tracker.command({"id": old}) is True
    assert tracker.command({"id": old}) is False


def test_inserted_at_once_is_pure():
    shown = Shown(1, URI, SUGGESTION, AT, DOC, "model")
    assert inserted_at_once(shown, DOC, ACCEPTED)
    assert inserted_at_once(shown, DOC[:AT] + SUGGESTION[:-2] + DOC[AT:], ACCEPTED)  # two characters at once
    assert not inserted_at_once(shown, DOC[:AT] + SUGGESTION[:-1] + DOC[AT:], ACCEPTED)  # one: a key

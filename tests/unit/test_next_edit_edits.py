"""next_edit/edits.py: a rewritten window to the smallest edits, and the filters."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tandem_lsp.next_edit.edits import (Edit, apply_all, breaks_python, keep, ordered, parses, undoes,
                                        window_edits)

WINDOW = "def area(w, height):\n    return width * height\n\n\nprint(area(width=2, height=3))\n"


def test_a_rename_becomes_whole_word_edits():
    new = WINDOW.replace("return width", "return w")
    edits = window_edits(WINDOW, new, 100)
    assert edits == [Edit(100 + WINDOW.index("width"), 100 + WINDOW.index("width") + 5, "w")]


def test_two_changes_on_two_lines_are_two_edits_and_apply_back():
    new = WINDOW.replace("width", "w")
    edits = window_edits(WINDOW, new, 0)
    assert len(edits) == 2 and all(e.new == "w" for e in edits)
    assert apply_all(WINDOW, edits) == new


def test_an_added_argument_is_an_insertion_at_the_call():
    old = "total = area(2, 3)\nother = area(4, 5)\n"
    new = "total = area(2, 3)\nother = area(4, 5, unit)\n"
    (edit,) = window_edits(old, new, 0)
    assert apply_all(old, [edit]) == new
    assert edit.start == edit.end == old.rindex(")") and edit.new == ", unit"  # an insertion, nothing replaced


def test_an_unchanged_rewrite_has_no_edits():
    assert window_edits(WINDOW, WINDOW, 7) == []


def test_inserted_and_deleted_lines():
    old = "a = 1\nb = 2\nc = 3\n"
    assert apply_all(old, window_edits(old, "a = 1\nc = 3\n", 0)) == "a = 1\nc = 3\n"
    assert apply_all(old, window_edits(old, "a = 1\nb = 2\nlog(b)\nc = 3\n", 0)) == "a = 1\nb = 2\nlog(b)\nc = 3\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab c_\t(),", max_size=12), max_size=8),
       st.lists(st.text(alphabet="ab c_\t(),", max_size=12), max_size=8), st.integers(0, 50))
def test_the_edits_always_turn_the_window_into_the_rewrite(old_lines, new_lines, offset):
    old = "".join(line + "\n" for line in old_lines)
    new = "".join(line + "\n" for line in new_lines)
    text = "x" * offset + old + "tail\n"
    edits = window_edits(old, new, offset)
    assert apply_all(text, edits) == "x" * offset + new + "tail\n"
    assert all(text[e.start:e.end] != e.new for e in edits)


def test_an_edit_that_puts_back_what_the_user_just_typed_undoes_it():
    text = "def area(w, height):\n"
    at = text.index("w,")
    last = (at, "width", "w")  # the user replaced "width" with "w"
    assert undoes(Edit(at, at + 1, "width"), text, last)
    assert not undoes(Edit(at, at + 1, "wid"), text, last)
    assert not undoes(Edit(text.index("height"), text.index("height") + 6, "h"), text, last)
    assert not undoes(Edit(at, at + 1, "width"), text, None)


def test_keep_drops_outside_the_window_no_ops_and_undos():
    text = "aaa\nbbb\nccc\n"
    edits = [Edit(0, 3, "AAA"), Edit(4, 7, "bbb"), Edit(8, 11, "xyz")]
    assert keep(edits, text, (4, 12), None) == [edits[2]]  # outside the window, a no-op
    assert keep(edits, text, (0, 12), (8, "xyz", "ccc")) == [edits[0]]  # the user just typed ccc over xyz


def test_python_that_stops_parsing_is_caught():
    text = "def f(a):\n    return a\n"
    assert parses(text) is True
    assert breaks_python(text, [Edit(text.index("a):"), text.index("a):") + 3, "a:")])
    assert not breaks_python(text, [Edit(6, 7, "b")])
    assert not breaks_python("def f(:\n", [Edit(0, 3, "xx")])  # it did not parse before either


def test_ordered_puts_the_nearest_edit_after_the_cursor_first():
    edits = [Edit(0, 1, "a"), Edit(50, 51, "b"), Edit(20, 21, "c")]
    assert [e.new for e in ordered(edits, 10)] == ["c", "b", "a"]
    assert [e.new for e in ordered(edits, 60)] == ["b", "c", "a"]

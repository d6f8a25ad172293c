"""next_edit/context.py: recent edits as diffs, grouped by place; the window and its original."""

from tandem_lsp.next_edit.context import (EditHistory, build_context, changed_span, original_of, unified_hunk,
                                          window_around)

URI, OTHER = "file:///proj/geo/area.py", "file:///proj/geo/main.py"
TEXT = "".join(f"line {i}\n" for i in range(60))


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_changed_span_and_hunk_use_document_line_numbers():
    old = TEXT
    new = TEXT.replace("line 30\n", "line thirty\n")
    start, old_end, new_end = changed_span(old, new)
    assert old[start:old_end] == "30" and new[start:new_end] == "thirty"
    diff = unified_hunk("geo/area.py", old, new)
    assert diff.diff.splitlines() == ["@@ -29,5 +29,5 @@", " line 28", " line 29", "-line 30", "+line thirty",
                                      " line 31", " line 32"]


def test_edits_in_one_place_are_one_diff_and_a_move_starts_another():
    clock = Clock()
    h = EditHistory(clock)
    h.opened(URI, TEXT)
    t1 = TEXT.replace("line 10\n", "line 10 a\n")
    h.changed(URI, t1, 10)
    clock.t += 1
    t2 = t1.replace("line 11\n", "line 11 b\n")
    h.changed(URI, t2, 11)
    assert len(h.diffs(URI)) == 1  # the same place: one group
    clock.t += 1
    t3 = t2.replace("line 40\n", "line 40 c\n")
    h.changed(URI, t3, 40)
    diffs = h.diffs(URI)
    assert len(diffs) == 2
    assert "+line 10 a" in diffs[0].diff and "+line 11 b" in diffs[0].diff
    assert "+line 40 c" in diffs[1].diff  # the newest last


def test_other_documents_edits_come_before_this_ones():
    clock = Clock()
    h = EditHistory(clock)
    h.opened(URI, TEXT)
    h.opened(OTHER, TEXT)
    h.changed(URI, TEXT.replace("line 5\n", "line five\n"), 5)
    clock.t += 1
    h.changed(OTHER, TEXT.replace("line 7\n", "line seven\n"), 7)
    diffs = h.diffs(URI)
    assert [d.path for d in diffs] == ["geo/main.py", "geo/area.py"]


def test_old_edits_are_forgotten():
    clock = Clock()
    h = EditHistory(clock)
    h.opened(URI, TEXT)
    h.changed(URI, TEXT.replace("line 5\n", "line five\n"), 5)
    clock.t += 3600
    assert h.diffs(URI) == ()


def test_removed_words_name_a_renames_old_name():
    h = EditHistory(Clock())
    old = "def area(width, height):\n    return width * height\n"
    h.opened(URI, old)
    h.changed(URI, old.replace("(width,", "(w,"), 0)
    assert h.removed_words(URI) == {"width"}


def test_window_is_whole_lines_around_the_cursor():
    offset = TEXT.index("line 30")
    win = window_around(TEXT, offset + 3, lines=20, before=6)
    assert TEXT[win.start:win.end].splitlines()[0] == "line 24"
    assert len(TEXT[win.start:win.end].splitlines()) == 20
    assert win.start_line == 24
    top = window_around(TEXT, 2, lines=20, before=6)
    assert top.start == 0 and len(TEXT[top.start:top.end].splitlines()) == 20
    end = window_around(TEXT, len(TEXT), lines=20, before=6)
    assert end.end == len(TEXT) and len(TEXT[end.start:end.end].splitlines()) == 20


def test_original_is_the_window_before_the_open_group():
    base = "a\nb\nwidth\nc\nd\n"
    text = "a\nb\nw\nc\nd\n"
    win = window_around(text, text.index("w"), lines=3, before=1)
    assert text[win.start:win.end] == "b\nw\nc\n"
    assert original_of(base, text, win) == "b\nwidth\nc\n"
    assert original_of(None, text, win) == "b\nw\nc\n"
    above = "Z\nb\nw\nc\nd\n"  # a change above the window: its lines are as they were, shifted
    assert original_of("a longer first line\nb\nw\nc\nd\n", above, window_around(above, 4, 3, 1)) == "b\nw\nc\n"


def test_build_context_bounds_and_cursor():
    h = EditHistory(Clock())
    h.opened(URI, TEXT)
    text = TEXT.replace("line 30\n", "row 30\n")
    h.changed(URI, text, 30)
    offset = text.index("row 30") + 3
    ctx, win = build_context(h, URI, text, offset, "python", window_lines=10, before_chars=40, after_chars=30)
    assert ctx.window == text[win.start:win.end] and ctx.window[ctx.cursor:].startswith(" 30")
    assert len(ctx.before) <= 40 and ctx.before.endswith("\n") and text[:win.start].endswith(ctx.before)
    assert len(ctx.after) <= 30 and text[win.end:].startswith(ctx.after)
    assert "row 30" not in ctx.original and "line 30" in ctx.original
    assert ctx.path == "geo/area.py" and ctx.diffs and ctx.window_start_line == win.start_line

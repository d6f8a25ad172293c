"""The context stage: bounded prefix/suffix, recent edits, snippets from other documents."""

from __future__ import annotations

import time
import tracemalloc

from tandem_lsp.completion.context import (
    RecentEdits,
    bound_prefix,
    bound_suffix,
    build_context,
    display_path,
    gather_snippets,
)
from tandem_lsp.completion.request import CompletionRequest, Snippet

TEXT = "aaaa\nbbbb\ncccc\ndd█dd\neeee\nffff\n"
DOC, OFFSET = TEXT.replace("█", ""), TEXT.index("█")
LINE = "value = compute(alpha, beta, gamma)  # a fairly ordinary line of code\n"
BIG = LINE * (5_000_000 // len(LINE))
FAR = time.monotonic() + 3600


def peak_bytes(fn):
    """Peak memory allocated while running fn: proves that a 5 MB document is not copied."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- prefix / suffix ------------------------------------------------------------------------------
def test_prefix_within_budget_is_everything_before_the_cursor():
    assert bound_prefix(DOC, OFFSET, 1000) == "aaaa\nbbbb\ncccc\ndd"


def test_prefix_is_cut_on_a_line_boundary():
    assert bound_prefix(DOC, OFFSET, 9) == "cccc\ndd"  # "bb\ncccc\ndd" would split "bbbb"
    assert bound_prefix(DOC, OFFSET, 11) == "cccc\ndd"
    assert bound_prefix(DOC, OFFSET, 12) == "bbbb\ncccc\ndd"  # the window starts on a line start


def test_prefix_keeps_the_end_of_an_overlong_cursor_line():
    assert bound_prefix(DOC, OFFSET, 2) == "dd"
    assert bound_prefix(DOC, OFFSET, 1) == "d"
    assert bound_prefix("x" * 100, 100, 10) == "x" * 10


def test_prefix_edge_cases():
    assert bound_prefix(DOC, 0, 10) == ""
    assert bound_prefix(DOC, OFFSET, 0) == ""
    assert bound_prefix(DOC, 10_000, 5) == "ffff\n"  # offset past the end is clamped
    assert bound_prefix(DOC, 5, 3) == ""  # at a line start, an overlong previous line leaves nothing


def test_suffix_within_budget_is_everything_after_the_cursor():
    assert bound_suffix(DOC, OFFSET, 1000) == "dd\neeee\nffff\n"


def test_suffix_is_cut_at_a_line_end():
    assert bound_suffix(DOC, OFFSET, 10) == "dd\neeee\n"
    assert bound_suffix(DOC, OFFSET, 8) == "dd\neeee\n"
    assert bound_suffix(DOC, OFFSET, 7) == "dd\n"


def test_suffix_keeps_the_start_of_an_overlong_cursor_line():
    assert bound_suffix(DOC, OFFSET, 1) == "d"
    assert bound_suffix("x" * 100, 0, 10) == "x" * 10
    assert bound_suffix(DOC, len(DOC), 10) == ""
    assert bound_suffix(DOC, OFFSET, 0) == ""


def test_five_megabyte_document_stays_bounded_and_is_not_copied():
    text = BIG + "def add(a, b):\n    \n" + BIG
    offset = len(BIG) + len("def add(a, b):\n    ")
    req = CompletionRequest("file:///project/calc.py", text, offset, "python")
    ctx, peak = peak_bytes(lambda: build_context(req, 8000, 2000))
    assert len(ctx.prefix) <= 8000 and len(ctx.suffix) <= 2000
    assert ctx.prefix.endswith("def add(a, b):\n    ") and ctx.prefix.startswith("value = ")
    assert ctx.suffix.startswith("\nvalue = ") and ctx.suffix.endswith("of code\n")
    assert peak < 100_000  # a few windows, never the 5 MB text
    for _ in range(2000):  # per-keystroke cost: this loop would take minutes if each call copied the document
        build_context(req, 8000, 2000)


def test_five_megabyte_single_line_document():
    text = "x" * 5_000_000
    assert len(bound_prefix(text, 2_500_000, 8000)) == 8000
    assert len(bound_suffix(text, 2_500_000, 2000)) == 2000


# -- paths ----------------------------------------------------------------------------------------
def test_display_path_is_the_last_two_components():
    assert display_path("file:///a/b/c.py") == "b/c.py"
    assert display_path("file:///c.py") == "c.py"
    assert display_path("file:///home/me/My%20Project/src/app.ts") == "src/app.ts"
    assert display_path("untitled:Untitled-1") == "Untitled-1"
    assert display_path("file:///c%3A/Users/me/x.go") == "me/x.go"


# -- recent edits ---------------------------------------------------------------------------------
DOC_A = "".join(f"line {i}\n" for i in range(40))


def test_recent_edit_keeps_a_few_lines_around_the_edit():
    recent = RecentEdits(context_lines=2)
    recent.record("file:///p/a.py", DOC_A, 10)
    assert recent.snippets("file:///p/b.py") == [Snippet("p/a.py", "line 8\nline 9\nline 10\nline 11\nline 12")]
    assert recent.snippets("file:///p/a.py") == []  # never offered to its own document


def test_typing_on_nearby_lines_grows_one_range_from_the_latest_text():
    recent = RecentEdits(context_lines=1)
    for line in (10, 10, 11, 12):
        recent.record("file:///p/a.py", DOC_A, line)
    latest = DOC_A.replace("line 12", "line 12 edited")
    recent.record("file:///p/a.py", latest, 12)
    assert [s.text for s in recent.snippets("file:///p/b.py")] == ["line 9\nline 10\nline 11\nline 12 edited\nline 13"]


def test_edits_elsewhere_make_separate_entries_newest_first_and_deduplicated():
    recent = RecentEdits(context_lines=0)
    recent.record("file:///p/a.py", DOC_A, 1)
    recent.record("file:///p/a.py", DOC_A, 30)
    recent.record("file:///p/b.py", DOC_A, 20)
    recent.record("file:///p/a.py", DOC_A, 1)  # the first range again: replaces the older entry
    assert [s.text for s in recent.snippets("file:///p/c.py")] == ["line 1", "line 20", "line 30"]
    assert [s.path for s in recent.snippets("file:///p/c.py")] == ["p/a.py", "p/b.py", "p/a.py"]


def test_recent_edits_are_capped():
    recent = RecentEdits(max_entries=8, context_lines=0)
    for i in range(0, 40, 4):
        recent.record("file:///p/a.py", DOC_A, i)
    texts = [s.text for s in recent.snippets("file:///p/b.py")]
    assert texts == [f"line {i}" for i in range(36, 4, -4)]


def test_blank_ranges_are_not_kept():
    recent = RecentEdits(context_lines=1)
    recent.record("file:///p/a.py", "x\n\n\n\n\ny\n", 3)
    assert recent.snippets("file:///p/b.py") == []


def test_recording_into_a_five_megabyte_document_is_cheap():
    text = BIG + "def add(a, b):\n    return a + b\n" + BIG
    line = BIG.count("\n")  # the "def add" line
    recent = RecentEdits(context_lines=1)
    _, peak = peak_bytes(lambda: [recent.record("file:///p/big.py", text, line) for _ in range(1000)])
    assert peak < 50_000  # nothing extracted while typing in the same place
    snippets, peak = peak_bytes(lambda: recent.snippets("file:///p/other.py"))
    assert snippets == [Snippet("p/big.py", f"{LINE}def add(a, b):\n    return a + b")]
    assert peak < 100_000
    recent.record("file:///p/big.py", text, text.count("\n"))  # the empty line after the last newline
    recent.record("file:///p/big.py", text, 10**9)  # a stale line number past the end: clamped, blank, skipped
    assert [s.text for s in recent.snippets("file:///p/other.py")] == [LINE.rstrip(), snippets[0].text]


# -- snippets -------------------------------------------------------------------------------------
def test_gather_snippets_recent_edits_then_heads_of_other_documents():
    recent = RecentEdits(context_lines=0)
    recent.record("file:///w/src/util.py", "def double(x):\n    return 2 * x\n", 1)
    docs = [
        ("file:///w/src/app.py", "import os\n"),
        ("file:///w/README.md", "# Title\n"),
        ("file:///w/src/models.py", "".join(f"field_{i} = {i}\n" for i in range(100))),
    ]
    out = gather_snippets("file:///w/src/app.py", docs, recent, 10_000, FAR)
    assert out == (
        Snippet("src/util.py", "    return 2 * x"),
        Snippet("src/models.py", "".join(f"field_{i} = {i}\n" for i in range(30)).rstrip()),  # same language first
        Snippet("w/README.md", "# Title"),
    )


def test_gather_snippets_respects_the_budget():
    docs = [(f"file:///w/m{i}.py", "".join(f"name_{j} = {j}\n" for j in range(50))) for i in range(20)]
    out = gather_snippets("file:///w/app.py", docs, RecentEdits(), 700, FAR)
    total = sum(len(s.path) + len(s.text) for s in out)
    assert 0 < total <= 700
    assert all(s.text.endswith(tuple("0123456789")) for s in out)  # whole lines only


def test_gather_snippets_stops_at_the_deadline():
    recent = RecentEdits()
    recent.record("file:///w/a.py", "x = 1\n", 0)
    docs = [("file:///w/b.py", "y = 2\n")]
    assert gather_snippets("file:///w/c.py", docs, recent, 1000, time.monotonic() - 1) == (Snippet("w/a.py", "x = 1"),)


# -- build_context --------------------------------------------------------------------------------
def test_build_context_fields():
    ctx = build_context(CompletionRequest("file:///a/b/c.py", DOC, OFFSET, "python"), 100, 100)
    assert (ctx.prefix, ctx.suffix) == ("aaaa\nbbbb\ncccc\ndd", "dd\neeee\nffff\n")
    assert (ctx.filename, ctx.language_id, ctx.snippets) == ("b/c.py", "python", ())


def test_snippets_take_at_most_half_of_the_prefix_budget():
    text = "".join(f"row {i}\n" for i in range(1000))
    req = CompletionRequest("file:///w/x.py", text, len(text) // 2)
    snippets = [Snippet("w/s.py", "s" * 150), Snippet("w/t.py", "t" * 150), Snippet("w/u.py", "u" * 10)]
    ctx = build_context(req, 400, 100, snippets)
    assert ctx.snippets == (snippets[0],)  # 156 fits in 200; the second would not (later ones dropped)
    used = sum(len(s.path) + len(s.text) for s in ctx.snippets)
    window = 400 - used  # the prefix starts on a grid of window // 8 (see the next test), then a line start
    assert len(ctx.prefix) <= window and len(ctx.prefix) > window - window // 8 - 10
    assert len(ctx.prefix) + len(ctx.suffix) + used <= 400 + 100


def test_typing_at_the_cursor_keeps_the_start_of_a_long_prefix():
    """A model's prompt cache keeps what did not change at the start of the prompt. Typing two new lines
    at the end of a long file must not move the window's start on every line, only once per grid step."""
    from tandem_lsp.completion.context import PREFIX_QUANTUM

    head = "".join(f"value_{i} = compute({i})\n" for i in range(2000))
    typed = "def total(values):\n    return sum(values)\n"
    starts = set()
    for k in range(len(typed) + 1):
        text = head + typed[:k]
        ctx = build_context(CompletionRequest("file:///w/x.py", text, len(text)), 8000, 2000)
        assert len(ctx.prefix) <= 8000 and len(ctx.prefix) > 8000 - PREFIX_QUANTUM - 40
        assert ctx.prefix.startswith("value_") and text.endswith(ctx.prefix)
        starts.add(len(text) - len(ctx.prefix))
    assert len(starts) <= 2  # 45 keystrokes, two new lines: the start moved at most once
    # without the grid, it would move with every line typed
    moved = {len(head + typed[:k]) - len(bound_prefix(head + typed[:k], len(head) + k, 8000)) for k in range(len(typed) + 1)}
    assert len(moved) >= 3

"""Next-edit templates: golden prompts of the three formats, parsing answers back into the window (round
trips, cut-short answers, newline and CRLF conventions, markers), template choice by model name, answer
budgets, and a property: every template parses its own answer for an unchanged window to that window."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tandem_lsp.next_edit.templates import (
    INSTRUCT_SYSTEM,
    TEMPLATES,
    answer_budget,
    fence_language,
    fenced_blocks,
    is_next_edit_model,
    pick_next_edit_template,
)
from tandem_lsp.next_edit.types import FileDiff, NextEditContext

DIFF = FileDiff(
    "pkg/calc.py",
    "@@ -1,2 +1,2 @@\n-def add(a, b):\n+def add(a, b, c):\n     return a + b\n",
    old="def add(a, b):\n    return a + b",
    new="def add(a, b, c):\n    return a + b",
)
CTX = NextEditContext(
    path="pkg/calc.py",
    language_id="python",
    diffs=(DIFF,),
    before="import os\n\n",
    window="def add(a, b, c):\n    return a + b\n\nprint(add(1, 2))\n",
    original="def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    cursor=15,  # after "def add(a, b, c"
    after="x = 1\ny = 2\n",
    window_start_line=2,
)
NEW = "def add(a, b, c):\n    return a + b\n\nprint(add(1, 2, 3))\n"
SWEEP, ZETA, INSTRUCT = TEMPLATES["sweep"], TEMPLATES["zeta"], TEMPLATES["instruct"]


# -- golden prompts -----------------------------------------------------------------------------


def test_sweep_prompt_golden():
    assert SWEEP.build(CTX) == (
        "<|file_sep|>pkg/calc.py.diff\n"
        "original:\n"
        "def add(a, b):\n"
        "    return a + b\n"
        "updated:\n"
        "def add(a, b, c):\n"
        "    return a + b\n"
        "<|file_sep|>original/pkg/calc.py\n"
        "def add(a, b):\n"
        "    return a + b\n"
        "\n"
        "print(add(1, 2))\n"
        "<|file_sep|>current/pkg/calc.py\n"
        "def add(a, b, c):\n"
        "    return a + b\n"
        "\n"
        "print(add(1, 2))\n"
        "<|file_sep|>updated/pkg/calc.py"
    )
    assert SWEEP.build_messages(CTX) is None and not SWEEP.is_chat
    assert SWEEP.stop == ("<|file_sep|>", "<|endoftext|>")


def test_zeta_prompt_golden():
    assert ZETA.build(CTX) == (
        "### Instruction:\n"
        "You are a code completion assistant and your task is to analyze user edits and then rewrite an excerpt "
        "that the user provides, suggesting the appropriate edits within the excerpt, taking into account the "
        "cursor location.\n"
        "\n"
        "### User Edits:\n"
        "\n"
        'User edited "pkg/calc.py":\n'
        "```diff\n"
        "@@ -1,2 +1,2 @@\n"
        "-def add(a, b):\n"
        "+def add(a, b, c):\n"
        "     return a + b\n"
        "\n"
        "```\n"
        "\n"
        "### User Excerpt:\n"
        "\n"
        "```pkg/calc.py\n"
        "<|start_of_file|>\n"
        "import os\n"
        "\n"
        "<|editable_region_start|>\n"
        "def add(a, b, c<|user_cursor_is_here|>):\n"
        "    return a + b\n"
        "\n"
        "print(add(1, 2))\n"
        "<|editable_region_end|>\n"
        "x = 1\n"
        "y = 2\n"
        "```\n"
        "\n"
        "### Response:\n"
        "\n"
    )
    assert ZETA.build_messages(CTX) is None and not ZETA.is_chat
    assert "<|editable_region_end|>" not in "".join(ZETA.stop)  # the end marker must reach the parser


def test_instruct_messages_golden():
    messages = INSTRUCT.build_messages(CTX)
    assert INSTRUCT.build(CTX) == "" and INSTRUCT.is_chat and INSTRUCT.stop == ()
    assert messages == [
        {"role": "system", "content": INSTRUCT_SYSTEM},
        {
            "role": "user",
            "content": (
                "Recent edits, oldest first:\n"
                "\n"
                "pkg/calc.py:\n"
                "```diff\n"
                "@@ -1,2 +1,2 @@\n"
                "-def add(a, b):\n"
                "+def add(a, b, c):\n"
                "     return a + b\n"
                "```\n"
                "\n"
                "The editable window of pkg/calc.py (the cursor is marked <|cursor|>):\n"
                "```python\n"
                "def add(a, b, c<|cursor|>):\n"
                "    return a + b\n"
                "\n"
                "print(add(1, 2))\n"
                "```\n"
                "\n"
                "Rewrite the editable window to make the next edit that the recent edits imply, or return it "
                "unchanged. Reply with the whole window in one fenced code block."
            ),
        },
    ]
    assert "fenced code block" in INSTRUCT_SYSTEM and "unchanged" in INSTRUCT_SYSTEM


def test_sweep_diffs_in_order_and_from_the_hunk_when_sides_are_missing():
    first = FileDiff("a.py", "@@ -1 +1 @@\n-x = 1\n+x = 2\n")  # no old/new: read from the hunk
    second = FileDiff("b.py", "@@ -3,2 +3,2 @@\n keep\n-y\n+z\n", old="keep\ny", new="keep\nz")
    prompt = SWEEP.build(replace(CTX, diffs=(first, second)))
    assert prompt.startswith(
        "<|file_sep|>a.py.diff\noriginal:\nx = 1\nupdated:\nx = 2\n"
        "<|file_sep|>b.py.diff\noriginal:\nkeep\ny\nupdated:\nkeep\nz\n<|file_sep|>original/pkg/calc.py\n"
    )


def test_zeta_events_are_joined_by_a_blank_line_and_paths_are_quoted():
    other = FileDiff('we"ird.py', "@@ -1 +1 @@\n-a\n+b\n")
    prompt = ZETA.build(replace(CTX, diffs=(DIFF, other, FileDiff("empty.py", ""))))
    assert '     return a + b\n\n```\n\nUser edited "we\\"ird.py":\n```diff\n@@ -1 +1 @@\n-a\n+b\n\n```\n\n' in prompt
    assert "empty.py" not in prompt


def test_zeta_excerpt_without_start_of_file_and_bounded_context():
    before = "".join(f"line {i}\n" for i in range(40))
    after = "".join(f"tail {i}\n" for i in range(40))
    prompt = ZETA.build(replace(CTX, before=before, after=after, window_start_line=40))
    excerpt = prompt.split("### User Excerpt:\n\n", 1)[1]
    assert excerpt.startswith("```pkg/calc.py\nline 32\n")  # the last 8 lines before the window
    assert "<|start_of_file|>" not in excerpt
    assert "<|editable_region_end|>\ntail 0\ntail 1\ntail 2\n```\n\n### Response:\n\n" in excerpt


def test_zeta_at_the_end_of_the_file():
    eof = replace(CTX, window="x = 1\ny = 2", cursor=11, after="")
    assert "y = 2<|user_cursor_is_here|>\n<|editable_region_end|>\n```\n\n### Response:" in ZETA.build(eof)
    with_newline = replace(CTX, after="")
    assert "print(add(1, 2))\n<|editable_region_end|>\n\n```" in ZETA.build(with_newline)


def test_instruct_fence_outgrows_backticks_in_the_window():
    ctx = replace(CTX, path="README.md", language_id="markdown", window="Run:\n```sh\nmake\n```\n", cursor=0)
    content = INSTRUCT.build_messages(ctx)[1]["content"]
    assert "````markdown\n<|cursor|>Run:\n```sh\nmake\n```\n````" in content
    answer = "````markdown\nRun:\n```sh\nmake test\n```\n````\n"
    assert INSTRUCT.parse(answer, ctx) == "Run:\n```sh\nmake test\n```\n"


def test_no_diffs_empty_window_and_file_start():
    ctx = replace(CTX, diffs=(), before="", window="", original="", cursor=0, after="", window_start_line=0)
    assert SWEEP.build(ctx) == "<|file_sep|>original/pkg/calc.py\n\n<|file_sep|>current/pkg/calc.py\n\n" \
                               "<|file_sep|>updated/pkg/calc.py"
    prompt = ZETA.build(ctx)
    assert "### User Edits:\n\n\n\n### User Excerpt:" in prompt
    assert "```pkg/calc.py\n<|start_of_file|>\n<|editable_region_start|>\n<|user_cursor_is_here|>\n" \
           "<|editable_region_end|>\n```" in prompt
    assert "Recent edits: none." in INSTRUCT.build_messages(ctx)[1]["content"]
    for t in TEMPLATES.values():
        assert t.parse(t.answer(ctx, ""), ctx) == ""


@pytest.mark.parametrize("path, language_id, tag", [
    ("pkg/calc.py", "python", "python"), ("src/App.TSX", "typescriptreact", "tsx"), ("Makefile", "makefile", "makefile"),
    ("notes", "plaintext", "plaintext"), ("x.unknown", "weird id!", ""),
])
def test_fence_language(path, language_id, tag):
    assert fence_language(path, language_id) == tag


# -- parsing ------------------------------------------------------------------------------------


def test_sweep_parse_round_trip_and_newline_handling():
    assert SWEEP.parse("\n" + NEW[:-1], CTX) == NEW  # what the model writes: the header's newline, joined lines
    assert SWEEP.parse("\n" + NEW, CTX) == NEW  # a newline before the next <|file_sep|>
    assert SWEEP.parse(NEW[:-1], CTX) == NEW  # no header newline
    assert SWEEP.parse("\n" + NEW[:-1] + "<|file_sep|>current/other.py\njunk", CTX) == NEW  # stop not applied
    assert SWEEP.parse("\n" + CTX.window, CTX) == CTX.window


def test_zeta_parse_round_trip_like_zed():
    answer = (
        "<|editable_region_start|>\n" + NEW[:-1] + "\n<|editable_region_end|>\nx = 1\ny = 2\n```\n"
    )
    assert ZETA.parse(answer, CTX) == NEW
    prefixed = "```pkg/calc.py\n<|start_of_file|>\nimport os\n\n" + answer  # the whole excerpt repeated
    assert ZETA.parse(prefixed, CTX) == NEW
    with_cursor = answer.replace("print(add(1, 2, 3))", "print(add(1, 2, 3<|user_cursor_is_here|>))")
    assert ZETA.parse(with_cursor, CTX) == NEW


@pytest.mark.parametrize("answer", [
    "<|editable_region_start|>\ndef add(a, b, c):\n    return a",  # cut short: no end marker
    "def add(a, b, c):\n<|editable_region_end|>\n",  # no start marker
    "<|editable_region_start|>\nx\n<|editable_region_end|>\n<|editable_region_start|>\ny\n<|editable_region_end|>",
    "<|start_of_file|>\n<|start_of_file|>\n<|editable_region_start|>\nx\n<|editable_region_end|>",
    "<|editable_region_start|>",  # the marker line never ended
    "",
])
def test_zeta_unusable_answers(answer):
    assert ZETA.parse(answer, CTX) is None


def test_instruct_parse_round_trip_prose_thoughts_and_diffs():
    assert INSTRUCT.parse(f"```python\n{NEW}```", CTX) == NEW
    assert INSTRUCT.parse(f"Here is the window:\n\n```python\n{NEW}```\n\nI added the argument.", CTX) == NEW
    assert INSTRUCT.parse(f"<think>\nThe call needs c.\n```python\nc\n```\n</think>\n```python\n{NEW}```", CTX) == NEW
    assert INSTRUCT.parse(f"```diff\n-print(add(1, 2))\n+print(add(1, 2, 3))\n```\n```\n{NEW}```", CTX) == NEW
    assert INSTRUCT.parse(f"```python\n{NEW.replace('3))', '3<|cursor|>))')}```", CTX) == NEW
    assert INSTRUCT.parse("```python\nx = 1\n```\nand the window:\n```python\n" + NEW + "```", CTX) == NEW
    assert INSTRUCT.parse(f"~~~\n{NEW}~~~\n", CTX) == NEW


@pytest.mark.parametrize("answer", [
    f"```python\n{NEW[:20]}",  # cut short: the fence never closes
    f"```python\nx = 1\n```\n```python\n{NEW[:30]}",  # an aside, then the window cut short
    NEW,  # no fence: not trusted
    "<think>\nthe user wants",  # still thinking when cut
    "```diff\n-a\n+b\n```",  # only a diff
    "",
])
def test_instruct_unusable_answers(answer):
    assert INSTRUCT.parse(answer, CTX) is None


@pytest.mark.parametrize("name, answer", [
    ("sweep", ""), ("sweep", "\n"), ("sweep", "\n  \n"), ("zeta", "<|editable_region_start|>\n\n<|editable_region_end|>"),
    ("instruct", "```python\n```"), ("instruct", "```python\n\n\n```"),
])
def test_an_empty_rewrite_of_a_window_with_text_is_unusable(name, answer):
    assert TEMPLATES[name].parse(answer, CTX) is None


def test_window_at_the_end_of_the_file_keeps_its_missing_newline():
    ctx = replace(CTX, window="x = 1\ny = 2", original="x = 1\ny = 2", cursor=11, after="")
    new = "x = 1\ny = 3"
    assert SWEEP.parse("\ny = 9\nx = 1\ny = 3", ctx) == "y = 9\nx = 1\ny = 3"
    assert SWEEP.parse("\n" + new + "\n", ctx) == new
    assert ZETA.parse(f"<|editable_region_start|>\n{new}\n<|editable_region_end|>\n```\n", ctx) == new
    assert INSTRUCT.parse(f"```python\n{new}\n```", ctx) == new
    for t in TEMPLATES.values():
        assert t.parse(t.answer(ctx, new), ctx) == new
        assert t.parse(t.answer(ctx, ctx.window), ctx) == ctx.window


def test_crlf_windows_are_kept_and_lf_answers_get_crlf_back():
    ctx = replace(CTX, window="a = 1\r\nb = 2\r\n", original="a = 1\r\nb = 2\r\n", cursor=0, after="c\r\n")
    assert "<|file_sep|>current/pkg/calc.py\na = 1\r\nb = 2\r\n<|file_sep|>updated/" in SWEEP.build(ctx)
    assert "<|editable_region_start|>\n<|user_cursor_is_here|>a = 1\r\nb = 2\r\n<|editable_region_end|>\nc\r\n```" \
        in ZETA.build(ctx)
    for t in TEMPLATES.values():
        assert t.parse(t.answer(ctx, ctx.window), ctx) == ctx.window
        assert t.parse(t.answer(ctx, "a = 1\r\nb = 3\r\n"), ctx) == "a = 1\r\nb = 3\r\n"
    lf = "a = 1\nb = 3\n"
    assert SWEEP.parse("\na = 1\nb = 3", ctx) == "a = 1\r\nb = 3\r\n"
    assert ZETA.parse(f"<|editable_region_start|>\n{lf}<|editable_region_end|>\nc\n```\n", ctx) == "a = 1\r\nb = 3\r\n"
    assert INSTRUCT.parse(f"```\n{lf}```", ctx) == "a = 1\r\nb = 3\r\n"
    eof = replace(ctx, window="a = 1\r\nb = 2", after="")
    assert INSTRUCT.parse(f"```\n{lf}```", eof) == "a = 1\r\nb = 3"
    assert SWEEP.parse("\na = 1\nb = 3", eof) == "a = 1\r\nb = 3"


@pytest.mark.parametrize("name, marker", [
    ("sweep", "<|file_sep|>"), ("sweep", "<|endoftext|>"), ("zeta", "<|editable_region_end|>"),
    ("zeta", "<|user_cursor_is_here|>"), ("instruct", "<|cursor|>"),
])
def test_a_window_holding_its_templates_marker_is_refused(name, marker):
    ctx = replace(CTX, window=f"TOKEN = '{marker}'\n", cursor=0)
    t = TEMPLATES[name]
    t.build(ctx), t.build_messages(ctx)  # renders all the same
    assert t.parse(t.answer(ctx, ctx.window), ctx) is None


def test_lone_surrogates_and_odd_text_do_not_crash():
    ctx = replace(CTX, path="p\ud800.py", window="s = '\udc00'\n\ttab\n", original="\ud800\n", before="\udfff\n",
                  after="\ud83d\n", cursor=3, diffs=(FileDiff("p\ud800.py", "@@ -1 +1 @@\n-\ud800\n+x\n"),))
    for t in TEMPLATES.values():
        t.build(ctx), t.build_messages(ctx)
        assert t.parse(t.answer(ctx, ctx.window), ctx) == ctx.window
        assert t.parse("\ud800", ctx) in (None, "\ud800\n")
        assert t.answer_budget(ctx, None) > 0


def test_cursor_out_of_range_is_clamped():
    for cursor in (-5, 10_000):
        ctx = replace(CTX, cursor=cursor)
        assert ZETA.build(ctx).count("<|user_cursor_is_here|>") == 1
        assert INSTRUCT.build_messages(ctx)[1]["content"].count("<|cursor|>") == 2  # the header names it


def test_fenced_blocks():
    blocks, cut = fenced_blocks("text\n```py\na\n```\n   ~~~~\nb\n~~~~\n``` x ` y\nnot a fence\n")
    assert (blocks, cut) == ([("py", "a\n"), ("", "b\n")], False)
    assert fenced_blocks("```\nopen\n") == ([], True)
    assert fenced_blocks("````\n```\ninner\n```\n````") == ([("", "```\ninner\n```\n")], False)


# -- choice by name -----------------------------------------------------------------------------


@pytest.mark.parametrize("model, name", [
    ("sweep-next-edit-1.5b", "sweep"),
    ("sweepai/sweep-next-edit-1.5B", "sweep"),
    ("sweep-next-edit-1.5b.q8_0.v2.gguf", "sweep"),
    ("hf.co/sweepai/sweep-next-edit-1.5B-GGUF:Q8_0", "sweep"),
    ("zed-industries/zeta", "zeta"),
    ("zeta-Q4_K_M.gguf", "zeta"),
    ("qwen2.5-coder-7b-instruct", "instruct"),
    ("llama3.2", "instruct"),
    (None, "instruct"),
    ("", "instruct"),
])
def test_pick_auto_by_model_name(model, name):
    assert pick_next_edit_template("auto", model).name == name
    assert pick_next_edit_template(None, model).name == name
    assert is_next_edit_model(model) is (name != "instruct")


def test_pick_by_setting():
    for name in TEMPLATES:
        assert pick_next_edit_template(f" {name.upper()} ", "sweep-next-edit-1.5b") is TEMPLATES[name]
    with pytest.raises(ValueError, match="unknown next-edit template 'fim'"):
        pick_next_edit_template("fim", None)


# -- answer budget ------------------------------------------------------------------------------


def test_answer_budget_covers_the_answer_with_room():
    for t in TEMPLATES.values():
        chars = len(t.answer(CTX, CTX.window))
        for cpt in (None, 1.0, 3.5, 6.0):
            budget = answer_budget(CTX, cpt, t)
            assert budget == answer_budget(CTX, cpt, t.name)
            per_token = cpt or 2.0
            assert budget >= math.ceil(1.5 * chars / per_token)  # the unchanged answer and half again
            assert budget >= math.ceil(len(t.answer(CTX, NEW)) / per_token)
    assert answer_budget(CTX, 3.5) == max(answer_budget(CTX, 3.5, t) for t in TEMPLATES.values())
    # zeta's answer repeats markers and the context after the window: it needs more than sweep's
    assert answer_budget(CTX, 3.5, "zeta") > answer_budget(CTX, 3.5, "sweep")


def test_answer_budget_grows_with_the_window_and_shrinks_with_denser_tokens():
    big = replace(CTX, window=CTX.window * 20)
    for t in TEMPLATES.values():
        assert t.answer_budget(big, 3.5) > t.answer_budget(CTX, 3.5)
        assert t.answer_budget(big, 4.0) < t.answer_budget(big, 2.0)
        for odd in (0.0, -1.0, float("nan"), float("inf")):
            assert t.answer_budget(CTX, odd) == t.answer_budget(CTX, None)
        assert 0 < t.answer_budget(replace(CTX, window=""), None) < 1000


# -- property -----------------------------------------------------------------------------------

_TEXT = st.text(alphabet="ab x=()`~#:\t\r\\\"'é\ud800", max_size=12)
_LINES = st.lists(_TEXT.map(lambda s: s.replace("\n", "")), max_size=8)


@st.composite
def contexts(draw):
    lines = draw(_LINES)
    eof = draw(st.booleans()) and (not lines or lines[-1] != "")  # at the end of the file, no final newline
    window = "\n".join(lines) if eof else "".join(line + "\n" for line in lines)
    before = "".join(line + "\n" for line in draw(_LINES))
    after = "" if eof else "".join(line + "\n" for line in draw(_LINES))
    return NextEditContext(
        path=draw(st.sampled_from(["a.py", "src/x y.ts", "README.md", "noext"])),
        language_id=draw(st.sampled_from(["python", "typescript", "markdown", ""])),
        diffs=tuple(FileDiff("a.py", f"@@ -1 +1 @@\n-{o}\n+{n}\n") for o, n in draw(st.lists(st.tuples(_TEXT, _TEXT),
                                                                                         max_size=3))),
        before=before,
        window=window,
        original="".join(line + "\n" for line in draw(_LINES)),
        cursor=draw(st.integers(min_value=0, max_value=len(window))),
        after=after,
        window_start_line=before.count("\n"),
    )


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(contexts(), st.sampled_from(sorted(TEMPLATES)))
def test_property_unchanged_window_parses_to_itself(ctx, name):
    t = TEMPLATES[name]
    t.build(ctx), t.build_messages(ctx)
    assert t.parse(t.answer(ctx, ctx.window), ctx) == ctx.window


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(contexts(), _LINES, st.sampled_from(sorted(TEMPLATES)))
def test_property_rewritten_window_parses_back(ctx, lines, name):
    if ctx.window.endswith("\n"):
        new = "".join(line + "\n" for line in lines)
    else:
        new = "\n".join(lines)
        assume(not new.endswith("\n"))  # a last line without newline is not empty
    if "\r" in ctx.window or "\r" in new:
        assume("\r" in new and "\r" in ctx.window)  # a bare-newline answer for a CRLF window is converted
    assume(new.strip() or not ctx.window.strip())  # emptying a window with text is refused
    if name != "instruct":
        assume(new or not ctx.window)  # joined lines cannot tell no line from one empty line
    if name == "sweep":
        assume(not new.endswith("\n\n") and new != "\n")  # a new last blank line reads as the separator
    t = TEMPLATES[name]
    assert t.parse(t.answer(ctx, new), ctx) == new

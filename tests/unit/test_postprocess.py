"""Post-processing golden cases: a source with a cursor marker █ and a scripted model output."""

from __future__ import annotations

import pytest

from tandem_lsp.completion.postprocess import is_multiline, postprocess, stream_should_stop, strip_chat_reply
from tandem_lsp.completion.request import PromptContext
from tandem_lsp.completion.templating import TEMPLATES

QWEN_STOP = TEMPLATES["qwen"].stop
CHAT_STOP = TEMPLATES["chat"].stop


def ctx_from(src: str, filename: str = "main.py", language_id: str = "") -> PromptContext:
    prefix, suffix = src.split("█")
    return PromptContext(prefix=prefix, suffix=suffix, filename=filename, language_id=language_id)


def complete(src: str, raw: str, multiline: str = "auto", stop=QWEN_STOP, filename: str = "main.py") -> str | None:
    return postprocess(raw, ctx_from(src, filename), multiline=multiline, stop=stop)


# -- rule 1: stop strings -------------------------------------------------------------------------
def test_cut_at_the_first_stop_string():
    assert complete("x = █\n", "compute(1)<|endoftext|>junk") == "compute(1)"
    assert complete("x = █\n", "a<|fim_pad|>b<|endoftext|>c") == "a"
    assert complete("x = █\n", "<|file_sep|>other.py") is None


# -- rule 2: single or multi-line -----------------------------------------------------------------
@pytest.mark.parametrize(
    "src, setting, expected",
    [
        ("x = foo(█a)\n", "always", False),  # mid-line: real text after the cursor
        ("x = █ + 1\n", "auto", False),
        ("def f():\n    █\n", "auto", True),  # blank line
        ("def f():█\n", "auto", True),  # block opener
        ("function f() {█}\n", "auto", True),  # only a closing bracket after the cursor
        ("const f = (a) =>█\n", "auto", True),
        ("x =█\n", "auto", True),
        ("items = [█]\n", "auto", True),
        ("call(a,█ )\n", "auto", True),
        ("x = 1█\n", "auto", True),  # end of a line: the next lines may follow
        ("return a█;\n", "auto", True),
        ("x = f'{a}' + g(█)\n", "auto", True),  # quotes closed before the cursor
        ("x = 1█\n", "always", True),
        ("def f():█\n", "never", False),
        ('print("█")\n', "auto", False),  # inside a string
        ("def f():█\r\n", "auto", True),
    ],
)
def test_is_multiline(src, setting, expected):
    assert is_multiline(ctx_from(src), setting) is expected


# -- rule 3: single line --------------------------------------------------------------------------
def test_single_line_keeps_the_first_line():
    assert complete("total = compute█\n", "(1)\nprint(total)\n", multiline="never") == "(1)"
    assert complete("total = compute(█, x)\n", "1\nprint(total)\n") == "1"  # mid-line
    assert complete("if (x) {█", "\n  a();\n}\n", multiline="never", filename="a.js") is None


def test_single_line_at_a_blank_line_skips_a_leading_newline():
    assert complete("def f():\n    █\n", "\n    return 1\n    pass", multiline="never") == "return 1"


def test_single_line_skipped_newline_into_an_outer_block_shows_nothing():
    assert complete("def f():\n    █\n", "\nprint(1)\n", multiline="never") is None


def test_single_line_after_text_with_an_empty_first_line_shows_nothing():
    assert complete("total = compute(1)█\n", "\nprint(total)\n", multiline="never") is None


def test_auto_at_the_end_of_a_finished_line_suggests_the_next_lines():
    assert complete("total = compute(1)█\n", "\nprint(total)\n") == "\nprint(total)"


# -- rule 4: multi-line blocks --------------------------------------------------------------------
def test_python_block_after_an_opener_ends_at_the_dedent():
    src = "def add(a, b):█\n\nprint(add(1, 2))\n"
    raw = "\n    s = a + b\n    return s\n\ndef other():\n    pass\n"
    assert complete(src, raw) == "\n    s = a + b\n    return s"


def test_python_statements_at_a_blank_line_continue_until_a_dedent():
    src = "def f(x):\n    █\n"
    raw = "if x:\n        return 1\n    return 2\nprint(f(1))\n"
    assert complete(src, raw) == "if x:\n        return 1\n    return 2"


def test_two_blank_lines_end_the_suggestion():
    assert complete("█", "import os\nimport sys\n\n\ndef main():\n    pass\n") == "import os\nimport sys"


def test_one_blank_line_inside_a_block_is_kept():
    src = "def f():█\n"
    assert complete(src, "\n    a = 1\n\n    return a\nx = 2") == "\n    a = 1\n\n    return a"


def test_trailing_blank_lines_and_whitespace_are_dropped():
    assert complete("def f():█\n", "\n    return 1   \n    \n") == "\n    return 1"


def test_js_block_includes_its_closing_brace_when_the_suffix_has_none():
    src = "function add(a, b) {█"
    raw = "\n  return a + b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n"
    assert complete(src, raw, filename="calc.js") == "\n  return a + b;\n}"


def test_js_closing_line_with_punctuation_is_included_but_not_an_else():
    assert complete("items.forEach((x) => {█", "\n  use(x);\n});\nmore();", filename="a.ts") == "\n  use(x);\n});"
    assert complete("if (ok) {█", "\n  a();\n} else {\n  b();\n}", filename="a.ts") == "\n  a();"


def test_js_blank_line_in_a_function_stops_before_the_closing_brace():
    src = "function f() {\n  █\n}\n"
    assert complete(src, "const x = 1;\n  return x;\n}\n", filename="a.js") == "const x = 1;\n  return x;"


def test_block_of_a_statement_spanning_lines_is_measured_from_its_first_line():
    src = "def f(a,\n      b):█\n"
    assert complete(src, "\n    return a + b\n\nprint(f(1, 2))\n") == "\n    return a + b"
    src = "class C:\n    def f(self, a,\n               b=None):█\n"
    assert complete(src, "\n        self.a = a\n        self.b = b\n    def g(self):\n") == "\n        self.a = a\n        self.b = b"
    src = "def f(i, n):\n    while i < n and \\\n          ok(i):█\n"
    assert complete(src, "\n        i += 1\n    return i\n") == "\n        i += 1"


def test_after_a_list_item_or_prose_ending_with_a_comma_the_next_lines_follow():
    assert complete("items = [\n    1,█\n]\n", "\n    2,\n    3,\n]\n") == "\n    2,\n    3,"
    src = 'def f():\n    """Sum them.\n\n    Like sum(map(int, xs)) but returns a list,█\n'
    assert complete(src, "\n    one per item.\n    \"\"\"\n") == '\n    one per item.\n    """'


def test_a_comma_after_an_open_bracket_still_opens_a_block():
    assert complete("x = f(a,█\n", "\n      b)\ny = 2\n") == "\n      b)"


# -- rule 5: never repeat the text after the cursor -----------------------------------------------
def test_js_auto_closed_brace_is_not_repeated():
    src = "function add(a, b) {█\n}\n"
    assert complete(src, "\n  return a + b;\n}\n", filename="calc.js") == "\n  return a + b;"


def test_the_same_code_in_another_block_is_not_a_repeat():
    src = "def f(it):\n    for x in it:\n        try:\n            use(x)█\n\n    except KeyError:\n        pass\n"
    raw = "\n        except KeyError:\n            pass\n"
    assert complete(src, raw) == "\n        except KeyError:\n            pass"
    src = "def f(it):\n    for x in it:\n        try:\n            use(x)█\n        except KeyError:\n            pass\n"
    assert complete(src, raw) is None  # at the same indentation it is the code that follows


def test_lines_repeating_the_following_code_are_dropped():
    src = "def f():\n    █\n    return x\n"
    assert complete(src, "x = 1\n    return x\n") == "x = 1"


def test_a_completion_that_is_the_following_code_shows_nothing():
    assert complete("def f():\n    █\n    return 1\n", "return 1\n") is None
    assert complete("foo(█)\n", ")") is None


def test_closing_bracket_already_after_the_cursor_is_not_repeated():
    assert complete("print(█)\n", "a, b)") == "a, b"
    assert complete("print(█)\n", "len(x))") == "len(x)"
    assert complete("print(█)\n", "len(x)") == "len(x)"  # its own bracket, balanced: kept


def test_closing_quote_and_bracket_are_not_repeated():
    assert complete('print("█")\n', 'hello")') == "hello"
    assert complete('print("█")\n', 'a", "b")') == 'a", "b'


def test_mid_line_tail_is_not_repeated():
    assert complete("print(█, end='')\n", "x, end='')\n") == "x"
    assert complete("x = █;\n", "5;\n", filename="a.js") == "5"


def test_go_multiline_call_arguments():
    src = "func main() {\n\tfmt.Println(█)\n}\n"
    raw = "\n\t\t\"a\",\n\t\t\"b\",\n\t)\n}\n"
    assert complete(src, raw, filename="main.go") == '\n\t\t"a",\n\t\t"b",'


# -- rule 6: indentation --------------------------------------------------------------------------
def test_first_line_reindented_from_column_zero_is_fixed():
    assert complete("def f():\n    █\n", "    return 1\n") == "return 1"
    assert complete("def f():\n    █\n", "    if x:\n        y()\n") == "if x:\n        y()"


def test_deeper_first_line_keeps_the_extra_indentation():
    assert complete("def f():\n    █\n", "        return 1\n", multiline="never") == "    return 1"


def test_indentation_at_column_zero_is_kept():
    assert complete("class A:\n█\n", "    def f(self):\n        pass\n") == "    def f(self):\n        pass"


def test_go_tabs_replace_the_models_spaces():
    src = "func add(a, b int) int {\n\t█\n}\n"
    assert complete(src, "sum := a + b\n    return sum\n}\n", filename="calc.go") == "sum := a + b\n\treturn sum"


def test_python_tabs_from_the_nearby_prefix():
    src = "def f():\n\tif x:\n\t\ty = 1\n█"
    assert complete(src, "def g():\n    return 2\n") == "def g():\n\treturn 2"


def test_spaces_inside_the_first_line_are_not_converted():
    assert complete("def f():\n\tx =█\n", "    1", multiline="never") == "    1"


# -- rule 7: nothing to show ----------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["", "   ", "\n\n", "<|endoftext|>", "  \n  \n"])
def test_empty_output_shows_nothing(raw):
    assert complete("def f():\n    █\n", raw) is None
    assert complete("x = █\n", raw) is None


# -- markdown fences and chat replies ---------------------------------------------------------------
def test_fim_output_wrapped_in_a_fence_is_unwrapped():
    assert complete("def f():\n    █\n", "```python\nreturn 1\n```\n") == "return 1"


def test_fence_is_content_in_a_markdown_document():
    assert complete("# Usage\n\n█", "```sh\npip install x\n```\n", filename="README.md") == "```sh\npip install x\n```"


def test_strip_chat_reply_fences_and_prose():
    assert strip_chat_reply("```python\nreturn 1\n```") == "return 1"
    assert strip_chat_reply("Here you go:\n```\nreturn 1\n```\nThis returns one.") == "return 1"
    assert strip_chat_reply("return 1") == "return 1"


def test_chat_reply_with_echoed_code_is_reduced_to_the_hole():
    src = "def add(a, b):\n    █\n\nprint(add(1, 2))\n"
    raw = "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\n```"
    assert complete(src, raw, stop=CHAT_STOP) == "return a + b"


def test_chat_reply_restating_the_cursor_line():
    assert complete("    total = █\n", "total = a + b", stop=CHAT_STOP) == "a + b"
    assert complete("def f():\n    return a█\n", "return a + b", stop=CHAT_STOP) == " + b"


def test_chat_reply_written_from_column_zero_is_indented_like_the_cursor():
    src = "def f(x):\n    █\n"
    assert complete(src, "\nif x:\n    return 1\nreturn 2", stop=CHAT_STOP) == "if x:\n        return 1\n    return 2"


def test_chat_reply_that_only_echoes_shows_nothing():
    src = "def add(a, b):\n    █\n"
    assert complete(src, "def add(a, b):\n    ", stop=CHAT_STOP) is None


# -- streaming ------------------------------------------------------------------------------------
def should_stop(src: str, text: str, multiline: str = "auto", filename: str = "main.py") -> bool:
    return stream_should_stop(text, ctx_from(src, filename), multiline)


def test_stream_single_line_stops_at_the_newline():
    src = "total = compute█\n"
    assert not should_stop(src, "(1", "never")
    assert should_stop(src, "(1)\n", "never")
    assert should_stop("total = compute(1)█\n", "\n", "never")  # nothing to show: stop at once


def test_stream_single_line_at_a_blank_line_waits_for_a_non_blank_line():
    src = "def f():\n    █\n"
    assert not should_stop(src, "\n", "never")
    assert not should_stop(src, "\n    ret", "never")
    assert should_stop(src, "\n    return 1\n", "never")


def test_stream_multi_line_stops_when_a_line_ends_the_block():
    src = "def add(a, b):█\n"
    assert not should_stop(src, "\n    s = a + b\n")
    assert not should_stop(src, "\n    s = a + b\n    ")  # the next line's indentation is not known yet
    assert not should_stop(src, "\n    s = a + b\n    return s\n")
    assert should_stop(src, "\n    s = a + b\n    return s\nd")


def test_stream_multi_line_waits_for_a_closing_line_it_keeps():
    src = "function f() {█"
    assert not should_stop(src, "\n  return 1;\n}", filename="a.js")
    assert should_stop(src, "\n  return 1;\n}\n", filename="a.js")


def test_stream_stops_after_two_blank_lines():
    assert not should_stop("█", "import os\n\n")
    assert should_stop("█", "import os\n\n\n")


def test_stream_stops_at_a_closing_fence():
    src = "def f():\n    █\n"
    assert not should_stop(src, "`")
    assert not should_stop(src, "```py")
    assert not should_stop(src, "```python\n")  # the opening line is not the suggestion's first line
    assert not should_stop(src, "```python\nreturn 1\n")
    assert should_stop(src, "```python\nreturn 1\n```")


@pytest.mark.parametrize(
    "src, raw",
    [
        ("def add(a, b):█\n\nprint(add(1, 2))\n", "\n    s = a + b\n    return s\n\ndef other():\n    pass\n"),
        ("function add(a, b) {█", "\n  return a + b;\n}\n\nfunction sub() {}\n"),
        ("total = compute(█)\n", "1, 2\nprint(total)\n"),
        ("def f():\n    █\n", "```python\nreturn 1\n```\nThis returns one.\n"),
        ("def add(a, b):\n    █\n\nprint(add(1, 2))\n", "```python\nreturn a + b\n```\n"),
        ("█", "import os\n\n\nimport sys\n"),
        ("def f(a,\n      b):█\n", "\n    return a + b\n\nprint(f(1, 2))\n"),
        ("items = [\n    1,█\n]\n", "\n    2,\n    3,\n]\nx = 1\n"),
    ],
)
def test_stopping_the_stream_early_does_not_change_the_result(src, raw):
    ctx = ctx_from(src)
    cut = next(i for i in range(len(raw) + 1) if stream_should_stop(raw[:i], ctx, "auto"))
    assert cut < len(raw)
    assert postprocess(raw[:cut], ctx) == postprocess(raw, ctx)


def test_end_of_a_finished_line_continues_with_the_next_lines_block():
    src = "def f(x):\n    y = g(x)█\n"
    assert complete(src, "\n    z = y + 1\n    return z\n\ndef h():\n    pass\n") == "\n    z = y + 1\n    return z"


def test_after_the_last_line_of_an_inner_block_the_outer_block_follows():
    src = "def f(x):\n    if x:\n        raise ValueError(x)█\n"
    raw = "\n    return x * 2\n\nprint(f(1))\n"
    assert complete(src, raw) == "\n    return x * 2"
    assert not should_stop(src, "\n  ")  # the next line's indentation is not known yet
    assert should_stop(src, raw)


# -- a generation cut short by local.timeoutMs ----------------------------------------------------
@pytest.mark.parametrize("partial, kept", [
    ("total = 0\n    for x in xs:\n        tot", "total = 0\n"),  # the opener's body never came
    ("total = 0\n    for x in xs:\n        total += x\n    ret", "total = 0\n    for x in xs:\n        total += x\n"),
    ("return compute(", ""),  # no complete line
    ("x = f(a,\n      b)\ny = 2\n", "x = f(a,\n      b)\ny = 2\n"),  # ends on a complete line: all of it
    ("items = [\n    1,\n    2,\n", ""),  # every line continues on the next
    ("a = 1\n\n\nb", "a = 1\n"),
])
def test_complete_lines_of_a_cut_short_generation(partial, kept):
    from tandem_lsp.completion.postprocess import complete_lines

    assert complete_lines(partial) == kept

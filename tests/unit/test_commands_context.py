"""Pure helpers of the commands: frames, enclosing functions, imports, code-action edits."""

from tandem_lsp.commands import Sources, excerpt
from tandem_lsp.commands.code_actions import apply, code_from_reply, fit_indentation, parses, target
from tandem_lsp.commands.workspace_context import definitions_used, enclosing_function, frames, imports

CALC = '''import math
from os import path


def area(r):
    return math.pi * r * r


class Shape:
    def grow(self, k):
        scaled = self.size * k
        return scaled
'''


def test_frames_keep_workspace_files_and_drop_the_rest(tmp_path):
    (tmp_path / "calc.py").write_text(CALC)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text("def test_area():\n    assert area(1) == 3\n")
    failure = (
        'Traceback (most recent call last):\n'
        f'  File "{tmp_path}/tests/test_calc.py", line 2, in test_area\n'
        '  File "/usr/lib/python3.11/site-packages/pluggy/_hooks.py", line 10, in __call__\n'
        f'  File "{tmp_path}/calc.py", line 6, in area\n'
        "ZeroDivisionError: boom\n"
        "tests/test_calc.py:2: AssertionError\n"
    )
    found = frames(failure, str(tmp_path))
    assert [(f.path.rsplit("/", 1)[-1], f.line) for f in found] == [("test_calc.py", 2), ("calc.py", 6)]
    assert frames(failure, None) == []


def test_enclosing_function_and_method():
    first, code = enclosing_function(CALC, 6)
    assert first == 5 and code == "def area(r):\n    return math.pi * r * r"
    first, code = enclosing_function(CALC, 12)
    assert first == 10 and code.startswith("    def grow(self, k):") and code.endswith("return scaled")


def test_imports_and_definitions_used():
    assert imports(CALC) == "import math\nfrom os import path"
    used = definitions_used(CALC, "print(area(2))")
    assert used == ["def area(r):\n    return math.pi * r * r"]


def test_excerpt_and_sources(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\nz = 3\n")
    sources = Sources(open_text=lambda uri: "open text" if uri.endswith("b.py") else None)
    assert sources.text((tmp_path / "a.py").as_uri()).startswith("x = 1")
    assert sources.text("file:///nowhere/b.py") == "open text"
    assert sources.text("untitled:Untitled-1") is None
    assert excerpt("a\nb\nc", (1, 2)) == (2, "b\nc")


def test_code_action_target_reply_and_parse_check():
    t = target(CALC, 5, 5)  # cursor in area(): the whole function
    assert (t.start, t.end) == (4, 5)
    reply = 'Here it is:\n```python\ndef area(r):\n    """Area of a circle."""\n    return math.pi * r * r\n```\n'
    new = code_from_reply(reply)
    assert new.startswith("def area(r):") and new.endswith("r * r")
    assert parses(apply(CALC, t, new), "python", "file:///calc.py")
    assert not parses(apply(CALC, t, "def area(r)\n    return"), "python", "file:///calc.py")
    assert parses("not python {", "javascript", "file:///a.js")


def test_fit_indentation_restores_a_method_indent():
    t = target(CALC, 10, 10)
    new = fit_indentation("def grow(self, k):\n    return self.size * k", t.code)
    assert new == "    def grow(self, k):\n        return self.size * k"

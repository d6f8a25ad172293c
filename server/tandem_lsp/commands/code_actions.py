"""Quick code actions on the local model: add a docstring, add type hints, fix a diagnostic,
explain the code. Listing them is free; the model runs when one is resolved. An edit is confined
to the selected lines (or the function around the cursor) and, for Python, must parse."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from tandem_lsp.commands.workspace_context import enclosing_function

EDIT_SYSTEM = (
    "You edit code. Reply with only the complete rewritten code of the snippet, in one fenced code block, "
    "keeping its indentation, names and behaviour. Change nothing except what is asked."
)
EXPLAIN_SYSTEM = "You explain code briefly and concretely to a programmer, in a few sentences of Markdown."

ASKS = {
    "docstring": ("Tandem: Add docstring", "Add a concise docstring to each function or class in this snippet."),
    "typehints": ("Tandem: Add type hints", "Add type hints to the parameters and return values of the functions in this snippet."),
    "fix": ("Tandem: Fix '{message}'", "Fix this problem reported at line {line}: {message}"),
}
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:\n```|\Z)", re.S)


@dataclass(frozen=True)
class Target:
    """The lines an action works on (0-based, inclusive)."""

    start: int
    end: int
    code: str


def target(text: str, start_line: int, end_line: int) -> Target:
    """The selected lines, or the function around the cursor when nothing is selected."""
    lines = text.split("\n")
    if start_line == end_line and start_line < len(lines):
        first, code = enclosing_function(text, start_line + 1)
        start = first - 1
        return Target(start, start + code.count("\n"), code)
    end = min(end_line, len(lines) - 1)
    return Target(start_line, end, "\n".join(lines[start_line : end + 1]))


def edit_prompt(kind: str, t: Target, language: str, diagnostic: dict | None = None) -> str:
    ask = ASKS[kind][1]
    if diagnostic is not None:
        ask = ask.format(line=diagnostic.get("line", 0) + 1, message=diagnostic.get("message", ""))
    return f"{ask}\n\nThe snippet ({language or 'code'}, lines {t.start + 1}-{t.end + 1}):\n```\n{t.code}\n```"


def code_from_reply(reply: str) -> str:
    m = _FENCE.search(reply)
    return (m.group(1) if m else reply).strip("\n")


def fit_indentation(new: str, old: str) -> str:
    """Re-indent the model's code so its first line starts where the original's did."""
    def indent(s: str) -> int:
        first = next((line for line in s.split("\n") if line.strip()), "")
        return len(first) - len(first.lstrip())

    shift = indent(old) - indent(new)
    if shift <= 0:
        return new
    pad = old[: indent(old)].lstrip("\n")[:shift] if old else " " * shift
    return "\n".join(pad + line if line.strip() else line for line in new.split("\n"))


def apply(text: str, t: Target, new_code: str) -> str:
    lines = text.split("\n")
    return "\n".join([*lines[: t.start], new_code, *lines[t.end + 1 :]])


def parses(text: str, language: str, uri: str) -> bool:
    """Python must parse after the edit; other languages are not checked here."""
    if language != "python" and not uri.endswith((".py", ".pyi")):
        return True
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True

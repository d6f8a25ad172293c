"""The next-edit template stage: how a model is asked to rewrite the editable window, and how its answer
becomes the rewritten window again.

Three formats, one per kind of model:

* **sweep** — Sweep's next-edit models (Qwen2.5-Coder fine-tunes) were trained on Qwen's repository format:
  ``<|file_sep|>`` blocks, here the recent edits as ``{path}.diff`` blocks of ``original:``/``updated:``
  lines, then the window as it was before them (``original/{path}``), as it is (``current/{path}``), and an
  open ``updated/{path}`` block that the model fills with the rewritten window. The parts are joined by
  one newline, so a block's text carries no final newline of its own, and the model's answer starts with
  the newline that ends the ``updated/`` header. Nothing in the answer marks its end: the model stops at
  the next ``<|file_sep|>`` or at end of text, and servers drop the stop string.
* **zeta** — Zed's Zeta (a Qwen2.5-Coder-7B fine-tune) reads an Alpaca-style prompt: ``### Instruction:``,
  the edits as ``User edited "path":`` plus a fenced diff, and the excerpt in a fence named by the path,
  the editable region between ``<|editable_region_start|>``/``<|editable_region_end|>`` lines, the cursor
  as ``<|user_cursor_is_here|>`` and ``<|start_of_file|>`` when the excerpt starts the file. It answers
  with the excerpt from the start marker on, rewritten; the end marker shows that the region is complete.
* **instruct** — any chat model: OpenAI-style messages with the diffs, the window in one fenced block and
  the request to answer with the rewritten window in one fenced block; the closing fence shows that the
  answer is complete.

``parse`` returns the rewritten window in the shape of ``ctx.window`` (whole lines; the final newline, or
its absence at the end of the file, and CRLF line ends as the window has them), or None when the answer
cannot be trusted: an answer cut short would delete the rest of the window, and an empty one all of it.
A window that itself contains one of its template's markers is refused too, as the model's markers could
not be told from it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from tandem_lsp.next_edit.types import FileDiff, NextEditContext

# -- markers ------------------------------------------------------------------------------------

FILE_SEP = "<|file_sep|>"  # Qwen2.5-Coder's file separator, a special token
ENDOFTEXT = "<|endoftext|>"  # Qwen's end of text
SWEEP_CURSOR = "<|cursor|>"  # Sweep's later (v2) models mark the cursor so; 1.5B prompts carry none

ZETA_INSTRUCTION = (
    "You are a code completion assistant and your task is to analyze user edits and then rewrite an excerpt "
    "that the user provides, suggesting the appropriate edits within the excerpt, taking into account the "
    "cursor location."
)
ZETA_CURSOR = "<|user_cursor_is_here|>"
ZETA_START_OF_FILE = "<|start_of_file|>"
ZETA_REGION_START = "<|editable_region_start|>"
ZETA_REGION_END = "<|editable_region_end|>"
# Zeta answers with the region and then the rest of the excerpt, so only the context after the region is
# repeated: it stays short, the context before it may be longer (Zed gives both about 150 tokens).
ZETA_BEFORE_LINES, ZETA_BEFORE_CHARS = 8, 800
ZETA_AFTER_LINES, ZETA_AFTER_CHARS = 3, 300

INSTRUCT_CURSOR = "<|cursor|>"
INSTRUCT_SYSTEM = (
    "You predict a programmer's next edit. You see their recent edits as unified diffs and an editable window "
    "of the file they are in. Rewrite the window so that it contains the next edit those recent edits imply "
    "(for example the same change where it is still missing, or the rest of a change they started) and change "
    "nothing else; if they imply no edit in the window, return it unchanged. Reply with the whole window in one "
    f"fenced code block, without the {INSTRUCT_CURSOR} marker, and nothing else."
)
INSTRUCT_EDITS_HEADER = "Recent edits, oldest first:"
INSTRUCT_NO_EDITS = "Recent edits: none."
INSTRUCT_WINDOW_HEADER = "The editable window of {path} (the cursor is marked " + INSTRUCT_CURSOR + "):"
INSTRUCT_REQUEST = (
    "Rewrite the editable window to make the next edit that the recent edits imply, or return it unchanged. "
    "Reply with the whole window in one fenced code block."
)

# -- answer budget ------------------------------------------------------------------------------

UNKNOWN_CHARS_PER_TOKEN = 2.0  # code runs at 3-4 characters per token; an unknown server gets room to spare
TOKEN_MARGIN = 0.85  # as in the sizing stage: characters per token vary along a text
GROWTH_CHARS = 400  # a rewrite may add lines (a method, a branch): room for them beyond the window's size


def _unusable(answer: str, ctx: NextEditContext) -> str | None:
    return None


@dataclass(frozen=True)
class NextEditTemplate:
    """A next-edit prompt format: exactly one of ``render`` (a raw prompt, continued as is) and ``chat``
    (messages) is set. ``answer(ctx, new_window)`` is what a model of this format writes to propose
    ``new_window``; it sizes the answer budget."""

    name: str
    stop: tuple[str, ...]
    render: Callable[[NextEditContext], str] | None = None
    chat: Callable[[NextEditContext], list[dict]] | None = None
    parse: Callable[[str, NextEditContext], str | None] = _unusable
    answer: Callable[[NextEditContext, str], str] | None = None
    reserve_tokens: int = 16  # what the answer needs beyond its text's estimate (markers, fences)

    @property
    def is_chat(self) -> bool:
        return self.chat is not None

    def build(self, ctx: NextEditContext) -> str:
        """The raw prompt ("" for the chat template)."""
        return self.render(ctx) if self.render is not None else ""

    def build_messages(self, ctx: NextEditContext) -> list[dict] | None:
        """The chat messages (None for raw-prompt templates)."""
        return self.chat(ctx) if self.chat is not None else None

    def answer_budget(self, ctx: NextEditContext, chars_per_token: float | None) -> int:
        """max_tokens for a rewrite of ``ctx.window``: the answer for the window unchanged, room for growth,
        in tokens with a margin. An answer that does not end within it is unusable anyway."""
        chars = len(self.answer(ctx, ctx.window)) if self.answer is not None else len(ctx.window)
        room = chars + max(chars // 2, GROWTH_CHARS)
        return math.ceil(room / (_chars_per_token(chars_per_token) * TOKEN_MARGIN)) + self.reserve_tokens


def _chars_per_token(value: float | None) -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        return UNKNOWN_CHARS_PER_TOKEN
    return min(max(value, 0.5), 16.0)


# -- shared text helpers ------------------------------------------------------------------------


def _joined(text: str) -> str:
    """A block of whole lines as a "\\n"-joined part: without its final newline."""
    return text[:-1] if text.endswith("\n") else text


def _is_crlf(text: str) -> bool:
    return "\r\n" in text and text.count("\n") == text.count("\r\n")


def _conform(body: str, ctx: NextEditContext, *, joined: bool) -> str:
    """The model's rewrite in the shape of ``ctx.window``. A ``joined`` body lacks the final newline (the
    window's, added back when the window has one); a line-shaped body has it (dropped at the end of the
    file). A CRLF window gets CRLF back when the model wrote bare newlines."""
    window = ctx.window
    if joined and window.endswith("\n"):
        body += "\n"
    if _is_crlf(window) and "\r" not in body:
        body = body.replace("\n", "\r\n")
    if not joined and not window.endswith("\n"):
        if body == window + "\n":
            return window
        crlf = _is_crlf(window) and body.endswith("\r\n")
        body = body[:-2] if crlf else body[:-1] if body.endswith("\n") else body
    return body


def _usable(window: str | None, ctx: NextEditContext) -> str | None:
    """None for a rewrite that empties a window with text: that is a model that wrote nothing, not an edit."""
    return None if window is None or (ctx.window.strip() and not window.strip()) else window


def _has_marker(ctx: NextEditContext, markers: tuple[str, ...]) -> bool:
    return any(m in ctx.window for m in markers)


def _cursor_in(text: str, cursor: int) -> int:
    return min(max(cursor, 0), len(text))


def _sides(d: FileDiff) -> tuple[str, str]:
    """The hunk's lines before and after, from the diff itself when the caller gave neither."""
    if d.old or d.new:
        return d.old, d.new
    old, new = [], []
    for line in d.diff.split("\n"):
        if line.startswith(("@@", "\\")) or not line:
            continue
        if line[0] in " -":
            old.append(line[1:])
        if line[0] in " +":
            new.append(line[1:])
    return "\n".join(old), "\n".join(new)


# -- sweep --------------------------------------------------------------------------------------


def _sweep(ctx: NextEditContext) -> str:
    parts = []
    for d in ctx.diffs:
        old, new = _sides(d)
        if old or new:
            parts += [f"{FILE_SEP}{d.path}.diff", "original:", _joined(old), "updated:", _joined(new)]
    parts += [
        f"{FILE_SEP}original/{ctx.path}", _joined(ctx.original),
        f"{FILE_SEP}current/{ctx.path}", _joined(ctx.window),
        f"{FILE_SEP}updated/{ctx.path}",
    ]
    return "\n".join(parts)


def _sweep_answer(ctx: NextEditContext, new_window: str) -> str:
    return "\n" + _joined(new_window)


def _sweep_parse(answer: str, ctx: NextEditContext) -> str | None:
    """The window after the ``updated/`` header. The text cannot show a cut by max_tokens (the stop string
    is not in it): the caller must drop answers whose finish reason is "length"."""
    if _has_marker(ctx, SWEEP.stop):
        return None  # the model's copy would stop inside the window
    for stop in SWEEP.stop:
        answer = answer.split(stop, 1)[0]
    answer = answer.replace(SWEEP_CURSOR, "") if SWEEP_CURSOR not in ctx.window else answer
    answer = answer[1:] if answer.startswith("\n") else answer  # the newline that ends the header
    current = _joined(ctx.window)
    if answer in (current, current + "\n"):
        return ctx.window
    if answer.endswith("\n") and not current.endswith("\n"):
        answer = answer[:-1]  # a newline before the next <|file_sep|>, not a new blank line
    return _usable(_conform(answer, ctx, joined=True), ctx)


# -- zeta ---------------------------------------------------------------------------------------


def _quoted(path: str) -> str:
    """A path as Zed writes it in its events (Rust's debug format: quoted, escaped)."""
    return json.dumps(path, ensure_ascii=False)


def _zeta_events(ctx: NextEditContext) -> str:
    return "\n\n".join(f"User edited {_quoted(d.path)}:\n```diff\n{d.diff}\n```" for d in ctx.diffs if d.diff)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _take(lines: list[str], count: int, chars: int) -> list[str]:
    """Up to ``count`` lines, whole, within ``chars`` characters, in the given order."""
    out, used = [], 0
    for line in lines[:count]:
        if used + len(line) > chars:
            break
        out.append(line)
        used += len(line)
    return out


def _zeta_region(ctx: NextEditContext) -> str:
    """The editable region with the cursor marker: the window's lines without the last newline."""
    text = _joined(ctx.window)
    at = _cursor_in(text, ctx.cursor)
    return f"{ZETA_REGION_START}\n{text[:at]}{ZETA_CURSOR}{text[at:]}\n{ZETA_REGION_END}"


def _zeta_tail(ctx: NextEditContext) -> str:
    """What follows the end marker up to the closing fence: the window's last newline, then the context
    after it without its own last newline (the excerpt ends at a line end, as Zed's does)."""
    if not ctx.window.endswith("\n"):
        return ""
    after = "".join(_take(_lines(ctx.after), ZETA_AFTER_LINES, ZETA_AFTER_CHARS))
    return "\n" + _joined(after)


def _zeta_excerpt(ctx: NextEditContext) -> str:
    before = _take(_lines(ctx.before)[::-1], ZETA_BEFORE_LINES, ZETA_BEFORE_CHARS)[::-1]
    start_of_file = ctx.window_start_line - len(before) <= 0
    head = f"```{ctx.path}\n" + (f"{ZETA_START_OF_FILE}\n" if start_of_file else "") + "".join(before)
    return f"{head}{_zeta_region(ctx)}{_zeta_tail(ctx)}\n```"


def _zeta(ctx: NextEditContext) -> str:
    return (
        f"### Instruction:\n{ZETA_INSTRUCTION}\n\n### User Edits:\n\n{_zeta_events(ctx)}\n\n"
        f"### User Excerpt:\n\n{_zeta_excerpt(ctx)}\n\n### Response:\n\n"
    )


def _zeta_answer(ctx: NextEditContext, new_window: str) -> str:
    return f"{ZETA_REGION_START}\n{_joined(new_window)}\n{ZETA_REGION_END}{_zeta_tail(ctx)}\n```\n"


def _zeta_parse(answer: str, ctx: NextEditContext) -> str | None:
    """Zed's rule: exactly one start and one end marker (no end marker: cut short), at most one start of
    file; the region is the text between the start marker's line and the newline before the end marker."""
    if _has_marker(ctx, (ZETA_CURSOR, ZETA_REGION_START, ZETA_REGION_END, ZETA_START_OF_FILE)):
        return None
    text = answer.replace(ZETA_CURSOR, "")
    if text.count(ZETA_REGION_START) != 1 or text.count(ZETA_REGION_END) != 1:
        return None
    if text.count(ZETA_START_OF_FILE) > 1:
        return None
    start = text.index(ZETA_REGION_START) + len(ZETA_REGION_START)
    line_end = text.find("\n", start)
    if line_end < 0:
        return None
    rest = text[line_end + 1:]
    if rest.startswith(ZETA_REGION_END):
        return _usable(_conform("", ctx, joined=True), ctx)  # an empty region written without its blank line
    end = rest.rfind("\n" + ZETA_REGION_END)
    if end < 0:
        return None  # the end marker before the start marker's line ended
    return _usable(_conform(rest[:end], ctx, joined=True), ctx)


# -- instruct -----------------------------------------------------------------------------------

_FENCE_LANGS = {
    "py": "python", "pyi": "python", "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "jsx",
    "ts": "typescript", "tsx": "tsx", "rs": "rust", "go": "go", "java": "java", "kt": "kotlin", "kts": "kotlin",
    "c": "c", "h": "c", "cc": "cpp", "cpp": "cpp", "cxx": "cpp", "hpp": "cpp", "cs": "csharp", "rb": "ruby",
    "php": "php", "swift": "swift", "scala": "scala", "lua": "lua", "sh": "bash", "bash": "bash", "zsh": "bash",
    "sql": "sql", "html": "html", "css": "css", "scss": "scss", "json": "json", "yaml": "yaml", "yml": "yaml",
    "toml": "toml", "md": "markdown", "xml": "xml", "dart": "dart", "ex": "elixir", "exs": "elixir", "zig": "zig",
    "hs": "haskell", "ml": "ocaml", "r": "r", "jl": "julia", "vue": "vue", "svelte": "svelte",
}
_LANG_ID = re.compile(r"[A-Za-z0-9_+#.-]{1,32}")
_BACKTICKS = re.compile(r"`+")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


def fence_language(path: str, language_id: str) -> str:
    """The fenced block's language tag: by file extension, else the editor's language id, else none."""
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in _FENCE_LANGS:
        return _FENCE_LANGS[ext]
    return language_id.lower() if _LANG_ID.fullmatch(language_id or "") else ""


def _fence_for(text: str) -> str:
    """Backticks enough to fence ``text``: longer than any run inside it."""
    return "`" * max(3, max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)


def _fenced(text: str, lang: str = "") -> str:
    fence = _fence_for(text)
    body = text if not text or text.endswith("\n") else text + "\n"
    return f"{fence}{lang}\n{body}{fence}"


def _instruct(ctx: NextEditContext) -> list[dict]:
    parts = []
    edits = [d for d in ctx.diffs if d.diff]
    if edits:
        parts.append(INSTRUCT_EDITS_HEADER + "".join(f"\n\n{d.path}:\n{_fenced(d.diff, 'diff')}" for d in edits))
    else:
        parts.append(INSTRUCT_NO_EDITS)
    at = _cursor_in(ctx.window, ctx.cursor)
    marked = ctx.window[:at] + INSTRUCT_CURSOR + ctx.window[at:] if ctx.window else ""  # an empty block as is
    lang = fence_language(ctx.path, ctx.language_id)
    parts.append(INSTRUCT_WINDOW_HEADER.format(path=ctx.path or "this file") + "\n" + _fenced(marked, lang))
    parts.append(INSTRUCT_REQUEST)
    return [{"role": "system", "content": INSTRUCT_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def _instruct_answer(ctx: NextEditContext, new_window: str) -> str:
    return _fenced(new_window, fence_language(ctx.path, ctx.language_id)) + "\n"


def fenced_blocks(text: str) -> tuple[list[tuple[str, str]], bool]:
    """The fenced blocks of a markdown answer as (info string, content with each line's newline), and
    whether a fence was left open (the answer was cut short)."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        opening = _FENCE.fullmatch(lines[i].rstrip("\r"))
        if opening is None or (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            i += 1
            continue
        fence, body, i = opening.group(1), [], i + 1
        while i < len(lines):
            closing = _FENCE.fullmatch(lines[i].rstrip("\r"))
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence) \
                    and not closing.group(2).strip():
                break
            body.append(lines[i])
            i += 1
        else:
            return blocks, True
        blocks.append((opening.group(2).strip(), "".join(line + "\n" for line in body)))
        i += 1
    return blocks, False


def _instruct_parse(answer: str, ctx: NextEditContext) -> str | None:
    """The largest fenced block that is not a diff (the first of equals), after any thinking section. An
    unclosed fence or thinking section is None (cut short), and so is an answer without a fence: prose
    cannot be told from code, and taken as the window it would replace the user's code."""
    if _has_marker(ctx, (INSTRUCT_CURSOR,)):
        return None
    if answer.lstrip().startswith("<think>"):  # a reasoning model's thoughts come first
        if "</think>" not in answer:
            return None
        answer = answer.split("</think>", 1)[1]
    blocks, cut = fenced_blocks(answer.replace(INSTRUCT_CURSOR, ""))
    code = [body for info, body in blocks if info.split(" ", 1)[0].lower() != "diff"]
    if cut or not code:
        return None  # cut short: the open block may have been the window, a complete one only an aside
    return _usable(_conform(max(code, key=len), ctx, joined=False), ctx)


# -- the templates ------------------------------------------------------------------------------

SWEEP = NextEditTemplate(
    "sweep", (FILE_SEP, ENDOFTEXT), render=_sweep, parse=_sweep_parse, answer=_sweep_answer, reserve_tokens=8
)
ZETA = NextEditTemplate(
    "zeta", (ENDOFTEXT, "\n### Instruction:", "\n### User Edits:"), render=_zeta, parse=_zeta_parse,
    answer=_zeta_answer, reserve_tokens=32,  # the markers are plain text to Zeta, several tokens each
)
INSTRUCT = NextEditTemplate("instruct", (), chat=_instruct, parse=_instruct_parse, answer=_instruct_answer,
                            reserve_tokens=48)  # fences, and a sentence the model may add
TEMPLATES: dict[str, NextEditTemplate] = {t.name: t for t in (SWEEP, ZETA, INSTRUCT)}


def _family(model_name: str | None) -> str | None:
    n = (model_name or "").lower()
    if "sweep" in n:
        return "sweep"
    if "zeta" in n:
        return "zeta"
    return None


def is_next_edit_model(model_name: str | None) -> bool:
    """Whether the model was trained for next edits (Sweep's, Zed's Zeta), by its name."""
    return _family(model_name) is not None


def pick_next_edit_template(setting: str | None, model_name: str | None) -> NextEditTemplate:
    """The template named by ``nextEdit.template``; ``auto`` picks by model name (default instruct)."""
    name = (setting or "auto").strip().lower()
    if name == "auto":
        return TEMPLATES[_family(model_name) or "instruct"]
    if name not in TEMPLATES:
        raise ValueError(f"unknown next-edit template {setting!r}: expected auto or one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def answer_budget(ctx: NextEditContext, chars_per_token: float | None,
                  template: NextEditTemplate | str | None = None) -> int:
    """max_tokens for a rewrite of ``ctx.window`` by ``template`` (by name or itself); without one, the
    largest of the templates' budgets."""
    if isinstance(template, str):
        template = TEMPLATES[template]
    if template is not None:
        return template.answer_budget(ctx, chars_per_token)
    return max(t.answer_budget(ctx, chars_per_token) for t in TEMPLATES.values())

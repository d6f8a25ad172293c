"""The post-processing stage: turn raw model output into the text to insert at the cursor.

Rules, in order: cut at a stop string; unwrap a markdown fence (and, for chat replies, drop the
echoed code); keep one line or one indentation block; drop what repeats the text after the
cursor; fit the indentation to the cursor's line. ``stream_should_stop`` applies the same cut to a
partial output, so a stream can be closed as soon as the rest would be thrown away.
"""

from __future__ import annotations

from collections.abc import Sequence

from tandem_lsp.completion.request import PromptContext
from tandem_lsp.completion.templating import HOLE

TAB_WIDTH = 4  # columns of a tab when comparing indentation, and spaces per tab when converting
FENCE = "```"
OPENERS = (":", "{", "(", "[", "=>", "->", "=", ",")
CLOSERS = ")]}"
_CLOSING_PUNCT = set(")]}\"'`;:,")
_ECHO_LINES = 40  # lines before the cursor compared against a chat reply's echo
_STATEMENT_LINES = 20  # lines above the cursor searched for the start of a statement spanning lines


def _width(line: str) -> int:
    """Indentation of ``line`` in columns (tabs count TAB_WIDTH)."""
    return len(line[: len(line) - len(line.lstrip(" \t"))].expandtabs(TAB_WIDTH))


def _is_markdown(ctx: PromptContext) -> bool:
    return ctx.language_id.lower() in ("markdown", "mdx") or ctx.filename.lower().endswith((".md", ".mdx", ".markdown"))


def is_multiline(ctx: PromptContext, multiline: str) -> bool:
    """Whether a suggestion here may span lines (``multiline`` is auto|always|never; anything else is auto).

    Mid-line (real text after the cursor) always gets one line. At the end of a line (only closing
    brackets, quotes or punctuation after it) ``always`` goes multi-line, and so does ``auto`` unless
    the cursor is inside a string literal opened on this line. The block cut keeps it to the
    current block either way.
    """
    if not set(ctx.line_suffix) - set(" \t\r") <= _CLOSING_PUNCT:
        return False
    if multiline in ("always", "never"):
        return multiline == "always"
    return not _in_string(ctx.line_prefix)


def _in_string(line_prefix: str) -> bool:
    """A quote opened on this line and not closed before the cursor (escapes and triple quotes aside)."""
    for quote in ('"', "'", "`"):
        if line_prefix.count(quote) % 2 == 1:
            return True
    return False


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def _unfence(text: str) -> tuple[str, bool | None]:
    """Unwrap output that opens with a markdown fence.

    Returns (code, closed): ``closed`` is None when the text does not open with a fence, False
    while the fence is open (the code is "" until the opening line is complete), True once its
    closing line appeared.
    """
    head = text.lstrip()
    if not head.startswith(FENCE):
        return text, None
    lines = head.split("\n")[1:]
    for i, line in enumerate(lines):
        if line.lstrip().startswith(FENCE):
            return "\n".join(lines[:i]), True
    return "\n".join(lines), False


def strip_chat_reply(text: str, ctx: PromptContext | None = None) -> str:
    """The code of a chat model's reply: the first fenced block's content (or the whole reply).

    With ``ctx``, also drops an echo of the code before the cursor (repeated lines before the
    cursor's line, a repeated start of the cursor's line) and, when the reply was written from
    column 0 at an indented blank line, indents its following lines like the cursor.
    """
    start = text.find(FENCE)
    if start >= 0:
        text = _unfence(text[start:])[0]
    if ctx is None:
        return text
    lines = text.split("\n")
    pad = ctx.line_prefix
    if not pad.strip():  # at a blank cursor line a leading newline means nothing
        while len(lines) > 1 and not lines[0].strip():
            del lines[0]
    before = ctx.prefix.rsplit("\n", _ECHO_LINES + 1)[:-1][-_ECHO_LINES:]
    for k in range(min(len(before), len(lines)), 0, -1):
        echo = before[-k:]
        if any(e.strip() for e in echo) and all(a.strip() == b.strip() for a, b in zip(lines[:k], echo, strict=True)):
            lines = lines[k:]
            break
    head = ctx.line_prefix.lstrip()
    if head and lines and lines[0].lstrip().startswith(head):
        lines[0] = lines[0].lstrip()[len(head) :]
    if pad and not pad.strip() and len(lines) > 1 and lines[0].strip() and not lines[0][0].isspace():
        lines[1:] = [pad + line if line.strip() else line for line in lines[1:]]
    return "\n".join(lines)


def _depth(text: str) -> int:
    """Brackets opened minus brackets closed in ``text`` (strings are not parsed)."""
    return sum(map(text.count, "([{")) - sum(map(text.count, CLOSERS))


def _block_start(ctx: PromptContext) -> tuple[bool, int]:
    """(opener, indent): whether the cursor's line ends by opening a block, and the indentation the block
    is measured from: that of the line its statement starts on. A statement that spans lines starts on
    the line that opened the brackets the cursor's line closes (``def f(a,`` / ``      b):``), or on the
    first of the lines ending with a backslash before it. A trailing comma opens a block only when the
    cursor's line leaves a bracket open (``f(a,``); after a list item (``    1,``) or a line of prose,
    the next line may be as indented as this one."""
    line = ctx.line_prefix.rstrip()
    depth = _depth(line)
    opener = line.endswith(OPENERS) and not (line.endswith(",") and depth <= 0)
    width = _width(ctx.line_prefix)
    head = ctx.prefix[: len(ctx.prefix) - len(ctx.line_prefix)]
    for prev in reversed(head.rsplit("\n", _STATEMENT_LINES + 1)[:-1][-_STATEMENT_LINES:]):
        if depth >= 0 and not prev.rstrip().endswith("\\"):
            break
        depth += _depth(prev)
        width = _width(prev)
    return opener, width if depth >= 0 else _width(ctx.line_prefix)


def _select(text: str, ctx: PromptContext, multi: bool, complete: bool) -> tuple[list[str], bool, bool]:
    """The lines kept by the one-line or block rule (rules 3 and 4), before de-duplication.

    Returns (lines, final, absolute): ``final`` when more output could not change the lines;
    ``absolute`` when the first kept line is a whole line of the output (blank lines before it were
    skipped) rather than the rest of the cursor's line. With ``complete`` the output is all there;
    otherwise its last line may still grow.
    """
    lines = text.split("\n")
    last = len(lines) - 1

    def done(i: int) -> bool:  # line i is complete
        return complete or i < last

    first = 0
    if not ctx.line_prefix.strip():  # at a blank cursor line, the first non-blank line is the suggestion
        while first < last and not lines[first].strip():
            first += 1
        if not lines[first].strip():
            return [], complete, False
    absolute = first > 0
    if not multi:
        return [lines[first]], done(first), absolute

    opener, indent = _block_start(ctx)
    if not opener and not lines[first].strip():
        # at the end of a finished line the suggestion starts on the next line: the block is the
        # one that line belongs to (it may be an outer block, after the last line of an inner one)
        indent = None
    kept = [lines[first]]
    for i in range(first + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            if i + 1 <= last and not lines[i + 1].strip() and done(i + 1):
                return kept, True, absolute  # two blank lines end the suggestion
            kept.append(line)
            continue
        if indent is None:
            if not done(i):
                return kept, False, absolute  # its indentation may still grow
            indent = _width(line)
        if (_width(line) <= indent) if opener else (_width(line) < indent):
            if opener and set(line.strip()) <= _CLOSING_PUNCT:  # the closing line of the block just opened
                return [*kept, line], done(i), absolute
            return kept, True, absolute
        kept.append(line)
    return kept, complete, absolute


def _imbalance(text: str) -> int:
    """Unmatched brackets plus quote characters left open in ``text`` (strings are not parsed)."""
    depth = excess = 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in CLOSERS:
            if depth:
                depth -= 1
            else:
                excess += 1
    return excess + depth + sum(text.count(q) % 2 for q in "\"'`")


def _drop_suffix_repeats(lines: list[str], ctx: PromptContext) -> list[str]:
    """Rule 5: drop what repeats the text after the cursor. A whole line repeats a whole line only at the
    same indentation (the same code in another block is not a repeat)."""
    n = 2 * len(lines) + 2

    def shape(j: int, line: str) -> tuple[str, int | None]:  # line 0 of either side is part of the cursor's line
        return line.strip(), _width(line) if j else None

    def same(a: tuple[str, int | None], b: tuple[str, int | None]) -> bool:
        return a[0] == b[0] and (a[1] is None or b[1] is None or a[1] == b[1])

    ahead = [shape(j, s) for j, s in enumerate(ctx.suffix.split("\n", n)[:n]) if s.strip()]
    shapes = [shape(i, line) for i, line in enumerate(lines)]
    for i in range(len(lines)):
        rest = [s for s in shapes[i:] if s[0]]
        if rest and len(rest) <= len(ahead) and all(map(same, rest, ahead)):
            lines = lines[:i]  # the output from line i on is the code that follows the cursor
            break
    tail = ctx.line_suffix.strip()
    if tail and lines and lines[-1].rstrip().endswith(tail):
        # the output ends with the rest of the cursor's line: drop that copy unless the output needs
        # it (``g()`` before ``)`` closes its own call, so the line balances only with it)
        text = "\n".join(lines).rstrip()
        kept, dropped = (ctx.line_prefix + t + ctx.line_suffix for t in (text, text[: -len(tail)]))
        if _imbalance(dropped) <= _imbalance(kept):
            lines[-1] = lines[-1].rstrip()[: -len(tail)]
    return lines


def _uses_tabs(ctx: PromptContext) -> bool:
    """Whether the document indents with tabs (judged on the cursor's line, then the nearby prefix)."""
    if ctx.line_prefix[:1] in ("\t", " "):
        return ctx.line_prefix[0] == "\t"
    near = ctx.prefix[-2000:]
    return near.count("\n\t") > near.count("\n ")


def _reindent(lines: list[str], ctx: PromptContext, absolute: bool) -> list[str] | None:
    """Rule 6: fit the first line to the cursor's column, and use the document's tabs.

    At a blank cursor line the first line's indentation is taken as absolute (the model indented
    from column 0): the columns the cursor already has are removed. A whole output line that is
    indented less than the cursor belongs to an outer block: None.
    """
    blank = not ctx.line_prefix.strip()
    if blank:
        col, width = _width(ctx.line_prefix), _width(lines[0])
        if absolute and width < col:
            return None
        lines[0] = " " * max(width - col, 0) + lines[0].lstrip(" \t")
    if _uses_tabs(ctx):
        lines = [
            "\t" * (_width(line) // TAB_WIDTH) + " " * (_width(line) % TAB_WIDTH) + line.lstrip(" \t")
            if line.strip() and (i or blank) else line
            for i, line in enumerate(lines)
        ]
    return lines


def postprocess(raw: str, ctx: PromptContext, *, multiline: str = "auto", stop: Sequence[str] = ()) -> str | None:
    """The text to insert at the cursor, or None when nothing is worth showing.

    A stop list holding the chat template's ``<HOLE>`` marks a chat reply: its fences and echo are
    stripped. Other output is unwrapped only when it opens with a markdown fence.
    """
    text = _cut_at_stop(raw, stop).replace("\r\n", "\n")
    if HOLE in stop:
        text = strip_chat_reply(text, ctx)
    elif not _is_markdown(ctx):
        text = _unfence(text)[0]
    lines, _, absolute = _select(text, ctx, is_multiline(ctx, multiline), complete=True)
    while lines and not lines[-1].strip():
        lines.pop()
    lines = _drop_suffix_repeats(lines, ctx) if lines else lines
    lines = _reindent(lines, ctx, absolute) if lines else None
    result = "\n".join(lines).rstrip() if lines else ""
    return result if result.strip() else None


_OPENERS = (":", "{", "(", "[", ",", "\\", "=>", "->")


def complete_lines(partial: str) -> str:
    """What a generation cut short (``local.timeoutMs``) may still show: its complete lines, without a
    last line that opens a block or continues on the next line, since what follows it never came."""
    if "\n" not in partial:
        return ""
    lines = partial[: partial.rfind("\n")].split("\n")
    while lines and (not lines[-1].strip() or lines[-1].rstrip().endswith(_OPENERS)):
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def stream_should_stop(text_so_far: str, ctx: PromptContext, multiline: str) -> bool:
    """True once ``postprocess`` would cut the output before its end, so the stream can be closed:
    a finished line in single-line mode, the line that ends the block (or two blank lines) in
    multi-line mode, or the closing markdown fence."""
    text = text_so_far.replace("\r\n", "\n")
    if not _is_markdown(ctx):
        head = text.lstrip()
        if head and FENCE.startswith(head):
            return False  # maybe the start of a fence: wait
        text, closed = _unfence(text)
        if closed:
            return True
        if closed is False and "\n" in text and FENCE.startswith(text.rsplit("\n", 1)[1].lstrip()):
            return False  # the last line may be the closing fence arriving: wait for it
    return _select(text, ctx, is_multiline(ctx, multiline), complete=False)[1]

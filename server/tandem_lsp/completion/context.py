"""The context stage: what the model sees around the cursor, bounded and cheap.

Runs on every keystroke, so nothing here splits or scans a whole document: the prefix and suffix
are cut from a window next to the cursor, other documents contribute only their first lines, and
recent edits are extracted lazily (the range being typed in stays a reference until the user
moves elsewhere or another document asks for it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tandem_lsp import lines
from tandem_lsp.completion.request import CompletionRequest, PromptContext, Snippet

HEAD_LINES = 30  # lines of another open document offered as a snippet
HEAD_CHARS = 1500  # ... and at most this many characters of them


PREFIX_QUANTUM = 1024  # the prefix window starts on this grid (at most 1/8 of the window): see bound_prefix

def bound_prefix(text: str, offset: int, max_chars: int, quantum: int = 1) -> str:
    """The text before ``offset``: at most ``max_chars``, starting on a line boundary.

    The partial first line of the window is dropped, unless the cursor's own line is longer than
    ``max_chars``: then its last ``max_chars`` characters are kept. With ``quantum`` > 1 the window
    may start only at multiples of ``quantum`` (then on the next line boundary): typing at the
    cursor moves the start once every ``quantum`` characters, not on every line, so a model's
    prompt cache keeps the start of the prompt.
    """
    offset = min(max(offset, 0), len(text))
    if max_chars <= 0:
        return ""
    start = offset - max_chars
    if quantum > 1 and start > 0:
        start = min(-(-start // quantum) * quantum, offset)
    if start <= 0 or text[start - 1] == "\n":
        return text[max(start, 0) : offset]
    cut = text.find("\n", start, offset)
    return text[start:offset] if cut < 0 else text[cut + 1 : offset]


def bound_suffix(text: str, offset: int, max_chars: int) -> str:
    """The text after ``offset``: at most ``max_chars``, ending with a whole line (its newline kept).

    When the rest of the cursor's line alone is longer than ``max_chars``, its first ``max_chars``
    characters are kept.
    """
    offset = min(max(offset, 0), len(text))
    if max_chars <= 0:
        return ""
    end = offset + max_chars
    if end >= len(text) or text[end - 1] == "\n":
        return text[offset:end]
    cut = text.rfind("\n", offset, end)
    return text[offset:end] if cut < 0 else text[offset : cut + 1]


def display_path(uri: str) -> str:
    """A short, relative-ish path for a document: the last two components of its URI's path."""
    path = unquote(urlsplit(uri).path).replace("\\", "/")
    return "/".join([p for p in path.split("/") if p][-2:]) or uri


def _line_start(text: str, line: int) -> int:
    """Offset of the start of 0-based ``line`` (clamped to the last line), lines ending where LSP ends
    them (``\\n``, ``\\r\\n``, ``\\r``: the line numbers come from the editor), counted in C chunks."""
    start = lines.line_start(text, line)
    return lines.line_start_before(text, len(text)) if start is None else start


def _head(text: str, max_lines: int, max_chars: int) -> str:
    """The first ``max_lines`` whole lines of ``text`` within ``max_chars`` (no trailing newline)."""
    if max_chars <= 0:
        return ""
    window = text[:max_chars]
    if len(text) > max_chars and not window.endswith("\n"):
        window = window[: window.rfind("\n") + 1]
    return "\n".join(window.split("\n", max_lines)[:max_lines]).rstrip()


@dataclass
class _Edit:
    uri: str
    first: int  # first and last edited line (0-based)
    last: int
    text: str | None = None  # the extracted lines; None while the range is still being typed in
    source: str = ""  # the document text to extract from while pending


class RecentEdits:
    """Recently edited line ranges per document, offered to the model as snippets.

    ``record`` is O(1) while the user keeps typing in the same place: the range is extracted from
    the document (a few lines around it) only when an edit lands elsewhere or ``snippets`` is asked
    for by another document. Overlapping ranges of a document replace each other; the newest
    ``max_entries`` are kept.
    """

    def __init__(self, max_entries: int = 8, context_lines: int = 3, max_span: int = 12, max_chars: int = 800):
        self.max_entries = max_entries
        self.context_lines = context_lines
        self.max_span = max_span  # a pending range grows at most to this many lines
        self.max_chars = max_chars
        self._done: list[_Edit] = []  # oldest first
        self._pending: _Edit | None = None

    def record(self, uri: str, text: str, line: int) -> None:
        """Note an edit at 0-based ``line`` of ``uri``, whose whole text is now ``text``."""
        p = self._pending
        if (
            p is not None
            and p.uri == uri
            and p.first - self.context_lines <= line <= p.last + self.context_lines
            and max(p.last, line) - min(p.first, line) < self.max_span
        ):
            p.first, p.last, p.source = min(p.first, line), max(p.last, line), text
            return
        self._settle()
        self._pending = _Edit(uri, line, line, source=text)

    def snippets(self, exclude_uri: str = "") -> list[Snippet]:
        """The remembered ranges of documents other than ``exclude_uri``, newest first."""
        if self._pending is not None and self._pending.uri != exclude_uri:
            self._settle()
        return [Snippet(display_path(e.uri), e.text) for e in reversed(self._done) if e.uri != exclude_uri]

    def _settle(self) -> None:
        """Extract the pending range's lines and store them, replacing overlapping or equal entries."""
        e, self._pending = self._pending, None
        if e is None:
            return
        first = max(e.first - self.context_lines, 0)
        start = _line_start(e.source, first)
        lines = e.last + self.context_lines - first + 1
        e.text, e.source = _head(e.source[start : start + self.max_chars + 1], lines, self.max_chars), ""
        if not e.text.strip():
            return
        self._done = [
            d for d in self._done
            if d.text != e.text and not (d.uri == e.uri and d.first <= e.last and e.first <= d.last)
        ]
        self._done.append(e)
        del self._done[: -self.max_entries]


def _size(snippet: Snippet) -> int:
    """Characters a snippet costs in the prompt budget (its path and its text)."""
    return len(snippet.path) + len(snippet.text)


def gather_snippets(
    current_uri: str,
    open_docs: Iterable[tuple[str, str]],
    recent: RecentEdits,
    budget_chars: int,
    deadline: float,
) -> tuple[Snippet, ...]:
    """Context from elsewhere: recently edited ranges first, then the head of other open documents.

    Documents with the current file's extension come first. The total size stays within
    ``budget_chars``; gathering stops once ``time.monotonic()`` passes ``deadline``.
    """
    out: list[Snippet] = []
    left = budget_chars
    for s in recent.snippets(current_uri):
        if _size(s) <= left:
            out.append(s)
            left -= _size(s)
    ext = current_uri.rsplit(".", 1)[-1]
    others = sorted(
        ((uri, text) for uri, text in open_docs if uri != current_uri), key=lambda d: not d[0].endswith("." + ext)
    )
    for uri, text in others:
        if left <= 0 or time.monotonic() > deadline:
            break
        path = display_path(uri)
        head = _head(text, HEAD_LINES, min(HEAD_CHARS, left - len(path)))
        if head.strip():
            out.append(Snippet(path, head))
            left -= len(path) + len(head)
    return tuple(out)


def build_context(
    req: CompletionRequest,
    max_prefix: int,
    max_suffix: int,
    snippets: Iterable[Snippet] = (),
    *,
    prefix_start: int | None = None,
    snippet_chars: int | None = None,
) -> PromptContext:
    """The bounded prompt context of a request.

    Snippets take from the prefix budget, never more than half of it (or ``snippet_chars``; later ones are
    dropped first), so prefix + suffix + snippets stay within ``max_prefix + max_suffix`` characters. With
    ``prefix_start`` (from the sizing stage) the prefix starts there, within ``max_prefix`` of the cursor;
    otherwise the window starts on a grid (see bound_prefix).
    """
    kept: list[Snippet] = []
    share = max_prefix // 2 if snippet_chars is None else min(snippet_chars, max_prefix // 2)
    left = share
    for s in snippets:
        if _size(s) > left:
            break
        kept.append(s)
        left -= _size(s)
    used = share - left
    if prefix_start is not None:
        offset = min(max(req.offset, 0), len(req.text))
        start = min(max(prefix_start, offset - max_prefix, 0), offset)
        prefix = req.text[start:offset]
    else:
        window = max_prefix - used
        prefix = bound_prefix(req.text, req.offset, window, quantum=min(PREFIX_QUANTUM, max(1, window // 8)))
    return PromptContext(
        prefix=prefix,
        suffix=bound_suffix(req.text, req.offset, max_suffix),
        filename=display_path(req.uri),
        language_id=req.language_id,
        snippets=tuple(kept),
    )

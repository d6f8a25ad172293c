"""lsprotocol <-> core conversions. Every translation between LSP and the pipeline lives here."""

from __future__ import annotations

import re

from lsprotocol import types

from tandem_lsp.completion.pipeline import Suggestion
from tandem_lsp.completion.request import CompletionRequest

_WORD_TAIL = re.compile(r"[\w$]+$")


def _line_start(text: str, line: int) -> int:
    """Offset of the start of ``line`` (0-based); the end of the text when the line is past it."""
    pos = 0
    for _ in range(line):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    return pos


def _units(ch: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(ch.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf32:
        return 1
    return 2 if ord(ch) > 0xFFFF else 1


def lsp_offset(text: str, position: types.Position, encoding: str = types.PositionEncodingKind.Utf16) -> int:
    """The python offset of an LSP position; odd positions (past the line or the file) are clamped."""
    start = _line_start(text, max(0, position.line))
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    if end > start and text[end - 1] == "\r":
        end -= 1
    line = text[start:end]
    want = max(0, position.character)
    if line.isascii() or encoding == types.PositionEncodingKind.Utf32:
        return start + min(want, len(line))
    seen = 0
    for i, ch in enumerate(line):
        if seen >= want:
            return start + i
        seen += _units(ch, encoding)
    return end


def lsp_units(s: str, encoding: str = types.PositionEncodingKind.Utf16) -> int:
    """Length of ``s`` in the client's position units."""
    return len(s) if s.isascii() else sum(_units(ch, encoding) for ch in s)


def lsp_request(doc, position: types.Position, encoding: str, *, invoked: bool) -> CompletionRequest:
    text = doc.source
    return CompletionRequest(
        uri=doc.uri,
        text=text,
        offset=lsp_offset(text, position, encoding),
        language_id=doc.language_id or "",
        invoked=invoked,
    )


ACCEPT_COMMAND = "tandem.acceptSuggestion"


def lsp_accept_command(suggestion: Suggestion) -> types.Command:
    """Run by the editor when the user accepts the suggestion: counts acceptances by source."""
    return types.Command(
        title="Tandem suggestion accepted",
        command=ACCEPT_COMMAND,
        arguments=[{"source": suggestion.source, "latencyMs": round(suggestion.latency_ms, 2)}],
    )


def lsp_inline_items(suggestion: Suggestion | None, position: types.Position) -> types.InlineCompletionList | None:
    if suggestion is None:
        return None
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=suggestion.text,
                range=types.Range(start=position, end=position),
                command=lsp_accept_command(suggestion),
            )
        ]
    )


def lsp_completion_list(
    suggestion: Suggestion | None, req: CompletionRequest, position: types.Position, encoding: str
) -> types.CompletionList:
    """The suggestion as one completion item whose edit replaces the word being typed, so that
    editors filtering by that word keep it. Incomplete, so the editor asks again as the user types."""
    if suggestion is None:
        return types.CompletionList(is_incomplete=True, items=[])
    line_start = req.text.rfind("\n", 0, req.offset) + 1
    match = _WORD_TAIL.search(req.text, line_start, req.offset)
    word = match.group(0) if match else ""
    start = types.Position(line=position.line, character=position.character - lsp_units(word, encoding))
    new_text = word + suggestion.text
    first_line = new_text.lstrip().split("\n", 1)[0]
    label = first_line if len(first_line) <= 60 else first_line[:57] + "..."
    return types.CompletionList(
        is_incomplete=True,
        items=[
            types.CompletionItem(
                label=label or new_text.strip()[:60],
                kind=types.CompletionItemKind.Text,
                detail=f"Tandem ({suggestion.source})",
                documentation=types.MarkupContent(
                    kind=types.MarkupKind.Markdown, value=f"```\n{new_text}\n```"
                ),
                filter_text=new_text,
                sort_text="0000",
                preselect=True,
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=new_text),
                command=lsp_accept_command(suggestion),
            )
        ],
    )

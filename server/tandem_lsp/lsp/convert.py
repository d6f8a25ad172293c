"""lsprotocol <-> core conversions. Every translation between LSP and the pipeline lives here."""

from __future__ import annotations

import re

from lsprotocol import types

from tandem_lsp import lines
from tandem_lsp.completion.pipeline import Suggestion
from tandem_lsp.completion.request import CompletionRequest

_WORD_TAIL = re.compile(r"[\w$]+$")


def lsp_offset(text: str, position: types.Position, encoding: str = types.PositionEncodingKind.Utf16) -> int:
    """The python offset of an LSP position (LSP's line endings: ``\\n``, ``\\r\\n``, ``\\r``); odd positions
    (past the line or the file) are clamped."""
    return lines.offset_at(text, max(0, position.line), position.character, encoding)


def lsp_units(s: str, encoding: str = types.PositionEncodingKind.Utf16) -> int:
    """Length of ``s`` in the client's position units."""
    return lines.units(s, encoding)


def lsp_position(text: str, offset: int, encoding: str = types.PositionEncodingKind.Utf16) -> types.Position:
    line, character = lines.position_at(text, offset, encoding)
    return types.Position(line=line, character=character)


def lsp_lines_range(text: str, first: int, last: int, encoding: str = types.PositionEncodingKind.Utf16) -> types.Range:
    """The LSP range of lines ``first``..``last`` (0-based, inclusive, without the last one's line break) as
    the commands count them (``text.split("\\n")``): converted from offsets, so it names the same text
    whatever the line endings, in the client's position encoding."""
    start = 0
    for _ in range(max(0, first)):
        nl = text.find("\n", start)
        start = len(text) if nl < 0 else nl + 1
    end = start
    for _ in range(max(0, last - first) + 1):
        nl = text.find("\n", end)
        if nl < 0:
            end = len(text)
            break
        end = nl + 1
    else:
        end -= 1  # before the "\n" of the last line
    if end > start and text[end - 1] == "\r":
        end -= 1
    return types.Range(start=lsp_position(text, start, encoding), end=lsp_position(text, end, encoding))


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


def lsp_accept_command(suggestion: Suggestion, shown_id: int | None = None) -> types.Command:
    """Run by the editor when the user accepts the suggestion: counts acceptances by source. ``id`` names
    the suggestion, so one also counted from the document is counted once (``completion.acceptance``)."""
    info: dict = {"source": suggestion.source, "latencyMs": round(suggestion.latency_ms, 2)}
    if shown_id is not None:
        info["id"] = shown_id
    return types.Command(title="Tandem suggestion accepted", command=ACCEPT_COMMAND, arguments=[info])


def lsp_inline_items(
    suggestion: Suggestion | None, position: types.Position, shown_id: int | None = None
) -> types.InlineCompletionList | None:
    if suggestion is None:
        return None
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=suggestion.text,
                range=types.Range(start=position, end=position),
                command=lsp_accept_command(suggestion, shown_id),
            )
        ]
    )


def markdown_documentation(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether the client reads Markdown in a completion item's documentation (eglot lists no format)."""
    try:
        formats = capabilities.text_document.completion.completion_item.documentation_format  # type: ignore[union-attr]
    except AttributeError:
        return False
    return bool(formats) and types.MarkupKind.Markdown in formats


def lsp_completion_list(
    suggestion: Suggestion | None, req: CompletionRequest, position: types.Position, encoding: str,
    shown_id: int | None = None, *, markdown: bool = True,
) -> types.CompletionList:
    """The suggestion as one completion item whose edit replaces the word being typed, so that
    editors filtering by that word keep it. Incomplete, so the editor asks again as the user types."""
    if suggestion is None:
        return types.CompletionList(is_incomplete=True, items=[])
    match = _WORD_TAIL.search(req.text, lines.line_start_before(req.text, req.offset), req.offset)
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
                documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{new_text}\n```")
                if markdown else new_text,  # a plain string: a client that lists no format reads that
                filter_text=new_text,
                sort_text="0000",
                preselect=True,
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=new_text),
                command=lsp_accept_command(suggestion, shown_id),
            )
        ],
    )


# -- next edits (textDocument/copilotInlineEdit, in the shape of GitHub Copilot's language server) ------------
NEXT_EDIT_METHOD = "textDocument/copilotInlineEdit"
NEXT_EDIT_SHOWN = "textDocument/didShowInlineEdit"
ACCEPT_NEXT_EDIT = "tandem.acceptNextEdit"


def plain(obj: object, depth: int = 0) -> object:
    """Plain JSON data of what pygls hands a handler of a method lsprotocol does not know (nested named
    tuples, ``pygls.protocol.Object``)."""
    if depth > 20:
        return None
    if hasattr(obj, "_asdict"):
        obj = obj._asdict()
    if isinstance(obj, dict):
        return {str(k): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1) for v in obj]
    return obj


def next_edit_params(params: object) -> tuple[str, int | None, types.Position] | None:
    """(uri, version, position) of a next-edit request, or None when the params are not that shape."""
    params = plain(params)
    doc = params.get("textDocument") if isinstance(params, dict) else None
    pos = params.get("position") if isinstance(params, dict) else None
    uri, version = (doc.get("uri"), doc.get("version")) if isinstance(doc, dict) else (None, None)
    line, character = (pos.get("line"), pos.get("character")) if isinstance(pos, dict) else (None, None)
    if not isinstance(uri, str) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                           for n in (line, character)):
        return None
    if not isinstance(version, int) or isinstance(version, bool):
        version = None
    return uri, version, types.Position(line=line, character=character)


def lsp_next_edits(text: str, uri: str, version: int | None, found, ids: dict[int, str], encoding: str) -> dict:
    """``{edits: [...]}`` of next edits (``next_edit.edits.Edit``, offsets in ``text``), each with the
    command that counts its acceptance."""
    edits = []
    for edit in found:
        start, end = lsp_position(text, edit.start, encoding), lsp_position(text, edit.end, encoding)
        edits.append({
            "text": edit.new,
            "textDocument": {"uri": uri, "version": version},
            "range": {"start": {"line": start.line, "character": start.character},
                      "end": {"line": end.line, "character": end.character}},
            "command": {"title": "Accept next edit", "command": ACCEPT_NEXT_EDIT,
                        "arguments": [{"id": ids.get(edit.start), "uri": uri}]},
        })
    return {"edits": edits}


def next_edit_id(item: object) -> object:
    """The id of a shown (``didShowInlineEdit {item}``) or accepted (the command's argument) next edit."""
    item = plain(item)
    if isinstance(item, dict) and "item" in item:
        item = item["item"]
    if isinstance(item, dict) and isinstance(item.get("command"), dict):
        args = item["command"].get("arguments")
        item = args[0] if isinstance(args, list) and args else None
    return item.get("id") if isinstance(item, dict) else None

"""The server's copy of the editor's documents, kept as LSP defines them (issue 10, items 2, 7 and 8).

pygls 2.1's ``TextDocument`` differs from LSP and from the editor in three ways, fixed here in a subclass
and a ``Workspace`` that makes it (installed by ``TandemProtocol`` when pygls creates the workspace):

- Lines: pygls splits with ``str.splitlines``, which also ends a line at form feed, ``\\v``, ``\\x1c``-
  ``\\x1e``, U+0085, U+2028 and U+2029; LSP only at ``\\n``, ``\\r\\n`` and ``\\r``. An edit after such a
  character landed on the wrong line, and the copy drifted from the editor's for good.
- Cost: pygls applies each incremental change by converting both ends of its range character by character
  in Python over the whole line and rebuilding the text line by line: a keystroke on a 1 MB line blocked
  the server for half a second. Here the range's ends become offsets with C-speed string operations
  (``tandem_lsp.lines``) and the change is applied to the flat text by offset.
- Disk: ``source`` of a document the editor did not open read the file synchronously, on the event loop,
  whatever it was (a FIFO blocked the server for good, ``/dev/zero`` filled memory). Here a document that
  is not open has no text; what needs a file's text reads it off the loop (``tandem_lsp.disk``).

A change to a document that is not open is ignored (pygls raised KeyError and showed the user an error).
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from tandem_lsp import lines

log = logging.getLogger(__name__)


class TandemDocument(TextDocument):
    @property
    def source(self) -> str:
        """The text the editor sent; a document it did not open has none (the disk is never read here)."""
        return self._source or ""

    @property
    def lines(self) -> tuple[str, ...]:
        """Lines with their line breaks, split where LSP splits them (pygls's other helpers use these)."""
        return tuple(lines.split_lines(self.source))

    @property
    def encoding(self) -> str:
        return self.position_codec.encoding or types.PositionEncodingKind.Utf16

    def offset_at_position(self, client_position: types.Position) -> int:
        return lines.offset_at(self.source, client_position.line, client_position.character, self.encoding)

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        text, rng = self.source, change.range
        start = lines.offset_at(text, rng.start.line, rng.start.character, self.encoding)
        end = lines.offset_at(text, rng.end.line, rng.end.character, self.encoding)
        if end < start:  # a reversed range: the text between its ends is what it names
            start, end = end, start
        self._source = text[:start] + change.text + text[end:]


class TandemWorkspace(Workspace):
    @classmethod
    def adopt(cls, workspace: Workspace) -> TandemWorkspace:
        """This class in place of the ``Workspace`` pygls made, with all its state (and documents as ours)."""
        adopted = cls.__new__(cls)
        adopted.__dict__.update(workspace.__dict__)
        for uri, doc in list(adopted._text_documents.items()):
            if not isinstance(doc, TandemDocument):
                adopted._text_documents[uri] = adopted._create_text_document(
                    doc.uri, source=doc._source, version=doc.version, language_id=doc.language_id)
        return adopted

    def _create_text_document(self, doc_uri, source=None, version=None, language_id=None) -> TandemDocument:
        return TandemDocument(doc_uri, source=source, version=version, language_id=language_id,
                              sync_kind=self._sync_kind, position_codec=self._position_codec)

    def open_document(self, uri: str) -> TandemDocument | None:
        """The document if the editor opened it, else None (nothing is read)."""
        return self._text_documents.get(unquote(uri))

    def update_text_document(self, text_doc: types.VersionedTextDocumentIdentifier,
                             change: types.TextDocumentContentChangeEvent) -> None:
        doc = self.open_document(text_doc.uri)
        if doc is None:
            log.debug("ignored a change to %s: it is not open", text_doc.uri)
            return
        doc.apply_change(change)
        doc.version = text_doc.version

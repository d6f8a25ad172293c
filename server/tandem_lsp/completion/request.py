"""Plain data passed between the completion stages. No LSP types here."""

from __future__ import annotations

from dataclasses import dataclass

from tandem_lsp.backends.types import Chunk, GenerationRequest

Snippet = Chunk  # context from elsewhere: the backend protocol's chunk

__all__ = ["CompletionRequest", "GenerationRequest", "PromptContext", "Snippet"]


@dataclass(frozen=True)
class CompletionRequest:
    """One completion request, already converted from LSP: the document and a cursor offset into it."""

    uri: str
    text: str  # the whole document (python str)
    offset: int  # cursor offset into `text`, in python characters
    language_id: str = ""
    invoked: bool = False  # triggerKind Invoked: the user asked explicitly, skip the debounce


@dataclass(frozen=True)
class PromptContext:
    """What the model sees, bounded by completion.maxPrefixChars/maxSuffixChars."""

    prefix: str  # text before the cursor, cut on a line boundary to at most maxPrefixChars
    suffix: str  # text after the cursor, cut on a line boundary to at most maxSuffixChars
    filename: str = ""  # file name (or relative path) of the document
    language_id: str = ""
    snippets: tuple[Snippet, ...] = ()  # other open documents / recent edits, already bounded

    @property
    def line_prefix(self) -> str:
        """Text of the cursor's line before the cursor."""
        return self.prefix.rsplit("\n", 1)[-1]

    @property
    def line_suffix(self) -> str:
        """Text of the cursor's line after the cursor."""
        return self.suffix.split("\n", 1)[0]

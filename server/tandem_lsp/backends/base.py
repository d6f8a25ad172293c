"""The one small protocol every local backend speaks. Backends know nothing of LSP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from tandem_lsp.completion.request import GenerationRequest


class BackendError(Exception):
    """The model server failed: unreachable, HTTP error, malformed stream. Message is safe to log."""


@runtime_checkable
class LocalBackend(Protocol):
    name: str  # "openai" | "ollama" | "llamacpp"
    endpoint: str  # base URL

    async def health(self) -> bool:
        """True when the server answers (quick, a short timeout)."""

    async def list_models(self) -> list[str]:
        """Model names the server offers (may be empty)."""

    def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        """Yield text chunks as the model produces them. Raise BackendError on failure.
        Cancelling the consuming task (or closing the generator) closes the HTTP stream."""

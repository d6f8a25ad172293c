"""The one small protocol every local backend speaks. Backends know nothing of LSP or of the pipeline:
their types live in backends/types.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from tandem_lsp.backends.types import (  # noqa: F401  (re-exported)
    BackendError,
    Chunk,
    ContextError,
    GenerationRequest,
    ServerProfile,
    ServerReport,
)


@runtime_checkable
class LocalBackend(Protocol):
    name: str  # "openai" | "ollama" | "llamacpp" | "embedded"
    endpoint: str  # base URL
    profile: ServerProfile  # its limits and measured speed, filled by learn() and by every call

    async def health(self) -> bool:
        """True when the server answers (quick, a short timeout)."""

    async def list_models(self) -> list[str]:
        """Model names the server offers (may be empty)."""

    async def learn(self) -> ServerProfile:
        """Read the server's limits and measure its speed once (a short calibration read)."""

    def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        """Yield text chunks as the model produces them. Raise BackendError on failure.
        Cancelling the consuming task (or closing the generator) closes the HTTP stream."""

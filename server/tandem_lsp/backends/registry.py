"""The backend kinds by name, their default endpoints, and the factory."""

from __future__ import annotations

import httpx

from tandem_lsp.backends.base import LocalBackend
from tandem_lsp.backends.llamacpp import LlamaCppBackend
from tandem_lsp.backends.ollama import OllamaBackend
from tandem_lsp.backends.openai import OpenAIBackend

BACKENDS: dict[str, type] = {"openai": OpenAIBackend, "ollama": OllamaBackend, "llamacpp": LlamaCppBackend}
DEFAULT_ENDPOINTS: dict[str, str] = {kind: cls.default_endpoint for kind, cls in BACKENDS.items()}


def make_backend(
    kind: str, client: httpx.AsyncClient, endpoint: str | None = None, model: str | None = None
) -> LocalBackend:
    """A backend of `kind` ("openai" | "ollama" | "llamacpp"); ValueError for another kind."""
    try:
        cls = BACKENDS[kind]
    except KeyError:
        raise ValueError(f"unknown backend {kind!r}; expected one of {', '.join(BACKENDS)}") from None
    return cls(client, endpoint, model)

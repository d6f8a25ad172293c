"""Local model backends: OpenAI-compatible servers (LM Studio, vLLM), Ollama and llama.cpp's server.

The HTTP machinery (httpx and the backend classes) is imported on first use, not with the package,
so that the language server answers ``initialize`` without paying for it.
"""

from __future__ import annotations

import importlib

from tandem_lsp.backends.base import BackendError, LocalBackend

_LAZY = {
    "BACKENDS": "registry",
    "DEFAULT_ENDPOINTS": "registry",
    "make_backend": "registry",
    "LlamaCppBackend": "llamacpp",
    "OllamaBackend": "ollama",
    "OpenAIBackend": "openai",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"tandem_lsp.backends.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = ["BackendError", "LocalBackend", *_LAZY]

"""Find a running local model server: LM Studio, then Ollama, then llama.cpp, probed concurrently.

TANDEM_AUTO_ENDPOINTS overrides the candidates, in preference order:
    openai=http://127.0.0.1:5001/v1,ollama=http://127.0.0.1:5002,llamacpp=http://127.0.0.1:5003
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx

from tandem_lsp.backends.registry import BACKENDS, DEFAULT_ENDPOINTS, make_backend
from tandem_lsp.backends.base import LocalBackend

log = logging.getLogger(__name__)
ENV_VAR = "TANDEM_AUTO_ENDPOINTS"


def default_candidates() -> list[tuple[str, str]]:
    """(kind, endpoint) pairs in preference order, from TANDEM_AUTO_ENDPOINTS or the usual ports."""
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return list(DEFAULT_ENDPOINTS.items())
    candidates = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, endpoint = item.partition("=")
        if kind.strip() in BACKENDS and endpoint.strip():
            candidates.append((kind.strip(), endpoint.strip()))
        else:
            log.warning("%s: ignoring %r (expected kind=url with kind in %s)", ENV_VAR, item, ", ".join(BACKENDS))
    return candidates


async def probe(
    client: httpx.AsyncClient, candidates: list[tuple[str, str]] | None = None, timeout: float = 0.4
) -> LocalBackend | None:
    """The first candidate, in order, whose health check passes within `timeout` seconds; None if none."""
    if candidates is None:
        candidates = default_candidates()
    backends = [make_backend(kind, client, endpoint) for kind, endpoint in candidates]

    async def healthy(backend: LocalBackend) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await backend.health(timeout=timeout)
        except TimeoutError:
            return False

    checks = [asyncio.create_task(healthy(b)) for b in backends]
    try:
        for backend, check in zip(backends, checks):
            if await check:
                return backend
        return None
    finally:
        for check in checks:
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)

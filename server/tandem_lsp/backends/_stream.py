"""HTTP plumbing shared by the backends: streaming requests, JSON and SSE parsing, error mapping.

Every failure becomes a BackendError whose message names the backend, the request path and the kind of
failure, never the URL (it could carry credentials) nor the server's text (it could echo the prompt).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tandem_lsp.backends.base import BackendError

# The caller bounds a generation with asyncio.timeout; the read timeout is only a safety net.
STREAM_TIMEOUT = httpx.Timeout(60.0, connect=1.0)


class StatusError(BackendError):
    """The server answered with an HTTP error status."""

    def __init__(self, label: str, status: int, path: str):
        super().__init__(f"{label}: HTTP {status} from {path}")
        self.status = status


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed mid-response"
    return f"HTTP failure ({type(exc).__name__})"


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    label: str,
    method: str,
    url: str,
    body: dict | None = None,
    timeout: httpx.Timeout | float = STREAM_TIMEOUT,
) -> AsyncIterator[httpx.Response]:
    """A response with status < 400, its body not yet read. Leaving the block closes the connection
    if the body was not read to the end (cancellation included)."""
    path = httpx.URL(url).path
    try:
        async with client.stream(method, url, json=body, timeout=timeout) as response:
            if response.status_code >= 400:
                raise StatusError(label, response.status_code, path)
            yield response
    except httpx.HTTPError as exc:
        raise BackendError(f"{label}: {_describe(exc)} ({path})") from exc


async def get_json(client: httpx.AsyncClient, label: str, url: str, timeout: float) -> Any:
    """GET url and parse its JSON body."""
    async with open_stream(client, label, "GET", url, timeout=httpx.Timeout(timeout)) as response:
        return parse_json(await response.aread(), label)


def parse_json(data: str | bytes, label: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise BackendError(f"{label}: malformed JSON from the server") from None


def check_event(event: Any, label: str) -> dict:
    """A streamed JSON object; an {"error": ...} object (a failure reported mid-stream) raises."""
    if not isinstance(event, dict):
        raise BackendError(f"{label}: unexpected stream event")
    if event.get("error"):
        raise BackendError(f"{label}: the server reported an error mid-stream")
    return event


async def sse_events(response: httpx.Response, label: str) -> AsyncIterator[dict | None]:
    """The JSON objects of an SSE stream's `data:` lines, then None for `data: [DONE]`.
    Comments, blank lines and other fields are skipped; an `error:` field raises."""
    async for line in response.aiter_lines():
        field, _, value = line.partition(":")
        if field == "error":
            raise BackendError(f"{label}: the server reported an error mid-stream")
        if field != "data":
            continue
        value = value.removeprefix(" ")
        yield None if value.strip() == "[DONE]" else check_event(parse_json(value, label), label)


class HttpBackend:
    """What every HTTP backend holds: the shared client, its endpoint and the model name."""

    name: str
    default_endpoint: str

    def __init__(self, client: httpx.AsyncClient, endpoint: str | None = None, model: str | None = None):
        self.client = client
        self.endpoint = (endpoint or self.default_endpoint).rstrip("/")
        self.model = model

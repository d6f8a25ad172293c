"""HTTP plumbing shared by the backends: streaming requests, JSON and SSE parsing, error mapping.

Every failure becomes a BackendError whose message names the backend, the request path and the kind of
failure, never the URL (it could carry credentials). Of an HTTP error's body only the server's own error
message is kept, on one line and bounded (the server's reason, such as "request (9776 tokens) exceeds the
available context size", is what a user needs; a whole body could echo the prompt).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tandem_lsp.backends.types import BackendError, ContextError, ServerProfile, ServerReport, common_prefix_len
from tandem_lsp.safe_text import clean

# The caller bounds a generation with asyncio.timeout; the read timeout is only a safety net.
STREAM_TIMEOUT = httpx.Timeout(60.0, connect=1.0)


ERROR_BODY_BYTES = 8192  # of an error response, read at most this much to find its message
ERROR_MESSAGE_CHARS = 240
_CONTEXT_WORDS = re.compile(r"context|n_ctx|too long|exceed", re.IGNORECASE)
# what the common servers say: llama-server "request (9776 tokens) exceeds the available context size (8192
# tokens)"; llama-cpp-python "maximum context length is 2048 tokens, however you requested 5128 tokens (5000
# in your prompt; 128 for the completion)" or "Requested tokens (5000) exceed context window of 2048"
_CONTEXT_SIZE = re.compile(
    r"(?:context (?:length|size|window)|max context size)(?: is| of)?\s*\(?(\d+)", re.IGNORECASE)
_PROMPT_TOKENS = re.compile(
    r"(\d+) in (?:your prompt|the messages)|(?:request|input) \((\d+) tokens\)|requested tokens \((\d+)\)",
    re.IGNORECASE)


class StatusError(BackendError):
    """The server answered with an HTTP error status (and, when it gave one, its own reason)."""

    def __init__(self, label: str, status: int, path: str, reason: str = ""):
        super().__init__(f"{label}: HTTP {status} from {path}" + (f": {reason}" if reason else ""))
        self.status = status
        self.reason = reason


class ContextStatusError(StatusError, ContextError):
    """An HTTP error whose reason says the prompt is longer than the server's context."""

    def __init__(self, label: str, status: int, path: str, reason: str, n_ctx: int | None,
                 requested: int | None = None):
        StatusError.__init__(self, label, status, path, reason)
        self.n_ctx = n_ctx
        self.requested = requested


def error_reason(body: bytes) -> str:
    """The server's own error message in an error body (JSON ``error.message``, ``error``, ``message``,
    or ``detail``; else a short plain-text body), on one line and bounded; "" when there is none."""
    text = body.decode("utf-8", "replace").strip()
    reason = ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            reason = str(err.get("message") or err.get("type") or "")
        elif isinstance(err, str):
            reason = err
        else:
            reason = str(data.get("message") or data.get("detail") or "")
    elif data is None and text and not text.startswith("<") and len(text) <= ERROR_MESSAGE_CHARS:
        reason = text
    reason = " ".join(reason.split())
    return reason if len(reason) <= ERROR_MESSAGE_CHARS else reason[: ERROR_MESSAGE_CHARS - 1] + "…"


def status_error(label: str, status: int, path: str, body: bytes) -> StatusError:
    """The error for an HTTP error response: a ContextStatusError when the reason is about the context
    (with the context size and the prompt's tokens when the reason names them)."""
    reason = error_reason(body)
    if status in (400, 413, 422, 500) and reason and _CONTEXT_WORDS.search(reason) and "token" in reason.lower():
        size = _CONTEXT_SIZE.search(reason)
        prompt = _PROMPT_TOKENS.search(reason)
        requested = next((int(g) for g in prompt.groups() if g), None) if prompt else None
        return ContextStatusError(label, status, path, reason, int(size.group(1)) if size else None, requested)
    return StatusError(label, status, path, reason)


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed mid-response"
    return f"HTTP failure ({type(exc).__name__})"


JSON_HEADERS = {"Content-Type": "application/json"}


def encode_json_body(body: Any) -> bytes:
    """A request's JSON body as UTF-8, as httpx encodes ``json=`` (compact, no NaN), except that text UTF-8
    cannot encode never fails the request: each lone surrogate or NUL is replaced by U+FFFD in the string
    it is in (``safe_text.clean``), so one poisoned snippet costs one character, not every completion."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if "\\u0000" not in text:  # json.dumps writes NUL as \u0000 (a literal backslash-u0000 only costs a clean)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            pass
    return json.dumps(clean(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


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
    content = None if body is None else encode_json_body(body)
    headers = None if body is None else JSON_HEADERS
    try:
        async with client.stream(method, url, content=content, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                body = b""
                try:
                    async for part in response.aiter_bytes():
                        body += part
                        if len(body) >= ERROR_BODY_BYTES:
                            break
                except httpx.HTTPError:
                    pass
                raise status_error(label, response.status_code, path, body[:ERROR_BODY_BYTES])
            yield response
    except httpx.HTTPError as exc:
        raise BackendError(f"{label}: {_describe(exc)} ({path})") from exc


async def get_json(client: httpx.AsyncClient, label: str, url: str, timeout: float) -> Any:
    """GET url and parse its JSON body."""
    async with open_stream(client, label, "GET", url, timeout=httpx.Timeout(timeout)) as response:
        return parse_json(await response.aread(), label)


async def post_json(client: httpx.AsyncClient, label: str, url: str, body: dict, timeout: float) -> Any:
    """POST a JSON body to url and parse the JSON answer."""
    async with open_stream(client, label, "POST", url, body, timeout=httpx.Timeout(timeout, connect=1.0)) as response:
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
        reason = error_reason(json.dumps(event).encode())
        raise BackendError(f"{label}: the server reported an error mid-stream" + (f": {reason}" if reason else ""))
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
        self.profile = ServerProfile()
        self.last_report: ServerReport | None = None
        self._last_prompt = ""

    def observe_first_token(self, prompt: str, t0: float, first_at: float | None) -> None:
        """The time to the first token against the characters that differ from the previous prompt: a
        reading speed, for servers that report no timings (characters per token: known, else one)."""
        previous, self._last_prompt = self._last_prompt, prompt
        if first_at is None:
            return
        new_chars = len(prompt) - common_prefix_len(previous, prompt)
        tokens = int(new_chars / (self.profile.chars_per_token or 1.0))
        self.last_report = ServerReport(read_tokens=tokens, read_ms=(first_at - t0) * 1000, prompt_chars=len(prompt))
        self.profile.note_first_token(tokens, (first_at - t0) * 1000)

    async def learn(self) -> ServerProfile:
        """What this kind of server can tell: nothing by default (the pipeline then uses its own bounds)."""
        self.profile.learned = True
        return self.profile

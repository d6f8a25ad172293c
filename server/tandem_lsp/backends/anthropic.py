"""The cloud tier: Claude through Anthropic's Messages API and the official `anthropic` SDK. Knows nothing of LSP.

`AnthropicBackend.complete()` streams one answer (`client.messages.stream`), hands each text delta to
`on_text` as it arrives (for $/progress reports) and returns a `CloudResult` with the usage of the final
message. The stable system prompt is sent as one system block marked `cache_control: {"type": "ephemeral"}`,
so that repeated calls read it from Anthropic's prompt cache.

Failures come out as `CloudError` with a `kind` the router can act on:

| kind          | from                                                                                   |
| ------------- | -------------------------------------------------------------------------------------- |
| rate_limited  | HTTP 429 (`retry_after` parsed from `retry-after-ms` / `retry-after`), or a            |
|               | `rate_limit_error` event inside a stream                                               |
| server_error  | HTTP 5xx / 529 overloaded, an `api_error`/`overloaded_error` event inside a stream, or |
|               | a stream that broke off after it had begun (connection dropped, truncated, malformed)  |
| timeout       | no answer within `timeout_ms` (the deadline of the whole call), an SDK read timeout,   |
|               | HTTP 408                                                                               |
| offline       | the API could not be reached (connection refused / DNS / connect timeout / the         |
|               | connection failed before any response)                                                 |
| auth          | HTTP 401 / 403, or no API key configured                                               |
| bad_request   | any other HTTP 4xx (400 invalid request, 404 unknown model, 413 too large, ...)        |
| cancelled     | the backend was closed (`aclose()`) while the call was in flight, or before it         |

Cancelling the task that awaits `complete()` propagates `CancelledError` as usual (it is not turned into a
CloudError) and closes the HTTP stream at once, so the server stops generating.

Retries: the SDK's own retry loop does `max_retries` retries (1 by default) of 408/409/429/5xx answers and
of connection failures. The SDK honours any Retry-After the server sends, however long (it caps it only at
~49 days), so a middleware marks a failed answer whose Retry-After exceeds `RETRY_AFTER_CAP_S` as not to be
retried (`x-should-retry: false`, which the SDK obeys): the error comes back at once with its `retry_after`,
and the router's circuit breaker decides when to try again. A stream that breaks after it began is never
retried (the SDK has already returned it).

The `anthropic` package takes over a second to import, so it is imported when an `AnthropicBackend` is
made, not with this module. The API key is kept out of every message and log line this module writes.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CLOUD_ERROR_KINDS = frozenset(
    {"rate_limited", "server_error", "timeout", "offline", "auth", "bad_request", "cancelled"}
)
RETRY_AFTER_CAP_S = 2.0  # a failed answer asking for a longer wait is not retried by the SDK
CONNECT_TIMEOUT_S = 5.0  # the SDK's default connect timeout; the whole call is bounded by timeout_ms
_MAX_MESSAGE = 300  # characters of the API's own error message kept in ours
_MIN_SCRUB = 8  # keys at least this long are masked out of error messages

# error.type of an SSE `error` event (which arrives with HTTP 200) -> kind
_EVENT_KINDS = {
    "rate_limit_error": "rate_limited",
    "overloaded_error": "server_error",
    "api_error": "server_error",
    "authentication_error": "auth",
    "permission_error": "auth",
    "timeout_error": "timeout",
}


class CloudError(Exception):
    """The cloud call failed. `kind` is one of CLOUD_ERROR_KINDS; `retry_after` (seconds) is set when the
    server said how long to wait; `status` is the HTTP status when there was one. The message is safe to show
    and to log: it never contains the API key."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None, status: int | None = None):
        if kind not in CLOUD_ERROR_KINDS:
            raise ValueError(f"unknown CloudError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.status = status

    def __repr__(self) -> str:
        return f"CloudError({self.kind!r}, {self.message!r}, retry_after={self.retry_after!r}, status={self.status!r})"


@dataclass
class CloudResult:
    text: str
    model: str  # the model that answered, as the API names it
    input_tokens: int  # uncached input tokens (the API counts cached ones apart)
    output_tokens: int
    cache_write_tokens: int  # cache_creation_input_tokens
    cache_read_tokens: int  # cache_read_input_tokens
    latency_ms: float  # the whole call, retries included
    stop_reason: str | None  # "end_turn", "max_tokens", "stop_sequence", ...


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date), as the SDK reads
    them; None when absent or unreadable."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        if name == "retry-after" and (date := email.utils.parsedate_tz(value)) is not None:
            return max(0.0, float(email.utils.mktime_tz(date) - time.time()))
    return None


def _retry_after_cap(cap: float) -> Callable[..., Any]:
    """SDK middleware: a failed answer whose Retry-After is longer than `cap` is not retried."""

    async def cap_retry_after(request: Any, call_next: Callable[[Any], Any]) -> Any:
        response = await call_next(request)
        http_response = response.http_response
        if not http_response.is_success:
            wait = parse_retry_after(http_response.headers)
            if wait is not None and wait > cap:
                http_response.headers["x-should-retry"] = "false"
        return response

    return cap_retry_after


class AnthropicBackend:
    """One Claude model behind the Messages API. Reusable and safe to share between tasks; `aclose()` when done."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_ms: int = 120000,
        max_retries: int = 1,
    ):
        import anthropic  # lazily: the SDK is slow to import, and the server must start fast
        import httpx2  # the SDK's HTTP library (anthropic 2.x); its errors surface from a broken stream

        self._sdk = anthropic
        self._httpx = httpx2
        self.model = model
        self.base_url = base_url
        self.timeout_ms = timeout_ms
        self.max_retries = max_retries
        self._api_key = api_key or ""
        self._timeout_s = max(0.001, timeout_ms / 1000)
        self._closed = False
        self._inflight: set[asyncio.Task] = set()
        self._client = anthropic.AsyncAnthropic(
            api_key=self._api_key,  # explicit: the SDK then reads no credential from the environment
            base_url=base_url,
            max_retries=max_retries,
            timeout=httpx2.Timeout(self._timeout_s, connect=min(self._timeout_s, CONNECT_TIMEOUT_S)),
            middleware=[_retry_after_cap(RETRY_AFTER_CAP_S)],
        )

    def __repr__(self) -> str:
        return f"AnthropicBackend(model={self.model!r}, base_url={self.base_url!r})"

    async def complete(
        self,
        *,
        system: str,
        messages: list[dict],
        max_tokens: int = 2048,
        on_text: Callable[[str], None] | None = None,
    ) -> CloudResult:
        """Stream one answer; raise CloudError on failure (see the module docstring)."""
        if self._closed:
            raise CloudError("cancelled", "the Claude backend is closed")
        if not self._api_key:
            raise CloudError("auth", "no Anthropic API key is configured")
        from tandem_lsp.safe_text import clean

        # the SDK encodes the body as UTF-8: a lone surrogate in a file excerpt would fail the whole call
        request: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "messages": clean(messages)}
        if system:
            request["system"] = [{"type": "text", "text": clean(system), "cache_control": {"type": "ephemeral"}}]
        started = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await self._stream(request, on_text, started)
        except TimeoutError:  # our deadline; the stream was closed on the way out
            raise self._failed(CloudError("timeout", f"Claude did not answer within {self._timeout_s:g} s")) from None
        except asyncio.CancelledError:
            if self._closed and task is not None and task.uncancel() == 0:
                error = CloudError("cancelled", "the Claude request was cancelled: the backend was closed")
                raise self._failed(error) from None
            raise
        except CloudError as error:
            raise self._failed(error) from None
        except Exception as exc:
            error = self._map_error(exc)
            if error is None:
                raise
            raise self._failed(error) from None
        finally:
            self._inflight.discard(task)
        log.debug(
            "claude %s: %d chars in %.0f ms, tokens in=%d out=%d cache write=%d read=%d, stop=%s",
            result.model,
            len(result.text),
            result.latency_ms,
            result.input_tokens,
            result.output_tokens,
            result.cache_write_tokens,
            result.cache_read_tokens,
            result.stop_reason,
        )
        return result

    async def _stream(
        self, request: dict[str, Any], on_text: Callable[[str], None] | None, started: float
    ) -> CloudResult:
        parts: list[str] = []
        finished = False
        async with self._client.messages.stream(**request) as stream:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
                    if on_text is not None:
                        on_text(event.delta.text)
                elif event.type == "message_stop":
                    finished = True
            if not finished:
                raise CloudError("server_error", "the Claude stream ended before message_stop")
            message = stream.current_message_snapshot
        usage = message.usage
        return CloudResult(
            text="".join(parts),
            model=message.model or self.model,
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            latency_ms=(time.monotonic() - started) * 1000,
            stop_reason=message.stop_reason,
        )

    def _scrub(self, text: str) -> str:
        """Mask the key should the server have echoed it (a key too short to be real is left alone: masking
        it would garble ordinary words)."""
        return text.replace(self._api_key, "[api key]") if len(self._api_key) >= _MIN_SCRUB else text

    def _failed(self, error: CloudError) -> CloudError:
        error.message = self._scrub(error.message)
        error.args = (error.message,)
        log.debug("claude %s failed: %s: %s", self.model, error.kind, error.message)
        return error

    def _map_error(self, exc: BaseException) -> CloudError | None:
        """The CloudError for an SDK or transport failure; None for anything else (a bug: let it through)."""
        sdk, httpx2 = self._sdk, self._httpx
        if isinstance(exc, sdk.APIStatusError):
            status = exc.status_code
            api_type = getattr(exc, "type", None)
            api_message = getattr(exc, "api_message", None) or ""
            if status == 429:
                kind = "rate_limited"
            elif status in (401, 403):
                kind = "auth"
            elif status == 408:
                kind = "timeout"
            elif status >= 500:
                kind = "server_error"
            elif status >= 400:
                kind = "bad_request"
            else:  # an `error` event inside a 200 stream
                kind = _EVENT_KINDS.get(str(api_type), "bad_request" if api_type else "server_error")
            retry_after = parse_retry_after(exc.response.headers) if status >= 400 else None
            detail = f"HTTP {status}" + (f" {api_type}" if api_type else "")
            text = f"Claude API error ({detail})" + (f": {api_message[:_MAX_MESSAGE]}" if api_message else "")
            if retry_after is not None:
                text += f"; retry after {retry_after:g} s"
            return CloudError(kind, text, retry_after=retry_after, status=status)
        if isinstance(exc, sdk.APITimeoutError):
            if isinstance(exc.__cause__, httpx2.ConnectTimeout):
                return CloudError("offline", "could not reach the Claude API: connect timed out")
            return CloudError("timeout", "the Claude API did not answer in time")
        if isinstance(exc, sdk.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "connection error"
            return CloudError("offline", f"could not reach the Claude API ({cause})")
        if isinstance(exc, httpx2.TimeoutException):  # a read timeout inside the stream
            return CloudError("timeout", "the Claude stream stalled")
        if isinstance(exc, httpx2.HTTPError):  # the stream broke off after it began
            return CloudError("server_error", f"the Claude stream broke off ({type(exc).__name__})")
        if isinstance(exc, (sdk.APIError, json.JSONDecodeError)):
            return CloudError("server_error", f"the Claude API sent a malformed answer ({type(exc).__name__})")
        return None

    async def aclose(self) -> None:
        """Close the HTTP client. Calls still in flight end with CloudError("cancelled")."""
        self._closed = True
        current = asyncio.current_task()
        tasks = [task for task in self._inflight if task is not current and not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self._client.close()

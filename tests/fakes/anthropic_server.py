"""A real HTTP/1.1 fake of the Anthropic Messages API for tests (the official `anthropic` SDK talks to it).

`FakeAnthropicServer` listens on 127.0.0.1 (ephemeral port by default) in a background thread with its
own asyncio loop, in the style of `tests.fakes.model_server.FakeModelServer`, and answers
`POST /v1/messages`:

- Authentication first: the request must carry the expected key (`api_key`, default "test-key") either as
  `x-api-key: KEY` (what the HTTP API documents) or as `Authorization: Bearer KEY` (what the installed SDK,
  anthropic 2.x, actually sends for `api_key=`). Otherwise 401 `authentication_error`.
- Then the `anthropic-version` header must be present (any value; the SDK sends its own pinned version),
  else 400 `invalid_request_error`; then the body must have `model`, a positive int `max_tokens` and a
  non-empty `messages` list, else 400 `invalid_request_error`.
- Then the fault, if any (see below), else the answer: `reply` (or `script(request)` when set), cut at the
  first of the request's `stop_sequences` (stop_reason "stop_sequence"), split into `chunk_size`-character
  chunks; one chunk is one output token, so more chunks than `max_tokens` are cut (stop_reason
  "max_tokens"); otherwise stop_reason is "end_turn".
- Non-streaming: one JSON Message `{id, type: "message", role, model, content: [{type: "text", text}],
  stop_reason, stop_sequence, usage}`.
- `"stream": true`: Server-Sent Events exactly as the API sends them, each event its own HTTP chunk:
  message_start, content_block_start, ping (when `ping`), one content_block_delta (text_delta) per chunk,
  content_block_stop, message_delta (stop_reason, stop_sequence, usage.output_tokens), message_stop.
  `first_token_latency` is waited after content_block_start, `token_latency` between the later chunks;
  both wake at once when the client hangs up.

Usage is approximate but consistent: `token_counts(body)` = (total, cacheable) where total is
`len(json.dumps([system, messages])) // 4` and cacheable is the same measure of the prompt prefix up to and
including the last block (system blocks first, then message content blocks) that carries `cache_control`.
The first request with a given (model, prefix) reports `cache_creation_input_tokens = cacheable`, later ones
within `cache_ttl` seconds report `cache_read_input_tokens = cacheable` (prefixes shorter than
`min_cache_tokens` are not cached); `input_tokens` is the rest (total - cacheable), as the API reports only
the uncached part there.

Faults (`fault`), applied after authentication and validation, to every request or, with `fault_count=N`, to
the next N message requests only (then `fault` goes back to None):
- "rate_limit": 429, `retry-after: <retry_after>` header (omitted when retry_after is None), error type
  `rate_limit_error`.
- "server_error": `server_error_status` (500 → `api_error`, 529 → `overloaded_error`, other → `api_error`).
- "hang": reads the request and never answers, until the client hangs up.
- "drop": streaming: sends the head, message_start, content_block_start and `drop_after` text chunks, then
  resets the connection; non-streaming: resets the connection without answering.
Errors use the API's format: `{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`.

Every request is recorded as a `RecordedRequest` (method, path, lower-cased headers, parsed JSON body,
started/ended, chunks_sent, completed, hung_up); a client hanging up mid-response is noticed at once.
All configuration attributes may be changed at run time from another thread.
CLI: `python -m tests.fakes.anthropic_server [--port 0] [--reply TEXT] [--api-key KEY] [--fault MODE]`
prints `READY http://127.0.0.1:PORT` and serves until killed.
"""

from __future__ import annotations

import argparse
import http
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.model_server import FakeHttpServer, RecordedRequest, _chunk, _Conn

__all__ = ["API_KEY", "DEFAULT_REPLY", "FAULTS", "FakeAnthropicServer", "RecordedRequest", "estimate_tokens"]

API_KEY = "test-key"
DEFAULT_REPLY = "Here is the fix:\n\n```python\ndef add(a, b):\n    return a + b\n```\n"
FAULTS = (None, "rate_limit", "server_error", "hang", "drop")
MESSAGES_PATH = "/v1/messages"


def estimate_tokens(value: Any) -> int:
    """The fake's token measure: a quarter of the length of the JSON text."""
    return len(json.dumps(value)) // 4


def _head(status: int, content_type: str, length: int | None = None, headers: dict[str, str] | None = None) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Overloaded" if status == 529 else "Error"  # 529 is Anthropic's own
    lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _sse(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _validate(body: Any) -> str | None:
    """What is wrong with a Messages request body, or None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: must be a positive integer"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: must be a string or a list of text blocks"
    return None


def _cacheable_prefix(body: dict) -> list[Any]:
    """The prompt blocks up to and including the last one marked with cache_control (empty: nothing to cache)."""
    blocks: list[Any] = []
    system = body.get("system")
    if isinstance(system, list):
        blocks += system
    elif isinstance(system, str):
        blocks.append(system)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        blocks += content if isinstance(content, list) else [content]
    last = max((i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")), default=-1)
    return blocks[: last + 1]


class FakeAnthropicServer(FakeHttpServer):
    """See the module docstring. `start()` returns self; also a context manager."""

    FAULTS = FAULTS
    THREAD_NAME = "fake-anthropic-server"

    def __init__(
        self,
        reply: str = DEFAULT_REPLY,
        *,
        script: Callable[[RecordedRequest], str] | None = None,
        chunk_size: int = 8,
        first_token_latency: float = 0.0,
        token_latency: float = 0.0,
        fault: str | None = None,
        fault_count: int | None = None,
        retry_after: float | None = 1.0,
        server_error_status: int = 500,
        drop_after: int = 1,
        ping: bool = True,
        api_key: str = API_KEY,
        min_cache_tokens: int = 0,
        cache_ttl: float = 300.0,
        port: int = 0,
    ):
        self.reply = reply
        self.script = script
        self.chunk_size = chunk_size
        self.first_token_latency = first_token_latency
        self.token_latency = token_latency
        super().__init__(fault=fault, port=port)
        self.fault_count = fault_count
        self.retry_after = retry_after
        self.server_error_status = server_error_status
        self.drop_after = drop_after
        self.ping = ping
        self.api_key = api_key
        self.min_cache_tokens = min_cache_tokens
        self.cache_ttl = cache_ttl
        self._cache: dict[str, float] = {}  # prefix key -> expiry (time.monotonic())
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL to give the SDK (`base_url=`); the endpoint is `url + "/v1/messages"`."""
        return f"http://127.0.0.1:{self._port}"

    # -- inspection ----------------------------------------------------------------------------

    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == MESSAGES_PATH]

    def reset(self) -> None:
        """Forget the recorded requests and the prompt cache."""
        super().reset()
        with self._lock:
            self._cache.clear()

    def token_counts(self, body: dict) -> tuple[int, int]:
        """(total input tokens, tokens of the cacheable prefix) of a request body, as the fake counts them."""
        total = estimate_tokens([body.get("system"), body.get("messages")])
        prefix = _cacheable_prefix(body)
        cacheable = min(total, estimate_tokens(prefix)) if prefix else 0
        return total, cacheable if cacheable >= self.min_cache_tokens else 0

    # -- internals -----------------------------------------------------------------------------

    def _take_fault(self) -> str | None:
        with self._lock:
            fault = self._fault
            if fault is not None and self.fault_count is not None:
                self.fault_count -= 1
                if self.fault_count <= 0:
                    self._fault, self.fault_count = None, None
            return fault

    def _usage(self, body: dict) -> dict[str, int]:
        total, cacheable = self.token_counts(body)
        write = read = 0
        if cacheable:
            key = json.dumps([body.get("model"), _cacheable_prefix(body)], sort_keys=True)
            now = time.monotonic()
            with self._lock:
                if self._cache.get(key, 0.0) > now:
                    read = cacheable
                else:
                    write = cacheable
                self._cache[key] = now + self.cache_ttl  # a hit refreshes the entry, as the API does
        return {
            "input_tokens": total - cacheable,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }

    def _next_id(self) -> int:
        return next(self._ids)

    async def _send_json(
        self, conn: _Conn, rec: RecordedRequest, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> bool:
        data = json.dumps(payload).encode()
        head_headers = dict(headers or {})
        head_headers.setdefault("request-id", f"req_fake{self._next_id():06d}")
        return await self._finish(conn, rec, _head(status, "application/json", len(data), head_headers) + data)

    async def _send_error(
        self,
        conn: _Conn,
        rec: RecordedRequest,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> bool:
        request_id = f"req_fake{self._next_id():06d}"
        payload = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
        return await self._send_json(conn, rec, status, payload, {"request-id": request_id, **(headers or {})})

    def _authorized(self, headers: dict[str, str]) -> str | None:
        """None when the key is right, else the error message."""
        key = headers.get("x-api-key")
        if key is None and headers.get("authorization", "").startswith("Bearer "):
            key = headers["authorization"][len("Bearer ") :]
        if key is None:
            return "x-api-key header is required"
        return None if key == self.api_key else "invalid x-api-key"

    def _pieces(self, text: str, body: dict) -> tuple[list[str], str, str | None]:
        """(chunks, stop_reason, stop_sequence) a real server would produce."""
        stops = [s for s in body.get("stop_sequences") or () if isinstance(s, str) and s]
        hits = [(text.index(s), s) for s in stops if s in text]
        stop_reason, stop_sequence = "end_turn", None
        if hits:
            cut, stop_sequence = min(hits)
            text, stop_reason = text[:cut], "stop_sequence"
        size = max(1, self.chunk_size)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        if len(pieces) > body["max_tokens"]:
            pieces, stop_reason, stop_sequence = pieces[: body["max_tokens"]], "max_tokens", None
        return pieces, stop_reason, stop_sequence

    async def _respond(self, conn: _Conn, rec: RecordedRequest) -> bool:
        """Answer one request; False when the connection must not be reused."""
        if (rec.method, rec.path) != ("POST", MESSAGES_PATH):
            return await self._send_error(conn, rec, 404, "not_found_error", f"no route for {rec.method} {rec.path}")
        if problem := self._authorized(rec.headers):
            return await self._send_error(conn, rec, 401, "authentication_error", problem)
        if not rec.headers.get("anthropic-version"):
            message = "anthropic-version: header is required"
            return await self._send_error(conn, rec, 400, "invalid_request_error", message)
        if problem := _validate(rec.body):
            return await self._send_error(conn, rec, 400, "invalid_request_error", problem)
        body: dict = rec.body
        fault = self._take_fault()
        if fault == "rate_limit":
            headers = {} if self.retry_after is None else {"retry-after": f"{self.retry_after:g}"}
            message = "Number of request tokens has exceeded your per-minute rate limit"
            return await self._send_error(conn, rec, 429, "rate_limit_error", message, headers)
        if fault == "server_error":
            status = self.server_error_status
            overloaded = status == 529
            kind, message = ("overloaded_error", "Overloaded") if overloaded else ("api_error", "Internal server error")
            return await self._send_error(conn, rec, status, kind, message)
        if fault == "hang":
            await conn.eof.wait()
            return False
        try:
            text = self.script(rec) if self.script else self.reply
        except Exception as exc:  # the oracle failed: say so like a server would
            return await self._send_error(conn, rec, 500, "api_error", f"script failed: {exc!r}")
        pieces, stop_reason, stop_sequence = self._pieces(text, body)
        usage = self._usage(body)
        message_id = f"msg_fake{self._next_id():06d}"
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage | {"output_tokens": 1},
        }
        if not body.get("stream"):
            if fault == "drop":
                conn.abort()
                return False
            for i in range(len(pieces)):
                if not await conn.pause(self.first_token_latency if i == 0 else self.token_latency):
                    return False
            rec.chunks_sent = len(pieces)
            content = [{"type": "text", "text": "".join(pieces)}]
            final = message | {"content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence}
            final["usage"] = usage | {"output_tokens": len(pieces)}
            return await self._send_json(conn, rec, 200, final)

        stream_headers = {"request-id": f"req_fake{self._next_id():06d}", "Cache-Control": "no-cache"}
        head = _head(200, "text/event-stream; charset=utf-8", None, stream_headers)
        opening = _sse({"type": "message_start", "message": message})
        opening += _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        if self.ping:
            opening += _sse({"type": "ping"})
        if not await conn.send(head + _chunk(opening)):
            return False
        for i, piece in enumerate(pieces):
            if fault == "drop" and i >= self.drop_after:
                break
            event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            delay = self.first_token_latency if i == 0 else self.token_latency
            if not (await conn.pause(delay) and await conn.send(_chunk(_sse(event)))):
                return False
            rec.chunks_sent += 1
        if fault == "drop":
            conn.abort()
            return False
        tail = _sse({"type": "content_block_stop", "index": 0})
        delta = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
        tail += _sse({"type": "message_delta", "delta": delta, "usage": {"output_tokens": len(pieces)}})
        tail += _sse({"type": "message_stop"})
        return await self._finish(conn, rec, _chunk(tail) + b"0\r\n\r\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--token-latency", type=float, default=0.0)
    parser.add_argument("--fault", choices=[f for f in FAULTS if f])
    args = parser.parse_args(argv)
    FakeAnthropicServer(
        args.reply,
        api_key=args.api_key,
        chunk_size=args.chunk_size,
        token_latency=args.token_latency,
        fault=args.fault,
        port=args.port,
    ).serve_forever()


if __name__ == "__main__":
    main()

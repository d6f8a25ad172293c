"""A real HTTP/1.1 fake model server for tests and benchmarks.

`FakeModelServer` listens on 127.0.0.1 (ephemeral port by default) in a background thread with its
own asyncio loop, and speaks three dialects on the same port:

- OpenAI-compatible (LM Studio, vLLM, llama-server): GET /v1/models, POST /v1/completions,
  POST /v1/chat/completions (SSE `data: {...}` events ending with `data: [DONE]`).
- Ollama: GET /api/tags, GET /api/version, POST /api/generate, POST /api/chat (NDJSON lines).
- llama.cpp server: GET /health, GET /v1/models, POST /infill, POST /completion (SSE, `stop: true`).

The generated text is `completion` (or `script(request)` when set), cut at the first stop string of the
request, split into `chunk_size`-character chunks (one chunk = one token for max_tokens/n_predict/
num_predict). With `max_lines` set, an answer also ends after that many lines (at the end of a line,
finish reason "length"), as a real model does whose token limit lasts a few lines. Faults (`fault`) apply to the generation endpoints; "down" refuses every connection.
Every request is recorded as a `RecordedRequest`; a client hanging up mid-response is noticed at once
because a reader task watches each socket for EOF while the response is being produced.

All configuration attributes may be changed at run time from another thread.
CLI: `python -m tests.fakes.model_server [--port 0] [--completion TEXT] [--first-token-latency S]
[--max-lines N] [--fault MODE]` prints `READY http://127.0.0.1:PORT` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_COMPLETION = "return a + b\n"
FAULTS = (None, "error", "hang", "drop", "garbage", "slow", "down")
DIALECTS = frozenset({"openai", "ollama", "llamacpp"})
OPENAI_LIKE = frozenset({"openai", "llamacpp"})  # llama-server also serves the OpenAI API
ROUTES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/v1/models"): OPENAI_LIKE,
    ("POST", "/v1/completions"): OPENAI_LIKE,
    ("POST", "/v1/chat/completions"): OPENAI_LIKE,
    ("GET", "/api/tags"): frozenset({"ollama"}),
    ("GET", "/api/version"): frozenset({"ollama"}),
    ("POST", "/api/generate"): frozenset({"ollama"}),
    ("POST", "/api/chat"): frozenset({"ollama"}),
    ("GET", "/health"): frozenset({"llamacpp"}),
    ("POST", "/infill"): frozenset({"llamacpp"}),
    ("POST", "/completion"): frozenset({"llamacpp"}),
}
GENERATION_PATHS = frozenset(
    {"/v1/completions", "/v1/chat/completions", "/api/generate", "/api/chat", "/infill", "/completion"}
)
GARBAGE = b"\x00\xff<html>this is not json\ndata: {\"broken\": \n\n"


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any  # parsed JSON, or None
    started: float  # time.monotonic()
    ended: float | None = None
    chunks_sent: int = 0  # text chunks sent (all of them at once for a non-streaming answer)
    completed: bool = False  # the full response was sent
    hung_up: bool = False  # the client closed the connection before the response was complete
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


class _Conn:
    """One client connection: a reader task buffers input and notices EOF/reset at once."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.writer = writer
        self.buf = bytearray()
        self.eof = asyncio.Event()  # the client closed (or reset) its side
        self.aborted = False  # we closed it on purpose ("drop", "down")
        self._data = asyncio.Event()
        self._pump_task = asyncio.create_task(self._pump(reader))

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        try:
            while chunk := await reader.read(65536):
                self.buf += chunk
                self._data.set()
        except OSError:
            pass
        self.eof.set()
        self._data.set()

    @property
    def peer_gone(self) -> bool:
        return self.eof.is_set() and not self.aborted

    async def _take(self, ready: Callable[[], int]) -> bytes | None:
        """Wait until ready() returns a byte count > 0, then take that many bytes (None at EOF)."""
        while (n := ready()) <= 0:
            if self.eof.is_set():
                return None
            self._data.clear()
            await self._data.wait()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        head = await self._take(lambda: self.buf.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in self.buf else 0)
        if head is None:
            return None
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}
        length = int(headers.get("content-length", 0))
        body = await self._take(lambda: length if len(self.buf) >= length else 0) if length else b""
        if body is None:
            return None
        return method, target.split("?", 1)[0], headers, body

    async def send(self, data: bytes) -> bool:
        """Write data; False when the client has gone."""
        if self.eof.is_set():
            return False
        self.writer.write(data)
        try:
            await self.writer.drain()
        except OSError:
            return False
        return True

    async def pause(self, seconds: float) -> bool:
        """Sleep, waking at once if the client hangs up; False when it did."""
        if seconds > 0:
            try:
                await asyncio.wait_for(self.eof.wait(), seconds)
            except TimeoutError:
                pass
        return not self.eof.is_set()

    def abort(self) -> None:
        self.aborted = True
        self.writer.transport.abort()

    def close(self) -> None:
        self._pump_task.cancel()
        self.writer.close()


def _head(status: int, content_type: str, length: int | None = None) -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    phrase = http.HTTPStatus(status).phrase
    return f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n{size}\r\n\r\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _limits(path: str, body: dict) -> tuple[list[str], int | None, bool]:
    """(stop strings, max chunks, stream) as the dialect of `path` spells them."""
    if path.startswith("/api/"):
        options = body.get("options") or {}
        stop, limit, stream = options.get("stop"), options.get("num_predict"), body.get("stream", True)
    elif path.startswith("/v1/"):
        stop, limit, stream = body.get("stop"), body.get("max_tokens"), body.get("stream", False)
    else:
        stop, limit, stream = body.get("stop"), body.get("n_predict"), body.get("stream", False)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    return stops, limit if isinstance(limit, int) and limit > 0 else None, bool(stream)


def _pieces(
    text: str, stops: list[str], limit: int | None, size: int, max_lines: int | None = None
) -> tuple[list[str], str]:
    """The chunks a real server would stream, and its finish reason ("stop" or "length"): the text up to
    the first stop string, at most `limit` chunks of `size` characters, and at most `max_lines` lines
    (the last one ending with its newline)."""
    text = text[: min((text.index(stop) for stop in stops if stop and stop in text), default=len(text))]
    finish = "stop"
    if max_lines is not None and max_lines > 0:
        end = -1
        for _ in range(max_lines):
            end = text.find("\n", end + 1)
            if end < 0:
                break
        if 0 <= end < len(text) - 1:
            text, finish = text[: end + 1], "length"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    if limit is not None and len(pieces) > limit:
        return pieces[:limit], "length"
    return pieces, finish


def _payload(path: str, model: str, text: str, finish: str | None, stream: bool) -> dict:
    """One stream event (finish None = more to come) or, with stream False, the whole answer."""
    if path == "/v1/completions":
        choice = {"text": text, "index": 0, "finish_reason": finish}
        return {"object": "text_completion", "model": model, "choices": [choice]}
    if path == "/v1/chat/completions":
        if not stream:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            return {"object": "chat.completion", "model": model, "choices": [choice]}
        delta = {} if finish else {"content": text}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"object": "chat.completion.chunk", "model": model, "choices": [choice]}
    if path.startswith("/api/"):
        key, value = ("message", {"role": "assistant", "content": text}) if path == "/api/chat" else ("response", text)
        event = {"model": model, "created_at": "2025-01-01T00:00:00Z", key: value, "done": finish is not None}
        return event | ({"done_reason": finish} if finish else {})
    return {"content": text, "stop": finish is not None} | ({"stopped_limit": finish == "length"} if finish else {})


def _encode(path: str, event: dict) -> bytes:
    line = json.dumps(event).encode()
    return line + b"\n" if path.startswith("/api/") else b"data: " + line + b"\n\n"


class FakeHttpServer:
    """A real HTTP/1.1 server on 127.0.0.1 in a background thread with its own asyncio loop, that
    records every request. Subclasses answer with `_respond(conn, rec)` and list their `FAULTS`.
    `start()` returns self; also a context manager. Configure it from another thread."""

    FAULTS: tuple[str | None, ...] = (None,)
    THREAD_NAME = "fake-http-server"

    def __init__(self, *, fault: str | None = None, port: int = 0):
        self.requests: list[RecordedRequest] = []
        self._check_fault(fault)
        self._fault = fault
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        self._call(self._listen(True))
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        self._check_fault(value)
        self._fault = value
        if self._loop is not None:
            self._fault_changed(value)

    def _fault_changed(self, value: str | None) -> None:
        """Hook for faults that change the listening socket itself."""

    def serve_forever(self) -> None:
        """For the command lines: start, say where, serve until interrupted or killed."""
        self.start()
        print(f"READY {self.url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- inspection ----------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll predicate() until it is true (True) or timeout seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_hangup(self, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: any(r.hung_up for r in self.requests), timeout)

    def reset(self) -> None:
        self.requests.clear()

    # -- internals -----------------------------------------------------------------------------

    def _check_fault(self, value: str | None) -> None:
        if value not in self.FAULTS:
            raise ValueError(f"fault must be one of {self.FAULTS}")

    def _call(self, coro: Any) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError("configure the fake from another thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self, on: bool) -> None:
        if on and self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port, reuse_address=True)
            self._port = self._server.sockets[0].getsockname()[1]
        elif not on and self._server is not None:
            self._server.close()
            self._server = None
            for conn in list(self._conns):
                conn.abort()

    async def _shutdown(self) -> None:
        await self._listen(False)  # aborts every connection, so their handlers finish on their own
        if tasks := asyncio.all_tasks() - {asyncio.current_task()}:
            await asyncio.wait(tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        self._conns.add(conn)
        try:
            while (request := await conn.read_request()) is not None:
                method, path, headers, raw = request
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                rec = RecordedRequest(method, path, body, time.monotonic(), headers=headers)
                self.requests.append(rec)
                try:
                    keep_alive = await self._respond(conn, rec)
                finally:
                    rec.ended = rec.ended or time.monotonic()
                    rec.hung_up = not rec.completed and conn.peer_gone
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    break
        except (ValueError, OSError):
            pass  # a malformed request line or a broken socket: drop the connection
        finally:
            self._conns.discard(conn)
            conn.close()

    async def _respond(self, conn: _Conn, rec: RecordedRequest) -> bool:
        """Answer one request; False when the connection must not be reused."""
        raise NotImplementedError

    @staticmethod
    async def _finish(conn: _Conn, rec: RecordedRequest, data: bytes) -> bool:
        """Send the last bytes of a response. The record is final before they leave, so a client that
        has read them can inspect it without waiting."""
        rec.completed, rec.ended = True, time.monotonic()
        rec.completed = await conn.send(data)
        return rec.completed


class FakeModelServer(FakeHttpServer):
    """See the module docstring. `start()` returns self; also a context manager."""

    FAULTS = FAULTS
    THREAD_NAME = "fake-model-server"

    def __init__(
        self,
        completion: str = DEFAULT_COMPLETION,
        *,
        script: Callable[[RecordedRequest], str] | None = None,
        latency_for: Callable[[RecordedRequest], float | None] | None = None,
        chunk_size: int = 4,
        first_token_latency: float = 0.0,
        token_latency: float = 0.0,
        max_lines: int | None = None,
        slow_latency: float = 30.0,
        models: list[str] | None = None,
        fault: str | None = None,
        dialects: set[str] | frozenset[str] = DIALECTS,
        port: int = 0,
    ):
        self.completion = completion
        self.script = script
        self.latency_for = latency_for  # a first-token delay per request (None: first_token_latency)
        self.chunk_size = chunk_size
        self.first_token_latency = first_token_latency
        self.token_latency = token_latency
        self.max_lines = max_lines  # None: the whole text (up to the token limit)
        self.slow_latency = slow_latency  # first-token delay in the "slow" fault
        self.models = list(models or ["qwen2.5-coder-1.5b-base"])
        self.dialects = set(dialects)
        super().__init__(fault=fault, port=port)

    def start(self) -> FakeModelServer:
        super().start()
        if self._fault == "down":
            self._call(self._listen(False))
        return self

    def _fault_changed(self, value: str | None) -> None:
        self._call(self._listen(value != "down"))  # "down" refuses connections; anything else listens

    # -- inspection ----------------------------------------------------------------------------

    def generation_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path in GENERATION_PATHS]

    async def _send_json(self, conn: _Conn, rec: RecordedRequest, status: int, payload: Any) -> bool:
        data = json.dumps(payload).encode()
        return await self._finish(conn, rec, _head(status, "application/json", len(data)) + data)

    async def _respond(self, conn: _Conn, rec: RecordedRequest) -> bool:
        """Answer one request; False when the connection must not be reused."""
        dialects = ROUTES.get((rec.method, rec.path), frozenset())
        if not dialects & self.dialects:
            return await self._send_json(conn, rec, 404, {"error": f"no route for {rec.method} {rec.path}"})
        if rec.path not in GENERATION_PATHS:
            return await self._send_json(conn, rec, 200, self._metadata(rec.path))
        if not isinstance(rec.body, dict):
            return await self._send_json(conn, rec, 400, {"error": "request body must be a JSON object"})
        fault = self._fault
        if fault == "error":
            error = {"code": 500, "message": "fake model server error", "type": "server_error"}
            return await self._send_json(conn, rec, 500, {"error": error})
        if fault == "hang":
            await conn.eof.wait()
            return False
        ndjson = rec.path.startswith("/api/")
        content_type = "application/x-ndjson" if ndjson else "text/event-stream"
        if fault == "garbage":
            await self._finish(conn, rec, _head(200, content_type) + _chunk(GARBAGE) + b"0\r\n\r\n")
            return False
        try:
            text = self.script(rec) if self.script else self.completion
        except Exception as exc:  # the oracle failed: say so like a server would
            return await self._send_json(conn, rec, 500, {"error": f"script failed: {exc!r}"})
        stops, limit, stream = _limits(rec.path, rec.body)
        pieces, finish = _pieces(text, stops, limit, max(1, self.chunk_size), self.max_lines)
        model = rec.body.get("model") or self.models[0]
        first_delay = self.slow_latency if fault == "slow" else self.first_token_latency
        if fault != "slow" and self.latency_for is not None and (own := self.latency_for(rec)) is not None:
            first_delay = own
        if not stream and fault != "drop":
            delays = [first_delay] + [self.token_latency] * (len(pieces) - 1)
            for delay in delays:
                if not await conn.pause(delay):
                    return False
            rec.chunks_sent = len(pieces)
            return await self._send_json(conn, rec, 200, _payload(rec.path, model, "".join(pieces), finish, False))
        if not await conn.send(_head(200, content_type)):
            return False
        for i, piece in enumerate(pieces):
            event = _encode(rec.path, _payload(rec.path, model, piece, None, True))
            if not (await conn.pause(first_delay if i == 0 else self.token_latency) and await conn.send(_chunk(event))):
                return False
            rec.chunks_sent += 1
            if fault == "drop":
                break
        if fault == "drop":
            conn.abort()
            return False
        tail = _encode(rec.path, _payload(rec.path, model, "", finish, True))
        if rec.path.startswith("/v1/"):
            tail += b"data: [DONE]\n\n"
        return await self._finish(conn, rec, _chunk(tail) + b"0\r\n\r\n")

    def _metadata(self, path: str) -> dict:
        if path == "/v1/models":
            return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]}
        if path == "/api/tags":
            return {"models": [{"name": m, "model": m, "size": 0, "details": {"format": "gguf"}} for m in self.models]}
        if path == "/api/version":
            return {"version": "0.12.0"}
        return {"status": "ok"}  # /health


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--completion", default=DEFAULT_COMPLETION)
    parser.add_argument("--first-token-latency", type=float, default=0.0)
    parser.add_argument("--token-latency", type=float, default=0.0)
    parser.add_argument("--max-lines", type=int, help="end each answer after this many lines")
    parser.add_argument("--fault", choices=[f for f in FAULTS if f])
    parser.add_argument("--model", action="append", dest="models", help="repeatable")
    parser.add_argument("--next-edit-replace", nargs=2, action="append", metavar=("OLD", "NEW"), default=[],
                        help="answer next-edit prompts (any template) with the window's whole words OLD replaced "
                             "by NEW; other prompts get --completion; repeatable")
    args = parser.parse_args(argv)
    script = None
    if args.next_edit_replace:
        import re

        from tests.fakes.next_edit_model import next_edit_script

        words = [(re.compile(rf"(?<!\w){re.escape(old)}(?!\w)"), new) for old, new in args.next_edit_replace]

        def rewrite(window: str, path: str) -> str:
            lines = window.splitlines(keepends=True)
            for pattern, new in words:
                lines = [pattern.sub(new, line) if pattern.search(line) else line for line in lines]
            return "".join(lines)

        script = next_edit_script(rewrite, args.completion)
    FakeModelServer(
        args.completion,
        script=script,
        first_token_latency=args.first_token_latency,
        token_latency=args.token_latency,
        max_lines=args.max_lines,
        fault=args.fault,
        models=args.models,
        port=args.port,
    ).serve_forever()


if __name__ == "__main__":
    main()

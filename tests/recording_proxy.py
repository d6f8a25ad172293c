"""A pass-through HTTP proxy on 127.0.0.1 that records what a client sent to a real model server and what
the server answered, so tests can compare Tandem's request with the server's own counters
(`tokens_evaluated`, `timings`, `truncated` in llama-server's final stream event).

    proxy = RecordingProxy(server.url).start()
    ... point Tandem at proxy.url ...
    ex = proxy.exchanges("/infill")[-1]; ex.body["input_prefix"], ex.final["timings"]["prompt_n"]

Responses are forwarded as they arrive (streams stay streams). A client that hangs up is noticed at the
next chunk the server sends; the proxy then closes its upstream connection, so the server sees the
cancel too. Use the server directly for tests that time a cancel.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class Exchange:
    """One request through the proxy."""

    method: str
    path: str
    body: Any  # the parsed JSON request body (None without one)
    status: int | None = None
    events: list[dict] = field(default_factory=list)  # SSE `data:` objects, or the one JSON body
    raw: bytes = b""  # the response body as received
    client_closed: bool = False  # the client hung up before the end
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def final(self) -> dict | None:
        """The last event that carries the server's counters (llama-server: `timings`; OpenAI: `usage`)."""
        for event in reversed(self.events):
            if "timings" in event or "usage" in event or "tokens_evaluated" in event:
                return event
        return None

    @property
    def error_text(self) -> str:
        return self.raw.decode("utf-8", "replace") if self.status and self.status >= 400 else ""


class RecordingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> RecordingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def do_GET(self) -> None:
                proxy._forward(self, "GET")

            def do_POST(self) -> None:
                proxy._forward(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def exchanges(self, path: str | None = None) -> list[Exchange]:
        """Recorded exchanges, oldest first; `path` keeps those whose path ends with it."""
        with self._lock:
            return [e for e in self._exchanges if path is None or e.path.endswith(path)]

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every recorded exchange has ended."""
        deadline = time.monotonic() + timeout
        for ex in self.exchanges():
            if not ex.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{ex.method} {ex.path} still running after {timeout} s")

    def _forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        ex = Exchange(method=method, path=handler.path, body=body)
        with self._lock:
            self._exchanges.append(ex)
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "authorization", "accept")}
        try:
            with httpx.Client(trust_env=False, timeout=httpx.Timeout(120.0, connect=2.0)) as client:
                with client.stream(method, self.upstream + handler.path, content=raw_body, headers=headers) as up:
                    ex.status = up.status_code
                    handler.send_response(up.status_code)
                    handler.send_header("Content-Type", up.headers.get("content-type", "application/octet-stream"))
                    handler.send_header("Connection", "close")
                    handler.end_headers()
                    pending = b""
                    for chunk in up.iter_raw():
                        ex.raw += chunk
                        pending = self._parse_lines(ex, pending + chunk)
                        try:
                            handler.wfile.write(chunk)
                            handler.wfile.flush()
                        except OSError:
                            ex.client_closed = True
                            return  # leaving the block closes the upstream stream: the server sees the cancel
                    self._parse_lines(ex, pending + b"\n")
                    if not ex.events and ex.raw.strip():
                        try:
                            ex.events.append(json.loads(ex.raw))
                        except ValueError:
                            pass
        except httpx.HTTPError:
            if ex.status is None:
                try:
                    handler.send_error(502)
                except OSError:
                    pass
        finally:
            ex.done.set()

    @staticmethod
    def _parse_lines(ex: Exchange, data: bytes) -> bytes:
        *lines, rest = data.split(b"\n")
        for line in lines:
            line = line.strip()
            if line.startswith(b"data:"):
                value = line[5:].strip()
                if value and value != b"[DONE]":
                    try:
                        event = json.loads(value)
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        ex.events.append(event)
        return rest

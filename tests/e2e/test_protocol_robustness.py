"""The JSON-RPC layer end to end: ``python -m tandem_lsp`` as a subprocess, written raw
Content-Length framed bytes on stdin (no LSP client library in between, so anything can be sent).

The contract checked everywhere: every request with an id gets exactly one answer, promptly; every
answer is valid JSON (NaN and Infinity rejected); a wrong message gets the JSON-RPC error it deserves,
with id null where its id is invalid; ``shutdown`` always succeeds, every request after it is an
InvalidRequest, and ``exit`` ends the process.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.conftest import local_settings

INVALID_REQUEST, INVALID_PARAMS, PARSE_ERROR, CANCELLED = -32600, -32602, -32700, -32800
URI = "file:///project/calc.py"
TEXT = "def add(a, b):\n    "
RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}


def strict_json(body: bytes):
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=reject)


class RawServer:
    """The server over stdio, spoken to in bytes. A thread reads its frames; each must be strict JSON."""

    def __init__(self, tmp_path, env: dict | None = None):
        self.stderr = open(tmp_path / "server.stderr", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tandem_lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env={**os.environ, "TANDEM_STATE_DIR": str(tmp_path / "state"), **(env or {})},
        )
        self.inbox: queue.Queue = queue.Queue()
        self.received: list[dict] = []
        self.invalid: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.inbox.put(None)
                    return
                if line == b"\r\n":
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = out.read(length)
            try:
                self.inbox.put(strict_json(body))
            except ValueError:
                self.invalid.append(body)

    def send_bytes(self, body: bytes) -> None:
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_bytes(json.dumps(message).encode())

    def pump(self, seconds: float) -> None:
        """Collect what arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                return
            if message is None:
                return
            self.received.append(message)

    def answers(self, msg_id=...) -> list[dict]:
        found = [m for m in self.received if "method" not in m]
        return found if msg_id is ... else [m for m in found if m.get("id") == msg_id]

    def requests_to_client(self, method: str) -> list[dict]:
        return [m for m in self.received if m.get("method") == method and "id" in m]

    def wait(self, condition, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s; received {self.received}; invalid {self.invalid}")
            self.pump(0.02)

    def answer(self, msg_id, timeout: float = 5.0) -> dict:
        """The one answer for ``msg_id`` (a second one arriving within 0.1 s fails the test)."""
        self.wait(lambda: self.answers(msg_id), timeout)
        self.pump(0.1)
        found = self.answers(msg_id)
        assert len(found) == 1, f"{len(found)} answers for id {msg_id!r}: {found}"
        assert not self.invalid, f"answers that are not JSON: {self.invalid}"
        return found[0]

    def request(self, msg_id, method: str, params=None, timeout: float = 5.0) -> dict:
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.answer(msg_id, timeout)

    def notify(self, method: str, params=None) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.stderr.close()


@pytest.fixture
def raw(tmp_path, fake):
    server = RawServer(tmp_path)
    capabilities = {"window": {"workDoneProgress": True, "showDocument": {"support": True}}}
    init = server.request(0, "initialize", {"processId": None, "rootUri": "file:///project",
                                            "capabilities": capabilities, "initializationOptions": local_settings(fake)})
    assert "capabilities" in init["result"]
    server.notify("initialized", {})
    server.notify("textDocument/didOpen",
                  {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}})
    yield server
    server.close()


def code_action(msg_id, diagnostics=()) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/codeAction",
            "params": {"textDocument": {"uri": URI}, "range": RANGE, "context": {"diagnostics": list(diagnostics)}}}


def completion_params() -> dict:
    return {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}}


def assert_alive(server: RawServer, msg_id) -> None:
    """A normal completion, answered by the fake model within 5 s."""
    result = server.request(msg_id, "textDocument/completion", completion_params(), timeout=5)["result"]
    assert result["items"], result


def assert_exits(server: RawServer, code: int = 0) -> None:
    server.notify("exit")
    assert server.proc.wait(5) == code


# -- 3 ------------------------------------------------------------------------------------
def test_a_nested_jsonrpc_key_in_diagnostic_data_keeps_the_code_action_request(raw):
    diagnostics = [{"range": RANGE, "message": "NameError: x", "data": {"jsonrpc": "2.0", "id": 99}},
                   {"range": RANGE, "message": "other", "data": {"jsonrpc": "2.0", "id": 98, "method": "x/y"}}]
    raw.send(code_action(1, diagnostics))
    actions = raw.answer(1)["result"]
    assert any(a.get("diagnostics") and a["diagnostics"][0]["data"] == diagnostics[0]["data"] for a in actions)
    assert [a["id"] for a in raw.answers()] == [0, 1]  # no stray answers for the nested ids
    assert_alive(raw, 2)


# -- 4 ------------------------------------------------------------------------------------
def test_shutdown_while_a_command_waits_on_the_client(raw):
    raw.send({"jsonrpc": "2.0", "id": 1, "method": "workspace/executeCommand",
              "params": {"command": "tandem.ask", "arguments": [{"prompt": "hello"}]}})
    # the command asks the client for a progress token and waits for the answer, which never comes
    raw.wait(lambda: raw.requests_to_client("window/workDoneProgress/create"))
    started = time.monotonic()
    assert raw.request(2, "shutdown", timeout=3) == {"jsonrpc": "2.0", "id": 2, "result": None}
    assert time.monotonic() - started < 3
    assert raw.answer(1)["error"]["code"] == CANCELLED  # answered once, not left hanging
    stats = raw.request(3, "workspace/executeCommand", {"command": "tandem.stats"})
    assert stats["error"]["code"] == INVALID_REQUEST  # not an answer read from a closed ledger
    assert_exits(raw, 0)


def test_shutdown_during_a_hung_model_stream_is_prompt_and_closes_the_stream(raw, fake):
    fake.fault = "hang"  # generation requests are accepted and never answered
    raw.send({"jsonrpc": "2.0", "id": 2, "method": "textDocument/completion", "params": completion_params()})
    assert fake.wait_for(fake.generation_requests, 5)
    started = time.monotonic()
    assert raw.request(3, "shutdown", timeout=3)["result"] is None
    assert time.monotonic() - started < 3
    raw.answer(2)  # exactly one answer for the request in flight
    assert fake.wait_for_hangup(3)  # its HTTP stream was closed
    assert_exits(raw, 0)


# -- 4, 5 ---------------------------------------------------------------------------------
def test_after_shutdown_every_request_is_an_invalid_request_and_exit_ends_the_process(raw):
    assert raw.request(1, "shutdown")["result"] is None
    for msg_id, (method, params) in enumerate([
        ("textDocument/completion", completion_params()),
        ("textDocument/codeAction", code_action(0)["params"]),
        ("workspace/executeCommand", {"command": "tandem.stats"}),
        ("shutdown", None),
        ("initialize", {"capabilities": {}}),
        ("no/such/method", {}),
    ], start=2):
        assert raw.request(msg_id, method, params)["error"]["code"] == INVALID_REQUEST, method
    assert_exits(raw, 0)


# -- 5, 9 ---------------------------------------------------------------------------------
PARAMS = json.dumps(code_action(0)["params"]).encode()
HOSTILE = [  # (what is sent, the id of its answer, the error code)
    (b'{"jsonrpc": "1.0", "id": 11, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", 11, INVALID_REQUEST),
    (b'{"jsonrpc": 2.0, "id": 12, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", 12, INVALID_REQUEST),
    (b'{"id": 13, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", 13, INVALID_REQUEST),
    (b'{"id": 14, "method": "shutdown"}', 14, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 15, "method": "$/setTrace", "params": {"value": "verbose"}}', 15, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 16, "method": "textDocument/didClose", "params": {"textDocument": {"uri": "'
     + URI.encode() + b'"}}}', 16, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 17, "method": "exit"}', 17, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": [1], "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": true, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": NaN, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": Infinity, "method": "textDocument/codeAction", "params": ' + PARAMS + b"}", None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": -Infinity, "method": "shutdown"}', None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": NaN, "method": "shutdown"}', None, INVALID_REQUEST),
    (b"[]", None, INVALID_REQUEST),
    (b'[{"jsonrpc": "2.0", "id": 18, "method": "shutdown"}]', None, INVALID_REQUEST),
    (b"42", None, INVALID_REQUEST),
    (b"{}", None, INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 19, "method": "textDocument/codeAction", "params": ', None, PARSE_ERROR),
    (b'{"jsonrpc": "2.0", "id": 20, "method": "textDocument/codeAction", "params": {"textDocument": 7}}', 20, INVALID_PARAMS),
]


def test_every_hostile_request_gets_its_error_and_the_server_stays_usable(raw):
    for n, (body, answer_id, code) in enumerate(HOSTILE):
        before = len(raw.answers(answer_id))
        raw.send_bytes(body)
        raw.wait(lambda: len(raw.answers(answer_id)) > before, timeout=3)
        raw.pump(0.05)
        answers = raw.answers(answer_id)[before:]
        assert [a.get("error", {}).get("code") for a in answers] == [code], (body, answers)
        liveness = 1000 + n
        raw.send(code_action(liveness))
        assert "result" in raw.answer(liveness), body
    assert not raw.invalid
    assert_alive(raw, 2)  # NaN "shutdown"s did not shut it down
    # nothing else was answered: one answer per id sent, and no stray ones
    ids = [a["id"] for a in raw.answers() if a["id"] is not None]
    assert sorted(ids) == sorted({0, 2, *range(1000, 1000 + len(HOSTILE)), *(h[1] for h in HOSTILE if h[1] is not None)})


# -- 6 ------------------------------------------------------------------------------------
def test_notifications_leave_memory_flat(raw):
    def close_unopened(count: int) -> None:
        for _ in range(count):
            raw.notify("textDocument/didClose", {"textDocument": {"uri": "file:///project/never-opened.py"}})
            raw.notify("$/setTrace", {"value": "off"})

    close_unopened(1000)  # warm up: caches, allocator arenas
    raw.send(code_action(1))
    raw.answer(1, timeout=30)
    before = raw.rss_kb()
    close_unopened(5000)
    raw.send(code_action(2))
    raw.answer(2, timeout=60)
    growth_kb = raw.rss_kb() - before
    assert growth_kb < 1500, f"RSS grew {growth_kb} kB over 10,000 notifications"
    assert_alive(raw, 3)


# -- exit ---------------------------------------------------------------------------------
def test_exit_without_shutdown_ends_the_process_at_once_with_code_1(raw, tmp_path):
    raw.send({"jsonrpc": "2.0", "id": 1, "method": "workspace/executeCommand",
              "params": {"command": "tandem.ask", "arguments": [{"prompt": "hello"}]}})
    raw.wait(lambda: raw.requests_to_client("window/workDoneProgress/create"))  # a command waits on the client
    started = time.monotonic()
    assert_exits(raw, 1)  # LSP: exit without shutdown is an error exit
    assert time.monotonic() - started < 2
    raw.stderr.flush()
    # what was cancelled on the way out wrote nothing to the closed stdout (pygls looped on the failure)
    assert (tmp_path / "server.stderr").stat().st_size < 100_000

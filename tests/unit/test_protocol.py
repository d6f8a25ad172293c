"""The JSON-RPC layer (TandemProtocol) fed real framed bytes through pygls's own read loop.

A fresh ``TandemServer`` (no Tandem handlers, only the ones each test registers) reads from an
in-memory stream and writes into a buffer; every answer is parsed as strict JSON (NaN and Infinity
rejected). The contract: every request with an id gets exactly one answer, with the JSON-RPC error
it deserves (id null where the id itself is invalid); notifications never get one.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from lsprotocol import types
from pygls.io_ import run_async

from tandem_lsp.lsp.server import TandemServer

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, PARSE_ERROR, CANCELLED = -32600, -32601, -32602, -32700, -32800
RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}


def strict_json(body: bytes):
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=reject)


class Wire:
    """One server on an in-memory connection: ``send`` frames a message, ``answers`` are the parsed replies."""

    def __init__(self, server: TandemServer):
        self.server = server
        self.out = bytearray()
        self.reader = asyncio.StreamReader()
        server.protocol.set_writer(self)
        self.exit_code = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        try:
            await run_async(stop_event=threading.Event(), reader=self.reader, protocol=self.server.protocol,
                            error_handler=self.server.report_server_error)
        except SystemExit as exc:  # "exit" (kept from ending the test run)
            self.exit_code = exc.code

    # the writer interface pygls writes to
    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        pass

    def send(self, message) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.reader.feed_data(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def messages(self) -> list:
        found, rest = [], bytes(self.out)
        while rest:
            head, _, rest = rest.partition(b"\r\n\r\n")
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            found.append(strict_json(rest[:length]))  # raises on an answer that is not valid JSON
            rest = rest[length:]
        return found

    def answers(self, msg_id=...) -> list[dict]:
        """Responses (not notifications or requests to the client), optionally only those for one id."""
        found = [m for m in self.messages() if "method" not in m]
        return found if msg_id is ... else [m for m in found if m.get("id") == msg_id]

    def requests_to_client(self) -> list[dict]:
        return [m for m in self.messages() if "method" in m and "id" in m]

    async def until(self, condition, timeout: float = 3.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the server wrote {self.messages()}")
            await asyncio.sleep(0.01)

    async def answer(self, msg_id, timeout: float = 3.0) -> dict:
        await self.until(lambda: self.answers(msg_id), timeout)
        await asyncio.sleep(0.05)  # a second answer for the same id would arrive by now
        found = self.answers(msg_id)
        assert len(found) == 1, f"{len(found)} answers for id {msg_id!r}: {found}"
        return found[0]

    async def quiet(self, seconds: float = 0.2) -> None:
        await asyncio.sleep(seconds)

    def stop(self) -> None:
        self.reader.feed_eof()
        self.task.cancel()


def initialize(msg_id=0) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "initialize", "params": {"capabilities": {}}}


def code_action(msg_id, diagnostics=()) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/codeAction",
            "params": {"textDocument": {"uri": "file:///a.py"}, "range": RANGE,
                       "context": {"diagnostics": list(diagnostics)}}}


def request(msg_id, method, params=None) -> dict:
    message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


@pytest.fixture
async def wire():
    """A server whose codeAction handler echoes each diagnostic's data, and counts its calls."""
    server = TandemServer()
    server.calls = []

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
    def actions(ls, params: types.CodeActionParams):
        ls.calls.append(params)
        return [types.CodeAction(title="echo", data=d.data) for d in params.context.diagnostics] or [
            types.CodeAction(title="none")]

    @server.command("test.waitForClient")
    async def wait_for_client(ls, *args):
        """A command that waits on the client (as tandem.ask waits on window/showDocument)."""
        return await ls.window_show_document_async(types.ShowDocumentParams(uri="file:///result.md"))

    w = Wire(server)
    w.send(initialize())
    await w.answer(0)
    w.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    yield w
    w.stop()


# -- 3: nested "jsonrpc" keys ---------------------------------------------------------------
async def test_a_nested_jsonrpc_key_does_not_drop_the_request(wire):
    diagnostics = [
        {"range": RANGE, "message": "response-like data", "data": {"jsonrpc": "2.0", "id": 99}},
        {"range": RANGE, "message": "request-like data", "data": {"jsonrpc": "2.0", "id": 98, "method": "x/y"}},
    ]
    wire.send(code_action(1, diagnostics))
    answer = await wire.answer(1)
    assert [a["data"] for a in answer["result"]] == [d["data"] for d in diagnostics]
    assert [a["id"] for a in wire.answers()] == [0, 1]  # no stray error for the nested ids 98, 99


async def test_nested_jsonrpc_keys_in_params_of_a_notification_and_a_response(wire):
    wire.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": "file:///n.py", "languageId": "python", "version": 1, "text": "x"}}, "extra": {"jsonrpc": "2.0", "id": 5}})
    await wire.quiet(0.1)
    assert "file:///n.py" in wire.server.workspace.text_documents
    assert [a["id"] for a in wire.answers()] == [0]


# -- 4: shutdown while a command waits on the client ------------------------------------------
async def test_shutdown_while_a_command_waits_on_the_client(wire):
    wire.send(request(1, "workspace/executeCommand", {"command": "test.waitForClient", "arguments": []}))
    await wire.until(lambda: wire.requests_to_client())  # the command now waits on window/showDocument
    wire.send(request(2, "shutdown"))
    assert (await wire.answer(2)) == {"jsonrpc": "2.0", "id": 2, "result": None}
    assert (await wire.answer(1))["error"]["code"] == CANCELLED  # the waiting command is answered once
    wire.send(code_action(3))
    assert (await wire.answer(3))["error"]["code"] == INVALID_REQUEST
    assert wire.server.calls == []  # nothing runs against closed resources


async def test_shutdown_succeeds_when_its_handler_fails_or_hangs(wire):
    closed = []

    @wire.server.feature(types.SHUTDOWN)
    async def shutdown(ls, params):
        closed.append("started")
        raise RuntimeError("closing failed")

    wire.send(request(1, "shutdown"))
    assert (await wire.answer(1))["result"] is None
    assert closed == ["started"]

    hanging = TandemServer()
    hanging.protocol.shutdown_timeout_s = 0.3

    @hanging.feature(types.SHUTDOWN)
    async def never_returns(ls, params):
        await asyncio.Event().wait()

    other = Wire(hanging)
    other.send(initialize())
    await other.answer(0)
    started = time.monotonic()
    other.send(request(1, "shutdown"))
    assert (await other.answer(1))["result"] is None
    assert time.monotonic() - started < 2
    other.stop()


# -- 4, 5: after shutdown every request gets InvalidRequest -------------------------------------
async def test_every_request_after_shutdown_is_an_invalid_request(wire):
    wire.send(request(1, "shutdown"))
    await wire.answer(1)
    for msg_id, message in enumerate(
        [code_action(None), initialize(), request(None, "shutdown"), request(None, "no/such/method"),
         request(None, "workspace/executeCommand", {"command": "test.waitForClient"})], start=2
    ):
        message["id"] = msg_id
        wire.send(message)
        assert (await wire.answer(msg_id))["error"]["code"] == INVALID_REQUEST, message
    assert wire.server.calls == []


async def test_requests_during_a_slow_shutdown_are_invalid_requests(wire):
    release = asyncio.Event()

    @wire.server.feature(types.SHUTDOWN)
    async def slow(ls, params):
        await release.wait()

    wire.send(request(1, "shutdown"))
    await wire.quiet(0.05)
    wire.send(code_action(2))
    assert (await wire.answer(2))["error"]["code"] == INVALID_REQUEST
    release.set()
    assert (await wire.answer(1))["result"] is None
    assert wire.server.calls == []


# -- 5: messages that got no answer --------------------------------------------------------
@pytest.mark.parametrize("version", ["1.0", "2", 2.0, None, "missing"])
async def test_a_wrong_or_missing_jsonrpc_version_is_an_invalid_request(wire, version):
    message = code_action(7)
    if version == "missing":
        del message["jsonrpc"]
    else:
        message["jsonrpc"] = version
    wire.send(message)
    assert (await wire.answer(7))["error"]["code"] == INVALID_REQUEST
    assert wire.server.calls == []


@pytest.mark.parametrize("method, params", [
    ("$/setTrace", {"value": "off"}),
    ("initialized", {}),
    ("textDocument/didClose", {"textDocument": {"uri": "file:///a.py"}}),
    ("exit", None),
    ("$/cancelRequest", {"id": 1}),
])
async def test_an_id_on_a_notification_method_is_an_invalid_request(wire, method, params):
    wire.send(request(8, method, params))
    assert (await wire.answer(8))["error"]["code"] == INVALID_REQUEST
    wire.send(code_action(9))  # the server is still there (an "exit" with an id did not stop it)
    assert "result" in await wire.answer(9)
    assert wire.exit_code is None


@pytest.mark.parametrize("bad_id", [{"a": 1}, [1], [], True, None, 1.5])
async def test_an_invalid_id_is_answered_with_id_null(wire, bad_id):
    message = code_action(0)
    message["id"] = bad_id
    wire.send(message)
    await wire.until(lambda: wire.answers(None))
    await wire.quiet(0.05)
    assert [a["error"]["code"] for a in wire.answers(None)] == [INVALID_REQUEST]
    assert wire.server.calls == []
    wire.send(code_action(10))
    assert "result" in await wire.answer(10)


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b"5", b'"text"', b"null", b"{}", b'{"jsonrpc": "2.0"}',
                                  b'{"jsonrpc": "2.0", "method": 5, "id": 3}'])
async def test_a_message_that_is_no_request_at_all_is_answered(wire, body):
    wire.send(body)
    await wire.until(lambda: [a for a in wire.answers() if a["id"] != 0])
    await wire.quiet(0.05)
    (answer,) = [a for a in wire.answers() if a["id"] != 0]
    assert answer["error"]["code"] == INVALID_REQUEST
    assert answer["id"] == (3 if b'"id": 3' in body else None)


async def test_unparseable_json_is_a_parse_error_with_id_null(wire):
    wire.send(b'{"jsonrpc": "2.0", "id": 4, "method": ')
    await wire.until(lambda: wire.answers(None))
    assert [a["error"]["code"] for a in wire.answers(None)] == [PARSE_ERROR]
    wire.send(code_action(5))
    assert "result" in await wire.answer(5)


async def test_params_of_the_wrong_type_are_invalid_params(wire):
    message = code_action(6)
    message["params"]["range"] = "everything"
    wire.send(message)
    assert (await wire.answer(6))["error"]["code"] == INVALID_PARAMS


async def test_an_unknown_method_is_method_not_found_with_or_without_params(wire):
    wire.send(request(13, "no/such/method"))
    wire.send({**request(14, "tandem/noSuchThing", {"a": {"jsonrpc": "2.0"}}), "extra": 1})
    assert (await wire.answer(13))["error"]["code"] == METHOD_NOT_FOUND
    assert (await wire.answer(14))["error"]["code"] == METHOD_NOT_FOUND


# -- 9: NaN and Infinity ------------------------------------------------------------------
@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
async def test_non_json_number_ids_are_invalid_requests_with_id_null(wire, constant):
    params = json.dumps(code_action(0)["params"]).encode()
    wire.send(b'{"jsonrpc": "2.0", "id": ' + constant + b', "method": "textDocument/codeAction", "params": ' + params + b"}")
    wire.send(b'{"jsonrpc": "2.0", "id": ' + constant + b', "method": "shutdown"}')
    await wire.until(lambda: len(wire.answers(None)) == 2)
    await wire.quiet(0.05)
    assert [a["error"]["code"] for a in wire.answers(None)] == [INVALID_REQUEST] * 2  # and all valid JSON
    assert wire.server.calls == []
    wire.send(code_action(11))
    assert "result" in await wire.answer(11)  # the NaN "shutdown" did not shut the server down


async def test_nan_inside_params_is_refused_not_echoed(wire):
    params = json.dumps(code_action(0, [{"range": RANGE, "message": "m", "data": {"x": 1}}])["params"]).encode()
    wire.send(b'{"jsonrpc": "2.0", "id": 12, "method": "textDocument/codeAction", "params": '
              + params.replace(b'{"x": 1}', b'{"x": NaN}') + b"}")
    assert (await wire.answer(12))["error"]["code"] == INVALID_REQUEST  # wire.messages() parsed it strictly


# -- 6: memory -----------------------------------------------------------------------------
async def test_notifications_and_finished_requests_leave_no_futures_behind(wire):
    protocol = wire.server.protocol
    for _ in range(300):
        wire.send({"jsonrpc": "2.0", "method": "textDocument/didClose",
                   "params": {"textDocument": {"uri": "file:///never-opened.py"}}})
        wire.send({"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}})
    for msg_id in range(100, 110):
        wire.send(request(msg_id, "workspace/executeCommand", {"command": "no.such.command"}))
        wire.send(code_action(msg_id + 100))
    await wire.until(lambda: len(wire.answers()) == 21)
    await wire.quiet(0.1)
    assert dict(protocol._request_futures) == {}
    assert dict(protocol._result_types) == {}


async def test_a_request_to_the_client_that_is_never_answered_is_forgotten(wire):
    protocol = wire.server.protocol
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(wire.server.window_show_document_async(types.ShowDocumentParams(uri="file:///x")), 0.05)
    await wire.quiet(0.05)
    assert dict(protocol._request_futures) == {}
    assert dict(protocol._result_types) == {}

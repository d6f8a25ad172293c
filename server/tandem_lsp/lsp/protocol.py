"""The LSP protocol, made to keep JSON-RPC's contract whatever the client sends.

pygls 2.1 drops or mishandles several kinds of message; this subclass fixes them at the protocol
layer, for every method (see issue 10 and ``tests/unit/test_protocol.py``):

- Messages are structured once, as a whole. pygls structures them from ``json.loads``'s object hook,
  which sees every nested dict, so a ``"jsonrpc"`` key inside params (a diagnostic's ``data``) dropped
  the request. Here the hook returns plain dicts and ``handle_message`` checks the top-level message.
- Every request with an id gets exactly one answer. A message that is not a valid request is answered
  with InvalidRequest: ``"jsonrpc"`` other than ``"2.0"`` or missing, an id on a notification method,
  a method that is not a string, a message that is not an object, NaN or Infinity anywhere (not JSON:
  echoed back they made the answer unparseable). An id that is not an integer or a string (an object,
  an array, a boolean, null, a fraction, NaN) is answered with id null. Params that do not fit the
  method are InvalidParams; JSON that does not parse is a ParseError (``report_unreadable``).
- ``shutdown`` always succeeds: requests in flight are cancelled (and answered), the server's own
  shutdown handler runs with a time limit and its errors are logged, and from the moment ``shutdown``
  arrives every request is answered InvalidRequest (nothing runs against closed resources).
  ``exit`` ends the process, with code 0 after ``shutdown`` and 1 without: at once over stdio
  (``end_at_exit``), else within ``exit_grace_s``. ``shutdown`` is answered within
  ``cancelled_grace_s + shutdown_timeout_s`` (Helix waits 3 s on ``:q``, eglot 1.5 s); an ``exit`` that
  comes before that answer (Helix 25.07 sends the two back to back) has it written first.
- Finished handlers leave nothing behind: pygls kept a finished future per notification (and per
  generator step) in ``_request_futures``, and one per request to the client that was never answered.

The workspace pygls makes at ``initialize`` is replaced by a ``TandemWorkspace`` (``lsp.documents``): the
server's copy of each document follows LSP's line endings, an incremental change costs in proportion to
the change, and a document the editor did not open is never read from the disk on the event loop.

Command handlers also see their request's id and the client's work-done token (``COMMAND_REQUEST``;
pygls passes a command only its arguments).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage, LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from tandem_lsp.lsp.documents import TandemWorkspace

log = logging.getLogger(__name__)

VERSION = "2.0"
# next edits in the shape of GitHub Copilot's language server (textDocument/copilotInlineEdit)
EXPERIMENTAL_CAPABILITIES = {"copilotInlineEdit": True, "tandem": {"nextEdit": True}}
# lsprotocol knows each LSP method's direction and kind: notifications have no result type
_NOTIFICATION_METHODS = frozenset(m for m, kinds in types.METHOD_TO_TYPES.items() if kinds[1] is None)
_REQUEST_METHODS = frozenset(m for m, kinds in types.METHOD_TO_TYPES.items() if kinds[1] is not None)
UNREADABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)  # what json.loads raises on bad bytes


@dataclass(frozen=True)
class CommandRequest:
    msg_id: object
    work_done_token: types.ProgressToken | None


COMMAND_REQUEST: contextvars.ContextVar[CommandRequest | None] = contextvars.ContextVar("command_request", default=None)


class Refused(Exception):
    """A message that is not what it claims to be; ``code`` is its JSON-RPC error."""

    def __init__(self, message: str, code: int = JsonRpcInvalidRequest.CODE):
        super().__init__(message)
        self.code = code


def valid_id(msg_id: object) -> bool:
    """LSP ids are integers or strings (JSON-RPC's null and fractions are not; a bool is not an int here)."""
    return type(msg_id) is int or type(msg_id) is str


def has_non_finite(value: object) -> bool:
    """NaN, Infinity or -Infinity anywhere: Python's json reads them, JSON has no such numbers."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return True
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def end_process_within(seconds: float, code: int) -> None:
    """After ``exit`` the process must end even if the orderly teardown hangs (a task that ignores
    cancellation, a thread blocked in a read that asyncio's executor shutdown would wait for)."""

    def end() -> None:
        time.sleep(seconds)
        log.warning("exit: the teardown took over %s s; ending the process", seconds)
        logging.shutdown()
        os._exit(code)

    threading.Thread(target=end, name="tandem-exit", daemon=True).start()


def _log_closing_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("shutdown: closing failed; answered anyway", exc_info=task.exception())


def end_process_now(code: int) -> None:
    """``exit`` over stdio: end at once. What is open was closed at ``shutdown`` (and every answer is
    written: the writer flushes each message); the interpreter's teardown would only keep the editor
    waiting, and eglot kills a server still running 0.1 s after ``exit`` (status 9)."""
    logging.shutdown()
    os._exit(code)


class TandemProtocol(LanguageServerProtocol):
    # shutdown is answered within cancelled_grace_s + shutdown_timeout_s whatever hangs: well inside the 3 s
    # Helix waits on :q before it gives up (and kills the server with the answer unsent)
    shutdown_timeout_s = 1.0  # for the server's shutdown handler; shutdown is answered by then regardless
    cancelled_grace_s = 0.5  # for cancelled requests to unwind (close their streams) before resources close
    exit_grace_s = 3.0  # the process ends by then after exit, whatever hangs

    def __init__(self, server, converter):
        super().__init__(server, converter)
        self.end_at_exit = False  # the server over stdio: the process ends the moment exit arrives
        self.shutting_down = False  # set when shutdown arrives; pygls's _shutdown only once it is answered
        self._shutdown_id: object = None  # the shutdown request's id
        self.exit_code: int | None = None
        self._closed = False  # after exit nothing more is written

    # -- reading: one message at a time, as a whole -------------------------------------------
    def structure_message(self, data):
        """``json.loads``'s object hook, called for every nested dict too: leave them all plain dicts;
        ``handle_message`` structures the top-level message."""
        return data

    def handle_message(self, message: Any) -> None:
        try:
            structured = self._admit(message)
        except Exception:  # a bug here must not leave the read loop with a half-handled message
            log.exception("could not handle a message")
            return
        if structured is not None:
            super().handle_message(structured)

    def _admit(self, message: Any):
        """The structured message to dispatch, or None when it was answered (or dropped) here."""
        if not isinstance(message, dict):
            kind = "an array (batches are not supported)" if isinstance(message, list) else type(message).__name__
            self._refuse(None, f"A message must be a JSON object, not {kind}")
            return None
        if "method" in message:
            if "id" in message:
                return self._admit_request(message)
            return self._admit_notification(message)
        if "id" in message and ("result" in message or "error" in message):
            return self._admit_response(message)
        msg_id = message.get("id")
        self._refuse(msg_id if valid_id(msg_id) else None, "Neither a request, a notification nor a response")
        return None

    def _admit_request(self, message: dict):
        msg_id, method = message["id"], message["method"]
        if not valid_id(msg_id):
            self._refuse(None, f"A request id must be an integer or a string, not {json.dumps(msg_id)[:40]}")
            return None
        try:
            if not isinstance(method, str):
                raise Refused("A method must be a string")
            if message.get("jsonrpc") != VERSION:
                raise Refused(f'"jsonrpc" must be "2.0", not {json.dumps(message.get("jsonrpc"))[:20]}')
            if has_non_finite(message):
                raise Refused("NaN and Infinity are not JSON numbers")
            if method in _NOTIFICATION_METHODS:
                raise Refused(f"{method} is a notification: it takes no id and gets no answer")
            if self.shutting_down:
                raise Refused("The server is shut down: it answers no requests after shutdown")
            try:
                request_type = self.get_message_type(method)
                if request_type is None:  # a method lsprotocol does not know: pygls's generic message
                    request_type, message = JsonRPCRequestMessage, {
                        "id": msg_id, "method": method, "jsonrpc": VERSION, "params": message.get("params")}
                return self._converter.structure(message, request_type)
            except Exception as exc:
                log.warning("invalid params for %s (id %r): %s", method, msg_id, exc)
                raise Refused(f"Invalid params for {method}", JsonRpcInvalidParams.CODE) from exc
        except Refused as refused:
            self._refuse(msg_id, str(refused), refused.code)
            return None

    def _admit_notification(self, message: dict):
        method = message["method"]
        if not isinstance(method, str) or message.get("jsonrpc") != VERSION or has_non_finite(message):
            log.warning("dropped an invalid notification: %.200s", message)
            return None
        if method in _REQUEST_METHODS:
            log.warning("dropped %s without an id: a request needs one", method)
            return None
        if self.shutting_down and method != types.EXIT:
            log.info("dropped %s after shutdown", method)
            return None
        try:
            notification_type = self.get_message_type(method)
            if notification_type is None:
                notification_type, message = JsonRPCNotification, {
                    "method": method, "jsonrpc": VERSION, "params": message.get("params")}
            return self._converter.structure(message, notification_type)
        except Exception as exc:
            log.warning("dropped %s with invalid params: %s", method, exc)
            return None

    def _admit_response(self, message: dict):
        """A client's answer to one of our requests; one that cannot be used fails that request."""
        msg_id = message["id"]
        if not valid_id(msg_id):
            log.warning("dropped a response with the id %.40r", msg_id)
            return None
        problem = None
        if message.get("jsonrpc") != VERSION:
            problem = '"jsonrpc" must be "2.0"'
        elif has_non_finite(message):
            problem = "NaN and Infinity are not JSON numbers"
        else:
            try:
                if "error" in message:
                    return self._converter.structure(message, types.ResponseErrorMessage)
                response_type = self._result_types.pop(msg_id, None)
                if response_type is None:
                    response_type, message = JsonRPCResponseMessage, {
                        "id": msg_id, "jsonrpc": VERSION, "result": message.get("result")}
                return self._converter.structure(message, response_type)
            except Exception as exc:
                problem = f"the response does not fit the request: {exc}"
        log.warning("invalid response to %r: %s", msg_id, problem)
        if msg_id in self._request_futures:  # whoever waits for it learns now, instead of never
            self._handle_response(msg_id, None, types.ResponseError(code=JsonRpcInvalidRequest.CODE, message=problem))
        return None

    def _refuse(self, msg_id: object, message: str, code: int = JsonRpcInvalidRequest.CODE) -> None:
        log.warning("refused a message (id %r): %s", msg_id, message)
        # a plain dict: lsprotocol's ResponseErrorMessage leaves out "id" when it is null
        self._send_data({"jsonrpc": VERSION, "id": msg_id, "error": {"code": code, "message": message}})

    def report_unreadable(self, error: Exception) -> bool:
        """Called with what the read loop caught; answers JSON that does not parse with a ParseError
        (id null: nothing in it can be trusted). False for any other error."""
        if not isinstance(error, UNREADABLE):
            return False
        self._refuse(None, f"Parse error: {str(error)[:200]}", JsonRpcParseError.CODE)
        return True

    # -- bookkeeping: nothing stays behind a finished handler ----------------------------------
    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        def forget_then(future):
            if self._request_futures.get(msg_id) is future:
                del self._request_futures[msg_id]
            callback(future)

        super()._execute_handler(msg_id, handler, forget_then, args, kwargs)

    def send_request(self, method, params=None, callback=None, msg_id=None):
        msg_id = str(uuid.uuid4()) if msg_id is None else msg_id
        future = super().send_request(method, params, callback, msg_id)

        def forget(done):  # answered, cancelled or timed out: the client's answer is no longer awaited
            if self._request_futures.get(msg_id) is done:
                del self._request_futures[msg_id]
            self._result_types.pop(msg_id, None)

        future.add_done_callback(forget)
        return future

    def request_future(self, msg_id: object):
        """The future pygls answers the request from; cancelled by ``$/cancelRequest``."""
        return self._request_futures.get(msg_id)

    def _send_data(self, data):
        if self._closed:  # after exit: the client has stopped reading, and stdout is closed
            return
        super()._send_data(data)

    # -- lifecycle ------------------------------------------------------------------------------
    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        """pygls's initialize, with the workspace it makes replaced by ours (``lsp.documents``: LSP's
        line endings, incremental changes by offset, no disk reads) before any handler sees it."""
        steps = super().lsp_initialize(params)
        result = None
        while True:
            try:
                step = steps.send(result)
            except StopIteration as done:
                self._adopt_workspace()
                if isinstance(done.value, types.InitializeResult):
                    done.value.capabilities.experimental = EXPERIMENTAL_CAPABILITIES
                return done.value
            self._adopt_workspace()  # pygls made its Workspace before yielding to the server's handler
            result = yield step

    def _adopt_workspace(self) -> None:
        if self._workspace is not None and not isinstance(self._workspace, TandemWorkspace):
            self._workspace = TandemWorkspace.adopt(self._workspace)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args):
        """Cancel what is in flight, close resources (bounded), answer null; refuse requests from now on."""
        self.shutting_down = True
        current = self._shutdown_id = self.msg_id
        cancelled = []
        # a copy: cancelling a future runs callbacks that remove entries (pygls iterated the dict itself)
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done() and future.cancel():
                cancelled.append(future)
        yield self._close_resources, (cancelled, args), None
        self._shutdown = True
        return None

    async def _close_resources(self, cancelled: list, args: tuple) -> None:
        """Bounded with ``asyncio.wait``, which never waits for what it gave up on (``wait_for`` waits for a
        timed-out task to finish cancelling: a closer that ignores cancellation would hold the answer)."""
        tasks = [f for f in cancelled if isinstance(f, asyncio.Future)]
        if tasks:
            await asyncio.wait(tasks, timeout=self.cancelled_grace_s)
        handler = self.fm.features.get(types.SHUTDOWN)
        if handler is None:
            return
        try:
            result = handler(*args)
        except Exception:
            log.exception("shutdown: closing failed; answering anyway")
            return
        if not inspect.isawaitable(result):
            return
        closing = asyncio.ensure_future(result)
        closing.add_done_callback(_log_closing_failure)
        await asyncio.wait({closing}, timeout=self.shutdown_timeout_s)
        if not closing.done():
            log.warning("shutdown: closing took over %s s; answering anyway", self.shutdown_timeout_s)
            closing.cancel()

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args):
        self.exit_code = 0 if self.shutting_down else 1
        self._shutdown = self.shutting_down  # what pygls's exit code reads
        self._answer_shutdown_now()
        if self.end_at_exit:
            end_process_now(self.exit_code)
        end_process_within(self.exit_grace_s, self.exit_code)
        self._closed = True  # what is cancelled during the teardown answers no one: stdout is closed
        return (yield from super().lsp_exit(*args))

    def _answer_shutdown_now(self) -> None:
        """``exit`` while ``shutdown`` is still closing (Helix sends the two back to back): the answer goes
        out first; closing is cut short (the process ends; after exit nothing more is written)."""
        # its future leaves _request_futures just before its answer is written (``_execute_handler``): while
        # it is there, done or not, the answer is not out yet
        if self._shutdown_id is not None and self._shutdown_id in self._request_futures:
            self._send_response(self._shutdown_id, result=None)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams):
        # set before pygls starts the handler's task, which copies this context
        COMMAND_REQUEST.set(CommandRequest(self.msg_id, params.work_done_token))
        return (yield from super().lsp_workspace__execute_command(params))

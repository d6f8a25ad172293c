"""``shutdown`` is answered within its bound whatever the closing does (issue 11): Helix waits 3 s on
``:q`` and eglot 1.5 s, then give up with the answer unsent."""

from __future__ import annotations

import asyncio
import time

from lsprotocol import types

from tandem_lsp.lsp.protocol import TandemProtocol
from tandem_lsp.lsp.server import TandemServer
from tests.unit.test_protocol import Wire, initialize, request


def test_the_bound_is_inside_what_editors_wait():
    assert TandemProtocol.cancelled_grace_s + TandemProtocol.shutdown_timeout_s <= 1.5


async def test_a_closer_that_ignores_cancellation_does_not_hold_the_answer():
    server = TandemServer()
    server.protocol.shutdown_timeout_s = 0.3
    release = asyncio.Event()
    cancelled = []

    @server.feature(types.SHUTDOWN)
    async def stubborn(ls, params):
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:  # swallowed: asyncio.wait_for would wait for it forever
                cancelled.append(True)

    wire = Wire(server)
    wire.send(initialize())
    await wire.answer(0)
    started = time.monotonic()
    wire.send(request(1, "shutdown"))
    assert (await wire.answer(1))["result"] is None
    assert time.monotonic() - started < 2
    await wire.until(lambda: cancelled)  # it was told to stop, and was not waited for
    release.set()
    wire.stop()


async def test_a_closer_that_raises_at_once_is_logged_and_shutdown_answered():
    server = TandemServer()

    @server.feature(types.SHUTDOWN)
    def fails_before_awaiting(ls, params):
        raise RuntimeError("no")

    wire = Wire(server)
    wire.send(initialize())
    await wire.answer(0)
    wire.send(request(1, "shutdown"))
    assert (await wire.answer(1))["result"] is None
    wire.stop()


async def test_exit_right_behind_shutdown_has_the_shutdown_answer_written_first(monkeypatch):
    # Helix 25.07 sends shutdown and exit back to back: the answer must not be lost to the exit
    import tandem_lsp.lsp.protocol as protocol

    monkeypatch.setattr(protocol, "end_process_within", lambda seconds, code: None)  # not this test process
    server = TandemServer()
    release = asyncio.Event()

    @server.feature(types.SHUTDOWN)
    async def slow(ls, params):
        await release.wait()

    wire = Wire(server)
    wire.send(initialize())
    await wire.answer(0)
    wire.send(request(1, "shutdown"))
    await wire.quiet(0.05)  # closing is under way
    wire.send({"jsonrpc": "2.0", "method": "exit"})
    await wire.until(lambda: wire.exit_code is not None)
    assert wire.exit_code == 0
    assert wire.answers(1) == [{"jsonrpc": "2.0", "id": 1, "result": None}]
    release.set()
    await wire.quiet(0.05)
    assert len(wire.answers(1)) == 1  # closing ended after exit: nothing more was written
    wire.stop()

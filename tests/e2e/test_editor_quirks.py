"""What Helix and Emacs eglot do differently (issue 11), end to end over stdio (pytest-lsp), with their
habits played by the client:

- Both send ``workspace/didChangeConfiguration`` at start and answer ``workspace/configuration`` with
  ``[null]``: the ``initializationOptions`` must survive. Helix sends its whole ``config`` table in the
  notification's ``settings`` (un-nested): it is applied as it comes, as is one nested under ``tandem``.
- ``shutdown`` during a completion whose model stream is in flight (a slow first token) is answered, and
  ``exit`` then ends the process with 0 (1 without ``shutdown``); also when ``exit`` follows ``shutdown``
  without waiting for its answer, as Helix 25.07 sends them.
- eglot never runs a completion item's command: an acceptance is counted from the document, once, whether
  or not the command comes too, and in either order.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from tests.e2e.conftest import Session, _structure_code_actions_by_shape, local_settings

URI = "file:///project/calc.py"
DOC = "def add(a, b):\n    \n\nprint(add(1, 2))\n"
DEAD = {"local": {"backend": "openai", "endpoint": "http://127.0.0.1:9/v1"}, "completion": {"debounceMs": 0}}


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def start(fake, tmp_path, init_options) -> tuple[Session, list]:
    """A server and an initialized client with eglot's recorded capabilities (``workspace.configuration``
    advertised, as Helix does too); returns the ``workspace/configuration`` sections it was asked for."""
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "tandem_lsp"],
        server_env={**os.environ, "TANDEM_STATE_DIR": str(tmp_path / "state")},
    )
    client = await config.start()
    _structure_code_actions_by_shape(client)
    asked: list = []
    answer = client.get_configuration

    def get_configuration(*, section=None, scope_uri=None):
        asked.append(section)
        return answer(section=section, scope_uri=scope_uri)  # nothing set: None, as Helix and eglot answer

    client.get_configuration = get_configuration
    init = await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("emacs"), initialization_options=init_options, root_uri="file:///project"))
    return Session(client=client, editor="emacs", fake=fake, init=init), asked


async def stop(s: Session) -> None:
    if s.client._server is not None and s.client._server.returncode is None:
        await asyncio.wait_for(s.client.shutdown_session(), 10)
    await s.client.stop()


async def completion_items(s: Session, line: int, character: int) -> list[types.CompletionItem]:
    """Ask until the server (still finding its model server) answers, as a user would ask again."""
    for _ in range(100):
        result = await s.complete(URI, line, character)
        if result is not None and result.items:
            return result.items
        await asyncio.sleep(0.1)
    raise AssertionError("no completion within 10 s")


# -- A: settings -------------------------------------------------------------------------------
@pytest.mark.parametrize("pushed", [None, {}], ids=["null", "empty"])
async def test_a_null_configuration_keeps_the_initialization_options(fake, tmp_path, pushed):
    s, asked = await start(fake, tmp_path, local_settings(fake))
    try:
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=pushed))
        await until(lambda: "tandem" in asked)  # the server pulled, and got [null]
        s.open(URI, DOC)
        items = await completion_items(s, 1, 4)
        assert items[0].text_edit.new_text == "return a + b"
        assert fake.generation_requests()  # at the endpoint of the initializationOptions
    finally:
        await stop(s)


@pytest.mark.parametrize("nested", [False, True], ids=["helix-un-nested", "under-tandem"])
async def test_settings_in_the_notification_are_applied_as_they_come(fake, tmp_path, nested):
    s, asked = await start(fake, tmp_path, DEAD)  # started with an endpoint where nothing listens
    try:
        table = local_settings(fake)
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"tandem": table} if nested else table))
        s.open(URI, DOC)
        items = await completion_items(s, 1, 4)
        assert items[0].text_edit.new_text == "return a + b" and fake.generation_requests()
        assert asked == []  # settings came with the notification: nothing to pull (a [null] would not erase them)
    finally:
        await stop(s)


# -- B: shutdown and exit ----------------------------------------------------------------------
async def test_shutdown_is_answered_while_a_model_stream_is_in_flight_and_exit_ends_the_process(fake, tmp_path):
    fake.first_token_latency = 30.0  # the model has not sent a token yet
    s, _ = await start(fake, tmp_path, local_settings(fake, debounceMs=0))
    try:
        s.open(URI, DOC)
        pending = s.complete(URI, 1, 4)
        await until(fake.generation_requests)
        assert await asyncio.wait_for(s.client.shutdown_async(None), 10) is None
        done, _ = await asyncio.wait({pending}, timeout=10)
        assert done  # the completion in flight was answered too (empty, or cancelled)
        assert await asyncio.to_thread(fake.wait_for_hangup, 10)  # its model stream was closed
        s.client.exit(None)
        assert await asyncio.wait_for(s.client._server.wait(), 10) == 0
    finally:
        await stop(s)


async def test_shutdown_and_exit_back_to_back_still_answer_shutdown(fake, tmp_path):
    # Helix 25.07 on :q sends shutdown and, without waiting, exit: the answer is written before the end
    fake.first_token_latency = 30.0
    s, _ = await start(fake, tmp_path, local_settings(fake, debounceMs=0))
    try:
        s.open(URI, DOC)
        s.complete(URI, 1, 4)
        await until(fake.generation_requests)
        answered = asyncio.ensure_future(s.client.shutdown_async(None))
        await asyncio.sleep(0)  # the request is written
        s.client.exit(None)
        assert await asyncio.wait_for(answered, 10) is None
        assert await asyncio.wait_for(s.client._server.wait(), 10) == 0
    finally:
        await stop(s)


async def test_exit_without_shutdown_ends_the_process_with_1(fake, tmp_path):
    s, _ = await start(fake, tmp_path, local_settings(fake))
    try:
        s.client.exit(None)
        assert await asyncio.wait_for(s.client._server.wait(), 10) == 1
    finally:
        await stop(s)


# -- C: acceptances ------------------------------------------------------------------------------
def apply(s: Session, edit: types.TextEdit) -> None:
    """The item's edit, sent as an editor does once it has applied it."""
    s.version[URI] += 1
    s.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=s.version[URI]),
        content_changes=[types.TextDocumentContentChangePartial(range=edit.range, text=edit.new_text)],
    ))


async def accepted(s: Session) -> dict:
    stats = await s.client.workspace_execute_command_async(types.ExecuteCommandParams(command="tandem.stats"))
    return stats["completions"]["accepted"]


@pytest.mark.parametrize("command", ["never", "after the change", "before the change"])
async def test_an_accepted_suggestion_is_counted_once_with_or_without_its_command(fake, tmp_path, command):
    s, _ = await start(fake, tmp_path, local_settings(fake))
    try:
        s.open(URI, DOC)
        item = (await completion_items(s, 1, 4))[0]
        run = types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
        if command == "before the change":  # Neovim sends didChange debounced: the command can come first
            await s.client.workspace_execute_command_async(run)
        apply(s, item.text_edit)
        if command == "after the change":  # VS Code's order
            await s.client.workspace_execute_command_async(run)
        assert sum((await accepted(s)).values()) == 1
        # typing on by hand counts nothing more
        s.type(URI, 1, 16, "\n")
        assert sum((await accepted(s)).values()) == 1
    finally:
        await stop(s)

"""End-to-end fixtures: the real server as a subprocess over stdio (pytest-lsp), a real HTTP fake
model server on 127.0.0.1, and every test run as both VS Code and Neovim (their recorded client
capabilities)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Union

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.fakes.model_server import FakeModelServer

EDITORS = {"vscode": "visual-studio-code", "neovim": "neovim"}


@pytest.fixture
def fake():
    server = FakeModelServer(completion="return a + b\n").start()
    yield server
    server.stop()


@dataclass
class Session:
    """A started server and a client that has initialized it."""

    client: LanguageClient
    editor: str
    fake: FakeModelServer
    init: types.InitializeResult
    version: dict[str, int] = field(default_factory=dict)

    def open(self, uri: str, text: str, language_id: str = "python") -> None:
        self.version[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
            )
        )

    def type(self, uri: str, line: int, character: int, text: str) -> None:
        """Insert ``text`` at a position with an incremental change, as an editor does per keystroke."""
        self.version[uri] += 1
        pos = types.Position(line=line, character=character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.version[uri]),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text=text)],
            )
        )

    def inline(self, uri: str, line: int, character: int, *, invoked: bool = False):
        kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
        return asyncio.ensure_future(  # sent now, awaited when the test wants the answer
            self.client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.InlineCompletionContext(trigger_kind=kind),
                )
            )
        )

    def complete(self, uri: str, line: int, character: int):
        return asyncio.ensure_future(
            self.client.text_document_completion_async(
                types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
                )
            )
        )


def local_settings(fake: FakeModelServer, **completion: Any) -> dict:
    return {
        "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "timeoutMs": 2000},
        "completion": {"debounceMs": 0, **completion},
    }


async def start_session(
    editor: str, fake: FakeModelServer, settings: dict | None, env: dict | None = None, root_uri: str = "file:///project"
) -> Session:
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "tandem_lsp"],
        server_env={**os.environ, **(env or {})},
    )
    client = await config.start()
    _structure_code_actions_by_shape(client)
    init = await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(EDITORS[editor]),
            initialization_options=settings,
            root_uri=root_uri,
        )
    )
    return Session(client=client, editor=editor, fake=fake, init=init)


def _structure_code_actions_by_shape(client: LanguageClient) -> None:
    """lsprotocol's client-side hook reads any object with a "command" key as a Command, so a
    CodeAction that carries a command would come back as one. Tell them apart as editors do:
    a Command's "command" is a string."""
    converter = client.protocol._converter

    def hook(obj: Any, _type: Any):
        kind = types.Command if isinstance(obj.get("command"), str) else types.CodeAction
        return converter.structure(obj, kind)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], hook)


@pytest.fixture(params=sorted(EDITORS))
def editor(request) -> str:
    return request.param


@pytest_asyncio.fixture
async def session(editor, fake, request):
    """A session with settings from an optional ``@pytest.mark.settings({...})`` (default: the fake, no debounce)."""
    marker = request.node.get_closest_marker("settings")
    settings = marker.args[0](fake) if marker else local_settings(fake)
    s = await start_session(editor, fake, settings)
    yield s
    await s.client.shutdown_session()
    await s.client.stop()

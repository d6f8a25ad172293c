"""Next-edit suggestions end to end: the server over stdio (as VS Code and as Neovim), the fake model
server answering each template's prompt with a scripted rewrite (tests/fakes/next_edit_model.py)."""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio
from lsprotocol import types

from tandem_lsp.lsp.convert import plain
from tests.e2e.conftest import start_session
from tests.fakes.model_server import FakeModelServer
from tests.fakes.next_edit_model import next_edit_script, window_in

URI = "file:///project/geometry.py"
SOURCE = (
    "def area(width, height):\n"
    "    \"\"\"The area of a rectangle.\"\"\"\n"
    "    if width < 0:\n"
    "        raise ValueError(width)\n"
    "    return width * height\n"
    "\n"
    "\n"
    "total = area(2, 3)\n"
    "other = area(4, 5)\n"
)


def rename(old: str, new: str):
    return lambda window, path: re.sub(rf"\b{old}\b", new, window)


def settings_for(fake: FakeModelServer, template: str = "instruct", **extra) -> dict:
    return {
        "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "timeoutMs": 2000},
        "completion": {"debounceMs": 0},
        "nextEdit": {"enabled": True, "template": template, "debounceMs": 50, **extra},
    }


async def until(predicate, timeout: float = 5.0) -> bool:
    """Wait for ``predicate`` without blocking the client's event loop (FakeModelServer.wait_for would)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def is_next_edit(rec) -> bool:
    return isinstance(rec.body, dict) and window_in(rec.body) is not None


@pytest_asyncio.fixture
async def nes(editor, request):
    """A session whose fake model answers next-edit prompts with the test's ``rewrite`` (marker)."""
    marker = request.node.get_closest_marker("rewrite")
    rewrite = marker.args[0] if marker else rename("width", "w")
    template = marker.kwargs.get("template", "instruct") if marker else "instruct"
    fake = FakeModelServer(script=next_edit_script(rewrite), chunk_size=8).start()
    s = await start_session(editor, fake, settings_for(fake, template))
    yield s
    await s.client.shutdown_session()
    await s.client.stop()
    fake.stop()


def replace(s, uri: str, line: int, start: int, end: int, text: str) -> None:
    s.version[uri] += 1
    rng = types.Range(start=types.Position(line=line, character=start), end=types.Position(line=line, character=end))
    s.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=s.version[uri]),
        content_changes=[types.TextDocumentContentChangePartial(range=rng, text=text)]))


async def ask(s, uri: str, line: int, character: int, version: int | None = None) -> dict:
    params = {"textDocument": {"uri": uri, "version": s.version[uri] if version is None else version},
              "position": {"line": line, "character": character}}
    result = await s.client.protocol.send_request_async("textDocument/copilotInlineEdit", params)
    return result if isinstance(result, dict) else _as_dict(result)


def _as_dict(obj):
    """pygls hands back an unknown method's result as nested named tuples: make plain data of it."""
    return plain(obj)


def apply(text: str, edit: dict) -> str:
    lines = text.split("\n")
    r = edit["range"]
    start = sum(len(x) + 1 for x in lines[: r["start"]["line"]]) + r["start"]["character"]
    end = sum(len(x) + 1 for x in lines[: r["end"]["line"]]) + r["end"]["character"]
    return text[:start] + edit["text"] + text[end:]


async def stats(s) -> dict:
    return await s.client.workspace_execute_command_async(types.ExecuteCommandParams(command="tandem.stats"))


def test_initialize_advertises_next_edits(nes):
    assert nes.init.capabilities.experimental["copilotInlineEdit"] is True


async def test_a_renamed_parameter_is_renamed_at_its_next_use(nes):
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")  # def area(w, height):
    text = SOURCE.replace("area(width,", "area(w,")
    answer = await ask(nes, URI, 0, 10)
    edits = answer["edits"]
    assert edits, answer
    first = edits[0]
    assert first["text"] == "w" and first["range"]["start"]["line"] == 2  # the next use: `if width < 0:`
    assert first["textDocument"] == {"uri": URI, "version": nes.version[URI]}
    assert first["command"]["command"] == "tandem.acceptNextEdit"
    done = text
    for edit in sorted(edits, key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
                       reverse=True):
        done = apply(done, edit)
    assert done == SOURCE.replace("width", "w")
    assert any(is_next_edit(r) for r in nes.fake.generation_requests())


async def test_accepting_one_edit_leaves_the_rest_of_the_set_without_a_model_call(nes):
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    first = (await ask(nes, URI, 0, 10))["edits"][0]
    calls = sum(is_next_edit(r) for r in nes.fake.generation_requests())
    nes.client.protocol.notify("textDocument/didShowInlineEdit", {"item": first})
    r = first["range"]
    replace(nes, URI, r["start"]["line"], r["start"]["character"], r["end"]["character"], first["text"])
    await nes.client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=first["command"]["command"], arguments=first["command"]["arguments"]))
    rest = (await ask(nes, URI, 2, 8))["edits"]
    assert [e["range"]["start"]["line"] for e in rest] == [3, 4]
    assert sum(is_next_edit(r) for r in nes.fake.generation_requests()) == calls
    counted = (await stats(nes))["nextEdit"]
    assert counted["shown"] == 1 and counted["accepted"] == 1 and counted["requests"] == 2
    assert counted["latencyMsP50"] is not None


@pytest.mark.rewrite(lambda w, p: w.replace("area(4, 5)", "area(4, 5, unit)"), template="sweep")
async def test_an_added_argument_is_offered_at_the_next_call_site(nes):
    nes.open(URI, SOURCE)
    replace(nes, URI, 7, 17, 17, ", unit")  # total = area(2, 3, unit)
    edits = (await ask(nes, URI, 7, 23))["edits"]
    assert len(edits) == 1
    assert edits[0]["range"]["start"]["line"] == 8 and edits[0]["text"] == ", unit"


@pytest.mark.rewrite(rename("width", "w"), template="zeta")
async def test_the_zeta_template_end_to_end(nes):
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    edits = (await ask(nes, URI, 0, 10))["edits"]
    assert [e["range"]["start"]["line"] for e in edits] == [2, 3, 4]


async def test_a_stale_version_gets_no_edits(nes):
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    assert (await ask(nes, URI, 0, 10, version=nes.version[URI] - 1)) == {"edits": []}
    assert not any(is_next_edit(r) for r in nes.fake.generation_requests())


async def test_an_edit_after_the_request_makes_its_answer_stale(nes):
    nes.fake.latency_for = lambda rec: 0.6 if is_next_edit(rec) else None
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    pending = asyncio.ensure_future(ask(nes, URI, 0, 10))
    await asyncio.sleep(0.3)
    replace(nes, URI, 8, 0, 0, "# ")
    assert (await pending) == {"edits": []}


@pytest.mark.rewrite(lambda w, p: w.replace("    return width * height", "    return (width * height"))
async def test_a_rewrite_that_breaks_parsing_gets_nothing(nes):
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 4, 8, "surface")
    assert (await ask(nes, URI, 0, 10)) == {"edits": []}
    assert any(is_next_edit(r) for r in nes.fake.generation_requests())  # it was asked, and its answer dropped


async def test_no_edit_yet_means_no_model_call(nes):
    nes.open(URI, SOURCE)
    assert (await ask(nes, URI, 2, 4)) == {"edits": []}
    assert not any(is_next_edit(r) for r in nes.fake.generation_requests())


async def test_a_newer_request_supersedes_and_closes_the_stream(nes):
    nes.fake.latency_for = lambda rec: 3.0 if is_next_edit(rec) else None
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    first = asyncio.ensure_future(ask(nes, URI, 0, 10))
    assert await until(lambda: any(is_next_edit(r) for r in nes.fake.generation_requests()))
    replace(nes, URI, 8, 0, 0, "# ")  # typed on: the rewrite being written is of no use now
    second = asyncio.ensure_future(ask(nes, URI, 8, 2))
    assert (await first) == {"edits": []}
    assert await until(lambda: any(r.hung_up for r in nes.fake.generation_requests() if is_next_edit(r)))
    await asyncio.wait_for(second, 10)


async def test_the_cursor_landing_in_the_window_waits_for_the_rewrite_being_written(nes):
    nes.fake.latency_for = lambda rec: 0.8 if is_next_edit(rec) else None
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    first = asyncio.ensure_future(ask(nes, URI, 0, 10))
    assert await until(lambda: any(is_next_edit(r) for r in nes.fake.generation_requests()))
    landed = await ask(nes, URI, 2, 7)  # the user moved to the next use while the model was writing
    assert (await first) == {"edits": []}
    assert landed["edits"] and landed["edits"][0]["range"]["start"]["line"] == 2
    assert sum(is_next_edit(r) for r in nes.fake.generation_requests()) == 1
    assert (await stats(nes))["nextEdit"]["joined"] == 1


async def test_inline_completion_is_not_delayed_by_a_pending_next_edit(nes):
    nes.fake.latency_for = lambda rec: 5.0 if is_next_edit(rec) else 0.0
    nes.open(URI, SOURCE)
    replace(nes, URI, 0, 9, 14, "w")
    pending = asyncio.ensure_future(ask(nes, URI, 0, 10))
    assert await until(lambda: any(is_next_edit(r) for r in nes.fake.generation_requests()))
    nes.type(URI, 8, 18, "\n")
    items = await nes.inline(URI, 9, 0, invoked=True)
    assert items is not None and items.items  # answered by the model, with the next edit's call pending
    # the next edit's stream was closed for the completion: the model had one call at a time
    assert await until(lambda: any(r.hung_up for r in nes.fake.generation_requests() if is_next_edit(r)))
    assert (await pending) == {"edits": []}


async def test_malformed_params_get_an_empty_answer(nes):
    for params in ({}, {"textDocument": {"uri": 3}}, {"textDocument": {"uri": URI}, "position": {"line": -1}}, []):
        result = await nes.client.protocol.send_request_async("textDocument/copilotInlineEdit", params)
        assert _as_dict(result) == {"edits": []}


@pytest.mark.parametrize("text", [
    "def area(width, height):\n    return width\n" + "x = 1\n" * 400_000,  # a few MB
    "def area(width, height):\n    s = '\ud800'\n    return width\f\n",  # a lone surrogate, a form feed
    "def area(width, height):\r    return width\r\nprint(width)\r",  # the three LSP line endings
])
async def test_hostile_documents_get_one_valid_answer(nes, text):
    nes.open(URI, text)
    replace(nes, URI, 0, 9, 14, "w")
    answer = await asyncio.wait_for(ask(nes, URI, 0, 10), 30)
    assert isinstance(answer["edits"], list)
    for edit in answer["edits"]:
        assert edit["textDocument"]["version"] == nes.version[URI] and isinstance(edit["text"], str)
    # the server is still well: a completion is answered
    assert (await nes.inline(URI, 1, 4, invoked=True)) is not None

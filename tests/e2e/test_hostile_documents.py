"""Hostile documents end to end (issue 10, items 1, 2 and 7): ``python -m tandem_lsp`` over raw stdio
(tests/e2e/test_protocol_robustness.py's ``RawServer``) with the fake model server.

- Text that UTF-8 cannot encode (a lone surrogate, sent as the JSON escape an editor can send) or NUL,
  in another open document or a recent edit, does not break completions anywhere, nor make the status
  say "down" (item 1).
- A URI the editor did not open that names a FIFO, ``/dev/zero``, a directory or a huge file never
  freezes the server: every request naming one is answered, and the server stays usable (item 2).
- The server's copy of a document follows LSP's line endings (``\\n``, ``\\r\\n``, ``\\r``), not
  ``str.splitlines`` (item 7).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.conftest import local_settings
from tests.e2e.test_protocol_robustness import TEXT, URI, RawServer, assert_alive

LONE = "\ud800"


def started(tmp_path, fake, root) -> RawServer:
    """A server whose client supports neither progress nor showDocument (nothing waits on the client)."""
    server = RawServer(tmp_path)
    init = server.request(0, "initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {},
                                            "initializationOptions": local_settings(fake)})
    assert "capabilities" in init["result"]
    server.notify("initialized", {})
    server.notify("textDocument/didOpen",
                  {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}})
    return server


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "calc.py").write_text("def area(r):\n    return 3 * r * r / 0\n")
    os.mkfifo(root / "pipe.py")
    (root / "folder.py").mkdir()
    with open(root / "huge.py", "wb") as f:
        f.truncate(512 * 1024 * 1024)  # sparse: 512 MB that take no disk
    return root


@pytest.fixture
def server(tmp_path, fake, project):
    s = started(tmp_path, fake, project)
    yield s
    s.close()


def statuses(server: RawServer) -> list[str]:
    return [m["params"]["state"] for m in server.received if m.get("method") == "tandem/status"]


def prompts(fake) -> str:
    return json.dumps([r.body for r in fake.generation_requests()], ensure_ascii=False)


# -- item 1 --------------------------------------------------------------------------------
def test_a_lone_surrogate_in_another_open_document_breaks_no_completion(server, fake):
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": "file:///project/a.py", "languageId": "python", "version": 1, "text": f"s = '{LONE}'\0\n"}})
    for msg_id in (1, 2, 3):
        assert_alive(server, msg_id)
    assert "down" not in statuses(server)
    assert "\ufffd" in prompts(fake)  # the snippet went along, the bad characters replaced


def test_a_lone_surrogate_in_a_recent_edit_outlives_its_document_harmlessly(server, fake):
    uri = "file:///project/b.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": "x = 1\n"}})
    change = {"range": {"start": {"line": 0, "character": 5}, "end": {"line": 0, "character": 5}}, "text": LONE}
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [change]})
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    for msg_id in (1, 2):
        assert_alive(server, msg_id)
    assert "down" not in statuses(server)


# -- item 2 --------------------------------------------------------------------------------
ODD = ["pipe.py", "folder.py", "huge.py", "/dev/zero"]


def odd_uri(project, name: str) -> str:
    return "file:///dev/zero" if name == "/dev/zero" else (project / name).as_uri()


@pytest.mark.parametrize("name", ODD)
def test_completions_in_an_unopened_odd_file_are_answered_at_once(server, project, name):
    uri = odd_uri(project, name)
    position = {"line": 0, "character": 0}
    answer = server.request(1, "textDocument/completion",
                            {"textDocument": {"uri": uri}, "position": position}, timeout=5)
    assert answer["result"]["items"] == []
    answer = server.request(2, "textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}}, timeout=5)
    assert answer["result"] is None
    assert_alive(server, 3)


@pytest.mark.parametrize("name", ODD)
def test_commands_and_code_actions_naming_an_odd_file_are_answered(server, project, name):
    uri = odd_uri(project, name)
    where = {"uri": uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 0}}}
    failure = f'Traceback (most recent call last):\n  File "{project}/{name}", line 1, in f\nValueError: x\n'
    requests = [
        ("workspace/executeCommand", {"command": "tandem.ask", "arguments": [{"prompt": "what is this?", **where}]}),
        ("workspace/executeCommand", {"command": "tandem.explainFailure", "arguments": [{"failure": failure, **where}]}),
        ("workspace/executeCommand", {"command": "tandem.planRefactor", "arguments": [{"goal": "split it", **where}]}),
        ("workspace/executeCommand", {"command": "tandem.explainCode", "arguments": [where]}),
        ("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": where["range"],
                                     "context": {"diagnostics": []}}),
        ("codeAction/resolve", {"title": "Tandem: Add a docstring", "data": {
            "action": "docstring", "uri": uri, "start": 0, "end": 1, "language": "python"}}),
    ]
    started_at = time.monotonic()
    for msg_id, (method, params) in enumerate(requests, start=1):
        answer = server.request(msg_id, method, params, timeout=10)
        assert "result" in answer, (method, answer)
    assert time.monotonic() - started_at < 30
    assert_alive(server, 100)


def test_a_change_to_an_unopened_document_is_ignored_quietly(server, project):
    uri = (project / "pipe.py").as_uri()
    change = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "x"}
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [change]})
    assert_alive(server, 1)
    assert not [m for m in server.received if m.get("method") == "window/showMessage"]


# -- item 7 --------------------------------------------------------------------------------
def test_the_servers_copy_follows_lsp_line_endings(server, fake):
    uri = "file:///project/ff.py"
    text = "a = 1\fb = 2\nm = "  # LSP: line 0 is "a = 1\fb = 2" (a form feed ends no line), line 1 is "m = "
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": text}})
    insert = {"range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 4}}, "text": "42"}
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [insert]})
    fake.reset()
    answer = server.request(1, "textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": {"line": 1, "character": 6}, "context": {"triggerKind": 1}})
    assert answer["result"]["items"]
    sent = prompts(fake)
    assert json.dumps("a = 1\fb = 2\nm = 42", ensure_ascii=False)[1:-1] in sent, sent
    assert "b = 422" not in sent and "b = 242" not in sent


def test_a_carriage_return_alone_ends_a_line(server, fake):
    uri = "file:///project/cr.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": "x = 1\ry = \u2028z\r\nw = "}})
    insert = {"range": {"start": {"line": 1, "character": 6}, "end": {"line": 1, "character": 6}}, "text": "!"}
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [insert]})
    fake.reset()
    answer = server.request(1, "textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": {"line": 2, "character": 4}, "context": {"triggerKind": 1}})
    assert answer["result"]["items"]
    assert json.dumps("x = 1\ry = \u2028z!\r\nw = ", ensure_ascii=False)[1:-1] in prompts(fake)

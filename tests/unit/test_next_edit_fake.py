"""The fake next-edit model agrees with the server's templates: it finds the window in each template's
request, its answers parse back into the rewritten window, they fit the answer budget the fake server
counts in chunks, and its script answers next-edit requests and leaves other requests to a fallback."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace

import pytest

from tandem_lsp.completion.request import PromptContext
from tandem_lsp.completion.templating import TEMPLATES as FIM_TEMPLATES
from tandem_lsp.next_edit.templates import TEMPLATES, answer_budget
from tandem_lsp.next_edit.types import FileDiff, NextEditContext
from tests.fakes.model_server import DEFAULT_COMPLETION, FakeModelServer, RecordedRequest, _pieces
from tests.fakes.next_edit_model import answer_for, next_edit_script, window_in

BASE = NextEditContext(
    path="pkg/calc.py",
    language_id="python",
    diffs=(FileDiff("pkg/calc.py", "@@ -1 +1 @@\n-def add(a, b):\n+def add(a, b, c):\n"),),
    before="import os\n\n",
    window="def add(a, b, c):\n    return a + b\n\nprint(add(1, 2))\n",
    original="def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    cursor=15,
    after="x = 1\n",
    window_start_line=2,
)
CONTEXTS = {
    "plain": BASE,
    "file start": replace(BASE, before="", window_start_line=0, cursor=0),
    "end of file": replace(BASE, window="x = 1\ny = 2", original="x = 1\ny = 2", cursor=11, after=""),
    "empty": replace(BASE, window="", original="", cursor=0, after="", diffs=()),
    "crlf": replace(BASE, window="a = 1\r\nb = 2\r\n", original="a = 1\r\n", cursor=3),
    "backticks": replace(BASE, path="docs/README.md", language_id="markdown", window="Run:\n```sh\nmake\n```\n"),
    "spaces in path": replace(BASE, path="src/my app/main.py"),
}


def _body(name: str, ctx: NextEditContext) -> dict:
    t = TEMPLATES[name]
    return {"messages": t.build_messages(ctx)} if t.is_chat else {"prompt": t.build(ctx)}


def _seen(name: str, ctx: NextEditContext) -> str:
    """The window as the fake can read it: sweep and instruct prompts do not show a missing final newline."""
    if name == "zeta" or not ctx.window or ctx.window.endswith("\n"):
        return ctx.window
    return ctx.window + "\n"


def _shaped(ctx: NextEditContext, new: str) -> str:
    return new if ctx.window.endswith("\n") or not new.endswith("\n") else new[:-1]


@pytest.mark.parametrize("case", sorted(CONTEXTS))
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_fake_finds_the_window_and_its_answers_parse(name, case):
    ctx, t = CONTEXTS[case], TEMPLATES[name]
    body = _body(name, ctx)
    assert window_in(body) == (name, _seen(name, ctx), ctx.path)
    assert window_in(body.get("prompt") or body.get("messages")) == (name, _seen(name, ctx), ctx.path)
    assert t.parse(answer_for(name, _seen(name, ctx), body), ctx) == ctx.window
    new = _seen(name, ctx).replace("2", "3") + ("z = 0\r\n" if "\r" in ctx.window else "z = 0\n")
    assert t.parse(answer_for(name, new, body), ctx) == _shaped(ctx, new)


@pytest.mark.parametrize("body", [
    None,
    {},
    {"prompt": FIM_TEMPLATES["qwen"].build(PromptContext("def f():\n    ", "\n", "a.py", "python"))},
    {"prompt": ["tokens"]},
    {"input_prefix": "def f():", "input_suffix": "\n"},
    {"messages": FIM_TEMPLATES["chat"].build_messages(PromptContext("x = ", "\n", "a.py", "python"))},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]},
    {"messages": "not a list"},
])
def test_other_requests_are_not_next_edit_requests(body):
    assert window_in(body) is None


def test_chat_content_given_as_parts():
    messages = TEMPLATES["instruct"].build_messages(BASE)
    parts = [messages[0], {"role": "user", "content": [{"type": "text", "text": messages[1]["content"]}]}]
    assert window_in({"messages": parts}) == ("instruct", BASE.window, BASE.path)


def _request(body, path="/completion") -> RecordedRequest:
    return RecordedRequest("POST", path, body, 0.0)


def test_script_rewrites_next_edit_requests_and_leaves_the_rest_to_the_fallback():
    calls = []

    def rewrite(window: str, path: str) -> str | None:
        calls.append((window, path))
        return window.replace("print(add(1, 2))", "print(add(1, 2, 3))") if path.endswith("calc.py") else None

    script = next_edit_script(rewrite)
    for name, t in TEMPLATES.items():
        answer = script(_request(_body(name, BASE)))
        assert t.parse(answer, BASE) == BASE.window.replace("(1, 2)", "(1, 2, 3)")
    assert calls == [(BASE.window, BASE.path)] * 3
    other = replace(BASE, path="other.py")
    for name, t in TEMPLATES.items():  # None: the window unchanged
        assert t.parse(script(_request(_body(name, other))), other) == other.window

    fim = _request({"prompt": "<|fim_prefix|>x<|fim_suffix|><|fim_middle|>"})
    assert script(fim) == DEFAULT_COMPLETION
    assert next_edit_script(rewrite, "pass\n")(fim) == "pass\n"
    assert next_edit_script(rewrite, lambda r: r.path)(fim) == "/completion"


@pytest.mark.parametrize("chunk_size", [2, 3, 4])
@pytest.mark.parametrize("cpt", [None, 2.5, 3.5])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_an_answer_fits_the_budget_the_fake_server_counts(name, cpt, chunk_size):
    t = TEMPLATES[name]
    for ctx in (*CONTEXTS.values(), replace(BASE, window=BASE.window * 10)):
        grown = _seen(name, ctx) + "def more():\n    return 1\n" * 3
        for new in (_seen(name, ctx), grown):
            text = answer_for(name, new, _body(name, ctx))
            pieces, finish = _pieces(text, list(t.stop), answer_budget(ctx, cpt, t), chunk_size)
            assert finish == "stop", (name, cpt, chunk_size)
            assert t.parse("".join(pieces), ctx) is not None


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_over_http_with_the_fake_server():
    script = next_edit_script(lambda window, path: window.replace("(1, 2)", "(1, 2, 3)"))
    with FakeModelServer(script=script) as server:
        for name in ("sweep", "zeta"):
            t = TEMPLATES[name]
            body = {"prompt": t.build(BASE), "stop": list(t.stop), "n_predict": answer_budget(BASE, None, t)}
            reply = _post(server.url + "/completion", body)
            assert reply["stop"] and not reply.get("stopped_limit")
            assert t.parse(reply["content"], BASE) == BASE.window.replace("(1, 2)", "(1, 2, 3)")
        t = TEMPLATES["instruct"]
        body = {"messages": t.build_messages(BASE), "max_tokens": answer_budget(BASE, None, t)}
        reply = _post(server.url + "/v1/chat/completions", body)
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert t.parse(reply["choices"][0]["message"]["content"], BASE) == BASE.window.replace("(1, 2)", "(1, 2, 3)")
        fim = _post(server.url + "/completion", {"prompt": "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"})
        assert fim["content"] == DEFAULT_COMPLETION

"""Inline and classic completion end to end: real server subprocess, real HTTP fake model."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from tests.e2e.conftest import local_settings, start_session

URI = "file:///project/calc.py"
DOC = "def add(a, b):\n    \n\nprint(add(1, 2))\n"


def prompts(fake) -> list[str]:
    return [r.body.get("prompt", "") for r in fake.generation_requests()]


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def first_answer(session, uri: str, line: int, character: int):
    """Ask until the server (still finding its model server) answers, as a user would press again."""
    result = None
    for _ in range(50):
        result = await session.inline(uri, line, character, invoked=True)
        if result is not None:
            break
        await asyncio.sleep(0.1)
    return result


async def test_inline_completion_from_local_model(session):
    session.open(URI, DOC)
    result = await session.inline(URI, 1, 4)
    assert result.items[0].insert_text == "return a + b"
    assert result.items[0].range == types.Range(start=types.Position(1, 4), end=types.Position(1, 4))
    body = session.fake.generation_requests()[0].body
    # Qwen FIM prompt (model name from /v1/models), raw prompt and no `suffix` (LM Studio has none)
    assert body["prompt"].endswith("<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>")
    assert "suffix" not in body and body["stream"] is True


async def test_server_advertises_its_features(session):
    caps = session.init.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert session.init.server_info.name == "tandem-lsp"


async def test_classic_completion_item_with_text_edit(session):
    session.fake.completion = "urn a + b\n"
    session.open(URI, "def add(a, b):\n    ret\n")
    result = await session.complete(URI, 1, 7)
    item = result.items[0]
    assert result.is_incomplete
    assert item.text_edit.new_text == "return a + b"
    assert item.text_edit.range == types.Range(start=types.Position(1, 4), end=types.Position(1, 7))
    assert item.filter_text.startswith("ret")


@pytest.mark.settings(lambda fake: local_settings(fake, debounceMs=300))
async def test_debounce_sends_one_model_call_for_a_burst_of_keys(session):
    session.open(URI, "def add(a, b):\n    \n")
    pending = []
    for i, ch in enumerate("x = 1"):
        session.type(URI, 1, 4 + i, ch)
        pending.append(session.inline(URI, 1, 5 + i))
        await asyncio.sleep(0.02)
    results = await asyncio.gather(*pending)
    assert all(r is None for r in results[:-1])  # latest wins: earlier keystrokes answered with null
    assert len(session.fake.generation_requests()) <= 1 + 1  # the burst's one call (+ at most its prefetch)
    first = session.fake.generation_requests()[0].body["prompt"]
    assert "x = 1<|fim_suffix|>" in first


@pytest.mark.settings(lambda fake: local_settings(fake, debounceMs=2000))
async def test_explicit_trigger_skips_debounce(session):
    session.open(URI, DOC)
    result = await asyncio.wait_for(session.inline(URI, 1, 4, invoked=True), timeout=1.5)
    assert result.items[0].insert_text == "return a + b"


async def test_cancel_request_closes_the_model_stream(session):
    session.fake.first_token_latency = 30.0
    session.open(URI, DOC)
    fut = asyncio.ensure_future(session.client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(1, 4),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        ),
        msg_id="cancel-me",
    ))
    await until(lambda: session.fake.generation_requests())
    session.client.protocol.notify("$/cancelRequest", types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(fut, 5)
    assert session.fake.wait_for_hangup(timeout=5)


async def test_newer_keystroke_supersedes_inflight_completion(session):
    session.fake.first_token_latency = 30.0
    session.open(URI, DOC)
    first = session.inline(URI, 1, 4, invoked=True)
    await until(lambda: session.fake.generation_requests())
    session.type(URI, 0, 0, "#")  # an edit elsewhere: the in-flight output no longer fits
    session.fake.first_token_latency = 0.0
    second = session.inline(URI, 1, 4, invoked=True)
    assert await asyncio.wait_for(first, 5) is None  # answered with null, no cancel needed
    assert session.fake.wait_for_hangup(timeout=5)  # its HTTP call was closed
    assert (await second).items[0].insert_text == "return a + b"


async def test_typing_into_inflight_output_reuses_it(session):
    session.fake.first_token_latency = 0.6
    session.open(URI, DOC)
    first = session.inline(URI, 1, 4, invoked=True)
    await until(lambda: session.fake.generation_requests())
    session.type(URI, 1, 4, "r")
    second = session.inline(URI, 1, 5, invoked=True)
    assert await first is None
    assert (await second).items[0].insert_text == "eturn a + b"
    assert len([p for p in prompts(session.fake) if p.endswith("<|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>")
                and "    r<|fim_suffix|>" in p]) == 0  # no call was started for the typed "r"


async def test_typed_through_answers_without_model_call(session):
    session.open(URI, DOC)
    assert (await session.inline(URI, 1, 4)).items[0].insert_text == "return a + b"
    for i, ch in enumerate("ret"):
        session.type(URI, 1, 4 + i, ch)
        result = await session.inline(URI, 1, 5 + i)
        assert result.items[0].insert_text == "return a + b"[i + 1 :]
    for p in prompts(session.fake):  # only the first call and the speculative one after "return a + b"
        assert p.split("<|fim_suffix|>")[0].endswith(("    ", "return a + b")), p


@pytest.mark.parametrize("fault", ["error", "hang", "drop", "garbage", "slow", "down"])
@pytest.mark.settings(lambda fake: {**local_settings(fake), "local": {**local_settings(fake)["local"], "timeoutMs": 700}})
async def test_model_fault_returns_nothing_then_recovers(session, fault):
    session.fake.fault = fault
    session.open(URI, DOC)
    assert await asyncio.wait_for(session.inline(URI, 1, 4, invoked=True), 5) is None
    assert await asyncio.wait_for(session.inline(URI, 1, 4, invoked=True), 5) is None
    down = [m for m in session.client.log_messages if "unavailable" in m.message]
    assert len(down) == 1  # reported once, not on every keystroke
    session.fake.fault = None
    result = await asyncio.wait_for(session.inline(URI, 1, 4, invoked=True), 5)
    assert result.items[0].insert_text == "return a + b"
    await until(lambda: any("back" in m.message for m in session.client.log_messages))


@pytest.mark.settings(lambda fake: {**local_settings(fake), "local": {**local_settings(fake)["local"], "timeoutMs": 1000}})
async def test_a_slow_long_answer_shows_its_complete_lines(session):
    """A model that is alive but slower than local.timeoutMs for a long multi-line answer: the lines it
    finished in time are shown, and it is not reported as failing."""
    session.fake.completion = "total = a + b\n    " + "x" * 400 + "\n"
    session.fake.token_latency = 0.15  # 4 characters per chunk: the first line in 0.45 s, the rest in 15 s
    session.open(URI, DOC)
    result = await asyncio.wait_for(session.inline(URI, 1, 4, invoked=True), 10)
    assert result.items[0].insert_text == "total = a + b"
    assert not [m for m in session.client.log_messages if "unavailable" in m.message]


async def test_five_megabyte_document_keeps_prompt_bounded(session):
    line = "value = compute(alpha, beta, gamma)  # a fairly ordinary line of code\n"
    big = line * (5_000_000 // len(line))
    text = big + "def add(a, b):\n    \n" + big
    session.open(URI, text)
    cursor_line = big.count("\n") + 1
    result = await asyncio.wait_for(session.inline(URI, cursor_line, 4, invoked=True), 20)
    assert result.items[0].insert_text == "return a + b"
    prompt = prompts(session.fake)[0]
    assert len(prompt) <= 8000 + 2000 + 200  # maxPrefixChars + maxSuffixChars + template tokens


async def test_odd_positions_and_bad_params_get_answers(session):
    session.open(URI, DOC)
    odd = await session.inline(URI, 999, 999, invoked=True)  # past the end: clamped, answered
    assert odd is None or odd.items[0].insert_text
    from concurrent.futures import Future

    answers = {msg_id: Future() for msg_id in ("bad-1", "bad-2")}
    session.client.protocol._request_futures.update(answers)  # so the client keeps their answers
    stdin = session.client._server.stdin  # raw bytes: a request with junk params, then broken JSON
    for body in (
        b'{"jsonrpc":"2.0","id":"bad-1","method":"textDocument/inlineCompletion","params":{"bogus":1}}',
        b'{"jsonrpc":"2.0","id":"bad-2","method":"textDocument/inlineCompletion","params":{"textDocument":'
        b'{"uri":"file:///nowhere.py"},"position":{"line":-5,"character":3},"context":{"triggerKind":1}}}',
        b"{{{ not json",
    ):
        stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await stdin.drain()
    # every request is answered (here with an error), even one whose params pygls cannot parse
    done, pending = await asyncio.wait([asyncio.wrap_future(f) for f in answers.values()], timeout=5)
    assert not pending and all(f.exception() is not None or f.result() is None for f in done)
    result = await session.inline(URI, 1, 4, invoked=True)  # still alive and serving
    assert result.items[0].insert_text == "return a + b"


@pytest.mark.settings(lambda fake: {"local": {"backend": "openai", "endpoint": "http://127.0.0.1:9/v1"},
                                    "completion": {"debounceMs": 0, "multiline": "sometimes"}})
async def test_settings_change_at_run_time(session):
    await until(lambda: session.client.messages)
    assert "completion.multiline" in session.client.messages[0].message  # bad value reported ...
    session.open(URI, DOC)
    assert await session.inline(URI, 1, 4, invoked=True) is None  # nothing listens on port 9
    session.client.set_configuration({"tandem": local_settings(session.fake)})
    session.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    result = await first_answer(session, URI, 1, 4)
    assert result.items[0].insert_text == "return a + b"
    assert len([m for m in session.client.messages if "multiline" in m.message]) == 1  # ... once


async def test_auto_backend_finds_ollama(editor, fake):
    fake.dialects = {"ollama"}
    env = {"TANDEM_AUTO_ENDPOINTS": f"openai=http://127.0.0.1:9/v1,ollama={fake.url},llamacpp=http://127.0.0.1:9"}
    s = await start_session(editor, fake, {"completion": {"debounceMs": 0}}, env)
    try:
        s.open(URI, DOC)
        result = await first_answer(s, URI, 1, 4)
        assert result.items[0].insert_text == "return a + b"
        body = fake.generation_requests()[0].body
        assert fake.generation_requests()[0].path == "/api/generate"
        assert body["raw"] is True and body["think"] is False and "keep_alive" in body
    finally:
        await s.client.shutdown_session()
        await s.client.stop()


async def test_accepting_a_suggestion_is_answered_from_the_prefetch(session):
    session.fake.script = lambda request: (
        "return a + b\n" if request.body["prompt"].split("<|fim_suffix|>")[0].endswith("    ") else "\n\ndef sub(a, b):\n    return a - b\n"
    )
    session.open(URI, "def add(a, b):\n    \n")
    assert (await session.inline(URI, 1, 4)).items[0].insert_text == "return a + b"
    await until(lambda: len(session.fake.generation_requests()) == 2 and session.fake.generation_requests()[1].completed)
    assert session.fake.generation_requests()[1].body["prompt"].split("<|fim_suffix|>")[0].endswith("return a + b")
    session.type(URI, 1, 4, "return a + b")  # Tab: the whole suggestion at once
    result = await session.inline(URI, 1, 16)
    assert result.items[0].insert_text == "\n\ndef sub(a, b):\n    return a - b"
    # answered from the speculative call; any later call is the next prefetch, after this suggestion
    assert all(p.split("<|fim_suffix|>")[0].endswith("return a - b") for p in prompts(session.fake)[2:])


async def test_typing_through_while_the_prefetch_runs_does_not_cancel_it(session):
    session.open(URI, "def add(a, b):\n    \n")
    assert (await session.inline(URI, 1, 4)).items[0].insert_text == "return a + b"
    session.fake.first_token_latency = 0.3
    await until(lambda: len(session.fake.generation_requests()) == 2)
    session.type(URI, 1, 4, "r")
    assert (await session.inline(URI, 1, 5)).items[0].insert_text == "eturn a + b"
    await until(lambda: session.fake.generation_requests()[1].ended is not None)
    assert session.fake.generation_requests()[1].completed  # the speculative call was left to finish


@pytest.mark.settings(lambda fake: {**local_settings(fake), "local": {**local_settings(fake)["local"], "fimTemplate": "chat"}})
async def test_chat_template_asks_a_chat_model_to_fill_the_hole(session):
    session.fake.completion = "```python\nreturn a + b\n```\n"
    session.open(URI, DOC)
    result = await session.inline(URI, 1, 4, invoked=True)
    assert result.items[0].insert_text == "return a + b"  # fences stripped
    request = session.fake.generation_requests()[0]
    assert request.path == "/v1/chat/completions"
    assert "<HOLE>" in request.body["messages"][-1]["content"]

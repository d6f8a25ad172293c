"""Tandem against real model servers: llama.cpp's own llama-server and llama-cpp-python's OpenAI-compatible
server, running the tiny GGUF the suite writes (its text is noise; its loading, tokenizing, FIM, caching
and streaming are real).

Every claim is checked through the server's own counters: `/metrics`, `/slots`, `/props`, `/tokenize`,
and the `timings`, `tokens_evaluated`, `tokens_cached` and `truncated` fields of llama-server's answers
(recorded by a pass-through proxy between Tandem and the server), or llama.cpp's perf lines in
llama-cpp-python's log. Each server starts once per module; tests only read counter differences.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from tandem_lsp.backends.base import BackendError
from tandem_lsp.backends.llamacpp import LlamaCppBackend
from tandem_lsp.backends.openai import OpenAIBackend
from tandem_lsp.completion.request import GenerationRequest, Snippet
from tests.e2e.conftest import start_session
from tests.fakes.tiny_gguf import write_tiny_gguf
from tests.realservers import (
    RealServer,
    require_llama_cpp_python_server,
    require_llama_server,
    start_llama_cpp_python_server,
    start_llama_server,
)
from tests.recording_proxy import Exchange, RecordingProxy

MODEL_FILE = "qwen2.5-coder-tiny.gguf"  # a name Tandem's template choice reads as a Qwen coder model
MODEL_CTX = 4096  # the training context the tiny model declares: llama-server's default context
STATUS = "tandem/status"
PROMPT_TOKENS = "llamacpp:prompt_tokens_total"  # read, cached ones excluded
CACHED_TOKENS = "llamacpp:prompt_tokens_cached_total"
PREDICTED_TOKENS = "llamacpp:tokens_predicted_total"
SNIPPET_HEADER = "\n\n--- snippet ---\n\n"  # llama-server's separator of input_extra chunks without FIM_SEP
SLACK_TOKENS = 6  # a token re-read at the edit point, merges across it, the server's "at least one token"


# -- servers (started once per module, killed by their finalizers) --------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / MODEL_FILE, n_ctx=MODEL_CTX)


@pytest.fixture(scope="module")
def llama(model, tmp_path_factory):
    """llama-server with its default flags (context from the model: 4096)."""
    require_llama_server()
    server = start_llama_server(model, log_path=tmp_path_factory.mktemp("logs") / "llama-server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_llama(model, tmp_path_factory):
    """llama-server with a small batch and context: it keeps 192 prefix tokens and 62 of the line and suffix."""
    require_llama_server()
    server = start_llama_server(model, "-b", "256", "-ub", "256", n_ctx=1024,
                                log_path=tmp_path_factory.mktemp("logs") / "llama-server-small.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lcp(model, tmp_path_factory):
    """llama-cpp-python's server (n_ctx 2048, its default), verbose: its log has llama.cpp's perf lines."""
    require_llama_cpp_python_server()
    server = start_llama_cpp_python_server(model, n_ctx=2048,
                                           log_path=tmp_path_factory.mktemp("logs") / "llama-cpp-python.log")
    yield server
    server.stop()


@pytest.fixture
def proxy(llama):
    p = RecordingProxy(llama.url).start()
    yield p
    p.stop()


# -- documents ----------------------------------------------------------------------------------
def code(chars: int, name: str) -> str:
    """Ordinary-looking Python, about `chars` long, ending with a newline."""
    out, i = [], 0
    while sum(map(len, out)) < chars:
        out.append(f"def {name}_{i}(alpha, beta):\n    total = alpha * {i} + beta\n    return total\n\n\n")
        i += 1
    return "".join(out)


HEAD = code(3000, "step")  # ~2,800 tokens of the tiny model: more than llama-server keeps of a prefix (1,536)
CURSOR_LINE = "def typed_here(alpha, beta):\n    "
TAIL = "\n" + code(300, "after")
URI = "file:///project/real.py"


# -- helpers ------------------------------------------------------------------------------------
def fim_request(prefix: str, suffix: str, **kw) -> GenerationRequest:
    return GenerationRequest(prefix=prefix, suffix=suffix,
                             prompt=f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>", **kw)


async def collect(stream) -> str:
    return "".join([t async for t in stream])


def delta(before: dict[str, float], after: dict[str, float], name: str) -> int:
    return int(after.get(name, 0) - before.get(name, 0))


def expected_infill_tokens(server: RealServer, body: dict) -> int:
    """The prompt llama-server builds from an /infill body when it cuts nothing (format_prompt_infill):
    [extra chunks][FIM_PRE] input_prefix prompt [FIM_SUF] input_suffix [FIM_MID]. The tiny model has no
    FIM_REP/FIM_SEP tokens, so each chunk is the snippet header and its text; prefix, suffix and chunks are
    tokenized without special tokens, the prompt with them."""
    n = 3  # FIM_PRE, FIM_SUF, FIM_MID
    n += len(server.tokenize(body.get("input_prefix", ""), parse_special=False))
    n += len(server.tokenize(body.get("prompt", ""), parse_special=True))
    n += len(server.tokenize(body.get("input_suffix", ""), parse_special=False))
    for chunk in body.get("input_extra") or ():
        n += len(server.tokenize(SNIPPET_HEADER, parse_special=False))
        n += len(server.tokenize(chunk.get("text", ""), parse_special=False))
    return n


def finished(exchanges: list[Exchange]) -> list[Exchange]:
    """Exchanges the server answered to the end (with its final counters)."""
    return [e for e in exchanges if e.final is not None and e.final.get("stop")]


def wait_slots_idle(server: RealServer, timeout: float = 5.0) -> float:
    """Seconds until no slot is processing; AssertionError after `timeout`."""
    t0 = time.monotonic()
    while any(s.get("is_processing") for s in server.slots()):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"a slot is still processing after {timeout} s: {server.slots()}")
        time.sleep(0.02)
    return time.monotonic() - t0


def settings(backend: str, endpoint: str, **local) -> dict:
    return {
        "local": {"backend": backend, "endpoint": endpoint, "timeoutMs": 5000, "maxTokens": 32, **local},
        "completion": {"debounceMs": 0},
    }


@asynccontextmanager
async def language_server(config: dict):
    """The language server over stdio (as the e2e suite starts it), its tandem/status notifications kept."""
    session = await start_session("vscode", None, config)
    statuses: list = []

    @session.client.feature(STATUS)
    def on_status(params) -> None:
        statuses.append(params)

    try:
        yield session, statuses
    finally:
        await session.client.shutdown_session()
        await session.client.stop()


async def answer(session, uri: str, line: int, character: int, tries: int = 50):
    """An invoked inline completion; asked again while the server is still finding and learning its model."""
    result = None
    for _ in range(tries):
        result = await asyncio.wait_for(session.inline(uri, line, character, invoked=True), 30)
        if result is not None and result.items:
            return result
        await asyncio.sleep(0.1)
    return result


def refusals(server: RealServer, mark: int) -> list[str]:
    """llama-cpp-python's "Requested tokens (N) exceed context window of M" errors in its log since `mark`
    (its stream answers such a prompt with HTTP 200 and no body: the reason is only in the log)."""
    lines = server.log_text(mark).splitlines()
    return [line for line in lines if line.startswith("ValueError") and "exceed context window" in line] or [
        line for line in lines if "exceed context window" in line]


def attr(obj, name: str):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def cursor_position(text: str) -> tuple[int, int]:
    before = text.split("\n")
    return len(before) - 1, len(before[-1])


# -- a. completion through /infill and /v1/completions ----------------------------------------------
async def test_infill_through_the_llamacpp_backend(llama, proxy):
    before = llama.metrics()
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = LlamaCppBackend(client, proxy.url)
        req = GenerationRequest(prefix="import os\n\ndef add(a, b):\n    ", suffix="\n\nprint(add(1, 2))\n", prompt="",
                                max_tokens=16, timeout_ms=10_000,
                                snippets=(Snippet("util.py", "def helper():\n    return 1\n"),))
        text = await collect(backend.stream(req))
    after = llama.metrics()
    [ex] = proxy.exchanges("/infill")
    final = ex.final
    assert text and ex.status == 200
    assert final["stop"] is True and final["truncated"] is False
    assert 0 < final["tokens_predicted"] <= 16
    assert delta(before, after, PREDICTED_TOKENS) == final["tokens_predicted"]
    assert delta(before, after, PROMPT_TOKENS) == final["timings"]["prompt_n"]
    assert delta(before, after, PROMPT_TOKENS) + delta(before, after, CACHED_TOKENS) == final["tokens_evaluated"]
    assert final["tokens_evaluated"] == expected_infill_tokens(llama, ex.body)  # nothing cut


async def test_v1_completions_through_the_openai_backend(llama, proxy):
    before = llama.metrics()
    req = fim_request("def mul(a, b):\n    ", "\n\nprint(mul(3, 4))\n", max_tokens=16)
    async with httpx.AsyncClient(trust_env=False) as client:
        text = await collect(OpenAIBackend(client, f"{proxy.url}/v1").stream(req))
    after = llama.metrics()
    [ex] = proxy.exchanges("/v1/completions")
    assert text and ex.status == 200
    assert 0 < delta(before, after, PREDICTED_TOKENS) <= 16
    read = delta(before, after, PROMPT_TOKENS) + delta(before, after, CACHED_TOKENS)
    assert read == len(llama.tokenize(req.prompt, parse_special=True))  # the raw FIM prompt, special tokens parsed


async def test_v1_completions_through_the_openai_backend_on_llama_cpp_python(lcp):
    mark = lcp.log_size()
    req = fim_request("def sub(a, b):\n    ", "\n\nprint(sub(5, 1))\n", max_tokens=16)
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = OpenAIBackend(client, f"{lcp.url}/v1")
        text = await collect(backend.stream(req))
    assert text
    [evaluated] = lcp.prompt_tokens_evaluated(mark)  # one request, one perf line
    assert 0 < evaluated <= len(lcp.tokenize(req.prompt))


async def test_the_backend_reports_the_servers_own_counters(llama, proxy):
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = LlamaCppBackend(client, proxy.url)
        req = GenerationRequest(prefix="class Point:\n    def __init__(self, x, y):\n        ", suffix="\n",
                                prompt="", max_tokens=8, timeout_ms=10_000)
        await collect(backend.stream(req))
        report = backend.last_report
    final = proxy.exchanges("/infill")[-1].final
    assert report is not None
    assert report.prompt_tokens == final["tokens_evaluated"]
    assert report.read_tokens == final["timings"]["prompt_n"]
    assert report.cached_tokens == final["timings"]["cache_n"]
    assert report.generated_tokens == final["timings"]["predicted_n"] == final["tokens_predicted"]
    assert report.truncated is False


async def test_the_backend_learns_the_servers_limits(llama):
    props = llama.props()
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = LlamaCppBackend(client, llama.url)
        profile = await backend.learn()
    assert profile.n_ctx == props["default_generation_settings"]["n_ctx"] == MODEL_CTX
    assert profile.slots == props["total_slots"]
    assert profile.read_tps and profile.read_tps > 0


async def test_a_warm_up_reads_the_prompt_and_shows_nothing(llama, proxy):
    prefix, suffix = "def warm(a):\n    " + "x = a + 1\n    " * 20, "\nreturn x\n"
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = LlamaCppBackend(client, proxy.url)
        before = llama.metrics()
        assert await collect(backend.stream(GenerationRequest(prefix=prefix, suffix=suffix, prompt="",
                                                              warm_only=True))) == ""
        after = llama.metrics()
        await collect(backend.stream(GenerationRequest(prefix=prefix, suffix=suffix, prompt="", max_tokens=8)))
    warm, real = finished(proxy.exchanges("/infill"))[-2:]
    assert warm.body["n_predict"] == 0
    assert warm.final["tokens_predicted"] <= 1  # llama-server samples one token even at n_predict 0
    assert delta(before, after, PREDICTED_TOKENS) <= 1
    assert warm.final["timings"]["prompt_n"] == warm.final["tokens_evaluated"] > 100  # read it all
    assert real.final["tokens_cached"] >= warm.final["tokens_evaluated"]
    assert real.final["timings"]["prompt_n"] <= 2  # then the answer found it cached


async def test_inline_completion_end_to_end_from_llama_server(llama, proxy):
    text = HEAD + CURSOR_LINE + TAIL
    line, character = cursor_position(HEAD + CURSOR_LINE)
    async with language_server(settings("llamacpp", proxy.url)) as (session, statuses):
        session.open(URI, text)
        result = await answer(session, URI, line, character)
        assert result is not None and result.items[0].insert_text
        await asyncio.to_thread(proxy.wait_idle)
    at_cursor = [e for e in finished(proxy.exchanges("/infill")) if e.body.get("n_predict")
                 and (HEAD + CURSOR_LINE).endswith(e.body["input_prefix"] + e.body.get("prompt", ""))]
    assert at_cursor, "no /infill call generated anything at the cursor"
    ex = at_cursor[0]
    assert ex.body["n_predict"] == 32 and 0 < ex.final["tokens_predicted"] <= 32
    assert ex.body["input_suffix"] and TAIL.startswith(ex.body["input_suffix"])
    assert statuses and attr(statuses[-1], "state") in ("ready", "slow"), statuses


async def test_inline_completion_end_to_end_from_llama_cpp_python(lcp):
    text = HEAD + CURSOR_LINE + TAIL
    line, character = cursor_position(HEAD + CURSOR_LINE)
    mark = lcp.log_size()
    async with language_server(settings("openai", f"{lcp.url}/v1")) as (session, statuses):
        session.open(URI, text)
        result = await answer(session, URI, line, character, tries=20)
    refused = refusals(lcp, mark)
    assert not refused, f"Tandem sent {len(refused)} prompts over llama-cpp-python's context: {refused[0]}"
    assert result is not None and result.items[0].insert_text
    assert lcp.prompt_tokens_evaluated(mark), "llama-cpp-python finished no request"


# -- b. prompt tokens read per keystroke ------------------------------------------------------------
async def type_and_measure(session, proxy: RecordingProxy, text: str, offset: int, keys: list[str]):
    """Type `keys` at `offset` one by one, asking for an inline completion after each and waiting for every
    model call to end. Returns the document and each key's new finished /infill exchanges."""
    per_key = []
    for key in keys:
        seen = len(proxy.exchanges("/infill"))
        line, character = cursor_position(text[:offset])
        session.type(URI, line, character, key)
        text, offset = text[:offset] + key + text[offset:], offset + len(key)
        line, character = cursor_position(text[:offset])
        await asyncio.wait_for(session.inline(URI, line, character, invoked=True), 30)
        await asyncio.sleep(0.05)  # a prefetch after the answer
        await asyncio.to_thread(proxy.wait_idle)
        per_key.append(finished(proxy.exchanges("/infill")[seen:]))
    return text, offset, per_key


def reads_only_what_changed(server: RealServer, prev: Exchange, ex: Exchange) -> tuple[int, int, str]:
    """(prompt tokens the server read for `ex`, the most it needed to, explanation): the text that differs
    from the previous call's prefix and line, plus the suffix, plus a few tokens."""
    before = prev.body["input_prefix"] + prev.body.get("prompt", "")
    now = ex.body["input_prefix"] + ex.body.get("prompt", "")
    changed = now[len(os.path.commonprefix([before, now])):]
    changed_tokens = len(server.tokenize(changed, parse_special=False)) if changed else 0
    suffix_tokens = len(server.tokenize(ex.body["input_suffix"], parse_special=False))
    bound = changed_tokens + suffix_tokens + 2 + SLACK_TOKENS
    t = ex.final["timings"]
    why = (f"read {t['prompt_n']} of {ex.final['tokens_evaluated']} prompt tokens (cached {t['cache_n']}); "
           f"changed {changed!r} = {changed_tokens} tokens, suffix {suffix_tokens} tokens")
    return t["prompt_n"], bound, why


def previous(proxy: RecordingProxy, ex: Exchange) -> Exchange:
    """The /infill exchange before `ex` (any kind: a warm-up shapes the cache too)."""
    calls = proxy.exchanges("/infill")
    return calls[next(i for i, e in enumerate(calls) if e is ex) - 1]


async def open_and_read_once(session, proxy: RecordingProxy) -> tuple[str, int]:
    """Open the document with the cursor on an empty line in a function, and let the cold read happen."""
    text, offset = HEAD + CURSOR_LINE + TAIL, len(HEAD + CURSOR_LINE)
    session.open(URI, text)
    assert await answer(session, URI, *cursor_position(text[:offset])) is not None
    await asyncio.to_thread(proxy.wait_idle)
    return text, offset


def over_reads(server: RealServer, proxy: RecordingProxy, calls: list[Exchange], whole_share: float = 1.0) -> list[str]:
    """Calls that read more than what changed plus the suffix (or more than `whole_share` of the prompt)."""
    out = []
    for ex in calls:
        read, bound, why = reads_only_what_changed(server, previous(proxy, ex), ex)
        if read > bound or read > whole_share * ex.final["tokens_evaluated"]:
            out.append(why)
    return out


async def test_typing_within_a_line_reads_only_what_changed(llama, proxy):
    async with language_server(settings("llamacpp", proxy.url)) as (session, _):
        text, offset = await open_and_read_once(session, proxy)
        text, offset, per_key = await type_and_measure(session, proxy, text, offset, list("res = alpha"))
    calls = [ex for key in per_key for ex in key]
    assert calls, "no model call while typing"
    assert all(ex.final["truncated"] is False for ex in calls)
    failures = over_reads(llama, proxy, calls)
    assert not failures, (f"{len(failures)} of {len(calls)} calls re-read more than what changed:\n"
                          + "\n".join(failures))


async def test_a_new_line_does_not_reread_the_whole_prompt(llama, proxy):
    async with language_server(settings("llamacpp", proxy.url)) as (session, _):
        text, offset = await open_and_read_once(session, proxy)
        text, offset, _ = await type_and_measure(session, proxy, text, offset, list("x = 1"))
        text, offset, [calls] = await type_and_measure(session, proxy, text, offset, ["\n    "])  # Enter, auto-indent
    assert calls, "no model call on the new line"
    failures = over_reads(llama, proxy, calls, whole_share=0.5)
    assert not failures, "a new line re-read the prompt:\n" + "\n".join(failures)


# -- c. a cancel frees the slot ---------------------------------------------------------------------
LONG = 3500  # tokens: long enough to still be generating when cancelled, short of the 4096 context
FREED_S = 5.0  # a freed slot is idle, and the next request served, within this (the 2 cores are shared)


async def test_cancelling_the_stream_frees_the_slot(llama):
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = LlamaCppBackend(client, llama.url)
        req = GenerationRequest(prefix="def long(a):\n    ", suffix="\n", prompt="", max_tokens=LONG, timeout_ms=60_000)
        first = asyncio.Event()

        async def consume():
            async for _ in backend.stream(req):
                first.set()

        busy: list = []
        for _ in range(3):  # the tiny model may write an end token before the slot is looked at: again
            first.clear()
            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), 10)
            busy = [s for s in llama.slots() if s["is_processing"]]
            if busy or not task.done():
                break
        assert busy, "the slot was not processing while streaming"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        idle_after = await asyncio.to_thread(wait_slots_idle, llama, FREED_S)
        slot = next(s for s in llama.slots() if s["id"] == busy[0]["id"])
        assert slot["next_token"][0]["n_decoded"] < LONG, "the server generated everything anyway"
        assert llama.metrics()["llamacpp:requests_processing"] == 0
        # the next request is served at once
        t0 = time.monotonic()
        text = await collect(backend.stream(GenerationRequest(prefix="x = ", suffix="\n", prompt="", max_tokens=8)))
        assert text and time.monotonic() - t0 < FREED_S
    assert idle_after < FREED_S


def inline_request(session, msg_id: str, line: int, character: int):
    return asyncio.ensure_future(session.client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(line, character),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        ),
        msg_id=msg_id,
    ))


async def busy_slot(server: RealServer, not_task: int | None = None, timeout: float = 15.0) -> dict:
    """The first slot processing a task (other than `not_task`) and generating; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        for slot in server.slots():
            if (slot["is_processing"] and slot.get("id_task") != not_task
                    and slot.get("params", {}).get("n_predict") == LONG and slot["next_token"][0]["n_decoded"] > 0):
                return slot
        assert time.monotonic() < deadline, f"no slot generated within {timeout} s: {server.slots()}"
        await asyncio.sleep(0.01)


async def test_cancel_request_frees_the_slot_end_to_end(llama):
    await asyncio.to_thread(wait_slots_idle, llama, 30.0)
    config = settings("llamacpp", llama.url, maxTokens=LONG, timeoutMs=60_000)
    config["completion"]["multiline"] = "always"
    async with language_server(config) as (session, _):
        session.open(URI, "def long(a):\n    \n")
        for attempt in range(3):  # the tiny model writes fast: on a busy machine it may finish before the cancel
            fut = inline_request(session, f"cancel-me-{attempt}", 1, 4)
            busy = await busy_slot(llama)  # the model was found and learned, and it is writing the answer
            session.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=f"cancel-me-{attempt}"))
            try:
                await asyncio.wait_for(fut, 5)
            except JsonRpcRequestCancelled:
                break
            # answered, not cancelled: only acceptable when the answer was complete before the cancel came
            done = next(s for s in llama.slots() if s["id"] == busy["id"])
            assert done["next_token"][0]["n_decoded"] >= LONG - 1, "answered though cancelled mid-answer"
            await asyncio.to_thread(wait_slots_idle, llama, 30.0)
            session.type(URI, 1, 4, " ")  # a new place: the next request is not the cached answer
        else:
            pytest.fail("the model finished before every cancel (3 attempts)")
        idle_after = await asyncio.to_thread(wait_slots_idle, llama, FREED_S)
        slot = next(s for s in llama.slots() if s["id"] == busy["id"])
        assert slot["next_token"][0]["n_decoded"] < LONG, "the server generated everything anyway"
        # the next request is served at once: the server is writing its answer
        session.type(URI, 1, 4, "r")  # (the model writes " a a a ...": nothing kept from before fits "r")
        t0 = time.monotonic()
        following = inline_request(session, "next", 1, 5)
        await busy_slot(llama, not_task=busy["id_task"], timeout=FREED_S)
        served_after = time.monotonic() - t0
        session.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="next"))
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(following, 5)
        await asyncio.to_thread(wait_slots_idle, llama, FREED_S)
    assert idle_after < FREED_S and served_after < FREED_S


# -- d. no server-side truncation -----------------------------------------------------------------
@pytest.mark.parametrize("server_name", ["llama", "small_llama"])
async def test_no_server_side_truncation_of_a_large_document(server_name, request):
    server: RealServer = request.getfixturevalue(server_name)
    proxy = RecordingProxy(server.url).start()
    try:
        half = code(15_000, "big")
        text = half + CURSOR_LINE + "\n" + code(15_000, "later")
        other = code(4000, "helper")
        line, character = cursor_position(half + CURSOR_LINE)
        async with language_server(settings("llamacpp", proxy.url)) as (session, _):
            session.open("file:///project/helpers.py", other)  # context from another file: input_extra
            session.open(URI, text)
            result = await answer(session, URI, line, character)
            await asyncio.to_thread(proxy.wait_idle)
        assert result is not None
        cursor_prefix = half + CURSOR_LINE
        ours = [e for e in finished(proxy.exchanges("/infill"))
                if cursor_prefix.endswith(e.body["input_prefix"] + e.body.get("prompt", ""))]
        assert ours, "no /infill call for the document"
        n_ctx = server.props()["default_generation_settings"]["n_ctx"]
        for ex in ours:
            expected = expected_infill_tokens(server, ex.body)
            got = ex.final["tokens_evaluated"]
            assert got == expected, (
                f"the server cut the prompt: it kept {got} of {expected} tokens "
                f"(input_prefix {len(ex.body['input_prefix'])} chars, suffix {len(ex.body['input_suffix'])} chars, "
                f"{len(ex.body.get('input_extra') or ())} extra chunks; n_ctx {n_ctx})")
            assert ex.final["truncated"] is False
            assert got + ex.body["n_predict"] <= n_ctx
    finally:
        proxy.stop()


async def test_openai_prompts_fit_llama_cpp_python_context(lcp):
    """llama-cpp-python's stream answers an over-long prompt with HTTP 200 and an empty body (the reason
    only in its log), so Tandem must not send one: a large document still gets its suggestion."""
    half = code(15_000, "big")
    text = half + CURSOR_LINE + "\n" + code(15_000, "later")
    mark = lcp.log_size()
    async with language_server(settings("openai", f"{lcp.url}/v1")) as (session, statuses):
        session.open(URI, text)
        result = await answer(session, URI, *cursor_position(half + CURSOR_LINE), tries=20)
        refused = refusals(lcp, mark)
        assert not refused, f"Tandem sent {len(refused)} prompts over llama-cpp-python's context: {refused[0]}"
        assert result is not None and result.items[0].insert_text
        assert lcp.prompt_tokens_evaluated(mark)
        assert statuses and attr(statuses[-1], "state") in ("ready", "slow"), statuses


# -- e. the server's error text reaches the log and the status ----------------------------------------
async def test_the_servers_error_text_reaches_the_backend_error(llama):
    prompt = "<|fim_prefix|>" + code(6000, "long") + "<|fim_suffix|>\n<|fim_middle|>"  # > 4096 tokens
    assert len(llama.tokenize(prompt)) > MODEL_CTX
    async with httpx.AsyncClient(trust_env=False) as client:
        backend = OpenAIBackend(client, f"{llama.url}/v1")
        with pytest.raises(BackendError) as err:
            await collect(backend.stream(GenerationRequest(prefix="", suffix="", prompt=prompt, max_tokens=8)))
    assert "exceeds the available context size" in str(err.value)
    assert "HTTP 400" in str(err.value)


async def test_the_servers_error_text_reaches_the_status_and_the_log(model, tmp_path):
    """A server that refuses every request (here: started with an API key Tandem was not given) says why;
    the user sees its words in the status and the log, not only an HTTP code."""
    require_llama_server()
    with start_llama_server(model, "--api-key", "not-given-to-tandem", log_path=tmp_path / "keyed.log") as server:
        async with language_server(settings("llamacpp", server.url)) as (session, statuses):
            session.open(URI, "def add(a, b):\n    \n")
            for _ in range(3):
                assert await asyncio.wait_for(session.inline(URI, 1, 4, invoked=True), 30) is None
                if any(attr(s, "state") == "down" for s in statuses):
                    break
                await asyncio.sleep(0.3)
            down = [s for s in statuses if attr(s, "state") == "down"]
            assert down, f"no down status: {statuses}"
            assert "Invalid API Key" in attr(down[-1], "detail")
            assert any("Invalid API Key" in m.message for m in session.client.log_messages), \
                [m.message for m in session.client.log_messages]
        assert "Invalid API Key" in server.log_text()  # the server did refuse


def test_doctor_reports_the_servers_speed_and_the_prompt_it_will_use(llama):
    """`tandem-lsp doctor` against a real llama-server: the measured reading and writing speed, the
    context, the prompt size that follows from them and what a keystroke will cost."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "tandem_lsp", "doctor", "--backend", "llamacpp", "--endpoint", llama.url],
        capture_output=True, text=True, timeout=120, env={**os.environ, "ANTHROPIC_API_KEY": ""},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = dict(line.strip().split(None, 1) for line in out.stdout.splitlines()
                if line.startswith("  ") and len(line.split()) > 1)
    assert rows["reads"].endswith("prompt tokens/s") and float(rows["reads"].split()[0]) > 0
    assert rows["writes"].endswith("tokens/s")
    assert rows["context"].startswith(f"{MODEL_CTX} tokens, batch 2048")
    assert "characters before the cursor for a new file" in rows["prompt"]
    assert "to the first token while typing" in rows["expect"]


# -- d. next edits on llama-server: a raw prompt on /completion, in their own slot ------------------------
@pytest.fixture(scope="module")
def isolated_llama(model, tmp_path_factory):
    """llama-server without its host-memory prompt cache (``--cache-ram 0``). With that cache on (the
    default, 8 GiB), a call in any other slot makes slot 0 read its whole prompt again at its next request
    (measured on this build: 1,118 of 1,118 tokens after a 760-token call in slot 1; without it, 12)."""
    require_llama_server()
    server = start_llama_server(model, "--cache-ram", "0",
                                log_path=tmp_path_factory.mktemp("logs") / "llama-server-isolated.log")
    yield server
    server.stop()


async def test_next_edits_go_to_completion_in_their_own_slot(isolated_llama):
    """A next-edit rewrite is a raw prompt on /completion in slot 1 (the tiny model's answer is noise, so
    whether it yields edits is not the point), and the completions' slot keeps its cache: the keystroke
    after a next edit reads only what changed. (With llama-server's host prompt cache on, its default, that
    keystroke may read its whole prompt again: docs/next-edits.md says so and how to avoid it.)"""
    server = isolated_llama
    proxy = RecordingProxy(server.url).start()
    config = settings("llamacpp", proxy.url)
    config["nextEdit"] = {"enabled": True, "template": "sweep", "debounceMs": 0}
    try:
        async with language_server(config) as (session, _):
            text, offset = await open_and_read_once(session, proxy)
            line, character = cursor_position(text[:offset])
            session.type(URI, line, character, "x")  # an edit for next edits to follow
            params = {"textDocument": {"uri": URI, "version": 2},
                      "position": {"line": line, "character": character + 1}}
            result = await asyncio.wait_for(session.client.protocol.send_request_async(
                "textDocument/copilotInlineEdit", params), 60)
            assert isinstance(attr(result, "edits"), (list, tuple))
            await asyncio.to_thread(proxy.wait_idle)
            text, offset, [calls] = await type_and_measure(session, proxy, text[:offset] + "x" + text[offset:],
                                                           offset + 1, ["y"])
        [nes] = [e for e in finished(proxy.exchanges("/completion")) if "<|file_sep|>current/" in e.body["prompt"]]
        slots = server.props().get("total_slots") or 1
        assert nes.status == 200 and nes.body.get("id_slot") == (1 if slots > 1 else None)
        assert nes.body["cache_prompt"] is True and nes.body["stream"] is True
        assert "<|fim_prefix|>" not in nes.body["prompt"]  # raw: no fill-in-the-middle around it
        assert 0 < nes.final["tokens_predicted"] <= nes.body["n_predict"]
        assert nes.final["timings"]["prompt_n"] > 0  # the server's own counters came back
        assert calls and not over_reads(server, proxy, calls), "the keystroke after a next edit re-read its prompt"
    finally:
        proxy.stop()

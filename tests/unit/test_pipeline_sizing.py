"""The pipeline against a server it has measured: prompts the server's cache keeps, a cold read that waits
for a pause and warms the cache first, and a context error that teaches the limit and is retried once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tandem_lsp.backends.llamacpp import LlamaCppBackend
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.backends.types import ContextError, ServerProfile
from tandem_lsp.completion.pipeline import CompletionEngine
from tandem_lsp.completion.request import CompletionRequest
from tandem_lsp.config import parse_settings
from tests.fakes.model_server import FakeModelServer

LINE = "value = compute(value, index)  # one line of the file\n"
DOC = LINE * 120  # 6,480 characters
CURSOR = len(LINE) * 80  # a blank spot inside the file


def measured(read_tps: float) -> ServerProfile:
    return ServerProfile(read_tps=read_tps, write_tps=20.0, chars_per_token=1.0, n_ctx=4096, n_batch=2048,
                         max_prefix_tokens=1536, max_suffix_tokens=510, max_extra_tokens=2050, learned=True)


@pytest.fixture
def server():
    with FakeModelServer("x = 1\n", dialects={"llamacpp"}) as fake:
        yield fake


async def engine_for(server: FakeModelServer, profile: ServerProfile, **completion):
    settings, problems = parse_settings({"local": {"backend": "llamacpp", "endpoint": server.url, "timeoutMs": 2000},
                                         "completion": {"debounceMs": 0, **completion}})
    assert not problems
    model = LocalModel(settings.local)
    backend = LlamaCppBackend(model.client, server.url, "qwen2.5-coder")
    backend.profile = profile
    model._backend, model._ready = backend, True
    return CompletionEngine(settings=settings, model=model, prefetch_enabled=False)


def typed(text: str) -> tuple[str, int]:
    doc = DOC[:CURSOR] + text + DOC[CURSOR:]
    return doc, CURSOR + len(text)


def infills(server: FakeModelServer) -> list[dict]:
    return [r.body for r in server.generation_requests() if r.path == "/infill"]


async def test_typing_in_a_line_keeps_input_prefix_byte_identical_and_within_the_servers_cut(server):
    engine = await engine_for(server, measured(read_tps=400.0))
    for text in ("result = ", "result = comp", "result = compute(va"):
        doc, offset = typed(text)
        await engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True))
    bodies = [b for b in infills(server) if b["n_predict"] != 0]  # after a warm-up of the new file
    assert len(bodies) == 3
    assert len({b["input_prefix"] for b in bodies}) == 1
    assert [b["prompt"] for b in bodies] == ["result = ", "result = comp", "result = compute(va"]
    prefix = bodies[0]["input_prefix"]
    assert DOC[:CURSOR].endswith(prefix) and prefix.startswith("value")  # whole lines, ending at the line start
    assert len(prefix) <= 1536  # within what /infill keeps of a prefix (1 character per token here)
    assert all(len(b["input_suffix"]) <= 0.25 * 400 for b in bodies)  # a quarter second of reading
    await engine.aclose()


async def test_a_new_line_keeps_the_prompt_start(server):
    engine = await engine_for(server, measured(read_tps=400.0))
    starts = []
    for text in ("a = 1", "a = 1\nb = 2", "a = 1\nb = 2\nc = 3"):
        doc, offset = typed(text)
        await engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True))
        starts.append(infills(server)[-1]["input_prefix"][:200])
    assert len(set(starts)) == 1  # the start stays where the cached prompt started
    await engine.aclose()


async def test_a_cold_read_on_a_slow_server_warms_the_cache_first(server):
    engine = await engine_for(server, measured(read_tps=50.0))  # ~500 tokens: 10 s of reading
    doc, offset = typed("result = ")
    await engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True))
    bodies = infills(server)
    assert [b["n_predict"] == 0 for b in bodies] == [True, False]  # the warm-up, then the generation
    warm, generation = bodies
    assert warm["prompt"] == "" and warm["input_suffix"] == "" and warm["input_extra"] == generation["input_extra"]
    assert generation["input_prefix"] == warm["input_prefix"]  # the part the warm-up put in the cache
    assert engine.stats.warm_ups == 1
    # the next keystroke reads only the line and the suffix: no second warm-up
    doc, offset = typed("result = c")
    await engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True))
    assert [b["n_predict"] == 0 for b in infills(server)] == [True, False, False]
    await engine.aclose()


async def test_fast_typing_warms_the_cache_once_and_generates_only_at_a_pause(server):
    """Against a very slow server, the stable part of the prompt is read at the first key (the next keys need
    it too) while the part a key makes useless (the line and the suffix) waits for a pause."""
    engine = await engine_for(server, measured(read_tps=20.0))
    tasks = []
    for n in range(1, 6):  # five keys 100 ms apart: each supersedes the last before its pause is over
        doc, offset = typed("result"[:n])
        tasks.append(asyncio.ensure_future(engine.complete(CompletionRequest("file:///a.py", doc, offset))))
        await asyncio.sleep(0.1)
    assert await asyncio.gather(*tasks[:-1]) == [None] * 4
    assert [b["n_predict"] for b in infills(server)] == [0]  # one warm-up, no generation while typing
    assert (await tasks[-1]) is not None  # the pause came: one generation
    assert [b["n_predict"] == 0 for b in infills(server)] == [True, False]
    await engine.aclose()


class Refusing:
    """A server whose context turns out smaller than assumed: the first prompt is refused."""

    name, endpoint, model = "openai", "nowhere", "m"

    def __init__(self):
        self.profile = ServerProfile(n_ctx=4096, chars_per_token=1.0, learned=True)
        self.prompts: list[str] = []

    async def stream(self, req):
        self.prompts.append(req.prompt)
        if len(self.prompts) == 1:
            self.profile.n_ctx = 512
            raise ContextError("openai: HTTP 400 from /v1/completions: context window of 512", n_ctx=512)
        yield "x = 1\n"

    async def aclose(self):
        pass


async def test_a_context_error_is_retried_once_with_a_shorter_prompt():
    settings, _ = parse_settings({"local": {"fimTemplate": "qwen"}, "completion": {"debounceMs": 0}})
    model = LocalModel(settings.local)
    backend = Refusing()
    model._backend, model._ready = backend, True
    engine = CompletionEngine(settings=settings, model=model, prefetch_enabled=False)
    doc, offset = typed("")
    suggestion = await engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True))
    assert suggestion is not None and suggestion.text == "x = 1"
    assert len(backend.prompts) == 2 and len(backend.prompts[1]) < 512 < len(backend.prompts[0])
    assert model.status.state != "down"
    await engine.aclose()


async def test_the_server_error_text_reaches_the_status():
    with FakeModelServer(dialects={"llamacpp"}, fault="error") as fake:
        settings, _ = parse_settings({"local": {"backend": "llamacpp", "endpoint": fake.url}})
        seen = []
        model = LocalModel(settings.local, on_status=lambda status, message: seen.append(message or ""))
        async with httpx.AsyncClient() as client:
            model._backend, model._ready = LlamaCppBackend(client, fake.url, "m"), True
            engine = CompletionEngine(settings=settings, model=model, prefetch_enabled=False)
            await engine.complete(CompletionRequest("file:///a.py", "x = ", 4, invoked=True))
            assert model.status.state == "down"
            assert "fake model server error" in model.status.detail  # the server's own words
            assert any("fake model server error" in m for m in seen)


async def test_an_unmeasured_server_gets_a_short_first_prompt_and_is_measured_by_it():
    """An OpenAI-compatible server reports no timings: until its first token is timed it is taken to be
    slow, so the first prompt is short (never a 10,000-token read on a CPU), and read as a warm-up."""
    from tandem_lsp.backends.openai import OpenAIBackend

    with FakeModelServer("x = 1\n", dialects={"openai"}) as fake:
        settings, _ = parse_settings({"local": {"backend": "openai", "endpoint": f"{fake.url}/v1"},
                                      "completion": {"debounceMs": 0}})
        model = LocalModel(settings.local)
        backend = OpenAIBackend(model.client, f"{fake.url}/v1", "qwen2.5-coder")
        await backend.learn()
        assert backend.profile.n_ctx == 2048 and backend.profile.read_tps is None  # nothing sent to measure
        assert fake.generation_requests() == []
        model._backend, model._ready = backend, True
        engine = CompletionEngine(settings=settings, model=model, prefetch_enabled=False)
        doc = LINE * 400  # 21,600 characters
        await engine.complete(CompletionRequest("file:///a.py", doc, len(LINE) * 300, invoked=True))
        warm, generation = [r.body for r in fake.generation_requests()]
        assert warm["max_tokens"] == 1 and generation["max_tokens"] == 128
        assert len(warm["prompt"]) < 400 and len(generation["prompt"]) < 500  # ~256 tokens at one per character
        assert backend.profile.read_tps is not None  # timed by the warm-up's first token
        await engine.aclose()


class Mute:
    """An unmeasured server that says nothing within local.timeoutMs (it is reading a long prompt)."""

    name, endpoint, model = "openai", "nowhere", "m"

    def __init__(self):
        self.profile = ServerProfile(n_ctx=32768, learned=True, measures_by_ttft=True)

    async def stream(self, req):
        await asyncio.sleep(3600)
        yield ""  # pragma: no cover

    async def aclose(self):
        pass


async def test_an_unmeasured_server_that_times_out_on_a_long_prompt_is_slow_and_measured_down():
    settings, _ = parse_settings({"local": {"fimTemplate": "qwen", "timeoutMs": 300}, "completion": {"debounceMs": 0}})
    model = LocalModel(settings.local)
    backend = Mute()
    model._backend, model._ready = backend, True
    engine = CompletionEngine(settings=settings, model=model, prefetch_enabled=False)
    engine._warm = lambda *args: asyncio.sleep(0)  # no warm-up here: the generation itself times out
    doc = LINE * 400
    assert await engine.complete(CompletionRequest("file:///a.py", doc, len(LINE) * 300, invoked=True)) is None
    await asyncio.sleep(0.05)
    assert model.status.state == "slow"  # reading, not down
    assert backend.profile.read_tps is not None and backend.profile.read_tps < 85.0
    await engine.aclose()


async def test_keys_typed_during_a_warm_up_keep_its_prompt_start(server):
    """The warm-up's start is where the cached prompt starts, even when no generation follows it (every
    request during the warm-up was superseded): later requests start there too, and read only what changed."""
    engine = await engine_for(server, measured(read_tps=50.0))
    doc, offset = typed("r")
    first = asyncio.ensure_future(engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True)))
    while not infills(server):
        await asyncio.sleep(0.01)
    first.cancel()  # superseded while the warm-up reads
    await asyncio.gather(first, return_exceptions=True)
    for text in ("result\n", "result\nvalue = 1\n", "result\nvalue = 1\nother = 2"):
        doc, offset = typed(text)
        await engine.complete(CompletionRequest("file:///a.py", doc, offset, invoked=True))
    bodies = infills(server)
    assert sum(b["n_predict"] == 0 for b in bodies) == 1  # one warm-up, never a second
    starts = {b["input_prefix"][:120] for b in bodies}
    assert len(starts) == 1
    await engine.aclose()


async def test_a_measured_server_silent_once_is_slow_and_three_times_in_a_row_down():
    """A server that answered before and is measured may be busy finishing a cancelled read (llama-server
    stops only at a batch end): one silent call is slow; three in a row, and it is down."""
    settings, _ = parse_settings({"local": {"fimTemplate": "qwen", "timeoutMs": 150}, "completion": {"debounceMs": 0}})
    model = LocalModel(settings.local)
    backend = Mute()
    backend.profile = measured(read_tps=5000.0)
    model._backend, model._ready = backend, True
    engine = CompletionEngine(settings=settings, model=model, prefetch_enabled=False)
    states = []
    for n in range(3):
        assert await engine.complete(CompletionRequest("file:///a.py", f"x{n} = ", 5, invoked=True)) is None
        await asyncio.sleep(0.02)
        states.append(model.status.state)
    assert states[:2] != ["down", "down"] and "down" not in states[:2]
    assert states[2] == "down"
    await engine.aclose()

"""The local backends against the real-HTTP fake model server: request bodies, streaming, faults,
cancellation closing the connection, and the auto probe."""

from __future__ import annotations

import asyncio
import socket
import time
from contextlib import aclosing

import httpx
import pytest

from tandem_lsp.backends import (
    BACKENDS,
    DEFAULT_ENDPOINTS,
    BackendError,
    LlamaCppBackend,
    LocalBackend,
    OllamaBackend,
    OpenAIBackend,
    make_backend,
)
from tandem_lsp.backends.auto import default_candidates, probe
from tandem_lsp.completion.request import GenerationRequest, Snippet
from tests.fakes.model_server import FakeModelServer

TEXT = "def add(a, b):\n    return a + b\n"
KINDS = ["openai", "ollama", "llamacpp"]
RAW_PATH = {"openai": "/v1/completions", "ollama": "/api/generate", "llamacpp": "/infill"}
CHAT_PATH = {"openai": "/v1/chat/completions", "ollama": "/api/chat", "llamacpp": "/v1/chat/completions"}
MESSAGES = [{"role": "system", "content": "complete"}, {"role": "user", "content": "def add(a, b):"}]


@pytest.fixture
def server():
    with FakeModelServer(TEXT, chunk_size=4) as fake:
        yield fake


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as http:
        yield http


def endpoint(kind: str, url: str) -> str:
    return f"{url}/v1" if kind == "openai" else url


def backend(kind: str, client: httpx.AsyncClient, url: str, model: str | None = "m") -> LocalBackend:
    return make_backend(kind, client, endpoint(kind, url), model)


def request(**overrides) -> GenerationRequest:
    fields = {"prefix": "def add(a, b):\n", "suffix": "\n", "prompt": "<PRE>def add(a, b):\n<SUF>\n<MID>"}
    return GenerationRequest(**fields | overrides)


async def collect(stream) -> list[str]:
    return [chunk async for chunk in stream]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def hung_up(server: FakeModelServer, timeout: float = 1.0) -> bool:
    return await asyncio.to_thread(server.wait_for_hangup, timeout)


# -- streaming and request bodies ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_streams_the_text_in_chunks(server, client, kind):
    chunks = await collect(backend(kind, client, server.url).stream(request()))
    assert len(chunks) > 1 and "".join(chunks) == TEXT
    record = server.requests[-1]
    assert record.path == RAW_PATH[kind] and record.completed and not record.hung_up


@pytest.mark.parametrize("kind", KINDS)
async def test_stop_sequences_are_sent_and_honoured(server, client, kind):
    chunks = await collect(backend(kind, client, server.url).stream(request(stop=["\n"], max_tokens=50)))
    assert "".join(chunks) == "def add(a, b):"


async def test_openai_body(server, client):
    await collect(OpenAIBackend(client, f"{server.url}/v1", "m").stream(request(stop=["\n\n"], max_tokens=64)))
    assert server.requests[-1].body == {
        "model": "m",
        "prompt": "<PRE>def add(a, b):\n<SUF>\n<MID>",
        "max_tokens": 64,
        "temperature": 0.0,
        "stop": ["\n\n"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }  # in particular no `suffix`: LM Studio rejects it


async def test_openai_without_model_lets_the_server_choose(server, client):
    await collect(OpenAIBackend(client, f"{server.url}/v1").stream(request()))
    assert "model" not in server.requests[-1].body


async def test_ollama_body(server, client):
    await collect(OllamaBackend(client, server.url, "qwen").stream(request(stop=["\n\n"], max_tokens=64)))
    assert server.requests[-1].body == {
        "model": "qwen",
        "prompt": "<PRE>def add(a, b):\n<SUF>\n<MID>",
        "raw": True,
        "stream": True,
        "think": False,
        "keep_alive": "30m",
        "options": {"num_predict": 64, "temperature": 0.0, "stop": ["\n\n"]},
    }


async def test_ollama_without_model_uses_the_first_listed(server, client):
    server.models = ["first", "second"]
    ollama = OllamaBackend(client, server.url)
    await collect(ollama.stream(request()))
    assert server.requests[-1].body["model"] == "first"
    server.models = []
    with pytest.raises(BackendError, match="no model"):
        await collect(OllamaBackend(client, server.url).stream(request()))


async def test_llamacpp_body(server, client):
    snippets = (Snippet("util.py", "def sub(a, b): ..."), Snippet("main.py", "import util"))
    req = request(stop=["\n\n"], max_tokens=64, snippets=snippets, timeout_ms=900)
    await collect(LlamaCppBackend(client, server.url).stream(req))
    assert server.requests[-1].body == {
        "input_prefix": "def add(a, b):\n",
        "input_suffix": "\n",
        "input_extra": [
            {"filename": "util.py", "text": "def sub(a, b): ..."},
            {"filename": "main.py", "text": "import util"},
        ],
        "prompt": "",
        "n_predict": 64,
        "temperature": 0.0,
        "stop": ["\n\n"],
        "stream": True,
        "cache_prompt": True,
        "timings_per_token": True,
        "t_max_predict_ms": 900,
        "id_slot": 0,
    }


async def test_llamacpp_raw_prompt_goes_to_completion_in_its_slot(server, client):
    """A next-edit rewrite: the prompt continued as it is on /completion, in the slot it names; the
    finish reason says whether the token limit cut it."""
    server.completion = "x = 1\ny = 2\n"
    req = GenerationRequest(prefix="", suffix="", prompt="<|file_sep|>updated/a.py", stop=["<|file_sep|>"],
                            max_tokens=2, raw=True, slot=1, timeout_ms=900)
    await collect(LlamaCppBackend(client, server.url).stream(req))
    assert server.requests[-1].path == "/completion"
    assert server.requests[-1].body == {
        "prompt": "<|file_sep|>updated/a.py", "n_predict": 2, "temperature": 0.0, "stop": ["<|file_sep|>"],
        "stream": True, "cache_prompt": True, "timings_per_token": True, "t_max_predict_ms": 900, "id_slot": 1,
    }
    assert req.finish_reason == "length"
    whole = GenerationRequest(prefix="", suffix="", prompt="p", max_tokens=64, raw=True)
    await collect(LlamaCppBackend(client, server.url).stream(whole))
    assert "id_slot" not in server.requests[-1].body and whole.finish_reason == "stop"


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_the_finish_reason_is_reported(server, client, kind):
    backend = OpenAIBackend(client, f"{server.url}/v1") if kind == "openai" else OllamaBackend(client, server.url)
    server.completion = "a b c d e f g h"
    cut = request(max_tokens=1)
    await collect(backend.stream(cut))
    full = request(max_tokens=64)
    await collect(backend.stream(full))
    assert (cut.finish_reason, full.finish_reason) == ("length", "stop")


async def test_llamacpp_puts_the_cursor_line_in_prompt(server, client):
    """input_prefix ends at the start of the cursor line, so it stays byte-identical while typing in a line
    (the server's cache keeps it); the line so far goes in `prompt`, which the server appends to it."""
    backend = LlamaCppBackend(client, server.url)
    bodies = []
    for typed in ("def add(a", "def add(a,", "def add(a, b"):
        await collect(backend.stream(GenerationRequest(prefix="x = 1\n\n" + typed, suffix=")\n", prompt="")))
        bodies.append(server.requests[-1].body)
    assert {b["input_prefix"] for b in bodies} == {"x = 1\n\n"}
    assert [b["prompt"] for b in bodies] == ["def add(a", "def add(a,", "def add(a, b"]
    assert all(b["input_suffix"] == ")\n" for b in bodies)


@pytest.mark.parametrize("kind", KINDS)
async def test_chat_template_path(server, client, kind):
    chunks = await collect(backend(kind, client, server.url).stream(request(prompt="", messages=MESSAGES)))
    assert "".join(chunks) == TEXT
    record = server.requests[-1]
    assert record.path == CHAT_PATH[kind]
    assert record.body["messages"] == MESSAGES and record.body["stream"] is True
    assert "prompt" not in record.body
    if kind == "ollama":
        assert record.body["think"] is False and record.body["keep_alive"] == "30m"


# -- list_models and health ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_list_models_and_health(server, client, kind):
    server.models = ["a", "b"]
    subject = backend(kind, client, server.url)
    assert await subject.list_models() == ["a", "b"]
    assert await subject.health() is True


@pytest.mark.parametrize("kind", KINDS)
async def test_health_false_when_nothing_listens(client, kind):
    subject = backend(kind, client, f"http://127.0.0.1:{closed_port()}")
    assert await subject.health() is False
    with pytest.raises(BackendError, match="cannot connect"):
        await subject.list_models()


async def test_health_needs_the_right_dialect(server, client):
    server.dialects = {"ollama"}
    assert await OpenAIBackend(client, f"{server.url}/v1").health() is False
    assert await LlamaCppBackend(client, server.url).health() is False
    assert await OllamaBackend(client, server.url).health() is True


async def test_list_models_404(server, client):
    server.dialects = {"ollama"}
    assert await LlamaCppBackend(client, server.url).list_models() == []  # an old llama-server
    with pytest.raises(BackendError, match="HTTP 404"):
        await OpenAIBackend(client, f"{server.url}/v1").list_models()


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["error", "drop", "garbage", "down"])
@pytest.mark.parametrize("chat", [False, True])
async def test_faults_raise_backend_error(server, client, kind, fault, chat):
    server.fault = fault
    req = request(messages=MESSAGES) if chat else request()
    with pytest.raises(BackendError) as info:
        async with asyncio.timeout(5):
            await collect(backend(kind, client, server.url).stream(req))
    assert kind in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_error_messages_hold_no_secrets(server, client, kind):
    server.fault = "error"
    url = server.url.replace("http://", "http://user:hunter2@")
    with pytest.raises(BackendError) as info:
        await collect(backend(kind, client, url).stream(request()))
    assert "hunter2" not in str(info.value) and "127.0.0.1" not in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_hang_timeout_closes_the_connection(server, client, kind):
    server.fault = "hang"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await collect(backend(kind, client, server.url).stream(request()))
    assert await hung_up(server)
    assert server.generation_requests()[-1].hung_up


async def test_slow_first_token_still_finishes(server, client):
    server.fault, server.slow_latency = "slow", 0.3
    start = time.monotonic()
    assert "".join(await collect(backend("ollama", client, server.url).stream(request()))) == TEXT
    assert time.monotonic() - start >= 0.3


# -- cancellation -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chat", [False, True])
async def test_cancelling_the_consumer_closes_the_stream(server, client, kind, chat):
    server.token_latency = 0.5
    first = asyncio.Event()

    async def consume():
        async for _ in backend(kind, client, server.url).stream(request(messages=MESSAGES) if chat else request()):
            first.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(2):
        await first.wait()
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await hung_up(server)
    record = server.generation_requests()[-1]
    assert record.hung_up and not record.completed and record.chunks_sent == 1
    assert record.ended - cancelled_at < 1.0


@pytest.mark.parametrize("kind", KINDS)
async def test_closing_the_generator_closes_the_stream(server, client, kind):
    server.token_latency = 0.5
    async with aclosing(backend(kind, client, server.url).stream(request())) as stream:
        assert await anext(stream)
    assert await hung_up(server)


async def test_connection_is_reused_after_a_complete_stream(server, client):
    subject = backend("llamacpp", client, server.url)
    for _ in range(3):
        await collect(subject.stream(request()))
    assert all(r.completed and not r.hung_up for r in server.requests)


# -- registry and auto probe --------------------------------------------------------------------


def test_registry(client):
    assert set(BACKENDS) == set(KINDS) == set(DEFAULT_ENDPOINTS)
    assert DEFAULT_ENDPOINTS == {
        "openai": "http://127.0.0.1:1234/v1",
        "ollama": "http://127.0.0.1:11434",
        "llamacpp": "http://127.0.0.1:8080",
    }
    for kind in KINDS:
        made = make_backend(kind, client)
        assert isinstance(made, LocalBackend) and made.name == kind and made.endpoint == DEFAULT_ENDPOINTS[kind]
    assert make_backend("ollama", client, "http://h:1/", "m").endpoint == "http://h:1"
    with pytest.raises(ValueError):
        make_backend("gpt", client)


@pytest.fixture
def fakes():
    """One fake per dialect, each answering only its own."""
    servers = {kind: FakeModelServer(TEXT, dialects={kind}).start() for kind in KINDS}
    yield servers
    for fake in servers.values():
        fake.stop()


def candidates(fakes) -> list[tuple[str, str]]:
    return [(kind, endpoint(kind, fakes[kind].url)) for kind in KINDS]


async def test_probe_prefers_lm_studio_then_ollama_then_llamacpp(fakes, client):
    found = await probe(client, candidates(fakes))
    assert isinstance(found, OpenAIBackend) and found.endpoint == f"{fakes['openai'].url}/v1"
    fakes["openai"].fault = "down"
    found = await probe(client, candidates(fakes))
    assert isinstance(found, OllamaBackend) and found.endpoint == fakes["ollama"].url
    fakes["ollama"].fault = "down"
    found = await probe(client, candidates(fakes))
    assert isinstance(found, LlamaCppBackend) and found.endpoint == fakes["llamacpp"].url
    fakes["llamacpp"].fault = "down"
    assert await probe(client, candidates(fakes)) is None


async def test_probe_ignores_a_server_of_another_kind(fakes, client):
    # the Ollama fake on LM Studio's port does not pass for LM Studio
    found = await probe(client, [("openai", fakes["ollama"].url + "/v1"), ("llamacpp", fakes["llamacpp"].url)])
    assert isinstance(found, LlamaCppBackend)


async def test_probe_env_override(fakes, client, monkeypatch):
    spec = ",".join(f"{kind}={url}" for kind, url in candidates(fakes)[1:])
    monkeypatch.setenv("TANDEM_AUTO_ENDPOINTS", f"bogus,{spec}")
    assert default_candidates() == candidates(fakes)[1:]
    found = await probe(client)
    assert isinstance(found, OllamaBackend) and found.endpoint == fakes["ollama"].url


def test_default_candidates_without_env(monkeypatch):
    monkeypatch.delenv("TANDEM_AUTO_ENDPOINTS", raising=False)
    assert default_candidates() == list(DEFAULT_ENDPOINTS.items())


async def test_probe_none_when_nothing_answers(client):
    start = time.monotonic()
    assert await probe(client, [(kind, f"http://127.0.0.1:{closed_port()}") for kind in KINDS]) is None
    assert time.monotonic() - start < 1.0


async def test_probe_is_concurrent_and_bounded(fakes, client):
    silent = []  # listening sockets that never answer: each check runs into the timeout
    for _ in KINDS:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        silent.append(sock)
    try:
        mute = [(kind, f"http://127.0.0.1:{sock.getsockname()[1]}") for kind, sock in zip(KINDS, silent)]
        start = time.monotonic()
        found = await probe(client, [*mute, ("llamacpp", fakes["llamacpp"].url)], timeout=0.4)
        elapsed = time.monotonic() - start
    finally:
        for sock in silent:
            sock.close()
    assert isinstance(found, LlamaCppBackend)
    assert 0.35 <= elapsed < 1.0  # three silent servers probed one after another would take 1.2 s


@pytest.mark.parametrize("body, n_ctx, requested", [
    (b'{"error": {"code": 400, "message": "request (9776 tokens) exceeds the available context size (8192 tokens), '
     b'try increasing it", "type": "exceed_context_size_error"}}', 8192, 9776),
    (b'{"error": {"message": "This model\'s maximum context length is 2048 tokens, however you requested 5128 tokens '
     b'(5000 in your prompt; 128 for the completion). Please reduce your prompt; or completion length.", '
     b'"type": "invalid_request_error"}}', 2048, 5000),
    (b'{"error": "Requested tokens (3000) exceed context window of 1024"}', 1024, 3000),
])
def test_a_context_error_keeps_the_servers_reason_and_numbers(body, n_ctx, requested):
    from tandem_lsp.backends._stream import status_error
    from tandem_lsp.backends.types import ContextError

    exc = status_error("openai", 400, "/v1/completions", body)
    assert isinstance(exc, ContextError)
    assert (exc.n_ctx, exc.requested) == (n_ctx, requested)
    assert str(exc).startswith("openai: HTTP 400 from /v1/completions: ")
    assert "context" in str(exc)


def test_an_error_body_gives_only_its_message_bounded_and_on_one_line():
    from tandem_lsp.backends._stream import error_reason, status_error

    assert error_reason(b'{"error": {"message": "model\\n  not   loaded"}}') == "model not loaded"
    assert error_reason(b"<html><body>" + b"x" * 5000 + b"</body></html>") == ""  # a page, not a reason
    assert len(error_reason(b'{"message": "' + b"y" * 5000 + b'"}')) <= 240
    exc = status_error("llamacpp", 503, "/infill", b'{"error": {"message": "Loading model", "code": 503}}')
    assert str(exc) == "llamacpp: HTTP 503 from /infill: Loading model"
    assert not isinstance(exc, __import__("tandem_lsp.backends.types", fromlist=["ContextError"]).ContextError)


def test_llamacpp_reports_the_servers_own_counters():
    from tandem_lsp.backends.llamacpp import report_from

    event = {"content": "x", "stop": False, "timings": {"cache_n": 1900, "prompt_n": 48, "prompt_ms": 520.0,
                                                         "predicted_n": 1, "predicted_ms": 60.0}}
    report = report_from(event, 2000)
    assert (report.prompt_tokens, report.cached_tokens, report.read_tokens) == (1948, 1900, 48)
    assert report.read_ms == 520.0 and report.prompt_chars == 2000
    assert report_from({"content": "x"}, 10) is None

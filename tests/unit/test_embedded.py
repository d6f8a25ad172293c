"""The embedded backend (llama-cpp-python in-process) on a tiny generated GGUF model: loading, native
FIM, streaming, cancellation, the KV-cache prefix reuse, failures, the manager's background loading,
and one end-to-end completion through the real language server."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import types as pytypes

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tandem_lsp.backends import manager as manager_mod
from tandem_lsp.backends.base import BackendError
from tandem_lsp.backends.embedded import EmbeddedBackend
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.completion.request import GenerationRequest
from tandem_lsp.completion.templating import pick_template
from tandem_lsp.config import LocalSettings

from tests.fakes.tiny_gguf import tiny_vocab, write_tiny_gguf

PREFIX = "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return "
SUFFIX = "\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-coder.gguf")


@pytest.fixture
async def backend(tiny_model):
    b = EmbeddedBackend(tiny_model, n_ctx=2048)
    await b.load()
    yield b
    await b.aclose()


def request(prefix: str = PREFIX, suffix: str = SUFFIX, **kw) -> GenerationRequest:
    kw.setdefault("max_tokens", 16)
    kw.setdefault("timeout_ms", 10_000)
    return GenerationRequest(prefix=prefix, suffix=suffix, prompt="", **kw)


async def collect(b: EmbeddedBackend, req: GenerationRequest) -> list[str]:
    return [chunk async for chunk in b.stream(req)]


# --- the model and its FIM tokens ----------------------------------------------------------------

def test_tiny_model_is_small_and_deterministic(tmp_path, tiny_model):
    assert tiny_model.stat().st_size < 1_000_000
    again = write_tiny_gguf(tmp_path / "again.gguf")
    assert again.read_bytes() == tiny_model.read_bytes()


async def test_fim_token_ids_found(backend, tiny_model):
    tokens, _, _ = tiny_vocab()
    ids = {t: i for i, t in enumerate(tokens)}
    assert backend.fim_ids == (ids["<|fim_prefix|>"], ids["<|fim_suffix|>"], ids["<|fim_middle|>"])
    assert await backend.health() is True
    assert await backend.list_models() == ["tiny-coder"]
    assert backend.name == "embedded" and backend.model == "tiny-coder" and backend.endpoint == str(tiny_model)


async def test_the_warm_up_leaves_nothing_behind(backend):
    """Load reads a short prompt to page the weights in and measure the reading speed, then forgets it."""
    assert backend.read_tokens_per_s > 0 and backend._llm.n_tokens == 0
    await collect(backend, request(max_tokens=4))
    assert backend.last_prompt_tokens_evaluated >= backend.last_prompt_tokens - 1  # nothing of it was cached


async def test_fim_tokens_found_by_their_text_without_metadata(tmp_path):
    """Conversions that predate the fim_*_token_id keys: llama.cpp finds Qwen's FIM tokens by their text,
    and <|fim_pad|> ends a generation."""
    import llama_cpp

    path = write_tiny_gguf(tmp_path / "no-fim-keys.gguf", fim_metadata=False)
    b = EmbeddedBackend(path, n_ctx=512)
    await b.load()
    try:
        assert not any("fim" in key for key in b._llm.metadata)
        tokens, _, _ = tiny_vocab()
        ids = {t: i for i, t in enumerate(tokens)}
        assert b.fim_ids == (ids["<|fim_prefix|>"], ids["<|fim_suffix|>"], ids["<|fim_middle|>"])
        assert llama_cpp.llama_vocab_is_eog(b._llm._model.vocab, ids["<|fim_pad|>"])
        assert "".join(await collect(b, request(max_tokens=8)))  # and it completes
    finally:
        await b.aclose()


async def test_native_fim_prompt_uses_the_models_tokens(backend):
    pre, suf, mid = backend.fim_ids
    req = request(prefix="x = <|fim_suffix|>", suffix="y")  # special-looking text stays plain text
    tokens = await asyncio.get_running_loop().run_in_executor(backend._executor, backend.prompt_tokens, req)
    assert tokens[0] == pre and tokens[-1] == mid
    assert tokens.count(suf) == 1  # the literal "<|fim_suffix|>" in the prefix was not parsed as a token
    assert backend._llm.detokenize(tokens[1 : tokens.index(suf)]) == b"x = <|fim_suffix|>"


async def test_long_prompts_are_cut_to_the_context(backend):
    req = request(prefix="a = 1\n" * 2000, suffix="b = 2\n" * 2000, max_tokens=64)
    tokens = await asyncio.get_running_loop().run_in_executor(backend._executor, backend.prompt_tokens, req)
    assert len(tokens) <= backend.n_ctx - 64
    chunks = await collect(backend, req)
    assert "".join(chunks)


async def test_the_suffix_gets_what_this_machine_reads_in_a_quarter_second(backend):
    """A keystroke re-reads the whole suffix, so its length follows the measured reading speed."""
    from tandem_lsp.backends import embedded

    loop = asyncio.get_running_loop()

    async def suffix_tokens(req) -> list[int]:
        tokens = await loop.run_in_executor(backend._executor, backend.prompt_tokens, req)
        pre, suf, mid = backend.fim_ids
        return tokens[tokens.index(suf) + 1 : -1]

    suffix = "".join(f"    y{i} = {i}\n" for i in range(400))
    req = request(prefix="def f():\n    x = ", suffix=suffix)
    assert backend.read_tokens_per_s and backend.read_tokens_per_s > 0  # measured by the warm-up at load
    measured = backend.read_tokens_per_s
    await collect(backend, request(prefix="z = 0\n" * 100, max_tokens=2))  # a prompt read: measured again
    assert backend.read_tokens_per_s != measured
    backend.read_tokens_per_s = None  # had nothing been measured: the first budget
    first = await suffix_tokens(req)
    assert len(first) <= embedded.SUFFIX_FIRST_TOKENS
    assert backend._llm.detokenize(first).decode().endswith("\n")  # whole lines when they fit
    backend.read_tokens_per_s = 400.0  # a machine that reads 400 tokens/s: 100 tokens in 0.25 s
    assert 90 <= len(await suffix_tokens(req)) <= 100
    backend.read_tokens_per_s = 20.0  # a slow one: the minimum
    assert len(await suffix_tokens(req)) <= embedded.SUFFIX_MIN_TOKENS
    backend.read_tokens_per_s = 1e9  # a very fast one: still at most a quarter of the prompt
    assert len(await suffix_tokens(req)) <= (backend.n_ctx - 16 - 1 - 3) // embedded.SUFFIX_SHARE


async def test_the_prompt_is_held_to_what_this_machine_reads_in_six_seconds(backend):
    """Opening (or switching to) a file reads the whole prompt: it is bounded by the measured reading
    speed, fixed once so that the start of the prompt, and so the cache, stays put while typing."""
    from tandem_lsp.backends import embedded

    loop = asyncio.get_running_loop()
    big = request(prefix="v = 1\n" * 3000, suffix="", max_tokens=16)

    async def prompt_len() -> int:
        return len(await loop.run_in_executor(backend._executor, backend.prompt_tokens, big))

    backend.read_tokens_per_s = backend.prompt_limit = None  # had nothing been measured
    assert await prompt_len() <= embedded.PROMPT_FIRST_TOKENS
    assert backend.prompt_limit is None  # not fixed before a measurement
    backend.read_tokens_per_s = 150.0  # a slow machine: 900 tokens in 6 s, in 256-token steps
    assert backend.prompt_budget() == 768
    assert 768 - 768 // 4 - 3 < await prompt_len() <= 768  # cut in steps of a quarter: see prompt_tokens
    backend.read_tokens_per_s = 5000.0  # faster now, but the bound stays where it was
    assert backend.prompt_budget() == 768
    backend.prompt_limit = None
    backend.read_tokens_per_s = 20.0
    assert backend.prompt_budget() == embedded.PROMPT_MIN_TOKENS
    backend.prompt_limit = None
    backend.read_tokens_per_s = 5000.0  # a fast machine: the context is the bound
    assert await prompt_len() <= backend.n_ctx - 16 - 1 and await prompt_len() > 1500


async def test_a_moving_text_window_still_finds_the_cached_start(backend):
    """The pipeline's text window may drop lines at its start while the user types at the end. When the
    prompt is cut to its token budget, the cut lands where the cached prompt started, so typing reads
    only what changed, until `quantum` tokens were typed and the start has to move on."""
    lines = [f"row_{i} = {i}\n" for i in range(300)]
    backend.prompt_limit = 256  # room 253: the prefix is cut, with room to type 64 tokens
    await collect(backend, request(prefix="".join(lines), suffix="", max_tokens=2))
    first = backend.last_prompt_tokens_evaluated
    assert first > 150
    reads = []
    typed = ""
    for ch in "total = row_1 + row_2 + row_3 + row_4 + row_5 + row_6 + row_7 + row_8":
        typed += ch
        window = "".join(lines[len(typed) // 10 :]) + typed  # drops a line at the start now and then
        await collect(backend, request(prefix=window, suffix="", max_tokens=2))
        reads.append(backend.last_prompt_tokens_evaluated)
    small = [r for r in reads if r <= 4]  # one typed token, the [SUF] [MID] after it, one generated
    assert len(small) >= len(reads) - 2, reads  # at most one re-read every 64 typed tokens
    assert max(reads) > 100  # ... and it did happen: 70 tokens were typed


# --- streaming -----------------------------------------------------------------------------------

async def test_streaming_yields_text_chunks(backend):
    before = backend.tokens_generated
    chunks = await collect(backend, request(max_tokens=24))
    assert len(chunks) >= 2 and all(isinstance(c, str) and c for c in chunks)
    text = "".join(chunks)
    assert text.isprintable() or all(c.isprintable() or c == "\n" for c in text)
    assert 2 <= backend.tokens_generated - before <= 25


async def test_stop_strings_end_the_stream(backend):
    text = "".join(await collect(backend, request(max_tokens=40)))
    stop = text[5:7]
    cut = "".join(await collect(backend, request(max_tokens=40, stop=[stop])))
    assert cut == text[: text.index(stop)]


async def test_cancellation_stops_within_one_token(backend):
    req = request(max_tokens=1900, timeout_ms=60_000)
    chunks: list[str] = []
    got_some = asyncio.Event()

    async def consume():
        async for chunk in backend.stream(req):
            chunks.append(chunk)
            if len(chunks) >= 3:
                got_some.set()

    before = backend.tokens_generated
    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(got_some.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.idle()
    assert backend.tokens_at_last_stop is not None
    assert backend.tokens_generated - backend.tokens_at_last_stop <= 1
    assert backend.tokens_generated - before < 1000  # nowhere near max_tokens


async def test_closing_the_generator_stops_within_one_token(backend):
    stream = backend.stream(request(max_tokens=1900, timeout_ms=60_000))
    first = await stream.__anext__()
    assert first
    await stream.aclose()
    await backend.idle()
    assert backend.tokens_generated - backend.tokens_at_last_stop <= 1


async def test_prefix_cache_is_reused_between_keystrokes(backend):
    prefix = "import os\n\n" + "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(12)) + "value = f3("
    await collect(backend, request(prefix="unrelated = 1\n", max_tokens=4))  # something else in the cache
    await collect(backend, request(prefix=prefix, max_tokens=4))
    first = backend.last_prompt_tokens_evaluated
    assert first >= backend.last_prompt_tokens - 1 > 300  # only [FIM_PRE] was shared with the prompt before
    await collect(backend, request(prefix=prefix + "2", max_tokens=4))
    second = backend.last_prompt_tokens_evaluated
    assert second < first / 10, (first, second)


async def test_a_cancel_lands_between_prompt_chunks(backend, monkeypatch):
    """A long new prompt is evaluated in chunks; a cancel during it stops after the chunk in progress, and
    the chunks already evaluated stay cached for the next keystroke."""
    from tandem_lsp.backends import embedded

    monkeypatch.setattr(embedded, "PREFILL_CHUNK", 32)
    prefix = "".join(f"def g{i}(x):\n    return x + {i}\n\n" for i in range(40)) + "total = g7("
    await collect(backend, request(prefix="unrelated = 1\n", max_tokens=2))
    loop = asyncio.get_running_loop()
    llm = backend._llm
    calls: list[int] = []
    wrapped = llm.eval

    def eval_then_cancel(tokens):
        calls.append(len(tokens))
        wrapped(tokens)
        if len(calls) == 2:  # the user types on while the prompt is being read
            loop.call_soon_threadsafe(task.cancel)
            time.sleep(0.3)  # the event loop handles the cancel meanwhile

    monkeypatch.setattr(llm, "eval", eval_then_cancel)
    task = asyncio.ensure_future(collect(backend, request(prefix=prefix, max_tokens=8)))
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.idle()
    total = backend.last_prompt_tokens
    assert total > 600
    assert len(calls) == 2 and sum(calls) == 64 and backend.tokens_generated == backend.tokens_at_last_stop
    calls.clear()
    await collect(backend, request(prefix=prefix, max_tokens=2))  # the next request reuses those chunks
    # [FIM_PRE] and the two chunks are cached: the rest of the prompt but its last token, in chunks, then
    # generate() evaluates that last token and the first generated one
    assert calls[-2:] == [1, 1] and max(calls) == 32, calls
    assert sum(calls[:-2]) == (total - 1) - (1 + 64), (calls, total)


# --- failures ------------------------------------------------------------------------------------

async def test_missing_file_is_a_clear_error(tmp_path):
    b = EmbeddedBackend(tmp_path / "nope.gguf")
    with pytest.raises(BackendError, match="model file not found: .*nope.gguf"):
        await b.load()
    assert b.state == "failed" and await b.health() is False
    with pytest.raises(BackendError, match="not found"):
        await collect(b, request())
    await b.aclose()


@pytest.mark.parametrize("kind", ["random", "gguf-magic", "truncated"])
async def test_corrupt_file_is_a_clear_error(tmp_path, tiny_model, kind):
    path = tmp_path / "bad.gguf"
    if kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "gguf-magic":
        path.write_bytes(b"GGUF" + os.urandom(4096))
    else:
        path.write_bytes(tiny_model.read_bytes()[:50_000])
    b = EmbeddedBackend(path)
    with pytest.raises(BackendError, match="bad.gguf") as err:
        await b.load()
    assert "not a GGUF" in str(err.value) or "cannot load" in str(err.value)
    await b.aclose()


# --- the manager ---------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.statuses: list = []
        self.messages: list[str] = []

    def __call__(self, status, message):
        self.statuses.append(status)
        if message:
            self.messages.append(message)


async def wait_resolved(model: LocalModel, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resolved = await model.ensure()
        if resolved is not None:
            return resolved
        await asyncio.sleep(0.02)
    raise AssertionError(f"not resolved: {model.status}")


async def test_manager_loads_the_embedded_model_in_the_background(tiny_model, monkeypatch):
    monkeypatch.setattr(manager_mod, "REPROBE_INTERVAL_S", 0.0)
    rec = Recorder()
    model = LocalModel(LocalSettings(backend="embedded", model_path=str(tiny_model)), on_status=rec)
    started = time.monotonic()
    assert await model.ensure() is None  # loading has only started
    assert time.monotonic() - started < 0.5
    assert model.status.state == "starting" and "loading embedded model tiny-coder.gguf" in model.status.detail
    assert any("loading the embedded model" in m for m in rec.messages)
    backend = await wait_resolved(model)
    assert backend.name == "embedded" and backend.endpoint == str(tiny_model)
    assert pick_template("auto", backend.model, native_fim=bool(backend.fim_ids)).name == "qwen"
    assert model.status.state == "ready" and model.status.model == "tiny-coder"
    assert any("loaded" in m for m in rec.messages)
    chunks = [c async for c in backend.stream(request(max_tokens=8))]
    assert chunks
    # a generation failure does not reload the model
    model.report_failure("no answer within local.timeoutMs")
    assert await model.ensure() is backend
    await model.aclose()


async def test_manager_reports_a_load_failure_once(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_mod, "REPROBE_INTERVAL_S", 0.0)
    rec = Recorder()
    model = LocalModel(LocalSettings(backend="embedded", model_path=str(tmp_path / "missing.gguf")), on_status=rec)
    assert await model.ensure() is None
    for _ in range(100):
        await asyncio.sleep(0.02)
        assert await model.ensure() is None
        if model.status.state == "down":
            break
    for _ in range(5):
        assert await model.ensure() is None
    assert model.status.state == "down" and "missing.gguf" in model.status.detail
    failures = [m for m in rec.messages if "unavailable" in m]
    assert len(failures) == 1 and "model file not found" in failures[0]
    await model.aclose()


async def test_manager_embedded_without_a_model_file(monkeypatch):
    monkeypatch.setitem(sys.modules, "tandem_lsp.models", None)  # the models module is absent
    rec = Recorder()
    model = LocalModel(LocalSettings(backend="embedded"), on_status=rec)
    assert await model.ensure() is None
    assert model.status.state == "down" and "local.modelPath" in model.status.detail
    await model.aclose()


async def test_auto_falls_back_to_the_default_model_file(tiny_model, monkeypatch):
    from tandem_lsp.backends import auto

    async def no_server(client, *args, **kwargs):
        return None

    monkeypatch.setattr(auto, "probe", no_server)
    fake_models = pytypes.ModuleType("tandem_lsp.model_files")
    fake_models.default_model_path = lambda: tiny_model
    monkeypatch.setitem(sys.modules, "tandem_lsp.model_files", fake_models)
    monkeypatch.setattr(manager_mod, "REPROBE_INTERVAL_S", 0.0)
    model = LocalModel(LocalSettings(backend="auto"))
    backend = await wait_resolved(model)
    assert backend.name == "embedded" and backend.path == tiny_model
    await model.aclose()


async def test_auto_without_server_or_model_file_reports_no_server(tmp_path, monkeypatch):
    from tandem_lsp.backends import auto

    async def no_server(client, *args, **kwargs):
        return None

    monkeypatch.setattr(auto, "probe", no_server)
    model = LocalModel(LocalSettings(backend="auto", model_path=str(tmp_path / "absent.gguf")))
    model.status = manager_mod.ModelStatus(state="ready", backend="openai", model="the-one-before")  # as before a settings change
    assert await model.ensure() is None
    assert model.status.state == "down" and "no local model server found" in model.status.detail
    from tandem_lsp import models
    from tandem_lsp.backends import manager

    assert manager.RECOMMENDED is models.RECOMMENDED and models.RECOMMENDED in models.CATALOGUE  # one name
    assert f"tandem-lsp models pull {models.RECOMMENDED}" in model.status.detail
    assert model.status.model is None and model.status.backend is None  # no stale name in the status bar
    await model.aclose()


# --- end to end through the language server ------------------------------------------------------

async def test_end_to_end_inline_completion(tiny_model):
    from lsprotocol import types
    from pytest_lsp import ClientServerConfig, client_capabilities

    config = ClientServerConfig(server_command=[sys.executable, "-m", "tandem_lsp"], server_env={**os.environ})
    client = await config.start()
    try:
        started = time.monotonic()
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={"local": {"backend": "embedded", "modelPath": str(tiny_model)},
                                        "completion": {"debounceMs": 0}},
                root_uri="file:///project",
            )
        )
        assert time.monotonic() - started < 10  # answered without waiting for the model
        uri = "file:///project/calc.py"
        text = "def add(a, b):\n    return \n"
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        deadline = time.monotonic() + 30
        items = []
        while time.monotonic() < deadline and not items:
            result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=11),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            ))
            items = (result.items if isinstance(result, types.InlineCompletionList) else result) or []
            if not items:
                await asyncio.sleep(0.2)
        assert items and isinstance(items[0].insert_text, str) and items[0].insert_text
        await client.shutdown_session()
    finally:
        await client.stop()


async def test_a_prompt_with_lone_surrogates_and_nul_is_generated_from(backend):
    """Issue 10, item 1: UTF-8 cannot encode a lone surrogate (an editor can send one as a JSON escape);
    it is replaced, not a failed generation (which made the status say "down")."""
    chunks = await collect(backend, request(prefix="x = '\ud800'\0\n" + PREFIX, suffix="\udfff" + SUFFIX))
    assert chunks
    chat = GenerationRequest(prefix="", suffix="", prompt="", max_tokens=8, timeout_ms=10_000,
                             messages=[{"role": "user", "content": "explain '\ud800'"}])
    assert await collect(backend, chat)


async def test_a_raw_prompt_is_read_as_it_is_not_as_fill_in_the_middle(backend):
    """Next-edit rewrites continue their prompt: no FIM tokens around it, even on a FIM model."""
    prompt = "<|file_sep|>current/a.py\nx = 1\n<|file_sep|>updated/a.py"
    raw = GenerationRequest(prefix="", suffix="", prompt=prompt, raw=True, max_tokens=4, timeout_ms=10_000)
    tokens = await asyncio.get_running_loop().run_in_executor(backend._executor, backend.prompt_tokens, raw)
    pre, suf, mid = backend.fim_ids
    assert pre not in tokens and suf not in tokens and mid not in tokens
    assert backend._llm.detokenize(tokens).decode().endswith("updated/a.py")
    assert "".join(await collect(backend, raw)) is not None
    assert raw.finish_reason in ("stop", "length")


async def test_end_to_end_next_edit_from_a_sweep_named_model_file(tmp_path, tiny_model):
    """A model file named as the catalogue names Sweep's (``sweep-next-edit-1.5b.gguf``) turns next edits on
    by itself (no nextEdit setting) with the sweep template, run in-process as a raw prompt; the call is a
    local call in the ledger. (The tiny model writes noise: whether its rewrite yields edits is not the point.)"""
    from lsprotocol import types
    from pytest_lsp import ClientServerConfig, client_capabilities

    model = tmp_path / "sweep-next-edit-1.5b.gguf"
    model.write_bytes(tiny_model.read_bytes())
    env = {**os.environ, "TANDEM_STATE_DIR": str(tmp_path / "state")}
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "tandem_lsp"], server_env=env).start()
    try:
        await client.initialize_session(types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri="file:///project",
            initialization_options={"local": {"backend": "embedded", "modelPath": str(model)},
                                    "nextEdit": {"debounceMs": 0}}))
        uri = "file:///project/geometry.py"
        text = "def area(width, height):\n    return width * height\n"
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        rng = types.Range(start=types.Position(line=0, character=9), end=types.Position(line=0, character=14))
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text="w")]))
        params = {"textDocument": {"uri": uri, "version": 2}, "position": {"line": 0, "character": 10}}
        stats = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # asked again while the model loads in the background
            answer = await client.protocol.send_request_async("textDocument/copilotInlineEdit", params)
            assert isinstance(getattr(answer, "edits", None), (list, tuple))
            stats = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="tandem.stats"))
            if stats["nextEdit"]["modelCalls"]:
                break
            await asyncio.sleep(0.3)
        assert stats["nextEdit"]["modelCalls"] >= 1 and stats["localModel"]["model"] == "sweep-next-edit-1.5b"
        assert stats["local"]["calls"] >= 1  # recorded in the ledger as a local call
        await client.shutdown_session()
    finally:
        await client.stop()

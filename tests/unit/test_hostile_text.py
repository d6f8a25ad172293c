"""Text that JSON or UTF-8 cannot carry (issue 10, item 1): a lone surrogate (a JSON escape such as
"\\ud800" that an editor can send), NUL, anywhere in a document, a snippet or a recent edit, must never
break a request. What cannot be encoded is replaced, per piece of text, where requests are encoded
(``backends._stream``); the cloud path and the ledger survive such text too; and the status says
"down" only when the model is.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tandem_lsp.backends import make_backend
from tandem_lsp.backends._stream import encode_json_body
from tandem_lsp.backends.anthropic import AnthropicBackend
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.completion.pipeline import CompletionEngine
from tandem_lsp.completion.request import CompletionRequest, GenerationRequest
from tandem_lsp.config import parse_settings
from tandem_lsp.ledger import Ledger
from tandem_lsp.safe_text import REPLACEMENT, clean
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.model_server import FakeModelServer

LONE = "\ud800"
POISON = f"x = '{LONE}'\ny = '\udfff'\0\n"


def test_clean_replaces_only_what_cannot_be_encoded_keeping_lengths():
    assert clean(POISON) == f"x = '{REPLACEMENT}'\ny = '{REPLACEMENT}'{REPLACEMENT}\n"
    assert len(clean(POISON)) == len(POISON)
    ok = "déjà vu 😀 \t\r\n\f\u2028"
    assert clean(ok) is ok  # nothing to replace: the same object, no copy
    nested = {"a": [POISON, 1, None, 2.5, {"b": LONE}], LONE: True}
    assert clean(nested) == {"a": [clean(POISON), 1, None, 2.5, {"b": REPLACEMENT}], REPLACEMENT: True}


def test_the_encoded_body_is_valid_utf8_json_with_each_bad_character_replaced():
    body = {"prompt": "def f():\n    return 1\n" + POISON, "stop": ["\n\n"], "n": 3}
    data = encode_json_body(body)
    decoded = json.loads(data.decode("utf-8"))  # strict UTF-8: a lone surrogate would not decode
    assert decoded == {"prompt": "def f():\n    return 1\n" + clean(POISON), "stop": ["\n\n"], "n": 3}
    plain = {"prompt": "a = 1\n", "x": "é"}
    assert encode_json_body(plain) == json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()
    # a literal backslash-u-0000 in the text is text, not a NUL: left alone
    assert json.loads(encode_json_body({"t": "\\u0000"}))["t"] == "\\u0000"


@pytest.mark.parametrize("kind", ["openai", "ollama", "llamacpp"])
async def test_every_backend_sends_a_prompt_with_a_lone_surrogate(kind):
    with FakeModelServer("return 1\n") as fake:
        async with httpx.AsyncClient() as client:
            backend = make_backend(kind, client, f"{fake.url}/v1" if kind == "openai" else fake.url, "m")
            request = GenerationRequest(prefix="def f():\n" + POISON, suffix=LONE + "\n",
                                        prompt="<PRE>def f():\n" + POISON + "<SUF>" + LONE + "<MID>")
            text = "".join([chunk async for chunk in backend.stream(request)])
            chat = GenerationRequest(prefix="", suffix="", prompt="", messages=[
                {"role": "system", "content": LONE}, {"role": "user", "content": POISON}])
            chat_text = "".join([chunk async for chunk in backend.stream(chat)])
    assert text == "return 1\n" and chat_text == "return 1\n"
    bodies = json.dumps([r.body for r in fake.generation_requests()], ensure_ascii=False)
    assert REPLACEMENT in bodies and LONE not in bodies


async def test_a_poisoned_open_document_does_not_stop_completions_elsewhere_nor_mark_the_model_down():
    with FakeModelServer("return a + b\n") as fake:
        settings, _ = parse_settings({"local": {"backend": "openai", "endpoint": f"{fake.url}/v1"},
                                      "completion": {"debounceMs": 0}})
        statuses: list[str] = []
        model = LocalModel(settings.local, on_status=lambda status, message: statuses.append(status.state))
        engine = CompletionEngine(settings, model, open_documents=lambda: [("file:///a.py", POISON)])
        engine.prefetch_enabled = False
        engine.document_changed("file:///c.py", POISON, 1)  # a recent edit in another file
        try:
            text = "def add(a, b):\n    "
            suggestion = await engine.complete(CompletionRequest(uri="file:///b.py", text=text, offset=len(text),
                                                                 language_id="python", invoked=True))
        finally:
            await engine.aclose()
    assert suggestion is not None and suggestion.text.startswith("return a + b")
    assert "down" not in statuses
    sent = json.dumps([r.body for r in fake.generation_requests()], ensure_ascii=False)
    assert REPLACEMENT in sent and LONE not in sent


async def test_an_unexpected_error_is_not_reported_as_the_model_being_down():
    """A bug in Tandem (here: a backend that raises something that is not a BackendError) fails the
    request, and says so in the log, but the status stays what the model's is."""
    with FakeModelServer("return 1\n") as fake:
        settings, _ = parse_settings({"local": {"backend": "openai", "endpoint": f"{fake.url}/v1"},
                                      "completion": {"debounceMs": 0}})
        statuses: list[str] = []
        model = LocalModel(settings.local, on_status=lambda status, message: statuses.append(status.state))
        engine = CompletionEngine(settings, model)
        engine.prefetch_enabled = False
        backend = await model.ensure()

        async def broken(request):
            raise UnicodeEncodeError("utf-8", LONE, 0, 1, "surrogates not allowed")
            yield ""  # pragma: no cover

        backend.stream = broken
        try:
            suggestion = await engine.complete(CompletionRequest(uri="file:///b.py", text="x = ", offset=4,
                                                                 language_id="python", invoked=True))
        finally:
            await engine.aclose()
    assert suggestion is None
    assert "down" not in statuses


async def test_the_cloud_backend_sends_text_with_lone_surrogates():
    key = "sk-ant-test-SECRET-0123456789"
    with FakeAnthropicServer("fixed\n", chunk_size=4, api_key=key) as fake:
        backend = AnthropicBackend(api_key=key, model="claude-test", base_url=fake.url, timeout_ms=5000)
        try:
            result = await backend.complete(system="system " + LONE,
                                            messages=[{"role": "user", "content": POISON}], max_tokens=64)
        finally:
            await backend.aclose()
    assert result.text == "fixed\n"
    (sent,) = fake.message_requests()
    assert sent.body["messages"] == [{"role": "user", "content": clean(POISON)}]
    assert sent.body["system"][0]["text"] == "system " + REPLACEMENT


def test_the_ledger_records_text_with_lone_surrogates(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.record(tier="local", task="ask", model="m" + LONE, input_tokens=1, output_tokens=1, latency_ms=1.0,
                      fallback_reason="cloud unavailable: " + POISON)
        assert ledger.stats()["local"]["calls"] == 1
        (model, reason), = ledger._query_all("SELECT model, fallback_reason FROM calls")
    assert model == "m" + REPLACEMENT and reason == "cloud unavailable: " + clean(POISON)

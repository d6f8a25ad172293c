"""The cloud backend (tandem_lsp.backends.anthropic) against the real-HTTP fake of the Messages API.

Everything goes through the installed `anthropic` SDK to tests.fakes.anthropic_server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tandem_lsp.backends.anthropic import (
    RETRY_AFTER_CAP_S,
    AnthropicBackend,
    CloudError,
    CloudResult,
    parse_retry_after,
)

from tests.fakes.anthropic_server import FakeAnthropicServer

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-ant-test-SECRET-0123456789"
MODEL = "claude-sonnet-test"
SYSTEM = "You are Tandem's code assistant. Answer with code only.\n" * 20
MESSAGES = [{"role": "user", "content": "Fix add(a, b) so that it adds."}]
TEXT = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def fake():
    with FakeAnthropicServer(TEXT, chunk_size=4, api_key=KEY) as server:
        yield server


@pytest.fixture
async def make_backend(fake):
    made: list[AnthropicBackend] = []

    def make(**overrides) -> AnthropicBackend:
        options = {"api_key": KEY, "model": MODEL, "base_url": fake.url, "timeout_ms": 5000} | overrides
        backend = AnthropicBackend(**options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


async def fail(backend: AnthropicBackend, **kwargs) -> CloudError:
    with pytest.raises(CloudError) as info:
        await backend.complete(system=SYSTEM, messages=MESSAGES, **kwargs)
    return info.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- success -----------------------------------------------------------------------------------


async def test_streams_text_chunks_usage_and_prompt_cache(fake, make_backend):
    backend = make_backend()
    chunks: list[str] = []
    first = await backend.complete(system=SYSTEM, messages=MESSAGES, max_tokens=256, on_text=chunks.append)

    assert isinstance(first, CloudResult)
    assert first.text == TEXT
    assert chunks == [TEXT[i : i + 4] for i in range(0, len(TEXT), 4)]
    assert first.model == MODEL and first.stop_reason == "end_turn"
    assert first.output_tokens == len(chunks)
    total, cacheable = fake.token_counts(fake.message_requests()[0].body)
    assert cacheable > 0
    assert (first.input_tokens, first.cache_write_tokens, first.cache_read_tokens) == (total - cacheable, cacheable, 0)
    assert first.latency_ms > 0

    second = await backend.complete(system=SYSTEM, messages=MESSAGES, max_tokens=256)
    assert second.text == TEXT
    assert (second.input_tokens, second.cache_write_tokens, second.cache_read_tokens) == (total - cacheable, 0, cacheable)
    assert [r.completed for r in fake.message_requests()] == [True, True]


async def test_request_body_and_headers(fake, make_backend):
    await make_backend().complete(system=SYSTEM, messages=MESSAGES, max_tokens=321)

    (request,) = fake.message_requests()
    assert request.body == {
        "model": MODEL,
        "max_tokens": 321,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": MESSAGES,
        "stream": True,
    }
    # anthropic 2.x sends `api_key=` as `Authorization: Bearer KEY`; the HTTP API also takes `x-api-key: KEY`.
    assert request.headers.get("x-api-key") == KEY or request.headers.get("authorization") == f"Bearer {KEY}"
    assert request.headers.get("anthropic-version")
    assert request.headers.get("content-type") == "application/json"


async def test_text_arrives_while_the_stream_is_running(fake, make_backend):
    fake.token_latency = 0.05
    stamps: list[float] = []
    result = await make_backend().complete(system=SYSTEM, messages=MESSAGES, on_text=lambda _: stamps.append(time.monotonic()))
    assert result.text == TEXT
    assert stamps[-1] - stamps[0] >= 0.05 * (len(stamps) - 1) * 0.8  # delivered one by one, not at the end


async def test_max_tokens_cut_reports_stop_reason(fake, make_backend):
    result = await make_backend().complete(system=SYSTEM, messages=MESSAGES, max_tokens=2)
    assert result.text == TEXT[:8] and result.output_tokens == 2 and result.stop_reason == "max_tokens"


async def test_fake_answers_the_sdk_without_streaming(fake):
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=fake.url, max_retries=0, timeout=5)
    try:
        message = await client.messages.create(
            model=MODEL, max_tokens=50, messages=MESSAGES, stop_sequences=["return"]
        )
    finally:
        await client.close()
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.content[0].type == "text" and message.content[0].text == TEXT[: TEXT.index("return")]
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "return"
    assert message.usage.input_tokens > 0 and message.usage.cache_read_input_tokens == 0


# -- faults ------------------------------------------------------------------------------------


async def test_rate_limit_with_long_retry_after_is_not_retried_by_the_sdk(fake, make_backend):
    fake.fault, fake.retry_after = "rate_limit", 30
    started = time.monotonic()
    error = await fail(make_backend(max_retries=1))
    assert error.kind == "rate_limited" and error.retry_after == 30 and error.status == 429
    assert time.monotonic() - started < 2  # the SDK did not sleep 30 s: the router's breaker decides
    assert len(fake.message_requests()) == 1


async def test_rate_limit_with_short_retry_after_is_retried_once(fake, make_backend):
    fake.fault, fake.retry_after, fake.fault_count = "rate_limit", 0.1, 1
    result = await make_backend(max_retries=1).complete(system=SYSTEM, messages=MESSAGES)
    assert result.text == TEXT
    requests = fake.message_requests()
    assert len(requests) == 2 and requests[1].headers["x-stainless-retry-count"] == "1"

    fake.fault, fake.retry_after = "rate_limit", 0.1  # every time now: one retry, then the error
    fake.reset()
    error = await fail(make_backend(max_retries=1))
    assert error.kind == "rate_limited" and error.retry_after == pytest.approx(0.1)
    assert len(fake.message_requests()) == 2
    assert RETRY_AFTER_CAP_S > 0.1


@pytest.mark.parametrize("status", [500, 529])
async def test_server_error(fake, make_backend, status):
    fake.fault, fake.server_error_status = "server_error", status
    error = await fail(make_backend(max_retries=0))
    assert error.kind == "server_error" and error.status == status and error.retry_after is None
    assert ("overloaded_error" if status == 529 else "api_error") in error.message
    assert len(fake.message_requests()) == 1


async def test_server_error_is_retried_once_by_default(fake, make_backend):
    fake.fault, fake.fault_count = "server_error", 1
    result = await make_backend().complete(system=SYSTEM, messages=MESSAGES)  # max_retries=1 by default
    assert result.text == TEXT and len(fake.message_requests()) == 2


async def test_hang_times_out_and_hangs_up(fake, make_backend):
    fake.fault = "hang"
    started = time.monotonic()
    error = await fail(make_backend(timeout_ms=300, max_retries=0))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 2
    assert await asyncio.to_thread(fake.wait_for_hangup, 2)


async def test_stall_mid_stream_times_out_within_the_deadline(fake, make_backend):
    fake.first_token_latency = 10  # head and message_start sent, then nothing
    started = time.monotonic()
    error = await fail(make_backend(timeout_ms=400, max_retries=1))
    assert error.kind == "timeout"
    assert time.monotonic() - started < 2  # timeout_ms bounds the whole call
    assert await asyncio.to_thread(fake.wait_for_hangup, 2)


async def test_drop_mid_stream_is_a_server_error(fake, make_backend):
    """A stream that breaks after it began is `server_error` (the API was reachable, the answer broke);
    `offline` is kept for failures to reach it at all. Not retried: the SDK had returned the stream."""
    fake.fault, fake.drop_after = "drop", 2
    chunks: list[str] = []
    error = await fail(make_backend(), on_text=chunks.append)
    assert error.kind == "server_error"
    assert chunks == [TEXT[:4], TEXT[4:8]]
    assert len(fake.message_requests()) == 1


async def test_unreachable_api_is_offline(make_backend):
    backend = make_backend(base_url=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    error = await fail(backend)
    assert error.kind == "offline"


async def test_wrong_key_is_auth_and_not_retried(fake, make_backend):
    error = await fail(make_backend(api_key="sk-ant-WRONG-9876543210"))
    assert error.kind == "auth" and error.status == 401
    assert len(fake.message_requests()) == 1


async def test_missing_key_is_auth_without_a_request(fake, make_backend):
    error = await fail(make_backend(api_key=""))
    assert error.kind == "auth"
    assert fake.requests == []


async def test_invalid_request_is_bad_request(fake, make_backend):
    with pytest.raises(CloudError) as info:
        await make_backend().complete(system=SYSTEM, messages=[])
    assert info.value.kind == "bad_request" and info.value.status == 400


# -- cancellation --------------------------------------------------------------------------------


async def test_cancelling_the_caller_closes_the_stream_at_once(fake, make_backend):
    fake.token_latency = 0.5
    backend = make_backend()
    first_chunk = asyncio.Event()
    task = asyncio.create_task(backend.complete(system=SYSTEM, messages=MESSAGES, on_text=lambda _: first_chunk.set()))
    await asyncio.wait_for(first_chunk.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.wait_for_hangup, 1.0)
    (request,) = fake.message_requests()
    assert request.hung_up and not request.completed
    assert request.ended - cancelled_at < 1.0
    # the backend still works afterwards
    fake.token_latency = 0
    assert (await backend.complete(system=SYSTEM, messages=MESSAGES)).text == TEXT


async def test_aclose_cancels_calls_in_flight(fake, make_backend):
    fake.token_latency = 0.5
    backend = make_backend()
    task = asyncio.create_task(backend.complete(system=SYSTEM, messages=MESSAGES))
    assert await asyncio.to_thread(fake.wait_for, lambda: fake.message_requests(), 5)
    await backend.aclose()
    with pytest.raises(CloudError) as info:
        await task
    assert info.value.kind == "cancelled"
    assert await asyncio.to_thread(fake.wait_for_hangup, 1.0)
    error = await fail(backend)
    assert error.kind == "cancelled"


# -- the key stays secret; the SDK loads lazily ---------------------------------------------------


async def test_key_never_appears_in_errors_or_logs(fake, make_backend, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[CloudError] = []
    await make_backend().complete(system=SYSTEM, messages=MESSAGES)
    errors.append(await fail(make_backend(api_key=KEY + "-wrong")))
    fake.fault, fake.retry_after = "rate_limit", 30
    errors.append(await fail(make_backend()))
    fake.fault = "drop"
    errors.append(await fail(make_backend()))
    fake.fault = "hang"
    errors.append(await fail(make_backend(timeout_ms=200, max_retries=0)))

    assert [e.kind for e in errors] == ["auth", "rate_limited", "server_error", "timeout"]
    for error in errors:
        for text in (str(error), repr(error), error.message, *map(str, error.args)):
            assert KEY not in text
        assert error.__cause__ is None and error.__suppress_context__
    assert caplog.records  # the SDK and the backend did log at DEBUG
    assert KEY not in caplog.text
    assert KEY not in repr(make_backend())


def test_importing_the_module_does_not_import_the_sdk():
    code = (
        "import sys, tandem_lsp.backends.anthropic as m; "
        "assert 'anthropic' not in sys.modules and 'httpx2' not in sys.modules, "
        "[n for n in sys.modules if n.startswith(('anthropic', 'httpx2'))]; "
        "assert m.CloudError and m.AnthropicBackend"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


def test_parse_retry_after():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= parse_retry_after({"retry-after": future}) <= 61
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_cloud_error_kinds():
    error = CloudError("rate_limited", "slow down", retry_after=3.0, status=429)
    assert (error.kind, error.retry_after, error.status, str(error)) == ("rate_limited", 3.0, 429, "slow down")
    with pytest.raises(ValueError):
        CloudError("nope", "x")

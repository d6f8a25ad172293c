"""The helpers the real-server tests read counters with: Prometheus text, llama.cpp's perf lines, and the
recording proxy (against the fake model server here; tests/e2e/test_real_servers.py uses the real ones)."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.model_server import FakeModelServer
from tests.realservers import parse_prometheus, parse_prompt_evals
from tests.recording_proxy import RecordingProxy


def test_prometheus_text_becomes_a_dict():
    text = (
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed\n"
        "# TYPE llamacpp:prompt_tokens_total counter\n"
        "llamacpp:prompt_tokens_total 1234\n"
        "llamacpp:prompt_tokens_seconds 98.5\n"
        'llamacpp:spec_decode_num_accepted_tokens_per_pos_total{pos="0"} 3\n'
        "\n"
        "not a number here\n"
    )
    assert parse_prometheus(text) == {
        "llamacpp:prompt_tokens_total": 1234.0,
        "llamacpp:prompt_tokens_seconds": 98.5,
        'llamacpp:spec_decode_num_accepted_tokens_per_pos_total{pos="0"}': 3.0,
    }


def test_prompt_eval_lines_of_both_servers():
    log = (
        "llama_perf_context_print: prompt eval time =       0.04 ms /    17 tokens (    0.00 ms per token)\n"
        "llama_perf_context_print:        eval time =       1.00 ms /     7 runs   (    0.14 ms per token)\n"
        "slot print_timing: id  0 | task 12 | prompt eval time =      12.50 ms /  2048 tokens (    0.01 ms per token)\n"
        "slot print_timing: id  0 | task 12 |        eval time =      30.00 ms /    32 tokens\n"
    )
    assert parse_prompt_evals(log) == [17, 2048]


@pytest.fixture
def fake():
    server = FakeModelServer(completion="return a + b\n").start()
    yield server
    server.stop()


def test_the_proxy_forwards_and_records_a_stream(fake):
    proxy = RecordingProxy(fake.url).start()
    try:
        body = {"input_prefix": "def add(a, b):\n", "prompt": "    ", "input_suffix": "\n", "n_predict": 16,
                "stream": True}
        with httpx.stream("POST", f"{proxy.url}/infill", json=body, timeout=5) as response:
            events = [line for line in response.iter_lines() if line.startswith("data:")]
        proxy.wait_idle()
        [ex] = proxy.exchanges("/infill")
        assert ex.status == 200 and ex.body == body and not ex.client_closed
        assert len(ex.events) == len(events) and ex.events[-1].get("stop") is True
        assert "".join(e.get("content", "") for e in ex.events) == "return a + b\n"
        assert fake.generation_requests()[0].body == body  # what the server got is what was sent
    finally:
        proxy.stop()


def test_the_proxy_keeps_an_error_answer(fake):
    fake.fault = "error"
    proxy = RecordingProxy(fake.url).start()
    try:
        response = httpx.post(f"{proxy.url}/v1/completions", json={"prompt": "x", "stream": True}, timeout=5)
        proxy.wait_idle()
        [ex] = proxy.exchanges()
        assert response.status_code == ex.status >= 500
        assert ex.error_text == response.text
    finally:
        proxy.stop()

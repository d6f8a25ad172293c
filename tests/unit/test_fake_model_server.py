"""The fake model server, checked with plain httpx: dialects, latency, faults, hang-up detection, CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
from tests.fakes.model_server import FakeModelServer

TEXT = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def server():
    with FakeModelServer(TEXT, chunk_size=4) as fake:
        yield fake


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


def sse(body: str) -> list[str]:
    """The `data:` payloads of an SSE body."""
    return [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]


def ndjson(body: str) -> list[dict]:
    return [json.loads(line) for line in body.splitlines() if line]


def test_openai_completions_stream_and_json(server, http):
    response = http.post("/v1/completions", json={"model": "m", "prompt": "x", "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    payloads = sse(response.text)
    assert payloads[-1] == "[DONE]"
    events = [json.loads(p) for p in payloads[:-1]]
    assert len(events) == len(TEXT) // 4 + 1  # the chunks, then the finish event
    assert [e["choices"][0]["finish_reason"] for e in events[-2:]] == [None, "stop"]
    assert "".join(e["choices"][0]["text"] for e in events) == TEXT
    assert server.requests[-1].completed and server.requests[-1].chunks_sent == len(events) - 1

    whole = http.post("/v1/completions", json={"prompt": "x"}).json()
    assert whole["choices"][0]["text"] == TEXT


def test_openai_chat_stream_and_json(http):
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    payloads = sse(http.post("/v1/chat/completions", json=body).text)
    assert payloads[-1] == "[DONE]"
    events = [json.loads(p) for p in payloads[:-1]]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == TEXT
    assert events[-1]["choices"][0]["finish_reason"] == "stop"

    whole = http.post("/v1/chat/completions", json={"messages": []}).json()
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": TEXT}


@pytest.mark.parametrize(
    ("path", "text_of"),
    [("/api/generate", lambda e: e["response"]), ("/api/chat", lambda e: e["message"]["content"])],
)
def test_ollama_ndjson(http, path, text_of):
    response = http.post(path, json={"model": "m", "prompt": "x", "messages": []})  # Ollama streams by default
    assert response.headers["content-type"] == "application/x-ndjson"
    events = ndjson(response.text)
    assert len(events) > 2
    assert [e["done"] for e in events] == [False] * (len(events) - 1) + [True]
    assert events[-1]["done_reason"] == "stop"
    assert "".join(text_of(e) for e in events) == TEXT
    assert all(e["model"] == "m" for e in events)

    whole = http.post(path, json={"stream": False}).json()
    assert whole["done"] is True and text_of(whole) == TEXT


@pytest.mark.parametrize("path", ["/infill", "/completion"])
def test_llamacpp_sse(http, path):
    body = {"input_prefix": "a", "input_suffix": "b", "input_extra": [], "prompt": "", "stream": True}
    events = [json.loads(p) for p in sse(http.post(path, json=body).text)]
    assert [e["stop"] for e in events] == [False] * (len(events) - 1) + [True]
    assert events[-1]["content"] == ""
    assert "".join(e["content"] for e in events) == TEXT

    assert http.post(path, json={}).json()["content"] == TEXT


def test_metadata_endpoints(server, http):
    server.models = ["a", "b"]
    assert http.get("/v1/models").json() == {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in ("a", "b")],
    }
    assert [m["name"] for m in http.get("/api/tags").json()["models"]] == ["a", "b"]
    assert "version" in http.get("/api/version").json()
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/nope").status_code == 404
    assert server.generation_requests() == []


def test_dialect_restriction(server, http):
    server.dialects = {"ollama"}
    assert http.get("/api/tags").status_code == 200
    for path in ("/v1/models", "/health"):
        assert http.get(path).status_code == 404
    assert http.post("/infill", json={}).status_code == 404
    server.dialects = {"llamacpp"}
    assert http.get("/v1/models").status_code == 200  # llama-server speaks the OpenAI API too
    assert http.get("/api/tags").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"stop": ["\n"]}),
        ("/v1/completions", {"stop": "\n"}),
        ("/api/generate", {"stream": False, "options": {"stop": ["\n", "zzz"]}}),
        ("/infill", {"stop": ["zzz", "\n"]}),
    ],
)
def test_stop_sequences_cut_the_text(http, path, body):
    response = http.post(path, json=body).json()
    text = response.get("response") or response.get("content") or response["choices"][0]["text"]
    assert text == "def add(a, b):"


@pytest.mark.parametrize(
    ("path", "body", "finish_of"),
    [
        ("/v1/completions", {"max_tokens": 2}, lambda r: (r["choices"][0]["text"], r["choices"][0]["finish_reason"])),
        (
            "/api/generate",
            {"stream": False, "options": {"num_predict": 2}},
            lambda r: (r["response"], r["done_reason"]),
        ),
        ("/infill", {"n_predict": 2}, lambda r: (r["content"], "length" if r["stopped_limit"] else "stop")),
    ],
)
def test_token_limit(http, path, body, finish_of):
    assert finish_of(http.post(path, json=body).json()) == ("def add(", "length")


LINES = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"


@pytest.mark.parametrize(
    ("path", "body", "text_of"),
    [
        ("/v1/completions", {}, lambda r: (r["choices"][0]["text"], r["choices"][0]["finish_reason"])),
        ("/api/generate", {"stream": False}, lambda r: (r["response"], r["done_reason"])),
        ("/infill", {}, lambda r: (r["content"], "length" if r["stopped_limit"] else "stop")),
    ],
)
def test_max_lines_ends_the_answer_at_a_line_end(server, http, path, body, text_of):
    server.completion, server.max_lines = LINES, 3
    assert text_of(http.post(path, json=body).json()) == ("a = 1\nb = 2\nc = 3\n", "length")


def test_max_lines_streams_the_same_text(server, http):
    server.completion, server.max_lines = "x" + LINES, 2  # the first line is the rest of the cursor's line
    events = [json.loads(p) for p in sse(http.post("/v1/completions", json={"stream": True}).text)[:-1]]
    assert "".join(e["choices"][0]["text"] for e in events) == "xa = 1\nb = 2\n"
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert server.requests[-1].chunks_sent == len("xa = 1\nb = 2\n") // 4 + 1


@pytest.mark.parametrize(
    ("text", "max_lines", "body", "expected"),
    [
        ("a = 1\nb = 2\n", 3, {}, ("a = 1\nb = 2\n", "stop")),  # fewer lines: all of it
        ("a = 1\nb = 2\nc = 3\n", 3, {}, ("a = 1\nb = 2\nc = 3\n", "stop")),  # exactly three
        ("a = 1\nb = 2\nc = 3", 2, {}, ("a = 1\nb = 2\n", "length")),
        (LINES, 3, {"max_tokens": 2}, ("a = 1\nb ", "length")),  # the token limit comes first
        (LINES, 3, {"stop": ["b ="]}, ("a = 1\n", "stop")),  # a stop string comes first
        (LINES, None, {}, (LINES, "stop")),  # no line limit: the whole text
    ],
)
def test_max_lines_with_other_limits(server, http, text, max_lines, body, expected):
    server.completion, server.max_lines = text, max_lines
    choice = http.post("/v1/completions", json=body).json()["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == expected


def test_script_decides_the_text(server, http):
    server.script = lambda req: f"<{req.body['prompt']}|{req.path}>"
    assert http.post("/v1/completions", json={"prompt": "abc"}).json()["choices"][0]["text"] == "<abc|/v1/completions>"
    server.script = lambda req: 1 / 0
    assert http.post("/v1/completions", json={"prompt": "abc"}).status_code == 500


def test_latency(server, http):
    server.first_token_latency, server.token_latency = 0.3, 0.05
    start = time.monotonic()
    with http.stream("POST", "/v1/completions", json={"stream": True}) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        first = time.monotonic() - start
        list(lines)
    total = time.monotonic() - start
    assert 0.3 <= first < 1.5
    assert total >= 0.3 + 0.05 * (len(TEXT) // 4 - 1)


def test_fault_error(server, http):
    server.fault = "error"
    response = http.post("/api/generate", json={})
    assert response.status_code == 500
    assert response.json()["error"]["message"]
    assert http.get("/api/tags").status_code == 200  # faults hit generation only


def test_fault_garbage(server, http):
    server.fault = "garbage"
    response = http.post("/v1/completions", json={"stream": True})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        [json.loads(p) for p in sse(response.text)]


def test_fault_drop(server, http):
    server.fault = "drop"
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/infill", json={"stream": True})
    record = server.requests[-1]
    assert record.chunks_sent == 1 and not record.completed and not record.hung_up


def test_fault_slow_still_finishes(server, http):
    server.fault, server.slow_latency = "slow", 0.4
    start = time.monotonic()
    assert http.post("/infill", json={}).json()["content"] == TEXT
    assert time.monotonic() - start >= 0.4


def test_fault_hang_notices_the_client_leaving(server):
    server.fault = "hang"
    with httpx.Client(timeout=httpx.Timeout(0.3)) as client, pytest.raises(httpx.ReadTimeout):
        client.post(f"{server.url}/v1/completions", json={})
    assert server.wait_for_hangup(2)
    record = server.generation_requests()[-1]
    assert record.hung_up and not record.completed and record.ended is not None


def test_hangup_mid_stream_is_detected(server, http):
    server.token_latency = 0.5
    with http.stream("POST", "/api/generate", json={}) as response:
        first = next(response.iter_lines())
        assert json.loads(first)["done"] is False
        closed_at = time.monotonic()
    assert server.wait_for_hangup(2)
    record = server.requests[-1]
    assert record.hung_up and not record.completed and record.chunks_sent == 1
    assert record.ended - closed_at < 0.3  # noticed at once, not at the next chunk


def test_completed_stream_is_not_a_hangup(server, http):
    http.post("/api/generate", json={})
    record = server.requests[-1]
    assert server.wait_for(lambda: record.ended is not None, 2)
    assert record.completed and not record.hung_up


def test_down_refuses_then_comes_back_on_the_same_port(server, http):
    port = server.port
    server.fault = "down"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)
    server.fault = None
    assert server.port == port
    assert http.get("/health").json() == {"status": "ok"}


def test_starting_down_then_up():
    with FakeModelServer(fault="down") as fake:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{fake.url}/health", timeout=2)
        fake.fault = None
        assert httpx.get(f"{fake.url}/health", timeout=2).status_code == 200


def test_configuration_from_another_thread(server, http):
    threading.Thread(target=setattr, args=(server, "completion", "xyz")).start()
    assert server.wait_for(lambda: server.completion == "xyz", 2)
    assert http.post("/infill", json={}).json()["content"] == "xyz"
    with pytest.raises(ValueError):
        server.fault = "melt"


def test_records_and_reset(server, http):
    http.get("/health")
    http.post("/v1/completions", json={"prompt": "p"})
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/health"), ("POST", "/v1/completions")]
    assert [r.body for r in server.generation_requests()] == [{"prompt": "p"}]
    server.reset()
    assert server.requests == []


def test_cli_prints_ready_and_serves():
    with socket.socket() as sock:  # a free port for --port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "tests.fakes.model_server", "--port", str(port), "--completion", "hello"]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline().strip()
            assert line == f"READY http://127.0.0.1:{port}"
            url = line.split()[1]
            assert httpx.post(f"{url}/infill", json={}, timeout=5).json()["content"] == "hello"
        finally:
            proc.kill()

"""Context from other documents, the llama.cpp dialect end to end, and the command line."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from tests.e2e.conftest import local_settings
from tests.e2e.test_completion import DOC, URI

HELPER = "file:///project/helpers.py"
HELPER_TEXT = "def add_numbers_safely(first, second):\n    return first + second\n"


async def test_other_open_documents_reach_the_qwen_prompt(session):
    session.open(HELPER, HELPER_TEXT)
    session.open(URI, DOC)
    # An unmeasured server is taken to read slowly, so its first prompt is short: the first call
    # times the server (it answers at once), the next one has room for the other document.
    await session.inline(URI, 1, 4, invoked=True)
    session.type(URI, 3, 0, "# end\n")  # a different suffix: not the cached suggestion
    result = await session.inline(URI, 1, 4, invoked=True)
    assert result.items[0].insert_text == "return a + b"
    prompt = session.fake.generation_requests()[-1].body["prompt"]
    assert prompt.startswith("<|repo_name|>")
    assert "<|file_sep|>project/helpers.py\n" + HELPER_TEXT in prompt
    assert "<|file_sep|>project/calc.py\n<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>" in prompt


@pytest.mark.settings(lambda fake: {"local": {"backend": "llamacpp", "endpoint": fake.url},
                                    "completion": {"debounceMs": 0}})
async def test_llamacpp_infill_gets_snippets_as_input_extra(session):
    session.open(HELPER, HELPER_TEXT)
    session.open(URI, DOC)
    result = await session.inline(URI, 1, 4, invoked=True)
    assert result.items[0].insert_text == "return a + b"
    request = session.fake.generation_requests()[0]
    assert request.path == "/infill"
    body = request.body
    # the cursor line goes in `prompt`, so that input_prefix stays the same while typing in the line
    assert body["input_prefix"] == "def add(a, b):\n" and body["prompt"] == "    "
    assert body["input_suffix"].startswith("\n\nprint")
    assert {"filename": "project/helpers.py", "text": HELPER_TEXT.rstrip("\n")} in body["input_extra"]
    assert body["cache_prompt"] is True and body["t_max_predict_ms"] > 0


@pytest.mark.settings(lambda fake: local_settings(fake, multiline="never"))
async def test_multiline_setting_is_honoured(session):
    session.fake.completion = "\n    s = a + b\n    return s\n"
    session.open(URI, "def add(a, b):\n")
    result = await session.inline(URI, 0, 14, invoked=True)
    assert result is None  # a one-line suggestion after "def ...:" would be empty


async def test_multiline_block_is_cut_at_the_dedent(session):
    session.fake.completion = "\n    s = a + b\n    return s\n\nprint(add(1, 2))\n"
    session.open(URI, "def add(a, b):\n")
    result = await session.inline(URI, 0, 14, invoked=True)
    assert result.items[0].insert_text == "\n    s = a + b\n    return s"


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tandem_lsp", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("tandem-lsp ")


def test_doctor_with_a_working_model(fake):
    out = run_cli("doctor", "--backend", "ollama", "--endpoint", fake.url, env={"ANTHROPIC_API_KEY": "sk-ant-secret-value"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ollama" in out.stdout and "qwen2.5-coder-1.5b-base" in out.stdout
    assert "FIM template     qwen" in out.stdout and "test completion  OK" in out.stdout
    assert "ANTHROPIC_API_KEY is set" in out.stdout
    assert "sk-ant-secret-value" not in out.stdout + out.stderr  # never the key


def test_doctor_auto_probe_finds_llamacpp(fake):
    fake.dialects = {"llamacpp"}
    env = {"TANDEM_AUTO_ENDPOINTS": f"openai=http://127.0.0.1:9/v1,ollama=http://127.0.0.1:9,llamacpp={fake.url}"}
    out = run_cli("doctor", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "llamacpp" in out.stdout and fake.generation_requests()[0].path == "/infill"


def test_doctor_without_a_model_exits_nonzero_with_start_commands():
    env = {"TANDEM_AUTO_ENDPOINTS": "openai=http://127.0.0.1:9/v1,ollama=http://127.0.0.1:9,llamacpp=http://127.0.0.1:9",
           "ANTHROPIC_API_KEY": ""}
    out = run_cli("doctor", env=env)
    assert out.returncode == 1
    assert "ollama serve" in out.stdout and "llama-server --fim-qwen-1.5b-default" in out.stdout
    assert "LM Studio" in out.stdout and "is not set" in out.stdout
    assert "tandem-lsp models pull qwen2.5-coder-1.5b-q8_0" in out.stdout


def test_doctor_with_a_broken_model_exits_nonzero(fake):
    fake.fault = "error"
    out = run_cli("doctor", "--backend", "openai", "--endpoint", f"{fake.url}/v1")
    assert out.returncode == 1 and "FAILED" in out.stdout


async def initialize_over_tcp(port: int) -> None:
    """Connect (retrying while the server starts), send `initialize`, and check Tandem answers it."""
    for _ in range(100):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.1)
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    data = b""
    while b"inlineCompletionProvider" not in data:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, "connection closed"
        data += chunk
    assert b'"tandem-lsp"' in data
    writer.close()


async def test_tcp_mode_serves_lsp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tandem_lsp", "--tcp", "--host", "127.0.0.1", "--port", str(port),
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await initialize_over_tcp(port)
    finally:
        proc.kill()
        await proc.wait()


async def test_tcp_port_0_prints_the_address_and_serves_lsp():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tandem_lsp", "--tcp", "--host", "127.0.0.1", "--port", "0",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, "the server exited without saying where it listens"
            if line.startswith("listening on 127.0.0.1:"):
                port = int(line.strip().rsplit(":", 1)[1])
        assert port > 0
        await initialize_over_tcp(port)
    finally:
        proc.kill()
        await proc.wait()

"""`tandem-lsp demo` end to end: the real CLI as a subprocess, the real server it starts over stdio, and
the real-HTTP fake model server (Ollama dialect, found by the `auto` probe) acting as an oracle that
continues the function the demo types."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
from tandem_lsp import demo

from tests.fakes.model_server import FakeModelServer

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
FIM_PREFIX, FIM_SUFFIX = "<|fim_prefix|>", "<|fim_suffix|>"
EXPLANATION = "**Cause.** `median` takes the upper middle value when the count is even.\n"
TARGET = demo.sample_project_files()["stats.py"] + "\n\n" + demo.MEAN_SOURCE  # stats.py once `mean` is typed


def oracle(request) -> str:
    """Completions continue TARGET from where the prompt's prefix ends; chat (the command) explains."""
    body = request.body or {}
    if "messages" in body:
        return EXPLANATION
    prompt = body.get("prompt", "")
    if FIM_PREFIX not in prompt:
        return ""
    tail = prompt.split(FIM_PREFIX, 1)[1].split(FIM_SUFFIX, 1)[0][-300:]
    pos = TARGET.find(tail)
    return TARGET[pos + len(tail):] if pos >= 0 and tail else ""


def demo_command() -> list[str]:
    """`python -m tandem_lsp demo`, as users run it; `python -m tandem_lsp.demo` (the same code) while
    cli.py does not have the sub-command yet."""
    from tandem_lsp import cli

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.build_parser().parse_args(["demo", "--speed", "2"])
        return [sys.executable, "-m", "tandem_lsp", "demo"]
    except SystemExit:
        return [sys.executable, "-m", "tandem_lsp.demo"]


def run_demo(tmp_path, endpoints: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    record = tmp_path / "out.json"
    (tmp_path / "state").mkdir()
    (tmp_path / "data").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(TANDEM_AUTO_ENDPOINTS=endpoints, TANDEM_STATE_DIR=str(tmp_path / "state"),
               TANDEM_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([*demo_command(), "--record", str(record), *args], capture_output=True, text=True,
                          timeout=90, env=env, cwd=tmp_path, check=False)
    assert record.exists(), proc.stdout + proc.stderr
    return proc, json.loads(record.read_text())


def test_demo_types_with_ghost_text_explains_the_failure_and_shows_stats(tmp_path):
    with FakeModelServer(script=oracle, first_token_latency=0.02, token_latency=0.001) as fake:
        proc, rec = run_demo(tmp_path, f"openai={CLOSED}/v1,ollama={fake.url},llamacpp={CLOSED}", "--speed", "10")
        chat = [r for r in fake.generation_requests() if r.path == "/api/chat"]
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert rec["exitCode"] == 0
    assert rec["localModel"]["backend"] == "ollama" and rec["localModel"]["endpoint"] == fake.url
    assert rec["keystrokes"] > 5

    shown = rec["suggestions"]
    assert shown and all(s["suggestion"] and s["latencyMs"] >= 0 for s in shown)
    assert {"line", "typed", "suggestion", "latencyMs", "source", "accepted"} <= set(shown[0])
    sources = {s["source"] for s in shown}
    assert "model" in sources and sources - {"model"}, sources
    accepted = [s for s in shown if s["accepted"]]
    assert accepted and "<Tab>" in out
    # Tab went through the editor's path: the accept command reached the server's counters
    assert sum(rec["stats"]["completions"]["accepted"].values()) == len(accepted)
    # the typed `mean` is right: test_mean passes once the file is saved, and only the median test fails
    assert "FAILED test_stats.py::test_median_even" in out and "2 passed" in out

    explained = rec["explainFailure"]
    assert explained["tier"] == "local" and explained["costUsd"] == 0
    assert "ANTHROPIC_API_KEY" in explained["fallbackReason"]
    assert explained["markdown"].startswith("**Cause.**") and "fallback: no API key" in out
    assert chat and "assert 3 == 2.5" in json.dumps(chat[0].body)  # the failure text reached the prompt

    stats = rec["stats"]
    assert stats["local"]["calls"] >= 1 and stats["cloud"]["calls"] == 0
    assert stats["completions"]["model_calls"] >= 1 and stats["cache"]["hits"] >= 1
    assert "tandem.stats" in out and "\x1b[" not in out  # plain text when stdout is not a terminal


def test_demo_without_a_local_model_prints_how_to_start_one(tmp_path):
    proc, rec = run_demo(tmp_path, f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    for command in ("ollama serve", "ollama pull qwen2.5-coder:1.5b-base", "llama-server --fim-qwen-1.5b-default",
                    "LM Studio", "tandem-lsp models pull qwen2.5-coder-1.5b-q8_0"):
        assert command in out
    assert rec["exitCode"] == 1 and rec["keystrokes"] == 0 and rec["suggestions"] == []
    assert rec["localModel"]["state"] == "down"


@pytest.mark.parametrize("name", ["stats.py", "test_stats.py"])
def test_the_sample_project_ships_in_the_package(name):
    files = demo.sample_project_files()
    assert name in files and "def median" in files["stats.py"]


def test_demo_with_the_embedded_model_and_no_server(tmp_path):
    """Nothing listens anywhere, but a model was pulled: `auto` loads it in-process (the tiny test
    model writes noise, so this checks the mechanics: found, loaded, suggestions, local answer)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from tests.fakes.tiny_gguf import write_tiny_gguf

    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    write_tiny_gguf(models / "qwen2.5-coder-0.5b-q8_0.gguf")
    (models / "default.txt").write_text("qwen2.5-coder-0.5b-q8_0\n")
    record = tmp_path / "out.json"
    (tmp_path / "state").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(TANDEM_AUTO_ENDPOINTS=f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}",
               TANDEM_STATE_DIR=str(tmp_path / "state"), TANDEM_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([*demo_command(), "--record", str(record), "--speed", "10"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(record.read_text())
    assert rec["localModel"]["backend"] == "embedded" and rec["localModel"]["state"] in ("ready", "slow")
    assert rec["stats"]["completions"]["model_calls"] >= 1
    assert rec["explainFailure"]["tier"] == "local" and rec["stats"]["local"]["calls"] >= 1

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
    stats_text = out[out.index("tandem.stats:"):]
    assert "{" not in stats_text and f"accepted     {len(accepted)} with Tab" in stats_text


def test_demo_without_a_local_model_prints_how_to_start_one(tmp_path):
    proc, rec = run_demo(tmp_path, f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    for command in ("ollama serve", "ollama pull qwen2.5-coder:1.5b-base", "llama-server --fim-qwen-1.5b-default",
                    "LM Studio", "tandem-lsp models pull qwen2.5-coder-1.5b-q8_0"):
        assert command in out
    assert rec["exitCode"] == 1 and rec["keystrokes"] == 0 and rec["suggestions"] == []
    assert rec["localModel"]["state"] == "down"
    assert out.count("no local model server found") == 1 and out.count("models pull") == 1, out


@pytest.mark.parametrize("name", ["stats.py", "test_stats.py"])
def test_the_sample_project_ships_in_the_package(name):
    files = demo.sample_project_files()
    assert name in files and "def median" in files["stats.py"]


@pytest.mark.parametrize("how", ["pulled", "placed by hand", "--model-path"])
def test_demo_with_the_embedded_model_and_no_server(tmp_path, how):
    """Nothing listens anywhere, but there is a model file: pulled (named in default.txt), copied by hand
    into the models directory (as the offline `pull` message says), or given with --model-path. `auto`
    (or `embedded`) loads it in-process (the tiny test model writes noise, so this checks the mechanics:
    found, loaded, suggestions, local answer)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from tests.fakes.tiny_gguf import write_tiny_gguf

    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    args: list[str] = []
    if how == "--model-path":
        (tmp_path / "anywhere").mkdir()
        path = write_tiny_gguf(tmp_path / "anywhere" / "my-model.gguf")
        args = ["--model-path", str(path)]
    else:
        path = write_tiny_gguf(models / "qwen2.5-coder-0.5b-q8_0.gguf")
        if how == "pulled":
            (models / "default.txt").write_text("qwen2.5-coder-0.5b-q8_0\n")
    record = tmp_path / "out.json"
    (tmp_path / "state").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(TANDEM_AUTO_ENDPOINTS=f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}",
               TANDEM_STATE_DIR=str(tmp_path / "state"), TANDEM_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([*demo_command(), "--record", str(record), "--speed", "10", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads(record.read_text())
    assert rec["localModel"]["backend"] == "embedded" and rec["localModel"]["state"] in ("ready", "slow")
    assert rec["localModel"]["endpoint"] == str(path)
    assert rec["stats"]["completions"]["model_calls"] >= 1
    assert rec["explainFailure"]["tier"] == "local" and rec["stats"]["local"]["calls"] >= 1


def test_demo_settings_reach_the_server(tmp_path):
    """--settings is what the server gets (here: backend embedded with no model file, so the demo stops at
    once and says why, once, in a terminal's words)."""
    proc, rec = run_demo(tmp_path, f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}",
                         "--settings", json.dumps({"local": {"backend": "embedded"}}))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert rec["localModel"]["state"] == "down"
    out = proc.stdout
    assert out.count(f"No local model: local.backend is embedded but there is no model file in {tmp_path / 'data' / 'models'}.") == 1, out
    assert out.count("tandem-lsp models pull qwen2.5-coder-1.5b-q8_0") == 1 and "Completions pause" not in out
    assert str(tmp_path / "data" / "models") in out


# -- what the demo prints ---------------------------------------------------------------------------
def test_the_statistics_read_as_sentences():
    from tandem_lsp.demo.stats import stats_lines

    rows = dict(stats_lines({
        "completions": {"requests": 40, "model_calls": 9, "prefetch_calls": 2, "cache_answers": 20,
                        "inflight_answers": 1, "accepted": {"model": 2, "cache": 1}},
        "cache": {"hits": 20, "misses": 9},
        "local": {"calls": 1, "latencyMsP50": 812.4}, "cloud": {"calls": 0},
        "fallbacks": 1, "costUsd": 0.0, "savedUsd": 0.0123,
    }))
    assert rows["suggestions"] == ("40 requests: 9 model calls (+2 prefetched), 20 from the "
                                   "typed-through cache, 1 by reusing a request in flight")
    assert rows["accepted"] == "3 with Tab (2 model, 1 cache)"
    assert rows["cache"] == "20 hits, 9 misses (69% hits)"
    assert rows["commands"] == "1 local call (median 812 ms), no cloud calls; 1 answer fell back to the local model"
    assert rows["spend"].startswith("$0.0000 on the cloud today; the local calls saved $0.0123")
    empty = dict(stats_lines({}))
    assert empty["accepted"] == "none" and empty["cache"] == "0 hits, 0 misses"
    assert not any("{" in v or "}" in v for v in (*rows.values(), *empty.values()))  # no dict dumps


@pytest.mark.parametrize("width", [40, 80, 120])
def test_long_suggestions_are_cut_to_the_terminal_width(width):
    from tandem_lsp.demo.common import Shown
    from tandem_lsp.demo.typist import suggestion_lines

    long = "x" * 300
    s = Shown(line=12, typed="    return " + "y" * 150, suggestion=long + "\n" + long + "\n" + "\n".join(["z"] * 20),
              latency_ms=35.0, source="model")
    lines = suggestion_lines(s, full=True, matches=True, width=width, tty=False)
    assert all(len("".join(parts)) <= width for parts in lines), [len("".join(p)) for p in lines]
    first = "".join(lines[0])
    assert "…" in first and first.endswith("<- model, 35 ms") and "|" in first
    assert lines[-1][1] == "(+13 more lines)"  # 8 of the 21 further lines are shown
    short = suggestion_lines(Shown(1, "def f", "(x):", 5.0, "cache"), full=True, matches=False, width=width, tty=True)
    assert short == [("   1  def f", "(x):", "    <- typed-through cache, 5 ms, not what comes next")]

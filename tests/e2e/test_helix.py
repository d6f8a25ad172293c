"""Helix under tmux, with the snippet users copy (clients/helix/languages.toml; only its command and
endpoint substituted: tests/e2e/snippets.py) as the languages.toml of a private configuration folder.

Helix reads languages.toml from its configuration folder, ``$XDG_CONFIG_HOME/helix`` (``-c`` names only
config.toml), so the test points XDG_CONFIG_HOME at a temporary folder. It opens a Python file, goes to
the empty function body in Insert mode, asks for completion with Ctrl-x and waits for Tandem's item
("return a + b") in the captured pane; Tab applies it. The fake model server got the completion at the
snippet's endpoint: the settings reached the server (Helix sends them as initializationOptions and in
didChangeConfiguration, and answers ``workspace/configuration`` with null). ``:q!`` then quits at once,
with no "Timed out waiting for language servers to shutdown" (Helix before #15553 waited up to 3 s for the
shutdown answer). Helix 25.07.1 as Debian builds it (snapshot 20260723, with #15553) sends ``shutdown`` and
``exit`` back to back without waiting for the answer, and its ``kill_on_drop`` reaps the server right after
the write: when its reader sees the killed server's stdout close first it logs "StreamClosed" and "Could
not close request on a closed channel" for the shutdown id, whatever the server does (it has not even read
the request by then), so the test does not look for those lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.snippets import HELIX, machine_paths, snippet
from tests.editors import require_editor
from tests.fakes.model_server import FakeModelServer

DOC = "def add(a, b):\n    \n\nprint(add(1, 2))\n"
ITEM = "return a + b"


class Tmux:
    """One tmux server of our own (its own socket), one 120x40 session running ``command``."""

    def __init__(self, command: list[str], cwd: Path, env: dict):
        self.socket = f"tandem-helix-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.run("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "-c", str(cwd), *command)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True,
                              timeout=30)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def pane(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t").stdout

    def alive(self) -> bool:
        return self.run("has-session", "-t", "t").returncode == 0

    def wait(self, what: str, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the pane:\n{self.pane()}")
            time.sleep(0.1)

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux_bin() -> str:
    found = shutil.which("tmux")
    if found is None:
        pytest.skip("tmux is not installed")
    return found


def test_helix_with_the_snippet(tmp_path, tmux_bin):
    hx = require_editor("hx")
    fake = FakeModelServer(completion=ITEM + "\n").start()
    config = tmp_path / "config" / "helix"
    config.mkdir(parents=True)
    (config / "languages.toml").write_text(snippet(HELIX, endpoint=f"{fake.url}/v1"))
    (config / "config.toml").write_text("")
    project = tmp_path / "project"
    project.mkdir()
    (project / "calc.py").write_text(DOC)
    log = tmp_path / "helix.log"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "TANDEM_STATE_DIR": str(tmp_path / "state"), "TERM": "xterm-256color",
           "TMUX_TMPDIR": str(tmp_path)}  # our tmux server's socket, with the rest of the test's files
    tmux = Tmux([hx, "-c", str(config / "config.toml"), "--log", str(log), "calc.py"], project, env)
    try:
        tmux.wait("Helix to start", lambda: "NOR" in tmux.pane() or "calc.py" in tmux.pane())
        assert "Bad language config" not in tmux.pane() and "Bad config" not in tmux.pane(), tmux.pane()
        # the server started with the snippet's settings: it listed the fake's models at that endpoint
        tmux.wait("Tandem to reach the fake model server", lambda: fake.requests)

        tmux.keys("j", "A")  # line 2, Insert mode at its end (after the indentation)
        shown = False
        deadline = time.monotonic() + 60
        while not shown and time.monotonic() < deadline:
            tmux.keys("C-x")  # Helix's completion key in Insert mode
            end = time.monotonic() + 3
            while time.monotonic() < end and not (shown := ITEM in tmux.pane()):
                time.sleep(0.1)
        pane = tmux.pane()
        assert shown, f"no completion item in the pane:\n{pane}"
        assert fake.generation_requests(), "the fake model server got no completion request"
        assert all(r.path.startswith("/v1/") for r in fake.requests)  # the snippet's endpoint (…/v1)

        tmux.keys("Tab")  # select the item: Helix applies it
        tmux.keys("Escape")
        tmux.wait("the item in the document", lambda: f"    {ITEM}" in tmux.pane(), timeout=20)

        tmux.keys(":q!", "Enter")
        tmux.wait("Helix to quit", lambda: not tmux.alive(), timeout=30)
        text = log.read_text(errors="replace") if log.exists() else ""
        assert "Timed out waiting for language servers" not in text, text[-3000:]
    finally:
        tmux.kill()
        fake.stop()


def test_the_snippet_is_the_one_readme_shows():
    import tomllib

    data = tomllib.loads(HELIX.read_text())
    server = data["language-server"]["tandem"]
    assert server["command"] == "tandem-lsp" and server["args"] == [] and isinstance(server["config"], dict)
    python = next(lang for lang in data["language"] if lang["name"] == "python")
    assert "tandem" in python["language-servers"]
    text = HELIX.read_text()
    assert machine_paths(text) == []

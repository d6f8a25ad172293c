"""The editor snippets in clients/ (the files README shows) as the editor e2e tests load them: the one
substitution that lets a test run them against this repository's server and a fake model server."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
HELIX = CLIENTS / "helix" / "languages.toml"
EMACS = CLIENTS / "emacs" / "tandem-eglot.el"
COMMAND = '"tandem-lsp"'  # the command, as a quoted string in both snippets
ENDPOINT = "http://127.0.0.1:1234/v1"  # the snippets' local.endpoint


_FILE_PATH = re.compile(r"(?<![\w:~./])/[\w.-]+/")  # an absolute file path (not a URL's, not ~/...)


def machine_paths(text: str) -> list[str]:
    """What in a snippet names this machine: absolute file paths and virtualenv folders."""
    return _FILE_PATH.findall(text) + re.findall(r"\.venv\b", text)


def server_command() -> str:
    """This repository's server: the venv's ``tandem-lsp`` script, next to the Python running the tests."""
    script = Path(sys.executable).with_name("tandem-lsp")
    if not script.exists():
        raise AssertionError(f"no tandem-lsp script next to {sys.executable}: pip install -e . first")
    return str(script)


def snippet(path: Path, endpoint: str, command: str | None = None) -> str:
    """The snippet's text with its command and endpoint replaced (each must occur exactly once)."""
    text = path.read_text(encoding="utf-8")
    for old, new in ((COMMAND, json.dumps(command or server_command())), (ENDPOINT, endpoint)):
        count = text.count(old)
        assert count == 1, f"{path.name}: {old} occurs {count} times, not once"
        text = text.replace(old, new)
    return text

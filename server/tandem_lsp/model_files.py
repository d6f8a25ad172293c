"""Where embedded models live, and which one is the default: the part of ``tandem_lsp.models`` that the
server needs at start-up (``default_model_path``), kept apart so that starting the server does not
load the download code.

``$TANDEM_DATA_DIR`` if set, else ``$XDG_DATA_HOME/tandem``, else ``~/.local/share/tandem``; models are
``<data>/models/<name>.gguf``; ``<models>/default.txt`` lists pulled model names, most recent first.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILE = "default.txt"
# The model the messages recommend: llama.cpp's own CPU FIM preset (its entry is in models.CATALOGUE).
RECOMMENDED = "qwen2.5-coder-1.5b-q8_0"


def data_dir() -> Path:
    if os.environ.get("TANDEM_DATA_DIR"):
        return Path(os.environ["TANDEM_DATA_DIR"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "tandem"
    return Path.home() / ".local" / "share" / "tandem"


def models_dir(override: str | os.PathLike | None = None) -> Path:
    """Where models live (not created here)."""
    if override:
        return Path(override).expanduser()
    return data_dir() / "models"


def model_path(name: str, directory: str | os.PathLike | None = None) -> Path:
    return models_dir(directory) / f"{name}.gguf"


def _read_defaults(directory=None) -> list[str]:
    try:
        text = (models_dir(directory) / DEFAULT_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    names: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line not in names and "/" not in line and "\\" not in line:
            names.append(line)
    return names


def default_model_path(directory: str | os.PathLike | None = None) -> Path | None:
    """The most recently pulled model that is still present, or None."""
    for name in _read_defaults(directory):
        path = model_path(name, directory)
        if path.is_file():
            return path
    return None

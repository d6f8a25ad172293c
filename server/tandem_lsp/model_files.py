"""Where embedded models live, and which one is the default: the part of ``tandem_lsp.models`` that the
server needs at start-up (``default_model_path``), kept apart so that starting the server does not
load the download code.

``$TANDEM_DATA_DIR`` if set, else ``$XDG_DATA_HOME/tandem``, else ``~/.local/share/tandem``; models are
``<data>/models/<name>.gguf``; ``<models>/default.txt`` lists pulled model names, most recent first.

The default model (what backend ``auto`` falls back to and ``embedded`` runs when ``local.modelPath`` is
not set) is the most recently pulled model that is still present; when no pulled model is there, a GGUF
file copied into the models directory by hand (as ``models pull`` suggests when offline): the
recommended model if it is there, else the most recently modified ``*.gguf``. Only files that start
with the GGUF magic count, and a file ``models pull`` refused (its sha256 did not match the catalogue)
is skipped while it is unchanged: ``<models>/rejected.txt`` records its name, size and mtime.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILE = "default.txt"
REJECTED_FILE = "rejected.txt"
GGUF_MAGIC = b"GGUF"
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


def _valid(line: str) -> bool:
    return bool(line) and not line.startswith("#") and "/" not in line and "\\" not in line


def _read_defaults(directory=None) -> list[str]:
    try:
        text = (models_dir(directory) / DEFAULT_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    names: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if _valid(line) and line not in names:
            names.append(line)
    return names


def signature(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, None when it cannot be read: what "unchanged" means here."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def read_rejected(directory=None) -> dict[str, tuple[int, int]]:
    """name -> the signature of the file ``models pull`` refused under that name."""
    try:
        text = (models_dir(directory) / REJECTED_FILE).read_text(encoding="utf-8")
    except OSError:
        return {}
    rejected: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and _valid(parts[0]) and parts[1].isdigit() and parts[2].isdigit():
            rejected[parts[0]] = (int(parts[1]), int(parts[2]))
    return rejected


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def placed_models(directory=None) -> list[Path]:
    """GGUF files in the models directory that ``models pull`` did not refuse, in the order the default is
    chosen among them: the recommended model first, then the most recently modified."""
    mdir = models_dir(directory)
    rejected = read_rejected(directory)
    found: list[tuple[bool, int, str, Path]] = []
    try:
        entries = list(os.scandir(mdir))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.endswith(".gguf") or entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:
            continue
        name = entry.name[: -len(".gguf")]
        if rejected.get(name) == (st.st_size, st.st_mtime_ns) or not is_gguf(path):
            continue
        found.append((name != RECOMMENDED, -st.st_mtime_ns, entry.name, path))
    return [path for *_, path in sorted(found)]


def default_model_path(directory: str | os.PathLike | None = None) -> Path | None:
    """The most recently pulled model that is still present, else a GGUF placed by hand (see the module
    docstring), else None."""
    rejected = read_rejected(directory)
    for name in _read_defaults(directory):
        path = model_path(name, directory)
        if path.is_file() and (name not in rejected or rejected[name] != signature(path)):
            return path
    placed = placed_models(directory)
    return placed[0] if placed else None

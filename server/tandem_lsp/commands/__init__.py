"""Commands served through ``workspace/executeCommand``: each builds a prompt; ``runner`` runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Sources:
    """Where commands read code from: open documents first, then the disk; plus diagnostics seen."""

    open_text: Callable[[str], str | None] = lambda uri: None  # the text of an open document
    diagnostics: dict[str, list[dict]] = field(default_factory=dict)  # uri -> [{"line", "message", "source"}]
    root: str | None = None

    def text(self, uri: str) -> str | None:
        text = self.open_text(uri)
        if text is not None:
            return text
        path = uri_to_path(uri)
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace") if path else None
        except OSError:
            return None


def uri_to_path(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme and parts.scheme != "file":
        return None
    return unquote(parts.path) if parts.scheme else uri


def path_to_uri(path: str) -> str:
    return Path(path).resolve().as_uri()


def range_lines(args: dict) -> tuple[int, int] | None:
    """0-based (start, end) lines of an LSP range in the arguments, if any."""
    rng = args.get("range")
    try:
        return int(rng["start"]["line"]), int(rng["end"]["line"])
    except (TypeError, KeyError, ValueError):
        return None


def excerpt(text: str, lines: tuple[int, int] | None) -> tuple[int, str]:
    """(first 1-based line, text) of a range of lines, or of the whole text."""
    if lines is None:
        return 1, text
    all_lines = text.split("\n")
    start, end = max(0, lines[0]), min(len(all_lines) - 1, max(lines[0], lines[1]))
    return start + 1, "\n".join(all_lines[start : end + 1])

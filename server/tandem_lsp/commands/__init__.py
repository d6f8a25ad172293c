"""Commands served through ``workspace/executeCommand``: each builds a prompt; ``runner`` runs it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tandem_lsp import disk

BUILD_TIME_S = 3.0  # a command's prompt is built within this, disk reads included


@dataclass
class Sources:
    """Where commands read code from: open documents first, then the disk; plus diagnostics seen.

    ``text`` may read a file the editor did not open, so it is called only off the event loop (commands
    build their prompts in a worker thread: ``build_off_loop``); reads are bounded, regular files only
    (``disk``), and all of one build share ``deadline``. On the event loop, ``text_async``.
    """

    open_text: Callable[[str], str | None] = lambda uri: None  # the text of an open document
    diagnostics: dict[str, list[dict]] = field(default_factory=dict)  # uri -> [{"line", "message", "source"}]
    root: str | None = None
    read_disk: bool = True
    deadline: float | None = None  # time.monotonic() by which disk reads give up

    def text(self, uri: str) -> str | None:
        """The text of ``uri`` (blocking on the disk: never call it on the event loop)."""
        text = self.open_text(uri)
        if text is not None or not self.read_disk:
            return text
        path = uri_to_path(uri)
        if not path:
            return None
        left = disk.READ_TIMEOUT_S if self.deadline is None else min(disk.READ_TIMEOUT_S, self.deadline - time.monotonic())
        return disk.read_text_file_within(path, left)

    async def text_async(self, uri: str) -> str | None:
        """The text of ``uri``, read from the disk off the event loop when the editor did not open it."""
        text = self.open_text(uri)
        if text is not None or not self.read_disk:
            return text
        path = uri_to_path(uri)
        return await disk.read_text_file_async(path) if path else None


async def build_off_loop(build: Callable[[dict, Sources], tuple], args: dict, sources: Sources) -> tuple:
    """``build(args, sources)`` in a worker thread, its disk reads within ``BUILD_TIME_S``. Should it still
    not finish in time (a bug, a stuck file system), it is built again from the open documents alone."""
    bounded = replace(sources, deadline=time.monotonic() + BUILD_TIME_S)
    try:
        return await asyncio.wait_for(asyncio.to_thread(build, args, bounded), BUILD_TIME_S + 1.0)
    except TimeoutError:
        return build(args, replace(sources, read_disk=False))


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

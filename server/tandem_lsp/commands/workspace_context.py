"""Pure helpers that pick the code a command's prompt carries: traceback frames inside the
workspace, the function around a line, a file's imports and the definitions a range uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# `File "path", line N` (Python tracebacks) and `path:N:` / `path:N: in func` (pytest, compilers)
_FRAME_PATTERNS = (
    re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)'),
    re.compile(r"^(?P<path>[\w./\\-]+\.\w+):(?P<line>\d+)(?::\d+)?[:\s]", re.M),
)
_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async\s+def|def|class|function|func|fn)\s+(?P<name>\w+)")
_IMPORT = re.compile(r"^\s*(?:import\s|from\s+\S+\s+import\s|const\s+\w+\s*=\s*require\(|#include\s|use\s)")
_IDENT = re.compile(r"[A-Za-z_]\w*")

MAX_FRAMES = 6
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Frame:
    path: str
    line: int  # 1-based


def frames(failure: str, root: str | None) -> list[Frame]:
    """Frames of a failure text that point into the workspace, innermost last, deduplicated."""
    found: list[Frame] = []
    for pattern in _FRAME_PATTERNS:
        for m in pattern.finditer(failure):
            path = resolve(m.group("path"), root)
            if path is None:
                continue
            frame = Frame(path, int(m.group("line")))
            if frame not in found:
                found.append(frame)
    return found[-MAX_FRAMES:]


def resolve(path: str, root: str | None) -> str | None:
    """An absolute path inside the workspace root, or None (site-packages and other outside files)."""
    if root is None:
        return None
    root_path = Path(root).resolve()
    candidate = Path(path)
    candidate = (candidate if candidate.is_absolute() else root_path / candidate).resolve()
    try:
        candidate.relative_to(root_path)
    except ValueError:
        return None
    if "site-packages" in candidate.parts or not candidate.is_file():
        return None
    return str(candidate)


def enclosing_function(text: str, line: int) -> tuple[int, str]:
    """(first line, source) of the function or class around 1-based ``line``, or a window of lines."""
    lines = text.split("\n")
    index = min(max(line - 1, 0), max(len(lines) - 1, 0))
    for start in range(index, -1, -1):
        m = _DEF.match(lines[start])
        if m and (start == index or _indent(lines[start]) < _indent_of_block(lines, index)):
            end = start + 1
            while end < len(lines) and end - start < MAX_FUNCTION_LINES:
                if lines[end].strip() and _indent(lines[end]) <= _indent(lines[start]) and not lines[end].lstrip().startswith((")", "]", "}")):
                    break
                end += 1
            return start + 1, "\n".join(lines[start:end]).rstrip()
    lo = max(0, index - 10)
    return lo + 1, "\n".join(lines[lo : index + 11]).rstrip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indent_of_block(lines: list[str], index: int) -> int:
    for i in range(index, -1, -1):
        if lines[i].strip():
            return _indent(lines[i])
    return 0


def imports(text: str, limit: int = 40) -> str:
    """The import lines of a file (the first ``limit``)."""
    return "\n".join([line for line in text.split("\n") if _IMPORT.match(line)][:limit])


def definitions_used(text: str, snippet: str, limit: int = 8) -> list[str]:
    """Top-level definitions of ``text`` whose names the snippet uses (not those inside it)."""
    used = set(_IDENT.findall(snippet))
    lines = text.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        m = _DEF.match(line)
        if m and not m.group("indent") and m.group("name") in used and line not in snippet:
            out.append(enclosing_function(text, i + 1)[1])
            if len(out) >= limit:
                break
    return out


def numbered(text: str, first_line: int) -> str:
    return "\n".join(f"{first_line + i:>5}  {line}" for i, line in enumerate(text.split("\n")))

"""What every part of the demo shares: the timings, the sample project, the screen, and the suggestions."""

from __future__ import annotations

import sys

STATUS_NOTIFICATION = "tandem/status"
ACCEPT_COMMAND = "tandem.acceptSuggestion"
STATUS_WAIT_S = 5.0
LOAD_WAIT_S = 120.0  # an embedded model may take a while to load
KEY_GAP_S = 0.060  # between keys inside words
PUNCT_GAP_S = 0.110  # after spaces and punctuation
LINE_END_PAUSE_S = 0.700  # the typist stops at each line end and looks at the ghost text
LOOK_MIN_S = 1.5  # ...and waits at least this long for a suggestion there, whatever --speed says
ACCEPT_AFTER = 3  # Tab once the same (matching) ghost text has been seen for this many keys
COMMAND_TIMEOUT_S = 300.0
TEST_TIMEOUT_S = 60.0
DEMO_FILE = "tandem_demo.py"
TYPED_FILE = "stats.py"
TEST_FILE = "test_stats.py"
FAILING_TEST = "test_median_even"
MAX_SHOWN_LINES = 8  # of a multi-line suggestion; the rest is counted

# What the demo types, at the end of stats.py.
MEAN_SOURCE = '''def mean(values):
    """The arithmetic mean of `values`."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)
'''

SOURCE_LABELS = {"model": "model", "cache": "typed-through cache", "inflight": "in-flight reuse"}


class Screen:
    """Where the demo prints: dim and bold only on a terminal; ``width``: the terminal's (``$COLUMNS``, else
    100 when it is not a terminal), which long suggestions and output lines are cut to."""

    def __init__(self, stream=None, width: int | None = None):
        import shutil

        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = max(width or shutil.get_terminal_size((100, 24)).columns, 40)

    def dim(self, s: str) -> str:
        return f"\x1b[2m{s}\x1b[0m" if self.tty and s else s

    def bold(self, s: str) -> str:
        return f"\x1b[1m{s}\x1b[0m" if self.tty and s else s

    def say(self, s: str = "") -> None:
        print(s, file=self.stream, flush=True)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with "…" where it was cut."""
    width = max(width, 1)
    return text if len(text) <= width else text[: width - 1] + "…"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def plain(obj):
    """A JSON-able copy of a pygls result (namedtuples, attrs classes, dicts, lists)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "__attrs_attrs__"):
        from lsprotocol import converters

        return converters.get_converter().unstructure(obj)
    return str(obj)


def position_at(text: str, offset: int):
    """The LSP position (UTF-16, LSP's line endings) of an offset, as an editor sends it."""
    from lsprotocol import types

    from tandem_lsp.lines import position_at as lsp_position

    line, character = lsp_position(text, offset)
    return types.Position(line=line, character=character)


def sample_project_files() -> dict[str, str]:
    from importlib import resources

    folder = resources.files("tandem_lsp") / "sample_project"
    return {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith((".py", ".md"))}


class Shown:
    """One ghost-text suggestion as it was shown."""

    def __init__(self, line: int, typed: str, suggestion: str, latency_ms: float, source: str,
                 accepted: bool = False, via: str | None = None, command: object = None):
        self.line, self.typed, self.suggestion, self.latency_ms = line, typed, suggestion, latency_ms
        self.source, self.accepted, self.via, self.command = source, accepted, via, command

    def as_json(self) -> dict:
        out = {"line": self.line, "typed": self.typed, "suggestion": self.suggestion,
               "latencyMs": round(self.latency_ms, 1), "source": self.source, "accepted": self.accepted}
        if self.via:
            out["via"] = self.via
        return out

"""``tandem-lsp demo``: watch Tandem work, as an editor would drive it.

Starts the real server over stdio (``python -m tandem_lsp``) with a pygls client, opens a small
sample project (shipped in ``tandem_lsp/sample_project``, copied to a temporary directory) or DIR,
and then (``session.py``):

1. waits for the server's ``tandem/status`` notification; with no local model it says why, once,
   prints the commands that give it one and exits 1;
2. types the function ``mean`` keystroke by keystroke (``typist.py``): a ``didChange`` per key, the
   previous ``textDocument/inlineCompletion`` cancelled and a new one sent (as VS Code does). Each
   ghost-text suggestion is printed as an editor shows it (dim when stdout is a terminal, cut to its
   width), with its latency and where it came from. A suggestion that matches what is about to be typed
   is accepted with Tab once the typist has seen it for a few keys: one change inserts it, then
   ``workspace/executeCommand tandem.acceptSuggestion`` with the item's arguments;
3. runs ``tandem.explainFailure`` on the failing test (``explain.py``: pytest's output, or a traceback
   from calling the test functions directly when pytest is not installed) and prints the result;
4. prints ``tandem.stats`` in sentences (``stats.py``).

The server gets the settings an editor would send: ``local.backend`` auto (and ``completion.debounceMs``
auto), then ``--settings JSON``, then ``--backend``/``--endpoint``/``--model``/``--model-path``/
``--fim-template`` (``--model-path FILE`` alone means: run FILE in-process, backend embedded).

``--record FILE`` writes the session as JSON. ``--speed`` divides every typing gap and pause (at a
line end the typist still looks for the suggestion for up to LOOK_MIN_S). With DIR, DIR is the
workspace and the demo types into a new, unsaved ``tandem_demo.py`` there: DIR is not modified, and
the tests run in a temporary copy of the sample project.
"""

from __future__ import annotations

import argparse
import sys

# Light at import time: cli.py imports this package to build its parser, and the server's start-up
# must not pay for the demo. The parts are imported where they are used.
from tandem_lsp.demo.common import (  # noqa: F401  (this package's interface)
    DEMO_FILE,
    MEAN_SOURCE,
    TEST_FILE,
    TYPED_FILE,
    Screen,
    Shown,
    plain,
    position_at,
    sample_project_files,
)

EXIT_USAGE = 2


def _embedded_install_hint() -> str:  # kept for callers of the old module
    from tandem_lsp.doctor import embedded_install_hint

    return embedded_install_hint()


def speed_factor(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0 (2 types twice as fast), not {text}")
    return value


# -- command line ---------------------------------------------------------------------------------
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command to the CLI's sub-parsers."""
    from tandem_lsp.cli import add_local_options

    demo = subparsers.add_parser(
        "demo",
        help="type a function with live ghost text, explain a failing test, show the stats",
        description="Start the server as an editor would, type a function into a sample project with "
        "ghost-text suggestions from the local model, explain a failing test, and show the stats.",
    )
    demo.add_argument("dir", nargs="?", metavar="DIR",
                      help=f"a workspace to open instead of the sample project; the demo types into a new, "
                           f"unsaved {DEMO_FILE} there (DIR is not modified)")
    demo.add_argument("--record", metavar="FILE", help="write the whole session as JSON to FILE")
    demo.add_argument("--speed", type=speed_factor, default=1.0, metavar="FACTOR",
                      help="typing speed factor: 2 types twice as fast (default 1)")
    add_local_options(demo)
    return demo


def _usage_error(message: str) -> int:
    print(f"tandem-lsp demo: error: {message} (see `tandem-lsp demo --help`)", file=sys.stderr)
    return EXIT_USAGE


def demo_settings(args) -> dict:
    """The settings tree the demo's server gets (see the module docstring); a relative ``local.modelPath``
    is made absolute here, since the server runs in another directory."""
    from pathlib import Path

    from tandem_lsp.cli import _merge, settings_tree
    from tandem_lsp.config import parse_settings
    from tandem_lsp.demo.session import DEFAULT_SETTINGS

    tree = settings_tree(args, DEFAULT_SETTINGS)
    model_path = parse_settings(tree)[0].local.model_path
    if model_path and not Path(model_path).expanduser().is_absolute():
        tree = _merge(tree, {"local": {"modelPath": str(Path(model_path).expanduser().resolve())}})
    return tree


def run(args) -> int:
    """Run the demo; 0 on success, 1 when no local model is available or the demo failed, 2 for a
    mistake on the command line."""
    import asyncio
    from pathlib import Path

    from tandem_lsp.demo.session import Demo

    speed = getattr(args, "speed", 1.0) or 1.0
    workspace = getattr(args, "dir", None)
    if workspace and not Path(workspace).expanduser().is_dir():
        return _usage_error(f"DIR {workspace} is not a directory")
    record = getattr(args, "record", None)
    if record:
        target = Path(record).expanduser()
        if target.is_dir():
            return _usage_error(f"--record {record} is a directory")
        if not target.parent.is_dir():
            return _usage_error(f"--record {record}: the directory {target.parent} does not exist")
    demo = Demo(workspace=workspace, speed=speed, record=record, settings=demo_settings(args))
    try:
        return asyncio.run(demo.main())
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    """``python -m tandem_lsp.demo [DIR] [options]`` (the same as ``tandem-lsp demo``)."""
    from tandem_lsp.cli import Parser

    parser = Parser(prog="tandem-lsp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)]))

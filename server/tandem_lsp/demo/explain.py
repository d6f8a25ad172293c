"""The command: run the sample project's tests, and ask ``tandem.explainFailure`` about the one that fails."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tandem_lsp.demo.common import COMMAND_TIMEOUT_S, TEST_FILE, TEST_TIMEOUT_S, Screen, clip, plain

if TYPE_CHECKING:
    from pathlib import Path

RUN_TESTS_DIRECTLY = r"""
import sys, traceback
sys.path.insert(0, ".")
import test_stats
failed = 0
for name in sorted(n for n in dir(test_stats) if n.startswith("test_")):
    try:
        getattr(test_stats, name)()
    except Exception:
        print(f"FAILED test_stats.py::{name}")
        traceback.print_exc(file=sys.stdout)
        failed = 1
        break
sys.exit(failed)
"""

SHOWN_OUTPUT_LINES = 12


def failing_test_output(project: Path) -> tuple[str, str]:
    """(how it was run, the output) of the sample tests in ``project``."""
    import importlib.util
    import os
    import subprocess

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if importlib.util.find_spec("pytest") is not None:
        how = f"python -m pytest -x -q {TEST_FILE}"
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", TEST_FILE]
    else:
        how = "python (pytest is not installed: the test functions were called directly)"
        cmd = [sys.executable, "-c", RUN_TESTS_DIRECTLY]
    try:
        done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=TEST_TIMEOUT_S,
                              env=env, check=False)
        out = done.stdout.strip()  # stderr has only plugin warnings, unless the run itself failed
        if not out or done.returncode not in (0, 1):
            out = (done.stdout + "\n" + done.stderr).strip()
    except subprocess.TimeoutExpired as exc:
        out = f"(the tests did not finish within {TEST_TIMEOUT_S:.0f} s)\n{exc.stdout or ''}"
    return how, out


def markdown_lines(markdown: str, width: int) -> list[str]:
    """The explanation for a terminal: prose wrapped to ``width``, code (fenced or indented) cut to it."""
    import textwrap

    out: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append(clip(line, width))
        elif fenced or line.startswith(("    ", "\t")) or not line.strip():
            out.append(clip(line, width))
        else:
            indent = len(line) - len(line.lstrip())
            bullet = line.lstrip()[:2] if line.lstrip()[:2] in ("- ", "* ") else ""
            out.extend(textwrap.wrap(line, width, subsequent_indent=" " * (indent + len(bullet)))
                       or [line])
    return out


async def explain_failure(client, screen: Screen, project: Path, target_uri: str) -> dict:
    """Run the tests in ``project``, print the end of their output, ask the server to explain the failure
    (in ``target_uri``), print the answer; return the command's result."""
    import asyncio
    import time

    from lsprotocol import types

    say, width = screen.say, screen.width
    how, failure = failing_test_output(project)
    say(f"\n{screen.bold('Explain failure')}: ran `{how}`:")
    for line in failure.splitlines()[-SHOWN_OUTPUT_LINES:]:
        say("  " + screen.dim(clip(line, width - 2)))
    say("tandem.explainFailure ... (cloud when a key is set, else the local model)")
    t0 = time.perf_counter()
    result = await asyncio.wait_for(client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="tandem.explainFailure", arguments=[{"uri": target_uri, "failure": failure}])), COMMAND_TIMEOUT_S)
    r = plain(result) or {}
    cost = r.get("costUsd")
    say(f"  tier {r.get('tier')}, model {r.get('model')}, cost ${cost if cost is not None else 0:.4f}, "
        f"{(time.perf_counter() - t0):.1f} s" + (f"\n  fallback: {r['fallbackReason']}" if r.get("fallbackReason") else ""))
    say("")
    for line in markdown_lines(str(r.get("markdown") or ""), width - 4):
        say("  | " + line)
    return r

"""``tandem.explainFailure``: cause, evidence and a fix as a diff for a failing test, traceback or error."""

from __future__ import annotations

from tandem_lsp.commands import Sources, excerpt, path_to_uri, range_lines
from tandem_lsp.commands.runner import Part
from tandem_lsp.commands.workspace_context import enclosing_function, frames, numbered

SYSTEM = (
    "You are a senior engineer helping a colleague inside their editor. Explain the failure below.\n"
    "Answer in Markdown with three sections:\n"
    "## Cause — the root cause in one or two sentences.\n"
    "## Evidence — the lines of the failure and of the code that show it, quoted briefly.\n"
    "## Fix — the change as a unified diff in a ```diff block, against the files shown, then one line on "
    "how to verify it (the test to run).\n"
    "Be specific to the code shown; do not invent files. If the information is not enough, say what is missing."
)


def build(args: dict, sources: Sources) -> tuple[str, list[Part], str]:
    """(system, parts, router prompt) for the command's arguments."""
    uri = str(args.get("uri") or "")
    failure = str(args.get("failure") or "").strip()
    lines = range_lines(args)
    parts: list[Part] = []
    if not failure:
        diags = [d for d in sources.diagnostics.get(uri, []) if lines is None or lines[0] <= d["line"] <= lines[1]]
        failure = "\n".join(f"line {d['line'] + 1}: {d['message']}" + (f" [{d['source']}]" if d.get("source") else "")
                            for d in diags) or "(no failure text and no diagnostics were given)"
    parts.append(Part(f"The failure:\n```\n{failure}\n```"))
    seen: set[tuple[str, int]] = set()
    for frame in frames(failure, sources.root):
        frame_uri = path_to_uri(frame.path)
        text = sources.text(frame_uri)
        if text is None:
            continue
        first, code = enclosing_function(text, frame.line)
        if (frame_uri, first) in seen:
            continue
        seen.add((frame_uri, first))
        parts.append(Part(numbered(code, first), uri=frame_uri, title=f"{_name(frame.path)} (around line {frame.line})"))
    text = sources.text(uri) if uri else None
    if text is not None and len(parts) == 1:  # no frame pointed into the workspace: send the range itself
        if lines is not None:
            first, code = enclosing_function(text, lines[0] + 1) if lines[0] == lines[1] else excerpt(text, lines)
        else:
            first, code = excerpt(text, None) if len(text) < 12000 else enclosing_function(text, 1)
        parts.append(Part(numbered(code, first), uri=uri, title=f"{_name(uri)} (the code in question)"))
    return SYSTEM, parts, "debug this failure and explain the root cause: " + failure[:2000]


def _name(path_or_uri: str) -> str:
    return path_or_uri.rstrip("/").rsplit("/", 1)[-1]

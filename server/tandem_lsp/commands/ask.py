"""``tandem.ask``: a free-form request; the router picks the tier from the request itself."""

from __future__ import annotations

from tandem_lsp.commands import Sources, excerpt, range_lines
from tandem_lsp.commands.runner import Part
from tandem_lsp.commands.workspace_context import numbered

SYSTEM = (
    "You are a programming assistant inside the user's editor. Answer the request in concise Markdown; "
    "put code in fenced blocks. Use the code given as context; do not invent files."
)


def build(args: dict, sources: Sources) -> tuple[str, list[Part], str]:
    prompt = str(args.get("prompt") or "").strip()
    parts = [Part(prompt or "(empty request)")]
    uri = args.get("uri")
    if uri:
        text = sources.text(str(uri))
        if text is not None:
            first, code = excerpt(text, range_lines(args))
            parts.append(Part(numbered(code[:20000], first), uri=str(uri), title=f"Context: {str(uri).rsplit('/', 1)[-1]}"))
    return SYSTEM, parts, prompt

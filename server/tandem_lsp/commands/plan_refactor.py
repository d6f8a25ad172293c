"""``tandem.planRefactor``: a numbered, behaviour-preserving refactoring plan for a range or a file."""

from __future__ import annotations

from tandem_lsp.commands import Sources, excerpt, range_lines
from tandem_lsp.commands.runner import Part
from tandem_lsp.commands.workspace_context import definitions_used, imports, numbered

SYSTEM = (
    "You are a senior engineer planning a refactoring with a colleague inside their editor.\n"
    "Write a numbered, step-by-step plan in Markdown that keeps behaviour unchanged: each step small, "
    "safe to commit on its own, naming the functions and lines it touches.\n"
    "Then a section ## Risky steps (what could change behaviour and how to guard it) and a section "
    "## Tests to run (existing tests, and the tests to add before starting)."
)

DEFAULT_GOAL = "improve readability and structure without changing behaviour"


def build(args: dict, sources: Sources) -> tuple[str, list[Part], str]:
    uri = str(args.get("uri") or "")
    goal = str(args.get("goal") or DEFAULT_GOAL).strip()
    text = sources.text(uri) or ""
    first, code = excerpt(text, range_lines(args))
    parts = [Part(f"The goal: {goal}")]
    head = imports(text)
    if head:
        parts.append(Part(head, uri=uri, title="Its imports"))
    parts.append(Part(numbered(code, first), uri=uri, title=f"The code to refactor ({uri.rsplit('/', 1)[-1]})"))
    for definition in definitions_used(text, code):
        parts.append(Part(definition, uri=uri, title="A definition it uses"))
    return SYSTEM, parts, f"plan a multi-step refactoring: {goal}"

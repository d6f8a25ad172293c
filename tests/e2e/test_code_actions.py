"""Local code actions end to end: listed at once, resolved lazily on the local model, edits confined
to the selection and checked to parse."""

from __future__ import annotations

import pytest
from lsprotocol import types

URI = "file:///project/shapes.py"
DOC = "import math\n\n\ndef area(r):\n    return math.pi * r * r\n\n\nprint(area(2))\n"
DOCSTRING_REPLY = '```python\ndef area(r):\n    """Area of a circle of radius r."""\n    return math.pi * r * r\n```\n'


def actions_request(session, diagnostics=(), line=4):
    return session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            range=types.Range(start=types.Position(line, 4), end=types.Position(line, 4)),
            context=types.CodeActionContext(diagnostics=list(diagnostics)),
        )
    )


async def test_actions_are_listed_without_calling_a_model(session):
    session.open(URI, DOC)
    diagnostic = types.Diagnostic(range=types.Range(types.Position(4, 4), types.Position(4, 10)),
                                  message="Missing return type", source="mypy")
    actions = await actions_request(session, [diagnostic])
    titles = [a.title for a in actions]
    assert "Tandem: Add docstring" in titles and "Tandem: Add type hints" in titles
    assert "Tandem: Fix 'Missing return type'" in titles
    commands = {a.command.command for a in actions if a.command}
    assert {"tandem.explainFailure", "tandem.planRefactor", "tandem.explainCode"} <= commands
    assert session.fake.generation_requests() == []  # listing never waits on a model


async def test_resolve_adds_a_docstring_confined_to_the_function(session):
    session.fake.completion = DOCSTRING_REPLY
    session.open(URI, DOC)
    action = next(a for a in await actions_request(session) if a.title == "Tandem: Add docstring")
    resolved = await session.client.code_action_resolve_async(action)
    (edit,) = resolved.edit.changes[URI]
    assert edit.range == types.Range(types.Position(3, 0), types.Position(4, 26))
    assert edit.new_text == 'def area(r):\n    """Area of a circle of radius r."""\n    return math.pi * r * r'
    assert "Add a concise docstring" in session.fake.generation_requests()[0].body["messages"][-1]["content"]


async def test_an_edit_that_does_not_parse_is_not_offered(session):
    session.fake.completion = "```python\ndef area(r)\n    return (\n```\n"
    session.open(URI, DOC)
    action = next(a for a in await actions_request(session) if a.title == "Tandem: Add type hints")
    resolved = await session.client.code_action_resolve_async(action)
    assert resolved.edit is None
    assert any("did not parse" in m.message for m in session.client.messages)


async def test_explain_code_stays_local(session):
    session.fake.completion = "It computes the area of a circle."
    session.open(URI, DOC)
    action = next(a for a in await actions_request(session) if a.command and a.command.command == "tandem.explainCode")
    result = await session.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=action.command.command, arguments=action.command.arguments)
    )
    assert result["tier"] == "local" and result["markdown"] == "It computes the area of a circle."


@pytest.mark.parametrize("only", [[types.CodeActionKind.QuickFix], [types.CodeActionKind.Refactor]])
async def test_only_filter(session, only):
    session.open(URI, DOC)
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            range=types.Range(start=types.Position(4, 4), end=types.Position(4, 4)),
            context=types.CodeActionContext(diagnostics=[types.Diagnostic(
                range=types.Range(types.Position(4, 4), types.Position(4, 10)), message="E501 line too long")], only=only),
        )
    )
    assert actions and all((a.kind or "").startswith(only[0]) for a in actions)

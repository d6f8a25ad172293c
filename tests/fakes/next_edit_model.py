"""The model side of next-edit requests, for the fake model server (`FakeModelServer(script=...)`).

`window_in(body)` recognises a next-edit request by its prompt format (a raw `prompt` in Sweep's or Zeta's
format, or chat `messages` in the instruct format) and reads the editable window and the path out of it;
`answer_for(template, new_window, prompt)` writes what a model of that format would generate to propose
`new_window`; `next_edit_script(rewrite)` joins them into a `script(request)` for the fake server.

The markers are spelled out here again rather than imported from the server, so that a changed marker in
the server's templates shows up as a fake that no longer understands it.

A prompt may not show whether the window ends the file without a final newline (Sweep's and the instruct
layout cannot); the window read from such a prompt then ends with a newline, and the server's parser
restores the window's own convention.

Token accounting: the fake server counts one `chunk_size`-character chunk as one token. The server's answer
budget is at least about 0.9 tokens per character of the answer when the characters per token are unknown
(and answer/(0.85 x chars per token) otherwise, plus room for growth), so any `chunk_size` >= 2 fits an answer
within it; the default 4 does up to some 5 characters per token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.fakes.model_server import DEFAULT_COMPLETION, RecordedRequest

FILE_SEP = "<|file_sep|>"
ENDOFTEXT = "<|endoftext|>"
ZETA_EXCERPT = "### User Excerpt:\n\n"
ZETA_RESPONSE = "\n\n### Response:"
ZETA_START = "<|editable_region_start|>"
ZETA_END = "<|editable_region_end|>"
ZETA_CURSOR = "<|user_cursor_is_here|>"
INSTRUCT_CURSOR = "<|cursor|>"
_INSTRUCT_WINDOW = re.compile(
    r"^The editable window of (?P<path>.*) \(the cursor is marked <\|cursor\|>\):\n"
    r"(?P<fence>`{3,})(?P<lang>[^\n`]*)\n",
    re.MULTILINE,
)

Rewrite = Callable[[str, str], "str | None"]


def _text_of(content: Any) -> str:
    """A chat message's text (a string, or OpenAI-style parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_of(body: Any) -> str | list | None:
    """The raw prompt or the messages of a request body (or the prompt/messages themselves)."""
    if isinstance(body, dict):
        if isinstance(body.get("messages"), list):
            return body["messages"]
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else None
    return body if isinstance(body, (str, list)) else None


def _sweep_window(prompt: str) -> tuple[str, str] | None:
    at = prompt.rfind(f"{FILE_SEP}current/")
    if at < 0:
        return None
    header_end = prompt.find("\n", at)
    if header_end < 0:
        return None
    path = prompt[at + len(f"{FILE_SEP}current/"):header_end]
    tail = f"\n{FILE_SEP}updated/{path}"
    if not prompt.endswith(tail):
        return None
    content = prompt[header_end + 1:len(prompt) - len(tail)]
    return (content + "\n" if content else ""), path


def _zeta_parts(prompt: str) -> tuple[str, str, str] | None:
    """(path, region with the cursor marker, what follows the end marker up to the closing fence)."""
    at = prompt.rfind(ZETA_EXCERPT + "```")
    end = prompt.rfind(ZETA_RESPONSE)
    if not prompt.startswith("### Instruction:\n") or at < 0 or end < at:
        return None
    excerpt = prompt[at + len(ZETA_EXCERPT):end]
    path = excerpt[3:excerpt.find("\n")]
    start, stop = excerpt.find(ZETA_START + "\n"), excerpt.rfind("\n" + ZETA_END)
    if start < 0 or stop < start or not excerpt.endswith("\n```"):
        return None
    region = excerpt[start + len(ZETA_START) + 1:stop]
    tail = excerpt[stop + 1 + len(ZETA_END):-len("\n```")]
    return path, region, tail


def _instruct_window(messages: list) -> tuple[str, str, str, str] | None:
    """(path, window, fence, language tag) from the last user message."""
    users = [_text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None
    text = users[-1]
    m = _INSTRUCT_WINDOW.search(text)
    if m is None:
        return None
    fence, rest = m.group("fence"), text[m.end():]
    close = re.search(rf"^{fence}[ \t]*$", rest, re.MULTILINE)
    if close is None:
        return None
    return m.group("path"), rest[:close.start()].replace(INSTRUCT_CURSOR, ""), fence, m.group("lang")


def window_in(body: Any) -> tuple[str, str, str] | None:
    """(template name, the current window, the path) of a next-edit request, or None for any other
    request. ``body`` is a recorded request body (a dict with ``prompt`` or ``messages``), or the prompt
    string or message list itself."""
    prompt = _prompt_of(body)
    if isinstance(prompt, list):
        found = _instruct_window(prompt)
        return ("instruct", found[1], found[0]) if found else None
    if not isinstance(prompt, str):
        return None
    if (parts := _zeta_parts(prompt)) is not None:
        path, region, tail = parts
        window = region.replace(ZETA_CURSOR, "") + ("\n" if tail.startswith("\n") else "")
        return "zeta", window, path
    if (found := _sweep_window(prompt)) is not None:
        return "sweep", found[0], found[1]
    return None


def _joined(window: str) -> str:
    return window[:-1] if window.endswith("\n") else window


def answer_for(template: str, new_window: str, prompt: Any) -> str:
    """What a model of ``template`` generates to propose ``new_window`` for the request ``prompt`` (a body,
    a prompt string or messages): Sweep writes the window after the ``updated/`` header and ends its text;
    Zeta rewrites the excerpt from the region's start marker to the closing fence; a chat model answers
    with one fenced block."""
    found = _prompt_of(prompt)
    if template == "sweep":
        return "\n" + _joined(new_window) + ENDOFTEXT
    if template == "zeta":
        parts = _zeta_parts(found) if isinstance(found, str) else None
        tail = parts[2] if parts else ("\n" if new_window.endswith("\n") else "")
        return f"{ZETA_START}\n{_joined(new_window)}\n{ZETA_END}{tail}\n```\n"
    if template == "instruct":
        window = _instruct_window(found) if isinstance(found, list) else None
        lang = window[3] if window else ""
        runs = [len(r) for r in re.findall(r"`+", new_window)]
        fence = "`" * max(3, max(runs, default=0) + 1, len(window[2]) if window else 0)
        body = new_window if not new_window or new_window.endswith("\n") else new_window + "\n"
        return f"{fence}{lang}\n{body}{fence}\n"
    raise ValueError(f"unknown next-edit template {template!r}")


def next_edit_script(
    rewrite: Rewrite, fallback: Callable[[RecordedRequest], str] | str | None = None
) -> Callable[[RecordedRequest], str]:
    """A ``script(request)`` for FakeModelServer: a next-edit request is answered with
    ``rewrite(window, path)`` (None: the window unchanged) in the request's format; any other request
    with ``fallback(request)`` (a string: that text; None: the server's default completion)."""

    def script(request: RecordedRequest) -> str:
        found = window_in(request.body)
        if found is None:
            if callable(fallback):
                return fallback(request)
            return DEFAULT_COMPLETION if fallback is None else fallback
        template, window, path = found
        new_window = rewrite(window, path)
        return answer_for(template, window if new_window is None else new_window, request.body)

    return script

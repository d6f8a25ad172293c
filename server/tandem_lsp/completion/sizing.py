"""The sizing stage: how much prompt a model server gets, and where the prompt starts.

A model server reads the part of a prompt that differs from the prompt in its cache. Two rules follow:

* **Size to the server.** The suffix is read again on every keystroke (the cursor line changes just before
  it), so it gets what the server reads in ``SUFFIX_READ_S``; the whole prompt is read when a file is
  opened, so it gets what the server reads in ``PROMPT_READ_S``. A server whose speed is not known (or a
  fast one) gets the settings' bounds. Neither may pass the server's own cuts (llama-server /infill keeps
  3/4 of its batch of the prefix), which would cut from the left and move the start on every keystroke.
* **Keep the start.** A new prompt start leaves ``PROMPT_READ_S`` worth of prefix before the cursor (at most
  3/4 of the server's limit, so that a quarter of it at least can be typed before the start moves); then
  the start stays where it is (the cached prompt starts there) while the prefix grows up to the server's
  own limit, so typing reads only what changed. Only past that limit does the start move.

Token counts are estimated from the server's characters per token (learned from its own counts), with a
margin, since the pipeline works in characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tandem_lsp.backends.types import ServerProfile, common_prefix_len

__all__ = ["Budget", "PromptStart", "ReadEstimate", "budget", "common_prefix_len"]

SUFFIX_READ_S = 0.25
SUFFIX_MIN_TOKENS = 32
PROMPT_READ_S = 3.0  # a file just opened is read before the first line end is typed (~2.5 s)
PROMPT_MIN_TOKENS = 256
SNIPPET_SHARE = 4  # snippets get at most 1/SNIPPET_SHARE of a sized prompt
TOKEN_MARGIN = 0.85  # characters per token vary along a file: a token bound becomes 85% of it in characters
LINE_RESERVE_TOKENS = 64  # /infill's suffix room is shared with the cursor line (its `prompt`)
ANSWER_RESERVE_TOKENS = 16
ANCHOR_CHARS = 64  # the start of the cached prompt is found again by its first characters
ANCHOR_SEARCH = 16_384  # ... within this distance of where it was
_MARKER = re.compile(r"<\|[a-z_]+\|>|<[a-z_]+>|<｜[^｜]+｜>|\[[A-Z]+\]")  # FIM and file markers of the templates
WARM_MIN_TOKENS = 64  # a warm-up of less than this is not worth a request of its own
COLD_READ_S = 0.75  # an uncached part that takes longer than this to read waits for a pause, then warms


@dataclass(frozen=True)
class Budget:
    """Character bounds of one prompt."""

    prefix: int  # a new start leaves this much before the cursor
    max_prefix: int  # a kept start may grow the prefix up to this
    suffix: int
    snippets: int  # context from elsewhere, taken from the prefix side
    sized: bool  # sized to a measured server (else the settings' bounds)


def budget(profile: ServerProfile | None, max_prefix_chars: int, max_suffix_chars: int, max_tokens: int,
           line_chars: int = 0) -> Budget:
    """The bounds for a prompt to a server with ``profile``, within the settings' character bounds."""
    p = profile
    read_tps = p.effective_read_tps if p is not None else None
    if p is None or p.sizes_itself or not read_tps:
        prefix, suffix = max_prefix_chars, max_suffix_chars
        if p is not None and p.n_ctx and not p.sizes_itself:  # a known context still bounds it
            cpt = p.chars_per_token or 1.0  # unknown: as if every character were a token
            room = int((p.n_ctx - max_tokens - ANSWER_RESERVE_TOKENS) * cpt * TOKEN_MARGIN)
            suffix = min(suffix, room // 5)
            prefix = min(prefix, room - suffix)
        return Budget(prefix, prefix, suffix, prefix // 2, sized=False)
    cpt = (p.chars_per_token or 1.0) * TOKEN_MARGIN  # unknown: as if every character were a token

    def chars(tokens: float) -> int:
        return max(0, int(tokens * cpt))

    # in tokens, each within the settings' character bounds
    suffix_tokens = min(max(SUFFIX_MIN_TOKENS, read_tps * SUFFIX_READ_S), max_suffix_chars / cpt)
    if p.max_suffix_tokens is not None:
        line_tokens = line_chars / cpt + LINE_RESERVE_TOKENS
        suffix_tokens = min(suffix_tokens, max(0.0, p.max_suffix_tokens - line_tokens))
    cold_tokens = min(max(PROMPT_MIN_TOKENS, read_tps * PROMPT_READ_S), max_prefix_chars / cpt)
    snippet_tokens = min(cold_tokens, max_prefix_chars / cpt) / SNIPPET_SHARE
    if p.max_extra_tokens is not None:
        snippet_tokens = min(snippet_tokens, max(0.0, p.max_extra_tokens - 32))  # its own headers
    hard_tokens = float(p.max_prefix_tokens) if p.max_prefix_tokens is not None else float("inf")
    if p.n_ctx:  # everything, the answer included, within the context; the suffix at most a fifth of it
        suffix_tokens = min(suffix_tokens, (p.n_ctx - max_tokens - ANSWER_RESERVE_TOKENS) / 5)
        room = p.n_ctx - max_tokens - ANSWER_RESERVE_TOKENS - suffix_tokens - LINE_RESERVE_TOKENS
        snippet_tokens = max(0.0, min(snippet_tokens, room / SNIPPET_SHARE))
        hard_tokens = max(0.0, min(hard_tokens, room - snippet_tokens))
    suffix = min(max_suffix_chars, chars(suffix_tokens))
    max_prefix = min(max_prefix_chars, chars(hard_tokens) if hard_tokens != float("inf") else max_prefix_chars)
    prefix = min(max_prefix * 3 // 4, chars(cold_tokens))  # a quarter of the room at least, to type into
    return Budget(prefix, max_prefix, suffix, min(chars(snippet_tokens), max_prefix_chars // 2), sized=True)


class PromptStart:
    """Where the prompt in the server's cache starts (one per backend: a server caches one prompt per slot)."""

    def __init__(self) -> None:
        self.uri: str | None = None
        self.offset = 0
        self.anchor = ""

    def start(self, uri: str, text: str, offset: int, b: Budget) -> int:
        """The offset the prefix starts at: the cached start when it is still in ``text`` and keeping it
        leaves at most ``b.max_prefix`` before the cursor; else a new start (a line start) ``b.prefix``
        before the cursor."""
        if self.uri == uri and self.anchor:
            at = self._find(text, offset)
            if at is not None and offset - at <= b.max_prefix:
                return at
        start = max(0, offset - b.prefix)
        if start > 0 and text[start - 1] != "\n":
            cut = text.find("\n", start, offset)
            if cut >= 0:  # else the cursor line alone is longer than the budget: start inside it
                start = cut + 1
        return start

    def _find(self, text: str, offset: int) -> int | None:
        """Where the anchor is now: where it was (typing below it), else its nearest occurrence (lines were
        added or removed above it), at or before the cursor."""
        old, n = self.offset, len(self.anchor)
        if old <= offset and text.startswith(self.anchor, old):
            return old
        after = text.find(self.anchor, old, min(offset, old + ANCHOR_SEARCH) + n)
        before = text.rfind(self.anchor, max(0, old - ANCHOR_SEARCH), min(offset, old) + n)
        found = [at for at in (after, before) if 0 <= at <= offset]
        return min(found, key=lambda at: abs(at - old)) if found else None

    def sent(self, uri: str, text: str, start: int) -> None:
        self.uri, self.offset = uri, start
        self.anchor = text[start : start + ANCHOR_CHARS]


class ReadEstimate:
    """How long the server will read a prompt: the part that differs from the last prompt sent to it."""

    def __init__(self) -> None:
        self.last = ""

    def seconds(self, prompt: str, profile: ServerProfile | None) -> float:
        read_tps = profile.effective_read_tps if profile is not None else None
        if not read_tps:
            return 0.0
        return self.tokens(prompt, profile) / read_tps

    def tokens(self, prompt: str, profile: ServerProfile) -> float:
        """About how many tokens of ``prompt`` the server has not read (a template's marker is one token)."""
        same = common_prefix_len(self.last, prompt)
        new = prompt[same:]
        markers = _MARKER.findall(new)
        chars = len(new) - sum(len(m) for m in markers)
        return chars / (profile.chars_per_token or 1.0) + len(markers)

    def sent(self, prompt: str) -> None:
        self.last = prompt


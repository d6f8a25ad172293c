"""Which suggestions the user accepted, for every client: from the document, and from the item's command.

Editors that run a completion item's command (VS Code, Neovim) say so with ``tandem.acceptSuggestion``;
others never run it (Emacs eglot, and some more). So an acceptance is also read from the document: the
suggestion last shown in a document counts as accepted when a change makes the document hold it right
after the offset it was shown at, with the text before that offset as it was, and at least
``MIN_AT_ONCE`` of its characters arriving in that one change (an editor inserts an accepted suggestion
at once; typing it by hand brings one character a change). Either way it is counted once: the command
carries the id of the suggestion it accepts, and a suggestion counted from the document is not counted
again when its command arrives (nor the other way round).

No LSP types here: the server passes document texts and offsets (python characters).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tandem_lsp.completion.sizing import common_prefix_len

MIN_AT_ONCE = 2  # characters of the suggestion (and of its non-blank text) one change must bring
PREFIX_CHECKED = 256  # characters before the offset that must be as they were when it was shown
REMEMBERED = 64  # ids of counted suggestions kept, for a command that comes after a newer suggestion


@dataclass
class Shown:
    id: int
    uri: str
    text: str  # the suggestion, inserted at ``offset``
    offset: int
    before: str  # the document when it was shown
    source: str
    counted: bool = False


def inserted_at_once(shown: Shown, previous: str, now: str) -> bool:
    """Whether the change from ``previous`` to ``now`` put ``shown``'s suggestion in after its offset."""
    s, o = shown.text, shown.offset
    if len(s) < MIN_AT_ONCE or len(s.strip()) < MIN_AT_ONCE:
        return False  # a character or blanks: an Enter, or a key typed, looks the same
    if now[o : o + len(s)] != s:
        return False
    lo = max(0, o - PREFIX_CHECKED)
    if now[lo:o] != shown.before[lo:o]:
        return False  # the text before it changed: this is another place
    # how much of the suggestion was there before this change: the change must have brought the rest
    return len(s) - common_prefix_len(previous[o : o + len(s)], s) >= MIN_AT_ONCE


class AcceptanceTracker:
    """Per document the suggestion last shown; ``changed`` and ``command`` say when to count one."""

    def __init__(self) -> None:
        self._shown: dict[str, Shown] = {}
        self._last: dict[str, str] = {}  # the document as the previous change left it
        self._counted: deque[int] = deque(maxlen=REMEMBERED)
        self._next_id = 0

    def shown(self, uri: str, text: str, offset: int, suggestion: str, source: str) -> int:
        """A suggestion shown at ``offset`` of the document ``text``; returns its id (for the command)."""
        self._next_id += 1
        self._shown[uri] = Shown(self._next_id, uri, suggestion, offset, text, source)
        self._last[uri] = text
        return self._next_id

    def changed(self, uri: str, text: str) -> str | None:
        """The document is now ``text``: the source of the suggestion this change accepted, or None."""
        shown = self._shown.get(uri)
        if shown is None or shown.counted:
            return None
        previous = self._last.get(uri, shown.before)
        self._last[uri] = text
        if not inserted_at_once(shown, previous, text):
            return None
        self._count(shown)
        return shown.source

    def command(self, info: object) -> bool:
        """The item's command arrived: True when it is to be counted (its suggestion was not yet)."""
        shown_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(shown_id, int) or isinstance(shown_id, bool):
            return True  # from a client or script that does not send the id: the command is all there is
        if shown_id in self._counted:
            return False
        for shown in self._shown.values():
            if shown.id == shown_id:
                self._count(shown)
                break
        else:
            self._counted.append(shown_id)
        return True

    def closed(self, uri: str) -> None:
        self._shown.pop(uri, None)
        self._last.pop(uri, None)

    def _count(self, shown: Shown) -> None:
        shown.counted = True
        self._counted.append(shown.id)
        self._last.pop(shown.uri, None)

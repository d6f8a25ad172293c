"""Plain data passed between the next-edit stages. No LSP types here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileDiff:
    """One recent edit of a document as a small unified diff."""

    path: str  # workspace-relative path (or file name), as shown to the model
    diff: str  # the hunk(s) only: "@@ -12,3 +12,3 @@\n def f(a):\n-    x\n+    y\n" (no ---/+++ header lines)
    old: str = ""  # the lines the hunk had before (context and removed), joined with "\n"
    new: str = ""  # the lines it has now (context and added)


@dataclass(frozen=True)
class NextEditContext:
    """What the model sees for one next-edit request."""

    path: str  # the document's workspace-relative path (or file name)
    language_id: str
    diffs: tuple[FileDiff, ...]  # recent edits, oldest first, newest last (this document's and others')
    before: str  # the document's text before the window (bounded, whole lines)
    window: str  # the editable window as it is now: whole lines, each ending with "\n" (the last may not at EOF)
    original: str  # the same region before the recent edits (for Sweep's original/ block)
    cursor: int  # the cursor's offset within ``window``
    after: str  # the document's text after the window (bounded, whole lines)
    window_start_line: int = 0  # 0-based line of the document where the window starts

"""Debounce delay: fixed, or adapted to the user's measured typing rhythm.

With ``"auto"`` the delay follows the user's recent keystroke gaps (as Tabby does): a model call is
started only once the user pauses noticeably longer than their usual gap between keys. The delay is
clamped so a slow typist never waits long and a fast one never floods the model.
"""

from __future__ import annotations

from collections import deque

MIN_MS = 60.0
MAX_MS = 400.0
INITIAL_MS = 150.0
GAP_FACTOR = 2.0
MAX_GAP_S = 1.0  # longer gaps are pauses, not typing rhythm
WINDOW = 30


class Debouncer:
    """Measures keystroke gaps and tells how long to wait before calling the model."""

    def __init__(self, setting: int | str = "auto"):
        self.setting = setting
        self._gaps: deque[float] = deque(maxlen=WINDOW)
        self._last: float | None = None

    def keystroke(self, now: float) -> None:
        """Record a keystroke (a document change) at monotonic time ``now`` (seconds)."""
        if self._last is not None:
            gap = now - self._last
            if 0 < gap <= MAX_GAP_S:
                self._gaps.append(gap * 1000.0)
        self._last = now

    def delay_ms(self) -> float:
        if self.setting != "auto":
            return float(self.setting)
        if len(self._gaps) < 3:
            return INITIAL_MS
        return min(MAX_MS, max(MIN_MS, _median(self._gaps) * GAP_FACTOR))


def _median(values) -> float:
    """The median (``statistics`` would import ``decimal`` and ``fractions`` at start-up for this)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

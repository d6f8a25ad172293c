"""Which brain does the work: the local model or the cloud model.

Pure decision logic, no I/O (the circuit breaker reads a clock it is given):

* ``TASK_TIERS`` — the fixed tier of each task type; ``"ask"`` is decided per request.
* ``classify_ask`` — routes a ``tandem.ask`` request by its task shape (``ask_shapes``: weighted, named
  cues per shape, plus length/structure signals); the route's reason names the deciding shape and
  its cues, e.g. "decide between given labels → local (given labels: personal / business; …)".
* ``decide`` — the tier a task runs on once availability is known (cloud disabled, no key, budget,
  circuit breaker, local model down), with the fallback explained.
* ``CircuitBreaker`` — opens on 429s (for Retry-After) and on runs of other failures (backoff).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from tandem_lsp.ask_shapes import (
    CLOUD,
    FEATURES,
    LARGE_CONTEXT_CHARS,
    LOCAL,
    LONG_PROMPT_WORDS,
    SHAPES,
    Feature,
    Shape,
    Signal,
    detect,
    dominant_shape,
)

__all__ = [
    "CLOUD",
    "COMMANDS",
    "FAILURE_KINDS",
    "IGNORED_KINDS",
    "LOCAL",
    "PER_REQUEST",
    "TASK_TIERS",
    "CircuitBreaker",
    "CloudState",
    "Decision",
    "FEATURES",
    "Feature",
    "Route",
    "SHAPES",
    "Shape",
    "classify_ask",
    "decide",
    "score_ask",
]

PER_REQUEST = "per-request"

# Task type -> tier. Code actions may be dispatched as "code_action" or by their own names.
TASK_TIERS: dict[str, str] = {
    "completion": LOCAL,
    "code_action": LOCAL,
    "add_docstring": LOCAL,
    "add_type_hints": LOCAL,
    "fix_diagnostic": LOCAL,
    "explain_code": LOCAL,
    "explain_failure": CLOUD,
    "plan_refactor": CLOUD,
    "ask": PER_REQUEST,
}

# Commands the user invoked explicitly: they may cross to the other tier when theirs is unavailable.
COMMANDS = frozenset({"explain_failure", "plan_refactor", "ask"})


# --- classify_ask ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    tier: str  # LOCAL | CLOUD
    reason: str  # "<task shape> → <tier> (<deciding cues>; score …)"
    score: float = 0.0  # > 0 leans cloud, < 0 leans local
    features: tuple[tuple[str, float], ...] = ()  # every cue that fired, with its weight
    shape: str = ""  # key of the task shape that decided (ask_shapes.SHAPES), "" when none did


def score_ask(prompt: str, *, context_chars: int = 0, files: int = 1) -> list[tuple[str, float]]:
    """Every cue that fires for the request, with its weight (each cue counts once)."""
    return [(s.name, s.weight) for s in detect(prompt, context_chars=context_chars, files=files)]


def _names(fired: list[Signal], sign: int, first: Shape | None = None, limit: int = 3) -> str:
    side = [s for s in fired if s.weight * sign > 0]
    # the deciding shape's cues first, then the heaviest; stable: ties keep the table's order
    side.sort(key=lambda s: (first is None or s.shape != first.key, -abs(s.weight)))
    return ", ".join(s.name for s in side[:limit])


def classify_ask(prompt: str, *, context_chars: int = 0, files: int = 1) -> Route:
    """Route a ``tandem.ask`` request by its task shape (text and size alone). Deterministic, no model call."""
    fired = detect(prompt, context_chars=context_chars, files=files)
    score = round(sum(s.weight for s in fired), 2)
    feats = tuple((s.name, s.weight) for s in fired)
    if score != 0:
        tier, sign = (LOCAL, -1) if score < 0 else (CLOUD, +1)
        shape = dominant_shape(fired, sign)
        if shape is not None:
            what = shape.label
        else:
            what = "no schema-like task shape" if tier == CLOUD else "schema-like hints only"
        return Route(tier, f"{what} → {tier} ({_names(fired, sign, shape)}; score {score:+.1f})", score, feats,
                     shape.key if shape else "")
    words = len(prompt.split())
    if words > LONG_PROMPT_WORDS or context_chars > LARGE_CONTEXT_CHARS:
        return Route(CLOUD, f"no clear shape (score 0) but a long request ({words} words, "
                            f"{context_chars:,} chars of context) → cloud", score, feats)
    what = f"shapes cancel out ({_names(fired, -1)} vs {_names(fired, +1)})" if fired else "no clear shape"
    return Route(LOCAL, f"{what}; a tie stays on the cheaper local model → local", score, feats)


# --- decide ---------------------------------------------------------------------------------------

@dataclass
class CloudState:
    enabled: bool
    has_key: bool
    over_budget: bool
    breaker_reason: str | None = None  # CircuitBreaker.open_reason()
    local_available: bool = True
    key_env: str = "ANTHROPIC_API_KEY"
    budget_usd: float = 2.0

    def unavailable_reason(self) -> str | None:
        """Why the cloud cannot be called right now, or None when it can."""
        if not self.enabled:
            return "cloud disabled in settings (cloud.enabled = false)"
        if self.budget_usd <= 0:
            return "cloud.dailyBudgetUsd is 0: the cloud is never called"
        if not self.has_key:
            return f"no API key: set the environment variable {self.key_env}"
        if self.over_budget:
            return f"daily budget of ${self.budget_usd:.2f} reached"
        if self.breaker_reason:
            return self.breaker_reason
        return None


@dataclass(frozen=True)
class Decision:
    tier: str  # LOCAL | CLOUD
    reason: str
    fallback_reason: str | None = None  # set when the task did not get the tier it routed to


_LOCAL_DOWN = "the local model is unavailable"


def decide(task: str, *, prompt: str = "", context_chars: int = 0, files: int = 1,
           cloud: CloudState) -> Decision:
    """The tier ``task`` runs on given what is available, and why."""
    try:
        table_tier = TASK_TIERS[task]
    except KeyError:
        raise ValueError(f"unknown task type {task!r} (known: {', '.join(TASK_TIERS)})") from None

    if table_tier == PER_REQUEST:
        route = classify_ask(prompt, context_chars=context_chars, files=files)
        tier, reason = route.tier, route.reason
    elif table_tier == CLOUD:
        tier, reason = CLOUD, f"{task.replace('_', ' ')} is open-ended work — the cloud model does it"
    else:
        tier, reason = LOCAL, f"{task.replace('_', ' ')} always runs on the local model"

    blocked = cloud.unavailable_reason()

    if task not in COMMANDS:  # completions and code actions: local, whatever happens
        if not cloud.local_available:
            return Decision(LOCAL, f"{reason}; {_LOCAL_DOWN}, so there is nothing to return")
        return Decision(LOCAL, reason)

    if tier == CLOUD:
        if blocked is None:
            return Decision(CLOUD, reason)
        if cloud.local_available:
            return Decision(LOCAL, f"{reason}; falling back to the local model", blocked)
        return Decision(LOCAL, reason, f"{blocked}; and {_LOCAL_DOWN}")

    # A command that routed local.
    if cloud.local_available:
        return Decision(LOCAL, reason)
    if blocked is None:
        return Decision(CLOUD, f"{reason}; but {_LOCAL_DOWN}, so the cloud model answers")
    return Decision(LOCAL, reason, f"{_LOCAL_DOWN}, and the cloud cannot be used: {blocked}")


# --- circuit breaker ------------------------------------------------------------------------------

FAILURE_KINDS = frozenset({"rate_limited", "server_error", "timeout", "offline"})
# Cloud errors that waiting does not fix (a wrong key, a malformed request, a call we cancelled):
# accepted and ignored here — they neither count nor reset the failure streak. The command runner
# remembers a rejected key itself and does not send it again until the key or the settings change.
IGNORED_KINDS = frozenset({"auth", "bad_request", "cancelled"})
_KIND_TEXT = {"server_error": "server error", "timeout": "timeout", "offline": "offline"}


class CircuitBreaker:
    """Stops calling the cloud for a while after it says so (429) or keeps failing.

    * ``rate_limited``: open for Retry-After seconds (30 s when absent, at most 600 s).
    * other kinds: after 3 consecutive failures, open for 15 s, then 30 s, 60 s … (at most 300 s)
      each time it re-trips without a success in between.
    * ``auth`` / ``bad_request`` / ``cancelled`` are ignored (waiting does not fix them).
    * Failures reported while it is open (calls that were already in flight) are counted but do
      not re-open it with a longer backoff.
    * When the open period has passed the breaker is half-open: ``open_reason()`` is None and the
      next call goes through as a trial; a failure re-opens it (longer), a success closes it.
    """

    THRESHOLD = 3
    RATE_LIMIT_DEFAULT_S = 30.0
    RATE_LIMIT_CAP_S = 600.0
    BACKOFF_BASE_S = 15.0
    BACKOFF_CAP_S = 300.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._consecutive = 0  # consecutive non-429 failures since the last success
        self._trips = 0  # backoff openings since the last success
        self._open_until: float | None = None
        self._why = ""  # without the time left; open_reason() adds it

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def record_failure(self, kind: str, retry_after: float | None = None) -> None:
        if kind in IGNORED_KINDS:
            return
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r} "
                             f"(known: {', '.join(sorted(FAILURE_KINDS | IGNORED_KINDS))})")
        now = self._clock()
        if kind == "rate_limited":
            wait = self.RATE_LIMIT_DEFAULT_S if retry_after is None else max(0.0, float(retry_after))
            self._open(now, min(wait, self.RATE_LIMIT_CAP_S), "rate-limited")
            return
        self._consecutive += 1
        if self._consecutive >= self.THRESHOLD and not self._is_open(now):
            wait = min(self.BACKOFF_BASE_S * 2 ** self._trips, self.BACKOFF_CAP_S)
            self._trips += 1
            self._open(now, wait, f"{self._consecutive} consecutive cloud failures, "
                                  f"last: {_KIND_TEXT[kind]}")

    def _is_open(self, now: float) -> bool:
        return self._open_until is not None and now < self._open_until

    def _open(self, now: float, wait: float, why: str) -> None:
        until = now + wait
        if self._open_until is None or until >= self._open_until or now >= self._open_until:
            self._open_until, self._why = until, why

    def record_success(self) -> None:
        self._consecutive = 0
        self._trips = 0
        self._open_until = None
        self._why = ""

    def open_reason(self) -> str | None:
        """Why the cloud is not being called, or None (closed, or half-open: a trial is allowed)."""
        if self._open_until is None:
            return None
        left = self._open_until - self._clock()
        if left <= 0:
            return None
        return f"{self._why} (retry after {math.ceil(left - 1e-9)} s)"

    def allows_call(self) -> bool:
        return self.open_reason() is None

    @property
    def state(self) -> str:
        """ "closed", "open", or "half-open" (the open period passed; the next call is a trial)."""
        if self._open_until is None:
            return "closed"
        return "open" if self._is_open(self._clock()) else "half-open"

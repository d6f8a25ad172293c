"""The types of the backend protocol: what a backend is asked to do, and what it learns about its server.

Backends import nothing from the completion pipeline; the pipeline builds these and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chunk:
    """A short piece of another file (or a recently edited range) given to the model as context."""

    path: str  # a workspace-relative path or a file name, shown to the model
    text: str


@dataclass
class GenerationRequest:
    """What a backend is asked to generate. Built by the completion pipeline's templating stage."""

    prefix: str  # the text before the cursor (its last line is the cursor line up to the cursor)
    suffix: str
    prompt: str  # the raw FIM prompt for /v1/completions and Ollama raw mode ("" for chat templates)
    stop: list[str] = field(default_factory=list)
    max_tokens: int = 128
    temperature: float = 0.0
    model: str | None = None
    snippets: tuple[Chunk, ...] = ()  # for llama.cpp /infill input_extra
    messages: list[dict] | None = None  # set for the `chat` template: OpenAI-style chat messages
    timeout_ms: int = 2500  # used by llama.cpp's t_max_predict_ms
    warm_only: bool = False  # read the prompt into the server's cache and generate nothing
    raw: bool = False  # continue ``prompt`` as it is (no fill-in-the-middle): next-edit rewrites
    slot: int | None = None  # llama-server slot to use (None: the backend's own choice)
    finish_reason: str | None = None  # set by the backend when the stream ends: "stop", or "length" (the limit)


@dataclass
class ServerReport:
    """What the server said about one call, from its own counters (None: it did not say)."""

    prompt_tokens: int | None = None  # the whole prompt, as the server tokenized it
    cached_tokens: int | None = None  # of them, taken from the server's cache
    read_tokens: int | None = None  # of them, read (evaluated) for this call
    read_ms: float | None = None
    generated_tokens: int | None = None
    generate_ms: float | None = None
    truncated: bool | None = None
    prompt_chars: int = 0  # characters Tandem sent (to learn the server's characters per token)


ASSUMED_READ_TPS = 85.0  # a small model on a laptop CPU: what an unmeasured server is taken to read
MIN_TIMED_TOKENS = 64  # a read shorter than this says little of a server's speed
MAX_TIMED_TPS = 4000.0  # a read within the noise of the fixed cost of a call: as fast as that


@dataclass
class ServerProfile:
    """What Tandem knows of a model server: its limits and its measured speed (None: not known).

    The completion pipeline sizes prompts from it (completion/sizing.py); `doctor` and the status show it.
    """

    n_ctx: int | None = None  # context per request (slot), tokens
    n_batch: int | None = None  # llama-server's batch: /infill keeps 3/4 of it of the prefix, 1/4 of the suffix
    n_predict_default: int | None = None  # llama-server's own n_predict, which /infill's extra-context room uses
    read_tps: float | None = None  # prompt tokens read per second (a moving average)
    write_tps: float | None = None  # tokens generated per second
    chars_per_token: float | None = None  # of the prompts sent, as the server tokenized them
    slots: int | None = None
    # the server's own cuts (llama-server /infill keeps 3/4 of its batch of the prefix, 1/4 of it of the line
    # and the suffix, and what its context leaves of the extra chunks); None: it does not cut
    max_prefix_tokens: int | None = None
    max_suffix_tokens: int | None = None
    max_extra_tokens: int | None = None
    sizes_itself: bool = False  # the embedded backend cuts its prompts in tokens itself
    # its speed is measured from the calls themselves (no calibration): until then it is taken to be slow
    measures_by_ttft: bool = False
    hints: list[str] = field(default_factory=list)  # server flags that would help, for doctor
    learned: bool = False  # learn() ran
    # the quickest first token seen (new prompt tokens, ms): the fixed cost of a call (HTTP, scheduling, the
    # first token's own write) that a time to first token holds besides the reading
    ttft_floor: tuple[int, float] | None = None

    @property
    def effective_read_tps(self) -> float | None:
        """The reading speed to size prompts by: the measured one; for a server measured by its calls that
        has not been yet, a slow one (ASSUMED_READ_TPS), so that its first prompts are short."""
        if self.read_tps:
            return self.read_tps
        return ASSUMED_READ_TPS if self.measures_by_ttft and not self.sizes_itself else None

    def note_read(self, tokens: int, ms: float) -> None:
        """A read of ``tokens`` prompt tokens in ``ms``: reads of 64+ tokens update the speed."""
        if tokens >= MIN_TIMED_TOKENS and ms > 0:
            self.read_tps = _average(self.read_tps, tokens * 1000.0 / ms)

    def note_first_token(self, tokens: int, ms: float) -> None:
        """A first token ``ms`` after sending a prompt with ``tokens`` uncached tokens (a server that reports
        no timings). The reading is what the time holds beyond the quickest first token seen after a read
        at most half as long; until such a one is seen, the whole time (a low bound of the speed)."""
        if ms <= 0:
            return
        floor = self.ttft_floor
        if floor is None or ms < floor[1]:
            self.ttft_floor = (tokens, ms)
        if tokens < MIN_TIMED_TOKENS:
            return
        if floor is not None and floor[0] <= tokens / 2:
            extra_ms = ms - floor[1]
            tps = MAX_TIMED_TPS if extra_ms <= 0 else (tokens - floor[0]) * 1000.0 / extra_ms
        else:
            tps = tokens * 1000.0 / ms
        self.read_tps = _average(self.read_tps, min(MAX_TIMED_TPS, tps))

    def note_write(self, tokens: int, ms: float) -> None:
        if tokens >= 4 and ms > 0:
            self.write_tps = _average(self.write_tps, tokens * 1000.0 / ms)

    def note_chars(self, chars: int, tokens: int) -> None:
        if tokens >= 32 and chars > 0:
            self.chars_per_token = _average(self.chars_per_token, chars / tokens, weight=0.2)

    def note_report(self, report: ServerReport) -> None:
        if report.read_tokens is not None and report.read_ms is not None:
            self.note_read(report.read_tokens, report.read_ms)
        if report.generated_tokens is not None and report.generate_ms is not None:
            self.note_write(report.generated_tokens, report.generate_ms)
        if report.prompt_tokens:
            self.note_chars(report.prompt_chars, report.prompt_tokens)

    def as_json(self) -> dict:
        return {
            "nCtx": self.n_ctx,
            "readTokensPerS": None if self.read_tps is None else round(self.read_tps, 1),
            "writeTokensPerS": None if self.write_tps is None else round(self.write_tps, 1),
            "charsPerToken": None if self.chars_per_token is None else round(self.chars_per_token, 2),
            "slots": self.slots,
        }


def _average(old: float | None, new: float, weight: float = 0.3) -> float:
    return new if old is None else (1 - weight) * old + weight * new


class BackendError(Exception):
    """The model server failed: unreachable, HTTP error, malformed stream. Message is safe to log."""


class ContextError(BackendError):
    """The server refused a prompt longer than its context: ``n_ctx`` is what it said its context is,
    ``requested`` how many tokens it said the prompt (and answer) had."""

    def __init__(self, message: str, n_ctx: int | None = None, requested: int | None = None):
        super().__init__(message)
        self.n_ctx = n_ctx
        self.requested = requested


def common_prefix_len(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (slice comparisons, no loop per character)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo

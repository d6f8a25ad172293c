"""One streaming model call for one document, which requests can wait on or adopt.

A ``Generation`` is anchored at the cursor where it started. Its text grows as chunks arrive; a
later request whose document is the anchor plus characters that agree with that text ("typing
into the output") waits for it instead of starting another call. The stream is closed early once
post-processing would cut the text anyway, which frees the local model sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from tandem_lsp.backends.base import ContextError, LocalBackend
from tandem_lsp.completion.cache import SUFFIX_FP_CHARS, prefix_key, suffix_fingerprint
from tandem_lsp.completion.postprocess import complete_lines, postprocess, stream_should_stop
from tandem_lsp.completion.request import GenerationRequest, PromptContext

log = logging.getLogger(__name__)

MAX_TYPED_AHEAD = 512  # the most characters a request may be past a generation's anchor to adopt it


class Generation:
    def __init__(
        self, text: str, offset: int, ctx: PromptContext, multiline: str, stop: list[str], *, prefetch: bool = False
    ):
        self.anchor_offset = offset
        self.anchor_key = prefix_key(text, offset)
        self.suffix_fp = suffix_fingerprint(text, offset)
        # a small window around the anchor, enough to key the cache when the result arrives
        start = max(0, offset - len(self.anchor_key))
        self.window = text[start : offset + SUFFIX_FP_CHARS]
        self.window_offset = offset - start
        self.ctx = ctx
        self.multiline = multiline
        self.stop = stop
        self.prefetch = prefetch
        self.raw = ""
        self.done = False
        self.error: str | None = None
        self.aborted = False
        self.cut_short = False  # local.timeoutMs ended a stream that was still sending: complete lines count
        self.started = time.monotonic()
        self.expected_read_s = 0.0  # how long the server was expected to read the uncached prompt
        self.first_chunk_at: float | None = None
        self.adopted_at = 0.0
        self.task: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._result: str | None = None

    # -- the stream ---------------------------------------------------------------------------
    async def run(
        self, backend: LocalBackend, request: GenerationRequest, timeout_s: float,
        retry: Callable[[], tuple[GenerationRequest, PromptContext]] | None = None,
    ) -> None:
        """Consume the model's stream into ``raw``. Raises what the backend raises; always ends ``done``.
        A prompt the server refuses as longer than its context is built again once with ``retry`` (the
        backend learned the context from the refusal) and sent again."""
        try:
            async with asyncio.timeout(timeout_s):
                for attempt in range(2):
                    try:
                        await self._consume(backend, request)
                        break
                    except ContextError:
                        if attempt or retry is None or self.raw:
                            raise
                        log.info("the server's context is smaller than the prompt: sending it again, shorter")
                        request, self.ctx = retry()
        except TimeoutError:
            if self.first_chunk_at is None:
                raise  # nothing came: the model is not answering
            self.cut_short = True  # a slow model with a long answer: its complete lines still count
            log.debug("generation cut short by local.timeoutMs after %d chars", len(self.raw))
        except asyncio.CancelledError:
            self.aborted = True
            raise
        finally:
            self.done = True
            self._notify()

    async def _consume(self, backend: LocalBackend, request: GenerationRequest) -> None:
        stream = backend.stream(request)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                if self.first_chunk_at is None:
                    self.first_chunk_at = time.monotonic()
                self.raw += chunk
                self._notify()
                if self._enough():
                    break

    def _enough(self) -> bool:
        return any(s in self.raw for s in self.stop) or stream_should_stop(self.raw, self.ctx, self.multiline)

    def abort(self, reason: str) -> None:
        """Stop the model call now; closing the stream closes its HTTP connection."""
        if self.task is not None and not self.task.done():
            log.debug("aborting generation (%s) after %d chars", reason, len(self.raw))
            self.task.cancel()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- requests that use it -----------------------------------------------------------------
    def typed_since(self, text: str, offset: int) -> str | None:
        """The characters typed after the anchor, when ``text`` at ``offset`` continues from it."""
        k = offset - self.anchor_offset
        if not 0 <= k <= MAX_TYPED_AHEAD:
            return None
        if prefix_key(text, offset - k) != self.anchor_key or suffix_fingerprint(text, offset) != self.suffix_fp:
            return None
        return text[offset - k : offset]

    def agrees_with(self, typed: str) -> bool:
        """Whether what was typed can still be the start of this generation's output."""
        if self.raw.startswith(typed):
            return True
        return not self.done and typed.startswith(self.raw)

    async def wait(self, typed: str) -> None:
        """Wait until the generation is done or its output no longer agrees with ``typed``."""
        while not self.done and self.agrees_with(typed):
            await self._changed.wait()

    def result(self) -> str | None:
        """The post-processed suggestion at the anchor (None when there is nothing to show)."""
        if self._result is None and self.done and self.error is None and not self.aborted:
            raw = complete_lines(self.raw) if self.cut_short else self.raw
            self._result = postprocess(raw, self.ctx, multiline=self.multiline, stop=self.stop) or ""
        return self._result or None

    def remainder(self, typed: str) -> str | None:
        result = self.result()
        if result and len(result) > len(typed) and result.startswith(typed):
            return result[len(typed) :]
        return None

    def on_done(self, callback: Callable[[Generation], None]) -> None:
        assert self.task is not None
        self.task.add_done_callback(lambda _task: callback(self))

r"""The per-keystroke completion pipeline: the orchestrator that sequences the stages.

    request -> typed-through cache -> in-flight adoption -> debounce -> context -> template
            -> generation (local backend, streamed) -> post-process -> cache -> answer
                                                                     \-> speculative prefetch

Per document at most one generation is in flight and the latest request wins: a newer request
answers the older one with None at once. A generation outlives the request that started it only
while the user is typing into its output, so that the next request can adopt it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tandem_lsp.backends.base import BackendError
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.completion.cache import CompletionCache
from tandem_lsp.completion.context import RecentEdits, build_context, gather_snippets
from tandem_lsp.completion.debounce import Debouncer
from tandem_lsp.completion.generation import Generation
from tandem_lsp.completion.request import CompletionRequest
from tandem_lsp.completion.templating import build_generation
from tandem_lsp.config import Settings

log = logging.getLogger(__name__)

ADOPT_GRACE_S = 0.1  # a cancelled request's generation waits this long for a request to adopt it
SNIPPET_TIME_S = 0.005
PREFETCH_WINDOW = 4000  # extra characters kept around the cursor when building a prefetch document


def _log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background completion task failed", exc_info=task.exception())


@dataclass
class Suggestion:
    text: str
    source: str  # "model" | "cache" | "inflight"
    latency_ms: float


@dataclass
class CompletionStats:
    requests: int = 0
    answered: int = 0
    model_calls: int = 0
    prefetch_calls: int = 0
    aborted_calls: int = 0
    failed_calls: int = 0
    cache_answers: int = 0
    inflight_answers: int = 0
    superseded: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # by source

    def as_json(self) -> dict:
        return {**self.__dict__, "accepted": dict(self.accepted)}


@dataclass
class _DocState:
    gen: Generation | None = None
    active: asyncio.Event | None = None  # set when the request holding it is superseded
    prefetched: tuple[str, str] | None = None


@dataclass
class CompletionEngine:
    settings: Settings
    model: LocalModel
    open_documents: Callable[[], Iterable[tuple[str, str]]] = lambda: ()
    cache: CompletionCache = field(default_factory=CompletionCache)
    recent: RecentEdits = field(default_factory=RecentEdits)
    stats: CompletionStats = field(default_factory=CompletionStats)
    prefetch_enabled: bool = True

    def __post_init__(self) -> None:
        self._docs: dict[str, _DocState] = {}
        self.debouncer = Debouncer(self.settings.completion.debounce_ms)

    def configure(self, settings: Settings) -> None:
        self.settings = settings
        self.debouncer.setting = settings.completion.debounce_ms
        self.model.configure(settings.local)

    # -- document events ----------------------------------------------------------------------
    def document_changed(self, uri: str, text: str, line: int | None = None) -> None:
        self.debouncer.keystroke(time.monotonic())
        if line is not None:
            self.recent.record(uri, text, line)

    def document_closed(self, uri: str) -> None:
        st = self._docs.pop(uri, None)
        if st is not None:
            if st.gen is not None:
                st.gen.abort("document closed")
            if st.active is not None:
                st.active.set()

    def accepted(self, info: dict) -> None:
        source = str(info.get("source", "unknown")) if isinstance(info, dict) else "unknown"
        self.stats.accepted[source] = self.stats.accepted.get(source, 0) + 1

    # -- the request --------------------------------------------------------------------------
    async def complete(self, req: CompletionRequest) -> Suggestion | None:
        """Answer one request; None when superseded, cancelled by a newer key, or nothing to show."""
        self.stats.requests += 1
        st = self._docs.setdefault(req.uri, _DocState())
        if st.active is not None:
            st.active.set()  # latest wins: the previous request of this document answers None now
        superseded = st.active = asyncio.Event()
        work = asyncio.ensure_future(self._complete(req, st))
        waiter = asyncio.ensure_future(superseded.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # $/cancelRequest
            work.cancel()
            self._client_cancelled(st)
            raise
        finally:
            waiter.cancel()
            if st.active is superseded:
                st.active = None
        if not work.done():
            work.cancel()
            self.stats.superseded += 1
            return None
        suggestion = work.result()
        if suggestion is not None:
            self.stats.answered += 1
            log.debug("suggestion from %s in %.1f ms: %r", suggestion.source, suggestion.latency_ms, suggestion.text[:40])
        return suggestion

    async def _complete(self, req: CompletionRequest, st: _DocState) -> Suggestion | None:
        t0 = time.monotonic()

        def answer(text: str | None, source: str) -> Suggestion | None:
            if not text:
                return None
            self._prefetch(req, st, text)
            return Suggestion(text, source, (time.monotonic() - t0) * 1000)

        hit = self.cache.get(req.text, req.offset)
        if hit is not None:
            self.stats.cache_answers += 1
            return answer(hit, "cache")

        gen = st.gen
        if gen is not None:
            typed = gen.typed_since(req.text, req.offset)
            if typed is not None and gen.agrees_with(typed):
                gen.adopted_at = time.monotonic()
                await gen.wait(typed)
                remainder = gen.remainder(typed)
                if remainder is not None:
                    self.stats.inflight_answers += 1
                    return answer(remainder, "inflight")
                if not gen.done:
                    gen.abort("diverged")  # the user typed something else: its output is useless now
            else:
                gen.abort("not adoptable")

        if not req.invoked:
            await asyncio.sleep(self.debouncer.delay_ms() / 1000.0)
        gen = await self._start(req.text, req.offset, req.uri, req.language_id, st, prefetch=False)
        if gen is None:
            return None
        await gen.wait("")
        return answer(gen.remainder(""), "model")

    # -- generations --------------------------------------------------------------------------
    async def _start(
        self, text: str, offset: int, uri: str, language_id: str, st: _DocState, *, prefetch: bool
    ) -> Generation | None:
        resolved = await self.model.ensure()
        if resolved is None:
            return None
        backend, template = resolved
        if st.gen is not None and not st.gen.done:
            if prefetch:
                return None  # a speculative call never displaces a real one
            st.gen.abort("replaced")
        cs, ls = self.settings.completion, self.settings.local
        snippets = gather_snippets(
            uri, self.open_documents(), self.recent, cs.max_prefix_chars // 2, time.monotonic() + SNIPPET_TIME_S
        )
        ctx = build_context(
            CompletionRequest(uri=uri, text=text, offset=offset, language_id=language_id),
            cs.max_prefix_chars, cs.max_suffix_chars, snippets,
        )
        multiline = "always" if prefetch and cs.multiline != "never" else cs.multiline
        request = build_generation(
            ctx, template, model=getattr(backend, "model", None), max_tokens=ls.max_tokens, timeout_ms=ls.timeout_ms
        )
        gen = Generation(text, offset, ctx, multiline, request.stop, prefetch=prefetch)
        gen.task = asyncio.ensure_future(self._run(gen, backend, request, ls.timeout_ms / 1000.0))
        st.gen = gen
        gen.on_done(lambda g: self._finished(st, g))
        if prefetch:
            self.stats.prefetch_calls += 1
        self.stats.model_calls += 1
        return gen

    async def _run(self, gen: Generation, backend, request, timeout_s: float) -> None:
        try:
            await gen.run(backend, request, timeout_s)
        except TimeoutError:
            if getattr(backend, "in_process", False):
                # A model inside this process is busy, not down: it was still reading a new prompt (what
                # it read stays cached for the next request). Slow, then, and no "unavailable" message.
                log.debug("in-process model: no text within local.timeoutMs (still reading the prompt)")
                self.model.report_success(timeout_s * 1000)
                return
            gen.error = f"no answer within local.timeoutMs ({timeout_s * 1000:.0f} ms)"
        except BackendError as exc:
            gen.error = str(exc)
        except asyncio.CancelledError:
            self.stats.aborted_calls += 1
            return
        except Exception as exc:  # a bug or a surprise from a backend must never reach the user
            log.exception("completion generation failed")
            gen.error = f"unexpected error: {exc!r}"
        log.debug("generation %s: %d chars%s", "prefetch" if gen.prefetch else "request", len(gen.raw),
                  f", failed: {gen.error}" if gen.error else "")
        if gen.error is not None:
            self.stats.failed_calls += 1
            self.model.report_failure(gen.error)
        else:
            self.model.report_success((time.monotonic() - gen.started) * 1000)

    def _finished(self, st: _DocState, gen: Generation) -> None:
        if st.gen is gen:
            st.gen = None
        result = gen.result()
        if result:
            self.cache.put(gen.window, gen.window_offset, result)

    def _prefetch(self, req: CompletionRequest, st: _DocState, shown: str) -> None:
        """Speculatively generate what comes after ``shown`` as if the user accepted it."""
        if not self.prefetch_enabled or (st.gen is not None and not st.gen.done):
            return
        lo = max(0, req.offset - self.settings.completion.max_prefix_chars - PREFETCH_WINDOW)
        hi = req.offset + self.settings.completion.max_suffix_chars + PREFETCH_WINDOW
        text = req.text[lo : req.offset] + shown + req.text[req.offset : hi]
        offset = req.offset - lo + len(shown)
        key = (text[max(0, offset - 200) : offset], text[offset : offset + 200])
        if key == st.prefetched or self.cache.get(text, offset, count=False) is not None:
            return
        st.prefetched = key
        task = asyncio.ensure_future(self._start(text, offset, req.uri, req.language_id, st, prefetch=True))
        task.add_done_callback(_log_task_error)

    def _client_cancelled(self, st: _DocState) -> None:
        """``$/cancelRequest``: close the model stream within ``ADOPT_GRACE_S``, unless adopted.

        Editors cancel the previous request on every keystroke, and may send the cancel before or
        after the ``didChange`` that caused it. So the generation is kept that long for the next
        request of the document to adopt (only one typing into its output will); otherwise its
        HTTP stream is closed.
        """
        gen = st.gen
        if gen is None or gen.done:
            return
        cancelled_at = time.monotonic()

        def abort_unless_adopted() -> None:
            if gen.adopted_at < cancelled_at:
                gen.abort("cancelled")

        asyncio.get_running_loop().call_later(ADOPT_GRACE_S, abort_unless_adopted)

    async def aclose(self) -> None:
        for st in self._docs.values():
            if st.gen is not None:
                st.gen.abort("shutdown")
        await self.model.aclose()

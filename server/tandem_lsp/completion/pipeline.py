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

from tandem_lsp.backends.base import BackendError, LocalBackend
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.completion.cache import CompletionCache
from tandem_lsp.completion.context import RecentEdits, build_context, gather_snippets
from tandem_lsp.completion.debounce import Debouncer
from tandem_lsp.completion.generation import Generation
from tandem_lsp.completion.request import CompletionRequest, GenerationRequest, PromptContext
from tandem_lsp.completion.sizing import COLD_READ_S, WARM_MIN_TOKENS, PromptStart, ReadEstimate, budget
from tandem_lsp.completion.templating import FimTemplate, build_generation, pick_template
from tandem_lsp.config import Settings
from tandem_lsp.latest import latest_wins

log = logging.getLogger(__name__)

ADOPT_GRACE_S = 0.1  # a cancelled request's generation waits this long for a request to adopt it
SNIPPET_TIME_S = 0.005
PREFETCH_WINDOW = 4000  # extra characters kept around the cursor when building a prefetch document
COLD_PAUSE_S = 0.5  # a prompt that takes long to read is sent after a pause of this length at most
PREFETCH_READ_S = 0.5  # a speculative call is made only when the server reads its new part within this
WARM_TIMEOUT_S = 60.0
SILENT_RUNS_DOWN = 3  # a measured server silent this many times in a row is down (before: slow)


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
    warm_ups: int = 0
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
    on_model_call: Callable[[], None] = lambda: None  # a completion is about to use the model (next edits yield)

    def __post_init__(self) -> None:
        self._docs: dict[str, _DocState] = {}
        self.debouncer = Debouncer(self.settings.completion.debounce_ms)
        self._server: LocalBackend | None = None  # the backend the two below describe
        self._starts = PromptStart()  # where the prompt in the server's cache starts
        self._reads = ReadEstimate()  # what the server last read
        self._template: tuple[tuple, FimTemplate] | None = None
        self._warming: tuple[asyncio.Task, str] | None = None  # a cache warm-up in flight, and its prompt
        self._silent_runs = 0  # generations in a row that got no text within local.timeoutMs

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

    def busy(self) -> bool:
        """A completion request is waiting or generating (a speculative one does not count), or a cache
        warm-up is reading: the model is, or is about to be, in use for completions."""
        return self._warming_now() or any(
            st.active is not None or (st.gen is not None and not st.gen.done and not st.gen.prefetch)
            for st in self._docs.values())

    # -- the request --------------------------------------------------------------------------
    async def complete(self, req: CompletionRequest) -> Suggestion | None:
        """Answer one request; None when superseded, cancelled by a newer key, or nothing to show."""
        self.stats.requests += 1
        st = self._docs.setdefault(req.uri, _DocState())
        # latest wins: the previous request of this document answers None now ($/cancelRequest: see below)
        answered, suggestion = await latest_wins(st, self._complete(req, st), lambda: self._client_cancelled(st))
        if not answered:
            self.stats.superseded += 1
            return None
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

        self._prewarm(req)
        waited = 0.0
        if not req.invoked:
            waited = self.debouncer.delay_ms() / 1000.0
            await asyncio.sleep(waited)
        gen = await self._start(req.text, req.offset, req.uri, req.language_id, st, prefetch=False,
                                waited_s=None if req.invoked else waited)
        if gen is None:
            return None
        await gen.wait("")
        return answer(gen.remainder(""), "model")

    # -- generations --------------------------------------------------------------------------
    def _template_for(self, backend: LocalBackend) -> FimTemplate:
        key = (id(backend), self.settings.local.fim_template, getattr(backend, "model", None))
        if self._template is None or self._template[0] != key:
            template = pick_template(self.settings.local.fim_template, key[2],
                                     native_fim=bool(getattr(backend, "fim_ids", None)))
            self._template = (key, template)
            self.model.note_template(template.name)
        return self._template[1]

    def _build(
        self, backend: LocalBackend, template: FimTemplate, text: str, offset: int, uri: str, language_id: str,
        *, prefetch: bool,
    ) -> tuple[GenerationRequest, PromptContext, int | None]:
        """The request for a completion at ``offset``, sized to the server (see completion/sizing.py)."""
        if self._server is not backend:
            self._server, self._starts, self._reads = backend, PromptStart(), ReadEstimate()
        cs, ls = self.settings.completion, self.settings.local
        line_start = text.rfind("\n", 0, offset) + 1
        b = budget(getattr(backend, "profile", None), cs.max_prefix_chars, cs.max_suffix_chars, ls.max_tokens,
                   line_chars=offset - line_start)
        snippets = gather_snippets(uri, self.open_documents(), self.recent, b.snippets, time.monotonic() + SNIPPET_TIME_S)
        start = self._starts.start(uri, text, offset, b) if b.sized else None
        ctx = build_context(
            CompletionRequest(uri=uri, text=text, offset=offset, language_id=language_id),
            b.max_prefix if b.sized else b.prefix, b.suffix, snippets, prefix_start=start, snippet_chars=b.snippets,
        )
        request = build_generation(
            ctx, template, model=getattr(backend, "model", None), max_tokens=ls.max_tokens, timeout_ms=ls.timeout_ms
        )
        return request, ctx, start

    async def _start(
        self, text: str, offset: int, uri: str, language_id: str, st: _DocState, *, prefetch: bool,
        waited_s: float | None = None,
    ) -> Generation | None:
        """Start a generation. ``waited_s``: the debounce this request already waited (None: invoked)."""
        backend = await self.model.ensure()
        if backend is None:
            return None
        template = self._template_for(backend)
        if st.gen is not None and not st.gen.done:
            if prefetch:
                return None  # a speculative call never displaces a real one
            st.gen.abort("replaced")
        request, ctx, start = self._build(backend, template, text, offset, uri, language_id, prefetch=prefetch)
        if not prefetch:
            self.on_model_call()
        profile = getattr(backend, "profile", None)
        read_s = self._reads.seconds(request.prompt, profile) if request.prompt else 0.0
        if prefetch and (read_s > PREFETCH_READ_S or self._warming_now()):
            return None  # on a slow server a guess is not worth holding it up
        if not prefetch and read_s > COLD_READ_S:
            # The stable part is read at once (typing on does not cancel it: the next keys need it too);
            # the rest, which a key would make useless, waits for a pause.
            self._sent(uri, text, start, "", prefetch)  # the warm-up starts the cached prompt here
            await self._warm(backend, template, ctx, request)
            read_s = self._reads.seconds(request.prompt, profile)
            if waited_s is not None and read_s > COLD_READ_S and (pause := COLD_PAUSE_S - waited_s) > 0:
                await asyncio.sleep(pause)  # typing on: nothing sent (this request is superseded)
            if st.gen is not None and not st.gen.done:
                st.gen.abort("replaced")
        if self._warming_now():
            await asyncio.shield(self._warming[0])  # type: ignore[index]  # the server is busy reading it

        def rebuild() -> tuple[GenerationRequest, PromptContext]:  # after a context error taught the limit
            again, again_ctx, again_start = self._build(backend, template, text, offset, uri, language_id,
                                                        prefetch=prefetch)
            self._sent(uri, text, again_start, again.prompt, prefetch)
            return again, again_ctx

        multiline = "always" if prefetch and self.settings.completion.multiline != "never" else self.settings.completion.multiline
        gen = Generation(text, offset, ctx, multiline, request.stop, prefetch=prefetch)
        gen.expected_read_s = read_s
        self._sent(uri, text, start, request.prompt, prefetch)
        gen.task = asyncio.ensure_future(
            self._run(gen, backend, request, self.settings.local.timeout_ms / 1000.0, rebuild)
        )
        st.gen = gen
        gen.on_done(lambda g: self._finished(st, g))
        if prefetch:
            self.stats.prefetch_calls += 1
        self.stats.model_calls += 1
        return gen

    def _sent(self, uri: str, text: str, start: int | None, prompt: str, prefetch: bool) -> None:
        if start is not None and not prefetch:
            self._starts.sent(uri, text, start)
        if prompt:
            self._reads.sent(prompt)

    def _warming_now(self) -> bool:
        return self._warming is not None and not self._warming[0].done()

    def _prewarm(self, req: CompletionRequest) -> None:
        """At a key, before the debounce: when the server would need long to read this place of the file
        (it was just opened, or the cursor jumped), start reading its stable part now, while the user types."""
        backend = self.model.current()
        profile = getattr(backend, "profile", None)
        if backend is None or profile is None or not profile.effective_read_tps or self._warming_now():
            return
        template = self._template_for(backend)
        request, ctx, start = self._build(backend, template, req.text, req.offset, req.uri, req.language_id,
                                          prefetch=False)
        if request.prompt and self._reads.seconds(request.prompt, profile) > COLD_READ_S:
            self._sent(req.uri, req.text, start, "", False)
            self._begin_warm(backend, template, ctx, request)

    async def _warm(
        self, backend: LocalBackend, template: FimTemplate, ctx: PromptContext, request: GenerationRequest,
    ) -> None:
        """When the prompt's stable part (all but the cursor line and the suffix) is not in the server's
        cache, read it in, generating nothing, and wait for it. One warm-up at a time; a superseded request
        leaves it running (what it reads is what the next keystroke needs)."""
        self._begin_warm(backend, template, ctx, request)
        if self._warming_now():
            await asyncio.shield(self._warming[0])  # type: ignore[index]

    def _begin_warm(
        self, backend: LocalBackend, template: FimTemplate, ctx: PromptContext, request: GenerationRequest,
    ) -> None:
        if not self._warming_now():
            head = ctx.prefix[: len(ctx.prefix) - len(ctx.line_prefix)]
            warm_ctx = PromptContext(prefix=head, suffix="", filename=ctx.filename, language_id=ctx.language_id,
                                     snippets=ctx.snippets)
            warm = build_generation(warm_ctx, template, model=request.model, max_tokens=1,
                                    timeout_ms=int(WARM_TIMEOUT_S * 1000))
            profile = getattr(backend, "profile", None)
            read_s = self._reads.seconds(warm.prompt, profile)
            if read_s <= COLD_READ_S or self._reads.tokens(warm.prompt, profile) < WARM_MIN_TOKENS:
                return  # the stable part is (nearly all) cached: only the line and the suffix are read
            warm.warm_only = True
            self.on_model_call()
            task = asyncio.ensure_future(self._run_warm(backend, warm, min(WARM_TIMEOUT_S, 5 + 2 * read_s)))
            self._warming = (task, warm.prompt)
            log.debug("warming the server's cache: ~%.1f s of reading", read_s)

    async def _run_warm(self, backend: LocalBackend, warm: GenerationRequest, timeout_s: float) -> None:
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                async for _ in backend.stream(warm):
                    pass
        except (BackendError, TimeoutError) as exc:
            log.debug("cache warm-up failed after %.1f s: %s", time.monotonic() - t0, exc)
            return
        except Exception:  # noqa: BLE001 - a warm-up is an optimisation; a failure must never reach the user
            log.exception("cache warm-up failed")
            return
        self._reads.sent(warm.prompt)
        self.stats.warm_ups += 1
        log.debug("cache warm-up done in %.1f s", time.monotonic() - t0)

    async def _run(self, gen: Generation, backend, request, timeout_s: float, rebuild=None) -> None:
        try:
            await gen.run(backend, request, timeout_s, retry=rebuild)
        except TimeoutError:
            profile = getattr(backend, "profile", None)
            if profile is not None and profile.measures_by_ttft and not profile.read_tps and gen.expected_read_s > timeout_s:
                # not a token in time from a server not measured yet: it reads more slowly than assumed
                profile.read_tps = profile.effective_read_tps * timeout_s / gen.expected_read_s
            self._silent_runs += 1
            measured = profile is not None and bool(profile.read_tps) and not profile.sizes_itself
            if (getattr(backend, "in_process", False) or gen.expected_read_s > timeout_s / 2
                    or (measured and self._silent_runs < SILENT_RUNS_DOWN)):
                # A model inside this process, a server known to be reading a long prompt, or a measured
                # server that answered before (busy with another read: a cancel lands at a batch end) is
                # slow, not down: what it reads stays cached for the next request. No "unavailable".
                log.debug("no text within local.timeoutMs (still reading)")
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
            self.stats.failed_calls += 1
            return  # Tandem's own failure, not the model's: the status stays "down" only when the model is
        log.debug("generation %s: %d chars%s", "prefetch" if gen.prefetch else "request", len(gen.raw),
                  f", failed: {gen.error}" if gen.error else "")
        if gen.error is not None:
            self.stats.failed_calls += 1
            self.model.report_failure(gen.error)
        else:
            self._silent_runs = 0
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

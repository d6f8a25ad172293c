r"""The next-edit orchestrator: when to ask the model, what to send, what to answer.

    request -> what is left of the document's suggestion set? -> recent edits? -> debounce
            -> completions first -> context (window) -> template -> cache | local model (rewrite)
            -> diff to edits -> filters -> one suggestion set per document -> answer

It runs only after an edit and a pause (``nextEdit.debounceMs``), and when the cursor lands on a line
holding what the last edit removed (a rename's old name): never on every keystroke. Per document the
latest request wins (an older one answers nothing at once); ``$/cancelRequest`` and a completion
starting close the model stream: inline completion keeps the local model first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cachetools import LRUCache

from tandem_lsp.backends.base import BackendError, LocalBackend
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.backends.types import GenerationRequest
from tandem_lsp.config import Settings
from tandem_lsp.latest import latest_wins
from tandem_lsp.next_edit import edits as E
from tandem_lsp.next_edit.context import EditHistory, build_context, changed_span
from tandem_lsp.next_edit.templates import NextEditTemplate, answer_budget, is_next_edit_model, pick_next_edit_template

log = logging.getLogger(__name__)

DEBOUNCE_MS = 300  # the pause after an edit before a next edit is asked for (nextEdit.debounceMs: null)
RECENT_EDIT_S = 20.0  # after this long without an edit, only a cursor on a line the last edit suggests asks
COMPLETION_WAIT_S = 3.0  # the most a next edit waits for a completion in flight to finish
TIMEOUT_S = 20.0  # the most one rewrite may take
WRITE_S = 5.0  # the window is sized so that the model rewrites it in about this long (its measured speed)
READ_S = 2.0  # ... and the text around it so that it reads the prompt in about this long
TOKENS_PER_LINE = 10  # a line of code, in tokens (for sizing by speed)
MIN_WINDOW_LINES, MAX_WINDOW_LINES = 6, 20
MAX_WINDOW_CHARS = 4000  # a window longer than this (minified code, one huge line) is not rewritten
NES_SLOT = 1  # llama-server: the slot of next-edit calls, so that the completions' slot keeps its cache
MAX_SUBSET_EDITS = 8
CONTEXT_SHARE = 0.4  # of the server's context (per slot) a next-edit call may use, prompt and answer
TOKEN_MARGIN = 0.85  # characters per token vary along a text: size with a margin
MIN_SCALE = 0.1  # the text around the window shrinks to this share of its bounds at the least
ANSWER_GROWTH_CHARS = 400  # room for the answer to grow beyond the window (templates.answer_budget's too)  # a set with more edits than this is kept only while the user changes nothing in it


@dataclass
class NextEditStats:
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    model_calls: int = 0
    cache_answers: int = 0
    set_answers: int = 0  # answered from what was left of a suggestion set (after one was accepted)
    superseded: int = 0
    joined: int = 0  # requests that waited for a rewrite already being written for their window
    yielded: int = 0  # model calls closed because a completion started
    dropped: int = 0  # rewrites whose edits the filters dropped (undoing the user, breaking the parse)
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def note_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)
        del self.latencies_ms[:-200]

    def as_json(self) -> dict:
        lat = sorted(self.latencies_ms)
        p50 = round(lat[(len(lat) - 1) // 2], 1) if lat else None
        out = {_camel(k): v for k, v in self.__dict__.items() if k != "latencies_ms"}
        return {**out, "latencyMsP50": p50}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass
class SuggestionSet:
    """The document's one set of next edits: the window region ``[lo, hi)`` of ``text`` is to become
    ``target``. ``edits`` are the set's edits as first answered (against ``text``)."""

    text: str
    lo: int
    hi: int
    target: str
    edits: list[E.Edit]
    ids: dict[int, str]  # Edit start offset in ``text`` -> id, for the accept command

    def rebase(self, text: str) -> list[E.Edit] | None:
        """What is left of the set in ``text`` (the document now), or None when the user changed the region in
        another way than by taking some of the set's edits. A change outside the region moves the set with
        it (the set is anchored in ``text`` from then on)."""
        if text != self.text:
            start, old_end, _ = changed_span(self.text, text)
            if old_end <= self.lo or start >= self.hi:  # wholly before or after the region
                shift = len(text) - len(self.text) if old_end <= self.lo else 0
                if text[self.lo + shift : self.hi + shift] != self.text[self.lo : self.hi]:
                    return None
                self.edits = [E.Edit(e.start + shift, e.end + shift, e.new) for e in self.edits]
                self.text, self.lo, self.hi = text, self.lo + shift, self.hi + shift
        head, tail = self.text[: self.lo], self.text[self.hi :]
        if len(text) < len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
            return None
        region = text[len(head) : len(text) - len(tail)]
        if region != self.text[self.lo : self.hi] and not self._taken_some(region):
            return None
        return E.window_edits(region, self.target, self.lo)

    def _taken_some(self, region: str) -> bool:
        """Whether ``region`` is the set's region with some of its edits applied."""
        if len(self.edits) > MAX_SUBSET_EDITS:
            return False
        tail = len(self.text) - self.hi
        for n in range(1, len(self.edits) + 1):
            for subset in itertools.combinations(self.edits, n):
                applied = E.apply_all(self.text, list(subset))
                if applied[self.lo : len(applied) - tail] == region:
                    return True
        return False


@dataclass
class _Job:
    """A suggestion set being made for ``text`` around ``[lo, hi)``: it outlives the request that started
    it, so that a newer request for the same text with the cursor in that window waits for it instead of
    starting again (the cursor landing on the next place while the rewrite is written)."""

    text: str
    lo: int
    hi: int
    task: asyncio.Task


@dataclass
class _Doc:
    active: asyncio.Event | None = None  # set when the request holding it is superseded
    set: SuggestionSet | None = None
    call: asyncio.Task | None = None  # the model call in flight
    job: _Job | None = None


class NextEditEngine:
    """Next-edit suggestions for the open documents (see the module docstring)."""

    def __init__(self, settings: Settings, model: LocalModel, *, completion_busy: Callable[[], bool] = lambda: False,
                 record: Callable[..., None] | None = None) -> None:
        self.settings = settings
        self.model = model
        self.completion_busy = completion_busy
        self.record = record  # the ledger: record(task=..., model=..., input_tokens=..., ...)
        self.history = EditHistory()
        self.stats = NextEditStats()
        self.cache: LRUCache = LRUCache(maxsize=64)
        self._docs: dict[str, _Doc] = {}
        self._ids = itertools.count(1)
        self._shown: set[str] = set()
        self._accepted: set[str] = set()
        self._template: tuple[tuple, NextEditTemplate] | None = None

    def configure(self, settings: Settings) -> None:
        self.settings = settings

    # -- document events ----------------------------------------------------------------------
    def document_opened(self, uri: str, text: str) -> None:
        self.history.opened(uri, text)

    def document_changed(self, uri: str, text: str, line: int | None = None) -> None:
        self.history.changed(uri, text, line)

    def document_closed(self, uri: str) -> None:
        self.history.closed(uri)
        doc = self._docs.pop(uri, None)
        if doc is not None:
            self._close_call(doc)
            if doc.job is not None:
                doc.job.task.cancel()
            if doc.active is not None:
                doc.active.set()

    def yield_to_completion(self) -> None:
        """A completion is about to use the local model: close any next-edit stream now."""
        for doc in self._docs.values():
            if doc.call is not None and not doc.call.done():
                self.stats.yielded += 1
                self._close_call(doc)

    def shown(self, edit_id: object) -> None:
        if isinstance(edit_id, str) and edit_id not in self._shown:
            self._shown.add(edit_id)
            self.stats.shown += 1

    def accepted(self, edit_id: object) -> None:
        if isinstance(edit_id, str) and edit_id not in self._accepted:
            self._accepted.add(edit_id)
            self.stats.accepted += 1

    # -- which model -----------------------------------------------------------------------------
    def model_name(self, backend: LocalBackend | None) -> str | None:
        """The next-edit model: ``nextEdit.model``, else the completion model when it is a next-edit model."""
        if self.settings.next_edit.model:
            return self.settings.next_edit.model
        name = getattr(backend, "model", None) if backend is not None else self.model.status.model
        return name if is_next_edit_model(name) else None

    def enabled(self, backend: LocalBackend | None) -> bool:
        setting = self.settings.next_edit.enabled
        return setting if setting is not None else self.model_name(backend) is not None

    def template(self, backend: LocalBackend) -> NextEditTemplate:
        key = (self.settings.next_edit.template, self.model_name(backend))
        if self._template is None or self._template[0] != key:
            self._template = (key, pick_next_edit_template(*key))
        return self._template[1]

    # -- the request ----------------------------------------------------------------------------
    async def suggest(self, uri: str, text: str, offset: int, language_id: str = "",
                      still_current: Callable[[], bool] = lambda: True) -> tuple[list[E.Edit], dict[int, str]]:
        """The next edits at ``offset`` (document offsets in ``text``) and their ids; none when superseded,
        cancelled, stale (``still_current`` turned false) or when there is nothing to suggest."""
        self.stats.requests += 1
        t0 = time.monotonic()
        doc = self._docs.setdefault(uri, _Doc())
        answered, found = await latest_wins(doc, self._suggest(uri, text, offset, language_id, doc))
        if not answered:
            self.stats.superseded += 1
            return [], {}
        if not found or not still_current():
            return [], {}
        self.stats.note_latency((time.monotonic() - t0) * 1000)
        return found

    async def _suggest(self, uri: str, text: str, offset: int, language_id: str, doc: _Doc):
        if self.settings.next_edit.enabled is False:
            return None
        left = doc.set.rebase(text) if doc.set is not None else None
        if left:
            self.stats.set_answers += 1
            return self._answer(left, offset)
        job = doc.job
        if job is not None and not job.task.done():
            if job.text == text and job.lo <= offset <= job.hi:
                self.stats.joined += 1
                return await self._answer_from(job, offset)
            job.task.cancel()  # another text or another place: that rewrite is of no use now
        last = self.history.last_edit(uri)
        if last is None:
            return None  # nothing edited here yet: nothing to follow
        if time.monotonic() - last > RECENT_EDIT_S and not self._cursor_suggested(uri, text, offset):
            return None
        delay = (self.settings.next_edit.debounce_ms if self.settings.next_edit.debounce_ms is not None
                 else DEBOUNCE_MS) / 1000.0
        if (wait := last + delay - time.monotonic()) > 0:
            await asyncio.sleep(wait)
            if self.history.last_edit(uri) != last:
                return None  # typed on: this text is stale (the client asks again after the pause)
        backend = await self.model.ensure()
        if backend is None or not self.enabled(backend):
            return None
        deadline = time.monotonic() + COMPLETION_WAIT_S
        while self.completion_busy() and time.monotonic() < deadline:
            await asyncio.sleep(0.03)
        ctx, win = self._context(backend, uri, text, offset, language_id)
        if ctx is None:
            return None
        task = asyncio.ensure_future(self._make_set(backend, ctx, win, text, language_id, uri, doc))
        doc.job = _Job(text, win.start, win.end, task)
        return await self._answer_from(doc.job, offset)

    async def _answer_from(self, job: _Job, offset: int):
        """Wait for ``job`` (a request superseded or cancelled meanwhile leaves it running) and answer its set."""
        sset = await asyncio.shield(job.task)
        return self._answer(sset.rebase(job.text) or [], offset) if sset is not None else None

    async def _make_set(self, backend: LocalBackend, ctx, win, text: str, language_id: str, uri: str,
                        doc: _Doc) -> SuggestionSet | None:
        """The suggestion set of one rewrite of the window (cached by window and recent edits), filtered."""
        template = self.template(backend)
        key = (template.name, self.model_name(backend), ctx.path, ctx.window, ctx.original,
               tuple(d.diff for d in ctx.diffs))
        if key in self.cache:
            self.stats.cache_answers += 1
            rewritten = self.cache[key]
        else:
            rewritten = await self._rewrite(backend, template, ctx, doc)
            if rewritten is None:
                return None
            self.cache[key] = rewritten
        found = E.window_edits(ctx.window, rewritten, win.start)
        kept = E.keep(found, text, (win.start, win.end), self._last_change(uri, text))
        if kept and E.is_python(ctx.path, language_id) and await asyncio.to_thread(E.breaks_python, text, kept):
            kept = []
        if len(kept) < len(found):
            self.stats.dropped += 1
        if not kept:
            return None
        target = E.apply_all(ctx.window, [E.Edit(e.start - win.start, e.end - win.start, e.new) for e in kept])
        doc.set = SuggestionSet(text, win.start, win.end, target, kept, {})
        return doc.set

    def _answer(self, found: list[E.Edit], offset: int):
        ids = {e.start: f"ne{next(self._ids)}" for e in found}
        return E.ordered(found, offset), ids

    def _cursor_suggested(self, uri: str, text: str, offset: int) -> bool:
        """The cursor's line holds a word the last edit removed (the old name of a rename)."""
        words = self.history.removed_words(uri)
        if not words:
            return False
        lo = text.rfind("\n", 0, offset) + 1
        hi = text.find("\n", offset)
        line = text[lo : hi if hi >= 0 else len(text)]
        return any(w in line for w in words)

    def _last_change(self, uri: str, text: str) -> tuple[int, str, str] | None:
        base = self.history.base(uri)
        if base is None:
            return None
        start, old_end, new_end = changed_span(base, text)
        return start, base[start:old_end], text[start:new_end]

    def _context(self, backend: LocalBackend, uri: str, text: str, offset: int, language_id: str):
        """The context sized to the server: the window to what it writes in ~WRITE_S, the text around it to
        what it reads in ~READ_S, and the whole call (prompt and answer) to CONTEXT_SHARE of its context, so
        that the completions' prompt keeps its place in the server's cache (llama-server's slots share
        one KV cache: a prompt that does not fit beside it pushes it out)."""
        profile = getattr(backend, "profile", None)
        lines = MAX_WINDOW_LINES
        before_chars, after_chars, diff_chars = 1500, 800, 2400
        cpt = (getattr(profile, "chars_per_token", None) or 3.5) * TOKEN_MARGIN
        if profile is not None and profile.write_tps:
            lines = int(max(MIN_WINDOW_LINES, min(MAX_WINDOW_LINES, profile.write_tps * WRITE_S / TOKENS_PER_LINE)))
        scale = 1.0
        if profile is not None and profile.effective_read_tps:
            room = profile.effective_read_tps * READ_S * cpt - 2 * lines * TOKENS_PER_LINE * cpt
            scale = room / (before_chars + after_chars + diff_chars)
        room_chars = profile.n_ctx * CONTEXT_SHARE * cpt if profile is not None and profile.n_ctx else None
        for _ in range(8):
            s = max(MIN_SCALE, min(1.0, scale))
            ctx, win = build_context(self.history, uri, text, offset, language_id, window_lines=lines,
                                     before_chars=int(before_chars * s), after_chars=int(after_chars * s),
                                     diff_chars=int(diff_chars * s))
            # the window is in the prompt twice (Sweep: original and current) and once more in the answer
            used = len(ctx.before) + len(ctx.after) + sum(len(d.diff) for d in ctx.diffs) + 3 * len(ctx.window)
            if room_chars is None or used + ANSWER_GROWTH_CHARS <= room_chars or lines <= MIN_WINDOW_LINES // 2:
                break
            over = 1.1 * (used + ANSWER_GROWTH_CHARS) / room_chars
            scale, lines = min(scale, 1.0) / over, max(MIN_WINDOW_LINES // 2, int(lines / over))
        else:
            return None, win
        if room_chars is not None and used > room_chars:
            return None, win  # a context too small for a next edit beside the completions
        if len(ctx.window) > MAX_WINDOW_CHARS or not ctx.window.strip():
            return None, win
        return ctx, win

    async def _rewrite(self, backend: LocalBackend, template: NextEditTemplate, ctx, doc: _Doc) -> str | None:
        """The model's rewrite of the window (None: no usable answer)."""
        profile = getattr(backend, "profile", None)
        slots = getattr(profile, "slots", None) or 0
        request = GenerationRequest(
            prefix="", suffix="", prompt=template.build(ctx), stop=list(template.stop),
            max_tokens=answer_budget(ctx, getattr(profile, "chars_per_token", None), template),
            model=self.settings.next_edit.model, messages=template.build_messages(ctx),
            timeout_ms=int(TIMEOUT_S * 1000), raw=not bool(template.chat), slot=NES_SLOT if slots > 1 else None,
        )
        self.stats.model_calls += 1
        t0 = time.monotonic()
        doc.call = asyncio.ensure_future(self._collect(backend, request))
        ok = False
        answer = ""
        try:
            answer = await doc.call
            ok = True
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # this request itself was cancelled or superseded
                raise
            return None  # closed for a completion
        except (BackendError, TimeoutError) as exc:
            self.stats.failed += 1
            log.debug("next edit: the model failed: %s", exc)
            return None
        finally:
            doc.call = None
            self._record(backend, request, answer, (time.monotonic() - t0) * 1000, ok)
        if request.finish_reason == "length":
            log.debug("next edit: the answer reached its token limit: not used")
            return None  # half a window would delete the rest (a Sweep answer cannot tell by itself)
        return template.parse(answer, ctx)

    async def _collect(self, backend: LocalBackend, request: GenerationRequest) -> str:
        parts: list[str] = []
        async with asyncio.timeout(TIMEOUT_S):
            async for piece in backend.stream(request):
                parts.append(piece)
        return "".join(parts)

    def _record(self, backend: LocalBackend, request: GenerationRequest, answer: str, ms: float, ok: bool) -> None:
        if self.record is None:
            return
        prompt = request.prompt or "".join(str(m.get("content", "")) for m in request.messages or ())
        try:
            self.record(tier="local", task="nextEdit", model=request.model or getattr(backend, "model", None)
                        or backend.name, input_tokens=len(prompt) // 4, output_tokens=len(answer) // 4,
                        latency_ms=ms, ok=ok)
        except Exception:  # noqa: BLE001 - the ledger never fails a suggestion
            log.exception("next edit: could not record the call")

    @staticmethod
    def _close_call(doc: _Doc) -> None:
        if doc.call is not None and not doc.call.done():
            doc.call.cancel()

    async def aclose(self) -> None:
        for doc in self._docs.values():
            self._close_call(doc)
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)

"""next_edit/pipeline.py with an in-process backend: when it asks the model, what it answers, the
suggestion set, yielding to completions, truncated answers, the cache."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import pytest

from tandem_lsp.backends.types import GenerationRequest, ServerProfile
from tandem_lsp.config import DEFAULTS, NextEditSettings
from tandem_lsp.next_edit.edits import apply_all, window_edits
from tandem_lsp.next_edit.pipeline import NextEditEngine, SuggestionSet
from tandem_lsp.next_edit.templates import TEMPLATES
from tests.fakes.next_edit_model import window_in

URI = "file:///p/geometry.py"
SOURCE = ("def area(width, height):\n    if width < 0:\n        raise ValueError(width)\n"
          "    return width * height\n\n\ntotal = area(2, 3)\n")
RENAMED = SOURCE.replace("area(width,", "area(w,")


class Backend:
    """Answers every next-edit prompt with ``rewrite(window)`` in the template's own answer format."""

    name = "openai"
    endpoint = "http://127.0.0.1:1"

    def __init__(self, rewrite=lambda w: re.sub(r"\bwidth\b", "w", w), model="sweep-next-edit-1.5b", delay=0.0,
                 finish="stop"):
        self.rewrite, self.model, self.delay, self.finish = rewrite, model, delay, finish
        self.profile = ServerProfile()
        self.requests: list[GenerationRequest] = []
        self.closed = 0

    async def stream(self, req: GenerationRequest):
        self.requests.append(req)
        found = window_in({"prompt": req.prompt} if req.messages is None else {"messages": req.messages})
        assert found is not None, "not a next-edit prompt"
        name, window, _ = found
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.closed += 1
            raise
        ctx = self.last_ctx
        yield TEMPLATES[name].answer(ctx, self.rewrite(ctx.window))
        req.finish_reason = self.finish


class Model:
    def __init__(self, backend):
        self.backend = backend
        self.status = None

    async def ensure(self):
        return self.backend


async def started(backend) -> None:
    """Until the backend was asked (the next-edit call is in flight)."""
    for _ in range(200):
        if backend.requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the model was never asked")


def engine(backend, **next_edit) -> NextEditEngine:
    settings = replace(DEFAULTS, next_edit=NextEditSettings(**{"debounce_ms": 0, **next_edit}))
    e = NextEditEngine(settings, Model(backend))
    real = e._context

    def remember(*args, **kwargs):  # the backend answers from the context the engine built
        ctx, win = real(*args, **kwargs)
        backend.last_ctx = ctx
        return ctx, win

    e._context = remember
    return e


def renamed_engine(backend, **settings):
    e = engine(backend, **settings)
    e.document_opened(URI, SOURCE)
    e.document_changed(URI, RENAMED, 0)
    return e


async def test_a_rename_gives_the_remaining_uses_nearest_first():
    b = Backend()
    e = renamed_engine(b)
    edits, ids = await e.suggest(URI, RENAMED, RENAMED.index("w,") + 1)
    assert [RENAMED[x.start:x.end] for x in edits] == ["width"] * 3 and all(x.new == "w" for x in edits)
    assert apply_all(RENAMED, edits) == SOURCE.replace("width", "w")
    assert len(set(ids.values())) == 3
    assert b.requests[0].raw is True and b.requests[0].messages is None  # sweep: a raw prompt, no FIM
    assert e.stats.model_calls == 1


async def test_enabled_follows_the_model_unless_set():
    assert engine(Backend(model="sweep-next-edit-1.5b")).enabled(Backend(model="sweep-next-edit-1.5b"))
    qwen = Backend(model="qwen2.5-coder-1.5b")
    assert not engine(qwen).enabled(qwen)
    assert engine(qwen, enabled=True).enabled(qwen)
    assert not engine(Backend(), enabled=False).enabled(Backend())
    assert engine(qwen, model="zeta").model_name(qwen) == "zeta"


async def test_off_without_a_next_edit_model_makes_no_call():
    b = Backend(model="qwen2.5-coder-1.5b")
    e = renamed_engine(b)
    assert await e.suggest(URI, RENAMED, 10) == ([], {})
    assert b.requests == []


async def test_nothing_edited_means_no_call():
    b = Backend()
    e = engine(b)
    e.document_opened(URI, SOURCE)
    assert await e.suggest(URI, SOURCE, 10) == ([], {})
    assert b.requests == []


async def test_taking_one_edit_answers_the_rest_from_the_set():
    b = Backend()
    e = renamed_engine(b)
    edits, _ = await e.suggest(URI, RENAMED, 10)
    taken = edits[0].apply(RENAMED)
    e.document_changed(URI, taken, 1)
    rest, _ = await e.suggest(URI, taken, taken.index("w <"))
    assert len(rest) == 2 and apply_all(taken, rest) == SOURCE.replace("width", "w")
    assert e.stats.model_calls == 1 and e.stats.set_answers == 1


def test_a_set_is_dropped_when_the_user_changes_its_region_otherwise():
    text = "a = width\nb = width\n"
    sset = SuggestionSet(text, 0, len(text), "a = w\nb = w\n", [], {})
    sset.edits = window_edits(text, sset.target, 0)
    assert len(sset.rebase("a = w\nb = width\n")) == 1  # one taken
    assert sset.rebase("a = q\nb = width\n") is None  # something else typed there
    assert sset.rebase("a = width\n# mid\nb = width\n") is None  # a line added in the region: not the set's
    inner = SuggestionSet("x\n" + text + "y\n", 2, 2 + len(text), sset.target,
                          window_edits(text, sset.target, 2), {})
    assert len(inner.rebase("x\na = w\nb = width\ny\n")) == 1  # one taken
    assert len(inner.rebase("x\n" + text + "z\n")) == 2  # a change after the region leaves the set as it was


async def test_an_answer_cut_by_the_token_limit_is_not_used():
    b = Backend(finish="length")
    e = renamed_engine(b)
    assert await e.suggest(URI, RENAMED, 10) == ([], {})
    assert len(b.requests) == 1


async def test_a_completion_closes_the_next_edit_stream():
    b = Backend(delay=5.0)
    e = renamed_engine(b)
    task = asyncio.ensure_future(e.suggest(URI, RENAMED, 10))
    await started(b)
    e.yield_to_completion()
    assert await asyncio.wait_for(task, 2) == ([], {})
    assert b.closed == 1 and e.stats.yielded == 1


async def test_it_waits_while_a_completion_is_busy():
    b = Backend()
    busy = [True]
    e = renamed_engine(b)
    e.completion_busy = lambda: busy[0]
    task = asyncio.ensure_future(e.suggest(URI, RENAMED, 10))
    await asyncio.sleep(0.2)
    assert b.requests == []  # still waiting for the completion
    busy[0] = False
    edits, _ = await asyncio.wait_for(task, 2)
    assert edits and len(b.requests) == 1


async def test_a_newer_request_for_another_text_supersedes_and_cancels():
    b = Backend(delay=5.0)
    e = renamed_engine(b)
    first = asyncio.ensure_future(e.suggest(URI, RENAMED, 10))
    await started(b)
    b.delay = 0.0
    again = RENAMED.replace("total = area(2, 3)", "total = area(2, 4)")
    e.document_changed(URI, again, 6)
    second = asyncio.ensure_future(e.suggest(URI, again, 30))
    assert await asyncio.wait_for(first, 2) == ([], {})
    assert await asyncio.wait_for(second, 2)
    assert b.closed == 1 and e.stats.superseded == 1 and e.stats.joined == 0


async def test_a_newer_request_in_the_same_window_waits_for_the_rewrite_being_written():
    """The cursor lands on the next use while the rewrite is written: that request waits for it (one model
    call) instead of starting another; the older request answers nothing."""
    b = Backend(delay=0.5)
    e = renamed_engine(b)
    first = asyncio.ensure_future(e.suggest(URI, RENAMED, 10))
    await started(b)
    at_next_use = RENAMED.index("if width") + 4
    edits, _ = await asyncio.wait_for(e.suggest(URI, RENAMED, at_next_use), 3)
    assert await first == ([], {})
    assert len(b.requests) == 1 and b.closed == 0 and e.stats.joined == 1
    assert RENAMED[edits[0].start:edits[0].end] == "width" and edits[0].start >= at_next_use - 4


async def test_a_cancelled_request_leaves_its_rewrite_to_finish_for_the_next():
    b = Backend(delay=0.3)
    e = renamed_engine(b)
    first = asyncio.ensure_future(e.suggest(URI, RENAMED, 10))
    await asyncio.sleep(0.1)
    first.cancel()  # $/cancelRequest: the user moved on
    await asyncio.sleep(0.5)
    edits, _ = await e.suggest(URI, RENAMED, 40)
    assert edits and len(b.requests) == 1 and e.stats.set_answers == 1


def test_a_change_outside_the_set_moves_it():
    text = "a = width\nb = width\n"
    sset = SuggestionSet("top\n" + text + "end\n", 4, 4 + len(text), "a = w\nb = w\n", [], {})
    sset.edits = window_edits(text, sset.target, 4)
    moved = sset.rebase("# new first line\ntop\n" + text + "end\n")
    assert [(e.start, e.new) for e in moved] == [(17 + 4 + 4, "w"), (17 + 4 + 14, "w")]
    assert len(sset.rebase("# new first line\ntop\n" + text + "end, changed\n")) == 2  # after it too


async def test_the_same_window_and_edits_come_from_the_cache():
    b = Backend()
    e = renamed_engine(b)
    await e.suggest(URI, RENAMED, 10)
    e._docs[URI].set = None  # forget the set: the rewrite itself is cached
    edits, _ = await e.suggest(URI, RENAMED, 12)
    assert edits and e.stats.model_calls == 1 and e.stats.cache_answers == 1


async def test_a_stale_answer_is_dropped():
    b = Backend()
    e = renamed_engine(b)
    assert await e.suggest(URI, RENAMED, 10, still_current=lambda: False) == ([], {})


async def test_the_user_being_undone_is_dropped():
    b = Backend(rewrite=lambda w: w.replace("area(w,", "area(width,"))  # the model puts the old name back
    e = renamed_engine(b)
    assert await e.suggest(URI, RENAMED, 10) == ([], {})
    assert e.stats.dropped == 1


@pytest.mark.parametrize("template", ["sweep", "zeta", "instruct"])
async def test_each_template_end_to_end_in_process(template):
    b = Backend(model="any-model")
    e = renamed_engine(b, enabled=True, template=template)
    edits, _ = await e.suggest(URI, RENAMED, 10)
    assert apply_all(RENAMED, edits) == SOURCE.replace("width", "w")
    assert (b.requests[0].messages is not None) == (template == "instruct")


async def test_a_huge_single_line_document_is_not_rewritten():
    b = Backend()
    e = engine(b)
    text = "x = 1; " * 200_000
    e.document_opened(URI, text)
    e.document_changed(URI, text + "y", 0)
    assert await e.suggest(URI, text + "y", 10) == ([], {})
    assert b.requests == []


@pytest.mark.parametrize("n_ctx,cpt", [(4096, 1.1), (4096, 3.5), (2048, 3.5), (32768, 3.5)])
def test_a_call_fits_in_its_share_of_the_servers_context(n_ctx, cpt):
    """Prompt and answer within CONTEXT_SHARE of the context: the completions' prompt keeps its place in a
    KV cache the slots share. A byte-level tokenizer (1 character a token) gets a smaller window."""
    from tandem_lsp.next_edit.pipeline import ANSWER_GROWTH_CHARS, CONTEXT_SHARE, TOKEN_MARGIN

    b = Backend()
    b.profile = ServerProfile(n_ctx=n_ctx, chars_per_token=cpt)
    text = "".join(f"value_{i} = compute(value_{i - 1}, {i})\n" for i in range(200))
    e = engine(b)
    e.document_opened(URI, text)
    edited = text.replace("value_100 = compute", "value_100 = combine")
    e.document_changed(URI, edited, 100)
    ctx, _ = e._context(b, URI, edited, edited.index("combine"), "python")
    used = len(ctx.before) + len(ctx.after) + sum(len(d.diff) for d in ctx.diffs) + 3 * len(ctx.window)
    assert used + ANSWER_GROWTH_CHARS <= n_ctx * CONTEXT_SHARE * cpt * TOKEN_MARGIN
    assert "combine" in ctx.window


def test_a_context_too_small_for_a_next_edit_gives_none():
    b = Backend()
    b.profile = ServerProfile(n_ctx=256, chars_per_token=1.0)
    e = engine(b)
    e.document_opened(URI, SOURCE)
    e.document_changed(URI, RENAMED, 0)
    assert e._context(b, URI, RENAMED, 10, "python")[0] is None

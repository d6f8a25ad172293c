"""llama.vim's request pattern, reimplemented for benchmarks (not its code): what ggml-org/llama.vim
(`autoload/llama.vim`, read at a1c8e6e, January 2026) sends to llama-server's `/infill` while you type.

- Every cursor move in insert mode asks for a completion. If a request is still in flight, nothing is
  cancelled: a 100 ms timer (restarted on every key) tries again, with the cursor as it is then.
- The request: `input_prefix` = up to `n_prefix` (256) lines above the cursor line, `prompt` = the cursor
  line up to the cursor, `input_suffix` = the rest of the line and up to `n_suffix` (64) lines below,
  `input_extra` = the ring buffer's chunks, `cache_prompt`, `t_max_prompt_ms` (500; the server ignores
  it), `t_max_predict_ms` (250 for the first request at a position, 1000 for a speculative one; the
  server applies it only after a newline), `n_predict` (128), `id_slot: 0`, non-streaming. No request
  when the text after the cursor is longer than `max_line_suffix` (8) characters.
- Answers go into a cache keyed by the local context (also with the first 1-3 prefix lines dropped);
  a cached answer is shown at once, also when the characters typed since match its start (up to 128).
  A request is not sent when its context is cached.
- When a suggestion is shown, a speculative request asks for what comes after it (`prev`). Its
  answer is only shown if the user accepts the suggestion, which the replay never does.
- Ring buffer (`ring_n_chunks`, 0 here by default; llama.vim's default is 16): chunks of 32 lines are
  queued on opening the file and when the cursor has moved more than 32 lines; once a second, if the
  editor is in normal mode or the cursor has not moved for 3 s, one queued chunk moves into the ring
  and a warm-up request (`n_predict: 0`) reads the new `input_extra` into slot 0's cache.

Differences, for measuring: `response_fields` also asks for `timings/cache_n` and `tokens_evaluated`,
and the warm-up asks for timings too (what the server does is unchanged); each request carries an
`X-Bench-Key` header naming the keystroke it was made at.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import httpx

CURSOR_MARK = "\u00ce"  # the character llama.vim joins the context with for its cache keys
RESPONSE_FIELDS = [
    "content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms", "timings/prompt_per_second",
    "timings/predicted_n", "timings/predicted_ms", "timings/predicted_per_token_ms", "timings/predicted_per_second",
    "truncated", "tokens_cached",
    "timings/cache_n", "tokens_evaluated",  # for the benchmark
]


@dataclass
class VimConfig:
    n_prefix: int = 256
    n_suffix: int = 64
    n_predict: int = 128
    t_max_prompt_ms: int = 500
    t_max_predict_ms: int = 1000
    max_line_suffix: int = 8
    max_cache_keys: int = 250
    ring_n_chunks: int = 0
    ring_chunk_size: int = 64
    ring_scope: int = 1024
    ring_update_ms: int = 1000
    retry_ms: int = 100


@dataclass
class Hint:
    """A suggestion the pattern displayed: at keystroke `key`, `t` (perf_counter seconds)."""

    key: int
    t: float
    content: list[str]
    can_accept: bool
    from_cache: bool


@dataclass
class VimRequest:
    key: int  # the keystroke count when it was sent (-1: before typing)
    kind: str  # "fim" | "speculative" | "ring"
    t_sent: float
    body: dict
    t_done: float | None = None
    status: int | None = None
    response: dict | None = None
    error: str | None = None


@dataclass
class _Ctx:
    prefix: str
    middle: str
    suffix: str
    indent: int
    line_cur_prefix: str
    line_cur_suffix: str


@dataclass
class _Chunk:
    data: list[str]
    text: str
    filename: str


@dataclass
class LlamaVimPattern:
    """Drive with `open(text, cursor)`, then `key(text, cursor)` per keystroke; `close()` at the end."""

    url: str  # the server root; requests go to url + "/infill"
    filename: str
    config: VimConfig = field(default_factory=VimConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        self.hints: list[Hint] = []
        self.requests: list[VimRequest] = []
        self._http = httpx.AsyncClient(timeout=None)
        self._rng = random.Random(self.seed)
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._job: asyncio.Task | None = None
        self._side_jobs: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._ring_timer: asyncio.TimerHandle | None = None
        self._lines: list[str] = [""]
        self._pos = (0, 1)  # (x: column, 0-based; y: line, 1-based)
        self._key = -1
        self._insert_mode = False
        self._modified = False
        self._t_last_move = time.perf_counter()
        self._hint: Hint | None = None
        self._indent_last = -1
        self._pos_y_pick = -9999
        self._ring: list[_Chunk] = []
        self._queued: list[_Chunk] = []
        self._closed = False

    # -- the editor's events -------------------------------------------------------------------
    def open(self, text: str, cursor: int) -> None:
        """BufEnter: a chunk around the cursor is queued 100 ms later; the ring timer starts."""
        self._set_text(text, cursor)
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, lambda: self._pick_chunk(self._around_cursor(), no_mod=True, do_evict=True))
        if self.config.ring_n_chunks > 0:
            self._ring_timer = loop.call_later(self.config.ring_update_ms / 1000, self._ring_update)

    def key(self, text: str, cursor: int) -> None:
        """A keystroke in insert mode: CursorMovedI runs s:on_move(), then llama#fim()."""
        self._insert_mode = True
        self._modified = True
        self._key += 1
        self._set_text(text, cursor)
        self._on_move()
        self._fim(None, True, [], True)

    async def close(self) -> None:
        """Stop the timers and wait for the requests still in flight (as curl would finish them)."""
        self._closed = True
        for timer in (self._timer, self._ring_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._ring_timer = None
        jobs = [j for j in (self._job, *self._side_jobs) if j is not None]
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        await self._http.aclose()

    # -- the buffer ------------------------------------------------------------------------------
    def _set_text(self, text: str, cursor: int) -> None:
        self._lines = text.split("\n")
        before = text[:cursor]
        y = before.count("\n") + 1
        x = len(before) - (before.rfind("\n") + 1)
        self._pos = (x, y)

    def _getline(self, a: int, b: int | None = None):
        """Vim's getline(): one line (1-based), or the list of lines a..b (inclusive, clipped)."""
        if b is None:
            return self._lines[a - 1] if 1 <= a <= len(self._lines) else ""
        a = max(1, a)
        b = min(len(self._lines), b)
        return self._lines[a - 1 : b] if a <= b else []

    def _around_cursor(self) -> list[str]:
        half = self.config.ring_chunk_size // 2
        y = self._pos[1]
        return self._getline(max(1, y - half), min(y + half, len(self._lines)))

    # -- the local context (s:fim_ctx_local) -------------------------------------------------------
    def _ctx_local(self, x: int, y: int, prev: list[str]) -> _Ctx:
        cfg = self.config
        max_y = len(self._lines)
        if not prev:
            line_cur = self._getline(y)
            cur_prefix, cur_suffix = line_cur[:x], line_cur[x:]
            lines_prefix = self._getline(max(1, y - cfg.n_prefix), y - 1)
            lines_suffix = self._getline(y + 1, min(max_y, y + cfg.n_suffix))
            if line_cur.strip() == "":  # a line of only whitespace: from the start of the line
                indent, cur_prefix, cur_suffix = 0, "", ""
            else:
                indent = len(line_cur) - len(line_cur.lstrip(" \t"))
        else:
            line_cur = self._getline(y) + prev[0] if len(prev) == 1 else prev[-1]
            cur_prefix, cur_suffix = line_cur, ""
            lines_prefix = self._getline(max(1, y - cfg.n_prefix + len(prev) - 1), y - 1)
            if len(prev) > 1:
                lines_prefix = [*lines_prefix, self._getline(y) + prev[0], *prev[1:-1]]
            lines_suffix = self._getline(y + 1, min(max_y, y + cfg.n_suffix))
            indent = self._indent_last
        return _Ctx(
            prefix="\n".join(lines_prefix) + "\n",
            middle=cur_prefix,
            suffix=cur_suffix + "\n" + "\n".join(lines_suffix) + "\n",
            indent=indent,
            line_cur_prefix=cur_prefix,
            line_cur_suffix=cur_suffix,
        )

    # -- the response cache --------------------------------------------------------------------------
    def _cache_insert(self, key: str, value: dict) -> None:
        if key not in self._cache and len(self._cache) > self.config.max_cache_keys - 1:
            self._cache.popitem(last=False)
        self._cache[key] = value
        self._cache.move_to_end(key)

    def _cache_get(self, key: str) -> dict | None:
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
        return value

    # -- llama#fim ------------------------------------------------------------------------------------
    def _fim(self, pos: tuple[int, int] | None, is_auto: bool, prev: list[str], use_cache: bool) -> None:
        if self._closed:
            return
        if self._job is not None:  # a request is in flight: try again in 100 ms, never cancel
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(
                self.config.retry_ms / 1000, self._fim, pos, True, prev, use_cache)
            return
        x, y = pos if pos is not None else self._pos
        ctx = self._ctx_local(x, y, prev)
        if is_auto and len(ctx.line_cur_suffix) > self.config.max_line_suffix:
            return
        t_max_predict_ms = self.config.t_max_predict_ms if prev else 250
        hashes = [ctx.prefix + ctx.middle + CURSOR_MARK + ctx.suffix]
        trimmed = ctx.prefix
        for _ in range(3):
            trimmed = re.sub(r"^[^\n]*\n", "", trimmed, count=1)
            if not trimmed:
                break
            hashes.append(trimmed + ctx.middle + CURSOR_MARK + ctx.suffix)
        if use_cache and any(self._cache_get(h) is not None for h in hashes):
            return
        self._indent_last = ctx.indent
        if self.config.ring_n_chunks > 0:  # evict ring chunks very like the text around the cursor
            text = self._around_cursor()
            half = self.config.ring_chunk_size // 2
            l0 = self._rand(0, max(0, len(text) - half))
            chunk = text[l0 : min(l0 + half, len(text)) + 1]
            self._ring = [self._ring[0], *(c for c in self._ring[1:] if _chunk_sim(c.data, chunk) <= 0.5)] \
                if self._ring else []
        body = {
            "id_slot": 0,
            "input_prefix": ctx.prefix,
            "input_suffix": ctx.suffix,
            "input_extra": self._extra(),
            "prompt": ctx.middle,
            "n_predict": self.config.n_predict,
            "stop": [],
            "n_indent": ctx.indent,
            "top_k": 40,
            "top_p": 0.90,
            "samplers": ["top_k", "top_p", "infill"],
            "stream": False,
            "cache_prompt": True,
            "t_max_prompt_ms": self.config.t_max_prompt_ms,
            "t_max_predict_ms": t_max_predict_ms,
            "response_fields": RESPONSE_FIELDS,
        }
        request = VimRequest(self._key, "speculative" if prev else "fim", time.perf_counter(), body)
        self._job = asyncio.ensure_future(self._send(request, hashes))
        if is_auto and abs(y - self._pos_y_pick) > 32:  # gather extra context once the cursor moved far
            cfg = self.config
            max_y = len(self._lines)
            self._pick_chunk(self._getline(max(1, y - cfg.ring_scope), max(1, y - cfg.n_prefix)), False, False)
            self._pick_chunk(self._getline(min(max_y, y + cfg.n_suffix),
                                           min(max_y, y + cfg.n_suffix + cfg.ring_chunk_size)), False, False)
            self._pos_y_pick = y

    async def _send(self, request: VimRequest, hashes: list[str]) -> None:
        try:
            await self._post(request)
            if request.response is not None and isinstance(request.response.get("content"), str):
                for h in hashes:
                    self._cache_insert(h, request.response)
                if self._hint is None or not self._hint.can_accept:
                    # the job is still set here: a speculative request for the hint waits 100 ms
                    self._try_hint(*self._pos, from_cache=False)
        finally:
            self._job = None

    async def _post(self, request: VimRequest) -> None:
        self.requests.append(request)
        try:
            response = await self._http.post(f"{self.url}/infill", json=request.body,
                                             headers={"X-Bench-Key": str(request.key)})
            request.status = response.status_code
            if response.status_code == 200:
                request.response = response.json()
            else:
                request.error = response.text[:300]
        except httpx.HTTPError as exc:
            request.error = f"{type(exc).__name__}: {exc}"
        finally:
            request.t_done = time.perf_counter()

    # -- showing suggestions (s:on_move, s:fim_try_hint, s:fim_render) --------------------------------
    def _on_move(self) -> None:
        self._t_last_move = time.perf_counter()
        self._hint = None  # llama#fim_hide()
        self._try_hint(*self._pos)

    def _try_hint(self, x: int, y: int, from_cache: bool = True) -> None:
        if not self._insert_mode:
            return
        ctx = self._ctx_local(x, y, [])
        response = self._cache_get(ctx.prefix + ctx.middle + CURSOR_MARK + ctx.suffix)
        content = response.get("content", "") if response is not None else None
        if content is None:  # a cached answer up to 128 characters back, whose start was typed since
            pm = ctx.prefix + ctx.middle
            for i in range(min(128, len(pm))):
                removed = pm[len(pm) - (i + 1):]
                cached = self._cache_get(pm[: len(pm) - (i + 1)] + CURSOR_MARK + ctx.suffix)
                if not cached or not cached.get("content"):
                    continue
                if not cached["content"].startswith(removed):
                    continue
                rest = cached["content"][i + 1:]
                if rest and (content is None or len(rest) > len(content)):
                    content = rest
        if content is None:
            return
        self._render(x, y, content, from_cache)
        if self._hint is not None:  # a speculative request for what follows the suggestion
            self._fim((x, y), True, self._hint.content, True)

    def _render(self, x: int, y: int, text: str, from_cache: bool) -> None:
        content = text.split("\n")
        while content and content[-1] == "":
            content.pop()
        can_accept = True
        if not content:
            content, can_accept = [""], False
        line_cur = self._getline(y)
        if line_cur.strip() == "":  # trim the suggestion's leading whitespace, up to the line's
            lead = min(len(content[0]) - len(content[0].lstrip(" \t")), len(line_cur))
            line_cur, content[0] = content[0][:lead], content[0][lead:]
        cur_prefix, cur_suffix = line_cur[:x], line_cur[x:]
        if len(content) == 1 and content[0] in ("", cur_suffix):  # empty, or repeats the suffix
            content = [""]
        elif len(content) > 1 and content[0] == "" and content[1:] == self._getline(y + 1, y + len(content) - 1):
            content = [""]
        cmp_y = y + 1
        while cmp_y < len(self._lines) and self._getline(cmp_y).strip() == "":
            cmp_y += 1
        if len(content) == 1 and cur_prefix + content[0] == self._getline(cmp_y):  # repeats the next line
            content = [""]
        content[-1] += cur_suffix
        if "\n".join(content).strip() == "":
            can_accept = False
        self._hint = Hint(self._key, time.perf_counter(), content, can_accept, from_cache)
        self.hints.append(self._hint)

    # -- the ring buffer (s:pick_chunk, s:ring_update) ----------------------------------------------
    def _rand(self, i0: int, i1: int) -> int:
        return i0 + self._rng.randrange(i1 - i0 + 1)

    def _extra(self) -> list[dict]:
        return [{"text": c.text, "filename": c.filename} for c in self._ring]

    def _pick_chunk(self, text: list[str], no_mod: bool, do_evict: bool) -> None:
        cfg = self.config
        if (no_mod and self._modified) or cfg.ring_n_chunks <= 0 or len(text) < 3:
            return
        if len(text) + 1 < cfg.ring_chunk_size:
            chunk = list(text)
        else:
            half = cfg.ring_chunk_size // 2
            l0 = self._rand(0, max(0, len(text) - half))
            chunk = text[l0 : min(l0 + half, len(text)) + 1]
        if any(c.data == chunk for c in (*self._ring, *self._queued)):
            return
        for pool in (self._queued, self._ring):
            for i in range(len(pool) - 1, 0, -1):
                if _chunk_sim(pool[i].data, chunk) > 0.9:
                    if not do_evict:
                        return
                    del pool[i]
        if len(self._queued) == 16:
            self._queued.pop(0)
        self._queued.append(_Chunk(chunk, "\n".join(chunk) + "\n", self.filename))

    def _ring_update(self) -> None:
        if self._closed:
            return
        self._ring_timer = asyncio.get_running_loop().call_later(self.config.ring_update_ms / 1000, self._ring_update)
        if self._insert_mode and time.perf_counter() - self._t_last_move < 3.0:
            return
        if not self._queued:
            return
        if len(self._ring) == self.config.ring_n_chunks:
            self._ring.pop(0)
        self._ring.append(self._queued.pop(0))
        body = {
            "id_slot": 0, "input_prefix": "", "input_suffix": "", "input_extra": self._extra(), "prompt": "",
            "n_predict": 0, "temperature": 0.0, "samplers": [], "stream": False, "cache_prompt": True,
            "t_max_prompt_ms": 1, "t_max_predict_ms": 1, "response_fields": RESPONSE_FIELDS,
        }
        job = asyncio.ensure_future(self._post(VimRequest(self._key, "ring", time.perf_counter(), body)))
        self._side_jobs.add(job)
        job.add_done_callback(self._side_jobs.discard)


def _chunk_sim(c0: list[str], c1: list[str]) -> float:
    """How alike two chunks are: shared words over all words (llama.vim's s:chunk_sim)."""
    tokens0 = [t for t in re.split(r"\W+", "\n".join(c0)) if t]
    tokens1 = [t for t in re.split(r"\W+", "\n".join(c1)) if t]
    if not tokens0 and not tokens1:
        return 1.0
    set0 = set(tokens0)
    common = sum(1 for t in tokens1 if t in set0)
    return 2.0 * common / (len(tokens0) + len(tokens1))

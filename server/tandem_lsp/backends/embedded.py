"""The embedded backend: a GGUF model run in-process with llama-cpp-python, no server needed.

* ``llama_cpp`` is imported only when the model loads, and loading runs in a worker thread, so the
  language server answers ``initialize`` at once; the manager starts ``load()`` in the background.
* Native fill-in-the-middle: when the model declares FIM tokens, the prompt is built here as token
  ids ``[FIM_PRE] prefix [FIM_SUF] suffix [FIM_MID]`` (llama-cpp-python's own ``suffix=`` path uses
  wrong ids). Otherwise the template's prompt string is tokenized with special tokens.
* Generation runs in one worker thread per backend (llama.cpp is not thread-safe) and streams text
  back to the event loop through an ``asyncio.Queue``. Closing or cancelling the stream sets a
  ``threading.Event`` the worker checks after every token, so it stops within one token.
* Consecutive keystrokes share the prompt's start, and llama.cpp keeps it in its KV cache: only the
  tokens after the first difference are evaluated again (``last_prompt_tokens_evaluated``).
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import logging
import os
import threading
import time
from array import array
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tandem_lsp.backends.types import BackendError, GenerationRequest, ServerProfile
from tandem_lsp.safe_text import utf8

log = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096
PREFIX_CUT_QUANTUM = 256  # a too-long prefix is cut this many tokens short, room to type before it moves again
SUFFIX_SHARE = 4  # the suffix gets at most 1/SUFFIX_SHARE of the prompt budget
ALIGN_TOKENS = 16  # a prompt whose prefix holds the cached prompt's first tokens is cut to start there
PREFILL_CHUNK = 128  # the uncached prompt is evaluated this many tokens at a time, a stop checked between
# The suffix is read again on every keystroke (in Qwen's PSM layout it follows the prefix, whose end the
# keystroke changed), so its length is what a keystroke costs. It gets the tokens this machine reads in
# SUFFIX_READ_S, measured on the prompts it has read, within [SUFFIX_MIN_TOKENS, the SUFFIX_SHARE cap].
SUFFIX_READ_S = 0.25
SUFFIX_MIN_TOKENS = 32
SUFFIX_FIRST_TOKENS = 64  # before any prompt was read
# The whole prompt is read when a file is opened or switched to (the KV cache holds one prompt), so it is
# held to what this machine reads in PROMPT_READ_S: fixed once, at the first measurement (a budget that
# moved would move the cut at the start of the prefix and throw the cache away), in PREFIX_CUT_QUANTUM steps.
PROMPT_READ_S = 6.0
PROMPT_MIN_TOKENS = 512
PROMPT_FIRST_TOKENS = 1024  # before any prompt was read (the warm-up at load time normally measures it)
WARMUP_TEXT = "def area(width, height):\n    return width * height\n\n\n" * 12
WARMUP_TOKENS = 128  # read once at load time: pages the weights in and measures the reading speed


class EmbeddedBackend:
    name = "embedded"
    in_process = True  # a timeout means busy (reading a prompt), never down: see CompletionEngine._run

    def __init__(self, model_path: str | os.PathLike, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                 model: str | None = None):
        self.path = Path(model_path).expanduser()
        self.endpoint = str(self.path)
        self.model = model or self.path.stem
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.state = "new"  # new | loading | ready | failed | closed
        self.error: str | None = None
        self.load_ms: float | None = None
        self.fim_ids: tuple[int, int, int] | None = None  # (prefix, suffix, middle) token ids
        # counters for tests and diagnostics
        self.last_prompt_tokens: int = 0  # tokens in the last prompt
        self.last_prompt_tokens_evaluated: int = 0  # of them, evaluated (the rest came from the KV cache)
        self.tokens_generated: int = 0  # total tokens sampled, ever
        self.tokens_after_stop: int = 0  # tokens sampled after a stream was closed (at most 1 per stream)
        self.tokens_at_last_stop: int | None = None  # tokens_generated when a stream was last closed
        self._llm: Any = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-embedded")
        self._load_task: asyncio.Future | None = None
        self._evaluated = 0  # tokens passed to llm.eval since the current generation started
        self.read_tokens_per_s: float | None = None  # prompt-reading speed, a moving average
        self.prompt_limit: int | None = None  # tokens a prompt may have here; fixed at the first measurement
        self.profile = ServerProfile(sizes_itself=True)  # it cuts its prompts in tokens itself (prompt_tokens)

    # -- loading ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def start_loading(self) -> asyncio.Future:
        """Start ``load()`` in the background (once); the returned future completes when it is done."""
        if self._load_task is None:
            self._load_task = asyncio.ensure_future(self.load())
            self._load_task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved by the owner
        return self._load_task

    async def load(self) -> None:
        """Load the model in the worker thread. Raises BackendError with a readable message on failure."""
        if self.state == "ready":
            return
        self.state = "loading"
        started = time.monotonic()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._load_sync)
        except BackendError as exc:
            self.state, self.error = "failed", str(exc)
            raise
        except Exception as exc:
            self.state, self.error = "failed", f"embedded: cannot load {self.path}: {exc}"
            raise BackendError(self.error) from exc
        self.load_ms = (time.monotonic() - started) * 1000
        self.state = "ready"
        log.info("embedded model %s loaded in %.0f ms (context %d, native FIM %s)",
                 self.path, self.load_ms, self.n_ctx, "yes" if self.fim_ids else "no")

    def _load_sync(self) -> None:
        path = self.path
        if not path.is_file():
            raise BackendError(f"embedded: model file not found: {path}")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise BackendError(f"embedded: {path} is not a GGUF model file")
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendError(
                "embedded: llama-cpp-python is not installed (pip install 'llama-cpp-python>=0.3,<0.4')"
            ) from exc
        kwargs: dict[str, Any] = {"n_ctx": self.n_ctx, "verbose": False, "n_gpu_layers": 0}
        if self.n_threads:
            kwargs["n_threads"] = self.n_threads
        try:
            llm = llama_cpp.Llama(str(path), **kwargs)
        except Exception as exc:
            raise BackendError(f"embedded: cannot load {path}: {exc} (a corrupt or unsupported GGUF file?)") from exc
        self.n_ctx = llm.n_ctx()
        self.fim_ids = _fim_ids(llm)
        self._warm_up(llm)

        original_eval = llm.eval

        def counting_eval(tokens):  # counts the tokens llama.cpp really evaluates, and how fast it reads
            self._evaluated += len(tokens)
            t0 = time.perf_counter()
            result = original_eval(tokens)
            if len(tokens) >= 64:  # a prompt chunk: small reads are slower per token and would skew it
                self._note_read_speed(len(tokens) / max(time.perf_counter() - t0, 1e-6))
            return result

        llm.eval = counting_eval
        self._llm = llm

    def _warm_up(self, llm: Any) -> None:
        """Read a short prompt once, as llama-server does at start: the first real request no longer pays
        for paging the weights in, and the reading speed is known before the first prompt is sized."""
        tokens = llm.tokenize(WARMUP_TEXT.encode("utf-8"), add_bos=False, special=False)[:WARMUP_TOKENS]
        if len(tokens) < 16 or len(tokens) >= self.n_ctx:
            return
        try:
            llm.eval(tokens[:16])  # any pass touches every weight: this one pages them in, untimed
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(tokens)
            self._note_read_speed(len(tokens) / max(time.perf_counter() - t0, 1e-6))
        except Exception:  # noqa: BLE001 - a warm-up that fails leaves the defaults
            log.debug("embedded warm-up failed", exc_info=True)
        finally:
            llm.reset()

    def _note_read_speed(self, tokens_per_s: float) -> None:
        old = self.read_tokens_per_s
        self.read_tokens_per_s = tokens_per_s if old is None else 0.7 * old + 0.3 * tokens_per_s

    def prompt_budget(self) -> int:
        """How many tokens a prompt may have (see PROMPT_READ_S); at most the context minus the answer."""
        if self.prompt_limit is None:
            if self.read_tokens_per_s is None:
                return PROMPT_FIRST_TOKENS
            want = int(self.read_tokens_per_s * PROMPT_READ_S) // PREFIX_CUT_QUANTUM * PREFIX_CUT_QUANTUM
            self.prompt_limit = max(PROMPT_MIN_TOKENS, want)
        return self.prompt_limit

    def suffix_budget(self, room: int) -> int:
        """How many suffix tokens a prompt with ``room`` tokens gets (see SUFFIX_READ_S)."""
        if self.read_tokens_per_s is None:
            want = SUFFIX_FIRST_TOKENS
        else:
            want = max(SUFFIX_MIN_TOKENS, int(self.read_tokens_per_s * SUFFIX_READ_S))
        return max(0, min(want, room // SUFFIX_SHARE))

    # -- the protocol ------------------------------------------------------------------------------
    async def health(self, timeout: float = 1.0) -> bool:
        return self.ready

    async def list_models(self, timeout: float = 2.0) -> list[str]:
        return [self.path.stem]

    async def learn(self) -> ServerProfile:
        """What the load measured (the warm-up read), for the status and doctor."""
        p = self.profile
        p.n_ctx, p.read_tps, p.learned = self.n_ctx, self.read_tokens_per_s, True
        return p

    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        if self.state != "ready":
            if self.state == "failed":
                raise BackendError(self.error or "embedded: the model failed to load")
            raise BackendError(f"embedded: the model is not loaded yet ({self.path.name})")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, value: Any = None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        job = loop.run_in_executor(self._executor, self._generate, req, stop, put)
        job.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors are reported through the queue
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield value
                elif kind == "error":
                    raise BackendError(value)
                else:
                    return
        finally:
            if not stop.is_set():
                stop.set()  # closed or cancelled: the worker stops after the token in progress
                self.tokens_at_last_stop = self.tokens_generated

    async def idle(self) -> None:
        """Wait until the worker thread has finished everything queued before this call."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    async def aclose(self) -> None:
        """Free the model (after any generation in progress stops)."""
        self.state = "closed"
        llm, self._llm = self._llm, None
        if llm is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, llm.close)
        self._executor.shutdown(wait=False)

    # -- the worker thread ---------------------------------------------------------------------
    def prompt_tokens(self, req: GenerationRequest, budget: int | None = None) -> list[int]:
        """The prompt as token ids (worker thread only): native FIM when the model has FIM tokens."""
        llm = self._llm
        if budget is None:
            # a raw prompt (a next-edit rewrite) is read whole when the context holds it: its end is the window
            limit = self.n_ctx if req.raw else self.prompt_budget()
            budget = max(16, min(self.n_ctx - max(1, req.max_tokens) - 1, limit))
        if self.fim_ids is not None and not req.raw:
            pre, suf, mid = self.fim_ids
            room = budget - 3
            limit = self.suffix_budget(room)
            suffix = llm.tokenize(utf8(_lines_within(req.suffix, limit * 8)), add_bos=False, special=False)
            if len(suffix) > limit:  # whole lines when at least half the budget is whole lines
                cut = next((i for i in range(limit, limit // 2, -1) if llm.detokenize(suffix[i - 1 : i]).endswith(b"\n")),
                           limit)
                suffix = suffix[:cut]
            prefix = llm.tokenize(utf8(req.prefix), add_bos=False, special=False)
            keep = room - len(suffix)
            if len(prefix) > keep:
                cut = self._cached_start(llm, pre, prefix, keep)
                if cut is None:
                    # a new start: leave room to type `quantum` tokens before it has to move again (until
                    # then _cached_start finds it); a small prompt keeps at least 3/4 of its budget
                    quantum = min(PREFIX_CUT_QUANTUM, max(64, room // 4))
                    cut = len(prefix) - keep + quantum
                prefix = prefix[min(cut, len(prefix)) :]
            return [pre, *prefix, suf, *suffix, mid]
        text = req.prompt
        if not text and req.messages:
            text = "\n\n".join(str(m.get("content", "")) for m in req.messages) + "\n"
        if not text:
            text = req.prefix
        tokens = llm.tokenize(utf8(text), add_bos=llm._model.add_bos_token(), special=True)
        if len(tokens) > budget:
            tokens = tokens[len(tokens) - budget :]
        return tokens

    def _generate(self, req: GenerationRequest, stop: threading.Event, put: Callable[..., None]) -> None:
        if stop.is_set():
            put("done")
            return
        llm = self._llm
        if llm is None:
            put("error", "embedded: the model was closed")
            return
        try:
            import llama_cpp

            tokens = self.prompt_tokens(req)
            self.last_prompt_tokens = len(tokens)
            self._evaluated = 0
            first = True
            deadline = time.monotonic() + req.timeout_ms / 1000.0 if req.timeout_ms else None
            if not self._prefill(llm, tokens, stop, deadline):
                self.last_prompt_tokens_evaluated = self._evaluated
                put("done")
                return
            decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
            generated: list[int] = []
            emitted = b""
            text = ""
            sent = 0  # text[:sent] went to the consumer; the rest may be the start of a stop string
            vocab = llm._model.vocab
            for token in llm.generate(tokens, temp=max(0.0, req.temperature), top_k=40, top_p=0.95, min_p=0.05,
                                      repeat_penalty=1.0):
                if first:
                    self.last_prompt_tokens_evaluated = self._evaluated
                    first = False
                    first_at = time.perf_counter()
                self.tokens_generated += 1
                if stop.is_set():
                    self.tokens_after_stop += 1
                    break
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                generated.append(token)
                data = llm.detokenize(generated)
                if data.startswith(emitted):
                    chunk = decoder.decode(data[len(emitted) :])
                else:  # the detokenizer changed earlier bytes (rare): emit only what follows
                    chunk = ""
                emitted = data
                if chunk:
                    text += chunk
                    hit = _first_stop(text, req.stop)
                    if hit is not None:
                        if hit > sent:
                            put("text", text[sent:hit])
                        sent = len(text)
                        break
                    safe = len(text) - _partial_stop(text, req.stop)
                    if safe > sent:
                        put("text", text[sent:safe])
                        sent = safe
                if len(generated) >= req.max_tokens or stop.is_set():
                    req.finish_reason = "length" if len(generated) >= req.max_tokens else None
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                if llm.n_tokens + 1 >= self.n_ctx:
                    break  # the context is full
            if first:
                self.last_prompt_tokens_evaluated = self._evaluated
            if req.finish_reason is None and not stop.is_set():
                req.finish_reason = "stop"
            if not first and len(generated) > 8:  # the writing speed, for sizing next-edit windows
                self.profile.note_write(len(generated) - 1, (time.perf_counter() - first_at) * 1000)
            tail = text[sent:] + decoder.decode(b"", final=True)
            if tail and not stop.is_set():
                put("text", tail)
            put("done")
        except Exception as exc:
            log.debug("embedded generation failed", exc_info=True)
            put("error", f"embedded: generation failed: {exc}")


    @staticmethod
    def _cached_start(llm: Any, pre: int, prefix: list[int], keep: int) -> int | None:
        """Where in ``prefix`` the prompt in llama.cpp's cache started, when starting there again keeps at
        most ``keep`` tokens: the cut that reuses the cache, whatever the text window before it did."""
        if llm.n_tokens <= ALIGN_TOKENS or int(llm._input_ids[0]) != pre:
            return None
        needle = array("i", (int(t) for t in llm._input_ids[1 : 1 + ALIGN_TOKENS])).tobytes()
        hay = array("i", prefix).tobytes()
        at = hay.find(needle)
        while at >= 0 and at % 4:  # token boundaries only
            at = hay.find(needle, at + 1)
        if at < 0:
            return None
        cut = at // 4
        return cut if len(prefix) - cut <= keep else None

    def _prefill(self, llm: Any, tokens: list[int], stop: threading.Event, deadline: float | None) -> bool:
        """Evaluate the prompt (but its last token) where it differs from llama.cpp's cache, PREFILL_CHUNK
        tokens at a time, so that a cancel or the timeout lands within one chunk even when a whole new
        file has to be read. ``generate`` then finds it all cached and evaluates the last token only.
        False when stopped; what was evaluated stays cached for the next request."""
        head = tokens[:-1]
        same = 0
        for a, b in zip(llm._input_ids, head):
            if a != b:
                break
            same += 1
        if len(head) - same <= PREFILL_CHUNK:
            return not stop.is_set()  # little to do: generate() does it in one go
        if same == 0:
            llm.reset()
        else:
            llm.n_tokens = same  # eval() drops the KV cache beyond this point
        for i in range(same, len(head), PREFILL_CHUNK):
            if stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                return False
            llm.eval(head[i : i + PREFILL_CHUNK])
        return not stop.is_set()


def _lines_within(text: str, chars: int) -> str:
    """The first lines of ``text`` that fit in ``chars`` characters (at least the start of the first)."""
    if len(text) <= chars:
        return text
    cut = text.rfind("\n", 0, chars + 1)
    return text[: cut + 1] if cut > 0 else text[:chars]


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def _partial_stop(text: str, stops: list[str]) -> int:
    """The length of the longest end of ``text`` that begins a stop string (held back until known)."""
    longest = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest


def _fim_ids(llm: Any) -> tuple[int, int, int] | None:
    """The model's (FIM prefix, FIM suffix, FIM middle) token ids, or None when it has none."""
    try:
        ids = (llm._model.token_prefix(), llm._model.token_suffix(), llm._model.token_middle())
    except Exception:  # noqa: BLE001 - an older binding
        ids = (-1, -1, -1)
    if all(i is not None and i >= 0 for i in ids):
        return ids  # type: ignore[return-value]
    meta = getattr(llm, "metadata", {}) or {}
    keys = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id")
    try:
        ids = tuple(int(meta[k]) for k in keys)
    except (KeyError, ValueError):
        return None
    return ids if all(i >= 0 for i in ids) else None  # type: ignore[return-value]

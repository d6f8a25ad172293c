"""llama.cpp server backend: native fill-in-the-middle on /infill (the server applies the model's FIM
tokens and takes other files as input_extra), chat templates on its OpenAI-compatible /v1/chat/completions.

The server builds ``[extra chunks][FIM_PRE] input_prefix prompt [FIM_SUF] input_suffix [FIM_MID]`` and
keeps its prompt cache by longest common prefix. So the cursor line up to the cursor goes in ``prompt``
and ``input_prefix`` ends at the line start: it stays byte-identical while typing within a line, and a
keystroke re-reads only the cursor line and the suffix. The server cuts a prefix longer than 3/4 of its
batch (and a suffix longer than 1/4) from the left itself, which would move the prompt's start on every
keystroke: ``learn()`` finds those limits so that the pipeline cuts first, where the cache stays valid.
Each stream asks for ``timings_per_token`` so that the first event already says how many prompt tokens
were read and how fast, and names its slot (``id_slot``, see SLOT).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator

import httpx

from tandem_lsp.backends._stream import HttpBackend, StatusError, get_json, open_stream, post_json, sse_events
from tandem_lsp.backends.openai import OpenAIBackend
from tandem_lsp.backends.types import BackendError, GenerationRequest, ServerProfile, ServerReport

log = logging.getLogger(__name__)

DEFAULT_N_BATCH = 2048  # llama-server's default -b
# Every /infill goes to one slot. llama-server (4 slots by default) gives a request that arrives while its
# slot still finishes a cancelled read (a cancel lands only at the end of a batch) to another, idle slot,
# whose cache /infill never restores: the whole prompt would be read again there. Pinned to one slot, the
# request waits for the read in progress, which is the one it needs.
SLOT = 0
CALIBRATION_TOKENS = 160  # prompt tokens read once to measure the server's reading speed
CALIBRATION_PREDICT = 16  # tokens written to measure its writing speed
BATCH_PROBE_TOKENS = 1100  # a prefix this long tells a -b 1024 server (it keeps 768) from a -b 2048 one
PROBE_MIN_TPS = 400  # ... probed only on a server that reads it within 3 s (a slow one never gets such prompts)
CALIBRATION_TEXT = (
    "def area(width, height):\n    \"\"\"The area of a rectangle.\"\"\"\n    return width * height\n\n\n"
    "class Shape:\n    def __init__(self, name, sides):\n        self.name = name\n        self.sides = sides\n\n"
    "    def describe(self):\n        return f'{self.name} has {self.sides} sides'\n\n\n"
    "for index, item in enumerate(items):\n    if item is None:\n        continue\n    total += item\n"
)


def split_cursor_line(prefix: str) -> tuple[str, str]:
    """(the prefix up to the start of the cursor line, the cursor line up to the cursor)."""
    head, newline, line = prefix.rpartition("\n")
    return head + newline, line


def _generation(req: GenerationRequest) -> dict:
    """What every streamed generation asks for: the answer's bounds, the cache, the server's timings."""
    return {
        "n_predict": 0 if req.warm_only else req.max_tokens,
        "temperature": req.temperature,
        "stop": req.stop,
        "stream": True,
        "cache_prompt": True,
        "timings_per_token": True,
        "t_max_predict_ms": req.timeout_ms,
    }


def infill_body(req: GenerationRequest) -> dict:
    input_prefix, line = split_cursor_line(req.prefix)
    return {
        "input_prefix": input_prefix,
        "prompt": line,
        "input_suffix": req.suffix,
        "input_extra": [{"filename": s.path, "text": s.text} for s in req.snippets],
        **_generation(req),
        "id_slot": SLOT,
    }


def completion_body(req: GenerationRequest) -> dict:
    """A raw prompt continued as it is (next-edit rewrites) on /completion, in the request's slot when it
    names one (so that it leaves the completions' slot and its cache alone)."""
    body = {"prompt": req.prompt, **_generation(req)}
    if req.slot is not None:
        body["id_slot"] = req.slot
    if req.model:
        body["model"] = req.model
    return body


def report_from(event: dict, prompt_chars: int) -> ServerReport | None:
    """The server's own counters in a stream event (``timings``, and on the last one ``tokens_*``)."""
    timings = event.get("timings")
    if not isinstance(timings, dict):
        return None

    def num(d: dict, key: str):
        value = d.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    read, cached = num(timings, "prompt_n"), num(timings, "cache_n")
    total = num(event, "tokens_evaluated")
    if total is None and read is not None and cached is not None:
        total = int(read + cached)
    truncated = event.get("truncated")
    return ServerReport(
        prompt_tokens=None if total is None else int(total),
        cached_tokens=None if cached is None else int(cached),
        read_tokens=None if read is None else int(read),
        read_ms=num(timings, "prompt_ms"),
        generated_tokens=None if num(timings, "predicted_n") is None else int(num(timings, "predicted_n")),
        generate_ms=num(timings, "predicted_ms"),
        truncated=truncated if isinstance(truncated, bool) else None,
        prompt_chars=prompt_chars,
    )


class LlamaCppBackend(HttpBackend):
    name = "llamacpp"
    default_endpoint = "http://127.0.0.1:8080"

    def __init__(self, client: httpx.AsyncClient, endpoint: str | None = None, model: str | None = None):
        super().__init__(client, endpoint, model)
        self._openai = OpenAIBackend(client, f"{self.endpoint}/v1", model)
        self._openai.name = self.name  # chat requests (commands) only: /infill is what is sized and measured

    async def list_models(self, timeout: float = 2.0) -> list[str]:
        try:
            return await self._openai.list_models(timeout)
        except StatusError as exc:
            if exc.status == 404:
                return []  # an old server without the OpenAI API
            raise

    async def health(self, timeout: float = 1.0) -> bool:
        try:
            data = await get_json(self.client, self.name, f"{self.endpoint}/health", timeout)
        except BackendError:
            return False
        return isinstance(data, dict) and data.get("status") == "ok"

    # -- learning the server ---------------------------------------------------------------------
    async def learn(self) -> ServerProfile:
        p = self.profile
        try:
            props = await get_json(self.client, self.name, f"{self.endpoint}/props", 3.0)
        except BackendError as exc:
            log.debug("llamacpp: /props failed: %s", exc)
            props = {}
        if isinstance(props, dict):
            settings = props.get("default_generation_settings") or {}
            if isinstance(settings, dict):
                p.n_ctx = _int(settings.get("n_ctx")) or p.n_ctx
                params = settings.get("params") or {}
                if isinstance(params, dict):
                    p.n_predict_default = _int(params.get("n_predict"), allow_negative=True)
            p.slots = _int(props.get("total_slots")) or p.slots
        try:
            await self._calibrate()
        except BackendError as exc:
            log.info("llamacpp: could not measure the server's speed: %s", exc)
        if p.n_batch is None:
            p.n_batch = DEFAULT_N_BATCH
        p.max_prefix_tokens = 3 * (p.n_batch // 4)
        p.max_suffix_tokens = p.n_batch // 4 - 2
        if p.n_ctx:
            n_predict = p.n_predict_default if p.n_predict_default is not None else -1
            p.max_extra_tokens = max(0, p.n_ctx - p.n_batch - 2 * n_predict)
        if p.read_tps is not None and p.read_tps < 1000:
            p.hints = ["--cache-reuse 256 (reuse cached chunks when the start of the prompt moves)"]
        p.learned = True
        return p

    async def _tokens(self, text: str) -> int:
        data = await post_json(self.client, self.name, f"{self.endpoint}/tokenize", {"content": text}, 5.0)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise BackendError(f"{self.name}: unexpected /tokenize answer")
        return len(tokens)

    async def _calibrate(self) -> None:
        """Read ~CALIBRATION_TOKENS fresh tokens and write a few: the server's reading and writing speed,
        its characters per token, and, on a server fast enough to be given long prompts, its batch size."""
        p = self.profile
        text = CALIBRATION_TEXT * 8
        n = await self._tokens(text)
        cpt = len(text) / max(n, 1)
        if p.chars_per_token is None:
            p.chars_per_token = cpt
        sample = f"# {secrets.token_hex(4)}\n" + text[: int(CALIBRATION_TOKENS * cpt)]  # never in a cache
        body = {"prompt": sample, "n_predict": CALIBRATION_PREDICT, "ignore_eos": True, "cache_prompt": True,
                "temperature": 0.0, "stream": False}
        t0 = time.monotonic()
        data = await post_json(self.client, self.name, f"{self.endpoint}/completion", body, 60.0)
        elapsed_ms = (time.monotonic() - t0) * 1000
        report = report_from(data, len(sample)) if isinstance(data, dict) else None
        if report is None or report.read_tokens is None:
            raise BackendError(f"{self.name}: no timings in the /completion answer")
        p.note_report(report)
        log.info("llamacpp: reads %.0f prompt tokens/s, writes %.0f tokens/s (calibration took %.0f ms)",
                 p.read_tps or 0, p.write_tps or 0, elapsed_ms)
        if p.read_tps is not None and p.read_tps > PROBE_MIN_TPS:
            await self._probe_batch(cpt)

    async def _probe_batch(self, cpt: float) -> None:
        """Send a prefix longer than a -b 1024 server keeps and see how much of it the server kept."""
        line = "value = compute(value, index)  # step\n"
        text = f"# {secrets.token_hex(4)}\n" + line * int(BATCH_PROBE_TOKENS * cpt / len(line) + 1)
        sent = await self._tokens(text)
        body = {"input_prefix": text, "input_suffix": "", "prompt": "", "n_predict": 0, "cache_prompt": True,
                "stream": False}
        data = await post_json(self.client, self.name, f"{self.endpoint}/infill", body, 30.0)
        report = report_from(data, len(text)) if isinstance(data, dict) else None
        if report is None or report.prompt_tokens is None:
            return
        kept = report.prompt_tokens - 3  # FIM_PRE, FIM_SUF, FIM_MID (and any extra chunk header)
        if kept < sent - 8:  # it keeps 3/4 of its batch (batch sizes are multiples of 256)
            self.profile.n_batch = max(256, round(kept * 4 / 3 / 256) * 256)
            log.info("llamacpp: the server keeps %d prefix tokens of %d: batch size %d", kept, sent,
                     self.profile.n_batch)

    # -- generation ------------------------------------------------------------------------------
    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        if req.messages is not None:
            async for text in self._openai.stream(req):
                yield text
            return
        if req.raw:
            body, path = completion_body(req), "/completion"
            chars = len(req.prompt)
        else:
            body, path = infill_body(req), "/infill"
            chars = len(req.prefix) + len(req.suffix) + sum(len(s.path) + len(s.text) + 1 for s in req.snippets)
        report: ServerReport | None = None
        try:
            async with open_stream(self.client, self.name, "POST", f"{self.endpoint}{path}", body) as response:
                async for event in sse_events(response, self.name):
                    if event is None:  # data: [DONE], which /infill does not send but a proxy might
                        return
                    report = report_from(event, chars) or report
                    text = event.get("content", "")
                    if not isinstance(text, str):
                        raise BackendError(f"{self.name}: unexpected stream event")
                    if text and not req.warm_only:
                        yield text
                    if event.get("stop"):
                        limit = event.get("stop_type") == "limit" or event.get("stopped_limit") is True
                        req.finish_reason = "length" if limit else "stop"
                        return
            raise BackendError(f"{self.name}: stream ended before stop")
        finally:
            if report is not None:
                self.last_report = report
                self.profile.note_report(report)


def _int(value, *, allow_negative: bool = False) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value <= 0 and not allow_negative:
        return None
    return int(value)

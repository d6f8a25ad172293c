"""Ollama backend: raw FIM prompts on /api/generate, chat templates on /api/chat, NDJSON streaming.

Thinking is turned off and the model is kept loaded (keep_alive) so that every keystroke is cheap.
With no model configured, the first model Ollama lists is used.

Ollama cuts a prompt longer than its ``num_ctx`` (2,048 or 4,096 by default) from the left, silently,
which moves the prompt's start on every keystroke. So every request sets ``options.num_ctx``: one value
per backend (a new value reloads the model), at least what the pipeline's prompts need and at most the
model's own context (``/api/show``). The final event of each stream reports ``prompt_eval_count`` and
``prompt_eval_duration``: the reading speed (nothing is sent just to measure it). Ollama counts only
what it read, not what it took from its cache.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from tandem_lsp.backends._stream import HttpBackend, check_event, get_json, open_stream, parse_json, post_json
from tandem_lsp.backends.types import BackendError, GenerationRequest, ServerProfile, ServerReport

log = logging.getLogger(__name__)

KEEP_ALIVE = "30m"
NUM_CTX = 8192  # asked for (within the model's context): room for the pipeline's bounds and the answer


class OllamaBackend(HttpBackend):
    name = "ollama"
    default_endpoint = "http://127.0.0.1:11434"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.profile.measures_by_ttft = True
        self._read_before = False  # a completed FIM call: Ollama's cache may hold part of the next prompt

    async def list_models(self, timeout: float = 2.0) -> list[str]:
        data = await get_json(self.client, self.name, f"{self.endpoint}/api/tags", timeout)
        try:
            return [str(m["name"]) for m in data["models"]]
        except (KeyError, TypeError):
            raise BackendError(f"{self.name}: unexpected /api/tags answer") from None

    async def health(self, timeout: float = 1.0) -> bool:
        try:
            await get_json(self.client, self.name, f"{self.endpoint}/api/version", timeout)
        except BackendError:
            return False
        return True

    async def _model(self, req: GenerationRequest | None = None) -> str:
        if model := (req.model if req is not None else None) or self.model:
            return model
        models = await self.list_models()
        if not models:
            raise BackendError(f"{self.name}: no model installed")
        self.model = models[0]
        return self.model

    # -- learning the server ---------------------------------------------------------------------
    async def learn(self) -> ServerProfile:
        p = self.profile
        model_ctx = None
        try:
            info = await post_json(self.client, self.name, f"{self.endpoint}/api/show", {"model": await self._model()}, 5.0)
            model_info = info.get("model_info") if isinstance(info, dict) else None
            if isinstance(model_info, dict):
                model_ctx = next((v for k, v in model_info.items()
                                  if k.endswith(".context_length") and isinstance(v, int) and v > 0), None)
        except BackendError as exc:
            log.debug("ollama: /api/show failed: %s", exc)
        p.n_ctx = min(NUM_CTX, model_ctx) if model_ctx else NUM_CTX
        p.learned = True  # the speed comes from the counters of the calls themselves
        return p

    @staticmethod
    def _report(event: dict, chars: int) -> ServerReport | None:
        def num(key: str):
            value = event.get(key)
            return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        if num("prompt_eval_count") is None:
            return None
        return ServerReport(
            prompt_tokens=None,  # Ollama counts only what it evaluated, not what it took from its cache
            read_tokens=int(num("prompt_eval_count")),
            read_ms=(num("prompt_eval_duration") or 0) / 1e6,
            generated_tokens=None if num("eval_count") is None else int(num("eval_count")),
            generate_ms=(num("eval_duration") or 0) / 1e6,
            prompt_chars=chars,
        )

    # -- generation ------------------------------------------------------------------------------
    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        chat = req.messages is not None
        options = {"num_predict": 1 if req.warm_only else req.max_tokens, "temperature": req.temperature,
                   "stop": req.stop}
        if self.profile.n_ctx:
            options["num_ctx"] = self.profile.n_ctx
        body = {
            "model": await self._model(req),
            "stream": True,
            "think": False,
            "keep_alive": KEEP_ALIVE,
            "options": options,
        }
        body |= {"messages": req.messages} if chat else {"prompt": req.prompt, "raw": True}
        url = f"{self.endpoint}/api/chat" if chat else f"{self.endpoint}/api/generate"
        t0, first_at = time.monotonic(), None
        self.last_report = None
        events = self._events(url, body, req, chat)
        try:
            async with contextlib.aclosing(events):  # closing the stream closes the HTTP connection at once
                async for text in events:
                    if first_at is None:
                        first_at = time.monotonic()
                    if text and not req.warm_only:
                        yield text
        finally:
            if chat:
                pass
            elif self.last_report is None:
                self.observe_first_token(req.prompt, t0, first_at)  # closed before the counters came: time it
            else:
                self._last_prompt = req.prompt

    async def _events(self, url: str, body: dict, req: GenerationRequest, chat: bool) -> AsyncIterator[str]:
        async with open_stream(self.client, self.name, "POST", url, body) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = check_event(parse_json(line, self.name), self.name)
                try:
                    text = event["message"]["content"] if chat else event["response"]
                except (KeyError, TypeError):
                    raise BackendError(f"{self.name}: unexpected stream event") from None
                yield text or ""
                if event.get("done"):
                    reason = event.get("done_reason")
                    req.finish_reason = reason if isinstance(reason, str) else "stop"
                    report = self._report(event, len(req.prompt))
                    if report is not None and not self._read_before and not chat:
                        report.prompt_tokens = report.read_tokens  # nothing was cached: the whole prompt
                    self._read_before = self._read_before or not chat
                    if report is not None:
                        self.last_report = report
                        self.profile.note_report(report)
                    return
        raise BackendError(f"{self.name}: stream ended before done")

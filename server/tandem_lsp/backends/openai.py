"""OpenAI-compatible backend (LM Studio, vLLM, llama-cpp-python's server, llama-server's /v1): streaming
/completions and /chat/completions.

The raw FIM prompt goes to /completions without a `suffix` field (LM Studio does not support it); a chat
template (req.messages) goes to /chat/completions. `endpoint` includes the /v1.

These servers keep a prompt cache by longest common prefix too, but most report neither the cache nor
timings: the context comes from /models where the server gives it (llama-server's ``meta.n_ctx``, LM
Studio's ``max_context_length``, vLLM's ``max_model_len``), else 2,048 is assumed (llama-cpp-python's
default) and a context error's reason corrects it; characters per token come from the stream's ``usage``
(or from a context error, which names the prompt's tokens); the reading speed from the time to the first
token against the part of the prompt that differs from the previous one. Nothing is sent to measure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from tandem_lsp.backends._stream import HttpBackend, get_json, open_stream, sse_events
from tandem_lsp.backends.types import BackendError, ContextError, GenerationRequest, ServerProfile

log = logging.getLogger(__name__)

ASSUMED_N_CTX = 2048  # llama-cpp-python's server default; LM Studio and vLLM say theirs in /models


class OpenAIBackend(HttpBackend):
    name = "openai"
    default_endpoint = "http://127.0.0.1:1234/v1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.profile.measures_by_ttft = True

    async def _models(self, timeout: float) -> list:
        data = await get_json(self.client, self.name, f"{self.endpoint}/models", timeout)
        try:
            models = data["data"]
            [str(m["id"]) for m in models]
        except (KeyError, TypeError):
            raise BackendError(f"{self.name}: unexpected /models answer") from None
        return models

    async def list_models(self, timeout: float = 2.0) -> list[str]:
        return [str(m["id"]) for m in await self._models(timeout)]

    async def health(self, timeout: float = 1.0) -> bool:
        try:
            await self.list_models(timeout)
        except BackendError:
            return False
        return True

    # -- learning the server ---------------------------------------------------------------------
    async def learn(self) -> ServerProfile:
        p = self.profile
        try:
            models = await self._models(3.0)
        except BackendError:
            models = []
        wanted = self.model
        for m in models:
            if not isinstance(m, dict) or (wanted and m.get("id") != wanted and len(models) > 1):
                continue
            meta = m.get("meta") if isinstance(m.get("meta"), dict) else {}
            for value in (meta.get("n_ctx"), m.get("max_context_length"), m.get("context_length"),
                          m.get("loaded_context_length"), m.get("max_model_len")):
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    p.n_ctx = value
                    break
            break
        if p.n_ctx is None:
            p.n_ctx = ASSUMED_N_CTX  # the smallest default of the common servers, until one says otherwise
        p.learned = True
        return p

    # -- generation ------------------------------------------------------------------------------
    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        chat = req.messages is not None
        body = {
            "model": req.model or self.model,
            "max_tokens": 1 if req.warm_only else req.max_tokens,
            "temperature": req.temperature,
            "stop": req.stop,
            "stream": True,
            "stream_options": {"include_usage": True},  # the last event counts the prompt's tokens
        }
        if body["model"] is None:
            del body["model"]  # the server uses its loaded model
        body |= {"messages": req.messages} if chat else {"prompt": req.prompt}
        url = f"{self.endpoint}/chat/completions" if chat else f"{self.endpoint}/completions"
        t0 = time.monotonic()
        first_at: float | None = None
        try:
            async with open_stream(self.client, self.name, "POST", url, body) as response:
                async for event in sse_events(response, self.name):
                    if first_at is None:
                        first_at = time.monotonic()
                    if event is None:  # data: [DONE]
                        return
                    usage = event.get("usage")
                    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int) and not chat:
                        self.profile.note_chars(len(req.prompt), usage["prompt_tokens"])
                    for choice in event.get("choices") or ():  # a usage-only chunk has no choices
                        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                            req.finish_reason = choice["finish_reason"]
                        try:
                            text = (choice["delta"].get("content") if chat else choice["text"]) or ""
                        except (KeyError, TypeError, AttributeError):
                            raise BackendError(f"{self.name}: unexpected stream event") from None
                        if text and not req.warm_only:
                            yield text
            raise BackendError(f"{self.name}: stream ended before [DONE]")
        except ContextError as exc:
            if exc.n_ctx:
                self.profile.n_ctx = exc.n_ctx  # the next prompt is sized to it (the pipeline retries once)
            if exc.requested and not chat:
                self.profile.chars_per_token = len(req.prompt) / exc.requested
            raise
        finally:
            if not chat:
                self.observe_first_token(req.prompt, t0, first_at)

"""llama.cpp server backend: native fill-in-the-middle on /infill (the server applies the model's FIM
tokens and takes other files as input_extra), chat templates on its OpenAI-compatible /v1/chat/completions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tandem_lsp.backends._stream import HttpBackend, StatusError, get_json, open_stream, sse_events
from tandem_lsp.backends.base import BackendError
from tandem_lsp.backends.openai import OpenAIBackend
from tandem_lsp.completion.request import GenerationRequest


class LlamaCppBackend(HttpBackend):
    name = "llamacpp"
    default_endpoint = "http://127.0.0.1:8080"

    def __init__(self, client: httpx.AsyncClient, endpoint: str | None = None, model: str | None = None):
        super().__init__(client, endpoint, model)
        self._openai = OpenAIBackend(client, f"{self.endpoint}/v1", model)
        self._openai.name = self.name

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

    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        if req.messages is not None:
            async for text in self._openai.stream(req):
                yield text
            return
        body = {
            "input_prefix": req.prefix,
            "input_suffix": req.suffix,
            "input_extra": [{"filename": s.path, "text": s.text} for s in req.snippets],
            "prompt": "",
            "n_predict": req.max_tokens,
            "temperature": req.temperature,
            "stop": req.stop,
            "stream": True,
            "cache_prompt": True,
            "t_max_predict_ms": req.timeout_ms,
        }
        async with open_stream(self.client, self.name, "POST", f"{self.endpoint}/infill", body) as response:
            async for event in sse_events(response, self.name):
                if event is None:  # data: [DONE], which /infill does not send but a proxy might
                    return
                text = event.get("content", "")
                if not isinstance(text, str):
                    raise BackendError(f"{self.name}: unexpected stream event")
                if text:
                    yield text
                if event.get("stop"):
                    return
        raise BackendError(f"{self.name}: stream ended before stop")

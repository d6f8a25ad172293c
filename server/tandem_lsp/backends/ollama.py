"""Ollama backend: raw FIM prompts on /api/generate, chat templates on /api/chat, NDJSON streaming.

Thinking is turned off and the model is kept loaded (keep_alive) so that every keystroke is cheap.
With no model configured, the first model Ollama lists is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


from tandem_lsp.backends._stream import HttpBackend, check_event, get_json, open_stream, parse_json
from tandem_lsp.backends.base import BackendError
from tandem_lsp.completion.request import GenerationRequest

KEEP_ALIVE = "30m"


class OllamaBackend(HttpBackend):
    name = "ollama"
    default_endpoint = "http://127.0.0.1:11434"

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

    async def _model(self, req: GenerationRequest) -> str:
        if model := req.model or self.model:
            return model
        models = await self.list_models()
        if not models:
            raise BackendError(f"{self.name}: no model installed")
        self.model = models[0]
        return self.model

    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        chat = req.messages is not None
        body = {
            "model": await self._model(req),
            "stream": True,
            "think": False,
            "keep_alive": KEEP_ALIVE,
            "options": {"num_predict": req.max_tokens, "temperature": req.temperature, "stop": req.stop},
        }
        body |= {"messages": req.messages} if chat else {"prompt": req.prompt, "raw": True}
        url = f"{self.endpoint}/api/chat" if chat else f"{self.endpoint}/api/generate"
        async with open_stream(self.client, self.name, "POST", url, body) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = check_event(parse_json(line, self.name), self.name)
                try:
                    text = event["message"]["content"] if chat else event["response"]
                except (KeyError, TypeError):
                    raise BackendError(f"{self.name}: unexpected stream event") from None
                if text:
                    yield text
                if event.get("done"):
                    return
        raise BackendError(f"{self.name}: stream ended before done")

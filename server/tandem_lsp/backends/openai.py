"""OpenAI-compatible backend (LM Studio, vLLM, llama-server's /v1): streaming /completions and /chat/completions.

The raw FIM prompt goes to /completions without a `suffix` field (LM Studio does not support it); a chat
template (req.messages) goes to /chat/completions. `endpoint` includes the /v1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


from tandem_lsp.backends._stream import HttpBackend, get_json, open_stream, sse_events
from tandem_lsp.backends.base import BackendError
from tandem_lsp.completion.request import GenerationRequest


class OpenAIBackend(HttpBackend):
    name = "openai"
    default_endpoint = "http://127.0.0.1:1234/v1"

    async def list_models(self, timeout: float = 2.0) -> list[str]:
        data = await get_json(self.client, self.name, f"{self.endpoint}/models", timeout)
        try:
            return [str(m["id"]) for m in data["data"]]
        except (KeyError, TypeError):
            raise BackendError(f"{self.name}: unexpected /models answer") from None

    async def health(self, timeout: float = 1.0) -> bool:
        try:
            await self.list_models(timeout)
        except BackendError:
            return False
        return True

    async def stream(self, req: GenerationRequest) -> AsyncIterator[str]:
        chat = req.messages is not None
        body = {
            "model": req.model or self.model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "stop": req.stop,
            "stream": True,
        }
        if body["model"] is None:
            del body["model"]  # the server uses its loaded model
        body |= {"messages": req.messages} if chat else {"prompt": req.prompt}
        url = f"{self.endpoint}/chat/completions" if chat else f"{self.endpoint}/completions"
        async with open_stream(self.client, self.name, "POST", url, body) as response:
            async for event in sse_events(response, self.name):
                if event is None:  # data: [DONE]
                    return
                for choice in event.get("choices") or ():  # a usage-only chunk has no choices
                    try:
                        text = (choice["delta"].get("content") if chat else choice["text"]) or ""
                    except (KeyError, TypeError, AttributeError):
                        raise BackendError(f"{self.name}: unexpected stream event") from None
                    if text:
                        yield text
        raise BackendError(f"{self.name}: stream ended before [DONE]")

"""The pipeline's view of a timeout: a model server that says nothing within local.timeoutMs is reported
unavailable; a model inside the process (the embedded one) that is still reading a new prompt is only slow."""

from __future__ import annotations

import asyncio

import pytest

from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.completion.pipeline import CompletionEngine
from tandem_lsp.completion.request import CompletionRequest
from tandem_lsp.config import parse_settings


class Silent:
    """A backend that never sends a token (reading a long prompt, or hung)."""

    name, endpoint, model = "silent", "nowhere", "m"

    def __init__(self, in_process: bool):
        self.in_process = in_process
        self.calls = 0

    async def stream(self, req):
        self.calls += 1
        await asyncio.sleep(3600)
        yield ""  # pragma: no cover

    async def aclose(self):
        pass


@pytest.mark.parametrize("in_process, state, messages", [(True, "slow", 0), (False, "down", 1)])
async def test_a_silent_model_is_slow_in_process_and_down_out_of_it(in_process, state, messages):
    settings, problems = parse_settings({"local": {"timeoutMs": 150}, "completion": {"debounceMs": 0}})
    assert not problems
    seen: list[str] = []
    model = LocalModel(settings.local, on_status=lambda status, message: message and seen.append(message))
    backend = Silent(in_process)
    model._backend, model._ready = backend, True
    model.status = model.status.__class__(state="ready", backend="silent", endpoint="nowhere", model="m")
    engine = CompletionEngine(settings=settings, model=model, prefetch_enabled=False)
    text = "def add(a, b):\n    \n"
    req = CompletionRequest(uri="file:///a.py", text=text, offset=len("def add(a, b):\n    "), invoked=True)
    assert await asyncio.wait_for(engine.complete(req), 5) is None  # answered (with nothing), not hung
    await asyncio.sleep(0.05)
    assert backend.calls == 1
    assert model.status.state == state
    assert len([m for m in seen if "unavailable" in m]) == messages
    await engine.aclose()

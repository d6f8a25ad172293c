"""Runs one command on the right tier: route, gate, call, account, fall back.

    router.decide -> (cloud) privacy gate -> budget -> Claude, streamed -> ledger
                  -> (local, or any cloud failure) the local model, streamed -> ledger

Commands build their prompt as a system text plus ``Part``s (file excerpts carry their URI, so
the privacy gate can leave out never-send files and redact secrets); the runner does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tandem_lsp.backends.base import BackendError
from tandem_lsp.backends.manager import LocalModel
from tandem_lsp.backends.types import GenerationRequest
from tandem_lsp.config import Settings
from tandem_lsp.model_files import RECOMMENDED
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the first command runs: the server starts without them
    from tandem_lsp.ledger import Ledger
    from tandem_lsp.privacy import PrivacyGate
    from tandem_lsp.router import CircuitBreaker, CloudState

log = logging.getLogger(__name__)

CLOUD_MAX_TOKENS = 2048
LOCAL_MAX_TOKENS = 768
CLOUD_ESTIMATE_USD = 0.05  # reserved against the daily budget before a call; the ledger records the real cost


@dataclass(frozen=True)
class Part:
    """A piece of the user message: free text (uri None) or an excerpt of a file."""

    text: str
    uri: str | None = None
    title: str = ""  # e.g. "calc.py lines 10-30", shown above a file excerpt


@dataclass
class CommandResult:
    markdown: str
    tier: str
    model: str
    cost_usd: float = 0.0
    fallback_reason: str | None = None
    route: dict | None = None
    extra: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        out = {
            "markdown": self.markdown,
            "tier": self.tier,
            "model": self.model,
            "costUsd": round(self.cost_usd, 6),
            "fallbackReason": self.fallback_reason,
        }
        if self.route is not None:
            out["route"] = self.route
        return {**out, **self.extra}


@dataclass
class Runner:
    settings: Callable[[], Settings]
    model: LocalModel
    ledger: Ledger
    workspace_root: Callable[[], str | None] = lambda: None
    breaker: CircuitBreaker = field(default_factory=lambda: _new_breaker())
    cloud_factory: Callable[..., object] | None = None  # builds the cloud backend; default AnthropicBackend
    redacted: int = field(default=0, init=False)  # secrets redacted before cloud calls, since start
    blocked_files: int = field(default=0, init=False)  # never-send files left out, since start
    _cloud_client: object | None = field(default=None, init=False, repr=False)
    _cloud_key: tuple | None = field(default=None, init=False, repr=False)
    _rejected: tuple | None = field(default=None, init=False, repr=False)  # the key + settings the cloud refused

    def _auth_reason(self, cs) -> str | None:
        """Why the cloud is not tried: it refused this very key with these settings (401/403). Waiting does
        not fix that, so the key is not sent again until it or the cloud settings change."""
        if self._rejected is None or self._rejected != _client_key(cs):
            return None
        return (f"the cloud rejected the API key in {cs.api_key_env} (authentication error); commands stay "
                "local until the key or the cloud settings change")

    def cloud_state(self) -> CloudState:
        from tandem_lsp.router import CloudState

        cs = self.settings().cloud
        return CloudState(
            enabled=cs.enabled,
            has_key=bool(os.environ.get(cs.api_key_env)),
            key_env=cs.api_key_env,
            over_budget=not self.ledger.within_budget(cs.daily_budget_usd, CLOUD_ESTIMATE_USD),
            budget_usd=cs.daily_budget_usd,
            breaker_reason=self.breaker.open_reason() or self._auth_reason(cs),
            local_available=self.model.status.state != "down",
        )

    async def run(
        self,
        task: str,
        *,
        system: str,
        parts: list[Part],
        prompt: str = "",
        on_text: Callable[[str], None] | None = None,
    ) -> CommandResult:
        context_chars = sum(len(p.text) for p in parts)
        files = len({p.uri for p in parts if p.uri})
        from tandem_lsp.router import decide

        decision = decide(task, prompt=prompt, context_chars=context_chars, files=max(files, 1), cloud=self.cloud_state())
        route = {"tier": decision.tier, "reason": decision.reason}
        fallback = decision.fallback_reason
        if decision.tier == "cloud":
            try:
                return await self._cloud(task, system, parts, on_text, route)
            except CloudFailure as failure:
                fallback = failure.reason
        result = await self._local(task, system, parts, on_text, route, fallback)
        return result

    # -- tiers --------------------------------------------------------------------------------
    async def _cloud(self, task, system, parts, on_text, route) -> CommandResult:
        settings = self.settings()
        from tandem_lsp.privacy import PrivacyGate

        gate = PrivacyGate(settings.privacy, self.workspace_root())
        user = render(parts, gate)
        system = gate.scrub(system)
        self.redacted += sum(gate.redactions.values())
        self.blocked_files += gate.blocked_files
        cloud = await self._cloud_backend(settings)
        t0 = time.monotonic()
        try:
            result = await cloud.complete(
                system=system, messages=[{"role": "user", "content": user}], max_tokens=CLOUD_MAX_TOKENS, on_text=on_text
            )
        except Exception as exc:  # CloudError, or anything unexpected: fall back locally
            kind = getattr(exc, "kind", "offline")
            if kind == "auth":
                self._rejected = _client_key(settings.cloud)
            elif kind != "cancelled":
                self.breaker.record_failure(kind, getattr(exc, "retry_after", None))
            self.ledger.record(tier="cloud", task=task, model=settings.cloud.model, input_tokens=0, output_tokens=0,
                               latency_ms=(time.monotonic() - t0) * 1000, fallback_reason=str(exc), ok=False)
            raise CloudFailure(f"cloud unavailable ({kind}): {exc}") from exc
        self.breaker.record_success()
        self._rejected = None
        cost = self.ledger.record(
            tier="cloud", task=task, model=result.model or settings.cloud.model,
            input_tokens=result.input_tokens, output_tokens=result.output_tokens, latency_ms=result.latency_ms,
            cache_write_tokens=result.cache_write_tokens, cache_read_tokens=result.cache_read_tokens,
        )
        return CommandResult(result.text, "cloud", result.model or settings.cloud.model, cost, None, route)

    async def _cloud_backend(self, settings: Settings):
        """The cloud backend for these settings, kept between calls. Built in a worker thread the first
        time: importing the SDK takes over a second, and typing must not wait for it."""
        cs = settings.cloud
        api_key = os.environ.get(cs.api_key_env, "")
        key = _client_key(cs)
        if self._cloud_client is None or self._cloud_key != key:
            if self._cloud_client is not None:
                with contextlib.suppress(Exception):
                    await self._cloud_client.aclose()
            if self.cloud_factory is not None:
                self._cloud_client = self.cloud_factory(api_key=api_key, settings=cs)
            else:
                from tandem_lsp.backends.anthropic import AnthropicBackend

                self._cloud_client = await asyncio.to_thread(
                    AnthropicBackend, api_key=api_key, model=cs.model, base_url=cs.base_url, timeout_ms=cs.timeout_ms
                )
            self._cloud_key = key
        return self._cloud_client

    async def aclose(self) -> None:
        if self._cloud_client is not None:
            with contextlib.suppress(Exception):
                await self._cloud_client.aclose()
            self._cloud_client = None
        self.ledger.close()

    async def _local(self, task, system, parts, on_text, route, fallback) -> CommandResult:
        try:
            text, model = await self.local_text(task, system, render(parts, None), on_text, fallback)
        except LocalFailure as exc:
            reason = "; ".join(r for r in (fallback, str(exc)) if r)
            markdown = f"**Tandem could not answer:** {reason}."
            if "no local model" in str(exc):
                markdown += ("\n\nStart one (`ollama serve`, `llama-server --fim-qwen-1.5b-default`, or LM Studio's "
                             f"server), or run one inside Tandem with `tandem-lsp models pull {RECOMMENDED}`, "
                             "then check with `tandem-lsp doctor`.")
            return CommandResult(markdown, "local", self.model.status.model or "none", 0.0, reason, route)
        return CommandResult(text or "_The local model returned nothing._", "local", model, 0.0, fallback, route)

    async def local_text(self, task: str, system: str, user: str, on_text=None, fallback: str | None = None,
                         max_tokens: int = LOCAL_MAX_TOKENS) -> tuple[str, str]:
        """(reply, model) from the local model's chat endpoint, recorded in the ledger. Raises LocalFailure."""
        backend = await self.model.ensure()
        if backend is None:
            raise LocalFailure("no local model is running")
        model = getattr(backend, "model", None) or backend.name
        try:
            text, latency_ms = await local_chat(backend, system, user, self.settings().local.timeout_ms, max_tokens, on_text)
        except LocalFailure as exc:
            raise LocalFailure(f"the local model failed: {exc}") from exc
        self.ledger.record(tier="local", task=task, model=model, input_tokens=_tokens(system) + _tokens(user),
                           output_tokens=_tokens(text), latency_ms=latency_ms, fallback_reason=fallback)
        return text, model


def _client_key(cs) -> tuple:
    """What a cloud client is built from: a hash of the API key (never the key itself) and the settings."""
    return (hash(os.environ.get(cs.api_key_env, "")), cs.api_key_env, cs.model, cs.base_url, cs.timeout_ms)


def _new_breaker():
    from tandem_lsp.router import CircuitBreaker

    return CircuitBreaker()


class CloudFailure(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


async def local_chat(backend, system: str, user: str, timeout_ms: int, max_tokens: int,
                     on_text: Callable[[str], None] | None = None) -> tuple[str, float]:
    """Ask the local model's chat endpoint; commands get a longer time limit than completions."""
    request = GenerationRequest(
        prefix="", suffix="", prompt="", max_tokens=max_tokens, temperature=0.2,
        model=getattr(backend, "model", None),
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        timeout_ms=timeout_ms,
    )
    t0 = time.monotonic()
    text = ""
    try:
        async with asyncio.timeout(max(30.0, timeout_ms / 1000 * 12)):
            stream = backend.stream(request)
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    text += chunk
                    if on_text is not None:
                        on_text(chunk)
    except (BackendError, TimeoutError) as exc:
        text += f"\n\n_(the local model stopped: {exc})_" if text else ""
        if not text:
            raise LocalFailure(str(exc) or "timed out") from exc
    return text.strip(), (time.monotonic() - t0) * 1000


class LocalFailure(Exception):
    pass


def render(parts: list[Part], gate: PrivacyGate | None) -> str:
    """The user message: parts in order; with a gate, never-send files are left out and secrets redacted."""
    out = []
    for part in parts:
        text = part.text
        if gate is not None:
            if part.uri:
                filtered = gate.filter(part.uri, text)
                if filtered is None:
                    out.append(f"[{part.title or 'a file'} left out: it matches privacy.neverSendToCloud]")
                    continue
                text = filtered
            else:
                text = gate.scrub(text)
        out.append(f"{part.title}\n```\n{text}\n```" if part.title else text)
    return "\n\n".join(out)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)

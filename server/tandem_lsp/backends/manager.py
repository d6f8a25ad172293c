"""The local model in use: which server, which model, what it can do, and whether it is healthy.

Resolves ``local.backend`` (probing the usual ports for ``auto``), picks the model, learns the server's
limits and speed once (``backend.learn()``: the pipeline sizes prompts from them), owns the one shared
``httpx.AsyncClient``, and turns failures into a state the user can see:
the first failure is reported once, later ones are quiet, and recovery is reported when it happens.

``embedded`` runs a GGUF file in-process (``local.modelPath`` or the default model file); ``auto``
falls back to it when no server answers and a model file is present. The model loads in the
background: ``ensure()`` answers None (status "starting", "loading embedded model ...") until it is in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from typing import TYPE_CHECKING

from tandem_lsp.backends.base import BackendError, LocalBackend
from tandem_lsp.config import LocalSettings
from tandem_lsp.model_files import RECOMMENDED

if TYPE_CHECKING:
    import httpx

    from tandem_lsp.backends.embedded import EmbeddedBackend

log = logging.getLogger(__name__)

REPROBE_INTERVAL_S = 2.0
LEARN_TIMEOUT_S = 30.0  # the most a first request waits for the server's limits and speed to be measured
SLOW_FACTOR = 0.8  # a completion slower than this share of local.timeoutMs counts as slow


@dataclass(frozen=True)
class ModelStatus:
    state: str = "starting"  # starting | ready | slow | down
    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    template: str | None = None
    detail: str = ""
    server: dict | None = None  # what was learned of the server: context, reading and writing speed

    def as_json(self) -> dict:
        return {
            "state": self.state,
            "backend": self.backend,
            "endpoint": self.endpoint,
            "model": self.model,
            "template": self.template,
            "detail": self.detail,
            "server": self.server,
        }


class LocalModel:
    """Resolves and watches the local model server for the completion pipeline and commands."""

    def __init__(self, settings: LocalSettings, on_status: Callable[[ModelStatus, str | None], None] | None = None):
        self.settings = settings
        self._on_status = on_status or (lambda status, message: None)
        self._client: httpx.AsyncClient | None = None
        self._backend: LocalBackend | None = None
        self._ready = False  # the backend's model is chosen and its server learned
        self._learning: asyncio.Future | None = None
        self._profiles: dict[tuple[str, str], object] = {}  # (kind, endpoint) -> its ServerProfile
        self._last_probe = 0.0
        self._lock = asyncio.Lock()
        self._embedded: EmbeddedBackend | None = None  # kept across re-probes: loading a model is not free
        self._embedded_failed: dict[Path, tuple | None] = {}  # model file -> its signature when loading failed
        self.status = ModelStatus()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx  # imported on first use: the server answers `initialize` without it

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=1.0),
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
                trust_env=False,  # a local model is on this machine: never route it through a proxy
            )
        return self._client

    def configure(self, settings: LocalSettings) -> None:
        """New settings: forget the resolved server so the next use resolves it again."""
        if settings != self.settings:
            self.settings = settings
            self._forget()
            self._profiles.clear()
            self._last_probe = 0.0
            self._embedded_failed.clear()
            embedded = self._embedded
            if embedded is not None and (settings.backend not in ("auto", "embedded")
                                         or (settings.model_path is not None
                                             and Path(settings.model_path).expanduser() != embedded.path)):
                self._drop_embedded()

    def _forget(self) -> None:
        self._backend = None
        self._ready = False

    def current(self) -> LocalBackend | None:
        """The backend in use when it is ready now (no probing, no waiting)."""
        return self._backend if self._ready else None

    async def ensure(self) -> LocalBackend | None:
        """The backend to use now, or None when no local model answers (or it is still loading)."""
        if self._backend is not None and self._ready:
            return self._backend
        if self._backend is not None and not _loaded(self._backend):
            return None  # the embedded model is still loading
        async with self._lock:
            if self._backend is None:
                if time.monotonic() - self._last_probe < REPROBE_INTERVAL_S:
                    return None
                self._last_probe = time.monotonic()
                self._backend = await self._resolve()
                if self._backend is None:
                    return None
                profile = getattr(self._backend, "profile", None)
                if profile is not None:  # a server measured before (a re-probe after a failure) is not measured again
                    self._backend.profile = self._profiles.setdefault((self._backend.name, self._backend.endpoint), profile)
            backend = self._backend
            if not _loaded(backend):
                self._start_loading(backend)  # type: ignore[arg-type]
                return None
            if backend is self._embedded:
                self._mark_loaded(self._embedded)  # the load task's callback may not have run yet
            if not self._ready:
                model = self.settings.model or await self._first_model(backend)
                backend.model = model
                await self._learn(backend)
                if self._backend is not backend:
                    return None  # a settings change while the server was measured
                self._ready = True
                profile = getattr(backend, "profile", None)
                log.info("local model: %s at %s, model %s%s", backend.name, backend.endpoint,
                         model or "(server default)", describe_speed(profile))
                self._set_status(
                    replace(self.status, backend=backend.name, endpoint=backend.endpoint, model=model,
                            server=profile.as_json() if profile is not None else None),
                    None,
                )
            return backend

    async def _learn(self, backend: LocalBackend) -> None:
        """``backend.learn()`` once, shielded from the cancellation of the request that waits for it."""
        profile = getattr(backend, "profile", None)
        if profile is None or profile.learned:
            return
        if self._learning is None or self._learning.done():
            async def learn() -> None:
                try:
                    await backend.learn()
                except Exception:  # noqa: BLE001 - a server that cannot be measured is still used
                    log.debug("learning the model server failed", exc_info=True)
                profile.learned = True

            self._learning = asyncio.ensure_future(learn())
        try:
            await asyncio.wait_for(asyncio.shield(self._learning), LEARN_TIMEOUT_S)
        except TimeoutError:
            log.info("measuring the model server took over %.0f s; using the default prompt bounds", LEARN_TIMEOUT_S)
            profile.learned = True

    def note_template(self, name: str) -> None:
        """The pipeline picked this FIM template (shown in the status)."""
        if self.status.template != name:
            self._set_status(replace(self.status, template=name), None)

    async def _resolve(self) -> LocalBackend | None:
        from tandem_lsp.backends.auto import probe
        from tandem_lsp.backends.registry import make_backend

        kind = self.settings.backend
        if kind == "embedded":
            path = self._model_file()
            if path is None:
                self.report_failure(
                    "local.backend is embedded but there is no model file: run "
                    f"`tandem-lsp models pull {RECOMMENDED}`, or set local.modelPath to a GGUF file",
                    no_model=True,
                )
                return None
            return self._embedded_backend(path)
        if kind == "auto":
            backend = await probe(self.client)
            if backend is None:
                path = self._model_file()
                if path is not None and path.is_file():
                    return self._embedded_backend(path)
                self.report_failure(
                    "no local model server found (tried LM Studio :1234, Ollama :11434, llama.cpp :8080); "
                    "start one, e.g. `ollama serve` or `llama-server --fim-qwen-1.5b-default`, or run a model "
                    f"inside Tandem: `tandem-lsp models pull {RECOMMENDED}`"
                    + (f" (or put a GGUF model at {path})" if path is not None else ""),
                    no_model=True,
                )
            return backend
        return make_backend(kind, self.client, self.settings.endpoint)

    # -- the embedded model ---------------------------------------------------------------------
    def _model_file(self) -> Path | None:
        """``local.modelPath``, else the default model file (None when there is none)."""
        if self.settings.model_path:
            return Path(self.settings.model_path).expanduser()
        try:
            from tandem_lsp.model_files import default_model_path
        except ImportError:
            return None
        try:
            path = default_model_path()
        except Exception:  # a broken default must not stop completions from servers
            log.debug("default_model_path failed", exc_info=True)
            return None
        return Path(path) if path is not None else None

    def _embedded_backend(self, path: Path) -> EmbeddedBackend | None:
        """The (kept) embedded backend for ``path``; None, quietly, while a failed file is unchanged."""
        if path in self._embedded_failed:
            if self._embedded_failed[path] == _signature(path):
                return None  # already reported; retried when the file changes
            del self._embedded_failed[path]
        current = self._embedded
        if current is not None and current.path == path and current.state in ("new", "loading", "ready"):
            return current
        if current is not None:
            self._drop_embedded()
        from tandem_lsp.backends.embedded import EmbeddedBackend

        self._embedded = EmbeddedBackend(path)
        return self._embedded

    def _start_loading(self, backend: EmbeddedBackend) -> None:
        if backend.state != "new":
            return
        task = backend.start_loading()
        self._set_status(
            ModelStatus(state="starting", backend=backend.name, endpoint=backend.endpoint, model=backend.model,
                        detail=f"loading embedded model {backend.path.name}…"),
            f"Tandem: loading the embedded model {backend.path.name}…",
        )
        task.add_done_callback(lambda t: self._finished_loading(backend, t))

    def _mark_loaded(self, backend: EmbeddedBackend) -> None:
        """Status "ready" (once), from the load task's callback or from ensure(), whichever sees it first."""
        if self.status.state == "starting" and self.status.endpoint == backend.endpoint:
            self._set_status(
                ModelStatus(state="ready", backend=backend.name, endpoint=backend.endpoint, model=backend.model,
                            detail=f"loaded in {backend.load_ms or 0:.0f} ms"),
                f"Tandem: embedded model {backend.path.name} loaded",
            )

    def _finished_loading(self, backend: EmbeddedBackend, task: asyncio.Future) -> None:
        if self._embedded is not backend:
            return  # superseded by a settings change
        error = BackendError("embedded: loading was cancelled") if task.cancelled() else task.exception()
        if error is None:
            self._mark_loaded(backend)
            return
        self._embedded_failed[backend.path] = _signature(backend.path)
        self._embedded = None
        if self._backend is backend:
            self._forget()
        self.report_failure(str(error))

    def _drop_embedded(self) -> None:
        old, self._embedded = self._embedded, None
        if old is not None:
            try:
                asyncio.get_running_loop().create_task(old.aclose())
            except RuntimeError:  # no running loop: the worker thread is left to finish on its own
                pass

    async def _first_model(self, backend: LocalBackend) -> str | None:
        try:
            async with asyncio.timeout(2.0):
                models = await backend.list_models()
        except (BackendError, TimeoutError, OSError) as exc:
            log.debug("listing models failed: %s", exc)
            return None
        return models[0] if models else None

    def report_success(self, latency_ms: float) -> None:
        slow = latency_ms > self.settings.timeout_ms * SLOW_FACTOR
        state = "slow" if slow else "ready"
        if state != self.status.state:
            message = None
            if self.status.state == "down":
                message = f"Tandem: the local model is back ({self.status.backend} at {self.status.endpoint})"
            self._set_status(replace(self.status, state=state, detail=f"{latency_ms:.0f} ms"), message)

    def report_failure(self, reason: str, *, no_model: bool = False) -> None:
        """Log the first failure of a run of failures; stay quiet until the model is back. ``no_model``:
        no model was found at all, so the status names none (not the one used before a settings change)."""
        if self.status.state != "down":
            base = ModelStatus() if no_model else self.status
            self._set_status(
                replace(base, state="down", detail=reason),
                f"Tandem: local model unavailable: {reason}. Ghost text resumes when it answers again.",
            )
        else:
            log.debug("local model still down: %s", reason)
        if self.settings.backend == "auto":
            self._forget()  # probe again (rate-limited) on the next completion

    def _set_status(self, status: ModelStatus, message: str | None) -> None:
        self.status = status
        if message:  # a model that is down is worth a warning; loading and ready are news
            (log.warning if status.state == "down" else log.info)("%s", message)
        self._on_status(status, message)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            await embedded.aclose()


def describe_speed(profile) -> str:
    """", reads N tokens/s, writes M tokens/s, context C" for what is known of a server."""
    if profile is None:
        return ""
    parts = []
    if profile.read_tps:
        parts.append(f"reads {profile.read_tps:.0f} tokens/s")
    if profile.write_tps:
        parts.append(f"writes {profile.write_tps:.0f} tokens/s")
    if profile.n_ctx:
        parts.append(f"context {profile.n_ctx}")
    return (", " + ", ".join(parts)) if parts else ""


def _loaded(backend: LocalBackend) -> bool:
    """False for an embedded backend whose model is not loaded (yet); True for servers."""
    return getattr(backend, "state", "ready") == "ready"


def _signature(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)

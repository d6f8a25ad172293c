"""pygls wiring: thin handlers that convert LSP messages and hand them to the core.

No logic lives here: settings parsing is in ``config``, completions in ``completion.pipeline``,
the local model in ``backends.manager``, conversions in ``lsp.convert``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError
from pygls.lsp.server import LanguageServer

from tandem_lsp import __version__
from tandem_lsp.backends.manager import LocalModel, ModelStatus
from tandem_lsp.completion.pipeline import CompletionEngine
from tandem_lsp.commands import Sources
from tandem_lsp.commands.runner import Runner
from tandem_lsp.config import DEFAULTS, SettingsReporter, parse_settings
from tandem_lsp.lsp import commands
from tandem_lsp.lsp.protocol import TandemProtocol
from tandem_lsp.lsp.convert import ACCEPT_COMMAND, lsp_completion_list, lsp_inline_items, lsp_request

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "tandem/status"


class TandemServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tandem-lsp", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=TandemProtocol)
        self.settings = DEFAULTS
        self.reporter = SettingsReporter()
        self.model = LocalModel(DEFAULTS.local, on_status=self.report_model_status)
        self.engine = CompletionEngine(DEFAULTS, self.model, open_documents=self.open_documents)
        self.diagnostics: dict[str, list[dict]] = {}
        self.command_tasks: dict[object, asyncio.Task] = {}
        self._runner: Runner | None = None
        self._background: set[asyncio.Task] = set()

    @property
    def runner(self) -> Runner:
        """The command runner and its ledger, opened on first use (not at start-up)."""
        if self._runner is None:
            from tandem_lsp.ledger import Ledger

            self._runner = Runner(settings=lambda: self.settings, model=self.model, ledger=Ledger(),
                                  workspace_root=lambda: self.workspace.root_path)
        return self._runner

    def sources(self) -> Sources:
        """What commands read: the open documents as they are now (a snapshot, safe to read from the worker
        thread that builds a prompt), then the disk, off the event loop (``commands.Sources``)."""
        texts = {uri: doc.source for uri, doc in self.workspace.text_documents.items()}
        return Sources(open_text=lambda uri: texts.get(unquote(uri)), diagnostics=dict(self.diagnostics),
                       root=self.workspace.root_path)

    def remember_diagnostics(self, uri: str, diagnostics: list[types.Diagnostic]) -> None:
        """Diagnostics seen in code-action requests, for explainFailure without a failure text."""
        if diagnostics:
            self.diagnostics[uri] = [
                {"line": d.range.start.line, "message": d.message, "source": d.source} for d in diagnostics
            ]

    def notify_user(self, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))

    def stats(self) -> dict:
        cache = self.engine.cache
        return {
            **self.runner.ledger.stats(),
            "cache": {"hits": cache.hits, "misses": cache.misses, "entries": len(cache)},
            "completions": self.engine.stats.as_json(),
            "localModel": self.model.status.as_json(),
            "privacy": {"redacted": self.runner.redacted, "blockedFiles": self.runner.blocked_files},
        }

    # -- services for handlers ----------------------------------------------------------------
    def apply_settings(self, raw: object) -> None:
        """Parse the ``tandem`` settings tree; report each new problem once; defaults stand in."""
        self.settings, problems = parse_settings(raw)
        self.engine.configure(self.settings)
        for problem in self.reporter.new_problems(problems):
            log.warning("settings: %s", problem)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=f"Tandem settings: {problem}")
            )

    def report_model_status(self, status: ModelStatus, message: str | None) -> None:
        if message:
            kind = types.MessageType.Warning if status.state == "down" else types.MessageType.Info
            self.window_log_message(types.LogMessageParams(type=kind, message=message))
        self.protocol.notify(STATUS_NOTIFICATION, status.as_json())

    def open_documents(self):
        return ((uri, doc.source) for uri, doc in self.workspace.text_documents.items())

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def position_encoding(self) -> str:
        return self.workspace.position_encoding or types.PositionEncodingKind.Utf16

    # -- the JSON-RPC contract (the protocol layer does the work: lsp.protocol) --------------------
    def report_server_error(self, error: Exception, source) -> None:
        """JSON that does not parse gets a ParseError answer; a message that could not be sent is only
        logged (showing it would be one more message to send)."""
        if self.protocol.report_unreadable(error):
            return
        if source is JsonRpcInternalError:
            log.error("could not send a message: %s", error)
            return
        super().report_server_error(error, source)

    def start_io(self, stdin=None, stdout=None) -> None:
        super().start_io(stdin, stdout)
        if self.protocol.exit_code:  # pygls swallows exit's SystemExit; LSP: 1 when exit came without shutdown
            raise SystemExit(self.protocol.exit_code)


def never_raise(default=None):
    """Every request gets an answer: a handler's unexpected error is logged and answered with ``default``."""

    def wrap(handler):
        @functools.wraps(handler)
        async def safe(ls: TandemServer, params):
            try:
                return await handler(ls, params)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", handler.__name__)
                return default() if callable(default) else default

        return safe

    return wrap


server = TandemServer()


@server.feature(types.INITIALIZE)
def initialize(ls: TandemServer, params: types.InitializeParams) -> None:
    ls.apply_settings(params.initialization_options)


@server.feature(types.INITIALIZED)
def initialized(ls: TandemServer, params: types.InitializedParams) -> None:
    ls.spawn(ls.model.ensure())  # find the local model now, so the first keystroke does not wait


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
@never_raise()
async def did_change_configuration(ls: TandemServer, params: types.DidChangeConfigurationParams) -> None:
    workspace_caps = ls.client_capabilities.workspace
    if workspace_caps is not None and workspace_caps.configuration:
        items = [types.ConfigurationItem(section="tandem")]
        result = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
        ls.apply_settings(result[0] if result else None)
    else:
        ls.apply_settings(params.settings)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: TandemServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.engine.document_changed(params.text_document.uri, params.text_document.text)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: TandemServer, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.workspace.open_document(params.text_document.uri)
    if doc is None:  # not open: there was nothing to change
        return
    last = params.content_changes[-1] if params.content_changes else None
    line = last.range.start.line if isinstance(last, types.TextDocumentContentChangePartial) else None
    ls.engine.document_changed(doc.uri, doc.source, line)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: TandemServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.engine.document_closed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
@never_raise()
async def inline_completion(ls: TandemServer, params: types.InlineCompletionParams):
    doc = ls.workspace.open_document(params.text_document.uri)
    if doc is None:  # completions only in documents the editor opened (the disk is never read for one)
        return None
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    req = lsp_request(doc, params.position, ls.position_encoding, invoked=invoked)
    return lsp_inline_items(await ls.engine.complete(req), params.position)


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
@never_raise(default=lambda: types.CompletionList(is_incomplete=True, items=[]))
async def completion(ls: TandemServer, params: types.CompletionParams):
    doc = ls.workspace.open_document(params.text_document.uri)
    if doc is None:
        return types.CompletionList(is_incomplete=False, items=[])
    # editors send "Invoked" for ordinary typing too, so classic completion always debounces
    req = lsp_request(doc, params.position, ls.position_encoding, invoked=False)
    suggestion = await ls.engine.complete(req)
    return lsp_completion_list(suggestion, req, params.position, ls.position_encoding)


@server.command(ACCEPT_COMMAND)
def accept_suggestion(ls: TandemServer, *args) -> None:
    ls.engine.accepted(args[0] if args else {})


commands.register(server)


@server.feature(types.SHUTDOWN)
async def shutdown(ls: TandemServer, params: None) -> None:
    # side by side, so one that hangs or fails does not keep the other open (the protocol bounds the wait)
    closing = [ls.engine.aclose()] + ([ls._runner.aclose()] if ls._runner is not None else [])
    for failure in await asyncio.gather(*closing, return_exceptions=True):
        if isinstance(failure, Exception):
            log.warning("shutdown: %s", failure)

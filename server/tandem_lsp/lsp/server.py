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
from tandem_lsp.completion.acceptance import AcceptanceTracker
from tandem_lsp.completion.pipeline import CompletionEngine
from tandem_lsp.commands import Sources
from tandem_lsp.commands.runner import Runner
from tandem_lsp.config import DEFAULTS, ClientSettings, SettingsReporter, parse_settings, says_something
from tandem_lsp.lsp import commands
from tandem_lsp.lsp.protocol import TandemProtocol
from tandem_lsp.lsp.convert import (ACCEPT_COMMAND, ACCEPT_NEXT_EDIT, NEXT_EDIT_METHOD, NEXT_EDIT_SHOWN,
                                    lsp_completion_list, lsp_inline_items, lsp_next_edits, lsp_offset, lsp_request,
                                    markdown_documentation, next_edit_id, next_edit_params)
from tandem_lsp.next_edit.pipeline import NextEditEngine

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "tandem/status"
CONFIGURATION_WAIT_S = 10.0  # for the answer to workspace/configuration


class TandemServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tandem-lsp", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=TandemProtocol)
        self.settings = DEFAULTS
        self.client_settings = ClientSettings()
        self.reporter = SettingsReporter()
        self._configurations = 0  # didChangeConfiguration notifications so far (a newer one wins)
        self.model = LocalModel(DEFAULTS.local, on_status=self.report_model_status)
        self.engine = CompletionEngine(DEFAULTS, self.model, open_documents=self.open_documents)
        self.next_edits = NextEditEngine(DEFAULTS, self.model, completion_busy=self.engine.busy,
                                         record=self.record_local_call)
        self.engine.on_model_call = self.next_edits.yield_to_completion
        self.acceptance = AcceptanceTracker()
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

    def record_local_call(self, **call) -> None:
        """A next-edit call, in the ledger with the other local calls."""
        self.runner.ledger.record(**call)

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
            "nextEdit": self.next_edits.stats.as_json(),
            "localModel": self.model.status.as_json(),
            "privacy": {"redacted": self.runner.redacted, "blockedFiles": self.runner.blocked_files},
        }

    # -- services for handlers ----------------------------------------------------------------
    def apply_settings(self) -> None:
        """Parse the settings the client gave (``config.ClientSettings``); report each new problem once;
        defaults stand in."""
        self.settings, problems = parse_settings(*self.client_settings.layers)
        self.engine.configure(self.settings)
        self.next_edits.configure(self.settings)
        for problem in self.reporter.new_problems(problems):
            log.warning("settings: %s", problem)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=f"Tandem settings: {problem}")
            )

    async def configuration_changed(self, pushed: object) -> None:
        """``didChangeConfiguration``: settings pushed in the notification are used as they come; only when
        it carries none, and the client can answer, are they pulled with ``workspace/configuration``. A
        null or empty configuration (Helix and eglot answer ``[null]``) changes nothing."""
        self._configurations += 1
        mine = self._configurations
        raw = pushed
        if not says_something(pushed) and self.can_pull_configuration():
            raw = await self.pull_configuration()
            if mine != self._configurations:  # a newer notification came while waiting: it wins
                return
        if self.client_settings.update(raw):
            self.apply_settings()

    def can_pull_configuration(self) -> bool:
        workspace_caps = self.client_capabilities.workspace
        return workspace_caps is not None and bool(workspace_caps.configuration)

    async def pull_configuration(self) -> object:
        """The client's ``tandem`` section, or None when it has none (or does not answer in time)."""
        items = [types.ConfigurationItem(section="tandem")]
        try:
            result = await asyncio.wait_for(
                self.workspace_configuration_async(types.ConfigurationParams(items=items)), CONFIGURATION_WAIT_S)
        except asyncio.TimeoutError:
            log.warning("workspace/configuration: no answer within %s s", CONFIGURATION_WAIT_S)
            return None
        return result[0] if result else None

    # acceptances, from the document or the item's command, counted once (completion.acceptance)
    def suggestion_shown(self, req, suggestion) -> int | None:
        if suggestion is None:
            return None
        return self.acceptance.shown(req.uri, req.text, req.offset, suggestion.text, suggestion.source)

    def document_edited(self, uri: str, text: str) -> None:
        source = self.acceptance.changed(uri, text)
        if source is not None:
            self.engine.accepted({"source": source})

    def accept_command(self, info: object) -> None:
        if self.acceptance.command(info):
            self.engine.accepted(info if isinstance(info, dict) else {})

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
        self.protocol.end_at_exit = True  # a process of its own: exit ends it at once (lsp.protocol)
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
    ls.client_settings.initialize(params.initialization_options)
    ls.apply_settings()


@server.feature(types.INITIALIZED)
def initialized(ls: TandemServer, params: types.InitializedParams) -> None:
    ls.spawn(ls.model.ensure())  # find the local model now, so the first keystroke does not wait


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
@never_raise()
async def did_change_configuration(ls: TandemServer, params: types.DidChangeConfigurationParams) -> None:
    await ls.configuration_changed(params.settings)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: TandemServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.engine.document_changed(params.text_document.uri, params.text_document.text)
    ls.next_edits.document_opened(params.text_document.uri, params.text_document.text)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: TandemServer, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.workspace.open_document(params.text_document.uri)
    if doc is None:  # not open: there was nothing to change
        return
    last = params.content_changes[-1] if params.content_changes else None
    line = last.range.start.line if isinstance(last, types.TextDocumentContentChangePartial) else None
    ls.engine.document_changed(doc.uri, doc.source, line)
    ls.next_edits.document_changed(doc.uri, doc.source, line)
    ls.document_edited(doc.uri, doc.source)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: TandemServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.engine.document_closed(params.text_document.uri)
    ls.next_edits.document_closed(params.text_document.uri)
    ls.acceptance.closed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
@never_raise()
async def inline_completion(ls: TandemServer, params: types.InlineCompletionParams):
    doc = ls.workspace.open_document(params.text_document.uri)
    if doc is None:  # completions only in documents the editor opened (the disk is never read for one)
        return None
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    req = lsp_request(doc, params.position, ls.position_encoding, invoked=invoked)
    suggestion = await ls.engine.complete(req)
    return lsp_inline_items(suggestion, params.position, ls.suggestion_shown(req, suggestion))


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
@never_raise(default=lambda: types.CompletionList(is_incomplete=True, items=[]))
async def completion(ls: TandemServer, params: types.CompletionParams):
    doc = ls.workspace.open_document(params.text_document.uri)
    if doc is None:
        return types.CompletionList(is_incomplete=False, items=[])
    # editors send "Invoked" for ordinary typing too, so classic completion always debounces
    req = lsp_request(doc, params.position, ls.position_encoding, invoked=False)
    suggestion = await ls.engine.complete(req)
    return lsp_completion_list(suggestion, req, params.position, ls.position_encoding,
                               ls.suggestion_shown(req, suggestion),
                               markdown=markdown_documentation(ls.client_capabilities))


@server.feature(NEXT_EDIT_METHOD)
@never_raise(default=lambda: {"edits": []})
async def next_edit(ls: TandemServer, params):
    parsed = next_edit_params(params)
    doc = ls.workspace.open_document(parsed[0]) if parsed is not None else None
    if doc is None or (parsed[1] is not None and parsed[1] != doc.version):  # not open, or a stale version
        return {"edits": []}
    uri, version, text, encoding = doc.uri, doc.version, doc.source, ls.position_encoding
    found, ids = await ls.next_edits.suggest(uri, text, lsp_offset(text, parsed[2], encoding), doc.language_id or "",
                                             still_current=lambda: doc.version == version and doc.source is text)
    return lsp_next_edits(text, parsed[0], version, found, ids, encoding)


@server.feature(NEXT_EDIT_SHOWN)
def next_edit_shown(ls: TandemServer, params) -> None:
    ls.next_edits.shown(next_edit_id(params))


@server.command(ACCEPT_NEXT_EDIT)
def accept_next_edit(ls: TandemServer, *args) -> None:
    ls.next_edits.accepted(next_edit_id(args[0] if args else None))


@server.command(ACCEPT_COMMAND)
def accept_suggestion(ls: TandemServer, *args) -> None:
    ls.accept_command(args[0] if args else {})


commands.register(server)


@server.feature(types.SHUTDOWN)
async def shutdown(ls: TandemServer, params: None) -> None:
    # side by side, so one that hangs or fails does not keep the other open (the protocol bounds the wait)
    closing = [ls.engine.aclose(), ls.next_edits.aclose()] + ([ls._runner.aclose()] if ls._runner is not None else [])
    for failure in await asyncio.gather(*closing, return_exceptions=True):
        if isinstance(failure, Exception):
            log.warning("shutdown: %s", failure)

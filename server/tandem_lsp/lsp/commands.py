"""pygls wiring for the commands and code actions: progress, cancellation, showDocument.

Command handlers only convert and sequence: the prompt comes from ``commands.<name>.build``, the tier
and the call from ``commands.runner``. pygls keeps running an ``executeCommand`` coroutine after
``$/cancelRequest``, so each command runs as its own task, cancelled on ``$/cancelRequest`` or
``window/workDoneProgress/cancel``; a cancelled cloud stream closes its HTTP connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

from lsprotocol import types

from tandem_lsp.commands import ask, build_off_loop, code_actions, explain_failure, plan_refactor
from tandem_lsp.commands.runner import CommandResult, LocalFailure
from tandem_lsp.lsp.convert import lsp_lines_range
from tandem_lsp.lsp.protocol import COMMAND_REQUEST

log = logging.getLogger(__name__)

EXPLAIN_FAILURE, PLAN_REFACTOR, ASK, STATS, EXPLAIN_CODE = (
    "tandem.explainFailure", "tandem.planRefactor", "tandem.ask", "tandem.stats", "tandem.explainCode",
)
TITLES = {EXPLAIN_FAILURE: "Explaining the failure", PLAN_REFACTOR: "Planning the refactoring", ASK: "Tandem",
          EXPLAIN_CODE: "Explaining the code"}
REPORT_EVERY_S = 0.5


class Progress:
    """``$/progress`` for one command: the client's token, or one we create when it supports that."""

    def __init__(self, ls, token, title: str):
        self.ls, self.token, self.title = ls, token, title
        self.chars = 0
        self._last = 0.0

    @classmethod
    async def start(cls, ls, token, title: str) -> Progress:
        window = ls.client_capabilities.window
        if token is None and window is not None and window.work_done_progress:
            token = str(uuid.uuid4())
            try:
                await asyncio.wait_for(ls.work_done_progress.create_async(token), 5)
            except Exception:  # a client that refuses: no progress, the command still runs
                token = None
        progress = cls(ls, token, title)
        if token is not None:
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=True))
        return progress

    def text(self, chunk: str) -> None:
        self.chars += len(chunk)
        now = time.monotonic()
        if self.token is not None and now - self._last >= REPORT_EVERY_S:
            self._last = now
            self.ls.work_done_progress.report(self.token, types.WorkDoneProgressReport(message=f"{self.chars} characters"))

    def end(self, message: str) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))


def command_args(args: tuple) -> dict:
    return args[0] if args and isinstance(args[0], dict) else {}


async def run_command(ls, name: str, task: str, build, args: tuple) -> dict:
    """Build the prompt, run it with progress and cancellation, open the result; answer the contract's shape."""
    request = COMMAND_REQUEST.get()
    system, parts, prompt = await build_off_loop(build, command_args(args), ls.sources())
    progress = await Progress.start(ls, request.work_done_token if request else None, TITLES.get(name, name))
    work = asyncio.ensure_future(ls.runner.run(task, system=system, parts=parts, prompt=prompt, on_text=progress.text))
    if progress.token is not None:
        ls.command_tasks[progress.token] = work
    outer = ls.protocol.request_future(request.msg_id) if request else None
    if outer is not None:
        outer.add_done_callback(lambda f: work.cancel() if f.cancelled() else None)
    try:
        await asyncio.wait({work})
    except asyncio.CancelledError:
        work.cancel()
        raise
    finally:
        ls.command_tasks.pop(progress.token, None)
    if work.cancelled():
        progress.end("Cancelled")
        return CommandResult("_Cancelled._", "local", "none", 0.0, "cancelled").as_json()
    result = work.result()
    progress.end(f"Done ({result.tier})")
    await show_result(ls, name, result)
    return result.as_json()


async def show_result(ls, name: str, result: CommandResult) -> None:
    """Also open the result as a Markdown file, where the client can show documents."""
    window = ls.client_capabilities.window
    if window is None or window.show_document is None or not window.show_document.support:
        return
    try:
        from tandem_lsp.ledger import state_dir

        folder = state_dir() / "results"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{name.split('.')[-1]}.md"
        header = f"<!-- {name}: {result.tier} ({result.model})" + (
            f", fallback: {result.fallback_reason}" if result.fallback_reason else "") + " -->\n\n"
        path.write_text(header + result.markdown + "\n", encoding="utf-8")
        await asyncio.wait_for(
            ls.window_show_document_async(types.ShowDocumentParams(uri=Path(path).as_uri(), take_focus=False)), 10
        )
    except Exception as exc:  # showing is a courtesy; the result was already computed
        log.warning("could not open the result: %s", exc)


# -- code actions -----------------------------------------------------------------------------
def lsp_code_actions(params: types.CodeActionParams, language_id: str) -> list[types.CodeAction]:
    uri, rng = params.text_document.uri, params.range
    where = {"uri": uri, "range": {"start": {"line": rng.start.line, "character": rng.start.character},
                                   "end": {"line": rng.end.line, "character": rng.end.character}}}
    only = set(params.context.only or [])

    def wanted(kind: str) -> bool:
        return not only or any(kind == k or kind.startswith(k + ".") for k in only)

    actions = []
    for d in params.context.diagnostics:
        title = code_actions.ASKS["fix"][0].format(message=_short(d.message))
        data = {"action": "fix", "uri": uri, "start": d.range.start.line, "end": d.range.end.line, "language": language_id,
                "diagnostic": {"line": d.range.start.line, "message": d.message}}
        actions.append(types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[d], data=data))
    for kind in ("docstring", "typehints"):
        data = {"action": kind, "uri": uri, "start": rng.start.line, "end": rng.end.line, "language": language_id}
        actions.append(types.CodeAction(title=code_actions.ASKS[kind][0], kind=types.CodeActionKind.RefactorRewrite, data=data))
    explain_kind = types.CodeActionKind.QuickFix if params.context.diagnostics else types.CodeActionKind.Empty
    actions += [
        types.CodeAction(title="Tandem: Explain this code", kind=types.CodeActionKind.Empty,
                         command=types.Command(title="Tandem: Explain this code", command=EXPLAIN_CODE, arguments=[where])),
        types.CodeAction(title="Tandem: Explain failure (escalates to Claude)", kind=explain_kind,
                         command=types.Command(title="Tandem: Explain failure", command=EXPLAIN_FAILURE, arguments=[where])),
        types.CodeAction(title="Tandem: Plan refactor (escalates to Claude)", kind=types.CodeActionKind.Refactor,
                         command=types.Command(title="Tandem: Plan refactor", command=PLAN_REFACTOR, arguments=[where])),
    ]
    return [a for a in actions if wanted(a.kind or "")]


def _short(message: str) -> str:
    first = message.strip().split("\n", 1)[0]
    return first if len(first) <= 50 else first[:47] + "..."


async def resolve_edit(ls, action: types.CodeAction) -> types.CodeAction:
    """Run the local model for an edit action; attach the edit only when it is confined and parses."""
    data = action.data if isinstance(action.data, dict) else {}
    uri, kind = data.get("uri", ""), data.get("action")
    text = await ls.sources().text_async(uri) if kind in code_actions.ASKS else None
    if text is None:
        return action
    target = code_actions.target(text, int(data.get("start", 0)), int(data.get("end", 0)))
    user = code_actions.edit_prompt(kind, target, data.get("language", ""), data.get("diagnostic"))
    try:
        reply, _model = await ls.runner.local_text(f"action:{kind}", code_actions.EDIT_SYSTEM, user)
    except LocalFailure as exc:
        ls.notify_user(f"Tandem: {action.title} needs the local model: {exc}")
        return action
    new_code = code_actions.fit_indentation(code_actions.code_from_reply(reply), target.code)
    if not new_code.strip() or not code_actions.parses(code_actions.apply(text, target, new_code), data.get("language", ""), uri):
        ls.notify_user(f"Tandem: the local model's edit for '{action.title}' did not parse, so nothing was changed.")
        return action
    edit = types.TextEdit(range=lsp_lines_range(text, target.start, target.end, ls.position_encoding), new_text=new_code)
    action.edit = types.WorkspaceEdit(changes={uri: [edit]})
    return action


async def explain_code(ls, args: tuple) -> dict:
    """A short local explanation of the selected code (never the cloud)."""
    where = command_args(args)
    system, parts, _prompt = await build_off_loop(
        ask.build, {"prompt": "Explain briefly what this code does.", **where}, ls.sources())
    from tandem_lsp.commands.runner import render

    try:
        text, model = await ls.runner.local_text("explain_code", code_actions.EXPLAIN_SYSTEM, render(parts, None))
    except LocalFailure as exc:
        return CommandResult(f"**Tandem could not answer:** {exc}.", "local", "none", 0.0, str(exc)).as_json()
    result = CommandResult(text, "local", model)
    await show_result(ls, EXPLAIN_CODE, result)
    return result.as_json()


def register(server) -> None:
    """Attach the command and code-action handlers to the server."""

    @server.command(EXPLAIN_FAILURE)
    async def explain_failure_command(ls, *args):
        return await run_command(ls, EXPLAIN_FAILURE, "explain_failure", explain_failure.build, args)

    @server.command(PLAN_REFACTOR)
    async def plan_refactor_command(ls, *args):
        return await run_command(ls, PLAN_REFACTOR, "plan_refactor", plan_refactor.build, args)

    @server.command(ASK)
    async def ask_command(ls, *args):
        return await run_command(ls, ASK, "ask", ask.build, args)

    @server.command(EXPLAIN_CODE)
    async def explain_code_command(ls, *args):
        return await explain_code(ls, args)

    @server.command(STATS)
    def stats_command(ls, *args):
        return ls.stats()

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(ls, params: types.WorkDoneProgressCancelParams):
        task = ls.command_tasks.get(params.token)
        if task is not None:
            task.cancel()

    kinds = [types.CodeActionKind.QuickFix, types.CodeActionKind.Refactor, types.CodeActionKind.RefactorRewrite,
             types.CodeActionKind.Empty]

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=kinds, resolve_provider=True))
    def code_action(ls, params: types.CodeActionParams):
        ls.remember_diagnostics(params.text_document.uri, params.context.diagnostics)
        doc = ls.workspace.open_document(params.text_document.uri)
        return lsp_code_actions(params, (doc.language_id if doc is not None else None) or "")

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def code_action_resolve(ls, action: types.CodeAction):
        try:
            return await resolve_edit(ls, action)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resolving a code action failed")
            return action

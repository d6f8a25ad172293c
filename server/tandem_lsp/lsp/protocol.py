"""The LSP protocol with one addition: command handlers can see their request's id and the
client's work-done token (pygls passes a command only its arguments)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from lsprotocol import types
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method


@dataclass(frozen=True)
class CommandRequest:
    msg_id: object
    work_done_token: types.ProgressToken | None


COMMAND_REQUEST: contextvars.ContextVar[CommandRequest | None] = contextvars.ContextVar("command_request", default=None)


class TandemProtocol(LanguageServerProtocol):
    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams):
        # set before pygls starts the handler's task, which copies this context
        COMMAND_REQUEST.set(CommandRequest(self.msg_id, params.work_done_token))
        return (yield from super().lsp_workspace__execute_command(params))

    def request_future(self, msg_id: object):
        """The future pygls answers the request from; cancelled by ``$/cancelRequest``."""
        return self._request_futures.get(msg_id)

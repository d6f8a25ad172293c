"""The LSP protocol with two additions: command handlers can see their request's id and the
client's work-done token (pygls passes a command only its arguments), and a request with malformed
params is answered with an error instead of being dropped."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from lsprotocol import types
from pygls.exceptions import JsonRpcException
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

    def structure_message(self, data):
        """pygls drops a request whose params do not fit the method's type; answer it with the error."""
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=exc.to_response_error())
            raise

    def request_future(self, msg_id: object):
        """The future pygls answers the request from; cancelled by ``$/cancelRequest``."""
        return self._request_futures.get(msg_id)

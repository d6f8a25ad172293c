"""One demo session: start the server as an editor would, wait for its local model, then the three parts
(typing, the command, the statistics), and the ``--record`` of it all."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tandem_lsp.demo.common import (
    DEMO_FILE,
    LOAD_WAIT_S,
    MEAN_SOURCE,
    STATUS_NOTIFICATION,
    STATUS_WAIT_S,
    TEST_FILE,
    TYPED_FILE,
    Screen,
    plain,
    plural,
    sample_project_files,
)

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_SETTINGS = {"local": {"backend": "auto"}, "completion": {"debounceMs": "auto"}}


class Demo:
    """The server, the typing, the failure, the stats; and the record of it."""

    def __init__(self, workspace: str | None = None, speed: float = 1.0, record: str | None = None,
                 screen: Screen | None = None, settings: dict | None = None):
        import collections

        self.workspace, self.speed, self.record = workspace, speed, record
        self.settings = settings if settings is not None else DEFAULT_SETTINGS  # sent as initializationOptions
        self.screen = screen or Screen()
        self.status: dict | None = None
        self.status_event = None  # an asyncio.Event, made in the session's loop
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.typist = None
        self.explain: dict | None = None
        self.stats: dict | None = None
        self.messages: list[str] = []

    # -- the whole run ----------------------------------------------------------------------------
    async def main(self) -> int:
        import shutil
        import tempfile
        from pathlib import Path

        code = 1
        tmp = None
        try:
            if self.workspace:
                root = Path(self.workspace).expanduser().resolve()
                doc_path, initial = root / DEMO_FILE, sample_project_files()[TYPED_FILE]
            else:
                tmp = Path(tempfile.mkdtemp(prefix="tandem-demo-"))
                root = tmp / "sample_project"
                root.mkdir()
                for name, text in sample_project_files().items():
                    (root / name).write_text(text, encoding="utf-8")
                doc_path, initial = root / TYPED_FILE, (root / TYPED_FILE).read_text(encoding="utf-8")
            code = await self.session(root, doc_path, initial, in_sample=self.workspace is None)
        except Exception as exc:  # noqa: BLE001 - any failure is reported, with the server's last log lines
            self.screen.say(f"tandem-lsp demo failed: {type(exc).__name__}: {exc}")
            if self.stderr_tail:
                self.screen.say("server log (last lines):")
                for line in self.stderr_tail:
                    self.screen.say("  " + line)
            code = 1
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return self._finish(code)

    def _finish(self, code: int) -> int:
        import json
        from pathlib import Path

        if self.record:
            data = {
                "localModel": self.status,
                "keystrokes": self.typist.keystrokes if self.typist else 0,
                "suggestions": [s.as_json() for s in self.typist.suggestions] if self.typist else [],
                "explainFailure": self.explain,
                "stats": self.stats,
                "exitCode": code,
            }
            try:
                Path(self.record).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            except OSError as exc:
                print(f"tandem-lsp demo: error: cannot write --record {self.record}: {exc.strerror or exc}",
                      file=sys.stderr)
                return code or 1
        return code

    async def session(self, root: Path, doc_path: Path, initial: str, *, in_sample: bool) -> int:
        import asyncio
        import os
        from pathlib import Path

        from lsprotocol import types
        from pygls.lsp.client import LanguageClient

        from tandem_lsp import __version__

        say = self.screen.say
        client = LanguageClient("tandem-demo", __version__)
        self.status_event = asyncio.Event()

        @client.feature(STATUS_NOTIFICATION)
        def on_status(ls, params):
            self.status = plain(params)
            self.status_event.set()

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(ls, params):
            self.messages.append(params.message)

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_show(ls, params):
            self.messages.append(params.message)
            say(self.screen.dim(f"  [server] {params.message}"))

        say(self.screen.bold("Tandem demo") + f": starting `{Path(sys.executable).name} -m tandem_lsp` over stdio "
            f"in {root}")
        await client.start_io(sys.executable, "-m", "tandem_lsp", cwd=str(root))
        drain = asyncio.ensure_future(self._drain(client._server.stderr))
        try:
            await asyncio.wait_for(client.initialize_async(types.InitializeParams(
                process_id=os.getpid(),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                capabilities=types.ClientCapabilities(
                    general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
                ),
                client_info=types.ClientInfo(name="tandem-demo", version=__version__),
                initialization_options=self.settings,
            )), 30)
            client.initialized(types.InitializedParams())
            if not await self.wait_for_model():
                return 1
            return await self.run_parts(client, root, doc_path, initial, in_sample)
        finally:
            await self._stop(client)
            drain.cancel()

    async def run_parts(self, client, root: Path, doc_path: Path, initial: str, in_sample: bool) -> int:
        """Type ``mean`` (1), save and explain the failing test (2), show the statistics (3)."""
        import shutil
        import tempfile
        from pathlib import Path

        from lsprotocol import types

        from tandem_lsp.demo.explain import explain_failure
        from tandem_lsp.demo.stats import show_stats
        from tandem_lsp.demo.typist import Typist

        say, scr = self.screen.say, self.screen
        if in_sample and (root / TEST_FILE).exists():  # the test file is open in another tab
            client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
                uri=(root / TEST_FILE).as_uri(), language_id="python", version=1,
                text=(root / TEST_FILE).read_text(encoding="utf-8"))))
        say(f"\nTyping `mean` into {doc_path.name} ({'ghost text dim' if scr.tty else 'ghost text after the cursor |'}"
            f", speed x{self.speed:g}):\n")
        self.typist = typist = Typist(client, scr, self.speed)
        final = await typist.type_into(doc_path.as_uri(), initial, MEAN_SOURCE)
        accepted = sum(s.accepted for s in typist.suggestions)
        say(f"\nTyped {plural(typist.keystrokes, 'key')}; {plural(len(typist.suggestions), 'suggestion')} shown, "
            f"{accepted} accepted with Tab.")
        if final.strip() != (initial.rstrip("\n") + "\n\n\n" + MEAN_SOURCE).strip():
            say("(the document differs from the planned text)")

        if in_sample:
            doc_path.write_text(final, encoding="utf-8")  # the editor saves
            project = root
        else:
            project = Path(tempfile.mkdtemp(prefix="tandem-demo-tests-"))
            for name, body in sample_project_files().items():
                (project / name).write_text(body, encoding="utf-8")
            (project / TYPED_FILE).write_text(final, encoding="utf-8")
        target = (root / TEST_FILE).as_uri() if in_sample else doc_path.as_uri()
        try:
            self.explain = await explain_failure(client, scr, project, target)
        finally:
            if not in_sample:
                shutil.rmtree(project, ignore_errors=True)
        self.stats = await show_stats(client, scr)
        return 0

    async def _drain(self, stream) -> None:
        """Read the server's stderr all the time, so a chatty log never blocks it on a full pipe."""
        pending = b""
        while chunk := await stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            self.stderr_tail.extend(ln.decode("utf-8", "replace") for ln in lines)

    async def _stop(self, client) -> None:
        import asyncio
        import contextlib

        server = client._server
        with contextlib.suppress(Exception):  # the server may already be gone: then it only needs reaping
            if server is not None and server.returncode is None:
                await asyncio.wait_for(client.shutdown_async(None), 5)
                client.exit(None)
                await asyncio.wait_for(server.wait(), 5)
        if server is not None and server.returncode is None:
            server.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 5)

    # -- the local model --------------------------------------------------------------------------
    async def wait_for_model(self) -> bool:
        """Wait for the server's verdict on the local model; print how to get one when there is none."""
        import asyncio
        import time

        say = self.screen.say

        def loading(st: dict) -> bool:  # an embedded model reports "starting" while it loads
            return st.get("state") == "starting" and "loading" in str(st.get("detail") or "")

        deadline = time.monotonic() + STATUS_WAIT_S
        told = False
        while True:
            st = self.status or {}
            if loading(st):
                if not told:
                    say(f"Local model: {st.get('detail')} (waiting up to {LOAD_WAIT_S:.0f} s)")
                    told, deadline = True, time.monotonic() + LOAD_WAIT_S
            elif st.get("backend") or st.get("state") == "down":
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.status_event.clear()
            try:
                await asyncio.wait_for(self.status_event.wait(), left)
            except TimeoutError:
                break
        st = self.status or {"state": "starting", "detail": f"no {STATUS_NOTIFICATION} within {STATUS_WAIT_S:.0f} s"}
        self.status = st
        if not st.get("backend") or st.get("state") == "down" or loading(st):
            from tandem_lsp.config import parse_settings
            from tandem_lsp.doctor import how_to_get_a_model, no_model_reason

            detail = str(st.get("detail") or "")
            if loading(st):
                detail = f"the embedded model did not load within {LOAD_WAIT_S:.0f} s"
            settings, _problems = parse_settings(self.settings)
            say(f"\nNo local model: {no_model_reason(detail, settings)}.")
            say(how_to_get_a_model("tandem-lsp demo") + "\n(`tandem-lsp doctor` checks the set-up.)")
            return False
        state = "found" if st.get("state") == "starting" else st.get("state")
        say(f"Local model: {st.get('model') or '(server default)'} on {st.get('backend')} at {st.get('endpoint')} "
            f"(FIM template {st.get('template') or 'auto'}, {state})")
        return True

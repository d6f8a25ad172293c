"""``tandem-lsp demo``: watch Tandem work, as an editor would drive it.

Starts the real server over stdio (``python -m tandem_lsp``) with a pygls client, opens a small
sample project (shipped in ``tandem_lsp/sample_project``, copied to a temporary directory) or DIR,
and then:

1. waits for the server's ``tandem/status`` notification; with no local model it prints the
   commands that start one and exits 1;
2. types the function ``mean`` keystroke by keystroke: a ``didChange`` per key, the previous
   ``textDocument/inlineCompletion`` cancelled and a new one sent (as VS Code does). Each ghost-text
   suggestion is printed as an editor shows it (dim when stdout is a terminal), with its latency
   and where it came from. A suggestion that matches what is about to be typed is accepted with Tab
   once the typist has seen it for a few keys: one change inserts it, then
   ``workspace/executeCommand tandem.acceptSuggestion`` with the item's arguments;
3. runs ``tandem.explainFailure`` on the failing test (pytest's output, or a traceback from calling
   the test functions directly when pytest is not installed) and prints the result;
4. prints ``tandem.stats``.

``--record FILE`` writes the session as JSON. ``--speed`` divides every typing gap and pause (at a
line end the typist still looks for the suggestion for up to LOOK_MIN_S). With DIR, DIR is the
workspace and the demo types into a new, unsaved ``tandem_demo.py`` there: DIR is not modified, and
the tests run in a temporary copy of the sample project.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Only argparse and sys at import time: cli.py imports this module to build its parser, and the
# server's start-up must not pay for the demo. Everything else is imported where it is used.

STATUS_NOTIFICATION = "tandem/status"
ACCEPT_COMMAND = "tandem.acceptSuggestion"
STATUS_WAIT_S = 5.0
LOAD_WAIT_S = 120.0  # an embedded model may take a while to load
KEY_GAP_S = 0.060  # between keys inside words
PUNCT_GAP_S = 0.110  # after spaces and punctuation
LINE_END_PAUSE_S = 0.700  # the typist stops at each line end and looks at the ghost text
LOOK_MIN_S = 1.5  # ...and waits at least this long for a suggestion there, whatever --speed says
ACCEPT_AFTER = 3  # Tab once the same (matching) ghost text has been seen for this many keys
COMMAND_TIMEOUT_S = 300.0
TEST_TIMEOUT_S = 60.0
DEMO_FILE = "tandem_demo.py"
TYPED_FILE = "stats.py"
TEST_FILE = "test_stats.py"
FAILING_TEST = "test_median_even"

# What the demo types, at the end of stats.py.
MEAN_SOURCE = '''def mean(values):
    """The arithmetic mean of `values`."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)
'''

START_COMMANDS = """\
No local model found{detail}.
Start one of these, then run `tandem-lsp demo` again (`tandem-lsp doctor` checks the set-up):
  Ollama:     ollama serve
              ollama pull qwen2.5-coder:1.5b-base
  llama.cpp:  llama-server --fim-qwen-1.5b-default
  LM Studio:  load qwen2.5-coder-1.5b (a base model), then start its server: lms server start
  embedded:   {embedded}tandem-lsp models pull {recommended}   (no server needed; 1.6 GB)
"""


def _embedded_install_hint() -> str:
    """The pip command the embedded line needs first when llama-cpp-python is not installed."""
    import importlib.util

    return "" if importlib.util.find_spec("llama_cpp") else "pip install 'tandem-lsp[embedded]' && "

SOURCE_LABELS = {"model": "model", "cache": "typed-through cache", "inflight": "in-flight reuse"}


# -- command line ---------------------------------------------------------------------------------
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command to the CLI's sub-parsers."""
    demo = subparsers.add_parser(
        "demo",
        help="type a function with live ghost text, explain a failing test, show the stats",
        description="Start the server as an editor would, type a function into a sample project with "
        "ghost-text suggestions from the local model, explain a failing test, and show the stats.",
    )
    demo.add_argument("dir", nargs="?", metavar="DIR",
                      help=f"a workspace to open instead of the sample project; the demo types into a new, "
                           f"unsaved {DEMO_FILE} there (DIR is not modified)")
    demo.add_argument("--record", metavar="FILE", help="write the whole session as JSON to FILE")
    demo.add_argument("--speed", type=float, default=1.0, metavar="FACTOR",
                      help="typing speed factor: 2 types twice as fast (default 1)")
    return demo


def run(args) -> int:
    """Run the demo; 0 on success, 1 when no local model is available or the demo failed."""
    import asyncio

    speed = getattr(args, "speed", 1.0) or 1.0
    if speed <= 0:
        print("tandem-lsp demo: --speed must be > 0", file=sys.stderr)
        return 2
    demo = Demo(workspace=getattr(args, "dir", None), speed=speed, record=getattr(args, "record", None))
    try:
        return asyncio.run(demo.main())
    except KeyboardInterrupt:
        return 130


# -- display --------------------------------------------------------------------------------------
class Screen:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def dim(self, s: str) -> str:
        return f"\x1b[2m{s}\x1b[0m" if self.tty and s else s

    def bold(self, s: str) -> str:
        return f"\x1b[1m{s}\x1b[0m" if self.tty and s else s

    def say(self, s: str = "") -> None:
        print(s, file=self.stream, flush=True)


# -- helpers --------------------------------------------------------------------------------------
def plain(obj):
    """A JSON-able copy of a pygls result (namedtuples, attrs classes, dicts, lists)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "__attrs_attrs__"):
        from lsprotocol import converters

        return converters.get_converter().unstructure(obj)
    return str(obj)


def position_at(text: str, offset: int):
    """The LSP position (UTF-16, LSP's line endings) of an offset, as an editor sends it."""
    from lsprotocol import types

    from tandem_lsp.lines import position_at as lsp_position

    line, character = lsp_position(text, offset)
    return types.Position(line=line, character=character)


def keystroke_gap(ch: str, at_line_end: bool) -> float:
    if at_line_end:
        return LINE_END_PAUSE_S
    return KEY_GAP_S if (ch.isalnum() or ch == "_") else PUNCT_GAP_S


def next_key(region: str, i: int) -> str:
    """The text one key inserts at region[i]: a character, or Enter with the next line's indentation
    (as an editor's auto-indent brings it)."""
    if region[i] != "\n":
        return region[i]
    j = i + 1
    while j < len(region) and region[j] in " \t":
        j += 1
    return region[i:j]


def sample_project_files() -> dict[str, str]:
    from importlib import resources

    folder = resources.files("tandem_lsp") / "sample_project"
    return {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith((".py", ".md"))}


RUN_TESTS_DIRECTLY = r"""
import sys, traceback
sys.path.insert(0, ".")
import test_stats
failed = 0
for name in sorted(n for n in dir(test_stats) if n.startswith("test_")):
    try:
        getattr(test_stats, name)()
    except Exception:
        print(f"FAILED test_stats.py::{name}")
        traceback.print_exc(file=sys.stdout)
        failed = 1
        break
sys.exit(failed)
"""


def failing_test_output(project: Path) -> tuple[str, str]:
    """(how it was run, the output) of the sample tests in ``project``."""
    import importlib.util
    import os
    import subprocess

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if importlib.util.find_spec("pytest") is not None:
        how = f"python -m pytest -x -q {TEST_FILE}"
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", TEST_FILE]
    else:
        how = "python (pytest is not installed: the test functions were called directly)"
        cmd = [sys.executable, "-c", RUN_TESTS_DIRECTLY]
    try:
        done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=TEST_TIMEOUT_S,
                              env=env, check=False)
        out = done.stdout.strip()  # stderr has only plugin warnings, unless the run itself failed
        if not out or done.returncode not in (0, 1):
            out = (done.stdout + "\n" + done.stderr).strip()
    except subprocess.TimeoutExpired as exc:
        out = f"(the tests did not finish within {TEST_TIMEOUT_S:.0f} s)\n{exc.stdout or ''}"
    return how, out


# -- the session ----------------------------------------------------------------------------------
class Shown:
    """One ghost-text suggestion as it was shown."""

    def __init__(self, line: int, typed: str, suggestion: str, latency_ms: float, source: str,
                 accepted: bool = False, via: str | None = None, command: object = None):
        self.line, self.typed, self.suggestion, self.latency_ms = line, typed, suggestion, latency_ms
        self.source, self.accepted, self.via, self.command = source, accepted, via, command

    def as_json(self) -> dict:
        out = {"line": self.line, "typed": self.typed, "suggestion": self.suggestion,
               "latencyMs": round(self.latency_ms, 1), "source": self.source, "accepted": self.accepted}
        if self.via:
            out["via"] = self.via
        return out


class Demo:
    """One demo session: the server, the typing, the failure, the stats; and the record of it."""

    def __init__(self, workspace: str | None = None, speed: float = 1.0, record: str | None = None,
                 screen: Screen | None = None):
        import collections

        self.workspace, self.speed, self.record = workspace, speed, record
        self.screen = screen or Screen()
        self.status: dict | None = None
        self.status_event = None  # an asyncio.Event, made in the session's loop
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.suggestions: list[Shown] = []
        self.keystrokes = 0
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
                if not root.is_dir():
                    self.screen.say(f"tandem-lsp demo: {root} is not a directory")
                    return self._finish(2)
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
                "keystrokes": self.keystrokes,
                "suggestions": [s.as_json() for s in self.suggestions],
                "explainFailure": self.explain,
                "stats": self.stats,
                "exitCode": code,
            }
            Path(self.record).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
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
                initialization_options={"local": {"backend": "auto"}, "completion": {"debounceMs": "auto"}},
            )), 30)
            client.initialized(types.InitializedParams())
            if not await self.wait_for_model():
                return 1
            return await self.drive(client, root, doc_path, initial, in_sample)
        finally:
            await self._stop(client)
            drain.cancel()

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

    # -- 1. the local model -----------------------------------------------------------------------
    async def wait_for_model(self) -> bool:
        """Wait for the server's verdict on the local model; print how to start one when there is none."""
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
            detail = st.get("detail") or ""
            from tandem_lsp.model_files import RECOMMENDED

            say(START_COMMANDS.format(detail=f" ({detail})" if detail else "",
                                      embedded=_embedded_install_hint(), recommended=RECOMMENDED))
            return False
        state = "found" if st.get("state") == "starting" else st.get("state")
        say(f"Local model: {st.get('model') or '(server default)'} on {st.get('backend')} at {st.get('endpoint')} "
            f"(FIM template {st.get('template') or 'auto'}, {state})")
        return True

    # -- 2. typing --------------------------------------------------------------------------------
    async def drive(self, client, root: Path, doc_path: Path, initial: str, in_sample: bool) -> int:
        import asyncio
        import shutil
        import tempfile
        import time
        from pathlib import Path

        from lsprotocol import types

        say, scr = self.screen.say, self.screen
        uri = doc_path.as_uri()
        if not initial.endswith("\n"):
            initial += "\n"
        text = initial + "\n\n"
        offset = len(text)
        region = MEAN_SOURCE
        version = 1
        if in_sample and (root / TEST_FILE).exists():  # the test file is open in another tab
            client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
                uri=(root / TEST_FILE).as_uri(), language_id="python", version=1,
                text=(root / TEST_FILE).read_text(encoding="utf-8"))))
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))
        say(f"\nTyping `mean` into {doc_path.name} ({'ghost text dim' if scr.tty else 'ghost text after the cursor |'}"
            f", speed x{self.speed:g}):\n")
        await asyncio.sleep(0.3 / self.speed)

        pending: tuple[str, asyncio.Future] | None = None
        counter = 0
        shown: Shown | None = None  # the ghost text on screen now
        seen = 0  # keys for which matching ghost text has been on screen
        just_accepted = False
        done = 0  # characters of the region in the document

        def change(inserted: str) -> tuple[str, asyncio.Future, float]:
            nonlocal text, offset, version, pending, counter
            if pending is not None and not pending[1].done():  # VS Code cancels on every keystroke
                client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=pending[0]))
            pos = position_at(text, offset)
            version += 1
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=inserted)],
            ))
            text = text[:offset] + inserted + text[offset:]
            offset += len(inserted)
            counter += 1
            msg_id = f"demo-{counter}"
            sent = time.perf_counter()
            fut = client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=position_at(text, offset),
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                ),
                msg_id=msg_id,
            )
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # a cancelled request is no error
            pending = (msg_id, fut)
            return msg_id, fut, sent

        while done < len(region) or shown is not None:
            if shown is not None and seen >= ACCEPT_AFTER and region.startswith(shown.suggestion, done):
                # Tab: the whole suggestion in one change, then the item's command, as an editor does
                shown.accepted = True
                inserted = shown.suggestion
                say(f"  {'<Tab>':<6} accepted {len(inserted)} characters ({SOURCE_LABELS.get(shown.source, shown.source)})")
                _msg, fut, sent = change(inserted)
                done += len(inserted)
                cmd = shown.command
                if cmd is not None:
                    await client.workspace_execute_command_async(types.ExecuteCommandParams(
                        command=cmd.command, arguments=list(cmd.arguments or [])))
                gap, look = LINE_END_PAUSE_S, True
                just_accepted = True
            elif done < len(region):
                key = next_key(region, done)
                at_end = done + 1 >= len(region) or region[done + 1] == "\n"
                _msg, fut, sent = change(key)
                done += len(key)
                self.keystrokes += 1
                gap, look = keystroke_gap(key, at_end), at_end
            else:
                break
            shown, seen = await self._answer(fut, sent, gap / self.speed, look, text, offset, region, done,
                                             shown, seen, just_accepted)
            just_accepted = False

        if pending is not None and not pending[1].done():
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=pending[0]))
        final = text
        accepted = sum(s.accepted for s in self.suggestions)
        say(f"\nTyped {self.keystrokes} keys; {len(self.suggestions)} suggestions shown, {accepted} accepted with Tab.")
        if final.strip() != (initial.rstrip("\n") + "\n\n\n" + region).strip():
            say("(the document differs from the planned text)")
        if in_sample:
            doc_path.write_text(final, encoding="utf-8")  # the editor saves
            project = root
        else:
            project = Path(tempfile.mkdtemp(prefix="tandem-demo-tests-"))
            for name, body in sample_project_files().items():
                (project / name).write_text(body, encoding="utf-8")
            (project / TYPED_FILE).write_text(final, encoding="utf-8")
        try:
            await self.explain_failure(client, root, project, in_sample, uri)
        finally:
            if not in_sample:
                shutil.rmtree(project, ignore_errors=True)
        await self.show_stats(client)
        return 0

    async def _answer(self, fut, sent, wait_s, look, text, offset, region, done, shown, seen, just_accepted):
        """Wait for this key's suggestion up to the key's gap (at a line end or after Tab, the typist
        looks: at least LOOK_MIN_S); print it; return (ghost text on screen, keys it has been seen)."""
        import asyncio
        import time

        limit = max(wait_s, LOOK_MIN_S) if look else wait_s
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), limit)
            latency_ms = (time.perf_counter() - sent) * 1000
        except Exception:  # noqa: BLE001 - not answered before the next key, cancelled, or failed: nothing shown
            result, latency_ms = None, None
        items = getattr(result, "items", None) if result is not None else None
        new_shown = None
        if items:
            item = items[0]
            suggestion = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
            info = {}
            if item.command is not None and item.command.arguments:
                info = plain(item.command.arguments[0]) or {}
            source = str(info.get("source", "?"))
            line_start = text.rfind("\n", 0, offset) + 1
            new_shown = Shown(
                line=text.count("\n", 0, offset) + 1, typed=text[line_start:offset], suggestion=suggestion,
                latency_ms=latency_ms, source=source, command=item.command,
                via="prefetch" if just_accepted and source == "cache" else None,
            )
            continued = (shown is not None and shown.suggestion.endswith(suggestion)
                         and len(suggestion) < len(shown.suggestion))
            matches = region.startswith(suggestion, done)
            seen = seen + 1 if matches else 0
            self.suggestions.append(new_shown)
            self._print(new_shown, full=not continued, matches=matches)
        else:
            seen = 0
        elapsed = time.perf_counter() - t0
        if elapsed < wait_s:
            await asyncio.sleep(wait_s - elapsed)
        return new_shown, seen

    def _print(self, s: Shown, *, full: bool, matches: bool) -> None:
        scr = self.screen
        label = "prefetch (cache)" if s.via == "prefetch" else SOURCE_LABELS.get(s.source, s.source)
        lines = s.suggestion.split("\n")
        cursor = "" if scr.tty else "|"
        first = f"{s.line:4d}  {s.typed}{cursor}{scr.dim(lines[0])}"
        more = f"  (+{len(lines) - 1} lines)" if len(lines) > 1 and not full else ""
        where = f"<- {label}, {s.latency_ms:.0f} ms" + ("" if matches else ", not what comes next")
        scr.say(f"{first}{more}    {scr.dim(where)}")
        if full:
            for extra in lines[1:]:
                scr.say(f"{'':4}  {scr.dim(extra)}")

    # -- 3. explain the failure -------------------------------------------------------------------
    async def explain_failure(self, client, root: Path, project: Path, in_sample: bool, doc_uri: str) -> None:
        import asyncio
        import time

        from lsprotocol import types

        say = self.screen.say
        how, failure = failing_test_output(project)
        say(f"\n{self.screen.bold('Explain failure')}: ran `{how}`:")
        for line in failure.splitlines()[-12:]:
            say("  " + self.screen.dim(line))
        target = (root / TEST_FILE).as_uri() if in_sample else doc_uri
        say("tandem.explainFailure ... (cloud when a key is set, else the local model)")
        t0 = time.perf_counter()
        result = await asyncio.wait_for(client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="tandem.explainFailure", arguments=[{"uri": target, "failure": failure}])), COMMAND_TIMEOUT_S)
        self.explain = plain(result) or {}
        r = self.explain
        cost = r.get("costUsd")
        say(f"  tier {r.get('tier')}, model {r.get('model')}, cost ${cost if cost is not None else 0:.4f}, "
            f"{(time.perf_counter() - t0):.1f} s" + (f"\n  fallback: {r['fallbackReason']}" if r.get("fallbackReason") else ""))
        say("")
        for line in str(r.get("markdown") or "").splitlines():
            say("  | " + line)

    # -- 4. stats ---------------------------------------------------------------------------------
    async def show_stats(self, client) -> None:
        import asyncio

        from lsprotocol import types

        say = self.screen.say
        result = await asyncio.wait_for(client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="tandem.stats", arguments=[])), 30)
        self.stats = s = plain(result) or {}
        local, cloud = s.get("local") or {}, s.get("cloud") or {}
        cache, comp = s.get("cache") or {}, s.get("completions") or {}
        p50 = local.get("latencyMsP50")
        say(f"\n{self.screen.bold('tandem.stats')}:")
        say(f"  completions  {comp.get('requests', 0)} requests, {comp.get('model_calls', 0)} model calls "
            f"(+{comp.get('prefetch_calls', 0)} prefetch), {comp.get('cache_answers', 0)} from the typed-through cache, "
            f"{comp.get('inflight_answers', 0)} in-flight reuse; accepted {comp.get('accepted') or {}}")
        say(f"  cache        {cache.get('hits', 0)} hits, {cache.get('misses', 0)} misses")
        say(f"  commands     local {local.get('calls', 0)} calls" + (f" (p50 {p50:.0f} ms)" if p50 is not None else "")
            + f", cloud {cloud.get('calls', 0)} calls, {s.get('fallbacks', 0)} fallbacks")
        say(f"  spend        ${s.get('costUsd', 0) or 0:.4f} today, saved ${s.get('savedUsd', 0) or 0:.4f} "
            f"(what the local calls would have cost on the cloud)")


def main(argv: list[str] | None = None) -> int:
    """``python -m tandem_lsp.demo [DIR] [--record FILE] [--speed FACTOR]`` (the same as ``tandem-lsp demo``)."""
    parser = argparse.ArgumentParser(prog="tandem-lsp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())

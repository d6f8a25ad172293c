"""A seeded fuzz of the whole server (issue 10): ``python -m tandem_lsp`` over raw stdio
(``RawServer`` from tests/e2e/test_protocol_robustness.py) and the fake model server, fed batches of
malformed and hostile messages that hypothesis draws (derandomized: the same batches on every run, no
shrinking against a live process, bounded in count and time).

What a batch may hold: malformed framing (no or a wrong ``Content-Length``, a body shorter or longer than
it says, headers in another case), JSON that does not parse or is not UTF-8, a wrong or missing
``"jsonrpc"``, odd ids (huge, negative, strings with lone surrogates) and invalid ones (objects, arrays,
booleans, null, fractions, NaN, Infinity), ids on notifications, params of the wrong types, unknown
methods, nested ``"jsonrpc"`` keys, responses nobody asked for, documents with lone surrogates, NUL and
odd line endings (form feed, U+2028, lone ``\\r``), changes with odd ranges, unopened and odd URIs
(FIFOs, ``/dev/zero``, directories, a huge sparse file, other schemes), commands and code actions
naming them, cancellations, a second ``initialize``.

After every batch: every request with a readable id got exactly one answer, nothing else was answered
(one id-null answer for each message whose id could not be read), every answer is valid JSON (no NaN),
and a normal completion is answered within 5 s. ``test_shutdown_races`` then shuts servers down in the
middle of such traffic: ``shutdown`` always succeeds, each request is still answered once, those after
it are InvalidRequest, and ``exit`` ends the process with 0.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from tests.e2e.conftest import local_settings
from tests.e2e.test_protocol_robustness import INVALID_REQUEST, RawServer
from tests.fakes.model_server import FakeModelServer

LIVE_URI = "file:///project/live.py"  # the liveness check's document: the fuzz never touches it
LIVE_TEXT = "def add(a, b):\n    "
FUZZ_DOCS = [f"file:///project/f{i}.py" for i in range(4)]
RANGE0 = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}
BATCHES = 60
MESSAGES_PER_BATCH = (15, 65)
FUZZ_SETTINGS = settings(max_examples=BATCHES, derandomize=True, database=None, deadline=None,
                         phases=[Phase.generate], suppress_health_check=list(HealthCheck))

TEXT_ALPHABET = "ab(): =\t\n" + "\r\f\v\x85\u2028\u2029\x1c" + "\x00é😀\ud800\udfff"
ODD_SCHEMES = ["untitled:Untitled-1", "http://example.invalid/x.py", "file://host/share/x.py", "file:///a%00b.py",
               "", "not a uri", "file:///%ff%fe.py", "file:///" + "x" * 3000 + ".py", "file:///\ud800.py",
               "file:///project/spaced%20name.py", "vscode-notebook-cell:/x.ipynb#W1"]


@dataclass
class Sent:
    """One framed message and what the server owes for it."""

    frame: bytes
    answer: list = field(default_factory=list)  # ids answered exactly once
    silent: list = field(default_factory=list)  # ids never answered (in unreadable frames, nested in params)
    nulls: int = 0  # answers with id null (the id could not be read)
    note: str = ""


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def dumps(message) -> bytes:
    return json.dumps(message).encode()


class Fuzz:
    """Draws messages. Ids are unique over the whole run (the counter), in odd shapes."""

    def __init__(self, odd_uris: list[str], settings: dict):
        self.counter = itertools.count(1)
        self.odd_uris = odd_uris
        self.settings = settings  # the session's, for didChangeConfiguration and a second initialize
        self.open: dict[str, int] = {}  # uri -> version, documents the fuzz opened

    def new_id(self, draw):
        n = next(self.counter)
        shape = draw(st.sampled_from(["int", "neg", "big", "huge", "str", "surrogate", "unicode", "spaced"]))
        return {"int": n, "neg": -n, "big": 2**53 - n, "huge": 10**30 + n, "str": f"{n}",
                "surrogate": f"id-\ud800-{n}", "unicode": f"ïd-😀-{n}", "spaced": f" {n} \n"}[shape]

    def uri(self, draw) -> str:
        # a fixed pool: what hypothesis draws must not depend on state outside it (what is open now)
        return draw(st.sampled_from(self.odd_uris + ODD_SCHEMES + FUZZ_DOCS + ["file:///project/calc.py"]))

    def text(self, draw) -> str:
        text = draw(st.text(alphabet=TEXT_ALPHABET, max_size=80))
        return text * draw(st.sampled_from([1, 1, 1, 50, 3000]))  # now and then a long line or a long file

    def position(self, draw, odd_types: bool = False):
        if odd_types and draw(st.booleans()):
            return draw(st.sampled_from([{"line": "1", "character": 2}, {"line": -1, "character": -5}, {"line": 1.5},
                                         [], None, "here", {"line": 2**40, "character": 2**40}]))
        return {"line": draw(st.integers(0, 40)), "character": draw(st.integers(0, 200))}

    # -- requests, answered exactly once ---------------------------------------------------
    def request(self, draw) -> Sent:
        msg_id = self.new_id(draw)
        uri = self.uri(draw)
        odd = draw(st.booleans())
        pos = self.position(draw, odd_types=odd)
        where = {"uri": uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 0}}}
        choices = [
            ("textDocument/completion", {"textDocument": {"uri": uri}, "position": pos,
                                         "context": {"triggerKind": 1}}),
            ("textDocument/inlineCompletion", {"textDocument": {"uri": uri}, "position": pos,
                                               "context": {"triggerKind": draw(st.sampled_from([1, 2]))}}),
            ("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": RANGE0, "context": {"diagnostics": [
                {"range": RANGE0, "message": "x\ud800", "data": {"jsonrpc": "2.0", "id": self.silent_id(),
                                                               "method": "textDocument/didClose"}}]}}),
            ("codeAction/resolve", {"title": "fix", "data": draw(st.sampled_from([
                {"action": "docstring", "uri": uri, "start": 0, "end": 1, "language": "python"},
                {"action": "typehints", "uri": uri, "start": "x", "end": None}, {"uri": 5}, None, [1]]))}),
            ("workspace/executeCommand", {"command": "tandem.stats"}),
            ("workspace/executeCommand", {"command": draw(st.sampled_from(["tandem.ask", "tandem.explainCode",
                                                                           "tandem.planRefactor",
                                                                           "tandem.explainFailure"])),
                                          "arguments": [draw(st.sampled_from([
                                              {"prompt": "what?\ud800", **where},
                                              {"failure": f'File "{uri.removeprefix("file://")}", line 1', **where},
                                              where, {"uri": 7}]))]}),
            ("workspace/executeCommand", {"command": "tandem.acceptSuggestion",
                                          "arguments": draw(st.sampled_from([[], [None], [{"source": 5}]]))}),
            ("workspace/executeCommand", {"command": "no.such.command"}),
            ("textDocument/hover", {"textDocument": {"uri": uri}, "position": pos}),
            ("tandem/noSuchMethod", {"a": {"jsonrpc": "2.0", "id": self.silent_id()}}),
            ("textDocument/completion", draw(st.sampled_from([None, [], "x", 5, {"textDocument": 7},
                                                              {"position": pos}]))),
        ]
        method, params = draw(st.sampled_from(choices))
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None or draw(st.booleans()):
            message["params"] = params
        return Sent(frame(dumps(message)), answer=[msg_id], note=method)

    def silent_id(self) -> int:
        return -(10**12) - next(self.counter)  # in nested params or unreadable frames: never answered

    def refused(self, draw) -> Sent:
        """Readable ids, messages that are not valid requests: one InvalidRequest each."""
        msg_id = self.new_id(draw)
        kind = draw(st.sampled_from(["version", "missing", "notification", "nan"]))
        message = {"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/codeAction",
                   "params": {"textDocument": {"uri": self.uri(draw)}, "range": RANGE0, "context": {"diagnostics": []}}}
        if kind == "version":
            message["jsonrpc"] = draw(st.sampled_from(["1.0", "2", 2.0, None, ""]))
        elif kind == "missing":
            del message["jsonrpc"]
        elif kind == "notification":
            message["method"] = draw(st.sampled_from(["$/setTrace", "initialized", "textDocument/didClose", "exit",
                                                      "$/cancelRequest", "textDocument/didOpen"]))
        else:
            body = dumps(message).replace(b'"context": {', b'"context": {"x": NaN, ', 1)
            return Sent(frame(body), answer=[msg_id], note="nan in params")
        return Sent(frame(dumps(message)), answer=[msg_id], note=f"refused {kind}")

    def unreadable_id(self, draw) -> Sent:
        """Ids that are not ids (or messages that are not requests): one id-null answer each."""
        kind = draw(st.sampled_from(["object", "array", "bool", "null", "fraction", "nan", "infinity",
                                     "not-object", "batch", "empty", "method-type"]))
        if kind in ("nan", "infinity"):
            constant = b"NaN" if kind == "nan" else draw(st.sampled_from([b"Infinity", b"-Infinity"]))
            body = b'{"jsonrpc": "2.0", "id": ' + constant + b', "method": "shutdown"}'
            return Sent(frame(body), nulls=1, note=kind)
        bodies = {"object": {"a": 1}, "array": [1], "bool": True, "null": None, "fraction": 1.5}
        if kind in bodies:
            message = {"jsonrpc": "2.0", "id": bodies[kind], "method": draw(st.sampled_from(
                ["textDocument/codeAction", "shutdown", "workspace/executeCommand"])), "params": {}}
        elif kind == "not-object":
            message = draw(st.sampled_from([5, "text", None, 1.5, True]))
        elif kind == "batch":
            message = [{"jsonrpc": "2.0", "id": self.silent_id(), "method": "shutdown"}]
        elif kind == "empty":
            message = draw(st.sampled_from([{}, {"jsonrpc": "2.0"}, {"jsonrpc": "2.0", "result": 1}]))
        else:
            message = {"jsonrpc": "2.0", "id": None, "method": 5}
        silent = [message[0]["id"]] if kind == "batch" else []
        return Sent(frame(dumps(message)), silent=silent, nulls=1, note=kind)

    def unparsable(self, draw) -> Sent:
        """JSON that does not parse, or is not UTF-8, or a frame that says the wrong length: one ParseError."""
        msg_id = self.silent_id()
        good = dumps({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/codeAction", "params": {}})
        kind = draw(st.sampled_from(["truncated", "garbage", "utf8", "short", "long", "nested-deep"]))
        if kind == "truncated":
            return Sent(frame(good[: draw(st.integers(1, len(good) - 1))]), silent=[msg_id], nulls=1, note=kind)
        if kind == "garbage":
            return Sent(frame(draw(st.sampled_from([b"{", b"}", b"nul", b"{'a': 1}", b'{"a" 1}', b"\x00"]))),
                        nulls=1, note=kind)
        if kind == "utf8":
            return Sent(frame(b'{"jsonrpc": "2.0", "method": "x\xff\xfe"}'), nulls=1, note=kind)
        if kind == "nested-deep":
            return Sent(frame(b"[" * 100_000 + b"]" * 100_000), nulls=1, note=kind)  # RecursionError
        if kind == "short":  # the frame ends inside the JSON; the rest is a garbage line
            cut = draw(st.integers(1, len(good) - 1))
            return Sent(b"Content-Length: %d\r\n\r\n" % cut + good + b"\r\n", silent=[msg_id], nulls=1, note=kind)
        # "long": the frame says more than the JSON; its padding is not JSON either
        return Sent(b"Content-Length: %d\r\n\r\n" % (len(good) + 5) + good + b"xxxxx", silent=[msg_id], nulls=1,
                    note=kind)

    def bad_framing(self, draw) -> Sent:
        """Frames the reader cannot take as a message: skipped, answered by nothing. A line break after
        the body ends the garbage line (else it would run into the next frame's header)."""
        msg_id = self.silent_id()
        body = dumps({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/codeAction", "params": {
            "textDocument": {"uri": LIVE_URI}, "range": RANGE0, "context": {"diagnostics": []}}})
        header = draw(st.sampled_from([b"", b"Content-Type: application/json\r\n", b"Content-Length: abc\r\n",
                                       b"Content-Length: -%d\r\n", b"Content-Length: 0\r\n",
                                       b"X: y\r\nContent-Length %d\r\n", b"Content-Length: 0x%d\r\n"]))
        if b"%d" in header:
            header = header % len(body)
        return Sent(header + b"\r\n" + body + b"\r\n", silent=[msg_id], note=f"framing {header!r}")

    def with_extra_headers(self, draw) -> Sent:
        sent = self.request(draw)
        body = sent.frame.split(b"\r\n\r\n", 1)[1]
        sent.frame = (b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
                      % len(body) + body)
        return sent

    # -- notifications and responses: never answered ---------------------------------------
    def notification(self, draw) -> Sent:
        kind = draw(st.sampled_from(["open", "open", "change", "change", "close", "trace", "cancel", "response",
                                     "invalid", "unknown", "config", "save"]))
        if kind == "open":
            uri = draw(st.sampled_from(self.odd_uris + ODD_SCHEMES + FUZZ_DOCS))
            self.open[uri] = 1
            message = {"method": "textDocument/didOpen", "params": {"textDocument": {
                "uri": uri, "languageId": draw(st.sampled_from(["python", "", "x\ud800"])), "version": 1,
                "text": self.text(draw)}}}
        elif kind == "change":
            uri = self.uri(draw)
            self.open[uri] = version = self.open.get(uri, 1) + 1
            change = ({"text": self.text(draw)} if draw(st.integers(0, 5)) == 0 else
                      {"range": {"start": self.position(draw), "end": self.position(draw)}, "text": self.text(draw)})
            message = {"method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}}
        elif kind == "close":
            uri = self.uri(draw)
            self.open.pop(uri, None)
            message = {"method": "textDocument/didClose", "params": {"textDocument": {"uri": uri}}}
        elif kind == "trace":
            message = {"method": "$/setTrace", "params": {"value": draw(st.sampled_from(["off", "verbose", 5]))}}
        elif kind == "cancel":
            message = {"method": "$/cancelRequest", "params": {"id": draw(st.sampled_from(
                [next(self.counter) - 1, "x", None, {"a": 1}]))}}
        elif kind == "response":
            message = {"id": self.silent_id(), **draw(st.sampled_from([{"result": None}, {"result": {"x": 1}},
                                                                       {"error": {"code": 1, "message": "m"}},
                                                                       {"error": "bad"}]))}
        elif kind == "invalid":
            message = {"method": "textDocument/didOpen", "jsonrpc": "1.0", "params": {}}
            return Sent(frame(dumps(message)), note="invalid notification")
        elif kind == "unknown":
            message = {"method": "tandem/unknownNotification", "params": {"jsonrpc": "2.0", "id": self.silent_id()}}
        elif kind == "save":
            message = {"method": "textDocument/didSave", "params": {"textDocument": {"uri": self.uri(draw)}}}
        else:
            message = {"method": "workspace/didChangeConfiguration", "params": {"settings": self.settings}}
        message["jsonrpc"] = "2.0"
        silent = [message["id"]] if kind == "response" else []
        if kind == "unknown":
            silent = [message["params"]["id"]]
        return Sent(frame(dumps(message)), silent=silent, note=kind)

    def reinitialize(self, draw) -> Sent:
        msg_id = self.new_id(draw)
        self.open.clear()  # pygls makes a new workspace
        message = {"jsonrpc": "2.0", "id": msg_id, "method": "initialize",
                   "params": {"processId": None, "rootUri": "file:///project", "capabilities": {},
                              "initializationOptions": self.settings}}
        return Sent(frame(dumps(message)), answer=[msg_id], note="initialize again")

    def draw_message(self, draw) -> Sent:
        maker = draw(st.sampled_from(
            [self.request] * 6 + [self.notification] * 6 + [self.refused] * 2 + [self.unreadable_id] * 2
            + [self.unparsable, self.bad_framing, self.with_extra_headers, self.reinitialize]))
        return maker(draw)


class Ledger:
    """What the whole run owes and got, checked after every batch."""

    def __init__(self, server: RawServer):
        self.server = server
        self.expected: set = set()
        self.silent: set = set()
        self.nulls = 0
        self.got: Counter = Counter()
        self.got_nulls = 0
        self.read = 0
        self.sent = 0

    def owe(self, sent: Sent) -> None:
        self.sent += 1
        self.expected.update(sent.answer)
        self.silent.update(sent.silent)
        self.nulls += sent.nulls

    def collect(self) -> None:
        received = self.server.received
        for message in received[self.read:]:
            if "method" in message:
                continue  # a notification or a request to the client
            if message.get("id") is None:
                self.got_nulls += 1
            else:
                self.got[_key(message["id"])] += 1
        self.read = len(received)

    def settled(self) -> bool:
        self.collect()
        return all(self.got[_key(i)] >= 1 for i in self.expected) and self.got_nulls >= self.nulls

    def check(self, batch: list[Sent]) -> None:
        notes = [s.note for s in batch]
        self.server.wait(self.settled, timeout=20)
        self.server.pump(0.2)  # a second answer would arrive by now
        self.collect()
        twice = {i: n for i, n in self.got.items() if n != 1}
        assert not twice, f"answered more than once: {twice}; batch {notes}"
        stray = {i for i in self.got if i not in {_key(e) for e in self.expected}}
        assert not stray, f"answers nobody asked for: {stray}; batch {notes}"
        assert not ({_key(i) for i in self.silent} & set(self.got)), f"unreadable ids answered; batch {notes}"
        assert self.got_nulls == self.nulls, f"{self.got_nulls} id-null answers for {self.nulls}; batch {notes}"
        assert not self.server.invalid, f"answers that are not JSON: {self.server.invalid[:3]}"
        assert self.server.proc.poll() is None, "the server died"


def _key(msg_id):
    return (type(msg_id).__name__, msg_id) if not isinstance(msg_id, (dict, list)) else repr(msg_id)


def alive(server: RawServer, ledger: Ledger, n: int) -> None:
    """A normal completion in a freshly opened document, answered by the fake model within 5 s."""
    server.notify("textDocument/didOpen",
                  {"textDocument": {"uri": LIVE_URI, "languageId": "python", "version": 1, "text": LIVE_TEXT}})
    msg_id = f"live-{n}"
    ledger.expected.add(msg_id)
    answer = server.request(msg_id, "textDocument/completion", {
        "textDocument": {"uri": LIVE_URI}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}},
        timeout=5)
    assert answer["result"]["items"], f"liveness {n}: {answer}"


def start(tmp_path, fake) -> RawServer:
    server = RawServer(tmp_path)
    init = server.request(0, "initialize", {"processId": None, "rootUri": "file:///project", "capabilities": {},
                                            "initializationOptions": local_settings(fake)})
    assert "capabilities" in init["result"]
    server.notify("initialized", {})
    return server


def odd_files(root) -> list[str]:
    root.mkdir(exist_ok=True)
    for name in ("pipe.py", "pipe2.py"):
        if not (root / name).exists():
            os.mkfifo(root / name)
    (root / "folder.py").mkdir(exist_ok=True)
    with open(root / "huge.py", "wb") as f:
        f.truncate(256 * 1024 * 1024)  # sparse
    (root / "plain.py").write_text("def f(x):\n    return x\n")
    return [(root / n).as_uri() for n in ("pipe.py", "pipe2.py", "folder.py", "huge.py", "plain.py", "missing.py")] + [
        "file:///dev/zero", "file:///dev/stdin", "file:///proc/self/mem"]


@pytest.fixture(scope="module")
def fake():
    server = FakeModelServer(completion="return a + b\n").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, fake):
    tmp = tmp_path_factory.mktemp("fuzz")
    server = start(tmp, fake)
    fuzz = Fuzz(odd_files(tmp / "files"), local_settings(fake))
    ledger = Ledger(server)
    ledger.expected.add(0)
    ledger.collect()
    alive(server, ledger, 0)
    yield server, fuzz, ledger
    print(f"\nfuzz: {ledger.sent} messages, {len(ledger.expected)} requests answered once, {ledger.got_nulls} "
          f"id-null answers, {len(ledger.silent)} unreadable ids unanswered; RSS {server.rss_kb() // 1024} MB")
    server.close()


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzzed_batches_are_all_answered_and_the_server_stays_usable(fuzzed, data):
    server, fuzz, ledger = fuzzed
    batch = [fuzz.draw_message(data.draw) for _ in range(data.draw(st.integers(*MESSAGES_PER_BATCH)))]
    for sent in batch:
        ledger.owe(sent)
        server.proc.stdin.write(sent.frame)
    server.proc.stdin.flush()
    ledger.check(batch)
    alive(server, ledger, next(fuzz.counter))
    ledger.check(batch)


@settings(max_examples=4, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_shutdown_races(tmp_path_factory, fake, data):
    """``shutdown`` in the middle of traffic (commands, completions, hostile messages): it succeeds, every
    request is answered once, every one after it is InvalidRequest, and ``exit`` ends the process with 0."""
    tmp = tmp_path_factory.mktemp("race")
    server = start(tmp, fake)
    try:
        fuzz = Fuzz(odd_files(tmp / "files"), local_settings(fake))
        ledger = Ledger(server)
        ledger.expected.add(0)
        before = [fuzz.draw_message(data.draw) for _ in range(data.draw(st.integers(0, 25)))]
        after = [fuzz.draw_message(data.draw) for _ in range(data.draw(st.integers(0, 10)))]
        shutdown = Sent(frame(dumps({"jsonrpc": "2.0", "id": "shutdown", "method": "shutdown"})),
                        answer=["shutdown"], note="shutdown")
        after = [s for s in after if b'"initialize"' not in s.frame]
        for sent in [*before, shutdown, *after]:
            ledger.owe(sent)
            server.proc.stdin.write(sent.frame)
        server.proc.stdin.flush()
        ledger.check([*before, shutdown, *after])
        answers = {_key(a["id"]): a for a in server.answers() if a.get("id") is not None}
        assert answers[_key("shutdown")].get("result", "missing") is None, answers[_key("shutdown")]
        for sent in after:
            for msg_id in sent.answer:
                assert answers[_key(msg_id)]["error"]["code"] == INVALID_REQUEST, (sent.note, answers[_key(msg_id)])
        server.notify("exit")
        assert server.proc.wait(5) == 0
    finally:
        server.close()

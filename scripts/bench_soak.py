#!/usr/bin/env python3
"""Soak benchmark: does a long session grow the server's memory, and what does a keystroke cost on a 1 MB line?

One ``python -m tandem_lsp`` over raw stdio (``RawServer`` of tests/e2e/test_protocol_robustness.py),
the real-HTTP fake model server on 127.0.0.1 as the local model.

1. The soak: ``--keys`` keystrokes (10,000) typed into a 2,000-line file, as an editor sends them: each
   key a ``didChange`` (characters, Enter with indentation, now and then Backspace; the cursor jumps to
   another place every few dozen keys), ``$/cancelRequest`` for the previous inline-completion request,
   a new one. Other documents are opened and closed along the way (one every 100 keys, at most five open).
   The server's resident memory (VmRSS) is printed every 1,000 keys with the growth per 1,000 keys; the
   first 1,000 keys are the warm-up (caches, allocator arenas) and the growth after them is the figure
   (target: within 5 MB over the soak). Every request must be answered once: the count of unanswered
   ones is printed.
2. A keystroke on a 1 MB line: ``--line-keys`` keystrokes at the end of a 1,000,000-character line (an
   ASCII one, then one with non-ASCII and astral characters, which defeat the ASCII fast path), each
   followed by a request the server answers at once (an unknown method: MethodNotFound); the server time
   of a keystroke is that round trip less the round trip of the request alone (target: 20 ms). For
   comparison, pygls's own ``TextDocument`` applies the same change in this process.

Bounded and local: a fixed number of messages to 127.0.0.1, then it stops.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsprotocol import types  # noqa: E402
from pygls.workspace import TextDocument  # noqa: E402

from tandem_lsp.demo import position_at  # noqa: E402  (UTF-16 positions, as editors send them)
from tandem_lsp.lsp.documents import TandemDocument  # noqa: E402
from tests.e2e.conftest import local_settings  # noqa: E402
from tests.e2e.test_protocol_robustness import RawServer  # noqa: E402
from tests.fakes.model_server import FakeModelServer  # noqa: E402

URI = "file:///project/soak.py"
WORDS = ["value", "total", "index", "result", "items", "count", "name", "data", "self", "return", "for", "in"]


def big_file(lines: int) -> str:
    out, i = [], 0
    while len(out) < lines:
        out += [f"def function_{i}(values, limit={i}):", f'    """Sum the values below {i}."""', "    total = 0",
                "    for value in values:", "        if value < limit:", "            total += value",
                "    return total", ""]
        i += 1
    return "\n".join(out[:lines]) + "\n"


class Typist:
    """The client side of the soak: the text as the editor holds it, and what it sends."""

    def __init__(self, server: RawServer, text: str, seed: int):
        self.server, self.text, self.version = server, text, 1
        self.rng = random.Random(seed)
        self.offset = len(text) // 2
        self.next_id = 1
        self.pending: set[int] = set()
        self.answered = 0
        self.suggested = 0  # answers that carried a suggestion (the rest: superseded or cancelled)
        self.read = 0
        self.side: list[str] = []
        self.side_n = 0

    def jump(self) -> None:
        """To the end of a random line."""
        line_start = self.text.find("\n", self.rng.randrange(len(self.text))) + 1
        end = self.text.find("\n", line_start)
        self.offset = end if end >= 0 else len(self.text)

    def key(self) -> None:
        roll = self.rng.random()
        if roll < 0.05 and self.offset > 0 and self.text[self.offset - 1] != "\n":  # Backspace
            start, end, new = self.offset - 1, self.offset, ""
        elif roll < 0.10:  # Enter, with the line's indentation
            line_start = self.text.rfind("\n", 0, self.offset) + 1
            indent = len(self.text[line_start:self.offset]) - len(self.text[line_start:self.offset].lstrip(" "))
            start = end = self.offset
            new = "\n" + " " * min(indent, 12)
        else:
            start = end = self.offset
            word = self.rng.choice(WORDS)
            new = word[self.rng.randrange(len(word))] if roll < 0.9 else self.rng.choice(" .(=:")
        p0, p1 = position_at(self.text, start), position_at(self.text, end)
        self.text = self.text[:start] + new + self.text[end:]
        self.offset = start + len(new)
        self.version += 1
        rng = {"start": {"line": p0.line, "character": p0.character}, "end": {"line": p1.line, "character": p1.character}}
        self.server.notify("textDocument/didChange", {"textDocument": {"uri": URI, "version": self.version},
                                                      "contentChanges": [{"range": rng, "text": new}]})
        if self.next_id > 1:
            self.server.notify("$/cancelRequest", {"id": self.next_id - 1})
        pos = position_at(self.text, self.offset)
        self.server.send({"jsonrpc": "2.0", "id": self.next_id, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": URI}, "position": {"line": pos.line, "character": pos.character},
            "context": {"triggerKind": 2}}})
        self.pending.add(self.next_id)
        self.next_id += 1

    def open_close(self) -> None:
        """Open another document; past five open, close the oldest."""
        self.side_n += 1
        uri = f"file:///project/side_{self.side_n}.py"
        self.server.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": big_file(200 + self.side_n % 50)}})
        self.side.append(uri)
        if len(self.side) > 5:
            self.server.notify("textDocument/didClose", {"textDocument": {"uri": self.side.pop(0)}})

    def collect(self) -> None:
        received = self.server.received
        for message in received[self.read:]:
            if "method" not in message and message.get("id") in self.pending:
                self.pending.discard(message["id"])
                self.answered += 1
                self.suggested += bool((message.get("result") or {}).get("items"))
        # what was counted is dropped: a long soak must not measure the client's own memory
        del received[:]
        self.read = 0


def soak(server: RawServer, fake: FakeModelServer, keys: int, seed: int) -> None:
    typist = Typist(server, big_file(2000), seed)
    server.notify("textDocument/didOpen", {"textDocument": {"uri": URI, "languageId": "python", "version": 1,
                                                            "text": typist.text}})
    print(f"soak: {keys} keystrokes into a 2,000-line file ({len(typist.text):,} characters), the previous request "
          "cancelled each time, a document opened (and the oldest of five closed) every 100 keys")
    print(f"{'keys':>7} {'RSS MB':>8} {'per 1,000 keys':>15}")
    rss = [server.rss_kb() / 1024]
    print(f"{0:>7} {rss[0]:>8.1f}")
    started = time.monotonic()
    for n in range(1, keys + 1):
        if n % 40 == 0:
            typist.jump()
        typist.key()
        if n % 100 == 0:
            typist.open_close()
        server.pump(0.002)
        if n % 1000 == 0:
            typist.collect()
            rss.append(server.rss_kb() / 1024)
            print(f"{n:>7} {rss[-1]:>8.1f} {rss[-1] - rss[-2]:>+15.2f}", flush=True)
    deadline = time.monotonic() + 30
    while typist.pending and time.monotonic() < deadline:
        server.pump(0.05)
        typist.collect()
    elapsed = time.monotonic() - started
    after_warmup = rss[-1] - rss[1] if len(rss) > 2 else float("nan")
    per_k = after_warmup / max(1, len(rss) - 2)
    print(f"growth after the first 1,000 keys: {after_warmup:+.2f} MB over {keys - 1000:,} keys "
          f"({per_k:+.2f} MB per 1,000 keys; target: within 5 MB); from the start {rss[-1] - rss[0]:+.2f} MB")
    print(f"{typist.answered:,} of {keys:,} requests answered ({typist.suggested:,} with a suggestion), "
          f"{len(typist.pending)} unanswered; {len(fake.generation_requests()):,} model calls; {elapsed:.0f} s, "
          f"{keys / elapsed:.0f} keys/s; {len(server.invalid)} answers not JSON")


def ping(server: RawServer, msg_id: str) -> float:
    """The round trip of a request the server answers at once (read straight from the reader thread's
    queue: ``RawServer.wait`` polls every 20 ms)."""
    t0 = time.perf_counter()
    server.send({"jsonrpc": "2.0", "id": msg_id, "method": "tandem/ping"})
    while True:
        message = server.inbox.get(timeout=30)
        if message is None:
            raise RuntimeError("the server closed its output")
        if message.get("id") == msg_id and "method" not in message:
            return time.perf_counter() - t0


def long_line(server: RawServer, label: str, line: str, keys: int) -> float:
    uri = f"file:///project/long_{label}.py"
    text = "import os\n" + line + "\n"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": text}})
    ping(server, f"{label}-open")
    character = position_at(text, len(text) - 1).character
    alone, with_key = [], []
    for k in range(keys):
        alone.append(ping(server, f"{label}-alone-{k}"))
        pos = {"line": 1, "character": character + k}
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": k + 2},
                                                 "contentChanges": [{"range": {"start": pos, "end": pos}, "text": "x"}]})
        with_key.append(ping(server, f"{label}-key-{k}"))
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    cost = (statistics.median(with_key) - statistics.median(alone)) * 1000
    print(f"  {label:<32} {cost:>7.2f} ms per keystroke (round trip {statistics.median(with_key) * 1000:.2f} ms, "
          f"of which the ping alone {statistics.median(alone) * 1000:.2f} ms)")
    return cost


def in_process(label: str, line: str, cls, keys: int = 5) -> float:
    """The same keystroke applied by a document class in this process (pygls's for comparison)."""
    text = "import os\n" + line + "\n"
    doc = cls(URI, source=text, version=1, sync_kind=types.TextDocumentSyncKind.Incremental)
    character = position_at(text, len(text) - 1).character
    times = []
    for k in range(keys):
        pos = types.Position(line=1, character=character + k)
        change = types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text="x")
        t0 = time.perf_counter()
        doc.apply_change(change)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--line-keys", type=int, default=30, help="keystrokes measured on each 1 MB line")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args(argv)

    lines = {
        "ASCII 1 MB line": "x = '" + "a" * 999_990 + "'",
        "non-ASCII 1 MB line (é, 😀)": "x = '" + ("é" * 99 + "😀") * 10_000 + "'",
    }
    with tempfile.TemporaryDirectory() as tmp, FakeModelServer(completion="return total\n") as fake:
        server = RawServer(Path(tmp))
        try:
            init = server.request(0, "initialize", {"processId": None, "rootUri": "file:///project", "capabilities": {},
                                                    "initializationOptions": local_settings(fake)})
            assert "capabilities" in init["result"], init
            server.notify("initialized", {})
            server.received.clear()
            print("a keystroke on a 1 MB line, server time (target: 20 ms):")
            for label, line in lines.items():
                long_line(server, label, line, args.line_keys)
            soak(server, fake, args.keys, args.seed)
        finally:
            server.close()
    print("the same keystroke applied in this process, by the document class:")
    for label, line in lines.items():
        print(f"  {label:<32} Tandem {in_process(label, line, TandemDocument):>8.3f} ms   "
              f"pygls {in_process(label, line, TextDocument, 3):>8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

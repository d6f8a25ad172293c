#!/usr/bin/env python3
"""Typing replay benchmark: how often a typist sees a correct suggestion, and how hard the model works.

A region of a real source file is removed (leaving an empty line) and typed back keystroke by keystroke at a realistic
speed (~55 ms between keys inside words, longer after spaces and punctuation, a pause at each line
end; Enter inserts the newline and the next line's indentation, as an editor's auto-indent does).
On every keystroke the client sends `didChange`, cancels the previous inline-completion request
(as VS Code does) and sends a new one. The model is the real-HTTP fake model server acting as an
oracle (it continues the original file) with a fixed first-token latency, so the figures measure
the pipeline — debounce, cancellation, typed-through cache, in-flight reuse, prefetch — not a model.
Two oracles (`--oracle`, both by default): "whole" answers with the rest of the region (up to
`local.maxTokens`), "realistic" at most three lines per call, as a real model does whose token limit
lasts a few lines. `--file PATH[:LINE]` (repeatable) replays other files, such as standard-library
modules the project has never seen.

Prints: model calls per keystroke, the share of keystrokes (and of line-end pauses, but the region's
last: what follows it is already in the document) answered with a correct suggestion before the next
key, latency p50/p95 of shown suggestions by source, aborted model calls (streams closed before the
end, which includes those the pipeline closes once it has the suggestion); a table of all runs; then
startup time and memory against a bare pygls server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import textwrap
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tandem_lsp.demo import position_at  # noqa: E402  (UTF-16 positions, as editors send them)
from tests.fakes.model_server import FakeModelServer  # noqa: E402

WORD_GAP_S = 0.055
SPACE_GAP_S = 0.120
LINE_END_PAUSE_S = 0.700
FIM_PREFIX, FIM_SUFFIX = "<|fim_prefix|>", "<|fim_suffix|>"


ORACLES = {"whole": None, "realistic": 3}  # the fake's max_lines per answer


def oracle(original: str, region_end: int, max_chars: int):
    """The fake model's script: continue the original file from where the prompt's prefix ends (the
    fake server then applies the request's token limit and, in the realistic mode, its line limit)."""

    def script(request) -> str:
        prompt = (request.body or {}).get("prompt", "")
        if FIM_PREFIX not in prompt:
            return ""
        prefix = prompt.split(FIM_PREFIX, 1)[1].split(FIM_SUFFIX, 1)[0]
        tail = prefix[-400:]
        pos = original.find(tail)
        if pos < 0:
            return ""
        start = pos + len(tail)
        return original[start : min(start + max_chars, region_end)]

    return script


def keystrokes(region: str) -> list[tuple[str, float]]:
    """(text inserted, gap before the next key) per keystroke; Enter brings the next indentation."""
    keys: list[tuple[str, float]] = []
    i = 0
    while i < len(region):
        ch = region[i]
        if ch == "\n":
            j = i + 1
            while j < len(region) and region[j] in " \t":
                j += 1
            keys.append((region[i:j], WORD_GAP_S))
            i = j
            continue
        at_line_end = i + 1 >= len(region) or region[i + 1] == "\n"
        gap = LINE_END_PAUSE_S if at_line_end else (SPACE_GAP_S if not (ch.isalnum() or ch == "_") else WORD_GAP_S)
        keys.append((ch, gap))
        i += 1
    return keys


async def start_server(client: LanguageClient, *cmd: str) -> asyncio.Task:
    """Start the server and keep reading its stderr, so a chatty log never blocks it on a full pipe."""
    await client.start_io(*cmd)

    async def drain() -> None:
        while await client._server.stderr.read(65536):
            pass

    return asyncio.ensure_future(drain())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def replay(
    source: Path, start_line: int, lines: int, latency: float, debounce, log_file: str | None, max_lines: int | None,
    max_tokens: int,
) -> dict:
    original = source.read_text()
    all_lines = original.splitlines(keepends=True)
    region_start = sum(len(x) for x in all_lines[:start_line])
    region_end = region_start + sum(len(x) for x in all_lines[start_line : start_line + lines])
    region = original[region_start : region_end - 1]  # typed back; the region's last newline stays

    fake = FakeModelServer(chunk_size=4, first_token_latency=latency, token_latency=0.002, max_lines=max_lines).start()
    fake.script = oracle(original, region_end, 600)
    client = LanguageClient("bench", "1")
    client.feature("tandem/status")(lambda _params: None)  # the server's status notifications: not measured here
    drain = await start_server(
        client, sys.executable, "-m", "tandem_lsp", *(["-v", "--log-file", log_file] if log_file else [])
    )
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={
                "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "maxTokens": max_tokens},
                "completion": {"debounceMs": debounce},
            },
        )
    )
    client.initialized(types.InitializedParams())
    uri = "file:///bench/" + source.name
    text = original[:region_start] + original[region_end - 1 :]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    )
    await asyncio.sleep(0.5)

    offset = region_start
    version = 1
    pending: tuple[str, asyncio.Future, float, int] | None = None
    results = []  # (correct before next key, at a pause, latency ms, source)
    misses = []  # (line, shown or None, what follows) at each pause without a correct suggestion
    keys = keystrokes(region)
    for n, (inserted, gap) in enumerate(keys):
        if pending is not None:
            msg_id, fut, _, _ = pending
            if not fut.done():
                client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        pos = position_at(text, offset)
        version += 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=types.Range(pos, pos), text=inserted)],
            )
        )
        text = text[:offset] + inserted + text[offset:]
        offset += len(inserted)
        msg_id = f"k{n}"
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
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # a cancelled request is expected
        pending = (msg_id, fut, sent, offset)
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), gap)
            latency_ms = (time.perf_counter() - sent) * 1000
        except (asyncio.TimeoutError, Exception):
            result, latency_ms = None, None
        if result is not None and latency_ms is not None:
            await asyncio.sleep(max(0.0, gap - latency_ms / 1000))
        ok = False
        source_kind = None
        if result is not None and getattr(result, "items", None):
            item = result.items[0]
            suggestion = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
            expected = original[region_start + (offset - region_start) :][: len(suggestion)]
            ok = bool(suggestion) and suggestion == expected
            source_kind = item.command.arguments[0]["source"] if item.command else "?"
        # the region's last line end is no pause to answer: what follows it is already in the document
        at_pause = gap == LINE_END_PAUSE_S and n < len(keys) - 1
        results.append((ok, at_pause, latency_ms if result else None, source_kind))
        if at_pause and not ok:
            shown_text = suggestion if result is not None and getattr(result, "items", None) else None
            misses.append((text.count("\n", 0, offset) + 1, shown_text, original[offset : offset + 60]))

    calls = fake.generation_requests()
    aborted = sum(1 for r in calls if r.hung_up)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    drain.cancel()
    fake.stop()

    shown = [r for r in results if r[2] is not None]
    by_source: dict[str, list[float]] = {}
    for _, _, lat, src in shown:
        by_source.setdefault(src, []).append(lat)
    pauses = [r for r in results if r[1]]
    return {
        "keystrokes": len(results),
        "model_calls": len(calls),
        "calls_per_key": len(calls) / len(results),
        "aborted": aborted,
        "correct_share": sum(r[0] for r in results) / len(results),
        "pause_share": sum(r[0] for r in pauses) / max(1, len(pauses)),
        "pauses": len(pauses),
        "p50": pct([r[2] for r in shown], 0.5),
        "p95": pct([r[2] for r in shown], 0.95),
        "by_source": {k: (len(v), pct(v, 0.5), pct(v, 0.95)) for k, v in sorted(by_source.items())},
        "misses": misses,
    }


BARE_SERVER = textwrap.dedent(
    """
    from pygls.lsp.server import LanguageServer
    LanguageServer("bare", "1").start_io()
    """
)


async def startup(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median time to the `initialize` answer (ms) and resident memory after it (MB)."""
    times, rss = [], []
    for _ in range(runs):
        client = LanguageClient("bench", "1")
        t0 = time.perf_counter()
        drain = await start_server(client, *cmd)
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        times.append((time.perf_counter() - t0) * 1000)
        client.initialized(types.InitializedParams())
        await asyncio.sleep(0.3)
        pid = client._server.pid
        status = Path(f"/proc/{pid}/status").read_text()
        rss.append(int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024)
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        drain.cancel()
    return statistics.median(times), statistics.median(rss)


def parse_file(spec: str, default_line: int) -> tuple[Path, int]:
    """PATH or PATH:LINE."""
    path, sep, line = spec.rpartition(":")
    if sep and line.isdigit():
        return Path(path), int(line)
    return Path(spec), default_line


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", action="append", dest="files", metavar="PATH[:LINE]",
                        help="source file to replay, from LINE (default --start-line); repeatable; default textwrap.py")
    parser.add_argument("--start-line", type=int, default=250, help="first line of the region typed back")
    parser.add_argument("--lines", type=int, default=60, help="lines in the region")
    parser.add_argument("--latency", type=float, default=0.150, help="fake model first-token latency, s")
    parser.add_argument("--debounce", default="auto")
    parser.add_argument("--max-tokens", type=int, default=128, help="local.maxTokens (the fake's tokens are 4 characters)")
    parser.add_argument("--oracle", choices=[*ORACLES, "both"], default="both",
                        help="whole: the rest of the region per call; realistic: at most three lines per call")
    parser.add_argument("--misses", action="store_true", help="list the line-end pauses without a correct suggestion")
    parser.add_argument("--startup-runs", type=int, default=5, help="0 skips the startup measurement")
    parser.add_argument("--server-log", help="write the server's debug log here (one file per run: NAME.FILE.ORACLE)")
    args = parser.parse_args()
    debounce = args.debounce if args.debounce == "auto" else int(args.debounce)
    files = [parse_file(f, args.start_line) for f in args.files or [str(Path(textwrap.__file__))]]
    modes = list(ORACLES) if args.oracle == "both" else [args.oracle]
    print(f"typing replay: {args.lines} lines per file, first-token latency {args.latency * 1000:.0f} ms, "
          f"debounce {args.debounce}, local.maxTokens {args.max_tokens}")
    rows = []
    for path, start in files:
        for mode in modes:
            log_file = f"{args.server_log}.{path.stem}.{mode}" if args.server_log else None
            r = await replay(path, start, args.lines, args.latency, debounce, log_file, ORACLES[mode], args.max_tokens)
            rows.append((f"{path.name}:{start}", mode, r))
            print(f"\n{path.name} lines {start}-{start + args.lines}, oracle {mode}: {r['keystrokes']} keystrokes")
            print(f"  model calls per keystroke      {r['calls_per_key']:.3f}  ({r['model_calls']} calls; "
                  "one request per key = 1.0)")
            print(f"  aborted model calls            {r['aborted']}")
            print(f"  keystrokes answered correctly  {r['correct_share'] * 100:.1f}%  (before the next key)")
            print(f"  line-end pauses answered       {r['pause_share'] * 100:.1f}%  ({r['pauses']} pauses)")
            print(f"  shown suggestion latency       p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms")
            for src, (count, p50, p95) in r["by_source"].items():
                print(f"    {src:<10} {count:5d} shown, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            if args.misses:
                for line, shown, expected in r["misses"]:
                    print(f"    missed pause at line {line}: shown {shown!r:.50} expected {expected!r:.50}")
    print(f"\n{'file':<22} {'oracle':<10} {'keys':>5} {'calls/key':>9} {'aborted':>9} {'correct':>8} "
          f"{'pauses':>8} {'p50 ms':>7} {'p95 ms':>7}")
    for name, mode, r in rows:
        print(f"{name:<22} {mode:<10} {r['keystrokes']:>5} {r['calls_per_key']:>9.3f} "
              f"{r['aborted']:>4}/{r['model_calls']:<4} {r['correct_share'] * 100:>7.1f}% {r['pause_share'] * 100:>7.1f}% "
              f"{r['p50']:>7.1f} {r['p95']:>7.1f}")
    if args.startup_runs <= 0:
        return
    tandem = await startup([sys.executable, "-m", "tandem_lsp"], args.startup_runs)
    bare = await startup([sys.executable, "-c", BARE_SERVER], args.startup_runs)
    print(f"startup (median of {args.startup_runs}): initialize answered in {tandem[0]:.0f} ms vs bare pygls "
          f"{bare[0]:.0f} ms ({tandem[0] / bare[0]:.2f}x); RSS {tandem[1]:.1f} MB vs {bare[1]:.1f} MB "
          f"({tandem[1] / bare[1]:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())

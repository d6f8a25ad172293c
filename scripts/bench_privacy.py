#!/usr/bin/env python3
"""Time the privacy gate (``tandem_lsp.privacy.redact``) on 64 KB prompts: p50/p95 in milliseconds.

Two prompts of 64 KB each, built from this repository's own code (Python, TypeScript, Lua, Markdown,
YAML/TOML/JSON config, shell): one as is ("clean"), one with a secret line of the privacy corpus
(``tests/data/privacy_corpus.jsonl``) after every ~1 KB ("with secrets", about 64 secrets). With
``--old``, the gate as committed at HEAD is timed too (``git show HEAD:server/tandem_lsp/privacy.py``).

    .venv/bin/python scripts/bench_privacy.py [--runs 50] [--size 65536] [--old]

It prints figures only; nothing here asserts a time (the machine may be shared).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

SOURCES = ("server/tandem_lsp", "clients", "docs", "scripts", ".ci")
SUFFIXES = (".py", ".ts", ".js", ".lua", ".el", ".md", ".json", ".toml", ".yaml", ".yml", ".sh")
SKIP = ("privacy", "node_modules", "package-lock", "/dist/", "/out/")


def code_sample(size: int) -> str:
    """``size`` characters of the repository's own source, in a stable order (no secrets in it)."""
    parts: list[str] = []
    total = 0
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if not path.is_file() or path.suffix not in SUFFIXES or any(s in rel for s in SKIP):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            piece = f"# ---- {rel}\n{text}\n"
            parts.append(piece)
            total += len(piece)
            if total >= size:
                return "".join(parts)[:size]
    text = "".join(parts)
    return (text * (size // max(1, len(text)) + 1))[:size]


def with_secrets(clean: str, every: int = 1024) -> tuple[str, int]:
    """The clean sample with a corpus secret line inserted after the first line break past each ``every``."""
    records = [json.loads(line) for line in (ROOT / "tests/data/privacy_corpus.jsonl").open(encoding="utf-8")]
    lines = [r["text"].replace("@@SECRET@@", "".join(r["secret"])) for r in records if r["secret"]]
    out, pos, n = [], 0, 0
    while pos < len(clean):
        cut = clean.find("\n", pos + every)
        cut = len(clean) if cut == -1 else cut + 1
        out.append(clean[pos:cut])
        if cut < len(clean):
            out.append(lines[(n * 37) % len(lines)] + "\n")
            n += 1
        pos = cut
    return "".join(out), n


def load_head_gate():
    """``redact`` of privacy.py as committed at HEAD (for a before/after comparison)."""
    source = subprocess.run(["git", "show", "HEAD:server/tandem_lsp/privacy.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "privacy_head.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("privacy_head", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["privacy_head"] = module
    spec.loader.exec_module(module)
    return module.redact


def timed(redact, text: str, runs: int) -> tuple[float, float, int]:
    redact(text)  # warm the caches once, as a running server has them
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _, counts = redact(text)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, sum(counts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--size", type=int, default=65_536)
    parser.add_argument("--old", action="store_true", help="also time the gate at HEAD")
    args = parser.parse_args()

    from tandem_lsp.privacy import redact

    clean = code_sample(args.size)
    dirty, planted = with_secrets(clean)
    gates = [("current", redact)]
    if args.old:
        gates.append(("HEAD", load_head_gate()))
    print(f"prompt: {len(clean):,} chars of repository code; with secrets: {len(dirty):,} chars, "
          f"{planted} secret lines planted; {args.runs} runs each")
    print(f"{'gate':<8} {'prompt':<13} {'p50 ms':>8} {'p95 ms':>8} {'redactions':>11}")
    for name, fn in gates:
        for label, text in (("clean", clean), ("with secrets", dirty)):
            p50, p95, n = timed(fn, text, args.runs)
            print(f"{name:<8} {label:<13} {p50:8.1f} {p95:8.1f} {n:11d}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Routing benchmark: does router.classify_ask send `tandem.ask` requests to the right brain?

By default loads the tuned set, tests/data/routing_requests.json (label "local": the task fits a
schema — classify, tag, extract, summarise, decide between given labels, a small rewrite; "cloud":
it is open-ended — planning, ambiguous, creative, synthesis across sources, debugging; optional
context_chars / files; split "dev" shaped the first features, each "blindN" round was routed once
before the router changed again, "shapes" holds the task shapes of issue 12). `--file PATH` routes a
held-out file instead: JSON Lines, one `{"prompt", "label", "shape", "why"}` per line
(tests/data/routing_heldout_N.jsonl), never tuned on.

Prints the confusion matrix, the accuracy overall and per split (target: >= 95 % on the tuned set,
>= 90 % on a held-out file), the share kept local, the estimated cloud cost against sending
everything to the cloud, the misrouted requests with the shape the router saw, and the recorded
first, blind score of each held-out round and blind round (the honest estimates of accuracy on
requests the router was not tuned against). `-v` adds every route, its shape and its cues.

Cost model per request: ~1,500 input tokens + context_chars / 4, ~400 output tokens, at Claude
Sonnet prices ($3 / MTok input, $15 / MTok output); local calls cost $0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from tandem_lsp.router import CLOUD, LOCAL, Route, classify_ask

DATA = ROOT / "tests" / "data" / "routing_requests.json"

BASE_INPUT_TOKENS = 1_500
CHARS_PER_TOKEN = 4
OUTPUT_TOKENS = 400
USD_PER_MTOK_IN = 3.0
USD_PER_MTOK_OUT = 15.0
TARGET_ACCURACY = 0.95  # the tuned set
HELDOUT_TARGET = 0.90  # a held-out file


@dataclass(frozen=True)
class Request:
    label: str
    prompt: str
    context_chars: int = 0
    files: int = 1
    split: str = "dev"
    hard: bool = False


@dataclass(frozen=True)
class Result:
    request: Request
    route: Route

    @property
    def correct(self) -> bool:
        return self.route.tier == self.request.label


def _rows(path: Path) -> list[dict]:
    """The labelled rows of `path`: {"requests": [...]} JSON, or JSON Lines (one request a line)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)["requests"]


def load_requests(path: Path = DATA) -> list[Request]:
    rows = _rows(path)
    default_split = "dev" if path.suffix != ".jsonl" else path.stem.removeprefix("routing_")
    out = []
    for row in rows:
        if row["label"] not in (LOCAL, CLOUD):
            raise ValueError(f"bad label {row['label']!r} in {path}")
        out.append(Request(row["label"], row["prompt"], int(row.get("context_chars", 0)),
                           int(row.get("files", 1)), row.get("split", default_split),
                           bool(row.get("hard", False))))
    return out


def route_all(requests: list[Request]) -> list[Result]:
    return [Result(r, classify_ask(r.prompt, context_chars=r.context_chars, files=r.files)) for r in requests]


def accuracy(results: list[Result]) -> float:
    return sum(r.correct for r in results) / len(results) if results else 0.0


def cloud_cost_usd(req: Request) -> float:
    tokens_in = BASE_INPUT_TOKENS + req.context_chars / CHARS_PER_TOKEN
    return tokens_in * USD_PER_MTOK_IN / 1e6 + OUTPUT_TOKENS * USD_PER_MTOK_OUT / 1e6


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_blind_history(path: Path = DATA) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8")).get("blind_history", [])


def load_heldout_history(path: Path = DATA) -> list[dict]:
    """Each held-out round's first, blind score (recorded once, never revised)."""
    return json.loads(path.read_text(encoding="utf-8")).get("heldout_history", [])


def target_for(path: Path) -> float:
    return HELDOUT_TARGET if path.suffix == ".jsonl" else TARGET_ACCURACY


def report(results: list[Result], *, verbose: bool = False, history: list[dict] | None = None,
           source: Path = DATA, heldout: list[dict] | None = None) -> str:
    lines: list[str] = []
    n = len(results)
    counts = {(a, p): 0 for a in (LOCAL, CLOUD) for p in (LOCAL, CLOUD)}
    for r in results:
        counts[(r.request.label, r.route.tier)] += 1

    lines.append(f"{n} labelled requests ({sum(r.request.label == LOCAL for r in results)} local, "
                 f"{sum(r.request.label == CLOUD for r in results)} cloud) from {_shown(source)}")
    lines.append("")
    lines.append("Confusion matrix (rows: label, columns: routed to)")
    lines.append(f"{'':>14}{'local':>8}{'cloud':>8}")
    for a in (LOCAL, CLOUD):
        lines.append(f"{'label ' + a:>14}{counts[(a, LOCAL)]:>8}{counts[(a, CLOUD)]:>8}")
    lines.append("")

    acc = accuracy(results)
    target = target_for(source)
    lines.append(f"accuracy            {_pct(acc)}  ({sum(r.correct for r in results)}/{n}; "
                 f"target {_pct(target).strip()}: {'met' if acc >= target else 'NOT met'})")
    for split in sorted({r.request.split for r in results}):
        part = [r for r in results if r.request.split == split]
        lines.append(f"  {split:<17} {_pct(accuracy(part))}  ({sum(r.correct for r in part)}/{len(part)})")
    hard = [r for r in results if r.request.hard]
    if hard:
        lines.append(f"  {'hard cases':<17} {_pct(accuracy(hard))}  ({sum(r.correct for r in hard)}/{len(hard)})")
    kept_local = sum(r.route.tier == LOCAL for r in results) / n
    lines.append(f"kept local          {_pct(kept_local)}  (labelled local: "
                 f"{_pct(sum(r.request.label == LOCAL for r in results) / n).strip()})")
    lines.append("")

    all_cloud = sum(cloud_cost_usd(r.request) for r in results)
    routed = sum(cloud_cost_usd(r.request) for r in results if r.route.tier == CLOUD)
    lines.append("Estimated cost (1,500 + context/4 input tokens, 400 output tokens; $3 / $15 per MTok)")
    lines.append(f"  everything to the cloud   ${all_cloud:8.4f}   (${all_cloud / n:.4f} / request)")
    lines.append(f"  routed                    ${routed:8.4f}   (${routed / n:.4f} / request)")
    saving = all_cloud - routed
    lines.append(f"  saving                    ${saving:8.4f}   ({_pct(saving / all_cloud).strip()})")
    lines.append("")

    wrong = [r for r in results if not r.correct]
    lines.append(f"Misrouted ({len(wrong)})" + (":" if wrong else ""))
    for r in wrong:
        q = r.request
        size = f" [{q.context_chars:,} chars, {q.files} files]" if q.context_chars or q.files != 1 else ""
        tags = f" ({q.split}{', hard' if q.hard else ''})"
        prompt = " ".join(q.prompt.split())
        if len(prompt) > 90:
            prompt = prompt[:87] + "..."
        lines.append(f"  labelled {q.label}, routed {r.route.tier}{tags}: {prompt!r}{size}")
        lines.append(f"      {r.route.reason}")
    if heldout:
        lines.append("")
        lines.append("Held-out rounds (tests/data/routing_heldout_N.jsonl): first, blind score, never revised")
        for h in heldout:
            score = f"{_pct(h['correct'] / h['total'])}  ({h['correct']}/{h['total']})"
            lines.append(f"  {Path(h['file']).stem:<18} {score}  {h.get('note', '')}")
    if history:
        lines.append("")
        lines.append("Blind rounds: accuracy the first time each round was routed (before any change it prompted)")
        for h in history:
            lines.append(f"  {h['split']:<8} {_pct(h['correct'] / h['total'])}  ({h['correct']}/{h['total']})  "
                         f"{h.get('note', '')}")
        c, t = sum(h["correct"] for h in history), sum(h["total"] for h in history)
        lines.append(f"  {'pooled':<8} {_pct(c / t)}  ({c}/{t})")
    if verbose:
        lines.append("")
        lines.append("All routes:")
        for r in results:
            mark = " " if r.correct else "X"
            lines.append(f" {mark} {r.request.label:>5} -> {r.route.tier:<5} {r.route.score:+5.1f}  "
                         f"{r.route.shape or '-':<11} {' '.join(r.request.prompt.split())[:70]!r}")
            lines.append(f"{'':>22}{', '.join(f'{n} {w:+g}' for n, w in r.route.features)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="also print every route and its features")
    ap.add_argument("--split", help="only this split (dev, blind1 … blind6, shapes)")
    ap.add_argument("--file", type=Path, default=DATA,
                    help="labelled requests to route: the tuned set (default) or a held-out .jsonl file")
    args = ap.parse_args(argv)
    requests = load_requests(args.file)
    if args.split:
        requests = [r for r in requests if r.split == args.split]
        if not requests:
            ap.error(f"no requests in split {args.split!r}")
    results = route_all(requests)
    tuned = args.file.suffix != ".jsonl"
    if tuned and not args.split:
        history, heldout = load_blind_history(args.file), load_heldout_history(args.file)
    elif not tuned:  # this file's own recorded first score, for comparison with the current one
        shown = _shown(args.file)
        history, heldout = None, [h for h in load_heldout_history() if h["file"] == shown]
    else:
        history = heldout = None
    print(report(results, verbose=args.verbose, history=history, source=args.file, heldout=heldout))
    return 0 if accuracy(results) >= target_for(args.file) else 1


if __name__ == "__main__":
    raise SystemExit(main())

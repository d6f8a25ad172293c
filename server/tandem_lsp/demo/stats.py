"""The statistics: ``tandem.stats`` after the session, in sentences rather than JSON."""

from __future__ import annotations

from tandem_lsp.demo.common import SOURCE_LABELS, Screen, plain, plural


def _by_source(counts: dict) -> str:
    parts = [f"{n} {SOURCE_LABELS.get(source, source).replace('typed-through ', '')}"
             for source, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n]
    return ", ".join(parts)


def stats_lines(s: dict) -> list[tuple[str, str]]:
    """(heading, sentence) rows for a ``tandem.stats`` result."""
    local, cloud = s.get("local") or {}, s.get("cloud") or {}
    cache, comp = s.get("cache") or {}, s.get("completions") or {}
    rows: list[tuple[str, str]] = []

    requests, calls, prefetch = comp.get("requests", 0), comp.get("model_calls", 0), comp.get("prefetch_calls", 0)
    answered = [plural(calls, "model call")]
    if prefetch:
        answered[0] += f" (+{prefetch} prefetched)"
    if comp.get("cache_answers"):
        answered.append(f"{comp['cache_answers']} from the typed-through cache")
    if comp.get("inflight_answers"):
        answered.append(f"{comp['inflight_answers']} by reusing a request in flight")
    rows.append(("suggestions", f"{plural(requests, 'request')}: " + ", ".join(answered)))

    accepted = {k: v for k, v in (comp.get("accepted") or {}).items() if isinstance(v, int)}
    total = sum(accepted.values())
    rows.append(("accepted", f"{total} with Tab ({_by_source(accepted)})" if total else "none"))

    hits, misses = cache.get("hits", 0), cache.get("misses", 0)
    rate = f" ({100 * hits / (hits + misses):.0f}% hits)" if hits + misses else ""
    rows.append(("cache", f"{plural(hits, 'hit')}, {plural(misses, 'miss', 'misses')}{rate}"))

    p50 = local.get("latencyMsP50")
    commands = f"{plural(local.get('calls', 0), 'local call')}" + (f" (median {p50:.0f} ms)" if p50 is not None else "")
    commands += f", {plural(cloud.get('calls', 0), 'cloud call')}" if cloud.get("calls") else ", no cloud calls"
    fallbacks = s.get("fallbacks", 0) or 0
    if fallbacks:
        commands += f"; {plural(fallbacks, 'answer')} fell back to the local model"
    rows.append(("commands", commands))

    cost, saved = s.get("costUsd", 0) or 0, s.get("savedUsd", 0) or 0
    spend = f"${cost:.4f} on the cloud today"
    if saved:
        spend += f"; the local calls saved ${saved:.4f} (what they would have cost on the cloud)"
    rows.append(("spend", spend))
    return rows


async def show_stats(client, screen: Screen) -> dict:
    """Ask the server for ``tandem.stats``, print it; return the result."""
    import asyncio

    from lsprotocol import types

    result = await asyncio.wait_for(client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="tandem.stats", arguments=[])), 30)
    s = plain(result) or {}
    screen.say(f"\n{screen.bold('tandem.stats')}:")
    for heading, sentence in stats_lines(s):
        screen.say(f"  {heading:<12} {sentence}")
    return s

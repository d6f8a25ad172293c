"""``tandem-lsp doctor``: which local model server is found, its models, the FIM template, how fast it
reads and writes and the prompt size that gives (with the server flags that would help), one timed test
completion, and whether a cloud key is present (never the key). Exit 1 when no local model works."""

from __future__ import annotations

import asyncio
import os
import time

from tandem_lsp.config import parse_settings

START_COMMANDS = [
    ("LM Studio", "lms server start    (or start the server in LM Studio's Developer tab; load a FIM model such as qwen2.5-coder-1.5b)"),
    ("Ollama", "ollama serve    and    ollama pull qwen2.5-coder:1.5b-base"),
    ("llama.cpp", "llama-server --fim-qwen-1.5b-default"),
]

TEST_PREFIX = "def fibonacci(n):\n    "
TEST_SUFFIX = "\n\n\nprint(fibonacci(10))\n"
MANAGER_LOGGER = "tandem_lsp.backends.manager"


def embedded_install_hint() -> str:
    """The pip command the embedded line needs first when llama-cpp-python is not installed."""
    import importlib.util

    return "" if importlib.util.find_spec("llama_cpp") else "pip install 'tandem-lsp[embedded]' && "


def no_model_reason(detail: str, settings) -> str:
    """Why there is no local model, in one clause for a terminal: the server's status detail without the
    advice that follows it (the CLI prints its own list of commands), plus where model files are looked for."""
    from tandem_lsp.model_files import default_model_path, models_dir

    reason = detail.strip()
    for cut in ("; start one", ": run `", "; run `", ". Completions"):
        at = reason.find(cut)
        if at > 0:
            reason = reason[:at]
    reason = reason.rstrip(". ") or "no local model answered"
    if settings.local.backend in ("auto", "embedded") and not settings.local.model_path and default_model_path() is None:
        reason += f" in {models_dir()}" if reason.endswith("no model file") else f"; no model file in {models_dir()}"
    return reason


def how_to_get_a_model(command: str) -> str:
    """The commands that give Tandem a local model, one per line, then how to check again."""
    from tandem_lsp.model_files import RECOMMENDED, models_dir

    lines = [f"Start one of these, then run `{command}` again:"]
    lines += [f"  {name:<10} {how}" for name, how in START_COMMANDS]
    lines.append(f"  {'embedded':<10} {embedded_install_hint()}tandem-lsp models pull {RECOMMENDED}    "
                 f"(no server needed; 1.6 GB)")
    lines.append(f"  {'':<10} or copy any GGUF file into {models_dir()}/ (or pass --model-path FILE)")
    return "\n".join(lines)


def _settings(args):
    from tandem_lsp.cli import settings_tree

    return parse_settings(settings_tree(args))


async def _check(settings, out) -> bool:
    from tandem_lsp.backends.manager import LocalModel
    from tandem_lsp.completion.context import build_context
    from tandem_lsp.completion.postprocess import postprocess
    from tandem_lsp.completion.request import CompletionRequest
    from tandem_lsp.completion.templating import build_generation, pick_template

    model = LocalModel(settings.local)
    try:
        backend = await model.ensure()
        deadline = time.monotonic() + 120
        told = False
        while backend is None and model.status.state == "starting" and time.monotonic() < deadline:
            if not told and model.status.detail:
                out("loading", model.status.detail.removeprefix("loading "))  # "embedded model NAME…"
                told = True
            await asyncio.sleep(0.2)  # an embedded model is loading in the background
            backend = await model.ensure()
        if backend is None:
            detail = model.status.detail if model.status.state == "down" else "the embedded model did not load in 120 s"
            out("local model", f"NONE: {no_model_reason(detail, settings)}")
            return False
        template = pick_template(settings.local.fim_template, backend.model,
                                 native_fim=bool(getattr(backend, "fim_ids", None)))
        out("local backend", backend.name)
        out("model file" if backend.name == "embedded" else "endpoint", backend.endpoint)
        try:
            models = await asyncio.wait_for(backend.list_models(), 3.0)
        except Exception as exc:  # doctor reports, never crashes
            models = []
            out("models", f"could not list ({exc})")
        else:
            out("models", ", ".join(models) if models else "(none listed)")
        out("model in use", backend.model or "(server default)")
        out("FIM template", template.name)
        _speed(getattr(backend, "profile", None), settings, out)
        text = TEST_PREFIX + TEST_SUFFIX
        ctx = build_context(CompletionRequest(uri="file:///doctor.py", text=text, offset=len(TEST_PREFIX)), 8000, 2000)
        request = build_generation(ctx, template, model=backend.model, max_tokens=48,
                                   timeout_ms=settings.local.timeout_ms)
        t0 = time.monotonic()
        raw = ""
        first = None
        try:
            async with asyncio.timeout(max(settings.local.timeout_ms / 1000.0, 10.0)):
                async for chunk in backend.stream(request):
                    first = first or time.monotonic()
                    raw += chunk
        except Exception as exc:
            out("test completion", f"FAILED: {type(exc).__name__}: {exc}")
            return False
        total = (time.monotonic() - t0) * 1000
        shown = postprocess(raw, ctx, multiline="auto", stop=request.stop) or raw
        ttft = f"{(first - t0) * 1000:.0f} ms to first token, " if first else ""
        out("test completion", f"OK: {ttft}{total:.0f} ms total")
        out("suggestion", repr(shown[:80]))
        return True
    finally:
        await model.aclose()


def _speed(profile, settings, out) -> None:
    """The server's measured speed, the prompt it will get, what a keystroke and a new file cost, and flags."""
    from tandem_lsp.completion.sizing import budget

    if profile is None:
        return
    if profile.read_tps:
        out("reads", f"{profile.read_tps:.0f} prompt tokens/s")
    if profile.write_tps:
        out("writes", f"{profile.write_tps:.0f} tokens/s")
    if profile.n_ctx:
        out("context", f"{profile.n_ctx} tokens" + (f", batch {profile.n_batch}" if profile.n_batch else ""))
    cs, ls = settings.completion, settings.local
    b = budget(profile, cs.max_prefix_chars, cs.max_suffix_chars, ls.max_tokens)
    cpt = profile.chars_per_token or 3.0
    if profile.sizes_itself:
        out("prompt", "sized by the embedded model to its reading speed")
    elif b.sized:
        out("prompt", f"{b.prefix:,} characters before the cursor for a new file (up to {b.max_prefix:,} while "
                      f"typing), {b.suffix:,} after it")
    else:
        out("prompt", f"{b.prefix:,} + {b.suffix:,} characters (completion.maxPrefixChars/maxSuffixChars)")
    if profile.read_tps and not profile.sizes_itself:
        keystroke = (b.suffix / cpt + 24) / profile.read_tps + 1 / (profile.write_tps or 20)
        fresh = (b.prefix + b.snippets + b.suffix) / cpt / profile.read_tps
        out("expect", f"about {keystroke:.1f} s to the first token while typing, {fresh:.1f} s to read a newly "
                      "opened file once")
        if keystroke > 0.75:  # typing outpaces it: suggestions come a word late
            out("advice", "this server is slow for typing: use a smaller model (qwen2.5-coder-0.5b), a GPU, or "
                          "lower completion.maxSuffixChars")
    for hint in profile.hints:
        out("server flag", hint)


def run_doctor(args) -> int:
    import logging

    settings, problems = _settings(args)
    rows: list[tuple[str, str]] = []

    def out(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<16} {value}", flush=True)

    print(f"Tandem doctor (local.backend={settings.local.backend})")
    for problem in problems:
        out("settings", problem)
    manager_log = logging.getLogger(MANAGER_LOGGER)
    if not getattr(args, "verbose", False):
        manager_log.setLevel(logging.ERROR)  # its status messages are for editors; the rows above say it once
    ok = asyncio.run(_check(settings, out))
    key_env = settings.cloud.api_key_env
    present = bool(os.environ.get(key_env))
    out("cloud key", f"{key_env} is {'set' if present else 'not set'}" + ("" if present else " (cloud commands will answer locally)"))
    out("cloud", f"{'enabled' if settings.cloud.enabled else 'disabled'}, model {settings.cloud.model}, "
                 f"daily budget ${settings.cloud.daily_budget_usd:.2f}")
    if ok:
        print("Local model: usable.")
        return 0
    print("\nNo usable local model. " + how_to_get_a_model("tandem-lsp doctor"))
    return 1

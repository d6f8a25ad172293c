#!/usr/bin/env python3
"""Embedded-backend speed on this machine, with models of the real Qwen2.5-Coder shapes.

No model can be downloaded here, so the script writes GGUF files with the exact tensor shapes and
quantization of Qwen2.5-Coder 0.5B / 1.5B (Q8_0) and random weights: llama.cpp does the same work
per token whatever the weights are, so the timings are the real model's on this CPU; the text is
noise. The vocabulary is byte-level (one character is one token; real Qwen code averages about 3.5
characters per token), padded to Qwen's 151,936 entries with its special tokens at their real ids,
so the output layer costs what it really costs.

It drives ``EmbeddedBackend`` (the code the server uses) and prints, per model:

- load time; prompt reading speed (a cold 1,024-token prompt) and generation speed;
- the cost of one keystroke once the file is cached, as a function of the suffix length: with the
  PSM fill-in-the-middle layout Qwen uses (``<PRE> prefix <SUF> suffix <MID>``), a keystroke changes
  the end of the prefix, so the suffix behind it is read again on every request;
- how the default prompt bounds fare: time to the first suggestion in a freshly opened file, and the
  keystroke cost, with the backend's own suffix budget.

Usage: ``python scripts/bench_embedded.py [--sizes 0.5b,1.5b] [--dir DIR] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))

from tandem_lsp.backends.embedded import EmbeddedBackend  # noqa: E402
from tandem_lsp.completion.request import GenerationRequest  # noqa: E402
from tests.fakes.tiny_gguf import _bytes_to_unicode  # noqa: E402  (GPT-2's byte-level alphabet)

# (n_embd, n_layer, n_head, n_head_kv, n_ff) of Qwen2.5-Coder's config.json files
SHAPES = {
    "0.5b": (896, 24, 14, 2, 4864),
    "1.5b": (1536, 28, 12, 2, 8960),
    "3b": (2048, 36, 16, 2, 11008),
}
N_VOCAB = 151_936
QWEN_SPECIALS = {  # Qwen2.5's special tokens at their real ids
    151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>",
    151659: "<|fim_prefix|>", 151660: "<|fim_middle|>", 151661: "<|fim_suffix|>", 151662: "<|fim_pad|>",
    151663: "<|repo_name|>", 151664: "<|file_sep|>",
}
CODE = (ROOT / "server" / "tandem_lsp" / "completion" / "pipeline.py").read_text(encoding="utf-8")


def write_shaped_gguf(path: Path, size: str, seed: int = 0) -> Path:
    """A Qwen2.5-Coder-shaped Q8_0 GGUF with random weights (see the module docstring)."""
    import gguf
    import numpy as np
    from gguf import quants

    n_embd, n_layer, n_head, n_kv, n_ff = SHAPES[size]
    head_dim = n_embd // n_head
    rng = np.random.default_rng(seed)
    q8 = gguf.GGMLQuantizationType.Q8_0
    const = n_embd - 1  # held at 1 so the output layer can keep special tokens from being sampled

    byte_chars = _bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)]
    printable = [0x20 <= b < 0x7F or b == 0x0A for b in range(256)]
    types = [int(gguf.TokenType.NORMAL)] * 256
    for i in range(256, N_VOCAB):
        special = QWEN_SPECIALS.get(i)
        tokens.append(special or f"<|unused_{i}|>")
        types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.UNUSED))
        printable.append(False)

    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name(f"qwen2.5-coder-{size}-shaped-random")
    w.add_context_length(32768)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t"])
    w.add_bos_token_id(151643)
    w.add_eos_token_id(151643)
    w.add_add_bos_token(False)

    def noise(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float32)

    def add_q8(name: str, a: np.ndarray) -> None:
        w.add_tensor(name, quants.quantize(a, q8), raw_dtype=q8)

    embd = noise(N_VOCAB, n_embd, 0.02)
    embd[:, const] = 1.0
    add_q8("token_embd.weight", embd)
    del embd
    for i in range(n_layer):
        s_in, s_ff = 0.2 / np.sqrt(n_embd), 0.2 / np.sqrt(n_ff)
        add_q8(f"blk.{i}.attn_q.weight", noise(n_embd, n_embd, s_in))
        add_q8(f"blk.{i}.attn_k.weight", noise(n_kv * head_dim, n_embd, s_in))
        add_q8(f"blk.{i}.attn_v.weight", noise(n_kv * head_dim, n_embd, s_in))
        w.add_tensor(f"blk.{i}.attn_q.bias", np.zeros(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_k.bias", np.zeros(n_kv * head_dim, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_v.bias", np.zeros(n_kv * head_dim, dtype=np.float32))
        out = noise(n_embd, n_embd, s_in)
        out[const, :] = 0.0
        add_q8(f"blk.{i}.attn_output.weight", out)
        add_q8(f"blk.{i}.ffn_gate.weight", noise(n_ff, n_embd, s_in))
        add_q8(f"blk.{i}.ffn_up.weight", noise(n_ff, n_embd, s_in))
        down = noise(n_embd, n_ff, s_ff)
        down[const, :] = 0.0
        add_q8(f"blk.{i}.ffn_down.weight", down)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    out = noise(N_VOCAB, n_embd, 1.0)
    out[:, const] = np.where(np.array(printable), 0.0, -60.0)
    add_q8("output.weight", out)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gen_request(prefix: str, suffix: str, max_tokens: int, timeout_ms: int = 600_000) -> GenerationRequest:
    return GenerationRequest(prefix=prefix, suffix=suffix, prompt="", max_tokens=max_tokens, timeout_ms=timeout_ms)


async def timed(backend: EmbeddedBackend, req: GenerationRequest) -> tuple[float | None, float, int]:
    """(ms to the first text, ms in all, characters generated)."""
    t0 = time.perf_counter()
    first = None
    n = 0
    async for chunk in backend.stream(req):
        if first is None:
            first = (time.perf_counter() - t0) * 1000
        n += len(chunk)
    return first, (time.perf_counter() - t0) * 1000, n


async def bench(path: Path, size: str) -> None:
    backend = EmbeddedBackend(path)
    t0 = time.perf_counter()
    await backend.load()
    load_s = time.perf_counter() - t0
    print(f"\n== Qwen2.5-Coder {size.upper()} shape, Q8_0, {path.stat().st_size / 1e9:.2f} GB, "
          f"{os.cpu_count()} cores; loaded in {load_s:.1f} s ==")
    try:
        # reading a cold prompt, and generating
        prefix = CODE[:1024]
        await timed(backend, gen_request("x", "", 1))  # warm-up
        t0 = time.perf_counter()
        await timed(backend, gen_request(prefix, "", 1))
        read_s = time.perf_counter() - t0
        read_tps = backend.last_prompt_tokens_evaluated / read_s
        gens = []
        for _ in range(3):
            before = backend.tokens_generated
            t0 = time.perf_counter()
            await timed(backend, gen_request(prefix, "", 32))
            took = time.perf_counter() - t0
            gens.append((backend.tokens_generated - before) / took)  # its prompt is cached: ~all generation
        gen_tps = statistics.median(gens)
        print(f"  reads a new prompt at {read_tps:,.0f} tokens/s; generates {gen_tps:,.1f} tokens/s")

        # the cost of one keystroke, by suffix length
        print("  one keystroke with the file cached, the suffix not capped (time to the first text; 16 tokens in all):")
        adaptive = backend.suffix_budget
        backend.suffix_budget = lambda room: room // 4
        backend.prompt_limit = backend.n_ctx  # no prompt bound either, for this table
        print(f"    {'suffix tokens':>13}  {'first text':>10}  {'16 tokens':>9}  {'prompt tokens read':>18}")
        base = CODE[:2000]
        for suffix_len in (0, 32, 128, 512):
            suffix = CODE[2000 : 2000 + suffix_len]
            await timed(backend, gen_request(base, suffix, 1))  # cache the file
            firsts, totals, reads = [], [], []
            text = base
            for ch in CODE[2000 + suffix_len : 2000 + suffix_len + 5]:
                text += ch
                first, total, _ = await timed(backend, gen_request(text, suffix, 16))
                firsts.append(first if first is not None else total)
                totals.append(total)
                reads.append(backend.last_prompt_tokens_evaluated)
            print(f"    {suffix_len:>13}  {statistics.median(firsts):>7.0f} ms  {statistics.median(totals):>6.0f} ms"
                  f"  {statistics.median(reads):>18.0f}")

        # a fresh server with the pipeline's default bounds: open a file, then type in it
        backend.suffix_budget = adaptive
        await backend.aclose()
        backend = EmbeddedBackend(path)
        await backend.load()
        big_prefix, big_suffix = CODE[:8000], CODE[8000:10000]
        print("  a fresh server, the pipeline's default bounds (8,000 prefix / 2,000 suffix characters):")
        for label, file_prefix in (("opening a file", big_prefix), ("switching to another", CODE[1000:9000])):
            req = gen_request(file_prefix, big_suffix, 16)
            tokens = await asyncio.get_running_loop().run_in_executor(backend._executor, backend.prompt_tokens, req)
            first, total, _ = await timed(backend, req)
            print(f"    {label}: first text after {first or total:,.0f} ms ({len(tokens):,} prompt tokens)")
        print(f"    -> measured {backend.read_tokens_per_s:,.0f} tokens/s: prompts at most {backend.prompt_budget():,}"
              f" tokens, suffixes {backend.suffix_budget(backend.prompt_budget())}")
        firsts = []
        text = CODE[1000:9000]
        for ch in "    retur":
            text += ch
            f, t, _ = await timed(backend, gen_request(text, big_suffix, 16))
            firsts.append(f if f is not None else t)
        print(f"    then each keystroke: first text after {statistics.median(firsts):,.0f} ms (median of "
              f"{len(firsts)}), reading {backend.last_prompt_tokens_evaluated} tokens")

        # typing new lines at the end of a long file, through the pipeline's context stage: the text
        # window's start moves now and then, and the prompt's token budget fills up
        from tandem_lsp.completion import context as context_stage

        typed = "def total(values):\n    result = 0\n    for v in values:\n        result += v\n    return res"
        base_text = CODE[:12000] + "\n\n"
        await timed(backend, gen_request("unrelated", "", 1))
        reads, slow = [], 0
        for k in range(len(typed) + 1):
            text = base_text + typed[:k]
            ctx = context_stage.build_context(
                context_stage.CompletionRequest("file:///bench.py", text, len(text)), 8000, 2000)
            first, total, _ = await timed(backend, gen_request(ctx.prefix, ctx.suffix, 4))
            if k:  # the first request reads the file once
                reads.append(backend.last_prompt_tokens_evaluated)
                slow += (first if first is not None else total) > 1000
        print(f"  typing {len(typed)} keys ({typed.count(chr(10))} new lines) at the end of a 12,000-character file: "
              f"{statistics.mean(reads):.1f} prompt tokens read per key; {sum(r > 100 for r in reads)} keys re-read "
              f"the prompt, {slow} waited over 1 s")
    finally:
        await backend.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.5b,1.5b", help="comma-separated: 0.5b, 1.5b, 3b")
    parser.add_argument("--dir", help="where to write the model files (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the model files (and reuse them next time)")
    args = parser.parse_args()
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    for size in args.sizes.split(","):
        size = size.strip().lower()
        path = directory / f"qwen2.5-coder-{size}-shaped-q8_0.gguf"
        if not path.is_file():
            t0 = time.perf_counter()
            write_shaped_gguf(path, size)
            print(f"(wrote {path.name} in {time.perf_counter() - t0:.0f} s)")
        try:
            asyncio.run(bench(path, size))
        finally:
            if not args.keep:
                path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A tiny but structurally valid llama-architecture GGUF model, written in a few ms with no download.

2 blocks, 64-wide, context 256 (``n_ctx`` declares another), a byte-level GPT-2 vocabulary (any text
tokenizes) plus Qwen's FIM special tokens. Weights are deterministic noise, shaped so the model only
ever emits printable ASCII (one hidden channel is held constant and every non-printable token gets a
large negative weight on it), so its text is noise but every token is real text.

Used by tests of the embedded backend and of real model servers (tests/realservers.py): real loading,
tokenizing, FIM, streaming and cancellation.
"""

from __future__ import annotations

from pathlib import Path

N_CTX = 256
N_EMBD = 64
N_FF = 128
N_LAYER = 2
N_HEAD = 4
ROPE_DIM = 16
CONST = N_EMBD - 1  # the hidden channel held constant (see the module docstring)

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
    "<|im_start|>", "<|im_end|>",
)
MERGES = (("Ġ", "t"), ("e", "r"), ("i", "n"), ("r", "e"), ("o", "n"), ("Ġ", "a"), ("d", "e"), ("Ġ", "s"))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character mapping."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _printable(byte: int) -> bool:
    return 0x20 <= byte < 0x7F or byte == 0x0A


def tiny_vocab() -> tuple[list[str], list[int], list[bool]]:
    """(tokens, token types, printable flags)."""
    import gguf

    byte_chars = _bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)]
    printable = [_printable(b) for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    for a, b in MERGES:
        tokens.append(a + b)
        types.append(gguf.TokenType.NORMAL)
        printable.append(True)
    for special in SPECIAL_TOKENS:
        tokens.append(special)
        types.append(gguf.TokenType.CONTROL)
        printable.append(False)
    return tokens, [int(t) for t in types], printable


def write_tiny_gguf(path: str | Path, *, seed: int = 0, fim_metadata: bool = True, n_ctx: int = N_CTX) -> Path:
    """Write the tiny model to ``path`` (about 0.5 MB) and return the path. ``fim_metadata=False`` leaves
    out the ``tokenizer.ggml.fim_*_token_id`` keys, as older conversions do: llama.cpp then finds the FIM
    tokens by their text. ``n_ctx`` is the training context the model declares (``llama.context_length``):
    what a server that takes its context from the model (llama-server's default) will use."""
    import gguf
    import numpy as np

    path = Path(path)
    tokens, types, printable = tiny_vocab()
    n_vocab = len(tokens)
    ids = {t: i for i, t in enumerate(tokens)}
    rng = np.random.default_rng(seed)

    def noise(*shape: int, scale: float = 0.1) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(n_ctx)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(ROPE_DIM)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(0)  # F32

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in MERGES])
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_eos_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    if fim_metadata:
        w.add_uint32(gguf.Keys.Tokenizer.FIM_PRE_ID, ids["<|fim_prefix|>"])
        w.add_uint32(gguf.Keys.Tokenizer.FIM_SUF_ID, ids["<|fim_suffix|>"])
        w.add_uint32(gguf.Keys.Tokenizer.FIM_MID_ID, ids["<|fim_middle|>"])
        w.add_uint32(gguf.Keys.Tokenizer.FIM_PAD_ID, ids["<|fim_pad|>"])

    # numpy shapes are the reverse of llama.cpp's: (out, in)
    embd = noise(n_vocab, N_EMBD, scale=0.05)
    embd[:, CONST] = 1.0  # the constant channel
    w.add_tensor("token_embd.weight", embd)
    for i in range(N_LAYER):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            t = noise(N_EMBD, N_EMBD)
            if name == "attn_output":
                t[CONST, :] = 0.0  # nothing writes to the constant channel
            w.add_tensor(f"blk.{i}.{name}.weight", t)
        w.add_tensor(f"blk.{i}.ffn_gate.weight", noise(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", noise(N_FF, N_EMBD))
        down = noise(N_EMBD, N_FF)
        down[CONST, :] = 0.0
        w.add_tensor(f"blk.{i}.ffn_down.weight", down)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    out = noise(n_vocab, N_EMBD, scale=1.0)
    out[:, CONST] = np.where(np.array(printable), 0.0, -50.0)
    w.add_tensor("output.weight", out)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path

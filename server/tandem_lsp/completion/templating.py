"""The template stage: FIM prompt formats of the common code models, and a chat fallback.

Other files' snippets go where each model family was trained to see them: Qwen2.5-Coder's
repo-level format (``<|repo_name|>``/``<|file_sep|>``), StarCoder2's ``<file_sep>`` files. Code
Llama, DeepSeek-Coder and Codestral have no such format: their snippets become comment lines at
the top of the prefix (skipped for languages without a known line comment). The chat template
sends OpenAI-style messages with a ``<HOLE>`` marker, for models that were not trained on FIM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tandem_lsp.completion.request import GenerationRequest, PromptContext

HOLE = "<HOLE>"
REPO_NAME = "workspace"  # Qwen's <|repo_name|>; PromptContext carries no repository name
CHAT_SYSTEM = (
    f"You fill the hole in code. Reply with only the code that replaces {HOLE}, "
    "no explanations, no markdown fences."
)


@dataclass(frozen=True)
class FimTemplate:
    """A prompt format and its stop strings. Exactly one of ``render``/``chat`` is set."""

    name: str
    stop: tuple[str, ...]
    render: Callable[[PromptContext], str] | None = None  # the raw FIM prompt
    chat: Callable[[PromptContext], list[dict]] | None = None  # OpenAI-style messages

    @property
    def is_chat(self) -> bool:
        return self.chat is not None

    def build(self, ctx: PromptContext) -> str:
        """The raw prompt ("" for the chat template)."""
        return self.render(ctx) if self.render is not None else ""

    def build_messages(self, ctx: PromptContext) -> list[dict] | None:
        """The chat messages (None for FIM templates)."""
        return self.chat(ctx) if self.chat is not None else None


_LINE_COMMENTS = {
    "#": "py pyi python rb ruby sh bash zsh shellscript pl perl r yaml yml toml ex exs elixir jl julia ps1 "
    "powershell nim cmake dockerfile makefile",
    "//": "js jsx mjs cjs javascript javascriptreact ts tsx typescript typescriptreact go rs rust java kt kts "
    "kotlin scala c h cc cpp cxx hpp cs csharp swift dart php zig proto groovy sol",
    "--": "sql lua hs haskell elm ada",
    ";": "clj cljs clojure el lisp scm scheme",
    "%": "erl erlang tex latex",
}
_COMMENT_OF = {key: token for token, keys in _LINE_COMMENTS.items() for key in keys.split()}


def _line_comment(ctx: PromptContext) -> str | None:
    """The line-comment token of the document's language (by file extension, then language id)."""
    ext = ctx.filename.rsplit(".", 1)[-1].lower() if "." in ctx.filename else ""
    return _COMMENT_OF.get(ext) or _COMMENT_OF.get(ctx.language_id.lower())


def _commented_snippets(ctx: PromptContext) -> str:
    """Snippets as comment lines (``# path`` then ``# line`` ...), or "" without a known comment token."""
    token = _line_comment(ctx)
    if token is None:
        return ""
    out = []
    for s in ctx.snippets:
        out.append(f"{token} {s.path}\n")
        out.extend(f"{token} {line}".rstrip() + "\n" for line in s.text.split("\n"))
    return "".join(out)


def _qwen(ctx: PromptContext) -> str:
    fim = f"<|fim_prefix|>{ctx.prefix}<|fim_suffix|>{ctx.suffix}<|fim_middle|>"
    if not ctx.snippets:
        return fim
    files = "".join(f"<|file_sep|>{s.path}\n{s.text}\n" for s in ctx.snippets)
    return f"<|repo_name|>{REPO_NAME}\n{files}<|file_sep|>{ctx.filename}\n{fim}"


def _starcoder(ctx: PromptContext) -> str:
    if not ctx.snippets:
        return f"<fim_prefix>{ctx.prefix}<fim_suffix>{ctx.suffix}<fim_middle>"
    files = "".join(f"<file_sep>{s.path}\n{s.text}\n" for s in ctx.snippets)
    # StarCoder2's repository format puts the current file's path after <fim_prefix>
    return f"{files}<file_sep><fim_prefix>{ctx.filename}\n{ctx.prefix}<fim_suffix>{ctx.suffix}<fim_middle>"


def _codellama(ctx: PromptContext) -> str:
    return f"<PRE> {_commented_snippets(ctx)}{ctx.prefix} <SUF>{ctx.suffix} <MID>"


def _deepseek(ctx: PromptContext) -> str:
    return f"<｜fim▁begin｜>{_commented_snippets(ctx)}{ctx.prefix}<｜fim▁hole｜>{ctx.suffix}<｜fim▁end｜>"


def _codestral(ctx: PromptContext) -> str:
    return f"[SUFFIX]{ctx.suffix}[PREFIX]{_commented_snippets(ctx)}{ctx.prefix}"


def _chat(ctx: PromptContext) -> list[dict]:
    parts = []
    if ctx.snippets:
        parts.append("Context from other files:\n" + "".join(f"--- {s.path}\n{s.text}\n" for s in ctx.snippets))
    parts.append(f"Fill {HOLE} in {ctx.filename or 'this file'}:\n{ctx.prefix}{HOLE}{ctx.suffix}")
    return [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


TEMPLATES: dict[str, FimTemplate] = {
    t.name: t
    for t in (
        FimTemplate(
            "qwen",
            ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
             "<|file_sep|>", "<|repo_name|>", "<|im_start|>", "<|im_end|>"),
            render=_qwen,
        ),
        FimTemplate(
            "starcoder", ("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"),
            render=_starcoder,
        ),
        FimTemplate("codellama", ("<EOT>", "<PRE>", "<SUF>", "<MID>", "</s>"), render=_codellama),
        FimTemplate(
            "deepseek", ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>", "<|EOT|>"),
            render=_deepseek,
        ),
        FimTemplate("codestral", ("[INST]", "[/INST]", "[SUFFIX]", "[PREFIX]", "[MIDDLE]", "</s>"), render=_codestral),
        # a reply that echoes the marked code stops at the marker; postprocess drops the echo
        FimTemplate("chat", (HOLE,), chat=_chat),
    )
}

_CHAT_MODELS = ("llama", "gemma", "phi", "gpt", "qwq", "-r1", "instruct", "chat")


def _auto(model_name: str | None) -> FimTemplate:
    """The template for a model name; FIM-trained code models first, then chat models, else Qwen."""
    n = (model_name or "").lower()
    if "starcoder" in n:
        return TEMPLATES["starcoder"]
    if any(k in n for k in ("codellama", "code-llama", "code_llama")):
        return TEMPLATES["codellama"]
    if "codestral" in n:
        return TEMPLATES["codestral"]
    if "deepseek" in n and "coder" in n:
        return TEMPLATES["deepseek"]
    if ("qwen" in n and "coder" in n) or "codegemma" in n:  # CodeGemma uses Qwen's FIM tokens
        return TEMPLATES["qwen"]
    if any(k in n for k in _CHAT_MODELS):
        return TEMPLATES["chat"]
    if "deepseek" in n:
        return TEMPLATES["deepseek"]
    if "mistral" in n:
        return TEMPLATES["codestral"]
    return TEMPLATES["qwen"]


def pick_template(setting: str, model_name: str | None, *, native_fim: bool = False) -> FimTemplate:
    """The template named by ``local.fimTemplate``; ``auto`` picks by model name (default qwen). With
    ``native_fim`` (a backend that uses the model's own FIM tokens) ``auto`` never picks ``chat``."""
    name = (setting or "auto").strip().lower()
    if name == "auto":
        template = _auto(model_name)
        return TEMPLATES["qwen"] if template.is_chat and native_fim else template
    if name not in TEMPLATES:
        raise ValueError(f"unknown FIM template {setting!r}: expected auto or one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def build_generation(
    ctx: PromptContext,
    template: FimTemplate,
    *,
    model: str | None,
    max_tokens: int,
    timeout_ms: int,
    extra_stop: Sequence[str] = (),
) -> GenerationRequest:
    """The backend request: the raw prompt (FIM) or messages (chat), plus prefix/suffix/snippets for /infill."""
    return GenerationRequest(
        prefix=ctx.prefix,
        suffix=ctx.suffix,
        prompt=template.build(ctx),
        stop=list(dict.fromkeys((*template.stop, *extra_stop))),
        max_tokens=max_tokens,
        model=model,
        snippets=ctx.snippets,
        messages=template.build_messages(ctx),
        timeout_ms=timeout_ms,
    )

"""FIM templates: golden prompts, stop strings, template choice by model name, generation requests."""

from __future__ import annotations

import pytest

from tandem_lsp.completion.request import PromptContext, Snippet
from tandem_lsp.completion.templating import (
    CHAT_SYSTEM,
    HOLE,
    TEMPLATES,
    build_generation,
    pick_template,
)

CTX = PromptContext(prefix="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))\n", filename="pkg/calc.py",
                    language_id="python")
SNIPPETS = (Snippet("pkg/util.py", "def double(x):\n    return 2 * x"), Snippet("pkg/const.py", "LIMIT = 10"))
WITH_SNIPPETS = PromptContext(CTX.prefix, CTX.suffix, CTX.filename, CTX.language_id, SNIPPETS)


@pytest.mark.parametrize(
    "name, prompt",
    [
        ("qwen", "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"),
        ("starcoder", "<fim_prefix>def add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>"),
        ("codellama", "<PRE> def add(a, b):\n     <SUF>\n\nprint(add(1, 2))\n <MID>"),
        ("deepseek", "<｜fim▁begin｜>def add(a, b):\n    <｜fim▁hole｜>\n\nprint(add(1, 2))\n<｜fim▁end｜>"),
        ("codestral", "[SUFFIX]\n\nprint(add(1, 2))\n[PREFIX]def add(a, b):\n    "),
    ],
)
def test_fim_prompt_golden(name, prompt):
    assert TEMPLATES[name].build(CTX) == prompt
    assert TEMPLATES[name].build_messages(CTX) is None
    assert not TEMPLATES[name].is_chat


def test_deepseek_uses_fullwidth_bar_and_lower_block_characters():
    prompt = TEMPLATES["deepseek"].build(CTX)
    assert "\uff5c" in prompt and "\u2581" in prompt and "|fim" not in prompt


def test_qwen_repo_level_format_with_snippets():
    assert TEMPLATES["qwen"].build(WITH_SNIPPETS) == (
        "<|repo_name|>workspace\n"
        "<|file_sep|>pkg/util.py\ndef double(x):\n    return 2 * x\n"
        "<|file_sep|>pkg/const.py\nLIMIT = 10\n"
        "<|file_sep|>pkg/calc.py\n"
        "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
    )


def test_starcoder_file_sep_format_with_snippets():
    assert TEMPLATES["starcoder"].build(WITH_SNIPPETS) == (
        "<file_sep>pkg/util.py\ndef double(x):\n    return 2 * x\n"
        "<file_sep>pkg/const.py\nLIMIT = 10\n"
        "<file_sep><fim_prefix>pkg/calc.py\ndef add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>"
    )


COMMENTED = "# pkg/util.py\n# def double(x):\n#     return 2 * x\n# pkg/const.py\n# LIMIT = 10\n"


@pytest.mark.parametrize(
    "name, prompt",
    [
        ("codellama", f"<PRE> {COMMENTED}def add(a, b):\n     <SUF>\n\nprint(add(1, 2))\n <MID>"),
        ("deepseek",
         f"<｜fim▁begin｜>{COMMENTED}def add(a, b):\n    <｜fim▁hole｜>\n\nprint(add(1, 2))\n<｜fim▁end｜>"),
        ("codestral", f"[SUFFIX]\n\nprint(add(1, 2))\n[PREFIX]{COMMENTED}def add(a, b):\n    "),
    ],
)
def test_other_templates_put_snippets_in_comments(name, prompt):
    assert TEMPLATES[name].build(WITH_SNIPPETS) == prompt


def test_comment_token_follows_the_language():
    go = PromptContext("func f() {\n\t", "\n}\n", "cmd/main.go", "go", (Snippet("cmd/x.go", "var x = 1\n\nvar y"),))
    expected = "[SUFFIX]\n}\n[PREFIX]// cmd/x.go\n// var x = 1\n//\n// var y\nfunc f() {\n\t"
    assert TEMPLATES["codestral"].build(go) == expected
    untitled = PromptContext("a", "b", "Untitled-1", "typescript", go.snippets)
    assert TEMPLATES["deepseek"].build(untitled).startswith("<｜fim▁begin｜>// cmd/x.go\n")


def test_snippets_are_skipped_without_a_known_line_comment():
    html = PromptContext("<p>", "</p>", "site/index.html", "html", SNIPPETS)
    assert TEMPLATES["codellama"].build(html) == "<PRE> <p> <SUF></p> <MID>"


def test_chat_messages():
    t = TEMPLATES["chat"]
    assert t.is_chat and t.build(CTX) == ""
    assert t.build_messages(CTX) == [
        {"role": "system", "content": CHAT_SYSTEM},
        {"role": "user", "content": "Fill <HOLE> in pkg/calc.py:\ndef add(a, b):\n    <HOLE>\n\nprint(add(1, 2))\n"},
    ]
    assert "no markdown fences" in CHAT_SYSTEM and HOLE in CHAT_SYSTEM


def test_chat_messages_with_snippets():
    user = TEMPLATES["chat"].build_messages(WITH_SNIPPETS)[1]["content"]
    assert user == (
        "Context from other files:\n"
        "--- pkg/util.py\ndef double(x):\n    return 2 * x\n"
        "--- pkg/const.py\nLIMIT = 10\n"
        "\nFill <HOLE> in pkg/calc.py:\ndef add(a, b):\n    <HOLE>\n\nprint(add(1, 2))\n"
    )


@pytest.mark.parametrize(
    "name, stop",
    [
        ("qwen", ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
                  "<|file_sep|>", "<|repo_name|>", "<|im_start|>", "<|im_end|>")),
        ("starcoder", ("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>")),
        ("codellama", ("<EOT>", "<PRE>", "<SUF>", "<MID>", "</s>")),
        ("deepseek", ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>", "<|EOT|>")),
        ("codestral", ("[INST]", "[/INST]", "[SUFFIX]", "[PREFIX]", "[MIDDLE]", "</s>")),
        ("chat", ("<HOLE>",)),
    ],
)
def test_stop_strings(name, stop):
    assert TEMPLATES[name].stop == stop
    assert TEMPLATES[name].name == name


@pytest.mark.parametrize(
    "model, expected",
    [
        ("qwen2.5-coder-1.5b-base", "qwen"),
        ("qwen2.5-coder:7b", "qwen"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct-GGUF", "qwen"),
        ("qwen3-coder:30b", "qwen"),
        ("codegemma:2b", "qwen"),
        ("bigcode/starcoder2-3b", "starcoder"),
        ("starcoder2:7b", "starcoder"),
        ("codellama:7b-code", "codellama"),
        ("TheBloke/CodeLlama-13B-GGUF", "codellama"),
        ("code-llama-7b", "codellama"),
        ("code_llama", "codellama"),
        ("deepseek-coder:1.3b-base", "deepseek"),
        ("deepseek-coder-v2:16b-lite-instruct", "deepseek"),
        ("deepseek-v3", "deepseek"),
        ("codestral-22b", "codestral"),
        ("mistralai/Codestral-22B-v0.1", "codestral"),
        ("mistral:7b", "codestral"),
        ("llama3.2:3b-instruct", "chat"),
        ("meta-llama/Llama-3.1-8B-Instruct", "chat"),
        ("gemma2:9b", "chat"),
        ("phi3:mini", "chat"),
        ("gpt-oss:20b", "chat"),
        ("mistral-7b-instruct-v0.3", "chat"),
        ("qwen2.5:7b-instruct", "chat"),
        ("deepseek-r1:8b", "chat"),
        ("some-random-model", "qwen"),
        (None, "qwen"),
        ("", "qwen"),
    ],
)
def test_pick_template_auto_by_model_name(model, expected):
    assert pick_template("auto", model).name == expected


def test_pick_template_explicit_and_unknown():
    for name in TEMPLATES:
        assert pick_template(name, "qwen2.5-coder") is TEMPLATES[name]
    assert pick_template(" StarCoder ", None) is TEMPLATES["starcoder"]
    assert pick_template("AUTO", "codellama:7b") is TEMPLATES["codellama"]
    with pytest.raises(ValueError, match="unknown FIM template 'gpt'"):
        pick_template("gpt", "qwen")


def test_build_generation_for_a_fim_template():
    req = build_generation(WITH_SNIPPETS, TEMPLATES["qwen"], model="qwen2.5-coder", max_tokens=64, timeout_ms=900,
                           extra_stop=("\n\n", "<|endoftext|>"))
    assert req.prompt == TEMPLATES["qwen"].build(WITH_SNIPPETS)
    assert req.messages is None
    assert (req.prefix, req.suffix, req.snippets) == (CTX.prefix, CTX.suffix, SNIPPETS)
    assert req.stop == [*TEMPLATES["qwen"].stop, "\n\n"]  # extras appended once
    assert (req.model, req.max_tokens, req.timeout_ms, req.temperature) == ("qwen2.5-coder", 64, 900, 0.0)


def test_build_generation_for_the_chat_template():
    req = build_generation(CTX, TEMPLATES["chat"], model=None, max_tokens=32, timeout_ms=2500)
    assert req.prompt == ""
    assert req.messages == TEMPLATES["chat"].build_messages(CTX)
    assert (req.prefix, req.suffix) == (CTX.prefix, CTX.suffix)  # still there for /infill-style backends
    assert req.stop == ["<HOLE>"]

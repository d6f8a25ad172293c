"""What `doctor` (and `demo`) say when there is no local model: why, once, in a terminal's words, and the
commands that give Tandem one."""

from __future__ import annotations

from tandem_lsp.config import parse_settings
from tandem_lsp.doctor import how_to_get_a_model, no_model_reason

# the server's status details (backends/manager.py), written for an editor's status line
AUTO_DETAIL = ("no local model server found (tried LM Studio :1234, Ollama :11434, llama.cpp :8080); start one, "
               "e.g. `ollama serve` or `llama-server --fim-qwen-1.5b-default`, or run a model inside Tandem: "
               "`tandem-lsp models pull qwen2.5-coder-1.5b-q8_0`")
EMBEDDED_DETAIL = ("local.backend is embedded but there is no model file: run "
                   "`tandem-lsp models pull qwen2.5-coder-1.5b-q8_0`, or set local.modelPath to a GGUF file")


def test_the_reason_drops_the_advice_and_says_where_model_files_are_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path))
    settings, _ = parse_settings({})
    reason = no_model_reason(AUTO_DETAIL, settings)
    assert reason == ("no local model server found (tried LM Studio :1234, Ollama :11434, llama.cpp :8080); "
                      f"no model file in {tmp_path / 'models'}")
    settings, _ = parse_settings({"local": {"backend": "embedded"}})
    assert no_model_reason(EMBEDDED_DETAIL, settings) == (
        f"local.backend is embedded but there is no model file in {tmp_path / 'models'}")


def test_a_server_backend_or_a_model_path_gets_no_model_file_clause(tmp_path, monkeypatch):
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path))
    settings, _ = parse_settings({"local": {"backend": "ollama"}})
    assert no_model_reason("ollama: cannot connect to http://127.0.0.1:11434", settings) == \
        "ollama: cannot connect to http://127.0.0.1:11434"
    settings, _ = parse_settings({"local": {"modelPath": "/m/x.gguf"}})
    assert "no model file in" not in no_model_reason("embedded: model file not found: /m/x.gguf", settings)
    assert no_model_reason("", settings) == "no local model answered"


def test_the_commands_are_listed_once_for_the_command_to_run_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path))
    text = how_to_get_a_model("tandem-lsp demo")
    assert text.startswith("Start one of these, then run `tandem-lsp demo` again:")
    for command in ("lms server start", "ollama serve", "ollama pull qwen2.5-coder:1.5b-base",
                    "llama-server --fim-qwen-1.5b-default", "tandem-lsp models pull qwen2.5-coder-1.5b-q8_0",
                    f"copy any GGUF file into {tmp_path / 'models'}/", "--model-path FILE"):
        assert text.count(command) == 1, command
    assert "Completions pause" not in text

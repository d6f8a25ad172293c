"""The command line as users run it (``python -m tandem_lsp ...`` as a subprocess): every mistake is one
line on stderr and exit code 2, never a traceback; every backend of the settings is accepted; every
sub-command is listed; ``--tcp --port 0`` says where it listens. Plus the settings the options build."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tandem_lsp import cli
from tandem_lsp.config import SETTINGS_SCHEMA, parse_settings

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
NO_SERVERS = f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}"


def run_cli(*args: str, tmp_path, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "state").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    base.update(TANDEM_DATA_DIR=str(tmp_path / "data"), TANDEM_STATE_DIR=str(tmp_path / "state"),
                TANDEM_AUTO_ENDPOINTS=NO_SERVERS, **(env or {}))
    return subprocess.run([sys.executable, "-m", "tandem_lsp", *args], capture_output=True, text=True,
                          timeout=timeout, env=base, cwd=tmp_path, check=False)


BAD = [
    (["bogus"], "unknown command 'bogus'"),
    (["--port", "99999"], "--port"),
    (["--port", "http"], "not a port number"),
    (["--nope"], "unrecognized arguments"),
    (["--log-file", "/nonexistent-dir/x.log", "doctor"], "cannot write the log file"),
    (["doctor", "--settings", "not json"], "--settings: not JSON"),
    (["doctor", "--settings", "[1,2]"], "must be a JSON object"),
    (["doctor", "--settings", '"text"'], "must be a JSON object"),
    (["doctor", "--backend", "nope"], "invalid choice: 'nope'"),
    (["doctor", "--endpoint", "ftp://x"], "is not an http:// or https:// URL"),
    (["doctor", "--fim-template", "nope"], "invalid choice"),
    (["doctor", "--model-path", "/nonexistent.gguf"], "no such file"),
    (["doctor", "--model-path", "."], "not a file"),
    (["doctor", "--bogus"], "unrecognized arguments"),
    (["demo", "--speed", "0"], "must be a number above 0"),
    (["demo", "--speed", "nan"], "must be a number above 0"),
    (["demo", "--speed", "fast"], "not a number"),
    (["demo", "/nonexistent-dir"], "is not a directory"),
    (["demo", "--record", "/nonexistent-dir/out.json"], "does not exist"),
    (["demo", "--record", "."], "is a directory"),
    (["demo", "--settings", "{"], "--settings: not JSON"),
    (["demo", "--settings", "[1,2]"], "must be a JSON object"),
    (["demo", "--backend", "nope"], "invalid choice"),
    (["demo", "--model-path", "/nonexistent.gguf"], "no such file"),
    (["models"], "choose one of list, pull, path, remove"),
    (["models", "bogus"], "unknown command 'bogus'"),
    (["models", "pull"], "the following arguments are required: NAME"),
    (["models", "pull", "no-such-model"], "unknown model"),
    (["models", "pull", "qwen2.5-coder-0.5b-q8_0", "--sha256", "xyz"], "not a sha256 digest"),
    (["models", "--dir", "/etc/hostname", "list"], "is not a directory"),
    (["models", "path", "../x"], "unknown model"),
]


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_every_mistake_is_one_line_and_exit_2(argv, expected, tmp_path):
    proc = run_cli(*argv, tmp_path=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0] and "error" in lines[0]
    assert proc.stdout == ""


def test_an_unknown_command_lists_every_sub_command(tmp_path):
    proc = run_cli("bogus", tmp_path=tmp_path)
    for name in ("doctor", "models", "demo"):
        assert f"'{name}'" in proc.stderr


BACKENDS = next(spec.enum for spec in SETTINGS_SCHEMA if spec.key == "local.backend")


def test_every_backend_of_the_settings_is_a_choice_everywhere():
    assert set(BACKENDS) == {"auto", "openai", "ollama", "llamacpp", "embedded"}
    parser = cli.build_parser()
    for command in ("doctor", "demo"):
        for backend in BACKENDS:
            assert parser.parse_args([command, "--backend", backend]).backend == backend
    light = cli.build_parser(with_tools=False)  # what the server parses: doctor has every backend too
    assert light.parse_args(["doctor", "--backend", "embedded"]).backend == "embedded"


def test_doctor_accepts_backend_embedded_and_says_what_is_missing(tmp_path):
    proc = run_cli("doctor", "--backend", "embedded", tmp_path=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "local.backend=embedded" in proc.stdout and "no model file" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_doctor_says_there_is_no_model_once_in_cli_words(tmp_path):
    proc = run_cli("doctor", tmp_path=tmp_path)
    assert proc.returncode == 1
    both = proc.stdout + proc.stderr
    assert both.count("no local model server found") == 1, both
    assert both.count("tandem-lsp models pull qwen2.5-coder-1.5b-q8_0") == 1, both
    assert "Completions pause" not in both and "WARNING" not in proc.stderr
    assert str(tmp_path / "data" / "models") in proc.stdout  # where a model file would be found


def test_tcp_on_a_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli("--tcp", "--port", str(port), tmp_path=tmp_path, timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "error" in line] == [
        f"tandem-lsp: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


# -- the settings the options build ---------------------------------------------------------------
def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_options_override_settings_json_and_model_path_means_embedded(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    args = parse("doctor", "--settings", json.dumps({"local": {"timeoutMs": 4000, "model": "a"}}),
                 "--model", "b", "--model-path", str(model))
    settings, problems = parse_settings(cli.settings_tree(args))
    assert problems == []
    assert settings.local.timeout_ms == 4000 and settings.local.model == "b"
    assert settings.local.model_path == str(model.resolve()) and settings.local.backend == "embedded"

    for named in ({"local": {"backend": "ollama"}}, {"local.backend": "ollama"}, {"tandem": {"local": {"backend": "ollama"}}}):
        args = parse("doctor", "--settings", json.dumps(named), "--model-path", str(model))
        assert parse_settings(cli.settings_tree(args))[0].local.backend == "ollama"  # named in --settings: kept
    args = parse("doctor", "--backend", "auto", "--model-path", str(model))
    assert parse_settings(cli.settings_tree(args))[0].local.backend == "auto"


def test_the_demo_base_settings_survive_a_partial_settings_tree():
    args = parse("demo", "--settings", json.dumps({"completion": {"maxPrefixChars": 3000}}))
    tree = cli.settings_tree(args, {"local": {"backend": "auto"}, "completion": {"debounceMs": "auto"}})
    assert tree == {"local": {"backend": "auto"}, "completion": {"debounceMs": "auto", "maxPrefixChars": 3000}}
    # flat dotted keys given after the base win, as the server reads them
    args = parse("demo", "--settings", json.dumps({"completion.debounceMs": 0}))
    tree = cli.settings_tree(args, {"completion": {"debounceMs": "auto"}})
    assert parse_settings(tree)[0].completion.debounce_ms == 0

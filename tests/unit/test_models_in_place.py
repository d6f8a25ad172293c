"""A model file already in place: ``models pull`` verifies it (sha256, progress on a long hash) before making
it the default and refuses one that does not match; a GGUF copied by hand into the models directory is
the default model that ``auto`` (and so doctor, demo and the editors) runs."""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest
from tandem_lsp import model_files, models
from tandem_lsp.models import ModelEntry

DATA = b"GGUF" + hashlib.sha256(b"model").digest() * 2000  # a small "model" with the GGUF magic
DATA_SHA = hashlib.sha256(DATA).hexdigest()
CLOSED = "http://127.0.0.1:9"


def _entry(name: str = "test-small", sha: str | None = DATA_SHA) -> ModelEntry:
    return ModelEntry(name=name, file=f"{name}.gguf", url=f"https://huggingface.example/files/{name}.gguf",
                      size=len(DATA), sha256=sha, quant="Q8_0", params="0.1B")


@pytest.fixture
def mdir(tmp_path, monkeypatch):
    """An empty data directory, the catalogue with test entries, and no network: downloads go to a port
    on which nothing listens."""
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path / "data"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("TANDEM_MODELS_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setattr(models, "CATALOGUE", {**models.CATALOGUE, "test-small": _entry(),
                                              "test-unpinned": _entry("test-unpinned", None)})
    path = tmp_path / "data" / "models"
    path.mkdir(parents=True)
    return path


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tandem-lsp")
    models.add_parser(parser.add_subparsers(dest="command"))
    return models.run(parser.parse_args(["models", *argv]))


# -- pull of a file in place -----------------------------------------------------------------------
def test_a_file_in_place_is_verified_before_it_becomes_the_default(mdir, capsys):
    (mdir / "test-small.gguf").write_bytes(DATA)
    assert cli("pull", "test-small") == 0
    captured = capsys.readouterr()
    assert "already present" in captured.out
    assert "checking its sha256" in captured.err and "sha256 verified (the catalogue)" in captured.err
    assert model_files._read_defaults() == ["test-small"]
    assert models.default_model_path() == mdir / "test-small.gguf"


def test_a_file_that_does_not_match_is_refused_and_kept(mdir, capsys):
    bad = os.urandom(474_000)  # the 474 KB random file that once became the default
    path = mdir / "test-small.gguf"
    path.write_bytes(bad)
    bad_sha = hashlib.sha256(bad).hexdigest()
    assert cli("pull", "test-small") == 1
    err = capsys.readouterr().err
    assert f"its sha256 is {bad_sha}" in err and f"expects {DATA_SHA}" in err
    assert "tandem-lsp models remove test-small && tandem-lsp models pull test-small" in err
    assert f"tandem-lsp models pull test-small --sha256 {bad_sha}" in err
    assert path.read_bytes() == bad  # kept
    assert model_files._read_defaults() == []
    assert models.default_model_path() is None
    assert cli("list") == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "test-small" in l)
    assert "REFUSED" in line and not line.startswith("*")

    assert cli("pull", "test-small", "--sha256", bad_sha) == 0  # the way out the message gives
    assert "sha256 verified (--sha256)" in capsys.readouterr().err
    assert models.default_model_path() == path
    assert not (mdir / models.REJECTED_FILE).exists()


def test_a_refused_gguf_placed_by_hand_is_not_the_default_until_it_changes(mdir, capsys):
    path = mdir / "test-small.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 1000)  # a GGUF, but not the catalogue's file
    assert models.default_model_path() == path  # placed by hand: used...
    assert cli("pull", "test-small") == 1
    assert models.default_model_path() is None  # ...until `pull` says it is not what its name claims
    path.write_bytes(DATA)  # the right file copied over it
    assert models.default_model_path() == path
    assert cli("pull", "test-small") == 0
    assert models.default_model_path() == path and not (mdir / models.REJECTED_FILE).exists()


def test_a_long_hash_shows_progress(mdir, monkeypatch, capsys):
    monkeypatch.setattr(models, "HASH_PROGRESS_MIN", 0)
    (mdir / "test-small.gguf").write_bytes(DATA)
    assert cli("pull", "test-small") == 0
    err = capsys.readouterr().err
    assert "sha256 " in err and "100.0%" in err and "/s" in err


def test_the_hash_progress_is_skipped_for_a_small_file(mdir, capsys):
    (mdir / "test-small.gguf").write_bytes(DATA)
    assert cli("pull", "test-small") == 0
    assert "%" not in capsys.readouterr().err


def test_no_known_digest_offline_asks_for_one(mdir, capsys):
    (mdir / "test-unpinned.gguf").write_bytes(DATA)
    start = time.monotonic()
    assert cli("pull", "test-unpinned") == 1
    assert time.monotonic() - start < 5  # offline is found out at once
    err = capsys.readouterr().err
    assert DATA_SHA in err and "--no-verify" in err and f"--sha256 {DATA_SHA}" in err
    assert model_files._read_defaults() == []
    assert cli("pull", "test-unpinned", "--sha256", DATA_SHA) == 0
    assert model_files._read_defaults() == ["test-unpinned"]


def test_no_verify_accepts_a_file_without_a_known_digest(mdir, capsys):
    (mdir / "test-unpinned.gguf").write_bytes(DATA)
    assert cli("pull", "test-unpinned", "--no-verify") == 0
    assert "WITHOUT sha256 verification" in capsys.readouterr().err
    assert models.default_model_path() == mdir / "test-unpinned.gguf"


def test_no_verify_does_not_skip_a_known_digest(mdir, capsys):
    (mdir / "test-small.gguf").write_bytes(b"GGUF not it")
    assert cli("pull", "test-small", "--no-verify") == 1
    assert "is not test-small" in capsys.readouterr().err


# -- discovery of a file placed by hand ------------------------------------------------------------
def test_a_gguf_copied_by_hand_is_the_default(mdir, capsys):
    path = mdir / f"{models.SMALLEST}.gguf"  # where the offline message says to copy it
    path.write_bytes(DATA)
    assert models.default_model_path() == path
    assert cli("list") == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if models.SMALLEST in l and "present" in l)
    assert line.startswith("*") and "placed by hand" in line
    assert "no default model" not in out


def test_which_file_placed_by_hand_is_the_default(mdir):
    assert models.default_model_path() is None
    (mdir / "notes.gguf").write_bytes(b"not a model")  # no GGUF magic: ignored
    (mdir / "half.gguf.part").write_bytes(DATA)  # a partial download: ignored
    (mdir / "sub.gguf").mkdir()  # a directory: ignored
    assert models.default_model_path() is None
    older, newer = mdir / "older.gguf", mdir / "newer.gguf"
    older.write_bytes(DATA)
    newer.write_bytes(DATA)
    os.utime(older, (time.time() - 100, time.time() - 100))
    assert models.default_model_path() == newer  # the most recently modified
    recommended = mdir / f"{models.RECOMMENDED}.gguf"
    recommended.write_bytes(DATA)
    os.utime(recommended, (time.time() - 200, time.time() - 200))
    assert models.default_model_path() == recommended  # the recommended model first
    (mdir / models.DEFAULT_FILE).write_text("older\n")
    assert models.default_model_path() == older  # a pulled model before any placed by hand


def test_auto_runs_a_gguf_copied_by_hand(mdir, monkeypatch):
    """No server answers: backend ``auto`` finds the hand-placed file and loads it (a real tiny GGUF)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    import asyncio

    from tandem_lsp.backends import auto
    from tandem_lsp.backends import manager as manager_mod
    from tandem_lsp.backends.manager import LocalModel
    from tandem_lsp.config import LocalSettings

    from tests.fakes.tiny_gguf import write_tiny_gguf

    async def no_server(client, *args, **kwargs):
        return None

    path = write_tiny_gguf(mdir / f"{models.SMALLEST}.gguf")

    async def main():
        monkeypatch.setattr(auto, "probe", no_server)
        monkeypatch.setattr(manager_mod, "REPROBE_INTERVAL_S", 0.0)
        model = LocalModel(LocalSettings(backend="auto"))
        try:
            deadline = time.monotonic() + 60
            backend = None
            while backend is None and time.monotonic() < deadline:
                backend = await model.ensure()
                await asyncio.sleep(0.05)
            assert backend is not None, model.status
            assert backend.name == "embedded" and backend.path == path
        finally:
            await model.aclose()

    asyncio.run(main())


def test_doctor_uses_a_gguf_copied_by_hand(tmp_path):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from tests.fakes.tiny_gguf import write_tiny_gguf

    mdir = tmp_path / "data" / "models"
    mdir.mkdir(parents=True)
    path = write_tiny_gguf(mdir / f"{models.SMALLEST}.gguf")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(TANDEM_DATA_DIR=str(tmp_path / "data"), TANDEM_STATE_DIR=str(tmp_path),
               TANDEM_AUTO_ENDPOINTS=f"openai={CLOSED}/v1,ollama={CLOSED},llamacpp={CLOSED}")
    proc = subprocess.run([sys.executable, "-m", "tandem_lsp", "doctor"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "local backend    embedded" in proc.stdout and str(path) in proc.stdout
    assert "test completion  OK" in proc.stdout and "Local model: usable." in proc.stdout
    assert "WARNING" not in proc.stderr and "Traceback" not in proc.stderr  # loading is no warning

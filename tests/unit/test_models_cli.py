"""``tandem-lsp models``: list, pull (progress, sha256, resume, Range ignored, mismatch, offline), path, remove.

A local HTTP server on 127.0.0.1 serves a generated ~300 KB "model"; TANDEM_MODELS_URL points the
catalogue at it and CATALOGUE is monkeypatched with test entries."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import json
import os
import re
import socket
import threading
import time

import pytest
from tandem_lsp import models
from tandem_lsp.models import ModelEntry

BLOB = hashlib.sha256(b"seed").digest() * (300_000 // 32) + os.urandom(123)
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()
HF_RESOLVE = "/org/repo/resolve/" + "c" * 40 + "/tiny.gguf"
HF_TREE = "/api/models/org/repo/tree/" + "c" * 40


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _hf_headers(self, srv) -> None:
        """What Hugging Face sends for /resolve/ of an LFS file: a redirect to its CDN plus the metadata."""
        self.send_response(302)
        self.send_header("Location", "/cdn/tiny?X-Amz-Signature=abc")
        if srv.linked_etag:
            self.send_header("X-Linked-Etag", f'"{srv.linked_etag}"')
        self.send_header("X-Linked-Size", str(len(srv.data)))
        self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("ETag", '"a-git-blob-sha1-not-a-sha256"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        srv = self.server
        srv.requests.append({"method": "HEAD", "path": self.path, "range": None})
        if self.path in (HF_RESOLVE, *srv.resolve_paths) and srv.head_status is None:
            return self._hf_headers(srv)
        self.send_response(srv.head_status or 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        srv = self.server
        srv.requests.append({"method": "GET", "path": self.path, "range": self.headers.get("Range")})
        if self.path in (HF_RESOLVE, *srv.resolve_paths):
            return self._hf_headers(srv)
        if self.path == HF_TREE and srv.tree_oid:
            body = json.dumps([{"type": "file", "path": "README.md", "oid": "1" * 40, "size": 10},
                               {"type": "file", "path": "tiny.gguf", "oid": "2" * 40, "size": len(srv.data),
                                "lfs": {"oid": srv.tree_oid, "size": len(srv.data), "pointerSize": 135}}])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
            return
        if self.path not in ("/files/tiny.gguf", "/cdn/tiny?X-Amz-Signature=abc"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, start = srv.served if srv.served is not None else srv.data, 0
        rng = self.headers.get("Range")
        if rng and srv.mode != "ignore_range":
            m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if srv.cut_after is not None:
            cut, srv.cut_after = srv.cut_after, None  # only the first request is cut
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        for i in range(0, len(body), 32768):
            self.wfile.write(body[i:i + 32768])


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.data, srv.mode, srv.cut_after, srv.requests = BLOB, "normal", None, []
    srv.head_status, srv.linked_etag, srv.tree_oid, srv.served = 501, BLOB_SHA, None, None
    srv.resolve_paths = ()  # more /resolve/ paths answered like HF_RESOLVE (a real catalogue entry's)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _entry(name="test-tiny", sha=BLOB_SHA, path="/files/tiny.gguf"):
    return ModelEntry(name=name, file="tiny.gguf", url=f"https://huggingface.example{path}", size=len(BLOB),
                      sha256=sha, quant="Q8_0", params="0.1B")


def _hf_entry(sha=None):
    """Like a catalogue entry: pinned to a revision of a Hugging Face repository."""
    return ModelEntry(name="test-tiny", file="tiny.gguf", url=f"https://huggingface.co{HF_RESOLVE}",
                      size=len(BLOB), sha256=sha, quant="Q8_0", params="0.1B", repo="org/repo",
                      revision="c" * 40)


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TANDEM_MODELS_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setattr(models, "CATALOGUE", {**models.CATALOGUE, "test-tiny": _entry()})
    return tmp_path / "data" / "models"


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tandem-lsp")
    sub = parser.add_subparsers(dest="command")
    models.add_parser(sub)
    args = parser.parse_args(["models", *argv])
    assert args.command == "models"
    return models.run(args)


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TANDEM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert models.models_dir() == tmp_path / "xdg" / "tandem" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.models_dir() == tmp_path / "home" / ".local" / "share" / "tandem" / "models"
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path / "d"))
    assert models.models_dir() == tmp_path / "d" / "models"
    assert models.default_model_path() is None


def test_catalogue_is_base_qwen_coder_gguf_pinned_to_revisions():
    names = set(models.CATALOGUE)
    for size in ("0.5b", "1.5b", "3b"):
        for quant in ("q8_0", "q4_k_m"):
            assert f"qwen2.5-coder-{size}-{quant}" in names
    assert names - {models.SWEEP_NEXT_EDIT} == {n for n in names if n.startswith("qwen2.5-coder-")}
    for entry in models.CATALOGUE.values():
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.name
        assert entry.url == f"https://huggingface.co/{entry.repo}/resolve/{entry.revision}/{entry.file}"
        assert entry.file.endswith(".gguf")
        if entry.name != models.SWEEP_NEXT_EDIT:
            assert entry.file.lower().startswith("qwen2.5-coder-"), entry.name
        assert "instruct" not in entry.url.lower()  # FIM needs the base models
        assert entry.params.lower() in entry.file.lower() and entry.quant.lower() in entry.file.lower()
        assert entry.size > 0 and entry.sha256_source
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
    assert models.CATALOGUE[models.RECOMMENDED].sha256 and models.CATALOGUE[models.SMALLEST].sha256
    digests = [e.sha256 for e in models.CATALOGUE.values() if e.sha256]
    assert len(digests) == len(set(digests))


SWEEP_REVISION = "409016591c6c1a94f545f22328a85a3516118f34"
SWEEP_FILE = "sweep-next-edit-1.5b.q8_0.v2.gguf"
SWEEP_RESOLVE = f"/sweepai/sweep-next-edit-1.5B/resolve/{SWEEP_REVISION}/{SWEEP_FILE}"


def test_sweep_next_edit_is_pinned():
    entry = models.CATALOGUE["sweep-next-edit-1.5b"]
    assert entry.name == models.SWEEP_NEXT_EDIT == "sweep-next-edit-1.5b"
    assert entry.repo == "sweepai/sweep-next-edit-1.5B" and entry.file == SWEEP_FILE
    assert entry.revision == SWEEP_REVISION and re.fullmatch(r"[0-9a-f]{40}", entry.revision)
    assert entry.url == "https://huggingface.co" + SWEEP_RESOLVE
    assert (entry.params, entry.quant) == ("1.5B", "Q8_0")
    assert 1.4e9 < entry.size < 1.7e9  # a 1.5B model at 8 bits a weight (plus its embeddings)
    assert entry.size == 1_537_269_856
    assert entry.sha256 == "1321ea5e5d7529e60f9770c6a0b3a965f89542d16cf4ae51bab267f6a88150da"
    assert entry.sha256_source
    # the existing names are unchanged by the explicit name
    assert models.SMALLEST in models.CATALOGUE and models.RECOMMENDED in models.CATALOGUE


def test_pull_sweep_next_edit(env, server, monkeypatch, capsys):
    """`pull sweep-next-edit-1.5b` asks the entry's own pinned URL and installs <models>/<name>.gguf once the
    digest is checked (the stand-in serves a small file, so the entry's digest is that file's here)."""
    real = models.CATALOGUE["sweep-next-edit-1.5b"]
    monkeypatch.setitem(models.CATALOGUE, real.name, dataclasses.replace(real, sha256=BLOB_SHA, size=len(BLOB)))
    server.head_status, server.resolve_paths = None, (SWEEP_RESOLVE,)
    assert cli("pull", "sweep-next-edit-1.5b") == 0
    captured = capsys.readouterr()
    final = env / "sweep-next-edit-1.5b.gguf"
    assert captured.out.strip() == str(final)
    assert "sha256 verified (the catalogue)" in captured.err
    assert final.read_bytes() == BLOB and not (env / "sweep-next-edit-1.5b.gguf.part").exists()
    assert (env / "default.txt").read_text().split() == ["sweep-next-edit-1.5b"]
    assert [(r["method"], r["path"]) for r in server.requests] == [
        ("HEAD", SWEEP_RESOLVE), ("GET", SWEEP_RESOLVE), ("GET", "/cdn/tiny?X-Amz-Signature=abc")]
    assert cli("list") == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "sweep-next-edit-1.5b " in l)
    assert line.startswith("*") and "present" in line and str(final) in line


def test_pull_sweep_next_edit_checks_the_pinned_digest(env, server, capsys):
    """The real entry: a file that is not the pinned one is refused, and nothing is installed."""
    server.head_status, server.resolve_paths = None, (SWEEP_RESOLVE,)
    server.linked_etag = models.CATALOGUE["sweep-next-edit-1.5b"].sha256  # the server agrees with the pin
    assert cli("pull", "sweep-next-edit-1.5b") == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and BLOB_SHA in err
    assert not (env / "sweep-next-edit-1.5b.gguf").exists()
    assert not (env / "sweep-next-edit-1.5b.gguf.part").exists()
    assert models.default_model_path() is None


def test_url_override_keeps_the_path(monkeypatch):
    entry = _entry()
    monkeypatch.setenv("TANDEM_MODELS_URL", "http://127.0.0.1:9/")
    assert models.download_url(entry) == "http://127.0.0.1:9/files/tiny.gguf"
    monkeypatch.setenv("TANDEM_MODELS_URL", "http://127.0.0.1:9/mirror/")
    assert models.download_url(entry) == "http://127.0.0.1:9/mirror/files/tiny.gguf"
    monkeypatch.delenv("TANDEM_MODELS_URL")
    assert models.download_url(entry) == entry.url


def test_pull_list_path_remove(env, server, capsys):
    assert cli("list") == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "test-tiny" in l)
    assert "present" not in line and line.rstrip().endswith("-")
    assert "qwen2.5-coder-1.5b-q8_0" in out and "no default model" in out
    for entry in models.CATALOGUE.values():  # each with its source and digest
        assert models.download_url(entry) in out
        assert (entry.sha256 or "checked at pull time") in out
    assert f"recommended: {models.RECOMMENDED}" in out

    assert cli("pull", "test-tiny") == 0
    captured = capsys.readouterr()
    final = env / "test-tiny.gguf"
    assert captured.out.strip() == str(final)
    assert "100.0%" in captured.err and "/s" in captured.err and "KiB" in captured.err
    assert "sha256 verified" in captured.err
    assert final.read_bytes() == BLOB
    assert not (env / "test-tiny.gguf.part").exists()
    assert (env / "default.txt").read_text().split() == ["test-tiny"]
    assert models.default_model_path() == final
    gets = [r for r in server.requests if r["method"] == "GET"]
    assert [r["range"] for r in gets] == [None]

    assert cli("list") == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "test-tiny" in l)
    assert line.startswith("*") and "present" in line and str(final) in line

    assert cli("pull", "test-tiny") == 0  # already present: no second download
    assert "already present" in capsys.readouterr().out
    assert len(server.requests) == 2  # the HEAD and the GET of the first pull only

    assert cli("path", "test-tiny") == 0
    assert capsys.readouterr().out.strip() == str(final)
    assert cli("path", "qwen2.5-coder-3b-q4_k_m") == 0
    assert capsys.readouterr().out.strip() == str(env / "qwen2.5-coder-3b-q4_k_m.gguf")
    assert cli("path", "no-such-model") == 2

    assert cli("remove", "test-tiny") == 0
    assert not final.exists()
    assert models.default_model_path() is None
    assert not (env / "default.txt").exists()
    assert cli("remove", "test-tiny") == 1  # nothing left
    assert cli("remove", "no-such-model") == 2


def test_default_is_the_most_recent_present_model(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-other", _entry("test-other"))
    assert cli("pull", "test-tiny") == 0
    assert cli("pull", "test-other") == 0
    assert models.default_model_path() == env / "test-other.gguf"
    assert (env / "default.txt").read_text().split() == ["test-other", "test-tiny"]
    (env / "test-other.gguf").unlink()  # deleted behind our back: fall back
    assert models.default_model_path() == env / "test-tiny.gguf"
    assert cli("pull", "test-other") == 0
    assert cli("remove", "test-other") == 0
    assert models.default_model_path() == env / "test-tiny.gguf"
    assert (env / "default.txt").read_text().split() == ["test-tiny"]


def test_resume_after_a_cut_connection(env, server, capsys):
    server.cut_after = 100_000
    assert cli("pull", "test-tiny") == 1
    err = capsys.readouterr().err
    assert "interrupted" in err and "again to resume" in err
    part = env / "test-tiny.gguf.part"
    assert sorted(p.name for p in env.iterdir()) == ["test-tiny.gguf.part"]
    have = part.stat().st_size
    assert 0 < have <= 100_000
    assert cli("list") == 0
    assert "partial" in capsys.readouterr().out

    assert cli("pull", "test-tiny") == 0
    err = capsys.readouterr().err
    assert "Resuming" in err
    assert server.requests[-1]["range"] == f"bytes={have}-"
    assert (env / "test-tiny.gguf").read_bytes() == BLOB
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(env, server, capsys):
    env.mkdir(parents=True)
    (env / "test-tiny.gguf.part").write_bytes(b"garbage that is not the start of the file" * 100)
    server.mode = "ignore_range"
    assert cli("pull", "test-tiny") == 0
    err = capsys.readouterr().err
    assert "starting from zero" in err
    assert server.requests[-1]["range"] is not None  # we asked, it ignored
    assert (env / "test-tiny.gguf").read_bytes() == BLOB
    assert not (env / "test-tiny.gguf.part").exists()


def test_sha256_mismatch_leaves_nothing(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _entry(sha="0" * 64))
    assert cli("pull", "test-tiny") == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and BLOB_SHA in err
    assert not (env / "test-tiny.gguf").exists()
    assert not (env / "test-tiny.gguf.part").exists()
    assert models.default_model_path() is None
    # the same through --sha256 on an entry without a known digest
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _entry(sha=None))
    assert cli("pull", "test-tiny", "--sha256", "f" * 64) == 1
    assert not (env / "test-tiny.gguf").exists() and not (env / "test-tiny.gguf.part").exists()
    assert cli("pull", "test-tiny", "--sha256", "xyz") == 2


def test_unknown_digest_needs_no_verify(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _entry(sha=None))
    assert cli("pull", "test-tiny") == 1
    err = capsys.readouterr().err
    assert BLOB_SHA in err and "--no-verify" in err
    assert not (env / "test-tiny.gguf").exists()
    assert (env / "test-tiny.gguf.part").read_bytes() == BLOB  # complete, kept, not installed
    assert models.default_model_path() is None

    assert cli("pull", "test-tiny", "--no-verify") == 0  # no second download: the server says 416
    err = capsys.readouterr().err
    assert "already complete" in err and "WITHOUT sha256 verification" in err
    assert server.requests[-1]["range"] == f"bytes={len(BLOB)}-"
    assert (env / "test-tiny.gguf").read_bytes() == BLOB
    assert models.default_model_path() == env / "test-tiny.gguf"


def test_accepting_the_digest_with_sha256(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _entry(sha=None))
    assert cli("pull", "test-tiny", "--sha256", BLOB_SHA.upper()) == 0
    assert "sha256 verified" in capsys.readouterr().err
    assert (env / "test-tiny.gguf").read_bytes() == BLOB


def test_http_error_fails_cleanly(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _entry(path="/missing.gguf"))
    assert cli("pull", "test-tiny") == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert not (env / "test-tiny.gguf").exists()


def test_offline_fails_fast_with_a_hint(env, monkeypatch, capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("TANDEM_MODELS_URL", f"http://127.0.0.1:{port}/")
    start = time.monotonic()
    assert cli("pull", "test-tiny") == 1
    assert time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert "offline" in err
    assert "tandem-lsp models path test-tiny" in err and "local.modelPath" in err
    assert str(env / "test-tiny.gguf") in err
    assert not (env / "test-tiny.gguf").exists()


def test_dir_option_and_usage(tmp_path, env, server, capsys):
    other = tmp_path / "elsewhere"
    assert cli("--dir", str(other), "pull", "test-tiny") == 0
    assert (other / "test-tiny.gguf").read_bytes() == BLOB
    assert models.default_model_path(other) == other / "test-tiny.gguf"
    assert models.default_model_path() is None
    assert cli("path", "test-tiny", "--dir", str(other)) == 0
    assert capsys.readouterr().out.strip().endswith(str(other / "test-tiny.gguf"))
    assert cli() == 2
    assert cli("pull", "nope") == 2
    with pytest.raises(SystemExit) as exc:
        cli("pull")
    assert exc.value.code == 2


def test_digest_from_hugging_face_metadata(env, server, monkeypatch, capsys):
    """No pinned digest: the X-Linked-Etag of the /resolve/ answer is checked; the download follows the
    redirect to the CDN, the HEAD request does not."""
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _hf_entry())
    server.head_status = None
    assert cli("pull", "test-tiny") == 0
    err = capsys.readouterr().err
    assert f"expecting sha256 {BLOB_SHA} (the server's X-Linked-Etag)" in err
    assert "sha256 verified (the server's X-Linked-Etag)" in err
    assert (env / "test-tiny.gguf").read_bytes() == BLOB
    assert [(r["method"], r["path"]) for r in server.requests] == [
        ("HEAD", HF_RESOLVE), ("GET", HF_RESOLVE), ("GET", "/cdn/tiny?X-Amz-Signature=abc")]


def test_digest_from_the_tree_api_when_the_header_is_missing(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _hf_entry())
    server.head_status, server.linked_etag, server.tree_oid = None, None, BLOB_SHA
    assert cli("pull", "test-tiny") == 0
    assert "sha256 verified (the Hugging Face API (lfs.oid))" in capsys.readouterr().err
    assert ("GET", HF_TREE) in [(r["method"], r["path"]) for r in server.requests]
    assert (env / "test-tiny.gguf").read_bytes() == BLOB


def test_a_corrupt_transfer_is_caught_by_the_servers_digest(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _hf_entry())
    server.head_status = None
    server.served = BLOB[:1000] + b"X" + BLOB[1001:]  # one byte flipped on the way
    assert cli("pull", "test-tiny") == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert list(env.iterdir()) == []


def test_pinned_and_server_digest_disagree_nothing_is_downloaded(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _hf_entry(sha="a" * 64))
    server.head_status = None
    assert cli("pull", "test-tiny") == 1
    err = capsys.readouterr().err
    assert "the catalogue expects sha256 " + "a" * 64 in err and BLOB_SHA in err
    assert "Nothing was downloaded" in err and f"--sha256 {BLOB_SHA}" in err
    assert [r["method"] for r in server.requests] == ["HEAD"]
    assert list(env.iterdir()) == []
    assert cli("pull", "test-tiny", "--sha256", BLOB_SHA) == 0  # the way out the message gives
    assert (env / "test-tiny.gguf").read_bytes() == BLOB


def test_pinned_digest_that_matches_the_server(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _hf_entry(sha=BLOB_SHA))
    server.head_status = None
    assert cli("pull", "test-tiny") == 0
    assert "sha256 verified (the catalogue)" in capsys.readouterr().err


def test_missing_file_fails_before_downloading(env, server, monkeypatch, capsys):
    monkeypatch.setitem(models.CATALOGUE, "test-tiny", _hf_entry(sha=BLOB_SHA))
    server.head_status = 404
    assert cli("pull", "test-tiny") == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and HF_RESOLVE in err
    assert [r["method"] for r in server.requests] == ["HEAD"]
    assert list(env.iterdir()) == []


@pytest.mark.parametrize("value, digest", [
    ('"' + "AB" * 32 + '"', "ab" * 32), ("W/\"" + "0" * 64 + "\"", "0" * 64), ("ab" * 32, "ab" * 32),
    ('"1234abcd"', None), ("", None), (None, None), ('"' + "g" * 64 + '"', None)])
def test_etag_values(value, digest):
    assert models._as_sha256(value) == digest

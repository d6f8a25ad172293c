"""The server's copy of the editor's documents (issue 10, items 2, 7 and 8), through pygls's own
document sync in a real ``TandemServer`` (tests/unit/test_protocol.py's in-memory ``Wire``).

- Lines end only where LSP ends them (``\\n``, ``\\r\\n``, ``\\r``), in document sync and in every
  position conversion (``lsp.convert``, ``demo.position_at``): checked against a plain reference model
  of an editor, on hypothesis-generated texts and edits (seeded, deterministic).
- An incremental change costs in proportion to the change: no position is converted character by
  character (counted, not timed).
- A document the editor did not open is never read from the disk (``disk`` reads files off the loop).
"""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from lsprotocol import types
from pygls.workspace import position_codec

from tandem_lsp import disk, lines
from tandem_lsp.commands import Sources, build_off_loop
from tandem_lsp.demo import position_at
from tandem_lsp.lsp.convert import lsp_offset, lsp_units
from tandem_lsp.lsp.server import TandemServer
from tests.unit.test_protocol import Wire, initialize

URI = "file:///doc.py"
# every character str.splitlines splits at and LSP does not, plus LSP's own breaks, astral characters
# (two UTF-16 units), a lone surrogate (one unit), multi-byte UTF-8
ODD_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"
ALPHABET = "ab =\t" + ODD_BREAKS + "\r\n" + "é€😀\U0010ffff\ud800"
_BREAK = re.compile(r"\r\n|\r|\n")


# -- a reference model of the editor: obviously right, slow --------------------------------
def ref_offset(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]
    if line >= len(starts):
        return len(text)
    i = starts[line]
    end = _BREAK.search(text, i)
    end = end.start() if end else len(text)
    seen = 0
    while i < end and seen < character:
        ch = text[i]
        seen += {"utf-16": 2 if ord(ch) > 0xFFFF else 1, "utf-32": 1,
                 "utf-8": len(ch.encode("utf-8", "surrogatepass"))}[encoding]
        i += 1
    return i


def ref_position(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    before = text[:offset]
    starts = [0] + [m.end() for m in _BREAK.finditer(before)]
    line_text = before[starts[-1]:]
    units = {"utf-16": len(line_text.encode("utf-16-le", "surrogatepass")) // 2, "utf-32": len(line_text),
             "utf-8": len(line_text.encode("utf-8", "surrogatepass"))}[encoding]
    return len(starts) - 1, units


def ref_apply(text: str, start: tuple[int, int], end: tuple[int, int], new: str, encoding="utf-16") -> str:
    a, b = ref_offset(text, *start, encoding), ref_offset(text, *end, encoding)
    a, b = min(a, b), max(a, b)
    return text[:a] + new + text[b:]


# -- a real server's document sync ---------------------------------------------------------
@pytest.fixture
async def wire():
    w = Wire(TandemServer())
    w.send(initialize())
    await w.answer(0)
    yield w
    w.stop()


async def opened(wire, text: str, uri: str = URI):
    wire.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}}})
    await wire.until(lambda: unquote(uri) in wire.server.workspace.text_documents)


def change_message(start, end, text: str, version: int = 2, uri: str = URI) -> dict:
    rng = {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}
    return {"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": rng, "text": text}]}}


async def changed(wire, start, end, text: str, version: int = 2) -> str:
    wire.send(change_message(start, end, text, version))
    doc = wire.server.workspace.text_documents[URI]
    await wire.until(lambda: doc.version == version)
    return wire.server.workspace.text_documents[URI].source


async def test_the_issues_example_form_feed(wire):
    await opened(wire, "a = 1\fb = 2\nm = ")
    # LSP: line 0 is "a = 1\fb = 2", line 1 is "m = "; pygls held "a = 1\fb = 422\nm = "
    assert await changed(wire, (1, 4), (1, 4), "42") == "a = 1\fb = 2\nm = 42"


@pytest.mark.parametrize("odd", list(ODD_BREAKS))
async def test_no_character_but_lsps_line_breaks_ends_a_line(wire, odd):
    await opened(wire, f"x{odd}y\nz")
    assert await changed(wire, (0, 3), (1, 0), "!") == f"x{odd}y!z"
    assert await changed(wire, (0, 2), (0, 2), "<", 3) == f"x{odd}<y!z"


async def test_a_carriage_return_alone_and_crlf_end_lines(wire):
    await opened(wire, "a\rb\r\nc\nd")
    assert await changed(wire, (1, 1), (1, 1), "1") == "a\rb1\r\nc\nd"
    assert await changed(wire, (2, 0), (3, 0), "", 3) == "a\rb1\r\nd"
    assert await changed(wire, (1, 9), (1, 9), "$", 4) == "a\rb1$\r\nd"  # past the line: its end, before \r\n


class Discard:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def sync_server(encoding: str) -> TandemServer:
    """A server driven through its protocol's ``handle_message``: pygls runs built-in handlers (document
    sync) synchronously, so a hypothesis example needs no event loop."""
    server = TandemServer()
    server.protocol.set_writer(Discard())
    init = initialize()
    init["params"]["capabilities"] = {"general": {"positionEncodings": [encoding]}}
    server.protocol.handle_message(init)
    assert server.workspace.position_encoding == encoding
    return server


_SERVERS: dict[str, TandemServer] = {}


@settings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_incremental_sync_matches_an_editor_on_random_texts_and_edits(data):
    """Random texts over the alphabet above and random ranges (past the line, the text, reversed) in each
    encoding: the server's copy equals the editor's after every change."""
    encoding = data.draw(st.sampled_from(["utf-16", "utf-8", "utf-32"]))
    server = _SERVERS.get(encoding) or _SERVERS.setdefault(encoding, sync_server(encoding))  # didOpen starts afresh
    text = data.draw(st.text(alphabet=ALPHABET, max_size=40), label="text")
    server.protocol.handle_message({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": URI, "languageId": "python", "version": 1, "text": text}}})
    position = st.tuples(st.integers(0, 6), st.integers(0, 12))
    for version in range(2, 2 + data.draw(st.integers(1, 6))):
        start, end = data.draw(position, label="start"), data.draw(position, label="end")
        new = data.draw(st.text(alphabet=ALPHABET, max_size=5), label="new")
        text = ref_apply(text, start, end, new, encoding)
        server.protocol.handle_message(change_message(start, end, new, version))
        assert server.workspace.text_documents[URI].source == text


# -- position conversions ----------------------------------------------------------------
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=st.text(alphabet=ALPHABET, max_size=60), line=st.integers(-1, 8), character=st.integers(-1, 20),
       encoding=st.sampled_from(["utf-16", "utf-8", "utf-32"]))
def test_offsets_and_positions_follow_lsp(text, line, character, encoding):
    expected = ref_offset(text, max(line, 0), max(character, 0), encoding)
    assert lines.offset_at(text, line, character, encoding) == expected
    assert lsp_offset(text, types.Position(line=max(line, 0), character=max(character, 0)), encoding) == expected
    offset = expected
    assert lines.position_at(text, offset, encoding) == ref_position(text, offset, encoding)
    if encoding == "utf-16":
        pos = position_at(text, offset)
        assert (pos.line, pos.character) == ref_position(text, offset)
    assert lsp_units(text, encoding) == {"utf-16": len(text.encode("utf-16-le", "surrogatepass")) // 2,
                                         "utf-8": len(text.encode("utf-8", "surrogatepass")), "utf-32": len(text)}[encoding]


def test_conversions_on_lines_ended_by_cr_or_u2028():
    text = "x = 1\ry = 2\u2028z\r\nw"
    assert lsp_offset(text, types.Position(line=1, character=4)) == text.index("2")
    assert lsp_offset(text, types.Position(line=1, character=99)) == text.index("\r\n")
    assert lsp_offset(text, types.Position(line=2, character=1)) == len(text)
    assert position_at(text, len(text)) == types.Position(line=2, character=1)
    assert position_at(text, text.index("z")) == types.Position(line=1, character=6)
    assert lines.split_lines(text) == ["x = 1\r", "y = 2\u2028z\r\n", "w"]


# -- item 8: cost in proportion to the change --------------------------------------------
async def test_a_keystroke_on_a_1mb_line_converts_no_position_character_by_character(wire, monkeypatch):
    calls = [0]
    per_char = position_codec.Utf16.code_units_for_char

    def counted(self, char):
        calls[0] += 1
        return per_char(self, char)

    monkeypatch.setattr(position_codec.Utf16, "code_units_for_char", counted)
    line = "x = '" + "é" * 500_000 + "😀" + "a" * 500_000
    await opened(wire, "import os\n" + line + "\nend\n")
    text = await changed(wire, (1, 1_000_003), (1, 1_000_003), "b")
    assert text == "import os\n" + line[:1_000_002] + "b" + line[1_000_002:] + "\nend\n"
    text = await changed(wire, (1, 1_000_003), (1, 1_000_004), "", 3)  # backspace
    assert text == "import os\n" + line + "\nend\n"
    assert calls[0] == 0  # pygls walked the line twice per change: two million calls per keystroke


# -- item 2: nothing the editor did not open is read on the event loop --------------------
async def test_a_document_that_is_not_open_reads_nothing_from_the_disk(wire, tmp_path):
    path = tmp_path / "on_disk.py"
    path.write_text("secret = 1\n")
    doc = wire.server.workspace.get_text_document(path.as_uri())
    assert doc.source == ""  # pygls read the file, synchronously (a FIFO blocked the server for good)
    assert wire.server.workspace.open_document(path.as_uri()) is None
    await opened(wire, "x = 1\n", "file:///with%20space.py")
    assert wire.server.workspace.open_document("file:///with%20space.py").source == "x = 1\n"
    assert wire.server.sources().open_text("file:///with%20space.py") == "x = 1\n"


def test_the_disk_reader_reads_only_bounded_regular_files(tmp_path):
    (tmp_path / "ok.py").write_bytes(b"x = 1\n\xff\n")
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "dir.py").mkdir()
    with open(tmp_path / "huge.py", "wb") as f:
        f.truncate(disk.MAX_FILE_BYTES + 1)
    assert disk.read_text_file(str(tmp_path / "ok.py")) == "x = 1\n\ufffd\n"
    for name in ("pipe.py", "dir.py", "huge.py", "missing.py"):
        assert disk.read_text_file(str(tmp_path / name)) is None, name
    assert disk.read_text_file("/dev/zero") is None
    assert disk.read_text_file("/proc/self/status", max_bytes=10) is None  # reports no size, is longer
    assert disk.read_text_file("bad\0path") is None


async def test_command_prompts_are_built_off_the_loop_and_read_odd_files_as_absent(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "ok.py").write_text("def f():\n    return 1\n")
    loop_thread = threading.get_ident()
    threads = []

    def build(args, sources: Sources):
        threads.append(threading.get_ident())
        return sources.text((tmp_path / "pipe.py").as_uri()), sources.text((tmp_path / "ok.py").as_uri())

    assert await build_off_loop(build, {}, Sources()) == (None, "def f():\n    return 1\n")
    assert threads and loop_thread not in threads
    assert await Sources().text_async((tmp_path / "pipe.py").as_uri()) is None
    assert await Sources().text_async("file:///dev/zero") is None


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
def test_conversions_on_a_long_line_with_astral_characters_in_many_chunks(encoding):
    line = ("é" * 30 + "😀" + "a" * 7000 + "\ud800") * 40  # about 280,000 characters
    text = "first\n" + line + "\r\nlast"
    total = units(line, encoding)
    for character in [0, 1, 31, 32, 33, 7031, 7032, 7033, 100_003, 200_011, total - 1, total, total + 5]:
        expected = ref_offset(text, 1, character, encoding)
        assert lines.offset_at(text, 1, character, encoding) == expected, character
        assert lines.position_at(text, expected, encoding) == ref_position(text, expected, encoding)


def units(s: str, encoding: str) -> int:
    return {"utf-16": len(s.encode("utf-16-le", "surrogatepass")) // 2,
            "utf-8": len(s.encode("utf-8", "surrogatepass")), "utf-32": len(s)}[encoding]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
def test_a_range_of_lines_names_the_same_text_whatever_the_line_endings(encoding):
    from tandem_lsp.lsp.convert import lsp_lines_range

    for text in ["a\nbé😀\r\nc\n", "x\ry\nbé😀\r\nc", "one line é", "a\n\nb\n"]:
        pieces = text.split("\n")
        for first in range(len(pieces)):
            for last in range(first, len(pieces)):
                rng = lsp_lines_range(text, first, last, encoding)
                start = ref_offset(text, rng.start.line, rng.start.character, encoding)
                end = ref_offset(text, rng.end.line, rng.end.character, encoding)
                assert text[start:end] == "\n".join(pieces[first : last + 1]).removesuffix("\r"), (text, first, last)

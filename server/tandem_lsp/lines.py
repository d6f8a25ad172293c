"""Lines and positions as LSP defines them, fast on long lines and long files.

LSP ends a line only at ``\\n``, ``\\r\\n`` or ``\\r`` (``str.splitlines`` also splits at form feed,
``\\v``, ``\\x1c``-``\\x1e``, U+0085, U+2028 and U+2029: an editor does not). A position's character
counts UTF-16 code units by default (or UTF-8 bytes, or code points, as negotiated); a character past
the end of its line means the end of the line, a line past the end of the text the end of the text.

Everything here runs in C-speed string operations (``count``, ``find``, regular expressions, ``isascii``)
and costs in proportion to the line's position and the column, never per character in Python: a keystroke
on a 1 MB line must not walk the line.
"""

from __future__ import annotations

import re

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"

_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # two UTF-16 code units each
_CHUNK = 4096  # characters whose line breaks are counted in one step
_UNIT_CHUNK = 1 << 15  # characters whose UTF-16 length is counted in one step


def _breaks(text: str, start: int, end: int) -> int:
    """Line breaks in ``text[start:end]`` (a ``\\r\\n`` is one)."""
    n = text.count("\n", start, end)
    cr = text.count("\r", start, end)
    return n + cr - text.count("\r\n", start, end) if cr else n


def line_start(text: str, line: int) -> int | None:
    """The offset where 0-based ``line`` starts; None when the text has fewer lines."""
    if line <= 0:
        return 0
    pos, remaining, size = 0, line, len(text)
    while True:  # whole chunks first, counted in C
        end = min(pos + _CHUNK, size)
        if end < size and text[end - 1] == "\r" and text[end] == "\n":
            end += 1  # a \r\n pair stays in one chunk
        found = _breaks(text, pos, end)
        if found >= remaining or end >= size:
            break
        pos, remaining = end, remaining - found
    if found < remaining:
        return None
    for match in _BREAK.finditer(text, pos, end):  # then the breaks of the last chunk, fewer than _CHUNK
        remaining -= 1
        if remaining == 0:
            return match.end()
    return None  # not reached: the chunk had enough breaks


def line_count(text: str) -> int:
    """Lines of ``text`` as an editor counts them (an empty text, or one ending in a break, has an empty last line)."""
    return _breaks(text, 0, len(text)) + 1


def _first_break(text: str, start: int, end: int) -> int:
    """The offset of the first ``\\r`` or ``\\n`` in ``text[start:end]``, else ``end`` (two memchr scans)."""
    nl = text.find("\n", start, end)
    cr = text.find("\r", start, end if nl < 0 else nl)
    return cr if cr >= 0 else (nl if nl >= 0 else end)


def content_end(text: str, start: int) -> int:
    """The offset where the line starting at ``start`` ends, before its line break."""
    return _first_break(text, start, len(text))


def line_start_before(text: str, offset: int) -> int:
    """The start of the line that holds ``offset``."""
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` with their line breaks, as ``str.splitlines(True)`` would give them if it
    followed LSP (no empty last line for a text ending in a break, none at all for an empty text)."""
    if not text:
        return []
    if "\r" not in text:  # the common case, in C
        lines = text.split("\n")
        last = lines.pop()
        out = [line + "\n" for line in lines]
        if last:
            out.append(last)
        return out
    return _LINE.findall(text)


def _utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2  # in C; an astral character is two units


def units(s: str, encoding: str = UTF16) -> int:
    """Length of ``s`` in the client's position units."""
    if encoding == UTF32 or s.isascii():
        return len(s)
    if encoding == UTF8:
        return len(s.encode("utf-8", "surrogatepass"))
    return _utf16_len(s)


def _utf8_index(seg: str, want: int) -> int:
    """The code-point index in ``seg`` where ``want`` UTF-8 bytes have passed (rounded up inside a
    character; ``len(seg)`` when ``seg`` is shorter)."""
    data = seg.encode("utf-8", "surrogatepass")
    if want >= len(data):
        return len(seg)
    while want < len(data) and (data[want] & 0xC0) == 0x80:  # inside a multi-byte character: after it
        want += 1
    return len(data[:want].decode("utf-8", "surrogatepass"))


def _utf16_offset(text: str, start: int, end: int, want: int) -> int:
    """The offset in ``text[start:end]`` (one line's content) where ``want`` UTF-16 units have passed
    (rounded up inside a surrogate pair; ``end`` when the line is shorter). Chunk by chunk: an ASCII
    chunk's units are its length, another's are counted by encoding it (in C), and only in the chunk
    that holds the position are the astral characters looked at one by one."""
    pos, seen = start, 0
    while True:
        if pos >= end:
            return end
        chunk = text[pos : min(pos + _UNIT_CHUNK, end)]
        size = len(chunk) if chunk.isascii() else _utf16_len(chunk)
        if seen + size >= want:
            break
        pos, seen = pos + len(chunk), seen + size
    want -= seen  # units into this chunk
    if size == len(chunk):  # no astral character in it
        return pos + want
    extra = 0  # astral characters before the point reached so far
    for match in _ASTRAL.finditer(chunk):
        at = match.start()
        if want <= at + extra:
            break
        if want == at + extra + 1:  # between the two halves of a surrogate pair: after the character
            return pos + at + 1
        extra += 1
    return pos + min(want - extra, len(chunk))


def offset_at(text: str, line: int, character: int, encoding: str = UTF16) -> int:
    """The offset in ``text`` of an LSP position; positions past the line or the text are clamped."""
    start = line_start(text, line)
    if start is None:
        return len(text)
    want = max(0, character)
    # a code point is at least one unit: the position lies within `want` code points of the line's start
    seg_end = _first_break(text, start, min(len(text), start + want))
    if encoding == UTF32:
        return seg_end
    if encoding == UTF8:
        seg = text[start:seg_end]
        return seg_end if seg.isascii() else start + _utf8_index(seg, want)
    return _utf16_offset(text, start, seg_end, want)


def position_at(text: str, offset: int, encoding: str = UTF16) -> tuple[int, int]:
    """The LSP (line, character) of an offset in ``text``."""
    offset = min(max(offset, 0), len(text))
    start = line_start_before(text, offset)
    return _breaks(text, 0, offset), units(text[start:offset], encoding)

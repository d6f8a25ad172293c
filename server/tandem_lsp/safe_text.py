"""Text that can always be sent: what UTF-8 cannot encode, or a C string cannot hold, is replaced.

An editor may send a lone surrogate (the JSON escape ``"\\ud800"`` decodes to one) and any document may
hold NUL. Python keeps both in a ``str``, but UTF-8 cannot encode a lone surrogate (``UnicodeEncodeError:
surrogates not allowed``) and model servers written in C read NUL as the end of the prompt. Each such
character is replaced by U+FFFD, one for one (lengths and offsets stay the same), in the piece of text it
is in; everything else, and every text without one, is left as it is.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSENDABLE = re.compile("[\ud800-\udfff\x00]")


def clean_str(text: str) -> str:
    """``text`` with each lone surrogate and NUL replaced by U+FFFD (``text`` itself when it has none)."""
    return _UNSENDABLE.sub(REPLACEMENT, text) if _UNSENDABLE.search(text) else text


def clean(value: Any) -> Any:
    """A JSON-like value (str, dict, list, tuple, scalars) with every string, keys included, cleaned.
    Values without anything to replace are returned as they are (no copy)."""
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, dict):
        items = [(clean(k), clean(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items())):
            return value
        return dict(items)
    if isinstance(value, (list, tuple)):
        items = [clean(v) for v in value]
        if all(v is v0 for v, v0 in zip(items, value)):
            return value
        return type(value)(items) if isinstance(value, list) else tuple(items)
    return value


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, lone surrogates and NUL replaced."""
    if "\x00" not in text:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            pass
    return clean_str(text).encode("utf-8")

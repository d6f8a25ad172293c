"""Suggestion cache with typed-through lookup.

Entries are keyed by the text just before the cursor (its last ``key_chars`` characters) and a
fingerprint of the text after it, so the same spot in a file hits the cache whatever the rest of
the document is. ``typed_through`` answers the common case of a user typing the very characters a
suggestion showed: it finds the entry made a few characters earlier and returns the remainder.
"""

from __future__ import annotations

import hashlib

from cachetools import LRUCache

KEY_CHARS = 600
SUFFIX_FP_CHARS = 200


def suffix_fingerprint(text: str, offset: int) -> str:
    """A short fingerprint of the text after the cursor (its start is what matters to a suggestion)."""
    # surrogatepass: a lone surrogate in the document (which UTF-8 cannot carry) must not fail the lookup
    suffix = text[offset : offset + SUFFIX_FP_CHARS].encode("utf-8", "surrogatepass")
    return hashlib.blake2b(suffix, digest_size=8).hexdigest()


def prefix_key(text: str, offset: int, key_chars: int = KEY_CHARS) -> str:
    return text[max(0, offset - key_chars) : offset]


class CompletionCache:
    """An LRU of suggestions; values are the text to insert at the keyed cursor."""

    def __init__(self, maxsize: int = 512, key_chars: int = KEY_CHARS):
        self._lru: LRUCache[tuple[str, str], str] = LRUCache(maxsize=maxsize)
        self._key_chars = key_chars
        self._longest = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._lru)

    def put(self, text: str, offset: int, completion: str) -> None:
        if not completion:
            return
        self._lru[(prefix_key(text, offset, self._key_chars), suffix_fingerprint(text, offset))] = completion
        self._longest = max(self._longest, len(completion))

    def get(self, text: str, offset: int, *, count: bool = True) -> str | None:
        """The remainder of a cached suggestion that the text before ``offset`` has typed into, or None.

        Tries the cursor itself, then each earlier position up to the longest cached suggestion:
        an entry made ``k`` characters back counts when its suggestion starts with the ``k``
        characters typed since and still has something left to show.
        """
        fp = suffix_fingerprint(text, offset)
        limit = min(self._longest, offset)
        for k in range(0, limit + 1):
            completion = self._lru.get((prefix_key(text, offset - k, self._key_chars), fp))
            if completion is None:
                continue
            typed = text[offset - k : offset]
            if len(completion) > k and completion.startswith(typed):
                self.hits += count
                return completion[k:]
        self.misses += count
        return None

    def clear(self) -> None:
        self._lru.clear()
        self._longest = 0

from tandem_lsp.completion.cache import CompletionCache

DOC = "def add(a, b):\n    █\n\nprint(add(1, 2))\n"


def at(marked: str) -> tuple[str, int]:
    return marked.replace("█", ""), marked.index("█")


def typed(marked: str, chars: str) -> tuple[str, int]:
    text, offset = at(marked)
    return text[:offset] + chars + text[offset:], offset + len(chars)


def test_exact_hit_and_miss():
    cache = CompletionCache()
    cache.put(*at(DOC), "return a + b")
    assert cache.get(*at(DOC)) == "return a + b"
    assert cache.get(*at(DOC.replace("b):", "c):"))) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_typed_through_returns_the_remainder():
    cache = CompletionCache()
    cache.put(*at(DOC), "return a + b")
    for n in range(1, len("return a + b")):
        assert cache.get(*typed(DOC, "return a + b"[:n])) == "return a + b"[n:]


def test_typed_through_stops_when_the_user_diverges_or_finishes():
    cache = CompletionCache()
    cache.put(*at(DOC), "return a + b")
    assert cache.get(*typed(DOC, "reta")) is None
    assert cache.get(*typed(DOC, "return a + b")) is None  # nothing left to show


def test_suffix_is_part_of_the_key():
    cache = CompletionCache()
    cache.put(*at(DOC), "return a + b")
    assert cache.get(*at(DOC.replace("print", "print2"))) is None


def test_lru_evicts_oldest():
    cache = CompletionCache(maxsize=2)
    for i in range(3):
        cache.put(*at(f"x{i} = █\n"), str(i))
    assert cache.get(*at("x0 = █\n")) is None
    assert cache.get(*at("x2 = █\n")) == "2"
    assert len(cache) == 2


def test_key_ignores_text_far_before_the_cursor():
    cache = CompletionCache(key_chars=50)
    common = "# a shared header comment, longer than the key\n" + DOC
    cache.put(*at("A" * 500 + "\n" + common), "return a + b")
    assert cache.get(*at("B" * 500 + "\n" + common)) == "return a + b"


def test_empty_completion_not_stored():
    cache = CompletionCache()
    cache.put(*at(DOC), "")
    assert len(cache) == 0


def test_a_lone_surrogate_after_the_cursor_does_not_fail_the_lookup():
    cache = CompletionCache()
    text = "x = f(\n    s = '\ud800'\n"
    cache.put(text, 6, "a)")
    assert cache.get(text, 6) == "a)"

import pytest

from tandem_lsp.completion.debounce import INITIAL_MS, MAX_MS, MIN_MS, Debouncer


def feed(d: Debouncer, gaps_ms: list[float]) -> None:
    t = 100.0
    d.keystroke(t)
    for gap in gaps_ms:
        t += gap / 1000.0
        d.keystroke(t)


def test_fixed_setting_is_used_as_is():
    d = Debouncer(120)
    feed(d, [30] * 10)
    assert d.delay_ms() == 120.0


def test_auto_starts_from_the_initial_delay():
    assert Debouncer("auto").delay_ms() == INITIAL_MS


def test_auto_adapts_to_fast_and_slow_typists():
    fast, slow = Debouncer("auto"), Debouncer("auto")
    feed(fast, [50] * 20)
    feed(slow, [160] * 20)
    assert fast.delay_ms() == pytest.approx(100.0)
    assert slow.delay_ms() == pytest.approx(320.0)


def test_auto_is_clamped():
    very_fast, very_slow = Debouncer("auto"), Debouncer("auto")
    feed(very_fast, [5] * 20)
    feed(very_slow, [900] * 20)
    assert very_fast.delay_ms() == MIN_MS
    assert very_slow.delay_ms() == MAX_MS


def test_pauses_do_not_count_as_typing_rhythm():
    d = Debouncer("auto")
    feed(d, [50, 5000, 50, 50, 3000, 50, 50])
    assert d.delay_ms() == pytest.approx(100.0)

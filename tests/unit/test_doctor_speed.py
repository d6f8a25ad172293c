"""What `doctor` tells a user about the model server's speed: what to expect, and what to change."""

from __future__ import annotations

from tandem_lsp.backends.types import ServerProfile
from tandem_lsp.config import parse_settings
from tandem_lsp.doctor import _speed


def rows_for(profile: ServerProfile) -> dict[str, str]:
    settings, _ = parse_settings({})
    rows: dict[str, str] = {}
    _speed(profile, settings, lambda name, value: rows.setdefault(name, value))
    return rows


def test_a_slow_cpu_server_is_told_what_to_expect_and_what_would_help():
    rows = rows_for(ServerProfile(read_tps=60.0, write_tps=11.0, chars_per_token=3.5, n_ctx=32768, n_batch=2048,
                                  max_prefix_tokens=1536, max_suffix_tokens=510, max_extra_tokens=30000,
                                  hints=["--cache-reuse 256 (reuse cached chunks when the start of the prompt moves)"]))
    assert rows["reads"] == "60 prompt tokens/s" and rows["writes"] == "11 tokens/s"
    assert rows["context"] == "32768 tokens, batch 2048"
    assert "before the cursor for a new file" in rows["prompt"]
    seconds = float(rows["expect"].split()[1])
    assert 0.5 < seconds < 3  # a quarter second of suffix, a few tokens typed, one token written
    assert "smaller model" in rows["advice"]
    assert rows["server flag"].startswith("--cache-reuse 256")


def test_a_fast_server_gets_no_advice():
    rows = rows_for(ServerProfile(read_tps=5000.0, write_tps=150.0, chars_per_token=3.5, n_ctx=32768))
    assert "advice" not in rows and "server flag" not in rows
    assert float(rows["expect"].split()[1]) < 0.5


def test_an_unmeasured_server_shows_the_settings_bounds():
    rows = rows_for(ServerProfile())
    assert rows["prompt"] == "8,000 + 2,000 characters (completion.maxPrefixChars/maxSuffixChars)"
    assert "reads" not in rows and "expect" not in rows

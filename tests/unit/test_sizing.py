"""The sizing stage: prompts sized to a server's measured speed and limits, and a start that stays put."""

from __future__ import annotations

import pytest

from tandem_lsp.backends.types import MAX_TIMED_TPS, ServerProfile
from tandem_lsp.completion.sizing import (
    PROMPT_MIN_TOKENS,
    SUFFIX_MIN_TOKENS,
    TOKEN_MARGIN,
    PromptStart,
    ReadEstimate,
    budget,
    common_prefix_len,
)


def slow_server(**kw) -> ServerProfile:
    """A CPU server like the 0.5B shape on 2 cores: 90 tokens/s, one character per token, default batch."""
    base = dict(read_tps=90.0, write_tps=15.0, chars_per_token=1.0, n_ctx=4096, n_batch=2048,
                max_prefix_tokens=1536, max_suffix_tokens=510, max_extra_tokens=2050)
    return ServerProfile(**(base | kw))


def test_an_unknown_server_gets_the_settings_bounds():
    for profile in (None, ServerProfile(), ServerProfile(sizes_itself=True, read_tps=50.0)):
        b = budget(profile, 8000, 2000, 128)
        assert (b.prefix, b.max_prefix, b.suffix, b.snippets, b.sized) == (8000, 8000, 2000, 4000, False)


def test_a_known_context_bounds_an_unmeasured_server():
    b = budget(ServerProfile(n_ctx=1024, chars_per_token=2.0), 8000, 2000, 128)
    assert b.prefix + b.suffix <= (1024 - 128) * 2.0
    assert not b.sized


def test_a_slow_server_gets_what_it_reads_in_time():
    b = budget(slow_server(), 8000, 2000, 128)
    assert b.sized
    # the suffix, re-read on every keystroke: a quarter second, at least 32 tokens
    assert b.suffix == int(max(SUFFIX_MIN_TOKENS, 90 * 0.25) * TOKEN_MARGIN)
    # a new prompt: three seconds of reading (at least 256 tokens)
    assert b.prefix == int(max(PROMPT_MIN_TOKENS, 90 * 3) * TOKEN_MARGIN)
    # a kept start may grow up to what /infill keeps of a prefix (3/4 of the batch), never past it
    assert b.prefix < b.max_prefix <= 1536
    assert b.snippets <= b.prefix // 4 + 1


def test_a_fast_server_keeps_the_settings_bounds_within_its_own_cuts():
    b = budget(slow_server(read_tps=5000.0, chars_per_token=3.5), 8000, 2000, 128)
    assert b.suffix <= 2000 and b.prefix <= 8000
    assert b.max_prefix <= 1536 * 3.5  # /infill would cut a longer prefix from the left
    assert b.suffix <= (510 - 64) * 3.5


def test_the_infill_suffix_shares_its_room_with_the_cursor_line():
    short_line = budget(slow_server(read_tps=5000.0), 8000, 2000, 128, line_chars=10)
    long_line = budget(slow_server(read_tps=5000.0), 8000, 2000, 128, line_chars=400)
    assert long_line.suffix < short_line.suffix
    assert budget(slow_server(read_tps=5000.0), 8000, 2000, 128, line_chars=2000).suffix == 0


def test_no_room_for_extra_chunks_means_no_snippets():
    assert budget(slow_server(max_extra_tokens=0), 8000, 2000, 128).snippets == 0


def test_a_small_context_bounds_the_whole_prompt():
    b = budget(slow_server(n_ctx=1024), 8000, 2000, 128)
    assert b.max_prefix + b.suffix + 128 <= 1024


def lines(n: int, width: int = 40) -> str:
    return "".join(f"line {i:04d} ".ljust(width - 1, "x") + "\n" for i in range(n))


def test_the_start_stays_while_typing_and_moves_only_past_the_limit():
    b = budget(slow_server(), 8000, 2000, 128)
    text = lines(200)
    offset = 150 * 40
    starts = PromptStart()
    first = starts.start("u", text, offset, b)
    assert first > 0 and text[first - 1] == "\n" and offset - first <= b.prefix
    starts.sent("u", text, first)
    # typing line after line at the cursor keeps the start while the prefix fits the server's limit
    room = (b.max_prefix - (offset - first)) // 40
    assert room >= 15  # more than a third of the cold budget can be typed before the start moves
    for typed in range(1, room + 1):
        new = text[:offset] + lines(typed) + text[offset:]
        assert starts.start("u", new, offset + typed * 40, b) == first
    # once the prefix would pass the limit, the start moves
    far = text[:offset] + lines(room + 1) + text[offset:]
    moved = starts.start("u", far, offset + (room + 1) * 40, b)
    assert moved > first and offset + (room + 1) * 40 - moved <= b.prefix


def test_the_start_is_found_again_after_an_edit_above_it():
    b = budget(slow_server(), 8000, 2000, 128)
    text = lines(200)
    offset = 150 * 40
    starts = PromptStart()
    first = starts.start("u", text, offset, b)
    starts.sent("u", text, first)
    edited = "import os\n" + text  # a line added at the top shifts everything by 10 characters
    assert starts.start("u", edited, offset + 10, b) == first + 10


def test_another_document_gets_a_new_start():
    b = budget(slow_server(), 8000, 2000, 128)
    text = lines(200)
    starts = PromptStart()
    starts.sent("a", text, 1000)
    assert starts.start("b", text, 150 * 40, b) != 1000


def test_read_estimate_counts_only_what_differs():
    profile = slow_server()
    reads = ReadEstimate()
    prompt = "x" * 900
    assert abs(reads.seconds(prompt, profile) - 10.0) < 1e-6  # nothing cached: 900 tokens at 90/s
    reads.sent(prompt)
    assert abs(reads.seconds(prompt[:-90] + "y" * 180, profile) - 2.0) < 1e-6
    assert reads.seconds("anything", ServerProfile()) == 0.0  # unmeasured: no estimate


def test_common_prefix_len():
    assert common_prefix_len("", "abc") == 0
    assert common_prefix_len("abc", "abc") == 3
    assert common_prefix_len("abcd", "abxd") == 2
    long = "a" * 10_000
    assert common_prefix_len(long + "b", long + "c") == 10_000


def test_a_small_context_and_batch_leave_the_prefix_its_share():
    # llama-server -c 1024 -b 256: /infill keeps 192 prefix tokens, 62 of line and suffix, 770 of extra chunks
    p = slow_server(read_tps=20000.0, n_ctx=1024, n_batch=256, max_prefix_tokens=192, max_suffix_tokens=62,
                    max_extra_tokens=770)
    b = budget(p, 8000, 2000, 32, line_chars=20)
    assert b.max_prefix == int(192 * TOKEN_MARGIN)  # the server's own cut, not less
    assert b.snippets + b.max_prefix + b.suffix + 20 + 32 <= 1024  # prompt and answer within the context
    assert b.snippets <= 1024 // 4


def test_a_very_fast_server_with_a_context_keeps_a_full_prompt():
    # an OpenAI-compatible server timed at hundreds of thousands of tokens/s (a GPU, or a first token from
    # its cache) with a 4,096-token context: the settings' bounds, within the context, never an empty prefix
    p = ServerProfile(read_tps=465_000.0, n_ctx=4096, measures_by_ttft=True)
    b = budget(p, 8000, 2000, 128)
    assert 0 < b.suffix <= (4096 - 128) // 5
    assert b.max_prefix >= 1500 and b.prefix >= 1000
    assert (b.max_prefix + b.suffix + b.snippets) <= (4096 - 128) * 1.0


# -- a server measured by its time to the first token ------------------------------------------------
def test_time_to_first_token_without_a_shorter_read_is_a_low_bound():
    p = ServerProfile(measures_by_ttft=True)
    p.note_first_token(200, 2000.0)  # 200 tokens, first token after 2 s
    assert p.read_tps == pytest.approx(100.0)
    p.note_first_token(20, 30.0)  # too short to time: only the fixed cost of a call is learned
    assert p.read_tps == pytest.approx(100.0) and p.ttft_floor == (20, 30.0)


def test_the_fixed_cost_of_a_call_is_not_taken_for_reading():
    slow = ServerProfile(measures_by_ttft=True)  # 90 tokens/s plus 60 ms per call
    for tokens in (10, 300, 300, 300, 300, 300, 300):
        slow.note_first_token(tokens, 60 + tokens / 90 * 1000)
    assert slow.read_tps == pytest.approx(90.0, rel=0.15)
    fixed = ServerProfile(measures_by_ttft=True)  # 150 ms whatever the prompt: reading costs nothing visible
    for tokens in (20, 250, 400):
        fixed.note_first_token(tokens, 150.0)
    assert fixed.read_tps == MAX_TIMED_TPS  # the whole time would say 250 / 0.15 s = 1,667 at best
    assert budget(fixed, 8000, 2000, 128).prefix > budget(slow, 8000, 2000, 128).prefix * 4

"""scripts/bench_next_edit.py's pure parts: the oracle's rewrite of a window (the target's changes that lie
wholly inside it, and no others), the judge of an offered edit, and the change a user makes next."""

from __future__ import annotations

from scripts.bench_next_edit import judge_edit, offset_at, oracle_window, position_of, user_change
from scripts.next_edit_fixtures import hunks, load_fixtures

DOC = "".join(f"x{i} = old({i})\n" for i in range(30))
TARGET = DOC.replace("old(", "new(")


def lines(text: str, a: int, b: int) -> str:
    return "".join(text.splitlines(keepends=True)[a:b])


def test_oracle_rewrites_only_what_lies_in_the_window():
    window = lines(DOC, 10, 20)
    assert oracle_window(window, DOC, TARGET) == lines(TARGET, 10, 20)


def test_oracle_leaves_made_changes_and_changes_outside_the_window_alone():
    doc = DOC.replace("x12 = old(", "x12 = new(")  # the user made this one
    window = lines(doc, 10, 20)
    proposed = oracle_window(window, doc, TARGET)
    assert proposed == lines(TARGET, 10, 20)
    # a block straddling the window's edge that changes the number of lines is not proposed
    target = doc.replace("x19 = old(19)\nx20 = old(20)\n", "x19 = x20 = y\n")
    assert oracle_window(lines(doc, 10, 20), doc, target) == lines(doc, 10, 20)
    # ... one that changes lines one for one is, for its lines inside the window
    target = doc.replace("x19 = old(19)\nx20 = old(20)\n", "x19 = y\nx20 = y\n")
    assert oracle_window(lines(doc, 10, 20), doc, target) == lines(doc, 10, 19) + "x19 = y\n"


def test_oracle_without_remaining_changes_or_outside_the_document():
    window = lines(DOC, 3, 9)
    assert oracle_window(window, DOC, DOC) == window
    assert oracle_window("not in the document\n", DOC, TARGET) is None
    assert oracle_window("", DOC, TARGET) is None
    assert oracle_window("= old(1)\n", DOC, TARGET) is None  # not whole lines


def test_oracle_picks_the_occurrence_nearest_the_cursor():
    doc = "a\nb\nc\n" + "pad\n" * 10 + "a\nb\nc\n"
    target = "a\nb\nc\n" + "pad\n" * 10 + "a\nB\nc\n"
    assert oracle_window("a\nb\nc\n", doc, target, near_line=0) == "a\nb\nc\n"
    assert oracle_window("a\nb\nc\n", doc, target, near_line=13) == "a\nB\nc\n"


def test_oracle_handles_inserted_and_deleted_lines():
    doc = "def f(x):\n    a = 1\n    return a\n\ndef g(y):\n    b = 2\n    return b\n"
    target = "def f(x):\n    a = 1\n    log(a)\n    return a\n\ndef g(y):\n    return b\n"
    assert oracle_window(doc, doc, target) == target


def test_oracle_on_a_fixture_proposes_the_remaining_hunks_of_its_window():
    fx = load_fixtures(["01"])[0]
    first = hunks(fx.before, fx.after)[0]
    b_lines = fx.before.splitlines(keepends=True)
    a_lines = fx.after.splitlines(keepends=True)
    doc = "".join(b_lines[: first.a] + a_lines[first.c : first.d] + b_lines[first.b :])  # the user made hunk 1
    lo = first.a - 6
    window = "".join(doc.splitlines(keepends=True)[lo : lo + 20])
    proposed = oracle_window(window, doc, fx.after)
    rest = hunks(doc, fx.after)
    inside = [h for h in rest if lo <= h.a and h.b <= lo + 20]
    assert len(inside) >= 1  # the next repeat is within the window
    assert len(hunks(window, proposed)) == len(inside)
    assert proposed == "".join(fx.after.splitlines(keepends=True)[lo : lo + 20])


def test_judge_edit_right_partial_and_false():
    doc = "a = f(x)\nb = 1\nc = f(y)\n"
    target = "a = g(x, k=1)\nb = 1\nc = g(y, k=1)\n"
    s = doc.index("f(y)")
    assert judge_edit(doc, target, s, s + 4, "g(y, k=1)").hunk == 1
    assert judge_edit(doc, target, s, s + 4, "g(y, k=1)").complete
    partial = judge_edit(doc, target, s, s + 1, "g")
    assert partial.hunk == 1 and not partial.complete
    assert judge_edit(doc, target, s, s + 1, "h").hunk is None
    b = doc.index("1")
    assert judge_edit(doc, target, b, b + 1, "2").hunk is None  # no hunk there
    assert judge_edit(doc, target, s, s + 4, "f(y)").hunk is None  # changes nothing


def test_user_change_is_the_first_hunk_narrowed():
    doc = "a = f(x)\nb = 1\nc = f(y)\n"
    target = "a = g(x)\nb = 1\nc = g(y)\n"
    start, end, new = user_change(doc, target)
    assert (doc[start:end], new) == ("f", "g")
    assert user_change(target, target) is None


def test_positions_round_trip_in_utf16():
    text = "a = 'é😀'\nb = 2\n"
    for offset in range(len(text) + 1):
        pos = position_of(text, offset)
        assert offset_at(text, pos["line"], pos["character"]) == offset
    assert position_of(text, text.index("'", 5) )["character"] == 8  # the emoji is two UTF-16 units


def test_llama_server_log_tasks():
    from scripts.bench_next_edit import llama_tasks

    log = "\n".join([
        "0.01 I slot launch_slot_: id  1 | task 20 | processing task, is_child = 0",
        "0.02 I slot print_timing: id  1 | task 20 | n_gen =    490, tg = 159.18 t/s, tg_3s = 159.50 t/s",
        "0.03 I slot print_timing: id  1 | task 20 | prompt eval time =     503.36 ms /  2535 tokens (0.20 ms)",
        "0.03 I slot print_timing: id  1 | task 20 |        eval time =   18784.39 ms /  1443 tokens (13.03 ms)",
        "0.03 I slot      release: id  1 | task 20 | stop processing: n_tokens = 3977, truncated = 0",
        "0.04 I slot launch_slot_: id  1 | task 1466 | processing task, is_child = 0",
        "0.05 I slot print_timing: id  1 | task 1466 | n_gen =    322, tg =  19.46 t/s, tg_3s =  20.00 t/s",
        "0.06 W srv          stop: cancel task, id_task = 1466",
        "0.06 I slot      release: id  1 | task 1466 | stop processing: n_tokens = 3505, truncated = 0",
    ])
    assert llama_tasks(log) == [
        {"task": 20, "slot": 1, "prompt_n": 2535, "gen": 1443, "n_tokens": 3977, "cancelled": False},
        {"task": 1466, "slot": 1, "prompt_n": None, "gen": 322, "n_tokens": 3505, "cancelled": True},
    ]

"""Router: task table, tandem.ask classification, availability fallbacks, circuit breaker."""

import dataclasses
import json
from pathlib import Path

import pytest
from tandem_lsp.router import (
    CLOUD,
    LOCAL,
    PER_REQUEST,
    TASK_TIERS,
    CircuitBreaker,
    CloudState,
    Decision,
    Route,
    classify_ask,
    decide,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "routing_requests.json"


# --- task table -----------------------------------------------------------------------------------

@pytest.mark.parametrize("task, tier", [
    ("completion", LOCAL),
    ("code_action", LOCAL),
    ("add_docstring", LOCAL),
    ("add_type_hints", LOCAL),
    ("fix_diagnostic", LOCAL),
    ("explain_code", LOCAL),
    ("explain_failure", CLOUD),
    ("plan_refactor", CLOUD),
    ("ask", PER_REQUEST),
])
def test_task_table(task, tier):
    assert TASK_TIERS[task] == tier


def test_task_table_has_no_other_tiers():
    assert set(TASK_TIERS.values()) == {LOCAL, CLOUD, PER_REQUEST}


# --- classify_ask ---------------------------------------------------------------------------------

# (prompt, context_chars, files) — one or more per schema-like category the router must keep local.
LOCAL_ASKS = [
    ("Classify these support tickets as bug, feature request or question.", 0, 1),
    ("Summarise this function in one sentence.", 0, 1),
    ("Summarize the changes in this diff.", 3000, 1),
    ("Extract all the email addresses from this text.", 0, 1),
    ("Extract the SQL strings in this module into constants.", 6000, 1),
    ("Rename `tmp` to `buffer` in this function.", 0, 1),
    ("Rename the variables in this block to something more descriptive.", 0, 1),
    ("Document this class.", 0, 1),
    ("Write a docstring for `parse_header`.", 0, 1),
    ("Add docstrings to the public functions.", 4000, 1),
    ("Convert this XML to JSON.", 0, 1),
    ("Translate this JSON config to YAML.", 0, 1),
    ("Format this JSON.", 0, 1),
    ("Reformat this long call so each argument is on its own line.", 0, 1),
    ("Sort these constants alphabetically.", 0, 1),
    ("Sort the keys of this dict.", 0, 1),
    ("List the public methods of this class.", 0, 1),
    ("List every TODO in this file.", 8000, 1),
    ("What does this one-liner do?", 0, 1),
    ("Explain what zip(*pairs) does here.", 0, 1),
    ("What is `yield from` doing in this function?", 0, 1),
    ("Write a regex that matches UK postcodes.", 0, 1),
    ("Give me a regular expression for hex colours like #fff or #a1b2c3.", 0, 1),
    ("Generate 20 rows of fake customer data as JSON.", 0, 1),
    ("Write boilerplate for a FastAPI router with CRUD endpoints.", 0, 1),
    ("Create a pytest fixture that returns a sample User.", 0, 1),
    ("Add type hints to this function.", 0, 1),
    ("Turn this if/elif chain into a dict lookup.", 0, 1),
    # long but easy
    ("Rename these 40 variables to snake_case.", 15000, 1),
    ("Add a module docstring to each of these files.", 0, 3),
    # scary words inside identifiers say nothing about the task
    ("Write a docstring for `handle_race_condition`.", 0, 1),
    ("Rename flaky_retry to retry_with_jitter.", 0, 1),
]

TRACEBACK_PROMPT = """\
Traceback (most recent call last):
  File "worker.py", line 88, in run
    job = queue.get_nowait()
queue.Empty
It happens every few hours in production."""

NUMBERED_PROMPT = """\
I need you to:
1. read the three modules below
2. work out how the settings are loaded
3. propose a single place to validate them"""

CLOUD_ASKS = [
    # debugging / root cause
    ("Why does this test fail only on Mondays?", 0, 1),
    ("Why is this deadlocking?", 0, 1),
    ("Why the leak?", 0, 1),
    (TRACEBACK_PROMPT, 0, 1),
    ("Is there a race condition when two workers pick up the same job?", 0, 1),
    ("This test is flaky; find the cause.", 0, 1),
    ("Debug why the websocket reconnect loop never stops.", 0, 1),
    ("Figure out the root cause of the 500s on /checkout.", 0, 2),
    # multi-step planning
    ("Plan the steps to split the billing code out of the monolith into its own service.", 0, 8),
    ("Give me a step-by-step migration plan from Flask to FastAPI.", 0, 1),
    (NUMBERED_PROMPT, 0, 3),
    # design / architecture / trade-offs
    ("Design the caching layer for the recommendations API.", 0, 1),
    ("What are the trade-offs between gRPC and REST for our internal services?", 0, 1),
    ("Propose an architecture for multi-region failover.", 0, 1),
    ("How would you restructure these modules to remove the import cycle?", 0, 5),
    # security review
    ("Review this login handler for security issues.", 0, 1),
    ("Could an attacker bypass the permission check in this view?", 0, 1),
    ("Audit this upload handler for path traversal.", 0, 1),
    # performance investigation
    ("The report endpoint is slow; investigate where the time goes.", 0, 1),
    ("Memory usage climbs steadily during the import job. Where could it be going?", 0, 1),
    ("Find the bottleneck in this data pipeline.", 0, 4),
    ("Explain why this async version is slower than the sync one.", 0, 1),
    # ambiguous
    ("Make it better.", 0, 1),
    ("Something's off with this.", 0, 1),
    ("Hmm, not sure this is right.", 0, 1),
    # long, multi-file
    ("Update the serialization for the new API version.", 30000, 9),
    ("Add the tenant id to every query.", 50000, 14),
    # reason / compare / decide
    ("Compare these two retry implementations and decide which one we keep.", 0, 1),
    ("Should we use SQLite or Postgres for the desktop app?", 0, 1),
    ("Reason about whether this lock-free queue is correct.", 0, 1),
    ("Which of these three approaches holds up better with a million users?", 0, 1),
]


@pytest.mark.parametrize("prompt, context_chars, files", LOCAL_ASKS)
def test_schema_like_asks_stay_local(prompt, context_chars, files):
    route = classify_ask(prompt, context_chars=context_chars, files=files)
    assert route.tier == LOCAL, route


@pytest.mark.parametrize("prompt, context_chars, files", CLOUD_ASKS)
def test_open_ended_asks_escalate(prompt, context_chars, files):
    route = classify_ask(prompt, context_chars=context_chars, files=files)
    assert route.tier == CLOUD, route


def test_ask_lists_are_balanced_and_large_enough():
    assert len(LOCAL_ASKS) >= 30 and len(CLOUD_ASKS) >= 30


def test_reason_names_the_task_shape_and_the_deciding_features():
    local = classify_ask("Rename `userName` to `user_name` everywhere in this function.")
    assert local == Route(LOCAL, local.reason, local.score, local.features, "rewrite")
    assert local.reason.startswith("small rewrite (wording, naming, layout) → local (rename")
    assert local.reason.endswith(f"score {local.score:+.1f})")
    cloud = classify_ask("Why does this test fail only in CI?")
    assert cloud.shape == "debug"
    assert cloud.reason.startswith("debug a failure → cloud (")
    assert "root-cause question (why)" in cloud.reason and "failure symptom" in cloud.reason


def test_score_is_the_sum_of_the_named_features():
    route = classify_ask("Is there a race between the cache refresh and the handler?", files=4)
    assert route.score == pytest.approx(sum(w for _, w in route.features))
    names = [n for n, _ in route.features]
    assert "concurrency" in names and "4 files" in names and "open question" in names


def test_traceback_is_a_feature_and_code_is_not_prose():
    route = classify_ask(TRACEBACK_PROMPT)
    assert ("traceback", 3.0) in route.features
    # "race_condition" / "deadlock" only inside identifiers: no concurrency feature
    for prompt in ("Add a docstring to `handle_race_condition`.", "Rename debug_deadlock to diagnose_deadlock."):
        assert "concurrency" not in dict(classify_ask(prompt).features)


def test_size_signals():
    small = dict(classify_ask("Update the serialization.").features)
    big = dict(classify_ask("Update the serialization.", context_chars=20000, files=4).features)
    assert not any("context" in n or "files" in n for n in small)
    assert big["large context (20,000 chars)"] == 1.5 and big["4 files"] == 1.5
    huge = dict(classify_ask("Update the serialization.", context_chars=60000, files=10).features)
    assert huge["very large context (60,000 chars)"] == 2.5 and huge["10 files"] == 2.5


def test_ties_go_local_unless_long():
    # A genuine tie: listing (-2) against a security topic (+2).
    tie = classify_ask("List the security headers this middleware sets.")
    assert tie.score == 0 and tie.tier == LOCAL
    assert tie.reason == ("shapes cancel out (listing vs security); "
                          "a tie stays on the cheaper local model → local")
    assert tie.shape == ""
    # A snippet explanation (-1.5) over a lot of material (+1.5): a tie, but a long request.
    long_tie = classify_ask("Explain what this does.", context_chars=13000)
    assert long_tie.score == 0 and long_tie.tier == CLOUD
    assert "long request" in long_tie.reason and long_tie.reason.endswith("→ cloud")
    assert classify_ask("Explain what this does.", context_chars=12000).tier == LOCAL


def test_classification_is_deterministic():
    for prompt, ctx, files in LOCAL_ASKS + CLOUD_ASKS:
        assert classify_ask(prompt, context_chars=ctx, files=files) == \
            classify_ask(prompt, context_chars=ctx, files=files)


def _accuracy(rows: list[dict]) -> float:
    correct = sum(
        classify_ask(r["prompt"], context_chars=r.get("context_chars", 0), files=r.get("files", 1)).tier
        == r["label"]
        for r in rows
    )
    return correct / len(rows)


def test_tuned_set_accuracy_at_least_95_percent():
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    rows = doc["requests"]
    assert len(rows) >= 400
    assert sum(r["label"] == LOCAL for r in rows) == sum(r["label"] == CLOUD for r in rows)
    assert _accuracy(rows) >= 0.95
    # the issue-12 shapes on their own, too
    assert _accuracy([r for r in rows if r.get("split") == "shapes"]) >= 0.95


HELDOUT = sorted(DATA.parent.glob("routing_heldout_*.jsonl"))


def _heldout_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_there_are_three_heldout_rounds_and_each_first_score_is_recorded():
    assert [p.name for p in HELDOUT] == [f"routing_heldout_{i}.jsonl" for i in (1, 2, 3)]
    history = json.loads(DATA.read_text(encoding="utf-8"))["heldout_history"]
    assert [h["file"] for h in history] == [f"tests/data/{p.name}" for p in HELDOUT]
    for h, path in zip(history, HELDOUT):
        assert h["total"] == len(_heldout_rows(path))
        assert 0 <= h["correct"] <= h["total"]
    # rounds after the change met the target the first time they were routed (round 2 did not: 89 %)
    assert history[-1]["correct"] / history[-1]["total"] >= 0.9


@pytest.mark.parametrize("path", HELDOUT, ids=lambda p: p.stem)
def test_heldout_file_is_well_formed(path):
    rows = _heldout_rows(path)
    assert len(rows) >= 60
    for r in rows:
        assert r["label"] in (LOCAL, CLOUD) and r["prompt"].strip() and r["shape"] and r["why"]
    tuned = {r["prompt"] for r in json.loads(DATA.read_text(encoding="utf-8"))["requests"]}
    assert not tuned & {r["prompt"] for r in rows}, "a held-out request is in the tuned set"


@pytest.mark.parametrize("path", HELDOUT, ids=lambda p: p.stem)
def test_heldout_accuracy_at_least_90_percent(path):
    """Regression checks: each held-out file was routed blind once (heldout_history); the current router
    must still route at least 90 % of it as labelled."""
    assert _accuracy(_heldout_rows(path)) >= 0.9


# --- decide ---------------------------------------------------------------------------------------

def ok(**kw) -> CloudState:
    """A cloud that can be called, and a running local model; override fields with kw."""
    return CloudState(**{"enabled": True, "has_key": True, "over_budget": False, **kw})


LOCAL_ASK = "Write a docstring for this function."
CLOUD_ASK = "Why is this deadlocking?"


@pytest.mark.parametrize("task", ["completion", "code_action", "add_docstring", "add_type_hints",
                                  "fix_diagnostic", "explain_code"])
def test_local_tasks_stay_local(task):
    d = decide(task, cloud=ok())
    assert d == Decision(LOCAL, f"{task.replace('_', ' ')} always runs on the local model", None)


@pytest.mark.parametrize("task", ["completion", "code_action", "explain_code"])
def test_local_tasks_never_go_to_the_cloud_even_when_the_local_model_is_down(task):
    d = decide(task, cloud=ok(local_available=False))
    assert d.tier == LOCAL and d.fallback_reason is None
    assert "the local model is unavailable, so there is nothing to return" in d.reason


@pytest.mark.parametrize("task", ["explain_failure", "plan_refactor"])
def test_cloud_commands_use_the_cloud(task):
    d = decide(task, cloud=ok())
    assert d.tier == CLOUD and d.fallback_reason is None
    assert "cloud model" in d.reason


def test_ask_is_routed_per_request():
    assert decide("ask", prompt=LOCAL_ASK, cloud=ok()).tier == LOCAL
    d = decide("ask", prompt=CLOUD_ASK, cloud=ok())
    assert d.tier == CLOUD and d.reason == classify_ask(CLOUD_ASK).reason


@pytest.mark.parametrize("state, why", [
    (ok(enabled=False), "cloud disabled in settings (cloud.enabled = false)"),
    (ok(has_key=False), "no API key: set the environment variable ANTHROPIC_API_KEY"),
    (ok(has_key=False, key_env="MY_CLAUDE_KEY"), "no API key: set the environment variable MY_CLAUDE_KEY"),
    (ok(over_budget=True, budget_usd=5), "daily budget of $5.00 reached"),
    (ok(over_budget=True, budget_usd=0.5), "daily budget of $0.50 reached"),
    (ok(budget_usd=0), "cloud.dailyBudgetUsd is 0: the cloud is never called"),
    (ok(breaker_reason="rate-limited (retry after 30 s)"), "rate-limited (retry after 30 s)"),
])
@pytest.mark.parametrize("task, prompt", [("explain_failure", ""), ("plan_refactor", ""), ("ask", CLOUD_ASK)])
def test_cloud_routed_tasks_fall_back_to_local(state, why, task, prompt):
    d = decide(task, prompt=prompt, cloud=state)
    assert d.tier == LOCAL
    assert d.fallback_reason == why
    assert "falling back to the local model" in d.reason


def test_fallback_precedence():
    everything_wrong = ok(enabled=False, has_key=False, over_budget=True, breaker_reason="x")
    assert decide("plan_refactor", cloud=everything_wrong).fallback_reason.startswith("cloud disabled")
    no_key_and_broke = ok(has_key=False, over_budget=True, breaker_reason="x")
    assert decide("plan_refactor", cloud=no_key_and_broke).fallback_reason.startswith("no API key")
    assert decide("plan_refactor", cloud=ok(has_key=False, budget_usd=0)).fallback_reason.startswith(
        "cloud.dailyBudgetUsd is 0")
    assert decide("plan_refactor", cloud=ok(over_budget=True, breaker_reason="x")).fallback_reason.startswith(
        "daily budget")


def test_command_routed_local_uses_the_cloud_when_the_local_model_is_down():
    d = decide("ask", prompt=LOCAL_ASK, cloud=ok(local_available=False))
    assert d.tier == CLOUD and d.fallback_reason is None
    assert d.reason.startswith("document given code → local")
    assert "the local model is unavailable, so the cloud model answers" in d.reason


def test_command_routed_local_with_both_tiers_down():
    d = decide("ask", prompt=LOCAL_ASK, cloud=ok(local_available=False, enabled=False))
    assert d.tier == LOCAL
    assert d.fallback_reason == ("the local model is unavailable, and the cloud cannot be used: "
                                 "cloud disabled in settings (cloud.enabled = false)")


@pytest.mark.parametrize("task, prompt", [("explain_failure", ""), ("ask", CLOUD_ASK)])
def test_cloud_routed_with_both_tiers_down(task, prompt):
    d = decide(task, prompt=prompt, cloud=ok(local_available=False, has_key=False))
    assert d.tier == LOCAL
    assert d.fallback_reason == ("no API key: set the environment variable ANTHROPIC_API_KEY; "
                                 "and the local model is unavailable")


def test_cloud_routed_with_local_down_but_cloud_fine():
    d = decide("explain_failure", cloud=ok(local_available=False))
    assert d.tier == CLOUD and d.fallback_reason is None


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task type 'summon'"):
        decide("summon", cloud=ok())


def test_decision_and_route_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        decide("completion", cloud=ok()).tier = CLOUD  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        classify_ask("x").tier = CLOUD  # type: ignore[misc]


# --- circuit breaker ------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker(clock=clock)


def test_starts_closed(breaker):
    assert breaker.open_reason() is None and breaker.state == "closed" and breaker.allows_call()


def test_rate_limited_opens_for_retry_after(breaker, clock):
    breaker.record_failure("rate_limited", retry_after=45)
    assert breaker.open_reason() == "rate-limited (retry after 45 s)"
    assert breaker.state == "open" and not breaker.allows_call()
    clock.advance(20)
    assert breaker.open_reason() == "rate-limited (retry after 25 s)"
    clock.advance(24.5)
    assert breaker.open_reason() == "rate-limited (retry after 1 s)"
    clock.advance(0.5)
    assert breaker.open_reason() is None and breaker.state == "half-open"


def test_rate_limited_default_and_cap(breaker, clock):
    breaker.record_failure("rate_limited")
    assert breaker.open_reason() == "rate-limited (retry after 30 s)"
    breaker.record_success()
    breaker.record_failure("rate_limited", retry_after=10_000)
    assert breaker.open_reason() == "rate-limited (retry after 600 s)"
    clock.advance(600)
    assert breaker.open_reason() is None


def test_rate_limited_with_zero_or_negative_retry_after_does_not_block(breaker):
    breaker.record_failure("rate_limited", retry_after=0)
    assert breaker.open_reason() is None
    breaker.record_failure("rate_limited", retry_after=-5)
    assert breaker.open_reason() is None


def test_rate_limits_do_not_count_towards_consecutive_failures(breaker, clock):
    for _ in range(5):
        breaker.record_failure("rate_limited", retry_after=1)
        clock.advance(1)
    assert breaker.consecutive_failures == 0 and breaker.open_reason() is None


def test_three_consecutive_failures_open_it(breaker, clock):
    breaker.record_failure("timeout")
    breaker.record_failure("server_error")
    assert breaker.open_reason() is None
    breaker.record_failure("offline")
    assert breaker.open_reason() == "3 consecutive cloud failures, last: offline (retry after 15 s)"
    clock.advance(15)
    assert breaker.open_reason() is None and breaker.state == "half-open"


def test_backoff_doubles_on_each_failed_trial_up_to_300_s(breaker, clock):
    for _ in range(3):
        breaker.record_failure("server_error")
    waits = []
    for _ in range(7):
        reason = breaker.open_reason()
        waits.append(int(reason.split("retry after ")[1].split(" s")[0]))
        clock.advance(waits[-1])
        assert breaker.open_reason() is None  # half-open: a trial call goes through …
        breaker.record_failure("timeout")  # … and fails
    assert waits == [15, 30, 60, 120, 240, 300, 300]


def test_success_closes_and_resets(breaker, clock):
    for _ in range(3):
        breaker.record_failure("timeout")
    clock.advance(15)
    breaker.record_failure("timeout")  # failed trial: second trip
    assert breaker.open_reason().endswith("(retry after 30 s)")
    breaker.record_success()
    assert breaker.open_reason() is None and breaker.state == "closed" and breaker.consecutive_failures == 0
    breaker.record_failure("timeout")
    breaker.record_failure("timeout")
    assert breaker.open_reason() is None  # counting starts again
    breaker.record_failure("timeout")
    assert breaker.open_reason().endswith("(retry after 15 s)")  # and so does the backoff


def test_success_in_half_open_closes(breaker, clock):
    for _ in range(3):
        breaker.record_failure("offline")
    clock.advance(15)
    assert breaker.state == "half-open"
    breaker.record_success()
    assert breaker.state == "closed"


def test_failures_while_open_do_not_extend_the_backoff(breaker, clock):
    for _ in range(3):
        breaker.record_failure("timeout")
    for _ in range(5):  # calls that were in flight when it opened
        breaker.record_failure("timeout")
    assert breaker.open_reason().endswith("(retry after 15 s)")
    clock.advance(15)
    breaker.record_failure("timeout")  # the trial fails: next step of the backoff
    assert breaker.open_reason().endswith("(retry after 30 s)")


def test_a_rate_limit_does_not_shorten_a_longer_open_period(breaker, clock):
    breaker.record_failure("rate_limited", retry_after=300)
    breaker.record_failure("rate_limited", retry_after=10)
    assert breaker.open_reason() == "rate-limited (retry after 300 s)"
    for _ in range(3):
        breaker.record_failure("timeout")  # counted while open; no shorter reopening
    assert breaker.open_reason() == "rate-limited (retry after 300 s)"


@pytest.mark.parametrize("kind", ["auth", "bad_request", "cancelled"])
def test_errors_that_waiting_does_not_fix_are_ignored(breaker, kind):
    breaker.record_failure("timeout")
    breaker.record_failure("timeout")
    for _ in range(5):
        breaker.record_failure(kind)
    assert breaker.open_reason() is None and breaker.consecutive_failures == 2  # neither counted nor reset
    breaker.record_failure("timeout")
    assert breaker.open_reason() is not None


def test_unknown_failure_kind(breaker):
    with pytest.raises(ValueError, match="unknown failure kind 'boom'"):
        breaker.record_failure("boom")


def test_breaker_reason_feeds_decide(breaker):
    breaker.record_failure("rate_limited", retry_after=30)
    d = decide("plan_refactor", cloud=ok(breaker_reason=breaker.open_reason()))
    assert d.tier == LOCAL and d.fallback_reason == "rate-limited (retry after 30 s)"

"""Task-shape detection behind the tandem.ask router (tandem_lsp.ask_shapes): small cases."""

import time

import pytest
from tandem_lsp.ask_shapes import (
    CLOUD,
    FEATURES,
    LOCAL,
    SHAPES,
    Signal,
    detect,
    dominant_shape,
    given_labels,
)
from tandem_lsp.router import classify_ask


def names(prompt: str, **kw) -> set[str]:
    return {s.name for s in detect(prompt, **kw)}


# --- the table ------------------------------------------------------------------------------------

def test_every_cue_belongs_to_a_shape_on_its_own_side():
    for feat in FEATURES:
        if feat.shape is None:
            assert not feat.task, feat.name  # only hints may name no shape
            continue
        shape = SHAPES[feat.shape]
        assert shape.tier == (LOCAL if feat.weight < 0 else CLOUD), feat.name


def test_the_rule_shapes_are_all_there():
    local = {"decide", "classify", "tag", "extract", "summarise", "rewrite"}
    cloud = {"plan", "ambiguous", "creative", "synthesis", "debug"}
    assert all(SHAPES[k].tier == LOCAL for k in local)
    assert all(SHAPES[k].tier == CLOUD for k in cloud)
    assert SHAPES["decide"].label == "decide between given labels"
    assert SHAPES["synthesis"].label == "synthesis across sources"


# --- labels the request gives ---------------------------------------------------------------------

@pytest.mark.parametrize("prompt, labels", [
    ("Decide if this email is personal or business.", ["personal", "business"]),
    ("Is this ticket a bug report or a feature request?", ["a bug report", "a feature request"]),
    ("Label each of these commits as feature, fix or chore.", ["feature", "fix", "chore"]),
    ("Sort these into 'keep', 'drop' or 'ask'.", ["keep", "drop", "ask"]),
    ("Pick the log level for this line: debug, info or warning.", ["debug", "info", "warning"]),
    ("Answer yes or no: is this function recursive?", ["yes", "no"]),
    ("Is this change backwards compatible or not?", ["yes", "no"]),
    ("Is this a patch, minor or major bump under semver?", ["a patch", "minor", "major bump"]),
    ("tell me which of these flags are live and which are dead", ["live", "dead"]),
    ("Which module should this go in, utils.py or core.py?", ["utils.py", "core.py"]),
    ("sentiment of each review: pos/neg/neutral", ["pos", "neg", "neutral"]),
])
def test_given_labels_are_found(prompt, labels):
    assert given_labels(prompt)[0] == labels


@pytest.mark.parametrize("prompt", [
    "Should we use SQLite or Postgres for the desktop app?",  # a choice for us, not a label for the input
    "Which approach: polling or webhooks?",
    "Is our retry design right, or should we switch to idempotency keys?",
    "Figure out whether the cache or the DB is the source of truth.",  # an investigation
    "Vendor this dependency or pin it?",
    "Why does this fail?",
])
def test_choices_that_are_not_labels(prompt):
    assert given_labels(prompt)[0] == []


def test_given_labels_are_the_answer_space_not_the_task():
    # "bug" / "debug" inside the labels must not count as a failure report or a debugging request
    route = classify_ask("Is this ticket a bug report or a feature request?")
    assert route.tier == LOCAL and route.shape == "decide"
    assert route.reason.startswith("decide between given labels → local (given labels: a bug report / "
                                   "a feature request")
    assert "failure symptom" not in names("Is this message a bug or a question?")
    assert "debugging" not in names("Pick the log level for this line: debug, info or warning.")
    # and the open choice they would otherwise look like stays silent
    assert "decision/comparison" not in names("Decide if this email is personal or business.")
    assert "decision/comparison" in names("Should we use SQLite or Postgres?")


# --- the shapes the issue lists -------------------------------------------------------------------

@pytest.mark.parametrize("prompt, tier, shape, kw", [
    # local work that used to go to the cloud
    ("decide whether this note is personal or work", LOCAL, "decide", {}),
    ("tag this call transcript with its topic", LOCAL, "tag", {}),
    ("fix the wording in this error message", LOCAL, "rewrite", {}),
    ("what exceptions can this function raise?", LOCAL, "extract", {}),
    # open-ended work that used to stay local
    ("Write a case study from these interview transcripts.", CLOUD, "synthesis", {"files": 4}),
    ("Write a short story about our build system for people who don't code.", CLOUD, "creative", {}),
    ("Rewrite this FAQ so it covers every question users have asked so far.", CLOUD, "synthesis", {}),
    ("Plan how to split this 3000-line module without breaking the code that imports it.", CLOUD, "plan", {}),
])
def test_the_issue_shapes(prompt, tier, shape, kw):
    route = classify_ask(prompt, **kw)
    assert (route.tier, route.shape) == (tier, shape), route
    assert route.reason.startswith(f"{SHAPES[shape].label} → {tier} (")


@pytest.mark.parametrize("prompt, tier, shape", [
    # "write" says nothing by itself
    ("Write a docstring for this function.", LOCAL, "document"),
    ("Write a regex for UK postcodes.", LOCAL, "generate"),
    ("Write a poem about flaky tests.", CLOUD, "creative"),
    ("Write a launch announcement for non-technical readers.", CLOUD, "creative"),
    # nor does "error"
    ("List the errors this parser can throw.", LOCAL, "extract"),
    ("Reword this error message so it's friendlier.", LOCAL, "rewrite"),
    ("The error rate doubled since the deploy; find out why.", CLOUD, "debug"),
    # several sources: per-item work is local, a new whole from them is not
    ("Summarise each of these five bug reports in one sentence.", LOCAL, "summarise"),
    ("Go through these bug reports and tell me the underlying themes.", CLOUD, "synthesis"),
    # vague asks
    ("Sort out this config mess.", CLOUD, "ambiguous"),
    ("Sort these imports alphabetically.", LOCAL, "rewrite"),
    ("make this more elegant", CLOUD, "ambiguous"),
    # conversation threads are not threads of execution
    ("What's the tone of this chat thread?", LOCAL, "classify"),
    ("Why does the worker thread stop after a reconnect?", CLOUD, "debug"),
])
def test_shape_not_surface_words(prompt, tier, shape):
    route = classify_ask(prompt)
    assert (route.tier, route.shape) == (tier, shape), route


def test_dominant_shape():
    signals = [Signal("a", -2.0, "extract"), Signal("b", -1.0, "summarise"), Signal("c", -1.5, "summarise"),
               Signal("d", 3.0, "debug"), Signal("e", -1.0, None)]
    assert dominant_shape(signals, -1).key == "summarise"  # 2.5 beats 2.0
    assert dominant_shape(signals, +1).key == "debug"
    assert dominant_shape([Signal("x", 1.0, None)], +1) is None


def test_a_request_with_no_shape_says_so():
    route = classify_ask("hello")
    assert route.tier == CLOUD and route.shape == ""
    assert route.reason.startswith("no schema-like task shape → cloud (no schema-like task named")


# --- local and fast -------------------------------------------------------------------------------

def test_routing_is_fast_even_for_long_prompts():
    prompts = ["Decide if this email is personal or business.", "Why does this hang under load?",
               "Write a case study from these transcripts."] * 100
    t0 = time.perf_counter()
    for p in prompts:
        classify_ask(p, files=3)
    assert (time.perf_counter() - t0) / len(prompts) < 0.01  # well under a millisecond on a free core
    long = "Rename this. " + "and the other thing, then that one " * 5000
    t0 = time.perf_counter()
    route = classify_ask(long)
    assert time.perf_counter() - t0 < 1.0
    assert "long request" in route.reason or route.tier == LOCAL

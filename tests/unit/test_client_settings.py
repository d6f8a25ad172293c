"""Settings from several channels (issue 11): initializationOptions below, the latest configuration that
says something on top, merged key by key; a null or empty configuration changes nothing."""

from __future__ import annotations

import pytest

from tandem_lsp.config import DEFAULTS, ClientSettings, parse_settings, says_something

INIT = {"local": {"backend": "openai", "endpoint": "http://127.0.0.1:4321/v1", "timeoutMs": 900},
        "completion": {"debounceMs": 0}}


def test_one_layer_is_parse_settings_as_before():
    assert parse_settings(INIT) == parse_settings(INIT, None) == parse_settings(INIT, {})
    assert parse_settings(None, INIT) == parse_settings(INIT)


def test_a_later_layer_wins_key_by_key_and_leaves_the_rest():
    settings, problems = parse_settings(INIT, {"local": {"timeoutMs": 1500}, "completion": {"multiline": "never"}})
    assert problems == []
    assert settings.local.endpoint == "http://127.0.0.1:4321/v1" and settings.local.backend == "openai"
    assert settings.local.timeout_ms == 1500 and settings.completion.multiline == "never"
    assert settings.completion.debounce_ms == 0


@pytest.mark.parametrize("over", [
    {"local": {"endpoint": None}},  # null: not set, what is below shows through
    {"local": None},
    {"tandem": None},
    {"tandem": {}},
    None,
    {},
])
def test_null_and_empty_leave_what_is_below(over):
    assert parse_settings(INIT, over) == parse_settings(INIT)


@pytest.mark.parametrize("over", [
    {"tandem": {"local": {"endpoint": "http://127.0.0.1:9999/v1"}}},  # nested under tandem
    {"local": {"endpoint": "http://127.0.0.1:9999/v1"}},  # Helix: the config table itself
    {"tandem.local.endpoint": "http://127.0.0.1:9999/v1"},  # flat dotted keys
    {"local.endpoint": "http://127.0.0.1:9999/v1"},
])
def test_every_shape_overrides(over):
    settings, problems = parse_settings(INIT, over)
    assert problems == []
    assert settings.local.endpoint == "http://127.0.0.1:9999/v1" and settings.local.timeout_ms == 900


def test_problems_of_every_layer_are_reported_and_an_invalid_value_keeps_the_default():
    settings, problems = parse_settings({"local": {"timeoutMs": "soon"}}, {"completion": {"multiline": "often"}})
    assert settings.local.timeout_ms == DEFAULTS.local.timeout_ms
    assert settings.completion.multiline == DEFAULTS.completion.multiline
    assert len(problems) == 2 and "local.timeoutMs" in problems[0] and "completion.multiline" in problems[1]


def test_a_later_invalid_value_does_not_fall_back_to_the_layer_below():
    # the later layer said something (wrong): its key is reported and the default used, as in one layer
    settings, problems = parse_settings(INIT, {"local": {"timeoutMs": -3}})
    assert settings.local.timeout_ms == DEFAULTS.local.timeout_ms and "local.timeoutMs" in problems[0]


def test_a_non_object_layer_is_ignored_with_a_problem():
    settings, problems = parse_settings(INIT, "yes")
    assert settings == parse_settings(INIT)[0]
    assert problems == ["the settings must be an object, not str (ignored)"]
    assert parse_settings("x", None)[1] == ["the settings must be an object, not str; using the defaults"]


def test_a_secret_in_any_layer_is_reported_once_without_its_value():
    _, problems = parse_settings({"cloud": {"apiKey": "sk-ant-1"}}, {"cloud": {"apiKey": "sk-ant-2"}})
    assert len(problems) == 1 and "cloud.apiKey" in problems[0] and "sk-ant" not in problems[0]


@pytest.mark.parametrize("raw, says", [
    (None, False), ({}, False), ({"tandem": None}, False), ({"tandem": {}}, False),
    ({"tandem": {"local": {}}}, True), ({"local": {}}, True), ({"other": 1}, True), ("text", True), ([], True),
])
def test_says_something(raw, says):
    assert says_something(raw) is says


def test_client_settings_keep_the_initialization_options_through_null_configurations():
    client = ClientSettings()
    client.initialize(INIT)
    for nothing in (None, {}, {"tandem": None}, [None][0]):
        assert client.update(nothing) is False
    assert parse_settings(*client.layers) == parse_settings(INIT)


def test_client_settings_the_latest_configuration_replaces_the_one_before():
    client = ClientSettings()
    client.initialize(INIT)
    assert client.update({"tandem": {"local": {"timeoutMs": 1500}, "completion": {"multiline": "never"}}})
    assert client.update({"local": {"timeoutMs": 2000}})  # Helix style: un-nested
    settings, problems = parse_settings(*client.layers)
    assert problems == [] and settings.local.timeout_ms == 2000
    assert settings.completion.multiline == DEFAULTS.completion.multiline  # the earlier configuration is gone
    assert settings.local.endpoint == INIT["local"]["endpoint"]  # the initializationOptions stay
    client.initialize(None)  # a new session
    assert client.layers == (None, None)

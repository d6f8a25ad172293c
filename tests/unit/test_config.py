"""Settings tree (docs/settings.md): defaults, validation, accepted shapes, reporting."""

import dataclasses
import json
import random

import pytest

from tandem_lsp.config import (
    DEFAULTS,
    SETTINGS_SCHEMA,
    CloudSettings,
    CompletionSettings,
    LocalSettings,
    NextEditSettings,
    PrivacySettings,
    Settings,
    SettingsReporter,
    defaults_as_dict,
    parse_settings,
)

# The contract's table, written out by hand (independent of the code). ``None`` = "not set".
CONTRACT_DEFAULTS = {
    "local.backend": "auto",
    "local.endpoint": None,
    "local.model": None,
    "local.modelPath": None,
    "local.fimTemplate": "auto",
    "local.timeoutMs": 2500,
    "local.maxTokens": 128,
    "cloud.enabled": True,
    "cloud.provider": "anthropic",
    "cloud.model": "claude-sonnet-4-5",
    "cloud.baseUrl": None,
    "cloud.apiKeyEnv": "ANTHROPIC_API_KEY",
    "cloud.dailyBudgetUsd": 2.0,
    "cloud.timeoutMs": 120000,
    "completion.debounceMs": "auto",
    "completion.multiline": "auto",
    "completion.maxPrefixChars": 8000,
    "completion.maxSuffixChars": 2000,
    "nextEdit.enabled": None,
    "nextEdit.model": None,
    "nextEdit.template": "auto",
    "nextEdit.debounceMs": None,
    "privacy.redactSecrets": True,
    "privacy.neverSendToCloud": [".env", ".env.*", "**/*.pem", "**/*.key", "**/id_rsa*", "**/secrets/**"],
}

ATTRS = {
    "local.backend": ("local", "backend"),
    "local.endpoint": ("local", "endpoint"),
    "local.model": ("local", "model"),
    "local.modelPath": ("local", "model_path"),
    "local.fimTemplate": ("local", "fim_template"),
    "local.timeoutMs": ("local", "timeout_ms"),
    "local.maxTokens": ("local", "max_tokens"),
    "cloud.enabled": ("cloud", "enabled"),
    "cloud.provider": ("cloud", "provider"),
    "cloud.model": ("cloud", "model"),
    "cloud.baseUrl": ("cloud", "base_url"),
    "cloud.apiKeyEnv": ("cloud", "api_key_env"),
    "cloud.dailyBudgetUsd": ("cloud", "daily_budget_usd"),
    "cloud.timeoutMs": ("cloud", "timeout_ms"),
    "completion.debounceMs": ("completion", "debounce_ms"),
    "completion.multiline": ("completion", "multiline"),
    "completion.maxPrefixChars": ("completion", "max_prefix_chars"),
    "completion.maxSuffixChars": ("completion", "max_suffix_chars"),
    "nextEdit.enabled": ("next_edit", "enabled"),
    "nextEdit.model": ("next_edit", "model"),
    "nextEdit.template": ("next_edit", "template"),
    "nextEdit.debounceMs": ("next_edit", "debounce_ms"),
    "privacy.redactSecrets": ("privacy", "redact_secrets"),
    "privacy.neverSendToCloud": ("privacy", "never_send_to_cloud"),
}


def get(settings: Settings, key: str):
    section, attr = ATTRS[key]
    value = getattr(getattr(settings, section), attr)
    return list(value) if isinstance(value, tuple) else value


def nested(key: str, value) -> dict:
    section, name = key.split(".")
    return {section: {name: value}}


# --- defaults and schema -------------------------------------------------------------------------

def test_defaults_match_the_contract():
    assert {key: get(DEFAULTS, key) for key in ATTRS} == CONTRACT_DEFAULTS
    assert DEFAULTS == Settings() == Settings(LocalSettings(), CloudSettings(), CompletionSettings(),
                                              NextEditSettings(), PrivacySettings())
    assert isinstance(DEFAULTS.privacy.never_send_to_cloud, tuple)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.local.backend = "ollama"  # type: ignore[misc]


def test_schema_lists_every_key_once_with_its_default():
    assert [spec.key for spec in SETTINGS_SCHEMA] == list(CONTRACT_DEFAULTS)
    for spec in SETTINGS_SCHEMA:
        assert (spec.section_attr, spec.attr) == ATTRS[spec.key]
        assert spec.default == CONTRACT_DEFAULTS[spec.key]
        assert spec.description and spec.type
    # ... and every dataclass field is in the schema (the table is complete).
    schema_attrs = {(s.section_attr, s.attr) for s in SETTINGS_SCHEMA}
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(getattr(DEFAULTS, section.name)):
            assert (section.name, f.name) in schema_attrs


def test_schema_enums():
    enums = {spec.key: spec.enum for spec in SETTINGS_SCHEMA if spec.enum}
    assert enums == {
        "local.backend": ("auto", "openai", "ollama", "llamacpp", "embedded"),
        "local.fimTemplate": ("auto", "qwen", "starcoder", "codellama", "deepseek", "codestral", "chat"),
        "cloud.provider": ("anthropic",),
        "completion.multiline": ("auto", "always", "never"),
        "nextEdit.template": ("auto", "sweep", "zeta", "instruct"),
    }


def test_defaults_as_dict_is_the_nested_json_tree():
    tree = defaults_as_dict()
    expected: dict = {}
    for key, value in CONTRACT_DEFAULTS.items():
        section, name = key.split(".")
        expected.setdefault(section, {})[name] = value
    assert tree == expected
    assert json.loads(json.dumps(tree)) == tree
    assert parse_settings(tree) == (DEFAULTS, [])


@pytest.mark.parametrize("raw", [None, {}, {"tandem": {}}, {"local": {}}, {"local": None}])
def test_empty_input_gives_defaults_without_problems(raw):
    assert parse_settings(raw) == (DEFAULTS, [])


@pytest.mark.parametrize("raw", [[], "x", 3, True, [{"local": {}}]])
def test_non_object_gives_defaults_and_one_problem(raw):
    settings, problems = parse_settings(raw)
    assert settings == DEFAULTS
    assert len(problems) == 1 and "object" in problems[0]


# --- valid values --------------------------------------------------------------------------------

VALID = [
    ("local.backend", "openai", "openai"),
    ("local.backend", "ollama", "ollama"),
    ("local.backend", "llamacpp", "llamacpp"),
    ("local.backend", "auto", "auto"),
    ("local.backend", "embedded", "embedded"),
    ("local.endpoint", "http://127.0.0.1:1234/v1", "http://127.0.0.1:1234/v1"),
    ("local.endpoint", "https://models.example.com/", "https://models.example.com"),
    ("local.endpoint", "", None),
    ("local.model", "qwen2.5-coder:1.5b-base", "qwen2.5-coder:1.5b-base"),
    ("local.model", "", None),
    ("local.modelPath", "/models/qwen2.5-coder-1.5b-q8_0.gguf", "/models/qwen2.5-coder-1.5b-q8_0.gguf"),
    ("local.modelPath", "", None),
    *[("local.fimTemplate", t, t) for t in ("auto", "qwen", "starcoder", "codellama", "deepseek", "codestral",
                                            "chat")],
    ("local.timeoutMs", 800, 800),
    ("local.timeoutMs", 3000.0, 3000),
    ("local.maxTokens", 64, 64),
    ("cloud.enabled", False, False),
    ("cloud.provider", "anthropic", "anthropic"),
    ("cloud.model", "claude-opus-4-1", "claude-opus-4-1"),
    ("cloud.baseUrl", "http://localhost:9000", "http://localhost:9000"),
    ("cloud.baseUrl", "", None),
    ("cloud.apiKeyEnv", "MY_KEY_2", "MY_KEY_2"),
    ("cloud.dailyBudgetUsd", 0, 0.0),
    ("cloud.dailyBudgetUsd", 5, 5.0),
    ("cloud.dailyBudgetUsd", 0.25, 0.25),
    ("cloud.timeoutMs", 30000, 30000),
    ("completion.debounceMs", 0, 0),
    ("completion.debounceMs", 150, 150),
    ("completion.debounceMs", 2000, 2000),
    ("completion.debounceMs", 75.0, 75),
    ("completion.debounceMs", "auto", "auto"),
    ("completion.multiline", "always", "always"),
    ("completion.multiline", "never", "never"),
    ("completion.maxPrefixChars", 4000, 4000),
    ("completion.maxSuffixChars", 0, 0),
    ("completion.maxSuffixChars", 500, 500),
    ("nextEdit.enabled", False, False),
    ("nextEdit.enabled", True, True),
    ("nextEdit.model", "sweep-next-edit-1.5b", "sweep-next-edit-1.5b"),
    ("nextEdit.model", "", None),
    *[("nextEdit.template", t, t) for t in ("auto", "sweep", "zeta", "instruct")],
    ("nextEdit.debounceMs", 0, 0),
    ("nextEdit.debounceMs", 350, 350),
    ("privacy.redactSecrets", False, False),
    ("privacy.neverSendToCloud", [], []),
    ("privacy.neverSendToCloud", ["*.secret", "vault/**"], ["*.secret", "vault/**"]),
]


@pytest.mark.parametrize("key,value,expected", VALID)
def test_valid_value_is_accepted(key, value, expected):
    settings, problems = parse_settings(nested(key, value))
    assert problems == []
    assert get(settings, key) == expected
    assert type(get(settings, key)) is type(expected)
    # Every other key keeps its default.
    assert all(get(settings, k) == CONTRACT_DEFAULTS[k] for k in ATTRS if k != key)


def test_every_key_has_a_valid_non_default_case():
    assert {key for key, _, expected in VALID if expected != CONTRACT_DEFAULTS[key]} >= set(ATTRS) - {
        "cloud.provider"  # a single choice
    }


@pytest.mark.parametrize("key", list(ATTRS))
def test_null_means_not_set(key):
    assert parse_settings(nested(key, None)) == (DEFAULTS, [])


# --- invalid values ------------------------------------------------------------------------------

INVALID = [
    ("local.backend", "lmstudio"),
    ("local.backend", "Ollama"),
    ("local.backend", 1),
    ("local.endpoint", "localhost:1234"),
    ("local.endpoint", "ftp://example.com"),
    ("local.endpoint", "http://"),
    ("local.endpoint", "http://host:notaport"),
    ("local.endpoint", "http://a b.com"),
    ("local.endpoint", 1234),
    ("local.model", 7),
    ("local.model", ["a"]),
    ("local.modelPath", 3),
    ("local.modelPath", ["/a.gguf"]),
    ("local.fimTemplate", "llama"),
    ("local.fimTemplate", {}),
    ("local.timeoutMs", 0),
    ("local.timeoutMs", -5),
    ("local.timeoutMs", 10_000_000),
    ("local.timeoutMs", "2500"),
    ("local.timeoutMs", 2500.5),
    ("local.timeoutMs", True),
    ("local.maxTokens", 0),
    ("local.maxTokens", -1),
    ("local.maxTokens", 1e9),
    ("cloud.enabled", 1),
    ("cloud.enabled", "true"),
    ("cloud.enabled", "false"),
    ("cloud.provider", "openai"),
    ("cloud.model", ""),
    ("cloud.model", "   "),
    ("cloud.model", 4.5),
    ("cloud.baseUrl", "api.anthropic.com"),
    ("cloud.baseUrl", False),
    ("cloud.apiKeyEnv", "MY-KEY"),
    ("cloud.apiKeyEnv", "1KEY"),
    ("cloud.apiKeyEnv", ""),
    ("cloud.apiKeyEnv", 12),
    ("cloud.dailyBudgetUsd", -1),
    ("cloud.dailyBudgetUsd", "2"),
    ("cloud.dailyBudgetUsd", True),
    ("cloud.dailyBudgetUsd", float("nan")),
    ("cloud.dailyBudgetUsd", float("inf")),
    ("cloud.dailyBudgetUsd", 10**400),
    ("cloud.timeoutMs", 0),
    ("cloud.timeoutMs", 10),
    ("cloud.timeoutMs", 10**9),
    ("nextEdit.enabled", "yes"),
    ("nextEdit.enabled", 1),
    ("nextEdit.model", 3),
    ("nextEdit.template", "chat"),
    ("nextEdit.debounceMs", -1),
    ("nextEdit.debounceMs", "auto"),
    ("nextEdit.debounceMs", 5000),
    ("completion.debounceMs", -1),
    ("completion.debounceMs", "fast"),
    ("completion.debounceMs", "150"),
    ("completion.debounceMs", 1.5),
    ("completion.debounceMs", False),
    ("completion.multiline", "sometimes"),
    ("completion.multiline", True),
    ("completion.maxPrefixChars", 0),
    ("completion.maxPrefixChars", -100),
    ("completion.maxPrefixChars", "8000"),
    ("completion.maxSuffixChars", -1),
    ("privacy.redactSecrets", 0),
    ("privacy.redactSecrets", "yes"),
    ("privacy.neverSendToCloud", ".env"),
    ("privacy.neverSendToCloud", [".env", 3]),
    ("privacy.neverSendToCloud", [""]),
    ("privacy.neverSendToCloud", {"a": 1}),
]


@pytest.mark.parametrize("key,value", INVALID)
def test_invalid_value_is_replaced_by_default_with_one_problem(key, value):
    settings, problems = parse_settings(nested(key, value))
    assert settings == DEFAULTS
    assert len(problems) == 1
    problem = problems[0]
    assert problem.startswith(f"{key}: ")
    assert f"using the default {json.dumps(CONTRACT_DEFAULTS[key])}" in problem
    if key != "cloud.apiKeyEnv":
        assert json.dumps(value)[:40] in problem


def test_every_key_has_invalid_cases():
    assert {key for key, _ in INVALID} == set(ATTRS)


def test_debounce_above_maximum_is_clamped():
    settings, problems = parse_settings({"completion": {"debounceMs": 5000}})
    assert settings.completion.debounce_ms == 2000
    assert problems == ["completion.debounceMs: 5000 is above the maximum 2000; using 2000"]


def test_several_problems_at_once_keep_the_valid_values():
    settings, problems = parse_settings(
        {"local": {"backend": "ollama", "timeoutMs": -1}, "cloud": {"enabled": "no", "model": "m"}}
    )
    assert settings.local.backend == "ollama" and settings.cloud.model == "m"
    assert settings.local.timeout_ms == 2500 and settings.cloud.enabled is True
    assert len(problems) == 2


def test_long_values_are_truncated():
    settings, problems = parse_settings({"local": {"backend": "x" * 500}})
    assert settings == DEFAULTS
    assert "x" * 500 not in problems[0]
    assert len(problems[0]) < 200
    assert "…" in problems[0]


def test_api_key_env_value_is_never_echoed():
    key = "sk-ant-api03-SECRETSECRETSECRET"
    settings, problems = parse_settings({"cloud": {"apiKeyEnv": key}})
    assert settings.cloud.api_key_env == "ANTHROPIC_API_KEY"
    assert len(problems) == 1 and "SECRET" not in problems[0] and "cloud.apiKeyEnv" in problems[0]


@pytest.mark.parametrize("raw", [
    {"cloud": {"apiKey": "sk-ant-SECRET"}},
    {"cloud.apiKey": "sk-ant-SECRET"},
    {"tandem": {"cloud": {"api_key": "sk-ant-SECRET"}}},
    {"anthropicApiKey": "sk-ant-SECRET"},
    {"cloud": {"token": {"nested": "SECRET"}}},
])
def test_api_key_setting_is_ignored_and_not_echoed(raw):
    settings, problems = parse_settings(raw)
    assert settings == DEFAULTS
    assert len(problems) == 1
    assert "SECRET" not in problems[0]
    assert "ignored" in problems[0] and "cloud.apiKeyEnv" in problems[0] and "ANTHROPIC_API_KEY" in problems[0]


def test_api_key_message_names_the_configured_env_var():
    _, problems = parse_settings({"cloud": {"apiKey": "k", "apiKeyEnv": "TANDEM_KEY"}})
    assert problems == [
        "cloud.apiKey is ignored (value not shown): a key or secret is never a setting; put the API key in "
        "the environment variable named by cloud.apiKeyEnv (currently TANDEM_KEY)"
    ]


def test_url_credentials_are_masked_in_problems():
    _, problems = parse_settings({"cloud": {"baseUrl": "htps://user:hunter2@proxy"}})
    assert len(problems) == 1 and "hunter2" not in problems[0]


# --- shapes --------------------------------------------------------------------------------------

SAMPLE = {"local": {"backend": "ollama", "timeoutMs": 900}, "completion": {"debounceMs": 40}}


def check_sample(settings: Settings, problems: list[str]):
    assert problems == []
    assert (settings.local.backend, settings.local.timeout_ms, settings.completion.debounce_ms) == ("ollama", 900, 40)
    assert settings.cloud == DEFAULTS.cloud


@pytest.mark.parametrize("raw", [
    SAMPLE,
    {"tandem": SAMPLE},
    {"local.backend": "ollama", "local.timeoutMs": 900, "completion.debounceMs": 40},
    {"tandem.local.backend": "ollama", "tandem.local.timeoutMs": 900, "tandem.completion.debounceMs": 40},
    {"tandem": {"local.backend": "ollama", "local.timeoutMs": 900}, "completion": {"debounceMs": 40}},
    {"tandem.local": {"backend": "ollama", "timeoutMs": 900}, "completion.debounceMs": 40},
])
def test_nested_wrapped_and_flat_forms(raw):
    check_sample(*parse_settings(raw))


def test_unknown_keys_are_reported_and_ignored():
    settings, problems = parse_settings(
        {"local": {"backend": "ollama", "colour": "red"}, "telemetry": True, "cloud.modle": "x", "local.maxToken": 3}
    )
    assert settings.local.backend == "ollama"
    assert sorted(problems) == sorted([
        "unknown setting local.colour (ignored)",
        "unknown setting telemetry (ignored)",
        "unknown setting cloud.modle (ignored)",
        "unknown setting local.maxToken (ignored)",
    ])


def test_a_section_that_is_not_an_object():
    settings, problems = parse_settings({"local": "ollama", "cloud": {"enabled": False}})
    assert settings.local == DEFAULTS.local and settings.cloud.enabled is False
    assert problems == ["local must be an object, not str (ignored)"]


def test_a_leaf_given_an_object_is_a_type_problem():
    _, problems = parse_settings({"local": {"backend": {"kind": "ollama"}}})
    assert len(problems) == 1 and problems[0].startswith("local.backend: ")


def test_wrapper_is_unwrapped_once_only():
    _, problems = parse_settings({"tandem": {"tandem": {"local": {}}}})
    assert problems == ["unknown setting tandem (ignored)"]


# --- reporter ------------------------------------------------------------------------------------

def test_reporter_reports_each_problem_once():
    reporter = SettingsReporter()
    _, first = parse_settings({"local": {"backend": "nope"}, "x": 1})
    assert reporter.new_problems(first) == first and len(first) == 2
    assert reporter.new_problems(first) == []
    _, again = parse_settings({"local": {"backend": "nope", "timeoutMs": 0}})
    assert reporter.new_problems(again) == [p for p in again if p.startswith("local.timeoutMs")]
    assert reporter.new_problems(["a", "a", "b"]) == ["a", "b"]
    assert reporter.new_problems([]) == []


# --- robustness ----------------------------------------------------------------------------------

def _junk(rng: random.Random, depth: int = 0):
    kinds = ["none", "bool", "int", "float", "str", "keyword", "url"]
    if depth < 3:
        kinds += ["list", "dict", "dict"]
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 2000, 2001, 10**12, -(10**400), rng.randint(-5000, 200_000)])
    if kind == "float":
        return rng.choice([0.0, -0.5, 1.5, 2500.0, 1e308, float("nan"), float("inf"), -float("inf"),
                           rng.uniform(-1e6, 1e6)])
    if kind == "str":
        return "".join(rng.choice("ab:/. \n\x00é😀{}[]\"'\\") for _ in range(rng.randint(0, 80)))
    if kind == "keyword":
        return rng.choice(["auto", "ollama", "chat", "never", "", "true", "null", "ANTHROPIC_API_KEY", "tandem"])
    if kind == "url":
        return rng.choice(["http://h", "https://h:99999", "http://[::1]:8080/v1", "http://:80", "https://u:p@h/"])
    if kind == "list":
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [*ATTRS, *{k.split(".")[0] for k in ATTRS}, *{k.split(".")[1] for k in ATTRS}, "tandem",
            "cloud.apiKey", "", ".", "local.", "tandem.local", 7]
    return {rng.choice(keys): _junk(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def _as_tree(settings: Settings) -> dict:
    tree: dict = {}
    for key in ATTRS:
        section, name = key.split(".")
        tree.setdefault(section, {})[name] = get(settings, key)
    return tree


def test_never_raises_on_junk_and_always_yields_valid_settings():
    rng = random.Random(20240611)
    for _ in range(600):
        raw = _junk(rng)
        settings, problems = parse_settings(raw)
        assert isinstance(settings, Settings)
        assert all(isinstance(p, str) and p for p in problems)
        # Whatever came in, what comes out is itself a valid settings tree.
        assert parse_settings(_as_tree(settings)) == (settings, [])


def test_never_raises_on_pathological_values():
    loop: list = []
    loop.append(loop)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for value in (loop, deep, object(), {1: 2}, {None: 1}, b"bytes", {"local": {"backend": loop}}):
        settings, problems = parse_settings({"local": {"model": value}} if not isinstance(value, dict) else value)
        assert isinstance(settings, Settings) and isinstance(problems, list)

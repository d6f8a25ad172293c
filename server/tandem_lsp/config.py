"""The ``tandem`` settings tree (docs/settings.md): typed defaults, schema, parsing.

* The frozen dataclasses below hold the typed settings; their field defaults are *the* defaults.
* ``SETTINGS_SCHEMA`` is the one table of public keys: dotted camelCase name, JSON type, enum,
  bounds, description and validator. Attribute names and defaults are derived from the
  dataclasses (``local.timeoutMs`` -> ``Settings().local.timeout_ms``), so nothing is listed twice.
* ``parse_settings(raw)`` turns whatever the editor sent into ``(Settings, problems)``; it never
  raises. Each invalid value is replaced by its default and yields one human-readable problem.
* ``SettingsReporter`` lets the server show each distinct problem only once.
* ``ClientSettings`` keeps what the client said, by channel: ``initializationOptions`` below, the latest
  configuration that said something (``didChangeConfiguration.settings``, or the ``workspace/configuration``
  answer) on top, merged key by key (``parse_settings(initial, latest)``). A null or empty configuration
  changes nothing: Helix and eglot answer ``workspace/configuration`` with ``[null]``.

Accepted shapes: the nested ``tandem`` section, the same wrapped as ``{"tandem": {...}}``, and flat
dotted keys (``{"local.backend": "ollama"}``, optionally prefixed ``tandem.``), in any mix.
``null`` (or ``""`` for the optional string/URL keys) means "not set": the default, no problem.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ClientSettings",
    "CloudSettings",
    "CompletionSettings",
    "DEFAULTS",
    "LocalSettings",
    "NextEditSettings",
    "PrivacySettings",
    "SETTINGS_SCHEMA",
    "Settings",
    "SettingSpec",
    "SettingsReporter",
    "defaults_as_dict",
    "parse_settings",
    "says_something",
]


# --- typed settings (field defaults are the contract's defaults) -----------------------------------

@dataclass(frozen=True)
class LocalSettings:
    backend: str = "auto"
    endpoint: str | None = None  # None: the backend's usual local address
    model: str | None = None  # None: the first model the server lists
    model_path: str | None = None  # None: the default model file (embedded backend)
    fim_template: str = "auto"
    timeout_ms: int = 2500
    max_tokens: int = 128


@dataclass(frozen=True)
class CloudSettings:
    enabled: bool = True
    provider: str = "anthropic"
    model: str = "claude-sonnet-4-5"
    base_url: str | None = None  # None: the SDK's default
    api_key_env: str = "ANTHROPIC_API_KEY"
    daily_budget_usd: float = 2.0
    timeout_ms: int = 120_000


@dataclass(frozen=True)
class CompletionSettings:
    debounce_ms: int | str = "auto"  # a delay in ms, or "auto"
    multiline: str = "auto"
    max_prefix_chars: int = 8000
    max_suffix_chars: int = 2000


@dataclass(frozen=True)
class NextEditSettings:
    enabled: bool | None = None  # None: on when a next-edit model is present
    model: str | None = None  # None: the completion model when it is a next-edit model
    template: str = "auto"
    debounce_ms: int | None = None  # None: chosen by the server


@dataclass(frozen=True)
class PrivacySettings:
    redact_secrets: bool = True
    never_send_to_cloud: tuple[str, ...] = (
        ".env", ".env.*", "**/*.pem", "**/*.key", "**/id_rsa*", "**/secrets/**",
    )


@dataclass(frozen=True)
class Settings:
    local: LocalSettings = field(default_factory=LocalSettings)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    next_edit: NextEditSettings = field(default_factory=NextEditSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)


DEFAULTS = Settings()
SECTION_KEYS = {f.name: re.sub(r"_([a-z])", lambda m: m.group(1).upper(), f.name) for f in fields(Settings)}
SECTIONS = tuple(SECTION_KEYS.values())  # as the contract names them: "nextEdit" for Settings().next_edit
SECTION_ATTRS = {key: attr for attr, key in SECTION_KEYS.items()}


# --- validators: return the accepted value or raise _Invalid -------------------------------------

class _Invalid(Exception):
    """``reason`` completes "<key>: <value> ..."; ``use`` replaces the default (e.g. a clamp)."""

    def __init__(self, reason: str, use: Any = None):
        super().__init__(reason)
        self.reason, self.use = reason, use


Check = Callable[[Any], Any]


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise _Invalid("is not true or false")


def _integer(v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _Invalid("is not a whole number")


def _int(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        n = _integer(v)
        if not lo <= n <= hi:
            raise _Invalid(f"is out of range (must be {lo}..{hi})")
        return n
    return check


def _number(lo: float) -> Check:
    def check(v: Any) -> float:
        try:
            n = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
        except OverflowError:  # an int beyond float range
            n = math.nan
        if not math.isfinite(n):
            raise _Invalid("is not a (finite) number")
        if n < lo:
            raise _Invalid(f"is below the minimum {lo:g}")
        return n
    return check


def _enum(*choices: str) -> Check:
    def check(v: Any) -> str:
        if isinstance(v, str) and v in choices:
            return v
        raise _Invalid(f"is not one of {', '.join(json.dumps(c) for c in choices)}")
    check.choices = choices  # type: ignore[attr-defined]
    return check


def _optional_bool(v: Any) -> bool | None:
    return None if v is None else _bool(v)


def _string(v: Any) -> str:
    if isinstance(v, str) and v.strip():
        return v.strip()
    raise _Invalid("is not a non-empty string")


def _optional(check: Check) -> Check:
    """``null`` is already "not set"; an empty string means the same for optional strings."""
    return lambda v: None if isinstance(v, str) and not v.strip() else check(v)


def _url(v: Any) -> str:
    text = v.strip() if isinstance(v, str) else ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not re.search(r"\s", text)
    except ValueError:  # also a malformed IPv6 host
        ok = False
    if not ok:
        raise _Invalid("is not an http:// or https:// URL with a host")
    return text.rstrip("/")


def _env_name(v: Any) -> str:
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        return v
    raise _Invalid("is not an environment variable name (it names the variable that holds the key, "
                   "not the key itself)")


def _globs(v: Any) -> tuple[str, ...]:
    if isinstance(v, (list, tuple)) and all(isinstance(g, str) and g for g in v):
        return tuple(v)
    raise _Invalid("is not a list of non-empty glob strings")


DEBOUNCE_MAX_MS = 2000


def _debounce(v: Any) -> int | str:
    if v == "auto":
        return "auto"
    try:
        n = _integer(v)
    except _Invalid:
        raise _Invalid('is neither "auto" nor a whole number of milliseconds') from None
    if n < 0:
        raise _Invalid("is negative")
    if n > DEBOUNCE_MAX_MS:
        raise _Invalid(f"is above the maximum {DEBOUNCE_MAX_MS}", use=DEBOUNCE_MAX_MS)
    return n


# --- the schema: every public key, once ----------------------------------------------------------

@dataclass(frozen=True)
class SettingSpec:
    key: str  # dotted contract name, e.g. "local.timeoutMs"
    type: str | tuple[str, ...]  # JSON Schema type(s), as a VS Code package.json would declare
    description: str
    check: Check = field(repr=False, compare=False)
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    echo: bool = True  # False: never repeat the value in a problem (it might be a secret)

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def section_attr(self) -> str:
        """The section's attribute of ``Settings``: ``next_edit`` for ``nextEdit``."""
        return SECTION_ATTRS[self.section]

    @property
    def attr(self) -> str:
        """The dataclass attribute: camelCase -> snake_case."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.key.split(".", 1)[1]).lower()

    @property
    def default(self) -> Any:
        """The default in JSON form (tuples as lists)."""
        value = getattr(getattr(DEFAULTS, self.section_attr), self.attr)
        return list(value) if isinstance(value, tuple) else value


def _spec(key: str, type_: str | tuple[str, ...], check: Check, description: str, *,
          bounds: tuple[float | None, float | None] = (None, None), echo: bool = True) -> SettingSpec:
    return SettingSpec(key, type_, description, check, getattr(check, "choices", None), *bounds, echo=echo)


_BACKEND = _enum("auto", "openai", "ollama", "llamacpp", "embedded")
_FIM = _enum("auto", "qwen", "starcoder", "codellama", "deepseek", "codestral", "chat")

SETTINGS_SCHEMA: list[SettingSpec] = [
    _spec("local.backend", "string", _BACKEND,
          "Local model server: auto probes LM Studio (127.0.0.1:1234/v1), Ollama (127.0.0.1:11434), "
          "llama.cpp (127.0.0.1:8080) and uses the first that answers, else the embedded model when a model "
          "file is present; embedded runs a GGUF model file in-process (llama-cpp-python)."),
    _spec("local.endpoint", ("string", "null"), _optional(_url),
          "Server URL; openai: the base URL including /v1; ollama, llamacpp: the server root. "
          "null: the backend's usual local address."),
    _spec("local.model", ("string", "null"), _optional(_string),
          "Model name sent to the server; null: the first model the server lists."),
    _spec("local.modelPath", ("string", "null"), _optional(_string),
          "GGUF model file for the embedded backend; null: the default model file, if one is present."),
    _spec("local.fimTemplate", "string", _FIM,
          "Fill-in-the-middle prompt format; auto picks by model name; chat asks a chat model to fill the hole."),
    _spec("local.timeoutMs", "integer", _int(100, 60_000),
          "The most a completion may wait on the local model, in total (ms).", bounds=(100, 60_000)),
    _spec("local.maxTokens", "integer", _int(1, 4096),
          "The most tokens a completion may generate.", bounds=(1, 4096)),
    _spec("cloud.enabled", "boolean", _bool, "false: never call the cloud."),
    _spec("cloud.provider", "string", _enum("anthropic"), "Cloud provider."),
    _spec("cloud.model", "string", _string, "Cloud model name."),
    _spec("cloud.baseUrl", ("string", "null"), _optional(_url),
          "Cloud API base URL, for proxies and tests; null: the SDK's default."),
    _spec("cloud.apiKeyEnv", "string", _env_name,
          "Name of the environment variable that holds the API key; the key itself is never a setting "
          "and never logged.", echo=False),
    _spec("cloud.dailyBudgetUsd", "number", _number(0),
          "Spend cap per calendar day in USD; 0 means never call the cloud.", bounds=(0, None)),
    _spec("cloud.timeoutMs", "integer", _int(1000, 600_000),
          "The most a cloud call may take (ms).", bounds=(1000, 600_000)),
    _spec("completion.debounceMs", ("integer", "string"), _debounce,
          'Delay before asking the model (ms), or "auto" to adapt to the typing speed.',
          bounds=(0, DEBOUNCE_MAX_MS)),
    _spec("completion.multiline", "string", _enum("auto", "always", "never"), "Multi-line suggestions."),
    _spec("completion.maxPrefixChars", "integer", _int(1, 1_000_000),
          "Prompt bound: the most characters before the cursor.", bounds=(1, 1_000_000)),
    _spec("completion.maxSuffixChars", "integer", _int(0, 1_000_000),
          "Prompt bound: the most characters after the cursor.", bounds=(0, 1_000_000)),
    _spec("nextEdit.enabled", ("boolean", "null"), _optional_bool,
          "Next-edit suggestions (the matching change at the next place after an edit); null: on when a "
          "next-edit model is present."),
    _spec("nextEdit.model", ("string", "null"), _optional(_string),
          "Model for next edits, on the same local backend and endpoint; null: the completion model when it "
          "is a next-edit model (Sweep next-edit, Zeta)."),
    _spec("nextEdit.template", "string", _enum("auto", "sweep", "zeta", "instruct"),
          "Next-edit prompt format; auto picks by model name; instruct asks a chat model to rewrite the window "
          "(shown in a fenced block) and reads the answer's fenced block."),
    _spec("nextEdit.debounceMs", ("integer", "null"), _optional(_int(0, DEBOUNCE_MAX_MS)),
          "Pause after an edit before a next-edit request (ms); null: chosen by the server.",
          bounds=(0, DEBOUNCE_MAX_MS)),
    _spec("privacy.redactSecrets", "boolean", _bool,
          "Replace credentials (API keys, tokens, private keys, passwords) before any cloud call."),
    _spec("privacy.neverSendToCloud", "array", _globs,
          "Globs of files whose content never leaves the machine."),
]

_BY_KEY = {spec.key: spec for spec in SETTINGS_SCHEMA}


def defaults_as_dict() -> dict[str, dict[str, Any]]:
    """The defaults as the nested camelCase JSON tree (``{"local": {"backend": "auto", ...}, ...}``)."""
    tree: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for spec in SETTINGS_SCHEMA:
        tree[spec.section][spec.key.split(".", 1)[1]] = spec.default
    return tree


# --- parsing -------------------------------------------------------------------------------------

_SHOW_MAX = 60
# Key names (last segment, lower-cased, "_"/"-" dropped) that suggest someone put a secret in settings.
_SECRET_NAMES = {"key", "token", "secret", "password", "secretkey", "authtoken", "accesstoken", "bearertoken"}


def _clip(text: str) -> str:
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 1] + "…"


def _show(value: Any) -> str:
    """A short, single-line rendering of a value for a problem message; userinfo in URLs is masked."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except Exception:  # noqa: BLE001 - circular or absurdly deep values
        text = f"<{type(value).__name__}>"
    return _clip(re.sub(r"//[^/@\s]*@", "//***@", text))


def _looks_secret(path: str) -> bool:
    name = re.sub(r"[_-]", "", path.rsplit(".", 1)[-1]).lower()
    return name.endswith("apikey") or name in _SECRET_NAMES


def _collect(raw: dict, problems: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Flatten every accepted shape to ``({"local.backend": value, ...}, secret_keys)``; later keys win."""
    found: dict[str, Any] = {}
    secret_keys: list[str] = []

    def walk(prefix: str, obj: dict, top: bool) -> None:
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if top and path.startswith("tandem."):
                path = path[len("tandem."):]
            if path in _BY_KEY:
                found[path] = v
            elif path in SECTIONS or (top and path == "tandem"):
                if isinstance(v, dict):
                    walk("" if path == "tandem" else path, v, top=False)
                elif v is not None:
                    problems.append(f"{_clip(path)} must be an object, not {type(v).__name__} (ignored)")
            elif _looks_secret(path):
                secret_keys.append(_clip(path))
            else:
                problems.append(f"unknown setting {_clip(path)} (ignored)")

    walk("", raw, top=True)
    return found, secret_keys


def parse_settings(raw: object, *overrides: object) -> tuple[Settings, list[str]]:
    """Parse the ``tandem`` section into ``Settings`` plus human-readable problems; never raises.

    ``None`` or a non-object gives the defaults. Each invalid value falls back to its default
    (``completion.debounceMs`` above the maximum is clamped) and adds one problem naming the key,
    the offending value (never for keys that might hold a secret) and the value used instead.

    ``overrides`` are later settings trees laid over ``raw`` key by key (any accepted shape each): a key
    one of them sets wins over the same key below it; a key it leaves out or sets to ``null``, and an
    override that is ``null`` or not an object, leave what is below.
    """
    problems: list[str] = []
    layers = [raw, *overrides]
    if not any(isinstance(layer, dict) for layer in layers):
        if any(layer is not None for layer in layers):
            kind = type(next(layer for layer in layers if layer is not None)).__name__
            problems.append(f"the settings must be an object, not {kind}; using the defaults")
        return DEFAULTS, problems
    found: dict[str, Any] = {}
    secret_keys: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict):
            if layer is not None:
                problems.append(f"the settings must be an object, not {type(layer).__name__} (ignored)")
            continue
        layer_found, layer_secrets = _collect(layer, problems)
        found.update((key, value) for key, value in layer_found.items() if value is not None)
        secret_keys += [key for key in layer_secrets if key not in secret_keys]

    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for key, value in found.items():
        spec = _BY_KEY[key]
        try:
            values[spec.section][spec.attr] = spec.check(value)
        except _Invalid as bad:
            shown = _show(value) if spec.echo else "the value (not shown)"
            if bad.use is not None:
                values[spec.section][spec.attr] = bad.use
                problems.append(f"{key}: {shown} {bad.reason}; using {_show(bad.use)}")
            else:
                problems.append(f"{key}: {shown} {bad.reason}; using the default {json.dumps(spec.default)}")

    settings = Settings(**{
        SECTION_ATTRS[section]: type(getattr(DEFAULTS, SECTION_ATTRS[section]))(**values[section])
        for section in SECTIONS
    })
    for key in secret_keys:
        problems.append(
            f"{key} is ignored (value not shown): a key or secret is never a setting; "
            f"put the API key in the environment variable named by cloud.apiKeyEnv "
            f"(currently {settings.cloud.api_key_env})"
        )
    return settings, problems


def says_something(raw: object) -> bool:
    """Whether a configuration the client sent carries settings: not ``null``, not an empty object, not
    ``{"tandem": null}`` or ``{"tandem": {}}``. (A non-object says something: that it is wrong.)"""
    if raw is None:
        return False
    if not isinstance(raw, dict):
        return True
    return any(not (key == "tandem" and (value is None or value == {})) for key, value in raw.items())


class ClientSettings:
    """What the client said about the settings, by channel, and the tree in force (``layers``).

    ``initializationOptions`` are the base; the latest configuration that says something (pushed in
    ``didChangeConfiguration.settings``, nested under ``tandem`` or not, or pulled with
    ``workspace/configuration``) is laid over them key by key and replaces the configuration before it.
    A null or empty configuration changes nothing, so a client that answers ``[null]`` (Helix, eglot)
    keeps the settings it started the server with.
    """

    def __init__(self) -> None:
        self.initial: object = None
        self.latest: object = None

    def initialize(self, options: object) -> None:
        self.initial, self.latest = options, None

    def update(self, raw: object) -> bool:
        """Take a configuration the client sent; False (nothing changed) when it says nothing."""
        if not says_something(raw):
            return False
        self.latest = raw
        return True

    @property
    def layers(self) -> tuple[object, object]:
        """``parse_settings(*layers)`` gives the settings in force."""
        return self.initial, self.latest


class SettingsReporter:
    """Remembers problems already shown so each distinct problem is reported once per session."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def new_problems(self, problems: Iterable[str]) -> list[str]:
        """The problems not reported before, in order and without repeats; marks them reported."""
        fresh = []
        for problem in problems:
            if problem not in self._seen:
                self._seen.add(problem)
                fresh.append(problem)
        return fresh

"""The privacy gate: secret redaction, neverSendToCloud globs, and the gate's counters and logging."""

from __future__ import annotations

import logging
import random
import re
import time

import pytest
from tandem_lsp.config import PrivacySettings
from tandem_lsp.privacy import KINDS, PrivacyGate, marker, redact

from tests.unit import secrets_corpus as corpus
from tests.unit.secrets_corpus import ALL_SECRETS, CASES, INNOCUOUS

CASE_IDS = [c.name for c in CASES]


def windows(value: str, size: int = 8) -> list[str]:
    """Every ``size``-character substring of a secret (for a long PEM body: a sample of them)."""
    subs = [value[i : i + size] for i in range(len(value) - size + 1)]
    return subs if len(subs) <= 400 else subs[:: len(subs) // 400]


def leaks(text: str, secrets: list[tuple[str, str]], original: str = "") -> list[str]:
    """Descriptions (kind and length, never the value) of the secrets of which a trace survives in text.

    A trace is the value, its last 8 characters, or any 8-character piece of it that does not also
    occur in ``original`` outside the secret (``ENCRYPTED`` in a PEM header is no trace).
    """
    found = []
    for value, kind in secrets:
        elsewhere = original.replace(value, "\0")
        pieces = [w for w in windows(value) if w not in elsewhere]
        if value in text or value[-8:] in text or any(w in text for w in pieces):
            found.append(f"{kind} ({len(value)} chars)")
    return found


# --- the corpus -----------------------------------------------------------------------------------

def test_corpus_is_large_and_varied():
    assert len(ALL_SECRETS) >= 40
    kinds = {kind for _, kind in ALL_SECRETS}
    assert kinds <= set(KINDS)
    for kind in ("aws-access-key", "aws-secret-key", "github-token", "gitlab-token", "slack-token",
                 "slack-webhook", "stripe-key", "openai-key", "anthropic-key", "google-api-key", "jwt",
                 "private-key", "password", "bearer-token"):
        assert kind in kinds
    assert len({v for v, _ in ALL_SECRETS}) == len(ALL_SECRETS), "every fake secret is distinct"


def test_corpus_values_have_the_provider_formats():
    by_kind: dict[str, list[str]] = {}
    for value, kind in ALL_SECRETS:
        by_kind.setdefault(kind, []).append(value)
    assert all(re.fullmatch(r"A(?:KIA|SIA)[A-Z2-7]{16}", v) for v in by_kind["aws-access-key"])
    assert all(re.fullmatch(r"[A-Za-z0-9+/]{40}", v) for v in by_kind["aws-secret-key"])
    assert {v[:4] for v in by_kind["github-token"]} >= {"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "gith"}
    assert all(re.fullmatch(r"sk-ant-api03-[\w-]{93}AA", v) for v in by_kind["anthropic-key"])
    assert all(re.fullmatch(r"AIza[\w-]{35}", v) for v in by_kind["google-api-key"])
    assert all(v.startswith("eyJ") and v.count(".") == 2 for v in by_kind["jwt"])
    assert {v[:5] for v in by_kind["slack-token"]} >= {"xoxb-", "xoxp-", "xoxa-", "xoxr-"}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_no_secret_survives(case):
    out, _ = redact(case.text)
    assert leaks(out, case.secrets, case.text) == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_counts_and_markers(case):
    out, counts = redact(case.text)
    assert counts == case.counts
    for kind, n in case.counts.items():
        assert out.count(marker(kind)) == n


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_code_around_secrets_is_kept(case):
    out, _ = redact(case.text)
    for fragment in case.keep:
        assert fragment in out
    # nothing but the secrets changed: undoing the markers in order gives back the original
    rebuilt = out
    for value, kind in sorted(case.secrets, key=lambda s: case.text.index(s[0])):
        rebuilt = rebuilt.replace(marker(kind), value, 1)
    assert rebuilt == case.text


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_redaction_is_idempotent(case):
    out, _ = redact(case.text)
    assert redact(out) == (out, {})


def test_all_cases_in_one_text():
    text = "\n\n".join(c.text for c in CASES)
    out, counts = redact(text)
    assert leaks(out, ALL_SECRETS, text) == []
    assert sum(counts.values()) == len(ALL_SECRETS)


# --- form details ----------------------------------------------------------------------------------

@pytest.mark.parametrize("before, after", [
    ('password = "hunter2!x"', 'password = "<redacted:password>"'),
    ("password = 'hunter2!x'", "password = '<redacted:password>'"),
    ('DB_PASSWORD="hunter2!x"', 'DB_PASSWORD="<redacted:password>"'),
    ("export DB_PASSWORD=hunter2", "export DB_PASSWORD=<redacted:password>"),
    ("password: hunter2  # the dev one", "password: <redacted:password>  # the dev one"),
    ('"password": "hunter2",', '"password": "<redacted:password>",'),
    ("'password' => 'hunter2',", "'password' => '<redacted:password>',"),
    ('password := "hunter2"', 'password := "<redacted:password>"'),
    ('def connect(password: str = "hunter2"):', 'def connect(password: str = "<redacted:password>"):'),
    ("  clientSecret: 'a8f5f167f44f4964e6c998dee827110c',", "  clientSecret: '<redacted:secret>',"),
    ('apiKey = "a8f5f167f44f4964"', 'apiKey = "<redacted:api-key>"'),
    ('X_API_KEY = "a8f5f167f44f4964"', 'X_API_KEY = "<redacted:api-key>"'),
    ('access_key = "a8f5f167f44f4964"', 'access_key = "<redacted:access-key>"'),
    ('private_key = "a8f5f167f44f4964"', 'private_key = "<redacted:private-key>"'),
    ('auth = "a8f5f167f44f4964"', 'auth = "<redacted:credential>"'),
    ('passwd = "hunter2"', 'passwd = "<redacted:password>"'),
    ('pwd = "hunter2"', 'pwd = "<redacted:password>"'),
    ('PIN_PASSWORD = "12345"', 'PIN_PASSWORD = "<redacted:password>"'),
    ("PASSWORD=12345678", "PASSWORD=<redacted:password>"),
    ("mysql --password=hunter2 -h db", "mysql --password=<redacted:password> -h db"),
    ('tool --api-key "a8f5f167f44f4964" run', 'tool --api-key "<redacted:api-key>" run'),
    ("<password>hunter2</password>", "<password><redacted:password></password>"),
    ("postgres://app:hunter2@db:5432/app", "postgres://app:<redacted:password>@db:5432/app"),
    ("redis://:hunter2@cache:6379/0", "redis://:<redacted:password>@cache:6379/0"),
    ("https://x.test/cb?code=1&access_token=a8f5f167f44f&x=1", "https://x.test/cb?code=1&access_token=<redacted:token>&x=1"),
    ("Authorization: Bearer a8f5f167f44f4964e6c998dee827110c", "Authorization: Bearer <redacted:bearer-token>"),
    ('"Authorization": "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"',
     '"Authorization": "Token <redacted:bearer-token>"'),
])
def test_forms(before, after):
    assert redact(before)[0] == after


def test_placeholder_literals_are_redacted_by_design():
    # A weak real password looks just like a placeholder; hiding "changeme" costs nothing.
    assert redact('password = "changeme"')[0] == 'password = "<redacted:password>"'


def test_pem_cut_off_at_either_end():
    body = "\n".join(corpus.pem_body(8))
    head_only = "key = '''-----BEGIN RSA PRIVATE KEY-----\n" + body  # the excerpt ends inside the key
    out, counts = redact(head_only)
    assert counts == {"private-key": 1} and leaks(out, [(body, "private-key")]) == []
    assert out.startswith("key = '''-----BEGIN RSA PRIVATE KEY-----\n<redacted:private-key>")
    tail_only = "def f():\n    pass\n" + body + "\n-----END RSA PRIVATE KEY-----\n'''\nx = 1\n"
    out, counts = redact(tail_only)
    assert counts == {"private-key": 1} and leaks(out, [(body, "private-key")]) == []
    assert out == "def f():\n    pass\n<redacted:private-key>\n-----END RSA PRIVATE KEY-----\n'''\nx = 1\n"


def test_pem_markers_alone_are_not_keys():
    text = 'HEADER = "-----BEGIN PRIVATE KEY-----"\nFOOTER = "-----END PRIVATE KEY-----"\n'
    assert redact(text) == (text, {})


def test_crlf_line_endings():
    text = "DB_PASSWORD=hunter2\r\nLOG_LEVEL=debug\r\n"
    assert redact(text)[0] == "DB_PASSWORD=<redacted:password>\r\nLOG_LEVEL=debug\r\n"


# --- false positives -------------------------------------------------------------------------------

@pytest.mark.parametrize("line", INNOCUOUS)
def test_innocuous_code_is_untouched(line):
    assert redact(line) == (line, {})


def test_innocuous_code_as_one_file():
    text = "\n".join(INNOCUOUS) + "\n"
    assert redact(text) == (text, {})


def test_prose_is_untouched():
    prose = (
        "Passwords and tokens are never stored in plain text. The secret key rotates daily;\n"
        "ask the auth team for a token. Basic authentication is disabled, bearer tokens only.\n"
        "See https://docs.example.com/auth?section=tokens for the password policy.\n"
    )
    assert redact(prose) == (prose, {})


# --- speed -----------------------------------------------------------------------------------------

def _megabyte_of_code() -> str:
    parts, size, i = [], 0, 0
    pieces = ["\n".join(INNOCUOUS), *(c.text for c in CASES)]
    with open(corpus.__file__) as f:
        filler = f.read()
    while size < 1_000_000:
        piece = filler if i % 3 else pieces[i % len(pieces)]
        parts.append(piece)
        size += len(piece)
        i += 1
    return "\n".join(parts)


def _seconds(text: str) -> float:
    start = time.perf_counter()
    redact(text)
    return time.perf_counter() - start


def test_a_megabyte_of_code_does_not_hang():
    # a guard against a hang, not a speed figure (scripts/bench_privacy.py measures that: ~12 ms per 64 KB)
    assert _seconds(_megabyte_of_code()) < 20.0


@pytest.mark.parametrize("text", [
    "a" * 1_000_000,
    "".join(random.Random(1).choices(corpus.B64, k=1_000_000)),
    "-----BEGIN PRIVATE KEY-----\n" * 30_000,
    "-----END PRIVATE KEY-----" * 30_000,
    '"password": "' * 60_000,
    "password" * 120_000,
    "token: x\n" * 100_000,
    '{"a":"b","password":"x1y2","token":"abc123",' * 20_000,
], ids=["letters", "base64", "begins", "ends", "open-quotes", "one-word", "dense-keys", "minified-json"])
def test_pathological_inputs_stay_linear(text):
    # ten times the text takes about ten times as long (catastrophic backtracking: a hundred times and
    # more); the bound is loose because the machine is shared
    tenth = _seconds(text[: len(text) // 10]) + 0.005
    assert _seconds(text) < 40 * tenth + 0.5


# --- neverSendToCloud globs ------------------------------------------------------------------------

ROOT = "/home/ada/shop"


def gate(globs: tuple[str, ...] | None = None, root: str | None = ROOT, redact_secrets: bool = True) -> PrivacyGate:
    settings = PrivacySettings() if globs is None else PrivacySettings(never_send_to_cloud=globs)
    if not redact_secrets:
        settings = PrivacySettings(redact_secrets=False, never_send_to_cloud=settings.never_send_to_cloud)
    return PrivacyGate(settings, root)


@pytest.mark.parametrize("path", [
    ".env", "config/.env", ".env.local", "deploy/.env.production",  # ".env", ".env.*": any depth
    "key.pem", "a/b/key.pem",  # "**/*.pem"
    "server.key", "certs/tls/server.key",  # "**/*.key"
    "id_rsa", "id_rsa.pub", ".ssh/id_rsa_deploy",  # "**/id_rsa*"
    "secrets/a.txt", "x/secrets/b/c.txt",  # "**/secrets/**"
    "KEY.PEM", ".ENV",  # case-insensitive
])
def test_default_globs_block(path):
    assert gate().blocked(path)
    assert gate().blocked(f"{ROOT}/{path}")
    assert gate().blocked(f"file://{ROOT}/{path}")


@pytest.mark.parametrize("path", [
    "env.py", ".envrc", "src/environment.ts", "pem.py", "keys.py", "src/keyboard.key.md", "my_rsa.txt",
    "mysecrets/a.txt", "secrets.py", "docs/secrets.md", "secrets", "src/app.py", "README.md",
])
def test_default_globs_allow(path):
    assert not gate().blocked(path)
    assert not gate().blocked(f"{ROOT}/{path}")
    assert not gate().blocked(f"file://{ROOT}/{path}")


def test_uris_are_percent_decoded():
    g = gate(root="/home/ada/my shop")
    assert g.blocked("file:///home/ada/my%20shop/secrets/db.txt")
    assert g.blocked("file:///home/ada/my%20shop/config/%2Eenv")
    assert not g.blocked("file:///home/ada/my%20shop/src/app.py")


def test_windows_paths_and_uris():
    g = gate(root="C:\\Users\\ada\\shop")
    assert g.blocked("C:\\Users\\ada\\shop\\secrets\\db.txt")
    assert g.blocked("c:/Users/ada/shop/config/.env")
    assert g.blocked("file:///c%3A/Users/ada/shop/certs/server.key")
    assert not g.blocked("C:\\Users\\ada\\shop\\src\\app.py")
    assert not g.blocked("file:///c%3A/Users/ada/shop/src/app.py")


def test_workspace_root_as_uri():
    g = gate(("config/prod.yaml",), root="file:///home/ada/shop")
    assert g.blocked("/home/ada/shop/config/prod.yaml")
    assert not g.blocked("/home/ada/shop/src/config/prod.yaml")


def test_outside_the_workspace_is_matched_conservatively():
    g = gate(("config/prod.yaml", "**/*.key"))
    assert g.blocked("/etc/ssl/private/server.key")
    assert g.blocked("/srv/other/config/prod.yaml")  # any parent could be a root: block
    assert not g.blocked("/srv/other/config/dev.yaml")
    assert not g.blocked("/tmp/notes.txt")
    assert gate().blocked("/home/ada/other-project/.env")
    assert gate().blocked("/home/ada/other-project/secrets/x")


def test_no_workspace_root():
    g = gate(root=None)
    assert g.blocked("config/.env")
    assert g.blocked("/abs/secrets/x.json")
    assert g.blocked("file:///abs/keys/a.pem")
    assert not g.blocked("/abs/src/main.py")


def test_anchored_patterns_match_from_the_root():
    g = gate(("/local.settings.json", "config/prod.yaml", "docs/**/private-*.md"))
    assert g.blocked("local.settings.json")
    assert not g.blocked("sub/local.settings.json")
    assert g.blocked("config/prod.yaml") and not g.blocked("src/config/prod.yaml")
    assert g.blocked("docs/private-notes.md") and g.blocked("docs/a/b/private-x.md")
    assert not g.blocked("docs/public.md")


def test_wildcards_classes_directories_and_negation():
    g = gate(("*.sqlite", "build/", "data/**", "!data/public/**", "log?.txt", "[Tt]mp*"))
    assert g.blocked("app.sqlite") and g.blocked("x/y/app.sqlite")
    assert g.blocked("build/out.js") and g.blocked("src/build/out.js")
    assert not g.blocked("build")  # "build/" matches directories only; a file named build is not one
    assert g.blocked("data/x.csv") and g.blocked("data/a/b.csv")
    assert not g.blocked("data/public/readme.md")  # re-included by the later "!" pattern
    assert g.blocked("log1.txt") and not g.blocked("log12.txt")
    assert g.blocked("tmpfile") and g.blocked("Tmp/x")
    assert not g.blocked("src/main.py")


def test_a_matched_directory_blocks_its_contents():
    g = gate(("config/private",))
    assert g.blocked("config/private/a.yaml")
    assert g.blocked("config/private/deep/b.yaml")
    assert not g.blocked("config/public/a.yaml")


def test_dot_segments_and_backslashes_in_patterns():
    g = gate(("secrets\\**",))
    assert g.blocked("/home/ada/shop/src/../secrets/x")
    assert not g.blocked("/home/ada/shop/secrets/../src/x.py")


def test_no_globs_blocks_nothing():
    g = gate(())
    assert not g.blocked(".env") and not g.blocked("/home/ada/shop/secrets/x")


# --- filter and scrub: counters and logs -----------------------------------------------------------

def test_filter_blocked_file(caplog):
    g = gate()
    with caplog.at_level(logging.INFO, logger="tandem_lsp.privacy"):
        assert g.filter(f"file://{ROOT}/.env", corpus.dotenv().text) is None
    assert g.blocked_files == 1
    assert g.redactions == {}
    assert any(".env" in r.getMessage() for r in caplog.records)


def test_filter_redacts_and_counts():
    g = gate()
    py = corpus.python_settings()
    out = g.filter(f"{ROOT}/shop/settings.py", py.text)
    assert out is not None and leaks(out, py.secrets, py.text) == []
    assert g.redactions == py.counts
    js = corpus.js_config()
    g.filter(f"file://{ROOT}/config.js", js.text)
    total = {k: py.counts.get(k, 0) + js.counts.get(k, 0) for k in {*py.counts, *js.counts}}
    assert g.redactions == total
    assert g.blocked_files == 0
    assert g.stats() == {"redactions": dict(sorted(total.items())), "redactedTotal": sum(total.values()),
                         "blockedFiles": 0}


def test_filter_without_redaction_still_blocks():
    g = gate(redact_secrets=False)
    text = corpus.yaml_config().text
    assert g.filter(f"{ROOT}/config.yaml", text) == text
    assert g.filter(f"{ROOT}/secrets/config.yaml", text) is None
    assert g.redactions == {} and g.blocked_files == 1


def test_scrub_free_text():
    g = gate()
    key = corpus.anthropic()
    failure = (
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3, in <module>\n'
        f"    client = Anthropic(api_key=\"{key}\")\n"
        f"anthropic.AuthenticationError: invalid x-api-key {key}\n"
    )
    out = g.scrub(failure)
    assert key not in out and key[-12:] not in out
    assert g.redactions == {"anthropic-key": 2}
    assert g.scrub("nothing to see") == "nothing to see"
    assert g.redactions == {"anthropic-key": 2}
    assert gate(redact_secrets=False).scrub(failure) == failure


def test_logs_never_contain_secrets(caplog):
    g = gate()
    with caplog.at_level(logging.DEBUG, logger="tandem_lsp.privacy"):
        for i, case in enumerate(CASES):
            g.filter(f"{ROOT}/src/case{i}.txt", case.text)  # (the .env case's own name is blocked)
            g.scrub(case.text)
        g.filter(f"{ROOT}/secrets/all.txt", "\n".join(c.text for c in CASES))
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert leaks(messages, ALL_SECRETS, "\n".join(c.text for c in CASES)) == []
    assert "redacted" in messages
    counted = [r for r in caplog.records if r.levelno == logging.INFO and "redacted" in r.getMessage()]
    assert len(counted) == 2 * len(CASES)
    py = CASES[0]
    assert any(f"redacted {sum(py.counts.values())} secret(s)" in r.getMessage() for r in counted)
    assert g.redactions == {k: 2 * sum(c.counts.get(k, 0) for c in CASES) for k in g.redactions}
    assert g.blocked_files == 1

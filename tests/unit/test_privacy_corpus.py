"""The privacy gate against its outside-style corpus (``tests/data/privacy_corpus.jsonl``, written by
``tests/unit/privacy_corpus.py``): hundreds of credential kinds in their vendors' formats, each in several
syntaxes, and benign look-alikes. No secret may survive, no benign line may change.

Also: the vendor checks (CRC32 suffix, PyPI macaroon, JWT header, base64 of a JWT or a PEM key), and the
assignment shapes that issue 12 found leaking.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections import Counter, defaultdict

import pytest
from tandem_lsp import privacy_rules
from tandem_lsp.privacy import KINDS, redact

from tests.unit import privacy_corpus as corpus

RECORDS = [json.loads(line) for line in corpus.DATA.read_text(encoding="utf-8").splitlines()]
SECRETS = [r for r in RECORDS if r["secret"]]
BENIGN = [r for r in RECORDS if not r["secret"]]
FAMILIES = sorted({r["family"] for r in SECRETS})
MARKER = re.compile(r"<redacted:([a-z0-9\-]+)>")


def traces(out: str, record: dict) -> list[str]:
    """What of the record's secret survives in ``out``: the whole value, or an 8-character run of it that
    does not also occur in the line outside the secret (a fixed ``https://hooks.`` is no trace)."""
    secret = corpus.secret_of(record)
    if secret in out:
        return ["the whole value"]
    out = MARKER.sub("\0", out)  # a marker's own name ("<redacted:rubygems-key>") is no trace
    elsewhere = record["text"]
    runs = {secret[i : i + 8] for i in range(len(secret) - 7)}
    return sorted(f"a run of 8 at {secret.index(r)}" for r in runs if r in out and r not in elsewhere)


# --- the data file --------------------------------------------------------------------------------

def test_the_data_file_is_what_the_generator_writes():
    assert RECORDS == corpus.records(), "regenerate: .venv/bin/python -m tests.unit.privacy_corpus"


def test_the_data_file_holds_no_whole_token():
    """Secrets are stored split, so the file itself trips no secret scanner."""
    text = corpus.DATA.read_text(encoding="utf-8")
    for r in SECRETS:
        assert corpus.secret_of(r) not in text


def test_the_corpus_is_large_and_varied():
    kinds = {r["kind"] for r in SECRETS}
    assert len(kinds) >= 200 and len(SECRETS) >= 600 and len(BENIGN) >= 100
    per_kind = Counter(r["kind"] for r in SECRETS)
    assert min(per_kind.values()) >= 3, "every kind in at least three lines"
    syntaxes = {r["syntax"] for r in SECRETS}
    assert len(syntaxes) >= 60
    for needed in ("make-shell", "make-evaluated", "make-conditional", "java-setproperty", "go-var", "php-concat",
                   "go-getenv-default", "k8s-secret", "header-api-token", "nuget-config", "url-redis", "csv",
                   "yaml-literal", "xml-add-key-value", "yaml-env-name-value", "json-escaped"):
        assert needed in syntaxes
    assert sum(r["syntax"].startswith("bare-") for r in SECRETS) >= 150, "format-recognisable kinds also bare"


# --- no secret survives, no benign line changes -------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_no_secret_survives(family):
    leaks = []
    for r in (r for r in SECRETS if r["family"] == family):
        out, counts = redact(corpus.text_of(r))
        found = traces(out, r)
        if found or not counts:
            leaks.append(f"{r['kind']} in {r['syntax']}: {', '.join(found) or 'nothing redacted'}")
    assert leaks == []


@pytest.mark.parametrize("record", BENIGN, ids=[r["syntax"] for r in BENIGN])
def test_benign_lines_are_untouched(record):
    assert redact(record["text"]) == (record["text"], {})


def test_all_benign_lines_as_one_file():
    text = "\n".join(r["text"] for r in BENIGN) + "\n"
    assert redact(text) == (text, {})


def test_everything_in_one_text():
    """Secrets next to each other and to benign lines: none survives, nothing benign changes."""
    lines = [corpus.text_of(r) for r in RECORDS]
    text = "\n".join(lines) + "\n"
    out, counts = redact(text)
    for r in SECRETS:
        assert corpus.secret_of(r) not in out, r["kind"]
    for r in BENIGN:
        assert r["text"] in out, r["syntax"]
    assert sum(counts.values()) >= len(SECRETS)


def test_markers_are_readable_kinds():
    seen: Counter[str] = Counter()
    for r in SECRETS:
        out, counts = redact(corpus.text_of(r))
        markers = MARKER.findall(out)
        assert markers and Counter(markers) == Counter(counts), r["kind"]
        seen.update(markers)
    assert set(seen) <= set(KINDS)
    assert len(seen) >= 60, "vendor-specific kinds, not one generic marker"


def test_redaction_is_idempotent():
    for r in SECRETS[::7]:
        out, _ = redact(corpus.text_of(r))
        assert redact(out) == (out, {}), r["kind"]


def test_bare_tokens_get_their_vendors_kind():
    """A token found by its own format is named after its vendor, not as a generic "token"."""
    generic = {"token", "secret", "password", "api-key", "credential", "access-key"}
    named = [MARKER.findall(redact(corpus.text_of(r))[0]) for r in SECRETS if r["syntax"].startswith("bare-")]
    specific = sum(1 for m in named if m and m[0] not in generic)
    assert specific >= 0.9 * len(named)


def test_catch_rate_by_family_is_complete():
    """The table in docs/privacy.md: every family's every line is caught."""
    caught: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in SECRETS:
        out, _ = redact(corpus.text_of(r))
        caught[r["family"]][0] += not traces(out, r)
        caught[r["family"]][1] += 1
    assert all(a == b for a, b in caught.values()), dict(caught)


# --- the shapes issue 12 found leaking ------------------------------------------------------------

R = random.Random(12)


def rand(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


LOW36 = string.ascii_lowercase + string.digits
B62 = string.ascii_letters + string.digits
V = rand(LOW36, 26)  # a Mattermost-shaped token: no prefix, only its name says what it is


@pytest.mark.parametrize("line, secret", [
    (f'X_TOKEN ::= "{V}"', V),
    (f'X_TOKEN :::= "{V}"', V),
    (f'X_TOKEN ?= "{V}"', V),
    (f'X_TOKEN += "{V}"', V),
    (f'System.setProperty("X_TOKEN", "{V}");', V),
    (f'var xToken string = "{V}"', V),
    (f'$xToken .= "{V}";', V),
    (f'$xToken ??= "{V}";', V),
    (f'xToken := GetEnvOrDefault("api_token", "{V}")', V),
    (f'os.environ.setdefault("API_TOKEN", "{V}")', V),
    (f'setenv("API_TOKEN", "{V}", 1);', V),
    (f'token <- "{V}"', V),
    (f'const token = process.env.API_TOKEN || "{V}";', V),
    (f'#define API_TOKEN "{V}"', V),
    (f"xToken,{V},", V),
    (f"x_token: |\n  {V}", V),
    (f"<xToken>\n    {V}\n</xToken>", V),
    (f'"{{\\"x_token\\": \\"{V}\\"}}"', V),
    (f'env:\n  - name: X_TOKEN\n    value: "{V}"', V),
    (f'curl -H "Authorization: Api-Token {V}" https://api.example.com', V),
    (f'req.Header.Set("Authorization", "SSWS {V}")', V),
    (f'headers = {{"Authorization": "token {V}"}}', V),
    (f"Authorization: {rand(B62, 40)}", None),
    ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: " + base64.b64encode(b"s3cr3t-pw").decode()
     + "\n", base64.b64encode(b"s3cr3t-pw").decode()),
    ("mapboxToken = pk." + rand(LOW36, 60) + "." + rand(LOW36, 22), None),
    ("redis://user:$pa55@cache:6379", "$pa55"),
    ('<add key="ClearTextPassword" value="' + rand(B62, 16) + '" />', None),
])
def test_issue_12_shapes(line, secret):
    if secret is None:  # the value is the last word of the line, before any closing quote
        secret = re.findall(r"[\w$.\-]{8,}", line)[-1]
    out, counts = redact(line)
    assert secret not in out and counts, out


@pytest.mark.parametrize("line", [
    'db_password = os.environ["DB_PASSWORD"]',
    "const apiKey = process.env.API_KEY;",
    "          token: ${{ secrets.GITHUB_TOKEN }}",
    'let token = std::env::var("GITHUB_TOKEN")?;',
    "redis://user:$REDIS_PASSWORD@cache:6379",
    'authorization = request.headers.get("Authorization")',
    'SENSITIVE = ["Cookie", "Authorization", "Proxy-Authorization"]',
    'r.headers["Authorization"] = _basic_auth_str(self.username, self.password)',
    'GITHUB_TOKEN = "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"',
    '"jsonwebtoken": "^9.0.0",',
    "COCOA = {'NSURLSession', 'NSURLSessionDataTask', 'PKPaymentPass', 'PKPaymentRequest'}",
    "def _generic_cache_set(key: GenericTypesCacheKey, value: type[BaseModel]) -> None:",
    "machine HOSTNAME login USERID password \"PASSWORD\"",
])
def test_references_and_identifiers_stay(line):
    assert redact(line) == (line, {})


# --- vendor checks ----------------------------------------------------------------------------------

def test_crc32_suffix():
    token = corpus.crc_token("gh" + "p_")
    assert privacy_rules.crc32_suffix_ok(token)
    assert not privacy_rules.crc32_suffix_ok(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert privacy_rules.crc32_suffix_ok(corpus.crc_token("np" + "m_"))


def test_a_valid_checksum_is_redacted_even_inside_a_word():
    token = corpus.crc_token("gh" + "o_")
    out, counts = redact(f"prefix{token} suffix")
    assert token not in out and counts == {"github-token": 1}
    fake = "gh" + "o_" + rand(B62, 36)  # no valid checksum: mid-word it reads as part of something else
    if not privacy_rules.crc32_suffix_ok(fake):
        assert redact(f"prefix{fake}")[1] == {}


def test_pypi_macaroon_header():
    assert privacy_rules.pypi_macaroon_ok("py" + "pi-AgEIcHlwaS5vcmc" + rand(B62, 60))
    assert privacy_rules.pypi_macaroon_ok("py" + "pi-AgENdGVzdC5weXBpLm9yZw" + rand(B62, 60))
    assert not privacy_rules.pypi_macaroon_ok("py" + "pi-AgEIZXhhbXBsZS5jb20" + rand(B62, 60))


def test_jwt_and_base64_checks():
    jwt = corpus.jwt()
    assert privacy_rules.jwt_header_ok(jwt)
    assert privacy_rules.b64_jwt_ok(base64.b64encode(jwt.encode()).decode())
    assert not privacy_rules.b64_jwt_ok(base64.b64encode(b"just some text, not a token").decode())
    pem = corpus.pem("RSA PRIVATE" + " KEY", 3)[0]
    assert privacy_rules.b64_pem_ok(base64.b64encode(pem.encode()).decode())
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert not privacy_rules.b64_pem_ok(base64.b64encode(cert.encode()).decode())


def test_every_format_kind_is_a_marker_kind():
    assert privacy_rules.FORMAT_KINDS <= set(KINDS)
    assert len(privacy_rules.FORMATS) >= 120

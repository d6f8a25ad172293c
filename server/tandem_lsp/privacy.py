"""The privacy gate: every byte bound for the cloud passes through here first.

Two settings (docs/settings.md) drive it:

* ``privacy.neverSendToCloud`` — gitignore-like globs of files whose content never leaves the machine
  (``PrivacyGate.blocked`` / ``PrivacyGate.filter``).
* ``privacy.redactSecrets`` — replace credentials with a readable marker before a cloud call
  (``redact``, ``PrivacyGate.filter``, ``PrivacyGate.scrub``).

Redaction
---------
``redact(text)`` returns ``(new_text, {kind: count})``. A secret becomes ``<redacted:KIND>``; only the
secret itself is replaced, so code stays readable and, where possible, parseable: quotes are kept
(``password = "<redacted:password>"``), a URL keeps scheme, user and host
(``postgres://app:<redacted:password>@db:5432/app``), a PEM block keeps its BEGIN/END lines. Counts are
per occurrence. Redacting already-redacted text changes nothing.

Secrets are found two ways, in this order (a later pass never touches an earlier marker):

1. **By their own format** — private-key blocks (PEM, PuTTY), then the vendor formats of
   ``privacy_rules.FORMATS`` (146 formats: prefixes, alphabets, lengths, and checksums where the
   vendor defines them: GitHub's and npm's CRC32 suffix, PyPI's macaroon header, a JWT's JSON header).
   These are found anywhere: in code, in a log line, in a traceback.
2. **By context** — a literal under a secret-looking name, in the assignment syntaxes of the common
   languages and config formats (``=``, ``:=``, ``::=``, ``:::=``, ``?=``, ``??=``, ``+=``, ``.=``, ``=>``,
   ``:``, ``<-``, typed declarations, YAML including block scalars and ``name:``/``value:`` pairs, TOML,
   INI/.env, properties, XML elements and ``key=""``/``value=""`` attributes, JSON, escaped JSON, CSV,
   ``#define``), passed to a call with its name (``setProperty("X_TOKEN", "...")``,
   ``os.environ.setdefault``, ``setenv``, ``GetEnvOrDefault``, ``ENV.fetch``, ``headers.put``...), a
   default after an environment lookup (``process.env.X || "..."``), a ``data:`` value of a Kubernetes
   ``Secret``, a password in a URL, a connection string, a ``.netrc``, a query string, a flag, or an
   ``Authorization`` header of any scheme (``Bearer``, ``Basic``, ``token``, ``Api-Token``, ``SSWS``...).

Names have two tiers. A name that *ends* with a keyword (``db_password``, ``apiKey``, ``client_secret``,
``SECRET_KEY``, ``authToken``) takes any literal. A name that merely *contains* one as a word
(``api_key_prod``, ``aws_bearer_token_bedrock``, ``deploy_key``, ``_gitlab_session``) takes only a value
that looks machine-made (letters and digits, varied, no spaces, not a path or URL). Names that end
with a harmless word (``token_url``, ``max_tokens``, ``password_hash``, ``secret_name``, ``key_id``
except for credential ids) take nothing.

What is deliberately *not* redacted (false-positive policy):

* values that are not literals: ``None``/``null``/``true``..., calls and attribute or index
  expressions (``get_token()``, ``os.environ["SECRET_KEY"]``, ``process.env.API_KEY``), and, when
  unquoted, a bare word of letters/underscores (``password: str``, ``password=pw``, ``auth: none``) —
  it reads as a variable, a type or an option; an unquoted value with a digit or a symbol
  (``password: hunter2``) is a literal and is redacted, and so is an unquoted dotted value whose parts
  look machine-made (``mapboxToken = pk.eyJ1Ijo....``);
* references and templates: ``$VAR``, ``${VAR}``, ``$(cmd)``, ``%VAR%``, ``{{ var }}``, ``{name}``,
  ``${{ secrets.X }}``, f-strings with ``{``, ``%s``/``%(name)s``, ``<your-token>``, ``<|endoftext|>``,
  ``[PAD]``, and environment-variable names (``"OPENAI_API_KEY"``) — but in a URL's password only an
  upper-case or letters-only ``$NAME`` is a reference (``redis://u:$pa55@h`` is a password);
* empty strings, masks (``"***"``, ``"xxxx"``, ``sk_live_xxxxxxxx``), escape-only strings (``"\\n"``),
  colours (``"#f8f8f2"``), a bare auth scheme (``auth = "Basic " + encoded``), values with a
  ``<slot>`` (``"Bearer <token>"``), raw strings (``r"[a-z]+"``, patterns), unquoted small numbers, and
  a value equal to its own key (``PASSWORD = "password"``, a field name);
* identifiers and digests that are not secrets: UUIDs and git SHAs under ordinary names, lock-file
  and SRI hashes (``sha512-...``), Docker digests, SSH public keys, certificates and public keys,
  ordinary base64 and data URIs;
* names that merely mention a keyword: ``token_url``, ``max_tokens``, ``password_hash``,
  ``tokenizer``; words in prose are never names followed by a literal.

Placeholder *literals* such as ``"changeme"`` or ``"password123"`` are redacted: a weak real password
looks exactly like a placeholder, and hiding a placeholder costs nothing.

Speed: each rule runs only when one of its needles occurs in the text, and the rules that start at a
key name or a vendor prefix are tried only at the needles' positions (``_anchored``,
``privacy_rules.find_tokens``), so 64 KB of ordinary code costs a few milliseconds; no pattern can
backtrack quadratically (bounded or possessive repeats; PEM bodies never cross ``-----``).
``scripts/bench_privacy.py`` measures it.

Secret values are never logged; only counts per kind.
"""

from __future__ import annotations

import bisect
import logging
import posixpath
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from urllib.parse import unquote, urlsplit

from tandem_lsp.config import PrivacySettings
from tandem_lsp.privacy_rules import FORMAT_KINDS, find_tokens, looks_machine_made, random_case

__all__ = ["KINDS", "PrivacyGate", "marker", "redact"]

log = logging.getLogger(__name__)


def marker(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"<redacted:{kind}>"


_MARKER_PREFIX = "<redacted:"

# ---------------------------------------------------------------------------------------------------
# Value and name helpers (used by the rules' pick functions)
# ---------------------------------------------------------------------------------------------------

# A key name is secret-looking when its last component (after camelCase/snake/kebab/dot splitting,
# trailing digits allowed) is one of these, optionally followed by harmless suffixes.
_KEYWORD = (
    r"pass(?:word|wd|phrase|code)?|pwd|pw|secret|token|api_?key|access_?key|priv(?:ate)?_?key|privkey"
    r"|(?:signing|encryption|master|app|client|account|webhook|license|shared|storage|service|deploy|admin"
    r"|write|ingest|sdk|bot|partner|consumer|subscription|auth|personal|management|hmac|jwt|aes|cipher|sas"
    r"|crypt)_key"
    r"|auth|authorization|credentials?|creds|salt"
)
# The same keywords may end a name with no separator before them ("dbpassword", "AUTHTOKEN").
_JOINED_KEYWORD = r"secret|token|password|passwd|passphrase|apikey|credentials?"
_SUFFIX = (r"(?:_(?:key|value|val|str|string|b64|base64|hex|bytes|base|raw|enc|encoded|plain"
           r"|prod|production|dev|development|test|staging|stage|live|local|new|old|v\d+))*_?\d*")
_NAME_OK = re.compile(rf"(?:^|_)(?P<kw>{_KEYWORD}){_SUFFIX}$|(?P<kw2>{_JOINED_KEYWORD}){_SUFFIX}$")
# URL query strings and connection strings also carry keys and signatures (``?key=``, ``&sig=``).
_QUERY_NAME_OK = re.compile(rf"(?:^|_)(?P<kw>{_KEYWORD}|key|sig|signature){_SUFFIX}$|(?P<kw2>{_JOINED_KEYWORD})$")
# A keyword anywhere in a name, as a word of its own: a secret only if the value looks machine-made.
_LOOSE_KEYWORD = re.compile(
    r"(?:^|_)(?P<kw>pass(?:word|wd|phrase)?|pwd|secrets?|tokens?|api_?key|apikey|key|auth|credentials?|creds"
    r"|pat|session|sess|cookie|salt|bearer|jwt|private)(?=_|$)")
# ...unless the name ends with a word that says the value is something else.
_NOT_SECRET_TAIL = frozenset("""
    url uri urls endpoint host hostname domain server path file filename dir directory folder name names
    type types kind mode version release region zone count length len size limit max min ttl expiry expires
    expiration timeout interval header headers prefix suffix format enabled disabled enable disable flag
    scope scopes audience issuer algorithm alg hash hashed digest checksum sha commit sid label description
    desc title help hint message msg error errors field fields column param params policy rule rules regex
    pattern template placeholder example sample id ids index idx number num status state style class icon
    color colour font width height position offset page cursor order sort date time timestamp created
    updated at by lifetime age duration rotation schedule provider source store storage backend location
    method strategy handler callback hook env env_var var variable setting settings config option
    options pool cache queue topic channel event events log logs level user username email owner account
""".split())
_CREDENTIAL_ID = frozenset("key client access secret app consumer api token".split())  # X_id: a credential
# Cheap prefilter for the regexes: a candidate name contains one of these (case-insensitively).
_NAME_HINT = r"(?i:pass|pw|secret|token|key|auth|cred|sig|salt|pat|sess|cookie|bearer|jwt|private|client[_\-]?id)"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


@lru_cache(maxsize=4096)
def _norm_name(name: str) -> str:
    """``dbPassword`` / ``DB-PASSWORD`` / ``db.password`` -> ``db_password``."""
    return _NON_ALNUM.sub("_", _CAMEL.sub("_", name)).strip("_").lower()


def _kind_of_keyword(kw: str) -> str:
    if kw.startswith("pass") or kw in ("pwd", "pw"):
        return "password"
    if kw.startswith("priv"):
        return "private-key"
    if kw.startswith("api") or kw in ("key", "keys"):
        return "api-key"
    if kw.startswith("access"):
        return "access-key"
    if kw.startswith(("token", "pat", "sess", "cookie", "bearer", "jwt")):
        return "token"
    if kw.startswith(("auth", "cred")):
        return "credential"
    return "secret"


@lru_cache(maxsize=4096)
def _kind_for(name: str, query: bool = False) -> str | None:
    """The marker kind for a literal stored under ``name``, or None when the name is not secret-looking."""
    m = (_QUERY_NAME_OK if query else _NAME_OK).search(_norm_name(name))
    if not m:
        return None
    return _kind_of_keyword(m["kw"] or m["kw2"])


@lru_cache(maxsize=4096)
def _loose_kind(name: str) -> str | None:
    """The kind for a *machine-made* value under ``name``: a keyword anywhere in it, as a word."""
    norm = _norm_name(name)
    parts = norm.rstrip("0123456789_").split("_")
    last = parts[-1]
    if last in _NOT_SECRET_TAIL and not (last == "id" and len(parts) > 1 and parts[-2] in _CREDENTIAL_ID):
        return None
    if "public" in parts or "pub" in parts:
        return None  # a public key is no secret
    if last == "id" and len(parts) > 1:
        return "credential"  # client_id, key_id, app_id: the public half of a credential, machine-made
    m = _LOOSE_KEYWORD.search(norm)
    return _kind_of_keyword(m["kw"]) if m else None


def _squash(s: str) -> str:
    return _NON_ALNUM.sub("", s).lower()


# Values that are references or placeholders, not secrets (matched against the whole value).
_REFERENCE = re.compile(
    r"""
      \$\{?[A-Za-z_][\w.]*\}?                         # $VAR, ${VAR}
    | \$\{\{.*\}\} | \$\(.*\)                         # ${{ ci.var }}, $(command)
    | \{\{.*\}\} | \{%.*%\} | \{[^{}]*\}              # Jinja/Handlebars, {name} formats, JSX {expr}
    | <[^<>]*>                                        # <your-token>, <|endoftext|>, a marker
    | \[[A-Z_ \-]*\]                                  # [PAD]
    | %[A-Za-z_]\w*%                                  # %VAR% (Windows)
    | %(?:\([\w.]*\))?[-\#0 +]*\d*(?:\.\d+)?[sdrifxXeEgGa]   # printf: %s, %(password)s
    | [*&!][\w.\-]+                                   # YAML alias/anchor/tag
    | [*xX•.\#_\-]+                                   # masks: ***, xxxx, ...
    | [A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+                   # an environment variable's name
    | \#[0-9a-fA-F]{3,8}                              # a colour
    | (?i:basic|bearer|token|digest|negotiate)\s*     # an auth scheme, the credential follows in code
    | (?:\\[nrt0]|\\x[0-9a-fA-F]{2}|\s)*                # nothing but whitespace/escapes
    """,
    re.VERBOSE,
)
_LITERALS = frozenset({
    "None", "null", "NULL", "Null", "nil", "true", "false", "True", "False", "TRUE", "FALSE", "undefined",
    "none", "~", "NaN",
})
_ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)
# An identifier, a dotted path, or a call/index expression: code, not a literal (bare values only).
_CODE = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::)[A-Za-z_$][\w$]*)*(?:[(\[].*)?")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_SMALL_NUMBER = re.compile(r"-?\d{1,5}(?:\.\d+)?")


_TEMPLATE_SLOT = re.compile(r"<[\w .|\-]+>|%(?:\([\w.]*\))?[sd]|\{\d*\}")  # "Bearer <token>", "user=%s", "{}"


_VERSION = re.compile(r"[\^~<>=]{0,2}v?\d+(?:\.(?:\d+|[x*])){1,3}(?:[-+][\w.\-]+)?")
_MASK = re.compile(r"[A-Za-z0-9_.\-]{0,16}?(?:[xX]{6,}|\*{3,}|•{3,}|\.{3,}|0{8,})[xX*•._\-]*")


def _is_placeholder(value: str, name: str = "") -> bool:
    """True for values that are not secrets: empty, references, templates, masks, the key's own name."""
    if not value or _MARKER_PREFIX in value or "${" in value or "{{" in value or _TEMPLATE_SLOT.search(value):
        return True
    if (_MASK.fullmatch(value) or _VERSION.fullmatch(value)
            or (len(value) < 8 and not _ASCII_ALNUM.intersection(value))):
        return True  # ghp_XXXXXXXXXXXX, sk_live_****; "jsonwebtoken": "^9.0.0"
    if value in _LITERALS or _REFERENCE.fullmatch(value):
        return True
    if not name or len(value) > 64:
        return False
    squashed, own = _squash(value), _own_names(name)
    return squashed in own or (len(squashed) >= 4 and squashed in own[0])  # SERVER_AUTH: "serverAuth"


@lru_cache(maxsize=4096)
def _own_names(name: str) -> tuple[str, str]:
    """A key's name and its last component, squashed: a value equal to one is a field name, not a secret."""
    return _squash(name), _squash(_norm_name(name).rsplit("_", 1)[-1])


def _random_letters(s: str) -> bool:
    """A long letters-only run whose case looks random (not camelCase/words: ``NSURLSessionDataTask``)."""
    return len(s) >= 16 and s.isalpha() and random_case(s) and not _wordy(s)


def _looks_random(s: str, min_len: int = 16) -> bool:
    """A token that looks machine-generated: long, with letters and digits and varied characters."""
    return (
        len(s) >= min_len
        and any(c.isdigit() for c in s)
        and any(c.isalpha() for c in s)
        and len(set(s)) >= min(10, len(s) // 2)
    ) or _random_letters(s)


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SEGMENTS = re.compile(r"[.:/+=~%!@*$|,;<>()\[\]{}]+")
_ADDRESS = re.compile(r"(?:[^@\s]+@)?[\w\-]+(?:\.[\w\-]+)*\.(?:com|net|org|io|dev|app|co|cloud|ai|internal|local"
                      r"|example|test|localhost|[a-z]{2})")


def _machine_made_value(value: str) -> bool:
    """A value that reads as a generated credential: no spaces, not a URL, path or e-mail address, and
    at least one long part with letters and digits (or random-case letters), or a UUID."""
    if len(value) < 12 or len(value) > 4096 or any(c.isspace() for c in value) or "://" in value:
        return False
    if _UUID_RE.fullmatch(value):
        return True
    if ("/" in value and "." in value.rsplit("/", 1)[-1]) or _ADDRESS.fullmatch(value):
        return False  # a file path, an e-mail address, a host name
    return any(looks_machine_made(p, 12) and not _identifier_like(p) for p in _SEGMENTS.split(value))


def _identifier_like(part: str) -> bool:
    """``gss_krb5_rfc1964_keydata``, ``HTTP2Connection``: words, not a generated token."""
    words = [w for w in re.split(r"[-_]+", part) if w]
    if len(words) > 1:
        return all(len(w) <= 8 or (w.isalpha() and not random_case(w)) or _wordy(w) for w in words)
    return bool(words) and _wordy(words[0])


_CHUNK = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_VOWELS = frozenset("aeiouyAEIOUY")


def _wordy(part: str) -> bool:
    """A mixed-case part made of words (``MDLMatrix4x4Array``, ``HTTP2Connection``): an identifier."""
    if part.islower() or part.isupper() or not part.isalnum():
        return False
    chunks = _CHUNK.findall(part)
    total = sum(map(len, chunks))
    words = sum(len(c) for c in chunks if len(c) >= 3 and (c.isupper() and len(c) <= 5 or _VOWELS.intersection(c)))
    return total > 0 and words >= 0.6 * total and total >= 3.2 * len(chunks)  # long chunks: words


def _bare_span(value: str, start: int, name: str = "") -> tuple[int, int] | None:
    """The secret part of an unquoted value starting at ``start``, or None when it is not a literal."""
    core = value
    for _ in range(16):  # trim what belongs to the surrounding code: "pw})", "None):", "x,", "abc\\n"
        last = core[-1:]
        if not last:
            break
        if last in ":," or (last in _CLOSERS and core.count(last) > core.count(_CLOSERS[last])):
            core = core[:-1]
        elif core.endswith(("\\n", "\\r", "\\t")):
            core = core[:-2]
        else:
            break
    if not core or core[0] in "([{<" or _SMALL_NUMBER.fullmatch(core) or _is_placeholder(core, name):
        return None  # a tuple, list, dict or JSX expression, a count or a port, a reference, a placeholder
    if core[-1] in "([{<" or re.search(r"\w<\w", core):
        return None  # std::env::var("X"), Session<Request, Response>: the value continues as code
    if _CODE.fullmatch(core):
        plain = core.replace("_", "").replace("$", "")
        dotted = "." in core and not any(c in core for c in "([")
        if dotted and all(_looks_random(p, 12) for p in core.split(".") if len(p) >= 12) and any(
                len(p) >= 12 for p in core.split(".")) and _machine_made_value(core):
            return start, start + len(core)  # pk.eyJ1Ijoi...: machine-made parts, not attribute names
        if any(c in core for c in ".([") or (plain.isalpha() and not _random_letters(core)):
            return None
    return start, start + len(core)


class _Scan:
    """State of one rule's pass over a text, for picks that need more than their match.

    ``inside_string`` counts quote characters on the current line incrementally (matches arrive left
    to right), so a long minified line costs linear time, not quadratic.
    """

    def __init__(self, text: str):
        self.text = text
        self._pos = 0  # counted up to here
        self._counts = {'"': 0, "'": 0, "`": 0}

    def inside_string(self, pos: int, quote: str) -> bool:
        """Whether ``pos`` is inside a ``quote``-delimited string on its line (an odd count before it)."""
        text = self.text
        if pos < self._pos:  # not expected within a pass; recount this line
            self._pos, self._counts = text.rfind("\n", 0, pos) + 1, dict.fromkeys(self._counts, 0)
        nl = text.rfind("\n", self._pos, pos)
        if nl != -1:
            self._pos, self._counts = nl + 1, dict.fromkeys(self._counts, 0)
        segment = text[self._pos : pos]
        for q in self._counts:
            self._counts[q] += segment.count(q) - segment.count("\\" + q)
        self._pos = pos
        return self._counts[quote] % 2 == 1


# ---------------------------------------------------------------------------------------------------
# The rule table
# ---------------------------------------------------------------------------------------------------

Span = tuple[int, int, str]  # absolute (start, end, kind) of one secret in the text
Pick = Callable[[re.Match[str], str, _Scan], "Span | None"]


def _group(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """Default: the ``secret`` group, as is."""
    return m.start("secret"), m.end("secret"), kind


def _group_unless_placeholder(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    return None if _is_placeholder(m["secret"]) else _group(m, kind, scan)


def _group_if_machine_made(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    return _group(m, kind, scan) if _machine_made_value(unquote(m["secret"])) else None


_URL_REFERENCE = re.compile(r"\$\{[^}]*\}|\$\([^)]*\)|\$[A-Za-z_]+|\$[A-Z_][A-Z0-9_]*|%[A-Za-z_]\w*%")


def _pick_url_password(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """A URL's password: ``$pa55`` is a password; ``$PGPASSWORD``, ``$password``, ``${PW}`` are references."""
    secret = m["secret"]
    if secret.startswith("$"):
        return None if _URL_REFERENCE.fullmatch(secret) else _group(m, kind, scan)
    return _group_unless_placeholder(m, kind, scan)


_WS_ESC = re.compile(r"(?:\s|\\[rn])*$")
_B64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}")


def _pick_pem(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    body = m["secret"]
    body = body[: _WS_ESC.search(body).start()]  # keep the line break before END
    if not _B64_RUN.search(body):
        return None  # e.g. header and footer as two string constants in a PEM parser
    return m.start("secret"), m.start("secret") + len(body), kind


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\\")
_PEM_LINE = re.compile(r"[ \t]*(?:[A-Za-z0-9+/=]{8,}|(?:Proc-Type|DEK-Info|Version|Comment): [^\n]*)[ \t]*\r?")
_PEM_MAX = 16_384  # the most key text looked for above an END line without its BEGIN


def _pick_orphan_pem_end(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """An END line without its BEGIN (a cut-off excerpt): redact the key material right above it."""
    text, end = m.string, m.start()
    floor = max(0, end - _PEM_MAX)
    line_start = text.rfind("\n", floor, end) + 1 or floor
    head = text[line_start:end]
    k = len(head.rstrip())
    while k and head[k - 1] in _B64_CHARS:  # same-line material ("...AB==\n-----END" in a JSON string)
        k -= 1
    start = line_start + k
    if not head[:k].strip():  # nothing else on the END line: walk up over whole key lines
        start = line_start
        while start > floor:
            prev = max(text.rfind("\n", floor, start - 1) + 1, floor)
            if not _PEM_LINE.fullmatch(text, prev, start - 1):
                break
            start = prev
        while start < end and text[start] in " \t\r\n":
            start += 1
    stop = start + len(_WS_ESC.sub("", text[start:end]))
    if not _B64_RUN.search(text, start, stop):
        return None
    return start, stop, kind


def _pick_bearer(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    secret, text = m["secret"], m.string
    kind = "basic-auth" if m["scheme"].lower() == "basic" else "bearer-token"
    if _is_placeholder(secret):
        return None
    floor = max(0, m.start() - 300)
    line = text[text.rfind("\n", floor, m.start()) + 1 or floor : m.start()]
    word = secret.rstrip(".~-_+/=")
    if "authorization" in line.lower() and not (word.isalpha() and (word.islower() or not _random_letters(word))):
        return _group(m, kind, scan)  # a header: any token but a word of prose
    return _group(m, kind, scan) if _looks_random(secret) else None


_SKIPPED_SCHEMES = frozenset({"digest", "negotiate", "ntlm", "aws4-hmac-sha256", "hmac", "signature"})


def _pick_authorization(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """``Authorization: <scheme> <credential>`` (or no scheme): the credential, whatever the scheme."""
    secret, scheme = m["secret"], (m["scheme"] or "")
    if (scheme.lower() in _SKIPPED_SCHEMES or _is_placeholder(secret) or "=" in secret.rstrip("=")
            or re.fullmatch(r"[A-Za-z_\-]+=+", secret)):
        return None  # Digest/AWS4: key=value parameters; a reference; a placeholder
    if (m["pfx"] or "").lower().count("f") and "{" in secret:
        return None
    if not scheme and not (_looks_random(secret, 8) or (any(c.isdigit() for c in secret) and not _CODE.fullmatch(secret))):
        return None  # = self._auth_header, = build_header(...), "Proxy-Authorization" in a list of names
    if not scheme and ((re.fullmatch(r"[A-Za-z]+", secret) and not _random_letters(secret))
                       or re.match(r"[ \t]+[^\s\"'`]", m.string[m.end():m.end() + 2])):
        return None  # "Bearer " + token, "Api-Token <redacted:...>": a scheme alone, the credential is elsewhere
    if scheme and _CODE.fullmatch(secret) and not _looks_random(secret, 12):
        return None  # "Bearer token", "Bearer self.token"
    low = scheme.lower()
    kind = "basic-auth" if low == "basic" else "bearer-token" if low in ("bearer", "token") else "credential"
    return _group(m, kind, scan)


def _pick_curl_user(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    secret, user = m["secret"], m["user"]
    if _is_placeholder(secret) or (secret.isdigit() and user.isdigit()):
        return None  # docker run -u 1000:1000
    context = m.string[max(0, m.start() - 500) : m.start()].lower()
    return _group(m, kind, scan) if re.search(r"curl|wget|https?:", context) else None


_VALUE_GROUPS = (("dq", '"'), ("sq", "'"), ("bq", "`"), ("eq", '\\"'), ("esq", "\\'"))


def _opt(m: re.Match[str], group: str) -> str | None:
    """A group's value, or None when the pattern has no such group (or it did not take part)."""
    return m.group(group) if group in m.re.groupindex else None


def _value_span(m: re.Match[str], name: str) -> tuple[int, int] | None:
    """Span of the secret in a match with quoted (``dq``/``sq``/``bq``/``eq``/``esq``) or ``bare`` values."""
    for g, _ in _VALUE_GROUPS:
        value = _opt(m, g)
        if value is not None:
            prefix = (m["pfx"] or "").lower()
            if _is_placeholder(value, name) or "r" in prefix or ("f" in prefix and "{" in value):
                return None  # r"...": a pattern; f"...{x}": built from variables
            return m.start(g), m.end(g)
    bare = _opt(m, "bare")
    return None if bare is None else _bare_span(bare, m.start("bare"), name)


def _name_kind(name: str, value: str | None) -> str | None:
    """The kind for ``value`` under ``name``: any literal under a strict name, a machine-made one under a loose name."""
    kind = _kind_for(name)
    if kind is not None:
        return kind
    loose = _loose_kind(name)
    return loose if loose is not None and value is not None and _machine_made_value(value) else None


def _pick_assignment(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    name = m["name"]
    if (_kind_for(name) is None and _loose_kind(name) is None) or _norm_name(name).endswith("authorization"):
        return None  # not secret-looking; an Authorization value is the header rule's (it knows schemes)
    quote = next((q for g, q in _VALUE_GROUPS[:3] if m.group(g) is not None), None)
    if quote and scan.inside_string(m.start(), quote):
        return None  # print("Enter your password: " + x + "!"): the "value" is code between strings
    span = _value_span(m, name)
    if span is None or (quote and _CONTINUED.match(m.string, m.end())):
        return None  # "GoogleLogin Auth=" + self.auth, "Bearer %s" % token: a template, not a value
    kind = _name_kind(name, m.string[span[0] : span[1]])
    return (*span, kind) if kind else None


_OPTION_WORDS = re.compile(r"[a-z][a-z0-9]{0,7}(?:-[a-z0-9]{1,8})+")  # "scram-sha-256", "aes-128-gcm"
_CONTINUED = re.compile(r"[ \t]*(?:\+(?!=)|%(?!=)|\.(?:format|replace|join)\(|\*[ \t]*\w)")


def _pick_pair(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """``f("NAME", "value")``: a literal passed with a secret-looking name (not a word, not a phrase)."""
    if _kind_for(m["name"]) is None and _loose_kind(m["name"]) is None:
        return None
    span = _value_span(m, m["name"])
    if span is None:
        return None
    value = m.string[span[0] : span[1]]
    if any(c.isspace() for c in value) or (re.fullmatch(r"[A-Za-z_][A-Za-z_.\-]*", value)
                                          and not _random_letters(value)) or _OPTION_WORDS.fullmatch(value):
        return None  # _("password", "Enter your password"), {"password", "token"}, ('PASS', 'PAUSE')
    kind = _name_kind(m["name"], value)
    return (*span, kind) if kind else None


def _pick_flag(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    if (m["bare"] or "").startswith("-"):
        return None
    span = _value_span(m, m["name"])
    if span is None:
        return None
    kind = _name_kind(m["name"], m.string[span[0] : span[1]])
    return (*span, kind) if kind else None


def _pick_query(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    secret = m["secret"]
    if _is_placeholder(secret, m["name"]):
        return None
    kind = _kind_for(m["name"], query=True) or (_loose_kind(m["name"]) if _machine_made_value(unquote(secret))
                                                else None)
    return _group(m, kind, scan) if kind else None


def _pick_xml(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    value = m["secret"].strip()
    if _is_placeholder(value, m["name"]):
        return None
    kind = _name_kind(m["name"], value)
    return _group(m, kind, scan) if kind else None


def _pick_netrc(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    before = m.string[max(0, m.start() - 300) : m.start()]
    start, end = m.span("secret")
    if m["secret"][:1] in "\"'" and m["secret"][-1:] == m["secret"][:1] and end - start > 2:
        start, end = start + 1, end - 1  # password "quoted"
    if not re.search(r"\bmachine\s+\S", before) or _is_placeholder(m.string[start:end], "password"):
        return None
    return start, end, kind


def _pick_env_default(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    name = next(n for n in (m["n1"], m["n2"], m["n2b"]) if n)
    span = _value_span(m, name)
    if span is None:
        return None
    kind = _name_kind(name, m.string[span[0] : span[1]])
    return (*span, kind) if kind else None


_BLOCK_LINE = re.compile(r"[^\n]*")


def _pick_name_value(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """``name: X_TOKEN`` then ``value: ...`` (Kubernetes/ECS env lists, JSON ``{"name":..,"value":..}``)."""
    text, start = m.string, m.start()
    before = text[start - 1] if start else ""
    if (m["nk"] and before != m["nk"]) or (not m["nk"] and (before.isalnum() or before in "_$@.-")):
        return None  # "hostname: ...", a quote that does not open the key
    return _pick_flag(m, kind, scan)


def _pick_yaml_block(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    """``name: |`` (or ``>``) and the lines indented under it: the value is those lines."""
    text = m.string
    line_start = text.rfind("\n", 0, m.start()) + 1
    lead = text[line_start : m.start()]
    if not re.fullmatch(r"[ \t]*(?:-[ \t]+)?", lead):
        return None  # not a YAML key at the start of its line
    indent = len(lead.expandtabs()) - len(lead.expandtabs().lstrip())  # the content is indented deeper
    pos = m.end()
    start = stop = -1
    while pos < len(text):
        line = _BLOCK_LINE.match(text, pos).group()
        stripped = line.strip()
        if stripped and len(line) - len(line.lstrip()) <= indent:
            break
        if stripped:
            if start < 0:
                start = pos + len(line) - len(line.lstrip())
            stop = pos + len(line.rstrip())
        pos += len(line) + 1
    if start < 0:
        return None
    value = text[start:stop]
    if _is_placeholder(value, m["name"]):
        return None
    kind = _kind_for(m["name"]) or (_loose_kind(m["name"]) if _machine_made_value(value.replace("\n", "")) else None)
    return (start, stop, kind) if kind else None


# -- Kubernetes Secret manifests: every value under data:/stringData: ---------------------------------

_K8S_SECRET = re.compile(r"""^[ \t]*kind:[ \t]*["']?Secret["']?[ \t]*(?:\#.*)?\r?$""", re.MULTILINE)
_K8S_DATA = re.compile(r"""^(?P<ind>[ \t]*)(?:data|stringData):[ \t]*(?:\#.*)?\r?$""", re.MULTILINE)
_K8S_ITEM = re.compile(r"""(?P<ind>[ \t]+)["']?[\w.\-/]+["']?:[ \t]*(?P<q>["']?)(?P<value>[^\s"'#][^\n"']*?)(?P=q)[ \t]*\r?$""")
_K8S_JSON = re.compile(r""""kind"\s*:\s*"Secret"[\s\S]{0,2000}?"(?:data|stringData)"\s*:\s*\{(?P<body>[^{}]*)\}""")
_JSON_PAIR = re.compile(r""""[^"\\]*"\s*:\s*"(?P<value>[^"\\]+)\"""")


def _kubernetes_secrets(text: str, lower: str) -> list[Span]:
    """The values of a Kubernetes ``Secret``'s ``data``/``stringData`` (base64 or plain): all of them."""
    if "secret" not in lower or "data" not in lower:
        return []
    spans: list[Span] = []
    for doc_start, doc in _yaml_documents(text):
        if not _K8S_SECRET.search(doc):
            continue
        for header in _K8S_DATA.finditer(doc):
            indent = len(header["ind"].expandtabs())
            pos = header.end() + 1
            while pos < len(doc):
                line_end = doc.find("\n", pos)
                line_end = len(doc) if line_end == -1 else line_end
                line = doc[pos:line_end]
                if line.strip():
                    if len(line) - len(line.lstrip()) <= indent:
                        break
                    item = _K8S_ITEM.fullmatch(line)
                    if item and not _is_placeholder(item["value"]) and item["value"] not in "|>":
                        spans.append((doc_start + pos + item.start("value"), doc_start + pos + item.end("value"),
                                      "kubernetes-secret"))
                pos = line_end + 1
    if '"kind"' in text:
        for m in _K8S_JSON.finditer(text):
            for pair in _JSON_PAIR.finditer(m["body"]):
                if not _is_placeholder(pair["value"]):
                    base = m.start("body")
                    spans.append((base + pair.start("value"), base + pair.end("value"), "kubernetes-secret"))
    return spans


def _yaml_documents(text: str) -> Iterator[tuple[int, str]]:
    start = 0
    for m in re.finditer(r"^---[^\n]*$", text, re.MULTILINE):
        yield start, text[start : m.start()]
        start = m.end()
    yield start, text[start:]


@dataclass(frozen=True)
class _Rule:
    kind: str  # the marker kind ("" when the pick derives it from a key name)
    needles: tuple[str, ...]  # lower-case; the rule runs only when one occurs in the text
    pattern: re.Pattern[str]
    pick: Pick  # -> the span to replace, or None to leave the match alone
    not_after: re.Pattern[str] | None  # a match right after such a character is part of a longer word
    anchor: str | None  # see ``_anchored``: punctuation that, with letters and digits, makes up a word
    opener: str  # see ``_anchored``: characters a match may start with, right before the word
    also: str  # the rule runs only when this occurs in the text, too


def _rule(kind: str, needles: str, pattern: str, pick: Pick = _group, *, not_after: str | None = None,
          anchor: str | None = None, opener: str = "", also: str = "") -> _Rule:
    return _Rule(kind, tuple(needles.split()), re.compile(pattern, re.VERBOSE | re.MULTILINE), pick,
                 re.compile(not_after) if not_after else None, anchor, opener, also)


_NAME_CHARS = "_$@.-"  # the anchor of the rules whose match starts with a key name
_KEY_NEEDLES = "pass pw secret token key auth cred sig salt pat sess cookie bearer jwt private clientid client_id client-id"


_PEM_LABEL = r"(?:[A-Z0-9]+\ ){0,3}PRIVATE\ KEY(?:\ BLOCK)?"
# Key material: base64, headers, escaped newlines, string concatenation -- never "-----".
_PEM_BODY = r"""(?:[A-Za-z0-9+/=\s:,.\\"']|-(?!----))"""
_QUOTED = r"""(?P<pfx>[rRbBuUfF]{0,2})  # a quoted value: "...", '...' or `...` (one line), with a prefix
    (?:"(?P<dq>(?:[^"\\\n]|\\.)*+)"|'(?P<sq>(?:[^'\\\n]|\\.)*+)'|`(?P<bq>[^`\\\n]*+)`
      |\\"(?P<eq>(?:[^"\\\n]|\\[^"\n])*+)\\"|\\'(?P<esq>(?:[^'\\\n]|\\[^'\n])*+)\\')"""
_ASSIGN_OP = r"(?::{1,3}=|\?\?=|[?+.|&]?=(?![=>])|=>|===?|!==?|<<?-(?!-)|:(?!:))"
_NAME = r"(?:[A-Za-z_$@][\w$@.\-]{0,60}?)?" + _NAME_HINT + r"[\w.\-]*+"

# Order matters: private keys and vendor formats first; later rules skip text already replaced by a marker.
# Columns: kind, needles, pattern, pick (default: the ``secret`` group), options.
_PEM_RULES: tuple[_Rule, ...] = (
    # -- private keys (PEM; multi-line, also with \n escapes as in a JSON service-account file) ----
    _rule("private-key", "private", rf"""
        -----BEGIN\ {_PEM_LABEL}-----(?:\s|\\[rn])*+(?P<secret>{_PEM_BODY}*+)-----END\ {_PEM_LABEL}-----""",
          _pick_pem),
    _rule("private-key", "private", rf"""   # BEGIN without END: the excerpt was cut in the key
        -----BEGIN\ {_PEM_LABEL}-----(?:\s|\\[rn])*+(?P<secret>[A-Za-z0-9+/=]{_PEM_BODY}*+)""", _pick_pem),
    _rule("private-key", "private", rf"-----END\ {_PEM_LABEL}-----", _pick_orphan_pem_end),
    _rule("private-key", "putty-user-key-file", r"""   # PuTTY .ppk: the private lines and their MAC
        (?:^|(?<=\\n))Private-Lines:[ \t]*\d+[ \t]*(?:\r?\n|(?:\\r)?\\n)
        (?P<secret>[A-Za-z0-9+/=]+(?:(?:\r?\n|(?:\\r)?\\n)[A-Za-z0-9+/=]+(?![A-Za-z0-9+/=]*[-:]))*)"""),
    _rule("private-key", "putty-user-key-file", r"(?:^|(?<=\\n))Private-MAC:[ \t]*(?P<secret>[0-9a-fA-F]{16,})"),
)

_CONTEXT_RULES: tuple[_Rule | Callable[[str, str], list[Span]], ...] = (
    # -- AWS secret access key: 40 characters of base64, recognisable only by its name --------------
    _rule("aws-secret-key", "secret", r"""
        (?<![\w\-])\\?["']?(?i:aws[_\-.]?secret(?:[_\-.]?access)?[_\-.]?key|secret[_\-.]?access[_\-.]?key)\\?["']?
        [ \t]*(?::{1,3}=|[?+.]?=|=>|:|,)[ \t]*\\?["'`]?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])""",
          anchor=_NAME_CHARS, opener="\"'\\"),
    # -- Kubernetes Secret manifests ----------------------------------------------------------------
    _kubernetes_secrets,
    # -- credentials inside URLs and connection strings ----------------------------------------------
    _rule("password", "://", r"""   # scheme://user:PASSWORD@host -- scheme, user and host are kept
        (?<![\w+.\-])[A-Za-z][\w+.\-]{0,30}://[^\s:/?\#@"'<>`]*:(?P<secret>[^\s/?\#@"'<>`]+)@""",
          _pick_url_password, anchor="_+.-"),
    _rule("password", "jdbc:oracle", r"jdbc:oracle:[a-z]+:[\w$\#]+/(?P<secret>[^@\s\"'/]+)@",
          _group_unless_placeholder),
    _rule("", _KEY_NEEDLES, r"""   # ?password=, &api_key=, Password=...; (ADO.NET)
        (?:(?<=[?&;])|(?<=[?&;][ \t]))(?P<name>(?:[\w.\-]{0,40}?)?""" + _NAME_HINT + r"""[\w.\-]*+)[ \t]*=
        (?P<secret>[^&;\#\s"'<>`]+)""", _pick_query, anchor=_NAME_CHARS, also="="),
    _rule("token", "code=", r"(?<=[?&])code=(?P<secret>[A-Za-z0-9_\-%.~+/=]{20,})", _group_if_machine_made),
    # -- HTTP authorization --------------------------------------------------------------------------
    _rule("", "authorization", r"""   # Authorization: <any scheme> <credential>, in a header, a dict, a call
        (?<![\w\-])(?i:(?:proxy-)?authorization)\\?["']?\]?[ \t]*(?:=>|:=|[:=,])[ \t]*
        (?:(?P<pfx>[rRbBuUfF]{0,2})\\?["'`])?[ \t]*
        (?:(?P<scheme>[A-Za-z][\w.\-]{0,30})[ \t]+)?(?P<secret>[^\s"'`<>\\,;)]{8,})""",
          _pick_authorization, anchor="-"),
    _rule("bearer-token", "bearer basic token", r"""
        (?<![\w\-])(?P<scheme>(?i:bearer|basic)|[Tt]oken)[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)(?![\w\-.~+/=])""",
          _pick_bearer, anchor=_NAME_CHARS),
    _rule("password", "-u --user", r"""   # curl -u user:password
        (?<![\w\-])(?:-u|--user)[ \t]+(?P<q>["']?)(?P<user>[^\s:"'@]+):(?P<secret>[^\s"']+)(?P=q)""",
          _pick_curl_user, anchor=_NAME_CHARS),
    _rule("password", "password", r"""   # .netrc: machine HOST login USER password SECRET
        (?<![\w\-])password[ \t]+(?P<secret>[^\s]+?)["'`]?(?=\s|$)""", _pick_netrc, anchor=_NAME_CHARS, also="login"),
    # -- command-line flags: --password=..., --api-key "..." -----------------------------------------
    _rule("", _KEY_NEEDLES, r"""
        (?<![\w\-])--(?P<name>(?:[A-Za-z][\w\-]{0,40}?)?""" + _NAME_HINT + r"""[\w\-]*+)
        (?:=|[ \t]+)(?:""" + _QUOTED + r"""|(?P<bare>[^\s"'`;|&]+))""", _pick_flag, anchor=_NAME_CHARS, also="--"),
    # -- XML: <password>...</password> (also across lines), <add key="ApiKey" value="..." /> ---------
    _rule("", "</", r"""
        <(?P<name>(?:[\w.\-:]{0,40}?)?""" + _NAME_HINT + r"""[\w.\-]*+)>[ \t]*\r?\n?[ \t]*
        (?P<secret>[^<\s](?:[^<\n]*[^<\s])?)[ \t]*\r?\n?[ \t]*</(?P=name)>""", _pick_xml),
    _rule("", "value", r"""
        <[\w:.\-]+[ \t][^<>]*?\b(?:key|name)[ \t]*=[ \t]*(?P<nq>["'])(?P<name>[^"'<>]{1,80})(?P=nq)
        [^<>]*?\bvalue[ \t]*=[ \t]*(?:"(?P<dq>[^"<>]*)"|'(?P<sq>[^'<>]*)')(?P<pfx>)""", _pick_pair),
    # -- YAML: name: | (block scalar); - name: X_TOKEN / value: ...; JSON {"name": ..., "value": ...} --
    _rule("", _KEY_NEEDLES, r"""
        (?<![\w$@.\-])(?P<nq>["']?)(?P<name>""" + _NAME + r""")(?P=nq):[ \t]*[|>][-+0-9]*[ \t]*(?:\#[^\n]*)?$""",
          _pick_yaml_block, anchor=_NAME_CHARS, opener="\"'", also=":"),
    _rule("", "value", r"""
        (?:name|key)(?P<nk>["']?)[ \t]*[:=][ \t]*(?P<q>["']?)(?P<name>[A-Za-z_][\w.\-]*)(?P=q)[ \t]*
        (?:,[ \t]*|\r?\n[ \t]*(?:-[ \t]+)?)(?P<vk>["']?)value(?P=vk)[ \t]*[:=][ \t]*
        (?:""" + _QUOTED + r"""|(?P<bare>[^\s"'`,}]+))""", _pick_name_value),
    # -- calls and pairs: setProperty("X_TOKEN", "..."), GetEnvOrDefault("api_token", "..."), ["k", "v"]
    _rule("", _KEY_NEEDLES, r"""
        (?:(?<=[(\[{,])|(?<=[(\[{,][ \t])|^)(?P<nq>["'])(?P<name>""" + _NAME + r""")(?P=nq)[ \t]*,[ \t]*
        (?:""" + _QUOTED + r""")""", _pick_pair, anchor=_NAME_CHARS, opener="\"'", also=","),
    _rule("", "process.env environ getenv env[ env.fetch", r"""   # process.env.X || "...", os.getenv("X") or "..."
        (?<![\w.])(?:process\.env\.(?P<n1>\w+)|(?:process\.env|ENV|os\.environ)\[["'](?P<n2>[\w.\-]+)["']\]
          |(?:os\.environ\.get|os\.getenv|getenv|System\.getenv|ENV\.fetch)\(["'](?P<n2b>[\w.\-]+)["']\))
        [ \t]*(?:\|\||\?\?|\bor\b|\?:)[ \t]*(?:""" + _QUOTED + r""")""", _pick_env_default,
          anchor=_NAME_CHARS),
    _rule("", "define", r"""   # C: #define API_TOKEN "..."
        ^[ \t]*\#[ \t]*define[ \t]+(?P<name>\w+)[ \t]+(?:""" + _QUOTED + r"""|(?P<bare>[^\s"'`]+)[ \t]*\r?$)""",
          _pick_flag),
    _rule("", _KEY_NEEDLES, r"""   # CSV: name,value,
        ^(?P<name>""" + _NAME + r"""),(?P<bare>[^,\s"'`]+)(?=,|\r?$)""", _pick_flag, anchor=_NAME_CHARS, also=","),
    # -- assignments and keys: x = "...", x: "...", "x": "...", X=..., export X=..., x := "..." ------
    _rule("", _KEY_NEEDLES, r"""
        (?<![\w$@.\-])(?P<nq>\\?["']?)
        (?P<name>""" + _NAME + r""")
        (?P=nq)\]?\??
        (?:[ \t]*:[ \t]*[A-Za-z_&][\w.\[\],|\ &<>']{0,80}?(?=[ \t]*=[^=>]))?   # a type annotation
        (?:[ \t]+[A-Za-z_&\[\]*][\w.\[\]*&']{0,30}(?=[ \t]*=[^=>]))?         # Go: var x string = ...
        [ \t]*""" + _ASSIGN_OP + r"""[ \t]*
        (?:""" + _QUOTED + r"""
          | (?P<bare>[^\s"'`,;]+)(?=[ \t]*(?:\r?$|[,;"'`]|\#|//))
        )""", _pick_assignment, anchor=_NAME_CHARS, opener="\"'\\"),
)
_RULES: tuple[_Rule, ...] = _PEM_RULES + tuple(r for r in _CONTEXT_RULES if isinstance(r, _Rule))

KINDS: tuple[str, ...] = tuple(sorted({r.kind for r in _RULES if r.kind} | FORMAT_KINDS | {
    "password", "token", "secret", "api-key", "access-key", "private-key", "credential", "basic-auth",
    "bearer-token", "kubernetes-secret",
}))


_ANCHOR_REACH = 64  # the longest word prefix before a needle that an anchored rule looks back over


def _anchor_words(rule: _Rule, text: str, lower: str, cache: dict) -> list[tuple[int, int]]:
    """``(start, end)`` of each word that contains one of ``rule``'s needles, in order.

    A word is a run of letters, digits and the rule's ``anchor`` punctuation, reaching back at most
    ``_ANCHOR_REACH`` characters before the needle. Rules with the same needles and punctuation share
    the list (``cache`` holds it for one version of the text).
    """
    if cache.get("lower") is not lower:
        cache.clear()
        cache["lower"] = lower
    key = (rule.needles, rule.anchor)
    words = cache.get(key)
    if words is not None:
        return words
    punctuation = rule.anchor or ""
    word = _word_pattern(punctuation)
    hits: set[int] = set()
    for needle in rule.needles:
        i = lower.find(needle)
        while i != -1:
            hits.add(i)
            i = lower.find(needle, i + 1)
    words = []
    word_end = 0
    for hit in sorted(hits):
        if hit < word_end:
            continue  # in a word already listed
        start, floor = hit, max(0, hit - _ANCHOR_REACH)
        while start > floor and (text[start - 1].isalnum() or text[start - 1] in punctuation):
            start -= 1
        word_end = word.match(text, hit).end()
        words.append((start, word_end))
    cache[key] = words
    return words


def _anchored(rule: _Rule, text: str, lower: str, cache: dict) -> Iterator[re.Match[str]]:
    """``rule.pattern.finditer(text)``, found faster: via the needles.

    For rules whose match must start at the beginning of a word that contains a needle (a key name,
    a URL scheme, a flag), or at an ``opener`` (a quote, maybe escaped) right before it: ``str.find``
    locates the needles (``_anchor_words``), and the pattern is tried only at those word starts. The
    patterns' leading lookbehinds forbid starting mid-word, so nothing that ``finditer`` would find is
    missed.
    """
    assert rule.anchor is not None
    done = 0  # end of the last match
    opener, pattern = rule.opener, rule.pattern
    for start, word_end in _anchor_words(rule, text, lower, cache):
        if word_end <= done:
            continue  # inside a match already found
        m = None
        if start > done and text[start - 1] in opener:
            if start > done + 1 and text[start - 2] == "\\" and "\\" in opener:
                m = pattern.match(text, start - 2)  # \"name\": in an escaped JSON string
            if m is None:
                m = pattern.match(text, start - 1)
        if m is None and start >= done:
            m = pattern.match(text, start)
        if m is not None:
            done = m.end()
            yield m


@cache
def _word_pattern(punctuation: str) -> re.Pattern[str]:
    """A run of word characters and ``punctuation`` (the extent of an anchored rule's word)."""
    return re.compile(rf"[\w{re.escape(punctuation)}]*+")


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _lower(text: str) -> str:
    """``text.lower()`` with the same length (so positions agree), which ``str.lower`` may not keep."""
    lower = text.lower()
    return lower if len(lower) == len(text) else text.translate(_ASCII_LOWER)


def _rule_spans(rule: _Rule, text: str, lower: str, cache: dict) -> list[Span]:
    if not any(n in lower for n in rule.needles) or rule.also not in lower:
        return []
    spans: list[Span] = []
    scan = _Scan(text)
    not_after = rule.not_after
    matches = rule.pattern.finditer(text) if rule.anchor is None else _anchored(rule, text, lower, cache)
    for m in matches:
        if not_after is not None and m.start() and not_after.match(text, m.start() - 1):
            continue
        picked = rule.pick(m, rule.kind, scan)
        if picked is not None:
            spans.append(picked)
    return spans


Pass = Callable[[str, str, dict], list[Span]]  # (text, its lower case, a cache) -> spans to replace


def _rule_pass(rule: _Rule) -> Pass:
    return lambda text, lower, cache: _rule_spans(rule, text, lower, cache)


def _function_pass(find: Callable[[str, str], list[Span]]) -> Pass:
    return lambda text, lower, cache: find(text, lower)


# The passes, in stages. The text is rewritten after each stage; within a stage all passes see the same
# text, and where their spans overlap the earlier pass wins (then the earlier, then the longer span).
_STAGES: tuple[tuple[Pass, ...], ...] = (
    *((_rule_pass(rule),) for rule in _PEM_RULES),  # private keys: one by one
    (_function_pass(find_tokens),),  # vendor formats
    tuple(_rule_pass(r) if isinstance(r, _Rule) else _function_pass(r) for r in _CONTEXT_RULES),  # context
)


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Replace the secrets in ``text`` with ``<redacted:KIND>`` markers; returns the text and counts per kind."""
    counts: dict[str, int] = {}
    lower = _lower(text)
    cache: dict = {}
    for stage in _STAGES:
        spans = [(start, end, kind, rank) for rank, find in enumerate(stage) for start, end, kind in find(text, lower, cache)]
        if spans:
            text = _replace(text, spans, counts)
            lower = _lower(text)
    return text, counts


def _replace(text: str, spans: list[tuple[int, int, str, int]], counts: dict[str, int]) -> str:
    """Replace spans by their markers. Of overlapping spans, the one of the earlier pass (lower rank) wins,
    then the earlier one, then the longer one."""
    kept: list[tuple[int, int, str]] = []  # sorted by start, none overlapping
    starts: list[int] = []
    for start, end, kind, _ in sorted(spans, key=lambda s: (s[3], s[0], -s[1])):
        if end <= start:
            continue
        i = bisect.bisect_right(starts, start)
        if (i and kept[i - 1][1] > start) or (i < len(kept) and kept[i][0] < end):
            continue  # overlaps a span already kept
        kept.insert(i, (start, end, kind))
        starts.insert(i, start)
    out: list[str] = []
    pos = 0
    for start, end, kind in kept:
        out.append(text[pos:start])
        out.append(marker(kind))
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    out.append(text[pos:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# neverSendToCloud globs
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Glob:
    """One gitignore-like pattern, compiled."""

    regex: re.Pattern[str]
    anchored: bool  # contains a "/": matched against the path from the root (else: any path component)
    dir_only: bool  # ended in "/": matches directories only (so: the files inside them)
    negated: bool  # started with "!": un-blocks what an earlier pattern blocked


def _glob_regex(pattern: str) -> str:
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # any depth, including none
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (j := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : j]
            if body[0] in "!^":
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _compile_glob(pattern: str) -> _Glob | None:
    p = pattern.strip().replace("\\", "/")
    if not p or p.startswith("#"):
        return None
    negated = p.startswith("!")
    p = p[1:] if negated else p
    dir_only = p.endswith("/")
    p = p.rstrip("/")
    anchored = "/" in p
    p = p.lstrip("/")
    if not p:
        return None
    return _Glob(re.compile(_glob_regex(p.casefold()), re.DOTALL), anchored, dir_only, negated)


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
_DRIVE = re.compile(r"^/?([A-Za-z]:)(?=/|$)")


def _split_path(uri_or_path: str) -> tuple[list[str], bool]:
    """``(components, absolute)`` of a file:// URI or a plain (POSIX or Windows) path, case-folded."""
    s = uri_or_path.strip()
    if _URI.match(s) and not re.match(r"^[A-Za-z]:[\\/]", s):
        parts = urlsplit(s)
        path = unquote(parts.path)
        if parts.scheme == "file" and parts.netloc and parts.netloc.lower() != "localhost":
            path = f"//{parts.netloc}{path}"  # UNC: file://server/share/x
    else:
        path = s
    path = path.replace("\\", "/")
    drive = ""
    if m := _DRIVE.match(path):
        drive, path = m.group(1), path[m.end():] or "/"
    absolute = bool(drive) or path.startswith("/")
    path = posixpath.normpath(path) if path else "."
    comps = [c for c in path.split("/") if c and c != "."]
    if drive:
        comps.insert(0, drive)
    return [c.casefold() for c in comps], absolute


class PrivacyGate:
    """Applies ``privacy.neverSendToCloud`` and ``privacy.redactSecrets`` to text bound for the cloud.

    Counters since creation, for ``tandem.stats``: ``redactions`` (per kind) and ``blocked_files``.
    Only counts are logged, never a secret.

    Glob rules (gitignore-like, case-insensitive, later patterns win, ``!pat`` un-blocks):
    a pattern without ``/`` (``.env``, ``.env.*``) matches a file or directory name anywhere;
    a pattern with ``/`` is matched from the workspace root; ``**/`` is any depth including none,
    ``/**`` everything inside, ``*``/``?``/``[...]`` stay within one component; a trailing ``/``
    matches directories only; a matched directory blocks everything inside it. A file outside the
    workspace (or without a workspace root) is matched as if any of its parent directories were the
    root — more blocking, never less. Backslashes are path separators, in paths and patterns.
    """

    def __init__(self, settings: PrivacySettings, workspace_root: str | None = None):
        self.settings = settings
        self._root: list[str] | None = None
        if workspace_root:
            comps, absolute = _split_path(workspace_root)
            self._root = comps if absolute else None
        self._globs = [g for g in map(_compile_glob, settings.never_send_to_cloud) if g]
        self.redactions: dict[str, int] = {}
        self.blocked_files = 0

    # -- files ---------------------------------------------------------------------------------------
    def blocked(self, uri_or_path: str) -> bool:
        """Whether the file matches ``never_send_to_cloud`` (its content must not leave the machine)."""
        comps, absolute = _split_path(uri_or_path)
        anchored = True
        if absolute:
            root = self._root
            if root is not None and len(comps) > len(root) and comps[: len(root)] == root:
                comps = comps[len(root):]
            else:
                anchored = False
        elif comps and comps[0] == "..":
            comps, anchored = [c for c in comps if c != ".."], False
        if not comps:
            return False
        verdict = False
        for glob in self._globs:
            if glob.negated == verdict and self._matches(glob, comps, anchored):
                verdict = not glob.negated
        return verdict

    @staticmethod
    def _matches(glob: _Glob, comps: list[str], anchored: bool) -> bool:
        last = len(comps) if not glob.dir_only else len(comps) - 1  # the file itself is no directory
        if not glob.anchored:
            return any(glob.regex.fullmatch(c) for c in comps[:last])
        starts = range(1) if anchored else range(len(comps))
        return any(
            glob.regex.fullmatch("/".join(comps[i:j]))
            for i in starts
            for j in range(i + 1, last + 1)
        )

    # -- text ----------------------------------------------------------------------------------------
    def filter(self, uri_or_path: str, text: str) -> str | None:
        """The text to send for this file: None when it is blocked, else redacted (if enabled)."""
        if self.blocked(uri_or_path):
            self.blocked_files += 1
            log.info("privacy: %s matches privacy.neverSendToCloud; its content is not sent",
                     _display(uri_or_path))
            return None
        return self._redact(text, _display(uri_or_path))

    def scrub(self, text: str) -> str:
        """Redaction only (if enabled), for free text: a pasted failure, a traceback, a prompt."""
        return self._redact(text, "free text")

    def stats(self) -> dict[str, object]:
        """The counters as a JSON-able dict for ``tandem.stats``."""
        return {
            "redactions": dict(sorted(self.redactions.items())),
            "redactedTotal": sum(self.redactions.values()),
            "blockedFiles": self.blocked_files,
        }

    def _redact(self, text: str, where: str) -> str:
        if not self.settings.redact_secrets or not text:
            return text
        new, counts = redact(text)
        for kind, n in counts.items():
            self.redactions[kind] = self.redactions.get(kind, 0) + n
        total = sum(counts.values())
        if total:
            detail = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))
            log.info("privacy: redacted %d secret(s) in %s (%s)", total, where, detail)
        else:
            log.debug("privacy: no secrets in %s", where)
        return new


def _display(uri_or_path: str) -> str:
    """A short form of a file's path for a log line (a path is not a secret, but keep lines short)."""
    s = uri_or_path
    if _URI.match(s) and not re.match(r"^[A-Za-z]:[\\/]", s):
        s = unquote(urlsplit(s).path)
    s = s.replace("\\", "/").rstrip("/")
    return "/".join(s.split("/")[-3:]) or uri_or_path

"""The privacy gate: every byte bound for the cloud passes through here first.

Two settings (CONTRACT.md, "Settings") drive it:

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

All patterns live in one table, ``_RULES`` (below), applied in order: provider formats first (their
kinds are the most specific), then structural forms (URLs, headers, flags), then the generic
"secret-looking name = literal" rule. A later rule never touches an earlier marker.

What is deliberately *not* redacted (false-positive policy):

* values that are not literals: ``None``/``null``/``true``..., calls and attribute or index
  expressions (``get_token()``, ``os.environ["SECRET_KEY"]``, ``process.env.API_KEY``), and, when
  unquoted, a bare word of letters/underscores (``password: str``, ``password=pw``, ``auth: none``) —
  it reads as a variable, a type or an option; an unquoted value with a digit or a symbol
  (``password: hunter2``) is a literal and is redacted;
* references and templates: ``$VAR``, ``${VAR}``, ``$(cmd)``, ``%VAR%``, ``{{ var }}``, ``{name}``,
  f-strings with ``{``, ``%s``/``%(name)s``, ``<your-token>``, ``<|endoftext|>``, ``[PAD]``, and
  environment-variable names (``"OPENAI_API_KEY"``);
* empty strings, masks (``"***"``, ``"xxxx"``), escape-only strings (``"\\n"``), colours (``"#f8f8f2"``),
  a bare auth scheme (``auth = "Basic " + encoded``), values with a ``<slot>`` (``"Bearer <token>"``),
  raw strings (``r"[a-z]+"``, patterns), unquoted small numbers, and a value equal to its own key
  (``PASSWORD = "password"``, a field name);
* names that merely mention a keyword: a key must *end* with it (``db_password``, ``apiKey``,
  ``client_secret``, ``SECRET_KEY``), so ``token_url``, ``max_tokens``, ``password_hash``,
  ``tokenizer`` are left alone; words in prose are never names followed by a literal.

Placeholder *literals* such as ``"changeme"`` or ``"password123"`` are redacted: a weak real password
looks exactly like a placeholder, and hiding a placeholder costs nothing.

Speed: each rule runs only when one of its needles occurs in the text, and the rules that start at a
key name are tried only at the words around their needles (``_anchored``), so ordinary code costs about
0.1 s per MB; no pattern can backtrack quadratically (bounded or possessive repeats; PEM bodies never
cross ``-----``).

Secret values are never logged; only counts per kind.
"""

from __future__ import annotations

import logging
import posixpath
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from urllib.parse import unquote, urlsplit

from tandem_lsp.config import PrivacySettings

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
# trailing digits allowed) is one of these, optionally followed by a harmless suffix.
_KEYWORD = (
    r"pass(?:word|wd|phrase)?|pwd|pw|secret|token|api_?key|access_?key|private_?key"
    r"|(?:signing|encryption|master|app|client|account|session|webhook|license|shared|storage)_key"
    r"|auth|authorization|credentials?|creds"
)
_SUFFIX = r"(?:_(?:key|value|val|str|string|b64|base64|hex|bytes))?_?\d*"
_NAME_OK = re.compile(rf"(?:^|_)(?P<kw>{_KEYWORD}){_SUFFIX}$")
# URL query strings and connection strings also carry keys and signatures (``?key=``, ``&sig=``).
_QUERY_NAME_OK = re.compile(rf"(?:^|_)(?P<kw>{_KEYWORD}|key|sig|signature){_SUFFIX}$")
# Cheap prefilter for the regexes: a candidate name contains one of these (case-insensitively).
_NAME_HINT = r"(?i:pass|pw|secret|token|key|auth|cred|sig)"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


@lru_cache(maxsize=4096)
def _norm_name(name: str) -> str:
    """``dbPassword`` / ``DB-PASSWORD`` / ``db.password`` -> ``db_password``."""
    return _NON_ALNUM.sub("_", _CAMEL.sub("_", name)).strip("_").lower()


@lru_cache(maxsize=4096)
def _kind_for(name: str, query: bool = False) -> str | None:
    """The marker kind for a secret stored under ``name``, or None when the name is not secret-looking."""
    m = (_QUERY_NAME_OK if query else _NAME_OK).search(_norm_name(name))
    if not m:
        return None
    kw = m["kw"]
    if kw.startswith("pass") or kw in ("pwd", "pw"):
        return "password"
    if kw.startswith("private"):
        return "private-key"
    if kw.startswith("api") or kw == "key":
        return "api-key"
    if kw.startswith("access"):
        return "access-key"
    if kw == "token":
        return "token"
    if kw.startswith(("auth", "cred")):
        return "credential"
    return "secret"


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
    | (?:\\[nrt0]|\s)*                                # nothing but whitespace/escapes
    """,
    re.VERBOSE,
)
_LITERALS = frozenset({
    "None", "null", "NULL", "Null", "nil", "true", "false", "True", "False", "TRUE", "FALSE", "undefined",
    "none", "~", "NaN",
})
# An identifier, a dotted path, or a call/index expression: code, not a literal (bare values only).
_CODE = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?:[(\[].*)?")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_SMALL_NUMBER = re.compile(r"-?\d{1,5}(?:\.\d+)?")


_TEMPLATE_SLOT = re.compile(r"<[\w .|\-]+>")  # "Bearer <token>", "Basic <user>:<password>"


def _is_placeholder(value: str, name: str = "") -> bool:
    """True for values that are not secrets: empty, references, templates, masks, the key's own name."""
    if not value or _MARKER_PREFIX in value or "${" in value or "{{" in value or _TEMPLATE_SLOT.search(value):
        return True
    if value in _LITERALS or _REFERENCE.fullmatch(value):
        return True
    return bool(name) and len(value) <= 64 and _squash(value) in _own_names(name)


@lru_cache(maxsize=4096)
def _own_names(name: str) -> tuple[str, str]:
    """A key's name and its last component, squashed: a value equal to one is a field name, not a secret."""
    return _squash(name), _squash(_norm_name(name).rsplit("_", 1)[-1])


def _random_letters(s: str) -> bool:
    """A long letters-only run whose case looks random (not camelCase/words)."""
    if len(s) < 16 or not s.isalpha():
        return False
    upper = sum(c.isupper() for c in s) / len(s)
    return 0.25 <= upper <= 0.75


def _looks_random(s: str, min_len: int = 16) -> bool:
    """A token that looks machine-generated: long, with letters and digits and varied characters."""
    return (
        len(s) >= min_len
        and any(c.isdigit() for c in s)
        and any(c.isalpha() for c in s)
        and len(set(s)) >= min(10, len(s) // 2)
    ) or _random_letters(s)


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
    if _CODE.fullmatch(core):
        plain = core.replace("_", "").replace("$", "")
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


def _pick_openai(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    if m["proj"] or _looks_random(m["body"].replace("-", "").replace("_", ""), 20):
        return _group(m, kind, scan)
    return None  # "sk-learn-compatible-estimator"


def _pick_bearer(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    secret, text = m["secret"], m.string
    kind = "basic-auth" if m["scheme"].lower() == "basic" else "bearer-token"
    if _is_placeholder(secret):
        return None
    floor = max(0, m.start() - 300)
    line = text[text.rfind("\n", floor, m.start()) + 1 or floor : m.start()]
    if "authorization" in line.lower() and not (secret.isalpha() and secret.islower()):
        return _group(m, kind, scan)  # a header: any token but a word of prose
    return _group(m, kind, scan) if _looks_random(secret) else None


def _pick_curl_user(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    secret, user = m["secret"], m["user"]
    if _is_placeholder(secret) or (secret.isdigit() and user.isdigit()):
        return None  # docker run -u 1000:1000
    context = m.string[max(0, m.start() - 500) : m.start()].lower()
    return _group(m, kind, scan) if re.search(r"curl|wget|https?:", context) else None


def _value_span(m: re.Match[str], name: str) -> tuple[int, int] | None:
    """Span of the secret in a match with ``dq``/``sq``/``bq`` (quoted) or ``bare`` value groups."""
    for g in ("dq", "sq", "bq"):
        value = m[g]
        if value is not None:
            prefix = (m["pfx"] or "").lower()
            if _is_placeholder(value, name) or "r" in prefix or ("f" in prefix and "{" in value):
                return None  # r"...": a pattern; f"...{x}": built from variables
            return m.start(g), m.end(g)
    return _bare_span(m["bare"], m.start("bare"), name)


def _pick_assignment(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    name = m["name"]
    kind = _kind_for(name)
    if kind is None:
        return None
    quote = next((q for g, q in (("dq", '"'), ("sq", "'"), ("bq", "`")) if m[g] is not None), None)
    if quote and scan.inside_string(m.start(), quote):
        return None  # print("Enter your password: " + x + "!"): the "value" is code between strings
    span = _value_span(m, name)
    return (*span, kind) if span else None


def _pick_flag(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    kind = _kind_for(m["name"])
    if kind is None or (m["bare"] or "").startswith("-"):
        return None
    span = _value_span(m, m["name"])
    return (*span, kind) if span else None


def _pick_query(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    kind = _kind_for(m["name"], query=True)
    if kind is None or _is_placeholder(m["secret"], m["name"]):
        return None
    return _group(m, kind, scan)


def _pick_xml(m: re.Match[str], kind: str, scan: _Scan) -> Span | None:
    kind = _kind_for(m["name"])
    if kind is None or _is_placeholder(m["secret"].strip(), m["name"]):
        return None
    return _group(m, kind, scan)


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
_KEY_NEEDLES = "pass pw secret token key auth cred"  # what a secret-looking key name contains


_PEM_LABEL = r"(?:[A-Z0-9]+\ ){0,3}PRIVATE\ KEY(?:\ BLOCK)?"
# Key material: base64, headers, escaped newlines, string concatenation -- never "-----".
_PEM_BODY = r"""(?:[A-Za-z0-9+/=\s:,.\\"']|-(?!----))"""
_QUOTED = r"""(?P<pfx>[rRbBuUfF]{0,2})  # a quoted value: "...", '...' or `...` (one line), with a prefix
    (?:"(?P<dq>(?:[^"\\\n]|\\.)*+)"|'(?P<sq>(?:[^'\\\n]|\\.)*+)'|`(?P<bq>[^`\\\n]*+)`)"""
_W = r"[\w-]"  # for not_after: a token right after a word character or a dash is part of something else

# Order matters: specific formats first; later rules skip text already replaced by a marker.
# Columns: kind, needles, pattern, pick (default: the ``secret`` group), options.
_RULES: tuple[_Rule, ...] = (
    # -- private keys (PEM; multi-line, also with \n escapes as in a JSON service-account file) ----
    _rule("private-key", "private", rf"""
        -----BEGIN\ {_PEM_LABEL}-----(?:\s|\\[rn])*+(?P<secret>{_PEM_BODY}*+)-----END\ {_PEM_LABEL}-----""",
          _pick_pem),
    _rule("private-key", "private", rf"""   # BEGIN without END: the excerpt was cut in the key
        -----BEGIN\ {_PEM_LABEL}-----(?:\s|\\[rn])*+(?P<secret>[A-Za-z0-9+/=]{_PEM_BODY}*+)""", _pick_pem),
    _rule("private-key", "private", rf"-----END\ {_PEM_LABEL}-----", _pick_orphan_pem_end),
    # -- provider tokens (the whole token is replaced) -----------------------------------------------
    _rule("anthropic-key", "sk-ant-", r"(?P<secret>sk-ant-[A-Za-z0-9_\-]{20,})", not_after=_W),
    _rule("openai-key", "sk-", r"(?P<secret>sk-(?P<proj>proj-|svcacct-|admin-)?(?P<body>[A-Za-z0-9_\-]{20,}))",
          _pick_openai, not_after=_W),
    _rule("github-token", "gh github_pat_", r"""
        (?P<secret>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])""",
          not_after=r"[A-Za-z0-9_]"),
    _rule("gitlab-token", "gl", r"(?P<secret>gl(?:pat|dt|rt|ptt|ft|soat)-[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-]+)*)",
          not_after=_W),
    _rule("slack-token", "xox xapp-", r"(?P<secret>(?:xox[abeprs]|xapp)-[A-Za-z0-9\-]{10,})", not_after=_W),
    _rule("slack-webhook", "hooks.slack.com", r"""
        hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/\-]{8,})"""),
    _rule("discord-webhook", "discord", r"""
        discord(?:app)?\.com/api/webhooks/(?P<secret>\d+/[A-Za-z0-9_\-]{20,})"""),
    _rule("stripe-key", "_live_ _test_ whsec_", r"""
        (?P<secret>(?:(?:sk|rk)_(?:live|test)|pk_live|whsec)_[A-Za-z0-9]{10,})""", anchor="_"),
    _rule("google-api-key", "aiza", r"(?P<secret>AIza[0-9A-Za-z_\-]{35})(?![\w-])", not_after=_W),
    _rule("aws-access-key", "akia asia abia acca", r"(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?![A-Za-z0-9])",
          not_after=r"[A-Za-z0-9]"),
    _rule("npm-token", "npm_", r"(?P<secret>npm_[A-Za-z0-9]{36})(?!\w)", not_after=r"\w"),
    _rule("pypi-token", "pypi-", r"(?P<secret>pypi-AgE[A-Za-z0-9_\-]{50,})", not_after=_W),
    _rule("sendgrid-key", "sg.", r"(?P<secret>SG\.[\w\-]{22}\.[\w\-]{43})(?![\w-])", not_after=r"[\w.]"),
    _rule("huggingface-token", "hf_", r"(?P<secret>hf_[A-Za-z]{34})(?!\w)", not_after=r"\w"),
    _rule("shopify-token", "shp", r"(?P<secret>shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})(?!\w)", not_after=r"\w"),
    _rule("jwt", "eyj", r"(?P<secret>eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*)", not_after=_W),
    # -- AWS secret access key: 40 characters of base64, recognisable only by its name --------------
    _rule("aws-secret-key", "secret", r"""
        (?<![\w\-])["']?(?i:aws[_\-.]?secret(?:[_\-.]?access)?[_\-.]?key|secret[_\-.]?access[_\-.]?key)["']?
        [ \t]*(?::=|=|:)[ \t]*["']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])""",
          anchor=_NAME_CHARS, opener="\"'"),
    # -- credentials inside URLs and connection strings ----------------------------------------------
    _rule("password", "://", r"""   # scheme://user:PASSWORD@host -- scheme, user and host are kept
        (?<![\w+.\-])[A-Za-z][\w+.\-]{0,30}://[^\s:/?\#@"'<>`]*:(?P<secret>[^\s/?\#@"'<>`]+)@""",
          _group_unless_placeholder, anchor="_+.-"),
    _rule("password", "jdbc:oracle", r"jdbc:oracle:[a-z]+:[\w$\#]+/(?P<secret>[^@\s\"'/]+)@",
          _group_unless_placeholder),
    _rule("", _KEY_NEEDLES + " sig", r"""   # ?password=, &api_key=, Password=...; (ADO.NET)
        (?:(?<=[?&;])|(?<=[?&;][ \t]))(?P<name>(?:[\w.\-]{0,40}?)?""" + _NAME_HINT + r"""[\w.\-]*+)[ \t]*=
        (?P<secret>[^&;\#\s"'<>`]+)""", _pick_query, anchor=_NAME_CHARS, also="="),
    # -- HTTP authorization --------------------------------------------------------------------------
    _rule("bearer-token", "bearer basic token", r"""
        (?<![\w\-])(?P<scheme>(?i:bearer|basic)|[Tt]oken)[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)(?![\w\-.~+/=])""",
          _pick_bearer, anchor=_NAME_CHARS),
    _rule("password", "-u --user", r"""   # curl -u user:password
        (?<![\w\-])(?:-u|--user)[ \t]+(?P<q>["']?)(?P<user>[^\s:"'@]+):(?P<secret>[^\s"']+)(?P=q)""",
          _pick_curl_user, anchor=_NAME_CHARS),
    # -- command-line flags: --password=..., --api-key "..." -----------------------------------------
    _rule("", _KEY_NEEDLES, r"""
        (?<![\w\-])--(?P<name>(?:[A-Za-z][\w\-]{0,40}?)?""" + _NAME_HINT + r"""[\w\-]*+)
        (?:=|[ \t]+)(?:""" + _QUOTED + r"""|(?P<bare>[^\s"'`;|&]+))""", _pick_flag, anchor=_NAME_CHARS, also="--"),
    # -- XML elements: <password>...</password> ------------------------------------------------------
    _rule("", "</", r"""
        <(?P<name>(?:[\w.\-:]{0,40}?)?""" + _NAME_HINT + r"""[\w.\-]*+)>(?P<secret>[^<\n]+)</(?P=name)>""",
          _pick_xml),
    # -- assignments and keys: x = "...", x: "...", "x": "...", X=..., export X=..., x := "..." ------
    _rule("", _KEY_NEEDLES, r"""
        (?<![\w$@.\-])(?P<nq>["']?)
        (?P<name>(?:[A-Za-z_$@][\w$@.\-]{0,60}?)?""" + _NAME_HINT + r"""[\w.\-]*+)
        (?P=nq)\]?\??
        (?:[ \t]*:[ \t]*[A-Za-z_&][\w.\[\],|\ &<>]{0,80}?(?=[ \t]*=[^=>]))?   # a type annotation
        [ \t]*(?::=|=>|===?|!==?|\+?=|:)[ \t]*
        (?:""" + _QUOTED + r"""
          | (?P<bare>[^\s"'`,;]+)(?=[ \t]*(?:\r?$|[,;"'`]|\#|//))
        )""", _pick_assignment, anchor=_NAME_CHARS, opener="\"'"),
)

KINDS: tuple[str, ...] = tuple(sorted({r.kind for r in _RULES if r.kind} | {
    "password", "token", "secret", "api-key", "access-key", "private-key", "credential", "basic-auth",
}))


_ANCHOR_REACH = 64  # the longest word prefix before a needle that an anchored rule looks back over


def _anchored(rule: _Rule, text: str, lower: str) -> Iterator[re.Match[str]]:
    """``rule.pattern.finditer(text)``, found faster: via the needles.

    For rules whose match must start at the beginning of a word that contains a needle (a key name,
    a URL scheme, a flag), or at an ``opener`` (a quote) right before it: ``str.find`` locates the
    needles, and the pattern is tried only at those word starts. The patterns' leading lookbehinds
    forbid starting mid-word, so nothing that ``finditer`` would find is missed.
    """
    assert rule.anchor is not None
    punctuation = rule.anchor
    word = _word_pattern(punctuation)
    hits: set[int] = set()
    for needle in rule.needles:
        i = lower.find(needle)
        while i != -1:
            hits.add(i)
            i = lower.find(needle, i + 1)
    done = word_end = 0  # end of the last match; end of the last word tried
    for hit in sorted(hits):
        if hit < done or hit < word_end:
            continue  # inside a match already found, or in a word already tried
        start, floor = hit, max(0, hit - _ANCHOR_REACH)
        while start > floor and (text[start - 1].isalnum() or text[start - 1] in punctuation):
            start -= 1
        word_end = word.match(text, hit).end()
        m = None
        if start > done and text[start - 1] in rule.opener:
            m = rule.pattern.match(text, start - 1)
        if m is None and start >= done:
            m = rule.pattern.match(text, start)
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


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Replace the secrets in ``text`` with ``<redacted:KIND>`` markers; returns the text and counts per kind."""
    counts: dict[str, int] = {}
    lower = _lower(text)
    for rule in _RULES:
        if not any(n in lower for n in rule.needles) or rule.also not in lower:
            continue
        spans: list[Span] = []
        scan = _Scan(text)
        not_after = rule.not_after
        matches = rule.pattern.finditer(text) if rule.anchor is None else _anchored(rule, text, lower)
        for m in matches:
            if not_after is not None and m.start() and not_after.match(text, m.start() - 1):
                continue
            picked = rule.pick(m, rule.kind, scan)
            if picked is not None:
                spans.append(picked)
        if spans:
            text = _replace(text, spans, counts)
            lower = _lower(text)
    return text, counts


def _replace(text: str, spans: list[Span], counts: dict[str, int]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, kind in sorted(spans):
        if start < pos or end <= start:
            continue  # overlaps a span already replaced
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

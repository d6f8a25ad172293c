"""Credential formats recognisable by their own shape, for the privacy gate (``privacy.py``).

Each entry of ``FORMATS`` is one vendor format, written from the vendor's documented token layout:
a literal prefix (or an inner literal), the alphabet and length of the random part, and, where the
vendor defines one, a structural check (GitHub's and npm's CRC32 suffix, a PyPI macaroon's header, a
JWT's JSON header, base64 that decodes to a PEM key). ``find_tokens`` returns the spans of all of them
in a text; the gate replaces each with ``<redacted:KIND>``.

How a format is looked for, cheaply:

* ``needles`` are literal strings the token contains. One pass of a regex built as a trie of all
  needles finds them all (a few character tests per position, however many formats there are). A
  *prefix* format (the default) is then tried with ``pattern.match`` only where a needle starts; a
  format whose literal is inside the token (Mailchimp's ``-us12`` suffix, Azure AD's ``Q~``) gives
  ``back``, how far before the needle the token starts; a format with no usable literal
  (``inner=True`` alone: Discord bot tokens) searches the text with its pattern.
* A token must not continue a longer word (``before``: the character before it; the patterns end
  with a look-ahead of their own).
* A body made of one repeated character (``sk_live_xxxxxxxx``) is a mask in documentation, not a
  key; formats with short or common prefixes also require the body to look machine-made
  (``random=True``: letters *and* digits, varied characters).

Checks: a format's ``check`` must hold for the token to count, except ``confirms`` checks (a checksum):
a token whose checksum is valid is redacted even when it runs on from a longer word.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FORMATS", "FORMAT_KINDS", "TokenFormat", "entropy", "find_tokens", "looks_machine_made", "random_case"]


# ---------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_LOWER_FIRST = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _base62(n: int, alphabet: str, width: int = 6) -> str:
    out = ""
    while n:
        n, k = divmod(n, 62)
        out = alphabet[k] + out
    return out.rjust(width, "0")


def crc32_suffix_ok(token: str) -> bool:
    """GitHub's (``ghp_`` ...) and npm's (``npm_``) format: 30 random base62 characters after the
    prefix, then the CRC32 of those 30, in base62, 6 characters (either base62 digit order)."""
    body = token.split("_")[-1]
    if len(body) != 36 or not body.isalnum():
        return False
    crc = zlib.crc32(body[:30].encode())
    return body[30:] in (_base62(crc, _BASE62), _base62(crc, _BASE62_LOWER_FIRST))


def _b64decode(s: str, url: bool = False) -> bytes | None:
    s = s.rstrip("=")
    s += "=" * (-len(s) % 4)
    try:
        return (base64.urlsafe_b64decode if url else base64.b64decode)(s)
    except (binascii.Error, ValueError):
        return None


def pypi_macaroon_ok(token: str) -> bool:
    """A PyPI upload token is ``pypi-`` and a base64url macaroon (v2) whose location is a PyPI host."""
    raw = _b64decode(token[len("pypi-"):][:64], url=True)
    return bool(raw) and raw[:2] == b"\x02\x01" and raw[3 : 3 + raw[2]].endswith(b"pypi.org")


def jwt_header_ok(token: str) -> bool:
    """A JWT's first part is base64url JSON with an ``alg`` (or ``typ``/``kid``/``enc``) member."""
    raw = _b64decode(token.split(".", 1)[0], url=True)
    if not raw:
        return False
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.startswith(b'{"') and (b'"alg"' in raw or b'"typ"' in raw)  # cut off: still a header
    return isinstance(header, dict) and bool({"alg", "typ", "kid", "enc"} & header.keys())


def b64_jwt_ok(token: str) -> bool:
    """Base64 of a JWT (``ZXlK...`` is base64 of ``eyJ``), as some configs store one."""
    raw = _b64decode(token[: len(token) - len(token) % 4] or token)
    if not raw:
        return False
    text = raw.decode("ascii", "replace")
    return text.startswith("eyJ") and "." in text


def b64_pem_ok(token: str) -> bool:
    """Base64 of a PEM private key (``LS0tLS1CRUdJTi`` is base64 of ``-----BEGIN``): kubeconfigs, Helm values."""
    raw = _b64decode(token[: len(token) - len(token) % 4])
    return bool(raw) and b"PRIVATE KEY" in raw[:80]


def b64_prefix_ok(expected: bytes, skip: int = 0) -> Callable[[str], bool]:
    """The token (after ``skip`` characters) is base64 that decodes to ``expected`` first."""
    def check(token: str) -> bool:
        body = token[skip:]
        raw = _b64decode(body[: len(body) - len(body) % 4])
        return bool(raw) and raw.startswith(expected)
    return check


# ---------------------------------------------------------------------------------------------------
# Randomness
# ---------------------------------------------------------------------------------------------------

def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    n = len(s)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


def looks_machine_made(s: str, min_len: int = 16) -> bool:
    """Long, with letters and digits (or letters of random case), varied: a generated token, not a word."""
    alnum = [c for c in s if c.isalnum()]
    if len(alnum) < min_len:
        return False
    digits = sum(c.isdigit() for c in alnum)
    letters = len(alnum) - digits
    if letters and digits:
        return len(set(alnum)) >= min(10, len(alnum) // 2) and entropy("".join(alnum)) >= 3.0
    if letters:  # letters only: random case, as in a base62 body without digits
        return random_case("".join(alnum)) and entropy("".join(alnum)) >= 3.5
    return False


def random_case(s: str) -> bool:
    """Letters whose case flips often and at random (``qXbTrWkzPmQa``), unlike words and camelCase
    (``NSURLSessionDataTask``, ``BetaComputerKeyToolUseBlock``: lower-case runs of word length)."""
    letters = [c for c in s if c.isalpha()]
    if len(letters) < 8:
        return False
    upper = sum(c.isupper() for c in letters) / len(letters)
    runs = [len(r) for r in re.findall(r"[a-z]+", "".join(letters))]  # lower-case runs: words are longer
    short = sum(n <= 2 for n in runs)
    return 0.2 <= upper <= 0.8 and len(runs) >= 0.15 * len(letters) and short >= 0.5 * len(runs)


def _is_mask(body: str) -> bool:
    """``xxxxxxxx``, ``XXXX-XXXX``, ``00000000``, ``********``: a documentation mask."""
    chars = {c for c in body if c.isalnum()}
    return len(chars) <= 3


# ---------------------------------------------------------------------------------------------------
# The formats
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenFormat:
    kind: str  # the marker kind
    needles: tuple[str, ...]  # literal strings in the token (lower-case when ``icase``)
    pattern: re.Pattern[str]  # the whole token; a ``secret`` group, if any, is the part replaced
    inner: bool  # the needles are inside the token: search the text (else: match at each needle)
    icase: bool  # look for the needles case-insensitively
    before: re.Pattern[str] | None  # the token may not follow such a character
    check: Callable[[str], bool] | None
    confirms: bool  # ``check`` is a checksum: a valid one overrides ``before``
    random: bool  # the body must look machine-made
    prefix_len: int  # characters of fixed prefix (excluded from the mask test)
    back: tuple[int, ...]  # inner formats: the token starts this many characters before a needle


_ALNUM_BEFORE = r"[A-Za-z0-9]"
_WORD_BEFORE = r"[A-Za-z0-9_]"
_TOKEN_BEFORE = r"[A-Za-z0-9_\-]"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_END = r"(?![A-Za-z0-9])"  # the token ends here: no letter or digit follows
_END_W = r"(?![\w\-])"  # for bodies of base64url characters
_B64_BEFORE = r"[A-Za-z0-9+/]"  # inside a base64 blob (a font, a wasm module) a token shape is chance
_END_B64 = r"(?![A-Za-z0-9+/=])"


def _f(kind: str, needles: str, pattern: str, *, inner: bool = False, icase: bool = False,
       before: str | None = _ALNUM_BEFORE, check: Callable[[str], bool] | None = None, confirms: bool = False,
       random: bool = False, back: tuple[int, ...] = ()) -> TokenFormat:
    needle_list = tuple(needles.split())
    prefix_len = 0 if inner or back else min(len(n) for n in needle_list)
    return TokenFormat(kind, tuple(n.lower() for n in needle_list) if icase else needle_list,
                       re.compile(pattern, re.VERBOSE), inner or bool(back), icase,
                       re.compile(before) if before else None, check, confirms, random, prefix_len, back)


FORMATS: tuple[TokenFormat, ...] = (
    # -- AWS ---------------------------------------------------------------------------------------
    _f("aws-access-key", "AKIA ASIA ABIA ACCA A3T",
       r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}" + _END),
    _f("aws-session-token", "IQoJb3JpZ2lu FwoGZXIvYXdz", r"(?:IQoJb3JpZ2lu|FwoGZXIvYXdz)[A-Za-z0-9+/]{100,}={0,2}"),
    _f("aws-bedrock-key", "ABSK", r"ABSK[A-Za-z0-9+/]{60,}={0,2}"),
    _f("aws-bedrock-key", "bedrock-api-key-", r"bedrock-api-key-[A-Za-z0-9+/]{60,}={0,2}"),
    _f("aws-mws-key", "amzn.mws.", rf"amzn\.mws\.{_UUID}"),
    # -- Azure -------------------------------------------------------------------------------------
    _f("azure-client-secret", "Q~", r"""(?<![\w~.\-])[\w~.\-]{3}\dQ~[\w~.\-]{31,34}(?![\w~.\-])""",
       back=(4,)),
    _f("azure-devops-token", "AZDO", r"(?<![A-Za-z0-9])[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}" + _END, back=(76,)),
    # -- Google ------------------------------------------------------------------------------------
    _f("google-api-key", "AIza", r"AIza[0-9A-Za-z_\-]{35}" + _END_W, before=_TOKEN_BEFORE),
    _f("google-oauth-secret", "GOCSPX-", r"GOCSPX-[A-Za-z0-9_\-]{24,32}" + _END_W),
    _f("google-oauth-token", "ya29.", r"ya29\.[A-Za-z0-9_\-]{30,}", random=True),
    _f("google-oauth-token", "1//0", r"1//0[A-Za-z0-9_\-]{40,}", before=r"[A-Za-z0-9/:]", random=True),
    _f("firebase-key", ":APA91b", r"(?<![\w\-])AAAA[A-Za-z0-9_\-]{7}:APA91b[A-Za-z0-9_\-]{100,}", back=(11,)),
    # -- GitHub ------------------------------------------------------------------------------------
    _f("github-token", "ghp_ gho_ ghu_ ghs_ ghr_", r"gh[pousr]_[A-Za-z0-9]{36,251}" + _END,
       before=_WORD_BEFORE),
    _f("github-token", "ghp_ gho_ ghu_ ghs_", r"gh[pous]_[A-Za-z0-9]{36}" + _END, before=None,
       check=crc32_suffix_ok, confirms=True),
    _f("github-token", "github_pat_", r"github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])", before=_WORD_BEFORE),
    # -- GitLab ------------------------------------------------------------------------------------
    _f("gitlab-token", "glpat- gloas- gldt- glrt- glrtr- glcbt- glptt- glft- glimt- glagent- glsoat- glffct- glwt-",
       r"gl(?:pat|oas|dt|rtr?|cbt|ptt|ft|imt|agent|soat|ffct|wt)-[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-]+)*",
       before=_TOKEN_BEFORE),
    _f("gitlab-token", "GR1348941", r"GR1348941[A-Za-z0-9_\-]{20,}", before=_TOKEN_BEFORE),
    _f("gitlab-token", "_gitlab_session=", r"_gitlab_session=(?P<secret>[0-9a-zA-Z]{32,})", before=None),
    # -- Slack, Discord, Telegram, Teams and other chat --------------------------------------------
    _f("slack-token", "xoxa- xoxb- xoxc- xoxd- xoxe- xoxo- xoxp- xoxr- xoxs- xoxe.xox xapp-",
       r"(?:xox[abcdeoprs]|xapp|xoxe\.xox[bp])-[A-Za-z0-9%\-]{10,}", before=_TOKEN_BEFORE),
    _f("slack-webhook", "hooks.slack.com/",
       r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/\-]{8,})", before=None),
    _f("discord-webhook", "discord.com/api/webhooks/ discordapp.com/api/webhooks/",
       r"discord(?:app)?\.com/api/webhooks/(?P<secret>\d+/[A-Za-z0-9_\-]{20,})", before=None),
    _f("discord-token", ".", r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}"
       + _END_W, inner=True, random=True, before=r"[\w\-.]"),
    _f("telegram-bot-token", ":AA", r"(?<![\w:])\d{8,10}:AA[A-Za-z0-9_\-]{32,33}" + _END_W, back=(8, 9, 10)),
    _f("teams-webhook", ".webhook.office.com/",
       r"\.webhook\.office\.com/webhookb2/(?P<secret>[A-Za-z0-9@/_\-]{40,})", before=None),
    _f("zapier-webhook", "hooks.zapier.com/hooks/catch/",
       r"hooks\.zapier\.com/hooks/catch/(?P<secret>\d+/[A-Za-z0-9]+)", before=None),
    # -- Payments ----------------------------------------------------------------------------------
    _f("stripe-key", "sk_live_ sk_test_ sk_prod_ rk_live_ rk_test_ rk_prod_ pk_live_",
       r"(?:sk|rk|pk)_(?:live|test|prod)_[A-Za-z0-9]{10,}" + _END, before=_WORD_BEFORE),
    _f("stripe-key", "whsec_", r"whsec_[A-Za-z0-9+/=]{20,}", before=_WORD_BEFORE),
    _f("square-token", "EAAA", r"EAAA[A-Za-z0-9_\-]{60}" + _END_W + _END_B64, random=True, before=_B64_BEFORE),
    _f("square-token", "sq0atp- sq0csp- sq0idp-", r"sq0(?:atp|csp|idp)-[A-Za-z0-9_\-]{22,43}" + _END_W),
    _f("braintree-token", "access_token$", r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}",
       before=_WORD_BEFORE),
    _f("flutterwave-key", "FLWSECK FLWPUBK", r"FLW(?:SECK|PUBK)(?:_TEST)?-?[a-hA-H0-9]{12,32}(?:-X)?" + _END),
    _f("plaid-token", "access-sandbox- access-development- access-production-",
       rf"access-(?:sandbox|development|production)-{_UUID}", before=_TOKEN_BEFORE),
    _f("shippo-token", "shippo_live_ shippo_test_", r"shippo_(?:live|test)_[a-f0-9]{40}"),
    _f("easypost-key", "EZAK EZTK", r"EZ[AT]K[A-Za-z0-9]{54}" + _END),
    _f("duffel-token", "duffel_test_ duffel_live_", r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}"),
    _f("razorpay-key", "rzp_live_ rzp_test_", r"rzp_(?:live|test)_[A-Za-z0-9]{14}" + _END),
    # -- AI providers ------------------------------------------------------------------------------
    _f("anthropic-key", "sk-ant-", r"sk-ant-[A-Za-z0-9_\-]{20,}", before=_TOKEN_BEFORE),
    _f("openai-key", "sk-", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]*T3BlbkFJ[A-Za-z0-9_\-]*",
       before=_TOKEN_BEFORE),
    _f("openai-key", "sk-proj- sk-svcacct- sk-admin-", r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}",
       before=_TOKEN_BEFORE),
    _f("api-key", "sk-", r"sk-(?:or-v1-|lf-)?[A-Za-z0-9_\-]{20,}", before=_TOKEN_BEFORE, random=True),
    _f("api-key", "sk_", r"sk_[a-f0-9]{48}" + _END, before=_WORD_BEFORE),  # ElevenLabs
    _f("groq-key", "gsk_", r"gsk_[A-Za-z0-9]{48,}" + _END),
    _f("xai-key", "xai-", r"xai-[A-Za-z0-9]{70,}" + _END),
    _f("perplexity-key", "pplx-", r"pplx-[A-Za-z0-9]{40,}" + _END),
    _f("replicate-token", "r8_", r"r8_[A-Za-z0-9]{37,40}" + _END, before=_WORD_BEFORE, random=True),
    _f("huggingface-token", "hf_", r"hf_[A-Za-z0-9]{30,40}" + _END, before=_WORD_BEFORE, random=True),
    _f("huggingface-token", "api_org_", r"api_org_[A-Za-z0-9]{30,40}" + _END, before=_WORD_BEFORE),
    _f("langsmith-key", "lsv2_pt_ lsv2_sk_", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}"),
    _f("pinecone-key", "pcsk_", r"pcsk_[A-Za-z0-9]{4,}_[A-Za-z0-9]{40,}"),
    # -- Cloud and hosting -------------------------------------------------------------------------
    _f("digitalocean-token", "dop_v1_ doo_v1_ dor_v1_", r"do[opr]_v1_[a-f0-9]{64}"),
    _f("heroku-key", "HRKU-", r"HRKU-[A-Za-z0-9_\-]{20,}"),
    _f("flyio-token", "fo1_ fm1a_ fm1r_ fm2_ FlyV1",
       r"(?:FlyV1\ )?(?:fo1_[A-Za-z0-9_\-]{40,}|fm[12][ar]?_[A-Za-z0-9+/=_\-]{40,}(?:,fm[12][ar]?_[A-Za-z0-9+/=_\-]+)*)"),
    _f("render-key", "rnd_", r"rnd_[A-Za-z0-9]{32}" + _END, before=_WORD_BEFORE),
    _f("supabase-token", "sbp_ sb_secret_", r"(?:sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{24,})" + _END,
       before=_WORD_BEFORE),
    _f("neon-key", "napi_", r"napi_[a-z0-9]{60,}" + _END),
    _f("planetscale-token", "pscale_tkn_ pscale_pw_ pscale_oauth_", r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-=.]{32,64}"),
    _f("cloudflare-key", "v1.0-", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    _f("alibaba-access-key", "LTAI", r"LTAI[A-Za-z0-9]{12,20}" + _END, random=True),
    _f("tencent-secret-id", "AKID", r"AKID[A-Za-z0-9]{32}" + _END, random=True),
    _f("yandex-key", "AQVN", r"AQVN[A-Za-z0-9_\-]{35,38}" + _END_W),
    _f("yandex-token", "t1.", r"t1\.[A-Za-z0-9_\-]{20,}=*\.[A-Za-z0-9_\-]{86}=*", random=True),
    _f("yandex-key", "YC", r"YC[A-Za-z0-9_\-]{38}" + _END_W, before=_TOKEN_BEFORE, random=True),
    _f("databricks-token", "dapi", r"dapi[a-f0-9]{32}(?:-\d)?" + _END, random=True),
    _f("openshift-token", "sha256~", r"sha256~[A-Za-z0-9_\-]{43}"),
    # -- Secrets managers and infrastructure -------------------------------------------------------
    _f("doppler-token", "dp.pt. dp.st. dp.sa. dp.ct. dp.scim. dp.audit.",
       r"dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_\-]{2,35}\.)?[A-Za-z0-9]{40,44}" + _END),
    _f("vault-token", "hvs. hvb. hvr.", r"hv[sbr]\.[A-Za-z0-9_\-]{24,}", random=True),
    _f("terraform-token", ".atlasv1.", r"(?<![A-Za-z0-9])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}",
       back=(14,)),
    _f("pulumi-token", "pul-", r"pul-[a-f0-9]{40}" + _END),
    _f("infracost-key", "ico-", r"ico-[A-Za-z0-9]{32}" + _END),
    _f("age-secret-key", "AGE-SECRET-KEY-1", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    _f("1password-secret-key", "A3-",
       r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}" + _END),
    _f("1password-token", "ops_eyJ", r"ops_eyJ[A-Za-z0-9+/_\-]{100,}={0,3}"),
    _f("tailscale-key", "tskey-", r"tskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{20,}"),
    _f("octopus-deploy-key", "API-", r"API-[A-Z0-9]{26}" + _END, random=True),
    _f("harness-token", "pat. sat.", r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}" + _END),
    _f("authress-key", "sc_ ext_ scauth_ authress_",
       r"(?:sc|ext|scauth|authress)_[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.acc[_\-][a-z0-9\-]{10,32}\.[A-Za-z0-9+/_=\-]{30,120}",
       before=_WORD_BEFORE),
    _f("defined-networking-token", "dnkey-", r"dnkey-[A-Za-z0-9=_\-]{26}-[A-Za-z0-9=_\-]{52}"),
    _f("settlemint-token", "sm_pat_ sm_aat_ sm_sat_", r"sm_(?:pat|aat|sat)_[A-Za-z0-9]{16}" + _END),
    # -- Developer tools and registries ------------------------------------------------------------
    _f("npm-token", "npm_", r"npm_[A-Za-z0-9]{36}" + _END, before=_WORD_BEFORE),
    _f("npm-token", "npm_", r"npm_[A-Za-z0-9]{36}" + _END, before=None, check=crc32_suffix_ok, confirms=True),
    _f("pypi-token", "pypi-AgE", r"pypi-AgE[A-Za-z0-9_\-]{50,}", before=_TOKEN_BEFORE),
    _f("pypi-token", "pypi-Ag", r"pypi-Ag[A-Za-z0-9_\-]{50,}", before=_TOKEN_BEFORE, check=pypi_macaroon_ok),
    _f("nuget-key", "oy2", r"oy2[a-z0-9]{43}" + _END),
    _f("rubygems-key", "rubygems_", r"rubygems_[a-f0-9]{48}" + _END),
    _f("clojars-token", "CLOJARS_", r"CLOJARS_[a-z0-9]{60}" + _END),
    _f("crates-io-token", "cio", r"cio[A-Za-z0-9]{32}" + _END, random=True),
    _f("docker-token", "dckr_pat_ dckr_oat_", r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,}"),
    _f("jfrog-key", "AKCp", r"AKCp[A-Za-z0-9]{69}" + _END + _END_B64, before=_B64_BEFORE),
    _f("jfrog-token", "cmVmdGtu", r"cmVmdGtu[A-Za-z0-9]{56}" + _END + _END_B64, before=_B64_BEFORE),
    _f("circleci-token", "CCIPAT_ CCIPRJ_", r"CCIP(?:AT|RJ)_[A-Za-z0-9]{22}_[a-f0-9]{40}" + _END),
    _f("buildkite-token", "bkua_", r"bkua_[a-f0-9]{40}" + _END),
    _f("sonarqube-token", "squ_ sqp_ sqa_", r"sq[upa]_[a-f0-9]{40}" + _END, before=_WORD_BEFORE),
    _f("sourcegraph-token", "sgp_", r"sgp_(?:(?:[a-f0-9]{16}|local)_)?[a-f0-9]{40}" + _END, before=_WORD_BEFORE),
    _f("postman-key", "PMAK-", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}" + _END),
    _f("readme-key", "rdme_", r"rdme_[a-z0-9]{70}" + _END),
    _f("prefect-key", "pnu_", r"pnu_[A-Za-z0-9]{36}" + _END, before=_WORD_BEFORE),
    _f("scalingo-token", "tk-us-", r"tk-us-[A-Za-z0-9_\-]{48}" + _END_W),
    _f("frameio-token", "fio-u-", r"fio-u-[A-Za-z0-9_\-=]{64}"),
    _f("intra42-secret", "s-s4t2ud- s-s4t2af-", r"s-s4t2(?:ud|af)-[a-f0-9]{64}"),
    _f("sidekiq-secret", "@gems.contribsys.com @enterprise.contribsys.com",
       r"(?P<secret>[a-f0-9]{8}:[a-f0-9]{8})@(?:gems|enterprise)\.contribsys\.com", back=(17,)),
    _f("sidekiq-secret", "BUNDLE_ENTERPRISE__CONTRIBSYS__COM BUNDLE_GEMS__CONTRIBSYS__COM",
       r"BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM[\"']?[ \t]*[=:][ \t]*[\"']?(?P<secret>[a-f0-9]{8}:[a-f0-9]{8})",
       before=_WORD_BEFORE),
    _f("launchdarkly-key", "api- sdk- mob-", rf"(?:api|sdk|mob)-{_UUID}", before=_TOKEN_BEFORE),
    _f("contentful-token", "CFPAT-", r"CFPAT-[A-Za-z0-9_\-]{43}"),
    _f("typeform-token", "tfp_", r"tfp_[A-Za-z0-9_\-.=]{40,}"),
    _f("figma-token", "figd_", r"figd_[A-Za-z0-9_\-]{40,}"),
    _f("bitbucket-token", "ATBB", r"ATBB[A-Za-z0-9_=.\-]{28,}"),
    _f("atlassian-token", "ATATT3 ATCTT3", r"AT[AC]TT3[A-Za-z0-9_\-=]{100,}"),
    _f("asana-token", "/", r"(?<![\w/])[12]/\d{16}(?:/\d{16})?:[a-f0-9]{32}" + _END, back=(1,)),
    _f("linear-key", "lin_api_ lin_oauth_", r"lin_(?:api|oauth)_[A-Za-z0-9]{40,64}" + _END),
    _f("notion-token", "ntn_", r"ntn_[A-Za-z0-9]{40,}" + _END, before=_WORD_BEFORE),
    _f("airtable-token", "pat", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}" + _END),
    _f("clickup-token", "pk_", r"pk_\d{6,9}_[A-Z0-9]{32}" + _END, before=_WORD_BEFORE),
    _f("trello-token", "ATTA", r"ATTA[A-Fa-f0-9]{64,}" + _END + _END_B64, before=_B64_BEFORE),
    _f("hubspot-token", "pat-na1- pat-na2- pat-eu1- pat-ap1-", rf"pat-(?:na|eu|ap)\d-{_UUID}"),
    _f("salesforce-token", "00D", r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9_.]{80,}"),
    _f("shopify-token", "shpat_ shpca_ shppa_ shpss_", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _END),
    _f("dropbox-token", "sl.", r"sl\.(?:u\.)?[A-Za-z0-9_\-=]{130,}"),
    _f("dropbox-token", "aaaaaaaaaa", r"(?<![\w\-+/])[A-Za-z0-9]{11}AAAAAAAAAA[A-Za-z0-9_\-]{43}" + _END_W + _END_B64,
       back=(11,)),
    _f("maxmind-key", "_mmk", r"(?<![A-Za-z0-9_])[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk(?![A-Za-z0-9_])", back=(36,)),
    _f("adobe-client-secret", "p8e-", r"p8e-[A-Za-z0-9]{32}" + _END),
    _f("adafruit-key", "aio_", r"aio_[A-Za-z0-9]{28}" + _END, before=_WORD_BEFORE, random=True),
    _f("mapbox-token", "pk.eyJ sk.eyJ tk.eyJ", r"[pst]k\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}"),
    _f("mapbox-token", "pk. sk. tk.", r"[pst]k\.[a-z0-9]{60}\.[a-z0-9]{22}" + _END, random=True),
    # -- Email and messaging -----------------------------------------------------------------------
    _f("sendgrid-key", "SG.", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _END_W, before=r"[\w.]"),
    _f("mailgun-key", "key- pubkey-", r"(?:pub)?key-[a-f0-9]{32}" + _END, before=_WORD_BEFORE),
    _f("mailchimp-key", "-us", r"(?<![A-Za-z0-9])[a-f0-9]{32}-us\d{1,2}" + _END, back=(32,)),
    _f("brevo-key", "xkeysib- xsmtpsib-", r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}" + _END),
    _f("resend-key", "re_", r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}" + _END, before=_WORD_BEFORE, random=True),
    _f("twilio-key", "SK", r"SK[0-9a-fA-F]{32}" + _END, random=True),
    # -- Social ------------------------------------------------------------------------------------
    _f("facebook-token", "EAA", r"EAA[A-Za-z0-9]{90,}" + _END_B64, random=True, before=_B64_BEFORE),
    _f("facebook-token", "| %7C", r"\d{15,16}(?:\||%7C)[A-Za-z0-9_\-]{27,40}" + _END_W, inner=True,
       before=r"[\w|]"),
    _f("instagram-token", "IGQV IGAA", r"IG(?:QV|AA)[A-Za-z0-9_\-]{100,}" + _END_B64, random=True,
       before=_B64_BEFORE),
    _f("twitter-bearer-token", "AAAAAAAAAAAAAAAAAAAAA", r"A{21,22}[A-Za-z0-9%]{30,}" + _END_B64, before=_B64_BEFORE),
    # -- Observability -----------------------------------------------------------------------------
    _f("newrelic-key", "NRAK- NRJS- NRII-", r"NR(?:AK|JS|II)-[A-Za-z0-9_\-]{19,32}" + _END_W),
    _f("newrelic-key", "NRAL", r"(?<![A-Za-z0-9])[a-f0-9]{36}NRAL" + _END, back=(36,)),
    _f("sentry-token", "sntrys_eyJ sntryu_", r"sntrys_eyJ[A-Za-z0-9+/=_\-]{40,}|sntryu_[a-f0-9]{64}" + _END),
    _f("sentry-dsn", "sentry.io", r"https?://(?P<secret>[a-f0-9]{32})(?::[a-f0-9]{32})?@[\w.\-]*sentry\.io",
       inner=True),
    _f("grafana-token", "glc_", r"glc_[A-Za-z0-9+/]{32,}={0,2}", before=_WORD_BEFORE),
    _f("grafana-token", "glsa_", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}" + _END),
    _f("grafana-token", "eyJrIjoi", r"eyJrIjoi[A-Za-z0-9+/_\-]{40,}={0,2}"),
    _f("dynatrace-token", "dt0c01.", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    _f("honeycomb-key", "hcaik_ hcxik_ hcxmk_ hcamk_", r"hc[ax][im]k_[a-z0-9]{50,}" + _END),
    # -- Tokens in general -------------------------------------------------------------------------
    _f("jwt", "eyJ", r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", before=_TOKEN_BEFORE),
    _f("jwt", "ZXlK", r"ZXlK[A-Za-z0-9+/]{40,}={0,2}", before=r"[A-Za-z0-9+/]", check=b64_jwt_ok),
    _f("private-key", "LS0tLS1CRUdJTi", r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2}", before=r"[A-Za-z0-9+/]",
       check=b64_pem_ok),
    _f("django-secret-key", "django-insecure-", r"django-insecure-[^\s\"'`]{30,}", before=None),
)

FORMAT_KINDS: frozenset[str] = frozenset(f.kind for f in FORMATS)


Span = tuple[int, int, str]


def _trie_pattern(words: list[str]) -> str:
    """A regex matching any of ``words``, as a trie (each position costs a few character tests, whatever
    the number of words), the longest word first where one is a prefix of another."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(ch) + build(sub) for ch, sub in sorted(node.items()) if ch]
        if not branches:
            return ""
        alt = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{alt})?" if "" in node else alt

    return build(trie)


def _needle_table(icase: bool) -> dict[str, list[TokenFormat]]:
    table: dict[str, list[TokenFormat]] = {}
    for fmt in FORMATS:
        if fmt.icase == icase and (not fmt.inner or fmt.back):
            for needle in fmt.needles:
                table.setdefault(needle, []).append(fmt)
    return table


_TABLE = _needle_table(False)  # needle -> the formats it announces (case-sensitive, in the text)
_TABLE_I = _needle_table(True)  # the same for case-insensitive needles (in the lower-cased text)
_NEEDLES = re.compile(_trie_pattern(list(_TABLE)))
_NEEDLES_I = re.compile(_trie_pattern(list(_TABLE_I)))
_SEARCHED = tuple(f for f in FORMATS if f.inner and not f.back)  # no usable needle: search the text


def _candidates(text: str, lower: str):
    """Every match of every format: one pass over the text finds all needles (a trie regex); each format
    is then tried only where one of its needles is (minus its ``back`` offsets)."""
    tried: set[tuple[int, int]] = set()
    for needles, table, hay in ((_NEEDLES, _TABLE, text), (_NEEDLES_I, _TABLE_I, lower)):
        if not table:
            continue
        for hit in needles.finditer(hay):
            found, at = hit.group(), hit.start()
            for n in range(1, len(found) + 1):
                for fmt in table.get(found[:n], ()):
                    for k in fmt.back or (0,):
                        pos = at - k
                        key = (id(fmt), pos)
                        if pos < 0 or key in tried:
                            continue
                        tried.add(key)
                        m = fmt.pattern.match(text, pos)
                        if m is not None:
                            yield fmt, m
    for fmt in _SEARCHED:
        hay = lower if fmt.icase else text
        if any(n in hay for n in fmt.needles):
            for m in fmt.pattern.finditer(text):
                yield fmt, m


def find_tokens(text: str, lower: str | None = None) -> list[Span]:
    """Spans ``(start, end, kind)`` of the tokens in ``text`` that match a vendor format (may overlap)."""
    lower = text.lower() if lower is None else lower
    found: list[tuple[int, int, int, str]] = []
    for fmt, m in _candidates(text, lower):
        start = m.start()
        token = m.group()
        confirmed = fmt.check is not None and fmt.confirms and fmt.check(token)
        if not confirmed:
            if fmt.before is not None and start and fmt.before.match(text, start - 1):
                continue
            if fmt.check is not None and not fmt.check(token):
                continue
        s, e = m.span("secret") if "secret" in fmt.pattern.groupindex else m.span()
        body = text[s:e][fmt.prefix_len if s == start else 0:]
        if _is_mask(body) or (fmt.random and not looks_machine_made(body, 12)):
            continue
        found.append((s, -e, _ORDER[id(fmt)], fmt.kind))
    # The same span claimed by several formats goes to the most specific one (the earliest in FORMATS).
    found.sort()
    spans: list[Span] = []
    for s, neg_e, _, kind in found:
        if not spans or (spans[-1][0], spans[-1][1]) != (s, -neg_e):
            spans.append((s, -neg_e, kind))
    return spans


_ORDER = {id(f): i for i, f in enumerate(FORMATS)}

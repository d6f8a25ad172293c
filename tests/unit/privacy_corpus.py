"""The generator of the privacy gate's outside-style corpus: ``tests/data/privacy_corpus.jsonl``.

Each credential kind below is written from its vendor's documented format (prefix, alphabet, length,
checksum where the vendor defines one); its fake values are random characters in that shape, seeded per
kind so the file is stable. Each kind appears in several lines of code or config (assignment syntaxes of
many languages and formats, calls, headers, manifests, and, where the format is recognisable on its own,
bare in a log line or a traceback). ``BENIGN`` lists look-alikes that must come through unchanged.

The checked-in file holds no literal credential: a record's secret is stored as two parts split inside
the vendor's prefix, and its line holds the slot ``@@SECRET@@``, so secret scanners (push protection
included) see no token. ``records()`` rebuilds everything; ``python -m tests.unit.privacy_corpus``
rewrites the file, and ``tests/unit/test_privacy_corpus.py`` checks the two agree.

This module is independent of ``tandem_lsp.privacy_rules``: formats are stated here from the vendors'
documentation, not derived from the gate's patterns.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "privacy_corpus.jsonl"
SLOT = "@@SECRET@@"

UP = string.ascii_uppercase
LO = string.ascii_lowercase
DG = string.digits
B62 = UP + LO + DG
B64 = B62 + "+/"
U64 = B62 + "-_"
HEX = "0123456789abcdef"
B32 = UP + "234567"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

_rng = random.Random(0)


def r(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def a(n: int) -> str:
    return r(B62, n)


def al(n: int) -> str:
    return r(LO + DG, n)


def au(n: int) -> str:
    return r(UP + DG, n)


def h(n: int) -> str:
    return r(HEX, n)


def d(n: int) -> str:
    return r(DG, n)


def u64(n: int) -> str:
    return r(U64, n)


def b64(n: int) -> str:
    return r(B64, n)


def uid() -> str:
    return str(uuid.UUID(int=_rng.getrandbits(128), version=4))


def b64enc(raw: bytes | str, url: bool = False, pad: bool = True) -> str:
    raw = raw.encode() if isinstance(raw, str) else raw
    out = (base64.urlsafe_b64encode if url else base64.b64encode)(raw).decode()
    return out if pad else out.rstrip("=")


_BASE62_DIGITS = DG + UP + LO


def base62(n: int, width: int = 6) -> str:
    out = ""
    while n:
        n, k = divmod(n, 62)
        out = _BASE62_DIGITS[k] + out
    return out.rjust(width, "0")


def crc_token(prefix: str, random_len: int = 30) -> str:
    """GitHub's and npm's format: prefix, random base62, then the base62 CRC32 of the random part."""
    body = a(random_len)
    return prefix + body + base62(zlib.crc32(body.encode()))


def jwt(claims: dict | None = None) -> str:
    header = b64enc(json.dumps({"alg": "HS256", "typ": "JWT"}), url=True, pad=False)
    claims = claims or {"sub": d(9), "iat": 1_700_000_000 + int(d(6))}
    payload = b64enc(json.dumps(claims), url=True, pad=False)
    return f"{header}.{payload}.{u64(43)}"


def pem(label: str, lines: int = 8) -> tuple[str, str]:
    """A PEM block and its body (the secret part: the BEGIN and END lines stay readable)."""
    body = "\n".join(b64(64) for _ in range(lines)) + "\n" + b64(_rng.randrange(20, 60)) + "=="
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----", body


def putty() -> tuple[str, str]:
    private = b64(44)
    text = ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n"
            + b64(64) + "\n" + b64(4) + "\nPrivate-Lines: 1\n" + private + "\nPrivate-MAC: " + h(64))
    return text, private


def _url(fixed: str, secret: str) -> tuple[str, str]:
    """A webhook URL: the vendor's fixed part stays readable, the path after it is the secret."""
    return fixed + secret, secret.rstrip("/")


def pw(n: int = 16) -> str:
    return r(LO, 1) + r(B62 + "!%^*-_+=", n - 3) + r(DG, 1) + r("!%^*", 1)


# ---------------------------------------------------------------------------------------------------
# The kinds: (family, kind, generator, name stem, name word, recognisable on its own?)
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    family: str
    kind: str
    gen: Callable[[], str | tuple[str, str]]  # a value, or (text, its secret part)
    stem: str  # the vendor part of a variable name: "gitlab_deploy"
    word: str  # the secret part: "token", "key", "secret", "password", "api_key"
    bare: bool  # the format is recognisable with no name beside it
    syntaxes: tuple[str, ...] = ()  # extra syntaxes that suit the kind (see SYNTAXES)


K = Kind
KINDS: list[Kind] = [
    # -- AWS -------------------------------------------------------------------------------------
    K("AWS", "aws-access-key-id", lambda: "AK" + "IA" + r(B32, 16), "aws_access", "key_id", True),
    K("AWS", "aws-temporary-access-key-id", lambda: "AS" + "IA" + r(B32, 16), "aws_access", "key_id", True),
    K("AWS", "aws-secret-access-key", lambda: b64(40), "aws_secret_access", "key", False),
    K("AWS", "aws-session-token", lambda: "IQoJb3JpZ2lu" + "X2Vj" + b64(360) + "=", "aws_session", "token", True),
    K("AWS", "aws-bedrock-long-term-key",
      lambda: "AB" + "SK" + b64enc(f"BedrockAPIKey-{al(4)}-at-{d(12)}:{b64(40)}"), "aws_bearer_token_bedrock", "",
      True),
    K("AWS", "aws-bedrock-short-term-key", lambda: "bedrock-api-key-" + b64enc(
        "bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Credential=" + au(20) + "&X-Amz-Signature=" + h(64)),
      "aws_bearer_token_bedrock", "", True),
    K("AWS", "aws-mws-key", lambda: "amzn" + ".mws." + uid(), "mws_auth", "token", True),
    # -- Azure -----------------------------------------------------------------------------------
    K("Azure", "azure-ad-client-secret", lambda: a(3) + d(1) + "Q~" + r(B62 + "_~.-", 34), "azure_client", "secret",
      True),
    K("Azure", "azure-storage-account-key", lambda: b64(86) + "==", "azure_storage_account", "key", False,
      ("azure-conn",)),
    K("Azure", "azure-devops-pat", lambda: r(LO + "234567", 52), "azure_devops", "pat", False),
    K("Azure", "azure-devops-pat-v2", lambda: a(76) + "AZ" + "DO" + a(4), "azure_devops", "token", True),
    K("Azure", "azure-service-bus-key", lambda: b64(43) + "=", "servicebus_shared_access", "key", False,
      ("servicebus-conn",)),
    K("Azure", "azure-sas-signature", lambda: b64(43).replace("+", "%2B").replace("/", "%2F") + "%3D", "azure_sas",
      "token", False, ("sas-url",)),
    K("Azure", "azure-function-key", lambda: u64(54) + "==", "azure_function", "key", False, ("function-url",)),
    K("Azure", "azure-openai-key", lambda: h(32), "azure_openai_api", "key", False),
    K("Azure", "azure-apim-subscription-key", lambda: h(32), "apim_subscription", "key", False,
      ("header-ocp-apim",)),
    # -- Google Cloud ----------------------------------------------------------------------------
    K("Google", "gcp-api-key", lambda: "AI" + "za" + "Sy" + u64(33), "google_maps_api", "key", True),
    K("Google", "gcp-oauth-client-secret", lambda: "GOC" + "SPX-" + u64(28), "google_client", "secret", True),
    K("Google", "gcp-oauth-access-token", lambda: "ya" + "29." + u64(160), "google_access", "token", True),
    K("Google", "gcp-oauth-refresh-token", lambda: "1/" + "/0" + u64(1) + u64(100), "google_refresh", "token", True),
    K("Google", "firebase-fcm-server-key", lambda: "AA" + "AA" + u64(7) + ":APA91b" + u64(134), "fcm_server", "key",
      True),
    # -- GitHub ----------------------------------------------------------------------------------
    K("GitHub", "github-pat-classic", lambda: crc_token("gh" + "p_"), "github", "token", True),
    K("GitHub", "github-oauth-token", lambda: crc_token("gh" + "o_"), "github_oauth", "token", True),
    K("GitHub", "github-user-to-server-token", lambda: crc_token("gh" + "u_"), "github_app_user", "token", True),
    K("GitHub", "github-server-to-server-token", lambda: crc_token("gh" + "s_"), "github_installation", "token",
      True),
    K("GitHub", "github-refresh-token", lambda: "gh" + "r_" + a(76), "github_refresh", "token", True),
    K("GitHub", "github-fine-grained-pat", lambda: "github" + "_pat_11" + au(20) + "_" + a(59), "gh", "pat", True),
    K("GitHub", "github-legacy-token-hex", lambda: h(40), "github", "token", False),
    K("GitHub", "github-app-client-secret", lambda: h(40), "github_app_client", "secret", False),
    # -- GitLab ----------------------------------------------------------------------------------
    K("GitLab", "gitlab-pat", lambda: "gl" + "pat-" + u64(20), "gitlab", "token", True),
    K("GitLab", "gitlab-pat-routable", lambda: "gl" + "pat-" + u64(27) + "." + "01." + al(9), "gitlab_pat", "",
      True),
    K("GitLab", "gitlab-oauth-app-secret", lambda: "gl" + "oas-" + h(64), "gitlab_oauth", "secret", True),
    K("GitLab", "gitlab-deploy-token", lambda: "gl" + "dt-" + u64(20), "gitlab_deploy", "token", True),
    K("GitLab", "gitlab-runner-token", lambda: "gl" + "rt-" + u64(20), "gitlab_runner", "token", True),
    K("GitLab", "gitlab-runner-registration-token", lambda: "GR13" + "48941" + u64(20), "runner_registration",
      "token", True),
    K("GitLab", "gitlab-ci-job-token", lambda: "gl" + "cbt-" + h(2) + "_" + u64(20), "ci_job", "token", True),
    K("GitLab", "gitlab-pipeline-trigger-token", lambda: "gl" + "ptt-" + h(40), "gitlab_trigger", "token", True),
    K("GitLab", "gitlab-feed-token", lambda: "gl" + "ft-" + u64(20), "gitlab_feed", "token", True),
    K("GitLab", "gitlab-incoming-mail-token", lambda: "gl" + "imt-" + al(25), "incoming_email", "token", True),
    K("GitLab", "gitlab-agent-token", lambda: "gl" + "agent-" + u64(50), "gitlab_agent", "token", True),
    K("GitLab", "gitlab-scim-token", lambda: "gl" + "soat-" + u64(20), "gitlab_scim", "token", True),
    K("GitLab", "gitlab-feature-flags-token", lambda: "gl" + "ffct-" + u64(20), "unleash_client", "token", True),
    K("GitLab", "gitlab-session-cookie", lambda: h(32), "_gitlab", "session", False, ("cookie",)),
    # -- Slack -----------------------------------------------------------------------------------
    K("Slack", "slack-bot-token", lambda: "xo" + "xb-" + d(12) + "-" + d(13) + "-" + a(24), "slack_bot", "token",
      True),
    K("Slack", "slack-user-token", lambda: "xo" + "xp-" + d(12) + "-" + d(12) + "-" + d(13) + "-" + h(32),
      "slack_user", "token", True),
    K("Slack", "slack-app-token", lambda: "xa" + "pp-1-A" + au(10) + "-" + d(13) + "-" + h(64), "slack_app", "token",
      True),
    K("Slack", "slack-config-access-token", lambda: "xo" + "xe.xoxp-1-" + a(160), "slack_config", "token", True),
    K("Slack", "slack-config-refresh-token", lambda: "xo" + "xe-1-" + a(140), "slack_config_refresh", "token", True),
    K("Slack", "slack-legacy-workspace-token", lambda: "xo" + "xa-2-" + d(12) + "-" + d(12) + "-" + h(32),
      "slack_workspace", "token", True),
    K("Slack", "slack-session-token", lambda: "xo" + "xc-" + d(12) + "-" + d(13) + "-" + h(64), "slack_session",
      "token", True),
    K("Slack", "slack-session-cookie", lambda: "xo" + "xd-" + a(40) + "%2F" + a(40) + "%3D", "slack_d", "cookie",
      True),
    K("Slack", "slack-webhook", lambda: _url("https://hooks.slack." + "com/services/", "T" + au(10) + "/B" + au(10)
                                              + "/" + a(24)), "slack_webhook", "url", True),
    K("Slack", "slack-workflow-webhook", lambda: _url("https://hooks.slack." + "com/workflows/", "T" + au(10) + "/A"
                                                       + au(10) + "/" + d(18) + "/" + a(24)), "slack_workflow", "url",
      True),
    # -- Discord, Telegram, Teams, Mattermost and other chat -----------------------------------------
    K("Chat", "discord-bot-token", lambda: r("MNO", 1) + a(25) + "." + u64(6) + "." + u64(38), "discord_bot",
      "token", True),
    K("Chat", "discord-webhook", lambda: _url("https://discord." + "com/api/webhooks/", d(18) + "/" + u64(68)),
      "discord_webhook", "url", True),
    K("Chat", "discord-client-secret", lambda: u64(32), "discord_client", "secret", False),
    K("Chat", "telegram-bot-token", lambda: d(10) + ":AA" + u64(33), "telegram_bot", "token", True),
    K("Chat", "microsoft-teams-webhook", lambda: _url("https://contoso." + "webhook.office.com/webhookb2/", uid() + "@"
                                                       + uid() + "/IncomingWebhook/" + h(32) + "/" + uid()),
      "teams_webhook", "url", True),
    K("Chat", "mattermost-token", lambda: al(26), "mattermost", "token", False),
    K("Chat", "zapier-webhook", lambda: _url("https://hooks.zapier." + "com/hooks/catch/", d(8) + "/" + al(6) + "/"),
      "zapier_hook", "url", True),
    # -- Stripe and payments ---------------------------------------------------------------------
    K("Payments", "stripe-live-secret-key", lambda: "sk" + "_live_" + a(99), "stripe_secret", "key", True),
    K("Payments", "stripe-test-secret-key", lambda: "sk" + "_test_" + a(24), "stripe", "key", True),
    K("Payments", "stripe-restricted-key", lambda: "rk" + "_live_" + a(99), "stripe_restricted", "key", True),
    K("Payments", "stripe-restricted-prod-key", lambda: "rk" + "_prod_" + a(99), "stripe_restricted", "key", True),
    K("Payments", "stripe-webhook-secret", lambda: "wh" + "sec_" + a(32), "stripe_webhook", "secret", True),
    K("Payments", "square-access-token", lambda: "EA" + "AA" + u64(60), "square_access", "token", True),
    K("Payments", "square-oauth-secret", lambda: "sq0" + "csp-" + u64(43), "square_oauth", "secret", True),
    K("Payments", "braintree-access-token",
      lambda: "access_token$" + "production$" + al(16) + "$" + h(32), "braintree_access", "token", True),
    K("Payments", "razorpay-key-secret", lambda: a(24), "razorpay_key", "secret", False),
    K("Payments", "paystack-secret-key", lambda: "sk" + "_live_" + h(40), "paystack_secret", "key", True),
    K("Payments", "flutterwave-secret-key", lambda: "FLWSECK" + "_TEST-" + h(32) + "-X", "flutterwave_secret",
      "key", True),
    K("Payments", "flutterwave-encryption-key", lambda: "FLWSECK" + "_TEST" + h(12), "flutterwave_encryption", "key",
      True),
    K("Payments", "plaid-access-token", lambda: "access-" + "production-" + uid(), "plaid_access", "token", True),
    K("Payments", "plaid-secret", lambda: h(30), "plaid", "secret", False),
    K("Payments", "gocardless-access-token", lambda: "live_" + u64(40), "gocardless", "token", False),
    K("Payments", "shippo-live-token", lambda: "shippo" + "_live_" + h(40), "shippo_api", "token", True),
    K("Payments", "shippo-test-token", lambda: "shippo" + "_test_" + h(40), "shippo", "token", True),
    K("Payments", "easypost-api-key", lambda: "EZ" + "AK" + a(54), "easypost_api", "key", True),
    K("Payments", "easypost-test-key", lambda: "EZ" + "TK" + a(54), "easypost_test", "key", True),
    K("Payments", "lob-api-key", lambda: "live_" + h(35), "lob_api", "key", False),
    K("Payments", "duffel-api-token", lambda: "duffel" + "_test_" + u64(43), "duffel", "token", True),
    K("Payments", "coinbase-api-secret", lambda: a(64), "coinbase_api", "secret", False),
    K("Payments", "binance-secret-key", lambda: a(64), "binance_secret", "key", False),
    K("Payments", "kraken-private-key", lambda: b64(86) + "==", "kraken_private", "key", False),
    K("Payments", "kucoin-secret-key", lambda: uid(), "kucoin_secret", "key", False),
    K("Payments", "bittrex-secret-key", lambda: h(32), "bittrex_secret", "key", False),
    K("Payments", "adyen-api-key", lambda: "AQE" + b64(120) + "=", "adyen_api", "key", False),
    K("Payments", "mollie-api-key", lambda: "live_" + a(30), "mollie_api", "key", False),
    # -- AI providers ----------------------------------------------------------------------------
    K("AI", "openai-legacy-key", lambda: "sk" + "-" + a(20) + "T3Blbk" + "FJ" + a(20), "openai_api", "key", True),
    K("AI", "openai-project-key", lambda: "sk" + "-proj-" + u64(74) + "T3Blbk" + "FJ" + u64(74), "openai", "key",
      True),
    K("AI", "openai-service-account-key", lambda: "sk" + "-svcacct-" + u64(74) + "T3Blbk" + "FJ" + u64(74),
      "openai_svc", "key", True),
    K("AI", "openai-admin-key", lambda: "sk" + "-admin-" + u64(74) + "T3Blbk" + "FJ" + u64(74), "openai_admin",
      "key", True),
    K("AI", "anthropic-api-key", lambda: "sk" + "-ant-api03-" + u64(93) + "AA", "anthropic_api", "key", True),
    K("AI", "anthropic-admin-key", lambda: "sk" + "-ant-admin01-" + u64(93) + "AA", "anthropic_admin", "key", True),
    K("AI", "groq-api-key", lambda: "gs" + "k_" + a(52), "groq_api", "key", True),
    K("AI", "xai-api-key", lambda: "xa" + "i-" + a(80), "xai_api", "key", True),
    K("AI", "perplexity-api-key", lambda: "pp" + "lx-" + a(48), "perplexity_api", "key", True),
    K("AI", "replicate-api-token", lambda: "r8" + "_" + a(37), "replicate_api", "token", True),
    K("AI", "huggingface-token", lambda: "hf" + "_" + r(UP + LO, 34), "hf", "token", True),
    K("AI", "huggingface-org-token", lambda: "api" + "_org_" + r(UP + LO, 34), "huggingface_org", "token", True),
    K("AI", "deepseek-api-key", lambda: "sk" + "-" + h(32), "deepseek_api", "key", True),
    K("AI", "openrouter-api-key", lambda: "sk" + "-or-v1-" + h(64), "openrouter_api", "key", True),
    K("AI", "langsmith-api-key", lambda: "lsv2" + "_pt_" + h(32) + "_" + h(10), "langsmith_api", "key", True),
    K("AI", "langfuse-secret-key", lambda: "sk" + "-lf-" + uid(), "langfuse_secret", "key", True),
    K("AI", "pinecone-api-key", lambda: "pc" + "sk_" + a(5) + "_" + a(63), "pinecone_api", "key", True),
    K("AI", "elevenlabs-api-key", lambda: "sk" + "_" + h(48), "elevenlabs_api", "key", True),
    K("AI", "cohere-api-key", lambda: a(40), "cohere_api", "key", False),
    K("AI", "mistral-api-key", lambda: a(32), "mistral_api", "key", False),
    K("AI", "together-api-key", lambda: h(64), "together_api", "key", False),
    K("AI", "assemblyai-api-key", lambda: h(32), "assemblyai_api", "key", False),
    K("AI", "wandb-api-key", lambda: h(40), "wandb_api", "key", False),
    # -- Cloud and hosting -----------------------------------------------------------------------
    K("Cloud", "digitalocean-pat", lambda: "do" + "p_v1_" + h(64), "digitalocean", "token", True),
    K("Cloud", "digitalocean-oauth-token", lambda: "do" + "o_v1_" + h(64), "do_oauth", "token", True),
    K("Cloud", "digitalocean-refresh-token", lambda: "do" + "r_v1_" + h(64), "do_refresh", "token", True),
    K("Cloud", "heroku-api-key", lambda: uid(), "heroku_api", "key", False),
    K("Cloud", "heroku-api-key-v2", lambda: "HR" + "KU-AA" + u64(58), "heroku", "token", True),
    K("Cloud", "flyio-access-token", lambda: "fo" + "1_" + u64(43), "fly_api", "token", True),
    K("Cloud", "flyio-macaroon", lambda: "FlyV1 " + "fm2_" + b64(180) + "==", "fly", "token", True),
    K("Cloud", "render-api-key", lambda: "rn" + "d_" + a(32), "render_api", "key", True),
    K("Cloud", "vercel-token", lambda: a(24), "vercel", "token", False),
    K("Cloud", "netlify-token", lambda: u64(43), "netlify_auth", "token", False),
    K("Cloud", "supabase-access-token", lambda: "sb" + "p_" + h(40), "supabase_access", "token", True),
    K("Cloud", "supabase-secret-key", lambda: "sb" + "_secret_" + u64(31), "supabase_service", "key", True),
    K("Cloud", "neon-api-key", lambda: "na" + "pi_" + al(64), "neon_api", "key", True),
    K("Cloud", "planetscale-token", lambda: "pscale" + "_tkn_" + u64(43), "planetscale_service", "token", True),
    K("Cloud", "planetscale-password", lambda: "pscale" + "_pw_" + u64(43), "planetscale_db", "password", True),
    K("Cloud", "planetscale-oauth-token", lambda: "pscale" + "_oauth_" + u64(43), "planetscale_oauth", "token",
      True),
    K("Cloud", "cloudflare-api-token", lambda: u64(40), "cloudflare_api", "token", False),
    K("Cloud", "cloudflare-global-api-key", lambda: h(37), "cloudflare_global_api", "key", False),
    K("Cloud", "cloudflare-origin-ca-key", lambda: "v1" + ".0-" + h(24) + "-" + h(146), "cloudflare_origin_ca",
      "key", True),
    K("Cloud", "linode-token", lambda: h(64), "linode", "token", False),
    K("Cloud", "vultr-api-key", lambda: au(36), "vultr_api", "key", False),
    K("Cloud", "hetzner-token", lambda: a(64), "hcloud", "token", False),
    K("Cloud", "scaleway-secret-key", lambda: uid(), "scw_secret", "key", False),
    K("Cloud", "alibaba-access-key-id", lambda: "LT" + "AI" + a(20), "alibaba_access", "key_id", True),
    K("Cloud", "alibaba-secret-key", lambda: a(30), "alibaba_secret", "key", False),
    K("Cloud", "tencent-secret-id", lambda: "AK" + "ID" + a(32), "tencent_secret", "id", True),
    K("Cloud", "yandex-api-key", lambda: "AQ" + "VN" + u64(36), "yandex_api", "key", True),
    K("Cloud", "yandex-access-token", lambda: "t1." + u64(30) + "." + u64(86), "yc_iam", "token", True),
    K("Cloud", "ibm-cloud-api-key", lambda: u64(44), "ibm_cloud_api", "key", False),
    K("Cloud", "databricks-token", lambda: "da" + "pi" + h(32), "databricks", "token", True),
    K("Cloud", "openshift-user-token", lambda: "sha" + "256~" + u64(43), "openshift", "token", True),
    K("Cloud", "kubernetes-secret-data", lambda: b64enc(pw(24)), "kubernetes", "secret", False, ("k8s-secret",)),
    # -- Secrets managers and infrastructure ---------------------------------------------------------
    K("Infra", "doppler-personal-token", lambda: "dp" + ".pt." + a(43), "doppler", "token", True),
    K("Infra", "doppler-service-token", lambda: "dp" + ".st." + al(10) + "." + a(40), "doppler_service", "token",
      True),
    K("Infra", "doppler-service-account-token", lambda: "dp" + ".sa." + a(43), "doppler_sa", "token", True),
    K("Infra", "doppler-cli-token", lambda: "dp" + ".ct." + a(43), "doppler_cli", "token", True),
    K("Infra", "doppler-scim-token", lambda: "dp" + ".scim." + a(43), "doppler_scim", "token", True),
    K("Infra", "doppler-audit-token", lambda: "dp" + ".audit." + a(43), "doppler_audit", "token", True),
    K("Infra", "vault-service-token", lambda: "hv" + "s." + u64(92), "vault", "token", True),
    K("Infra", "vault-batch-token", lambda: "hv" + "b." + u64(140), "vault_batch", "token", True),
    K("Infra", "vault-legacy-token", lambda: "s." + a(24), "vault", "token", False),
    K("Infra", "terraform-cloud-token", lambda: al(14) + ".atlas" + "v1." + u64(67), "tfe", "token", True),
    K("Infra", "pulumi-access-token", lambda: "pu" + "l-" + h(40), "pulumi_access", "token", True),
    K("Infra", "infracost-api-key", lambda: "ic" + "o-" + a(32), "infracost_api", "key", True),
    K("Infra", "age-secret-key", lambda: "AGE-SECRET" + "-KEY-1" + r(BECH32.upper(), 58), "sops_age", "key", True),
    K("Infra", "1password-secret-key", lambda: "A3" + "-" + au(6) + "-" + au(6) + "-" + au(5) + "-" + au(5) + "-" +
      au(5) + "-" + au(5), "op_account_secret", "key", True),
    K("Infra", "1password-service-account-token", lambda: "op" + "s_" + b64enc(json.dumps({
        "signInAddress": "my.1password.com", "userAuth": {"method": "SRPg-4096", "alg": "PBES2g-HS256",
                                                          "iterations": 650000, "salt": a(22)},
        "email": al(10) + "@1passwordserviceaccounts.com", "srpX": h(64), "muk": {"alg": "A256GCM", "k": u64(43)},
        "secretKey": "A3-" + au(6) + "-" + au(6) + "-" + au(5), "throttleSecret": {"seed": h(64), "uuid": au(26)},
        "deviceUuid": al(26)}), pad=False), "op_service_account", "token", True),
    K("Infra", "tailscale-auth-key", lambda: "ts" + "key-auth-" + a(17) + "-" + a(33), "ts_auth", "key", True),
    K("Infra", "tailscale-api-key", lambda: "ts" + "key-api-" + a(17) + "-" + a(33), "tailscale_api", "key", True),
    K("Infra", "tailscale-oauth-secret", lambda: "ts" + "key-client-" + a(17) + "-" + a(33), "ts_oauth_client",
      "secret", True),
    K("Infra", "ngrok-authtoken", lambda: d(1) + a(26) + "_" + a(21), "ngrok_auth", "token", False),
    K("Infra", "octopus-deploy-api-key", lambda: "API" + "-" + au(26), "octopus_api", "key", True),
    K("Infra", "harness-pat", lambda: "pat" + "." + u64(22) + "." + a(24) + "." + a(20), "harness_platform_api", "key",
      True),
    K("Infra", "authress-access-key", lambda: "sc" + "_" + al(20) + "." + al(5) + ".acc_" + al(20) + "." + u64(80),
      "authress_service_client_access", "key", True),
    K("Infra", "defined-networking-api-token", lambda: "dn" + "key-" + u64(26) + "-" + u64(52), "dnclient_api",
      "token", True),
    K("Infra", "settlemint-pat", lambda: "sm" + "_pat_" + a(16), "settlemint", "token", True),
    # -- Developer tools and registries -----------------------------------------------------------
    K("DevTools", "npm-access-token", lambda: crc_token("np" + "m_"), "npm", "token", True),
    K("DevTools", "npm-legacy-auth-token", lambda: uid(), "npm_auth", "token", False, ("npmrc",)),
    K("DevTools", "pypi-upload-token", lambda: "py" + "pi-AgEIcHlwaS5vcmc" + u64(150), "pypi_api", "token", True),
    K("DevTools", "testpypi-upload-token", lambda: "py" + "pi-AgENdGVzdC5weXBpLm9yZw" + u64(150), "testpypi_api",
      "token", True),
    K("DevTools", "nuget-api-key", lambda: "oy" + "2" + al(43), "nuget_api", "key", True),
    K("DevTools", "nuget-config-password", lambda: pw(20), "nuget_feed", "password", False, ("nuget-config",)),
    K("DevTools", "rubygems-api-key", lambda: "ruby" + "gems_" + h(48), "gem_host_api", "key", True),
    K("DevTools", "clojars-deploy-token", lambda: "CLO" + "JARS_" + al(60), "clojars_deploy", "token", True),
    K("DevTools", "crates-io-token", lambda: "ci" + "o" + a(32), "cargo_registry", "token", True),
    K("DevTools", "docker-hub-pat", lambda: "dc" + "kr_pat_" + u64(27), "docker_hub", "token", True),
    K("DevTools", "docker-hub-org-token", lambda: "dc" + "kr_oat_" + u64(32), "docker_org", "token", True),
    K("DevTools", "docker-config-auth", lambda: b64enc(f"ci-bot:{pw(18)}"), "docker", "auth", False,
      ("docker-config",)),
    K("DevTools", "jfrog-api-key", lambda: "AK" + "Cp" + a(69), "artifactory_api", "key", True),
    K("DevTools", "jfrog-reference-token", lambda: "cmVm" + "dGtu" + a(56), "jfrog_access", "token", True),
    K("DevTools", "circleci-personal-token", lambda: "CCI" + "PAT_" + a(22) + "_" + h(40), "circle", "token", True),
    K("DevTools", "circleci-project-token", lambda: "CCI" + "PRJ_" + a(22) + "_" + h(40), "circleci_project",
      "token", True),
    K("DevTools", "buildkite-api-token", lambda: "bk" + "ua_" + h(40), "buildkite_api", "token", True),
    K("DevTools", "buildkite-agent-token", lambda: al(50), "buildkite_agent", "token", False),
    K("DevTools", "travis-ci-token", lambda: u64(22), "travis", "token", False),
    K("DevTools", "codecov-token", lambda: uid(), "codecov", "token", False),
    K("DevTools", "sonarqube-user-token", lambda: "sq" + "u_" + h(40), "sonar", "token", True),
    K("DevTools", "sonarqube-project-token", lambda: "sq" + "p_" + h(40), "sonar_project", "token", True),
    K("DevTools", "sonarqube-global-token", lambda: "sq" + "a_" + h(40), "sonar_global", "token", True),
    K("DevTools", "snyk-token", lambda: uid(), "snyk", "token", False),
    K("DevTools", "sourcegraph-access-token", lambda: "sg" + "p_" + h(16) + "_" + h(40), "src_access", "token", True),
    K("DevTools", "sourcegraph-legacy-token", lambda: "sg" + "p_" + h(40), "sourcegraph", "token", True),
    K("DevTools", "postman-api-key", lambda: "PM" + "AK-" + h(24) + "-" + h(34), "postman_api", "key", True),
    K("DevTools", "readme-api-key", lambda: "rd" + "me_" + al(70), "readme_api", "key", True),
    K("DevTools", "prefect-api-key", lambda: "pn" + "u_" + a(36), "prefect_api", "key", True),
    K("DevTools", "scalingo-api-token", lambda: "tk" + "-us-" + u64(48), "scalingo_api", "token", True),
    K("DevTools", "frameio-token", lambda: "fi" + "o-u-" + u64(64), "frameio_api", "token", True),
    K("DevTools", "intra42-client-secret", lambda: "s-s4" + "t2ud-" + h(64), "intra42_client", "secret", True),
    K("DevTools", "sidekiq-enterprise-credentials", lambda: h(8) + ":" + h(8), "BUNDLE_ENTERPRISE__CONTRIBSYS__COM",
      "", False, ("bundler", "bundler-export", "bundler-config")),
    K("DevTools", "sidekiq-gem-url", lambda: h(8) + ":" + h(8), "sidekiq", "url", False,
      ("contribsys-url", "contribsys-gemfile", "contribsys-remote")),
    K("DevTools", "launchdarkly-api-key", lambda: "ap" + "i-" + uid(), "launchdarkly_api", "key", True),
    K("DevTools", "launchdarkly-sdk-key", lambda: "sd" + "k-" + uid(), "launchdarkly_sdk", "key", True),
    K("DevTools", "contentful-pat", lambda: "CF" + "PAT-" + u64(43), "contentful_management", "token", True),
    K("DevTools", "contentful-delivery-token", lambda: u64(43), "contentful_delivery", "token", False),
    K("DevTools", "algolia-admin-key", lambda: h(32), "algolia_admin", "key", False),
    K("DevTools", "typeform-token", lambda: "tf" + "p_" + u64(44) + "_" + u64(14), "typeform_api", "token", True),
    K("DevTools", "figma-pat", lambda: "fi" + "gd_" + u64(40), "figma", "token", True),
    K("DevTools", "gitter-token", lambda: h(40), "gitter_access", "token", False),
    K("DevTools", "drone-ci-token", lambda: a(32), "drone", "token", False),
    K("DevTools", "bitbucket-app-password", lambda: "AT" + "BB" + a(28) + h(8).upper(), "bitbucket_app",
      "password", True),
    K("DevTools", "bitbucket-client-secret", lambda: u64(32), "bitbucket_client", "secret", False),
    # -- Atlassian and work management ------------------------------------------------------------
    K("SaaS", "atlassian-api-token", lambda: "AT" + "ATT3xFfGF0" + u64(170) + "=" + h(8).upper(), "jira_api",
      "token", True),
    K("SaaS", "atlassian-admin-key", lambda: "AT" + "CTT3xFfGN0" + u64(170) + "=" + h(8).upper(), "atlassian_admin",
      "key", True),
    K("SaaS", "confluence-legacy-token", lambda: a(24), "confluence_api", "token", False),
    K("SaaS", "asana-pat", lambda: "2/" + d(16) + "/" + d(16) + ":" + h(32), "asana_access", "token", True),
    K("SaaS", "asana-legacy-pat", lambda: "1/" + d(16) + ":" + h(32), "asana", "token", True),
    K("SaaS", "linear-api-key", lambda: "lin" + "_api_" + a(40), "linear_api", "key", True),
    K("SaaS", "linear-oauth-token", lambda: "lin" + "_oauth_" + h(64), "linear_oauth", "token", True),
    K("SaaS", "notion-token", lambda: "nt" + "n_" + d(11) + a(35), "notion", "token", True),
    K("SaaS", "notion-legacy-token", lambda: "secret" + "_" + a(43), "notion_api", "key", False),
    K("SaaS", "airtable-pat", lambda: "pat" + a(14) + "." + h(64), "airtable", "token", True),
    K("SaaS", "airtable-legacy-key", lambda: "key" + a(14), "airtable_api", "key", False),
    K("SaaS", "clickup-api-token", lambda: "pk" + "_" + d(8) + "_" + au(32), "clickup_api", "token", True),
    K("SaaS", "trello-api-token", lambda: "ATTA" + h(64) + h(8).upper(), "trello", "token", True),
    K("SaaS", "trello-api-key", lambda: h(32), "trello_api", "key", False),
    K("SaaS", "todoist-api-token", lambda: h(40), "todoist_api", "token", False),
    K("SaaS", "zendesk-api-token", lambda: a(40), "zendesk_api", "token", False),
    K("SaaS", "intercom-access-token", lambda: "dG9r" + "O" + b64(55) + "=", "intercom_access", "token", False),
    K("SaaS", "hubspot-private-app-token", lambda: "pat" + "-na1-" + uid(), "hubspot_private_app", "token", True),
    K("SaaS", "hubspot-legacy-api-key", lambda: uid(), "hubspot_api", "key", False),
    K("SaaS", "salesforce-access-token", lambda: "00D" + a(12) + "!" + r(B62 + ".", 96), "sf_access", "token",
      True),
    K("SaaS", "shopify-admin-token", lambda: "shp" + "at_" + h(32), "shopify_admin", "token", True),
    K("SaaS", "shopify-custom-app-token", lambda: "shp" + "ca_" + h(32), "shopify_custom_app", "token", True),
    K("SaaS", "shopify-private-app-password", lambda: "shp" + "pa_" + h(32), "shopify_private_app", "password",
      True),
    K("SaaS", "shopify-shared-secret", lambda: "shp" + "ss_" + h(32), "shopify_shared", "secret", True),
    K("SaaS", "squarespace-api-key", lambda: uid(), "squarespace_api", "key", False),
    K("SaaS", "freshbooks-token", lambda: h(64), "freshbooks_access", "token", False),
    K("SaaS", "etsy-api-key", lambda: al(24), "etsy_api", "key", False),
    K("SaaS", "dropbox-short-lived-token", lambda: "sl" + "." + u64(135), "dropbox_access", "token", True),
    K("SaaS", "dropbox-long-lived-token", lambda: a(11) + "AAAAAAAAAA" + u64(43), "dropbox", "token", False),
    K("SaaS", "box-developer-token", lambda: a(32), "box_developer", "token", False),
    K("SaaS", "rapidapi-key", lambda: u64(50), "rapidapi", "key", False),
    K("SaaS", "maxmind-license-key", lambda: a(6) + "_" + a(29) + "_mm" + "k", "maxmind_license", "key", True),
    K("SaaS", "adobe-client-secret", lambda: "p8" + "e-" + a(32), "adobe_client", "secret", True),
    K("SaaS", "adobe-client-id", lambda: h(32), "adobe_client", "id", False),
    K("SaaS", "adafruit-io-key", lambda: "aio" + "_" + a(28), "adafruit_io", "key", True),
    K("SaaS", "beamer-api-key", lambda: "b_" + u64(44), "beamer_api", "key", False),
    K("SaaS", "finicity-client-secret", lambda: a(20), "finicity_client", "secret", False),
    K("SaaS", "finnhub-access-token", lambda: al(20), "finnhub", "token", False),
    K("SaaS", "nytimes-api-key", lambda: a(32), "nytimes_api", "key", False),
    K("SaaS", "openweather-api-key", lambda: h(32), "openweathermap_api", "key", False),
    K("SaaS", "mapbox-public-token", lambda: "pk" + ".eyJ1Ijoi" + b64enc(al(8) + '","a":"' + al(25), url=True,
                                                                         pad=False) + "." + u64(22),
      "mapbox", "token", True),
    K("SaaS", "mapbox-secret-token", lambda: "sk" + ".eyJ1Ijoi" + b64enc(al(8) + '","a":"' + al(25), url=True,
                                                                         pad=False) + "." + u64(22),
      "mapbox_secret", "token", True),
    K("SaaS", "privateai-api-key", lambda: a(32), "privateai_api", "key", False),
    # -- Email and messaging ---------------------------------------------------------------------
    K("Email", "sendgrid-api-key", lambda: "SG" + "." + u64(22) + "." + u64(43), "sendgrid_api", "key", True),
    K("Email", "mailgun-private-key", lambda: "ke" + "y-" + h(32), "mailgun_api", "key", True),
    K("Email", "mailgun-public-key", lambda: "pub" + "key-" + h(32), "mailgun_pub", "key", True),
    K("Email", "mailgun-signing-key", lambda: h(32) + "-" + h(8) + "-" + h(8), "mailgun_webhook_signing", "key",
      False),
    K("Email", "mailchimp-api-key", lambda: h(32) + "-us" + d(2), "mailchimp_api", "key", True),
    K("Email", "mandrill-api-key", lambda: u64(22), "mandrill_api", "key", False),
    K("Email", "postmark-server-token", lambda: uid(), "postmark_server", "token", False),
    K("Email", "brevo-api-key", lambda: "xkey" + "sib-" + h(64) + "-" + a(16), "sendinblue_api", "key", True),
    K("Email", "brevo-smtp-key", lambda: "xsmtp" + "sib-" + h(64) + "-" + a(16), "brevo_smtp", "key", True),
    K("Email", "sparkpost-api-key", lambda: h(40), "sparkpost_api", "key", False),
    K("Email", "mailjet-secret-key", lambda: h(32), "mailjet_secret", "key", False),
    K("Email", "resend-api-key", lambda: "re" + "_" + a(8) + "_" + a(24), "resend_api", "key", True),
    K("Email", "twilio-api-key", lambda: "SK" + h(32), "twilio_api", "key", True),
    K("Email", "twilio-auth-token", lambda: h(32), "twilio_auth", "token", False),
    K("Email", "messagebird-api-key", lambda: a(25), "messagebird_api", "key", False),
    K("Email", "vonage-api-secret", lambda: a(16), "nexmo_api", "secret", False),
    K("Email", "plivo-auth-token", lambda: a(40), "plivo_auth", "token", False),
    K("Email", "sendbird-api-token", lambda: h(40), "sendbird_api", "token", False),
    # -- Social ----------------------------------------------------------------------------------
    K("Social", "facebook-access-token", lambda: "EA" + "AC" + a(180), "facebook_access", "token", True),
    K("Social", "facebook-page-token", lambda: "EA" + "AG" + a(200), "fb_page_access", "token", True),
    K("Social", "facebook-app-secret", lambda: h(32), "facebook_app", "secret", False),
    K("Social", "instagram-access-token", lambda: "IG" + "QV" + u64(180), "instagram_access", "token", True),
    K("Social", "twitter-bearer-token", lambda: "AAAAAAAAAAAAAAAAAAAAA" + a(24) + "%3D" + a(50), "twitter_bearer",
      "token", True),
    K("Social", "twitter-api-secret", lambda: a(50), "twitter_api", "secret", False),
    K("Social", "twitter-access-token", lambda: d(19) + "-" + a(40), "twitter_access", "token", False),
    K("Social", "linkedin-client-secret", lambda: a(16), "linkedin_client", "secret", False),
    K("Social", "twitch-client-secret", lambda: al(30), "twitch_client", "secret", False),
    K("Social", "spotify-client-secret", lambda: h(32), "spotify_client", "secret", False),
    K("Social", "zoom-client-secret", lambda: a(32), "zoom_client", "secret", False),
    # -- Observability ---------------------------------------------------------------------------
    K("Observability", "datadog-api-key", lambda: h(32), "datadog_api", "key", False),
    K("Observability", "datadog-app-key", lambda: h(40), "datadog_app", "key", False),
    K("Observability", "new-relic-user-key", lambda: "NR" + "AK-" + au(27), "new_relic_user_api", "key", True),
    K("Observability", "new-relic-browser-key", lambda: "NR" + "JS-" + h(19), "new_relic_browser_api", "key", True),
    K("Observability", "new-relic-insert-key", lambda: "NR" + "II-" + u64(32), "new_relic_insert", "key", True),
    K("Observability", "new-relic-license-key", lambda: h(36) + "NR" + "AL", "new_relic_license", "key", True),
    K("Observability", "sentry-org-token", lambda: "sntr" + "ys_" + b64enc(json.dumps(
        {"iat": 1700000000.0, "url": "https://sentry.io", "region_url": "https://us.sentry.io", "org": al(8)}),
        pad=False) + "_" + a(43), "sentry_auth", "token", True),
    K("Observability", "sentry-user-token", lambda: "sntr" + "yu_" + h(64), "sentry_user", "token", True),
    K("Observability", "sentry-legacy-token", lambda: h(64), "sentry_auth", "token", False),
    K("Observability", "grafana-cloud-token", lambda: "gl" + "c_" + b64(110) + "=", "grafana_cloud", "token", True),
    K("Observability", "grafana-service-account-token", lambda: "gl" + "sa_" + a(32) + "_" + h(8), "grafana_sa",
      "token", True),
    K("Observability", "grafana-api-key", lambda: "eyJr" + "Ijoi" + b64enc(a(32) + '","n":"deploy","id":1',
                                                                           pad=False), "grafana_api", "key", True),
    K("Observability", "dynatrace-api-token", lambda: "dt0c01" + "." + au(24) + "." + au(64), "dynatrace_api",
      "token", True),
    K("Observability", "honeycomb-api-key", lambda: a(22), "honeycomb_api", "key", False),
    K("Observability", "honeycomb-ingest-key", lambda: "hca" + "ik_" + al(58), "honeycomb_ingest", "key", True),
    K("Observability", "rollbar-access-token", lambda: h(32), "rollbar_access", "token", False),
    K("Observability", "bugsnag-api-key", lambda: h(32), "bugsnag_api", "key", False),
    K("Observability", "sumologic-access-key", lambda: a(64), "sumo_access", "key", False),
    K("Observability", "pagerduty-api-key", lambda: u64(20), "pagerduty_api", "key", False),
    K("Observability", "opsgenie-api-key", lambda: uid(), "opsgenie", "key", False, ("header-geniekey",)),
    K("Observability", "splunk-hec-token", lambda: uid(), "splunk_hec", "token", False, ("header-splunk",)),
    K("Observability", "segment-write-key", lambda: a(32), "segment_write", "key", False),
    K("Observability", "mixpanel-api-secret", lambda: h(32), "mixpanel_api", "secret", False),
    K("Observability", "amplitude-secret-key", lambda: h(32), "amplitude_secret", "key", False),
    K("Observability", "elastic-api-key", lambda: b64enc(a(20) + ":" + u64(22)), "elastic_api", "key", False,
      ("header-apikey",)),
    # -- Auth providers --------------------------------------------------------------------------
    K("Auth", "okta-api-token", lambda: "00" + u64(40), "okta_api", "token", False, ("header-ssws",)),
    K("Auth", "auth0-client-secret", lambda: u64(64), "auth0_client", "secret", False),
    K("Auth", "clerk-secret-key", lambda: "sk" + "_live_" + a(40), "clerk_secret", "key", True),
    K("Auth", "jwt", lambda: jwt(), "session", "jwt", True),
    K("Auth", "jwt-base64-encoded", lambda: b64enc(jwt()), "encoded_session", "token", True),
    K("Auth", "oauth-client-secret", lambda: u64(40), "oauth_client", "secret", False),
    K("Auth", "deepl-auth-key", lambda: uid() + ":fx", "deepl_auth", "key", False, ("header-deepl",)),
    # -- Private keys ----------------------------------------------------------------------------
    K("Private keys", "rsa-private-key", lambda: pem("RSA PRIVATE" + " KEY", 12), "rsa_private", "key", True),
    K("Private keys", "openssh-private-key", lambda: pem("OPENSSH PRIVATE" + " KEY", 6), "ssh_private", "key", True),
    K("Private keys", "ec-private-key", lambda: pem("EC PRIVATE" + " KEY", 3), "ec_private", "key", True),
    K("Private keys", "pkcs8-private-key", lambda: pem("PRIVATE" + " KEY", 10), "signing_private", "key", True),
    K("Private keys", "encrypted-private-key", lambda: pem("ENCRYPTED PRIVATE" + " KEY", 10), "tls_private", "key",
      True),
    K("Private keys", "dsa-private-key", lambda: pem("DSA PRIVATE" + " KEY", 8), "dsa_private", "key", True),
    K("Private keys", "pgp-private-key-block", lambda: pem("PGP PRIVATE KEY" + " BLOCK", 10), "gpg_private", "key",
      True),
    K("Private keys", "putty-private-key", putty, "putty", "key", True),
    K("Private keys", "base64-encoded-private-key", lambda: b64enc(pem("RSA PRIVATE" + " KEY", 6)[0]),
      "tls_client_key", "data", True),
    # -- Generic credentials ---------------------------------------------------------------------
    K("Generic", "password", lambda: pw(14), "db", "password", False),
    K("Generic", "passphrase", lambda: pw(20), "gpg", "passphrase", False),
    K("Generic", "secret-key-base", lambda: h(128), "secret_key", "base", False),
    K("Generic", "django-secret-key", lambda: "django-insecure-" + r(LO + DG + "!@#%^&*(-_=+)", 50), "django_secret",
      "key", True),
    K("Generic", "laravel-app-key", lambda: "base64:" + b64(43) + "=", "app", "key", False),
    K("Generic", "jwt-signing-secret", lambda: u64(48), "jwt", "secret", False),
    K("Generic", "encryption-key-hex", lambda: h(64), "encryption", "key", False),
    K("Generic", "webhook-signing-secret", lambda: b64(32), "webhook_signing", "secret", False),
    K("Generic", "api-key-unquoted", lambda: a(32), "service_api", "key", False),
    K("Generic", "url-password", lambda: a(1) + r(B62 + "-_.~", 14) + d(1), "database", "url", False,
      ("url-postgres", "url-mongo", "url-amqp")),
    K("Generic", "url-password-dollar", lambda: "$" + al(2) + d(2) + a(8), "redis", "url", False,
      ("url-redis", "url-smtp", "url-ftp")),
    K("Generic", "basic-auth-header", lambda: b64enc(f"svc:{pw(16)}"), "basic", "auth", False, ("header-basic",)),
    K("Generic", "bearer-token-header", lambda: u64(40), "bearer", "token", False, ("header-bearer",)),
    K("Generic", "api-token-header", lambda: a(40), "api", "token", False, ("header-api-token",)),
    K("Generic", "netrc-password", lambda: a(36), "netrc", "password", False, ("netrc",)),
    K("Generic", "connection-string-password", lambda: pw(16), "sql", "password", False, ("ado",)),
    K("Generic", "git-credentials-url", lambda: crc_token("gh" + "p_"), "git", "url", True, ("git-credentials",)),
]

# ---------------------------------------------------------------------------------------------------
# Syntaxes. Placeholders: {c} camelCase name, {s} snake_case, {u} UPPER_CASE, {k} kebab-case, {d} dotted,
# {v} the value. Context syntaxes carry a secret-looking name; bare ones carry only the value.
# ---------------------------------------------------------------------------------------------------

CONTEXT: dict[str, str] = {
    "ini-quoted": '{c}="{v}"',
    "ini-spaced": '{c} = "{v}"',
    "ini-unquoted": "{c}={v}",
    "ini-unquoted-spaced": "{c} = {v}",
    "json": '{{\n    "{s}": "{v}"\n}}',
    "json-escaped": '"{{\\"{s}\\": \\"{v}\\"}}"',
    "xml-element": "<{c}>{v}</{c}>",
    "xml-element-multiline": "<{c}>\n    {v}\n</{c}>",
    "xml-add-key-value": '<add key="{c}" value="{v}" />',
    "yaml-unquoted": "{s}: {v}",
    "yaml-single": "{s}: '{v}'",
    "yaml-double": '{s}: "{v}"',
    "yaml-literal": "{s}: |\n  {v}",
    "yaml-folded": "{s}: >\n  {v}",
    "yaml-env-name-value": "env:\n  - name: {u}\n    value: \"{v}\"",
    "csharp": 'string {c} = "{v}";',
    "go-var": 'var {c} string = "{v}"',
    "go-short": '{c} := "{v}"',
    "go-backticks": "{c} := `{v}`",
    "go-getenv-default": '{c} := GetEnvOrDefault("{s}", "{v}")',
    "java": 'String {c} = "{v}";',
    "java-setproperty": 'System.setProperty("{u}", "{v}");',
    "java-map-put": 'props.put("{d}", "{v}");',
    "kotlin": 'var {c} = "{v}"',
    "kotlin-typed": 'val {c}: String = "{v}"',
    "php-concat": '${c} .= "{v}";',
    "php-coalesce": '${c} ??= "{v}";',
    "php-array": "'{s}' => '{v}',",
    "python-single": "{c} = '{v}'",
    "python-double": '{s} = "{v}"',
    "python-kwarg": 'client = Client({s}="{v}")',
    "python-dict": 'config = {{"{s}": "{v}"}}',
    "python-setdefault": 'os.environ.setdefault("{u}", "{v}")',
    "python-getenv-default": '{s} = os.getenv("{u}", "{v}")',
    "python-environ-assign": 'os.environ["{u}"] = "{v}"',
    "ruby-env-fetch": 'ENV.fetch("{u}", "{v}")',
    "ruby-hash": ':{s} => "{v}",',
    "js-object": '  {c}: "{v}",',
    "ts-typed": 'const {c}: string = "{v}";',
    "js-env-default": 'const {c} = process.env.{u} || "{v}";',
    "csv": "{c},{v},",
    "logstash": '  "{c}" => "{v}"',
    "make-recursive": '{u} = "{v}"',
    "make-simple": '{u} := "{v}"',
    "make-shell": '{u} ::= "{v}"',
    "make-evaluated": '{u} :::= "{v}"',
    "make-conditional": '{u} ?= "{v}"',
    "make-append": '{u} += "{v}"',
    "dotenv": "{u}={v}",
    "shell-export": 'export {u}="{v}"',
    "powershell": '$env:{u} = "{v}"',
    "batch": "set {u}={v}",
    "dockerfile-env": "ENV {u}={v}",
    "compose-env": "      - {u}={v}",
    "c-setenv": 'setenv("{u}", "{v}", 1);',
    "c-define": '#define {u} "{v}"',
    "rust-const": 'const {u}: &str = "{v}";',
    "swift": 'let {c} = "{v}"',
    "r-assign": '{s} <- "{v}"',
    "perl": "my ${s} = '{v}';",
    "lua": 'local {s} = "{v}"',
    "elixir": 'config :app, {s}: "{v}"',
    "properties": "{d}={v}",
    "toml": '{s} = "{v}"',
    "hcl": '  {s} = "{v}"',
    "cli-flag": "deploy --{k}={v} --region eu-west-1",
    "cli-flag-spaced": 'deploy --{k} "{v}"',
    "suffixed-name": '{s}_prod = "{v}"',
    "header-dict": 'headers = {{"X-{k}": "{v}"}}',
    "query-param": "https://api.example.com/v1/items?{s}={v}&limit=10",
}

# Syntaxes for particular kinds (named in a kind's ``syntaxes``).
SPECIAL: dict[str, str] = {
    "azure-conn": "DefaultEndpointsProtocol=https;AccountName=acmemedia;AccountKey={v};"
                  "EndpointSuffix=core.windows.net",
    "servicebus-conn": "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
                       "SharedAccessKey={v}",
    "sas-url": "https://acme.blob.core.windows.net/media?sv=2022-11-02&ss=b&srt=sco&sp=rl"
               "&se=2030-01-01T00:00:00Z&sig={v}",
    "function-url": "https://acme-fn.azurewebsites.net/api/HttpTrigger1?code={v}",
    "header-ocp-apim": 'curl -H "Ocp-Apim-Subscription-Key: {v}" https://acme.azure-api.net/orders',
    "cookie": "Cookie: _gitlab_session={v}; event_filter=all",
    "k8s-secret": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-credentials\ntype: Opaque\ndata:\n"
                  "  config: {v}",
    "npmrc": "//registry.npmjs.org/:_authToken={v}",
    "nuget-config": '<packageSourceCredentials>\n  <acme>\n    <add key="Username" value="ci" />\n'
                    '    <add key="ClearTextPassword" value="{v}" />\n  </acme>\n</packageSourceCredentials>',
    "docker-config": '{{"auths": {{"registry.example.com": {{"auth": "{v}"}}}}}}',
    "bundler": "BUNDLE_ENTERPRISE__CONTRIBSYS__COM={v}",
    "bundler-export": 'export BUNDLE_ENTERPRISE__CONTRIBSYS__COM="{v}"',
    "bundler-config": '---\nBUNDLE_ENTERPRISE__CONTRIBSYS__COM: "{v}"',
    "contribsys-url": 'source "https://{v}@enterprise.contribsys.com/"',
    "contribsys-gemfile": 'source "https://{v}@gems.contribsys.com/" do\n  gem "sidekiq-pro"\nend',
    "contribsys-remote": "  remote: https://{v}@enterprise.contribsys.com/",
    "header-geniekey": 'curl -H "Authorization: GenieKey {v}" https://api.opsgenie.com/v2/alerts',
    "header-splunk": 'curl -k -H "Authorization: Splunk {v}" https://splunk.example.com:8088/services/collector',
    "header-apikey": 'curl -H "Authorization: ApiKey {v}" https://es.example.com:9200/_cat/indices',
    "header-ssws": "req.Header.Set(\"Authorization\", \"SSWS {v}\")",
    "header-deepl": 'requests.post(url, headers={{"Authorization": "DeepL-Auth-Key {v}"}})',
    "header-basic": "Authorization: Basic {v}",
    "header-bearer": 'fetch(url, {{ headers: {{ Authorization: "Bearer {v}" }} }})',
    "header-api-token": 'curl -H "Authorization: Api-Token {v}" https://monitoring.example.com/api/v2/metrics',
    "netrc": "machine api.example.com login deploy password {v}",
    "ado": "Server=tcp:sql.example.net,1433;Database=shop;User ID=shop;Password={v};Encrypt=true;",
    "url-postgres": '{s} = "postgres://app:{v}@db.internal:5432/app"',
    "url-mongo": 'const uri = "mongodb+srv://admin:{v}@cluster0.example.net/shop";',
    "url-amqp": "broker_url: amqp://worker:{v}@mq.internal:5672//",
    "url-redis": "REDIS_URL=redis://default:{v}@cache.internal:6379/0",
    "url-smtp": 'EMAIL_URL = "smtp://mailer:{v}@smtp.example.com:587"',
    "url-ftp": "curl -T build.zip ftp://deploy:{v}@files.example.com/upload/",
    "git-credentials": "https://octocat:{v}@github.com",
}

BARE: dict[str, str] = {
    "bare-log": "2024-05-01T12:00:00Z ERROR auth failed for credential {v} (401 Unauthorized)",
    "bare-line": "{v}",
    "bare-positional": 'client = Client("{v}")',
    "bare-traceback": 'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n'
                      '    api.login("{v}")\nValueError: rejected',
    "bare-markdown": "Run the job with `{v}` as its credential.",
    "bare-json-array": '["{v}"]',
    "bare-comment": "# rotated on Monday: {v}",
}

# Syntaxes where a value must be one line without spaces (multi-line values go in these only).
MULTILINE_OK = ("yaml-literal", "json", "python-double", "ini-spaced", "xml-element-multiline")
CONTEXT_NAMES = list(CONTEXT)
BARE_NAMES = list(BARE)


def _names(k: Kind) -> dict[str, str]:
    words = [w for w in (k.stem.split("_") + k.word.split("_")) if w]
    if k.stem.isupper():
        words = [k.stem]
    lower = [w.lower() for w in words]
    return {
        "c": lower[0] + "".join(w.capitalize() for w in lower[1:]),
        "s": "_".join(lower),
        "u": "_".join(lower).upper() if not k.stem.isupper() else k.stem,
        "k": "-".join(lower),
        "d": ".".join(lower),
    }


def _seeded(kind: str) -> None:
    _rng.seed(zlib.crc32(kind.encode()))


def _split(value: str) -> list[str]:
    """Two parts, cut inside the leading prefix, so no scanner sees the whole token in the data file."""
    cut = 2 if len(value) > 4 else 1
    return [value[:cut], value[cut:]]


def _value(k: Kind) -> tuple[str, str]:
    """(the text that goes in the line, the part of it that is secret)."""
    v = k.gen()
    return v if isinstance(v, tuple) else (v, v)


def records() -> list[dict]:
    """Every line of the corpus, secrets first, then the benign look-alikes."""
    out: list[dict] = []
    turn = {"context": 0, "multiline": 0, "bare": 0}  # syntaxes are dealt out in turn, so each gets its share

    def deal(pool: list[str], which: str, taken: list[str]) -> str:
        while True:
            name = pool[turn[which] % len(pool)]
            turn[which] += 1
            if name not in taken:
                return name

    for k in KINDS:
        _seeded(k.kind)
        names = _names(k)
        chosen: list[str] = list(k.syntaxes)
        multiline = "\n" in _value(k)[0]
        if multiline:
            while len(chosen) < 3:
                chosen.append(deal(list(MULTILINE_OK), "multiline", chosen))
            if k.bare:
                chosen.append(deal(["bare-line", "bare-comment"], "bare", chosen))
        else:
            while len(chosen) < 3:
                chosen.append(deal(CONTEXT_NAMES, "context", chosen))
            if k.bare:
                chosen.append(deal(BARE_NAMES, "bare", chosen))
        _seeded(k.kind + "/values")
        for syntax in chosen:
            template = SPECIAL.get(syntax) or CONTEXT.get(syntax) or BARE[syntax]
            full, secret = _value(k)
            if multiline and syntax == "yaml-literal":
                full, secret = full.replace("\n", "\n  "), secret.replace("\n", "\n  ")
            elif multiline and syntax in ("json", "python-double", "ini-spaced"):
                full, secret = full.replace("\n", "\\n"), secret.replace("\n", "\\n")
            text = template.format(v="\0", **names).replace("\0", full.replace(secret, SLOT, 1))
            out.append({"family": k.family, "kind": k.kind, "syntax": syntax, "text": text,
                        "secret": _split(secret)})
    for syntax, text in BENIGN:
        out.append({"family": "benign", "kind": "benign", "syntax": syntax, "text": text, "secret": None})
    return out


def secret_of(record: dict) -> str | None:
    return "".join(record["secret"]) if record["secret"] else None


def text_of(record: dict) -> str:
    s = secret_of(record)
    return record["text"].replace(SLOT, s) if s is not None else record["text"]


# ---------------------------------------------------------------------------------------------------
# Benign look-alikes: references, identifiers, hashes, public keys, ordinary base64. None may change.
# ---------------------------------------------------------------------------------------------------

def _benign() -> list[tuple[str, str]]:
    _seeded("benign")
    sha1, sha256 = h(40), h(64)
    integrity = b64(86) + "=="
    ssh_pub = "AAAAC3NzaC1lZDI1NTE5AAAAI" + b64(43)
    rsa_pub = "AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + b64(340)
    png = "iVBORw0KGgoAAAANSUhEUgAA" + b64(120) + "="
    woff = "d09GMgABAAAAA" + b64(200)
    u = uid()
    cert = "-----BEGIN CERTIFICATE-----\n" + "\n".join(b64(64) for _ in range(4)) + "\n-----END CERTIFICATE-----"
    pub = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(b64(64) for _ in range(3)) + "\n-----END PUBLIC KEY-----"
    lines = [
        # references to secrets held elsewhere
        ("ref-python-environ", 'db_password = os.environ["DB_PASSWORD"]'),
        ("ref-python-getenv", 'api_key = os.getenv("OPENAI_API_KEY")'),
        ("ref-python-environ-get", 'token = os.environ.get("GITHUB_TOKEN", "")'),
        ("ref-node", "const apiKey = process.env.API_KEY;"),
        ("ref-node-bracket", 'const secret = process.env["STRIPE_SECRET_KEY"];'),
        ("ref-deno", 'const token = Deno.env.get("SLACK_BOT_TOKEN");'),
        ("ref-java", 'String token = System.getenv("API_TOKEN");'),
        ("ref-java-property", 'String password = System.getProperty("db.password");'),
        ("ref-go", 'password := os.Getenv("DB_PASSWORD")'),
        ("ref-ruby", 'secret = ENV["SECRET_KEY_BASE"]'),
        ("ref-ruby-fetch", 'token = ENV.fetch("GITHUB_TOKEN")'),
        ("ref-php", "$password = getenv('DB_PASSWORD');"),
        ("ref-csharp", 'var key = Environment.GetEnvironmentVariable("API_KEY");'),
        ("ref-rust", 'let token = std::env::var("GITHUB_TOKEN")?;'),
        ("ref-actions", "          token: ${{ secrets.GITHUB_TOKEN }}"),
        ("ref-actions-env", "  NPM_TOKEN: ${{ secrets.NPM_TOKEN }}"),
        ("ref-shell", "export DB_PASSWORD=${DB_PASSWORD}"),
        ("ref-shell-default", 'API_TOKEN="${API_TOKEN:-}"'),
        ("ref-shell-dollar", 'curl -H "Authorization: Bearer $TOKEN" https://api.example.com'),
        ("ref-shell-url", 'psql "postgres://$PGUSER:$PGPASSWORD@$PGHOST/app"'),
        ("ref-compose", "      - POSTGRES_PASSWORD=${POSTGRES_PASSWORD}"),
        ("ref-jinja", 'db_password: "{{ vault_db_password }}"'),
        ("ref-helm", "  password: {{ .Values.redis.password | quote }}"),
        ("ref-terraform", "  password = var.db_password"),
        ("ref-terraform-secret", '  token = data.vault_generic_secret.ci.data["token"]'),
        ("ref-k8s-secret-key-ref", "        valueFrom:\n          secretKeyRef:\n            name: app-credentials\n"
                                   "            key: password"),
        ("ref-spring", "spring.datasource.password=${DB_PASSWORD}"),
        ("ref-dotnet", '"ConnectionStrings": {"Default": "Server=db;Password=$(SQL_PASSWORD)"}'),
        ("ref-arn", 'secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"'),
        ("ref-vault-path", 'vault_path = "secret/data/ci/deploy"'),
        ("ref-windows", "set API_KEY=%API_KEY%"),
        ("ref-placeholder", 'api_key = "<your-api-key>"'),
        ("ref-placeholder-env", 'API_KEY = "YOUR_API_KEY"'),
        ("ref-mask", 'password = "********"'),
        ("ref-mask-x", "STRIPE_SECRET_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"),
        ("ref-mask-gh", 'GITHUB_TOKEN = "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"'),
        ("ref-printf", 'msg = "password=%s" % masked'),
        ("ref-fstring", 'headers = {"Authorization": f"Bearer {token}"}'),
        ("ref-template-literal", "headers: { Authorization: `Bearer ${this.token}` },"),
        ("ref-header-slot", 'curl -H "Authorization: Bearer <token>" https://api.example.com'),
        ("ref-call", "token = get_token()"),
        ("ref-attr", "self.password = settings.DATABASE_PASSWORD"),
        ("ref-secret-manager", 'secret = client.access_secret_version(name="projects/p/secrets/db/versions/1")'),
        # names that mention a keyword, values that are no secrets
        ("name-token-url", 'TOKEN_URL = "https://oauth2.googleapis.com/token"'),
        ("name-max-tokens", "max_tokens = 4096"),
        ("name-tokenizer", 'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")'),
        ("name-password-length", "PASSWORD_MIN_LENGTH = 12"),
        ("name-token-expiry", "token_expiry_seconds: 3600"),
        ("name-auth-type", 'auth_type = "oauth2"'),
        ("name-secret-name", 'secret_name = "db-credentials"'),
        ("name-key-header", 'api_key_header = "X-API-Key"'),
        ("name-token-type", 'token_type = "Bearer"'),
        ("name-password-hash", "password_hash = bcrypt.hashpw(password.encode(), salt)"),
        ("name-key-path", 'private_key_path = Path("~/.ssh/id_rsa")'),
        ("name-eos-token", 'eos_token = "<|endoftext|>"'),
        ("name-pad-token", 'pad_token = "[PAD]"'),
        ("name-password-field", 'PASSWORD_FIELD = "password"'),
        ("name-key-enum", 'KEY_ESCAPE = "Escape"'),
        ("name-stripe-version", 'stripe_api_version = "2023-10-16"'),
        ("name-slack-channel", 'slack_channel = "#deploys"'),
        ("name-sentry-release", f'sentry_release = "{sha1}"'),
        ("name-twilio-sid", 'twilio_account_sid = "AC' + h(32) + '"'),
        ("name-aws-region", 'AWS_REGION = "us-east-1"'),
        ("name-aws-account", 'aws_account_id = "123456789012"'),
        ("name-github-repo", 'github_repo = "octocat/hello-world"'),
        ("name-token-budget", "    max_retries=3, token_budget=4096, api_key=api_key,"),
        ("name-password-policy", 'password_policy: "min 12 chars, one digit"'),
        ("name-key-name", 'key_name: "deploy-key-2024"'),
        ("name-auth-mode", "auth: none"),
        ("name-passwordless", "passwordless = true"),
        ("name-argparse", 'parser.add_argument("--password", help="the database password")'),
        ("name-html-input", '<input type="password" name="password" autocomplete="current-password">'),
        ("name-interface", "interface Credentials { password?: string; token: string | null }"),
        ("name-k8s-configmap", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n"
                               "  log_level: debug\n  token_ttl: \"3600\""),
        # identifiers, hashes and digests
        ("id-uuid", f'request_id = "{u}"'),
        ("id-uuid-json", f'{{"id": "{uid()}", "name": "Ada"}}'),
        ("id-uuid-url", f"https://api.example.com/v1/orders/{uid()}/items"),
        ("id-git-sha", f'commit = "{sha1}"'),
        ("id-git-log", f"commit {h(40)}\nAuthor: Ada <ada@example.com>"),
        ("id-git-short", "Merge pull request #42 from octocat/fix (a1b2c3d)"),
        ("id-sha256", f'checksum = "{sha256}"'),
        ("id-docker-digest", f"image: ghcr.io/acme/app@sha256:{h(64)}"),
        ("id-npm-integrity", f'      "integrity": "sha512-{integrity}",'),
        ("id-yarn-resolved", f'  resolved "https://registry.yarnpkg.com/lodash/-/lodash-4.17.21.tgz#{h(40)}"'),
        ("id-pnpm", f"    resolution: {{integrity: sha512-{b64(86)}==}}"),
        ("id-sri", f'<script src="/app.js" integrity="sha384-{b64(64)}" crossorigin="anonymous"></script>'),
        ("id-poetry-hash", f'    {{file = "requests-2.31.0.tar.gz", hash = "sha256:{h(64)}"}},'),
        ("id-pip-hash", f"requests==2.31.0 --hash=sha256:{h(64)}"),
        ("id-go-sum", f"golang.org/x/text v0.14.0 h1:{b64(43)}="),
        ("id-cargo-lock", f'checksum = "{h(64)}"'),
        ("id-etag", f'ETag: "{h(32)}"'),
        ("id-md5", f"md5sum: {h(32)}  dist/app.tar.gz"),
        ("id-css-hash", f'<link rel="stylesheet" href="/assets/app.{h(20)}.css">'),
        ("id-object-key", f'object_key = "uploads/{h(16)}/avatar.png"'),
        ("id-trace", f"traceparent: 00-{h(32)}-{h(16)}-01"),
        ("id-ulid", 'event_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"'),
        ("id-slack-channel-id", 'channel_id = "C024BE91L"'),
        ("id-stripe-customer", 'customer_id = "cus_' + a(14) + '"'),
        ("id-google-client-id", f'client_id = "{d(12)}-{al(32)}.apps.googleusercontent.com"'),
        ("id-s3-url", f"https://acme-media.s3.eu-west-1.amazonaws.com/{h(12)}/report.pdf"),
        ("id-mongo-objectid", f'{{"_id": {{"$oid": "{h(24)}"}}}}'),
        ("id-ipv6", "listen [2001:db8:85a3::8a2e:370:7334]:443"),
        ("id-semver", "version = \"1.2.3-rc.1+build.5\""),
        ("id-color", 'Token:              "#f8f8f2",  # class: ""'),
        # public keys and certificates, ordinary base64
        ("pub-ssh-ed25519", f"ssh-ed25519 {ssh_pub} ada@laptop"),
        ("pub-ssh-rsa", f"ssh-rsa {rsa_pub} deploy@ci"),
        ("pub-authorized-key", f'authorized_key: "ssh-ed25519 {"AAAAC3NzaC1lZDI1NTE5AAAAI" + b64(43)} ci"'),
        ("pub-known-hosts", f"github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI{b64(120)}="),
        ("pub-certificate", cert),
        ("pub-public-key", pub),
        ("pub-pem-markers", 'HEADER = "-----BEGIN PRIVATE KEY-----"\nFOOTER = "-----END PRIVATE KEY-----"'),
        ("b64-data-uri", f'<img src="data:image/png;base64,{png}" alt="logo">'),
        ("b64-css-font", f"src: url(data:font/woff2;base64,{woff}) format('woff2');"),
        ("b64-svg", 'icon = "data:image/svg+xml;base64,' + b64enc("<svg xmlns='http://www.w3.org/2000/svg'/>") + '"'),
        ("b64-json-payload", f'payload = "{b64enc(json.dumps({"event": "push", "ref": "main"}))}"'),
        ("b64-protobuf", f'descriptor = b"{b64(60)}"'),
        ("b64-test-fixture", f'expected = base64.b64decode("{b64(40)}")'),
        # prose and code that mention secrets
        ("prose-policy", "Passwords and tokens are never stored in plain text; the secret key rotates daily."),
        ("prose-docs", "Create a personal access token (it starts with ghp_) and paste it into the settings."),
        ("prose-url", "See https://docs.example.com/auth?section=tokens for the password policy."),
        ("prose-basic", "Basic usage: pass the token as the first argument."),
        ("code-compare", "if (password === confirmPassword) { submit({ password }) }"),
        ("code-loop", "for token in tokens: yield token.text"),
        ("code-sklearn", "risk = compute_risk(model='sk-learn-compatible-estimator')"),
        ("code-regex", 'TOKEN_RE = r"ghp_[A-Za-z0-9]{36}"'),
        ("code-key-tuple", "key = (name, version)"),
        ("code-docker-user", "docker run -u 1000:1000 -v $PWD:/src image"),
        ("code-git-ssh", "git clone git@github.com:org/repo.git"),
        ("code-url-no-password", 'url = "postgres://user@localhost:5432/app"'),
        ("code-url-port", 'url = f"https://{host}:{port}/api"'),
        ("code-auth-basic", 'auth = "Basic " + standard_b64encode(user_pass).decode("ascii")'),
        ("code-empty", 'REDIS_PASSWORD=""'),
        ("code-none", "password = None"),
        ("code-kwarg-var", "conn = connect(host=host, user=user, password=password)"),
        ("code-log", 'log.info("token refreshed for %s", user_id)'),
        ("code-gettext", '_("password", "Password")'),
        ("code-test-assert", 'assert resp.json()["token_type"] == "bearer"'),
        ("code-sql", 'query = "SELECT * FROM users WHERE password_hash = %s"'),
        ("code-yaml-anchor", "  password: *default_password"),
        ("code-makefile", "TOKEN_FILE ?= $(HOME)/.config/token"),
        ("code-cli-help", "  --api-key TEXT      Your API key (or set API_KEY)"),
        ("code-header-name", 'AUTH_HEADER = "Authorization"'),
        ("code-long-identifier", "const useAuthenticationTokenRefreshInterval = createRefreshHook(options);"),
        # look-alikes found by running the gate over real code (site-packages, system docs)
        ("real-rust-env", 'let token = std::env::var("GITHUB_TOKEN")?;'),
        ("real-header-names", 'SENSITIVE_HEADERS = ["Cookie", "Authorization", "Proxy-Authorization"]'),
        ("real-header-get", 'authorization = request.headers.get("Authorization")'),
        ("real-header-build", 'r.headers["Authorization"] = _basic_auth_str(self.username, self.password)'),
        ("real-header-wsse", """headers["authorization"] = 'WSSE profile="UsernameToken"'"""),
        ("real-header-concat", 'headers["authorization"] = "GoogleLogin Auth=" + self.Auth'),
        ("real-printf-flags", 'creds = " --username=%s --password=%s" % (user, pw)'),
        ("real-salt-bytes", 'salt = b"\\x00" * self._algorithm.digest_size'),
        ("real-oid-names", 'ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",'),
        ("real-type-names", 'key: typing.Union["rsa.RSAPrivateKey", "rsa.RSAPublicKey"],'),
        ("real-public-key-type", 'public_key: "_RSAPublicKey",'),
        ("real-package-version", '    "jsonwebtoken": "^9.0.0",'),
        ("real-objc-names", "COCOA = {'NSURLSession', 'NSURLSessionDataTask', 'PKPaymentPass', 'PKPaymentRequest'}"),
        ("real-type-annotation", "def _generic_cache_set(key: GenericTypesCacheKey, value: type[BaseModel]) -> None:"),
        ("real-alias", "BetaResponseComputerKeyToolUseBlock = BetaComputerKeyToolUseBlock"),
        ("real-gpg-fingerprint", f"gpg --keyserver hkps://keys.openpgp.org --recv-keys {h(40).upper()} # Ada"),
        ("real-pg-hba", '# METHOD can be "trust", "reject", "md5", "password", "scram-sha-256",'),
        ("real-netrc-doc", 'machine HOSTNAME login USERID password "PASSWORD"'),
        ("real-netrc-fstring", "return f'machine {hostname}{path} login {self.username} password {self.password}'"),
        ("real-wasm-base64", "module.exports = Buffer.from('AGFzbQEAAAAB" + b64(40) + "/EAA" + a(120) + "+" + b64(40)
         + "', 'base64')"),
        ("real-emoji", '    "salt": "\U0001f9c2",'),
        ("real-prose-authorization", "the authorization code is passed from the authorization request to the token request."),
    ]
    return lines


BENIGN: list[tuple[str, str]] = _benign()


def main() -> None:
    DATA.parent.mkdir(parents=True, exist_ok=True)
    with DATA.open("w", encoding="utf-8") as f:
        for rec in records():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    recs = records()
    kinds = {r["kind"] for r in recs if r["secret"]}
    print(f"wrote {DATA}: {sum(1 for r in recs if r['secret'])} secret lines of {len(kinds)} kinds, "
          f"{sum(1 for r in recs if not r['secret'])} benign lines")


if __name__ == "__main__":
    main()

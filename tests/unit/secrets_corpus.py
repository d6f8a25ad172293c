"""Fake secrets in the real formats of their providers, embedded in realistic files.

Every value is generated at runtime (``random.Random(7)``, the provider's alphabet and length, the
prefix joined by concatenation), so this file holds no literal that looks like a live credential and
nothing trips secret scanners such as GitHub push protection.

``CASES`` is a list of ``Case``: a file's text, the secrets in it as ``(value, kind)`` (each occurs
exactly once in the text) and substrings that must survive redaction (quotes, URL parts, PEM lines).
``INNOCUOUS`` is code that mentions passwords, tokens and keys but holds none: it must not change.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections import Counter
from dataclasses import dataclass, field

R = random.Random(7)

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
# Symbols that are safe in every file format below (no quotes, no URL/shell/comment delimiters).
PW_SYMBOLS = "!%^*-_+="
DJANGO = LOWER + DIGITS + "!@#%^&*(-_=+)"


def rand(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


def password(n: int = 14) -> str:
    """A strong password: starts with a letter, has a digit and a symbol."""
    return R.choice(LOWER) + rand(ALNUM + PW_SYMBOLS, n - 3) + R.choice(DIGITS) + R.choice("!%^*")


def url_password(n: int = 16) -> str:
    """A password as it appears in a URL's userinfo (unreserved characters only)."""
    return R.choice(UPPER) + rand(ALNUM + "-_.~", n - 2) + R.choice(DIGITS)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# --- provider formats -------------------------------------------------------------------------------

def aws_access_key(prefix: str = "AKIA") -> str:
    return prefix + rand(UPPER + "234567", 16)


def aws_secret_key() -> str:
    return rand(B64, 40)


def github(prefix: str) -> str:
    return prefix + "_" + rand(ALNUM, 36)


def github_pat() -> str:
    return "github" + "_pat_" + "11" + rand(UPPER + DIGITS, 20) + "_" + rand(ALNUM, 59)


def gitlab() -> str:
    return "gl" + "pat-" + rand(B64URL, 20)


def slack(prefix: str) -> str:
    return prefix + "-" + rand(DIGITS, 12) + "-" + rand(DIGITS, 13) + "-" + rand(ALNUM, 24)


def slack_webhook_path() -> str:
    return "T" + rand(UPPER + DIGITS, 8) + "/B" + rand(UPPER + DIGITS, 10) + "/" + rand(ALNUM, 24)


def stripe(prefix: str) -> str:
    return prefix + "_" + rand(ALNUM, 24)


def openai_legacy() -> str:
    return "sk" + "-" + rand(ALNUM, 20) + "T3Blbk" + "FJ" + rand(ALNUM, 20)


def openai_project() -> str:
    return "sk" + "-proj-" + rand(B64URL, 74) + "T3Blbk" + "FJ" + rand(B64URL, 74)


def anthropic() -> str:
    return "sk" + "-ant-api03-" + rand(B64URL, 93) + "AA"


def google_api_key() -> str:
    return "AI" + "za" + "Sy" + rand(B64URL, 33)


def jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": str(R.randrange(10**9)), "name": "Ada", "iat": 1700000000}).encode())
    return f"{header}.{payload}.{rand(B64URL, 43)}"


def npm() -> str:
    return "npm" + "_" + rand(ALNUM, 36)


def pypi() -> str:
    return "pypi" + "-AgEIcHlwaS5vcmc" + rand(B64URL, 150)


def sendgrid() -> str:
    return "SG" + "." + rand(B64URL, 22) + "." + rand(B64URL, 43)


def huggingface() -> str:
    return "hf" + "_" + rand(UPPER + LOWER, 34)


def shopify() -> str:
    return "shp" + "at_" + rand(HEX, 32)


def discord_webhook_path() -> str:
    return rand(DIGITS, 18) + "/" + rand(B64URL, 68)


def pem_body(lines: int, width: int = 64) -> list[str]:
    out = [rand(B64, width) for _ in range(lines)]
    return [*out, rand(B64, R.randrange(8, width - 2)) + "=="]


# --- the cases --------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    text: str = ""
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (value, kind)
    keep: list[str] = field(default_factory=list)  # substrings that must survive

    def s(self, kind: str, value: str) -> str:
        """Register a secret and return it, for use inside the case's f-string."""
        self.secrets.append((value, kind))
        return value

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind in self.secrets))


def python_settings() -> Case:
    c = Case("settings.py")
    c.text = f'''"""Django settings for the shop project."""
import os
from pydantic_settings import BaseSettings

DEBUG = False
SECRET_KEY = "{c.s("django-secret-key", "django-insecure-" + rand(DJANGO, 50))}"
ALLOWED_HOSTS = ["shop.example.com"]

DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "shop",
        "PASSWORD": "{c.s("password", password())}",
        "HOST": "db.internal",
        "PORT": 5432,
    }}
}}

AWS_ACCESS_KEY_ID = "{c.s("aws-access-key", aws_access_key())}"
AWS_SECRET_ACCESS_KEY = "{c.s("aws-secret-key", aws_secret_key())}"
AWS_STORAGE_BUCKET_NAME = "shop-media"
STRIPE_SECRET_KEY = "{c.s("stripe-key", stripe("sk" + "_live"))}"
OPENAI_API_KEY = "{c.s("openai-key", openai_project())}"
ANTHROPIC_API_KEY = '{c.s("anthropic-key", anthropic())}'
GOOGLE_MAPS_API_KEY = "{c.s("google-api-key", google_api_key())}"
CELERY_BROKER_URL = "redis://:{c.s("password", url_password())}@cache.internal:6379/0"
EMAIL_HOST = "smtp.example.com"
EMAIL_HOST_PASSWORD = "{c.s("password", password())}"

openai.api_key = "{c.s("openai-key", openai_legacy())}"


class Settings(BaseSettings):
    api_token: str = "{c.s("token", rand(HEX, 40))}"
    timeout: int = 30
    password_min_length: int = 12
'''
    c.keep = ['"PASSWORD": "<redacted:password>"', "redis://:<redacted:password>@cache.internal:6379/0",
              'AWS_STORAGE_BUCKET_NAME = "shop-media"', "api_token: str = \"<redacted:token>\"",
              "password_min_length: int = 12"]
    return c


def dotenv() -> Case:
    c = Case(".env")
    c.text = f"""# Local development settings -- never commit
DATABASE_URL=postgres://shop:{c.s("password", url_password())}@localhost:5432/shop
GITHUB_TOKEN={c.s("github-token", github("ghp"))}
GITLAB_TOKEN={c.s("gitlab-token", gitlab())}
SLACK_BOT_TOKEN={c.s("slack-token", slack("xoxb"))}
SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{c.s("slack-webhook", slack_webhook_path())}
export NPM_TOKEN={c.s("npm-token", npm())}
HF_TOKEN={c.s("huggingface-token", huggingface())}
SESSION_SECRET={c.s("secret", rand(HEX, 64))}
export API_KEY='{c.s("api-key", rand(ALNUM, 31) + "7")}'
AWS_ACCESS_KEY_ID={c.s("aws-access-key", aws_access_key("ASIA"))}
AWS_SESSION_TOKEN={c.s("aws-session-token", "IQoJb3JpZ2luX2Vj" + rand(B64, 200) + "=")}
REDIS_PASSWORD=
LOG_LEVEL=debug
"""
    c.keep = ["postgres://shop:<redacted:password>@localhost:5432/shop", "REDIS_PASSWORD=\n",
              "LOG_LEVEL=debug", "https://hooks.slack.com/services/<redacted:slack-webhook>"]
    return c


def yaml_config() -> Case:
    c = Case("config.yaml")
    c.text = f"""database:
  host: db.internal
  port: 5432
  username: shop
  password: "{c.s("password", password())}"
smtp:
  host: smtp.example.com
  password: {c.s("password", password())}
github:
  token: {c.s("github-token", github("gho"))}
  client_secret: {c.s("secret", rand(HEX, 40))}
stripe:
  publishable_key: {c.s("stripe-key", stripe("pk" + "_live"))}
  webhook_secret: "{c.s("stripe-key", "whsec" + "_" + rand(ALNUM, 32))}"
  restricted_key: {c.s("stripe-key", stripe("rk" + "_live"))}
auth:
  mode: jwt
  service_jwt: {c.s("jwt", jwt())}
sendgrid_api_key: {c.s("sendgrid-key", sendgrid())}
slack:
  user_token: {c.s("slack-token", slack("xoxp"))}
  app_token: '{c.s("slack-token", slack("xoxa"))}'
  refresh: {c.s("slack-token", slack("xoxr"))}
"""
    c.keep = ['password: "<redacted:password>"', "  mode: jwt\n", "username: shop"]
    return c


def js_config() -> Case:
    c = Case("config.js")
    c.text = f"""// Application configuration
module.exports = {{
  port: 3000,
  apiKey: "{c.s("api-key", rand(ALNUM, 39) + "1")}",
  githubToken: '{c.s("github-token", github("ghs"))}',
  oauthUserToken: "{c.s("github-token", github("ghu"))}",
  slack: {{ token: "{c.s("slack-token", slack("xoxb"))}" }},
  db: {{ url: "mongodb+srv://admin:{c.s("password", url_password())}@cluster0.example.net/shop" }},
  accessKey: `{c.s("access-key", rand(ALNUM, 31) + "9")}`,
  stripe: process.env.STRIPE_KEY,
  alerts: "https://discord.com/api/webhooks/{c.s("discord-webhook", discord_webhook_path())}",
}};

const client = axios.create({{
  headers: {{ Authorization: "Bearer {c.s("bearer-token", "a1" + rand(B64URL, 38))}" }},
}});
"""
    c.keep = ["mongodb+srv://admin:<redacted:password>@cluster0.example.net/shop", "stripe: process.env.STRIPE_KEY",
              'apiKey: "<redacted:api-key>",', "accessKey: `<redacted:access-key>`"]
    return c


def curl_command() -> Case:
    c = Case("deploy.sh")
    basic = base64.b64encode(f"deploy:{password()}".encode()).decode()
    c.text = f"""#!/bin/sh
curl -X POST https://api.example.com/v1/releases \\
  -H "Authorization: Bearer {c.s("bearer-token", rand(B64URL, 31) + "4")}" \\
  -H "X-Api-Key: {c.s("api-key", rand(HEX, 32))}" \\
  -H "Content-Type: application/json" \\
  -d '{{"version": "1.2.3", "password": "{c.s("password", password())}"}}'

curl -u admin:{c.s("password", password())} https://ci.example.com/job/deploy/build
curl "https://api.example.com/v1/items?api_key={c.s("api-key", rand(ALNUM, 31) + "2")}&format=json"
curl -H 'Authorization: Basic {c.s("basic-auth", basic)}' https://registry.example.com/v2/
mysql --password={c.s("password", password())} -h db.internal shop
docker login --username ci --password "{c.s("password", password())}" registry.example.com
echo "{c.s("github-token", github("ghr"))}" | gh auth login --with-token
"""
    c.keep = ['"Content-Type: application/json"', "https://api.example.com/v1/releases",
              "curl -u admin:<redacted:password> https://ci.example.com", "&format=json",
              '"password": "<redacted:password>"']
    return c


def private_keys() -> Case:
    c = Case("keys")
    rsa = "\n".join(pem_body(24))
    openssh = "\n".join(pem_body(6, 70))
    ec = "\n".join(pem_body(3))
    encrypted = "\n".join(pem_body(16))
    legacy_encrypted = (  # the encryption headers go with the key material
        f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,{rand(HEX.upper(), 32)}\n\n" + "\n".join(pem_body(12))
    )
    sa_key = "\\n".join(pem_body(20))
    c.text = f"""-----BEGIN RSA PRIVATE KEY-----
{c.s("private-key", rsa)}
-----END RSA PRIVATE KEY-----
-----BEGIN OPENSSH PRIVATE KEY-----
{c.s("private-key", openssh)}
-----END OPENSSH PRIVATE KEY-----

EC_KEY = \"\"\"-----BEGIN EC PRIVATE KEY-----
{c.s("private-key", ec)}
-----END EC PRIVATE KEY-----
\"\"\"

-----BEGIN ENCRYPTED PRIVATE KEY-----
{c.s("private-key", encrypted)}
-----END ENCRYPTED PRIVATE KEY-----
-----BEGIN RSA PRIVATE KEY-----
{c.s("private-key", legacy_encrypted)}
-----END RSA PRIVATE KEY-----

service_account = {{
  "type": "service_account",
  "project_id": "shop-prod",
  "private_key": "-----BEGIN PRIVATE KEY-----\\n{c.s("private-key", sa_key)}\\n-----END PRIVATE KEY-----\\n",
  "client_email": "deployer@shop-prod.iam.gserviceaccount.com",
}}
"""
    c.keep = ["-----BEGIN RSA PRIVATE KEY-----\n", "\n-----END RSA PRIVATE KEY-----\n",
              "-----BEGIN OPENSSH PRIVATE KEY-----\n<redacted:private-key>\n-----END OPENSSH PRIVATE KEY-----",
              '"private_key": "-----BEGIN PRIVATE KEY-----\\n<redacted:private-key>\\n-----END PRIVATE KEY-----\\n",',
              '"client_email": "deployer@shop-prod.iam.gserviceaccount.com"', 'EC_KEY = """-----BEGIN EC']
    return c


def connection_strings() -> Case:
    c = Case("application.properties")
    url_pw, account_key = url_password(), rand(B64, 86) + "=="
    c.text = f"""# Spring datasource
spring.datasource.url=jdbc:postgresql://db.internal:5432/shop?user=shop&password={c.s("password", url_pw)}&ssl=true
spring.datasource.username=shop
spring.datasource.password={c.s("password", password())}
reporting.url=jdbc:mysql://root:{c.s("password", url_password())}@localhost:3306/reports
legacy.url=jdbc:oracle:thin:scott/{c.s("password", url_password())}@legacy.internal:1521:ORCL
mssql=Server=tcp:db.example.net,1433;Database=shop;User ID=shop;Password={c.s("password", password())};Encrypt=true;
storage=DefaultEndpointsProtocol=https;AccountName=shopmedia;AccountKey={c.s("secret", account_key)};EndpointSuffix=core.windows.net
"""
    c.keep = ["jdbc:postgresql://db.internal:5432/shop?user=shop&password=<redacted:password>&ssl=true",
              "jdbc:mysql://root:<redacted:password>@localhost:3306/reports", "AccountName=shopmedia;",
              "spring.datasource.username=shop"]
    return c


def misc_languages() -> Case:
    c = Case("misc")
    c.text = f"""// Go
const githubPAT = "{c.s("github-token", github_pat())}"
var dbPassword = "{c.s("password", password())}"

func connect() {{
\tpassword := "{c.s("password", password())}"
\tdsn := fmt.Sprintf("postgresql://app_user:{c.s("password", url_password())}@10.0.0.5:5432/prod")
}}

# pyproject / poetry auth (TOML)
[http-basic.private]
username = "ci"
password = "{c.s("password", password())}"
pypi_token = "{c.s("pypi-token", pypi())}"

# Ruby
@auth_token = '{c.s("token", rand(ALNUM, 23) + "5")}'
# PHP
$db_pass = "{c.s("password", password())}";
# Maven settings.xml
<server><id>releases</id><password>{c.s("password", password())}</password></server>
# Shopify
SHOPIFY_ADMIN = "{c.s("shopify-token", shopify())}"
"""
    c.keep = ['username = "ci"', "<server><id>releases</id><password><redacted:password></password></server>",
              '\tpassword := "<redacted:password>"']
    return c


CASES: list[Case] = [
    python_settings(), dotenv(), yaml_config(), js_config(), curl_command(), private_keys(),
    connection_strings(), misc_languages(),
]
ALL_SECRETS: list[tuple[str, str]] = [s for case in CASES for s in case.secrets]


# --- code that must come through byte-identical ---------------------------------------------------

INNOCUOUS: list[str] = [
    "password = None",
    'password = ""',
    "token = get_token()",
    "password: str",
    'secret_key = os.environ["SECRET_KEY"]',
    "def login(self, username: str, password: str) -> bool:",
    "    if not password:",
    'token = request.headers.get("Authorization", "")',
    "self.password = password",
    "conn = connect(host=host, user=user, password=password)",
    'api_key = os.getenv("OPENAI_API_KEY")',
    'TOKEN_URL = "https://oauth2.googleapis.com/token"',
    "max_tokens = 128",
    'tokenizer = AutoTokenizer.from_pretrained("gpt2")',
    'eos_token = "<|endoftext|>"',
    'PASSWORD = "password"',
    'print("Enter your password: " + prompt_suffix + "!")',
    'log.error("invalid token: " + str(exc) + " (try again)")',
    'headers = {"Authorization": f"Bearer {token}"}',
    "# Reset your password from the account settings page.",
    "The secret to good code is small functions; a token of appreciation.",
    "password_hash = bcrypt.hashpw(password.encode(), salt)",
    "export DB_PASSWORD=${DB_PASSWORD}",
    'db_password: "{{ vault_db_password }}"',
    'url = "postgres://user@localhost:5432/app"',
    'url = f"https://{host}:{port}/api"',
    "risk_assessment_score = compute_risk(model='sk-learn-compatible-estimator')",
    "interface Credentials { password?: string; token: string | null }",
    "auth: none",
    'private_key_path = Path("~/.ssh/id_rsa")',
    "const apiKey = process.env.API_KEY;",
    'password := os.Getenv("DB_PASSWORD")',
    'curl -H "Authorization: Bearer $TOKEN" https://api.example.com',
    "docker run -u 1000:1000 -v $PWD:/src image",
    'SECRET_KEY = env("SECRET_KEY")',
    'token_type = "Bearer"',
    'API_KEY = "YOUR_API_KEY"',
    'api_key = "<your-api-key>"',
    'password = "********"',
    "git clone git@github.com:org/repo.git",
    "for token in tokens: yield token.text",
    "key = (name, version)",
    'parser.add_argument("--password", help="the database password")',
    'query = "SELECT * FROM users WHERE password_hash = %s"',
    'msg = "password=%s" % masked',
    "<input type=\"password\" name=\"password\" autocomplete=\"current-password\">",
    "Basic usage: pass the token as the first argument.",
    "if (password === confirmPassword) { submit({ password }) }",
    "password: Optional[str] = None",
    "  password: pw,",
    # from real libraries (pygments, h11, httpx, httpcore, rich)
    'Token:              "#f8f8f2",  # class: ""',
    "token = r\"[-!#$%&'*+.^_`|~0-9a-zA-Z]+\"",
    'auth = "Basic " + standard_b64encode(user_pass).decode("ascii")',
    'For example `{"Proxy-Authorization": "Basic <username>:<password>"}`.',
    "auth = (url.username, url.password)",
    "async def execute(s, command: str, *args, msg_id=None, token=None):",
    '{"cloud": {"token": {"nested": "x"}}}',
    '"--auth [cyan]<USER PASS>",',
    'pad_token = "[PAD]"',
    "    max_retries=3, token_budget=4096, api_key=api_key,",
]

"""Which brain does the work: the local model or the cloud model.

Pure decision logic, no I/O (the circuit breaker reads a clock it is given):

* ``TASK_TIERS`` — the fixed tier of each task type; ``"ask"`` is decided per request.
* ``classify_ask`` — scores a ``tandem.ask`` request with weighted, named features (phrases, plus
  length/structure signals) and names the deciding ones in the route's reason.
* ``decide`` — the tier a task runs on once availability is known (cloud disabled, no key, budget,
  circuit breaker, local model down), with the fallback explained.
* ``CircuitBreaker`` — opens on 429s (for Retry-After) and on runs of other failures (backoff).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CLOUD",
    "COMMANDS",
    "FAILURE_KINDS",
    "IGNORED_KINDS",
    "LOCAL",
    "PER_REQUEST",
    "TASK_TIERS",
    "CircuitBreaker",
    "CloudState",
    "Decision",
    "Feature",
    "Route",
    "classify_ask",
    "decide",
    "score_ask",
]

LOCAL = "local"
CLOUD = "cloud"
PER_REQUEST = "per-request"

# Task type -> tier. Code actions may be dispatched as "code_action" or by their own names.
TASK_TIERS: dict[str, str] = {
    "completion": LOCAL,
    "code_action": LOCAL,
    "add_docstring": LOCAL,
    "add_type_hints": LOCAL,
    "fix_diagnostic": LOCAL,
    "explain_code": LOCAL,
    "explain_failure": CLOUD,
    "plan_refactor": CLOUD,
    "ask": PER_REQUEST,
}

# Commands the user invoked explicitly: they may cross to the other tier when theirs is unavailable.
COMMANDS = frozenset({"explain_failure", "plan_refactor", "ask"})


# --- classify_ask ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    tier: str  # LOCAL | CLOUD
    reason: str  # a short human sentence naming the deciding features
    score: float = 0.0  # > 0 leans cloud, < 0 leans local
    features: tuple[tuple[str, float], ...] = ()  # every feature that fired, with its weight


@dataclass(frozen=True)
class Feature:
    name: str  # shown in reasons
    weight: float  # < 0: schema-like (local); > 0: open-ended (cloud)
    pattern: re.Pattern[str]
    raw: bool = False  # match the raw prompt instead of the prose (code stripped)
    task: bool = True  # local side: names a schema-like job (False: only a hint, e.g. "small scope")


def _f(name: str, weight: float, pattern: str, *, raw: bool = False, task: bool = True) -> Feature:
    return Feature(name, weight, re.compile(pattern, re.IGNORECASE), raw, task)


# Schema-like task verbs and objects: the shape of the answer is known in advance.
LOCAL_FEATURES: tuple[Feature, ...] = (
    _f("rename", -3.0, r"\brenam(e|es|ed|ing)\b"),
    _f("naming convention", -2.5, r"snake[_ -]?case|camel[_ -]?case|pascal[_ -]?case|kebab[_ -]?case",
       raw=True),
    _f("documentation", -3.0, r"\bdocstrings?\b|\bdocumentation\b|\bcomments?\b"
       r"|\bdocument(ing)? (this|the|these|those|each|every|all|its|what|how|it)\b"
       r"|\bcommit message\b|\bchangelog\b"),
    _f("type hints", -3.0, r"\btype[- ]?hints?\b|\bannotat(e|ions?)\b"),
    _f("conversion", -2.0, r"\b(convert|translate|turn|transform|change|rewrite)\b[^.?!]{0,80}?\b(into|to|as)\b"
       r"|\binstead of\b|\breplace\b[^.?!]{0,80}?\bwith\b"),
    _f("data format", -1.0, r"\b(json|yaml|toml|csv|xml|ini|markdown|f-strings?|list comprehension"
       r"|dict(ionary)?|enum|dataclass|typeddict|named ?tuple)\b", task=False),
    _f("formatting", -2.5, r"\b(re)?format\b|\bindent(ation)?\b|\bwhitespace\b|\bpretty[- ]print\b"
       r"|\breadable\b|\bline length\b|\b(wrap|split|break)\b[^.?!]{0,30}\blines?\b"
       r"|\b\d+ (characters|chars|columns)\b"),
    _f("sorting", -2.5, r"\bsort(ed|ing)?\b|\balphabetic"),
    _f("listing", -2.0, r"^\W*list\b|\blist (all|the|every|each)\b"),
    _f("extraction", -2.0, r"\bextract\b|\bpull\b[^.?!]{0,60}?\bout\b"),
    _f("summary", -2.5, r"(?<!here's a )(?<!here is a )(?<!this )\bsummar(y|ise|ize|ising|izing)\b"
       r"|\btl;?dr\b|\bone[- ]line\b|\bbriefly\b|\bin a nutshell\b"
       r"|\bin (a|one|two|three|a few) sentences?\b"),
    _f("classification", -2.5, r"\bclassify\b|\bcategori[sz]e\b"),
    # Asked to make or explain one; "this regex takes minutes" is a problem report, not a regex task.
    _f("regex", -3.0, r"\b(write|create|generate|build|make|give me|need|want|explain|fix)\b[^.?!]{0,30}"
       r"\b(regex(es|p)?|regular expressions?)\b|\b(regex(es|p)?|regular expressions?) (that|to|for|which)\b"),
    # Boilerplate objects count when asked for ("write a CLI"), not as a topic ("the CLI ignores …").
    _f("boilerplate", -2.5, r"\bboilerplate\b|\bscaffold|\bfake (data|users?|records?)\b|\bsample data\b"
       r"|\btest data\b|\b(write|create|generate|build|make|add|set up|give me)\b[^.?!]{0,40}"
       r"\b(fixtures?|stubs?|template|argparse|cli|mocks?|dockerfile|makefile|workflow|config file)\b"),
    _f("dunder method", -2.0, r"__\w+__", raw=True),
    _f("mechanical edit", -1.5, r"\b(re)?order (the|these|this)\b|\bgroup (these|the|them)\b|\barrange\b"
       r"|\bcapitali[sz]e\b|\b(remove|delete) (the |all )?(unused|dead|commented|duplicate|trailing)\b"
       r"|\b(lower|upper)-?case\b|\bmove (the|these|this|those)\b|\bwrap (this|the|these)\b"),
    _f("generation", -1.0, r"^\W*(write|generate|create|add|make|give|fill in|produce|rewrite|remove"
       r"|delete|wrap|invert|simplify|inline|update)\b"),
    _f("small scope", -1.0, r"\bthis (line|function|snippet|block|loop|expression|class|method"
       r"|statement|query|file|list|dict)\b", task=False),
    _f("question about a snippet", -1.5, r"^\W*(what|which|where|how)\b[^.?!]{0,50}\b(in|on|of) this "
       r"(snippet|line|expression|loop|statement)\b"),
    _f("short explanation", -1.5, r"^\W*(what|which)( \w+){0,2} (does|do|is|are)\b|^\W*what's\b"
       r"|^\W*explain (what|this|the)\b"),
)

# Open-ended work: the answer needs investigation, judgement or several steps.
CLOUD_FEATURES: tuple[Feature, ...] = (
    _f("root-cause question (why)", 3.0, r"\bwhy\b"),
    _f("debugging", 3.0, r"what'?s wrong|what'?s going on|what could (cause|break)|\broot cause\b"
       r"|\bfigure out\b|\bfind out\b|\bwork out\b|\btrack down\b|\bdebug(ging)?\b|\bdiagnos"
       r"|\binvestigat|where('s| is) the bug|any idea|\bwhere (could|might)\b"
       r"|\bhow (do|can|would|should) (i|we) fix\b|\blikely cause\b|\bwhat causes\b|\bcausing\b"),
    _f("failure symptom", 2.0, r"\bfail(s|ed|ing|ure)?\b|\bhang(s|ing)?\b|\bcrash(es|ing)?\b|\bstuck\b"
       r"|\bfreez|\bdeadlock|\bwrong (answer|result|value)|\boff by\b|\bbroken\b|doesn'?t work"
       r"|\bforever\b|\bleak|\bdiverge|\bbug\b|\bsegfault|\bsigsegv\b|\bcore dump|\bpanic"),
    _f("problem report", 2.0, r"\b(we'?re|we are|i'?m|i am) (hitting|seeing|getting)\b"
       r"|\b(users?|customers?|people|clients) (see|get|report|are seeing|are getting|complain)"
       r"|\bunder (heavy )?load\b|\bafter (a few|several|some|many) (hours|days|minutes|requests|runs)\b"
       r"|\bgarbled\b|\bcorrupt|\bmojibake\b|\btoo many\b|\bkeeps? (\w+ing|getting)\b"
       r"|\b(disappear|vanish|duplicat)\w*\b|\boom\b|\bout of memory\b|\bkilled\b"
       r"|\bbut not (in|on|with|for|when)\b|\bnothing (obvious(ly)? )?changed\b|\bignor(es|ed|ing)\b"),
    _f("unexpected behaviour", 1.5, r"\b(doesn'?t|does not|won'?t|will not|isn'?t being|never gets?)\s+\w+"),
    _f("concurrency", 2.0, r"\bdeadlock|\brace( condition)?s?\b|\bthread(s|ed|ing)?\b|\bconcurren"
       r"|\block(s|ing|-free)?\b|\bmutex|\batomic|\blease\b|\basync|\bawait\b|\bparallel"
       r"|\bthread[- ]safe|\btwo (users|requests|processes|workers|clients)\b|\bsimultaneous"
       r"|\bat the same time\b|\btwice\b|\bback-?pressure\b"),
    _f("intermittent", 2.5, r"\bflaky\b|\bintermittent|\bsometimes\b|\boccasional|\brandomly\b"
       r"|\bone (run|time) in\b|\bevery few\b|\bonly (happens|for|when)\b"),
    _f("performance", 2.5, r"\bslow(er|ly|down)?\b|\blatency\b|\bp9\d\b|\bthroughput\b|\bmemory\b"
       r"|\bcpu\b|\b(doubled|tripled)\b|\bcold start|\bstartup time\b|\bspeed up\b|\boptimi[sz]"
       r"|\btakes? (\d+ )?(minutes|hours|seconds|forever|ages)\b|\btoo long\b|\bunbounded\b"
       r"|\bwithout bound\b|\bgrow(s|ing)? (forever|without)|\b\d+k? (requests|rps|qps)\b"
       r"|\bper second\b|\bat scale\b"
       r"|\bperformance\b|\bprofil|\bn\+1\b|\b\d+x (slower|faster)\b|\bbottleneck|\bspikes?\b"),
    _f("security", 2.0, r"\bsecur(e|ity)\b|\bvulnerab|\binject|\bexploit|\battacker"
       r"|\bauth(entication|orization)?\b|\bcsrf\b|\bxss\b|\bpermissions? model\b|\bprivilege"
       r"|\bsignatures?\b|\btiming[- ](safe|attack)|\bcredentials?\b|\bsanitiz|\buntrusted\b"
       r"|\bis (it|this|that) safe\b"),
    _f("review", 2.0, r"\breview\b|\baudit\b|\brisk(s|y)?\b|\bwhat could go wrong\b"),
    _f("design/architecture", 3.0, r"\bdesign\b|\barchitect|\bstructure\b|\bplugin system\b|\binterface\b"
       r"|\babstraction\b|\bdecouple|\bseparate\b[^.?!]{0,60}?\bfrom\b|\btrade-?offs?\b|\bpros and cons\b"
       r"|\bsemantics\b|\bschema for (storing|modell?ing)\b|\bdata model(l)?ing\b"
       r"|\b(suggest|propose) an? (schema|approach|design|layout|strategy)\b"
       r"|\bhelp me (model|design|structure|think)\b|\breconcile\b"),
    _f("multi-step plan", 2.5, r"\bplan\b|\bmigrat|\broll(ing)? (it )?out\b|\bzero[- ]downtime\b"
       r"|\bstep[- ]by[- ]step\b|\broadmap\b|\boutline how\b|\bacross the (code ?base|repo(sitory)?|project)\b"
       r"|\bevery place\b|\bconsistent(ly)? across\b|\bwhere (do|should) (we|i) (even )?start\b"),
    _f("decision/comparison", 2.5, r"\bshould (we|i)\b|\bwhich (one|of)\b|\bbest way\b|\brecommend"
       r"|\bcompare\b|\bversus\b|(?-i:\bvs\b)\.?|\bchoose\b|\bdecide\b|\bworth it\b|\bpick between\b"
       r"|\b(good|bad|better) idea\b|\bevaluate\b|\bassess\b|\bwhether (we|i) (can|should)\b"
       r"|\b(safest|best|cleanest|right|proper|recommended) (way|order|approach|place|time)\b"
       r"|\bor\b[^.?!,]*\?"),  # "A or B?"
    _f("reasoning", 2.0, r"\bargue\b|\bprove\b|\breason about\b|\binvariants?\b|\bcorrect(ness)?\b"
       r"|\bguarantee|\bimplications?\b|\bconsequences\b|\bwhat (happens|would happen) (if|when)\b"
       r"|\bwhat if\b|\b(does|will|would) (this|it) (cover|handle|survive|scale)\b|\bgoing to\b"
       r"|\bside[- ]effects?\b|\bactually (does|do|happens)\b|\bflows? through\b"),
    _f("constraints to preserve", 2.0, r"\bwithout (breaking|downtime|losing|changing)\b|\bpreserv"
       r"|\bcompatib"),
    _f("environment-specific", 2.0, r"\bin ci\b|\bprod(uction)?\b|\blocally but\b|\boutage\b"
       r"|\bon (windows|macos|mac|linux|arm|safari|firefox|chrome|ios|android)\b"
       r"|\bincident\b|\b5\d\d\b|\b5\d\ds\b|\b5xx\b"),
    _f("regression", 2.5, r"\bsince (the|we|our|last|yesterday|upgrading)\b|\bdropped\b|\bno longer\b"
       r"|\bused to\b|\bregress|\bstopped working\b|\bafter (the|we|our) (deploy|upgrade|release|update)"),
    _f("broad scope", 2.0, r"\bproduction[- ]ready\b|\b(can|could) ship\b|\bshippable\b|\brobust\b"
       r"|\bharden|\bidempoten|\bscalab|\bend[- ]to[- ]end\b"),
    _f("vague request", 2.0, r"\b(better|weird|strange|odd|not sure|improve|clean ?up)\b"),
)

FEATURES = LOCAL_FEATURES + CLOUD_FEATURES

_TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+|^\s*at [\w.$]+\(.*:\d+\)"
    r"|^\w+(\.\w+)*(Error|Exception|Warning): |panicked at|Segmentation fault",
    re.MULTILINE,
)
_FENCED = re.compile(r"```.*?(```|$)", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]*`")
_QUOTED = re.compile(r"(?<!\w)(['\"])[^'\"\s]+\1")
# Identifiers in prose (snake_case, camelCase, dotted names, calls) say nothing about the task.
_IDENT = re.compile(r"\b\w*_\w*\b|\b[a-z]+[A-Z]\w*\b|\b\w+(\.\w+)+\b|\b\w+\(\)")
# "...: error handling, config, tests, packaging" — a colon introducing 3+ comma-separated asks.
_ENUMERATION = re.compile(r":[^.?!:]*?,[^.?!:,]+,[^.?!:]+")
_NUMBERED = re.compile(r"^\s*(\d+[.)]|[-*•])\s+\S", re.MULTILINE)

LARGE_CONTEXT_CHARS = 12_000
HUGE_CONTEXT_CHARS = 40_000
LONG_PROMPT_WORDS = 60


def _prose(prompt: str) -> str:
    """The prompt with code, tracebacks, quoted tokens and identifiers blanked out."""
    text = _FENCED.sub(" ", prompt)
    text = "\n".join(line for line in text.splitlines() if not _TRACEBACK.search(line)
                     and not re.match(r"^\s{2,}\S", line))
    text = _INLINE.sub(" ", text)
    text = _QUOTED.sub(" ", text)
    text = _IDENT.sub(" ", text)
    return text


def score_ask(prompt: str, *, context_chars: int = 0, files: int = 1) -> list[tuple[str, float]]:
    """Every feature that fires for the request, with its weight (each feature counts once)."""
    raw = prompt.strip()
    prose = _prose(raw)
    fired: list[tuple[str, float]] = []
    for feat in FEATURES:
        if feat.pattern.search(raw if feat.raw else prose):
            fired.append((feat.name, feat.weight))

    # Structure signals. Local routing needs a recognised schema-like task; a request that names
    # none is open-ended or ambiguous, which leans cloud (a real tie — signals cancelling — stays local).
    if raw and not any(f.task and f.weight < 0 and f.pattern.search(raw if f.raw else prose)
                       for f in LOCAL_FEATURES):
        fired.append(("no schema-like task named", 1.0))
    if _TRACEBACK.search(raw):
        fired.append(("traceback", 3.0))
    questions = prose.count("?")
    if questions and not any(n == "short explanation" for n, _ in fired):
        fired.append(("open question", 1.0))
    if questions >= 2:
        fired.append((f"{questions} questions", 1.0))
    if _ENUMERATION.search(prose):
        fired.append(("several requirements", 1.0))
    if len(_NUMBERED.findall(raw)) >= 2:
        fired.append(("numbered steps", 1.5))
    words = len(prose.split())
    if words > LONG_PROMPT_WORDS:
        fired.append((f"long request ({words} words)", 1.0))

    # Size of the material.
    if context_chars > HUGE_CONTEXT_CHARS:
        fired.append((f"very large context ({context_chars:,} chars)", 2.5))
    elif context_chars > LARGE_CONTEXT_CHARS:
        fired.append((f"large context ({context_chars:,} chars)", 1.5))
    if files >= 6:
        fired.append((f"{files} files", 2.5))
    elif files > 2:
        fired.append((f"{files} files", 1.5))
    return fired


def _names(fired: list[tuple[str, float]], sign: int, limit: int = 3) -> str:
    side = [(n, w) for n, w in fired if w * sign > 0]
    side.sort(key=lambda nw: -abs(nw[1]))  # stable: ties keep the table's order
    return ", ".join(n for n, _ in side[:limit])


def classify_ask(prompt: str, *, context_chars: int = 0, files: int = 1) -> Route:
    """Route a ``tandem.ask`` request from its text and size alone. Deterministic."""
    fired = score_ask(prompt, context_chars=context_chars, files=files)
    score = round(sum(w for _, w in fired), 2)
    feats = tuple(fired)
    if score < 0:
        return Route(LOCAL, f"schema-like task ({_names(fired, -1)}; score {score:+.1f})"
                            " — the local model handles it", score, feats)
    if score > 0:
        return Route(CLOUD, f"open-ended request ({_names(fired, +1)}; score {score:+.1f})"
                            " — escalated", score, feats)
    words = len(prompt.split())
    if words > LONG_PROMPT_WORDS or context_chars > LARGE_CONTEXT_CHARS:
        return Route(CLOUD, f"no clear lean (score 0) but a long request ({words} words, "
                            f"{context_chars:,} chars of context) — escalated", score, feats)
    what = f"signals cancel out ({_names(fired, -1)} vs {_names(fired, +1)})" if fired else "no clear signal"
    return Route(LOCAL, f"{what}; a tie stays on the cheaper local model", score, feats)


# --- decide ---------------------------------------------------------------------------------------

@dataclass
class CloudState:
    enabled: bool
    has_key: bool
    over_budget: bool
    breaker_reason: str | None = None  # CircuitBreaker.open_reason()
    local_available: bool = True
    key_env: str = "ANTHROPIC_API_KEY"
    budget_usd: float = 2.0

    def unavailable_reason(self) -> str | None:
        """Why the cloud cannot be called right now, or None when it can."""
        if not self.enabled:
            return "cloud disabled in settings (cloud.enabled = false)"
        if self.budget_usd <= 0:
            return "cloud.dailyBudgetUsd is 0: the cloud is never called"
        if not self.has_key:
            return f"no API key: set the environment variable {self.key_env}"
        if self.over_budget:
            return f"daily budget of ${self.budget_usd:.2f} reached"
        if self.breaker_reason:
            return self.breaker_reason
        return None


@dataclass(frozen=True)
class Decision:
    tier: str  # LOCAL | CLOUD
    reason: str
    fallback_reason: str | None = None  # set when the task did not get the tier it routed to


_LOCAL_DOWN = "the local model is unavailable"


def decide(task: str, *, prompt: str = "", context_chars: int = 0, files: int = 1,
           cloud: CloudState) -> Decision:
    """The tier ``task`` runs on given what is available, and why."""
    try:
        table_tier = TASK_TIERS[task]
    except KeyError:
        raise ValueError(f"unknown task type {task!r} (known: {', '.join(TASK_TIERS)})") from None

    if table_tier == PER_REQUEST:
        route = classify_ask(prompt, context_chars=context_chars, files=files)
        tier, reason = route.tier, route.reason
    elif table_tier == CLOUD:
        tier, reason = CLOUD, f"{task.replace('_', ' ')} is open-ended work — the cloud model does it"
    else:
        tier, reason = LOCAL, f"{task.replace('_', ' ')} always runs on the local model"

    blocked = cloud.unavailable_reason()

    if task not in COMMANDS:  # completions and code actions: local, whatever happens
        if not cloud.local_available:
            return Decision(LOCAL, f"{reason}; {_LOCAL_DOWN}, so there is nothing to return")
        return Decision(LOCAL, reason)

    if tier == CLOUD:
        if blocked is None:
            return Decision(CLOUD, reason)
        if cloud.local_available:
            return Decision(LOCAL, f"{reason}; falling back to the local model", blocked)
        return Decision(LOCAL, reason, f"{blocked}; and {_LOCAL_DOWN}")

    # A command that routed local.
    if cloud.local_available:
        return Decision(LOCAL, reason)
    if blocked is None:
        return Decision(CLOUD, f"{reason}; but {_LOCAL_DOWN}, so the cloud model answers")
    return Decision(LOCAL, reason, f"{_LOCAL_DOWN}, and the cloud cannot be used: {blocked}")


# --- circuit breaker ------------------------------------------------------------------------------

FAILURE_KINDS = frozenset({"rate_limited", "server_error", "timeout", "offline"})
# Cloud errors that waiting does not fix (a wrong key, a malformed request, a call we cancelled):
# accepted and ignored here — they neither count nor reset the failure streak. The command runner
# remembers a rejected key itself and does not send it again until the key or the settings change.
IGNORED_KINDS = frozenset({"auth", "bad_request", "cancelled"})
_KIND_TEXT = {"server_error": "server error", "timeout": "timeout", "offline": "offline"}


class CircuitBreaker:
    """Stops calling the cloud for a while after it says so (429) or keeps failing.

    * ``rate_limited``: open for Retry-After seconds (30 s when absent, at most 600 s).
    * other kinds: after 3 consecutive failures, open for 15 s, then 30 s, 60 s … (at most 300 s)
      each time it re-trips without a success in between.
    * ``auth`` / ``bad_request`` / ``cancelled`` are ignored (waiting does not fix them).
    * Failures reported while it is open (calls that were already in flight) are counted but do
      not re-open it with a longer backoff.
    * When the open period has passed the breaker is half-open: ``open_reason()`` is None and the
      next call goes through as a trial; a failure re-opens it (longer), a success closes it.
    """

    THRESHOLD = 3
    RATE_LIMIT_DEFAULT_S = 30.0
    RATE_LIMIT_CAP_S = 600.0
    BACKOFF_BASE_S = 15.0
    BACKOFF_CAP_S = 300.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._consecutive = 0  # consecutive non-429 failures since the last success
        self._trips = 0  # backoff openings since the last success
        self._open_until: float | None = None
        self._why = ""  # without the time left; open_reason() adds it

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def record_failure(self, kind: str, retry_after: float | None = None) -> None:
        if kind in IGNORED_KINDS:
            return
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r} "
                             f"(known: {', '.join(sorted(FAILURE_KINDS | IGNORED_KINDS))})")
        now = self._clock()
        if kind == "rate_limited":
            wait = self.RATE_LIMIT_DEFAULT_S if retry_after is None else max(0.0, float(retry_after))
            self._open(now, min(wait, self.RATE_LIMIT_CAP_S), "rate-limited")
            return
        self._consecutive += 1
        if self._consecutive >= self.THRESHOLD and not self._is_open(now):
            wait = min(self.BACKOFF_BASE_S * 2 ** self._trips, self.BACKOFF_CAP_S)
            self._trips += 1
            self._open(now, wait, f"{self._consecutive} consecutive cloud failures, "
                                  f"last: {_KIND_TEXT[kind]}")

    def _is_open(self, now: float) -> bool:
        return self._open_until is not None and now < self._open_until

    def _open(self, now: float, wait: float, why: str) -> None:
        until = now + wait
        if self._open_until is None or until >= self._open_until or now >= self._open_until:
            self._open_until, self._why = until, why

    def record_success(self) -> None:
        self._consecutive = 0
        self._trips = 0
        self._open_until = None
        self._why = ""

    def open_reason(self) -> str | None:
        """Why the cloud is not being called, or None (closed, or half-open: a trial is allowed)."""
        if self._open_until is None:
            return None
        left = self._open_until - self._clock()
        if left <= 0:
            return None
        return f"{self._why} (retry after {math.ceil(left - 1e-9)} s)"

    def allows_call(self) -> bool:
        return self.open_reason() is None

    @property
    def state(self) -> str:
        """ "closed", "open", or "half-open" (the open period passed; the next call is a trial)."""
        if self._open_until is None:
            return "closed"
        return "open" if self._is_open(self._clock()) else "half-open"

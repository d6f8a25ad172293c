"""The task shape of a ``tandem.ask`` request: what the router (``router.classify_ask``) decides on.

Pure and fast: regular expressions over the request text plus its size; no model call.

The rule: a request whose answer fits a schema — classify, tag, extract, summarise, decide between
labels the request itself gives, a small rewrite, a conversion, code to a stated spec — stays on
the local model; open-ended work — multi-step planning, ambiguous instructions, creative writing,
synthesis across sources, debugging a failure, design, review — escalates.

Each cue (``Feature``) is evidence for one ``Shape`` and carries a weight: < 0 local, > 0 cloud.
``detect`` returns every cue that fired, plus structure and size signals that belong to no shape;
the router sums the weights and names the strongest shape on the winning side. Surface words do
not decide on their own: labels the request offers ("personal or business") are the answer
space, so they are blanked before the other cues look at the text ("bug or feature" is not a
failure report), and cues are phrased as task shapes ("write a story", not "write").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOCAL = "local"
CLOUD = "cloud"


@dataclass(frozen=True)
class Shape:
    key: str  # short id, e.g. "decide"
    label: str  # shown in route reasons: "decide between given labels"
    tier: str  # LOCAL | CLOUD


SHAPES: dict[str, Shape] = {s.key: s for s in (
    # schema-like: the form of the answer is known before the model starts
    Shape("decide", "decide between given labels", LOCAL),
    Shape("classify", "classify into categories", LOCAL),
    Shape("tag", "tag with a topic or label", LOCAL),
    Shape("extract", "extract or list what is there", LOCAL),
    Shape("summarise", "summarise one text", LOCAL),
    Shape("explain", "explain a small selection", LOCAL),
    Shape("rewrite", "small rewrite (wording, naming, layout)", LOCAL),
    Shape("convert", "convert between forms", LOCAL),
    Shape("document", "document given code", LOCAL),
    Shape("generate", "code to a stated spec", LOCAL),
    Shape("howto", "short how-to question", LOCAL),
    # open-ended: investigation, judgement, several steps or invention
    Shape("debug", "debug a failure", CLOUD),
    Shape("plan", "multi-step planning", CLOUD),
    Shape("design", "design and trade-offs", CLOUD),
    Shape("synthesis", "synthesis across sources", CLOUD),
    Shape("creative", "creative writing", CLOUD),
    Shape("ambiguous", "ambiguous instruction", CLOUD),
    Shape("review", "review for risks", CLOUD),
    Shape("performance", "performance investigation", CLOUD),
    Shape("reasoning", "reasoning about behaviour", CLOUD),
    Shape("judgement", "open-ended decision", CLOUD),
    Shape("broad", "broad change under constraints", CLOUD),
)}


@dataclass(frozen=True)
class Feature:
    name: str  # shown in reasons
    weight: float  # < 0: schema-like (local); > 0: open-ended (cloud)
    pattern: re.Pattern[str]
    shape: str | None = None  # key into SHAPES; None: a hint that names no task shape
    raw: bool = False  # match the raw prompt instead of the prose (code stripped)
    task: bool = True  # local side: names a schema-like job (False: only a hint, e.g. "small scope")
    open_choice: bool = False  # a choice cue; silent when the request gives the labels to choose from


def _f(name: str, weight: float, pattern: str, *, shape: str | None, raw: bool = False, task: bool = True,
       open_choice: bool = False) -> Feature:
    return Feature(name, weight, re.compile(pattern, re.IGNORECASE), shape, raw, task, open_choice)


# Plural nouns for material a request can ask to synthesise across.
_SOURCES = (r"(transcripts|interviews|notes|docs|documents|reports|post-?mortems|retros|retrospectives|papers"
            r"|articles|sources|threads|tickets|issues|feedback|surveys?|survey responses|responses|emails"
            r"|conversations|discussions|reviews|rfcs|adrs|readmes|wiki( pages| exports?)?|specs|findings"
            r"|studies|research|history|release notes|changelogs|incidents|write-?ups|minutes|pages)")
_MANY = (r"(these|the|those|all|all the|all of the|all our|our|my|several|multiple|many|various|different|both"
         r"|last|two|three|four|five|six|seven|eight|nine|ten|dozen|\d+)")

# Schema-like task verbs and objects: the shape of the answer is known in advance.
LOCAL_FEATURES: tuple[Feature, ...] = (
    _f("rename", -3.0, r"\brenam(e|es|ed|ing)\b", shape="rewrite"),
    _f("naming convention", -2.5, r"snake[_ -]?case|camel[_ -]?case|pascal[_ -]?case|kebab[_ -]?case",
       shape="rewrite", raw=True),
    _f("wording fix", -3.0, r"\bwording\b|\bphrasing\b|\bre-?word(s|ed|ing)?\b|\brephrase|\bproof-?read"
       r"|\bgrammar\b|\bgrammatical|\btypos?\b|\bspelling\b|\bpunctuation\b|\bawkward(ly)?\b"
       r"|\b(sounds?|reads?) (clunky|stiff|off|better|more naturally)\b|\bfriendlier\b|\bshorten\b"
       r"|\b(more|less) (concise|formal|polite|friendly|casual|direct|neutral)\b|\bterser\b"
       r"|\b(shorter|crisper|punchier)\b|\btone (it )?down\b|\b(clunky|stilted|wordy|long-winded)\b"
       r"|\b(sound|read|come across) (less|more)\b"
       r"|\b(text|string|message|copy|sentence|label|title|heading|caption|tooltip)\b[^.?!]{0,30}"
       r"\bcorrect (it|this|that)\b"
       r"|\bcorrect (the |this )?(text|string|message|copy|sentence|wording|label|title|heading|caption"
       r"|tooltip)\b",
       shape="rewrite"),
    _f("documentation", -3.0, r"\bdocstrings?\b|\bdocumentation\b|\bcomments?\b"
       r"|\bdocument(ing)? (this|the|these|those|each|every|all|its|what|how|it)\b"
       r"|\bcommit message\b|\bchangelog\b", shape="document"),
    _f("type hints", -3.0, r"\btype[- ]?hints?\b|\bannotat(e|ions?)\b", shape="generate"),
    _f("conversion", -2.0, r"\b(convert|translate|turn|transform|change|rewrite)\b[^.?!]{0,80}?\b(into|to|as)\b"
       r"|\binstead of\b|\breplace\b[^.?!]{0,80}?\bwith\b", shape="convert"),
    _f("data format", -1.0, r"\b(json|yaml|toml|csv|xml|ini|markdown|f-strings?|list comprehension"
       r"|dict(ionary)?|enum|dataclass|typeddict|named ?tuple)\b", shape="convert", task=False),
    _f("formatting", -2.5, r"\b(re)?format\b|\bindent(ation)?\b|\bwhitespace\b|\bpretty[- ]print\b"
       r"|\breadable\b|\bline length\b|\b(wrap|split|break)\b[^.?!]{0,30}(?<!\d-)\blines?\b(?!-)"
       r"|\b\d+ (characters|chars|columns)\b", shape="rewrite"),
    # "sort out X" is a vague ask, not sorting.
    _f("sorting", -2.5, r"\bsort(ed|ing)?\b(?! (this |that |it |things |them |these |those )?(\w+ )?out\b)"
       r"|\balphabetic", shape="rewrite"),
    _f("listing", -2.0, r"^\W*list\b|\blist (all|the|every|each)\b|\benumerate\b"
       r"|\bcount (how many|the|all|every)\b"
       r"|\baction items\b|^\W*name (the|all|every|each)\b"
       r"|\b(grab|collect|gather|find|fetch|show me|give me) (every|all|each)\b", shape="extract"),
    _f("extraction", -2.0, r"\bextract\b|\bpull\b[^.?!]{0,60}?\bout\b", shape="extract"),
    # What a piece of code can raise or return is read off the code, not investigated.
    _f("what the code raises", -3.0, r"\b(what|which|list|every|all|the)\b[^.?!]{0,25}\b(exceptions?|errors?"
       r"|warnings?|status codes?)\b[^.?!]{0,50}?\b(raise[sd]?|rais(es|ing)|re-?raises?|throws?|thrown|throwing"
       r"|catch(es)?|bubbl(e|es|ing)|propagat(e|es|ing)|escap(e|es|ing))\b"
       r"|\b(exceptions?|errors?)\b[^.?!]{0,40}\b(can|could|might|may|will|would)\b[^.?!]{0,25}"
       r"\b(raise|throw|surface|propagate)\b", shape="extract"),
    # The answer's container is named: a list, a table, bullets, JSON …
    _f("fixed output form", -2.0, r"\b(into|as|in) (a |an )?(bulleted |numbered |markdown |short |flat )?(list"
       r"|table"
       r"|bullets|bullet points|json( object| array)?|csv|array|key-value pairs|yaml)\b", shape="extract"),
    _f("summary", -2.5, r"(?<!here's a )(?<!here is a )(?<!this )\bsummar(y|ise|ize|ising|izing)\b"
       r"|\btl;?dr\b|\bone[- ]line\b|\bbriefly\b|\bin a nutshell\b|\bgist\b|\bcondense\b|\bboil (\w+ )?down\b"
       r"|\brecap\b|\b(key|main) (points|takeaways)\b|\bhighlights\b"
       r"|\bin (a|one|two|three|a few) sentences?\b", shape="summarise"),
    _f("classification", -2.5, r"\bclassify\b|\bcategori[sz]e\b|\bsentiment\b"
       r"|\b(tone|mood) of (this|the|each|every)\b"
       r"|\b(which|what) (language|category|kind of|type of|bucket)\b", shape="classify"),
    # Putting a label or topic on given material; "themes across 20 reports" is synthesis instead.
    _f("tagging", -3.0, r"\btag(s|ged|ging)?\b|\blabel (each|every|the|these|this|them|it|all)\b"
       r"|\bassign (a |an |each |one )?(label|category|tag|topic|owner|priority|severity)"
       r"|\b(topic|subject|theme|category|genre) (of|for) (this|each|every|the)\b"
       r"|\bwhat (topic|subject)\b|\b(main|primary) (topic|subject)\b"
       r"|\b(mostly|mainly|chiefly) about\b|\b(topic|category|priority|severity|owner) (labels?|tags?)\b"
       r"|\b(mark|flag|highlight) (the|each|every|these|those|all|which|any)\b"
       r"|\b(priority|category|label|tag|topic|keyword|severity|score|rating|owner|status|emoji)\b[^.?!]{0,20}"
       r"\b(next to|beside|against|to|for|on) (each|every|all)\b|\b(next to|beside) (each|every)\b"
       r"|\bassign (a |an |one )?(\w+ ){0,2}(to|for) (each|every|all)\b", shape="tag"),
    # Asked to make or explain one; "this regex takes minutes" is a problem report, not a regex task.
    _f("regex", -3.0, r"\b(write|create|generate|build|make|give me|need|want|explain|fix)\b[^.?!]{0,30}"
       r"\b(regex(es|p)?|regular expressions?)\b|\b(regex(es|p)?|regular expressions?) (that|to|for|which)\b",
       shape="generate"),
    # Boilerplate objects count when asked for ("write a CLI"), not as a topic ("the CLI ignores …").
    _f("boilerplate", -2.5, r"\bboilerplate\b|\bscaffold|\bfake (data|users?|records?)\b|\bsample data\b"
       r"|\btest data\b|\b(write|create|generate|build|make|add|set up|give me)\b[^.?!]{0,40}"
       r"\b(fixtures?|stubs?|template|argparse|cli|mocks?|dockerfile|makefile|workflow|config file)\b",
       shape="generate"),
    _f("dunder method", -2.0, r"__\w+__", shape="generate", raw=True),
    _f("mechanical edit", -1.5, r"\b(re)?order (the|these|this)\b|\bgroup (these|the|them)\b|\barrange\b"
       r"|\bcapitali[sz](e|ation)\b|\b(remove|delete) (the |all )?(unused|dead|commented|duplicate|trailing)\b"
       r"|\b(lower|upper)-?case\b|\bmove (the|these|this|those)\b|\bwrap (this|the|these)\b",
       shape="rewrite"),
    _f("generation", -1.0, r"^\W*(write|generate|create|add|make|give|fill in|produce|rewrite|remove"
       r"|delete|wrap|invert|simplify|inline|update)\b", shape="generate"),
    _f("small scope", -1.0, r"\bthis (line|function|snippet|block|loop|expression|class|method"
       r"|statement|query|file|list|dict)\b", shape=None, task=False),
    _f("question about a snippet", -1.5, r"^\W*(what|which|where|how)\b[^.?!]{0,50}\b(in|on|of) this "
       r"(snippet|line|expression|loop|statement)\b", shape="explain"),
    _f("short explanation", -1.5, r"^\W*(what|which)( \w+){0,2} (does|do|is|are)\b"
       r"|^\W*what'?s (this|that|it|the (difference|point|purpose|meaning|type|value|output|result|return|time|big-o"
       r"|complexity))\b"
       r"|^\W*explain (what|this|the)\b", shape="explain"),
    _f("how-to in a language", -1.5, r"^\W*how (do|can|would) (i|you|one)\b[^.?!]{0,60}\bin (python|javascript"
       r"|typescript|js|ts|bash|shell|sql|go|golang|rust|java|kotlin|ruby|php|c\+\+|c#|lua|elisp)\b",
       shape="howto"),
)

# Open-ended work: the answer needs investigation, judgement, several steps or invention.
CLOUD_FEATURES: tuple[Feature, ...] = (
    _f("root-cause question (why)", 3.0, r"\bwhy\b", shape="debug"),
    _f("debugging", 3.0, r"what'?s wrong|what'?s going on|what could (cause|break)|\broot cause\b"
       r"|\bfigure out\b|\bfind out\b|\bwork out\b|\btrack down\b|\bdebug(ging)?\b|\bdiagnos"
       r"|\binvestigat|where('s| is) the bug|any idea|\bwhere (could|might)\b"
       r"|\bhow (do|can|would|should) (i|we) fix\b|\blikely cause\b|\bwhat causes\b|\bcausing\b"
       r"|\bfind the cause\b", shape="debug"),
    # "bug report", "crash reports": kinds of document, not a failure being reported.
    _f("failure symptom", 2.0, r"\bfail(s|ed|ing|ure)?\b|\bhang(s|ing)?\b|\bcrash(es|ing)?\b(?! reports?)"
       r"|\bstuck\b|\bfreez|\bdeadlock|\bwrong (answer|result|value)|\boff by\b|\bbroken\b|doesn'?t work"
       r"|\b(are|is|comes? out|returns?|gives?|looks?) (\w+ )?wrong\b|\bincorrect(ly)?\b"
       r"|\bforever\b|\bleak|\bdiverge|\bbug\b(?! reports?| tracker)|\bsegfault|\bsigsegv\b|\bcore dump"
       r"|\bpanic", shape="debug"),
    _f("problem report", 2.0, r"\b(we'?re|we are|i'?m|i am) (hitting|seeing|getting)\b"
       r"|\b(users?|customers?|people|clients) (see|get|report|are seeing|are getting|complain)"
       r"|\bunder (heavy )?load\b|\bafter (a few|several|some|many) (hours|days|minutes|requests|runs)\b"
       r"|\bgarbled\b|\bcorrupt|\bmojibake\b|\btoo many\b|\bkeeps? (\w+ing|getting)\b"
       r"|\b(disappear|vanish|duplicat)\w*\b|\boom\b|\bout of memory\b|\bkilled\b"
       r"|\bbut not (in|on|with|for|when)\b|\bnothing (obvious(ly)? )?changed\b|\bignor(es|ed|ing)\b",
       shape="debug"),
    _f("unexpected behaviour", 1.5, r"\b(doesn'?t|does not|won'?t|will not|isn'?t being|never gets?)\s+\w+",
       shape="debug"),
    _f("concurrency", 2.0, r"\bdeadlock|\brace( condition)?s?\b"
       r"|(?<!of this )(?<!of the )(?<!email )(?<!slack )(?<!chat )(?<!comment )(?<!review )(?<!forum )(?<!support )"
       r"(?<!discussion )(?<!mail )(?<!every )(?<!each )\bthread(s|ed|ing)?\b|\bconcurren"
       r"|\block(s|ing|-free)?\b|\bmutex|\batomic|\blease\b|\basync|\bawait\b|\bparallel"
       r"|\bthread[- ]safe|\btwo (users|requests|processes|workers|clients)\b|\bsimultaneous"
       r"|\bat the same time\b|\btwice\b|\bback-?pressure\b", shape="reasoning"),
    _f("intermittent", 2.5, r"\bflaky\b|\bintermittent|\bsometimes\b|\boccasional|\brandomly\b"
       r"|\bone (run|time) in\b|\bevery few\b|\bonly (happens|for|when)\b"
       r"|\bfor some (users|accounts|customers|requests|inputs|people|files|tenants|orders)\b", shape="debug"),
    _f("performance", 2.5, r"\bslow(er|ly|down)?\b|\blatency\b|\bp9\d\b|\bthroughput\b|\bmemory\b"
       r"|\bcpu\b|\b(doubled|tripled)\b|\bcold start|\bstartup time\b|\bspeed up\b|\boptimi[sz]"
       r"|\btakes? (\d+ )?(minutes|hours|seconds|forever|ages)\b|\btoo long\b|\bunbounded\b"
       r"|\bwithout bound\b|\bgrow(s|ing)? (forever|without)|\b\d+k? (requests|rps|qps)\b"
       r"|\bper second\b|\bat scale\b"
       r"|\bperformance\b|\bprofil|\bn\+1\b|\b\d+x (slower|faster)\b|\bbottleneck|\bspikes?\b",
       shape="performance"),
    _f("security", 2.0, r"\bsecur(e|ity)\b|\bvulnerab|\binject|\bexploit|\battacker"
       r"|\bauth(entication|orization)?\b|\bcsrf\b|\bxss\b|\bpermissions? model\b|\bprivilege"
       r"|\bsignatures?\b|\btiming[- ](safe|attack)|\bcredentials?\b|\bsanitiz|\buntrusted\b"
       r"|\bis (it|this|that) safe\b"
       r"|\b(other|another|wrong|different) (tenants?|users?|customers?|accounts?)'?s?\b(?! (and|or)\b)",
       shape="review"),
    _f("review", 2.0, r"\breview\b(?!s)|\baudit\b|\brisk(s|y)?\b|\bwhat could go wrong\b", shape="review"),
    _f("design/architecture", 3.0, r"\bdesign\b(?! docs?\b| documents?\b)|\barchitect|\bstructure\b"
       r"|\bplugin system\b"
       r"|(?<!typescript )(?<!ts )\binterface\b"
       r"(?! (for|from|matching) (this|the|these) (json|payload|response|object|data))"
       r"|\babstraction\b|\bdecouple|\bseparate\b[^.?!]{0,60}?\bfrom\b|\btrade-?offs?\b|\bpros and cons\b"
       r"|\bsemantics\b|\bschema for (storing|modell?ing)\b|\bdata model(l)?ing\b"
       r"|\b(suggest|propose) an? (schema|approach|design|layout|strategy)\b"
       r"|\bhelp me (model|design|structure|think)\b|\breconcile\b", shape="design"),
    _f("multi-step plan", 2.5, r"\bplan\b|\bmigrat|\broll(ing)? (it )?out\b|\bzero[- ]downtime\b"
       r"|\bstep[- ]by[- ]step\b|\broadmap\b|\boutline how\b|\bacross the (code ?base|repo(sitory)?|project)\b"
       r"|\bevery place\b|\bconsistent(ly)? across\b|\bwhere (do|should) (we|i) (even )?start\b"
       r"|\b(safe|right|best) sequence\b|\bin what (order|sequence)\b|\bstrategy for\b|\border of operations\b",
       shape="plan"),
    # Splitting or carving up a large unit is a plan with dependents to keep working.
    _f("split a large unit", 3.0, r"\b(split(ting)?|break(ing)?|carv(e|ing)|chop(ping)?|divid(e|ing)"
       r"|decompos(e|ing)|pull(ing)? apart|untangl(e|ing)|cut(ting)?)\b[^.?!]{0,50}\b(modules?|packages?"
       r"|monolith|services?|code ?base|god (object|class)|components?|librar(y|ies)|repos?|apps?"
       r"|(large|big|huge|giant|massive|\d{3,}[- ]line) (class|file|function))\b"
       r"|\b(carve|break|pull|split)\b[^.?!]{0,40}\bout of (this|the|our)\b"
       r"|\binto (its|their) own (repo(sitory)?|service|package|library|module|process|app|crate|project)\b"
       r"|\binto (a )?separate (repo(sitory)?|service|package|library|process|app|crate|project)\b",
       shape="plan"),
    _f("dependents to keep working", 2.0, r"\b(plugins?|callers?|clients?|consumers?|importers|dependents"
       r"|downstream|the code that)\b[^.?!]{0,25}\b(imports?|importing|use|uses|using|depends?|depending"
       r"|calls?|calling|rel(y|ies|ying))\b", shape="plan"),
    _f("decision/comparison", 2.5, r"\bshould (we|i)\b|\bwhich (one|of)\b|\bbest way\b|\brecommend"
       r"|\bcompare\b|\bversus\b|(?-i:\bvs\b)\.?|\bchoose\b|\bdecide\b|\bworth it\b|\bpick between\b"
       r"|\b(good|bad|better) idea\b|\bevaluate\b|\bassess\b|\bwhether (we|i) (can|should)\b"
       r"|\b(safest|best|cleanest|right|proper|recommended|least (disruptive|risky|painful)) (way|order|approach"
       r"|place|time)\b"
       r"|\bprioriti[sz]e\b"
       r"|\bor\b[^.?!,]*\?", shape="judgement", open_choice=True),  # "A or B?"
    _f("reasoning", 2.0, r"\bargue\b|\bprove\b|\breason about\b|\binvariants?\b|\bcorrectness\b"
       r"|\b(is|are|be|it's) (\w+ )?correct\b|\bguarantee|\bimplications?\b|\bconsequences\b"
       r"|\bwhat (happens|would happen) (if|when)\b"
       r"|\bwhat if\b|\b(does|will|would) (this|it) (cover|handle|survive|scale)\b|\bgoing to\b"
       r"|\bside[- ]effects?\b|\bactually (does|do|happens)\b|\bflows? through\b", shape="reasoning"),
    _f("constraints to preserve", 2.0, r"\bwithout (breaking|downtime|losing|changing|disrupting|affecting"
       r"|upsetting|regressing)\b|\bpreserv|\bcompatib", shape="broad"),
    _f("environment-specific", 2.0, r"\bin ci\b|\bprod(uction)?\b|\blocally but\b|\boutage\b"
       r"|\bon (windows|macos|mac|linux|arm|safari|firefox|chrome|ios|android)\b"
       r"|\bincident\b(?! reports?| notes| write-?ups?)|\b5\d\d\b|\b5\d\ds\b|\b5xx\b", shape="debug"),
    _f("regression", 2.5, r"\bsince (the|we|our|last|yesterday|upgrading)\b|\bdropped\b|\bno longer\b"
       r"|\bused to\b|\bregress|\bstopped working\b|\bafter (the|we|our) (deploy|upgrade|release|update)",
       shape="debug"),
    _f("broad scope", 2.0, r"\bproduction[- ]ready\b|\b(can|could) ship\b|\bshippable\b|\brobust\b"
       r"|\bharden|\bidempoten|\bscalab|\bend[- ]to[- ]end\b", shape="broad"),
    _f("vague request", 2.0, r"\b(better|weird|strange|odd|not sure|improve|clean ?up|nicer|cleaner|prettier"
       r"|more (elegant|professional|modern|polished|beautiful|solid)|professional|moderni[sz]e|needs work)\b",
       shape="ambiguous"),
    # No target, no criterion: the model has to guess what is wanted.
    _f("no stated goal", 2.5, r"\bsort (this|that|it|things|them|these|those)? ?(\w+ )?out\b"
       r"|\bdo something (about|with)\b|\bdeal with (this|it|that)\b|\btake care of (this|it|that)\b"
       r"|\bhowever you (think|see fit|like|want)\b|\bas you see fit\b|\bwhatever you think\b"
       r"|\b(feels?|seems?|looks?) (off|wrong|bad|meh)\b|\bnot (great|ideal|good)\b|\bmess(y)?\b"
       r"|\bany (thoughts|suggestions)\b|^\W*thoughts\W*$"
       r"|^\W*(please )?(fix|handle|improve|rework|redo|polish|tweak) (it|this|that|things)( up)?\W*$"
       r"|\bdo what(ever)? you can\b|^\W*(make|get) (it|this|that) (nicer|good|right|work|better)\W*$",
       shape="ambiguous"),
    # Invented prose: a form of writing, or a tone, that no schema fixes.
    _f("creative form", 3.5, r"\bstor(y|ies)\b(?<!user story)(?<!user stories)|\bpoems?\b|\bhaikus?\b"
       r"|\blimericks?\b|\bsonnets?\b|\bsongs?\b|\blyrics\b|\bfairy ?tales?\b|\bfables?\b|\bbedtime\b"
       r"|\bnarratives?\b|\bbackstor(y|ies)\b|\bscreenplay\b|\bskit\b|\bblog ?posts?\b|\barticles?\b"
       r"|\bessays?\b|\bnewsletters?\b|\bpress release\b|\bannouncements?\b|\b(launch|release) (post|email)\b"
       r"|\bkeynote\b|\bspeech\b|\b(talk|conference) (abstract|proposal)\b|\bpitch\b|\bslogans?\b"
       r"|\btaglines?\b|\bmarketing (copy|email|page|text)\b|\bmascot\b|\banalog(y|ies)\b|\bmetaphors?\b"
       r"|\bpersuasive\b|\bpersuade\b|\bconvince\b|\bone-pager\b|\bproposal to\b"
       r"|\b(cover|welcome|thank[- ]you|farewell|open|love|recommendation|motivation) letter\b|\bletter (to|for)\b",
       shape="creative"),
    _f("creative tone", 2.0, r"\bengaging\b|\bcatchy\b|\bmemorable\b|\bwitty\b|\bfunny\b|\bhumou?r"
       r"|\bplayful\b|\binspir(e|ing|ational)\b|\bexcit(e|ed|ing)\b|\bfun\b|\bjokes?\b|\bcharming\b"
       r"|\bvivid\b|\bemotional\b|\bheartfelt\b|\bwhimsical\b|\binvent\b|\bimaginative\b|\bbrainstorm"
       r"|\b(headline|name|title|slogan) ideas\b"
       r"|\bfind (it )?(\w+ )?(interesting|compelling|fascinating|exciting|fun)\b|\b(enjoy|love) reading\b"
       r"|\btongue[- ]in[- ]cheek\b|\bsarcastic\b|\bironic\b|\bcheeky\b|\blight-?hearted\b"
       r"|\bmakes? (them|people|readers|users|you|everyone) (want|feel|excited|care|smile|laugh)\b",
       shape="creative"),
    _f("non-technical audience", 3.0, r"\bnon-?(technical|engineers?|developers?|programmers?|coders?)\b"
       r"|\b(to|for) (the |our |my |a )?(sales|marketing|legal|finance|hr|exec(utive)?s?|leadership"
       r"|management|board|investors?|kids|children|grandparents?|parents|lay (people|readers|audience)"
       r"|general (public|audience)|manager|boss|ceo|cfo|daughter|son|grand(ma|pa|mother|father)|mum|mom|dad)\b"
       r"|\b(cfo|ceo|coo|cmo|investors?|board members?|stakeholders|(product|project) managers?"
       r"|sales (team|people|folks))\b"
       r"|\bin a way (that )?(a|an|our|my|the|they|he|she|anyone|someone)\b[^.?!]{0,40}\b(would|could|can|will)\b"
       r"|\bwho (don't|doesn't|do not|does not|can't|aren't|isn't) (code|program|know|understand|technical)"
       r"|\bin plain (english|language|words)\b|\bexplain like\b|\beli5\b|\blay(man|person|people)\b",
       shape="creative"),
    # Several sources into one new whole: a case study from interviews, themes across reports …
    _f("synthesis verb", 4.0, r"\bsynthesi[sz]|\bpull(ing)? (\w+ ){0,6}together\b"
       r"|\bbring(ing)? (\w+ ){0,5}together\b"
       r"|\bcombin(e|ing)\b[^.?!]{0,40}\b(findings|results|insights|notes|feedback|learnings|lessons|ideas"
       r"|points|docs|documents|reports)\b|\bconsolidat|\bcase stud(y|ies)\b"
       r"|\b(common|recurring|underlying|main|key|emerging) (themes|patterns|threads|pain points)\b"
       r"|\bthemes\b|\b(patterns|trends) across\b|\bcontradict"
       r"|\bwhere (they|these|the \w+) (agree|disagree|differ)\b"
       r"|\bgiven everything\b|\bbased on (all|everything)\b|\bdraw(ing)? on\b"
       rf"|\bacross {_MANY} (\w+ ){{0,2}}{_SOURCES}\b", shape="synthesis"),
    _f("cover every case seen", 4.0, r"\b(cover|covers|covering|handle|handles|handling|address|addresses"
       r"|answer|answers|answering|account for|accounts for|reflect|reflects|include|includes)\b[^.?!]{0,30}"
       r"\b(every|all|each|everything)\b[^.?!]{0,70}\b(so far|we('ve| have)|people|users|customers|contributors"
       r"|reported|encountered|met|hit|raised|asked|had|made|seen|(have|has) \w+|keeps? \w+ing)\b",
       shape="synthesis"),
)

FEATURES: tuple[Feature, ...] = LOCAL_FEATURES + CLOUD_FEATURES

# Several sources asked into a new document or a judgement (not "summarise each of these reports").
_MANY_SOURCES = re.compile(rf"\b{_MANY}\s+(\w+[ -]){{0,2}}{_SOURCES}\b|\b(from|using|out of)\b[^.?!]{{0,40}}"
                           rf"\b{_SOURCES}\b[^.?!]{{0,30}}(\band\b|,)[^.?!]{{0,30}}\b{_SOURCES}\b", re.IGNORECASE)
_NEW_WHOLE = re.compile(r"\b(write|draft|compose|produce|create|turn|make|build|update|revise|rewrite|prepare)\b"
                        r"[^.?!]{0,80}\b(guide|document|doc|report|overview|page|write-?up|proposal|faq|story"
                        r"|post|case|narrative|brief|memo|plan|runbook|playbook|into)\b|\bwrite (it )?up\b"
                        r"|\btell me what\b|\bwhat (should|do|can) we\b|\bwhich\b[^.?!]{0,40}\bshould\b"
                        r"|\brecommend|\bwhat .{0,30}\b(say|think|want|need|struggle)", re.IGNORECASE)

# --- labels the request gives -------------------------------------------------------------------

_OPT = r"(?:'[^'\n]{1,30}'|\"[^\"\n]{1,30}\"|[A-Za-z0-9][\w/+'-]*(?:\.\w+)*(?:[ ][A-Za-z0-9][\w/+-]*){0,2})"
# what may follow the options: "… minor or major bump under semver?", "… or debug noise here?"
_TRAIL = r"(?:here|there|now|then|in|on|for|under|at|to|of|according|by|based|within|from|with|when|if|given)"
_OPT_LIST = rf"{_OPT}(?:\s*,\s*{_OPT})*\s*,?\s+or\s+(?:{_OPT}|not)\b"
_LABEL_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    # "is this email personal or business?", "is this a breaking change or not?"
    rf"^\W*(?:is|are|was|were|does|do)\s+(?:this|that|it|these|those|each|every|the)\b[^?.;:!]{{0,60}}"
    rf"\s(?P<opts>{_OPT_LIST})(?:\s+{_TRAIL}\b[^?]{{0,40}})?\s*(?:\?|$)",
    # "decide if this email is personal or business", "say whether each row is A or B"
    rf"\b(?:decide|say|tell(?: me)?|determine|state|indicate|note|judge|answer|mark|write)\b(?:\s+[\w-]+){{0,5}}?"
    rf"\s+(?:if|whether)\b"
    rf"[^?.;:!]{{0,80}}\s(?P<opts>{_OPT_LIST})",
    # "label each commit as feature, fix or chore", "sort these into 'a', 'b' or 'c'"
    rf"\b(?:label|mark|tag|classify|categori[sz]e|flag|sort|bucket|group|rate|grade|triage)\b[^?.;!]{{0,60}}?"
    rf"\b(?:as|into|with)\s*:?\s+(?P<opts>{_OPT}(?:\s*,\s*{_OPT})*\s*,?\s+(?:or|and|versus|vs\.?)\s+{_OPT})",
    # "would you file this under billing or onboarding?", "put each one in A, B or C"
    rf"\b(?:file|put|place|count)\s+(?:this|it|each|these|them|that|every)\b[^?.;!]{{0,30}}?"
    rf"\s(?:under|in|into|as)\s+"
    rf"(?P<opts>{_OPT_LIST})",
    # "which of the labels urgent, normal or low fits this?"
    rf"\b(?:labels?|categor(?:y|ies)|tags?|buckets?|classes|levels?|priorit(?:y|ies)|severit(?:y|ies))\s*:?\s+"
    rf"(?:—\s*|-\s*|\(\s*)?(?P<opts>{_OPT}(?:\s*,\s*{_OPT})*\s*,?\s+or\s+{_OPT})",
    # "… for this message: debug, info or warning."
    rf":\s*(?P<opts>{_OPT}(?:\s*,\s*{_OPT})*\s*,?\s+or\s+{_OPT})\s*[.?!]?\s*$",
    # "which file does this go in, utils.py or core.py?"
    rf"^\W*which\b[^?;!]{{0,80}}?(?:,|—|–| - |:)\s*(?P<opts>{_OPT_LIST})\s*\??\s*$",
    # "split these tickets into frontend and backend"
    rf"\b(?:split|divide|separate)\s+(?:these|the|those|each of these|this list of)\s+(?:\w+\s+){{0,2}}?(?:stories"
    rf"|tickets|tasks|issues|items|lines|comments|messages|emails|reviews|requests|tests|entries|rows|bugs|todos)"
    rf"\s+into\s+(?P<opts>{_OPT}(?:\s*,\s*{_OPT})*\s*,?\s+(?:or|and)\s+{_OPT})",
    # "…: pos/neg/neutral"
    r":\s*(?P<opts>[A-Za-z][\w-]*(?:\s*/\s*[A-Za-z][\w-]*){1,6})\s*[.?!]?\s*$",
    # "tell me which are actionable and which are noise"
    r"\bwhich\b[^?.;!]{0,40}?\b(?:are|is|were|was)\s+"
    r"(?P<opts>[\w' -]{1,40}?\s+and\s+which\s+(?:are|is|were|was)\s+"
    r"[\w' -]{1,30}?)\s*[.?!]?\s*$",
    # "answer with one of: bug, feature"
    rf"\b(?:one of|either)\s*:\s*(?P<opts>{_OPT}(?:\s*,\s*{_OPT})+)",
))
# Patterns whose greedy prefix may have swallowed the head of the list: _balanced widens it again.
_GREEDY_PREFIX = frozenset(_LABEL_PATTERNS[:2])
_YES_NO = re.compile(r"\b(yes|true)\s*(/|or)\s*(no|false)\b|\b(answer|reply|respond)\s+(with\s+)?(only\s+|just\s+)?"
                     r"(yes( or no)?|no|a single (word|label|letter)|one word)\b", re.IGNORECASE)
# Options that are choices for us to make (a design, a technology) rather than labels for the input.
_SHOULD_WE = re.compile(r"\bshould (we|i)\b", re.IGNORECASE)
_NOT_LABELS = re.compile(r"\b(approach(es)?|strateg(y|ies)|architectures?|designs?|frameworks?"
                         r"|librar(y|ies)|databases?|stack|solutions?|vendors?|patterns?)\b", re.IGNORECASE)
# "public or internal? answer for each function below": bare options, then a per-item instruction.
_BARE_CHOICE = re.compile(r"^\W*(?P<opts>[A-Za-z][\w-]*(?: [A-Za-z][\w-]*)?"
                          r"(?:\s+or\s+[A-Za-z][\w-]*(?: [A-Za-z][\w-]*)?)+)\s*\?", re.IGNORECASE)
_PER_ITEM = re.compile(r"\b(answer|reply|label|say which)\b[^.?!]{0,30}\b(for|per|on) (each|every)\b"
                       r"|\bfor (each|every) (one|item|line|row|entry|function|file|test|message)\b"
                       r"|\bone per (line|item|row)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?:[^.?!;\n]|[.?!;](?=[\w/]))+[.?!;]?")  # "utils.py" does not end one
_SPLIT_OPTS = re.compile(r"\s+and\s+which\s+(?:are|is|were|was)\s+|\s*,\s*(?:or\s+|and\s+)?|\s+or\s+|\s+and\s+"
                         r"|\s+versus\s+|\s+vs\.?\s+|\s*/\s*")
_NOT_IN_LABEL = frozenset("is are was were be does do this that it these those each every the whether if as "
                          "into with".split())
_ARTICLES = frozenset({"a", "an", "the", "just", "only"})


def _words_before(text: str, count: int, *, article: bool = True) -> tuple[list[str], int]:
    """Up to ``count`` words (at most 3) at the end of ``text``, plus a leading article when ``article``,
    and where they start; stops at words that cannot be part of a label ("is", "this", …) and at
    punctuation."""
    words: list[str] = []
    start = len(text)
    for m in reversed(list(re.finditer(r"\S+", text))):
        w = m.group()
        full = len(words) >= min(count, 3)
        if full and not (article and w.lower() in _ARTICLES):
            break
        if w.lower() in _NOT_IN_LABEL or not re.fullmatch(r"[\w'/.+-]+", w):
            break
        words.insert(0, w)
        start = m.start()
        if full:
            break
    return words, start


def _balanced(s: str, start: int, opts_text: str, *, widen: bool) -> tuple[int, list[str]]:
    """The options in ``opts_text`` (which starts at ``start`` in ``s``) and their start. With ``widen``
    (the pattern's greedy prefix stops as late as it can), earlier comma-separated options are taken
    back in ("is this a patch, minor or major bump"), or else the first option is widened to the word
    count of the last ("is this a bug report or a feature request")."""
    opts = [o.strip(" '\"") for o in _SPLIT_OPTS.split(opts_text) if o.strip(" '\"")]
    if not widen or len(opts) < 2 or opts[-1].lower() == "not":
        return start, opts
    words, at = _words_before(s[:start], len(opts[-1].split()) - len(opts[0].split()), article=False)
    if words:
        opts[0] = " ".join(words + [opts[0]])
        start = at
    while s[:start].rstrip().endswith(","):
        words, at = _words_before(s[:s[:start].rstrip().rindex(",")], len(opts[0].split()))
        if not words:
            break
        opts.insert(0, " ".join(words))
        start = at
    return start, opts


def given_labels(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The labels a request offers to choose between, and their spans in ``text``.

    "Decide if this email is personal or business" -> ["personal", "business"]. Options that are
    choices of design or technology for the asker ("should we use SQLite or Postgres?") are not labels.
    """
    labels: list[str] = []
    spans: list[tuple[int, int]] = []
    for sentence in _SENTENCE.finditer(text):
        s, base = sentence.group(), sentence.start()
        if _SHOULD_WE.search(s):
            continue
        for pat in _LABEL_PATTERNS:
            m = pat.search(s)
            if not m:
                continue
            start, opts = _balanced(s, m.start("opts"), m.group("opts"), widen=pat in _GREEDY_PREFIX)
            if len(opts) < 2 or any(len(o.split()) > 3 for o in opts) or _NOT_LABELS.search(s[:start]):
                continue
            if opts[-1].lower() == "not":  # "is this thread-safe or not": a yes/no on the property
                labels.extend(["yes", "no"])
                spans.append((base + s.rindex(" or ", start, m.end("opts")), base + m.end("opts")))
            else:
                labels.extend(opts)
                spans.append((base + start, base + m.end("opts")))
            break
        else:
            m = _BARE_CHOICE.match(s)
            if m and _PER_ITEM.search(text):
                labels.extend(o.strip() for o in re.split(r"\s+or\s+", m.group("opts")))
                spans.append((base + m.start("opts"), base + m.end("opts")))
        m = _YES_NO.search(s)
        if m and not any(a <= base + m.start() < b for a, b in spans):
            labels.extend(["yes", "no"])
            spans.append((base + m.start(), base + m.end()))
    return labels, spans


# --- detection ------------------------------------------------------------------------------------

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
SHAPE_CHARS = 2_000  # cues are looked for in the request's first 2,000 characters


def _without_code(prompt: str) -> str:
    """The prompt with fenced code, traceback lines, indented code and inline code blanked out."""
    text = _FENCED.sub(" ", prompt)
    text = "\n".join(line for line in text.splitlines() if not _TRACEBACK.search(line)
                     and not re.match(r"^\s{2,}\S", line))
    return _INLINE.sub(" ", text)


def prose(prompt: str) -> str:
    """The prompt with code, tracebacks, quoted tokens and identifiers blanked out."""
    return _IDENT.sub(" ", _QUOTED.sub(" ", _without_code(prompt)))


@dataclass(frozen=True)
class Signal:
    name: str
    weight: float
    shape: str | None  # key into SHAPES, or None for structure and size signals


def detect(prompt: str, *, context_chars: int = 0, files: int = 1) -> list[Signal]:
    """Every cue that fires for the request, with its weight and shape (each cue counts once)."""
    whole = prompt.strip()
    raw = whole[:SHAPE_CHARS]  # the ask is stated up front; what follows is material, and costs time
    text = _without_code(raw)
    labels, spans = given_labels(text)
    for a, b in reversed(spans):  # the offered labels are the answer space, not the task
        text = text[:a] + " " * (b - a) + text[b:]
    prose_text = _IDENT.sub(" ", _QUOTED.sub(" ", text))

    fired: list[Signal] = []
    if labels:
        shown = " / ".join(dict.fromkeys(labels[:4]))
        fired.append(Signal(f"given labels: {shown}", -4.0, "decide"))
    local_task = bool(labels)
    for feat in FEATURES:
        if feat.open_choice and labels:
            continue
        if feat.pattern.search(raw if feat.raw else prose_text):
            fired.append(Signal(feat.name, feat.weight, feat.shape))
            local_task |= feat.weight < 0 and feat.task
    if (not any(s.shape == "synthesis" for s in fired) and _MANY_SOURCES.search(prose_text)
            and _NEW_WHOLE.search(prose_text)):
        fired.append(Signal("several sources into one answer", 4.0, "synthesis"))

    # Structure signals. Local routing needs a recognised schema-like task; a request that names
    # none is open-ended or ambiguous, which leans cloud (a real tie — signals cancelling — stays local).
    if raw and not local_task:
        fired.append(Signal("no schema-like task named", 1.0, None))
    if _TRACEBACK.search(raw):
        fired.append(Signal("traceback", 3.0, "debug"))
    questions = prose_text.count("?")
    if questions and not labels and not any(s.name == "short explanation" for s in fired):
        fired.append(Signal("open question", 1.0, None))
    if questions >= 2:
        fired.append(Signal(f"{questions} questions", 1.0, None))
    if _ENUMERATION.search(prose_text) and not labels:
        fired.append(Signal("several requirements", 1.0, None))
    if len(_NUMBERED.findall(raw)) >= 2:
        fired.append(Signal("numbered steps", 1.5, "plan"))
    words = len(prose(whole).split()) if len(whole) > SHAPE_CHARS else len(prose_text.split())
    if words > LONG_PROMPT_WORDS:
        fired.append(Signal(f"long request ({words} words)", 1.0, None))

    # Size of the material.
    if context_chars > HUGE_CONTEXT_CHARS:
        fired.append(Signal(f"very large context ({context_chars:,} chars)", 2.5, None))
    elif context_chars > LARGE_CONTEXT_CHARS:
        fired.append(Signal(f"large context ({context_chars:,} chars)", 1.5, None))
    if files >= 6:
        fired.append(Signal(f"{files} files", 2.5, None))
    elif files > 2:
        fired.append(Signal(f"{files} files", 1.5, None))
    return fired


def dominant_shape(signals: list[Signal], sign: int) -> Shape | None:
    """The shape with the most weight on one side (sign -1: local, +1: cloud); ties keep table order."""
    totals: dict[str, float] = {}
    for s in signals:
        if s.shape is not None and s.weight * sign > 0:
            totals[s.shape] = totals.get(s.shape, 0.0) + abs(s.weight)
    if not totals:
        return None
    order = list(SHAPES)
    key = max(totals, key=lambda k: (totals[k], -order.index(k)))
    return SHAPES[key]

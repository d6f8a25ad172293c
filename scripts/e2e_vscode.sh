#!/usr/bin/env bash
# End-to-end test of the Tandem VS Code extension in real VS Code (code-server), driven headless by
# Selenium with Debian's chromium + chromium-driver, against the fake model server.
#
#   sudo scripts/e2e_vscode.sh [OUT_DIR]        # default OUT_DIR: /tmp/tandem-e2e-vscode
#
# Steps checked (a screenshot of each goes to OUT_DIR/screenshots/):
#   1. ghost text appears after typing;  2. Tab accepts it;  3. "Tandem: Explain Failure" opens a result;
#   4. next edits (nextEdit.template instruct; the fake model renames `width` to `size` in what it is shown):
#      renaming a parameter at its definition shows a decoration at its next use, Tab jumps to it, Tab again
#      applies it, and the next use follows;
#   5. with no local model (local.backend switched to auto, nothing listening), the extension offers to pull
#      one, and its button runs `tandem-lsp models pull` (seen as requests at a stand-in for Hugging Face).
#
# Needs root the first time (apt-get, and code-server's npm install). Heavy state is cached under
# $TANDEM_E2E_HOME (default /opt/tandem-e2e): code-server 4.100.3 (from npm), a venv with selenium; a
# warm run needs neither the apt mirror nor the npm registry and takes well under a minute.
# Exit 0: every step passed, or SKIPPED (one line): the apt mirror or the npm registry, needed for a
# missing install, cannot be reached. Anything else that fails exits non-zero. .ci/run runs it on every landing.
# At its end (or on failure, or SIGINT/SIGTERM) it ends everything it started and waits for it to go.
# Environment: PYTHON (default: the repo's .venv, else python3; must have tandem_lsp installed),
# KEEP=1 leaves code-server and the fake model server running for inspection.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-/tmp/tandem-e2e-vscode}"
E2E_HOME="${TANDEM_E2E_HOME:-/opt/tandem-e2e}"
CS_VERSION=4.100.3
CS_PREFIX="$E2E_HOME/code-server-$CS_VERSION"
CS_BIN="$CS_PREFIX/node_modules/.bin/code-server"
CS_STAMP="$CS_PREFIX/.tandem-installed"   # written only after a complete install: a half install is redone
SELENIUM_VERSION=4.51.0
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in "$REPO/.venv/bin/python"; do [ -x "$c" ] && { PY="$c"; break; }; done
  PY="${PY:-python3}"
fi
log() { printf '[e2e_vscode +%ss] %s\n' "$SECONDS" "$*" >&2; }
# An unreachable apt mirror or npm registry is not this test's failure: say so on one line and exit 0.
skip() { printf '[e2e_vscode] SKIPPED: %s\n' "$*"; exit 0; }
# what apt and npm print when they cannot reach the mirror/registry (as opposed to a missing package, a bad
# version, a broken keyring or a failed build, which fail the run)
APT_UNREACHABLE='Could not resolve|Temporary failure resolving|Could not connect|Connection failed|Connection timed out|Unable to connect|No route to host|Network is unreachable|Connection refused|503 +Service Unavailable|504 +Gateway Time'
NPM_UNREACHABLE='npm (error|ERR!) (code|errno) (EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|ENETUNREACH|EHOSTUNREACH|ENETDOWN|E502|E503|E504)|npm (error|ERR!) network '
first_match() { grep -m1 -E "$1" "$2" | sed 's/^ *//' || true; }

rm -rf "$OUT"
mkdir -p "$OUT/screenshots" "$OUT/logs" "$E2E_HOME"

# --- 0. what is missing, and can it be fetched? (a warm cache needs neither the mirror nor the registry) ---
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v rg >/dev/null || need_apt+=(ripgrep)
command -v curl >/dev/null || need_apt+=(curl)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v g++ >/dev/null || need_apt+=(build-essential)
need_npm=()
[ -d "$REPO/clients/vscode/node_modules" ] || need_npm+=("the extension's node_modules")
[ -f "$CS_STAMP" ] && [ -x "$CS_BIN" ] || need_npm+=("code-server $CS_VERSION")

if [ ${#need_apt[@]} -gt 0 ]; then
  # apt-get update is the reachability check: it exits 0 even when no mirror answered, so read what it says
  log "apt-get update (for ${need_apt[*]})"
  apt-get update -o Acquire::Retries=1 >"$OUT/logs/apt-update.log" 2>&1 ||
    { log "apt-get update failed"; tail -20 "$OUT/logs/apt-update.log" >&2; exit 1; }
  why=$(first_match "$APT_UNREACHABLE" "$OUT/logs/apt-update.log")
  [ -z "$why" ] || skip "the apt mirror cannot be reached (apt-get update: $why); needed for ${need_apt[*]}"
fi
if [ ${#need_npm[@]} -gt 0 ]; then
  # an empty cache of its own, so that the answer comes from the registry and not from ~/.npm
  log "npm view code-server@$CS_VERSION version (for ${need_npm[*]})"
  probe_cache=$(mktemp -d)
  set +e
  got=$(timeout 120 npm view "code-server@$CS_VERSION" version --cache "$probe_cache" --fetch-retries=1 \
        --fetch-timeout=30000 2>"$OUT/logs/npm-view.log")
  rc=$?
  set -e
  rm -rf "$probe_cache"
  why=$(first_match "$NPM_UNREACHABLE" "$OUT/logs/npm-view.log")
  [ "$rc" = 124 ] && why="no answer in 120 s"
  [ -z "$why" ] || skip "the npm registry cannot be reached (npm view code-server@$CS_VERSION: $why); needed for ${need_npm[*]}"
  [ "$rc" = 0 ] && [ "$got" = "$CS_VERSION" ] ||
    { log "npm view code-server@$CS_VERSION version said ${got:-nothing} (exit $rc)"; cat "$OUT/logs/npm-view.log" >&2; exit 1; }
fi

# --- 1. system packages ----------------------------------------------------------------------
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Acquire::Retries=1 "${need_apt[@]}" \
       >"$OUT/logs/apt.log" 2>&1 </dev/null; then
    why=$(first_match "$APT_UNREACHABLE" "$OUT/logs/apt.log")
    [ -z "$why" ] || skip "the apt mirror cannot be reached (apt-get install: $why)"
    log "apt-get install failed"; tail -20 "$OUT/logs/apt.log" >&2; exit 1
  fi
fi

# --- 2. the extension ------------------------------------------------------------------------
log "building the .vsix"
(cd "$REPO/clients/vscode" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run package) >"$OUT/logs/package.log" 2>&1 ||
  { log "building the .vsix failed; see $OUT/logs/package.log"; tail -30 "$OUT/logs/package.log" >&2; exit 1; }
VSIX="$REPO/clients/vscode/out/tandem.vsix"
test -f "$VSIX"

# --- 3. code-server from npm -----------------------------------------------------------------
if [ ! -f "$CS_STAMP" ] || [ ! -x "$CS_BIN" ]; then
  log "installing code-server $CS_VERSION (a minute or more)"
  CS_TMP="$E2E_HOME/tmp"
  rm -rf "$CS_TMP" && mkdir -p "$CS_TMP"
  # @vscode/ripgrep's installer downloads rg from GitHub, which is out of reach: put Debian's rg where
  # it looks for its cached download, for every @vscode/ripgrep version code-server pins.
  (cd "$CS_TMP" && rm -rf pack && mkdir pack && cd pack && npm pack "code-server@$CS_VERSION" >/dev/null 2>&1 &&
     tar xzf "code-server-$CS_VERSION.tgz" --wildcards 'package/lib/vscode/npm-shrinkwrap.json' 'package/lib/vscode/*/npm-shrinkwrap.json' 2>/dev/null || true)
  rg_versions=$(cat "$CS_TMP"/pack/package/lib/vscode/npm-shrinkwrap.json "$CS_TMP"/pack/package/lib/vscode/*/npm-shrinkwrap.json 2>/dev/null |
    "$PY" -c 'import json,sys,re
text=sys.stdin.read()
print(" ".join(sorted(set(re.findall(r"@vscode/ripgrep/-/ripgrep-([0-9.]+)\.tgz", text))) or "1.15.11"))')
  mkdir -p "$CS_TMP/rg" && cp "$(command -v rg)" "$CS_TMP/rg/rg"
  for v in $rg_versions; do
    (cd "$CS_TMP" && rm -rf rgp && mkdir rgp && cd rgp && npm pack "@vscode/ripgrep@$v" >/dev/null 2>&1 && tar xzf ./*.tgz) ||
      { log "npm pack @vscode/ripgrep@$v failed"; exit 1; }
    tag=$(sed -n "s/^const VERSION = '\(.*\)';/\1/p" "$CS_TMP/rgp/package/lib/postinstall.js")
    mkdir -p "$CS_TMP/vscode-ripgrep-cache-$v"
    tar czf "$CS_TMP/vscode-ripgrep-cache-$v/ripgrep-$tag-x86_64-unknown-linux-musl.tar.gz" -C "$CS_TMP/rg" rg
    log "ripgrep cache for @vscode/ripgrep $v ($tag) ready"
  done
  # npm 11.19 blocks dependencies' install scripts by default, and code-server's postinstall (a nested
  # `npm install` in lib/vscode that builds native modules) needs them: use npm 10 for this install.
  # Not `-g`/`--prefix`: those reach the nested install through npm_config_* and break it (ENOTEMPTY).
  # Node headers come from /usr (no download).
  if ! "$E2E_HOME/npm10/bin/npm" --version >/dev/null 2>&1; then
    rm -rf "$E2E_HOME/npm10"
    npm install -g --prefix "$E2E_HOME/npm10" --no-audit --no-fund npm@10 >"$OUT/logs/npm10-install.log" 2>&1 ||
      { log "installing npm 10 failed"; tail -20 "$OUT/logs/npm10-install.log" >&2; exit 1; }
  fi
  rm -rf "$CS_PREFIX" && mkdir -p "$CS_PREFIX"
  echo '{"name": "tandem-e2e-code-server", "private": true}' >"$CS_PREFIX/package.json"
  (cd "$CS_PREFIX" && PATH="$E2E_HOME/npm10/bin:$PATH" TMPDIR="$CS_TMP" npm_config_unsafe_perm=true npm_config_yes=true \
    npm_config_nodedir=/usr npm install --no-audit --no-fund "code-server@$CS_VERSION") >"$OUT/logs/code-server-install.log" 2>&1 ||
    { log "code-server install failed; see $OUT/logs/code-server-install.log"; tail -30 "$OUT/logs/code-server-install.log" >&2; exit 1; }
  touch "$CS_STAMP"
  rm -rf "$CS_TMP"
fi
HOME="$OUT/version-home" "$CS_BIN" --version | head -1 >&2

# --- 4. selenium -----------------------------------------------------------------------------
if ! "$E2E_HOME/venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  log "installing selenium $SELENIUM_VERSION"
  "$PY" -m venv --clear "$E2E_HOME/venv"
  "$E2E_HOME/venv/bin/pip" install -q "selenium==$SELENIUM_VERSION" >"$OUT/logs/pip.log" 2>&1 ||
    { log "installing selenium failed"; tail -20 "$OUT/logs/pip.log" >&2; exit 1; }
fi

# --- 5. the scene: fake model, workspace, code-server with its own HOME -------------------------
# Everything started from here on carries this mark in its environment (code-server's extension host,
# tandem-lsp, the terminal's shell, chromedriver and chromium too, even those in sessions of their own):
# the cleanup ends the process groups it started, then whatever still carries the mark, and waits for them.
export TANDEM_E2E_RUN="e2e-vscode-$$-$(date +%s%N)"
pids=()
cleanup() {
  trap - EXIT INT TERM HUP
  if [ "${KEEP:-0}" = 1 ]; then
    log "KEEP=1: left running (pids ${pids[*]}); end them with: kill -- -PID"
    return
  fi
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  "$PY" - "$TANDEM_E2E_RUN" <<'PY' || true
import os, signal, sys, time
mark = ("TANDEM_E2E_RUN=" + sys.argv[1]).encode()
me = set()
p = os.getpid()
while p > 1:  # this sweeper and its ancestors (the script) carry the mark too
    me.add(p)
    try:
        p = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
    except OSError:
        break
def marked():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) not in me:
            try:
                if mark in open(f"/proc/{d}/environ", "rb").read().split(b"\0"):
                    out.append(int(d))
            except OSError:
                pass
    return out
left = marked()
if left:
    names = sorted({open(f"/proc/{p}/comm").read().strip() for p in left if os.path.exists(f"/proc/{p}/comm")})
    print(f"[e2e_vscode] ending {len(left)} more process(es) it started: {' '.join(names)}", file=sys.stderr)
for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 3.0)):
    for pid in left:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    end = time.time() + grace
    while left and time.time() < end:
        time.sleep(0.2)
        left = marked()
    if not left:
        break
if left:
    print(f"[e2e_vscode] still running after SIGKILL: {left}", file=sys.stderr)
    sys.exit(1)
PY
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

TYPED='ret'
COMPLETION='urn a + b'   # the fake model continues what the test types
(cd "$REPO" && exec setsid "$PY" -m tests.fakes.model_server --completion "$COMPLETION" --model qwen2.5-coder-1.5b \
   --next-edit-replace width size) \
  >"$OUT/logs/model_server.out" 2>"$OUT/logs/model_server.err" &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$OUT/logs/model_server.out" 2>/dev/null && break; sleep 0.1; done
MODEL_URL=$(sed -n 's/^READY \(http[^ ]*\).*/\1/p' "$OUT/logs/model_server.out")
test -n "$MODEL_URL" || { log "the fake model server did not start"; cat "$OUT/logs/model_server.err" >&2; exit 1; }
log "fake model server at $MODEL_URL"

# a stand-in for Hugging Face (TANDEM_MODELS_URL): answers 404 to everything and logs what it was asked
HUB_LOG="$OUT/logs/hub-requests.log"
: >"$HUB_LOG"
HUB_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "$PY" - "$HUB_PORT" "$HUB_LOG" >"$OUT/logs/hub.log" 2>&1 <<'PY' &
import http.server, sys
port, log = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        with open(log, "a") as f:
            f.write(f"{self.command} {self.path}\n")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_HEAD = do_GET = _answer
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
pids+=($!)
export TANDEM_MODELS_URL="http://127.0.0.1:$HUB_PORT/"
# `auto` (step 4) finds no model server: nothing listens on port 9
export TANDEM_AUTO_ENDPOINTS="openai=http://127.0.0.1:9/v1,ollama=http://127.0.0.1:9,llamacpp=http://127.0.0.1:9"

SERVER_BIN="$(dirname "$PY")/tandem-lsp"
[ -x "$SERVER_BIN" ] || SERVER_BIN="$(command -v tandem-lsp || true)"

CS_HOME="$OUT/home"
WS="$OUT/workspace"
mkdir -p "$CS_HOME/.config" "$CS_HOME/.local/share" "$CS_HOME/.cache" "$CS_HOME/.local/state" "$WS"
USER_DATA="$CS_HOME/user-data"
EXT_DIR="$CS_HOME/extensions"
mkdir -p "$USER_DATA/User"
export HOME="$CS_HOME" XDG_CONFIG_HOME="$CS_HOME/.config" XDG_DATA_HOME="$CS_HOME/.local/share" \
  XDG_CACHE_HOME="$CS_HOME/.cache" XDG_STATE_HOME="$CS_HOME/.local/state" TANDEM_STATE_DIR="$CS_HOME/tandem-state"
"$PY" - "$USER_DATA/User/settings.json" "$MODEL_URL" "$SERVER_BIN" "$PY" <<'PY'
import json, sys
path, url, server, python = sys.argv[1:]
json.dump({
    "tandem.serverPath": server,
    "tandem.pythonPath": python,
    "tandem.local.backend": "openai",
    "tandem.local.endpoint": url.rstrip("/") + "/v1",
    "tandem.local.model": "qwen2.5-coder-1.5b",
    "tandem.cloud.enabled": False,
    "tandem.completion.debounceMs": 0,
    "tandem.nextEdit.enabled": True,
    "tandem.nextEdit.template": "instruct",
    "tandem.trace.server": "messages",
    "editor.inlineSuggest.enabled": True,
    # No suggest widget (Tandem also serves textDocument/completion): Tab must accept the ghost text.
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    "editor.suggestOnTriggerCharacters": False,
    "editor.inlineSuggest.suppressSuggestions": True,
    "editor.wordBasedSuggestions": "off",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "security.workspace.trust.enabled": False,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "update.mode": "none",
    "chat.commandCenter.enabled": False,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
}, open(path, "w"), indent=2)
PY
printf 'def add(a, b):\n    \n' >"$WS/calc.py"
cat >"$WS/area.py" <<'EOF'
def area(width, height):
    """The area of a rectangle."""
    if width < 0:
        raise ValueError("negative")
    return width * height
EOF
cat >"$WS/failure.log" <<'EOF'
Traceback (most recent call last):
  File "calc.py", line 4, in <module>
    print(add(1, "2"))
  File "calc.py", line 2, in add
    return a + b
TypeError: unsupported operand type(s) for +: 'int' and 'str'
EOF

log "installing the extension"
"$CS_BIN" --user-data-dir "$USER_DATA" --extensions-dir "$EXT_DIR" --install-extension "$VSIX" >"$OUT/logs/install-extension.log" 2>&1
cat "$OUT/logs/install-extension.log" >&2

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "$CS_BIN" --auth none --bind-addr "127.0.0.1:$PORT" --user-data-dir "$USER_DATA" --extensions-dir "$EXT_DIR" \
  --disable-telemetry --disable-update-check --disable-workspace-trust --disable-getting-started-override "$WS" \
  >"$OUT/logs/code-server.log" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 300); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
[ "$up" = 1 ] || { log "code-server did not answer on port $PORT in 60 s"; tail -30 "$OUT/logs/code-server.log" >&2; exit 1; }
log "code-server at http://127.0.0.1:$PORT"

# --- 6. drive it ---------------------------------------------------------------------------------
# in the background, so that a signal to this script is handled at once (the cleanup ends the browser); at most
# 10 minutes (a warm run takes well under one)
set +e
timeout -k 10 600 "$E2E_HOME/venv/bin/python" - "http://127.0.0.1:$PORT/?folder=$WS" "$OUT" "$TYPED" "$COMPLETION" \
  "$USER_DATA/User/settings.json" "$HUB_LOG" <<'PY' &
import json, os, sys, time, traceback
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.action_chains import ActionChains

url, out, typed, completion, settings_path, hub_log = sys.argv[1:]
shots = f"{out}/screenshots"
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
          "--disable-gpu", f"--user-data-dir={out}/chromium-profile"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver", log_output=f"{out}/logs/chromedriver.log"), options=opts)
results = {}

def shot(name):
    driver.save_screenshot(f"{shots}/{name}.png")

def wait_for(fn, timeout, what):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what} ({last})")

def keys(*ks, pause=0.05):
    a = ActionChains(driver)
    for k in ks:
        a.send_keys(k).pause(pause)
    a.perform()

def chord(mod, key):
    ActionChains(driver).key_down(mod).send_keys(key).key_up(mod).perform()

def command(name):
    ActionChains(driver).key_down(Keys.CONTROL).key_down(Keys.SHIFT).send_keys("p").key_up(Keys.SHIFT).key_up(Keys.CONTROL).perform()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".quick-input-widget input").is_displayed(), 10, "command palette")
    time.sleep(0.3)
    keys(name)
    time.sleep(0.8)
    keys(Keys.ENTER)

def open_file(name):
    chord(Keys.CONTROL, "p")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".quick-input-widget input").is_displayed(), 10, "quick open")
    time.sleep(0.3)
    keys(name)
    time.sleep(1.0)
    keys(Keys.ENTER)
    wait_for(lambda: any(name in t.text for t in driver.find_elements(By.CSS_SELECTOR, ".tab.active")), 15, f"{name} tab")
    time.sleep(0.5)

def editor_text():
    # the lines as shown, less the ghost text (Monaco renders it as text inside the same lines)
    return driver.execute_script(
        "const e=document.querySelector('.editor-group-container.active .monaco-editor .view-lines');"
        "if (!e) return '';"
        "const c=e.cloneNode(true);"
        "c.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text').forEach(g => g.remove());"
        "const lines=Array.from(c.querySelectorAll('.view-line')).sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));"
        "return lines.map(l => l.textContent).join('\\n').replace(/\\u00a0/g,' ')")

def ghost_text():
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text'))"
        ".map(e => e.textContent).join('|')")

ok = True
try:
    driver.get(url)
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".monaco-workbench"), 90, "the workbench")
    time.sleep(3)
    # the Tandem status bar item says the model is ready
    try:
        wait_for(lambda: any("qwen" in e.text for e in driver.find_elements(By.CSS_SELECTOR, ".statusbar-item")), 45, "Tandem status item")
        results["status bar"] = "ok"
    except TimeoutError as e:
        results["status bar"] = f"FAILED: {e}"
    shot("0-workbench")

    # 1. ghost text after typing
    open_file("calc.py")
    driver.find_element(By.CSS_SELECTOR, ".editor-group-container.active .monaco-editor .view-lines").click()
    chord(Keys.CONTROL, Keys.END)
    keys(Keys.UP, Keys.END)
    keys(*typed)
    try:
        g = wait_for(ghost_text, 20, "ghost text")
        results["1 ghost text"] = f"ok: {g!r}"
    except TimeoutError as e:
        results["1 ghost text"] = f"FAILED: {e}"; ok = False
    shot("1-ghost-text")

    # 2. Tab accepts it: the text (less any new ghost text) has it, and so does the file once saved
    before = editor_text()
    keys(Keys.TAB)
    time.sleep(1.0)
    text = editor_text()
    shot("2-accepted")
    chord(Keys.CONTROL, "s")
    calc = os.path.join(out, "workspace", "calc.py")
    try:
        saved = wait_for(lambda: (typed + completion) in open(calc).read() and open(calc).read(), 10, "calc.py saved")
    except TimeoutError:
        saved = open(calc).read()
    if typed + completion in before:
        results["2 tab accepts"] = f"FAILED: the text had {typed + completion!r} before Tab: {before!r}"; ok = False
    elif typed + completion in text and typed + completion in saved:
        line = next((l for l in before.splitlines() if l.strip() == typed), before)
        results["2 tab accepts"] = f"ok: {line.strip()!r} -> saved {saved.splitlines()[1].strip()!r}"
    else:
        results["2 tab accepts"] = f"FAILED: editor text {text!r}, calc.py {saved!r}"; ok = False

    # 3. Explain Failure on a selected traceback
    open_file("failure.log")
    driver.find_element(By.CSS_SELECTOR, ".editor-group-container.active .monaco-editor .view-lines").click()
    chord(Keys.CONTROL, "a")
    command("Tandem: Explain Failure")
    try:
        wait_for(lambda: any("Preview" in t.text and "explain-failure" in t.text for t in driver.find_elements(By.CSS_SELECTOR, ".tab")), 60, "the result preview")
        time.sleep(2)
        results["3 explain failure"] = "ok: " + ", ".join(t.text.replace("\n", " ") for t in driver.find_elements(By.CSS_SELECTOR, ".tab"))
    except TimeoutError as e:
        results["3 explain failure"] = f"FAILED: {e}"; ok = False
    shot("3-explain-failure")

    # 4. next edits: rename the parameter at the definition; the next use gets a decoration (the old word
    # struck through, the new one as `after` content, a gutter arrow); Tab jumps to it, Tab again applies it
    def decorations():
        # the extension's decorations in the active editor: struck-through spans, ::after contents, gutter marks
        return driver.execute_script(
            "const root=document.querySelector('.editor-group-container.active .monaco-editor');"
            "if (!root) return null;"
            "const lines=Array.from(root.querySelectorAll('.view-lines .view-line'));"
            "const top=l => parseFloat(l.style.top);"
            "const sorted=lines.slice().sort((a, b) => top(a) - top(b));"
            "const out={struck: [], after: [], gutter: Array.from(root.querySelectorAll('.margin *, .glyph-margin-widgets *'))"
            "  .filter(e => getComputedStyle(e).backgroundImage.includes('next-edit.svg')).length};"
            "for (const l of lines) { const n=sorted.indexOf(l) + 1;"
            "  for (const s of l.querySelectorAll('span')) {"
            "    const cs=getComputedStyle(s);"
            "    if (cs.textDecorationLine.includes('line-through') && s.children.length === 0) out.struck.push([n, s.textContent]);"
            "    const a=getComputedStyle(s, '::after').content;"
            "    if (a && a !== 'none' && a !== 'normal') out.after.push([n, a.replace(/^\"|\"$/g, '')]);"
            "  } }"
            "return out;")

    def next_edit_at(word):
        d = decorations()
        return d if d and any(t == word for _, t in d["after"]) and d["struck"] and d["gutter"] else None

    def cursor_at():
        return next((e.text for e in driver.find_elements(By.CSS_SELECTOR, ".statusbar-item") if e.text.startswith("Ln ")), None)

    def accepts_sent():
        # the extension logs each accept command it sends to the server (the Tandem output channel's file)
        logs = os.path.join(os.path.dirname(os.path.dirname(settings_path)), "logs")
        sent = []
        for d, _, files in os.walk(logs):
            for f in files:
                if f == "Tandem.log":
                    sent += [l for l in open(os.path.join(d, f), errors="replace") if "next edit accepted: tandem.acceptNextEdit" in l]
        return sent

    def without_ghost_text():
        # ghost text (a completion of the rename) wins Tab: hide it with Esc, which leaves the next edit
        if ghost_text():
            keys(Keys.ESCAPE)
            time.sleep(0.5)
            return True
        return False

    try:
        open_file("area.py")
        driver.find_element(By.CSS_SELECTOR, ".editor-group-container.active .monaco-editor .view-lines").click()
        chord(Keys.CONTROL, Keys.HOME)
        keys(Keys.HOME, *([Keys.RIGHT] * len("def area(width")))
        keys(*([Keys.BACKSPACE] * len("width")), pause=0.08)
        keys(*"size", pause=0.08)
        d = wait_for(lambda: next_edit_at("size"), 30, "the next-edit decoration")
        esc = without_ghost_text()
        d = wait_for(lambda: next_edit_at("size"), 5, "the next-edit decoration after Esc hid the ghost text")
        shot("4-next-edit-shown")
        first = (f"struck {d['struck']}, after {d['after']}, {d['gutter']} gutter mark(s)"
                 + (" (kept when Esc hid the ghost text)" if esc else ""))
        keys(Keys.TAB)  # jump
        time.sleep(0.8)
        where = cursor_at()
        if where != "Ln 3, Col 8":
            raise AssertionError(f"the first Tab did not move the cursor to the edit (line 3, column 8): {where!r}")
        jumped = editor_text()
        if "if size < 0:" in jumped:
            raise AssertionError(f"the first Tab applied the edit instead of jumping to it: {jumped!r}")
        if not next_edit_at("size"):
            raise AssertionError("the first Tab dropped the next edit")
        keys(Keys.TAB)  # apply
        wait_for(lambda: "if size < 0:" in editor_text(), 10, "the rename at the first use")
        shot("4-next-edit-applied")
        text = editor_text()
        if "def area(size, height):" not in text:
            raise AssertionError(f"unexpected text after the accept: {text!r}")
        # the rest of the set: the next use
        d2 = wait_for(lambda: next_edit_at("size"), 20, "the next edit at the second use")
        without_ghost_text()
        keys(Keys.TAB)
        time.sleep(0.8)
        keys(Keys.TAB)
        wait_for(lambda: "return size * height" in editor_text(), 10, "the rename at the second use")
        shot("4-next-edit-second")
        chord(Keys.CONTROL, "s")
        area = os.path.join(out, "workspace", "area.py")
        saved = wait_for(lambda: "return size * height" in open(area).read() and open(area).read(), 10, "area.py saved")
        if "width" in saved:
            raise AssertionError(f"area.py still has width: {saved!r}")
        sent = wait_for(lambda: len(accepts_sent()) >= 2 and accepts_sent(), 5, "the accept commands in the log")
        time.sleep(0.5)
        if len(accepts_sent()) != 2:
            raise AssertionError(f"the accept command was not sent once per edit: {accepts_sent()!r}")
        results["4 next edit"] = (f"ok: {first}; Tab jumped to {where}; then {d2['after']}; area.py: "
                                  f"{saved.splitlines()[2].strip()!r}, {saved.splitlines()[4].strip()!r}; "
                                  f"tandem.acceptNextEdit sent {len(sent)} times")
    except (TimeoutError, AssertionError) as e:
        results["4 next edit"] = f"FAILED: {e}; decorations {decorations()!r}; text {editor_text()!r}"; ok = False
        shot("4-next-edit-failed")

    # 5. no local model: the offer to pull one, and its button runs the pull
    # as a workspace setting: code-server picks up .vscode/settings.json at once
    folder = os.path.join(out, "workspace", ".vscode")
    os.makedirs(folder, exist_ok=True)
    json.dump({"tandem.local.backend": "auto"}, open(os.path.join(folder, "settings.json"), "w"))
    time.sleep(3)
    open_file("calc.py")
    driver.find_element(By.CSS_SELECTOR, ".editor-group-container.active .monaco-editor .view-lines").click()
    chord(Keys.CONTROL, Keys.END)
    keys(Keys.ENTER, "x")  # a completion request: the server looks for a model and finds none
    def offer():
        for toast in driver.find_elements(By.CSS_SELECTOR, ".notifications-toasts .notification-list-item"):
            if "no local model is running" in toast.text:
                return toast
    try:
        toast = wait_for(offer, 30, "the pull offer")
        offer_text = next(l for l in toast.text.splitlines() if "no local model is running" in l)
        shot("5-pull-offer")
        button = next(b for b in toast.find_elements(By.CSS_SELECTOR, ".monaco-button") if "Pull a model" in b.text)
        button.click()
        asked = wait_for(lambda: [l for l in open(hub_log).read().splitlines() if "qwen2.5-coder-1.5b-q8_0.gguf" in l],
                         30, "the pull at the hub")
        time.sleep(2)
        shot("5-pull-terminal")
        results["5 pull offer"] = f"ok: {offer_text!r}; the hub was asked {asked[0]!r}"
    except (TimeoutError, StopIteration) as e:
        results["5 pull offer"] = f"FAILED: {e!r}"; ok = False
        shot("5-pull-offer")
except Exception:  # noqa: BLE001
    traceback.print_exc()
    ok = False
    try:
        shot("error")
    except Exception:
        pass
finally:
    driver.quit()

for k, v in results.items():
    print(f"{k}: {v}")
steps = ("1 ghost text", "2 tab accepts", "3 explain failure", "4 next edit", "5 pull offer")
passed = sum(results.get(k, "").startswith("ok") for k in steps)
print(("PASS" if ok else "FAIL") + f" (screenshots in {shots})")
print(f"vscode-e2e: {passed} passed, {len(steps) - passed} failed")
sys.exit(0 if ok else 1)
PY
driver_pid=$!
pids+=("$driver_pid")
wait "$driver_pid"
rc=$?
set -e
[ "$rc" = 124 ] && log "the driver timed out after 600 s"
# which server the extension started, as its log says (tandem.serverPath is set to the clone's .venv)
found=$(grep -rh "found via" "$USER_DATA/logs" 2>/dev/null | tail -1 | sed 's/.*\] //' || true)
log "extension: ${found:-no 'starting ... (found via ...)' line in its log}"
log "logs: $OUT/logs, screenshots: $OUT/screenshots"
exit $rc

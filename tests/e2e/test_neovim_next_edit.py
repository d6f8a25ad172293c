"""Next-edit suggestions in the Neovim client (clients/neovim/lua/tandem/next_edit.lua) end to end: a real
headless Neovim (0.11 and 0.12, as in test_neovim.py) runs the real server against the fake model server,
whose next-edit answers rename a parameter everywhere. The scenario renames it at the definition (typed in
Insert mode), waits for the suggestion's extmarks at the next use (the old name struck through, the new one
as virtual text, a sign), presses <Tab> twice (jump, then accept), and reads ``tandem.stats``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_neovim import PRELUDE, Nvim, nvim, run_nvim  # noqa: F401 (nvim: the fixture)
from tests.fakes.model_server import FakeModelServer
from tests.fakes.next_edit_model import next_edit_script

AREA = ("def area(width, height):\n    total = width * height\n    half = total / 2\n    print(width)\n"
        "    return total\n")


def rename_width(window: str, path: str) -> str | None:
    """The fake model's next edit: once the definition says `base`, every other `width` follows it."""
    if "def area(base," not in window:
        return None
    return re.sub(r"\bwidth\b", "base", window)


def run_next_edit(nvim: Nvim, tmp_path: Path, fake: FakeModelServer, scenario: str, *, template: str = "instruct",
                  next_edit: dict | None = None) -> dict:
    """One headless Neovim run on geometry.py (AREA), with next edits on (and completion off: only the
    next-edit requests reach the fake model server). Returns what the scenario put in `out`."""
    settings = {
        "local": {"backend": "openai", "endpoint": f"{fake.url}/v1", "timeoutMs": 5000},
        "completion": {"debounceMs": 0},
        "nextEdit": {"enabled": True, "template": template, **(next_edit or {})},
    }
    return run_nvim(nvim, tmp_path, fake, scenario, settings=settings, file=("geometry.py", AREA),
                    prelude=PRELUDE + NEXT_EDIT, completion=False)


# Lua helpers: the suggestion's extmarks (the struck-through old text, the new text, the sign), the
# client's User TandemNextEdit events, and the rename typed at the definition.
NEXT_EDIT = r"""
local ne = require('tandem.next_edit')
local function lines() return vim.api.nvim_buf_get_lines(0, 0, -1, false) end
local function marks()
  local found = { deleted = {}, added = {}, signs = {} }
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ne.ns, 0, -1, { details = true })) do
    local row, col, d = m[2], m[3], m[4]
    if d.hl_group == 'TandemNextEditDelete' then
      local text = vim.api.nvim_buf_get_text(0, row, col, d.end_row, d.end_col, {})
      table.insert(found.deleted, { row = row, col = col, text = table.concat(text, '\n') })
    end
    if d.sign_text then table.insert(found.signs, { row = row, text = vim.trim(d.sign_text) }) end
    if d.virt_text then
      local text = {}
      for _, chunk in ipairs(d.virt_text) do table.insert(text, chunk[1]) end
      table.insert(found.added, { row = row, col = col, text = table.concat(text), pos = d.virt_text_pos })
    end
    for _, vl in ipairs(d.virt_lines or {}) do
      local text = {}
      for _, chunk in ipairs(vl) do table.insert(text, chunk[1]) end
      table.insert(found.added, { row = row, text = table.concat(text), pos = 'virt_lines' })
    end
  end
  return found
end
local function shown() return #marks().deleted > 0 or #marks().added > 0 end
out.events = {}
vim.api.nvim_create_autocmd('User', { pattern = 'TandemNextEdit', callback = function(ev)
  table.insert(out.events, { action = ev.data.action, version = ev.data.version,
                             buffer_version = vim.lsp.util.buf_versions[ev.data.buf],
                             row = ev.data.edit and ev.data.edit.range.start.line or vim.NIL })
end })
out.requests = {}
out.did_show = {}  -- the didShowInlineEdit notifications sent: the row of each edit
vim.api.nvim_create_autocmd('LspNotify', { callback = function(ev)
  if ev.data.method == ne.SHOWN then table.insert(out.did_show, ev.data.params.item.range.start.line) end
end })
vim.api.nvim_create_autocmd('LspRequest', { callback = function(ev)
  local r = ev.data.request
  if r.method == ne.METHOD and r.type == 'pending' then table.insert(out.requests, ev.data.request_id) end
end })
-- `width` -> `base` at the definition, typed in Insert mode as a person would
local function rename_at_definition()
  vim.api.nvim_win_set_cursor(0, { 1, 9 })
  T.keys('ciw')
  T.keys('base')
  T.keys('<Esc>')
end
local function stats() return T.request('workspace/executeCommand', { command = 'tandem.stats', arguments = {} }) end
"""


@pytest.fixture
def fake():
    server = FakeModelServer(script=next_edit_script(rename_width)).start()
    yield server
    server.stop()


ACCEPT_SCENARIO = r"""
  out.capable = vim.tbl_get(T.client().server_capabilities, 'experimental', 'copilotInlineEdit')
  out.keymaps = vim.tbl_map(function(m) return m.lhs end, vim.api.nvim_buf_get_keymap(0, 'n'))
  rename_at_definition()
  out.mode = vim.api.nvim_get_mode().mode
  out.renamed = lines()[1]
  out.appeared = T.wait_loop(20000, function() return shown() end)
  out.marks = marks()
  out.current = ne.current(0)
  out.version = vim.lsp.util.buf_versions[vim.api.nvim_get_current_buf()]
  T.keys('<Tab>')  -- the first press: to the edit
  out.cursor_jumped = vim.api.nvim_win_get_cursor(0)
  out.lines_after_jump = lines()
  out.shown_after_jump = shown()
  T.keys('<Tab>')  -- the second: apply it
  T.wait_loop(5000, function() return lines()[2] ~= '    total = width * height' end)
  out.lines_accepted = lines()
  out.cursor_accepted = vim.api.nvim_win_get_cursor(0)
  -- the client asks again at once: the rest of the same set (the other use) shows next
  out.next_appeared = T.wait_loop(10000, function()
    local m = marks()
    return #m.deleted > 0 and m.deleted[1].row == 3
  end)
  out.next_marks = marks()
  T.wait_loop(5000, function()
    local s = stats()
    return s and s.nextEdit and s.nextEdit.accepted >= 1
  end)
  out.stats = stats()
  -- <Esc> in Normal mode hides it; with nothing shown, <Esc> and <Tab> are plain keys again
  T.keys('<Esc>')
  out.shown_after_esc = shown()
  vim.g.tandem_next_edit = false  -- (asks nothing more: the cursor's move below would)
  vim.api.nvim_win_set_cursor(0, { 5, 0 })
  T.keys('<Tab>')
  out.cursor_plain_tab = vim.api.nvim_win_get_cursor(0)
  out.lines_end = lines()
"""


def check_accepted(result: dict) -> None:
    assert result["capable"] is True and "<Tab>" in result["keymaps"]
    assert result["mode"] == "n" and result["renamed"] == "def area(base, height):"
    assert result["appeared"], f"no next edit shown; events: {result['events']}"
    marks = result["marks"]
    # the old name struck through at the next use, the new one right after it, a sign on that line
    assert marks["deleted"] == [{"row": 1, "col": 12, "text": "width"}]
    assert marks["added"] == [{"row": 1, "col": 17, "text": "base", "pos": "inline"}]
    assert [s["row"] for s in marks["signs"]] == [1] and marks["signs"][0]["text"]
    assert result["lines_after_jump"][1] == "    total = width * height" and result["shown_after_jump"]
    assert result["cursor_jumped"] == [2, 12]
    assert result["lines_accepted"][1] == "    total = base * height"
    assert result["lines_accepted"][0] == "def area(base, height):"
    assert result["lines_accepted"][3] == "    print(width)"
    assert result["next_appeared"], f"the rest of the set did not show; events: {result['events']}"
    assert result["next_marks"]["deleted"] == [{"row": 3, "col": 10, "text": "width"}]
    assert result["next_marks"]["added"][0]["text"] == "base"
    assert result["stats"]["nextEdit"]["accepted"] == 1
    assert result["stats"]["nextEdit"]["requests"] >= 2 and result["stats"]["nextEdit"]["shown"] == 2
    assert result["did_show"] == [1, 3]  # each edit told once, when it showed
    # every edit shown was for the buffer's version of that moment; each edit was shown once
    shown = [e for e in result["events"] if e["action"] == "shown"]
    assert all(e["version"] == e["buffer_version"] for e in shown)
    assert result["shown_after_esc"] is False
    assert result["cursor_plain_tab"] == [5, 0]  # a plain Tab (jump forward: nowhere to go)
    assert result["lines_end"][3] == "    print(width)"


def test_next_edit_shows_jumps_and_accepts(nvim, tmp_path, fake):
    result = run_next_edit(nvim, tmp_path, fake, ACCEPT_SCENARIO, template="instruct")
    check_accepted(result)
    assert fake.generation_requests()


def test_next_edit_with_the_sweep_template(nvim, tmp_path, fake):
    result = run_next_edit(nvim, tmp_path, fake, ACCEPT_SCENARIO, template="sweep")
    check_accepted(result)


def test_a_stale_answer_shows_nothing(nvim, tmp_path):
    """The buffer changes while the question is on its way (the model takes 1 s): that answer is dropped,
    and only the answer for the new version shows. An answer for an old version, handed to the client
    directly, is dropped too; one for the current version that replaces a line by two shows them as
    virtual lines."""
    server = FakeModelServer(script=next_edit_script(rename_width), first_token_latency=1.0).start()
    try:
        result = run_next_edit(nvim, tmp_path, server, r"""
          local bufnr = vim.api.nvim_get_current_buf()
          rename_at_definition()
          T.sleep(400)  -- past the client's 200 ms pause: the question is on its way, the model still thinking
          out.pending = #out.requests
          out.version_asked = vim.lsp.util.buf_versions[bufnr]
          vim.g.tandem_next_edit_debounce = 3000  -- (the change below asks again only after the stale answer)
          vim.api.nvim_buf_set_lines(0, -1, -1, false, { '# end' })  -- a change while it is on its way
          out.version_changed = vim.lsp.util.buf_versions[bufnr]
          local function dropped(version)
            return vim.iter(out.events):any(function(e) return e.action == 'dropped' and e.version == version end)
          end
          out.dropped_in_flight = T.wait_loop(10000, function() return dropped(out.version_asked) end)
          out.shown_after_stale = shown()
          out.appeared = T.wait_loop(20000, function() return shown() end)
          out.shown_version = ne.state[bufnr].version
          out.marks = marks()

          -- an answer for an older version, handed to the client directly: dropped
          ne.clear(bufnr)
          local old = out.version_changed - 1
          local edit = { text = 'base', textDocument = { uri = vim.uri_from_bufnr(bufnr), version = old },
                         range = { start = { line = 1, character = 12 }, ['end'] = { line = 1, character = 17 } } }
          ne.on_result(bufnr, T.client(), old, nil, { edits = { edit } })
          out.shown_stale = shown()
          out.dropped_direct = dropped(old)

          -- a replacement of whole lines by several lines: the new lines show below the struck-through one
          local now = vim.lsp.util.buf_versions[bufnr]
          ne.on_result(bufnr, T.client(), now, nil, { edits = { {
            text = '    half = total / 2\n    third = total / 3\n',
            textDocument = { uri = vim.uri_from_bufnr(bufnr), version = now },
            range = { start = { line = 2, character = 0 }, ['end'] = { line = 3, character = 0 } } } } })
          out.multiline = marks()
          ne.dismiss(bufnr)
        """)
    finally:
        server.stop()
    assert result["pending"] >= 1 and result["version_changed"] > result["version_asked"]
    assert result["dropped_in_flight"], f"events: {result['events']}"
    assert result["shown_after_stale"] is False
    assert result["appeared"] and result["shown_version"] == result["version_changed"]
    assert result["marks"]["deleted"] == [{"row": 1, "col": 12, "text": "width"}]
    shown = [e for e in result["events"] if e["action"] == "shown"]
    assert shown and all(e["version"] == result["version_changed"] for e in shown)
    assert result["shown_stale"] is False and result["dropped_direct"]
    multiline = result["multiline"]
    assert multiline["deleted"] == [{"row": 2, "col": 0, "text": "    half = total / 2\n"}]
    assert multiline["added"] == [{"row": 2, "text": "    half = total / 2", "pos": "virt_lines"},
                                  {"row": 2, "text": "    third = total / 3", "pos": "virt_lines"}]
    assert [s["row"] for s in multiline["signs"]] == [2]

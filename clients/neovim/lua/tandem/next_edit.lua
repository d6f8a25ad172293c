--- Tandem next-edit suggestions (NES): after an edit, the server proposes a replacement of existing text
--- near the cursor (`textDocument/copilotInlineEdit`). The old text shows struck through, the new text
--- as virtual text, with a sign; <Tab> in Normal mode jumps to it, and a second <Tab> applies it.
--- Loaded by require('tandem').setup() for every buffer the tandem client attaches to.
local M = {}

local api = vim.api

M.METHOD = 'textDocument/copilotInlineEdit'
M.SHOWN = 'textDocument/didShowInlineEdit'
M.ns = api.nvim_create_namespace('tandem.next_edit')

---@class tandem.NextEditState
---@field client_id integer
---@field timer uv.uv_timer_t?
---@field seq integer           the number of the newest request (older answers are dropped)
---@field request_id integer?   the newest request still in flight
---@field line integer?         the cursor's line at the last look (CursorMoved: did it change?)
---@field edit table?           the edit shown (the server's EDIT)
---@field version integer?      the buffer version it was computed for
---@field skip_tick integer?    b:changedtick of our own accept: its TextChanged asks nothing more
---@field augroup integer

---@type table<integer, tandem.NextEditState>
M.state = {}

local function buf_version(bufnr)
  return vim.lsp.util.buf_versions[bufnr]
end

local function fire(action, bufnr, data)
  data = data or {}
  data.action = action
  data.buf = bufnr
  api.nvim_exec_autocmds('User', { pattern = 'TandemNextEdit', modeline = false, data = data })
end

-- -- highlights -------------------------------------------------------------------------------------

--- TandemNextEditDelete is DiffDelete struck through (a link could not add the strikethrough);
--- TandemNextEditAdd links to DiffAdd, TandemNextEditSign to DiffAdd. All are `default`: a colour
--- scheme or the user's own :highlight wins.
function M.define_highlights()
  local ok, del = pcall(api.nvim_get_hl, 0, { name = 'DiffDelete', link = false })
  del = ok and del or {}
  del.strikethrough = true
  del.cterm = vim.tbl_extend('force', del.cterm or {}, { strikethrough = true })
  del.default = true
  api.nvim_set_hl(0, 'TandemNextEditDelete', del)
  api.nvim_set_hl(0, 'TandemNextEditAdd', { link = 'DiffAdd', default = true })
  api.nvim_set_hl(0, 'TandemNextEditSign', { link = 'DiffAdd', default = true })
end

-- -- settings ---------------------------------------------------------------------------------------

--- `nextEdit.enabled` of the client's `tandem` settings (nested or dotted), or nil when unset.
local function setting_enabled(client)
  for _, tree in ipairs({ vim.tbl_get(client, 'settings', 'tandem'), vim.tbl_get(client, 'config', 'init_options') }) do
    if type(tree) == 'table' then
      local v = vim.tbl_get(tree, 'nextEdit', 'enabled')
      if v == nil then
        v = tree['nextEdit.enabled']
      end
      if v ~= nil and v ~= vim.NIL then
        return v
      end
    end
  end
  return nil
end

--- Whether the server offers next edits and neither the settings nor vim.g.tandem_next_edit turn them off.
function M.available(client)
  return client ~= nil
    and vim.g.tandem_next_edit ~= false
    and vim.tbl_get(client.server_capabilities or {}, 'experimental', 'copilotInlineEdit') == true
    and setting_enabled(client) ~= false
end

-- -- positions --------------------------------------------------------------------------------------

local function line_text(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
end

--- An LSP position as (row, byte col), clamped to the buffer.
local function to_byte(bufnr, pos, encoding)
  local count = api.nvim_buf_line_count(bufnr)
  if pos.line >= count then
    local last = line_text(bufnr, count - 1) or ''
    return count - 1, #last
  end
  local text = line_text(bufnr, pos.line) or ''
  if pos.character == 0 then
    return pos.line, 0
  end
  return pos.line, vim.str_byteindex(text, encoding, pos.character, false)
end

local function client_of(state)
  return state and vim.lsp.get_client_by_id(state.client_id)
end

--- The shown edit's range as byte positions: sr, sc, er, ec (0-based, end exclusive).
local function byte_range(bufnr, edit, encoding)
  local sr, sc = to_byte(bufnr, edit.range.start, encoding)
  local er, ec = to_byte(bufnr, edit.range['end'], encoding)
  return sr, sc, er, ec
end

-- -- display ----------------------------------------------------------------------------------------

--- Remove the shown edit (if any).
function M.clear(bufnr, reason)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  local state = M.state[bufnr]
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
  if state and state.edit then
    state.edit, state.version, state.jumped = nil, nil, nil
    fire('cleared', bufnr, { reason = reason })
  end
end

local function same_edit(a, b)
  return a and b and a.text == b.text and vim.deep_equal(a.range, b.range)
end

local function draw(bufnr, edit, encoding)
  api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local sr, sc, er, ec = byte_range(bufnr, edit, encoding)
  local text = edit.text or ''
  local sign = vim.g.tandem_next_edit_sign
  if sign == nil then
    sign = '➜'
  end
  -- the old text, struck through, and the sign on its first line
  local old = { end_row = er, end_col = ec, hl_group = 'TandemNextEditDelete', priority = 4096 }
  if sign then
    old.sign_text = sign
    old.sign_hl_group = 'TandemNextEditSign'
  end
  api.nvim_buf_set_extmark(bufnr, M.ns, sr, sc, old)

  local new_lines = vim.split(text, '\n', { plain = true })
  if sr == er and #new_lines == 1 then
    if text ~= '' then -- a one-line replacement: the new text right after the old
      api.nvim_buf_set_extmark(bufnr, M.ns, er, ec, {
        virt_text = { { text, 'TandemNextEditAdd' } },
        virt_text_pos = 'inline',
        priority = 4096,
      })
    end
    return
  end
  -- several lines: the lines as they would read after the edit, below the old ones
  local last_row, suffix_col = er, ec
  if ec == 0 and er > sr and text:sub(-1) == '\n' then -- whole lines replaced by whole lines
    last_row, suffix_col = er - 1, nil
    table.remove(new_lines)
  end
  local prefix = (line_text(bufnr, sr) or ''):sub(1, sc)
  local suffix = suffix_col and (line_text(bufnr, er) or ''):sub(suffix_col + 1) or ''
  local virt_lines = {}
  for i, l in ipairs(new_lines) do
    local chunks = {}
    if i == 1 and prefix ~= '' then
      table.insert(chunks, { prefix, 'TandemNextEditAdd' })
    end
    table.insert(chunks, { l, 'TandemNextEditAdd' })
    if i == #new_lines and suffix ~= '' then
      table.insert(chunks, { suffix, 'TandemNextEditAdd' })
    end
    table.insert(virt_lines, chunks)
  end
  if #virt_lines > 0 then
    api.nvim_buf_set_extmark(bufnr, M.ns, math.max(sr, last_row), 0, { virt_lines = virt_lines, priority = 4096 })
  end
end

--- Show `edit` (an EDIT of the protocol) for buffer version `version`, and tell the server once.
function M.show(bufnr, client, edit, version)
  local state = M.state[bufnr]
  if not state then
    return
  end
  if state.edit and state.version == version and same_edit(state.edit, edit) then
    return -- already shown (asked again from another line): no second didShowInlineEdit
  end
  local uri = vim.tbl_get(edit, 'textDocument', 'uri')
  if type(uri) == 'string' and uri ~= vim.uri_from_bufnr(bufnr)
      and vim.uri_to_fname(uri) ~= api.nvim_buf_get_name(bufnr) then
    return -- (an edit of another file: not shown here)
  end
  if not pcall(draw, bufnr, edit, client.offset_encoding or 'utf-16') then
    api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1) -- (a range outside the buffer)
    return
  end
  state.edit, state.version, state.jumped = edit, version, nil
  client:notify(M.SHOWN, { item = edit })
  fire('shown', bufnr, { edit = edit, version = version })
end

-- -- requests ---------------------------------------------------------------------------------------

--- An answer for `version` of the buffer: show its first edit, or drop it when the buffer moved on.
function M.on_result(bufnr, client, version, err, result)
  local state = M.state[bufnr]
  if not state or not api.nvim_buf_is_valid(bufnr) then
    return
  end
  if err then
    return -- (a cancelled request, or a server error: nothing to show)
  end
  local current = buf_version(bufnr)
  local edit = type(result) == 'table' and type(result.edits) == 'table' and result.edits[1] or nil
  local edit_version = edit and vim.tbl_get(edit, 'textDocument', 'version')
  if version ~= current or (type(edit_version) == 'number' and edit_version ~= current) then
    fire('dropped', bufnr, { version = edit_version or version, current = current })
    return
  end
  if not edit or type(edit.range) ~= 'table' then
    M.clear(bufnr, 'none')
    return
  end
  M.show(bufnr, client, edit, current)
end

--- Ask the server for a next edit at the cursor (cancelling the previous question).
function M.request(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = M.state[bufnr]
  local client = client_of(state)
  if not (client and M.available(client) and api.nvim_buf_is_valid(bufnr)) then
    return
  end
  if state.request_id then
    client:cancel_request(state.request_id)
    state.request_id = nil
  end
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr then
    return
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding or 'utf-16')
  local version = buf_version(bufnr)
  params.textDocument = { uri = vim.uri_from_bufnr(bufnr), version = version }
  state.seq = state.seq + 1
  local seq = state.seq
  local ok, id = client:request(M.METHOD, params, function(err, result)
    if seq ~= state.seq then
      return -- a newer question was asked meanwhile
    end
    state.request_id = nil
    M.on_result(bufnr, client, version, err, result)
  end, bufnr)
  if ok and seq == state.seq then
    state.request_id = id
  end
end

--- Ask after a pause (vim.g.tandem_next_edit_debounce ms, default 200), restarted by each call.
function M.schedule(bufnr)
  local state = M.state[bufnr]
  if not state then
    return
  end
  state.timer = state.timer or vim.uv.new_timer()
  state.timer:stop()
  state.timer:start(tonumber(vim.g.tandem_next_edit_debounce) or 200, 0, vim.schedule_wrap(function()
    if M.state[bufnr] == state and api.nvim_get_current_buf() == bufnr then
      M.request(bufnr)
    end
  end))
end

-- -- jump and accept --------------------------------------------------------------------------------

--- The shown edit of the buffer, if it is still for the buffer's version.
---@return table? edit
function M.current(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = M.state[bufnr]
  if not (state and state.edit) then
    return nil
  end
  if state.version ~= buf_version(bufnr) then
    M.clear(bufnr, 'changed')
    return nil
  end
  return state.edit
end

--- Whether an edit is shown for the buffer's version (no side effects: for expr mappings).
function M.has_edit(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = M.state[bufnr]
  return state ~= nil and state.edit ~= nil and state.version == buf_version(bufnr)
end

--- Run the edit's command once: with client:exec_cmd when the server lists it (or a client-side
--- handler exists), else as a plain workspace/executeCommand.
local function run_command(client, bufnr, command)
  if type(command) ~= 'table' or type(command.command) ~= 'string' then
    return
  end
  local listed = vim.tbl_get(client.server_capabilities or {}, 'executeCommandProvider', 'commands') or {}
  if client.exec_cmd and (vim.list_contains(listed, command.command) or vim.lsp.commands[command.command]
      or (client.commands or {})[command.command]) then
    client:exec_cmd(command, { bufnr = bufnr }, function() end)
  else
    client:request('workspace/executeCommand', { command = command.command, arguments = command.arguments },
      function() end, bufnr)
  end
end

--- The buffer (0 or nil: the current one), its shown edit, its state and its client; the edit is nil
--- when none is shown or the client is gone.
local function shown_edit(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local edit, state = M.current(bufnr), M.state[bufnr]
  local client = client_of(state)
  if not (edit and client) then
    return bufnr, nil, state, client
  end
  return bufnr, edit, state, client
end

--- Apply the shown edit, run its command, and ask for the next one.
function M.accept(bufnr)
  local edit, state, client
  bufnr, edit, state, client = shown_edit(bufnr)
  if not edit then
    return false
  end
  local encoding = client.offset_encoding or 'utf-16'
  local sr, sc = byte_range(bufnr, edit, encoding)
  M.clear(bufnr, 'accepted')
  vim.lsp.util.apply_text_edits({ { range = edit.range, newText = edit.text or '' } }, bufnr, encoding)
  state.skip_tick = api.nvim_buf_get_changedtick(bufnr)
  -- the cursor on the last character of the new text
  local lines = vim.split(edit.text or '', '\n', { plain = true })
  local row = sr + #lines - 1
  local col = (#lines == 1 and sc or 0) + #lines[#lines]
  if #lines > 1 and lines[#lines] == '' then
    row, col = row - 1, #lines[#lines - 1] + (#lines == 2 and sc or 0)
  end
  row = math.min(row, api.nvim_buf_line_count(bufnr) - 1)
  if api.nvim_get_current_buf() == bufnr then
    local mode = api.nvim_get_mode().mode
    if not mode:match('^i') and col > 0 then
      col = col - 1
    end
    pcall(api.nvim_win_set_cursor, 0, { row + 1, col })
    state.line = row
  end
  run_command(client, bufnr, edit.command)
  fire('accepted', bufnr, { edit = edit })
  M.request(bufnr)
  return true
end

--- Whether the cursor is at the shown edit: on its first line, within its old text.
local function at_edit(bufnr, edit, client)
  local sr, sc, er, ec = byte_range(bufnr, edit, client.offset_encoding or 'utf-16')
  local cursor = api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  return row == sr and col >= sc and (er > sr or col <= math.max(ec, sc))
end

--- The first press moves the cursor to the edit's start; the next applies it. Returns false when no
--- edit is shown (then nothing happens).
function M.jump_or_accept(bufnr)
  local edit, state, client
  bufnr, edit, state, client = shown_edit(bufnr)
  if not edit then
    return false
  end
  if at_edit(bufnr, edit, client) then
    return M.accept(bufnr)
  end
  local sr, sc = byte_range(bufnr, edit, client.offset_encoding or 'utf-16')
  vim.cmd("normal! m'") -- <C-o> goes back
  api.nvim_win_set_cursor(0, { sr + 1, sc })
  state.line = sr -- (our own move: CursorMoved asks nothing)
  state.jumped = true
  fire('jumped', bufnr, { edit = edit })
  return true
end

--- :TandemNextEditDismiss, <Esc>: hide the shown edit.
function M.dismiss(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local shown = M.state[bufnr] and M.state[bufnr].edit ~= nil
  M.clear(bufnr, 'dismissed')
  return shown
end

-- -- attach -----------------------------------------------------------------------------------------

--- A Normal-mode mapping of `key` the user already has (then ours is not added: theirs stays).
local function mapped(bufnr, key)
  local m = api.nvim_buf_call(bufnr, function()
    return vim.fn.maparg(key, 'n', false, true)
  end)
  return next(m) ~= nil and not tostring(m.desc or ''):match('^Tandem:')
end

local function map_keys(bufnr)
  local key = vim.g.tandem_next_edit_key
  if key == nil then
    key = '<Tab>'
  end
  if key and not mapped(bufnr, key) then
    vim.keymap.set('n', key, function()
      if M.has_edit(bufnr) then
        return '<Cmd>lua require("tandem.next_edit").jump_or_accept()<CR>'
      end
      return key -- (not remapped: the key's own meaning, with its count)
    end, { buffer = bufnr, expr = true, replace_keycodes = true,
           desc = 'Tandem: jump to the next edit, then accept it' })
  end
  local dismiss = vim.g.tandem_next_edit_dismiss_key
  if dismiss == nil then
    dismiss = '<Esc>'
  end
  if dismiss and not mapped(bufnr, dismiss) then
    vim.keymap.set('n', dismiss, function()
      if M.state[bufnr] and M.state[bufnr].edit then
        return '<Cmd>lua require("tandem.next_edit").dismiss()<CR>'
      end
      return dismiss
    end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = 'Tandem: dismiss the next edit' })
  end
end

--- Start next edits in a buffer the tandem client attached to.
function M.attach(client, bufnr)
  if M.state[bufnr] or not M.available(client) then
    return
  end
  local group = api.nvim_create_augroup('tandem.next_edit.' .. bufnr, { clear = true })
  local state = { client_id = client.id, seq = 0, augroup = group,
                  line = api.nvim_get_current_buf() == bufnr and api.nvim_win_get_cursor(0)[1] - 1 or nil }
  M.state[bufnr] = state
  api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI' }, { group = group, buffer = bufnr, callback = function()
    if state.edit and state.version ~= buf_version(bufnr) then
      M.clear(bufnr, 'changed')
    end
    if state.skip_tick and state.skip_tick == api.nvim_buf_get_changedtick(bufnr) then
      return -- our own accept, which asked already
    end
    state.line = api.nvim_win_get_cursor(0)[1] - 1
    M.schedule(bufnr)
  end })
  api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI' }, { group = group, buffer = bufnr, callback = function()
    local line = api.nvim_win_get_cursor(0)[1] - 1
    if state.edit and state.version ~= buf_version(bufnr) then
      M.clear(bufnr, 'changed')
    end
    if line ~= state.line then
      state.line = line
      M.schedule(bufnr)
    end
  end })
  api.nvim_create_autocmd({ 'BufUnload', 'LspDetach' }, { group = group, buffer = bufnr, callback = function(ev)
    if ev.event == 'LspDetach' and ev.data and ev.data.client_id ~= state.client_id then
      return
    end
    M.detach(bufnr)
  end })
  map_keys(bufnr)
end

function M.detach(bufnr)
  local state = M.state[bufnr]
  if not state then
    return
  end
  M.clear(bufnr, 'detached')
  M.state[bufnr] = nil
  if state.timer then
    state.timer:stop()
    state.timer:close()
  end
  local client = client_of(state)
  if client and state.request_id then
    client:cancel_request(state.request_id)
  end
  pcall(api.nvim_del_augroup_by_id, state.augroup)
end

function M.setup()
  M.define_highlights()
  api.nvim_create_autocmd('ColorScheme', {
    group = api.nvim_create_augroup('tandem.next_edit', { clear = true }),
    callback = M.define_highlights,
  })
  vim.keymap.set('n', '<Plug>(TandemNextEdit)', function()
    M.jump_or_accept()
  end, { desc = 'Tandem: jump to the next edit, then accept it' })
end

return M

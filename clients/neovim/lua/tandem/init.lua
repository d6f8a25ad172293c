--- Tandem for Neovim: the user commands, the Markdown result split and completion set-up.
--- Loaded by plugin/tandem.lua; `require('tandem')` is also the scripting API.
local M = {}

M.name = 'tandem'

local function notify(msg, level)
  vim.notify('Tandem: ' .. msg, level or vim.log.levels.INFO)
end

--- The Tandem client for a buffer (or any running Tandem client).
---@param bufnr? integer
---@return vim.lsp.Client?
function M.client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })[1]
    or vim.lsp.get_clients({ name = M.name })[1]
end

--- An LSP range covering whole lines `line1`..`line2` (1-based, inclusive) of a buffer.
function M.lines_range(bufnr, line1, line2, encoding)
  local last = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, false)[1] or ''
  return {
    start = { line = line1 - 1, character = 0 },
    ['end'] = { line = line2 - 1, character = vim.str_utfindex(last, encoding or 'utf-16') },
  }
end

--- The diagnostics on lines `line1`..`line2` as failure text, or nil when there are none.
function M.diagnostics_text(bufnr, line1, line2)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.lnum + 1 >= line1 and d.lnum + 1 <= line2 then
      local source = d.source and (' [' .. d.source .. ']') or ''
      table.insert(out, string.format('line %d: %s%s', d.lnum + 1, d.message, source))
    end
  end
  return #out > 0 and table.concat(out, '\n') or nil
end

-- -- the result split ----------------------------------------------------------------------------

local function result_lines(title, result)
  local lines = {}
  if type(result) ~= 'table' then
    return { '# ' .. title, '', '_No result._' }
  end
  if type(result.markdown) == 'string' then
    lines = vim.split(result.markdown, '\n', { plain = true })
    local footer = string.format(
      '_%s · tier: %s · model: %s · cost: $%.4f%s_',
      title,
      tostring(result.tier),
      tostring(result.model),
      tonumber(result.costUsd) or 0,
      type(result.fallbackReason) == 'string' and (' · fallback: ' .. result.fallbackReason) or ''
    )
    vim.list_extend(lines, { '', '---', footer })
  else -- tandem.stats: counts, not Markdown
    local rows = {}
    for k, v in pairs(result) do
      if type(v) ~= 'table' then
        table.insert(rows, string.format('- **%s**: %s', k, vim.inspect(v)))
      else -- one level down: the scalar counts, e.g. local: calls=3
        local parts = {}
        for k2, v2 in pairs(v) do
          if type(v2) ~= 'table' and v2 ~= vim.NIL then
            table.insert(parts, string.format('%s=%s', k2, tostring(v2)))
          end
        end
        table.sort(parts)
        table.insert(rows, string.format('- **%s**: %s', k, table.concat(parts, ', ')))
      end
    end
    table.sort(rows)
    lines = { '# Tandem stats', '' }
    vim.list_extend(lines, rows)
    table.insert(lines, '')
    table.insert(lines, '```json')
    vim.list_extend(lines, vim.split(vim.json.encode(result), '\n', { plain = true }))
    table.insert(lines, '```')
  end
  return lines
end

--- Show a command's result in the Markdown split (a scratch buffer, reused between commands).
---@return integer bufnr
function M.show(title, result)
  local buf = M._buf
  if not (buf and vim.api.nvim_buf_is_valid(buf)) then
    buf = vim.api.nvim_create_buf(false, true)
    M._buf = buf
    vim.bo[buf].bufhidden = 'hide'
    vim.bo[buf].swapfile = false
    pcall(vim.api.nvim_buf_set_name, buf, 'tandem://result')
    vim.bo[buf].filetype = 'markdown'
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, result_lines(title, result))
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  vim.b[buf].tandem_result = result
  vim.b[buf].tandem_title = title

  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    local cur = vim.api.nvim_get_current_win()
    vim.cmd(vim.g.tandem_split or 'botright split')
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    vim.wo[win].wrap = true
    vim.wo[win].linebreak = true
    if vim.g.tandem_focus_result ~= true then
      vim.api.nvim_set_current_win(cur)
    end
  end
  vim.api.nvim_exec_autocmds('User', { pattern = 'TandemResult', data = { title = title, result = result, buf = buf } })
  return buf
end

-- -- commands --------------------------------------------------------------------------------------

--- Run a workspace/executeCommand on the Tandem server and show the result in the split.
---@param command string e.g. 'tandem.explainFailure'
---@param arg table|nil the one argument object
---@param opts? {bufnr?: integer, title?: string, on_result?: fun(err, result)}
function M.execute(command, arg, opts)
  opts = opts or {}
  local bufnr = opts.bufnr or vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    notify('no tandem-lsp client is running (vim.lsp.enable("tandem") and open a supported file)', vim.log.levels.WARN)
    return
  end
  local title = opts.title or command
  local params = { command = command, arguments = arg and { arg } or {} }
  notify(title .. '…')
  client:request('workspace/executeCommand', params, function(err, result)
    if err then
      notify(title .. ' failed: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif not (vim.g.tandem_results_split == false and type(result) == 'table' and result.markdown) then
      M.show(title, result) -- (with tandem_results_split = false the server's .md file shows it instead)
    end
    if opts.on_result then
      opts.on_result(err, result)
    end
  end, bufnr)
end

local function uri_of(bufnr)
  return vim.uri_from_bufnr(bufnr)
end

local function encoding_of(bufnr)
  local client = M.client(bufnr)
  return client and client.offset_encoding or 'utf-16'
end

--- Failure text from a command argument: `@x` reads register x; anything else is the text itself.
local function failure_from_arg(args)
  if args == nil or args == '' then
    return nil
  end
  local reg = args:match('^@(.)$')
  if reg then
    local text = vim.fn.getreg(reg)
    return text ~= '' and text or nil
  end
  return args
end

--- :TandemExplainFailure [text | @register]  (with a range: the selected lines)
function M.explain_failure(cmd)
  local bufnr = vim.api.nvim_get_current_buf()
  local line1, line2 = vim.fn.line('.'), vim.fn.line('.')
  if cmd and cmd.range and cmd.range > 0 then
    line1, line2 = cmd.line1, cmd.line2
  end
  local arg = { uri = uri_of(bufnr), range = M.lines_range(bufnr, line1, line2, encoding_of(bufnr)) }
  arg.failure = failure_from_arg(cmd and cmd.args) or M.diagnostics_text(bufnr, line1, line2)
  M.execute('tandem.explainFailure', arg, { bufnr = bufnr, title = 'Explain failure' })
end

--- :[range]TandemPlanRefactor [goal]  (without a range: the whole file)
function M.plan_refactor(cmd)
  local bufnr = vim.api.nvim_get_current_buf()
  local arg = { uri = uri_of(bufnr) }
  if cmd and cmd.range and cmd.range > 0 then
    arg.range = M.lines_range(bufnr, cmd.line1, cmd.line2, encoding_of(bufnr))
  end
  if cmd and cmd.args and cmd.args ~= '' then
    arg.goal = cmd.args
  end
  M.execute('tandem.planRefactor', arg, { bufnr = bufnr, title = 'Refactoring plan' })
end

--- :[range]TandemAsk {prompt}
function M.ask(cmd)
  local bufnr = vim.api.nvim_get_current_buf()
  local arg = { prompt = cmd.args, uri = uri_of(bufnr) }
  if cmd.range and cmd.range > 0 then
    arg.range = M.lines_range(bufnr, cmd.line1, cmd.line2, encoding_of(bufnr))
  end
  M.execute('tandem.ask', arg, { bufnr = bufnr, title = 'Ask' })
end

--- :TandemStats
function M.stats()
  M.execute('tandem.stats', nil, { title = 'Stats' })
end

-- Code actions whose command is one of these (picked with vim.lsp.buf.code_action()) also show
-- their result in the split: Neovim runs a client-side handler instead of discarding the result.
local SHOWN = {
  ['tandem.explainFailure'] = 'Explain failure',
  ['tandem.planRefactor'] = 'Refactoring plan',
  ['tandem.explainCode'] = 'Explain code',
  ['tandem.ask'] = 'Ask',
}

function M.register_client_commands()
  for name, title in pairs(SHOWN) do
    vim.lsp.commands[name] = vim.lsp.commands[name]
      or function(command, ctx)
        local arg = command.arguments and command.arguments[1] or nil
        M.execute(name, arg, { bufnr = ctx.bufnr, title = title })
      end
  end
end

-- -- no local model: pull one ----------------------------------------------------------------------

--- The server's `tandem_lsp.models.RECOMMENDED` (tests/e2e/test_neovim.py checks they agree).
M.RECOMMENDED_MODEL = 'qwen2.5-coder-1.5b-q8_0'

--- The server command from the 'tandem' config, to run its `models` sub-command with.
local function server_argv()
  local cfg = vim.lsp.config[M.name] or {}
  if type(cfg.cmd) == 'table' and #cfg.cmd > 0 then
    return vim.deepcopy(cfg.cmd)
  end
  return { 'tandem-lsp' }
end

--- :TandemPullModel [name]: `tandem-lsp models pull` in a terminal split, so its progress shows.
--- The server picks the model up by itself the next time a completion finds no model server.
function M.pull_model(cmd)
  local name = (cmd and cmd.args and cmd.args ~= '') and cmd.args or M.RECOMMENDED_MODEL
  local argv = server_argv()
  vim.list_extend(argv, { 'models', 'pull', name })
  vim.cmd(vim.g.tandem_split or 'botright split')
  vim.cmd.enew()
  local opts = {
    on_exit = function(_, code)
      M.last_pull = { name = name, code = code }
      if code == 0 then
        notify(name .. ' is pulled; completions use it from the next keystroke on')
      else
        notify('pulling ' .. name .. ' failed (exit ' .. code .. '); the terminal says why', vim.log.levels.WARN)
      end
    end,
  }
  if vim.fn.has('nvim-0.11') == 1 then
    opts.term = true
    return vim.fn.jobstart(argv, opts)
  end
  return vim.fn.termopen(argv, opts)
end

local offered = false

--- `tandem/status` notifications: when no model runs and the server names the pull command, say
--- once which command pulls one.
function M.on_status(_, status)
  if offered or type(status) ~= 'table' or status.state ~= 'down' then
    return
  end
  if tostring(status.detail or ''):find('tandem-lsp models pull', 1, true) then
    offered = true
    M.pull_offer = 'no local model is running. :TandemPullModel pulls ' .. M.RECOMMENDED_MODEL
      .. ' (1.6 GB) to run one inside Tandem, with no server to install.'
    notify(M.pull_offer, vim.log.levels.WARN)
  end
end

-- -- completion ------------------------------------------------------------------------------------

--- Whether the buffer gets ghost text (Neovim 0.12+: vim.lsp.inline_completion) rather than menu items.
local function has_inline(client, bufnr)
  local inline = vim.lsp.inline_completion
  return inline ~= nil and inline.enable ~= nil and inline.is_enabled ~= nil
    and client:supports_method('textDocument/inlineCompletion', bufnr)
end

--- The Insert-mode key that accepts the ghost text (vim.g.tandem_accept_key, default <Tab>); without a
--- suggestion it is the key itself.
local function map_accept_key(bufnr)
  local key = vim.g.tandem_accept_key
  if key == nil then
    key = '<Tab>'
  end
  if key then
    vim.keymap.set('i', key, function()
      if not vim.lsp.inline_completion.get({ bufnr = bufnr }) then
        return key
      end
    end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = 'Tandem: accept the suggestion' })
  end
end

--- Ghost text where Neovim has inline completion (0.12+), completion-menu items otherwise.
function M.on_attach(client, bufnr)
  if vim.g.tandem_completion == false then
    return
  end
  if has_inline(client, bufnr) then
    local inline = vim.lsp.inline_completion
    -- Turned on once, for every buffer (no filter), as Neovim's docs do: then is_enabled() answers
    -- true and Neovim's own toggle, `enable(not is_enabled())`, turns it off at the first press.
    -- Later buffers follow that setting by themselves; a toggle stays as the user left it.
    if not M._inline_started then
      M._inline_started = true
      inline.enable(true)
    end
    map_accept_key(bufnr)
  elseif vim.lsp.completion and vim.lsp.completion.enable then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = vim.g.tandem_autotrigger ~= false })
    M._menu = M._menu or {}
    M._menu[bufnr] = true
  end
end

--- :TandemToggleCompletion: ghost text (0.12+, for every buffer) or the completion-menu items of the
--- current buffer (0.11) off, or back on. Returns whether it is now on.
---@return boolean?
function M.toggle_completion()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    notify('no tandem-lsp client is running', vim.log.levels.WARN)
    return nil
  end
  local on
  if has_inline(client, bufnr) then
    local inline = vim.lsp.inline_completion
    on = not inline.is_enabled()
    inline.enable(on)
    if on and not M._inline_started then -- (vim.g.tandem_completion = false left it off, unmapped)
      map_accept_key(bufnr)
    end
    M._inline_started = true
  else
    on = not (M._menu and M._menu[bufnr])
    vim.lsp.completion.enable(on, client.id, bufnr, { autotrigger = vim.g.tandem_autotrigger ~= false })
    M._menu = M._menu or {}
    M._menu[bufnr] = on or nil
  end
  notify('completion ' .. (on and 'on' or 'off'))
  return on
end

function M.setup()
  if M._did_setup then
    return
  end
  M._did_setup = true
  M.register_client_commands()
  require('tandem.next_edit').setup()
  vim.lsp.config(M.name, { handlers = { ['tandem/status'] = M.on_status } })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = vim.api.nvim_create_augroup('tandem', { clear = true }),
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == M.name then
        M.on_attach(client, ev.buf)
        require('tandem.next_edit').attach(client, ev.buf)
      end
    end,
  })
end

return M

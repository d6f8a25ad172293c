-- Tandem user commands and completion set-up (Neovim 0.11+). The server config is lsp/tandem.lua:
-- vim.lsp.enable('tandem') starts it. :TandemToggleCompletion turns completion off and back on.
-- Options (set before this file loads, e.g. in init.lua):
--   vim.g.tandem_completion = false   -- do not turn on inline completion / completion items
--   vim.g.tandem_autotrigger = false  -- 0.11: completion menu only on <C-x><C-o>
--   vim.g.tandem_accept_key = '<Tab>' -- 0.12+: key that accepts ghost text (false: no mapping)
--   vim.g.tandem_split = 'botright split'  -- how the Markdown result split opens ('vsplit', ...)
--   vim.g.tandem_focus_result = true  -- move the cursor into the result split
--   vim.g.tandem_results_split = false -- let the server's result file open instead of the split
--   vim.g.tandem_next_edit = false    -- no next-edit suggestions (also: the nextEdit.enabled setting)
--   vim.g.tandem_next_edit_key = '<Tab>'          -- Normal mode: jump to the next edit, then accept it
--   vim.g.tandem_next_edit_dismiss_key = '<Esc>'  -- Normal mode: hide it (false: no mapping)
if vim.g.loaded_tandem then
  return
end
vim.g.loaded_tandem = true

if vim.fn.has('nvim-0.11') == 0 then
  vim.notify('Tandem needs Neovim 0.11 or later', vim.log.levels.WARN)
  return
end

local tandem = require('tandem')
tandem.setup()

local cmd = vim.api.nvim_create_user_command

cmd('TandemExplainFailure', function(opts)
  tandem.explain_failure(opts)
end, {
  nargs = '*',
  range = true,
  desc = 'Tandem: explain a failure ([text] or @register; else the diagnostics of the range/line)',
})

cmd('TandemPlanRefactor', function(opts)
  tandem.plan_refactor(opts)
end, { nargs = '*', range = true, desc = 'Tandem: a refactoring plan for the range or file [goal]' })

cmd('TandemAsk', function(opts)
  tandem.ask(opts)
end, { nargs = '+', range = true, desc = 'Tandem: ask anything {prompt}' })

cmd('TandemStats', function()
  tandem.stats()
end, { nargs = 0, desc = 'Tandem: calls, spend and savings since start' })

cmd('TandemToggleCompletion', function()
  tandem.toggle_completion()
end, { nargs = 0, desc = 'Tandem: turn completion (0.12+: ghost text) off, or back on' })

cmd('TandemPullModel', function(opts)
  tandem.pull_model(opts)
end, { nargs = '?', desc = 'Tandem: download a model to run inside Tandem [name] (tandem-lsp models pull)' })

cmd('TandemNextEdit', function()
  if not require('tandem.next_edit').jump_or_accept() then
    vim.notify('Tandem: no next edit is shown', vim.log.levels.INFO)
  end
end, { nargs = 0, desc = 'Tandem: jump to the next-edit suggestion; when there, accept it' })

cmd('TandemNextEditDismiss', function()
  require('tandem.next_edit').dismiss()
end, { nargs = 0, desc = 'Tandem: hide the next-edit suggestion' })

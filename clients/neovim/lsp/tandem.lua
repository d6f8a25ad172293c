---@brief
---
--- Tandem (clients/neovim in the Tandem repository): a language server with two brains. A small
--- local model (LM Studio or another OpenAI-compatible server, Ollama, llama.cpp's llama-server,
--- or a GGUF model run inside Tandem: the `embedded` backend) writes completions; hard requests
--- (explain a failure, plan a refactor) escalate to a cloud model within a daily budget, and fall
--- back to the local model.
---
--- Install the server (Python 3.11+) so that `tandem-lsp` is on your PATH. The `[embedded]` extra
--- runs a model inside Tandem (`:TandemPullModel` needs it); it compiles llama.cpp, so it needs a
--- C/C++ compiler and CMake:
--- ```sh
--- pip install -e '/path/to/tandem[embedded]'      # or: pipx install '/path/to/tandem[embedded]'
--- tandem-lsp doctor                               # finds your local model server
--- ```
---
--- Neovim 0.11+. With this folder on 'runtimepath':
--- ```lua
--- vim.lsp.config('tandem', {
---   -- any key of the `tandem` settings tree; local.backend is one of 'auto' (the first local server
---   -- that answers, else the embedded model), 'openai', 'ollama', 'llamacpp' or 'embedded'
---   init_options = { ['local'] = { backend = 'auto' } },
--- })
--- vim.lsp.enable('tandem')
--- ```
---
--- Settings: `init_options` is the whole `tandem` tree (see the top-level README); the server
--- also pulls section `tandem` of `settings` after `workspace/didChangeConfiguration`. Every key is
--- optional. `local` is a Lua keyword: write `['local']`.
---
--- The commands (`:TandemExplainFailure`, `:TandemPlanRefactor`, `:TandemAsk`, `:TandemStats`,
--- `:TandemPullModel`, `:TandemToggleCompletion`, `:TandemNextEdit`), inline completion and
--- next-edit suggestions come from `plugin/tandem.lua` in the same folder.

--- The contract's defaults, spelled out so that they are easy to find and override.
local defaults = {
  ['local'] = {
    backend = 'auto', -- 'auto' | 'openai' | 'ollama' | 'llamacpp' | 'embedded'
    fimTemplate = 'auto',
    timeoutMs = 2500,
    maxTokens = 128,
  },
  cloud = {
    enabled = true,
    provider = 'anthropic',
    apiKeyEnv = 'ANTHROPIC_API_KEY', -- the name of the variable; the key itself is never a setting
    dailyBudgetUsd = 2.0,
    timeoutMs = 120000,
  },
  completion = {
    debounceMs = 'auto',
    multiline = 'auto',
    maxPrefixChars = 8000,
    maxSuffixChars = 2000,
  },
  privacy = {
    redactSecrets = true,
    -- neverSendToCloud: the server's default list of globs (.env, *.pem, *.key, id_rsa*, secrets/**).
    -- Not repeated here: vim.lsp.config merges lists index by index, which would mix two lists.
  },
}

---@type vim.lsp.Config
return {
  cmd = { 'tandem-lsp' },
  filetypes = {
    'python',
    'lua',
    'javascript',
    'javascriptreact',
    'typescript',
    'typescriptreact',
    'go',
    'rust',
    'c',
    'cpp',
    'java',
    'sh',
  },
  root_markers = { 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml', '.git' },
  init_options = defaults,
  -- One tree for both channels: `init_options` merged with `settings.tandem` (the latter wins) is
  -- sent at start and is what the server reads back with workspace/configuration (section `tandem`).
  before_init = function(params, config)
    params.initializationOptions = vim.tbl_deep_extend(
      'force',
      config.init_options or {},
      vim.tbl_get(config, 'settings', 'tandem') or {}
    )
  end,
  on_init = function(client)
    client.settings = client.settings or {}
    client.settings.tandem = vim.tbl_deep_extend(
      'force',
      client.config.init_options or {},
      client.settings.tandem or {}
    )
  end,
  handlers = {
    -- The server opens each command's result as a Markdown file where the client can show
    -- documents. When plugin/tandem.lua is loaded it shows results in its own Markdown split, so
    -- that file would be a second copy: acknowledge it without opening it.
    ['window/showDocument'] = function(err, params, ctx, config)
      if
        vim.g.tandem_results_split ~= false
        and package.loaded['tandem']
        and params
        and not params.external
        and type(params.uri) == 'string'
        and params.uri:match('%.md$')
      then
        return { success = true }
      end
      return vim.lsp.handlers['window/showDocument'](err, params, ctx, config)
    end,
  },
}

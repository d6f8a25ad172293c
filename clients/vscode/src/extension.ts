// Tandem for VS Code: starts `tandem-lsp` over stdio with vscode-languageclient (which also handles
// inline completion), maps the `tandem.*` settings, and adds the commands, the status bar and the logs.
import * as cp from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  TransportKind,
  WorkDoneProgress,
} from 'vscode-languageclient/node';
import pkg from '../package.json';
import { DiscoveryProbes, findServer, INSTALL_HINT, ServerCommand, ServerNotFoundError, venvRoots } from './discovery';
import { CommandResult, resultMarkdown, statsMarkdown } from './markdown';
import { offersPull, pullCommand, RECOMMENDED_MODEL, RECOMMENDED_SIZE, shellCommandLine } from './models';
import {
  DID_SHOW_METHOD,
  INLINE_ACCEPTED_COMMAND,
  NextEdit,
  NextEditController,
  NextEditHost,
  NextEditResult,
  REQUEST_METHOD,
} from './nextEdit';
import { buildSettingsTree, serverSettingKeys } from './settings';

const SECTION = 'tandem';
const STATS_POLL_MS = 60_000;
const SERVER_KEYS = serverSettingKeys(pkg as never);

interface ModelStatus {
  state?: 'starting' | 'ready' | 'slow' | 'down';
  backend?: string | null;
  endpoint?: string | null;
  model?: string | null;
  template?: string | null;
  detail?: string | null;
  // what the server learned of the model server: its context and measured speed
  server?: { nCtx?: number | null; readTokensPerS?: number | null; writeTokensPerS?: number | null } | null;
}

let client: LanguageClient | undefined;
let log: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let status: ModelStatus = { state: 'starting' };
let inFlight = 0;
let costUsd: number | undefined;
let clientCommandsPending = 0;
let resultsDir: string;
let statsTimer: NodeJS.Timeout | undefined;
let serverCommand: ServerCommand | undefined;
let pullOffered = false; // the "no local model" offer is made once per session
let extensionPath: string | undefined;
let nextEdit: NextEditController | undefined;

// The Tandem checkout this bundle was built in, recorded by scripts/build.js ('' elsewhere; undefined in
// the unit tests' bundles, which are built without it).
declare const TANDEM_BUILD_CHECKOUT: string | undefined;
const BUILT_IN_CHECKOUT = typeof TANDEM_BUILD_CHECKOUT === 'string' ? TANDEM_BUILD_CHECKOUT : '';

export function settingsTree() {
  return buildSettingsTree(vscode.workspace.getConfiguration(SECTION), SERVER_KEYS);
}

export const realProbes = (): DiscoveryProbes => ({
  isExecutable(file: string) {
    try {
      const st = fs.statSync(file);
      if (!st.isFile()) return false;
      fs.accessSync(file, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
  pythonHasTandem(python: string) {
    try {
      const r = cp.spawnSync(python, ['-c', 'import tandem_lsp'], { timeout: 15_000, stdio: 'ignore' });
      return r.status === 0;
    } catch {
      return false;
    }
  },
  env: process.env,
  platform: process.platform,
  homedir: os.homedir(),
});

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  log = vscode.window.createOutputChannel('Tandem', { log: true });
  extensionPath = context.extensionPath;
  resultsDir = path.join(context.globalStorageUri?.fsPath ?? path.join(os.tmpdir(), 'tandem-vscode'), 'results');
  statusItem = vscode.window.createStatusBarItem('tandem.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'Tandem';
  statusItem.command = 'tandem.vscode.showStats';
  renderStatus();
  statusItem.show();

  context.subscriptions.push(
    log,
    statusItem,
    vscode.commands.registerCommand('tandem.vscode.explainFailure', explainFailure),
    vscode.commands.registerCommand('tandem.vscode.planRefactor', planRefactor),
    vscode.commands.registerCommand('tandem.vscode.ask', ask),
    vscode.commands.registerCommand('tandem.vscode.showStats', showStats),
    vscode.commands.registerCommand('tandem.vscode.restartServer', restartServer),
    vscode.commands.registerCommand('tandem.vscode.showLogs', () => log.show(true)),
    vscode.commands.registerCommand('tandem.vscode.pullModel', pullModel),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('tandem.serverPath') || e.affectsConfiguration('tandem.pythonPath')) {
        log.info('tandem.serverPath / tandem.pythonPath changed: restarting the server');
        void restartServer();
      }
    }),
    // A server not found yet may be in the `.venv` of a folder added later, or of one trusted later.
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      if (!client) void restartServer();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      if (!client) void restartServer();
    }),
    { dispose: () => statsTimer && clearInterval(statsTimer) },
  );
  nextEdit = new NextEditController(nextEditHost(context));
  const nes = nextEdit;
  context.subscriptions.push(
    nes,
    vscode.workspace.onDidChangeTextDocument((e) => nes.onDidChangeTextDocument(e)),
    vscode.window.onDidChangeTextEditorSelection((e) => nes.onDidChangeTextEditorSelection(e)),
    vscode.window.onDidChangeActiveTextEditor((e) => nes.onDidChangeActiveTextEditor(e)),
    vscode.commands.registerCommand('tandem.vscode.nextEdit.tab', () => nes.tab()),
    vscode.commands.registerCommand('tandem.vscode.nextEdit.dismiss', () => nes.dismiss()),
    vscode.commands.registerCommand(INLINE_ACCEPTED_COMMAND, (edit: NextEdit) => nes.acceptedInline(edit)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('tandem.nextEdit.enabled') && !nextEditSettingOn()) nes.dismiss();
    }),
  );
  nes.onDidChangeActiveTextEditor(vscode.window.activeTextEditor);
  statsTimer = setInterval(() => void refreshCost(), STATS_POLL_MS);
  await startServer();
}

export async function deactivate(): Promise<void> {
  if (statsTimer) clearInterval(statsTimer);
  await stopServer();
}

/** `tandem-lsp models pull <recommended>` in a terminal, run by the server command that was found. The
 * server looks for the pulled model by itself the next time a completion finds no model server. */
async function pullModel(): Promise<void> {
  if (!serverCommand) {
    void vscode.window.showErrorMessage('Tandem: the server was not found, so there is nothing to pull the model with.');
    return;
  }
  const { command, args } = pullCommand(serverCommand, RECOMMENDED_MODEL);
  log.info(`pulling a model: ${[command, ...args].join(' ')}`);
  // In the user's shell, so that the output (progress, or why it failed) stays on screen afterwards.
  const terminal = vscode.window.createTerminal({ name: 'Tandem: pull model' });
  terminal.show();
  terminal.sendText(shellCommandLine(command, args, process.platform));
}

// --- the server ------------------------------------------------------------------------------

// --- next edits (src/nextEdit.ts) -----------------------------------------------------------

function nextEditSettingOn(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get('nextEdit.enabled') !== false;
}

/** The server said `capabilities.experimental.copilotInlineEdit: true` in its initialize result. */
export function offersNextEdits(initializeResult: unknown): boolean {
  const caps = (initializeResult as { capabilities?: { experimental?: { copilotInlineEdit?: unknown } } } | undefined)
    ?.capabilities;
  return caps?.experimental?.copilotInlineEdit === true;
}

function nextEditHost(context: vscode.ExtensionContext): NextEditHost {
  const running = () => (client && client.state === State.Running ? client : undefined);
  return {
    enabled: () => {
      const c = running();
      return !!c && offersNextEdits(c.initializeResult) && nextEditSettingOn();
    },
    request: async (params, token) => {
      const c = running();
      return c ? ((await c.sendRequest(REQUEST_METHOD, params, token)) as NextEditResult | null) : null;
    },
    notifyShown: (edit) => void running()?.sendNotification(DID_SHOW_METHOD, { item: edit }),
    executeCommand: async (command) => {
      const c = running();
      if (!c) return undefined;
      // straight to the server (not through a VS Code command), so it runs there once
      log.info(`next edit accepted: ${command.command} ${JSON.stringify(command.arguments ?? [])} sent`);
      return c.sendRequest(ExecuteCommandRequest.type, { command: command.command, arguments: command.arguments ?? [] });
    },
    activeEditor: () => vscode.window.activeTextEditor,
    setContext: (key, value) => void vscode.commands.executeCommand('setContext', key, value),
    triggerInline: () => void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'),
    fallbackTab: () => void vscode.commands.executeCommand('tab'),
    log: (message) => log.info(message),
    gutterIcon: vscode.Uri.file(path.join(context.extensionPath, 'media', 'next-edit.svg')),
  };
}

async function startServer(): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  let server: ServerCommand;
  try {
    const roots = venvRoots({
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      trusted: vscode.workspace.isTrusted,
      extensionPath,
      builtInCheckout: BUILT_IN_CHECKOUT,
    });
    server = findServer(
      { serverPath: config.get('serverPath'), pythonPath: config.get('pythonPath'), venvRoots: roots },
      realProbes(),
    );
  } catch (err) {
    const message = err instanceof ServerNotFoundError ? err.message : String(err);
    log.error(message);
    status = { state: 'down', detail: 'tandem-lsp not found' };
    renderStatus();
    void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Logs').then((pick) => {
      if (pick === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'tandem.serverPath');
      if (pick === 'Show Logs') log.show(true);
    });
    return;
  }
  serverCommand = server;
  log.info(`starting ${[server.command, ...server.args].join(' ')} (found via ${server.source})`);
  const serverOptions: ServerOptions = {
    command: server.command,
    args: server.args,
    transport: TransportKind.stdio,
    options: { env: process.env },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel: log,
    initializationOptions: settingsTree(),
    synchronize: { configurationSection: SECTION },
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        // a next edit on the cursor line that VS Code can show as ghost text takes the place of a completion
        const edit = nextEdit?.inlineItem(document, position);
        if (edit) return [edit];
        inFlight++;
        renderStatus();
        try {
          return await next(document, position, fixInlineContext(context), token);
        } finally {
          inFlight--;
          renderStatus();
        }
      },
      workspace: {
        // Answer `workspace/configuration` for `tandem` with the server's keys only (not serverPath etc.).
        configuration: (params, token, next) => {
          if (params.items.every((item) => item.section !== SECTION)) return next(params, token);
          const rest = next({ items: params.items.map((i) => (i.section === SECTION ? { section: '__none__' } : i)) }, token);
          const merge = (values: unknown[]) => values.map((v, i) => (params.items[i].section === SECTION ? settingsTree() : v));
          return Array.isArray(rest) ? merge(rest) : Promise.resolve(rest).then((r) => (Array.isArray(r) ? merge(r) : r));
        },
        didChangeConfiguration: async (sections, next) => {
          if (!client || !sections?.includes(SECTION)) return next(sections);
          await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settingsTree() } });
          void refreshCost();
        },
      },
      window: {
        // The server opens each command result as a .md file. Ours are already shown as a preview;
        // others (from code actions) are shown as a preview beside the editor instead of a text tab.
        showDocument: async (params, next) => {
          if (params.uri.toLowerCase().endsWith('.md') && !params.external) {
            if (clientCommandsPending === 0) {
              await vscode.commands.executeCommand('markdown.showPreviewToSide', vscode.Uri.parse(params.uri));
              void refreshCost();
            }
            return { success: true };
          }
          const shown = await next(params, new vscode.CancellationTokenSource().token);
          return 'success' in (shown as object) ? (shown as { success: boolean }) : { success: false };
        },
      },
    },
  };
  const c = new LanguageClient('tandem', 'Tandem', serverOptions, clientOptions);
  // In vscode-languageclient 9, textDocument/inlineCompletion (LSP 3.18) is a proposed feature.
  c.registerProposedFeatures();
  client = c;
  c.onDidChangeState((e) => {
    if (e.newState === State.Stopped && client === c) {
      status = { ...status, state: 'down', detail: 'the server stopped' };
      renderStatus();
    }
  });
  // Registered before start(), so the first status (sent right after `initialized`) is not missed.
  c.onNotification('tandem/status', (params: ModelStatus) => {
    status = params ?? {};
    log.info(`model status: ${JSON.stringify(params)}`);
    renderStatus();
    if (offersPull(status) && !pullOffered) {
      pullOffered = true;
      const pick = `Pull a model (${RECOMMENDED_SIZE})`;
      void vscode.window
        .showInformationMessage('Tandem: no local model is running. Run one inside Tandem, with no server to install?', pick, 'Not Now')
        .then((choice) => choice === pick && void pullModel());
    }
  });
  status = { state: 'starting' };
  renderStatus();
  try {
    await c.start();
  } catch (err) {
    const message = `Tandem: the server (${[server.command, ...server.args].join(' ')}) failed to start: ${err}. ` +
      INSTALL_HINT;
    log.error(message);
    status = { state: 'down', detail: 'the server failed to start' };
    renderStatus();
    void vscode.window.showErrorMessage(message, 'Show Logs').then((pick) => pick && log.show(true));
    return;
  }
  void refreshCost();
}

/**
 * vscode-languageclient 9.0.1 sends VS Code's inline-completion context as is: VS Code's trigger kinds
 * (Invoke 0, Automatic 1) where LSP has Invoked 1, Automatic 2, and `selectedCompletionInfo.range` as a
 * vscode.Range, which serializes as an array (the server cannot parse it and never answers). Hand
 * the converter a context that already has the LSP shapes.
 */
export function fixInlineContext(context: vscode.InlineCompletionContext): vscode.InlineCompletionContext {
  const info = context.selectedCompletionInfo;
  const range = info?.range;
  return {
    triggerKind: (context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 1 : 2) as vscode.InlineCompletionTriggerKind,
    selectedCompletionInfo: info && range
      ? ({
          text: info.text,
          range: {
            start: { line: range.start.line, character: range.start.character },
            end: { line: range.end.line, character: range.end.character },
          },
        } as unknown as vscode.SelectedCompletionInfo)
      : undefined,
  };
}

async function stopServer(): Promise<void> {
  const c = client;
  client = undefined;
  nextEdit?.dismiss();
  if (!c) return;
  try {
    if (c.state === State.Running) await c.stop(5000);
    await c.dispose();
  } catch (err) {
    log.warn(`stopping the server: ${err}`);
  }
}

async function restartServer(): Promise<void> {
  log.info('restarting the server');
  await stopServer();
  await startServer();
}

function runningClient(): LanguageClient | undefined {
  if (client && client.state === State.Running) return client;
  void vscode.window.showErrorMessage('Tandem: the server is not running.', 'Restart Server', 'Show Logs').then((pick) => {
    if (pick === 'Restart Server') void restartServer();
    if (pick === 'Show Logs') log.show(true);
  });
  return undefined;
}

// --- the status bar --------------------------------------------------------------------------

const STATE_ICONS: Record<string, string> = {
  starting: '$(loading~spin)',
  ready: '$(check)',
  slow: '$(watch)',
  down: '$(error)',
};

function renderStatus(): void {
  if (!statusItem) return;
  const state = status.state ?? 'starting';
  const icon = inFlight > 0 ? '$(sync~spin)' : STATE_ICONS[state] ?? '$(question)';
  const model = status.model || (state === 'down' ? 'no local model' : 'Tandem');
  const cost = costUsd === undefined ? '' : ` · $${costUsd.toFixed(2)}`;
  statusItem.text = `${icon} ${model}${cost}`;
  const tip = new vscode.MarkdownString(undefined, true);
  tip.appendMarkdown(`**Tandem** — local model: ${state}${inFlight > 0 ? ' (completing…)' : ''}\n\n`);
  for (const key of ['backend', 'endpoint', 'model', 'template', 'detail'] as const) {
    if (status[key]) tip.appendMarkdown(`- ${key}: \`${String(status[key]).replace(/`/g, "'")}\`\n`);
  }
  const speed = [
    status.server?.readTokensPerS ? `reads ${Math.round(status.server.readTokensPerS)} tokens/s` : '',
    status.server?.writeTokensPerS ? `writes ${Math.round(status.server.writeTokensPerS)} tokens/s` : '',
    status.server?.nCtx ? `context ${status.server.nCtx}` : '',
  ].filter(Boolean);
  if (speed.length) tip.appendMarkdown(`- server: ${speed.join(', ')}\n`);
  if (costUsd !== undefined) tip.appendMarkdown(`\nCloud spend today: $${costUsd.toFixed(4)}\n`);
  tip.appendMarkdown('\nClick for stats.');
  statusItem.tooltip = tip;
  statusItem.backgroundColor =
    state === 'down' ? new vscode.ThemeColor('statusBarItem.errorBackground')
      : state === 'slow' ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
}

async function refreshCost(): Promise<void> {
  const c = client;
  if (!c || c.state !== State.Running) return;
  try {
    const stats = (await c.sendRequest(ExecuteCommandRequest.type, { command: 'tandem.stats', arguments: [] })) as
      | Record<string, unknown>
      | null;
    if (stats && typeof stats.costUsd === 'number') {
      costUsd = stats.costUsd;
      renderStatus();
    }
  } catch (err) {
    log.debug(`tandem.stats: ${err}`);
  }
}

// --- commands --------------------------------------------------------------------------------

/** Run a server command with a cancellable progress notification; cancelling sends $/cancelRequest. */
async function runServerCommand(title: string, command: string, argument: object): Promise<CommandResult | undefined> {
  const c = runningClient();
  if (!c) return undefined;
  clientCommandsPending++;
  try {
    return await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Tandem: ${title}`, cancellable: true },
      async (progress, token) => {
        const workDoneToken = crypto.randomUUID();
        const sub = c.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
          if (value.kind !== 'end' && value.message) progress.report({ message: value.message });
        });
        try {
          const result = (await c.sendRequest(
            ExecuteCommandRequest.type,
            { command, arguments: [argument], workDoneToken },
            token,
          )) as CommandResult | null;
          return token.isCancellationRequested ? undefined : result ?? undefined;
        } catch (err) {
          if (token.isCancellationRequested) {
            log.info(`${command} cancelled`);
            return undefined;
          }
          log.error(`${command} failed: ${err}`);
          void vscode.window.showErrorMessage(`Tandem: ${title} failed: ${err instanceof Error ? err.message : err}`);
          return undefined;
        } finally {
          sub.dispose();
        }
      },
    );
  } finally {
    clientCommandsPending--;
    void refreshCost();
  }
}

/** Write Markdown to a file under the extension's storage and show its preview beside the editor. */
export async function showMarkdown(name: string, markdown: string): Promise<vscode.Uri> {
  await fs.promises.mkdir(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(resultsDir, `${stamp}-${name}.md`);
  await fs.promises.writeFile(file, markdown, 'utf8');
  const uri = vscode.Uri.file(file);
  await vscode.commands.executeCommand('markdown.showPreviewToSide', uri);
  return uri;
}

function rangeJson(range: vscode.Range) {
  return {
    start: { line: range.start.line, character: range.start.character },
    end: { line: range.end.line, character: range.end.character },
  };
}

const SEVERITY = ['error', 'warning', 'info', 'hint'];

export function formatDiagnostics(document: vscode.TextDocument, diagnostics: readonly vscode.Diagnostic[]): string {
  const file = document.uri.scheme === 'file' ? vscode.workspace.asRelativePath(document.uri) : document.uri.toString();
  return diagnostics
    .map((d) => {
      const where = `${file}:${d.range.start.line + 1}:${d.range.start.character + 1}`;
      const code = typeof d.code === 'object' && d.code ? d.code.value : d.code;
      const source = d.source ? ` [${d.source}${code !== undefined ? ` ${code}` : ''}]` : '';
      return `${where}: ${SEVERITY[d.severity] ?? 'error'}: ${d.message}${source}`;
    })
    .join('\n');
}

async function explainFailure(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showWarningMessage('Tandem: open a file (and select the failure, or put the cursor on an error) first.');
    return;
  }
  const doc = editor.document;
  const argument: { uri: string; failure?: string; range?: object } = { uri: doc.uri.toString() };
  if (!editor.selection.isEmpty) {
    argument.failure = doc.getText(editor.selection);
    argument.range = rangeJson(editor.selection);
  } else {
    const cursor = editor.selection.active;
    const all = vscode.languages.getDiagnostics(doc.uri);
    const atCursor = all.filter((d) => d.range.contains(cursor) || d.range.start.line === cursor.line);
    const clipboard = (await vscode.env.clipboard.readText()).trim();
    type Pick = vscode.QuickPickItem & { use: 'clipboard' | 'cursor' | 'document' };
    const picks: Pick[] = [];
    if (clipboard) {
      picks.push({ label: '$(clippy) Use the clipboard text as the failure', detail: clipboard.split('\n').slice(0, 2).join(' ⏎ ').slice(0, 120), use: 'clipboard' });
    }
    if (atCursor.length) {
      picks.push({ label: `$(error) Use the diagnostics at the cursor (${atCursor.length})`, detail: atCursor[0].message.slice(0, 120), use: 'cursor' });
    } else if (all.length) {
      picks.push({ label: `$(error) Use the diagnostics of this file (${all.length})`, detail: all[0].message.slice(0, 120), use: 'document' });
    }
    picks.push({ label: '$(file-code) Let the server use the diagnostics it knows for this line', use: 'cursor' });
    const pick = await vscode.window.showQuickPick(picks, {
      title: 'Tandem: Explain Failure',
      placeHolder: 'What is the failure? (Tip: select a traceback or failing test output first.)',
    });
    if (!pick) return;
    if (pick.use === 'clipboard') {
      argument.failure = clipboard;
    } else {
      const diags = pick.use === 'cursor' ? atCursor : all;
      if (diags.length) {
        argument.failure = formatDiagnostics(doc, diags);
        argument.range = rangeJson(diags.map((d) => d.range).reduce((a, b) => a.union(b)));
      } else {
        argument.range = rangeJson(doc.lineAt(cursor.line).range);
      }
    }
  }
  const result = await runServerCommand('Explaining the failure', 'tandem.explainFailure', argument);
  if (result) await showMarkdown('explain-failure', resultMarkdown('Explain failure', result));
}

async function planRefactor(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showWarningMessage('Tandem: open a file (and select the code to refactor) first.');
    return;
  }
  const goal = await vscode.window.showInputBox({
    title: 'Tandem: Plan Refactor',
    prompt: `Refactoring goal for ${editor.selection.isEmpty ? 'the file' : 'the selection'} (optional)`,
    placeHolder: 'e.g. split parse() into tokenizer and parser, keep behaviour',
  });
  if (goal === undefined) return;
  const argument: { uri: string; range?: object; goal?: string } = { uri: editor.document.uri.toString() };
  if (!editor.selection.isEmpty) argument.range = rangeJson(editor.selection);
  if (goal.trim()) argument.goal = goal.trim();
  const result = await runServerCommand('Planning the refactoring', 'tandem.planRefactor', argument);
  if (result) await showMarkdown('plan-refactor', resultMarkdown('Refactoring plan', result));
}

async function ask(): Promise<void> {
  const prompt = await vscode.window.showInputBox({ title: 'Tandem: Ask', prompt: 'Ask Tandem (about the selection, if any)' });
  if (!prompt?.trim()) return;
  const editor = vscode.window.activeTextEditor;
  const argument: { prompt: string; uri?: string; range?: object } = { prompt: prompt.trim() };
  if (editor) {
    argument.uri = editor.document.uri.toString();
    if (!editor.selection.isEmpty) argument.range = rangeJson(editor.selection);
  }
  const result = await runServerCommand('Thinking', 'tandem.ask', argument);
  if (result) await showMarkdown('ask', resultMarkdown(prompt.trim().slice(0, 80), result));
}

async function showStats(): Promise<void> {
  const c = runningClient();
  if (!c) return;
  try {
    const stats = (await c.sendRequest(ExecuteCommandRequest.type, { command: 'tandem.stats', arguments: [] })) as Record<string, unknown> | null;
    if (stats && typeof stats.costUsd === 'number') {
      costUsd = stats.costUsd;
      renderStatus();
    }
    await showMarkdown('stats', statsMarkdown(stats));
  } catch (err) {
    log.error(`tandem.stats failed: ${err}`);
    void vscode.window.showErrorMessage(`Tandem: stats failed: ${err instanceof Error ? err.message : err}`);
  }
}

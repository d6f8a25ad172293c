// How the extension finds the server. In order:
//   1. `tandem.serverPath`, when set;
//   2. `tandem-lsp` in the `.venv` of a workspace folder, then of the Tandem checkout the extension
//      was built in (the README installs the server there: `python3 -m venv .venv`, `pip install -e .`);
//   3. `tandem-lsp` on PATH;
//   4. `<.venv python> -m tandem_lsp` in those same folders (an explicit `tandem.pythonPath` goes first);
//   5. `<tandem.pythonPath> -m tandem_lsp` (`python3` by default).
// Pure apart from the injected probes, so it is unit-tested.
import * as path from 'path';

export interface ServerCommand {
  command: string;
  args: string[];
  /** How it was found, for the log. */
  source: 'serverPath' | 'venv' | 'path' | 'python';
}

export interface DiscoveryProbes {
  /** Is this an executable file? */
  isExecutable(file: string): boolean;
  /** Does `<python> -c "import tandem_lsp"` succeed? */
  pythonHasTandem(python: string): boolean;
  env: Record<string, string | undefined>;
  platform: string;
  homedir: string;
}

export interface DiscoveryOptions {
  serverPath?: string | null;
  pythonPath?: string | null;
  /** Folders whose `.venv` may hold the server, most specific first: the (trusted) workspace folders,
   * then the Tandem checkout the extension was built in. */
  venvRoots?: readonly string[];
}

/** `tandem.pythonPath`'s default. */
export const DEFAULT_PYTHON = 'python3';

export const INSTALL_HINT =
  'Install the server from a Tandem checkout (it is not on PyPI): `python3 -m venv .venv && ' +
  '.venv/bin/pip install -e .` (see its README), then open that checkout as a workspace folder, or set ' +
  '`tandem.serverPath` to its `.venv/bin/tandem-lsp` (or `tandem.pythonPath` to its `.venv/bin/python`).';

export class ServerNotFoundError extends Error {
  constructor(public readonly tried: string[]) {
    super(`Tandem: could not start the tandem-lsp server (tried: ${tried.join('; ')}). ${INSTALL_HINT}`);
    this.name = 'ServerNotFoundError';
  }
}

export function expandHome(file: string, homedir: string): string {
  return file === '~' || file.startsWith('~/') ? path.join(homedir, file.slice(1)) : file;
}

/** The first executable `name` on PATH (with PATHEXT on Windows), or undefined. */
export function which(name: string, probes: DiscoveryProbes): string | undefined {
  const sep = probes.platform === 'win32' ? ';' : ':';
  const exts = probes.platform === 'win32' ? (probes.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (probes.env.PATH ?? '').split(sep)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (probes.isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

/** Where a virtual environment in `root/.venv` keeps `name` (`bin/`, or `Scripts\` with `.exe` on Windows). */
export function venvFile(root: string, name: 'tandem-lsp' | 'python', platform: string): string {
  return platform === 'win32'
    ? path.win32.join(root, '.venv', 'Scripts', `${name}.exe`)
    : path.posix.join(root, '.venv', 'bin', name);
}

function uniqueRoots(roots: readonly string[] | undefined, homedir: string): string[] {
  const out: string[] = [];
  for (const root of roots ?? []) {
    const r = expandHome(root.trim(), homedir);
    if (r && !out.includes(r)) out.push(r);
  }
  return out;
}

export function findServer(options: DiscoveryOptions, probes: DiscoveryProbes): ServerCommand {
  const tried: string[] = [];
  const serverPath = (options.serverPath ?? '').trim();
  if (serverPath) {
    const file = expandHome(serverPath, probes.homedir);
    const resolved = file.includes('/') || file.includes('\\') ? file : which(file, probes);
    if (resolved && probes.isExecutable(resolved)) return { command: resolved, args: [], source: 'serverPath' };
    tried.push(`tandem.serverPath "${serverPath}" is not an executable file`);
  }
  const roots = uniqueRoots(options.venvRoots, probes.homedir);
  for (const root of roots) {
    const exe = venvFile(root, 'tandem-lsp', probes.platform);
    if (probes.isExecutable(exe)) return { command: exe, args: [], source: 'venv' };
  }
  if (roots.length) tried.push(`no ${roots.map((r) => venvFile(r, 'tandem-lsp', probes.platform)).join(', ')}`);
  const onPath = which('tandem-lsp', probes);
  if (onPath) return { command: onPath, args: [], source: 'path' };
  tried.push('no tandem-lsp on PATH');

  const given = expandHome((options.pythonPath ?? '').trim(), probes.homedir);
  const explicit = given !== '' && given !== DEFAULT_PYTHON;
  const pythons: Array<{ python: string; source: ServerCommand['source'] }> = [];
  if (explicit) pythons.push({ python: given, source: 'python' });
  for (const root of roots) {
    const python = venvFile(root, 'python', probes.platform);
    if (probes.isExecutable(python)) pythons.push({ python, source: 'venv' });
  }
  if (!explicit) pythons.push({ python: DEFAULT_PYTHON, source: 'python' });
  for (const { python, source } of pythons) {
    if (probes.pythonHasTandem(python)) return { command: python, args: ['-m', 'tandem_lsp'], source };
    tried.push(`"${python} -m tandem_lsp" failed (no python, or tandem_lsp is not installed in it)`);
  }
  throw new ServerNotFoundError(tried);
}

export interface RootSources {
  /** The workspace folders' paths. */
  workspaceFolders?: readonly string[];
  /** `vscode.workspace.isTrusted`: an untrusted workspace's `.venv` is never run. */
  trusted?: boolean;
  /** Where the extension runs from: inside a checkout (`<checkout>/clients/vscode`) when run from source. */
  extensionPath?: string;
  /** The checkout the bundle was built in (recorded by scripts/build.js), or ''. */
  builtInCheckout?: string;
}

/** The folders whose `.venv` `findServer` looks in: the workspace folders (when trusted), then the Tandem
 * checkout the extension runs from or was built in. */
export function venvRoots(sources: RootSources): string[] {
  const roots: string[] = [];
  const add = (root: string | undefined) => {
    if (root && !roots.includes(root)) roots.push(root);
  };
  if (sources.trusted !== false) (sources.workspaceFolders ?? []).forEach(add);
  const ext = sources.extensionPath;
  if (ext) {
    const p = /\\/.test(ext) && !ext.includes('/') ? path.win32 : path.posix;
    const dir = p.resolve(ext);
    if (p.basename(dir) === 'vscode' && p.basename(p.dirname(dir)) === 'clients') add(p.dirname(p.dirname(dir)));
  }
  add(sources.builtInCheckout);
  return roots;
}

// How the extension finds the server: `tandem.serverPath`, else `tandem-lsp` on PATH,
// else `<tandem.pythonPath> -m tandem_lsp`. Pure apart from the injected probes, so it is unit-tested.
import * as path from 'path';

export interface ServerCommand {
  command: string;
  args: string[];
  /** How it was found, for the log. */
  source: 'serverPath' | 'path' | 'python';
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
}

export const INSTALL_HINT =
  'Install the server with `pip install tandem-lsp` (or, from a Tandem checkout, `pip install -e .`), ' +
  'then set `tandem.serverPath` to the `tandem-lsp` executable or `tandem.pythonPath` to that Python.';

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

export function findServer(options: DiscoveryOptions, probes: DiscoveryProbes): ServerCommand {
  const tried: string[] = [];
  const serverPath = (options.serverPath ?? '').trim();
  if (serverPath) {
    const file = expandHome(serverPath, probes.homedir);
    const resolved = file.includes('/') || file.includes('\\') ? file : which(file, probes);
    if (resolved && probes.isExecutable(resolved)) return { command: resolved, args: [], source: 'serverPath' };
    tried.push(`tandem.serverPath "${serverPath}" is not an executable file`);
  }
  const onPath = which('tandem-lsp', probes);
  if (onPath) return { command: onPath, args: [], source: 'path' };
  tried.push('no tandem-lsp on PATH');
  const python = expandHome((options.pythonPath ?? '').trim() || 'python3', probes.homedir);
  if (probes.pythonHasTandem(python)) return { command: python, args: ['-m', 'tandem_lsp'], source: 'python' };
  tried.push(`"${python} -m tandem_lsp" failed (no python, or tandem_lsp is not installed in it)`);
  throw new ServerNotFoundError(tried);
}

// The "no local model" offer: when the server says no model answers and names `tandem-lsp models pull`,
// the extension offers to run that pull in a terminal, with the server command it found. Pure, so it
// is unit-tested; extension.ts does the VS Code side.
import type { ServerCommand } from './discovery';

/** The server's `tandem_lsp.models.RECOMMENDED` (tests/unit/test_vscode_settings.py checks they agree). */
export const RECOMMENDED_MODEL = 'qwen2.5-coder-1.5b-q8_0';
export const RECOMMENDED_SIZE = '1.6 GB';

export interface StatusLike {
  state?: string;
  detail?: string | null;
}

/** True when the status says no local model answers and a pull would fix it. */
export function offersPull(status: StatusLike): boolean {
  return status.state === 'down' && /tandem-lsp models pull/.test(status.detail ?? '');
}

/** The process that pulls `model` with the server the extension runs (no shell involved). */
export function pullCommand(server: ServerCommand, model: string = RECOMMENDED_MODEL): { command: string; args: string[] } {
  return { command: server.command, args: [...server.args, 'models', 'pull', model] };
}

/** One command line for the user's shell: POSIX shells, or PowerShell (VS Code's default on Windows). */
export function shellCommandLine(command: string, args: string[], platform: string): string {
  if (platform === 'win32') {
    const quote = (a: string) => (/^[\w.\\/:-]+$/.test(a) ? a : `'${a.replace(/'/g, "''")}'`);
    return ['&', `'${command.replace(/'/g, "''")}'`, ...args.map(quote)].join(' ');
  }
  const quote = (a: string) => (/^[\w.\/:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return [command, ...args].map(quote).join(' ');
}

// A stand-in for the `vscode` module (which only exists inside VS Code): `require('vscode')` returns
// `vscodeMock`. Import this file before anything that imports `vscode`.
import Module from 'module';

export const configValues: Record<string, unknown> = {};

class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  dispose() {
    this.fn();
  }
  static from() {
    return new Disposable();
  }
}

class EventEmitter<T> {
  private listeners: Array<(e: T) => void> = [];
  event = (listener: (e: T) => void) => {
    this.listeners.push(listener);
    return new Disposable();
  };
  fire(e: T) {
    this.listeners.forEach((l) => l(e));
  }
  dispose() {}
}

class Position {
  constructor(readonly line: number, readonly character: number) {}
  compareTo(o: Position) {
    return this.line - o.line || this.character - o.character;
  }
  isEqual(o: Position) {
    return this.compareTo(o) === 0;
  }
  isBefore(o: Position) {
    return this.compareTo(o) < 0;
  }
  isBeforeOrEqual(o: Position) {
    return this.compareTo(o) <= 0;
  }
  isAfter(o: Position) {
    return this.compareTo(o) > 0;
  }
  isAfterOrEqual(o: Position) {
    return this.compareTo(o) >= 0;
  }
  translate(dl = 0, dc = 0) {
    return new Position(this.line + dl, this.character + dc);
  }
}

class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    const [s, e] = typeof a === 'number' ? [new Position(a, b as number), new Position(c!, d!)] : [a, b as Position];
    [this.start, this.end] = s.isAfter(e) ? [e, s] : [s, e];
  }
  get isEmpty() {
    return this.start.isEqual(this.end);
  }
  get isSingleLine() {
    return this.start.line === this.end.line;
  }
  contains(p: Position | Range): boolean {
    if (p instanceof Range) return this.contains(p.start) && this.contains(p.end);
    return this.start.isBeforeOrEqual(p) && p.isBeforeOrEqual(this.end);
  }
}

class Selection extends Range {
  constructor(readonly anchor: Position, readonly active: Position) {
    super(anchor, active);
  }
}

class CancellationTokenSource {
  private listeners: Array<() => void> = [];
  token = {
    isCancellationRequested: false,
    onCancellationRequested: (l: () => void) => {
      this.listeners.push(l);
      return new Disposable();
    },
  };
  cancel() {
    if (this.token.isCancellationRequested) return;
    this.token.isCancellationRequested = true;
    this.listeners.forEach((l) => l());
  }
  dispose() {}
}

class ThemeColor {
  constructor(readonly id: string) {}
}

class MarkdownString {
  constructor(public value = '') {}
  appendMarkdown(s: string) {
    this.value += s;
    return this;
  }
  appendCodeblock(code: string, lang = '') {
    this.value += '\n```' + lang + '\n' + code + '\n```\n';
    return this;
  }
  appendText(s: string) {
    this.value += s;
    return this;
  }
}

/** Records replace() calls; `workspace.applyEdit` hands them to `mockHooks.applyEdit`. */
class WorkspaceEdit {
  readonly edits: Array<{ uri: unknown; range: Range; text: string }> = [];
  replace(uri: unknown, range: Range, text: string) {
    this.edits.push({ uri, range, text });
  }
}

class InlineCompletionItem {
  constructor(public insertText: string, public range?: Range, public command?: unknown) {}
}

let decorationTypes = 0;

/** What tests plug into the mocked API: the edit applier, and a record of the commands executed. */
export const mockHooks: {
  applyEdit: (edit: WorkspaceEdit) => Promise<boolean> | boolean;
  executed: Array<{ command: string; args: unknown[] }>;
} = { applyEdit: () => false, executed: [] };

const explicit: Record<string, unknown> = {
  Disposable,
  EventEmitter,
  Position,
  Range,
  Selection,
  CancellationTokenSource,
  ThemeColor,
  MarkdownString,
  WorkspaceEdit,
  InlineCompletionItem,
  DecorationRangeBehavior: { OpenOpen: 0, ClosedClosed: 1, OpenClosed: 2, ClosedOpen: 3 },
  OverviewRulerLane: { Left: 1, Center: 2, Right: 4, Full: 7 },
  TextEditorRevealType: { Default: 0, InCenter: 1, InCenterIfOutsideViewport: 2, AtTop: 3 },
  InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1, 0: 'Invoke', 1: 'Automatic' },
  workspace: {
    getConfiguration(section?: string) {
      const prefix = section ? section + '.' : '';
      return {
        get: (key: string, fallback?: unknown) => (prefix + key in configValues ? configValues[prefix + key] : fallback),
        has: (key: string) => prefix + key in configValues,
      };
    },
    onDidChangeConfiguration: () => new Disposable(),
    applyEdit: async (edit: WorkspaceEdit) => mockHooks.applyEdit(edit),
  },
  window: {
    createTextEditorDecorationType: (options: unknown) => ({ key: `decoration-${++decorationTypes}`, options, dispose() {} }),
  },
  commands: {
    executeCommand: async (command: string, ...args: unknown[]) => {
      mockHooks.executed.push({ command, args });
      return undefined;
    },
  },
  languages: {},
  env: {},
  Uri: { parse: (s: string) => ({ toString: () => s }), file: (f: string) => ({ fsPath: f }) },
};

// Anything else (classes vscode-languageclient extends at load time, enums) is a harmless dummy.
export const vscodeMock: Record<string, unknown> = new Proxy(explicit, {
  get(target, prop: string) {
    if (!(prop in target)) target[prop] = class {};
    return target[prop];
  },
});

type ModuleInternals = { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
const internals = Module as unknown as ModuleInternals;
const originalLoad = internals._load;
internals._load = function (request: string, parent: unknown, isMain: boolean) {
  return request === 'vscode' ? vscodeMock : originalLoad.call(this, request, parent, isMain);
};

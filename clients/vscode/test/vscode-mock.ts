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

const explicit: Record<string, unknown> = {
  Disposable,
  EventEmitter,
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
  },
  window: {},
  commands: {},
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

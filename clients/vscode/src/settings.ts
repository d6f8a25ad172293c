// The `tandem` settings tree: package.json's contributes.configuration is the single source of the keys.
// Flat VS Code settings (`tandem.local.backend`) become the nested tree the server reads
// (`{local: {backend: ...}}`), sent as initializationOptions and as the answer to
// `workspace/configuration` for section `tandem`.

/** Settings that belong to the extension itself and are never sent to the server. */
export const CLIENT_ONLY_KEYS: readonly string[] = ['serverPath', 'pythonPath', 'trace.server'];

export interface PackageJsonLike {
  contributes?: { configuration?: { properties?: Record<string, unknown> } | Array<{ properties?: Record<string, unknown> }> };
}

/** The server's setting keys (without the `tandem.` prefix), in package.json order. */
export function serverSettingKeys(pkg: PackageJsonLike): string[] {
  const conf = pkg.contributes?.configuration;
  const blocks = Array.isArray(conf) ? conf : conf ? [conf] : [];
  const keys: string[] = [];
  for (const block of blocks) {
    for (const full of Object.keys(block.properties ?? {})) {
      if (!full.startsWith('tandem.')) continue;
      const key = full.slice('tandem.'.length);
      if (!CLIENT_ONLY_KEYS.includes(key)) keys.push(key);
    }
  }
  return keys;
}

/** What `vscode.workspace.getConfiguration('tandem')` offers (a subset, so tests can fake it). */
export interface ConfigLike {
  get<T>(key: string): T | undefined;
}

export type SettingsTree = Record<string, Record<string, unknown>>;

/**
 * Flat `tandem.*` configuration -> the nested tree. Unset (undefined) and null keys are left out: null
 * means "not set" to the server too, and leaving it out keeps an older server from warning about a key
 * it does not know yet.
 */
export function buildSettingsTree(config: ConfigLike, keys: readonly string[]): SettingsTree {
  const tree: SettingsTree = {};
  for (const key of keys) {
    const value = config.get<unknown>(key);
    if (value === undefined || value === null) continue;
    const dot = key.indexOf('.');
    if (dot < 0) continue; // every server key is `<section>.<name>`
    const section = key.slice(0, dot);
    const name = key.slice(dot + 1);
    (tree[section] ??= {})[name] = toJson(value);
  }
  return tree;
}

/** A plain JSON copy (VS Code configuration values are proxies/frozen objects). */
function toJson(value: unknown): unknown {
  return value === null || typeof value !== 'object' ? value : JSON.parse(JSON.stringify(value));
}

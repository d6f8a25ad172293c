import './vscode-mock';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import pkg from '../package.json';
import { settingsTree } from '../src/extension';
import { buildSettingsTree, CLIENT_ONLY_KEYS, serverSettingKeys } from '../src/settings';
import { configValues } from './vscode-mock';

type Prop = { default?: unknown };
const properties = pkg.contributes.configuration.properties as Record<string, Prop>;

/** package.json's defaults nested by hand, without nulls (tests/unit/test_vscode_settings.py compares
 * package.json with the server's own defaults). */
function expectedDefaults(): Record<string, Record<string, unknown>> {
  const tree: Record<string, Record<string, unknown>> = {};
  for (const [full, prop] of Object.entries(properties)) {
    const key = full.slice('tandem.'.length);
    if (CLIENT_ONLY_KEYS.includes(key) || prop.default === null) continue;
    const [section, ...rest] = key.split('.');
    (tree[section] ??= {})[rest.join('.')] = prop.default;
  }
  return tree;
}

/** A configuration that answers like VS Code's: the user's value, else package.json's default. */
function fakeConfig(user: Record<string, unknown> = {}) {
  return {
    get<T>(key: string): T | undefined {
      if (key in user) return user[key] as T;
      const prop = properties['tandem.' + key];
      return prop ? (prop.default as T) : undefined;
    },
  };
}

describe('settings mapping', () => {
  it('lists every server key from package.json, and none of the client-only ones', () => {
    const keys = serverSettingKeys(pkg);
    assert.ok(keys.length >= 19, `${keys.length} keys`);
    assert.ok(keys.includes('local.backend'));
    assert.ok(keys.includes('privacy.neverSendToCloud'));
    for (const key of CLIENT_ONLY_KEYS) assert.ok(!keys.includes(key), key);
    for (const key of keys) assert.match(key, /^(local|cloud|completion|nextEdit|privacy)\.[a-zA-Z]+$/);
  });

  it('turns the defaults into the nested tree the server expects', () => {
    const tree = buildSettingsTree(fakeConfig(), serverSettingKeys(pkg));
    assert.deepEqual(tree, expectedDefaults());
    assert.equal(tree.local.backend, 'auto');
    assert.equal(tree.local.timeoutMs, 2500);
    assert.equal(tree.cloud.dailyBudgetUsd, 2);
    assert.equal(tree.completion.debounceMs, 'auto');
    assert.deepEqual(tree.privacy.neverSendToCloud, ['.env', '.env.*', '**/*.pem', '**/*.key', '**/id_rsa*', '**/secrets/**']);
    assert.ok(!('endpoint' in tree.local), 'null defaults are not sent');
  });

  it('maps user values into their sections and leaves null out', () => {
    const tree = buildSettingsTree(
      fakeConfig({ 'local.backend': 'ollama', 'local.endpoint': 'http://127.0.0.1:5002', 'completion.debounceMs': 120, 'cloud.baseUrl': null }),
      serverSettingKeys(pkg),
    );
    assert.equal(tree.local.backend, 'ollama');
    assert.equal(tree.local.endpoint, 'http://127.0.0.1:5002');
    assert.equal(tree.completion.debounceMs, 120);
    assert.ok(!('baseUrl' in tree.cloud));
    assert.equal(tree.cloud.enabled, true);
  });

  it('leaves out keys VS Code does not know, and never sends client-only settings', () => {
    const tree = buildSettingsTree({ get: (k: string) => (k === 'local.model' ? 'qwen' : undefined) as never }, [
      'local.model', 'local.backend', 'serverPath',
    ]);
    assert.deepEqual(tree, { local: { model: 'qwen' } });
  });

  it('copies arrays, so the tree is plain JSON', () => {
    const globs = Object.freeze(['.env']);
    const tree = buildSettingsTree({ get: () => globs as never }, ['privacy.neverSendToCloud']);
    assert.deepEqual(tree.privacy.neverSendToCloud, ['.env']);
    assert.notEqual(tree.privacy.neverSendToCloud, globs);
  });

  describe('through the mocked vscode module', () => {
    beforeEach(() => {
      for (const k of Object.keys(configValues)) delete configValues[k];
    });

    it('settingsTree() reads workspace.getConfiguration("tandem")', () => {
      Object.assign(configValues, {
        'tandem.local.backend': 'llamacpp',
        'tandem.local.maxTokens': 64,
        'tandem.privacy.redactSecrets': false,
        'tandem.serverPath': '/opt/tandem-lsp',
        'tandem.trace.server': 'verbose',
      });
      assert.deepEqual(settingsTree(), {
        local: { backend: 'llamacpp', maxTokens: 64 },
        privacy: { redactSecrets: false },
      });
    });

    it('settingsTree() is empty when nothing is configured', () => {
      assert.deepEqual(settingsTree(), {});
    });
  });
});

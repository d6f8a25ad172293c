import './vscode-mock';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { offersPull, pullCommand, RECOMMENDED_MODEL, shellCommandLine } from '../src/models';

describe('the pull offer', () => {
  it('is made when no model answers and the server names the pull command', () => {
    const detail = 'no local model server found (tried LM Studio :1234, Ollama :11434, llama.cpp :8080); start one, ' +
      'e.g. `ollama serve`, or run a model inside Tandem: `tandem-lsp models pull qwen2.5-coder-1.5b-q8_0`';
    assert.equal(offersPull({ state: 'down', detail }), true);
  });

  it('is not made otherwise', () => {
    assert.equal(offersPull({ state: 'ready', detail: 'tandem-lsp models pull x' }), false);
    assert.equal(offersPull({ state: 'down', detail: 'no answer within local.timeoutMs' }), false);
    assert.equal(offersPull({ state: 'down', detail: null }), false);
    assert.equal(offersPull({}), false);
  });

  it('runs the pull with the server command that was found', () => {
    assert.deepEqual(pullCommand({ command: '/opt/venv/bin/tandem-lsp', args: [], source: 'serverPath' }), {
      command: '/opt/venv/bin/tandem-lsp', args: ['models', 'pull', RECOMMENDED_MODEL],
    });
    assert.deepEqual(pullCommand({ command: 'python3', args: ['-m', 'tandem_lsp'], source: 'python' }, 'qwen2.5-coder-0.5b-q8_0'), {
      command: 'python3', args: ['-m', 'tandem_lsp', 'models', 'pull', 'qwen2.5-coder-0.5b-q8_0'],
    });
  });
});

describe('the pull command line', () => {
  it('quotes for POSIX shells only where needed', () => {
    assert.equal(shellCommandLine('/opt/venv/bin/tandem-lsp', ['models', 'pull', 'qwen2.5-coder-1.5b-q8_0'], 'linux'),
      '/opt/venv/bin/tandem-lsp models pull qwen2.5-coder-1.5b-q8_0');
    assert.equal(shellCommandLine("/home/o'neil/my venv/bin/python", ['-m', 'tandem_lsp'], 'darwin'),
      "'/home/o'\\''neil/my venv/bin/python' -m tandem_lsp");
  });

  it('calls the program with & in PowerShell', () => {
    assert.equal(shellCommandLine('C:\\Program Files\\Tandem\\tandem-lsp.exe', ['models', 'pull', 'x'], 'win32'),
      "& 'C:\\Program Files\\Tandem\\tandem-lsp.exe' models pull x");
  });
});

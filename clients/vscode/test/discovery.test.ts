import './vscode-mock';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiscoveryProbes, findServer, INSTALL_HINT, ServerNotFoundError, which } from '../src/discovery';

function probes(opts: { executables?: string[]; pythons?: string[]; path?: string; platform?: string } = {}): DiscoveryProbes & { pythonCalls: string[] } {
  const pythonCalls: string[] = [];
  return {
    isExecutable: (f) => (opts.executables ?? []).includes(f),
    pythonHasTandem: (p) => {
      pythonCalls.push(p);
      return (opts.pythons ?? []).includes(p);
    },
    env: { PATH: opts.path ?? '/usr/local/bin:/usr/bin' },
    platform: opts.platform ?? 'linux',
    homedir: '/home/u',
    pythonCalls,
  };
}

describe('server discovery', () => {
  it('prefers tandem.serverPath', () => {
    const p = probes({ executables: ['/opt/venv/bin/tandem-lsp', '/usr/bin/tandem-lsp'], pythons: ['python3'] });
    assert.deepEqual(findServer({ serverPath: '/opt/venv/bin/tandem-lsp', pythonPath: 'python3' }, p), {
      command: '/opt/venv/bin/tandem-lsp', args: [], source: 'serverPath',
    });
  });

  it('expands ~ in serverPath', () => {
    const p = probes({ executables: ['/home/u/.venv/bin/tandem-lsp'] });
    assert.equal(findServer({ serverPath: '~/.venv/bin/tandem-lsp' }, p).command, '/home/u/.venv/bin/tandem-lsp');
  });

  it('looks a bare serverPath name up on PATH', () => {
    const p = probes({ executables: ['/usr/bin/my-tandem'] });
    assert.equal(findServer({ serverPath: 'my-tandem' }, p).command, '/usr/bin/my-tandem');
  });

  it('falls back to tandem-lsp on PATH when serverPath is unset or not executable', () => {
    const p = probes({ executables: ['/usr/bin/tandem-lsp'], pythons: ['python3'] });
    assert.deepEqual(findServer({}, p), { command: '/usr/bin/tandem-lsp', args: [], source: 'path' });
    assert.equal(findServer({ serverPath: '/nope/tandem-lsp' }, p).source, 'path');
    assert.equal(findServer({ serverPath: '  ' }, p).source, 'path');
    assert.deepEqual(p.pythonCalls, [], 'python is not probed when tandem-lsp is on PATH');
  });

  it('takes the first tandem-lsp on PATH', () => {
    const p = probes({ executables: ['/b/tandem-lsp', '/c/tandem-lsp'], path: '/a:/b:/c' });
    assert.equal(findServer({}, p).command, '/b/tandem-lsp');
  });

  it('then runs python -m tandem_lsp with tandem.pythonPath (default python3)', () => {
    const p = probes({ pythons: ['python3', '/opt/py/bin/python'] });
    assert.deepEqual(findServer({}, p), { command: 'python3', args: ['-m', 'tandem_lsp'], source: 'python' });
    assert.deepEqual(findServer({ pythonPath: '/opt/py/bin/python' }, p), {
      command: '/opt/py/bin/python', args: ['-m', 'tandem_lsp'], source: 'python',
    });
    assert.equal(findServer({ pythonPath: '' }, p).command, 'python3');
  });

  it('fails with the install command when nothing works', () => {
    const p = probes({});
    assert.throws(
      () => findServer({ serverPath: '/nope', pythonPath: 'python3.99' }, p),
      (err: unknown) => {
        assert.ok(err instanceof ServerNotFoundError);
        assert.match(err.message, /pip install tandem-lsp/);
        assert.match(err.message, /pip install -e \./);
        assert.match(err.message, /\/nope/);
        assert.match(err.message, /python3\.99 -m tandem_lsp/);
        assert.equal(err.tried.length, 3);
        return true;
      },
    );
    assert.match(INSTALL_HINT, /tandem\.serverPath/);
  });

  it('uses PATHEXT on Windows', () => {
    const p = probes({ executables: ['C:\\py\\Scripts/tandem-lsp.EXE'], platform: 'win32', path: 'C:\\py\\Scripts' });
    p.env.PATHEXT = '.COM;.EXE';
    assert.equal(which('tandem-lsp', p), 'C:\\py\\Scripts/tandem-lsp.EXE');
  });
});

import './vscode-mock';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiscoveryProbes, findServer, INSTALL_HINT, ServerNotFoundError, venvFile, venvRoots, which } from '../src/discovery';

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
        assert.doesNotMatch(err.message, /pip install tandem-lsp/, 'the package is not on PyPI');
        assert.match(err.message, /python3 -m venv \.venv && \.venv\/bin\/pip install -e \./);
        assert.match(err.message, /\.venv\/bin\/tandem-lsp/);
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

  it('finds the server in a workspace folder\'s .venv before PATH (where the README installs it)', () => {
    const p = probes({ executables: ['/src/tandem/.venv/bin/tandem-lsp', '/usr/bin/tandem-lsp'], pythons: ['python3'] });
    assert.deepEqual(findServer({ venvRoots: ['/src/tandem'] }, p), {
      command: '/src/tandem/.venv/bin/tandem-lsp', args: [], source: 'venv',
    });
    assert.equal(findServer({ serverPath: '/usr/bin/tandem-lsp', venvRoots: ['/src/tandem'] }, p).source, 'serverPath');
  });

  it('looks in the roots in order, and skips a .venv without tandem-lsp', () => {
    const p = probes({ executables: ['/b/.venv/bin/tandem-lsp', '/c/.venv/bin/tandem-lsp'] });
    assert.equal(findServer({ venvRoots: ['/a', '/b', '/c'] }, p).command, '/b/.venv/bin/tandem-lsp');
    assert.equal(findServer({ venvRoots: ['~/tandem', '/c'] }, probes({ executables: ['/home/u/tandem/.venv/bin/tandem-lsp'] })).command,
      '/home/u/tandem/.venv/bin/tandem-lsp');
  });

  it('runs the .venv\'s python -m tandem_lsp when the venv has no tandem-lsp script and none is on PATH', () => {
    const p = probes({ executables: ['/a/.venv/bin/python', '/b/.venv/bin/python'], pythons: ['/b/.venv/bin/python', 'python3'] });
    assert.deepEqual(findServer({ venvRoots: ['/a', '/b'] }, p), {
      command: '/b/.venv/bin/python', args: ['-m', 'tandem_lsp'], source: 'venv',
    });
    assert.deepEqual(p.pythonCalls, ['/a/.venv/bin/python', '/b/.venv/bin/python']);
  });

  it('prefers tandem-lsp on PATH to a .venv python, and an explicit tandem.pythonPath to a .venv python', () => {
    const onPath = probes({ executables: ['/a/.venv/bin/python', '/usr/bin/tandem-lsp'], pythons: ['/a/.venv/bin/python'] });
    assert.equal(findServer({ venvRoots: ['/a'] }, onPath).source, 'path');
    const p = probes({ executables: ['/a/.venv/bin/python'], pythons: ['/a/.venv/bin/python', '/opt/py/bin/python'] });
    assert.equal(findServer({ venvRoots: ['/a'], pythonPath: '/opt/py/bin/python' }, p).command, '/opt/py/bin/python');
    assert.equal(findServer({ venvRoots: ['/a'], pythonPath: 'python3' }, p).command, '/a/.venv/bin/python');
  });

  it('says which .venv paths it tried', () => {
    assert.throws(() => findServer({ venvRoots: ['/w'] }, probes({})), (err: unknown) => {
      assert.ok(err instanceof ServerNotFoundError);
      assert.match(err.message, /no \/w\/\.venv\/bin\/tandem-lsp/);
      return true;
    });
  });

  it('uses .venv\\Scripts\\*.exe on Windows', () => {
    assert.equal(venvFile('C:\\src\\tandem', 'tandem-lsp', 'win32'), 'C:\\src\\tandem\\.venv\\Scripts\\tandem-lsp.exe');
    assert.equal(venvFile('C:\\src\\tandem', 'python', 'win32'), 'C:\\src\\tandem\\.venv\\Scripts\\python.exe');
    const p = probes({ executables: ['C:\\src\\tandem\\.venv\\Scripts\\tandem-lsp.exe'], platform: 'win32', path: '' });
    assert.equal(findServer({ venvRoots: ['C:\\src\\tandem'] }, p).command, 'C:\\src\\tandem\\.venv\\Scripts\\tandem-lsp.exe');
  });
});

describe('the folders whose .venv is searched', () => {
  it('are the workspace folders, then the checkout the extension runs from, then the one it was built in', () => {
    assert.deepEqual(venvRoots({
      workspaceFolders: ['/home/u/project', '/home/u/lib'],
      trusted: true,
      extensionPath: '/home/u/src/tandem/clients/vscode',
      builtInCheckout: '/home/u/build/tandem',
    }), ['/home/u/project', '/home/u/lib', '/home/u/src/tandem', '/home/u/build/tandem']);
  });

  it('leave out an untrusted workspace (its .venv is never run)', () => {
    assert.deepEqual(venvRoots({ workspaceFolders: ['/w'], trusted: false, builtInCheckout: '/t' }), ['/t']);
  });

  it('leave out an installed extension\'s own folder, and repeats', () => {
    assert.deepEqual(venvRoots({
      workspaceFolders: ['/src/tandem'],
      extensionPath: '/home/u/.vscode/extensions/tandem.tandem-0.1.0',
      builtInCheckout: '/src/tandem',
    }), ['/src/tandem']);
    assert.deepEqual(venvRoots({ extensionPath: 'C:\\src\\tandem\\clients\\vscode' }), ['C:\\src\\tandem']);
    assert.deepEqual(venvRoots({}), []);
  });
});

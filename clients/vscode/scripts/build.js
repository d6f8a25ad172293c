// `npm run build`: bundles src/extension.ts into out/extension.js with esbuild. When the extension is
// built inside a Tandem checkout (`<checkout>/clients/vscode`), the checkout's path is recorded in the
// bundle (TANDEM_BUILD_CHECKOUT), so that the installed extension finds the server the top-level README
// installs there (`<checkout>/.venv/bin/tandem-lsp`) without any setting; see src/discovery.ts.
'use strict';
const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');

const here = path.resolve(__dirname, '..');
const checkout = path.resolve(here, '..', '..');
const isCheckout = fs.existsSync(path.join(checkout, 'server', 'tandem_lsp', '__init__.py'));

esbuild
  .build({
    entryPoints: [path.join(here, 'src', 'extension.ts')],
    bundle: true,
    outfile: path.join(here, 'out', 'extension.js'),
    external: ['vscode'],
    format: 'cjs',
    platform: 'node',
    target: 'node18',
    sourcemap: true,
    define: { TANDEM_BUILD_CHECKOUT: JSON.stringify(isCheckout ? checkout : '') },
    logLevel: 'info',
  })
  .catch(() => process.exit(1));

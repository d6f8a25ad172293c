import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resultMarkdown, statsMarkdown } from '../src/markdown';

describe('markdown', () => {
  it('renders a command result with its tier, model, cost and fallback', () => {
    const md = resultMarkdown('Explain failure', {
      markdown: 'The cause is X.', tier: 'local', model: 'qwen', costUsd: 0, fallbackReason: 'no key',
    });
    assert.match(md, /^# Explain failure/);
    assert.match(md, /tier: \*\*local\*\*/);
    assert.match(md, /fallback: no key/);
    assert.match(md, /The cause is X\./);
  });

  it('renders stats with the spend first', () => {
    const md = statsMarkdown({ costUsd: 0.1234, savedUsd: 1, local: { calls: 3 }, cache: { hits: 2 } });
    assert.match(md, /cloud spend today: \*\*\$0\.1234\*\*/);
    assert.match(md, /\| calls \| 3 \|/);
  });
});

import './vscode-mock';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as vscode from 'vscode';
import { fixInlineContext } from '../src/extension';

const range = (sl: number, sc: number, el: number, ec: number) =>
  ({ start: { line: sl, character: sc }, end: { line: el, character: ec }, toJSON: () => [{}, {}] }) as unknown as vscode.Range;

describe('inline completion context (vscode-languageclient 9.0.1 workaround)', () => {
  it('maps VS Code trigger kinds to LSP (Invoked 1, Automatic 2)', () => {
    assert.equal(fixInlineContext({ triggerKind: 0, selectedCompletionInfo: undefined }).triggerKind, 1);
    assert.equal(fixInlineContext({ triggerKind: 1, selectedCompletionInfo: undefined }).triggerKind, 2);
  });

  it('sends selectedCompletionInfo.range as an LSP range, not a serialized vscode.Range', () => {
    const fixed = fixInlineContext({ triggerKind: 1, selectedCompletionInfo: { range: range(1, 4, 1, 7), text: 'return' } });
    assert.deepEqual(JSON.parse(JSON.stringify(fixed.selectedCompletionInfo)), {
      text: 'return',
      range: { start: { line: 1, character: 4 }, end: { line: 1, character: 7 } },
    });
  });
});

describe('next edits: the capability', () => {
  it('is read from capabilities.experimental.copilotInlineEdit', async () => {
    const { offersNextEdits } = await import('../src/extension');
    assert.equal(offersNextEdits({ capabilities: { experimental: { copilotInlineEdit: true, tandem: { nextEdit: true } } } }), true);
    assert.equal(offersNextEdits({ capabilities: { experimental: {} } }), false);
    assert.equal(offersNextEdits({ capabilities: {} }), false);
    assert.equal(offersNextEdits(undefined), false);
  });
});

import './vscode-mock';
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import * as vscode from 'vscode';
import pkg from '../package.json';
import {
  changedSpan,
  choosePresentation,
  CONTEXT_KEY,
  endOf,
  inlineable,
  INLINE_ACCEPTED_COMMAND,
  LspCommand,
  NextEdit,
  NextEditController,
  NextEditHost,
  NextEditParams,
  NextEditResult,
  shownText,
} from '../src/nextEdit';
import { mockHooks } from './vscode-mock';

// --- fakes: a document, an editor, a clock, and the host (the language client's side) --------------

const URI = 'file:///project/area.py';
const SOURCE = [
  'def area(size, height):',
  '    """The area of a rectangle."""',
  '    if width < 0:',
  '        raise ValueError("negative")',
  '    return width * height',
  '',
].join('\n');

class FakeDocument {
  version = 1;
  readonly languageId = 'python';
  readonly uri: { scheme: string; toString(): string };
  constructor(public text: string, uriString = URI) {
    this.uri = { scheme: uriString.split(':')[0], toString: () => uriString };
  }
  private get lines() {
    return this.text.split('\n');
  }
  get lineCount() {
    return this.lines.length;
  }
  lineAt(line: number) {
    const text = this.lines[line];
    return { text, range: new vscode.Range(line, 0, line, text.length) };
  }
  offsetAt(p: vscode.Position) {
    const lines = this.lines;
    let off = 0;
    for (let i = 0; i < p.line; i++) off += lines[i].length + 1;
    return off + Math.min(p.character, lines[p.line]?.length ?? 0);
  }
  positionAt(offset: number) {
    const before = this.text.slice(0, offset).split('\n');
    return new vscode.Position(before.length - 1, before[before.length - 1].length);
  }
  getText(range?: vscode.Range) {
    return range ? this.text.slice(this.offsetAt(range.start), this.offsetAt(range.end)) : this.text;
  }
  replace(range: vscode.Range, text: string) {
    const change = { range, text, rangeOffset: this.offsetAt(range.start), rangeLength: this.getText(range).length };
    this.text = this.text.slice(0, this.offsetAt(range.start)) + text + this.text.slice(this.offsetAt(range.end));
    this.version++;
    return change;
  }
}

type Decoration = vscode.Range | vscode.DecorationOptions;

class FakeEditor {
  private sel: vscode.Selection;
  decorations = new Map<string, Decoration[]>();
  revealed: vscode.Range[] = [];
  visibleRanges = [new vscode.Range(0, 0, 40, 0)];
  onSelection: (e: vscode.TextEditorSelectionChangeEvent) => void = () => undefined;
  constructor(readonly document: FakeDocument, line = 0, character = 0) {
    const p = new vscode.Position(line, character);
    this.sel = new vscode.Selection(p, p);
  }
  get selection() {
    return this.sel;
  }
  set selection(s: vscode.Selection) {
    this.sel = s;
    this.onSelection({ textEditor: this as never, selections: [s], kind: undefined });
  }
  setDecorations(type: vscode.TextEditorDecorationType, ranges: Decoration[]) {
    this.decorations.set(type.key, ranges);
  }
  revealRange(range: vscode.Range) {
    this.revealed.push(range);
  }
  /** All decorations now set, of every type. */
  all(): Decoration[] {
    return [...this.decorations.values()].flat();
  }
}

class Clock {
  now = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private ids = 0;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.ids;
    this.timers.push({ at: this.now + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((t) => t.id !== id);
  };
  advance(ms: number) {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = due.at;
      due.fn();
    }
    this.now = end;
  }
}

interface Pending {
  params: NextEditParams;
  token: vscode.CancellationToken;
  resolve: (r: NextEditResult) => void;
}

const tick = () => new Promise((r) => setImmediate(r));

const COMMAND: LspCommand = { title: 'Accept next edit', command: 'tandem.acceptNextEdit', arguments: [{ id: 'e1', uri: URI }] };

function edit(sl: number, sc: number, el: number, ec: number, text: string, version = 1): NextEdit {
  return {
    text,
    textDocument: { uri: URI, version },
    range: { start: { line: sl, character: sc }, end: { line: el, character: ec } },
    command: COMMAND,
  };
}

function setup(opts: { enabled?: boolean } = {}) {
  const clock = new Clock();
  const doc = new FakeDocument(SOURCE);
  const editor = new FakeEditor(doc, 0, 13); // after `size` in `def area(size, height):`
  const requests: Pending[] = [];
  const shown: NextEdit[] = [];
  const executed: LspCommand[] = [];
  const context: boolean[] = [];
  let triggers = 0;
  let fallbacks = 0;
  const logs: string[] = [];
  const host: NextEditHost = {
    enabled: () => opts.enabled ?? true,
    request: (params, token) => new Promise((resolve) => requests.push({ params, token, resolve })),
    notifyShown: (e) => shown.push(e),
    executeCommand: async (c) => void executed.push(c),
    activeEditor: () => editor as never,
    setContext: (key, value) => {
      assert.equal(key, CONTEXT_KEY);
      context.push(value);
    },
    triggerInline: () => void triggers++,
    fallbackTab: () => void fallbacks++,
    log: (m) => void logs.push(m),
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
  };
  const nes = new NextEditController(host);
  editor.onSelection = (e) => nes.onDidChangeTextEditorSelection(e);
  nes.onDidChangeActiveTextEditor(editor as never);
  /** The user types `text` at the cursor (one change event, then the cursor moves after it). */
  const type = (text: string) => {
    const at = editor.selection.active;
    const change = doc.replace(new vscode.Range(at, at), text);
    nes.onDidChangeTextDocument({ document: doc as never, contentChanges: [change as never], reason: undefined });
    const end = endOf(at, text);
    editor.selection = new vscode.Selection(new vscode.Position(end.line, end.character), new vscode.Position(end.line, end.character));
  };
  const moveTo = (line: number, character: number) => {
    const p = new vscode.Position(line, character);
    editor.selection = new vscode.Selection(p, p);
  };
  mockHooks.applyEdit = (we) => {
    const w = we as unknown as { edits: Array<{ range: vscode.Range; text: string }> };
    for (const e of w.edits) {
      const change = doc.replace(e.range, e.text);
      nes.onDidChangeTextDocument({ document: doc as never, contentChanges: [change as never], reason: undefined });
    }
    return true;
  };
  /** Answer the last request and let the controller take it. */
  const answer = async (edits: NextEdit[], which = requests.length - 1) => {
    requests[which].resolve({ edits });
    await tick();
  };
  return {
    clock, doc, editor, nes, requests, shown, executed, context, logs, type, moveTo, answer,
    triggers: () => triggers,
    fallbacks: () => fallbacks,
  };
}

const after = (d: Decoration) => (d as vscode.DecorationOptions).renderOptions?.after?.contentText;
const rangeOf = (d: Decoration) => ('range' in d && !(d instanceof vscode.Range) ? d.range : (d as vscode.Range));
const flat = (r: vscode.Range) => [r.start.line, r.start.character, r.end.line, r.end.character];

// --- pure helpers ----------------------------------------------------------------------------------

describe('next edit: helpers', () => {
  it('inlineable: on the cursor line, range containing the cursor, insert-only after the cursor', () => {
    const r = (sc: number, ec: number) => ({ start: { line: 2, character: sc }, end: { line: 2, character: ec } });
    const at = (c: number) => ({ line: 2, character: c });
    assert.ok(inlineable(r(4, 4), '', 'x = 1', at(4)), 'an insertion at the cursor');
    assert.ok(inlineable(r(4, 7), 'foo', 'foo(a)', at(7)), 'kept before the cursor, appended after');
    assert.ok(inlineable(r(4, 9), 'foo()', 'foo(a, b)', at(8)), 'inserted into the text after the cursor');
    assert.ok(!inlineable(r(4, 9), 'width', 'size', at(9)), 'a deletion is not ghost text');
    assert.ok(inlineable(r(4, 9), 'width', 'widthx', at(6)), 'wi|dth -> widthx only inserts after the cursor');
    assert.ok(!inlineable(r(4, 7), 'abc', 'aXbc', at(7)), 'a change before the cursor');
    assert.ok(!inlineable(r(4, 7), 'foo', 'foo(a)', { line: 3, character: 7 }), 'another line');
    assert.ok(!inlineable(r(4, 7), 'foo', 'foo(a)', at(9)), 'the cursor after the range');
    assert.ok(!inlineable({ start: { line: 2, character: 4 }, end: { line: 3, character: 0 } }, 'a\n', 'ab\n', at(4)), 'multi-line');
    assert.equal(choosePresentation(r(4, 4), '', 'pass', at(4)), 'inline');
    assert.equal(choosePresentation(r(7, 12), 'width', 'size', at(4)), 'decoration');
  });

  it('changedSpan trims the common prefix and suffix', () => {
    assert.deepEqual(changedSpan('    return width * height', '    return size * height'), { start: 11, end: 16, text: 'size' });
    assert.deepEqual(changedSpan('aaa', 'aaaa'), { start: 3, end: 3, text: 'a' });
    assert.deepEqual(changedSpan('abc', ''), { start: 0, end: 3, text: '' });
    assert.deepEqual(changedSpan('x', 'x'), { start: 1, end: 1, text: '' });
  });

  it('endOf and shownText', () => {
    assert.deepEqual(endOf({ line: 3, character: 4 }, 'size'), { line: 3, character: 8 });
    assert.deepEqual(endOf({ line: 3, character: 4 }, 'a\nbc'), { line: 4, character: 2 });
    assert.equal(shownText('a\nb'), 'a ⏎ b');
    assert.equal(shownText('x'.repeat(300)).length, 120);
  });
});

// --- timing ------------------------------------------------------------------------------------------

describe('next edit: when the client asks', () => {
  beforeEach(() => {
    mockHooks.executed.length = 0;
  });

  it('asks once, ~200 ms after the last change, with the version and the cursor', () => {
    const t = setup();
    t.type('a');
    t.clock.advance(150);
    t.type('b');
    t.clock.advance(150);
    t.type('c');
    t.clock.advance(199);
    assert.equal(t.requests.length, 0, 'not while typing');
    t.clock.advance(1);
    assert.equal(t.requests.length, 1);
    assert.deepEqual(t.requests[0].params, { textDocument: { uri: URI, version: 4 }, position: { line: 0, character: 16 } });
  });

  it('cancels the request in flight when the document changes, and asks again after the pause', () => {
    const t = setup();
    t.type('a');
    t.clock.advance(200);
    assert.equal(t.requests.length, 1);
    t.type('b');
    assert.ok(t.requests[0].token.isCancellationRequested, 'the first request is cancelled');
    t.clock.advance(200);
    assert.equal(t.requests.length, 2);
    assert.ok(!t.requests[1].token.isCancellationRequested);
    assert.equal(t.requests[1].params.textDocument.version, 3);
  });

  it('drops an answer for a version that is no longer the document\'s', async () => {
    const t = setup();
    t.type('a');
    t.clock.advance(200);
    t.doc.version++; // changed, with no event yet (as when the answer and the change cross)
    await t.answer([edit(4, 11, 4, 16, 'size', 2)]);
    assert.equal(t.nes.current, undefined);
    assert.equal(t.shown.length, 0);
    assert.equal(t.editor.all().length, 0);
  });

  it('drops an edit made against another version', async () => {
    const t = setup();
    t.type('a');
    t.clock.advance(200);
    await t.answer([edit(4, 11, 4, 16, 'size', 1)]); // the document is at version 2
    assert.equal(t.nes.current, undefined);
  });

  it('asks when the cursor moves to another line, not when it moves along the line', () => {
    const t = setup();
    t.moveTo(0, 3);
    t.clock.advance(500);
    assert.equal(t.requests.length, 0);
    t.moveTo(2, 4);
    t.clock.advance(200);
    assert.equal(t.requests.length, 1);
    assert.deepEqual(t.requests[0].params.position, { line: 2, character: 4 });
  });

  it('asks only for the documents the server has (file and untitled)', () => {
    const t = setup();
    (t.doc.uri as { scheme: string }).scheme = 'output';
    t.type('a');
    t.clock.advance(1000);
    assert.equal(t.requests.length, 0);
  });

  it('does not ask when next edits are off (or the server does not offer them)', () => {
    const t = setup({ enabled: false });
    t.type('a');
    t.moveTo(3, 0);
    t.clock.advance(1000);
    assert.equal(t.requests.length, 0);
  });
});

// --- presentation ------------------------------------------------------------------------------------

describe('next edit: presentation', () => {
  it('elsewhere: the old text struck through, the new text after it, a gutter mark; didShow once', async () => {
    const t = setup();
    t.type(' ');
    t.clock.advance(200);
    // the server's edit is the whole line; only `width` -> `size` is marked
    await t.answer([edit(4, 0, 4, 25, '    return size * height', 2)]);
    const s = t.nes.current!;
    assert.equal(s.mode, 'decoration');
    const decorations = t.editor.all();
    const struck = decorations.find((d) => after(d) === 'size');
    assert.ok(struck, JSON.stringify(decorations));
    assert.deepEqual(flat(rangeOf(struck)), [4, 11, 4, 16]);
    const gutter = decorations.find((d) => d instanceof vscode.Range);
    assert.ok(gutter && (gutter as vscode.Range).start.line === 4, 'the gutter mark on the edit line');
    assert.equal(t.context.at(-1), true);
    assert.equal(t.shown.length, 1);
    assert.equal(t.triggers(), 0);
  });

  it('an edit out of view gets a hint at the cursor line', async () => {
    const t = setup();
    t.editor.visibleRanges = [new vscode.Range(0, 0, 2, 0)];
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(4, 11, 4, 16, 'size', 2)]);
    assert.ok(t.editor.all().some((d) => after(d) === '↓ next edit at line 5 (Tab)'));
  });

  it('on the cursor line, insert-only: an inline completion item (ghost text), not a decoration', async () => {
    const t = setup();
    t.moveTo(4, 25); // end of `    return width * height`
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(4, 26, 4, 26, '+ 1', 2)]);
    assert.equal(t.nes.current!.mode, 'inline');
    assert.equal(t.editor.all().length, 0);
    assert.equal(t.triggers(), 1, 'VS Code is asked for inline completions');
    assert.notEqual(t.context.at(-1), true, 'Tab stays with the ghost text');
    assert.equal(t.shown.length, 0, 'not shown until VS Code asks for it');
    const item = t.nes.inlineItem(t.doc as never, new vscode.Position(4, 26))!;
    assert.equal(item.insertText, '+ 1');
    assert.deepEqual(flat(item.range!), [4, 26, 4, 26]);
    assert.equal((item.command as vscode.Command).command, INLINE_ACCEPTED_COMMAND);
    t.nes.inlineItem(t.doc as never, new vscode.Position(4, 26));
    assert.equal(t.shown.length, 1, 'didShow once');
    assert.equal(t.nes.inlineItem(t.doc as never, new vscode.Position(3, 0)), undefined, 'not on another line');
  });

  it('on the cursor line but a replacement: a decoration', async () => {
    const t = setup();
    t.moveTo(2, 13);
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(2, 7, 2, 12, 'size', 2)]);
    assert.equal(t.nes.current!.mode, 'decoration');
    assert.ok(t.editor.all().some((d) => after(d) === 'size'));
  });

  it('typing clears it', async () => {
    const t = setup();
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(4, 11, 4, 16, 'size', 2)]);
    assert.ok(t.nes.current);
    t.type('x');
    assert.equal(t.nes.current, undefined);
    assert.equal(t.editor.all().length, 0);
    assert.equal(t.context.at(-1), false);
  });

  it('an empty answer clears the one shown', async () => {
    const t = setup();
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(4, 11, 4, 16, 'size', 2)]);
    t.moveTo(1, 0);
    t.clock.advance(200);
    await t.answer([]);
    assert.equal(t.nes.current, undefined);
  });
});

// --- keys ----------------------------------------------------------------------------------------------

describe('next edit: Tab, Tab, Esc', () => {
  it('Tab jumps to it, Tab again applies it, sends the command once, then asks for the rest', async () => {
    const t = setup();
    t.type(' '); // `def area(size , height):`, version 2
    t.clock.advance(200);
    await t.answer([edit(2, 7, 2, 12, 'size', 2), edit(4, 11, 4, 16, 'size', 2)]);
    assert.equal(t.requests.length, 1);

    await t.nes.tab();
    assert.deepEqual([t.editor.selection.active.line, t.editor.selection.active.character], [2, 7], 'the cursor is at the edit');
    assert.equal(t.editor.revealed.length, 1);
    assert.equal(t.doc.version, 2, 'nothing applied yet');
    assert.ok(t.nes.current, 'still shown');
    t.clock.advance(1000);
    assert.equal(t.requests.length, 1, 'the jump is not a cursor move that asks again');

    const second = t.nes.tab();
    const third = t.nes.tab(); // pressed again while the first is being applied
    await second;
    await third;
    assert.equal(t.doc.lineAt(2).text, '    if size < 0:');
    assert.equal(t.doc.version, 3);
    assert.deepEqual(t.executed, [COMMAND], 'the accept command reaches the server exactly once');
    assert.equal(t.fallbacks(), 0);
    assert.deepEqual([t.editor.selection.active.line, t.editor.selection.active.character], [2, 11], 'after the new text');
    assert.equal(t.requests.length, 2, 'asks again at once');
    assert.deepEqual(t.requests[1].params, { textDocument: { uri: URI, version: 3 }, position: { line: 2, character: 11 } });
    t.clock.advance(1000);
    assert.equal(t.requests.length, 2, 'its own edit does not schedule another request');

    await t.answer([edit(4, 11, 4, 16, 'size', 3)]); // the rest of the set
    assert.deepEqual(flat(t.nes.current!.range), [4, 11, 4, 16]);
    await t.nes.tab();
    await t.nes.tab();
    assert.equal(t.doc.lineAt(4).text, '    return size * height');
    assert.equal(t.executed.length, 2);
    assert.equal(t.shown.length, 2, 'didShow once for each');
  });

  it('Tab applies at once when the cursor is already in the edit', async () => {
    const t = setup();
    t.moveTo(4, 0);
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(4, 0, 4, 26, '     return size * height', 2)]);
    assert.equal(t.nes.current!.mode, 'decoration');
    await t.nes.tab();
    assert.equal(t.doc.lineAt(4).text, '     return size * height');
    assert.equal(t.executed.length, 1);
  });

  it('Esc dismisses it; Tab then does what Tab does', async () => {
    const t = setup();
    t.type(' ');
    t.clock.advance(200);
    await t.answer([edit(4, 11, 4, 16, 'size', 2)]);
    t.nes.dismiss();
    assert.equal(t.nes.current, undefined);
    assert.equal(t.editor.all().length, 0);
    assert.equal(t.context.at(-1), false);
    await t.nes.tab();
    assert.equal(t.fallbacks(), 1);
    assert.equal(t.doc.version, 2);
    assert.equal(t.executed.length, 0);
  });

  it('an inline item accepted by VS Code sends the command once and asks again', async () => {
    const t = setup();
    t.moveTo(4, 25);
    t.type(' ');
    t.clock.advance(200);
    const e = edit(4, 26, 4, 26, '+ 1', 2);
    await t.answer([e]);
    t.nes.inlineItem(t.doc as never, new vscode.Position(4, 26));
    const change = t.doc.replace(new vscode.Range(4, 26, 4, 26), '+ 1'); // VS Code inserts it
    t.nes.onDidChangeTextDocument({ document: t.doc as never, contentChanges: [change as never], reason: undefined });
    await t.nes.acceptedInline(e);
    await t.nes.acceptedInline(e);
    assert.deepEqual(t.executed, [COMMAND]);
    assert.equal(t.requests.length, 2);
    assert.equal(t.requests[1].params.textDocument.version, 3);
  });
});

describe('next edit: package.json', () => {
  type Binding = { key: string; command: string; when: string };
  const bindings = (pkg.contributes as unknown as { keybindings: Binding[] }).keybindings;

  it('Tab and Esc are bound only while a next edit is shown, and ghost text wins', () => {
    const tab = bindings.find((b) => b.key === 'tab' && b.command === 'tandem.vscode.nextEdit.tab')!;
    const esc = bindings.find((b) => b.key === 'escape' && b.command === 'tandem.vscode.nextEdit.dismiss')!;
    for (const b of [tab, esc]) {
      assert.ok(b, JSON.stringify(bindings));
      assert.match(b.when, /(^|&& )tandem\.nextEditVisible( &&|$)/);
      assert.match(b.when, /!inlineSuggestionVisible/);
      assert.match(b.when, /!suggestWidgetVisible/);
      assert.match(b.when, /editorTextFocus/);
    }
  });

  it('ships the gutter icon', () => {
    const ignore = require('fs').readFileSync(require('path').join(__dirname, '..', '..', '.vscodeignore'), 'utf8');
    assert.match(ignore, /^!media\/\*\*$/m);
  });
});

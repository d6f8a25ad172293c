// Next-edit suggestions (NES): after an edit, the server proposes the matching replacement of existing
// text nearby (`textDocument/copilotInlineEdit`). This module asks for them (after a short pause in typing,
// and when the cursor moves to another line), shows the first one, and lets Tab jump to it and Tab again
// apply it; Esc dismisses it.
//
// Presentation:
// - an edit on the cursor line that VS Code can show as ghost text (the range contains the cursor, the text
//   before the cursor is kept and the rest is only inserted into) is offered as an inline completion item
//   (through the inline-completion middleware, `inlineItem`), so Tab accepts it like ghost text;
// - anything else gets a decoration: the replaced text struck through on a red background, the new text
//   after it on a green one, a gutter arrow on its line, and, when the edit is scrolled out of view, a hint
//   at the end of the cursor line. The context key `tandem.nextEditVisible` is then true, which is what the
//   Tab and Esc keybindings of package.json wait for.
import * as vscode from 'vscode';

export const CONTEXT_KEY = 'tandem.nextEditVisible';
export const INLINE_ACCEPTED_COMMAND = 'tandem.vscode.nextEdit.acceptedInline';
export const REQUEST_METHOD = 'textDocument/copilotInlineEdit';
export const DID_SHOW_METHOD = 'textDocument/didShowInlineEdit';
/** The pause in typing (ms) before asking; the server debounces too (nextEdit.debounceMs). */
export const CLIENT_PAUSE_MS = 200;
const MAX_SHOWN_CHARS = 120;
const SCHEMES = ['file', 'untitled'];

export interface LspPosition { line: number; character: number }
export interface LspRange { start: LspPosition; end: LspPosition }
export interface LspCommand { title?: string; command: string; arguments?: unknown[] }
export interface NextEdit {
  text: string;
  textDocument: { uri: string; version?: number | null };
  range: LspRange;
  command?: LspCommand | null;
}
export interface NextEditParams { textDocument: { uri: string; version: number }; position: LspPosition }
export interface NextEditResult { edits?: NextEdit[] | null }

/** What the controller needs from the extension: the language client and the editor it works in. */
export interface NextEditHost {
  /** The server advertises `experimental.copilotInlineEdit` and `tandem.nextEdit.enabled` is not false. */
  enabled(): boolean;
  request(params: NextEditParams, token: vscode.CancellationToken): Promise<NextEditResult | null | undefined>;
  notifyShown(edit: NextEdit): void;
  /** `workspace/executeCommand` on the server. */
  executeCommand(command: LspCommand): Promise<unknown>;
  activeEditor(): vscode.TextEditor | undefined;
  setContext(key: string, value: boolean): void;
  /** Ask VS Code for inline completions now (`editor.action.inlineSuggest.trigger`). */
  triggerInline(): void;
  /** Tab's usual meaning, for a Tab that arrives when there is nothing to jump to any more. */
  fallbackTab(): void;
  log(message: string): void;
  gutterIcon?: vscode.Uri;
  pauseMs?: number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

export type Presentation = 'inline' | 'decoration';

interface Shown {
  edit: NextEdit;
  uri: string;
  version: number;
  range: vscode.Range; // the whole edit, as the server sent it (what is applied)
  focus: vscode.Range; // the part that changes (what is shown, and where Tab jumps)
  newText: string; // the new text of `focus`
  mode: Presentation;
}

// --- pure helpers --------------------------------------------------------------------------------

/** `needle` is a subsequence of `hay` (VS Code's test for text after the cursor in ghost text). */
export function isSubsequence(needle: string, hay: string): boolean {
  let i = 0;
  for (let j = 0; i < needle.length && j < hay.length; j++) if (needle[i] === hay[j]) i++;
  return i === needle.length;
}

/**
 * Can VS Code show the edit as ghost text at the cursor? Its rules for an inline completion item: the range
 * is on one line and contains the cursor, the text to replace before the cursor is a prefix of the new text,
 * and the ghost text only inserts (the old text after the cursor is a subsequence of the rest).
 */
export function inlineable(range: LspRange, oldText: string, newText: string, cursor: LspPosition): boolean {
  if (range.start.line !== range.end.line || range.start.line !== cursor.line) return false;
  if (cursor.character < range.start.character || cursor.character > range.end.character) return false;
  if (oldText === newText) return false;
  const split = cursor.character - range.start.character;
  const before = oldText.slice(0, split);
  return newText.startsWith(before) && isSubsequence(oldText.slice(split), newText.slice(before.length));
}

export function choosePresentation(range: LspRange, oldText: string, newText: string, cursor: LspPosition): Presentation {
  return inlineable(range, oldText, newText, cursor) ? 'inline' : 'decoration';
}

/** The position after `text` inserted at `start`. */
export function endOf(start: LspPosition, text: string): LspPosition {
  const lines = text.split('\n');
  return lines.length === 1
    ? { line: start.line, character: start.character + text.length }
    : { line: start.line + lines.length - 1, character: lines[lines.length - 1].length };
}

/**
 * The part of a replacement that changes: the common prefix and suffix of the old and new text are cut off
 * (the suffix not into the prefix). Offsets into the old text, and the new middle.
 */
export function changedSpan(oldText: string, newText: string): { start: number; end: number; text: string } {
  let p = 0;
  const max = Math.min(oldText.length, newText.length);
  while (p < max && oldText[p] === newText[p]) p++;
  let s = 0;
  while (s < max - p && oldText[oldText.length - 1 - s] === newText[newText.length - 1 - s]) s++;
  return { start: p, end: oldText.length - s, text: newText.slice(p, newText.length - s) };
}

/** The new text as one line of `after` content. */
export function shownText(text: string): string {
  const one = text.replace(/\r?\n/g, ' ⏎ ').replace(/\t/g, '    ');
  return one.length > MAX_SHOWN_CHARS ? one.slice(0, MAX_SHOWN_CHARS - 1) + '…' : one;
}

function toRange(r: LspRange): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

function toLsp(p: vscode.Position): LspPosition {
  return { line: p.line, character: p.character };
}

function samePosition(a: LspPosition | undefined, b: LspPosition): boolean {
  return !!a && a.line === b.line && a.character === b.character;
}

// --- the controller ------------------------------------------------------------------------------

export class NextEditController implements vscode.Disposable {
  private timer: unknown;
  private cts: vscode.CancellationTokenSource | undefined;
  private shown: Shown | undefined;
  private shownNotified = new WeakSet<NextEdit>();
  private accepted = new WeakSet<NextEdit>();
  private cursorLine: number | undefined;
  private ownSelection: LspPosition | undefined; // a cursor move we made (the jump): not "the user moved"
  private ownEdit: { uri: string; version: number } | undefined; // the change our accept makes
  private applying = false;
  private contextVisible = false;
  private readonly removed: vscode.TextEditorDecorationType;
  private readonly gutter: vscode.TextEditorDecorationType;
  private readonly hint: vscode.TextEditorDecorationType;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly host: NextEditHost) {
    this.setTimer = host.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = host.clearTimeout ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    this.removed = vscode.window.createTextEditorDecorationType({
      backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
      textDecoration: 'line-through',
      rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      after: {
        backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground'),
        border: '1px solid',
        borderColor: new vscode.ThemeColor('diffEditor.insertedLineBackground'),
        margin: '0 0 0 2px',
      },
    });
    this.gutter = vscode.window.createTextEditorDecorationType({
      gutterIconPath: host.gutterIcon,
      gutterIconSize: '80%',
      overviewRulerColor: new vscode.ThemeColor('editorGutter.addedBackground'),
      overviewRulerLane: vscode.OverviewRulerLane.Right,
    });
    this.hint = vscode.window.createTextEditorDecorationType({
      after: { color: new vscode.ThemeColor('editorCodeLens.foreground'), fontStyle: 'italic', margin: '0 0 0 2em' },
    });
  }

  dispose(): void {
    this.cancel();
    this.clear();
    this.removed.dispose();
    this.gutter.dispose();
    this.hint.dispose();
  }

  /** The suggestion being shown (for tests and the inline middleware). */
  get current(): Readonly<Shown> | undefined {
    return this.shown;
  }

  // --- events (wired to VS Code's in extension.ts) ------------------------------------------------

  onDidChangeTextDocument(e: vscode.TextDocumentChangeEvent): void {
    if (e.contentChanges.length === 0) return; // only the dirty state changed
    const uri = e.document.uri.toString();
    if (this.ownEdit && this.ownEdit.uri === uri && this.ownEdit.version === e.document.version) {
      this.ownEdit = undefined; // our accept: it asks again by itself
      return;
    }
    if (this.shown?.uri === uri) this.clear(); // typing (anywhere in it) makes the suggestion stale
    const editor = this.host.activeEditor();
    if (!editor || editor.document.uri.toString() !== uri) return;
    this.cancel();
    this.schedule();
  }

  onDidChangeTextEditorSelection(e: vscode.TextEditorSelectionChangeEvent): void {
    const editor = this.host.activeEditor();
    if (!editor || e.textEditor.document.uri.toString() !== editor.document.uri.toString()) return;
    const active = e.selections[0]?.active;
    if (!active) return;
    const own = samePosition(this.ownSelection, active);
    this.ownSelection = undefined;
    const moved = active.line !== this.cursorLine;
    this.cursorLine = active.line;
    if (own || !moved) return;
    if (this.shown?.mode === 'inline') this.clear(); // ghost text goes away when the cursor leaves its line
    this.schedule();
  }

  onDidChangeActiveTextEditor(editor: vscode.TextEditor | undefined): void {
    this.cancel();
    this.clear();
    this.cursorLine = editor?.selection.active.line;
  }

  // --- asking -----------------------------------------------------------------------------------

  private schedule(): void {
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => {
      this.timer = undefined;
      void this.ask();
    }, this.host.pauseMs ?? CLIENT_PAUSE_MS);
  }

  private cancel(): void {
    if (this.timer !== undefined) {
      this.clearTimer(this.timer);
      this.timer = undefined;
    }
    if (this.cts) {
      this.cts.cancel();
      this.cts.dispose();
      this.cts = undefined;
    }
  }

  /** Ask the server now for the active editor's cursor (cancelling an earlier request). */
  async ask(): Promise<void> {
    const editor = this.host.activeEditor();
    if (!editor || !this.host.enabled()) return;
    this.cancel();
    const cts = new vscode.CancellationTokenSource();
    this.cts = cts;
    const document = editor.document;
    if (!SCHEMES.includes(document.uri.scheme)) return; // the documents the server is sent (extension.ts)
    const uri = document.uri.toString();
    const version = document.version;
    const position = toLsp(editor.selection.active);
    this.cursorLine = position.line;
    let result: NextEditResult | null | undefined;
    try {
      result = await this.host.request({ textDocument: { uri, version }, position }, cts.token);
    } catch (err) {
      if (!cts.token.isCancellationRequested) this.host.log(`${REQUEST_METHOD} failed: ${err}`);
      return;
    } finally {
      if (this.cts === cts) this.cts = undefined;
    }
    if (cts.token.isCancellationRequested) return;
    const now = this.host.activeEditor();
    if (!now || now.document.uri.toString() !== uri || now.document.version !== version) return; // stale
    const edit = result?.edits?.[0];
    if (!edit || (edit.textDocument?.version != null && edit.textDocument.version !== version)) {
      this.clear();
      return;
    }
    if (edit.textDocument?.uri && edit.textDocument.uri !== uri) {
      this.clear();
      return;
    }
    this.show(now, edit);
  }

  // --- showing ----------------------------------------------------------------------------------

  private show(editor: vscode.TextEditor, edit: NextEdit): void {
    const document = editor.document;
    const r = edit.range;
    if (r.end.line >= document.lineCount || r.start.line > r.end.line) {
      this.clear();
      return;
    }
    const range = toRange(r);
    const oldText = document.getText(range);
    if (oldText === edit.text) {
      this.clear();
      return;
    }
    this.clearDecorations();
    const cursor = toLsp(editor.selection.active);
    const mode = choosePresentation(r, oldText, edit.text, cursor);
    const span = changedSpan(oldText, edit.text);
    const start = document.offsetAt(range.start);
    const focus = new vscode.Range(document.positionAt(start + span.start), document.positionAt(start + span.end));
    this.shown = { edit, uri: document.uri.toString(), version: document.version, range, focus, newText: span.text, mode };
    if (mode === 'inline') {
      this.setVisible(false);
      this.host.triggerInline(); // VS Code asks the middleware, which answers with inlineItem()
      return;
    }
    this.decorate(editor);
    this.setVisible(true);
    this.notifyShown(edit);
  }

  private decorate(editor: vscode.TextEditor): void {
    const s = this.shown;
    if (!s) return;
    const hover = new vscode.MarkdownString(undefined, true);
    hover.appendMarkdown('**Next edit** — Tab: go to it, Tab again: accept, Esc: dismiss\n\n');
    hover.appendCodeblock(s.edit.text, editor.document.languageId);
    const after = s.newText ? { contentText: shownText(s.newText) } : undefined;
    editor.setDecorations(this.removed, [{ range: s.focus, hoverMessage: hover, renderOptions: { after } }]);
    const line = s.focus.start.line;
    editor.setDecorations(this.gutter, [new vscode.Range(line, 0, line, 0)]);
    const cursor = editor.selection.active;
    const inView = (editor.visibleRanges ?? []).some((v) => v.start.line <= line && line <= v.end.line);
    if (!inView && cursor.line !== line) {
      const arrow = line < cursor.line ? '↑' : '↓';
      const end = editor.document.lineAt(cursor.line).range.end;
      editor.setDecorations(this.hint, [
        { range: new vscode.Range(end, end), renderOptions: { after: { contentText: `${arrow} next edit at line ${line + 1} (Tab)` } } },
      ]);
    } else {
      editor.setDecorations(this.hint, []);
    }
  }

  private clearDecorations(): void {
    const editor = this.host.activeEditor();
    if (!editor) return;
    editor.setDecorations(this.removed, []);
    editor.setDecorations(this.gutter, []);
    editor.setDecorations(this.hint, []);
  }

  private setVisible(visible: boolean): void {
    if (visible === this.contextVisible) return;
    this.contextVisible = visible;
    this.host.setContext(CONTEXT_KEY, visible);
  }

  private notifyShown(edit: NextEdit): void {
    if (this.shownNotified.has(edit)) return;
    this.shownNotified.add(edit);
    this.host.notifyShown(edit);
  }

  /** Hide the suggestion (no request is cancelled). */
  clear(): void {
    if (this.shown && this.shown.mode === 'decoration') this.clearDecorations();
    this.shown = undefined;
    if (!this.applying) this.setVisible(false);
  }

  // --- keys -------------------------------------------------------------------------------------

  /** Tab: jump to the suggestion; when the cursor is already in it, apply it. */
  async tab(): Promise<void> {
    if (this.applying) return; // a second Tab while the first one applies
    const s = this.shown;
    const editor = this.host.activeEditor();
    if (!s || s.mode !== 'decoration' || !editor || editor.document.uri.toString() !== s.uri) {
      this.clear();
      this.host.fallbackTab();
      return;
    }
    const cursor = editor.selection.active;
    if (s.range.contains(cursor) || s.focus.contains(cursor)) {
      await this.apply(editor, s);
      return;
    }
    const target = s.focus.start;
    this.ownSelection = toLsp(target);
    editor.selection = new vscode.Selection(target, target);
    editor.revealRange(s.focus, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
    this.decorate(editor); // the hint at the old cursor line goes
  }

  /** Esc. */
  dismiss(): void {
    this.cancel();
    this.clear();
  }

  private async apply(editor: vscode.TextEditor, s: Shown): Promise<void> {
    const document = editor.document;
    if (document.version !== s.version) {
      this.clear();
      return;
    }
    this.applying = true;
    try {
      this.clearDecorations();
      this.shown = undefined;
      this.cancel();
      const edit = new vscode.WorkspaceEdit();
      edit.replace(document.uri, s.range, s.edit.text);
      this.ownEdit = { uri: s.uri, version: s.version + 1 };
      const ok = await vscode.workspace.applyEdit(edit);
      if (!ok) {
        this.ownEdit = undefined;
        this.host.log('next edit: the editor refused the edit');
        return;
      }
      const end = endOf(toLsp(s.range.start), s.edit.text);
      const pos = new vscode.Position(end.line, end.character);
      if (!samePosition(toLsp(editor.selection.active), end)) {
        this.ownSelection = end;
        editor.selection = new vscode.Selection(pos, pos);
      }
      this.cursorLine = end.line;
      await this.accepted_(s.edit);
    } finally {
      this.applying = false;
      if (!this.shown) this.setVisible(false);
    }
    void this.ask(); // the server answers the rest of the set
  }

  /** The server's accept command, exactly once per edit. */
  private async accepted_(edit: NextEdit): Promise<void> {
    if (this.accepted.has(edit)) return;
    this.accepted.add(edit);
    if (!edit.command?.command) return;
    try {
      await this.host.executeCommand(edit.command);
    } catch (err) {
      this.host.log(`${edit.command.command} failed: ${err}`);
    }
  }

  // --- the inline presentation ------------------------------------------------------------------

  /** The inline completion item for the suggestion on the cursor line, when it is shown that way. */
  inlineItem(document: vscode.TextDocument, position: vscode.Position): vscode.InlineCompletionItem | undefined {
    const s = this.shown;
    if (!s || s.mode !== 'inline' || s.uri !== document.uri.toString() || s.version !== document.version) return undefined;
    if (!inlineable(s.edit.range, document.getText(s.range), s.edit.text, toLsp(position))) return undefined;
    this.notifyShown(s.edit);
    const command = { title: 'Accept next edit', command: INLINE_ACCEPTED_COMMAND, arguments: [s.edit] };
    return new vscode.InlineCompletionItem(s.edit.text, s.range, command);
  }

  /** VS Code inserted the inline item (its command): tell the server, then ask for the rest. */
  async acceptedInline(edit: NextEdit): Promise<void> {
    if (this.accepted.has(edit)) return;
    if (this.shown?.edit === edit) this.shown = undefined;
    await this.accepted_(edit);
    void this.ask();
  }
}

// One notebook cell on the page (notebook.ts lays the cells out and runs command mode).
// Every cell is shown at once as a cheap static view: its source as plain text in a
// <pre> that looks like the editor, outputs rendered (outputs.ts); Markdown is rendered
// once the cell comes near the visible area (its source stands in until then). Its
// CodeMirror editor, bound to the cell's `source` Y.Text, is built only when the cell
// comes near the visible area (nearview.ts) or is focused, edited, searched or revealed,
// and is dropped again far off-screen; the person's text undo history of the cell
// outlives its editor. Everything else reads the Y model, not the editor: a remote edit
// to a cell without an editor updates its static view, find searches and replaces in the
// Y.Text, stale marks compare sources.
import * as Y from 'yjs';
import type { YCellType, YNotebook } from '@jupyter/ydoc';
import { EditorView, keymap } from '@codemirror/view';
import { Prec } from '@codemirror/state';
import type { LanguageDescription } from '@codemirror/language';
import type { Awareness } from 'y-protocols/awareness';
import type { FileInfo } from './api';
import { CellAwareness, type PresenceCell, type RemoteUser } from './cellpresence';
import { count } from './debug';
import { highlighted } from './highlight';
import { button, h } from './dom';
import { bindEditor, type BoundEditor } from './editor';
import { MARKDOWN } from './languages';
import { FAR_CLASS, type LazyItem } from './nearview';
import { renderOutputs, type Output } from './outputs';
import { safeColor } from './presence';
import { renderMarkdown, type Attachments } from './sanitize';
import type { ViewContext } from './views';

export type CellType = 'code' | 'markdown' | 'raw';

export type { RemoteUser };

/** What a cell needs from its notebook (NotebookView). */
export interface CellHost {
  readonly model: YNotebook;
  readonly file: FileInfo;
  readonly ctx: ViewContext;
  canEdit(): boolean;
  editable(): boolean;
  codeLanguage(): LanguageDescription | null;
  changeType(view: CellView, type: CellType): void;
  move(view: CellView, delta: number): void;
  run(view: CellView): void;
  insert(view: CellView, type: CellType): void;
  remove(view: CellView): void;
  next(view: CellView): void;
  split(view: CellView, at: number): void;
  commandMode(view: CellView): void;
}

export class CellView implements LazyItem, PresenceCell {
  readonly element: HTMLElement;
  /** built lazily (see the note at the top); null: the static view is shown */
  private editor: BoundEditor | null = null;
  /** this person's text undo of the cell, kept while it has something to undo */
  private undo: Y.UndoManager | null = null;
  private near = false;
  private readonly editorHost: HTMLElement;
  /** the static view of the source, in the editor's place until it is built */
  private readonly plain: HTMLElement;
  private readonly rendered: HTMLElement;
  private readonly outputs: HTMLElement;
  private readonly prompt: HTMLElement;
  private readonly presence: HTMLElement;
  private presenceKey = '';
  private readonly toolbar: HTMLElement | null;
  private readonly typeSelect: HTMLSelectElement | null;
  private editing = false;
  private renderQueued = false;
  private dirtyOutputs = true;
  private dirtySource = true;
  private dirtyPlain = true;
  private staleCheck = false;
  private shownEditor: boolean | null = null;
  /** a Markdown cell shows its source until it comes near the visible area */
  private mdPending = false;
  /** the source the outputs were made from (as far as this page knows) */
  private outputsSource: string;
  private collapsed = false;
  private readonly collapser: HTMLElement;
  private readonly outputArea: HTMLElement;
  private readonly unobserve: () => void;
  /** the static view of a code cell is syntax-highlighted (the notebook turns this on, a
   * few cells per task, once the language is loaded) */
  private colored = false;
  /** keeps the editor's box as high as the editor (see `fitBox`) */
  private sizer: ResizeObserver | null = null;
  /** what this cell's editor sees of the notebook's awareness (cellpresence.ts) */
  private awarenessView: CellAwareness | null = null;

  constructor(readonly nb: CellHost, readonly cell: YCellType) {
    const type = cell.cell_type as CellType;
    const ymodel = cell.ymodel;
    const ysource = ymodel.get('source') as Y.Text;
    this.prompt = h('div', { class: 'cell-prompt' });
    this.presence = h('div', { class: 'cell-presence' });
    this.plain = h('pre', { class: 'cell-static', 'aria-label': `${type} cell` });
    this.editorHost = h('div', { class: 'cell-editor' }, this.plain);
    this.rendered = h('div', { class: 'cell-rendered markdown-body', tabindex: 0, title: nb.canEdit() ? 'Click to edit' : '' });
    this.outputs = h('div', { class: 'cell-outputs' });
    this.collapser = h('div', { class: 'output-collapser', title: 'Collapse or expand the output (o)', role: 'button' });
    this.collapser.addEventListener('click', () => this.setCollapsed(!this.collapsed));
    this.outputArea = h('div', { class: 'cell-output-area' }, this.collapser, this.outputs);
    this.outputArea.hidden = true;
    const meta = (cell.ymodel.get('metadata') as Y.Map<unknown> | undefined)?.toJSON?.() as Record<string, any> | undefined;
    this.collapsed = Boolean(meta?.collapsed === true || meta?.jupyter?.outputs_hidden === true);
    this.outputsSource = ysource.toString();
    this.rendered.hidden = true;
    if (nb.canEdit()) {
      this.typeSelect = h('select', { class: 'cell-type', 'aria-label': 'Cell type' },
        h('option', { value: 'code' }, 'Code'),
        h('option', { value: 'markdown' }, 'Markdown'),
        h('option', { value: 'raw' }, 'Raw'));
      this.typeSelect.value = type;
      this.typeSelect.addEventListener('change', () => nb.changeType(this, this.typeSelect!.value as CellType));
      this.toolbar = h('div', { class: 'cell-toolbar' },
        this.typeSelect,
        button('↑', 'Move cell up', 'cell-up', () => nb.move(this, -1)),
        button('↓', 'Move cell down', 'cell-down', () => nb.move(this, 1)),
        button('▶', 'Run this cell (Shift-Enter)', 'cell-run', () => nb.run(this)),
        button('+', 'Insert a code cell below', 'cell-add', () => nb.insert(this, 'code')),
        button('✕', 'Delete cell', 'cell-delete', () => nb.remove(this)));
    } else {
      this.typeSelect = null;
      this.toolbar = null;
    }
    this.element = h('div', { class: `cell cell-${type}`, 'data-cell-id': String(ymodel.get('id') ?? ''), 'data-cell-type': type, tabindex: -1 },
      h('div', { class: 'cell-gutter' }, this.prompt, this.presence),
      h('div', { class: 'cell-body' }, this.toolbar, this.editorHost, this.rendered,
        h('div', { class: 'stale-note' }, 'The source changed since this output was made'), this.outputArea));

    // a click into the static view is a click into the editor, at the same place
    this.plain.addEventListener('mousedown', (ev) => {
      if (ev.button !== 0 || ev.shiftKey || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      ev.preventDefault();
      const at = textOffsetAt(this.plain, ev.clientX, ev.clientY);
      const view = this.buildEditor().view;
      view.focus();
      if (at !== null) view.dispatch({ selection: { anchor: Math.min(at, view.state.doc.length) } });
    });
    if (type === 'markdown') {
      this.rendered.addEventListener('click', (ev) => {
        if ((ev.target as HTMLElement).closest('a')) return;
        this.startEditing();
      });
    }

    const observer = (events: Y.YEvent<any>[]) => {
      for (const ev of events) {
        if (ev.target === ymodel) {
          const keys = (ev as Y.YMapEvent<unknown>).keysChanged;
          if (keys.has('execution_count')) this.updatePrompt();
          if (keys.has('outputs')) this.outputsChanged();
          if (keys.has('attachments') || keys.has('source')) this.dirtySource = true;
        } else if (ev.path[0] === 'outputs') {
          this.outputsChanged();
        } else if (ev.path[0] === 'source' || ev.target === ysource) {
          this.dirtySource = true;
          this.staleCheck = true;
          if (!this.editor) this.dirtyPlain = true;
        } else if (ev.path[0] === 'attachments') {
          this.dirtySource = true;
        }
      }
      if ((this.dirtyOutputs || this.staleCheck) && this.type === 'code') this.queueRender();
      else if (this.dirtySource && this.type === 'markdown') this.queueRender();
      else if (this.dirtyPlain && !this.editor) this.queueRender();
    };
    ymodel.observeDeep(observer);
    this.unobserve = () => ymodel.unobserveDeep(observer);
    this.updatePrompt();
    this.render();
  }

  get id(): string {
    return String(this.cell.ymodel.get('id') ?? '');
  }

  get type(): CellType {
    return this.cell.cell_type as CellType;
  }

  get ysource(): Y.Text {
    return this.cell.ymodel.get('source') as Y.Text;
  }

  /** The language of the cell's editor (null: plain text). */
  private language(): LanguageDescription | null {
    const type = this.type;
    return type === 'code' ? this.nb.codeLanguage() : type === 'markdown' ? MARKDOWN : null;
  }

  get isColored(): boolean {
    return this.colored;
  }

  /** Highlight the static view from now on (the language's parser is loaded). */
  colorize(): void {
    if (this.colored) return;
    this.colored = true;
    if (!this.editor && this.type === 'code') {
      this.dirtyPlain = true;
      this.render();
    }
  }

  get cellAwareness(): CellAwareness | null {
    return this.awarenessView;
  }

  // ---- the lazy editor (nearview.ts calls these) ----

  nearChanged(near: boolean): void {
    this.near = near;
  }

  build(): void {
    if (this.mdPending && this.near) {
      this.dirtySource = true;
      this.render();
    }
    if (!this.editor && !this.editorHost.hidden && this.element.isConnected) this.buildEditor();
  }

  /** Far off-screen: drop the editor unless someone is in it (its undo history stays). */
  drop(): void {
    if (!this.editor || this.element.contains(document.activeElement)) return;
    this.unfitBox();
    this.editor.destroy();
    this.editor = null;
    if (this.undo && !this.undo.undoStack.length && !this.undo.redoStack.length) {
      this.undo.destroy();
      this.undo = null;
    }
    this.editorHost.prepend(this.plain);
    this.dirtyPlain = true;
    this.render();
  }

  /** Lay out and paint the cell now, even if it is far off-screen (it is about to be shown). */
  unhide(): void {
    this.element.classList.remove(FAR_CLASS);
  }

  get hasEditor(): boolean {
    return this.editor !== null;
  }

  /** The cell's editor, built now if it is not yet. */
  get editorView(): EditorView {
    return this.buildEditor().view;
  }

  private undoManager(): Y.UndoManager {
    if (!this.undo) {
      this.undo = new Y.UndoManager(this.ysource);
      // replacements made without an editor (find) are this person's edits too
      this.undo.addTrackedOrigin(this);
    }
    return this.undo;
  }

  private buildEditor(): BoundEditor {
    if (this.editor) return this.editor;
    this.unhide();
    const type = this.type;
    const nb = this.nb;
    this.awarenessView ??= new CellAwareness(nb.model.awareness);
    const id = this.id;
    this.editor = bindEditor(this.editorHost, {
      ytext: this.ysource,
      // only the remote cursors in or leaving this cell redraw this editor
      awareness: this.awarenessView as unknown as Awareness,
      language: this.language(),
      editable: nb.editable(),
      kind: 'cell',
      wrap: type !== 'code',
      label: `${type} cell`,
      undoManager: this.undoManager(),
      extra: [
        Prec.high(keymap.of([
          { key: 'Shift-Enter', run: () => { nb.next(this); return true; } },
          { key: 'Mod-Enter', run: () => { nb.run(this); return true; } },
          { key: 'Mod-Shift--', run: (v) => { nb.split(this, v.state.selection.main.head); return true; } },
          {
            // edit mode → command mode (JupyterLab)
            key: 'Escape',
            run: () => {
              this.stopEditing();
              nb.commandMode(this);
              return true;
            },
          },
        ])),
        EditorView.updateListener.of((u) => {
          count('editor', id);
          if (u.selectionSet && u.view.hasFocus) {
            nb.ctx.onPlace({ file: nb.file.path, cell: this.id, line: u.state.doc.lineAt(u.state.selection.main.head).number });
          }
        }),
        EditorView.domEventHandlers({
          blur: () => {
            // leave markdown edit mode once the focus is elsewhere (not a toolbar click)
            setTimeout(() => {
              if (!this.element.contains(document.activeElement)) this.stopEditing();
            }, 0);
            return false;
          },
        }),
      ],
    });
    this.plain.remove();
    this.plain.textContent = '';
    this.dirtyPlain = false;
    this.fitBox(this.editor.view);
    return this.editor;
  }

  /** The editor's box (.cell-editor.sized: `contain: size layout style`) gets the height of
   * the editor, set when that changes (a ResizeObserver's callback runs after layout and
   * before paint): the box is then a layout boundary, so a keystroke that does not change
   * the cell's height lays out this editor only, not the notebook's hundreds of cells
   * (issue 18: the layout of a key, twice per key, grew with the number of cells). */
  private fitBox(view: EditorView): void {
    const box = this.editorHost;
    this.sizer = new ResizeObserver(([entry]) => {
      const height = entry.borderBoxSize?.[0]?.blockSize ?? view.dom.offsetHeight;
      if (height <= 0) return; // hidden (a Markdown cell not being edited)
      box.style.height = `${height}px`;
      box.classList.add('sized');
    });
    this.sizer.observe(view.dom);
  }

  private unfitBox(): void {
    this.sizer?.disconnect();
    this.sizer = null;
    this.editorHost.classList.remove('sized');
    this.editorHost.style.height = '';
  }

  /** Replace ranges of the source as this person's edit (their text undo covers it),
   * through the editor when there is one, else in the Y.Text. */
  replaceSource(ranges: { from: number; to: number }[], insert: string): void {
    if (this.editor) {
      this.editor.view.dispatch({ changes: ranges.map((r) => ({ from: r.from, to: r.to, insert })) });
      return;
    }
    const ytext = this.ysource;
    const undo = this.undoManager();
    undo.stopCapturing();
    ytext.doc?.transact(() => {
      for (const r of [...ranges].sort((a, b) => b.from - a.from)) {
        ytext.delete(r.from, r.to - r.from);
        ytext.insert(r.from, insert);
      }
    }, this);
  }

  // ---- rendering ----

  private outputsChanged(): void {
    this.dirtyOutputs = true;
    this.outputsSource = this.ysource.toString();
    this.staleCheck = true;
  }

  private updatePrompt(): void {
    if (this.type !== 'code') {
      this.prompt.textContent = '';
      return;
    }
    const n = this.cell.ymodel.get('execution_count');
    this.prompt.textContent = `[${typeof n === 'number' ? n : ' '}]:`;
  }

  private queueRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  /** Show rendered markdown or the editor (or its static view), and the outputs. */
  render(): void {
    count('render', this.id);
    if (this.type === 'code' && this.dirtyOutputs) {
      this.dirtyOutputs = false;
      const youtputs = this.cell.ymodel.get('outputs') as Y.Array<unknown> | undefined;
      renderOutputs(this.outputs, youtputs ? (youtputs.toJSON() as Output[]) : []);
      this.outputArea.hidden = this.outputs.hidden;
      this.outputs.hidden = false;
      this.showCollapsed();
    }
    if (this.type === 'code' && this.staleCheck) {
      // outputs made from another source than the one shown are marked, as long as they are
      this.staleCheck = false;
      const stale = !this.outputArea.hidden && this.ysource.toString() !== this.outputsSource;
      this.element.classList.toggle('stale', stale);
      const title = stale ? 'The source changed since this output was made' : '';
      if (this.outputArea.title !== title) this.outputArea.title = title; // not rewritten per key
    }
    if (this.type === 'markdown') {
      const source = this.cell.getSource();
      const showEditor = this.editing || (source.trim() === '' && this.nb.editable());
      this.editorHost.hidden = !showEditor;
      this.rendered.hidden = showEditor;
      if (!showEditor && (this.dirtySource || this.shownEditor !== false)) {
        this.dirtySource = false;
        // Markdown (marked, DOMPurify, KaTeX) is rendered near the visible area only: far
        // away its source stands in, as for code (278 Markdown cells took 1.5 s to render)
        this.mdPending = !this.near && source.trim() !== '';
        this.rendered.classList.toggle('md-pending', this.mdPending);
        if (this.mdPending) {
          this.rendered.textContent = source;
        } else {
          const attachments = this.cell.ymodel.get('attachments') as Attachments;
          this.rendered.replaceChildren(source.trim() ? renderMarkdown(source, attachments) : h('p', { class: 'muted' }, '(empty)'));
        }
      }
      this.shownEditor = showEditor;
      this.element.classList.toggle('editing', showEditor);
    }
    if (!this.editor && !this.editorHost.hidden) {
      if (this.near && this.element.isConnected) {
        this.buildEditor();
      } else if (this.dirtyPlain) {
        // a <pre> drops a last empty line: the editor shows it
        const text = this.ysource.toString();
        const shown = text.endsWith('\n') ? `${text}\n` : text;
        if (this.colored && this.type === 'code') this.plain.replaceChildren(...highlighted(shown, this.language()));
        else this.plain.textContent = shown;
        this.dirtyPlain = false;
      }
    }
  }

  setCollapsed(on: boolean): void {
    this.collapsed = on;
    this.showCollapsed();
  }

  toggleCollapsed(): void {
    this.setCollapsed(!this.collapsed);
  }

  private showCollapsed(): void {
    this.outputArea.classList.toggle('collapsed', this.collapsed);
    this.collapser.setAttribute('aria-expanded', String(!this.collapsed));
  }

  source(): string {
    return this.cell.getSource();
  }

  /** The text of the outputs as shown (for find). */
  outputText(): string {
    return this.outputArea.hidden ? '' : this.outputs.textContent ?? '';
  }

  get outputsElement(): HTMLElement {
    return this.outputs;
  }

  get isEditing(): boolean {
    return this.element.contains(document.activeElement) && !!document.activeElement?.closest('.cm-editor');
  }

  startEditing(): void {
    if (!this.nb.editable()) return;
    this.editing = true;
    this.render();
    this.focus();
  }

  stopEditing(): void {
    if (this.type !== 'markdown' || !this.editing) return;
    this.editing = false;
    this.render();
  }

  /** Command mode on this cell: the cell itself has the focus, not its editor. */
  focusCell(): void {
    this.unhide();
    this.element.focus({ preventScroll: true });
    this.element.scrollIntoView({ block: 'nearest' });
  }

  focus(): void {
    this.unhide();
    if (this.type === 'markdown' && !this.editing && this.nb.editable()) {
      this.editing = true;
      this.render();
    }
    if (!this.editorHost.hidden) this.buildEditor().view.focus();
    this.element.scrollIntoView({ block: 'nearest' });
  }

  setEditable(on: boolean): void {
    this.editor?.setEditable(on);
    if (!on) this.editing = false;
    this.render();
  }

  reveal(line: number | null | undefined): void {
    this.unhide();
    this.element.scrollIntoView({ block: 'center' });
    if (line && !this.editorHost.hidden) {
      const view = this.buildEditor().view;
      const doc = view.state.doc;
      const l = doc.line(Math.min(Math.max(1, line), doc.lines));
      view.dispatch({ effects: EditorView.scrollIntoView(l.from, { y: 'nearest' }) });
    }
  }

  setPresence(users: RemoteUser[]): void {
    // called for the cells a remote cursor moved in, came into or left (cellpresence.ts)
    count('presence', this.id);
    const key = users.map((u) => `${u.name}\u0000${u.color}`).join('\u0001');
    if (key === this.presenceKey) return;
    this.presenceKey = key;
    this.presence.replaceChildren(...users.map((u) => {
      const tag = h('span', { class: 'presence-tag', title: `${u.name} is here` }, u.name.slice(0, 1).toUpperCase());
      tag.style.backgroundColor = safeColor(u.color);
      return tag;
    }));
    this.element.classList.toggle('has-remote', users.length > 0);
    if (users.length) this.element.style.setProperty('--remote-color', safeColor(users[0].color));
  }

  destroy(): void {
    this.unobserve();
    this.unfitBox();
    this.editor?.destroy();
    this.editor = null;
    this.undo?.destroy();
    this.undo = null;
    this.element.remove();
  }
}

/** The character offset under a point in an element's text (null: none). */
function textOffsetAt(el: HTMLElement, x: number, y: number): number | null {
  const doc = document as Document & {
    caretPositionFromPoint?: (x: number, y: number) => { offsetNode: Node; offset: number } | null;
    caretRangeFromPoint?: (x: number, y: number) => Range | null;
  };
  let node: Node | null = null;
  let offset = 0;
  if (doc.caretPositionFromPoint) {
    const p = doc.caretPositionFromPoint(x, y);
    if (p) ({ offsetNode: node, offset } = p);
  } else if (doc.caretRangeFromPoint) {
    const r = doc.caretRangeFromPoint(x, y);
    if (r) ({ startContainer: node, startOffset: offset } = r);
  }
  if (!node || node.nodeType !== Node.TEXT_NODE || !el.contains(node)) return null;
  // the text is split into highlighted spans: count from the start of the element
  const before = document.createRange();
  before.setStart(el, 0);
  before.setEnd(node, offset);
  return before.toString().length;
}

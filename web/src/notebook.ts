// A notebook: @jupyter/ydoc's YNotebook (the YNotebook layout: `meta` map, `cells`
// array) is the model. Each cell is a CellView (cellview.ts): a static view of its
// source, rendered markdown (marked + DOMPurify) and read-only outputs (outputs.ts), and
// a CodeMirror editor bound to the cell's `source` Y.Text that is built only near the
// visible area (nearview.ts) or when the cell is edited, so a notebook of hundreds of
// cells opens fast and a keystroke costs the same as in a small one. Cell operations go through the
// model's own methods so that the document keeps JupyterLab's schema, inside the model's
// transactions: its UndoManager tracks only this client's origin, so `z` / Ctrl-Z in
// command mode undo this person's cell operations and never anyone else's.
// Command mode and edit mode follow JupyterLab (commands.ts has the keys); Ctrl-F opens
// the notebook-wide find bar (find.ts).
import * as Y from 'yjs';
import { YNotebook } from '@jupyter/ydoc';
import type { WebsocketProvider } from 'y-websocket';
import type { FileInfo } from './api';
import { CellView, type CellHost, type CellType } from './cellview';
import { CellPresence, type Shared } from './cellpresence';
import { button, h } from './dom';
import { notebookLanguage } from './languages';
import type { LanguageDescription } from '@codemirror/language';
import { commandKey, getClipboard, setClipboard, type CommandTarget } from './commands';
import { FindBar } from './find';
import { guardAwareness } from './presence';
import { KernelPanel } from './kernel';
import { ConflictPanel } from './conflicts';
import { NearView } from './nearview';
import { loadLanguage } from './highlight';
import { userState, type DocView, type Place, type ViewContext } from './views';

export class NotebookView implements DocView, CommandTarget, CellHost {
  readonly element: HTMLElement;
  readonly provider: WebsocketProvider;
  readonly model = new YNotebook();
  readonly kernel: KernelPanel;
  private readonly list: HTMLElement;
  private readonly status: HTMLElement;
  private readonly adders: HTMLElement | null;
  private views = new Map<Y.Map<unknown>, CellView>();
  /** the cell view of each cell's source text (where a remote cursor is) */
  private byText = new Map<Shared, CellView>();
  private readonly presence: CellPresence;
  private readonly byElement = new WeakMap<Element, CellView>();
  /** builds the editors of the cells near the visible area, drops those far from it */
  private readonly nearView = new NearView();
  private synced = false;
  private ended = false;
  private lang: LanguageDescription | null | undefined = undefined;
  private pendingFocus: string | null = null;
  /** command mode: the active cell and the other end of the selected range */
  private active: CellView | null = null;
  private anchor: CellView | null = null;
  private pendingCommand = false;
  private readonly find: FindBar;

  constructor(readonly file: FileInfo, readonly ctx: ViewContext) {
    this.status = h('div', { class: 'doc-status' }, 'Loading…');
    this.list = h('div', { class: 'nb-cells' });
    this.adders = ctx.canEdit
      ? h('div', { class: 'nb-adders' },
        button('+ Code', 'Add a code cell at the end', 'nb-add-code', () => this.append('code')),
        button('+ Markdown', 'Add a Markdown cell at the end', 'nb-add-markdown', () => this.append('markdown')))
      : null;
    this.find = new FindBar(() => [...this.views.values()], () => this.editable());
    this.element = h('section', { class: 'doc doc-notebook', 'data-path': file.path, 'data-ready': 'false', 'data-mode': 'command' },
      this.find.element, this.status, this.list, this.adders);
    this.listen();
    this.element.hidden = true;
    if (this.adders) this.adders.hidden = true;
    guardAwareness(this.model.awareness);
    this.model.awareness.setLocalStateField('user', userState(ctx.identity, ctx.canEdit ? 'editor' : 'viewer'));
    this.model.changed.connect((_, change) => {
      if (change.cellsChange) this.reconcile();
    });
    // others' cursors in the cells' gutters and editors, told only to the cells they
    // concern; one's own typing (which moves one's own cursor) costs nothing there
    this.presence = new CellPresence(this.model.awareness, (text) => this.byText.get(text));
    this.provider = ctx.conns.open(file.room, this.model.ydoc, this.model.awareness);
    this.kernel = new KernelPanel(this.element, this.provider);
    this.element.insertBefore(this.kernel.element, this.list);
    new ConflictPanel(this.element, this.model.ydoc, this.kernel.channel, ctx.canEdit); // conflicts.ts
    this.provider.on('sync', (isSynced: boolean) => {
      if (isSynced && !this.synced) {
        this.synced = true;
        this.status.hidden = true;
        this.element.dataset.ready = 'true';
        this.refresh();
        this.colorStatic();
      }
      ctx.onState();
    });
    this.reconcile();
  }

  get ready(): boolean {
    return this.synced;
  }

  canEdit(): boolean {
    return this.ctx.canEdit;
  }

  editable(): boolean {
    return this.ctx.canEdit && this.synced && !this.ended;
  }

  codeLanguage(): LanguageDescription | null {
    if (this.lang === undefined) this.lang = notebookLanguage(this.model.getMetadata() as Record<string, unknown>);
    return this.lang;
  }

  private refresh(): void {
    const on = this.editable();
    this.element.classList.toggle('readonly', !on);
    if (this.adders) this.adders.hidden = !on;
    for (const v of this.views.values()) v.setEditable(on);
  }

  /** Bring the cell views in line with the model's cells (insert, remove, reorder). */
  private reconcile(): void {
    const cells = this.model.cells;
    const next = new Map<Y.Map<unknown>, CellView>();
    for (const cell of cells) {
      const key = cell.ymodel as Y.Map<unknown>;
      let view = this.views.get(key);
      if (!view) {
        view = new CellView(this, cell);
        this.byElement.set(view.element, view);
      }
      next.set(key, view);
    }
    for (const [key, view] of this.views) if (!next.has(key)) view.destroy();
    this.views = next;
    this.byText = new Map([...next.values()].map((v) => [v.ysource as Shared, v]));
    let i = 0;
    for (const view of next.values()) {
      const at = this.list.children[i];
      if (at !== view.element) this.list.insertBefore(view.element, at ?? null);
      view.element.dataset.index = String(i);
      i++;
    }
    this.element.dataset.cells = String(cells.length);
    this.nearView.setItems([...next.values()]);
    this.colorStatic();
    if (this.pendingFocus) {
      const view = [...next.values()].find((v) => v.id === this.pendingFocus);
      if (view) {
        this.pendingFocus = null;
        if (this.pendingCommand) this.commandMode(view);
        else view.focus();
        this.pendingCommand = false;
      }
    }
    if (this.active && !next.has(this.active.cell.ymodel as Y.Map<unknown>)) this.active = null;
    if (this.anchor && !next.has(this.anchor.cell.ymodel as Y.Map<unknown>)) this.anchor = null;
    this.paintSelection();
    for (const view of next.values()) view.setPresence(this.presence.usersIn(view.ysource));
  }

  private coloring = false;

  /** Highlight the code cells' static views as their editors will (highlight.ts), a few
   * cells per task once the language's parser is loaded: the first paint does not wait. */
  private colorStatic(): void {
    if (!this.synced || this.coloring) return; // the language is in the metadata
    const lang = this.codeLanguage();
    if (!lang) return;
    if (!lang.support) {
      loadLanguage(lang, () => this.colorStatic());
      return;
    }
    this.coloring = true;
    const step = () => {
      const start = performance.now();
      for (const view of this.views.values()) {
        if (view.isColored) continue;
        view.colorize();
        if (performance.now() - start > 8) {
          setTimeout(step, 0);
          return;
        }
      }
      this.coloring = false;
    };
    setTimeout(step, 0);
  }

  private indexOf(view: CellView): number {
    return this.model.cells.indexOf(view.cell);
  }

  move(view: CellView, delta: number): void {
    if (!this.editable()) return;
    const i = this.indexOf(view);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= this.model.cells.length) return;
    this.pendingFocus = view.id;
    this.model.moveCell(i, j);
  }

  insert(view: CellView, type: CellType): void {
    if (!this.editable()) return;
    const i = this.indexOf(view);
    this.insertAt(i + 1, type);
  }

  append(type: CellType): void {
    if (!this.editable()) return;
    this.insertAt(this.model.cells.length, type);
  }

  private insertAt(index: number, type: CellType, command = false): void {
    const cell = this.model.insertCell(index, type === 'code'
      ? { cell_type: 'code', source: '', metadata: {}, outputs: [], execution_count: null }
      : { cell_type: type, source: '', metadata: {} });
    this.focusWhenShown(String(cell.ymodel.get('id') ?? ''), command);
  }

  private focusWhenShown(id: string, command: boolean): void {
    const view = [...this.views.values()].find((v) => v.id === id);
    if (view) {
      if (command) this.commandMode(view);
      else view.focus();
    } else {
      this.pendingFocus = id;
      this.pendingCommand = command;
    }
  }

  remove(view: CellView): void {
    if (!this.editable()) return;
    const i = this.indexOf(view);
    if (i < 0) return;
    this.model.deleteCell(i);
    const neighbour = this.model.cells[Math.min(i, this.model.cells.length - 1)];
    if (neighbour) this.views.get(neighbour.ymodel as Y.Map<unknown>)?.focus();
  }

  changeType(view: CellView, type: CellType, command = false): void {
    if (!this.editable() || view.type === type) return;
    const i = this.indexOf(view);
    if (i < 0) return;
    const old = view.cell.toJSON() as Record<string, unknown>;
    const cell: Record<string, unknown> = {
      id: old.id, cell_type: type, source: old.source, metadata: old.metadata ?? {},
    };
    if (type === 'code') {
      cell.outputs = [];
      cell.execution_count = null;
    } else if (old.attachments) {
      cell.attachments = old.attachments;
    }
    this.pendingFocus = String(old.id ?? '');
    this.pendingCommand = command;
    this.model.transact(() => {
      this.model.deleteCell(i);
      this.model.insertCell(i, cell as never);
    });
  }

  // ---- command mode (commands.ts) ----

  /** Key, mouse and focus handling of command mode and find. */
  private listen(): void {
    // Ctrl-F while this notebook is shown (wherever the focus is): notebook-wide find
    // rather than one cell's search panel or the browser's
    const onFind = (ev: KeyboardEvent) => {
      const mod = ev.ctrlKey || ev.metaKey;
      if (this.element.hidden || !mod || ev.shiftKey || ev.altKey || ev.key.toLowerCase() !== 'f') return;
      ev.preventDefault();
      ev.stopPropagation();
      const view = this.active?.isEditing ? this.active.editorView : null;
      const sel = view ? view.state.sliceDoc(view.state.selection.main.from, view.state.selection.main.to) : '';
      this.find.open(sel);
    };
    document.addEventListener('keydown', onFind, true);
    this.unlisten = () => document.removeEventListener('keydown', onFind, true);
    this.element.addEventListener('keydown', (ev) => {
      const target = ev.target as HTMLElement;
      if (!this.list.contains(target) || target.closest('.cm-editor, input, select, textarea, button')) return;
      if (commandKey(ev, this)) {
        ev.preventDefault();
        ev.stopPropagation();
      }
    }, true);
    this.list.addEventListener('focusin', (ev) => {
      const view = this.viewOf(ev.target as HTMLElement);
      if (!view) return;
      const editing = !!(ev.target as HTMLElement).closest('.cm-editor');
      this.element.dataset.mode = editing ? 'edit' : 'command';
      if (view !== this.active) {
        this.active = view;
        if (!this.shiftSelecting) this.anchor = view;
        this.paintSelection();
      }
    });
    this.list.addEventListener('focusout', () => {
      setTimeout(() => {
        if (!this.list.contains(document.activeElement)) this.element.dataset.mode = 'command';
      }, 0);
    });
    this.list.addEventListener('mousedown', (ev) => {
      const view = this.viewOf(ev.target as HTMLElement);
      if (!view || !ev.shiftKey || !this.active) return;
      // Shift-click: select the range from the active cell to this one
      ev.preventDefault();
      this.anchor ??= this.active;
      this.shiftSelecting = true;
      this.active = view;
      view.focusCell();
      this.shiftSelecting = false;
      this.paintSelection();
    });
  }

  private shiftSelecting = false;
  private unlisten: () => void = () => undefined;

  private viewOf(el: HTMLElement): CellView | null {
    const cellEl = el.closest<HTMLElement>('.cell');
    return cellEl ? this.byElement.get(cellEl) ?? null : null;
  }

  private ordered(): CellView[] {
    return [...this.views.values()];
  }

  /** The selected cells, in order (at least the active one). */
  private selected(): CellView[] {
    const cells = this.ordered();
    if (!this.active) return [];
    const a = cells.indexOf(this.active);
    const b = this.anchor ? cells.indexOf(this.anchor) : a;
    if (a < 0) return [];
    const [from, to] = b < 0 ? [a, a] : [Math.min(a, b), Math.max(a, b)];
    return cells.slice(from, to + 1);
  }

  private paintSelection(): void {
    const chosen = new Set(this.selected());
    for (const v of this.views.values()) {
      v.element.classList.toggle('active', v === this.active);
      v.element.classList.toggle('selected', chosen.has(v) && chosen.size > 1);
    }
  }

  /** Leave the editor: this cell is active, in command mode. */
  commandMode(view: CellView): void {
    this.active = view;
    if (!this.shiftSelecting) this.anchor = view;
    view.focusCell();
    this.element.dataset.mode = 'command';
    this.paintSelection();
  }

  moveActive(delta: number, extend: boolean): void {
    const cells = this.ordered();
    if (!cells.length) return;
    const i = this.active ? cells.indexOf(this.active) : -1;
    const next = cells[Math.min(Math.max(0, i + delta), cells.length - 1)];
    const anchor = extend ? (this.anchor ?? this.active ?? next) : next;
    this.shiftSelecting = extend;
    this.commandMode(next);
    this.shiftSelecting = false;
    this.anchor = anchor;
    this.paintSelection();
  }

  selectAll(): void {
    const cells = this.ordered();
    if (!cells.length) return;
    this.anchor = cells[0];
    this.active = cells[cells.length - 1];
    this.paintSelection();
  }

  collapseSelection(): void {
    this.anchor = this.active;
    this.paintSelection();
  }

  editActive(): void {
    if (!this.active) return;
    if (this.editable()) this.active.startEditing();
    else this.active.editorView.focus();
  }

  insertRelative(before: boolean): void {
    if (!this.editable() || !this.active) return;
    this.insertAt(this.indexOf(this.active) + (before ? 0 : 1), 'code', true);
  }

  deleteSelected(): void {
    if (!this.editable()) return;
    const chosen = this.selected();
    if (!chosen.length) return;
    const from = this.indexOf(chosen[0]);
    if (from < 0) return;
    this.model.transact(() => this.model.deleteCellRange(from, from + chosen.length));
    const neighbour = this.model.cells[Math.min(from, this.model.cells.length - 1)];
    const view = neighbour ? this.views.get(neighbour.ymodel as Y.Map<unknown>) : undefined;
    if (view) this.commandMode(view);
  }

  /** Undo this person's last cell operation (the model's UndoManager tracks only them). */
  undo(): void {
    if (!this.editable()) return;
    this.restoreFocusAfter(() => this.model.undo());
  }

  redo(): void {
    if (!this.editable()) return;
    this.restoreFocusAfter(() => this.model.redo());
  }

  private restoreFocusAfter(change: () => void): void {
    const i = this.active ? this.indexOf(this.active) : 0;
    change();
    const cell = this.model.cells[Math.min(Math.max(0, i), this.model.cells.length - 1)];
    const view = cell ? this.views.get(cell.ymodel as Y.Map<unknown>) : undefined;
    if (view) this.commandMode(view);
  }

  copySelected(cut: boolean): void {
    const chosen = this.selected();
    if (!chosen.length) return;
    setClipboard(chosen.map((v) => {
      const json = v.cell.toJSON() as Record<string, unknown>;
      delete json.id;
      return json;
    }));
    if (cut) this.deleteSelected();
  }

  paste(before: boolean): void {
    if (!this.editable()) return;
    const cells = getClipboard();
    if (!cells?.length) return;
    const at = this.active ? this.indexOf(this.active) + (before ? 0 : 1) : this.model.cells.length;
    let first = '';
    this.model.transact(() => {
      const made = this.model.insertCells(at, cells.map((c) => ({ ...c, id: undefined })) as never);
      first = String(made[0]?.ymodel.get('id') ?? '');
    });
    if (first) this.focusWhenShown(first, true);
  }

  setSelectedType(type: CellType): void {
    for (const view of this.selected()) this.changeType(view, type, true);
  }

  /** Merge the selected cells (or the active one with the next) into the first. */
  mergeSelected(): void {
    if (!this.editable()) return;
    let chosen = this.selected();
    if (chosen.length === 1) {
      const next = this.ordered()[this.indexOf(chosen[0]) + 1];
      if (!next) return;
      chosen = [chosen[0], next];
    }
    const from = this.indexOf(chosen[0]);
    if (from < 0 || chosen.length < 2) return;
    const first = chosen[0].cell.toJSON() as Record<string, unknown>;
    const merged: Record<string, unknown> = {
      ...first,
      source: chosen.map((v) => v.source()).join('\n\n'),
    };
    if (first.cell_type === 'code') {
      merged.outputs = [];
      merged.execution_count = null;
    }
    this.model.transact(() => {
      this.model.deleteCellRange(from, from + chosen.length);
      this.model.insertCell(from, merged as never);
    });
    this.focusWhenShown(String(first.id ?? ''), true);
  }

  /** Split a cell at a position of its source (Ctrl-Shift-Minus in edit mode). */
  split(view: CellView, at: number): void {
    if (!this.editable()) return;
    const i = this.indexOf(view);
    if (i < 0) return;
    const text = view.source();
    const before = text.slice(0, at).replace(/\n$/, '');
    const after = text.slice(at).replace(/^\n/, '');
    let id = '';
    this.model.transact(() => {
      const ysource = view.ysource;
      ysource.delete(before.length, ysource.length - before.length);
      const cell = view.type === 'code'
        ? { cell_type: 'code', source: after, metadata: {}, outputs: [], execution_count: null }
        : { cell_type: view.type, source: after, metadata: {} };
      id = String(this.model.insertCell(i + 1, cell as never).ymodel.get('id') ?? '');
    });
    this.focusWhenShown(id, false);
  }

  toggleOutputs(): void {
    for (const view of this.selected()) view.toggleCollapsed();
  }

  runActive(advance: boolean): void {
    if (!this.active) return;
    if (advance) {
      const view = this.active;
      this.run(view);
      const next = this.ordered()[this.indexOf(view) + 1];
      if (next) this.commandMode(next);
      else if (this.editable()) this.insertAt(this.model.cells.length, 'code', true);
    } else {
      this.run(this.active);
    }
  }

  /** Run a code cell (when the owner allows this participant to run code). */
  run(view: CellView): void {
    if (view.type === 'code') void this.kernel.runCell(view.id);
  }

  /** Shift-Enter: run this cell, leave it, go to the next one (a new code cell at the end). */
  next(view: CellView): void {
    this.run(view);
    view.stopEditing();
    const i = this.indexOf(view);
    const nextCell = this.model.cells[i + 1];
    if (nextCell) this.views.get(nextCell.ymodel as Y.Map<unknown>)?.focus();
    else if (this.editable()) this.append('code');
  }

  show(): void {
    this.element.hidden = false;
    this.nearView.attach(this.element);
  }

  hide(): void {
    this.element.hidden = true;
    this.model.awareness.setLocalStateField('cursor', null);
  }

  end(): void {
    this.ended = true;
    this.refresh();
  }

  fail(message: string): void {
    this.status.hidden = false;
    this.status.textContent = message;
    this.status.classList.add('error');
    this.end();
  }

  reveal(place: Place): void {
    if (this.element.hidden) return;
    const view = [...this.views.values()].find((v) => v.id === place.cell);
    view?.reveal(place.line);
  }

  destroy(): void {
    this.unlisten();
    this.nearView.destroy();
    for (const v of this.views.values()) v.destroy();
    this.views.clear();
    this.ctx.conns.close(this.provider);
    this.model.dispose();
  }
}

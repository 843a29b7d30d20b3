// A notebook: @jupyter/ydoc's YNotebook (the YNotebook layout: `meta` map, `cells`
// array) is the model. Each cell is a CodeMirror editor bound to the cell's `source`
// Y.Text; markdown cells are rendered (marked + DOMPurify) when not being edited;
// outputs are rendered read-only (see outputs.ts). Cell operations go through the
// model's own methods so that the document keeps JupyterLab's schema.
import * as Y from 'yjs';
import { YNotebook, type YCellType } from '@jupyter/ydoc';
import { EditorView, keymap } from '@codemirror/view';
import { Prec } from '@codemirror/state';
import type { WebsocketProvider } from 'y-websocket';
import type { FileInfo } from './api';
import { button, h } from './dom';
import { bindEditor, type BoundEditor } from './editor';
import { MARKDOWN, notebookLanguage } from './languages';
import type { LanguageDescription } from '@codemirror/language';
import { renderOutputs, type Output } from './outputs';
import { guardAwareness, safeColor } from './presence';
import { KernelPanel } from './kernel';
import { renderMarkdown, type Attachments } from './sanitize';
import { userState, type DocView, type Place, type ViewContext } from './views';

type CellType = 'code' | 'markdown' | 'raw';

interface RemoteUser {
  name: string;
  color: string;
}

class CellView {
  readonly element: HTMLElement;
  private readonly editor: BoundEditor;
  private readonly editorHost: HTMLElement;
  private readonly rendered: HTMLElement;
  private readonly outputs: HTMLElement;
  private readonly prompt: HTMLElement;
  private readonly presence: HTMLElement;
  private readonly toolbar: HTMLElement | null;
  private readonly typeSelect: HTMLSelectElement | null;
  private editing = false;
  private renderQueued = false;
  private dirtyOutputs = true;
  private dirtySource = true;
  private shownEditor: boolean | null = null;
  private readonly unobserve: () => void;

  constructor(readonly nb: NotebookView, readonly cell: YCellType) {
    const type = cell.cell_type as CellType;
    const ymodel = cell.ymodel;
    const ysource = ymodel.get('source') as Y.Text;
    this.prompt = h('div', { class: 'cell-prompt' });
    this.presence = h('div', { class: 'cell-presence' });
    this.editorHost = h('div', { class: 'cell-editor' });
    this.rendered = h('div', { class: 'cell-rendered markdown-body', tabindex: 0, title: nb.canEdit() ? 'Click to edit' : '' });
    this.outputs = h('div', { class: 'cell-outputs' });
    this.outputs.hidden = true;
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
    this.element = h('div', { class: `cell cell-${type}`, 'data-cell-id': String(ymodel.get('id') ?? ''), 'data-cell-type': type },
      h('div', { class: 'cell-gutter' }, this.prompt, this.presence),
      h('div', { class: 'cell-body' }, this.toolbar, this.editorHost, this.rendered, this.outputs));

    this.editor = bindEditor(this.editorHost, {
      ytext: ysource,
      awareness: nb.model.awareness,
      language: type === 'code' ? nb.codeLanguage() : type === 'markdown' ? MARKDOWN : null,
      editable: nb.editable(),
      kind: 'cell',
      wrap: type !== 'code',
      label: `${type} cell`,
      extra: [
        Prec.high(keymap.of([
          { key: 'Shift-Enter', run: () => { this.nb.next(this); return true; } },
          { key: 'Mod-Enter', run: () => { this.nb.run(this); return true; } },
          {
            key: 'Escape',
            run: () => {
              if (this.type !== 'markdown' || !this.editing) return false;
              this.stopEditing();
              this.rendered.focus();
              return true;
            },
          },
        ])),
        EditorView.updateListener.of((u) => {
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

    if (type === 'markdown') {
      this.rendered.addEventListener('click', (ev) => {
        if ((ev.target as HTMLElement).closest('a')) return;
        this.startEditing();
      });
      this.rendered.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') {
          ev.preventDefault();
          this.startEditing();
        }
      });
    }

    const observer = (events: Y.YEvent<any>[]) => {
      for (const ev of events) {
        if (ev.target === ymodel) {
          const keys = (ev as Y.YMapEvent<unknown>).keysChanged;
          if (keys.has('execution_count')) this.updatePrompt();
          if (keys.has('outputs')) this.dirtyOutputs = true;
          if (keys.has('attachments') || keys.has('source')) this.dirtySource = true;
        } else if (ev.path[0] === 'outputs') {
          this.dirtyOutputs = true;
        } else if (ev.path[0] === 'source' || ev.target === ysource) {
          this.dirtySource = true;
        } else if (ev.path[0] === 'attachments') {
          this.dirtySource = true;
        }
      }
      if ((this.dirtyOutputs && this.type === 'code') || (this.dirtySource && this.type === 'markdown')) this.queueRender();
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

  /** Show rendered markdown or the editor, and the outputs. */
  render(): void {
    if (this.type === 'code' && this.dirtyOutputs) {
      this.dirtyOutputs = false;
      const youtputs = this.cell.ymodel.get('outputs') as Y.Array<unknown> | undefined;
      renderOutputs(this.outputs, youtputs ? (youtputs.toJSON() as Output[]) : []);
    }
    if (this.type === 'markdown') {
      const source = this.cell.getSource();
      const showEditor = this.editing || (source.trim() === '' && this.nb.editable());
      this.editorHost.hidden = !showEditor;
      this.rendered.hidden = showEditor;
      if (!showEditor && (this.dirtySource || this.shownEditor !== false)) {
        this.dirtySource = false;
        const attachments = this.cell.ymodel.get('attachments') as Attachments;
        this.rendered.replaceChildren(source.trim() ? renderMarkdown(source, attachments) : h('p', { class: 'muted' }, '(empty)'));
      }
      this.shownEditor = showEditor;
      this.element.classList.toggle('editing', showEditor);
    }
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

  focus(): void {
    if (this.type === 'markdown' && !this.editing && this.nb.editable()) {
      this.editing = true;
      this.render();
    }
    if (!this.editorHost.hidden) this.editor.view.focus();
    this.element.scrollIntoView({ block: 'nearest' });
  }

  setEditable(on: boolean): void {
    this.editor.setEditable(on);
    if (!on) this.editing = false;
    this.render();
  }

  reveal(line: number | null | undefined): void {
    this.element.scrollIntoView({ block: 'center' });
    if (line && !this.editorHost.hidden) {
      const doc = this.editor.view.state.doc;
      const l = doc.line(Math.min(Math.max(1, line), doc.lines));
      this.editor.view.dispatch({ effects: EditorView.scrollIntoView(l.from, { y: 'nearest' }) });
    }
  }

  setPresence(users: RemoteUser[]): void {
    this.presence.replaceChildren(...users.map((u) => {
      const tag = h('span', { class: 'presence-tag', title: `${u.name} is here` }, u.name.slice(0, 1).toUpperCase());
      tag.style.backgroundColor = safeColor(u.color);
      return tag;
    }));
    this.element.classList.toggle('has-remote', users.length > 0);
    if (users.length) this.element.style.setProperty('--remote-color', safeColor(users[0].color));
  }

  get ysource(): Y.Text {
    return this.cell.ymodel.get('source') as Y.Text;
  }

  destroy(): void {
    this.unobserve();
    this.editor.destroy();
    this.element.remove();
  }
}

export class NotebookView implements DocView {
  readonly element: HTMLElement;
  readonly provider: WebsocketProvider;
  readonly model = new YNotebook();
  readonly kernel: KernelPanel;
  private readonly list: HTMLElement;
  private readonly status: HTMLElement;
  private readonly adders: HTMLElement | null;
  private views = new Map<Y.Map<unknown>, CellView>();
  private synced = false;
  private ended = false;
  private lang: LanguageDescription | null | undefined = undefined;
  private pendingFocus: string | null = null;

  constructor(readonly file: FileInfo, readonly ctx: ViewContext) {
    this.status = h('div', { class: 'doc-status' }, 'Loading…');
    this.list = h('div', { class: 'nb-cells' });
    this.adders = ctx.canEdit
      ? h('div', { class: 'nb-adders' },
        button('+ Code', 'Add a code cell at the end', 'nb-add-code', () => this.append('code')),
        button('+ Markdown', 'Add a Markdown cell at the end', 'nb-add-markdown', () => this.append('markdown')))
      : null;
    this.element = h('section', { class: 'doc doc-notebook', 'data-path': file.path, 'data-ready': 'false' },
      this.status, this.list, this.adders);
    this.element.hidden = true;
    if (this.adders) this.adders.hidden = true;
    guardAwareness(this.model.awareness);
    this.model.awareness.setLocalStateField('user', userState(ctx.identity, ctx.canEdit ? 'editor' : 'viewer'));
    this.model.changed.connect((_, change) => {
      if (change.cellsChange) this.reconcile();
    });
    this.model.awareness.on('change', () => this.updatePresence());
    this.provider = ctx.conns.open(file.room, this.model.ydoc, this.model.awareness);
    this.kernel = new KernelPanel(this.element, this.provider);
    this.element.insertBefore(this.kernel.element, this.list);
    this.provider.on('sync', (isSynced: boolean) => {
      if (isSynced && !this.synced) {
        this.synced = true;
        this.status.hidden = true;
        this.element.dataset.ready = 'true';
        this.refresh();
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
      next.set(key, this.views.get(key) ?? new CellView(this, cell));
    }
    for (const [key, view] of this.views) if (!next.has(key)) view.destroy();
    this.views = next;
    let i = 0;
    for (const view of next.values()) {
      const at = this.list.children[i];
      if (at !== view.element) this.list.insertBefore(view.element, at ?? null);
      view.element.dataset.index = String(i);
      i++;
    }
    this.element.dataset.cells = String(cells.length);
    if (this.pendingFocus) {
      const view = [...next.values()].find((v) => v.id === this.pendingFocus);
      if (view) {
        this.pendingFocus = null;
        view.focus();
      }
    }
    this.updatePresence();
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

  private insertAt(index: number, type: CellType): void {
    const cell = this.model.insertCell(index, type === 'code'
      ? { cell_type: 'code', source: '', metadata: {}, outputs: [], execution_count: null }
      : { cell_type: type, source: '', metadata: {} });
    const id = String(cell.ymodel.get('id') ?? '');
    const view = [...this.views.values()].find((v) => v.id === id);
    if (view) view.focus();
    else this.pendingFocus = id;
  }

  remove(view: CellView): void {
    if (!this.editable()) return;
    const i = this.indexOf(view);
    if (i < 0) return;
    this.model.deleteCell(i);
    const neighbour = this.model.cells[Math.min(i, this.model.cells.length - 1)];
    if (neighbour) this.views.get(neighbour.ymodel as Y.Map<unknown>)?.focus();
  }

  changeType(view: CellView, type: CellType): void {
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
    this.model.transact(() => {
      this.model.deleteCell(i);
      this.model.insertCell(i, cell as never);
    });
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

  private updatePresence(): void {
    const byText = new Map<Y.AbstractType<unknown>, RemoteUser[]>();
    const doc = this.model.ydoc;
    this.model.awareness.getStates().forEach((state, clientId) => {
      if (clientId === doc.clientID) return;
      const cursor = state.cursor as { head?: unknown } | null | undefined;
      const user = state.user as RemoteUser | undefined;
      if (!cursor?.head || !user) return;
      try {
        const pos = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(cursor.head), doc);
        if (!pos) return;
        const list = byText.get(pos.type) ?? [];
        list.push({ name: String(user.name ?? '?'), color: safeColor(user.color) });
        byText.set(pos.type, list);
      } catch {
        /* a cursor in a cell we have not received yet */
      }
    });
    for (const view of this.views.values()) view.setPresence(byText.get(view.ysource as Y.AbstractType<unknown>) ?? []);
  }

  show(): void {
    this.element.hidden = false;
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
    for (const v of this.views.values()) v.destroy();
    this.views.clear();
    this.ctx.conns.close(this.provider);
    this.model.dispose();
  }
}

// Open notebook merge conflicts: marked on their cells, both versions side by side, and
// keep mine / keep theirs / keep both.
//
// The server records a conflict (a diverged version of the notebook, e.g. a save on the
// owner's disk or in an `rtc join` folder, that nbdime could not merge cleanly) in the
// notebook doc's `state` map under `conflict:ID`: {cell, kind, mine, theirs, from, at}
// (gitrtc/conflicts.py). `mine` is the document's side, `theirs` the diverged version's.
// A choice is sent as the request `conflict.resolve {id, keep}`; the server applies it as
// the asker's own edit and removes the record, which removes the box here.
import type * as Y from 'yjs';
import { button, h } from './dom';
import type { RequestChannel } from './requests';

const PREFIX = 'conflict:';

interface Conflict {
  id: string;
  cell: string | null;
  kind: string;
  mine: unknown;
  theirs: unknown;
  from?: string;
}

/** Paints the open conflicts of one notebook view; `root` holds the `.cell` elements. */
export class ConflictPanel {
  readonly banner: HTMLElement;
  private readonly state: Y.Map<unknown>;
  private readonly observer: MutationObserver;
  private painting = false;

  constructor(
    private readonly root: HTMLElement,
    ydoc: Y.Doc,
    private readonly channel: RequestChannel,
    private readonly canEdit: boolean,
  ) {
    this.banner = h('div', { class: 'nb-conflicts', hidden: true });
    root.insertBefore(this.banner, root.firstChild);
    this.state = ydoc.getMap('state');
    this.state.observe(() => this.paint());
    // cells are (re)created by the notebook view: mark new ones as they appear. Only the
    // cell list's own children are watched: typing changes the DOM inside a cell on every
    // key, and a whole-notebook query per key would grow with the notebook
    this.observer = new MutationObserver(() => {
      if (!this.painting) this.paint();
    });
    const cells = root.querySelector('.nb-cells');
    this.observer.observe(cells ?? root, cells ? { childList: true } : { childList: true, subtree: true });
    this.paint();
  }

  conflicts(): Conflict[] {
    const out: Conflict[] = [];
    this.state.forEach((value, key) => {
      if (key.startsWith(PREFIX) && value && typeof value === 'object') {
        const v = value as Record<string, unknown>;
        out.push({
          id: key.slice(PREFIX.length),
          cell: typeof v.cell === 'string' ? v.cell : null,
          kind: String(v.kind ?? 'conflict'),
          mine: v.mine,
          theirs: v.theirs,
          from: typeof v.from === 'string' ? v.from : undefined,
        });
      }
    });
    return out;
  }

  private paint(): void {
    this.painting = true;
    try {
      const open = this.conflicts();
      const ids = new Set(open.map((c) => c.id));
      for (const box of this.root.querySelectorAll<HTMLElement>('.conflict-box')) {
        if (!ids.has(box.dataset.conflictId ?? '')) box.remove();
      }
      for (const cell of this.root.querySelectorAll<HTMLElement>('.cell.has-conflict')) {
        if (!cell.querySelector('.conflict-box')) cell.classList.remove('has-conflict');
      }
      const unplaced: Conflict[] = [];
      for (const c of open) {
        const cell = c.cell ? this.root.querySelector<HTMLElement>(`.cell[data-cell-id="${CSS.escape(c.cell)}"]`) : null;
        const host = cell ?? (c.cell ? null : this.banner);
        if (!host) {
          unplaced.push(c);
          continue;
        }
        if (!host.querySelector(`.conflict-box[data-conflict-id="${CSS.escape(c.id)}"]`)) host.append(this.box(c));
        cell?.classList.add('has-conflict');
      }
      for (const c of unplaced) {
        if (!this.banner.querySelector(`.conflict-box[data-conflict-id="${CSS.escape(c.id)}"]`)) this.banner.append(this.box(c));
      }
      this.banner.hidden = !this.banner.querySelector('.conflict-box');
      this.root.dataset.conflicts = String(open.length);
    } finally {
      this.observer.takeRecords();
      this.painting = false;
    }
  }

  private box(c: Conflict): HTMLElement {
    const message = h('div', { class: 'conflict-message' });
    const choose = async (keep: 'mine' | 'theirs' | 'both'): Promise<void> => {
      const answer = await this.channel.ask('conflict', 'resolve', { id: c.id, keep });
      message.textContent = answer.ok ? '' : String(answer.error ?? 'refused');
    };
    const buttons = this.canEdit
      ? h('div', { class: 'conflict-actions' },
        button('Keep mine', 'Keep this document’s version', 'conflict-keep-mine', () => void choose('mine')),
        button('Keep theirs', `Take the version from ${c.from ?? 'the other side'}`, 'conflict-keep-theirs', () => void choose('theirs')),
        button('Keep both', 'Keep both versions', 'conflict-keep-both', () => void choose('both')))
      : null;
    return h('div', { class: 'conflict-box', 'data-conflict-id': c.id, 'data-kind': c.kind },
      h('div', { class: 'conflict-title' }, `Merge conflict (${describe(c)}) with ${c.from ?? 'another version'}`),
      h('div', { class: 'conflict-sides' },
        h('div', { class: 'conflict-side conflict-mine' }, h('div', { class: 'conflict-label' }, 'Mine (this document)'),
          h('pre', {}, show(c.kind, c.mine))),
        h('div', { class: 'conflict-side conflict-theirs' }, h('div', { class: 'conflict-label' }, `Theirs (${c.from ?? 'other version'})`),
          h('pre', {}, show(c.kind, c.theirs)))),
      buttons, message);
  }
}

function describe(c: Conflict): string {
  if (c.kind === 'deleted') return c.mine === null || c.mine === undefined ? 'you deleted this cell, they edited it' : 'they deleted this cell, you edited it';
  if (c.kind === 'inserted') return 'both inserted cells here';
  return c.kind;
}

function show(kind: string, value: unknown): string {
  if (value === null || value === undefined) return kind === 'deleted' ? '(cell deleted)' : '(none)';
  if (typeof value === 'string') return value;
  if (kind === 'inserted' && Array.isArray(value)) return `${value.length} cell(s)`;
  return JSON.stringify(value, null, 1);
}

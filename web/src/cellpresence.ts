// Other people's cursors in a notebook, cell by cell. One listener on the notebook's
// awareness finds the cell (the `source` Y.Text) each remote cursor is in, and tells only
// the cells a change concerns: the one a cursor left, the one it moved in or came into.
// Each cell's editor gets a CellAwareness (what y-codemirror's yCollab reads) instead of
// the notebook's awareness: y-codemirror redraws its remote selections on *every* remote
// awareness change, so with the notebook's own awareness each built editor (8–14 near
// the visible area) redrew on every cursor move anywhere, and the gutters of all cells
// were looked at (issue 18: a keystroke must not pay for the other cells).
import * as Y from 'yjs';
import type { Awareness } from 'y-protocols/awareness';
import { safeColor } from './presence';

export type { Shared };

export interface RemoteUser {
  name: string;
  color: string;
}

/** a cell's source text, as Yjs positions name it */
type Shared = Y.AbstractType<any>;

type ChangeListener = (change: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => void;

/** The notebook's awareness as one cell's editor sees it: reading and setting states
 * goes to the notebook's awareness; 'change' fires only for cursors in or leaving this cell. */
export class CellAwareness {
  private readonly listeners = new Set<ChangeListener>();

  constructor(private readonly awareness: Awareness) {}

  get doc(): Y.Doc {
    return this.awareness.doc;
  }

  get clientID(): number {
    return this.awareness.clientID;
  }

  getLocalState(): Record<string, unknown> | null {
    return this.awareness.getLocalState();
  }

  setLocalStateField(field: string, value: unknown): void {
    this.awareness.setLocalStateField(field, value);
  }

  getStates(): Map<number, Record<string, unknown>> {
    return this.awareness.getStates();
  }

  on(name: string, listener: ChangeListener): void {
    if (name === 'change') this.listeners.add(listener);
  }

  off(_name: string, listener: ChangeListener): void {
    this.listeners.delete(listener);
  }

  /** Some of `clients`' cursors are in this cell or just left it. */
  changed(clients: number[]): void {
    for (const listener of [...this.listeners]) listener({ added: [], updated: clients, removed: [] }, 'remote');
  }

  get listening(): boolean {
    return this.listeners.size > 0;
  }
}

/** What CellPresence needs of a cell. */
export interface PresenceCell {
  readonly ysource: Y.Text;
  /** the editor's view of the awareness (made once per cell) */
  readonly cellAwareness: CellAwareness | null;
  /** the people whose cursor is in this cell (gutter) */
  setPresence(users: RemoteUser[]): void;
}

export class CellPresence {
  /** the text each remote client's cursor is in */
  private readonly where = new Map<number, Shared>();
  /** clients whose cursor points into text not received yet (awareness can overtake the edit) */
  private readonly unresolved = new Set<number>();
  /** cells whose gutter is redrawn at the next frame */
  private readonly pending = new Set<Shared>();
  private queued = false;

  constructor(
    private readonly awareness: Awareness,
    private readonly cellOf: (text: Shared) => PresenceCell | undefined,
  ) {
    awareness.on('change', ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }) => {
      this.moved([...added, ...updated], removed);
    });
    // a cursor that came before the text it points into is placed once the text is here
    awareness.doc.on('update', () => {
      if (this.unresolved.size) this.moved([...this.unresolved], []);
    });
  }

  /** The people whose cursor is in `text`. */
  usersIn(text: Shared): RemoteUser[] {
    const users: RemoteUser[] = [];
    const states = this.awareness.getStates();
    for (const [client, at] of this.where) {
      if (at !== text) continue;
      const user = states.get(client)?.user as { name?: unknown; color?: unknown } | undefined;
      if (user) users.push({ name: String(user.name ?? '?'), color: safeColor(user.color) });
    }
    return users;
  }

  private moved(changed: number[], removed: number[]): void {
    const me = this.awareness.clientID;
    const touched = new Map<Shared, number[]>();
    const touch = (text: Shared | undefined, client: number) => {
      if (!text) return;
      const list = touched.get(text) ?? [];
      list.push(client);
      touched.set(text, list);
    };
    for (const client of [...changed, ...removed]) {
      if (client === me) continue;
      touch(this.where.get(client), client);
      const now = removed.includes(client) ? null : this.locate(client);
      if (now) {
        this.where.set(client, now);
        touch(now, client);
      } else {
        this.where.delete(client);
      }
    }
    for (const [text, clients] of touched) {
      this.cellOf(text)?.cellAwareness?.changed(clients);
      this.pending.add(text);
    }
    if (this.pending.size) this.queue();
  }

  /** The text `client`'s cursor head is in (null: none, or not received yet). */
  private locate(client: number): Shared | null {
    this.unresolved.delete(client);
    const state = this.awareness.getStates().get(client);
    const cursor = state?.cursor as { head?: unknown } | null | undefined;
    if (!cursor?.head || !state?.user) return null;
    let pos: Y.AbsolutePosition | null = null;
    try {
      pos = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(cursor.head), this.awareness.doc);
    } catch {
      /* not a position in this document */
      return null;
    }
    if (!pos) this.unresolved.add(client);
    return pos?.type ?? null;
  }

  private queue(): void {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      for (const text of this.pending) this.cellOf(text)?.setPresence(this.usersIn(text));
      this.pending.clear();
    });
  }
}

// Counters of the notebook's per-cell work, for the browser tests (window.__gitrtcCounts):
// how often each cell (by id) was rendered, had its editor updated, or had its presence
// gutter redrawn, so a test can hold that a keystroke or a cursor move in one cell does
// no work in the others (issue 18). Always on: one Map increment per counted call.
export type CountKind = 'render' | 'editor' | 'presence';

const counts: Record<CountKind, Map<string, number>> = {
  render: new Map(),
  editor: new Map(),
  presence: new Map(),
};

export function count(kind: CountKind, cell: string): void {
  const m = counts[kind];
  m.set(cell, (m.get(cell) ?? 0) + 1);
}

(window as unknown as { __gitrtcCounts: unknown }).__gitrtcCounts = {
  /** {render: {cellId: n}, editor: {...}, presence: {...}} since the last reset */
  read: () => Object.fromEntries(Object.entries(counts).map(([k, m]) => [k, Object.fromEntries(m)])),
  reset: () => Object.values(counts).forEach((m) => m.clear()),
};

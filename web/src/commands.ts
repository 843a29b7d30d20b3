// Command mode of a notebook, with JupyterLab's keys. In command mode the focus is on a
// cell itself (not its editor); Enter edits it, Escape in an editor comes back here.
//   j/k ↓/↑ move, Shift-j/k Shift-↓/↑ (and Shift-click) select several cells,
//   a/b insert above/below, d d delete, z / Ctrl-Z undo and Shift-z / Ctrl-Shift-Z redo
//   (this person's own cell operations only), x/c/v/Shift-v cut/copy/paste cells
//   (between notebooks and tabs too), m/y/r Markdown/code/raw, Shift-m merge,
//   o collapse outputs, Shift-Enter / Ctrl-Enter run.
// Split at the cursor is Ctrl-Shift-Minus in edit mode (notebook.ts).

/** Cells copied or cut, as nbformat JSON (ids are dropped on paste). */
export type CellClipboard = Record<string, unknown>[];

const CLIPBOARD_KEY = 'gitrtc.cells';
let clipboard: CellClipboard | null = null;

/** Keep copied cells for this page and, through localStorage, for other tabs. */
export function setClipboard(cells: CellClipboard): void {
  clipboard = cells;
  try {
    localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(cells));
  } catch (err) {
    // too large for localStorage: this page still has them
    console.warn('gitrtc: copied cells are kept in this tab only', err);
  }
}

export function getClipboard(): CellClipboard | null {
  try {
    const stored = localStorage.getItem(CLIPBOARD_KEY);
    if (stored) {
      const cells = JSON.parse(stored) as unknown;
      if (Array.isArray(cells)) return cells.filter((c) => c && typeof c === 'object') as CellClipboard;
    }
  } catch (err) {
    console.warn('gitrtc: could not read the copied cells of other tabs', err);
  }
  return clipboard;
}

/** What command mode can do to a notebook (NotebookView). */
export interface CommandTarget {
  editable(): boolean;
  moveActive(delta: number, extend: boolean): void;
  editActive(): void;
  insertRelative(before: boolean): void;
  deleteSelected(): void;
  undo(): void;
  redo(): void;
  copySelected(cut: boolean): void;
  paste(before: boolean): void;
  setSelectedType(type: 'code' | 'markdown' | 'raw'): void;
  mergeSelected(): void;
  toggleOutputs(): void;
  runActive(advance: boolean): void;
  selectAll(): void;
  collapseSelection(): void;
}

let lastD = 0;

/** Handle one key in command mode; true when it was a command (the event is consumed). */
export function commandKey(ev: KeyboardEvent, nb: CommandTarget): boolean {
  const mod = ev.ctrlKey || ev.metaKey;
  // Shift-m is 'M' on a keyboard but may come as 'm' with shiftKey (synthetic events)
  const key = ev.shiftKey && /^[a-z]$/.test(ev.key) ? ev.key.toUpperCase() : ev.key;
  if (ev.altKey) return false;
  if (mod) {
    const k = key.toLowerCase();
    if (k === 'z' && !ev.shiftKey) nb.undo();
    else if ((k === 'z' && ev.shiftKey) || k === 'y') nb.redo();
    else if (k === 'c') nb.copySelected(false);
    else if (k === 'x') nb.copySelected(true);
    else if (k === 'v') nb.paste(false);
    else if (k === 'a') nb.selectAll();
    else if (key === 'Enter') nb.runActive(false);
    else return false;
    return true;
  }
  if (key !== 'd') lastD = 0;
  switch (key) {
    case 'Enter':
      if (ev.shiftKey) nb.runActive(true);
      else nb.editActive();
      return true;
    case 'Escape':
      nb.collapseSelection();
      return true;
    case 'j': case 'ArrowDown': nb.moveActive(1, ev.shiftKey); return true;
    case 'k': case 'ArrowUp': nb.moveActive(-1, ev.shiftKey); return true;
    case 'J': nb.moveActive(1, true); return true;
    case 'K': nb.moveActive(-1, true); return true;
    case 'a': nb.insertRelative(true); return true;
    case 'b': nb.insertRelative(false); return true;
    case 'd': {
      const now = Date.now();
      if (now - lastD < 1000) {
        lastD = 0;
        nb.deleteSelected();
      } else {
        lastD = now;
      }
      return true;
    }
    case 'z': nb.undo(); return true;
    case 'Z': nb.redo(); return true;
    case 'x': nb.copySelected(true); return true;
    case 'c': nb.copySelected(false); return true;
    case 'v': nb.paste(false); return true;
    case 'V': nb.paste(true); return true;
    case 'm': nb.setSelectedType('markdown'); return true;
    case 'y': nb.setSelectedType('code'); return true;
    case 'r': nb.setSelectedType('raw'); return true;
    case 'M': nb.mergeSelected(); return true;
    case 'o': case 'O': nb.toggleOutputs(); return true;
    default:
      return false;
  }
}

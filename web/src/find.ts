// Find and replace across a notebook (Ctrl-F), as in JupyterLab: every cell's source and
// the text of its outputs, in order. A match in a source is selected in the cell's
// editor (built for it if the cell has none yet: cellview.ts); a match in an output is
// highlighted there (CSS Custom Highlight API) and scrolled to. Sources are searched in
// the model (each cell's Y.Text), not the page, so cells without an editor are found too.
// Replace only touches sources, as an ordinary edit of this person (their text undo
// covers it), without building an editor for every cell it changes.
import { EditorSelection } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { button, h } from './dom';

/** A cell as find sees it (CellView). */
export interface FindCell {
  readonly id: string;
  readonly element: HTMLElement;
  /** the cell's editor (built when asked for) */
  readonly editorView: EditorView;
  readonly outputsElement: HTMLElement;
  /** the source, from the model */
  source(): string;
  /** replace ranges of the source with one text, as this person's edit */
  replaceSource(ranges: { from: number; to: number }[], insert: string): void;
  outputText(): string;
  startEditing(): void;
  setCollapsed(on: boolean): void;
  /** lay the cell out now (far off-screen cells are skipped: nearview.ts) */
  unhide(): void;
}

interface Match {
  cell: FindCell;
  where: 'source' | 'output';
  from: number;
  to: number;
  /** the text matched (a replacement checks it is still there) */
  text: string;
}

export class FindBar {
  readonly element: HTMLElement;
  private readonly query: HTMLInputElement;
  private readonly replacement: HTMLInputElement;
  private readonly count: HTMLElement;
  private readonly caseBox: HTMLInputElement;
  private matches: Match[] = [];
  private current = -1;

  constructor(private readonly cells: () => FindCell[], private readonly canEdit: () => boolean) {
    this.query = h('input', { type: 'search', class: 'find-query', placeholder: 'Find', 'aria-label': 'Find in the notebook' });
    this.replacement = h('input', { type: 'text', class: 'find-replacement', placeholder: 'Replace', 'aria-label': 'Replace with' });
    this.caseBox = h('input', { type: 'checkbox', class: 'find-case', title: 'Match case' });
    this.count = h('span', { class: 'find-count', role: 'status' });
    this.element = h('div', { class: 'find-bar', role: 'search' },
      this.query,
      h('label', { class: 'find-case-label', title: 'Match case' }, this.caseBox, 'Aa'),
      this.count,
      button('↑', 'Previous match (Shift-Enter)', 'find-prev', () => this.step(-1)),
      button('↓', 'Next match (Enter)', 'find-next', () => this.step(1)),
      this.replacement,
      button('Replace', 'Replace this match', 'find-replace', () => this.replaceOne()),
      button('All', 'Replace all matches in sources', 'find-replace-all', () => this.replaceAll()),
      button('✕', 'Close (Escape)', 'find-close', () => this.close()));
    this.element.hidden = true;
    this.query.addEventListener('input', () => { this.search(); this.step(1, true); });
    this.caseBox.addEventListener('change', () => { this.search(); this.step(1, true); });
    this.element.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        this.close();
      } else if (ev.key === 'Enter' && ev.target === this.query) {
        ev.preventDefault();
        this.search();
        this.step(ev.shiftKey ? -1 : 1);
      } else if (ev.key === 'Enter' && ev.target === this.replacement) {
        ev.preventDefault();
        this.replaceOne();
      }
    });
  }

  open(initial: string): void {
    this.element.hidden = false;
    this.replacement.hidden = !this.canEdit();
    for (const b of this.element.querySelectorAll<HTMLElement>('.find-replace, .find-replace-all')) b.hidden = !this.canEdit();
    if (initial && !initial.includes('\n')) this.query.value = initial;
    this.query.focus();
    this.query.select();
    if (this.query.value) {
      this.search();
      this.current = -1;
      this.showCount();
    }
  }

  close(): void {
    this.element.hidden = true;
    this.clearHighlight();
    const m = this.matches[this.current];
    this.matches = [];
    this.current = -1;
    if (m?.where === 'source') m.cell.editorView.focus();
    else m?.cell.element.focus();
  }

  /** Collect the matches of the query, cell by cell, sources before outputs. */
  private search(): void {
    const q = this.query.value;
    this.matches = [];
    if (!q) {
      this.showCount();
      return;
    }
    const fold = !this.caseBox.checked;
    const needle = fold ? q.toLowerCase() : q;
    const scan = (cell: FindCell, where: Match['where'], text: string) => {
      const hay = fold ? text.toLowerCase() : text;
      for (let at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + needle.length)) {
        this.matches.push({ cell, where, from: at, to: at + needle.length, text: text.slice(at, at + needle.length) });
      }
    };
    for (const cell of this.cells()) {
      scan(cell, 'source', cell.source());
      scan(cell, 'output', cell.outputText());
    }
    this.current = Math.min(this.current, this.matches.length - 1);
    this.showCount();
  }

  private showCount(): void {
    const n = this.matches.length;
    this.count.textContent = !this.query.value ? '' : n ? `${this.current >= 0 ? this.current + 1 : '?'} of ${n}` : 'no results';
    this.element.dataset.matches = String(n);
  }

  /** Go to the next (or previous) match; `stay`: the first at or after the current one. */
  step(delta: number, stay = false): void {
    if (!this.matches.length) {
      this.showCount();
      return;
    }
    const n = this.matches.length;
    this.current = stay ? Math.max(0, this.current) : (this.current + delta + n) % n;
    if (this.current < 0) this.current = delta > 0 ? 0 : n - 1;
    this.showCount();
    this.show(this.matches[this.current]);
  }

  private show(m: Match): void {
    this.clearHighlight();
    for (const el of document.querySelectorAll('.cell.find-current')) el.classList.remove('find-current');
    m.cell.element.classList.add('find-current');
    m.cell.unhide();
    if (m.where === 'source') {
      m.cell.startEditing();
      const view = m.cell.editorView;
      view.dispatch({ selection: EditorSelection.single(m.from, m.to), effects: EditorView.scrollIntoView(m.from, { y: 'center' }) });
      this.query.focus();
      return;
    }
    m.cell.setCollapsed(false);
    const range = textRange(m.cell.outputsElement, m.from, m.to);
    if (!range) return;
    const highlights = (CSS as unknown as { highlights?: Map<string, unknown> }).highlights;
    const Highlight = (window as unknown as { Highlight?: new (r: Range) => unknown }).Highlight;
    if (highlights && Highlight) highlights.set('gitrtc-find', new Highlight(range));
    // the match into the middle of the (scrolling) output box, and the box into view
    m.cell.element.scrollIntoView({ block: 'nearest' });
    const box = m.cell.outputsElement;
    const r = range.getBoundingClientRect();
    const b = box.getBoundingClientRect();
    box.scrollTop += r.top - b.top - b.height / 2;
    (range.startContainer.parentElement ?? box).scrollIntoView({ block: 'nearest' });
  }

  private clearHighlight(): void {
    (CSS as unknown as { highlights?: Map<string, unknown> }).highlights?.delete('gitrtc-find');
  }

  private replaceOne(): void {
    if (!this.canEdit()) return;
    const m = this.matches[this.current];
    if (!m || m.where !== 'source') {
      this.step(1);
      return;
    }
    if (m.cell.source().slice(m.from, m.to) === m.text) m.cell.replaceSource([m], this.replacement.value);
    this.search();
    this.current -= 1;
    this.step(1);
  }

  private replaceAll(): void {
    if (!this.canEdit()) return;
    this.search();
    const byCell = new Map<FindCell, Match[]>();
    for (const m of this.matches) {
      if (m.where !== 'source') continue;
      byCell.set(m.cell, [...(byCell.get(m.cell) ?? []), m]);
    }
    for (const [cell, ms] of byCell) cell.replaceSource(ms, this.replacement.value);
    this.search();
    this.current = -1;
    this.showCount();
  }
}

/** The DOM range of characters [from, to) of an element's text. */
function textRange(root: HTMLElement, from: number, to: number): Range | null {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  let at = 0;
  let started = false;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const len = n.nodeValue?.length ?? 0;
    if (!started && from < at + len) {
      range.setStart(n, from - at);
      started = true;
    }
    if (started && to <= at + len) {
      range.setEnd(n, to - at);
      return range;
    }
    at += len;
  }
  return null;
}

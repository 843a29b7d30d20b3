// Which notebook cells are near the visible part of the notebook, so that each cell's
// CodeMirror editor exists only while it can be seen (issue 18: building 464 editors at
// once took seconds, and every keystroke paid for all of them). Items within NEAR_PX of
// the visible area are built (a few per task, so typing and scrolling stay responsive);
// the others get the class FAR_CLASS (CSS: `content-visibility: hidden`, so the browser
// skips them entirely, keeping their last size: the cells between NEAR_PX and 3000 px
// still cost ~0.5 ms of every keystroke's frame under `content-visibility: auto`).
// Items more than FAR_PX away drop what they built (memory stays bounded however far one
// scrolls); between NEAR_PX and FAR_PX they keep it, hidden, for scrolling back.
//
// Not IntersectionObservers on every cell: the browser recomputes intersections after
// every frame that changed layout, i.e. on every keystroke, for every observed cell
// (about 3 ms per key for 464 cells and two observers on this machine; the same holds
// for `content-visibility: auto`'s own observer, which FAR_CLASS turns off far away).
// The cells are a vertical list in order, so a binary search over their boxes on scroll
// and resize (once per frame) finds the same.

/** A part of the page built lazily (a notebook cell: its editor). */
export interface LazyItem {
  readonly element: HTMLElement;
  /** it came near the visible area (true) or left it (false); must be cheap */
  nearChanged(near: boolean): void;
  /** build now (called while it is still near, a few items per task) */
  build(): void;
  /** it is far off-screen: drop what can be rebuilt (cheap when there is nothing) */
  drop(): void;
}

const NEAR_PX = 800;
const FAR_PX = 3000;
/** the class of items more than NEAR_PX away from the visible area */
export const FAR_CLASS = 'lazy-far';
/** building stops for this task once it took this long, and goes on in the next */
const BUDGET_MS = 8;

export class NearView {
  private items: LazyItem[] = [];
  private near = new Set<LazyItem>();
  private readonly queue = new Set<LazyItem>();
  private element: HTMLElement | null = null;
  private root: HTMLElement | null = null;
  private checkQueued = false;
  private buildQueued = false;
  private readonly onScroll = () => this.update();

  /** Start following the scrolling box around `element` (once it is in the page). */
  attach(element: HTMLElement): void {
    if (!element.isConnected) return;
    if (!this.element) {
      this.element = element;
      this.root = scrollParent(element);
      (this.root ?? window).addEventListener('scroll', this.onScroll, { passive: true });
      window.addEventListener('resize', this.onScroll, { passive: true });
    }
    this.update();
  }

  /** The items in page order (after cells were added, removed or moved). */
  setItems(items: LazyItem[]): void {
    const kept = new Set(items);
    for (const item of this.near) if (!kept.has(item)) this.near.delete(item);
    for (const item of this.queue) if (!kept.has(item)) this.queue.delete(item);
    this.items = items;
    this.update();
  }

  /** Look again after the next layout (the list or the scroll position changed). */
  update(): void {
    if (this.checkQueued || !this.element) return;
    this.checkQueued = true;
    requestAnimationFrame(() => {
      this.checkQueued = false;
      this.check();
    });
  }

  destroy(): void {
    (this.root ?? window).removeEventListener('scroll', this.onScroll);
    window.removeEventListener('resize', this.onScroll);
    this.element = null;
    this.items = [];
    this.near.clear();
    this.queue.clear();
  }

  private check(): void {
    const items = this.items;
    if (!this.element || this.element.hidden || !this.element.isConnected || !items.length) return;
    const view = this.root ? this.root.getBoundingClientRect() : { top: 0, bottom: window.innerHeight };
    const [first, last] = span(items, view.top - NEAR_PX, view.bottom + NEAR_PX);
    const [keepFirst, keepLast] = span(items, view.top - FAR_PX, view.bottom + FAR_PX);
    const near = new Set(items.slice(first, last));
    for (const item of this.near) {
      if (!near.has(item)) {
        item.nearChanged(false);
        this.queue.delete(item);
      }
    }
    for (const item of near) {
      if (!this.near.has(item)) {
        item.nearChanged(true);
        this.queue.add(item);
      }
    }
    this.near = near;
    const focused = document.activeElement;
    items.forEach((item, i) => {
      if (i < keepFirst || i >= keepLast) item.drop();
      // the cell being typed in stays shown wherever one scrolls
      item.element.classList.toggle(FAR_CLASS, (i < first || i >= last) && !item.element.contains(focused));
    });
    this.scheduleBuild();
  }

  private scheduleBuild(): void {
    if (this.buildQueued || !this.queue.size) return;
    this.buildQueued = true;
    setTimeout(() => this.drain(), 0);
  }

  private drain(): void {
    this.buildQueued = false;
    const start = performance.now();
    for (const item of this.queue) {
      this.queue.delete(item);
      item.build();
      if (performance.now() - start > BUDGET_MS) break;
    }
    // building changes heights: what is near may have changed
    if (!this.queue.size) this.update();
    this.scheduleBuild();
  }
}

/** The items [first, last) whose boxes meet the band from `top` to `bottom` (in page order). */
function span(items: LazyItem[], top: number, bottom: number): [number, number] {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].element.getBoundingClientRect().bottom < top) lo = mid + 1;
    else hi = mid;
  }
  const first = lo;
  hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].element.getBoundingClientRect().top <= bottom) lo = mid + 1;
    else hi = mid;
  }
  return [first, lo];
}

/** The nearest scrolling box around `element` (null: the viewport). */
function scrollParent(element: HTMLElement): HTMLElement | null {
  for (let el: HTMLElement | null = element; el && el !== document.body; el = el.parentElement) {
    const { overflowY } = getComputedStyle(el);
    if (overflowY === 'auto' || overflowY === 'scroll' || overflowY === 'overlay') return el;
  }
  return null;
}

// Which notebook cells are near the visible part of the notebook, so that each cell's
// CodeMirror editor exists only while it can be seen (issue 18: building 464 editors at
// once took seconds, and every keystroke paid for all of them). Two IntersectionObservers
// on the notebook's scrolling box: an item within NEAR_PX of the visible area is built
// (a few per task, so typing and scrolling stay responsive); an item beyond FAR_PX may
// drop what it built (memory stays bounded however far one scrolls).

/** A part of the page built lazily (a notebook cell: its editor). */
export interface LazyItem {
  readonly element: HTMLElement;
  /** it came near the visible area (true) or left it (false); must be cheap */
  nearChanged(near: boolean): void;
  /** build now (called while it is still near, a few items per task) */
  build(): void;
  /** it is far off-screen: drop what can be rebuilt */
  drop(): void;
}

const NEAR_PX = 800;
const FAR_PX = 4000;
/** building stops for this task once it took this long, and goes on in the next */
const BUDGET_MS = 8;

export class NearView {
  private near: IntersectionObserver | null = null;
  private far: IntersectionObserver | null = null;
  private readonly items = new Map<Element, LazyItem>();
  private readonly queue = new Set<LazyItem>();
  private scheduled = false;

  /** Start observing, relative to the scrolling box around `element` (once it is in the page). */
  attach(element: HTMLElement): void {
    if (this.near || !element.isConnected) return;
    const root = scrollParent(element);
    this.near = new IntersectionObserver((entries) => this.onNear(entries), { root, rootMargin: `${NEAR_PX}px 0px` });
    this.far = new IntersectionObserver((entries) => this.onFar(entries), { root, rootMargin: `${FAR_PX}px 0px` });
    for (const el of this.items.keys()) this.observe(el);
  }

  add(item: LazyItem): void {
    this.items.set(item.element, item);
    this.observe(item.element);
  }

  remove(item: LazyItem): void {
    this.items.delete(item.element);
    this.queue.delete(item);
    this.near?.unobserve(item.element);
    this.far?.unobserve(item.element);
  }

  destroy(): void {
    this.near?.disconnect();
    this.far?.disconnect();
    this.items.clear();
    this.queue.clear();
  }

  private observe(el: Element): void {
    this.near?.observe(el);
    this.far?.observe(el);
  }

  private onNear(entries: IntersectionObserverEntry[]): void {
    for (const entry of entries) {
      const item = this.items.get(entry.target);
      if (!item) continue;
      item.nearChanged(entry.isIntersecting);
      if (entry.isIntersecting) this.queue.add(item);
      else this.queue.delete(item);
    }
    this.schedule();
  }

  private onFar(entries: IntersectionObserverEntry[]): void {
    for (const entry of entries) {
      if (!entry.isIntersecting) this.items.get(entry.target)?.drop();
    }
  }

  private schedule(): void {
    if (this.scheduled || !this.queue.size) return;
    this.scheduled = true;
    setTimeout(() => this.drain(), 0);
  }

  private drain(): void {
    this.scheduled = false;
    const start = performance.now();
    for (const item of this.queue) {
      this.queue.delete(item);
      item.build();
      if (performance.now() - start > BUDGET_MS) break;
    }
    this.schedule();
  }
}

/** The nearest ancestor that scrolls (null: the viewport). */
function scrollParent(element: HTMLElement): HTMLElement | null {
  for (let el: HTMLElement | null = element; el && el !== document.body; el = el.parentElement) {
    const { overflowY } = getComputedStyle(el);
    if (overflowY === 'auto' || overflowY === 'scroll' || overflowY === 'overlay') return el;
  }
  return null;
}

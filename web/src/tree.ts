// The file tree: a cache of folders kept live by the session room's `files_changes`
// (`apply`). A small session's whole list comes with /api/session (`fill`); a large one
// (`lazy`) is listed from /api/tree one folder page at a time: the top level first, a
// folder when it is opened, its next page when the end of the list scrolls into view.
// A folder's entries become DOM only when it is open. Also the file actions (new file,
// new notebook, new folder, rename/move, delete) and quick-open (Ctrl-P, names found by
// the server's /api/tree?find=, at most 50 at a time).
import { fileOp, findFiles, listFolder, lookupFile, type BinaryInfo, type FileChange, type FileInfo } from './api';
import { button, h } from './dom';

/** One folder's direct entries as far as this page knows them. */
interface Folder {
  dirs: Set<string>;
  files: Map<string, FileInfo>;
  binaries: Map<string, BinaryInfo>;
  /** its first page (or the whole list) is here */
  loaded: boolean;
  /** where the server's next page starts; null when every entry is here */
  next: number | null;
  /** entries gone since the last page: the next one starts that much earlier (skipping none) */
  removed: number;
  loading: boolean;
}

function folder(loaded: boolean): Folder {
  return { dirs: new Set(), files: new Map(), binaries: new Map(), loaded, next: null, removed: 0, loading: false };
}

function parentOf(path: string): string {
  const cut = path.lastIndexOf('/');
  return cut < 0 ? '' : path.slice(0, cut);
}

/** Up to this many files every folder starts open; past it folders open when clicked. */
const OPEN_ALL_UP_TO = 300;
/** Entries asked for per folder page (the server allows up to 10,000). */
const PAGE = 200;

export interface TreeHost {
  canEdit: boolean;
  token: string;
  /** who asks (credited in the commit; their own open editor does not block a delete) */
  name: string;
  email: string;
  open(path: string): void;
  /** show a whole file (an image) */
  showBinary(path: string): void;
  current(): string | null;
  /** an operation's one-line error (or null to clear it) */
  say(message: string | null): void;
  /** the session room's `files_version` the page's list is at */
  version(): number;
  /** the tree was drawn again (the app puts who is where back on it) */
  rendered(): void;
}

export class FileTree {
  private readonly folders = new Map<string, Folder>();
  /** listed folder by folder from /api/tree (a large session) */
  private lazy = false;
  /** files in a small session's whole list */
  private count = 0;
  /** files found outside the listed folders (quick-open, a link, a file this page made) */
  private readonly known = new Map<string, FileInfo>();
  /** folders made in this page that hold no file yet (git keeps no empty folders) */
  private readonly newDirs = new Set<string>();
  /** each folder's list as drawn last (a folder's next page redraws only it) */
  private readonly lists = new Map<string, HTMLElement>();
  /** folders the person opened (kept open across re-renders) */
  private readonly openDirs = new Set<string>(['']);
  private readonly more: IntersectionObserver | null = typeof IntersectionObserver === 'undefined' ? null
    : new IntersectionObserver((seen) => {
      for (const e of seen) if (e.isIntersecting) void this.load((e.target as HTMLElement).dataset.more ?? '');
    });
  readonly toolbar: HTMLElement;
  private finder: HTMLElement | null = null;

  constructor(private readonly el: HTMLElement, private readonly host: TreeHost) {
    this.toolbar = h('div', { class: 'file-actions', role: 'toolbar', 'aria-label': 'File actions' });
    if (host.canEdit) {
      this.toolbar.append(
        button('+ File', 'New file', 'new-file', () => void this.create('text')),
        button('+ Notebook', 'New notebook', 'new-notebook', () => void this.create('notebook')),
        button('+ Folder', 'New folder', 'new-folder', () => this.newFolder()),
        button('Rename', 'Rename or move the open file', 'rename-file', () => void this.renameCurrent()),
        button('Delete', 'Delete the open file', 'delete-file', () => void this.deleteCurrent()),
      );
    }
    this.toolbar.append(button('Find…', 'Open a file by name (Ctrl-P)', 'quick-open-button', () => this.quickOpen()));
    window.addEventListener('keydown', (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && !ev.shiftKey && ev.key.toLowerCase() === 'p') {
        ev.preventDefault();
        this.quickOpen();
      }
    });
  }

  // ---- the cache ----------------------------------------------------------------

  /** A small session's whole list: every folder is here at once. */
  fill(files: FileInfo[], binaries: BinaryInfo[]): void {
    this.lazy = false;
    this.folders.clear();
    this.folders.set('', folder(true));
    for (const f of files) this.put(f.path, (d) => d.files.set(f.path, f));
    for (const b of binaries) this.put(b.path, (d) => d.binaries.set(b.path, b));
    this.count = files.length;
    this.render();
  }

  /** A large session (or a missed change in one): forget the listing and list again the
   * folders that are open, the top level first. */
  startLazy(): void {
    this.lazy = true;
    this.folders.clear();
    this.render();
  }

  /** The shared file at `path`, if this page knows it. */
  file(path: string): FileInfo | undefined {
    return this.folders.get(parentOf(path))?.files.get(path) ?? this.known.get(path);
  }

  binary(path: string): BinaryInfo | undefined {
    return this.folders.get(parentOf(path))?.binaries.get(path);
  }

  /** The shared file at `path`, asking the server when its folder is not listed here. */
  async find(path: string): Promise<FileInfo | null> {
    const have = this.file(path);
    if (have || !this.lazy) return have ?? null;
    const { files } = await lookupFile(this.host.token, path);
    const found = files.find((f) => f.path === path);
    if (found && !this.file(path)) this.known.set(path, found);
    return this.file(path) ?? null;
  }

  /** Apply one change of the live file set (the app renders after a batch). */
  apply(c: FileChange): void {
    if (c.op === 'binary' && c.digest) {
      const b = { path: c.path, type: c.type ?? 'application/octet-stream', digest: c.digest };
      this.put(c.path, (d) => d.binaries.set(c.path, b));
    } else if (c.op === 'add' && c.room) {
      const f = { path: c.path, kind: c.kind ?? 'text', room: c.room };
      this.count += 1;
      const listed = this.put(c.path, (d) => {
        if (!d.files.has(c.path)) d.files.set(c.path, f);
      });
      if (!listed && this.pending.some((p) => p.path === c.path)) this.known.set(c.path, f);
    } else if (c.op === 'remove') {
      if (this.take(c.path)) this.count -= 1;
    } else if (c.op === 'move' && c.from) {
      const was = this.take(c.from);
      const f = was ?? { path: c.path, kind: c.kind ?? 'text', room: c.room ?? '' };
      f.path = c.path;
      if (!this.put(c.path, (d) => d.files.set(c.path, f)) && was) this.known.set(c.path, f);
    }
  }

  /** Add an entry at `path` to its folder if that is listed here; each listed folder on
   * the way learns of the next one (a new subfolder of a fully listed folder is new:
   * fully listed, empty). Whether the entry is listed. */
  private put(path: string, add: (d: Folder) => void): boolean {
    const parts = path.split('/');
    for (let i = 0; i < parts.length - 1; i++) {
      const dir = parts.slice(0, i).join('/');
      const d = this.folders.get(dir);
      if (!d?.loaded || d.dirs.has(parts[i])) continue;
      d.dirs.add(parts[i]);
      const sub = dir ? `${dir}/${parts[i]}` : parts[i];
      if (d.next === null && !this.folders.has(sub)) this.folders.set(sub, folder(true));
    }
    const d = this.folders.get(parentOf(path));
    if (!d?.loaded) return false;
    add(d);
    return true;
  }

  /** Take the file or whole file at `path` out of the listing; the file it was. */
  private take(path: string): FileInfo | undefined {
    const dir = parentOf(path);
    const d = this.folders.get(dir);
    const was = d?.files.get(path) ?? this.known.get(path);
    this.known.delete(path);
    if (d?.loaded && (d.files.delete(path) || d.binaries.delete(path))) {
      d.removed += 1;
      this.prune(dir);
    }
    return was;
  }

  /** A fully listed folder left empty goes, and so on up (git keeps no empty folders;
   * the server lists none). */
  private prune(dir: string): void {
    while (dir) {
      const d = this.folders.get(dir);
      if (!d?.loaded || d.next !== null || d.dirs.size || d.files.size || d.binaries.size || this.madeIn(dir)) return;
      this.folders.delete(dir);
      const up = parentOf(dir);
      const parent = this.folders.get(up);
      if (parent?.dirs.delete(dir.slice(up ? up.length + 1 : 0))) parent.removed += 1;
      dir = up;
    }
  }

  /** Whether a folder made in this page (no file yet) is `dir` or lies in it. */
  private madeIn(dir: string): boolean {
    return [...this.newDirs].some((made) => made === dir || made.startsWith(`${dir}/`));
  }

  /** List `dir`'s first page, or its next one. */
  private async load(dir: string): Promise<void> {
    let d = this.folders.get(dir);
    if (!d) this.folders.set(dir, d = folder(false));
    if (d.loading || (d.loaded && d.next === null)) return;
    d.loading = true;
    try {
      const offset = d.loaded ? Math.max((d.next ?? 0) - d.removed, 0) : 0;
      let page = await listFolder(this.host.token, dir, offset, PAGE);
      // read before a change this page has applied: it could bring back what went
      for (let tries = 0; page.version < this.host.version() && tries < 5; tries++) {
        page = await listFolder(this.host.token, dir, offset, PAGE);
      }
      if (this.folders.get(dir) !== d) return; // listed again meanwhile
      for (const name of page.folders) d.dirs.add(name);
      for (const f of page.files) if (!d.files.has(f.path)) d.files.set(f.path, this.known.get(f.path) ?? f);
      for (const b of page.binaries ?? []) d.binaries.set(b.path, b);
      d.loaded = true;
      d.next = typeof page.next === 'number' ? page.next : null;
      d.removed = 0;
      this.prune(dir); // a folder emptied before this page knew it
    } catch (err) {
      this.host.say(err instanceof Error ? err.message : String(err));
      return;
    } finally {
      d.loading = false;
    }
    const shown = this.lists.get(dir);
    if (dir && shown?.isConnected && this.folders.get(dir) === d) {
      // draw this folder again, not the whole tree (which may hold thousands of entries)
      const top = this.el.scrollTop;
      shown.replaceWith(this.build(dir));
      this.el.scrollTop = top;
      this.host.rendered();
    } else {
      this.render();
    }
    this.listed();
  }

  // ---- the DOM ------------------------------------------------------------------

  render(): void {
    const top = this.el.scrollTop;
    this.more?.disconnect();
    this.lists.clear();
    const cur = this.host.current();
    // the open file's folders open: list them all at once, not one after the other
    for (let dir = cur && this.lazy && this.file(cur) ? parentOf(cur) : ''; dir; dir = parentOf(dir)) {
      if (!this.folders.get(dir)?.loaded) void this.load(dir);
    }
    const root = this.folders.get('');
    const empty = root?.loaded && !root.dirs.size && !root.files.size && !root.binaries.size && !this.newDirs.size;
    this.el.replaceChildren(empty ? h('p', { class: 'muted' }, 'No files are shared.') : this.build(''));
    this.el.scrollTop = top;
    this.host.rendered();
  }

  private build(dir: string): HTMLElement {
    const ul = h('ul', { role: 'group' });
    this.lists.set(dir, ul);
    let d = this.folders.get(dir);
    if (!d && !this.lazy) this.folders.set(dir, d = folder(true)); // the whole list is here: a new folder
    if (!d?.loaded) {
      ul.appendChild(h('li', { class: 'muted loading' }, 'Loading…'));
      void this.load(dir);
      return ul;
    }
    const prefix = dir ? `${dir}/` : '';
    const names = new Set(d.dirs);
    for (const made of this.newDirs) {
      if (made.startsWith(prefix)) names.add(made.slice(prefix.length).split('/')[0]);
    }
    for (const name of [...names].sort((a, b) => a.localeCompare(b))) {
      const path = prefix + name;
      const summary = h('summary', { 'data-dir': path }, `${name}/`);
      const details = h('details', null, summary);
      let built = false;
      const fill = () => {
        if (!built && details.open) {
          built = true;
          details.appendChild(this.build(path));
        }
      };
      details.addEventListener('toggle', () => {
        if (details.open) this.openDirs.add(path);
        else this.openDirs.delete(path);
        fill();
      });
      if (this.openDirs.has(path) || this.within(path) || (!this.lazy && this.count <= OPEN_ALL_UP_TO)) {
        details.open = true;
        fill();
      }
      ul.appendChild(h('li', { class: 'dir' }, details));
    }
    for (const f of [...d.files.values()].sort((a, b) => a.path.localeCompare(b.path))) {
      const name = f.path.split('/').pop() ?? f.path;
      const current = this.host.current() === f.path;
      const a = h('a', {
        href: '#', class: `file file-${f.kind}${current ? ' active' : ''}`, 'data-path': f.path, title: f.path,
        'aria-current': current ? 'page' : null,
      }, h('span', { class: 'file-icon', 'aria-hidden': 'true' }), h('span', { class: 'file-name' }, name),
      h('span', { class: 'file-peers' }));
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        this.host.open(f.path);
      });
      ul.appendChild(h('li', null, a));
    }
    for (const b of [...d.binaries.values()].sort((x, y) => x.path.localeCompare(y.path))) {
      const a = h('a', { href: '#', class: `file file-binary${b.type.startsWith('image/') ? ' file-image' : ''}`, 'data-path': b.path, title: b.path },
        h('span', { class: 'file-icon', 'aria-hidden': 'true' }), h('span', { class: 'file-name' }, b.path.split('/').pop() ?? b.path));
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        this.host.showBinary(b.path);
      });
      ul.appendChild(h('li', null, a));
    }
    if (d.next !== null) {
      // the rest of a long folder: listed when this comes into view (or is clicked)
      const more = h('li', { class: 'more', 'data-more': dir },
        button('More…', `List more of ${dir || 'the top folder'}`, 'more-files', () => void this.load(dir)));
      this.more?.observe(more);
      ul.appendChild(more);
    }
    return ul;
  }

  /** Whether the open file lies in `dir` (its folders open themselves). */
  private within(dir: string): boolean {
    const cur = this.host.current();
    return !!cur && cur.startsWith(dir + '/');
  }

  /** The folder new files go to: the open file's, else the first shared folder's. */
  private here(): string {
    const cur = this.host.current();
    if (cur && cur.includes('/')) return cur.slice(0, cur.lastIndexOf('/') + 1);
    const dir = [...this.newDirs][0];
    return dir ? `${dir}/` : '';
  }

  private async run(body: Record<string, unknown>): Promise<Record<string, unknown> | null> {
    try {
      const answer = await fileOp(this.host.token, { ...body, name: this.host.name, email: this.host.email });
      this.host.say(null);
      return answer;
    } catch (err) {
      this.host.say(err instanceof Error ? err.message : String(err));
      return null;
    }
  }

  async create(kind: 'text' | 'notebook'): Promise<void> {
    const suggested = this.here() + (kind === 'notebook' ? 'Untitled.ipynb' : 'untitled.md');
    const path = window.prompt(kind === 'notebook' ? 'New notebook (path)' : 'New file (path)', suggested);
    if (!path) return;
    const done = await this.run({ op: 'create', path, kind });
    if (done && typeof done.path === 'string') {
      const made = done.path;
      for (const dir of [...this.newDirs]) if (made.startsWith(dir + '/')) this.newDirs.delete(dir);
      // the session room announces it too; open it as soon as the list has it
      this.afterListed(made, () => this.host.open(made));
    }
  }

  private pending: Array<{ path: string; then: () => void }> = [];

  private afterListed(path: string, then: () => void): void {
    if (this.file(path)) {
      then();
      return;
    }
    this.pending.push({ path, then });
    if (this.lazy) void this.find(path).then(() => this.listed()); // its folder may not be listed here
  }

  /** The app calls this after applying a change of the list. */
  listed(): void {
    const ready = this.pending.filter((p) => this.file(p.path));
    this.pending = this.pending.filter((p) => !ready.includes(p));
    for (const p of ready) p.then();
  }

  newFolder(): void {
    const path = window.prompt('New folder (path)', this.here() + 'folder');
    if (!path) return;
    const clean = path.replace(/^\/+|\/+$/g, '');
    if (!clean) return;
    this.newDirs.add(clean);
    this.openDirs.add(clean);
    this.render();
  }

  async renameCurrent(): Promise<void> {
    const cur = this.host.current();
    if (!cur) {
      this.host.say('Open the file to rename first.');
      return;
    }
    const to = window.prompt(`Rename or move ${cur} to`, cur);
    if (!to || to === cur) return;
    await this.run({ op: 'rename', path: cur, to });
  }

  async deleteCurrent(): Promise<void> {
    const cur = this.host.current();
    if (!cur) {
      this.host.say('Open the file to delete first.');
      return;
    }
    if (!window.confirm(`Delete ${cur}? Its last version is kept in the session folder.`)) return;
    await this.run({ op: 'delete', path: cur });
  }

  /** Open a file quick-open found (its folder may not be listed here). */
  private chose(f: FileInfo): void {
    if (!this.file(f.path)) this.known.set(f.path, f);
    this.host.open(f.path);
  }

  /** Ctrl-P: type part of a name, Enter opens the first match. */
  quickOpen(): void {
    if (this.finder) {
      (this.finder.querySelector('input') as HTMLInputElement).focus();
      return;
    }
    const input = h('input', { type: 'search', class: 'quick-open-input', placeholder: 'Open a file by name…', 'aria-label': 'File name' });
    const list = h('ul', { class: 'quick-open-list', role: 'listbox' });
    const box = h('div', { class: 'quick-open', role: 'dialog', 'aria-label': 'Quick open' }, input, list);
    this.finder = box;
    let found: FileInfo[] = [];
    let more = false;
    let asked = 0;
    const close = () => {
      box.remove();
      this.finder = null;
    };
    const show = () => {
      list.replaceChildren(...found.map((f, i) => {
        const li = h('li', { role: 'option', class: i === 0 ? 'chosen' : null, 'data-path': f.path }, f.path);
        li.addEventListener('mousedown', (ev) => {
          ev.preventDefault();
          close();
          this.chose(f);
        });
        return li;
      }));
      if (more) list.appendChild(h('li', { class: 'quick-open-more muted' }, 'More files match: type more of the name'));
    };
    input.addEventListener('input', () => {
      const q = input.value.trim();
      const mine = ++asked;
      if (!q) {
        found = [];
        more = false;
        show();
        return;
      }
      void findFiles(this.host.token, q).then((answer) => {
        if (mine !== asked) return; // a later query is on its way
        ({ files: found, more } = answer);
        show();
      }).catch((err: unknown) => this.host.say(err instanceof Error ? err.message : String(err)));
    });
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') close();
      if (ev.key === 'Enter' && found.length) {
        close();
        this.chose(found[0]);
      }
    });
    input.addEventListener('blur', () => setTimeout(close, 150));
    document.body.appendChild(box);
    input.focus();
  }
}

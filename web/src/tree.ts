// The file tree: folders built lazily (a folder's entries become DOM only when it is
// opened, so a 100,000-file session shows at once), the file actions (new file, new
// notebook, new folder, rename/move, delete) and quick-open (Ctrl-P, names found by the
// server's /api/tree?find=). The list itself is live: the app applies the session
// room's `files_changes` and calls `render` again.
import { fileOp, findFiles, type BinaryInfo, type FileInfo } from './api';
import { button, h } from './dom';

interface Dir { dirs: Map<string, Dir>; files: FileInfo[]; binaries: BinaryInfo[] }

/** Up to this many files every folder starts open; past it folders open when clicked. */
const OPEN_ALL_UP_TO = 300;

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
}

export class FileTree {
  private files: FileInfo[] = [];
  /** folders made in this page that hold no file yet (git keeps no empty folders) */
  private readonly newDirs = new Set<string>();
  /** folders the person opened (kept open across re-renders) */
  private readonly openDirs = new Set<string>(['']);
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

  private binaries: BinaryInfo[] = [];

  render(files: FileInfo[], binaries: BinaryInfo[] = this.binaries): void {
    this.files = files;
    this.binaries = binaries;
    const root: Dir = { dirs: new Map(), files: [], binaries: [] };
    const folder = (path: string): Dir => {
      let d = root;
      for (const part of path ? path.split('/') : []) {
        if (!d.dirs.has(part)) d.dirs.set(part, { dirs: new Map(), files: [], binaries: [] });
        d = d.dirs.get(part)!;
      }
      return d;
    };
    for (const dir of this.newDirs) folder(dir);
    for (const f of files) {
      const cut = f.path.lastIndexOf('/');
      folder(cut < 0 ? '' : f.path.slice(0, cut)).files.push(f);
    }
    for (const b of binaries) {
      const cut = b.path.lastIndexOf('/');
      folder(cut < 0 ? '' : b.path.slice(0, cut)).binaries.push(b);
    }
    this.el.replaceChildren(files.length || binaries.length || this.newDirs.size ? this.build(root, '') : h('p', { class: 'muted' }, 'No files are shared.'));
  }

  private build(d: Dir, prefix: string): HTMLElement {
    const ul = h('ul', { role: 'group' });
    for (const name of [...d.dirs.keys()].sort((a, b) => a.localeCompare(b))) {
      const sub = d.dirs.get(name)!;
      const path = prefix + name;
      const summary = h('summary', { 'data-dir': path }, `${name}/`);
      const details = h('details', null, summary);
      let built = false;
      const fill = () => {
        if (!built && details.open) {
          built = true;
          details.appendChild(this.build(sub, path + '/'));
        }
      };
      details.addEventListener('toggle', () => {
        if (details.open) this.openDirs.add(path);
        else this.openDirs.delete(path);
        fill();
      });
      if (this.openDirs.has(path) || this.within(path) || this.files.length <= OPEN_ALL_UP_TO) {
        details.open = true;
        fill();
      }
      ul.appendChild(h('li', { class: 'dir' }, details));
    }
    for (const f of [...d.files].sort((a, b) => a.path.localeCompare(b.path))) {
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
    for (const b of [...d.binaries].sort((x, y) => x.path.localeCompare(y.path))) {
      const a = h('a', { href: '#', class: `file file-binary${b.type.startsWith('image/') ? ' file-image' : ''}`, 'data-path': b.path, title: b.path },
        h('span', { class: 'file-icon', 'aria-hidden': 'true' }), h('span', { class: 'file-name' }, b.path.split('/').pop() ?? b.path));
      a.addEventListener('click', (ev) => {
        ev.preventDefault();
        this.host.showBinary(b.path);
      });
      ul.appendChild(h('li', null, a));
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
    if (this.files.some((f) => f.path === path)) then();
    else this.pending.push({ path, then });
  }

  /** The app calls this after applying a change of the list. */
  listed(): void {
    const ready = this.pending.filter((p) => this.files.some((f) => f.path === p.path));
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
    this.render(this.files);
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
          this.host.open(f.path);
        });
        return li;
      }));
    };
    input.addEventListener('input', () => {
      const q = input.value.trim();
      const mine = ++asked;
      if (!q) {
        found = [];
        show();
        return;
      }
      void findFiles(this.host.token, q).then((files) => {
        if (mine !== asked) return; // a later query is on its way
        found = files;
        show();
      }).catch((err: unknown) => this.host.say(err instanceof Error ? err.message : String(err)));
    });
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') close();
      if (ev.key === 'Enter' && found.length) {
        close();
        this.host.open(found[0].path);
      }
    });
    input.addEventListener('blur', () => setTimeout(close, 150));
    document.body.appendChild(box);
    input.focus();
  }
}

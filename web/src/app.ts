// The page: header (session, connection, role), sidebar (files, participants), the
// open document, and the end-of-session state.
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import { fetchRaw, fetchSession, fragmentParams, roomsUrl, type FileChange, type FileInfo, type SessionInfo } from './api';
import { CLOSE } from './closecodes';
import { Connections, type Terminal } from './connection';
import { button, h } from './dom';
import { askIdentity, storedIdentity, type Identity } from './identity';
import { guardAwareness, safeColor } from './presence';
import './builtinviews';
import { TextView } from './textview';
import { FileTree } from './tree';
import { userState, viewFor, type DocView, type Place, type ViewContext } from './views';

interface PeerState {
  user?: { name?: string; color?: string; sid?: string; role?: string };
  place?: Place | null;
  /** set by clients other than this page (`rtc join` mirrors a folder: no file open here) */
  client?: string;
}

interface EndInfo {
  commit: string | null;
  branch: string | null;
  message: string | null;
}

const CONN_TEXT: Record<string, string> = {
  connecting: 'Connecting…',
  online: 'Connected',
  offline: 'Offline — reconnecting; your edits are kept',
  closed: 'Disconnected',
};

export class App {
  private readonly conns: Connections;
  private readonly views = new Map<string, DocView>();
  private current: DocView | null = null;
  private opening: string | null = null;
  private readonly loading = new Map<string, Promise<DocView>>();
  private following: string | null = null;
  private ended = false;
  private readonly sessionDoc = new Y.Doc();
  private readonly sessionAwareness = new Awareness(this.sessionDoc);
  private readonly canEdit: boolean;
  private place: Place | null = null;
  private placeTimer: number | null = null;

  // layout
  private readonly connEl = h('span', { class: 'conn', 'data-state': 'connecting', role: 'status' });
  private readonly stateEl = h('div', { class: 'banner', role: 'status' });
  private readonly treeEl = h('nav', { class: 'files', 'aria-label': 'Shared files' });
  private readonly peopleEl = h('ul', { class: 'people', 'aria-label': 'Participants' });
  private readonly docsEl = h('main', { class: 'docs' });
  private readonly emptyEl = h('div', { class: 'empty' }, 'Choose a file on the left.');
  private readonly titleEl = h('span', { class: 'doc-title' });
  private readonly sidebar: HTMLElement;
  private readonly tree: FileTree;
  private readonly fileMsg = h('p', { class: 'file-message', role: 'alert' });
  /** the session room's `files_version` this page's list is at */
  private filesVersion: number;
  private refetching = false;
  private readonly binaryEl = h('div', { class: 'binary-view' });
  private binaryShown: string | null = null;
  private binaryUrl: string | null = null;

  constructor(
    root: HTMLElement,
    private readonly info: SessionInfo,
    private readonly identity: Identity,
    private readonly token: string,
  ) {
    this.canEdit = info.role === 'editor' || info.role === 'owner';
    this.filesVersion = info.files_version ?? 0;
    this.fileMsg.hidden = true;
    this.tree = new FileTree(this.treeEl, {
      canEdit: this.canEdit,
      token,
      name: identity.name,
      email: identity.email ?? '',
      open: (path) => {
        this.following = null;
        void this.open(path);
        document.body.classList.remove('sidebar-open');
      },
      current: () => this.binaryShown ?? this.current?.file.path ?? this.opening,
      showBinary: (path) => void this.showBinary(path),
      say: (message) => {
        this.fileMsg.textContent = message ?? '';
        this.fileMsg.hidden = !message;
      },
      version: () => this.filesVersion,
      rendered: () => this.paintTreePeers(),
    });
    this.conns = new Connections(roomsUrl(), token, identity);
    this.conns.onChange(() => this.updateConn());
    this.conns.onTerminal((t) => this.onTerminal(t));
    this.conns.onRefused(({ reason }) => {
      // a change the server would not accept (it would make the file unwritable): ours only
      if (reason.startsWith('invalid-edit: ')) {
        this.showBanner('error', `Your last change was not accepted: ${reason.slice(14)}. `
          + 'Reload the page to continue from the shared version.', true);
      }
    });

    const menu = button('☰', 'Show or hide the file list', 'menu-toggle', () => document.body.classList.toggle('sidebar-open'));
    const me = button(identity.name, 'Change your display name', 'me', () => this.rename());
    me.style.setProperty('--user-color', identity.color);
    const header = h('header', { class: 'top' },
      menu,
      h('span', { class: 'brand' }, 'gitrtc'),
      info.branch ? h('span', { class: 'branch', title: 'Branch the session commits to' }, info.branch) : null,
      this.titleEl,
      h('span', { class: 'spacer' }),
      this.canEdit ? null : h('span', { class: 'badge viewonly', title: 'Your link lets you watch, not edit' }, 'view only'),
      this.connEl,
      me);
    this.sidebar = h('aside', { class: 'sidebar' },
      h('h2', null, 'Files'), this.tree.toolbar, this.fileMsg, this.treeEl,
      h('h2', null, 'People'), this.peopleEl);
    this.docsEl.appendChild(this.emptyEl);
    this.binaryEl.hidden = true;
    this.docsEl.appendChild(this.binaryEl);
    root.replaceChildren(header, this.stateEl, h('div', { class: 'layout' }, this.sidebar, this.docsEl));
    this.stateEl.hidden = true;
    document.body.dataset.role = info.role;
    document.body.dataset.session = 'live';
    if (info.lazy) this.tree.startLazy(); // a large session: folders listed as they open
    else this.tree.fill(info.files, info.binaries ?? []);

    guardAwareness(this.sessionAwareness);
    this.sessionAwareness.setLocalState({ user: userState(identity, info.role), file: null, place: null });
    this.sessionAwareness.on('change', () => this.onPeers());
    if (info.session_room) {
      const map = this.sessionDoc.getMap('session');
      map.observe(() => this.onSessionMap());
      this.conns.open(info.session_room, this.sessionDoc, this.sessionAwareness);
    }
    this.onPeers();
    this.updateConn();
    window.addEventListener('hashchange', () => this.openFromHash());
    // edits made while offline live only in this page until the connection is back
    window.addEventListener('beforeunload', (ev) => {
      if (!this.ended && this.conns.overall === 'offline') ev.preventDefault();
    });
    if (info.state === 'ended') this.end({ commit: null, branch: info.branch ?? null, message: null });
    if (!this.openFromHash() && info.files.length === 1) void this.open(info.files[0].path);
  }

  private ctx(): ViewContext {
    return {
      conns: this.conns,
      identity: this.identity,
      canEdit: this.canEdit,
      onPlace: (place) => this.setPlace(place),
      onState: () => this.updateConn(),
    };
  }

  // ---- files --------------------------------------------------------------

  private renderTree(): void {
    this.tree.render();
  }

  /** Show a whole file: an image rendered, anything else as a download. */
  private async showBinary(path: string): Promise<void> {
    const b = this.tree.binary(path);
    if (!b) return;
    this.current?.hide();
    this.current = null;
    this.opening = null;
    this.emptyEl.hidden = true;
    this.binaryShown = path;
    this.titleEl.textContent = path;
    let blob: Blob;
    try {
      blob = await fetchRaw(this.token, path);
    } catch (err) {
      this.binaryEl.replaceChildren(h('p', { class: 'muted' }, err instanceof Error ? err.message : String(err)));
      this.binaryEl.hidden = false;
      return;
    }
    if (this.binaryShown !== path) return;
    if (this.binaryUrl) URL.revokeObjectURL(this.binaryUrl);
    this.binaryUrl = URL.createObjectURL(blob);
    const name = path.split('/').pop() ?? path;
    this.binaryEl.replaceChildren(b.type.startsWith('image/')
      ? h('img', { src: this.binaryUrl, alt: path, class: 'binary-image', 'data-digest': b.digest })
      : h('a', { href: this.binaryUrl, download: name, class: 'binary-download' }, `Download ${name}`));
    this.binaryEl.hidden = false;
    this.renderTree();
  }

  /** The session room says the file list changed: apply the announced changes, or
   * fetch the list again when this page missed one. */
  private onFiles(map: Y.Map<unknown>): void {
    const version = map.get('files_version');
    if (typeof version !== 'number' || version <= this.filesVersion) return;
    const news = map.get('files_changes') as { version?: number; changes?: FileChange[]; truncated?: boolean } | undefined;
    if (news && news.version === version && version === this.filesVersion + 1 && !news.truncated && Array.isArray(news.changes)) {
      this.filesVersion = version;
      for (const c of news.changes) this.applyFileChange(c);
      this.renderTree();
      this.tree.listed();
      this.onPeers();
      return;
    }
    void this.refetchFiles();
  }

  private applyFileChange(c: FileChange): void {
    this.tree.apply(c);
    if (c.op === 'binary' && this.binaryShown === c.path) void this.showBinary(c.path); // replaced: show the new bytes
    if (c.op === 'move' && c.from) this.moved(c.room ?? null, c.from, c.path);
  }

  /** A file moved: its view (same room, same document) follows it. */
  private moved(room: string | null, from: string, to: string): void {
    const view = this.views.get(from) ?? [...this.views.values()].find((v) => room !== null && v.file.room === room);
    if (view) {
      this.views.delete(view.file.path === to ? from : view.file.path);
      view.file.path = to;
      this.views.set(to, view);
    }
    if (this.opening === from) this.opening = to;
    if (view && this.current === view) {
      this.titleEl.textContent = to;
      document.title = `${to.split('/').pop()} — gitrtc`;
      const params = fragmentParams();
      params.set('f', to);
      history.replaceState(null, '', `#${params.toString()}`);
      this.setPlace({ file: to });
    }
  }

  private async refetchFiles(): Promise<void> {
    if (this.refetching) return;
    this.refetching = true;
    try {
      const fresh = await fetchSession(this.token);
      this.filesVersion = fresh.files_version ?? this.filesVersion;
      if (fresh.lazy) {
        this.tree.startLazy(); // an open file moved meanwhile keeps its old name here
      } else {
        const byRoom = new Map(fresh.files.map((f) => [f.room, f]));
        for (const view of [...this.views.values()]) {
          const now = byRoom.get(view.file.room);
          if (now && now.path !== view.file.path) this.moved(view.file.room, view.file.path, now.path);
        }
        this.tree.fill(fresh.files, fresh.binaries ?? []);
      }
      this.tree.listed();
      this.onPeers();
    } catch {
      /* the connection state shows the trouble; the next change tries again */
    } finally {
      this.refetching = false;
    }
    const again = this.sessionDoc.getMap('session').get('files_version');
    if (typeof again === 'number' && again > this.filesVersion) void this.refetchFiles();
  }

  private openFromHash(): boolean {
    const path = fragmentParams().get('f');
    // a large session's file may lie in a folder not listed yet: `open` asks the server
    if (path && (this.tree.file(path) || this.info.lazy)) {
      if (this.current?.file.path !== path) void this.open(path, false);
      return true;
    }
    return false;
  }

  private async makeView(file: FileInfo): Promise<DocView> {
    // every kind's view is registered (views.ts): the built-ins in builtinviews.ts, a
    // plugin kind's from the module URL /api/session names (a separate chunk)
    let make = viewFor(file.kind);
    if (!make) {
      const { PluginView, registerPluginKinds } = await import('./pluginview');
      registerPluginKinds(this.info.plugins?.kinds);
      make = viewFor(file.kind) ?? (async (f, ctx) => new PluginView(f, ctx, null));
    }
    return make(file, this.ctx());
  }

  async open(path: string, updateHash = true): Promise<DocView | null> {
    let file = this.tree.file(path);
    if (!file) {
      this.opening = path;
      file = await this.tree.find(path).catch(() => null) ?? undefined;
      if (!file || this.opening !== path) return null;
    }
    this.opening = path;
    let view = this.views.get(path);
    if (!view) {
      let pending = this.loading.get(path);
      if (!pending) {
        pending = this.makeView(file).then((v) => {
          if (this.ended) v.end();
          if (this.info.plugins?.services?.some((s) => s.panel)) {  // services' panels (pluginview.ts)
            void import('./pluginview').then(({ attachPanels }) => attachPanels(v, this.info.plugins?.services, this.ctx()));
          }
          this.views.set(path, v);
          this.docsEl.appendChild(v.element);
          return v;
        });
        this.loading.set(path, pending);
      }
      view = await pending;
      this.loading.delete(path);
      if (this.opening !== path) return view; // another file was chosen meanwhile
    }
    if (this.current !== view) {
      this.binaryShown = null;
      this.binaryEl.hidden = true;
      this.current?.hide();
      this.current = view;
      view.show();
      this.emptyEl.hidden = true;
      this.titleEl.textContent = path;
      document.title = `${path.split('/').pop()} — gitrtc`;
      for (const a of this.treeEl.querySelectorAll('a.file')) {
        a.classList.toggle('active', (a as HTMLElement).dataset.path === path);
        if ((a as HTMLElement).dataset.path === path) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
      }
      if (!this.treeEl.querySelector(`a.file[data-path="${CSS.escape(path)}"]`)) this.renderTree(); // its folder opens
      this.setPlace({ file: path });
      if (updateHash) {
        const params = fragmentParams();
        params.set('f', path);
        history.replaceState(null, '', `#${params.toString()}`);
      }
    }
    this.updateConn();
    return view;
  }

  // ---- presence -------------------------------------------------------------

  private setPlace(place: Place): void {
    this.place = place;
    if (this.placeTimer !== null) return;
    this.placeTimer = window.setTimeout(() => {
      this.placeTimer = null;
      // `file` at the top level for any client that only wants to know where people are
      const local = this.sessionAwareness.getLocalState() ?? {};
      // typing along a line moves nothing others see: no update (each one is sent to
      // everyone in the session, and redraws their People list)
      const was = local.place as Place | null | undefined;
      const now = this.place;
      if (was && now && was.file === now.file && was.cell === now.cell && was.line === now.line) return;
      this.sessionAwareness.setLocalState({ ...local, file: now?.file ?? null, place: now });
    }, 150);
  }

  private peers(): Array<{ clientId: number; state: PeerState }> {
    const out: Array<{ clientId: number; state: PeerState }> = [];
    this.sessionAwareness.getStates().forEach((state, clientId) => {
      const s = state as PeerState;
      if (s.user?.name) out.push({ clientId, state: s });
    });
    return out.sort((a, b) => String(a.state.user?.name).localeCompare(String(b.state.user?.name)));
  }

  private onPeers(): void {
    const me = this.sessionDoc.clientID;
    const peers = this.peers();
    const items = peers.map(({ clientId, state }) => {
      const user = state.user!;
      const self = clientId === me;
      const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
      dot.style.backgroundColor = safeColor(user.color);
      const where = state.place?.file ? state.place.file.split('/').pop() : '';
      const li = h('li', { class: 'person', 'data-sid': user.sid ?? '', 'data-name': user.name ?? '' },
        dot,
        h('span', { class: 'person-name' }, `${user.name}${self ? ' (you)' : ''}`),
        user.role === 'viewer' ? h('span', { class: 'person-role' }, 'viewer') : null,
        state.client === 'rtc join' ? h('span', { class: 'person-role', title: 'Editing in their own checkout (rtc join)' }, 'rtc join') : null,
        where ? h('span', { class: 'person-file', title: state.place?.file ?? '' }, where) : null);
      if (!self && user.sid) {
        const following = this.following === user.sid;
        const b = button(following ? 'Following' : 'Follow', following ? `Stop following ${user.name}` : `Follow ${user.name}`,
          `follow${following ? ' on' : ''}`, () => this.follow(following ? null : user.sid!));
        b.setAttribute('aria-pressed', String(following));
        li.appendChild(b);
      }
      return li;
    });
    this.peopleEl.replaceChildren(...items);
    this.paintTreePeers();
    this.followStep();
  }

  /** Who is in which file, as coloured dots in the tree (again after it is drawn). */
  private paintTreePeers(): void {
    const me = this.sessionDoc.clientID;
    const peers = this.peers();
    for (const a of this.treeEl.querySelectorAll<HTMLElement>('a.file')) {
      const slot = a.querySelector('.file-peers');
      if (!slot) continue;
      slot.replaceChildren(...peers
        .filter(({ clientId, state }) => clientId !== me && state.place?.file === a.dataset.path)
        .map(({ state }) => {
          const d = h('span', { class: 'dot small', title: state.user?.name ?? '' });
          d.style.backgroundColor = safeColor(state.user?.color);
          return d;
        }));
    }
  }

  private follow(sid: string | null): void {
    this.following = sid;
    this.onPeers();
  }

  private followStep(): void {
    if (!this.following) return;
    const peer = this.peers().find((p) => p.state.user?.sid === this.following);
    if (!peer) {
      this.following = null;
      return;
    }
    const place = peer.state.place;
    if (!place?.file) return;
    const reveal = (view: DocView | null) => {
      if (!view || this.current !== view) return;
      if (view.ready) view.reveal(place);
      else view.provider.once('sync', () => requestAnimationFrame(() => view.reveal(place)));
    };
    if (this.current?.file.path === place.file) reveal(this.current);
    else void this.open(place.file).then(reveal);
  }

  // ---- connection and session state ------------------------------------------

  private updateConn(): void {
    const state = this.ended ? 'closed' : this.conns.overall;
    this.connEl.dataset.state = state;
    this.connEl.textContent = this.ended ? 'Session ended' : CONN_TEXT[state];
    document.body.dataset.conn = state;
    // files the owner's machine cannot write back (the server lists them in the session room)
    const raw = this.sessionDoc.getMap('session').get('save_errors');
    const errors = raw && typeof raw === 'object' ? Object.entries(raw as Record<string, unknown>) : [];
    if (errors.length && !this.ended) {
      this.connEl.dataset.save = 'error';
      this.connEl.textContent += ` · ${errors.length === 1 ? '1 file' : `${errors.length} files`} not saved`;
      this.connEl.title = errors.map(([path, error]) => `${path}: ${String(error)}`).join('\n');
    } else {
      delete this.connEl.dataset.save;
      this.connEl.removeAttribute('title');
    }
  }

  private onSessionMap(): void {
    const map = this.sessionDoc.getMap('session');
    this.updateConn();
    this.onFiles(map);
    const state = map.get('state');
    if (state === 'ending' && !this.ended) this.showBanner('ending', 'The session is ending: saving the commit…');
    if (state === 'ended') {
      this.end({
        commit: (map.get('commit') as string | null) ?? null,
        branch: (map.get('branch') as string | null) ?? null,
        message: (map.get('message') as string | null) ?? null,
      });
    }
  }

  private onTerminal(t: Terminal): void {
    if (t.code === CLOSE.ENDED) {
      const fromMap = this.sessionDoc.getMap('session');
      const parsed = parseReason(t.reason);
      const commit = (fromMap.get('commit') as string | null) ?? parsed.commit;
      const branch = (fromMap.get('branch') as string | null) ?? parsed.branch;
      if (fromMap.get('state') === 'ended' || commit || parsed.ended) {
        this.end({ commit, branch, message: (fromMap.get('message') as string | null) ?? null });
      } else {
        this.stopAll();
        this.showBanner('error', 'This session was restarted or reset. Reload the page to join it again.', true);
      }
      return;
    }
    if (t.code === CLOSE.UNAUTHORIZED) {
      this.stopAll();
      this.showBanner('error', 'This link is no longer valid for the session.', true);
      return;
    }
    if (t.code === CLOSE.FORBIDDEN && t.reason.startsWith('removed')) {
      // `rtc kick`: every connection of ours is closed and our token revoked
      this.stopAll();
      document.body.dataset.session = 'removed';
      this.showBanner('error', 'You were removed by the session owner. Ask them for a new link to join again.');
      return;
    }
    const view = [...this.views.values()].find((v) => v.file.room === t.room);
    const why = t.code === CLOSE.UNKNOWN_ROOM ? 'This file is no longer part of the session.' : t.code === CLOSE.FORBIDDEN
      ? 'You are not allowed to open this file.' : `The server closed this document (${t.code}).`;
    if (view) view.fail(why);
    else if (t.room === this.info.session_room) this.showBanner('error', `Live session information is unavailable (${t.code}).`);
  }

  private stopAll(): void {
    this.conns.stopAll();
    for (const v of this.views.values()) v.end();
    this.updateConn();
  }

  private end(info: EndInfo): void {
    const already = this.ended;
    this.ended = true;
    document.body.dataset.session = 'ended';
    this.stopAll();
    const branch = info.branch ?? this.info.branch ?? null;
    const parts: Array<Node | string> = [h('strong', null, 'Session ended. ')];
    if (info.commit) {
      parts.push('Committed ', h('code', { class: 'commit', 'data-commit': info.commit, title: info.commit }, info.commit.slice(0, 12)));
      if (branch) parts.push(' on ', h('code', { class: 'branch-name' }, branch));
      parts.push('. ');
    } else if (info.message) {
      // the server's summary when there is no commit ("nothing changed: no commit", an error)
      parts.push(h('span', { class: 'end-message' }, info.message), '. ');
    } else if (!already) {
      parts.push('No commit was reported. ');
    }
    parts.push('The documents below are read-only.');
    this.showBanner('ended', parts);
    if (info.commit) document.body.dataset.commit = info.commit;
    this.updateConn();
  }

  private showBanner(kind: string, content: string | Array<Node | string>, reload = false): void {
    this.stateEl.className = `banner banner-${kind}`;
    this.stateEl.replaceChildren(...(typeof content === 'string' ? [content] : content));
    if (reload) this.stateEl.append(' ', button('Reload', 'Reload the page', 'reload', () => location.reload()));
    this.stateEl.hidden = false;
  }

  /** For debugging and tests: a file's text, or a notebook's cells as JSON. */
  snapshot(path: string): unknown {
    const view = this.views.get(path);
    if (view instanceof TextView) return view.model.getSource();
    if (view && 'model' in view) return (view as unknown as { model: { cells: Array<{ toJSON(): unknown }> } }).model.cells.map((c) => c.toJSON());
    return null;
  }

  /** For debugging and tests: the state of every room connection. */
  connections(): ReturnType<Connections['describe']> {
    return this.conns.describe();
  }

  private async rename(): Promise<void> {
    if (this.ended) return;
    await askIdentity(document.body, storedIdentity(), this.info.role);
    // The name and email are given when connecting: reconnect with the new ones.
    location.reload();
  }
}

function parseReason(reason: string): { commit: string | null; branch: string | null; ended: boolean } {
  try {
    const v = JSON.parse(reason) as { commit?: unknown; branch?: unknown };
    return {
      commit: typeof v.commit === 'string' ? v.commit : null,
      branch: typeof v.branch === 'string' ? v.branch : null,
      ended: 'commit' in v,
    };
  } catch {
    // the reason may be cut at 123 bytes: pick out what is there
    const commit = /"commit"\s*:\s*"([0-9a-f]{4,64})/.exec(reason)?.[1] ?? null;
    const branch = /"branch"\s*:\s*"([^"]+)"/.exec(reason)?.[1] ?? null;
    return { commit, branch, ended: /"commit"/.test(reason) };
  }
}

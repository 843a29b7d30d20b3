// The side panel: the owner's running session (links, people, save state, commit/end)
// and, after "Join live session…", the joined session's files.
import { Clipboard } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { absolute, Status } from './api';
import { SessionState } from './state';

export interface PanelActions {
  commit(): void;
  end(): void;
  invite(): void;
  kick(name: string): void;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text) node.textContent = text;
  return node;
}

function button(label: string, cls: string, onclick: () => void): HTMLButtonElement {
  const b = el('button', `jp-Button jp-mod-styled ${cls}`, label);
  b.type = 'button';
  b.addEventListener('click', onclick);
  return b;
}

export class SessionPanel extends Widget {
  readonly owner: HTMLElement = el('section', 'gitrtc-owner');
  readonly joined: HTMLElement = el('section', 'gitrtc-joined');
  /** Open a shared file's live view (set by the plugin). */
  openFile: (path: string) => Promise<void> = async () => undefined;

  constructor(private state: SessionState, private actions: PanelActions) {
    super();
    this.id = 'gitrtc-panel';
    this.addClass('gitrtc-Panel');
    this.title.caption = 'gitrtc live session';
    this.title.label = 'Live';
    this.node.append(this.owner, this.joined);
    state.onChange((s) => this.render(s));
    this.render(state.status);
  }

  private link(label: string, url: string, cls: string): HTMLElement {
    const row = el('div', `gitrtc-link ${cls}`);
    row.append(el('span', 'gitrtc-link-label', label));
    const a = el('a', 'gitrtc-url', url);
    a.href = url;
    a.target = '_blank';
    a.rel = 'noreferrer';
    row.append(a, button('Copy', 'gitrtc-copy', () => Clipboard.copyToSystem(url)));
    return row;
  }

  private last = '';

  render(s: Status): void {
    const shown = JSON.stringify([s, this.state.error]);
    if (shown === this.last) return; // unchanged: keep the DOM (and whatever is being clicked)
    this.last = shown;
    const o = this.owner;
    o.replaceChildren(el('h2', 'gitrtc-heading', 'Live session'));
    if (this.state.error) o.append(el('p', 'gitrtc-error', this.state.error));
    if (!s.running) {
      o.append(
        el(
          'p',
          'gitrtc-idle',
          s.paused
            ? 'A session of this checkout is paused: share again to resume it, or run rtc stop in a terminal.'
            : 'No live session. Right-click files in the file browser and choose “Share live…”.',
        ),
      );
      return;
    }
    o.append(el('p', 'gitrtc-state', `Session ${s.session} · ${s.state}`));
    o.append(this.link('Edit link', absolute(s.proxy_url ?? ''), 'gitrtc-edit-link'));
    o.append(this.link('View-only link', absolute(s.proxy_readonly_url ?? ''), 'gitrtc-view-link'));
    o.append(el('h3', '', 'People'));
    const people = el('ul', 'gitrtc-people');
    for (const p of s.participants ?? []) {
      const li = el('li', 'gitrtc-participant', `${p.name} (${p.role})${p.file ? ` · ${p.file}` : ''}`);
      li.append(button('Kick', 'gitrtc-kick', () => this.actions.kick(p.name)));
      people.append(li);
    }
    if (!(s.participants ?? []).length) people.append(el('li', 'gitrtc-nobody', 'Nobody has joined yet.'));
    o.append(people);
    o.append(el('h3', '', 'Files'));
    const files = el('ul', 'gitrtc-files');
    for (const f of s.files ?? []) {
      const li = el('li', 'gitrtc-file');
      const open = el('a', 'gitrtc-open-live', f.path);
      open.title = `Open ${f.path} live (the session's view, not the file on disk)`;
      open.href = '#';
      open.addEventListener('click', (e) => {
        e.preventDefault();
        void this.openFile(f.path);
      });
      li.append(open, el('span', 'gitrtc-save', ` · ${f.error ? `not saved: ${f.error}` : f.save ?? ''}`));
      files.append(li);
    }
    o.append(files);
    const bar = el('div', 'gitrtc-actions');
    bar.append(
      button('Invite…', 'gitrtc-invite', () => this.actions.invite()),
      button('Commit…', 'gitrtc-commit', () => this.actions.commit()),
      button('End session…', 'gitrtc-end jp-mod-warn', () => this.actions.end()),
    );
    o.append(bar);
  }
}

// "Join live session…": list a session's files in the side panel and open them in
// JupyterLab's notebook and file editors, bound live to the session (drive.ts). Bad input
// (not a session link, an ended session, a revoked link, another gitrtc version, a network
// drop) ends in a dialog, never in a broken editor.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Dialog, InputDialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { DocumentWidget } from '@jupyterlab/docregistry';
import { Widget } from '@lumino/widgets';
import { Closed, colorFor, DRIVE, Link, LiveDrive } from './drive';
import { JoinError, LiveSession, parseLink, Who, CLOSE } from './live';

const ID_KEY = 'gitrtc.identity'; // the same key as gitrtc's own browser client

function storedIdentity(): { name: string; email: string } | null {
  try {
    const v = JSON.parse(localStorage.getItem(ID_KEY) ?? 'null');
    return v && typeof v.name === 'string' && v.name.trim() ? { name: v.name, email: v.email ?? '' } : null;
  } catch {
    return null;
  }
}

function closedMessage(code: number, reason: string): string {
  switch (code) {
    case CLOSE.ENDED:
      return 'This live session has ended (or restarted with a new history). Nothing was written to your files.';
    case CLOSE.UNAUTHORIZED:
      return 'The session no longer accepts this link (it was revoked). Ask the owner for a new one.';
    case CLOSE.FORBIDDEN:
      return `The session removed you or refused this connection${reason ? `: ${reason}` : ''}.`;
    case CLOSE.UNKNOWN_ROOM:
      return 'This file is no longer part of the session.';
    case CLOSE.TOO_BIG:
      return 'This file is too large to edit live in the browser.';
    default:
      return reason || `The connection closed (${code}).`;
  }
}

/** Close a live document's widget once its kernel session has settled (disposing one that is
 * still starting rejects a promise inside JupyterLab that nobody can catch). */
async function closeQuietly(widget: DocumentWidget): Promise<void> {
  await widget.context.sessionContext.ready.catch(() => undefined);
  widget.close();
}

export class JoinController {
  readonly node: HTMLElement = document.createElement('div');
  readonly drive = new LiveDrive();
  private counter = 0;
  private reported = new Set<string>();

  constructor(readonly app: JupyterFrontEnd) {
    this.node.className = 'gitrtc-joined';
    app.serviceManager.contents.addDrive(this.drive);
    this.drive.closed.connect((_, c) => void this.onClosed(c));
    this.drive.link.connect((_, l) => this.onLink(l));
  }

  private notices = new Map<string, string>();

  /** The network dropped (or came back): say so without getting in the way of the editor. */
  private onLink(l: Link): void {
    const id = this.notices.get(l.session.key);
    if (!l.up && id === undefined) {
      const notice = Notification.warning(
        `Lost the connection to live session ${l.session.info.session}: reconnecting… Your edits are kept and sent when it is back.`,
        { autoClose: false },
      );
      this.notices.set(l.session.key, notice);
    } else if (l.up && id !== undefined) {
      Notification.update({ id, message: `Reconnected to live session ${l.session.info.session}.`, type: 'success', autoClose: 4000 });
      this.notices.delete(l.session.key);
    }
  }

  /** Who this JupyterLab is in a session: asked once, remembered like gitrtc's own client does. */
  async identity(): Promise<Who | null> {
    let stored = storedIdentity();
    if (!stored) {
      const fallback = this.app.serviceManager.user?.identity?.display_name ?? '';
      const answer = await InputDialog.getText({
        title: 'Your name in live sessions',
        label: 'Shown to the others, and used for the co-author line of the commit',
        text: fallback,
        okLabel: 'Continue',
      });
      if (!answer.button.accept || !answer.value?.trim()) return null;
      stored = { name: answer.value.trim().slice(0, 80), email: '' };
      try {
        localStorage.setItem(ID_KEY, JSON.stringify(stored));
      } catch {
        /* asked again next time */
      }
    }
    return { name: stored.name, email: stored.email, color: colorFor(stored.name) };
  }

  /** Join the session of a pasted link; the files are listed in the panel. */
  async join(link: string): Promise<LiveSession | null> {
    let parsed: { base: string; token: string };
    try {
      parsed = parseLink(link);
    } catch (err) {
      await showErrorMessage('Not a session link', (err as Error).message);
      return null;
    }
    const who = await this.identity();
    if (!who) return null;
    // this Jupyter server's own session only: on JupyterHub another user's server has the
    // same host and a `…/gitrtc/proxy/` path too, and is reached through the remote proxy
    const own = new URL(URLExt.join(ServerConnection.makeSettings().baseUrl, 'gitrtc', 'proxy') + '/', window.location.href);
    const local = parsed.base === own.href;
    return this.add(new LiveSession(`s${++this.counter}`, local, parsed.base, parsed.token, who));
  }

  /** The owner's own live view of this server's session (its edit link). */
  async openOwn(token: string, who: Who): Promise<LiveSession | null> {
    const existing = [...this.drive.sessions.values()].find((s) => s.local && s.token === token);
    if (existing) return existing;
    return this.add(new LiveSession(`s${++this.counter}`, true, '', token, who));
  }

  private async add(session: LiveSession): Promise<LiveSession | null> {
    try {
      await session.load();
    } catch (err) {
      await showErrorMessage('Cannot join the live session', err instanceof JoinError ? err.message : String(err));
      return null;
    }
    this.drive.sessions.set(session.key, session);
    this.render();
    return session;
  }

  /** Open a session file in JupyterLab's own editor, bound live to its room. */
  async open(session: LiveSession, path: string): Promise<Widget | undefined> {
    const file = session.file(path);
    if (!file) return undefined;
    const factory = file.kind === 'notebook' ? 'Notebook' : 'Editor';
    const widget = (await this.app.commands.execute('docmanager:open', {
      path: `${DRIVE}:${session.key}/${path}`,
      factory,
    })) as Widget | undefined;
    if (widget) {
      widget.title.caption = `Live: ${path} (gitrtc session ${session.info.session})`;
      widget.addClass('gitrtc-live-document');
    }
    return widget;
  }

  /** "Save a copy": the live document's current content into this JupyterLab's own files. */
  async saveCopy(widget: DocumentWidget): Promise<void> {
    const context = widget.context;
    const name = context.path.split('/').pop() ?? 'copy';
    const answer = await InputDialog.getText({
      title: 'Save a copy',
      label: 'Path in your own files (nothing else of yours is changed)',
      text: name.replace(/(\.[^.]*)?$/, (ext) => `-copy${ext}`),
      okLabel: 'Save',
    });
    if (!answer.button.accept || !answer.value) return;
    const notebook = name.endsWith('.ipynb');
    try {
      await this.app.serviceManager.contents.save(answer.value, {
        type: notebook ? 'notebook' : 'file',
        format: notebook ? 'json' : 'text',
        content: notebook ? context.model.toJSON() : context.model.toString(),
      });
    } catch (err) {
      await showErrorMessage('Save a copy failed', (err as Error).message);
    }
  }

  /** The owner is ending this server's session from JupyterLab: its close (4410) is no news. */
  expectEnd(ending: boolean): void {
    for (const session of this.drive.sessions.values()) {
      if (!(session.local && session.base === '')) continue;
      const key = `${session.key}:${CLOSE.ENDED}`;
      if (ending) this.reported.add(key);
      else this.reported.delete(key);
    }
  }

  /** The owner ended this server's session from JupyterLab: close its live views quietly. */
  endOwn(): void {
    for (const session of [...this.drive.sessions.values()]) {
      if (!(session.local && session.base === '')) continue;
      this.reported.add(`${session.key}:${CLOSE.ENDED}`);
      for (const w of this.widgetsOf(session)) void closeQuietly(w);
      this.drive.sessions.delete(session.key);
    }
  }

  private async onClosed(c: Closed): Promise<void> {
    const notice = this.notices.get(c.session.key);
    if (notice !== undefined) Notification.dismiss(notice);
    this.notices.delete(c.session.key);
    const key = `${c.session.key}:${c.code}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    const result = await showDialog({
      title: 'Live session',
      body: closedMessage(c.code, c.reason),
      buttons: [Dialog.createButton({ label: 'Save a copy' }), Dialog.okButton({ label: 'Close' })],
    });
    const widgets = this.widgetsOf(c.session);
    if (result.button.label === 'Save a copy') {
      for (const w of widgets) await this.saveCopy(w);
    }
    if (c.code === CLOSE.ENDED || c.code === CLOSE.UNAUTHORIZED || c.code === CLOSE.FORBIDDEN) {
      for (const w of widgets) await closeQuietly(w);
      this.drive.sessions.delete(c.session.key);
      this.render();
    }
  }

  private widgetsOf(session: LiveSession): DocumentWidget[] {
    const out: DocumentWidget[] = [];
    for (const w of this.app.shell.widgets('main')) {
      if (w instanceof DocumentWidget && w.context.path.startsWith(`${DRIVE}:${session.key}/`)) out.push(w);
    }
    return out;
  }

  render(): void {
    this.node.replaceChildren();
    for (const session of this.drive.sessions.values()) {
      if (session.local && session.base === '') continue; // the owner's own: listed with its links
      const head = document.createElement('h3');
      head.textContent = `Joined session ${session.info.session} (${session.info.role})`;
      const list = document.createElement('ul');
      list.className = 'gitrtc-joined-files';
      for (const f of session.info.files) {
        const li = document.createElement('li');
        li.className = 'gitrtc-joined-file';
        li.textContent = f.path;
        li.title = `Open ${f.path} live`;
        li.addEventListener('click', () => void this.open(session, f.path));
        list.append(li);
      }
      this.node.append(head, list);
    }
  }
}

// The `gitrtc:` drive: documents of live sessions, opened in JupyterLab's own editors.
//
// A path is `gitrtc:KEY/relative/path` (KEY names a session this JupyterLab joined). The
// drive's shared-model factory makes the document's YNotebook/YFile and binds it to the
// session room with y-websocket; `get` waits for the first sync and returns no content
// (the document already has it, and the context must not overwrite it); `save` writes
// nothing anywhere (the session keeps the owner's file on disk; "Save a copy" is explicit).
import { ISharedDocument, YFile, YNotebook } from '@jupyter/ydoc';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { WebsocketProvider } from 'y-websocket';
import { liveDocs } from './cursors';
import { CLOSE, LiveSession } from './live';
import { SessionKernel, sessionKernels } from './sessionkernel';

export const DRIVE = 'gitrtc';

export interface Link {
  session: LiveSession;
  up: boolean;
}

export interface Closed {
  session: LiveSession;
  path: string;
  code: number;
  reason: string;
}

interface Binding {
  provider: WebsocketProvider;
  synced: Promise<void>;
  session: LiveSession;
}

const USER_COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#1a9e9e', '#d6359f', '#7f8f1a'];

export function colorFor(name: string): string {
  let x = 2166136261;
  for (let i = 0; i < name.length; i++) x = Math.imul(x ^ name.charCodeAt(i), 16777619);
  return USER_COLORS[(x >>> 0) % USER_COLORS.length];
}

export class LiveDrive implements Contents.IDrive {
  readonly name = DRIVE;
  readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings();
  readonly sessions = new Map<string, LiveSession>();
  private bindings = new Map<string, Binding>();
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private _closed = new Signal<this, Closed>(this);
  private _link = new Signal<this, Link>(this);
  private _isDisposed = false;

  readonly sharedModelFactory: Contents.ISharedFactory = {
    collaborative: true,
    createNew: (options: Contents.ISharedFactoryOptions): ISharedDocument | undefined => this.bind(options.path),
  };

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  /** A room's connection was closed for good (ended, revoked, unknown room, too big). */
  get closed(): ISignal<this, Closed> {
    return this._closed;
  }

  /** A synced room lost its connection for a while (`up: false`), or got it back. */
  get link(): ISignal<this, Link> {
    return this._link;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    this._isDisposed = true;
    for (const b of this.bindings.values()) b.provider.destroy();
    this.bindings.clear();
  }

  /** The session and its file for a local path `KEY/rel/path`. */
  locate(localPath: string): { session: LiveSession; path: string } | null {
    const clean = localPath.replace(/^gitrtc:/, '').replace(/^\/+/, '');
    const [key, ...rest] = clean.split('/');
    const session = this.sessions.get(key);
    return session ? { session, path: rest.join('/') } : null;
  }

  private bind(fullPath: string): ISharedDocument | undefined {
    const local = fullPath.replace(/^gitrtc:/, '');
    const found = this.locate(local);
    const file = found?.session.file(found.path);
    if (!found || !file) return undefined;
    const doc = file.kind === 'notebook' ? YNotebook.create({ disableDocumentWideUndoRedo: true }) : YFile.create();
    liveDocs.add(doc.ydoc);
    const who = found.session.who;
    doc.awareness.setLocalStateField('user', {
      name: who.name,
      display_name: who.name,
      username: who.name,
      initials: who.name.slice(0, 2),
      color: who.color,
      colorLight: `${who.color}33`,
      role: found.session.info.role,
      client: 'jupyterlab',
    });
    const provider = found.session.connect(file, doc.ydoc, doc.awareness);
    if (file.kind === 'notebook' && found.session.info.kernels?.enabled) {
      sessionKernels.set(doc.ydoc, new SessionKernel(provider)); // offered in the toolbar (index.ts)
    }
    const synced = new Promise<void>((resolve, reject) => {
      provider.on('sync', (isSynced: boolean) => {
        if (isSynced) resolve();
      });
      provider.on('connection-close', (event: CloseEvent | null) => {
        const code = event?.code ?? 0;
        if ([CLOSE.ENDED, CLOSE.UNAUTHORIZED, CLOSE.FORBIDDEN, CLOSE.UNKNOWN_ROOM, CLOSE.TOO_BIG].includes(code)) {
          provider.shouldConnect = false; // reconnecting cannot help: say so once
          reject(new Error(event?.reason || `closed with ${code}`));
          this._closed.emit({ session: found.session, path: found.path, code, reason: event?.reason ?? '' });
        }
      });
    });
    synced.catch(() => undefined); // the context's get() reports it
    let lost: number | null = null;
    let reported = false;
    let everSynced = false; // y-websocket clears `synced` before it reports the disconnect
    provider.on('sync', (isSynced: boolean) => {
      everSynced = everSynced || isSynced;
    });
    provider.on('status', ({ status }: { status: string }) => {
      if (status === 'connected') {
        if (lost !== null) window.clearTimeout(lost);
        lost = null;
        if (reported) this._link.emit({ session: found.session, up: true });
        reported = false;
      } else if (status === 'disconnected' && everSynced && lost === null) {
        // a blip is not news; a few seconds without the session is
        lost = window.setTimeout(() => {
          if (provider.shouldConnect && !provider.wsconnected) {
            reported = true;
            this._link.emit({ session: found.session, up: false });
          }
        }, 3000);
      }
    });
    const binding = { provider, synced, session: found.session };
    this.bindings.set(local, binding);
    doc.disposed.connect(() => {
      provider.destroy();
      if (this.bindings.get(local) === binding) this.bindings.delete(local);
    });
    return doc;
  }

  /** Whether the room of `localPath` is connected now (for the status shown to the user). */
  connected(localPath: string): boolean {
    return this.bindings.get(localPath.replace(/^gitrtc:/, ''))?.provider.wsconnected ?? false;
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const found = this.locate(localPath);
    const now = new Date(0).toISOString();
    if (!found) throw new Error(`not a file of a joined live session: ${localPath}`);
    const file = found.session.file(found.path);
    if (!file) {
      // the session's folder: its files
      const content = found.session.info.files.map((f) => this.model(`${found.session.key}/${f.path}`, f.kind, now));
      return { name: found.session.key, path: localPath, type: 'directory', format: 'json', content, writable: false, created: now, last_modified: now, mimetype: '' };
    }
    const binding = this.bindings.get(localPath);
    if (binding && options?.content !== false) {
      await Promise.race([
        binding.synced,
        new Promise((_, reject) => setTimeout(() => reject(new Error('the session did not answer within 30 s')), 30000)),
      ]);
    }
    return { ...this.model(localPath, file.kind, now), format: options?.format ?? (file.kind === 'notebook' ? 'json' : 'text'), content: null };
  }

  private model(path: string, kind: string, when: string): Contents.IModel {
    const name = path.split('/').pop() ?? path;
    return {
      name,
      path,
      type: kind === 'notebook' ? 'notebook' : 'file',
      format: null,
      content: null,
      writable: true,
      created: when,
      last_modified: when,
      mimetype: kind === 'notebook' ? 'application/x-ipynb+json' : 'text/plain',
    };
  }

  async save(localPath: string, options?: Partial<Contents.IModel>): Promise<Contents.IModel> {
    // the session saves the owner's file; nothing is written on this side
    return this.get(localPath, { content: false, type: options?.type, format: options?.format ?? undefined });
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    throw new Error(`a live session's file cannot be downloaded: use Save a copy (${localPath})`);
  }
  async newUntitled(): Promise<Contents.IModel> {
    throw new Error('files cannot be created in a live session from JupyterLab');
  }
  async delete(): Promise<void> {
    throw new Error('files of a live session cannot be deleted from JupyterLab');
  }
  async rename(): Promise<Contents.IModel> {
    throw new Error('files of a live session cannot be renamed');
  }
  async copy(): Promise<Contents.IModel> {
    throw new Error('use Save a copy');
  }
  async createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    return { id: 'live', last_modified: new Date(0).toISOString() };
  }
  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }
  async restoreCheckpoint(): Promise<void> {
    throw new Error('a live session has no checkpoints: its history is the session');
  }
  async deleteCheckpoint(): Promise<void> {
    return;
  }
}

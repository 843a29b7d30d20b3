// A gitrtc session opened inside JupyterLab: its description (`/api/session`, read through
// the Jupyter server) and one y-websocket provider per opened file, connected through the
// server extension's proxy (a page on the Jupyter origin may not open a WebSocket to the
// session's own origin: the session refuses foreign `Origin`s).
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { WebsocketProvider } from 'y-websocket';

/** The close codes the session sends (gitrtc/errors.py CLOSE_CODES). */
export const CLOSE = { UNAUTHORIZED: 4401, FORBIDDEN: 4403, UNKNOWN_ROOM: 4404, ENDED: 4410, TOO_BIG: 1009 };
/** The `/api/session` layout this extension speaks (a different major version is refused). */
export const PROTOCOL_MAJOR = '0';

export interface LiveFile {
  path: string;
  kind: 'text' | 'notebook' | string;
  room: string;
}

export interface SessionInfo {
  session: string;
  epoch: string;
  role: string;
  state: string;
  name: string | null;
  files: LiveFile[];
  version?: string;
  /** whether the owner lets participants run code on the session's kernels (`--kernels`) */
  kernels?: { enabled: boolean; owner: string };
}

export interface Who {
  name: string;
  email: string;
  color: string;
}

/** Why a join failed, in words for the dialog. */
export class JoinError extends Error {}

/** Parse a pasted session link: its base URL and token (`…/#t=TOKEN`), or throw. */
export function parseLink(text: string): { base: string; token: string } {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new JoinError('This is not a link. Paste the whole session link its owner gave you (http://…/#t=…).');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new JoinError(`A session link starts with http:// or https://, not ${url.protocol}`);
  }
  const token = new URLSearchParams(url.hash.replace(/^#/, '')).get('t');
  if (!token) {
    throw new JoinError('This link has no session token (#t=…): it is not a gitrtc session link.');
  }
  const path = url.pathname.endsWith('/') ? url.pathname : url.pathname.replace(/[^/]*$/, '');
  return { base: `${url.protocol}//${url.host}${path}`, token };
}

export class LiveSession {
  info!: SessionInfo;

  /**
   * @param key - this session's drive folder (`gitrtc:KEY/path`)
   * @param local - the Jupyter server's own session (`gitrtc/proxy/`), else a remote one
   * @param base - the remote session's URL (`http(s)://host:port/`)
   */
  constructor(
    readonly key: string,
    readonly local: boolean,
    readonly base: string,
    readonly token: string,
    readonly who: Who,
  ) {}

  private route(): string {
    return this.local ? 'proxy' : 'remote';
  }

  private params(): Record<string, string> {
    const p: Record<string, string> = { token: this.token, name: this.who.name };
    if (this.who.email) p.email = this.who.email;
    if (!this.local) p.gitrtc_target = this.base;
    return p;
  }

  /** Read `/api/session`; any failure becomes a `JoinError` that says what to do. */
  async load(): Promise<SessionInfo> {
    const settings = ServerConnection.makeSettings();
    const query = new URLSearchParams({ token: this.token, ...(this.local ? {} : { gitrtc_target: this.base }) });
    const url = URLExt.join(settings.baseUrl, 'gitrtc', this.route(), 'api', 'session') + `?${query}`;
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, {}, settings);
    } catch (err) {
      throw new JoinError(`Cannot reach the Jupyter server: ${(err as Error).message}`);
    }
    let body: any = null;
    try {
      body = await response.json();
    } catch {
      /* not JSON */
    }
    if (response.status === 401) {
      throw new JoinError('The session refused this link: it was revoked, or it is wrong. Ask the owner for a new one.');
    }
    if (response.status === 410) {
      throw new JoinError('This session has ended. Its work is in the owner’s git repository.');
    }
    if (response.status === 502) {
      throw new JoinError(`${body?.error ?? 'The session cannot be reached'}. Is it still running, and is the address right?`);
    }
    if (!response.ok || !body || typeof body !== 'object') {
      throw new JoinError(`${this.base} is not a gitrtc session (it answered ${response.status}).`);
    }
    if (typeof body.version === 'string' && body.version.split('.')[0] !== PROTOCOL_MAJOR) {
      throw new JoinError(
        `This session runs gitrtc ${body.version}; this JupyterLab extension speaks 0.x. Update gitrtc on one side.`,
      );
    }
    if (!Array.isArray(body.files) || typeof body.epoch !== 'string' || typeof body.session !== 'string') {
      throw new JoinError('This session speaks a different gitrtc version than this JupyterLab extension: update gitrtc.');
    }
    if (body.state && body.state !== 'live') {
      throw new JoinError(`This session is ${body.state}: it cannot be joined now.`);
    }
    this.info = body as SessionInfo;
    return this.info;
  }

  file(path: string): LiveFile | undefined {
    return this.info?.files.find((f) => f.path === path);
  }

  /** A provider for `file`'s room, syncing into `doc` (not connected to anything else). */
  connect(file: LiveFile, doc: any, awareness: any): WebsocketProvider {
    const settings = ServerConnection.makeSettings();
    const wsBase = URLExt.join(settings.wsUrl, 'gitrtc', this.route(), 'rooms');
    return new WebsocketProvider(wsBase, file.room, doc, {
      awareness,
      params: this.params(),
      disableBc: true, // another tab of this browser is another participant, not a mirror
      maxBackoffTime: 4000,
    });
  }
}

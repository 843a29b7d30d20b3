// The server's HTTP API and the page's own location. The token comes from the URL
// fragment only (#t=TOKEN), so it never reaches a server log or a Referer header; it is
// sent to this server alone: as a Bearer header to the API, as `token` to the sockets.

export type Role = 'editor' | 'viewer' | 'owner';

export interface FileInfo {
  path: string;
  kind: 'text' | 'notebook' | string;
  room: string;
}

export interface Participant {
  name: string;
  email?: string | null;
  role: Role | string;
  rooms?: string[];
}

export interface SessionInfo {
  session: string;
  epoch?: string | number;
  role: Role;
  state: 'live' | 'ending' | 'ended' | string;
  branch?: string | null;
  session_room?: string | null;
  files: FileInfo[];
  participants?: Participant[];
  /** the name the caller's personal token is bound to (an invite's; null for a shared link) */
  name?: string | null;
  /** installed plugins: each plugin kind's view module URL, each service (plugin API v1) */
  plugins?: {
    kinds?: Record<string, string | null>;
    services?: Array<{ name: string; ops: string[]; kinds?: string[] | null; panel: string | null; error: string | null }>;
  };
  /** the session room's `files_version` when this was read (the file list is live) */
  files_version?: number;
  /** whole files (images, data): shown or downloaded through `GET /api/raw?path=` */
  binaries?: BinaryInfo[];
  /** a large session: `files` and `binaries` are left out, folders come from /api/tree */
  lazy?: boolean;
  files_count?: number;
}

export interface BinaryInfo {
  path: string;
  type: string;
  digest: string;
}

export interface Joined {
  token: string;
  name: string | null;
  role: Role;
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function fragmentParams(): URLSearchParams {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

export function readToken(): string | null {
  const t = fragmentParams().get('t');
  return t && /^[A-Za-z0-9_-]+$/.test(t) ? t : null;
}

/** The directory of the page's path, always ending in '/': the server's mount point. */
export function baseDir(): string {
  return location.pathname.replace(/[^/]*$/, '');
}

export function roomsUrl(): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${baseDir()}rooms`;
}

async function call(token: string, path: string, payload?: unknown): Promise<unknown> {
  let resp: Response;
  try {
    resp = await fetch(`${baseDir()}api/${path}`, {
      method: payload === undefined ? 'GET' : 'POST',
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', 'Content-Type': 'application/json' },
      body: payload === undefined ? undefined : JSON.stringify(payload),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, 'The session server cannot be reached.');
  }
  let body: unknown = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  if (!resp.ok) {
    const msg = (body && typeof body === 'object' && 'error' in body) ? String((body as { error: unknown }).error) : resp.statusText;
    throw new ApiError(resp.status, msg);
  }
  return body;
}

export async function fetchSession(token: string): Promise<SessionInfo> {
  // a large tree is left out (`lazy`): the file tree lists folders through /api/tree
  const info = await call(token, 'session?tree=lazy') as SessionInfo;
  if (!info || !Array.isArray(info.files)) throw new ApiError(200, 'The server sent an unexpected answer.');
  return info;
}

/** Exchange the link's token for this person's own (bound to `name`), so the owner can
 * remove exactly them; a personal or owner token comes back as it is. */
export async function joinSession(token: string, name: string): Promise<Joined> {
  const joined = await call(token, 'join', { name }) as Joined;
  if (!joined || typeof joined.token !== 'string') throw new ApiError(200, 'The server sent an unexpected answer.');
  return joined;
}

/** One change of the live file set, as the session room announces it (`files_changes`). */
export interface FileChange {
  op: 'add' | 'remove' | 'move' | 'skip' | 'binary' | string;
  digest?: string;
  type?: string;
  path: string;
  from?: string;
  kind?: string;
  room?: string;
  reason?: string;
  by?: string;
}

/** Create, rename or delete a shared file (`POST /api/files`); the server's answer. */
export async function fileOp(token: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  return await call(token, 'files', body) as Record<string, unknown>;
}

/** A whole file's bytes (`GET /api/raw?path=`), sent with the token like every API call. */
export async function fetchRaw(token: string, path: string): Promise<Blob> {
  const resp = await fetch(`${baseDir()}api/raw?path=${encodeURIComponent(path)}`, {
    headers: { Authorization: `Bearer ${token}` }, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
  });
  if (!resp.ok) throw new ApiError(resp.status, `${path} cannot be shown (${resp.status})`);
  return await resp.blob();
}

/** Shared files whose path contains `query` (`GET /api/tree?find=`), best first, at most 50
 * (`more`: there are others; typing more of the name finds them). */
export async function findFiles(token: string, query: string): Promise<{ files: FileInfo[]; more: boolean }> {
  const answer = await call(token, `tree?find=${encodeURIComponent(query)}`) as { files?: FileInfo[]; more?: boolean };
  return { files: Array.isArray(answer?.files) ? answer.files : [], more: answer?.more === true };
}

/** One page of a folder's direct entries (`GET /api/tree?dir=&offset=&limit=`). */
export interface FolderPage {
  dir: string;
  folders: string[];
  files: FileInfo[];
  binaries: BinaryInfo[];
  /** the session room's `files_version` the page was read at */
  version: number;
  /** where the next page starts, when there is one */
  next?: number;
}

export async function listFolder(token: string, dir: string, offset: number, limit: number): Promise<FolderPage> {
  const page = await call(token, `tree?dir=${encodeURIComponent(dir)}&offset=${offset}&limit=${limit}`) as FolderPage;
  if (!page || !Array.isArray(page.folders) || !Array.isArray(page.files)) throw new ApiError(200, 'The server sent an unexpected answer.');
  return page;
}

/** The shared file (or whole file) at `path`, if any (`GET /api/tree?path=`). */
export async function lookupFile(token: string, path: string): Promise<{ files: FileInfo[]; binaries: BinaryInfo[] }> {
  const answer = await call(token, `tree?path=${encodeURIComponent(path)}`) as { files?: FileInfo[]; binaries?: BinaryInfo[] };
  return { files: Array.isArray(answer?.files) ? answer.files : [], binaries: Array.isArray(answer?.binaries) ? answer.binaries : [] };
}

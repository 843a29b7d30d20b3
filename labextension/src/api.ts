// The gitrtc server extension's REST API (gitrtc/api/... under the Jupyter server).
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface FileStatus {
  path: string;
  kind: string;
  room: string;
  save?: string;
  error?: string | null;
}

export interface Participant {
  name: string;
  email: string;
  role: string;
  file: string | null;
}

export interface Status {
  running: boolean;
  paused?: boolean;
  message?: string;
  session?: string;
  state?: string;
  url?: string;
  readonly_url?: string;
  proxy_url?: string;
  proxy_readonly_url?: string;
  files?: FileStatus[];
  participants?: Participant[];
  skipped?: { path: string; reason: string }[];
  owner?: { name: string; email: string };
  /** where the Jupyter root is in the checkout ('' at its top) */
  root_in_repo?: string;
}

export interface EndResult {
  commit: string | null;
  branch: string;
  files: string[];
  coauthors: string[];
  message: string;
  ended: boolean;
  error?: string;
}

/** Call gitrtc/api/PATH; a failure becomes an Error carrying the server's one-line reason. */
export async function call<T>(path: string, body?: unknown): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'gitrtc', 'api', path);
  const init: RequestInit = body === undefined ? { method: 'GET' } : { method: 'POST', body: JSON.stringify(body) };
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (err) {
    throw new Error(`cannot reach the Jupyter server: ${(err as Error).message}`);
  }
  let data: any = null;
  try {
    data = await response.json();
  } catch {
    /* not JSON: the status line says it */
  }
  if (!response.ok) {
    const why = (data && (data.error || data.message)) || `${response.status} ${response.statusText}`;
    throw new Error(why);
  }
  return data as T;
}

/** An absolute URL for a path of this Jupyter server (the proxied session links). */
export function absolute(path: string): string {
  return new URL(path, window.location.href).href;
}

// What the app needs from a document view (a text file or a notebook).
import type { WebsocketProvider } from 'y-websocket';
import type { FileInfo } from './api';
import type { Identity } from './identity';
import type { Connections } from './connection';

/** Where a participant is, as published in the session room's awareness. */
export interface Place {
  file: string;
  cell?: string | null;
  line?: number | null;
}

export interface ViewContext {
  conns: Connections;
  identity: Identity;
  /** the role allows editing (editor/owner) */
  canEdit: boolean;
  /** called when this client's cursor moves, to publish it in the session room */
  onPlace(place: Place): void;
  /** called when the view's sync/connection state changes */
  onState(): void;
}

export interface DocView {
  readonly file: FileInfo;
  readonly element: HTMLElement;
  readonly provider: WebsocketProvider;
  /** the first sync with the server is done */
  readonly ready: boolean;
  show(): void;
  hide(): void;
  /** session over: stop editing for good */
  end(): void;
  /** scroll to a participant's place (Follow) */
  reveal(place: Place): void;
  /** the room was closed for good (CLOSE.FORBIDDEN / UNKNOWN_ROOM): show why */
  fail(message: string): void;
  destroy(): void;
}

export function userState(identity: Identity, role: string) {
  return { name: identity.name, color: identity.color, colorLight: identity.colorLight, sid: identity.sid, role };
}

// --- View registration (plugin API v1, see docs/plugins.md) ------------------------------

/** Makes the view of one shared file of a kind. */
export type ViewFactory = (file: FileInfo, ctx: ViewContext) => Promise<DocView>;

const factories = new Map<string, ViewFactory>();

/** Register the view for files of `kind` (the built-in text and notebook views are
 * registered this way too; a plugin's browser module is registered from its URL). */
export function registerView(kind: string, make: ViewFactory): void {
  factories.set(kind, make);
}

/** The registered view of `kind`, if any. */
export function viewFor(kind: string): ViewFactory | undefined {
  return factories.get(kind);
}

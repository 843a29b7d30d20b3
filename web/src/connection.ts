// One WebsocketProvider per room, all with the same identity and token. Tracks the
// overall connection state for the indicator, and the terminal close codes:
//   CLOSE.UNAUTHORIZED, FORBIDDEN, UNKNOWN_ROOM, ENDED (session ended / epoch changed;
//   see closecodes.ts): y-websocket stops reconnecting for 44xx codes and emits 'closed'.
// Any other close (network loss, CLOSE.TOO_SLOW, TOO_BIG) reconnects with backoff; edits
// made meanwhile stay in the local Y.Doc and are exchanged by the sync on reconnect.
import type * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import type { Awareness } from 'y-protocols/awareness';
import { readAuthMessage } from 'y-protocols/auth';
import * as encoding from 'lib0/encoding';
import type { Identity } from './identity';
import { batchRemoteUpdates } from './remotebatch';

/** How often an open connection is asked for an answer (y-protocols' query-awareness,
 * which the server answers with everyone's presence), and how long past that with nothing
 * received it counts as stalled: a frozen server or a dead network path keeps the socket
 * "open" for minutes, but it has stopped delivering. */
export const PING_EVERY_MS = 3000;
export const STALL_AFTER_MS = 6000;
const MESSAGE_QUERY_AWARENESS = 3;

export type Overall = 'connecting' | 'online' | 'offline' | 'closed';

export interface Terminal {
  code: number;
  reason: string;
  room: string;
}

/** The server refused one of our changes (y-protocols' permission-denied auth message). */
export interface Refusal {
  room: string;
  reason: string;
}

export class Connections {
  private readonly providers = new Map<WebsocketProvider, string>();
  private readonly listeners = new Set<() => void>();
  private readonly terminalHandlers = new Set<(t: Terminal) => void>();
  private readonly refusalHandlers = new Set<(r: Refusal) => void>();
  private readonly everConnected = new WeakSet<WebsocketProvider>();
  private readonly dead = new WeakSet<WebsocketProvider>();
  private readonly stalled = new WeakSet<WebsocketProvider>();
  private readonly pingedAt = new WeakMap<WebsocketProvider, number>();
  private pinger: number | null = null;
  /** set by the app when the whole session is over (CLOSE.ENDED, CLOSE.UNAUTHORIZED): nothing reconnects */
  stopped = false;

  constructor(
    private readonly serverUrl: string,
    private readonly token: string,
    private readonly identity: Identity,
  ) {}

  open(room: string, doc: Y.Doc, awareness?: Awareness): WebsocketProvider {
    const params: Record<string, string> = { token: this.token, name: this.identity.name };
    if (this.identity.email) params.email = this.identity.email;
    const provider = new WebsocketProvider(this.serverUrl, room, doc, {
      params,
      awareness,
      // Only ever sync through the server: a BroadcastChannel between tabs would let a
      // stale tab (older epoch, viewer) push state around the server's checks.
      disableBc: true,
      maxBackoffTime: 5000,
      connect: !this.stopped,
    });
    this.providers.set(provider, room);
    batchRemoteUpdates(provider); // others' edits held for this person's next key, 50 ms at most (remotebatch.ts)
    sendOwnPresenceOnly(provider);
    // y-websocket only logs a refusal; the app shows it (e.g. an edit the server would not accept)
    provider.messageHandlers[2] = (_encoder, decoder) => {
      readAuthMessage(decoder, doc, (_doc, reason) => {
        for (const handler of this.refusalHandlers) handler({ room, reason });
      });
    };
    provider.on('status', ({ status }) => {
      if (status === 'connected') this.everConnected.add(provider);
      this.stalled.delete(provider);
      this.changed();
    });
    provider.on('sync', () => this.changed());
    provider.on('closed', ({ code, reason }) => {
      this.dead.add(provider);
      for (const handler of this.terminalHandlers) handler({ code, reason, room });
      this.changed();
    });
    if (this.pinger === null) this.pinger = window.setInterval(() => this.checkAlive(), 1000);
    return provider;
  }

  /** Application-level keep-alive: ask each open connection for an answer every
   * PING_EVERY_MS; one that has received nothing for STALL_AFTER_MS is shown offline until
   * something arrives again (y-websocket itself reconnects only after 30 s of silence). */
  private checkAlive(): void {
    const now = Date.now();
    let change = false;
    for (const p of this.providers.keys()) {
      const ws = p.ws;
      if (!p.wsconnected || !ws || ws.readyState !== WebSocket.OPEN) {
        if (this.stalled.delete(p)) change = true;
        continue;
      }
      if (now - (this.pingedAt.get(p) ?? 0) >= PING_EVERY_MS) {
        this.pingedAt.set(p, now);
        const encoder = encoding.createEncoder();
        encoding.writeVarUint(encoder, MESSAGE_QUERY_AWARENESS);
        ws.send(encoding.toUint8Array(encoder));
      }
      const silent = now - p.wsLastMessageReceived > STALL_AFTER_MS;
      if (silent !== this.stalled.has(p)) {
        if (silent) this.stalled.add(p);
        else this.stalled.delete(p);
        change = true;
      }
    }
    if (change) this.changed();
  }

  close(provider: WebsocketProvider): void {
    this.providers.delete(provider);
    provider.destroy();
    this.changed();
  }

  /** Stop every connection for good (session over); documents stay readable. */
  stopAll(): void {
    this.stopped = true;
    if (this.pinger !== null) window.clearInterval(this.pinger);
    this.pinger = null;
    for (const p of this.providers.keys()) p.disconnect();
    this.changed();
  }

  /** For debugging and tests: each room and whether it is (or will be) connected. */
  describe(): Array<{ room: string; connected: boolean; reconnecting: boolean }> {
    return [...this.providers].map(([p, room]) => ({ room, connected: p.wsconnected, reconnecting: p.shouldConnect }));
  }

  get overall(): Overall {
    if (this.stopped) return 'closed';
    let connecting = false;
    let offline = false;
    for (const p of this.providers.keys()) {
      if (this.dead.has(p)) continue;
      if (p.wsconnected && this.stalled.has(p)) {
        offline = true;
        continue;
      }
      if (p.wsconnected && p.synced) continue;
      if (p.wsconnected || !this.everConnected.has(p)) connecting = true;
      else offline = true;
    }
    if (offline) return 'offline';
    if (connecting) return 'connecting';
    return 'online';
  }

  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  onTerminal(fn: (t: Terminal) => void): void {
    this.terminalHandlers.add(fn);
  }

  onRefused(fn: (r: Refusal) => void): void {
    this.refusalHandlers.add(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}

/** y-websocket sends every awareness change it sees, others' too: each remote cursor move
 * went back to the server from every page, which refuses a connection's update of another
 * connection's client (gitrtc/awareness.py) and answered each with permission-denied.
 * Only this page's own client's changes are sent (issue 18: nothing per remote keystroke
 * or cursor move that is not needed). */
function sendOwnPresenceOnly(provider: WebsocketProvider): void {
  const awareness = provider.awareness;
  const send = provider._awarenessUpdateHandler;
  awareness.off('update', send);
  const own = (ids: number[]) => ids.filter((id) => id === awareness.clientID);
  provider._awarenessUpdateHandler = ({ added, updated, removed }, origin) => {
    const mine = { added: own(added), updated: own(updated), removed: own(removed) };
    if (mine.added.length || mine.updated.length || mine.removed.length) send(mine, origin);
  };
  awareness.on('update', provider._awarenessUpdateHandler);
}

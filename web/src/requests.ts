// A room's request channel: gitrtc's message type 100 on the room's own y-websocket
// connection, [100][varString JSON]. Requests are {id, service, op, args}; the server
// answers {id, ok, data|error} and pushes events {event, ok, data} (docs/architecture.md).
// One channel per connection (`channelOf`), shared by everything that asks a service of
// the room: the kernel bar, the conflict panel, plugin views and panels.
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import type { WebsocketProvider } from 'y-websocket';

export const MESSAGE_REQUEST = 100;

export interface Answer {
  id?: number | string | null;
  ok: boolean;
  error?: string;
  data?: any;
  event?: string;
}

/** Requests and events of one room's channel. */
export class RequestChannel {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (a: Answer) => void; timer: number }>();
  private readonly listeners = new Set<(event: string, data: any) => void>();

  constructor(readonly provider: WebsocketProvider) {
    (provider as any).messageHandlers[MESSAGE_REQUEST] = (_enc: unknown, decoder: decoding.Decoder) => {
      let message: Answer;
      try {
        message = JSON.parse(decoding.readVarString(decoder)) as Answer;
      } catch {
        return;
      }
      if (message.event) {
        for (const fn of this.listeners) fn(message.event, message.data);
      } else if (typeof message.id === 'number') {
        const w = this.waiting.get(message.id);
        if (w) {
          this.waiting.delete(message.id);
          clearTimeout(w.timer);
          w.resolve(message);
        }
      }
    };
  }

  onEvent(fn: (event: string, data: any) => void): void {
    this.listeners.add(fn);
  }

  /** Send a request; resolves with the answer (an error answer if the socket is down). */
  ask(service: string, op: string, args: Record<string, unknown> = {}): Promise<Answer> {
    const ws = this.provider.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({ ok: false, error: 'not connected: wait for the connection to come back' });
    }
    const id = this.nextId++;
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MESSAGE_REQUEST);
    encoding.writeVarString(enc, JSON.stringify({ id, service, op, args }));
    return new Promise((resolve) => {
      const timer = window.setTimeout(() => {
        this.waiting.delete(id);
        resolve({ ok: false, error: 'no answer from the server' });
      }, 120_000);
      this.waiting.set(id, { resolve, timer });
      ws.send(encoding.toUint8Array(enc));
    });
  }
}

const channels = new WeakMap<WebsocketProvider, RequestChannel>();

/** The request channel of a room's connection (made once: it owns the connection's
 * handler of message type 100). */
export function channelOf(provider: WebsocketProvider): RequestChannel {
  let channel = channels.get(provider);
  if (!channel) {
    channel = new RequestChannel(provider);
    channels.set(provider, channel);
  }
  return channel;
}

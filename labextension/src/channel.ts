// A room's request channel (gitrtc's message type 100 on the room's own y-websocket
// connection: [100][var-string JSON]), as web/src/requests.ts speaks it: requests
// {id, service, op, args}, answers {id, ok, data|error}, pushed events {event, ok, data}
// (docs/architecture.md, "The request channel and kernels"). Encoded by hand (two
// var-uints and UTF-8) so the extension needs no direct dependency on lib0.
import type { WebsocketProvider } from 'y-websocket';

export const MESSAGE_REQUEST = 100;

export interface Answer {
  id?: number | string | null;
  ok: boolean;
  error?: string;
  data?: any;
  event?: string;
}

function writeUint(out: number[], n: number): void {
  while (n > 0x7f) {
    out.push(0x80 | (n & 0x7f));
    n = Math.floor(n / 128);
  }
  out.push(n);
}

/** lib0's decoder as y-websocket hands it to a message handler. */
interface Decoder {
  arr: Uint8Array;
  pos: number;
}

function readUint(d: Decoder): number {
  let n = 0;
  let mult = 1;
  for (;;) {
    const byte = d.arr[d.pos++];
    if (byte === undefined) throw new Error('truncated');
    n += (byte & 0x7f) * mult;
    if (byte < 0x80) return n;
    mult *= 128;
  }
}

function readString(d: Decoder): string {
  const len = readUint(d);
  const bytes = d.arr.subarray(d.pos, d.pos + len);
  d.pos += len;
  return new TextDecoder().decode(bytes);
}

/** Requests and events of one room's connection. */
export class RequestChannel {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (a: Answer) => void; timer: number }>();
  private readonly listeners = new Set<(event: string, data: any) => void>();

  constructor(readonly provider: WebsocketProvider) {
    (provider as any).messageHandlers[MESSAGE_REQUEST] = (_enc: unknown, decoder: Decoder) => {
      let message: Answer;
      try {
        message = JSON.parse(readString(decoder)) as Answer;
      } catch {
        return;
      }
      if (message.event) {
        for (const fn of this.listeners) fn(message.event, message.data);
      } else if (typeof message.id === 'number') {
        const w = this.waiting.get(message.id);
        if (w) {
          this.waiting.delete(message.id);
          window.clearTimeout(w.timer);
          w.resolve(message);
        }
      }
    };
  }

  onEvent(fn: (event: string, data: any) => void): void {
    this.listeners.add(fn);
  }

  /** Send a request; resolves with the answer (an error answer when the socket is down). */
  ask(service: string, op: string, args: Record<string, unknown> = {}): Promise<Answer> {
    const ws = this.provider.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({ ok: false, error: 'not connected to the live session: wait for the connection to come back' });
    }
    const id = this.nextId++;
    const body = new TextEncoder().encode(JSON.stringify({ id, service, op, args }));
    const head: number[] = [];
    writeUint(head, MESSAGE_REQUEST);
    writeUint(head, body.length);
    const frame = new Uint8Array(head.length + body.length);
    frame.set(head, 0);
    frame.set(body, head.length);
    return new Promise((resolve) => {
      const timer = window.setTimeout(() => {
        this.waiting.delete(id);
        resolve({ ok: false, error: 'no answer from the live session' });
      }, 120_000);
      this.waiting.set(id, { resolve, timer });
      ws.send(frame);
    });
  }
}

// Others' edits applied together, and with this person's keys (issue 18: under a frame
// per key with others typing). y-websocket applies every incoming document update as its
// own Yjs transaction, in the socket's message task: each ran Yjs, the y-codemirror
// binding's CodeMirror dispatch and our cell observers, and each asked for a frame of its
// own. With two people typing that is a frame every ~30 ms: Chromium's compositor then
// never goes idle, and this person's key, instead of being drawn at once, waits for the
// next vsync (up to 16.7 ms) behind it (benchmarks/editor.py --others: the slow keys'
// main thread is idle most of their wait). Here a room's incoming updates (sync messages
// of type update) are held in arrival order for up to HOLD_MS: this person's next key
// (keydown, before any handler of it) applies them first, so they are drawn in the key's
// own frame; with no key meanwhile they are applied at HOLD_MS. Either way they go in one
// transaction with the provider as origin (not sent back, as before): one dispatch per
// cell and one frame however many arrived.
//
// Nothing is dropped or reordered: every other message of the room (sync step 1 and 2,
// permission-denied, kernel requests and events), apart from awareness, first applies
// what is held; so do the socket closing and the provider being destroyed. Awareness is
// not held back for it: a remote cursor that comes before the text it points into is
// placed once the text is there (cellpresence.ts, and y-codemirror at its next update).
import * as Y from 'yjs';
import type { WebsocketProvider } from 'y-websocket';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';

const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
const SYNC_UPDATE = 2; // y-protocols/sync messageYjsUpdate
/** how long others' edits may wait for a key of this person's to ride with (ms; a
 * benchmark may set window.__gitrtcHoldMs first, 0: off) */
const HOLD_MS = Number((window as unknown as { __gitrtcHoldMs?: number }).__gitrtcHoldMs ?? 50);

type Handler = (encoder: encoding.Encoder, decoder: decoding.Decoder, provider: WebsocketProvider, emitSynced: boolean, messageType: number) => void;

/** each room's apply-what-is-held, run when this person presses a key */
const onKey = new Set<() => void>();
/** each room's number of updates held (for the tests: window.__gitrtcHeld()) */
const holding = new Set<() => number>();
(window as unknown as { __gitrtcHeld: () => number }).__gitrtcHeld = () => [...holding].reduce((n, f) => n + f(), 0);
let listening = false;

function listenForInput(): void {
  if (listening) return;
  listening = true;
  window.addEventListener('keydown', () => {
    for (const apply of onKey) apply();
  }, { capture: true, passive: true });
}

/** Hold `provider`'s incoming document updates for this person's next key, or HOLD_MS (see above). */
export function batchRemoteUpdates(provider: WebsocketProvider): void {
  if (!(HOLD_MS > 0)) return; // off (benchmarks compare)
  listenForInput();
  const doc = provider.doc;
  let held: Uint8Array[] = [];
  let timer = 0;

  const apply = () => {
    if (timer) clearTimeout(timer);
    timer = 0;
    if (!held.length) return;
    const updates = held;
    held = [];
    Y.transact(doc, () => {
      for (const update of updates) {
        try {
          Y.applyUpdate(doc, update, provider);
        } catch (err) {
          // as y-websocket's own message handler: reported, the next updates still applied
          console.error('gitrtc: a received update could not be applied', err);
        }
      }
    }, provider);
  };

  const syncHandler = provider.messageHandlers[MESSAGE_SYNC] as Handler;
  const onSync: Handler = (encoder, decoder, p, emitSynced, messageType) => {
    if (decoding.peekVarUint(decoder) !== SYNC_UPDATE) {
      apply();
      syncHandler(encoder, decoder, p, emitSynced, messageType);
      return;
    }
    decoding.readVarUint(decoder);
    held.push(decoding.readVarUint8Array(decoder));
    if (!timer) timer = window.setTimeout(apply, HOLD_MS);
  };

  // every other message (handlers set now or later: auth, kernel requests) applies what
  // is held first; awareness does not (see above)
  provider.messageHandlers = new Proxy(provider.messageHandlers, {
    get(target, key, receiver) {
      const handler = Reflect.get(target, key, receiver) as unknown;
      if (key === String(MESSAGE_SYNC)) return onSync;
      const message = typeof key === 'string' && /^\d+$/.test(key);
      if (!message || typeof handler !== 'function' || key === String(MESSAGE_AWARENESS)) return handler;
      return (...args: Parameters<Handler>) => {
        apply();
        return (handler as Handler)(...args);
      };
    },
  });
  const count = () => held.length;
  onKey.add(apply);
  holding.add(count);
  provider.on('connection-close', apply);
  const destroy = provider.destroy.bind(provider);
  provider.destroy = () => {
    apply();
    onKey.delete(apply);
    holding.delete(count);
    destroy();
  };
}

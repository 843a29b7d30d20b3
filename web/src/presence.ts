// Other participants' presence (awareness) is untrusted input: the server checks it
// (gitrtc/awareness.py), and the page checks it again before anything reads it, because
// y-codemirror puts `user.color` straight into a style attribute. `guardAwareness` must
// be called before any other listener is added to the awareness (an editor binding, a
// provider): it cleans each remote state in place as it arrives, so later listeners and
// `getStates()` only ever see safe values.
import type { Awareness } from 'y-protocols/awareness';

const COLOR = /^#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;
const MAX_NAME = 80;

/** `value` if it is a hex colour (#rgb, #rgba, #rrggbb, #rrggbbaa), else `fallback`: the only colours put into CSS. */
export function safeColor(value: unknown, fallback = '#888888'): string {
  return typeof value === 'string' && COLOR.test(value) ? value : fallback;
}

function isPlace(v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (typeof v !== 'object') return false;
  const p = v as Record<string, unknown>;
  return typeof p.file === 'string' && (p.cell == null || typeof p.cell === 'string')
    && (p.line == null || typeof p.line === 'number');
}

/** Make one remote state safe to display (in place): `user`, `file`, `place`. */
export function cleanState(state: Record<string, unknown>): void {
  if (state.file != null && typeof state.file !== 'string') state.file = null;
  if (!isPlace(state.place)) state.place = null;
  if (state.client !== undefined && typeof state.client !== 'string') delete state.client;
  const user = state.user;
  if (user === undefined || user === null) return;
  if (typeof user !== 'object' || Array.isArray(user)) {
    delete state.user;
    return;
  }
  const u = user as Record<string, unknown>;
  if (u.name !== undefined) u.name = String(u.name).slice(0, MAX_NAME);
  if (u.sid !== undefined) u.sid = String(u.sid).slice(0, MAX_NAME);
  if (u.color !== undefined) u.color = safeColor(u.color);
  if (u.colorLight !== undefined) {
    const color = u.color as string | undefined;
    u.colorLight = safeColor(u.colorLight, color && color.length === 7 ? `${color}33` : '#88888833');
  }
  if (u.role !== undefined && u.role !== 'owner' && u.role !== 'editor' && u.role !== 'viewer') delete u.role;
}

/** Clean every remote state of `awareness` as it arrives (see the note above). */
export function guardAwareness(awareness: Awareness): void {
  const clean = ({ added, updated }: { added: number[]; updated: number[] }): void => {
    const states = awareness.getStates();
    for (const id of [...added, ...updated]) {
      const state = states.get(id);
      if (id !== awareness.clientID && state) cleanState(state);
    }
  };
  awareness.on('change', clean);
  awareness.on('update', clean);
}

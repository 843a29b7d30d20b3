// Who am I: display name, optional email (for the co-author trailer), colour. Remembered
// in localStorage so a participant is asked only once per browser.
import { h, on } from './dom';

export interface Identity {
  name: string;
  email: string;
  color: string;
  colorLight: string;
  /** random per page load: tells this tab apart in every room's awareness */
  sid: string;
}

const KEY = 'gitrtc.identity';
const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#1a9e9e', '#d6359f', '#7f8f1a',
  '#9a6324', '#800000', '#2e7d32', '#000075', '#c05800', '#5b5bd6'];

function hash(s: string): number {
  let x = 2166136261;
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 16777619);
  return x >>> 0;
}

function randomId(): string {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function colorFor(name: string): string {
  return PALETTE[hash(name) % PALETTE.length];
}

interface Stored {
  name: string;
  email?: string;
  color?: string;
}

function load(): Stored | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const v = JSON.parse(raw) as Stored;
    return typeof v.name === 'string' && v.name.trim() ? v : null;
  } catch {
    return null;
  }
}

function save(v: Stored): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(v));
  } catch {
    /* private mode: asked again next time */
  }
}

function make(v: Stored): Identity {
  const color = v.color && /^#[0-9a-f]{6}$/i.test(v.color) ? v.color : colorFor(v.name);
  return { name: v.name.trim().slice(0, 80), email: (v.email ?? '').trim(), color, colorLight: `${color}33`, sid: randomId() };
}

const EMAIL = /^[^\s<>@]+@[^\s<>@]+$/;

/** Ask for a name (and optional email) in a modal form. Resolves once submitted. */
export function askIdentity(root: HTMLElement, initial: Stored | null, role: string, invited: string | null = null): Promise<Identity> {
  return new Promise((resolve) => {
    // an invite link knows whose it is: the name is filled in (and is the one the others see)
    const name = h('input', {
      id: 'id-name', name: 'name', type: 'text', required: true, maxlength: 80, autocomplete: 'name',
      value: invited ?? initial?.name ?? '', placeholder: 'Ada Lovelace', readonly: invited !== null,
    });
    const email = h('input', {
      id: 'id-email', name: 'email', type: 'email', maxlength: 200, autocomplete: 'email',
      value: initial?.email ?? '', placeholder: 'ada@example.org (optional)',
    });
    const error = h('p', { class: 'form-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Join');
    const form = h('form', { class: 'identity-form', novalidate: true },
      h('h1', null, 'Join the session'),
      h('p', { class: 'muted' }, invited !== null
        ? `This link was made for ${invited}.`
        : role === 'viewer'
          ? 'You are joining with a view-only link.'
          : 'Your name is shown to the others next to your cursor.'),
      h('label', { for: 'id-name' }, 'Display name'), name,
      h('label', { for: 'id-email' }, 'Email ', h('span', { class: 'muted' }, '(optional: credits you as co-author of the commit)')),
      email, error, submit);
    const dialog = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'id-title' }, form);
    form.querySelector('h1')?.setAttribute('id', 'id-title');
    root.appendChild(dialog);
    (invited !== null ? email : name).focus();
    on(form, 'submit', (ev) => {
      ev.preventDefault();
      const n = name.value.replace(/[\u0000-\u001f<>]/g, '').trim();
      const e = email.value.trim();
      if (!n) {
        error.textContent = 'Please enter a name.';
        name.focus();
        return;
      }
      if (e && !EMAIL.test(e)) {
        error.textContent = 'That email does not look right (leave it empty if you prefer).';
        email.focus();
        return;
      }
      const stored: Stored = { name: n, email: e, color: initial?.color };
      save(stored);
      dialog.remove();
      resolve(make(stored));
    });
  });
}

/** The remembered identity, or ask for one; `invited`: the name an invite link is for
 * (asked with it filled in, unless it is the remembered one). */
export async function getIdentity(root: HTMLElement, role: string, invited: string | null = null): Promise<Identity> {
  const stored = load();
  if (stored && (invited === null || stored.name === invited)) return make(stored);
  return askIdentity(root, stored, role, invited);
}

export function storedIdentity(): Stored | null {
  return load();
}

// Every piece of HTML that reaches the page (rendered Markdown, text/html outputs) goes
// through DOMPurify here. Scripts, event handlers, forms, frames, <style> and <base> are
// removed; links open in a new tab without a referrer; images only load from data:/blob:
// URLs (the page's CSP blocks other origins anyway).
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const purifier = DOMPurify(window);

purifier.addHook('afterSanitizeAttributes', (node) => {
  if (node instanceof HTMLAnchorElement) {
    const href = node.getAttribute('href') || '';
    if (!href.startsWith('#')) {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer');
    }
  }
});

const CONFIG = {
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'iframe', 'frame',
    'frameset', 'object', 'embed', 'base', 'link', 'meta', 'dialog', 'template'],
  FORBID_ATTR: ['autofocus', 'formaction', 'action', 'srcset', 'ping'],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto|attachment):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

/** Sanitize an HTML string into a fragment that is safe to insert. */
export function sanitizeHtml(html: string): DocumentFragment {
  return purifier.sanitize(html, { ...CONFIG, RETURN_DOM_FRAGMENT: true }) as unknown as DocumentFragment;
}

const marked = new Marked({ gfm: true, breaks: false, async: false });

export type Attachments = Record<string, Record<string, string | string[]>> | undefined;

function attachmentUrl(name: string, attachments: Attachments): string | null {
  const bundle = attachments?.[name];
  if (!bundle) return null;
  for (const mime of ['image/png', 'image/jpeg', 'image/gif', 'image/webp']) {
    const data = bundle[mime];
    if (data) return `data:${mime};base64,${joinText(data).replace(/\s+/g, '')}`;
  }
  const svg = bundle['image/svg+xml'];
  if (svg) return svgDataUrl(joinText(svg));
  return null;
}

/** Render Markdown (a cell or a text/markdown output) to a sanitized fragment. */
export function renderMarkdown(source: string, attachments?: Attachments): DocumentFragment {
  const html = marked.parse(source) as string;
  const frag = sanitizeHtml(html);
  for (const img of Array.from(frag.querySelectorAll('img'))) {
    const src = img.getAttribute('src') || '';
    if (src.startsWith('attachment:')) {
      const url = attachmentUrl(decodeURIComponent(src.slice('attachment:'.length)), attachments);
      if (url) img.setAttribute('src', url);
      else img.removeAttribute('src');
    }
  }
  return frag;
}

export function joinText(value: unknown): string {
  if (Array.isArray(value)) return value.join('');
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return String(value);
}

export function svgDataUrl(svg: string): string {
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

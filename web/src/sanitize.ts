// Every piece of HTML that reaches the page (rendered Markdown, text/html outputs) goes
// through DOMPurify here. Scripts, event handlers, forms, frames, <style> and <base> are
// removed; links open in a new tab without a referrer; images only load from data:/blob:
// URLs (the page's CSP blocks other origins anyway). Inline styles keep only the
// properties of STYLE_ALLOWED, without url()/image-set()/expression(): nothing may be
// positioned, layered or transformed out of its box (as JupyterLab does for untrusted
// outputs); the boxes that show this HTML also contain their paint (app.css), so a wide
// margin cannot move content over the page either.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';
import { removeMath, replaceMath } from './math';

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

/** CSS properties an inline style may keep (longhands are checked by their prefix). */
const STYLE_ALLOWED = new Set([
  'color', 'background-color', 'opacity', 'font', 'font-family', 'font-size', 'font-style', 'font-variant',
  'font-weight', 'line-height', 'letter-spacing', 'word-spacing', 'text-align', 'text-decoration',
  'text-decoration-line', 'text-decoration-color', 'text-decoration-style', 'text-indent', 'text-transform',
  'white-space', 'word-break', 'overflow-wrap', 'vertical-align', 'direction', 'unicode-bidi', 'display',
  'width', 'height', 'min-width', 'min-height', 'max-width', 'max-height', 'box-sizing', 'float', 'clear',
  'overflow', 'overflow-x', 'overflow-y', 'table-layout', 'border-collapse', 'border-spacing', 'caption-side',
  'empty-cells', 'list-style', 'list-style-type', 'list-style-position', 'visibility', 'cursor',
]);
const STYLE_PREFIXES = ['margin', 'padding', 'border', 'outline', 'text-align', 'font-', 'column', 'gap',
  'row-gap', 'flex', 'justify-', 'align-', 'grid-template', 'grid-column', 'grid-row', 'grid-auto', 'order'];
const STYLE_VALUE_BANNED = /url\(|image-set\(|image\(|expression\(|element\(|@import|\\/i;

function styleAllowed(property: string, value: string): boolean {
  if (STYLE_VALUE_BANNED.test(value)) return false;
  return STYLE_ALLOWED.has(property) || STYLE_PREFIXES.some((p) => property.startsWith(p));
}

/** Keep only the allowed declarations of an element's inline style (parsed by the browser). */
function cleanStyle(node: Element): void {
  const style = (node as HTMLElement).style as CSSStyleDeclaration | undefined;
  if (!style || !node.hasAttribute('style')) return;
  const kept: string[] = [];
  for (let i = 0; i < style.length; i++) {
    const property = style.item(i);
    const value = style.getPropertyValue(property);
    if (styleAllowed(property, value)) kept.push(`${property}: ${value}`);
  }
  if (kept.length) node.setAttribute('style', kept.join('; '));
  else node.removeAttribute('style');
}

purifier.addHook('afterSanitizeAttributes', cleanStyle);

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

/** Render Markdown (a cell or a text/markdown output) to a sanitized fragment, its math
 * typeset (math.ts). */
export function renderMarkdown(source: string, attachments?: Attachments): DocumentFragment {
  const { text, math } = removeMath(source);
  const html = marked.parse(text) as string;
  const frag = sanitizeHtml(html);
  replaceMath(frag, math);
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

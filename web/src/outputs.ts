// Render notebook outputs. Nothing here ever executes code from a notebook:
//  - images (png/jpeg/gif/svg) become <img> with data: URLs (SVG never inline, so its
//    scripts cannot run),
//  - text/html and text/markdown go through DOMPurify,
//  - streams, text/plain and tracebacks are text nodes with ANSI colours as spans,
//  - application/javascript and widget views are shown as a note, never run.
import { ansiToFragment } from './ansi';
import { h } from './dom';
import { renderLatex } from './math';
import { joinText, renderMarkdown, sanitizeHtml, svgDataUrl } from './sanitize';

type MimeBundle = Record<string, unknown>;

export interface Output {
  output_type: string;
  name?: string;
  text?: unknown;
  data?: MimeBundle;
  metadata?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: unknown;
  execution_count?: number | null;
}

// JupyterLab's default ranking: LaTeX wins over images (sympy's outputs carry both)
const ORDER = [
  'text/html', 'text/markdown', 'text/latex', 'image/svg+xml', 'image/png', 'image/jpeg', 'image/gif', 'image/webp',
  'application/json', 'text/plain',
];

const BASE64 = /^[A-Za-z0-9+/=\s]*$/;

function imageSize(img: HTMLImageElement, meta: unknown): void {
  if (!meta || typeof meta !== 'object') return;
  const m = meta as { width?: unknown; height?: unknown };
  if (typeof m.width === 'number' && m.width > 0) img.width = m.width;
  if (typeof m.height === 'number' && m.height > 0) img.height = m.height;
}

function renderMime(mime: string, value: unknown, metadata: Record<string, unknown> | undefined): HTMLElement | null {
  const text = joinText(value);
  switch (mime) {
    case 'text/html': {
      const div = h('div', { class: 'output-html' });
      div.appendChild(sanitizeHtml(text));
      return div;
    }
    case 'text/markdown': {
      const div = h('div', { class: 'output-markdown markdown-body' });
      div.appendChild(renderMarkdown(text));
      return div;
    }
    case 'image/svg+xml': {
      const img = h('img', { class: 'output-image', alt: 'SVG output', src: svgDataUrl(text) });
      imageSize(img, metadata?.[mime]);
      return img;
    }
    case 'image/png':
    case 'image/jpeg':
    case 'image/gif':
    case 'image/webp': {
      if (!BASE64.test(text)) return h('pre', { class: 'output-text output-error' }, `(invalid ${mime} data)`);
      const img = h('img', { class: 'output-image', alt: `${mime} output`, src: `data:${mime};base64,${text.replace(/\s+/g, '')}` });
      imageSize(img, metadata?.[mime]);
      return img;
    }
    case 'application/json': {
      return h('pre', { class: 'output-text output-json' }, JSON.stringify(value, null, 2));
    }
    case 'text/latex':
      return renderLatex(text);
    case 'text/plain': {
      const pre = h('pre', { class: 'output-text' });
      pre.appendChild(ansiToFragment(text));
      return pre;
    }
    default:
      return null;
  }
}

function renderBundle(data: MimeBundle, metadata: Record<string, unknown> | undefined): HTMLElement {
  for (const mime of ORDER) {
    if (mime in data && data[mime] !== null && data[mime] !== undefined) {
      const el = renderMime(mime, data[mime], metadata);
      if (el) {
        el.dataset.mime = mime;
        return el;
      }
    }
  }
  const kinds = Object.keys(data).join(', ') || 'nothing';
  return h('div', { class: 'output-note' }, `(output not shown here: ${kinds})`);
}

export function renderOutput(out: Output): HTMLElement {
  const wrap = h('div', { class: `output output-${out.output_type}` });
  switch (out.output_type) {
    case 'stream': {
      const pre = h('pre', { class: `output-text output-stream-${out.name === 'stderr' ? 'stderr' : 'stdout'}` });
      pre.appendChild(ansiToFragment(joinText(out.text)));
      wrap.appendChild(pre);
      break;
    }
    case 'execute_result':
      // Jupyter's `Out[n]:` label, beside the result
      if (typeof out.execution_count === 'number') {
        wrap.appendChild(h('div', { class: 'output-prompt' }, `Out[${out.execution_count}]:`));
      }
      wrap.appendChild(renderBundle(out.data ?? {}, out.metadata));
      break;
    case 'display_data':
      wrap.appendChild(renderBundle(out.data ?? {}, out.metadata));
      break;
    case 'error': {
      const pre = h('pre', { class: 'output-text output-traceback' });
      const tb = Array.isArray(out.traceback) ? out.traceback.map(String).join('\n') : '';
      pre.appendChild(ansiToFragment(tb || `${out.ename ?? 'Error'}: ${out.evalue ?? ''}`));
      wrap.appendChild(pre);
      break;
    }
    default:
      wrap.appendChild(h('div', { class: 'output-note' }, `(unknown output type ${out.output_type})`));
  }
  return wrap;
}

export function renderOutputs(container: HTMLElement, outputs: Output[]): void {
  const frag = document.createDocumentFragment();
  for (const out of outputs) {
    if (out && typeof out === 'object') frag.appendChild(renderOutput(out));
  }
  container.replaceChildren(frag);
  container.hidden = outputs.length === 0;
}

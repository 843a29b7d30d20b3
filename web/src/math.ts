// Math in Markdown and text/latex outputs, typeset with KaTeX (fast, synchronous, no
// eval, works under the page's CSP). The delimiters are found as JupyterLab finds them
// (a port of @jupyterlab/rendermime's removeMath): `$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`
// and `\begin{env}…\end{env}`, never inside code spans or fenced code, with braces
// balanced. The math is taken out before Markdown is parsed (so `_` and `*` in it stay
// TeX), replaced by `@@n@@` markers, and the markers in the sanitized DOM are replaced
// by KaTeX's output. KaTeX runs untrusted (no \href to javascript:, no \html*), with
// bounded expansion. Its stylesheet and fonts are served by the session
// (static/katex.css, copied by build.mjs) and loaded the first time math is shown.
import katex from 'katex';

const MATHSPLIT = /(\$\$?|\\(?:begin|end)\{[a-z]*\*?\}|\\[{}$]|[{}]|(?:\n\s*)+|@@\d+@@|\\\\(?:\(|\)|\[|\]))/i;

export interface Extracted {
  text: string;
  math: string[];
}

/** Take the math out of Markdown: the text with `@@n@@` markers, and the math. */
export function removeMath(input: string): Extracted {
  const math: string[] = [];
  let start: number | null = null;
  let end: string | null = null;
  let last: number | null = null;
  let braces = 0;
  let text = input;
  let deTilde = (s: string): string => s;
  if (text.includes('`') || text.includes('~~~')) {
    text = text
      .replace(/~/g, '~T')
      .replace(/^(?<fence>`{3,}|(~T){3,})[^`\n]*\n([\s\S]*?)^\k<fence>`*$/gm, (m) => m.replace(/\$/g, '~D'))
      .replace(/(^|[^\\])(`+)([^\n]*?[^`\n])\2(?!`)/gm, (m) => m.replace(/\$/g, '~D'));
    deTilde = (s: string) => s.replace(/~([TD])/g, (_m, c: string) => (c === 'T' ? '~' : '$'));
  }
  let blocks = text.replace(/\r\n?/g, '\n').split(MATHSPLIT);
  const take = (i: number, j: number): void => {
    const block = deTilde(blocks.slice(i, j + 1).join(''));
    for (let k = j; k > i; k--) blocks[k] = '';
    blocks[i] = `@@${math.length}@@`;
    math.push(block);
  };
  for (let i = 1; i < blocks.length; i += 2) {
    const block = blocks[i];
    if (block.charAt(0) === '@') {
      // text that looks like a marker is kept aside too, and comes back as it was
      blocks[i] = `@@${math.length}@@`;
      math.push(block);
    } else if (start !== null) {
      if (block === end) {
        if (braces) {
          last = i;
        } else {
          take(start, i);
          start = end = last = null;
        }
      } else if (/\n.*\n/.test(block)) {
        if (last !== null) {
          i = last;
          take(start, i);
        }
        start = end = last = null;
        braces = 0;
      } else if (block === '{') {
        braces++;
      } else if (block === '}' && braces) {
        braces--;
      }
    } else if (block === '$' || block === '$$') {
      start = i;
      end = block;
      braces = 0;
    } else if (block === '\\\\(' || block === '\\\\[') {
      start = i;
      end = block.endsWith('(') ? '\\\\)' : '\\\\]';
      braces = 0;
    } else if (block.slice(1, 6) === 'begin') {
      start = i;
      end = `\\end${block.slice(6)}`;
      braces = 0;
    }
  }
  if (start !== null && last !== null) take(start, last);
  return { text: deTilde(blocks.join('')), math };
}

let stylesheet = false;

/** Load KaTeX's stylesheet (and so its fonts) once, from the session itself. */
function ensureStylesheet(): void {
  if (stylesheet) return;
  stylesheet = true;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = 'static/katex.css';
  document.head.appendChild(link);
}

/** Typeset one piece of math (with its delimiters) into an element. */
export function typeset(source: string): Node {
  if (source.startsWith('@@')) return document.createTextNode(source);
  let tex = source;
  let display = false;
  if (tex.startsWith('$$') && tex.endsWith('$$') && tex.length >= 4) {
    tex = tex.slice(2, -2);
    display = true;
  } else if (tex.startsWith('$') && tex.endsWith('$') && tex.length >= 2) {
    tex = tex.slice(1, -1);
  } else if (tex.startsWith('\\\\(') && tex.endsWith('\\\\)')) {
    tex = tex.slice(3, -3);
  } else if (tex.startsWith('\\\\[') && tex.endsWith('\\\\]')) {
    tex = tex.slice(3, -3);
    display = true;
  } else if (tex.startsWith('\\begin')) {
    display = true;
  }
  ensureStylesheet();
  const el = document.createElement(display ? 'div' : 'span');
  el.className = display ? 'math math-display' : 'math math-inline';
  try {
    katex.render(tex, el, {
      displayMode: display, throwOnError: false, trust: false, strict: 'ignore', maxExpand: 1000, maxSize: 50,
      output: 'htmlAndMathml',
    });
  } catch (err) {
    // throwOnError: false shows TeX errors in place; anything else is shown as the source
    console.warn('gitrtc: could not typeset math', err);
    el.textContent = source;
  }
  return el;
}

const MARKER = /@@(\d+)@@/g;

/** Replace the `@@n@@` markers in a sanitized fragment's text with typeset math. */
export function replaceMath(root: DocumentFragment | HTMLElement, math: string[]): void {
  if (!math.length) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes: Text[] = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if ((n.nodeValue ?? '').includes('@@')) nodes.push(n as Text);
  }
  for (const node of nodes) {
    const value = node.nodeValue ?? '';
    const parts: Node[] = [];
    let at = 0;
    for (const m of value.matchAll(MARKER)) {
      const piece = math[Number(m[1])];
      if (piece === undefined) continue;
      if (m.index! > at) parts.push(document.createTextNode(value.slice(at, m.index)));
      // inside code, math is shown as written
      parts.push(node.parentElement?.closest('code, pre') ? document.createTextNode(piece) : typeset(piece));
      at = m.index! + m[0].length;
    }
    if (!parts.length) continue;
    if (at < value.length) parts.push(document.createTextNode(value.slice(at)));
    node.replaceWith(...parts);
  }
  // markers that ended up in text attributes (a link's title, an image's alt) get their
  // text back; never in URLs, which DOMPurify has checked
  const holder = root instanceof HTMLElement ? root : null;
  for (const el of Array.from((holder ?? root).querySelectorAll('[title], [alt]'))) {
    for (const attr of ['title', 'alt']) {
      const v = el.getAttribute(attr);
      if (v && v.includes('@@')) el.setAttribute(attr, v.replace(MARKER, (m, n: string) => math[Number(n)] ?? m));
    }
  }
}

/** A text/latex output: its math typeset, the rest as text. */
export function renderLatex(text: string): HTMLElement {
  const div = document.createElement('div');
  div.className = 'output-latex';
  const { text: rest, math } = removeMath(text);
  if (!math.length && text.trim()) {
    // a bare LaTeX expression without delimiters: typeset it as display math
    div.appendChild(typeset(`$$${text}$$`));
    return div;
  }
  div.appendChild(document.createTextNode(rest));
  replaceMath(div, math);
  return div;
}

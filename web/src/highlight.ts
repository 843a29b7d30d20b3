// Syntax highlighting of a notebook cell's static view (cellview.ts: the <pre> shown until
// the cell's CodeMirror editor is built) the way the editor highlights it: the same
// language's parser and the same highlighter (editor.ts HIGHLIGHT_STYLE, whose classes
// are mounted here too), so a cell looks the same before and after its editor exists.
import { highlightTree } from '@lezer/highlight';
import type { LanguageDescription } from '@codemirror/language';
import { StyleModule } from 'style-mod';
import { HIGHLIGHT_STYLE } from './editor';

let mounted = false;

/** `text` as highlighted nodes (plain text if the language's parser is not loaded yet:
 * `loadLanguage` loads it). */
export function highlighted(text: string, lang: LanguageDescription | null): Node[] {
  const support = lang?.support;
  if (!support || !text) return [document.createTextNode(text)];
  if (!mounted && HIGHLIGHT_STYLE.module) {
    StyleModule.mount(document, HIGHLIGHT_STYLE.module);
    mounted = true;
  }
  const tree = support.language.parser.parse(text);
  const out: Node[] = [];
  let at = 0;
  highlightTree(tree, HIGHLIGHT_STYLE, (from, to, classes) => {
    if (from > at) out.push(document.createTextNode(text.slice(at, from)));
    const span = document.createElement('span');
    span.className = classes;
    span.textContent = text.slice(from, to);
    out.push(span);
    at = to;
  });
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}

/** Load the language's parser (once; `then` runs when it is there, not if it was already). */
export function loadLanguage(lang: LanguageDescription | null, then: () => void): void {
  if (!lang || lang.support) return;
  lang.load().then(then, (err) => console.warn(`gitrtc: could not load the ${lang.name} highlighter`, err));
}

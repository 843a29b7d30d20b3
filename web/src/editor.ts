// CodeMirror 6 set-up shared by text files and notebook cells: a Y.Text bound with
// y-codemirror.next (remote cursors labelled with names, an UndoManager that only
// tracks this client's edits), and a compartment that switches editing on and off.
import * as Y from 'yjs';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import {
  EditorView, ViewPlugin, keymap, lineNumbers, highlightSpecialChars, drawSelection, dropCursor,
  highlightActiveLine, highlightActiveLineGutter, rectangularSelection, crosshairCursor,
} from '@codemirror/view';
import { defaultKeymap, indentWithTab } from '@codemirror/commands';
import {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter, foldKeymap,
  type LanguageDescription,
} from '@codemirror/language';
import { searchKeymap, highlightSelectionMatches } from '@codemirror/search';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';
import type { Awareness } from 'y-protocols/awareness';

/** the highlighter of every editor (and of a notebook cell's static view, highlight.ts) */
export const HIGHLIGHT_STYLE = defaultHighlightStyle;

export interface BoundEditor {
  view: EditorView;
  setEditable(editable: boolean): void;
  destroy(): void;
}

export interface EditorOptions {
  ytext: Y.Text;
  awareness: Awareness;
  /** loaded on demand (a separate chunk); null: plain text */
  language: LanguageDescription | null;
  editable: boolean;
  /** whole files get line numbers and folding; notebook cells stay compact */
  kind: 'file' | 'cell';
  wrap?: boolean;
  extra?: Extension;
  label?: string;
  /** the text's undo history when it must outlive the editor (a notebook cell's editor
   * is built and dropped as it scrolls by); the caller owns it. Default: the editor's own */
  undoManager?: Y.UndoManager;
}

/** how long after the last key or cursor move the cursor starts blinking again */
export const STEADY_MS = 600;

/** The cursor stays solid while the person types or moves it and blinks once they pause
 * (as in VS Code). CodeMirror restarts its blink animation on every selection change to
 * the same effect; starting an animation costs the page an extra animation frame and a
 * re-layerization per key, which grew with the notebook (issue 18). While `cm-typing` is
 * on the editor, app.css turns the animation off; one timer per editor turns it back on. */
const steadyCursor = ViewPlugin.fromClass(class {
  private timer = 0;
  constructor(private readonly view: EditorView) {}
  update(u: { selectionSet: boolean; docChanged: boolean }) {
    if (!u.selectionSet && !u.docChanged) return;
    const dom = this.view.dom;
    if (!dom.classList.contains('cm-typing')) dom.classList.add('cm-typing');
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => dom.classList.remove('cm-typing'), STEADY_MS);
  }
  destroy() {
    clearTimeout(this.timer);
  }
});

const editableConf = (on: boolean): Extension => [EditorView.editable.of(on), EditorState.readOnly.of(!on)];

export function bindEditor(parent: HTMLElement, opts: EditorOptions): BoundEditor {
  const undoManager = opts.undoManager ?? new Y.UndoManager(opts.ytext);
  const ownsUndo = !opts.undoManager;
  const editable = new Compartment();
  const language = new Compartment();
  let destroyed = false;
  const file = opts.kind === 'file';
  const extensions: Extension[] = [
    file ? [lineNumbers(), foldGutter(), highlightActiveLineGutter()] : [],
    highlightSpecialChars(),
    drawSelection(),
    steadyCursor,
    dropCursor(),
    EditorState.allowMultipleSelections.of(true),
    indentOnInput(),
    syntaxHighlighting(HIGHLIGHT_STYLE, { fallback: true }),
    bracketMatching(),
    rectangularSelection(),
    crosshairCursor(),
    file ? highlightActiveLine() : [],
    highlightSelectionMatches(),
    keymap.of([...yUndoManagerKeymap, ...defaultKeymap, ...searchKeymap, ...foldKeymap, indentWithTab]),
    opts.wrap ? EditorView.lineWrapping : [],
    language.of(opts.language?.support ?? []),
    yCollab(opts.ytext, opts.awareness, { undoManager }),
    editable.of(editableConf(opts.editable)),
    opts.label ? EditorView.contentAttributes.of({ 'aria-label': opts.label }) : [],
    opts.extra ?? [],
  ];
  const view = new EditorView({
    state: EditorState.create({ doc: opts.ytext.toString(), extensions }),
    parent,
  });
  const lang = opts.language;
  if (lang && !lang.support) {
    lang.load().then(
      (support) => { if (!destroyed) view.dispatch({ effects: language.reconfigure(support) }); },
      (err) => console.warn(`gitrtc: could not load the ${lang.name} highlighter`, err),
    );
  }
  let current = opts.editable;
  return {
    view,
    setEditable(on: boolean) {
      if (on === current) return;
      current = on;
      view.dispatch({ effects: editable.reconfigure(editableConf(on)) });
    },
    destroy() {
      destroyed = true;
      view.destroy();
      if (ownsUndo) undoManager.destroy();
    },
  };
}

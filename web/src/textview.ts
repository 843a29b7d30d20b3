// A text file: one Y.Text (`source`, the YUnicode layout) in a @jupyter/ydoc YFile,
// edited in CodeMirror through y-codemirror.next.
import { YFile } from '@jupyter/ydoc';
import { EditorView } from '@codemirror/view';
import type { WebsocketProvider } from 'y-websocket';
import type { FileInfo } from './api';
import { h } from './dom';
import { bindEditor, type BoundEditor } from './editor';
import { isProse, languageFor } from './languages';
import { guardAwareness } from './presence';
import { userState, type DocView, type Place, type ViewContext } from './views';

export class TextView implements DocView {
  readonly element: HTMLElement;
  readonly provider: WebsocketProvider;
  readonly model = new YFile();
  private readonly editor: BoundEditor;
  private readonly status: HTMLElement;
  private synced = false;
  private ended = false;
  private visible = false;

  constructor(readonly file: FileInfo, private readonly ctx: ViewContext) {
    this.status = h('div', { class: 'doc-status' }, 'Loading…');
    const host = h('div', { class: 'text-editor' });
    const preview = /\.(md|markdown)$/i.test(file.path)
      ? h('div', { class: 'md-preview markdown-body', 'aria-label': `Preview of ${file.path}` }) : null;
    this.element = h('section', { class: 'doc doc-text', 'data-path': file.path, 'data-ready': 'false' },
      this.status, h('div', { class: 'text-panes' }, host, preview));
    this.element.hidden = true;
    const awareness = this.model.awareness;
    guardAwareness(awareness);
    awareness.setLocalStateField('user', userState(ctx.identity, ctx.canEdit ? 'editor' : 'viewer'));
    const lang = languageFor(file.path);
    this.editor = bindEditor(host, {
      ytext: this.model.ysource,
      awareness,
      language: lang,
      editable: false,
      kind: 'file',
      wrap: isProse(lang),
      label: `Contents of ${file.path}`,
      extra: EditorView.updateListener.of((u) => {
        if (u.selectionSet && u.view.hasFocus) {
          this.ctx.onPlace({ file: file.path, line: u.state.doc.lineAt(u.state.selection.main.head).number });
        }
      }),
    });
    if (preview) this.previewInto(preview);
    this.provider = ctx.conns.open(file.room, this.model.ydoc, awareness);
    this.provider.on('sync', (isSynced: boolean) => {
      if (isSynced && !this.synced) {
        this.synced = true;
        this.element.dataset.ready = 'true';
        this.status.hidden = true;
        this.refresh();
      }
      ctx.onState();
    });
  }

  /** Markdown files: the rendered source beside it, kept up to date (the renderer, with
   * marked, DOMPurify and KaTeX, is loaded with the first Markdown file). */
  private previewInto(preview: HTMLElement): void {
    let queued = false;
    const render = async () => {
      const { renderMarkdown } = await import('./sanitize');
      queued = false;
      preview.replaceChildren(renderMarkdown(this.model.getSource()));
    };
    this.model.ysource.observe(() => {
      if (queued) return;
      queued = true;
      window.setTimeout(() => void render().catch((err) => console.error('gitrtc: preview failed', err)), 150);
    });
    void render().catch((err) => console.error('gitrtc: preview failed', err));
  }

  get ready(): boolean {
    return this.synced;
  }

  private refresh(): void {
    this.editor.setEditable(this.ctx.canEdit && this.synced && !this.ended);
  }

  show(): void {
    this.visible = true;
    this.element.hidden = false;
    this.editor.view.requestMeasure();
  }

  hide(): void {
    this.visible = false;
    this.element.hidden = true;
    this.model.awareness.setLocalStateField('cursor', null);
  }

  end(): void {
    this.ended = true;
    this.refresh();
  }

  fail(message: string): void {
    this.status.hidden = false;
    this.status.textContent = message;
    this.status.classList.add('error');
    this.ended = true;
    this.refresh();
  }

  reveal(place: Place): void {
    if (!this.visible || !place.line) return;
    const doc = this.editor.view.state.doc;
    const line = doc.line(Math.min(Math.max(1, place.line), doc.lines));
    this.editor.view.dispatch({ effects: EditorView.scrollIntoView(line.from, { y: 'center' }) });
  }

  destroy(): void {
    this.editor.destroy();
    this.ctx.conns.close(this.provider);
    this.model.dispose();
  }
}

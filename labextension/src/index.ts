// gitrtc inside JupyterLab: "Share live…" (the server's checkout, as `rtc start` would),
// the session panel and status-bar item, and "Join live session…" (see join.ts).
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, InputDialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { IStatusBar } from '@jupyterlab/statusbar';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { DocumentRegistry, DocumentWidget, IDocumentWidget } from '@jupyterlab/docregistry';
import { INotebookCellExecutor, INotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { call, EndResult } from './api';
import { registerCursors } from './cursors';
import { colorFor, DRIVE } from './drive';
import { JoinController } from './join';
import { SessionPanel } from './panel';
import { cellExecutor, sessionKernels } from './sessionkernel';
import { SessionState } from './state';

const CMD = {
  share: 'gitrtc:share',
  join: 'gitrtc:join',
  commit: 'gitrtc:commit',
  end: 'gitrtc:end',
  panel: 'gitrtc:panel',
  saveCopy: 'gitrtc:save-copy',
  openOwn: 'gitrtc:open-live',
};

/** A live document is never "unsaved" on this side: the session saves the owner's file,
 * so closing one must not ask to save it (nothing would be written anyway). */
class NeverDirty implements DocumentRegistry.IWidgetExtension<Widget, DocumentRegistry.IModel> {
  createNew(_: Widget, context: DocumentRegistry.IContext<DocumentRegistry.IModel>): void {
    if (!context.path.startsWith(`${DRIVE}:`)) return;
    context.model.stateChanged.connect((model, change) => {
      if (change.name === 'dirty' && change.newValue) model.dirty = false;
    });
  }
}

/** The path in the repository of a file of this Jupyter server that the running session
 * shares, or null. */
function sharedPath(state: SessionState, path: string): string | null {
  const s = state.status;
  if (path.includes(':') || !s.running) return null;
  const repoPath = (s.root_in_repo ? `${s.root_in_repo}/` : '') + path;
  return (s.files ?? []).some((f) => f.path === repoPath) ? repoPath : null;
}

/** Whether the owner takes the live view of a shared file rather than the file on disk. */
async function wantsLive(path: string): Promise<boolean> {
  const answer = await showDialog({
    title: 'This file is shared live',
    body: `${path} is part of the running live session. Open the live view? (Editing the file on disk here would compete with the session's own saving.)`,
    buttons: [Dialog.cancelButton({ label: 'Keep the file view' }), Dialog.okButton({ label: 'Open live view' })],
  });
  return answer.button.accept;
}

/** The owner's own view, before anything is opened: the document manager asked to open a
 * shared file (the file browser, Open…) asks first, and opens the live view instead. A
 * disk view that was never opened cannot fight the session, nor start a room of
 * JupyterLab's own collaboration package (jupyter-collaboration) that would write the
 * file too. */
function offerLiveBeforeOpening(
  manager: IDocumentManager,
  state: SessionState,
  open: (repoPath: string) => Promise<void>,
): void {
  for (const name of ['open', 'openOrReveal'] as const) {
    const original = manager[name].bind(manager) as (path: string, ...rest: unknown[]) => IDocumentWidget | undefined;
    (manager as any)[name] = (path: string, ...rest: unknown[]): IDocumentWidget | undefined => {
      const repoPath = sharedPath(state, path);
      if (repoPath === null) return original(path, ...rest);
      void wantsLive(path).then(async (live) => {
        if (live) await open(repoPath);
        else original(path, ...rest);
      });
      return undefined;
    };
  }
}

/** The owner's own view, for a shared file opened another way (a restored workspace): its
 * disk view offers the live view instead, so JupyterLab does not fight the session over
 * the file on disk. */
class OfferLive implements DocumentRegistry.IWidgetExtension<Widget, DocumentRegistry.IModel> {
  constructor(
    private state: SessionState,
    private open: (repoPath: string) => Promise<void>,
  ) {}

  createNew(widget: Widget, context: DocumentRegistry.IContext<DocumentRegistry.IModel>): void {
    const repoPath = sharedPath(this.state, context.path);
    if (repoPath === null) return;
    void context.ready.then(async () => {
      if (widget.isDisposed || !(await wantsLive(context.path))) return;
      // let a kernel that is starting finish, then end it with the disk view (disposing a
      // session that is still starting rejects a promise nobody can catch)
      const sessionContext = (context as DocumentRegistry.IContext<DocumentRegistry.IModel>).sessionContext;
      await sessionContext.ready.catch(() => undefined);
      if (sessionContext.session) await sessionContext.shutdown().catch(() => undefined);
      widget.dispose();
      await this.open(repoPath);
    });
  }
}

/** The notebook toolbar's note on whose kernel runs a live notebook's cells, and, where the
 * owner enabled session kernels, the choice of the session's shared kernel; a view-only
 * link's notebook is made read-only here (the session would refuse its edits anyway). */
class KernelNote implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private viewer: (path: string) => boolean) {}

  createNew(panel: NotebookPanel, context: DocumentRegistry.IContext<INotebookModel>): void {
    if (!context.path.startsWith(`${DRIVE}:`)) return;
    const viewOnly = this.viewer(context.path);
    if (viewOnly) {
      const lock = () => {
        for (const cell of panel.content.widgets) cell.readOnly = true;
      };
      panel.content.model?.cells.changed.connect(lock);
      panel.content.modelChanged.connect(lock);
      void context.ready.then(lock);
    }
    const note = new Widget();
    note.addClass('gitrtc-kernel-label');
    const kernel = viewOnly ? undefined : sessionKernels.get((context.model.sharedModel as any).ydoc);
    const own = 'Cells run in a kernel of this JupyterLab (yours), not on the session owner’s machine; the outputs are shared.';
    const render = () => {
      if (viewOnly) {
        note.node.textContent = 'Live · view only';
        return;
      }
      if (!kernel?.offered) {
        note.node.textContent = 'Live · runs on your own kernel';
        note.node.title = kernel?.refusal ? `${own} (${kernel.refusal})` : own;
        return;
      }
      note.node.replaceChildren();
      const choice = document.createElement('select');
      choice.className = 'gitrtc-kernel-choice';
      choice.setAttribute('aria-label', 'Which kernel runs this live notebook');
      for (const [value, label] of [
        ['own', 'your own kernel'],
        ['shared', `the session’s shared kernel (on ${kernel.owner}’s machine)`],
      ]) {
        const option = document.createElement('option');
        option.value = value;
        option.textContent = label;
        option.selected = kernel.choice === value;
        choice.append(option);
      }
      choice.addEventListener('change', () => kernel.choose(choice.value === 'shared' ? 'shared' : 'own'));
      const shared = kernel.choice === 'shared';
      note.node.title = shared
        ? `Cells run in the session’s shared kernel on ${kernel.owner}’s machine: everyone sees the outputs, and they are written by the session even if this tab closes.`
        : own;
      note.node.append('Live · runs on ', choice);
      if (shared) {
        const status = document.createElement('span');
        status.className = 'gitrtc-shared-status';
        status.textContent = ` ${kernel.status || 'not started'}`;
        const act = (label: string, cls: string, op: string) => {
          const b = document.createElement('button');
          b.className = `jp-Button jp-mod-minimal ${cls}`;
          b.textContent = label;
          b.addEventListener('click', () => void kernel.ask(op));
          return b;
        };
        note.node.append(status, act('■', 'gitrtc-shared-interrupt', 'interrupt'), act('↻', 'gitrtc-shared-restart', 'restart'));
      }
      if (kernel.lastError) {
        const error = document.createElement('span');
        error.className = 'gitrtc-kernel-error';
        error.textContent = ` ${kernel.lastError}`;
        note.node.append(error);
      }
    };
    kernel?.onChange(render);
    render();
    panel.toolbar.insertItem(0, 'gitrtc-kernel', note);
  }
}

function summary(r: EndResult): string {
  if (r.commit) {
    return `1 commit on ${r.branch}: ${r.commit.slice(0, 7)} (${r.coauthors.length} co-author(s), ${r.files.length} file(s))`;
  }
  return r.message;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'gitrtc:plugin',
  description: 'Live sessions of gitrtc in JupyterLab',
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [ICommandPalette, IStatusBar, IEditorExtensionRegistry, ILabShell, IDocumentManager],
  activate: (
    app: JupyterFrontEnd,
    browsers: IFileBrowserFactory,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    editorExtensions: IEditorExtensionRegistry | null,
    _labShell: ILabShell | null,
    documents: IDocumentManager | null,
  ) => {
    if (editorExtensions) registerCursors(editorExtensions);
    const state = new SessionState();
    const join = new JoinController(app);

    const askMessage = async (title: string, action: string): Promise<string | null> => {
      const answer = await InputDialog.getText({
        title,
        label: 'Commit message (empty: the default one)',
        placeholder: 'What this session changed',
        okLabel: action,
      });
      return answer.button.accept ? answer.value ?? '' : null;
    };

    const panel = new SessionPanel(state, {
      commit: () => void app.commands.execute(CMD.commit),
      end: () => void app.commands.execute(CMD.end),
      invite: async () => {
        const who = await InputDialog.getText({ title: 'Invite', label: 'Name of the person to invite', okLabel: 'Invite' });
        if (!who.button.accept || !who.value) return;
        try {
          const r = await call<{ url: string }>('invite', { name: who.value });
          await showDialog({ title: `Personal link for ${who.value}`, body: r.url, buttons: [Dialog.okButton()] });
        } catch (err) {
          await showErrorMessage('Invite failed', (err as Error).message);
        }
      },
      kick: async (name: string) => {
        const ok = await showDialog({
          title: 'Remove from the session',
          body: `Revoke ${name}'s links and close their connections?`,
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })],
        });
        if (!ok.button.accept) return;
        try {
          await call('kick', { name });
        } catch (err) {
          await showErrorMessage('Kick failed', (err as Error).message);
        }
        void state.refresh();
      },
    });
    panel.joined.append(join.node);
    panel.openFile = async (path: string) => {
      const s = state.status;
      const token = new URLSearchParams((s.url ?? '').split('#')[1] ?? '').get('t');
      if (!s.running || !token) return;
      const owner = s.owner ?? { name: 'Owner', email: '' };
      const live = await join.openOwn(token, { name: owner.name, email: owner.email, color: colorFor(owner.name) });
      if (live) await join.open(live, path);
    };
    const viewer = (path: string) => join.drive.locate(path)?.session.info.role === 'viewer';
    app.docRegistry.addWidgetExtension('Notebook', new KernelNote(viewer));
    app.docRegistry.addWidgetExtension('Editor', {
      createNew: (widget: Widget, context: DocumentRegistry.IContext<DocumentRegistry.IModel>) => {
        if (!context.path.startsWith(`${DRIVE}:`) || !viewer(context.path)) return;
        void context.ready.then(() => (widget as any).content?.editor?.setOption('readOnly', true));
      },
    });
    const offer = new OfferLive(state, (path) => panel.openFile(path));
    if (documents) offerLiveBeforeOpening(documents, state, (path) => panel.openFile(path));
    app.docRegistry.addWidgetExtension('Notebook', offer);
    app.docRegistry.addWidgetExtension('Editor', offer);
    app.docRegistry.addWidgetExtension('Notebook', new NeverDirty());
    app.docRegistry.addWidgetExtension('Editor', new NeverDirty());

    app.commands.addCommand(CMD.saveCopy, {
      label: 'Save a copy of the live document…',
      isEnabled: () => {
        const w = app.shell.currentWidget;
        return w instanceof DocumentWidget && w.context.path.startsWith(`${DRIVE}:`);
      },
      execute: async () => {
        const w = app.shell.currentWidget;
        if (w instanceof DocumentWidget) await join.saveCopy(w);
      },
    });
    app.shell.add(panel, 'right', { rank: 600 });

    app.commands.addCommand(CMD.share, {
      label: 'Share live…',
      caption: 'Start a gitrtc session of these files (as rtc start would)',
      execute: async () => {
        const browser = browsers.tracker.currentWidget;
        const paths: string[] = [];
        if (browser) for (const item of browser.selectedItems()) paths.push(item.path);
        const what = paths.length ? paths.join(', ') : 'the whole folder (its tracked and untracked files)';
        const ok = await showDialog({
          title: 'Share live',
          body: `Start a live session of ${what}? Anyone with the edit link can edit; ending it makes one commit.`,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Share' })],
        });
        if (!ok.button.accept) return;
        try {
          await call('start', { paths });
        } catch (err) {
          await showErrorMessage('Share live failed', (err as Error).message);
          return;
        }
        await state.refresh();
        app.shell.activateById(panel.id);
      },
    });

    app.commands.addCommand(CMD.commit, {
      label: 'Commit live session…',
      isEnabled: () => state.status.running,
      execute: async () => {
        const message = await askMessage('Commit the session', 'Commit');
        if (message === null) return;
        try {
          const r = await call<EndResult>('commit', { message: message || null });
          await showDialog({ title: 'Committed', body: summary(r), buttons: [Dialog.okButton()] });
        } catch (err) {
          await showErrorMessage('Commit failed', (err as Error).message);
        }
        void state.refresh();
      },
    });

    app.commands.addCommand(CMD.end, {
      label: 'End live session…',
      isEnabled: () => state.status.running,
      execute: async () => {
        const message = await askMessage('End the session', 'End session');
        if (message === null) return;
        join.expectEnd(true);
        try {
          const r = await call<EndResult>('stop', { message: message || null });
          join.endOwn();
          await showDialog({ title: 'Session ended', body: summary(r), buttons: [Dialog.okButton()] });
        } catch (err) {
          join.expectEnd(false);
          await showErrorMessage('Ending the session failed', (err as Error).message);
        }
        void state.refresh();
      },
    });

    app.commands.addCommand(CMD.join, {
      label: 'Join live session…',
      caption: 'Open the files of a gitrtc session in JupyterLab’s editors',
      execute: async () => {
        const answer = await InputDialog.getText({
          title: 'Join live session',
          label: 'Session link (the edit or view-only link its owner gave you)',
          placeholder: 'http://host:8765/#t=…',
          okLabel: 'Join',
        });
        if (!answer.button.accept || !answer.value) return;
        await join.join(answer.value.trim());
        app.shell.activateById(panel.id);
      },
    });

    app.commands.addCommand(CMD.panel, {
      label: 'Show live session panel',
      execute: () => app.shell.activateById(panel.id),
    });

    app.contextMenu.addItem({ command: CMD.share, selector: '.jp-DirListing-content', rank: 3 });
    if (palette) {
      for (const command of [CMD.share, CMD.join, CMD.commit, CMD.end, CMD.panel, CMD.saveCopy]) {
        palette.addItem({ command, category: 'Live session (gitrtc)' });
      }
    }

    if (statusBar) {
      const item = new Widget();
      item.addClass('gitrtc-StatusItem');
      item.node.style.cursor = 'pointer';
      item.node.addEventListener('click', () => app.shell.activateById(panel.id));
      state.onChange((s) => {
        const people = s.participants?.length ?? 0;
        item.node.textContent = s.running ? `● Live: ${people} ${people === 1 ? 'person' : 'people'}` : '';
        item.node.title = s.running ? `gitrtc session ${s.session}: click for its links` : '';
      });
      statusBar.registerStatusItem('gitrtc:status', { item, align: 'left', rank: 5 });
    }
    state.start();
  },
};

/** Runs a live notebook's cells on the session's shared kernel when chosen, else as
 * JupyterLab does (sessionkernel.ts); replaces JupyterLab's own cell executor plugin. */
const executor: JupyterFrontEndPlugin<INotebookCellExecutor> = {
  id: 'gitrtc:cell-executor',
  description: 'Runs live notebooks on the session’s shared kernel when chosen',
  autoStart: true,
  provides: INotebookCellExecutor,
  activate: (): INotebookCellExecutor => cellExecutor,
};

export default [plugin, executor];

// The session's shared kernel (issue 15's `kernel` service) offered inside JupyterLab.
//
// A live notebook runs on this JupyterLab's own kernel by default. Where the owner started
// the session with `--kernels`, the notebook toolbar offers "the session's shared kernel"
// too; chosen, Shift-Enter, Run all and the rest send `run` over the room's request
// channel (channel.ts) instead of executing locally, and the server writes the outputs
// into the shared notebook, where this JupyterLab (and everyone else) sees them arrive
// like any other edit. The choice is made per open notebook, by the cell executor below.
import { InputDialog } from '@jupyterlab/apputils';
import { INotebookCellExecutor, runCell as runLocally } from '@jupyterlab/notebook';
import type { WebsocketProvider } from 'y-websocket';
import { Answer, RequestChannel } from './channel';

export type KernelChoice = 'own' | 'shared';

interface Waiter {
  resolve: (ok: boolean) => void;
}

/** One live notebook's view of the session's shared kernel, and which kernel runs it. */
export class SessionKernel {
  choice: KernelChoice = 'own';
  enabled = false;
  refusal: string | null = null;
  owner = '';
  status = '';
  readonly channel: RequestChannel;
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly listeners = new Set<() => void>();

  constructor(provider: WebsocketProvider) {
    this.channel = new RequestChannel(provider);
    this.channel.onEvent((event, data) => this.onEvent(event, data));
    provider.on('sync', (synced: boolean) => {
      if (synced) void this.refresh();
    });
  }

  /** Whether the shared kernel may be chosen by this participant. */
  get offered(): boolean {
    return this.enabled && !this.refusal;
  }

  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  /** Ask the session whether it runs code, on whose machine, and the kernel's status. */
  async refresh(): Promise<void> {
    const answer = await this.channel.ask('kernel', 'state');
    if (!answer.ok) return;
    const d = answer.data ?? {};
    this.enabled = Boolean(d.enabled);
    this.refusal = d.refusal ?? null;
    this.owner = String(d.owner || 'the owner');
    if (d.shared) this.status = String(d.shared.status ?? '');
    if (!this.offered) this.choice = 'own';
    this.changed();
  }

  choose(choice: KernelChoice): void {
    this.choice = choice === 'shared' && this.offered ? 'shared' : 'own';
    this.changed();
  }

  /** Run one cell on the shared kernel; true once it is done, false if it failed or was refused. */
  async run(cellId: string): Promise<boolean> {
    const done = new Promise<boolean>((resolve) => {
      const list = this.waiters.get(cellId) ?? [];
      list.push({ resolve });
      this.waiters.set(cellId, list);
    });
    const answer = await this.ask('run', { cells: [cellId] });
    if (!answer.ok || !(answer.data?.queued ?? []).includes(cellId)) {
      this.settle(cellId, answer.ok); // refused (said in the toolbar), or not a code cell
    }
    return done;
  }

  /** Interrupt or restart the shared kernel (the toolbar's buttons in shared mode). */
  async ask(op: string, args: Record<string, unknown> = {}): Promise<Answer> {
    const answer = await this.channel.ask('kernel', op, args);
    this.lastError = answer.ok ? '' : String(answer.error ?? 'refused');
    this.changed();
    return answer;
  }

  lastError = '';

  private settle(cellId: string, ok: boolean): void {
    const list = this.waiters.get(cellId);
    if (!list) return;
    this.waiters.delete(cellId);
    for (const w of list) w.resolve(ok);
  }

  private onEvent(event: string, data: any): void {
    if (data?.scope === 'private') return; // JupyterLab's own kernel plays that part here
    if (event === 'kernel.status') {
      this.status = String(data.status ?? '');
      if (data.status === 'dead' && data.last_error) this.lastError = `the shared kernel died: ${data.last_error}`;
      this.changed();
    } else if (event === 'kernel.cell') {
      const state = String(data.state ?? '');
      if (state === 'done') this.settle(String(data.cell), true);
      else if (state === 'error' || state === 'cancelled') this.settle(String(data.cell), false);
    } else if (event === 'kernel.stdin') {
      void this.answerInput(String(data.prompt ?? ''), Boolean(data.password));
    }
  }

  /** `input()` in a cell this JupyterLab ran on the shared kernel: asked here, answered there. */
  private async answerInput(prompt: string, password: boolean): Promise<void> {
    const options = { title: 'The shared kernel asks', label: prompt || 'input', okLabel: 'Send' };
    const answer = password ? await InputDialog.getPassword(options) : await InputDialog.getText(options);
    await this.ask('input_reply', { value: answer.button.accept ? answer.value ?? '' : '' });
  }
}

/** The session kernels of open live notebooks, by their Y.Doc (drive.ts registers them). */
export const sessionKernels = new WeakMap<object, SessionKernel>();

/** The notebook cell executor: a live notebook switched to the session's shared kernel runs
 * its code cells there; everything else runs as JupyterLab always does. It replaces
 * `@jupyterlab/notebook-extension:cell-executor` (package.json `disabledExtensions`), whose
 * `runCell` it calls for all other cells. */
export const cellExecutor: INotebookCellExecutor = Object.freeze({
  async runCell(options: INotebookCellExecutor.IRunCellOptions): Promise<boolean> {
    const { cell, notebook } = options;
    const ydoc = (notebook.sharedModel as any)?.ydoc;
    const kernel = ydoc ? sessionKernels.get(ydoc) : undefined;
    if (!kernel || kernel.choice !== 'shared' || cell.model.type !== 'code') return runLocally(options);
    options.onCellExecutionScheduled({ cell });
    const ok = await kernel.run(cell.model.sharedModel.getId());
    options.onCellExecuted({ cell, success: ok });
    return ok;
  },
});

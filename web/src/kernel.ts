// Running a notebook's code from the browser, over the room's request channel
// (requests.ts; service "kernel"). The shared kernel's outputs arrive through the document like any edit; this module only
// shows the kernel's state, who ran what, the stdin prompt, and a private kernel's
// outputs (which never touch the document).
import type { WebsocketProvider } from 'y-websocket';
import { button, h } from './dom';
import { renderOutputs, type Output } from './outputs';
import { channelOf, type Answer, type RequestChannel } from './requests';

interface CellState {
  cell: string;
  state: 'queued' | 'running' | 'done' | 'error' | 'cancelled' | string;
  by: string;
  at: number;
  scope?: string;
  error?: string;
}

/** The notebook's kernel bar, per-cell run states, stdin prompts and private outputs. */
export class KernelPanel {
  readonly element: HTMLElement;
  readonly channel: RequestChannel;
  private readonly statusText: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly message: HTMLElement;
  private readonly privateBox: HTMLInputElement;
  private readonly controls: HTMLElement;
  private enabled = false;
  private refusal: string | null = null;
  private privateOn = false;
  private switching = 0; // private switches asked and not yet answered
  private readonly states = { shared: new Map<string, CellState>(), private: new Map<string, CellState>() };

  constructor(private readonly root: HTMLElement, provider: WebsocketProvider) {
    this.channel = channelOf(provider);
    this.statusText = h('span', { class: 'kernel-status', 'data-status': 'unknown' }, 'kernel: –');
    this.notice = h('span', { class: 'kernel-notice' });
    this.message = h('span', { class: 'kernel-message', role: 'status' });
    this.privateBox = h('input', { type: 'checkbox', class: 'kernel-private' }) as HTMLInputElement;
    this.privateBox.addEventListener('change', () => void this.setPrivate(this.privateBox.checked));
    this.controls = h('span', { class: 'kernel-controls' },
      button('▶▶ Run all', 'Run all cells', 'kernel-run-all', () => void this.request('run_all')),
      button('■ Interrupt', 'Interrupt the kernel', 'kernel-interrupt', () => void this.request('interrupt')),
      button('↻ Restart', 'Restart the kernel', 'kernel-restart', () => void this.request('restart')),
      h('label', { class: 'kernel-private-label', title: 'Run this notebook in a kernel of your own; its outputs are shown only to you' },
        this.privateBox, ' my own kernel'));
    this.element = h('div', { class: 'kernel-bar', hidden: true }, this.statusText, this.controls, this.notice, this.message);
    this.channel.onEvent((event, data) => this.onEvent(event, data));
    provider.on('sync', (synced: boolean) => {
      if (synced) void this.refresh();
    });
  }

  /** Ask for the kernels' state (on every (re)connection: a private kernel ends with its socket). */
  async refresh(): Promise<void> {
    const answer = await this.channel.ask('kernel', 'state');
    if (!answer.ok) return;
    const d = answer.data;
    this.enabled = Boolean(d.enabled);
    this.refusal = d.refusal ?? null;
    if (!this.switching) {
      // a state asked before a switch the user just made must not undo it on screen
      this.privateOn = Boolean(d.private_on);
      this.privateBox.checked = this.privateOn;
    }
    this.element.hidden = !this.enabled;
    this.notice.textContent = this.enabled ? `Code runs on ${d.owner || "the owner"}'s machine.` : '';
    this.controls.hidden = Boolean(this.refusal);
    if (this.refusal) this.message.textContent = this.refusal;
    for (const scope of ['shared', 'private'] as const) {
      this.states[scope].clear();
      const kernel = d[scope];
      if (kernel) {
        for (const state of Object.values(kernel.cells ?? {})) this.states[scope].set((state as CellState).cell, state as CellState);
        this.showStatus(kernel);
      }
    }
    if (!this.privateOn) this.clearPrivateOutputs();
    this.paintAll();
  }

  get canRun(): boolean {
    return this.enabled && !this.refusal;
  }

  /** Run one cell (Shift-Enter, the cell's ▶). */
  async runCell(cellId: string): Promise<void> {
    if (!this.canRun) return;
    await this.request('run', { cells: [cellId] });
  }

  private async setPrivate(on: boolean): Promise<void> {
    this.switching++;
    let answer: Answer;
    try {
      answer = await this.request('private', { on });
    } finally {
      this.switching--;
    }
    this.privateOn = answer.ok ? on : !on;
    this.privateBox.checked = this.privateOn;
    if (!this.privateOn) {
      this.clearPrivateOutputs();
      this.states.private.clear();
      this.paintAll();
    }
  }

  private async request(op: string, args: Record<string, unknown> = {}): Promise<Answer> {
    const answer = await this.channel.ask('kernel', op, args);
    this.message.textContent = answer.ok ? '' : String(answer.error ?? 'refused');
    this.message.classList.toggle('error', !answer.ok);
    return answer;
  }

  private onEvent(event: string, data: any): void {
    const scope: 'shared' | 'private' = data?.scope === 'private' ? 'private' : 'shared';
    if (event === 'kernel.status') {
      if (scope === 'private' && !this.privateOn) return;
      this.showStatus(data);
    } else if (event === 'kernel.cell') {
      this.states[scope].set(data.cell, data as CellState);
      this.paint(data.cell);
    } else if (event === 'kernel.stdin') {
      this.askInput(data.cell, String(data.prompt ?? ''), Boolean(data.password));
    } else if (event === 'kernel.outputs') {
      this.showPrivateOutputs(data.cell, (data.outputs ?? []) as Output[]);
    }
  }

  private showStatus(kernel: any): void {
    const scope = kernel.scope === 'private' ? 'my kernel' : 'shared kernel';
    const status = String(kernel.status ?? 'unknown');
    this.statusText.dataset.status = status;
    this.statusText.dataset.scope = kernel.scope ?? 'shared';
    const queued = Array.isArray(kernel.queue) ? kernel.queue.length : 0;
    this.statusText.textContent = `${scope} (${kernel.kernel ?? '?'}): ${status}` +
      (queued ? ` · ${queued} queued` : '') +
      (status === 'dead' && kernel.last_error ? ` — ${kernel.last_error}` : '');
  }

  private cellElement(cellId: string): HTMLElement | null {
    return this.root.querySelector(`.cell[data-cell-id="${CSS.escape(cellId)}"]`);
  }

  private paintAll(): void {
    // each element as found (not looked up again by id: that was quadratic in the cells)
    for (const el of this.root.querySelectorAll<HTMLElement>('.cell[data-cell-id]')) this.paintCell(el, el.dataset.cellId ?? '');
  }

  private paint(cellId: string): void {
    const el = this.cellElement(cellId);
    if (el) this.paintCell(el, cellId);
  }

  /** The cell's run badge: state, who, when (the private state wins while it is on). */
  private paintCell(el: HTMLElement, cellId: string): void {
    const state = (this.privateOn && this.states.private.get(cellId)) || this.states.shared.get(cellId);
    let badge = el.querySelector<HTMLElement>('.cell-run-state');
    if (!state) {
      badge?.remove();
      delete el.dataset.runState;
      return;
    }
    if (!badge) {
      badge = h('div', { class: 'cell-run-state' });
      el.querySelector('.cell-gutter')?.appendChild(badge);
    }
    const when = new Date(state.at * 1000).toLocaleTimeString();
    badge.textContent = `${state.state}`;
    badge.title = `${state.state} — run by ${state.by} at ${when}${state.scope === 'private' ? ' (my own kernel)' : ''}` +
      (state.error ? `: ${state.error}` : '');
    el.dataset.runState = state.state;
    el.dataset.runBy = state.by;
  }

  private askInput(cellId: string, prompt: string, password: boolean): void {
    const el = this.cellElement(cellId);
    const host = el?.querySelector('.cell-body') ?? this.element;
    const input = h('input', { type: password ? 'password' : 'text', class: 'kernel-stdin-input', 'aria-label': prompt || 'input' }) as HTMLInputElement;
    const form = h('form', { class: 'kernel-stdin' }, h('span', { class: 'kernel-stdin-prompt' }, prompt), input);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      form.remove();
      void this.request('input_reply', { value: input.value });
    });
    host.appendChild(form);
    input.focus();
  }

  private showPrivateOutputs(cellId: string, outputs: Output[]): void {
    const el = this.cellElement(cellId);
    if (!el) return;
    let box = el.querySelector<HTMLElement>('.cell-private-outputs');
    if (!box) {
      box = h('div', { class: 'cell-private-outputs', title: 'Private: only you see these outputs' });
      el.querySelector('.cell-body')?.appendChild(box);
    }
    renderOutputs(box, outputs);
  }

  private clearPrivateOutputs(): void {
    for (const box of this.root.querySelectorAll('.cell-private-outputs')) box.remove();
  }
}

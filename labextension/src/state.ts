// The owner's session as this JupyterLab sees it, polled from the server extension; the
// panel and the status bar listen to it.
import { call, Status } from './api';

type Listener = (status: Status) => void;

export class SessionState {
  status: Status = { running: false };
  error: string | null = null;
  private listeners: Listener[] = [];
  private timer: number | null = null;

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  /** Poll every `ms` (the panel is the owner's live view of who is there and what is saved). */
  start(ms = 2000): void {
    if (this.timer === null) this.timer = window.setInterval(() => void this.refresh(), ms);
    void this.refresh();
  }

  async refresh(): Promise<Status> {
    try {
      this.status = await call<Status>('status');
      this.error = null;
    } catch (err) {
      this.error = (err as Error).message;
    }
    for (const l of this.listeners) l(this.status);
    return this.status;
  }
}

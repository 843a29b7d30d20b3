// A plugin kind's view: the plugin's ES module (served by the session under
// /plugins/KIND/view.js) mounted on a Y.Doc kept in sync with the file's room.
//
// The module exports `mount(element, context)` (see PluginContext) and may return
// `{ destroy?(), setEditable?(editable) }`. It gets Yjs from the context, never imports
// its own copy (two copies of Yjs cannot share a document).
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import type { WebsocketProvider } from 'y-websocket';
import type { FileInfo } from './api';
import { h } from './dom';
import { channelOf } from './requests';
import { guardAwareness } from './presence';
import { registerView, userState, type DocView, type Place, type ViewContext } from './views';

/** What a plugin's `mount` gets (plugin API v1). */
export interface PluginContext {
  Y: typeof Y;
  doc: Y.Doc;
  awareness: Awareness;
  file: FileInfo;
  /** the role allows editing, and the session is live */
  canEdit: boolean;
  /** resolves once the document is in sync with the server */
  synced: Promise<void>;
  /** ask a service of this room: {ok, data} or {ok: false, error} */
  request(service: string, op: string, args?: Record<string, unknown>): Promise<{ ok: boolean; data?: any; error?: string }>;
  /** events services push to this room ("validate.result", …) */
  onEvent(fn: (event: string, data: any) => void): void;
}

export interface Mounted {
  destroy?(): void;
  setEditable?(editable: boolean): void;
}

type Mount = (element: HTMLElement, ctx: PluginContext) => Mounted | void;

export interface ServiceInfo {
  name: string;
  kinds?: string[] | null;
  panel: string | null;
  error: string | null;
}

/** Mount the panel of every service that ships one and serves this file's kind, above
 * the file's view (built-in or plugin), on the view's own connection. */
export function attachPanels(view: DocView, services: ServiceInfo[] | undefined, ctx: ViewContext): void {
  const mine = (services ?? []).filter((s) => s.panel && !s.error && (!s.kinds || s.kinds.includes(view.file.kind)));
  if (!mine.length) return;
  const channel = channelOf(view.provider);
  const doc = view.provider.doc;
  const synced = new Promise<void>((resolve) => {
    if (view.ready) resolve();
    else view.provider.on('sync', (s: boolean) => { if (s) resolve(); });
  });
  const box = h('aside', { class: 'plugin-panels' });
  view.element.prepend(box);
  for (const service of mine) {
    const host = h('div', { class: `plugin-panel plugin-panel-${service.name}`, 'data-service': service.name });
    box.appendChild(host);
    const context: PluginContext = {
      Y, doc, awareness: view.provider.awareness, file: view.file, canEdit: ctx.canEdit, synced,
      request: (svc, op, args = {}) => channel.ask(svc, op, args),
      onEvent: (fn) => channel.onEvent(fn),
    };
    void import(/* webpackIgnore: true */ service.panel as string).then((mod: { mount?: Mount }) => {
      if (typeof mod.mount !== 'function') throw new Error(`${service.panel} exports no mount()`);
      mod.mount(host, context);
    }).catch((err: unknown) => { host.textContent = `The ${service.name} panel could not be loaded: ${String(err)}`; });
  }
}

/** Register the plugin kinds of /api/session (`plugins.kinds`: kind → module URL). */
export function registerPluginKinds(kinds: Record<string, string | null> | undefined): void {
  for (const [kind, url] of Object.entries(kinds ?? {})) {
    if (url) registerView(kind, async (file, ctx) => new PluginView(file, ctx, url));
  }
}

export class PluginView implements DocView {
  readonly element: HTMLElement;
  readonly provider: WebsocketProvider;
  private readonly doc = new Y.Doc();
  private readonly awareness: Awareness;
  private readonly status: HTMLElement;
  private readonly host: HTMLElement;
  private mounted: Mounted = {};
  private synced = false;
  private ended = false;

  constructor(readonly file: FileInfo, private readonly ctx: ViewContext, url: string | null) {
    this.status = h('div', { class: 'doc-status' }, 'Loading…');
    this.host = h('div', { class: 'plugin-view' });
    this.element = h('section', { class: `doc doc-plugin doc-${file.kind}`, 'data-path': file.path, 'data-ready': 'false' },
      this.status, this.host);
    this.element.hidden = true;
    this.awareness = new Awareness(this.doc);
    guardAwareness(this.awareness);
    this.awareness.setLocalStateField('user', userState(ctx.identity, ctx.canEdit ? 'editor' : 'viewer'));
    this.provider = ctx.conns.open(file.room, this.doc, this.awareness);
    const channel = channelOf(this.provider);
    let resolveSynced: () => void = () => {};
    const synced = new Promise<void>((resolve) => { resolveSynced = resolve; });
    this.provider.on('sync', (isSynced: boolean) => {
      if (isSynced && !this.synced) {
        this.synced = true;
        this.element.dataset.ready = 'true';
        this.status.hidden = true;
        resolveSynced();
        this.refresh();
      }
      ctx.onState();
    });
    const context: PluginContext = {
      Y, doc: this.doc, awareness: this.awareness, file, canEdit: ctx.canEdit, synced,
      request: (service, op, args = {}) => channel.ask(service, op, args),
      onEvent: (fn) => channel.onEvent(fn),
    };
    if (url === null) {
      this.fail(`No browser view is installed for ${file.kind} files.`);
      return;
    }
    void import(/* webpackIgnore: true */ url).then((mod: { mount?: Mount }) => {
      if (typeof mod.mount !== 'function') throw new Error(`${url} exports no mount()`);
      this.mounted = mod.mount(this.host, context) || {};
      this.refresh();
    }).catch((err: unknown) => this.fail(`The ${file.kind} view could not be loaded: ${String(err)}`));
  }

  get ready(): boolean {
    return this.synced;
  }

  private refresh(): void {
    this.mounted.setEditable?.(this.ctx.canEdit && this.synced && !this.ended);
  }

  show(): void { this.element.hidden = false; }
  hide(): void { this.element.hidden = true; }
  end(): void { this.ended = true; this.refresh(); }
  reveal(_place: Place): void {}

  fail(message: string): void {
    this.status.hidden = false;
    this.status.textContent = message;
    this.status.classList.add('error');
    this.ended = true;
    this.refresh();
  }

  destroy(): void {
    this.mounted.destroy?.();
    this.ctx.conns.close(this.provider);
    this.doc.destroy();
  }
}

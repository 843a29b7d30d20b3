// Entry point: read the token from the fragment, ask the server who we are, ask the
// participant's name once, then start the app.
import './app.css';
import { ApiError, fetchSession, joinSession, readToken } from './api';
import { App } from './app';
import { HTTP } from './closecodes';
import { h } from './dom';
import { getIdentity } from './identity';

function fatal(root: HTMLElement, title: string, detail: string): void {
  document.body.dataset.session = 'error';
  root.replaceChildren(h('div', { class: 'fatal', role: 'alert' }, h('h1', null, title), h('p', null, detail)));
}

async function boot(): Promise<void> {
  const root = document.getElementById('app') ?? document.body;
  const token = readToken();
  if (!token) {
    fatal(root, 'No session token', 'Open the full link that `rtc start` printed (it ends in #t=…).');
    return;
  }
  let info;
  try {
    info = await fetchSession(token);
  } catch (err) {
    if (err instanceof ApiError && err.status === HTTP.UnauthorizedError) {
      fatal(root, 'This link is not valid', 'The token was not accepted: the session may have ended, or the link is incomplete.');
    } else {
      fatal(root, 'Cannot reach the session', err instanceof Error ? err.message : String(err));
    }
    return;
  }
  root.replaceChildren();
  // a new link in this tab (the next session's, another person's): start over with it
  window.addEventListener('hashchange', () => {
    if (readToken() !== token) location.reload();
  });
  let identity = await getIdentity(root, info.role, info.name ?? null);
  let personal: string;
  try {
    const joined = await joinSession(token, identity.name);
    personal = joined.token;
    if (joined.name && joined.name !== identity.name) identity = { ...identity, name: joined.name };
  } catch (err) {
    fatal(root, 'Cannot join the session', err instanceof Error ? err.message : String(err));
    return;
  }
  const app = new App(root, info, identity, personal);
  (window as unknown as { gitrtc?: App }).gitrtc = app;
}

void boot();

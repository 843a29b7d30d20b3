// Drive a real gitrtc session with the official JavaScript clients: yjs, y-websocket's
// WebsocketProvider and @jupyter/ydoc's YFile / YNotebook models.
//
//   node edit_session.mjs '<json plan>'
//
// plan = {
//   server: "ws://127.0.0.1:PORT/rooms", token, name, email?,
//   text?: { room, append },                  // append a string to a text room
//   notebook?: { room, cell: {cell_type, source, ...} },   // add a cell at the end
//   offline?: { room, append?: {cell, text}, move?: [from, to] },
//       // sync, go offline, append text to a cell's source and/or move a cell (YNotebook's
//       // moveCell: delete + copy), print {"offline": true}, reconnect on a line on stdin,
//       // print {"resynced": true} once synced, stay until stdin ends
//   timeout_ms?: 20000
// }
// Prints one JSON line: { text, cells, confirmed } where `text` / `cells` are what a
// second, fresh client reads back from the server after the edits (so the server has them).
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { YFile, YNotebook } from '@jupyter/ydoc';
import WebSocket from 'ws';

const plan = JSON.parse(process.argv[2]);
const timeoutMs = plan.timeout_ms ?? 20000;
const providers = [];

function fail(message) {
  process.stderr.write(`edit_session: ${message}\n`);
  process.exit(1);
}

setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

function connect(room, model) {
  const params = { token: plan.token, name: plan.name };
  if (plan.email) params.email = plan.email;
  const provider = new WebsocketProvider(plan.server, room, model.ydoc, {
    params,
    awareness: model.awareness,
    WebSocketPolyfill: WebSocket,
    disableBc: true,
  });
  provider.on('closed', ({ code, reason }) => fail(`room ${room} closed by the server: ${code} ${reason}`));
  providers.push(provider);
  return new Promise((resolve) => {
    if (provider.synced) resolve(provider);
    provider.on('sync', (synced) => synced && resolve(provider));
  });
}

async function until(predicate, what) {
  const start = Date.now();
  for (;;) {
    if (predicate()) return;
    if (Date.now() - start > timeoutMs) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const result = { text: null, cells: null, confirmed: true };

if (plan.text) {
  const file = new YFile();
  await connect(plan.text.room, file);
  file.awareness.setLocalStateField('user', { name: plan.name, color: '#30bced' });
  const expected = file.source + plan.text.append;
  file.ysource.insert(file.ysource.length, plan.text.append);
  // read it back through the server with a second, fresh client
  const check = new YFile();
  await connect(plan.text.room, check);
  await until(() => check.source === expected, 'the text edit to reach the server');
  result.text = check.source;
}

if (plan.notebook) {
  const nb = new YNotebook();
  await connect(plan.notebook.room, nb);
  const cell = nb.addCell(plan.notebook.cell);
  const id = cell.getId();
  const check = new YNotebook();
  await connect(plan.notebook.room, check);
  await until(() => check.cells.some((c) => c.getId() === id && c.getSource() === plan.notebook.cell.source),
    'the new cell to reach the server');
  result.cells = check.cells.map((c) => c.toJSON());
}

if (plan.offline) {
  const o = plan.offline;
  const nb = new YNotebook();
  const provider = await connect(o.room, nb);
  provider.disconnect();
  if (o.append) {
    const cell = nb.cells.find((c) => c.getId() === o.append.cell) ?? fail(`no cell ${o.append.cell}`);
    cell.ysource.insert(cell.ysource.length, o.append.text);
  }
  if (o.move) nb.moveCell(o.move[0], o.move[1]);
  process.stdout.write(`${JSON.stringify({ offline: true })}\n`);
  const lines = [];
  let ended = false;
  process.stdin.on('data', (chunk) => lines.push(chunk));
  process.stdin.on('end', () => { ended = true; });
  await until(() => lines.length > 0 || ended, 'the go-ahead on stdin');
  provider.connect();
  await until(() => provider.synced, 'the resync');
  process.stdout.write(`${JSON.stringify({ resynced: true })}\n`);
  await new Promise((r) => setTimeout(r, 0));
  const forever = Date.now();
  while (!ended) {
    if (Date.now() - forever > timeoutMs) fail('stdin never ended');
    await new Promise((r) => setTimeout(r, 20));
  }
  result.cells = nb.cells.map((c) => c.toJSON());
}

for (const p of providers) p.destroy();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);

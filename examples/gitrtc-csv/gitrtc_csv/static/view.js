// gitrtc-csv's browser view: the table as a grid of inputs, bound to the shared Y.Doc.
//
// Plugin API v1 (gitrtc docs/plugins.md): `mount(element, ctx)` gets Yjs as `ctx.Y`
// (never import a second copy), the document `ctx.doc` (root `rows`: a Y.Array of
// Y.Maps, column number -> cell text). Plain DOM, no dependencies. (The validate
// service's button and results are its own panel, panel.js.)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function values(row) {
  const cells = new Map();
  row.forEach((v, k) => { if (/^\d+$/.test(k)) cells.set(Number(k), String(v)); });
  const width = cells.size ? Math.max(...cells.keys()) + 1 : 0;
  return Array.from({ length: width }, (_, i) => cells.get(i) ?? '');
}

const STYLE = `
.csv-grid { border-collapse: collapse; margin: 0.5rem 0; font: 13px/1.4 ui-monospace, monospace; }
.csv-grid td, .csv-grid th { border: 1px solid #ccc; padding: 0; }
.csv-grid th input { font-weight: bold; background: #f4f4f4; }
.csv-grid input { border: 0; padding: 2px 6px; width: 10em; font: inherit; background: transparent; }
.csv-grid input:focus { outline: 2px solid #4a90d9; background: #fff; }
.csv-bar { display: flex; gap: 0.5rem; align-items: center; }
`;

export function mount(element, ctx) {
  if (!document.getElementById('gitrtc-csv-style')) {
    const style = document.createElement('style');
    style.id = 'gitrtc-csv-style';
    style.textContent = STYLE;
    document.head.append(style);
  }
  const { Y, doc } = ctx;
  const rows = doc.getArray('rows');
  let editable = false;
  const table = el('table', { class: 'csv-grid', 'aria-label': `Table ${ctx.file.path}` });
  const addRow = el('button', { type: 'button', class: 'csv-add-row' }, '+ Row');
  element.append(el('div', { class: 'csv-bar' }, addRow), table);

  const input = (r, c, value) => {
    const box = el('input', { 'data-row': String(r), 'data-col': String(c), 'aria-label': `row ${r + 1} column ${c + 1}` });
    box.value = value;
    box.readOnly = !editable;
    box.addEventListener('change', () => {
      const row = rows.get(r);
      if (row instanceof Y.Map && row.get(String(c)) !== box.value) row.set(String(c), box.value);
    });
    return box;
  };

  const render = () => {
    const all = rows.toArray().map((row) => (row instanceof Y.Map ? values(row) : []));
    const width = Math.max(0, ...all.map((r) => r.length));
    const focused = document.activeElement;
    const keep = focused && table.contains(focused) ? [focused.dataset.row, focused.dataset.col] : null;
    table.replaceChildren(...all.map((vals, r) => el('tr', {},
      ...Array.from({ length: width }, (_, c) => el(r === 0 ? 'th' : 'td', {}, input(r, c, vals[c] ?? ''))))));
    if (keep) table.querySelector(`input[data-row="${keep[0]}"][data-col="${keep[1]}"]`)?.focus();
  };

  rows.observeDeep(render);
  ctx.synced.then(render);
  addRow.addEventListener('click', () => {
    const width = rows.length ? values(rows.get(0)).length : 1;
    const row = new Y.Map();
    rows.push([row]);
    for (let i = 0; i < width; i++) row.set(String(i), '');
  });
  render();
  return {
    setEditable(on) {
      editable = on;
      addRow.disabled = !on;
      for (const box of table.querySelectorAll('input')) box.readOnly = !on;
    },
    destroy() { rows.unobserveDeep(render); },
  };
}

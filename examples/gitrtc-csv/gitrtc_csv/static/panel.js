// The validate service's panel (plugin API v1, gitrtc docs/plugins.md): a button that
// asks the server to check the table, and the last result, which every participant of
// the room sees (the service pushes `validate.result` to all of them).

export function mount(element, ctx) {
  const check = document.createElement('button');
  check.type = 'button';
  check.className = 'csv-validate';
  check.textContent = 'Validate';
  const result = document.createElement('span');
  result.className = 'csv-result';
  result.setAttribute('role', 'status');
  element.append(check, ' ', result);

  const show = (data) => {
    result.dataset.ok = String(data.ok);
    result.textContent = data.ok
      ? `✓ ${data.rows} rows, ${data.columns} columns: no problems (checked by ${data.by})`
      : `✗ ${data.problems.length} problem(s), checked by ${data.by}: ` +
        data.problems.slice(0, 5).map((p) => `row ${p.row}${p.column ? ` column ${p.column}` : ''}: ${p.problem}`).join('; ');
  };
  ctx.onEvent((event, data) => { if (event === 'validate.result') show(data); });
  ctx.synced.then(() => ctx.request('validate', 'last')).then((a) => { if (a.ok && a.data) show(a.data); });
  check.addEventListener('click', async () => {
    const answer = await ctx.request('validate', 'check');
    if (!answer.ok) result.textContent = answer.error;
  });
}

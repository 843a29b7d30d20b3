// The test service's panel: a button that asks `hello.ping` and shows the answer.
export function mount(element, ctx) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'hello-ping';
  button.textContent = 'Ping';
  const out = document.createElement('span');
  out.className = 'hello-answer';
  element.append(button, out);
  button.addEventListener('click', async () => {
    const answer = await ctx.request('hello', 'ping');
    out.textContent = answer.ok ? answer.data : `error: ${answer.error}`;
  });
}

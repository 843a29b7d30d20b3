// The built-in views, registered through the same API as a plugin's (views.ts).
import { TextView } from './textview';
import { registerView } from './views';

registerView('text', async (file, ctx) => new TextView(file, ctx));
registerView('notebook', async (file, ctx) => {
  // the notebook view (with marked and DOMPurify) is a separate chunk
  const { NotebookView } = await import('./notebook');
  return new NotebookView(file, ctx);
});

// Other people's cursors and selections, with their names, in the CodeMirror editors of
// live documents: y-codemirror.next's remote selections (the very plugin gitrtc's own
// browser client uses, so both read and write the same awareness `cursor` and `user`
// fields). Only the selections part: JupyterLab binds the text itself.
import { EditorExtensionRegistry, IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { yRemoteSelections, yRemoteSelectionsTheme, ySyncFacet, YSyncConfig } from 'y-codemirror.next';

/** The Y.Docs of live documents (drive.ts adds them): other documents get no extension. */
export const liveDocs = new WeakSet<object>();

export function registerCursors(registry: IEditorExtensionRegistry): void {
  registry.addExtension({
    name: 'gitrtc:remote-cursors',
    factory(options) {
      const shared = options.model.sharedModel as any;
      const ytext = shared?.ysource;
      const awareness = shared?.awareness;
      if (!ytext || !awareness || !ytext.doc || !liveDocs.has(ytext.doc)) return null;
      return EditorExtensionRegistry.createImmutableExtension([
        ySyncFacet.of(new YSyncConfig(ytext, awareness)),
        yRemoteSelectionsTheme,
        yRemoteSelections,
      ]);
    },
  });
}

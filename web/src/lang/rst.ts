// A small reStructuredText highlighter: titles, directives, roles, literals, emphasis.
import { LanguageSupport, StreamLanguage, type StringStream } from '@codemirror/language';

const rstLanguage = StreamLanguage.define<Record<string, never>>({
  name: 'rst',
  startState: () => ({}),
  token(stream: StringStream) {
    if (stream.sol()) {
      if (stream.match(/^\.\. [\w:-]+::/)) return 'keyword';
      if (stream.match(/^\.\. \[[^\]]+\]/)) return 'labelName';
      if (stream.match(/^\.\. _[^:]+:/)) return 'labelName';
      if (stream.match(/^\.\.(\s|$)/)) {
        stream.skipToEnd();
        return 'comment';
      }
      if (stream.match(/^([=\-`:'"~^_*+#<>])\1{2,}\s*$/)) return 'heading';
      if (stream.match(/^\s*:[\w -]+:/)) return 'attributeName';
    }
    if (stream.match(/^``[^`]+``/)) return 'monospace';
    if (stream.match(/^:[\w:+-]+:`[^`]*`/)) return 'link';
    if (stream.match(/^`[^`]+`_{0,2}/)) return 'link';
    if (stream.match(/^\*\*[^*]+\*\*/)) return 'strong';
    if (stream.match(/^\*[^*\s][^*]*\*/)) return 'emphasis';
    if (stream.match(/^\|[^|\s][^|]*\|/)) return 'variableName';
    stream.next();
    return null;
  },
});

export const rst = (): LanguageSupport => new LanguageSupport(rstLanguage);

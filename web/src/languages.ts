// Syntax highlighting by file name. Each language is a separate chunk, loaded the first
// time a file of that kind is opened, so the initial bundle stays small. Bundled:
// Markdown (with highlighted fenced code), Python, C/C++, JSON, YAML, TOML, shell,
// reStructuredText (a tiny mode of our own); anything else is plain text.
import { LanguageDescription, LanguageSupport, StreamLanguage } from '@codemirror/language';

const legacy = async (mode: Promise<{ [k: string]: unknown }>, name: string): Promise<LanguageSupport> =>
  new LanguageSupport(StreamLanguage.define((await mode)[name] as never));

const CODE: LanguageDescription[] = [
  LanguageDescription.of({
    name: 'Python', alias: ['python3', 'ipython', 'ipython3', 'py'],
    extensions: ['py', 'pyi', 'pyw', 'pyx', 'pxd'],
    load: () => import('@codemirror/lang-python').then((m) => m.python()),
  }),
  LanguageDescription.of({
    name: 'C++', alias: ['c', 'cpp', 'c++', 'cc', 'cuda', 'h', 'hpp'],
    extensions: ['c', 'h', 'cc', 'cpp', 'cxx', 'c++', 'hpp', 'hh', 'hxx', 'cu', 'cuh', 'ino'],
    load: () => import('@codemirror/lang-cpp').then((m) => m.cpp()),
  }),
  LanguageDescription.of({
    name: 'JSON', alias: ['json5', 'jsonc', 'geojson'],
    extensions: ['json', 'geojson', 'jsonc', 'ipynb', 'jupyterlab-settings'],
    load: () => import('@codemirror/lang-json').then((m) => m.json()),
  }),
  LanguageDescription.of({
    name: 'YAML', alias: ['yml'],
    extensions: ['yaml', 'yml', 'cff'],
    load: () => import('@codemirror/lang-yaml').then((m) => m.yaml()),
  }),
  LanguageDescription.of({
    name: 'TOML',
    extensions: ['toml'],
    filename: /^(pyproject|Cargo|Pipfile)$/i,
    load: () => legacy(import('@codemirror/legacy-modes/mode/toml'), 'toml'),
  }),
  LanguageDescription.of({
    name: 'Shell', alias: ['bash', 'sh', 'zsh', 'console', 'shell-session'],
    extensions: ['sh', 'bash', 'zsh', 'ksh'],
    filename: /^(Makefile|Dockerfile|\.bashrc|\.profile|\.zshrc)$/,
    load: () => legacy(import('@codemirror/legacy-modes/mode/shell'), 'shell'),
  }),
  LanguageDescription.of({
    name: 'reStructuredText', alias: ['rst', 'rest'],
    extensions: ['rst', 'rest'],
    load: () => import('./lang/rst').then((m) => m.rst()),
  }),
];

export const MARKDOWN = LanguageDescription.of({
  name: 'Markdown', alias: ['md', 'myst'],
  extensions: ['md', 'markdown', 'mdown', 'mkd', 'qmd', 'rmd', 'myst'],
  filename: /^README$/i,
  load: () => import('@codemirror/lang-markdown').then((m) =>
    m.markdown({ base: m.markdownLanguage, codeLanguages: CODE })),
});

const ALL = [...CODE, MARKDOWN];

/** The language of a file, by name (null: plain text). */
export function languageFor(path: string): LanguageDescription | null {
  const base = path.split('/').pop() ?? path;
  return LanguageDescription.matchFilename(ALL, base);
}

/** The language of a notebook's code cells, from its metadata (default Python). */
export function notebookLanguage(metadata: Record<string, unknown> | undefined): LanguageDescription | null {
  const info = (metadata?.language_info ?? {}) as { name?: string; file_extension?: string };
  const kernel = (metadata?.kernelspec ?? {}) as { language?: string };
  const ext = (info.file_extension ?? '').replace(/^\./, '');
  const name = String(info.name ?? kernel.language ?? 'python');
  return (ext ? languageFor(`x.${ext}`) : null) ?? LanguageDescription.matchLanguageName(ALL, name, false);
}

/** Prose (markdown, rst, plain text) wraps lines; code does not. */
export function isProse(lang: LanguageDescription | null): boolean {
  return lang === null || lang === MARKDOWN || lang.name === 'reStructuredText';
}

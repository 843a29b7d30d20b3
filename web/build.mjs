// Builds the browser client into ../gitrtc/static/ (generated, gitignored).
//   node build.mjs            production bundle (minified, no source maps)
//   node build.mjs --dev      unminified with inline source maps
//   node build.mjs --watch    --dev, rebuilding on change
import * as esbuild from 'esbuild';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'gitrtc', 'static');
const watch = process.argv.includes('--watch');
const dev = watch || process.argv.includes('--dev');

const options = {
  entryPoints: { app: join(here, 'src', 'main.ts') },
  outdir,
  bundle: true,
  // ES modules with code splitting: languages and the notebook view are separate chunks,
  // loaded when first needed. Chunks stay flat in static/ (the server serves /static/{file}).
  format: 'esm',
  splitting: true,
  chunkNames: '[name]-[hash]',
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  minify: !dev,
  sourcemap: dev ? 'inline' : false,
  legalComments: dev ? 'inline' : 'linked',
  metafile: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
};

await mkdir(outdir, { recursive: true });
for (const stale of await readdir(outdir)) {
  if (/\.(js|css|map|txt|woff2)$/.test(stale)) await rm(join(outdir, stale), { force: true });
}
await copyFile(join(here, 'index.html'), join(outdir, 'index.html'));
await copyKatex();

/** KaTeX's stylesheet and its woff2 fonts, flat in static/ (the server serves
 * /static/{file} only, and the CSP allows fonts from 'self' only): the stylesheet's
 * `url(fonts/X.woff2) format("woff2"), url(fonts/X.woff) …` become `url(X.woff2)`. */
async function copyKatex() {
  const dist = join(here, 'node_modules', 'katex', 'dist');
  const css = await readFile(join(dist, 'katex.min.css'), 'utf8');
  const rewritten = css.replace(
    /src:url\(fonts\/([A-Za-z0-9_-]+\.woff2)\) format\("woff2"\)(?:,url\([^)]*\) format\("[a-z]+"\))*/g,
    (_m, font) => `src:url(${font}) format("woff2")`);
  if (rewritten.includes('fonts/')) throw new Error('katex.min.css: unexpected font references');
  await writeFile(join(outdir, 'katex.css'), rewritten);
  for (const font of await readdir(join(dist, 'fonts'))) {
    if (font.endsWith('.woff2')) await copyFile(join(dist, 'fonts', font), join(outdir, font));
  }
}

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching; output in ${outdir}`);
} else {
  const result = await esbuild.build(options);
  // what a browser loads up front: app.js, app.css and the chunks they import statically
  const outputs = result.metafile.outputs;
  const key = (name) => Object.keys(outputs).find((k) => k.split("/").pop() === name);
  const initial = new Set();
  const visit = (k) => {
    if (!k || initial.has(k)) return;
    initial.add(k);
    for (const imp of outputs[k].imports) if (imp.kind === 'import-statement') visit(imp.path);
  };
  visit(key('app.js'));
  visit(key('app.css'));
  const size = async (keys, zip) => {
    let n = 0;
    for (const k of keys) {
      const data = await readFile(join(outdir, k.split('/').pop()));
      n += zip ? gzipSync(data, { level: 9 }).length : data.length;
    }
    return `${(n / 1024).toFixed(0)} KiB`;
  };
  const all = Object.keys(outputs).filter((k) => /\.(js|css)$/.test(k));
  console.log(`built gitrtc/static${dev ? ' (dev)' : ''}: initial load ${await size(initial)} `
    + `(${await size(initial, true)} gzipped), everything incl. lazy chunks ${await size(all)} (${await size(all, true)} gzipped)`);
  if (process.argv.includes('--analyze')) {
    console.log(await esbuild.analyzeMetafile(result.metafile));
  }
}

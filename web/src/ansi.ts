// ANSI SGR escape sequences (colours, bold) -> DOM spans. Text is inserted as text
// nodes, so the output is escaped by construction. Everything that is not an SGR
// sequence (cursor movement, OSC titles, ...) is dropped.

const NAMES = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

interface Style {
  fg: string | null; // class name or rgb()
  bg: string | null;
  bold: boolean;
  italic: boolean;
  underline: boolean;
}

const plain = (): Style => ({ fg: null, bg: null, bold: false, italic: false, underline: false });

function xterm256(n: number): string {
  if (n < 16) {
    const base = n < 8 ? NAMES[n] : NAMES[n - 8];
    return n < 8 ? `ansi-${base}` : `ansi-bright-${base}`;
  }
  if (n < 232) {
    const v = n - 16;
    const steps = [0, 95, 135, 175, 215, 255];
    return `rgb(${steps[Math.floor(v / 36)]},${steps[Math.floor(v / 6) % 6]},${steps[v % 6]})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey},${grey},${grey})`;
}

function applyCodes(style: Style, codes: number[]): Style {
  const s = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(s, plain());
    else if (c === 1) s.bold = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s.bold = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = `ansi-${NAMES[c - 30]}`;
    else if (c >= 90 && c <= 97) s.fg = `ansi-bright-${NAMES[c - 90]}`;
    else if (c >= 40 && c <= 47) s.bg = `ansi-${NAMES[c - 40]}`;
    else if (c >= 100 && c <= 107) s.bg = `ansi-bright-${NAMES[c - 100]}`;
    else if (c === 39) s.fg = null;
    else if (c === 49) s.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5 && i + 2 < codes.length) {
      const v = xterm256(codes[i + 2]);
      if (c === 38) s.fg = v;
      else s.bg = v;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2 && i + 4 < codes.length) {
      const v = `rgb(${codes[i + 2] & 255},${codes[i + 3] & 255},${codes[i + 4] & 255})`;
      if (c === 38) s.fg = v;
      else s.bg = v;
      i += 4;
    }
  }
  return s;
}

function styled(text: string, s: Style): Node {
  if (!s.fg && !s.bg && !s.bold && !s.italic && !s.underline) return document.createTextNode(text);
  const span = document.createElement('span');
  span.textContent = text;
  const classes: string[] = [];
  if (s.fg) {
    if (s.fg.startsWith('rgb(')) span.style.color = s.fg;
    else classes.push(`${s.fg}-fg`);
  }
  if (s.bg) {
    if (s.bg.startsWith('rgb(')) span.style.backgroundColor = s.bg;
    else classes.push(`${s.bg}-bg`);
  }
  if (s.bold) classes.push('ansi-bold');
  if (s.italic) classes.push('ansi-italic');
  if (s.underline) classes.push('ansi-underline');
  if (classes.length) span.className = classes.join(' ');
  return span;
}

// CSI sequences (ESC [ params final) and OSC sequences (ESC ] ... BEL/ST), plus lone ESC.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b/g;

/** Convert text with ANSI escapes into a fragment of text nodes and styled spans. */
export function ansiToFragment(text: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  let style = plain();
  let last = 0;
  // Handle carriage returns the way a terminal would for progress bars: keep the text after
  // the last \r of each line.
  const input = text.replace(/[^\n]*\r(?!\n)/g, '');
  for (const m of input.matchAll(ESCAPES)) {
    const index = m.index ?? 0;
    if (index > last) frag.appendChild(styled(input.slice(last, index), style));
    last = index + m[0].length;
    if (m[2] === 'm') {
      const codes = (m[1] || '0')
        .split(';')
        .map((p) => (p === '' ? 0 : Number.parseInt(p, 10)))
        .filter((n) => Number.isFinite(n));
      style = applyCodes(style, codes);
    }
  }
  if (last < input.length) frag.appendChild(styled(input.slice(last), style));
  return frag;
}

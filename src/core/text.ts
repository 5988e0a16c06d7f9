/**
 * Escapes control characters (C0, DEL, C1, line/paragraph separators, bidi overrides) so that input echoed
 * into the terminal, an audit row or a log can never forge a line or repaint the screen.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

export function escapeControl(value: string): string {
  return value.replace(CONTROL, (c) => {
    const code = c.codePointAt(0)!;
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

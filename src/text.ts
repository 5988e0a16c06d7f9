/**
 * Escapes control characters (C0, DEL, C1, line/paragraph separators), invisible and bidirectional formatting
 * characters (Cf: zero-width spaces, bidi overrides, soft hyphens, BOMs) and every space other than the ASCII one,
 * so that input echoed into the terminal, an audit row or a log can never forge a line, repaint the screen, or
 * pass for another address.
 */
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu;

export function escapeControl(value: string): string {
  return value.replace(CONTROL, (char) => {
    const code = char.codePointAt(0)!;
    if (char === '\n') return '\\n';
    if (char === '\r') return '\\r';
    if (char === '\t') return '\\t';
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * A strict JSON reader for foreign stores' JSON text (SOGo's profile, mailcow's mailbox attributes).
 *
 * Why not JSON.parse: it silently keeps the last of duplicate keys (so which value the owning application sees is
 * unknown: refuse instead), and re-serialising its result changes bytes the application wrote (`1.0` → `1`,
 * `"\u00e9"` → `"é"`, integers beyond 2^53 lose digits). This reader keeps every value's source span, so a change
 * rewrites exactly one top-level member's value and leaves every other byte as it was.
 *
 * Grammar: RFC 8259 exactly (whitespace = space, tab, LF, CR; no comments, trailing commas, single quotes, raw
 * control characters in strings, leading zeros or `+`), nesting at most 256 deep.
 */

export type JsonNode =
  | { type: 'object'; members: JsonMember[]; start: number; end: number }
  | { type: 'array'; items: JsonNode[]; start: number; end: number }
  | { type: 'string'; value: string; start: number; end: number }
  | { type: 'number'; raw: string; start: number; end: number }
  | { type: 'literal'; value: boolean | null; start: number; end: number };

export interface JsonMember {
  key: string;
  /** Offset of the key's opening quote. */
  start: number;
  value: JsonNode;
}

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = 'JsonSyntaxError';
  }
}

const MAX_DEPTH = 256;

export function parseStrictJson(text: string): JsonNode {
  let pos = 0;

  const fail = (message: string): never => {
    throw new JsonSyntaxError(message, pos);
  };
  const ws = () => {
    while (pos < text.length) {
      const code = text.charCodeAt(pos);
      if (code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d) pos++;
      else break;
    }
  };

  const string = (): { value: string; start: number; end: number } => {
    const start = pos;
    pos++; // opening quote
    let value = '';
    for (;;) {
      if (pos >= text.length) fail('unterminated string');
      const code = text.charCodeAt(pos);
      if (code === 0x22) {
        pos++;
        return { value, start, end: pos };
      }
      if (code < 0x20) fail('control character in a string');
      if (code !== 0x5c) {
        value += text[pos];
        pos++;
        continue;
      }
      const escaped = text[pos + 1];
      const simple: Record<string, string> = {
        '"': '"',
        '\\': '\\',
        '/': '/',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
      };
      if (escaped !== undefined && escaped in simple) {
        value += simple[escaped];
        pos += 2;
      } else if (escaped === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(pos + 2, pos + 6))) {
        value += String.fromCharCode(parseInt(text.slice(pos + 2, pos + 6), 16));
        pos += 6;
      } else {
        fail('invalid escape in a string');
      }
    }
  };

  const value = (depth: number): JsonNode => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    ws();
    const start = pos;
    const char = text[pos];
    if (char === '{') {
      pos++;
      const members: JsonMember[] = [];
      const seen = new Set<string>();
      ws();
      if (text[pos] === '}') {
        pos++;
        return { type: 'object', members, start, end: pos };
      }
      for (;;) {
        ws();
        if (text[pos] !== '"') fail('expected a string key');
        const key = string();
        if (seen.has(key.value)) {
          pos = key.start;
          fail(`duplicate key "${escapeForMessage(key.value)}"`);
        }
        seen.add(key.value);
        ws();
        if (text[pos] !== ':') fail('expected ":"');
        pos++;
        members.push({ key: key.value, start: key.start, value: value(depth + 1) });
        ws();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === '}') {
          pos++;
          return { type: 'object', members, start, end: pos };
        }
        fail('expected "," or "}"');
      }
    }
    if (char === '[') {
      pos++;
      const items: JsonNode[] = [];
      ws();
      if (text[pos] === ']') {
        pos++;
        return { type: 'array', items, start, end: pos };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === ']') {
          pos++;
          return { type: 'array', items, start, end: pos };
        }
        fail('expected "," or "]"');
      }
    }
    if (char === '"') return { type: 'string', ...string() };
    const num = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(pos, pos + 400));
    if (num && num[0].length > 0) {
      pos += num[0].length;
      return { type: 'number', raw: num[0], start, end: pos };
    }
    for (const [word, literal] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return { type: 'literal', value: literal, start, end: pos };
      }
    }
    return fail('unexpected character');
  };

  const root = value(0);
  ws();
  if (pos !== text.length) fail('unexpected text after the JSON value');
  return root;
}

function escapeForMessage(text: string): string {
  const cut = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return cut.replace(
    /[\u0000-\u001f\u007f-\u009f"\\]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The member `key` of an object node (keys are unique: duplicates were refused). */
export function member(node: JsonNode, key: string): JsonNode | undefined {
  if (node.type !== 'object') return undefined;
  return node.members.find((m) => m.key === key)?.value;
}

/**
 * `text` (a JSON object) with the top-level member `key` set to the JSON literal `json`: the member's value span
 * is replaced when present, otherwise a member is appended after the last one. Every other byte stays. The result
 * is parsed again and checked member by member (same keys, same source text, only `key` changed) before it is
 * returned; any difference throws.
 */
export function setTopLevelMember(text: string, root: JsonNode, key: string, json: string): string {
  if (root.type !== 'object') throw new TypeError('setTopLevelMember: not a JSON object');
  const literal = parseStrictJson(json);
  const existing = root.members.find((m) => m.key === key);
  let out: string;
  if (existing) {
    out = text.slice(0, existing.value.start) + json + text.slice(existing.value.end);
  } else {
    const last = root.members.at(-1);
    const at = last ? last.value.end : root.start + 1;
    out = text.slice(0, at) + (last ? ',' : '') + JSON.stringify(key) + ':' + json + text.slice(at);
  }

  const after = parseStrictJson(out);
  if (after.type !== 'object') throw new Error('setTopLevelMember: result is not an object');
  const source = (t: string, m: JsonMember) => t.slice(m.start, m.value.end);
  const before = new Map(root.members.map((m) => [m.key, source(text, m)]));
  for (const entry of after.members) {
    if (entry.key === key) {
      if (!sameValue(entry.value, literal, out, json)) throw new Error('setTopLevelMember: written value differs');
      continue;
    }
    if (before.get(entry.key) !== source(out, entry))
      throw new Error(`setTopLevelMember: member "${escapeForMessage(entry.key)}" changed`);
    before.delete(entry.key);
  }
  before.delete(key);
  if (before.size > 0 || !after.members.some((m) => m.key === key)) throw new Error('setTopLevelMember: members lost');
  return out;
}

function sameValue(node: JsonNode, literal: JsonNode, nodeText: string, literalText: string): boolean {
  return nodeText.slice(node.start, node.end) === literalText.slice(literal.start, literal.end);
}

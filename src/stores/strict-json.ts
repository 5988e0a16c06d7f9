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
/** Characters a string holds as they are: anything but `"`, `\\` and controls (sticky, from `lastIndex`). */
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;
/** A JSON number at `lastIndex` (sticky: no copy of the text). */
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/** The literals, in the order they are tried. */
const LITERALS = [
  ['true', true],
  ['false', false],
  ['null', null],
] as const;

/**
 * Parses `text` strictly. `keepDepth`: containers nested deeper than this (the root is depth 0) come back without
 * their members or items — still checked exactly the same, only not kept — for readers that look at the top
 * levels alone (a status read of a large profile).
 *
 * Written for bulk status (every mailbox's attributes, every SOGo profile): characters compared as char codes, no
 * object per string read, the number pattern tried only where a number can start. Acceptance, results and
 * refusals (message and offset) are those of the plain version, fuzzed against it.
 */
export function parseStrictJson(text: string, keepDepth = Infinity): JsonNode {
  let index = 0;
  const length = text.length;

  const fail = (message: string): never => {
    throw new JsonSyntaxError(message, index);
  };
  const ws = () => {
    while (index < length) {
      const code = text.charCodeAt(index);
      if (code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d) index++;
      else break;
    }
  };

  /** The string whose opening quote is at `index` ('' when not kept); leaves `index` after its closing quote. */
  const string = (keep: boolean): string => {
    index++; // opening quote
    let value = '';
    for (;;) {
      // A run of plain characters is found by a sticky pattern (irregexp's scan beats a charCodeAt loop) and taken
      // as one slice: the same text as character by character.
      const run = index;
      PLAIN_RUN.lastIndex = index;
      PLAIN_RUN.test(text); // always matches (possibly nothing): lastIndex is the run's end
      index = PLAIN_RUN.lastIndex;
      const code = index < length ? text.charCodeAt(index) : 0;
      if (index > run && keep) value = value === '' ? text.slice(run, index) : value + text.slice(run, index);
      if (index >= length) fail('unterminated string');
      if (code === 0x22) {
        index++;
        return value;
      }
      if (code < 0x20) fail('control character in a string');
      const escaped = text[index + 1];
      if (escaped !== undefined && Object.hasOwn(SIMPLE_ESCAPES, escaped)) {
        if (keep) value += SIMPLE_ESCAPES[escaped];
        index += 2;
      } else if (escaped === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(index + 2, index + 6))) {
        if (keep) value += String.fromCharCode(parseInt(text.slice(index + 2, index + 6), 16));
        index += 6;
      } else {
        fail('invalid escape in a string');
      }
    }
  };

  /** The value at `i`; undefined (checked, not kept) deeper than keepDepth allows. */
  const value = (depth: number): JsonNode | undefined => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    const keep = depth <= keepDepth;
    ws();
    const start = index;
    const code = text.charCodeAt(index); // NaN past the end: matches nothing below
    if (code === 0x7b /* { */) {
      index++;
      const members: JsonMember[] | undefined = keep ? [] : undefined;
      const seen = new Set<string>();
      ws();
      if (text.charCodeAt(index) === 0x7d /* } */) {
        index++;
        return keep ? { type: 'object', members: members!, start, end: index } : undefined;
      }
      for (;;) {
        ws();
        if (text.charCodeAt(index) !== 0x22) fail('expected a string key');
        const keyStart = index;
        const key = string(true);
        if (seen.has(key)) {
          index = keyStart;
          fail(`duplicate key "${escapeForMessage(key)}"`);
        }
        seen.add(key);
        ws();
        if (text.charCodeAt(index) !== 0x3a /* : */) fail('expected ":"');
        index++;
        const member = value(depth + 1);
        if (member) members!.push({ key, start: keyStart, value: member });
        ws();
        const next = text.charCodeAt(index);
        if (next === 0x2c /* , */) {
          index++;
          continue;
        }
        if (next === 0x7d /* } */) {
          index++;
          return keep ? { type: 'object', members: members!, start, end: index } : undefined;
        }
        fail('expected "," or "}"');
      }
    }
    if (code === 0x5b /* [ */) {
      index++;
      const items: JsonNode[] | undefined = keep ? [] : undefined;
      ws();
      if (text.charCodeAt(index) === 0x5d /* ] */) {
        index++;
        return keep ? { type: 'array', items: items!, start, end: index } : undefined;
      }
      for (;;) {
        const item = value(depth + 1);
        if (item) items!.push(item);
        ws();
        const next = text.charCodeAt(index);
        if (next === 0x2c /* , */) {
          index++;
          continue;
        }
        if (next === 0x5d /* ] */) {
          index++;
          return keep ? { type: 'array', items: items!, start, end: index } : undefined;
        }
        fail('expected "," or "]"');
      }
    }
    if (code === 0x22 /* " */) {
      const str = string(keep);
      return keep ? { type: 'string', value: str, start, end: index } : undefined;
    }
    // A number starts with "-" or a digit; anything else cannot match the pattern.
    if (code === 0x2d || (code >= 0x30 && code <= 0x39)) {
      NUMBER.lastIndex = index;
      const fast = NUMBER.exec(text);
      // Numbers are read within 400 characters (a longer one is refused below): a longer match takes that path.
      const num =
        fast && fast[0].length < 400
          ? fast
          : /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(index, index + 400));
      if (num && num[0].length > 0) {
        index += num[0].length;
        return keep ? { type: 'number', raw: num[0], start, end: index } : undefined;
      }
    }
    for (const [word, v] of LITERALS) {
      if (text.startsWith(word, index)) {
        index += word.length;
        return keep ? { type: 'literal', value: v, start, end: index } : undefined;
      }
    }
    return fail('unexpected character');
  };

  const root = value(0)!;
  ws();
  if (index !== length) fail('unexpected text after the JSON value');
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
  for (const m of after.members) {
    if (m.key === key) {
      if (!sameValue(m.value, literal, out, json)) throw new Error('setTopLevelMember: written value differs');
      continue;
    }
    if (before.get(m.key) !== source(out, m))
      throw new Error(`setTopLevelMember: member "${escapeForMessage(m.key)}" changed`);
    before.delete(m.key);
  }
  before.delete(key);
  if (before.size > 0 || !after.members.some((m) => m.key === key)) throw new Error('setTopLevelMember: members lost');
  return out;
}

function sameValue(node: JsonNode, literal: JsonNode, nodeText: string, literalText: string): boolean {
  return nodeText.slice(node.start, node.end) === literalText.slice(literal.start, literal.end);
}

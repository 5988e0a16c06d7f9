/**
 * A strict, byte-wise reader and splicer for PHP `serialize()` values — Roundcube's `users.preferences`
 * (PRODUCT.md §9.1). Never decodes and re-encodes a whole value: it locates one element of the top-level array
 * by byte offsets, and edits produce exactly the input bytes with that element removed, replaced or appended
 * and the element count adjusted.
 *
 * Only what PHP's own `serialize()` produces for plain data is accepted: `N;`, `b:0;`/`b:1;`, canonical
 * integers, floats, `s:<bytes>:"…";` (lengths count BYTES; the content may be any bytes, UTF-8 or not) and
 * arrays. References (`R:`/`r:`) would be renumbered by a splice, objects (`O:`/`C:`), enums (`E:`) and the
 * escaped-string form (`S:`) have no place in preferences: all are refused, as are trailing bytes, length
 * mismatches, duplicate keys, numeric string keys (PHP turns them into integers) and truncated input. A refusal is
 * a `PhpSerializeError`; callers turn it into a data error and write nothing — Roundcube reads an unparsable value
 * as empty, so a bad write would turn 2FA off and lose every other setting at the user's next save.
 */

export type PhpSerializeProblem =
  | 'truncated'
  | 'syntax'
  | 'unsupported' // references, objects, enums, S: strings: valid PHP, but not editable safely
  | 'duplicate-key'
  | 'trailing'
  | 'not-array'
  | 'too-deep';

export class PhpSerializeError extends Error {
  constructor(
    readonly problem: PhpSerializeProblem,
    message: string,
    /** Byte offset where the problem was found. */
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'PhpSerializeError';
  }
}

export type PhpKey = { kind: 'int'; value: bigint } | { kind: 'string'; bytes: Buffer };

/** A decoded value (only used for small values such as the plugin's own element). */
export type PhpValue = null | boolean | bigint | PhpFloat | Buffer | PhpArray;
/** A float kept as PHP wrote it (never re-formatted). */
export interface PhpFloat {
  kind: 'float';
  text: string;
}
export interface PhpArray {
  kind: 'array';
  entries: Array<[PhpKey, PhpValue]>;
}

export interface ArrayElement {
  /** The key: an integer (its canonical digits) or a string (its bytes), at keyStart..keyEnd of the value. */
  keyKind: 'int' | 'string';
  keyStart: number;
  keyEnd: number;
  /** Offset of the key's first byte (its `i:` / `s:`). */
  start: number;
  /** Offset of the value's first byte. */
  valueStart: number;
  /** Offset just after the value's last byte. */
  end: number;
}

export interface TopLevelArray {
  /** The parsed value (the offsets below point into it). */
  buf: Buffer;
  /** Offsets of the element count's digits (`a:<count>:{`). */
  countStart: number;
  countEnd: number;
  /** Offset of the closing `}` (the last byte). */
  close: number;
  elements: ArrayElement[];
}

const MAX_DEPTH = 128;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const CH = {
  colon: 0x3a,
  semi: 0x3b,
  quote: 0x22,
  open: 0x7b,
  close: 0x7d,
} as const;

/** PHP converts these string keys to integer keys (zend_handle_numeric_str): `0`, `-5`, `12` within int64. */
function isNumericStringKey(buf: Buffer, start: number, end: number): boolean {
  // Nearly every key starts with a letter: no need to look further (the pattern needs "-" or a digit first).
  const first = start < end ? buf[start] : undefined;
  if (first === undefined || (first !== 0x2d && (first < 0x30 || first > 0x39))) return false;
  const digits = buf.toString('latin1', start, end);
  if (!/^(0|-?[1-9][0-9]*)$/.test(digits)) return false;
  const value = BigInt(digits);
  return value >= INT64_MIN && value <= INT64_MAX;
}

/**
 * The keys of one array read so far, for duplicate detection. A key is its kind and its bytes (an integer key's
 * digits are canonical, so equal digits = equal integers), compared in place: no string or Buffer per key (bulk
 * status validates ~20 keys in every Roundcube row). Large arrays switch to a Set of latin1 strings (latin1 maps
 * bytes to characters one to one).
 */
class SeenKeys {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly ints: boolean[] = [];
  private set: Set<string> | null = null;

  constructor(private readonly buf: Buffer) {}

  private id(int: boolean, start: number, end: number): string {
    return `${int ? 'i' : 's'}${this.buf.toString('latin1', start, end)}`;
  }

  /** Adds a key; false when the array already has it. */
  add(int: boolean, start: number, end: number): boolean {
    if (this.set) {
      const id = this.id(int, start, end);
      if (this.set.has(id)) return false;
      this.set.add(id);
      return true;
    }
    const buf = this.buf;
    const length = end - start;
    for (let k = 0; k < this.starts.length; k++) {
      const other = this.starts[k]!;
      if (this.ints[k] !== int || this.ends[k]! - other !== length) continue;
      let i = 0;
      while (i < length && buf[start + i] === buf[other + i]) i++;
      if (i === length) return false;
    }
    this.starts.push(start);
    this.ends.push(end);
    this.ints.push(int);
    if (this.starts.length > 32) {
      this.set = new Set(this.starts.map((st, k) => this.id(this.ints[k]!, st, this.ends[k]!)));
    }
    return true;
  }
}

class Reader {
  /** Set by keyAt: whether the key is an integer, and where its digits or bytes are. */
  keyInt = false;
  keyStart = 0;
  keyEnd = 0;

  constructor(readonly buf: Buffer) {}

  fail(problem: PhpSerializeProblem, message: string, at: number): never {
    throw new PhpSerializeError(problem, message, at);
  }

  expect(pos: number, byte: number, what: string): number {
    if (pos >= this.buf.length) this.fail('truncated', `value ends early: expected ${what}`, pos);
    if (this.buf[pos] !== byte) this.fail('syntax', `expected ${what}`, pos);
    return pos + 1;
  }

  /** Reads ASCII up to `terminator` (exclusive); returns [text, offset after the terminator]. */
  token(pos: number, terminator: number, what: string, maxLen = 32): [string, number] {
    const stop = Math.min(this.buf.length, pos + maxLen + 1);
    for (let i = pos; i < stop; i++) {
      if (this.buf[i] === terminator) return [this.buf.toString('latin1', pos, i), i + 1];
    }
    if (stop >= this.buf.length) this.fail('truncated', `value ends early in ${what}`, pos);
    return this.fail('syntax', `malformed ${what}`, pos);
  }

  count(pos: number, what: string): [number, number] {
    // The common case read byte-wise, without a string: 1-10 digits, no leading zero, then ':'. Anything else
    // goes through the checks below (same acceptance, and the precise refusal).
    const buf = this.buf;
    let i = pos;
    let count = 0;
    while (i - pos < 11 && i < buf.length && buf[i]! >= 0x30 && buf[i]! <= 0x39)
      count = count * 10 + (buf[i++]! - 0x30);
    const digits = i - pos;
    if (digits >= 1 && digits <= 10 && buf[i] === CH.colon && (digits === 1 || buf[pos] !== 0x30)) {
      if (count > buf.length) this.fail('truncated', `${what} ${count} is beyond the end of the value`, pos);
      return [count, i + 1];
    }
    return this.countChecked(pos, what);
  }

  private countChecked(pos: number, what: string): [number, number] {
    const [text, next] = this.token(pos, CH.colon, what);
    if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) this.fail('syntax', `malformed ${what} "${text}"`, pos);
    const value = Number(text);
    if (value > this.buf.length) this.fail('truncated', `${what} ${value} is beyond the end of the value`, pos);
    return [value, next];
  }

  /** `s:<n>:"<n bytes>";` starting at the `s`; returns [content start, content end, offset after]. */
  string(pos: number): [number, number, number] {
    const [count, afterLen] = this.count(pos + 2, 'string length');
    const contentStart = this.expect(afterLen, CH.quote, "'\"' before the string");
    const contentEnd = contentStart + count;
    if (contentEnd + 2 > this.buf.length)
      this.fail('truncated', `string of ${count} bytes runs past the end of the value`, pos);
    this.expect(contentEnd, CH.quote, `'"' after ${count} string bytes (length mismatch)`);
    this.expect(contentEnd + 1, CH.semi, "';' after the string");
    return [contentStart, contentEnd, contentEnd + 2];
  }

  int(pos: number): [bigint, number] {
    // The common case byte-wise: an optional "-", 1-15 digits without a leading zero ("0" alone, never "-0"),
    // then ';' — always within int64 and exact as a double. Anything else: the checks below.
    const buf = this.buf;
    const start = pos + 2;
    const negative = buf[start] === 0x2d;
    let index = negative ? start + 1 : start;
    let count = 0;
    while (index - start < 17 && index < buf.length && buf[index]! >= 0x30 && buf[index]! <= 0x39)
      count = count * 10 + (buf[index++]! - 0x30);
    const first = negative ? start + 1 : start;
    const digits = index - first;
    if (digits >= 1 && digits <= 15 && buf[index] === CH.semi && (buf[first] !== 0x30 || (digits === 1 && !negative)))
      return [BigInt(negative ? -count : count), index + 1];
    return this.intChecked(pos);
  }

  private intChecked(pos: number): [bigint, number] {
    const [text, next] = this.token(pos + 2, CH.semi, 'integer');
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) this.fail('syntax', `malformed integer "${text}"`, pos);
    const value = BigInt(text);
    if (value < INT64_MIN || value > INT64_MAX) this.fail('syntax', 'integer out of range', pos);
    return [value, next];
  }

  tag(pos: number): number {
    if (pos >= this.buf.length) this.fail('truncated', 'value ends early: expected a value', pos);
    const t = this.buf[pos]!;
    if (t === 0x4e /* N */) return t;
    if (pos + 1 >= this.buf.length) this.fail('truncated', 'value ends early', pos);
    if (this.buf[pos + 1] !== CH.colon) this.fail('syntax', 'expected a value', pos);
    return t;
  }

  /** Validates the array key at `pos`, sets keyInt / keyStart / keyEnd, returns the offset after it. */
  keyAt(pos: number): number {
    const tag = this.tag(pos);
    if (tag === 0x69 /* i */) {
      const next = this.intEnd(pos);
      this.keyInt = true;
      this.keyStart = pos + 2;
      this.keyEnd = next - 1;
      return next;
    }
    if (tag === 0x73 /* s */) {
      const [cs, ce, next] = this.string(pos);
      if (isNumericStringKey(this.buf, cs, ce))
        this.fail('syntax', 'numeric string key (PHP would turn it into an integer key)', pos);
      this.keyInt = false;
      this.keyStart = cs;
      this.keyEnd = ce;
      return next;
    }
    return this.fail('syntax', 'array key is neither an integer nor a string', pos);
  }

  /** The key keyAt(pos) just read, as a value. */
  keyValue(): PhpKey {
    return this.keyInt
      ? { kind: 'int', value: BigInt(this.buf.toString('latin1', this.keyStart, this.keyEnd)) }
      : { kind: 'string', bytes: this.buf.subarray(this.keyStart, this.keyEnd) };
  }

  /** int() without the value: validates the integer at `pos` and returns the offset after its `;`. */
  intEnd(pos: number): number {
    // The common case byte-wise (as in int()); anything else: the checks of intChecked.
    const buf = this.buf;
    const start = pos + 2;
    const negative = buf[start] === 0x2d;
    let index = negative ? start + 1 : start;
    while (index - start < 17 && index < buf.length && buf[index]! >= 0x30 && buf[index]! <= 0x39) index++;
    const first = negative ? start + 1 : start;
    const digits = index - first;
    if (digits >= 1 && digits <= 15 && buf[index] === CH.semi && (buf[first] !== 0x30 || (digits === 1 && !negative)))
      return index + 1;
    return this.intChecked(pos)[1];
  }

  /**
   * value(pos, depth, false) without building anything: validates one value and returns the offset after it. The
   * same checks in the same order, so the same refusals (problem, message, offset).
   */
  skip(pos: number, depth: number): number {
    if (depth > MAX_DEPTH) this.fail('too-deep', `arrays nested deeper than ${MAX_DEPTH}`, pos);
    const tag = this.tag(pos);
    switch (tag) {
      case 0x69 /* i */:
        return this.intEnd(pos);
      case 0x73 /* s */:
        return this.string(pos)[2];
      case 0x61 /* a */: {
        const [count, afterCount] = this.count(pos + 2, 'element count');
        let cursor = this.expect(afterCount, CH.open, "'{' after the element count");
        const seen = new SeenKeys(this.buf);
        for (let index = 0; index < count; index++) {
          const keyAt = cursor;
          const afterKey = this.keyAt(cursor);
          if (!seen.add(this.keyInt, this.keyStart, this.keyEnd))
            this.fail('duplicate-key', 'duplicate array key', keyAt);
          cursor = this.skip(afterKey, depth + 1);
        }
        if (cursor >= this.buf.length)
          this.fail('truncated', `value ends early: expected '}' after ${count} elements`, cursor);
        if (this.buf[cursor] !== CH.close)
          this.fail('syntax', `expected '}' after ${count} elements (element count mismatch)`, cursor);
        return cursor + 1;
      }
      default:
        // N, b, d and every refusal: as value() does them (nothing to build for these).
        return this.value(pos, depth, false)[1];
    }
  }

  /**
   * Validates one value starting at `pos` and returns the offset after it. With `decode`, also returns the
   * value (used for small values only).
   */
  value(pos: number, depth: number, decode: boolean): [PhpValue | undefined, number] {
    if (depth > MAX_DEPTH) this.fail('too-deep', `arrays nested deeper than ${MAX_DEPTH}`, pos);
    const tag = this.tag(pos);
    switch (tag) {
      case 0x4e /* N */:
        return [null, this.expect(pos + 1, CH.semi, "';' after N")];
      case 0x62 /* b */: {
        const [text, next] = this.token(pos + 2, CH.semi, 'boolean', 1);
        if (text !== '0' && text !== '1') this.fail('syntax', `malformed boolean "${text}"`, pos);
        return [text === '1', next];
      }
      case 0x69 /* i */: {
        const [count, next] = this.int(pos);
        return [count, next];
      }
      case 0x64 /* d */: {
        const [text, next] = this.token(pos + 2, CH.semi, 'float', 40);
        if (!/^(-?INF|NAN|-?(0|[1-9][0-9]*)(\.[0-9]+)?(E[+-][0-9]+)?)$/.test(text))
          this.fail('syntax', `malformed float "${text}"`, pos);
        return [{ kind: 'float', text }, next];
      }
      case 0x73 /* s */: {
        const [cs, ce, next] = this.string(pos);
        return [decode ? this.buf.subarray(cs, ce) : undefined, next];
      }
      case 0x61 /* a */: {
        const [count, afterCount] = this.count(pos + 2, 'element count');
        let cursor = this.expect(afterCount, CH.open, "'{' after the element count");
        const seen = new SeenKeys(this.buf);
        const entries: Array<[PhpKey, PhpValue]> = [];
        for (let index = 0; index < count; index++) {
          const keyAt = cursor;
          const afterKey = this.keyAt(cursor);
          if (!seen.add(this.keyInt, this.keyStart, this.keyEnd))
            this.fail('duplicate-key', 'duplicate array key', keyAt);
          const key = decode ? this.keyValue() : undefined;
          const [value, afterValue] = this.value(afterKey, depth + 1, decode);
          if (decode) entries.push([key!, value as PhpValue]);
          cursor = afterValue;
        }
        if (cursor >= this.buf.length)
          this.fail('truncated', `value ends early: expected '}' after ${count} elements`, cursor);
        if (this.buf[cursor] !== CH.close)
          this.fail('syntax', `expected '}' after ${count} elements (element count mismatch)`, cursor);
        return [decode ? { kind: 'array', entries } : undefined, cursor + 1];
      }
      case 0x52 /* R */:
      case 0x72 /* r */:
        return this.fail('unsupported', 'PHP references (R:/r:) are not supported: an edit would renumber them', pos);
      case 0x4f /* O */:
      case 0x43 /* C */:
        return this.fail('unsupported', 'PHP objects (O:/C:) are not supported', pos);
      case 0x45 /* E */:
        return this.fail('unsupported', 'PHP enums (E:) are not supported', pos);
      case 0x53 /* S */:
        return this.fail('unsupported', 'escaped strings (S:) are not supported', pos);
      default:
        return this.fail('syntax', 'not a serialized PHP value', pos);
    }
  }
}

/**
 * Parses a whole serialized value that must be an array, validating every nested value strictly, and returns the
 * byte offsets of its top-level elements. Throws `PhpSerializeError`.
 */
export function parseTopLevel(buf: Buffer): TopLevelArray {
  const reader = new Reader(buf);
  if (buf.length === 0) reader.fail('truncated', 'empty value', 0);
  if (buf[0] !== 0x61 /* a */) {
    reader.value(0, 0, false); // a valid non-array still gets the precise refusal below
    reader.fail('not-array', 'the value is not an array', 0);
  }
  if (buf.length < 2 || buf[1] !== CH.colon)
    reader.fail(buf.length < 2 ? 'truncated' : 'syntax', 'expected a value', 0);
  const countStart = 2;
  const [count, afterCount] = reader.count(countStart, 'element count');
  let cursor = reader.expect(afterCount, CH.open, "'{' after the element count");
  const seen = new SeenKeys(buf);
  const elements: ArrayElement[] = [];
  for (let index = 0; index < count; index++) {
    const start = cursor;
    const valueStart = reader.keyAt(cursor);
    const { keyInt, keyStart, keyEnd } = reader;
    if (!seen.add(keyInt, keyStart, keyEnd)) reader.fail('duplicate-key', 'duplicate array key', start);
    const end = reader.skip(valueStart, 1);
    elements.push({ keyKind: keyInt ? 'int' : 'string', keyStart, keyEnd, start, valueStart, end });
    cursor = end;
  }
  if (cursor >= buf.length) reader.fail('truncated', `value ends early: expected '}' after ${count} elements`, cursor);
  if (buf[cursor] !== CH.close)
    reader.fail('syntax', `expected '}' after ${count} elements (element count mismatch)`, cursor);
  if (cursor + 1 !== buf.length)
    reader.fail('trailing', `${buf.length - cursor - 1} unexpected byte(s) after the value`, cursor + 1);
  return { buf, countStart, countEnd: afterCount - 1, close: cursor, elements };
}

/** Validates one serialized value starting at `pos` (strictly) and returns the offset just after it. */
export function valueEnd(buf: Buffer, pos: number): number {
  return new Reader(buf).skip(pos, 0);
}

/** Decodes one complete serialized value (strictly; trailing bytes refused). For small values only. */
export function decodeValue(buf: Buffer): PhpValue {
  const reader = new Reader(buf);
  const [value, end] = reader.value(0, 0, true);
  if (end !== buf.length) reader.fail('trailing', `${buf.length - end} unexpected byte(s) after the value`, end);
  return value as PhpValue;
}

/** PHP `serialize()` of a value made of the types above. Floats are written back exactly as they were read. */
export function serializeValue(phpValue: PhpValue): Buffer {
  const parts: Buffer[] = [];
  const put = (s: string) => parts.push(Buffer.from(s, 'latin1'));
  const walk = (node: PhpValue): void => {
    if (node === null) put('N;');
    else if (typeof node === 'boolean') put(node ? 'b:1;' : 'b:0;');
    else if (typeof node === 'bigint') put(`i:${node};`);
    else if (Buffer.isBuffer(node)) {
      put(`s:${node.length}:"`);
      parts.push(node);
      put('";');
    } else if (node.kind === 'float') put(`d:${node.text};`);
    else {
      put(`a:${node.entries.length}:{`);
      for (const [key, val] of node.entries) {
        if (key.kind === 'int') put(`i:${key.value};`);
        else walk(key.bytes);
        walk(val);
      }
      put('}');
    }
  };
  walk(phpValue);
  return Buffer.concat(parts);
}

/** `s:<n>:"<name>";` — a string key as PHP serializes it. */
export function stringKeyBytes(name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  return Buffer.concat([Buffer.from(`s:${bytes.length}:"`, 'latin1'), bytes, Buffer.from('";', 'latin1')]);
}

export function findStringKey(top: TopLevelArray, name: string): ArrayElement | undefined {
  const wanted = Buffer.from(name, 'utf8');
  return top.elements.find(
    (e) =>
      e.keyKind === 'string' &&
      e.keyEnd - e.keyStart === wanted.length &&
      top.buf.compare(wanted, 0, wanted.length, e.keyStart, e.keyEnd) === 0,
  );
}

/** The value without the top-level element named `name`; `null` when there is no such element. */
export function removeStringKey(buf: Buffer, name: string): Buffer | null {
  const top = parseTopLevel(buf);
  const el = findStringKey(top, name);
  if (!el) return null;
  return Buffer.concat([
    buf.subarray(0, top.countStart),
    Buffer.from(String(top.elements.length - 1), 'latin1'),
    buf.subarray(top.countEnd, el.start),
    buf.subarray(el.end),
  ]);
}

/**
 * The value with the top-level element `name` set to `value` (a complete serialized value, validated here):
 * replaced in place when present (PHP keeps an existing key's position), else appended before the closing `}`
 * (where PHP puts a new key). An empty or absent value (`null`, `''`) counts as an empty array, as Roundcube
 * reads it.
 */
export function setStringKey(buf: Buffer | null, name: string, value: Buffer): Buffer {
  decodeValue(value); // the new value itself must be exactly one valid value
  const source = buf && buf.length > 0 ? buf : Buffer.from('a:0:{}', 'latin1');
  const top = parseTopLevel(source);
  const el = findStringKey(top, name);
  if (el) return Buffer.concat([source.subarray(0, el.valueStart), value, source.subarray(el.end)]);
  return Buffer.concat([
    source.subarray(0, top.countStart),
    Buffer.from(String(top.elements.length + 1), 'latin1'),
    source.subarray(top.countEnd, top.close),
    stringKeyBytes(name),
    value,
    source.subarray(top.close),
  ]);
}

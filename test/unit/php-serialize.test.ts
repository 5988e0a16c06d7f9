import { afterAll, describe, expect, it } from 'vitest';
import {
  PhpSerializeError,
  decodeValue,
  parseTopLevel,
  removeStringKey,
  serializeValue,
  setStringKey,
} from '../../src/stores/php-serialize.js';
import { describeRoundcube, roundcubeConfigDir, runOracle } from '../helpers/roundcube.js';

const KEY = 'twofactor_gauthenticator';
const b = (s: string) => Buffer.from(s, 'utf8');
const SAMPLE =
  'a:4:{s:11:"client_hash";s:16:"aB3dE5gH7jK9mN1p";s:14:"compose_extwin";i:0;s:24:"twofactor_gauthenticator";a:3:{s:6:"secret";s:16:"JBSWY3DPEHPK3PXP";s:8:"activate";b:1;s:14:"recovery_codes";a:2:{i:0;s:10:"ABCDEFGHIJ";i:1;s:10:"KLMNOPQRST";}}s:14:"signature_note";s:11:"Grüße ✓";}';
const SAMPLE_WITHOUT =
  'a:3:{s:11:"client_hash";s:16:"aB3dE5gH7jK9mN1p";s:14:"compose_extwin";i:0;s:14:"signature_note";s:11:"Grüße ✓";}';

const rc = roundcubeConfigDir();
afterAll(() => rc.cleanup());

function refusal(fn: () => unknown): PhpSerializeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PhpSerializeError);
    return e as PhpSerializeError;
  }
  throw new Error('expected a refusal');
}

describe("the plugin's documented sample", () => {
  it('removes exactly the plugin element and the count', () => {
    expect(removeStringKey(b(SAMPLE), KEY)!.toString('utf8')).toBe(SAMPLE_WITHOUT);
    expect(removeStringKey(b(SAMPLE_WITHOUT), KEY)).toBeNull();
  });

  it('replaces in place, appends when absent, and treats NULL/empty preferences as an empty array', () => {
    const off = b('a:3:{s:6:"secret";s:16:"JBSWY3DPEHPK3PXP";s:8:"activate";b:0;s:14:"recovery_codes";a:0:{}}');
    const replaced = setStringKey(b(SAMPLE), KEY, off).toString('utf8');
    expect(replaced).toBe(
      SAMPLE.replace(
        /s:24:"twofactor_gauthenticator";a:3:\{.*?\}\}/,
        `s:24:"twofactor_gauthenticator";${off.toString()}`,
      ),
    );
    expect(setStringKey(b(SAMPLE_WITHOUT), KEY, off).toString('utf8')).toBe(
      `a:4:{${SAMPLE_WITHOUT.slice(5, -1)}s:24:"twofactor_gauthenticator";${off.toString()}}`,
    );
    expect(setStringKey(null, KEY, b('s:3:"abc";')).toString()).toBe(
      'a:1:{s:24:"twofactor_gauthenticator";s:3:"abc";}',
    );
    expect(setStringKey(Buffer.alloc(0), KEY, b('s:3:"abc";')).toString()).toBe(
      'a:1:{s:24:"twofactor_gauthenticator";s:3:"abc";}',
    );
  });

  it('counts string lengths in bytes, and handles bytes that are not UTF-8', () => {
    const latin = Buffer.concat([
      b('a:2:{s:4:"name";s:5:"'),
      Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65]),
      b('";s:24:"twofactor_gauthenticator";a:0:{}}'),
    ]);
    const out = removeStringKey(latin, KEY)!;
    expect(out).toEqual(
      Buffer.concat([b('a:1:{s:4:"name";s:5:"'), Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65]), b('";}')]),
    );
    refusal(() => parseTopLevel(b('a:1:{s:4:"name";s:5:"Grüße";}'))); // 7 bytes, not 5
  });
});

describe('refusals', () => {
  const cases: Array<[string, string, string]> = [
    ['reference R:', 'a:2:{s:1:"a";a:0:{}s:1:"b";R:2;}', 'unsupported'],
    ['reference r:', 'a:2:{s:1:"a";a:0:{}s:1:"b";r:2;}', 'unsupported'],
    ['object O:', 'a:1:{s:1:"a";O:8:"stdClass":0:{}}', 'unsupported'],
    ['object C:', 'a:1:{s:1:"a";C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}}', 'unsupported'],
    ['enum E:', 'a:1:{s:1:"a";E:7:"Foo:Bar";}', 'unsupported'],
    ['escaped string S:', 'a:1:{s:1:"a";S:1:"\\61";}', 'unsupported'],
    ['trailing bytes', 'a:0:{}x', 'trailing'],
    ['trailing newline', 'a:0:{}\n', 'trailing'],
    ['string longer than its length', 'a:1:{s:1:"a";s:2:"abc";}', 'syntax'],
    ['string shorter than its length', 'a:1:{s:1:"a";s:4:"abc";}', 'syntax'],
    ['element count too high', 'a:2:{s:1:"a";i:1;}', 'truncated'],
    ['element count too low', 'a:1:{s:1:"a";i:1;s:1:"b";i:2;}', 'syntax'],
    ['duplicate key', 'a:2:{s:1:"a";i:1;s:1:"a";i:2;}', 'duplicate-key'],
    ['duplicate nested key', 'a:1:{s:1:"a";a:2:{i:0;i:1;i:0;i:2;}}', 'duplicate-key'],
    ['numeric string key', 'a:1:{s:1:"5";i:1;}', 'syntax'],
    ['truncated', 'a:1:{s:1:"a";s:3:"ab', 'truncated'],
    ['truncated before }', 'a:1:{s:1:"a";i:1;', 'truncated'],
    ['empty', '', 'truncated'],
    ['not an array', 's:3:"abc";', 'not-array'],
    ['non-canonical integer', 'a:1:{s:1:"a";i:007;}', 'syntax'],
    ['plus-signed integer', 'a:1:{s:1:"a";i:+7;}', 'syntax'],
    ['integer out of range', 'a:1:{s:1:"a";i:9223372036854775808;}', 'syntax'],
    ['boolean 2', 'a:1:{s:1:"a";b:2;}', 'syntax'],
    ['float garbage', 'a:1:{s:1:"a";d:1.2.3;}', 'syntax'],
  ];
  for (const [name, input, problem] of cases) {
    it(`refuses ${name}`, () => {
      const e = refusal(() => parseTopLevel(b(input)));
      expect(e.problem).toBe(problem);
      refusal(() => removeStringKey(b(input), KEY));
      if (input !== '') refusal(() => setStringKey(b(input), KEY, b('a:0:{}'))); // '' is Roundcube's "no preferences"
    });
  }

  it('refuses arrays nested beyond the depth limit', () => {
    const deep = 'a:1:{i:0;'.repeat(200) + 'N;' + '}'.repeat(200);
    expect(refusal(() => parseTopLevel(b(deep))).problem).toBe('too-deep');
  });

  it('refuses to set a value that is not exactly one serialized value', () => {
    refusal(() => setStringKey(b('a:0:{}'), KEY, b('a:0:{}a:0:{}')));
    refusal(() => setStringKey(b('a:0:{}'), KEY, b('s:5:"abc";')));
  });

  it('accepts what PHP serialize writes for floats, null and nested arrays', () => {
    const v = 'a:6:{s:1:"a";d:0.1;s:1:"b";d:-1.0E+25;s:1:"c";d:INF;s:1:"d";d:NAN;s:1:"e";N;i:-3;a:1:{i:0;a:0:{}}}';
    expect(parseTopLevel(b(v)).elements).toHaveLength(6);
    expect(serializeValue(decodeValue(b(v))).toString()).toBe(v);
  });
});

// ---- fuzz: a generator independent of the module under test builds serialized arrays from pieces ----

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Gen {
  r: () => number;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
}
function gen(seed: number): Gen {
  const r = rng(seed);
  return { r, int: (n) => Math.floor(r() * n), pick: (xs) => xs[Math.floor(r() * xs.length)]! };
}

const TRICKY = [
  b('"'),
  b(';'),
  b('}'),
  b('";'),
  b('s:3:"'),
  b('ü'),
  b('✓'),
  b('😀'),
  Buffer.from([0xff]),
  Buffer.from([0xc3]),
  Buffer.from([0]),
  b('\n'),
];

function randomBytesStr(g: Gen, quoteFree: boolean): Buffer {
  const parts: Buffer[] = [];
  const n = g.int(6);
  for (let i = 0; i < n; i++) {
    if (g.r() < 0.5) parts.push(Buffer.from(String.fromCharCode(97 + g.int(26))));
    else if (!quoteFree) parts.push(g.pick(TRICKY));
    else parts.push(g.pick([b('ü'), b('✓'), Buffer.from([0xff]), Buffer.from([0]), b('x')]));
  }
  return Buffer.concat(parts);
}

function sStr(bytes: Buffer): Buffer {
  return Buffer.concat([b(`s:${bytes.length}:"`), bytes, b('";')]);
}

function randomValue(g: Gen, depth: number, opts: { floats: boolean; quoteFree: boolean }): Buffer {
  const kinds = ['N', 'b', 'i', 's', 's', ...(opts.floats ? ['d'] : []), ...(depth < 3 ? ['a', 'a'] : [])];
  switch (g.pick(kinds)) {
    case 'N':
      return b('N;');
    case 'b':
      return b(`b:${g.int(2)};`);
    case 'i':
      return b(`i:${g.int(2) ? '-' : ''}${g.int(100000) + 1};`);
    case 'd':
      return b(`d:${g.pick(['0.5', '-2.25', '1.0E+25', 'INF', '-INF', 'NAN', '3'])};`);
    case 's':
      return sStr(randomBytesStr(g, opts.quoteFree));
    default:
      return randomArray(g, depth + 1, g.int(4), opts);
  }
}

function randomElements(g: Gen, depth: number, n: number, opts: { floats: boolean; quoteFree: boolean }): Buffer[] {
  const used = new Set<string>();
  const out: Buffer[] = [];
  while (out.length < n) {
    let key: Buffer;
    if (g.r() < 0.3) key = b(`i:${g.int(50)};`);
    else {
      const name = Buffer.concat([b(String.fromCharCode(97 + g.int(26))), randomBytesStr(g, opts.quoteFree)]);
      key = sStr(name);
    }
    const id = key.toString('hex');
    if (used.has(id) || key.includes(b(KEY))) continue;
    used.add(id);
    out.push(Buffer.concat([key, randomValue(g, depth, opts)]));
  }
  return out;
}

function randomArray(g: Gen, depth: number, n: number, opts: { floats: boolean; quoteFree: boolean }): Buffer {
  const els = randomElements(g, depth, n, opts);
  return Buffer.concat([b(`a:${n}:{`), ...els, b('}')]);
}

const wrap = (els: Buffer[]) => Buffer.concat([b(`a:${els.length}:{`), ...els, b('}')]);

describeRoundcube('fuzz: edits change nothing but the plugin element', () => {
  it('remove / replace / insert on 400 random arrays with the key anywhere (PHP agrees every input and output is canonical)', async () => {
    const g = gen(14);
    const phpChecks: Buffer[] = [];
    for (let iter = 0; iter < 400; iter++) {
      const opts = { floats: true, quoteFree: false };
      const others = randomElements(g, 1, g.int(8), opts);
      const pluginValue = g.r() < 0.5 ? randomArray(g, 1, g.int(4), opts) : sStr(randomBytesStr(g, false));
      const pluginEl = Buffer.concat([sStr(b(KEY)), pluginValue]);
      const at = g.int(others.length + 1);
      const full = wrap([...others.slice(0, at), pluginEl, ...others.slice(at)]);
      const without = wrap(others);
      const newValue = randomArray(g, 1, g.int(3), { floats: false, quoteFree: false });

      expect(removeStringKey(full, KEY)).toEqual(without);
      expect(removeStringKey(without, KEY)).toBeNull();
      const replaced = wrap([...others.slice(0, at), Buffer.concat([sStr(b(KEY)), newValue]), ...others.slice(at)]);
      expect(setStringKey(full, KEY, newValue)).toEqual(replaced);
      expect(setStringKey(without, KEY, newValue)).toEqual(wrap([...others, Buffer.concat([sStr(b(KEY)), newValue])]));
      if (iter % 4 === 0) phpChecks.push(full, without, replaced);
    }
    const answers = await runOracle<{ canonical: boolean; isArray: boolean }>(
      rc.dir,
      phpChecks.map((x) => ({ op: 'canonical', data: x.toString('base64') })),
    );
    expect(answers.every((a) => a.canonical && a.isArray)).toBe(true);
  });
});

describeRoundcube('fuzz: corruptions are refused (PHP is the oracle)', () => {
  it('1,500 single mutations: accepted only when PHP reads the array back byte for byte; truncation and trailing bytes always refused', async () => {
    const g = gen(65);
    const STRUCT = b('0123456789:;"{}asibdNRO-');
    const mutated: Array<{ data: Buffer; mustRefuse: boolean }> = [];
    for (let iter = 0; iter < 1500; iter++) {
      const base = randomArray(g, 0, 1 + g.int(6), { floats: false, quoteFree: true });
      const pos = g.int(base.length);
      let data: Buffer;
      let mustRefuse = false;
      switch (g.int(6)) {
        case 0: // truncate
          data = base.subarray(0, pos);
          mustRefuse = true;
          break;
        case 1: // trailing bytes
          data = Buffer.concat([base, Buffer.from([STRUCT[g.int(STRUCT.length)]!])]);
          mustRefuse = true;
          break;
        case 2: // delete a byte
          data = Buffer.concat([base.subarray(0, pos), base.subarray(pos + 1)]);
          break;
        case 3: // insert a structural byte
          data = Buffer.concat([
            base.subarray(0, pos),
            Buffer.from([STRUCT[g.int(STRUCT.length)]!]),
            base.subarray(pos),
          ]);
          break;
        case 4: // replace a byte with a structural one
          data = Buffer.from(base);
          data[pos] = STRUCT[g.int(STRUCT.length)]!;
          break;
        default: {
          // change one length or count by ±1..3
          const text = base.toString('latin1');
          const ms = [...text.matchAll(/[sa]:(\d+):/g)];
          const m = ms[g.int(ms.length)]!;
          const n = Math.max(0, Number(m[1]) + (g.int(2) ? 1 : -1) * (1 + g.int(3)));
          data = Buffer.from(text.slice(0, m.index! + 2) + n + text.slice(m.index! + 2 + m[1]!.length), 'latin1');
        }
      }
      mutated.push({ data, mustRefuse });
    }
    const answers = await runOracle<{ canonical: boolean; isArray: boolean }>(
      rc.dir,
      mutated.map((m) => ({ op: 'canonical', data: m.data.toString('base64') })),
    );
    let accepted = 0;
    let refused = 0;
    mutated.forEach((m, i) => {
      const php = answers[i]!;
      let verdict: 'accepted' | PhpSerializeError;
      try {
        parseTopLevel(m.data);
        verdict = 'accepted';
      } catch (e) {
        expect(e).toBeInstanceOf(PhpSerializeError);
        verdict = e as PhpSerializeError;
      }
      if (verdict === 'accepted') {
        accepted++;
        expect(m.mustRefuse, `accepted a truncated/trailing input: ${m.data.toString('latin1')}`).toBe(false);
        expect(
          php.canonical && php.isArray,
          `accepted what PHP does not read back exactly: ${m.data.toString('latin1')}`,
        ).toBe(true);
      } else {
        refused++;
        // Valid PHP that is refused on purpose (references, objects) is the only disagreement allowed.
        if (php.canonical && php.isArray) expect(verdict.problem, m.data.toString('latin1')).toBe('unsupported');
      }
    });
    expect(refused).toBeGreaterThan(1000);
    expect(accepted).toBeGreaterThan(20); // string-content mutations stay valid
  });
});

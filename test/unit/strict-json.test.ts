/** The strict JSON reader foreign stores use: RFC 8259 exactly, duplicate keys refused, byte-preserving edits. */
import { describe, expect, it } from 'vitest';
import { JsonSyntaxError, member, parseStrictJson, setTopLevelMember } from '../../src/stores/strict-json.js';

describe('parseStrictJson', () => {
  it.each([
    ['{"a":1,}', /expected a string key/],
    ['{"a":01}', /expected "," or "}"/],
    ['{"a":+1}', /unexpected character/],
    ["{'a':1}", /expected a string key/],
    ['{"a":"x\ny"}', /control character/],
    ['{"a":"\\x"}', /invalid escape/],
    ['{"a":1} x', /after the JSON value/],
    ['{"a":1,"b":{"c":2,"c":3}}', /duplicate key "c"/],
    ['{"a":NaN}', /unexpected character/],
    ['\u00a0{}', /unexpected character/],
    ['['.repeat(300) + ']'.repeat(300), /nesting too deep/],
    ['', /unexpected character/],
  ])('refuses %j', (text, why) => {
    expect(() => parseStrictJson(text)).toThrow(JsonSyntaxError);
    expect(() => parseStrictJson(text)).toThrow(why);
  });

  it('reads what JSON.parse reads, keeping numbers as written', () => {
    const text = ' {"s":"\\u00e9\\/\\ud83d\\ude00","n":-1.50e+3,"t":true,"z":null,"a":[1,{"b":[]}]} ';
    const root = parseStrictJson(text);
    expect(member(root, 's')).toMatchObject({ type: 'string', value: JSON.parse(text).s });
    expect(member(root, 'n')).toMatchObject({ type: 'number', raw: '-1.50e+3' });
    expect(member(root, 'z')).toMatchObject({ type: 'literal', value: null });
  });
});

describe('setTopLevelMember', () => {
  it('replaces only the top-level value, whitespace and escapes kept', () => {
    const text = '{ "x" : {"k":1} ,\n "k" : 1 , "u":"\\u00e9", "big": 123456789012345678901 }';
    expect(setTopLevelMember(text, parseStrictJson(text), 'k', '0')).toBe(
      '{ "x" : {"k":1} ,\n "k" : 0 , "u":"\\u00e9", "big": 123456789012345678901 }',
    );
  });
  it('appends after the last member, or into an empty object', () => {
    expect(setTopLevelMember('{"a":1 }', parseStrictJson('{"a":1 }'), 'k', '0')).toBe('{"a":1,"k":0 }');
    expect(setTopLevelMember('{ }', parseStrictJson('{ }'), 'k', '0')).toBe('{"k":0 }');
  });
});

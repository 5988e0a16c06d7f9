/** The colour policy (ui/colour.ts) and the Output streams that follow it. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { colourAllowed, palette } from '../../src/ui/colour.js';
import { Output } from '../../src/ui/output.js';

const tty = { isTTY: true };
const pipe = { isTTY: false };

describe('colourAllowed', () => {
  it.each([
    ['a terminal', tty, { flag: true }, {}, true],
    ['an empty NO_COLOR', tty, { flag: true }, { NO_COLOR: '' }, true],
    ['a pipe', pipe, { flag: true }, {}, false],
    ['a pipe with FORCE_COLOR', pipe, { flag: true }, { FORCE_COLOR: '3' }, false],
    ['NO_COLOR=1', tty, { flag: true }, { NO_COLOR: '1' }, false],
    ['NO_COLOR=0', tty, { flag: true }, { NO_COLOR: '0' }, false],
    ['--no-color', tty, { flag: false }, {}, false],
    ['--json', tty, { flag: true, json: true }, {}, false],
  ])('%s → %s', (_name, stream, request, env, expected) => {
    expect(colourAllowed(stream, request, env)).toBe(expected);
  });
});

describe('palette', () => {
  it('paints with chalk when enabled, whatever chalk would detect on its own', async () => {
    expect((await palette(true)).red('x')).toBe('\x1b[31mx\x1b[39m');
  });
  it('leaves text alone when not', async () => {
    expect((await palette(false)).red('x')).toBe('x');
  });
});

describe('Output', () => {
  const terminal = () => Object.assign(new PassThrough(), { isTTY: true });
  it('colours each terminal stream, never JSON on stdout, nothing with --no-color', () => {
    const saved = process.env.NO_COLOR;
    delete process.env.NO_COLOR;
    try {
      const text = new Output({ json: false, color: true, verbose: false, stdout: terminal(), stderr: terminal() });
      expect([text.color, text.errColor]).toEqual([true, true]);
      const json = new Output({ json: true, color: true, verbose: false, stdout: terminal(), stderr: terminal() });
      expect([json.color, json.errColor]).toEqual([false, true]);
      const off = new Output({ json: false, color: false, verbose: false, stdout: terminal(), stderr: terminal() });
      expect([off.color, off.errColor]).toEqual([false, false]);
      const piped = new Output({
        json: false,
        color: true,
        verbose: false,
        stdout: new PassThrough(),
        stderr: terminal(),
      });
      expect([piped.color, piped.errColor]).toEqual([false, true]);
    } finally {
      if (saved !== undefined) process.env.NO_COLOR = saved;
    }
  });
});

import { describe, expect, it } from 'vitest';
import { parseCodeInput } from '../../src/core/factor-check.js';

describe("parseCodeInput: a foreign store's own recovery code (the Roundcube plugin's form)", () => {
  it('takes exactly 10 upper-case base32 characters, as the plugin generates them', () => {
    expect(parseCodeInput('KQ3ZT7MBXA')).toEqual({ form: 'store-recovery', value: 'KQ3ZT7MBXA' });
    expect(parseCodeInput('ABCDEFGHIJ')).toEqual({ form: 'store-recovery', value: 'ABCDEFGHIJ' });
  });

  it.each(['kq3zt7mbxa', 'KQ3ZT7MBX', 'KQ3ZT7MBXAB', 'KQ3ZT7MBX1', 'KQ3ZT7MBX8', ' KQ3ZT7MBXA', 'KQ3Z-T7MBXA'])(
    'refuses %j (65), never normalised',
    (input) => {
      expect(() => parseCodeInput(input)).toThrow(expect.objectContaining({ exitCode: 65 }));
    },
  );

  it("keeps mail2fa's own forms first: digits, recovery and temporary codes", () => {
    expect(parseCodeInput('123456').form).toBe('digits');
    expect(parseCodeInput('abcde-fghjk').form).toBe('recovery');
    expect(parseCodeInput('ABCDE-FGHJK').form).toBe('recovery');
  });
});

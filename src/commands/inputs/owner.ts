/** `disable` and `codes regenerate`: the owner's password and a current code. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { GLOBALS, flag, rule, text } from './parse.js';

export const ownerInput = z
  .object({ email: z.string(), passwordStdin: flag(), code: text(), sendCode: flag(), ...GLOBALS })
  .check(
    rule((f) =>
      f.sendCode && f.code !== undefined
        ? usageError(
            '--send-code texts a new code to be typed at the prompt; it cannot be combined with --code',
            'Run once with --send-code, then again with --code CODE.',
          )
        : undefined,
    ),
  );
export type OwnerInput = z.output<typeof ownerInput>;

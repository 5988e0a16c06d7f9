/** Commands whose input is an address or a flag or two, with no rule between them. */
import * as z from 'zod/mini';
import { GLOBALS, flag, text } from './parse.js';

export const verifyInput = z.object({ email: z.string(), code: text(), ...GLOBALS });
export const sendCodeInput = z.object({ email: z.string(), ...GLOBALS });
export const doctorInput = z.object({ serve: text(), ...GLOBALS });
export const migrateInput = z.object({ withMailboxTable: flag(), ...GLOBALS });
export const demoInput = z.object({ reset: flag(), ...GLOBALS });

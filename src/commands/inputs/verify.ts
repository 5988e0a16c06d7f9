/** `verify <email>`: the code comes from --code, or else from stdin or a prompt (read by the command). */
import * as z from 'zod/mini';
import { GLOBALS, text } from './parse.js';

export const verifyInput = z.object({ email: z.string(), code: text(), ...GLOBALS });

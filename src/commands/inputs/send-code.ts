/** `send-code <email>`. */
import * as z from 'zod/mini';
import { GLOBALS } from './parse.js';

export const sendCodeInput = z.object({ email: z.string(), ...GLOBALS });

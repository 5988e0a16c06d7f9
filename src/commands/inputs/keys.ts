/** `keys check`, `keys rotate`, `keys generate`. */
import * as z from 'zod/mini';
import { GLOBALS, OUTPUT_GLOBALS, text } from './parse.js';

export const keysCheckInput = z.object({ ...GLOBALS });
export const keysRotateInput = z.object({ newKeyFile: text(), ...GLOBALS });
/** generate writes a file and opens no database: only the output options matter. */
export const keysGenerateInput = z.object({ file: z.string(), ...OUTPUT_GLOBALS });

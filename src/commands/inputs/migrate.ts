/** `migrate`. */
import * as z from 'zod/mini';
import { GLOBALS, flag } from './parse.js';

export const migrateInput = z.object({ withMailboxTable: flag(), ...GLOBALS });

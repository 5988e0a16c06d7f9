/** `demo`. */
import * as z from 'zod/mini';
import { GLOBALS, flag } from './parse.js';

export const demoInput = z.object({ reset: flag(), ...GLOBALS });

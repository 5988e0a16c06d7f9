/** `doctor`: the installation, or with --serve a running service. */
import * as z from 'zod/mini';
import { GLOBALS, text } from './parse.js';

export const doctorInput = z.object({ serve: text(), ...GLOBALS });
